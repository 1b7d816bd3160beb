"""Whole-dataset evaluation: shards of items -> outputs -> a summary, in-process or on any executor.

The unit of work is a shard (engine.dataset.Shard: paths or an index range). process_shard(ref, shard)
runs anywhere the model and the data are reachable: it loads the model once per process (cached by the
model's sha256 and preprocessing), reads the shard's items itself, runs them in batches and returns the raw
outputs. A bad item becomes a Failure, never an exception. Results are combined in dataset order, so the
summary (outputs_sha256 above all) does not depend on where or in which order the shards ran:

    outputs_sha256 = sha256(concatenation over items read, in dataset order, of every output's raw bytes)

Failed items contribute no bytes (they are listed under "failed"). With `out`, every finished shard is
written at once as one Parquet file of a results folder (engine.results), and a later run with the
same folder skips the shards already there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .dataset import Dataset, Failure, ItemReader, Shard
from .errors import EngineError, FetchError, InputError

ENV_TEST_DELAY = (
    "ENGINE_EVAL_TEST_DELAY_S"  # tests only: seconds each shard sleeps (to kill a worker mid-run)
)


@dataclass(frozen=True)
class ModelRef:
    """What a worker needs to load the model itself: small, pickled with every task instead of the model."""

    name: str  # registry name/alias, or a .tflite/.npz path every worker can read
    sha256: str  # of the file: workers check it, and it keys their model cache
    mirror: str | None = None
    preprocess: dict | None = None  # the resolved preprocessing spec (None: the registry's, else raw)
    batch: int = 64  # items per model run
    threads: int | None = None  # Numba threads per task (None: the process's default)
    compare: bool = False  # also run the reference kernels on every shard and count differing items
    numerics: str = "reference"  # the numerics profile the workers load the model with (engine/profiles)

    def key(self) -> str:
        key = [self.sha256, self.preprocess] + ([self.numerics] if self.numerics != "reference" else [])
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


@dataclass
class ShardResult:
    start: int
    stop: int
    indices: np.ndarray  # int64 [n]: the items read, ascending
    outputs: list[np.ndarray]  # one per model output, [n, ...]
    failed: list[Failure] = field(default_factory=list)
    read_s: float = 0.0
    infer_s: float = 0.0
    worker: str = ""
    differing: list[int] | None = None  # items whose outputs differ from the reference kernels (compare)
    compare_s: float = 0.0
    cpu_s: float = 0.0  # CPU seconds of the worker process reading and running the shard

    def rows(self) -> Iterable[tuple[int, bytes]]:
        """(index, raw bytes of every output of that item) in order."""
        for k, i in enumerate(self.indices.tolist()):
            yield i, b"".join(np.ascontiguousarray(o[k]).tobytes() for o in self.outputs)


# ---------------------------------------------------------------- the model, once per process


@dataclass
class Loaded:
    model: object
    reader: ItemReader
    labels: list[str] | None
    path: str  # the .tflite/.npz file (the reference kernels read it)


_LOADED: dict[str, Loaded] = {}
_LOAD_LOCK = threading.Lock()
_LOAD_S: dict[str, tuple[float, float]] = {}  # key -> (seconds waiting for the compile lock, seconds loading)


def loaded(ref: ModelRef) -> Loaded:
    """The model of ref in this process, loaded at the first call (in a worker: its first task)."""
    with _LOAD_LOCK:
        key = ref.key()
        if key not in _LOADED:
            t0 = time.perf_counter()
            with compile_lock():
                t1 = time.perf_counter()
                _LOADED[key] = _load(ref)
            _LOAD_S[key] = (t1 - t0, time.perf_counter() - t1)
        return _LOADED[key]


def _load(ref: ModelRef) -> Loaded:
    from . import registry
    from .preprocess import image_layout

    cache = registry.Cache(mirror=ref.mirror)
    if registry.is_model_path(ref.name, cache.registry):
        path, sha = str(ref.name), registry.sha256_file(ref.name)
    else:
        entry = cache.registry.model(ref.name)
        path, sha = str(cache.path(entry.file)), cache.registry.files[entry.file].sha256
    if sha != ref.sha256:  # another file at that path, or another registry, on this machine
        raise FetchError(
            f"{ref.name} on {socket.gethostname()}: sha256 {sha}, but the run was started with {ref.sha256}"
        )
    res = registry.resolve(ref.name, cache=cache, numerics=ref.numerics)
    info = res.model.inputs[0]
    try:
        image_layout(info)
        image_input = True
    except InputError:
        image_input = False
    reader = ItemReader(info, ref.preprocess, image_input)
    # compile (or load from Numba's cache) the kernels of the shard batch size now, under the lock
    res.model.run([np.zeros((ref.batch, *t.shape[1:]), t.dtype) for t in res.model.inputs])
    return Loaded(res.model, reader, res.labels, path)


@contextlib.contextmanager
def compile_lock() -> Iterator[None]:
    """One process per machine compiles the kernels while the others wait, then load them from the cache."""
    try:
        import fcntl
    except ImportError:  # not POSIX: each process compiles (still correct)
        yield
        return
    where = os.environ.get("NUMBA_CACHE_DIR") or str(Path(__file__).resolve().parent)
    tag = hashlib.sha256(where.encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"engine-compile-{os.getuid()}-{tag}.lock"
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def warm_up(ref: ModelRef) -> dict:
    """Load the model in this process; -> what the process runs with (a task run once per worker)."""
    import numba

    loaded(ref)
    wait_s, load_s = _LOAD_S.get(ref.key(), (0.0, 0.0))
    return {
        "pid": os.getpid(),
        "lock_wait_s": wait_s,  # another process of this machine was compiling the kernels
        "load_s": load_s,  # load, and compile where the cache was cold
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "numba_cache_dir": numba.config.CACHE_DIR or None,
    }


# ---------------------------------------------------------------- one shard


def process_shard(ref: ModelRef, shard: Shard) -> ShardResult:
    """Read, preprocess and run one shard here; a bad item is a Failure in the result."""
    m = loaded(ref)
    if ref.threads:
        import numba

        numba.set_num_threads(min(ref.threads, numba.config.NUMBA_NUM_THREADS))
    delay = float(os.environ.get(ENV_TEST_DELAY) or 0)
    if delay:
        time.sleep(delay)
    t0, c0 = time.perf_counter(), time.process_time()
    indices, x, failed = shard.read(m.reader)
    t1 = time.perf_counter()
    outputs, kept, bad = _run(m.model, x, indices, ref.batch, shard)
    t2, c2 = time.perf_counter(), time.process_time()
    result = ShardResult(
        shard.start,
        shard.stop,
        indices[kept],
        outputs,
        sorted(failed + bad, key=lambda f: f.index),
        t1 - t0,
        t2 - t1,
        f"{socket.gethostname()}:{os.getpid()}",
        cpu_s=c2 - c0,
    )
    if ref.compare:
        result.differing = compare_reference(m.path, x[kept], outputs, result.indices) if len(kept) else []
        result.compare_s = time.perf_counter() - t2
    return result


def _name(shard: Shard, index: int) -> str:
    return shard.paths[index - shard.start] if shard.paths else f"{shard.source}[{index}]"


def _run(model, x: np.ndarray | None, indices: np.ndarray, batch: int, shard: Shard):
    """Run x in batches -> (outputs, positions in x that ran, failures); a batch the model refuses is
    retried item by item, isolating the bad ones."""
    outs = [np.empty((0, *t.shape[1:]), t.dtype) for t in model.outputs]
    if x is None:
        return outs, np.zeros(0, np.int64), []
    parts, keep, bad = [], [], []
    for s in range(0, len(x), batch):
        e_ = min(s + batch, len(x))
        try:
            parts.append(model.run(x[s:e_]))
            keep += range(s, e_)
        except EngineError:
            for k in range(s, e_):
                try:
                    parts.append(model.run(x[k : k + 1]))
                    keep.append(k)
                except EngineError as e:
                    bad.append(Failure(int(indices[k]), _name(shard, int(indices[k])), str(e)))
    if parts:
        outs = [np.concatenate([p[j] for p in parts]) for j in range(len(model.outputs))]
    return outs, np.asarray(keep, np.int64), bad


def compare_reference(path: str, x: np.ndarray, outputs: list[np.ndarray], indices: np.ndarray) -> list[int]:
    """Items (by index) whose outputs differ in any bit from LiteRT's reference kernels (TFLite Micro's
    interpreter where LiteRT refuses the model), run in a subprocess on the same input rows."""
    try:
        from tests import oracle
    except ImportError as e:
        raise InputError(f"--compare-litert needs tests/oracle.py from the source checkout ({e})") from None
    try:
        refs = [r["outputs"] for r in oracle.reference_run_many(path, [[x]])]
    except oracle.OracleError:  # e.g. a graph LiteRT cannot resize to a batch: one item per run
        try:
            refs = [
                r["outputs"] for r in oracle.reference_run_many(path, [[x[k : k + 1]] for k in range(len(x))])
            ]
        except oracle.OracleError:
            refs = [
                r["outputs"] for r in oracle.micro_run_many(path, [[x[k : k + 1]] for k in range(len(x))])
            ]
    ref = [np.concatenate([r[j] for r in refs]) for j in range(len(outputs))]
    n = len(x)
    differ = np.zeros(n, bool)
    for a, b in zip(outputs, ref):
        if a.shape != b.shape or a.dtype != b.dtype:
            differ[:] = True
        else:
            differ |= np.any((a != b).reshape(n, -1), axis=1)
    return indices[differ].tolist()


# ---------------------------------------------------------------- the whole run


@dataclass
class ModelFacts:
    """What the client needs to know about the model, as a worker loaded it (the client loads nothing)."""

    outputs: list  # TensorInfo per output
    labels: list[str] | None
    task: str
    workers: list[dict] = field(default_factory=list)  # warm_up() of every worker

    def signature(self) -> list[dict]:
        return [{"dtype": np.dtype(t.dtype).str, "shape": list(t.shape[1:])} for t in self.outputs]


def describe(ref: ModelRef) -> ModelFacts:
    """Load the model here (a warm-up task) and say what it outputs."""
    from . import registry
    from .run import _guess_task

    info = warm_up(ref)
    m = loaded(ref)

    entry = None
    with contextlib.suppress(EngineError):
        cache = registry.Cache(mirror=ref.mirror)
        if not registry.is_model_path(ref.name, cache.registry):
            entry = cache.registry.model(ref.name)
    task = entry.task if entry is not None else _guess_task(m.model)
    return ModelFacts(list(m.model.outputs), m.labels, task, [info])


class LocalBackend:
    """Every shard in this process, one after the other (no Dask)."""

    name = "in-process"

    def start(self, ref: ModelRef) -> ModelFacts:
        return describe(ref)

    def run(self, ref: ModelRef, todo: list[tuple[int, Shard]], done: Callable[[int, ShardResult], None]):
        for no, shard in todo:
            done(no, process_shard(ref, shard))


def make_shards(ds: Dataset, size: int) -> list[Shard]:
    return [ds.shard(s, min(s + size, len(ds))) for s in range(0, len(ds), size)]


def default_shard_size(n: int, workers: int) -> int:
    """About 8 shards per worker (balance, and little lost when one dies), at most 1024 items each."""
    return max(1, min(1024, -(-n // (8 * max(1, workers)))))


def identity(ref: ModelRef, ds: Dataset) -> dict:
    return {"model_sha256": ref.sha256, "preprocess": ref.preprocess, "dataset": ds.fingerprint()}


def evaluate_dataset(
    ref: ModelRef,
    ds: Dataset,
    backend=None,
    shard_size: int | None = None,
    out: str | os.PathLike | None = None,
    labels: list[str] | None = None,
) -> dict:
    """Run every item of ds through the model on backend (default: in-process) -> the summary dict."""
    from .results import ResultStore

    backend = backend or LocalBackend()
    t_load = time.perf_counter()
    facts = backend.start(ref)
    size = shard_size or default_shard_size(len(ds), getattr(backend, "workers", 1))
    if labels is not None:
        facts.labels = list(labels)
    load_s = time.perf_counter() - t_load
    store = ResultStore(out, identity(ref, ds), size, facts.signature()) if out else None
    shards = make_shards(ds, store.shard_size if store else size)
    results: dict[int, ShardResult] = store.completed(shards) if store else {}
    todo = [(no, s) for no, s in enumerate(shards) if no not in results]
    bar = _bar(len(ds), sum(len(shards[no]) for no in results), backend.name)

    def done(no: int, r: ShardResult) -> None:
        if store is not None:
            pred, score = predictions(r.outputs, facts)
            store.write(shards[no], r, ds, pred, score)
        results[no] = r
        bar.update(len(shards[no]))

    t0 = time.perf_counter()
    try:
        backend.run(ref, todo, done)
    finally:
        bar.close()
    phase_s = time.perf_counter() - t0
    ran = [results[no] for no, _ in todo]
    summary = summarize(ds, [results[no] for no in range(len(shards))], facts)
    n_ran = sum(len(r.indices) for r in ran)
    summary.update(
        {
            "images_per_s": n_ran / phase_s if n_ran and phase_s > 0 else None,
            "seconds": {
                "load": load_s,
                "phase": phase_s,
                "read": sum(r.read_s for r in ran),
                "inference": sum(r.infer_s for r in ran),
                "reference": sum(r.compare_s for r in ran),  # --compare-litert: inside "phase" too
                "cpu": sum(r.cpu_s for r in ran),  # read + inference, all workers, their threads together
            },
            "shards": len(shards),
            "shard_size": shards[0].stop - shards[0].start if shards else 0,
            "shards_run": len(todo),
            "shards_skipped": len(shards) - len(todo),
            "backend": backend.name,
            "workers": facts.workers,
            "out": str(out) if out else None,
        }
    )
    infer = summary["seconds"]["inference"]
    summary["inference_images_per_s_per_worker"] = n_ran / infer if infer > 0 else None
    cpu = summary["seconds"]["cpu"]
    # what one core does, whatever else the machine runs: the figure to size a cluster with
    summary["images_per_cpu_s"] = n_ran / cpu if cpu > 0 else None
    return summary


def _bar(total: int, initial: int, desc: str):
    import sys

    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, desc=desc, unit="img", file=sys.stderr, disable=None, dynamic_ncols=True
    )


def predictions(outputs: list[np.ndarray], facts: ModelFacts) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Classifiers: (best class, its dequantized score) per item; detectors (boxes, classes, scores, count):
    the best detection's class and score (-1 where nothing was detected); else (None, None)."""
    from .postprocess import dequantize

    if facts.task == "detect" and len(outputs) == 4 and outputs[1].ndim == 2 and outputs[1].shape[1]:
        found = outputs[3].reshape(len(outputs[3]), -1)[:, 0] > 0
        pred = np.where(found, outputs[1][:, 0], -1).astype(np.int64)
        return pred, np.where(found, outputs[2][:, 0], np.nan).astype(np.float32)
    if facts.task != "classify" or not outputs:
        return None, None
    out = outputs[0].reshape(len(outputs[0]), -1)
    pred = np.argmax(out, axis=1) if out.shape[1] else np.zeros(len(out), np.int64)
    score = dequantize(out[np.arange(len(out)), pred], facts.outputs[0]) if out.shape[1] else None
    return pred.astype(np.int64), score


