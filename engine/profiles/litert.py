"""numerics="litert": LiteRT's default interpreter on x86 (ai-edge-litert 2.3), its XNNPACK delegate's
partitioning reproduced at prepare.

The default interpreter (OpResolverType.AUTO) hands every op its XNNPACK delegate accepts to XNNPACK
and runs the others with LiteRT's optimized builtin kernels; the two round differently, so each op's
prepare() asks here, once, which of the two computes it:

    delegated(op, g) -> bool          whether XNNPACK takes op
    refusal(op, g) -> str | None      why XNNPACK leaves op to the builtin kernels (None: it takes it)

RULES holds one rule per op type (the Visit*Node checks of tensorflow/lite/delegates/xnnpack/
xnnpack_delegate.cc, each threshold pinned by a one-op graph against LiteRT in the tests); an op type
without a rule is not delegated. A rule returns the reason the delegate refuses the op, or None.
`runtime_refusal` is what LiteRT's default interpreter cannot run at all (the profile refuses it).

The arithmetic (XNNPACK's "fp32" requantization, ruy's rounding on x86) is the x86 build's: ARM builds
of LiteRT round differently, and this profile does not follow them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import numpy as np

from ..graph import Graph, Op, Tensor

Rule = Callable[[Op, Graph], "str | None"]
RULES: dict[str, Rule] = {}

# fused activations XNNPACK turns into an output range (ConvertActivationToOutputRange)
RANGE_ACTIVATIONS = {"NONE", "RELU", "RELU_N1_TO_1", "RELU6"}


def rule(*op_types: str) -> Callable[[Rule], Rule]:
    """Register a delegation rule for op types."""

    def register(fn: Rule) -> Rule:
        for t in op_types:
            RULES[t] = fn
        return fn

    return register


def refusal(op: Op, g: Graph) -> str | None:
    """Why the XNNPACK delegate leaves op to LiteRT's builtin kernels, or None when it takes op."""
    fn = RULES.get(op.type)
    if fn is None:
        return f"the XNNPACK delegate does not take {op.type}"
    # measured (fuzz.py --fields --numerics litert): an op no graph output depends on, and one with an
    # input declared with no elements, stay builtin
    if op.index not in _live_ops(g):
        return "no graph output depends on it"
    if any(i >= 0 and 0 in g.tensors[i].shape for i in op.inputs):
        return "an input declared with no elements"
    return fn(op, g)


_live_last: tuple | None = None  # (weak reference to a graph, the indices of its live ops)


def _live_ops(g: Graph) -> frozenset:
    """The ops some graph output depends on, for the graph asked last (every op of a graph asks)."""
    global _live_last
    last = _live_last
    if last is None or last[0]() is not g:
        live_tensors, live = set(g.outputs), set()
        for op in reversed(g.ops):
            if live_tensors.intersection(op.outputs):
                live.add(op.index)
                live_tensors.update(op.inputs)
        last = (weakref.ref(g), frozenset(live))
        _live_last = last
    return last[1]


def delegated(op: Op, g: Graph) -> bool:
    """Whether LiteRT's default interpreter runs op in the XNNPACK delegate."""
    return refusal(op, g) is None


def runtime_refusal(op: Op, g: Graph) -> str | None:
    """What LiteRT's default interpreter cannot run (the profile refuses the model, with this reason):
    each case measured against ai-edge-litert 2.3 in tests/test_litert_conv.py."""
    for i in (*op.inputs, *op.outputs):
        t = g.tensors[i] if i >= 0 else None
        if t is not None and t.scale.size > 1 and not 0 <= t.quant_axis < max(len(t.shape), 1):
            # InterpreterBuilder's ParseQuantization refuses the model (person_detect's biases say 3)
            return f"{t.describe()}: quantized_dimension {t.quant_axis} outside its {len(t.shape)} dimensions"
    fn = RUNTIME_RULES.get(op.type)
    return fn(op, g) if fn else None


RUNTIME_RULES: dict[str, Rule] = {}


def runtime_rule(*op_types: str) -> Callable[[Rule], Rule]:
    """Register what makes LiteRT's default interpreter fail on an op type (not a delegation choice)."""

    def register(fn: Rule) -> Rule:
        for t in op_types:
            RUNTIME_RULES[t] = fn
        return fn

    return register


# --- tensor checks shared by the rules (GetXNNPackDatatype and friends) ------------------------------------


def _has(op: Op, k: int) -> bool:
    return len(op.inputs) > k and op.inputs[k] >= 0


