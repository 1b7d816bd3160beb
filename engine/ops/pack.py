"""PACK (kernels/pack.cc): stack N same-shaped tensors along a new axis; bytes unchanged."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, bound, fail, require, tensors

TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "bool")


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    require(op, None not in ins, "an input is omitted")
    dtype = ins[0].dtype
    require(op, dtype in TYPES, f"type {dtype} not supported")
    for t in ins + outs:
        require(op, t.dtype == dtype, f"{t.describe()}: all tensors must have type {dtype}")
    count = int(op.options.get("values_count", len(ins)) or len(ins))
    require(op, count == len(ins), f"values_count {count} differs from the {len(ins)} inputs")
    in_shape = tuple(shapes[0])
    for s in shapes:
        if tuple(s) != in_shape:
            raise fail(op, f"inputs must share one shape, got {[list(x) for x in shapes]}")
    rank = len(in_shape) + 1
    axis = int(op.options.get("axis", 0))
    require(op, -rank <= axis < rank, f"axis {axis} out of range for output rank {rank}")
    axis = axis + rank if axis < 0 else axis
    out_shape = in_shape[:axis] + (len(ins),) + in_shape[axis:]

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        out = outputs[0]
        at = [(slice(None),) * axis + (slice(k, k + 1),) for k in range(len(inputs))]  # views, even of 1-D
        return [(np.copyto, (out[a], np.expand_dims(x, axis))) for a, x in zip(at, inputs)]

    return bound([out_shape], bind)
