"""SQUARED_DIFFERENCE (kernels/squared_difference.cc) on float32, int32 and int8.

float32, int32: d = a - b; d * d in the type (int32 wraps as the reference's int arithmetic does).
int8: each input's offset value is shifted left by 7 and scaled by QuantizeMultiplierSmallerThanOneExp
(s_i / (2 * max(s1, s2))); the difference is squared in int32 and scaled by
(2 * max(s1, s2))**2 / (2**14 * s_out), then zp_out is added and the type's range clamps. A 256x256
table over the raw bytes is the kernel. The reference broadcasts up to 4 dimensions only
(BroadcastBinaryFunction4DSlow) and checks every multiplier < 1.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..graph import Graph, Op
from ..numerics.fixedpoint import multiply_by_quantized_multiplier_smaller_than_one_exp as mul_lt1
from ..numerics.fixedpoint import quantize_multiplier_smaller_than_one_exp
from ..numerics.gemmlowp import byte_values
from .broadcast import binary_table_runner, broadcast_shape
from .common import Prepared, Shape, per_tensor, require, tensors

LEFT_SHIFT = 7


@njit(cache=True)
def sqdiff_table(values, zp1, m1, sh1, zp2, m2, sh2, zpo, mo, sho):
    n = values.shape[0]
    table = np.empty((n, n), np.int64)
    for i in range(n):
        x = mul_lt1((values[i] - zp1) * (1 << LEFT_SHIFT), m1, sh1)
        for j in range(n):
            y = mul_lt1((values[j] - zp2) * (1 << LEFT_SHIFT), m2, sh2)
            d = x - y
            r = mul_lt1(d * d, mo, sho) + zpo
            table[i, j] = min(max(r, -128), 127)
    return table


def _multiplier(op: Op, real: float, what: str) -> tuple[int, int]:
    require(op, 0.0 < real < 1.0, f"{what} multiplier {real:g} outside (0, 1) (the reference aborts)")
    return quantize_multiplier_smaller_than_one_exp(real)


def _int8_table(op: Op, a, b, out) -> np.ndarray:
    (s1, zp1), (s2, zp2), (so, zpo) = (per_tensor(op, t) for t in (a, b, out))
    require(op, min(s1, s2, so) > 0, "scales must be positive")
    twice_max = 2.0 * float(max(np.float32(s1), np.float32(s2)))
    m1, sh1 = _multiplier(op, float(np.float32(s1)) / twice_max, "input 1")
    m2, sh2 = _multiplier(op, float(np.float32(s2)) / twice_max, "input 2")
    denom = float(np.float32(np.float32(1 << (2 * LEFT_SHIFT)) * np.float32(so)))
    mo, sho = _multiplier(op, twice_max * twice_max / denom, "output")
    return sqdiff_table(byte_values("int8"), zp1, m1, sh1, zp2, m2, sh2, zpo, mo, sho).astype(np.int8)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    (a, b), (out,) = tensors(op, g)
    allowed = ("float32", "int32", "int8")
    require(op, a.dtype in allowed, f"{a.describe()}: type {a.dtype} not supported (supported: {allowed})")
    require(op, b.dtype == a.dtype and out.dtype == a.dtype, f"inputs and output must all be {a.dtype}")
    s1, s2 = tuple(shapes[0]), tuple(shapes[1])
    out_shape = broadcast_shape(op, s1, s2)
    require(op, s1 == s2 or len(out_shape) <= 4, "broadcasting above 4 dimensions not supported")
    if a.dtype == "int8":
        table = _int8_table(op, a, b, out)
        return Prepared([out_shape], binary_table_runner(out_shape, s1, s2, table))

    def run(inputs: list, outputs: list, scratch: list) -> None:
        with np.errstate(all="ignore"):
            np.subtract(inputs[0], inputs[1], out=outputs[0])
            np.multiply(outputs[0], outputs[0], out=outputs[0])

    return Prepared([out_shape], run)
