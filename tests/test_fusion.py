"""Plan fusions (engine/fusion.py) against the oracles: SiLU, y = MUL(x, LOGISTIC(x)) on 8-bit data, run as
one table lookup, equals the reference kernels (and TFLite Micro, and LiteRT's default interpreter under
their profiles) bit for bit; so does ARG_MAX / ARG_MIN of a uint8 RESIZE_BILINEAR (a segmentation head)
as one step; pairs that must not fuse are left alone and stay exact; every tensor, the skipped LOGISTIC
and RESIZE_BILINEAR outputs included, is still seen by observe and keep_all runs."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.kernels import gemm
from engine.profiles import litert_xnn
from tests.every_tensor import assert_every_tensor_equal
from tests.harness import Net, check, qparams, run_sets
from tests.litert_check import check_litert
from tests.oracle import reference_run_many, require
from tests.test_ops_activations import full_range_sets
from tests.test_ops_conv import ACTIVATIONS, SCHEMES, bias_tensor, io_types, weights
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


# --- CONV_2D then MAX_POOL_2D of its output (kernels/conv.conv2d_pooled) ------------------------------

# (h, w, c_in, c_out, kh, kw, stride, dilation, padding, pool fh, fw, sw, pool activation): MNIST's pair;
# two channel blocks and a column left over; overlapping columns (sw < fw) and a row below the last
# window; a strided convolution with a window-sum lane (uint8: 33 channels); a pointwise convolution
# (whose pixels would otherwise run as other rows); a few rows, three blocks (channel groups at two
# threads); a one-channel input
POOLED = [
    (26, 26, 16, 32, 3, 3, 1, 1, "VALID", 3, 3, 3, "NONE"),
    (12, 11, 8, 40, 3, 3, 1, 1, "SAME", 2, 2, 2, "RELU"),
    (13, 9, 5, 7, 3, 3, 1, 1, "SAME", 2, 3, 1, "RELU"),
    (10, 10, 3, 33, 2, 2, 2, 1, "VALID", 2, 2, 2, "NONE"),
    (6, 6, 64, 20, 1, 1, 1, 1, "VALID", 3, 2, 2, "NONE"),
    (4, 4, 16, 96, 3, 3, 1, 1, "SAME", 4, 4, 4, "NONE"),
    (28, 28, 1, 16, 3, 3, 1, 1, "VALID", 2, 2, 2, "RELU"),
]


def conv_pool(net: Net, rng, scheme: str, shape: tuple, graph_output: bool = False, pool_padding="VALID",
              pool_sh: int | None = None) -> None:
    """x -> CONV_2D -> MAX_POOL_2D (output quantized as its input, as converters write it); only the pool's
    output is a graph output unless graph_output."""
    h, w, c_in, c_out, kh, kw, stride, dil, pad, fh, fw, sw, act = shape
    # zero points near the middle of the type: random data then spreads over the output's range (a max
    # pool of outputs that saturate would show nothing)
    dtype, s_in, _ = io_types(scheme, rng)
    mid = 128 if dtype == "uint8" else 0
    x = net.input([1, h, w, c_in], dtype, s_in, mid + int(rng.integers(-20, 21)))
    wt, bias_scales, s_out = weights(net, rng, scheme, (c_out, kh, kw, c_in), 0, s_in, kh * kw * c_in)
    if dtype == "uint8":  # (128: the weights fit int8; else the GEMM's window-sum term, gemm_conv)
        net.tensors[wt]["zero_point"] = [128 if c_out % 2 else int(rng.integers(110, 146))]
    oh, ow = (-(-n // stride) if pad == "SAME" else (n - (k - 1) * dil - 1) // stride + 1 for n, k in ((h, kh), (w, kw)))
    q_out = (s_out, mid + int(rng.integers(-40, 41)))
    y = net.tensor([1, oh, ow, c_out], dtype, *q_out)
    net.ops.append(
        {"op": "CONV_2D", "inputs": [x, wt, bias_tensor(net, rng, bias_scales, c_out)], "outputs": [y],
         "options": {"padding": pad, "stride_h": stride, "stride_w": stride, "dilation_h_factor": dil,
                     "dilation_w_factor": dil, "fused_activation_function": ACTIVATIONS[c_out % 2]}}
    )
    sh = pool_sh or fh
    poh, pow_ = (-(-n // s) if pool_padding == "SAME" else (n - f) // s + 1 for n, f, s in ((oh, fh, sh), (ow, fw, sw)))
    out = net.tensor([1, poh, pow_, c_out], dtype, *q_out)
    net.op("MAX_POOL_2D", [y], [out], f"conv {h}x{w}x{c_in}->{c_out} {kh}x{kw} s{stride} d{dil} {pad}, pool "
           f"{fh}x{fw} s{sh}x{sw} {pool_padding} {act}", padding=pool_padding, stride_h=sh, stride_w=sw,
           filter_height=fh, filter_width=fw, fused_activation_function=act)
    if graph_output:
        net.outputs.append(y)
        net.labels.append("the convolution's output, a graph output")


def pooled_net(scheme: str, seed: int) -> Net:
    rng = np.random.default_rng(seed + SCHEMES.index(scheme))
    net = Net()
    for shape in POOLED:
        conv_pool(net, rng, scheme, shape)
    return net


def fused_convs(model: bytes, numerics: str = "reference", batch: int = 1) -> int:
    """How many CONV_2D steps the production plan runs inside their MAX_POOL_2D's step."""
    m = engine.load(model, numerics=numerics)
    return sum(s.observed_only and m.graph.ops[s.op_index].type == "CONV_2D" for s in m.plan(batch).steps)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conv_pool_reference(scheme, kernel_build):
    """Each pair (POOLED) runs as one step where the micro-kernel requantizes (AVX-512), at batch 1 and 3,
    serial and threaded, and equals the reference kernels."""
    net = pooled_net(scheme, 20)
    model = net.build()
    if gemm.FUSED:
        assert fused_convs(model) == len(POOLED) and fused_convs(model, batch=3) == len(POOLED)
    check(net, run_sets(net, 21, (1, 3)))


