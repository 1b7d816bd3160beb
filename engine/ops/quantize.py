"""QUANTIZE (kernels/quantize.cc Prepare, Eval<kReference>).

float32 -> int8/uint8/int16, reference_ops::AffineQuantize as LiteRT builds it:
  out = clamp((int32_t) roundf(x / (float) scale) + zero_point)   (roundf: halves away from 0)
the division in float32. A rounded value outside int32 converts to INT32_MIN on x86 (measured: 1e30
quantizes to the type's minimum, or, with a negative zero point, wraps to its maximum); newer TFLite
sources clamp in double instead, which saturates.
int8/uint8/int16 -> int8/uint8/int16, reference_ops::Requantize:
  out = clamp(MultiplyByQuantizedMultiplier(q - zp_in, m, shift) + zp_out)
with m, shift = QuantizeMultiplier((double) s_in / (double) s_out); a table of 256 or 65536 entries.
(Its int8 <-> uint8 fast path, a flip of the top bit when the scales match and the zero points differ
by 128, gives the same bytes.) Only per-tensor output quantization: quantize.cc checks it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..numerics.fixedpoint import INT32_MIN, multiply_by_quantized_multiplier, quantize_multiplier, wrap_int32
from ..profiles import litert, litert_builtin, litert_xnn, profile_of
from .common import Prepared, Shape, bound, per_tensor, require, require_types, tensors, view
from .int16 import lookup_runner, values_of


@njit(cache=True)
def requantize_table(values, zp_in, m, shift, zp_out, lo, hi):
    table = np.empty(values.shape[0], np.int64)
    for i in range(values.shape[0]):
        r = multiply_by_quantized_multiplier(values[i] - zp_in, m, shift) + zp_out
        table[i] = min(max(r, lo), hi)
    return table


@njit(inline="always", cache=True)
def _affine_quantize_one(x, scale, zero_point, lo, hi):
    v = np.float64(np.float32(x) / scale)
    r = np.floor(abs(v) + 0.5)  # roundf, exact in double for every float32
    r = r if v >= 0 else -r
    # float -> int32 conversion (cvttss2si): out of range and NaN give INT32_MIN
    q = np.int64(r) if -2147483648.0 <= r < 2147483648.0 else np.int64(INT32_MIN)
    return min(max(wrap_int32(q + zero_point), lo), hi)


@kernel
def _affine_quantize(x, out, scale, zero_point, lo, hi):
    n = x.size
    chunk = 1 << 14
    for c in prange((n + chunk - 1) // chunk):
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            k = np.uintp(i)  # an unsigned index: no wraparound select, so the loop vectorizes with plain loads
            out[k] = _affine_quantize_one(x[k], scale, zero_point, lo, hi)


@kernel
def _xnn_quantize(x, out, inv_scale, zero_point, lo, hi):
    """XNNPACK's f32 -> 8-bit convert (numerics="litert"): x * float32(1 / scale), capped at 32767
    (NaN too), converted half to even (below -2**31: INT32_MIN), saturated to int16, plus the zero
    point saturated to int16, then to the output type."""
    n = x.size
    chunk = 1 << 14
    for c in prange((n + chunk - 1) // chunk):
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            k = np.uintp(i)
            v = np.float32(x[k]) * inv_scale
            if not v <= np.float32(32767.0):
                v = np.float32(32767.0)
            r = np.int64(np.rint(v)) if v >= -2147483648.0 else np.int64(INT32_MIN)
            r = min(max(min(max(r, -32768), 32767) + zero_point, -32768), 32767)
            out[k] = min(max(r, lo), hi)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    (inp,), (out,) = tensors(op, g)
    require_types(op, inp, ("float32", "uint8", "int8", "int16"))
    require_types(op, out, ("uint8", "int8", "int16"))
    s_out, zp_out = per_tensor(op, out)
    require(op, s_out > 0, f"{out.describe()}: scale must be positive")
    info = np.iinfo(out.np_dtype)
    shape = tuple(shapes[0])
    if inp.dtype == "float32":
        scale = np.float32(s_out)
        lo, hi = int(info.min), int(info.max)
        affine_quantize = _affine_quantize.pick(int(np.prod(shape)) // 2)
        if profile_of(g) == "litert" and litert.delegated(op, g):  # XNNPACK's convert
            inv, xnn_quantize = np.float32(1.0) / scale, _xnn_quantize.pick(int(np.prod(shape)) // 2)

            def bind_xnn(inputs: list, outputs: list, scratch: list) -> list:
                return [(xnn_quantize, (view(inputs[0]), view(outputs[0]), inv, zp_out, lo, hi))]

            return bound([shape], bind_xnn)

        def bind(inputs: list, outputs: list, scratch: list) -> list:
            return [(affine_quantize, (view(inputs[0]), view(outputs[0]), scale, zp_out, lo, hi))]

        return bound([shape], bind)
    s_in, zp_in = per_tensor(op, inp)
    require(op, s_in > 0, f"{inp.describe()}: scale must be positive")
    if profile_of(g) == "litert" and litert.delegated(op, g):
        table = litert_xnn.cvt_table(inp.dtype, (s_in, zp_in), (s_out, zp_out))
        return Prepared([shape], lookup_runner(table.astype(out.np_dtype), inp.dtype, int(np.prod(shape))))
    m, shift = quantize_multiplier(s_in / s_out)
    require(op, shift <= 30, f"input scale {s_in:g} too large for output scale {s_out:g}")
    table = requantize_table(values_of(inp.dtype), zp_in, m, shift, zp_out, int(info.min), int(info.max))
    if profile_of(g) == "litert" and inp.dtype != "int16" and out.dtype != "int16":  # builtin: NEON blocks
        neon = litert_builtin.requantize_table(
            values_of(inp.dtype), zp_in, m, shift, zp_out, int(info.min), int(info.max)
        )
        run = litert_builtin.unary_blocks_runner(
            neon.astype(out.np_dtype), table.astype(out.np_dtype), int(np.prod(shape))
        )
        return Prepared([shape], run)
    return Prepared([shape], lookup_runner(table.astype(out.np_dtype), inp.dtype, int(np.prod(shape))))
