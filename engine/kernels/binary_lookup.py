"""The gathers of the two-input 8-bit table ops (out = table[byte(a), byte(b)]) where one side is a
single value or the broadcast leaves long runs, for ops/broadcast.py.

- One input a single value (MUL by a scalar, SUB of a constant): the table's row or column for it is a
  one-input table of 256 entries, looked up 64 bytes a step with AVX-512 VBMI (lookup.py), at the speed
  of memory, where the pair gather costs a load an element.
- Broadcasting otherwise: the 6-D walk over the output with its innermost loop specialized on whether each
  side runs along it or stays put, so that the loop LLVM compiles has no stride multiplications.
- A per-channel operand against a full one (x - mean[c] on an image, [N, H, W, C] with [C]): each channel
  gets its own 256-entry table (C x 256 bytes, C <= PHASES_MAX), and the output is a one-input
  gather over the channel's table, with no pair index to form.
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
from .lookup import LUT_BLOCK, lut_x8_64_vbmi

CHUNK = 1 << 14  # elements a parallel step takes
PHASES_MAX = 256  # channels of a per-channel operand given tables of their own (64 KiB)
VBMI_PHASES = 16  # up to this many channels, 64 elements a step with VBMI (each channel's table on each step)


@intrinsic
def lut_phases_x8_64_vbmi(typingctx, x, out, luts, start, blocks, phases, phase0):
    """out[start + i] = luts[((phase0 + i) % phases) * 256 + x[start + i]] for i < 64 * blocks, phase0 <
    phases <= 64: each step looks the 64 bytes up in every channel's table (two vpermi2b and a select,
    lookup.lut_x8_64_vbmi) and keeps each lane's channel; the lanes' channels advance 64 % phases a step."""
    sig = types.void(x, out, luts, types.intp, types.intp, types.intp, types.intp)
    if not cpu.VBMI:
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        x_, out_, luts_, start_, blocks_, phases_, phase0_ = (
            operand(context, builder, signature, args, k) for k in range(7)
        )
        b = builder
        i8 = ir.IntType(8)
        v8 = ir.VectorType(i8, LUT_BLOCK)
        permute = cgutils.get_or_insert_function(
            b.module, ir.FunctionType(v8, [v8, v8, v8]), "llvm.x86.avx512.vpermi2var.qi.512"
        )

        def splat(value):
            one = b.insert_element(ir.Constant(v8, None), b.trunc(value, i8), ir.Constant(ir.IntType(32), 0))
            mask = ir.Constant(ir.VectorType(ir.IntType(32), LUT_BLOCK), [0] * LUT_BLOCK)
            return b.shuffle_vector(one, ir.Constant(v8, None), mask)

        tp = b.bitcast(data_ptr(context, b, luts_, i8), v8.as_pointer())
        xp = b.gep(data_ptr(context, b, x_, i8), [start_])
        op = b.gep(data_ptr(context, b, out_, i8), [start_])
        n_phases = splat(phases_)
        step = splat(b.srem(ir.Constant(phases_.type, LUT_BLOCK), phases_))
        lane = b.add(ir.Constant(v8, list(range(LUT_BLOCK))), splat(phase0_))  # < 128: no wrap
        lane = b.urem(lane, n_phases)
        where = cgutils.alloca_once_value(b, lane)
        with cgutils.for_range(b, blocks_) as loop:
            at = b.mul(loop.index, ir.Constant(loop.index.type, LUT_BLOCK))
            xv = b.load(b.bitcast(b.gep(xp, [at]), v8.as_pointer()), align=1)
            top = b.icmp_signed("<", xv, ir.Constant(v8, [0] * LUT_BLOCK))
            ph = b.load(where)
            acc = cgutils.alloca_once_value(b, ir.Constant(v8, [0] * LUT_BLOCK))
            with cgutils.for_range(b, phases_) as channel:
                q = [
                    b.load(
                        b.gep(
                            tp,
                            [
                                b.add(
                                    b.mul(channel.index, ir.Constant(channel.index.type, 4)),
                                    ir.Constant(channel.index.type, k),
                                )
                            ],
                        ),
                        align=1,
                    )
                    for k in range(4)
                ]
                low = b.call(permute, [q[0], xv, q[1]])
                high = b.call(permute, [q[2], xv, q[3]])
                mine = b.icmp_unsigned("==", ph, splat(channel.index))
                b.store(b.select(mine, b.select(top, high, low), b.load(acc)), acc)
            b.store(b.load(acc), b.bitcast(b.gep(op, [at]), v8.as_pointer()), align=1)
            ph = b.add(ph, step)
            b.store(b.select(b.icmp_unsigned(">=", ph, n_phases), b.sub(ph, n_phases), ph), where)
        return context.get_dummy_value()

    return sig, codegen


@kernel(team=False)  # (fills its table before the loop)
def gather_scalar(x, other, out, table, lut, x_stride, other_stride):
    """out[i] = table[x[i] * x_stride + other[0] * other_stride] through lut (256 entries, the line of
    the table for other[0]): x_stride, other_stride = (256, 1) where other is the second input, (1, 256)
    where it is the first. x, other: uint8 views; table flat (65536)."""
    k = np.int64(other[0]) * other_stride
    for i in range(256):
        lut[i] = table[k + i * x_stride]
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        start = lo
        if cpu.VBMI and out.itemsize == 1:
            blocks = (hi - lo) // LUT_BLOCK
            lut_x8_64_vbmi(x, out, lut, lo, blocks)
            start = lo + blocks * LUT_BLOCK
        for i in range(start, hi):
            out[i] = lut[x[i]]


@kernel(team=False)  # (fills its table before the loop)
def gather_phases(x, other, out, table, luts, x_stride, other_stride):
    """out[r * P + p] = table[x[r * P + p] * x_stride + other[p] * other_stride] for P = other.size, through
    luts [P * 256] (filled here: channel p's line of the table)."""
    phases = other.size
    for p in range(phases):
        k = np.int64(other[p]) * other_stride
        for i in range(256):
            luts[p * 256 + i] = table[k + i * x_stride]
    rows = x.size // phases
    step = max(1, CHUNK // phases)
    vbmi = cpu.VBMI and out.itemsize == 1 and phases <= VBMI_PHASES
    for c in prange((rows + step - 1) // step):
        r0, r1 = c * step, min(rows, (c + 1) * step)
        if vbmi:  # whole rows of phases: each chunk starts at channel 0
            blocks = (r1 - r0) * phases // LUT_BLOCK
            lut_phases_x8_64_vbmi(x, out, luts, r0 * phases, blocks, phases, 0)
            done = r0 * phases + blocks * LUT_BLOCK
            for i in range(done, r1 * phases):
                k = np.uintp(i)
                out[k] = luts[(i % phases) * 256 + np.int64(x[k])]
            continue
        for r in range(r0, r1):
            base = r * phases
            for p in range(phases):
                out[base + p] = luts[p * 256 + np.int64(x[base + p])]


@kernel
def gather2_nd_runs(a, b, out, table, ext, sa, sb):
    """out = table[a * 256 + b] over the 6-D extents ext, a and b read with strides sa and sb (0 where
    they broadcast, 1 along the innermost dimension where they run). Rows (the innermost runs) are split
    in blocks of about CHUNK elements, each walked with an odometer over the outer five dimensions."""
    n5 = ext[5]
    rows = ext[0] * ext[1] * ext[2] * ext[3] * ext[4]
    step = max(1, CHUNK // max(n5, 1))
    ra, rb = sa[5] != 0, sb[5] != 0
    for c in prange((rows + step - 1) // step):
        r0, r1 = c * step, min(rows, (c + 1) * step)
        idx = np.empty(5, np.int64)
        rest = r0
        for d in range(4, -1, -1):
            idx[d] = rest % ext[d]
            rest //= ext[d]
        for r in range(r0, r1):
            pa, pb = np.int64(0), np.int64(0)
            for d in range(5):
                pa += idx[d] * sa[d]
                pb += idx[d] * sb[d]
            o = r * n5
            if ra and rb:
                for i in range(n5):
                    out[o + i] = table[np.int64(a[pa + i]) * 256 + np.int64(b[pb + i])]
            elif ra:
                kb = np.int64(b[pb])
                for i in range(n5):
                    out[o + i] = table[np.int64(a[pa + i]) * 256 + kb]
            else:
                ka = np.int64(a[pa]) * 256
                for i in range(n5):
                    out[o + i] = table[ka + np.int64(b[pb + i])]
            d = 4
            idx[d] += 1
            while d > 0 and idx[d] == ext[d]:
                idx[d] = 0
                d -= 1
                idx[d] += 1
