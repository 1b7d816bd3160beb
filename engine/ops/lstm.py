"""UNIDIRECTIONAL_SEQUENCE_LSTM, the integer kernel (kernels/unidirectional_sequence_lstm.cc,
lstm_eval.cc EvalInteger8x8_16 / LstmStepInteger8x8_16): int8 input, output and hidden state, int16
cell state, int8 weights, int32 biases.

Prepare (PopulateQuantizedLstmParams8x8_16): gate pre-activations live in Q3.12 (scale 2^-12, no
layer norm); each weight matrix gets the effective scale s_w * s_x / 2^-12, computed in float32, as a
(multiplier, shift); the zero points of the input and the state fold into the biases
(bias - zp * row sums of the weights). The cell scale must be a power of two 2^c.
Each step, per sequence (the state starts from reset at every run, as after the reference's
ResetVariableTensors: output state at its zero point, cell at 0):
  gate = sat16(MBQM(W_x x + b, m_x) + sat16(MBQM(W_h h + b_h, m_h)))     forget, cell, input, output
  f, i, o = sigmoid(Q3.12 -> Q0.15); g = tanh(Q3.12 -> Q0.15)          (gemmlowp, 16-bit)
  cell = sat16(rdp(f * cell, 15) + rdp(i * g, 30 + c)), clipped to the quantized cell_clip
  h = clamp8(MBQM(o * tanh(cell in Q(15+c)), m_hidden) + zp_hidden)   (the output, and the state)
CIFG (no input gate weights): i = 32767 - f. Peepholes, projection and layer norm are refused.
The reference keeps the state across invokes; the engine runs are stateless (the tests reset the
reference before each run), and the final state is left in the state tensors, as the reference does.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..numerics import fixedpoint16
from ..numerics.fixedpoint import multiply_by_quantized_multiplier as mbqm
from ..numerics.fixedpoint import quantize_multiplier, rounding_divide_by_pot
from .common import Prepared, fail, per_tensor, require, require_types
from .int16 import checked_log2
from .quant_params import wrap_int32

INPUT, STATE_OUT, STATE_CELL = 0, 18, 19
W_X = (1, 2, 3, 4)  # input_to_{input, forget, cell, output}_weights
W_H = (5, 6, 7, 8)  # recurrent_to_{input, forget, cell, output}_weights
PEEPHOLES, BIASES, PROJECTION, LAYER_NORM = (9, 10, 11), (12, 13, 14, 15), (16, 17), (20, 21, 22, 23)
GATE_SCALE = np.float32(2.0**-12)  # Q3.12 without layer norm


@njit(inline="always", cache=True)
def _gate(x, xo, h, ho, wx, wh, bx, bh, mx, sx, mh, sh, g, cell):
    """out[cell] = sat16(MBQM(h-part) + sat16(MBQM(x-part))): the reference's two accumulations."""
    acc = bx[g, cell]
    for k in range(wx.shape[2]):
        acc += np.int64(x[xo + k]) * wx[g, cell, k]
    v = min(max(mbqm(acc, mx[g], sx[g]), -32768), 32767)
    acc = bh[g, cell]
    for k in range(wh.shape[2]):
        acc += np.int64(h[ho + k]) * wh[g, cell, k]
    return min(max(mbqm(acc, mh[g], sh[g]) + v, -32768), 32767)


@njit(cache=True)
def _step(x, xo, h, ho, c, co, y, yo, wx, wh, bx, bh, sc, tabs, gates):
    """One time step of one sequence; sc: mx, sx, mh, sh (4 each), cifg, c_shift, clip, m_hid, s_hid, zp_hid."""
    n_cell = c.shape[1]
    mx, sx, mh, sh = sc[0:4], sc[4:8], sc[8:12], sc[12:16]
    cifg, c_shift, clip, m_hid, s_hid, zp_hid = sc[16], sc[17], sc[18], sc[19], sc[20], sc[21]
    sig, tanh3, tanh_cell = tabs[0], tabs[1], tabs[2]
    for j in range(n_cell):
        for g in range(1, 4):  # forget, cell, output (the output gate reads the new cell only via h)
            v = _gate(x, xo, h, ho, wx, wh, bx, bh, mx, sx, mh, sh, g, j)
            gates[g, j] = tanh3[v & 0xFFFF] if g == 2 else sig[v & 0xFFFF]
        if cifg:
            gates[0, j] = 32767 - gates[1, j]
        else:
            v = _gate(x, xo, h, ho, wx, wh, bx, bh, mx, sx, mh, sh, 0, j)
            gates[0, j] = sig[v & 0xFFFF]
    for j in range(n_cell):
        f = rounding_divide_by_pot(np.int64(gates[1, j]) * c[co, j], 15)
        f = ((f + 32768) & 0xFFFF) - 32768  # CwiseMul stores int16
        i = rounding_divide_by_pot(np.int64(gates[0, j]) * gates[2, j], c_shift)
        i = ((i + 32768) & 0xFFFF) - 32768
        v = min(max(f + i, -32768), 32767)
        if clip > 0:
            v = min(max(v, -clip), clip)
        c[co, j] = v
    for j in range(n_cell):
        t = np.int64(tanh_cell[np.int64(c[co, j]) & 0xFFFF])
        r = mbqm(np.int64(gates[3, j]) * t, m_hid, s_hid) + zp_hid
        y[yo + j] = min(max(r, -128), 127)
    for j in range(n_cell):
        h[ho + j] = y[yo + j]


