"""CONV_2D for uint8 (per-tensor) and int8 (per-channel) models: reference_ops::Conv semantics."""

from __future__ import annotations

import numba
import numpy as np

from ..graph import Graph, Op
from . import conv_kernels as K
from .common import (
    Prepared,
    fused_activation,
    require,
    window,
)
from .gemm import OCB, PX, pack_weights, padded_channels
from .quant_params import bias_vector, conv_multipliers, filter_zero_points, weighted_operands


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
    return gemm_conv(shapes[0], in_zp, weights, bias_q, mult, shift, out_zp, fused_activation(op, out), win)


def gemm_conv(in_shape, in_zp, weights, bias, mult, shift, out_zp, clamp, win) -> Prepared:
    """A convolution on the int16 GEMM, from int16 weights [oc, kh, kw, c] with the filter zero
    point already subtracted. No im2col: the GEMM reads the padded input in place, one filter tap
    at a time. DEPTHWISE_CONV_2D on a one-channel input is this too."""
    n, h, w, c = in_shape
    oc, kh, kw, _ = weights.shape
    oh, ow = win.oh, win.ow
    blocks = padded_channels(oc) // OCB
    lo, hi = clamp
    pad_input = K.pad_input.pick(n * h * w * c)
    in_zp16 = np.int16(in_zp)
    macs = n * oh * ow * oc * kh * kw * c
    if c == 1:  # one channel: a GEMM call per tap would multiply one pair of values; im2col instead
        cp, kernel = 1, K.conv2d_im2col
        packed = pack_weights(weights.reshape(oc, -1))
    else:  # no im2col: the GEMM reads the padded input in place, tap by tap (one packed block each)
        cp, kernel = c + c % 2, K.conv2d  # channels go in pairs: an odd count gets a zero channel
        if cp != c:
            weights = np.concatenate([weights, np.zeros((oc, kh, kw, 1), np.int16)], axis=3)
        packed = np.concatenate([pack_weights(weights[:, ky, kx, :]) for ky in range(kh) for kx in range(kw)])
    conv = kernel.pick(macs // 16)  # MACs are cheaper than elementwise steps
    chunks = 1 if conv is kernel.serial else 32 * numba.get_num_threads()
    padded_size = n * win.hp * win.wp * cp
    slack = (PX + 1) * win.sw * cp + 64  # the last tile's pixels beyond the row read past the end

    def run(ins, outs, scratch):
        flat = scratch[0]
        pad_input(ins[0], in_zp16, win.top, win.left, 1, flat[:padded_size].reshape(n, win.hp, win.wp, cp))
        conv(
            flat,
            win.hp,
            win.wp,
            cp,
            packed,
            blocks,
            bias,
            mult,
            shift,
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
            outs[0],
        )

    return Prepared([(n, oh, ow, oc)], run, scratch=[((padded_size + slack,), np.int16)])
