"""Plan fusions (engine/fusion.py) against the oracles: SiLU, y = MUL(x, LOGISTIC(x)) on 8-bit data, run as
one table lookup, equals the reference kernels (and TFLite Micro, and LiteRT's default interpreter under
their profiles) bit for bit; so does ARG_MAX / ARG_MIN of a uint8 RESIZE_BILINEAR (a segmentation head)
as one step; pairs that must not fuse are left alone and stay exact; every tensor, the skipped LOGISTIC
and RESIZE_BILINEAR outputs included, is still seen by observe and keep_all runs."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.profiles import litert_xnn
from tests.every_tensor import assert_every_tensor_equal
from tests.harness import Net, check, qparams, run_sets
from tests.litert_check import check_litert
from tests.oracle import reference_run_many, require
from tests.test_ops_activations import full_range_sets
from tests.test_tflm import versus_tflm

SHAPE = [1, 5, 6, 10]  # 300 elements: every byte value fits in one batch item


def type_min(dtype: str) -> int:
    return int(np.iinfo(dtype).min)


def silu(net: Net, dtype: str, q_in, q_out, x_first: bool = True, act: str = "NONE", shape=SHAPE) -> int:
    """x -> LOGISTIC -> MUL(x, sigmoid) (or MUL(sigmoid, x)); only the MUL's output is a graph output."""
    x = net.input(shape, dtype, *q_in)
    s = net.tensor(shape, dtype, 1 / 256, type_min(dtype))
    y = net.tensor(shape, dtype, *q_out)
    net.ops.append({"op": "LOGISTIC", "inputs": [x], "outputs": [s], "options": {}})
    net.op(
        "MUL",
        [x, s] if x_first else [s, x],
        [y],
        f"SiLU {dtype} {q_in}->{q_out} {'x first' if x_first else 'x second'} {act}",
        fused_activation_function=act,
    )
    return s


def fused(model: bytes, numerics: str = "reference", batch: int = 1) -> int:
    """How many LOGISTIC steps the production plan skips (fused into their MUL)."""
    return sum(s.observed_only for s in engine.load(model, numerics=numerics).plan(batch).steps)


def silu_net(seed: int, dtypes=("int8", "uint8"), n: int = 5) -> Net:
    """SiLU pairs of both types, both input orders, awkward and random scales, fused activations."""
    rng = np.random.default_rng(seed)
    net = Net()
    acts = ["NONE", "RELU", "NONE", "RELU6", "NONE"]
    for dtype in dtypes:
        info = np.iinfo(dtype)
        q_ins = [(1e-3, int(info.min)), (0.5, int(info.max))] + [
            qparams(rng, dtype, -3, 0) for _ in range(n - 2)
        ]
        for k, q_in in enumerate(q_ins):
            silu(net, dtype, q_in, qparams(rng, dtype, -3, 0), x_first=k % 2 == 0, act=acts[k % len(acts)])
    return net


def test_silu_reference():
    net = silu_net(1)
    model = net.build()
    assert fused(model) == len(net.outputs) and fused(model, batch=3) == len(net.outputs)
    check(net, full_range_sets(net, 2))


def test_silu_every_tensor_observed():
    """observe (the production plan, LOGISTIC steps run only then) and keep_all (not fused) both give the
    LOGISTIC outputs, equal to the reference's, at batch 1 and 4."""
    net = silu_net(3, n=3)
    observed_and_kept(net, full_range_sets(net, 4, (1, 4)))


def observed_and_kept(net: Net, sets: list) -> None:
    """Every tensor of net (3 per fused pair: the input, the skipped step's output, the output), seen by
    observe on the production plan and by a keep_all run, equals the reference's on each input set; the
    keep_all plan has nothing fused."""
    model = net.build()
    m = engine.load(model)
    for xs in sets:
        refs = reference_run_many(model, [[x[k : k + 1] for x in xs] for k in range(xs[0].shape[0])], True)
        assert assert_every_tensor_equal(m, xs, refs) == 3 * len(net.outputs)
        kept = m.run(list(xs), keep_all=True)
        for name, got in kept.items():
            want = np.concatenate([r["tensors"][name] for r in refs])
            assert np.array_equal(got, want), name
    assert sum(s.observed_only for s in m.plan(1, keep_all=True).steps) == 0


