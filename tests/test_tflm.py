"""numerics="tflm" against TFLite Micro's own interpreter, one-op graphs, bit for bit.

For every op the engine runs in int8, a graph of many variants goes through TFLite Micro (subprocess)
and through the engine in both profiles: "tflm" must equal TFLite Micro everywhere; the "reference"
profile must differ from it exactly where the two runtimes' kernels differ (which proves each
difference, and that the test can tell them apart) and nowhere else. TFLite Micro does not resize
inputs: every graph here has batch 1 and the exact output shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
from tests.harness import F32, Net, all_bytes, qparams
from tests.oracle import OracleError, micro_run_many

pytestmark = pytest.mark.usefixtures("tflm")
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def versus_tflm(net: Net, input_sets: list[list[np.ndarray]]) -> dict[str, list[int]]:
    """{label: [values where the tflm profile differs from TFLite Micro, same for the reference profile]}."""
    model = net.build()
    wants = micro_run_many(model, input_sets)
    profiles = [engine.load(model, numerics="tflm"), engine.load(model, numerics="reference")]
    counts = {label: [0, 0] for label in net.labels}
    for xs, want in zip(input_sets, wants):
        for k, m in enumerate(profiles):
            for label, got, w in zip(net.labels, m.run(list(xs)), want["outputs"]):
                assert got.shape == w.shape and got.dtype == w.dtype, f"{label}: {got.shape} vs {w.shape}"
                counts[label][k] += int(np.count_nonzero(got != w))
    return counts


def check_tflm(net: Net, input_sets: list[list[np.ndarray]], differs: bool) -> dict[str, list[int]]:
    """tflm equals TFLite Micro on every output; the reference profile differs somewhere iff `differs`."""
    counts = versus_tflm(net, input_sets)
    bad = {k: v[0] for k, v in counts.items() if v[0]}
    assert not bad, f"numerics='tflm' differs from TFLite Micro: {bad}"
    ref = {k: v[1] for k, v in counts.items() if v[1]}
    if differs:
        assert ref, "the reference profile equals TFLite Micro here: nothing proves the difference"
    else:
        assert not ref, f"the reference profile differs from TFLite Micro: {ref}"
    print({k: v[1] for k, v in counts.items()})
    return counts


def random_sets(net: Net, seed: int, n: int = 3) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [net.random_inputs(rng, 1) for _ in range(n)]


def int8_scales(rng, n: int) -> list[tuple[float, int]]:
    return [qparams(rng, "int8") for _ in range(n)]


# --- FULLY_CONNECTED: fixed point in TFLite Micro, double in the reference --------------------------------


@pytest.mark.parametrize("per_channel", [False, True])
def test_fully_connected(per_channel):
    rng = np.random.default_rng(1 + per_channel)
    net = Net()
    for n, (rows, depth, units) in enumerate([(1, 64, 10), (3, 17, 33), (2, 250, 7), (1, 1, 5), (4, 40, 64)]):
        s_in, zp_in = qparams(rng, "int8", -2, 0)
        w = rng.integers(-127, 128, size=(units, depth)).astype(np.int8)
        scales = [float(F32(10 ** rng.uniform(-3, -1))) for _ in range(units if per_channel else 1)]
        net.tensors.append(
            {"name": f"w{n}", "shape": [units, depth], "dtype": "int8", "data": w, "scale": scales,
             "zero_point": [0] * len(scales), "quantized_dimension": 0}
        )  # fmt: skip
        wi = len(net.tensors) - 1
        bias = rng.integers(-5000, 5000, size=units).astype(np.int32)
        net.tensors.append(
            {"name": f"b{n}", "shape": [units], "dtype": "int32", "data": bias,
             "scale": [float(F32(s_in) * F32(s)) for s in scales], "zero_point": [0] * len(scales)}
        )  # fmt: skip
        bi = len(net.tensors) - 1
        s_out = float(F32(s_in * float(np.mean(scales)) * 60 * np.sqrt(depth)))
        x = net.input([1, rows, depth], "int8", s_in, zp_in)  # FC flattens: rows of depth
        y = net.tensor([rows, units], "int8", s_out, int(rng.integers(-128, 128)))
        act = ACTS[n % 4]
        net.op(
            "FULLY_CONNECTED",
            [x, wi, bi],
            [y],
            f"FC {rows}x{depth}->{units} {act}",
            fused_activation_function=act,
        )
    check_tflm(net, random_sets(net, 3, 40), differs=True)


def test_fully_connected_per_tensor_multiplier_in_double():
    """TFLite Micro's per-tensor FULLY_CONNECTED takes s_in * s_w / s_out in double: with these scales the
    float32 product gives another multiplier, and the accumulators +-97072 another output."""
    from engine.numerics.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier

    s_in, s_w, s_out = 0.35200920701026917, 0.0011499845422804356, 0.2593762278556824
    in_double = quantize_multiplier(s_in * s_w / s_out)
    in_float = quantize_multiplier(float(F32(s_in) * F32(s_w)) / s_out)
    assert multiply_by_quantized_multiplier(97072, *in_double) != multiply_by_quantized_multiplier(
        97072, *in_float
    )
    net = Net()
    for zp_out, bias in ((-100, 97072), (100, -97072)):
        x = net.input([1, 1, 1], "int8", s_in, 0)
        w = net.const(np.int8([[1]]), "int8", s_w, 0)
        b = net.const(np.int32([bias]), "int32", float(F32(s_in) * F32(s_w)), 0)
        net.op("FULLY_CONNECTED", [x, w, b], [net.tensor([1, 1], "int8", s_out, zp_out)], f"FC bias {bias}")
    sets = [[np.int8([[[v]]])] * 2 for v in (0, 1, -1)]
    check_tflm(net, sets, differs=False)  # the reference's double rescale agrees here


# --- ADD / SUB / MUL: every pair of int8 values ---------------------------------------------------------


# (scales, zero points) of input 1, input 2, output where the two runtimes' tables differ (found by
# computing both; most quantizations give equal tables, which the random variants check)
PINNED = {
    "MUL": [
        ([0.001261252211406827, 0.14474135637283325, 0.0016805866034701467], [-29, -26, -39]),
        ([0.3388636112213135, 0.0587703138589859, 0.1558321863412857], [18, -27, 100]),
        ([0.031023893505334854, 0.001419084146618843, 0.0009927379433065653], [31, -59, -87]),
    ],
    "SUB": [  # the first: negated multiplier vs subtraction (1 in 20,000 random quantizations differs)
        ([0.15103717148303986, 0.10250843316316605, 0.07208780944347382], [36, -43, 72]),
        # multipliers in float32 (as sub_common.cc reads) vs double: TFLite Micro gives the double results
        ([0.003392560640349984, 0.10762516409158707, 0.11828785389661789], [6, 109, -68]),
        ([0.20602934062480927, 0.04907376319169998, 0.13880659639835358], [-114, -22, -47]),
    ],
    "ADD": [],
    "LOGISTIC": [(0.007738733198493719, -45), (0.0978664755821228, -24), (0.05583343654870987, 46)],
    "TANH": [(0.02011730708181858, 75), (0.003360776463523507, -85), (0.0048331874422729015, -91)],
}


def binary_net(op: str, seed: int, configs: int = 8) -> tuple[Net, list[np.ndarray]]:
    """(configs random + the pinned quantizations) x every (a, b) int8 pair, as two [1, 65536] inputs
    (no broadcast) per variant."""
    rng = np.random.default_rng(seed)
    net = Net()
    a_all = np.repeat(all_bytes("int8", [256]), 256).reshape(1, -1)
    b_all = np.tile(all_bytes("int8", [256]), 256).reshape(1, -1)
    xs = []
    variants = []
    for k in range(configs):
        (s1, z1), (s2, z2), (so, zo) = int8_scales(rng, 3)
        if op == "MUL":  # an output scale near the product keeps outputs off the clamps
            so = float(F32(s1 * s2 * 10 ** rng.uniform(-0.5, 1.5)))
        variants.append(((s1, s2, so), (z1, z2, zo), ACTS[k % 4]))
    variants += [(tuple(s), tuple(z), "NONE") for s, z in PINNED[op]]
    for (s1, s2, so), (z1, z2, zo), act in variants:
        a, b = net.input([1, 65536], "int8", s1, z1), net.input([1, 65536], "int8", s2, z2)
        out = net.tensor([1, 65536], "int8", so, zo)
        net.op(
            op,
            [a, b],
            [out],
            f"{op} scales={[s1, s2, so]} zps={[z1, z2, zo]} {act}",
            fused_activation_function=act,
        )
        xs += [a_all, b_all]
    return net, xs


def test_mul_multiplier_in_double():
    """TFLite Micro's MUL takes s1 * s2 / s_out in double (mul_common.cc), the reference in float32."""
    net, xs = binary_net("MUL", 3)
    check_tflm(net, [xs], differs=True)


