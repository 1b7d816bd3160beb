"""numerics="tflm": what TFLite Micro refuses to run, and its arithmetic where it differs from the
reference kernels (tflite-micro, tensorflow/lite/micro/kernels/*.cc).

Refusals are checked per op at load, so that the profile refuses what the device would refuse instead
of computing something the device never would. Where the kernels differ (README, "Numerics profiles"):
FULLY_CONNECTED (fixed point; fully_connected.py), MUL (multiplier in double; mul.py), SUB (the rescaled
inputs subtracted, not input 2's multiplier negated; here), LOGISTIC and TANH (gemmlowp fixed point; here).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..graph import Graph, Op
from ..numerics.fixedpoint import (
    INT32_MAX,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    quantize_multiplier_smaller_than_one_exp,
    round_half_away,
    rounding_divide_by_pot,
    wrap_int32,
)
from ..numerics.fixedpoint import multiply_by_quantized_multiplier_smaller_than_one_exp as mul_lt1
from ..numerics.fixedpoint import saturating_rounding_doubling_high_mul as srdhm
from ..numerics.gemmlowp import (
    byte_values,
    exp_on_negative_values,
    one_over_one_plus_x_for_x_in_0_1,
    saturating_shift_left,
)

# ops whose TFLM kernels take uint8 data: QUANTIZE and DEQUANTIZE (quantize_common.cc,
# dequantize_common.cc), and those that copy bytes whatever the type (reshape.cc, squeeze.cc, shape.cc)
UINT8_OPS = {"QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE", "SHAPE"}
# op -> the input types its TFLM kernel's Eval switch takes (others: "Type ... not currently supported")
INPUT_TYPES = {
    "SUM": ("float32", "int8", "int16"),
    "EXP": ("float32",),  # exp.cc
    "SQRT": ("float32",),  # elementwise.cc IsNumericSupportedType
    # the build measured also runs int16, with the int8 kernel's integer formula but not bit for bit with
    # it (1 of 32768 inputs differs at s_in = s_out = 0.001; its source of August 2026 refuses int16)
    "RSQRT": ("float32", "int8"),
    "DIV": ("float32", "int32", "int8"),  # div.cc
    "MEAN": ("float32", "int8", "int16"),  # reduce_common.cc EvalMeanHelper
    "PAD": ("float32", "int8", "int16", "int32"),  # pad.cc PadEval
    "GATHER": ("float32", "int8"),  # gather.cc GatherPrepare (int32 positions only)
    "RESIZE_BILINEAR": ("float32", "int8"),  # resize_bilinear.cc Eval
    "PADV2": ("float32", "int8", "int16", "int32"),
}
PAD_MAX_RANK = 5  # PadKernelMaxDimensionCount of its reference pad.h
# QUANTIZE: the (input, output) types EvalQuantizeReference converts (quantize_common.cc)
QUANTIZE_PAIRS = {
    ("float32", "int8"), ("float32", "int16"), ("int32", "int8"), ("int32", "int16"),
    ("int16", "int8"), ("int16", "int16"), ("int16", "int32"),
    ("int8", "int8"), ("int8", "uint8"), ("int8", "int16"), ("int8", "int32"), ("uint8", "int8"),
}  # fmt: skip


def refusal(op: Op, g: Graph) -> str | None:
    """Why TFLite Micro cannot run op (its message, where it prints one), or None."""
    data = [g.tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0 and not g.tensors[i].is_const]
    if (
        op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
        and g.tensors[op.inputs[0]].dtype == "uint8"
    ):
        if op.type == "CONV_2D":
            return "uint8 convolution ('Hybrid models are not supported on TFLite Micro.', conv_common.cc)"
        return f"uint8 {op.type} ('Input type UINT8 (3) not supported.')"
    if op.type == "CAST" and g.tensors[op.inputs[0]].dtype == "uint8":
        return "CAST from UINT8 (its kernel casts int8, int16, int32, float32 and bool inputs only)"
    types = INPUT_TYPES.get(op.type)
    if types and g.tensors[op.inputs[0]].dtype not in types:
        return f"{g.tensors[op.inputs[0]].dtype} {op.type} (its kernel takes {', '.join(types)})"
    if op.type == "DEPTHWISE_CONV_2D" and op.options.get("depth_multiplier", 1) == 0:
        return "depth_multiplier 0 (its kernel loops over the option as written: no output is computed)"
    if op.type == "QUANTIZE":
        pair = (g.tensors[op.inputs[0]].dtype, g.tensors[op.outputs[0]].dtype)
        if pair not in QUANTIZE_PAIRS:
            return f"QUANTIZE from {pair[0]} to {pair[1]} (quantize_common.cc converts no such pair)"
    if op.type in ("ARG_MAX", "ARG_MIN"):
        types = (g.tensors[op.inputs[0]].dtype, g.tensors[op.inputs[1]].dtype, g.tensors[op.outputs[0]].dtype)
        if types[0] not in ("float32", "int8") or types[1:] != ("int32", "int32"):
            return (
                f"{op.type} of {types[0]} along an {types[1]} axis into {types[2]}"
                " (arg_min_max.cc: float32 or int8, an int32 axis, an int32 output)"
            )
    if op.type == "GATHER" and g.tensors[op.inputs[1]].dtype != "int32":
        return f"{g.tensors[op.inputs[1]].dtype} GATHER positions (gather.cc takes int32 positions only)"
    if op.type in ("PAD", "PADV2"):
        if len(g.tensors[op.inputs[0]].shape) > PAD_MAX_RANK:
            return f"PAD of rank above {PAD_MAX_RANK} (pad_common.cc: NumDimensions(input) <= {PAD_MAX_RANK})"
        if g.tensors[op.inputs[1]].dtype != "int32":
            return f"{g.tensors[op.inputs[1]].dtype} paddings (pad_common.cc reads the paddings as int32)"
    if op.type == "L2_NORMALIZATION" and len(g.tensors[op.inputs[0]].shape) > 4:
        return "L2_NORMALIZATION of rank above 4 (l2norm.cc: NumDimensions(input) <= 4)"
    if op.type not in UINT8_OPS and any(t.dtype == "uint8" for t in data):
        t = next(t for t in data if t.dtype == "uint8")
        return f"{t.describe()}: its {op.type} kernel takes no uint8 tensors (TFLite Micro runs int8, int16, float32)"
    if op.type == "CONCATENATION" and g.tensors[op.outputs[0]].dtype == "int8":
        out = g.tensors[op.outputs[0]]
        for t in (g.tensors[i] for i in op.inputs):
            if (
                t.quantized
                and out.quantized
                and (t.scale[0] != out.scale[0] or t.zero_point[0] != out.zero_point[0])
            ):
                return (
                    f"{t.describe()}: int8 CONCATENATION inputs must share the output's scale and zero point"
                )
    if op.type == "LOGISTIC" and g.tensors[op.outputs[0]].dtype == "int8":
        out = g.tensors[op.outputs[0]]
        if out.quantized and out.zero_point[0] != -128:
            return f"{out.describe()}: int8 LOGISTIC output zero point must be -128 (logistic_common.cc)"
    if op.type == "FULLY_CONNECTED" and len(op.inputs) > 2 and op.inputs[2] >= 0:
        reason = _fc_bias_scale(*(g.tensors[i] for i in (*op.inputs[:3], op.outputs[0])))
        if reason:
            return reason
    if op.type == "BATCH_MATMUL" and g.tensors[op.outputs[0]].dtype != g.tensors[op.inputs[0]].dtype:
        return "BATCH_MATMUL with an int32 output ('LHS input must match output type. INT32 output not supported')"
    if op.type == "SOFTMAX" and g.tensors[op.outputs[0]].dtype == "int8":
        out = g.tensors[op.outputs[0]]
        if out.quantized and (np.float32(out.scale[0]) != np.float32(1 / 256) or out.zero_point[0] != -128):
            return f"{out.describe()}: int8 SOFTMAX output must be exactly scale 1/256, zero point -128"
    if op.type == "TFLite_Detection_PostProcess":
        t = g.tensors[op.inputs[0]]
        if t.dtype != "float32" or g.tensors[op.inputs[1]].dtype != "float32":
            return "quantized box or score inputs (its detection postprocess decodes float32 inputs only)"
        per = op.options.get("max_classes_per_detection", 1)
        if not op.options.get("use_regular_nms", False) and isinstance(per, int) and per > 1:
            # detection_postprocess.cc writes class `col` of the k-th box at per * (k * per + col) + col,
            # past the end of its outputs, and counts every class as a detection
            return "fast NMS with max_classes_per_detection > 1 (its kernel writes those slots out of bounds)"
    return None


def _fc_bias_scale(inp, filt, bias, out) -> str | None:
    """GetQuantizedConvolutionMultipler's check on a per-tensor FULLY_CONNECTED: the bias scale within
    2 % of an output step of s_in * s_w."""
    if not (inp.quantized and filt.scale.size == 1 and bias.quantized and out.quantized):
        return None
    diff = abs(float(inp.scale[0]) * float(filt.scale[0]) - float(bias.scale[0]))
    if diff / float(out.scale[0]) <= 0.02:
        return None
    return f"{bias.describe()}: bias scale differs from s_in * s_w by more than 2 % of the output scale"


# --- TFLite Micro's arithmetic where its kernels differ from the reference's ---------------------------
# Each is a prepare-time table (8-bit inputs make every elementwise op a lookup): the op's prepare()
# picks it when profile_of(g) == "tflm", and the run is the same gather as the reference's.

LOGISTIC_INPUT_INTEGER_BITS = 4  # logistic_common.cc, tanh.cc: kInputIntegerBits for int8


def fixed_point_input(s_in: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, input_range_radius) of TFLM's int8 LOGISTIC and TANH:
    frexp(double(s_in) * 2**27) rounded to 31 bits (no renormalization, as in logistic_common.cc),
    and CalculateInputRadius(4, left_shift, 31)."""
    q, left_shift = math.frexp(float(s_in) * float(1 << (31 - LOGISTIC_INPUT_INTEGER_BITS)))
    mult = round_half_away(q * float(1 << 31))
    mult = (mult + (1 << 31)) % (1 << 32) - (1 << 31)  # static_cast<int32_t> of 2**31 wraps
    bits = LOGISTIC_INPUT_INTEGER_BITS
    radius = math.floor(((1 << bits) - 1) * float(1 << (31 - bits)) / float(1 << left_shift))
    return mult, left_shift, radius


