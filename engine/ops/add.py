"""ADD on uint8/int8 (kernels/add.cc Prepare, reference_ops / reference_integer_ops AddElementwise).

Both inputs are brought to a common scale with 20 bits of headroom (left_shift = 20), each through
its own multiplier below one, summed, and scaled to the output:
  x_i = MulSmallerThanOneExp((q_i - zp_i) << 20, m_i, s_i)
  out = clamp(MulSmallerThanOneExp(x_1 + x_2, m_out, s_out) + zp_out)
The real multipliers are computed in double from the float32 scales:
  twice = 2 * max(s1, s2); m_i = s_i / twice; m_out = twice / (2**20 * s_out).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..graph import Graph, Op
from ..numerics.fixedpoint import multiply_by_quantized_multiplier_smaller_than_one_exp as mul_lt1
from ..numerics.fixedpoint import quantize_multiplier_smaller_than_one_exp
from ..numerics.gemmlowp import byte_values
from ..profiles import litert, litert_builtin, litert_xnn, profile_of, tflm
from . import arith_plain
from .broadcast import binary_8bit, binary_table_runner
from .common import Prepared, Shape, fused_activation, per_tensor, require
from .elementwise16 import prepare_binary16

LEFT_SHIFT = 20


class Rescale(NamedTuple):
    """(q + offset) scaled by MultiplyByQuantizedMultiplierSmallerThanOneExp(multiplier, shift)."""

    offset: int
    multiplier: int
    shift: int


@njit(cache=True)
def add_table(v1, v2, in1, in2, out, lo, hi, left_shift):
    """table[i, j] = the reference's output for raw bytes i (input 1) and j (input 2): each input
    rescaled (in1, in2), the sum rescaled by out, whose offset is the output zero point."""
    n1, n2 = v1.shape[0], v2.shape[0]
    x1 = np.empty(n1, np.int64)
    x2 = np.empty(n2, np.int64)
    for i in range(n1):
        x1[i] = mul_lt1((v1[i] + in1.offset) * (1 << left_shift), in1.multiplier, in1.shift)
    for j in range(n2):
        x2[j] = mul_lt1((v2[j] + in2.offset) * (1 << left_shift), in2.multiplier, in2.shift)
    table = np.empty((n1, n2), np.int64)
    for i in range(n1):
        for j in range(n2):
            r = mul_lt1(x1[i] + x2[j], out.multiplier, out.shift) + out.offset
            table[i, j] = min(max(r, lo), hi)
    return table


def prepare_add_like(op: Op, g: Graph, shapes: list[Shape | None], sign: int) -> Prepared:
    """ADD (sign 1) and SUB (sign -1: the reference runs the add kernel with input 2's multiplier negated)."""
    if g.tensors[op.inputs[0]].dtype == "int16":
        return prepare_binary16(op, g, shapes)
    a, b, out, out_shape = binary_8bit(op, g, shapes)
    (s1, zp1), (s2, zp2), (so, zpo) = (per_tensor(op, t) for t in (a, b, out))
    twice = 2.0 * max(s1, s2)  # float32 * 2 is exact; the divisions below are in double
    real_out = twice / (float(1 << LEFT_SHIFT) * so)
    require(op, real_out < 1.0, f"output scale {so:g} too small for input scales {s1:g}, {s2:g}")
    m1, sh1 = quantize_multiplier_smaller_than_one_exp(s1 / twice)
    m2, sh2 = quantize_multiplier_smaller_than_one_exp(s2 / twice)
    mo, sho = quantize_multiplier_smaller_than_one_exp(real_out)
    lo, hi = fused_activation(op, out)
    if sign < 0 and profile_of(g) == "tflm":  # TFLite Micro's SUB: rescaled inputs subtracted
        table = tflm.sub_table((s1, s2, so), (zp1, zp2, zpo), lo, hi)
        return Prepared([out_shape], binary_table_runner(out_shape, shapes[0], shapes[1], table))
    if profile_of(g) == "litert" and litert.delegated(op, g):  # XNNPACK's integer add
        params = litert_xnn.add_params(s1, s2, so, sign)
        table = litert_xnn.add_table((a.dtype, b.dtype), (zp1, zp2, zpo), params, lo, hi).astype(out.np_dtype)
        return Prepared([out_shape], binary_table_runner(out_shape, shapes[0], shapes[1], table))
    in1, in2, rescale_out = Rescale(-zp1, m1, sh1), Rescale(-zp2, sign * m2, sh2), Rescale(zpo, mo, sho)
    values1, values2 = byte_values(a.dtype), byte_values(b.dtype)
    table = add_table(values1, values2, in1, in2, rescale_out, lo, hi, LEFT_SHIFT).astype(out.np_dtype)
    if profile_of(g) == "litert" and sign > 0:  # builtin ADD: NEON blocks, a scalar tail (builtin SUB: scalar)
        info = np.iinfo(out.np_dtype)
        bounds = (lo, hi, int(info.min), int(info.max))
        neon = litert_builtin.add_table(values1, values2, tuple(in1), tuple(in2), tuple(rescale_out), bounds)
        run = litert_builtin.blocks_runner(out_shape, shapes, neon.astype(out.np_dtype), table, a.dtype)
        return Prepared([out_shape], run)
    return Prepared([out_shape], binary_table_runner(out_shape, shapes[0], shapes[1], table))


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype in arith_plain.FLOAT_INT:  # float32, int32, int64
        return arith_plain.prepare(op, g, shapes, values)
    return prepare_add_like(op, g, shapes, 1)
