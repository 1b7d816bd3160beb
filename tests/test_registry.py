"""Model registry, download cache (sha256 at every step), offline mirror, archive members, .npz reuse."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import urllib.error
import zipfile
from pathlib import Path

import numpy as np
import pytest

import engine
from engine import atomic, registry
from engine.errors import FetchError
from engine.registry import Cache, Registry

ROOT = Path(__file__).resolve().parents[1]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own cache; nothing reads the user's ~/.cache or the real mirror by accident."""
    monkeypatch.setenv("ENGINE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ENGINE_MODEL_MIRROR", raising=False)
    monkeypatch.delenv("ENGINE_OFFLINE", raising=False)
    monkeypatch.delenv("ENGINE_REGISTRY", raising=False)


@pytest.fixture
def calls(monkeypatch):
    """Record every URL the cache opens (file:// URLs still go through urllib)."""
    seen = []
    real = registry.open_url

    def spy(url, timeout):
        seen.append(url)
        return real(url, timeout)

    monkeypatch.setattr(registry, "open_url", spy)
    return seen


@pytest.fixture
def site(tmp_path):
    """A fake download site: a plain file and a zip with two members, served by file:// URLs."""
    d = tmp_path / "site"
    d.mkdir()
    model = b"TFL3 pretend model bytes" * 100
    (d / "m.tflite").write_bytes(model)
    labels = b"???\ncat\ndog\n"
    inner = b"detector bytes" * 50
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("detect.tflite", inner)
        z.writestr("labelmap.txt", labels)
    (d / "bundle.zip").write_bytes(buf.getvalue())
    return {"dir": d, "model": model, "labels": labels, "inner": inner}


def make_registry(site, **overrides) -> Registry:
    d = site["dir"]
    files = {
        "m.tflite": {"url": (d / "m.tflite").as_uri(), "sha256": sha(site["model"])},
        "det.tflite": {
            "url": (d / "bundle.zip").as_uri(),
            "member": "detect.tflite",
            "sha256": sha(site["inner"]),
        },
        "labels.txt": {
            "url": (d / "bundle.zip").as_uri(),
            "member": "labelmap.txt",
            "sha256": sha(site["labels"]),
        },
    }
    for name, patch in overrides.items():
        files[name] = {**files[name], **patch}
    models = {
        "m": {"file": "m.tflite", "task": "classify", "labels": ["a", "b"]},
        "det": {
            "file": "det.tflite",
            "task": "detect",
            "labels_file": "labels.txt",
            "label_offset": 1,
            "aliases": ["d"],
        },
    }
    return Registry({"default": "m", "files": files, "models": models}, "<test>")


def leftovers(cache: Cache) -> list[str]:
    return sorted(p.name for p in cache.models_dir.iterdir()) if cache.models_dir.exists() else []


# ---------------------------------------------------------------- the shipped registry


def test_shipped_registry_matches_the_shared_models(models_dir):
    reg = Registry.load()
    assert reg.default == "mnist"
    assert {"mnist", "ssd_mobilenet_v1", "person_detect", "micro_speech", "hello_world"} <= set(reg.names())
    cache = Cache(reg, mirror=models_dir)
    for name, f in reg.files.items():
        # every sha256 in the registry is the one of the shared copy (SOURCES.md)
        assert registry.sha256_file(models_dir / name) == f.sha256, name
        assert cache.path(name) == models_dir / name
    assert reg.files["ssd_mobilenet_v1_coco_uint8.tflite"].member == "detect.tflite"
    assert reg.files["coco_labelmap.txt"].member == "labelmap.txt"


def test_shipped_labels(models_dir):
    reg = Registry.load()
    cache = Cache(reg, mirror=models_dir)
    assert cache.labels(reg.model("mnist")) == [str(i) for i in range(10)]
    person = reg.model("person")  # alias
    assert person.name == "person_detect" and cache.labels(person)[1] == "person"
    assert cache.labels(reg.model("micro_speech")) == ["silence", "unknown", "yes", "no"]
    ssd = reg.model("ssd")
    coco = cache.labels(ssd)
    assert len(coco) == 91 and coco[0] == "???"
    from engine.postprocess import label_for

    # class c -> line c + 1 (README of shared/): class 0 is person, class 66 the dining table of table.jpg
    assert label_for(coco, 0, ssd.label_offset) == "person"
    assert label_for(coco, 66, ssd.label_offset) == "dining table"
    assert ssd.preprocess == {"kind": "raw", "resize": "nearest"}


