"""Copies of strided views: the one kernel behind TRANSPOSE, SPLIT, SPLIT_V, STRIDED_SLICE, UNPACK.

Each of these ops writes a contiguous output whose element (i0, ..., ik) is input element
offset + sum(i_d * stride_d) for some per-axis strides (negative for reversed slices, permuted for
transposes). prepare() computes that view once (`view_plan`): axes are merged where the view is
contiguous across them and size-1 axes dropped, so the kernel loops over at most MAX_RANK axes with
a contiguous inner run where there is one. Data is moved as raw bits of its item size, so one
compiled kernel serves int8, uint8 and bool, another int32 and float32, and so on.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from . import transpose8
from .kernel import kernel

MAX_RANK = 6
BITS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def view_plan(
    out_shape: tuple[int, ...], strides: list[int], offset: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """(extents, input strides, offset) of the view, collapsed to MAX_RANK axes (padded in front)."""
    dims: list[list[int]] = []
    for n, s in zip(out_shape, strides):
        if n == 1:
            continue
        if dims and dims[-1][1] == s * n:  # the previous axis steps over exactly this one
            dims[-1] = [dims[-1][0] * n, s]
        else:
            dims.append([int(n), int(s)])
    if any(n == 0 for n in out_shape):
        dims = [[0, 1]]
    if len(dims) > MAX_RANK:
        raise ValueError(f"view of rank {len(dims)} after merging axes; at most {MAX_RANK}")
    dims = [[1, 0]] * (MAX_RANK - len(dims)) + dims
    return (
        np.array([d[0] for d in dims], np.int64),
        np.array([d[1] for d in dims], np.int64),
        int(offset),
    )


ROWS = 256  # rows of the last axis per task of _copy


@kernel
def _copy(src, offset, ext, st, out):
    """Tasks of ROWS rows (last axis runs) each: the outer indices are decoded once per task, not per
    row (five 64-bit divisions cost more than a 16-byte row), and each row is copied by an explicit
    loop on unsigned indices, not a slice assignment (whose set-up dominates short rows)."""
    n0, n1, n2, n3, n4, n5 = ext[0], ext[1], ext[2], ext[3], ext[4], ext[5]
    s4, s5 = st[4], st[5]
    nb = (n4 + ROWS - 1) // ROWS
    for u in prange(n0 * n1 * n2 * n3 * nb):
        lo4 = (u % nb) * ROWS
        hi4 = min(n4, lo4 + ROWS)
        t = u // nb
        i3 = t % n3
        r = t // n3
        i2 = r % n2
        r //= n2
        i1 = r % n1
        i0 = r // n1
        p0 = offset + i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3]
        o0 = t * n4 * n5
        for i4 in range(lo4, hi4):
            p = np.uint64(p0 + i4 * s4)  # (unsigned: see _copy_tiled; a negative s5 wraps to the same index)
            o = np.uint64(o0 + i4 * n5)
            if s5 == 1:
                for k in range(n5):
                    out[o + np.uint64(k)] = src[p + np.uint64(k)]
            else:
                for k in range(n5):
                    out[o + np.uint64(k)] = src[p + np.uint64(k) * np.uint64(s5)]


TILE = 32


@kernel
def _copy_tiled(src, offset, ext, st, out):
    """The same copy for views whose last axis is strided (transposes): TILE x TILE blocks of the last
    two axes, so that both the reads and the writes stay within a few cache lines per block."""
    n0, n1, n2, n3, n4, n5 = ext[0], ext[1], ext[2], ext[3], ext[4], ext[5]
    s4, s5 = st[4], st[5]
    nb = (n4 + TILE - 1) // TILE
    for u in prange(n0 * n1 * n2 * n3 * nb):
        lo4 = (u % nb) * TILE
        hi4 = min(n4, lo4 + TILE)
        t = u // nb
        i3 = t % n3
        r = t // n3
        i2 = r % n2
        r //= n2
        i1 = r % n1
        i0 = r // n1
        p0 = offset + i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3]
        o0 = t * n4 * n5
        for lo5 in range(0, n5, TILE):
            hi5 = min(n5, lo5 + TILE)
            for i4 in range(lo4, hi4):
                # unsigned indices: no negative-index wraparound test in the inner loop (3x faster)
                p = np.uint64(p0 + i4 * s4 + lo5 * s5)
                o = np.uint64(o0 + i4 * n5 + lo5)
                for k in range(hi5 - lo5):
                    out[o + np.uint64(k)] = src[p + np.uint64(k) * np.uint64(s5)]


def bits(a: np.ndarray) -> np.ndarray:
    """The flat array as unsigned integers of its item size (a view, no copy)."""
    return a.reshape(-1, copy=False).view(BITS[a.dtype.itemsize])  # raises rather than copy


class ViewCopy:
    """Copies one strided view of an input (given in elements of its flat array) to a contiguous output."""

    def __init__(self, out_shape: tuple[int, ...], strides: list[int], offset: int):
        self.ext, self.st, self.offset = view_plan(out_shape, strides, offset)
        tiled = self.st[5] != 1 and self.ext[4] > 1 and self.ext[5] > 1
        self.fn = (_copy_tiled if tiled else _copy).pick(int(np.prod(out_shape, dtype=np.int64)))
        self.fn8 = transpose8.transpose_u8.pick(int(np.prod(out_shape, dtype=np.int64)))  # one-byte data
        self.empty = int(np.prod(out_shape, dtype=np.int64)) == 0

    def __call__(self, src: np.ndarray, out: np.ndarray) -> None:
        for fn, args in self.calls(src, out):
            fn(*args)

    def calls(self, src: np.ndarray, out: np.ndarray) -> list:
        """The kernel call copying src to out, as (kernel, args) for a bound plan (ops/common.py bound)."""
        fn = self.fn8 if transpose8.applies(self.ext, self.st, src.dtype.itemsize) else self.fn
        return [] if self.empty else [(fn, (bits(src), self.offset, self.ext, self.st, bits(out)))]


def contiguous_strides(shape: tuple[int, ...]) -> list[int]:
    """Element strides of a C-contiguous array of this shape."""
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * int(shape[d + 1])
    return strides


@kernel
def copy_rows(x, out, rows, width, out_width, col):
    """out[r * out_width + col + j] = x[r * width + j] for r < rows, j < width (flat arrays): one input
    of a concatenation into its columns of the output, ROWS rows per task, each row an explicit loop
    (numpy's strided assignment pays a set-up per row, more than a short row's copy)."""
    for u in prange((rows + ROWS - 1) // ROWS):
        for r in range(u * ROWS, min(rows, (u + 1) * ROWS)):
            o = np.uint64(r * out_width + col)
            p = np.uint64(r * width)
            for j in range(width):
                out[o + np.uint64(j)] = x[p + np.uint64(j)]
