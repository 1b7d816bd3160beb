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
from ..kernels import add8
from ..numerics.fixedpoint import multiply_by_quantized_multiplier_smaller_than_one_exp as mul_lt1
from ..numerics.fixedpoint import quantize_multiplier_smaller_than_one_exp
from ..numerics.gemmlowp import byte_values
from ..profiles import litert, litert_builtin, litert_xnn, profile_of, tflm
from . import arith_plain
from .broadcast import binary_8bit, vector_table_runner
from .common import Prepared, Shape, fused_activation, per_tensor, require, stored, stored_output
from .elementwise16 import prepare_binary16

LEFT_SHIFT = 20


class Rescale(NamedTuple):
    """(q + offset) scaled by MultiplyByQuantizedMultiplierSmallerThanOneExp(multiplier, shift)."""

    offset: int
    multiplier: int
    shift: int


@njit(cache=True)
def rescaled(values, r, left_shift):
    """Each input value (v + offset) << left_shift, scaled by r (Rescale): the reference's x_i."""
    x = np.empty(values.shape[0], np.int64)
    for i in range(values.shape[0]):
        x[i] = mul_lt1((values[i] + r.offset) * (1 << left_shift), r.multiplier, r.shift)
    return x


@njit(cache=True)
def add_table(v1, v2, in1, in2, out, lo, hi, left_shift):
    """table[i, j] = the reference's output for raw bytes i (input 1) and j (input 2): each input
    rescaled (in1, in2), the sum rescaled by out, whose offset is the output zero point."""
    x1 = rescaled(v1, in1, left_shift)
    x2 = rescaled(v2, in2, left_shift)
    table = np.empty((v1.shape[0], v2.shape[0]), np.int64)
    for i in range(v1.shape[0]):
        for j in range(v2.shape[0]):
            r = mul_lt1(x1[i] + x2[j], out.multiplier, out.shift) + out.offset
            table[i, j] = min(max(r, lo), hi)
    return table


def vector_constants(x1: np.ndarray, x2: np.ndarray, out: Rescale, bounds: tuple[int, int], table, signed: bool):
    """add8's constants for clamp(out.offset + MulSmallerThanOneExp(x1[a] + x2[b], out)) where the vector
    kernel reproduces table (raw bytes a, b) on every pair, else None. With right shift r, the rescale is
    floor((y * m + C - delta * [below zero]) / 2**(31 + r)), C = 2**30 + 2**(30 + r), delta = 2**31 (r >= 1;
    requantize.widen)."""
    r = -out.shift
    c = (1 << 30) + ((1 << (30 + r)) if r >= 1 else 0)
    delta = (1 << 31) if r >= 1 else 0
    y1, y2 = x1 * out.multiplier, x2 * out.multiplier + c
    return add8.fit(y1, y2, 31 + r, (out.offset, *bounds), delta, table, signed)


def prepare_add_like(op: Op, g: Graph, shapes: list[Shape | None], sign: int, values: list | None = None) -> Prepared:
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
    # the bytes as stored: the inputs and output all flipped or none (engine/storage.py)
    (dtype, zp1), (_, zp2) = stored(g, op.inputs[0], a.dtype, zp1), stored(g, op.inputs[1], b.dtype, zp2)
    _, zpo, (lo, hi) = stored_output(g, op.outputs[0], out.dtype, zpo, fused_activation(op, out))
    signed = dtype == "int8"
    values1 = values2 = byte_values(dtype)
    if sign < 0 and profile_of(g) == "tflm":  # TFLite Micro's SUB: rescaled inputs subtracted
        table = tflm.sub_table((s1, s2, so), (zp1, zp2, zpo), lo, hi)
        p1, p2, po = tflm.sub_multipliers(s1, s2, so)
        x1, x2 = (rescaled(v, Rescale(-z, *p), LEFT_SHIFT) for v, z, p in ((values1, zp1, p1), (values2, zp2, p2)))
        q = vector_constants(x1, -x2, Rescale(zpo, *po), (lo, hi), table, signed)
        return Prepared([out_shape], vector_table_runner(out_shape, shapes[0], shapes[1], table, q, values))
    if profile_of(g) == "litert" and litert.delegated(op, g):  # XNNPACK's integer add
        params = litert_xnn.add_params(s1, s2, so, sign)
        table = litert_xnn.add_table((a.dtype, b.dtype), (zp1, zp2, zpo), params, lo, hi).astype(out.np_dtype)
        (ma, mb, shift), bias = params, (1 << (params[2] - 1)) - params[0] * zp1 - params[1] * zp2
        q = add8.fit(bias + ma * values1, mb * values2, shift, (zpo, lo, hi), 0, table, signed)
        return Prepared([out_shape], vector_table_runner(out_shape, shapes[0], shapes[1], table, q, values))
    in1, in2, rescale_out = Rescale(-zp1, m1, sh1), Rescale(-zp2, sign * m2, sh2), Rescale(zpo, mo, sho)
    table = add_table(values1, values2, in1, in2, rescale_out, lo, hi, LEFT_SHIFT).astype(dtype)
    if profile_of(g) == "litert" and sign > 0:  # builtin ADD: NEON blocks, a scalar tail (builtin SUB: scalar)
        info = np.iinfo(out.np_dtype)
        bounds = (lo, hi, int(info.min), int(info.max))
        neon = litert_builtin.add_table(values1, values2, tuple(in1), tuple(in2), tuple(rescale_out), bounds)
        run = litert_builtin.blocks_runner(out_shape, shapes, neon.astype(out.np_dtype), table, a.dtype)
        return Prepared([out_shape], run)
    x1, x2 = rescaled(values1, in1, LEFT_SHIFT), rescaled(values2, in2, LEFT_SHIFT)
    q = vector_constants(x1, x2, rescale_out, (lo, hi), table, signed)
    return Prepared([out_shape], vector_table_runner(out_shape, shapes[0], shapes[1], table, q, values))


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype in arith_plain.FLOAT_INT:  # float32, int32, int64
        return arith_plain.prepare(op, g, shapes, values)
    return prepare_add_like(op, g, shapes, 1, values)
