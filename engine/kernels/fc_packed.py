"""FULLY_CONNECTED's kernels with five arguments: the input, the packed weights, one array of the layer's
constants, one scratch array, the output.

A batch-1 model of small layers (hello_world 1x16 -> 16, ad01's 640 -> 128 -> 8 -> 128 -> 640) spends
more time passing a layer's arguments than computing it: Numba's compiled entry point unboxes every
argument on every call (an array costs several times a plain integer), so the layer's sizes, zero
points, clamp, bias and requantization table travel in one int64 array (consts()) built at prepare,
and each thread's rows and sums in one scratch array. One kernel per requantization rule:
- fully_connected_double: the reference kernel's double rule (requantize_double_row);
- fully_connected_fixed / _ruy / _fp32: requantize.Requant / RequantRuy / RequantFp32 on the params()
  (params_fp32()) table: TFLite Micro's, LiteRT's optimized kernel's and XNNPACK's rules.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from .conv import _load_rows
from .gemm import OCB, PX, gemm_rows
from .irtools import reshaped
from .kernel import kernel
from .requantize import Requant, RequantFp32, RequantRuy, requantize_pixels

ROWS = 2 * PX  # rows of x per task: gemm_rows takes them 2 * PX at a time
# consts(): a header of int64 values, ROWS zeros (the sums' offsets per row: none), then the rule's arrays
DELTA, BLOCKS, OUT_ZP, LO, HI, KP, UNITS, ZEROS = range(8)
HEADER = ZEROS + ROWS


def consts(delta: int, blocks: int, gemm: tuple, units: int, arrays: tuple) -> np.ndarray:
    """The int64 array a kernel reads: delta (x + delta: the GEMM's operand), the weights' blocks,
    gemm = (out_zp, lo, hi, kp) (kp: the depth rounded to the k group), units; then arrays:
    (bias float64 [units], scale float64 [units]) for the double rule, else (table int32 [7, units],)."""
    out_zp, lo, hi, kp = gemm
    header = np.array([delta, blocks, out_zp, lo, hi, kp, units] + [0] * ROWS, np.int64)
    parts = [header]
    for a in arrays:
        raw = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        parts.append(np.pad(raw, (0, -raw.size % 8)).view(np.int64))
    return np.concatenate(parts)


def scratch_length(kp: int, blocks: int, operand: np.dtype) -> int:
    """A thread's scratch row, in operands: ROWS rows of kp operands, then ROWS rows of sums (int32)."""
    return ROWS * kp + ROWS * blocks * OCB * 4 // np.dtype(operand).itemsize


@njit(inline="always", cache=True)
def _tile(x, w, c, scratch, t):
    """Rows t*ROWS .. of x times the weights: (the sums [ROWS * width] int32, first row, rows)."""
    kp, blocks = c[KP], c[BLOCKS]
    mine = scratch[numba.get_thread_id()]
    rows = mine[: ROWS * kp]
    acc = mine[ROWS * kp :].view(np.int32)
    r0 = t * ROWS
    n = min(ROWS, x.shape[0] - r0)
    _load_rows(x, r0, n, np.int16(c[DELTA]), reshaped(rows, (ROWS, kp)))
    gemm_rows(rows, kp, n, w, blocks, acc)
    return acc, r0, n


HALF_DOWN = 0.49999999999999994  # the double just below 0.5


@njit(inline="always", cache=True)
def requantize_double_row(sums, bias, scale, out_zp, lo, hi, out):
    """out[u] = int32(round((sums[u] + bias[u]) * scale[u])) + out_zp, clamped to [lo, hi]: the reference
    FULLY_CONNECTED's double rule (half away from zero), 8 lanes of double at a time.
    sums + bias is exact in double (integers below 2**53: bias comes as float64). Rounding is a
    truncation of v + copysign(HALF_DOWN, v): for |v| < 2**52 the sum lands in [n, n + 1) exactly when
    round(v) = n (v + HALF_DOWN falls short of n + 1 by at least v's spacing, and a tie v = n - 1/2
    rounds up to n), and larger v are whole already; the clamp to [lo, hi] - out_zp, whole numbers,
    commutes with the truncation. 0.33 ns an output instead of 0.48 for floor, compare and copysign."""
    f_lo, f_hi = np.float64(lo - out_zp), np.float64(hi - out_zp)
    for u in range(out.size):
        v = (np.float64(sums[u]) + bias[u]) * scale[u]
        out[u] = np.int32(min(max(v + np.copysign(HALF_DOWN, v), f_lo), f_hi)) + out_zp


@njit(inline="always", cache=True)
def _table(c):
    units = c[UNITS]
    return reshaped(c[HEADER : HEADER + -(-7 * units // 2)].view(np.int32)[: 7 * units], (7, units))


@kernel
def fully_connected_double(x, w, c, scratch, out):
    """x: [B, K] int8/uint8; w: gemm.pack_weights; c: consts() with (bias, scale); out: [B, U]."""
    units = c[UNITS]
    width = c[BLOCKS] * OCB
    bias = c[HEADER : HEADER + units].view(np.float64)
    scale = c[HEADER + units : HEADER + 2 * units].view(np.float64)
    for t in prange(-(-x.shape[0] // ROWS)):
        acc, r0, n = _tile(x, w, c, scratch, t)
        for r in range(n):
            requantize_double_row(
                acc[r * width : r * width + units], bias, scale, c[OUT_ZP], c[LO], c[HI], out[r0 + r]
            )


@kernel
def fully_connected_fixed(x, w, c, scratch, out):
    """fully_connected_double with TFLite Micro's fixed-point rule: c holds a requantize.params table."""
    rq = Requant(_table(c), c[OUT_ZP], c[LO], c[HI])
    zeros = c[ZEROS:HEADER]
    for t in prange(-(-x.shape[0] // ROWS)):
        acc, r0, n = _tile(x, w, c, scratch, t)
        requantize_pixels(acc, c[BLOCKS] * OCB, zeros, rq, out[r0 : r0 + n])


@kernel
def fully_connected_ruy(x, w, c, scratch, out):
    """fully_connected_fixed rounded as ruy does (LiteRT's optimized kernel)."""
    rq = RequantRuy(_table(c), c[OUT_ZP], c[LO], c[HI])
    zeros = c[ZEROS:HEADER]
    for t in prange(-(-x.shape[0] // ROWS)):
        acc, r0, n = _tile(x, w, c, scratch, t)
        requantize_pixels(acc, c[BLOCKS] * OCB, zeros, rq, out[r0 : r0 + n])


@kernel
def fully_connected_fp32(x, w, c, scratch, out):
    """fully_connected_fixed with XNNPACK's fp32 rule: c holds a requantize.params_fp32 table."""
    rq = RequantFp32(_table(c), c[OUT_ZP], c[LO], c[HI])
    zeros = c[ZEROS:HEADER]
    for t in prange(-(-x.shape[0] // ROWS)):
        acc, r0, n = _tile(x, w, c, scratch, t)
        requantize_pixels(acc, c[BLOCKS] * OCB, zeros, rq, out[r0 : r0 + n])


KERNELS = {
    "double": fully_connected_double,
    "reference": fully_connected_fixed,
    "ruy": fully_connected_ruy,
    "fp32": fully_connected_fp32,
}
