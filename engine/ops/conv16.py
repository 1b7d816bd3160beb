"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with int16 activations and int8 weights (16x8).

reference_integer_ops::ConvPerChannel / DepthwiseConvPerChannel / FullyConnected on int16 data:
zero points 0 for the activations and the weights, products summed in int64 with an int64 bias, then
  convolutions: MultiplyByQuantizedMultiplier(int64 acc, m, shift): m rounded to 16 bits,
                (acc * m16 + 2^(14 - shift)) >> (15 - shift), one rounding, truncated to int32;
  FULLY_CONNECTED: round(double(acc) * s_in * s_w / s_out), half away from zero, as its 8-bit kernel;
                   numerics="litert": LiteRT's optimized kernel runs ruy (an int32 sum and ruy's
                   rounding, kernels/litert16.py) only with no bias and quantized_bias_type not INT64;
                   otherwise the reference kernel, as above (fully_connected.cc, EvalQuantized).
Multipliers per output channel as for int8 (PopulateConvolutionQuantizationParams, in double).
Biases must be int64: the reference reads an int32 bias as int64 in CONV_2D and FULLY_CONNECTED
(saturated garbage, measured) and refuses it in DEPTHWISE_CONV_2D; its CONV_2D also needs a bias.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op, Tensor
from ..kernels import requantize
from ..kernels.int16 import conv16, depthwise16, fully_connected16
from ..kernels.litert16 import fully_connected16_ruy
from ..profiles import profile_of, tflm
from .common import (
    Prepared,
    bound,
    fused_activation,
    int_option,
    per_tensor,
    require,
    require_types,
    tensors,
    view,
    window,
)
from .quant_params import check_bias_scale, conv_multipliers, filter_zero_points

_TENSOR_TYPE_INT64 = 4  # schema TensorType INT64, as FullyConnectedOptions.quantized_bias_type holds it


def _operands(op: Op, g: Graph, values: list, rank: int, axis: int):
    """Checked int16 input/output, constant int8 symmetric filter (per-channel on `axis`), bias."""
    (inp, filt, *rest), (out,) = tensors(op, g)
    bias = rest[0] if rest else None
    require_types(op, inp, ("int16",))
    require_types(op, out, ("int16",))
    require_types(op, filt, ("int8",))
    require(op, values[1] is not None, f"{filt.describe()}: weights must be a constant")
    require(op, len(filt.shape) == rank, f"{filt.describe()}: weights must be {rank}-D")
    require(op, per_tensor(op, inp)[1] == 0 and per_tensor(op, out)[1] == 0, "int16 zero points must be 0")
    if filt.scale.size > 1:
        require(op, filt.quant_axis == axis, f"{filt.describe()}: per-channel axis must be {axis}")
    check_bias_scale(op, inp, filt, bias, out)  # per-tensor FULLY_CONNECTED only, as the reference
    return inp, filt, bias, out


def _bias(op: Op, bias: Tensor | None, value, channels: int) -> np.ndarray:
    if bias is None:
        require(op, op.type != "CONV_2D", "a CONV_2D on int16 needs a bias (the reference requires one)")
        return np.zeros(channels, np.int64)
    require(op, bias.dtype == "int64", f"{bias.describe()}: int16 activations need an int64 bias")
    require(op, value is not None, f"{bias.describe()}: bias must be a constant")
    require(op, value.size == channels, f"{bias.describe()}: {value.size} values for {channels} channels")
    return value.reshape(channels).astype(np.int64)


def _weights(w: np.ndarray, products: int) -> np.ndarray:
    """int32 weights (and sums) when `products` int16 x int8 products cannot overflow int32, else int64."""
    return np.ascontiguousarray(w.astype(np.int32 if products * 32768 * 128 < 2**31 else np.int64))


def _constants(op, inp, filt, bias, out, values, channels):
    filter_zero_points(op, filt, channels)  # symmetric, one zero point per channel at most
    b = _bias(op, bias, values[2] if bias is not None else None, channels)
    mult, shift = conv_multipliers(op, inp, filt, out, channels)
    lo, hi = fused_activation(op, out)
    return b, mult.astype(np.int64), shift.astype(np.int64), lo, hi


