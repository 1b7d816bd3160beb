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
CIFG (no input gate weights): i = 32767 - f. Peepholes add MBQM(w_p * cell) before a gate's
activation (the output gate sees the new cell); layer norm (ApplyLayerNorm: integer mean and variance,
inverse square root by Newton-Raphson, the gate bias added after) replaces Q3.12 by the intermediates'
scales; a projection maps h through an int8 matrix to the output scale (proj_clip clamps it).
The reference keeps the state across invokes; the engine runs are stateless (the tests reset the
reference before each run), and the final state is left in the state tensors, as the reference does.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..kernels.lstm import lstm
from ..numerics import fixedpoint16
from ..numerics.fixedpoint import quantize_multiplier, wrap_int32_array
from ..profiles import profile_of
from .common import Prepared, bound, per_tensor, require, view
from .int16 import checked_log2

INPUT, STATE_OUT, STATE_CELL = 0, 18, 19
W_X = (1, 2, 3, 4)  # input_to_{input, forget, cell, output}_weights
W_H = (5, 6, 7, 8)  # recurrent_to_{input, forget, cell, output}_weights
PEEPHOLES, BIASES, PROJECTION, LAYER_NORM = (9, 10, 11), (12, 13, 14, 15), (16, 17), (20, 21, 22, 23)
GATE_SCALE = np.float32(2.0**-12)  # Q3.12 without layer norm


def _tensor(op: Op, g: Graph, k: int):
    i = op.inputs[k] if k < len(op.inputs) else -1
    return g.tensors[i] if i >= 0 else None


def _const(op: Op, g: Graph, k: int, dtype: str, shape: tuple):
    """A constant input of the given type and shape, as int64 (or None when omitted)."""
    t = _tensor(op, g, k)
    if t is None:
        return None
    require(op, t.is_const and t.dtype == dtype, f"{t.describe()}: must be a constant {dtype} tensor")
    require(op, t.shape == shape, f"{t.describe()}: expected shape {list(shape)}")
    if dtype in ("int8", "int16"):
        require(
            op,
            t.scale.size == 1 and int(t.zero_point[0]) == 0,
            f"{t.describe()}: must be symmetric per tensor",
        )
    return t.data.astype(np.int64)


def _check_supported(op: Op, g: Graph) -> None:
    require(op, len(op.inputs) in (20, 24), f"takes 20 or 24 inputs, has {len(op.inputs)}")
    for k in (STATE_OUT, STATE_CELL):
        t = _tensor(op, g, k)
        require(op, t is not None and t.is_variable, f"input {k} (the state) must be a variable tensor")
    x = _tensor(op, g, INPUT)
    require(op, x.dtype == "int8", f"{x.describe()}: only the integer LSTM (int8 input) is supported")
    require(op, _tensor(op, g, STATE_OUT).dtype == "int8", "the output state must be int8")
    require(op, _tensor(op, g, STATE_CELL).dtype == "int16", "the cell state must be int16")
    require(op, len(op.intermediates) == 5, "the integer LSTM needs its 5 intermediate tensors")
    act = op.options.get("fused_activation_function", "TANH")
    require(op, act == "TANH", f"activation {act} not supported (the integer kernel applies tanh)")


class Layout:
    """Sizes and which optional parts an LSTM has."""

    def __init__(self, op: Op, g: Graph):
        w = _tensor(op, g, W_H[3])
        require(op, w is not None and len(w.shape) == 2, "recurrent_to_output weights must be 2-D")
        self.n_cell, self.n_output = w.shape
        self.n_input = _tensor(op, g, W_X[3]).shape[-1]
        self.cifg = _tensor(op, g, W_X[0]) is None
        self.peephole = _tensor(op, g, PEEPHOLES[2]) is not None
        self.layer_norm = len(op.inputs) == 24 and _tensor(op, g, LAYER_NORM[1]) is not None
        self.projection = _tensor(op, g, PROJECTION[0]) is not None
        require(
            op, self.projection or self.n_cell == self.n_output, "without projection outputs must equal cells"
        )


