"""SOFTMAX, LOGISTIC, TANH, HARD_SWISH, RELU, RELU6, QUANTIZE and DEQUANTIZE against TFLite's reference
kernels (LiteRT BUILTIN_REF), bit for bit.

Each test builds one model holding many quantizations of an op side by side (one oracle process runs them
all), at rank 2 and rank 4, and feeds inputs in which every one of the 256 byte values occurs in each batch
item, at batch 1 and batch 3. Awkward quantizations are included on purpose: zero points at the ends of the
type's range, tiny and large scales, output scales that push multipliers across their shift boundaries.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engine
from engine.errors import UnsupportedError
from engine.formats.tflite import import_tflite
from tests.harness import Net, check, qparams
from tests.oracle import OracleError, reference_run_many

pytestmark = pytest.mark.usefixtures("litert")

F32 = np.float32
DTYPES = ("uint8", "int8")
SHAPES = ([1, 300], [1, 5, 6, 10])  # rank 2 and rank 4, 300 elements each


def type_min(dtype: str) -> int:
    return int(np.iinfo(dtype).min)


def full_range_sets(net: Net, seed: int, batches=(1, 3)) -> list[list[np.ndarray]]:
    """Random inputs for every graph input; each batch item of an 8-bit input holds all 256 values."""
    rng = np.random.default_rng(seed)
    sets = []
    for batch in batches:
        xs = []
        for i in net.inputs:
            t = net.tensors[i]
            shape = (batch, *t["shape"][1:])
            if t["dtype"] == "float32":
                consumer = next(o for o in net.ops if o["inputs"][0] == i)
                xs.append(float_inputs(rng, shape, net.tensors[consumer["outputs"][0]]["scale"][0]))
                continue
            raw = rng.integers(0, 256, size=shape).astype(np.uint8).reshape(batch, -1)
            n = min(256, raw.shape[1])  # (fewer elements: as many distinct values as fit)
            for b in range(batch):
                raw[b, rng.permutation(raw.shape[1])[:n]] = rng.permutation(256)[:n]
            xs.append(raw.view(t["dtype"]).reshape(shape))
        sets.append(xs)
    return sets


def float_inputs(rng: np.random.Generator, shape, scale: float) -> np.ndarray:
    """Floats for QUANTIZE: exact halves of the output scale, their neighbours, far out-of-range values."""
    scale = F32(scale)
    n = int(np.prod(shape))
    k = rng.integers(-400, 400, n).astype(np.float32)
    halves = (k + F32(0.5)) * scale
    kind = rng.integers(0, 4, n)
    x = np.where(kind == 0, halves, np.nextafter(halves, F32(np.inf)))
    x = np.where(kind == 1, np.nextafter(halves, F32(-np.inf)), x)
    x = np.where(kind == 2, rng.standard_normal(n).astype(np.float32) * scale * F32(200), x)
    x[:8] = [1e30, -1e30, 3e9, -3e9, 0.0, -0.0, 0.49999997, -0.49999997]
    return x.astype(np.float32).reshape(shape)


def unary_net(op: str, variants, **options) -> Net:
    """variants: (in dtype, (s_in, zp_in), out dtype, (s_out, zp_out) or None for float32) at both ranks."""
    net = Net()
    for din, qin, dout, qout in variants:
        for shape in SHAPES:
            x = net.input(shape, din, *qin) if din != "float32" else net.input(shape, "float32")
            y = net.tensor(shape, dout, *qout) if qout is not None else net.tensor(shape, "float32")
            net.op(op, [x], [y], f"{op} {din}->{dout} rank {len(shape)} in={qin} out={qout}", **options)
    return net


def model_params(models_dir: Path, name: str, op_type: str, index: int = 0):
    """(in dtype, (s, zp), out dtype, (s, zp)) of the index-th op_type op of a shared model."""
    g = import_tflite((models_dir / name).read_bytes())
    op = [o for o in g.ops if o.type == op_type][index]
    i, o = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    return (
        i.dtype,
        (float(i.scale[0]), int(i.zero_point[0])),
        o.dtype,
        (float(o.scale[0]), int(o.zero_point[0])),
    )


def awkward_in(dtype: str) -> list[tuple[float, int]]:
    info = np.iinfo(dtype)
    return [(1e-4, int(info.min)), (4.0, int(info.max)), (0.0625, 0), (0.3, -3 if dtype == "int8" else 251)]


# --- LOGISTIC / TANH (8-bit: a table filled with float32 expf / tanhf in Prepare) ------------------------

# input quantizations whose tables change in some entry when numpy's float32 exp / tanh replace the C
# library's expf / tanhf (the functions LiteRT calls): they pin down the functions the reference uses
PINNED_LOGISTIC = [
    ("int8", (0.03764217719435692, 61)),
    ("int8", (0.005516061093658209, 91)),
    ("int8", (0.0031668629962950945, 91)),
]
PINNED_TANH = [("uint8", (0.011335650458931923, 187)), ("int8", (0.135100856423378, -16))]


def test_logistic():
    rng = np.random.default_rng(1)
    variants = []
    for dtype in DTYPES:
        for q in awkward_in(dtype) + [qparams(rng, dtype, -3, 0.5) for _ in range(8)]:
            variants.append((dtype, q, dtype, (1 / 256, type_min(dtype))))
        # the reference checks only the output scale: other zero points shift the table
        variants.append((dtype, qparams(rng, dtype), dtype, (1 / 256, type_min(dtype) + 100)))
    variants += [(dtype, q, dtype, (1 / 256, type_min(dtype))) for dtype, q in PINNED_LOGISTIC]
    net = unary_net("LOGISTIC", variants)
    check(net, full_range_sets(net, 2))


def test_ssd_shape_and_large_batches(models_dir):
    """The SSD's own LOGISTIC (uint8 [N, 1917, 91], its quantization), with a SOFTMAX and a float QUANTIZE of
    that shape, at batch 1 and at batch 7 (past 2**20 elements, where the kernels go parallel)."""
    net = Net()
    din, qin, dout, qout = model_params(models_dir, "ssd_mobilenet_v1_coco_uint8.tflite", "LOGISTIC")
    shape = [1, 1917, 91]
    x = net.input(shape, din, *qin)
    net.op("LOGISTIC", [x], [net.tensor(shape, dout, *qout)], f"LOGISTIC SSD {qin} -> {qout}")
    x = net.input(shape, "int8", 0.05, 3)
    net.op("SOFTMAX", [x], [net.tensor(shape, "int8", 1 / 256, -128)], "SOFTMAX [N, 1917, 91]", beta=1.0)
    x = net.input(shape, "float32")
    net.op("QUANTIZE", [x], [net.tensor(shape, "uint8", 0.01, 100)], "QUANTIZE float [N, 1917, 91]")
    check(net, full_range_sets(net, 3, (1, 7)))


def test_tanh():
    rng = np.random.default_rng(4)
    variants = []
    for dtype in DTYPES:
        standard = (1 / 128, 128 if dtype == "uint8" else 0)
        for q in awkward_in(dtype) + [qparams(rng, dtype, -3, 0.5) for _ in range(6)]:
            variants.append((dtype, q, dtype, standard))
        for _ in range(4):  # the reference takes any output quantization
            variants.append((dtype, qparams(rng, dtype, -3, 0.5), dtype, qparams(rng, dtype, -3, 0)))
    variants += [(dtype, q, dtype, (1 / 128, 128 if dtype == "uint8" else 0)) for dtype, q in PINNED_TANH]
    net = unary_net("TANH", variants)
    check(net, full_range_sets(net, 5))


# --- HARD_SWISH (16-bit fixed point) ---------------------------------------------------------------------


def test_hard_swish():
    rng = np.random.default_rng(6)
    variants = []
    for dtype in DTYPES:
        info = np.iinfo(dtype)
        # input scales on both sides of the reluish exponent's sign change (s_in ~ 1/85); output scales
        # from just above s_in / 128 (output exponent 0) to 20 x s_in
        for s_in in (1e-3, 0.0117, 0.0118, 0.05, 0.6, 3.0):
            for ratio in (1 / 127, 1 / 30, 0.3, 1.0, 20.0):
                zi = int(rng.integers(info.min, int(info.max) + 1))
                zo = int(rng.integers(info.min, int(info.max) + 1))
                variants.append((dtype, (s_in, zi), dtype, (float(F32(s_in * ratio)), zo)))
        variants.append((dtype, (0.1, int(info.min)), dtype, (0.1, int(info.max))))
        variants.append((dtype, (0.1, int(info.max)), dtype, (0.1, int(info.min))))
    net = unary_net("HARD_SWISH", variants)
    check(net, full_range_sets(net, 7))


# --- RELU / RELU6 (requantize, then clamp) ---------------------------------------------------------------


# (dtype, input quantization, output quantization) whose tables change when the real multiplier s_in / s_out
# is divided in double instead of float32 (RELU, RELU6) or the other way round (QUANTIZE): they pin it down
PINNED_MULTIPLIER = {
    "RELU": [
        ("int8", (1.3944683074951172, -40), (1.5606484413146973, -28)),
        ("int8", (0.33773255348205566, -59), (0.6103187203407288, -46)),
    ],
    "RELU6": [("int8", (0.004943954758346081, -5), (0.0038402583450078964, -114))],
    "QUANTIZE": [
        ("int8", (0.07621140033006668, 84), (0.17258454859256744, -53)),
        ("int8", (0.8699378371238708, -58), (0.012562278658151627, 92)),
    ],
}


@pytest.mark.parametrize("op", ["RELU", "RELU6"])
def test_relu(op):
    rng = np.random.default_rng(8 if op == "RELU" else 9)
    variants = []
    for dtype in DTYPES:
        info = np.iinfo(dtype)
        for q in awkward_in(dtype):
            variants.append((dtype, q, dtype, q))  # the usual case: one quantization throughout
        for _ in range(6):
            q = qparams(rng, dtype, -3, 0.5)
            variants.append((dtype, q, dtype, q))
            variants.append((dtype, q, dtype, qparams(rng, dtype, -3, 0.5)))
        # 6 / scale beyond the type's range, zero point at either end, a large input/output ratio
        variants.append((dtype, (0.01, int(info.min)), dtype, (0.005, int(info.min))))
        variants.append((dtype, (0.05, int(info.max)), dtype, (0.05, int(info.max))))
        variants.append((dtype, (2.0, 0), dtype, (0.001, int(info.min) + 10)))
    variants += [(dtype, qi, dtype, qo) for dtype, qi, qo in PINNED_MULTIPLIER[op]]
    net = unary_net(op, variants)
    check(net, full_range_sets(net, 10))


# --- QUANTIZE / DEQUANTIZE -------------------------------------------------------------------------------


def test_requantize():
    """8-bit -> 8-bit in all four type pairs."""
    rng = np.random.default_rng(11)
    variants = []
    for din in DTYPES:
        for dout in DTYPES:
            shift = {("int8", "uint8"): 128, ("uint8", "int8"): -128}.get((din, dout), 0)
            q = qparams(rng, din, -3, 0.5)
            if din == "uint8":
                q = (q[0], min(max(q[1], 0), 255) if shift == 0 else int(rng.integers(128, 256)))
            else:
                q = (q[0], q[1] if shift == 0 else int(rng.integers(-128, 0)))
            variants.append((din, q, dout, (q[0], q[1] + shift)))  # same scale: the reference's fast path
            for _ in range(4):
                variants.append((din, qparams(rng, din, -3, 0.5), dout, qparams(rng, dout, -3, 0.5)))
            variants.append((din, (1.0, 3), dout, (1e-3, type_min(dout) + 5)))  # multiplier >> 1
            variants.append((din, (1e-3, type_min(din)), dout, (0.9, 0 if dout == "int8" else 255)))
    variants += [(dtype, qi, dtype, qo) for dtype, qi, qo in PINNED_MULTIPLIER["QUANTIZE"]]
    net = unary_net("QUANTIZE", variants)
    check(net, full_range_sets(net, 12))


def test_quantize_float():
    """float32 -> 8-bit: halves round away from zero, values beyond int32 follow the reference's conversion."""
    rng = np.random.default_rng(13)
    variants = []
    for dout in DTYPES:
        info = np.iinfo(dout)
        for q in [
            (1.0, 0),
            (1 / 255, int(info.min)),
            (0.007843138, int(info.max)),
            (3e-5, -7 if dout == "int8" else 7),
        ]:
            variants.append(("float32", None, dout, q))
        for _ in range(4):
            variants.append(("float32", None, dout, qparams(rng, dout, -3, 0.5)))
    net = unary_net("QUANTIZE", variants)
    check(net, full_range_sets(net, 14))


