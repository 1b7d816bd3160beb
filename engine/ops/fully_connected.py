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

import numba
import numpy as np

from ..graph import Graph, Op
from ..kernels import conv as K
from ..kernels import fc_litert, gemm, requantize
from ..kernels.gemm import OCB, PX, pack_weights, padded_channels
from ..profiles import litert, profile_of, tflm
from . import conv_float
from .common import Prepared, bound, fused_activation, require, view
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
    delta = np.int16(delta)
    threads = numba.config.NUMBA_NUM_THREADS  # numba.get_thread_id() is below it
    scratch = [((threads, PX, kp), data_type), ((threads, PX * blocks * OCB), np.int32)]

    work = (rows * units * depth) // 16  # MACs are cheaper than elementwise steps
    rule = litert.conv_rule(op, g)  # "reference" unless numerics="litert"
    if rule != "reference":
        gemm_args = (delta, blocks, out_zp, lo, hi)
        dims = (rows, depth, units)
        return _litert(op, (inp, filt, out), dims, bias_q, weights, gemm_args, out_shape, scratch, rule)
    if profile_of(g) == "tflm":
        require(
            op,
            filt.scale.size in (1, units),
            f"{filt.describe()}: {filt.scale.size} scales for {units} units",
        )
        mult, shift = tflm.fc_multipliers(inp.scale[0], filt.scale, out.scale[0], units)
        rq = requantize.Requant(requantize.params(bias_q, mult, shift), out_zp, lo, hi)
        fixed = K.fully_connected_fixed.pick(work)
        zeros = np.zeros(PX, np.int64)

        def bind_fixed(ins, outs, scratch):
            x, y = view(ins[0], (rows, depth)), view(outs[0], (rows, units))
            return [(fixed, (x, delta, weights, blocks, rq, zeros, scratch[0], scratch[1], y))]

        return bound([out_shape], bind_fixed, scratch)
    fully_connected = K.fully_connected.pick(work)

    def bind(ins, outs, scratch):
        x, y = view(ins[0], (rows, depth)), view(outs[0], (rows, units))
        args = (x, delta, weights, blocks, bias_q, scale, out_zp, lo, hi, *scratch[:2], y)
        return [(fully_connected, args)]

    return bound([out_shape], bind, scratch)


def _litert(op: Op, tensors3, dims, bias_q, weights, gemm_args, out_shape, scratch, rule: str) -> Prepared:
    """numerics="litert": XNNPACK's fp32 rule (delegated) or ruy's rounding of the reference's multipliers
    (LiteRT's optimized kernel), on the same GEMM (kernels/fc_litert.py)."""
    inp, filt, out = tensors3
    rows, depth, units = dims
    delta, blocks, out_zp, lo, hi = gemm_args
    require(op, filt.scale.size in (1, units), f"{filt.describe()}: {filt.scale.size} scales for {units} units")
    if rule == "fp32":  # XNNPACK
        table = requantize.params_fp32(bias_q, litert.fp32_scales(inp, filt, out, units))
        fn = fc_litert.fully_connected_fp32.pick(rows * units * depth // 16)
    else:  # LiteRT's optimized kernel: the reference's multipliers, ruy's rounding
        mult, shift = conv_multipliers(op, inp, filt, out, units)
        table = requantize.params(bias_q, mult, shift)
        fn = fc_litert.fully_connected_ruy.pick(rows * units * depth // 16)
    zeros = np.zeros(PX, np.int64)

    def bind(ins, outs, scratch):
        x, y = view(ins[0], (rows, depth)), view(outs[0], (rows, units))
        return [(fn, (x, delta, weights, blocks, table, out_zp, lo, hi, zeros, scratch[0], scratch[1], y))]

    return bound([out_shape], bind, scratch)
