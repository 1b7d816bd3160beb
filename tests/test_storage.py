"""Tensors stored flipped (engine/storage.py): int8 tensors that go from convolutions and ADDs to convolutions
and ADDs only, held as uint8 value + 128 so that the readers skip their input's copy, against the reference
kernels: chains of every producer and reader form (a one-channel depthwise into a convolution whose max
pool runs with it, depthwise into pointwise into pointwise, one tensor read by two convolutions, a padded
reader, pointwise rows, a residual block), at batch 1 and 3, serial and threaded, both GEMM forms, under
TFLite Micro's profile; random convolution chains; what must stay int8 stays; observe and keep_all runs
see every tensor's int8 values."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.kernels import gemm
from engine.storage import flippable
from tests.every_tensor import assert_every_tensor_equal
from tests.graph_fuzz import OPS, Case, G, T, check_case, merge
from tests.harness import Net, check, run_sets
from tests.oracle import reference_run_many
from tests.test_ops_conv import bias_tensor, io_types, weights
from tests.test_tflm import versus_tflm

INT8 = ["int8_per_tensor", "int8_per_channel"]


def layer(
    net: Net,
    rng,
    scheme: str,
    x: int,
    c_out: int,
    k: int = 1,
    stride: int = 1,
    pad: str = "VALID",
    act: str = "NONE",
    depthwise: bool = False,
    zero_point: int | None = None,
) -> int:
    """A CONV_2D (or DEPTHWISE_CONV_2D, depth multiplier c_out / c_in) of x; returns its output, which no
    op reads yet and is no graph output."""
    _, h, w, c_in = net.tensors[x]["shape"]
    s_in = net.tensors[x]["scale"][0]
    shape = (1, k, k, c_out) if depthwise else (c_out, k, k, c_in)
    wt, bias_scales, s_out = weights(
        net, rng, scheme, shape, 3 if depthwise else 0, s_in, k * k * (1 if depthwise else c_in)
    )
    oh, ow = (-(-n // stride) if pad == "SAME" else (n - k) // stride + 1 for n in (h, w))
    # zero points near the middle unless asked (outputs then spread rather than saturate)
    zp = int(rng.integers(-30, 31)) if zero_point is None else zero_point
    dtype = net.tensors[x]["dtype"]
    y = net.tensor([1, oh, ow, c_out], dtype, s_out, zp + (128 if dtype == "uint8" else 0))
    options = {"padding": pad, "stride_h": stride, "stride_w": stride, "fused_activation_function": act}
    if depthwise:
        options["depth_multiplier"] = c_out // c_in
    net.ops.append(
        {
            "op": "DEPTHWISE_CONV_2D" if depthwise else "CONV_2D",
            "inputs": [x, wt, bias_tensor(net, rng, bias_scales, c_out)],
            "outputs": [y],
            "options": options,
        }
    )
    return y


def output(net: Net, y: int, label: str) -> None:
    net.outputs.append(y)
    net.labels.append(label)


def source(net: Net, rng, scheme: str, shape: list) -> int:
    dtype, s_in, _ = io_types(scheme, rng)
    return net.input(shape, dtype, s_in, int(rng.integers(-20, 21)) + (128 if dtype == "uint8" else 0))


def chains(scheme: str, seed: int) -> tuple[Net, int]:
    """Four chains; returns the net and how many of its tensors an int8 plan stores flipped."""
    rng = np.random.default_rng(seed)
    net = Net()
    # MNIST's layers: a one-channel depthwise (a GEMM convolution) into a convolution run with its max pool
    t = layer(net, rng, scheme, source(net, rng, scheme, [1, 12, 12, 1]), 8, 3, depthwise=True)
    y = layer(net, rng, scheme, t, 16, 3, act="RELU", zero_point=-128)
    pooled = net.tensor(
        [1, 4, 4, 16], net.tensors[y]["dtype"], net.tensors[y]["scale"][0], net.tensors[y]["zero_point"][0]
    )
    net.op(
        "MAX_POOL_2D",
        [y],
        [pooled],
        "depthwise 1ch -> conv 3x3 -> max pool",
        padding="VALID",
        stride_h=2,
        stride_w=2,
        filter_height=2,
        filter_width=2,
        fused_activation_function="NONE",
    )
    # a MobileNet block: expand (read by a depthwise: stays), depthwise s2 -> project -> pointwise
    a = layer(net, rng, scheme, source(net, rng, scheme, [1, 9, 9, 16]), 32, act="RELU6", zero_point=-128)
    b = layer(net, rng, scheme, a, 32, 3, stride=2, pad="SAME", act="RELU6", depthwise=True)
    c = layer(net, rng, scheme, b, 24)
    output(net, layer(net, rng, scheme, c, 40, act="RELU"), "depthwise -> pointwise -> pointwise")
    # one tensor read by a pointwise and a padded 3x3 convolution
    d = layer(net, rng, scheme, source(net, rng, scheme, [1, 6, 7, 4]), 16, 3, pad="SAME", act="RELU")
    output(net, layer(net, rng, scheme, d, 8), "conv -> pointwise")
    output(net, layer(net, rng, scheme, d, 8, 3, pad="SAME", act="RELU_N1_TO_1"), "conv -> padded conv")
    # a strided convolution into a pointwise one on 7 x 7 pixels (run as other rows), 17 channels
    e = layer(net, rng, scheme, source(net, rng, scheme, [1, 14, 14, 8]), 24, 3, stride=2, pad="SAME")
    output(net, layer(net, rng, scheme, e, 17, zero_point=127), "strided conv -> pointwise rows")
    # a residual block: r0 read by the expansion and the ADD, the ADD's output by a convolution
    r0 = layer(net, rng, scheme, source(net, rng, scheme, [1, 6, 6, 8]), 16)
    expanded = layer(net, rng, scheme, r0, 32, act="RELU6", zero_point=-128)
    p = layer(net, rng, scheme, layer(net, rng, scheme, expanded, 32, 3, pad="SAME", depthwise=True), 16)
    r1 = net.tensor([1, 6, 6, 16], "uint8" if scheme == "uint8" else "int8", 0.08, int(rng.integers(-20, 21)))
    net.ops.append(
        {"op": "ADD", "inputs": [p, r0], "outputs": [r1], "options": {"fused_activation_function": "NONE"}}
    )
    output(net, layer(net, rng, scheme, r1, 8), "residual block -> pointwise")
    return net, 9


def flipped(model: bytes, batch: int = 1, numerics: str = "reference") -> int:
    return len(engine.load(model, numerics=numerics, warmup=False).plan(batch).graph.flipped)


@pytest.mark.parametrize("scheme", INT8)
def test_flipped_reference(scheme, kernel_build):
    net, count = chains(scheme, 40 + INT8.index(scheme))
    model = net.build()
    assert flipped(model) == count and flipped(model, 3) == count
    check(net, run_sets(net, 42, (1, 3)))


@pytest.mark.usefixtures("tflm")
def test_flipped_tflm():
    """numerics="tflm" stores the same tensors flipped and equals TFLite Micro."""
    net, count = chains("int8_per_channel", 49)
    assert flipped(net.build(), numerics="tflm") == count
    counts = versus_tflm(net, run_sets(net, 50, (1, 1)))
    assert not {k: v[0] for k, v in counts.items() if v[0]}, counts


def test_flipped_int16_operands(monkeypatch):
    """The GEMM's int16 form (no VNNI): the readers copy the stored bytes less the stored zero point."""
    monkeypatch.setattr(gemm, "VNNI", False)
    net, _ = chains("int8_per_channel", 43)
    check(net, run_sets(net, 44, (1, 2)))


