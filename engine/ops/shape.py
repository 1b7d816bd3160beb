"""SHAPE (kernels/shape.cc): the input's runtime shape as int32 or int64.

Depends only on shapes, so the executor folds it at plan time; run() never reads the input.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, require, tensors


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    _, (dst,) = tensors(op, g)
    require(op, dst.dtype in ("int32", "int64"), f"{dst.describe()}: output must be int32 or int64")
    value = np.array(shapes[0], dtype=dst.np_dtype)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        outputs[0][...] = value

    return Prepared([(len(shapes[0]),)], run)
