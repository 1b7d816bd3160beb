"""Requantization of int32 sums to 8-bit outputs, 16 at a time in int32 lanes.

out = clamp(MultiplyByQuantizedMultiplier(acc + bias, M, shift) + zero point, lo, hi), the
fixed-point rule of fixedpoint.py, per output channel. Written plainly, Numba widens every step to
int64 lanes (about 2 cycles an element); here each step stays in int32 lanes, gemmlowp style, and
only the doubling high multiply takes 64-bit products (vpmuldq on the even and the odd lanes,
blended back). What depends on the channel alone is computed once at prepare (params()).
Exactness rests on M >= 0 (quantize_multiplier gives 0 or [2**30, 2**31)), so the high multiply
never saturates, and on right shifts <= 31 (quantize_multiplier's floor is -31).
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ..fixedpoint import multiply_by_quantized_multiplier

LANES = 16
SIMD = bool(llvm.get_host_cpu_features().get("avx512f"))
BIAS, MULT, LEFT, RIGHT, MASK, HALF, SHIFT = range(7)  # rows of a params() table


def params(bias: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """The int32 table [7, channels] the kernels requantize with: bias, multiplier, left shift,
    right shift, the right shift's remainder mask and half of it, and the signed shift itself."""
    shift = shift.astype(np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    mask = (np.int64(1) << right) - 1
    rows = [bias.astype(np.int64), mult.astype(np.int64), left, right, mask, mask >> 1, shift]
    return np.ascontiguousarray(np.stack(rows).astype(np.uint32).view(np.int32))


@njit(inline="always", cache=True)
def requantize(acc, multiplier, shift, out_zp, lo, hi):
    v = multiply_by_quantized_multiplier(acc, multiplier, shift) + out_zp
    return min(max(v, lo), hi)


def _row_ptr(context, builder, aryty, ary, row, col, vty):
    """Pointer to table[row, col] of a C-contiguous 2-D array, as a vector pointer."""
    a = context.make_array(aryty)(context, builder, ary)
    columns = cgutils.unpack_tuple(builder, a.shape, 2)[1]
    index = builder.add(builder.mul(ir.Constant(columns.type, row), columns), col)
    return builder.bitcast(builder.gep(a.data, [index]), vty.as_pointer())


def _vector_ptr(context, builder, aryty, ary, index, vty):
    a = context.make_array(aryty)(context, builder, ary)
    return builder.bitcast(builder.gep(a.data, [index]), vty.as_pointer())


@intrinsic
def _requantize16(typingctx, acc, acc_start, offset, table, ch_start, count, out_zp, lo, hi, out, out_start):
    """out[out_start + j] = requantize(acc[acc_start + j] + offset) with the params() of channel
    ch_start + j, for j < count <= 16 (masked loads and stores: nothing beyond is touched)."""
    i = types.intp
    sig = types.void(acc, i, types.int64, table, i, i, types.int64, types.int64, types.int64, out, i)

    def codegen(context, builder, signature, args):
        acc_a, acc_start_, offset_, table_a, ch_start_, count_, zp_, lo_, hi_, out_a, out_start_ = args
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

        mask = builder.icmp_signed("<", ir.Constant(v32, list(range(LANES))), broadcast(count_))
        masked_load = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(v32, [v32.as_pointer(), i32, vmask, v32]),
            "llvm.masked.load.v16i32.p0",
        )
        masked_store = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [v8, v8.as_pointer(), i32, vmask]),
            "llvm.masked.store.v16i8.p0",
        )
        # a left shift by 32 or more gives 0 here, as in fixedpoint.py (LLVM's shl would be poison)
        sllv = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(v32, [v32, v32]), "llvm.x86.avx512.psllv.d.512"
        )

        def load(ptr):
            return builder.call(masked_load, [ptr, ir.Constant(i32, 4), mask, splat32(0)])

        def param(row):
            return load(_row_ptr(context, builder, tys[3], table_a, row, ch_start_, v32))

        def smax(a, b):
            return builder.select(builder.icmp_signed(">", a, b), a, b)

        def smin(a, b):
            return builder.select(builder.icmp_signed("<", a, b), a, b)

        x = load(_vector_ptr(context, builder, tys[0], acc_a, acc_start_, v32))
        x = builder.add(builder.add(x, broadcast(offset_)), param(BIAS))
        x = builder.call(sllv, [x, param(LEFT)])
        m = param(MULT)

        # SaturatingRoundingDoublingHighMul: (x*m + 2**30) >> 31, on even and odd lanes
        def high_mul(a, b):  # of the low dwords of each qword, sign-extended: vpmuldq
            a64, b64 = builder.bitcast(a, v64), builder.bitcast(b, v64)
            sh = splat64(32)
            prod = builder.mul(builder.ashr(builder.shl(a64, sh), sh), builder.ashr(builder.shl(b64, sh), sh))
            return builder.add(prod, splat64(1 << 30))

        def odd(v):
            return builder.bitcast(builder.lshr(builder.bitcast(v, v64), splat64(32)), v32)

        even_q = builder.bitcast(builder.lshr(high_mul(x, m), splat64(31)), v32)
        odd_q = builder.bitcast(builder.shl(high_mul(odd(x), odd(m)), splat64(1)), v32)
        q = builder.shuffle_vector(
            even_q, odd_q, ir.Constant(v32, [k if k % 2 == 0 else LANES + k for k in range(LANES)])
        )
        # RoundingDivideByPOT: (q >> right) + ((q & mask) > half + (q < 0))
        threshold = builder.sub(param(HALF), builder.ashr(q, splat32(31)))
        up = builder.icmp_signed(">", builder.and_(q, param(MASK)), threshold)
        shifted = builder.ashr(q, param(RIGHT))
        r = builder.select(up, builder.add(shifted, splat32(1)), shifted)
        # clamp before adding the zero point: r + zp may wrap in int32, where C++ computes in int64
        r = smin(smax(r, broadcast(builder.sub(lo_, zp_))), broadcast(builder.sub(hi_, zp_)))
        r = builder.add(r, broadcast(zp_))
        out_ptr = _vector_ptr(context, builder, tys[9], out_a, out_start_, v8)
        builder.call(masked_store, [builder.trunc(r, v8), out_ptr, ir.Constant(i32, 1), mask])
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", cache=True)
def _requantize_scalar(v, table, ch, out_zp, lo, hi):
    return requantize(v + table[BIAS, ch], table[MULT, ch], table[SHIFT, ch], out_zp, lo, hi)