def test_dequantize():
    rng = np.random.default_rng(15)
    variants = []
    for din in DTYPES:
        for q in awkward_in(din) + [(1e-7, 1), (123.4, -1 if din == "int8" else 1)]:
            variants.append((din, q, "float32", None))
        for _ in range(6):
            variants.append((din, qparams(rng, din, -4, 1), "float32", None))
    net = unary_net("DEQUANTIZE", variants)
    check(net, full_range_sets(net, 16))


# --- SOFTMAX (gemmlowp fixed point over the last axis) ---------------------------------------------------


def test_softmax():
    rng = np.random.default_rng(17)
    net = Net()
    shapes = ([1, 256], [1, 3, 4, 40], [1, 16, 91])
    for dtype in DTYPES:
        out_q = (1 / 256, type_min(dtype))
        cases = [(q, 1.0) for q in awkward_in(dtype)]
        cases += [(qparams(rng, dtype, -3, 0.5), beta) for beta in (1.0, 1.0, 0.5, 2.0, 0.3)]
        for k, (q, beta) in enumerate(cases):
            shape = shapes[k % len(shapes)]
            x = net.input(shape, dtype, *q)
            y = net.tensor(shape, dtype, *out_q)
            net.op("SOFTMAX", [x], [y], f"SOFTMAX {dtype} {shape} in={q} beta={beta}", beta=beta)
    # a uint8 output quantization other than (1/256, 0) runs unchecked in the reference, in 1/256 units
    x = net.input([1, 8, 40], "uint8", 0.1, 3)
    net.op("SOFTMAX", [x], [net.tensor([1, 8, 40], "uint8", 0.02, 9)], "SOFTMAX uint8 odd output", beta=1.0)
    sets = full_range_sets(net, 18)
    # rows with ties at the maximum: constant inputs, and a few distinct values only
    sets.append([np.zeros_like(a) for a in sets[0]])
    sets.append([(np.arange(a.size).reshape(a.shape) % 3).astype(a.dtype) for a in sets[1]])
    check(net, sets)


