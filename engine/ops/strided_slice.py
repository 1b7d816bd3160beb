"""STRIDED_SLICE (kernels/strided_slice.cc, strided_slice_logic.h): begin/end/strides constants with
begin_mask, end_mask and shrink_axis_mask (and the `offset` option: end counts from begin).

Per axis this is Python's slice: negative indices wrap once, then begin and end clamp to [0, n]
for positive strides and [-1, n - 1] for negative ones; a shrunk axis takes the one element at
begin and disappears from the output. Bytes are copied as is (no requantization).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, fail, require, tensors

TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "bool")


def slice_plan(op: Op, shape: Shape, begin, end, strides, o: dict) -> tuple[tuple, Shape]:
    """(index tuple for numpy, output shape) of a strided slice."""
    rank = len(shape)
    if int(o.get("ellipsis_mask", 0) or 0) or int(o.get("new_axis_mask", 0) or 0):
        raise fail(op, "ellipsis_mask and new_axis_mask are not supported")
    if not (len(begin) == len(end) == len(strides) == rank):
        raise fail(
            op, f"begin/end/strides have {len(begin)}/{len(end)}/{len(strides)} entries, input rank {rank}"
        )
    begin_mask = int(o.get("begin_mask", 0) or 0)
    end_mask = int(o.get("end_mask", 0) or 0)
    shrink = int(o.get("shrink_axis_mask", 0) or 0)
    offset = bool(o.get("offset", False))
    if offset and (begin_mask or end_mask):
        # LiteRT's reference crashes (SIGSEGV) on this combination: nothing to match
        raise fail(op, "the offset option together with begin_mask/end_mask is not supported")
    index: list = []
    out_shape: list[int] = []
    for d in range(rank):
        n, b, e, s = shape[d], int(begin[d]), int(end[d]), int(strides[d])
        require(op, s != 0, f"stride 0 on axis {d}")
        if offset:
            e = b + e
        if shrink >> d & 1:
            i = b + n if b < 0 else b
            if not 0 <= i < n:
                raise fail(op, f"shrunk index {b} out of range for axis {d} of size {n}")
            index.append(i)
            continue
        sl = slice(None if begin_mask >> d & 1 else b, None if end_mask >> d & 1 else e, s)
        index.append(sl)
        out_shape.append(len(range(*sl.indices(n))))
    return tuple(index), tuple(out_shape)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    require(
        op,
        len(ins) in (3, 4) and None not in ins[:3] and len(outs) == 1,
        "takes input, begin, end[, strides]",
    )
    src, dst = ins[0], outs[0]
    require(op, src.dtype in TYPES, f"{src.describe()}: type {src.dtype} not supported")
    require(op, dst.dtype == src.dtype, f"output type {dst.dtype} differs from input type {src.dtype}")
    for k in range(1, len(ins)):
        if ins[k] is None:
            continue
        require(op, ins[k].dtype in ("int32", "int64"), f"{ins[k].describe()}: must be int32 or int64")
        require(op, values[k] is not None, f"{ins[k].describe()}: must be known before running")
    in_shape = tuple(shapes[0])
    begin = np.asarray(values[1]).reshape(-1).tolist()
    end = np.asarray(values[2]).reshape(-1).tolist()
    strides = (
        np.asarray(values[3]).reshape(-1).tolist()
        if len(ins) == 4 and ins[3] is not None
        else [1] * len(begin)
    )
    index, out_shape = slice_plan(op, in_shape, begin, end, strides, op.options)

    def run(inputs: list, outputs: list) -> None:
        outputs[0][...] = inputs[0][index]

    return Prepared([out_shape], run)