def test_registry_found_through_env_and_package(tmp_path, monkeypatch):
    assert registry.default_registry_path().name == "registry.json"
    custom = tmp_path / "r.json"
    custom.write_text(json.dumps({"files": {}, "models": {}}))
    monkeypatch.setenv("ENGINE_REGISTRY", str(custom))
    assert registry.default_registry_path() == custom
    with pytest.raises(FetchError, match="models"):
        Registry.load()
    packaged = registry._PKG / "_registry" / "registry.json"
    if packaged.exists():  # an installed copy must be the canonical file
        assert packaged.read_bytes() == (ROOT / "models" / "registry.json").read_bytes()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["files"]["m.tflite"].update(sha256="abc"), "64 hex"),
        (lambda d: d["models"]["m"].update(file="missing.tflite"), "not in 'files'"),
        (lambda d: d["models"]["m"].update(task="dance"), "task"),
        (lambda d: d["models"]["det"].update(aliases=["m"]), "twice"),
        (lambda d: d.update(default="nope"), "default"),
        (lambda d: d["models"]["m"].update(preprocess={"kind": "zscore"}), "kind"),
        (
            lambda d: d["files"].update({"../evil": {"url": "file:///x", "sha256": "0" * 64}}),
            "plain file name",
        ),
    ],
)
def test_registry_validation(site, mutate, message):
    data = {
        "default": "m",
        "files": {"m.tflite": {"url": "file:///x", "sha256": "0" * 64}},
        "models": {"m": {"file": "m.tflite"}, "det": {"file": "m.tflite"}},
    }
    mutate(data)
    with pytest.raises(FetchError, match=message):
        Registry(data, "<test>")


def test_unknown_model_lists_the_known_ones(site):
    with pytest.raises(FetchError, match="unknown model 'resnet'.*m, det"):
        make_registry(site).model("resnet")


# ---------------------------------------------------------------- download and cache


def test_download_verify_and_reuse(site, calls):
    cache = Cache(make_registry(site))
    p = cache.path("m.tflite")
    assert p == cache.models_dir / "m.tflite" and p.read_bytes() == site["model"]
    assert len(calls) == 1
    assert cache.path("m.tflite") == p and len(calls) == 1  # served from the cache
    assert leftovers(cache) == ["m.tflite"]  # no temporary files
    mode = stat.S_IMODE(p.stat().st_mode)
    assert mode & 0o044 == 0o044 & ~_umask()  # as readable as a normally written file


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_corrupt_cache_is_detected_and_fetched_again(site, calls):
    cache = Cache(make_registry(site))
    p = cache.path("m.tflite")
    p.write_bytes(b"bit rot")
    assert cache.cached("m.tflite") is None and not p.exists()  # the bad copy is removed
    assert cache.path("m.tflite").read_bytes() == site["model"]
    assert len(calls) == 2


def test_wrong_hash_download_is_an_error_and_not_kept(site, calls):
    cache = Cache(make_registry(site, **{"m.tflite": {"sha256": "1" * 64}}))
    with pytest.raises(FetchError, match=r"m\.tflite: sha256 .* does not match .*discarded"):
        cache.path("m.tflite")
    assert leftovers(cache) == []


def test_corrupt_download_via_patched_network(site, monkeypatch):
    cache = Cache(make_registry(site))
    monkeypatch.setattr(registry, "open_url", lambda url, timeout: io.BytesIO(site["model"][:-1] + b"X"))
    with pytest.raises(FetchError, match="does not match"):
        cache.path("m.tflite")
    assert leftovers(cache) == []


@pytest.mark.parametrize(
    "error, message",
    [
        (urllib.error.HTTPError("u", 404, "Not Found", {}, None), "HTTP 404 Not Found"),
        (urllib.error.URLError(TimeoutError("timed out")), "timed out after"),
        (TimeoutError("read timed out"), "timed out after"),
        (urllib.error.URLError("Name or service not known"), "Name or service not known"),
        (ConnectionResetError(104, "Connection reset by peer"), "Connection reset"),
    ],
)
def test_network_failures_are_fetch_errors(site, monkeypatch, error, message):
    cache = Cache(make_registry(site), timeout=3)

    def fail(url, timeout):
        assert timeout == 3
        raise error

    monkeypatch.setattr(registry, "open_url", fail)
    with pytest.raises(FetchError, match=message):
        cache.path("m.tflite")
    assert leftovers(cache) == []


def test_missing_url_target(site):
    cache = Cache(make_registry(site, **{"m.tflite": {"url": (site["dir"] / "gone.tflite").as_uri()}}))
    with pytest.raises(FetchError, match="gone.tflite"):
        cache.path("m.tflite")


def test_offline_refuses_the_network(site, calls, monkeypatch):
    monkeypatch.setenv("ENGINE_OFFLINE", "1")
    with pytest.raises(FetchError, match="ENGINE_OFFLINE"):
        Cache(make_registry(site)).path("m.tflite")
    assert calls == []


