"""Large batches run in sub-batches that fit the caches (engine/model.py SUB_BATCH_BYTES): the
outputs are each sample's, as the oracle gives them one sample at a time; a graph whose tensors are
not batch-major runs its batch whole."""

from __future__ import annotations

import numpy as np

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
