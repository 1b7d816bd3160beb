"""SPLIT and SPLIT_V (kernels/split.cc, split_v.cc): pieces of the input along one axis, bytes unchanged.

SPLIT's inputs are (axis, data) and it cuts num_splits equal pieces; SPLIT_V's are (data, size_splits,
axis), with at most one size -1 (the rest). The axis and the sizes must be known at load. Quantization
parameters are not looked at: the reference copies the bytes.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..kernels.strided_copy import ViewCopy, contiguous_strides
from .common import Prepared, Shape, bound, fail, require, tensors

TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "bool")


def split_sizes(op: Op, n: int, sizes: list[int]) -> list[int]:
    """SPLIT_V's sizes with the -1 entry resolved, checked to add up to n."""
    require(op, sum(s == -1 for s in sizes) <= 1, f"size_splits {sizes} has more than one -1")
    require(op, all(s >= -1 for s in sizes), f"size_splits {sizes} has a negative size")
    rest = n - sum(s for s in sizes if s != -1)
    sizes = [rest if s == -1 else s for s in sizes]
    require(op, rest >= 0 and sum(sizes) == n, f"size_splits {sizes} do not add up to the axis size {n}")
    return sizes


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    d_in, a_in = (1, 0) if op.type == "SPLIT" else (0, 2)
    require(op, None not in ins, "an input is omitted")
    src = ins[d_in]
    require(op, src.dtype in TYPES, f"{src.describe()}: type {src.dtype} not supported")
    for t in outs:
        require(op, t.dtype == src.dtype, f"{t.describe()}: type differs from the input's {src.dtype}")
    axis_t = ins[a_in]
    require(op, axis_t.dtype in ("int32", "int64"), f"{axis_t.describe()}: the axis must be an integer")
    require(op, values[a_in] is not None and np.size(values[a_in]) == 1, "the axis must be a known scalar")
    shape = tuple(shapes[d_in])
    rank = len(shape)
    axis = int(np.asarray(values[a_in]).reshape(-1)[0])
    require(op, -rank <= axis < rank, f"axis {axis} out of range for rank {rank}")
    axis %= rank
    n = shape[axis]
    if op.type == "SPLIT":
        count = int(op.options.get("num_splits", len(outs)) or 0)
        require(op, count == len(outs), f"num_splits {count} differs from the {len(outs)} outputs")
        if n % count:
            raise fail(op, f"axis {axis} of size {n} does not split into {count} equal pieces")
        sizes = [n // count] * count
    else:
        require(op, values[1] is not None, f"{ins[1].describe()}: size_splits must be known at load")
        sizes = split_sizes(op, n, [int(v) for v in np.asarray(values[1]).reshape(-1)])
        require(op, len(sizes) == len(outs), f"{len(sizes)} sizes for {len(outs)} outputs")
    strides = contiguous_strides(shape)
    starts = np.cumsum([0] + sizes[:-1]).tolist()
    out_shapes = [shape[:axis] + (s,) + shape[axis + 1 :] for s in sizes]
    copies = [ViewCopy(o, strides, b * strides[axis]) for o, b in zip(out_shapes, starts)]

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [call for copy, out in zip(copies, outputs) for call in copy.calls(inputs[d_in], out)]

    return bound(out_shapes, bind)
