"""numerics="tflm" against TFLite Micro on the ops and types of issue 10's last gaps (SUM,
L2_NORMALIZATION, the int16 elementwise ops): one-op graphs at batch 1, bit for bit, with the
reference profile differing exactly where the two runtimes' kernels differ."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from tests.harness import Net
from tests.oracle import OracleError, micro_run_many
from tests.test_tflm import check_tflm, random_sets

pytestmark = pytest.mark.usefixtures("tflm")


def _sum_net(dtype: str, qs) -> Net:
    net = Net()
    for shape, axes, keep in (
        ([1, 4, 5, 6], [1, 2], True),
        ([1, 4, 5, 6], [3, -3], False),
        ([1, 9], [0, 1], False),
    ):
        for qi, qo in qs:
            x = net.input(shape, dtype, *qi)
            ax = {a % len(shape) for a in axes}
            out = (
                [1 if d in ax else n for d, n in enumerate(shape)]
                if keep
                else [n for d, n in enumerate(shape) if d not in ax]
            )
            ins = [x, net.const(np.array(axes, np.int32), "int32")]
            net.op("SUM", ins, [net.tensor(out, dtype, *qo)], f"SUM {shape} {axes} {qi} {qo}", keep_dims=keep)
    return net


def test_sum_int8():
    """int8: TFLite Micro sums the int8 values; LiteRT's reference reads them as uint8 bytes."""
    net = _sum_net("int8", [((0.05, -2), (0.3, 7)), ((0.01, 100), (1.0, -128)), ((0.05, -2), (0.05, -2))])
    check_tflm(net, random_sets(net, 50), differs=True)


def test_sum_float32():
    """float32: TFLite Micro starts every sum from 0, also when every axis is reduced (the reference's
    ReduceAllDims starts from the first element: a [1, 9] of -0.0 sums to -0.0 there, +0.0 in TFLM)."""
    net = _sum_net("float32", [((None, None), (None, None))])
    sets = random_sets(net, 51)
    sets[0][2][:] = -0.0
    check_tflm(net, sets, differs=False)  # equal values (-0.0 == 0.0)
    want = micro_run_many(net.build(), sets[:1])[0]["outputs"][2]
    tflm = engine.load(net.build(), numerics="tflm").run(list(sets[0]))[2]
    ref = engine.load(net.build()).run(list(sets[0]))[2]
    assert not np.signbit(want) and not np.signbit(tflm) and np.signbit(ref)


def test_sum_int16():
    """int16: TFLite Micro rescales the int16 sums (the reference profile refuses int16 SUM)."""
    net = _sum_net("int16", [((0.01, 0), (0.3, 0)), ((0.002, 0), (0.002, 0))])
    model = net.build()
    sets = random_sets(net, 52)
    wants = micro_run_many(model, sets)
    m = engine.load(model, numerics="tflm")
    for xs, want in zip(sets, wants):
        for label, got, w in zip(net.labels, m.run(list(xs)), want["outputs"]):
            assert np.array_equal(got, w), label
    with pytest.raises(engine.UnsupportedError, match="SUM"):
        engine.load(model)


def test_sum_int32_refused():
    net = _sum_net("int32", [((None, None), (None, None))])
    with pytest.raises(OracleError):
        micro_run_many(net.build(), random_sets(net, 53, 1))
    with pytest.raises(engine.UnsupportedError, match="TFLite Micro"):
        engine.load(net.build(), numerics="tflm")


def test_l2_normalization():
    """int8 and float32: TFLite Micro's arithmetic is the reference's (an output scale other than 1/128
    is the reference's refusal only: TFLM writes the same bytes)."""
    for dtype, qo in (("int8", (1 / 128, 0)), ("float32", (None, None))):
        net = Net()
        for k, shape in enumerate(([1, 4, 5, 16], [1, 300], [1, 3, 1])):
            qi = ((0.05, -3), (0.02, 100))[k % 2] if dtype == "int8" else (None, None)
            x = net.input(shape, dtype, *qi)
            net.op("L2_NORMALIZATION", [x], [net.tensor(shape, dtype, *qo)], f"L2 {shape} {qi}")
        check_tflm(net, random_sets(net, 54), differs=False)
    net = Net()
    x = net.input([1, 16], "int8", 0.05, -3)
    net.op("L2_NORMALIZATION", [x], [net.tensor([1, 16], "int8", 0.5, 7)], "L2 output 0.5, 7")
    sets = random_sets(net, 55)
    want = micro_run_many(net.build(), sets)
    m = engine.load(net.build(), numerics="tflm")
    assert all(np.array_equal(m.run(xs[0])[0], w["outputs"][0]) for xs, w in zip(sets, want))
    with pytest.raises(engine.UnsupportedError, match="1/128"):
        engine.load(net.build())


