"""DEPTHWISE_CONV_2D's kernel paths (engine/kernels/depthwise.py) against the oracles, one-op graphs:
channels packed several pixels to a vector (2, 4, 8 channels at stride 1), channels padded to whole
vectors (5, 24, 40, 8 at stride 2), the 3 x 3 stride-1 step, short rows (the 4-pixel step and a
packed row's last pixels), tasks split by channels (few output rows, odd in number), depth
multipliers, dilations, SAME and VALID padding, batch 1 and 3; under the reference, TFLite Micro
and LiteRT (XNNPACK's fp32 rule) numerics, serial and parallel builds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tests.harness import Net, check, run_sets
from tests.test_ops_conv import ACTIVATIONS, SCHEMES, bias_tensor, io_types, weights

# (h, w, c_in, depth multiplier, kh, kw, stride, dilation)
SHAPES = [
    (9, 13, 8, 1, 3, 3, 1, 1),  # packed, 2 pixels a vector; a row of 6 vectors and a half
    (6, 11, 4, 1, 3, 3, 1, 1),  # packed, 4 pixels
    (5, 7, 2, 1, 3, 5, 1, 2),  # packed, 8 pixels, dilated
    (7, 9, 4, 2, 3, 3, 1, 1),  # packed from a depth multiplier (8 output channels)
    (9, 10, 8, 1, 3, 3, 2, 1),  # 8 channels at stride 2: one vector a pixel
    (5, 5, 24, 1, 3, 3, 1, 1),  # rows of 5 pixels: the 4-pixel step; 5 rows: tasks split by channels
    (7, 14, 40, 1, 3, 3, 1, 1),  # 3 vectors, the last partly used
    (11, 12, 40, 1, 3, 3, 2, 1),
    (8, 9, 5, 3, 5, 5, 1, 1),  # 15 channels
    (6, 17, 24, 2, 3, 2, 2, 2),
    (25, 5, 64, 1, 3, 3, 1, 1),  # keyword spotting's shape
    (3, 3, 48, 1, 3, 3, 1, 1),
    (9, 17, 32, 1, 5, 5, 2, 1),  # quad rows: two quads a filter row, every other pixel kept
    (7, 19, 16, 1, 3, 3, 3, 1),  # quad rows at stride 3
    (6, 23, 32, 1, 2, 9, 1, 2),  # three quads a filter row, dilated
    (8, 20, 16, 1, 3, 7, 3, 1),  # 7 taps at stride 3: no quad rows (3 does not divide 4)
]


def depthwise_variants(scheme: str, seed: int, bias_always: bool = False) -> Net:
    rng = np.random.default_rng(seed + SCHEMES.index(scheme))
    net = Net()
    for n, (shape, pad) in enumerate(itertools.product(SHAPES, ["SAME", "VALID"])):
        h, w, c_in, dm, kh, kw, s, d = shape
        if pad == "VALID" and ((kh - 1) * d + 1 > h or (kw - 1) * d + 1 > w):
            continue
        dtype, s_in, zp_in = io_types(scheme, rng)
        c_out = c_in * dm
        x = net.input([1, h, w, c_in], dtype, s_in, zp_in)
        wi, bias_scales, s_out = weights(net, rng, scheme, (1, kh, kw, c_out), 3, s_in, kh * kw)
        has_bias = bias_always or n % 5 != 0
        inputs = [x, wi] + ([bias_tensor(net, rng, bias_scales, c_out)] if has_bias else [])
        info = np.iinfo(dtype)
        oh = -(-h // s) if pad == "SAME" else (h - (kh - 1) * d - 1) // s + 1
        ow = -(-w // s) if pad == "SAME" else (w - (kw - 1) * d - 1) // s + 1
        zp_out = int(rng.integers(info.min, int(info.max) + 1))
        out = net.tensor([1, oh, ow, c_out], dtype, s_out, zp_out)  # (TFLite Micro takes it as it is)
        act = ACTIVATIONS[n % 4]
        net.op(
            "DEPTHWISE_CONV_2D",
            inputs,
            [out],
            f"dw {h}x{w}x{c_in} m{dm} {kh}x{kw} {pad} s{s} d{d} {act}",
            padding=pad,
            stride_h=s,
            stride_w=s,
            dilation_h_factor=d,
            dilation_w_factor=d,
            depth_multiplier=dm,
            fused_activation_function=act,
        )
    return net


@pytest.mark.parametrize("scheme", SCHEMES)
def test_depthwise_paths_reference(scheme, kernel_build):
    net = depthwise_variants(scheme, 60)
    check(net, run_sets(net, 61, batches=(1, 3)))


@pytest.mark.parametrize("scheme", ["int8_per_tensor", "int8_per_channel"])
def test_depthwise_paths_tflm(scheme):
    from tests.test_tflm import check_tflm, random_sets

    net = depthwise_variants(scheme, 62, bias_always=True)
    check_tflm(net, random_sets(net, 63), differs=False)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_depthwise_paths_litert(scheme, kernel_build):
    """LiteRT's default interpreter delegates these to XNNPACK: the fp32 rule (it dies on a quantized
    depthwise without bias: every op has one)."""
    from tests.litert_check import check_litert
    from tests.oracle import require

    require("litert")
    net = depthwise_variants(scheme, 64, bias_always=True)
    res = check_litert(net.build(), run_sets(net, 65, batches=(1, 3)))
    assert res.tensors >= 2 * len(net.ops)


def test_depthwise_uint8_narrow_filters(kernel_build, monkeypatch):
    """uint8 layers whose filter minus its zero point fits int8 take the quad rows too."""
    from engine.kernels import depthwise as D

    taken = []
    quad_taps = D.quad_taps
    monkeypatch.setattr(D, "quad_taps", lambda *a: taken.append(1) or quad_taps(*a))
    rng = np.random.default_rng(66)
    net = Net()
    layers = [(7, 9, 32, 3, 3, 1), (8, 11, 48, 5, 5, 2), (5, 6, 16, 3, 3, 1)]
    for n, (h, w, c, kh, kw, s) in enumerate(layers):
        x = net.input([1, h, w, c], "uint8", 0.02, int(rng.integers(0, 256)))
        zp = int(rng.integers(100, 156))
        data = rng.integers(zp - 100, zp + 101, size=(1, kh, kw, c)).astype(np.uint8)
        wi = net.const(data, "uint8", 0.01, zp)
        b = bias_tensor(net, rng, [0.02 * 0.01], c)
        oh, ow = -(-h // s), -(-w // s)
        out = net.tensor([1, oh, ow, c], "uint8", 0.05, int(rng.integers(0, 256)))
        net.op(
            "DEPTHWISE_CONV_2D",
            [x, wi, b],
            [out],
            f"dw uint8 {h}x{w}x{c} {kh}x{kw} s{s}",
            padding="SAME",
            stride_h=s,
            stride_w=s,
            depth_multiplier=1,
            fused_activation_function=ACTIVATIONS[n % 4],
        )
    check(net, run_sets(net, 67, batches=(1, 2)))
    assert len(taken) % 3 == 0 and bool(taken) == D.QUADS, "the quad rows were not taken by each layer"


@pytest.mark.parametrize("scheme", ["uint8", "int8_per_channel"])
def test_depthwise_paths_one_thread(scheme):
    """At one thread the kernels run one task an image, whatever the plan's split for more threads."""
    import numba

    import engine

    net = depthwise_variants(scheme, 68)
    before = numba.get_num_threads()
    engine.set_num_threads(1)
    try:
        check(net, run_sets(net, 69, batches=(1, 3)))
    finally:
        engine.set_num_threads(before)


