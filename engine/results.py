"""The results folder of a dataset evaluation: one Parquet file per finished shard, and a manifest.

    results.parquet/_manifest.json                    what the run is (model sha256, preprocessing, items)
    results.parquet/part-0000000000-0000000256.parquet items 0..255, written (atomically) when they finish

Read it whole with `pyarrow.parquet.read_table("results.parquet")` (files starting with "_" or "." are
skipped by pyarrow). Columns: index, item (path or file[index]), label (null: none), prediction and
score (classifiers: the best class and its dequantized score), output (the raw bytes of every output of
the item, concatenated in output order; dtype and shape are in the manifest), error (why an item could
not be read or run; its output is null), differs_from_reference (null unless compared).

A run started again with the same folder reads the finished shards back instead of running them; a
folder holding another run (another model, preprocessing or list of items) is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import atomic
from .dataset import Dataset, Failure, Shard
from .errors import EngineError, InputError

MANIFEST = "_manifest.json"
INSTALL_HINT = 'pip install "engine[cluster]" (Dask distributed and pyarrow)'


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise EngineError(
            f"--out writes Parquet with pyarrow, which is not installed: {INSTALL_HINT}"
        ) from None
    return pa, pq


class ResultStore:
    def __init__(self, path: str | Path, identity: dict, shard_size: int, outputs: list[dict]):
        """identity: what must match to resume; outputs: [{"dtype", "shape"}] per model output (per item)."""
        _pa()
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"--out {self.path}: exists and is not a results folder")
        manifest = self.path / MANIFEST
        self.resumed = manifest.is_file()
        if self.resumed:
            try:
                m = json.loads(manifest.read_text())
            except (OSError, ValueError) as e:
                raise InputError(f"{manifest}: unreadable ({e}); delete the folder to start again") from None
            if m.get("identity") != identity:
                raise InputError(
                    f"--out {self.path} holds the results of another run (model, preprocessing or items "
                    "differ): choose another --out or delete it"
                )
            shard_size, outputs = int(m["shard_size"]), m["outputs"]
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            doc = {"identity": identity, "shard_size": shard_size, "outputs": outputs}
            atomic.write_text(manifest, json.dumps(doc, indent=1) + "\n")
        self.shard_size = shard_size
        self.outputs = outputs

    def part(self, shard: Shard) -> Path:
        return self.path / f"part-{shard.start:010d}-{shard.stop:010d}.parquet"

    def completed(self, shards: list[Shard]) -> dict[int, object]:
        """{shard number: ShardResult} of the shards already written (an unreadable part is run again)."""
        done = {}
        for no, s in enumerate(shards):
            if self.part(s).is_file():
                try:
                    done[no] = self.read(s)
                except (OSError, ValueError, KeyError, EngineError):
                    continue
        return done

    def write(
        self, shard: Shard, result, ds: Dataset, pred: np.ndarray | None, score: np.ndarray | None
    ) -> None:
        pa, pq = _pa()
        rows = {}
        for k, (i, raw) in enumerate(result.rows()):
            found = pred is not None and pred[k] >= 0  # a detector that found nothing: null
            rows[i] = (
                raw,
                None,
                int(pred[k]) if found else None,
                float(score[k]) if found and score is not None else None,
            )
        for f in result.failed:
            rows[f.index] = (None, f.error, None, None)
        differ = set(result.differing or ())
        order = sorted(rows)
        labels = ds.labels
        table = pa.table(
            {
                "index": pa.array(order, pa.int64()),
                "item": pa.array([ds.item(i) for i in order], pa.string()),
                "label": pa.array(
                    [None if labels is None or labels[i] < 0 else int(labels[i]) for i in order], pa.int64()
                ),
                "prediction": pa.array([rows[i][2] for i in order], pa.int64()),
                "score": pa.array([rows[i][3] for i in order], pa.float32()),
                "output": pa.array([rows[i][0] for i in order], pa.binary()),
                "error": pa.array([rows[i][1] for i in order], pa.string()),
                "differs_from_reference": pa.array(
                    [None if result.differing is None or rows[i][0] is None else i in differ for i in order],
                    pa.bool_(),
                ),
            }
        )
        with atomic.atomic_path(self.part(shard)) as tmp:
            pq.write_table(table, tmp)

    def read(self, shard: Shard):
        from .evaluation import ShardResult

        _, pq = _pa()
        t = pq.read_table(self.part(shard)).to_pydict()
        ok = [k for k, e in enumerate(t["error"]) if e is None]
        indices = np.asarray([t["index"][k] for k in ok], np.int64)
        if len(t["index"]) != len(shard) or sorted(t["index"]) != list(range(shard.start, shard.stop)):
            raise ValueError(f"{self.part(shard)}: does not hold items {shard.start}..{shard.stop - 1}")
        outputs = _split([t["output"][k] for k in ok], self.outputs)
        failed = [Failure(t["index"][k], t["item"][k], t["error"][k]) for k, e in enumerate(t["error"]) if e]
        flags = [t["differs_from_reference"][k] for k in ok]
        differing = None if any(f is None for f in flags) else [int(i) for i, f in zip(indices, flags) if f]
        return ShardResult(shard.start, shard.stop, indices, outputs, failed, differing=differing)


def _split(raws: list[bytes], outputs: list[dict]) -> list[np.ndarray]:
    """Per-item concatenated raw bytes -> one array [n, ...] per output."""
    dtypes = [np.dtype(o["dtype"]) for o in outputs]
    shapes = [tuple(o["shape"]) for o in outputs]
    sizes = [int(np.prod(s)) * d.itemsize for s, d in zip(shapes, dtypes)]
    if any(len(r) != sum(sizes) for r in raws):
        raise ValueError("an output of another size than the manifest's")
    buf = np.frombuffer(b"".join(raws), np.uint8).reshape(len(raws), sum(sizes))
    arrays, at = [], 0
    for d, s, size in zip(dtypes, shapes, sizes):
        arrays.append(np.ascontiguousarray(buf[:, at : at + size]).view(d).reshape(len(raws), *s))
        at += size
    return arrays
