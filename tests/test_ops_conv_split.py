"""Convolutions whose output rows are too few for the threads, against the reference kernels.

K.conv2d then splits each row's channel blocks into groups (conv2d._channel_groups), and a pointwise
convolution's pixels become rows of a width that gives each thread rows (conv2d._pointwise_rows).
A group runs without the spare sum lane, so uint8 filters with a zero point sum their windows in the
kernel. Shapes: one row (7x7 pointwise), 14x14 pointwise as rows of 28, strided and padded 3x3 and
1x1 with few rows, a filter row dilated along x, odd channel counts; batch 1 and 2.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.harness import Net, check, run_sets
from tests.test_ops_conv import ACTIVATIONS, SCHEMES, bias_tensor, io_types, weights

# (h, w, c_in, c_out, kh, kw, stride, dilation_w, padding)
SHAPES = [
    (7, 7, 40, 97, 1, 1, 1, 1, "VALID"),
    (14, 14, 24, 70, 1, 1, 1, 1, "SAME"),
    (9, 9, 5, 67, 3, 3, 2, 1, "SAME"),
    (8, 8, 16, 64, 1, 1, 2, 1, "VALID"),
    (6, 6, 7, 33, 1, 3, 1, 2, "SAME"),
    (3, 5, 3, 129, 3, 3, 1, 1, "SAME"),
]


# blocks of 16 channels or fewer, which multiply their lower half only (gemm._tile_requantize): oc 16,
# 8 and 80 (a last block of 16) with rows enough for one group, so that uint8 filters with a zero point
# keep their sum lane, at 16 (the upper half: both halves run) or below
HALVES = [
    (12, 12, 5, 16, 3, 3, 1, 1, "SAME"),
    (16, 10, 3, 8, 3, 3, 2, 1, "SAME"),
    (12, 12, 4, 80, 3, 3, 1, 1, "SAME"),
    (12, 16, 24, 16, 1, 1, 1, 1, "VALID"),
]


# output rows of 4k + 1 and 4k + 2 pixels: their last pixels in tiles of one (conv.tile_requantize_part),
# the first layer of kws (10x4, one channel, stride 2: rows of 5) among them
ROW_ENDS = [
    (12, 10, 1, 40, 10, 4, 2, 1, "SAME"),
    (7, 10, 5, 33, 3, 3, 1, 1, "SAME"),
    (6, 6, 16, 16, 3, 3, 1, 1, "SAME"),
    (5, 13, 3, 64, 1, 3, 1, 1, "SAME"),
]


def split_net(scheme: str, shapes=SHAPES) -> Net:
    rng = np.random.default_rng(90 + SCHEMES.index(scheme))
    net = Net()
    for n, (h, w, c_in, c_out, kh, kw, stride, dw, pad) in enumerate(shapes):
        dtype, s_in, zp_in = io_types(scheme, rng)
        x = net.input([1, h, w, c_in], dtype, s_in, zp_in)
        wt, bias_scales, s_out = weights(net, rng, scheme, (c_out, kh, kw, c_in), 0, s_in, kh * kw * c_in)
        info = np.iinfo(dtype)
        out = net.tensor([1, 1, 1, c_out], dtype, s_out, int(rng.integers(info.min, int(info.max) + 1)))
        net.op(
            "CONV_2D",
            [x, wt, bias_tensor(net, rng, bias_scales, c_out)],
            [out],
            f"conv {kh}x{kw} {h}x{w} s{stride} dw{dw} {pad} {c_in}->{c_out}",
            padding=pad,
            stride_h=stride,
            stride_w=stride,
            dilation_h_factor=1,
            dilation_w_factor=dw,
            fused_activation_function=ACTIVATIONS[n % 4],
        )
    return net


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conv_split_over_channel_groups(scheme, kernel_build):
    net = split_net(scheme)
    check(net, run_sets(net, 91, batches=(1, 2)))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conv_blocks_of_16_channels_or_fewer(scheme, kernel_build):
    net = split_net(scheme, HALVES)
    check(net, run_sets(net, 92, batches=(1, 2)))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conv_rows_ending_in_one_or_two_pixels(scheme, kernel_build):
    net = split_net(scheme, ROW_ENDS)
    check(net, run_sets(net, 93, batches=(1, 3)))


def test_split_plan():
    """The shapes above do take the split: few rows get channel groups, 14x14 pixels rows of 28."""
    from engine.kernels.gemm import PX
    from engine.ops import conv2d

    assert conv2d._channel_groups(1, 4, 2) == 4
    assert conv2d._channel_groups(5, 3, 2) == 2
    assert conv2d._channel_groups(24, 5, 2) == 1
    shape, win = conv2d._pointwise_rows(
        (1, 14, 14, 24), (70, 1, 1, 24), conv2d.Window(1, 1, 1, 1, 14, 14, 0, 0, 14, 14), 2
    )
    assert shape == (1, 7, 28, 24) and win.ow % PX == 0
