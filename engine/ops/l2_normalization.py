"""L2_NORMALIZATION (kernels/l2norm.cc with BUILTIN_REF) along the last axis, on float32, uint8, int8.

float32 (reference_ops::L2Normalization): s = sum of x*x in float32 in order, n = max(sqrtf(s), 1e-6f),
out = x / n.
uint8 (reference_ops): d = q - zp_in, s = sum d*d in int32, (m, shift) =
GetInvSqrtQuantizedMultiplierExp(s, -1), out = clamp(128 + MultiplyByQuantizedMultiplierSmallerThanOneExp(
128 * d, m, shift), 0, 255).
int8 (reference_integer_ops): the same (m, shift), out = clamp(MultiplyByQuantizedMultiplier(d, m, shift + 7)).
The reference requires the output quantization the result is written in: scale 1/128, zero point 128
(uint8) or 0 (int8), and no fused activation.
numerics="tflm" (micro/kernels/l2norm.cc): the same float32 and int8 arithmetic, the output quantization
unchecked; rank above 4 and uint8 refused (profiles/tflm.py).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..numerics.fixedpoint import multiply_by_quantized_multiplier, wrap_int32
from ..numerics.fixedpoint import multiply_by_quantized_multiplier_smaller_than_one_exp as mul_lt1
from ..profiles import profile_of
from .common import Prepared, Shape, bound, per_tensor, require, require_types, tensors, view
from .rsqrt_quantized import inv_sqrt_multiplier

OUTPUT_SCALE_SHIFT = 7  # the int8 kernel's kOutputScale: outputs in units of 1/128


@kernel
def _l2norm_float(x, out, epsilon):
    for i in prange(x.shape[0]):
        s = np.float32(0)
        for c in range(x.shape[1]):
            s += x[i, c] * x[i, c]
        n = max(np.float32(math.sqrt(s)), epsilon)
        for c in range(x.shape[1]):
            out[i, c] = x[i, c] / n


@kernel
def _l2norm_quantized(x, out, zp_in, as_uint8):
    for i in prange(x.shape[0]):
        s = np.int64(0)
        for c in range(x.shape[1]):
            d = np.int64(x[i, c]) - zp_in
            s += d * d
        m, shift = inv_sqrt_multiplier(wrap_int32(s))  # the reference's int32 sum
        for c in range(x.shape[1]):
            d = np.int64(x[i, c]) - zp_in
            if as_uint8:
                out[i, c] = min(max(128 + mul_lt1(128 * d, m, shift), 0), 255)
            else:
                out[i, c] = min(
                    max(multiply_by_quantized_multiplier(d, m, shift + OUTPUT_SCALE_SHIFT), -128), 127
                )


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    (src,), (dst,) = tensors(op, g)
    require_types(op, src, ("float32", "uint8", "int8"))
    require(op, dst.dtype == src.dtype, f"output type {dst.dtype} differs from input type {src.dtype}")
    require(
        op, op.options.get("fused_activation_function", "NONE") == "NONE", "fused activations not supported"
    )
    shape = tuple(shapes[0])
    require(
        op,
        len(shape) >= 1 and all(n > 0 for n in shape),
        f"input shape {list(shape)}: needs a non-empty last axis",
    )
    rows = (int(np.prod(shape[:-1], dtype=np.int64)), shape[-1])
    pick = int(np.prod(shape, dtype=np.int64))
    if src.dtype == "float32":
        require(op, dst.dtype == "float32", f"{dst.describe()}: output must be float32")
        run_float = _l2norm_float.pick(pick)
        eps = np.float32(1e-6)

        def bind_float(inputs: list, outputs: list, scratch: list) -> list:
            return [(run_float, (view(inputs[0], rows), view(outputs[0], rows), eps))]

        return bound([shape], bind_float)
    require_types(op, dst, (src.dtype,))
    _, zp_in = per_tensor(op, src)
    s_out, zp_out = per_tensor(op, dst)
    if profile_of(g) != "tflm":
        want = 128 if src.dtype == "uint8" else 0
        require(
            op,
            np.float32(s_out) == np.float32(1 / 128) and zp_out == want,
            f"{dst.describe()}: output must have scale 1/128 and zero point {want} (the reference's rule)",
        )
    run_q = _l2norm_quantized.pick(pick)
    as_uint8 = src.dtype == "uint8"

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(run_q, (view(inputs[0], rows), view(outputs[0], rows), zp_in, as_uint8))]

    return bound([shape], bind)
