"""Contention cases: the engine and LiteRT XNNPACK when the CPU is shared (issue 13).

    busy: one process of the runner beside one busy process (a pure-Python spin loop, pinned nowhere);
    two:  two processes of the runner started together.

Each runner process loads the model at its default thread count (the engine's: the cores this process
may use; LiteRT's: the same count, given), warms up, says it is ready, and waits; once every process
of the case is ready, all start timing at the same instant for the same wall time. Figures are each
process's median time per image. The collapse this guards against is intermittent (it depends on how
the processes' threads happen to land), so run several rounds and look at every one.

    python -m benchmarks.contention MODEL.tflite --rounds 5        # a table of every round
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNERS = ("engine", "litert_xnnpack")
KINDS = ("busy", "two")
BUSY_LOOP = "while True: pass"


def _worker(runner: str, path: str, seconds: float) -> None:
    """One runner process: load, warm up, 'ready', wait for 'go', time single images for `seconds`."""
    import numpy as np

    if runner == "engine":
        import engine

        m = engine.load(path)
        t = m.inputs[0]
        x = _random(np, t.dtype, (1, *t.shape[1:]))

        def run():
            return m.run(x)
    else:
        from ai_edge_litert.interpreter import Interpreter

        it = Interpreter(model_path=path, num_threads=_usable_cores())
        it.allocate_tensors()
        d = it.get_input_details()[0]
        x = _random(np, d["dtype"], tuple(d["shape"]))

        def run():
            it.set_tensor(d["index"], x)
            it.invoke()

    for _ in range(3):
        run()
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    print(json.dumps({"ms_per_image": statistics.median(times) * 1e3, "images": len(times)}), flush=True)


def _usable_cores() -> int:
    """The engine's default thread count (engine/runtime.py), without importing the engine (Numba's
    threads) into a LiteRT process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_engine_runtime", ROOT / "engine" / "runtime.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.usable_cores()


def _random(np, dtype, shape):
    info = np.iinfo(dtype)
    return np.random.default_rng(0).integers(info.min, info.max + 1, shape).astype(dtype)


def run_case(kind: str, runner: str, path: Path, seconds: float) -> list[float]:
    """Per-process median ms per image of `runner` in contention case `kind`."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.contention",
        "--worker",
        runner,
        str(path),
        "--seconds",
        str(seconds),
    ]
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if kind == "busy" else None
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2 if kind == "two" else 1)
    ]
    try:
        for p in procs:  # every process loaded and warm before any timing starts
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError(f"{runner} worker failed before timing ({kind} case)")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        out = [json.loads(p.stdout.readline())["ms_per_image"] for p in procs]
        for p in procs:
            p.wait(timeout=60)
        return out
    finally:
        for p in [*procs, *([busy] if busy else [])]:
            if p.poll() is None:
                p.kill()
                p.wait()


def contention_rounds(path: Path, rounds: int, seconds: float, log=None) -> list[dict]:
    """rounds x (busy, two) x (engine, XNNPACK), interleaved. Each entry: the round, the case, each
    runner's per-process medians, and the engine's worst process over XNNPACK's worst."""
    out = []
    for r in range(rounds):
        for kind in KINDS:
            ms = {runner: run_case(kind, runner, path, seconds) for runner in RUNNERS}
            entry = {"round": r, "case": kind, "ms_per_image": ms}
            entry["engine_time_ratio"] = max(ms["engine"]) / max(ms["litert_xnnpack"])
            out.append(entry)
            if log:
                log(format_entry(entry))
    return out


def format_entry(e: dict) -> str:
    ms = e["ms_per_image"]
    fmt = "/".join
    return (
        f"round {e['round']} {e['case']:>4}: engine {fmt(f'{v:.1f}' for v in ms['engine'])} ms, "
        f"XNNPACK {fmt(f'{v:.1f}' for v in ms['litert_xnnpack'])} ms, engine/XNNPACK {e['engine_time_ratio']:.2f}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0, help="timed wall time per process")
    ap.add_argument("--worker", choices=RUNNERS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        _worker(args.worker, str(args.model), args.seconds)
        return 0
    contention_rounds(args.model, args.rounds, args.seconds, log=print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
