"""scripts/evaluate.py: data readers, reports, the comparison with the reference kernels, whole runs.

Tests named test_e2e_* run whole shared models through the engine (every kernel of mnist / ssd /
person_detect) and LiteRT's reference kernels.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import registry
from engine.errors import InputError
from tests import oracle

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "evaluate.py"


@pytest.fixture(scope="module")
def ev():
    spec = importlib.util.spec_from_file_location("evaluate_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def env(tmp_path, models_dir, monkeypatch):
    monkeypatch.setenv("ENGINE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENGINE_MODEL_MIRROR", str(models_dir))
    monkeypatch.setenv("ENGINE_OFFLINE", "1")
    return dict(os.environ, PYTHONPATH=str(ROOT))


def idx_bytes(magic: int, dims: list[int], body: bytes) -> bytes:
    head = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return head + body


def test_read_idx(ev, tmp_path):
    imgs = np.arange(2 * 3 * 4, dtype=np.uint8)
    p = tmp_path / "i.gz"
    p.write_bytes(gzip.compress(idx_bytes(2051, [2, 3, 4], imgs.tobytes())))
    assert np.array_equal(ev.read_idx(p, 2051), imgs.reshape(2, 3, 4))
    plain = tmp_path / "l"
    plain.write_bytes(idx_bytes(2049, [3], b"\x01\x02\x03"))
    assert ev.read_idx(plain, 2049).tolist() == [1, 2, 3]
    with pytest.raises(InputError, match="magic number 2051"):
        ev.read_idx(plain, 2051)
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(2049, [5], b"\x01"))
    with pytest.raises(InputError, match="1 bytes of data for dimensions"):
        ev.read_idx(short, 2049)
    with pytest.raises(InputError, match="cannot read"):
        ev.read_idx(tmp_path / "missing.gz", 2049)


def test_read_golden(ev, shared):
    rows = ev.read_golden(shared / "data/ssd/table_results.txt")
    assert [r[0] for r in rows] == ["dining table", "knife", "cup", "book"]
    assert rows[0][2] == 0.48828125 and len(rows[0][1]) == 4


def test_confusion_png_is_written_atomically(ev, tmp_path):
    c = np.diag(np.full(10, 100))
    c[3, 5] = 7
    out = ev.plot_confusion(c, 0.99, tmp_path / "c.png")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png"]


def test_differing_images_are_reported_one_by_one(ev, env, shared, monkeypatch, tmp_path):
    """The reference comparison itself: an engine answer changed on purpose must be reported, exactly."""
    real = registry.resolve

    class Tampered:
        def __init__(self, model):
            self.m, self.inputs, self.outputs = model, model.inputs, model.outputs

        def run(self, x):
            (y,) = self.m.run(x)
            y = y.copy()
            if len(y) > 7:
                y[7, 0] ^= 1  # the 8th image of every batch
            return [y]

    def resolve(name, **kw):
        r = real(name, **kw)
        r.model = Tampered(r.model)
        return r

    monkeypatch.setattr(ev.registry, "resolve", resolve)
    rc = ev.main(
        [
            "--model",
            "mnist",
            "--limit",
            "40",
            "--batch",
            "16",
            "--compare-litert",
            "--out-dir",
            str(tmp_path / "out"),
            "--data-dir",
            str(shared / "data"),
        ]
    )
    assert rc == 1
    report = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    diffs = report["mnist"]["reference"]["differing_images"]
    assert [d["index"] for d in diffs] == [7, 23, 39]  # 40 images in batches of 16, 16 and 8
    assert diffs[0]["engine"][0] != diffs[0]["reference"][0]
    assert report["ok"] is False and report["mnist"]["checks"]["outputs_equal_reference"] is False


def test_missing_data_folder_is_an_error(env, tmp_path):
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--data-dir", str(tmp_path / "nothing")],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert p.returncode == InputError.exit_code and p.stderr.startswith("error: data folder")


# ---------------------------------------------------------------- whole runs


def run_script(env, tmp_path, *args) -> tuple[subprocess.CompletedProcess, dict]:
    if "--compare-litert" in args:  # the script runs the oracles (TFLite Micro for person_detect)
        oracle.require("reference", *(["micro"] if "person" in args else []))
    out = tmp_path / "out"
    p = subprocess.run(
        [sys.executable, str(SCRIPT), "--out-dir", str(out), *args],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=tmp_path,
    )
    report = json.loads((out / "evaluation.json").read_text()) if (out / "evaluation.json").exists() else {}
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}\n{json.dumps(report)[:3000]}"
    return p, report


def test_e2e_mnist_quick_run_with_reference(env, tmp_path):
    p, r = run_script(env, tmp_path, "--model", "mnist", "--limit", "500", "--compare-litert")
    m = r["mnist"]
    assert m["images"] == 500 and m["reference"]["differing_images"] == []
    assert sum(map(sum, m["confusion"])) == 500 and 0.95 < m["accuracy"] <= 1.0
    assert (tmp_path / "out" / "mnist_confusion.png").exists()
    assert "mnist: top-1" in p.stdout


@pytest.mark.early
def test_e2e_ssd_golden_and_reference(env, tmp_path):
    _, r = run_script(env, tmp_path, "--model", "ssd", "--compare-litert")
    s = r["ssd"]
    assert all(s["checks"].values()), s["checks"]
    assert s["reference"]["differing_outputs"] == []
    with Image.open(tmp_path / "out" / "ssd_table.png") as img:
        assert img.size == (640, 480)


@pytest.mark.early
def test_e2e_person_exact_outputs(env, tmp_path):
    _, r = run_script(env, tmp_path, "--model", "person", "--compare-litert")
    rows = {row["image"]: row for row in r["person"]["images"]}
    assert rows["person.bmp"]["output"] == [-113, 113] and rows["person.bmp"]["label"] == "person"
    assert rows["no_person.bmp"]["output"] == [57, -57] and rows["no_person.bmp"]["label"] == "no person"


def test_e2e_mnist_full_test_set_is_bit_exact(env, tmp_path):
    """The headline claim: 98.80 % top-1 and every one of the 10,000 outputs equal to the reference's (the
    suite's one run of the whole test set against the reference kernels)."""
    _, r = run_script(env, tmp_path, "--model", "mnist", "--compare-litert", "--no-plots")
    m = r["mnist"]
    assert m["accuracy"] == pytest.approx(0.9880) and m["checks"]["accuracy_equals_reference_98.80"]
    assert m["reference"]["differing_images"] == []
