"""TRANSPOSE (kernels/transpose.cc, reference_ops::Transpose): out[i_0..i_k] = in[i_perm^-1...]; the
permutation must be known at load. Up to 6 dimensions as the reference; bytes unchanged."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..kernels.strided_copy import ViewCopy, contiguous_strides
from .common import Prepared, Shape, bound, require, tensors

TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "bool")


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require(op, src.dtype in TYPES, f"{src.describe()}: type {src.dtype} not supported")
    require(op, dst.dtype == src.dtype, f"output type {dst.dtype} differs from input type {src.dtype}")
    require(op, ins[1].dtype in ("int32", "int64"), f"{ins[1].describe()}: the permutation must be integers")
    require(op, values[1] is not None, f"{ins[1].describe()}: the permutation must be known at load")
    shape = tuple(shapes[0])
    rank = len(shape)
    perm = [int(v) for v in np.asarray(values[1]).reshape(-1)]
    require(op, rank <= 6, f"rank {rank} above 6 not supported")
    require(op, len(perm) == rank, f"permutation {perm} for an input of rank {rank}")
    perm = [p + rank if p < 0 else p for p in perm]  # transpose.cc accepts negative entries
    require(op, sorted(perm) == list(range(rank)), f"{perm} is not a permutation of the {rank} axes")
    strides = contiguous_strides(shape)
    out_shape = tuple(shape[p] for p in perm)
    copy = ViewCopy(out_shape, [strides[p] for p in perm], 0)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return copy.calls(inputs[0], outputs[0])

    return bound([out_shape], bind)
