"""Elementwise 8-bit MUL on AVX-512, computed instead of looked up.

The binary 8-bit ops gather table[a_byte * 256 + b_byte] from a 64 Ki-entry table (lookup.py): a
scalar load per element, about 1.2 ns. MUL's reference arithmetic is one requantization of an int32
product,
    out = clamp(zp_out + MultiplyByQuantizedMultiplier((a + off_a) * (b + off_b), m, shift)),
which the GEMM's vector requantization (requantize.VectorIR) does for 16 elements at a time: here it
runs on same-shape operands (x * sigmoid(x) and the like) and on a per-channel operand along the last
axis (tiled as add8's); the rest of a chunk and other broadcasts stay with the table.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .irtools import data_ptr, empty_codegen, operand, retyped
from .kernel import kernel
from .requantize import HALF, LANES, LEFT, MASK, MULT, RIGHT, SIMD, VectorIR


class MulRequant(NamedTuple):
    """The per-tensor constants of an 8-bit MUL: input offsets (minus zero points), the multiplier's
    left and right shifts (0..31 each), its rounding mask and half of it, output zero point, clamp."""

    off_a: int
    off_b: int
    mult: int
    left: int
    right: int
    mask: int
    half: int
    zp: int
    lo: int
    hi: int


def mul_requant(off_a: int, off_b: int, mult: int, shift: int, zp: int, lo: int, hi: int) -> MulRequant:
    """MulRequant for MultiplyByQuantizedMultiplier(., mult, shift) (shift <= 31: see vmul_supported)."""
    left, right = max(shift, 0), max(-shift, 0)
    mask = (1 << right) - 1
    return MulRequant(off_a, off_b, mult, left, right, mask, mask >> 1, zp, lo, hi)


def vmul_supported(shift: int) -> bool:
    """The vector MUL's shifts: the reference takes a left shift modulo 32, the vector one would not."""
    return SIMD and -31 <= shift <= 31


@intrinsic
def vmul_requantize_x8_16_avx512(typingctx, a, a_start, b, b_start, out, start, blocks, q):
    """out[start + i] = clamp(zp + MultiplyByQuantizedMultiplier((a[a_start + i] + off_a) * (b[b_start + i] +
    off_b))) for i < 16 * blocks (q: MulRequant); a, b, out: int8 or uint8, flat."""
    sig = types.void(a, types.intp, b, types.intp, out, types.intp, types.intp, q)
    if not SIMD:
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        a_, a0, b_, b0, out_, start_, blocks_, q_ = (
            operand(context, builder, signature, args, k) for k in range(8)
        )
        v = VectorIR(builder)
        i8 = ir.IntType(8)
        p = {
            MULT: v.broadcast(q_.mult),
            LEFT: v.broadcast(q_.left),
            RIGHT: v.broadcast(q_.right),
            MASK: v.broadcast(q_.mask),
            HALF: v.broadcast(q_.half),
        }
        off_a, off_b = v.broadcast(q_.off_a), v.broadcast(q_.off_b)
        zp, lo, hi = v.broadcast(q_.zp), v.broadcast(q_.lo), v.broadcast(q_.hi)

        def load(x, at, signed):
            ptr = builder.bitcast(builder.gep(data_ptr(context, builder, x, i8), [at]), v.v8.as_pointer())
            raw = builder.load(ptr, align=1)
            return builder.sext(raw, v.v32) if signed else builder.zext(raw, v.v32)

        outp = data_ptr(context, builder, out_, i8)
        everything = ir.Constant(v.vmask, [1] * LANES)
        with cgutils.for_range(builder, blocks_) as loop:
            step = builder.mul(loop.index, ir.Constant(loop.index.type, LANES))
            at = builder.add(start_, step)
            x = builder.add(load(a_, builder.add(a0, step), a.dtype.signed), off_a)
            y = builder.add(load(b_, builder.add(b0, step), b.dtype.signed), off_b)
            r = v.requantize(builder.mul(x, y), p, zp, lo, hi)
            v.store8(r, builder.bitcast(builder.gep(outp, [at]), v.v8.as_pointer()), everything)
        return context.get_dummy_value()

    return sig, codegen


@kernel
def vmul_flat(a, b, out, table, q):
    """out = a * b requantized (q: MulRequant), a, b and out flat and of one size: 16 elements per
    step, the last few of each chunk of 64 Ki from the 256 x 256 table of raw bytes."""
    n = out.size
    chunk = 1 << 16
    au, bu = retyped(a, np.uint8), retyped(b, np.uint8)
    for c in prange((n + chunk - 1) // chunk):
        lo, hi = c * chunk, min(n, (c + 1) * chunk)
        blocks = (hi - lo) // LANES
        vmul_requantize_x8_16_avx512(a, lo, b, lo, out, lo, blocks, q)
        for i in range(lo + blocks * LANES, hi):
            out[i] = table[np.int64(au[i]) * 256 + np.int64(bu[i])]


@kernel(team=False)  # (fills its table before the loop)
def vmul_rows(full, vec, out, table, q, vec_first, tile):
    """out = full * a vector repeated along it (a per-channel operand along the last axis; input 1 where
    vec_first) requantized (q: MulRequant), all flat: add8.add8_rows' tiling (tile: the vector side by side,
    copied from vec by each run; vec empty: tile holds a constant's), each span's last few from the table."""
    inner, span, n = vec.size, tile.size, out.size
    tile[:inner] = vec
    done = inner if inner else span
    while done < span:  # doubling copies
        more = min(done, span - done)
        tile[done : done + more] = tile[:more]
        done += more
    fu, tu = retyped(full, np.uint8), retyped(tile, np.uint8)
    step = max(1, (1 << 14) // span) * span
    for c in prange((n + step - 1) // step):
        for lo in range(c * step, min(n, (c + 1) * step), span):
            count = min(span, n - lo)  # whole rows
            blocks = count // LANES
            if vec_first:
                vmul_requantize_x8_16_avx512(tile, 0, full, lo, out, lo, blocks, q)
            else:
                vmul_requantize_x8_16_avx512(full, lo, tile, 0, out, lo, blocks, q)
            for i in range(blocks * LANES, count):
                x, t = np.int64(fu[lo + i]), np.int64(tu[i])
                out[lo + i] = table[t * 256 + x] if vec_first else table[x * 256 + t]
