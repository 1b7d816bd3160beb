"""ADD on uint8/int8 (kernels/add.cc Prepare, reference_ops / reference_integer_ops AddElementwise).

Both inputs are brought to a common scale with 20 bits of headroom (left_shift = 20), each through
its own multiplier below one, summed, and scaled to the output:
  x_i = MulSmallerThanOneExp((q_i - zp_i) << 20, m_i, s_i)
  out = clamp(MulSmallerThanOneExp(x_1 + x_2, m_out, s_out) + zp_out)
The real multipliers are computed in double from the float32 scales:
  twice = 2 * max(s1, s2); m_i = s_i / twice; m_out = twice / (2**20 * s_out).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..graph import Graph, Op
from ..numerics.fixedpoint import multiply_by_quantized_multiplier_smaller_than_one_exp as mul_lt1
from ..numerics.fixedpoint import quantize_multiplier_smaller_than_one_exp
from ..profiles import profile_of, tflm
from . import arith_plain
from .broadcast import binary_table_runner, broadcast_shape, byte_values
from .common import Prepared, Shape, fused_activation, per_tensor, require, require_types, tensors
from .elementwise16 import prepare_binary16

LEFT_SHIFT = 20


@njit(cache=True)
def add_table(v1, v2, off1, m1, sh1, off2, m2, sh2, left_shift, m_out, sh_out, zp_out, lo, hi):
    """table[i, j] = the reference's output for raw bytes i (input 1) and j (input 2)."""
    n1, n2 = v1.shape[0], v2.shape[0]
    x1 = np.empty(n1, np.int64)
    x2 = np.empty(n2, np.int64)
    for i in range(n1):
        x1[i] = mul_lt1((v1[i] + off1) * (1 << left_shift), m1, sh1)
    for j in range(n2):
        x2[j] = mul_lt1((v2[j] + off2) * (1 << left_shift), m2, sh2)
    table = np.empty((n1, n2), np.int64)
    for i in range(n1):
        for j in range(n2):
            r = mul_lt1(x1[i] + x2[j], m_out, sh_out) + zp_out
            table[i, j] = min(max(r, lo), hi)
    return table


def prepare_add_like(op: Op, g: Graph, shapes: list[Shape | None], sign: int) -> Prepared:
    """ADD (sign 1) and SUB (sign -1: the reference runs the add kernel with input 2's multiplier negated)."""
    if g.tensors[op.inputs[0]].dtype == "int16":
        return prepare_binary16(op, g, shapes)
    ins, outs = tensors(op, g)
    require(op, len(ins) == 2 and None not in ins and len(outs) == 1, "takes 2 inputs and 1 output")
    a, b, out = ins[0], ins[1], outs[0]
    require_types(op, a, ("uint8", "int8"))
    require(op, b.dtype == a.dtype and out.dtype == a.dtype, f"inputs and output must all be {a.dtype}")
    require_types(op, b, (a.dtype,))
    require_types(op, out, (a.dtype,))
    s1, zp1 = per_tensor(op, a)
    s2, zp2 = per_tensor(op, b)
    so, zpo = per_tensor(op, out)
    require(op, s1 > 0 and s2 > 0 and so > 0, "scales must be positive")
    out_shape = broadcast_shape(op, shapes[0], shapes[1])
    twice = 2.0 * max(s1, s2)  # float32 * 2 is exact; the divisions below are in double
    real_out = twice / (float(1 << LEFT_SHIFT) * so)
    require(op, real_out < 1.0, f"output scale {so:g} too small for input scales {s1:g}, {s2:g}")
    m1, sh1 = quantize_multiplier_smaller_than_one_exp(s1 / twice)
    m2, sh2 = quantize_multiplier_smaller_than_one_exp(s2 / twice)
    mo, sho = quantize_multiplier_smaller_than_one_exp(real_out)
    lo, hi = fused_activation(op, out)
    if sign < 0 and profile_of(g) == "tflm":  # TFLite Micro's SUB: float32 multipliers, then subtract
        table = tflm.sub_table((s1, s2, so), (zp1, zp2, zpo), lo, hi)
        return Prepared([out_shape], binary_table_runner(out_shape, shapes[0], shapes[1], table))
    table = add_table(
        byte_values(a.dtype),
        byte_values(b.dtype),
        -zp1,
        m1,
        sh1,
        -zp2,
        sign * m2,
        sh2,
        LEFT_SHIFT,
        mo,
        sho,
        zpo,
        lo,
        hi,
    ).astype(out.np_dtype)
    return Prepared([out_shape], binary_table_runner(out_shape, shapes[0], shapes[1], table))


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype in arith_plain.FLOAT_INT:  # float32, int32, int64
        return arith_plain.prepare(op, g, shapes, values)
    return prepare_add_like(op, g, shapes, 1)
