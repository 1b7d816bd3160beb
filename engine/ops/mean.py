"""MEAN (kernels/reduce.cc EvalMean with BUILTIN_REF), and the reduce ops' shared helpers.

float32, int32, int64: reference_ops::Mean: each output's inputs summed in row-major order from 0
(float32 in float32; int32 and int64 in int64), divided by their count (float32 division; C's
truncating integer division). uint8/int8/int16: reference_ops::QuantizedMeanOrSum:

The reference kernel takes the integer path for every axis set (the spatial [1, 2] case included):
  m, shift = QuantizeMultiplier(double(s_in) / double(s_out))           (Prepare)
  k = min(floor(log2(n)), 32, 31 + shift); m' = (m << k) // n; shift' = shift - k
  out = clamp(MultiplyByQuantizedMultiplier(int32(sum(q) - zp_in * n), m', shift') + zp_out)
with n the number of reduced elements and the sum accumulated in int32.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..numerics.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, wrap_int32
from ..profiles import litert, litert_xnn, profile_of
from .common import (
    Prepared,
    Shape,
    bound,
    fail,
    per_tensor,
    per_thread,
    require,
    require_types,
    tensors,
    view,
)


@kernel
def _mean_block(x, out, offset, m, shift, zp_out, lo, hi, accs):
    """x viewed as (outer, reduced, inner), axes contiguous: sum the middle axis, then requantize.
    accs [threads, inner]: each thread's sums, from the plan."""
    n_outer, n_red, n_inner = x.shape
    for o in prange(n_outer):
        acc = accs[numba.get_thread_id()]
        acc[:] = 0  # int32 like the reference's temp_sum
        for r in range(n_red):
            for i in range(n_inner):
                acc[i] += np.int32(x[o, r, i])
        for i in range(n_inner):
            v = multiply_by_quantized_multiplier(wrap_int32(np.int64(acc[i]) - offset), m, shift) + zp_out
            out[o, i] = min(max(v, lo), hi)


@kernel
def _finish(sums, out, offset, m, shift, zp_out, lo, hi):
    for i in prange(sums.size):
        r = multiply_by_quantized_multiplier(wrap_int32(np.int64(sums[i]) - offset), m, shift) + zp_out
        out[i] = min(max(r, lo), hi)


@kernel
def _sum_rows(x, out, zero, from_first):
    """out[o] = sum of row x[o] in order, accumulated in zero's type (the output type, or int64 that
    the store into an 8/16/32-bit output wraps back); from_first: start from x[o, 0] (ReduceAllDims)."""
    n_outer, n_red = x.shape
    for o in prange(n_outer):
        acc = zero
        start = 0
        if from_first:
            acc = x[o, 0]
            start = 1
        for r in range(start, n_red):
            acc = acc + x[o, r]
        out[o] = acc


@kernel
def _divide_float(sums, out, n):
    for i in prange(sums.size):
        out[i] = sums[i] / n


@kernel
def _divide_int(sums, out, n):
    """C's integer division (truncation toward zero), then the store into the output type."""
    for i in prange(sums.size):
        q = abs(sums[i]) // n
        out[i] = -q if sums[i] < 0 else q


def raw_sum(
    in_shape: Shape, axes: list[int], out_shape: Shape, dtype: str, from_first: bool, divisor: int = 0
) -> Prepared:
    """The reference's ReduceGeneric / ReduceSumImpl on raw values: each output accumulates its inputs in
    row-major order from 0 (from the first one with from_first, when every axis is reduced), float32 in
    float32, integers in int64; divisor > 0: the sums then divided by it (reference_ops::Mean)."""
    kept = [d for d in range(len(in_shape)) if d not in axes]
    perm = tuple(kept + sorted(axes))  # each output's inputs in row-major order, last and contiguous
    n_red = int(np.prod([in_shape[a] for a in axes], dtype=np.int64))
    n_out = int(np.prod([in_shape[d] for d in kept], dtype=np.int64))
    floating = dtype == "float32"
    zero = np.float32(0) if floating else np.int64(0)
    from_first = from_first and len(axes) == len(in_shape)
    sum_rows = _sum_rows.pick(n_out * n_red)
    moving = perm != tuple(range(len(in_shape)))
    scratch = [(tuple(in_shape[d] for d in perm), np.dtype(dtype).type)] if moving else []
    if divisor:
        scratch.append(((n_out,), np.float32 if floating else np.int64))
        divide = (_divide_float if floating else _divide_int).pick(n_out)
        n = np.float32(divisor) if floating else np.int64(divisor)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        x, calls = inputs[0], []
        if moving:  # (the reduced axes last)
            calls.append((np.copyto, (scratch[0], x.transpose(perm))))
            x = scratch[0]
        target = scratch[-1] if divisor else view(outputs[0])
        calls.append((sum_rows, (view(x, (n_out, n_red)), target, zero, from_first)))
        if divisor:
            calls.append((divide, (target, view(outputs[0]), n)))
        return calls

    return bound([out_shape], bind, scratch)


