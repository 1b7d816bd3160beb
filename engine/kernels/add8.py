"""8-bit ADD and SUB on AVX-512 VBMI, 64 elements a step from small byte tables instead of the 64 Ki table.

Every profile's 8-bit ADD/SUB (reference, TFLite Micro, XNNPACK's integer add) computes
    out = clamp(zp + floor((Y1[a] + Y2[b] + E) / 2**k), lo, hi)
where Y1, Y2 are 256-entry integer tables of the raw input bytes (each input rescaled and multiplied by
the output multiplier: exact int64), k the output's total shift and E a rounding constant. Split each
table at 2**k: Y1 = A_hi 2**k + A_lo, Y2 + E = B_hi 2**k + B_lo (0 <= A_lo, B_lo < 2**k). Then
    floor(...) = A_hi[a] + B_hi[b] + [A_lo[a] + B_lo[b] >= 2**k]
and the carry, a comparison of two k-bit numbers, is a comparison of 8-bit ones: with R[b] the rank of
B_lo[b] among the 256 values, [B_lo[b] >= 2**k - A_lo[a]] == [R[b] >= K[a]], K[a] the number of values
below 2**k - A_lo[a]. So the output is
    clamp(U[a] + V[b] + [R[b] > Kc[a]], lo, hi),  U = zp + A_hi, V = B_hi (int16), Kc = K - 1,
five byte tables (U and V as low and high bytes), each looked up 64 lanes at a time in registers
(vpermi2b, as lookup.lut_x8_64_vbmi), the sum in int16 lanes and packed back with saturation.

The reference's output rounding (RoundingDivideByPOT after the doubling high multiply) rounds an exact
half away from zero: below zero the rounding constant is smaller by delta = 2**31 (requantize.widen).
That changes the result only at ties, (A_lo + B_lo) mod 2**k < delta, and only where the positive rule
gives F <= 0 (zp + F <= zp): there the output is one less. The tie set, for one a, is a window of ranks:
    tie = [R < T0[a]] or ([R > Kc[a]] and [R <= T1[a]])
(two more tables by a; the kernel's TIES variant). Scales picked at random rarely produce an
exact tie (the 76 ADD/SUB of the shared zoo: one does), scales such as 1/128 and 1/256 often.

prepare() builds the tables (planes()) and emulates the kernel over all 65,536 byte pairs (emulate()):
the kernel is used only where that equals the op's own 64 Ki table, bit for bit; else the table stays.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from . import cpu
from .irtools import data_ptr, empty_codegen, operand
from .kernel import kernel

LANES = 64  # bytes per step
CHUNK = 1 << 14  # elements a parallel step takes
U_LO, U_HI, KC, T0, T1, V_LO, V_HI, RANK, CONST = range(9)  # rows of planes: 5 by a, 3 by b, constants
BY_A = (U_LO, U_HI, KC, T0, T1)
ZP, LO, HI, WIDE, TIES = range(5)  # the CONST row: output zero point, clamp bounds (raw bytes), the variant:
# WIDE: U and V int16 (else int8, the sum saturated in bytes); TIES: ties below zero round down (T0, T1 read)
SUPPORTED = cpu.VBMI


def planes(y1, y2, k: int, bounds: tuple[int, int, int], delta: int, wide: bool, signed: bool) -> np.ndarray | None:
    """The planes of out = clamp(zp + floor((y1[a] + y2[b]) / 2**k), lo, hi) (bounds: zp, lo, hi; the
    rounding constant in y2), ties read where delta > 0 (below zero, sums within delta above a multiple of
    2**k round down); y1, y2 int64 by raw byte. None where the values do not fit the variant's bytes."""
    y1, y2 = np.asarray(y1, np.int64), np.asarray(y2, np.int64)
    zp = bounds[0]
    one = np.int64(1) << k
    a_hi, a_lo = y1 >> k, y1 & (one - 1)
    v, b_lo = y2 >> k, y2 & (one - 1)
    values = np.unique(b_lo)  # sorted, distinct
    rank = np.searchsorted(values, b_lo)
    carry_from = np.searchsorted(values, one - a_lo)  # K: b carries where rank >= K
    u = zp + a_hi + (carry_from == 0)  # always carries: folded into U, Kc never
    table = np.zeros((9, 256), np.uint8)
    table[KC] = np.where(carry_from == 0, 255, carry_from - 1)
    table[RANK] = rank
    table[CONST, :3] = np.array(bounds, np.int64).astype(np.uint8)
    table[CONST, WIDE], table[CONST, TIES] = wide, delta > 0
    if delta > 0:
        t0 = np.searchsorted(values, delta - a_lo)  # ranks below: ties without a carry
        t1 = np.searchsorted(values, one + delta - a_lo)  # ranks K .. t1 - 1: ties with one
        table[T0] = np.where(carry_from == 0, np.maximum(t0, t1), t0).clip(0, 255)
        table[T1] = np.where(carry_from == 0, 0, np.maximum(t1 - 1, 0))
        if np.where(carry_from == 0, np.maximum(t0, t1), t0).max() > 255:
            return None
    if wide:
        for row, x in ((U_LO, u), (V_LO, v)):
            if np.abs(x).max() >= 1 << 15:
                return None
            table[row : row + 2] = x.astype(np.int16).view(np.uint8).reshape(256, 2).T
        return table
    u = u - (0 if signed else 128)  # unsigned outputs: summed as signed bytes, 128 below
    t = max(-128 - u.min(), v.max() - 126)  # U + t and V - t + carry in int8
    if t > min(127 - u.max(), v.min() + 128):
        return None
    table[U_LO], table[V_LO] = (u + t).astype(np.uint8), (v - t).astype(np.uint8)
    return table


