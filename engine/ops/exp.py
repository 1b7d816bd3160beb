"""EXP (kernels/exp.cc) on float32, int8 and int16.

float32: std::exp on each float (glibc's expf; Numba's float32 math.exp calls the same libm function).
8-bit: the reference fills a 256-entry table in Prepare (LUTPopulate with expf of the dequantized
input, rounded onto the output scale) and looks every element up.
int16 (zero points 0): LUTPopulate<int16_t>'s 513 samples of expf, interpolated by LUTLookup; the
engine expands them to a table of all 65536 inputs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..graph import Graph, Op
from ..kernels.lookup import table_runner
from ..numerics.gemmlowp import libm, lut_lookup16_all, lut_populate, lut_populate16
from ..profiles import litert_xnn
from .common import Prepared, Shape, require, tensors, unary_8bit
from .int16 import table16_runner


@njit(cache=True)
def exp_float(x, out):
    for i in range(x.size):
        out[i] = math.exp(x[i])


def _expf(x: np.float32) -> np.float32:
    return np.float32(libm().expf(float(x)))


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    (src,), (dst,) = tensors(op, g)
    shape = tuple(shapes[0])
    if src.dtype == "float32":
        require(op, dst.dtype == "float32", f"{dst.describe()}: output must be float32")
        litert_xnn.require_reproduced(op, g)

        def run(inputs: list, outputs: list, scratch: list) -> None:
            exp_float(inputs[0].reshape(-1), outputs[0].reshape(-1))

        return Prepared([shape], run)
    inp, _, (s_in, zp_in), (s_out, zp_out) = unary_8bit(op, g, ("int8", "int16"))
    require(op, s_in > 0 and s_out > 0, "scales must be positive")
    if inp.dtype == "int16":
        require(op, zp_in == 0 and zp_out == 0, "int16 zero points must be 0")
        table = lut_lookup16_all(lut_populate16(_expf, s_in, zp_in, s_out, zp_out))
        return Prepared([shape], table16_runner(table, int(np.prod(shape))))
    table = lut_populate(_expf, s_in, zp_in, s_out, zp_out, inp.dtype)
    return Prepared([shape], table_runner(table, int(np.prod(shape))))
