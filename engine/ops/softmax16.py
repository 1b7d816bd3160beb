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
from numba import njit, prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..numerics.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, round_half_away
from .common import Prepared, Shape, require
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


@njit(inline="always", cache=True)
def lut_lookup16(value, lut):
    """LUTLookup(int16_t): the high 9 bits index, the low 7 interpolate."""
    index = 256 + (value >> 7)
    base = lut[index]
    delta = ((lut[index + 1] - base) * (value & 0x7F) + 64) >> 7
    return ((base + delta + 32768) & 0xFFFF) - 32768


@njit(inline="always", cache=True)
def _clz32(x):
    n = 0
    while n < 32 and not (x >> (31 - n)) & 1:
        n += 1
    return n


@njit(cache=True)
def _softmax16_row(x, out, base, depth, m, shift, exp_lut, inv_lut):
    top = np.int64(-32768)
    for c in range(depth):
        top = max(top, np.int64(x[base + c]))
    total = np.int64(0)
    for c in range(depth):
        d = multiply_by_quantized_multiplier(np.int64(x[base + c]) - top, m, shift) + 32767
        e = lut_lookup16(min(max(d, -32768), 32767), exp_lut)
        out[base + c] = e  # the reference keeps the exps in the output too
        total += e
    headroom = _clz32(total & 0xFFFFFFFF)
    shifted = ((total << (headroom - 1)) + (1 << 13)) >> 14
    sym = min(max(shifted - (1 << 15) - (1 << 16), -32768), 32767)
    reciprocal = lut_lookup16(sym, inv_lut)
    right = 31 - headroom
    for c in range(depth):
        r = (np.int64(out[base + c]) * reciprocal + (np.int64(1) << (right - 1))) >> right
        out[base + c] = min(max(r, 0), 32767)


@kernel
def _softmax16(x, out, rows, depth, m, shift, exp_lut, inv_lut):
    for r in prange(rows):
        _softmax16_row(x, out, r * depth, depth, m, shift, exp_lut, inv_lut)


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
    fn = _softmax16.pick(rows * depth)

    def run(inputs: list, outputs: list) -> None:
        fn(inputs[0].reshape(-1), outputs[0].reshape(-1), rows, depth, m, shift, exp_lut, inv_lut)

    return Prepared([shape], run)
