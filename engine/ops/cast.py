"""CAST (kernels/cast.cc copyCast): static_cast<To>(from) element by element; quantization ignored.

Integers narrow by wrapping, anything becomes bool as x != 0, integers become float32 rounded to
nearest. float32 -> integer saturates (measured on the reference: 300 -> uint8 255, -3e9 -> int32
INT32_MIN, inf -> max) after truncation toward zero, and NaN gives the type's maximum.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from .common import Prepared, Shape, bound, require, tensors, view

TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "bool")


CHUNK = 1 << 14  # elements a parallel step takes


@kernel
def _convert(x, out):
    """out = static_cast(x): numba's conversions are C's for integers (wrapping) and to float32."""
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            k = np.uintp(i)  # an unsigned index: no wraparound select, so the loop vectorizes
            out[k] = x[k]


@kernel
def _nonzero(x, out):
    n = x.size
    for c in prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            k = np.uintp(i)
            out[k] = x[k] != 0


@kernel
def _float_to_int(x, out, lo, hi):
    """Truncation toward zero, saturated to [lo, hi]; NaN gives hi (see the module's docstring)."""
    n = x.size
    top = np.float64(hi) + 1.0  # 2**63 is exact in double, 2**63 - 1 is not
    for c in prange((n + CHUNK - 1) // CHUNK):
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            k = np.uintp(i)
            t = np.trunc(np.float64(x[k]))
            v = hi if not t < top else (lo if t < np.float64(lo) else np.int64(t))
            out[k] = v


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require(op, src.dtype in TYPES, f"{src.describe()}: type {src.dtype} not supported")
    require(op, dst.dtype in TYPES, f"{dst.describe()}: type {dst.dtype} not supported")
    shape = tuple(shapes[0])
    size = int(np.prod(shape))
    args: tuple = ()
    if src.dtype == "float32" and dst.dtype not in ("float32", "bool"):
        info = np.iinfo(dst.np_dtype)
        convert, args = _float_to_int.pick(size // 2), (int(info.min), int(info.max))
    elif dst.dtype == "bool":
        convert = _nonzero.pick(size // 4)
    else:
        convert = _convert.pick(size // 4)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(convert, (view(inputs[0]), view(outputs[0]), *args))] if size else []

    return bound([shape], bind)
