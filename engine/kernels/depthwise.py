"""DEPTHWISE_CONV_2D's kernel: 16 lanes x 8 (or fewer) pixels per step, the sums in registers.

The kernel reads u = x (+128 for int8) as uint8 from a small ring of padded rows per thread, which it
fills itself as the output rows advance (each input row converted once, while it is hot in the cache;
no separate padding pass, no padded copy of the whole input). A ring row holds a row's pixels with the
padding around, its channels padded to whole vectors of 16 (the extra channels meet zero weights and
are never filled), or, where 16 / channels pixels fit one vector (`group` > 1: 2, 4 or 8 channels,
stride 1 along x), packed as they are: a vector then holds `group` neighbouring pixels, the filter
and the requantization parameters repeated `group` times.
Each product u * w' (w' = filter - its zero point, 9 bits) is one vpmaddwd on int32 lanes whose high
halves are zero on u's side, fused with the add into vpdpwssd where VNNI exists. The input's zero
point u_zp then costs one per-channel constant, u_zp * sum(w'), that prepare folds into the bias
(padding holds u_zp, which adds nothing). The requantization runs on the sums in registers: where
prepare bounds |sum + bias| small enough, in a short exact form (_requantize_short: 14 instructions a
vector of 16 outputs), else in requantize.widen()'s (17).

Quad rows (where the filter minus its zero point fits int8; channels in whole vectors, or packed
pixels): each padded row goes to a staging row, then to the ring as quads (one vpermb each 16 bytes),
one uint32 per (pixel, channel) holding the 4 bytes u at pixels px, px + dw, px + 2dw, px + 3dw (only
the pixels px the outputs start at: every sw-th). One vpdpbusd then takes 4 taps of 16 channels (u8 x
s8, a whole 64-byte load as its memory operand): a 3 x 3 filter is 3 instructions a pixel instead of
9, and the ring's rows, filled once, serve kh output rows. Taps beyond kw meet zero weights.

Work is split into tasks of output rows x channel vectors (DwPlan), so that even a layer of a few
rows spreads over the threads.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.ufunc.parallel import _iget_num_threads

from . import aligned, cpu, requantize
from .irtools import data_ptr, element_ptr, empty_codegen, flat_view, operand, reshaped, retyped
from .kernel import kernel
from .requantize import (
    BIAS,
    LANES,
    RULES,
    Requant,
    RequantFp32,
    RequantRuy,
    VectorIR,
    requantize_pixels,
    rule_of,
    widen,
)

DPX = 8  # pixels per step (a row's last step: 4, or on quad rows exactly its 4 to 7); LANES channels
SIMD = cpu.AVX512BW


class Taps(NamedTuple):
    """Where one depthwise step reads and writes, in elements: x at rows[ky] + x_off + p*x_pixel +
    kx*x_tap, w at w_off + (ky*kw + kx)*w_tap (see _dw_sums); acc (portable step) at acc_off + p*acc_pixel."""

    x_off: int
    x_pixel: int
    x_tap: int
    w_off: int
    w_tap: int
    kh: int
    kw: int
    acc_off: int
    acc_pixel: int


class DwPlan(NamedTuple):
    """How depthwise_conv2d splits and reads: per image, row_chunks ranges of output rows x ch_splits
    ranges of channel vectors (tasks); span: the padded input rows one output row reads ((kh-1)*dh + 1,
    the ring's rows); group: output pixels per vector (1: one pixel's 16 channels)."""

    row_chunks: int
    ch_splits: int
    span: int
    group: int


V8, V16, V32 = (ir.VectorType(ir.IntType(bits), LANES) for bits in (8, 16, 32))


def _zero_sums(builder, dpx: int, init) -> list:
    """dpx int32 vectors of sums, each starting at init (allocas: LLVM keeps them in registers)."""
    return [cgutils.alloca_once_value(builder, init) for _ in range(dpx)]


def _row_start(context, builder, row_offsets, rows_, at_, ky):
    """Where filter row ky reads the input: the step's offset plus that row's offset in the ring."""
    row = builder.load(builder.gep(row_offsets, [ky]))
    return builder.add(at_.x_off, context.cast(builder, row, rows_.ty.dtype, types.intp))


def _dw_sums(context, builder, x_, w_, rows_, at_, dpx: int, init):
    """The dpx x 16 sums of one depthwise step (at_: the Taps, by name), as dpx int32 vectors, each
    from init."""
    v8, v16, v32, intp = V8, V16, V32, at_.x_off.type
    accs, row_offsets = _zero_sums(builder, dpx, init), data_ptr(context, builder, rows_)
    with cgutils.for_range(builder, at_.kh) as ky:
        row_x = _row_start(context, builder, row_offsets, rows_, at_, ky.index)
        row_w = builder.add(at_.w_off, builder.mul(builder.mul(ky.index, at_.kw), at_.w_tap))
        with cgutils.for_range(builder, at_.kw) as kx:
            tap_x = builder.add(row_x, builder.mul(kx.index, at_.x_tap))
            tap_w = builder.add(row_w, builder.mul(kx.index, at_.w_tap))
            wv = builder.load(element_ptr(context, builder, w_, tap_w, v16), align=2)
            w32 = builder.sext(wv, v32)
            for p in range(dpx):
                at = builder.add(tap_x, builder.mul(at_.x_pixel, ir.Constant(intp, p)))
                xv = builder.zext(builder.load(element_ptr(context, builder, x_, at, v8), align=1), v32)
                # both factors fit 16 bits with room to spare: LLVM selects vpmaddwd (vpdpwssd)
                builder.store(builder.add(builder.load(accs[p]), builder.mul(xv, w32)), accs[p])
    return [builder.load(a) for a in accs]


def _dw_sums_fixed(context, builder, x_, w_, rows_, at_, dpx: int, kw: int, sw: int, init):
    """_dw_sums for a window of kw taps, stride sw and no dilation along x (x_tap: a pixel's elements,
    x_pixel = sw * x_tap): each input vector of a filter row loads once for all the (pixel, tap) pairs
    that read it, (dpx - 1) * sw + kw loads instead of dpx * kw."""
    v8, v16, v32, intp = V8, V16, V32, at_.x_off.type
    accs, row_offsets = _zero_sums(builder, dpx, init), data_ptr(context, builder, rows_)
    with cgutils.for_range(builder, at_.kh) as ky:
        row_x = _row_start(context, builder, row_offsets, rows_, at_, ky.index)
        row_w = builder.add(at_.w_off, builder.mul(builder.mul(ky.index, ir.Constant(intp, kw)), at_.w_tap))
        wv = []
        for kx in range(kw):
            tap_w = builder.add(row_w, builder.mul(ir.Constant(intp, kx), at_.w_tap))
            wv.append(builder.sext(builder.load(element_ptr(context, builder, w_, tap_w, v16), align=2), v32))
        sums = [builder.load(a) for a in accs]
        for col in range((dpx - 1) * sw + kw):
            at = builder.add(row_x, builder.mul(at_.x_tap, ir.Constant(intp, col)))
            xv = builder.zext(builder.load(element_ptr(context, builder, x_, at, v8), align=1), v32)
            for p in range(dpx):
                kx = col - p * sw
                if 0 <= kx < kw:
                    sums[p] = builder.add(sums[p], builder.mul(xv, wv[kx]))
        for p in range(dpx):
            builder.store(sums[p], accs[p])
    return [builder.load(a) for a in accs]


def _dw_sums_quads(context, builder, x_, w_, rows_, at_, dpx: int, init):
    """_dw_sums on quad rows (x: uint32, each element 4 taps' bytes along x; w: 4 int8 weights per
    element): at_.kh quads, quad t read at rows[t] + x_off + p*x_pixel, its weights at w_off + t*w_tap;
    one vpdpbusd per (pixel, quad), its input a whole 64-byte load (a memory operand). One flat loop:
    LLVM makes a tight one of it, where nested runtime loops (filter rows x quads) came out slower."""
    intp = at_.x_off.type
    accs, row_offsets = _zero_sums(builder, dpx, init), data_ptr(context, builder, rows_)
    dot = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(V32, [V32, V32, V32]), "llvm.x86.avx512.vpdpbusd.512"
    )
    with cgutils.for_range(builder, at_.kh) as t:
        tap_x = _row_start(context, builder, row_offsets, rows_, at_, t.index)
        tap_w = builder.add(at_.w_off, builder.mul(t.index, at_.w_tap))
        wv = builder.load(element_ptr(context, builder, w_, tap_w, V32), align=4)
        for p in range(dpx):
            at = builder.add(tap_x, builder.mul(at_.x_pixel, ir.Constant(intp, p)))
            xv = builder.load(element_ptr(context, builder, x_, at, V32), align=4)
            builder.store(builder.call(dot, [builder.load(accs[p]), xv, wv]), accs[p])
    return [builder.load(a) for a in accs]


class DwOut(NamedTuple):
    """Where a fused depthwise step's outputs go: lanes 0 .. channels - 1 (channels <= 16; their
    requantization parameters: the table's columns ch ..) of its first `pixels` pixels, out_pixel
    apart from out_off."""

    ch: int
    channels: int
    pixels: int
    out_off: int
    out_pixel: int


def _store_step(context, v: VectorIR, rq_, ep_, out_, sums, params, mask, rule: str) -> None:
    """A step's sums (bias added) requantized by rule to out, pixels p < ep_.pixels. The reference and
    ruy rules: the short form where the table says it is exact (_requantize_short), else
    requantize.widen()'s (each lane's two roundings one 64-bit floor), with the left shift or (the
    usual) without; one runtime branch a step picks the version."""
    builder = v.b
    intp = ep_.out_off.type
    zp, lo, hi = v.broadcast(rq_.out_zp), v.broadcast(rq_.lo), v.broadcast(rq_.hi)
    outp = data_ptr(context, builder, out_)

    def store_all(form: str):
        wide = v.wide_params(context, rq_.table, ep_.ch, rule) if form in ("left", "plain") else None
        for p in range(len(sums)):
            inside = builder.icmp_signed("<", ir.Constant(intp, p), ep_.pixels)
            with builder.if_then(inside, likely=True):
                if form == "fp32":
                    r = v.requantize(sums[p], params, zp, lo, hi, rule)
                elif form == "short":
                    r = _requantize_short(v, sums[p], short, lo, hi, rule)
                else:
                    left = params[requantize.LEFT] if form == "left" else None
                    r = v.requantize_wide(sums[p], wide, zp, lo, hi, left)
                at = builder.add(ep_.out_off, builder.mul(ep_.out_pixel, ir.Constant(intp, p)))
                v.store8(r, builder.bitcast(builder.gep(outp, [at]), v.v8.as_pointer()), mask)

    if rule == "fp32":
        store_all("fp32")
        return
    short = _short_params(context, v, rq_.table, ep_.ch, mask)
    exact = builder.icmp_signed("!=", short.pop("ok"), ir.Constant(v.i32, 0))
    shifting = v.wide_left(context, rq_.table)
    with builder.if_else(exact, likely=True) as (then, otherwise):
        with then:
            store_all("short")
        with otherwise, builder.if_else(shifting, likely=False) as (then_left, then_plain):
            with then_left:
                store_all("left")
            with then_plain:
                store_all("plain")


def _short_params(context, v: VectorIR, table, ch, mask) -> dict:
    """The short form's rows (SHORT_*) for channels ch .. ch + 15 as vectors, and "ok", its flag (i32)."""
    b = v.b
    arr = context.make_array(table.ty)(context, b, table.value)
    rows, columns = cgutils.unpack_tuple(b, arr.shape, 2)
    out = {}
    for row in (SHORT_L1, SHORT_ME, SHORT_MO, SHORT_H, SHORT_R, SHORT_D, SHORT_OK):
        at = b.add(b.mul(b.add(rows, ir.Constant(rows.type, row)), columns), ch)
        ptr = b.gep(arr.data, [at])
        if row == SHORT_OK:
            out["ok"] = b.load(b.gep(arr.data, [b.mul(b.add(rows, ir.Constant(rows.type, row)), columns)]))
        else:
            out[row] = v.load(b.bitcast(ptr, v.v32.as_pointer()), mask)
    return out