def test_sub_subtracts_rescaled_inputs():
    """TFLite Micro's SUB subtracts the two rescaled inputs (reference_ops::Sub); the reference runs the
    ADD kernel with input 2's multiplier negated. Both take ADD's double multipliers."""
    net, xs = binary_net("SUB", 2)
    check_tflm(net, [xs], differs=True)


def test_add_equal():
    net, xs = binary_net("ADD", 1)
    check_tflm(net, [xs], differs=False)


# --- LOGISTIC / TANH: gemmlowp fixed point in TFLite Micro, float tables in the reference -------------------


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
def test_logistic_tanh_fixed_point(op):
    rng = np.random.default_rng(5)
    net = Net()
    s_out, zp_out = (1 / 256, -128) if op == "LOGISTIC" else (1 / 128, 0)
    for s_in, zp_in in [qparams(rng, "int8", -2.5, 0) for _ in range(12)] + PINNED[op]:
        x = net.input([1, 256], "int8", s_in, zp_in)
        net.op(op, [x], [net.tensor([1, 256], "int8", s_out, zp_out)], f"{op} s_in={s_in} zp_in={zp_in}")
    check_tflm(net, [[all_bytes("int8", [1, 256]) for _ in net.inputs]], differs=True)


# --- ops whose kernels are the same in both runtimes: the reference profile must equal TFLite Micro ----------


def unary_int8(op: str, variants, **options) -> Net:
    """variants: (in dtype, (s, zp) or None, out dtype, (s, zp) or None), one [1, 300] graph input each."""
    net = Net()
    for din, qin, dout, qout in variants:
        x = net.input([1, 300], din, *(qin or ()))
        y = net.tensor([1, 300], dout, *(qout or ()))
        net.op(op, [x], [y], f"{op} {din}->{dout} in={qin} out={qout}", **options)
    return net


