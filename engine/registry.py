"""The model registry, the download cache and the offline mirror.

The registry (models/registry.json; shipped inside the package as engine/_registry/registry.json)
names every model: its file, public URL (optionally a member of a zip archive), sha256, labels, task
and input preprocessing. Files are looked up, in order:

1. the cache, $ENGINE_HOME/models/<file> (default ~/.cache/engine), re-verified by sha256 each time
   (a corrupt cached file is deleted and fetched again);
2. the mirror folder ($ENGINE_MODEL_MIRROR or --mirror), holding files under their registry names
   (e.g. ssd_mobilenet_v1_coco_uint8.tflite) or the archive under its URL's base name; used in place;
3. the network (urllib, timeout), unless $ENGINE_OFFLINE is set: downloaded into a temporary file
   beside the cache, sha256 verified, then renamed into place. A mismatch raises FetchError and the
   bad file is not kept. Archive members are extracted and verified one by one, and every registered
   member of the same archive is cached from the one download.

Loaded models are exported once to the engine's .npz format ($ENGINE_HOME/npz/), with the source's
sha256 and the engine version inside; models are always loaded from the verified .tflite, never from
the export (which anyone who can write the cache could edit).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from . import atomic
from .errors import EngineError, FetchError, ModelFormatError
from .formats.npz import save_npz

ENV_HOME = "ENGINE_HOME"
ENV_MIRROR = "ENGINE_MODEL_MIRROR"
ENV_REGISTRY = "ENGINE_REGISTRY"
ENV_OFFLINE = "ENGINE_OFFLINE"
TIMEOUT_S = 60.0
MAX_DOWNLOAD_BYTES = 1 << 30
TASKS = ("classify", "detect", "segment", "pose", "regress")
_PKG = Path(__file__).resolve().parent


def _registry_candidates() -> list[Path]:
    paths = []
    if os.environ.get(ENV_REGISTRY):
        paths.append(Path(os.environ[ENV_REGISTRY]).expanduser())
    paths.append(_PKG / "_registry" / "registry.json")  # installed (package data)
    paths.append(_PKG.parent / "models" / "registry.json")  # source checkout / editable install
    return paths


def default_registry_path() -> Path:
    for p in _registry_candidates():
        if p.is_file():
            return p
    raise FetchError(f"model registry not found (looked in {', '.join(map(str, _registry_candidates()))})")


def home(override: str | os.PathLike | None = None) -> Path:
    """The cache root: override, else $ENGINE_HOME, else ~/.cache/engine."""
    return Path(override or os.environ.get(ENV_HOME) or Path.home() / ".cache" / "engine").expanduser()


def mirror_dir(override: str | os.PathLike | None = None) -> Path | None:
    value = override or os.environ.get(ENV_MIRROR)
    return Path(value).expanduser() if value else None


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class FileEntry:
    name: str
    url: str
    sha256: str
    member: str | None = None  # a member of the zip archive at url
    license: str | None = None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    file: str
    task: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    labels: tuple[str, ...] | None = None
    labels_file: str | None = None
    label_offset: int = 0  # label of class c is labels[c + label_offset] (COCO labelmap: line 0 is "???")
    score_threshold: float | None = None
    preprocess: dict | None = None  # None: the input is not an image
    sample: list | None = None  # default input (float values, quantized) for non-image models
    extra: dict = field(default_factory=dict, compare=False, repr=False)


def _relative_name(name: str) -> bool:
    """A registry file name: 'x.tflite' or 'zoo/x.tflite' (the mirror's layout), never leaving the folder."""
    parts = name.split("/")
    return bool(name) and "\\" not in name and all(p not in ("", ".", "..") for p in parts)


class UnknownModelError(FetchError):
    """A model name the registry does not know: a usage error (exit 2), with the closest names."""

    exit_code = 2


def _bad(source: str, msg: str) -> FetchError:
    return FetchError(f"model registry {source}: {msg}")


# model fields and the types they must have (a registry file is user data)
FIELD_TYPES = {
    "file": (str,),
    "labels_file": (str, type(None)),
    "task": (str,),
    "description": (str,),
    "label_offset": (int,),
    "score_threshold": (int, float, type(None)),
    "preprocess": (dict, type(None)),
    "sample": (str, list, type(None)),
}


def _check_types(source: str, name: str, m: dict) -> None:
    for key, types in FIELD_TYPES.items():
        v = m.get(key)
        if key in m and (isinstance(v, bool) or not isinstance(v, types)):
            want = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise _bad(source, f"model {name!r}: {key} must be {want}, got {v!r}")
    aliases = m.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise _bad(source, f"model {name!r}: aliases must be a list of strings, got {aliases!r}")


class Registry:
    """A validated registry: files by name, models by name or alias."""

    def __init__(self, data: dict, source: str = "<registry>"):
        self.source = source
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict) or not data["models"]:
            raise _bad(source, "expected an object with 'models' (and 'files')")
        files = data.get("files", {})
        if not isinstance(files, dict):
            raise _bad(source, "'files' must be an object")
        self.files: dict[str, FileEntry] = {}
        for name, f in files.items():
            if (
                not isinstance(f, dict)
                or not isinstance(f.get("url"), str)
                or not isinstance(f.get("sha256"), str)
            ):
                raise _bad(source, f"file {name!r}: needs 'url' and 'sha256'")
            sha = f["sha256"].lower()
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise _bad(source, f"file {name!r}: sha256 must be 64 hex digits")
            if not isinstance(f.get("member"), (str, type(None))):
                raise _bad(source, f"file {name!r}: member must be a string")
            if not _relative_name(name):
                raise _bad(source, f"file {name!r}: must be a plain file name or folder/name (no '..')")
            self.files[name] = FileEntry(name, f["url"], sha, f.get("member"), f.get("license"))
        self.models: dict[str, ModelEntry] = {}
        self._alias: dict[str, str] = {}
        for name, m in data["models"].items():
            self.models[name] = entry = self._model(name, m)
            for key in (name, *entry.aliases):
                if key in self._alias:
                    raise _bad(source, f"model name or alias {key!r} used twice")
                self._alias[key] = name
        self.default = data.get("default", next(iter(self.models)))
        if not isinstance(self.default, str) or self.default not in self.models:
            raise _bad(source, f"default model {self.default!r} is not in 'models'")

    def _model(self, name: str, m: dict) -> ModelEntry:
        src = self.source
        if not isinstance(m, dict):
            raise _bad(src, f"model {name!r}: expected an object")
        _check_types(src, name, m)
        for key in ("file", "labels_file"):
            if m.get(key) is not None and m[key] not in self.files:
                raise _bad(src, f"model {name!r}: {key} {m[key]!r} is not in 'files'")
        if "file" not in m:
            raise _bad(src, f"model {name!r}: needs 'file'")
        task = m.get("task", "classify")
        if task not in TASKS:
            raise _bad(src, f"model {name!r}: task {task!r} is not one of {', '.join(TASKS)}")
        labels = m.get("labels")
        if labels is not None and (
            not isinstance(labels, list) or not all(isinstance(s, str) for s in labels)
        ):
            raise _bad(src, f"model {name!r}: labels must be a list of strings")
        pre = m.get("preprocess")
        if pre is not None:
            from .preprocess import Spec  # validates the spec now, not at the first image

            try:
                Spec.from_dict(pre)
            except EngineError as e:
                raise _bad(src, f"model {name!r}: {e}") from None
        known = set(ModelEntry.__dataclass_fields__) - {"name", "extra"}
        return ModelEntry(
            name=name,
            file=m["file"],
            task=task,
            description=m.get("description", ""),
            aliases=tuple(m.get("aliases", ())),
            labels=tuple(labels) if labels is not None else None,
            labels_file=m.get("labels_file"),
            label_offset=int(m.get("label_offset", 0)),
            score_threshold=m.get("score_threshold"),
            preprocess=pre,
            sample=m.get("sample"),
            extra={k: v for k, v in m.items() if k not in known},
        )

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> Registry:
        path = Path(path) if path else default_registry_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as e:
            raise FetchError(f"model registry {path}: cannot read ({e.strerror})") from None
        except ValueError as e:
            raise _bad(str(path), f"invalid JSON ({e})") from None
        return cls(data, str(path))

    def names(self) -> list[str]:
        return list(self.models)

    def has(self, name: str) -> bool:
        return name in self._alias

    def model(self, name: str | None = None) -> ModelEntry:
        key = self.default if name is None else name
        if key not in self._alias:
            raise UnknownModelError(self._unknown(key))
        return self.models[self._alias[key]]

    def _unknown(self, key: str) -> str:
        import difflib

        close = difflib.get_close_matches(key.lower(), list(self._alias), n=3, cutoff=0.5)
        close += [k for k in self._alias if key and key.lower() in k.lower() and k not in close]
        names = list(dict.fromkeys(self._alias[k] for k in close))  # closest first, each model once
        hint = f"did you mean {' or '.join(names)}? " if names else ""
        aliases = ", ".join(f"{a} = {n}" for a, n in self._alias.items() if a != n)
        return (
            f"unknown model {key!r}: {hint}the registry has {', '.join(self.names())}"
            + (f" (aliases: {aliases})" if aliases else "")
            + "; a model file needs a .tflite/.npz name or a path (python -m engine.run --list-models)"
        )

    def by_sha256(self, sha: str) -> ModelEntry | None:
        """The registry model whose file has this sha256 (a known model given as a file), or None."""
        for entry in self.models.values():
            if self.files[entry.file].sha256 == sha:
                return entry
        return None


