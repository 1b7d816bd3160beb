"""AVERAGE_POOL_2D (kernels/pooling.cc, reference_ops / reference_integer_ops AveragePool), uint8 and int8.

The average counts only the window's in-bounds elements and rounds half away from zero with
C's truncating division: (acc + n/2)/n for acc > 0, (acc - n/2)/n otherwise. uint8 uses the first
form only, which is the same thing since its sums are never negative.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..profiles import litert_xnn
from . import pool_float
from .common import Prepared, Shape, bound, per_thread, pool_geometry


@kernel
def _avg_pool(x, out, pool, accs):
    """pool: common.Pool; accs [threads, C]: each thread's sums, from the plan."""
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
            count = (ye - ys) * (xe - xs)
            half = count // 2
            # integer division through a double reciprocal (off by at most one, then fixed)
            inv = 1.0 / count
            acc[:] = 0
            for ky in range(ys, ye):
                for kx in range(xs, xe):
                    row = x[b, y0 + ky, x0 + kx]
                    for ch in range(c):
                        acc[ch] += np.int32(row[ch])
            for ch in range(c):
                a = acc[ch]
                p = a + half if a > 0 else half - a
                q = np.int32(np.float64(p) * inv)
                q += (q + 1) * count <= p
                q -= q * count > p
                v = q if a > 0 else -q  # C division truncates toward zero
                out[b, oy, ox, ch] = min(max(v, act_min), act_max)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        litert_xnn.require_reproduced(op, g)
        return pool_float.prepare(op, g, shapes, values)
    out_shape, pool = pool_geometry(op, g, shapes)
    avg_pool = _avg_pool.pick(int(np.prod(out_shape)) * pool.fh * pool.fw)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(avg_pool, (inputs[0], outputs[0], pool, scratch[0]))]

    return bound([out_shape], bind, [per_thread(out_shape[3], np.int32)])  # each thread's sums