@kernel
def _lstm(x, h, c, y, wx, wh, bx, bh, sc, tabs, max_time, time_major):
    n_batch = c.shape[0]
    n_input, n_cell = wx.shape[2], c.shape[1]
    for b in prange(n_batch):
        gates = np.empty((4, n_cell), np.int64)
        for t in range(max_time):
            step = t * n_batch + b if time_major else b * max_time + t
            _step(x, step * n_input, h, b * n_cell, c, b, y, step * n_cell, wx, wh, bx, bh, sc, tabs, gates)


def _tensor(op: Op, g: Graph, k: int):
    i = op.inputs[k] if k < len(op.inputs) else -1
    return g.tensors[i] if i >= 0 else None


def _check_supported(op: Op, g: Graph) -> None:
    require(op, len(op.inputs) in (20, 24), f"takes 20 or 24 inputs, has {len(op.inputs)}")
    for what, ks in (("peephole", PEEPHOLES), ("projection", PROJECTION), ("layer norm", LAYER_NORM)):
        if any(_tensor(op, g, k) is not None for k in ks):
            raise fail(op, f"an integer LSTM with {what} weights is not supported")
    for k in (STATE_OUT, STATE_CELL):
        t = _tensor(op, g, k)
        require(op, t is not None and t.is_variable, f"input {k} (the state) must be a variable tensor")
    x = _tensor(op, g, INPUT)
    require(op, x.dtype == "int8", f"{x.describe()}: only the integer LSTM (int8 input) is supported")
    for k in (*W_X, *W_H):
        t = _tensor(op, g, k)
        if t is not None:
            require_types(op, t, ("int8",))
            require(
                op, t.is_const and t.scale.size == 1, f"{t.describe()}: weights must be constant, per tensor"
            )
            require(op, int(t.zero_point[0]) == 0, f"{t.describe()}: weights must be symmetric")
    require(op, _tensor(op, g, STATE_OUT).dtype == "int8", "the output state must be int8")
    require(op, _tensor(op, g, STATE_CELL).dtype == "int16", "the cell state must be int16")
    require(op, len(op.intermediates) == 5, "the integer LSTM needs its 5 intermediate tensors")


def _matrices(op: Op, g: Graph, n_cell: int, n_input: int, n_output: int, cifg: bool):
    """Weights [4, n_cell, k] (int64) and effective biases [4, n_cell] for the x and h products."""
    x_zp = per_tensor(op, _tensor(op, g, INPUT))[1]
    h_zp = per_tensor(op, _tensor(op, g, STATE_OUT))[1]
    wx = np.zeros((4, n_cell, n_input), np.int64)
    wh = np.zeros((4, n_cell, n_output), np.int64)
    bx = np.zeros((4, n_cell), np.int64)
    for gate in range(4):
        if gate == 0 and cifg:
            continue
        tx, th, tb = (_tensor(op, g, ks[gate]) for ks in (W_X, W_H, BIASES))
        require(op, tx.shape == (n_cell, n_input), f"{tx.describe()}: expected [{n_cell}, {n_input}]")
        require(op, th.shape == (n_cell, n_output), f"{th.describe()}: expected [{n_cell}, {n_output}]")
        require(
            op, tb is not None and tb.is_const and tb.dtype == "int32", f"gate {gate}: int32 bias required"
        )
        require(op, tb.shape == (n_cell,), f"{tb.describe()}: expected [{n_cell}]")
        wx[gate], wh[gate] = tx.data, th.data
        # PrecomputeZeroPointTimesWeightWithBias, int32 like the reference
        bx[gate] = tb.data.astype(np.int64) - x_zp * wx[gate].sum(axis=1)
    bh = -h_zp * wh.sum(axis=2)
    return wx, wh, wrap_int32(bx).astype(np.int64), wrap_int32(bh).astype(np.int64)