def test_every_tensor_observed_and_kept():
    """observe (on the production plan, flipped tensors un-flipped as handed out) and keep_all (nothing
    flipped) give every tensor equal to the reference's; numerics="litert" stores nothing flipped."""
    net, count = chains("int8_per_tensor", 45)
    model = net.build()
    m = engine.load(model)
    assert len(m.plan(2).graph.flipped) == count and not m.plan(2, keep_all=True).graph.flipped
    for xs in run_sets(net, 46, (1, 2)):
        refs = reference_run_many(model, [[x[k : k + 1] for x in xs] for k in range(xs[0].shape[0])], True)
        assert assert_every_tensor_equal(m, xs, refs) == len(net.inputs) + len(net.ops)
        for name, got in m.run(list(xs), keep_all=True).items():
            assert np.array_equal(got, np.concatenate([r["tensors"][name] for r in refs])), name
    assert flipped(model, numerics="litert") == 0


def test_not_flipped():
    """A convolution's output that is also a graph output, one an ADD of it with a graph input reads too
    (an ADD's tensors are flipped alike), one a depthwise reads, and uint8 tensors: each stays as it is,
    and exact."""
    rng = np.random.default_rng(47)
    net = Net()
    scheme = "int8_per_channel"
    t = layer(net, rng, scheme, source(net, rng, scheme, [1, 5, 5, 8]), 8, 3, pad="SAME")
    output(net, t, "a graph output")
    output(net, layer(net, rng, scheme, t, 8), "conv of a graph output")
    t = layer(net, rng, scheme, source(net, rng, scheme, [1, 5, 5, 8]), 8)
    net.op(
        "ADD",
        [t, net.input([1, 5, 5, 8], "int8", 0.04, -5)],
        [net.tensor([1, 5, 5, 8], "int8", 0.05, 3)],
        "ADD of a conv output",
        fused_activation_function="NONE",
    )
    output(net, layer(net, rng, scheme, t, 8), "conv of an ADD's input")
    t = layer(net, rng, scheme, source(net, rng, scheme, [1, 5, 5, 8]), 8)
    output(net, layer(net, rng, scheme, t, 8, 3, depthwise=True), "depthwise of a conv output")
    t = layer(net, rng, "uint8", source(net, rng, "uint8", [1, 5, 5, 8]), 8, 3, pad="SAME")
    output(net, layer(net, rng, "uint8", t, 8), "uint8 conv -> conv")
    assert flipped(net.build()) == 0
    check(net, run_sets(net, 48, (1, 3)))