@pytest.mark.parametrize(
    "op,differs",
    [
        ("RELU", True),
        ("RELU6", True),
        ("HARD_SWISH", True),
        ("QUANTIZE", False),
        ("DEQUANTIZE", False),
        ("SOFTMAX", False),
    ],
)
def test_unary(op, differs):
    """RELU, HARD_SWISH: TFLite Micro divides the scales in double (the pinned quantizations tell it from
    float32); RELU6: TFLite Micro clamps the raw input, ignoring the output quantization. The others agree."""
    from tests.test_ops_activations import PINNED_MULTIPLIER, awkward_in, full_range_sets

    rng = np.random.default_rng(20)
    same = [(q, q) for q in awkward_in("int8")]
    pairs = same + [(qparams(rng, "int8", -3, 0.5), qparams(rng, "int8", -3, 0.5)) for _ in range(10)]
    pairs += [(qi, qo) for _, qi, qo in PINNED_MULTIPLIER.get(op, [])]
    hard_swish_pinned = [  # tables that change when the two multipliers are divided in float32 instead of double
        ((0.021213335916399956, 26), (0.019092993810772896, 30)),
        ((0.019240792840719223, 5), (0.008948850445449352, 25)),
        ((0.0490470789372921, 44), (0.026815295219421387, -121)),
    ]
    variants = [("int8", qi, "int8", qo) for qi, qo in pairs]
    options = {}
    if op == "DEQUANTIZE":
        variants = [
            (d, qi, "float32", None)
            for d in ("int8", "uint8")
            for qi, _ in pairs
            if d == "int8" or qi[1] >= 0
        ]
    elif op == "QUANTIZE":  # float -> int8, and uint8 <-> int8 (TFLite Micro takes uint8 here only)
        variants += [("float32", None, "int8", qo) for _, qo in pairs[:6]]
        variants += [("uint8", (0.02, 128), "int8", (0.02, 0)), ("uint8", (0.05, 3), "int8", (0.03, -7))]
        variants += [("int8", (0.02, 0), "uint8", (0.02, 128)), ("int8", (0.05, -3), "uint8", (0.07, 9))]
    elif op == "HARD_SWISH":  # output scales from just above s_in / 128 (output exponent 0) to 20 x s_in
        variants = [
            ("int8", qi, "int8", (float(F32(qi[0] * r)), qo[1]))
            for qi, qo in pairs
            for r in (1 / 127, 0.3, 20.0)
        ]
        variants += [("int8", qi, "int8", qo) for qi, qo in hard_swish_pinned]
    elif op == "SOFTMAX":  # TFLite Micro wants the output scale exactly 1/256
        variants = [("int8", qi, "int8", (1 / 256, -128)) for qi, _ in pairs]
        options = {"beta": 1.0}
    net = unary_int8(op, variants, **options)
    check_tflm(net, full_range_sets(net, 21, batches=(1,)), differs=differs)


def test_pool_equal():
    from tests.test_ops_pool import GEOMETRIES

    rng = np.random.default_rng(22)
    net = Net()
    for op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        for k, ((h, w, c), (fh, fw), (sh, sw)) in enumerate(GEOMETRIES):
            for padding in ("SAME", "VALID"):
                if padding == "VALID" and (fh > h or fw > w):
                    continue
                oh = (h + sh - 1) // sh if padding == "SAME" else (h - fh + sh) // sh
                ow = (w + sw - 1) // sw if padding == "SAME" else (w - fw + sw) // sw
                s, z = qparams(rng, "int8", -2, -1)
                x = net.input([1, h, w, c], "int8", s, z)
                y = net.tensor([1, oh, ow, c], "int8", s, z)
                act = ACTS[k % 4]
                net.op(op, [x], [y], f"{op} {h}x{w}x{c} f{fh}x{fw} s{sh}x{sw} {padding} {act}", padding=padding,
                       filter_height=fh, filter_width=fw, stride_h=sh, stride_w=sw, fused_activation_function=act)  # fmt: skip
    check_tflm(net, random_sets(net, 23), differs=False)


def test_mean_equal():
    rng = np.random.default_rng(24)
    net = Net()
    shape = [1, 7, 5, 6]
    for axes in ([1, 2], [2, 1], [1], [3], [-1], [1, 2, 3], [1, 3]):
        for keep in (True, False):
            ax = sorted({a % 4 for a in axes})
            oshape = (
                [1 if d in ax else n for d, n in enumerate(shape)]
                if keep
                else [n for d, n in enumerate(shape) if d not in ax]
            )
            x = net.input(shape, "int8", *qparams(rng, "int8", -2, -1))
            y = net.tensor(oshape, "int8", *qparams(rng, "int8", -2.5, -0.5))
            net.op(
                "MEAN",
                [x, net.const(np.int32(axes), "int32")],
                [y],
                f"MEAN axes={axes} keep={keep}",
                keep_dims=keep,
            )
    check_tflm(net, random_sets(net, 25), differs=False)


