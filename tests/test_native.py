"""kernels/native.py: bound kernel calls run as one native call, with the arguments Numba would pass.

Model.run takes this path, so every oracle suite on outputs checks it; these check the words themselves
against NumPy, which calls go native and which stay Python, what a failing kernel does, and two models'
native runs against LiteRT's reference kernels.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from numba import njit

import engine
from engine.executor import _Calls
from engine.kernels import native
from engine.kernels.native import native_call, native_table, run_calls
from tests.oracle import reference_run_many

pytestmark = pytest.mark.skipif(not native.ENABLED, reason="native calls are x86-64's")


class Shape(NamedTuple):
    rows: int
    cols: int
    flip: bool


@njit(nogil=True)
def _mix(x, w, shape, k, out):
    """Reads every word kind: arrays of 1-3 dims (a strided view too), a named tuple, an int."""
    for r in range(shape.rows):
        for c in range(shape.cols):
            v = np.int64(x[r, c]) * w[c % w.shape[0]] + k
            out[r, c, 0] = -v if shape.flip else v


@njit(nogil=True)
def _scaled(x, s, out):
    for i in range(x.size):
        out[i] = x[i] * s


@njit(nogil=True)
def _checked(x, out):
    for i in range(x.size):
        if x[i] < 0:
            raise ValueError("negative input")
        out[i] = x[i]


def _mix_args(flip: bool, k: int):
    x = np.arange(24, dtype=np.int8).reshape(4, 6)[:, ::2]  # strided: layout A
    w = np.array([3, -5, 7], np.int32)
    return x, w, Shape(4, 3, flip), k, np.zeros((4, 3, 1), np.int64)


def _mix_want(x, w, shape, k) -> np.ndarray:
    v = x[: shape.rows, : shape.cols].astype(np.int64) * w[np.arange(shape.cols) % w.size].astype(np.int64) + k
    return (-v if shape.flip else v)[..., None]


@pytest.mark.parametrize("flip,k", [(False, 0), (True, -(2**40)), (False, 2**62)])
def test_native_calls_compute_what_numpy_does(flip, k):
    args = _mix_args(flip, k)
    _mix(*args)  # (compiles it for these types; native_call takes compiled functions)
    args[-1][...] = 0
    call = native_call(_mix, args)
    assert call is not None
    assert run_calls(*native_table([call])) is None
    np.testing.assert_array_equal(args[-1], _mix_want(*args[:4]))


def test_consecutive_calls_read_each_others_outputs():
    x = np.arange(6, dtype=np.int32)
    a, b = np.zeros(6, np.int32), np.zeros(6, np.int32)
    _checked(x, a)
    calls = [native_call(_checked, (x, a)), native_call(_checked, (a, b))]
    a[:] = 0
    assert run_calls(*native_table(calls)) is None
    assert (b == x).all()


def test_floats_and_uncompiled_calls_stay_python():
    x, out = np.ones(4, np.float32), np.zeros(4, np.float32)
    _scaled(x, 2.5, out)
    assert native_call(_scaled, (x, 2.5, out)) is None  # a double travels in a vector register
    assert native_call(_scaled, (x.astype(np.int64), 2, out.astype(np.int64))) is None  # not compiled
    assert native_call(np.copyto, (out, x)) is None


def test_a_failing_kernel_stops_the_calls_and_raises_its_error():
    x, a, b = np.arange(4, dtype=np.int64), np.zeros(4, np.int64), np.zeros(4, np.int64)
    _checked(x, a)
    calls = [(_checked, (x, a)), (_checked, (x - 10, b)), (_checked, (x, b))]
    assert run_calls(*native_table([native_call(fn, args) for fn, args in calls])) == 1
    assert (b == 0).all()  # (the third call did not run)
    plan_calls = _Calls([calls])
    plan_calls.resolve()
    assert len(plan_calls.runs) == 1 and id(plan_calls.runs[0][1]) in plan_calls.native
    with pytest.raises(ValueError, match="negative input"):
        plan_calls.run()


@pytest.mark.parametrize("name", ["mnist_uint8", "micro_speech_int8"])
def test_model_runs_are_native_and_exact(name, models_dir):
    """After the first run, every kernel call of these models' serial plans is in a native run (the rest
    are NumPy's), and runs on new inputs give the reference kernels' outputs."""
    path = models_dir / f"{name}.tflite"
    m = engine.load(path)
    rng = np.random.default_rng(1)
    xs = [rng.integers(0, 255, (1, *m.inputs[0].shape[1:])).astype(m.inputs[0].dtype) for _ in range(4)]
    engine.set_num_threads(1)
    try:
        got = [[o.copy() for o in m.run(x)] for x in xs]
        plan = m.plan(1)
        runs = plan._serial.runs
        tables = [args[0] for _, args in runs if id(args) in plan._serial.native]
        assert tables
        assert all(fn.__module__.startswith("numpy") for fn, args in runs if id(args) not in plan._serial.native)
        assert sum(map(len, tables)) + len(runs) - len(tables) == len(plan._serial.flat)
    finally:
        engine.set_num_threads(engine.runtime.usable_cores())
    for outs, ref in zip(got, reference_run_many(path, [[x] for x in xs])):
        for o, want in zip(outs, ref["outputs"]):
            np.testing.assert_array_equal(o, want)
