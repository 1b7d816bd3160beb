"""Per-op quantization constants computed the way TFLite's Prepare computes them (kernel_util.cc)."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op, Tensor
from ..numerics import multipliers
from ..numerics.fixedpoint import wrap_int32_array
from .common import fail, per_tensor, require, require_types, tensors


def weighted_operands(op: Op, g: Graph, values: list, rank: int, channel_axis: int):
    """The checked operands of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED: input, constant
    filter of `rank` dimensions (per-channel on `channel_axis`), optional bias, output, and the
    input and output zero points."""
    (inp, filt, *rest), (out,) = tensors(op, g)
    require_types(op, inp, ("uint8", "int8"))
    require_types(op, filt, (inp.dtype,))
    require_types(op, out, (inp.dtype,))
    require(op, values[1] is not None, f"{filt.describe()}: weights must be a constant")
    require(op, len(filt.shape) == rank, f"{filt.describe()}: weights must be {rank}-D")
    if filt.scale.size > 1:
        require(
            op, filt.quant_axis == channel_axis, f"{filt.describe()}: per-channel axis must be {channel_axis}"
        )
    in_zp, out_zp = per_tensor(op, inp)[1], per_tensor(op, out)[1]
    bias = rest[0] if rest else None
    check_bias_scale(op, inp, filt, bias, out)
    return inp, filt, bias, out, in_zp, out_zp


def conv_multipliers(
    op: Op, inp: Tensor, filt: Tensor, out: Tensor, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift) for CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED
    (numerics.multipliers): uint8 models take the scale product in float32, int8 ones in double."""
    fs = filt.scale
    require(
        op, fs.size in (1, channels), f"{filt.describe()}: {fs.size} scales for {channels} output channels"
    )
    # the reference's uint8 kernels take one filter scale (it refuses per-channel uint8 filters)
    require(
        op, not (inp.dtype == "uint8" and fs.size > 1), f"{filt.describe()}: uint8 filters must be per tensor"
    )
    float32_product = inp.dtype == "uint8" or (fs.size == 1 and op.type == "FULLY_CONNECTED")
    mult, shift, real = multipliers.conv_multipliers(
        inp.scale[0], fs, out.scale[0], channels, float32_product
    )
    if float32_product:
        check_shift(op, int(shift[0]), float(real[0]))
    else:
        for c in range(channels):
            check_shift(op, int(shift[c]), float(real[c]), c)
    return mult, shift


def check_shift(op: Op, shift: int, real: float, channel: int | None = None) -> None:
    """Refuse a multiplier s_in * s_w / s_out >= 2**31 (left shift > 31): the reference shifts the
    int32 accumulator left by that much, which is undefined (measured: its outputs are neither the
    saturated nor the wrapped values). Below it (measured at 2**30) the engine matches it.
    FULLY_CONNECTED's reference rescales in double and saturates: nothing to refuse there."""
    if shift > 31 and op.type != "FULLY_CONNECTED":
        where = "" if channel is None else f"channel {channel}: "
        raise fail(op, f"{where}multiplier s_in * s_w / s_out = {real:g} is too large (>= 2**31)")


def check_bias_scale(op: Op, inp: Tensor, filt: Tensor, bias: Tensor | None, out: Tensor) -> None:
    """Refuse a bias whose scale is not s_in * s_w, as the reference's Prepare does
    (kernel_util.cc GetQuantizedConvolutionMultipler: |s_in * s_w - s_bias| / s_out <= 0.02, in double
    from the float32 scales). It checks only per-tensor filters, and for the convolutions only uint8
    inputs (PopulateConvolutionQuantizationParams); a bias without quantization counts as scale 0."""
    if bias is None or filt.scale.size != 1:
        return
    if op.type != "FULLY_CONNECTED" and inp.dtype != "uint8":
        return
    product = float(inp.scale[0]) * float(filt.scale[0])
    bias_scale = float(bias.scale[0]) if bias.quantized else 0.0
    if not abs(product - bias_scale) / float(out.scale[0]) <= 0.02:
        raise fail(
            op,
            f"{bias.describe()}: bias scale {bias_scale:g} is not input scale * weight scale = {product:g}"
            " (|difference| / output scale must be <= 0.02)",
        )


def filter_zero_points(op: Op, filt: Tensor, channels: int) -> np.ndarray:
    """Filter zero points per output channel: any value for uint8, zero for int8 (symmetric)."""
    zp = filt.zero_point.astype(np.int64)
    if filt.dtype == "int8" and np.any(zp != 0):
        raise fail(op, f"{filt.describe()}: int8 filters must be symmetric (zero point 0)")
    require(op, zp.size in (1, channels), f"{filt.describe()}: {zp.size} zero points for {channels} channels")
    return np.broadcast_to(zp, (channels,)).copy() if zp.size == 1 else zp


def bias_vector(op: Op, bias: Tensor | None, value: np.ndarray | None, channels: int) -> np.ndarray:
    if bias is None:
        return np.zeros(channels, np.int32)
    require(op, bias.dtype == "int32", f"{bias.describe()}: bias must be int32")
    require(op, value is not None, f"{bias.describe()}: bias must be a constant")
    require(
        op, value.size == channels, f"{bias.describe()}: {value.size} values for {channels} output channels"
    )
    return value.reshape(channels).astype(np.int32)


def fold_zero_point(bias: np.ndarray, zero_point: int, weights: np.ndarray, axis) -> np.ndarray:
    """bias - zero_point * (the weights summed over axis), wrapped to int32: an input zero point's
    per-channel term, folded into the bias at prepare (conv2d, depthwise_conv2d, fully_connected)."""
    return wrap_int32_array(bias.astype(np.int64) - zero_point * weights.sum(axis=axis, dtype=np.int64))
