"""TANH on uint8/int8 (kernels/activations.cc TanhPrepare/TanhEval<kReference>).

For 8-bit types the reference kernel is a 256-entry table filled in Prepare by LUTPopulate: float32
tanhf of the dequantized input, rounded half away from zero onto the output scale and zero point,
clamped. The output quantization is not checked by the reference (TFLite's converter uses 1/128).
TFLite Micro (numerics="tflm") computes gemmlowp's fixed-point tanh instead (profiles/tflm.py).
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


def _tanh(x: np.float32) -> np.float32:
    return np.float32(libm().tanhf(float(x)))


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    if g.tensors[op.inputs[0]].dtype == "float32":
        return activations_float.prepare(op, g, shapes, values)
    if g.tensors[op.inputs[0]].dtype == "int16":
        return prepare_sigmoid_like(op, g, shapes)
    inp, out, (s_in, zp_in), (s_out, zp_out) = unary_8bit(op, g)
    # |tanh| <= 1: a scale this small would overflow the reference's float -> int32 conversion
    require(op, s_out >= 2.0**-30, f"{out.describe()}: output scale too small")
    if profile_of(g) == "tflm":  # TFLite Micro: gemmlowp fixed point, output read as 1/128, zero point 0
        return Prepared(
            [tuple(shapes[0])],
            table_runner(tflm.activation_table("TANH", s_in, zp_in), int(np.prod(shapes[0]))),
        )
    table = lut_populate(_tanh, s_in, zp_in, s_out, zp_out, inp.dtype)
    return Prepared([tuple(shapes[0])], table_runner(table, int(np.prod(shapes[0]))))