def summarize(ds: Dataset, results: list[ShardResult], facts: ModelFacts) -> dict:
    """Counts, top-1/top-5 (overall and per class, where labels exist) and outputs_sha256, in dataset order."""
    h = hashlib.sha256()
    failed = []
    for r in results:
        for _, raw in r.rows():
            h.update(raw)
        failed += [f.to_dict() for f in r.failed]
    indices = np.concatenate([r.indices for r in results]) if results else np.zeros(0, np.int64)
    summary = {
        "items": len(ds),
        "images": len(indices),
        "failed": failed,
        "outputs_sha256": h.hexdigest(),
        "task": facts.task,
    }
    if facts.task == "classify" and ds.labels is not None and len(indices):
        out0 = np.concatenate([r.outputs[0] for r in results]).reshape(len(indices), -1)
        summary.update(accuracy(out0, ds.labels[indices], class_names(ds, facts)))
    if results and all(r.differing is not None for r in results):
        differing = sorted(i for r in results for i in r.differing)
        summary["reference"] = {
            "kernels": "LiteRT BUILTIN_REF (TFLite Micro where LiteRT refuses the model)",
            "compared": len(indices),
            "differing": len(differing),
            "differing_items": [ds.item(i) for i in differing[:100]],
        }
    return summary


def class_names(ds: Dataset, facts: ModelFacts) -> dict[int, str]:
    """Label index -> the name per-class results are reported under."""
    if ds.class_names:
        from .dataset import class_index

        return {i: c for c, i in class_index(ds.class_names, facts.labels).items()}
    labels = facts.labels or []
    return {i: labels[i] if 0 <= i < len(labels) else str(i) for i in np.unique(ds.labels).tolist()}


def accuracy(out: np.ndarray, labels: np.ndarray, names: dict[int, str]) -> dict:
    """top1 / top5 (ties: the lower class first) over the labeled items, and per class."""
    has = labels >= 0
    out, labels = out[has], labels[has]
    order = np.argsort(-out.astype(np.float64), axis=1, kind="stable")[:, :5]
    top1 = order[:, 0] == labels
    top5 = np.any(order == labels[:, None], axis=1) if out.shape[1] > 5 else None
    per = {}
    for c in np.unique(labels).tolist():
        sel = labels == c
        per[names.get(c, str(c))] = {
            "images": int(sel.sum()),
            "top1": float(top1[sel].mean()),
            "top5": float(top5[sel].mean()) if top5 is not None else None,
        }
    n = int(has.sum())
    return {
        "labeled": n,
        "correct": int(top1.sum()),
        "top1": float(top1.mean()) if n else None,
        "top5": float(top5.mean()) if n and top5 is not None else None,
        "per_class": per,
    }
