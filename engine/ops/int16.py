"""int16 activations (TensorFlow's 16x8 mode) for one-input ops: every op whose int16 output depends
on one int16 input value is a table of 65536 entries, computed at prepare with the reference's formula
and gathered at run.

LOGISTIC / TANH (kernels/activations.cc SigmoidPrepare / TanhPrepare, reference_integer_ops::Logistic /
Tanh): the input is rescaled to 1/(3*4096) per step (x * multiplier + round) >> left_shift, then
sigmoid(|x|) is interpolated linearly in a 256-entry table of sigmoid(i/24) in 0.16 fixed point, with
9 (LOGISTIC) or 8 (TANH, tanh(x) = 2 sigmoid(2x) - 1) fractional bits, and the sign folded back.
The multiplier: a power-of-two input scale 2^-12 or 2^-11 gives 3 << left_shift; any other scale
doubles s_in * 4096 * 3 (in double) until it exceeds 32767/2, truncated. Zero points must be 0 and the
output scale 2^-15.
"""

from __future__ import annotations

import math

import numpy as np

from ..graph import Graph, Op
from ..kernels.int16 import lookup16
from ..kernels.lookup import flat, table_runner
from ..numerics.gemmlowp import byte_values
from .common import Prepared, Shape, per_tensor, require, require_types, runner, tensors

# sigmoid(i / 24) in 0.16 fixed point (common.h sigmoid_table_uint16; hand-tuned values, not a formula)
# fmt: off
SIGMOID_TABLE = np.array(
    [
        32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432,
        42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475,
        49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485,
        55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519,
        59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036,
        62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
        63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308, 64357, 64405,
        64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
        64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179,
        65194, 65208, 65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337,
        65345, 65352, 65360, 65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425,
        65429, 65433, 65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
        65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
        65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516, 65517,
        65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524, 65525, 65525,
        65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
        65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533,
        65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
        65534, 65534, 65534, 65535,
    ],
    np.int64,
)
# fmt: on

INT16_VALUES = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64)  # index = raw bits


def table16_runner(table: np.ndarray, size: int):
    """run(inputs, outputs, scratch): outputs[0] = table[raw 16 bits of inputs[0]], elementwise."""
    table = np.ascontiguousarray(table)
    lookup = lookup16.pick(size)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(lookup, (flat(inputs[0], np.uint16), flat(outputs[0]), table))]

    return runner(bind)


def checked_log2(x: float) -> tuple[bool, int]:
    """CheckedLog2 (float32): (x is a power of two within 1e-3 in log2, the rounded log2)."""
    f32 = np.float32
    log2 = f32(math.log(f32(x))) * (f32(1.0) / f32(math.log(f32(2.0))))
    rounded = f32(math.floor(abs(float(log2)) + 0.5) * (1 if log2 >= 0 else -1))
    return bool(abs(log2 - rounded) < f32(1e-3)), int(rounded)


def sigmoid_input_rescale(s_in: float) -> tuple[int, int]:
    """(input multiplier, left shift) of SigmoidPrepare / TanhPrepare for int16, POT case resolved."""
    pot, log2 = checked_log2(s_in)
    left_shift = (15 - 3) + log2
    if pot and left_shift in (0, 1):
        return 3 << left_shift, 0
    multiplier = float(np.float32(s_in)) * 4096.0 * 3.0
    left_shift = 0
    while multiplier <= 32767.0 / 2.0 and left_shift <= 30:
        left_shift += 1
        multiplier *= 2.0
    return int(multiplier), left_shift


def _rescaled(multiplier: int, left_shift: int) -> np.ndarray:
    rnd = (1 << (left_shift - 1)) if left_shift > 0 else 0
    return ((INT16_VALUES * multiplier + rnd) & 0xFFFFFFFF).astype(np.uint32).view(np.int32).astype(
        np.int64
    ) >> left_shift


def logistic16_table(multiplier: int, left_shift: int) -> np.ndarray:
    x = _rescaled(multiplier, left_shift)
    a = np.abs(x)
    uh = a >> 9
    i = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE[i], SIGMOID_TABLE[i + 1]
    r = np.where(uh >= 255, 0x7FFF << 10, (ua << 9) + (a & 0x1FF) * (ub - ua))
    r = np.where(x >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1) & 0xFFFFFFFF
    return (r >> 10).astype(np.uint16).view(np.int16)


def tanh16_table(multiplier: int, left_shift: int) -> np.ndarray:
    x = _rescaled(multiplier, left_shift)
    a = np.abs(x)
    uh = a >> 8
    i = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE[i], SIGMOID_TABLE[i + 1]
    r = np.where(uh >= 255, 0xFFFF << 8, (ua << 8) + (a & 0xFF) * (ub - ua))
    r = np.where(x >= 0, r - (1 << 23) + (1 << 7), -r + (1 << 23) + (1 << 7) - 1)
    return (r >> 8).astype(np.int64).astype(np.uint16).view(np.int16)


def unary16(op: Op, g: Graph, out_types=("int16",)):
    """The int16 input and output of a one-in one-out op, checked, with their (scale, zero point)."""
    ins, outs = tensors(op, g)
    require(op, len(ins) == 1 and ins[0] is not None and len(outs) == 1, "takes 1 input and 1 output")
    inp, out = ins[0], outs[0]
    require_types(op, inp, ("int16",))
    require_types(op, out, out_types)
    return inp, out, per_tensor(op, inp), per_tensor(op, out) if out.quantized else (1.0, 0)


def prepare_sigmoid_like(op: Op, g: Graph, shapes: list[Shape | None]) -> Prepared:
    """LOGISTIC and TANH on int16."""
    _, out, (s_in, zp_in), (s_out, zp_out) = unary16(op, g)
    require(op, zp_in == 0 and zp_out == 0, "int16 zero points must be 0")
    pot, log2 = checked_log2(s_out)
    require(op, pot and log2 == -15, f"{out.describe()}: output scale must be 2^-15")
    m, shift = sigmoid_input_rescale(s_in)
    table = (logistic16_table if op.type == "LOGISTIC" else tanh16_table)(m, shift)
    return Prepared([tuple(shapes[0])], table16_runner(table, int(np.prod(shapes[0]))))


def values_of(dtype: str) -> np.ndarray:
    """The integer each raw pattern of an 8- or 16-bit tensor stands for (index = raw bits)."""
    return INT16_VALUES if dtype == "int16" else byte_values(dtype)


def lookup_runner(table: np.ndarray, dtype: str, size: int):
    """The table gather for an input of this type (256 or 65536 entries)."""
    return table16_runner(table, size) if dtype == "int16" else table_runner(table, size)


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    """LOGISTIC and TANH on int16 (the other one-input int16 ops use the helpers above)."""
    return prepare_sigmoid_like(op, g, shapes)
