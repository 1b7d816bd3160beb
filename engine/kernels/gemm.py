"""Integer matrix products for convolutions, on the CPU's widest multiply-add.

The micro-kernel adds to a tile of PX pixels x OCB output channels (acc += x @ w), in one of two
forms, chosen by the type of x:
- int16 x int16: weights packed once at prepare time as [OC/OCB][K/2][OCB][2], so that one vector
  holds OCB/2 channels x 2 consecutive k; each pixel's pair of k values is broadcast and
  multiplied with vpmaddwd (pairs summed into int32), fused with the add into vpdpwssd where
  AVX-512 VNNI exists. |x|, |w| <= 255, so a pair sum never overflows int32.
- uint8 x int8 (AVX-512 VNNI): weights packed as [OC/OCB][K/4][OCB][4]; each pixel's four k values
  are broadcast and vpdpbusd sums four products per lane: twice the work per instruction. The
  convolutions shift their operands into these ranges and correct the sums (conv2d.py). int8 data
  take this form too, each broadcast lane's sign bits flipped (x + 128) as it is read.
Numba's auto-vectorizer cannot express either (it widens to int64 or falls back to vpmulld), so
the loop is written in LLVM IR. Accumulation wraps like C's int32. Two entry points: tile() stores
the sums; tile_requantize() requantizes them in registers (requantize.VectorIR) and stores bytes.
Their scalar operands come in named tuples (Runs, Epilogue, requantize.Requant): built in the calling
loop they cost nothing (LLVM takes them apart again), and each operand has one name in the IR.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import aligned, cpu
from .irtools import data_ptr, empty_codegen, operand, row_ptr
from .requantize import BIAS, DOUBLE_ROWS, LEFT, VectorIR, rule_of

if cpu.AVX512BW:
    VEC, _MADD = 32, "llvm.x86.avx512.pmaddw.d.512"
elif cpu.AVX2:
    VEC, _MADD = 16, "llvm.x86.avx2.pmadd.wd"
else:  # portable fallback: same layout, plain loops
    VEC, _MADD = 16, None
OCB = VEC  # output channels per packed block: two vectors of VEC/2 int32 lanes
PX = 4  # pixels per tile
# the sets of sums of a one-pixel tile that stores them (gemm_rows: a fully connected layer at batch 1):
# MNIST's 2048 -> 64 1.06 -> 0.78 us; not where it requantizes (MobileNet v2's 1280 -> 1001 head, a
# one-pixel row, 12.4 -> 13.5 us with them)
CHAINS = 4
# uint8 x int8 products (vpdpbusd); a module flag so that tests can run the int16 path too
VNNI = bool(_MADD and cpu.VNNI)
FUSED = VEC == 32  # tile_requantize: AVX-512 (the requantization works on 16 int32 lanes)


def pack_weights(w: np.ndarray, group: int = 2) -> np.ndarray:
    """[O, K] -> flat [O/OCB, K/group, OCB, group], zero-padded to whole blocks and K to a multiple
    of group: int16 for group 2 (vpmaddwd), int8 for group 4 (vpdpbusd; w must fit int8)."""
    o, k = w.shape
    op, kp = padded_channels(o), -(-k // group) * group
    full = np.zeros((op, kp), np.int16 if group == 2 else np.int8)
    full[:o, :k] = w
    blocks = full.reshape(op // OCB, OCB, kp // group, group).transpose(0, 2, 1, 3)
    return aligned.copy(blocks).reshape(-1)  # (one copy: blocks is a transposed view)


def padded_channels(o: int) -> int:
    return -(-o // OCB) * OCB


class Runs(NamedTuple):
    """Where one micro-kernel call reads, in elements: `runs` runs of its pixels' input, x_run apart, each
    against its own weight block, w_run apart; the PX pixels x_stride apart; ksteps k groups per run."""

    x_off: int
    x_stride: int
    w_off: int
    ksteps: int
    runs: int
    x_run: int
    w_run: int


class Epilogue(NamedTuple):
    """Where tile_requantize's outputs go: channels ch .. ch + channels - 1 of the pixels pix .. pix +
    pixels - 1, out_pixel apart from out_off; sum_lane and d: the window sum (see tile_requantize)."""

    ch: int
    channels: int
    sum_lane: int
    d: int
    pix: int
    pixels: int
    out_off: int
    out_pixel: int


def _mac_loop(context, builder, px, x, w, at, start, chains: int = 1):
    """The multiply-accumulate loops of a tile (x, w: operand(); at: the Runs, by name): returns the
    px x 2 sums, begun from `start` ([px][2] vectors; [px][1]: the block's lower half only, its first
    VEC/2 channels)."""
    xoff, xstride, woff, ksteps, runs, xrun, wrun = (
        at.x_off,
        at.x_stride,
        at.w_off,
        at.ksteps,
        at.runs,
        at.x_run,
        at.w_run,
    )
    u8 = x.ty.dtype in (types.uint8, types.int8)
    flip = x.ty.dtype == types.int8  # int8 data: read as uint8 with the sign bit flipped (x + 128)
    i32 = ir.IntType(32)
    vi32 = ir.VectorType(i32, VEC // 2)
    elem = ir.IntType(8 if u8 else 16)
    group = 4 if u8 else 2  # k values per 32-bit lane
    if u8:
        dot = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vi32, [vi32, vi32, vi32]), "llvm.x86.avx512.vpdpbusd.512"
        )
    else:
        vi16 = ir.VectorType(ir.IntType(16), VEC)
        madd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vi32, [vi16, vi16]), _MADD)
    intp = xoff.type

    def const(v):
        return ir.Constant(intp, v)

    def multiply_add(total, xs, wv):
        if u8:
            return builder.call(dot, [total, xs, wv])
        return builder.add(total, builder.call(madd, [builder.bitcast(xs, vi16), builder.bitcast(wv, vi16)]))

    xp = data_ptr(context, builder, x, elem)
    wp = data_ptr(context, builder, w, elem)
    # `chains` sets of sums, k steps dealt round them, summed at the end: one set's multiply-adds would
    # wait on each other's latency where the pixels are few (see CHAINS)
    zero = ir.Constant(vi32, [0] * (VEC // 2))
    sets = [
        [[cgutils.alloca_once_value(builder, v if c == 0 else zero) for v in pixel] for pixel in start]
        for c in range(chains)
    ]

    def step(kk, wbase, xrows, accs):  # k step kk of a run into the sums accs
        wk = builder.gep(wbase, [builder.mul(kk, const(group * OCB))])
        wv = [
            builder.load(
                builder.bitcast(builder.gep(wk, [const(v * OCB * group // 2)]), vi32.as_pointer()), align=1
            )
            for v in range(len(start[0]))
        ]
        at = builder.mul(kk, const(group))
        for p in range(px):
            lane = builder.load(builder.bitcast(builder.gep(xrows[p], [at]), i32.as_pointer()), align=1)
            if flip:  # on the scalar lane (a scalar xor): no vector op beside the multiply-adds
                lane = builder.xor(lane, ir.Constant(i32, 0x80808080 - (1 << 32)))
            one = builder.insert_element(ir.Constant(vi32, None), lane, ir.Constant(i32, 0))
            xs = builder.shuffle_vector(one, ir.Constant(vi32, None), ir.Constant(vi32, [0] * (VEC // 2)))
            for v in range(len(wv)):
                builder.store(multiply_add(builder.load(accs[p][v]), xs, wv[v]), accs[p][v])

    with cgutils.for_range(builder, runs) as run:
        xr = builder.gep(xp, [builder.add(xoff, builder.mul(run.index, xrun))])
        wbase = builder.gep(wp, [builder.add(woff, builder.mul(run.index, wrun))])
        xrows = [builder.gep(xr, [builder.mul(xstride, const(p))]) for p in range(px)]
        dealt = const(0)  # k steps dealt round the sets, the rest to the first
        if chains > 1:
            rounds = builder.udiv(ksteps, const(chains))
            with cgutils.for_range(builder, rounds) as loop:
                for c in range(chains):
                    step(builder.add(builder.mul(loop.index, const(chains)), const(c)), wbase, xrows, sets[c])
            dealt = builder.mul(rounds, const(chains))
        with cgutils.for_range(builder, ksteps, start=dealt) as loop:
            step(loop.index, wbase, xrows, sets[0])
    accs = sets[0]
    for c in range(1, chains):
        for pixel, others in zip(accs, sets[c]):
            for q, o in zip(pixel, others):
                builder.store(builder.add(builder.load(q), builder.load(o)), q)
    return [[builder.load(q) for q in pixel] for pixel in accs]


def _tile_definition(px: int, x_type):
    """The micro-kernel for tiles of px pixels of x_type (uint8: u8s8; int16: s16), the sums stored to
    acc (an intrinsic's definition)."""

    def tile(typingctx, x, w, at, accumulate, acc, acc_off, acc_stride):
        """For the px pixels p and the OCB channels j of one packed block (at: Runs),
            acc[acc_off + p*acc_stride + j] (+)= sum over runs r, k < group*ksteps of
                x[x_off + r*x_run + p*x_stride + k] * w-block at w_off + r*w_run [k, j]
        starting from acc's values if accumulate, else from zero. The sums stay in registers
        across runs (a convolution's filter rows), so acc is written once."""
        if _takes(x.dtype) != x_type:
            return None
        i = types.intp
        sig = types.void(x, w, at, types.boolean, acc, i, i)

        def codegen(context, builder, signature, args):
            x_, w_, at_, accumulate_, acc_, aoff, astride = (
                operand(context, builder, signature, args, k) for k in range(7)
            )
            vi32 = ir.VectorType(ir.IntType(32), VEC // 2)
            ap = data_ptr(context, builder, acc_, ir.IntType(32))
            zero = ir.Constant(vi32, [0] * (VEC // 2))
            ptrs = []
            for p in range(px):
                row = builder.gep(ap, [builder.add(aoff, builder.mul(astride, ir.Constant(aoff.type, p)))])
                ptrs.append(
                    [
                        builder.bitcast(
                            builder.gep(row, [ir.Constant(aoff.type, v * (VEC // 2))]), vi32.as_pointer()
                        )
                        for v in range(2)
                    ]
                )
            start = [
                [builder.select(accumulate_, builder.load(q, align=4), zero) for q in pixel] for pixel in ptrs
            ]
            sums = _mac_loop(context, builder, px, x_, w_, at_, start, CHAINS if px == 1 else 1)
            for p in range(px):
                for v in range(2):
                    builder.store(sums[p][v], ptrs[p][v], align=4)
            return context.get_dummy_value()

        return sig, codegen

    return tile


def _tile_requantize_definition(x_type, px: int = PX):
    """tile_requantize's definition for x of x_type, tiles of px pixels."""
    return lambda typingctx, x, w, at, ep, offsets, out, rq: (
        _tile_requantize(typingctx, x, w, at, ep, offsets, out, rq, px) if _takes(x.dtype) == x_type else None
    )


def _tile_requantize(typingctx, x, w, at, ep, offsets, out, rq, px=PX):
    """The micro-kernel (as tile, over all of k; at: Runs) with requantization fused (ep: Epilogue; rq:
    requantize.Requant): the px pixels' sums for channels ch .. ch + channels - 1 (channels <= OCB) go
    from registers to
        out[out_off + p*out_pixel + j] = requantize(sum + offsets[pix + p])
    for the pixels p < pixels only. d != 0 and sum_lane >= 0: lane sum_lane of this block holds each
    pixel's window sum (a column of ones), and offsets[pix + p] = d * that sum is set first (offsets
    must have room for whole tiles)."""
    sig = types.void(x, w, at, ep, offsets, out, rq)

    if not FUSED:  # AVX-512 IR: without it the convolutions never call this (the code must compile)
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        x_, w_, at_, ep, offsets_, out_, rq_ = (
            operand(context, builder, signature, args, k) for k in range(7)
        )
        v = VectorIR(builder)
        masks = [v.lanes_below(builder.sub(ep.channels, _const(ep.channels, 16 * k))) for k in range(2)]
        rule = rule_of(signature.args[6])
        slots = _block_sums(context, v, (x_, w_, at_), ep, rq_, masks, px, rule)
        _add_window_sums(context, v, ep, offsets_, slots)
        sums = [[builder.load(q) for q in pixel] for pixel in slots]
        _store_requantized(context, v, ep, rq_, out_, sums, masks, rule)
        return context.get_dummy_value()

    return sig, codegen


def _tiles_requantize(typingctx, x, w, at, ep, offsets, out, rq, count, table=None):
    """`count` whole tiles of tile_requantize side by side along a row (at, ep: the first tile's; tile i
    reads from x_off + i*PX*x_stride, writes pixels pix + i*PX on, from out_off + i*PX*out_pixel; the
    pixels from ep.pixels on (counted from the first tile's first) are computed, not stored: a row's
    last tile may be partial, its set-up shared). What depends on the channels alone (bias, masks,
    the requantization's constants, the branches on the halves and on the left shift) is set up once
    for the row, not per tile: where k is short, that set-up is most of a tile's time.
    table (an int32 array, or None): pixel j goes to out_off + table[j], or nowhere where table[j] < 0
    (read for every pixel computed: whole groups of tiles): a strip of a convolution's input rows run
    together, the pixels that straddle two rows computed and not stored (conv.conv2d_strips). count is
    then the tiles that may be read: the strip's pixels in groups of tiles (see _row_loops)."""
    strip = table is not None
    sig = types.void(x, w, at, ep, offsets, out, rq, types.intp, *((table,) if strip else ()))

    if not FUSED:  # (as _tile_requantize)
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        x_, w_, at_, ep, offsets_, out_, rq_, count_ = (
            operand(context, builder, signature, args, k) for k in range(8)
        )
        table_ = operand(context, builder, signature, args, 8) if strip else None
        v = VectorIR(builder)
        rule = rule_of(signature.args[6])
        masks = [v.lanes_below(builder.sub(ep.channels, _const(ep.channels, 16 * k))) for k in range(2)]
        table = rq_.table
        bias = [
            v.load(row_ptr(context, builder, table, BIAS, builder.add(ep.ch, _const(ep.ch, 16 * k)), v.v32), m)
            for k, m in enumerate(masks)
        ] if rule != "double" else [v.splat(0)] * 2  # (the double rule adds its bias in double)
        both = builder.or_(
            builder.icmp_signed(">", ep.channels, _const(ep.channels, 16)),
            builder.icmp_signed(">=", ep.sum_lane, _const(ep.sum_lane, 16)),
        )
        widened = rule in ("reference", "ruy")  # (the other rules' tables have no widen() rows)
        shifting = v.wide_left(context, table) if widened else ir.Constant(ir.IntType(1), 0)
        folded = v.wide_folded(context, table) if widened else ir.Constant(ir.IntType(1), 0)
        with builder.if_else(both) as (upper_too, lower_only):
            for halves, branch in ((2, upper_too), (1, lower_only)):
                with branch, builder.if_else(folded, likely=True) as (fold, unfold):
                    operands = (x_, w_, at_, offsets_, out_, bias)
                    with fold:
                        if widened:
                            packed = _RowPacked(context, v, rq_, ep, masks, halves, out_, rule, table_)
                            _row_loops(builder, packed, operands, count_, ep.pixels, True, strip)
                    if rule == "double":  # (no shifts; few constants: tiles several at once, as _RowPacked)
                        with unfold:
                            half = _RowHalves(context, v, rq_, ep, masks, halves, False, rule, table_)
                            _row_loops(builder, half, operands, count_, ep.pixels, True, strip)
                        continue
                    with unfold, builder.if_else(shifting, likely=False) as (left, plain):
                        for shift, variant in ((True, left), (False, plain)):
                            with variant:
                                half = _RowHalves(context, v, rq_, ep, masks, halves, shift, rule, table_)
                                _row_loops(builder, half, operands, count_, ep.pixels, False, strip)
        return context.get_dummy_value()

    return sig, codegen


def _row_loops(builder, body, operands, count, pixels, paired: bool, strip: bool = False) -> None:
    """A row's `count` tiles by a row body (_RowPacked, _RowHalves): its whole tiles (pixels // PX) first,
    several at once where paired, then the rest one at a time, their stores masked from `pixels` on (a
    partial last tile). Several at once: each weight vector loaded once for all, and 16 sums in flight,
    which the multiply-adds' latency needs: 4 tiles of 16 channels or fewer (16 pixels; 8 pixels had
    ResNet-8's 32 x 32 x 16 -> 16 layers at 9.8 us, now 6.4), else 2 tiles of 32 channels (4 pixels left
    VNNI's ports idle, a 3 x 3 x 32 -> 32 layer 1.63 -> 1.43 ms at batch 64; 3 tiles measured slower).
    strip (see _tiles_requantize): `count` tiles may be read; the tiles left after the whole groups go as one
    more group, its stores masked, where its reads stay within count, else one by one."""
    intp = count.type

    def tiles(start, stop, group: int, masked: bool = False):  # groups start .. stop - 1 of `group` tiles
        with cgutils.for_range(builder, stop, start=start) as loop:
            body.tile(*operands, builder.mul(loop.index, ir.Constant(intp, group * PX)), group * PX, masked)

    whole = builder.sdiv(pixels, ir.Constant(intp, PX))
    whole = builder.select(builder.icmp_signed("<", whole, count), whole, count)
    done = ir.Constant(intp, 0)
    readable = count
    if strip:  # (count: the tiles that may be read; those to compute cover the pixels)
        needed = builder.sdiv(builder.add(pixels, ir.Constant(intp, PX - 1)), ir.Constant(intp, PX))
        count = builder.select(builder.icmp_signed("<", needed, count), needed, count)
    if strip and paired:
        group = ir.Constant(intp, 4 if body.halves == 1 else 2)
        full = builder.sdiv(whole, group)
        groups = builder.sdiv(builder.add(count, builder.sub(group, ir.Constant(intp, 1))), group)
        tiles(done, full, group.constant)
        fits_read = builder.icmp_signed("<=", builder.mul(groups, group), readable)
        with builder.if_else(fits_read) as (fits, short):
            with fits:
                tiles(full, groups, group.constant, masked=True)
            with short:
                tiles(builder.mul(full, group), count, 1, masked=True)
        return
    for group in ((4, 2) if body.halves == 1 else (2,)) if paired else ():
        start = builder.sdiv(done, ir.Constant(intp, group))  # (done: a multiple of every later group)
        stop = builder.sdiv(whole, ir.Constant(intp, group))
        tiles(start, stop, group)
        done = builder.mul(stop, ir.Constant(intp, group))
    tiles(done, whole, 1)
    tiles(whole, count, 1, masked=True)


def _tile_sums(context, builder, v: VectorIR, operands, ep, offsets_, bias, halves: int, first, px: int = PX):
    """The px pixels of a row from pixel `first` on (see _tiles_requantize): their sums (allocas [px][2],
    begun from the bias, the window sums added) and their Epilogue (pix and out_off moved to them)."""
    x_, w_, at = operands
    tile_at, tile_ep = _tile_places(builder, at, ep, first)
    done = _mac_loop(context, builder, px, x_, w_, tile_at, [bias[:halves]] * px)
    slots = [[cgutils.alloca_once_value(builder, s) for s in pixel] for pixel in done]
    if halves == 1:  # (_add_window_sums adds to both halves)
        for pixel in slots:
            pixel.append(cgutils.alloca_once_value(builder, v.splat(0)))
    _add_window_sums(context, v, tile_ep, offsets_, slots)
    return slots, tile_ep


def _tile_places(builder, at, ep, first):
    """The Runs and Epilogue of a row's pixels from pixel `first` on."""
    tile_at = SimpleNamespace(**vars(at))
    tile_at.x_off = builder.add(at.x_off, builder.mul(first, at.x_stride))
    tile_ep = SimpleNamespace(**vars(ep))
    tile_ep.pix = builder.add(ep.pix, first)
    tile_ep.out_off = builder.add(ep.out_off, builder.mul(first, ep.out_pixel))
    return tile_at, tile_ep


def _destination(context, builder, ep, tile_ep, first, p: int, mask, masked: bool, table):
    """Where pixel first + p of a row goes (an element index of out) and its store mask (mask, or none
    where masked and the pixel lies from ep.pixels on); with a table (see _tiles_requantize), where it
    says, none where it says nowhere or from ep.pixels on."""
    intp = ep.out_off.type
    if table is None:
        at = builder.add(tile_ep.out_off, builder.mul(ep.out_pixel, ir.Constant(intp, p)))
        return at, _stored(builder, ep, first, p, mask) if masked else mask
    j = builder.add(first, ir.Constant(intp, p))
    place = builder.load(builder.gep(data_ptr(context, builder, table, ir.IntType(32)), [j]), align=4)
    place = builder.sext(place, intp)
    inside = builder.icmp_signed(">=", place, ir.Constant(intp, 0))
    if masked:
        inside = builder.and_(inside, builder.icmp_signed("<", j, ep.pixels))
    none = ir.Constant(mask.type, [0] * mask.type.count)
    return builder.add(ep.out_off, place), builder.select(inside, mask, none)


# packs of 4 int32 vectors to one of bytes: each 4-byte group's place after vpackssdw then vpack[su]swb
# (both work within 128-bit lanes) -> its place in order (see _RowPacked.tile)
_UNPACK = [4 * q + p for p in range(4) for q in range(4)]


class _RowPacked:
    """_tiles_requantize's loop body where widen()'s WIDE_Z folds the zero point into the floor: the
    results + zero point packed to bytes with saturation four vectors at a time (vpackssdw, then
    vpacksswb for int8 or vpackuswb for uint8: that saturation is the clamp to the type's range), clamped
    to [lo, hi] as bytes, 64 at a time, and stored as whole pixels: the tail of 16 outputs costs about a
    third of requantize_wide's (its clamp, zero point and narrowing store)."""

    def __init__(self, context, v: VectorIR, rq_, ep, masks, halves: int, out_, rule: str, table=None):
        builder = v.b
        self.context, self.v, self.ep, self.halves, self.table = context, v, ep, halves, table
        self.signed = out_.ty.dtype == types.int8
        self.params = [
            v.wide_params(context, rq_.table, builder.add(ep.ch, _const(ep.ch, 16 * k)), rule, folded=True)
            for k in range(halves)
        ]
        v8x64 = ir.VectorType(ir.IntType(8), 64)

        def bytes_of(value):
            one = builder.insert_element(ir.Constant(v8x64, None), builder.trunc(value, ir.IntType(8)), v.i32(0))
            return builder.shuffle_vector(
                one, ir.Constant(v8x64, None), ir.Constant(ir.VectorType(v.i32, 64), [0] * 64)
            )

        self.lo, self.hi = bytes_of(rq_.lo), bytes_of(rq_.hi)
        # the store masks: a pixel's 32 channels (two halves) or 16
        lanes = list(range(32))
        self.mask = builder.shuffle_vector(masks[0], masks[1], ir.Constant(ir.VectorType(v.i32, 32), lanes))
        if halves == 1:
            self.mask = masks[0]
        module = builder.module
        v16x32 = ir.VectorType(ir.IntType(16), 32)
        self._pack16 = cgutils.get_or_insert_function(
            module, ir.FunctionType(v16x32, [v.v32, v.v32]), "llvm.x86.avx512.packssdw.512"
        )
        name = "llvm.x86.avx512.packsswb.512" if self.signed else "llvm.x86.avx512.packuswb.512"
        self._pack8 = cgutils.get_or_insert_function(module, ir.FunctionType(v8x64, [v16x32, v16x32]), name)
        width = 32 if halves == 2 else 16
        vstore = ir.VectorType(ir.IntType(8), width)
        self._store = cgutils.get_or_insert_function(
            module,
            ir.FunctionType(
                ir.VoidType(), [vstore, vstore.as_pointer(), v.i32, ir.VectorType(ir.IntType(1), width)]
            ),
            f"llvm.masked.store.v{width}i8.p0",
        )
        self.vstore = vstore

    def _bytes(self, a, b, c, d):
        """Four int32 vectors to one vector of 64 bytes, saturated, clamped to [lo, hi], in order a, b, c,
        d (each 16 lanes)."""
        builder = self.v.b
        packed = builder.call(
            self._pack8, [builder.call(self._pack16, [a, b]), builder.call(self._pack16, [c, d])]
        )
        if self.signed:
            below, above = builder.icmp_signed("<", packed, self.lo), builder.icmp_signed(">", packed, self.hi)
        else:
            below, above = builder.icmp_unsigned("<", packed, self.lo), builder.icmp_unsigned(">", packed, self.hi)
        packed = builder.select(above, self.hi, builder.select(below, self.lo, packed))
        groups = builder.bitcast(packed, self.v.v32)
        return builder.shuffle_vector(groups, ir.Constant(self.v.v32, None), ir.Constant(self.v.v32, _UNPACK))

    def tile(self, x_, w_, at, offsets_, out_, bias, first, px: int, masked: bool) -> None:
        """The px pixels (a multiple of 4) from pixel `first` of the row on; masked: none stored from
        ep.pixels on."""
        context, v, ep = self.context, self.v, self.ep
        builder = v.b
        operands = (x_, w_, at)
        slots, tile_ep = _tile_sums(context, builder, v, operands, ep, offsets_, bias, self.halves, first, px)
        r = [[v.floor_wide(builder.load(slots[p][k]), self.params[k]) for k in range(self.halves)] for p in range(px)]
        outp = data_ptr(context, builder, out_)
        per = 4 * self.halves  # 4-byte groups per pixel: 8 (32 channels) or 4
        for group in range(0, px, 2 if self.halves == 2 else 4):
            flat = [q for p in range(group, group + 4 // self.halves) for q in r[p]]
            groups = self._bytes(*flat)
            for p in range(4 // self.halves):
                part = builder.shuffle_vector(
                    groups,
                    ir.Constant(v.v32, None),
                    ir.Constant(ir.VectorType(v.i32, per), list(range(p * per, (p + 1) * per))),
                )
                at_pixel, mask = _destination(
                    context, builder, ep, tile_ep, first, group + p, self.mask, masked, self.table
                )
                ptr = builder.bitcast(builder.gep(outp, [at_pixel]), self.vstore.as_pointer())
                builder.call(self._store, [builder.bitcast(part, self.vstore), ptr, v.i32(1), mask])


class _RowHalves:
    """_tiles_requantize's loop body for one variant (halves multiplied, left shift or not): the
    requantization's constants loaded once, before the loop."""

    def __init__(self, context, v: VectorIR, rq_, ep, masks, halves: int, shift: bool, rule: str, table=None):
        builder = v.b
        self.context, self.v, self.ep, self.masks, self.halves, self.rule = context, v, ep, masks, halves, rule
        self.table = table
        self.zp, self.lo, self.hi = v.broadcast(rq_.out_zp), v.broadcast(rq_.lo), v.broadcast(rq_.hi)
        self.params = []
        for k in range(halves):
            ch = builder.add(ep.ch, _const(ep.ch, 16 * k))
            if rule == "fp32":
                self.params.append((v.params(context, rq_.table, ch, masks[k]), None))
                continue
            if rule == "double":
                self.params.append(tuple(v.load_doubles(context, rq_.table, row, ch, masks[k]) for row in DOUBLE_ROWS))
                continue
            left = v.load(row_ptr(context, builder, rq_.table, LEFT, ch, v.v32), masks[k]) if shift else None
            self.params.append((v.wide_params(context, rq_.table, ch, rule), left))

    def tile(self, x_, w_, at, offsets_, out_, bias, first, px: int, masked: bool) -> None:
        """The px pixels from pixel `first` of the row on (as _RowPacked.tile)."""
        context, v, ep = self.context, self.v, self.ep
        builder = v.b
        intp = ep.out_off.type
        tile_at, tile_ep = _tile_places(builder, at, ep, first)
        done = _mac_loop(context, builder, px, x_, w_, tile_at, [bias[: self.halves]] * px)
        slots = [[cgutils.alloca_once_value(builder, s) for s in pixel] for pixel in done]
        if self.halves == 1:  # (_add_window_sums adds to both halves)
            for pixel in slots:
                pixel.append(cgutils.alloca_once_value(builder, v.splat(0)))
        _add_window_sums(context, v, tile_ep, offsets_, slots)
        outp = data_ptr(context, builder, out_)
        for k in range(self.halves):
            if k == 1:
                upper = builder.icmp_signed(">", ep.channels, ir.Constant(intp, 16))
                ctx = builder.if_then(upper)
                ctx.__enter__()
            params, second = self.params[k]  # (the LEFT row, or the double rule's scales)
            for p in range(px):
                s = builder.load(slots[p][k])
                if self.rule == "fp32":
                    r = v.requantize(s, params, self.zp, self.lo, self.hi, self.rule)
                elif self.rule == "double":
                    r = v.requantize_double(s, params, second, self.zp, self.lo, self.hi)
                else:
                    r = v.requantize_wide(s, params, self.zp, self.lo, self.hi, second)
                pixel, mask = _destination(
                    context, builder, ep, tile_ep, first, p, self.masks[k], masked, self.table
                )
                ptr = builder.gep(outp, [builder.add(pixel, ir.Constant(intp, 16 * k))])
                v.store8(r, builder.bitcast(ptr, v.v8.as_pointer()), mask)
            if k == 1:
                ctx.__exit__(None, None, None)


def _stored(builder, ep, first, p: int, mask):
    """The store mask of pixel first + p of a row's tiles (see _tiles_requantize): none from ep.pixels on."""
    inside = builder.icmp_signed("<", builder.add(first, ir.Constant(first.type, p)), ep.pixels)
    return builder.select(inside, mask, ir.Constant(mask.type, [0] * mask.type.count))


def _const(like, value: int):
    return ir.Constant(like.type, value)


def _block_sums(context, v: VectorIR, operands, ep, rq_, masks, px: int, rule: str) -> list:
    """tile_requantize's sums (allocas [px][2]), begun from the bias (the sum lane's is zero: beyond
    the channels). A block of 16 channels or fewer (oc <= 16, or the last block's rest), its sum lane (if
    any) among them, multiplies its lower half only."""
    builder = v.b
    x_, w_, at_ = operands
    table = rq_.table
    bias = [
        v.load(row_ptr(context, builder, table, BIAS, builder.add(ep.ch, _const(ep.ch, 16 * k)), v.v32), m)
        for k, m in enumerate(masks)
    ] if rule != "double" else [v.splat(0)] * 2  # (the double rule adds its bias in double)
    slots = [[cgutils.alloca_once_value(builder, v.splat(0)) for _ in range(2)] for _ in range(px)]
    both = builder.or_(
        builder.icmp_signed(">", ep.channels, _const(ep.channels, 16)),
        builder.icmp_signed(">=", ep.sum_lane, _const(ep.sum_lane, 16)),
    )
    with builder.if_else(both) as (upper_too, lower_only):
        for halves, branch in ((2, upper_too), (1, lower_only)):
            with branch:
                done = _mac_loop(context, builder, px, x_, w_, at_, [bias[:halves]] * px)
                for p in range(px):
                    for k in range(halves):
                        builder.store(done[p][k], slots[p][k])
    return slots


def _add_window_sums(context, v: VectorIR, ep, offsets_, slots) -> None:
    """d != 0 (the weights' offset): each pixel's d * window sum joins its sums in slots, from the sum
    lane (then stored to offsets first) or from offsets. Nothing where d == 0."""
    builder = v.b
    offs = data_ptr(context, builder, offsets_)
    has_sum = builder.icmp_signed(">=", ep.sum_lane, _const(ep.sum_lane, 0))
    lane = builder.trunc(builder.srem(ep.sum_lane, _const(ep.sum_lane, 16)), v.i32)
    upper = builder.icmp_signed(">=", ep.sum_lane, _const(ep.sum_lane, 16))
    with builder.if_then(builder.icmp_signed("!=", ep.d, _const(ep.d, 0)), likely=False):
        for p in range(len(slots)):
            sums = [builder.load(q) for q in slots[p]]
            slot = builder.gep(offs, [builder.add(ep.pix, _const(ep.pix, p))])
            with builder.if_then(has_sum, likely=False):
                total = builder.select(
                    upper, builder.extract_element(sums[1], lane), builder.extract_element(sums[0], lane)
                )
                builder.store(builder.mul(total, builder.trunc(ep.d, v.i32)), slot)
            offset = v.broadcast(builder.load(slot))
            for k in range(2):
                builder.store(builder.add(sums[k], offset), slots[p][k])


def _store_requantized(context, v: VectorIR, ep, rq_, out_, sums, masks, rule: str) -> None:
    """tile_requantize's stores: the sums [px][2] requantized by rule (see requantize.VectorIR), the
    upper half where channels > 16, pixels < ep.pixels only. The reference and ruy rules read widen()'s
    table, in two versions: with the left shift and (the usual) without."""
    builder = v.b
    intp = ep.out_off.type
    outp = data_ptr(context, builder, out_)
    zp, lo, hi = v.broadcast(rq_.out_zp), v.broadcast(rq_.lo), v.broadcast(rq_.hi)

    def requantize_half(k, shift):  # channels ch + 16k .. ch + 16k + 15 of the pixels
        ch = builder.add(ep.ch, ir.Constant(intp, 16 * k))
        if rule == "fp32":
            params = v.params(context, rq_.table, ch, masks[k])
        elif rule == "double":
            bias, scale = (v.load_doubles(context, rq_.table, row, ch, masks[k]) for row in DOUBLE_ROWS)
        else:
            wide = v.wide_params(context, rq_.table, ch, rule)
            left = v.load(row_ptr(context, builder, rq_.table, LEFT, ch, v.v32), masks[k]) if shift else None
        for p in range(len(sums)):
            if rule == "fp32":
                r = v.requantize(sums[p][k], params, zp, lo, hi, rule)
            elif rule == "double":
                r = v.requantize_double(sums[p][k], bias, scale, zp, lo, hi)
            else:
                r = v.requantize_wide(sums[p][k], wide, zp, lo, hi, left)
            pixel = builder.add(builder.mul(ep.out_pixel, ir.Constant(intp, p)), ir.Constant(intp, 16 * k))
            inside = builder.icmp_signed("<", ir.Constant(intp, p), ep.pixels)
            store_mask = builder.select(inside, masks[k], ir.Constant(v.vmask, [0] * 16))
            at = builder.gep(outp, [builder.add(ep.out_off, pixel)])
            v.store8(r, builder.bitcast(at, v.v8.as_pointer()), store_mask)

    def requantize_block(shift):
        requantize_half(0, shift)
        with builder.if_then(builder.icmp_signed(">", ep.channels, ir.Constant(intp, 16))):
            requantize_half(1, shift)

    if rule in ("fp32", "double"):  # (no left shift: widen()'s rows alone have one)
        requantize_block(False)
        return
    with builder.if_else(v.wide_left(context, rq_.table), likely=False) as (shifting, plain):
        with shifting:
            requantize_block(True)
        with plain:
            requantize_block(False)


@njit(cache=True)
def _portable(px, x, w, at, accumulate, acc, acc_off, acc_stride):
    """The int16 micro-kernel in plain loops, for CPUs without AVX2 (OCB = 16 there; the tests also
    run it on this CPU's OCB)."""
    for p in range(px):
        for j in range(OCB):
            s = acc[acc_off + p * acc_stride + j] if accumulate else 0
            for r in range(at.runs):
                for kk in range(2 * at.ksteps):
                    wi = at.w_off + r * at.w_run + (kk // 2) * 2 * OCB + j * 2 + kk % 2
                    s += np.int32(x[at.x_off + r * at.x_run + p * at.x_stride + kk]) * np.int32(w[wi])
            acc[acc_off + p * acc_stride + j] = s


@njit(cache=True)
def gemm_s16_4x16c2_portable(x, w, at, accumulate, acc, acc_off, acc_stride):
    _portable(PX, x, w, at, accumulate, acc, acc_off, acc_stride)


@njit(cache=True)
def gemm_s16_1x16c2_portable(x, w, at, accumulate, acc, acc_off, acc_stride):
    _portable(1, x, w, at, accumulate, acc, acc_off, acc_stride)


# The micro-kernels by name, as XNNPACK names its own: operand types (x then w), pixels x channels,
# k values per 32-bit lane, instruction set. u8s8 needs VNNI, the requantizing ones AVX-512.
U8, S16 = types.uint8, types.int16


def _takes(dtype):
    """The micro-kernel form for data of dtype: int8 data takes the uint8 one, its sign bits flipped."""
    return U8 if dtype == types.int8 else dtype


gemm_u8s8_4x32c4_vnni = intrinsic(_tile_definition(PX, U8))
gemm_u8s8_1x32c4_vnni = intrinsic(_tile_definition(1, U8))
gemm_u8s8_8x32c4_vnni = intrinsic(_tile_definition(2 * PX, U8))
gemm_requantize_u8s8_4x32c4_vnni = intrinsic(_tile_requantize_definition(U8))
gemm_requantize_s16_4x32c2_avx512 = intrinsic(_tile_requantize_definition(S16))
if VEC == 32:
    gemm_s16_4x32c2_avx512 = intrinsic(_tile_definition(PX, S16))
    gemm_s16_1x32c2_avx512 = intrinsic(_tile_definition(1, S16))
elif _MADD:
    gemm_s16_4x16c2_avx2 = intrinsic(_tile_definition(PX, S16))
    gemm_s16_1x16c2_avx2 = intrinsic(_tile_definition(1, S16))


def _by_x_type(u8_definition, s16_definition):
    """The definition of an intrinsic that is u8_definition's for uint8 x, s16_definition's else."""

    def definition(typingctx, x, w, at, a, b, c, d):
        chosen = u8_definition if _takes(x.dtype) == U8 else s16_definition
        return chosen(typingctx, x, w, at, a, b, c, d)

    return definition


# what the convolutions call: the variant for their data's type, chosen when Numba types the call
tile_requantize = intrinsic(_by_x_type(_tile_requantize_definition(U8), _tile_requantize_definition(S16)))
tiles_requantize = intrinsic(  # whole tiles along a row, the channels' set-up once (conv.conv2d)
    lambda typingctx, x, w, at, ep, offsets, out, rq, count: _tiles_requantize(
        typingctx, x, w, at, ep, offsets, out, rq, count
    )
)
strip_requantize = intrinsic(  # rows run together, each pixel stored where a table says (conv2d_strips)
    lambda typingctx, x, w, at, ep, offsets, out, rq, count, table: _tiles_requantize(
        typingctx, x, w, at, ep, offsets, out, rq, count, table
    )
)
tile_requantize_one = intrinsic(  # one pixel: a row's last one or two (conv.conv2d)
    _by_x_type(_tile_requantize_definition(U8, 1), _tile_requantize_definition(S16, 1))
)
if _MADD:
    tile = intrinsic(_by_x_type(_tile_definition(PX, U8), _tile_definition(PX, S16)))
    tile_one = intrinsic(_by_x_type(_tile_definition(1, U8), _tile_definition(1, S16)))
else:
    tile, tile_one = gemm_s16_4x16c2_portable, gemm_s16_1x16c2_portable
if VEC == 32:  # two tiles' rows at once: 16 sums in registers, each weight vector loaded once for both
    tile_double = intrinsic(_by_x_type(_tile_definition(2 * PX, U8), _tile_definition(2 * PX, S16)))
else:  # (16 sums would not fit AVX2's registers)

    @njit(inline="always", cache=True)
    def tile_double(x, w, at, accumulate, acc, acc_off, acc_stride):
        tile(x, w, at, accumulate, acc, acc_off, acc_stride)
        second = Runs(at.x_off + PX * at.x_stride, at.x_stride, at.w_off, at.ksteps, at.runs, at.x_run, at.w_run)
        tile(x, w, second, accumulate, acc, acc_off + PX * acc_stride, acc_stride)


@njit(inline="always", cache=True)
def gemm_rows(x, kp, rows, w, blocks, acc):
    """acc[r, :] = x[r, :] @ W for r < rows. x, acc flat: x [rows, kp], acc [rows, blocks*OCB];
    kp a multiple of the k group (2 for int16 x, 4 for uint8 x). Rows go 2 * PX at a time, then PX,
    the rest one by one."""
    width = blocks * OCB
    ksteps = kp // (4 // x.itemsize)
    doubles = rows // (2 * PX) * 2 * PX
    for t in range(0, doubles, 2 * PX):
        for b in range(blocks):
            at = Runs(t * kp, kp, b * kp * OCB, ksteps, 1, 0, 0)
            tile_double(x, w, at, False, acc, t * width + b * OCB, width)
    full = rows // PX * PX
    for t in range(doubles, full, PX):
        for b in range(blocks):
            tile(
                x, w, Runs(t * kp, kp, b * kp * OCB, ksteps, 1, 0, 0), False, acc, t * width + b * OCB, width
            )
    for t in range(full, rows):
        for b in range(blocks):
            at = Runs(t * kp, kp, b * kp * OCB, ksteps, 1, 0, 0)
            tile_one(x, w, at, False, acc, t * width + b * OCB, width)
