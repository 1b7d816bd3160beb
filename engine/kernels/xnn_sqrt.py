"""XNNPACK's float32 SQRT and RSQRT on AVX-512 (numerics="litert"): f32-vsqrt / f32-vrsqrt avx512f_rsqrt,
which LiteRT's default interpreter runs on a CPU with AVX-512F:
    t = rsqrt14(x)                          (VRSQRT14PS: the hardware's 14-bit approximation)
    t = t - ((x * (t * t)) - 1) * (0.5 * t)   (one Newton-Raphson step, float32, no fused multiply-add)
    SQRT: y = x * (t if x != 0 else 0);  RSQRT: y = t (0 for +inf)
Denormal inputs and intermediate results count as zero (XNNPACK runs with DAZ and FTZ set: measured on
3e38, whose t * t underflows). The approximation is the instruction's own (architecturally defined), so the kernel issues it
(llvm.x86.avx512.rsqrt14.ps.512) on blocks of 16 and does the rest in float32 as XNNPACK orders it.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .irtools import element_ptr, operand

LANES = 16


@intrinsic
def _rsqrt14_block(typingctx, src, dst, start):
    """dst[start:start+16] = VRSQRT14PS(src[start:start+16]) (float32 arrays, 16 elements available)."""

    def codegen(context, builder, signature, args):
        a, b = operand(context, builder, signature, args, 0), operand(context, builder, signature, args, 1)
        k = context.cast(builder, args[2], signature.args[2], types.intp)
        vf = ir.VectorType(ir.FloatType(), LANES)
        x = builder.load(element_ptr(context, builder, a, k, vf), align=4)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vf, [vf, vf, ir.IntType(16)]), "llvm.x86.avx512.rsqrt14.ps.512"
        )
        y = builder.call(fn, [x, ir.Constant(vf, None), ir.Constant(ir.IntType(16), -1)])
        builder.store(y, element_ptr(context, builder, b, k, vf), align=4)
        return context.get_dummy_value()

    return types.void(src, dst, start), codegen


@njit(inline="always", cache=True)
def _ftz(v):
    """Flush a float32 denormal to zero: XNNPACK's kernels run with denormals-are-zero and flush-to-zero."""
    return np.float32(0.0) * v if abs(v) < np.float32(1.1754944e-38) else v


@njit(cache=True)
def xnn_sqrt(x, out, scratch, reciprocal):
    """out = XNNPACK's sqrt (reciprocal: rsqrt, 0 for +inf) of x (flat float32); scratch: 2 x 16 float32."""
    n = x.size
    one, half, zero = np.float32(1.0), np.float32(0.5), np.float32(0.0)
    for base in range(0, n, LANES):
        m = min(LANES, n - base)
        for i in range(LANES):
            scratch[0, i] = _ftz(x[base + i]) if i < m else one
        _rsqrt14_block(scratch[0], scratch[1], 0)
        for i in range(m):
            v = scratch[0, i]
            t = scratch[1, i]
            t2 = _ftz(np.float32(t * t))
            r = _ftz(np.float32(np.float32(_ftz(np.float32(v * t2)) - one) * _ftz(np.float32(half * t))))
            t = _ftz(np.float32(t - _ftz(r)))
            if reciprocal:
                out[base + i] = zero if v == np.inf else t
            else:
                out[base + i] = _ftz(np.float32(v * (t if v != 0 else zero)))
