"""float32 MAX_POOL_2D and AVERAGE_POOL_2D (kernels/pooling.cc with BUILTIN_REF, reference_ops::MaxPool /
AveragePool on float): each window clipped to the input; max from the lowest float by std::max, or the
sum in window order (rows, then columns) divided by the float count of its elements; then the fused
activation's float clamp min(max(v, lo), hi). The pooling ops' modules dispatch float32 here."""

from __future__ import annotations

import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from .common import Prepared, Shape, bound, float_activation, pool_geometry

ACTIVATIONS = {
    "NONE": (-np.inf, np.inf),
    "RELU": (0.0, np.inf),
    "RELU6": (0.0, 6.0),
    "RELU_N1_TO_1": (-1.0, 1.0),
}


@kernel
def _pool_float(x, out, pool, bounds, average):
    """pool: common.Pool (its integer clamp unused); bounds: the float activation range."""
    fh, fw, sh, sw, ph, pw = pool[0], pool[1], pool[2], pool[3], pool[4], pool[5]
    lo, hi = bounds[0], bounds[1]
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    lowest = np.float32(-3.4028234663852886e38)
    for t in prange(n * oh):
        b = t // oh
        oy = t % oh
        y0 = oy * sh - ph
        ys, ye = max(0, -y0), min(fh, h - y0)
        for ox in range(ow):
            x0 = ox * sw - pw
            xs, xe = max(0, -x0), min(fw, w - x0)
            for ch in range(c):
                acc = np.float32(0) if average else lowest
                count = np.float32(0)
                for ky in range(ys, ye):
                    for kx in range(xs, xe):
                        v = x[b, y0 + ky, x0 + kx, ch]
                        if average:
                            acc += v
                            count += np.float32(1)
                        elif acc < v:
                            acc = v
                if average:
                    acc = acc / count
                acc = max(acc, lo)
                out[b, oy, ox, ch] = min(acc, hi)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    out_shape, pool = pool_geometry(op, g, shapes)
    bounds = float_activation(op)
    average = op.type == "AVERAGE_POOL_2D"
    pool_float = _pool_float.pick(int(np.prod(out_shape)) * pool.fh * pool.fw)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(pool_float, (inputs[0], outputs[0], pool, bounds, average))]

    return bound([out_shape], bind)
