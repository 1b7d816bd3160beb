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
    """pool: common.Pool; rows [threads, 2 * W * C] of the data's type: each thread's row of maxima
    and row of window maxima, from the plan. Separable: an output row's window rows reduce to one
    row first, then its columns to the second row, win[i] = max(row[i + kx * C]) over the window's
    columns kx (the row's last pixels take the columns they have, their windows' part inside the
    row): runs of W * C values that vectorize 64 wide. Each output pixel then reads its window's
    maximum at its first column (a window that starts in the left padding takes its own), clamped
    to the activation's range there. Flat unsigned indices and maxima in the data's own type. No
    pass only copies or fills: a 3 x 3 pool's 7 passes over a row, 4 now (MNIST's at batch 256:
    139 -> ? us)."""
    fh, fw, sh, sw, ph, pw, act_min, act_max = pool
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    xf, of = flat_view(x), flat_view(out)
    lo, hi = rows.dtype.type(act_min), rows.dtype.type(act_max)
    wc = w * c
    for t in prange(n * oh):
        b = t // oh
        y0 = t % oh * sh - ph
        mine = rows[numba.get_thread_id()]
        row, win = mine[:wc], mine[wc:]
        k0, k1 = max(0, -y0), min(fh, h - y0)  # the window's rows inside the input
        top = np.uintp((b * h + y0 + k0) * wc)
        if k1 - k0 >= 2:  # (the first two rows in one pass: no pass that only copies)
            for i in range(wc):
                row[i] = max(xf[top + np.uintp(i)], xf[top + np.uintp(wc + i)])
        elif k1 > k0:
            for i in range(wc):
                row[i] = xf[top + np.uintp(i)]
        else:
            row[:] = lo
        for ky in range(k0 + 2, k1):
            base = np.uintp((b * h + y0 + ky) * wc)
            for i in range(wc):
                row[i] = max(row[i], xf[base + np.uintp(i)])
        first = min(ow, -(-pw // sw))  # the pixels before it start in the padding
        for ox in range(first):
            x0 = ox * sw - pw
            o = np.uintp((t * ow + ox) * c)
            for ch in range(c):
                m = lo
                for kx in range(-x0, min(fw, w - x0)):
                    m = max(m, row[np.uintp((x0 + kx) * c + ch)])
                of[o + np.uintp(ch)] = min(m, hi)
        if fw >= 2:  # window maxima: the first two columns in one pass, the row's last pixel as it is
            for i in range(np.uintp(wc - c)):
                win[i] = max(row[i], row[i + np.uintp(c)])
            for i in range(np.uintp(wc - c), np.uintp(wc)):
                win[i] = row[i]
            for kx in range(2, fw):
                d = np.uintp(kx * c)
                for i in range(np.uintp(wc) - min(d, np.uintp(wc))):
                    win[i] = max(win[i], row[i + d])
        else:
            win = row
        for ox in range(first, ow):
            p = np.uintp((ox * sw - pw) * c)
            o = np.uintp((t * ow + ox) * c)
            for ch in range(c):
                of[o + np.uintp(ch)] = min(max(win[p + np.uintp(ch)], lo), hi)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        return pool_float.prepare(op, g, shapes, values)
    out_shape, pool = pool_geometry(op, g, shapes)
    max_pool = _max_pool.pick(int(np.prod(out_shape)) * pool.fh * pool.fw)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(max_pool, (inputs[0], outputs[0], pool, scratch[0]))]

    # each thread's row of column maxima and row of window maxima
    dtype = g.tensors[op.inputs[0]].np_dtype
    w, c = shapes[0][2:]
    return bound([out_shape], bind, [per_thread(2 * w * c, dtype)])