def test_not_fused():
    """A LOGISTIC read by another op too, one that is a graph output, and a MUL of x and the LOGISTIC of
    another tensor: each stays two steps, and exact."""
    rng = np.random.default_rng(5)
    net = Net()
    for dtype in ("int8", "uint8"):
        # the LOGISTIC also feeds an ADD
        q = qparams(rng, dtype, -2, 0)
        s = silu(net, dtype, q, qparams(rng, dtype, -2, 0))
        net.op("ADD", [s, s], [net.tensor(SHAPE, dtype, 1 / 64, 0 if dtype == "int8" else 128)], "ADD of s")
        # the LOGISTIC is a graph output
        s = silu(net, dtype, q, qparams(rng, dtype, -2, 0), x_first=False)
        net.outputs.append(s)
        net.labels.append(f"LOGISTIC output {dtype}")
        # MUL(x, LOGISTIC(z))
        x, z = net.input(SHAPE, dtype, *q), net.input(SHAPE, dtype, *qparams(rng, dtype, -2, 0))
        s = net.tensor(SHAPE, dtype, 1 / 256, type_min(dtype))
        net.ops.append({"op": "LOGISTIC", "inputs": [z], "outputs": [s], "options": {}})
        net.op(
            "MUL", [x, s], [net.tensor(SHAPE, dtype, *qparams(rng, dtype, -2, 0))], f"x * sigmoid(z) {dtype}"
        )
    model = net.build()
    assert fused(model) == 0
    check(net, full_range_sets(net, 6))


def test_fused_and_unfused_in_one_graph_with_broadcast_neighbours():
    """A SiLU whose output feeds a broadcast MUL with a LOGISTIC of a smaller tensor (not a SiLU), at
    rank 2 and 4, batch 1 and 3."""
    net = Net()
    x = net.input([1, 7, 40], "int8", 0.07, -3)
    s = net.tensor([1, 7, 40], "int8", 1 / 256, -128)
    y = net.tensor([1, 7, 40], "int8", 0.04, -100)
    net.ops.append({"op": "LOGISTIC", "inputs": [x], "outputs": [s], "options": {}})
    net.ops.append({"op": "MUL", "inputs": [s, x], "outputs": [y], "options": {}})
    z = net.input([1, 1, 40], "int8", 0.2, 10)
    sz = net.tensor([1, 1, 40], "int8", 1 / 256, -128)
    net.ops.append({"op": "LOGISTIC", "inputs": [z], "outputs": [sz], "options": {}})
    net.op("MUL", [y, sz], [net.tensor([1, 7, 40], "int8", 0.03, 5)], "broadcast MUL after a SiLU")
    assert fused(net.build()) == 1
    check(net, full_range_sets(net, 7))


@pytest.mark.usefixtures("tflm")
def test_silu_tflm():
    """numerics="tflm": the table comes from TFLite Micro's own LOGISTIC (gemmlowp) and MUL (double
    multiplier); int8 (TFLite Micro's LOGISTIC wants the output zero point -128)."""
    net = silu_net(8, dtypes=("int8",), n=6)
    assert fused(net.build(), "tflm") == len(net.outputs)
    counts = versus_tflm(net, full_range_sets(net, 9, (1,)))
    assert not {k: v[0] for k, v in counts.items() if v[0]}, counts


def test_silu_litert():
    """numerics="litert": XNNPACK's MUL (fp32 requantization) is position-free and fuses; a MUL the
    delegate leaves to LiteRT's builtin kernel (NEON blocks and a scalar tail) is not fused."""
    require("litert")
    rng = np.random.default_rng(10)
    net = Net()
    for dtype in ("int8", "uint8"):
        for _ in range(3):
            while True:
                q_in, q_out = qparams(rng, dtype, -2, 0), qparams(rng, dtype, -3, 0)
                if litert_xnn.mul_delegated(q_in[0], 1 / 256, q_out[0]):
                    break
            silu(net, dtype, q_in, q_out, x_first=bool(rng.integers(2)))
    info = np.iinfo("int8")
    silu(net, "int8", (0.5, int(info.max)), (0.5 / 256 / 1000, 0), shape=[1, 37])  # builtin MUL: too small
    model = net.build()
    assert fused(model, "litert") == len(net.outputs) - 1
    check_litert(model, full_range_sets(net, 11))