# ---------------------------------------------------------------- archive members


def test_archive_member_is_extracted_verified_and_its_sibling_cached(site, calls):
    cache = Cache(make_registry(site))
    p = cache.path("det.tflite")
    assert p.read_bytes() == site["inner"]
    assert len(calls) == 1
    # the labelmap came from the same download
    assert cache.labels(make_registry(site).model("d")) == ["???", "cat", "dog"]
    assert len(calls) == 1
    assert leftovers(cache) == ["det.tflite", "labels.txt"]


def test_archive_member_hash_mismatch(site, calls):
    cache = Cache(make_registry(site, **{"det.tflite": {"sha256": "2" * 64}}))
    with pytest.raises(FetchError, match="member 'detect.tflite' sha256 .* not kept"):
        cache.path("det.tflite")
    assert "det.tflite" not in leftovers(cache)
    assert not any(n.endswith(".download") for n in leftovers(cache))


def test_archive_without_the_member_and_bad_archives(site, tmp_path):
    cache = Cache(make_registry(site, **{"det.tflite": {"member": "model.tflite"}}))
    with pytest.raises(FetchError, match="no member 'model.tflite'"):
        cache.path("det.tflite")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK but not really")
    cache = Cache(make_registry(site, **{"det.tflite": {"url": junk.as_uri(), "sha256": "3" * 64}}))
    with pytest.raises(FetchError, match="not a valid zip"):
        cache.path("det.tflite")
    assert leftovers(cache) == []


# ---------------------------------------------------------------- mirror


def test_mirror_is_used_in_place_without_network(site, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "m.tflite").write_bytes(site["model"])
    monkeypatch.setattr(registry, "open_url", lambda *a: pytest.fail("network used"))
    cache = Cache(make_registry(site), mirror=mirror)
    assert cache.path("m.tflite") == mirror / "m.tflite"
    monkeypatch.setenv("ENGINE_MODEL_MIRROR", str(mirror))  # the environment variable works the same
    assert Cache(make_registry(site)).path("m.tflite") == mirror / "m.tflite"


def test_mirror_holding_the_archive(site, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "bundle.zip").write_bytes((site["dir"] / "bundle.zip").read_bytes())
    monkeypatch.setattr(registry, "open_url", lambda *a: pytest.fail("network used"))
    cache = Cache(make_registry(site), mirror=mirror)
    assert cache.path("det.tflite").read_bytes() == site["inner"]


def test_corrupt_mirror_file_is_an_error(site, tmp_path, calls):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "m.tflite").write_bytes(b"truncated")
    with pytest.raises(FetchError, match=r"m\.tflite: sha256 .* \(corrupt mirror\?\)"):
        Cache(make_registry(site), mirror=mirror).path("m.tflite")
    assert calls == []


def test_missing_mirror_folder_is_an_error(site, tmp_path, calls):
    with pytest.raises(FetchError, match="mirror folder .*does not exist"):
        Cache(make_registry(site), mirror=tmp_path / "no-such-mirror").path("m.tflite")
    assert calls == []


def test_file_absent_from_the_mirror_is_downloaded(site, tmp_path, calls):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    assert Cache(make_registry(site), mirror=mirror).path("m.tflite").read_bytes() == site["model"]
    assert len(calls) == 1


def test_cache_is_checked_before_the_mirror(site, tmp_path, calls):
    cache = Cache(make_registry(site), mirror=tmp_path / "no-such-mirror")
    cache.models_dir.mkdir(parents=True)
    (cache.models_dir / "m.tflite").write_bytes(site["model"])
    assert cache.path("m.tflite") == cache.models_dir / "m.tflite"
    assert calls == []


# ---------------------------------------------------------------- atomic writes


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        assert tmp.suffix == ".npz" and tmp.parent == tmp_path
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]
    atomic.write_text(tmp_path / "sub" / "new.txt", "hello")
    assert (tmp_path / "sub" / "new.txt").read_text() == "hello"


# ---------------------------------------------------------------- model loading through the cache


def test_npz_export_is_made_once(models_dir, monkeypatch):
    # hello_world: the shared model whose ops the engine ran first
    cache = Cache(mirror=models_dir)
    entry = cache.registry.model("hello_world")
    m1 = cache.load_model(entry)
    exports = sorted(cache.npz_dir.glob("*.npz"))
    assert len(exports) == 1 and m1.source == str(models_dir / "hello_world_int8.tflite")
    stamp = exports[0].stat().st_mtime_ns
    m2 = cache.load_model(entry)
    assert exports[0].stat().st_mtime_ns == stamp  # made once
    assert m2.source == m1.source  # loaded from the verified .tflite, never from the export
    # a damaged export is rebuilt
    exports[0].write_bytes(exports[0].read_bytes()[:-10])
    m3 = cache.load_model(entry)
    m4 = engine.load(exports[0])
    from tests.oracle import reference_run

    x = np.array([[-128], [0], [64], [127]], np.int8)
    want = reference_run(models_dir / "hello_world_int8.tflite", [x], preserve_all=False)["outputs"][0]
    for m in (m1, m2, m3, m4):
        assert np.array_equal(m.run(x)[0], want)


