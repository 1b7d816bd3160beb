"""int16 activations with int8 weights (TensorFlow's 16x8 mode) against TFLite's reference kernels.

One-op graphs, several variants of an op side by side in one model; inputs cover the whole int16 range
(every value for the one-input ops), batch 1 and batch > 1, per-channel weights, broadcasting.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.harness import Net, check, run_sets

pytestmark = pytest.mark.usefixtures("litert")

F32 = np.float32
POT = [2.0**-12, 2.0**-11, 2.0**-15, 2.0**-10]


def all_int16(shape=(1, 256, 256)) -> np.ndarray:
    """The 65536 int16 values laid along a [1, 256, 256] tensor."""
    return np.arange(-32768, 32768, dtype=np.int16).reshape(shape)


def unary_net(op: str, scales_in, scale_out, out_dtype="int16", zp_out=0, **options) -> Net:
    """One variant per input scale, each with its own graph input (fed the same values)."""
    net = Net()
    for s in scales_in:
        x = net.input([1, 256, 256], "int16", s, 0)
        y = net.tensor([1, 256, 256], out_dtype, scale_out, zp_out)
        net.op(op, [x], [y], f"{op} s_in={s:g}", **options)
    return net


def exhaustive_sets(net: Net) -> list[list[np.ndarray]]:
    """Every int16 value at batch 1, and at batch 3 (the values, shuffled, and again)."""
    x = all_int16()
    shuffled = np.random.default_rng(0).permutation(x.reshape(-1)).reshape(x.shape)
    xb = np.concatenate([x, shuffled, x])
    return [[x] * len(net.inputs), [xb] * len(net.inputs)]


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
def test_sigmoid_tanh_every_value(op):
    rng = np.random.default_rng(1)
    scales = [*POT[:2], *(float(F32(10 ** rng.uniform(-5.5, -3))) for _ in range(4))]
    net = unary_net(op, scales, 2.0**-15)
    check(net, exhaustive_sets(net))


def scale_pairs(rng, n: int) -> list[tuple[float, float]]:
    return [(float(F32(10 ** rng.uniform(-5, -2))), float(F32(10 ** rng.uniform(-5, -2)))) for _ in range(n)]


@pytest.mark.parametrize("op", ["RELU", "RELU6"])
def test_relu_every_value(op):
    rng = np.random.default_rng(2)
    net = Net()
    for s_in, s_out in [(1e-3, 1e-3), (2.0**-10, 2.0**-12), *scale_pairs(rng, 4)]:
        x = net.input([1, 256, 256], "int16", s_in, 0)
        y = net.tensor([1, 256, 256], "int16", s_out, 0)
        net.op(op, [x], [y], f"{op} {s_in:g} -> {s_out:g}")
    check(net, exhaustive_sets(net))


def test_quantize_dequantize_int16_every_value():
    """QUANTIZE int16 -> int16 / int8 (zero points, scales either way), DEQUANTIZE int16 -> float32."""
    rng = np.random.default_rng(3)
    net = Net()
    for (s_in, s_out), dtype, zp in zip(
        [(1e-3, 1e-3), (1e-4, 3e-4), *scale_pairs(rng, 6)],
        ["int16", "int16", "int16", "int16", "int8", "int8", "int8", "int8"],
        [0, 0, 0, 0, 0, -128, 17, 127],
    ):
        x = net.input([1, 256, 256], "int16", s_in, 0)
        y = net.tensor([1, 256, 256], dtype, s_out if dtype == "int16" else s_out * 200, zp)
        net.op("QUANTIZE", [x], [y], f"QUANTIZE int16 {s_in:g} -> {dtype} {s_out:g} zp {zp}")
    x = net.input([1, 256, 256], "int16", 3.7e-4, 0)
    net.op("DEQUANTIZE", [x], [net.tensor([1, 256, 256], "float32")], "DEQUANTIZE")
    check(net, exhaustive_sets(net))


def test_quantize_to_int16_from_int8_and_float():
    rng = np.random.default_rng(4)
    net = Net()
    for s_in, zp_in, s_out in [(0.02, -3, 1e-4), (0.5, 100, 1e-5), (1e-3, -128, 1e-3)]:
        x = net.input([1, 4, 64], "int8", s_in, zp_in)
        net.op("QUANTIZE", [x], [net.tensor([1, 4, 64], "int16", s_out, 0)], f"int8 {s_in:g} -> int16")
    for s_out in (1e-4, 3.0517578125e-05, 0.01):
        x = net.input([1, 4, 64], "float32")
        net.op("QUANTIZE", [x], [net.tensor([1, 4, 64], "int16", s_out, 0)], f"float -> int16 {s_out:g}")
    sets = run_sets(net, 5, batches=(1, 4))
    for xs in sets:  # floats over the whole int16 range and beyond (saturation), some exact halves
        for k, x in enumerate(xs):
            if x.dtype == np.float32:
                xs[k] = (x * 2.0 ** rng.integers(-3, 10, x.shape)).astype(np.float32)
                xs[k].reshape(-1)[:16] = (np.arange(16) + 0.5) * F32(1e-4)
    check(net, sets)


def s16(rng, lo=-5.0, hi=-3.0) -> float:
    """A float32 int16 activation scale (zero point 0: symmetric)."""
    return float(F32(10 ** rng.uniform(lo, hi)))


@pytest.mark.parametrize("op", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
def test_pool_int16(op):
    from tests.test_ops_pool import GEOMETRIES

    rng = np.random.default_rng(10)
    net = Net()
    acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
    for k, ((h, w, c), (fh, fw), (sh, sw)) in enumerate(GEOMETRIES):
        for padding in ("SAME", "VALID"):
            if padding == "VALID" and (fh > h or fw > w):
                continue
            oh = (h + sh - 1) // sh if padding == "SAME" else (h - fh + sh) // sh
            ow = (w + sw - 1) // sw if padding == "SAME" else (w - fw + sw) // sw
            s = s16(rng, -4, -3.5)  # RELU6 and RELU_N1_TO_1 clamp inside the int16 range
            x = net.input([1, h, w, c], "int16", s, 0)
            y = net.tensor([1, oh, ow, c], "int16", s, 0)
            act = acts[k % 4]
            net.op(
                op,
                [x],
                [y],
                f"{op} int16 {h}x{w}x{c} f{fh}x{fw} s{sh}x{sw} {padding} {act}",
                padding=padding,
                filter_height=fh,
                filter_width=fw,
                stride_h=sh,
                stride_w=sw,
                fused_activation_function=act,
            )
    check(net, run_sets(net, 11, (1, 3)))


def test_mean_int16():
    rng = np.random.default_rng(12)
    net = Net()
    shape = [1, 7, 5, 6]
    for axes in ([1, 2], [2, 1], [1], [3], [-1], [1, 2, 3], [1, 3]):
        for keep in (True, False):
            for same in (True, False):
                s_in = s16(rng)
                s_out = s_in if same else s16(rng)
                ax = sorted({a % 4 for a in axes})
                oshape = (
                    [1 if d in ax else n for d, n in enumerate(shape)]
                    if keep
                    else [n for d, n in enumerate(shape) if d not in ax]
                )
                x = net.input(shape, "int16", s_in, 0)
                y = net.tensor(oshape, "int16", s_out, 0)
                axes_t = net.const(np.int32(axes), "int32")
                net.op("MEAN", [x, axes_t], [y], f"MEAN int16 axes={axes} keep={keep}", keep_dims=keep)
    check(net, run_sets(net, 13, (1, 3)))


def test_pad_concat_reshape_int16():
    rng = np.random.default_rng(14)
    net = Net()
    for shape, pads in [([1, 4, 5, 3], [[0, 0], [1, 2], [3, 0], [0, 0]]), ([1, 6], [[0, 0], [4, 5]])]:
        s = s16(rng)
        oshape = [n + a + b for n, (a, b) in zip(shape, pads)]
        x = net.input(shape, "int16", s, 0)
        net.op("PAD", [x, net.const(np.int32(pads), "int32")], [net.tensor(oshape, "int16", s, 0)], "PAD")
        x = net.input(shape, "int16", s, 0)
        v = net.const(np.array([-1234], np.int16), "int16", s, 0)
        y = net.tensor(oshape, "int16", s, 0)
        net.op("PADV2", [x, net.const(np.int32(pads), "int32"), v], [y], "PADV2")
    for axis in (1, 3, -1):
        s = s16(rng)
        ins = [
            net.input([1, 3, 2, 2 + j], "int16", s, 0)
            if axis != 1
            else net.input([1, 3 + j, 2, 2], "int16", s, 0)
            for j in range(3)
        ]
        oshape = [1, 12, 2, 2] if axis == 1 else [1, 3, 2, 9]
        net.op("CONCATENATION", ins, [net.tensor(oshape, "int16", s, 0)], f"CONCAT axis {axis}", axis=axis)
    x = net.input([1, 4, 6], "int16", 1e-4, 0)
    y = net.tensor([1, 24], "int16", 1e-4, 0)
    net.op("RESHAPE", [x, net.const(np.int32([-1, 24]), "int32")], [y], "RESHAPE", new_shape=[-1, 24])
    check(net, run_sets(net, 15, (1, 3)))


BROADCASTS = [
    ([1, 4, 5, 6], [1, 4, 5, 6]),
    ([1, 4, 5, 6], [6]),
    ([1, 4, 1, 6], [1, 1, 5, 1]),
    ([1, 1, 1, 1], [1, 3, 2, 7]),
    ([1, 5, 1, 3, 2], [5, 4, 1, 2]),
]


def out_shape(s1, s2):
    return list(np.broadcast_shapes(tuple(s1), tuple(s2)))


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
def test_binary_int16(op):
    """General scales (pot_scale_int16 false, and true with scales that are not powers of two),
    power-of-two scales with pot_scale_int16, broadcasting, fused activations."""
    rng = np.random.default_rng(16)
    net = Net()
    acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
    k = 0
    for s1, s2 in BROADCASTS:
        for pot in (False, True):
            for scales in ([s16(rng), s16(rng), s16(rng, -4.5, -3)], [2.0**-12, 2.0**-14, 2.0**-12]):
                if op == "MUL":
                    scales[2] = s16(rng, -3.5, -2.5) if scales[0] != 2.0**-12 else 2.0**-10
                a = net.input(s1, "int16", scales[0], 0)
                if s2[0] == 1 and len(s2) == len(s1):
                    b = net.input(s2, "int16", scales[1], 0)
                else:  # a shape without the batch: a constant (the batch of graph inputs varies)
                    data = rng.integers(-32768, 32768, s2)
                    b = net.const(data, "int16", scales[1], 0)
                if op == "ADD" and pot and s1 != s2 and scales[0] == 2.0**-12:
                    continue  # the reference aborts (no broadcasting kernel): tested as refused below
                y = net.tensor(out_shape(s1, s2), "int16", scales[2], 0)
                options = {"fused_activation_function": acts[k % 4]}
                k += 1
                if op != "MUL":
                    options["pot_scale_int16"] = pot
                net.op(op, [a, b], [y], f"{op} {s1} {s2} {scales} {options}", **options)
    check(net, run_sets(net, 17, (1, 3)))


def test_add_int16_pot_broadcast_refused():
    import engine
    from engine.errors import UnsupportedError

    net = Net()
    a = net.input([1, 4, 1, 6], "int16", 2.0**-12, 0)
    b = net.input([1, 1, 5, 1], "int16", 2.0**-12, 0)
    net.op("ADD", [a, b], [net.tensor([1, 4, 5, 6], "int16", 2.0**-12, 0)], "ADD", pot_scale_int16=True)
    with pytest.raises(UnsupportedError, match="cannot broadcast"):
        engine.load(net.build())


def weights_q(rng, shape, axis: int, per_channel: bool):
    """int8 symmetric weights over the full range and their scales (per channel on `axis`)."""
    data = rng.integers(-127, 128, shape).astype(np.int8)
    n = shape[axis] if per_channel else 1
    return data, [float(F32(10 ** rng.uniform(-3, -1.5))) for _ in range(n)]


def add_weighted(net: Net, op: str, x: int, out: int, w, ws, axis, bias, bias_dtype, label, **options):
    wt = net.tensor(w.shape, "int8", data=w)
    net.tensors[wt].update(scale=ws, zero_point=[0] * len(ws), quantized_dimension=axis)
    ins = [x, wt]
    if bias is not None:
        ins.append(net.tensor(bias.shape, bias_dtype, data=bias))
    elif op == "FULLY_CONNECTED":
        ins.append(-1)
    net.op(op, ins, [out], label, **options)


CONV_CASES = [  # (h, w, c), (kh, kw), oc, stride, dilation, padding
    ((9, 8, 3), (3, 3), 5, (1, 1), (1, 1), "SAME"),
    ((9, 8, 4), (3, 2), 6, (2, 3), (1, 1), "VALID"),
    ((10, 10, 2), (3, 3), 4, (1, 1), (2, 2), "SAME"),
    ((6, 7, 5), (1, 1), 3, (1, 1), (1, 1), "VALID"),
    ((5, 5, 40), (2, 2), 8, (2, 2), (1, 1), "SAME"),
    ((4, 4, 64), (3, 3), 4, (1, 1), (1, 1), "SAME"),  # 576 products: int64 sums (int32 could wrap)
]


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_conv_int16(op):
    """Per-channel and per-tensor weights, int64 / int32 / no bias, strides, dilation, padding, activations."""
    rng = np.random.default_rng(20)
    net = Net()
    acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
    k = 0
    for (h, w, c), (kh, kw), oc, (sh, sw), (dh, dw), pad in CONV_CASES:
        for per_channel, bias_dtype in ((True, "int64"), (False, "int64"), (True, None)):
            if op == "CONV_2D" and bias_dtype is None:
                continue  # the reference's 16x8 CONV_2D requires a bias (refused: test_int16_bias_refusals)
            dm = 2 if op == "DEPTHWISE_CONV_2D" and k % 2 else 1
            if op == "DEPTHWISE_CONV_2D":
                oc = c * dm
            wshape = [1, kh, kw, oc] if op == "DEPTHWISE_CONV_2D" else [oc, kh, kw, c]
            axis = 3 if op == "DEPTHWISE_CONV_2D" else 0
            wdata, ws = weights_q(rng, wshape, axis, per_channel)
            s_in = s16(rng, -4.5, -3.5)
            bias = None
            if bias_dtype:
                lim = 1 << (30 if bias_dtype == "int64" else 20)
                bias = rng.integers(-lim, lim, oc)
            oh = -(-h // sh) if pad == "SAME" else (h - (kh - 1) * dh - 1) // sh + 1
            ow = -(-w // sw) if pad == "SAME" else (w - (kw - 1) * dw - 1) // sw + 1
            x = net.input([1, h, w, c], "int16", s_in, 0)
            y = net.tensor([1, oh, ow, oc], "int16", s16(rng, -3.5, -2), 0)
            options = {
                "padding": pad,
                "stride_h": sh,
                "stride_w": sw,
                "dilation_h_factor": dh,
                "dilation_w_factor": dw,
                "fused_activation_function": acts[k % 4],
            }
            if op == "DEPTHWISE_CONV_2D":
                options["depth_multiplier"] = dm
            label = (
                f"{op} {(h, w, c)} k{kh}x{kw} oc{oc} s{sh}{sw} d{dh}{dw} {pad} pc={per_channel} {bias_dtype}"
            )
            add_weighted(net, op, x, y, wdata, ws, axis, bias, bias_dtype, label, **options)
            k += 1
    check(net, run_sets(net, 21, (1, 3)))


def test_fully_connected_int16():
    rng = np.random.default_rng(22)
    net = Net()
    acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
    k = 0
    for depth, units in ((16, 8), (300, 5), (7, 33), (600, 3)):  # 600: int64 sums
        for per_channel, bias_dtype in ((True, "int64"), (False, "int64"), (False, None)):
            for keep in (False, True):
                wdata, ws = weights_q(rng, [units, depth], 0, per_channel)
                bias = rng.integers(-(1 << 20), 1 << 20, units) if bias_dtype else None
                x = net.input([1, 3, depth], "int16", s16(rng, -4.5, -3.5), 0)
                y = net.tensor([1, 3, units] if keep else [3, units], "int16", s16(rng, -3.5, -2), 0)
                label = f"FC {depth}->{units} pc={per_channel} {bias_dtype} keep={keep}"
                options = {"fused_activation_function": acts[k % 4], "keep_num_dims": keep}
                add_weighted(net, "FULLY_CONNECTED", x, y, wdata, ws, 0, bias, bias_dtype, label, **options)
                k += 1
    check(net, run_sets(net, 23, (1, 2)))


@pytest.mark.parametrize(
    "op, bias_dtype, message",
    [
        ("CONV_2D", None, "needs a bias"),
        ("CONV_2D", "int32", "int64 bias"),
        ("DEPTHWISE_CONV_2D", "int32", "int64 bias"),
        ("FULLY_CONNECTED", "int32", "int64 bias"),
    ],
)
def test_int16_bias_refusals(op, bias_dtype, message):
    """int32 biases: the reference reads them as int64 (garbage) or refuses them; refused at load."""
    import engine
    from engine.errors import UnsupportedError

    rng = np.random.default_rng(24)
    net = Net()
    fc = op == "FULLY_CONNECTED"
    shape, wshape = (
        ([1, 6], [4, 6]) if fc else ([1, 3, 3, 4], [4, 1, 1, 4] if op == "CONV_2D" else [1, 1, 1, 4])
    )
    w, ws = weights_q(rng, wshape, 3 if op == "DEPTHWISE_CONV_2D" else 0, True)
    x = net.input(shape, "int16", 1e-4, 0)
    y = net.tensor([1, 4] if fc else [1, 3, 3, 4], "int16", 1e-3, 0)
    bias = np.arange(4) if bias_dtype else None
    options = {} if fc else {"stride_h": 1, "stride_w": 1}
    add_weighted(net, op, x, y, w, ws, 3 if op == "DEPTHWISE_CONV_2D" else 0, bias, bias_dtype, op, **options)
    with pytest.raises(UnsupportedError, match=message):
        engine.load(net.build())


def test_softmax_int16():
    """Rows of 1 to 300 values, several input scales and betas, ranks 2 to 4, batch 1 and 3."""
    rng = np.random.default_rng(25)
    net = Net()
    for shape in ([1, 10], [1, 1], [1, 4, 300], [1, 3, 5, 7], [1, 2, 64]):
        for s_in, beta in ((s16(rng), 1.0), (s16(rng, -3, -2), 1.0), (2.0**-12, 0.5), (s16(rng), 2.0)):
            x = net.input(shape, "int16", s_in, 0)
            y = net.tensor(shape, "int16", 2.0**-15, 0)
            net.op("SOFTMAX", [x], [y], f"SOFTMAX {shape} s_in={s_in:g} beta={beta}", beta=beta)
    check(net, run_sets(net, 26, (1, 3)))


# --- UNIDIRECTIONAL_SEQUENCE_LSTM (integer) ---------------------------------------------------------------

LSTM_CASES = [  # (batch, time, inputs, cells, options)
    (1, 5, 7, 6, {}),
    (3, 4, 5, 8, {}),
    (2, 6, 4, 5, {"time_major": True}),
    (2, 5, 6, 4, {"cifg": True}),
    (1, 7, 3, 9, {"cell_clip": 0.5, "cell_log2": -11}),
    (2, 4, 8, 3, {"cell_log2": -9, "x_q": (0.1, -128), "h_q": (0.02, 5), "hidden_q": (0.015, -7)}),
    (1, 3, 40, 48, {"cell_log2": -15, "cell_clip": 0.9}),
    (2, 5, 6, 8, {"peephole": True}),
    (2, 5, 6, 8, {"peephole": True, "cifg": True}),
    (2, 4, 5, 8, {"n_output": 3, "proj_clip": 0.01}),
    (1, 4, 5, 6, {"n_output": 9, "projection_bias": False}),
    (2, 5, 6, 8, {"layer_norm": True}),
    (2, 5, 6, 16, {"layer_norm": True, "cifg": True, "peephole": True, "n_output": 5}),
    (1, 6, 4, 7, {"layer_norm": True, "cell_clip": 0.3, "cell_log2": -11}),
    (2, 5, 6, 16, {"peephole": True, "n_output": 5, "layer_norm": True}),  # peepholes on 5 cells only
    (3, 4, 5, 8, {"time_major": True, "peephole": True, "layer_norm": True}),
    (1, 4, 5, 8, {"time_major": True, "peephole": True, "n_output": 6}),
]


@pytest.mark.parametrize("case", range(len(LSTM_CASES)))
def test_lstm_one_op(case, monkeypatch):
    """Batch-major and time-major, CIFG, peepholes, projection (clipped, with and without bias),
    layer norm, cell clipping, cell scales 2^-9 .. 2^-15, zero points; a batch of more than one also
    with its sequences split between the threads (team runs)."""
    import engine
    from tests.harness import split_everywhere
    from tests.oracle import reference_run_many
    from tests.tflite_builder import lstm_model

    batch, time, n_in, n_cell, options = LSTM_CASES[case]
    model = lstm_model(batch, time, n_in, n_cell, seed=case, **options)
    shape = (time, batch, n_in) if options.get("time_major") else (batch, time, n_in)
    assert engine.load(model).graph.ops[0].type == "UNIDIRECTIONAL_SEQUENCE_LSTM"
    rng = np.random.default_rng(30 + case)
    xs = [rng.integers(-128, 128, shape).astype(np.int8) for _ in range(4)]
    refs = reference_run_many(model, [[x] for x in xs], preserve_all=True)
    models = [engine.load(model)]
    if batch > 1:
        split_everywhere(monkeypatch)
        models.append(engine.load(model))
    for m in models:
        for x, ref in zip(xs, refs):
            mine = m.run(x, keep_all=True)
            for name in ("y", "h", "c"):  # the output and the final state
                assert np.array_equal(mine[name], ref["tensors"][name]), name


def test_lstm_refusals():
    """What the reference computes wrongly or not at all is refused at load, naming the op and why."""
    import engine
    from engine.errors import UnsupportedError
    from tests.tflite_builder import lstm_model

    with pytest.raises(UnsupportedError, match="mixes sequences"):
        engine.load(lstm_model(3, 4, 5, 8, time_major=True, peephole=True, n_output=6))
    with pytest.raises(UnsupportedError, match="more outputs than cells"):
        engine.load(lstm_model(1, 4, 5, 4, peephole=True, n_output=6))
    with pytest.raises(UnsupportedError, match="cell scale"):
        engine.load(lstm_model(1, 4, 5, 4, cell_log2=-8))


def test_variables_and_intermediates_in_the_formats(tmp_path):
    """.npz keeps is_variable and the op's intermediates; an op writing a variable, a malformed flag,
    and a float (non-integer) LSTM are refused with errors naming them."""
    import io
    import json

    import engine
    from engine.errors import ModelFormatError, UnsupportedError
    from engine.formats.npz import graph_to_json, load_npz, save_npz
    from engine.formats.tflite import import_tflite
    from tests.tflite_builder import lstm_model

    g = import_tflite(lstm_model(1, 3, 4, 5, layer_norm=True))
    assert [t.name for t in g.tensors if t.is_variable] == ["h", "c"]
    assert len(g.ops[0].intermediates) == 5
    buf = io.BytesIO()
    save_npz(g, buf)
    g2 = load_npz(buf.getvalue())
    assert [t.is_variable for t in g2.tensors] == [t.is_variable for t in g.tensors]
    assert g2.ops[0].intermediates == g.ops[0].intermediates
    meta = graph_to_json(g)
    meta["tensors"][g.ops[0].inputs[18]]["variable"] = "yes"
    arrays = {f"t{t.index}": t.data for t in g.tensors if t.is_const}
    bad = io.BytesIO()
    np.savez(bad, **arrays, **{"graph.json": np.frombuffer(json.dumps(meta).encode(), np.uint8)})
    with pytest.raises(ModelFormatError, match="variable"):
        load_npz(bad.getvalue())
    net = Net()
    x = net.input([1, 4], "int8", 0.1, 0)
    v = net.tensor([1, 4], "int8", 0.1, 0)
    net.tensors[v]["variable"] = True
    net.op("RELU", [x], [v], "RELU")
    with pytest.raises(ModelFormatError, match="variable"):
        engine.load(net.build())
    spec = import_tflite(lstm_model(1, 3, 4, 5))
    spec.tensors[0].dtype = "float32"
    spec.tensors[0].scale = np.zeros(0, np.float32)
    with pytest.raises(UnsupportedError, match="integer LSTM"):
        engine.Model(spec)