# --- RESIZE_BILINEAR then ARG_MAX / ARG_MIN over its channels (a segmentation head) -----------------


def resize_arg(net: Net, c: int, hw, ohw, align: bool, half: bool, op: str = "ARG_MAX", axis: int = 3,
               out_type: str = "int64", dtype: str = "uint8") -> int:
    """x [1, h, w, c] -> RESIZE_BILINEAR -> op over `axis`; only the op's output is a graph output.
    Returns the resized tensor."""
    (h, w), (oh, ow) = hw, ohw
    x = net.input([1, h, w, c], dtype, 0.05, 3 if dtype == "uint8" else -2)
    r = net.tensor([1, oh, ow, c], dtype, 0.05, 3 if dtype == "uint8" else -2)
    size = net.const(np.int32([oh, ow]), "int32")
    net.ops.append(
        {"op": "RESIZE_BILINEAR", "inputs": [x, size], "outputs": [r],
         "options": {"align_corners": align, "half_pixel_centers": half}}
    )
    shape = [1, oh, ow, c]
    out = [d for k, d in enumerate(shape) if k != axis % 4]
    net.op(op, [r, net.const(np.int32(axis), "int32")], [net.tensor(out, out_type)],
           f"{op} of RESIZE_BILINEAR {h}x{w}x{c}->{oh}x{ow} align={align} half={half}", output_type=out_type)
    return r


def segmentation_net() -> Net:
    """Fusable heads: DeepLab's align-corners upscale with 21 classes (smaller), 1, 3 and 32 (the most the
    fused kernel takes) channels, half-pixel and plain mappings, a downscale, ARG_MIN, axis -1, int32."""
    net = Net()
    resize_arg(net, 21, (9, 9), (37, 37), True, False)
    resize_arg(net, 3, (5, 7), (11, 13), False, True, "ARG_MIN", axis=-1, out_type="int32")
    resize_arg(net, 32, (4, 4), (9, 8), False, False)
    resize_arg(net, 1, (3, 5), (6, 10), True, False, "ARG_MIN")
    resize_arg(net, 19, (8, 6), (3, 5), False, True, axis=-1)
    return net


def tie_sets(net: Net, seed: int) -> list[list[np.ndarray]]:
    """Random inputs at batch 1 and 3, and the batch-1 set folded to a few values (ties: the first index
    must win)."""
    sets = run_sets(net, seed, (1, 3))
    return sets + [[(x % 3).astype(x.dtype) for x in sets[0]], [np.full_like(x, 7) for x in sets[0]]]


def test_resize_arg_reference():
    net = segmentation_net()
    model = net.build()
    assert fused(model) == len(net.outputs) and fused(model, batch=3) == len(net.outputs)
    check(net, tie_sets(net, 12))


def test_resize_arg_every_tensor_observed():
    """observe (the production plan, the RESIZE_BILINEAR steps run only then) and keep_all (not fused)
    both give the resized tensors, equal to the reference's, at batch 1 and 2."""
    net = segmentation_net()
    observed_and_kept(net, run_sets(net, 13, (1, 2)))


def test_resize_arg_not_fused():
    """33 channels (more than the fused kernel takes), ARG_MAX over rows (axis 1), a resized tensor that
    is also a graph output, int8 data (the integer resize): each stays two steps, and exact."""
    net = Net()
    resize_arg(net, 33, (4, 5), (8, 9), True, False)
    resize_arg(net, 4, (4, 5), (8, 9), False, False, axis=1)
    r = resize_arg(net, 5, (3, 3), (7, 7), True, False)
    net.outputs.append(r)
    net.labels.append("the resized tensor, a graph output")
    resize_arg(net, 6, (4, 4), (8, 8), False, True, dtype="int8")
    model = net.build()
    assert fused(model) == 0
    check(net, tie_sets(net, 14))


def test_resize_arg_litert():
    """numerics="litert": XNNPACK resizes uint8 with its own arithmetic, and the pair is not fused; the
    runs equal LiteRT's."""
    require("litert")
    net = segmentation_net()
    model = net.build()
    assert fused(model, "litert") == 0
    check_litert(model, run_sets(net, 15, (1, 2)))
