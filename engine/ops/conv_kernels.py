"""Numba kernels shared by the convolution-like ops.

Inputs arrive with their zero point already subtracted and any padding materialised as zeros
(pad_input); convolutions and fully connected layers are then int16 matrix products (gemm.py).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .gemm import OCB, PX, gemm_rows, tile
from .kernel import kernel
from .requantize import requantize_row


@kernel
def pad_input(x, delta, fill, top, left, repeat, out):
    """out[n, top+y, left+x, c*repeat + r] = x[n, y, x, c] + delta for r < repeat (in int16, then
    cast to out's type); `fill` around; zeros in the extra channels of an out with more channels
    than x (when repeat is 1): they must add nothing to a sum, filled row or not.

    out is scratch memory shared between ops, so the border is written every time.
    repeat > 1 serves depthwise convolutions with a depth multiplier: each output channel then
    finds its input at its own index.
    """
    n, h, w, c = x.shape
    hp, wp, cp = out.shape[1], out.shape[2], out.shape[3]
    for i in prange(n * hp):
        b = i // hp
        y = i % hp - top
        row = out[b, i % hp]
        row[:, c * repeat :] = 0
        if y < 0 or y >= h:
            row[:, : c * repeat] = fill
            continue
        row[:left, : c * repeat] = fill
        row[left + w :, : c * repeat] = fill
        for xx in range(w):
            if repeat == 1:
                for ch in range(c):
                    row[left + xx, ch] = np.int16(x[b, y, xx, ch]) + delta
            else:
                for ch in range(c):
                    v = np.int16(x[b, y, xx, ch]) + delta
                    for r in range(repeat):
                        row[left + xx, ch * repeat + r] = v


@njit(cache=True)
def requantize_pixels(acc, width, offsets, bias, mult, shift, out_zp, lo, hi, tmp, out):
    """out[p, o] = requantize(acc[p * width + o] + offsets[p] + bias[o]) over one output row
    [OW, OC]; bias, mult and shift tiled to the row's length. The GEMM's rows (width apart) are
    first gathered into tmp, one contiguous run, so that one requantize_row call covers the row:
    a call per pixel costs more than the work when OC is small."""
    ow, oc = out.shape
    for p in range(ow):
        for o in range(oc):
            tmp[p * oc + o] = acc[p * width + o] + offsets[p]
    requantize_row(tmp[: ow * oc], bias, mult, shift, out_zp, lo, hi, out.reshape(-1))


@kernel
def conv2d(xf, hp, wp, c, w, blocks, d, bias, mult, shift, out_zp, lo, hi, kh, kw, sh, sw, dh, dw, chunks, out):
    """Convolution on the GEMM without im2col; c a multiple of the GEMM's k group (pad_input adds
    zero channels).

    For each filter tap (ky, kx), the PX pixels of a tile read c consecutive values each, sw * c
    apart, in the padded input itself: the GEMM micro-kernel reads them in place and the taps'
    products accumulate. xf: the padded input [N, Hp, Wp, C] flattened, followed by slack for the
    last tile's pixels beyond the row (computed and discarded). w: one pack_weights block per tap.
    d: the weights' offset (see gemm_conv): d times the sum of each pixel's window joins its sum.
    bias, mult and shift are tiled to a whole output row (ow * oc).
    """
    n, oh, ow, oc = out.shape
    rows = -(-ow // PX) * PX
    width = blocks * OCB
    ksteps = c // (4 // xf.itemsize)  # int16 data: pairs of k per step; uint8: quads
    block_size = c * OCB
    tasks = n * oh
    chunks = min(tasks, chunks)
    for chunk in prange(chunks):
        acc = np.empty(rows * width, np.int32)
        tmp = np.empty(ow * oc, np.int32)
        offsets = np.zeros(ow, np.int32)
        for i in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            b = i // oh
            oy = i % oh
            acc[:] = 0
            for ky in range(kh):
                for kx in range(kw):
                    base = ((b * hp + oy * sh + ky * dh) * wp + kx * dw) * c
                    tap = (ky * kw + kx) * blocks * block_size
                    for t in range(0, ow, PX):
                        for blk in range(blocks):
                            tile(
                                xf,
                                base + t * sw * c,
                                sw * c,
                                w,
                                tap + blk * block_size,
                                ksteps,
                                acc,
                                t * width + blk * OCB,
                                width,
                            )
            if d != 0:
                for ox in range(ow):
                    start = ((b * hp + oy * sh) * wp + ox * sw) * c
                    offsets[ox] = d * window_sum(xf, start, wp * c, c, kh, kw, dh, dw)
            requantize_pixels(acc, width, offsets, bias, mult, shift, out_zp, lo, hi, tmp, out[b, oy])


@njit(cache=True)
def window_sum(xf, start, row_stride, c, kh, kw, dh, dw):
    """The sum of one pixel's receptive field in the padded input: kh x kw taps of c values."""
    s = 0
    for ky in range(kh):
        for kx in range(kw):
            base = start + ky * dh * row_stride + kx * dw * c
            for j in range(c):
                s += np.int32(xf[base + j])
    return s


