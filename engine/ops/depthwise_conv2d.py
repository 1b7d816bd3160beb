"""DEPTHWISE_CONV_2D: reference_ops::DepthwiseConv (uint8) and DepthwiseConvPerChannel (int8).

A one-channel input (the first layer of many models) runs as an ordinary convolution on the GEMM.

Per-channel filters may be quantized on dimension 3 (as TFLite Micro's models are); LiteRT rejects
those, the engine accepts them since the channel is the same dimension either way.
"""

from __future__ import annotations

import numba
import numpy as np

from ..graph import Graph, Op
from ..kernels import conv as K
from ..kernels import depthwise as D
from ..kernels import requantize
from ..profiles import litert
from . import conv_float
from .common import (
    Prepared,
    Window,
    bound,
    fused_activation,
    int_option,
    require,
    view,
    window,
)
from .conv2d import gemm_conv
from .conv16 import prepare_conv16
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
        return prepare_conv16(op, g, shapes, values)
    inp, filt, bias, out, in_zp, out_zp = weighted_operands(op, g, values, rank=4, channel_axis=3)
    require(op, len(shapes[0]) == 4, "input must be 4-D")
    n, h, w, c = shapes[0]
    one, kh, kw, oc = shapes[1]
    require(op, one == 1, f"{filt.describe()}: filter must have shape [1, kh, kw, channels]")
    dm = int_option(op, "depth_multiplier", 1, lo=0) or oc // max(c, 1)
    require(
        op, dm >= 1 and c * dm == oc, f"input channels {c} x depth multiplier {dm} != filter channels {oc}"
    )
    win = window(op, h, w, kh, kw)
    oh, ow = win.oh, win.ow

    wzp = filter_zero_points(op, filt, oc)
    weights = np.ascontiguousarray(values[1][0].astype(np.int16) - wzp.astype(np.int16))
    bias_q = bias_vector(op, bias, values[2] if bias is not None else None, oc)
    mult, shift = conv_multipliers(op, inp, filt, out, oc)
    rule = litert.conv_rule(op, g)  # "reference" unless numerics="litert" (profiles/litert.py)
    scale = litert.fp32_scales(inp, filt, out, oc) if rule == "fp32" else None
    lo, hi = fused_activation(op, out)
    if c == 1:  # each output channel filters the one input channel: an ordinary convolution
        filters = weights.transpose(2, 0, 1)[..., None]
        return gemm_conv(
            shapes[0], inp.dtype, in_zp, filters, bias_q, mult, shift, out_zp, (lo, hi), win, rule, scale
        )
    out_shape = (n, oh, ow, oc)
    if w == 1 and kw == 1 and win.wp == 1 and h > 1:  # a 1-D model's column: run it as a row (_as_row)
        h, w, kh, kw, win, weights = 1, h, 1, kh, _as_row(win), weights.reshape(1, kh, oc)
        oh, ow = win.oh, win.ow
    # uint8 input u (see kernels/depthwise.py), channels padded to whole vectors
    u_zp = in_zp + (128 if inp.dtype == "int8" else 0)
    cp = -(-oc // D.LANES) * D.LANES
    taps = np.zeros((kh, kw, cp), np.int16)
    taps[:, :, :oc] = weights
    taps = taps.reshape(-1)  # flat: the kernel indexes it by offsets
    bias_q = fold_zero_point(bias_q, u_zp, weights, axis=(0, 1))
    rq = requantize.make(rule, bias_q, mult, shift, scale, out_zp, lo, hi)
    pad_input = K.pad_input.pick(n * h * w * oc)
    padding = K.Padding(
        n, h, w, c, np.int16(u_zp - in_zp), np.int16(u_zp), win.top, win.left, dm, win.hp, win.wp, cp
    )
    geo = K.Geometry(win.hp, win.wp, cp, kh, kw, win.sh, win.sw, win.dh, win.dw)
    depthwise_conv2d = D.depthwise_conv2d.pick((n * oh * ow * oc * kh * kw) // 16)  # MACs are cheap
    chunks = 32 * numba.config.NUMBA_NUM_THREADS  # valid for both builds (the executor picks one)
    padded_size = n * win.hp * win.wp * cp
    offsets = np.zeros(ow, np.int32)  # none: the zero point is in the bias
    slack = (D.DPX * win.sw + 1) * cp + 64  # a step's pixels beyond the last row's end

    def bind(ins, outs, scratch):
        flat = scratch[0]
        out = view(outs[0], (n, oh, ow, oc))
        return [
            (pad_input, (view(ins[0]), flat, padding)),
            (depthwise_conv2d, (flat, taps, geo, rq, chunks, scratch[1], offsets, out)),
        ]

    # each thread's sums (numba.get_thread_id() is below NUMBA_NUM_THREADS)
    sums = ((numba.config.NUMBA_NUM_THREADS, -(-ow // D.DPX) * D.DPX * cp), np.int32)
    return bound([out_shape], bind, [((padded_size + slack,), np.uint8), sums])


def _as_row(win: Window) -> Window:
    """The window of an [N, H, 1, C] input under a [kh, 1] filter, as the same data seen as [N, 1, H, C]
    under [1, kh]: the kernel steps DPX pixels along a row, and a column of width 1 would use one of them."""
    return Window(win.sw, win.sh, win.dw, win.dh, win.ow, win.oh, win.left, win.top, win.wp, win.hp)
