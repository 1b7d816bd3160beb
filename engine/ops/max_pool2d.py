"""MAX_POOL_2D (kernels/pooling.cc, reference_ops / reference_integer_ops MaxPool), uint8 and int8."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.irtools import flat_view
from ..kernels.kernel import kernel
from . import pool_float
from .common import Prepared, Shape, bound, per_thread, pool_geometry


@kernel
def _max_pool(x, out, pool, rows):
    """pool: common.Pool; rows [threads, W * C] of the data's type: each thread's row of maxima, from
    the plan. Separable: an output row's window rows reduce to one row first (up to three at a pass:
    runs of W * C values that vectorize 64 wide), then each output pixel takes the maximum of its
    window's columns, up to three at a pass over its C channels, clamped to the activation's range
    (a window that reaches into the padding takes the columns it has). Flat unsigned indices and
    maxima in the data's own type. A 3 x 3 pool had made 7 passes over a row, each output pixel
    reading a row of window maxima: MNIST's 3.8 -> 2.9 us at batch 8 (at 256 its input streams from
    the L3 cache either way: 139 -> 125 us)."""
    fh, fw, sh, sw, ph, pw, act_min, act_max = pool
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    xf, of = flat_view(x), flat_view(out)
    lo, hi = rows.dtype.type(act_min), rows.dtype.type(act_max)
    wc = w * c
    first = min(ow, -(-pw // sw))  # the pixels before it start in the padding
    last = max(first, min(ow, (w - fw + pw) // sw + 1))  # ... from it on end beyond the row
    c1, c2 = np.uintp(min(1, fw - 1) * c), np.uintp(min(2, fw - 1) * c)  # a window's 2nd and 3rd columns
    for t in prange(n * oh):
        b = t // oh
        y0 = t % oh * sh - ph
        row = rows[numba.get_thread_id()]
        k0, k1 = max(0, -y0), min(fh, h - y0)  # the window's rows inside the input
        top = np.uintp((b * h + y0 + k0) * wc)
        r1, r2 = np.uintp(min(1, k1 - k0 - 1) * wc), np.uintp(min(2, k1 - k0 - 1) * wc)
        if k1 > k0:
            for i in range(np.uintp(wc)):
                row[i] = max(max(xf[top + i], xf[top + r1 + i]), xf[top + r2 + i])
        else:
            row[:] = lo
        for ky in range(k0 + 3, k1):
            base = np.uintp((b * h + y0 + ky) * wc)
            for i in range(wc):
                row[i] = max(row[i], xf[base + np.uintp(i)])
        for ox in range(first, last):  # windows inside the row
            p = np.uintp((ox * sw - pw) * c)
            o = np.uintp((t * ow + ox) * c)
            if fw <= 3:  # (the clamp in the same pass: a pass of its own costs as much)
                for ch in range(np.uintp(c)):
                    of[o + ch] = min(max(max(max(row[p + ch], row[p + c1 + ch]), row[p + c2 + ch]), lo), hi)
                continue
            for ch in range(np.uintp(c)):
                of[o + ch] = max(max(row[p + ch], row[p + c1 + ch]), row[p + c2 + ch])
            for kx in range(3, fw):
                d = p + np.uintp(kx * c)
                for ch in range(np.uintp(c)):
                    of[o + ch] = max(of[o + ch], row[d + ch])
            for ch in range(np.uintp(c)):
                of[o + ch] = min(max(of[o + ch], lo), hi)
        for ox in range(ow):  # windows that reach into the padding
            if first <= ox < last:
                continue
            x0 = ox * sw - pw
            o = np.uintp((t * ow + ox) * c)
            for ch in range(c):
                m = lo
                for kx in range(max(0, -x0), min(fw, w - x0)):
                    m = max(m, row[np.uintp((x0 + kx) * c + ch)])
                of[o + np.uintp(ch)] = min(m, hi)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        return pool_float.prepare(op, g, shapes, values)
    out_shape, pool = pool_geometry(op, g, shapes)
    max_pool = _max_pool.pick(int(np.prod(out_shape)) * pool.fh * pool.fw)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(max_pool, (inputs[0], outputs[0], pool, scratch[0]))]

    # each thread's row of column maxima
    dtype = g.tensors[op.inputs[0]].np_dtype
    w, c = shapes[0][2:]
    return bound([out_shape], bind, [per_thread(w * c, dtype)])
