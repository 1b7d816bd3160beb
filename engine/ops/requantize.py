"""Requantization of int32 sums to 8-bit outputs, 16 at a time in int32 lanes.

out = clamp(MultiplyByQuantizedMultiplier(acc + bias, M, shift) + zero point, lo, hi), the
fixed-point rule of fixedpoint.py, for per-channel M and shift. Written plainly, Numba widens
every step to int64 lanes (about 2 cycles an element); here each step stays in int32 lanes,
gemmlowp style, and only the doubling high multiply takes 64-bit products (vpmuldq on the even
and the odd lanes, blended back). Exactness rests on M >= 0 (quantize_multiplier gives 0 or
[2**30, 2**31)), so the high multiply never saturates, and on right shifts <= 31.
"""

from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..fixedpoint import multiply_by_quantized_multiplier

LANES = 16
SIMD = bool(llvm.get_host_cpu_features().get("avx512f"))


@njit(inline="always", cache=True)
def requantize(acc, multiplier, shift, out_zp, lo, hi):
    v = multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zp
    return min(max(v, lo), hi)


def _vector_ptr(context, builder, aryty, ary, index, vty):
    a = context.make_array(aryty)(context, builder, ary)
    return builder.bitcast(builder.gep(a.data, [index]), vty.as_pointer())


@intrinsic
def _requantize16(
    typingctx, acc, acc_start, offset, bias, mult, shift, ch_start, count, out_zp, lo, hi, out, out_start
):
    """out[out_start + j] = requantize(acc[acc_start + j] + offset + bias[ch_start + j], mult[ch_start + j],
    shift[ch_start + j]) for j < count <= 16 (masked loads and stores: nothing beyond is touched)."""
    i = types.intp
    sig = types.void(
        acc, i, types.int64, bias, mult, shift, i, i, types.int64, types.int64, types.int64, out, i
    )

    def codegen(context, builder, signature, args):
        (
            acc_a,
            acc_start_,
            offset_,
            bias_a,
            mult_a,
            shift_a,
            ch_start_,
            count_,
            zp_,
            lo_,
            hi_,
            out_a,
            out_start_,
        ) = args
        i1, i8, i32, i64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
        v32, v64, v8 = ir.VectorType(i32, LANES), ir.VectorType(i64, LANES // 2), ir.VectorType(i8, LANES)
        vmask = ir.VectorType(i1, LANES)
        tys = signature.args

        def splat32(value):
            return ir.Constant(v32, [value] * LANES)

        def splat64(value):
            return ir.Constant(v64, [value] * (LANES // 2))

        def broadcast(scalar):
            one = builder.insert_element(
                ir.Constant(v32, None), builder.trunc(scalar, i32), ir.Constant(i32, 0)
            )
            return builder.shuffle_vector(one, ir.Constant(v32, None), ir.Constant(v32, [0] * LANES))

        lanes = ir.Constant(v32, list(range(LANES)))
        mask = builder.icmp_signed("<", lanes, broadcast(count_))
        load_fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(v32, [v32.as_pointer(), i32, vmask, v32]),
            "llvm.masked.load.v16i32.p0",
        )
        store_fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [v8, v8.as_pointer(), i32, vmask]),
            "llvm.masked.store.v16i8.p0",
        )

        def load(k, a, start):
            ptr = _vector_ptr(context, builder, tys[k], a, start, v32)
            return builder.call(load_fn, [ptr, ir.Constant(i32, 4), mask, splat32(0)])

        def smax(a, b):
            return builder.select(builder.icmp_signed(">", a, b), a, b)

        def smin(a, b):
            return builder.select(builder.icmp_signed("<", a, b), a, b)

        x = builder.add(load(0, acc_a, acc_start_), broadcast(offset_))
        x = builder.add(x, load(3, bias_a, ch_start_))
        m, s = load(4, mult_a, ch_start_), load(5, shift_a, ch_start_)
        zero = splat32(0)
        left = smax(s, zero)
        right = smax(builder.sub(zero, s), zero)
        # x << left with C's int32 wrap (fixedpoint.py gives 0 for a count of 32 or more)
        shifted = builder.shl(x, smin(left, splat32(31)))
        x = builder.select(builder.icmp_signed(">", left, splat32(31)), zero, shifted)

        # SaturatingRoundingDoublingHighMul: (x*m + 2**30) >> 31, on even and odd lanes
        def high_mul(a, b):
            # sign-extended low dwords of each qword: LLVM selects vpmuldq
            a64, b64 = builder.bitcast(a, v64), builder.bitcast(b, v64)
            sh = splat64(32)
            prod = builder.mul(builder.ashr(builder.shl(a64, sh), sh), builder.ashr(builder.shl(b64, sh), sh))
            return builder.add(prod, splat64(1 << 30))

        even = builder.bitcast(builder.lshr(high_mul(x, m), splat64(31)), v32)
        odd_x = builder.bitcast(builder.lshr(builder.bitcast(x, v64), splat64(32)), v32)
        odd_m = builder.bitcast(builder.lshr(builder.bitcast(m, v64), splat64(32)), v32)
        odd = builder.bitcast(builder.shl(high_mul(odd_x, odd_m), splat64(1)), v32)
        q = builder.shuffle_vector(
            even, odd, ir.Constant(v32, [i if i % 2 == 0 else LANES + i for i in range(LANES)])
        )
        # RoundingDivideByPOT(q, right): (q >> right) + (remainder > (mask >> 1) + (q < 0))
        pot = builder.sub(builder.shl(splat32(1), right), splat32(1))
        remainder = builder.and_(q, pot)
        threshold = builder.sub(builder.lshr(pot, splat32(1)), builder.ashr(q, splat32(31)))
        up = builder.zext(builder.icmp_signed(">", remainder, threshold), v32)
        r = builder.add(builder.add(builder.ashr(q, right), up), broadcast(zp_))
        r = smin(smax(r, broadcast(lo_)), broadcast(hi_))
        out_ptr = _vector_ptr(context, builder, tys[11], out_a, out_start_, v8)
        builder.call(store_fn, [builder.trunc(r, v8), out_ptr, ir.Constant(i32, 1), mask])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True)
