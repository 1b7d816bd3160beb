"""DEPTHWISE_CONV_2D's kernel: 16 channels x DPX pixels per step, the sums in registers.

The padded input holds u = x (+128 for int8) as uint8, its channels padded to whole vectors of 16
(the extra channels meet zero weights). Each product u * w' (w' = filter - its zero point, 9 bits)
is one vpmaddwd on int32 lanes whose high halves are zero on u's side, fused with the add into
vpdpwssd where VNNI exists. The input's zero point u_zp then costs one per-channel constant,
u_zp * sum(w'), that prepare folds into the bias (padding holds u_zp, which adds nothing).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import cpu
from .irtools import data_ptr, element_ptr, empty_codegen, operand
from .kernel import kernel
from .requantize import BIAS, LANES, VectorIR, requantize_pixels, rule_of

DPX = 8  # pixels per step; LANES channels
SIMD = cpu.AVX512BW


class Taps(NamedTuple):
    """Where one depthwise step reads and writes, in elements (see _tile)."""

    x_off: int
    x_pixel: int
    x_row: int
    x_tap: int
    w_off: int
    w_tap: int
    kh: int
    kw: int
    acc_off: int
    acc_pixel: int


def _dw_sums(context, builder, x_, w_, at_):
    """The DPX x 16 sums of one depthwise step (at_: the Taps, by name), as DPX int32 vectors."""
    i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
    v8, v16, v32 = ir.VectorType(i8, LANES), ir.VectorType(i16, LANES), ir.VectorType(i32, LANES)
    intp = at_.x_off.type
    zero = ir.Constant(v32, [0] * LANES)
    accs = [cgutils.alloca_once_value(builder, zero) for _ in range(DPX)]
    with cgutils.for_range(builder, at_.kh) as ky:
        row_x = builder.add(at_.x_off, builder.mul(ky.index, at_.x_row))
        row_w = builder.add(at_.w_off, builder.mul(builder.mul(ky.index, at_.kw), at_.w_tap))
        with cgutils.for_range(builder, at_.kw) as kx:
            tap_x = builder.add(row_x, builder.mul(kx.index, at_.x_tap))
            tap_w = builder.add(row_w, builder.mul(kx.index, at_.w_tap))
            wv = builder.load(element_ptr(context, builder, w_, tap_w, v16), align=2)
            w32 = builder.sext(wv, v32)
            for p in range(DPX):
                at = builder.add(tap_x, builder.mul(at_.x_pixel, ir.Constant(intp, p)))
                xv = builder.zext(builder.load(element_ptr(context, builder, x_, at, v8), align=1), v32)
                # both factors fit 16 bits with room to spare: LLVM selects vpmaddwd (vpdpwssd)
                builder.store(builder.add(builder.load(accs[p]), builder.mul(xv, w32)), accs[p])
    return [builder.load(a) for a in accs]


@intrinsic
def dwconv_u8s16_8x16_avx512(typingctx, x, w, acc, at):
    """acc[acc_off + p*acc_pixel + j] = sum over ky < kh, kx < kw of
    x[x_off + p*x_pixel + ky*x_row + kx*x_tap + j] * w[w_off + (ky*kw + kx)*w_tap + j]
    for the DPX pixels p and 16 channels j (at: Taps). x: uint8; w: int16; acc: int32."""
    sig = types.void(x, w, acc, at)

    def codegen(context, builder, signature, args):
        x_, w_, acc_, at_ = (operand(context, builder, signature, args, k) for k in range(4))
        v32 = ir.VectorType(ir.IntType(32), LANES)
        intp = at_.x_off.type
        sums = _dw_sums(context, builder, x_, w_, at_)
        for p in range(DPX):
            at = builder.add(at_.acc_off, builder.mul(at_.acc_pixel, ir.Constant(intp, p)))
            builder.store(sums[p], element_ptr(context, builder, acc_, at, v32), align=4)
        return context.get_dummy_value()

    return sig, codegen


class DwOut(NamedTuple):
    """Where a fused depthwise step's outputs go: channels ch .. ch + channels - 1 (channels <= 16) of
    its first `pixels` pixels, out_pixel apart from out_off."""

    ch: int
    channels: int
    pixels: int
    out_off: int
    out_pixel: int


@intrinsic
def dwconv_requantize_u8s16_8x16_avx512(typingctx, x, w, at, ep, out, rq):
    """The step of dwconv_u8s16_8x16_avx512 with the requantization fused (ep: DwOut; rq:
    requantize.Requant): out[out_off + p*out_pixel + j] = requantize(sum) for j < channels and
    p < pixels; the sums never leave the registers, the channels' parameters load once."""
    sig = types.void(x, w, at, ep, out, rq)
    if not SIMD:
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        x_, w_, at_, ep_, out_, rq_ = (operand(context, builder, signature, args, k) for k in range(6))
        intp = at_.x_off.type
        sums = _dw_sums(context, builder, x_, w_, at_)
        v = VectorIR(builder)
        mask = v.lanes_below(ep_.channels)
        params = v.params(context, rq_.table, ep_.ch, mask)
        zp, lo, hi = v.broadcast(rq_.out_zp), v.broadcast(rq_.lo), v.broadcast(rq_.hi)
        outp = data_ptr(context, builder, out_)
        none = ir.Constant(v.vmask, [0] * LANES)
        for p in range(DPX):
            r = v.requantize(builder.add(sums[p], params[BIAS]), params, zp, lo, hi, rule_of(signature.args[5]))
            at = builder.add(ep_.out_off, builder.mul(ep_.out_pixel, ir.Constant(intp, p)))
            inside = builder.icmp_signed("<", ir.Constant(intp, p), ep_.pixels)
            v.store8(
                r,
                builder.bitcast(builder.gep(outp, [at]), v.v8.as_pointer()),
                builder.select(inside, mask, none),
            )
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def dwconv_u8s16_8x16_portable(x, w, acc, at):
    for p in range(DPX):
        for j in range(LANES):
            s = 0
            for ky in range(at.kh):
                for kx in range(at.kw):
                    u = np.int32(x[at.x_off + p * at.x_pixel + ky * at.x_row + kx * at.x_tap + j])
                    s += u * np.int32(w[at.w_off + (ky * at.kw + kx) * at.w_tap + j])
            acc[at.acc_off + p * at.acc_pixel + j] = s


