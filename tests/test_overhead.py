"""A run's per-op overhead (issue 13): bound kernel calls, compiled entry points, the plan's own input.

Timing is scripts/overhead.py's business (figures, never timed tests); these check the mechanism.
"""

from __future__ import annotations

import functools
import gc
import types
import weakref

import numpy as np
import pytest
from numba.core.dispatcher import Dispatcher

import engine
from engine.model import MAX_PLANS
from engine.ops.common import view
from tests.tflite_builder import build_model


def relu_chain(n: int, size: int = 4) -> bytes:
    """n RELUs in a row on an int8 [1, size] tensor: the cheapest ops there are."""
    q = {"scale": [0.1], "zero_point": [-3]}
    tensors = [dict(name=f"t{i}", shape=[1, size], dtype="int8", **q) for i in range(n + 1)]
    ops = [{"op": "RELU", "inputs": [i], "outputs": [i + 1]} for i in range(n)]
    return build_model(tensors=tensors, ops=ops, inputs=[0], outputs=[n])


@pytest.mark.parametrize("name", ["mnist", "micro_speech"])
def test_runs_call_compiled_kernels_directly(name):
    """After the first run, every call of these models' plans is a kernel's compiled entry point (or a
    NumPy function): no dispatcher types the arguments again, no closure of an op runs."""
    m = engine.load(name)
    x = np.zeros((1, *m.inputs[0].shape[1:]), m.inputs[0].dtype)
    plan = m.plan(1)
    for threads in {1, engine.runtime.usable_cores()}:  # the serial calls, and the threaded ones
        engine.set_num_threads(threads)
        m.run(x)
    assert plan._serial.flat and plan._threaded.flat and plan._serial.resolved
    for calls in (plan._serial, plan._threaded):  # (the threaded calls: where the pace has run them)
        for fn, _ in calls.flat if calls.resolved else []:
            assert not isinstance(fn, (Dispatcher, types.FunctionType, functools.partial)), (
                f"{fn} runs Python"
            )


def test_each_run_reads_its_own_input():
    """The plan copies each input into its own buffer: the bound calls see every new input, and the caller's
    array is neither kept nor written."""
    m = engine.load(relu_chain(3))
    x = np.arange(-8, 8, dtype=np.int8).reshape(4, 4)
    want = [m.run(x[k : k + 1])[0] for k in range(4)]  # batch 1, four different inputs
    assert len({w.tobytes() for w in want}) == 4
    again = [m.run(np.ascontiguousarray(x[k : k + 1]))[0] for k in range(4)]
    assert all((a == w).all() for a, w in zip(again, want))
    before = x.copy()
    (batch,) = m.run(x)
    assert (batch == np.concatenate(want)).all() and (x == before).all()
    x[0, 0] = 100  # the caller's array changes after the run: nothing the plan holds sees it
    assert (m.run(before[:1])[0] == want[0]).all()


def test_chain_matches_the_reference_arithmetic():
    """The chain's result is one RELU's (a RELU of a RELU on one scale changes nothing more)."""
    one, many = engine.load(relu_chain(1)), engine.load(relu_chain(50))
    x = np.arange(-128, 128, dtype=np.int8).reshape(64, 4)
    assert (one.run(x)[0] == many.run(x)[0]).all()
    assert (one.run(x)[0] == np.maximum(x, -3)).all()  # zero point -3: RELU clamps below it


def test_view_never_copies():
    a = np.arange(12, dtype=np.int8).reshape(3, 4)
    assert np.shares_memory(view(a), a) and view(a, (4, 3)).shape == (4, 3)
    with pytest.raises(ValueError):
        view(a[:, :3])  # a bound call would write a copy, never the plan's array


def test_the_short_way_of_repeated_runs_is_exact(models_dir):
    """A run like the last one (one array, same shape and dtype) goes straight to the plan (Model._remember):
    its answers stay the oracle's through changes of batch, strided inputs, and plans dropped and made."""
    path = models_dir / "mnist_uint8.tflite"
    m = engine.load(path)
    previous = engine.get_num_threads()
    engine.set_num_threads(1)  # (at more, a batch runs in lanes: tests/test_sub_batch.py)
    try:
        _short_way_runs(path, m)
    finally:
        engine.set_num_threads(previous)


