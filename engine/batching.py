"""Whether a graph's samples are independent: the condition for running a batch in parts (sub-batches,
lanes) whose outputs, joined, equal the whole batch's.

A batch of N replaces the leading dimension of the graph's inputs. Each sample's results are its own
where every tensor keeps that dimension (batch-major) and no op reads across it: the shapes alone
miss ops that mix along axis 0 without changing its size (a time-major LSTM, whose axis 0 is time;
a TRANSPOSE or a CONCATENATION along it at a size that happens to match), so those are checked by
their parameters.
"""

from __future__ import annotations

import functools

import numpy as np

from .executor import Plan

# where each op type keeps its axes: an option, or an input tensor (index)
_AXIS_OPTION = ("CONCATENATION", "PACK", "UNPACK")
_AXIS_INPUT = {
    "SPLIT": 0,
    "SPLIT_V": 2,
    "ARG_MAX": 1,
    "ARG_MIN": 1,
    "CUMSUM": 1,
    "MEAN": 1,
    "SUM": 1,
    "REDUCE_MAX": 1,
    "REDUCE_MIN": 1,
    "REDUCE_PROD": 1,
    "REDUCE_ANY": 1,
    "REVERSE_V2": 1,
}


def mixing_op(plan: Plan) -> str | None:
    """The first op of plan's steps that reads across the leading dimension (its place, for messages),
    or None. Unknown parameters (an axis computed at run time) count as mixing."""
    g = plan.graph
    for step in plan.steps:
        op = g.ops[step.op_index]
        data = op.inputs[1 if op.type == "SPLIT" else 0] if len(op.inputs) > 1 else op.inputs[0]
        rank = len(plan.shapes[data]) if data >= 0 else 0
        if _mixes(op, rank, functools.partial(_value, plan, op.inputs)):
            return op.where()
    return None


def _value(plan: Plan, inputs: list[int], k: int) -> np.ndarray | None:
    """Input k's value where it is a constant (or folded), flat; else None."""
    i = inputs[k] if k < len(inputs) else -1
    return None if i < 0 or i not in plan.values else np.asarray(plan.values[i]).reshape(-1)


def _mixes(op, rank: int, value) -> bool:
    kind, opts = op.type, op.options
    if opts.get("time_major"):
        return True
    if kind in _AXIS_OPTION or (kind == "GATHER" and int(opts.get("batch_dims", 0)) == 0):
        axes = rank + 1 if kind == "PACK" else rank  # (PACK's axis is its output's)
        return axes > 0 and int(opts.get("axis", 0)) % axes == 0
    if kind in ("SPLIT", "SPLIT_V") and len(op.outputs) == 1:
        return False  # one piece: the whole tensor
    if kind in _AXIS_INPUT:
        axes = value(_AXIS_INPUT[kind])
        return axes is None or any(int(a) % max(rank, 1) == 0 for a in axes)
    if kind == "TRANSPOSE":
        perm = value(1)
        return perm is None or int(perm[0]) != 0
    if kind == "GATHER_ND":
        return True  # its indices address the leading dimension
    if kind == "SLICE":
        begin, size = value(1), value(2)
        return begin is None or size is None or int(begin[0]) != 0 or int(size[0]) != -1
    if kind == "STRIDED_SLICE":
        return _slices_axis0(opts, value(1), value(2), value(3))
    return False


def _slices_axis0(opts: dict, begin, end, strides) -> bool:
    """Whether a STRIDED_SLICE takes less than the whole of axis 0, in order (or cannot be told)."""
    if begin is None or end is None or opts.get("ellipsis_mask", 0) or opts.get("new_axis_mask", 0):
        return True
    if opts.get("shrink_axis_mask", 0) & 1 or (strides is not None and int(strides[0]) != 1):
        return True
    whole_start = opts.get("begin_mask", 0) & 1 or int(begin[0]) == 0
    whole_end = opts.get("end_mask", 0) & 1 or int(end[0]) >= 1 << 30
    return not (whole_start and whole_end)
