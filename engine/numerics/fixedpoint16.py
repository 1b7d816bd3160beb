"""gemmlowp's fixed-point logistic and tanh on int16 raw values (fixedpoint/fixedpoint.h with
tRawType = int16_t), as the integer LSTM applies them (tensor_utils ApplySigmoid / ApplyTanh).

Vectorized over numpy int64 arrays that hold int16 quantities, with C++'s int16 semantics: sums wrap
(operator+ and - are plain int16 arithmetic), the doubling high multiply saturates one case, and the
int32 constants are rescaled to 16 bits (RescaleConstantInitializer: RoundingDivideByPOT by 16).
Each function maps every int16 input to an int16 output, so callers build 65536-entry tables.
"""

from __future__ import annotations

import functools

import numpy as np

ONE = 32767  # FixedPoint<int16, 0>::One(): the largest raw value


def w16(x):
    """Wrap to int16 (static_cast<int16_t>)."""
    return ((np.asarray(x, np.int64) + 32768) & 0xFFFF) - 32768


def rdp(x, e: int):
    """RoundingDivideByPOT: divide by 2^e rounding half away from zero."""
    if e == 0:
        return x
    mask = (1 << e) - 1
    return (x >> e) + ((x & mask) > (mask >> 1) + (x < 0))


def const16(raw32: int) -> int:
    """RescaleConstantInitializer<int16>: an int32 fixed-point constant brought to 16 bits."""
    return int(w16(rdp(np.int64(raw32), 16)))


def mul(a, b):
    """SaturatingRoundingDoublingHighMul<int16_t>: nudge, C++ truncating division by 2^15."""
    ab = a * b
    s = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.where(s >= 0, s >> 15, -((-s) >> 15))
    return np.where((a == -32768) & (b == -32768), 32767, w16(q))


def pot(x, e: int):
    """SaturatingRoundingMultiplyByPOT<e>: saturating left shift, or rounding right shift."""
    if e <= 0:
        return rdp(x, -e)
    threshold = (1 << (15 - e)) - 1
    return np.where(x > threshold, 32767, np.where(x < -threshold, -32768, x << e))


def _exp_quarter(a):
    """exp on [-1/4, 0) for Q0.15: Taylor series around -1/8."""
    c = const16(1895147668)
    x = w16(a + (1 << 12))
    x2 = mul(x, x)
    x3 = mul(x2, x)
    x4 = mul(x2, x2)
    t = pot(w16(mul(w16(pot(x4, -2) + x3), const16(715827883)) + x2), -1)
    return np.clip(c + mul(c, w16(x + t)), -32768, 32767)  # AddSaturatingIf16Bit


def exp_on_negative_values(a, integer_bits: int):
    """exp(a) for a <= 0 in FixedPoint<int16, integer_bits>; Q0.15 result."""
    frac = 15 - integer_bits
    quarter = 1 << (frac - 2)
    amq = w16((a & (quarter - 1)) - quarter)
    result = _exp_quarter(pot(amq, integer_bits))
    remainder = w16(amq - a)
    barrel = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535))
    for exponent, multiplier in (*barrel, (3, 720401), (4, 242)):
        if integer_bits > exponent:
            bit = (remainder >> (frac + exponent)) & 1
            result = np.where(bit != 0, mul(result, const16(multiplier)), result)
    if integer_bits > 5:
        result = np.where(a < const16(-(1 << (36 - integer_bits))), 0, result)
    return np.where(a == 0, ONE, result)


def _newton_reciprocal(a):
    """The three Newton steps shared by 1/(1+x) and (1-x)/(1+x) on x in [0, 1]: x in Q2.13."""
    s = a + ONE
    s = s + np.where(s >= 0, 1, -1)
    half_denominator = w16(np.where(s >= 0, s >> 1, -((-s) >> 1)))  # RoundingHalfSum(a, One)
    x = w16(const16(1515870810) + mul(half_denominator, const16(-1010580540)))
    for _ in range(3):
        one_minus = w16((1 << 13) - mul(half_denominator, x))
        x = w16(x + pot(mul(x, one_minus), 2))
    return x


def logistic(a, integer_bits: int):
    """gemmlowp::logistic on FixedPoint<int16, integer_bits>: Q0.15 result."""
    positive = a > 0
    magnitude = np.where(positive, a, w16(-a))
    e = exp_on_negative_values(w16(-magnitude), integer_bits)
    result_positive = pot(_newton_reciprocal(e), 1)  # Rescale<0>(ExactMulByPot<-1>(x))
    result = np.where(positive, result_positive, w16(ONE - result_positive))
    return np.where(a == 0, const16(1 << 30), result)


def tanh(a, integer_bits: int):
    """gemmlowp::tanh on FixedPoint<int16, integer_bits>: Q0.15 result."""
    negative = a < 0
    n = np.where(negative, a, w16(-a))
    e = exp_on_negative_values(n, integer_bits + 1)  # ExactMulByPot<1>: one more integer bit
    t = pot(w16(_newton_reciprocal(e) - (1 << 13)), 2)  # Rescale<0>(x - 1)
    return np.where(a == 0, 0, np.where(negative, w16(-t), t))


@functools.cache
def table(function: str, integer_bits: int) -> np.ndarray:
    """function(x) for every int16 x, indexed by the raw 16 bits, as int16."""
    x = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64)
    out = (logistic if function == "logistic" else tanh)(x, integer_bits)
    out = out.astype(np.int16)
    out.setflags(write=False)
    return out
