"""The --data mode of scripts/evaluate.py: its options, and the run from parsed arguments to the summary."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .errors import InputError


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("any model on any dataset (--data)")
    g.add_argument("--data", metavar="PATH", help="image folder, MNIST IDX folder or file, .npy or .npz")
    g.add_argument("--targets", metavar="FILE", help="labels of a .npy dataset (.npy of integers, or text)")
    g.add_argument("--labels", metavar="FILE", help="class names, one per line (for a model given as a file)")
    g.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    g.add_argument("--out", metavar="DIR.parquet", help="write a Parquet row per item (resumes when present)")
    g.add_argument("--workers", type=int, metavar="N", help="run on a Dask LocalCluster of N processes")
    g.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on an existing Dask cluster")
    g.add_argument(
        "--shard", type=int, metavar="N", help="items per task (default: about 8 tasks per worker)"
    )
    g.add_argument("--numba-cache", metavar="DIR", help="the workers' Numba cache (docs/scale-out.md)")
    g.add_argument(
        "--resize", help="preprocessing override: nearest, bilinear, bicubic, lanczos, box, hamming"
    )
    g.add_argument("--kind", choices=["raw", "scale", "mean_std"], help="preprocessing override: pixel map")
    g.add_argument("--mean", type=float, nargs="+", metavar="M", help="preprocessing override (mean_std)")
    g.add_argument("--std", type=float, nargs="+", metavar="S", help="preprocessing override (mean_std)")
    g.add_argument("--int8", choices=["shift", "reinterpret"], help="preprocessing override: int8 inputs")


def check_data_arguments(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for flag in ("workers", "shard"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            p.error(f"--{flag} must be at least 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be at least 1")
    if args.data is None:
        used = [
            f"--{f}" for f in ("targets", "out", "workers", "scheduler", "shard", "json") if getattr(args, f)
        ]
        if used:
            p.error(f"{', '.join(used)} need --data")
    if args.workers and args.scheduler:
        p.error("--workers starts a cluster, --scheduler uses one: pass one of them")


def _preprocess(args, entry) -> dict | None:
    from .preprocess import Spec

    spec = dict(entry.preprocess or {}) if entry is not None else {}
    for key in ("resize", "kind", "mean", "std", "int8"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    Spec.from_dict(spec)  # refuse a bad override here, not in every worker
    return spec or None


def model_ref(args):
    """-> (ModelRef, model labels or None) without loading the model here (workers load it)."""
    from . import registry
    from .evaluation import ModelRef

    cache = registry.Cache(mirror=args.mirror)
    name = cache.registry.default if args.model == "all" else args.model  # no --model: the registry's default
    if registry.is_model_path(name, cache.registry):
        path = Path(name).expanduser().resolve()
        if not path.is_file():
            raise InputError(f"--model {name}: no such file")
        entry, sha, name = None, registry.sha256_file(path), str(path)
        labels = None
    else:
        entry = cache.registry.model(name)
        cache.path(entry.file)  # fetched (and verified) once here, not by every worker of this machine
        sha = cache.registry.files[entry.file].sha256
        labels = cache.labels(entry)
    if args.labels:
        labels = registry.read_labels(args.labels)
    if args.compare_litert and not str(entry.file if entry else name).endswith(".tflite"):
        raise InputError("--compare-litert runs the reference kernels on a .tflite model, not an .npz")
    mirror = str(cache.mirror) if cache.mirror else None
    ref = ModelRef(name, sha, mirror, _preprocess(args, entry), args.batch, None, args.compare_litert)
    ref = dataclasses.replace(ref, numerics=getattr(args, "numerics", "reference"))
    return ref, labels


def evaluate_data(args: argparse.Namespace) -> int:
    import dataclasses

    from .dataset import open_dataset
    from .evaluation import evaluate_dataset

    ref, labels = model_ref(args)
    ds = open_dataset(args.data, args.targets, labels)
    if args.limit:
        ds = ds.limit(args.limit)
    if args.out and Path(args.out).suffix != ".parquet" and not Path(args.out).is_dir():
        raise InputError(f"--out {args.out}: name the results folder DIR.parquet")
    run = {"shard_size": args.shard, "out": args.out, "labels": labels}
    if args.workers or args.scheduler:
        from . import distributed as dd

        threads = args.threads or (dd.default_threads(args.workers) if args.workers else None)
        if args.scheduler:
            ref = dataclasses.replace(ref, threads=args.threads)
            ctx = dd.connect(args.scheduler)
        else:
            ctx = dd.local_cluster(args.workers, threads, args.numba_cache)
        with ctx as client:
            where = dd.dashboard(client)
            print(
                f"dask: {client.scheduler.address}, dashboard {where or 'off (pip install bokeh)'}",
                file=sys.stderr,
            )
            summary = evaluate_dataset(ref, ds, dd.DaskBackend(client), **run)
        summary["threads_per_worker"] = threads or summary["workers"][0]["numba_threads"]
    else:
        import numba

        if args.threads:
            numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
        summary = evaluate_dataset(ref, ds, **run)
        summary["threads_per_worker"] = numba.get_num_threads()
    summary = {"model": args.model, "model_sha256": ref.sha256, "numerics": ref.numerics, "data": str(args.data), **summary}
    print(json.dumps(summary) if args.json else text(summary))
    ref_diff = summary.get("reference", {}).get("differing", 0)
    return 1 if ref_diff else 0


def text(s: dict) -> str:
    pct = lambda v: "-" if v is None else f"{v * 100:.2f} %"
    lines = [
        f"{s['model']} on {s['data']}: {s['images']} of {s['items']} items, {len(s['failed'])} failed"
        + (f", {s['shards_skipped']} of {s['shards']} shards from {s['out']}" if s["shards_skipped"] else "")
    ]
    if s.get("top1") is not None:
        lines.append(f"top-1 {pct(s['top1'])} ({s['correct']}/{s['labeled']}), top-5 {pct(s.get('top5'))}")
        per = s["per_class"]
        if len(per) <= 20:
            lines += [
                f"  {c:<20} {v['images']:>6}  top-1 {pct(v['top1'])}  top-5 {pct(v['top5'])}"
                for c, v in per.items()
            ]
    ips = s["images_per_s"]
    n_workers = len(s["workers"])
    lines.append(
        (f"{ips:.1f} images/s" if ips else "no images run")
        + f" ({s['backend']}, {n_workers} worker{'s' * (n_workers != 1)} x {s['threads_per_worker']} thread(s)), "
        f"{s['seconds']['phase']:.2f} s"
    )
    lines.append(f"outputs_sha256 {s['outputs_sha256']}")
    for f in s["failed"][:20]:
        lines.append(f"  failed: {f['item']}: {f['error']}")
    if "reference" in s:
        r = s["reference"]
        lines.append(f"reference kernels: {r['differing']} of {r['compared']} items differ")
    return "\n".join(lines)
