"""FULLY_CONNECTED as LiteRT's reference kernel computes it.

Unlike the convolutions, the reference FULLY_CONNECTED (uint8, int8 per-tensor and per-channel)
does not requantize with the fixed-point multiplier: it rounds double(acc) * (s_in * s_w / s_out),
all in double, half away from zero. TFLite Micro uses the fixed-point multiplier instead, so the
two disagree on rare accumulators that sit next to a rounding boundary (NOTES.md: 2-5 in 300).
With numerics="tflm" the layer requantizes as TFLite Micro does: multipliers s_in * s_w / s_out in
double (per tensor too) and MultiplyByQuantizedMultiplier, picked here at prepare. With
numerics="litert", XNNPACK's fp32 rule where its delegate takes the layer, else ruy's rounding of the
reference's multipliers (LiteRT's optimized kernel; profiles/litert.py).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..kernels import fc_packed, gemm, requantize
from ..kernels.gemm import OCB, pack_weights, padded_channels
from ..profiles import litert, profile_of, tflm
from . import conv_float
from .common import Prepared, bound, fused_activation, per_thread, require, view
from .conv2d import FLIP_BLOCKS
from .conv16 import prepare_fully_connected16
from .quant_params import (
    bias_vector,
    conv_multipliers,
    filter_zero_points,
    fold_zero_point,
    weighted_operands,
)


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        return conv_float.prepare(op, g, shapes, values)
    if g.tensors[op.inputs[0]].dtype == "int16":
        return prepare_fully_connected16(op, g, shapes, values)
    inp, filt, bias, out, in_zp, out_zp = weighted_operands(op, g, values, rank=2, channel_axis=0)
    require(op, op.options.get("weights_format", 0) == 0, "shuffled weights format not supported")
    units, depth = shapes[1]
    total = int(np.prod(shapes[0]))
    require(op, depth > 0 and total % depth == 0, f"input of {total} elements is not a multiple of {depth}")
    rows = total // depth
    wzp = filter_zero_points(op, filt, units)
    weights = values[1].astype(np.int16) - wzp[:, None].astype(np.int16)
    blocks = padded_channels(units) // OCB
    bias_q = bias_vector(op, bias, values[2] if bias is not None else None, units)
    # the largest |bias + sum((x - zp) w)| each unit can reach, before the folds below
    reach = np.abs(bias_q.astype(np.float64)) + 255.0 * np.abs(weights).sum(axis=1, dtype=np.float64)
    # uint8 x int8 on VNNI (see conv2d.gemm_conv) where the weights fit int8, else int16
    u_zp = in_zp + (128 if inp.dtype == "int8" else 0)
    if gemm.VNNI and 0 <= u_zp <= 255 and weights.min() >= -128 and weights.max() <= 127:
        group, data_type, delta = 4, np.uint8, u_zp - in_zp
        bias_q = fold_zero_point(bias_q, u_zp, weights, axis=1)
    else:
        group, data_type, delta = 2, np.int16, -in_zp
    kp = -(-depth // group) * group
    weights = pack_weights(weights, group)
    fs = filt.scale.astype(np.float64)
    scale = np.ascontiguousarray(float(inp.scale[0]) * np.broadcast_to(fs, (units,)) / float(out.scale[0]))
    lo, hi = fused_activation(op, out)
    if op.options.get("keep_num_dims", False):
        out_shape = (*shapes[0][:-1], units)
        require(op, shapes[0][-1] == depth, f"keep_num_dims needs the last input dimension to be {depth}")
    else:
        out_shape = (rows, units)
    rule, table = _requantization(op, g, (inp, filt, out), units, bias_q, scale)
    # each thread's rows and sums in one array, the layer's constants in another (fc_packed: few arguments)
    mode = _mode(inp.dtype, delta, depth, group, blocks)
    # the reference converts each rounded value to int32 and adds the zero point in int32: where that
    # can leave int32, the fused epilogue (which clamps first) would differ; the sums' loop does not
    fits = bool(np.all(reach * scale + 256 < 2.0**31))  # (a NaN would not fit)
    if rule == "double" and not fits:
        mode = fc_packed.SUMS
    scratch = [per_thread(fc_packed.scratch_length(kp, blocks, data_type, mode), data_type)]
    work = (rows * units * depth) // 16  # MACs are cheaper than elementwise steps
    rule = requantize.cheapest(rule, out_zp, lo)
    if gemm.FUSED and rule in ("reference", "ruy"):  # the fused epilogue's 64-bit constants
        table = requantize.widen(table, rule, out_zp)
    fn = fc_packed.FEW_ROWS[rule] if rows < gemm.PX else fc_packed.KERNELS[rule].pick(work)
    c = fc_packed.consts(delta, blocks, (out_zp, lo, hi, kp), units, table, mode, fits)

    def bind(ins, outs, scratch):
        x, y = view(ins[0], (rows, depth)), view(outs[0], (rows, units))
        return [(fn, (x, weights, c, scratch[0], y))]

    return bound([out_shape], bind, scratch)


def _mode(dtype: str, delta: int, depth: int, group: int, blocks: int) -> int:
    """How fc_packed's tasks multiply: in registers with the requantization fused (AVX-512), reading x
    itself where it needs no copy: uint8 x that needs no shift, or int8 x shifted by 128 whose sign bits
    the micro-kernel flips as it reads them (an xor per read and block, cheaper than the copy where the
    blocks are few: conv2d.FLIP_BLOCKS), in whole k quads (VNNI)."""
    if not gemm.FUSED:
        return fc_packed.SUMS
    direct = (dtype == "uint8" and delta == 0) or (dtype == "int8" and delta == 128 and blocks <= FLIP_BLOCKS)
    return fc_packed.IN_PLACE if direct and group == 4 and depth % 4 == 0 else fc_packed.COPIED


def _requantization(op: Op, g: Graph, tensors3, units: int, bias_q, scale) -> tuple:
    """The layer's rule (a fc_packed.KERNELS key) and the table fc_packed.consts takes for it: the
    reference's double rule; TFLite Micro's fixed point (numerics="tflm"); with numerics="litert",
    XNNPACK's fp32 rule (delegated) or ruy's rounding of the reference's multipliers (LiteRT's
    optimized kernel)."""
    inp, filt, out = tensors3
    rule = litert.conv_rule(op, g)  # "reference" unless numerics="litert"
    if rule == "reference" and profile_of(g) != "tflm":
        return "double", np.stack(
            [bias_q.astype(np.float64), scale.astype(np.float64)]
        )  # (exact: |bias| < 2**53)
    require(
        op, filt.scale.size in (1, units), f"{filt.describe()}: {filt.scale.size} scales for {units} units"
    )
    if rule == "fp32":  # XNNPACK
        return rule, requantize.params_fp32(bias_q, litert.fp32_scales(inp, filt, out, units))
    if rule == "ruy":  # LiteRT's optimized kernel: the reference's multipliers, ruy's rounding
        mult, shift = conv_multipliers(op, inp, filt, out, units)
    else:  # TFLite Micro: s_in * s_w / s_out in double, MultiplyByQuantizedMultiplier
        mult, shift = tflm.fc_multipliers(inp.scale[0], filt.scale, out.scale[0], units)
    return rule, requantize.params(bias_q, mult, shift)
