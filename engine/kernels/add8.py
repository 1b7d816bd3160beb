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

import functools
from typing import NamedTuple

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
ZP, LO, HI, FORM, TIES = range(5)  # the CONST row: output zero point, clamp bounds (raw bytes), the variant:
# FORM how U and V are held, TIES whether ties below zero round down (T0, T1 read)
BYTES, SPLIT, WIDE = range(3)  # FORMs: int8, the sum saturated in bytes; SPLIT: V in two bytes of one sign
# (V_LO, V_HI), each added with saturation; WIDE: U and V int16, summed in int16 lanes
SUPPORTED = cpu.VBMI


def planes(
    y1, y2, k: int, bounds: tuple[int, int, int], delta: int, form: int, signed: bool
) -> np.ndarray | None:
    """The planes of out = clamp(zp + floor((y1[a] + y2[b]) / 2**k), lo, hi) (bounds: zp, lo, hi; the
    rounding constant in y2), ties read where delta > 0 (below zero, sums within delta above a multiple of
    2**k round down), U and V held as form says; y1, y2 int64 by raw byte. None where they do not fit."""
    y1, y2 = np.asarray(y1, np.int64), np.asarray(y2, np.int64)
    one = np.int64(1) << k
    a_hi, a_lo = y1 >> k, y1 & (one - 1)
    v, b_lo = y2 >> k, y2 & (one - 1)
    values = np.unique(b_lo)  # sorted, distinct
    carry_from = np.searchsorted(values, one - a_lo)  # K: b carries where its rank >= K
    u = bounds[0] + a_hi + (carry_from == 0)  # always carries: folded into U, Kc never
    table = np.zeros((9, 256), np.uint8)
    table[KC] = np.where(carry_from == 0, 255, carry_from - 1)
    table[RANK] = np.searchsorted(values, b_lo)
    table[CONST, :3] = np.array(bounds, np.int64).astype(np.uint8)
    table[CONST, FORM], table[CONST, TIES] = form, delta > 0
    if delta > 0:
        t0 = np.searchsorted(values, delta - a_lo)  # ranks below: ties without a carry
        t1 = np.searchsorted(values, one + delta - a_lo)  # ranks K .. t1 - 1: ties with one
        t0 = np.where(carry_from == 0, np.maximum(t0, t1), t0)
        if t0.max() > 255:
            return None
        table[T0], table[T1] = t0, np.where(carry_from == 0, 0, np.maximum(t1 - 1, 0))
    return table if _sums(table, u, v, bounds[1:], signed) else None


def _sums(table: np.ndarray, u: np.ndarray, v: np.ndarray, clamp: tuple[int, int], signed: bool) -> bool:
    """Fill the U and V rows of table for out = clamp(u[a] + v[b] + carry) (its CONST row names the variant);
    False where they do not fit. Values beyond what the clamp can tell apart are brought in first (one more
    above: a tie may take one off)."""
    lo, hi = clamp
    v = v.clip(lo - 1 - u.max(), hi + 1 - u.min())
    u = u.clip(lo - 1 - v.max(), hi + 1 - v.min())
    if table[CONST, FORM] == WIDE:
        for row, x in ((U_LO, u), (V_LO, v)):
            if np.abs(x).max() >= 1 << 14:
                return False
            table[row : row + 2] = x.astype(np.int16).view(np.uint8).reshape(256, 2).T
        return True
    u = u - (0 if signed else 128)  # unsigned outputs: summed as signed bytes, 128 below
    split = table[CONST, FORM] == SPLIT  # V in two bytes, of one sign
    reach = (-256, 254) if split else (-128, 127)
    t = max(-128 - u.min(), v.max() - reach[1])  # U + t + carry and V - t in range
    if t > min(126 - u.max(), v.min() - reach[0]):
        return False
    v1 = (v - t).clip(-128, 127)
    table[U_LO], table[V_LO], table[V_HI] = (
        (u + t).astype(np.uint8),
        v1.astype(np.uint8),
        (v - t - v1).astype(np.uint8),
    )
    return True


