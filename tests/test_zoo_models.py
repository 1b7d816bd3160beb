"""The zoo models that need the resize, slicing, gather and float-tail ops (YOLOv8n, DeepLab v3, MoveNet,
traffic_model, split_concat) against TFLite's reference kernels on every intermediate tensor: real
and random inputs at batch 1, and batch 8 against 8 single reference runs (the reference cannot run
these graphs batched: their reshapes and gathers are written for one sample)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import engine
from tests.every_tensor import assert_every_tensor_equal as every_tensor_equal
from tests.oracle import reference_run_many

pytestmark = pytest.mark.usefixtures("litert")

YOLO = "yolov8n_full_integer_quant"
DEEPLAB = "deeplabv3_mnv2_dm05_pascal_quant"
MOVENET = "movenet_single_pose_lightning_ptq"
TRAFFIC = "traffic_model"
SPLIT_CONCAT = "split_concat"
ZOO = [SPLIT_CONCAT, TRAFFIC, MOVENET, DEEPLAB, YOLO]
SLOW: set[str] = set()  # YOLOv8n too (about 10 s a batch here): the zoo acceptance runs in the default suite


def zoo_path(models_dir, name: str):
    return models_dir / "zoo" / f"{name}.tflite"


def random_feeds(m: engine.Model, seed: int, batch: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for t in m.inputs:
        info = np.iinfo(t.dtype)
        out.append(rng.integers(info.min, int(info.max) + 1, size=(batch, *t.shape[1:])).astype(t.dtype))
    return out


def letterbox(img: Image.Image, size: int) -> np.ndarray:
    """Ultralytics' letterbox: aspect kept, bilinear resize, centred on gray 114."""
    scale = size / max(img.size)
    w, h = round(img.width * scale), round(img.height * scale)
    canvas = np.full((size, size, 3), 114, np.uint8)
    top, left = (size - h) // 2, (size - w) // 2
    canvas[top : top + h, left : left + w] = np.asarray(img.resize((w, h), Image.BILINEAR))
    return canvas


def real_feeds(m: engine.Model, name: str, shared) -> list[np.ndarray] | None:
    zoo = shared / "data/zoo"
    if name == YOLO:
        pixels = letterbox(Image.open(zoo / "pets.jpg").convert("RGB"), 640)
        return [m.inputs[0].quantize(pixels.astype(np.float32) / 255)[None]]
    if name == DEEPLAB:
        return [np.asarray(Image.open(zoo / "bird_segmentation.bmp").convert("RGB"), np.uint8)[None]]
    if name == MOVENET:
        img = Image.open(zoo / "squat.bmp").convert("RGB").resize((192, 192), Image.BILINEAR)
        return [np.asarray(img, np.uint8)[None]]
    if name == TRAFFIC:
        frame = np.asarray(Image.open(zoo / "traffic_0001.bmp").convert("RGB"), np.uint8)[None]
        state = np.zeros((1, 8, 8, 320), np.uint8)  # the LSTM's initial state: real value 0
        return [frame, state, state]
    return None


def assert_every_tensor_equal(m: engine.Model, xs: list[np.ndarray], refs: list[dict]) -> None:
    """The engine at batch len(refs) against one reference run per sample, every tensor, read through
    the production plan (buffers reused); a graph that runs a batch sample by sample (MoveNet) has no
    batch-N plan: its tensors are then compared as keep_all returns them."""
    try:
        m.plan(xs[0].shape[0])
    except engine.EngineError:
        mine = m.run(xs if len(xs) > 1 else xs[0], keep_all=True)
        assert set(mine) <= set(refs[0]["tensors"])
        for name, got in mine.items():
            want = np.concatenate([np.atleast_1d(r["tensors"][name]) for r in refs])
            assert got.dtype == want.dtype and np.array_equal(got, want), name
        return
    every_tensor_equal(m, xs, refs)


def params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


@pytest.mark.parametrize("name", params(ZOO))
def test_zoo_batch_1_real_and_random(models_dir, shared, name):
    path = zoo_path(models_dir, name)
    m = engine.load(path)
    runs = [random_feeds(m, seed) for seed in (1, 2)]
    real = real_feeds(m, name, shared)
    if real is not None:
        runs.insert(0, real)
    refs = reference_run_many(path, runs, preserve_all=True)
    for xs, ref in zip(runs, refs):
        assert_every_tensor_equal(m, xs, [ref])


@pytest.mark.parametrize("name", params(ZOO))
def test_zoo_batch_8(models_dir, name):
    path = zoo_path(models_dir, name)
    m = engine.load(path)
    xs = random_feeds(m, 3, batch=8)
    refs = reference_run_many(path, [[x[k : k + 1] for x in xs] for k in range(8)], preserve_all=True)
    assert_every_tensor_equal(m, xs, refs)


def test_yolo_finds_the_dogs(models_dir, shared):
    """NOTES.md: two dog boxes at 0.90-0.96 on pets.jpg; output rows cx, cy, w, h, then 80 scores."""
    m = engine.load(zoo_path(models_dir, YOLO))
    (out,) = m.run(real_feeds(m, YOLO, shared))
    y = m.outputs[0].dequantize(out)[0]
    scores = y[4:]
    best = scores.max(0)
    keep = best > 0.85
    assert set(scores.argmax(0)[keep].tolist()) == {16}  # dog
    assert 0.90 <= best.max() <= 0.97


def test_deeplab_segments_the_bird(models_dir, shared):
    """NOTES.md: background 81.2 %, bird 17.6 %, dog 1.3 % of pixels."""
    m = engine.load(zoo_path(models_dir, DEEPLAB))
    (labels,) = m.run(real_feeds(m, DEEPLAB, shared))
    share = np.bincount(labels.reshape(-1), minlength=21) / labels.size
    assert round(share[0] * 100, 1) == 81.2 and round(share[3] * 100, 1) == 17.6  # 3: bird


def test_movenet_keypoints_match_the_reference_csv(models_dir, shared):
    """NOTES.md: within 0.009 mean / 0.038 max (normalized) of the published keypoints."""
    m = engine.load(zoo_path(models_dir, MOVENET))
    (out,) = m.run(real_feeds(m, MOVENET, shared))
    csv = np.genfromtxt(
        shared / "data/zoo/movenet_single_pose_lightning_ptq_reference.csv", delimiter=",", names=True
    )
    want = np.stack([csv["keypoint_y"], csv["keypoint_x"]], 1)
    err = np.abs(out[0, 0, :, :2] - want)
    assert err.mean() < 0.009 + 1e-3 and err.max() < 0.038 + 1e-3


@pytest.mark.parametrize("name", ZOO)
def test_zoo_npz_roundtrip(models_dir, tmp_path, name):
    """The .npz export carries the new ops' options and types (int64 outputs, masks, output_type)."""
    m = engine.load(zoo_path(models_dir, name))
    m.save(tmp_path / "m.npz")
    m2 = engine.load(tmp_path / "m.npz")
    xs = random_feeds(m, 5)
    for a, b in zip(m.run(xs), m2.run(xs)):
        assert a.dtype == b.dtype and np.array_equal(a, b)
