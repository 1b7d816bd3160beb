"""Dataset evaluation on Dask distributed: a LocalCluster of worker processes, or an existing cluster.

    with local_cluster(workers=2, threads=1) as client:          # or connect("tcp://host:8786")
        summary = evaluate_dataset(ref, ds, DaskBackend(client))

Each task carries a ModelRef (a name or path and a sha256) and a Shard (paths or an index range): a
worker loads the model once (engine.evaluation's per-process cache, keyed by the sha256) and reads its
items itself, so neither the model nor the pixels go through the scheduler. A worker that dies (even
by SIGKILL) loses nothing: the scheduler runs its unfinished shards on another worker, and results are
combined in dataset order whatever ran where.

Worker processes get NUMBA_NUM_THREADS (--threads) and NUMBA_CACHE_DIR in their environment before
they start, hence before Numba is imported there: Dask's pre-spawn environment (spawned workers import
the parent's main script, and Numba with it, before any later setting could apply).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import EngineError
from .evaluation import ModelFacts, ModelRef, ShardResult, describe, process_shard
from .results import INSTALL_HINT
from .runtime import usable_cores

PRE_SPAWN = "distributed.nanny.pre-spawn-environ"


def require_dask():
    try:
        import distributed
    except ImportError:
        raise EngineError(f"--workers and --scheduler need Dask distributed: {INSTALL_HINT}") from None
    return distributed


def default_threads(workers: int) -> int:
    """Numba threads per worker so that workers x threads = the cores this process may use."""
    return max(1, usable_cores() // max(1, workers))


def numba_cache_dir(explicit: str | None = None) -> str | None:
    """Where workers cache compiled kernels, shared by every worker of the machine.

    --numba-cache, else $NUMBA_CACHE_DIR, else Numba's own place beside the engine's sources when that is
    writable (where an in-process run caches too), else $ENGINE_HOME/numba (a read-only install).
    """
    if explicit:
        return str(Path(explicit).expanduser().resolve())
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.environ["NUMBA_CACHE_DIR"]
    pkg = Path(__file__).resolve().parent
    if all(
        os.access(d, os.W_OK) for d in (pkg, *(p for p in pkg.iterdir() if (p / "__init__.py").is_file()))
    ):
        return None
    from .registry import home

    return str(home() / "numba")


def worker_environment(threads: int, cache_dir: str | None) -> dict[str, str]:
    env = {"NUMBA_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    if cache_dir:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        env["NUMBA_CACHE_DIR"] = cache_dir
    return env


@contextlib.contextmanager
def local_cluster(workers: int, threads: int | None = None, numba_cache: str | None = None) -> Iterator:
    """A Client of a LocalCluster of `workers` processes, one task at a time each, `threads` Numba threads."""
    require_dask()
    import dask
    from distributed import Client, LocalCluster

    threads = threads or default_threads(workers)
    env = worker_environment(threads, numba_cache_dir(numba_cache))
    saved = {k: os.environ.get(k) for k in env}
    pre = dict(dask.config.get(PRE_SPAWN, default={}) or {}, **env)
    # Dask prefers a variable already in this process's environment over its config, and the engine
    # set NUMBA_NUM_THREADS here at import (engine/runtime.py): the workers' values go in too
    os.environ.update(env)
    try:
        with dask.config.set({PRE_SPAWN: pre}):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=40,  # logging.ERROR: a killed worker is expected, not news
            )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
    finally:  # the Nanny writes the pre-spawn environment into this process too: put it back
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def connect(address: str) -> Iterator:
    """A Client of an existing scheduler (tcp://host:port)."""
    require_dask()
    from distributed import Client

    with Client(address) as client:
        yield client


def dashboard(client) -> str | None:
    """The dashboard's address, or None when it does not run (it needs bokeh)."""
    with contextlib.suppress(Exception):
        import importlib.util

        if importlib.util.find_spec("bokeh") is None:
            return None
        return client.dashboard_link
    return None


class DaskBackend:
    """Shards as Dask tasks; done() is called in the client as each finishes (any order)."""

    name = "dask"

    def __init__(self, client):
        self.client = client
        self.workers = max(1, len(client.scheduler_info()["workers"]))

    def start(self, ref: ModelRef) -> ModelFacts:
        """Load the model on every worker now (compiling once per machine), so timing starts warm."""
        if not self.client.scheduler_info()["workers"]:  # a cluster still starting (jobqueue, Kubernetes)
            self.client.wait_for_workers(1, timeout=600)
        workers = list(self.client.scheduler_info()["workers"])
        self.workers = len(workers)
        futures = [
            self.client.submit(describe, ref, workers=[w], allow_other_workers=True, pure=False)
            for w in workers
        ]
        facts = self.client.gather(futures)
        first = facts[0]
        first.workers = [dict(f.workers[0], address=w) for f, w in zip(facts, workers)]
        return first

    def run(self, ref: ModelRef, todo: list, done: Callable[[int, ShardResult], None]) -> None:
        from distributed import KilledWorker, as_completed

        futures = {self.client.submit(process_shard, ref, shard, pure=False): no for no, shard in todo}
        for future in as_completed(futures):
            try:
                result = future.result()
            except KilledWorker as e:  # the same shard took down several workers: not a chance failure
                no = futures[future]
                raise EngineError(
                    f"shard {no} (items {todo_range(todo, no)}) killed every worker that ran it ({e}); "
                    "finished shards are kept with --out"
                ) from None
            done(futures[future], result)
            future.release()


def todo_range(todo: list, no: int) -> str:
    shard = dict(todo)[no]
    return f"{shard.start}..{shard.stop - 1}"
