"""The fused GEMM epilogue (gemm.tile_requantize) against the scalar rules, at the edges.

The epilogue rounds with one 64-bit floor per lane from widen()'s per-channel constants; these tests
drive it through 1x1 convolutions whose sums are known exactly (uint8 input, zero point 0) with the
int32 extremes (through the bias), multipliers 0, 2**30 and 2**31 - 1, right shifts 0 to 31, left
shifts, both output types and channel counts that leave a masked tail, and compare every output with
fixedpoint.py's rule (reference) and requantize.py's scalar ruy rule. The identity itself is checked
on Python integers with hypothesis.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from engine.kernels import gemm
from engine.kernels.kernel import serial_build
from engine.kernels.requantize import _ruy, params
from engine.numerics.fixedpoint import multiply_by_quantized_multiplier
from engine.ops import conv2d
from engine.ops.common import Window
from engine.ops.conv2d import Rescale, gemm_conv
from tests.harness import threaded_build

INT32 = st.integers(-(2**31), 2**31 - 1)
MULT = st.one_of(st.sampled_from([0, 2**30, 2**30 + 1, 2**31 - 1]), st.integers(2**30, 2**31 - 1))


def _floor_form(x: int, m: int, right: int, rule: str) -> int:
    """widen()'s one floor, on Python integers."""
    half = 1 << (right - 1) if right else 0
    c = (1 << 30) + (half << 31)
    d = (1 << 31) if right and rule == "reference" else 0
    prod = x * m
    return (prod + c - (d if prod < -(1 << 30) else 0)) >> (31 + right)


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(INT32, MULT, st.integers(0, 31))
def test_one_floor_is_both_roundings(x, m, right):
    want = int(multiply_by_quantized_multiplier(x, m, -right))
    assert _floor_form(x, m, right, "reference") == want
    table = params(np.zeros(1, np.int64), np.array([m]), np.array([-right]))
    ruy = int(_ruy(x, table, 0, 0, -(2**40), 2**40))
    assert _floor_form(x, m, right, "ruy") == ruy


@njit
def _want_reference(sums, bias, mult, shift, zp, lo, hi, out):
    for p in range(out.shape[0]):
        for o in range(out.shape[1]):
            v = np.int32(np.int64(sums[p, o]) + bias[o])  # C's int32 wrap
            out[p, o] = min(max(multiply_by_quantized_multiplier(v, mult[o], shift[o]) + zp, lo), hi)


@njit
def _want_ruy(sums, table, zp, lo, hi, out):
    for p in range(out.shape[0]):
        for o in range(out.shape[1]):
            out[p, o] = _ruy(sums[p, o], table, o, zp, lo, hi)


def _channel_params(rng, oc: int, trial: int):
    edges_m = np.array([0, 2**30, 2**31 - 1, 2**30 + 1])
    mult = np.where(rng.random(oc) < 0.4, rng.choice(edges_m, oc), rng.integers(2**30, 2**31, oc))
    right = np.where(rng.random(oc) < 0.3, rng.choice([0, 1, 30, 31], oc), rng.integers(0, 32, oc))
    shift = -right
    if trial % 3 == 1:  # some channels shift left (the epilogue's other branch)
        shift = np.where(rng.random(oc) < 0.5, rng.integers(1, 6, oc), shift)
    bias = rng.integers(-(2**31), 2**31, oc)
    bias = np.where(rng.random(oc) < 0.2, rng.choice([-(2**31), 2**31 - 1, 0], oc), bias)
    if trial % 2:  # sums near zero too: the rounding's ties and signs
        bias = np.where(rng.random(oc) < 0.5, rng.integers(-3000, 3000, oc), bias)
    if trial % 4 == 0:  # small sums and right shifts: outputs inside the clamp, many exact ties
        bias = rng.integers(-60, 60, oc)
        right = rng.integers(0, 7, oc)
        shift = np.where(shift > 0, shift, -right)
    return mult.astype(np.int64), shift.astype(np.int64), bias.astype(np.int64)


@pytest.mark.skipif(not gemm.FUSED, reason="the fused epilogue needs AVX-512")
@pytest.mark.parametrize("rule", ["reference", "ruy"])
@pytest.mark.parametrize("trial", range(12))
@pytest.mark.parametrize("build", [serial_build, threaded_build], ids=["serial", "threaded"])
def test_fused_epilogue_matches_scalar_rules(rule, trial, build):
    rng = np.random.default_rng(trial)
    oc = [5, 16, 21, 32, 33, 40, 64, 7, 17, 48, 1, 100][trial]
    check_epilogue(rng, oc, int(rng.integers(1, 12)), (rule, build), trial, trial % 5 == 2, _channel_params)