def test_resolve_names_paths_and_aliases(models_dir, tmp_path, monkeypatch):
    res = registry.resolve("hello_world", mirror=models_dir)
    assert res.entry.name == "hello_world" and res.entry.task == "regress"
    res = registry.resolve(str(models_dir / "hello_world_int8.tflite"))
    # a file the registry knows (same sha256) brings its entry: task, labels, preprocessing
    assert res.entry.name == "hello_world" and res.name == "hello_world_int8.tflite"
    other = tmp_path / "other.tflite"
    other.write_bytes((models_dir / "hello_world_int8.tflite").read_bytes() + b"\0" * 16)  # another sha256
    assert registry.resolve(str(other)).entry is None
    labels = tmp_path / "l.txt"
    labels.write_text("low\nhigh\n")
    assert registry.resolve(str(models_dir / "hello_world_int8.tflite"), labels_path=labels).labels == [
        "low",
        "high",
    ]
    # a folder named like a registry model does not shadow it
    (tmp_path / "hello_world").mkdir()
    monkeypatch.chdir(tmp_path)
    assert registry.resolve("hello_world", mirror=models_dir).entry is not None
    with pytest.raises(FetchError, match="unknown model"):
        registry.resolve("no_such_model", mirror=models_dir)


def test_files_in_a_mirror_subfolder(site, tmp_path, calls):
    # the zoo's files live in the mirror's zoo/ folder: the registry names them "zoo/<file>"
    data = {
        "files": {"zoo/m.tflite": {"url": (site["dir"] / "m.tflite").as_uri(), "sha256": sha(site["model"])}},
        "models": {"z": {"file": "zoo/m.tflite"}},
    }
    zreg = Registry(data, "<zoo>")
    mirror = tmp_path / "mirror"
    (mirror / "zoo").mkdir(parents=True)
    (mirror / "zoo" / "m.tflite").write_bytes(site["model"])
    assert Cache(zreg, mirror=mirror).path("zoo/m.tflite") == mirror / "zoo" / "m.tflite"
    assert calls == []
    got = Cache(zreg).path("zoo/m.tflite")  # no mirror: downloaded into the cache's zoo/ folder
    assert got == Cache(zreg).models_dir / "zoo" / "m.tflite" and got.read_bytes() == site["model"]
    assert len(calls) == 1
    for bad in ("/abs/m.tflite", "zoo/../../m.tflite", "zoo//m.tflite", "zoo\\m.tflite"):
        with pytest.raises(FetchError, match="plain file name or folder/name"):
            Registry({"files": {bad: data["files"]["zoo/m.tflite"]}, "models": {"z": {"file": bad}}}, "<bad>")


def test_mirror_only_does_not_download(site, tmp_path, calls):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with pytest.raises(FetchError, match=r"m\.tflite: not in the mirror .*nothing is downloaded"):
        Cache(make_registry(site), mirror=mirror, mirror_only=True).path("m.tflite")
    assert calls == []


def test_download_failure_names_the_model_and_the_fix(site, monkeypatch):
    def fail(url, timeout):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(registry, "open_url", fail)
    cache = Cache(make_registry(site))
    with pytest.raises(
        FetchError, match=r"model m: m\.tflite: download failed .*ENGINE_MODEL_MIRROR.*--mirror"
    ):
        cache.load_model(cache.registry.model("m"))


def test_shipped_zoo_entries(models_dir):
    reg = Registry.load()
    cache = Cache(reg, mirror=models_dir)
    for name, task in [
        ("yolov8n", "detect"),
        ("deeplabv3", "segment"),
        ("movenet", "pose"),
        ("traffic", "detect"),
    ]:
        e = reg.model(name)
        assert e.task == task and e.file.startswith("zoo/") and reg.files[e.file].url.startswith("https://")
    assert cache.labels(reg.model("yolov8n"))[16] == "dog"  # from the Ultralytics metadata.yaml
    assert cache.labels(reg.model("deeplabv3"))[3] == "bird"
    assert len(cache.labels(reg.model("mobilenet_v2"))) == 1001
    assert reg.model("yolov8n").preprocess["letterbox"] == 114
    assert "int16x8_mixed.tflite" not in str(reg.files)  # no public origin: mirror-only, not in the registry
