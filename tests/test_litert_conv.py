"""numerics="litert": CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED against LiteRT's default interpreter
(OpResolverType.AUTO, x86), one-op graphs, every tensor and the delegate's partition (tests/litert_check.py).

- delegated (XNNPACK): the fp32 rule, float32(acc) * float32(s_in * s_w / s_out), half to even: every
  option of the reference sweeps (padding, strides, dilations, activations, uint8 / int8 per tensor /
  per channel, batch 1 and 3) and crafted power-of-two scales where every odd accumulator is a tie;
- refused by the delegate: LiteRT's optimized builtin kernels (ruy's half-up rounding for CONV_2D and
  FULLY_CONNECTED, the reference rule for DEPTHWISE_CONV_2D), one graph on each side of each check.
Each crafted case also shows that the reference profile differs from LiteRT there (the test can fail).
"""

from __future__ import annotations

import itertools
import zlib

import numpy as np
import pytest

import engine
from engine.errors import UnsupportedError
from engine.profiles import litert
from tests.harness import F32, Net, run_sets
from tests.litert_check import check_litert, compare_litert
from tests.oracle import OracleError, litert_run_many, require
from tests.test_ops_conv import ACTIVATIONS, SCHEMES, bias_tensor, conv_net, fc_net, io_types, weights
from tests.test_ops_conv_rows import strip_net


@pytest.fixture(autouse=True)
def _oracle():
    require("litert")


@pytest.fixture(params=["vnni", "int16"])
def gemm_path(request, monkeypatch):
    """Both GEMM forms (test_ops_conv's fixture): uint8 x int8 with VNNI, and the int16 one."""
    from engine.kernels import gemm

    if request.param == "int16":
        monkeypatch.setattr(gemm, "VNNI", False)
    elif not gemm.VNNI:
        pytest.skip("this CPU has no AVX-512 VNNI")
    return request.param


def depthwise_net(scheme: str) -> Net:
    """test_ops_conv's depthwise variants, each with a bias (LiteRT's default interpreter dies on a
    quantized depthwise without one)."""
    rng = np.random.default_rng(60 + SCHEMES.index(scheme))
    net = Net()
    variants = itertools.product(
        ["SAME", "VALID"], [(1, 1), (2, 2)], [(1, 1), (2, 3)], [(3, 3), (5, 5), (2, 3)], [1, 2, 3]
    )
    for n, (pad, (sh, sw), (dh, dw), (kh, kw), dm) in enumerate(variants):
        if pad == "VALID" and ((kh - 1) * dh + 1 > 10 or (kw - 1) * dw + 1 > 12):
            continue
        dtype, s_in, zp_in = io_types(scheme, rng)
        c_in = [1, 5, 8, 17][n % 4]
        c_out = c_in * dm
        x = net.input([1, 10, 12, c_in], dtype, s_in, zp_in)
        w, bias_scales, s_out = weights(net, rng, scheme, (1, kh, kw, c_out), 3, s_in, kh * kw)
        info = np.iinfo(dtype)
        out = net.tensor([1, 1, 1, c_out], dtype, s_out, int(rng.integers(info.min, int(info.max) + 1)))
        net.op(
            "DEPTHWISE_CONV_2D",
            [x, w, bias_tensor(net, rng, bias_scales, c_out)],
            [out],
            f"dw {kh}x{kw} {pad} s{sh}{sw} d{dh}{dw} c{c_in} m{dm}",
            padding=pad,
            stride_h=sh,
            stride_w=sw,
            dilation_h_factor=dh,
            dilation_w_factor=dw,
            depth_multiplier=dm,
            fused_activation_function=ACTIVATIONS[n % 4],
        )
    return net


# strips: convolutions whose rows run together (tests/test_ops_conv_rows.py)
SWEEPS = {
    "conv": (conv_net, 10),
    "depthwise": (depthwise_net, 11),
    "fc": (fc_net, 12),
    "strips": (strip_net, 13),
}


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("sweep", list(SWEEPS))
def test_option_sweeps(sweep, scheme, gemm_path, kernel_build):
    """Every option of the reference sweeps, all delegated (FULLY_CONNECTED without bias too)."""
    make, seed = SWEEPS[sweep]
    net = make(scheme)
    model = net.build()
    res = check_litert(model, run_sets(net, seed, batches=(1, 3)))
    assert res.tensors >= 2 * len(net.ops)


