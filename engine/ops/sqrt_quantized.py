"""SQRT on int8 and int16 (kernels/elementwise.cc SqrtEvalQuantized), RSQRT on int16 (its LUT).

SQRT, per element in float32: d = s_in * float(q - zp_in), an error below 0; out =
clamp(int(sqrtf(d) / s_out) + zp_out): the conversion truncates toward zero (a float at or above 2^31
converts to INT32_MIN, as x86's cvttss2si does, and the int32 sum wraps). A table of every input value.
RSQRT int16: LUTPopulate<int16_t> of 1.f / sqrtf(x) (x <= 0: 32767 * s_out), interpolated by LUTLookup;
an input below 0 is an error.
int16 needs zero points 0 (GenericPrepare). numerics="tflm": TFLite Micro runs SQRT on float32 only and
RSQRT on float32 and int8; the rest is refused (profiles/tflm.py).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..graph import Graph, Op
from ..numerics.gemmlowp import lut_lookup16_all, lut_populate16
from .common import Prepared, Shape, per_tensor, require, require_types, tensors
from .int16 import lookup_runner, values_of
from .rsqrt_quantized import any_below


def sqrt_table(
    values: np.ndarray, s_in: float, zp_in: int, s_out: float, zp_out: int, dtype: str
) -> np.ndarray:
    f32 = np.float32
    d = f32(s_in) * (values - zp_in).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        r = np.sqrt(np.maximum(d, f32(0))) / f32(s_out)
    big = ~(np.abs(r) < f32(2.0**31))  # out of int32 range, or NaN: cvttss2si's INT32_MIN
    q = np.where(big, -(2**31), np.trunc(np.where(big, 0, r)).astype(np.int64))
    q = (q + zp_out + 2**31) % 2**32 - 2**31  # the int32 sum wraps
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


def rsqrt16_transform(s_out: float):
    f32 = np.float32

    def f(x: np.float32) -> np.float32:
        return f32(32767) * f32(s_out) if x <= 0 else f32(1) / f32(math.sqrt(x))

    return f


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    (src,), (dst,) = tensors(op, g)
    types = ("int8", "int16") if op.type == "SQRT" else ("int16",)
    require_types(op, src, types)
    require_types(op, dst, (src.dtype,))
    (s_in, zp_in), (s_out, zp_out) = per_tensor(op, src), per_tensor(op, dst)
    require(op, s_in > 0 and s_out > 0, "scales must be positive")
    if src.dtype == "int16":
        require(op, zp_in == 0 and zp_out == 0, "int16 zero points must be 0")
    if op.type == "SQRT":
        table = sqrt_table(values_of(src.dtype), s_in, zp_in, s_out, zp_out, src.dtype)
    else:
        table = lut_lookup16_all(lut_populate16(rsqrt16_transform(s_out), s_in, 0, s_out, 0))
    size = int(np.prod(shapes[0], dtype=np.int64))
    gather = lookup_runner(table, src.dtype, size)
    lowest = np.dtype(src.dtype).type(zp_in)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        if any_below(inputs[0], lowest):
            raise InputError(f"{op.where()}: {op.type} of a negative value (an input below its zero point)")
        gather(inputs, outputs, scratch)

    return Prepared([tuple(shapes[0])], run)
