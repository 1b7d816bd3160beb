"""kernels/aligned.py: the arrays the kernels read and write by 64-byte vectors start on a cache line."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.kernels import aligned


@pytest.mark.parametrize(
    "shape, dtype", [((3, 5), np.int16), ((7,), np.float64), ((0, 4), np.int8), ((2, 3, 4), np.uint8)]
)
def test_arrays_start_on_a_line(shape, dtype):
    a = aligned.array(shape, dtype)
    assert a.shape == shape and a.dtype == dtype and a.flags.c_contiguous
    assert a.size == 0 or a.ctypes.data % aligned.LINE == 0
    src = np.arange(int(np.prod(shape))).astype(dtype).reshape(shape)
    b = aligned.copy(src)
    assert np.array_equal(b, src) and not np.shares_memory(b, src)
    assert b.size == 0 or b.ctypes.data % aligned.LINE == 0


def test_a_plans_arrays_and_weights_start_on_lines(models_dir):
    """Activations, inputs, scratch, and the packed weights and constants of MNIST's convolutions and
    fully connected layers (their kernels' arguments 1 and 2)."""
    m = engine.load(models_dir / "mnist_uint8.tflite")
    m.run(np.zeros((2, *m.inputs[0].shape[1:]), m.inputs[0].dtype))
    plan = m.plan(2)
    owned = [*plan.buffers.values(), *(a for step in plan.steps for a in step.scratch)]
    assert owned and all(a.ctypes.data % aligned.LINE == 0 for a in owned)
    weights = [
        a
        for calls in plan._bound
        for fn, args in calls
        if fn.__name__.startswith(("conv2d", "fully_connected"))
        for a in args[1:3]
        if isinstance(a, np.ndarray) and a.size
    ]
    assert len(weights) >= 5 and all(a.ctypes.data % aligned.LINE == 0 for a in weights)