@pytest.mark.parametrize("per_channel", [False, True])
def test_conv_depthwise_equal(per_channel):
    from tests.test_ops_conv import bias_tensor, weights

    rng = np.random.default_rng(26 + per_channel)
    scheme = "int8_per_channel" if per_channel else "int8_per_tensor"
    net = Net()
    for n, (pad, (sh, sw), (dh, dw), (kh, kw)) in enumerate(
        [("SAME", (1, 1), (1, 1), (3, 3)), ("VALID", (2, 2), (1, 1), (3, 3)), ("SAME", (1, 2), (1, 1), (5, 2)),
         ("VALID", (1, 1), (2, 2), (3, 3)), ("SAME", (1, 1), (1, 1), (1, 1))]
    ):  # fmt: skip
        h, w = 11, 9
        oh = -(-h // sh) if pad == "SAME" else (h - (kh - 1) * dh - 1) // sh + 1
        ow = -(-w // sw) if pad == "SAME" else (w - (kw - 1) * dw - 1) // sw + 1
        s_in, zp_in = qparams(rng, "int8", -2, 0)
        for op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            c_in, c_out = ((5, 12), (4, 8))[op == "DEPTHWISE_CONV_2D"]
            shape, axis = ((c_out, kh, kw, c_in), 0) if op == "CONV_2D" else ((1, kh, kw, c_out), 3)
            x = net.input([1, h, w, c_in], "int8", s_in, zp_in)
            wi, bias_scales, s_out = weights(net, rng, scheme, shape, axis, s_in, kh * kw * c_in)
            y = net.tensor([1, oh, ow, c_out], "int8", s_out, int(rng.integers(-128, 128)))
            opts = {"padding": pad, "stride_h": sh, "stride_w": sw, "dilation_h_factor": dh,
                    "dilation_w_factor": dw, "fused_activation_function": ACTS[n % 4]}  # fmt: skip
            if op == "DEPTHWISE_CONV_2D":
                opts["depth_multiplier"] = c_out // c_in
            net.op(
                op,
                [x, wi, bias_tensor(net, rng, bias_scales, c_out)],
                [y],
                f"{op} {kh}x{kw} {pad} s{sh}{sw} d{dh}{dw}",
                **opts,
            )
    check_tflm(net, random_sets(net, 28), differs=False)


def test_data_movement_equal():
    """CONCATENATION, PAD, PADV2, STRIDED_SLICE, PACK, RESHAPE, SQUEEZE."""
    net = Net()
    a, b = net.input([1, 3, 4, 2], "int8", 0.1, 2), net.input([1, 3, 4, 2], "int8", 0.1, 2)
    net.op("CONCATENATION", [a, b], [net.tensor([1, 6, 4, 2], "int8", 0.1, 2)], "CONCAT same", axis=1)
    pads = net.const(np.int32([[0, 0], [1, 2], [0, 1], [0, 0]]), "int32")
    x = net.input([1, 3, 4, 2], "int8", 0.1, 7)
    net.op("PAD", [x, pads], [net.tensor([1, 6, 5, 2], "int8", 0.1, 7)], "PAD")
    x = net.input([1, 3, 4, 2], "int8", 0.1, 7)
    fill = net.const(np.int8([-20]), "int8", 0.1, 7)
    net.op("PADV2", [x, pads, fill], [net.tensor([1, 6, 5, 2], "int8", 0.1, 7)], "PADV2")
    x = net.input([1, 4, 4, 2], "int8", 0.1, 2)
    ins = [x] + [net.const(np.int32(v), "int32") for v in ([0, 1, 0, 0], [1, 3, 4, 2], [1, 1, 2, 1])]
    net.op(
        "STRIDED_SLICE",
        ins,
        [net.tensor([1, 2, 2, 2], "int8", 0.1, 2)],
        "STRIDED_SLICE",
        begin_mask=1,
        end_mask=1,
    )
    xs = [net.input([1, 3, 2], "int8", 0.1, 2) for _ in range(3)]
    net.op("PACK", xs, [net.tensor([1, 3, 3, 2], "int8", 0.1, 2)], "PACK", axis=2, values_count=3)
    x = net.input([1, 3, 4, 2], "int8", 0.1, 2)
    net.op(
        "RESHAPE",
        [x, net.const(np.int32([1, 24]), "int32")],
        [net.tensor([1, 24], "int8", 0.1, 2)],
        "RESHAPE",
        new_shape=[1, 24],
    )
    x = net.input([1, 3, 1, 2], "int8", 0.1, 2)
    net.op("SQUEEZE", [x], [net.tensor([1, 3, 2], "int8", 0.1, 2)], "SQUEEZE", squeeze_dims=[2])
    check_tflm(net, random_sets(net, 29), differs=False)


# --- what TFLite Micro refuses, numerics="tflm" refuses too (and says why) -----------------------------------


def refused_cases() -> dict[str, Net]:
    cases = {}
    for dtype in ("uint8",):
        for op in ("ADD", "MUL", "SUB"):
            net = Net()
            a, b = net.input([1, 8], dtype, 0.1, 3), net.input([1, 8], dtype, 0.2, 5)
            net.op(op, [a, b], [net.tensor([1, 8], dtype, 0.3, 7)], op)
            cases[f"{op} {dtype}"] = net
        for op in ("RELU", "LOGISTIC", "MAX_POOL_2D", "SOFTMAX"):
            net = Net()
            x = net.input([1, 2, 2, 4], dtype, 0.1, 3)
            pool = {"filter_height": 1, "filter_width": 1, "stride_h": 1, "stride_w": 1}
            opts = {"MAX_POOL_2D": pool, "SOFTMAX": {"beta": 1.0}}.get(op, {})
            out_q = (1 / 256, 0) if op in ("LOGISTIC", "SOFTMAX") else (0.1, 3)
            net.op(op, [x], [net.tensor([1, 2, 2, 4], dtype, *out_q)], op, **opts)
            cases[f"{op} {dtype}"] = net
    from tests.test_ops_conv import bias_tensor, weights

    rng = np.random.default_rng(40)
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        net = Net()
        shape, axis, xshape, oshape = {
            "CONV_2D": ((4, 1, 1, 3), 0, [1, 2, 2, 3], [1, 2, 2, 4]),
            "DEPTHWISE_CONV_2D": ((1, 1, 1, 3), 3, [1, 2, 2, 3], [1, 2, 2, 3]),
            "FULLY_CONNECTED": ((4, 3), 0, [1, 3], [1, 4]),
        }[op]
        x = net.input(xshape, "uint8", 0.1, 100)
        w, bias_scales, s_out = weights(net, rng, "uint8", shape, axis, 0.1, 3)
        opts = {} if op == "FULLY_CONNECTED" else {"stride_h": 1, "stride_w": 1, "padding": "VALID"}
        if op == "DEPTHWISE_CONV_2D":
            opts["depth_multiplier"] = 1
        ins = [x, w, bias_tensor(net, rng, bias_scales, shape[axis])]
        net.op(op, ins, [net.tensor(oshape, "uint8", s_out, 9)], op, **opts)
        cases[f"{op} uint8"] = net
    net = Net()
    a, b = net.input([1, 3, 2], "int8", 0.1, 2), net.input([1, 3, 2], "int8", 0.07, -5)
    net.op("CONCATENATION", [a, b], [net.tensor([1, 3, 4], "int8", 0.1, 2)], "CONCAT", axis=2)
    cases["CONCATENATION int8 scales differ"] = net
    net = Net()
    x = net.input([1, 16], "int8", 0.1, 2)
    out_scale = float(
        F32(1 / 256 * 1.0005)
    )  # within the reference's 0.1 % tolerance, not TFLite Micro's equality
    net.op("SOFTMAX", [x], [net.tensor([1, 16], "int8", out_scale, -128)], "SOFTMAX", beta=1.0)
    cases["SOFTMAX int8 output scale 1/256 + 0.05 %"] = net
    net = Net()
    x = net.input([1, 16], "int8", 0.1, 2)
    net.op("LOGISTIC", [x], [net.tensor([1, 16], "int8", 1 / 256, 0)], "LOGISTIC")
    cases["LOGISTIC int8 output zero point 0"] = net
    for name, dtype, shape, pads in (
        ("PAD int64 paddings", "int8", [1, 3], np.int64([[0, 0], [1, 1]])),
        ("PAD int64 data", "int64", [1, 3], np.int32([[0, 0], [1, 1]])),
        ("PAD rank 6", "int8", [1, 1, 2, 1, 2, 1], np.int32([[0, 0]] * 5 + [[1, 1]])),
    ):
        net = Net()
        x = net.input(shape, dtype, *((0.1, 2) if dtype == "int8" else ()))
        p = net.const(pads, str(pads.dtype))
        out = net.tensor(shape[:-1] + [shape[-1] + 2], dtype, *((0.1, 2) if dtype == "int8" else ()))
        net.op("PAD", [x, p], [out], "PAD")
        cases[name] = net
    net = Net()
    x = net.input([1, 8], "uint8", 0.4, 200)
    net.op("QUANTIZE", [x], [net.tensor([1, 8], "uint8", 1.2, 190)], "QUANTIZE")
    cases["QUANTIZE uint8 to uint8"] = net
    net = Net()
    x = net.input([1, 4, 3], "int16", 0.01, 0)
    ids = net.const(np.int32([2, 0]), "int32")
    net.op("GATHER", [x, ids], [net.tensor([1, 2, 3], "int16", 0.01, 0)], "GATHER", axis=1)
    cases["GATHER int16"] = net
    net = Net()
    x = net.input([1, 3, 3, 2], "int16", 0.01, 0)
    size = net.const(np.int32([5, 4]), "int32")
    net.op("RESIZE_BILINEAR", [x, size], [net.tensor([1, 5, 4, 2], "int16", 0.01, 0)], "RESIZE_BILINEAR")
    cases["RESIZE_BILINEAR int16"] = net
    net = Net()
    x = net.input([1, 4, 3], "int8", 0.1, 2)
    net.op("ARG_MAX", [x, net.const(np.int32([1]), "int32")], [net.tensor([1, 3], "int64")], "ARG_MAX")
    cases["ARG_MAX into int64"] = net
    net = Net()
    x = net.input([1, 4], "int8", 0.1, 2)
    w = net.const(np.ones((3, 4), np.int8), "int8", 0.01, 0)
    b = net.const(np.zeros(3, np.int32), "int32", 0.002, 0)  # s_in * s_w = 0.001
    net.op("FULLY_CONNECTED", [x, w, b], [net.tensor([1, 3], "int8", 0.03, 0)], "FC")
    cases["FULLY_CONNECTED bias scale off by 3 % of the output scale"] = net
    return cases


@pytest.mark.parametrize("case", list(refused_cases()))
def test_refused_like_tflite_micro(case):
    net = refused_cases()[case]
    model = net.build()
    with pytest.raises(OracleError):
        micro_run_many(model, random_sets(net, 41, 1))
    with pytest.raises(engine.UnsupportedError, match="TFLite Micro"):
        engine.load(model, numerics="tflm")
    if "CONCATENATION" in case or "bias scale" in case:  # the reference refuses these too (test_refusals)
        with pytest.raises(engine.UnsupportedError):
            engine.load(model)
    else:
        engine.load(model)  # the reference profile runs it


def test_pad_value_rule():
    """TFLite Micro pads int8 with the output's zero point whatever the input's quantization, int16 with
    0 whatever the output's zero point; the reference decides by the input (test_ops_elementwise)."""
    from tests.test_ops_elementwise import PAD_VALUE_CASES, pad_value_net

    net = pad_value_net([c for c in PAD_VALUE_CASES if c[0] != "uint8"], constants=False)
    counts = check_tflm(net, random_sets(net, 30), differs=True)
    assert counts["PAD int8 None (0.05, 17)"][1] and counts["PAD int16 (0.001, 0) (0.001, 300)"][1]


def test_computed_shape_unlike_the_declared_one_is_refused():
    """TFLite Micro resizes no tensor: a SUM whose keep_dims disagrees with its declared output writes
    the declared shape (found by scripts/fuzz.py --fields --numerics tflm); "tflm" refuses such a model
    (the reference resizes and runs it)."""
    net = Net()
    x = net.input([1, 3, 4, 8], "int8", 0.08, 10)
    axes = net.const(np.int32([1, 2]), "int32")
    net.op("SUM", [x, axes], [net.tensor([1, 8], "int8", 0.5, 4)], "SUM", keep_dims=True)
    model = net.build()
    (want,) = micro_run_many(model, random_sets(net, 42, 1))
    assert want["outputs"][0].shape == (1, 8)
    with pytest.raises(engine.UnsupportedError, match="does not resize"):
        engine.load(model, numerics="tflm")
    assert engine.load(model).run(random_sets(net, 42, 1)[0][0])[0].shape == (1, 1, 1, 8)


def test_uint8_io_allowed_where_tflite_micro_takes_it():
    """QUANTIZE uint8 -> int8 -> uint8 around an int8 op (MNIST's pattern) runs in both."""
    net = Net()
    s_in, s_out = 1.3944683074951172, 1.5606484413146973  # a RELU multiplier pinned in test_ops_activations
    x = net.input([1, 64], "uint8", s_in, 88)
    q = net.tensor([1, 64], "int8", s_in, -40)
    net.ops.append({"op": "QUANTIZE", "inputs": [x], "outputs": [q], "options": {}})
    r = net.tensor([1, 64], "int8", s_out, -28)
    net.ops.append({"op": "RELU", "inputs": [q], "outputs": [r], "options": {}})
    net.op("QUANTIZE", [r], [net.tensor([1, 64], "uint8", s_out, 100)], "QUANTIZE out")
    x = np.arange(256, dtype=np.uint8).reshape(4, 64)
    check_tflm(net, [[x[i : i + 1]] for i in range(4)], differs=True)  # RELU's multiplier in double


# --- the detection postprocess: TFLite Micro takes float32 boxes and scores only --------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"use_regular_nms": True, "max_classes_per_detection": 2},
        {"use_regular_nms": True},
        {"nms_iou_threshold": 1.0},
    ],
)
def test_detection_postprocess_float_equal(extra):
    from tests.test_detection_postprocess import BASE, OP, assert_same, random_anchors, random_inputs
    from tests.tflite_builder import build_model, flexbuffer_options

    rng = np.random.default_rng(50)
    nb, classes = 300, 10
    opts = dict(BASE, num_classes=classes, **extra)
    slots = opts["max_detections"] * opts["max_classes_per_detection"]
    # TFLite Micro keeps the output shapes the file declares: give the outputs theirs
    shapes = {3: [1, slots, 4], 4: [1, slots], 5: [1, slots], 6: [1]}
    tensors = [
        {"name": "boxes", "shape": [1, nb, 4], "dtype": "float32"},
        {"name": "scores", "shape": [1, nb, classes + 1], "dtype": "float32"},
        {"name": "anchors", "shape": [nb, 4], "dtype": "float32", "data": random_anchors(rng, nb, "float32")},
        *({"name": f"out{k}", "shape": shapes[3 + k], "dtype": "float32"} for k in range(4)),
    ]
    ops = [
        {"op": OP, "inputs": [0, 1, 2], "outputs": [3, 4, 5, 6], "custom_options": flexbuffer_options(opts)}
    ]
    model = build_model(tensors, ops, inputs=[0, 1], outputs=[3, 4, 5, 6])
    inputs = [list(random_inputs(rng, nb, classes + 1, "float32", "float32", 256, 4)) for _ in range(4)]
    wants = micro_run_many(model, inputs)
    for profile in ("tflm", "reference"):
        m = engine.load(model, numerics=profile)
        for xs, want in zip(inputs, wants):
            assert_same(want["outputs"], m.run(xs), opts)


