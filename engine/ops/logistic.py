"""LOGISTIC on uint8/int8 (kernels/activations.cc SigmoidPrepare/SigmoidEval<kReference>).

For 8-bit types the reference kernel is not fixed point: Prepare fills a 256-entry table with
LUTPopulate (float32: 1 / (1 + expf(-x)) of the dequantized input, rounded half away from zero onto
the output scale) and Eval looks every element up. The output scale must be exactly 1/256; the output
zero point is not checked and takes part in the table.
"""

from __future__ import annotations

import numpy as np

from ..gemmlowp import libm, lut_populate, table_runner
from ..graph import Graph, Op
from .common import Prepared, Shape, per_tensor, require, require_types, tensors


def _sigmoid(x: np.float32) -> np.float32:
    one = np.float32(1.0)
    return one / (one + np.float32(libm().expf(float(-x))))


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    require(op, len(ins) == 1 and ins[0] is not None and len(outs) == 1, "takes 1 input and 1 output")
    inp, out = ins[0], outs[0]
    require_types(op, inp, ("uint8", "int8"))
    require(op, out.dtype == inp.dtype, f"output type {out.dtype} must be the input type {inp.dtype}")
    require_types(op, out, (inp.dtype,))
    s_in, zp_in = per_tensor(op, inp)
    s_out, zp_out = per_tensor(op, out)
    require(op, np.float32(s_out) == np.float32(1.0 / 256), f"{out.describe()}: output scale must be 1/256")
    table = lut_populate(_sigmoid, s_in, zp_in, s_out, zp_out, inp.dtype)
    return Prepared([tuple(shapes[0])], table_runner(table))