def check_epilogue(rng, oc: int, w: int, how: tuple, trial: int, narrow: bool, channel_params):
    """A 1x1 convolution of 3 x w pixels through gemm_conv's fused epilogue (how: the rule and the
    build) against the scalar rule, exactly; channel_params(rng, oc, trial) gives (mult, shift, bias),
    returned. narrow: an activation's narrower clamp."""
    rule, build = how
    h, c = 3, int(rng.integers(1, 40))
    x = rng.integers(0, 4 if trial % 4 == 0 else 256, (1, h, w, c)).astype(np.uint8)
    if trial % 4 == 0:
        weights = rng.integers(-1, 2, (oc, 1, 1, c)).astype(np.int16)
    elif trial % 4 == 3:  # weights spanning more than int8: the GEMM's offset d and its window sums
        weights = rng.integers(0, 256, (oc, 1, 1, c)).astype(np.int16)
    else:
        weights = rng.integers(-128, 128, (oc, 1, 1, c)).astype(np.int16)
    mult, shift, bias = channel_params(rng, oc, trial)
    dtype = np.int8 if trial % 2 else np.uint8
    lo, hi = (-128, 127) if dtype == np.int8 else (0, 255)
    if narrow:
        lo, hi = lo + 20, hi - 30
    zp = int(rng.integers(lo, hi + 1))
    win = Window(1, 1, 1, 1, h, w, 0, 0, h, w)
    prep = gemm_conv(x.shape, "uint8", 0, weights, bias, Rescale(mult, shift, zp, (lo, hi), rule, None, "uint8"), win)
    out = np.full(prep.out_shapes[0], 99, dtype)
    scratch = [np.empty(shape, dt) for shape, dt in prep.scratch]
    for fn, args in prep.bind([x], [out], scratch):
        build(fn)(*args)
    sums = x.reshape(-1, c).astype(np.int64) @ weights.reshape(oc, c).T.astype(np.int64)
    want = np.empty((h * w, oc), dtype)
    if rule == "reference":
        _want_reference(sums, bias, mult, shift, zp, lo, hi, want)
    else:
        _want_ruy(sums, params(bias, mult, shift), zp, lo, hi, want)
    np.testing.assert_array_equal(out.reshape(-1, oc), want)
    if trial % 4 == 0:  # the data reach the rounding, not just the clamp
        assert np.unique(want).size > 5
    return mult, shift, bias


@pytest.mark.skipif(not gemm.VNNI, reason="int8 data flipped in the micro-kernel needs AVX-512 VNNI")
@pytest.mark.parametrize(
    "k, pixels, oc",  # rows of 4k + 1 and 4k + 2 pixels end in one-pixel tiles (conv.tile_requantize_part)
    [(1, (5, 5), 64), (1, (2, 7), 40), (3, (6, 9), 21), (2, (4, 4), 8), (3, (5, 7), 33), (3, (4, 8), 40)],
)
@pytest.mark.parametrize("build", [serial_build, threaded_build], ids=["serial", "threaded"])
def test_int8_flipped_in_kernel(k, pixels, oc, build, monkeypatch):
    """A small unpadded int8 convolution reads its input in place, each value's sign bit flipped in the
    micro-kernel (no pass over the input): the reference rule on (x - zero point) * w, exactly. (Any
    window here: production flips short ones only, conv2d.FLIP_K_GROUPS.)"""
    monkeypatch.setattr(conv2d, "FLIP_K_GROUPS", 1 << 20)
    rng = np.random.default_rng(k * 100 + oc)
    (h, w), c = pixels, int(rng.integers(3, 50))
    x = rng.integers(-128, 128, (1, h, w, c)).astype(np.int8)
    weights = rng.integers(-127, 128, (oc, k, k, c)).astype(np.int16)
    mult, shift, bias = _channel_params(rng, oc, 0)
    in_zp, zp = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
    oh, ow = h - k + 1, w - k + 1
    win = Window(1, 1, 1, 1, oh, ow, 0, 0, h, w)
    prep = gemm_conv(x.shape, "int8", in_zp, weights, bias, Rescale(mult, shift, zp, (-128, 127), "reference", None, "int8"), win)
    out = np.full(prep.out_shapes[0], 99, np.int8)
    scratch = [np.empty(shape, dt) for shape, dt in prep.scratch]
    calls = prep.bind([x], [out], scratch)
    assert len(calls) == 1  # no pass over the input
    for fn, args in calls:
        build(fn)(*args)
    xs = x.astype(np.int64) - in_zp
    sums = np.zeros((oh * ow, oc), np.int64)
    for ky in range(k):
        for kx in range(k):
            patch = xs[0, ky : ky + oh, kx : kx + ow].reshape(-1, c)
            sums += patch @ weights[:, ky, kx].T.astype(np.int64)
    want = np.empty((oh * ow, oc), np.int8)
    _want_reference(sums, bias, mult, shift, zp, -128, 127, want)
    np.testing.assert_array_equal(out.reshape(-1, oc), want)