@kernel
def _finish_xnn(sums, out, scale, bias, lo, hi):
    """XNNPACK's int32 -> 8-bit convert of the raw sums: nearbyint(float(sum) * scale + bias)."""
    for i in prange(sums.size):
        v = np.float32(np.float32(sums[i]) * scale) + bias
        out[i] = min(max(np.int64(np.rint(v)), lo), hi)


def xnn_reduce_params(s_in: float, s_out: float, zp_in: int, zp_out: int, n: int, mean: bool) -> tuple:
    """(scale, bias) of XNNPACK's quantized mean or sum (numerics="litert"): scale = f32(s_in / s_out),
    times f32(1 / n) for a mean, and bias = zp_out - (n * zp_in) * scale, every step in float32."""
    f32 = np.float32
    scale = f32(f32(s_in) / f32(s_out))
    if mean:
        scale = f32(scale * f32(f32(1.0) / f32(n)))
    return scale, f32(f32(zp_out) - f32(f32(n * zp_in) * scale))


def resolve_axes(op: Op, axes: np.ndarray, rank: int) -> list[int]:
    """ResolveAxis: negative axes wrap, duplicates drop, order of first appearance kept."""
    out: list[int] = []
    for a in axes.reshape(-1).tolist():
        a = int(a)
        if not -rank <= a < rank:
            raise fail(op, f"axis {a} out of range for rank {rank}")
        a = a + rank if a < 0 else a
        if a not in out:
            out.append(a)
    return out


def mean_multiplier(s_in: float, s_out: float, n: int) -> tuple[int, int]:
    """The output multiplier and shift with the 1/n folded in, as QuantizedMeanOrSum does it."""
    m, shift = quantize_multiplier(float(np.float32(s_in)) / float(np.float32(s_out)))
    k = min(n.bit_length() - 1, 32, 31 + shift)
    return (m << k) // n, shift - k


def reduce_geometry(
    op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]
) -> tuple[Shape, list[int], Shape]:
    """The reduce ops' shared checks (MEAN, SUM, REDUCE_MAX): constant int32 axes, a non-empty input;
    returns (input shape, resolved axes, output shape under keep_dims)."""
    ins, outs = tensors(op, g)
    src, axes_t, dst = ins[0], ins[1], outs[0]
    require(op, dst.dtype == src.dtype, f"output type {dst.dtype} differs from input type {src.dtype}")
    require(op, axes_t.dtype == "int32", f"{axes_t.describe()}: axes must be int32")
    require(op, values[1] is not None, f"{axes_t.describe()}: axes must be known before running")
    in_shape = tuple(shapes[0])
    axes = resolve_axes(op, np.asarray(values[1]), len(in_shape))
    require(op, int(np.prod(in_shape, dtype=np.int64)) > 0, "empty input not supported")
    if op.options.get("keep_dims", False):
        out_shape = tuple(1 if d in axes else n for d, n in enumerate(in_shape))
    else:
        out_shape = tuple(n for d, n in enumerate(in_shape) if d not in axes)
    return in_shape, axes, out_shape