def emulate(p: np.ndarray, signed: bool) -> np.ndarray:
    """What the kernel computes with planes p for every pair of raw bytes: [256 (a), 256 (b)] raw output bytes."""
    wide, ties = p[CONST, WIDE], p[CONST, TIES]
    if wide:
        u = p[U_LO : U_HI + 1].T.copy().view(np.int16)[:, 0].astype(np.int64)
        v = p[V_LO : V_HI + 1].T.copy().view(np.int16)[:, 0].astype(np.int64)
    else:
        u, v = p[U_LO].view(np.int8).astype(np.int64), p[V_LO].view(np.int8).astype(np.int64)
    r = p[RANK][None, :].astype(np.int64)
    carry = r > p[KC][:, None]
    lo8, hi8 = (-128, 127) if signed else (0, 255)
    if wide:
        w = ((u[:, None] + v[None, :] + carry + (1 << 15)) & 0xFFFF) - (1 << 15)  # int16 lanes wrap
        out = np.clip(w, lo8, hi8)  # the saturating pack
    else:
        out = np.clip(u[:, None] + v[None, :] + carry, -128, 127) + (0 if signed else 128)
    zp, lo, hi = (int(x) for x in p[CONST, :3].view(np.int8 if signed else np.uint8))
    if ties:
        tie = (r < p[T0][:, None]) | (carry & (r <= p[T1][:, None]))
        out = np.where(tie & (out <= zp), np.maximum(out - 1, lo8), out)
    out = np.clip(out, lo, hi)
    return out.astype(np.int8 if signed else np.uint8).view(np.uint8)


def fit(y1, y2, k: int, bounds: tuple[int, int, int], delta: int, table: np.ndarray, signed: bool) -> np.ndarray | None:
    """The kernel's planes for out = clamp(zp + floor((y1[a] + y2[b]) / 2**k), lo, hi) (planes()) where
    the kernel equals table (the op's [256, 256] table of raw bytes) on every pair, else None: the first
    variant that does, cheapest first (bytes before int16, ties read as any other sum before TIES)."""
    if not SUPPORTED:
        return None
    want = np.asarray(table).reshape(256, 256).view(np.uint8)
    for wide in (False, True):
        for d in sorted({0, delta}):
            made = planes(y1, y2, k, bounds, d, wide, signed)
            if made is not None and np.array_equal(emulate(made, signed), want):
                return made
    return None


def _unpack_order(high: bool) -> list[int]:
    """vpunpck{l,h}bw of (lo, hi): bytes 0-7 (or 8-15) of each 128-bit lane of lo interleaved with hi's."""
    base = 8 if high else 0
    return [x for lane in range(4) for j in range(8) for x in (lane * 16 + base + j, 64 + lane * 16 + base + j)]