def conv_chains(seed: int, chains: int = 12) -> Case:
    """Random int8 chains of 2-4 convolutions and depthwise convolutions (graph_fuzz's builders: random
    windows, strides, dilations and padding, per-channel or not, zero points at the type's ends too)."""
    rng = np.random.default_rng(seed)
    nets = []
    for _ in range(chains):
        g = G(rng, Net())
        shape = [1, int(rng.integers(3, 12)), int(rng.integers(3, 12)), int(rng.integers(1, 20))]
        scale, zp = g.scale(), g.zp("int8")
        t = T(g.net.input(shape, "int8", scale, zp), shape, "int8", scale, zp)
        for _ in range(int(rng.integers(2, 5))):
            t = OPS[g.pick(["CONV_2D", "CONV_2D", "DEPTHWISE_CONV_2D"])](g, t) or t
        g.net.outputs.append(t.index)
        g.net.labels.append(" -> ".join(g.desc))
        nets.append(g.net)
    return Case(seed, nets, [net.labels[0] for net in nets])


def test_fuzzed_conv_chains():
    """Random convolution chains (conv_chains), every tensor through the production plan at batch 1 and 3
    against the reference kernels; the cases store 10 tensors flipped at least."""
    cases = [conv_chains(seed) for seed in (50, 51)]
    assert sum(len(flippable(engine.load(merge(c.chains).build(), warmup=False).graph)) for c in cases) >= 10
    failures = [f for c in cases for f in check_case(c)]
    assert not failures, "\n".join(failures)
