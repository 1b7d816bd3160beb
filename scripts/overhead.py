"""A run's fixed costs (issue 13): per-op overhead and a cached model's load to first result.

    python scripts/overhead.py                       # both figures, 1 thread
    python scripts/overhead.py --models mnist ssd    # load to first result of these models

Per-op overhead: a chain of N RELUs on an int8 [1, 4] tensor (each op a table lookup of 4 bytes),
(time of N ops - time of 1 op) / (N - 1), medians of interleaved repetitions in this process.
Load to first result: a fresh Python process imports the engine, loads the model (kernels from
Numba's on-disk cache, bytecode from .pyc files: a first process fills both) and runs it once;
wall seconds from the interpreter's start. On a shared machine both figures move with the load: compare runs taken together.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRESH = """
import time
t0 = time.perf_counter()
import numpy as np
import engine
m = engine.load({model!r})
x = np.zeros((1, *m.inputs[0].shape[1:]), m.inputs[0].dtype)
m.run(x)
print(time.perf_counter() - t0)
"""


def per_op_overhead(n: int, rounds: int) -> tuple[float, float]:
    """(seconds per op, seconds per run of a one-op model)."""
    import numba

    import engine
    from tests.test_overhead import relu_chain

    numba.set_num_threads(1)
    x = np.ones((1, 4), np.int8)
    one, chain = engine.load(relu_chain(1)), engine.load(relu_chain(n))
    t1, tn = [], []
    for _ in range(rounds):
        for model, out, reps in ((one, t1, 2000), (chain, tn, 2000 // n + 1)):
            run = model.run
            t0 = time.perf_counter()
            for _ in range(reps):
                run(x)
            out.append((time.perf_counter() - t0) / reps)
    a, b = statistics.median(t1), statistics.median(tn)
    return (b - a) / (n - 1), a


def load_to_first_result(model: str, repeat: int) -> float:
    """Median wall seconds of `repeat` fresh processes (after one that fills the caches)."""
    code = FRESH.format(model=model)
    # bytecode cached as an installed package has it (an environment may turn the .pyc files off)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    runs = []
    for _ in range(repeat + 1):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        runs.append(float(out.stdout.split()[-1]))
    return statistics.median(runs[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ops", type=int, default=200, help="length of the RELU chain")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--models", nargs="*", default=["micro_speech", "mnist", "ssd"])
    ap.add_argument("--repeat", type=int, default=3, help="fresh processes per model")
    args = ap.parse_args()
    per_op, one = per_op_overhead(args.ops, args.rounds)
    print(
        f"per-op overhead: {per_op * 1e6:.3f} us ({args.ops} RELUs; a one-op model runs in {one * 1e6:.2f} us)"
    )
    for model in args.models:
        print(
            f"load to first result, fresh process: {model} {load_to_first_result(model, args.repeat):.2f} s"
        )


if __name__ == "__main__":
    main()