def test_softmax_short_rows(kernel_build):
    """Rows of 16 (YOLOv8's box distributions), rows that end in a partial block of 16 (1, 17, 33), a long
    one; many rows (several chunks of the kernel), random and tied inputs, both builds, batch 1 and 3."""
    rng = np.random.default_rng(23)
    net = Net()
    shapes = ([1, 4, 700, 16], [1, 300, 17], [1, 90, 33], [1, 300, 1], [1, 3, 200])
    for k, shape in enumerate(shapes):
        dtype = DTYPES[k % 2]
        q = qparams(rng, dtype, -2, 0)
        x = net.input(shape, dtype, *q)
        y = net.tensor(shape, dtype, 1 / 256, type_min(dtype))
        net.op("SOFTMAX", [x], [y], f"SOFTMAX {dtype} {shape} in={q}", beta=1.0)
    sets = full_range_sets(net, 24)
    sets.append([(np.arange(a.size).reshape(a.shape) % 5).astype(a.dtype) for a in sets[1]])
    check(net, sets)


def test_softmax_rows_in_lanes(kernel_build):
    """Rows of 1 to 16 elements, 16 rows at a time one per lane (kernels/softmax8.py rows16_softmax), with row
    counts that leave a scalar tail; input scales from tiny (all outputs near 1/depth) to large (most
    differences skipped), beta != 1; random, tied and constant rows; both builds, batch 1 and 3."""
    net = Net()
    for k, depth in enumerate((1, 2, 3, 5, 7, 8, 11, 13, 15, 16, 16, 16)):
        dtype = DTYPES[k % 2]
        q = [(1e-3, 0), (0.02, 5), (0.3, -3 if dtype == "int8" else 200), (2.5, 7)][k % 4]
        shape = [1, 16 * (k + 17) + k % 7, depth]  # (256 values or more: full_range_sets)
        x = net.input(shape, dtype, *q)
        y = net.tensor(shape, dtype, 1 / 256, type_min(dtype))
        beta = [1.0, 0.7, 1.0, 2.5][k % 4]
        net.op("SOFTMAX", [x], [y], f"SOFTMAX {dtype} {shape} in={q} beta={beta}", beta=beta)
    sets = full_range_sets(net, 30)
    sets.append([(np.arange(a.size).reshape(a.shape) % 3).astype(a.dtype) for a in sets[0]])
    sets.append([np.full_like(a, 9) for a in sets[1]])
    check(net, sets)