def _requantize_short(v: VectorIR, x, f: dict, lo, hi, rule: str):
    """requantize() of x (sums with the bias) in the short form, where _short_rows() found it exact:
    q = SaturatingRoundingDoublingHighMul(x << left, M) is the high dword of (x << (left + 1)) * M + 2**31
    (vpmuldq on even and odd lanes, their high dwords interleaved by one vpermt2d), then
    RoundingDivideByPOT with the zero point in one add and one shift on 16 lanes:
    (q + 2**(right-1) + (zp << right) - [q < 0]) >> right (ruy: no [q < 0]), clamped to [lo, hi]."""
    b, v64 = v.b, v.v64
    x2 = b.call(v._sllv, [x, f[SHORT_L1]])

    def splat64(value):
        return ir.Constant(v64, [value] * (LANES // 2))

    def low(u):  # the low dword of each qword, sign-extended: vpmuldq's operand
        return b.ashr(b.shl(u, splat64(32)), splat64(32))

    x64 = b.bitcast(x2, v64)
    even = b.add(b.mul(low(x64), low(b.bitcast(f[SHORT_ME], v64))), splat64(1 << 31))
    odd = b.add(b.mul(low(b.lshr(x64, splat64(32))), low(b.bitcast(f[SHORT_MO], v64))), splat64(1 << 31))
    order = [k + 1 + (LANES if k % 2 else 0) - (k % 2) for k in range(LANES)]  # the high dwords
    q = b.shuffle_vector(b.bitcast(even, v.v32), b.bitcast(odd, v.v32), ir.Constant(v.v32, order))
    t = b.add(q, f[SHORT_H])
    if rule == "reference":
        t = b.add(t, b.and_(b.ashr(q, v.splat(31)), f[SHORT_D]))
    r = b.ashr(t, f[SHORT_R])
    return v.smin(v.smax(r, lo), hi)


def _step_definition(dpx: int, kw: int = 0, sw: int = 0, quads: bool = False):
    """The fused step of dpx pixels (an intrinsic's definition); kw, sw > 0: for that window width and
    stride along x, without dilation (_dw_sums_fixed; the caller checks); quads: on quad rows
    (_dw_sums_quads: x uint32, w int32)."""

    def step(typingctx, x, w, rows, at, ep, out, rq):
        """out[out_off + p*out_pixel + j] = requantize(sum over ky < kh, kx < kw of
        x[rows[ky] + x_off + p*x_pixel + kx*x_tap + j] * w[w_off + (ky*kw + kx)*w_tap + j])
        for j < channels and p < pixels (at: Taps; ep: DwOut; rq: requantize.Requant, its table's
        column ch + j). x: uint8; w: int16; rows: int64. The sums never leave the registers; pixels
        beyond `pixels` are summed (their reads must stay in x) but neither requantized nor stored."""
        sig = types.void(x, w, rows, at, ep, out, rq)
        if not SIMD:
            return sig, empty_codegen

        def codegen(context, builder, signature, args):
            x_, w_, rows_, at_, ep_, out_, rq_ = (
                operand(context, builder, signature, args, k) for k in range(7)
            )
            v = VectorIR(builder)
            mask = v.lanes_below(ep_.channels)
            params = v.params(context, rq_.table, ep_.ch, mask)
            # quads start their sums at the bias (one add less a vector); the int16 steps at zero, the
            # bias added after (measured: the bias live through their loop costs registers there)
            zero = ir.Constant(V32, [0] * LANES)
            if quads:
                sums = _dw_sums_quads(context, builder, x_, w_, rows_, at_, dpx, params[BIAS])
            elif kw:
                sums = _dw_sums_fixed(context, builder, x_, w_, rows_, at_, dpx, kw, sw, zero)
                sums = [builder.add(a, params[BIAS]) for a in sums]
            else:
                sums = _dw_sums(context, builder, x_, w_, rows_, at_, dpx, zero)
                sums = [builder.add(a, params[BIAS]) for a in sums]
            _store_step(context, v, rq_, ep_, out_, sums, params, mask, rule_of(signature.args[6]))
            return context.get_dummy_value()

        return sig, codegen

    return step


@intrinsic
def _quads16(typingctx, row, quads, src, dst, d):
    """quads[dst + j] = the bytes row[src + j + k*d] for k = 0 .. 3 (k = 0 lowest), j < 16: four 16-byte
    loads interleaved by one byte shuffle into one 64-byte store."""
    sig = types.void(row, quads, types.intp, types.intp, types.intp)
    if not SIMD:
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        row_, quads_, src_, dst_, d_ = (operand(context, builder, signature, args, k) for k in range(5))
        parts = []
        for k in range(4):
            at = builder.add(src_, builder.mul(d_, ir.Constant(d_.type, k)))
            parts.append(builder.load(element_ptr(context, builder, row_, at, V8), align=1))
        i32 = ir.IntType(32)
        ab = builder.shuffle_vector(parts[0], parts[1], ir.Constant(ir.VectorType(i32, 32), list(range(32))))
        cd = builder.shuffle_vector(parts[2], parts[3], ir.Constant(ir.VectorType(i32, 32), list(range(32))))
        mask = [k * 16 + j for j in range(LANES) for k in range(4)]
        if cpu.VBMI:  # the four parts side by side (inserts), then one vpermb: LLVM's own lowering of the
            # shuffle took 8 unpacks and 3 inserts
            v64 = ir.VectorType(ir.IntType(8), 64)
            whole = builder.shuffle_vector(ab, cd, ir.Constant(ir.VectorType(i32, 64), list(range(64))))
            permute = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(v64, [v64, v64]), "llvm.x86.avx512.permvar.qi.512"
            )
            # (the indices xor d's sign, 0: LLVM, not knowing them, keeps the vpermb)
            sign = builder.trunc(builder.ashr(d_, ir.Constant(d_.type, 63)), ir.IntType(8))
            hidden = builder.insert_element(ir.Constant(v64, None), sign, ir.Constant(i32, 0))
            hidden = builder.shuffle_vector(
                hidden, ir.Constant(v64, None), ir.Constant(ir.VectorType(i32, 64), [0] * 64)
            )
            q = builder.call(permute, [whole, builder.xor(ir.Constant(v64, mask), hidden)])
        else:
            q = builder.shuffle_vector(ab, cd, ir.Constant(ir.VectorType(i32, 64), mask))
        ptr = element_ptr(context, builder, quads_, dst_, ir.VectorType(ir.IntType(8), 64))
        builder.store(q, ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen


# XNNPACK's naming: input and weight types, pixels x channels, instruction set
dwconv_requantize_u8s16_8x16_avx512 = intrinsic(_step_definition(8))
dwconv_requantize_u8s16_4x16_avx512 = intrinsic(_step_definition(4))
dwconv_requantize_u8s16_8x16_k3s1_avx512 = intrinsic(_step_definition(8, 3, 1))
dwconv_requantize_u8s8_8x16_avx512vnni = intrinsic(_step_definition(8, quads=True))
dwconv_requantize_u8s8_4x16_avx512vnni = intrinsic(_step_definition(4, quads=True))
# a row's last step on quad rows takes exactly its pixels: kws's rows of 5 had spent 8 pixels' products
# (a 25 x 5 x 64 layer 2.7 -> 2.2 us)
dwconv_requantize_u8s8_5x16_avx512vnni = intrinsic(_step_definition(5, quads=True))
dwconv_requantize_u8s8_6x16_avx512vnni = intrinsic(_step_definition(6, quads=True))
dwconv_requantize_u8s8_7x16_avx512vnni = intrinsic(_step_definition(7, quads=True))


@njit(cache=True)
def dwconv_u8s16_8x16_portable(x, w, rows, acc, at):
    """The sums of a step of DPX pixels x 16 lanes to acc, in plain loops (CPUs without AVX-512)."""
    for p in range(DPX):
        for j in range(LANES):
            s = 0
            for ky in range(at.kh):
                for kx in range(at.kw):
                    u = np.int32(x[rows[ky] + at.x_off + p * at.x_pixel + kx * at.x_tap + j])
                    s += u * np.int32(w[at.w_off + (ky * at.kw + kx) * at.w_tap + j])
            acc[at.acc_off + p * at.acc_pixel + j] = s


# dims: the int64 array of a layer's sizes the kernels read (an array: a named tuple costs about 1 us to
# pass to a compiled function, an array a tenth of that, and small layers run in a few us). Its entries:
# the padded input and the window (as conv.Geometry, c = cp); the input into ring rows (as
# conv.Padding); the DwPlan; the requantization's zero point and clamp (its table goes apart).
# With quad rows (QUAD: 1), KW is the number of quads per filter row and STAGE the bytes of the staging
# row at the start of each thread's ring (see _task).
# pack() appends the requantization table (TABLE: where, in int64 elements; COLUMNS) and the filter
# (TAPS: where; COUNT: its int16 values); RING: the bytes of a thread's scratch before its row offsets.
HP, WP, CP, KH, KW, SH, SW, DH, DW, N, H, W, C, DELTA, FILL, TOP, LEFT, REPEAT = range(18)
ROW_CHUNKS, CH_SPLITS, SPAN, GROUP, OUT_ZP, LO, HI, QUAD, STAGE = range(18, 27)
TABLE, COLUMNS, TAPS, COUNT, RING, ROWS, DIMS = range(27, 34)
QUADS = SIMD and cpu.VNNI  # vpdpbusd: the quad rows' product


def dims(geo, pad, plan: DwPlan, out_zp: int, lo: int, hi: int, stage: int = 0) -> np.ndarray:
    """The dims array of a layer: its conv.Geometry, conv.Padding, DwPlan and requantization bounds;
    stage > 0: quad rows (geo's kw then counts quads), after a staging row of that many bytes."""
    values = (*geo[:9], *pad[:9], *plan, out_zp, lo, hi, int(stage > 0), stage)
    return np.array(values + (0,) * (DIMS - len(values)), np.int64)


def pack(dm: np.ndarray, table: np.ndarray, taps: np.ndarray, ring: int) -> np.ndarray:
    """The one int64 array the kernels read (one argument, not three: each costs its unboxing on every
    call): dims, then the table's and the filter's bytes; ring: the ring's bytes in a thread's scratch.
    table: the requantization's (wide_table())."""
    line = aligned.LINE // 8  # int64 words
    taps_at = -(-(DIMS + -(-table.size // 2)) // line) * line  # the taps' first word: on a cache line
    table_words = taps_at - DIMS
    dm = dm.copy()
    dm[TABLE], dm[COLUMNS], dm[TAPS], dm[COUNT], dm[RING], dm[ROWS] = (
        DIMS,
        table.shape[1],
        DIMS + table_words,
        taps.size,
        ring,
        table.shape[0],
    )
    t = np.zeros(table_words * 2, np.int32)
    t[: table.size] = table.reshape(-1)
    f = np.zeros(-(-taps.size // 4) * 4, np.int16)
    f[: taps.size] = taps
    return aligned.copy(np.concatenate([dm, t.view(np.int64), f.view(np.int64)]))


# The short form's rows (_requantize_short), last in a wide_table(): each channel's left shift + 1,
# multiplier (even lanes: its own; odd lanes: the next channel's, where vpmuldq reads it), the rounding
# term with the zero point, right shift, rounding correction mask; then a row whose first value is 1
# where the short form is exact for every channel (else 0).
SHORT_L1, SHORT_ME, SHORT_MO, SHORT_H, SHORT_R, SHORT_D, SHORT_OK = range(-7, 0)


def wide_table(rq, bound: np.ndarray | None = None) -> np.ndarray:
    """rq's table as the fused steps read it: with requantize.widen()'s rows and the short form's for
    the reference and ruy rules (where the fused steps run: AVX-512), as it is otherwise. bound: per
    channel (table column), the largest |sum + bias| the layer can reach; None: unknown (no short form)."""
    rule = RULES[type(rq)]
    if not SIMD or rule == "fp32":
        return rq.table
    wide = widen(rq.table, rule)
    return np.concatenate([wide, _short_rows(rq, rule, bound)])


def _short_rows(rq, rule: str, bound) -> np.ndarray:
    """The short form's 7 rows (SHORT_*). Exact where, for every channel, x << (left + 1) fits int32
    (x: the sum with the bias, |x| <= bound) and the rounding term with the zero point stays far from
    int32's ends (q, the high product, is at most |x << left| + 1)."""
    t = rq.table
    channels = t.shape[1]
    left, right = t[requantize.LEFT].astype(np.int64), t[requantize.RIGHT].astype(np.int64)
    mult = t[requantize.MULT].astype(np.int64)
    half = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
    rows = np.zeros((7, channels), np.int64)
    rows[SHORT_L1], rows[SHORT_ME], rows[SHORT_R] = left + 1, mult, right
    rows[SHORT_MO, 0 : channels - 1 : 2] = mult[1::2]
    rows[SHORT_H] = half + (np.int64(rq.out_zp) << right)
    if rule == "reference":
        rows[SHORT_D] = np.where(right > 0, -1, 0)
    if bound is not None:
        shifted = np.asarray(bound, np.int64) << left
        big = (shifted << 1 >= 1 << 31) | (shifted + 1 + np.abs(rows[SHORT_H]) >= 1 << 30)
        rows[SHORT_OK, 0] = int(not big.any() and right.max() <= 31 and left.max() < 30)
    return rows.astype(np.uint32).view(np.int32)


@njit(inline="always", cache=True)
def _unpack(c):
    """pack()'s dims, requantization table and filter, as views."""
    dm = c[:DIMS]
    columns, count, rows = dm[COLUMNS], dm[COUNT], dm[ROWS]
    table = reshaped(retyped(c[dm[TABLE] : dm[TAPS]], np.int32)[: rows * columns], (rows, columns))
    taps = retyped(c[dm[TAPS] :], np.int16)[:count]
    return dm, table, taps


@njit(inline="always", cache=True)
def _tasks(dm):
    """The plan's row chunks and channel splits, or one task an image at one thread (a split serves
    the threads, and alone costs rows filled twice and a task's setup)."""
    if _iget_num_threads() == 1:  # (numba.get_num_threads() in a kernel would stop its caching)
        return 1, 1
    return dm[ROW_CHUNKS], dm[CH_SPLITS]


def quad_taps(weights: np.ndarray, lanes: int) -> np.ndarray:
    """Quad rows' filter from weights [kh, kw, channels] (int8 range): [kh, ceil(kw / 4), lanes, 4]
    int8, tap 4g + k of filter row ky at [ky, g, :, k], zero beyond kw and beyond the channels, flat
    as int16 (the kernels' one filter type)."""
    kh, kw, oc = weights.shape
    taps = np.zeros((kh, -(-kw // 4), lanes, 4), np.int8)
    for kx in range(kw):
        taps[:, kx // 4, :oc, kx % 4] = weights[:, kx, :]
    return taps.reshape(-1).view(np.int16)


def quad_stage(wp: int, cp: int, dw: int) -> int:
    """The staging row's bytes: a padded row and the 3 * dw pixels its last quads read beyond it."""
    return -(-(wp + 3 * dw) * cp // 64) * 64 + 64


@kernel
def depthwise_conv2d(x, c, scratch, out):
    """x: the input [N, H, W, C] flattened (int8 or uint8); c: pack() of dims() (the input into ring
    rows of cp channels, `repeat` the depth multiplier; the window; the DwPlan; the output zero point
    and clamp), the table (the reference rule's requantize.params, per lane: channel, or channel
    repeated `group` times) and the filter (int16 [kh, kw, cp], 16 x group values per tap where group >
    1; or quad_taps()); out: [N, OH, OW, OC]. scratch [threads, bytes]: each thread's ring of padded
    rows (dims RING bytes), then where its filter rows are in them (int64), from the plan (allocating
    here costs more than small tasks). depthwise_conv2d_ruy and _fp32: the same with the other rules
    (requantize.RequantRuy, RequantFp32)."""
    dm, table, w = _unpack(c)
    rq = Requant(table, dm[OUT_ZP], dm[LO], dm[HI])
    chunks, splits = _tasks(dm)
    for task in prange(out.shape[0] * chunks * splits):
        _task(x, w, dm, rq, scratch, out, task, chunks, splits)


@kernel
def depthwise_conv2d_ruy(x, c, scratch, out):
    dm, table, w = _unpack(c)
    rq = RequantRuy(table, dm[OUT_ZP], dm[LO], dm[HI])
    chunks, splits = _tasks(dm)
    for task in prange(out.shape[0] * chunks * splits):
        _task(x, w, dm, rq, scratch, out, task, chunks, splits)


@kernel
def depthwise_conv2d_fp32(x, c, scratch, out):
    dm, table, w = _unpack(c)
    rq = RequantFp32(table, dm[OUT_ZP], dm[LO], dm[HI])
    chunks, splits = _tasks(dm)
    for task in prange(out.shape[0] * chunks * splits):
        _task(x, w, dm, rq, scratch, out, task, chunks, splits)


KERNELS = {Requant: depthwise_conv2d, RequantRuy: depthwise_conv2d_ruy, RequantFp32: depthwise_conv2d_fp32}


def _one_task(args: tuple) -> tuple:
    """The serial build's arguments: one task per image (a split serves the threads; alone it costs
    rows filled twice and each task's set-up: str_ww 2 us of its 17 at 2 threads on one)."""
    x, c, scratch, out = args
    c = c.copy()
    c[ROW_CHUNKS] = c[CH_SPLITS] = 1
    return x, c, scratch, out


for _k in KERNELS.values():
    _k.serial_args = _one_task


@njit(inline="always", cache=True)
def _task(x, w, dm, rq, scratch, out, task, row_chunks, ch_splits):
    """Task `task` of depthwise_conv2d: a range of output rows x a range of channel vectors of one image."""
    kh, dh, sh, cp = dm[KH], dm[DH], dm[SH], dm[CP]
    span = dm[SPAN]
    oh = out.shape[1]
    per_image = row_chunks * ch_splits
    slot = dm[WP] * cp
    vectors = max(1, cp // LANES)
    thread = numba.get_thread_id()
    ring, rows = scratch[thread, : dm[RING]], retyped(scratch[thread, dm[RING] :], np.int64)
    b = task // per_image
    r = task % per_image // ch_splits
    s = task % ch_splits
    o0 = s * vectors // ch_splits * LANES
    o1 = min((s + 1) * vectors // ch_splits * LANES, dm[C] * dm[REPEAT])
    filled = r * oh // row_chunks * sh  # the next padded row to fill
    quad, stage = dm[QUAD], dm[STAGE]
    quads, quad_taps = retyped(ring[stage:], np.uint32), retyped(w, np.int32)
    if quad:  # a quad row holds every sw-th pixel, in whole vectors
        slot = -(-(-(-dm[WP] // dm[SW]) * cp) // LANES) * LANES
    for oy in range(r * oh // row_chunks, (r + 1) * oh // row_chunks):
        p0 = oy * sh
        for py in range(max(filled, p0), p0 + span):
            if quad:  # the padded row to the staging row, then its quads to the ring
                _fill_row(x, ring, dm, b, py, 0, o0, o1)
                _fill_quads(ring, quads, (py % span) * slot, dm, o0, o1)
            else:
                _fill_row(x, ring, dm, b, py, (py % span) * slot, o0, o1)
        filled = p0 + span
        if quad:  # one entry per quad: its filter row's ring row, and its place along x
            kq, qx = dm[KW], 4 * dm[DW] // dm[SW] * cp
            for ky in range(kh):
                for g in range(kq):
                    rows[ky * kq + g] = (p0 + ky * dh) % span * slot + g * qx
        else:
            for ky in range(kh):
                rows[ky] = (p0 + ky * dh) % span * slot
        if quad:
            _quad_row(quads, quad_taps, rows, dm, rq, out, b, oy, o0, o1)
        elif SIMD:  # requantized in registers, straight to out
            _fused_row(ring, w, rows, dm, rq, out, b, oy, o0, o1)
        else:
            _portable_row(ring, w, rows, dm, rq, out[b, oy])


@njit(inline="always", cache=True)
def _fill_row(x, ring, dm, b, py, at, o0, o1):
    """Padded row py of image b, channels o0 .. o1 - 1, into ring[at:]: u = x + delta (each input channel
    `repeat` times), `fill` in the padding. Indices are unsigned: a signed one keeps Numba's
    negative-index check inside the loop, which then does not vectorize (see conv.pad_input)."""
    h, w, c, top, left, repeat, wp, cp = dm[H], dm[W], dm[C], dm[TOP], dm[LEFT], dm[REPEAT], dm[WP], dm[CP]
    delta, fill = np.int16(dm[DELTA]), np.uint8(dm[FILL])
    iy = py - top
    if iy < 0 or iy >= h:
        _fill_pixels(ring, at, 0, wp, cp, o0, o1, fill)
        return
    _fill_pixels(ring, at, 0, left, cp, o0, o1, fill)
    _fill_pixels(ring, at, left + w, wp, cp, o0, o1, fill)
    src = np.uint64((b * h + iy) * w * c)
    dst = np.uint64(at + left * cp)
    if repeat == 1 and cp == c and o0 == 0 and o1 == c:  # one contiguous run
        for j in range(np.uint64(w * c)):
            ring[dst + j] = np.int16(x[src + j]) + delta
        return
    for xx in range(w):
        s0, d0 = src + np.uint64(xx * c), dst + np.uint64(xx * cp)
        if repeat == 1:  # (a loop of its own: the inner loop over r would stop vectorization)
            for j in range(np.uint64(o0), np.uint64(o1)):
                ring[d0 + j] = np.int16(x[s0 + j]) + delta
            continue
        for o in range(o0, o1):
            ring[d0 + np.uint64(o)] = np.int16(x[s0 + np.uint64(o // repeat)]) + delta


@njit(inline="always", cache=True)
def _fill_pixels(ring, at, px0, px1, cp, o0, o1, fill):
    """ring[at + px*cp + o] = fill for px0 <= px < px1, o0 <= o < o1."""
    if o0 == 0 and o1 == cp:
        for j in range(np.uint64(at + px0 * cp), np.uint64(at + px1 * cp)):
            ring[j] = fill
        return
    for px in range(px0, px1):
        for j in range(np.uint64(at + px * cp + o0), np.uint64(at + px * cp + o1)):
            ring[j] = fill


@njit(inline="always", cache=True)
def _fill_quads(row, quads, at, dm, o0, o1):
    """quads[at + j*cp + o] = the bytes row[(j*sw + k*dw)*cp + o] for k = 0 .. 3 (little-endian: k = 0
    lowest), for the channels o0 <= o < o1 (in whole vectors of 16: the ring's rows leave room) of the
    pixels j*sw the outputs start at: the 4 taps along x that one vpdpbusd takes, every pixel that
    begins a quad (sw divides 4*dw, or one quad per filter row) and no other."""
    wp, cp, sw = dm[WP], dm[CP], dm[SW]
    d = dm[DW] * cp
    if sw == 1 and o0 == 0 and o1 == cp:  # one run over the whole row
        for i in range(0, wp * cp, LANES):
            _quads16(row, quads, i, at + i, d)
        return
    for j in range(-(-wp // sw)):
        for o in range(o0, o1, LANES):
            _quads16(row, quads, j * sw * cp + o, at + j * cp + o, d)


@njit(inline="always", cache=True)
def _quad_step(pixels, xr, w, rows, at, ep, flat, rq):
    """The quad step for min(pixels, DPX) pixels (4 for 4 or fewer)."""
    if pixels <= 4:
        dwconv_requantize_u8s8_4x16_avx512vnni(xr, w, rows, at, ep, flat, rq)
    elif pixels == 5:
        dwconv_requantize_u8s8_5x16_avx512vnni(xr, w, rows, at, ep, flat, rq)
    elif pixels == 6:
        dwconv_requantize_u8s8_6x16_avx512vnni(xr, w, rows, at, ep, flat, rq)
    elif pixels == 7:
        dwconv_requantize_u8s8_7x16_avx512vnni(xr, w, rows, at, ep, flat, rq)
    else:
        dwconv_requantize_u8s8_8x16_avx512vnni(xr, w, rows, at, ep, flat, rq)


@njit(inline="always", cache=True)
def _quad_row(xr, w, rows, dm, rq, out, b, oy, o0, o1):
    """_fused_row on quad rows (xr: uint32; w: int32, 4 taps an element; rows: each quad's offset):
    channels in whole vectors, or `group` pixels of oc = cp channels a vector (stride 1)."""
    cp, quads, group = dm[CP], dm[KH] * dm[KW], dm[GROUP]
    oh, ow, oc = out.shape[1], out.shape[2], out.shape[3]
    flat = flat_view(out)
    row = (b * oh + oy) * ow * oc
    if group > 1:  # a vector of `group` pixels: the quads of 16 bytes of the row, 16 bytes apart
        full = -(-ow // group)  # the last vector's pixels beyond ow are summed, not stored
        for t in range(0, full, DPX):
            at = Taps(t * LANES, LANES, 0, 0, LANES, quads, 1, 0, 0)
            pixels = min(DPX, ow // group - t)
            ep = DwOut(0, LANES, pixels, row + t * LANES, LANES)
            _quad_step(full - t, xr, w, rows, at, ep, flat, rq)
            if ow % group and t + DPX >= full:  # the last pixels, fewer than a vector's
                at = Taps((full - 1) * LANES, LANES, 0, 0, LANES, quads, 1, 0, 0)
                ep = DwOut(0, ow % group * oc, 1, row + (full - 1) * LANES, LANES)
                dwconv_requantize_u8s8_4x16_avx512vnni(xr, w, rows, at, ep, flat, rq)
        return
    for cb in range(o0, o1, LANES):
        for t in range(0, ow, DPX):
            at = Taps(t * cp + cb, cp, 0, cb, cp, quads, 1, 0, 0)
            ep = DwOut(cb, min(LANES, oc - cb), min(DPX, ow - t), row + t * oc + cb, oc)
            _quad_step(ow - t, xr, w, rows, at, ep, flat, rq)


@njit(inline="always", cache=True)
def _fused_row(xr, w, rows, dm, rq, out, b, oy, o0, o1):
    """Output row oy of image b, channels o0 .. o1 - 1, from the ring xr (its filter rows at rows)."""
    cp, kh, kw, sw, dw, group = dm[CP], dm[KH], dm[KW], dm[SW], dm[DW], dm[GROUP]
    oh, ow, oc = out.shape[1], out.shape[2], out.shape[3]
    flat = flat_view(out)
    row = (b * oh + oy) * ow * oc
    if group > 1:  # `group` pixels of oc = cp channels per vector; stride 1 along x
        full = ow // group
        for t in range(0, full, DPX):
            at = Taps(t * LANES, LANES, dw * cp, 0, LANES, kh, kw, 0, 0)
            ep = DwOut(0, LANES, min(DPX, full - t), row + t * LANES, LANES)
            if full - t > 4:
                dwconv_requantize_u8s16_8x16_avx512(xr, w, rows, at, ep, flat, rq)
            else:
                dwconv_requantize_u8s16_4x16_avx512(xr, w, rows, at, ep, flat, rq)
        if full * group < ow:  # the last pixels, fewer than a vector's
            at = Taps(full * LANES, LANES, dw * cp, 0, LANES, kh, kw, 0, 0)
            ep = DwOut(0, (ow - full * group) * oc, 1, row + full * LANES, LANES)
            dwconv_requantize_u8s16_4x16_avx512(xr, w, rows, at, ep, flat, rq)
        return
    fixed = (kw * 10 + sw) if dw == 1 else 0  # a window with its own step (_dw_sums_fixed)
    # (3 x 3, stride 2 measured slower that way: its loads are not what limits it)
    for cb in range(o0, o1, LANES):
        for t in range(0, ow, DPX):
            at = Taps(t * sw * cp + cb, sw * cp, dw * cp, cb, cp, kh, kw, 0, 0)
            ep = DwOut(cb, min(LANES, oc - cb), min(DPX, ow - t), row + t * oc + cb, oc)
            if ow - t <= 4:
                dwconv_requantize_u8s16_4x16_avx512(xr, w, rows, at, ep, flat, rq)
            elif fixed == 31:
                dwconv_requantize_u8s16_8x16_k3s1_avx512(xr, w, rows, at, ep, flat, rq)
            else:
                dwconv_requantize_u8s16_8x16_avx512(xr, w, rows, at, ep, flat, rq)


@njit(inline="always", cache=True)
def _portable_row(xr, w, rows, dm, rq, out_row):
    """_fused_row's work (group 1, all channels) in plain loops: sums to acc, then requantized (a CPU
    without AVX-512 is no place for speed: acc is allocated here)."""
    cp, kh, kw, sw, dw = dm[CP], dm[KH], dm[KW], dm[SW], dm[DW]
    ow = out_row.shape[0]
    acc = np.empty(-(-ow // DPX) * DPX * cp, np.int32)
    offsets = np.zeros(ow, np.int32)
    for cb in range(0, cp, LANES):
        for t in range(0, ow, DPX):
            at = Taps(t * sw * cp + cb, sw * cp, dw * cp, cb, cp, kh, kw, t * cp + cb, cp)
            dwconv_u8s16_8x16_portable(xr, w, rows, acc, at)
    requantize_pixels(acc, cp, offsets, rq, out_row)