def _matrices(op: Op, g: Graph, L: Layout) -> tuple:
    """(wx, wh, bx, bh, peep, lnw, lnb, proj_w, proj_b): the weights int8 (as the model has them), the
    rest int64; zero points folded into biases."""
    x_zp = per_tensor(op, _tensor(op, g, INPUT))[1]
    h_zp = per_tensor(op, _tensor(op, g, STATE_OUT))[1]
    n_cell, n_in, n_out = L.n_cell, L.n_input, L.n_output
    wx, wh = np.zeros((4, n_cell, n_in), np.int8), np.zeros((4, n_cell, n_out), np.int8)
    bx, bh = np.zeros((4, n_cell), np.int64), np.zeros((4, n_cell), np.int64)
    peep, lnw, lnb = (np.zeros((4, n_cell), np.int64) for _ in range(3))
    for gate in range(1 if L.cifg else 0, 4):
        wx[gate] = _const(op, g, W_X[gate], "int8", (n_cell, n_in))
        wh[gate] = _const(op, g, W_H[gate], "int8", (n_cell, n_out))
        bias = _const(op, g, BIASES[gate], "int32", (n_cell,))
        require(op, bias is not None, f"gate {gate}: a bias is required")
        if L.layer_norm:  # the gate bias is added after the normalization
            lnw[gate] = _const(op, g, LAYER_NORM[gate], "int16", (n_cell,))
            lnb[gate] = bias
            bias = 0
        bx[gate] = bias - x_zp * wx[gate].sum(axis=1, dtype=np.int64)  # PrecomputeZeroPointTimesWeightWithBias
        bh[gate] = -h_zp * wh[gate].sum(axis=1, dtype=np.int64)
        if L.peephole and gate != 2:
            peep[gate] = _const(op, g, PEEPHOLES[(0, 1, None, 2)[gate]], "int16", (n_cell,))
    proj_w, proj_b = np.zeros((n_out, n_cell), np.int8), np.zeros(n_out, np.int64)
    if L.projection:
        proj_w[...] = _const(op, g, PROJECTION[0], "int8", (n_out, n_cell))
        b = _const(op, g, PROJECTION[1], "int32", (n_out,))
        hidden_zp = int(g.tensors[op.intermediates[4]].zero_point[0])
        proj_b = (0 if b is None else b) - hidden_zp * proj_w.sum(axis=1, dtype=np.int64)
    wrap = lambda a: wrap_int32_array(a).astype(np.int64)
    return wx, wh, wrap(bx), wrap(bh), peep, lnw, wrap(lnb), proj_w, wrap(proj_b)


def _multiplier(real) -> list[int]:
    return list(quantize_multiplier(float(real)))


def _gate_scales(op: Op, g: Graph, L: Layout, c: int) -> list[int]:
    """Per gate: x, h, peephole, layer norm multipliers and shifts, variance guard (floats as the reference)."""
    f32 = np.float32
    s_x = f32(per_tensor(op, _tensor(op, g, INPUT))[0])
    s_h = f32(per_tensor(op, _tensor(op, g, STATE_OUT))[0])
    out = [0] * 36
    for gate in range(1 if L.cifg else 0, 4):
        mid = GATE_SCALE
        ln_scale = f32(1.0)
        if L.layer_norm:
            t = g.tensors[op.intermediates[gate]]
            require(op, t.scale.size == 1, f"{t.describe()}: layer norm needs a quantized intermediate")
            mid = f32(t.scale[0])
            ln_scale = f32(_tensor(op, g, LAYER_NORM[gate]).scale[0])
        k = 9 * gate
        out[k : k + 2] = _multiplier(f32(_tensor(op, g, W_X[gate]).scale[0]) * s_x / mid)
        out[k + 2 : k + 4] = _multiplier(f32(_tensor(op, g, W_H[gate]).scale[0]) * s_h / mid)
        if L.peephole and gate != 2:
            w = _tensor(op, g, PEEPHOLES[(0, 1, None, 2)[gate]])
            out[k + 4 : k + 6] = _multiplier(f32(2.0**c) * f32(w.scale[0]) / mid)
        out[k + 6 : k + 8] = _multiplier(ln_scale)
        out[k + 8] = max(1, int(f32(10000) * ln_scale))
    return out