def emulate(p: np.ndarray, signed: bool) -> np.ndarray:
    """What the kernel computes with planes p for every pair of raw bytes: [256 (a), 256 (b)] raw output bytes."""
    wide, ties = p[CONST, FORM] == WIDE, p[CONST, TIES]
    r = p[RANK][None, :].astype(np.int64)
    carry = r > p[KC][:, None]
    lo8, hi8 = (-128, 127) if signed else (0, 255)
    if wide:
        u = p[U_LO : U_HI + 1].T.copy().view(np.int16)[:, 0].astype(np.int64)
        v = p[V_LO : V_HI + 1].T.copy().view(np.int16)[:, 0].astype(np.int64)
        w = ((u[:, None] + v[None, :] + carry + (1 << 15)) & 0xFFFF) - (1 << 15)  # int16 lanes wrap
        out = np.clip(w, lo8, hi8)  # the saturating pack
    else:
        u, v1, v2 = (p[row].view(np.int8).astype(np.int64) for row in (U_LO, V_LO, V_HI))
        out = np.clip(np.clip(u[:, None] + carry, -128, 127) + v1[None, :], -128, 127)
        if p[CONST, FORM] == SPLIT:
            out = np.clip(out + v2[None, :], -128, 127)
        out = out + (0 if signed else 128)
    zp, lo, hi = (int(x) for x in p[CONST, :3].view(np.int8 if signed else np.uint8))
    if ties:
        tie = (r < p[T0][:, None]) | (carry & (r <= p[T1][:, None]))
        out = np.where(tie & (out <= zp), np.maximum(out - 1, lo8), out)
    out = np.clip(out, lo, hi)
    return out.astype(np.int8 if signed else np.uint8).view(np.uint8)


class Fitted(NamedTuple):
    """fit()'s answer: the planes, and whether the kernel takes the op's inputs swapped (input 2 as its a)."""

    planes: np.ndarray
    swap: bool


def fit(
    y1, y2, k: int, bounds: tuple[int, int, int], delta: int, table: np.ndarray, signed: bool
) -> Fitted | None:
    """The kernel's planes for out = clamp(zp + floor((y1[a] + y2[b]) / 2**k), lo, hi) (planes()) where
    the kernel equals table (the op's [256, 256] table of raw bytes) on every pair, else None: the first
    variant that does, cheapest first (bytes, split, int16; the carry with input 1, then with input 2; ties
    read as any other sum before TIES). Remembered: each plan (batch size) of a model prepares its ops."""
    if not SUPPORTED:
        return None
    y1, y2 = np.asarray(y1, np.int64), np.asarray(y2, np.int64)
    want = np.ascontiguousarray(np.asarray(table).reshape(256, 256).view(np.uint8))
    return _fit(y1.tobytes(), y2.tobytes(), k, tuple(bounds), delta, want.tobytes(), signed)


@functools.lru_cache(maxsize=256)
def _fit(
    y1: bytes, y2: bytes, k: int, bounds: tuple, delta: int, table: bytes, signed: bool
) -> Fitted | None:
    ys = np.frombuffer(y1, np.int64), np.frombuffer(y2, np.int64)
    want = np.frombuffer(table, np.uint8).reshape(256, 256)
    for form in (BYTES, SPLIT, WIDE):
        for swap in (False, True):
            ya, yb, pairs = (ys[1], ys[0], want.T) if swap else (ys[0], ys[1], want)
            for d in sorted({0, delta}):
                made = planes(ya, yb, k, bounds, d, form, signed)
                if made is not None and np.array_equal(emulate(made, signed), pairs):
                    return Fitted(made, swap)
    return None


