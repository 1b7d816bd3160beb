"""More elementwise and activation ops of issue 10 against TFLite's reference kernels, bit for bit:
one model per op holding its variants side by side, batch 1 and batch > 1."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from tests.harness import Net, cached_reference, check, run_sets
from tests.oracle import OracleError, reference_run_many

pytestmark = pytest.mark.usefixtures("litert")

# (input scale, zp), (output scale, zp) per type: in and out differ so both multipliers matter
LEAKY_Q = {
    "uint8": [((0.05, 130), (0.04, 100)), ((0.1, 3), (0.3, 250))],
    "int8": [((0.05, -2), (0.04, 10)), ((0.02, 100), (0.07, -128))],
    "int16": [((0.001, 0), (0.0008, 0)), ((0.01, 0), (0.02, 0))],
}


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "float32"])
def test_leaky_relu(dtype):
    net = Net()
    alphas = (0.2, 0.01, 1.5, -0.3, 0.0)
    for k, alpha in enumerate(alphas):
        shape = [1, 3, 4, 5] if k % 2 else [1, 40]
        if dtype == "float32":
            qi = qo = (None, None)
        else:
            qi, qo = LEAKY_Q[dtype][k % 2]
        x = net.input(shape, dtype, *qi)
        net.op("LEAKY_RELU", [x], [net.tensor(shape, dtype, *qo)], f"LEAKY_RELU alpha={alpha}", alpha=alpha)
    sets = run_sets(net, 21, (1, 4))
    if dtype == "float32":
        sets = [[x * np.float32(5) for x in xs] for xs in sets]
    check(net, sets)


# --- SQUARED_DIFFERENCE ---------------------------------------------------------------------------

SQDIFF_SHAPES = [([1, 4, 5], [1, 4, 5]), ([1, 4, 5], [5]), ([1, 1, 3, 1], [1, 2, 1, 4]), ([1, 3], [])]
SQDIFF_Q = [((0.05, -2), (0.05, 7), (0.02, -128)), ((0.1, 30), (0.03, -50), (0.5, -100))]


@pytest.mark.parametrize("dtype", ["int8", "float32", "int32"])
def test_squared_difference(dtype):
    net = Net()
    for k, (s1, s2) in enumerate(SQDIFF_SHAPES):
        q1, q2, qo = SQDIFF_Q[k % 2] if dtype == "int8" else ((None, None),) * 3
        a = net.input(s1, dtype, *q1)
        if len(s2) == len(s1):
            b = net.input(s2, dtype, *q2)
        else:  # lower rank: a constant (graph inputs change their first dimension with the batch)
            data = (np.arange(int(np.prod(s2))) * 37 % 200 - 100).astype(dtype).reshape(s2)
            b = net.const(data, dtype, *q2)
        out = list(np.broadcast_shapes(tuple(s1), tuple(s2)))
        net.op("SQUARED_DIFFERENCE", [a, b], [net.tensor(out, dtype, *qo)], f"SQDIFF {s1} {s2}")
    sets = run_sets(net, 22, (1, 3))
    if dtype == "float32":
        sets = [[x * np.float32(10) for x in xs] for xs in sets]
    check(net, sets)


# --- EXP ------------------------------------------------------------------------------------------


def test_exp_float32():
    net = Net()
    for shape in ([1, 50, 40], [1, 7]):
        x = net.input(shape, "float32")
        net.op("EXP", [x], [net.tensor(shape, "float32")], f"EXP {shape}")
    rng = np.random.default_rng(23)
    sets = [[(x * np.float32(60)).astype(np.float32) for x in net.random_inputs(rng, b)] for b in (1, 3)]
    sets[0][0][0, 0, :6] = [0.0, -0.0, 88.8, -104.0, 1e-30, 1e30]
    check(net, sets)


def test_exp_int8():  # uint8: the reference refuses it
    net = Net()
    for qi, qo in (((0.02, -10), (0.05, -128)), ((0.05, 100), (1.0, -100))):
        x = net.input([1, 4, 64], "int8", *qi)
        net.op("EXP", [x], [net.tensor([1, 4, 64], "int8", *qo)], f"EXP {qi} {qo}")
    check(net, run_sets(net, 24, (1, 2)))


def test_exp_int16():
    """The interpolated 513-entry table, over every int16 input; scales whose exp overflows float32
    at the top of the range (table entries at +inf) included."""
    net = Net()
    for qi, qo in ((1e-4, 1e-4), (3e-4, 0.01), (1 / 4096, 1 / 2048), (0.01, 1.0), (0.002, 3e-5)):
        x = net.input([1, 256, 256], "int16", qi, 0)
        net.op("EXP", [x], [net.tensor([1, 256, 256], "int16", qo, 0)], f"EXP int16 {qi} {qo}")
    every = np.arange(-32768, 32768, dtype=np.int16).reshape(1, 256, 256)
    sets = [[every] * 5, [np.concatenate([every, every[:, ::-1]])] * 5]
    check(net, sets)


# --- REDUCE_MAX -----------------------------------------------------------------------------------

RQ = {"uint8": (0.05, 3), "int8": (0.05, -2), "int16": (0.01, 0)}


@pytest.mark.parametrize("dtype", ["float32", "uint8", "int8", "int16", "int32"])
def test_reduce_max(dtype):
    net = Net()
    q = RQ.get(dtype, (None, None))
    cases = [  # shape, axes, keep_dims
        ([1, 4, 5, 6], [1, 2], True),
        ([1, 4, 5, 6], [1, 2], False),
        ([1, 4, 5, 6], [-1], False),
        ([1, 4, 5, 6], [3, 1, -1], True),
        ([1, 3, 7], [0], False),
        ([1, 3, 7], [0, 2], True),
        ([1, 8], [1, 1], False),
    ]
    for shape, axes, keep in cases:
        x = net.input(shape, dtype, *q)
        ax = {a % len(shape) for a in axes}
        out = (
            [1 if d in ax else n for d, n in enumerate(shape)]
            if keep
            else [n for d, n in enumerate(shape) if d not in ax]
        )
        ins = [x, net.const(np.array(axes, np.int32).reshape(len(axes)), "int32")]
        net.op(
            "REDUCE_MAX",
            ins,
            [net.tensor(out, dtype, *q)],
            f"REDUCE_MAX {shape} {axes} {keep}",
            keep_dims=keep,
        )
    check(net, run_sets(net, 25, (1, 3)))


# --- PRELU ----------------------------------------------------------------------------------------

PRELU_Q = {
    "uint8": ((0.05, 130), (0.01, 120), (0.04, 100)),
    "int8": ((0.05, -2), (0.01, 5), (0.03, 10)),
    "int16": ((0.001, 0), (0.01, 3), (0.0008, 0)),  # alphas int8
}


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "float32"])
def test_prelu(dtype):
    net = Net()
    qi, qa, qo = PRELU_Q.get(dtype, ((None, None),) * 3)
    rng = np.random.default_rng(26)
    for shape, a_shape in (
        ([1, 4, 5, 6], [1, 1, 6]),
        ([1, 4, 5, 6], [6]),
        ([1, 3, 8], [1, 3, 8]),
        ([1, 7], [1]),
    ):
        x = net.input(shape, dtype, *qi)
        if dtype == "float32":
            data = rng.uniform(-2, 2, a_shape).astype(np.float32)
        else:
            a_type = "int8" if dtype == "int16" else dtype
            info = np.iinfo(a_type)
            data = rng.integers(info.min, int(info.max) + 1, a_shape).astype(a_type)
        al = net.const(data, "int8" if dtype == "int16" else dtype, *qa)
        net.op("PRELU", [x, al], [net.tensor(shape, dtype, *qo)], f"PRELU {shape} alpha {a_shape}")
    check(net, run_sets(net, 27, (1, 3)))


# --- SUM ------------------------------------------------------------------------------------------

SUM_CASES = [  # shape, axes, keep_dims
    ([1, 4, 5, 6], [1, 2], True),
    ([1, 4, 5, 6], [1, 2], False),
    ([1, 4, 5, 6], [-1], False),
    ([1, 4, 5, 6], [3, 1, -1], True),
    ([1, 4, 5, 6], [2, 0], False),
    ([1, 3, 7], [0], False),
    ([1, 3, 7], [0, 2, 1], True),
    ([1, 8], [1, 1], False),
]
# (input, output) quantization: differing, and one quantization in and out (rescaled all the same)
SUM_Q = {
    "uint8": [((0.05, 3), (0.4, 100)), ((0.02, 130), (0.5, 10)), ((0.05, 3), (0.05, 3))],
    "int8": [((0.05, -2), (0.3, 7)), ((0.01, 100), (1.0, -128)), ((0.05, -2), (0.05, -2))],
}


@pytest.mark.parametrize("dtype", ["float32", "uint8", "int8", "int32", "int64"])
def test_sum(dtype):
    net = Net()
    for shape, axes, keep in SUM_CASES:
        for qi, qo in SUM_Q.get(dtype, [((None, None), (None, None))]):
            x = net.input(shape, dtype, *qi)
            ax = {a % len(shape) for a in axes}
            out = (
                [1 if d in ax else n for d, n in enumerate(shape)]
                if keep
                else [n for d, n in enumerate(shape) if d not in ax]
            )
            ins = [x, net.const(np.array(axes, np.int32).reshape(len(axes)), "int32")]
            net.op(
                "SUM",
                ins,
                [net.tensor(out, dtype, *qo)],
                f"SUM {shape} {axes} {keep} {qi} {qo}",
                keep_dims=keep,
            )
    sets = run_sets(net, 28, (1, 3))
    if dtype == "float32":
        sets[0][0][0, 0, 0, :3] = [-0.0, 1e30, -1e30]
    check(net, sets)


def test_sum_float_all_axes():
    """Every axis reduced: ReduceAllDims starts from the first element (a -0.0 alone stays -0.0),
    on enough elements that a split across threads would change the float32 sum."""
    net = Net()
    for shape in ([1, 64, 70], [1, 1], [1, 3]):
        x = net.input(shape, "float32")
        axes = net.const(np.arange(len(shape), dtype=np.int32), "int32")
        net.op("SUM", [x, axes], [net.tensor([], "float32")], f"SUM all {shape}", keep_dims=False)
    sets = run_sets(net, 29, (1, 2))
    sets[0][1][:] = -0.0
    check(net, sets)
    ref = cached_reference(net.build(), sets)[0]["outputs"][1]  # check() compares -0.0 == 0.0
    got = engine.load(net.build()).run(list(sets[0]))[1]
    assert np.signbit(ref) and np.signbit(got)


# --- L2_NORMALIZATION -----------------------------------------------------------------------------

L2_IN = {"uint8": [(0.05, 128), (0.1, 3)], "int8": [(0.05, -3), (0.02, 100)]}
L2_OUT = {"uint8": (1 / 128, 128), "int8": (1 / 128, 0)}


@pytest.mark.parametrize("dtype", ["float32", "uint8", "int8"])
def test_l2_normalization(dtype):
    net = Net()
    for k, shape in enumerate(([1, 4, 5, 16], [1, 300], [1, 3, 1], [1, 2, 3, 4, 5], [1])):
        qi = L2_IN[dtype][k % 2] if dtype in L2_IN else (None, None)
        qo = L2_OUT.get(dtype, (None, None))
        x = net.input(shape, dtype, *qi)
        net.op("L2_NORMALIZATION", [x], [net.tensor(shape, dtype, *qo)], f"L2_NORMALIZATION {shape} {qi}")
    sets = run_sets(net, 30, (1, 3))
    if dtype != "float32":  # rows at the zero point (sum 0) and one step from it (sum 1)
        zp = L2_IN[dtype][0][1]
        sets[0][0][0, 0, 0] = zp
        sets[0][0][0, 0, 1] = zp
        sets[0][0][0, 0, 1, 3] = zp + 1
    else:
        sets[0][0][0, 0, 0] = 0
        sets[0][0][0, 0, 1] = 1e-8
    check(net, sets)


def both_refuse(net: Net, match: str) -> None:
    """The reference fails to prepare or run the graph, and the engine refuses it at load."""
    with pytest.raises(OracleError):
        reference_run_many(net.build(), run_sets(net, 31, (1,)))
    with pytest.raises(engine.UnsupportedError, match=match):
        engine.load(net.build())


@pytest.mark.parametrize(
    "dtype, qo",
    [("int8", (1 / 128, 5)), ("int8", (1 / 64, 0)), ("uint8", (1 / 128, 0)), ("int16", (1 / 32768, 0))],
)
def test_l2_normalization_refused(dtype, qo):
    net = Net()
    x = net.input([1, 8], dtype, 0.05, 0)
    net.op("L2_NORMALIZATION", [x], [net.tensor([1, 8], dtype, *qo)], "L2")
    both_refuse(net, "L2_NORMALIZATION")


# --- type gaps: int16 CONCATENATION of differing scales -------------------------------------------


def test_concatenation_int16_differing_scales():
    """The reference copies int16 raw whatever the scales (zero points 0 required)."""
    net = Net()
    for axis, shapes in ((3, ([1, 2, 3, 4], [1, 2, 3, 5])), (1, ([1, 2, 3], [1, 4, 3], [1, 1, 3]))):
        ins = [net.input(s, "int16", 0.001 * (k + 1), 0) for k, s in enumerate(shapes)]
        out = list(shapes[0])
        out[axis] = sum(s[axis] for s in shapes)
        net.op(
            "CONCATENATION",
            ins,
            [net.tensor(out, "int16", 0.0025, 0)],
            f"CONCAT int16 axis {axis}",
            axis=axis,
        )
    check(net, run_sets(net, 32, (1, 3)))
    bad = Net()
    ins = [bad.input([1, 4], "int16", 0.001, 0), bad.input([1, 4], "int16", 0.002, 3)]
    bad.op("CONCATENATION", ins, [bad.tensor([1, 8], "int16", 0.001, 0)], "CONCAT int16 zp 3", axis=1)
    both_refuse(bad, "zero point 0")


# --- type gaps: SQRT int8/int16, RSQRT int16 ------------------------------------------------------

SQRT_Q = {  # (input, output) per case; the last int8 case overflows int32 (x86's INT32_MIN, then wraps)
    "int8": [((0.05, -3), (0.02, 5)), ((0.5, 100), (0.01, -128)), ((0.1, -128), (1e-12, -3))],
    "int16": [((0.001, 0), (0.0008, 0)), ((0.5, 0), (0.001, 0)), ((1e-5, 0), (1e-4, 0))],
}


@pytest.mark.parametrize("op", ["SQRT", "RSQRT"])
@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_sqrt_rsqrt_quantized(op, dtype):
    """Every input value at or above the zero point (the domain), batch 1 and 3."""
    net = Net()
    for qi, qo in SQRT_Q[dtype]:
        x = net.input([1, 2, 128] if dtype == "int8" else [1, 128, 256], dtype, *qi)
        net.op(op, [x], [net.tensor(net.tensors[x]["shape"], dtype, *qo)], f"{op} {qi} {qo}")
    rng = np.random.default_rng(33)
    sets = []
    for batch in (1, 3):
        xs = []
        for qi, _ in SQRT_Q[dtype]:
            shape = (batch, *net.tensors[net.inputs[len(xs)]]["shape"][1:])
            hi = int(np.iinfo(dtype).max)
            every = np.arange(qi[1], hi + 1)
            xs.append(
                np.resize(
                    np.concatenate([every, rng.integers(qi[1], hi + 1, int(np.prod(shape)))]), shape
                ).astype(dtype)
            )
        sets.append(xs)
    check(net, sets)


@pytest.mark.parametrize("op, dtype", [("SQRT", "int8"), ("SQRT", "int16"), ("RSQRT", "int16")])
def test_sqrt_rsqrt_quantized_negative_input(op, dtype):
    net = Net()
    x = net.input([1, 4], dtype, 0.05, 0)
    net.op(op, [x], [net.tensor([1, 4], dtype, 0.05, 0)], op)
    bad = [np.array([[1, 2, -1, 3]], dtype)]
    with pytest.raises(OracleError):
        reference_run_many(net.build(), [bad])
    m = engine.load(net.build())
    with pytest.raises(engine.InputError, match="negative"):
        m.run(bad[0])


def test_prelu_int16_alpha_refused():
    """An int16 PRELU with int16 alphas: the reference reads them as int8 bytes; the engine refuses it."""
    net = Net()
    x = net.input([1, 4], "int16", 0.001, 0)
    al = net.const(np.array([1, 2, 3, 4], np.int16), "int16", 0.01, 0)
    net.op("PRELU", [x, al], [net.tensor([1, 4], "int16", 0.001, 0)], "PRELU int16 alpha")
    with pytest.raises(engine.UnsupportedError, match="int8 alphas"):
        engine.load(net.build())


@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_prelu_multipliers_in_float32(dtype):
    """Scales where float32 and double multipliers differ (TFLite Micro's double: test_tflm_ops_more):
    the reference's float32 ones, over every (input, alpha) pair (int16: every 16th negative input)."""
    from tests.test_tflm_ops_more import PRELU_CASES

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
    check(net, [[x, alpha] * 3])


# --- type gaps: DIV int16 -------------------------------------------------------------------------


def test_div_int16():
    """Random dividends over the full range against divisors of every magnitude (never the zero point),
    random scales and zero points, fused activations, broadcasting either operand."""
    from tests.harness import qparams

    rng = np.random.default_rng(34)
    net = Net()
    cases = [([1, 64, 64], [1, 64, 64]), ([1, 64, 64], [64]), ([1, 1, 64], [1, 64, 1]), ([1, 3], [])]
    divisors = []  # positions in net.inputs of the divisor inputs
    for k, act in enumerate(["NONE", "RELU", "RELU6", "RELU_N1_TO_1", "NONE", "NONE", "NONE", "NONE"]):
        s1, s2 = cases[k % 4]
        (q1, z1), (q2, z2), (qo, zo) = (qparams(rng, "int16", -4, -1) for _ in range(3))
        a = net.input(s1, "int16", q1, z1)
        if len(s2) == len(s1):
            b = net.input(s2, "int16", q2, z2)
            divisors.append(len(net.inputs) - 1)
        else:
            d = rng.integers(-32768, 32768, s2)
            d[d == z2] = z2 + 1
            b = net.const(d.astype(np.int16), "int16", q2, z2)
        out = list(np.broadcast_shapes(tuple(s1), tuple(s2)))
        y = net.tensor(out, "int16", qo, zo)
        net.op("DIV", [a, b], [y], f"DIV int16 {k} {act}", fused_activation_function=act)
    sets = run_sets(net, 35, (1, 3))
    for xs in sets:  # divisors: no zero point; magnitudes from 1 to 32767
        for k in divisors:
            zp = net.tensors[net.inputs[k]]["zero_point"][0]
            mag = np.exp(rng.uniform(0, np.log(32767), xs[k].shape)).astype(np.int64)
            v = np.clip(zp + np.where(rng.random(xs[k].shape) < 0.5, -mag, mag), -32768, 32767)
            v[v == zp] = zp + 1 if zp < 32767 else zp - 1
            xs[k] = v.astype(np.int16)
    check(net, sets)


# --- float32 activations --------------------------------------------------------------------------

SPECIAL = [0.0, -0.0, 1e-30, -1e-30, 2.9999998, -3.0, -3.0000002, 6.0, 6.0000005, 16.619047, 16.61905, -9.0,
           -9.000001, 88.8, -104.0, 3e38, -3e38]  # fmt: skip


@pytest.mark.parametrize("op", ["RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH", "SOFTMAX"])
def test_float_activations(op):
    net = Net()
    for shape in ([1, 40, 30], [1, 7], [1, 2, 3, 1]):
        x = net.input(shape, "float32")
        opts = {"beta": 0.7} if op == "SOFTMAX" else {}
        net.op(op, [x], [net.tensor(shape, "float32")], f"{op} {shape}", **opts)
    if op == "SOFTMAX":
        x = net.input([1, 5, 9], "float32")
        net.op(op, [x], [net.tensor([1, 5, 9], "float32")], f"{op} beta 1", beta=1.0)
    sets = run_sets(net, 36, (1, 3))
    sets = [[x * np.float32(8) for x in xs] for xs in sets]
    sets[0][0].reshape(-1)[: len(SPECIAL)] = np.array(SPECIAL, np.float32)
    check(net, sets)
    if op != "SOFTMAX":  # signs of zero: check() compares -0.0 == 0.0
        ref = cached_reference(net.build(), sets)[0]["outputs"][0].reshape(-1)[:4]
        got = engine.load(net.build()).run(list(sets[0]))[0].reshape(-1)[:4]
        assert np.array_equal(np.signbit(ref), np.signbit(got))


# --- float32 pooling ------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
def test_float_pooling(op):
    net = Net()
    cases = [  # input, filter, stride, padding, activation
        ([1, 9, 11, 5], (3, 3), (2, 2), "SAME", "NONE"),
        ([1, 9, 11, 5], (3, 2), (1, 2), "VALID", "RELU"),
        ([1, 8, 8, 3], (8, 8), (1, 1), "VALID", "RELU6"),
        ([1, 7, 6, 4], (4, 5), (3, 2), "SAME", "RELU_N1_TO_1"),
    ]
    for shape, (fh, fw), (sh, sw), pad, act in cases:
        x = net.input(shape, "float32")
        oh = (shape[1] + sh - 1) // sh if pad == "SAME" else (shape[1] - fh) // sh + 1
        ow = (shape[2] + sw - 1) // sw if pad == "SAME" else (shape[2] - fw) // sw + 1
        opts = {"filter_height": fh, "filter_width": fw, "stride_h": sh, "stride_w": sw, "padding": pad}
        y = net.tensor([1, oh, ow, shape[3]], "float32")
        net.op(
            op,
            [x],
            [y],
            f"{op} {shape} {fh}x{fw} /{sh}x{sw} {pad} {act}",
            fused_activation_function=act,
            **opts,
        )
    sets = [[x * np.float32(3) for x in xs] for xs in run_sets(net, 37, (1, 3))]
    sets[0][0].reshape(-1)[:4] = [-0.0, 3e38, 3e38, -3e38]
    check(net, sets)


# --- MEAN on float32 / int32 / int64 --------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "int32", "int64"])
def test_mean_plain_types(dtype):
    net = Net()
    for shape, axes, keep in SUM_CASES:
        x = net.input(shape, dtype)
        ax = {a % len(shape) for a in axes}
        out = (
            [1 if d in ax else n for d, n in enumerate(shape)]
            if keep
            else [n for d, n in enumerate(shape) if d not in ax]
        )
        ins = [x, net.const(np.array(axes, np.int32).reshape(len(axes)), "int32")]
        net.op("MEAN", ins, [net.tensor(out, dtype)], f"MEAN {shape} {axes} {keep}", keep_dims=keep)
    x = net.input([1, 64, 70], dtype)
    net.op("MEAN", [x, net.const(np.array([0, 1, 2], np.int32), "int32")], [net.tensor([], dtype)], "MEAN all")
    sets = run_sets(net, 38, (1, 3))
    if dtype == "float32":
        sets = [[v * np.float32(1000) for v in xs] for xs in sets]
        sets[0][0][0, 0, 0, :3] = [-0.0, 3e38, 3e38]
    elif dtype == "int64":  # large values: the int64 sum wraps
        sets = [[v * np.int64(1 << 31) for v in xs] for xs in sets]
    check(net, sets)


# --- float32 convolutions -------------------------------------------------------------------------


def _float_conv_net(rng) -> Net:
    net = Net()
    cases = [  # op, input, filter, options
        ("CONV_2D", [1, 9, 10, 6], [5, 3, 3, 6], {"padding": "SAME", "stride_h": 1, "stride_w": 1}),
        ("CONV_2D", [1, 9, 10, 6], [4, 3, 2, 6], {"padding": "VALID", "stride_h": 2, "stride_w": 1}),
        ("CONV_2D", [1, 9, 10, 6], [4, 3, 3, 3], {"padding": "SAME", "stride_h": 1, "stride_w": 2}),  # 2 groups
        ("CONV_2D", [1, 12, 11, 4], [3, 3, 3, 4], {"padding": "SAME", "dilation_h_factor": 2, "dilation_w_factor": 3}),
        ("DEPTHWISE_CONV_2D", [1, 9, 10, 4], [1, 3, 3, 8], {"padding": "SAME", "depth_multiplier": 2}),
        ("DEPTHWISE_CONV_2D", [1, 9, 10, 4], [1, 2, 3, 4], {"padding": "VALID", "stride_h": 2, "stride_w": 2}),
    ]
    acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1", "NONE", "RELU6"]
    for (op, x_shape, w_shape, opts), act in zip(cases, acts):
        x = net.input(x_shape, "float32")
        w = net.const(rng.standard_normal(w_shape).astype(np.float32), "float32")
        oc = w_shape[0] if op == "CONV_2D" else w_shape[3]
        ins = [x, w, net.const(rng.standard_normal(oc).astype(np.float32), "float32")]
        opts = {"stride_h": 1, "stride_w": 1, **opts}
        sh, sw = opts["stride_h"], opts["stride_w"]
        dh, dw = opts.get("dilation_h_factor", 1), opts.get("dilation_w_factor", 1)
        eh, ew = (w_shape[1] - 1) * dh + 1, (w_shape[2] - 1) * dw + 1
        if opts["padding"] == "SAME":
            oh, ow = -(-x_shape[1] // sh), -(-x_shape[2] // sw)
        else:
            oh, ow = (x_shape[1] - eh) // sh + 1, (x_shape[2] - ew) // sw + 1
        net.op(op, ins, [net.tensor([1, oh, ow, oc], "float32")], f"{op} {w_shape} {opts} {act}",
               fused_activation_function=act, **opts)  # fmt: skip
    for keep, x_shape in ((False, [1, 40]), (True, [1, 3, 40])):
        x = net.input(x_shape, "float32")
        w = net.const(rng.standard_normal((7, 40)).astype(np.float32), "float32")
        out = [*x_shape[:-1], 7] if keep else [int(np.prod(x_shape)) // 40, 7]
        ins = [x, w] + ([net.const(rng.standard_normal(7).astype(np.float32), "float32")] if keep else [-1])
        net.op("FULLY_CONNECTED", ins, [net.tensor(out, "float32")], f"FC keep={keep}", keep_num_dims=keep)
    return net


def test_float_convolutions():
    """Products rounded before each add, in the reference's loop order: any fused multiply-add or other
    order would show on these sums of hundreds of random products."""
    net = _float_conv_net(np.random.default_rng(39))
    check(net, run_sets(net, 40, (1, 3)))
