"""numerics="litert": XNNPACK's arithmetic for the element-wise ops its delegate takes, as
256 x 256 (binary) or 256-entry (unary) tables built once at prepare, and the delegate's checks
that decide whether an op runs there or in LiteRT's builtin kernels.

x86 LiteRT 2.3 (XNNPACK's scalar/AVX parameter setup, src/microparams-init.c):
- ADD / SUB: the integer "add" micro-kernel. Scales a_out = s_a / s_out, b_out = s_b / s_out in
  float32 (SUB negates b_out); shift = 20 - exponent(max(|a_out|, |b_out|)); multipliers
  lrintf(|x_out| * 2**shift) with the sign of x_out; then
  out = clamp(((2**(shift-1) - m_a z_a - m_b z_b + m_a a + m_b b) >> shift) + z_out).
  The delegate takes it when both ratios lie in [2**-10, 2**8).
- MUL: (a - z_a)(b - z_b) in int32, times the float32 scale (s_a * s_b) / s_out (float32 operations),
  rounded half to even, plus z_out. The delegate takes it when that scale lies in [2**-16, 2**8).
- Fused activations become a clamp on the quantized output with the bounds the reference computes
  (measured equal on RELU, RELU6, RELU_N1_TO_1).
"""

from __future__ import annotations

import numpy as np
from numba import njit

F32 = np.float32
ADD_RATIO = (2.0**-10, 2.0**8)  # [lo, hi): XNNPACK asserts it, the delegate refuses outside
MUL_RATIO = (2.0**-16, 2.0**8)


def _byte_values(dtype: str) -> np.ndarray:
    return np.arange(256, dtype=np.uint8).view(np.int8 if dtype == "int8" else np.uint8).astype(np.int64)


def add_ratios(s1: float, s2: float, so: float) -> tuple[float, float]:
    """s_a / s_out and s_b / s_out as XNNPACK computes them (float32 divisions)."""
    return float(F32(s1) / F32(so)), float(F32(s2) / F32(so))


def add_delegated(s1: float, s2: float, so: float) -> bool:
    """Whether XNNPACK takes this quantized ADD/SUB (its scale-ratio checks)."""
    return all(ADD_RATIO[0] <= r < ADD_RATIO[1] for r in add_ratios(s1, s2, so))


def add_params(s1: float, s2: float, so: float, sign: int) -> tuple[int, int, int]:
    """(m_a, m_b, shift) of XNNPACK's quantized add (sign -1: subtract)."""
    ra, rb = add_ratios(s1, s2, so)
    exponent = int(np.frexp(F32(max(ra, rb)))[1]) - 1  # the float32 exponent field, unbiased
    shift = 20 - exponent
    ma = int(np.rint(F32(ra) * F32(2.0**shift)))  # exact power-of-two scaling, then lrintf
    mb = int(np.rint(F32(rb) * F32(2.0**shift)))
    return ma, sign * mb, shift


def add_table(
    dtypes: tuple[str, str], zps: tuple[int, int, int], params: tuple[int, int, int], lo: int, hi: int
) -> np.ndarray:
    """table[i, j]: XNNPACK's add of raw bytes i (input 1) and j (input 2), clamped to [lo, hi]."""
    (ma, mb, shift), (za, zb, zo) = params, zps
    a = _byte_values(dtypes[0])[:, None]
    b = _byte_values(dtypes[1])[None, :]
    bias = (1 << (shift - 1)) - ma * za - mb * zb
    acc = (bias + a * ma + b * mb).astype(np.int32)  # int32 in XNNPACK: wraps exactly as there
    return np.clip((acc.astype(np.int64) >> shift) + zo, lo, hi)


def mul_scale(s1: float, s2: float, so: float) -> np.float32:
    """(s_a * s_b) / s_out in float32, XNNPACK's order of operations."""
    return F32(F32(F32(s1) * F32(s2)) / F32(so))


def mul_delegated(s1: float, s2: float, so: float) -> bool:
    return MUL_RATIO[0] <= float(mul_scale(s1, s2, so)) < MUL_RATIO[1]


