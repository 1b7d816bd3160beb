"""The GEMM micro-kernels and the vector requantization against plain integer arithmetic.

The models and op tests cover them end to end on this CPU; these pin the pieces, including
the portable micro-kernel that CPUs without AVX2 run and the int16 form that CPUs without
VNNI run.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from engine.kernels import gemm
from engine.kernels.gemm import OCB, PX, Runs, pack_weights
from engine.kernels.requantize import Requant, params, requantize_pixels
from engine.numerics.fixedpoint import multiply_by_quantized_multiplier


def reference_tile(x, x_off, x_stride, w2d_runs, runs, x_run, k, px=PX):
    """sum over runs r and k of x[x_off + r*x_run + p*x_stride + k] * W_r[j, k] for px pixels."""
    out = np.zeros((px, w2d_runs[0].shape[0]), np.int64)
    for r in range(runs):
        for p in range(px):
            start = x_off + r * x_run + p * x_stride
            out[p] += w2d_runs[r].astype(np.int64) @ x[start : start + k].astype(np.int64)
    return out


def tile_kernels():
    """(name, kernel, data type, k group, pixels) of each micro-kernel this CPU runs."""
    kernels = [("gemm_s16_4x16c2_portable", gemm.gemm_s16_4x16c2_portable, np.int16, 2, PX)]
    if gemm._MADD:
        kernels.append(("tile (s16)", gemm.tile, np.int16, 2, PX))
        kernels.append(("tile_double (s16)", gemm.tile_double, np.int16, 2, 2 * PX))
    if gemm.VNNI:
        kernels.append(("gemm_u8s8_4x32c4_vnni", gemm.gemm_u8s8_4x32c4_vnni, np.uint8, 4, PX))
        kernels.append(("gemm_u8s8_8x32c4_vnni", gemm.gemm_u8s8_8x32c4_vnni, np.uint8, 4, 2 * PX))
        kernels.append(("tile (u8s8)", gemm.tile, np.uint8, 4, PX))
        kernels.append(("tile_double (u8s8)", gemm.tile_double, np.uint8, 4, 2 * PX))
    return kernels


@pytest.mark.parametrize(
    "name, tile, dtype, group, px", tile_kernels(), ids=lambda v: v if isinstance(v, str) else ""
)
@pytest.mark.parametrize("k, runs, accumulate", [(4, 1, False), (12, 3, True), (30, 2, False), (2, 5, True)])
def test_tile(name, tile, dtype, group, px, k, runs, accumulate):
    rng = np.random.default_rng(k * 10 + runs)
    kp = -(-k // group) * group
    lo, hi = (0, 256) if dtype == np.uint8 else (-255, 256)
    x = rng.integers(lo, hi, 2000).astype(dtype)
    w_lo, w_hi = (-128, 128) if dtype == np.uint8 else (-255, 256)
    w_runs = [rng.integers(w_lo, w_hi, (OCB, k)) for _ in range(runs)]
    w = np.concatenate([pack_weights(wr, group) for wr in w_runs])
    acc = rng.integers(-1000, 1000, px * 40).astype(np.int32)
    before = acc.copy()
    x_off, x_stride, x_run = 7, 23, 301

    @njit
    def call(x, w, acc):
        tile(x, w, Runs(x_off, x_stride, 0, kp // group, runs, x_run, kp * OCB), accumulate, acc, 3, 40)

    call(x, w, acc)
    want = reference_tile(x, x_off, x_stride, w_runs, runs, x_run, k, px)
    if accumulate:
        want += np.stack([before[3 + p * 40 : 3 + p * 40 + OCB] for p in range(px)])
    got = np.stack([acc[3 + p * 40 : 3 + p * 40 + OCB] for p in range(px)])
    np.testing.assert_array_equal(got, want)
    # nothing written outside the px rows of OCB sums
    outside = np.ones(acc.size, bool)
    for p in range(px):
        outside[3 + p * 40 : 3 + p * 40 + OCB] = False
    np.testing.assert_array_equal(acc[outside], before[outside])


@njit
def _scalar_requantize(acc, bias, mult, shift, zp, lo, hi, out):
    for o in range(out.shape[0]):
        v = multiply_by_quantized_multiplier(acc[o] + bias[o], mult[o], shift[o]) + zp
        out[o] = min(max(v, lo), hi)


@pytest.mark.parametrize("trial", range(40))
def test_requantize_matches_fixed_point(trial):
    """Random sums (the int32 extremes included), multipliers, shifts of either sign, 0 and 2**31
    - 1 multipliers, both output types; channel counts that leave a masked tail."""
    rng = np.random.default_rng(trial)
    n = int(rng.integers(1, 200))
    wide = trial % 3 == 0
    acc = rng.integers(-(2**31), 2**31, n) if wide else rng.integers(-300000, 300000, n)
    bias = rng.integers(-(2**31), 2**31, n) if trial % 5 == 0 else rng.integers(-3000, 3000, n)
    mult = rng.choice([0, 2**30, 2**31 - 1, *rng.integers(2**30, 2**31, 8)], n)
    shift = rng.integers(-31, 40, n) if trial % 2 else rng.integers(-12, 2, n)
    dtype = np.int8 if trial % 2 else np.uint8
    lo, hi = (-128, 127) if dtype == np.int8 else (0, 255)
    zp = int(rng.integers(lo, hi + 1))
    acc, bias, mult, shift = (a.astype(np.int32) for a in (acc, bias, mult, shift))
    buffer, want = np.full(n + 20, 7, dtype), np.empty(n, dtype)
    no_offsets = np.zeros(1, np.int32)
    requantize_pixels(
        acc, n, no_offsets, Requant(params(bias, mult, shift), zp, lo, hi), buffer[:n].reshape(1, n)
    )
    _scalar_requantize(acc, bias, mult, shift, zp, lo, hi, want)
    np.testing.assert_array_equal(buffer[:n], want)
    assert np.all(buffer[n:] == 7)  # the masked tail writes nothing beyond


def test_requantize_pixels_strided_with_offsets():
    rng = np.random.default_rng(7)
    pixels, oc, width = 5, 21, 32
    acc = rng.integers(-200000, 200000, pixels * width).astype(np.int32)
    offsets = rng.integers(-5000, 5000, pixels).astype(np.int32)
    bias = rng.integers(-3000, 3000, oc).astype(np.int32)
    mult = rng.integers(2**30, 2**31, oc).astype(np.int32)
    shift = rng.integers(-10, 1, oc).astype(np.int32)
    got = np.empty((pixels, oc), np.int8)
    requantize_pixels(acc, width, offsets, Requant(params(bias, mult, shift), -3, -128, 127), got)
    for p in range(pixels):
        want = np.empty(oc, np.int8)
        _scalar_requantize(
            acc[p * width : p * width + oc] + offsets[p], bias, mult, shift, -3, -128, 127, want
        )
        np.testing.assert_array_equal(got[p], want)
