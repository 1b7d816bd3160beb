"""The 14 things a first-time user hit (issue 11), one test (or more) each, numbered as in the issue."""

from __future__ import annotations

import itertools
import json
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import engine
from engine import postprocess as pp
from engine import registry
from engine.errors import FetchError, InputError
from tests.cli_env import make_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(tmp_path, models_dir):
    return make_cli(tmp_path, models_dir)


def error_lines(p) -> list[str]:
    assert "Traceback" not in p.stderr, p.stderr
    return [line for line in p.stderr.splitlines() if line.startswith("error: ")]


# 1 ------------------------------------------------------------- top-k labels drawn one under the other


def label_rows(img: Image.Image) -> list[tuple[int, int]]:
    """Runs of rows where column 0 is white (the label boxes are white, the picture black)."""
    col = np.asarray(img.convert("L"))[:, 0] == 255
    runs, start = [], None
    for y, on in enumerate([*col, False]):
        if on and start is None:
            start = y
        elif not on and start is not None:
            runs.append((start, y))
            start = None
    return runs


def test_1_top_k_label_lines_do_not_overlap():
    preds = [pp.Prediction(f"label {i}", i, 0.5 - 0.1 * i, 0) for i in range(3)]
    runs = label_rows(pp.draw_predictions(Image.new("L", (28, 28)), preds))
    assert len(runs) == 3 and runs[0][0] == 0  # three separate boxes, the best at the top
    assert all(a[1] < b[0] for a, b in itertools.pairwise(runs))


# 2 ------------------------------------------------------------- the README's LiteRT comparison
# (test_readme.py runs the snippet and checks it prints [] on MNIST; here: it names the reference kernels)


def test_2_readme_compares_with_the_reference_kernels():
    text = (ROOT / "README.md").read_text()
    snippet = text[text.index("compare every layer with another runtime") :]
    snippet = snippet[: snippet.index("```\n", snippet.index("```python") + 9)]
    assert "OpResolverType.BUILTIN_REF" in snippet and "experimental_preserve_all_tensors=True" in snippet


# 3 ------------------------------------------------------------- offline: the error names the model and the fix


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    calls = []

    def refuse(url, timeout):
        calls.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(registry, "open_url", refuse)
    monkeypatch.setenv("ENGINE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ENGINE_MODEL_MIRROR", raising=False)
    monkeypatch.delenv("ENGINE_OFFLINE", raising=False)
    monkeypatch.delenv("ENGINE_REGISTRY", raising=False)
    return calls


def test_3_offline_without_a_mirror_names_model_and_fix(no_network):
    with pytest.raises(FetchError) as e:
        registry.resolve("mnist")
    msg = str(e.value)
    assert "model mnist" in msg and "Name or service not known" in msg
    assert "ENGINE_MODEL_MIRROR" in msg and "--mirror" in msg
    assert len(no_network) == 1


def test_3_a_mirror_lacking_the_file_does_not_download(no_network, tmp_path, capsys):
    from engine.run import main

    (tmp_path / "mirror").mkdir()
    assert main(["--mirror", str(tmp_path / "mirror")]) == FetchError.exit_code
    err = capsys.readouterr().err
    assert "model mnist" in err and "not in the mirror" in err and "mnist_uint8.tflite" in err
    assert no_network == []  # nothing was fetched


# 4 ------------------------------------------------------------- one bad image does not abort a folder


