"""Large batches run in sub-batches that fit the caches (engine/model.py SUB_BATCH_BYTES): the
outputs are each sample's, as the oracle gives them one sample at a time; a graph whose tensors are
not batch-major runs its batch whole."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine import model as model_module
from tests.oracle import reference_run_many
from tests.tflite_builder import build_model


def test_a_large_batch_runs_in_sub_batches_equal_to_the_oracle(models_dir, monkeypatch):
    path = models_dir / "mnist_uint8.tflite"
    m = engine.load(path)
    monkeypatch.setattr(model_module, "SUB_BATCH_BYTES", 3 * m._sample_bytes)  # 3 samples a run
    x = np.random.default_rng(5).integers(0, 256, (10, 28, 28, 1)).astype(np.uint8)
    assert m._sub_batch(10) == 3
    (got,) = m.run(x)
    assert (3, False) in m._plans and (1, False) in m._plans  # 3 + 3 + 3 + 1
    refs = reference_run_many(path, [[x[k : k + 1]] for k in range(10)])
    assert np.array_equal(got, np.concatenate([r["outputs"][0] for r in refs]))
    before = got.copy()
    m.run(x[::-1].copy())  # the outputs are the caller's, not views of the plans' buffers
    assert np.array_equal(got, before)


def test_sub_batches_fill_every_output(monkeypatch):
    """Two outputs of two types, 7 samples in sub-batches of 2 (2 + 2 + 2 + 1): each output's rows are
    its samples' (Model._run_whole copies each sub-batch's outputs into the batch's)."""
    q = {"scale": [0.5], "zero_point": [0]}
    tensors = [
        dict(name="x", shape=[1, 3, 4], dtype="int8", **q),
        dict(name="relu", shape=[1, 3, 4], dtype="int8", **q),
        {"name": "arg", "shape": [1, 3], "dtype": "int32"},
        {"name": "axis", "shape": [], "dtype": "int32", "data": np.int32(2)},
    ]
    ops = [
        {"op": "RELU", "inputs": [0], "outputs": [1], "options": {}},
        {"op": "ARG_MAX", "inputs": [0, 3], "outputs": [2], "options": {"output_type": 2}},
    ]
    model = build_model(tensors=tensors, ops=ops, inputs=[0], outputs=[1, 2])
    m = engine.load(model)
    monkeypatch.setattr(model_module, "SUB_BATCH_BYTES", 2 * m._sample_bytes)
    assert m._sub_batch(7) == 2
    x = np.random.default_rng(7).integers(-128, 128, (7, 3, 4)).astype(np.int8)
    got = m.run(x)
    refs = reference_run_many(model, [[x[k : k + 1]] for k in range(7)])
    for j, dtype in enumerate((np.int8, np.int32)):
        assert got[j].dtype == dtype
        assert np.array_equal(got[j], np.concatenate([r["outputs"][j] for r in refs]))


def test_a_graph_that_mixes_samples_runs_whole(monkeypatch):
    """CONCATENATION of x with itself along axis 0 ([N, 4] -> [2N, 4]): the sub-batch's tensors are
    not batch-major, so the batch runs whole."""
    q = {"scale": [0.5], "zero_point": [0]}
    tensors = [
        dict(name="x", shape=[1, 4], dtype="int8", **q),
        dict(name="y", shape=[2, 4], dtype="int8", **q),
    ]
    ops = [{"op": "CONCATENATION", "inputs": [0, 0], "outputs": [1], "options": {"axis": 0}}]
    m = engine.load(build_model(tensors=tensors, ops=ops, inputs=[0], outputs=[1]))
    monkeypatch.setattr(model_module, "SUB_BATCH_BYTES", 1)
    assert m._sub_batch(6) == 6
    x = np.arange(24, dtype=np.int8).reshape(6, 4)
    (y,) = m.run(x)
    assert np.array_equal(y, np.concatenate([x, x]))


def _two_threads():
    if engine.runtime.usable_cores() < 2:
        pytest.skip("one usable core: a batch never runs in lanes")
    previous = engine.get_num_threads()
    engine.set_num_threads(2)
    return previous


