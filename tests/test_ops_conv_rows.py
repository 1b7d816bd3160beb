"""Convolutions whose pixels the engine regroups into other rows, against the reference kernels.

A 1x1 convolution with unit strides and no padding runs its n*h*w pixels as rows of a width the GEMM
tiles without waste (conv2d._pointwise_rows), and a depthwise filter [kh, 1] on an [N, H, 1, C] input
(1-D models: audio, keyword spotting) runs its column as a row (depthwise_conv2d._as_row). Shapes here
take every branch: one row, rows of a multiple of the tile, no such divisor, batch 1 and 3.
A convolution with unit strides and a short k runs an image's rows together, in strips (conv2d.STRIP;
kernels/conv.conv2d): strips that end inside a row or between rows, an input read in place whose last
pixels read past its end (uint8, VALID), one and two channel blocks, a window sum's lane (uint8) in
the first block or in the second (the others' sums then read it).
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
from tests.harness import Net, check, run_sets
from tests.test_ops_conv import ACTIVATIONS, SCHEMES, bias_tensor, io_types, weights

# (h, w, c_in, c_out): 5x5 and 25x5 fit one row; 30x30 = 900 pixels become 3 rows of 300; 23x23 = 529
# pixels have no multiple of 4 below 512 dividing them (left as they are); 24x1 is a 1-D model's column
POINTWISE = [
    (5, 5, 16, 40),
    (25, 5, 64, 64),
    (30, 30, 8, 33),
    (23, 23, 5, 7),
    (24, 1, 128, 128),
    (7, 7, 3, 96),
]
# (h, w, c_in, c_out, kh, kw, dilation, padding) of convolutions whose rows run together
STRIPS = [
    (28, 28, 1, 16, 3, 3, 1, "VALID"),
    (12, 10, 2, 40, 3, 3, 1, "SAME"),
    (9, 7, 3, 33, 2, 2, 1, "VALID"),
    (30, 23, 1, 8, 3, 1, 2, "SAME"),
    (5, 3, 4, 16, 1, 3, 1, "SAME"),
    (14, 50, 2, 5, 2, 3, 1, "VALID"),
    (11, 13, 2, 20, 3, 3, 1, "VALID"),
    (20, 21, 3, 40, 1, 1, 1, "VALID"),
]
# (h, kh, stride, dilation, padding, depth multiplier) of depthwise filters [1, kh, 1, c] on [n, h, 1, c]
COLUMNS = [
    (28, 5, 1, 1, "VALID", 1),
    (24, 10, 1, 1, "SAME", 1),
    (17, 3, 2, 1, "SAME", 2),
    (30, 3, 1, 2, "VALID", 1),
    (9, 1, 1, 1, "SAME", 3),
]


def pointwise_net(scheme: str) -> Net:
    rng = np.random.default_rng(70 + SCHEMES.index(scheme))
    net = Net()
    for n, (h, w, c_in, c_out) in enumerate(POINTWISE):
        dtype, s_in, zp_in = io_types(scheme, rng)
        x = net.input([1, h, w, c_in], dtype, s_in, zp_in)
        wt, bias_scales, s_out = weights(net, rng, scheme, (c_out, 1, 1, c_in), 0, s_in, c_in)
        info = np.iinfo(dtype)
        out = net.tensor([1, h, w, c_out], dtype, s_out, int(rng.integers(info.min, int(info.max) + 1)))
        net.op(
            "CONV_2D",
            [x, wt, bias_tensor(net, rng, bias_scales, c_out)],
            [out],
            f"conv 1x1 {h}x{w} {c_in}->{c_out}",
            padding="VALID",
            stride_h=1,
            stride_w=1,
            fused_activation_function=ACTIVATIONS[n % 4],
        )
    return net


def strip_net(scheme: str) -> Net:
    rng = np.random.default_rng(90 + SCHEMES.index(scheme))
    net = Net()
    for n, (h, w, c_in, c_out, kh, kw, dilation, pad) in enumerate(STRIPS):
        dtype, s_in, zp_in = io_types(scheme, rng)
        x = net.input([1, h, w, c_in], dtype, s_in, zp_in)
        wt, bias_scales, s_out = weights(net, rng, scheme, (c_out, kh, kw, c_in), 0, s_in, kh * kw * c_in)
        info = np.iinfo(dtype)
        oh, ow = (h, w) if pad == "SAME" else (h - (kh - 1) * dilation, w - kw + 1)
        out = net.tensor([1, oh, ow, c_out], dtype, s_out, int(rng.integers(info.min, int(info.max) + 1)))
        net.op(
            "CONV_2D",
            [x, wt, bias_tensor(net, rng, bias_scales, c_out)],
            [out],
            f"conv {kh}x{kw} d{dilation} {pad} {h}x{w} {c_in}->{c_out}",
            padding=pad,
            stride_h=1,
            stride_w=1,
            dilation_h_factor=dilation,
            fused_activation_function=ACTIVATIONS[n % 4],
        )
    return net


def column_net(scheme: str) -> Net:
    rng = np.random.default_rng(80 + SCHEMES.index(scheme))
    net = Net()
    for n, (h, kh, stride, dilation, pad, dm) in enumerate(COLUMNS):
        dtype, s_in, zp_in = io_types(scheme, rng)
        c_in = [20, 128, 7, 33, 16][n]
        c_out = c_in * dm
        x = net.input([1, h, 1, c_in], dtype, s_in, zp_in)
        wt, bias_scales, s_out = weights(net, rng, scheme, (1, kh, 1, c_out), 3, s_in, kh)
        info = np.iinfo(dtype)
        out = net.tensor([1, 1, 1, c_out], dtype, s_out, int(rng.integers(info.min, int(info.max) + 1)))
        net.op(
            "DEPTHWISE_CONV_2D",
            [x, wt, bias_tensor(net, rng, bias_scales, c_out)],
            [out],
            f"dw {kh}x1 on {h}x1 s{stride} d{dilation} {pad} m{dm}",
            padding=pad,
            stride_h=stride,
            stride_w=stride,
            dilation_h_factor=dilation,
            dilation_w_factor=1,
            depth_multiplier=dm,
            fused_activation_function=ACTIVATIONS[n % 4],
        )
    return net


@pytest.mark.parametrize("scheme", SCHEMES)
def test_pointwise_conv_as_rows(scheme, kernel_build):
    net = pointwise_net(scheme)
    check(net, run_sets(net, 71, batches=(1, 3)))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conv_rows_run_together(scheme, kernel_build):
    net = strip_net(scheme)
    # the shapes take the strips (all but a uint8 window sum from K.window_sum: the 33 channels' groups)
    calls = [fn.__name__ for step in engine.load(net.build()).plan(3)._bound_serial for fn, _ in step]
    assert sum(name.startswith("conv2d_strips") for name in calls) >= len(STRIPS) - 1, calls
    check(net, run_sets(net, 91, batches=(1, 3)))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_depthwise_column_as_row(scheme, kernel_build):
    net = column_net(scheme)
    check(net, run_sets(net, 81, batches=(1, 3)))
