"""engine/fixedpoint.py against hand-worked values and an independent pure-Python-int model.

The Python model is written from the arithmetic meaning, not from the C++ code path:
- SaturatingRoundingDoublingHighMul(a, b) = floor(a*b / 2**31 + 1/2) (the nudge and C++'s truncating
  division together round halves toward +inf), except a == b == INT32_MIN, which saturates to INT32_MAX;
- RoundingDivideByPOT(x, e) = x / 2**e rounded to nearest, halves away from zero;
- QuantizeMultiplier(r) = (round_half_away(q * 2**31), e) with r = q * 2**e, q in [0.5, 1), exactly
  (Fractions), renormalized when the rounding reaches 2**31, flushed to (0, 0) below 2**-32.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from numba import njit

from engine.kernels import requantize
from engine.kernels.requantize import RequantDouble, requantize_rows
from engine.numerics import fixedpoint as fp

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
N_RANDOM = 200_000


# ---------------------------------------------------------------- the independent Python-int model


def wrap32(x: int) -> int:
    return (x + 2**31) % 2**32 - 2**31


def ref_srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    return (a * b + 2**30) >> 31  # Python >> floors


def ref_rdbp(x: int, e: int) -> int:
    if e == 0:
        return x
    q = (abs(x) + (1 << (e - 1))) >> e  # |x| / 2**e, halves up
    return q if x >= 0 else -q


def ref_mbqm(x: int, m: int, shift: int) -> int:
    # the left shift is done in int32 (wraps in practice), the right shift rounds a second time
    return ref_rdbp(ref_srdhm(wrap32(x * 2 ** max(shift, 0)), m), max(-shift, 0))


def ref_round_half_away(v: Fraction) -> int:
    n = math.floor(abs(v) + Fraction(1, 2))
    return n if v >= 0 else -n


def ref_quantize_multiplier(real: float) -> tuple[int, int]:
    if real == 0.0:
        return 0, 0
    r = Fraction(real)
    e = math.floor(math.log2(abs(real))) + 1  # candidate, corrected exactly below
    while abs(r) >= Fraction(2) ** e:
        e += 1
    while abs(r) < Fraction(2) ** (e - 1):
        e -= 1
    q_fixed = ref_round_half_away(r / Fraction(2) ** e * 2**31)
    if abs(q_fixed) == 2**31:
        q_fixed //= 2
        e += 1
    if e < -31:
        return 0, 0
    return q_fixed, e


# ---------------------------------------------------------------- vectorized calls of the njit code


@njit(cache=True)
def vec_srdhm(a, b):
    out = np.empty(a.size, np.int64)
    for i in range(a.size):
        out[i] = fp.saturating_rounding_doubling_high_mul(a[i], b[i])
    return out


@njit(cache=True)
def vec_rdbp(x, e):
    out = np.empty(x.size, np.int64)
    for i in range(x.size):
        out[i] = fp.rounding_divide_by_pot(x[i], e[i])
    return out


@njit(cache=True)
def vec_mbqm(x, m, s):
    out = np.empty(x.size, np.int64)
    for i in range(x.size):
        out[i] = fp.multiply_by_quantized_multiplier(x[i], m[i], s[i])
    return out


@njit(cache=True)
def vec_mbqm_smaller(x, m, s):
    out = np.empty(x.size, np.int64)
    for i in range(x.size):
        out[i] = fp.multiply_by_quantized_multiplier_smaller_than_one_exp(x[i], m[i], s[i])
    return out


@njit(cache=True)
def vec_mbqm_greater(x, m, s):
    out = np.empty(x.size, np.int64)
    for i in range(x.size):
        out[i] = fp.multiply_by_quantized_multiplier_greater_than_one(x[i], m[i], s[i])
    return out


@njit(cache=True)
def vec_wrap(x):
    out = np.empty(x.size, np.int64)
    for i in range(x.size):
        out[i] = fp.wrap_int32(x[i])
    return out


def int32_samples(rng: np.random.Generator, n: int) -> np.ndarray:
    """Full-range values mixed with small ones, powers of two (+-1) and the extremes."""
    special = [INT32_MIN, INT32_MIN + 1, -(2**30), -(2**30) - 1, -3, -2, -1, 0, 1, 2, 3, 2**30, 2**30 + 1]
    special += [INT32_MAX - 1, INT32_MAX]
    pots = [s * (2**k + d) for k in range(31) for d in (-1, 0, 1) for s in (1, -1)]
    pots = [p for p in pots if INT32_MIN <= p <= INT32_MAX]
    full = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True)
    small = rng.integers(-5000, 5000, n)
    pick = rng.integers(0, 4, n)
    x = np.where(pick == 0, small, full)
    x = np.where(pick == 1, rng.choice(np.array(special + pots, np.int64), n), x)
    return x.astype(np.int64)


def multipliers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mostly real quantized multipliers ([2**30, 2**31)), some anything-goes int32 values."""
    m = rng.integers(2**30, 2**31, n)
    wild = int32_samples(rng, n)
    return np.where(rng.random(n) < 0.2, wild, m).astype(np.int64)


