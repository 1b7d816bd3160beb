"""Datasets for whole-dataset evaluation, read item by item from paths (so that any process can read a shard).

    ds = open_dataset("photos/")              # images, recursive; a class per top-level subfolder
    ds = open_dataset("data/mnist")           # MNIST IDX files (*-images-idx3-ubyte[.gz] + labels)
    ds = open_dataset("x.npz")                # input tensors (x|inputs|images) with optional labels (y|labels)
    ds = open_dataset("x.npy", targets="y.npy")
    shard = ds.shard(0, 256)                  # small and picklable: paths and an index range, never pixels
    batch = shard.read(reader)                # -> (indices, inputs [n, ...], failures); a bad item is a failure

Labels (ImageFolder convention): the class folders, sorted, are classes 0..K-1, unless every folder name is
one of the model's labels (then its index there) or every name is an integer (then that integer).
Images directly in the root folder have no label.
"""

from __future__ import annotations

import functools
import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import EngineError, ImageError, InputError

IDX_IMAGES, IDX_LABELS = 2051, 2049
NPZ_INPUT_KEYS = ("x", "inputs", "images", "input")
NPZ_LABEL_KEYS = ("y", "labels", "label", "targets")


# ---------------------------------------------------------------- readers of whole files (cached per process)


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file (gzip or plain): 2049 = labels [N], 2051 = images [N, rows, cols]."""
    try:
        raw = Path(path).read_bytes()
        data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None
    if len(data) < 8 or int.from_bytes(data[:4], "big") != magic:
        raise InputError(f"{path}: not an IDX file with magic number {magic}")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise InputError(f"{path}: {body.size} bytes of data for dimensions {dims}")
    return body.reshape(dims)


def _stamp(path: str) -> tuple[str, int, int]:
    st = os.stat(path)
    return path, st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=4)
def _cached_idx(stamp: tuple[str, int, int], magic: int) -> np.ndarray:
    return read_idx(Path(stamp[0]), magic)


@functools.lru_cache(maxsize=4)
def _cached_array(stamp: tuple[str, int, int], key: str | None) -> np.ndarray:
    """A .npy memory-mapped (only the shard's rows are read), or one array of a .npz."""
    path = stamp[0]
    try:
        if key is None:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            return z[key]
    except (OSError, ValueError, EOFError, KeyError) as e:
        raise InputError(
            f"{path}: cannot read {'a .npy array' if key is None else repr(key)} ({e})"
        ) from None


def _array(path: str, key: str | None = None) -> np.ndarray:
    try:
        return _cached_array(_stamp(path), key)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None


def _idx(path: str, magic: int) -> np.ndarray:
    try:
        return _cached_idx(_stamp(path), magic)
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None


# ---------------------------------------------------------------- shards: what a worker reads


@dataclass(frozen=True)
class Failure:
    index: int
    item: str
    error: str

    def to_dict(self) -> dict:
        return {"index": self.index, "item": self.item, "error": self.error}


@dataclass(frozen=True)
class Shard:
    """Items start..stop-1 of a dataset: paths (images) or one file and a range (IDX, .npy, .npz)."""

    kind: str  # "images" | "idx" | "array"
    source: str
    start: int
    stop: int
    paths: tuple[str, ...] = ()
    key: str | None = None  # the .npz member

    def __len__(self) -> int:
        return self.stop - self.start

    def read(self, reader: ItemReader) -> tuple[np.ndarray, np.ndarray | None, list[Failure]]:
        """-> (indices of the items read, their inputs [n, ...] or None if none, failures)."""
        if self.kind == "images":
            items = ((self.start + k, p, p) for k, p in enumerate(self.paths))
            return _collect(items, reader.image)
        if self.kind == "idx":
            images = _idx(self.source, IDX_IMAGES)
            x = reader.pixels_many(images[self.start : self.stop])
            if x is not None:  # already the model's size: one vectorized pixel map
                return np.arange(self.start, self.stop, dtype=np.int64), x, []
            items = ((i, f"{self.source}[{i}]", images[i]) for i in range(self.start, self.stop))
            return _collect(items, reader.pixels)
        arr = _array(self.source, self.key)
        items = ((i, f"{self.source}[{i}]", arr[i]) for i in range(self.start, self.stop))
        return _collect(items, reader.tensor)


def _collect(items, read) -> tuple[np.ndarray, np.ndarray | None, list[Failure]]:
    ok, xs, failed = [], [], []
    for index, name, src in items:
        try:
            xs.append(read(src, name))
            ok.append(index)
        except EngineError as e:
            failed.append(Failure(index, name, str(e)))
        except (OSError, ValueError, MemoryError) as e:  # anything a corrupt item can raise while decoding
            failed.append(Failure(index, name, f"{type(e).__name__}: {e}"))
    x = np.stack(xs) if xs else None
    return np.asarray(ok, np.int64), x, failed


class ItemReader:
    """Turns one item (an image path, 8-bit pixels, or a tensor row) into a model input without batch axis."""

    def __init__(self, info, spec: dict | None, image_input: bool):
        from .preprocess import Preprocessor

        self.info = info
        self.pre = Preprocessor(info, spec) if image_input else None

    def _need_pre(self, name: str):
        if self.pre is None:
            raise InputError(f"{name}: the model's input {list(self.info.shape)} is not an image")
        return self.pre

    def image(self, path: str, name: str) -> np.ndarray:
        return self._need_pre(name)(path)

    def pixels(self, a: np.ndarray, name: str) -> np.ndarray:
        """8-bit pixels [H, W] or [H, W, C]: the pixel map only when already the model's size."""
        from .preprocess import apply_table

        pre = self._need_pre(name)
        a = np.asarray(a, np.uint8)
        same = a.shape[:2] == (pre.height, pre.width) and (a.ndim == 2) == (pre.channels == 1)
        if same and a.ndim == 2:
            x = apply_table(a[..., None] if pre._channel_axis else a, pre.table, pre.fast)
            return x
        if same and a.shape[2] == pre.channels:
            return apply_table(a, pre.table, pre.fast)
        return pre(a)

    def pixels_many(self, a: np.ndarray) -> np.ndarray | None:
        """8-bit gray images [n, H, W] at the model's size and channel count -> inputs; else None."""
        from .preprocess import apply_table

        pre = self.pre
        if pre is None or a.ndim != 3 or a.shape[1:] != (pre.height, pre.width) or pre.channels != 1:
            return None
        return apply_table(a[..., None] if pre._channel_axis else a, pre.table, pre.fast)

    def tensor(self, a: np.ndarray, name: str) -> np.ndarray:
        from .run import as_input

        return as_input(np.asarray(a), self.info, name)[0]


# ---------------------------------------------------------------- datasets: what the client knows


@dataclass
class Dataset:
    kind: str
    source: str
    paths: list[str] = field(default_factory=list)  # images only
    size: int = 0
    labels: np.ndarray | None = None  # int64 [size], -1 where an item has no label
    class_names: list[str] | None = None  # class folder names (images), else None
    key: str | None = None

    def __len__(self) -> int:
        return self.size

    def item(self, i: int) -> str:
        return self.paths[i] if self.kind == "images" else f"{self.source}[{i}]"

    def shard(self, start: int, stop: int) -> Shard:
        paths = tuple(self.paths[start:stop]) if self.kind == "images" else ()
        return Shard(self.kind, self.source, start, stop, paths, self.key)

    def limit(self, n: int) -> Dataset:
        """The first n items."""
        n = min(n, self.size)
        labels = None if self.labels is None else self.labels[:n]
        return Dataset(self.kind, self.source, self.paths[:n], n, labels, self.class_names, self.key)

    def fingerprint(self) -> dict:
        """What identifies the items (for resuming a run): kind, source, count, and a digest of the paths."""
        import hashlib

        h = hashlib.sha256("\n".join(self.paths).encode()).hexdigest()[:16] if self.paths else None
        return {
            "kind": self.kind,
            "source": self.source,
            "size": self.size,
            "paths_sha256": h,
            "key": self.key,
        }


def open_dataset(
    path: str | os.PathLike, targets: str | os.PathLike | None = None, model_labels: list[str] | None = None
) -> Dataset:
    """A folder of images, a folder of MNIST IDX files (or one images IDX file), or a .npy/.npz."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.suffix.lower() in (".npy", ".npz"):
        ds = _array_dataset(p)
    elif _idx_pair(p) is not None:
        ds = _idx_dataset(*_idx_pair(p))
    elif p.is_dir():
        ds = _image_dataset(p, model_labels)
    else:
        raise InputError(f"{p}: not a folder of images, MNIST IDX files, .npy or .npz")
    if targets is not None:
        ds.labels = _targets(Path(targets), ds.size)
    if ds.size == 0:
        raise InputError(f"{p}: no items")
    return ds


def _idx_pair(p: Path) -> tuple[Path, Path | None] | None:
    """(images file, labels file or None) when p is an images IDX file or a folder holding one."""
    if p.is_file():
        return (p, _sibling_labels(p)) if "idx3-ubyte" in p.name else None
    if not p.is_dir():
        return None
    found = sorted(f for f in p.iterdir() if re.search(r"images-idx3-ubyte(\.gz)?$", f.name))
    if not found:
        return None
    test = [f for f in found if f.name.startswith("t10k")]  # the test set when both are there
    images = (test or found)[0]
    return images, _sibling_labels(images)


def _sibling_labels(images: Path) -> Path | None:
    name = images.name.replace("images-idx3", "labels-idx1")
    cand = images.with_name(name)
    return cand if cand.is_file() and cand != images else None


def _idx_dataset(images: Path, labels: Path | None) -> Dataset:
    arr = _idx(str(images), IDX_IMAGES)
    lab = None
    if labels is not None:
        lab = read_idx(labels, IDX_LABELS).astype(np.int64)
        if len(lab) != len(arr):
            raise InputError(f"{images.parent}: {len(arr)} images but {len(lab)} labels")
    return Dataset("idx", str(images), size=len(arr), labels=lab)


def _array_dataset(p: Path) -> Dataset:
    if p.suffix.lower() == ".npy":
        return Dataset("array", str(p), size=len(_rows(_array(str(p)), p)))
    try:
        with np.load(p, allow_pickle=False) as z:
            keys = list(z.files)
    except (OSError, ValueError, EOFError) as e:
        raise InputError(f"{p}: cannot read a .npz archive ({e})") from None
    key = next((k for k in NPZ_INPUT_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
    if key is None:
        raise InputError(f"{p}: no input array named {' or '.join(NPZ_INPUT_KEYS)} (it has {keys})")
    n = len(_rows(_array(str(p), key), p))
    ds = Dataset("array", str(p), size=n, key=key)
    lkey = next((k for k in NPZ_LABEL_KEYS if k in keys), None)
    if lkey is not None:
        ds.labels = _as_labels(_array(str(p), lkey), n, f"{p}[{lkey!r}]")
    return ds


def _rows(a: np.ndarray, p: Path) -> np.ndarray:
    if a.ndim < 1:
        raise InputError(f"{p}: a scalar, not an array of inputs")
    return a


def _as_labels(a: np.ndarray, n: int, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != (n,) or a.dtype.kind not in "iu":
        raise InputError(f"{name}: labels must be {n} integers, got {a.dtype} {list(a.shape)}")
    return a.astype(np.int64)


def _targets(p: Path, n: int) -> np.ndarray:
    """Labels for a dataset: a .npy of integers, or a text file with one integer per line."""
    if p.suffix.lower() == ".npy":
        return _as_labels(_array(str(p)), n, str(p))
    try:
        values = [int(line) for line in p.read_text().split()]
    except (OSError, ValueError) as e:
        raise InputError(f"{p}: cannot read integer labels ({e})") from None
    return _as_labels(np.asarray(values, np.int64), n, str(p))


def image_extensions() -> set[str]:
    from PIL import Image

    return set(Image.registered_extensions())


def _image_dataset(root: Path, model_labels: list[str] | None) -> Dataset:
    exts = image_extensions()
    files, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:  # a symlink back up the tree: do not loop
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        files += [
            Path(dirpath) / f for f in filenames if not f.startswith(".") and Path(f).suffix.lower() in exts
        ]
    files.sort(key=lambda f: f.relative_to(root).parts)
    if not files:
        raise ImageError(f"{root}: no image files in this folder or below")
    top = [f.relative_to(root).parts for f in files]
    classes = sorted({parts[0] for parts in top if len(parts) > 1})
    index = class_index(classes, model_labels)
    labels = np.asarray([index[parts[0]] if len(parts) > 1 else -1 for parts in top], np.int64)
    return Dataset(
        "images",
        str(root),
        [str(f) for f in files],
        len(files),
        labels if classes else None,
        classes or None,
    )


def class_index(classes: list[str], model_labels: list[str] | None) -> dict[str, int]:
    """Class folder name -> output index: the model's label of that name, else the integer, else sorted order."""
    if model_labels:
        where = {}
        for i, name in enumerate(model_labels):
            where.setdefault(name.strip().lower(), i)
        if all(c.lower() in where for c in classes):
            return {c: where[c.lower()] for c in classes}
    if all(re.fullmatch(r"\d+", c) for c in classes):
        return {c: int(c) for c in classes}
    return {c: i for i, c in enumerate(classes)}
