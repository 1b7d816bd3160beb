"""RELU and RELU6 on uint8/int8/int16 (kernels/activations.cc ReluPrepare, ReluEval/Relu6Eval, ReluX).

The reference requantizes from the input to the output scale, then clamps (all kernel variants share
this Eval):
  out = clamp(zp_out + MultiplyByQuantizedMultiplier(q - zp_in, m, shift), lo, hi)
with m, shift = QuantizeMultiplier(s_in / s_out) (the division in float32, then widened),
lo = max(type min, zp_out + roundf(0 / s_out)), hi = type max for RELU and
min(type max, zp_out + roundf(6 / s_out)) for RELU6. A table over the 256 (65536 for int16) inputs does it all.
TFLite Micro (numerics="tflm") divides in double for RELU, and its RELU6 clamps the raw input to
[zp_in, round(6 / s_in) + zp_in] without requantizing: the output quantization is ignored.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..graph import Graph, Op
from ..numerics.fixedpoint import activation_range, multiply_by_quantized_multiplier, quantize_multiplier
from ..profiles import profile_of, tflm
from . import activations_float
from .common import Prepared, Shape, require, unary_8bit
from .int16 import lookup_runner, values_of


@njit(cache=True)
def relu_table(values, zp_in, m, shift, zp_out, lo, hi):
    table = np.empty(values.shape[0], np.int64)
    for i in range(values.shape[0]):
        r = zp_out + multiply_by_quantized_multiplier(values[i] - zp_in, m, shift)
        table[i] = min(max(r, lo), hi)
    return table


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        return activations_float.prepare(op, g, shapes, values)
    inp, out, (s_in, zp_in), (s_out, zp_out) = unary_8bit(op, g, ("uint8", "int8", "int16"))
    require(op, s_in > 0 and s_out > 0, "scales must be positive")
    size = int(np.prod(shapes[0]))
    if profile_of(g) == "tflm" and op.type == "RELU6":  # TFLite Micro: clamps raw inputs (no requantization)
        require(op, inp.dtype == "int8", "TFLite Micro's RELU6 runs int8 only")
        table = tflm.relu6_table(s_in, zp_in).astype(out.np_dtype)
        return Prepared([tuple(shapes[0])], lookup_runner(table, inp.dtype, size))
    if profile_of(g) == "tflm":  # TFLite Micro's RELU: the multiplier in double (measured)
        m, shift = quantize_multiplier(float(s_in) / float(s_out))
    else:
        m, shift = quantize_multiplier(float(np.float32(s_in) / np.float32(s_out)))
    # the reference shifts by `1 << shift` in int: undefined from 31 on
    require(op, shift <= 30, f"input scale {s_in:g} too large for output scale {s_out:g}")
    lo, hi = activation_range(op.type, s_out, zp_out, out.np_dtype)
    table = relu_table(values_of(inp.dtype), zp_in, m, shift, zp_out, lo, hi)
    return Prepared([tuple(shapes[0])], lookup_runner(table.astype(out.np_dtype), inp.dtype, size))