# XNNPACK's naming: input and weight types, pixels x channels, instruction set
tile = dwconv_u8s16_8x16_avx512 if SIMD else dwconv_u8s16_8x16_portable


@kernel
def depthwise_conv2d(xf, w, geo, rq, chunks, accs, offsets, out):
    """xf: the padded input [N, Hp, Wp, CP] flattened (CP a multiple of 16, output channel o at
    index o), followed by slack for the pixels a step computes beyond a row's end; geo: its
    conv.Geometry (c = CP); w: int16 [kh, kw, CP] flattened; out: [N, OH, OW, OC]; rq: the
    requantize.Requant, its table per channel. The output rows go to `chunks` tasks. accs [threads,
    DPX-rounded ow * CP]: each thread's sums, from the plan (allocating here costs more than small
    tasks); offsets: ow zeros."""
    hp, wp, cp, kh, kw, sh, sw, dh, dw = geo
    n, oh, ow = out.shape[0], out.shape[1], out.shape[2]
    tasks = n * oh
    chunks = min(tasks, chunks)
    for chunk in prange(chunks):
        acc = accs[numba.get_thread_id()]
        for i in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            b = i // oh
            oy = i % oh
            base = ((b * hp + oy * sh) * wp) * cp
            if SIMD:  # requantized in registers, straight to out
                _fused_row(xf, w, geo, rq, base, out, b, oy)
                continue
            for cb in range(0, cp, LANES):
                for t in range(0, ow, DPX):
                    at = Taps(
                        base + t * sw * cp + cb,
                        sw * cp,
                        dh * wp * cp,
                        dw * cp,
                        cb,
                        cp,
                        kh,
                        kw,
                        t * cp + cb,
                        cp,
                    )
                    tile(xf, w, acc, at)
            requantize_pixels(acc, cp, offsets, rq, out[b, oy])


@njit(inline="always", cache=True)
def _fused_row(xf, w, geo, rq, base, out, b, oy):
    """One output row of depthwise_conv2d, requantized in the step (dwconv_requantize_...)."""
    _, wp, cp, kh, kw, _, sw, dh, dw = geo
    oh, ow, oc = out.shape[1], out.shape[2], out.shape[3]
    flat = out.reshape(-1)
    row = (b * oh + oy) * ow * oc
    for cb in range(0, oc, LANES):
        for t in range(0, ow, DPX):
            at = Taps(base + t * sw * cp + cb, sw * cp, dh * wp * cp, dw * cp, cb, cp, kh, kw, 0, 0)
            ep = DwOut(cb, min(LANES, oc - cb), min(DPX, ow - t), row + t * oc + cb, oc)
            dwconv_requantize_u8s16_8x16_avx512(xf, w, at, ep, flat, rq)
