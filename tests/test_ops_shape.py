"""RESHAPE, SQUEEZE, SHAPE, STRIDED_SLICE and PACK against TFLite's reference kernels, bit for bit,
including the Keras pattern SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE that the engine folds at plan time."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from tests.harness import Net, check, run_sets
from tests.oracle import reference_run_many

pytestmark = pytest.mark.usefixtures("litert")


def check_batch_by_samples(net: Net, seed: int, batch: int) -> None:
    """Batch N on the engine equals the reference run on each sample alone, concatenated.

    For models whose constant shapes carry batch 1 (LiteRT cannot resize them; the engine scales
    the leading dimension instead)."""
    model = net.build()
    rng = np.random.default_rng(seed)
    xs = net.random_inputs(rng, batch)
    refs = reference_run_many(model, [[x[b : b + 1] for x in xs] for b in range(batch)])
    got = engine.load(model).run(xs if len(xs) > 1 else xs[0])
    for k, (label, g) in enumerate(zip(net.labels, got)):
        want = np.concatenate([r["outputs"][k] for r in refs])
        assert g.shape == want.shape, f"{label}: batch {batch} shape {g.shape} != {want.shape}"
        assert np.array_equal(g, want), label


def reshape_net() -> Net:
    net = Net()
    cases = [  # (input shape, shape tensor or None for the options-only form, output shape, dtype)
        ([1, 19, 19, 12], [1, 1083, 1, 4], [1, 1083, 1, 4], "uint8"),  # SSD box predictor
        ([1, 19, 19, 12], [1, 1083, 4], [1, 1083, 4], "uint8"),
        ([1, 1960], [-1, 49, 40, 1], [1, 49, 40, 1], "int8"),  # micro_speech
        ([1, 1, 1, 2], [1, 2], [1, 2], "int8"),  # person_detect
        ([1, 3, 3, 4], [1, -1], [1, 36], "int8"),
        ([1, 3, 3, 4], [-1, 36], [1, 36], "int8"),
        ([1, 6, 4], None, [1, 4, 6], "uint8"),  # new_shape from the options only
        ([1, 2, 3], [1, 2, 3, 1, 1], [1, 2, 3, 1, 1], "int32"),
    ]
    for k, (ishape, new, oshape, dtype) in enumerate(cases):
        q = (0.05, 7) if dtype != "int32" else (None, None)
        x = net.input(ishape, dtype, *q)
        y = net.tensor(oshape, dtype, *q)
        ins = [x] if new is None else [x, net.const(np.int32(new), "int32")]
        net.op("RESHAPE", ins, [y], f"RESHAPE {ishape} -> {new or oshape}", new_shape=new or oshape)
    return net


def test_reshape():
    net = reshape_net()
    check(net, run_sets(net, 1, (1, 1)))


def test_reshape_batch_scales_the_leading_dimension():
    check_batch_by_samples(reshape_net(), 2, 3)


def test_reshape_ssd_shapes_at_batch_8():
    net = reshape_net()
    m = engine.load(net.build())
    x = np.zeros((8, 19, 19, 12), np.uint8)
    others = net.random_inputs(np.random.default_rng(0), 8)[1:]
    out = m.run([x, *others])
    assert out[0].shape == (8, 1083, 1, 4) and out[1].shape == (8, 1083, 4)
    assert out[2].shape == (8, 49, 40, 1) and out[4].shape == (8, 36) and out[5].shape == (8, 36)


def test_squeeze():
    net = Net()
    for dims, ishape, oshape in (
        ([1, 3], [1, 1, 5, 1, 3], [1, 5, 3]),
        ([-2], [1, 4, 1, 2], [1, 4, 2]),
        ([2], [1, 3, 1], [1, 3]),
    ):
        x = net.input(ishape, "int8", 0.1, -3)
        y = net.tensor(oshape, "int8", 0.1, -3)
        net.op("SQUEEZE", [x], [y], f"SQUEEZE {ishape} {dims}", squeeze_dims=dims)
    check(net, run_sets(net, 3, (1, 4)))
    # no dims listed: every size-1 dimension of the runtime shape, the batch too at batch 1
    net = Net()
    x = net.input([1, 2, 1, 3], "uint8", 0.1, 3)
    y = net.tensor([2, 3], "uint8", 0.1, 3)
    net.op("SQUEEZE", [x], [y], "SQUEEZE all")
    check(net, run_sets(net, 4, (1, 3)))


def keras_flatten_net(dtype: str = "int8") -> Net:
    """x -> SHAPE -> STRIDED_SLICE [0:1] (shrink) -> PACK [n, 24] -> RESHAPE: Keras' Flatten."""
    net = Net()
    x = net.input([1, 3, 4, 2], dtype, 0.1, 1)
    shape = net.tensor([4], "int32")
    net.op("SHAPE", [x], [shape], "shape", out_type="INT32")
    n = net.tensor([], "int32")
    one = np.int32([1])
    net.op(
        "STRIDED_SLICE",
        [shape, net.const(np.int32([0]), "int32"), net.const(one, "int32"), net.const(one, "int32")],
        [n],
        "n",
        shrink_axis_mask=1,
    )
    packed = net.tensor([2], "int32")
    net.op("PACK", [n, net.const(np.int32(24), "int32")], [packed], "packed", values_count=2, axis=0)
    y = net.tensor([1, 24], dtype, 0.1, 1)
    net.op("RESHAPE", [x, packed], [y], "flatten")
    return net


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_keras_shape_pattern_folds(dtype):
    net = keras_flatten_net(dtype)
    check(net, run_sets(net, 5, (1, 3)))
    # the whole shape computation is folded at plan time: only RESHAPE runs
    plan = engine.load(net.build()).plan(3)
    assert [net.ops[s.op_index]["op"] for s in plan.steps] == ["RESHAPE"]
    assert plan.shapes[net.outputs[-1]] == (3, 24)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_strided_slice_on_activations(dtype):
    net = Net()
    full = 1 | 1 << 0  # begin/end mask bit 0: keep the whole batch
    cases = [  # begin, end, strides, options, output shape (batch 1)
        ([0, 1, 0, 0], [1, 3, 4, 2], [1, 1, 1, 1], {"begin_mask": 1, "end_mask": 1}, [1, 2, 4, 2]),
        ([0, -1, 0, 0], [1, -4, 4, 2], [1, -1, 1, 1], {"begin_mask": full, "end_mask": full}, [1, 3, 4, 2]),
        ([0, 0, 1, 0], [1, 4, 0, 2], [1, 2, 2, 1], {"begin_mask": 1, "end_mask": 5}, [1, 2, 2, 2]),
        (
            [0, 2, 0, 1],
            [1, 3, 4, 2],
            [1, 1, 1, 1],
            {"begin_mask": 1, "end_mask": 1, "shrink_axis_mask": 10},
            [1, 4],
        ),
        ([0, 0, -1, 0], [1, 4, 0, 2], [1, 1, -2, 1], {"begin_mask": 1, "end_mask": 1}, [1, 4, 2, 2]),
        ([0, 10, 0, 0], [1, 20, 4, 2], [1, 1, 1, 1], {"begin_mask": 1, "end_mask": 1}, [1, 0, 4, 2]),
        ([0, -100, 1, 0], [1, 100, 3, 2], [1, 3, 1, 1], {"begin_mask": 1, "end_mask": 1}, [1, 2, 2, 2]),
        ([0, -3, 1, 0], [1, 2, 2, 2], [1, 1, 1, 1], {"offset": True}, [1, 2, 2, 2]),  # end = begin + end
    ]
    for begin, end, strides, opts, oshape in cases:
        x = net.input([1, 4, 4, 2], dtype, 0.1, 2)
        y = net.tensor(oshape, dtype, 0.1, 2)
        ins = [x] + [net.const(np.int32(v), "int32") for v in (begin, end, strides)]
        net.op("STRIDED_SLICE", ins, [y], f"STRIDED_SLICE {begin} {end} {strides} {opts}", **opts)
    check(net, run_sets(net, 6, (1, 3)))