def test_shared_models_quantizations(models_dir):
    """The quantizations of these ops in the shared models: MNIST's QUANTIZE pair (uint8 -> int8 in, int8 ->
    uint8 out) and the SOFTMAX of MNIST, micro_speech and person_detect, with each model's beta."""
    net = Net()
    for k in (0, 1):
        din, qin, dout, qout = model_params(models_dir, "mnist_uint8.tflite", "QUANTIZE", k)
        for shape in SHAPES:
            x = net.input(shape, din, *qin)
            net.op("QUANTIZE", [x], [net.tensor(shape, dout, *qout)], f"MNIST QUANTIZE {k} {shape}")
    for name in ("mnist_uint8", "micro_speech_int8", "person_detect_int8"):
        g = import_tflite((models_dir / f"{name}.tflite").read_bytes())
        op = next(o for o in g.ops if o.type == "SOFTMAX")
        din, qin, dout, qout = model_params(models_dir, f"{name}.tflite", "SOFTMAX")
        for shape in ([1, 256], [1, 2, 4, 40]):
            x = net.input(shape, din, *qin)
            net.op(
                "SOFTMAX",
                [x],
                [net.tensor(shape, dout, *qout)],
                f"{name} SOFTMAX {shape}",
                beta=op.options["beta"],
            )
    check(net, full_range_sets(net, 19))


