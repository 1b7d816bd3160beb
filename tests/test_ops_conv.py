"""CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED on graphs built here, against the reference kernels.

Every option: SAME/VALID padding, strides, dilations, kernel shapes, depth multipliers, fused
activations, with and without bias, channel counts that do not fill the GEMM's blocks, uint8
per-tensor and int8 per-tensor and per-channel, batch 1 and 3. Many variants share one model so
that one oracle process checks them all.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.kernels import gemm
from tests.harness import F32, Net, check, run_sets

SCHEMES = ["uint8", "int8_per_tensor", "int8_per_channel"]
ACTIVATIONS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def weights(net: Net, rng, scheme: str, shape: tuple, axis: int, s_in: float, k: int):
    """Filter and bias tensors of a scheme; returns (filter index, bias scales, output scale)."""
    channels = shape[axis]
    dtype = "uint8" if scheme == "uint8" else "int8"
    info = np.iinfo(dtype)
    w = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
    if scheme == "int8_per_channel":
        scales = [float(F32(10 ** rng.uniform(-3, -1))) for _ in range(channels)]
        t = {
            "name": f"w{len(net.tensors)}",
            "shape": list(shape),
            "dtype": dtype,
            "data": w,
            "scale": scales,
            "zero_point": [0] * channels,
            "quantized_dimension": axis,
        }
        net.tensors.append(t)
        idx = len(net.tensors) - 1
    else:
        scales = [float(F32(10 ** rng.uniform(-3, -1)))]
        zp = int(rng.integers(0, 256)) if scheme == "uint8" else 0
        idx = net.const(w, dtype, scales[0], zp)
    bias_scales = [float(F32(s_in) * F32(s)) for s in scales]
    # outputs spread over the 8-bit range: acc ~ 74 * 74 * sqrt(k) codes of s_in * s_w
    s_out = float(
        F32(s_in * float(np.mean(scales)) * 74 * 74 * np.sqrt(k) / 40 * 10 ** rng.uniform(-0.3, 0.3))
    )
    return idx, bias_scales, s_out


def bias_tensor(net: Net, rng, scales: list[float], channels: int) -> int:
    data = rng.integers(-20000, 20000, size=channels).astype(np.int32)
    net.tensors.append(
        {
            "name": f"b{len(net.tensors)}",
            "shape": [channels],
            "dtype": "int32",
            "data": data,
            "scale": scales if len(scales) > 1 else scales * 1,
            "zero_point": [0] * len(scales),
        }
    )
    return len(net.tensors) - 1


def io_types(scheme: str, rng):
    dtype = "uint8" if scheme == "uint8" else "int8"
    info = np.iinfo(dtype)
    s_in = float(F32(10 ** rng.uniform(-2, 0)))
    return dtype, s_in, int(rng.integers(info.min, int(info.max) + 1))


@pytest.fixture(params=["vnni", "int16"])
def gemm_path(request, monkeypatch):
    """Both GEMM forms: uint8 x int8 (where the CPU has VNNI) and the int16 one used without it."""
    if request.param == "int16":
        monkeypatch.setattr(gemm, "VNNI", False)
    elif not gemm.VNNI:
        pytest.skip("this CPU has no AVX-512 VNNI")
    return request.param


def conv_net(scheme: str) -> Net:
    rng = np.random.default_rng(SCHEMES.index(scheme))
    net = Net()
    variants = itertools.product(
        ["SAME", "VALID"], [(1, 1), (2, 2), (1, 2)], [(1, 1), (2, 2), (1, 3)], [(1, 1), (3, 3), (5, 2)]
    )
    for n, (pad, (sh, sw), (dh, dw), (kh, kw)) in enumerate(variants):  # dilation with stride too
        dtype, s_in, zp_in = io_types(scheme, rng)
        c_in, c_out = [(3, 7), (16, 33), (5, 64), (1, 40)][n % 4]
        x = net.input([1, 11, 9, c_in], dtype, s_in, zp_in)
        w, bias_scales, s_out = weights(net, rng, scheme, (c_out, kh, kw, c_in), 0, s_in, kh * kw * c_in)
        inputs = [x, w, bias_tensor(net, rng, bias_scales, c_out)]  # the reference's CONV_2D requires a bias
        info = np.iinfo(dtype)
        out = net.tensor([1, 1, 1, c_out], dtype, s_out, int(rng.integers(info.min, int(info.max) + 1)))
        act = ACTIVATIONS[n % 4]
        label = f"conv {kh}x{kw} {pad} s{sh}{sw} d{dh}{dw} {c_in}->{c_out} {act}"
        net.op(
            "CONV_2D",
            inputs,
            [out],
            label,
            padding=pad,
            stride_h=sh,
            stride_w=sw,
            dilation_h_factor=dh,
            dilation_w_factor=dw,
            fused_activation_function=act,
        )
    return net


def depthwise_net(scheme: str, gemm_only: bool = False) -> Net:
    """Depthwise variants; gemm_only: only those with one input channel (they run on the GEMM, the
    others on the depthwise kernel, which has no VNNI/int16 switch)."""
    rng = np.random.default_rng(20 + SCHEMES.index(scheme))
    net = Net()
    variants = itertools.product(
        ["SAME", "VALID"], [(1, 1), (2, 2)], [(1, 1), (2, 3)], [(3, 3), (5, 5), (2, 3)], [1, 2, 3]
    )
    for n, (pad, (sh, sw), (dh, dw), (kh, kw), dm) in enumerate(variants):  # dilation with stride too
        if pad == "VALID" and ((kh - 1) * dh + 1 > 10 or (kw - 1) * dw + 1 > 12):
            continue  # no output at all
        dtype, s_in, zp_in = io_types(scheme, rng)
        c_in = [1, 5, 8, 17][n % 4]
        if gemm_only and c_in != 1:
            continue
        c_out = c_in * dm
        x = net.input([1, 10, 12, c_in], dtype, s_in, zp_in)
        w, bias_scales, s_out = weights(net, rng, scheme, (1, kh, kw, c_out), 3, s_in, kh * kw)
        inputs = [x, w] + ([bias_tensor(net, rng, bias_scales, c_out)] if n % 5 else [])
        info = np.iinfo(dtype)
        out = net.tensor([1, 1, 1, c_out], dtype, s_out, int(rng.integers(info.min, int(info.max) + 1)))
        act = ACTIVATIONS[n % 4]
        label = f"dw {kh}x{kw} {pad} s{sh}{sw} d{dh}{dw} c{c_in} m{dm} {act}"
        net.op(
            "DEPTHWISE_CONV_2D",
            inputs,
            [out],
            label,
            padding=pad,
            stride_h=sh,
            stride_w=sw,
            dilation_h_factor=dh,
            dilation_w_factor=dw,
            depth_multiplier=dm,
            fused_activation_function=act,
        )
    return net


def fc_net(scheme: str) -> Net:
    rng = np.random.default_rng(40 + SCHEMES.index(scheme))
    net = Net()
    # (and a depth above LONG_ROW: fc_packed's stored sums; 3 blocks of units: the int8 rows copied)
    shapes = [([1, 7], 1), ([1, 64], 10), ([1, 3, 5], 37), ([1, 2, 2, 9], 33), ([1, 4, 6], 5)]
    shapes += [([1, 2, 100], 40), ([1, 6, 8], 70)]
    for n, ((in_shape, units), keep) in enumerate(itertools.product(shapes, [False, True])):
        dtype, s_in, zp_in = io_types(scheme, rng)
        depth = in_shape[-1] if keep else int(np.prod(in_shape[1:]))
        if not keep and len(in_shape) > 2:
            depth = in_shape[-1]  # rows = all leading elements / depth
        x = net.input(in_shape, dtype, s_in, zp_in)
        w, bias_scales, s_out = weights(net, rng, scheme, (units, depth), 0, s_in, depth)
        inputs = [x, w] + ([bias_tensor(net, rng, bias_scales, units)] if n % 3 else [])
        info = np.iinfo(dtype)
        out_shape = [*in_shape[:-1], units] if keep else [int(np.prod(in_shape)) // depth, units]
        out = net.tensor(out_shape, dtype, s_out, int(rng.integers(info.min, int(info.max) + 1)))
        act = ACTIVATIONS[n % 4]
        net.op(
            "FULLY_CONNECTED",
            inputs,
            [out],
            f"fc {in_shape}->{units} keep={keep} {act}",
            keep_num_dims=keep,
            fused_activation_function=act,
        )
    return net


def fc_ties_net(scheme: str) -> Net:
    """FULLY_CONNECTED where s_in * s_w / s_out is 2**-k (powers of two throughout: exact in float32 and
    in double), so that many (acc + bias) * scale fall on a half: the reference's rounding half away
    from zero, in every fc_packed mode (k quads read in place, rows copied, sums stored); under RELU and
    RELU6 too (a clamp at the zero point, where the negative halves must still end at the clamp)."""
    rng = np.random.default_rng(48 + SCHEMES.index(scheme))
    net = Net()
    cases = [([1, 5, 16], 20, 5), ([1, 9, 6], 36, 4), ([1, 4, 96], 24, 6)]
    acts = ["NONE", "RELU", "RELU6"]
    for n, ((in_shape, units, k), act) in enumerate(itertools.product(cases, acts)):
        dtype = "uint8" if scheme == "uint8" else "int8"
        info = np.iinfo(dtype)
        x = net.input(in_shape, dtype, 2.0**-7, int(rng.integers(info.min, int(info.max) + 1)))
        w = rng.integers(-20, 21, size=(units, in_shape[-1])).astype(dtype if dtype == "int8" else "int16")
        if dtype == "uint8":
            w = (w + 128).astype("uint8")
        channels = units if scheme == "int8_per_channel" else 1
        if channels > 1:
            t = {
                "name": f"w{len(net.tensors)}",
                "shape": [units, in_shape[-1]],
                "dtype": dtype,
                "data": w,
                "scale": [2.0**-6] * channels,
                "zero_point": [0] * channels,
                "quantized_dimension": 0,
            }
            net.tensors.append(t)
            filt = len(net.tensors) - 1
        else:
            filt = net.const(w, dtype, 2.0**-6, 128 if dtype == "uint8" else 0)
        bias = bias_tensor(net, rng, [2.0**-13] * channels, units)
        net.tensors[bias]["data"] = rng.integers(-50, 51, size=units).astype(np.int32)  # (outputs in range)
        out = net.tensor(
            [in_shape[1], units],
            dtype,
            2.0 ** (k - 13),
            int(rng.integers(-20, 21)) + (128 if dtype == "uint8" else 0),
        )
        net.op(
            "FULLY_CONNECTED",
            [x, filt, bias],
            [out],
            f"fc ties {in_shape}->{units} 2**-{k} {act}",
            fused_activation_function=act,
        )
    return net


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fully_connected_ties(scheme, gemm_path, kernel_build):
    net = fc_ties_net(scheme)
    check(net, run_sets(net, 13, batches=(1, 3)))


# each sweep under every kernel build: VNNI / int16 GEMM x serial / parallel (forced, whatever the work
# size), against one reference run; the portable builds (no AVX-512) run these models in test_portable.py
SWEEPS = {"conv": (conv_net, 10), "depthwise": (depthwise_net, 11), "fc": (fc_net, 12)}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_conv2d_options(scheme, gemm_path, kernel_build):
    net = conv_net(scheme)
    check(net, run_sets(net, 10, batches=(1, 3)))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_depthwise_conv2d_options(scheme, gemm_path, kernel_build):
    # the int16 GEMM variant runs only the one-channel cases: the others never reach the GEMM
    net = depthwise_net(scheme, gemm_only=gemm_path == "int16")
    check(net, run_sets(net, 11, batches=(1, 3)))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_fully_connected_options(scheme, gemm_path, kernel_build):
    net = fc_net(scheme)
    check(net, run_sets(net, 12, batches=(1, 3)))


def test_fully_connected_values_beyond_int32():
    """The reference's double rule converts each rounded value to int32 (x86: INT32_MIN out of range) and
    adds the zero point in int32 (wrapping), then clamps: multipliers that take some values past 2**31
    (s_w; a mutated model of scripts/fuzz.py --fields found it), 3 x 715827840 = 2**31 - 128 landing past
    it only with a zero point of 128 or more; every value of the first input, in rows of 256 (where the
    fused epilogue would clamp first) and of one (sums)."""
    net = Net()
    x = net.input([1, 6], "uint8", 0.1, 40)
    w = np.array([[1] * 6, [-1] * 6, [5, -3, 0, 2, -7, 1], [1, 0, 0, 0, 0, 0], [0] * 6]) + 128
    for s_w, zp in ((1.7e8, 10), (1.8e8, 10), (715827840.0, 127), (715827840.0, 200), (1e12, 10), (1e30, 200)):
        net.op(
            "FULLY_CONNECTED",
            [x, net.const(w, "uint8", s_w, 128), -1],
            [net.tensor([1, 5], "uint8", 0.1, zp)],
            f"fc s_w={s_w:g} zp={zp}",
            fused_activation_function="NONE",
        )
    rows = np.full((256, 6), 40, np.uint8)  # (the first input alone: its value times each row's first weight)
    rows[:, 0] = np.arange(256)
    check(net, [[rows], [rows[43:44]]])
