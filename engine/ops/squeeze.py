"""SQUEEZE (kernels/squeeze.cc): drop size-1 dimensions, the listed ones or all of them; bytes unchanged."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, fail, require, same_bytes, tensors


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    require(op, outs[0].dtype == ins[0].dtype, "output type differs from input type")
    in_shape = tuple(shapes[0])
    rank = len(in_shape)
    dims = [int(d) for d in op.options.get("squeeze_dims") or []]
    if dims:
        drop = set()
        for d in dims:
            if not -rank <= d < rank:
                raise fail(op, f"squeeze dimension {d} out of range for rank {rank}")
            d = d + rank if d < 0 else d
            if in_shape[d] != 1:
                raise fail(
                    op, f"cannot squeeze dimension {d} of size {in_shape[d]} (input shape {list(in_shape)})"
                )
            drop.add(d)
    else:  # as the reference: every dimension of size 1 at this runtime shape
        drop = {d for d, n in enumerate(in_shape) if n == 1}
    out_shape = tuple(n for d, n in enumerate(in_shape) if d not in drop)

    return same_bytes(out_shape)
