"""SOFTMAX on uint8/int8 (kernels/activations.cc SoftmaxPrepare<kReference>, reference_ops::Softmax).

The reference kernel is gemmlowp fixed point, over the last axis, row by row:
  diff = q - max(row)                      (an integer in [-255, 0])
  skipped where diff < diff_min            (its output is the type's minimum)
  e    = exp_on_negative_values(Q5.26: SRDHM(diff << left_shift, multiplier))   (Q0.31)
  sum  = sum of RoundingDivideByPOT(e, 12) (Q12.19, int32)
  out  = RoundingDivideByPOT(SRDHM(GetReciprocal(sum), e), num_bits_over_unit + 23) + type min, clamped
with multiplier, left_shift = QuantizeMultiplierGreaterThanOne(min(beta * s_in * 2**26, 2**31 - 1))
and diff_min = -floor(31 * 2**26 / 2**left_shift) (PreprocessSoftmaxScaling, CalculateInputRadius).
e depends on diff alone, so prepare() tabulates it for the 256 possible differences.
Where a row's sum reaches 512.0 (512 elements equal to its maximum, say) that shift exceeds 31 and
LiteRT's reference aborts (a TFLITE_CHECK, measured); here the division is then exactly rounded (int64).
The output is in units of 1/256 from the type's minimum whatever the output tensor says: the reference
checks the int8 output (zero point -128, scale 1/256) and runs uint8 outputs unchecked.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..kernels.requantize import SIMD
from ..kernels.softmax8 import ROWS16, row_exp16, row_max16, row_out16, rows16_softmax
from ..numerics.fixedpoint import INT32_MAX, quantize_multiplier, wrap_int32
from ..numerics.fixedpoint import saturating_rounding_doubling_high_mul as srdhm
from ..numerics.gemmlowp import exp_on_negative_values, get_reciprocal, libm
from ..profiles import profile_of
from . import activations_float
from .common import Prepared, Shape, bound, require, unary_8bit, view
from .softmax16 import prepare_softmax16

SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12


@njit(cache=True)
def exp_table(multiplier, left_shift, diff_min):
    """exp of every input difference -d (d = 0..255) as Q0.31; -1 marks a skipped difference."""
    table = np.empty(256, np.int64)
    for d in range(256):
        diff = -np.int64(d)
        if diff >= diff_min:
            rescaled = srdhm(wrap_int32(diff << left_shift), multiplier)
            table[d] = exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS)
        else:
            table[d] = -1
    return table


@njit(inline="always", cache=True)
def _row_max(x, base, depth):
    m = np.int64(x[base])
    for c in range(1, depth):
        m = max(m, np.int64(x[base + c]))
    return m


@njit(cache=True)
def _softmax_rows(x, out, r0, r1, depth, table, terms, qmin, qmax):
    """table: exp of each difference (Q0.31, -1 where skipped); terms: its RoundingDivideByPOT(., 12), 0
    where skipped. The loops are branch-free so that they vectorize; the row sum wraps in int32 as the
    reference's (a sum modulo 2**32 wrapped once equals one wrapped at every step)."""
    for r in range(r0, r1):
        base = r * depth
        m = _row_max(x, base, depth)
        total = np.int64(0)
        for c in range(depth):
            total += terms[m - np.int64(x[base + c])]
        scale, bits_over_unit = get_reciprocal(wrap_int32(total), ACCUMULATION_INTEGER_BITS)
        exponent = bits_over_unit + 31 - 8
        mask = (np.int64(1) << exponent) - 1
        threshold = mask >> 1  # the products are >= 0: RoundingDivideByPOT's threshold has no sign term
        for c in range(depth):
            e = table[m - np.int64(x[base + c])]
            p = (scale * e + np.int64(1 << 30)) >> 31  # SRDHM, e >= 0 where it counts: no saturation
            v = (p >> exponent) + np.int64((p & mask) > threshold) + qmin
            v = min(max(v, qmin), qmax)
            out[base + c] = v if e >= 0 else qmin