class _IR:
    """The LLVM IR pieces of one step."""

    def __init__(self, builder, signed: bool):
        b = self.b = builder
        self.i8, self.i32 = ir.IntType(8), ir.IntType(32)
        self.v8 = ir.VectorType(self.i8, LANES)
        self.v16 = ir.VectorType(ir.IntType(16), LANES // 2)
        self.mask = ir.VectorType(ir.IntType(1), LANES)
        self.signed = signed
        m = b.module
        self.permute = cgutils.get_or_insert_function(
            m, ir.FunctionType(self.v8, [self.v8] * 3), "llvm.x86.avx512.vpermi2var.qi.512"
        )
        pack = "llvm.x86.avx512.packsswb.512" if signed else "llvm.x86.avx512.packuswb.512"
        self.pack = cgutils.get_or_insert_function(m, ir.FunctionType(self.v8, [self.v16, self.v16]), pack)
        self.add_sat = cgutils.get_or_insert_function(
            m, ir.FunctionType(self.v8, [self.v8, self.v8]), "llvm.sadd.sat.v64i8"
        )
        sat = "llvm.ssub.sat.v64i8" if signed else "llvm.usub.sat.v64i8"
        self.sub_sat = cgutils.get_or_insert_function(m, ir.FunctionType(self.v8, [self.v8, self.v8]), sat)
        vp = self.v8.as_pointer()
        self.mload = cgutils.get_or_insert_function(
            m, ir.FunctionType(self.v8, [vp, self.i32, self.mask, self.v8]), "llvm.masked.load.v64i8.p0"
        )
        self.mstore = cgutils.get_or_insert_function(
            m, ir.FunctionType(ir.VoidType(), [self.v8, vp, self.i32, self.mask]), "llvm.masked.store.v64i8.p0"
        )

    def splat(self, value):
        b = self.b
        one = b.insert_element(ir.Constant(self.v8, None), b.trunc(value, self.i8), ir.Constant(self.i32, 0))
        return b.shuffle_vector(one, ir.Constant(self.v8, None), ir.Constant(ir.VectorType(self.i32, LANES), [0] * LANES))

    def lookup(self, quarters, idx, top):
        low = self.b.call(self.permute, [quarters[0], idx, quarters[1]])
        high = self.b.call(self.permute, [quarters[2], idx, quarters[3]])
        return self.b.select(top, high, low)

    def words(self, lo, hi):
        """int16 lanes of (lo, hi) byte pairs, in vpunpck{l,h}bw order (packs restore the byte order)."""
        b = self.b
        return [
            b.bitcast(b.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(self.i32, LANES), _unpack_order(h))), self.v16)
            for h in (False, True)
        ]

    def lanes_below(self, count):
        b = self.b
        lanes = ir.Constant(ir.VectorType(count.type, LANES), list(range(LANES)))
        one = b.insert_element(ir.Constant(lanes.type, None), count, ir.Constant(self.i32, 0))
        splat = b.shuffle_vector(one, ir.Constant(lanes.type, None), ir.Constant(ir.VectorType(self.i32, LANES), [0] * LANES))
        return b.icmp_signed("<", lanes, splat)

    def wide_sum(self, got: dict, carry):
        """U + V + carry in int16 lanes, packed to bytes with saturation (to the output type's range)."""
        b = self.b
        minus = b.sext(carry, self.v8)  # -1 where the sum carries
        uw, vw, cw = self.words(got[U_LO], got[U_HI]), self.words(got[V_LO], got[V_HI]), self.words(minus, minus)
        return b.call(self.pack, [b.sub(b.add(uw[h], vw[h]), cw[h]) for h in range(2)])

    def byte_sum(self, got: dict, carry):
        """U + (V + carry) in int8 lanes, saturated; unsigned outputs are 128 above."""
        b = self.b
        s = b.call(self.add_sat, [got[U_LO], b.sub(got[V_LO], b.sext(carry, self.v8))])
        return s if self.signed else b.xor(s, ir.Constant(self.v8, [0x80] * LANES))

    def cmp(self, op: str, x, y):
        return self.b.icmp_unsigned(op, x, y)

    def clamp(self, x, lo, hi):
        b = self.b
        less = b.icmp_signed if self.signed else b.icmp_unsigned
        x = b.select(less("<", x, lo), lo, x)
        return b.select(less(">", x, hi), hi, x)


def _flag(ty) -> bool | None:
    """A compile-time boolean argument's value (None before Numba types it as a literal)."""
    return ty.literal_value if isinstance(ty, types.BooleanLiteral) else None


