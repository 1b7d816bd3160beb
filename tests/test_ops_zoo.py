"""The ops the zoo models need (YOLO, DeepLab, MoveNet, traffic_model) against TFLite's reference
kernels, bit for bit: one model per op holding its variants side by side, batch 1 and batch > 1."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from tests.harness import Net, check, run_sets
from tests.oracle import reference_run_many

pytestmark = pytest.mark.usefixtures("litert")

QUANT = {"uint8": (0.05, 3), "int8": (0.05, -2), "int16": (0.01, 0)}


def q(dtype: str) -> tuple:
    return QUANT.get(dtype, (None, None))


def check_sets(net: Net, sets: list[list[np.ndarray]]) -> None:
    """check() with inputs the test chose (index ranges, non-negative values...)."""
    check(net, sets)


# --- SPLIT / SPLIT_V / UNPACK -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "int64", "float32"])
def test_split(dtype):
    net = Net()
    for axis, n, shape in ((3, 3, [1, 4, 5, 6]), (-1, 2, [1, 3, 4]), (1, 4, [1, 8, 3]), (2, 1, [1, 2, 5])):
        x = net.input(shape, dtype, *q(dtype))
        part = list(shape)
        part[axis] //= n
        ys = [net.tensor(part, dtype, *q(dtype)) for _ in range(n)]
        net.op("SPLIT", [net.const(np.int32(axis), "int32"), x], ys, f"SPLIT axis={axis} n={n}", num_splits=n)
    check(net, run_sets(net, 1, (1, 3)))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32"])
def test_split_v(dtype):
    net = Net()
    for axis, sizes, shape in ((3, [1, 3, 2], [1, 4, 5, 6]), (1, [2, -1], [1, 7, 3]), (-1, [4], [1, 2, 4])):
        x = net.input(shape, dtype, *q(dtype))
        n = shape[axis]
        real = [n - sum(s for s in sizes if s != -1) if s == -1 else s for s in sizes]
        ys = []
        for s in real:
            part = list(shape)
            part[axis] = s
            ys.append(net.tensor(part, dtype, *q(dtype)))
        ins = [x, net.const(np.int32(sizes), "int32"), net.const(np.int32(axis), "int32")]
        net.op("SPLIT_V", ins, ys, f"SPLIT_V axis={axis} {sizes}", num_splits=len(sizes))
    check(net, run_sets(net, 2, (1, 3)))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int32", "float32"])
def test_unpack(dtype):
    net = Net()
    for axis, shape in ((1, [1, 3, 4]), (-1, [1, 2, 3]), (2, [1, 2, 2, 5])):
        x = net.input(shape, dtype, *q(dtype))
        out = shape[: axis % len(shape)] + shape[axis % len(shape) + 1 :]
        ys = [net.tensor(out, dtype, *q(dtype)) for _ in range(shape[axis])]
        net.op("UNPACK", [x], ys, f"UNPACK axis={axis}", num=shape[axis], axis=axis)
    check(net, run_sets(net, 3, (1, 2)))


# --- TRANSPOSE ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "int64", "float32", "bool"])
def test_transpose(dtype):
    net = Net()
    cases = [
        ([1, 5, 6, 7], [0, 3, 1, 2]),  # YOLO's NHWC -> NCHW
        ([1, 4, 3, 9], [0, 2, 1, 3]),
        ([1, 3, 4, 9], [0, 2, 3, 1]),
        ([1, 6], [1, 0]),
        ([1, 2, 3], [2, 0, 1]),
        ([1, 2, 3, 2, 4], [4, 2, 0, 3, 1]),
        ([1, 2, 2, 3, 2, 3], [0, 5, 1, 4, 2, 3]),
    ]
    for shape, perm in cases:
        x = net.input(shape, dtype, *q(dtype))
        y = net.tensor([shape[p] for p in perm], dtype, *q(dtype))
        net.op("TRANSPOSE", [x, net.const(np.int32(perm), "int32")], [y], f"TRANSPOSE {shape} {perm}")
    check(net, run_sets(net, 4, (1,)))
    # batch > 1 where the batch stays first
    net2 = Net()
    for shape, perm in cases:
        if perm[0] == 0:
            x = net2.input(shape, dtype, *q(dtype))
            y = net2.tensor([shape[p] for p in perm], dtype, *q(dtype))
            net2.op("TRANSPOSE", [x, net2.const(np.int32(perm), "int32")], [y], f"TRANSPOSE {shape} {perm}")
    check(net2, run_sets(net2, 5, (3,)))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16"])
def test_transpose_tiles(dtype):
    """Transposes of one-byte data large enough for the 16 x 16 tiles (kernels/transpose8.py): whole tiles,
    right and bottom edges, several outer blocks and tasks; int16 takes the generic copy on the same views."""
    cases = [
        ([1, 20, 20, 144], [0, 3, 1, 2]),  # YOLO's [1, 20, 20, 144] -> NCHW
        ([1, 16, 4, 300], [0, 2, 3, 1]),  # YOLO's DFL [1, 16, 4, 8400] -> [1, 4, 8400, 16], shorter
        ([1, 33, 17, 47], [0, 3, 1, 2]),
        ([1, 3, 37, 290], [0, 1, 3, 2]),
        ([1, 2, 18, 5, 70], [0, 3, 4, 1, 2]),
    ]
    net = Net()
    for shape, perm in cases:
        x = net.input(shape, dtype, *q(dtype))
        y = net.tensor([shape[p] for p in perm], dtype, *q(dtype))
        net.op("TRANSPOSE", [x, net.const(np.int32(perm), "int32")], [y], f"TRANSPOSE {shape} {perm}")
    check(net, run_sets(net, 6, (1, 3)))


# --- RESIZE ---------------------------------------------------------------------------------------

RESIZE_CASES = [  # (input h, w), (output h, w), align_corners, half_pixel_centers
    ((4, 5), (8, 10), False, False),
    ((4, 5), (7, 13), False, False),
    ((6, 7), (3, 4), False, False),
    ((4, 5), (9, 11), True, False),
    ((5, 4), (2, 3), True, False),
    ((4, 5), (8, 10), False, True),
    ((5, 3), (7, 11), False, True),
    ((6, 6), (4, 5), False, True),
    ((1, 1), (3, 3), True, False),
    ((3, 3), (1, 1), True, False),
]


def resize_net(op: str, dtype: str) -> Net:
    net = Net()
    for (h, w), (oh, ow), align, half in RESIZE_CASES:
        if op == "RESIZE_NEAREST_NEIGHBOR" or not (align and half):
            x = net.input([1, h, w, 3], dtype, *q(dtype))
            y = net.tensor([1, oh, ow, 3], dtype, *q(dtype))
            size = net.const(np.int32([oh, ow]), "int32")
            label = f"{op} {h}x{w}->{oh}x{ow} align={align} half={half}"
            net.op(op, [x, size], [y], label, align_corners=align, half_pixel_centers=half)
    return net


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32"])
@pytest.mark.parametrize("op", ["RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"])
def test_resize(op, dtype):
    if op == "RESIZE_BILINEAR" and dtype == "int32":
        pytest.skip("the reference has no int32 bilinear kernel")
    net = resize_net(op, dtype)
    check(net, run_sets(net, 6, (1, 2)))


def test_resize_bilinear_large_upscale():
    """DeepLab's 33 -> 513 with align_corners and MoveNet's half-pixel 6 -> 12, on their types; 21
    channels (DeepLab's classes: a pixel's vector of 16 lanes and a part, the kernel's wide steps
    writing into the next pixels) on uint8 and float32, the float kernel's types."""
    net = Net()
    cases = [("uint8", (33, 513), True, False, 2), ("int8", (6, 12), False, True, 2)]
    cases += [("uint8", (9, 37), True, False, 21), ("float32", (5, 11), False, False, 21)]
    for dtype, (h, oh), align, half, c in cases:
        x = net.input([1, h, h, c], dtype, *q(dtype))
        y = net.tensor([1, oh, oh, c], dtype, *q(dtype))
        net.op(
            "RESIZE_BILINEAR",
            [x, net.const(np.int32([oh, oh]), "int32")],
            [y],
            f"{h}->{oh}",
            align_corners=align,
            half_pixel_centers=half,
        )
    check(net, run_sets(net, 7, (1, 2)))


