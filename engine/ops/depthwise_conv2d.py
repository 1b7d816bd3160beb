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
from . import conv_float
from .common import (
    Prepared,
    Window,
    bound,
    int_option,
    per_thread,
    require,
    stored,
    view,
    window,
)
from .conv2d import gemm_conv, rescale
from .conv16 import prepare_conv16
from .quant_params import (
    bias_vector,
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
    rs = rescale(op, g, inp, filt, out, out_zp, oc)
    in_dtype, in_zp = stored(g, op.inputs[0], inp.dtype, in_zp)
    if c == 1:  # each output channel filters the one input channel: an ordinary convolution
        filters = weights.transpose(2, 0, 1)[..., None]
        return gemm_conv(shapes[0], in_dtype, in_zp, filters, bias_q, rs, win)
    mult, shift, out_zp, (lo, hi), rule, scale, _ = rs
    out_shape = (n, oh, ow, oc)
    if w == 1 and kw == 1 and win.wp == 1 and h > 1:  # a 1-D model's column: run it as a row (_as_row)
        h, w, kh, kw, win, weights = 1, h, 1, kh, _as_row(win), weights.reshape(1, kh, oc)
        oh, ow = win.oh, win.ow
    # uint8 input u (see kernels/depthwise.py): channels padded to whole vectors, or `group` pixels
    # of oc channels packed in one vector where oc divides 16 (stride 1 along x)
    u_zp = in_zp + (128 if in_dtype == "int8" else 0)
    bias_q = fold_zero_point(bias_q, u_zp, weights, axis=(0, 1))
    group = D.LANES // oc if D.SIMD and win.sw == 1 and D.LANES % oc == 0 else 1
    cp = oc if group > 1 else -(-oc // D.LANES) * D.LANES
    # quad rows (4 taps along x per vpdpbusd) where the filter fits int8 (int8 filters; uint8 rarely),
    # a quad row keeps every sw-th pixel (sw divides the quads' steps); packed pixels (`group` > 1) too,
    # the filter repeated per pixel of a vector
    quad = D.QUADS and (kw <= 4 or 4 * win.dw % win.sw == 0)
    quad = quad and weights.min() >= -128 and weights.max() <= 127
    if quad:
        taps = D.quad_taps(np.tile(weights, group), max(cp, D.LANES))
        stage = D.quad_stage(win.wp, cp, win.dw)
    else:
        taps = np.zeros((kh, kw, max(cp, D.LANES)), np.int16)
        taps[:, :, : oc * group] = np.tile(weights, group)
        taps, stage = taps.reshape(-1), 0  # flat: the kernel indexes it by offsets

    def lanes(a):  # a per-channel parameter, per lane
        return None if a is None else np.tile(np.broadcast_to(a, (oc,)), group)

    rq = requantize.make(rule, lanes(bias_q), lanes(mult), lanes(shift), lanes(scale), out_zp, lo, hi)
    padding = K.Padding(
        n, h, w, c, np.int16(u_zp - in_zp), np.int16(u_zp), win.top, win.left, dm, win.hp, win.wp, cp
    )
    geo = K.Geometry(win.hp, win.wp, cp, kh, -(-kw // 4) if quad else kw, win.sh, win.sw, win.dh, win.dw)
    plan = _plan(oh, cp, (kh - 1) * win.dh + 1, group)
    dims = D.dims(geo, padding, plan, rq.out_zp, rq.lo, rq.hi, stage)
    # (pick's work is in elementwise steps: measured, 2 threads win from about 100k multiply-accumulates)
    depthwise_conv2d = D.KERNELS[type(rq)].pick(n * oh * ow * oc * kh * kw // 2)
    slack = (D.DPX * win.sw + 1) * max(cp, D.LANES) + 64  # a step's pixels beyond the last row's end

    ring = (plan.span * -(-win.wp * cp // D.LANES) * D.LANES + slack) * (4 if quad else 1) + stage
    ring = -(-ring // 64) * 64
    # the largest |sum + bias| per channel (u in 0 .. 255): where the short requantization is exact
    reach = 255 * np.abs(weights.astype(np.int64)).sum(axis=(0, 1)) + np.abs(bias_q.astype(np.int64))
    c = D.pack(dims, D.wide_table(rq, lanes(reach)), taps, ring)

    def bind(ins, outs, scratch):
        return [(depthwise_conv2d, (view(ins[0]), c, scratch[0], view(outs[0], (n, oh, ow, oc))))]

    # each thread's ring of padded rows (quad rows), then where its filter rows (quads) are in it
    scratch = [per_thread(ring + 8 * kh * (-(-kw // 4) if quad else 1), np.uint8)]
    return bound([out_shape], bind, scratch)


def _plan(oh: int, cp: int, span: int, group: int) -> D.DwPlan:
    """Tasks for every thread the pool may run (the serial build runs the same ones): ranges of output
    rows, each thread's ring filling span - stride rows more than its share; where the rows do not
    split evenly (a few rows: 7 between 2 threads), ranges of channel vectors instead, which fill
    nothing twice but copy each pixel in pieces (slower alone)."""
    threads = numba.config.NUMBA_NUM_THREADS
    vectors = cp // D.LANES if group == 1 else 1
    if D.SIMD and vectors >= threads > 1 and oh % threads and oh < 8 * threads:
        return D.DwPlan(1, threads, span, group)
    return D.DwPlan(min(oh, threads), 1, span, group)


def _as_row(win: Window) -> Window:
    """The window of an [N, H, 1, C] input under a [kh, 1] filter, as the same data seen as [N, 1, H, C]
    under [1, kh]: the kernel steps DPX pixels along a row, and a column of width 1 would use one of them."""
    return Window(win.sw, win.sh, win.dw, win.dh, win.ow, win.oh, win.left, win.top, win.wp, win.hp)
