"""gemmlowp's fixed-point math functions (fixedpoint/fixedpoint.h) and TFLite's GetReciprocal, bit for bit,
plus the 256-entry lookup tables of the 8-bit activation ops (TFLite's LUTPopulate; the gather is
engine/kernels/lookup.py).

Values are int64 holding int32 quantities, as in fixedpoint.py. A FixedPoint<int32, I> is its
raw int32: I integer bits, 31 - I fractional bits. Operator+ and - on FixedPoint are plain int32
arithmetic in gemmlowp (wrapping on overflow in practice), so sums here are wrapped explicitly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

from .fixedpoint import INT32_MAX, INT32_MIN, round_half_away, rounding_divide_by_pot, wrap_int32
from .fixedpoint import saturating_rounding_doubling_high_mul as srdhm


@njit(inline="always", cache=True)
def saturating_shift_left(x, exponent):
    """SaturatingRoundingMultiplyByPOT<exponent > 0>: x * 2**exponent, saturated to int32."""
    threshold = (np.int64(1) << (31 - exponent)) - 1
    if x > threshold:
        return np.int64(INT32_MAX)
    if x < -threshold:
        return np.int64(INT32_MIN)
    return x << exponent


@njit(inline="always", cache=True)
def exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8."""
    constant_term = np.int64(1895147668)  # exp(-1/8)
    constant_1_over_3 = np.int64(715827883)
    x = wrap_int32(a + (np.int64(1) << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap_int32(srdhm(wrap_int32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap_int32(constant_term + srdhm(constant_term, wrap_int32(x + poly)))


@njit(cache=True)
def exp_on_negative_values(a, integer_bits):
    """exp(a) for a <= 0 given as FixedPoint<int32, integer_bits>; the result is Q0.31."""
    fractional_bits = 31 - integer_bits
    one_quarter = np.int64(1) << (fractional_bits - 2)
    a_mod_quarter_minus_one_quarter = wrap_int32((a & (one_quarter - 1)) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_shift_left(a_mod_quarter_minus_one_quarter, integer_bits)
    )
    remainder = wrap_int32(a_mod_quarter_minus_one_quarter - a)
    # barrel shifter: multiply by exp(-2**k) for each bit k of the remainder (k = -2 .. 4)
    multipliers = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)
    for k in range(7):
        exponent = k - 2
        if integer_bits > exponent and (remainder >> (fractional_bits + exponent)) & 1:
            result = srdhm(result, np.int64(multipliers[k]))
    if integer_bits > 5:
        clamp = -(np.int64(1) << (36 - integer_bits))  # -32.0
        if a < clamp:
            result = np.int64(0)
    if a == 0:
        result = np.int64(INT32_MAX)
    return result


@njit(inline="always", cache=True)
def one_over_one_plus_x_for_x_in_0_1(a):
    """1 / (1 + a) for a in [0, 1) (Q0.31), by Newton-Raphson in Q2.29; the result is Q0.31."""
    s = a + np.int64(INT32_MAX)  # RoundingHalfSum(a, One): (sum + sign) / 2, truncating
    half_denominator = (s + 1) // 2 if s >= 0 else -((-s + 1) // 2)
    x = wrap_int32(np.int64(1515870810) + srdhm(half_denominator, np.int64(-1010580540)))  # 48/17 - 32/17 d
    one_f2 = np.int64(1) << 29
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = wrap_int32(one_f2 - half_denominator_times_x)
        x = wrap_int32(x + saturating_shift_left(srdhm(x, one_minus), 2))
    return saturating_shift_left(x, 1)


@njit(inline="always", cache=True)
def count_leading_zeros_u32(x):
    """Leading zero bits of the low 32 bits of x, as an unsigned 32-bit value (32 for 0)."""
    return np.int64(leading_zeros(np.uint32(x & 0xFFFFFFFF)))  # lzcnt: 32 for 0


@njit(inline="always", cache=True)
def get_reciprocal(x, x_integer_digits):
    """TFLite's GetReciprocal: (1/x as Q0.31 scaled into [0.5, 1), num_bits_over_unit)."""
    headroom_plus_one = count_leading_zeros_u32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap_int32(((x & 0xFFFFFFFF) << headroom_plus_one) - (np.int64(1) << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


# --- 8-bit lookup tables ------------------------------------------------------------------------------
# Any op whose 8-bit output depends on one 8-bit input value alone is exactly a table of 256 entries:
# prepare() evaluates the reference formula for every raw byte, run() gathers.


def byte_values(dtype: str) -> np.ndarray:
    """The integer each raw byte 0..255 stands for in an int8 or uint8 tensor (index = raw byte)."""
    return np.arange(256, dtype=np.uint8).view(np.int8 if dtype == "int8" else np.uint8).astype(np.int64)


@functools.cache
def libm() -> ctypes.CDLL:
    """The C library's float functions expf and tanhf, which TFLite's tables call (LiteRT links glibc's).

    numpy's own float32 exp and tanh differ from them in the last bit for many arguments (measured: about
    a third), which changes a table entry now and then; so the very same functions are called here.
    """
    try:
        lib = ctypes.CDLL("libm.so.6")
    except OSError:
        lib = ctypes.CDLL(ctypes.util.find_library("m"))
    for name in ("expf", "tanhf"):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_float
        fn.argtypes = [ctypes.c_float]
    return lib


def lut_populate(transform, s_in: float, zp_in: int, s_out: float, zp_out: int, dtype: str) -> np.ndarray:
    """LUTPopulate<int8_t/uint8_t> (kernels/internal/common.h), float32 throughout; index = raw input byte.

    out = clamp(int(roundf(transform(s_in * (q - zp_in)) * (1 / s_out)) + zp_out)), std::round halves away.
    """
    f32 = np.float32
    info = np.iinfo(dtype)
    inverse_scale = f32(1.0) / f32(s_out)
    table = np.empty(256, np.int64)
    for raw, q in enumerate(byte_values(dtype)):
        transformed = f32(transform(f32(s_in) * f32(int(q) - zp_in)))
        rescaled = f32(round_half_away(float(transformed * inverse_scale)))
        quantized = int(rescaled + f32(zp_out))
        table[raw] = min(max(quantized, int(info.min)), int(info.max))
    return table.astype(dtype)


# --- 16-bit interpolated lookup tables ------------------------------------------------------------


def _roundf(x: np.float32) -> np.float32:
    """TfLiteRound on a float32 (roundf: halves away from zero; infinities stay)."""
    return x if not np.isfinite(x) else np.float32(round_half_away(float(x)))


def _clamp16(x: np.float32) -> int:
    """static_cast<int16_t>(std::min(std::max(x, -32768.f), 32767.f)): NaN passes both (their comparisons
    are false) and converts to 0 on x86 (cvttss2si's 0x80000000, its low 16 bits)."""
    return 0 if np.isnan(x) else int(min(max(x, np.float32(-32768)), np.float32(32767)))


def lut_populate16(transform, s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """LUTPopulate<int16_t> (common.h LUTPopulateInt16<float>): 513 samples of transform (float32 -> float32)
    over the input range, each corrected by half its midpoint interpolation error, in float32 throughout."""
    f32 = np.float32
    lo16, hi16 = -32768, 32767
    input_min, input_max = f32(s_in) * f32(lo16 - zp_in), f32(s_in) * f32(hi16 - zp_in)
    output_min, output_max = f32(s_out) * f32(lo16 - zp_out), f32(s_out) * f32(hi16 - zp_out)
    steps = 512
    step = (input_max - input_min) / f32(steps)
    half_step = step / f32(2)
    scaling_inv = f32(65536) / (output_max - output_min)
    lut = np.empty(steps + 1, np.int64)
    with np.errstate(over="ignore", invalid="ignore"):  # exp overflows to inf; inf - inf is NaN as in C
        for i in range(steps):
            val = f32(transform(input_min + f32(i) * step))
            val_mid = f32(transform(input_min + f32(i) * step + half_step))
            val_next = f32(transform(input_min + f32(i + 1) * step))
            sample = _roundf(val * scaling_inv)
            mid_interp = _roundf((val_next * scaling_inv + _roundf(val * scaling_inv)) / f32(2))
            mid_err = mid_interp - _roundf(val_mid * scaling_inv)
            lut[i] = _clamp16(sample - _roundf(mid_err / f32(2)))
        lut[steps] = _clamp16(_roundf(f32(transform(input_max)) * scaling_inv))
    return lut


def lut_lookup16_all(lut: np.ndarray) -> np.ndarray:
    """LUTLookup (int16, interpolated) of every int16 value, indexed by its raw 16 bits: base
    lut[256 + (v >> 7)] plus (slope * (v & 127) + 64) >> 7, the slope and the sum wrapped to int16."""
    v = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64)
    index = 256 + (v >> 7)
    slope = (lut[index + 1] - lut[index]).astype(np.int16).astype(np.int64)
    return (lut[index] + ((slope * (v & 0x7F) + 64) >> 7)).astype(np.int16)
