"""MAX_POOL_2D (kernels/pooling.cc, reference_ops / reference_integer_ops MaxPool), uint8 and int8.

Also holds the pooling geometry shared with AVERAGE_POOL_2D.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from .common import (
    Prepared,
    Shape,
    conv_output_size,
    conv_padding,
    fused_activation,
    int_option,
    require,
    require_types,
    tensors,
)


def pool_geometry(op: Op, g: Graph, shapes: list[Shape | None]) -> tuple[tuple, tuple, int, int]:
    """Validate a pooling op; returns (output shape, (fh, fw, sh, sw, ph, pw), act_min, act_max)."""
    ins, outs = tensors(op, g)
    require(op, len(ins) == 1 and ins[0] is not None and len(outs) == 1, "takes 1 input and 1 output")
    src, dst = ins[0], outs[0]
    require_types(op, src, ("uint8", "int8", "int16"))
    require(op, dst.dtype == src.dtype, f"output type {dst.dtype} differs from input type {src.dtype}")
    require_types(op, dst, (src.dtype,))
    shape = shapes[0]
    require(op, len(shape) == 4, f"input must be 4-D NHWC, got shape {list(shape)}")
    o = op.options
    fh, fw = int_option(op, "filter_height", 0), int_option(op, "filter_width", 0)
    sh, sw = int_option(op, "stride_h", 0), int_option(op, "stride_w", 0)
    require(
        op, fh > 0 and fw > 0 and sh > 0 and sw > 0, f"filter {fh}x{fw} and strides {sh}x{sw} must be > 0"
    )
    padding = o.get("padding", "SAME")
    n, h, w, c = shape
    oh = conv_output_size(op, h, fh, sh, 1, padding)
    ow = conv_output_size(op, w, fw, sw, 1, padding)
    ph = conv_padding(h, fh, sh, 1, oh)
    pw = conv_padding(w, fw, sw, 1, ow)
    # every window must hold at least one input element (the reference fails otherwise)
    for size, f, s, p, out in ((h, fh, sh, ph, oh), (w, fw, sw, pw, ow)):
        origin = np.arange(out) * s - p
        lo = np.maximum(0, -origin)
        hi = np.minimum(f, size - origin)
        require(op, bool(np.all(hi > lo)), "a pooling window lies entirely in the padding")
    # the reference pools raw values: input and output quantization are assumed equal (DCHECK only)
    act_min, act_max = fused_activation(op, dst)
    return (n, oh, ow, c), (fh, fw, sh, sw, ph, pw), act_min, act_max


@kernel
def _max_pool(x, out, fh, fw, sh, sw, ph, pw, act_min, act_max):
    n, h, w, c = x.shape
    oh, ow = out.shape[1], out.shape[2]
    for t in prange(n * oh):
        b = t // oh
        oy = t % oh
        y0 = oy * sh - ph
        ys = max(0, -y0)
        ye = min(fh, h - y0)
        acc = np.empty(c, np.int32)
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
    out_shape, (fh, fw, sh, sw, ph, pw), act_min, act_max = pool_geometry(op, g, shapes)
    pool = _max_pool.pick(int(np.prod(out_shape)) * fh * fw)

    def run(inputs: list, outputs: list) -> None:
        pool(inputs[0], outputs[0], fh, fw, sh, sw, ph, pw, act_min, act_max)

    return Prepared([out_shape], run)
