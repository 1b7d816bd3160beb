"""Elementwise binary ops on plain numbers (float32, int32, int64, raw 8/16-bit) with TFLite's
broadcasting, and GATHER_ND's row copy: one compiled call each.

These ops sit in models' post-processing (MoveNet: the keypoints' rows and columns from an ARG_MAX,
gathered scores, distances), on small tensors right after large layers. Through NumPy each took
several calls, and each NumPy call costs 10-20 us when the layers before have evicted its code and
data from the caches (measured: 2 us warm); one compiled call pays that once.

The broadcast walk is broadcast.py's plan (at most 6 collapsed dims, element strides, 0 where an input
repeats). Compiled with NumPy's error model: a float division by zero gives inf or nan as in C.
Integer divisions never see a zero divisor (the callers check first: the reference reports an
error), and run in int64 or float64, where INT_MIN / -1 cannot trap.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}


@njit(inline="always", **_JIT)
def _walk(f, a, b, out, ext, sa, sb):
    """out (flat, C order over ext) = f(a[...], b[...]) with a and b read at strides sa, sb."""
    k = 0
    for i0 in range(ext[0]):
        for i1 in range(ext[1]):
            for i2 in range(ext[2]):
                for i3 in range(ext[3]):
                    for i4 in range(ext[4]):
                        ja = i0 * sa[0] + i1 * sa[1] + i2 * sa[2] + i3 * sa[3] + i4 * sa[4]
                        jb = i0 * sb[0] + i1 * sb[1] + i2 * sb[2] + i3 * sb[3] + i4 * sb[4]
                        for i5 in range(ext[5]):
                            out[k] = f(a[ja + i5 * sa[5]], b[jb + i5 * sb[5]])
                            k += 1


@njit(inline="always", **_JIT)
def _add(x, y):
    return x + y


@njit(inline="always", **_JIT)
def _sub(x, y):
    return x - y


@njit(inline="always", **_JIT)
def _mul(x, y):
    return x * y


@njit(inline="always", **_JIT)
def _div(x, y):
    return x / y


@njit(inline="always", **_JIT)
def _maximum(x, y):
    return x if x > y else y  # noqa: FURB136 (a NaN compares false: the reference's a > b ? a : b)


@njit(inline="always", **_JIT)
def _minimum(x, y):
    return x if x < y else y  # noqa: FURB136 (as MAXIMUM)


@njit(inline="always", **_JIT)
def _int_div(x, y):
    """C's integer division (toward zero), in int64."""
    q = abs(np.int64(x)) // abs(np.int64(y))
    return -q if (x < 0) != (y < 0) else q


@njit(inline="always", **_JIT)
def _floor_div_float(x, y):
    return np.floor(np.float64(x) / np.float64(y))


# the float32/int32/int64 arithmetic wraps as C's does: out's type is the inputs'
@njit(**_JIT)
def add(a, b, out, ext, sa, sb):
    _walk(_add, a, b, out, ext, sa, sb)


@njit(**_JIT)
def sub(a, b, out, ext, sa, sb):
    _walk(_sub, a, b, out, ext, sa, sb)


@njit(**_JIT)
def mul(a, b, out, ext, sa, sb):
    _walk(_mul, a, b, out, ext, sa, sb)


@njit(**_JIT)
def div_float(a, b, out, ext, sa, sb):
    _walk(_div, a, b, out, ext, sa, sb)


@njit(**_JIT)
def maximum(a, b, out, ext, sa, sb):
    _walk(_maximum, a, b, out, ext, sa, sb)


@njit(**_JIT)
def minimum(a, b, out, ext, sa, sb):
    _walk(_minimum, a, b, out, ext, sa, sb)


@njit(**_JIT)
def floor_div_float(a, b, out, ext, sa, sb):
    """reference_ops::FloorDiv on float32: floor(double(a) / double(b)), to float32."""
    _walk(_floor_div_float, a, b, out, ext, sa, sb)


@njit(**_JIT)
def _nonzero(b) -> bool:
    for v in b:
        if v == 0:
            return False
    return True


@njit(**_JIT)
def div_int(a, b, out, ext, sa, sb) -> bool:
    """C's integer division; False (nothing written) where a divisor is zero."""
    if not _nonzero(b):
        return False
    _walk(_int_div, a, b, out, ext, sa, sb)
    return True


@njit(**_JIT)
def floor_div_int(a, b, out, ext, sa, sb, lo, hi, wide) -> bool:
    """reference_ops::FloorDiv on integers: floor(double(a) / double(b)) converted to out's type, where
    a value outside [lo, hi] becomes lo (x86's conversion of an out-of-range double); False (nothing
    written) where a divisor is zero. wide: an int64 scratch of out's size."""
    if not _nonzero(b):
        return False
    _walk(_floor_div_float, a, b, wide, ext, sa, sb)
    for k in range(out.size):
        v = wide[k]
        out[k] = v if lo <= v <= hi else lo
    return True


@njit(**_JIT)
def gather_nd(params, idx, limits, strides, out) -> bool:
    """out[r] = params[row(idx[r])] for the rows of out [count, inner], params [rows, inner], idx
    [count, depth]; row = sum(idx * strides). False (nothing written) where an index is out of range."""
    count, depth = idx.shape
    for r in range(count):
        for d in range(depth):
            if idx[r, d] < 0 or idx[r, d] >= limits[d]:
                return False
    for r in range(count):
        row = 0
        for d in range(depth):
            row += np.int64(idx[r, d]) * strides[d]
        out[r, :] = params[row, :]
    return True