# --- refusals --------------------------------------------------------------------------------------------


def one_op(op: str, din: str, qin, dout: str, qout, **options) -> bytes:
    net = Net()
    x = net.input([1, 8], din, *qin)
    net.op(op, [x], [net.tensor([1, 8], dout, *qout)], op, **options)
    return net.build()


@pytest.mark.parametrize(
    "case",
    [
        ("SOFTMAX", "int8", (0.1, 0), "int8", (1 / 256, -127), {"beta": 1.0}),  # int8 output zero point
        ("SOFTMAX", "int8", (0.1, 0), "int8", (1 / 128, -128), {"beta": 1.0}),  # int8 output scale
        ("SOFTMAX", "int8", (0.1, 0), "int8", (1 / 256, -128), {}),  # beta 0 (the schema default)
        ("LOGISTIC", "uint8", (0.1, 0), "uint8", (1 / 128, 0), {}),  # output scale must be 1/256
        ("HARD_SWISH", "int8", (0.5, 0), "int8", (0.001, 0), {}),  # output multiplier exponent > 0
    ],
    ids=["softmax-zp", "softmax-scale", "softmax-beta0", "logistic-scale", "hard-swish-exponent"],
)
def test_refused_like_the_reference(case):
    """Quantizations the reference refuses in Prepare (or aborts on): the engine refuses them too."""
    op, din, qin, dout, qout, options = case
    model = one_op(op, din, qin, dout, qout, **options)
    x = np.zeros([1, 8], din)
    with pytest.raises(OracleError):
        reference_run_many(model, [[x]])
    with pytest.raises(UnsupportedError):
        engine.load(model)


@pytest.mark.parametrize(
    "op", ["SOFTMAX", "LOGISTIC", "TANH", "HARD_SWISH", "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE"]
)
def test_per_channel_input_refused(op):
    net = Net()
    t = {
        "name": "x",
        "shape": [1, 2],
        "dtype": "int8",
        "scale": [0.1, 0.2],
        "zero_point": [0, 0],
        "quantized_dimension": 1,
    }
    net.tensors.append(t)
    net.inputs.append(0)
    out = net.tensor([1, 2], "float32") if op == "DEQUANTIZE" else net.tensor([1, 2], "int8", 1 / 256, -128)
    net.op(op, [0], [out], op, **({"beta": 1.0} if op == "SOFTMAX" else {}))
    with pytest.raises(UnsupportedError, match="per tensor"):
        engine.load(net.build())
