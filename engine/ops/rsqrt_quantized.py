"""RSQRT on int8 (kernels/elementwise.cc RsqrtEvalQuantizedInt8, GetInvSqrtQuantizedMultiplierExp).

For v = q - zp_in (a negative v is an error in the reference; v = 0 gives 127):
  inv, inv_shift = GetInvSqrtQuantizedMultiplierExp(v)   (1/sqrt(v) by 5 Newton steps in Q3.28)
  data = MultiplyByQuantizedMultiplier(1, inv, inv_shift + 20)
  out = clamp(MultiplyByQuantizedMultiplier(data, m, shift - 20) + zp_out)
with m, shift = QuantizeMultiplier(1 / (sqrtf(s_in) * s_out)). A table over the 256 inputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import InputError
from ..graph import Graph, Op
from ..numerics.fixedpoint import (
    INT32_MAX,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    rounding_divide_by_pot,
    wrap_int32,
)
from ..numerics.fixedpoint import saturating_rounding_doubling_high_mul as srdhm
from ..numerics.gemmlowp import count_leading_zeros_u32, saturating_shift_left
from .common import Prepared, Shape, per_tensor, require, require_types, tensors
from .int16 import lookup_runner, values_of

SHIFT = 20  # kShift: keeps the intermediate an integer


@njit(cache=True)
def inv_sqrt_multiplier(x):
    """GetInvSqrtQuantizedMultiplierExp(x, kReverseShift = -1): (multiplier, left shift) of 1/sqrt(x)."""
    if x <= 1:
        return np.int64(INT32_MAX), 0
    shift = 11
    while x >= (1 << 29):
        x //= 4
        shift += 1
    pairs = (count_leading_zeros_u32(x) - 1) // 2 - 1
    shift -= pairs
    x <<= 2 * pairs
    half_input = rounding_divide_by_pot(x >> 1, 1)  # Q3.28 input, halved
    half_three = np.int64((1 << 28) + (1 << 27))
    r = np.int64(1 << 28)  # 1.0 in Q3.28
    for _ in range(5):
        r3 = saturating_shift_left(srdhm(srdhm(r, r), r), 6)  # Rescale<3> of a Q9.22 product
        r = saturating_shift_left(wrap_int32(srdhm(half_three, r) - srdhm(half_input, r3)), 3)
    r = srdhm(r, np.int64(1518500250))  # * sqrt(2) / 2
    if shift < 0:
        r = wrap_int32(r << -shift)
        shift = 0
    return r, -shift


@njit(cache=True)
def any_below(x, lowest):
    """Whether some element of x (flat) is below lowest: the reference's per-element domain check."""
    for i in range(x.size):
        if x.flat[i] < lowest:
            return True
    return False


@njit(cache=True)
def rsqrt_table(values, zp_in, m, shift, zp_out, lo, hi):
    table = np.empty(values.shape[0], np.int64)
    for i in range(values.shape[0]):
        v = values[i] - zp_in
        if v <= 0:
            table[i] = hi  # v == 0 by definition; v < 0 never reaches the table (refused when running)
            continue
        inv, inv_shift = inv_sqrt_multiplier(v)
        data = multiply_by_quantized_multiplier(np.int64(1), inv, inv_shift + SHIFT)
        out = multiply_by_quantized_multiplier(data, m, shift - SHIFT) + zp_out
        table[i] = min(max(out, lo), hi)
    return table


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require_types(op, src, ("int8",))
    require_types(op, dst, (src.dtype,))
    s_in, zp_in = per_tensor(op, src)
    s_out, zp_out = per_tensor(op, dst)
    require(op, s_in > 0 and s_out > 0, "scales must be positive")
    f32 = np.float32
    m, shift = quantize_multiplier(1.0 / float(f32(np.sqrt(f32(s_in))) * f32(s_out)))
    info = np.iinfo(src.dtype)
    table = rsqrt_table(values_of(src.dtype), zp_in, m, shift, zp_out, int(info.min), int(info.max))
    gather = lookup_runner(table.astype(src.dtype), src.dtype, int(np.prod(shapes[0])))
    lowest = np.dtype(src.dtype).type(zp_in)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        if any_below(inputs[0], lowest):
            raise InputError(f"{op.where()}: RSQRT of a negative value (an input below its zero point)")
        gather(inputs, outputs, scratch)

    return Prepared([tuple(shapes[0])], run)
