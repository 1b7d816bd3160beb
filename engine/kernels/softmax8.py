"""The 8-bit SOFTMAX's row passes in 16 int32 lanes (AVX-512), for ops/softmax.py.

Written plainly, a row's three loops (max, sum of exp, outputs) vectorize into long loops with
prologues and epilogues that a short row (YOLOv8's 16-wide distribution rows) never reaches: about 70
instructions an element. Here each pass takes 16 elements a step, the last step masked, the exp tables
read with vpgatherdd, so a row of 16 costs three steps and its reciprocal.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .irtools import data_ptr, empty_codegen, operand
from .requantize import LANES, SIMD, VectorIR

INT32_MIN = -(1 << 31)


class _Row:
    """IR helpers of one row pass: masked 16-byte loads widened to int32, table gathers."""

    def __init__(self, context, builder, x, signed: bool):
        self.v = VectorIR(builder)
        self.b = builder
        self.signed = signed
        i8 = ir.IntType(8)
        self.x = data_ptr(context, builder, x, i8)
        self._load8 = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(self.v.v8, [self.v.v8.as_pointer(), self.v.i32, self.v.vmask, self.v.v8]),
            "llvm.masked.load.v16i8.p0",
        )
        self._gather = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(
                self.v.v32, [self.v.v32, ir.IntType(8).as_pointer(), self.v.v32, self.v.vmask, self.v.i32]
            ),
            "llvm.x86.avx512.mask.gather.dpi.512",
        )

    def block(self, base, depth, k):
        """(mask, pointer offset) of the elements 16k.. of the row at base."""
        at = self.b.mul(k, ir.Constant(k.type, LANES))
        return self.v.lanes_below(self.b.sub(depth, at)), self.b.add(base, at)

    def load(self, at, mask):
        ptr = self.b.bitcast(self.b.gep(self.x, [at]), self.v.v8.as_pointer())
        raw = self.b.call(
            self._load8, [ptr, ir.Constant(self.v.i32, 1), mask, ir.Constant(self.v.v8, [0] * LANES)]
        )
        return self.b.sext(raw, self.v.v32) if self.signed else self.b.zext(raw, self.v.v32)

    def gather(self, table_ptr, index, mask):
        """table[index] where mask (int32 table), 0 elsewhere; index must be in the table."""
        ptr = self.b.bitcast(table_ptr, ir.IntType(8).as_pointer())
        args = [self.v.splat(0), ptr, index, mask, ir.Constant(self.v.i32, 4)]
        return self.b.call(self._gather, args)

    def store32(self, vec, ptr, mask):
        fn = cgutils.get_or_insert_function(
            self.b.module,
            ir.FunctionType(ir.VoidType(), [self.v.v32, self.v.v32.as_pointer(), self.v.i32, self.v.vmask]),
            "llvm.masked.store.v16i32.p0",
        )
        self.b.call(fn, [vec, self.b.bitcast(ptr, self.v.v32.as_pointer()), ir.Constant(self.v.i32, 4), mask])

    def reduce(self, name: str, vec):
        fn = cgutils.get_or_insert_function(
            self.b.module, ir.FunctionType(self.v.i32, [self.v.v32]), f"llvm.vector.reduce.{name}.v16i32"
        )
        return self.b.call(fn, [vec])


def _blocks(builder, depth):
    return builder.udiv(
        builder.add(depth, ir.Constant(depth.type, LANES - 1)), ir.Constant(depth.type, LANES)
    )


@intrinsic
def row_max16(typingctx, x, base, depth):
    """max(x[base : base + depth]) (depth >= 1), as int64."""
    sig = types.int64(x, types.intp, types.intp)
    if not SIMD:
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        x_, base_, depth_ = (operand(context, builder, signature, args, k) for k in range(3))
        row = _Row(context, builder, x_, x.dtype.signed)
        v = row.v
        acc = cgutils.alloca_once_value(builder, v.splat(INT32_MIN))
        with cgutils.for_range(builder, _blocks(builder, depth_)) as loop:
            mask, at = row.block(base_, depth_, loop.index)
            vals = builder.select(mask, row.load(at, mask), v.splat(INT32_MIN))
            builder.store(v.smax(builder.load(acc), vals), acc)
        return builder.sext(row.reduce("smax", builder.load(acc)), ir.IntType(64))

    return sig, codegen


@intrinsic
def row_exp16(typingctx, x, base, depth, top, table, es, es_base):
    """e = table[top - x[i]] over the row (int32 table of 256 entries, -1 where skipped), stored to
    es[es_base + i]; returns the sum of RoundingDivideByPOT(e, 12) over e >= 0, wrapped in int32 as the
    reference's int32 sum, as int64."""
    sig = types.int64(x, types.intp, types.intp, types.int64, table, es, types.intp)
    if not SIMD:
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        x_, base_, depth_, top_, table_, es_, es_base_ = (
            operand(context, builder, signature, args, k) for k in range(7)
        )
        row = _Row(context, builder, x_, x.dtype.signed)
        v, b = row.v, builder
        top_v = v.broadcast(top_)
        table = data_ptr(context, builder, table_)
        es_ptr = data_ptr(context, builder, es_)
        acc = cgutils.alloca_once_value(builder, v.splat(0))
        with cgutils.for_range(builder, _blocks(builder, depth_)) as loop:
            mask, at = row.block(base_, depth_, loop.index)
            d = b.select(mask, b.sub(top_v, row.load(at, mask)), v.splat(0))
            e = row.gather(table, d, mask)
            row.store32(e, b.gep(es_ptr, [b.sub(b.add(at, es_base_), base_)]), mask)
            # e >= 0: (e + 2**11) >> 12 as unsigned (e + 2**11 may pass INT32_MAX)
            term = b.lshr(b.add(e, v.splat(1 << 11)), v.splat(12))
            term = b.select(b.icmp_signed("<", e, v.splat(0)), v.splat(0), term)
            b.store(b.add(b.load(acc), term), acc)
        return b.sext(row.reduce("add", b.load(acc)), ir.IntType(64))

    return sig, codegen


