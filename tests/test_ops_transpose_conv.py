"""TRANSPOSE_CONV on graphs built here, against the reference kernels (and TFLite Micro for tflm).

uint8 (per tensor, filter zero point), int8 (per tensor and per channel), int16 x int8 with int64
biases, float32; SAME and VALID, strides, filter shapes, output shapes the padding rule leaves odd,
with and without bias, every fused activation, batch 1 and 3 (the output_shape constant carries the
batch: the reference writes as many batches as its input has, so each batch has its own graph).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import engine
from engine.errors import UnsupportedError
from tests.harness import F32, Net, check, run_sets
from tests.test_ops_conv import bias_tensor, gemm_path, io_types, weights  # noqa: F401 (fixture)

ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
SCHEMES = ["uint8", "int8_per_tensor", "int8_per_channel", "int16", "float32"]
# (h, w, ic), (kh, kw), oc, (sh, sw), padding, extra: output extent beyond (or short of) the usual
CASES = [
    ((4, 5, 3), (3, 3), 5, (2, 2), "SAME", 0),
    ((4, 5, 3), (3, 3), 5, (2, 2), "SAME", -1),
    ((3, 4, 8), (2, 2), 17, (2, 2), "VALID", 0),
    ((5, 3, 2), (3, 2), 4, (1, 1), "SAME", 0),
    ((5, 3, 2), (3, 2), 4, (1, 1), "VALID", 0),
    ((3, 3, 16), (4, 4), 33, (2, 2), "SAME", 0),
    ((4, 4, 5), (5, 3), 6, (3, 2), "VALID", 1),
    ((6, 5, 7), (1, 1), 3, (2, 3), "SAME", 0),
    ((2, 3, 40), (3, 3), 64, (2, 1), "SAME", 0),
]


def _out_extent(size: int, k: int, s: int, pad: str, extra: int) -> int:
    return (size * s if pad == "SAME" else (size - 1) * s + k) + extra


def _float_weights(net: Net, rng, shape):
    return net.const(rng.standard_normal(shape).astype(np.float32), "float32")


def _int16_weights(net: Net, rng, shape, per_channel: bool):
    data = rng.integers(-127, 128, shape).astype(np.int8)
    ws = [float(F32(10 ** rng.uniform(-3, -1.5))) for _ in range(shape[0] if per_channel else 1)]
    idx = net.tensor(shape, "int8", data=data)
    net.tensors[idx].update(scale=ws, zero_point=[0] * len(ws), quantized_dimension=0)
    return idx


def tconv_net(scheme: str, batch: int, cases=CASES, seed: int = 0) -> Net:
    """Every case of CASES twice (with and without bias), cycling through the activations."""
    rng = np.random.default_rng(seed + SCHEMES.index(scheme))
    net = Net()
    for n, (case, with_bias) in enumerate(itertools.product(cases, [True, False])):
        (h, w, ic), (kh, kw), oc, (sh, sw), pad, extra = case
        oh, ow = _out_extent(h, kh, sh, pad, extra), _out_extent(w, kw, sw, pad, extra)
        act = ACTIVATIONS[n % 4]
        shape = net.const(np.array([batch, oh, ow, oc], np.int32), "int32")
        bias = None
        if scheme == "float32":
            x = net.input([batch, h, w, ic], "float32")
            wt = _float_weights(net, rng, (oc, kh, kw, ic))
            if with_bias:
                bias = net.const(rng.standard_normal(oc).astype(np.float32), "float32")
            y = net.tensor([batch, oh, ow, oc], "float32")
        elif scheme == "int16":
            x = net.input([batch, h, w, ic], "int16", float(F32(10 ** rng.uniform(-4.5, -3.5))), 0)
            wt = _int16_weights(net, rng, (oc, kh, kw, ic), per_channel=n % 3 != 2)
            if with_bias:
                bias = net.const(rng.integers(-(1 << 30), 1 << 30, oc), "int64")
            y = net.tensor([batch, oh, ow, oc], "int16", float(F32(10 ** rng.uniform(-3.5, -2))), 0)
        else:
            dtype, s_in, zp_in = io_types(scheme, rng)
            x = net.input([batch, h, w, ic], dtype, s_in, zp_in)
            taps = kh * kw * ic / (sh * sw)
            wt, bias_scales, s_out = weights(net, rng, scheme, (oc, kh, kw, ic), 0, s_in, max(taps, 1))
            if with_bias:
                bias = bias_tensor(net, rng, bias_scales, oc)
            info = np.iinfo(dtype)
            y = net.tensor([batch, oh, ow, oc], dtype, s_out, int(rng.integers(info.min, int(info.max) + 1)))
        inputs = [shape, wt, x] + ([bias] if bias is not None else [])
        label = (
            f"tconv {scheme} {(h, w, ic)} k{kh}x{kw} oc{oc} s{sh}{sw} {pad}{extra:+d} bias={with_bias} {act}"
        )
        net.op(
            "TRANSPOSE_CONV",
            inputs,
            [y],
            label,
            padding=pad,
            stride_h=sh,
            stride_w=sw,
            fused_activation_function=act,
        )
    return net


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_transpose_conv(scheme, batch, kernel_build):
    net = tconv_net(scheme, batch)
    check(net, run_sets(net, 30 + batch, batches=(batch, batch)))


@pytest.mark.usefixtures("gemm_path")
@pytest.mark.parametrize("scheme", ["uint8", "int8_per_channel"])
def test_transpose_conv_gemm_forms(scheme):
    """The 8-bit path on both GEMM forms: uint8 x int8 (VNNI) and int16 x int16."""
    net = tconv_net(scheme, 2, seed=5)
    check(net, run_sets(net, 40, batches=(2,)))


def _one(scheme="int8_per_channel", **change) -> Net:
    net = tconv_net(scheme, 1, cases=CASES[:1])
    net.ops = net.ops[:1]
    net.outputs, net.labels = net.outputs[:1], net.labels[:1]
    for key, value in change.items():
        if key == "shape_input":  # output_shape as a graph input: dynamic
            net.tensors[net.ops[0]["inputs"][0]].pop("data")
            net.inputs.insert(0, net.ops[0]["inputs"][0])
        elif key == "shape":
            net.tensors[net.ops[0]["inputs"][0]].update(data=np.array(value, np.int32), shape=[len(value)])
        else:
            net.ops[0]["options"][key] = value
    return net


@pytest.mark.parametrize(
    "change, message",
    [
        ({"shape_input": True}, "output_shape must be a constant"),
        ({"shape": [1, 8, 10, 4]}, "channels"),
        ({"shape": [2, 8, 10, 5]}, "batch"),
        ({"shape": [1, 8, 10]}, "4 values"),
        ({"fused_activation_function": "TANH"}, "fused activation"),
        ({"stride_h": 0}, "stride_h"),
    ],
)
def test_transpose_conv_refusals(change, message):
    net = _one(**change)
    with pytest.raises(UnsupportedError, match=message) as info:
        engine.load(net.build())
    assert "TRANSPOSE_CONV" in str(info.value)


# --- numerics="tflm": TFLite Micro runs the same reference functions --------------------------------------


@pytest.mark.usefixtures("tflm")
@pytest.mark.parametrize("scheme", ["int8_per_tensor", "int8_per_channel", "int16", "float32"])
def test_transpose_conv_tflm(scheme):
    from tests.test_tflm import check_tflm

    net = tconv_net(scheme, 1, seed=9)
    check_tflm(net, run_sets(net, 80, batches=(1, 1)), differs=False)


@pytest.mark.usefixtures("tflm")
def test_transpose_conv_uint8_refused_like_tflite_micro():
    from tests.oracle import OracleError, micro_run

    net = _one("uint8")
    model = net.build()
    with pytest.raises(OracleError):
        micro_run(model, net.random_inputs(np.random.default_rng(0), 1))
    with pytest.raises(UnsupportedError, match="TRANSPOSE_CONV.*uint8|uint8.*TRANSPOSE_CONV"):
        engine.load(model, numerics="tflm")
    engine.load(model)  # the reference runs it


def test_transpose_conv_macs():
    """engine.inspect / stats count every input value times every tap of every output channel."""
    from engine.stats import model_macs

    m = engine.load(_one("int8_per_channel").build())  # input [1, 4, 5, 3], weights [5, 3, 3, 3]
    assert model_macs(m) == 4 * 5 * 3 * 5 * 3 * 3 and model_macs(m, batch=2) == 2 * model_macs(m)


@pytest.mark.parametrize("scheme", ["uint8", "int8_per_channel", "int16", "float32"])
def test_transpose_conv_graph_of_batch_one_runs_any_batch(scheme):
    """A graph stored at batch 1 (output_shape [1, ...]) runs at batch 3 in the engine; the reference
    cannot resize it (it would write 3 batches into a 1-batch output), so it runs the same weights
    stored at batch 3: the outputs are equal."""
    from tests.harness import cached_reference

    one, three = tconv_net(scheme, 1), tconv_net(scheme, 3)
    sets = run_sets(three, 33, batches=(3,))
    refs = cached_reference(three.build(), sets)
    got = engine.load(one.build()).run(list(sets[0]))
    for label, g, w in zip(one.labels, got, refs[0]["outputs"], strict=True):
        assert g.shape == w.shape and np.array_equal(g, w), label