def mul_table(
    dtypes: tuple[str, str], zps: tuple[int, int, int], scale: np.float32, lo: int, hi: int
) -> np.ndarray:
    """table[i, j]: XNNPACK's fp32-requantized product of raw bytes i and j, clamped to [lo, hi]."""
    za, zb, zo = zps
    a = _byte_values(dtypes[0])[:, None] - za
    b = _byte_values(dtypes[1])[None, :] - zb
    prod = (a * b).astype(F32) * scale  # float32 product, then round half to even
    return np.clip(np.rint(prod).astype(np.int64) + zo, lo, hi)


CVT_RATIO = (2.0**-8, 2.0**7)  # [lo, hi], both ends included (XNNPACK's qs8/qu8 convert)


def cvt_delegated(t_in: str, t_out: str, s_in: float, s_out: float) -> bool:
    """Whether XNNPACK takes a QUANTIZE from t_in to t_out (8-bit requantization, one type)."""
    if t_in != t_out or t_in not in ("int8", "uint8"):
        return False
    return CVT_RATIO[0] <= float(F32(s_in) / F32(s_out)) <= CVT_RATIO[1]


def cvt_table(dtype: str, q_in: tuple[float, int], q_out: tuple[float, int]) -> np.ndarray:
    """XNNPACK's 8-bit convert: multiplier lrintf(256 * s_in / s_out) (float32), then
    out = clamp((((q - zp_in) * multiplier + 128) >> 8) + zp_out) per raw byte."""
    (s_in, zp_in), (s_out, zp_out) = q_in, q_out
    multiplier = int(np.rint(F32(256) * F32(F32(s_in) / F32(s_out))))
    info = np.iinfo(dtype)
    q = _byte_values(dtype)
    return np.clip((((q - zp_in) * multiplier + 128) >> 8) + zp_out, int(info.min), int(info.max))


def lrelu_multipliers(s_in: float, s_out: float, alpha: float) -> tuple[int, int] | None:
    """XNNPACK's 8-bit leaky ReLU multipliers (lrintf(256 * ratio) for each side), or None where its checks
    refuse the op (input/output ratio outside [2**-8, 2**7], |negative ratio| outside [2**-8, 2**7])."""
    pos = F32(F32(s_in) / F32(s_out))
    neg = F32(pos * F32(alpha))
    if not (2.0**-8 <= pos <= 2.0**7 and -127.99609375 <= neg <= 2.0**7 and abs(neg) >= 2.0**-8):
        return None
    m_neg = int(np.rint(F32(256) * neg))
    return (int(np.rint(F32(256) * pos)), m_neg) if m_neg != 0 else None


def lrelu_table(dtype: str, zps: tuple[int, int], multipliers: tuple[int, int]) -> np.ndarray:
    """XNNPACK's 8-bit leaky ReLU per raw byte: ((q - z_in) * m + 128) >> 8 (m by the sign of q - z_in,
    mulhrs in int16 lanes), plus z_out, saturated."""
    (zi, zo), (m_pos, m_neg) = zps, multipliers
    d = _byte_values(dtype) - zi
    m = np.where(d > 0, m_pos, m_neg)
    info = np.iinfo(dtype)
    r = np.clip(((d * m + 128) >> 8) + zo, -32768, 32767)  # the int16 saturating add
    return np.clip(r, int(info.min), int(info.max))


# --- the delegate's partitioning for the ops other than the convolution family (litert.RULES) ---------------
# Each rule was pinned on one-op graphs against LiteRT 2.3's default interpreter (tests/test_litert_ops.py):
# which types it takes, and the scale thresholds above.

EIGHT_BIT = ("int8", "uint8")
FLOAT_OR_8BIT = ("float32", "int8", "uint8")


def _t(g, i: int):
    return g.tensors[i]


def _io_refusal(op, g, types: tuple[str, ...]) -> str | None:
    """Every data input and output of one of `types`, 8-bit ones quantized per tensor."""
    from .litert import datatype_refusal

    for i in [*op.inputs, *op.outputs]:
        if i < 0:
            continue
        t = _t(g, i)
        if t.is_const and t.dtype == "int32" and i not in op.outputs:
            continue  # shape, axes, paddings, sizes, split axis
        if t.dtype not in types:
            return f"{t.describe()}: the XNNPACK delegate takes {op.type} on {', '.join(types)} only"
        if t.dtype in EIGHT_BIT:
            reason = datatype_refusal(t)
            if reason:
                return reason
    return None


