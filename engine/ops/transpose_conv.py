"""TRANSPOSE_CONV as LiteRT's reference kernels compute it (kernels/transpose_conv.cc,
reference_ops / reference_integer_ops TransposeConv).

Inputs: output_shape (int32 [4], known at load), weights [oc, kh, kw, ic] (constant), input
[n, h, w, ic], optional bias [oc]. Padding from ComputePaddingHeightWidth on the *output* extent;
an input pixel (iy, ix) lands at (iy * stride - pad + ky, ix * stride - pad + kx).
- uint8 (per-tensor, filter zero point any) and int8 (per-channel, symmetric): int32 sums of
  (x - zp_in)(w - zp_w), + the int32 bias, MultiplyByQuantizedMultiplier with the convolutions'
  multipliers (PopulateConvolutionQuantizationParams), + zp_out, the fused activation's clamp.
  Run as a GEMM (kernels/gemm.py) and a col2im gather.
- int16 x int8 (16x8): int64 sums + an int64 bias, the int64 MultiplyByQuantizedMultiplier.
- float32: the products summed in the reference's order, + bias, the activation's clamp.
TFLite Micro's kernel (transpose_conv.cc there) runs the same reference functions.
"""

from __future__ import annotations

import numba
import numpy as np

from ..graph import Graph, Op
from ..kernels import gemm, requantize
from ..kernels import transpose_conv as K
from ..kernels.gemm import OCB, PX, pack_weights, padded_channels
from ..numerics.fixedpoint import wrap_int32_array
from ..profiles import litert
from .common import (
    Prepared,
    bound,
    conv_output_size,
    conv_padding,
    fused_activation,
    int_option,
    per_thread,
    require,
    tensors,
    view,
)
from .quant_params import bias_vector, check_bias_scale, conv_multipliers, filter_zero_points

