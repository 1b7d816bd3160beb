"""SQRT and RSQRT on float32 (kernels/elementwise.cc): std::sqrt, and 1.f / std::sqrt(x) (a float32
division after the correctly rounded square root, not a reciprocal-square-root approximation).
Quantized: RSQRT int8 in rsqrt_quantized.py, SQRT int8/int16 and RSQRT int16 in sqrt_quantized.py."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..kernels.cpu import AVX512F
from ..profiles import litert, profile_of
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
    if profile_of(g) == "litert" and litert.delegated(op, g):
        return _prepare_xnn_sqrt(op, shapes, rsqrt)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        with np.errstate(all="ignore"):
            np.sqrt(inputs[0], out=outputs[0])
            if rsqrt:
                np.divide(one, outputs[0], out=outputs[0])

    return Prepared([tuple(shapes[0])], run)


def _prepare_xnn_sqrt(op: Op, shapes: list[Shape | None], rsqrt: bool) -> Prepared:
    """XNNPACK's float32 SQRT/RSQRT (engine/kernels/xnn_sqrt.py): its AVX-512 kernels, which LiteRT runs here."""
    require(op, AVX512F, f"numerics='litert' reproduces XNNPACK's float32 {op.type} on AVX-512 CPUs only")
    from ..kernels.xnn_sqrt import LANES, xnn_sqrt

    def run(inputs: list, outputs: list, scratch: list) -> None:
        xnn_sqrt(np.ascontiguousarray(inputs[0]).reshape(-1), outputs[0].reshape(-1), scratch[0], rsqrt)

    return Prepared([tuple(shapes[0])], run, scratch=[((2, LANES), np.float32)])