def _scale(g, i: int) -> float:
    return float(np.asarray(_t(g, i).scale, np.float32).reshape(-1)[0])


def _quantization(g, i: int) -> tuple[float, int] | None:
    """A quantized tensor's (float32 scale, zero point) (its first ones), None for one without."""
    t = _t(g, i)
    if not (np.size(t.scale) and np.size(t.zero_point)):
        return None
    return _scale(g, i), int(np.asarray(t.zero_point).reshape(-1)[0])


def _rule_binary(op, g) -> str | None:
    from .litert import activation_refusal

    reason = _io_refusal(op, g, FLOAT_OR_8BIT) or activation_refusal(op)
    if reason or _t(g, op.inputs[0]).dtype == "float32":
        return reason
    s1, s2, so = _scale(g, op.inputs[0]), _scale(g, op.inputs[1]), _scale(g, op.outputs[0])
    if op.type == "MUL":
        if not mul_delegated(s1, s2, so):
            return f"s1 * s2 / s_out = {float(mul_scale(s1, s2, so)):g} outside [2**-16, 2**8)"
    elif not add_delegated(s1, s2, so):
        return f"input/output scale ratios {add_ratios(s1, s2, so)} outside [2**-10, 2**8)"
    return None


def _rule_quantize(op, g) -> str | None:
    t_in, t_out = _t(g, op.inputs[0]), _t(g, op.outputs[0])
    if t_in.dtype == "float32":
        return _io_refusal(op, g, FLOAT_OR_8BIT)
    reason = _io_refusal(op, g, EIGHT_BIT)
    if reason:
        return reason
    if not cvt_delegated(t_in.dtype, t_out.dtype, _scale(g, op.inputs[0]), _scale(g, op.outputs[0])):
        return "an 8-bit requantization between two types, or with s_in / s_out outside [2**-8, 2**7]"
    return None


def _rule_dequantize(op, g) -> str | None:
    if _t(g, op.inputs[0]).dtype not in EIGHT_BIT:
        return "DEQUANTIZE from a type other than int8/uint8"
    return _io_refusal(op, g, FLOAT_OR_8BIT)


def _rule_concatenation(op, g) -> str | None:
    reason = _io_refusal(op, g, FLOAT_OR_8BIT)
    if reason:
        return reason
    if len(op.inputs) < 2:
        return "a single input"
    out = op.outputs[0]
    if _t(g, out).dtype == "uint8" and any(_quantization(g, i) != _quantization(g, out) for i in op.inputs):
        return "uint8 inputs quantized unlike the output"
    return None


