"""One loaded model used from many Python threads at once gives the reference kernels' outputs.

The expected outputs come from TFLite's reference kernels (tests.oracle.reference_run_many), computed
once; every threaded run is compared with them. Batch sizes differ between threads, so plans for new
batch sizes are created while other threads run.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import engine
from tests.fuzz_worker import small_model_bytes
from tests.oracle import reference_run_many

pytestmark = pytest.mark.usefixtures("litert")

THREADS = 8
ROUNDS = 25
ROOT = Path(__file__).resolve().parents[1]


def thread_inputs(rng: np.random.Generator, shape: tuple, dtype, n_threads: int) -> list[list[np.ndarray]]:
    """Per thread: 3 distinct inputs, of batch 1, 2 and (1 + thread % 3)."""
    info = np.iinfo(dtype)
    out = []
    for k in range(n_threads):
        batches = [1, 2, 1 + k % 3]
        out.append([rng.integers(info.min, info.max + 1, (b, *shape[1:])).astype(dtype) for b in batches])
    return out


def hammer(
    jobs: list[tuple[engine.Model, list[np.ndarray], list[np.ndarray], bool]], rounds: int
) -> list[str]:
    """Run each job (model, inputs, expected outputs, keep_all) in its own thread, all started together."""
    errors: list[str] = []
    barrier = threading.Barrier(len(jobs))

    def work(k: int, model: engine.Model, xs: list[np.ndarray], want: list[np.ndarray], keep_all: bool):
        try:
            barrier.wait()
            for r in range(rounds):
                for j, (x, w) in enumerate(zip(xs, want)):
                    if keep_all:
                        got = model.run(x, keep_all=True)[model.outputs[0].name]
                    else:
                        got = model.run(x)[0]
                    if got.shape != w.shape or not np.array_equal(got, w):
                        errors.append(f"thread {k} round {r} input {j}: output differs from the reference")
        except Exception as e:  # noqa: BLE001
            errors.append(f"thread {k}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=work, args=(k, *job)) for k, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


def expected(model_src, inputs: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    flat = [x for xs in inputs for x in xs]
    refs = reference_run_many(model_src, [[x] for x in flat])
    it = iter(r["outputs"][0] for r in refs)
    return [[next(it) for _ in xs] for xs in inputs]


def test_one_model_eight_threads(models_dir):
    path = models_dir / "mnist_uint8.tflite"
    model = engine.load(path)
    inputs = thread_inputs(np.random.default_rng(0), model.inputs[0].shape, model.inputs[0].dtype, THREADS)
    want = expected(path, inputs)
    # serial runs agree with the reference first (so a threaded failure is about threads)
    for xs, ws in zip(inputs, want):
        for x, w in zip(xs, ws):
            np.testing.assert_array_equal(model.run(x)[0], w)
    jobs = [(model, xs, ws, k == THREADS - 1) for k, (xs, ws) in enumerate(zip(inputs, want))]
    errors = hammer(jobs, ROUNDS)
    assert not errors, "\n".join(errors[:20])


def test_two_models_interleaved_threads(models_dir):
    """Threads on different models (and two instances of one) run kernels truly concurrently."""
    path = models_dir / "mnist_uint8.tflite"
    small = small_model_bytes()
    mnist_a, mnist_b, small_m = engine.load(path), engine.load(path), engine.load(small)
    rng = np.random.default_rng(1)
    mi = thread_inputs(rng, mnist_a.inputs[0].shape, np.uint8, 2)
    si = thread_inputs(rng, small_m.inputs[0].shape, np.int8, 2)
    mw, sw = expected(path, mi), expected(small, si)
    jobs = [
        (mnist_a, mi[0], mw[0], False),
        (mnist_b, mi[1], mw[1], False),
        (small_m, si[0], sw[0], False),
        (small_m, si[1], sw[1], True),
        (mnist_a, mi[1], mw[1], False),
        (mnist_b, mi[0], mw[0], False),
    ]
    errors = hammer(jobs, ROUNDS)
    assert not errors, "\n".join(errors[:20])


WORKQUEUE_SCRIPT = """
import threading, numpy as np, engine
m1 = engine.load({path!r}); m2 = engine.load({path!r})
x, want = np.load({x!r}), np.load({want!r})
bad = []
def work(m):
    for _ in range(100):
        if not np.array_equal(m.run(x)[0], want): bad.append(1)