def requantize_row(acc, bias, mult, shift, out_zp, lo, hi, out):
    """out[o] = requantize(acc[o] + bias[o], mult[o], shift[o]) over one pixel's channels, or over
    a whole output row when the per-channel arrays are tiled to the row's length.
    acc, bias, mult, shift: int32; out: int8 or uint8."""
    n = out.shape[0]
    if not SIMD:
        for o in range(n):
            out[o] = requantize(acc[o] + bias[o], mult[o], shift[o], out_zp, lo, hi)
        return
    for o in range(0, n, LANES):
        _requantize16(acc, o, 0, bias, mult, shift, o, min(LANES, n - o), out_zp, lo, hi, out, o)


@njit(cache=True)
def requantize_pixels(acc, width, offsets, bias, mult, shift, out_zp, lo, hi, out):
    """out[p, o] = requantize(acc[p * width + o] + offsets[p] + bias[o], mult[o], shift[o]) for the
    pixels p and channels o of out [P, OC]: the GEMM's rows, width apart, straight to the output."""
    pixels, oc = out.shape
    flat = out.reshape(-1)
    for p in range(pixels):
        if not SIMD:
            for o in range(oc):
                v = acc[p * width + o] + offsets[p] + bias[o]
                flat[p * oc + o] = requantize(v, mult[o], shift[o], out_zp, lo, hi)
            continue
        for o in range(0, oc, LANES):
            count = min(LANES, oc - o)
            _requantize16(
                acc, p * width + o, offsets[p], bias, mult, shift, o, count, out_zp, lo, hi, flat, p * oc + o
            )