@intrinsic
def add8_x64_vbmi(typingctx, a, a_start, b, b_start, out, out_start, count, planes, wide, ties):
    """out[out_start + i] = the op of a[a_start + i] and b[b_start + i] for i < count (planes: fit()'s, of the
    variant the literal booleans wide and ties name); a, b, out: int8 or uint8 (one type), flat. 64 a step,
    the last partial step masked."""
    wide_, ties_ = _flag(wide), _flag(ties)
    if wide_ is None or ties_ is None:
        return None  # Numba types the call again with the literals
    sig = types.void(a, types.intp, b, types.intp, out, types.intp, types.intp, planes, wide, ties)
    if not SUPPORTED:
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        a_, a0, b_, b0, out_, o0, count_, planes_ = (operand(context, builder, signature, args, k) for k in range(8))
        v = _IR(builder, a.dtype.signed)
        bld = builder
        base = data_ptr(context, bld, planes_, v.i8)
        table = bld.bitcast(base, v.v8.as_pointer())
        used = {U_LO, KC, V_LO, RANK} | ({U_HI, V_HI} if wide_ else set()) | ({T0, T1} if ties_ else set())
        rows = {r: [bld.load(bld.gep(table, [ir.Constant(v.i32, 4 * r + j)]), align=1) for j in range(4)] for r in used}
        zp, lo, hi = (v.splat(bld.load(bld.gep(base, [ir.Constant(v.i32, 256 * CONST + j)]))) for j in (ZP, LO, HI))
        zero = ir.Constant(v.v8, [0] * LANES)
        ptrs = [bld.gep(data_ptr(context, bld, x, v.i8), [s]) for x, s in ((a_, a0), (b_, b0), (out_, o0))]

        def step(at, mask):
            pa, pb, po = (bld.bitcast(bld.gep(p, [at]), v.v8.as_pointer()) for p in ptrs)
            if mask is None:
                xa, xb = bld.load(pa, align=1), bld.load(pb, align=1)
            else:
                xa, xb = (bld.call(v.mload, [p, ir.Constant(v.i32, 1), mask, zero]) for p in (pa, pb))
            top_a, top_b = bld.icmp_signed("<", xa, zero), bld.icmp_signed("<", xb, zero)
            got = {r: v.lookup(rows[r], xb if r in (V_LO, V_HI, RANK) else xa, top_b if r in (V_LO, V_HI, RANK) else top_a) for r in used}
            carry = v.cmp(">", got[RANK], got[KC])
            r = v.wide_sum(got, carry) if wide_ else v.byte_sum(got, carry)
            if ties_:
                tie = bld.or_(v.cmp("<", got[RANK], got[T0]), bld.and_(carry, v.cmp("<=", got[RANK], got[T1])))
                below = (bld.icmp_signed if v.signed else bld.icmp_unsigned)("<=", r, zp)
                r = bld.select(bld.and_(tie, below), bld.call(v.sub_sat, [r, ir.Constant(v.v8, [1] * LANES)]), r)
            r = v.clamp(r, lo, hi)
            if mask is None:
                bld.store(r, po, align=1)
            else:
                bld.call(v.mstore, [r, po, ir.Constant(v.i32, 1), mask])

        blocks = bld.sdiv(count_, ir.Constant(count_.type, LANES))
        with cgutils.for_range(bld, blocks) as loop:
            step(bld.mul(loop.index, ir.Constant(loop.index.type, LANES)), None)
        done = bld.mul(blocks, ir.Constant(count_.type, LANES))
        rest = bld.sub(count_, done)
        with bld.if_then(bld.icmp_signed(">", rest, ir.Constant(rest.type, 0))):
            step(done, v.lanes_below(rest))
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", cache=True)
def _span(a, a0, b, b0, out, o0, count, planes):
    """add8_x64_vbmi with the variant planes name (run-time flags) turned into literals: one build of each."""
    wide, ties = planes[CONST, WIDE] != 0, planes[CONST, TIES] != 0
    if wide:
        if ties:
            add8_x64_vbmi(a, a0, b, b0, out, o0, count, planes, True, True)
        else:
            add8_x64_vbmi(a, a0, b, b0, out, o0, count, planes, True, False)
    elif ties:
        add8_x64_vbmi(a, a0, b, b0, out, o0, count, planes, False, True)
    else:
        add8_x64_vbmi(a, a0, b, b0, out, o0, count, planes, False, False)


@kernel
def add8_flat(a, b, out, planes):
    """out = the op of a and b (planes: fit()'s), a, b and out flat and of one size, in chunks of 16 Ki."""
    n = out.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        _span(a, lo, b, lo, out, lo, min(CHUNK, n - lo), planes)


@kernel
def add8_rows(a, b, out, planes, inner, a_step, b_step):
    """out[r, :] = the op of a[r * a_step:][:inner] and b[r * b_step:][:inner] for the rows r of out, flat
    [rows * inner]: a step 0 is an operand repeated on every row (a per-channel vector along the last axis)."""
    rows = out.size // inner
    step = max(1, CHUNK // inner)
    for c in prange((rows + step - 1) // step):
        for r in range(c * step, min(rows, (c + 1) * step)):
            _span(a, r * a_step, b, r * b_step, out, r * inner, inner, planes)