@pytest.mark.parametrize(
    ("op", "dtype"), [("RESIZE_NEAREST_NEIGHBOR", "int64"), ("ARG_MAX", "int16"), ("ARG_MAX", "int64")]
)
def test_types_the_reference_refuses_are_refused(op, dtype):
    net = Net()
    x = net.input([1, 2, 2, 1], dtype, *q(dtype))
    if op == "ARG_MAX":
        net.op(
            op,
            [x, net.const(np.int32(1), "int32")],
            [net.tensor([1, 2, 1], "int32")],
            op,
            output_type="int32",
        )
    else:
        net.op(op, [x, net.const(np.int32([4, 4]), "int32")], [net.tensor([1, 4, 4, 1], dtype)], op)
    with pytest.raises(engine.UnsupportedError, match=f"op 0 .{op}.*{dtype} not supported"):
        engine.load(net.build())


def test_resize_bilinear_refuses_both_flags():
    net = Net()
    x = net.input([1, 2, 2, 1], "int8", 0.1, 0)
    y = net.tensor([1, 4, 4, 1], "int8", 0.1, 0)
    net.op(
        "RESIZE_BILINEAR",
        [x, net.const(np.int32([4, 4]), "int32")],
        [y],
        "both",
        align_corners=True,
        half_pixel_centers=True,
    )
    with pytest.raises(engine.UnsupportedError, match="op 0 .RESIZE_BILINEAR.*half_pixel_centers"):
        engine.load(net.build())