@njit(cache=True)
def _logistic_q0(a):
    """gemmlowp::logistic of FixedPoint<int32, 4> raw a: Q0.31."""
    if a == 0:
        return np.int64(1 << 30)
    p = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-abs(a), LOGISTIC_INPUT_INTEGER_BITS))
    return p if a > 0 else wrap_int32(np.int64(INT32_MAX) - p)


@njit(cache=True)
def _one_minus_x_over_one_plus_x(a):
    """gemmlowp's one_minus_x_over_one_plus_x_for_x_in_0_1: (1 - a) / (1 + a), Q0.31 in and out."""
    s = a + np.int64(INT32_MAX)  # RoundingHalfSum(a, One)
    half_denominator = (s + 1) // 2 if s >= 0 else -((-s + 1) // 2)
    x = wrap_int32(np.int64(1515870810) + srdhm(half_denominator, np.int64(-1010580540)))
    one_f2 = np.int64(1) << 29
    for _ in range(3):
        one_minus = wrap_int32(one_f2 - srdhm(half_denominator, x))
        x = wrap_int32(x + saturating_shift_left(srdhm(x, one_minus), 2))
    return saturating_shift_left(wrap_int32(x - one_f2), 2)


@njit(cache=True)
def _tanh_q0(a):
    """gemmlowp::tanh of FixedPoint<int32, 4> raw a: Q0.31 (exp of 2n read as FixedPoint<int32, 5>)."""
    if a == 0:
        return np.int64(0)
    t = _one_minus_x_over_one_plus_x(exp_on_negative_values(-abs(a), LOGISTIC_INPUT_INTEGER_BITS + 1))
    return -t if a < 0 else t