def _unpack_order(high: bool) -> list[int]:
    """vpunpck{l,h}bw of (lo, hi): bytes 0-7 (or 8-15) of each 128-bit lane of lo interleaved with hi's."""
    base = 8 if high else 0
    return [
        x for lane in range(4) for j in range(8) for x in (lane * 16 + base + j, 64 + lane * 16 + base + j)
    ]


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
            m,
            ir.FunctionType(ir.VoidType(), [self.v8, vp, self.i32, self.mask]),
            "llvm.masked.store.v64i8.p0",
        )

    def splat(self, value):
        b = self.b
        one = b.insert_element(ir.Constant(self.v8, None), b.trunc(value, self.i8), ir.Constant(self.i32, 0))
        return b.shuffle_vector(
            one, ir.Constant(self.v8, None), ir.Constant(ir.VectorType(self.i32, LANES), [0] * LANES)
        )

    def lookup(self, quarters, idx, top):
        low = self.b.call(self.permute, [quarters[0], idx, quarters[1]])
        high = self.b.call(self.permute, [quarters[2], idx, quarters[3]])
        return self.b.select(top, high, low)

    def words(self, lo, hi):
        """int16 lanes of (lo, hi) byte pairs, in vpunpck{l,h}bw order (packs restore the byte order)."""
        b = self.b
        return [
            b.bitcast(
                b.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(self.i32, LANES), _unpack_order(h))),
                self.v16,
            )
            for h in (False, True)
        ]

    def lanes_below(self, count):
        b = self.b
        lanes = ir.Constant(ir.VectorType(count.type, LANES), list(range(LANES)))
        one = b.insert_element(ir.Constant(lanes.type, None), count, ir.Constant(self.i32, 0))
        splat = b.shuffle_vector(
            one, ir.Constant(lanes.type, None), ir.Constant(ir.VectorType(self.i32, LANES), [0] * LANES)
        )
        return b.icmp_signed("<", lanes, splat)

    def wide_sum(self, got: dict, carry):
        """U + V + carry in int16 lanes, packed to bytes with saturation (to the output type's range)."""
        b = self.b
        minus = b.sext(carry, self.v8)  # -1 where the sum carries
        uw, vw, cw = (
            self.words(got[U_LO], got[U_HI]),
            self.words(got[V_LO], got[V_HI]),
            self.words(minus, minus),
        )
        return b.call(self.pack, [b.sub(b.add(uw[h], vw[h]), cw[h]) for h in range(2)])

    def byte_sum(self, got: dict, carry, split: bool):
        """(U + carry) + V in int8 lanes, saturated (split: + V_LO + V_HI); unsigned outputs are 128 above."""
        b = self.b
        s = b.sub(got[U_LO], b.sext(carry, self.v8))  # U <= 126
        for row in (V_LO, V_HI) if split else (V_LO,):
            s = b.call(self.add_sat, [s, got[row]])
        return s if self.signed else b.xor(s, ir.Constant(self.v8, [0x80] * LANES))

    def cmp(self, op: str, x, y):
        return self.b.icmp_unsigned(op, x, y)

    def clamp(self, x, lo, hi):
        b = self.b
        less = b.icmp_signed if self.signed else b.icmp_unsigned
        x = b.select(less("<", x, lo), lo, x)
        return b.select(less(">", x, hi), hi, x)


def _literal(ty):
    """A compile-time argument's value (None before Numba types it as a literal)."""
    return ty.literal_value if isinstance(ty, types.Literal) else None


