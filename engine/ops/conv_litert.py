"""numerics="litert" for CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: which requantization rule LiteRT's
default interpreter (x86) applies to an op, chosen once at prepare (kernels/requantize.py runs each):

- the XNNPACK delegate takes the op (profiles/litert.py): "fp32", float32(acc) * scale[c], clamped,
  rounded half to even, with scale = float32 s_in * s_w[c] / s_out (in that order: XNNPACK's
  convolution-nhwc.c / fully-connected-nc.c);
- it does not: LiteRT's optimized builtin kernels. CONV_2D and FULLY_CONNECTED multiply through ruy,
  whose x86 kernels round the right shift half up ("ruy"); DEPTHWISE_CONV_2D and TRANSPOSE_CONV keep the
  reference's MultiplyByQuantizedMultiplier ("reference"). The multipliers are the reference's (Prepare is
  shared).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op, Tensor
from ..profiles import litert, profile_of


def rule(op: Op, g: Graph) -> str:
    """The requantization rule of a convolution-family op under the graph's profile."""
    if profile_of(g) != "litert":
        return "reference"
    if litert.delegated(op, g):
        return "fp32"
    return "ruy" if op.type in ("CONV_2D", "FULLY_CONNECTED") else "reference"


def fp32_scale(inp: Tensor, filt: Tensor, out: Tensor, channels: int) -> np.ndarray:
    """XNNPACK's per-channel float32 scales (a per-tensor filter's one scale repeated)."""
    s = litert.requantization_scale(inp.scale[0], filt.scale, out.scale[0])
    return np.ascontiguousarray(np.broadcast_to(s, (channels,)), np.float32)
