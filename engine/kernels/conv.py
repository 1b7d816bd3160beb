"""Numba kernels shared by the convolution-like ops.

pad_input materialises padding and shifts inputs into the GEMM's operand range (gemm.py);
convolutions and fully connected layers are then integer matrix products.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from .gemm import (
    OCB,
    PX,
    Epilogue,
    Runs,
    gemm_rows,
    strip_requantize,
    tile,
    tile_requantize,
    tile_requantize_one,
    tiles_requantize,
)
from .irtools import flat_view, reshaped
from .kernel import kernel
from .requantize import requantize_pixels


class Padding(NamedTuple):
    """pad_input's copy: x [n, h, w, c] into out [n, hp, wp, cp] at (top, left), each value + delta
    repeated `repeat` times, `fill` around."""

    n: int
    h: int
    w: int
    c: int
    delta: np.int16
    fill: np.int16
    top: int
    left: int
    repeat: int
    hp: int
    wp: int
    cp: int


class Geometry(NamedTuple):
    """A convolution's padded input [., hp, wp, c] and window: kh x kw taps, strides, dilations."""

    hp: int
    wp: int
    c: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int


class GemmPlan(NamedTuple):
    """How conv2d drives the GEMM (see conv2d): `calls` calls of `per_call` runs x_run apart, each run
    run_len values; fused: requantize in the micro-kernel; d and sum_lane: the window-sum term; chunks:
    the parallel loop's iterations; groups: each task's blocks in that many tasks (fused only); strip:
    pixels a task (0: a task is an output row; see conv2d)."""

    blocks: int
    calls: int
    per_call: int
    x_run: int
    run_len: int
    fused: bool
    d: int
    sum_lane: int
    chunks: int
    groups: int
    strip: int


class Pooling(NamedTuple):
    """conv2d_pooled's MAX_POOL_2D of the convolution's output: windows of fh rows x fw pixels without
    padding, fh rows (rows never shared) and sw pixels apart, ow the convolution's output width;
    each maximum clamped to lo .. hi (the pool's activation)."""

    fh: int
    fw: int
    sw: int
    ow: int
    lo: int
    hi: int


FLAT_RUN = 1 << 14  # values of a task where pad_input's copy is one run


