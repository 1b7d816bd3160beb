"""PAD and PADV2 (kernels/pad.cc): copy the input into a frame of the pad value.

The pad value is PADV2's constant, else 0, else for an integer tensor that takes the quantized rule
the output's zero point (0 where the output has no quantization); there a constant must share the
output's scale and zero point. Which tensors take that rule: LiteRT (pad.cc Eval) uint8 always, int8
and int16 where the *input* is quantized; TFLite Micro (pad.cc PadEval) int8 always, never int16.
Data bytes are copied as is.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..kernels.strided_copy import BITS, bits
from ..profiles import profile_of
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
    if profile_of(g) == "tflm":
        quantized_rule = src.dtype == "int8"
    else:
        quantized_rule = src.dtype == "uint8" or (src.dtype in ("int8", "int16") and src.quantized)
    if const_t is not None:
        require(
            op,
            values[2] is not None and np.asarray(values[2]).size == 1,
            "the pad value must be a constant scalar",
        )
        require(op, const_t.dtype == src.dtype, f"{const_t.describe()}: type differs from the input's")
        # both compare the legacy (scale, zero point) of both, (0, 0) where a tensor has no quantization:
        # an unquantized output beside a quantized pad value is refused too
        if quantized_rule and _legacy_params(const_t) != _legacy_params(dst):
            raise fail(op, f"{const_t.describe()} must share the output's scale and zero point")
        pad_value = np.asarray(values[2]).reshape(-1)[0]
    elif quantized_rule:
        zp = _legacy_params(dst)[1]
        info = np.iinfo(dst.np_dtype)
        require(op, info.min <= zp <= info.max, f"output zero point {zp} out of the {dst.dtype} range")
        pad_value = zp
    else:
        pad_value = 0
    out_shape = tuple(int(n + a + b) for n, (a, b) in zip(in_shape, pads.tolist()))
    fill = np.asarray(pad_value).astype(dst.np_dtype).reshape(1).view(BITS[dst.np_dtype.itemsize])
    frame = _frame(in_shape, pads)
    size = int(np.prod(out_shape))
    pad = _pad_rows.pick(size // 2)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(pad, (bits(inputs[0]), bits(outputs[0]), fill, *frame))] if size else []

    return bound([out_shape], bind)


def _frame(in_shape: tuple, pads: np.ndarray) -> tuple:
    """The padding as rows: the axes from the last padded one on merge into one row of `row_in` input
    elements, `before` fill elements ahead of them and `row_out` in all; the axes before it (up to five)
    are walked with their input extents, output extents and paddings before, padded in front to 5."""
    rank = len(in_shape)
    padded = [d for d in range(rank) if pads[d].any()]
    d = padded[-1] if padded else 0
    inner = int(np.prod(in_shape[d + 1 :], dtype=np.int64))
    row_in = int(in_shape[d]) * inner
    before = int(pads[d][0]) * inner
    row_out = row_in + before + int(pads[d][1]) * inner
    lead = MAX_RANK - 1 - d
    ext_in = np.array([1] * lead + [int(n) for n in in_shape[:d]], np.int64)
    pad_before = np.array([0] * lead + [int(pads[a][0]) for a in range(d)], np.int64)
    ext_out = ext_in + np.array([0] * lead + [int(pads[a].sum()) for a in range(d)], np.int64)
    return ext_in, ext_out, pad_before, row_in, before, row_out


CHUNK = 1 << 14  # output elements a parallel step takes, about


@kernel
def _pad_rows(x, out, fill, ext_in, ext_out, pad_before, row_in, before, row_out):
    """out = x framed by fill[0] (see _frame): each output row either all fill (an outer index in the
    padding) or fill, an input row, fill. Row blocks of about CHUNK elements run in parallel, each walked
    with an odometer over the outer axes; indices are unsigned, so the copies vectorize."""
    rows = ext_out[0] * ext_out[1] * ext_out[2] * ext_out[3] * ext_out[4]
    step = max(1, CHUNK // max(row_out, 1))
    v = fill[0]
    for c in prange((rows + step - 1) // step):
        r0, r1 = c * step, min(rows, (c + 1) * step)
        idx = np.empty(5, np.int64)
        rest = r0
        for a in range(4, -1, -1):
            idx[a] = rest % ext_out[a]
            rest //= ext_out[a]
        for r in range(r0, r1):
            src = np.int64(0)
            inside = True
            for a in range(5):
                i = idx[a] - pad_before[a]
                inside = inside and 0 <= i < ext_in[a]
                src = src * ext_in[a] + i
            o = np.uint64(r * row_out)
            if inside:
                p = np.uint64(src * row_in)
                for k in range(before):
                    out[o + np.uint64(k)] = v
                o += np.uint64(before)
                for k in range(row_in):
                    out[o + np.uint64(k)] = x[p + np.uint64(k)]
                o += np.uint64(row_in)
                for k in range(row_out - before - row_in):
                    out[o + np.uint64(k)] = v
            else:
                for k in range(row_out):
                    out[o + np.uint64(k)] = v
            a = 4
            idx[a] += 1
            while a > 0 and idx[a] == ext_out[a]:
                idx[a] = 0
                a -= 1
                idx[a] += 1


def _legacy_params(t) -> tuple[float, int]:
    """A tensor's per-tensor (scale, zero point) as the reference reads them: (0, 0) when unquantized."""
    if not t.quantized:
        return 0.0, 0
    return float(np.float32(t.scale[0])), int(t.zero_point[0])
