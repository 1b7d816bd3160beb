"""Requantization of int32 sums to 8-bit outputs, 16 at a time in int32 lanes.

out = clamp(MultiplyByQuantizedMultiplier(acc + bias, M, shift) + zero point, lo, hi), the
fixed-point rule of fixedpoint.py, per output channel. Written plainly, Numba widens every step to
int64 lanes (about 2 cycles an element); here each step stays in int32 lanes, gemmlowp style, and
only the doubling high multiply takes 64-bit products (vpmuldq on the even and the odd lanes,
blended back). What depends on the channel alone is computed once at prepare (params()).
Exactness rests on M >= 0 (quantize_multiplier gives 0 or [2**30, 2**31)), so the high multiply
never saturates, and on right shifts <= 31 (quantize_multiplier's floor is -31).

The reference FULLY_CONNECTED rounds in double instead (RequantDouble: (double(acc) + bias) * scale,
half away from zero), 8 double lanes at a time.

Two more rules for numerics="litert" (LiteRT's default interpreter on x86), each its own named tuple so
that the kernels compile one specialization per rule (chosen at prepare, no branch at run time):
- RequantRuy: ruy's x86 rounding (LiteRT's optimized CONV_2D / FULLY_CONNECTED): the same doubling high
  multiply, then (q + 2**(right-1)) >> right, half rounded up instead of away from zero;
- RequantFp32: XNNPACK's "fp32" rule: float32(acc + bias) * scale[c] (float32), clamped to
  [lo - zp, hi - zp], rounded half to even, plus zp. Its table (params_fp32) holds the scale's bits in
  the MULT row.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ..numerics.fixedpoint import multiply_by_quantized_multiplier
from . import cpu
from .irtools import Operand, element_ptr, empty_codegen, flat_view, operand, retyped, row_ptr

LANES = 16  # int32 lanes of a 512-bit vector
SIMD = cpu.AVX512F
BIAS, MULT, LEFT, RIGHT, MASK, HALF, SHIFT = range(7)  # rows of a params() table


class Requant(NamedTuple):
    """A requantization: the params() table per channel, the output zero point and the clamp bounds."""

    table: np.ndarray
    out_zp: int
    lo: int
    hi: int


class RequantRuy(NamedTuple):
    """A Requant rounded as ruy does on x86 (half up after the high multiply); the same params() table."""

    table: np.ndarray
    out_zp: int
    lo: int
    hi: int


class RequantFp32(NamedTuple):
    """XNNPACK's fp32 requantization: table from params_fp32() (bias, float32 scale per channel)."""

    table: np.ndarray
    out_zp: int
    lo: int
    hi: int


class RequantDouble(NamedTuple):
    """The reference FULLY_CONNECTED's rule: table float64 [2, channels], each channel's bias (whole) and
    scale (s_in * s_w / s_out); out = round((double(acc) + bias) * scale) half away from zero, as int32
    (INT32_MIN out of range), + out_zp in int32 (wrapping), clamped."""

    table: np.ndarray
    out_zp: int
    lo: int
    hi: int


RULES = {Requant: "reference", RequantRuy: "ruy", RequantFp32: "fp32", RequantDouble: "double"}
DOUBLE_BIAS, DOUBLE_SCALE = DOUBLE_ROWS = range(2)  # rows of a RequantDouble table
# The double just below 0.5. Rounding half away from zero is a truncation of v + copysign(HALF_DOWN, v):
# for |v| < 2**52 the sum lands in [n, n + 1) exactly when round(v) = n (v + HALF_DOWN falls short of
# n + 1 by at least v's spacing, and a tie v = n - 1/2 rounds up to n); larger v are whole already.
# The clamp to [lo, hi] - out_zp, whole numbers, commutes with the truncation.
HALF_DOWN = 0.49999999999999994


def rule_of(rq_type) -> str:
    """The rounding rule of a Requant-like Numba type (its named tuple class)."""
    return RULES[rq_type.instance_class]


