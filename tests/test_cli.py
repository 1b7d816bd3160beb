"""`python -m engine.run` in a subprocess, as a user runs it.

Tests named test_e2e_* run a whole shared model (every op kernel of mnist / ssd / person_detect);
the others only need the registry, the argument handling and hello_world.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(tmp_path, models_dir):
    env = dict(
        os.environ,
        ENGINE_HOME=str(tmp_path / "home"),
        ENGINE_MODEL_MIRROR=str(models_dir),
        ENGINE_OFFLINE="1",
        PYTHONPATH=str(ROOT),
    )
    env.pop("ENGINE_REGISTRY", None)

    def run(*args: str, expect: int | None = 0) -> subprocess.CompletedProcess:
        p = subprocess.run(
            [sys.executable, "-m", "engine.run", *args],
            check=False,
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if expect is not None:
            assert p.returncode == expect, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        return p

    return run


def one_error_line(p: subprocess.CompletedProcess) -> str:
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def test_help(cli):
    p = cli("--help")
    for flag in (
        "--model",
        "--image",
        "--batch",
        "--threads",
        "--top-k",
        "--score-threshold",
        "--json",
        "--out",
        "--list-models",
        "--mirror",
        "--debug",
        "examples:",
        "ENGINE_MODEL_MIRROR",
    ):
        assert flag in p.stdout, flag


def test_list_models(cli):
    p = cli("--list-models")
    assert "mnist (default)" in p.stdout and "alias: ssd" in p.stdout and "mirror" in p.stdout
    doc = json.loads(cli("--list-models", "--json").stdout)
    names = {m["name"]: m for m in doc["models"]}
    assert names["mnist"]["default"] and names["ssd_mobilenet_v1"]["task"] == "detect"
    assert names["person_detect"]["aliases"] == ["person"]


def test_missing_image_is_one_line_and_exit_5(cli, tmp_path):
    p = cli("--image", str(tmp_path / "nope.png"), expect=5)
    assert "nope.png" in one_error_line(p)


def test_empty_folder_is_an_image_error(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    p = cli("--image", str(tmp_path / "empty"), expect=5)
    assert "no image files" in one_error_line(p)


def test_unknown_model_is_a_usage_error_with_a_suggestion(cli):
    p = cli("--model", "resnet9000", expect=2)
    assert "unknown model 'resnet9000'" in one_error_line(p)
    line = one_error_line(cli("--model", "ssd_mobilenet", expect=2))
    assert "did you mean ssd_mobilenet_v1" in line and "ssd = ssd_mobilenet_v1" in line  # closest first


def test_missing_model_file_is_a_model_error(cli, tmp_path):
    p = cli("--model", str(tmp_path / "gone.tflite"), expect=2)
    assert "gone.tflite" in one_error_line(p)


def test_unsupported_op_is_exit_3_naming_the_op(cli, tmp_path):
    from tests.tflite_builder import build_model

    q = {"dtype": "int8", "scale": [0.1], "zero_point": [0]}
    tensors = [{"name": "x", "shape": [1, 4], **q}, {"name": "y", "shape": [1, 4], **q}]
    model = tmp_path / "floor.tflite"
    model.write_bytes(build_model(tensors, [{"op": "FLOOR", "inputs": [0], "outputs": [1]}], [0], [1]))
    p = cli("--model", str(model), expect=3)
    line = one_error_line(p)
    assert "op 0" in line and "FLOOR" in line, line


def test_corrupt_model_file(cli, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    p = cli("--model", str(bad), expect=2)
    one_error_line(p)


def test_missing_mirror_folder(cli, tmp_path):
    p = cli("--mirror", str(tmp_path / "no-mirror"), expect=6)
    assert "no-mirror" in one_error_line(p)


def test_offline_without_mirror_names_the_problem(cli, tmp_path):
    p = cli("--mirror", str(tmp_path), expect=6)  # an empty mirror, no cache, no network allowed
    line = one_error_line(p)
    assert "model mnist" in line and "not in the mirror" in line and "--mirror" in line


@pytest.mark.parametrize(
    "args", [["--threads", "0"], ["--batch", "x"], ["--score-threshold", "2"], ["--bogus"]]
)
def test_bad_arguments_are_usage_errors(cli, args):
    p = cli(*args, expect=2)
    assert "usage:" in p.stderr


def test_bad_out_extension_before_any_work(cli, tmp_path):
    img = tmp_path / "d.png"
    Image.new("L", (28, 28)).save(img)
    p = cli("--image", str(img), "--out", str(tmp_path / "boxes.xyz"), expect=4)
    assert "boxes.xyz" in one_error_line(p)


def test_debug_shows_the_traceback(cli, tmp_path):
    p = cli("--debug", "--image", str(tmp_path / "nope.png"), expect=1)
    assert "Traceback" in p.stderr and "ImageError" in p.stderr


def test_hello_world_sample_and_npy_input(cli, tmp_path, models_dir):
    import engine
    from tests.oracle import reference_run

    doc = json.loads(cli("--model", "hello_world", "--json").stdout)
    assert doc["task"] == "regress" and len(doc["results"]) == 1
    assert abs(doc["results"][0]["output"][0] - 1.0) < 0.05  # sin(pi/2)
    x = np.array([[0.5], [1.0], [2.0]], np.float32)
    np.save(tmp_path / "x.npy", x)
    doc = json.loads(cli("--model", "hello_world", "--input", str(tmp_path / "x.npy"), "--json").stdout)
    assert np.allclose([r["output"][0] for r in doc["results"]], np.sin(x[:, 0]), atol=0.1)
    # the raw outputs are those of TFLite's reference kernels on the same quantized input
    path = models_dir / "hello_world_int8.tflite"
    q = engine.load(path).inputs[0].quantize(x)
    want = reference_run(path, [q], preserve_all=False)["outputs"][0]
    assert [r["raw"] for r in doc["results"]] == want.tolist()
    p = cli("--model", "hello_world", "--input", str(tmp_path / "x.npy"))
    assert p.stdout.startswith(f"{tmp_path / 'x.npy'}[0]: output ")


def test_text_model_with_image_is_refused(cli, tmp_path):
    img = tmp_path / "d.png"
    Image.new("L", (28, 28)).save(img)
    p = cli("--model", "hello_world", "--image", str(img), expect=4)
    assert "--input" in one_error_line(p)


# ---------------------------------------------------------------- whole models (need every kernel)


def test_e2e_default_run_classifies_the_sample_digit(cli):
    p = cli()
    first = p.stdout.splitlines()[0]
    assert first.startswith("<sample digit 3>: 3 (score ") and "time:" in p.stdout
    assert p.stderr.strip() == ""


def test_e2e_json_top_k_and_folder(cli, tmp_path):
    from engine.sample import sample_digit

    folder = tmp_path / "digits"
    folder.mkdir()
    for d in range(10):
        sample_digit(d).save(folder / f"{d}.png")
    (folder / "readme.txt").write_text("not an image: skipped by extension")
    doc = json.loads(cli("--image", str(folder), "--top-k", "3", "--batch", "4", "--json").stdout)
    assert doc["model"] == "mnist" and len(doc["results"]) == 10
    for d, r in enumerate(doc["results"]):
        assert Path(r["image"]).name == f"{d}.png"
        assert len(r["predictions"]) == 3 and r["predictions"][0]["label"] == str(d)
        scores = [p["score"] for p in r["predictions"]]
        assert scores == sorted(scores, reverse=True)
    assert doc["timing"]["images"] == 10


def test_e2e_non_image_file_is_an_image_error(cli, tmp_path):
    bad = tmp_path / "fake.png"
    bad.write_text("hello")
    p = cli("--image", str(bad), expect=5)
    assert "fake.png" in one_error_line(p)


def test_e2e_ssd_detects_and_annotates(cli, shared, tmp_path):
    out = tmp_path / "boxes.png"
    doc = json.loads(
        cli(
            "--model", "ssd", "--image", str(shared / "data/ssd/table.jpg"), "--out", str(out), "--json"
        ).stdout
    )
    (r,) = doc["results"]
    labels = [d["label"] for d in r["detections"]]
    assert labels[0] == "dining table" and r["detections"][0]["score"] == 0.48828125
    assert {"knife", "cup", "book"} <= set(labels)
    with Image.open(out) as img:
        assert img.size == (640, 480) and img.format == "PNG"
    want = (24.7, 114.4, 620.5, 446.1)  # NOTES.md, in image pixels, rounded to 0.1
    assert all(abs(a - b) < 0.051 for a, b in zip(r["detections"][0]["box"], want))


@pytest.mark.early
def test_e2e_person_detect(cli, shared, tmp_path):
    # person.bmp stores int8 pixels as bytes; as a normal 8-bit image (byte as int8, + 128) the registry's
    # x - 128 feeds the model exactly what TFLite Micro's test feeds: person, [-113, 113] (NOTES.md)
    raw = np.asarray(Image.open(shared / "data/person/person.bmp"))
    Image.fromarray((raw.view(np.int8).astype(np.int16) + 128).astype(np.uint8)).save(tmp_path / "person.png")
    doc = json.loads(
        cli("--model", "person", "--image", str(tmp_path / "person.png"), "--top-k", "2", "--json").stdout
    )
    preds = doc["results"][0]["predictions"]
    assert [(p["label"], p["raw"]) for p in preds] == [("person", 113), ("no person", -113)]
    p = cli("--model", "person", "--image", str(shared / "data/person/no_person.bmp"))
    assert p.stdout.splitlines()[0].split(": ", 1)[1].startswith("no person")


# ------------------------------------------------------------------ paths the README shows, vs the reference
def test_labels_threads_and_npy_input_match_reference(cli, tmp_path, models_dir):
    """--model FILE --labels --input X.npy --threads 1 --json: each answer is the reference's top class,
    named from the labels file, and the run used one thread."""
    from tests.oracle import reference_run

    path = models_dir / "mnist_uint8.tflite"
    x = np.random.default_rng(3).integers(0, 256, (3, 28, 28, 1)).astype(np.uint8)
    np.save(tmp_path / "x.npy", x)
    labels = [f"digit-{k}" for k in range(10)]
    (tmp_path / "labels.txt").write_text("\n".join(labels) + "\n")
    args = [
        "--model",
        str(path),
        "--labels",
        str(tmp_path / "labels.txt"),
        "--input",
        str(tmp_path / "x.npy"),
    ]
    doc = json.loads(cli(*args, "--threads", "1", "--json").stdout)
    want = reference_run(path, [x], preserve_all=False)["outputs"][0]
    assert doc["timing"]["threads"] == 1 and len(doc["results"]) == 3
    for r, row in zip(doc["results"], want):
        top = r["predictions"][0]
        assert top["index"] == int(np.argmax(row)) and top["raw"] == int(row.max()), (r, row)
        assert top["label"] == labels[top["index"]]


def test_ssd_image_folder_and_score_threshold(cli, tmp_path, shared, models_dir):
    """A folder of images through the SSD with --score-threshold: each image's detections are the
    reference's detections at or above the threshold (NOTES.md: table and knife above 0.45)."""
    from PIL import Image

    from tests.oracle import reference_run

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (folder / name).write_bytes((shared / "data/ssd/table.jpg").read_bytes())
    doc = json.loads(
        cli("--model", "ssd", "--image", str(folder), "--score-threshold", "0.45", "--json").stdout
    )
    img = Image.open(shared / "data/ssd/table.jpg").convert("RGB").resize((300, 300), Image.NEAREST)
    boxes, classes, scores, count = reference_run(
        models_dir / "ssd_mobilenet_v1_coco_uint8.tflite",
        [np.asarray(img, np.uint8)[None]],
        preserve_all=False,
    )["outputs"]
    keep = [k for k in range(int(count[0])) if scores[0, k] >= 0.45]
    assert len(keep) == 2 and [r["image"].rsplit("/", 1)[-1] for r in doc["results"]] == ["a.jpg", "b.jpg"]
    for r in doc["results"]:
        dets = r["detections"]
        assert [d["score"] for d in dets] == [float(scores[0, k]) for k in keep]
        assert [d["class_id"] for d in dets] == [int(classes[0, k]) for k in keep]
        # box_normalized is (x0, y0, x1, y1) like box (issue 11); the op gives (ymin, xmin, ymax, xmax)
        assert [d["box_normalized"] for d in dets] == [boxes[0, k][[1, 0, 3, 2]].tolist() for k in keep]


def test_export_tflite_script(tmp_path, models_dir):
    """scripts/export_tflite.py writes an .npz that runs exactly as the reference runs the .tflite."""
    import engine
    from tests.oracle import reference_run

    path = models_dir / "mnist_uint8.tflite"
    out = tmp_path / "mnist.npz"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts/export_tflite.py"), str(path), str(out)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert p.returncode == 0 and out.exists(), p.stderr
    x = np.random.default_rng(4).integers(0, 256, (2, 28, 28, 1)).astype(np.uint8)
    want = reference_run(path, [x], preserve_all=False)["outputs"][0]
    assert np.array_equal(engine.load(out).run(x)[0], want)
