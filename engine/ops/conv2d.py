"""CONV_2D for uint8 (per-tensor) and int8 (per-channel) models: reference_ops::Conv semantics."""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from . import conv_kernels as K
from .common import (
    Prepared,
    fused_activation,
    per_tensor,
    require,
    require_types,
    tensors,
    window,
)
from .gemm import OCB, pack_weights, padded_channels
from .quant_params import bias_vector, conv_multipliers, filter_zero_points


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    (inp, filt, *rest), (out,) = tensors(op, g)
    bias = rest[0] if rest else None
    require_types(op, inp, ("uint8", "int8"))
    require_types(op, filt, (inp.dtype,))
    require_types(op, out, (inp.dtype,))
    require(op, values[1] is not None, f"{filt.describe()}: filter must be a constant")
    require(op, len(shapes[0]) == 4 and len(shapes[1]) == 4, "input and filter must be 4-D")
    n, h, w, c = shapes[0]
    oc, kh, kw, fc = shapes[1]
    require(op, c == fc, f"input has {c} channels, filter expects {fc} (grouped conv not supported)")
    if filt.scale.size > 1:
        require(op, filt.quant_axis == 0, f"{filt.describe()}: per-channel axis must be 0")
    _, in_zp = per_tensor(op, inp)
    _, out_zp = per_tensor(op, out)
    win = window(op, h, w, kh, kw)
    oh, ow = win.oh, win.ow

    wzp = filter_zero_points(op, filt, oc)
    weights = pack_weights(
        (values[1].astype(np.int16) - wzp[:, None, None, None].astype(np.int16)).reshape(oc, -1)
    )
    blocks = padded_channels(oc) // OCB
    bias_q = bias_vector(op, bias, values[2] if bias is not None else None, oc)
    mult, shift = conv_multipliers(op, inp, filt, out, oc)
    lo, hi = fused_activation(op, out)
    pad_input = K.pad_input.pick(n * h * w * c)
    in_zp16 = np.int16(in_zp)

    conv2d = K.conv2d.pick((n * oh * ow * oc * kh * kw * c) // 16)  # MACs are cheaper than elementwise steps

    def run(ins, outs, scratch):
        padded = scratch[0]
        pad_input(ins[0], in_zp16, win.top, win.left, 1, padded)
        conv2d(
            padded,
            weights,
            blocks,
            bias_q,
            mult,
            shift,
            out_zp,
            lo,
            hi,
            kh,
            kw,
            win.sh,
            win.sw,
            win.dh,
            win.dw,
            outs[0],
        )

    return Prepared([(n, oh, ow, oc)], run, scratch=[((n, win.hp, win.wp, c), np.int16)])
