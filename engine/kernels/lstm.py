"""The integer LSTM step (lstm_eval.cc LstmStepInteger8x8_16) and its helpers; engine/ops/lstm.py
prepares the constants."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..numerics.fixedpoint import multiply_by_quantized_multiplier as mbqm
from ..numerics.fixedpoint import rounding_divide_by_pot, wrap_int32
from ..numerics.fixedpoint import saturating_rounding_doubling_high_mul as srdhm
from ..numerics.gemmlowp import count_leading_zeros_u32, saturating_shift_left
from .kernel import kernel

# sc (int64 constants): per gate k (input, forget, cell, output) at 9 k: x multiplier, shift, h multiplier,
# shift, peephole multiplier, shift, layer norm multiplier, shift (+12 applied), variance guard; then
FLAGS = 36  # cifg, peephole, layer norm, projection, cell shift (30 + c), cell clip, hidden m, s, zp,
# projection m, s, clip, output zero point, cells with a peephole term


@njit(inline="always", cache=True)
def _matmul_acc(v, w, b, g, j, m, s, prev):
    """MatrixBatchVectorMultiplyAccumulate for one row: sat16(MBQM(b + w . v) + prev). v: the step's
    vector as a slice of its own (an index vo + k may be negative to Numba: a wraparound select per
    element, which made the vectorized loop read v a byte at a time; 0.35 -> 0.19 ms a keras LSTM)."""
    acc = b[g, j]
    for k in range(w.shape[2]):
        acc += np.int64(v[k]) * w[g, j, k]
    return min(max(mbqm(acc, m, s) + prev, -32768), 32767)


@njit(cache=True)
def inv_sqrt(x):
    """GetInvSqrtQuantizedMultiplierExp(x, reverse_shift=-1): (multiplier, left shift) of 1/sqrt(x)."""
    if x <= 1:
        return np.int64(2147483647), np.int64(0)
    shift = 11
    while x >= (1 << 29):
        x //= 4
        shift += 1
    pairs = (count_leading_zeros_u32(x) - 1) // 2 - 1
    shift -= pairs
    x <<= 2 * pairs
    half_input = rounding_divide_by_pot(x >> 1, 1)
    r = np.int64(1 << 28)  # F3 one
    for _ in range(5):
        r3 = saturating_shift_left(srdhm(srdhm(r, r), r), 6)
        r = saturating_shift_left(wrap_int32(srdhm(402653184, r) - srdhm(half_input, r3)), 3)
    r = srdhm(r, 1518500250)
    if shift < 0:
        r = wrap_int32(r << -shift)
        shift = 0
    return r, np.int64(-shift)


@njit(cache=True)
def _layer_norm(row, weights, bias, m, s, guard, out):
    """ApplyLayerNorm on one gate row (int16 values in row), into out."""
    n = row.shape[0]
    total = np.int64(0)
    squares = np.int64(0)
    for j in range(n):
        total += row[j]
        squares += row[j] * row[j]
    mean = wrap_int32(total * 1024 // n if total >= 0 else -((-total * 1024) // n))
    variance = squares * ((1 << 20) // n) - mean * mean
    v2 = wrap_int32(variance // (1 << 20) if variance >= 0 else -((-variance) // (1 << 20)))
    if v2 < 1:
        v2 = guard
    inv_m, inv_s = inv_sqrt(v2)
    for j in range(n):
        rescaled = mbqm(wrap_int32(1024 * row[j] - mean), inv_m, inv_s)
        v3 = wrap_int32(wrap_int32(rescaled * weights[j]) + bias[j])  # int32 arithmetic, unsaturated
        v4 = (v3 + 512) // 1024 if v3 > 0 else -((-(v3 - 512)) // 1024)
        out[j] = min(max(mbqm(wrap_int32(v4), m, s + 12), -32768), 32767)


@njit(cache=True)
def _gate(x, xo, h, ho, c, co, mats, sc, g, gates, tab):
    """One gate's pre-activation for every cell (both products, peephole, layer norm), activated."""
    wx, wh, bx, bh, peep, lnw, lnb = mats[0], mats[1], mats[2], mats[3], mats[4], mats[5], mats[6]
    k = 9 * g
    row = gates[4]
    xs, hs = x[xo : xo + wx.shape[2]], h[ho : ho + wh.shape[2]]
    for j in range(c.shape[1]):
        v = _matmul_acc(xs, wx, bx, g, j, sc[k], sc[k + 1], 0)
        v = _matmul_acc(hs, wh, bh, g, j, sc[k + 2], sc[k + 3], v)
        if sc[FLAGS + 1] and g != 2 and j < sc[FLAGS + 13]:  # peephole: old cell (new for the output gate)
            p = mbqm(peep[g, j] * np.int64(c[co, j]), sc[k + 4], sc[k + 5])
            v = min(max(p + v, -32768), 32767)
        row[j] = v
    if sc[FLAGS + 2]:
        _layer_norm(row, lnw[g], lnb[g], sc[k + 6], sc[k + 7], sc[k + 8], row)
    for j in range(c.shape[1]):
        gates[g, j] = tab[row[j] & 0xFFFF]