ts = [threading.Thread(target=work, args=(m,)) for m in (m1, m2, m1, m2)]
[t.start() for t in ts]; [t.join() for t in ts]
import numba
print("layer", numba.threading_layer(), "mismatches", len(bad))
"""


def test_two_models_threads_with_workqueue_layer(models_dir, tmp_path):
    """Numba's fallback threading layer (workqueue: no OpenMP/TBB on the machine) aborts the process when
    two threads launch parallel kernels at once; the engine must serialize them there. Batch 8 MNIST runs
    the parallel convolution builds; every threaded run must equal the reference kernels."""
    import os

    path = models_dir / "mnist_uint8.tflite"
    x = np.random.default_rng(21).integers(0, 256, (8, 28, 28, 1)).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "want.npy", reference_run_many(path, [[x]])[0]["outputs"][0])
    code = WORKQUEUE_SCRIPT.format(path=str(path), x=str(tmp_path / "x.npy"), want=str(tmp_path / "want.npy"))
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stderr[-1500:]}"
    assert "layer workqueue mismatches 0" in proc.stdout, proc.stdout


def test_interpreter_from_model_shares_the_model_safely(models_dir):
    """Interpreter.from_model(m).invoke() in threads while other threads call m.run(): every result is
    the reference's (the Interpreter has buffers of its own and takes the model's lock)."""
    path = models_dir / "mnist_uint8.tflite"
    model = engine.load(path)
    inputs = thread_inputs(np.random.default_rng(3), model.inputs[0].shape, np.uint8, 4)
    inputs = [[x[:1] for x in xs] for xs in inputs]  # batch 1: the size both ways in use
    want = expected(path, inputs)
    errors: list[str] = []
    barrier = threading.Barrier(4)

    def interpreter_work(k: int) -> None:
        it = engine.Interpreter.from_model(model)
        it.allocate_tensors()
        i_in, i_out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
        barrier.wait()
        for r in range(150):
            for j, (x, w) in enumerate(zip(inputs[k], want[k])):
                it.set_tensor(i_in, x)
                it.invoke()
                if not np.array_equal(it.get_tensor(i_out), w):
                    errors.append(f"interpreter {k} round {r} input {j}: differs from the reference")

    def run_work(k: int) -> None:
        barrier.wait()
        for r in range(150):
            for j, (x, w) in enumerate(zip(inputs[k], want[k])):
                if not np.array_equal(model.run(x)[0], w):
                    errors.append(f"Model.run {k} round {r} input {j}: differs from the reference")

    def guarded(fn, k):
        try:
            fn(k)
        except Exception as e:  # noqa: BLE001
            errors.append(f"thread {k}: {type(e).__name__}: {e}")

    jobs = [(interpreter_work, 0), (run_work, 1), (interpreter_work, 2), (run_work, 3)]
    threads = [threading.Thread(target=guarded, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, f"{len(errors)} wrong results:\n" + "\n".join(errors[:10])


TWO_PROCESSES_SCRIPT = """
import sys, numpy as np, engine
m = engine.load(sys.argv[1])
x = np.load(sys.argv[2])
outs = [m.run(x) for _ in range(int(sys.argv[3]))]
np.savez(sys.argv[4], *outs[-1])
same = all(all(np.array_equal(a, b) for a, b in zip(o, outs[0])) for o in outs)
print("stable", same)
"""


def test_two_engine_processes_at_once(models_dir, tmp_path):
    """Two engine processes run the SSD at the same time (contention for the cores, Numba's cache and
    threads); both finish with the reference kernels' outputs. A correctness test: no timing."""
    path = models_dir / "ssd_mobilenet_v1_coco_uint8.tflite"
    rng = np.random.default_rng(10)
    xs = [rng.integers(0, 256, (1, 300, 300, 3)).astype(np.uint8) for _ in range(2)]
    want = [r["outputs"] for r in reference_run_many(path, [[x] for x in xs])]
    procs = []
    for k, x in enumerate(xs):
        np.save(tmp_path / f"x{k}.npy", x)
        argv = [sys.executable, "-c", TWO_PROCESSES_SCRIPT, str(path), str(tmp_path / f"x{k}.npy"), "20"]
        argv.append(str(tmp_path / f"out{k}.npz"))
        procs.append(
            subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    for k, p in enumerate(procs):
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0 and "stable True" in out, f"process {k}: rc={p.returncode}\n{err[-1500:]}"
        with np.load(tmp_path / f"out{k}.npz") as z:
            got = [z[f"arr_{i}"] for i in range(len(want[k]))]
        for i, (g, w) in enumerate(zip(got, want[k])):
            assert np.array_equal(g, w), f"process {k} output {i} differs from the reference"
