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

numerics="litert": XNNPACK takes 8-bit SUM quantized per tensor and rescales the int32 sums in float32,
as its MEAN without the 1/n (mean.xnn_reduce_params); it takes float32 SUM too, summed in its own order:
refused (litert_xnn.UNREPRODUCED_FLOAT).

numerics="tflm" (micro/kernels/reduce_common.cc): int8 and int16 through QuantizedMeanOrSum on their
own types (no zero point rule), float32 always from 0; int32/int64 are refused (profiles/tflm.py).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..numerics.fixedpoint import quantize_multiplier
from ..profiles import litert, litert_xnn, profile_of
from .common import Prepared, Shape, fail, per_tensor, require, require_types, tensors
from .mean import raw_sum, reduce_geometry, requantized_sum, xnn_reduce, xnn_reduce_params

TYPES = ("float32", "int32", "int64", "uint8", "int8", "int16")


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require_types(op, src, TYPES)
    in_shape, axes, out_shape = reduce_geometry(op, g, shapes, values)
    micro = profile_of(g) == "tflm"
    if src.dtype not in ("uint8", "int8", "int16"):
        litert_xnn.require_reproduced(op, g)
        return raw_sum(in_shape, axes, out_shape, src.dtype, from_first=not micro)
    (s_in, zp_in), (s_out, zp_out) = per_tensor(op, src), per_tensor(op, dst)
    require(op, s_in > 0 and s_out > 0, "scales must be positive")
    if src.dtype == "int16" and not micro:
        raise fail(
            op,
            "int16 SUM: LiteRT's reference kernel reads the int16 data as uint8 bytes and leaves "
            "half of its output unwritten (uninitialized memory), so no result is defined",
        )
    if profile_of(g) == "litert" and litert.delegated(op, g) and axes:
        n = int(np.prod([in_shape[a] for a in axes], dtype=np.int64))
        params = xnn_reduce_params(s_in, s_out, zp_in, zp_out, n, mean=False)
        return xnn_reduce(in_shape, out_shape, tuple(axes), params, np.iinfo(dst.np_dtype))
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