def test_l2_normalization_rank_5_refused():
    net = Net()
    x = net.input([1, 2, 2, 2, 4], "int8", 0.05, 0)
    net.op("L2_NORMALIZATION", [x], [net.tensor([1, 2, 2, 2, 4], "int8", 1 / 128, 0)], "L2 5-D")
    with pytest.raises(OracleError):
        micro_run_many(net.build(), random_sets(net, 56, 1))
    with pytest.raises(engine.UnsupportedError, match="TFLite Micro"):
        engine.load(net.build(), numerics="tflm")
    engine.load(net.build())


@pytest.mark.parametrize(
    "op, dtype, q",
    [
        ("EXP", "int8", ((0.02, -10), (0.05, -128))),
        ("EXP", "int16", ((1e-4, 0), (1e-4, 0))),
        ("SQRT", "int8", ((0.05, -3), (0.02, 5))),
        ("SQRT", "int16", ((0.001, 0), (0.001, 0))),
    ],
)
def test_unary_types_tflite_micro_lacks(op, dtype, q):
    net = Net()
    x = net.input([1, 8], dtype, *q[0])
    net.op(op, [x], [net.tensor([1, 8], dtype, *q[1])], f"{op} {dtype}")
    xs = [np.arange(8, dtype=dtype).reshape(1, 8) + np.array(q[0][1], dtype)]
    with pytest.raises(OracleError):
        micro_run_many(net.build(), [xs])
    with pytest.raises(engine.UnsupportedError, match="TFLite Micro"):
        engine.load(net.build(), numerics="tflm")
    engine.load(net.build()).run(xs[0])  # the reference profile runs it


def test_concatenation_int16_differing_scales():
    net = Net()
    ins = [net.input([1, 3, 4], "int16", 0.001, 0), net.input([1, 3, 2], "int16", 0.003, 0)]
    net.op("CONCATENATION", ins, [net.tensor([1, 3, 6], "int16", 0.002, 0)], "CONCAT int16", axis=2)
    check_tflm(net, random_sets(net, 57), differs=False)


def test_rsqrt_int16_refused():
    """The TFLite Micro build runs RSQRT int16 (its published source refuses it) with an integer formula the
    engine does not reproduce bit for bit: numerics='tflm' refuses it; the reference profile runs it."""
    net = Net()
    x = net.input([1, 8], "int16", 0.001, 0)
    net.op("RSQRT", [x], [net.tensor([1, 8], "int16", 0.001, 0)], "RSQRT int16")
    with pytest.raises(engine.UnsupportedError, match="TFLite Micro"):
        engine.load(net.build(), numerics="tflm")
    engine.load(net.build())


# (input, alpha, output) quantizations where float32 and double multipliers give different outputs
# (found by evaluating both formulas; the oracle decides which one TFLite Micro computes)
PRELU_CASES = {
    "int8": [
        ((0.0465322881937027, -85), (0.00964802224189043, 4), (0.009040876291692257, -121)),
        ((0.01961659826338291, 17), (0.006625412963330746, 107), (0.0720609724521637, -39)),
        ((0.05613632872700691, 18), (0.035347577184438705, 119), (0.01724565215408802, -74)),
    ],
    "int16": [
        ((0.0010559497168287635, 0), (0.7102170586585999, 82), (0.0019423130434006453, 0)),
        ((0.0006582612404599786, 0), (0.04454316571354866, 93), (0.0011353198206052184, 0)),
        ((0.0004040077037643641, 0), (0.02293473109602928, -30), (0.0018538875738158822, 0)),
    ],
}


@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_prelu(dtype):
    """TFLite Micro divides PRELU's multipliers in double, the reference in float32: every (input, alpha)
    pair of int8 (int16: every 16th negative input) through TFLite Micro and both profiles."""
    net = Net()
    if dtype == "int8":
        x = np.repeat(np.arange(-128, 128), 256).astype(np.int8).reshape(1, 256, 256)
    else:
        x = np.repeat(np.arange(-32768, 0, 16), 256).astype(np.int16).reshape(1, 2048, 256)
    alpha = np.broadcast_to(np.arange(-128, 128, dtype=np.int8), x.shape).copy()
    for qi, qa, qo in PRELU_CASES[dtype]:
        xi = net.input(list(x.shape), dtype, *qi)
        ai = net.input(list(x.shape), "int8", *qa)
        net.op("PRELU", [xi, ai], [net.tensor(list(x.shape), dtype, *qo)], f"PRELU {qi} {qa} {qo}")
    check_tflm(net, [[x, alpha] * 3], differs=True)


