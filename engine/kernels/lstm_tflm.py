"""TFLite Micro's integer LSTM step (micro/kernels/lstm_eval.h LstmStep, int8 x int8 -> int16 cell);
engine/ops/lstm_tflm.py prepares the constants."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..numerics.fixedpoint import multiply_by_quantized_multiplier as mbqm
from .kernel import kernel

# sc (int64 constants): per gate k (input, forget, cell, output) at 4 k: x multiplier, shift, h
# multiplier, shift; then at 16: forget x cell m, s; input x cell gate m, s; hidden m, s, zero point; clip
TAIL = 16


@njit(inline="always", cache=True)
def _fc(v, w, b, g, j, m, s):
    """One row of reference_integer_ops::FullyConnected to int16: sat16(MBQM(b + w . v)); v a slice
    of its own (lstm.py's _matmul_acc)."""
    acc = b[g, j]
    for k in range(w.shape[2]):
        acc += np.int64(v[k]) * w[g, j, k]
    return min(max(mbqm(acc, m, s), -32768), 32767)


@njit(cache=True)
def _gate(x, xo, h, ho, mats, sc, g, gates, tab):
    """CalculateLstmGate: both FCs saturated apart, their sum saturated, then the activation's LUT."""
    wx, wh, bx, bh = mats[0], mats[1], mats[2], mats[3]
    k = 4 * g
    xs, hs = x[xo : xo + wx.shape[2]], h[ho : ho + wh.shape[2]]
    for j in range(gates.shape[1]):
        v = _fc(xs, wx, bx, g, j, sc[k], sc[k + 1]) + _fc(hs, wh, bh, g, j, sc[k + 2], sc[k + 3])
        gates[g, j] = tab[min(max(v, -32768), 32767) & 0xFFFF]


@njit(cache=True)
def _step(x, xo, h, ho, c, co, y, yo, mats, sc, tabs, gates):
    """One time step of one sequence: gates, UpdateLstmCell, UpdateLstmHidden."""
    n_cell = c.shape[1]
    for g in range(4):
        _gate(x, xo, h, ho, mats, sc, g, gates, tabs[1] if g == 2 else tabs[0])
    clip = sc[TAIL + 7]
    for j in range(n_cell):
        f = min(max(mbqm(gates[1, j] * np.int64(c[co, j]), sc[TAIL], sc[TAIL + 1]), -32768), 32767)
        i = min(max(mbqm(gates[0, j] * gates[2, j], sc[TAIL + 2], sc[TAIL + 3]), -32768), 32767)
        v = min(max(f + i, -32768), 32767)
        c[co, j] = min(max(v, -clip), clip) if clip > 0 else v
    for j in range(n_cell):
        t = np.int64(tabs[2][np.int64(c[co, j]) & 0xFFFF])
        v = min(max(mbqm(t * gates[3, j], sc[TAIL + 4], sc[TAIL + 5]) + sc[TAIL + 6], -128), 127)
        h[ho + j] = v
        y[yo + j] = v


@kernel
def lstm_tflm(x, h, c, y, mats, sc, tabs, max_time, time_major):
    n_batch, n_cell = c.shape[0], c.shape[1]
    n_input = mats[0].shape[2]
    for b in prange(n_batch):
        gates = np.empty((4, n_cell), np.int64)
        for t in range(max_time):
            step = t * n_batch + b if time_major else b * max_time + t
            _step(x, step * n_input, h, b * n_cell, c, b, y, step * n_cell, mats, sc, tabs, gates)
