"""The engine's own fork and join (engine/kernels/pool.py): Numba's parallel regions on its threads.

Every parallel kernel of the suite runs through it (the oracle tests check their numbers); these
tests check what those cannot see: that the workers take items at all, the ids they report, a
region inside an item, regions from two Python threads at once, a worker woken from its sleep, a
forked child, and ENGINE_POOL=0 (Numba's own layer).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time

import numba
import numpy as np
import pytest
from numba import njit, prange

import engine  # noqa: F401 (installs the pool)
from engine.kernels import pool

TWO = pytest.mark.skipif(
    not pool.installed() or numba.config.NUMBA_NUM_THREADS < 2, reason="needs the pool and two threads"
)


@njit(parallel=True, nogil=True, cache=True)
def _ids(out, work):
    """out[i] = the id of the thread that ran iteration i (after some work, so that items overlap)."""
    for i in prange(out.shape[0]):
        s = 0.0
        for r in range(work):
            s += np.sqrt(r + i)
        out[i] = numba.get_thread_id() + 0 * s


@njit(parallel=True, nogil=True, cache=True)
def _squares(x, out):
    for i in prange(x.shape[0]):
        out[i] = x[i] * x[i]


@njit(parallel=True, nogil=True, cache=True)
def _nested(x, out, inner):
    """A region whose items each start a region of their own (run on the item's thread)."""
    for i in prange(x.shape[0]):
        _squares(x[i], inner[i])
        out[i] = inner[i].sum()


@njit(parallel=True, nogil=True, cache=True)
def _split(n):
    """A sum by prange reduction: Numba's per-thread partial sums, indexed by thread id."""
    total = 0
    for i in prange(n):
        total += i * i
    return total


def _workers_take_items(threads: int = 2, tries: int = 2000) -> np.ndarray:
    out = np.full(threads, -1, np.int64)
    seen = np.zeros(threads, np.int64)
    for _ in range(tries):
        _ids(out, 20_000)
        seen[out] += 1
        if seen[1:].all():
            break
    return seen


@TWO
def test_workers_run_items_with_their_ids():
    numba.set_num_threads(2)
    seen = _workers_take_items()
    assert seen[1] > 0, f"no item ran on the worker in 2000 regions: ids seen {seen}"


@TWO
def test_reduction_and_results_match_serial():
    numba.set_num_threads(2)
    for n in (0, 1, 2, 3, 1000, 12345):
        assert _split(n) == sum(i * i for i in range(n))
    x = np.arange(-500, 500, dtype=np.int64)
    out = np.zeros_like(x)
    _squares(x, out)
    np.testing.assert_array_equal(out, x * x)


@TWO
def test_region_inside_an_item():
    numba.set_num_threads(2)
    x = np.arange(8 * 50, dtype=np.int64).reshape(8, 50)
    out, inner = np.zeros(8, np.int64), np.zeros_like(x)
    for _ in range(50):
        _nested(x, out, inner)
        np.testing.assert_array_equal(out, (x * x).sum(axis=1))


@TWO
def test_regions_from_two_python_threads():
    numba.set_num_threads(2)
    errors = []

    def loop(seed: int) -> None:
        numba.set_num_threads(2)
        rng = np.random.default_rng(seed)
        for _ in range(300):
            x = rng.integers(-1000, 1000, rng.integers(1, 3000))
            out = np.zeros_like(x)
            _squares(x, out)
            if not np.array_equal(out, x * x):
                errors.append(seed)

    threads = [threading.Thread(target=loop, args=(s,)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)


@TWO
def test_a_sleeping_worker_wakes():
    numba.set_num_threads(2)
    _workers_take_items()
    time.sleep(0.05)  # past the spin: the worker sleeps on its futex
    assert pool._state[pool.SLEEPERS] >= 1
    seen = _workers_take_items()
    assert seen[1] > 0, "the worker did not come back after sleeping"


@TWO
def test_one_thread_runs_every_item_itself():
    numba.set_num_threads(1)
    try:
        out = np.full(2, -1, np.int64)
        for _ in range(200):
            _ids(out, 1000)
            assert (out == 0).all()
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)


def _run(code: str, env: dict | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


CHILD = """
    import os, numpy as np, numba
    import engine
    from engine.kernels import pool
    from tests.test_pool import _squares, _workers_take_items
    x = np.arange(1000); out = np.zeros_like(x)
    _squares(x, out)
    pid = os.fork()
    if pid == 0:
        out[:] = 0
        _squares(x, out)
        ok = np.array_equal(out, x * x)
        seen = _workers_take_items() if numba.config.NUMBA_NUM_THREADS > 1 else [1, 1]
        os._exit(0 if ok and seen[1] > 0 else 3)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
"""


@TWO
def test_a_forked_child_runs_regions():
    assert "child 0" in _run(CHILD)


def test_numba_layer_when_disabled():
    out = _run(
        """
        import numpy as np, engine
        from engine.kernels import pool
        from tests.test_pool import _squares, _split
        x = np.arange(1000); out = np.zeros_like(x)
        _squares(x, out)
        print(pool.installed(), np.array_equal(out, x * x), _split(100) == sum(i * i for i in range(100)))
        """,
        {"ENGINE_POOL": "0"},
    )
    assert out.split() == ["False", "True", "True"]


@TWO
def test_items_that_need_the_gil():
    """A region of a kernel called holding the GIL (not nogil) whose items allocate while tracemalloc
    hooks the allocator (each allocation then takes the GIL): the region must release the GIL for its
    items, or the caller waits for a worker that waits for it."""
    out = _run(
        """
        import tracemalloc, numpy as np, numba
        from numba import njit, prange
        import engine

        @njit(parallel=True)
        def allocating(n, out):
            for i in prange(out.shape[0]):
                a = np.empty(n + i)
                a[:] = i
                out[i] = a.sum()

        numba.set_num_threads(2)
        tracemalloc.start()
        out = np.zeros(2)
        for _ in range(3000):
            allocating(100, out)
        print(out.tolist())
        """
    )
    assert out.split("\n")[-2] == "[0.0, 101.0]"