# --- ARG_MAX / ARG_MIN ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int32", "float32"])
@pytest.mark.parametrize("op", ["ARG_MAX", "ARG_MIN"])
def test_arg_min_max(op, dtype):
    net = Net()
    for axis, shape, out_type in (
        (3, [1, 5, 6, 21], "int64"),
        (1, [1, 30, 2], "int32"),
        (-1, [1, 7], "int32"),
        (0, [1, 4], "int64"),
        (2, [1, 3, 4, 5], "int32"),
    ):
        x = net.input(shape, dtype, *q(dtype))
        out = [d for k, d in enumerate(shape) if k != axis % len(shape)]
        y = net.tensor(out, out_type)
        net.op(
            op,
            [x, net.const(np.int32(axis), "int32")],
            [y],
            f"{op} axis={axis} {out_type}",
            output_type=out_type,
        )
    sets = run_sets(net, 8, (1, 3))
    if dtype in ("uint8", "int8"):  # ties: few distinct values, the first index must win
        sets.append([(x % 3).astype(x.dtype) for x in sets[0]])
    check(net, sets)


# --- CAST -----------------------------------------------------------------------------------------

CAST_PAIRS = [
    ("uint8", "float32"),
    ("int8", "float32"),
    ("int32", "float32"),
    ("int16", "int32"),
    ("int32", "int64"),
    ("int64", "int32"),
    ("int32", "int8"),
    ("int32", "uint8"),
    ("float32", "int32"),
    ("float32", "int64"),
    ("float32", "uint8"),
    ("int32", "bool"),
    ("float32", "bool"),
]


def test_cast(kernel_build):
    net = Net()
    for src, dst in CAST_PAIRS:
        x = net.input([1, 5, 7], src)
        net.op("CAST", [x], [net.tensor([1, 5, 7], dst)], f"CAST {src}->{dst}")
    rng = np.random.default_rng(9)
    sets = []
    for b in (1, 2):
        xs = net.random_inputs(rng, b)
        # floats spread over integer ranges, with halves and negatives; no NaN (C++ leaves it undefined)
        sets.append([x * 100 if x.dtype == np.float32 else x for x in xs])
    check(net, sets)


def test_a_folded_op_runs_its_serial_build(monkeypatch):
    """A constant CAST large enough to pick its parallel build is folded at load on its serial build
    (Prepared.run_serial: a parfor build would compile for that one call); the sum with it is the
    reference's."""
    from engine.kernels import kernel as kernels
    from engine.ops import cast

    def parallel_build_called(*args):
        raise AssertionError("constant folding called the parallel build")

    monkeypatch.setattr(cast._convert, "parallel", parallel_build_called)
    monkeypatch.setitem(kernels.BUILDS, parallel_build_called, cast._convert)
    n = 4 * kernels.PARALLEL_MIN_WORK  # (CAST picks by elements / 4)
    net = Net()
    x = net.input([1, n], "int32")
    c = net.const(np.random.default_rng(4).integers(-(2**15), 2**15, (1, n)).astype(np.int16), "int16")
    y = net.tensor([1, n], "int32")
    net.op("CAST", [c], [y], "CAST int16->int32 (folded)")
    net.op("ADD", [x, y], [net.tensor([1, n], "int32")], "ADD int32")
    check(net, run_sets(net, 5, batches=(1, 2)))