def test_div_int16_refused():
    net = Net()
    a, b = net.input([1, 4], "int16", 0.001, 0), net.input([1, 4], "int16", 0.002, 0)
    net.op("DIV", [a, b], [net.tensor([1, 4], "int16", 0.001, 0)], "DIV int16")
    xs = [np.array([[1, 2, 3, 4]], np.int16), np.array([[5, 6, 7, 8]], np.int16)]
    with pytest.raises(OracleError):
        micro_run_many(net.build(), [xs])
    with pytest.raises(engine.UnsupportedError, match="TFLite Micro"):
        engine.load(net.build(), numerics="tflm")
    engine.load(net.build()).run(xs)


@pytest.mark.parametrize("op", ["RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH", "SOFTMAX"])
def test_float_activations(op):
    """TFLite Micro's float32 kernels compute as the reference's."""
    net = Net()
    for shape in ([1, 40, 30], [1, 7]):
        x = net.input(shape, "float32")
        net.op(
            op,
            [x],
            [net.tensor(shape, "float32")],
            f"{op} {shape}",
            **({"beta": 0.7} if op == "SOFTMAX" else {}),
        )
    sets = [[x * np.float32(8) for x in xs] for xs in random_sets(net, 60)]
    sets[0][0].reshape(-1)[:8] = np.array(
        [0.0, -0.0, -3.0, 6.0, 16.61905, -9.000001, 88.8, -104.0], np.float32
    )
    check_tflm(net, sets, differs=False)


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
def test_float_pooling(op):
    net = Net()
    x = net.input([1, 9, 11, 5], "float32")
    opts = {"filter_height": 3, "filter_width": 2, "stride_h": 2, "stride_w": 1, "padding": "SAME"}
    net.op(
        op,
        [x],
        [net.tensor([1, 5, 11, 5], "float32")],
        f"{op} float",
        fused_activation_function="RELU6",
        **opts,
    )
    check_tflm(net, [[x * np.float32(4) for x in xs] for xs in random_sets(net, 61)], differs=False)


def test_mean_float32():
    net = Net()
    for shape, axes, keep in (
        ([1, 4, 5, 6], [1, 2], True),
        ([1, 4, 5, 6], [3, -3], False),
        ([1, 9], [0, 1], False),
    ):
        x = net.input(shape, "float32")
        ax = {a % len(shape) for a in axes}
        out = (
            [1 if d in ax else n for d, n in enumerate(shape)]
            if keep
            else [n for d, n in enumerate(shape) if d not in ax]
        )
        net.op(
            "MEAN",
            [x, net.const(np.array(axes, np.int32), "int32")],
            [net.tensor(out, "float32")],
            f"MEAN {axes}",
            keep_dims=keep,
        )
    check_tflm(net, [[x * np.float32(100) for x in xs] for xs in random_sets(net, 62)], differs=False)


def test_mean_int32_refused():
    net = Net()
    x = net.input([1, 4, 5], "int32")
    net.op(
        "MEAN", [x, net.const(np.array([1], np.int32), "int32")], [net.tensor([1, 5], "int32")], "MEAN int32"
    )
    with pytest.raises(OracleError):
        micro_run_many(net.build(), random_sets(net, 63, 1))
    with pytest.raises(engine.UnsupportedError, match="TFLite Micro"):
        engine.load(net.build(), numerics="tflm")


def test_float_convolutions():
    from tests.test_ops_more import _float_conv_net

    net = _float_conv_net(np.random.default_rng(39))
    for o in net.ops:  # TFLite Micro reads depth_multiplier 0 literally (refused: below)
        if o["op"] == "DEPTHWISE_CONV_2D":
            o["options"].setdefault("depth_multiplier", 1)
    check_tflm(net, random_sets(net, 64), differs=False)


def test_depth_multiplier_zero_refused():
    net = Net()
    x = net.input([1, 4, 4, 3], "float32")
    w = net.const(np.ones((1, 2, 2, 3), np.float32), "float32")
    net.op(
        "DEPTHWISE_CONV_2D",
        [x, w, -1],
        [net.tensor([1, 3, 3, 3], "float32")],
        "DW",
        padding="VALID",
        stride_h=1,
        stride_w=1,
    )
    with pytest.raises(engine.UnsupportedError, match="depth_multiplier 0"):
        engine.load(net.build(), numerics="tflm")
    engine.load(net.build())