# --- crafted one-op graphs ---------------------------------------------------------------------------------


def one_op(
    op: str,
    dtype: str = "int8",
    s_in: float = 0.5,
    s_w=0.25,
    s_out: float = 0.5,
    bias: bool = True,
    act: str = "NONE",
    batch: int = 1,
    qdim: int | None = None,
) -> Net:
    """A single CONV_2D (3x3, 6 -> 5 channels), DEPTHWISE_CONV_2D (3x3, 6 channels, multiplier 1) or
    FULLY_CONNECTED (54 -> 16) on an input [batch, 5, 5, 6] (FC: [batch, 54]) with full-range weights.
    Powers of two for the scales make s_in * s_w / s_out exact, so that ties are common. qdim: the
    filter's quantized_dimension (default: the channel axis for int8, 0 for uint8, as converters write)."""
    # a seed of the parameters that is the same in every process (hash() of a str is not)
    rng = np.random.default_rng(zlib.crc32(repr((op, dtype, s_in, s_w, s_out, bias, act)).encode()))
    net = Net()
    zp_in = 3 if dtype == "int8" else 131
    shape = [batch, 54] if op == "FULLY_CONNECTED" else [batch, 5, 5, 6]
    x = net.input(shape, dtype, s_in, zp_in)
    wshape = {"CONV_2D": (5, 3, 3, 6), "DEPTHWISE_CONV_2D": (1, 3, 3, 6), "FULLY_CONNECTED": (16, 54)}[op]
    axis = 3 if op == "DEPTHWISE_CONV_2D" else 0
    channels = wshape[axis]
    w_zp = 0 if dtype == "int8" else 120
    # weights in {-1, 0, 1} (+ zero point): small accumulators, outputs inside the range, many ties
    w = (w_zp + rng.choice([-1, 0, 1], size=wshape, p=[0.15, 0.7, 0.15])).astype(dtype)
    scales = [float(s_w)] if np.isscalar(s_w) else [float(s_w[c % len(s_w)]) for c in range(channels)]
    t = {"name": "w", "shape": list(wshape), "dtype": dtype, "data": w, "scale": scales}
    t["zero_point"] = [w_zp] * len(scales)
    t["quantized_dimension"] = (axis if dtype == "int8" else 0) if qdim is None else qdim
    net.tensors.append(t)
    inputs = [x, len(net.tensors) - 1]
    if bias:
        b = rng.integers(-40, 40, size=channels).astype(np.int32)
        bias_scales = [float(F32(s_in) * F32(s)) for s in scales]
        net.tensors.append(
            {"name": "b", "shape": [channels], "dtype": "int32", "data": b, "scale": bias_scales}
            | {"zero_point": [0] * len(scales)}
        )
        inputs.append(len(net.tensors) - 1)
    zp_out = -5 if dtype == "int8" else 128
    if op == "FULLY_CONNECTED":
        out = net.tensor([batch, channels], dtype, s_out, zp_out)
        net.op(op, inputs, [out], op, fused_activation_function=act)
    else:
        out = net.tensor([batch, 3, 3, channels], dtype, s_out, zp_out)
        opts = {"padding": "VALID", "stride_h": 1, "stride_w": 1, "fused_activation_function": act}
        if op == "DEPTHWISE_CONV_2D":
            opts["depth_multiplier"] = 1
        net.op(op, inputs, [out], op, **opts)
    return net


def _compare(net: Net, seed: int = 0, batches=(1, 1, 1)) -> tuple[int, int, int]:
    """(elements compared, differing under "litert", differing under "reference"), asserting the
    partition and that "litert" equals LiteRT."""
    model = net.build()
    sets = [net.random_inputs(np.random.default_rng(seed), b) for b in batches]
    res = check_litert(model, sets)
    ref = compare_litert(model, sets, numerics="reference")
    return res.elements, res.differing, ref.differing


OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"]


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("op", OPS)
def test_ties_round_half_to_even(op, dtype):
    """s_in * s_w / s_out = 1/2 and 1/4: every odd accumulator (or one in four) is a tie; XNNPACK rounds
    it to even, the reference away from zero."""
    for s_w in (0.25, 0.125):
        net = one_op(op, dtype, s_in=0.5, s_w=s_w, s_out=0.25)
        assert _delegated(net)
        _, _, ref_differs = _compare(net, batches=(3, 3))
        assert ref_differs > 0, f"{op} {dtype} s_w={s_w}: the reference agrees with XNNPACK: no tie was hit"


@pytest.mark.parametrize("op", OPS)
def test_per_channel_ties_and_batch(op):
    scales = [0.25, 0.125, 0.0625, 0.5, 0.03125, 0.25]
    net = one_op(op, "int8", s_in=0.5, s_w=scales, s_out=0.25, batch=3)
    _, _, ref_differs = _compare(net, batches=(3, 3))
    assert ref_differs > 0


@pytest.mark.parametrize("act", ["RELU", "RELU6", "RELU_N1_TO_1"])
@pytest.mark.parametrize("op", OPS)
def test_activations_clamp_in_float(op, act):
    _compare(one_op(op, "int8", s_in=0.5, s_w=0.25, s_out=0.0625, act=act))


# --- the delegate's checks, each on both sides ---------------------------------------------------------------


def _delegated(net: Net) -> bool:
    g = engine.load(net.build(), numerics="litert").graph
    return litert.delegated(g.ops[0], g)


def _refused_by_both(net: Net, match: str) -> None:
    """LiteRT's default interpreter fails on the model, and numerics="litert" refuses it too."""
    with pytest.raises(OracleError):
        litert_run_many(net.build(), [net.random_inputs(np.random.default_rng(0), 1)])
    with pytest.raises(UnsupportedError, match=match):
        engine.load(net.build(), numerics="litert")


BELOW_256 = float(np.nextafter(F32(256.0), F32(0)))


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("op", OPS)
def test_requantization_scale_256(op, dtype):
    """s_in * s_w / s_out just below 256 (float32): XNNPACK runs it; at 256 the delegate takes the op
    but XNNPACK refuses to create it, and LiteRT's default interpreter fails to prepare the model."""
    if op == "DEPTHWISE_CONV_2D" and dtype == "uint8":
        pytest.skip("see test_uint8_quantized_dimension: the same check on the builtin side")
    below = one_op(op, dtype, s_in=1.0, s_w=BELOW_256, s_out=1.0)
    assert _delegated(below)
    _compare(below)
    _refused_by_both(one_op(op, dtype, s_in=1.0, s_w=256.0, s_out=1.0), ">= 256")


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_conv_without_bias_is_refused(dtype):
    """LiteRT's CONV_2D requires a bias on quantized data (conv.cc: has_bias); its DEPTHWISE_CONV_2D
    dies without one (SIGSEGV: not run here, see test_litert.py)."""
    _refused_by_both(one_op("CONV_2D", dtype, bias=False), "without bias")


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_fully_connected_without_bias_is_delegated(dtype):
    net = one_op("FULLY_CONNECTED", dtype, s_in=0.5, s_w=0.125, s_out=0.25, bias=False)
    assert _delegated(net)
    _compare(net)


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_unquantized_bias_stays_builtin(op):
    """A bias without quantization: the delegate leaves the op to the builtin kernels (found by
    scripts/fuzz.py --fields --numerics litert; FULLY_CONNECTED checks the bias scale, refused by both)."""
    net = one_op(op, "int8")
    del net.tensors[2]["scale"], net.tensors[2]["zero_point"]
    assert not _delegated(net)
    _compare(net)


def test_per_tensor_bias_of_per_channel_filter_is_refused():
    net = one_op("CONV_2D", "int8", s_w=[0.25, 0.125, 0.5, 0.25, 0.0625])
    net.tensors[2]["scale"], net.tensors[2]["zero_point"] = [0.125], [0]
    _refused_by_both(net, "per-tensor bias")