def test_detection_postprocess_refusals():
    """Quantized inputs (TFLite Micro refuses them at run time) and multi-class fast NMS (TFLite Micro
    writes those slots out of bounds: its num_detections counts classes, 30 for 10 boxes)."""
    from tests.test_detection_postprocess import BASE, one_op_model, random_anchors

    rng = np.random.default_rng(51)
    for dtype, extra in (("uint8", {}), ("float32", {"max_classes_per_detection": 3})):
        opts = dict(BASE, num_classes=4, **extra)
        model = one_op_model(20, 5, dtype, dtype, random_anchors(rng, 20, dtype), opts)
        with pytest.raises(engine.UnsupportedError, match="TFLite Micro cannot run it"):
            engine.load(model, numerics="tflm")
        engine.load(model)


# --- engine.inspect: both profiles side by side --------------------------------------------------------------


def test_inspect_shows_both_profiles(shared, capsys):
    """ad01, seed 0: layer 1 element (0, 97) is -40 in the reference and -39 in TFLite Micro (its own
    interpreter says so); inspect shows both, says they disagree, and the tflm model gives -39."""
    import json

    from engine import inspect as ins

    path = shared / "models/zoo/ad01_int8.tflite"
    args = [str(path), "--layer", "1", "--element", "0,97", "--seed", "0", "--json"]
    assert ins.main([*args, "--numerics", "tflm"]) == 0
    steps = json.loads(capsys.readouterr().out)
    m = engine.load(path)
    x = ins.make_inputs(m, None, None, 0, None, None)
    name = m.graph.tensors[m.graph.ops[1].outputs[0]].name
    micro = micro_run_many(path, [x], preserve_all=True)[0]["tensors"][name]
    assert steps["numerics"] == "tflm" and steps["profiles_differ"]
    both = {k: steps["profiles"][k] for k in ("reference", "tflm")}
    assert both == {"reference": -40, "tflm": int(micro[0, 97])} == {"reference": -40, "tflm": -39}
    assert steps["final"] == steps["engine"] == -39  # the tflm model's own value
    assert ins.main(args[:-1]) == 0
    text = capsys.readouterr().out
    assert "THE PROFILES DISAGREE on this element" in text and "fixed-point M0" in text


