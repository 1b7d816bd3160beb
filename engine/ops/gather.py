"""GATHER (kernels/gather.cc, reference_ops::Gather) and GATHER_ND (kernels/gather_nd.cc,
reference_ops::GatherNd): values copied as they are (quantization unchanged).

GATHER: out = params[..., indices, ...] along `axis`, the first `batch_dims` dimensions shared by
params and indices: shape params[:axis] + indices[batch_dims:] + params[axis + 1:].
GATHER_ND: the last dimension of indices (depth d) addresses params' first d dimensions; the output
is indices[:-1] + params[d:].
An index out of range is an error in the reference: refused at load for constant indices, an
InputError when running otherwise (never a read outside the tensor).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..graph import Graph, Op
from ..kernels import plain
from .common import Prepared, Shape, bound, fail, require, tensors, view

TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "bool")


def _check(op: Op, ok: bool, when_known: bool) -> None:
    if not ok:
        if when_known:
            raise fail(op, "index out of range")
        raise InputError(f"{op.where()}: index out of range")


def _common(op: Op, g: Graph):
    ins, outs = tensors(op, g)
    params, indices, out = ins[0], ins[1], outs[0]
    require(op, params.dtype in TYPES, f"{params.describe()}: type {params.dtype} not supported")
    require(op, out.dtype == params.dtype, f"output type {out.dtype} differs from {params.dtype}")
    require(op, indices.dtype in ("int32", "int64"), f"{indices.describe()}: indices must be int32/int64")
    return params, indices


def prepare_gather(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    _common(op, g)
    ps, ids = tuple(shapes[0]), tuple(shapes[1])
    rank = len(ps)
    axis = int(op.options.get("axis", 0))
    batch_dims = int(op.options.get("batch_dims", 0))
    require(op, -rank <= axis < rank, f"axis {axis} out of range for rank {rank}")
    axis %= rank
    if batch_dims < 0:
        batch_dims += len(ids)
    require(op, 0 <= batch_dims <= min(axis, len(ids)), f"batch_dims {batch_dims} invalid for axis {axis}")
    require(op, ps[:batch_dims] == ids[:batch_dims], f"batch dimensions differ: {list(ps)} and {list(ids)}")
    n = ps[axis]
    out_shape = ps[:axis] + ids[batch_dims:] + ps[axis + 1 :]
    b = math.prod(ps[:batch_dims])
    outer = math.prod(ps[batch_dims:axis])
    inner = math.prod(ps[axis + 1 :])
    m = math.prod(ids[batch_dims:])
    if values[1] is not None:
        _check(op, bool(np.all((values[1] >= 0) & (values[1] < n))), True)
    known = values[1] is not None

    def run(inputs: list, outputs: list, scratch: list) -> None:
        idx = inputs[1].reshape(b, m)
        if not known:
            _check(op, bool(np.all((idx >= 0) & (idx < n))), False)
        p = inputs[0].reshape(b, outer, n, inner)
        o = outputs[0].reshape(b, outer, m, inner)
        for k in range(b):
            np.take(p[k], idx[k], axis=1, out=o[k])

    return Prepared([out_shape], run)


def prepare_gather_nd(
    op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]
) -> Prepared:
    _common(op, g)
    ps, ids = tuple(shapes[0]), tuple(shapes[1])
    require(op, len(ids) >= 1, "indices must have rank >= 1")
    depth = ids[-1]
    require(op, 1 <= depth <= len(ps), f"index depth {depth} exceeds params rank {len(ps)}")
    out_shape = ids[:-1] + ps[depth:]
    limits = np.array(ps[:depth], np.int64)
    strides = np.array([math.prod(ps[k + 1 : depth]) for k in range(depth)], np.int64)
    inner = math.prod(ps[depth:])
    count = math.prod(ids[:-1])
    if values[1] is not None:
        v = np.asarray(values[1]).reshape(count, depth)
        _check(op, bool(np.all((v >= 0) & (v < limits))), True)
    rows = math.prod(ps[:depth])

    def gather(params: np.ndarray, idx: np.ndarray, out: np.ndarray) -> None:
        _check(op, plain.gather_nd(params, idx, limits, strides, out), False)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        ins = (view(inputs[0], (rows, inner)), view(inputs[1], (count, depth)))
        return [(gather, (*ins, view(outputs[0], (count, inner))))]

    return bound([out_shape], bind)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if op.type == "GATHER":
        return prepare_gather(op, g, shapes, values)
    return prepare_gather_nd(op, g, shapes, values)