def params_fp32(bias: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The table RequantFp32 reads: the bias row, and each channel's float32 scale's bits as MULT."""
    channels = bias.size
    table = np.zeros((7, channels), np.int32)
    table[BIAS] = bias.astype(np.int64).astype(np.uint32).view(np.int32)
    table[MULT] = np.broadcast_to(np.asarray(scale, np.float32), (channels,)).view(np.int32)
    return table


def make(rule: str, bias: np.ndarray, mult, shift, scale, out_zp: int, lo: int, hi: int):
    """The requantization of a rule ("reference", "ruy" or "fp32"; see the module's docstring): the
    fixed-point ones from (mult, shift), fp32 from the float32 scales (the rule as cheapest(): rule)."""
    if rule == "fp32":
        return RequantFp32(params_fp32(bias, scale), out_zp, lo, hi)
    rule = cheapest(rule, out_zp, lo)
    return (RequantRuy if rule == "ruy" else Requant)(params(bias, mult, shift), out_zp, lo, hi)


def cheapest(rule: str, out_zp: int, lo: int) -> str:
    """The rule that gives rule's results at the least cost: the reference rule is ruy's where the clamp
    starts at the zero point or above (lo >= out_zp: ReLU, ReLU6). The two roundings differ only where
    the high product q is negative, and there both give at most 0, so lo. Ruy's is the cheaper (no
    correction for negatives: 2 instructions of 12 per 16 outputs in the fused epilogue, 3 of 13 in
    depthwise's short form)."""
    return "ruy" if rule == "reference" and lo >= out_zp else rule


# The fused GEMM epilogue's constants (gemm.tile_requantize), appended to a params() table by widen():
# int64 rows from int32 row WIDE on, padded to whole blocks of 16 channels, each block's 8 even then 8
# odd channels (the lanes of vpmuldq's two halves); first a header of 16 int64 (0: any left shift).
WIDE_M, WIDE_S, WIDE_C, WIDE_D = range(4)  # multiplier, 31 + right, rounding constant, negative's correction
WIDE_Z = 4  # (widen's out_zp) WIDE_C + out_zp * 2**(31 + right): the floor then gives the result + out_zp
WIDE = 7
FOLD_MAX_SHIFT = 52  # 31 + right up to this: |x*M| + |WIDE_Z| < 2**62 + 2**61 + 2**60, no int64 overflow


def widen(table: np.ndarray, rule: str, out_zp: int | None = None) -> np.ndarray:
    """A params() table (reference or ruy rule) with the rows tile_requantize reads after it. With
    q = floor((x*M + 2**30) / 2**31) (the doubling high multiply, M >= 0) and right shift r, both
    roundings of q / 2**r are one floor of the 64-bit product:
        reference (half away from zero): floor((x*M + C - D*[x*M < -2**30]) / 2**(31 + r))
        ruy (half up): the same with D = 0,
    where C = 2**30 + 2**31 * h, h = 2**(r-1) (0 for r = 0), D = 2**31 for r >= 1 (0 for r = 0): the
    floor of a floor by a power of two is one floor, and [x*M < -2**30] is [q < 0]. No overflow:
    |x*M| < 2**62 and C <= 2**30 + 2**61.
    With out_zp, also the row WIDE_Z, whose floor is the result plus out_zp (a whole multiple of the
    divisor adds exactly), and the header's word 1 says whether it holds for every channel: right
    shifts of 1 or more (the result then lies within +-2**30, so adding out_zp never wraps int32) up to
    FOLD_MAX_SHIFT - 31, no left shift (fold_zero_point())."""
    rows, channels = table.shape
    assert rows == WIDE
    # M = 0 (a channel of zero scale) gives 0 whatever the shift: 1 keeps its constants small
    right = np.where(table[MULT] == 0, 1, table[RIGHT]).astype(np.int64)
    half = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
    wide = np.zeros((4 if out_zp is None else 5, padded16(channels)), np.int64)
    wide[WIDE_M, :channels] = table[MULT]
    wide[WIDE_S] = 31
    wide[WIDE_S, :channels] += right
    wide[WIDE_C, :channels] = (np.int64(1) << 30) + (half << 31)
    if rule == "reference":
        wide[WIDE_D, :channels] = np.where(right > 0, np.int64(1) << 31, 0)
    header = np.zeros(LANES, np.int64)
    header[0] = int(table[LEFT].any())
    if out_zp is not None:
        header[1] = int(fold_zero_point(table))
        if header[1]:
            wide[WIDE_Z] = wide[WIDE_C] + (np.int64(out_zp) << wide[WIDE_S])
    blocks = wide.reshape(len(wide), -1, LANES // 2, 2).transpose(0, 1, 3, 2)  # [row, block, even/odd, 8]
    flat = np.concatenate([header, blocks.reshape(-1)]).view(np.int32)
    extra = -(-flat.size // channels)
    out = np.zeros((rows + extra, channels), np.int32)
    out[:rows] = table
    out[rows:].reshape(-1)[: flat.size] = flat
    return out


def fold_zero_point(table: np.ndarray) -> bool:
    """Whether widen()'s WIDE_Z row may stand for the rounding constant and the output zero point both
    (see widen): every right shift in 1 .. FOLD_MAX_SHIFT - 31, no left shift (channels of multiplier 0
    aside: their result is the zero point, whatever their shifts)."""
    live = table[MULT] != 0
    right = table[RIGHT][live].astype(np.int64)
    if not live.any():
        return True
    return bool(not table[LEFT][live].any() and right.min() >= 1 and right.max() <= FOLD_MAX_SHIFT - 31)


def padded16(channels: int) -> int:
    return -(-channels // LANES) * LANES


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


def requantize_one(v, rq, ch):
    """v (int32 sum without the bias) requantized for channel ch by rq's rule (any Requant tuple)."""
    raise NotImplementedError  # njit only: the overload below picks the rule by rq's type


@njit(inline="always", cache=True)
def _ruy(v, table, ch, out_zp, lo, hi):
    x = np.int32(np.int64(np.int32(v + table[BIAS, ch])) << np.int64(table[LEFT, ch]))  # wraps, as vpsllvd
    q = (np.int64(x) * np.int64(table[MULT, ch]) + (np.int64(1) << 30)) >> 31
    right = np.int64(table[RIGHT, ch])
    if right > 0:
        q = (q + (np.int64(1) << (right - 1))) >> right
    return min(max(q + out_zp, lo), hi)


@njit(inline="always", cache=True)
def _fp32(v, table, ch, out_zp, lo, hi):
    scale = retyped(table[MULT], np.float32)[ch]
    f = np.float32(np.int32(v + table[BIAS, ch])) * scale
    f = min(max(f, np.float32(lo - out_zp)), np.float32(hi - out_zp))
    return np.int64(np.rint(f)) + out_zp


@overload(requantize_one, jit_options={"cache": True})
def _requantize_one(v, rq, ch):
    rule = rule_of(rq)
    if rule == "ruy":
        return lambda v, rq, ch: _ruy(v, rq.table, ch, rq.out_zp, rq.lo, rq.hi)
    if rule == "fp32":
        return lambda v, rq, ch: _fp32(v, rq.table, ch, rq.out_zp, rq.lo, rq.hi)
    return lambda v, rq, ch: _requantize_scalar(v, rq.table, ch, rq.out_zp, rq.lo, rq.hi)


class VectorIR:
    """LLVM IR for the requantization of 16 int32 lanes, shared by the intrinsics here and the
    GEMM's fused epilogue (gemm.py)."""

    def __init__(self, builder):
        self.b = builder
        self.i32 = ir.IntType(32)
        self.v32 = ir.VectorType(self.i32, LANES)
        self.v64 = ir.VectorType(ir.IntType(64), LANES // 2)
        self.v8 = ir.VectorType(ir.IntType(8), LANES)
        self.vmask = ir.VectorType(ir.IntType(1), LANES)
        module = builder.module
        self._load = cgutils.get_or_insert_function(
            module,
            ir.FunctionType(self.v32, [self.v32.as_pointer(), self.i32, self.vmask, self.v32]),
            "llvm.masked.load.v16i32.p0",
        )
        self._store = cgutils.get_or_insert_function(
            module,
            ir.FunctionType(ir.VoidType(), [self.v8, self.v8.as_pointer(), self.i32, self.vmask]),
            "llvm.masked.store.v16i8.p0",
        )
        # a left shift by 32 or more gives 0 here, as in fixedpoint.py (LLVM's shl would be poison)
        self._sllv = cgutils.get_or_insert_function(
            module, ir.FunctionType(self.v32, [self.v32, self.v32]), "llvm.x86.avx512.psllv.d.512"
        )

    def splat(self, value: int):
        return ir.Constant(self.v32, [value] * LANES)

    def broadcast(self, scalar):
        b = self.b
        if scalar.type != self.i32:
            scalar = b.trunc(scalar, self.i32)
        one = b.insert_element(ir.Constant(self.v32, None), scalar, ir.Constant(self.i32, 0))
        return b.shuffle_vector(one, ir.Constant(self.v32, None), ir.Constant(self.v32, [0] * LANES))

    def lanes_below(self, count):
        """The mask of lanes j < count."""
        return self.b.icmp_signed("<", ir.Constant(self.v32, list(range(LANES))), self.broadcast(count))

    def load(self, ptr, mask):
        return self.b.call(self._load, [ptr, ir.Constant(self.i32, 4), mask, self.splat(0)])

    def store8(self, v, ptr, mask):
        self.b.call(self._store, [self.b.trunc(v, self.v8), ptr, ir.Constant(self.i32, 1), mask])

    def requantize(self, x, p, zp, lo, hi, rule: str = "reference"):
        """x: int32 sums with the bias added; p: the params() rows by name (vectors); zp, lo, hi:
        vectors. Returns clamp(MultiplyByQuantizedMultiplier(x) + zp) in int32 lanes; rule "ruy"
        rounds the right shift half up, "fp32" is XNNPACK's float rule (p[MULT]: the scales' bits)."""
        if rule == "fp32":
            return self.requantize_fp32(x, p, zp, lo, hi)
        b, v64 = self.b, self.v64
        x = b.call(self._sllv, [x, p[LEFT]])

        def splat64(value):
            return ir.Constant(v64, [value] * (LANES // 2))

        # SaturatingRoundingDoublingHighMul: (x*m + 2**30) >> 31, on even and odd lanes
        def high_mul(u, w):  # of the low dwords of each qword, sign-extended: vpmuldq
            sh = splat64(32)
            u64, w64 = b.bitcast(u, v64), b.bitcast(w, v64)
            prod = b.mul(b.ashr(b.shl(u64, sh), sh), b.ashr(b.shl(w64, sh), sh))
            return b.add(prod, splat64(1 << 30))

        def odd(v):
            return b.bitcast(b.lshr(b.bitcast(v, v64), splat64(32)), self.v32)

        m = p[MULT]
        even_q = b.bitcast(b.lshr(high_mul(x, m), splat64(31)), self.v32)
        odd_q = b.bitcast(b.shl(high_mul(odd(x), odd(m)), splat64(1)), self.v32)
        q = b.shuffle_vector(
            even_q, odd_q, ir.Constant(self.v32, [k if k % 2 == 0 else LANES + k for k in range(LANES)])
        )
        # RoundingDivideByPOT: (q >> right) + ((q & mask) > half + (q < 0)); ruy: > half
        threshold = p[HALF] if rule == "ruy" else b.sub(p[HALF], b.ashr(q, self.splat(31)))
        up = b.icmp_signed(">", b.and_(q, p[MASK]), threshold)
        shifted = b.ashr(q, p[RIGHT])
        r = b.select(up, b.add(shifted, self.splat(1)), shifted)
        # clamp before adding the zero point: r + zp may wrap in int32, where C++ computes in int64
        r = self.smin(self.smax(r, b.sub(lo, zp)), b.sub(hi, zp))
        return b.add(r, zp)

    def requantize_fp32(self, x, p, zp, lo, hi):
        """XNNPACK's fp32 rule: float32(x) * scale, clamped to [lo - zp, hi - zp], rounded half to even
        (vrndscaleps under the default rounding mode, as its cvtps2dq), plus zp."""
        b = self.b
        vf = ir.VectorType(ir.FloatType(), LANES)
        f = b.fmul(b.sitofp(x, vf), b.bitcast(p[MULT], vf))
        f_lo, f_hi = b.sitofp(b.sub(lo, zp), vf), b.sitofp(b.sub(hi, zp), vf)
        f = b.select(b.fcmp_ordered("<", f, f_lo), f_lo, f)
        f = b.select(b.fcmp_ordered(">", f, f_hi), f_hi, f)
        rint = cgutils.get_or_insert_function(b.module, ir.FunctionType(vf, [vf]), "llvm.nearbyint.v16f32")
        return b.add(b.fptosi(b.call(rint, [f]), self.v32), zp)

    def requantize_double(self, x, bias, scale, zp, lo, hi):
        """RequantDouble's rule on 16 int32 sums x (without the bias), in two halves of 8 double lanes:
        (double(x) + bias) * scale, rounded half away from zero (a truncation, see HALF_DOWN) and clamped
        to [lo - zp, hi - zp], plus zp. bias, scale: each a (low, high) pair of <8 x double>. (Under a
        ReLU, HALF_DOWN could go without its sign, but a row-level variant for it measured 4 % on ad01's
        layers at batch 64 and its code 1.3 MB more resident at load: not taken.)"""
        b = self.b
        vd = ir.VectorType(ir.DoubleType(), LANES // 2)
        copysign = cgutils.get_or_insert_function(
            b.module, ir.FunctionType(vd, [vd, vd]), "llvm.copysign.v8f64"
        )
        fmin = cgutils.get_or_insert_function(
            b.module, ir.FunctionType(vd, [vd, vd, self.i32]), "llvm.x86.avx512.min.pd.512"
        )
        half_down = ir.Constant(vd, [HALF_DOWN] * (LANES // 2))
        lo_zp, hi_zp = b.sub(lo, zp), b.sub(hi, zp)
        halves = []
        for k in range(2):
            f = b.fmul(b.fadd(b.sitofp(self.half(x, k), vd), bias[k]), scale[k])  # (no fused multiply-add)
            f = b.fadd(f, b.call(copysign, [half_down, f]))
            f_lo, f_hi = b.sitofp(self.half(lo_zp, k), vd), b.sitofp(self.half(hi_zp, k), vd)
            f = b.select(b.fcmp_ordered("<", f, f_lo), f_lo, f)  # (vmaxpd)
            f = b.call(fmin, [f, f_hi, ir.Constant(self.i32, 4)])  # (a select: a compare and a blend)
            halves.append(b.fptosi(f, ir.VectorType(self.i32, LANES // 2)))
        return b.add(b.shuffle_vector(halves[0], halves[1], ir.Constant(self.v32, list(range(LANES)))), zp)

    def half(self, v, k: int):
        """Lanes 8k .. 8k + 7 of a 16-lane vector."""
        lanes = ir.Constant(
            ir.VectorType(self.i32, LANES // 2), list(range(k * LANES // 2, (k + 1) * LANES // 2))
        )
        return self.b.shuffle_vector(v, ir.Constant(v.type, None), lanes)

    def load_doubles(self, context, table: Operand, row: int, ch, mask) -> tuple:
        """table[row, ch .. ch + 15] of a float64 table, as two <8 x double> (masked: nothing beyond is read)."""
        b = self.b
        vd = ir.VectorType(ir.DoubleType(), LANES // 2)
        fn = cgutils.get_or_insert_function(
            b.module,
            ir.FunctionType(vd, [vd.as_pointer(), self.i32, ir.VectorType(ir.IntType(1), LANES // 2), vd]),
            "llvm.masked.load.v8f64.p0",
        )
        ptr = row_ptr(context, b, table, row, ch, vd)
        return tuple(
            b.call(
                fn,
                [
                    b.gep(ptr, [ir.Constant(self.i32, k)]),
                    ir.Constant(self.i32, 8),
                    self.half(mask, k),
                    ir.Constant(vd, None),
                ],
            )
            for k in range(2)
        )

    def smax(self, u, w):
        return self.b.select(self.b.icmp_signed(">", u, w), u, w)

    def smin(self, u, w):
        return self.b.select(self.b.icmp_signed("<", u, w), u, w)

    def requantize_wide(self, x, w: dict, zp, lo, hi, left=None):
        """requantize() for the reference and ruy rules, each lane's two roundings one 64-bit floor
        (see widen()): w, the widen() rows of x's 16 channels (wide_params(); no WIDE_D row: the ruy
        rule); left: the LEFT row's vector where a channel may shift left (None: no left shift)."""
        b = self.b
        if left is not None:
            x = b.call(self._sllv, [x, left])
        r = self.floor_wide(x, w, WIDE_C)
        # clamp before adding the zero point: r + zp may wrap in int32, where C++ computes in int64
        r = self.smin(self.smax(r, b.sub(lo, zp)), b.sub(hi, zp))
        return b.add(r, zp)

    def floor_wide(self, x, w: dict, row: int = WIDE_Z):
        """Each lane's floor((x*M + w[row] - D*[x*M < -2**30]) / 2**S) (16 int32 lanes; widen()): row
        WIDE_C gives the result, WIDE_Z (widen's out_zp) the result plus the zero point, neither clamped.
        D, the reference rule's correction of negatives, only where w has a WIDE_D row (not ruy's)."""
        b, v64 = self.b, self.v64

        def splat64(value):
            return ir.Constant(v64, [value] * (LANES // 2))

        def low(u):  # the low dword of each qword, sign-extended: vpmuldq's operand
            return b.ashr(b.shl(u, splat64(32)), splat64(32))

        x64 = b.bitcast(x, v64)
        halves = []
        for k, u in enumerate((x64, b.lshr(x64, splat64(32)))):  # even lanes, odd lanes
            prod = b.mul(low(u), low(w[WIDE_M][k]))
            t = b.add(prod, w[row][k])
            if WIDE_D in w:
                neg = b.icmp_signed("<", prod, splat64(-(1 << 30)))
                t = b.select(neg, b.sub(t, w[WIDE_D][k]), t)
            halves.append(b.bitcast(b.ashr(t, w[WIDE_S][k]), self.v32))
        order = [k // 2 * 2 + (LANES if k % 2 else 0) for k in range(LANES)]  # the low dwords, interleaved
        return b.shuffle_vector(halves[0], halves[1], ir.Constant(self.v32, order))

    def wide_folded(self, context, table: Operand):
        """widen()'s header word 1: does WIDE_Z fold the zero point in (an i1)."""
        base, _ = self._wide_base(context, table)
        flag = self.b.load(self.b.gep(base, [ir.Constant(ir.IntType(64), 2)]), align=4)
        return self.b.icmp_signed("!=", flag, ir.Constant(flag.type, 0))

    def wide_params(self, context, table: Operand, ch, rule: str, folded: bool = False) -> dict:
        """widen()'s rows for channels ch .. ch + 15 (ch a multiple of 16 below the table's channels),
        as (even, odd) pairs of 8 int64 lanes: WIDE_M, WIDE_S, WIDE_Z (folded) or WIDE_C, and the reference
        rule's WIDE_D."""
        b = self.b
        rows = (WIDE_M, WIDE_S, WIDE_Z if folded else WIDE_C) + ((WIDE_D,) if rule == "reference" else ())
        base, columns = self._wide_base(context, table)

        def const(value):
            return ir.Constant(columns.type, value)

        pad = b.shl(b.ashr(b.add(columns, const(LANES - 1)), const(4)), const(4))  # padded16(columns)
        i64 = b.bitcast(base, ir.IntType(64).as_pointer())
        loaded = {}
        for row in rows:
            at = b.add(b.add(const(LANES), b.mul(const(row), pad)), ch)  # after the header
            ptrs = [b.gep(i64, [b.add(at, const(8 * k))]) for k in range(2)]
            loaded[row] = [b.load(b.bitcast(q, self.v64.as_pointer()), align=4) for q in ptrs]
        return loaded

    def wide_left(self, context, table: Operand):
        """widen()'s header flag: does any channel shift left (an i1)."""
        base, _ = self._wide_base(context, table)
        flag = self.b.load(base, align=4)
        return self.b.icmp_signed("!=", flag, ir.Constant(flag.type, 0))

    def _wide_base(self, context, table: Operand):
        """The pointer to widen()'s region (int32 row WIDE) and the table's columns."""
        arr = context.make_array(table.ty)(context, self.b, table.value)
        columns = cgutils.unpack_tuple(self.b, arr.shape, 2)[1]
        return self.b.gep(arr.data, [self.b.mul(ir.Constant(columns.type, WIDE), columns)]), columns

    def params(self, context, table: Operand, ch, mask) -> dict:
        """The params() rows for channels ch.. ch+15, as vectors."""
        rows = (BIAS, MULT, LEFT, RIGHT, MASK, HALF)
        return {r: self.load(row_ptr(context, self.b, table, r, ch, self.v32), mask) for r in rows}


@intrinsic
def _requantize16(typingctx, acc, acc_start, offset, rq, ch_start, count, out, out_start):
    """out[out_start + j] = requantize(acc[acc_start + j] + offset) with rq (Requant) and the params() of
    channel ch_start + j, for j < count <= 16 (masked loads and stores: nothing beyond is touched)."""
    if rule_of(rq) == "double":  # (its rows: requantize_rows)
        return None
    i = types.intp
    sig = types.void(acc, i, types.int64, rq, i, i, out, i)
    if not SIMD:  # AVX-512 IR: without it the callers take their scalar loops and never get here
        return sig, empty_codegen

    def codegen(context, builder, signature, args):
        acc_, acc_start_, offset_, rq_, ch_start_, count_, out_, out_start_ = (
            operand(context, builder, signature, args, k) for k in range(8)
        )
        v = VectorIR(builder)
        mask = v.lanes_below(count_)
        p = v.params(context, rq_.table, ch_start_, mask)
        x = v.load(element_ptr(context, builder, acc_, acc_start_, v.v32), mask)
        x = builder.add(builder.add(x, v.broadcast(offset_)), p[BIAS])
        zp, lo, hi = v.broadcast(rq_.out_zp), v.broadcast(rq_.lo), v.broadcast(rq_.hi)
        r = v.requantize(x, p, zp, lo, hi, rule_of(signature.args[3]))
        v.store8(r, element_ptr(context, builder, out_, out_start_, v.v8), mask)
        return context.get_dummy_value()

    return sig, codegen


@njit(inline="always", cache=True)
def _requantize_scalar(v, table, ch, out_zp, lo, hi):
    return requantize(v + table[BIAS, ch], table[MULT, ch], table[SHIFT, ch], out_zp, lo, hi)


@njit(cache=True)
def requantize_pixels(acc, width, offsets, rq, out):
    """out[p, o] = requantize(acc[p * width + o] + offsets[p]) with rq (Requant, RequantRuy or RequantFp32;
    its table's params() of channel o; RequantDouble: requantize_rows), for the pixels p and channels o of
    out [P, OC]: the GEMM's rows, width apart, to the output."""
    pixels, oc = out.shape
    flat = flat_view(out)
    for p in range(pixels):
        if not SIMD:
            for o in range(oc):
                flat[p * oc + o] = requantize_one(acc[p * width + o] + offsets[p], rq, o)
            continue
        for o in range(0, oc, LANES):
            count = min(LANES, oc - o)
            _requantize16(acc, p * width + o, offsets[p], rq, o, count, flat, p * oc + o)


@njit(inline="always", cache=True)
def _double_row(sums, offset, bias, scale, out_zp, lo, hi, out):
    """The double rule on a row (offset: a float64 integer; every sum here is exact: whole numbers below
    2**53), in a loop LLVM vectorizes in 8 double lanes (faster than _requantize16's IR). As the
    reference: the rounded value converted to int32 (x86 gives INT32_MIN for a value out of range),
    plus the zero point in int32 arithmetic (wrapping), clamped. (The fused epilogue clamps before
    adding the zero point: fully_connected.prepare sends a layer here where that can differ.)"""
    for o in range(out.size):
        v = (np.float64(sums[o]) + (bias[o] + offset)) * scale[o]
        r = v + np.copysign(HALF_DOWN, v)
        q = np.int64(r) if -2147483649.0 < r < 2147483648.0 else np.int64(-2147483648)
        q = ((q + out_zp + 2147483648) & 0xFFFFFFFF) - 2147483648
        out[o] = min(max(q, lo), hi)


@njit(inline="always", cache=True)
def _double_row_fits(sums, offset, bias, scale, out_zp, lo, hi, out):
    """_double_row where every rounded value plus the zero point fits int32 (no INT32_MIN, no wrapping):
    the zero point's add and the clamp then go in 32-bit integer lanes (_double_row's are 64-bit), 16
    a vector where the double lanes are 8 (AVX-512 on Zen 4: 0.31 -> 0.24 ns a value; clamped in
    double before the conversion instead: 0.31)."""
    zp, low, high = np.int32(out_zp), np.int32(lo), np.int32(hi)
    for o in range(out.size):
        v = (np.float64(sums[o]) + (bias[o] + offset)) * scale[o]
        q = np.int32(np.int32(v + np.copysign(HALF_DOWN, v)) + zp)  # (int32 + int32 is int64 in Numba)
        out[o] = min(max(q, low), high)


def requantize_rows(acc, width, offsets, rq, out, fits=False):
    """requantize_pixels() for any Requant tuple: the double rule's rows in double lanes (_double_row;
    fits: no value can leave int32 with its zero point, _double_row_fits)."""
    raise NotImplementedError  # njit only: the overload below picks the loop by rq's type


@overload(requantize_rows, inline="always", jit_options={"cache": True})
def _requantize_rows_rule(acc, width, offsets, rq, out, fits=False):
    if rule_of(rq) != "double":
        return lambda acc, width, offsets, rq, out, fits=False: requantize_pixels(
            acc, width, offsets, rq, out
        )

    def double_rows(acc, width, offsets, rq, out, fits=False):
        bias, scale = rq.table[DOUBLE_BIAS], rq.table[DOUBLE_SCALE]
        for p in range(out.shape[0]):
            sums = acc[p * width : p * width + out.shape[1]]
            if fits:
                _double_row_fits(sums, np.float64(offsets[p]), bias, scale, rq.out_zp, rq.lo, rq.hi, out[p])
            else:
                _double_row(sums, np.float64(offsets[p]), bias, scale, rq.out_zp, rq.lo, rq.hi, out[p])

    return double_rows