@pytest.mark.parametrize("op", OPS)
def test_uint8_quantized_dimension(op):
    """A uint8 filter that says quantized_dimension != 0 (per tensor all the same): the delegate refuses
    it, LiteRT's optimized builtin kernel runs it: CONV_2D and FULLY_CONNECTED through ruy (the final
    right shift rounded half up: s = 1/4 is multiplier 2**30, shift -1, so negative ties differ from the
    reference), DEPTHWISE_CONV_2D with the reference's rounding; scale 256 is no limit there. With
    quantized_dimension 0 the same op is delegated."""
    assert _delegated(one_op(op, "uint8", s_in=0.5, s_w=0.125, s_out=0.25, qdim=0))
    net = one_op(op, "uint8", s_in=0.5, s_w=0.125, s_out=0.25, qdim=1)
    assert not _delegated(net)
    _, _, ref_differs = _compare(net, batches=(1, 3))
    if op != "DEPTHWISE_CONV_2D":
        assert ref_differs > 0, "ruy's rounding never differed from the reference's here"
    big = one_op(op, "uint8", s_in=1.0, s_w=1000.0, s_out=1.0, qdim=1)
    assert not _delegated(big)
    _compare(big)


# --- int16 activations (16x8): the delegate takes none; LiteRT's builtin kernels are the reference's ---------


