"""HARD_SWISH on uint8/int8 (kernels/activations.cc HardSwishPrepare, reference_ops::HardSwish).

x * relu6(x + 3) / 6 in 16-bit fixed point. Prepare computes two multipliers in float32 and
narrows them to int16 (DownScaleInt32ToInt16Multiplier):
  hires = s_in / 128; output = hires / s_out (exponent must be <= 0); reluish = hires / (3 / 32768)
Per element (int16 arithmetic, wrapping where C++ narrows to int16_t):
  v = (q - zp_in) * 128
  y = SRDHM16(v, output_multiplier)                 the input on the output scale, not yet shifted
  r = v, rescaled by the reluish multiplier (left shifts saturate, the last bit applied after SRDHM16)
  r = (r + 32768) >> 1                              [-1, 1] -> [0, 1]
  out = clamp(RoundingDivideByPOT(SaturatingDoublingHighMul(r, y), -output_exponent) + zp_out)
The output depends on q alone, so prepare() evaluates this for all 256 inputs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..graph import Graph, Op
from ..kernels.lookup import table_runner
from ..numerics.fixedpoint import quantize_multiplier
from ..numerics.gemmlowp import byte_values
from ..profiles import profile_of
from . import activations_float
from .common import Prepared, Shape, require, unary_8bit


@njit(inline="always", cache=True)
def _wrap16(x):
    return ((x + 32768) & 0xFFFF) - 32768


@njit(inline="always", cache=True)
def _srdhm16(a, b):
    """gemmlowp's SaturatingRoundingDoublingHighMul<int16_t>: nudge, then C++ truncating division."""
    if a == -32768 and b == -32768:
        return np.int64(32767)
    ab = a * b
    nudge = np.int64(1 << 14) if ab >= 0 else np.int64(1 - (1 << 14))
    s = ab + nudge
    q = s // 32768 if s >= 0 else -((-s) // 32768)
    return _wrap16(q)


@njit(inline="always", cache=True)
def _sdhm16(a, b):
    """SaturatingDoublingHighMul (int16): like SRDHM16 but truncating toward zero, no nudge."""
    if a == -32768 and b == -32768:
        return np.int64(32767)
    ab = a * b
    q = ab // 32768 if ab >= 0 else -((-ab) // 32768)
    return _wrap16(q)


@njit(inline="always", cache=True)
def _saturating_left_shift16(x, amount):
    return min(max(x * (np.int64(1) << amount), np.int64(-32768)), np.int64(32767))


@njit(inline="always", cache=True)
def _rounding_divide_by_pot16(x, exponent):
    """gemmlowp's RoundingDivideByPOT<int16_t>: its mask is (1 << exponent) - 1 narrowed to int16."""
    mask = _wrap16((np.int64(1) << exponent) - 1)
    remainder = _wrap16(x & mask)
    threshold = _wrap16((mask >> 1) + np.int64(x < 0))
    return _wrap16((x >> (exponent & 31)) + np.int64(remainder > threshold))


@njit(cache=True)
def hard_swish_table(values, zp_in, zp_out, out_mult, out_exp, relu_mult, relu_exp, qmin, qmax):
    table = np.empty(values.shape[0], np.int64)
    for i in range(values.shape[0]):
        v = _wrap16(_wrap16(values[i] - zp_in) * 128)
        y = _srdhm16(v, out_mult)
        r = v
        if relu_exp > 0:
            r = _saturating_left_shift16(r, relu_exp - 1)
        r = _srdhm16(r, relu_mult)
        if relu_exp > 0:
            r = _saturating_left_shift16(r, 1)
        if relu_exp < 0:
            r = _rounding_divide_by_pot16(r, -relu_exp)
        r = _wrap16((r + 32768) >> 1)
        o = _rounding_divide_by_pot16(_sdhm16(r, y), -out_exp)
        o = _wrap16(o + zp_out)
        table[i] = min(max(o, qmin), qmax)
    return table


def int16_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier, then DownScaleInt32ToInt16Multiplier: (int16 multiplier, exponent)."""
    m32, exponent = quantize_multiplier(real)
    if m32 >= 2**31 - 1 - (1 << 15):
        return 32767, exponent
    return (m32 + (1 << 15)) >> 16, exponent


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        return activations_float.prepare(op, g, shapes, values)
    inp, out, (s_in, zp_in), (s_out, zp_out) = unary_8bit(op, g)
    require(op, s_in > 0 and s_out > 0, "scales must be positive")
    f32 = np.float32
    hires = f32(1.0 / 128.0) * f32(s_in)
    reluish = f32(3.0) / f32(32768.0)
    if profile_of(g) == "tflm":  # TFLite Micro divides in double (measured: test_tflm pins it)
        out_real, relu_real = float(hires) / float(s_out), float(hires) / float(reluish)
    else:
        out_real, relu_real = float(hires / f32(s_out)), float(hires / reluish)
    out_mult, out_exp = int16_multiplier(out_real)
    require(op, out_exp <= 0, f"output scale {s_out:g} too small for input scale {s_in:g} (exponent > 0)")
    relu_mult, relu_exp = int16_multiplier(relu_real)
    require(op, relu_exp <= 31, f"input scale {s_in:g} out of the supported range")
    info = np.iinfo(out.np_dtype)
    table = hard_swish_table(
        byte_values(inp.dtype),
        zp_in,
        zp_out,
        out_mult,
        out_exp,
        relu_mult,
        relu_exp,
        int(info.min),
        int(info.max),
    )
    return Prepared([tuple(shapes[0])], table_runner(table.astype(out.np_dtype), int(np.prod(shapes[0]))))
