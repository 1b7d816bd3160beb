"""MAX_POOL_2D (kernels/pooling.cc, reference_ops / reference_integer_ops MaxPool), uint8 and int8."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from . import pool_float
from .common import Prepared, Shape, bound, pool_geometry


@kernel
def _max_pool(x, out, pool, accs):
    """pool: common.Pool; accs [threads, C] of the data's type: each thread's maxima, from the plan.
    Flat unsigned indices and maxima in the data's own type: the channel loops vectorize 64 bytes wide,
    with no array view made per window element."""
    fh, fw, sh, sw, ph, pw, act_min, act_max = pool
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    xf, of = x.reshape(-1), out.reshape(-1)
    lo, hi = accs.dtype.type(act_min), accs.dtype.type(act_max)
    for t in prange(n * oh):
        b = t // oh
        oy = t % oh
        y0 = oy * sh - ph
        ys = max(0, -y0)
        ye = min(fh, h - y0)
        acc = accs[numba.get_thread_id()]
        for ox in range(ow):
            x0 = ox * sw - pw
            xs = max(0, -x0)
            xe = min(fw, w - x0)
            for ch in range(c):
                acc[ch] = lo  # max(window) clamped below by act_min == max over window and act_min
            for ky in range(ys, ye):
                for kx in range(xs, xe):
                    p = np.uintp(((b * h + y0 + ky) * w + x0 + kx) * c)
                    for ch in range(c):
                        acc[ch] = max(acc[ch], xf[p + np.uintp(ch)])
            o = np.uintp(((b * oh + oy) * ow + ox) * c)
            for ch in range(c):
                of[o + np.uintp(ch)] = min(acc[ch], hi)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        return pool_float.prepare(op, g, shapes, values)
    out_shape, pool = pool_geometry(op, g, shapes)
    max_pool = _max_pool.pick(int(np.prod(out_shape)) * pool.fh * pool.fw)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(max_pool, (inputs[0], outputs[0], pool, scratch[0]))]

    # each thread's maxima (numba.get_thread_id() is below NUMBA_NUM_THREADS)
    dtype = g.tensors[op.inputs[0]].np_dtype
    return bound([out_shape], bind, [((numba.config.NUMBA_NUM_THREADS, out_shape[3]), dtype)])