def test_inspect_generic_op_profiles(tmp_path, capsys):
    """A LOGISTIC quantization pinned above: the element where the tables differ is flagged."""
    from engine import inspect as ins

    s_in, zp_in = PINNED["LOGISTIC"][0]
    net = Net()
    x = net.input([1, 256], "int8", s_in, zp_in)
    net.op("LOGISTIC", [x], [net.tensor([1, 256], "int8", 1 / 256, -128)], "LOGISTIC")
    path = tmp_path / "logistic.tflite"
    path.write_bytes(net.build())
    m = engine.load(path)
    tflm_model = engine.load(path, numerics="tflm")
    xs = all_bytes("int8", [1, 256])
    (k,) = np.flatnonzero(m.run(xs)[0] != tflm_model.run(xs)[0])
    steps = ins.element_steps(m, 0, (0, int(k)), [xs])
    assert steps["profiles_differ"] and "gemmlowp's fixed-point logistic" in steps["text"]
    same = ins.element_steps(m, 0, (0, int(k) + 1), [xs])
    assert not same["profiles_differ"] and "the profiles agree" in same["text"]


def test_zoo_ops_equal():
    """The ops the zoo models brought (resize, transpose, split, unpack, gather, arg max, min/max, div):
    the same arithmetic in both runtimes."""
    net = Net()
    for op, opts in (
        ("RESIZE_NEAREST_NEIGHBOR", {}),
        ("RESIZE_NEAREST_NEIGHBOR", {"half_pixel_centers": True}),
        ("RESIZE_NEAREST_NEIGHBOR", {"align_corners": True}),
        ("RESIZE_BILINEAR", {}),
        ("RESIZE_BILINEAR", {"half_pixel_centers": True}),
        ("RESIZE_BILINEAR", {"align_corners": True}),
    ):
        x = net.input([1, 4, 5, 3], "int8", 0.1, 3)
        size = net.const(np.int32([8, 10]), "int32")
        net.op(op, [x, size], [net.tensor([1, 8, 10, 3], "int8", 0.1, 3)], f"{op} {opts}", **opts)
    x = net.input([1, 3, 4, 2], "int8", 0.1, 3)
    perm = net.const(np.int32([0, 3, 1, 2]), "int32")
    net.op("TRANSPOSE", [x, perm], [net.tensor([1, 2, 3, 4], "int8", 0.1, 3)], "TRANSPOSE")
    x = net.input([1, 4, 6], "int8", 0.1, 3)
    parts = [net.tensor([1, 4, 3], "int8", 0.1, 3) for _ in range(2)]
    net.ops.append({"op": "SPLIT", "inputs": [net.const(np.int32(2), "int32"), x], "outputs": parts, "options": {"num_splits": 2}})  # fmt: skip
    x = net.input([1, 3, 4], "int8", 0.1, 3)
    rows = [net.tensor([1, 4], "int8", 0.1, 3) for _ in range(3)]
    net.ops.append({"op": "UNPACK", "inputs": [x], "outputs": rows, "options": {"num": 3, "axis": 1}})
    net.outputs += parts + rows
    net.labels += ["SPLIT 0", "SPLIT 1", "UNPACK 0", "UNPACK 1", "UNPACK 2"]
    x = net.input([1, 6, 4], "int8", 0.1, 3)
    idx = net.const(np.int32([5, 0, 2]), "int32")
    net.op("GATHER", [x, idx], [net.tensor([1, 3, 4], "int8", 0.1, 3)], "GATHER", axis=1)
    x = net.input([1, 5, 40], "int8", 0.1, 3)
    axis = net.const(np.int32([2]), "int32")
    net.op("ARG_MAX", [x, axis], [net.tensor([1, 5], "int32")], "ARG_MAX", output_type="INT32")
    for op in ("MAXIMUM", "MINIMUM", "DIV"):
        a, out_q = net.input([1, 40], "int8", 0.1, 3), ((0.05, 0) if op == "DIV" else (0.1, 3))
        if op == "DIV":  # a constant divisor that is never its zero point
            b = net.const(np.arange(1, 41, dtype=np.int8).reshape(1, 40) * 3 - 100, "int8", 0.2, -128)
        else:  # MAXIMUM/MINIMUM compare raw values: one quantization throughout
            b = net.input([1, 40], "int8", 0.1, 3)
        net.op(op, [a, b], [net.tensor([1, 40], "int8", *out_q)], op)
    check_tflm(net, random_sets(net, 60), differs=False)