# ---------------------------------------------------------------- the network (tests monkeypatch this)


def open_url(url: str, timeout: float):
    """urlopen with a User-Agent; file:// URLs work too (tests use them)."""
    import urllib.request  # (with ssl and http: 40 ms that loading a cached model does not need)

    req = urllib.request.Request(url, headers={"User-Agent": "engine-model-fetch/1"})
    return urllib.request.urlopen(req, timeout=timeout)


def _progress(total: int | None, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # progress is cosmetic
        return contextlib.nullcontext(None)
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, file=sys.stderr, disable=None, leave=False)


# ---------------------------------------------------------------- the cache


class Cache:
    """Verified local copies of registry files, and the .npz exports of loaded models."""

    def __init__(
        self,
        registry: Registry | None = None,
        home_dir: str | os.PathLike | None = None,
        mirror: str | os.PathLike | None = None,
        timeout: float = TIMEOUT_S,
        offline: bool | None = None,
        mirror_only: bool = False,
    ):
        """mirror_only: a file missing from the mirror is an error, not a download (the CLI's --mirror)."""
        self.registry = registry or Registry.load()
        self.home = home(home_dir)
        self.mirror = mirror_dir(mirror)
        self.mirror_only = mirror_only and self.mirror is not None
        self.timeout = timeout
        self.offline = bool(os.environ.get(ENV_OFFLINE)) if offline is None else offline

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def npz_dir(self) -> Path:
        return self.home / "npz"

    def cached(self, name: str) -> Path | None:
        """The cached copy of a registry file if present and intact (a corrupt one is removed)."""
        entry = self._file(name)
        p = self.models_dir / name
        if not p.is_file():
            return None
        if sha256_file(p) == entry.sha256:
            return p
        with contextlib.suppress(OSError):
            p.unlink()
        return None

    def path(self, name: str) -> Path:
        """A local, sha256-verified path of a registry file: cache, then mirror, then network."""
        entry = self._file(name)
        p = self.cached(name)
        if p is not None:
            return p
        if self.mirror is not None:
            p = self._from_mirror(entry)
            if p is not None:
                return p
            if self.mirror_only:
                raise FetchError(
                    f"{name}: not in the mirror {self.mirror} (--mirror: nothing is downloaded); "
                    f"copy it there from {entry.url}, or leave out --mirror to download it"
                )
        if self.offline:
            where = f"the cache ({self.models_dir})" + (
                f" or the mirror ({self.mirror})" if self.mirror else ""
            )
            raise FetchError(f"{name}: not in {where}, and ${ENV_OFFLINE} forbids downloading {entry.url}")
        try:
            return self._download(entry)
        except FetchError as e:
            raise FetchError(f"{name}: download failed ({e}); {self._fix_hint()}") from None

    def _fix_hint(self) -> str:
        if self.mirror is not None:
            return f"the mirror {self.mirror} does not hold it either: copy the file there"
        return (
            f"offline, point ${ENV_MIRROR} (or --mirror DIR) at a folder holding the model files "
            f"(files under their registry names), or copy the file into {self.models_dir}"
        )

    def _file(self, name: str) -> FileEntry:
        if name not in self.registry.files:
            raise FetchError(f"{name!r} is not a file of the model registry")
        return self.registry.files[name]

    def _from_mirror(self, entry: FileEntry) -> Path | None:
        m = self.mirror
        if not m.is_dir():
            raise FetchError(f"mirror folder {m} does not exist (set by --mirror or ${ENV_MIRROR})")
        p = m / entry.name
        if p.is_file():
            got = sha256_file(p)
            if got != entry.sha256:
                raise FetchError(
                    f"{p}: sha256 {got} does not match the registry's {entry.sha256} (corrupt mirror?)"
                )
            return p
        archive = m / Path(urlparse(entry.url).path).name
        if entry.member and archive.is_file():
            self._extract(archive, entry, str(archive))
            return self.models_dir / entry.name
        return None

    def _download(self, entry: FileEntry) -> Path:
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{Path(entry.name).name}.", suffix=".download", dir=self.models_dir
            )
        except OSError as e:
            raise FetchError(
                f"cache folder {self.models_dir}: cannot write there ({e.strerror or e}); set ${ENV_HOME}"
            ) from None
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                got = self._stream(entry.url, out, entry.name)
            if entry.member:
                self._extract(tmp, entry, entry.url)
                return self.models_dir / entry.name
            if got != entry.sha256:
                raise FetchError(
                    f"{entry.url}: sha256 {got} does not match the registry's {entry.sha256}; download discarded"
                )
            atomic_target = self.models_dir / entry.name
            atomic_target.parent.mkdir(parents=True, exist_ok=True)
            atomic.plain_mode(tmp)
            os.replace(tmp, atomic_target)
            return atomic_target
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _stream(self, url: str, out, desc: str) -> str:
        h = hashlib.sha256()
        size = 0
        try:
            with open_url(url, self.timeout) as r:
                length = r.headers.get("Content-Length") if getattr(r, "headers", None) else None
                with _progress(int(length) if length and length.isdigit() else None, desc) as bar:
                    while chunk := r.read(1 << 20):
                        size += len(chunk)
                        if size > MAX_DOWNLOAD_BYTES:
                            raise FetchError(f"{url}: larger than {MAX_DOWNLOAD_BYTES >> 20} MiB, refused")
                        h.update(chunk)
                        out.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
        except urllib.error.HTTPError as e:
            raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError):
                raise FetchError(f"{url}: timed out after {self.timeout:g} s") from None
            raise FetchError(f"{url}: {reason}") from None
        except TimeoutError:
            raise FetchError(f"{url}: timed out after {self.timeout:g} s") from None
        except (OSError, ValueError) as e:  # connection resets, bad URLs
            raise FetchError(f"{url}: {e}") from None
        return h.hexdigest()

    def _extract(self, archive: Path, wanted: FileEntry, where: str) -> None:
        """Cache every registered member of this archive that verifies; the wanted one must."""
        siblings = [f for f in self.registry.files.values() if f.member and f.url == wanted.url]
        if wanted not in siblings:
            siblings.append(wanted)
        try:
            with zipfile.ZipFile(archive) as z:
                names = set(z.namelist())
                if wanted.member not in names:
                    raise FetchError(f"{where}: the archive has no member {wanted.member!r}")
                for f in siblings:
                    if f.member not in names:
                        continue
                    info = z.getinfo(f.member)
                    if info.file_size > MAX_DOWNLOAD_BYTES:
                        raise FetchError(f"{where}: member {f.member!r} is too large")
                    data = z.read(f.member)
                    got = hashlib.sha256(data).hexdigest()
                    if got != f.sha256:
                        if f is wanted:
                            raise FetchError(
                                f"{where}: member {f.member!r} sha256 {got} does not match the registry's "
                                f"{f.sha256}; not kept"
                            )
                        continue
                    atomic.write_bytes(self.models_dir / f.name, data)
        except zipfile.BadZipFile as e:
            raise FetchError(f"{where}: not a valid zip archive ({e})") from None
        except (OSError, EOFError) as e:
            raise FetchError(f"{where}: cannot extract from the archive ({e})") from None

    # ------------------------------------------------------------ models and labels

    def labels(self, entry: ModelEntry) -> list[str] | None:
        if entry.labels is not None:
            return list(entry.labels)
        if entry.labels_file:
            return read_labels(self.path(entry.labels_file))
        return None

    def load_model(self, entry: ModelEntry, numerics: str = "reference", warmup: bool = True):
        """engine.load() of a registry model, from its sha256-verified .tflite.

        The .npz export ($ENGINE_HOME/npz) is written once beside it, with the .tflite's sha256 and
        the engine version inside (graph.json "provenance"), but it is never what gets loaded: a cache
        file can be edited together with the sidecar that vouches for it, the verified .tflite cannot,
        and importing the .tflite costs what reading the export does (SSD: 0.10 s and 0.09 s).
        A fetch error names the model and the fix.
        """
        try:
            return self._load_model(entry, numerics, warmup)
        except FetchError as e:
            raise type(e)(f"model {entry.name}: {e}") from None

    def _load_model(self, entry: ModelEntry, numerics: str, warmup: bool):
        from . import load

        src = self.path(entry.file)
        sha = self.registry.files[entry.file].sha256
        model = load(src, numerics=numerics, warmup=warmup)
        npz = self.npz_dir / f"{Path(entry.file).stem}.{sha[:16]}.{_exporter_fingerprint()}.npz"
        provenance = {"source": entry.file, "source_sha256": sha, "engine": _engine_version()}
        if _export_provenance(npz) != provenance:
            # a read-only cache only loses the export
            with contextlib.suppress(OSError), atomic.atomic_path(npz) as tmp:
                save_npz(model.graph, tmp, provenance)
        return model

    def clear(self) -> None:
        """Delete the cache folder's models and exports."""
        for d in (self.models_dir, self.npz_dir):
            shutil.rmtree(d, ignore_errors=True)