@pytest.mark.parametrize("huge", [False, True])
@pytest.mark.parametrize("scheme", ["uint8", "int8_per_channel"])
def test_depthwise_left_shift(scheme, huge, kernel_build, monkeypatch):
    """Output scales below input x filter scales: multipliers above 1, requantized with a left shift,
    every path: packed pixels, quad rows, the 3 x 3 int16 step. huge: one channel's bias near 2**30,
    where the short requantization is not exact (the wide form's two versions then)."""
    from engine.kernels import depthwise as D

    forms = []
    wide_table = D.wide_table

    def spy(*args):
        table = wide_table(*args)
        forms.append(int(table[D.SHORT_OK, 0]) if D.SIMD else 0)
        return table

    monkeypatch.setattr(D, "wide_table", spy)
    rng = np.random.default_rng(70 + huge)
    net = Net()
    for n, (h, w, c, s) in enumerate([(6, 9, 8, 1), (7, 10, 32, 1), (6, 8, 24, 2)]):
        dtype, s_in, zp_in = io_types(scheme, rng)
        x = net.input([1, h, w, c], dtype, s_in, zp_in)
        wi, bias_scales, _ = weights(net, rng, scheme, (1, 3, 3, c), 3, s_in, 9)
        t = net.tensors[wi]  # filters of -1, 0, 1 (from the zero point): sums small enough to show
        t["data"] = (rng.integers(-1, 2, size=t["shape"]) + t["zero_point"][0]).astype(t["data"].dtype)
        b = bias_tensor(net, rng, bias_scales, c)
        net.tensors[b]["data"] //= 200
        if huge:
            net.tensors[b]["data"][n] = (1 << 30) - 1
        info = np.iinfo(dtype)
        # every channel's multiplier 1.2 to 3 (at least): shifted left before the high multiply
        s_out = float(min(bias_scales)) / float(rng.uniform(1.2, 3))
        oh, ow = -(-h // s), -(-w // s)
        out = net.tensor([1, oh, ow, c], dtype, s_out, int(rng.integers(info.min, int(info.max) + 1)))
        net.op(
            "DEPTHWISE_CONV_2D",
            [x, wi, b],
            [out],
            f"dw left shift {h}x{w}x{c} s{s}",
            padding="SAME",
            stride_h=s,
            stride_w=s,
            depth_multiplier=1,
            fused_activation_function=ACTIVATIONS[n % 4],
        )
    check(net, run_sets(net, 71, batches=(1, 2)))
    if D.SIMD:
        assert forms and set(forms) == {0 if huge else 1}, f"short requantization flags {forms}"
