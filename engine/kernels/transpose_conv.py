"""Kernels of TRANSPOSE_CONV (ops/transpose_conv.py prepares their constants) and BATCH_MATMUL
(ops/batch_matmul.py).

TRANSPOSE_CONV on 8-bit data is a GEMM followed by a col2im gather: every input pixel times the
weights gives its kh * kw * oc contributions (cols), and each output pixel then sums the
contributions that land on it. Integer sums do not depend on their order, so this equals the
reference's scatter. float32 and int16 (int64 sums) instead gather in the reference's own order:
for one output value the reference adds its products input row by input row, pixel by pixel,
channel by channel (its scatter visits the input in that order), which fixes float32's rounding.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from ..numerics.fixedpoint import multiply_by_quantized_multiplier
from .conv import _load_rows
from .gemm import OCB, PX, gemm_rows
from .int16 import mbqm64
from .irtools import flat_view
from .kernel import kernel
from .requantize import requantize_pixels


class Scatter(NamedTuple):
    """The geometry of a TRANSPOSE_CONV: input h x w, filter kh x kw, strides, the padding taken off
    the top and left of the full output, output oh x ow."""

    h: int
    w: int
    kh: int
    kw: int
    sh: int
    sw: int
    top: int
    left: int
    oh: int
    ow: int


@kernel
def tconv_gemm(x, delta, w, blocks, all_rows, cols):
    """cols[p, :] = (x[p, :] + delta) @ W for every input pixel p of x [P, ic]: W packed by
    gemm.pack_weights ([kh * kw * oc, ic]); all_rows [threads, PX, kp]: each thread's operand rows."""
    pixels = x.shape[0]
    kp = all_rows.shape[2]
    width = blocks * OCB
    for t in prange(-(-pixels // PX)):
        rows = all_rows[numba.get_thread_id()]
        r0 = t * PX
        n = min(PX, pixels - r0)
        _load_rows(x, r0, n, delta, rows)
        gemm_rows(flat_view(rows), kp, n, w, blocks, cols[r0 * width : (r0 + n) * width])


@njit(inline="always", cache=True)
def _source(o, pad, k, stride, size):
    """The input index whose tap k lands on output index o, or -1."""
    t = o + pad - k
    if t < 0 or t % stride != 0:
        return -1
    i = t // stride
    return i if i < size else -1


@kernel
def tconv_col2im(cols, width, geo, col_bias, rq, all_acc, zeros, out):
    """out [n, oh, ow, oc] = requantize(sum of the cols that land on each output value + col_bias):
    rq a requantize.Requant (bias, multiplier and shift per channel); all_acc [threads, ow * oc]."""
    h, w, kh, kw, sh, sw, top, left, oh, ow = geo
    n, oc = out.shape[0], out.shape[3]
    for task in prange(n * oh):
        b, oy = task // oh, task % oh
        acc = all_acc[numba.get_thread_id()]
        acc[:] = 0
        for ky in range(kh):
            iy = _source(oy, top, ky, sh, h)
            if iy < 0:
                continue
            for ox in range(ow):
                row = acc[ox * oc : (ox + 1) * oc]  # indexed from 0: see conv.pad_input
                for kx in range(kw):
                    ix = _source(ox, left, kx, sw, w)
                    if ix < 0:
                        continue
                    tap = (ky * kw + kx) * oc
                    start = ((b * h + iy) * w + ix) * width + tap
                    src = cols[start : start + oc]
                    cb = col_bias[tap : tap + oc]
                    for o in range(oc):
                        row[o] += src[o] + cb[o]
        requantize_pixels(acc, oc, zeros, rq, out[b, oy])


GROUP = 8  # output pixels of one row summed together: each weight vector is loaded once for them


@njit(inline="always", cache=True)
def _gather(x, w, b, oy, r, q0, count, geo, acc):
    """acc[p, o] += the products landing on output (b, oy, r + (q0 + p) * sw), p < count, in the
    reference's order for each: input rows ascending (taps ky descending), then pixels (kx
    descending), then input channels. Outputs of one residue r mod sw take the same taps kx, from
    consecutive input pixels. w [kh, kw, ic, oc]; acc [GROUP * oc] flat."""
    h, wd, kh, kw, sh, sw, top, left, _, _ = geo
    ic, oc = w.shape[2], w.shape[3]
    for ky in range(kh - 1, -1, -1):
        iy = _source(oy, top, ky, sh, h)
        if iy < 0:
            continue
        for kx in range(kw - 1, -1, -1):
            t = r + left - kx
            if t % sw != 0:
                continue
            ix0 = t // sw + q0  # the input pixel of output p = 0
            first, last = max(0, -ix0), min(count, wd - ix0)
            for c in range(ic):
                taps = w[ky, kx, c]
                for p in range(first, last):
                    v = x[b, iy, ix0 + p, c]
                    row = acc[p * oc : (p + 1) * oc]
                    for o in range(oc):
                        row[o] += v * taps[o]


@kernel
def tconv_float(x, w, bias, has_bias, lo, hi, geo, all_acc, out):
    """float32: the sums in the reference's order, then + bias (when there is one), then the clamp
    of the fused activation as ActivationFunctionWithMinMax."""
    n, oh, ow, oc = out.shape
    sw = geo.sw
    for task in prange(n * oh):
        b, oy = task // oh, task % oh
        acc = all_acc[numba.get_thread_id()]
        for r in range(min(sw, ow)):
            for q0 in range(0, -(-(ow - r) // sw), GROUP):
                count = min(GROUP, -(-(ow - r) // sw) - q0)
                acc[:] = 0
                _gather(x, w, b, oy, r, q0, count, geo, acc)
                for p in range(count):
                    ox = r + (q0 + p) * sw
                    for o in range(oc):
                        v = acc[p * oc + o] + bias[o] if has_bias else acc[p * oc + o]
                        v = lo if v < lo else v  # noqa: FURB136 (std::max/min: a NaN stays NaN)
                        out[b, oy, ox, o] = hi if hi < v else v  # noqa: FURB136


@kernel
def tconv_int16(x, w, bias, mult, shift, lo, hi, geo, all_acc, out):
    """int16 x int8: int64 sums, + the int64 bias, MultiplyByQuantizedMultiplier(int64), clamp."""
    n, oh, ow, oc = out.shape
    sw = geo.sw
    for task in prange(n * oh):
        b, oy = task // oh, task % oh
        acc = all_acc[numba.get_thread_id()]
        for r in range(min(sw, ow)):
            for q0 in range(0, -(-(ow - r) // sw), GROUP):
                count = min(GROUP, -(-(ow - r) // sw) - q0)
                acc[:] = 0
                _gather(x, w, b, oy, r, q0, count, geo, acc)
                for p in range(count):
                    ox = r + (q0 + p) * sw
                    for o in range(oc):
                        v = mbqm64(acc[p * oc + o] + bias[o], mult[o], shift[o])
                        out[b, oy, ox, o] = min(max(v, lo), hi)


# --- BATCH_MATMUL --------------------------------------------------------------------------------


class MatMul(NamedTuple):
    """One BATCH_MATMUL: out[bo] [m, n] = lhs[lhs_at[bo]] @ rhs[rhs_at[bo]], k deep. lhs (i, k) at
    lhs_at[bo] + i * li + k * lk (adj_x swaps the strides); rhs rows k of n values, contiguous."""

    m: int
    k: int
    n: int
    li: int
    lk: int
    lhs_at: np.ndarray
    rhs_at: np.ndarray


@kernel
def swap_last(x, rows, cols, out):
    """out [B, cols, rows] = x [B, rows, cols] with its last two axes swapped (flat arrays)."""
    size = rows * cols
    for t in prange(x.size // size):
        src = x[t * size : (t + 1) * size]
        dst = out[t * size : (t + 1) * size]
        for r in range(rows):
            for c in range(cols):
                dst[c * rows + r] = src[r * cols + c]


@kernel
def matmul_float(lhs, rhs, mm, all_acc, out):
    """float32: each output value sums its k products in order from 0.0f, as the reference; the
    lanes run along n, so each keeps its own order."""
    m, k, n, li, lk, lhs_at, rhs_at = mm
    for t in prange(lhs_at.size * m):
        bo, i = t // m, t % m
        acc = all_acc[numba.get_thread_id()]
        acc[:] = 0
        lbase, rbase = lhs_at[bo] + i * li, rhs_at[bo]
        for kk in range(k):
            a = lhs[lbase + kk * lk]
            r = rhs[rbase + kk * n : rbase + (kk + 1) * n]
            for j in range(n):
                acc[j] += a * r[j]
        out[t * n : (t + 1) * n] = acc[:n]  # (each thread's row is padded: ops.common.per_thread)


RESCALE8, RESCALE16, RAW32 = 0, 1, 2  # matmul_int modes


@kernel
def matmul_int(lhs, rhs, mm, zl, zr, rq, mode, all_acc, out):
    """sum (l - zl)(r - zr) in int32 (RESCALE8, RAW32) or int64 (RESCALE16), then
    MultiplyByQuantizedMultiplier (its int64 form for RESCALE16) + zero point, clamped, or (RAW32)
    the int32 sum itself. rq: (multiplier, shift, out_zp, lo, hi)."""
    m, k, n, li, lk, lhs_at, rhs_at = mm
    mult, shift, out_zp, lo, hi = rq
    for t in prange(lhs_at.size * m):
        bo, i = t // m, t % m
        acc = all_acc[numba.get_thread_id()]
        acc[:] = 0
        lbase, rbase = lhs_at[bo] + i * li, rhs_at[bo]
        for kk in range(k):
            a = lhs[lbase + kk * lk] - zl
            r = rhs[rbase + kk * n : rbase + (kk + 1) * n]
            for j in range(n):
                acc[j] += a * (r[j] - zr)
        row = out[t * n : (t + 1) * n]
        for j in range(n):
            if mode == RAW32:
                row[j] = acc[j]
                continue
            if mode == RESCALE16:
                v = mbqm64(np.int64(acc[j]), mult, shift)
            else:
                v = _mbqm32(acc[j], mult, shift)
            row[j] = min(max(v + out_zp, lo), hi)


@njit(inline="always", cache=True)
def _mbqm32(acc, mult, shift):
    return multiply_by_quantized_multiplier(np.int32(acc), mult, shift)