# --- SQRT / RSQRT ---------------------------------------------------------------------------------


def test_sqrt_rsqrt():
    net = Net()
    for op in ("SQRT", "RSQRT"):
        x = net.input([1, 6, 50], "float32")
        net.op(op, [x], [net.tensor([1, 6, 50], "float32")], op)
    rng = np.random.default_rng(10)
    sets = [
        [np.abs(x) * 10 ** rng.uniform(-5, 5, x.shape).astype(np.float32) for x in net.random_inputs(rng, b)]
        for b in (1, 2)
    ]
    sets[0][0][0, 0, :3] = [0.0, 3e38, 1e-40]
    sets[0][1][0, 0, :3] = [0.0, 3e38, 1e-40]
    check(net, sets)


# --- GATHER / GATHER_ND ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int32", "int64", "float32"])
def test_gather_constant_indices(dtype):
    net = Net()
    cases = [  # params shape, indices, axis, batch_dims
        ([1, 5, 3], [[4, 0, 2]], 1, 0),
        ([1, 6], [5, 5, 1, 0], 1, 0),
        ([1, 3, 4, 2], [[0, 3], [2, 1]], 2, 0),
        ([1, 4, 3], [[1, 2, 0, 1, 1]], 1, 1),
        ([1, 2, 3], [0], 0, 0),
    ]
    for shape, idx, axis, bd in cases:
        idx = np.int32(idx)
        x = net.input(shape, dtype, *q(dtype))
        out = shape[:axis] + list(idx.shape[bd:]) + shape[axis + 1 :]
        y = net.tensor(out, dtype, *q(dtype))
        net.op(
            "GATHER",
            [x, net.const(idx, "int32")],
            [y],
            f"GATHER {shape} axis={axis} bd={bd}",
            axis=axis,
            batch_dims=bd,
        )
    check(net, run_sets(net, 11, (1,)))


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_gather_nd(dtype):
    """Indices as graph inputs (MoveNet computes them) and as constants."""
    net = Net()
    p1 = net.input([1, 6, 5, 4], dtype, *q(dtype))
    i1 = net.input([1, 3, 3], "int32")
    net.op("GATHER_ND", [p1, i1], [net.tensor([1, 3, 4], dtype, *q(dtype))], "GATHER_ND depth 3")
    p2 = net.input([1, 6, 5], dtype, *q(dtype))
    i2 = net.input([1, 2, 1], "int32")
    net.op("GATHER_ND", [p2, i2], [net.tensor([1, 2, 6, 5], dtype, *q(dtype))], "GATHER_ND depth 1")
    p3 = net.input([1, 4, 3], dtype, *q(dtype))
    i3 = net.const(np.int32([[0, 3, 2], [0, 0, 0]]), "int32")
    net.op("GATHER_ND", [p3, i3], [net.tensor([2], dtype, *q(dtype))], "GATHER_ND constant full depth")
    rng = np.random.default_rng(12)
    sets = []
    for _ in range(3):
        x1, _, x2, _, x3 = net.random_inputs(rng, 1)
        idx1 = np.stack([np.zeros(3, int), rng.integers(0, 6, 3), rng.integers(0, 5, 3)], 1)[None].astype(
            np.int32
        )
        idx2 = np.zeros((1, 2, 1), np.int32)
        sets.append([x1, idx1, x2, idx2, x3])
    check(net, sets)
    m = engine.load(net.build())
    bad = sets[0][:]
    bad[1] = np.int32([[[0, 6, 0], [0, 0, 0], [0, 0, 0]]])
    with pytest.raises(engine.InputError, match="op 0 .GATHER_ND.: index out of range"):
        m.run(bad)


# --- arithmetic on float32 / int32 ----------------------------------------------------------------

PLAIN_OPS = ["ADD", "SUB", "MUL", "DIV", "FLOOR_DIV", "MAXIMUM", "MINIMUM"]


