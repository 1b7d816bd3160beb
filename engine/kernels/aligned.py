"""Arrays on cache-line boundaries: what the AVX-512 kernels read and write a 64-byte vector at a time.

numpy aligns its allocations to 16 bytes only; a 64-byte access at an address that is not a multiple
of 64 straddles two cache lines and costs two. A fully connected layer at batch 1 streams its packed
weights through vpdpbusd's memory operand: ad01's 128 -> 128 layer took 114 ns with them 48 bytes
off a line, 77 on one. The plan's activations and scratch, and the packed weights and constants the
kernels read by vectors, are allocated here.
"""

from __future__ import annotations

import numpy as np

LINE = 64  # bytes: a cache line, and an AVX-512 vector


def empty(nbytes: int) -> np.ndarray:
    """An uninitialized uint8 array of nbytes whose first byte is on a cache line."""
    raw = np.empty(nbytes + LINE, np.uint8)
    start = -raw.ctypes.data % LINE
    return raw[start : start + nbytes]


def array(shape: tuple, dtype) -> np.ndarray:
    """An uninitialized C-contiguous array whose first byte is on a cache line."""
    dtype = np.dtype(dtype)
    return empty(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize).view(dtype).reshape(shape)


def copy(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of a whose first byte is on a cache line."""
    out = array(a.shape, a.dtype)
    out[...] = a
    return out