def _scales(op: Op, g: Graph, L: Layout) -> tuple[np.ndarray, int]:
    """The kernel's constants (see FLAGS) and the cell's power-of-two exponent c."""
    f32 = np.float32
    cell = _tensor(op, g, STATE_CELL)
    pot, c = checked_log2(per_tensor(op, cell)[0])
    require(op, pot and 0 <= 15 + c <= 6, f"{cell.describe()}: cell scale must be 2^-15 .. 2^-9")
    hidden = g.tensors[op.intermediates[4]]
    require(op, hidden.scale.size == 1, f"{hidden.describe()}: the hidden intermediate must be quantized")
    two15 = f32(2.0**-15)
    m_hid, s_hid = _multiplier(two15 / f32(hidden.scale[0]) * two15)
    s_out, zp_out = per_tensor(op, _tensor(op, g, STATE_OUT))
    m_proj, s_proj, proj_clip = 0, 0, 0
    if L.projection:
        w = _tensor(op, g, PROJECTION[0])
        m_proj, s_proj = _multiplier(f32(w.scale[0]) * f32(hidden.scale[0]) / f32(s_out))
        clip = f32(op.options.get("proj_clip", 0.0))
        if clip > 0:
            proj_clip = int(min(max(clip / f32(s_out), f32(-128.0)), f32(127.0)))
    clip = 0
    cell_clip = f32(op.options.get("cell_clip", 0.0))
    if cell_clip > 0:
        clip = int(min(max(cell_clip / f32(cell.scale[0]), f32(-32768.0)), f32(32767.0)))
    flags = [int(L.cifg), int(L.peephole), int(L.layer_norm), int(L.projection), 30 + c, clip]
    # the reference's peephole loop runs over n_output values, not n_cell: with a projection to fewer
    # outputs only the first n_output cells get their peephole term (more would read past the cell)
    require(op, not (L.peephole and L.n_output > L.n_cell), "peepholes with more outputs than cells")
    tail = [
        m_hid,
        s_hid,
        int(hidden.zero_point[0]),
        m_proj,
        s_proj,
        proj_clip,
        zp_out,
        min(L.n_cell, L.n_output),
    ]
    return np.array([*_gate_scales(op, g, L, c), *flags, *tail], np.int64), c


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
    if profile_of(g) == "tflm":  # TFLite Micro's own integer LSTM (lstm_tflm.py)
        from .lstm_tflm import prepare as prepare_tflm

        return prepare_tflm(op, g, shapes, values)
    _check_supported(op, g)
    L = Layout(op, g)
    x_shape = shapes[INPUT]
    require(op, len(x_shape) == 3 and x_shape[2] == L.n_input, f"input must be 3-D with {L.n_input} features")
    time_major = bool(op.options.get("time_major", False))
    max_time, n_batch = (x_shape[0], x_shape[1]) if time_major else (x_shape[1], x_shape[0])
    mixes = time_major and n_batch > 1 and L.peephole and L.n_output != L.n_cell
    require(op, not mixes, "time-major peepholes with a projection (the reference mixes sequences there)")
    for k, n in ((STATE_OUT, L.n_output), (STATE_CELL, L.n_cell)):
        got = int(np.prod(shapes[k]))
        require(op, got == n_batch * n, f"{_tensor(op, g, k).describe()}: {got} elements for {n_batch} x {n}")
    out = g.tensors[op.outputs[0]]
    require(op, out.dtype == "int8", f"{out.describe()}: output must be int8")
    require(
        op, L.cifg == (_tensor(op, g, W_H[0]) is None), "input gate weights must be all present or all absent"
    )
    mats = _matrices(op, g, L)
    sc, c = _scales(op, g, L)
    tabs = np.stack(
        [fixedpoint16.table("logistic", 3), fixedpoint16.table("tanh", 3), fixedpoint16.table("tanh", 15 + c)]
    ).astype(np.int64)
    out_shape = (*x_shape[:2], L.n_output)
    fn = lstm.pick(n_batch * max_time * 4 * L.n_cell * (L.n_input + L.n_output) // 16)

    def bind(ins, outs, scratch):
        h, cell = view(ins[STATE_OUT]), view(ins[STATE_CELL], (n_batch, L.n_cell))
        return [(fn, (view(ins[INPUT]), h, cell, view(outs[0]), mats, sc, tabs, max_time, time_major))]

    return bound([out_shape], bind)
