"""LOGISTIC on uint8/int8 (kernels/activations.cc SigmoidPrepare/SigmoidEval<kReference>).

For 8-bit types the reference kernel is not fixed point: Prepare fills a 256-entry table with
LUTPopulate (float32: 1 / (1 + expf(-x)) of the dequantized input, rounded half away from zero onto
the output scale) and Eval looks every element up. The output scale must be exactly 1/256; the output
zero point is not checked and takes part in the table. TFLite Micro (numerics="tflm") computes
gemmlowp's fixed-point logistic instead (profiles/tflm.py).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..kernels.lookup import table_runner
from ..numerics.gemmlowp import libm, lut_populate
from ..profiles import profile_of, tflm
from . import activations_float
from .common import Prepared, Shape, require, unary_8bit
from .int16 import prepare_sigmoid_like


def _sigmoid(x: np.float32) -> np.float32:
    one = np.float32(1.0)
    return one / (one + np.float32(libm().expf(float(-x))))


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        return activations_float.prepare(op, g, shapes, values)
    if g.tensors[op.inputs[0]].dtype == "int16":
        return prepare_sigmoid_like(op, g, shapes)
    inp, out, (s_in, zp_in), (s_out, zp_out) = unary_8bit(op, g)
    require(op, np.float32(s_out) == np.float32(1.0 / 256), f"{out.describe()}: output scale must be 1/256")
    if profile_of(g) == "tflm":  # TFLite Micro: gemmlowp fixed point (its zero point -128: profiles/tflm.py)
        return Prepared(
            [tuple(shapes[0])],
            table_runner(tflm.activation_table("LOGISTIC", s_in, zp_in), int(np.prod(shapes[0]))),
        )
    table = lut_populate(_sigmoid, s_in, zp_in, s_out, zp_out, inp.dtype)
    return Prepared([tuple(shapes[0])], table_runner(table, int(np.prod(shapes[0]))))
