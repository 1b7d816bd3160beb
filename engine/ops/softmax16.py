"""SOFTMAX on int16 (kernels/activations.cc SoftmaxPrepare, reference_ops::SoftmaxInt16).

Per row: d = q - max(row) rescaled by QuantizeMultiplier(s_in * beta / (10 / 65535)) so that
[-65535, 0] spans [-10, 0]; exp(d) from a 513-entry table with 7-bit linear interpolation (Q0.15);
the sum's reciprocal from a second table of 1 / (1 + x) on the sum normalized to [1, 2); each
exp times the reciprocal, rounded, shifted back, clamped to [0, 32767]. Both tables are built as
LUTPopulate<int16_t> builds them in double: a sample every 1/512 of the input range, corrected by
half the error of linear interpolation at the midpoint.
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import Graph, Op
from ..kernels.int16 import softmax16
from ..numerics.fixedpoint import quantize_multiplier, round_half_away
from .common import Prepared, Shape, bound, require, view
from .int16 import unary16


def lut_populate16(transform, s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """LUTPopulateInt16<double>: 513 entries over the int16 input range."""
    input_min = s_in * (-32768 - zp_in)
    input_max = s_in * (32767 - zp_in)
    output_min = s_out * (-32768 - zp_out)
    output_max = s_out * (32767 - zp_out)
    steps = 512
    step = (input_max - input_min) / steps
    half = step / 2
    inv = 65536.0 / (output_max - output_min)
    lut = np.empty(steps + 1, np.int64)
    for i in range(steps):
        val = transform(input_min + i * step)
        mid = transform(input_min + i * step + half)
        nxt = transform(input_min + (i + 1) * step)
        sample = round_half_away(val * inv)
        interp = round_half_away((nxt * inv + sample) / 2)
        bias = round_half_away((interp - round_half_away(mid * inv)) / 2)
        lut[i] = min(max(sample - bias, -32768), 32767)
    lut[steps] = min(max(round_half_away(transform(input_max) * inv), -32768), 32767)
    return lut


def prepare_softmax16(op: Op, g: Graph, shapes: list[Shape | None]) -> Prepared:
    _, _, (s_in, zp_in), (_, zp_out) = unary16(op, g)
    require(op, zp_in == 0 and zp_out == 0, "int16 zero points must be 0")
    shape = tuple(shapes[0])
    require(op, len(shape) >= 1 and shape[-1] >= 1, "input must have rank >= 1 and a non-empty last axis")
    require(op, shape[-1] <= 65536, "rows longer than 65536 would overflow the reference's sum")
    beta = float(np.float32(op.options.get("beta", 0.0)))
    m, shift = quantize_multiplier(float(np.float32(s_in)) * beta / (10.0 / 65535.0))
    require(op, m > 0 and shift <= 30, f"beta {beta:g} * input scale {s_in:g} out of range")
    exp_lut = lut_populate16(math.exp, 10.0 / 65535, 32767, 2.0 / 65535, 0)
    inv_lut = lut_populate16(lambda v: 1.0 / (1.0 + v), 1.0 / 65535, -32768, 2.0 / 65535, 0)
    depth = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    fn = softmax16.pick(rows * depth)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(fn, (view(inputs[0]), view(outputs[0]), rows, depth, m, shift, exp_lut, inv_lut))]

    return bound([shape], bind)


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    return prepare_softmax16(op, g, shapes)
