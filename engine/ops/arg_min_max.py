"""ARG_MAX and ARG_MIN (kernels/arg_min_max.cc, reference_ops::ArgMinMax).

The index of the first largest (smallest) value along one axis, which is removed from the output;
int32 or int64 output (option output_type). Values are compared raw (quantization parameters do
not matter). float32: a NaN never wins and a number replaces a leading NaN (the reference's
comparator); an all-NaN row gives 0.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from .common import Prepared, Shape, bound, require, tensors, view

TYPES = ("uint8", "int8", "int32", "float32", "bool")  # the reference refuses int16 and int64
TYPE_CODES = {2: "int32", 4: "int64"}  # TensorType codes in ArgMaxOptions.output_type


@kernel
def _arg(x, out, outer, n, inner, sign):
    for t in prange(outer * inner):
        o, i = t // inner, t % inner
        base = o * n * inner + i
        best = x[base] * sign
        found = not np.isnan(best)  # False only for NaN
        k = 0
        for j in range(1, n):
            v = x[base + j * inner] * sign
            if not np.isnan(v) and (not found or v > best):
                best, k, found = v, j, True
        out[t] = k


@kernel
def _arg_int(x, out, outer, n, inner, is_max):
    """Integers (no NaN): raw comparisons, unsigned indices (no negative-index tests in the loop)."""
    step = np.uint64(inner)
    for t in prange(outer * inner):
        base = np.uint64((t // inner) * n * inner + t % inner)
        best = x[base]
        k = 0
        for j in range(1, n):
            v = x[base + np.uint64(j) * step]
            if (v > best) if is_max else (v < best):
                best = v
                k = j
        out[t] = k


@kernel
def _arg_bytes(x, out, rows, n, flip):
    """8-bit rows (contiguous, n <= 256): the maximum of the keys (value << 8) | (255 - index) is the
    first largest value; a branch-free reduction. flip maps values to an order-preserving byte (0x80
    for int8) and reverses it for ARG_MIN (0xFF)."""
    for r in prange(rows):
        base = np.uint64(r * n)
        best = np.int32(-1)
        for j in range(n):
            v = np.int32(x[base + np.uint64(j)] ^ flip)
            best = max(best, (v << 8) | (255 - j))
        out[r] = 255 - (best & 255)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require(op, src.dtype in TYPES, f"{src.describe()}: type {src.dtype} not supported")
    want = TYPE_CODES.get(op.options.get("output_type", 4))
    require(op, dst.dtype in ("int32", "int64"), f"{dst.describe()}: output must be int32 or int64")
    require(op, want is None or want == dst.dtype, f"output_type {want} differs from {dst.describe()}")
    require(op, ins[1].dtype in ("int32", "int64"), f"{ins[1].describe()}: the axis must be an integer")
    require(op, values[1] is not None and np.size(values[1]) == 1, "the axis must be a known scalar")
    shape = tuple(shapes[0])
    rank = len(shape)
    require(op, rank >= 1, "input must have rank >= 1")
    axis = int(np.asarray(values[1]).reshape(-1)[0])
    require(op, -rank <= axis < rank, f"axis {axis} out of range for rank {rank}")
    axis %= rank
    require(op, shape[axis] > 0, f"axis {axis} is empty")
    out_shape = shape[:axis] + shape[axis + 1 :]
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    inner = int(np.prod(shape[axis + 1 :], dtype=np.int64))
    n = shape[axis]
    fn = (_arg if src.dtype == "float32" else _arg_int).pick(outer * inner * n)
    # floats: ARG_MIN is ARG_MAX of the negated values (in double); integers: a flag picks the comparison
    sign = np.float64(1 if op.type == "ARG_MAX" else -1) if src.dtype == "float32" else op.type == "ARG_MAX"

    if src.dtype in ("uint8", "int8") and inner == 1 and n <= 256:
        flip = np.uint8((0x80 if src.dtype == "int8" else 0) ^ (0 if op.type == "ARG_MAX" else 0xFF))
        fn = _arg_bytes.pick(outer * n)

        def bind_bytes(inputs: list, outputs: list, scratch: list) -> list:
            return [(fn, (view(inputs[0]).view(np.uint8), view(outputs[0]), outer, n, flip))]

        return bound([out_shape], bind_bytes)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        x = view(inputs[0])
        if x.dtype == np.bool_:
            x = x.view(np.uint8)
        return [(fn, (x, view(outputs[0]), outer, n, inner, sign))]

    return bound([out_shape], bind)
