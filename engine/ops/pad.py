"""PAD and PADV2 (kernels/pad.cc): copy the input into a frame of the pad value.

The pad value of a quantized tensor is the output's zero point (PAD) or PADV2's constant, which
the reference requires to share the output's scale and zero point. Data bytes are copied as is.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, bound, fail, require, tensors

MAX_RANK = 6
TYPES = ("uint8", "int8", "int16", "int32", "int64", "float32", "bool")
PADDING_TYPES = ("int8", "int16", "int32", "int64", "bool")  # the reference's; it refuses float32, uint8


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    src, pads_t, dst = ins[0], ins[1], outs[0]
    const_t = ins[2] if len(ins) == 3 else None
    require(op, src.dtype in TYPES, f"{src.describe()}: type {src.dtype} not supported")
    require(op, dst.dtype == src.dtype, f"output type {dst.dtype} differs from input type {src.dtype}")
    require(op, values[1] is not None, f"{pads_t.describe()}: paddings must be known before running")
    require(
        op, pads_t.dtype in PADDING_TYPES, f"{pads_t.describe()}: paddings of type {pads_t.dtype} not supported"
    )
    in_shape = tuple(shapes[0])
    rank = len(in_shape)
    require(op, 1 <= rank <= MAX_RANK, f"rank {rank} not supported (1 to {MAX_RANK})")
    pads = np.asarray(values[1]).astype(np.int64)
    require(op, pads.shape == (rank, 2), f"paddings shape {list(pads.shape)} must be [{rank}, 2]")
    require(op, bool(np.all(pads >= 0)), f"negative paddings {pads.tolist()}")
    quantized = src.dtype in ("uint8", "int8", "int16") and dst.quantized
    if const_t is not None:
        require(
            op,
            values[2] is not None and np.asarray(values[2]).size == 1,
            "the pad value must be a constant scalar",
        )
        require(op, const_t.dtype == src.dtype, f"{const_t.describe()}: type differs from the input's")
        # the reference compares the legacy (scale, zero point) of both, (0, 0) where a tensor has no
        # quantization: an unquantized output beside a quantized pad value is refused too
        if src.dtype in ("uint8", "int8", "int16") and _legacy_params(const_t) != _legacy_params(dst):
            raise fail(op, f"{const_t.describe()} must share the output's scale and zero point")
        pad_value = np.asarray(values[2]).reshape(-1)[0]
    elif quantized:
        zp = int(dst.zero_point[0])
        info = np.iinfo(dst.np_dtype)
        require(op, info.min <= zp <= info.max, f"output zero point {zp} out of the {dst.dtype} range")
        pad_value = zp
    else:
        pad_value = 0
    out_shape = tuple(int(n + a + b) for n, (a, b) in zip(in_shape, pads.tolist()))
    inner = tuple(slice(int(a), int(a) + n) for n, (a, _) in zip(in_shape, pads.tolist()))
    fill = np.asarray(pad_value).astype(dst.np_dtype)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        out = outputs[0]
        return [(np.copyto, (out, fill)), (np.copyto, (out[inner], inputs[0]))]

    return bound([out_shape], bind)


def _legacy_params(t) -> tuple[float, int]:
    """A tensor's per-tensor (scale, zero point) as the reference reads them: (0, 0) when unquantized."""
    if not t.quantized:
        return 0.0, 0
    return float(np.float32(t.scale[0])), int(t.zero_point[0])