@pytest.mark.parametrize("case", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
def test_int16x8_runs_the_builtin_reference_arithmetic(case, monkeypatch):
    """test_int16's 16x8 sweeps (per channel and per tensor, int64 / no bias, strides, dilations,
    activations, int64 sums), each checked against the default interpreter instead of the reference."""
    import tests.test_int16 as t16

    results = []

    def check(net, sets, model=None):
        model = model or net.build()
        g = engine.load(model, numerics="litert").graph
        assert not any(litert.delegated(op, g) for op in g.ops)
        results.append(check_litert(model, sets))

    monkeypatch.setattr(t16, "check", check)
    if case == "FULLY_CONNECTED":
        t16.test_fully_connected_int16()
    else:
        t16.test_conv_int16(case)
    assert results and results[0].elements > 0


def test_int16x8_fully_connected_sums_in_int32_and_rounds_as_ruy():
    """LiteRT's optimized 16x8 FULLY_CONNECTED (per tensor and per channel): s = 1/4 (multiplier 2**30,
    shift -1) with weights in {-1, 0, 1}: negative ties rounded half up; 700 products of +-32767 * 127:
    sums past 2**31 wrap in int32. The reference profile (int64 sums, double rescale) differs on both."""
    rng = np.random.default_rng(1)
    net = Net()
    for per_channel in (False, True):
        for depth in (16, 700):
            x = net.input([4, depth], "int16", 0.5, 0)
            if depth == 16:
                w, s_w, s_out = rng.choice([-1, 0, 1], size=(8, depth)).astype(np.int8), 0.125, 0.25
            else:
                w, s_w, s_out = np.full((8, depth), 127, np.int8), 2.0**-20, 2.0**-14
                w[::2] = -127
            wt = net.tensor(w.shape, "int8", data=w)
            n = 8 if per_channel else 1
            net.tensors[wt].update(scale=[s_w] * n, zero_point=[0] * n, quantized_dimension=0)
            y = net.tensor([4, 8], "int16", s_out, 0)
            net.op("FULLY_CONNECTED", [x, wt, -1], [y], f"16x8 FC per_channel={per_channel} depth={depth}")
    sets = []
    for _ in range(3):
        small = [rng.integers(-300, 300, (4, 16)).astype(np.int16)]
        big = [(np.full((4, 700), 32767) * rng.choice([-1, 1], (4, 1))).astype(np.int16)]
        sets.append((small + big) * 2)
    model = net.build()
    check_litert(model, sets)
    assert compare_litert(model, sets, numerics="reference").differing > 0


@pytest.mark.parametrize("how", ["quantized_bias_type INT64", "int64 bias"])
def test_int16x8_fully_connected_int64_bias_type_runs_the_reference(how):
    """LiteRT's optimized 16x8 FULLY_CONNECTED leaves ruy for the reference kernel (int64 sums,
    MultiplyByQuantizedMultiplier) when the options say quantized_bias_type INT64 or the bias is int64
    (fully_connected.cc, EvalQuantized; zoo/int16x8_mixed's dense layers): the ruy graphs of the test
    above (negative ties, sums past 2**31), which ruy's arithmetic would get wrong, equal the reference."""
    rng = np.random.default_rng(1)
    net = Net()
    for depth in (16, 700):
        x = net.input([4, depth], "int16", 0.5, 0)
        if depth == 16:
            w, s_w, s_out = rng.choice([-1, 0, 1], size=(8, depth)).astype(np.int8), 0.125, 0.25
        else:
            w, s_w, s_out = np.full((8, depth), 127, np.int8), 2.0**-20, 2.0**-14
            w[::2] = -127
        wt = net.tensor(w.shape, "int8", s_w, 0, data=w)
        y = net.tensor([4, 8], "int16", s_out, 0)
        if how == "int64 bias":
            b = net.tensor([8], "int64", 0.5 * s_w, 0, data=np.arange(-4, 4, dtype=np.int64))
            net.op("FULLY_CONNECTED", [x, wt, b], [y], f"16x8 FC int64 bias depth={depth}")
        else:
            net.op("FULLY_CONNECTED", [x, wt, -1], [y], f"16x8 FC depth={depth}", quantized_bias_type="INT64")
    sets = []
    for _ in range(3):
        small = [rng.integers(-300, 300, (4, 16)).astype(np.int16)]
        big = [(np.full((4, 700), 32767) * rng.choice([-1, 1], (4, 1))).astype(np.int16)]
        sets.append(small + big)
    model = net.build()
    check_litert(model, sets)
    assert compare_litert(model, sets, numerics="reference").differing == 0


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("scheme", ["uint8", "int8_per_tensor", "int8_per_channel", "int16"])
def test_transpose_conv(scheme, batch):
    """test_ops_transpose_conv's sweep: XNNPACK takes TRANSPOSE_CONV (fp32 rule) unless a stride exceeds
    the kernel (the 1x1 kernel at strides 2x3 here: the builtin kernel, the reference's rounding); int16
    is never delegated. The partition is checked op by op."""
    from tests.test_ops_transpose_conv import tconv_net

    net = tconv_net(scheme, batch)
    model = net.build()
    g = engine.load(model, numerics="litert").graph
    if scheme != "int16":
        assert [litert.delegated(op, g) for op in g.ops].count(False) == 2
    sets = run_sets(net, 31, batches=(batch, batch))
    check_litert(model, sets)
    if scheme != "int16":
        assert compare_litert(model, sets, numerics="reference").differing > 0


def test_float_convolutions_are_refused():
    """LiteRT delegates float32 CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED to XNNPACK, whose float
    kernels sum in their own order (the reference profile's loops differ on most elements, measured): the
    profile refuses them rather than be inexact."""
    rng = np.random.default_rng(0)
    for op, wshape, xshape in (
        ("CONV_2D", (16, 3, 3, 8), [1, 9, 9, 8]),
        ("DEPTHWISE_CONV_2D", (1, 3, 3, 8), [1, 9, 9, 8]),
        ("FULLY_CONNECTED", (40, 300), [1, 300]),
    ):
        net = Net()
        x = net.input(xshape, "float32")
        w = net.const(rng.normal(size=wshape).astype(np.float32), "float32")
        b = net.const(
            rng.normal(size=wshape[0] if op != "DEPTHWISE_CONV_2D" else 8).astype(np.float32), "float32"
        )
        channels = wshape[0] if op != "DEPTHWISE_CONV_2D" else 8
        y = net.tensor([1, channels] if op == "FULLY_CONNECTED" else [1, 9, 9, channels], "float32")
        opts = {} if op == "FULLY_CONNECTED" else {"padding": "SAME", "stride_h": 1, "stride_w": 1}
        if op == "DEPTHWISE_CONV_2D":
            opts["depth_multiplier"] = 1
        net.op(op, [x, w, b], [y], op, **opts)
        model = net.build()
        xs = [rng.normal(size=xshape).astype(np.float32)]
        assert litert_run_many(model, [xs])[0]["delegated"] == [0]
        assert compare_litert(model, [xs], numerics="reference").differing > 0
        with pytest.raises(UnsupportedError, match="float kernels"):
            engine.load(model, numerics="litert")
