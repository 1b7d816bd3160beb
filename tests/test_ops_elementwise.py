"""ADD, SUB, MUL, MEAN, PAD/PADV2 and CONCATENATION against TFLite's reference kernels, bit for bit.

Each test builds one model holding many variants of an op side by side (so one oracle process runs
them all), feeds random inputs over the full 8-bit range (batch 1 and batch > 1) and compares
every output exactly, with the helpers of tests/harness.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
from tests.harness import F32, Net, all_bytes, check, qparams, run_sets

pytestmark = pytest.mark.usefixtures("litert")

# --- ADD / SUB / MUL -------------------------------------------------------------------------------------

# scale triples where the real multipliers computed the other way (double for MUL, float for ADD and
# SUB) change some output: they pin down which computation the reference uses
PINNED = {
    "MUL": [
        ("int8", [0.003424284514039755, 0.003738782135769725, 0.00038108485750854015], [-52, 121, 112]),
        ("uint8", [0.0018143273191526532, 0.06130600720643997, 0.0028589137364178896], [135, 215, 35]),
        ("uint8", [0.03562604635953903, 0.1200861856341362, 0.12318085879087448], [180, 156, 226]),
    ],
    "ADD": [
        ("uint8", [0.14826162159442902, 0.2670123875141144, 0.0028747168835252523], [92, 182, 124]),
        ("int8", [0.9687874913215637, 0.0032152864150702953, 0.3393542468547821], [-69, -104, 70]),
        ("int8", [0.0037662817630916834, 0.02576412260532379, 0.5486930012702942], [-18, -117, 22]),
    ],
    "SUB": [
        ("uint8", [0.0024218305479735136, 0.001114663085900247, 0.003942409064620733], [234, 215, 105]),
        ("int8", [0.06230982765555382, 0.11627759784460068, 0.006393785588443279], [-90, -105, -26]),
        ("int8", [0.0019725540187209845, 0.06164738908410072, 0.0021375888027250767], [-42, 4, -64]),
    ],
}


def _binary_configs(op: str, rng: np.random.Generator) -> list:
    """(dtype, scales, zero points, activation) of the exhaustive tests: random and pinned."""
    acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
    configs = []
    for k in range(12):
        dtype = ["uint8", "int8"][k % 2]
        (s1, z1), (s2, z2), (so, zo) = (qparams(rng, dtype) for _ in range(3))
        if op == "MUL":  # an output scale near the product keeps outputs off the clamps
            so = float(F32(s1 * s2 * 10 ** rng.uniform(-0.5, 1.5)))
        configs.append((dtype, [s1, s2, so], [z1, z2, zo], acts[k % 4] if k >= 4 else "NONE"))
    return configs + [(d, s, z, "NONE") for d, s, z in PINNED[op]]


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
def test_binary_exhaustive(op):
    """Every pair of 8-bit values ([1,256,1] against [1,1,256]) for random and pinned quantizations."""
    rng = np.random.default_rng({"ADD": 1, "SUB": 2, "MUL": 3}[op])
    net = Net()
    for dtype, s, z, act in _binary_configs(op, rng):
        a = net.input([1, 256, 1], dtype, s[0], z[0])
        b = net.input([1, 1, 256], dtype, s[1], z[1])
        out = net.tensor([1, 256, 256], dtype, s[2], z[2])
        net.op(op, [a, b], [out], f"{op} {dtype} scales={s} zps={z} {act}", fused_activation_function=act)
    xs = [all_bytes(net.tensors[i]["dtype"], net.tensors[i]["shape"]) for i in net.inputs]
    check(net, [xs])


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
def test_binary_exhaustive_same_shape(op, kernel_build):
    """Every pair of 8-bit values as two inputs of one shape [1, 256, 257] (the flat gather of ADD and
    SUB, MUL's vector kernel with a chunk's tail from the table), the quantizations of
    test_binary_exhaustive; batch 1 and 2."""
    rng = np.random.default_rng({"ADD": 1, "SUB": 2, "MUL": 3}[op])
    net = Net()
    for dtype, s, z, act in _binary_configs(op, rng):
        a = net.input([1, 256, 257], dtype, s[0], z[0])
        b = net.input([1, 256, 257], dtype, s[1], z[1])
        out = net.tensor([1, 256, 257], dtype, s[2], z[2])
        net.op(op, [a, b], [out], f"{op} {dtype} scales={s} zps={z} {act}", fused_activation_function=act)
    i, j = np.meshgrid(np.arange(256), np.arange(257) % 256, indexing="ij")
    sets = []
    for batch in (1, 2):
        xs = []
        for k in net.inputs:
            raw = (i if len(xs) % 2 == 0 else j).astype(np.uint8)
            raw = np.stack([np.roll(raw, n) for n in range(batch)])
            xs.append(raw.view(net.tensors[k]["dtype"]))
        sets.append(xs)
    check(net, sets)


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_binary_broadcast(op, dtype, kernel_build):
    """Same shapes, broadcasts between two activations, against constants (either side), ranks 1 to 6."""
    rng = np.random.default_rng(10)
    info = np.iinfo(dtype)
    net = Net()

    def q():
        s, z = qparams(rng, dtype, -2.0, -0.5)
        return s, z

    def const(shape):
        s, z = q()
        return net.const(rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype), dtype, s, z)

    cases = [
        ("same", [1, 4, 5, 3], None),
        ("two activations", [1, 1, 5, 1], ("act", [1, 4, 1, 3])),
        ("const channel", [1, 4, 5, 3], ("const", [3])),
        ("const row", [1, 4, 5, 3], ("const", [1, 4, 1, 1])),
        ("const first", [1, 4, 5, 3], ("const-first", [5, 1])),
        ("const scalar", [1, 4, 5, 3], ("const", [])),
        ("rank 2", [1, 7], ("const", [7])),
        ("rank 5", [1, 2, 3, 4, 5], ("const", [2, 1, 4, 1])),
        ("rank 6", [1, 2, 1, 3, 2, 4], ("const", [1, 3, 1, 4])),
        ("rank 6 both", [1, 1, 2, 1, 3, 1], ("act", [1, 2, 1, 2, 1, 5])),
    ]
    for k, (label, shape, other) in enumerate(cases):
        sa, za = q()
        a = net.input(shape, dtype, sa, za)
        if other is None:
            b = net.input(shape, dtype, *q())
            ins, oshape = [a, b], shape
        else:
            kind, oshape2 = other
            b = net.input(oshape2, dtype, *q()) if kind == "act" else const(oshape2)
            ins = [b, a] if kind == "const-first" else [a, b]
            oshape = list(np.broadcast_shapes(tuple(shape), tuple(oshape2)))
        so, zo = q()
        if op == "MUL":
            so = float(
                F32(net.tensors[a]["scale"][0] * net.tensors[b]["scale"][0] * 10 ** rng.uniform(0, 1.5))
            )
        out = net.tensor(oshape, dtype, so, zo)
        act = ["NONE", "RELU", "RELU6"][k % 3]
        net.op(op, ins, [out], f"{op} {dtype} {label} {act}", fused_activation_function=act)
    check(net, run_sets(net, 11))


@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
def test_binary_broadcast_large(op, kernel_build):
    """Broadcasts over more elements than one parallel step of the kernels takes (16 Ki), so that each
    path splits in several: a scalar (either side), a per-channel operand (MoveNet's x - mean[c]), an outer
    product with short rows (MoveNet's [48, 48, 1] - [1, 17]), shapes equal but for 1s (YOLOv8's
    [1, 1, 4, N] * [1, 4, N]); both 8-bit types, batch 1 and 3."""
    rng = np.random.default_rng(12)
    net = Net()
    cases = [
        ([1, 96, 96, 3], [1, 1, 1, 1], False),
        ([1, 96, 96, 3], [], True),
        ([1, 96, 96, 3], [1, 1, 1, 3], False),
        ([1, 96, 96, 3], [3], True),
        ([1, 40, 40, 16], [1, 1, 1, 16], False),
        ([1, 30, 30, 7], [1, 1, 1, 7], True),
        ([1, 48, 48, 1], [1, 1, 1, 17], False),
        ([1, 1, 4, 5000], [1, 4, 5000], False),
        ([1, 40, 40, 8], [1, 40, 1, 8], False),
    ]
    for k, (shape, other, first) in enumerate(cases):
        dtype = ["int8", "uint8"][k % 2]
        a = net.input(shape, dtype, *qparams(rng, dtype, -2.0, -0.5))
        b = net.input(other, dtype, *qparams(rng, dtype, -2.0, -0.5)) if other else None
        if b is None:
            info = np.iinfo(dtype)
            b = net.const(np.array(rng.integers(info.min, int(info.max) + 1), dtype), dtype, *qparams(rng, dtype))
        oshape = list(np.broadcast_shapes(tuple(shape), tuple(other)))
        so, zo = qparams(rng, dtype, -2.0, -0.5)
        if op == "MUL":
            so = float(F32(net.tensors[a]["scale"][0] * net.tensors[b]["scale"][0] * 10 ** rng.uniform(0, 1.5)))
        out = net.tensor(oshape, dtype, so, zo)
        net.op(op, [b, a] if first else [a, b], [out], f"{op} {dtype} {shape} with {other} first={first}")
    check(net, run_sets(net, 13))


# --- MEAN ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_mean(dtype, kernel_build):
    """Axis sets (spatial [1,2] both orders, single, negative, duplicates, all but batch, not adjacent),
    keep_dims, output quantization equal to or different from the input's; windows up to 64x65."""
    rng = np.random.default_rng(20)
    net = Net()
    shape = [1, 7, 5, 6]
    for axes in ([1, 2], [2, 1], [1], [3], [-1], [1, 2, 3], [-3, -2], [2, 2], [1, 3], [3, -3]):
        for keep in (True, False):
            for same in (True, False):
                s_in, z_in = qparams(rng, dtype, -2, -1)
                s_out, z_out = (s_in, z_in) if same else qparams(rng, dtype, -2.5, -0.5)
                ax = sorted({a % 4 for a in axes})
                oshape = (
                    [1 if d in ax else n for d, n in enumerate(shape)]
                    if keep
                    else [n for d, n in enumerate(shape) if d not in ax]
                )
                x = net.input(shape, dtype, s_in, z_in)
                y = net.tensor(oshape, dtype, s_out, z_out)
                net.op(
                    "MEAN",
                    [x, net.const(np.int32(axes), "int32")],
                    [y],
                    f"MEAN {dtype} axes={axes} keep={keep} same={same}",
                    keep_dims=keep,
                )
    for h in (1, 2, 13, 64):
        x = net.input([1, h, h + 1, 8], dtype, *qparams(rng, dtype, -2, -1))
        y = net.tensor([1, 1, 1, 8], dtype, *qparams(rng, dtype, -3, -1))
        net.op(
            "MEAN",
            [x, net.const(np.int32([1, 2]), "int32")],
            [y],
            f"MEAN {dtype} {h}x{h + 1}",
            keep_dims=True,
        )
    check(net, run_sets(net, 21, (1, 3)))


def test_mean_over_batch():
    """Axis 0 reduces across the batch: batch 1 only (a batch > 1 would change the model's meaning)."""
    net = Net()
    x = net.input([1, 3, 4], "int8", 0.1, 5)
    y = net.tensor([3, 4], "int8", 0.07, -3)
    net.op("MEAN", [x, net.const(np.int32([0]), "int32")], [y], "MEAN axis 0")
    check(net, run_sets(net, 23, (1, 1)))


# --- PAD / PADV2 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_pad(dtype, kernel_build):
    rng = np.random.default_rng(30)
    info = np.iinfo(dtype)
    net = Net()
    cases = [
        ([1, 4, 5, 3], [[0, 0], [1, 2], [3, 0], [0, 0]]),  # image style
        ([1, 4, 5, 3], [[0, 0], [0, 0], [0, 0], [2, 1]]),  # channels
        ([1, 3, 2, 2, 2], [[0, 0], [1, 0], [0, 2], [1, 1], [0, 3]]),  # rank 5
        ([1, 6], [[0, 0], [4, 5]]),
        ([1, 2, 3], [[0, 0], [0, 0], [0, 0]]),
        ([1, 130, 129, 3], [[0, 0], [1, 1], [1, 1], [0, 0]]),  # YOLOv8's first: several parallel steps
        ([1, 3, 4], [[1, 1], [0, 0], [0, 0]]),  # the batch axis
    ]
    for k, (shape, pads) in enumerate(cases):
        s, z = qparams(rng, dtype, -2, -1)
        oshape = [n + a + b for n, (a, b) in zip(shape, pads)]
        for op in ("PAD", "PADV2"):
            x = net.input(shape, dtype, s, z)
            y = net.tensor(oshape, dtype, s, z)
            ins = [x, net.const(np.int32(pads) if k % 2 else np.int64(pads), "int32" if k % 2 else "int64")]
            if op == "PADV2":
                ins.append(
                    net.const(np.array([rng.integers(info.min, int(info.max) + 1)], dtype), dtype, s, z)
                )
            net.op(op, ins, [y], f"{op} {dtype} {shape} {pads}")
    check(net, run_sets(net, 31))


# (type, input quantization, output quantization): which of them picks the pad value (the output's zero
# point, or 0) differs between the runtimes (engine/ops/pad.py)
PAD_VALUE_CASES = [
    ("int8", None, (0.05, 17)),
    ("int8", (0.05, 17), None),
    ("int8", (0.05, 17), (0.07, -9)),
    ("int16", None, (0.001, 300)),
    ("int16", (0.001, 0), (0.001, 300)),
    ("uint8", None, (0.05, 130)),
    ("uint8", (0.05, 130), None),
]


def pad_value_net(cases: list, constants: bool = True) -> Net:
    """PAD of each case, and PADV2 with a constant quantized unlike the output where the input has no
    quantization (no runtime compares them then)."""
    net = Net()
    pads = net.const(np.int32([[0, 0], [1, 2], [2, 0]]), "int32")
    for dtype, q_in, q_out in cases:
        x = net.input([1, 3, 4], dtype, *(q_in or ()))
        y = net.tensor([1, 6, 6], dtype, *(q_out or ()))
        net.op("PAD", [x, pads], [y], f"PAD {dtype} {q_in} {q_out}")
        if constants and q_in is None and dtype != "uint8":
            x = net.input([1, 3, 4], dtype)
            fill = net.const(np.array([5], dtype), dtype, 0.3, 1)
            y = net.tensor([1, 6, 6], dtype, *q_out)
            net.op("PADV2", [x, pads, fill], [y], f"PADV2 {dtype} constant of other quantization")
    return net


def test_pad_value_follows_the_input_quantization(kernel_build):
    """Found by scripts/fuzz.py --fields (seeds 44234, 45076): an int8 PAD from an unquantized input pads
    0 in the reference, not the output's zero point."""
    net = pad_value_net(PAD_VALUE_CASES)
    check(net, run_sets(net, 32))


# --- CONCATENATION ---------------------------------------------------------------------------------------


def test_concat_uint8_requantizes_every_value(kernel_build):
    """uint8 inputs with other scales and zero points than the output: all 256 values, many scales."""
    rng = np.random.default_rng(40)
    net = Net()
    for k in range(16):
        scales = [qparams(rng, "uint8", -3, 0) for _ in range(3)]
        if k % 4 == 0:
            scales[1] = scales[2]  # one input already in the output's quantization: a plain copy
        a = net.input([1, 256], "uint8", *scales[0])
        b = net.input([1, 256], "uint8", *scales[1])
        out = net.tensor([1, 512], "uint8", *scales[2])
        net.op("CONCATENATION", [a, b], [out], f"CONCATENATION uint8 {scales}", axis=1)
    xs = [all_bytes("uint8", [1, 256]) for _ in net.inputs]
    check(net, [xs])


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_concat_axes(dtype, kernel_build):
    """Every axis, negative ones too, 1 to 4 inputs of different extents, and a constant input."""
    rng = np.random.default_rng(41)
    info = np.iinfo(dtype)
    net = Net()
    base = [1, 4, 3, 2]
    for axis in (0, 1, 2, 3, -1, -3):
        ax = axis % 4
        for n in (1, 2, 4):
            shared = qparams(rng, dtype, -2, -1)
            ins, total = [], 0
            for j in range(n):
                shape = list(base)
                shape[ax] = base[ax] + j
                total += shape[ax]
                q = shared if dtype == "int8" else qparams(rng, dtype, -2, -1)
                if j == 2 and ax != 0:
                    data = rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
                    ins.append(net.const(data, dtype, *q))
                else:
                    ins.append(net.input(shape, dtype, *q))
            oshape = list(base)
            oshape[ax] = total
            out = net.tensor(oshape, dtype, *shared)
            net.op("CONCATENATION", ins, [out], f"CONCATENATION {dtype} axis={axis} n={n}", axis=axis)
    sets = run_sets(net, 42, (1, 1))
    check(net, sets)


def test_concat_batch():
    """SSD-style concatenation along axis 1, at batch 1 and batch 4."""
    rng = np.random.default_rng(43)
    net = Net()
    ins = [net.input([1, n, 1, 4], "uint8", *qparams(rng, "uint8", -2, -1)) for n in (19, 6, 3)]
    out = net.tensor([1, 28, 1, 4], "uint8", *qparams(rng, "uint8", -2, -1))
    net.op("CONCATENATION", ins, [out], "CONCATENATION batch", axis=1)
    check(net, run_sets(net, 44, (1, 4)))


def test_concat_int8_needs_shared_quantization():
    """The reference's int8 kernel cannot rescale; the engine refuses that model too, saying why."""
    net = Net()
    a = net.input([1, 2], "int8", 0.1, 0)
    b = net.input([1, 2], "int8", 0.2, 0)
    out = net.tensor([1, 4], "int8", 0.1, 0)
    net.op("CONCATENATION", [a, b], [out], "concat", axis=1)
    with pytest.raises(engine.UnsupportedError, match="scale and zero point"):
        engine.load(net.build())