def _rule_strided_slice(op, g) -> str | None:
    reason = _io_refusal(op, g, FLOAT_OR_8BIT)
    if reason:
        return reason
    strides = _t(g, op.inputs[3]).data
    if strides is None or np.any(np.asarray(strides) != 1):
        return "strides other than 1"
    if any(op.options.get(k, 0) for k in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask", "offset")):
        return "ellipsis, new-axis or shrink masks"
    return None


def _pooling(types: tuple[str, ...]):
    def rule_fn(op, g) -> str | None:
        reason = _io_refusal(op, g, types)
        if reason:
            return reason
        fh, fw = op.options.get("filter_height", 1), op.options.get("filter_width", 1)
        sh, sw = op.options.get("stride_h", 1), op.options.get("stride_w", 1)
        if sh > fh or sw > fw:
            return f"strides {sh}x{sw} larger than the {fh}x{fw} window"
        return None

    return rule_fn


def _rule_reshape(op, g) -> str | None:
    reason = _io_refusal(op, g, FLOAT_OR_8BIT)
    if reason:
        return reason
    src, out = op.inputs[0], op.outputs[0]
    if _t(g, src).dtype in EIGHT_BIT and _quantization(g, src) != _quantization(g, out):
        return "an output quantized unlike the input"
    return None


def _rule_split(op, g) -> str | None:
    if not 2 <= len(op.outputs) <= 4:
        return f"{len(op.outputs)} outputs (XNNPACK splits into 2 to 4)"
    return _io_refusal(op, g, FLOAT_OR_8BIT)


def _rule_leaky_relu(op, g) -> str | None:
    reason = _io_refusal(op, g, FLOAT_OR_8BIT)
    if reason:
        return reason
    alpha = float(op.options.get("alpha", 0.0))
    if _t(g, op.inputs[0]).dtype == "float32":
        return None if alpha != 0.0 else "a zero slope"
    if lrelu_multipliers(_scale(g, op.inputs[0]), _scale(g, op.outputs[0]), alpha) is None:
        return "a scale ratio or slope outside XNNPACK's leaky ReLU ranges"
    return None


def _typed(types: tuple[str, ...]):
    def rule_fn(op, g) -> str | None:
        return _io_refusal(op, g, types)

    return rule_fn


# ops XNNPACK defines as copies of the input's values: the delegate takes them whatever the output's
# quantization, then fails to prepare one whose output is quantized unlike its input, and LiteRT's
# default interpreter with it (measured on each, int8 and uint8, scale or zero point changed)
COPIES = ("PAD", "TRANSPOSE", "MAX_POOL_2D", "RESIZE_BILINEAR", "STRIDED_SLICE", "SPLIT")


def _copy_requantizes(op, g) -> str | None:
    """A runtime rule (litert.RUNTIME_RULES): a delegated copy whose output quantization differs."""
    from .litert import delegated

    src = op.inputs[1] if op.type == "SPLIT" else op.inputs[0]  # SPLIT: (axis, input)
    if _t(g, src).dtype not in EIGHT_BIT or not delegated(op, g):
        return None
    for o in op.outputs:
        if _t(g, o).dtype != _t(g, src).dtype:
            continue  # (its prepare() refuses it)
        if _quantization(g, o) != _quantization(g, src):
            return (
                f"{_t(g, o).describe()}: quantized unlike the input; XNNPACK takes this {op.type}, then"
                " fails to prepare it (LiteRT's default interpreter cannot run the model)"
            )
    return None


def register() -> None:
    """Add the rules of this module's op types to litert.RULES (and litert.RUNTIME_RULES)."""
    from .litert import RULES, RUNTIME_RULES

    for name in COPIES:
        RUNTIME_RULES[name] = _copy_requantizes

    for name in ("ADD", "SUB", "MUL"):
        RULES[name] = _rule_binary
    RULES["QUANTIZE"] = _rule_quantize
    RULES["DEQUANTIZE"] = _rule_dequantize
    RULES["CONCATENATION"] = _rule_concatenation
    RULES["STRIDED_SLICE"] = _rule_strided_slice
    RULES["SPLIT"] = _rule_split
    RULES["LEAKY_RELU"] = _rule_leaky_relu
    RULES["RESHAPE"] = _rule_reshape
    for name in (
        "PAD",
        "TRANSPOSE",
        "REDUCE_MAX",
        "MEAN",
        "SUM",
        "RESIZE_BILINEAR",
    ):
        RULES[name] = _typed(FLOAT_OR_8BIT)
    for name in ("LOGISTIC", "TANH"):
        RULES[name] = _typed(FLOAT_OR_8BIT)
    RULES["MAX_POOL_2D"] = _pooling(FLOAT_OR_8BIT)
    RULES["AVERAGE_POOL_2D"] = _pooling(("float32",))
    for name in ("RELU", "RELU6", "HARD_SWISH", "SQRT", "RSQRT", "EXP", "DIV"):
        RULES[name] = _typed(("float32",))
    for name in ("MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE"):
        RULES[name] = _typed(("float32",))


# --- XNNPACK's float32 kernels run with denormals-are-zero and flush-to-zero (measured) ----------------------

TINY = np.float32(1.1754944e-38)  # the smallest normal float32


@njit(cache=True)
def _flush_copy(src, dst):
    for i in range(src.size):
        v = src[i]
        dst[i] = np.float32(0.0) * v if abs(v) < TINY else v


@njit(cache=True)
def _flush(x):
    for i in range(x.size):
        if abs(x[i]) < TINY:
            x[i] = np.float32(0.0) * x[i]


def flush_denormals(prepared, shapes: list) -> object:
    """A float32 binary op's Prepared as XNNPACK runs it: denormal inputs read as zero (into scratch
    copies), denormal results written as zero."""
    from dataclasses import replace

    run0, n0 = prepared.run, len(prepared.scratch)
    extra = [(tuple(int(d) for d in s), np.float32) for s in shapes[:2]]

    def run(inputs: list, outputs: list, scratch: list) -> None:
        a, b = scratch[n0], scratch[n0 + 1]
        _flush_copy(np.ascontiguousarray(inputs[0]).reshape(-1), a.reshape(-1))
        _flush_copy(np.ascontiguousarray(inputs[1]).reshape(-1), b.reshape(-1))
        run0([a, b], outputs, scratch[:n0])
        _flush(outputs[0].reshape(-1))

    return replace(prepared, run=run, scratch=[*prepared.scratch, *extra])


# --- what engine.inspect says about an op under "litert" ------------------------------------------------------

DIFFERENCES = {
    "ADD": "XNNPACK: one integer rounding, (bias + a*m_a + b*m_b) >> shift, shift = 20 - exponent(max ratio), "
    "m_x = lrintf(s_x/s_out * 2^shift); the builtin kernel (scales outside [2^-10, 2^8)): NEON blocks with "
    "wrapping int16 lanes; the reference: three fixed-point roundings",
    "SUB": "XNNPACK: ADD's integer rounding with m_b negated; outside its range the reference's",
    "MUL": "XNNPACK: (a - z_a)(b - z_b) times float32 (s_a*s_b)/s_out, half to even; the builtin kernel (scales "
    "outside [2^-16, 2^8)): NEON blocks (a shift of 32+ gives 0, wrapping int16 lanes)",
    "MEAN": "XNNPACK: nearbyint(float(sum) * f32(s_in/s_out) * f32(1/n) + (z_out - n z_in s')) in float32",
    "SUM": "XNNPACK: nearbyint(float(sum) * f32(s_in/s_out) + (z_out - n z_in s')) in float32; the reference "
    "reads int8 data as uint8 bytes",
    "QUANTIZE": "XNNPACK: float input x * f32(1/s) half to even; 8-bit ((q - z_in) * lrintf(256 s_in/s_out) + 128) >> 8",
    "RESIZE_BILINEAR": "XNNPACK: float32 source positions, 11-bit weights, (acc + 2^21) >> 22",
    "SOFTMAX": "LiteRT's optimized kernel: a float32 expf table and float32 sums (the reference: fixed point)",
    "SQRT": "XNNPACK: VRSQRT14PS and one Newton-Raphson step, denormals as zero",
    "RSQRT": "XNNPACK: VRSQRT14PS and one Newton-Raphson step, denormals as zero",
}


def describe(op, g) -> str | None:
    """Where LiteRT's default interpreter runs op and how it differs from the reference, or None."""
    from .litert import refusal

    why = DIFFERENCES.get(op.type)
    if why is None:
        return None
    reason = refusal(op, g)
    where = "XNNPACK takes it" if reason is None else f"LiteRT's builtin kernel runs it ({reason})"
    return f"{where}; {why}"


# float32 ops XNNPACK takes and computes with its own approximations, which the profile does not reproduce
# (measured: about half of random inputs differ from the reference's libm results; the float pools and means
# sum in another order); refused, never silently
# computed the reference's way
UNREPRODUCED_FLOAT = {
    "LOGISTIC",
    "TANH",
    "HARD_SWISH",
    "EXP",
    "RESIZE_BILINEAR",
    "AVERAGE_POOL_2D",
    "MEAN",
    "SUM",
}


def require_reproduced(op, g) -> None:
    """Under numerics="litert", refuse a float32 op XNNPACK would compute with an arithmetic not reproduced here."""
    from ..errors import UnsupportedError
    from . import profile_of
    from .litert import delegated

    if (
        op.type in UNREPRODUCED_FLOAT
        and profile_of(g) == "litert"
        and g.tensors[op.inputs[0]].dtype == "float32"
        and delegated(op, g)
    ):
        raise UnsupportedError(
            f"{op.where()}: numerics='litert' does not reproduce XNNPACK's float32 {op.type} (its own "
            "approximation or summation order); the reference and tflm profiles run it"
        )