@njit(cache=True)
def requantize_row(acc, table, out_zp, lo, hi, out):
    """out[o] = requantize(acc[o]) with the params() table of channel o: over one pixel's channels,
    or over a whole output row when the table is tiled to the row's length.
    acc: int32; out: int8 or uint8."""
    n = out.shape[0]
    if not SIMD:
        for o in range(n):
            out[o] = _requantize_scalar(acc[o], table, o, out_zp, lo, hi)
        return
    for o in range(0, n, LANES):
        _requantize16(acc, o, 0, table, o, min(LANES, n - o), out_zp, lo, hi, out, o)


@njit(cache=True)
def requantize_pixels(acc, width, offsets, table, out_zp, lo, hi, out):
    """out[p, o] = requantize(acc[p * width + o] + offsets[p]) with the params() table of channel o,
    for the pixels p and channels o of out [P, OC]: the GEMM's rows, width apart, to the output."""
    pixels, oc = out.shape
    flat = out.reshape(-1)
    for p in range(pixels):
        if not SIMD:
            for o in range(oc):
                flat[p * oc + o] = _requantize_scalar(
                    acc[p * width + o] + offsets[p], table, o, out_zp, lo, hi
                )
            continue
        for o in range(0, oc, LANES):
            count = min(LANES, oc - o)
            _requantize16(acc, p * width + o, offsets[p], table, o, count, out_zp, lo, hi, flat, p * oc + o)