@intrinsic
def add8_x64_vbmi(typingctx, a, a_start, b, b_start, out, out_start, count, planes, form, ties):
    """out[out_start + i] = the op of a[a_start + i] and b[b_start + i] for i < count (planes: fit()'s, of the
    variant the literals form and ties name); a, b, out: int8 or uint8 (one type), flat. 64 a step, the last
    partial step masked."""
    form_, ties_ = _literal(form), _literal(ties)
    if form_ is None or ties_ is None:
        return None  # Numba types the call again with the literals
    sig = types.void(a, types.intp, b, types.intp, out, types.intp, types.intp, planes, form, ties)
    if not SUPPORTED:
        return sig, empty_codegen
    used = (
        {U_LO, KC, V_LO, RANK} | ({V_HI} if form_ != BYTES else set()) | ({U_HI} if form_ == WIDE else set())
    )
    used |= {T0, T1} if ties_ else set()

    def codegen(context, builder, signature, args):
        a_, a0, b_, b0, out_, o0, count_, planes_ = (
            operand(context, builder, signature, args, k) for k in range(8)
        )
        v = _IR(builder, a.dtype.signed)
        bld = builder
        base = data_ptr(context, bld, planes_, v.i8)
        table = bld.bitcast(base, v.v8.as_pointer())
        rows = {
            r: [bld.load(bld.gep(table, [ir.Constant(v.i32, 4 * r + j)]), align=1) for j in range(4)]
            for r in used
        }
        zp, lo, hi = (
            v.splat(bld.load(bld.gep(base, [ir.Constant(v.i32, 256 * CONST + j)]))) for j in (ZP, LO, HI)
        )
        zero = ir.Constant(v.v8, [0] * LANES)
        ptrs = [bld.gep(data_ptr(context, bld, x, v.i8), [s]) for x, s in ((a_, a0), (b_, b0), (out_, o0))]

        def step(at, mask):
            pa, pb, po = (bld.bitcast(bld.gep(p, [at]), v.v8.as_pointer()) for p in ptrs)
            if mask is None:
                xa, xb = bld.load(pa, align=1), bld.load(pb, align=1)
            else:
                xa, xb = (bld.call(v.mload, [p, ir.Constant(v.i32, 1), mask, zero]) for p in (pa, pb))
            by = {"a": (xa, bld.icmp_signed("<", xa, zero)), "b": (xb, bld.icmp_signed("<", xb, zero))}
            got = {r: v.lookup(rows[r], *by["b" if r in (V_LO, V_HI, RANK) else "a"]) for r in used}
            carry = v.cmp(">", got[RANK], got[KC])
            r = v.wide_sum(got, carry) if form_ == WIDE else v.byte_sum(got, carry, form_ == SPLIT)
            if ties_:
                tie = bld.or_(
                    v.cmp("<", got[RANK], got[T0]), bld.and_(carry, v.cmp("<=", got[RANK], got[T1]))
                )
                below = (bld.icmp_signed if v.signed else bld.icmp_unsigned)("<=", r, zp)
                r = bld.select(
                    bld.and_(tie, below), bld.call(v.sub_sat, [r, ir.Constant(v.v8, [1] * LANES)]), r
                )
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
    """add8_x64_vbmi with the variant planes name (run-time values) turned into literals: one build of each."""
    form, ties = planes[CONST, FORM], planes[CONST, TIES] != 0
    if form == BYTES:
        if ties:
            add8_x64_vbmi(a, a0, b, b0, out, o0, count, planes, 0, True)
        else:
            add8_x64_vbmi(a, a0, b, b0, out, o0, count, planes, 0, False)
    elif form == SPLIT:
        if ties:
            add8_x64_vbmi(a, a0, b, b0, out, o0, count, planes, 1, True)
        else:
            add8_x64_vbmi(a, a0, b, b0, out, o0, count, planes, 1, False)
    elif ties:
        add8_x64_vbmi(a, a0, b, b0, out, o0, count, planes, 2, True)
    else:
        add8_x64_vbmi(a, a0, b, b0, out, o0, count, planes, 2, False)


@kernel
def add8_flat(a, b, out, planes):
    """out = the op of a and b (planes: fit()'s), a, b and out flat and of one size, in chunks of 16 Ki."""
    n = out.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        lo = c * CHUNK
        _span(a, lo, b, lo, out, lo, min(CHUNK, n - lo), planes)


@kernel(team=False)  # (fills its table before the loop)
def add8_rows(full, vec, out, planes, vec_first, tile):
    """out = the op of full and a vector repeated along it (a per-channel operand along the last axis; the
    kernel's a where vec_first), all flat. tile: the vector side by side, a whole number of times (each step
    takes that many rows), copied from vec by each run (vec empty: tile holds a constant's, as it is)."""
    inner, span, n = vec.size, tile.size, out.size
    tile[:inner] = vec
    done = inner if inner else span
    while done < span:  # doubling copies: a row at a time compiles to a slow byte loop
        more = min(done, span - done)
        tile[done : done + more] = tile[:more]
        done += more
    step = max(1, CHUNK // span) * span
    for c in prange((n + step - 1) // step):
        for lo in range(c * step, min(n, (c + 1) * step), span):
            count = min(span, n - lo)  # whole rows
            if vec_first:
                _span(tile, 0, full, lo, out, lo, count, planes)
            else:
                _span(full, lo, tile, 0, out, lo, count, planes)