FLOAT_BOUNDS = {"NONE": (None, None), "RELU": (0.0, None), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def _geometry(op: Op, g: Graph, shapes: list, values: list) -> tuple[tuple, K.Scatter]:
    """The output shape (batch from the input) and the scatter geometry, every shape checked."""
    shape_t = g.tensors[op.inputs[0]]
    require(
        op,
        values[0] is not None,
        f"{shape_t.describe()}: output_shape must be a constant (it is computed at run time)",
    )
    require(op, shape_t.dtype == "int32", f"{shape_t.describe()}: output_shape must be int32")
    target = [int(v) for v in np.asarray(values[0]).reshape(-1)]
    require(op, len(target) == 4, f"{shape_t.describe()}: output_shape {target} must have 4 values")
    require(op, len(shapes[2]) == 4 and len(shapes[1]) == 4, "input and weights must be 4-D")
    n, h, w, ic = shapes[2]
    oc, kh, kw, fic = shapes[1]
    require(op, fic == ic, f"input has {ic} channels, weights expect {fic}")
    require(op, target[3] == oc, f"output_shape {target} has {target[3]} channels, weights have {oc}")
    require(op, min(target[1:]) > 0 and min(kh, kw, oc, ic) > 0, f"empty output_shape {target} or weights")
    stored = g.tensors[op.inputs[2]].shape
    batch = stored[0] if shape_t.is_const and len(stored) == 4 else n
    require(op, target[0] == batch, f"output_shape {target} has batch {target[0]}, the input {batch}")
    sh, sw = int_option(op, "stride_h", 1), int_option(op, "stride_w", 1)
    pad = op.options.get("padding", "SAME")
    oh, ow = target[1], target[2]
    # ComputePaddingHeightWidth with the output extent in the input's place
    top = conv_padding(oh, kh, sh, 1, conv_output_size(op, oh, kh, sh, 1, pad))
    left = conv_padding(ow, kw, sw, 1, conv_output_size(op, ow, kw, sw, 1, pad))
    return (n, oh, ow, oc), K.Scatter(h, w, kh, kw, sh, sw, top, left, oh, ow)


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    (_, filt, inp, *rest), (out,) = tensors(op, g)
    bias = rest[0] if rest else None
    require(
        op,
        inp.dtype in ("uint8", "int8", "int16", "float32"),
        f"{inp.describe()}: type {inp.dtype} not supported",
    )
    want_w = "int8" if inp.dtype == "int16" else inp.dtype
    require(op, filt.dtype == want_w, f"{filt.describe()}: {inp.dtype} input needs {want_w} weights")
    require(op, out.dtype == inp.dtype, f"{out.describe()}: output type must be {inp.dtype}")
    require(op, values[1] is not None, f"{filt.describe()}: weights must be a constant")
    out_shape, geo = _geometry(op, g, shapes, values)
    bias_value = values[3] if bias is not None else None
    if bias is not None:
        require(op, bias_value is not None, f"{bias.describe()}: bias must be a constant")
        require(
            op,
            bias_value.size == out_shape[3],
            f"{bias.describe()}: {bias_value.size} values for {out_shape[3]} channels",
        )
    if inp.dtype == "float32":
        return _prepare_float(op, filt, bias, values[1], bias_value, out_shape, geo)
    for t in (inp, filt, out):
        require(op, t.quantized, f"{t.describe()}: {t.dtype} tensor without quantization parameters")
    require(op, inp.scale.size == 1 and out.scale.size == 1, "input and output must be quantized per tensor")
    if filt.scale.size > 1:
        require(op, filt.quant_axis == 0, f"{filt.describe()}: per-channel axis must be 0")
    if inp.dtype == "int16":
        return _prepare16(op, inp, filt, bias, out, values[1], bias_value, out_shape, geo)
    rule = litert.conv_rule(op, g)  # "reference" unless numerics="litert" (profiles/litert.py)
    return _prepare8(op, inp, filt, bias, out, values[1], bias_value, out_shape, geo, rule)


def _prepare_float(op, filt, bias, w, bias_value, out_shape, geo) -> Prepared:
    require(
        op,
        bias is None or bias.dtype == "float32",
        f"{bias.describe() if bias else ''}: bias must be float32",
    )
    act = op.options.get("fused_activation_function", "NONE")
    require(op, act in FLOAT_BOUNDS, f"fused activation {act} not supported")
    lo, hi = FLOAT_BOUNDS[act]
    info = np.finfo(np.float32)
    lo, hi = np.float32(info.min if lo is None else lo), np.float32(info.max if hi is None else hi)
    weights = np.ascontiguousarray(w.astype(np.float32).transpose(1, 2, 3, 0))  # [kh, kw, ic, oc]
    has_bias = bias is not None
    b = bias_value.reshape(-1).astype(np.float32) if has_bias else np.zeros(out_shape[3], np.float32)
    fn = K.tconv_float.pick(int(np.prod(out_shape)) * geo.kh * geo.kw * weights.shape[2] // 16)

    def bind(ins, outs, scratch):
        return [(fn, (ins[2], weights, b, has_bias, lo, hi, geo, scratch[0], outs[0]))]

    return bound([out_shape], bind, [per_thread(K.GROUP * out_shape[3], np.float32)])


def _prepare16(op, inp, filt, bias, out, w, bias_value, out_shape, geo) -> Prepared:
    oc = out_shape[3]
    require(op, int(inp.zero_point[0]) == 0 and int(out.zero_point[0]) == 0, "int16 zero points must be 0")
    filter_zero_points(op, filt, oc)
    if bias is not None:
        require(op, bias.dtype == "int64", f"{bias.describe()}: int16 activations need an int64 bias")
        b = bias_value.reshape(-1).astype(np.int64)
    else:
        b = np.zeros(oc, np.int64)
    mult, shift = (a.astype(np.int64) for a in conv_multipliers(op, inp, filt, out, oc))
    lo, hi = fused_activation(op, out)
    weights = np.ascontiguousarray(w.astype(np.int64).transpose(1, 2, 3, 0))
    fn = K.tconv_int16.pick(int(np.prod(out_shape)) * geo.kh * geo.kw * weights.shape[2] // 16)

    def bind(ins, outs, scratch):
        return [(fn, (ins[2], weights, b, mult, shift, lo, hi, geo, scratch[0], outs[0]))]

    return bound([out_shape], bind, [per_thread(K.GROUP * oc, np.int64)])


def _prepare8(op, inp, filt, bias, out, w, bias_value, out_shape, geo, rule="reference") -> Prepared:
    """uint8 / int8: a GEMM over the input pixels, then the col2im gather and requantization (rule:
    requantize.make's; "fp32" where LiteRT's XNNPACK delegate takes the op)."""
    n, oh, ow, oc = out_shape
    ic = w.shape[3]
    if inp.dtype == "int8" and bias is not None:
        require(
            op, not bias.quantized or int(bias.zero_point[0]) == 0, f"{bias.describe()}: zero point must be 0"
        )
    check_bias_scale(op, inp, filt, bias, out)
    wzp = filter_zero_points(op, filt, oc)
    bias_q = bias_vector(op, bias, bias_value, oc)
    mult, shift = conv_multipliers(op, inp, filt, out, oc)
    lo, hi = fused_activation(op, out)
    in_zp = int(inp.zero_point[0])
    weights = w.astype(np.int16) - wzp[:, None, None, None].astype(np.int16)
    cols_w = weights.transpose(1, 2, 0, 3).reshape(-1, ic)  # [(ky, kx, oc), ic]
    u_zp = in_zp + (128 if inp.dtype == "int8" else 0)
    col_bias = np.zeros(len(cols_w), np.int32)
    if gemm.VNNI and 0 <= u_zp <= 255 and cols_w.min() >= -128 and cols_w.max() <= 127:
        # uint8 x int8: u = x (+128), sum (u - u_zp) w = sum u w - u_zp sum w (see conv2d.gemm_conv)
        group, data_type, delta = 4, np.uint8, u_zp - in_zp
        col_bias = wrap_int32_array(-u_zp * cols_w.astype(np.int64).sum(axis=1))
    else:
        group, data_type, delta = 2, np.int16, -in_zp
    kp = -(-ic // group) * group
    packed = pack_weights(cols_w, group)
    blocks = padded_channels(len(cols_w)) // OCB
    width = blocks * OCB
    scale = litert.fp32_scales(inp, filt, out, oc) if rule == "fp32" else None
    rq = requantize.make(rule, bias_q, mult, shift, scale, int(out.zero_point[0]), lo, hi)
    pixels = n * geo.h * geo.w
    gemm_fn = K.tconv_gemm.pick(pixels * len(cols_w) * ic // 16)
    col2im = K.tconv_col2im.pick(n * oh * ow * oc * geo.kh * geo.kw // max(geo.sh * geo.sw, 1))
    threads = numba.config.NUMBA_NUM_THREADS
    zeros = np.zeros(ow, np.int64)
    delta = np.int16(delta)
    scratch = [
        ((threads, PX, kp), data_type),
        ((pixels * width,), np.int32),
        per_thread(ow * oc, np.int32),
    ]

    def bind(ins, outs, scratch):
        return [
            (gemm_fn, (view(ins[2], (pixels, ic)), delta, packed, blocks, scratch[0], scratch[1])),
            (col2im, (scratch[1], width, geo, col_bias, rq, scratch[2], zeros, outs[0])),
        ]

    return bound([out_shape], bind, scratch)
