"""Convolutions on the GEMM's row path (gemm.tiles_requantize) and its packed epilogue, against the oracles.

Rows of whole tiles (widths 8 to 19), output channels of one half (8, 16) and of two (24, 40, 96), K from 3
to 144, SAME/VALID padding, strides, a dilation, every fused activation; uint8 per-tensor (with the
filter zero point's window sums), int8 per-tensor and per-channel; batch 1 and 3. The same graphs run
under numerics="litert" against LiteRT and "tflm" against TFLite Micro (int8).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.harness import Net, check, run_sets
from tests.litert_check import check_litert
from tests.test_ops_conv import (
    ACTIVATIONS,
    SCHEMES,
    bias_tensor,
    gemm_path,  # noqa: F401 (fixture)
    io_types,
    weights,
)

# (h, w, c_in, c_out, kernel, stride, dilation, padding)
SHAPES = [
    (6, 12, 8, 16, 1, 1, 1, "VALID"),
    (9, 19, 3, 8, 3, 2, 1, "SAME"),
    (5, 16, 16, 96, 1, 1, 1, "VALID"),
    (7, 13, 16, 16, 3, 1, 1, "SAME"),
    (8, 10, 5, 40, 3, 1, 2, "SAME"),
    (6, 9, 24, 24, 1, 1, 1, "SAME"),
]


def packed_net(scheme: str) -> Net:
    rng = np.random.default_rng(300 + SCHEMES.index(scheme))
    net = Net()
    for n, (h, w, c_in, c_out, k, stride, dil, pad) in enumerate(SHAPES):
        dtype, s_in, zp_in = io_types(scheme, rng)
        x = net.input([1, h, w, c_in], dtype, s_in, zp_in)
        wt, bias_scales, s_out = weights(net, rng, scheme, (c_out, k, k, c_in), 0, s_in, k * k * c_in)
        info = np.iinfo(dtype)
        span = (k - 1) * dil + 1  # the output's shape, written out: TFLite Micro does not infer it
        oh, ow = [-(-v // stride) if pad == "SAME" else (v - span) // stride + 1 for v in (h, w)]
        out = net.tensor([1, oh, ow, c_out], dtype, s_out, int(rng.integers(info.min, int(info.max) + 1)))
        net.op(
            "CONV_2D",
            [x, wt, bias_tensor(net, rng, bias_scales, c_out)],
            [out],
            f"conv {k}x{k} {h}x{w} s{stride} d{dil} {pad} {c_in}->{c_out}",
            padding=pad,
            stride_h=stride,
            stride_w=stride,
            dilation_h_factor=dil,
            dilation_w_factor=dil,
            fused_activation_function=ACTIVATIONS[n % 4],
        )
    return net


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.usefixtures("gemm_path")
def test_row_path_against_reference(scheme, kernel_build):
    net = packed_net(scheme)
    check(net, run_sets(net, 7, batches=(1, 3)))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_row_path_against_litert(scheme):
    net = packed_net(scheme)
    check_litert(net.build(), run_sets(net, 8, batches=(1, 3)))


@pytest.mark.usefixtures("tflm")
@pytest.mark.parametrize("scheme", ["int8_per_tensor", "int8_per_channel"])
def test_row_path_against_tflm(scheme):
    from tests.test_tflm import check_tflm, random_sets

    net = packed_net(scheme)
    check_tflm(net, random_sets(net, 9, n=2), differs=False)
