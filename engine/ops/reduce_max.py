"""REDUCE_MAX (kernels/reduce.cc EvalGeneric<kReference, kMax>): the largest raw value over the axes
(ResolveAxis: negative axes wrap, duplicates drop), keep_dims keeping them as size 1. Quantized
types compare raw values: input and output must share one per-tensor quantization."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, per_tensor, require, require_types, tensors
from .mean import resolve_axes

TYPES = ("float32", "uint8", "int8", "int16", "int32", "int64")


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, axes_t, dst = ins[0], ins[1], outs[0]
    require_types(op, src, TYPES)
    require(op, dst.dtype == src.dtype, f"output type {dst.dtype} differs from input type {src.dtype}")
    require(op, axes_t.dtype == "int32", f"{axes_t.describe()}: axes must be int32")
    require(op, values[1] is not None, f"{axes_t.describe()}: axes must be known before running")
    if src.quantized or dst.quantized:
        same = per_tensor(op, src) == per_tensor(op, dst)
        require(op, same, "input and output quantization must be equal (raw values are compared)")
    in_shape = tuple(shapes[0])
    axes = resolve_axes(op, np.asarray(values[1]), len(in_shape))
    require(op, int(np.prod(in_shape, dtype=np.int64)) > 0, "empty input not supported")
    keep = bool(op.options.get("keep_dims", False))
    if keep:
        out_shape = tuple(1 if d in axes else n for d, n in enumerate(in_shape))
    else:
        out_shape = tuple(n for d, n in enumerate(in_shape) if d not in axes)
    reduce_axes = tuple(axes)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        np.copyto(outputs[0], np.max(inputs[0], axis=reduce_axes).reshape(out_shape))

    return Prepared([out_shape], run)
