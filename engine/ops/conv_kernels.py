"""Numba kernels shared by the convolution-like ops.

Inputs arrive with their zero point already subtracted and any padding materialised as zeros
(pad_input); convolutions and fully connected layers are then int16 matrix products (gemm.py).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..fixedpoint import multiply_by_quantized_multiplier
from .gemm import OCB, PX, gemm_rows
from .kernel import kernel


@kernel
def pad_input(x, zero_point, top, left, out):
    """out[n, top+y, left+x, c] = x[n, y, x, c] - zero_point; the border of out stays as it was (zeros)."""
    n, h, w, c = x.shape
    for i in prange(n * h):
        b = i // h
        y = i % h
        for xx in range(w):
            for ch in range(c):
                out[b, top + y, left + xx, ch] = np.int16(x[b, y, xx, ch]) - zero_point


@njit(inline="always", cache=True)
def requantize(acc, multiplier, shift, out_zp, lo, hi):
    v = multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zp
    return min(max(v, lo), hi)


@kernel
def conv2d(xp, w, blocks, bias, mult, shift, out_zp, lo, hi, kh, kw, sh, sw, dh, dw, out):
    """xp: padded int16 [N, Hp, Wp, C]; w: packed by gemm.pack_weights; out: [N, OH, OW, OC].

    Each output row is one matrix product: its im2col patches [OW, K] times the weights.
    """
    n, oh, ow, oc = out.shape
    c = xp.shape[3]
    k = kh * kw * c
    kp = k + k % 2
    rows = -(-ow // PX) * PX
    width = blocks * OCB
    for i in prange(n * oh):
        b = i // oh
        oy = i % oh
        patch = np.zeros(rows * kp, np.int16)
        acc = np.empty(rows * width, np.int32)
        for ox in range(ow):
            p = ox * kp
            for ky in range(kh):
                iy = oy * sh + ky * dh
                for kx in range(kw):
                    ix = ox * sw + kx * dw
                    for ch in range(c):
                        patch[p] = xp[b, iy, ix, ch]
                        p += 1
        gemm_rows(patch, kp, ow, w, blocks, acc)
        for ox in range(ow):
            for o in range(oc):
                out[b, oy, ox, o] = requantize(
                    acc[ox * width + o] + bias[o], mult[o], shift[o], out_zp, lo, hi
                )


@kernel
def depthwise_conv2d(xp, w, bias, mult, shift, out_zp, lo, hi, depth_multiplier, sh, sw, dh, dw, out):
    """xp: padded int16 [N, Hp, Wp, C]; w: int16 [kh, kw, C*dm]; out: [N, OH, OW, C*dm]."""
    n, oh, ow, oc = out.shape
    kh, kw = w.shape[0], w.shape[1]
    for i in prange(n * oh):
        b = i // oh
        oy = i % oh
        acc = np.empty(oc, np.int32)
        for ox in range(ow):
            for o in range(oc):
                acc[o] = bias[o]
            for ky in range(kh):
                iy = oy * sh + ky * dh
                for kx in range(kw):
                    ix = ox * sw + kx * dw
                    if depth_multiplier == 1:
                        for o in range(oc):
                            acc[o] += np.int32(xp[b, iy, ix, o]) * np.int32(w[ky, kx, o])
                    else:
                        for o in range(oc):
                            acc[o] += np.int32(xp[b, iy, ix, o // depth_multiplier]) * np.int32(w[ky, kx, o])
            for o in range(oc):
                out[b, oy, ox, o] = requantize(acc[o], mult[o], shift[o], out_zp, lo, hi)


@njit(inline="always", cache=True)
def requantize_double(acc, scale, out_zp, lo, hi):
    """int32(std::round(double(acc) * scale)) + zero point, clamped: the reference FULLY_CONNECTED."""
    v = np.float64(acc) * scale
    whole = math.floor(abs(v))
    r = whole + (1.0 if abs(v) - whole >= 0.5 else 0.0)  # half away from zero, exact
    r = min(max(math.copysign(r, v), -2147483648.0), 2147483647.0)
    return min(max(np.int64(r) + out_zp, lo), hi)


@kernel
def fully_connected(x, x_zp, w, blocks, bias, scale, out_zp, lo, hi, out):
    """x: [B, K] int8/uint8; w: packed by gemm.pack_weights; scale: float64 per unit; out: [B, U]."""
    bsz, k = x.shape
    units = out.shape[1]
    kp = k + k % 2
    width = blocks * OCB
    for t in prange(-(-bsz // PX)):
        r0 = t * PX
        n = min(PX, bsz - r0)
        xv = np.zeros(PX * kp, np.int16)
        acc = np.empty(PX * width, np.int32)
        for r in range(n):
            for j in range(k):
                xv[r * kp + j] = np.int16(x[r0 + r, j]) - x_zp
        gemm_rows(xv, kp, n, w, blocks, acc)
        for r in range(n):
            for u in range(units):
                out[r0 + r, u] = requantize_double(acc[r * width + u] + bias[u], scale[u], out_zp, lo, hi)
