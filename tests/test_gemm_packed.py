"""The GEMM's row path (gemm.tiles_requantize) and its packed epilogue, against the scalar rules.

A row's whole tiles run in one call; where every live channel's right shift is 1 to 21 and none shifts
left, widen()'s WIDE_Z row folds the output zero point into the 64-bit floor, and the results are packed
to bytes with saturation, clamped as bytes and stored a pixel at a time (gemm._RowPacked). These tests
drive both through 1x1 convolutions whose sums are known exactly (uint8 input, zero point 0), with the
int32 extremes (through the bias), multipliers 0, 2**30 and 2**31 - 1, channels of multiplier 0 with any
shift, both output types, activation clamps and channel counts of one or two halves and masked tails.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.kernels import gemm
from engine.kernels.kernel import serial_build
from engine.kernels.requantize import WIDE, fold_zero_point, params, widen
from tests.harness import threaded_build
from tests.test_gemm_fused import INT32, MULT, _floor_form, check_epilogue


@settings(max_examples=2000, deadline=None, derandomize=True)
@given(INT32, MULT, st.integers(1, 21), st.integers(-128, 255))
def test_zero_point_folds_into_the_floor(x, m, right, zp):
    """floor((x*M + C + zp * 2**N - D*[neg]) / 2**N) is the rounded result plus zp, within int32."""
    for rule in ("reference", "ruy"):
        half = 1 << (right - 1)
        c = (1 << 30) + (half << 31) + (zp << (31 + right))
        d = (1 << 31) if rule == "reference" else 0
        prod = x * m
        folded = (prod + c - (d if prod < -(1 << 30) else 0)) >> (31 + right)
        assert folded == _floor_form(x, m, right, rule) + zp
        assert abs(folded) < 2**31
        assert abs(prod) + abs(c) + d < 2**63


def _header(table: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(table[WIDE:]).reshape(-1)[:4].view(np.int64)


def test_fold_only_where_exact():
    bias = np.zeros(3, np.int64)
    mult = np.array([2**30, 2**31 - 1, 0])
    for shift, want in [
        ((-1, -21, 5), True),
        ((-1, -22, -3), False),
        ((0, -3, -3), False),
        ((2, -3, -3), False),
    ]:
        table = params(bias, mult, np.array(shift))
        assert fold_zero_point(table) == want, shift
        assert _header(widen(table, "reference", 7))[1] == want
        assert _header(widen(table, "reference"))[1] == 0  # no zero point given: no fold


def _channel_params(rng, oc: int, trial: int):
    """Right shifts 1 to 21 on the live channels (the fold's domain), multipliers at their edges, and
    channels of multiplier 0 with any shift, left ones too."""
    edges_m = np.array([0, 2**30, 2**31 - 1, 2**30 + 1])
    mult = np.where(rng.random(oc) < 0.4, rng.choice(edges_m, oc), rng.integers(2**30, 2**31, oc))
    right = np.where(rng.random(oc) < 0.3, rng.choice([1, 2, 21], oc), rng.integers(1, 22, oc))
    shift = np.where(mult == 0, rng.integers(-31, 6, oc), -right)
    bias = rng.integers(-(2**31), 2**31, oc)
    bias = np.where(rng.random(oc) < 0.2, rng.choice([-(2**31), 2**31 - 1, 0], oc), bias)
    if trial % 2:  # sums near zero: the rounding's ties and signs
        bias = np.where(rng.random(oc) < 0.5, rng.integers(-3000, 3000, oc), bias)
    if trial % 4 == 0:  # small sums and shifts: outputs inside the clamp, many exact ties
        bias = rng.integers(-60, 60, oc)
        shift = np.where(mult == 0, shift, -rng.integers(1, 7, oc))
    return mult.astype(np.int64), shift.astype(np.int64), bias.astype(np.int64)


@pytest.mark.skipif(not gemm.FUSED, reason="the fused epilogue needs AVX-512")
@pytest.mark.parametrize("rule", ["reference", "ruy"])
@pytest.mark.parametrize("trial", range(10))
@pytest.mark.parametrize("build", [serial_build, threaded_build], ids=["serial", "threaded"])
def test_packed_epilogue_matches_scalar_rules(rule, trial, build):
    rng = np.random.default_rng(500 + trial)
    oc = [8, 16, 21, 32, 33, 40, 64, 7, 17, 96][trial]
    how = (rule, build)
    mult, shift, bias = check_epilogue(rng, oc, int(rng.integers(8, 20)), how, trial, trial % 3 == 2, _channel_params)
    assert fold_zero_point(params(bias, mult, shift))  # the packed path ran
