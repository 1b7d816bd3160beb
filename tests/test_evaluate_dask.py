"""Dataset-scale evaluation (engine.dataset, engine.evaluation, engine.results, engine.distributed).

The cluster tests run a real Dask LocalCluster of 2 worker processes: the same outputs_sha256 as the
in-process run, a bad item reported and not fatal, a resumed run skipping the finished shards, and a
worker killed by SIGKILL in the middle of a run of the command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine import registry
from engine.dataset import class_index, open_dataset, read_idx
from engine.errors import EngineError, ImageError, InputError
from engine.evaluation import ModelRef, accuracy, evaluate_dataset, loaded

pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "evaluate.py"
MNIST_SHA = "0470920958491c2dfc6b7146e653f8bf28b5f2e6109bbaf142d97b8b2acb553e"
SOURCES = ["zoo/cat.bmp", "zoo/grace_hopper.bmp", "zoo/pets.jpg", "ssd/table.jpg", "zoo/traffic_0001.bmp"]


@pytest.fixture(scope="module")
def mnist_dir(shared) -> Path:
    return shared / "data" / "mnist"


@pytest.fixture(scope="module")
def ref(models_dir) -> ModelRef:
    return ModelRef("mnist", MNIST_SHA, str(models_dir), {"kind": "raw", "resize": "bilinear"}, batch=64)


@pytest.fixture(scope="module")
def photos(shared, tmp_path_factory) -> Path:
    """Two class folders of small photos (cropped, resized copies of the shared images), one photo at the
    top (no label), and one corrupt file."""
    root = tmp_path_factory.mktemp("photos")
    k = 0
    for cls in ("3", "7"):
        (root / cls).mkdir()
        for src in SOURCES:
            with Image.open(shared / "data" / src) as im:
                w, h = im.size
                crop = im.convert("RGB").crop((k * 7 % (w // 3), 0, w - k * 5 % (w // 3), h))
                crop.resize((40 + k, 36 + k)).save(root / cls / f"{k:02d}.jpg", quality=90)
            k += 1
    Image.new("RGB", (30, 30), (200, 10, 10)).save(root / "top.png")
    (root / "7" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def client():
    from engine.distributed import local_cluster

    with local_cluster(workers=2, threads=1) as c:
        yield c


def backend(client):
    from engine.distributed import DaskBackend

    return DaskBackend(client)


# ---------------------------------------------------------------- datasets (no Dask)


def test_image_folder_labels_and_order(photos):
    ds = open_dataset(photos)
    rel = [Path(p).relative_to(photos).as_posix() for p in ds.paths]
    assert rel[0] == "3/00.jpg" and rel[-1] == "top.png" and "7/broken.jpg" in rel and len(rel) == 12
    assert ds.class_names == ["3", "7"]
    assert ds.labels.tolist() == [3] * 5 + [7] * 6 + [-1]  # folder names that are integers: those classes
    assert class_index(["cat", "dog"], None) == {"cat": 0, "dog": 1}  # else sorted order
    assert class_index(["Dog", "cat"], ["background", "cat", "dog"]) == {"Dog": 2, "cat": 1}  # model's labels
    (photos / "7" / "loop").symlink_to(photos, target_is_directory=True)  # followed once, never in a loop
    try:
        assert open_dataset(photos).paths == ds.paths
    finally:
        (photos / "7" / "loop").unlink()
    shard = ds.shard(4, 8)
    assert shard.paths == tuple(ds.paths[4:8]) and len(shard) == 4


def test_npz_npy_and_idx_datasets(tmp_path, mnist_dir):
    x = np.arange(5 * 28 * 28, dtype=np.uint8).reshape(5, 28, 28, 1)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([1, 2, 3, 4, 5]))
    ds = open_dataset(tmp_path / "d.npz")
    assert (ds.kind, ds.key, len(ds), ds.labels.tolist()) == ("array", "x", 5, [1, 2, 3, 4, 5])
    np.save(tmp_path / "d.npy", x)
    (tmp_path / "t.txt").write_text("0\n1\n2\n3\n4\n")
    assert open_dataset(tmp_path / "d.npy", targets=tmp_path / "t.txt").labels.tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(InputError, match="labels must be 5 integers"):
        open_dataset(tmp_path / "d.npy", targets=tmp_path / "d.npy")
    m = open_dataset(mnist_dir)
    assert m.kind == "idx" and len(m) == 10000 and m.labels[:3].tolist() == [7, 2, 1]
    assert len(open_dataset(mnist_dir / "t10k-images-idx3-ubyte.gz").labels) == 10000
    with pytest.raises(InputError, match="no such file"):
        open_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no image files"):
        open_dataset(tmp_path / "empty")


def test_accuracy_top5_ties_and_per_class():
    out = np.array([[0, 9, 9, 1, 1, 1, 1], [5, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]], np.uint8)
    r = accuracy(out, np.array([2, 0, 6]), {0: "zero", 2: "two", 6: "six"})
    # row 0: ties go to the lower class (1 before 2); row 2: all equal, class 6 is not in the first five
    assert (r["top1"], r["top5"], r["correct"]) == (1 / 3, 2 / 3, 1)
    assert r["per_class"]["two"] == {"images": 1, "top1": 0.0, "top5": 1.0}
    assert r["per_class"]["six"]["top5"] == 0.0


def test_predictions_of_a_classifier_and_a_detector():
    from engine import TensorInfo
    from engine.evaluation import ModelFacts, predictions

    q = TensorInfo("p", 0, (1, 4), np.dtype(np.uint8), 1 / 256, 0)
    pred, score = predictions(
        [np.array([[1, 9, 9, 0], [0, 0, 0, 128]], np.uint8)], ModelFacts([q], None, "classify")
    )
    assert pred.tolist() == [1, 3] and score.tolist() == [9 / 256, 0.5]
    boxes = np.zeros((2, 10, 4), np.float32)
    classes = np.array([[17.0] + [0.0] * 9, [3.0] * 10], np.float32)
    scores = np.array([[0.75] + [0.0] * 9, [0.0] * 10], np.float32)
    count = np.array([1.0, 0.0], np.float32)
    pred, score = predictions([boxes, classes, scores, count], ModelFacts([q] * 4, None, "detect"))
    assert pred.tolist() == [17, -1] and score[0] == 0.75 and np.isnan(score[1])


def test_in_process_digest_is_the_raw_outputs_in_order(ref, mnist_dir):
    """outputs_sha256 is sha256 over the raw outputs in dataset order: recomputed here from one model run."""
    ds = open_dataset(mnist_dir).limit(300)
    s = evaluate_dataset(ref, ds, shard_size=70)
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz", 2051)[:300]
    (y,) = loaded(ref).model.run(images[..., None])
    assert s["outputs_sha256"] == hashlib.sha256(y.tobytes()).hexdigest()
    assert s["images"] == 300 and s["shards"] == 5 and s["failed"] == []
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", 2049)[:300]
    assert s["top1"] == float(np.mean(y.argmax(1) == labels))


def test_compare_litert_counts_differing_items(ref, mnist_dir, monkeypatch, litert):
    """Against the reference kernels: none differ; an engine answer changed on purpose is counted, exactly."""
    from engine import evaluation

    ds = open_dataset(mnist_dir).limit(40)
    clean = evaluate_dataset(dataclasses.replace(ref, compare=True), ds, shard_size=40)
    assert clean["reference"]["compared"] == 40 and clean["reference"]["differing"] == 0
    real = registry.resolve

    class Tampered:
        def __init__(self, model):
            self.m, self.inputs, self.outputs = model, model.inputs, model.outputs

        def run(self, x):
            (y,) = self.m.run(x)
            y = y.copy()
            if len(y) > 7:
                y[7, 0] ^= 1  # the 8th item of every batch
            return [y]

    def resolve(name, **kw):
        r = real(name, **kw)
        r.model = Tampered(r.model)
        return r

    monkeypatch.setattr(evaluation, "_LOADED", {})
    monkeypatch.setattr(registry, "resolve", resolve)
    s = evaluate_dataset(dataclasses.replace(ref, compare=True, batch=16), ds, shard_size=40)
    assert s["reference"]["differing"] == 3  # batches of 16, 16 and 8
    assert s["reference"]["differing_items"] == [ds.item(7), ds.item(23), ds.item(39)]


def test_a_worker_with_another_model_file_refuses(ref, tmp_path, models_dir):
    from engine.errors import FetchError

    bad = dataclasses.replace(ref, sha256="0" * 64)
    with pytest.raises(FetchError, match="but the run was started with 0000"):
        loaded(bad)
    copy = tmp_path / "m.tflite"
    copy.write_bytes((models_dir / "mnist_uint8.tflite").read_bytes())
    with pytest.raises(FetchError, match="m.tflite on .*: sha256 0470"):
        loaded(dataclasses.replace(bad, name=str(copy)))


def test_workers_without_dask_say_how_to_install(monkeypatch):
    from engine import distributed

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(EngineError, match=r'pip install "engine\[cluster\]"'):
        distributed.require_dask()


def test_numba_cache_dir_for_read_only_installs(monkeypatch, tmp_path):
    from engine import distributed

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("ENGINE_HOME", str(tmp_path))
    monkeypatch.setattr(distributed.os, "access", lambda p, mode: False)
    assert distributed.numba_cache_dir() == str(tmp_path / "numba")
    env = distributed.worker_environment(3, distributed.numba_cache_dir())
    assert env["NUMBA_NUM_THREADS"] == "3" and env["NUMBA_CACHE_DIR"] == str(tmp_path / "numba")
    assert (tmp_path / "numba").is_dir()
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/somewhere")
    assert distributed.numba_cache_dir() == "/somewhere"
    assert distributed.numba_cache_dir("x") == str(Path("x").resolve())


# ---------------------------------------------------------------- on a LocalCluster of 2 processes


def test_cluster_mnist_digest_equals_in_process(ref, mnist_dir, client):
    ds = open_dataset(mnist_dir).limit(1500)
    here = evaluate_dataset(ref, ds, shard_size=150)
    there = evaluate_dataset(ref, ds, backend(client), shard_size=100)
    assert there["outputs_sha256"] == here["outputs_sha256"]
    assert (there["images"], there["top1"], there["top5"]) == (1500, here["top1"], here["top5"])
    assert there["per_class"] == here["per_class"]
    workers = there["workers"]
    assert len(workers) == 2 and len({w["pid"] for w in workers}) == 2
    assert all(w["numba_threads"] == 1 for w in workers)  # set before Numba started in the worker
    assert os.getpid() not in {w["pid"] for w in workers}


def test_cluster_bad_item_is_reported_not_fatal(ref, photos, client):
    ds = open_dataset(photos)
    there = evaluate_dataset(ref, ds, backend(client), shard_size=3)
    here = evaluate_dataset(ref, ds, shard_size=5)
    assert [Path(f["item"]).name for f in there["failed"]] == ["broken.jpg"]
    assert "broken.jpg" in there["failed"][0]["error"] and there["failed"][0]["index"] == 10
    assert there["images"] == 11 and there["items"] == 12 and there["labeled"] == 10  # top.png: no label
    assert there["outputs_sha256"] == here["outputs_sha256"] and there["failed"] == here["failed"]
    assert set(there["per_class"]) == {"3", "7"}


def test_cluster_resume_skips_finished_shards(ref, mnist_dir, client, tmp_path):
    import pyarrow.parquet as pq

    ds = open_dataset(mnist_dir).limit(600)
    out = tmp_path / "r.parquet"
    first = evaluate_dataset(ref, ds, backend(client), shard_size=50, out=out)
    parts = sorted(out.glob("part-*.parquet"))
    assert len(parts) == 12 and first["shards_run"] == 12
    for p in parts[3:8]:  # an interrupted run: these shards never finished
        p.unlink()
    parts[9].write_bytes(b"PAR1 garbage")  # unreadable: run again, not trusted
    again = evaluate_dataset(ref, ds, backend(client), shard_size=20, out=out)  # the folder's shard size wins
    assert (again["shards_skipped"], again["shards_run"], again["shard_size"]) == (6, 6, 50)
    assert again["outputs_sha256"] == first["outputs_sha256"] and again["top1"] == first["top1"]
    t = pq.read_table(out).sort_by("index").to_pydict()
    assert t["index"] == list(range(600)) and t["label"][:3] == [7, 2, 1]
    assert t["prediction"][:3] == [7, 2, 1] and all(e is None for e in t["error"])
    digest = hashlib.sha256(b"".join(t["output"])).hexdigest()
    assert digest == first["outputs_sha256"]
    with pytest.raises(InputError, match="holds the results of another run"):
        evaluate_dataset(ref, ds.limit(500), out=out)


def test_cli_any_model_file_on_an_existing_cluster(mnist_dir, models_dir, tmp_path, client):
    env = dict(os.environ, PYTHONPATH=str(ROOT), ENGINE_HOME=str(tmp_path / "h"), ENGINE_OFFLINE="1")
    model = models_dir / "mnist_uint8.tflite"
    p = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--model",
            str(model),
            "--data",
            str(mnist_dir),
            "--limit",
            "100",
            "--json",
            "--scheduler",
            client.scheduler.address,
        ],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    s = json.loads(p.stdout)
    assert s["images"] == 100 and s["model_sha256"] == registry.sha256_file(model) and s["top1"] > 0.9
    assert s["backend"] == "dask" and len(s["workers"]) == 2
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "--model", "flowers.tflite", "--data", str(mnist_dir)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert bad.returncode == InputError.exit_code and "flowers.tflite: no such file" in bad.stderr


def _workers_of(pid: int) -> list:
    import psutil

    workers = []
    for k in psutil.Process(pid).children(recursive=True):
        try:  # a child may exit between the listing and this read
            line = " ".join(k.cmdline())
        except psutil.Error:
            continue
        if "spawn_main" in line and "resource_tracker" not in line:
            workers.append(k)
    return workers


def test_cli_worker_killed_mid_run_loses_nothing(ref, mnist_dir, models_dir, tmp_path):
    """SIGKILL one of two workers while shards run: exit 0, every image, the in-process digest."""
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        ENGINE_HOME=str(tmp_path / "home"),
        ENGINE_MODEL_MIRROR=str(models_dir),
        ENGINE_OFFLINE="1",
        ENGINE_EVAL_TEST_DELAY_S="0.25",  # each shard sleeps: the run lasts long enough to kill in it
    )
    out = tmp_path / "r.parquet"
    args = ["--model", "mnist", "--data", str(mnist_dir), "--limit", "1200", "--shard", "50", "--json"]
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args, "--workers", "2", "--threads", "1", "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        workers = _workers_of(proc.pid)
        if len(workers) == 2 and len(list(out.glob("part-*.parquet"))) >= 3:
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
            break
        time.sleep(0.05)
    written_at_kill = len(list(out.glob("part-*.parquet")))
    stdout, stderr = proc.communicate(timeout=300)
    assert killed is not None and written_at_kill < 24, stderr[-3000:]
    assert proc.returncode == 0, stderr[-3000:]
    s = json.loads(stdout)
    expected = evaluate_dataset(ref, open_dataset(mnist_dir).limit(1200), shard_size=400)
    assert (s["images"], s["failed"], s["outputs_sha256"]) == (1200, [], expected["outputs_sha256"])
    assert "dask: tcp://" in stderr and "dashboard" in stderr
    # the results folder is complete: a run in-process over it runs nothing and agrees
    again = evaluate_dataset(ref, open_dataset(mnist_dir).limit(1200), out=out)
    assert again["shards_skipped"] == 24 and again["outputs_sha256"] == s["outputs_sha256"]