def _engine_version() -> str:
    """The package version and the fingerprint of the code that builds graphs."""
    try:
        from importlib.metadata import version

        release = version("engine")
    except Exception:  # noqa: BLE001 (not installed: a source checkout)
        release = "source"
    return f"{release}+{_exporter_fingerprint()}"


def _export_provenance(npz: Path) -> dict | None:
    """The provenance an export carries inside (None when it is missing or unreadable)."""
    try:
        with zipfile.ZipFile(npz) as z, z.open("graph.json.npy") as f:
            version = np.lib.format.read_magic(f)
            fmt = np.lib.format
            (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
            return json.loads(f.read(64 << 20)).get("provenance")
    except Exception:  # noqa: BLE001 (missing, truncated, not a zip, not JSON: rewrite it)
        return None


def _exporter_fingerprint() -> str:
    """Changes whenever the code that builds or stores graphs changes, so old exports are not reused."""
    h = hashlib.sha256()
    for name in ("graph.py", "formats/tflite.py", "formats/flatbuffer.py", "formats/tflite_schema.py", "formats/npz.py"):
        with contextlib.suppress(OSError):
            h.update((_PKG / name).read_bytes())
    return h.hexdigest()[:12]


# ---------------------------------------------------------------- one-call helpers


@dataclass
class Resolved:
    """A model ready to run, with what the registry says about it (entry None for a plain file)."""

    model: object
    name: str
    entry: ModelEntry | None
    labels: list[str] | None
    source: str
    labels_from: str | None = None  # where the labels came from, for messages


def _file_labels(path: Path, data: bytes) -> tuple[list[str] | None, str | None]:
    """Labels a model file brings: its appended archive, else an Ultralytics *metadata.yaml beside it."""
    from . import labels as lab

    found, where = lab.from_model_bytes(data)
    if found:
        return found, where
    stem = path.stem
    for yaml in sorted(path.parent.glob("*metadata.yaml")):
        prefix = yaml.name[: -len("metadata.yaml")].rstrip("_-")
        if not prefix or stem.startswith(prefix):
            with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
                return lab.from_file(yaml), str(yaml)
    return None, None


def is_model_path(value: str, registry: Registry | None = None) -> bool:
    """A .tflite/.npz name or anything with a path separator is a path; a bare registry name never is."""
    if value.lower().endswith((".tflite", ".npz")) or "/" in value or os.sep in value:
        return True
    return not (registry is not None and registry.has(value)) and Path(value).is_file()


def resolve(
    name_or_path: str | None = None,
    *,
    mirror: str | os.PathLike | None = None,
    cache: Cache | None = None,
    labels_path: str | os.PathLike | None = None,
    warmup: bool = True,
    numerics: str = "reference",
) -> Resolved:
    """A registry name (or alias; None = the default) or a .tflite/.npz path -> loaded model."""
    cache = cache or Cache(mirror=mirror)
    if name_or_path is not None and is_model_path(name_or_path, cache.registry):
        return _resolve_file(Path(name_or_path), cache, labels_path, warmup, numerics)
    entry = cache.registry.model(name_or_path)
    model = cache.load_model(entry, numerics=numerics, warmup=warmup)
    if labels_path:
        return Resolved(model, entry.name, entry, read_labels(labels_path), entry.file, str(labels_path))
    return Resolved(model, entry.name, entry, cache.labels(entry), entry.file, "the registry")


def _resolve_file(path: Path, cache: Cache, labels_path, warmup: bool, numerics: str) -> Resolved:
    """A model file: a file the registry knows (same sha256) gets its entry: labels, task, preprocessing."""
    from . import load

    try:
        data = path.read_bytes()
    except OSError as e:
        raise ModelFormatError(f"{path}: cannot read ({e.strerror})") from None
    model = load(data, warmup=warmup, numerics=numerics, name=str(path))
    entry = cache.registry.by_sha256(hashlib.sha256(data).hexdigest())
    if labels_path:
        labels, where = read_labels(labels_path), str(labels_path)
    elif entry is not None and (entry.labels is not None or entry.labels_file):
        labels, where = cache.labels(entry), f"the registry ({entry.name}, same sha256)"
    else:
        labels, where = _file_labels(path, data)
    return Resolved(model, path.name, entry, labels, str(path), where)


def read_labels(path: str | os.PathLike) -> list[str]:
    """One label per line (trailing empty lines dropped), or the `names:` of a .yaml file."""
    from . import labels as lab

    try:
        found = lab.from_file(path)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise FetchError(f"{path}: cannot read labels ({e})") from None
    while found and not found[-1]:
        found.pop()
    return found


def model_file(name: str | None = None, *, mirror: str | os.PathLike | None = None) -> Path:
    """The sha256-verified local path of a registry model's .tflite (cache, mirror, then network)."""
    cache = Cache(mirror=mirror)
    return cache.path(cache.registry.model(name).file)
