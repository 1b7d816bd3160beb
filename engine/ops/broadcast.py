"""Binary elementwise ops on 8-bit data through a 256x256 table, with TFLite's broadcasting.

Quantized ADD, SUB and MUL compute out = f(a, b) element by element, where a and b take at most 256
values each: prepare() evaluates the reference formula once for every pair of raw bytes (the table
is the kernel, bit for bit), run() gathers table[a_byte, b_byte] over the broadcast shape.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op, Tensor
from ..kernels import add8, binary_lookup
from ..kernels.lookup import gather2_flat
from .common import Shape, fail, per_tensor, require, require_types, runner, tensors, view

MAX_RANK = 6  # BroadcastAdd6DSlow and friends
TILE = 1024  # elements of a per-channel operand copied side by side, so that add8_rows' steps take many rows


def broadcast_shape(op: Op, s1: Shape, s2: Shape) -> Shape:
    """CalculateShapeForBroadcast: right-aligned, each pair of dimensions equal or one of them 1."""
    rank = max(len(s1), len(s2))
    if rank > MAX_RANK:
        raise fail(op, f"rank {rank} above {MAX_RANK} not supported")
    a = (1,) * (rank - len(s1)) + tuple(s1)
    b = (1,) * (rank - len(s2)) + tuple(s2)
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            raise fail(op, f"input shapes {list(s1)} and {list(s2)} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(out)


def broadcast_plan(out: Shape, s1: Shape, s2: Shape) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse the broadcast into at most MAX_RANK dims; returns (extents, strides of a, strides of b).

    Adjacent dimensions merge when each input either spans both or broadcasts both; size-1
    output dimensions are dropped. Strides are in elements of the flattened inputs.
    """
    rank = len(out)
    a = (1,) * (rank - len(s1)) + tuple(s1)
    b = (1,) * (rank - len(s2)) + tuple(s2)
    dims: list[list[int]] = []  # [extent, a_full, b_full]
    for n, x, y in zip(out, a, b):
        if n == 1:
            continue
        fa, fb = int(x == n), int(y == n)
        if dims and dims[-1][1] == fa and dims[-1][2] == fb:
            dims[-1][0] *= n
        else:
            dims.append([n, fa, fb])
    dims = [[1, 1, 1]] * (MAX_RANK - len(dims)) + dims
    ext = np.array([d[0] for d in dims], np.int64)
    sa = np.zeros(MAX_RANK, np.int64)
    sb = np.zeros(MAX_RANK, np.int64)
    ka = kb = 1
    for i in range(MAX_RANK - 1, -1, -1):
        if dims[i][1]:
            sa[i] = ka
            ka *= ext[i]
        if dims[i][2]:
            sb[i] = kb
            kb *= ext[i]
    return ext, sa, sb