def test_strided_slice_refuses_offset_with_masks():
    net = Net()
    x = net.input([1, 4], "int8", 0.1, 0)
    y = net.tensor([1, 4], "int8", 0.1, 0)
    ins = [x] + [net.const(np.int32(v), "int32") for v in ([0], [1], [1])]
    net.op("STRIDED_SLICE", ins, [y], "ellipsis", ellipsis_mask=1)  # runs: tests/test_ops_zoo.py
    net.ops[0]["options"] = {"offset": True, "begin_mask": 1}  # LiteRT itself crashes on this one
    for k, v in zip(net.ops[0]["inputs"][1:], ([0, 0], [1, 4], [1, 1])):
        net.tensors[k].update(data=np.int32(v), shape=[2])
    with pytest.raises(engine.UnsupportedError, match="offset"):
        engine.load(net.build())


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_pack_on_activations(dtype):
    net = Net()
    for axis, n in ((1, 2), (-1, 3), (3, 2), (2, 1)):
        xs = [net.input([1, 3, 4], dtype, 0.1, 2) for _ in range(n)]
        oshape = [1, 3, 4]
        oshape.insert(axis % 4, n)
        y = net.tensor(oshape, dtype, 0.1, 2)
        net.op("PACK", xs, [y], f"PACK axis={axis} n={n}", axis=axis, values_count=n)
    check(net, run_sets(net, 7, (1, 2)))


