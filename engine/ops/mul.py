"""MUL on uint8/int8 (kernels/mul.cc, reference MulElementwise):
  out = clamp(zp_out + MultiplyByQuantizedMultiplier((q1 - zp1) * (q2 - zp2), m, shift))
with m, shift = QuantizeMultiplier(s1 * s2 / s_out), in float32 in the reference, in double in
TFLite Micro (mul_common.cc; numerics="tflm").
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..graph import Graph, Op
from ..kernels import binary8
from ..numerics.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from ..numerics.gemmlowp import byte_values
from ..profiles import litert, litert_builtin, litert_xnn, profile_of
from . import arith_plain
from .broadcast import Tiles, binary_8bit, binary_table_runner, row_vector
from .common import Prepared, Shape, bound, fused_activation, per_tensor, require, view
from .elementwise16 import prepare_binary16


@njit(inline="always", cache=True)
def _rescale(x, m, shift):
    """MultiplyByQuantizedMultiplier as the compiled reference runs it for any shift: the left shift
    `x * (1 << shift)` takes its count modulo 32 (x86 shifts), and the product wraps in int32.
    Matters only for multipliers above 2**31, which traffic_model's MULs have (shift 91, 102)."""
    return multiply_by_quantized_multiplier(x, m, shift & 31 if shift > 0 else shift)


@njit(cache=True)
def mul_table(v1, v2, off1, off2, m, shift, zp_out, lo, hi):
    table = np.empty((v1.shape[0], v2.shape[0]), np.int64)
    for i in range(v1.shape[0]):
        for j in range(v2.shape[0]):
            r = _rescale((v1[i] + off1) * (v2[j] + off2), m, shift) + zp_out
            table[i, j] = min(max(r, lo), hi)
    return table


def real_multiplier(s1: float, s2: float, so: float) -> float:
    """s1 * s2 / s_out as the reference computes it (float32 operations)."""
    return float(np.float32(np.float32(s1) * np.float32(s2)) / np.float32(so))


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "int16":
        return prepare_binary16(op, g, shapes)
    if g.tensors[op.inputs[0]].dtype in arith_plain.FLOAT_INT:  # float32, int32, int64
        return arith_plain.prepare(op, g, shapes, values)
    a, b, out, out_shape = binary_8bit(op, g, shapes)
    (s1, zp1), (s2, zp2), (so, zpo) = (per_tensor(op, t) for t in (a, b, out))
    if profile_of(g) == "tflm":
        m, shift = quantize_multiplier(float(s1) * float(s2) / float(so))
    else:
        m, shift = quantize_multiplier(real_multiplier(s1, s2, so))
    if profile_of(g) == "tflm":  # the reference's behaviour above 2**30 is measured (_rescale), TFLM's is not
        too_large = f"multiplier s1 * s2 / s_out = {real_multiplier(s1, s2, so):g} is too large (>= 2**30)"
        require(op, shift <= 30, too_large)
    lo, hi = fused_activation(op, out)
    if profile_of(g) == "litert" and litert.delegated(op, g):  # XNNPACK: fp32 requantization
        scale = litert_xnn.mul_scale(s1, s2, so)
        xnn = litert_xnn.mul_table((a.dtype, b.dtype), (zp1, zp2, zpo), scale, lo, hi).astype(out.np_dtype)
        return Prepared([out_shape], binary_table_runner(out_shape, shapes[0], shapes[1], xnn))
    if profile_of(g) == "litert":  # LiteRT's builtin MUL (NEON blocks, the reference's tail)
        info = np.iinfo(out.np_dtype)
        bounds = (lo, hi, int(info.min), int(info.max))
        neon = litert_builtin.mul_table(
            byte_values(a.dtype), byte_values(b.dtype), -zp1, -zp2, m, shift, zpo, bounds
        )
        ref = mul_table(byte_values(a.dtype), byte_values(b.dtype), -zp1, -zp2, m, shift, zpo, lo, hi)
        run = litert_builtin.blocks_runner(
            out_shape, shapes, neon.astype(out.np_dtype), ref.astype(out.np_dtype), a.dtype
        )
        return Prepared([out_shape], run)
    table = mul_table(byte_values(a.dtype), byte_values(b.dtype), -zp1, -zp2, m, shift, zpo, lo, hi)
    table = table.astype(out.np_dtype)
    size = int(np.prod(out_shape))
    same = int(np.prod(shapes[0])) == int(np.prod(shapes[1])) == size  # equal shapes but for 1s
    vec = None if same or size == 0 else row_vector(out_shape, shapes[0], shapes[1])
    if (same or vec is not None) and binary8.vmul_supported(shift):  # computed, 16 at a time
        q = binary8.mul_requant(-zp1, -zp2, m, shift, zpo, lo, hi)
        flat_table = table.reshape(-1)
        if vec is not None:  # a per-channel operand along the last axis
            return _rows(out_shape, shapes, vec, values, flat_table, q)
        vmul = binary8.vmul_flat.pick(size // 4)

        def bind(inputs: list, outputs: list, scratch: list) -> list:
            return [(vmul, (view(inputs[0]), view(inputs[1]), view(outputs[0]), flat_table, q))]

        return bound([out_shape], bind)
    return Prepared([out_shape], binary_table_runner(out_shape, shapes[0], shapes[1], table))


def _rows(out_shape: Shape, shapes: list, vec: int, values: list, flat_table: np.ndarray, q) -> Prepared:
    """binary8.vmul_rows for input `vec`, a vector along the last axis of the other input."""
    vmul = binary8.vmul_rows.pick(int(np.prod(out_shape)) // 4)
    tiles = Tiles(vec, int(np.prod(shapes[vec])), values[vec])

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        full, vector, tile = tiles.operands(inputs)
        return [(vmul, (full, vector, view(outputs[0]), flat_table, q, vec == 0, tile))]

    return bound([out_shape], bind)