@njit(cache=True)
def _activation_table(values, zp_in, mult, left_shift, radius, tanh):
    """reference_integer_ops::Logistic / Tanh (int8) of every input byte: the output quantization is
    implied (1/256 and -128, 1/128 and 0), whatever the output tensor says."""
    table = np.empty(values.shape[0], np.int64)
    for i in range(values.shape[0]):
        x = np.int64(values[i]) - zp_in
        if x <= -radius:
            table[i] = -128
        elif x >= radius:
            table[i] = 127
        elif tanh:
            r = rounding_divide_by_pot(_tanh_q0(multiply_by_quantized_multiplier(x, mult, left_shift)), 24)
            table[i] = min(max(r, -128), 127)
        else:
            r = rounding_divide_by_pot(
                _logistic_q0(multiply_by_quantized_multiplier(x, mult, left_shift)), 23
            )
            table[i] = min(max(r - 128, -128), 127)
    return table


def activation_table(op: str, s_in: float, zp_in: int) -> np.ndarray:
    """TFLite Micro's int8 LOGISTIC ("LOGISTIC") or TANH table over the 256 raw input bytes."""
    mult, left_shift, radius = fixed_point_input(s_in)
    table = _activation_table(byte_values("int8"), zp_in, mult, left_shift, radius, op == "TANH")
    return table.astype(np.int8)


