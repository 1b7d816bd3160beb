"""int16 activations with int8 weights (TensorFlow's 16x8 mode) against TFLite's reference kernels.

One-op graphs, several variants of an op side by side in one model; inputs cover the whole int16 range
(every value for the one-input ops), batch 1 and batch > 1, per-channel weights, broadcasting.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_ops_elementwise import Net, check, run_sets

pytestmark = pytest.mark.usefixtures("litert")

F32 = np.float32
POT = [2.0**-12, 2.0**-11, 2.0**-15, 2.0**-10]


def all_int16(shape=(1, 256, 256)) -> np.ndarray:
    """The 65536 int16 values laid along a [1, 256, 256] tensor."""
    return np.arange(-32768, 32768, dtype=np.int16).reshape(shape)


def unary_net(op: str, scales_in, scale_out, out_dtype="int16", zp_out=0, **options) -> Net:
    """One variant per input scale, each with its own graph input (fed the same values)."""
    net = Net()
    for s in scales_in:
        x = net.input([1, 256, 256], "int16", s, 0)
        y = net.tensor([1, 256, 256], out_dtype, scale_out, zp_out)
        net.op(op, [x], [y], f"{op} s_in={s:g}", **options)
    return net


def exhaustive_sets(net: Net) -> list[list[np.ndarray]]:
    """Every int16 value at batch 1, and at batch 3 (the values, shuffled, and again)."""
    x = all_int16()
    shuffled = np.random.default_rng(0).permutation(x.reshape(-1)).reshape(x.shape)
    xb = np.concatenate([x, shuffled, x])
    return [[x] * len(net.inputs), [xb] * len(net.inputs)]


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
def test_sigmoid_tanh_every_value(op):
    rng = np.random.default_rng(1)
    scales = [*POT[:2], *(float(F32(10 ** rng.uniform(-5.5, -3))) for _ in range(4))]
    net = unary_net(op, scales, 2.0**-15)
    check(net, exhaustive_sets(net))