def _scales(op: Op, g: Graph, cifg: bool) -> tuple[np.ndarray, int]:
    """The kernel's constants (see _step) and the cell's power-of-two exponent."""
    f32 = np.float32
    s_x = f32(per_tensor(op, _tensor(op, g, INPUT))[0])
    s_h = f32(per_tensor(op, _tensor(op, g, STATE_OUT))[0])
    mx, sx, mh, sh = ([0] * 4 for _ in range(4))
    for gate in range(0 if not cifg else 1, 4):
        mx[gate], sx[gate] = quantize_multiplier(
            float(f32(_tensor(op, g, W_X[gate]).scale[0]) * s_x / GATE_SCALE)
        )
        mh[gate], sh[gate] = quantize_multiplier(
            float(f32(_tensor(op, g, W_H[gate]).scale[0]) * s_h / GATE_SCALE)
        )
    cell = _tensor(op, g, STATE_CELL)
    pot, c = checked_log2(per_tensor(op, cell)[0])
    require(
        op,
        pot and 0 <= 15 + c <= 6,
        f"{cell.describe()}: cell scale must be 2^-15..2^-9",
    )
    hidden = g.tensors[op.intermediates[4]]
    require(op, hidden.scale.size == 1, f"{hidden.describe()}: the hidden intermediate must be quantized")
    two15 = f32(2.0**-15)
    m_hid, s_hid = quantize_multiplier(float(two15 / f32(hidden.scale[0]) * two15))
    clip = 0
    cell_clip = f32(op.options.get("cell_clip", 0.0))
    if cell_clip > 0:
        clip = int(min(max(cell_clip / f32(cell.scale[0]), f32(-32768.0)), f32(32767.0)))
    consts = [*mx, *sx, *mh, *sh, int(cifg), 30 + c, clip, m_hid, s_hid, int(hidden.zero_point[0])]
    return np.array(consts, np.int64), c


def variable_shapes(op: Op, g: Graph, shapes: list) -> dict[int, tuple[int, ...]]:
    """The state tensors hold one row per sequence of this run's input (batch-major: its first
    dimension, time-major: its second); the reference needs only their element counts to match."""
    x_shape = shapes[INPUT] if shapes else None
    if x_shape is None or len(x_shape) != 3:
        return {}
    n_batch = x_shape[1] if op.options.get("time_major", False) else x_shape[0]
    w = _tensor(op, g, W_H[3])
    if w is None or len(w.shape) != 2:
        return {}
    out = {}
    for k, n in ((STATE_OUT, w.shape[1]), (STATE_CELL, w.shape[0])):
        t = _tensor(op, g, k)
        if t is not None and t.shape:
            out[t.index] = (n_batch, *t.shape[1:]) if len(t.shape) > 1 else (n_batch * n,)
    return out


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    _check_supported(op, g)
    x_shape = shapes[INPUT]
    require(op, len(x_shape) == 3, f"input must be 3-D, got {list(x_shape)}")
    time_major = bool(op.options.get("time_major", False))
    max_time, n_batch = (x_shape[0], x_shape[1]) if time_major else (x_shape[1], x_shape[0])
    n_input = x_shape[2]
    n_cell, n_output = _tensor(op, g, W_H[3]).shape
    require(op, n_cell == n_output, "without projection the output size must equal the cell count")
    for k, n in ((STATE_OUT, n_output), (STATE_CELL, n_cell)):
        got = int(np.prod(shapes[k]))
        require(op, got == n_batch * n, f"{_tensor(op, g, k).describe()}: {got} elements for {n_batch} x {n}")
    out = g.tensors[op.outputs[0]]
    require(op, out.dtype == "int8", f"{out.describe()}: output must be int8")
    act = op.options.get("fused_activation_function", "TANH")
    require(op, act == "TANH", f"activation {act} not supported (the integer kernel applies tanh)")
    cifg = _tensor(op, g, W_X[0]) is None
    require(
        op, cifg == (_tensor(op, g, W_H[0]) is None), "input gate weights must be all present or all absent"
    )
    wx, wh, bx, bh = _matrices(op, g, n_cell, n_input, n_output, cifg)
    sc, c = _scales(op, g, cifg)
    tabs = np.stack(
        [fixedpoint16.table("logistic", 3), fixedpoint16.table("tanh", 3), fixedpoint16.table("tanh", 15 + c)]
    ).astype(np.int64)
    out_shape = (*x_shape[:2], n_output)
    fn = _lstm.pick(n_batch * max_time * 4 * n_cell * (n_input + n_output) // 16)

    def run(ins, outs):
        h = ins[STATE_OUT].reshape(-1)
        cell = ins[STATE_CELL].reshape(n_batch, n_cell)
        fn(
            ins[INPUT].reshape(-1),
            h,
            cell,
            outs[0].reshape(-1),
            wx,
            wh,
            bx,
            bh,
            sc,
            tabs,
            max_time,
            time_major,
        )

    return Prepared([out_shape], run)