@kernel
def pad_input(x, out, pad):
    """Flat arrays x [N, H, W, C] and out [N, Hp, Wp, Cp] (pad: Padding): out[n, top+y, left+x, c*repeat
    + r] = x[n, y, x, c] + delta for r < repeat (in int16, then cast to out's type), and `fill` around.
    Channels beyond c * repeat (to Cp) are left as they are.

    out is scratch memory shared between ops, so the border is written every time.
    repeat > 1 serves depthwise convolutions with a depth multiplier: each output channel then
    finds its input at its own index.
    The loops index slices from 0: an index with a signed offset keeps Numba's negative-index
    check inside a loop, which then does not vectorize (measured: 3 to 50 times slower).
    Without a border (a valid convolution of int8 data: only the shift) the copy is one run, taken
    in parts of FLAT_RUN values: rows of a few values cost their set-up each (MNIST's first layer at
    batch 256: 7168 rows of 28, 58 us; one run 4 us).
    """
    n, h, w, c, delta, fill, top, left, repeat, hp, wp, cp = pad
    row_len = wp * cp
    flat = (hp, wp, cp, repeat) == (h, w, c, 1)
    total = n * h * w * c
    for i in prange(-(-total // FLAT_RUN) if flat else n * hp):
        if flat:
            part = x[i * FLAT_RUN : min(total, (i + 1) * FLAT_RUN)]
            into = out[i * FLAT_RUN : i * FLAT_RUN + part.size]
            for j in range(part.size):
                into[j] = np.int16(part[j]) + delta
            continue
        b = i // hp
        y = i % hp - top
        row = out[i * row_len : (i + 1) * row_len]
        if y < 0 or y >= h:
            row[:] = fill
            continue
        row[: left * cp] = fill
        row[(left + w) * cp :] = fill
        src = x[(b * h + y) * w * c : (b * h + y + 1) * w * c]
        if repeat == 1 and cp == c:  # one contiguous run
            dst = row[left * c : (left + w) * c]
            for j in range(w * c):
                dst[j] = np.int16(src[j]) + delta
            continue
        pixels_in, pixels_out = reshaped(src, (w, c)), reshaped(row, (wp, cp))
        for xx in range(w):
            if repeat == 1:  # (a loop of its own: the inner loop over r would stop vectorization)
                for ch in range(c):
                    pixels_out[left + xx, ch] = np.int16(pixels_in[xx, ch]) + delta
                continue
            for ch in range(c):
                v = np.int16(pixels_in[xx, ch]) + delta
                for r in range(repeat):
                    pixels_out[left + xx, ch * repeat + r] = v


@njit(inline="always", cache=True)
def _edge(edge, xf, start):
    """edge = xf[start:] then zeros: the last tiles' input, read whole. (A loop: a slice assignment
    checks shapes, and its error path builds a string, which keeps Numba's reference counting in the
    kernel: refops.py.)"""
    n = np.uint64(xf.size - start)
    at = np.uint64(start)
    for j in range(n):  # (unsigned indices: no negative-index test, so the loops vectorize)
        edge[j] = xf[at + j]
    for j in range(n, np.uint64(edge.size)):
        edge[j] = 0


@kernel
def conv2d(xf, w, geo, gemm, rq, accs, all_offsets, edges, out):
    """Convolution on the GEMM, reading the padded input in place (no im2col).

    Each output pixel reads runs of run_len consecutive values in the padded input xf
    [N, Hp, Wp, C] (flattened): a filter row's kw * c values when the filter is not dilated along
    x, else a tap's c values. run_len is rounded up to the GEMM's k group; the values read beyond
    a run meet zero weights. The PX pixels of a tile start sw * c apart; the GEMM micro-kernel
    reads them in place, per_call runs x_run apart per call (sums in registers), in `calls`
    calls dh input rows apart: one call of kh runs (x_run = dh rows) when not dilated along x,
    else one call of kw runs (x_run = dw pixels) per filter row. Pixels beyond the row's end are
    computed and discarded; a tile that would read beyond the end of xf reads a copy (an input read
    in place; the padded copy has room after it for a whole tile: one-pixel heads had copied 5 KB a
    channel block, MobileNet v2's 1280 -> 1001 44 -> 12 us).
    w: one pack_weights block per run, in order.
    d: the weights' offset (see gemm_conv): d times the sum of each pixel's window joins its sum.
    The GEMM computes that sum in lane sum_lane of the accumulators (when >= 0: the weights have
    a column of ones there), else window_sum does.
    fused: requantize in the micro-kernel (tile_requantize; one call only). A task is one output row's
    blocks, or a group of them (groups > 1: rows too few to share among the threads; fused only, and
    no sum lane then, as a group's offsets would come from another's block).
    accs [threads, rows * width], all_offsets [threads, rows], edges [threads, extent]: each
    thread's scratch (see gemm_conv), from the plan: allocating here costs more than small tasks.
    geo: Geometry; gemm: GemmPlan; rq: requantize.Requant.
    """
    hp, wp, c, kh, kw, sh, sw, dh, dw = geo
    blocks, calls, per_call, x_run, run_len, fused, d, sum_lane, chunks, groups, _ = gemm
    n, oh, ow, oc = out.shape
    width = blocks * OCB
    ksteps = run_len // (4 // xf.itemsize)  # int16 data: pairs of k per step; uint8: quads
    block_size = run_len * OCB
    extent = edges.shape[1]
    per_group = -(-blocks // groups)
    tasks = n * oh * groups
    chunks = min(tasks, chunks)
    flat = flat_view(out)
    for chunk in prange(chunks):
        thread = numba.get_thread_id()
        acc, offsets, edge = accs[thread], all_offsets[thread], edges[thread]
        offsets[:] = 0
        for i in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            b = i // (oh * groups)
            oy = i // groups % oh
            first = i % groups * per_group  # this task's blocks: first .. first + per_group - 1
            if d != 0 and sum_lane < 0:
                for ox in range(ow):
                    start = ((b * hp + oy * sh) * wp + ox * sw) * c
                    offsets[ox] = d * window_sum(xf, start, wp * c, c, kh, kw, dh, dw)
            if fused:
                row = (b * oh + oy) * ow
                base = ((b * hp + oy * sh) * wp) * c
                for blk in range(min(blocks, first + per_group) - 1, first - 1, -1):  # sum lane's first
                    ch = blk * OCB
                    lane = sum_lane - ch if 0 <= sum_lane - ch < OCB else -1
                    w_off, w_run = blk * block_size, blocks * block_size
                    # the row's tiles that read inside xf, in one call (the channels' set-up once); a
                    # last partial tile too, unless it is 1 or 2 pixels of a long filter (see _tail)
                    room = xf.size - extent - base
                    whole = min(-(-ow // PX), room // (PX * sw * c) + 1) if room >= 0 else 0
                    if whole * PX > ow and not _tail(ow - (whole - 1) * PX, ksteps * per_call):
                        whole -= 1
                    if whole > 0:
                        pixels = min(ow, whole * PX)
                        ep = Epilogue(ch, min(OCB, oc - ch), lane, d, 0, pixels, row * oc + ch, oc)
                        at = Runs(base, sw * c, w_off, ksteps, per_call, x_run, w_run)
                        tiles_requantize(xf, w, at, ep, offsets, flat, rq, whole)
                    for t in range(whole * PX, ow, PX):
                        start = base + t * sw * c
                        pixels = min(PX, ow - t)
                        ep = Epilogue(ch, min(OCB, oc - ch), lane, d, t, pixels, (row + t) * oc + ch, oc)
                        if start + extent <= xf.size:  # (no array variable here: each copy is refcounted)
                            at = Runs(start, sw * c, w_off, ksteps, per_call, x_run, w_run)
                            tile_requantize_part(xf, w, at, ep, offsets, flat, rq)
                        else:
                            _edge(edge, xf, start)
                            at = Runs(0, sw * c, w_off, ksteps, per_call, x_run, w_run)
                            tile_requantize_part(edge, w, at, ep, offsets, flat, rq)
                continue
            for call in range(calls):
                base = ((b * hp + oy * sh + call * dh) * wp) * c
                run_w = call * per_call * blocks * block_size
                for t in range(0, ow, PX):
                    start = base + t * sw * c
                    w_run = blocks * block_size
                    if start + extent <= xf.size:  # (no array variable here: each copy is refcounted)
                        at = Runs(start, sw * c, run_w, ksteps, per_call, x_run, w_run)
                        tile_blocks(xf, w, at, block_size, blocks, call > 0, acc, t * width)
                    else:
                        _edge(edge, xf, start)
                        at = Runs(0, sw * c, run_w, ksteps, per_call, x_run, w_run)
                        tile_blocks(edge, w, at, block_size, blocks, call > 0, acc, t * width)
            if d != 0 and sum_lane >= 0:
                for ox in range(ow):
                    offsets[ox] = d * acc[ox * width + sum_lane]
            requantize_pixels(acc, width, offsets, rq, out[b, oy])


@njit(inline="always", cache=True)
def _window_offsets(xf, geo, d, offsets, b, oy, ow):
    """offsets[ox] = d times the sum of output pixel (oy, ox)'s window (conv2d's window-sum term)."""
    hp, wp, c, kh, kw, sh, sw, dh, dw = geo
    for ox in range(ow):
        start = ((b * hp + oy * sh) * wp + ox * sw) * c
        offsets[ox] = d * window_sum(xf, start, wp * c, c, kh, kw, dh, dw)


@kernel
def conv2d_pooled(xf, w, geo, gemm, rq, pool, all_offsets, edges, bands, out):
    """conv2d (fused: one call, requantized in the micro-kernel) whose output only a MAX_POOL_2D reads
    (pool: Pooling), run as one: a task computes the fh convolution rows of one row of windows into
    its thread's band (bands [threads, fh * ow * oc], the output's type), then pools them into out
    [N, rows of windows, windows a row, oc]. The convolution's output is never written whole or read
    back (MNIST's 24 x 24 x 32 at batch 256: 4.7 MB through the L3 cache twice), and rows below the
    last window are not computed. A task's channel blocks may be a group of them, as in conv2d.
    The row's loop is conv2d's fused branch written out again, on purpose: shared with conv2d through an
    inline="always" helper, it ran 10 % slower than in conv2d (same process, MNIST's layer), and conv2d
    through the helper compiled with more stack traffic around the micro-kernel. A change to one is a
    change to both."""
    n, pool_rows, pool_cols, oc = out.shape
    fh, ow = pool.fh, pool.ow
    hp, wp, c, sh, sw = geo.hp, geo.wp, geo.c, geo.sh, geo.sw
    blocks, _, per_call, x_run, run_len, _, d, sum_lane, chunks, groups, _ = gemm
    ksteps = run_len // (4 // xf.itemsize)  # int16 data: pairs of k per step; uint8: quads
    block_size = run_len * OCB
    extent = edges.shape[1]
    per_group = -(-blocks // groups)
    tasks = n * pool_rows * groups
    chunks = min(tasks, chunks)
    flat = flat_view(out)
    for chunk in prange(chunks):
        thread = numba.get_thread_id()
        offsets, edge, band = all_offsets[thread], edges[thread], bands[thread]
        offsets[:] = 0
        for i in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            b = i // (pool_rows * groups)
            py = i // groups % pool_rows
            first = i % groups * per_group
            for ky in range(fh):
                oy = py * fh + ky
                if d != 0 and sum_lane < 0:
                    _window_offsets(xf, geo, d, offsets, b, oy, ow)
                base = ((b * hp + oy * sh) * wp) * c
                for blk in range(min(blocks, first + per_group) - 1, first - 1, -1):  # sum lane's first
                    ch = blk * OCB
                    lane = sum_lane - ch if 0 <= sum_lane - ch < OCB else -1
                    w_off, w_run = blk * block_size, blocks * block_size
                    room = xf.size - extent - base
                    whole = min(-(-ow // PX), room // (PX * sw * c) + 1) if room >= 0 else 0
                    if whole * PX > ow and not _tail(ow - (whole - 1) * PX, ksteps * per_call):
                        whole -= 1
                    if whole > 0:
                        pixels = min(ow, whole * PX)
                        ep = Epilogue(ch, min(OCB, oc - ch), lane, d, 0, pixels, ky * ow * oc + ch, oc)
                        at = Runs(base, sw * c, w_off, ksteps, per_call, x_run, w_run)
                        tiles_requantize(xf, w, at, ep, offsets, band, rq, whole)
                    for t in range(whole * PX, ow, PX):
                        start = base + t * sw * c
                        pixels = min(PX, ow - t)
                        ep = Epilogue(ch, min(OCB, oc - ch), lane, d, t, pixels, (ky * ow + t) * oc + ch, oc)
                        if start + extent <= xf.size:  # (no array variable here: each copy is refcounted)
                            at = Runs(start, sw * c, w_off, ksteps, per_call, x_run, w_run)
                            tile_requantize_part(xf, w, at, ep, offsets, band, rq)
                        else:
                            _edge(edge, xf, start)
                            at = Runs(0, sw * c, w_off, ksteps, per_call, x_run, w_run)
                            tile_requantize_part(edge, w, at, ep, offsets, band, rq)
            ch0, ch1 = np.uintp(first * OCB), np.uintp(min(oc, (first + per_group) * OCB))
            at = np.uintp((b * pool_rows + py) * pool_cols * oc)
            _pool_band(band, pool, oc, ch0, ch1, flat, at, pool_cols)


@njit(inline="always", cache=True)
def _pool_band(band, pool, oc, ch0, ch1, out, at, cols):
    """Channels ch0 .. ch1 - 1 of a band's pool.fh rows of pool.ow pixels (oc channels) reduced to its
    first row, then each of `cols` windows' fw pixels (sw apart) to one, clamped, into out from `at`
    (oc apart). Flat unsigned indices: the loops vectorize without index checks."""
    fh, fw, sw, ow, lo, hi = pool
    row = np.uintp(ow * oc)
    whole = ch0 == 0 and ch1 == oc  # (all channels: a row is one run)
    for ky in range(1, fh):
        r = np.uintp(ky) * row
        if whole:
            for j in range(row):
                band[j] = max(band[j], band[r + j])
            continue
        for p in range(np.uintp(ow)):
            o = p * np.uintp(oc)
            for ch in range(ch0, ch1):
                band[o + ch] = max(band[o + ch], band[r + o + ch])
    low, high = band.dtype.type(lo), band.dtype.type(hi)
    c1, c2 = np.uintp(min(1, fw - 1) * oc), np.uintp(min(2, fw - 1) * oc)  # a window's 2nd and 3rd pixels
    for px in range(np.uintp(cols)):
        o = at + px * np.uintp(oc)
        p = px * np.uintp(sw * oc)
        if fw <= 3:  # one pass, clamp included (a pass per column and one to clamp: 2x the time)
            for ch in range(ch0, ch1):
                out[o + ch] = min(max(max(max(band[p + ch], band[p + c1 + ch]), band[p + c2 + ch]), low), high)
            continue
        for ch in range(ch0, ch1):
            out[o + ch] = max(max(band[p + ch], band[p + c1 + ch]), band[p + c2 + ch])
        for kx in range(3, fw):
            q = p + np.uintp(kx * oc)
            for ch in range(ch0, ch1):
                out[o + ch] = max(out[o + ch], band[q + ch])
        for ch in range(ch0, ch1):
            out[o + ch] = min(max(out[o + ch], low), high)

@kernel
def conv2d_strips(xf, w, geo, gemm, rq, all_offsets, edges, places, out):
    """conv2d where an image's output rows run together (gemm.strip > 0: unit strides, fused, k short,
    no window sums from window_sum), as one row of the padded input's width wp, whose pixels ow .. wp -
    1 of each row straddle two rows: computed, not stored. A task is `strip` of those pixels
    (gemm.strip_requantize; places [run_pixels + pad]: each one's place in its image's output, or -1),
    its blocks or a group of them: a short row's set-up and last pixels in tiles of their own had cost
    more than the wp - ow pixels (MNIST's first layer, rows of 26 pixels, 16 channels, batch 256: 527
    -> 383 us). A kernel of its own: code added to conv2d moves its registers (see the README). Tasks
    are counted on, not divided out (a division costs more than a short strip's tiles)."""
    hp, wp, c = geo.hp, geo.wp, geo.c
    blocks, _, per_call, x_run, run_len, _, d, sum_lane, chunks, groups, strip = gemm
    n, oh, ow, oc = out.shape
    ksteps = run_len // (4 // xf.itemsize)
    block_size = run_len * OCB
    extent = edges.shape[1]
    units = -(-((oh - 1) * wp + ow) // strip)  # an image's strips
    per_group = -(-blocks // groups)
    tasks = n * units * groups
    chunks = min(tasks, chunks)
    flat = flat_view(out)
    for chunk in prange(chunks):
        thread = numba.get_thread_id()
        offsets, edge = all_offsets[thread], edges[thread]
        lo_task = chunk * tasks // chunks
        # the task's image b, strip u and channel group g; g starts one before lo_task's
        b, u, g = lo_task // (units * groups), lo_task // groups % units, lo_task % groups - 1
        for _ in range(lo_task, (chunk + 1) * tasks // chunks):
            g += 1
            if g == groups:
                g, u = 0, u + 1
                if u == units:
                    u, b = 0, b + 1
            first = g * per_group
            v0 = u * strip
            image = b * hp * wp * c
            pixels = min(strip, (oh - 1) * wp + ow - v0)
            # the tiles that read inside xf (all but an input read in place's last pixels)
            room = xf.size - extent - image - v0 * c
            readable = room // (PX * c) + 1 if room >= 0 else 0
            for blk in range(min(blocks, first + per_group) - 1, first - 1, -1):  # sum lane's first
                ch = blk * OCB
                lane = sum_lane - ch if 0 <= sum_lane - ch < OCB else -1
                w_off, w_run = blk * block_size, blocks * block_size
                out_off = b * oh * ow * oc + ch
                if readable > 0:
                    ep = Epilogue(ch, min(OCB, oc - ch), lane, d, 0, pixels, out_off, oc)
                    at = Runs(image + v0 * c, c, w_off, ksteps, per_call, x_run, w_run)
                    strip_requantize(xf, w, at, ep, offsets, flat, rq, readable, places[v0:])
                for q in range(min(pixels, readable * PX), pixels):  # one by one, from a copy
                    if places[v0 + q] >= 0:
                        _edge(edge, xf, image + (v0 + q) * c)
                        ep = Epilogue(ch, min(OCB, oc - ch), lane, d, q, 1, out_off + places[v0 + q], oc)
                        at = Runs(0, c, w_off, ksteps, per_call, x_run, w_run)
                        tile_requantize_part(edge, w, at, ep, offsets, flat, rq)


SHORT_K = 8  # k groups a pixel: up to this, a row's set-up costs more than a whole tile's products


@njit(inline="always", cache=True)
def _tail(pixels, k_groups):
    """Whether a row's last `pixels` (1 to PX) go in its tiles' call as a partial tile (computing PX) rather
    than as one-pixel tiles of their own (set up anew, a quarter of a tile's products each)."""
    return pixels > 2 or k_groups <= SHORT_K


@njit(inline="always", cache=True)
def tile_requantize_part(x, w, at, ep, offsets, out, rq):
    """tile_requantize for a row's ep.pixels pixels (up to PX); 1 or 2 pixels take a one-pixel tile each, a
    quarter of a whole tile's multiply-adds (a row of width 1 or 2, or 4k + 1 or 2, wastes no more)."""
    if ep.pixels > 2:
        tile_requantize(x, w, at, ep, offsets, out, rq)
        return
    for p in range(ep.pixels):
        one_at = Runs(
            at.x_off + p * at.x_stride, at.x_stride, at.w_off, at.ksteps, at.runs, at.x_run, at.w_run
        )
        one = Epilogue(
            ep.ch, ep.channels, ep.sum_lane, ep.d, ep.pix + p, 1, ep.out_off + p * ep.out_pixel, ep.out_pixel
        )
        tile_requantize_one(x, w, one_at, one, offsets, out, rq)


@njit(inline="always", cache=True)
def tile_blocks(x, w, at, block_size, blocks, accumulate, acc, acc_off):
    """tile() for every packed block of OCB channels (at: the first block's Runs), their sums side by
    side in acc."""
    width = blocks * OCB
    for blk in range(blocks):
        blk_at = Runs(
            at.x_off, at.x_stride, at.w_off + blk * block_size, at.ksteps, at.runs, at.x_run, at.w_run
        )
        tile(x, w, blk_at, accumulate, acc, acc_off + blk * OCB, width)


@njit(cache=True)
def window_sum(xf, start, row_stride, c, kh, kw, dh, dw):
    """The sum of one pixel's receptive field in the padded input: kh x kw taps of c values."""
    s = 0
    for ky in range(kh):
        for kx in range(kw):
            base = start + ky * dh * row_stride + kx * dw * c
            values = xf[base : base + c]  # indexed from 0: see pad_input
            for j in range(c):
                s += np.int32(values[j])
    return s


@njit(inline="always", cache=True)
def requantize_double(acc, scale, out_zp, lo, hi):
    """int32(std::round(double(acc) * scale)) + zero point, clamped: the reference FULLY_CONNECTED."""
    v = np.float64(acc) * scale
    whole = math.floor(abs(v))
    r = whole + (1.0 if abs(v) - whole >= 0.5 else 0.0)  # half away from zero, exact
    r = min(max(math.copysign(r, v), -2147483648.0), 2147483647.0)
    return min(max(np.int64(r) + out_zp, lo), hi)


@njit(cache=True, inline="always")
def _load_rows(x, r0, n, delta, rows):
    """Rows r0 .. r0 + n of x, shifted by delta into the GEMM's operand type, into rows[:n]."""
    k = x.shape[1]
    if rows.shape[1] <= 8:  # short rows in one plain loop (a vector loop's checks and a memset cost more)
        for r in range(n):
            for j in range(rows.shape[1]):
                rows[r, j] = np.int16(x[r0 + r, j]) + delta if j < k else 0
        return
    for r in range(n):
        for j in range(k):
            rows[r, j] = np.int16(x[r0 + r, j]) + delta
        if rows.shape[1] > k:  # (a memset call: not for nothing)
            rows[r, k:] = 0  # the k group's padding meets zero weights, but must not be garbage


@kernel
def fully_connected_fixed(x, delta, w, blocks, rq, zeros, all_rows, accs, out):
    """x: [B, K] int8/uint8, taken as x + delta into the GEMM's operand type (all_rows'); w: packed by
    gemm.pack_weights; out: [B, U]. PX rows per task. all_rows [threads, PX, kp] (kp: K rounded up to
    the k group) and accs [threads, PX * width]: each thread's scratch, from the plan. With the
    convolutions' fixed-point requantization:
    out = clamp(MultiplyByQuantizedMultiplier(acc + bias, M0, shift) + zp): BATCH_MATMUL's kernel
    (ops/batch_matmul.py; FULLY_CONNECTED runs fc_packed's). rq: a Requant whose params() table holds each
    unit's bias, multiplier and shift; zeros: PX int64 zeros (no per-row offset here)."""
    bsz = x.shape[0]
    kp = all_rows.shape[2]
    width = blocks * OCB
    for t in prange(-(-bsz // PX)):
        thread = numba.get_thread_id()
        rows, acc = all_rows[thread], accs[thread]
        r0 = t * PX
        n = min(PX, bsz - r0)
        _load_rows(x, r0, n, delta, rows)
        gemm_rows(flat_view(rows), kp, n, w, blocks, acc)
        requantize_pixels(acc, width, zeros, rq, out[r0 : r0 + n])