def test_4_bad_image_in_a_folder_is_skipped_and_reported(cli, tmp_path):
    from engine.sample import sample_digit

    folder = tmp_path / "digits"
    folder.mkdir()
    for d in (1, 2, 7):
        sample_digit(d).save(folder / f"{d}.png")
    (folder / "5.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    p = cli("--image", str(folder), "--json", expect=5)
    doc = json.loads(p.stdout)
    assert [Path(r["image"]).name for r in doc["results"]] == ["1.png", "2.png", "7.png"]
    assert [r["predictions"][0]["label"] for r in doc["results"]] == ["1", "2", "7"]
    (bad,) = doc["errors"]
    assert Path(bad["image"]).name == "5.png" and "5.png" in bad["error"]
    lines = error_lines(p)
    assert any("5.png" in line for line in lines) and "1 of 4 images could not be read" in lines[-1]
    p = cli("--image", str(folder), "--batch", "2", expect=5)  # text: the good results still print
    assert p.stdout.count("png: ") == 3 and "time:" in p.stdout


# 5 ------------------------------------------------------------- compiling is announced and timed apart


def test_5_compile_watch_announces_and_times_compilation():
    import io

    from numba import njit

    from engine.compile_watch import MESSAGE, CompileWatch

    @njit(cache=False)
    def fresh(x):
        return x * 3 + 1

    out = io.StringIO()
    with CompileWatch(out) as w:
        assert fresh(2) == 7
    assert w.compiled >= 1 and w.compile_s > 0 and out.getvalue().startswith(MESSAGE)
    assert "done" in out.getvalue()
    quiet = io.StringIO()
    with CompileWatch(quiet) as w:
        fresh(3)  # already compiled: nothing to say
    assert w.compiled == 0 and quiet.getvalue() == ""


def test_5_cli_reports_compile_time_apart_from_load(cli):
    t = json.loads(cli("--json").stdout)["timing"]
    assert {"load_ms", "compile_ms", "kernels_compiled"} <= set(t)
    last = cli().stdout.splitlines()[-1]
    assert "model load" in last and "kernels" in last


# 6 ------------------------------------------------------------- engine.load takes registry names


def test_6_load_takes_registry_names(models_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("ENGINE_MODEL_MIRROR", str(models_dir))
    monkeypatch.setenv("ENGINE_HOME", str(tmp_path / "home"))
    m = engine.load("hello_world")
    assert m.inputs[0].shape == (1, 1) and m.outputs[0].dtype == np.int8
    with pytest.raises(FetchError, match="did you mean hello_world"):
        engine.load("hello_wrld")


# 7 ------------------------------------------------------------- unknown names: the closest, aliases, exit 2


def test_7_unknown_model_suggests_the_closest(cli):
    p = cli("--model", "persn", expect=2)
    (line,) = error_lines(p)
    assert "did you mean person" in line and "person = person_detect" in line
    reg = registry.Registry.load()
    with pytest.raises(registry.UnknownModelError, match="did you mean yolov8n"):
        reg.model("yolov8")


# 8 ------------------------------------------------------------- person.bmp needs the int8 reinterpret option


def test_8_person_bmp_with_int8_reinterpret(cli, shared):
    bmp = str(shared / "data/person/person.bmp")
    doc = json.loads(cli("--model", "person", "--image", bmp, "--int8", "reinterpret", "--json").stdout)
    assert doc["results"][0]["predictions"][0]["label"] == "person"
    assert doc["results"][0]["predictions"][0]["raw"] == 113  # TFLite Micro's test: [-113, 113]
    no = str(shared / "data/person/no_person.bmp")
    doc = json.loads(cli("--model", "person", "--image", no, "--int8", "reinterpret", "--json").stdout)
    assert doc["results"][0]["predictions"][0]["label"] == "no person"
    readme = (ROOT / "README.md").read_text()
    assert "--int8 reinterpret" in readme


# 9 ------------------------------------------------------------- one box order in JSON, documented


def test_9_box_and_box_normalized_share_one_order(cli, shared):
    doc = json.loads(cli("--model", "ssd", "--image", str(shared / "data/ssd/table.jpg"), "--json").stdout)
    w, h = doc["results"][0]["size"]
    for d in doc["results"][0]["detections"]:
        x0, y0, x1, y1 = d["box"]
        assert d["box_normalized"] == pytest.approx([x0 / w, y0 / h, x1 / w, y1 / h])
        assert x0 < x1 and y0 < y1
    readme = (ROOT / "README.md").read_text()
    schema = readme[readme.index("## JSON output") :]
    for key in (
        "box_normalized",
        "[x0, y0, x1, y1]",
        "detections",
        "keypoints",
        "fraction",
        "errors",
        "timing",
    ):
        assert key in schema, key


# 10 ------------------------------------------------------------ labels that do not fit; transparent PNGs


def test_10_labels_length_mismatch_warns(cli, tmp_path, models_dir):
    (tmp_path / "labels.txt").write_text("zero\none\ntwo\n")
    p = cli("--model", str(models_dir / "mnist_uint8.tflite"), "--labels", "labels.txt")
    assert "warning: 3 labels from labels.txt for 10 classes" in p.stderr
    (tmp_path / "ten.txt").write_text("".join(f"d{i}\n" for i in range(10)))
    p = cli("--model", str(models_dir / "mnist_uint8.tflite"), "--labels", "ten.txt")
    assert "warning" not in p.stderr and p.stdout.startswith("<sample digit 3>: d3")


def test_10_dark_digit_on_transparent_background_warns(cli, tmp_path):
    a = np.zeros((28, 28, 4), np.uint8)  # black strokes, transparent elsewhere: black on black for MNIST
    a[6:22, 12:16, 3] = 255
    Image.fromarray(a, "RGBA").save(tmp_path / "dark.png")
    p = cli("--image", "dark.png")
    assert "warning:" in p.stderr and "transparent" in p.stderr
    a[..., :3] = 255  # light strokes on transparent: what MNIST wants, no warning
    Image.fromarray(a, "RGBA").save(tmp_path / "light.png")
    assert "warning" not in cli("--image", "light.png").stderr


# 11 ------------------------------------------------------------ run(float array) quantizes


def test_11_run_quantizes_float_inputs(models_dir):
    from tests.oracle import reference_run

    path = models_dir / "hello_world_int8.tflite"
    m = engine.load(path)
    x = np.array([[0.5], [1.5], [3.0]], np.float32)
    q = m.inputs[0].quantize(x)
    (y,) = m.run(x)
    assert np.array_equal(y, m.run(q)[0])
    ref = np.concatenate(
        [reference_run(path, [q[i : i + 1]], preserve_all=False)["outputs"][0] for i in range(3)]
    )
    assert np.array_equal(y, ref)
    with pytest.raises(InputError, match="contains NaN"):
        m.run(np.array([[np.nan]], np.float32))
    with pytest.raises(InputError, match="model expects int8; pass int8 values, or floats"):
        m.run(np.array([[1]], np.int64))


# 12 ------------------------------------------------------------ signatures, as LiteRT scripts use them


def test_12_signature_list_and_runner(models_dir, litert):
    from tests.oracle import reference_run

    path = models_dir / "hello_world_int8.tflite"
    it = engine.Interpreter(model_path=str(path))
    assert it.get_signature_list() == {"serving_default": {"inputs": ["dense_input"], "outputs": ["dense_2"]}}
    run = it.get_signature_runner()
    assert list(run.get_input_details()) == ["dense_input"] and list(run.get_output_details()) == ["dense_2"]
    assert run.get_input_details()["dense_input"]["index"] == 0
    x = np.array([[-128], [0], [90]], np.int8)  # a batch: the runner resizes, as LiteRT's does
    y = run(dense_input=x)["dense_2"]
    ref = [reference_run(path, [x[i : i + 1]], preserve_all=False)["outputs"][0][0] for i in range(3)]
    assert np.array_equal(y, np.array(ref))
    with pytest.raises(InputError, match="no input named 'x'"):
        run(x=x)
    with pytest.raises(InputError, match="invalid signature_key 'nope'"):
        it.get_signature_runner("nope")
    plain = engine.Interpreter(model_path=str(models_dir / "mnist_uint8.tflite"))
    assert plain.get_signature_list() == {}
    with pytest.raises(InputError, match="0 SignatureDefs"):
        plain.get_signature_runner()


# 13 ------------------------------------------------------------ --repeat: median and spread


def test_13_repeat_reports_median_and_spread(cli):
    last = cli("--repeat", "5").stdout.splitlines()[-1]
    assert "median of 5 runs, min" in last and "max" in last
    assert "one run" in cli().stdout.splitlines()[-1]
    t = json.loads(cli("--repeat", "4", "--json").stdout)["timing"]
    assert t["repeat"] == 4 and t["ms_per_image_min"] <= t["ms_per_image"] <= t["ms_per_image_max"]


# 14 ------------------------------------------------------------ non-image models: --input FILE.npy


def test_14_non_image_models_are_told_to_pass_a_tensor(cli, tmp_path):
    from engine.sample import sample_digit

    sample_digit(3).save(tmp_path / "d.png")
    (line,) = error_lines(cli("--model", "micro_speech", "--image", "d.png", expect=4))
    assert "does not take images" in line and "--input FILE.npy" in line
    (line,) = error_lines(cli("--model", "micro_speech", expect=4))
    assert "--input FILE.npy" in line and "--image" not in line and "[1, 1960]" in line
    np.save(tmp_path / "x.npy", np.zeros((1, 1960), np.int8))
    doc = json.loads(cli("--model", "micro_speech", "--input", "x.npy", "--json").stdout)
    assert doc["results"][0]["predictions"][0]["label"] in ("silence", "unknown", "yes", "no")
