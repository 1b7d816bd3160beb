"""BATCH_MATMUL on graphs built here, against the reference kernels (and TFLite Micro for tflm).

float32, int8 (per tensor, any zero points) and int16; adj_x / adj_y; batch axes broadcast from
either side, ranks 2 to 5; a constant rhs (with and without batch axes: the int8 one without runs on
FULLY_CONNECTED's GEMM) and two runtime inputs; batch 1 and 3; int16 sums beyond int32.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import engine
from engine.errors import UnsupportedError
from tests.harness import F32, Net, check
from tests.test_ops_conv import gemm_path  # noqa: F401 (fixture)

DTYPES = ["float32", "int8", "int16"]
# lhs batch axes, rhs batch axes (B: the batch), m, k, n
CASES = [
    (("B",), ("B",), 4, 5, 6),
    (("B",), (), 3, 7, 33),
    (("B", 2), (1, 2), 3, 4, 5),
    (("B", 3), (1, 1), 2, 6, 4),
    (("B", 2, 1), (1, 1, 3), 3, 5, 2),
    ((), ("B",), 5, 3, 4),
    (("B",), (1,), 2, 600, 3),
    (("B", 1, 2), (1, 3, 1), 2, 3, 17),
]


def _batch(axes, b):
    return [b if a == "B" else a for a in axes]


def _operand(net: Net, rng, dtype, shape, const: bool, q):
    if const:
        if dtype == "float32":
            data = rng.standard_normal(shape).astype(np.float32)
        else:
            info = np.iinfo(dtype)
            data = rng.integers(info.min, int(info.max) + 1, shape).astype(dtype)
        return net.const(data, dtype, *q)
    return net.input(shape, dtype, *q)


def _qparams(rng, dtype):
    if dtype == "float32":
        return (None, None), (None, None), lambda k: (None, None)
    sl, sr = float(F32(10 ** rng.uniform(-3, -1))), float(F32(10 ** rng.uniform(-3, -1)))
    if dtype == "int16":
        return (sl, 0), (sr, 0), lambda k: (float(F32(sl * sr * 2e8 * np.sqrt(k) / 40)), 0)
    zl, zr = (int(v) for v in rng.integers(-128, 128, 2))
    return (
        (sl, zl),
        (sr, zr),
        lambda k: (float(F32(sl * sr * 74 * 74 * np.sqrt(k) / 40)), int(rng.integers(-128, 128))),
    )


def bmm_net(dtype: str, batch: int, seed: int = 0) -> Net:
    rng = np.random.default_rng(seed + DTYPES.index(dtype))
    net = Net()
    for (lb, rb, m, k, n), adj_x, adj_y, const in itertools.product(
        CASES, [False, True], [False, True], [False, True]
    ):
        ql, qr, qout = _qparams(rng, dtype)
        if not const and rb[:1] != ("B",):
            continue  # a graph input's leading axis is the batch: this rhs can only be a constant
        lbb, rbb = _batch(lb, batch), _batch(rb, batch)
        lhs_const = lb[:1] != ("B",)  # (then the rhs is the input)
        x = _operand(net, rng, dtype, [*lbb, *((k, m) if adj_x else (m, k))], lhs_const, ql)
        r = _operand(net, rng, dtype, [*rbb, *((n, k) if adj_y else (k, n))], const and not lhs_const, qr)
        rank = max(len(lbb), len(rbb))
        ext_l, ext_r = [1] * (rank - len(lbb)) + lbb, [1] * (rank - len(rbb)) + rbb
        out_b = [max(a, b) for a, b in zip(ext_l, ext_r)]
        y = net.tensor([*out_b, m, n], dtype, *qout(k))
        label = f"bmm {dtype} {lbb}x{rbb} m{m} k{k} n{n} adj_x={adj_x} adj_y={adj_y} const={const}"
        net.op("BATCH_MATMUL", [x, r], [y], label, adj_x=adj_x, adj_y=adj_y)
    return net


def input_sets(net: Net, seed: int, count: int = 2) -> list[list[np.ndarray]]:
    """Random full-range values for every graph input at its declared shape."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(count):
        xs = []
        for i in net.inputs:
            t = net.tensors[i]
            if t["dtype"] == "float32":
                xs.append(rng.standard_normal(t["shape"]).astype(np.float32))
            else:
                info = np.iinfo(t["dtype"])
                xs.append(rng.integers(info.min, int(info.max) + 1, t["shape"]).astype(t["dtype"]))
        sets.append(xs)
    return sets


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_matmul(dtype, batch, kernel_build):
    net = bmm_net(dtype, batch)
    check(net, input_sets(net, 50 + batch))


@pytest.mark.usefixtures("gemm_path")
def test_batch_matmul_int8_gemm_forms():
    """The constant int8 rhs on FULLY_CONNECTED's GEMM, both forms: uint8 x int8 (VNNI) and int16."""
    net = bmm_net("int8", 2, seed=7)
    check(net, input_sets(net, 60))


def test_batch_matmul_runs_any_batch():
    """A graph stored at batch 1 runs at batch 4 (leading axis scaled), as the reference resized."""
    net = Net()
    rng = np.random.default_rng(3)
    x = net.input([1, 3, 5], "int8", 0.02, 3)
    r = net.const(rng.integers(-128, 128, (5, 7)).astype(np.int8), "int8", 0.01, -2)
    y = net.tensor([1, 3, 7], "int8", 0.05, 1)
    net.op("BATCH_MATMUL", [x, r], [y], "bmm")
    x2 = net.input([1, 5, 2], "float32")
    r2 = net.input([1, 2, 4], "float32")
    y2 = net.tensor([1, 5, 4], "float32")
    net.op("BATCH_MATMUL", [x2, r2], [y2], "bmm float")
    sets = [
        [
            rng.integers(-128, 128, (4, 3, 5)).astype(np.int8),
            rng.standard_normal((4, 5, 2)).astype(np.float32),
            rng.standard_normal((4, 2, 4)).astype(np.float32),
        ]
    ]
    check(net, sets)