def assert_same(got: np.ndarray, want: list[int], *args: np.ndarray) -> None:
    want = np.array(want, np.int64)
    bad = np.flatnonzero(got != want)
    if bad.size:
        i = bad[0]
        case = ", ".join(str(int(a[i])) for a in args)
        pytest.fail(f"{bad.size} mismatches; first: f({case}) = {int(got[i])}, expected {int(want[i])}")


# ---------------------------------------------------------------- hand-worked cases


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        (INT32_MIN, INT32_MIN, INT32_MAX),  # the one overflow: saturates
        (INT32_MIN, INT32_MAX, INT32_MIN + 1),  # -2**31 * (2**31-1) / 2**31 = -(2**31 - 1)
        (INT32_MAX, INT32_MAX, INT32_MAX - 1),
        (2**30, 1, 1),  # +0.5 rounds up
        (-(2**30), 1, 0),  # -0.5 rounds toward zero (truncating division), not to -1
        (-(2**30) - 1, 1, -1),  # just past -0.5
        (2**30, 3, 2),  # 1.5 -> 2
        (-(2**30), 3, -1),  # -1.5 -> -1
        (2**30, 2**30, 2**29),
        (0, INT32_MIN, 0),
        (INT32_MIN, 2**30, -(2**30)),
    ],
)
def test_srdhm_hand(a, b, want):
    assert ref_srdhm(a, b) == want
    assert vec_srdhm(np.array([a], np.int64), np.array([b], np.int64))[0] == want
    # and on int32 arguments, as kernels pass them
    assert vec_srdhm(np.array([a], np.int32), np.array([b], np.int32))[0] == want


@pytest.mark.parametrize(
    ("x", "e", "want"),
    [
        (-5, 1, -3),  # -2.5: halves go away from zero
        (5, 1, 3),
        (-4, 1, -2),
        (-6, 2, -2),  # -1.5
        (6, 2, 2),  # 1.5
        (-2, 2, -1),  # -0.5
        (2, 2, 1),
        (-1, 1, -1),
        (1, 1, 1),
        (-7, 3, -1),  # -0.875
        (-3, 3, 0),  # -0.375
        (12345, 0, 12345),
        (-12345, 0, -12345),
        (INT32_MIN, 31, -1),
        (INT32_MAX, 31, 1),
        (INT32_MIN, 30, -2),
        (2**30, 31, 1),  # exactly 0.5
        (-(2**30), 31, -1),  # exactly -0.5
        (2**30 - 1, 31, 0),
    ],
)
def test_rdbp_hand(x, e, want):
    assert ref_rdbp(x, e) == want
    assert vec_rdbp(np.array([x], np.int64), np.array([e], np.int64))[0] == want
    assert vec_rdbp(np.array([x], np.int32), np.array([e], np.int32))[0] == want


