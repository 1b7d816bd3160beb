"""The zoo's int16x8 model and its integer LSTM against TFLite's reference kernels, every tensor.

int16x8_mixed: int16 activations, int8 weights, int64 biases (CONV_2D, DEPTHWISE_CONV_2D, PAD, ADD,
pools, LOGISTIC, QUANTIZE, CONCATENATION, MEAN, FULLY_CONNECTED, SOFTMAX). keras_lstm_mnist_ptq:
QUANTIZE, UNIDIRECTIONAL_SEQUENCE_LSTM with variable state, RESHAPE, FULLY_CONNECTED, SOFTMAX.
The reference keeps an LSTM's state across invokes; the oracle resets it before each run, as every
engine run starts from reset state. The reference cannot run the LSTM at batch 8 (its state tensors
hold one sequence), so batch 8 is compared with 8 single runs.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import engine
from tests.every_tensor import assert_every_tensor_equal
from tests.oracle import reference_run_many
from tests.test_models import mnist_images

pytestmark = pytest.mark.usefixtures("litert")


@pytest.fixture(scope="module")
def zoo(models_dir):
    return models_dir / "zoo"


def int16_inputs(m: engine.Model, n: int, seed: int, batch: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(-32768, 32768, (batch, *m.inputs[0].shape[1:])).astype(np.int16) for _ in range(n)]


def test_int16x8_every_tensor_batch_1_and_8(zoo, shared):
    path = zoo / "int16x8_mixed.tflite"
    m = engine.load(path)
    scale = float(m.inputs[0].scale)
    img = Image.open(shared / "data/zoo/cat.bmp").convert("RGB").resize((40, 40), Image.BILINEAR)
    real = np.clip(np.round(np.asarray(img, np.float64) / 255 / scale), -32768, 32767).astype(np.int16)[None]
    xs = [real, *int16_inputs(m, 5, seed=1), *int16_inputs(m, 2, seed=2, batch=8)]
    refs = reference_run_many(path, [[x] for x in xs], preserve_all=True)
    for x, ref in zip(xs, refs):
        assert assert_every_tensor_equal(m, x, [ref]) == 17


def lstm_inputs(shared, n_random: int, seed: int) -> list[np.ndarray]:
    digits, _ = mnist_images(shared, 5)
    rng = np.random.default_rng(seed)
    noise = [rng.integers(0, 256, (1, 28, 28)).astype(np.uint8) for _ in range(n_random)]
    return [d.reshape(1, 28, 28) for d in digits] + noise


def test_lstm_every_tensor(zoo, shared):
    path = zoo / "keras_lstm_mnist_ptq.tflite"
    m = engine.load(path)
    xs = lstm_inputs(shared, 10, seed=3)
    refs = reference_run_many(path, [[x] for x in xs], preserve_all=True)
    for x, ref in zip(xs, refs):
        assert assert_every_tensor_equal(m, x, [ref]) == 7
        mine = m.run(x, keep_all=True)  # the final state, left in the variable tensors
        for name in ("tfl.pseudo_qconst", "tfl.pseudo_qconst1"):
            assert np.array_equal(mine[name], ref["tensors"][name]), name
    labels = [int(m.run(x)[0].argmax()) for x in xs[:5]]
    assert labels == [7, 2, 1, 0, 4]  # the first five MNIST test digits


def test_lstm_batch_8_is_8_sequences(zoo, shared):
    """One batched run (8 sequences) equals 8 single reference runs on every tensor, final state too."""
    path = zoo / "keras_lstm_mnist_ptq.tflite"
    m = engine.load(path)
    xs = lstm_inputs(shared, 3, seed=4)
    refs = reference_run_many(path, [[x] for x in xs], preserve_all=True)
    assert_every_tensor_equal(m, np.concatenate(xs), refs)
    mine = m.run(np.concatenate(xs), keep_all=True)
    checked = set()
    for k, ref in enumerate(refs):
        for name, want in ref["tensors"].items():
            if name in mine and want.size:
                got = mine[name]
                assert got.shape[0] == 8 * want.shape[0], name
                assert np.array_equal(got[k * want.shape[0] : (k + 1) * want.shape[0]], want), (name, k)
                checked.add(name)
    assert {"tfl.pseudo_qconst", "tfl.pseudo_qconst1", "tfl.unidirectional_sequence_lstm"} <= checked


def test_lstm_runs_are_stateless_and_npz_roundtrip(zoo, tmp_path):
    """Running twice gives the same answer (state reset); the .npz keeps variables and intermediates."""
    path = zoo / "keras_lstm_mnist_ptq.tflite"
    m = engine.load(path)
    x = np.random.default_rng(5).integers(0, 256, (2, 28, 28)).astype(np.uint8)
    first = m.run(x)[0].copy()
    assert np.array_equal(m.run(x)[0], first)
    m.save(tmp_path / "lstm.npz")
    m2 = engine.load(tmp_path / "lstm.npz")
    assert np.array_equal(m2.run(x)[0], first)