def requantized_sum(
    in_shape: Shape, axes: list[int], out_shape: Shape, mult: tuple[int, int], zps: tuple[int, int], dtype
) -> Prepared:
    """QuantizedMeanOrSum's arithmetic: the int32 sum over axes less zp_in * n, rescaled by mult =
    (multiplier, shift) (MEAN folds 1/n into it, SUM does not), plus zp_out, saturated to dtype."""
    m, shift = mult
    zp_in, zp_out = zps
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    n = int(np.prod([in_shape[a] for a in axes], dtype=np.int64))
    offset = zp_in * n
    first, last = min(axes), max(axes)
    if last - first + 1 == len(axes):  # one contiguous block of axes (the spatial [1, 2] case)
        block = (
            int(np.prod(in_shape[:first], dtype=np.int64)),
            n,
            int(np.prod(in_shape[last + 1 :], dtype=np.int64)),
        )

        mean_block = _mean_block.pick(int(np.prod(in_shape, dtype=np.int64)))
        accs = per_thread(block[2], np.int32)  # each thread's sums

        def bind_block(inputs: list, outputs: list, scratch: list) -> list:
            x, out = view(inputs[0], block), view(outputs[0], (block[0], block[2]))
            return [(mean_block, (x, out, offset, m, shift, zp_out, lo, hi, scratch[0]))]

        return bound([out_shape], bind_block, [accs])
    sums_shape = tuple(1 if d in axes else s for d, s in enumerate(in_shape))
    finish = _finish.pick(int(np.prod(sums_shape)))
    reduce_axes = tuple(axes)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        sums = scratch[0]
        total = functools.partial(np.sum, axis=reduce_axes, dtype=np.int32, out=sums, keepdims=True)
        return [
            (total, (inputs[0],)),
            (finish, (view(sums), view(outputs[0]), offset, m, shift, zp_out, lo, hi)),
        ]

    return bound([out_shape], bind, [(sums_shape, np.int32)])


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require_types(op, src, ("uint8", "int8", "int16", "float32", "int32", "int64"))
    require_types(op, dst, (src.dtype,))
    in_shape, axes, out_shape = reduce_geometry(op, g, shapes, values)
    if src.dtype in ("float32", "int32", "int64"):  # reference_ops::Mean: sums (int64 for int32), / n
        litert_xnn.require_reproduced(op, g)
        n = int(np.prod([in_shape[a] for a in axes], dtype=np.int64))
        return raw_sum(in_shape, axes, out_shape, src.dtype, from_first=False, divisor=n)
    s_in, zp_in = per_tensor(op, src)
    s_out, zp_out = per_tensor(op, dst)
    require(op, s_in > 0 and s_out > 0, "scales must be positive")
    if not axes:  # ReduceIsCopy

        def bind_copy(inputs: list, outputs: list, scratch: list) -> list:
            return [(np.copyto, (outputs[0], view(inputs[0], out_shape)))]

        return bound([out_shape], bind_copy)
    n = int(np.prod([in_shape[a] for a in axes], dtype=np.int64))
    if profile_of(g) == "litert" and litert.delegated(op, g):  # XNNPACK's mean
        params = xnn_reduce_params(s_in, s_out, zp_in, zp_out, n, mean=True)
        return xnn_reduce(in_shape, out_shape, tuple(axes), params, np.iinfo(dst.np_dtype))
    mult = mean_multiplier(s_in, s_out, n)
    return requantized_sum(in_shape, axes, out_shape, mult, (zp_in, zp_out), dst.np_dtype)


def xnn_reduce(in_shape: Shape, out_shape: Shape, axes: tuple, params: tuple, info) -> Prepared:
    """Raw int32 sums over the axes, then XNNPACK's float32 rescale of each."""
    sums_shape = tuple(1 if d in axes else s for d, s in enumerate(in_shape))
    finish = _finish_xnn.pick(int(np.prod(sums_shape)))
    scale, bias = params
    lo, hi = int(info.min), int(info.max)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        sums = scratch[0]
        np.sum(inputs[0], axis=axes, dtype=np.int32, out=sums, keepdims=True)
        finish(sums.reshape(-1), outputs[0].reshape(-1), scale, bias, lo, hi)

    return Prepared([out_shape], run, scratch=[(sums_shape, np.int32)])