@pytest.mark.parametrize(
    ("x", "m", "shift", "want"),
    [
        (100, 2**30, 0, 50),  # x * 0.5
        (100, 2**30, -1, 25),
        (100, 2**30, -2, 13),  # 12.5 -> 13
        (-100, 2**30, -2, -13),  # -12.5 -> -13
        (3, 2**30, 2, 6),  # left shift: 3 * 4 * 0.5
        (3, 2**30, -1, 1),  # SRDHM gives 2 (1.5 up), then 2/2 = 1
        (-3, 2**30, -1, -1),  # SRDHM gives -1 (-1.5 toward +inf), then -0.5 -> -1
        (5, 2**30, -1, 2),  # 2.5 -> 3 (SRDHM), 3/2 = 1.5 -> 2: double rounding (exact 1.25)
        (0, 2**31 - 1, 5, 0),
        (2**20, 2**30, 10, 2**29),
    ],
)
def test_mbqm_hand(x, m, shift, want):
    assert ref_mbqm(x, m, shift) == want
    args = (np.array([x], np.int64), np.array([m], np.int64), np.array([shift], np.int64))
    assert vec_mbqm(*args)[0] == want


def test_wrap_int32():
    x = np.array([0, 2**31, 2**31 - 1, -(2**31) - 1, 2**32 + 5, -(2**40) + 3, 2**62], np.int64)
    want = [wrap32(int(v)) for v in x]
    assert vec_wrap(x).tolist() == want
    assert want[:4] == [0, INT32_MIN, INT32_MAX, INT32_MAX]


# ---------------------------------------------------------------- random comparisons


def test_srdhm_random():
    rng = np.random.default_rng(10)
    a, b = int32_samples(rng, N_RANDOM), int32_samples(rng, N_RANDOM)
    a[:3], b[:3] = INT32_MIN, [INT32_MIN, INT32_MAX, -1]
    want = [ref_srdhm(int(x), int(y)) for x, y in zip(a.tolist(), b.tolist())]
    assert_same(vec_srdhm(a, b), want, a, b)
    assert_same(vec_srdhm(a.astype(np.int32), b.astype(np.int32)), want, a, b)


def test_rdbp_random():
    rng = np.random.default_rng(11)
    x = int32_samples(rng, N_RANDOM)
    e = rng.integers(0, 32, N_RANDOM)
    want = [ref_rdbp(int(v), int(k)) for v, k in zip(x.tolist(), e.tolist())]
    assert_same(vec_rdbp(x, e), want, x, e)
    assert_same(vec_rdbp(x.astype(np.int32), e.astype(np.int32)), want, x, e)


def test_mbqm_random_all_shifts():
    rng = np.random.default_rng(12)
    x = int32_samples(rng, N_RANDOM)
    m = multipliers(rng, N_RANDOM)
    s = np.resize(np.arange(-31, 31), N_RANDOM)  # every shift -31..30, equally often
    rng.shuffle(s)
    # keep most left shifts in range (kernels never overflow there), a few wrap
    overflow = (np.abs(x) << np.maximum(s, 0)) > INT32_MAX
    x = np.where(overflow & (rng.random(N_RANDOM) < 0.9), x >> np.maximum(s, 0), x)
    want = [ref_mbqm(int(a), int(b), int(c)) for a, b, c in zip(x.tolist(), m.tolist(), s.tolist())]
    assert_same(vec_mbqm(x, m, s), want, x, m, s)
    assert_same(vec_mbqm(x.astype(np.int32), m.astype(np.int32), s.astype(np.int32)), want, x, m, s)


def ref_ruy(x: int, m: int, shift: int) -> int:
    """ruy's x86 rounding: the same high multiply, the right shift rounded half up."""
    q = ref_srdhm(wrap32(x * 2 ** max(shift, 0)), m)
    e = max(-shift, 0)
    return q if e == 0 else (q + (1 << (e - 1))) >> e


