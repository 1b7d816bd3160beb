"""UNIDIRECTIONAL_SEQUENCE_LSTM under numerics="tflm" against TFLite Micro's interpreter, one-op graphs:
batch, time-major, cell scales, cell clip, a hidden intermediate whose scale differs from the state's;
the variants TFLite Micro's LSTM lacks are refused by both."""

from __future__ import annotations

import numpy as np
import pytest

import engine
from tests.harness import split_everywhere
from tests.oracle import OracleError, micro_run_many
from tests.tflite_builder import lstm_model

pytestmark = pytest.mark.usefixtures("tflm")

CASES = {
    "one": {"n_batch": 1, "n_time": 3, "n_input": 4, "n_cell": 5},
    "batch": {"n_batch": 3, "n_time": 4, "n_input": 6, "n_cell": 8, "seed": 1},
    "time_major": {"n_batch": 2, "n_time": 5, "n_input": 3, "n_cell": 4, "time_major": True, "seed": 2},
    "cell_2^-11_clip": {
        "n_batch": 2,
        "n_time": 6,
        "n_input": 5,
        "n_cell": 7,
        "cell_log2": -11,
        "cell_clip": 0.5,
        "seed": 3,
    },
    "cell_2^-15": {"n_batch": 1, "n_time": 6, "n_input": 5, "n_cell": 7, "cell_log2": -15, "seed": 4},
    "cell_2^-9": {"n_batch": 1, "n_time": 6, "n_input": 5, "n_cell": 7, "cell_log2": -9, "seed": 5},
    "hidden_scale": {
        "n_batch": 2,
        "n_time": 4,
        "n_input": 4,
        "n_cell": 6,
        "hidden_q": (0.03, 5),
        "h_q": (0.01, 2),
        "seed": 6,
    },
}


@pytest.mark.parametrize("case", CASES)
def test_lstm_equals_tflite_micro(case, monkeypatch):
    """(A batch of more than one also with its sequences split between the threads: team runs.)"""
    kw = CASES[case]
    model = lstm_model(**kw)
    rng = np.random.default_rng(7)
    seq = (kw["n_time"], kw["n_batch"]) if kw.get("time_major") else (kw["n_batch"], kw["n_time"])
    sets = [[rng.integers(-128, 128, (*seq, kw["n_input"])).astype(np.int8)] for _ in range(6)]
    refs = micro_run_many(model, sets)
    models = [engine.load(model, numerics="tflm")]
    if kw["n_batch"] > 1:
        split_everywhere(monkeypatch)
        models.append(engine.load(model, numerics="tflm"))
    for m in models:
        for xs, ref in zip(sets, refs):
            np.testing.assert_array_equal(m.run(xs)[0], ref["outputs"][0])


@pytest.mark.parametrize("variant", ["cifg", "peephole", "layer_norm", "n_output"])
def test_lstm_variants_refused_as_tflite_micro_refuses(variant):
    kw = dict(n_batch=1, n_time=2, n_input=3, n_cell=4, **{variant: 2 if variant == "n_output" else True})
    model = lstm_model(**kw)
    with pytest.raises(engine.EngineError, match="TFLite Micro's LSTM has no"):
        engine.load(model, numerics="tflm")
    with pytest.raises(OracleError):
        micro_run_many(model, [[np.zeros((1, 2, 3), np.int8)]])
