"""RESIZE_NEAREST_NEIGHBOR (kernels/resize_nearest_neighbor.cc, reference_ops::ResizeNearestNeighbor).

For output row y the source row is, in float32 (GetNearestNeighbor):
  scale = (in - 1) / (out - 1) with align_corners (and out > 1), else in / out
  src = min(align_corners ? round((y + offset) * scale) : floor((y + offset) * scale), in - 1)
with offset 0.5 under half_pixel_centers (then also src >= 0); the same for columns. prepare()
tabulates the source rows and columns; the kernel copies runs of channels. Bytes unchanged.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..kernels.strided_copy import bits
from .common import Prepared, Shape, bound, fail, require, tensors

TYPES = ("uint8", "int8", "int16", "int32", "float32")  # the reference refuses int64


def resize_geometry(
    op: Op, g: Graph, shapes: list, values: list, types: tuple[str, ...]
) -> tuple[Shape, int, int, bool, bool]:
    """Checks shared by both resize ops: (input shape, out height, out width, align_corners, half_pixel)."""
    ins, outs = tensors(op, g)
    src, dst = ins[0], outs[0]
    require(op, src.dtype in types, f"{src.describe()}: type {src.dtype} not supported")
    require(op, dst.dtype == src.dtype, f"output type {dst.dtype} differs from input type {src.dtype}")
    shape = tuple(shapes[0])
    require(op, len(shape) == 4, f"input must have rank 4, has shape {list(shape)}")
    require(op, ins[1].dtype == "int32", f"{ins[1].describe()}: the size must be int32")
    require(op, values[1] is not None, f"{ins[1].describe()}: the size must be known at load")
    size = [int(v) for v in np.asarray(values[1]).reshape(-1)]
    require(op, len(size) == 2 and min(size) > 0, f"size {size} must be two positive integers")
    require(op, max(size) <= 1 << 16, f"size {size} too large")
    align = bool(op.options.get("align_corners", False))
    half = bool(op.options.get("half_pixel_centers", False))
    if align and half and op.type == "RESIZE_BILINEAR":
        raise fail(op, "align_corners and half_pixel_centers cannot both be set")
    return shape, size[0], size[1], align, half


def nearest_indices(n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    """GetNearestNeighbor for every output position, in float32 as the reference."""
    f32 = np.float32
    if align and n_out > 1:
        scale = f32(n_in - 1) / f32(n_out - 1)
    else:
        scale = f32(n_in) / f32(n_out)
    offset = f32(0.5) if half else f32(0.0)
    v = (np.arange(n_out, dtype=np.float32) + offset) * scale
    if align:
        r = np.sign(v) * np.floor(np.abs(v) + f32(0.5))  # TfLiteRound: halves away from zero
    else:
        r = np.floor(v)
    idx = np.minimum(r.astype(np.int64), n_in - 1)
    if half:
        idx = np.maximum(idx, 0)
    return idx


@kernel
def _nearest(src, out, iy, ix, n, h, w, c):
    oh, ow = iy.shape[0], ix.shape[0]
    for t in prange(n * oh):
        b = t // oh
        row = (b * h + iy[t % oh]) * w
        o = np.uintp(t * ow * c)
        for x in range(ow):
            p = np.uintp((row + ix[x]) * c)
            for k in range(c):  # an explicit loop on unsigned indices: a slice copy's set-up costs more
                out[o + np.uintp(k)] = src[p + np.uintp(k)]
            o += np.uintp(c)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    shape, oh, ow, align, half = resize_geometry(op, g, shapes, values, TYPES)
    n, h, w, c = shape
    iy = nearest_indices(h, oh, align, half)
    ix = nearest_indices(w, ow, align, half)
    out_shape = (n, oh, ow, c)
    fn = _nearest.pick(n * oh * ow * c)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(fn, (bits(inputs[0]), bits(outputs[0]), iy, ix, n, h, w, c))]

    return bound([out_shape], bind)