@pytest.mark.parametrize(
    "lhs, rhs, options, message",
    [
        ([2, 3, 4], [2, 5, 6], {}, "depth"),
        ([1, 2, 3, 4], [3, 4, 6], {}, "broadcast"),
        ([3], [3, 4], {}, "ranks"),
        ([1, 1, 1, 1, 2, 3], [3, 4], {}, "ranks"),
    ],
)
def test_batch_matmul_refusals(lhs, rhs, options, message):
    net = Net()
    x = net.input(lhs, "float32")
    r = net.const(np.ones(rhs, np.float32), "float32")  # (a graph input's leading axis is the batch)
    y = net.tensor([1], "float32")
    net.op("BATCH_MATMUL", [x, r], [y], "bmm", **options)
    with pytest.raises(UnsupportedError, match=message) as info:
        engine.load(net.build())
    assert "BATCH_MATMUL" in str(info.value)


def test_batch_matmul_type_refusals():
    net = Net()
    x = net.input([2, 3], "float32")
    r = net.const(np.ones((3, 4), np.int8), "int8", 0.1, 0)
    y = net.tensor([2, 4], "float32")
    net.op("BATCH_MATMUL", [x, r], [y], "bmm")
    with pytest.raises(UnsupportedError, match="hybrid"):
        engine.load(net.build())
    net = Net()
    x = net.input([2, 3], "int16", 0.1, 1)
    r = net.const(np.ones((3, 4), np.int16), "int16", 0.1, 0)
    y = net.tensor([2, 4], "int16", 0.1, 0)
    net.op("BATCH_MATMUL", [x, r], [y], "bmm")
    with pytest.raises(UnsupportedError, match="zero points"):
        engine.load(net.build())


# --- numerics="tflm": TFLite Micro's BATCH_MATMUL -------------------------------------------------------


@pytest.mark.usefixtures("tflm")
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_matmul_tflm(dtype):
    """The same kernels in TFLite Micro: with these scales both profiles equal it."""
    from tests.test_tflm import check_tflm

    net = bmm_net(dtype, 1)
    check_tflm(net, input_sets(net, 70), differs=False)


# scales whose product rounds differently in float32 (the reference) and in double (TFLite Micro)
PINNED = {
    "int8": (0.0032666463, 0.002081147, 0.000821627, np.arange(-128, 128)),
    "int16": (0.005564003, 0.052286703, 10.433246, np.random.default_rng(2).integers(-32768, 32768, 256)),
}


@pytest.mark.usefixtures("tflm")
@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_batch_matmul_tflm_multiplier_in_double(dtype):
    """Every product of 256 x 256 values through scales chosen so that the float32 and the double scale
    products give different multipliers: the reference profile equals the reference (test above) and
    differs from TFLite Micro, numerics='tflm' equals TFLite Micro."""
    from tests.test_tflm import check_tflm

    s_l, s_r, s_out, values = PINNED[dtype]
    net = Net()
    x = net.input([1, 256, 1], dtype, s_l, 0)
    r = net.const(values.reshape(1, 256).astype(dtype), dtype, s_r, 0)
    y = net.tensor([1, 256, 256], dtype, s_out, 0)
    net.op("BATCH_MATMUL", [x, r], [y], f"bmm {dtype} pinned")
    sets = [[values.reshape(1, 256, 1).astype(dtype)]]
    check_tflm(net, sets, differs=True)
    check(net, sets)  # and the reference profile is the reference's arithmetic


def test_batch_matmul_macs():
    from engine.stats import model_macs

    net = Net()
    x = net.input([1, 2, 5, 3], "float32")  # adj_x: m = 3, k = 5
    r = net.const(np.ones((2, 5, 4), np.float32), "float32")
    y = net.tensor([1, 2, 3, 4], "float32")
    net.op("BATCH_MATMUL", [x, r], [y], "bmm", adj_x=True)
    assert model_macs(engine.load(net.build())) == 2 * 3 * 4 * 5


@pytest.mark.parametrize("const", [False, True])
def test_batch_matmul_int8_to_int32(const):
    """int8 x int8 -> int32 (the reference's EvalInt8Int32): the sums of the stored values, zero points
    ignored; wrapping int32 sums with a deep k. TFLite Micro refuses an int32 output, so does tflm."""
    rng = np.random.default_rng(11 + const)
    net = Net()
    for n, (lb, m, k, nn, adj_x, adj_y) in enumerate(
        [((3,), 4, 5, 6, False, False), ((3, 2), 2, 70000, 3, True, True)]
    ):
        x = net.input([*lb, *((k, m) if adj_x else (m, k))], "int8", 0.1, 5)
        rshape = [*lb, *((nn, k) if adj_y else (k, nn))]
        if const:
            r = net.const(rng.integers(-128, 128, rshape).astype(np.int8), "int8", 0.2, -3)
        else:
            r = net.input(rshape, "int8", 0.2, -3)
        y = net.tensor([*lb, m, nn], "int32", 0.02, 0)
        net.op("BATCH_MATMUL", [x, r], [y], f"int32 out {n}", adj_x=adj_x, adj_y=adj_y)
    check(net, input_sets(net, 12))
    with pytest.raises(UnsupportedError, match="int32 output"):
        engine.load(net.build(), numerics="tflm")
