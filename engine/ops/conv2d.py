"""CONV_2D for uint8 (per-tensor) and int8 (per-channel) models: reference_ops::Conv semantics."""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from ..graph import Graph, Op
from ..kernels import aligned, gemm, requantize
from ..kernels import conv as K
from ..kernels.gemm import OCB, PX, pack_weights, padded_channels
from ..profiles import litert
from . import conv_float
from .common import (
    Pool,
    Prepared,
    Window,
    bound,
    fused_activation,
    per_thread,
    require,
    stored,
    stored_output,
    view,
    window,
)
from .conv16 import prepare_conv16
from .quant_params import (
    bias_vector,
    conv_multipliers,
    filter_zero_points,
    fold_zero_point,
    weighted_operands,
)

ROW_PIXELS = 512  # the longest row _pointwise_rows makes
# An unpadded int8 convolution of an input up to FLIP_BYTES, and up to FLIP_BLOCKS output blocks, flips
# its input's sign bits (x + 128) in the micro-kernel instead of in a pass over the input, where a pixel's
# window is at most FLIP_K_GROUPS groups of 4 values: an xor per group, pixel and block, against the pass's
# call. Measured (1 thread, interleaved medians, whole runs, with the tiles in pairs and quads): a
# one-channel 3 x 3 first layer (28x28x1 -> 16) 5.09 -> 4.53 us in-kernel; but 3 x 3 layers slower
# in-kernel (26x26x16 -> 32 8.89 -> 9.23, 16x16x32 -> 32 8.12 -> 9.40, 20x20x32 -> 32 10.71 -> 12.27) and
# pointwise ones alike (25x5x64 -> 64 3.51 -> 3.62, 10x10x256 -> 64 6.05 -> 6.10).
FLIP_BYTES, FLIP_BLOCKS, FLIP_K_GROUPS = 32 << 10, 2, 8
# pixels of a task where a convolution's rows run together (K.conv2d_strips; its k short): 4 tasks a thread at
# least, where they have STRIP_MIN pixels; at most STRIP_MAX (a strip's set-up: 128 -> 512 pixels measured
# 7 % on MNIST's first layer at batch 256)
STRIP_MIN, STRIP_MAX = 64, 512


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        return conv_float.prepare(op, g, shapes, values)
    if g.tensors[op.inputs[0]].dtype == "int16":
        return prepare_conv16(op, g, shapes, values)
    return _prepare_8bit(op, g, shapes, values)


def prepare_pooled(op: Op, g: Graph, shapes: list, values: list, pool: Pool) -> Prepared | None:
    """The convolution and a MAX_POOL_2D of its output (pool: its geometry, without padding, its rows
    never shared: sh == fh) as one step (K.conv2d_pooled; engine/fusion.py), for 8-bit data where the
    micro-kernel requantizes; None elsewhere."""
    if g.tensors[op.inputs[0]].dtype not in ("uint8", "int8") or not gemm.FUSED:
        return None
    return _prepare_8bit(op, g, shapes, values, pool)


def _prepare_8bit(op: Op, g: Graph, shapes: list, values: list, pool: Pool | None = None) -> Prepared | None:
    inp, filt, bias, out, in_zp, out_zp = weighted_operands(op, g, values, rank=4, channel_axis=0)
    require(op, len(shapes[0]) == 4, "input must be 4-D")
    _, h, w, c = shapes[0]
    oc, kh, kw, fc = shapes[1]
    require(op, c == fc, f"input has {c} channels, filter expects {fc} (grouped conv not supported)")
    win = window(op, h, w, kh, kw)
    wzp = filter_zero_points(op, filt, oc)
    weights = values[1].astype(np.int16) - wzp[:, None, None, None].astype(np.int16)
    bias_q = bias_vector(op, bias, values[2] if bias is not None else None, oc)
    in_dtype, in_zp = stored(g, op.inputs[0], inp.dtype, in_zp)
    return gemm_conv(shapes[0], in_dtype, in_zp, weights, bias_q, rescale(op, g, inp, filt, out, out_zp, oc), win, pool)


