"""STRIDED_SLICE (kernels/strided_slice.cc, strided_slice_logic.h): begin/end/strides constants with
begin_mask, end_mask, shrink_axis_mask, ellipsis_mask, new_axis_mask (and the `offset` option: end
counts from begin).

The spec is first made dense (dense_spec): the ellipsis stands for as many whole input axes as the
other entries leave, a new axis adds an output axis of size 1, and a short spec takes the remaining
axes whole.
Per axis (axis_range): negative indices wrap once, then begin and end clamp to [0, n] for positive
strides and [-1, n - 1] for negative ones, and the masks replace the clamped values (begin_mask wins
over begin even on a shrunk axis); a shrunk axis takes the one element at start and disappears from
the output. Slices whose output the reference leaves unwritten are refused. The output is a strided
view of the input (slice_plan), copied by the view-copy kernel; bytes as they are (no requantization).

numerics="litert": where the XNNPACK delegate takes the slice, it reads an end of 0 as "to the end of
the axis" (measured: begin 0, end 0 gives the whole axis, the reference nothing).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..kernels.strided_copy import ViewCopy, contiguous_strides
from ..profiles import litert, profile_of
from .common import Prepared, Shape, bound, fail, require, tensors

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


def dense_spec(op: Op, rank: int, n_spec: int, o: dict) -> list[int | None]:
    """For each output-side entry, the spec index it takes begin/end/stride and mask bits from:
    an int for an input axis sliced by the spec, -1 for an input axis taken whole (covered by the
    ellipsis, or past the end of a short spec), None for a new axis of size 1 (new_axis_mask)."""
    ellipsis = int(o.get("ellipsis_mask", 0) or 0)
    new_axis = int(o.get("new_axis_mask", 0) or 0)
    shrink = int(o.get("shrink_axis_mask", 0) or 0)
    require(op, ellipsis.bit_count() <= 1, f"ellipsis_mask {ellipsis} marks more than one ellipsis")
    require(op, not new_axis & shrink, "an axis is both a new axis and shrunk")
    require(op, not new_axis & ellipsis, "an axis is both a new axis and the ellipsis")
    real = [i for i in range(n_spec) if not (ellipsis | new_axis) >> i & 1]
    require(op, len(real) <= rank, f"{len(real)} sliced axes for an input of rank {rank}")
    entries: list[int | None] = []
    for i in range(n_spec):
        if ellipsis >> i & 1:
            entries += [-1] * (rank - len(real))
        elif new_axis >> i & 1:
            entries.append(None)
        else:
            entries.append(i)
    if not ellipsis:
        entries += [-1] * (rank - len(real))
    return entries


def slice_plan(op: Op, shape: Shape, begin, end, strides, o: dict) -> tuple[Shape, list[int], int]:
    """The output of a strided slice as a view of the flat input: (output shape, element stride of
    each output axis, offset of the first element). Shared by the fold and the kernel."""
    rank = len(shape)
    if not (len(begin) == len(end) == len(strides)):
        raise fail(op, f"begin/end/strides have {len(begin)}/{len(end)}/{len(strides)} entries")
    begin_mask = int(o.get("begin_mask", 0) or 0)
    end_mask = int(o.get("end_mask", 0) or 0)
    shrink = int(o.get("shrink_axis_mask", 0) or 0)
    offset = bool(o.get("offset", False))
    if offset and (begin_mask or end_mask):
        # LiteRT's reference crashes (SIGSEGV) on this combination: nothing to match
        raise fail(op, "the offset option together with begin_mask/end_mask is not supported")
    in_strides = contiguous_strides(shape)
    out_shape: list[int] = []
    out_strides: list[int] = []
    start = 0
    d = 0  # input axis
    for i in dense_spec(op, rank, len(begin), o):
        if i is None:  # a new axis of size 1
            out_shape.append(1)
            out_strides.append(0)
            continue
        n = shape[d]
        if i < 0:
            b, e, s, masks = 0, n, 1, (True, True, False)
        else:
            b, e, s = int(begin[i]), int(end[i]), int(strides[i])
            masks = (bool(begin_mask >> i & 1), bool(end_mask >> i & 1), bool(shrink >> i & 1))
        require(op, s != 0, f"stride 0 on axis {d}")
        r = axis_range(n, b, e, s, masks, offset and i >= 0)
        if masks[2]:
            # the reference writes nothing for this axis, yet its output keeps the other axes' size
            require(
                op,
                len(r) == 1,
                f"shrunk axis {d} (size {n}, begin {b}, stride {s}) selects no element: undefined output",
            )
        elif offset and i >= 0 and len(r) != max(0, -(-e // s)):
            # the reference sizes the output from `end` alone and writes only what the clamped range reads
            raise fail(op, f"offset slice on axis {d} (size {n}, begin {b}, size {e}) leaves the input")
        if len(r):
            start += r.start * in_strides[d]
        if not masks[2]:
            out_shape.append(len(r))
            out_strides.append(s * in_strides[d])
        d += 1
    return tuple(out_shape), out_strides, start if 0 not in out_shape else 0


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
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
    if profile_of(g) == "litert" and litert.delegated(op, g):
        end = [in_shape[d] if e == 0 and d < len(in_shape) else e for d, e in enumerate(end)]
    out_shape, out_strides, offset = slice_plan(op, in_shape, begin, end, strides, op.options)
    copy = ViewCopy(out_shape, out_strides, offset)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return copy.calls(inputs[0], outputs[0])

    return bound([out_shape], bind)
