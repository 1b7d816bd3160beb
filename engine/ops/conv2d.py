"""CONV_2D for uint8 (per-tensor) and int8 (per-channel) models: reference_ops::Conv semantics."""

from __future__ import annotations

import numba
import numpy as np

from ..graph import Graph, Op
from ..kernels import conv as K
from ..kernels import gemm, requantize
from ..kernels.gemm import OCB, PX, pack_weights, padded_channels
from .common import (
    Prepared,
    fused_activation,
    require,
    window,
)
from .quant_params import bias_vector, conv_multipliers, filter_zero_points, weighted_operands, wrap_int32


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    inp, filt, bias, out, in_zp, out_zp = weighted_operands(op, g, values, rank=4, channel_axis=0)
    require(op, len(shapes[0]) == 4, "input must be 4-D")
    _, h, w, c = shapes[0]
    oc, kh, kw, fc = shapes[1]
    require(op, c == fc, f"input has {c} channels, filter expects {fc} (grouped conv not supported)")
    win = window(op, h, w, kh, kw)
    wzp = filter_zero_points(op, filt, oc)
    weights = values[1].astype(np.int16) - wzp[:, None, None, None].astype(np.int16)
    bias_q = bias_vector(op, bias, values[2] if bias is not None else None, oc)
    mult, shift = conv_multipliers(op, inp, filt, out, oc)
    return gemm_conv(
        shapes[0], inp.dtype, in_zp, weights, bias_q, mult, shift, out_zp, fused_activation(op, out), win
    )


def gemm_conv(in_shape, in_dtype, in_zp, weights, bias, mult, shift, out_zp, clamp, win) -> Prepared:
    """A convolution on the GEMM, from int16 weights [oc, kh, kw, c] with the filter zero point
    already subtracted. No im2col: the GEMM reads the padded input in place, a filter row at a
    time. DEPTHWISE_CONV_2D on a one-channel input is this too.

    With VNNI the GEMM multiplies uint8 by int8 (gemm.py): the input becomes u = x (+128 for
    int8), whose zero point is u_zp, and the weights w' = w8 + d, with w8 in int8 and d one
    offset for the layer (0 unless w' spans more than int8, as uint8 filters with a zero point do).
    The reference's sum over a pixel's window, sum (u - u_zp) w', is then
        sum u w8  +  d sum u  -  u_zp sum w'
    the GEMM's sum, a per-pixel term (the kernel adds it when d != 0), and a per-channel constant
    that joins the bias. Padding holds u_zp, which so adds nothing, as in the reference.
    """
    n, h, w, c = in_shape
    oc, kh, kw, _ = weights.shape
    oh, ow = win.oh, win.ow
    blocks = padded_channels(oc) // OCB
    lo, hi = clamp
    u_zp = in_zp + (128 if in_dtype == "int8" else 0)
    d = None
    if gemm.VNNI and 0 <= u_zp <= 255 and int(weights.max()) - int(weights.min()) <= 255:
        d = 0 if weights.min() >= -128 and weights.max() <= 127 else int(weights.max()) - 127
    if d is None:  # int16 data: x - zero point, zero padding, k in pairs
        data_type, group, delta, fill, d = np.int16, 2, -in_zp, 0, 0
    else:
        data_type, group, delta, fill = np.uint8, 4, u_zp - in_zp, u_zp
        bias = wrap_int32(bias.astype(np.int64) - fill * weights.astype(np.int64).sum(axis=(1, 2, 3)))
        weights = weights - d
    sum_lane = -1
    if d != 0 and oc % OCB:  # a spare lane of the last block: a column of ones sums each window
        sum_lane = oc
        weights = np.concatenate([weights, np.ones((1, kh, kw, c), weights.dtype)])
    pad_input = K.pad_input.pick(n * h * w * c)
    # the GEMM reads runs of consecutive input values (see K.conv2d): a whole filter row at once
    # unless the filter is dilated along x
    if win.dw == 1:  # one call of kh runs, dh rows apart
        calls, per_call, x_run = 1, kh, win.dh * win.wp * c
        run_weights = [weights[:, ky].reshape(len(weights), kw * c) for ky in range(kh)]
    else:  # a call per filter row, of kw runs dw pixels apart
        calls, per_call, x_run = kh, kw, win.dw * c
        run_weights = [weights[:, ky, kx] for ky in range(kh) for kx in range(kw)]
    packed = np.concatenate([pack_weights(rw, group) for rw in run_weights])
    run_len = -(-run_weights[0].shape[1] // group) * group
    macs = n * oh * ow * oc * kh * kw * c
    conv = K.conv2d.pick(macs // 16)  # MACs are cheaper than elementwise steps
    chunks = 1 if conv is K.conv2d.serial else 32 * numba.get_num_threads()
    delta, fill = np.int16(delta), np.int16(fill)
    fused = gemm.FUSED and calls == 1  # one GEMM call covers the whole filter: requantize in registers
    table = requantize.params(bias, mult, shift)
    # uint8 data without padding: the GEMM reads the input itself
    in_place = data_type == np.uint8 and delta == 0 and (win.hp, win.wp) == (h, w)
    # each thread's accumulators, offsets and copy of a tile's input near the end (see K.conv2d)
    threads = numba.config.NUMBA_NUM_THREADS  # numba.get_thread_id() is below it
    rows = -(-ow // PX) * PX
    extent = (PX - 1) * win.sw * c + (per_call - 1) * x_run + run_len  # what one call reads
    scratch = [
        ((threads, rows * blocks * OCB), np.int32),
        ((threads, rows), np.int32),
        ((threads, extent), data_type),
    ]
    if not in_place:
        scratch.append(((n, win.hp, win.wp, c), data_type))

    def run(ins, outs, scratch):
        if in_place:
            flat = ins[0].reshape(-1)
        else:
            flat = scratch[3].reshape(-1)
            pad_input(
                ins[0].reshape(-1), n, h, w, c, delta, fill, win.top, win.left, 1, flat, win.hp, win.wp, c
            )
        conv(
            flat,
            win.hp,
            win.wp,
            c,
            packed,
            blocks,
            calls,
            per_call,
            x_run,
            run_len,
            fused,
            d,
            sum_lane,
            table,
            out_zp,
            lo,
            hi,
            kh,
            kw,
            win.sh,
            win.sw,
            win.dh,
            win.dw,
            chunks,
            scratch[0],
            scratch[1],
            scratch[2],
            outs[0],
        )

    return Prepared([(n, oh, ow, oc)], run, scratch=scratch)