class Rescale(NamedTuple):
    """A convolution's requantization (requantize.make): the fixed-point multipliers and shifts per output
    channel, the output zero point and clamp, the rule, the float32 scales of the fp32 rule (else None),
    and the output's type as stored (common.stored: the zero point and clamp are the stored ones)."""

    mult: np.ndarray
    shift: np.ndarray
    out_zp: int
    clamp: tuple[int, int]
    rule: str
    scale: np.ndarray | None
    dtype: str


def rescale(op: Op, g: Graph, inp, filt, out, out_zp: int, oc: int) -> Rescale:
    """The requantization of a convolution-like op (CONV_2D, DEPTHWISE_CONV_2D) with oc output channels, from
    its tensors as quant_params.weighted_operands validated them. An output stored flipped (value + 128)
    takes the same arithmetic with the zero point and clamp moved by 128."""
    mult, shift = conv_multipliers(op, inp, filt, out, oc)
    rule = litert.conv_rule(op, g)  # "reference" unless numerics="litert" (profiles/litert.py)
    scale = litert.fp32_scales(inp, filt, out, oc) if rule == "fp32" else None
    dtype, stored_zp, clamp = stored_output(g, op.outputs[0], out.dtype, out_zp, fused_activation(op, out))
    return Rescale(mult, shift, stored_zp, clamp, rule, scale, dtype)


class _Operands(NamedTuple):
    """The GEMM's operand form for one convolution (see gemm_conv)."""

    data_type: type  # of the input as the GEMM reads it: uint8 (VNNI) or int16
    group: int  # k values per 32-bit lane
    delta: int  # added to the input
    fill: int  # the padding's value
    d: int  # the weights' offset
    sum_lane: int  # the accumulator lane holding each window's sum, or -1
    weights: np.ndarray  # [oc (+1 for the sum lane), kh, kw, c], offset by d
    bias: np.ndarray


def _operands(in_dtype: str, in_zp: int, weights: np.ndarray, bias: np.ndarray, lane: bool = True) -> _Operands:
    """uint8 x int8 on VNNI where the weights span at most 256 values, else int16 x int16. lane: a
    spare lane may sum each window (else the kernel sums them)."""
    oc, kh, kw, c = weights.shape
    u_zp = in_zp + (128 if in_dtype == "int8" else 0)
    d = None
    low, high = int(weights.min()), int(weights.max())
    if gemm.VNNI and 0 <= u_zp <= 255 and high - low <= 255:
        d = 0 if low >= -128 and high <= 127 else high - 127
    if d is None:  # int16 data: x - zero point, zero padding, k in pairs
        return _Operands(np.int16, 2, -in_zp, 0, 0, -1, weights, bias)
    bias = fold_zero_point(bias, u_zp, weights, axis=(1, 2, 3))
    if d:
        weights = weights - d
    sum_lane = -1
    if d != 0 and oc % OCB and lane:  # a spare lane of the last block: a column of ones sums each window
        sum_lane = oc
        weights = np.concatenate([weights, np.ones((1, kh, kw, c), weights.dtype)])
    return _Operands(np.uint8, 4, u_zp - in_zp, u_zp, d, sum_lane, weights, bias)


