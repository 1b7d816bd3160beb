"""Which precision the reference takes its convolution multipliers in, pinned by one-op graphs.

README: uint8 convolutions take the scale product s_in * s_w in float32 (GetQuantizedConvolutionMultipler),
int8 per-channel ones in double (PopulateConvolutionQuantizationParams). The scales below were searched
so that the two computations give different (M0, shift) and an accumulator exists where that flips the
output; each graph puts that accumulator on one pixel (a 1x1 filter of ones, the bias moving the sum)
and the test checks (1) the other computation would give another value there, (2) the reference gives
the README's value, (3) the engine equals the reference on all 256 input values.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.harness import Net, all_bytes, cached_reference, check
from tests.oracle import require

F32 = np.float32

# (s_in, s_w, s_out, accumulator where float32 and double products give different outputs)
PER_TENSOR = [
    (0.004077234771102667, 0.0006122658378444612, 0.018759334459900856, 717653),
    (0.006937871687114239, 0.002854781923815608, 0.5605859160423279, 551921),
    (0.7673112750053406, 0.014940661378204823, 25.846904754638672, 174730),
]
# per channel: one s_in and s_out, a filter scale and an accumulator per channel
S_IN, S_OUT = 0.012299999594688416, 1.3494479656219482
PER_CHANNEL = [
    (0.03613254055380821, 314262),
    (0.0006029653595760465, 2274409),
    (0.0033766624983400106, 698556),
    (0.0034093111753463745, 1592903),
]


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier (frexp, round half away, 2^31 -> 2^30 with shift + 1)."""
    m, e = np.frexp(real)
    q = int(np.floor(abs(m) * 2**31 + 0.5)) * (1 if m >= 0 else -1)
    if q == 2**31:
        q, e = q // 2, e + 1
    return q, int(e)


def multiply(acc: int, m: int, shift: int) -> int:
    """MultiplyByQuantizedMultiplier: doubling high multiply, then a rounding right shift."""
    x = acc << max(shift, 0)
    q = (x * m + (1 << 30)) >> 31
    right = max(-shift, 0)
    mask = (1 << right) - 1
    return (q >> right) + int((q & mask) > (mask >> 1) + int(q < 0))


def output_by(rule: str, s_in: float, s_w: float, s_out: float, acc: int) -> int:
    if rule == "float32":
        real = float(F32(F32(s_in) * F32(s_w))) / float(F32(s_out))
    else:
        real = float(F32(s_in)) * float(F32(s_w)) / float(F32(s_out))
    return multiply(acc, *quantize_multiplier(real))


def _conv(net: Net, op: str, dtype: str, s_in: float, w_scales, s_out: float, accs, zp_out: int) -> None:
    """One 1x1 op of ones over the 256 input values; channel c's sum at the input value 0 (uint8: 128,
    the zero point) is accs[c]."""
    c = len(w_scales)
    zp_in = 128 if dtype == "uint8" else 0
    x = net.input([1, 1, 256, c if op == "DEPTHWISE_CONV_2D" else 1], dtype, s_in, zp_in)
    zp_w = 100 if dtype == "uint8" else 0
    shape = [1, 1, 1, c] if op == "DEPTHWISE_CONV_2D" else [c, 1, 1, 1]
    w = {"name": f"w{len(net.tensors)}", "shape": shape, "dtype": dtype, "data": np.full(shape, zp_w + 1)}
    w.update(scale=list(w_scales), zero_point=[zp_w] * c, quantized_dimension=3 if op[0] == "D" else 0)
    net.tensors.append(w)
    bias = {"name": f"b{len(net.tensors)}", "shape": [c], "dtype": "int32", "data": np.array(accs, np.int32)}
    bias.update(scale=[float(F32(s_in) * F32(s)) for s in w_scales], zero_point=[0] * c)
    net.tensors.append(bias)
    wi, bi = len(net.tensors) - 2, len(net.tensors) - 1
    out = net.tensor([1, 1, 256, c], dtype, s_out, zp_out)
    options = {"padding": "VALID", "stride_h": 1, "stride_w": 1}
    if op == "DEPTHWISE_CONV_2D":
        options["depth_multiplier"] = 1
    net.op(op, [x, wi, bi], [out], f"{op} {dtype} {accs}", **options)


def _inputs(net: Net) -> list[np.ndarray]:
    xs = []
    for i in net.inputs:
        t = net.tensors[i]
        column = all_bytes(t["dtype"], (1, 1, 256, 1))
        xs.append(np.repeat(column, t["shape"][3], axis=3))
    return xs


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_uint8_multiplier_from_a_float32_product(op):
    require("reference")
    net = Net()
    for s_in, s_w, s_out, acc in PER_TENSOR:
        want = output_by("float32", s_in, s_w, s_out, acc)
        assert output_by("double", s_in, s_w, s_out, acc) != want  # the pin discriminates
        _conv(net, op, "uint8", s_in, [s_w], s_out, [acc], 128 - want)
    model, xs = net.build(), _inputs(net)
    ref = cached_reference(model, [xs])[0]["outputs"]
    at = 128  # the input value 128 (the zero point) sits at index 128 of all_bytes
    for k, (s_in, s_w, s_out, acc) in enumerate(PER_TENSOR):
        assert int(ref[k][0, 0, at, 0]) == 128, f"pin {k}: the reference is not float32 here"
    check(net, [xs], model)


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_int8_per_channel_multiplier_from_a_double_product(op):
    require("reference")
    net = Net()
    w_scales = [s for s, _ in PER_CHANNEL]
    accs = [a for _, a in PER_CHANNEL]
    wants = [output_by("double", S_IN, s, S_OUT, a) for s, a in PER_CHANNEL]
    assert all(output_by("float32", S_IN, s, S_OUT, a) != w for (s, a), w in zip(PER_CHANNEL, wants))
    _conv(net, op, "int8", S_IN, w_scales, S_OUT, accs, 0)
    model, xs = net.build(), _inputs(net)
    ref = cached_reference(model, [xs])[0]["outputs"][0]
    assert ref[0, 0, 0, :].tolist() == wants, "the reference is not double here"  # input value 0: index 0
    check(net, [xs], model)
