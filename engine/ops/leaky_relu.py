"""LEAKY_RELU (kernels/activations.cc LeakyReluPrepare/Eval, reference_ops::QuantizeLeakyRelu).

float32: x > 0 ? x : x * alpha, in float32.
uint8/int8/int16: two multipliers, QuantizeMultiplier(s_in * alpha / s_out) and
QuantizeMultiplier(s_in / s_out), each formula evaluated in float32 then widened to double;
  d = q - zp_in;  out = clamp(zp_out + MultiplyByQuantizedMultiplier(d, d >= 0 ? identity : alpha))
to the type's range. int16 needs zero points 0 (the reference refuses otherwise). A table over the
256 (65536 for int16) inputs is the kernel.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..graph import Graph, Op
from ..numerics.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from ..profiles import litert, litert_xnn, profile_of
from .common import Prepared, Shape, require, tensors, unary_8bit
from .int16 import lookup_runner, values_of


@njit(cache=True)
def leaky_table(values, zp_in, m_id, sh_id, m_al, sh_al, zp_out, lo, hi):
    table = np.empty(values.shape[0], np.int64)
    for i in range(values.shape[0]):
        d = values[i] - zp_in
        if d >= 0:
            r = zp_out + multiply_by_quantized_multiplier(d, m_id, sh_id)
        else:
            r = zp_out + multiply_by_quantized_multiplier(d, m_al, sh_al)
        table[i] = min(max(r, lo), hi)
    return table


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    (src,), (dst,) = tensors(op, g)
    alpha = np.float32(op.options.get("alpha", 0.0))
    shape = tuple(shapes[0])
    if src.dtype == "float32":
        require(op, dst.dtype == "float32", f"{dst.describe()}: output must be float32")

        def run_float(inputs: list, outputs: list, scratch: list) -> None:
            x = inputs[0]
            with np.errstate(all="ignore"):
                np.copyto(outputs[0], np.where(x > 0, x, x * alpha))

        return Prepared([shape], run_float)
    inp, out, (s_in, zp_in), (s_out, zp_out) = unary_8bit(op, g, ("uint8", "int8", "int16"))
    require(op, s_in > 0 and s_out > 0, "scales must be positive")
    if inp.dtype == "int16":
        require(op, zp_in == 0 and zp_out == 0, "int16 zero points must be 0")
    if profile_of(g) == "litert" and inp.dtype != "int16" and litert.delegated(op, g):  # XNNPACK
        mult = litert_xnn.lrelu_multipliers(s_in, s_out, float(alpha))
        table = litert_xnn.lrelu_table(inp.dtype, (zp_in, zp_out), mult)
        return Prepared([shape], lookup_runner(table.astype(out.np_dtype), inp.dtype, int(np.prod(shape))))
    f_in, f_out = np.float32(s_in), np.float32(s_out)
    m_al, sh_al = quantize_multiplier(float(f_in * alpha / f_out))
    m_id, sh_id = quantize_multiplier(float(f_in / f_out))
    require(op, max(sh_al, sh_id) <= 30, f"input scale {s_in:g} too large for output scale {s_out:g}")
    info = np.iinfo(out.np_dtype)
    table = leaky_table(values_of(inp.dtype), zp_in, m_id, sh_id, m_al, sh_al, zp_out, info.min, info.max)
    return Prepared([shape], lookup_runner(table.astype(out.np_dtype), inp.dtype, int(np.prod(shape))))
