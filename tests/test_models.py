"""Every shared model against TFLite's reference kernels: outputs and every intermediate tensor."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from PIL import Image

import engine
from tests.every_tensor import assert_every_tensor_equal, tensors_through_plan
from tests.oracle import micro_run_many, reference_run, reference_run_many

N_RANDOM = 20


def random_inputs(m: engine.Model, n: int, seed: int, batch: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = m.inputs[0]
    info = np.iinfo(t.dtype)
    return [
        rng.integers(info.min, info.max + 1, size=(batch, *t.shape[1:])).astype(t.dtype) for _ in range(n)
    ]


def mnist_images(shared, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(shared / "data/mnist/t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(shared / "data/mnist/t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images[:n], labels[:n]


def ssd_table(shared) -> np.ndarray:
    img = Image.open(shared / "data/ssd/table.jpg").convert("RGB").resize((300, 300), Image.NEAREST)
    return np.asarray(img, np.uint8)[None]


def assert_all_tensors_equal(m: engine.Model, x: np.ndarray, ref: dict) -> None:
    """Every tensor through the production plan (buffer reuse on) equals the oracle's, none unchecked;
    keep_all=True (reuse off) gives the same tensors."""
    assert_every_tensor_equal(m, x, [ref])
    mine = m.run(x, keep_all=True)
    for name, got in tensors_through_plan(m, x).items():
        assert np.array_equal(mine[name], got), name


REFERENCE_MODELS = ["mnist_uint8", "ssd_mobilenet_v1_coco_uint8", "micro_speech_int8", "hello_world_int8"]


@pytest.mark.parametrize("name", REFERENCE_MODELS)
def test_random_inputs_match_reference_every_tensor(models_dir, name):
    path = models_dir / f"{name}.tflite"
    m = engine.load(path)
    xs = random_inputs(m, N_RANDOM, seed=1)
    refs = reference_run_many(path, [[x] for x in xs], preserve_all=True)
    for x, ref in zip(xs, refs):
        assert_all_tensors_equal(m, x, ref)


def test_mnist_digits_match_reference_every_tensor(models_dir, shared):
    path = models_dir / "mnist_uint8.tflite"
    m = engine.load(path)
    images, _ = mnist_images(shared, 20)
    refs = reference_run_many(path, [[img[None]] for img in images], preserve_all=True)
    for img, ref in zip(images, refs):
        assert_all_tensors_equal(m, img[None], ref)


def test_ssd_table_matches_reference_every_tensor(models_dir, shared):
    path = models_dir / "ssd_mobilenet_v1_coco_uint8.tflite"
    m = engine.load(path)
    x = ssd_table(shared)
    assert_all_tensors_equal(m, x, reference_run(path, [x], preserve_all=True))
    boxes, classes, scores, count = m.run(x)
    # NOTES.md: the top detection is a dining table (class 66 -> line 67) at 0.48828125,
    # box (24.7, 114.4, 620.5, 446.1) in the 640x480 image's pixels
    assert int(count[0]) == 10 and classes[0, 0] == 66 and scores[0, 0] == np.float32(0.48828125)
    ymin, xmin, ymax, xmax = boxes[0, 0].astype(np.float64) * [480, 640, 480, 640]
    assert np.allclose([xmin, ymin, xmax, ymax], [24.7, 114.4, 620.5, 446.1], atol=0.05)


def person_images(shared) -> dict[str, np.ndarray]:
    out = {}
    for name in ("person", "no_person"):
        img = Image.open(shared / f"data/person/{name}.bmp")
        out[name] = np.frombuffer(img.tobytes(), np.uint8).view(np.int8).reshape(1, 96, 96, 1)
    return out


def test_person_detect_matches_tflite_micro_every_tensor(models_dir, shared):
    """LiteRT refuses this model (depthwise filters quantized on dimension 3): TFLite Micro is the oracle."""
    path = models_dir / "person_detect_int8.tflite"
    m = engine.load(path)
    imgs = person_images(shared)
    assert m.run(imgs["person"])[0].tolist() == [[-113, 113]]
    assert m.run(imgs["no_person"])[0].tolist() == [[57, -57]]
    xs = [*imgs.values(), *random_inputs(m, N_RANDOM, seed=2)]
    for x, ref in zip(xs, micro_run_many(path, [[x] for x in xs], preserve_all=True)):
        assert_all_tensors_equal(m, x, ref)


@pytest.mark.parametrize("name", [*REFERENCE_MODELS, "person_detect_int8"])
def test_batch_of_8_every_tensor_equals_8_single_oracle_runs(models_dir, name):
    """Batch 8 through the production plan: every tensor, slice by slice, equals 8 oracle runs of batch 1."""
    path = models_dir / f"{name}.tflite"
    m = engine.load(path)
    singles = random_inputs(m, 8, seed=3)
    runs = [[x] for x in singles]
    if name == "person_detect_int8":
        refs = micro_run_many(path, runs, preserve_all=True)
    else:
        refs = reference_run_many(path, runs, preserve_all=True)
    assert_every_tensor_equal(m, np.concatenate(singles), refs)


def test_npz_roundtrip_gives_identical_results(models_dir, tmp_path):
    path = models_dir / "ssd_mobilenet_v1_coco_uint8.tflite"
    m = engine.load(path)
    m.save(tmp_path / "ssd.npz")
    m2 = engine.load(tmp_path / "ssd.npz")
    x = random_inputs(m, 1, seed=4)[0]
    want = reference_run(path, [x], preserve_all=False)["outputs"]
    for got, w in zip(m2.run(x), want):
        assert np.array_equal(got, w)