@pytest.mark.parametrize("below", [0, 1])
def test_ruy_rule_stands_for_reference_where_clamped(below):
    """requantize.cheapest: where the clamp starts at the zero point (lo >= zp) the reference rule and
    ruy's give the same outputs, so the cheaper ruy runs; one below it they differ (the check can fail)."""
    rng = np.random.default_rng(21)
    n = 20_000
    tiny = rng.random(n) < 0.5  # high products of a few units: halves (ties) near zero, where the rules part
    x = np.where(tiny, rng.integers(-6, 7, n), rng.integers(-(2**20), 2**20, n))
    m = rng.integers(2**30, 2**31, n)
    shift = np.where(tiny, rng.integers(-3, 0, n), rng.integers(-12, 3, n))  # (left shifts too)
    zp = rng.integers(-128, 128, n)
    differ = 0
    for a, b, c, z in zip(x.tolist(), m.tolist(), shift.tolist(), zp.tolist()):
        lo = z - below
        assert requantize.cheapest("reference", z, lo) == ("ruy" if below == 0 else "reference")
        ref, ruy = (max(lo, min(127, f(a, b, c) + z)) for f in (ref_mbqm, ref_ruy))
        differ += ref != ruy
        if below == 0:
            assert ref == ruy, (a, b, c, z)
    assert below == 0 or differ > 0
    assert requantize.cheapest("fp32", 0, 0) == "fp32" and requantize.cheapest("ruy", 0, -1) == "ruy"


def test_mbqm_variants_random():
    rng = np.random.default_rng(13)
    n = N_RANDOM // 4
    x, m = int32_samples(rng, n), multipliers(rng, n)
    right = -rng.integers(0, 32, n)
    want = [
        ref_rdbp(ref_srdhm(int(a), int(b)), -int(c))
        for a, b, c in zip(x.tolist(), m.tolist(), right.tolist())
    ]
    assert_same(vec_mbqm_smaller(x, m, right), want, x, m, right)
    left = rng.integers(0, 31, n)
    x = x >> left  # in range, as in kernels
    want = [ref_srdhm(int(a) << int(c), int(b)) for a, b, c in zip(x.tolist(), m.tolist(), left.tolist())]
    assert_same(vec_mbqm_greater(x, m, left), want, x, m, left)


# ---------------------------------------------------------------- QuantizeMultiplier


@pytest.mark.parametrize(
    ("real", "want"),
    [
        (0.0, (0, 0)),
        (0.5, (2**30, 0)),
        (1.0, (2**30, 1)),
        (0.75, (3 * 2**29, 0)),
        (0.25, (2**30, -1)),
        (2.0, (2**30, 2)),
        (3.0, (3 * 2**29, 2)),
        (1 - 2**-31, (2**31 - 1, 0)),  # q * 2**31 = 2**31 - 1 exactly
        (1 - 2**-32, (2**30, 1)),  # q * 2**31 = 2**31 - 0.5 rounds (away) to 2**31: renormalized
        (1 - 2**-33, (2**30, 1)),  # 2**31 - 0.25 rounds to 2**31 as well
        (0.5 + 2**-33, (2**30, 0)),  # 2**30 + 0.25 rounds down
        (0.5 + 2**-32, (2**30 + 1, 0)),  # 2**30 + 0.5 rounds away from zero
        (2**-32, (2**30, -31)),  # smallest kept exponent
        (2**-33, (0, 0)),  # flushed to zero
        (1e-12, (0, 0)),
        (-0.5, (-(2**30), 0)),
        (1.5 * 2**-20, (3 * 2**29, -19)),
    ],
)
def test_quantize_multiplier_hand(real, want):
    assert ref_quantize_multiplier(real) == want
    assert fp.quantize_multiplier(real) == want