def test_a_batch_runs_in_lanes_equal_to_the_oracle(models_dir):
    """At 2 threads a batch of independent samples runs in two parts on two threads (Model._run_lanes),
    odd sizes included; each sample's outputs are the oracle's."""
    path = models_dir / "mnist_uint8.tflite"
    m = engine.load(path)
    previous = _two_threads()
    try:
        x = np.random.default_rng(6).integers(0, 256, (7, 28, 28, 1)).astype(np.uint8)
        refs = reference_run_many(path, [[x[k : k + 1]] for k in range(7)])
        want = np.concatenate([r["outputs"][0] for r in refs])
        assert m._lanes(7) == 2 and m._lanes(3) == 1
        for rows in ([0, 1, 2, 3, 4, 5, 6], [2, 3, 0, 5], [4, 1, 6, 5, 0]):
            (got,) = m.run(x[rows])
            assert np.array_equal(got, want[rows]), rows
        assert len(m._lane_copies) == 1
    finally:
        engine.set_num_threads(previous)


def test_lanes_keep_samples_that_mix_together_and_report_a_lane_error():
    """A graph that mixes samples (CONCATENATION along the batch) never runs in lanes; an error in one
    lane (an integer division by zero in its samples) is raised once both lanes are done, and the model
    runs on afterwards."""
    q = {"scale": [0.5], "zero_point": [0]}
    mix = build_model(
        tensors=[
            dict(name="x", shape=[1, 4], dtype="int8", **q),
            dict(name="y", shape=[2, 4], dtype="int8", **q),
        ],
        ops=[{"op": "CONCATENATION", "inputs": [0, 0], "outputs": [1], "options": {"axis": 0}}],
        inputs=[0],
        outputs=[1],
    )
    div = build_model(
        tensors=[{"name": n, "shape": [1, 3], "dtype": "int32"} for n in ("a", "b", "q")],
        ops=[{"op": "FLOOR_DIV", "inputs": [0, 1], "outputs": [2]}],
        inputs=[0, 1],
        outputs=[2],
    )
    previous = _two_threads()
    try:
        m = engine.load(mix)
        assert m._lanes(6) == 1
        x = np.arange(24, dtype=np.int8).reshape(6, 4)
        assert np.array_equal(m.run(x)[0], np.concatenate([x, x]))
        d = engine.load(div)
        assert d._lanes(4) == 2
        a = np.arange(12, dtype=np.int32).reshape(4, 3) - 5
        b = np.full((4, 3), 2, np.int32)
        b[3, 1] = 0  # in the second lane's samples
        with pytest.raises(engine.InputError, match="division by zero"):
            d.run([a, b])
        b[3, 1] = 2
        assert np.array_equal(d.run([a, b])[0], np.floor_divide(a, b))
    finally:
        engine.set_num_threads(previous)


def test_ops_that_read_across_the_batch_axis_keep_the_batch_whole():
    """Shapes that stay batch-major do not make samples independent: a time-major LSTM (axis 0 is time),
    a TRANSPOSE swapping axis 0 with a dimension of the same size, a CONCATENATION of two parts along
    axis 0 (engine/batching.py). A graph of per-sample ops, and a SPLIT into one piece along axis 0, do."""
    from engine.batching import mixing_op
    from tests.tflite_builder import lstm_model

    assert mixing_op(
        engine.load(lstm_model(n_batch=2, n_time=5, n_input=3, n_cell=4, time_major=True)).plan(2)
    )
    assert mixing_op(engine.load(lstm_model(n_batch=2, n_time=5, n_input=3, n_cell=4)).plan(2)) is None
    q = {"scale": [0.5], "zero_point": [0]}
    perm = {"name": "perm", "shape": [3], "dtype": "int32", "data": np.int32([1, 0, 2])}
    axis = {"name": "axis", "shape": [], "dtype": "int32", "data": np.int32(0)}
    cases = {
        "TRANSPOSE": ([1, 2, 3], [2, 1, 3], [0, 2], {}, [perm]),
        "CONCATENATION": ([1, 2, 3], [2, 2, 3], [0, 0], {"axis": 0}, []),
        "SPLIT": ([1, 2, 3], [1, 2, 3], [2, 0], {"num_splits": 1}, [axis]),
        "RELU": ([1, 2, 3], [1, 2, 3], [0], {}, []),
    }
    for kind, (shape, out_shape, inputs, options, consts) in cases.items():
        tensors = [
            {"name": "x", "shape": shape, "dtype": "int8", **q},
            {"name": "y", "shape": out_shape, "dtype": "int8", **q},
            *consts,
        ]
        op = {"op": kind, "inputs": inputs, "outputs": [1], "options": options}
        m = engine.load(build_model(tensors=tensors, ops=[op], inputs=[0], outputs=[1]))
        mixes = mixing_op(m.plan(2)) is not None
        assert mixes == (kind in ("TRANSPOSE", "CONCATENATION")), kind
        assert m._samples_independent() == (not mixes), kind