def _scales(t: Tensor) -> np.ndarray:
    return np.asarray(t.scale, np.float32).reshape(-1)


def datatype_refusal(t: Tensor, per_channel_ok: bool = False) -> str | None:
    """Why XNNPACK has no datatype for a quantized tensor (GetXNNPackDatatype), or None. Activations
    must be per tensor; filters (per_channel_ok) may be per channel, with zero points 0; a uint8 tensor
    must say quantized_dimension 0 even when per tensor (measured on a DEPTHWISE_CONV_2D filter)."""
    if t.dtype not in ("uint8", "int8"):
        return f"{t.describe()}: XNNPACK takes uint8 and int8 quantized tensors here"
    if not t.quantized:
        return f"{t.describe()}: not quantized"
    if t.quant_axis != 0 and (t.dtype == "uint8" or not per_channel_ok):
        # measured: an activation of either type, a filter of uint8 (an int8 one per tensor may say any)
        return f"{t.describe()}: quantized_dimension {t.quant_axis} (XNNPACK: 0)"
    s = _scales(t)
    if not np.all(np.isfinite(s) & (s > 0)) or np.any(s < np.finfo(np.float32).tiny):
        return f"{t.describe()}: a scale that is not a normal positive float"
    if s.size == 1:
        return None
    if t.dtype == "uint8":
        return f"{t.describe()}: uint8 must be quantized per tensor"
    if not per_channel_ok:
        return f"{t.describe()}: per-channel quantized activations"
    if np.any(np.asarray(t.zero_point) != 0):
        return f"{t.describe()}: per-channel zero points must be 0"
    return None


def activation_refusal(op: Op) -> str | None:
    act = op.options.get("fused_activation_function", "NONE")
    if act not in RANGE_ACTIVATIONS:
        return f"fused activation {act} (XNNPACK takes none, RELU, RELU_N1_TO_1, RELU6)"
    return None


def requantization_scale(s_in: float, s_w: np.ndarray, s_out: float) -> np.ndarray:
    """XNNPACK's per-channel requantization scale: float32 s_in * s_w[c] / s_out, in that order."""
    return (np.float32(s_in) * np.asarray(s_w, np.float32)) / np.float32(s_out)


# --- the convolution family --------------------------------------------------------------------------------


@rule("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
def _weighted(op: Op, g: Graph) -> str | None:
    inp, filt, out = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if inp.dtype == "float32" and filt.dtype == "float32":
        return activation_refusal(op)  # delegated (measured); the profile refuses it (_weighted_fails)
    if inp.dtype not in ("uint8", "int8"):
        return f"{inp.describe()}: XNNPACK's {op.type} takes uint8 or int8 data here"
    for t, channel_ok in ((inp, False), (filt, True), (out, False)):
        reason = datatype_refusal(t, channel_ok)
        if reason:
            return reason
    if not filt.is_const:
        return f"{filt.describe()}: dynamic weights"
    has_bias = _has(op, 2)
    if not has_bias and op.type != "FULLY_CONNECTED":
        return f"{op.type} without bias"
    if has_bias and not g.tensors[op.inputs[2]].quantized:  # measured (fuzz.py --fields --numerics litert)
        return f"{g.tensors[op.inputs[2]].describe()}: an unquantized bias"
    axis = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}[op.type]
    if _scales(filt).size > 1 and filt.quant_axis != axis:
        return f"{filt.describe()}: per-channel on dimension {filt.quant_axis} (XNNPACK: {axis})"
    if op.type == "FULLY_CONNECTED" and filt.dtype == "int8" and np.any(np.asarray(filt.zero_point) != 0):
        return f"{filt.describe()}: int8 weights with a non-zero zero point"
    return activation_refusal(op)


@rule("TRANSPOSE_CONV")
def _transpose_conv(op: Op, g: Graph) -> str | None:
    """VisitTransposeConvNode: inputs (output_shape, weights [oc, kh, kw, ic], data, bias?)."""
    filt, inp, out = g.tensors[op.inputs[1]], g.tensors[op.inputs[2]], g.tensors[op.outputs[0]]
    if inp.dtype not in ("uint8", "int8"):
        return f"{inp.describe()}: XNNPACK's TRANSPOSE_CONV takes uint8 or int8 data here"
    for t, channel_ok in ((inp, False), (filt, True), (out, False)):
        reason = datatype_refusal(t, channel_ok)
        if reason:
            return reason
    if not filt.is_const:
        return f"{filt.describe()}: dynamic weights"
    if _scales(filt).size > 1 and filt.quant_axis != 0:
        return f"{filt.describe()}: per-channel on dimension {filt.quant_axis} (XNNPACK: 0)"
    kh, kw = filt.shape[1], filt.shape[2]
    sh, sw = op.options.get("stride_h", 1), op.options.get("stride_w", 1)
    if sh > kh or sw > kw:
        return f"strides {sh}x{sw} larger than the {kh}x{kw} kernel"
    return activation_refusal(op)


