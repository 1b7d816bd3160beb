"""STRIDED_SLICE (kernels/strided_slice.cc, strided_slice_logic.h): begin/end/strides constants with
begin_mask, end_mask and shrink_axis_mask (and the `offset` option: end counts from begin).

Per axis (axis_range): negative indices wrap once, then begin and end clamp to [0, n] for positive
strides and [-1, n - 1] for negative ones, and the masks replace the clamped values (begin_mask wins
over begin even on a shrunk axis); a shrunk axis takes the one element at start and disappears from
the output. Slices whose output the reference leaves unwritten are refused. Bytes are copied as is
(no requantization).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, fail, require, tensors

TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "bool")


def axis_range(n: int, b: int, e: int, s: int, masks: tuple[bool, bool, bool], offset: bool) -> range:
    """The input indices one axis of size n reads, as the reference computes them
    (StridedSliceStartForAxis / StridedSliceEndForAxis): begin wraps once and clamps to [0, n]
    (stride > 0) or [-1, n - 1] (stride < 0), then begin_mask replaces it with the first element of
    the iteration; a shrunk axis ends at start + 1 (nothing when start is past the end); otherwise
    end (start + end with `offset`) wraps, clamps the same way, and end_mask replaces it.
    masks = (begin_mask, end_mask, shrink) bits of this axis. Shared by the fold and the kernel."""
    begin_masked, end_masked, shrink = masks
    lo, hi = (0, n) if s > 0 else (-1, n - 1)
    start = min(max(b + n if b < 0 else b, lo), hi)
    if begin_masked:
        start = 0 if s > 0 else n - 1
    if shrink:
        return range(start, start if start >= n else start + 1, s)
    stop = e + start if offset else e
    stop = min(max(stop + n if stop < 0 else stop, lo), hi)
    if end_masked:
        stop = n if s > 0 else -1
    return range(start, stop, s)


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
        masks = (bool(begin_mask >> d & 1), bool(end_mask >> d & 1), bool(shrink >> d & 1))
        r = axis_range(n, b, e, s, masks, offset)
        if masks[2]:
            # the reference writes nothing for this axis, yet its output keeps the other axes' size
            require(
                op,
                len(r) == 1,
                f"shrunk axis {d} (size {n}, begin {b}, stride {s}) selects no element: undefined output",
            )
            index.append(r.start)
            continue
        if offset and len(r) != max(0, -(-e // s)):
            # the reference sizes the output from `end` alone and writes only what the clamped range reads
            raise fail(op, f"offset slice on axis {d} (size {n}, begin {b}, size {e}) leaves the input")
        index.append(slice(r.start, r.stop if r.stop >= 0 else None, s) if len(r) else slice(0, 0))
        out_shape.append(len(r))
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
