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
from . import gemm
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
    return gemm_conv(shapes[0], inp.dtype, in_zp, weights, bias_q, mult, shift, out_zp, fused_activation(op, out), win)


def gemm_conv(in_shape, in_dtype, in_zp, weights, bias, mult, shift, out_zp, clamp, win) -> Prepared:
    """A convolution on the GEMM, from int16 weights [oc, kh, kw, c] with the filter zero point
    already subtracted. No im2col: the GEMM reads the padded input in place, one filter tap at a
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
        bias = _wrap_int32(bias.astype(np.int64) - fill * weights.astype(np.int64).sum(axis=(1, 2, 3)))
        weights = weights - d
    pad_input = K.pad_input.pick(n * h * w * c)
    macs = n * oh * ow * oc * kh * kw * c
    if c == 1:  # one channel: a GEMM call per tap would multiply a single value; im2col instead
        cp, kernel = 1, K.conv2d_im2col
        packed = pack_weights(weights.reshape(oc, -1), group)
    else:  # no im2col: the GEMM reads the padded input in place, tap by tap (one packed block each)
        cp, kernel = -(-c // group) * group, K.conv2d  # whole k groups: zero channels added
        weights = np.concatenate([weights, np.zeros((oc, kh, kw, cp - c), weights.dtype)], axis=3)
        packed = np.concatenate([pack_weights(weights[:, ky, kx, :], group) for ky in range(kh) for kx in range(kw)])
    conv = kernel.pick(macs // 16)  # MACs are cheaper than elementwise steps
    chunks = 1 if conv is kernel.serial else 32 * numba.get_num_threads()
    padded_size = n * win.hp * win.wp * cp
    slack = (PX + 1) * win.sw * cp + 64  # the last tile's pixels beyond the row read past the end
    delta, fill = np.int16(delta), np.int16(fill)
    # per-channel constants repeated along an output row: one requantization loop covers it
    bias, mult, shift = np.tile(bias, ow), np.tile(mult, ow), np.tile(shift, ow)

    def run(ins, outs, scratch):
        flat = scratch[0]
        pad_input(ins[0], delta, fill, win.top, win.left, 1, flat[:padded_size].reshape(n, win.hp, win.wp, cp))
        conv(
            flat,
            win.hp,
            win.wp,
            cp,
            packed,
            blocks,
            d,
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

    return Prepared([(n, oh, ow, oc)], run, scratch=[((padded_size + slack,), data_type)])


def _wrap_int32(v: np.ndarray) -> np.ndarray:
    """int64 -> int32 with C's wrap-around: the reference accumulates in int32."""
    return v.astype(np.uint64).astype(np.uint32).view(np.int32)