def plain_net(dtype: str) -> Net:
    net = Net()
    shapes = [([1, 4, 5], [1, 4, 5]), ([1, 4, 5], [5]), ([1, 1, 3, 1], [1, 2, 1, 4]), ([1, 3], [])]
    for op in PLAIN_OPS:
        acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"] if op in ("ADD", "SUB", "MUL", "DIV") else ["NONE"]
        for k, (s1, s2) in enumerate(shapes):
            a = net.input(s1, dtype)
            if len(s2) == len(s1):
                b = net.input(s2, dtype)
            else:  # lower rank: a constant (graph inputs change their first dimension with the batch)
                b = net.const(
                    (np.arange(int(np.prod(s2))) % 7 - 2).astype(dtype).reshape(s2)
                    + 9 * (op in ("DIV", "FLOOR_DIV")),
                    dtype,
                )
            out = list(np.broadcast_shapes(tuple(s1), tuple(s2)))
            opts = (
                {"fused_activation_function": acts[k % len(acts)]}
                if op in ("ADD", "SUB", "MUL", "DIV")
                else {}
            )
            net.op(op, [a, b], [net.tensor(out, dtype)], f"{op} {s1} {s2} {opts}", **opts)
    return net


@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_plain_arithmetic(dtype):
    net = plain_net(dtype)
    rng = np.random.default_rng(13)
    sets = []
    for b in (1, 1, 2):
        xs = net.random_inputs(rng, b)
        if dtype == "int32":  # small values, no zero divisor (the reference refuses it)
            xs = [np.where(x % 50 == 25, 7, x % 50 - 25).astype(np.int32) for x in xs]
        else:
            xs = [x * np.float32(10) for x in xs]
        sets.append(xs)
    if dtype == "float32":  # overflow to inf: the reference clamps it to FLT_MAX
        sets[0] = [np.full_like(x, 3e38) for x in sets[0]]
    check(net, sets)


def test_int_division_by_zero_is_an_error():
    net = Net()
    a, b = net.input([1, 3], "int32"), net.input([1, 3], "int32")
    net.op("FLOOR_DIV", [a, b], [net.tensor([1, 3], "int32")], "floor_div")
    m = engine.load(net.build())
    with pytest.raises(engine.InputError, match="op 0 .FLOOR_DIV.: division by zero"):
        m.run([np.int32([[1, 2, 3]]), np.int32([[1, 0, 3]])])
    net.tensors[b].update(data=np.int32([[1, 0, 2]]))
    net.inputs.remove(b)
    with pytest.raises(engine.UnsupportedError, match="division by zero"):
        engine.load(net.build())


def test_batch_of_8_equals_8_single_runs_for_a_one_sample_graph():
    """A graph written for batch 1 (a constant index 0 packed with computed ones, like MoveNet's) runs
    a batch sample by sample."""
    net = Net()
    x = net.input([1, 6, 4], "int8", 0.1, 0)
    am = net.tensor([1], "int32")
    flat = net.tensor([1, 24], "int8", 0.1, 0)
    net.op("RESHAPE", [x, net.const(np.int32([1, 24]), "int32")], [flat], "flat")
    net.op("ARG_MAX", [flat, net.const(np.int32(1), "int32")], [am], "argmax", output_type="int32")
    idx = net.tensor([1, 2], "int32")
    net.op("PACK", [net.const(np.int32([0]), "int32"), am], [idx], "pack", values_count=2, axis=1)
    y = net.tensor([1], "int8", 0.1, 0)
    net.op("GATHER_ND", [flat, idx], [y], "gather")
    model = net.build()
    rng = np.random.default_rng(14)
    xb = rng.integers(-128, 128, (8, 6, 4)).astype(np.int8)
    refs = reference_run_many(model, [[xb[k : k + 1]] for k in range(8)])
    got = engine.load(model).run(xb)
    for j in range(len(got)):
        assert np.array_equal(got[j], np.concatenate([r["outputs"][j] for r in refs]))


# --- STRIDED_SLICE on data: ellipsis and new axes -------------------------------------------------

ELLIPSIS_CASES = [  # shape, begin, end, strides, options
    ((1, 4, 5), [0, 1], [0, 3], [1, 1], {"ellipsis_mask": 1}),
    ((1, 4, 5), [0, 1, 0], [1, 3, 0], [1, 1, 1], {"ellipsis_mask": 4}),
    ((1, 4, 5), [0, 0, 1], [1, 1, 3], [1, 1, 1], {"new_axis_mask": 2}),
    ((1, 4, 5), [0, 0, 1], [1, 1, 3], [1, 1, 1], {"new_axis_mask": 1}),
    ((1, 4, 5), [0, 0, 1, 0], [1, 1, 3, 5], [1, 1, 1, 1], {"new_axis_mask": 8}),
    ((1, 4, 5), [0, 0, 2], [1, 1, 3], [1, 1, 1], {"ellipsis_mask": 1, "new_axis_mask": 2}),
    ((1, 4, 5), [0, 1, 0], [0, 3, 0], [1, 1, 1], {"ellipsis_mask": 1, "new_axis_mask": 4, "begin_mask": 2}),
    ((1, 3, 2, 6), [0, -1], [0, -6], [1, -2], {"ellipsis_mask": 1}),
    (
        (1, 3, 2, 6),
        [0, 1, 0],
        [0, 2, 0],
        [1, 1, 1],
        {"ellipsis_mask": 1, "shrink_axis_mask": 2, "end_mask": 4},
    ),
    ((1, 3, 2, 6), [1], [3], [1], {}),  # a short spec: the other axes whole
    ((1, 3, 2, 6), [0, 0, 0], [1, 3, 2], [1, 2, 1], {"begin_mask": 1, "end_mask": 1}),
]


