"""float32 CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED (BUILTIN_REF: reference_ops::Conv,
DepthwiseConv, FullyConnected on float): each output's products summed in float32 in the reference's
loop order (filter rows, columns, then input channels; FC: along the depth), the bias added after,
then the fused activation's float clamp min(max(v, lo), hi). No fused multiply-add: each product is
rounded to float32 before it is added, as the reference's compiled loop does. CONV_2D takes grouped
filters (input channels a multiple of the filter's). Filters and biases float32 (int8 filters with a
float input, the hybrid kernels, are refused). The ops' modules dispatch float32 here."""

from __future__ import annotations

import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from .common import Prepared, Shape, bound, float_activation, int_option, require, tensors, view, window


@kernel
def _conv(x, w, bias, out, geo, bounds):
    """geo = (stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left, depthwise multiplier or 0)."""
    sh, sw, dh, dw, pt, pl, dm = geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6]
    n, h, wd, c = x.shape
    oh, ow, oc = out.shape[1], out.shape[2], out.shape[3]
    kh, kw = w.shape[1], w.shape[2]
    fc = w.shape[3]
    per_group = oc // (c // fc) if dm == 0 else 1
    for t in prange(n * oh):
        b, oy = t // oh, t % oh
        y0 = oy * sh - pt
        for ox in range(ow):
            x0 = ox * sw - pl
            for o in range(oc):
                total = np.float32(0)
                for ky in range(kh):
                    iy = y0 + dh * ky
                    for kx in range(kw):
                        ix = x0 + dw * kx
                        if iy < 0 or iy >= h or ix < 0 or ix >= wd:
                            continue
                        if dm == 0:
                            base = (o // per_group) * fc
                            for ic in range(fc):
                                total += x[b, iy, ix, base + ic] * w[o, ky, kx, ic]
                        else:
                            total += x[b, iy, ix, o // dm] * w[0, ky, kx, o]
                v = total + bias[o]
                v = max(v, bounds[0])
                out[b, oy, ox, o] = min(v, bounds[1])


@kernel
def _fully_connected(x, w, bias, out, bounds):
    for r in prange(x.shape[0]):
        for u in range(w.shape[0]):
            total = np.float32(0)
            for d in range(w.shape[1]):
                total += x[r, d] * w[u, d]
            v = total + bias[u]
            v = max(v, bounds[0])
            out[r, u] = min(v, bounds[1])


def _operands(op: Op, g: Graph, shapes: list, units: int):
    ins, outs = tensors(op, g)
    for t in [*ins, outs[0]]:
        if t is not None:
            require(op, t.dtype == "float32", f"{t.describe()}: float32 {op.type} needs float32 tensors")
    has_bias = len(ins) > 2 and ins[2] is not None
    if has_bias:
        require(op, tuple(shapes[2]) == (units,), f"{ins[2].describe()}: bias must have {units} values")
    return has_bias


def _with_bias(has_bias: bool, units: int):
    zeros = np.zeros(units, np.float32)  # the reference's bias_value 0.0f when there is no bias
    return (lambda inputs: inputs[2]) if has_bias else (lambda inputs: zeros)


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    bounds = float_activation(op)
    if op.type == "FULLY_CONNECTED":
        return _prepare_fc(op, g, shapes, bounds)
    require(op, len(shapes[0]) == 4 and len(shapes[1]) == 4, "input and filter must be 4-D")
    n, h, w, c = shapes[0]
    if op.type == "CONV_2D":
        oc, kh, kw, fc = shapes[1]
        require(
            op,
            fc > 0 and c % fc == 0 and oc % (c // fc) == 0,
            f"filter depth {fc} does not divide {c} channels",
        )
        dm = 0
    else:
        one, kh, kw, oc = shapes[1]
        require(op, one == 1, "filter must have shape [1, kh, kw, channels]")
        dm = int_option(op, "depth_multiplier", 1, lo=0) or oc // max(c, 1)
        require(op, c * dm == oc, f"{c} channels x depth multiplier {dm} != {oc} filter channels")
    win = window(op, h, w, kh, kw)
    has_bias = _operands(op, g, shapes, oc)
    bias_of = _with_bias(has_bias, oc)
    geo = np.array([win.sh, win.sw, win.dh, win.dw, win.top, win.left, dm], np.int64)
    out_shape = (n, win.oh, win.ow, oc)
    conv = _conv.pick(int(np.prod(out_shape)) * kh * kw * (c if dm == 0 else 1))

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(conv, (inputs[0], inputs[1], bias_of(inputs), outputs[0], geo, bounds))]

    return bound([out_shape], bind)


def _prepare_fc(op: Op, g: Graph, shapes: list, bounds: np.ndarray) -> Prepared:
    require(op, op.options.get("weights_format", 0) == 0, "shuffled weights format not supported")
    require(op, len(shapes[1]) == 2, "weights must be 2-D")
    units, depth = shapes[1]
    total = int(np.prod(shapes[0], dtype=np.int64))
    require(op, depth > 0 and total % depth == 0, f"input of {total} elements is not a multiple of {depth}")
    rows = total // depth
    has_bias = _operands(op, g, shapes, units)
    bias_of = _with_bias(has_bias, units)
    if op.options.get("keep_num_dims", False):
        require(op, shapes[0][-1] == depth, f"keep_num_dims needs the last input dimension to be {depth}")
        out_shape: Shape = (*shapes[0][:-1], units)
    else:
        out_shape = (rows, units)
    fc = _fully_connected.pick(rows * units * depth)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        x, out = view(inputs[0], (rows, depth)), view(outputs[0], (rows, units))
        return [(fc, (x, inputs[1], bias_of(inputs), out, bounds))]

    return bound([out_shape], bind)
