"""UNIDIRECTIONAL_SEQUENCE_LSTM under numerics="tflm": TFLite Micro's integer kernel
(micro/kernels/unidirectional_sequence_lstm.cc, lstm_eval.h LstmStep, lstm_eval_common.cc
PrepareGateParametersInteger). Where it differs from the reference's EvalInteger8x8_16 (lstm.py):
  - each gate is two FullyConnected to int16 (Q3.12), each saturated, then their saturated sum; the
    multipliers are s_x * s_w / 2^-12 in double (the reference: float32, and the first product
    added before the second saturates);
  - sigmoid and tanh are the int16 LOGISTIC/TANH kernels (256-entry table, interpolated; cell tanh
    input rescaled by 3 << (15 + log2 s_cell - 3)), not gemmlowp's fixed-point functions;
  - the cell update is two int16 MULs, MBQM(f * c, 2^-15) and MBQM(i * g, 2^-30 / s_cell), each
    saturated, then their saturated sum (the reference: rounding shifts, wrapped to 16 bits);
  - the hidden state is MBQM(tanh(c) * o, 2^-30 / s_state) + zp_state with the output state's scale
    and zero point (the reference: the hidden intermediate's).
TFLite Micro runs the plain LSTM only: no CIFG, peepholes, projection or layer norm.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..kernels.lstm_tflm import lstm_tflm
from ..numerics.fixedpoint import quantize_multiplier
from . import lstm as ref
from .common import Prepared, bound, per_tensor, require, view
from .int16 import checked_log2, logistic16_table, tanh16_table


def _constants(op: Op, g: Graph, L) -> np.ndarray:
    """Per gate the x and h FC multipliers, then the cell and hidden multipliers (see kernels TAIL)."""
    s_x = float(np.float32(per_tensor(op, ref._tensor(op, g, ref.INPUT))[0]))
    s_h, zp_h = per_tensor(op, ref._tensor(op, g, ref.STATE_OUT))
    s_h = float(np.float32(s_h))
    out = []
    for gate in range(4):
        for s_in, k in ((s_x, ref.W_X[gate]), (s_h, ref.W_H[gate])):
            s_w = float(np.float32(ref._tensor(op, g, k).scale[0]))
            out += quantize_multiplier(s_in * s_w / 2.0**-12)
    cell = ref._tensor(op, g, ref.STATE_CELL)
    s_c = float(np.float32(per_tensor(op, cell)[0]))
    out += quantize_multiplier(2.0**-15 * s_c / s_c)
    out += quantize_multiplier(2.0**-15 * 2.0**-15 / s_c)
    out += [*quantize_multiplier(2.0**-15 * 2.0**-15 / s_h), int(zp_h)]
    clip = float(np.float32(op.options.get("cell_clip", 0.0)))
    out.append(int(min(max(clip / s_c, -32768.0), 32767.0)) if clip > 0 else 0)
    return np.array(out, np.int64)


def _tanh_table(power: int) -> np.ndarray:
    """lstm_eval.cc Tanh(cell_state_scale_power): the int16 TANH kernel's input rescale."""
    shift = 15 + power - 3
    return tanh16_table(3 << shift, 0) if shift >= 0 else tanh16_table(3, -shift)


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    ref._check_supported(op, g)
    L = ref.Layout(op, g)
    for what, present in (("CIFG", L.cifg), ("peepholes", L.peephole), ("projection", L.projection)):
        require(op, not present, f"numerics='tflm': TFLite Micro's LSTM has no {what}")
    require(op, not L.layer_norm, "numerics='tflm': TFLite Micro's LSTM has no layer norm")
    x_shape = shapes[ref.INPUT]
    require(op, len(x_shape) == 3 and x_shape[2] == L.n_input, f"input must be 3-D with {L.n_input} features")
    time_major = bool(op.options.get("time_major", False))
    max_time, n_batch = (x_shape[0], x_shape[1]) if time_major else (x_shape[1], x_shape[0])
    for k in (ref.STATE_OUT, ref.STATE_CELL):
        got = int(np.prod(shapes[k]))
        require(op, got == n_batch * L.n_cell, f"{ref._tensor(op, g, k).describe()}: {got} elements")
    out = g.tensors[op.outputs[0]]
    require(op, out.dtype == "int8", f"{out.describe()}: output must be int8")
    cell = ref._tensor(op, g, ref.STATE_CELL)
    pot, power = checked_log2(per_tensor(op, cell)[0])
    require(op, pot and 0 <= 15 + power <= 6, f"{cell.describe()}: cell scale must be 2^-15 .. 2^-9")
    mats = ref._matrices(op, g, L)[:4]
    sc = _constants(op, g, L)
    tabs = np.stack([logistic16_table(3, 0), tanh16_table(3, 0), _tanh_table(power)]).astype(np.int64)
    out_shape = (*x_shape[:2], L.n_cell)
    fn = lstm_tflm.pick(n_batch * max_time * 4 * L.n_cell * (L.n_input + L.n_cell) // 16)

    def bind(ins, outs, scratch):
        h, c = view(ins[ref.STATE_OUT]), view(ins[ref.STATE_CELL], (n_batch, L.n_cell))
        return [(fn, (view(ins[ref.INPUT]), h, c, view(outs[0]), mats, sc, tabs, max_time, time_major))]

    return bound([out_shape], bind)
