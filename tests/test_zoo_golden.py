"""Golden checks of every task end to end, from registry names and from model files (NOTES.md, "The zoo").

A model the engine still refuses (an op it does not run yet) is skipped with the reason, so each check
turns on by itself when the op lands.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from PIL import Image

import engine
from engine.errors import UnsupportedError
from tests.cli_env import make_cli


@pytest.fixture
def cli(tmp_path, models_dir):
    return make_cli(tmp_path, models_dir)


@pytest.fixture
def unknown_file_env(tmp_path) -> dict:
    """A registry that does not know the zoo files: a model file then stands on its graph and its own labels."""
    reg = {
        "files": {"x.tflite": {"url": "file:///x", "sha256": "0" * 64}},
        "models": {"x": {"file": "x.tflite"}},
    }
    (tmp_path / "registry.json").write_text(json.dumps(reg))
    return {"ENGINE_REGISTRY": str(tmp_path / "registry.json")}


def runs_or_skip(path) -> None:
    """Skip (with the engine's reason) while the engine refuses the model at load."""
    try:
        engine.load(path, warmup=False)
    except UnsupportedError as e:
        pytest.skip(f"{path.name} is refused by the engine until its ops land: {e}")


def test_ssd_file_gives_what_the_registry_name_gives(cli, models_dir, shared, tmp_path):
    image = str(shared / "data/ssd/table.jpg")
    by_name = json.loads(cli("--model", "ssd", "--image", image, "--json").stdout)
    copy = tmp_path / "my_detector.tflite"  # the user's own copy, under another name
    shutil.copy(models_dir / "ssd_mobilenet_v1_coco_uint8.tflite", copy)
    by_file = json.loads(cli("--model", str(copy), "--image", image, "--json").stdout)
    assert by_file["task"] == by_name["task"] == "detect"
    assert by_file["results"][0]["detections"] == by_name["results"][0]["detections"]
    first = by_file["results"][0]["detections"][0]
    assert first["label"] == "dining table" and first["score"] == 0.48828125
    assert first["box"] == pytest.approx([24.7, 114.4, 620.5, 446.1], abs=0.051)  # NOTES.md
    text = cli("--model", str(copy), "--image", image).stdout
    assert "dining table" in text and "class 39" not in text


@pytest.mark.parametrize("how", ["name", "file"])
def test_yolov8n_finds_the_two_dogs(cli, models_dir, shared, how, unknown_file_env):
    path = models_dir / "zoo/yolov8n_full_integer_quant.tflite"
    runs_or_skip(path)
    # the file unknown to the registry: YOLO head from the graph, labels from the zip inside the file
    model, env = ("yolov8n", {}) if how == "name" else (str(path), unknown_file_env)
    pets = str(shared / "data/zoo/pets.jpg")
    doc = json.loads(cli("--model", model, "--image", pets, "--json", env=env).stdout)
    dets = doc["results"][0]["detections"]
    assert doc["task"] == "detect" and [d["label"] for d in dets] == ["dog", "dog"], dets
    assert all(0.85 <= d["score"] <= 0.97 for d in dets)
    for d in dets:  # in the original 512 x 430 picture, not the letterboxed 640 x 640 input
        x0, y0, x1, y1 = d["box"]
        assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 430


@pytest.mark.parametrize("how", ["name", "file"])
def test_deeplab_finds_the_bird(cli, models_dir, shared, tmp_path, how, unknown_file_env):
    path = models_dir / "zoo/deeplabv3_mnv2_dm05_pascal_quant.tflite"
    runs_or_skip(path)
    model, env = ("deeplabv3", {}) if how == "name" else (str(path), unknown_file_env)
    labels = ["--labels", str(models_dir / "zoo/pascal_voc_segmentation_labels.txt")] if how == "file" else []
    p = cli(
        "--model", model, "--image", str(shared / "data/zoo/bird_segmentation.bmp"), "--json",
        "--mask-out", "mask.png", "--out", "overlay.png", *labels, env=env,
    )  # fmt: skip
    doc = json.loads(p.stdout)
    classes = doc["results"][0]["classes"]
    assert doc["task"] == "segment" and classes[0]["label"] == "background"
    bird = classes[1]
    assert (bird["label"], bird["class_id"]) == ("bird", 3) and bird["fraction"] == pytest.approx(
        0.176, abs=0.003
    )
    with (
        Image.open(tmp_path / "mask.png") as m,
        Image.open(shared / "data/zoo/bird_segmentation_mask.bmp") as t,
    ):
        mine, truth = np.asarray(m) == 3, np.asarray(t) == 3
    assert (mine & truth).sum() / (mine | truth).sum() >= 0.8  # NOTES.md: 0.84


@pytest.mark.parametrize("how", ["name", "file"])
def test_movenet_keypoints_match_the_published_ones(cli, models_dir, shared, how, unknown_file_env):
    path = models_dir / "zoo/movenet_single_pose_lightning_ptq.tflite"
    runs_or_skip(path)
    model, env = ("movenet", {}) if how == "name" else (str(path), unknown_file_env)
    squat = str(shared / "data/zoo/squat.bmp")
    doc = json.loads(cli("--model", model, "--image", squat, "--json", "--out", "pose.png", env=env).stdout)
    kps = doc["results"][0]["keypoints"]
    with open(shared / "data/zoo/movenet_single_pose_lightning_ptq_reference.csv") as f:
        ref = sorted(csv.DictReader(f), key=lambda r: int(r["keypoint_id"]))
    assert doc["task"] == "pose" and len(kps) == len(ref) == 17
    diff = [
        abs(k["x"] - float(r["keypoint_x"])) + abs(k["y"] - float(r["keypoint_y"])) for k, r in zip(kps, ref)
    ]
    assert np.mean(diff) / 2 < 0.03, diff


# ---------------------------------------------------------------- the same checks on the reference kernels
# Until the engine runs these models, their outputs come from TFLite's reference kernels (which the engine
# will equal bit for bit), fed the tensor the CLI's preprocessing makes: this checks preprocessing (the
# letterbox), decoding, NMS and the mapping back to the image today.


def reference_answer(name: str, image, models_dir) -> dict:
    from types import SimpleNamespace

    from engine import answers as ans
    from engine.formats.tflite import import_tflite
    from engine.model import _info
    from engine.preprocess import Preprocessor
    from engine.registry import Cache
    from engine.tasks import task_for
    from tests.oracle import reference_run

    cache = Cache(mirror=models_dir)
    e = cache.registry.model(name)
    path = cache.path(e.file)
    g = import_tflite(path.read_bytes(), str(path))
    model = SimpleNamespace(graph=g, outputs=[_info(g, i) for i in g.outputs])
    info = _info(g, g.inputs[0])
    pre = Preprocessor(info, e.preprocess)
    img = pre.image(image)
    outputs = reference_run(path, [pre.tensor(img)[None]], preserve_all=False)["outputs"]
    ctx = ans.Context(
        task_for(g, e.task), model, cache.labels(e), e.label_offset, e.score_threshold or 0.25,
        letterboxed=e.preprocess.get("letterbox") is not None, input_wh=(info.shape[2], info.shape[1]),
    )  # fmt: skip
    return ans.answers(ctx, outputs, [str(image)], [img.size])[0]


def test_yolov8n_on_the_reference_kernels(litert, models_dir, shared):
    r = reference_answer("yolov8n", shared / "data/zoo/pets.jpg", models_dir)
    assert [(d.label, d.class_id) for d in r["_found"]] == [("dog", 16), ("dog", 16)]
    assert [round(d.score, 2) for d in r["_found"]] == [0.94, 0.92]
    # the right dog, then the left one, in the original picture's pixels
    assert r["_found"][0].box == pytest.approx((348.0, 164.3, 496.9, 366.3), abs=0.5)
    assert r["_found"][1].box == pytest.approx((105.1, 20.4, 262.2, 298.0), abs=0.5)


def test_deeplab_on_the_reference_kernels(litert, models_dir, shared):
    r = reference_answer("deeplabv3", shared / "data/zoo/bird_segmentation.bmp", models_dir)
    got = [(c["label"], round(c["fraction"], 3)) for c in r["classes"]]
    assert got == [("background", 0.812), ("bird", 0.176), ("dog", 0.013)]  # NOTES.md: 81.2, 17.6, 1.3 %
    with Image.open(shared / "data/zoo/bird_segmentation_mask.bmp") as t:
        truth = np.asarray(t) == 3
    mine = r["_map"] == 3
    assert (mine & truth).sum() / (mine | truth).sum() == pytest.approx(0.84, abs=0.01)


def test_movenet_on_the_reference_kernels(litert, models_dir, shared):
    r = reference_answer("movenet", shared / "data/zoo/squat.bmp", models_dir)
    with open(shared / "data/zoo/movenet_single_pose_lightning_ptq_reference.csv") as f:
        ref = sorted(csv.DictReader(f), key=lambda q: int(q["keypoint_id"]))
    d = np.array(
        [
            (k["x"] - float(q["keypoint_x"]), k["y"] - float(q["keypoint_y"]))
            for k, q in zip(r["keypoints"], ref)
        ]
    )
    assert np.abs(d).mean() < 0.01 and np.abs(d).max() < 0.04  # NOTES.md: 0.009 mean, 0.038 max
