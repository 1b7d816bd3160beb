"""The gathers of the two-input 8-bit table ops (out = table[byte(a), byte(b)]) where one side is a
single value or the broadcast leaves long runs, for ops/broadcast.py.

- One input a single value (MUL by a scalar, SUB of a constant): the table's row or column for it is a
  one-input table of 256 entries, looked up 64 bytes a step with AVX-512 VBMI (lookup.py), at the speed
  of memory, where the pair gather costs a load an element.
- Broadcasting otherwise: the 6-D walk over the output with its innermost loop specialized on whether each
  side runs along it or stays put, so that the loop LLVM compiles has no stride multiplications.
- A per-channel operand against a full one (x - mean[c] on an image, [N, H, W, C] with [C]): each channel
  gets its own 256-entry table (C x 256 bytes, C <= PHASES_MAX), and the output is a one-input
  gather over the channel's table, with no pair index to form.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import cpu
from .kernel import kernel
from .lookup import LUT_BLOCK, lut_x8_64_vbmi

CHUNK = 1 << 14  # elements a parallel step takes
PHASES_MAX = 256  # channels of a per-channel operand given tables of their own (64 KiB)


@kernel
def gather_scalar(x, other, out, table, lut, x_stride, other_stride):
    """out[i] = table[x[i] * x_stride + other[0] * other_stride] through lut (256 entries, the line of
    the table for other[0]): x_stride, other_stride = (256, 1) where other is the second input, (1, 256)
    where it is the first. x, other: uint8 views; table flat (65536)."""
    k = np.int64(other[0]) * other_stride
    for i in range(256):
        lut[i] = table[k + i * x_stride]
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        start = lo
        if cpu.VBMI and out.itemsize == 1:
            blocks = (hi - lo) // LUT_BLOCK
            lut_x8_64_vbmi(x, out, lut, lo, blocks)
            start = lo + blocks * LUT_BLOCK
        for i in range(start, hi):
            out[i] = lut[x[i]]


@kernel
def gather_phases(x, other, out, table, luts, x_stride, other_stride):
    """out[r * P + p] = table[x[r * P + p] * x_stride + other[p] * other_stride] for P = other.size, through
    luts [P * 256] (filled here: channel p's line of the table)."""
    phases = other.size
    for p in range(phases):
        k = np.int64(other[p]) * other_stride
        for i in range(256):
            luts[p * 256 + i] = table[k + i * x_stride]
    rows = x.size // phases
    step = max(1, CHUNK // phases)
    for c in prange((rows + step - 1) // step):
        for r in range(c * step, min(rows, (c + 1) * step)):
            base = r * phases
            for p in range(phases):
                out[base + p] = luts[p * 256 + np.int64(x[base + p])]


@kernel
def gather2_nd_runs(a, b, out, table, ext, sa, sb):
    """out = table[a * 256 + b] over the 6-D extents ext, a and b read with strides sa and sb (0 where
    they broadcast, 1 along the innermost dimension where they run). Rows (the innermost runs) are split
    in blocks of about CHUNK elements, each walked with an odometer over the outer five dimensions."""
    n5 = ext[5]
    rows = ext[0] * ext[1] * ext[2] * ext[3] * ext[4]
    step = max(1, CHUNK // max(n5, 1))
    ra, rb = sa[5] != 0, sb[5] != 0
    for c in prange((rows + step - 1) // step):
        r0, r1 = c * step, min(rows, (c + 1) * step)
        idx = np.empty(5, np.int64)
        rest = r0
        for d in range(4, -1, -1):
            idx[d] = rest % ext[d]
            rest //= ext[d]
        for r in range(r0, r1):
            pa, pb = np.int64(0), np.int64(0)
            for d in range(5):
                pa += idx[d] * sa[d]
                pb += idx[d] * sb[d]
            o = r * n5
            if ra and rb:
                for i in range(n5):
                    out[o + i] = table[np.int64(a[pa + i]) * 256 + np.int64(b[pb + i])]
            elif ra:
                kb = np.int64(b[pb])
                for i in range(n5):
                    out[o + i] = table[np.int64(a[pa + i]) * 256 + kb]
            else:
                ka = np.int64(a[pa]) * 256
                for i in range(n5):
                    out[o + i] = table[ka + np.int64(b[pb + i])]
            d = 4
            idx[d] += 1
            while d > 0 and idx[d] == ext[d]:
                idx[d] = 0
                d -= 1
                idx[d] += 1
