"""Byte transposes: strided views of one-byte data whose output rows read down an input column
(TRANSPOSE of int8/uint8 data, say NHWC -> NCHW), for kernels/strided_copy.py.

The generic strided copy moves such a view a byte at a time, each read a cache line away from the
last (about 2 ns a byte here). Here 16 x 16 tiles are moved whole: 16 loads of 16 contiguous bytes,
a transpose in registers (four rounds of byte interleaves, which LLVM lowers to punpck*), 16 stores.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from .irtools import data_ptr, operand
from .kernel import kernel

TILE = 16
ROWS_PER_TASK = 256  # output rows of a task (a multiple of TILE)
COLUMNS_PER_TASK = 64  # output columns of a task: full cache lines written


def transpose16(builder, rows: list) -> list:
    """The 16 x 16 matrix of 16 <16 x i8> rows, transposed (IR): the perfect shuffle of rows m and m + 8,
    four times."""
    i32x16 = ir.VectorType(ir.IntType(32), TILE)
    low = ir.Constant(i32x16, [k // 2 + (k % 2) * TILE for k in range(TILE)])
    high = ir.Constant(i32x16, [TILE // 2 + k // 2 + (k % 2) * TILE for k in range(TILE)])
    for _ in range(4):
        nxt = []
        for m in range(TILE // 2):
            a, b = rows[m], rows[m + TILE // 2]
            nxt += [builder.shuffle_vector(a, b, low), builder.shuffle_vector(a, b, high)]
        rows = nxt
    return rows


@intrinsic
def transpose16_u8(typingctx, src, p, s_in, out, o, s_out):
    """out[o + i * s_out + j] = src[p + j * s_in + i] for i, j < 16 (one-byte arrays; s_in may be negative)."""
    sig = types.void(src, types.intp, types.intp, out, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        src_, p_, s_in_, out_, o_, s_out_ = (operand(context, builder, signature, args, k) for k in range(6))
        v16 = ir.VectorType(ir.IntType(8), TILE)
        sp = data_ptr(context, builder, src_, ir.IntType(8))
        op = data_ptr(context, builder, out_, ir.IntType(8))
        rows = []
        for j in range(TILE):
            at = builder.add(p_, builder.mul(s_in_, ir.Constant(s_in_.type, j)))
            rows.append(builder.load(builder.bitcast(builder.gep(sp, [at]), v16.as_pointer()), align=1))
        for i, row in enumerate(transpose16(builder, rows)):
            at = builder.add(o_, builder.mul(s_out_, ir.Constant(s_out_.type, i)))
            builder.store(row, builder.bitcast(builder.gep(op, [at]), v16.as_pointer()), align=1)
        return context.get_dummy_value()

    return sig, codegen


@kernel
def transpose_u8(src, offset, ext, st, out):
    """The strided copy of kernels/strided_copy.py (extents ext, input strides st over 6 axes, offset) for
    one-byte data where st[4] == 1: out[..., i4, i5] = src[p + i4 + i5 * st[5]], in 16 x 16 tiles, the
    edges byte by byte. Tasks of ROWS_PER_TASK x COLUMNS_PER_TASK output bytes."""
    n0, n1, n2, n3, n4, n5 = ext[0], ext[1], ext[2], ext[3], ext[4], ext[5]
    s5 = st[5]
    nb4 = (n4 + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    nb5 = (n5 + COLUMNS_PER_TASK - 1) // COLUMNS_PER_TASK
    for u in prange(n0 * n1 * n2 * n3 * nb4 * nb5):
        b5 = u % nb5
        v = u // nb5
        b4 = v % nb4
        t = v // nb4
        i3 = t % n3
        r = t // n3
        i2 = r % n2
        r //= n2
        i1 = r % n1
        i0 = r // n1
        p0 = offset + i0 * st[0] + i1 * st[1] + i2 * st[2] + i3 * st[3]
        o0 = t * n4 * n5
        lo4, hi4 = b4 * ROWS_PER_TASK, min(n4, (b4 + 1) * ROWS_PER_TASK)
        lo5, hi5 = b5 * COLUMNS_PER_TASK, min(n5, (b5 + 1) * COLUMNS_PER_TASK)
        full4 = lo4 + (hi4 - lo4) // TILE * TILE
        full5 = lo5 + (hi5 - lo5) // TILE * TILE
        for a in range(lo4, full4, TILE):
            for b in range(lo5, full5, TILE):
                transpose16_u8(src, p0 + a + b * s5, s5, out, o0 + a * n5 + b, n5)
        for i4 in range(lo4, hi4):
            first = full5 if i4 < full4 else lo5  # the tiles' right edge, then the bottom edge whole
            for i5 in range(first, hi5):
                out[np.uint64(o0 + i4 * n5 + i5)] = src[np.uint64(p0 + i4 + i5 * s5)]


def applies(ext: np.ndarray, st: np.ndarray, itemsize: int) -> bool:
    """Whether transpose_u8 takes this view (from strided_copy.view_plan): one-byte data read down a column."""
    return itemsize == 1 and st[4] == 1 and st[5] != 1 and ext[4] >= TILE and ext[5] >= TILE
