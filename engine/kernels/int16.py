"""Kernels of the int16-activation (16x8) ops: convolutions and FULLY_CONNECTED on int16 x int8,
the elementwise ADD/SUB/MUL, the 65536-entry table gather, SOFTMAX's rows (engine/ops/conv16.py,
elementwise16.py, int16.py, softmax16.py prepare their constants)."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..numerics.fixedpoint import multiply_by_quantized_multiplier, rounding_divide_by_pot, wrap_int32
from ..numerics.fixedpoint import multiply_by_quantized_multiplier as mbqm
from ..numerics.fixedpoint import multiply_by_quantized_multiplier_smaller_than_one_exp as mul_lt1
from .conv import requantize_double
from .kernel import kernel

GENERAL, POT, MUL = 0, 1, 2  # binary16 modes
LEFT_SHIFT = 15  # ADD/SUB on int16 (8 bits use 20)


@njit(inline="always", cache=True)
def mbqm64(x, m, shift):
    """MultiplyByQuantizedMultiplier(int64_t x, ...): the 16-bit multiplier, one rounding, int32 result."""
    reduced = (m + 32768) >> 16 if m < 0x7FFF0000 else np.int64(0x7FFF)
    total = 15 - shift
    return wrap_int32((x * reduced + (np.int64(1) << (total - 1))) >> total)


@njit(inline="always", cache=True)
def _scale16(acc, m, shift, lo, hi):
    return min(max(mbqm64(acc, m, shift), lo), hi)


@kernel
def conv16(x, w, bias, mult, shift, out, geo, lo, hi):
    """x [n, h, w, c] int16, w [kh, kw, c, oc] int32/int64; geo = sh, sw, dh, dw, top, left."""
    n, h, wd, c = x.shape
    oh, ow, oc = out.shape[1], out.shape[2], out.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    sh, sw, dh, dw, top, left = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    for t in prange(n * oh):
        b, oy = t // oh, t % oh
        acc = np.empty(oc, w.dtype)  # int32 where the sums cannot overflow it (see _weights)
        for ox in range(ow):
            acc[:] = 0
            for ky in range(kh):
                iy = oy * sh - top + ky * dh
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    ix = ox * sw - left + kx * dw
                    if ix < 0 or ix >= wd:
                        continue
                    for ic in range(c):
                        v = x[b, iy, ix, ic]
                        for o in range(oc):
                            acc[o] += v * w[ky, kx, ic, o]
            for o in range(oc):
                out[b, oy, ox, o] = _scale16(np.int64(acc[o]) + bias[o], mult[o], shift[o], lo, hi)


@kernel
def depthwise16(x, w, bias, mult, shift, out, geo, dm, lo, hi):
    """x [n, h, w, c] int16, w [kh, kw, c * dm] int32/int64: output channel ic * dm + m reads channel ic."""
    n, h, wd, c = x.shape
    oh, ow, oc = out.shape[1], out.shape[2], out.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    sh, sw, dh, dw, top, left = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    for t in prange(n * oh):
        b, oy = t // oh, t % oh
        acc = np.empty(oc, w.dtype)  # int32 where the sums cannot overflow it (see _weights)
        for ox in range(ow):
            acc[:] = 0
            for ky in range(kh):
                iy = oy * sh - top + ky * dh
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    ix = ox * sw - left + kx * dw
                    if ix < 0 or ix >= wd:
                        continue
                    for ic in range(c):
                        v = x[b, iy, ix, ic]
                        for m in range(dm):
                            acc[ic * dm + m] += v * w[ky, kx, ic * dm + m]
            for o in range(oc):
                out[b, oy, ox, o] = _scale16(np.int64(acc[o]) + bias[o], mult[o], shift[o], lo, hi)


@kernel
def fully_connected16(x, w, bias, scale, out, lo, hi):
    """x [rows, depth] int16, w [units, depth] int32/int64; the sums rescaled in double like the 8-bit kernel."""
    rows, depth = x.shape
    units = w.shape[0]
    for r in prange(rows):
        for u in range(units):
            acc = np.int64(0)
            for k in range(depth):
                acc += x[r, k] * w[u, k]
            out[r, u] = requantize_double(np.int64(acc) + bias[u], scale[u], 0, lo, hi)


@njit(inline="always", cache=True)
def _apply16(mode, x, y, p):
    if mode == GENERAL:  # p: zp1, m1, s1, zp2, m2, s2, m_out, s_out, zp_out, sign
        a = mul_lt1((x - p[0]) << LEFT_SHIFT, p[1], p[2])
        b = mul_lt1((y - p[3]) << LEFT_SHIFT, p[4], p[5])
        return mul_lt1(a + p[9] * b, p[6], p[7]) + p[8]
    if mode == POT:  # p: e1, e2, sign
        return rounding_divide_by_pot(x, p[0]) + p[2] * rounding_divide_by_pot(y, p[1])
    return mbqm((x - p[0]) * (y - p[1]), p[2], p[3]) + p[4]  # MUL, p: zp1, zp2, m, shift, zp_out


@kernel
def binary16(a, b, out, ext, sa, sb, mode, p, lo, hi):
    n0, n1, n2, n3, n4, n5 = ext[0], ext[1], ext[2], ext[3], ext[4], ext[5]
    for t in prange(n0 * n1 * n2):
        i0 = t // (n1 * n2)
        i1 = (t // n2) % n1
        i2 = t % n2
        o = t * n3 * n4 * n5
        pa0 = i0 * sa[0] + i1 * sa[1] + i2 * sa[2]
        pb0 = i0 * sb[0] + i1 * sb[1] + i2 * sb[2]
        for i3 in range(n3):
            for i4 in range(n4):
                pa = pa0 + i3 * sa[3] + i4 * sa[4]
                pb = pb0 + i3 * sb[3] + i4 * sb[4]
                for i5 in range(n5):
                    x = np.int64(a[pa + i5 * sa[5]])
                    y = np.int64(b[pb + i5 * sb[5]])
                    out[o] = min(max(_apply16(mode, x, y, p), lo), hi)
                    o += 1


@kernel
def lookup16(x, out, table):
    for i in prange(x.size):
        out[i] = table[x[i]]


@njit(inline="always", cache=True)
def lut_lookup16(value, lut):
    """LUTLookup(int16_t): the high 9 bits index, the low 7 interpolate."""
    index = 256 + (value >> 7)
    base = lut[index]
    delta = ((lut[index + 1] - base) * (value & 0x7F) + 64) >> 7
    return ((base + delta + 32768) & 0xFFFF) - 32768


@njit(inline="always", cache=True)
def _clz32(x):
    n = 0
    while n < 32 and not (x >> (31 - n)) & 1:
        n += 1
    return n


@njit(cache=True)
def _softmax16_row(x, out, base, depth, m, shift, exp_lut, inv_lut):
    top = np.int64(-32768)
    for c in range(depth):
        top = max(top, np.int64(x[base + c]))
    total = np.int64(0)
    for c in range(depth):
        d = multiply_by_quantized_multiplier(np.int64(x[base + c]) - top, m, shift) + 32767
        e = lut_lookup16(min(max(d, -32768), 32767), exp_lut)
        out[base + c] = e  # the reference keeps the exps in the output too
        total += e
    headroom = _clz32(total & 0xFFFFFFFF)
    shifted = ((total << (headroom - 1)) + (1 << 13)) >> 14
    sym = min(max(shifted - (1 << 15) - (1 << 16), -32768), 32767)
    reciprocal = lut_lookup16(sym, inv_lut)
    right = 31 - headroom
    for c in range(depth):
        r = (np.int64(out[base + c]) * reciprocal + (np.int64(1) << (right - 1))) >> right
        out[base + c] = min(max(r, 0), 32767)


@kernel
def softmax16(x, out, rows, depth, m, shift, exp_lut, inv_lut):
    for r in prange(rows):
        _softmax16_row(x, out, r * depth, depth, m, shift, exp_lut, inv_lut)
