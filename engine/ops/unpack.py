"""UNPACK (kernels/unpack.cc): the input cut along one axis into `num` tensors without that axis."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..kernels.strided_copy import ViewCopy, contiguous_strides
from .common import Prepared, Shape, bound, require, tensors

TYPES = ("uint8", "int8", "int16", "int32", "float32", "bool")  # int64: the reference refuses it


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src = ins[0]
    require(op, src.dtype in TYPES, f"{src.describe()}: type {src.dtype} not supported")
    for t in outs:
        require(op, t.dtype == src.dtype, f"{t.describe()}: type differs from the input's {src.dtype}")
    shape = tuple(shapes[0])
    rank = len(shape)
    require(op, rank >= 1, "input must have rank >= 1")
    axis = int(op.options.get("axis", 0))
    require(op, -rank <= axis < rank, f"axis {axis} out of range for rank {rank}")
    axis %= rank
    num = int(op.options.get("num", len(outs)) or 0)
    require(op, num == len(outs) == shape[axis], f"num {num}, {len(outs)} outputs, axis size {shape[axis]}")
    strides = contiguous_strides(shape)
    out_shape = shape[:axis] + shape[axis + 1 :]
    out_strides = strides[:axis] + strides[axis + 1 :]
    copies = [ViewCopy(out_shape, out_strides, k * strides[axis]) for k in range(num)]

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [call for copy, out in zip(copies, outputs) for call in copy.calls(inputs[0], out)]

    return bound([out_shape] * num, bind)