def test_quantize_multiplier_random():
    rng = np.random.default_rng(14)
    reals = np.exp2(rng.uniform(-40, 20, 20_000))
    # values whose mantissa sits just below 1 or at a rounding half, where the rounding matters
    near = [math.ldexp(1 - k * 2**-33, e) for k in range(5) for e in range(-33, 10)]
    halves = [math.ldexp(0.5 + (2 * k + 1) * 2**-32, e) for k in range(5) for e in range(-5, 5)]
    for r in [*reals.tolist(), *near, *halves]:
        m, shift = fp.quantize_multiplier(r)
        assert (m, shift) == ref_quantize_multiplier(r), r
        if m:
            assert 2**30 <= m < 2**31 and -31 <= shift
            assert abs(m * 2.0 ** (shift - 31) - r) <= r * 2**-31


def test_quantize_multiplier_smaller_greater():
    assert fp.quantize_multiplier_smaller_than_one_exp(0.3) == fp.quantize_multiplier(0.3)
    assert fp.quantize_multiplier_smaller_than_one_exp(0.3)[1] <= 0
    assert fp.quantize_multiplier_greater_than_one(5.0) == (5 * 2**28, 3)


# ---------------------------------------------------------------- round_half_away / activation_range


@pytest.mark.parametrize(
    ("x", "want"),
    [
        (0.5, 1),
        (-0.5, -1),
        (1.5, 2),
        (2.5, 3),
        (-2.5, -3),
        (0.49999997, 0),
        (-1.4999999, -1),
        (0.0, 0),
        (7.0, 7),
    ],
)
def test_round_half_away(x, want):
    assert fp.round_half_away(x) == want


def test_round_half_away_largest_double_below_half():
    # std::round(0.49999999999999994) == 0; floor(x + 0.5) gives 1 because x + 0.5 rounds up to 1.0
    assert fp.round_half_away(0.49999999999999994) == 0
    assert fp.round_half_away(-0.49999999999999994) == 0


def test_round_half_away_random():
    rng = np.random.default_rng(15)
    xs = (rng.standard_normal(20_000) * np.exp2(rng.integers(-10, 60, 20_000))).tolist()
    halves = [k + 0.5 for k in range(-1000, 1000)] + [2.0**52 + 1, -(2.0**52) - 1, 2.0**53, 2.0**60 + 2**8]
    near = [math.nextafter(h, t) for h in halves for t in (-math.inf, math.inf)]
    for x in xs + halves + near:
        assert fp.round_half_away(x) == ref_round_half_away(Fraction(x)), x


@njit
def _double_rows(sums, rq, out):
    requantize_rows(sums, sums.size, np.zeros(1, np.int32), rq, out)


def test_requantize_double_rounds_as_the_reference():
    """RequantDouble's rule (truncating v + copysign(HALF_DOWN, v)) in the row loop, against round half away
    from zero of the double product, exactly: ties (scales 2**-k), their neighbours, random scales, every
    clamp. (The fused epilogue's, VectorIR.requantize_double: test_ops_conv's ties suite.)"""
    rng = np.random.default_rng(16)
    n = 30_000
    sums = np.concatenate([rng.integers(-(2**31), 2**31, n), rng.integers(-300, 300, n)]).astype(np.int32)
    bias = np.concatenate([rng.integers(-(2**31), 2**31, n), rng.integers(-300, 300, n)]).astype(np.float64)
    ties = 0.5 ** rng.integers(1, 12, n)
    near = np.nextafter(ties, rng.choice([0.0, 1.0], n))
    scale = np.concatenate([rng.random(n) * np.exp2(rng.integers(-30, 2, n)), np.where(rng.random(n) < 0.5, ties, near)])
    products = (sums.astype(np.float64) + bias) * scale  # the reference's double(acc) * scale
    exact = [ref_round_half_away(Fraction(float(v))) for v in products]
    # the reference: the rounded value as int32 (x86: INT32_MIN out of range), plus the zero point in
    # int32 (wrapping), clamped
    as_int32 = [e if -(2**31) <= e < 2**31 else -(2**31) for e in exact]
    for zp, lo, hi in ((0, -(2**31), 2**31 - 1), (5, -128, 127), (-3, 0, 255), (200, 0, 255), (-128, -128, 127)):
        want = [min(max((q + zp + 2**31) % 2**32 - 2**31, lo), hi) for q in as_int32]
        rq = RequantDouble(np.stack([bias, scale]), zp, lo, hi)
        got = np.zeros((1, 2 * n), np.int32)
        _double_rows(sums, rq, got)
        assert got[0].tolist() == want


