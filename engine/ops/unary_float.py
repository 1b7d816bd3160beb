"""SQRT and RSQRT on float32 (kernels/elementwise.cc): std::sqrt, and 1.f / std::sqrt(x) (a float32
division after the correctly rounded square root, not a reciprocal-square-root approximation).
Quantized: RSQRT int8 in rsqrt_quantized.py, SQRT int8/int16 and RSQRT int16 in sqrt_quantized.py."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from . import rsqrt_quantized, sqrt_quantized
from .common import Prepared, Shape, require, tensors


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    if op.type == "RSQRT" and src.dtype == "int8":
        return rsqrt_quantized.prepare(op, g, shapes, values)
    if src.dtype in ("int8", "int16"):  # SQRT int8/int16, RSQRT int16
        return sqrt_quantized.prepare(op, g, shapes, values)
    require(
        op, src.dtype == "float32", f"{src.describe()}: type {src.dtype} not supported (supported: float32)"
    )
    require(op, dst.dtype == "float32", f"{dst.describe()}: output must be float32")
    one = np.float32(1.0)
    rsqrt = op.type == "RSQRT"

    def run(inputs: list, outputs: list, scratch: list) -> None:
        with np.errstate(all="ignore"):
            np.sqrt(inputs[0], out=outputs[0])
            if rsqrt:
                np.divide(one, outputs[0], out=outputs[0])

    return Prepared([tuple(shapes[0])], run)
