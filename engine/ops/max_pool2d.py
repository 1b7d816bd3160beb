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
    """pool: common.Pool; accs [threads, C]: each thread's maxima, from the plan."""
    fh, fw, sh, sw, ph, pw, act_min, act_max = pool
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
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
            acc[:] = act_min  # max(window) clamped below by act_min == max over window and act_min
            for ky in range(ys, ye):
                for kx in range(xs, xe):
                    row = x[b, y0 + ky, x0 + kx]
                    for ch in range(c):
                        v = np.int32(row[ch])
                        acc[ch] = max(acc[ch], v)
            for ch in range(c):
                out[b, oy, ox, ch] = min(acc[ch], act_max)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        return pool_float.prepare(op, g, shapes, values)
    out_shape, pool = pool_geometry(op, g, shapes)
    max_pool = _max_pool.pick(int(np.prod(out_shape)) * pool.fh * pool.fw)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(max_pool, (inputs[0], outputs[0], pool, scratch[0]))]

    # each thread's maxima (numba.get_thread_id() is below NUMBA_NUM_THREADS)
    return bound([out_shape], bind, [((numba.config.NUMBA_NUM_THREADS, out_shape[3]), np.int32)])
