"""Long local fuzz runs of engine.load + run(): mutated .tflite and .npz bytes in crash-isolated workers.

    python scripts/fuzz.py --cases 50000                      # until 50,000 cases
    python scripts/fuzz.py --minutes 30 --seed 7              # for 30 minutes, from seed 7
    python scripts/fuzz.py --bases mnist_tflite,/path/model.tflite --cases 5000

Bases: mnist_tflite, mnist_npz (the shared MNIST model and its .npz), small_tflite, small_npz (a small
built int8 graph), or paths to .tflite / .npz files. Cases are drawn by hypothesis from consecutive seeds
in rounds (one round = --round cases per base); every failure (a crash, hang, or exception outside
engine.EngineError) is written to --out as a file engine.load() reproduces, next to its JSON descriptor.
Exit status 1 when anything failed. See tests/fuzz_worker.py for the mutations and the worker protocol.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzz_worker import (
    generate_cases,
    is_failure,
    npz_bytes,
    run_cases,
    shared_models_dir,
    small_model_bytes,
    write_reproducer,
)

NAMED = ("mnist_tflite", "mnist_npz", "small_tflite", "small_npz")


def prepare_bases(names: list[str], tmp: Path) -> dict[str, str]:
    out = {}
    for name in names:
        if name in NAMED:
            src = (
                small_model_bytes()
                if name.startswith("small")
                else (shared_models_dir() / "mnist_uint8.tflite").read_bytes()
            )
            data = npz_bytes(src) if name.endswith("_npz") else src
        else:
            path = Path(name)
            data = path.read_bytes()
            name = path.name
        out[name] = str(tmp / name)
        Path(out[name]).write_bytes(data)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=0, help="stop after this many cases (0: no limit)")
    ap.add_argument("--minutes", type=float, default=0, help="stop after this much time (0: no limit)")
    ap.add_argument("--seed", type=int, default=1, help="first hypothesis seed")
    ap.add_argument("--bases", default=",".join(NAMED), help="comma-separated base names or model paths")
    ap.add_argument("--round", type=int, default=500, help="cases per base per round")
    ap.add_argument("--batch-size", type=int, default=250, help="cases per worker process")
    ap.add_argument("--workers", type=int, default=2, help="worker processes at once")
    ap.add_argument("--case-timeout", type=float, default=60.0, help="seconds before a case counts as hung")
    ap.add_argument(
        "--out", type=Path, default=Path("/tmp/engine_fuzz_failures"), help="where failing cases are written"
    )
    args = ap.parse_args(argv)
    if not args.cases and not args.minutes:
        args.cases = 10_000

    deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
    totals: Counter = Counter()
    failures = 0
    seed = args.seed
    done = 0
    with tempfile.TemporaryDirectory(prefix="fuzz_bases_") as d:
        bases = prepare_bases([b for b in args.bases.split(",") if b], Path(d))
        while True:
            for base, path in bases.items():
                if (args.cases and done >= args.cases) or (deadline and time.monotonic() > deadline):
                    break
                n = min(args.round, args.cases - done) if args.cases else args.round
                cases = generate_cases(base, Path(path).read_bytes(), n, seed=seed)
                t0 = time.monotonic()
                results = run_cases(
                    cases,
                    bases,
                    batch_size=args.batch_size,
                    workers=args.workers,
                    case_timeout=args.case_timeout,
                )
                outcomes = Counter(r.split(" ")[0] for r in results)
                totals.update(outcomes)
                done += len(cases)
                print(
                    f"seed {seed} {base}: {len(cases)} cases in {time.monotonic() - t0:.1f} s {dict(outcomes)}",
                    flush=True,
                )
                for case, result in zip(cases, results):
                    if is_failure(result):
                        failures += 1
                        path_out = write_reproducer(case, bases, args.out)
                        print(
                            f"  FAIL {result[:400]}\n       reproduce: engine.load('{path_out}')", flush=True
                        )
            else:
                seed += 1
                continue
            break
    print(f"{done} cases, {failures} failures; outcomes {dict(totals)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
