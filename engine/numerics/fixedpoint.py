"""TFLite's fixed-point arithmetic, bit for bit (kernels/internal/common.h, quantization_util.cc).

The njit functions here are inlined into every kernel; they work on int64 values that
hold int32 quantities and reproduce C++ int32 semantics (wrap-around on the left shift,
truncating division, the one saturating case of the doubling high multiply).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


@njit(inline="always", cache=True)
def wrap_int32(x):
    """Two's complement wrap of an int64 to the int32 range (what C++ int arithmetic does)."""
    return ((x + 2147483648) & 0xFFFFFFFF) - 2147483648


def wrap_int32_array(v: np.ndarray) -> np.ndarray:
    """wrap_int32 for an int64 array, outside Numba (at prepare), as int32: the reference accumulates in int32."""
    return np.asarray(v).astype(np.uint64).astype(np.uint32).view(np.int32)


@njit(inline="always", cache=True)
def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp's SaturatingRoundingDoublingHighMul for int32 a, b.

    gemmlowp adds a nudge of 2**30 (1 - 2**30 for negative products) and divides by 2**31
    truncating toward zero. For a negative product that truncation is a ceiling, and
    ceil((ab + 1 - 2**30) / 2**31) == floor((ab + 2**30) / 2**31): both signs reduce to one
    add and one arithmetic shift, which vectorizes well.
    """
    q = (np.int64(a) * np.int64(b) + np.int64(1073741824)) >> 31
    overflow = np.int64((a == -2147483648) & (b == -2147483648))
    return q + overflow * (np.int64(2147483647) - q)


@njit(inline="always", cache=True)
def rounding_divide_by_pot(x, exponent):
    """gemmlowp's RoundingDivideByPOT: divide by 2**exponent, rounding half away from zero."""
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + np.int64(x < 0)
    return (x >> exponent) + np.int64(remainder > threshold)


@njit(inline="always", cache=True)
def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite's MultiplyByQuantizedMultiplier (double rounding); shift > 0 is a left shift."""
    left = max(shift, 0)
    right = max(-shift, 0)
    shifted = np.int64(np.int32(np.int64(x) << left))  # C int32 wrap; the form LLVM recognizes
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


@njit(inline="always", cache=True)
def multiply_by_quantized_multiplier_smaller_than_one_exp(x, multiplier, left_shift):
    """MultiplyByQuantizedMultiplierSmallerThanOneExp: left_shift <= 0."""
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), -left_shift)


@njit(inline="always", cache=True)
def multiply_by_quantized_multiplier_greater_than_one(x, multiplier, left_shift):
    """MultiplyByQuantizedMultiplierGreaterThanOne: left_shift >= 0."""
    return saturating_rounding_doubling_high_mul(wrap_int32(np.int64(x) << left_shift), multiplier)


def round_half_away(x: float) -> int:
    """std::round: halves go away from zero (Python's round() goes to even).

    floor(|x| + 0.5) would be wrong for the largest double below 0.5, whose sum rounds up to 1.
    """
    whole = math.floor(abs(x))
    up = 1 if abs(x) - whole >= 0.5 else 0  # exact: the fraction of a double is a double
    return int(whole + up) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier: real ~= multiplier * 2**(shift - 31), multiplier in [2**30, 2**31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: returns (multiplier, left_shift <= 0)."""
    m, shift = quantize_multiplier(real)
    return m, shift


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """QuantizeMultiplierGreaterThanOne: returns (multiplier, left_shift >= 0)."""
    m, shift = quantize_multiplier(real)
    return m, shift


def activation_range(activation: str, scale: float, zero_point: int, dtype: np.dtype) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the clamp bounds of a fused activation."""
    info = np.iinfo(dtype)
    qmin, qmax = int(info.min), int(info.max)

    def q(v: float) -> int:  # TFLite divides in float32 here
        return zero_point + round_half_away(float(np.float32(v) / np.float32(scale)))

    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, q(0.0)), qmax
    if activation == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise ValueError(activation)
