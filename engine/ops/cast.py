"""CAST (kernels/cast.cc copyCast): static_cast<To>(from) element by element; quantization ignored.

Integers narrow by wrapping, anything becomes bool as x != 0, integers become float32 rounded to
nearest. float32 -> integer truncates toward zero; values out of range (and NaN) give what x86's
conversion gives: INT32_MIN (INT64_MIN for int64), and for 8/16-bit targets the low bits of that
int32 conversion (the C++ cast goes through a 32-bit convert).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, require, tensors

TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "bool")


def float_to_int(x: np.ndarray, out: np.ndarray) -> None:
    bits = 64 if out.dtype == np.int64 else 32
    lo, hi = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1)
    t = np.trunc(x.astype(np.float64))
    ok = (t >= lo) & (t < hi)
    wide = np.where(ok, t, lo).astype(np.int64)
    np.copyto(out, wide, casting="unsafe")  # int64 -> narrower integers wraps


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require(op, src.dtype in TYPES, f"{src.describe()}: type {src.dtype} not supported")
    require(op, dst.dtype in TYPES, f"{dst.describe()}: type {dst.dtype} not supported")
    shape = tuple(shapes[0])
    if src.dtype == "float32" and dst.dtype not in ("float32", "bool"):

        def run(inputs: list, outputs: list) -> None:
            with np.errstate(invalid="ignore"):
                float_to_int(inputs[0], outputs[0])

    elif dst.dtype == "bool":

        def run(inputs: list, outputs: list) -> None:
            np.not_equal(inputs[0], 0, out=outputs[0])

    else:

        def run(inputs: list, outputs: list) -> None:
            np.copyto(outputs[0], inputs[0], casting="unsafe")

    return Prepared([shape], run)