@kernel
def conv2d_im2col(
    xf, hp, wp, c, w, blocks, d, bias, mult, shift, out_zp, lo, hi, kh, kw, sh, sw, dh, dw, chunks, out
):
    """Convolution through im2col, for one-channel inputs with many taps (where conv2d would call
    the GEMM once per tap for a single pair of values). Arguments as conv2d's, but w is packed
    by gemm.pack_weights from [OC, kh*kw*c] in one block.

    Each output row is one matrix product: its im2col patches [OW, K] times the weights. Rows are
    split into `chunks` tasks, each allocating its scratch once (allocations cost microseconds).
    """
    n, oh, ow = out.shape[0], out.shape[1], out.shape[2]
    group = 4 // xf.itemsize
    kp = -(-(kh * kw * c) // group) * group
    rows = -(-ow // PX) * PX
    width = blocks * OCB
    tasks = n * oh
    chunks = min(tasks, chunks)
    for chunk in prange(chunks):
        patch = np.zeros(rows * kp, xf.dtype)
        acc = np.zeros(rows * width, np.int32)
        tmp = np.empty(ow * out.shape[3], np.int32)
        offsets = np.zeros(ow, np.int32)
        for i in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            im2col_row(
                xf,
                i // oh,
                i % oh,
                hp,
                wp,
                c,
                w,
                blocks,
                d,
                bias,
                mult,
                shift,
                out_zp,
                lo,
                hi,
                kh,
                kw,
                sh,
                sw,
                dh,
                dw,
                kp,
                patch,
                acc,
                tmp,
                offsets,
                out,
            )


@njit(cache=True)
def im2col_row(
    xf,
    b,
    oy,
    hp,
    wp,
    c,
    w,
    blocks,
    d,
    bias,
    mult,
    shift,
    out_zp,
    lo,
    hi,
    kh,
    kw,
    sh,
    sw,
    dh,
    dw,
    kp,
    patch,
    acc,
    tmp,
    offsets,
    out,
):
    """One output row of conv2d: im2col into patch, the matrix product, requantization."""
    ow, oc = out.shape[2], out.shape[3]
    width = blocks * OCB
    for ox in range(ow):
        p = ox * kp
        for ky in range(kh):
            row = ((b * hp + oy * sh + ky * dh) * wp + ox * sw) * c
            if dw == 1:  # the kernel's whole row is one contiguous run of kw * c values
                run = kw * c
                if run >= 32:
                    patch[p : p + run] = xf[row : row + run]
                else:  # a loop: a slice copy costs more than copying a few values
                    for j in range(run):
                        patch[p + j] = xf[row + j]
                p += run
            else:
                for kx in range(kw):
                    start = row + kx * dw * c
                    for j in range(c):
                        patch[p + j] = xf[start + j]
                    p += c
    acc[:] = 0
    gemm_rows(patch, kp, ow, w, blocks, acc)
    if d != 0:  # a patch row is its pixel's window, zero-padded
        for ox in range(ow):
            s = 0
            for j in range(ox * kp, ox * kp + kp):
                s += np.int32(patch[j])
            offsets[ox] = d * s
    requantize_pixels(acc, width, offsets, bias, mult, shift, out_zp, lo, hi, tmp, out[b, oy])


@kernel
def depthwise_conv2d(xp, w, bias, mult, shift, out_zp, lo, hi, sh, sw, dh, dw, out):
    """xp: padded int16 [N, Hp, Wp, OC] (channels already repeated for the depth multiplier);
    w: int16 [kh, kw, OC]; out: [N, OH, OW, OC]. One output row per task, accumulated tap by tap
    so that the inner loop runs over contiguous channels. bias, mult and shift are tiled to a whole
    output row (ow * oc) so that one requantization loop covers it."""
    n, oh, ow, oc = out.shape
    kh, kw = w.shape[0], w.shape[1]
    for i in prange(n * oh):
        b = i // oh
        oy = i % oh
        acc = np.empty((ow, oc), np.int32)
        acc[:] = 0
        for ky in range(kh):
            iy = oy * sh + ky * dh
            for kx in range(kw):
                for ox in range(ow):
                    ix = ox * sw + kx * dw
                    for o in range(oc):
                        acc[ox, o] += np.int32(xp[b, iy, ix, o]) * np.int32(w[ky, kx, o])
        requantize_row(acc.reshape(-1), bias, mult, shift, out_zp, lo, hi, out[b, oy].reshape(-1))


@kernel
def depthwise_conv3x3(xp, w, bias, mult, shift, out_zp, lo, hi, sh, sw, dh, dw, out):
    """depthwise_conv2d for the common 3x3 filter: the nine taps unrolled, so that each channel's
    sum stays in a register instead of going through memory nine times. bias, mult and shift are
    tiled to a whole output row (ow * oc)."""
    n, oh, ow, oc = out.shape
    for i in prange(n * oh):
        b = i // oh
        oy = i % oh
        y0, y1, y2 = oy * sh, oy * sh + dh, oy * sh + 2 * dh
        acc = np.empty(ow * oc, np.int32)  # storing to int32 lets LLVM keep the sums in 32 bits
        for ox in range(ow):
            x0, x1, x2 = ox * sw, ox * sw + dw, ox * sw + 2 * dw
            for o in range(oc):
                acc[ox * oc + o] = (
                    np.int32(xp[b, y0, x0, o]) * np.int32(w[0, 0, o])
                    + np.int32(xp[b, y0, x1, o]) * np.int32(w[0, 1, o])
                    + np.int32(xp[b, y0, x2, o]) * np.int32(w[0, 2, o])
                    + np.int32(xp[b, y1, x0, o]) * np.int32(w[1, 0, o])
                    + np.int32(xp[b, y1, x1, o]) * np.int32(w[1, 1, o])
                    + np.int32(xp[b, y1, x2, o]) * np.int32(w[1, 2, o])
                    + np.int32(xp[b, y2, x0, o]) * np.int32(w[2, 0, o])
                    + np.int32(xp[b, y2, x1, o]) * np.int32(w[2, 1, o])
                    + np.int32(xp[b, y2, x2, o]) * np.int32(w[2, 2, o])
                )
        requantize_row(acc, bias, mult, shift, out_zp, lo, hi, out[b, oy].reshape(-1))


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
        acc = np.zeros(PX * width, np.int32)
        for r in range(n):
            for j in range(k):
                xv[r * kp + j] = np.int16(x[r0 + r, j]) - x_zp
        gemm_rows(xv, kp, n, w, blocks, acc)
        for r in range(n):
            for u in range(units):
                out[r0 + r, u] = requantize_double(acc[r * width + u] + bias[u], scale[u], out_zp, lo, hi)