def test_strided_slice_ellipsis_and_new_axis():
    from tests.test_hostile import slice_inputs, slice_net

    net = slice_net(ELLIPSIS_CASES)
    check(net, slice_inputs(net))


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32", "float32"])
def test_strided_slice_on_data_types_and_batch(dtype):
    """YOLO's channel halves and its [1, 144, 8400] row slices, other types, batch 1 and 3."""
    net = Net()
    for shape, begin, end, opts in (
        ([1, 6, 6, 32], [0, 0, 0, 16], [0, 0, 0, 32], {"begin_mask": 7, "end_mask": 7}),
        ([1, 6, 6, 32], [0, 0, 0, 0], [0, 0, 0, 16], {"begin_mask": 15, "end_mask": 7}),
        ([1, 14, 20], [0, 6, 0], [0, 14, 0], {"begin_mask": 5, "end_mask": 5}),
    ):
        x = net.input(shape, dtype, *q(dtype))
        out = [shape[0]] + [e - b if e else n for n, b, e in zip(shape[1:], begin[1:], end[1:])]
        y = net.tensor(out, dtype, *q(dtype))
        ins = [x] + [net.const(np.int32(v), "int32") for v in (begin, end, [1] * len(shape))]
        net.op("STRIDED_SLICE", ins, [y], f"{shape} {begin} {end}", **opts)
    check(net, run_sets(net, 15, (1, 3)))


def test_float_input_and_output_around_an_int8_body():
    """QUANTIZE float32 -> int8 at the start, DEQUANTIZE at the end: the model takes and gives floats."""
    net = Net()
    x = net.input([1, 4, 4, 3], "float32")
    q8 = net.tensor([1, 4, 4, 3], "int8", 0.02, -5)
    net.ops.append({"op": "QUANTIZE", "inputs": [x], "outputs": [q8], "options": {}})
    r = net.tensor([1, 8, 8, 3], "int8", 0.02, -5)
    size = net.const(np.int32([8, 8]), "int32")
    net.ops.append(
        {
            "op": "RESIZE_BILINEAR",
            "inputs": [q8, size],
            "outputs": [r],
            "options": {"half_pixel_centers": True},
        }
    )
    t = net.tensor([1, 3, 8, 8], "int8", 0.02, -5)
    net.ops.append(
        {
            "op": "TRANSPOSE",
            "inputs": [r, net.const(np.int32([0, 3, 1, 2]), "int32")],
            "outputs": [t],
            "options": {},
        }
    )
    net.op("DEQUANTIZE", [t], [net.tensor([1, 3, 8, 8], "float32")], "float out")
    rng = np.random.default_rng(16)
    sets = [[rng.uniform(-3, 3, (b, 4, 4, 3)).astype(np.float32)] for b in (1, 3)]
    check(net, sets)
    assert engine.load(net.build()).inputs[0].dtype == np.float32


@pytest.mark.parametrize("dtype", ["uint8", "int8"])
def test_div_quantized_every_pair(dtype):
    """Every dividend against every divisor but the zero point, random scales, fused activations."""
    from tests.harness import all_bytes, qparams

    rng = np.random.default_rng(17)
    net = Net()
    sets = [[]]
    for k, act in enumerate(["NONE", "RELU", "RELU6", "NONE", "RELU_N1_TO_1", "NONE"]):
        (s1, z1), (s2, z2), (so, zo) = (qparams(rng, dtype) for _ in range(3))
        x = net.input([1, 256, 1], dtype, s1, z1)
        divisors = np.setdiff1d(all_bytes(dtype, [256]), np.array([z2], dtype))
        d = net.const(divisors.reshape(1, 1, 255), dtype, s2, z2)
        y = net.tensor([1, 256, 255], dtype, so, zo)
        net.op("DIV", [x, d], [y], f"DIV {dtype} {k} {act}", fused_activation_function=act)
        sets[0].append(all_bytes(dtype, [1, 256, 1]))
    check(net, sets)


