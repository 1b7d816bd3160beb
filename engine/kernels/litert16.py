"""LiteRT's optimized 16x8 FULLY_CONNECTED on x86 (numerics="litert"): the products summed in int32, which
wraps (measured: sums beyond 2**31 come out wrapped, not saturated), the bias added in int32, then ruy's
rescale (requantize.RequantRuy: the reference's multipliers, the final right shift rounded half up).
LiteRT takes this path only without an int64 bias and without quantized_bias_type INT64 in the options
(else its reference kernel: int64 sums); ops/conv16.py decides."""

from __future__ import annotations

import numpy as np
from numba import prange

from .kernel import kernel
from .requantize import requantize_one


@kernel
def fully_connected16_ruy(x, w, rq, out):
    """x [rows, depth] int16, w [units, depth] int32 or int64; rq: a requantize.RequantRuy whose table
    holds each unit's bias, multiplier and shift; out [rows, units] int16."""
    rows, depth = x.shape
    units = w.shape[0]
    for r in prange(rows):
        for u in range(units):
            acc = np.int64(0)
            for k in range(depth):
                acc += x[r, k] * w[u, k]
            out[r, u] = requantize_one(np.int32(acc), rq, u)  # the int32 sum wraps, as ruy's
