"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with int16 activations and int8 weights (16x8).

reference_integer_ops::ConvPerChannel / DepthwiseConvPerChannel / FullyConnected on int16 data:
zero points 0 for the activations and the weights, products summed in int64 with an int64 bias, then
  convolutions: MultiplyByQuantizedMultiplier(int64 acc, m, shift): m rounded to 16 bits,
                (acc * m16 + 2^(14 - shift)) >> (15 - shift), one rounding, truncated to int32;
  FULLY_CONNECTED: round(double(acc) * s_in * s_w / s_out), half away from zero, as its 8-bit kernel.
Multipliers per output channel as for int8 (PopulateConvolutionQuantizationParams, in double).
Biases must be int64: the reference reads an int32 bias as int64 in CONV_2D and FULLY_CONNECTED
(saturated garbage, measured) and refuses it in DEPTHWISE_CONV_2D; its CONV_2D also needs a bias.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..graph import Graph, Op, Tensor
from ..kernels.conv import requantize_double
from ..kernels.kernel import kernel
from ..numerics.fixedpoint import wrap_int32
from .common import (
    Prepared,
    fused_activation,
    int_option,
    per_tensor,
    require,
    require_types,
    tensors,
    window,
)
from .quant_params import conv_multipliers, filter_zero_points


@njit(inline="always", cache=True)
def mbqm64(x, m, shift):
    """MultiplyByQuantizedMultiplier(int64_t x, ...): the 16-bit multiplier, one rounding, int32 result."""
    reduced = (m + 32768) >> 16 if m < 0x7FFF0000 else np.int64(0x7FFF)
    total = 15 - shift
    return wrap_int32((x * reduced + (np.int64(1) << (total - 1))) >> total)


@njit(inline="always", cache=True)
def _scale(acc, m, shift, lo, hi):
    return min(max(mbqm64(acc, m, shift), lo), hi)


@kernel
def _conv16(x, w, bias, mult, shift, out, geo, lo, hi):
    """x [n, h, w, c] int16, w [kh, kw, c, oc] int32/int64; geo = sh, sw, dh, dw, top, left."""
    n, h, wd, c = x.shape
    oh, ow, oc = out.shape[1], out.shape[2], out.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    sh, sw, dh, dw, top, left = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    for t in prange(n * oh):
        b, oy = t // oh, t % oh
        acc = np.empty(oc, w.dtype)  # int32 where the sums cannot overflow it (see _weights)
        for ox in range(ow):
            acc[:] = 0
            for ky in range(kh):
                iy = oy * sh - top + ky * dh
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    ix = ox * sw - left + kx * dw
                    if ix < 0 or ix >= wd:
                        continue
                    for ic in range(c):
                        v = x[b, iy, ix, ic]
                        for o in range(oc):
                            acc[o] += v * w[ky, kx, ic, o]
            for o in range(oc):
                out[b, oy, ox, o] = _scale(np.int64(acc[o]) + bias[o], mult[o], shift[o], lo, hi)


@kernel
def _depthwise16(x, w, bias, mult, shift, out, geo, dm, lo, hi):
    """x [n, h, w, c] int16, w [kh, kw, c * dm] int32/int64: output channel ic * dm + m reads channel ic."""
    n, h, wd, c = x.shape
    oh, ow, oc = out.shape[1], out.shape[2], out.shape[3]
    kh, kw = w.shape[0], w.shape[1]
    sh, sw, dh, dw, top, left = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5]
    for t in prange(n * oh):
        b, oy = t // oh, t % oh
        acc = np.empty(oc, w.dtype)  # int32 where the sums cannot overflow it (see _weights)
        for ox in range(ow):
            acc[:] = 0
            for ky in range(kh):
                iy = oy * sh - top + ky * dh
                if iy < 0 or iy >= h:
                    continue
                for kx in range(kw):
                    ix = ox * sw - left + kx * dw
                    if ix < 0 or ix >= wd:
                        continue
                    for ic in range(c):
                        v = x[b, iy, ix, ic]
                        for m in range(dm):
                            acc[ic * dm + m] += v * w[ky, kx, ic * dm + m]
            for o in range(oc):
                out[b, oy, ox, o] = _scale(np.int64(acc[o]) + bias[o], mult[o], shift[o], lo, hi)


@kernel
def _fully_connected16(x, w, bias, scale, out, lo, hi):
    """x [rows, depth] int16, w [units, depth] int32/int64; the sums rescaled in double like the 8-bit kernel."""
    rows, depth = x.shape
    units = w.shape[0]
    for r in prange(rows):
        for u in range(units):
            acc = np.int64(0)
            for k in range(depth):
                acc += x[r, k] * w[u, k]
            out[r, u] = requantize_double(np.int64(acc) + bias[u], scale[u], 0, lo, hi)


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
    fn = (_depthwise16 if depthwise else _conv16).pick(work // 16)
    extra = (dm,) if depthwise else ()

    def run(ins, outs):
        fn(ins[0], weights, b, mult, shift, outs[0], geo, *extra, lo, hi)

    return Prepared([out_shape], run)


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
    fn = _fully_connected16.pick(rows * units * depth // 16)

    def run(ins, outs):
        fn(ins[0].reshape(rows, depth), weights, b, scale, outs[0].reshape(rows, units), lo, hi)

    return Prepared([out_shape], run)
