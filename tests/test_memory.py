"""Memory: no growth over many inferences or many loads, and a bounded peak while loading.

Each measurement runs in a fresh subprocess so that the test session's own allocations do not blur
it. Resident memory is read from /proc/self/status (VmRSS; VmHWM for the peak, reset through
/proc/self/clear_refs); tracemalloc counts Python and numpy allocations exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20

PRELUDE = """
import gc, json, os, sys, time, tracemalloc
import numpy as np
import engine

def status(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024
    return 0

def zeros(m, batch=1):
    xs = [np.zeros((batch, *t.shape[1:]), t.dtype) for t in m.inputs]
    return xs[0] if len(xs) == 1 else xs
"""


def run_script(body: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + body, *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


INFERENCE_LOOP = """
m = engine.load(sys.argv[1])
rng = np.random.default_rng(0)
t = m.inputs[0]
xs = [rng.integers(0, 256, (1, *t.shape[1:])).astype(t.dtype) for _ in range(16)]
for i in range(500):  # warm-up: plans, numba dispatch caches, allocator pools
    m.run(xs[i % 16])
gc.collect()
rss0 = status('VmRSS')
tracemalloc.start()
traced0 = tracemalloc.get_traced_memory()[0]
n = int(sys.argv[2])
t0 = time.perf_counter()
for i in range(n):
    out = m.run(xs[i % 16])
elapsed = time.perf_counter() - t0
del out
gc.collect()
traced1 = tracemalloc.get_traced_memory()[0]
tracemalloc.stop()
rss1 = status('VmRSS')
print(json.dumps(dict(rss_growth=rss1 - rss0, traced_growth=traced1 - traced0, ms=elapsed / n * 1e3)))
"""


def test_no_growth_over_10000_inferences(models_dir):
    r = run_script(INFERENCE_LOOP, str(models_dir / "mnist_uint8.tflite"), "10000")
    assert r["rss_growth"] < 5 * MB, (
        f"resident memory grew {r['rss_growth'] / MB:.2f} MB over 10,000 runs ({r})"
    )
    assert r["traced_growth"] < 256 * 1024, f"Python/numpy allocations grew {r['traced_growth']} bytes ({r})"


REPEATED_LOADS = """
path = sys.argv[1]
def once():
    m = engine.load(path)
    m.run(zeros(m))
    m.run(zeros(m, 3))
for _ in range(5):
    once()
gc.collect()
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
rss0 = status('VmRSS')
for _ in range(int(sys.argv[2])):
    once()
gc.collect()
print(json.dumps(dict(traced_growth=tracemalloc.get_traced_memory()[0] - base, rss_growth=status('VmRSS') - rss0)))
"""


def test_models_are_freed_after_use(models_dir):
    """Loading, running and dropping a model 60 times leaves nothing behind (no global registry)."""
    r = run_script(REPEATED_LOADS, str(models_dir / "mnist_uint8.tflite"), "60")
    assert r["traced_growth"] < 512 * 1024, r
    assert r["rss_growth"] < 10 * MB, r


LOAD_PEAK = """
path = sys.argv[1]
m0 = engine.load(path)  # the first load brings in numba's compiled kernels: not what is measured
m0.run(zeros(m0))
del m0
gc.collect()
rss0 = status('VmRSS')
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # resets VmHWM, the peak resident size
tracemalloc.start()
m = engine.load(path)
traced_now, traced_peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
hwm = status('VmHWM')
blocks = {}
plan = m.plan(1)
scratch = [a for step in plan.steps for a in getattr(step, 'scratch', [])]  # the plan's scratch arena
for a in [*plan.buffers.values(), *scratch]:
    base = a
    while isinstance(base.base, np.ndarray):
        base = base.base
    blocks[id(base)] = base.nbytes
print(json.dumps(dict(file=os.path.getsize(path), planned=sum(blocks.values()), traced_peak=traced_peak,
                      traced_retained=traced_now, rss_peak_delta=hwm - rss0)))
"""

# Python objects of the graph (tensors, ops, options, closures) and interpreter noise: a fixed allowance
BASELINE_ALLOWANCE = 4 * MB


@pytest.mark.parametrize("name", ["mnist_uint8", "ssd_mobilenet_v1_coco_uint8"])
def test_load_peak_memory(models_dir, name):
    """Peak memory while loading (delta over a warmed-up process) stays under 3x the file size plus
    the planned activation buffers (batch 1: activations and the scratch arena), plus a fixed
    allowance for Python objects."""
    r = run_script(LOAD_PEAK, str(models_dir / f"{name}.tflite"))
    limit = 3 * r["file"] + r["planned"] + BASELINE_ALLOWANCE
    detail = ", ".join(f"{k} {v / MB:.2f} MB" for k, v in r.items()) + f"; limit {limit / MB:.2f} MB"
    assert r["traced_peak"] < limit, f"allocations peaked too high while loading: {detail}"
    if Path("/proc/self/clear_refs").exists():
        assert r["rss_peak_delta"] < limit, f"resident memory peaked too high while loading: {detail}"
