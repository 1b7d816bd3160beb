"""DIV on uint8/int8/int16 (kernels/div.cc EvalQuantized, reference_ops::DivElementwise).

Per pair of values, with v1 = q1 - zp1 and v2 = q2 - zp2 (signs moved so that v2 > 0):
  inv, recip_shift = GetReciprocal(v2, 31)            (1/v2 in Q0.31 and its exponent)
  headroom = CountLeadingSignBits(v1)
  unscaled = SRDHM(v1 << headroom, inv)                (MultiplyByQuantizedMultiplierGreaterThanOne)
  out = clamp(zp_out + RoundingDivideByPOT(SRDHM(unscaled, m), -(shift - recip_shift - headroom)))
with m, shift = QuantizeMultiplier(s1 / (s2 * s_out)), the scales multiplied and divided in float32.
Both inputs take 256 values: prepare() tabulates the 256 x 256 results, run() gathers them with
broadcasting. int16 computes each element (kernel div16). A divisor equal to its zero point is an error in the reference (refused at load when
constant, an InputError otherwise).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..errors import InputError
from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..numerics.fixedpoint import quantize_multiplier, wrap_int32
from ..numerics.fixedpoint import saturating_rounding_doubling_high_mul as srdhm
from ..numerics.gemmlowp import byte_values, count_leading_zeros_u32, get_reciprocal
from .broadcast import binary_table_runner, broadcast_shape
from .common import Prepared, Shape, fail, fused_activation, per_tensor, require, require_types, tensors


@njit(inline="always", cache=True)
def rounding_divide_by_pot_x86(x, exponent):
    """gemmlowp's RoundingDivideByPOT as compiled for x86 for any exponent: the mask is
    (1ll << (exponent & 63)) - 1 cut to int32 and the int32 shift takes its count modulo 32. Small
    dividends give exponents of 32 and more here (headroom up to 31): the division then does not
    happen and the reference saturates (measured)."""
    k = exponent & 63
    mask = np.int64(-1) if k >= 32 else (np.int64(1) << k) - 1
    threshold = (mask >> 1) + np.int64(x < 0)
    return (x >> (exponent & 31)) + np.int64((x & mask) > threshold)


@njit(inline="always", cache=True)
def quotient(v1, v2, inv, recip_shift, m, shift, zp_out, lo, hi):
    """One output of DivElementwise: v1 / v2 (v2 != 0; inv, recip_shift = GetReciprocal(|v2|, 31))."""
    if v2 < 0:
        v1 = -v1
    # CountLeadingSignBits of an int32: leading bits equal to the sign bit, minus one
    headroom = count_leading_zeros_u32(v1 if v1 >= 0 else ~v1) - 1
    unscaled = srdhm(wrap_int32(v1 << headroom), inv)
    total_shift = shift - recip_shift - headroom
    r = zp_out + rounding_divide_by_pot_x86(srdhm(unscaled, m), -total_shift)
    return min(max(wrap_int32(r), lo), hi)


@njit(cache=True)
def div_table(v1s, v2s, zp1, zp2, m, shift, zp_out, lo, hi):
    """table[i, j] for raw bytes i, j (column zp2, a division by zero, left 0)."""
    table = np.zeros((v1s.shape[0], v2s.shape[0]), np.int64)
    for j in range(v2s.shape[0]):
        v2 = v2s[j] - zp2
        if v2 == 0:
            continue
        inv, recip_shift = get_reciprocal(abs(v2), 31)
        for i in range(v1s.shape[0]):
            table[i, j] = quotient(v1s[i] - zp1, v2, inv, recip_shift, m, shift, zp_out, lo, hi)
    return table


@kernel
def div16(a, b, out, zps, m, shift, lo, hi):
    """int16 DIV, flat (operands broadcast beforehand): zps = (zp1, zp2, zp_out); b never at its zp."""
    for i in prange(out.size):
        v2 = np.int64(b[i]) - zps[1]
        inv, recip_shift = get_reciprocal(abs(v2), 31)
        out[i] = quotient(np.int64(a[i]) - zps[0], v2, inv, recip_shift, m, shift, zps[2], lo, hi)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    a, b, out = ins[0], ins[1], outs[0]
    require_types(op, a, ("uint8", "int8", "int16"))
    require(op, b.dtype == a.dtype and out.dtype == a.dtype, f"inputs and output must all be {a.dtype}")
    require_types(op, b, (a.dtype,))
    require_types(op, out, (a.dtype,))
    s1, zp1 = per_tensor(op, a)
    s2, zp2 = per_tensor(op, b)
    so, zpo = per_tensor(op, out)
    require(op, s1 > 0 and s2 > 0 and so > 0, "scales must be positive")
    f32 = np.float32
    m, shift = quantize_multiplier(float(f32(s1) / (f32(s2) * f32(so))))
    lo, hi = fused_activation(op, out)
    out_shape = broadcast_shape(op, shapes[0], shapes[1])
    zero = np.array(zp2).astype(b.np_dtype)
    if values[1] is not None and np.any(values[1] == zero):
        raise fail(op, f"{b.describe()}: division by zero (a value equal to the zero point)")
    if a.dtype == "int16":
        zps = np.array([zp1, zp2, zpo], np.int64)
        gather, scratch = _runner16(out_shape, shapes, zps, (m, shift, lo, hi))
    else:
        table = div_table(byte_values(a.dtype), byte_values(b.dtype), zp1, zp2, m, shift, zpo, lo, hi)
        gather = binary_table_runner(out_shape, shapes[0], shapes[1], table.astype(out.np_dtype))
        scratch = []
    if values[1] is not None:
        return Prepared([out_shape], gather, scratch=scratch)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        if np.any(inputs[1] == zero):
            raise InputError(f"{op.where()}: division by zero (a divisor equal to its zero point)")
        gather(inputs, outputs, scratch)

    return Prepared([out_shape], run, scratch=scratch)


def _runner16(out_shape: Shape, shapes: list, zps: np.ndarray, params: tuple[int, int, int, int]):
    """int16: no table (2^32 pairs); operands that broadcast are first spread into plan scratch."""
    m, shift, lo, hi = params
    kernel16 = div16.pick(int(np.prod(out_shape)) * 4)
    spread = [tuple(s) != tuple(out_shape) for s in shapes[:2]]
    scratch = [(out_shape, np.int16) for k in range(2) if spread[k]]

    def run(inputs: list, outputs: list, scratch: list) -> None:
        ops, free = [], iter(scratch)
        for k in range(2):
            x = inputs[k]
            if spread[k]:
                wide = next(free)
                np.copyto(wide, np.broadcast_to(x, out_shape))
                x = wide
            ops.append(x.reshape(-1))
        kernel16(ops[0], ops[1], outputs[0].reshape(-1), zps, m, shift, lo, hi)

    return run, scratch
