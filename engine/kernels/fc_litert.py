"""FULLY_CONNECTED for numerics="litert" (ops/fully_connected.py): conv.fully_connected_fixed's GEMM and
vector requantization with XNNPACK's fp32 rule or ruy's rounding (requantize.RequantFp32 / RequantRuy).

The requantization's named tuple is built inside the kernel from plain arguments: passing a named tuple
from Python costs Numba's dispatcher about a microsecond per call (its typeof goes through Python), which
on a batch-1 model of small layers (ad01, hello_world) is a third of the layer's time."""

from __future__ import annotations

import numba
from numba import prange

from .conv import _load_rows
from .gemm import OCB, PX, gemm_rows
from .kernel import kernel
from .requantize import RequantFp32, RequantRuy, requantize_pixels


@kernel
def fully_connected_fp32(x, delta, w, blocks, table, out_zp, lo, hi, zeros, all_rows, accs, out):
    """x: [B, K] int8/uint8 (+ delta: the GEMM's operand type), w packed by gemm.pack_weights, table from
    requantize.params_fp32 (bias, float32 scale per unit); out [B, U]; all_rows, accs: scratch per thread."""
    rq = RequantFp32(table, out_zp, lo, hi)
    bsz = x.shape[0]
    kp = all_rows.shape[2]
    width = blocks * OCB
    for t in prange(-(-bsz // PX)):
        thread = numba.get_thread_id()
        rows, acc = all_rows[thread], accs[thread]
        r0 = t * PX
        n = min(PX, bsz - r0)
        _load_rows(x, r0, n, delta, rows)
        gemm_rows(rows.reshape(-1), kp, n, w, blocks, acc)
        requantize_pixels(acc, width, zeros, rq, out[r0 : r0 + n])


@kernel
def fully_connected_ruy(x, delta, w, blocks, table, out_zp, lo, hi, zeros, all_rows, accs, out):
    """fully_connected_fp32 with ruy's rounding: table from requantize.params (bias, M0, shifts)."""
    rq = RequantRuy(table, out_zp, lo, hi)
    bsz = x.shape[0]
    kp = all_rows.shape[2]
    width = blocks * OCB
    for t in prange(-(-bsz // PX)):
        thread = numba.get_thread_id()
        rows, acc = all_rows[thread], accs[thread]
        r0 = t * PX
        n = min(PX, bsz - r0)
        _load_rows(x, r0, n, delta, rows)
        gemm_rows(rows.reshape(-1), kp, n, w, blocks, acc)
        requantize_pixels(acc, width, zeros, rq, out[r0 : r0 + n])