@njit(cache=True)
def _step(x, xo, h, ho, c, co, y, yo, mats, sc, tabs, gates):
    """One time step of one sequence (LstmStepInteger8x8_16)."""
    n_cell = c.shape[1]
    sig, tanh3, tanh_cell = tabs[0], tabs[1], tabs[2]
    _gate(x, xo, h, ho, c, co, mats, sc, 1, gates, sig)
    _gate(x, xo, h, ho, c, co, mats, sc, 2, gates, tanh3)
    if sc[FLAGS]:  # CIFG: the input gate is 1 - forget
        for j in range(n_cell):
            gates[0, j] = 32767 - gates[1, j]
    else:
        _gate(x, xo, h, ho, c, co, mats, sc, 0, gates, sig)
    c_shift, clip = sc[FLAGS + 4], sc[FLAGS + 5]
    for j in range(n_cell):
        f = rounding_divide_by_pot(gates[1, j] * c[co, j], 15)
        i = rounding_divide_by_pot(gates[0, j] * gates[2, j], c_shift)
        v = min(max(((f + 32768) & 0xFFFF) - 32768 + ((i + 32768) & 0xFFFF) - 32768, -32768), 32767)
        c[co, j] = min(max(v, -clip), clip) if clip > 0 else v
    _gate(x, xo, h, ho, c, co, mats, sc, 3, gates, sig)
    hidden = gates[4]
    for j in range(n_cell):
        t = np.int64(tanh_cell[np.int64(c[co, j]) & 0xFFFF])
        hidden[j] = min(max(mbqm(gates[3, j] * t, sc[FLAGS + 6], sc[FLAGS + 7]) + sc[FLAGS + 8], -128), 127)
    _output(hidden, y, yo, mats, sc)
    for j in range(mats[7].shape[0] if sc[FLAGS + 3] else n_cell):
        h[ho + j] = y[yo + j]


@njit(inline="always", cache=True)
def _output(hidden, y, yo, mats, sc):
    """The step's output: the hidden state, or its projection (clamped, clipped) when there is one."""
    if not sc[FLAGS + 3]:
        for j in range(hidden.shape[0]):
            y[yo + j] = hidden[j]
        return
    pw, pb = mats[7], mats[8]
    clip = sc[FLAGS + 11]
    for o in range(pw.shape[0]):
        acc = pb[o]
        for j in range(pw.shape[1]):
            acc += hidden[j] * pw[o, j]
        v = min(max(mbqm(acc, sc[FLAGS + 9], sc[FLAGS + 10]) + sc[FLAGS + 12], -128), 127)
        y[yo + o] = min(max(v, -clip), clip) if clip > 0 else v


@kernel
def lstm(x, h, c, y, mats, sc, tabs, max_time, time_major):
    n_batch, n_cell = c.shape[0], c.shape[1]
    n_input = mats[0].shape[2]
    n_output = mats[1].shape[2]
    for b in prange(n_batch):
        gates = np.empty((5, n_cell), np.int64)
        for t in range(max_time):
            step = t * n_batch + b if time_major else b * max_time + t
            _step(x, step * n_input, h, b * n_output, c, b, y, step * n_output, mats, sc, tabs, gates)