def sub_multipliers(s1: float, s2: float, so: float) -> tuple[tuple[int, int], ...]:
    """SUB's three (multiplier, shift): ADD's, in double. (sub_common.cc reads as float32 arithmetic, but
    the tflite-micro build measured here gives the double results: test_tflm pins both readings.)"""
    twice = 2.0 * max(float(s1), float(s2))
    reals = (float(s1) / twice, float(s2) / twice, twice / (float(1 << SUB_LEFT_SHIFT) * float(so)))
    return tuple(quantize_multiplier_smaller_than_one_exp(r) for r in reals)


SUB_LEFT_SHIFT = 20


@njit(cache=True)
def _sub_table(v1, v2, off1, off2, p1, p2, po, zp_out, lo, hi):
    """reference_ops::Sub (int8): both inputs rescaled with positive multipliers, then subtracted."""
    x1 = np.empty(v1.shape[0], np.int64)
    x2 = np.empty(v2.shape[0], np.int64)
    for i in range(v1.shape[0]):
        x1[i] = mul_lt1((v1[i] + off1) * (1 << SUB_LEFT_SHIFT), p1[0], p1[1])
    for j in range(v2.shape[0]):
        x2[j] = mul_lt1((v2[j] + off2) * (1 << SUB_LEFT_SHIFT), p2[0], p2[1])
    table = np.empty((v1.shape[0], v2.shape[0]), np.int64)
    for i in range(v1.shape[0]):
        for j in range(v2.shape[0]):
            r = mul_lt1(wrap_int32(x1[i] - x2[j]), po[0], po[1]) + zp_out
            table[i, j] = min(max(r, lo), hi)
    return table


def sub_table(s: tuple[float, float, float], zp: tuple[int, int, int], lo: int, hi: int) -> np.ndarray:
    """TFLite Micro's int8 SUB over every pair of raw bytes: table[a, b]; s and zp: input 1, input 2, output."""
    p1, p2, po = sub_multipliers(*s)
    v = byte_values("int8")
    return _sub_table(v, v, -zp[0], -zp[1], p1, p2, po, zp[2], lo, hi).astype(np.int8)


def relu6_table(s_in: float, zp_in: int) -> np.ndarray:
    """TFLite Micro's int8 RELU6 (activations.cc Relu6Quantized): the raw input clamped to [zp_in, six],
    six = FloatToQuantizedType(6.0f, s_in, zp_in); the output tensor's quantization plays no part."""
    six = min(max(round_half_away(float(np.float32(6.0) / np.float32(s_in))) + zp_in, -128), 127)
    return np.clip(byte_values("int8").astype(np.int64), zp_in, six)


def fc_multipliers(
    s_in: float, filter_scales: np.ndarray, s_out: float, units: int
) -> tuple[np.ndarray, np.ndarray]:
    """FULLY_CONNECTED's per-unit (multiplier, shift): s_in * s_w / s_out in double, per tensor too (the
    tflite-micro build measured here; the reference's per-tensor product is float32)."""
    fs = np.broadcast_to(np.asarray(filter_scales, np.float32), (units,))
    pairs = [quantize_multiplier(float(s_in) * float(s) / float(s_out)) for s in fs]
    return np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int32)


# op -> how TFLite Micro's kernel differs from the reference's (engine.inspect and the README say it)
DIFFERENCES = {
    "FULLY_CONNECTED": "the reference rescales in double, round(double(acc) * s_in*s_w/s_out); TFLite Micro uses "
    "the fixed-point M0, shift (MultiplyByQuantizedMultiplier, two roundings)",
    "MUL": "the multiplier s1*s2/s_out is computed in float32 by the reference, in double by TFLite Micro",
    "BATCH_MATMUL": "the product s_lhs*s_rhs of its multiplier is taken in float32 by the reference, in double by "
    "TFLite Micro",
    "ADD": "int16 with power-of-two scales: the reference shifts (pot_scale_int16); TFLite Micro always takes "
    "the general rescale path",
    "SUB": "the reference runs ADD with input 2's multiplier negated; TFLite Micro rescales both inputs and "
    "subtracts (a negative tie rounds the other way); int16 power-of-two scales as ADD",
    "RELU": "the multiplier s_in/s_out is divided in float32 by the reference, in double by TFLite Micro",
    "RELU6": "the reference requantizes to the output scale, then clamps; TFLite Micro clamps the raw input to "
    "[zp_in, round(6/s_in) + zp_in] and ignores the output quantization",
    "HARD_SWISH": "its two multipliers are divided in float32 by the reference, in double by TFLite Micro",
    "LOGISTIC": "the reference fills a table from float32 expf; TFLite Micro computes gemmlowp's fixed-point "
    "logistic (int8)",
    "TANH": "the reference fills a table from float32 tanhf; TFLite Micro computes gemmlowp's fixed-point tanh "
    "(int8, output read as 1/128, zero point 0)",
}
