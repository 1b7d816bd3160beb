"""DEQUANTIZE int8/uint8/int16 -> float32 (kernels/dequantize.cc, reference_ops::Dequantize).

out = (float)((double) scale * (q - zero_point)): the product of a float32 scale and a 9-bit integer
is exact in double, so this is the float32 rounding of the exact product; a table of 256 floats.
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from .common import Prepared, Shape, per_tensor, require_types, tensors
from .int16 import lookup_runner, values_of


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    (inp,), (out,) = tensors(op, g)
    require_types(op, inp, ("uint8", "int8", "int16"))
    require_types(op, out, ("float32",))
    scale, zero_point = per_tensor(op, inp)
    q = values_of(inp.dtype) - zero_point
    table = (np.float64(np.float32(scale)) * q.astype(np.float64)).astype(np.float32)
    return Prepared([tuple(shapes[0])], lookup_runner(table, inp.dtype, int(np.prod(shapes[0]))))