@pytest.mark.parametrize(
    ("act", "scale", "zp", "dtype", "want"),
    [
        ("NONE", 0.1, -2, np.int8, (-128, 127)),
        ("RELU", 0.1, -2, np.int8, (-2, 127)),
        ("RELU6", 0.1, -2, np.int8, (-2, 58)),
        ("RELU_N1_TO_1", 0.1, -2, np.int8, (-12, 8)),
        ("RELU6", 0.5, 120, np.int8, (120, 127)),  # 6.0 is beyond the range: clamped to qmax
        ("RELU", 0.1, -128, np.int8, (-128, 127)),
        ("RELU6", 1 / 256, 0, np.uint8, (0, 255)),
        ("RELU6", 6 / 255, 0, np.uint8, (0, 255)),
        ("RELU", 0.02, 128, np.uint8, (128, 255)),
        ("RELU_N1_TO_1", 0.5, 200, np.uint8, (198, 202)),
        # -1 / float32(0.4) is -2.4999999627 in double but exactly -2.5 in float32: TFLite divides in
        # float, so it rounds to -3 (a double division would give -2)
        ("RELU_N1_TO_1", 0.4, 0, np.int8, (-3, 3)),
        ("NONE", 0.1, 0, np.int16, (-32768, 32767)),
    ],
)
def test_activation_range(act, scale, zp, dtype, want):
    assert fp.activation_range(act, np.float32(scale), zp, np.dtype(dtype)) == want


def test_activation_range_rejects_unknown():
    with pytest.raises(ValueError):
        fp.activation_range("TANH", 0.1, 0, np.dtype(np.int8))


@pytest.mark.usefixtures("litert")
def test_activation_range_against_litert():
    """ADD with a fused activation, fed both extremes: LiteRT's clamp bounds equal activation_range."""
    from tests.oracle import reference_run_many
    from tests.tflite_builder import build_model

    cases = [("RELU_N1_TO_1", 0.4, 0), ("RELU6", 0.048, -3), ("RELU", 0.3, 5), ("RELU_N1_TO_1", 1 / 3, 1)]
    runs, models = [], []
    for act, scale, zp in cases:
        tensors = [
            {"name": "a", "shape": [1, 2], "dtype": "int8", "scale": [1.0], "zero_point": [0]},
            {"name": "b", "shape": [1, 2], "dtype": "int8", "scale": [1.0], "zero_point": [0]},
            {"name": "c", "shape": [1, 2], "dtype": "int8", "scale": [scale], "zero_point": [zp]},
        ]
        op = {"op": "ADD", "inputs": [0, 1], "outputs": [2], "options": {"fused_activation_function": act}}
        models.append(build_model(tensors, [op], [0, 1], [2]))
        runs.append([np.array([[-128, 127]], np.int8), np.array([[-128, 127]], np.int8)])
    for (act, scale, zp), model, run in zip(cases, models, runs):
        (res,) = reference_run_many(model, [run])
        lo, hi = res["outputs"][0][0].tolist()
        assert (lo, hi) == fp.activation_range(act, np.float32(scale), zp, np.dtype(np.int8)), (
            act,
            scale,
            zp,
        )
