"""DEPTHWISE_CONV_2D's kernel: 16 channels x DPX pixels per step, the sums in registers.

The padded input holds u = x (+128 for int8) as uint8, its channels padded to whole vectors of 16
(the extra channels meet zero weights). Each product u * w' (w' = filter - its zero point, 9 bits)
is one vpmaddwd on int32 lanes whose high halves are zero on u's side, fused with the add into
vpdpwssd where VNNI exists. The input's zero point u_zp then costs one per-channel constant,
u_zp * sum(w'), that prepare folds into the bias (padding holds u_zp, which adds nothing).
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .kernel import kernel
from .requantize import requantize_pixels

LANES = 16  # channels per step
DPX = 8  # pixels per step
SIMD = bool(llvm.get_host_cpu_features().get("avx512bw"))


def _ptr(context, builder, aryty, ary, index, ty):
    a = context.make_array(aryty)(context, builder, ary)
    return builder.bitcast(builder.gep(a.data, [index]), ty.as_pointer())


@intrinsic
def _tile(typingctx, x, x_off, x_pixel, x_row, x_tap, w, w_off, w_tap, kh, kw, acc, acc_off, acc_pixel):
    """acc[acc_off + p*acc_pixel + j] = sum over ky < kh, kx < kw of
    x[x_off + p*x_pixel + ky*x_row + kx*x_tap + j] * w[w_off + (ky*kw + kx)*w_tap + j]
    for the DPX pixels p and 16 channels j. x: uint8; w: int16; acc: int32."""
    i = types.intp
    sig = types.void(x, i, i, i, i, w, i, i, i, i, acc, i, i)

    def codegen(context, builder, signature, args):
        xa, xoff, xpix, xrow, xtap, wa, woff, wtap, kh_, kw_, aa, aoff, apix = args
        i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
        v8, v16, v32 = ir.VectorType(i8, LANES), ir.VectorType(i16, LANES), ir.VectorType(i32, LANES)
        tys = signature.args
        intp = xoff.type
        zero = ir.Constant(v32, [0] * LANES)
        accs = [cgutils.alloca_once_value(builder, zero) for _ in range(DPX)]
        with cgutils.for_range(builder, kh_) as ky:
            row_x = builder.add(xoff, builder.mul(ky.index, xrow))
            row_w = builder.add(woff, builder.mul(builder.mul(ky.index, kw_), wtap))
            with cgutils.for_range(builder, kw_) as kx:
                tap_x = builder.add(row_x, builder.mul(kx.index, xtap))
                wv = builder.load(
                    _ptr(context, builder, tys[5], wa, builder.add(row_w, builder.mul(kx.index, wtap)), v16),
                    align=2,
                )
                w32 = builder.sext(wv, v32)
                for p in range(DPX):
                    at = builder.add(tap_x, builder.mul(xpix, ir.Constant(intp, p)))
                    xv = builder.zext(builder.load(_ptr(context, builder, tys[0], xa, at, v8), align=1), v32)
                    # both factors fit 16 bits with room to spare: LLVM selects vpmaddwd (vpdpwssd)
                    builder.store(builder.add(builder.load(accs[p]), builder.mul(xv, w32)), accs[p])
        for p in range(DPX):
            at = builder.add(aoff, builder.mul(apix, ir.Constant(intp, p)))
            builder.store(builder.load(accs[p]), _ptr(context, builder, tys[10], aa, at, v32), align=4)
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def _tile_portable(x, x_off, x_pixel, x_row, x_tap, w, w_off, w_tap, kh, kw, acc, acc_off, acc_pixel):
    for p in range(DPX):
        for j in range(LANES):
            s = 0
            for ky in range(kh):
                for kx in range(kw):
                    u = np.int32(x[x_off + p * x_pixel + ky * x_row + kx * x_tap + j])
                    s += u * np.int32(w[w_off + (ky * kw + kx) * w_tap + j])
            acc[acc_off + p * acc_pixel + j] = s


tile = _tile if SIMD else _tile_portable


@kernel
def depthwise_conv2d(
    xf, hp, wp, cp, w, kh, kw, table, out_zp, lo, hi, sh, sw, dh, dw, chunks, accs, offsets, out
):
    """xf: the padded input [N, Hp, Wp, CP] flattened (CP a multiple of 16, output channel o at
    index o), followed by slack for the pixels a step computes beyond a row's end;
    w: int16 [kh, kw, CP] flattened; out: [N, OH, OW, OC]; table: requantize.params per channel.
    The output rows go to `chunks` tasks. accs [threads, DPX-rounded ow * CP]: each thread's sums,
    from the plan (allocating here costs more than small tasks); offsets: ow zeros."""
    n, oh, ow = out.shape[0], out.shape[1], out.shape[2]
    tasks = n * oh
    chunks = min(tasks, chunks)
    for chunk in prange(chunks):
        acc = accs[numba.get_thread_id()]
        for i in range(chunk * tasks // chunks, (chunk + 1) * tasks // chunks):
            b = i // oh
            oy = i % oh
            base = ((b * hp + oy * sh) * wp) * cp
            for cb in range(0, cp, LANES):
                for t in range(0, ow, DPX):
                    tile(
                        xf,
                        base + t * sw * cp + cb,
                        sw * cp,
                        dh * wp * cp,
                        dw * cp,
                        w,
                        cb,
                        cp,
                        kh,
                        kw,
                        acc,
                        t * cp + cb,
                        cp,
                    )
            requantize_pixels(acc, cp, offsets, table, out_zp, lo, hi, out[b, oy])