@pytest.mark.parametrize("out_type", ["int32", "int64"])
def test_shape_of_activations_out_type(out_type):
    """SHAPE of an activation (folded at load, the batch from the run) in either output type."""
    net = Net()
    x = net.input([1, 3, 4, 2], "int8", 0.1, 0)
    y = net.tensor([4], out_type)
    net.op("SHAPE", [x], [y], f"shape {out_type}", out_type=out_type.upper())
    check(net, run_sets(net, 31, batches=(1, 3)))


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "float32"])
def test_copies_in_words(dtype, kernel_build):
    """Slices, transposes, splits and concatenations of YOLOv8's kinds (channel halves, concatenations
    along channels) in 1-, 2- and 4-byte types, with long and short runs (odd channel counts, odd
    offsets); batch 1 and 3, both builds."""
    net = Net()
    q = (0.1, 0) if dtype != "float32" else ()
    x = net.input([1, 12, 10, 32], dtype, *q)
    for begin, end in (
        ([0, 0, 0, 0], [1, 12, 10, 16]),
        ([0, 0, 0, 16], [1, 12, 10, 32]),
        ([0, 1, 0, 3], [1, 12, 10, 10]),
    ):
        oshape = [1, 12, 10, end[3] - begin[3]]
        oshape[1] = end[1] - begin[1]
        ins = [x] + [net.const(np.int32(v), "int32") for v in (begin, end, [1, 1, 1, 1])]
        net.op(
            "STRIDED_SLICE",
            ins,
            [net.tensor(oshape, dtype, *q)],
            f"STRIDED_SLICE {begin} {end}",
            begin_mask=1,
            end_mask=1,
        )
    net.op(
        "TRANSPOSE",
        [x, net.const(np.int32([0, 2, 1, 3]), "int32")],
        [net.tensor([1, 10, 12, 32], dtype, *q)],
        "TRANSPOSE 0213",
    )
    halves = [net.tensor([1, 12, 10, 16], dtype, *q) for _ in range(2)]
    net.op("SPLIT", [net.const(np.int32(3), "int32"), x], halves, "SPLIT channels", num_splits=2)
    y = net.input([1, 12, 10, 8], dtype, *q)
    z = net.input([1, 12, 10, 3], dtype, *q)
    net.op("CONCATENATION", [x, y, x], [net.tensor([1, 12, 10, 72], dtype, *q)], "CONCAT 32 8 32", axis=3)
    net.op("CONCATENATION", [y, z, y], [net.tensor([1, 12, 10, 19], dtype, *q)], "CONCAT 8 3 8", axis=3)
    check(net, run_sets(net, 7, (1, 3)))


def test_reshape_is_a_view_of_a_live_input():
    """RESHAPE and SQUEEZE of another op's output make no copy: their outputs are views of its buffer,
    which lives until the last of them is read (here after other tensors that could have taken it:
    f is made between c's production and its last read). Of a graph input they copy."""
    net = Net()
    x = net.input([1, 4, 6], "int8", 0.05, 3)
    a, e, f = (net.tensor([1, 4, 6], "int8", 0.05, 3) for _ in range(3))
    b = net.tensor([1, 24], "int8", 0.05, 3)
    c, d = net.tensor([1, 6, 4], "int8", 0.05, 3), net.tensor([1, 6, 4], "int8", 0.05, 3)
    s = net.tensor([1, 24, 1], "int8", 0.05, 3)
    q = net.tensor([1, 24], "int8", 0.05, 3)
    net.op("RELU", [x], [a], "a")
    net.op("RESHAPE", [a], [b], "b", new_shape=[-1, 24])
    net.op("RESHAPE", [b], [c], "c", new_shape=[-1, 6, 4])
    net.op("ADD", [a, a], [e], "e")
    net.op("RELU", [e], [f], "f")
    net.op("RELU", [c], [d], "d")
    net.op("RESHAPE", [x], [s], "s", new_shape=[-1, 24, 1])
    net.op("SQUEEZE", [s], [q], "q", squeeze_dims=[2])
    net.outputs, net.labels = [f, d, q], ["f", "d", "q"]
    check(net, run_sets(net, 11, (1, 3, 5)))
    plan = engine.load(net.build()).plan(1)
    assert np.shares_memory(plan.buffers[b], plan.buffers[a]) and np.shares_memory(
        plan.buffers[c], plan.buffers[a]
    )
    assert np.shares_memory(plan.buffers[q], plan.buffers[s]) and not np.shares_memory(
        plan.buffers[s], plan.buffers[x]
    )
    assert not any(np.shares_memory(plan.buffers[t], plan.buffers[a]) for t in (e, f, d))
