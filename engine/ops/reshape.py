"""RESHAPE (kernels/reshape.cc): the output holds the input's bytes under a new shape."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, require, same_bytes, tensors


def batch_scale(g: Graph, op: Op, shape: Shape) -> int:
    """How many times the runtime batch of input 0 exceeds the stored one (1 when it does not).

    Stored shapes carry batch 1; the engine runs any batch N with the leading dimension scaled.
    """
    stored = g.tensors[op.inputs[0]].shape
    if (
        len(stored) == len(shape)
        and len(shape) > 0
        and tuple(stored[1:]) == tuple(shape[1:])
        and stored[0] > 0
        and shape[0] != stored[0]
        and shape[0] % stored[0] == 0
    ):
        return shape[0] // stored[0]
    return 1


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require(op, src.dtype == dst.dtype, f"input type {src.dtype} differs from output type {dst.dtype}")
    # no requantization: the reference copies the bytes whatever the quantization parameters say
    shape_from_tensor = (
        len(ins) == 2 and ins[1] is not None and len(ins[1].shape) == 1 and ins[1].dtype == "int32"
    )
    # a shape that is a constant of the model carries the stored batch; a folded one (SHAPE ->
    # STRIDED_SLICE -> PACK) was computed from the runtime shapes and already carries batch N.
    stored_batch = True
    if shape_from_tensor:
        value = values[1]
        require(op, value is not None, f"{ins[1].describe()}: the new shape must be known before running")
        target = [int(v) for v in np.asarray(value).reshape(-1)]
        stored_batch = ins[1].is_const
    else:
        target = [int(v) for v in op.options.get("new_shape") or []]
        if target == [0]:  # legacy scalar marker
            target = []
    require(op, sum(d == -1 for d in target) <= 1, f"new shape {target} has more than one -1")
    require(op, all(d >= -1 for d in target), f"new shape {target} has a negative dimension")
    in_shape = tuple(shapes[0])
    n_in = int(np.prod(in_shape, dtype=np.int64))
    scale = batch_scale(g, op, in_shape) if stored_batch else 1
    if scale != 1 and target and target[0] != -1:
        known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
        if -1 in target or known != n_in:
            target[0] *= scale
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
        require(op, known > 0 and n_in % known == 0, f"cannot reshape {list(in_shape)} to {target}")
        target[target.index(-1)] = n_in // known
    out_shape = tuple(target)
    require(
        op,
        int(np.prod(out_shape, dtype=np.int64)) == n_in,
        f"cannot reshape {list(in_shape)} ({n_in} elements) to {list(out_shape)}",
    )

    return same_bytes(out_shape)