@kernel
def _softmax(x, out, rows, depth, table, terms, qmin, qmax):
    chunk = max(1, (1 << 14) // depth)
    for c in prange((rows + chunk - 1) // chunk):
        _softmax_rows(x, out, c * chunk, min(rows, (c + 1) * chunk), depth, table, terms, qmin, qmax)


SIMD_CHUNK = 1 << 12  # elements of the rows a step of _softmax_simd takes (at least one row)


def simd_chunk(depth: int) -> int:
    """Rows a step of _softmax_simd takes."""
    return max(1, SIMD_CHUNK // depth)


@kernel
def _softmax_simd(x, out, rows, depth, table, terms, qmin, qmax, row_work, exp_work):
    """_softmax in 16 int32 lanes (kernels/softmax8.py); table and terms as int32. Each pass runs over a
    chunk of rows before the next, so that the rows' dependency chains (max, sum, reciprocal) overlap;
    the exps gathered for the sums wait in a chunk's buffer for the outputs. row_work [threads, 2,
    chunk] (int64) and exp_work [threads, chunk * depth] (int32): each thread's, from the plan. A row
    whose sum reaches 512.0 (exponent above 31) takes the scalar loop."""
    chunk = row_work.shape[2]
    for c in prange((rows + chunk - 1) // chunk):
        r0, r1 = c * chunk, min(rows, (c + 1) * chunk)
        t = numba.get_thread_id()
        tops, sums, es = row_work[t, 0], row_work[t, 1], exp_work[t]
        for r in range(r0, r1):
            tops[r - r0] = row_max16(x, r * depth, depth)
        for r in range(r0, r1):
            sums[r - r0] = row_exp16(x, r * depth, depth, tops[r - r0], table, es, (r - r0) * depth)
        for r in range(r0, r1):
            scale, bits_over_unit = get_reciprocal(sums[r - r0], ACCUMULATION_INTEGER_BITS)
            exponent = bits_over_unit + 31 - 8
            if exponent <= 31:
                row_out16(es, (r - r0) * depth, out, r * depth, depth, scale, exponent, qmin, qmax)
            else:
                _softmax_rows(x, out, r, r + 1, depth, table, terms, qmin, qmax)


@kernel(team=False)  # (its last rows after the loop)
def _softmax_lanes(x, out, rows, depth, table, terms, qmin, qmax):
    """_softmax for rows of at most 16 elements (kernels/softmax8.py rows16_softmax): 16 rows at a time,
    one per lane, tasks of 64 such blocks; the last rows % 16 by the scalar loop. table and terms int32."""
    blocks = rows // ROWS16
    per_task = 64
    for c in prange((blocks + per_task - 1) // per_task):
        for k in range(c * per_task, min(blocks, (c + 1) * per_task)):
            rows16_softmax(x, k * ROWS16, depth, out, table, qmin, qmax)
    _softmax_rows(x, out, blocks * ROWS16, rows, depth, table, terms, qmin, qmax)


@njit(cache=True)
def _softmax_lut_rows(x, out, r0, r1, depth, table, params):
    """LiteRT's optimized 8-bit softmax (numerics="litert"): a float32 table of expf(-s_in * beta * d),
    the row sum in float32, 1 / (sum * s_out), and each probability rounded (int8: half away from zero;
    uint8: + 0.5 truncated) plus the output zero point."""
    inv_scale, zp, qmin, qmax, uint8_out = params
    for r in range(r0, r1):
        base = r * depth
        m = np.int64(x[base])
        for c in range(1, depth):
            m = max(m, np.int64(x[base + c]))
        total = np.float32(0.0)
        for c in range(depth):
            total = np.float32(total + table[m - np.int64(x[base + c])])
        inv = np.float32(np.float32(1.0) / np.float32(total * inv_scale))
        for c in range(depth):
            p = np.float32(table[m - np.int64(x[base + c])] * inv)
            q = (
                np.int64(np.float32(p + np.float32(0.5)))
                if uint8_out
                else np.int64(np.floor(abs(p) + 0.5)) * (1 if p >= 0 else -1)
            )
            out[base + c] = min(max(q + zp, qmin), qmax)


@kernel
def _softmax_lut(x, out, rows, depth, table, params):
    chunk = max(1, (1 << 16) // depth)
    for c in prange((rows + chunk - 1) // chunk):
        _softmax_lut_rows(x, out, c * chunk, min(rows, (c + 1) * chunk), depth, table, params)


def _prepare_lut(shape, s_in: float, beta: float, out, s_out: float, zp_out: int) -> Prepared:
    """PopulateSoftmaxLookupTable + optimized_ops::Softmax (LiteRT's builtin kernel for 8-bit softmax)."""
    f32 = np.float32
    scale = f32(-f32(s_in) * f32(beta))
    with np.errstate(invalid="ignore", over="ignore"):  # an infinite scale gives what LiteRT's table holds
        table = np.array([libm().expf(scale * f32(d)) for d in range(256)], np.float32)  # d = max - x
    info = np.iinfo(out.np_dtype)
    params = (f32(s_out), zp_out, int(info.min), int(info.max), out.dtype == "uint8")
    depth = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    softmax = _softmax_lut.pick(rows * depth // 16)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        if not rows * depth:
            return []
        return [(softmax, (view(inputs[0]), view(outputs[0]), rows, depth, table, params))]

    return bound([shape], bind)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        return activations_float.prepare(op, g, shapes, values)
    if g.tensors[op.inputs[0]].dtype == "int16":
        return prepare_softmax16(op, g, shapes)
    _, out, (s_in, _), (s_out, zp_out) = unary_8bit(op, g)
    shape = tuple(shapes[0])
    require(op, len(shape) >= 1, "input must have rank >= 1")
    if out.dtype == "int8":  # SoftmaxPrepare: TF_LITE_ENSURE_EQ zero point, TF_LITE_ENSURE_NEAR scale (float)
        require(op, zp_out == -128, f"{out.describe()}: int8 output zero point must be -128")
        f32 = np.float32
        require(
            op,
            abs(f32(s_out) - f32(1.0 / 256)) <= f32(0.001) * f32(1.0 / 256),
            f"{out.describe()}: int8 output scale must be 1/256",
        )
    beta = float(np.float32(op.options.get("beta", 0.0)))  # the schema default
    real = min(beta * s_in * float(1 << (31 - SCALED_DIFF_INTEGER_BITS)), float(INT32_MAX))
    require(
        op, real > 1.0, f"beta {beta:g} * input scale {s_in:g} too small (QuantizeMultiplierGreaterThanOne)"
    )
    if profile_of(g) == "litert":  # LiteRT's builtin (optimized) kernel: XNNPACK leaves 8-bit softmax
        return _prepare_lut(shape, s_in, beta, out, s_out, zp_out)
    multiplier, left_shift = quantize_multiplier(real)
    radius = math.floor(
        ((1 << SCALED_DIFF_INTEGER_BITS) - 1)
        * float(1 << (31 - SCALED_DIFF_INTEGER_BITS))
        / float(1 << left_shift)
    )
    table = exp_table(multiplier, left_shift, -radius)
    terms = np.where(table >= 0, (table + (1 << (ACCUMULATION_INTEGER_BITS - 1))) >> ACCUMULATION_INTEGER_BITS, 0)
    info = np.iinfo(out.np_dtype)
    qmin, qmax = int(info.min), int(info.max)
    depth = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))

    if SIMD and 0 < depth <= ROWS16:  # a row per lane (int32 tables for the gathers)
        softmax = _softmax_lanes.pick(rows * depth // 4)
        table, terms = table.astype(np.int32), terms.astype(np.int32)
        scratch = []
    elif SIMD and depth:  # 16 lanes a step: int32 tables for the gathers (entries fit: Q0.31 and Q12.19 terms)
        softmax = _softmax_simd.pick(rows * depth // 4)
        table, terms = table.astype(np.int32), terms.astype(np.int32)
        threads, chunk = numba.config.NUMBA_NUM_THREADS, simd_chunk(depth)  # numba.get_thread_id() < threads
        scratch = [((threads, 2, chunk), np.int64), ((threads, chunk * depth), np.int32)]
    else:
        softmax = _softmax.pick(rows * depth)  # about 6 ns an element (a row's reciprocal, two roundings)
        scratch = []

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        if not rows * depth:
            return []
        return [(softmax, (view(inputs[0]), view(outputs[0]), rows, depth, table, terms, qmin, qmax, *scratch))]

    return bound([shape], bind, scratch)
