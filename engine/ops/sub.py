"""SUB on uint8/int8 (kernels/sub.cc): the reference prepares ADD's parameters, negates input 2's
multiplier and runs the add kernel. Negating the multiplier is not the same as subtracting the
scaled values: the doubling high multiply rounds its negative ties toward zero, so this follows
the reference's way exactly."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from . import arith_plain
from .add import prepare_add_like
from .common import Prepared, Shape


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype in arith_plain.FLOAT_INT:  # float32, int32, int64
        return arith_plain.prepare(op, g, shapes, values)
    return prepare_add_like(op, g, shapes, -1, values)