def test_conv_pool_int16_operands(monkeypatch):
    """The GEMM's int16 form (no VNNI) in the same fused step."""
    monkeypatch.setattr(gemm, "VNNI", False)
    net = pooled_net("int8_per_channel", 22)
    check(net, run_sets(net, 23, (1, 2)))


def test_conv_pool_every_tensor_observed():
    """observe (the production plan: the CONV_2D steps run only then) and keep_all (not fused) both give the
    convolutions' outputs, equal to the reference's."""
    rng = np.random.default_rng(24)
    net = Net()
    for scheme, shape in zip(SCHEMES, POOLED[:3]):
        conv_pool(net, rng, scheme, shape)
    observed_and_kept(net, run_sets(net, 25, (1, 2)))


def test_conv_pool_not_fused():
    """A pool that pads (SAME on an odd size), one whose windows share rows (stride 1 < 2 rows), a
    convolution whose output is also a graph output, and one dilated along x (a GEMM call per filter row:
    not requantized in the micro-kernel): each stays two steps, and exact."""
    rng = np.random.default_rng(26)
    net = Net()
    conv_pool(net, rng, "int8_per_channel", (9, 9, 4, 16, 3, 3, 1, 1, "VALID", 2, 2, 2, "NONE"), pool_padding="SAME")
    conv_pool(net, rng, "uint8", (8, 8, 4, 16, 3, 3, 1, 1, "SAME", 2, 2, 2, "NONE"), pool_sh=1)
    conv_pool(net, rng, "int8_per_tensor", (8, 8, 4, 16, 3, 3, 1, 1, "SAME", 2, 2, 2, "NONE"), graph_output=True)
    conv_pool(net, rng, "uint8", (15, 15, 4, 16, 3, 3, 1, 2, "VALID", 2, 2, 2, "NONE"))
    model = net.build()
    assert fused_convs(model) == 0
    check(net, run_sets(net, 27, (1, 3)))


@pytest.mark.usefixtures("tflm")
def test_conv_pool_tflm():
    """numerics="tflm" (int8: TFLite Micro refuses uint8 convolutions): fused, equal to TFLite Micro."""
    net = Net()
    rng = np.random.default_rng(28)
    for k, shape in enumerate(POOLED):
        conv_pool(net, rng, ("int8_per_channel", "int8_per_tensor")[k % 2], shape)
    if gemm.FUSED:
        assert fused_convs(net.build(), "tflm") == len(POOLED)
    counts = versus_tflm(net, run_sets(net, 29, (1, 1)))
    assert not {k: v[0] for k, v in counts.items() if v[0]}, counts


def test_conv_pool_litert():
    """numerics="litert": XNNPACK's convolutions (fp32 requantization) fused with the pool, and the builtin
    ones; every tensor and the delegate's partition equal LiteRT's default interpreter's."""
    require("litert")
    net = Net()
    rng = np.random.default_rng(30)
    for k, shape in enumerate(POOLED):
        conv_pool(net, rng, SCHEMES[k % 3], shape)
    model = net.build()
    if gemm.FUSED:
        assert fused_convs(model, "litert") == len(POOLED)
    check_litert(model, run_sets(net, 31, (1, 2)))
