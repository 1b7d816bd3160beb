"""FULLY_CONNECTED's kernels with five arguments: the input, the packed weights, one array of the layer's
constants, one scratch array, the output.

A batch-1 model of small layers (hello_world 1x16 -> 16, ad01's 640 -> 128 -> 8 -> 128 -> 640) spends
more time passing a layer's arguments than computing it: Numba's compiled entry point unboxes every
argument on every call (an array costs several times a plain integer), so the layer's sizes, zero
points, clamp, bias and requantization table travel in one int64 array (consts()) built at prepare,
and each thread's rows in one scratch array. A task is ROWS rows of x (shifted into the GEMM's operand
type, x + delta, where the micro-kernel cannot read x itself: MODE), multiplied and requantized in
registers, tiles of PX rows x 32 units, or 2 * PX rows where the registers allow (the double rule, 16
units or fewer; gemm.tiles_requantize: no sums stored, no per-row loops, which cost more than the
products on small layers); without AVX-512, the sums go through memory (gemm_rows,
requantize.requantize_rows). One kernel per requantization rule:
- fully_connected_double: the reference kernel's double rule (requantize.RequantDouble);
- fully_connected_fixed / _ruy / _fp32: requantize.Requant / RequantRuy / RequantFp32 on the params()
  (params_fp32()) table, widened (requantize.widen) for the fused epilogue: TFLite Micro's, LiteRT's
  optimized kernel's and XNNPACK's rules.
A layer of fewer than PX rows (a batch of one) takes the rule's FEW_ROWS function instead: the sums
path alone, serial (one task: nothing to share out).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from . import aligned
from .conv import _load_rows, tile_requantize_part
from .gemm import FUSED, OCB, PX, Epilogue, Runs, gemm_rows, tiles_requantize
from .irtools import flat_view, reshaped, retyped
from .kernel import kernel
from .requantize import Requant, RequantDouble, RequantFp32, RequantRuy, requantize_rows

ROWS = 8 * PX  # rows of x per task (2 at batch 64: the threads share them)
# consts(): a header of int64 values, ROWS zeros (the sums' offsets per row: none), then the rule's arrays
DELTA, BLOCKS, OUT_ZP, LO, HI, KP, UNITS, TABLE_ROWS, MODE, FITS, ZEROS = range(11)
# MODE: how a task multiplies. COPIED: its rows copied (x + delta) to scratch, multiplied and requantized
# in registers (gemm.tiles_requantize, AVX-512); IN_PLACE: so, x read itself; SUMS (no AVX-512, a layer
# whose double rule can leave int32, and any task of fewer than PX rows): the copied rows' sums stored
# (gemm_rows), then requantized
SUMS, COPIED, IN_PLACE = range(3)
HEADER = ZEROS + ROWS


def consts(
    delta: int, blocks: int, gemm: tuple, units: int, table: np.ndarray, mode: int, fits: bool
) -> np.ndarray:
    """The int64 array a kernel reads: delta (x + delta: the GEMM's operand), the weights' blocks,
    gemm = (out_zp, lo, hi, kp) (kp: the depth rounded to the k group), units; then the rule's table
    [rows, units]: float64 (bias, scale) for the double rule, else int32; mode: SUMS, COPIED or
    IN_PLACE (x's rows kp apart); fits: no requantized value plus the zero point can leave int32 (the
    double rule's rows then clamp before converting: requantize.requantize_rows)."""
    out_zp, lo, hi, kp = gemm
    header = [delta, blocks, out_zp, lo, hi, kp, units, table.shape[0], mode, int(fits)]
    header = np.array(header + [0] * ROWS, np.int64)
    raw = np.ascontiguousarray(table).reshape(-1).view(np.uint8)
    return aligned.copy(np.concatenate([header, np.pad(raw, (0, -raw.size % 8)).view(np.int64)]))


def scratch_length(kp: int, blocks: int, operand: np.dtype, mode: int) -> int:
    """A thread's scratch row, in operands: ROWS rows of kp operands, then the rows of sums (int32) of
    a task that stores them: ROWS rows in mode SUMS, else fewer than PX."""
    return ROWS * kp + (ROWS if mode == SUMS else PX) * blocks * OCB * 4 // np.dtype(operand).itemsize


@njit(inline="always", cache=True)
def _task(x, w, c, scratch, rq, out, t):
    """Rows t*ROWS .. of x times the weights, requantized by rq into out."""
    kp = c[KP]
    r0 = t * ROWS
    n = min(ROWS, x.shape[0] - r0)
    # (fewer rows, a batch of 1 say: a row of sums over all the blocks is faster)
    if not FUSED or n < PX or c[MODE] == SUMS:
        _rows_summed(x, w, c, scratch, rq, out, r0, n)
    elif c[MODE] == IN_PLACE:
        _requantized_rows(flat_view(x), r0 * kp, w, c, rq, out, r0, n)
    else:
        rows = scratch[numba.get_thread_id()][: ROWS * kp]
        _load_rows(x, r0, n, np.int16(c[DELTA]), reshaped(rows, (ROWS, kp)))
        _requantized_rows(rows, 0, w, c, rq, out, r0, n)


@njit(inline="always", cache=True)
def _rows_summed(x, w, c, scratch, rq, out, r0, n):
    """Rows r0 .. r0 + n of x (ROWS at most) copied (x + delta), their sums stored, then requantized."""
    kp, blocks = c[KP], c[BLOCKS]
    mine = scratch[numba.get_thread_id()]
    rows = mine[: ROWS * kp]
    _load_rows(x, r0, n, np.int16(c[DELTA]), reshaped(rows, (ROWS, kp)))
    acc = retyped(mine[ROWS * kp :], np.int32)
    gemm_rows(rows, kp, n, w, blocks, acc)
    requantize_rows(acc, blocks * OCB, c[ZEROS:HEADER], rq, out[r0 : r0 + n], c[FITS] != 0)


@njit(inline="always", cache=True)
def _requantized_rows(rows, x_off, w, c, rq, out, r0, n):
    """out[r0 .. r0 + n] from the GEMM's operand rows (kp apart from rows[x_off]), requantized in registers."""
    kp, units = c[KP], c[UNITS]
    ksteps = kp // (4 // rows.itemsize)  # uint8 (or int8, flipped) rows: quads of k per step; int16: pairs
    whole = n // PX
    flat = flat_view(out)
    zeros = retyped(c[ZEROS:HEADER], np.int32)  # (the epilogue's offsets: int32, read only where d != 0)
    for b in range(c[BLOCKS]):
        ch = b * OCB
        channels = min(OCB, units - ch)
        if whole > 0:
            ep = Epilogue(ch, channels, -1, 0, 0, whole * PX, r0 * units + ch, units)
            at = Runs(x_off, kp, b * kp * OCB, ksteps, 1, 0, 0)
            tiles_requantize(rows, w, at, ep, zeros, flat, rq, whole)
        if n > whole * PX:
            first = whole * PX
            ep = Epilogue(ch, channels, -1, 0, first, n - first, (r0 + first) * units + ch, units)
            at = Runs(x_off + first * kp, kp, b * kp * OCB, ksteps, 1, 0, 0)
            tile_requantize_part(rows, w, at, ep, zeros, flat, rq)


@njit(inline="always", cache=True)
def _table(c):
    """consts()'s int32 table."""
    units, rows = c[UNITS], c[TABLE_ROWS]
    words = c[HEADER : HEADER + -(-rows * units // 2)]
    return reshaped(retyped(words, np.int32)[: rows * units], (rows, units))


@njit(inline="always", cache=True)
def _double_table(c):
    """consts()'s float64 table (the double rule's bias and scale)."""
    units = c[UNITS]
    return reshaped(retyped(c[HEADER : HEADER + 2 * units], np.float64), (2, units))


@njit(inline="always", cache=True)
def _double(c):
    return RequantDouble(_double_table(c), c[OUT_ZP], c[LO], c[HI])


@njit(inline="always", cache=True)
def _fixed(c):
    return Requant(_table(c), c[OUT_ZP], c[LO], c[HI])


@njit(inline="always", cache=True)
def _ruy(c):
    return RequantRuy(_table(c), c[OUT_ZP], c[LO], c[HI])


@njit(inline="always", cache=True)
def _fp32(c):
    return RequantFp32(_table(c), c[OUT_ZP], c[LO], c[HI])


@kernel(own_serial=True)
def fully_connected_double(x, w, c, scratch, out):
    """x: [B, K] int8/uint8; w: gemm.pack_weights; c: consts() with (bias, scale); out: [B, U]."""
    rq = _double(c)
    for t in prange(-(-x.shape[0] // ROWS)):
        _task(x, w, c, scratch, rq, out, t)


@kernel(own_serial=True)
def fully_connected_fixed(x, w, c, scratch, out):
    """fully_connected_double with TFLite Micro's fixed-point rule: c holds a requantize.params table."""
    rq = _fixed(c)
    for t in prange(-(-x.shape[0] // ROWS)):
        _task(x, w, c, scratch, rq, out, t)


@kernel(own_serial=True)
def fully_connected_ruy(x, w, c, scratch, out):
    """fully_connected_fixed rounded as ruy does (LiteRT's optimized kernel)."""
    rq = _ruy(c)
    for t in prange(-(-x.shape[0] // ROWS)):
        _task(x, w, c, scratch, rq, out, t)


@kernel(own_serial=True)
def fully_connected_fp32(x, w, c, scratch, out):
    """fully_connected_fixed with XNNPACK's fp32 rule: c holds a requantize.params_fp32 table."""
    rq = _fp32(c)
    for t in prange(-(-x.shape[0] // ROWS)):
        _task(x, w, c, scratch, rq, out, t)


KERNELS = {
    "double": fully_connected_double,
    "reference": fully_connected_fixed,
    "ruy": fully_connected_ruy,
    "fp32": fully_connected_fp32,
}

# Fewer than PX rows (a batch of one): the one task's sums path alone, a plain function. The kernels
# above hold every mode's and tile's code, and on a call this short their prologue shows (constants of
# paths not taken, hoisted and spilled): 20-27 ns of a 128 -> 8 layer's 95 ns, called through
# native.run_calls.


@njit(cache=True, nogil=True)
def fully_connected_double_few(x, w, c, scratch, out):
    _rows_summed(x, w, c, scratch, _double(c), out, 0, x.shape[0])


@njit(cache=True, nogil=True)
def fully_connected_fixed_few(x, w, c, scratch, out):
    _rows_summed(x, w, c, scratch, _fixed(c), out, 0, x.shape[0])


@njit(cache=True, nogil=True)
def fully_connected_ruy_few(x, w, c, scratch, out):
    _rows_summed(x, w, c, scratch, _ruy(c), out, 0, x.shape[0])


@njit(cache=True, nogil=True)
def fully_connected_fp32_few(x, w, c, scratch, out):
    _rows_summed(x, w, c, scratch, _fp32(c), out, 0, x.shape[0])


FEW_ROWS = {
    "double": fully_connected_double_few,
    "reference": fully_connected_fixed_few,
    "ruy": fully_connected_ruy_few,
    "fp32": fully_connected_fp32_few,
}