@runtime_rule("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
def _weighted_fails(op: Op, g: Graph) -> str | None:
    inp, filt, out = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]], g.tensors[op.outputs[0]]
    if inp.dtype == "float32" and delegated(op, g):
        return (
            f"float32 {op.type} runs in XNNPACK's float kernels, whose summation order (and fused"
            " multiply-adds) this profile does not reproduce: it would not be bit-exact"
        )
    if inp.dtype not in ("int8", "uint8"):
        return None
    if not _has(op, 2) and op.type == "CONV_2D":  # tflite/kernels/conv.cc: has_bias
        return "a quantized CONV_2D without bias (LiteRT's conv.cc requires one: it fails to prepare)"
    if not _has(op, 2) and op.type == "DEPTHWISE_CONV_2D":
        # the delegate refuses it, and the optimized builtin kernel then dies (SIGSEGV, measured)
        return "a quantized DEPTHWISE_CONV_2D without bias crashes LiteRT's default interpreter (SIGSEGV)"
    if not delegated(op, g) or not (inp.quantized and filt.quantized and out.quantized):
        return None
    scale = requantization_scale(_scales(inp)[0], _scales(filt), _scales(out)[0])
    if np.any(scale >= 256.0):  # the delegate takes it, then XNNPACK refuses to create the operator
        return (
            f"requantization scale s_in * s_w / s_out = {float(scale.max()):g} >= 256: XNNPACK fails to"
            " create the operator and LiteRT's default interpreter fails to prepare"
        )
    if _has(op, 2) and _scales(filt).size > 1 and _scales(g.tensors[op.inputs[2]]).size != _scales(filt).size:
        # XNNPACK defines the bias per channel when the filter is: the delegate fails to prepare
        return (
            f"{g.tensors[op.inputs[2]].describe()}: per-tensor bias of a per-channel filter (XNNPACK fails)"
        )
    return None


# --- the convolution family's requantization rule (ops: conv2d, depthwise_conv2d, fully_connected,
# transpose_conv, conv16), chosen once at prepare ------------------------------------------------------------


def conv_rule(op: Op, g: Graph) -> str:
    """The requantization rule (kernels/requantize.make) LiteRT's default interpreter applies to a
    convolution-family op under the graph's profile ("reference" unless numerics="litert"):
    - the XNNPACK delegate takes the op: "fp32", float32(acc) * scale[c], clamped, rounded half to even,
      scale = float32 s_in * s_w[c] / s_out in that order (XNNPACK's convolution-nhwc.c);
    - it does not: LiteRT's optimized builtin kernels. CONV_2D and FULLY_CONNECTED multiply through ruy,
      whose x86 kernels round the final right shift half up ("ruy"); DEPTHWISE_CONV_2D and TRANSPOSE_CONV
      keep the reference's MultiplyByQuantizedMultiplier ("reference"). The multipliers are the
      reference's (Prepare is shared)."""
    if getattr(g, "numerics", "reference") != "litert":
        return "reference"
    if delegated(op, g):
        return "fp32"
    return "ruy" if op.type in ("CONV_2D", "FULLY_CONNECTED") else "reference"


def fp32_scales(inp: Tensor, filt: Tensor, out: Tensor, channels: int) -> np.ndarray:
    """XNNPACK's per-channel float32 scales (a per-tensor filter's one scale repeated)."""
    s = requantization_scale(inp.scale[0], filt.scale, out.scale[0])
    return np.ascontiguousarray(np.broadcast_to(s, (channels,)), np.float32)


__all__ = [
    "RULES",
    "RUNTIME_RULES",
    "conv_rule",
    "datatype_refusal",
    "delegated",
    "fp32_scales",
    "refusal",
    "requantization_scale",
    "rule",
    "runtime_refusal",
    "runtime_rule",
]


from . import litert_xnn  # the other ops' rules (litert2), registered once the helpers above exist

litert_xnn.register()
