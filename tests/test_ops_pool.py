"""MAX_POOL_2D and AVERAGE_POOL_2D against TFLite's reference kernels, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from tests.harness import Net, check, qparams, run_sets

pytestmark = pytest.mark.usefixtures("litert")

# (input H, W, C), (filter h, w), (stride h, w): odd and even extents, windows hanging over the
# padding on either side, windows larger than the input, global pooling
GEOMETRIES = [
    ((11, 9, 5), (2, 2), (2, 2)),
    ((11, 9, 5), (3, 3), (1, 1)),
    ((11, 9, 5), (3, 2), (2, 3)),
    ((8, 8, 3), (5, 5), (3, 3)),
    ((6, 7, 2), (1, 1), (2, 2)),
    ((3, 3, 16), (3, 3), (2, 2)),  # person_detect's average pool
    ((24, 24, 4), (3, 3), (3, 3)),  # mnist's max pool
    ((7, 7, 8), (7, 7), (1, 1)),  # global pooling
    ((3, 4, 2), (5, 6), (1, 2)),  # SAME window larger than the input
    ((1, 1, 3), (1, 1), (1, 1)),
]


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_pool(op, dtype, kernel_build):
    rng = np.random.default_rng(0)
    net = Net()
    acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
    k = 0
    for (h, w, c), (fh, fw), (sh, sw) in GEOMETRIES:
        for padding in ("SAME", "VALID"):
            if padding == "VALID" and (fh > h or fw > w):
                continue
            oh = (h + sh - 1) // sh if padding == "SAME" else (h - fh + sh) // sh
            ow = (w + sw - 1) // sw if padding == "SAME" else (w - fw + sw) // sw
            s, z = qparams(rng, dtype, -2, -1)  # the reference pools raw values: one quantization
            x = net.input([1, h, w, c], dtype, s, z)
            y = net.tensor([1, oh, ow, c], dtype, s, z)
            act = acts[k % 4]
            k += 1
            net.op(
                op,
                [x],
                [y],
                f"{op} {dtype} {h}x{w}x{c} f{fh}x{fw} s{sh}x{sw} {padding} {act}",
                padding=padding,
                filter_height=fh,
                filter_width=fw,
                stride_h=sh,
                stride_w=sw,
                fused_activation_function=act,
            )
    check(net, run_sets(net, 1, (1, 1, 3)))


def test_average_pool_rounding_extremes():
    """Sums that sit exactly on .5 and extreme values: constant inputs at the ends of the range."""
    net = Net()
    for dtype in ("uint8", "int8"):
        for f in (2, 3, 4):
            x = net.input([1, 5, 5, 1], dtype, 0.1, 0)
            y = net.tensor([1, 3, 3, 1] if f != 4 else [1, 2, 2, 1], dtype, 0.1, 0)
            net.op(
                "AVERAGE_POOL_2D",
                [x],
                [y],
                f"avg {dtype} f{f}",
                padding="SAME" if f != 4 else "VALID",
                filter_height=f,
                filter_width=f,
                stride_h=2,
                stride_w=2 if f != 4 else 1,
            )
    sets = []
    for v in (0, 1, 127, 128, 255):
        sets.append([np.full((1, 5, 5, 1), v, np.uint8).view(net.tensors[i]["dtype"]) for i in net.inputs])
    rng = np.random.default_rng(2)
    sets.append(
        [rng.integers(0, 2, (1, 5, 5, 1)).astype(np.uint8).view(net.tensors[i]["dtype"]) for i in net.inputs]
    )
    sets.append(
        [
            (rng.integers(0, 2, (1, 5, 5, 1)) * 255).astype(np.uint8).view(net.tensors[i]["dtype"])
            for i in net.inputs
        ]
    )
    check(net, sets)