def binary_table_runner(out_shape: Shape, s1: Shape, s2: Shape, table: np.ndarray):
    """run(inputs, outputs, scratch) computing outputs[0] = table[byte(a), byte(b)] with broadcasting."""
    table = np.ascontiguousarray(table.reshape(-1))
    size, n1, n2 = (int(np.prod(s)) for s in (out_shape, s1, s2))
    if n1 == n2 == size:  # the same elements in the same order (shapes equal but for 1s)
        gather_flat = gather2_flat.pick(size)

        def bind_flat(inputs: list, outputs: list, scratch: list) -> list:
            a, b = view(inputs[0]).view(np.uint8), view(inputs[1]).view(np.uint8)
            return [(gather_flat, (a, b, view(outputs[0]), table))] if size else []

        return runner(bind_flat)
    if 1 in (n1, n2):  # one side a single value: its line of the table, looked up
        strides = (256, 1) if n2 == 1 else (1, 256)
        gather = binary_lookup.gather_scalar.pick(size // 16)

        def bind_scalar(inputs: list, outputs: list, scratch: list) -> list:
            a, b = view(inputs[0]).view(np.uint8), view(inputs[1]).view(np.uint8)
            x, other = (a, b) if n2 == 1 else (b, a)
            lut = np.empty(256, table.dtype)  # the plan's own: filled by each run
            return [(gather, (x, other, view(outputs[0]), table, lut, *strides))]

        return runner(bind_scalar)
    ext, sa, sb = broadcast_plan(out_shape, s1, s2)
    phases = int(ext[-1])
    if sa[-1] == sb[-1] == 1 and max(n1, n2) == size and min(n1, n2) == phases <= binary_lookup.PHASES_MAX:
        strides = (256, 1) if n2 == phases else (1, 256)
        gather = binary_lookup.gather_phases.pick(size // 4)

        def bind_phases(inputs: list, outputs: list, scratch: list) -> list:
            a, b = view(inputs[0]).view(np.uint8), view(inputs[1]).view(np.uint8)
            x, other = (a, b) if n2 == phases else (b, a)
            luts = np.empty(phases * 256, table.dtype)
            return [(gather, (x, other, view(outputs[0]), table, luts, *strides))]

        return runner(bind_phases)
    gather_nd = binary_lookup.gather2_nd_runs.pick(size)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        a, b = view(inputs[0]).view(np.uint8), view(inputs[1]).view(np.uint8)
        return [(gather_nd, (a, b, view(outputs[0]), table, ext, sa, sb))]

    return runner(bind)


def vector_table_runner(
    out_shape: Shape, s1: Shape, s2: Shape, table: np.ndarray, q, values: list | None = None
):
    """run(inputs, outputs, scratch) of an 8-bit ADD or SUB: add8's vector kernel (q: its constants, None where
    it does not reproduce table) where the shapes suit it, equal sizes or one operand repeated along the rows
    of the other; else binary_table_runner(table). values: the inputs' constant values (None: activations)."""
    run = None if q is None else _vector_runner(out_shape, s1, s2, q, values or [None, None])
    return run or binary_table_runner(out_shape, s1, s2, table)


def _vector_runner(out_shape: Shape, s1: Shape, s2: Shape, q: add8.Fitted, values: list):
    size, n1, n2 = (int(np.prod(s)) for s in (out_shape, s1, s2))
    first = 1 if q.swap else 0  # the input the kernel takes as its a
    planes = q.planes
    if size == 0:
        return None
    if n1 == n2 == size:
        flat = add8.add8_flat.pick(size // 16)

        def bind_flat(inputs: list, outputs: list, scratch: list) -> list:
            a, b = view(inputs[first]), view(inputs[1 - first])
            return [(flat, (a, b, view(outputs[0]), planes))]

        return runner(bind_flat)
    vec = row_vector(out_shape, s1, s2)
    if vec is None:
        return None
    rows = add8.add8_rows.pick(size // 16)
    tiles = Tiles(vec, (n1, n2)[vec], values[vec])

    def bind_rows(inputs: list, outputs: list, scratch: list) -> list:
        full, vector, tile = tiles.operands(inputs)
        return [(rows, (full, vector, view(outputs[0]), planes, vec == first, tile))]

    return runner(bind_rows)


def row_vector(out_shape: Shape, s1: Shape, s2: Shape) -> int | None:
    """The input (0 or 1) repeated along the rows of the other, which spans the output (a per-channel
    operand along the last axis, [N, H, W, C] with [C] or [1, 1, 1, C]); None for any other broadcast."""
    ext, sa, sb = broadcast_plan(out_shape, s1, s2)
    inner = int(ext[-1])
    if ext[:-2].prod() != 1 or sa[-1] != 1 or sb[-1] != 1 or sorted((sa[-2], sb[-2])) != [0, inner]:
        return None
    return 0 if sa[-2] == 0 else 1


class Tiles:
    """The operands of a rows kernel (add8.add8_rows, binary8.vmul_rows): the full input, the vector, and
    the vector side by side TILE // C times: a constant's made once here (the vector passed empty), an
    activation's a buffer of the plan's own that each run fills."""

    def __init__(self, vec: int, inner: int, value: np.ndarray | None):
        self.vec, self.inner = vec, inner  # which input, its size (the rows' length)
        self.times = max(1, TILE // self.inner)
        self.const = None if value is None else np.tile(np.asarray(value).reshape(-1), self.times)

    def operands(self, inputs: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        full, vector = view(inputs[1 - self.vec]), view(inputs[self.vec])
        if self.const is not None:
            return full, vector[:0], self.const.astype(vector.dtype)
        return full, vector, np.empty(self.times * self.inner, vector.dtype)


def binary_8bit(op: Op, g: Graph, shapes: list) -> tuple[Tensor, Tensor, Tensor, Shape]:
    """The checked inputs and output of ADD, SUB or MUL on 8-bit per-tensor data of one type (positive
    scales), and the broadcast output shape."""
    (a, b), (out,) = tensors(op, g)
    require_types(op, a, ("uint8", "int8"))
    require(op, b.dtype == a.dtype and out.dtype == a.dtype, f"inputs and output must all be {a.dtype}")
    require_types(op, b, (a.dtype,))
    require_types(op, out, (a.dtype,))
    scales = [per_tensor(op, t)[0] for t in (a, b, out)]
    require(op, min(scales) > 0, "scales must be positive")
    return a, b, out, broadcast_shape(op, shapes[0], shapes[1])