@intrinsic
def row_out16(typingctx, es, es_base, out, base, depth, scale, exponent, qmin, qmax):
    """out[base + i] = clamp(RoundingDivideByPOT(SRDHM(scale, e), exponent) + qmin) with e = es[es_base + i]
    (int32, from row_exp16), or qmin where e < 0 (a skipped difference); exponent <= 31, scale >= 0."""
    i = types.intp
    sig = types.void(es, i, out, i, i, types.int64, types.int64, types.int64, types.int64)
    if not SIMD:
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        es_, es_base_, out_, base_, depth_, scale_, exp_, qmin_, qmax_ = (
            operand(context, builder, signature, args, k) for k in range(9)
        )
        v = VectorIR(builder)
        b = builder
        scale_v, exp_v = v.broadcast(scale_), v.broadcast(exp_)
        qmin_v, qmax_v = v.broadcast(qmin_), v.broadcast(qmax_)
        mask_e = b.sub(b.shl(v.splat(1), exp_v), v.splat(1))  # exponent 31: 0x7fffffff
        half = b.lshr(mask_e, v.splat(1))
        es_ptr = data_ptr(context, builder, es_)
        outp = data_ptr(context, builder, out_, ir.IntType(8))
        sh = ir.Constant(v.v64, [32] * (LANES // 2))
        nudge = ir.Constant(v.v64, [1 << 30] * (LANES // 2))
        s_lo = b.ashr(b.shl(b.bitcast(scale_v, v.v64), sh), sh)

        def high_mul(u):  # scale * u + 2**30 on each qword's low dword (SRDHM before its >> 31)
            u64 = b.bitcast(u, v.v64)
            return b.add(b.mul(b.ashr(b.shl(u64, sh), sh), s_lo), nudge)

        with cgutils.for_range(builder, _blocks(builder, depth_)) as loop:
            at = b.mul(loop.index, ir.Constant(loop.index.type, LANES))
            mask = v.lanes_below(b.sub(depth_, at))
            e = v.load(b.bitcast(b.gep(es_ptr, [b.add(es_base_, at)]), v.v32.as_pointer()), mask)
            even = b.bitcast(b.lshr(high_mul(e), ir.Constant(v.v64, [31] * (LANES // 2))), v.v32)
            odd_e = b.bitcast(b.lshr(b.bitcast(e, v.v64), sh), v.v32)
            odd = b.bitcast(b.shl(high_mul(odd_e), ir.Constant(v.v64, [1] * (LANES // 2))), v.v32)
            q = b.shuffle_vector(
                even, odd, ir.Constant(v.v32, [k if k % 2 == 0 else LANES + k for k in range(LANES)])
            )
            up = b.icmp_signed(">", b.and_(q, mask_e), half)
            r = b.add(b.ashr(q, exp_v), b.zext(up, v.v32))
            r = v.smin(v.smax(b.add(r, qmin_v), qmin_v), qmax_v)
            r = b.select(b.icmp_signed("<", e, v.splat(0)), qmin_v, r)
            v.store8(r, b.bitcast(b.gep(outp, [b.add(base_, at)]), v.v8.as_pointer()), mask)
        return context.get_dummy_value()

    return sig, codegen


# --- Short rows (depth <= 16), 16 rows at a time, one row per lane --------------------------------------------
# A 16 x 16 byte block of 16 rows is transposed in registers, so that lane r holds row r: the row maxima,
# sums and reciprocals become vertical operations on 16 rows at once (no horizontal reductions, no scalar
# reciprocal per row), and the outputs are transposed back.

ROWS16 = 16
ACCUMULATION_INTEGER_BITS = 12  # the row sums' integer bits (Q12.19), as ops/softmax.py


class _Fixed:
    """gemmlowp's fixed-point operations on 16 int32 lanes (IR), for GetReciprocal."""

    def __init__(self, builder):
        self.b = builder
        self.v = VectorIR(builder)

    def srdhm(self, a, c):
        """SaturatingRoundingDoublingHighMul: (a * c + 2**30) >> 31 (floor), INT32_MAX where both are INT32_MIN."""
        b, v = self.b, self.v
        sh = ir.Constant(v.v64, [32] * (LANES // 2))
        nudge = ir.Constant(v.v64, [1 << 30] * (LANES // 2))

        def low_dwords(u):
            u64 = b.bitcast(u, v.v64)
            return b.ashr(b.shl(u64, sh), sh)

        def odd(u):
            return b.bitcast(b.lshr(b.bitcast(u, v.v64), sh), v.v32)

        even = b.bitcast(
            b.lshr(b.add(b.mul(low_dwords(a), low_dwords(c)), nudge), ir.Constant(v.v64, [31] * 8)), v.v32
        )
        prod = b.add(b.mul(low_dwords(odd(a)), low_dwords(odd(c))), nudge)
        odd_q = b.bitcast(b.shl(prod, ir.Constant(v.v64, [1] * 8)), v.v32)
        q = b.shuffle_vector(
            even, odd_q, ir.Constant(v.v32, [k if k % 2 == 0 else LANES + k for k in range(LANES)])
        )
        lowest = v.splat(INT32_MIN)
        both = b.and_(b.icmp_signed("==", a, lowest), b.icmp_signed("==", c, lowest))
        return b.select(both, v.splat((1 << 31) - 1), q)

    def saturating_shift_left(self, x, exponent: int):
        b, v = self.b, self.v
        threshold = v.splat((1 << (31 - exponent)) - 1)
        shifted = b.shl(x, v.splat(exponent))
        shifted = b.select(b.icmp_signed(">", x, threshold), v.splat((1 << 31) - 1), shifted)
        return b.select(b.icmp_signed("<", x, b.sub(v.splat(0), threshold)), v.splat(INT32_MIN), shifted)

    def reciprocal(self, total):
        """GetReciprocal(total, 12) for total > 0: (scale, the output's right shift bits_over_unit + 23)."""
        b, v = self.b, self.v
        ctlz = cgutils.get_or_insert_function(
            b.module, ir.FunctionType(v.v32, [v.v32, ir.IntType(1)]), "llvm.ctlz.v16i32"
        )
        headroom = b.call(ctlz, [total, ir.Constant(ir.IntType(1), 0)])
        shifted = b.and_(b.shl(total, headroom), v.splat((1 << 31) - 1))  # (total << headroom) - 2**31
        half_denominator = b.add(b.lshr(shifted, v.splat(1)), v.splat(1 << 30))  # (a + 2**31) / 2, a >= 0
        x = b.add(v.splat(1515870810), self.srdhm(half_denominator, v.splat(-1010580540)))
        for _ in range(3):
            one_minus = b.sub(v.splat(1 << 29), self.srdhm(half_denominator, x))
            x = b.add(x, self.saturating_shift_left(self.srdhm(x, one_minus), 2))
        scale = self.saturating_shift_left(x, 1)
        return scale, b.sub(v.splat(ACCUMULATION_INTEGER_BITS + 31 - 8), headroom)


@intrinsic
def rows16_softmax(typingctx, x, row, depth, out, table, qmin, qmax):
    """The 8-bit SOFTMAX (ops/softmax.py's reference rule) of the 16 rows row..row + 15 of depth <= 16
    elements (flat x and out, row-major), one row per lane; table: exp of each difference (int32, Q0.31,
    -1 where skipped). The sums stay below 16.0, so every output shift is at most 31."""
    i = types.intp
    sig = types.void(x, i, i, out, table, types.int64, types.int64)
    if not SIMD:
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        x_, row_, depth_, out_, table_, qmin_, qmax_ = (
            operand(context, builder, signature, args, k) for k in range(7)
        )
        from .transpose8 import transpose16

        r = _Row(context, builder, x_, x.dtype.signed)
        v, b, f = r.v, builder, _Fixed(builder)
        cols = v.lanes_below(depth_)
        base = b.mul(row_, depth_)
        lowest = ir.Constant(v.v8, [-128 if x.dtype.signed else 0] * LANES)
        rows = []
        for k in range(ROWS16):
            ptr = b.bitcast(
                b.gep(r.x, [b.add(base, b.mul(depth_, ir.Constant(depth_.type, k)))]), v.v8.as_pointer()
            )
            rows.append(b.call(r._load8, [ptr, ir.Constant(v.i32, 1), cols, lowest]))
        widen = b.sext if x.dtype.signed else b.zext
        columns = [widen(c, v.v32) for c in transpose16(b, rows)]  # columns[j]: element j of each row
        top = columns[0]
        for c in columns[1:]:  # padding lanes hold the type's minimum: no effect on the maxima
            top = v.smax(top, c)
        table = data_ptr(context, builder, table_)
        everything = ir.Constant(v.vmask, [1] * LANES)
        total, es = v.splat(0), []
        for j, c in enumerate(columns):
            e = r.gather(table, b.sub(top, c), everything)
            es.append(e)
            term = b.lshr(b.add(e, v.splat(1 << 11)), v.splat(12))  # RoundingDivideByPOT(e, 12), e >= 0
            term = b.select(b.icmp_signed("<", e, v.splat(0)), v.splat(0), term)
            real = b.icmp_signed("<", ir.Constant(depth_.type, j), depth_)  # a column of the rows, not padding
            total = b.add(total, b.select(real, term, v.splat(0)))
        scale, exponent = f.reciprocal(total)
        mask_e = b.sub(b.shl(v.splat(1), exponent), v.splat(1))
        half = b.lshr(mask_e, v.splat(1))
        qmin_v, qmax_v = v.broadcast(qmin_), v.broadcast(qmax_)
        outs = []
        for e in es:
            p = f.srdhm(scale, e)  # e >= 0 where it counts
            up = b.icmp_signed(">", b.and_(p, mask_e), half)
            q = b.add(b.ashr(p, exponent), b.zext(up, v.v32))
            q = v.smin(v.smax(b.add(q, qmin_v), qmin_v), qmax_v)
            outs.append(b.trunc(b.select(b.icmp_signed("<", e, v.splat(0)), qmin_v, q), v.v8))
        outp = data_ptr(context, builder, out_, ir.IntType(8))
        for k, o in enumerate(transpose16(b, outs)):
            ptr = b.bitcast(
                b.gep(outp, [b.add(base, b.mul(depth_, ir.Constant(depth_.type, k)))]), v.v8.as_pointer()
            )
            b.call(v._store, [o, ptr, ir.Constant(v.i32, 1), cols])
        return context.get_dummy_value()

    return sig, codegen