def test_div_quantized_zero_divisor_is_an_error():
    net = Net()
    a, b = net.input([1, 3], "uint8", 0.1, 3), net.input([1, 3], "uint8", 0.1, 7)
    net.op("DIV", [a, b], [net.tensor([1, 3], "uint8", 0.2, 0)], "div")
    m = engine.load(net.build())
    with pytest.raises(engine.InputError, match="op 0 .DIV.: division by zero"):
        m.run([np.uint8([[1, 2, 3]]), np.uint8([[1, 7, 3]])])


@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_floor_div_small_integers(dtype):
    net = Net()
    a = net.input([1, 4, 6], dtype, *q(dtype))
    b = net.const(np.array([[3, -4, 7, -1, 2, 5]], dtype), dtype, *q(dtype))
    net.op("FLOOR_DIV", [a, b], [net.tensor([1, 4, 6], dtype, *q(dtype))], f"FLOOR_DIV {dtype}")
    check(net, run_sets(net, 18, (1, 2)))


def test_int32_division_extremes():
    """FLOOR_DIV through double (INT_MIN // -1 leaves int32: x86 gives INT_MIN), DIV toward zero, and the
    wrapping ADD, SUB and MUL of kernels/plain.py, at the ends of int32, broadcast against a row."""
    net = Net()
    a = net.input([1, 2, 8], "int32")
    b = net.const(np.int32([[-1, 1, 3, -2, 7, -7, 2147483647, -2147483648]]), "int32")
    for op in ("FLOOR_DIV", "ADD", "SUB", "MUL"):
        net.op(op, [a, b], [net.tensor([1, 2, 8], "int32")], op)
    c = net.const(np.int32([[1, 3, -3, 2, 7, -7, 2147483647, -5]]), "int32")  # (INT_MIN / -1 traps in C)
    net.op("DIV", [a, c], [net.tensor([1, 2, 8], "int32")], "DIV")
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    x = np.int32([[[lo, lo, hi, hi, lo + 1, -9, 9, 0], [-7, 7, -1, 1, lo, hi, hi, lo]]])
    check(net, [[x], [np.concatenate([x, x[:, ::-1]])]])


def test_rsqrt_int8():
    """Every input value at or above the zero point (below it the reference reports an error)."""
    rng = np.random.default_rng(19)
    net = Net()
    sets = [[]]
    from tests.harness import qparams

    for k in range(7):
        s_in, zp_in = qparams(rng, "int8")
        s_out, zp_out = qparams(rng, "int8", -2.0, 1.0)
        if k == 6:  # outputs spread over most of the int8 range
            (s_in, zp_in), (s_out, zp_out) = (0.01, -128), (0.04, -128)
        x = net.input([1, 256], "int8", s_in, zp_in)
        net.op("RSQRT", [x], [net.tensor([1, 256], "int8", s_out, zp_out)], f"RSQRT int8 {k}")
        sets[0].append(np.maximum(np.arange(-128, 128), zp_in).astype(np.int8).reshape(1, 256))
    check(net, sets)
    m = engine.load(net.build())
    bad = [np.full((1, 256), -128, np.int8) for _ in range(7)]
    if any(np.int8(t["zero_point"][0]) > -128 for t in (net.tensors[i] for i in net.inputs)):
        with pytest.raises(engine.InputError, match="RSQRT"):
            m.run(bad)


@pytest.mark.parametrize("dtype", ["int32", "float32", "int16"])
def test_pack_on_data(dtype):
    """PACK of computed tensors (MoveNet packs int32 indices), batch 1 and 2."""
    net = Net()
    for axis, n in ((1, 3), (-1, 2), (0, 2)):
        xs = [net.input([1, 4, 3], dtype, *q(dtype)) for _ in range(n)]
        oshape = [1, 4, 3]
        oshape.insert(axis % 4, n)
        net.op(
            "PACK", xs, [net.tensor(oshape, dtype, *q(dtype))], f"PACK axis={axis}", axis=axis, values_count=n
        )
    check(net, run_sets(net, 20, (1, 2)))
