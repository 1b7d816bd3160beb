"""Per-op quantization constants computed the way TFLite's Prepare computes them (kernel_util.cc)."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op, Tensor
from ..numerics.fixedpoint import quantize_multiplier
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
    return inp, filt, (rest[0] if rest else None), out, per_tensor(op, inp)[1], per_tensor(op, out)[1]


def conv_multipliers(
    op: Op, inp: Tensor, filt: Tensor, out: Tensor, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift) for CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED.

    uint8 per-tensor models use GetQuantizedConvolutionMultipler, whose scale product is taken in
    float32 before widening to double; int8 models use PopulateConvolutionQuantizationParams, whose
    per-channel product is in double. The two differ in the last bit for some scales.
    """
    s_in, s_out = np.float32(inp.scale[0]), np.float32(out.scale[0])
    fs = filt.scale.astype(np.float32)
    require(
        op, fs.size in (1, channels), f"{filt.describe()}: {fs.size} scales for {channels} output channels"
    )
    if inp.dtype == "uint8" or (fs.size == 1 and op.type == "FULLY_CONNECTED"):
        real = float(np.float32(s_in * fs[0])) / float(s_out)
        m, s = quantize_multiplier(real)
        return np.full(channels, m, np.int32), np.full(channels, s, np.int32)
    # int32 arrays: LLVM then knows the products fit vpmuldq, twice as fast as 64-bit multiplies
    mult = np.empty(channels, np.int32)
    shift = np.empty(channels, np.int32)
    for c in range(channels):
        real = float(s_in) * float(fs[c if fs.size > 1 else 0]) / float(s_out)
        mult[c], shift[c] = quantize_multiplier(real)
    return mult, shift


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


def wrap_int32(v: np.ndarray) -> np.ndarray:
    """int64 -> int32 with C's wrap-around: the reference accumulates in int32."""
    return v.astype(np.uint64).astype(np.uint32).view(np.int32)
