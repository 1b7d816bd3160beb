"""Convert a .tflite model (or a registry model name) into the engine's own .npz format.

    python scripts/export_tflite.py MODEL.tflite OUT.npz
    python scripts/export_tflite.py ssd OUT.npz          # a registry name: fetched and verified first

The model is validated and prepared exactly as engine.load() does before anything is written, and the
.npz is written atomically (a failed export never leaves a partial file).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if (ROOT / "engine").is_dir() and str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

import engine
from engine import atomic, registry
from engine.run import guarded


def export(args: argparse.Namespace) -> int:
    if not args.out.lower().endswith(".npz"):
        raise engine.InputError(f"{args.out}: the output must be a .npz file")
    t = time.perf_counter()
    src = args.model
    if not registry.is_model_path(src) or not Path(src).exists():
        cache = registry.Cache(mirror=args.mirror, mirror_only=args.mirror is not None)
        if cache.registry.has(src):
            src = str(cache.path(cache.registry.model(src).file))
    m = engine.load(src)
    with atomic.atomic_path(args.out) as tmp:
        m.save(tmp)
    check = engine.load(args.out)  # the export must load back
    size = Path(args.out).stat().st_size
    ops = len(check.graph.ops)
    print(
        f"{args.out}: {ops} ops, {size / 1e6:.2f} MB, from {src} ({(time.perf_counter() - t) * 1e3:.0f} ms)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="a .tflite file, or a registry model name")
    p.add_argument("out", help="the .npz file to write")
    p.add_argument("--mirror", metavar="DIR", help="offline mirror folder for registry names")
    p.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    args = p.parse_args(argv)
    return guarded(export, args, args.debug)


if __name__ == "__main__":
    sys.exit(main())
