"""CAST (kernels/cast.cc copyCast): static_cast<To>(from) element by element; quantization ignored.

Integers narrow by wrapping, anything becomes bool as x != 0, integers become float32 rounded to
nearest. float32 -> integer saturates (measured on the reference: 300 -> uint8 255, -3e9 -> int32
INT32_MIN, inf -> max) after truncation toward zero, and NaN gives the type's maximum.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, require, tensors

TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "bool")


def float_to_int(x: np.ndarray, out: np.ndarray) -> None:
    info = np.iinfo(out.dtype)
    t = np.trunc(x.astype(np.float64))
    high = np.isnan(t) | (t >= float(info.max) + 1.0)  # 2**63 is exact in double, 2**63 - 1 is not
    low = t < float(info.min)
    wide = np.where(high | low, 0, t).astype(np.int64)
    wide[high] = info.max
    wide[low] = info.min
    np.copyto(out, wide, casting="unsafe")


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require(op, src.dtype in TYPES, f"{src.describe()}: type {src.dtype} not supported")
    require(op, dst.dtype in TYPES, f"{dst.describe()}: type {dst.dtype} not supported")
    shape = tuple(shapes[0])
    if src.dtype == "float32" and dst.dtype not in ("float32", "bool"):

        def run(inputs: list, outputs: list, scratch: list) -> None:
            with np.errstate(invalid="ignore"):
                float_to_int(inputs[0], outputs[0])

    elif dst.dtype == "bool":

        def run(inputs: list, outputs: list, scratch: list) -> None:
            np.not_equal(inputs[0], 0, out=outputs[0])

    else:

        def run(inputs: list, outputs: list, scratch: list) -> None:
            np.copyto(outputs[0], inputs[0], casting="unsafe")

    return Prepared([shape], run)
