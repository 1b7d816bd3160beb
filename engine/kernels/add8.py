"""Elementwise 8-bit ADD and SUB on AVX-512, computed instead of looked up (as binary8.py does MUL).

The reference's add (reference_ops::AddElementwise; SUB is the same with input 2's multiplier negated)
rescales each input to a common scale with 20 bits of headroom, sums, and rescales to the output:
    x_i = MultiplyByQuantizedMultiplierSmallerThanOneExp((q_i + off_i) << 20, m_i, s_i)
    out = clamp(MultiplyByQuantizedMultiplierSmallerThanOneExp(x_1 + x_2, m_o, s_o) + zp_out)
three requantizations, each the GEMM's vector one (requantize.VectorIR: a left shift, the doubling high
multiply, the rounding right shift) on 16 int32 lanes. A negative multiplier (SUB) is exact there too:
the high multiply rounds (p + 2**30) >> 31, which equals gemmlowp's nudged truncation for either sign,
and never saturates (|m| < 2**31). Same-shape operands only; the rest of a chunk and broadcasting
operands keep the 256 x 256 table (lookup.py, binary_lookup.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .irtools import data_ptr, empty_codegen, operand
from .kernel import kernel
from .requantize import HALF, LANES, LEFT, MASK, MULT, RIGHT, SIMD, VectorIR

LEFT_SHIFT = 20
CHUNK = 1 << 14


class AddRequant(NamedTuple):
    """The per-tensor constants of an 8-bit ADD or SUB: for each input its offset (minus its zero
    point), multiplier and right shift; the output's multiplier and right shift; zero point; clamp."""

    off_a: int
    m_a: int
    right_a: int
    off_b: int
    m_b: int
    right_b: int
    m_o: int
    right_o: int
    zp: int
    lo: int
    hi: int


def add_requant(rescales: tuple, zp: int, lo: int, hi: int) -> AddRequant | None:
    """AddRequant from ((offset, multiplier, shift) of input 1, input 2, output) as ops/add.py computes
    them (shifts <= 0), or None where a right shift passes 31 (the vector shifts would not do it)."""
    (off_a, m_a, s_a), (off_b, m_b, s_b), (_, m_o, s_o) = rescales
    if not SIMD or min(s_a, s_b, s_o) < -31 or max(s_a, s_b, s_o) > 0:
        return None
    return AddRequant(off_a, m_a, -s_a, off_b, m_b, -s_b, m_o, -s_o, zp, lo, hi)


def _params(v: VectorIR, mult, right, left: int) -> dict:
    b = v.b
    right_v = v.broadcast(right)
    mask = b.sub(b.shl(v.splat(1), right_v), v.splat(1))
    return {
        MULT: v.broadcast(mult),
        LEFT: v.splat(left),
        RIGHT: right_v,
        MASK: mask,
        HALF: b.lshr(mask, v.splat(1)),
    }


@intrinsic
def vadd_x8_16_avx512(typingctx, a, b, out, start, blocks, q):
    """out[start + i] = the reference's add of a[start + i] and b[start + i] (q: AddRequant) for i <
    16 * blocks; a, b, out: int8 or uint8, flat."""
    sig = types.void(a, b, out, types.intp, types.intp, q)
    if not SIMD:
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        a_, b_, out_, start_, blocks_, q_ = (operand(context, builder, signature, args, k) for k in range(6))
        v = VectorIR(builder)
        i8 = ir.IntType(8)
        p_a = _params(v, q_.m_a, q_.right_a, LEFT_SHIFT)
        p_b = _params(v, q_.m_b, q_.right_b, LEFT_SHIFT)
        p_o = _params(v, q_.m_o, q_.right_o, 0)
        off_a, off_b = v.broadcast(q_.off_a), v.broadcast(q_.off_b)
        zero, wide_lo, wide_hi = v.splat(0), v.splat(-(1 << 31)), v.splat((1 << 31) - 1)
        zp, lo, hi = v.broadcast(q_.zp), v.broadcast(q_.lo), v.broadcast(q_.hi)

        def load(x, at, signed):
            ptr = builder.bitcast(builder.gep(data_ptr(context, builder, x, i8), [at]), v.v8.as_pointer())
            raw = builder.load(ptr, align=1)
            return builder.sext(raw, v.v32) if signed else builder.zext(raw, v.v32)

        outp = data_ptr(context, builder, out_, i8)
        everything = ir.Constant(v.vmask, [1] * LANES)
        with cgutils.for_range(builder, blocks_) as loop:
            at = builder.add(start_, builder.mul(loop.index, ir.Constant(loop.index.type, LANES)))
            x = builder.add(load(a_, at, a.dtype.signed), off_a)
            y = builder.add(load(b_, at, b.dtype.signed), off_b)
            x = v.requantize(x, p_a, zero, wide_lo, wide_hi)  # the clamps cannot bite: plain rescales
            y = v.requantize(y, p_b, zero, wide_lo, wide_hi)
            r = v.requantize(builder.add(x, y), p_o, zp, lo, hi)
            v.store8(r, builder.bitcast(builder.gep(outp, [at]), v.v8.as_pointer()), everything)
        return context.get_dummy_value()

    return sig, codegen


@kernel
def vadd_flat(a, b, out, table, q):
    """out = a + b as the reference adds (q: AddRequant), a, b and out flat and of one size: 16
    elements per step, the last few of each chunk from the 256 x 256 table of raw bytes."""
    n = out.size
    au, bu = a.view(np.uint8), b.view(np.uint8)
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        blocks = (hi - lo) // LANES
        vadd_x8_16_avx512(a, b, out, lo, blocks, q)
        for i in range(lo + blocks * LANES, hi):
            k = np.uintp(i)
            out[k] = table[np.int64(au[k]) * 256 + np.int64(bu[k])]
