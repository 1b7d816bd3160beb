"""Numba kernels shared by the convolution-like ops.

Inputs arrive with their zero point already subtracted and any padding materialised as zeros
(pad_input), so the inner loops are plain int16 dot products that LLVM turns into vpmaddwd.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..fixedpoint import multiply_by_quantized_multiplier


@njit(parallel=True, cache=True)
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
def dot(a, b, n):
    """int32 dot product of two int16 vectors; the final narrowing lets LLVM emit vpmaddwd."""
    acc = np.int32(0)
    for j in range(n):
        acc += np.int32(a[j]) * np.int32(b[j])
    return np.int32(acc)


@njit(inline="always", cache=True)
def requantize(acc, multiplier, shift, out_zp, lo, hi):
    v = multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zp
    return min(max(v, lo), hi)


@njit(parallel=True, cache=True)
def conv2d(xp, w, bias, mult, shift, out_zp, lo, hi, kh, kw, sh, sw, dh, dw, out):
    """xp: padded int16 [N, Hp, Wp, C]; w: int16 [OC, kh*kw*C]; out: [N, OH, OW, OC]."""
    n, oh, ow, oc = out.shape
    c = xp.shape[3]
    k = kh * kw * c
    for i in prange(n * oh):
        b = i // oh
        oy = i % oh
        patch = np.empty(k, np.int16)
        acc = np.empty(oc, np.int32)  # storing to int32 lets LLVM keep the dot products in 32 bits
        for ox in range(ow):
            p = 0
            for ky in range(kh):
                for kx in range(kw):
                    iy = oy * sh + ky * dh
                    ix = ox * sw + kx * dw
                    for ch in range(c):
                        patch[p] = xp[b, iy, ix, ch]
                        p += 1
            for o in range(oc):
                acc[o] = dot(patch, w[o], k)
            for o in range(oc):
                out[b, oy, ox, o] = requantize(acc[o] + bias[o], mult[o], shift[o], out_zp, lo, hi)


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
def fully_connected(x, x_zp, w, bias, mult, shift, out_zp, lo, hi, out):
    """x: [B, K] int8/uint8; w: int16 [U, K] (zero point subtracted); out: [B, U]."""
    bsz, k = x.shape
    units = w.shape[0]
    for i in prange(bsz):
        xv = np.empty(k, np.int16)
        for j in range(k):
            xv[j] = np.int16(x[i, j]) - x_zp
        acc = np.empty(units, np.int32)
        for u in range(units):
            acc[u] = dot(xv, w[u], k)
        for u in range(units):
            out[i, u] = requantize(acc[u] + bias[u], mult[u], shift[u], out_zp, lo, hi)