def test_rsqrt_equal():
    rng = np.random.default_rng(61)
    net, xs = Net(), []
    for _ in range(10):
        s, z = float(F32(10 ** rng.uniform(-3, 0))), int(rng.integers(-128, 0))
        so, zo = float(F32(10 ** rng.uniform(-3, 0))), int(rng.integers(-128, 128))
        x = net.input([1, 256], "int8", s, z)
        net.op("RSQRT", [x], [net.tensor([1, 256], "int8", so, zo)], f"RSQRT in=({s}, {z}) out=({so}, {zo})")
        xs.append(np.clip(np.arange(256) - 128, z, 127).astype(np.int8).reshape(1, 256))  # defined at >= zp
    check_tflm(net, [xs], differs=False)


# --- the keyword everywhere -------------------------------------------------------------------------------------


def test_profile_on_every_entry_point(shared, capsys):
    """engine.load / Interpreter / python -m engine.run take numerics=, repr and JSON show it, and an
    unknown profile is an InputError naming the known ones."""
    import json

    from engine import run as cli

    path = shared / "models/zoo/ad01_int8.tflite"
    m = engine.load(path, numerics="tflm")
    assert m.numerics == "tflm" and "numerics='tflm'" in repr(m)
    assert "numerics='reference'" in repr(engine.load(path))
    x = np.random.default_rng(70).integers(-128, 128, (1, 640)).astype(np.int8)
    it = engine.Interpreter(model_path=str(path), numerics="tflm")
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    got = it.get_tensor(it.get_output_details()[0]["index"])
    assert np.array_equal(got, micro_run_many(path, [[x]])[0]["outputs"][0]) and np.array_equal(
        got, m.run(x)[0]
    )
    with pytest.raises(engine.InputError, match="reference, tflm"):
        engine.load(path, numerics="tflite-micro")
    assert cli.main(["--model", "hello_world", "--numerics", "tflm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["numerics"] == "tflm"
    assert cli.main(["--model", "ssd", "--numerics", "tflm"]) == 3  # UnsupportedError's exit code
    assert "TFLite Micro cannot run it" in capsys.readouterr().err


@pytest.mark.parametrize("per_channel", [False, True])
def test_fully_connected_16x8(per_channel):
    """int16 activations, int8 weights, int64 bias: TFLite Micro rescales the int64 sum in fixed point."""
    rng = np.random.default_rng(80 + per_channel)
    net = Net()
    for n, (rows, depth, units) in enumerate([(1, 64, 10), (3, 17, 33), (2, 250, 7)]):
        s_in = float(F32(10 ** rng.uniform(-4, -3)))
        scales = [float(F32(10 ** rng.uniform(-3, -1))) for _ in range(units if per_channel else 1)]
        w = rng.integers(-127, 128, size=(units, depth)).astype(np.int8)
        net.tensors.append(
            {"name": f"w{n}", "shape": [units, depth], "dtype": "int8", "data": w, "scale": scales,
             "zero_point": [0] * len(scales), "quantized_dimension": 0}
        )  # fmt: skip
        wi = len(net.tensors) - 1
        net.tensors.append(
            {"name": f"b{n}", "shape": [units], "dtype": "int64", "data": rng.integers(-50000, 50000, units),
             "scale": [float(F32(s_in) * F32(s)) for s in scales], "zero_point": [0] * len(scales)}
        )  # fmt: skip
        bi = len(net.tensors) - 1
        s_out = float(F32(s_in * float(np.mean(scales)) * 8000 * np.sqrt(depth) / 40))
        x = net.input([1, rows, depth], "int16", s_in, 0)
        y = net.tensor([rows, units], "int16", s_out, 0)
        net.op("FULLY_CONNECTED", [x, wi, bi], [y], f"FC16 {rows}x{depth}->{units}")
    check_tflm(net, random_sets(net, 82, 10), differs=True)


# --- int16 (16x8) elementwise ops --------------------------------------------------------------------------------


def _int16_sets(net: Net, seed: int, n: int = 3) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        [rng.integers(-32768, 32768, (1, *net.tensors[i]["shape"][1:])).astype(np.int16) for i in net.inputs]
        for _ in range(n)
    ]


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
def test_binary_16x8(op):
    """MUL: s1 * s2 / s_out in double. ADD/SUB with power-of-two scales: the reference shifts
    (pot_scale_int16), TFLite Micro always takes the general rescale path."""
    rng = np.random.default_rng(90)
    net = Net()
    scales = [
        (float(F32(10 ** rng.uniform(-5, -3))), float(F32(10 ** rng.uniform(-5, -3)))) for _ in range(6)
    ]
    triples = [(s1, s2, float(F32(s1 * s2 * 3e4 if op == "MUL" else max(s1, s2) * 1.5))) for s1, s2 in scales]
    if op != "MUL":
        triples += [(2**-10, 2**-12, 2**-10), (2**-11, 2**-11, 2**-11), (2**-12, 2**-10, 2**-10)]
    for s1, s2, so in triples:
        a, b = net.input([1, 500], "int16", s1, 0), net.input([1, 500], "int16", s2, 0)
        net.op(op, [a, b], [net.tensor([1, 500], "int16", so, 0)], f"{op} int16 scales {s1:g} {s2:g} {so:g}")
    check_tflm(net, _int16_sets(net, 91), differs=True)


def test_unary_16x8_equal():
    net = Net()
    for op in ("LOGISTIC", "TANH"):
        for s in (2**-12, 1e-4, 3e-4, 2**-10):
            x = net.input([1, 2000], "int16", s, 0)
            net.op(op, [x], [net.tensor([1, 2000], "int16", 2**-15, 0)], f"{op} int16 s={s}")
    for s in (1e-3, 3e-4):
        x = net.input([1, 4, 50], "int16", s, 0)
        net.op(
            "SOFTMAX", [x], [net.tensor([1, 4, 50], "int16", 1 / 32768, 0)], f"SOFTMAX int16 s={s}", beta=1.0
        )
    x = net.input([1, 500], "int16", 1e-3, 0)
    net.op("RELU", [x], [net.tensor([1, 500], "int16", 7e-4, 0)], "RELU int16")
    x = net.input([1, 6, 6, 4], "int16", 1e-3, 0)
    pool = {"filter_height": 3, "filter_width": 3, "stride_h": 3, "stride_w": 3, "padding": "VALID"}
    net.op(
        "AVERAGE_POOL_2D", [x], [net.tensor([1, 2, 2, 4], "int16", 1e-3, 0)], "AVERAGE_POOL_2D int16", **pool
    )
    x = net.input([1, 6, 6, 4], "int16", 1e-3, 0)
    axes = net.const(np.int32([1, 2]), "int32")
    net.op("MEAN", [x, axes], [net.tensor([1, 1, 1, 4], "int16", 7e-4, 0)], "MEAN int16", keep_dims=True)
    x = net.input([1, 500], "int16", 1e-3, 0)
    net.op("QUANTIZE", [x], [net.tensor([1, 500], "int8", 0.03, 3)], "QUANTIZE int16 -> int8")
    check_tflm(net, _int16_sets(net, 92), differs=False)
