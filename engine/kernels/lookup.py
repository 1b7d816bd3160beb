"""The gathers of the 8-bit lookup-table ops: out = table[raw input byte] (one input), or
table[byte(a) * 256 + byte(b)] (two inputs, with broadcasting), elementwise.

The tables themselves are computed at prepare (engine/numerics/gemmlowp.py: byte_values, lut_populate;
the binary ops' modules). A lookup costs about a sixteenth of an elementary step: the builds are picked
for size // 16 (kernel.py).

With AVX-512 VBMI a 256-entry byte table lives in four zmm registers and two vpermi2b look up 64
bytes at once (each in one half of the table, picked by the index's top bit): XNNPACK's x8-lut
kernel, at the speed of memory, where the scalar gather costs a load per element.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import cpu
from .irtools import data_ptr, empty_codegen, operand
from .kernel import kernel

LUT_BLOCK = 64  # bytes per vpermi2b


@intrinsic
def lut_x8_64_vbmi(typingctx, x, out, table, start, blocks):
    """out[start + i] = table[x[start + i]] for i < 64 * blocks; x: uint8, out and table (256 entries):
    one-byte types."""
    sig = types.void(x, out, table, types.intp, types.intp)
    if not cpu.VBMI:  # (never called there: table_runner takes the scalar gather)
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        x_, out_, table_, start_, blocks_ = (operand(context, builder, signature, args, k) for k in range(5))
        i8 = ir.IntType(8)
        v8 = ir.VectorType(i8, LUT_BLOCK)
        permute = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(v8, [v8, v8, v8]), "llvm.x86.avx512.vpermi2var.qi.512"
        )
        tp = builder.bitcast(data_ptr(context, builder, table_, i8), v8.as_pointer())
        quarters = [
            builder.load(builder.gep(tp, [ir.Constant(ir.IntType(32), q)]), align=1) for q in range(4)
        ]
        xp = builder.gep(data_ptr(context, builder, x_, i8), [start_])
        op = builder.gep(data_ptr(context, builder, out_, i8), [start_])
        with cgutils.for_range(builder, blocks_) as loop:
            at = builder.mul(loop.index, ir.Constant(loop.index.type, LUT_BLOCK))
            xv = builder.load(builder.bitcast(builder.gep(xp, [at]), v8.as_pointer()), align=1)
            low = builder.call(permute, [quarters[0], xv, quarters[1]])  # indices 0..127 (bit 7 ignored)
            high = builder.call(permute, [quarters[2], xv, quarters[3]])
            top = builder.icmp_signed("<", xv, ir.Constant(v8, [0] * LUT_BLOCK))
            builder.store(
                builder.select(top, high, low),
                builder.bitcast(builder.gep(op, [at]), v8.as_pointer()),
                align=1,
            )
        return context.get_dummy_value()

    return sig, codegen


@kernel
def gather_vbmi(x, out, table):
    """gather() for one-byte tables on AVX-512 VBMI: 64 elements per step, in chunks of 16 Ki (even
    pieces for the threads: a [1, 80, 80, 64] map is 25 of them)."""
    n = x.size
    chunk = 1 << 14
    for c in prange((n + chunk - 1) // chunk):
        lo, hi = c * chunk, min(n, (c + 1) * chunk)
        blocks = (hi - lo) // LUT_BLOCK
        lut_x8_64_vbmi(x, out, table, lo, blocks)
        for i in range(lo + blocks * LUT_BLOCK, hi):
            out[i] = table[x[i]]


@kernel
def gather(x, out, table):
    """out[i] = table[x[i]], in chunks of 16 Ki elements (unsigned indices: no wraparound test)."""
    n = x.size
    chunk = 1 << 14
    for c in prange((n + chunk - 1) // chunk):
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            k = np.uintp(i)
            out[k] = table[x[k]]


def table_runner(table: np.ndarray, size: int):
    """run(inputs, outputs, scratch): outputs[0] = table[raw byte of inputs[0]], elementwise, any
    shape of `size` elements."""
    table = np.ascontiguousarray(table)
    vbmi = cpu.VBMI and table.itemsize == 1 and table.shape == (256,)
    lookup = (gather_vbmi if vbmi else gather).pick(size // 16)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(lookup, (flat(inputs[0], np.uint8), flat(outputs[0]), table))]

    def run(inputs: list, outputs: list, scratch: list) -> None:
        for fn, args in bind(inputs, outputs, scratch):
            fn(*args)

    run.bind = bind  # the planner binds the call once (ops/common.py Prepared.bind)
    return run


def flat(a: np.ndarray, dtype=None) -> np.ndarray:
    """a as one axis of dtype (default its own), never a copy: a bound call keeps the array it was given."""
    return a.reshape(-1, copy=False).view(dtype or a.dtype)  # raises rather than copy


@kernel
def gather2_flat(a, b, out, table):
    """out[i] = table[a[i] * 256 + b[i]]: a and b of one shape."""
    for i in prange(out.size):
        out[i] = table[np.int64(a[i]) * 256 + np.int64(b[i])]