def prepare_conv16(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    """CONV_2D or DEPTHWISE_CONV_2D on int16 input."""
    depthwise = op.type == "DEPTHWISE_CONV_2D"
    inp, filt, bias, out = _operands(op, g, values, 4, 3 if depthwise else 0)
    require(op, len(shapes[0]) == 4, "input must be 4-D")
    n, h, w, c = shapes[0]
    if depthwise:
        one, kh, kw, oc = shapes[1]
        require(op, one == 1, f"{filt.describe()}: filter must have shape [1, kh, kw, channels]")
        dm = int_option(op, "depth_multiplier", 1, lo=0) or oc // max(c, 1)
        require(op, dm >= 1 and c * dm == oc, f"input channels {c} x depth multiplier {dm} != {oc}")
        weights = _weights(values[1][0], kh * kw)
    else:
        oc, kh, kw, fc = shapes[1]
        require(op, c == fc, f"input has {c} channels, filter expects {fc} (grouped conv not supported)")
        weights = _weights(values[1].transpose(1, 2, 3, 0), kh * kw * c)
    win = window(op, h, w, kh, kw)
    b, mult, shift, lo, hi = _constants(op, inp, filt, bias, out, values, oc)
    geo = np.array([win.sh, win.sw, win.dh, win.dw, win.top, win.left], np.int64)
    out_shape = (n, win.oh, win.ow, oc)
    work = n * win.oh * win.ow * oc * kh * kw * (1 if depthwise else c)
    fn = (depthwise16 if depthwise else conv16).pick(work // 16)
    extra = (dm,) if depthwise else ()

    def bind(ins, outs, scratch):
        return [(fn, (ins[0], weights, b, mult, shift, outs[0], geo, *extra, lo, hi))]

    return bound([out_shape], bind)


def prepare_fully_connected16(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    inp, filt, bias, out = _operands(op, g, values, 2, 0)
    require(op, op.options.get("weights_format", 0) == 0, "shuffled weights format not supported")
    units, depth = shapes[1]
    total = int(np.prod(shapes[0]))
    require(op, depth > 0 and total % depth == 0, f"input of {total} elements is not a multiple of {depth}")
    rows = total // depth
    b, _, _, lo, hi = _constants(op, inp, filt, bias, out, values, units)
    fs = np.broadcast_to(filt.scale.astype(np.float64), (units,))
    scale = np.ascontiguousarray(float(inp.scale[0]) * fs / float(out.scale[0]))
    weights = _weights(values[1], depth)
    if op.options.get("keep_num_dims", False):
        require(op, shapes[0][-1] == depth, f"keep_num_dims needs the last input dimension to be {depth}")
        out_shape = (*shapes[0][:-1], units)
    else:
        out_shape = (rows, units)
    if profile_of(g) == "tflm":  # TFLite Micro: the convolutions' int64 rescale, multipliers in double
        return _fully_connected16_fixed(inp, filt, out, values, (rows, depth, units), b, (lo, hi), out_shape)
    if profile_of(g) == "litert" and _takes_ruy(op, bias):
        _, mult, shift, _, _ = _constants(op, inp, filt, bias, out, values, units)
        rq = requantize.make("ruy", b, mult, shift, None, 0, lo, hi)
        ruy = fully_connected16_ruy.pick(rows * units * depth // 16)

        def bind_ruy(ins, outs, scratch):
            return [(ruy, (view(ins[0], (rows, depth)), weights, rq, view(outs[0], (rows, units))))]

        return bound([out_shape], bind_ruy)
    fn = fully_connected16.pick(rows * units * depth // 16)

    def bind(ins, outs, scratch):
        return [(fn, (view(ins[0], (rows, depth)), weights, b, scale, view(outs[0], (rows, units)), lo, hi))]

    return bound([out_shape], bind)


def _takes_ruy(op: Op, bias: Tensor | None) -> bool:
    """Whether LiteRT's optimized 16x8 FULLY_CONNECTED (fully_connected.cc, EvalQuantized) runs ruy
    (int32 sums, half-up rounding) rather than the reference kernel: only with no int64 bias and no
    quantized_bias_type INT64 in the options (int8 filters are symmetric here, int16 zero points 0)."""
    return bias is None and op.options.get("quantized_bias_type", 0) != _TENSOR_TYPE_INT64


def _fully_connected16_fixed(inp, filt, out, values, dims, b, clamp, out_shape) -> Prepared:
    """TFLite Micro's 16x8 FULLY_CONNECTED (integer_ops/fully_connected.h): MultiplyByQuantizedMultiplier
    on the int64 sum, as the convolutions; run as a 1x1 convolution over the rows."""
    rows, depth, units = dims
    mult, shift = (a.astype(np.int64) for a in tflm.fc_multipliers(inp.scale[0], filt.scale, out.scale[0], units))
    weights = _weights(np.ascontiguousarray(values[1].T).reshape(1, 1, depth, units), depth)
    geo = np.array([1, 1, 1, 1, 0, 0], np.int64)
    fn = conv16.pick(rows * units * depth // 16)

    def bind(ins, outs, scratch):
        x, y = view(ins[0], (1, rows, 1, depth)), view(outs[0], (1, rows, 1, units))
        return [(fn, (x, weights, b, mult, shift, y, geo, *clamp))]

    return bound([out_shape], bind)


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    """CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED on int16 input."""
    if op.type == "FULLY_CONNECTED":
        return prepare_fully_connected16(op, g, shapes, values)
    return prepare_conv16(op, g, shapes, values)
