"""DEQUANTIZE int8/uint8/int16 -> float32 (kernels/dequantize.cc, reference_ops::Dequantize).

out = (float)((double) scale * (q - zero_point)): the product of a float32 scale and a 9-bit integer
is exact in double, so this is the float32 rounding of the exact product; a table of 256 floats.

numerics="litert", an 8-bit DEQUANTIZE the XNNPACK delegate leaves (an input that says
quantized_dimension != 0): LiteRT's optimized kernel, NEON through NEON_2_SSE on x86, takes blocks of 8
as float(q) * scale + float(-zero_point * scale) (two float32 roundings) and the tail of the flat
array as the reference (measured: 0 of 6,018 values differ, the reference's arithmetic 3,362). int16
comes out equal either way (zero point 0: one rounding of an exact product).
"""

from __future__ import annotations

import numpy as np

from ..graph import Graph, Op
from ..profiles import litert, profile_of
from ..profiles.litert_builtin import unary_blocks_runner
from .common import Prepared, Shape, per_tensor, require_types, tensors
from .int16 import lookup_runner, values_of


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    (inp,), (out,) = tensors(op, g)
    require_types(op, inp, ("uint8", "int8", "int16"))
    require_types(op, out, ("float32",))
    scale, zero_point = per_tensor(op, inp)
    q = values_of(inp.dtype) - zero_point
    table = (np.float64(np.float32(scale)) * q.astype(np.float64)).astype(np.float32)
    size = int(np.prod(shapes[0]))
    if inp.dtype != "int16" and profile_of(g) == "litert" and not litert.delegated(op, g):
        s = np.float32(scale)
        neon = values_of(inp.dtype).astype(np.float32) * s + np.float32(-zero_point * np.float64(s))
        return Prepared([tuple(shapes[0])], unary_blocks_runner(neon, table, size, block=8))
    return Prepared([tuple(shapes[0])], lookup_runner(table, inp.dtype, size))
