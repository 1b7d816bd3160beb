"""SUM (kernels/reduce.cc EvalSum with BUILTIN_REF).

uint8, int8: reference_ops::QuantizedMeanOrSum with compute_sum, i.e. MEAN's arithmetic without the
1/n (mean.requantized_sum), whatever the scales:
  m, shift = QuantizeMultiplier(double(s_in) / double(s_out))                  (PrepareMeanOrSum)
  out = clamp(MultiplyByQuantizedMultiplier(int32(sum(q) - zp_in * n), m, shift) + zp_out)
LiteRT's reference SUM calls it on the data read as uint8 for every quantized type: int8 bytes are
summed as uint8 (q + 256 below 0), the result clamped to [0, 255] and its byte read back as int8;
the engine does the same, bit for bit. int16 would read half of the input's bytes and leave half of
the output's unwritten (uninitialized memory): refused.
float32, int32, int64: EvalGeneric<kSum>: each output element accumulates its inputs in row-major
order from 0, in the type itself (float32 sums in that order; integers wrap); when every axis is
reduced ReduceAllDims starts from the first element instead (a lone -0.0 stays -0.0).

numerics="tflm" (micro/kernels/reduce_common.cc): int8 and int16 through QuantizedMeanOrSum on their
own types (no zero point rule), float32 always from 0; int32/int64 are refused (profiles/tflm.py).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..numerics.fixedpoint import quantize_multiplier
from ..profiles import profile_of
from .common import Prepared, Shape, fail, per_tensor, require, require_types, tensors
from .mean import reduce_geometry, requantized_sum

TYPES = ("float32", "int32", "int64", "uint8", "int8", "int16")


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


def _raw_sum(in_shape: Shape, axes: list[int], out_shape: Shape, dtype: str, from_first: bool) -> Prepared:
    kept = [d for d in range(len(in_shape)) if d not in axes]
    perm = tuple(kept + sorted(axes))  # each output's inputs in row-major order, last and contiguous
    n_red = int(np.prod([in_shape[a] for a in axes], dtype=np.int64))
    n_out = int(np.prod([in_shape[d] for d in kept], dtype=np.int64))
    zero = np.float32(0) if dtype == "float32" else np.int64(0)
    from_first = from_first and len(axes) == len(in_shape)
    sum_rows = _sum_rows.pick(n_out * n_red)
    if perm == tuple(range(len(in_shape))):

        def run(inputs: list, outputs: list, scratch: list) -> None:
            sum_rows(inputs[0].reshape(n_out, n_red), outputs[0].reshape(-1), zero, from_first)

        return Prepared([out_shape], run)
    moved = tuple(in_shape[d] for d in perm)

    def run_moved(inputs: list, outputs: list, scratch: list) -> None:
        t = scratch[0]
        np.copyto(t, inputs[0].transpose(perm))
        sum_rows(t.reshape(n_out, n_red), outputs[0].reshape(-1), zero, from_first)

    return Prepared([out_shape], run_moved, scratch=[(moved, np.dtype(dtype).type)])


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require_types(op, src, TYPES)
    in_shape, axes, out_shape = reduce_geometry(op, g, shapes, values)
    micro = profile_of(g) == "tflm"
    if src.dtype not in ("uint8", "int8", "int16"):
        return _raw_sum(in_shape, axes, out_shape, src.dtype, from_first=not micro)
    (s_in, zp_in), (s_out, zp_out) = per_tensor(op, src), per_tensor(op, dst)
    require(op, s_in > 0 and s_out > 0, "scales must be positive")
    if src.dtype == "int16" and not micro:
        raise fail(
            op,
            "int16 SUM: LiteRT's reference kernel reads the int16 data as uint8 bytes and leaves "
            "half of its output unwritten (uninitialized memory), so no result is defined",
        )
    mult = quantize_multiplier(float(np.float32(s_in)) / float(np.float32(s_out)))
    if not axes:  # each element rescaled alone: a trailing axis of 1 summed
        in_shape, axes = (*in_shape, 1), [len(in_shape)]
    if micro or src.dtype == "uint8":
        return requantized_sum(in_shape, axes, out_shape, mult, (zp_in, zp_out), dst.np_dtype)
    as_bytes = requantized_sum(in_shape, axes, out_shape, mult, (zp_in, zp_out), np.uint8)
    run_bytes = as_bytes.run

    def run_int8(inputs: list, outputs: list, scratch: list) -> None:
        run_bytes([inputs[0].view(np.uint8)], [outputs[0].view(np.uint8)], scratch)

    return Prepared([out_shape], run_int8, scratch=as_bytes.scratch)
