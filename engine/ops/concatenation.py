"""CONCATENATION (kernels/concatenation.cc, reference_ops::Concatenation / ConcatenationWithScaling).

uint8 inputs whose scale or zero point differ from the output's are requantized the way
ConcatenationWithScaling does it, in float32: round(q * (s_in * (1/s_out)) + (-zp_in * that)) + zp_out,
std::round (half away from zero), clamped to [0, 255]. A uint8 input has 256 possible values, so
prepare() tabulates that function and run() only looks it up. int8 has no rescaling kernel: the
reference refuses int8 inputs whose quantization differs from the output's, and so does this op.
int16 inputs are copied raw whatever their scales (only zero points 0 are required), as the reference
and TFLite Micro do.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..kernels.strided_copy import bits, copy_rows
from .common import Prepared, Shape, bound, fail, require, tensors, view

PLAIN_TYPES = ("int8", "int16", "int32", "int64", "float32", "bool")


@kernel
def _lookup(x, out, lut):
    """out[k, j] = lut[x[k, j]] for a 2-D uint8 x and a (strided) 2-D view out."""
    for k in prange(x.shape[0]):
        for j in range(x.shape[1]):
            out[k, j] = lut[x[k, j]]


def requantize_table(s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """ConcatenationWithScaling's float path for every uint8 value (float32 throughout, no FMA)."""
    f32 = np.float32
    scale = f32(s_in) * (f32(1.0) / f32(s_out))
    bias = f32(-zp_in) * scale
    v = (np.arange(256, dtype=np.float32) * scale + bias).astype(np.float64)
    r = np.sign(v) * np.floor(np.abs(v) + 0.5)  # exact in float64 for float32 values
    return np.clip(r.astype(np.int64) + zp_out, 0, 255).astype(np.uint8)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    require(op, None not in ins, "an input is omitted")
    dst = outs[0]
    require(
        op, op.options.get("fused_activation_function", "NONE") == "NONE", "fused activation must be NONE"
    )
    dtype = ins[0].dtype
    for t in ins:
        require(op, t.dtype == dtype, f"{t.describe()}: all inputs must have type {dtype}")
    require(op, dst.dtype == dtype, f"output type {dst.dtype} differs from input type {dtype}")
    if dtype not in PLAIN_TYPES + ("uint8",):
        raise fail(op, f"type {dtype} not supported")
    rank = len(shapes[0])
    axis = int(op.options.get("axis", 0))
    if axis < 0:
        axis += rank
    require(op, 0 <= axis < rank, f"axis {op.options.get('axis')} out of range for rank {rank}")
    for t, s in zip(ins, shapes):
        require(op, len(s) == rank, f"{t.describe()}: rank {len(s)} differs from {rank}")
        for d in range(rank):
            if d != axis and s[d] != shapes[0][d]:
                raise fail(op, f"input shapes {[list(x) for x in shapes]} differ outside axis {axis}")
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    out_shape = tuple(out_shape)
    outer = int(np.prod(out_shape[:axis], dtype=np.int64))
    inner = int(np.prod(out_shape[axis + 1 :], dtype=np.int64))

    tables: list[np.ndarray | None] = [None] * len(ins)
    if dtype in ("uint8", "int8", "int16") and dst.quantized:
        # (per axis, the reference's output has no per-tensor scale: it would requantize into 0)
        require(op, dst.scale.size == 1, f"{dst.describe()}: must be quantized per tensor")
        s_out, zp_out = float(dst.scale[0]), int(dst.zero_point[0])
        for k, t in enumerate(ins):
            require(op, t.quantized and t.scale.size == 1, f"{t.describe()}: must be quantized per tensor")
            s_in, zp_in = float(t.scale[0]), int(t.zero_point[0])
            same = np.float32(s_in) == np.float32(s_out) and zp_in == zp_out
            if same:
                continue
            if dtype == "int16":  # copied raw whatever the scales (reference_ops::Concatenation); zp 0 only
                require(op, zp_in == 0, f"{t.describe()}: int16 tensors must have zero point 0")
                continue
            if dtype != "uint8":
                raise fail(op, f"{t.describe()}: {dtype} inputs must share the output's scale and zero point")
            tables[k] = requantize_table(s_in, zp_in, s_out, zp_out)
        if dtype == "int16":
            require(op, zp_out == 0, "int16 tensors must have zero point 0")
    elif dtype == "uint8":  # (the reference would requantize into a scale of 0: no defined result)
        for t in ins:
            require(op, not t.quantized, f"{t.describe()}: quantized, and the output {dst.describe()} is not")
    # column range of each input in the (outer, axis * inner) view of the output
    bounds = np.cumsum([0] + [s[axis] * inner for s in shapes]).tolist()
    lookups = [_lookup.pick(int(np.prod(s, dtype=np.int64))) for s in shapes]
    copies = [copy_rows.pick(int(np.prod(s, dtype=np.int64))) for s in shapes]
    total = bounds[-1]

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        out2d = view(outputs[0], (outer, -1))
        calls = []
        for k, x in enumerate(inputs):
            if tables[k] is None:
                width = bounds[k + 1] - bounds[k]
                calls.append((copies[k], (bits(x), bits(outputs[0]), outer, width, total, bounds[k])))
                continue
            x2d = view(x, (outer, -1))
            calls.append((lookups[k], (x2d, out2d[:, bounds[k] : bounds[k + 1]], tables[k])))
        return calls

    return bound([out_shape], bind)