def _runs(weights: np.ndarray, win, group: int) -> tuple[int, int, int, int, np.ndarray]:
    """How the GEMM reads the input (see K.conv2d): runs of consecutive values, a whole filter row at
    once unless the filter is dilated along x. (calls, per_call, x_run, run_len, packed weights)."""
    _, kh, kw, c = weights.shape
    if win.dw == 1:  # one call of kh runs, dh rows apart
        calls, per_call, x_run = 1, kh, win.dh * win.wp * c
        run_weights = [weights[:, ky].reshape(len(weights), kw * c) for ky in range(kh)]
    else:  # a call per filter row, of kw runs dw pixels apart
        calls, per_call, x_run = kh, kw, win.dw * c
        run_weights = [weights[:, ky, kx] for ky in range(kh) for kx in range(kw)]
    packed = [pack_weights(rw, group) for rw in run_weights]  # (each on a cache line)
    packed = packed[0] if len(packed) == 1 else aligned.copy(np.concatenate(packed))
    run_len = -(-run_weights[0].shape[1] // group) * group
    return calls, per_call, x_run, run_len, packed


def gemm_conv(in_shape, in_dtype, in_zp, weights, bias, rs: Rescale, win, pool=None) -> Prepared | None:
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
    rs: the requantization.
    pool: a MAX_POOL_2D of the output to run with it (prepare_pooled), or None; returns None where the
    convolution does not requantize in the micro-kernel (K.conv2d_pooled's form).
    """
    out_shape = (in_shape[0], win.oh, win.ow, weights.shape[0])
    threads = numba.config.NUMBA_NUM_THREADS  # the pool: numba.get_thread_id() is below it
    if pool is None:
        in_shape, win = _pointwise_rows(in_shape, weights.shape, win, threads)
    n, h, w, c = in_shape
    oc, kh, kw, _ = weights.shape
    oh, ow = win.oh, win.ow
    blocks = padded_channels(oc) // OCB
    one_call = win.dw == 1 or kh == 1  # (_runs)
    # rows run together (K.conv2d_strips): unit strides, fused (one call), k groups few enough that a short
    # row's set-up and last tiles cost more than the pixels computed between rows (K.SHORT_K)
    k_groups = kh * -(-kw * c // 4)
    run_pixels = (oh - 1) * win.wp + ow
    strip = 0
    if gemm.FUSED and one_call and win.sh == win.sw == 1 and k_groups <= K.SHORT_K and pool is None:
        strip = min(STRIP_MAX, max(STRIP_MIN, -(-n * run_pixels // (4 * threads))))
        strip = -(-strip // (4 * PX)) * 4 * PX  # (whole groups of tiles)
    pool_rows = oh // pool.fh if pool else 0  # (each window's rows its own: sh == fh)
    units = n * -(-run_pixels // strip) if strip else n * (pool_rows or oh)  # the tasks of one channel group
    groups = _channel_groups(units, blocks, threads) if gemm.FUSED and one_call else 1
    ops = _operands(in_dtype, in_zp, weights, bias, lane=groups == 1)
    calls, per_call, x_run, run_len, packed = _runs(ops.weights, win, ops.group)
    fused = gemm.FUSED and calls == 1  # one GEMM call covers the whole filter: requantize in registers
    if pool and not fused:
        return None
    if ops.d != 0 and ops.sum_lane < 0:  # window sums from K.window_sum, row by row
        strip = 0
    kernel = K.conv2d_pooled if pool else K.conv2d_strips if strip else K.conv2d  # (strip: one call, so fused)
    conv = kernel.pick(n * oh * ow * oc * kh * kw * c // 16)  # MACs are cheaper than elementwise steps
    chunks = 32 * threads  # bound for both builds (the executor may run either)
    geo = K.Geometry(win.hp, win.wp, c, kh, kw, win.sh, win.sw, win.dh, win.dw)
    plan = K.GemmPlan(
        blocks, calls, per_call, x_run, run_len, fused, ops.d, ops.sum_lane, chunks, groups, strip
    )
    # strips: each pixel's place in its image's output, or -1 (those between rows, and after the last)
    oy, ox = np.divmod(np.arange(run_pixels if strip else 0), win.wp)
    places = np.full(-(-len(oy) // PX) * PX + 4 * PX, -1, np.int32)
    places[: len(oy)] = np.where(ox < ow, (oy * ow + ox) * oc, -1)
    rq = requantize.make(rs.rule, ops.bias, rs.mult, rs.shift, rs.scale, rs.out_zp, *rs.clamp)
    if fused and rs.rule != "fp32":  # the fused epilogue's 64-bit constants
        rq = rq._replace(table=requantize.widen(rq.table, requantize.RULES[type(rq)], rs.out_zp))
    # uint8 data without padding: the GEMM reads the input itself; small int8 data too, the micro-kernel
    # flipping each value's sign bit as it reads it (gemm.py; FLIP_BYTES)
    unpadded = ops.data_type == np.uint8 and (win.hp, win.wp) == (h, w)
    flip = unpadded and in_dtype == "int8" and ops.delta == 128 and ops.d == 0 and blocks <= FLIP_BLOCKS
    flip = flip and n * h * w * c <= FLIP_BYTES and per_call * run_len // 4 <= FLIP_K_GROUPS
    flip = flip and pool is None  # (K.conv2d_pooled reads uint8 or int16 only: two builds fewer to compile)
    in_place = unpadded and ops.delta == 0 or flip
    pad_input = K.pad_input.pick(n * h * w * c)
    padding = K.Padding(
        n, h, w, c, np.int16(ops.delta), np.int16(ops.fill), win.top, win.left, 1, win.hp, win.wp, c
    )
    # each thread's accumulators, offsets and copy of a tile's input near the end (see K.conv2d)
    rows = -(-ow // PX) * PX
    extent = (PX - 1) * win.sw * c + (per_call - 1) * x_run + run_len  # what one call reads
    scratch = [
        per_thread(rows * blocks * OCB, np.int32),
        per_thread(max(rows, strip + 4 * PX), np.int32),
        ((threads, extent), np.int8 if flip else ops.data_type),
    ]
    if not in_place:  # the padded input, then room for the last row's last tile to read past its end
        spare = -(-extent // (n * win.wp * c))  # (n * spare rows after the n * hp that pad_input fills)
        scratch.append(((n, win.hp + spare, win.wp, c), ops.data_type))
    if pool:  # each thread's band of the convolution's rows that one row of windows reads
        pooling = K.Pooling(pool.fh, pool.fw, pool.sw, ow, pool.act_min, pool.act_max)
        out_shape = (n, pool_rows, (ow - pool.fw) // pool.sw + 1, oc)
        scratch.append(per_thread(pool.fh * ow * oc, np.dtype(rs.dtype)))

    def bind(ins, outs, scratch):
        x = view(ins[0]) if in_place else view(scratch[3])
        if pool:
            args = (x, packed, geo, plan, rq, pooling, *scratch[1:3], scratch[-1], view(outs[0], out_shape))
            return [(conv, args)] if in_place else [(pad_input, (view(ins[0]), x, padding)), (conv, args)]
        out = view(outs[0], (n, oh, ow, oc))  # a pointwise convolution's rows (see _pointwise_rows)
        if strip:  # (no sums stored: no accumulators)
            args = (x, packed, geo, plan, rq, *scratch[1:3], places, out)
        else:
            args = (x, packed, geo, plan, rq, *scratch[:3], out)
        return [(conv, args)] if in_place else [(pad_input, (view(ins[0]), x, padding)), (conv, args)]

    return bound([out_shape], bind, scratch)


def _channel_groups(rows: int, blocks: int, threads: int) -> int:
    """Tasks per output row (see K.conv2d): its channel blocks in groups where the rows alone are too few
    to keep every thread busy (a pointwise convolution on 7x7 or 14x14 pixels is one row)."""
    want = -(-4 * threads // rows) if rows < 4 * threads else 1
    per_group = -(-blocks // max(1, min(blocks, want)))
    return -(-blocks // per_group)


def _pointwise_rows(in_shape, w_shape, win, threads: int) -> tuple[tuple, Window]:
    """A 1x1 convolution with unit strides and no padding maps each pixel to itself, so any rows will do:
    the GEMM tiles PX pixels of one row, and rows whose width is no multiple of PX (7, 14, 25, or
    a 1-D model's width 1) compute pixels they discard. Its n*h*w pixels then become R rows of L (L a
    multiple of PX dividing them, or all of them when few), the input and output read as [1, R, L, .]:
    2 rows per thread at least where such an L of 4 tiles or more gives them."""
    n, h, w, c = in_shape
    _, kh, kw, _ = w_shape
    pointwise = (kh, kw, win.sh, win.sw, win.hp, win.wp) == (1, 1, 1, 1, h, w)
    if not pointwise or win.ow % PX == 0:
        return in_shape, win
    pixels = n * h * w
    widths = [v for v in range(PX, ROW_PIXELS + 1, PX) if pixels % v == 0]
    # rows enough for the threads to share (K.conv2d splits over rows), of 4 tiles at least
    shared = [v for v in widths if pixels // v >= 2 * threads and v >= 4 * PX]
    if shared:
        widths = shared
    elif pixels <= ROW_PIXELS:
        widths = [pixels]
    if not widths:
        return in_shape, win
    cols = widths[-1]
    rows = pixels // cols
    return (1, rows, cols, c), Window(1, 1, 1, 1, rows, cols, 0, 0, rows, cols)