def _short_way_runs(path, m) -> None:
    from tests.oracle import reference_run_many

    x = np.random.default_rng(9).integers(0, 256, (6, 28, 28, 1)).astype(np.uint8)
    want = np.concatenate(
        [r["outputs"][0] for r in reference_run_many(path, [[x[k : k + 1]] for k in range(6)])]
    )
    runs = [x[:1], x[1:2], x[2:3], x[:3], x[3:6], x[::2], x[4:5], x[5:6], x[1:4], x[2:5]]
    rows = [[0], [1], [2], [0, 1, 2], [3, 4, 5], [0, 2, 4], [4], [5], [1, 2, 3], [2, 3, 4]]
    for xs, r in zip(runs, rows):
        (got,) = m.run(xs)
        assert np.array_equal(got, want[r]), r
    assert m._last.run is not None and m._last.run.kinds == (((3, 28, 28, 1), np.dtype(np.uint8)),)  # armed
    for batch in range(7, 7 + MAX_PLANS):  # push batch 3 out of the plan cache
        m.run(np.zeros((batch, 28, 28, 1), np.uint8))
    assert m._last.run is None and (3, False) not in m._plans
    for _ in range(2):
        (got,) = m.run(x[1:4])
        assert np.array_equal(got, want[[1, 2, 3]])


def test_a_dropped_model_is_freed_at_once():
    """The short way's function holds no reference to its model: a model let go after runs frees its
    plans (their buffers) at once, with the cycle collector off, not at some later collection."""
    m = engine.load(relu_chain(3))
    for _ in range(3):
        m.run(np.ones((2, 4), np.int8))
    assert m._last.run is not None  # (armed: the short way is in use)
    gone = weakref.ref(m)
    gc.disable()
    try:
        del m
        assert gone() is None
    finally:
        gc.enable()


def test_the_short_way_with_two_inputs_and_lanes():
    """Two inputs: a list or a tuple like the last run's takes the short way, a dict or other shapes the
    whole way, each equal to the oracle; a batch armed at one thread still runs in lanes at two."""
    from tests.harness import Net, cached_reference

    net = Net()
    a, b = net.input([1, 5], "int8", 0.1, 2), net.input([1, 5], "int8", 0.2, -3)
    net.op("ADD", [a, b], [net.tensor([1, 5], "int8", 0.25, 1)], "add")
    model = net.build()
    m = engine.load(model)
    rng = np.random.default_rng(4)
    xs = [rng.integers(-128, 128, (6, 5)).astype(np.int8) for _ in range(2)]
    (want,) = cached_reference(model, [xs])[0]["outputs"]
    previous = engine.get_num_threads()
    try:
        engine.set_num_threads(1)
        for x in (xs, tuple(xs), xs, [xs[0][:2], xs[1][:2]], dict(zip(("t0", "t1"), xs)), xs, tuple(xs)):
            batch = len(next(iter(x.values())) if isinstance(x, dict) else x[0])
            assert np.array_equal(m.run(x)[0], want[:batch])
        assert m._last.run is not None and m._last.run.kinds[0][0] == (6, 5)
        if engine.runtime.usable_cores() > 1:
            engine.set_num_threads(2)
            assert np.array_equal(m.run(xs)[0], want) and m._lane_copies
    finally:
        engine.set_num_threads(previous)


def test_the_short_way_at_one_thread_and_at_more(models_dir):
    """The short way runs a plan's calls as one native call at one thread, the input copied in there
    (native.run_calls_fed); at more threads that call runs nothing and the plan's paced runs take over:
    both equal the oracle, with the input as an array, a list of one, or a view with steps (forward or
    backward)."""
    from tests.oracle import reference_run_many

    path = models_dir / "zoo" / "ad01_int8.tflite"  # (ten FULLY_CONNECTED: all native)
    m = engine.load(path)
    xs = np.random.default_rng(5).integers(-128, 128, (4, 1, *m.inputs[0].shape[1:])).astype(np.int8)
    want = [r["outputs"][0] for r in reference_run_many(path, [[x] for x in xs])]
    previous = engine.get_num_threads()
    try:
        for threads in dict.fromkeys([1, min(2, engine.runtime.usable_cores()), 1]):
            engine.set_num_threads(threads)
            for k in range(9):
                x = xs[k % 4]
                wide = np.zeros((2, x.shape[1] * 3), np.int8)
                wide[1, ::3] = x[0]
                backwards = np.ascontiguousarray(x[:, ::-1])[:, ::-1]  # (negative strides)
                given = [x, [x], wide[1:, ::3], backwards][k % 4]
                assert np.array_equal(m.run(given)[0], want[k % 4]), (threads, k)
            plan = m._plans[(1, False)]
            assert m._last.run is not None and plan._serial.alone is not None
            assert threads == 1 or plan._threaded is not None  # (paced: calibrated at two threads)
    finally:
        engine.set_num_threads(previous)
