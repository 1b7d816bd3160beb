"""REDUCE_MAX (kernels/reduce.cc EvalGeneric<kReference, kMax>): the largest raw value over the axes
(ResolveAxis: negative axes wrap, duplicates drop), keep_dims keeping them as size 1. Quantized
types compare raw values: input and output must share one per-tensor quantization."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, per_tensor, require, require_types, tensors
from .mean import reduce_geometry

TYPES = ("float32", "uint8", "int8", "int16", "int32", "int64")


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require_types(op, src, TYPES)
    _, axes, out_shape = reduce_geometry(op, g, shapes, values)
    if src.quantized or dst.quantized:
        same = per_tensor(op, src) == per_tensor(op, dst)
        require(op, same, "input and output quantization must be equal (raw values are compared)")
    reduce_axes = tuple(axes)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        np.copyto(outputs[0], np.max(inputs[0], axis=reduce_axes).reshape(out_shape))

    return Prepared([out_shape], run)
