"""engine/runtime.py: the default thread count (affinity, cgroup quota), engine.set_num_threads, and the
bounded spin of libgomp's waiting threads set before Numba loads it (issue 13)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine import runtime
from engine.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def _cgroup_v2(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


def test_cgroup_v2_quota_is_the_tightest_on_the_path(tmp_path):
    root = _cgroup_v2(
        tmp_path, {"cpu.max": "max 100000\n", "a/cpu.max": "300000 100000\n", "a/b/cpu.max": "max 100000\n"}
    )
    assert runtime.cgroup_cpu_limit("0::/a/b\n", root) == 3.0
    assert runtime.cgroup_cpu_limit("0::/\n", root) is None  # "max": no quota
    root2 = _cgroup_v2(tmp_path / "two", {"x/cpu.max": "150000 100000\n"})
    assert runtime.cgroup_cpu_limit("0::/x\n", root2) == 1.5


def test_cgroup_v1_quota(tmp_path):
    d = tmp_path / "cpu,cpuacct" / "docker" / "c1"
    d.mkdir(parents=True)
    (d / "cpu.cfs_quota_us").write_text("50000\n")
    (d / "cpu.cfs_period_us").write_text("100000\n")
    top = tmp_path / "cpu,cpuacct"
    (top / "cpu.cfs_quota_us").write_text("-1\n")  # the root: no quota
    (top / "cpu.cfs_period_us").write_text("100000\n")
    text = "12:memory:/docker/c1\n4:cpu,cpuacct:/docker/c1\n0::/\n"
    assert runtime.cgroup_cpu_limit(text, tmp_path) == 0.5
    assert runtime.cgroup_cpu_limit("4:cpu,cpuacct:/\n", tmp_path) is None


def test_usable_cores_never_exceeds_affinity_or_quota(monkeypatch):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(runtime, "cgroup_cpu_limit", lambda: None)
    assert runtime.usable_cores() == 4
    monkeypatch.setattr(runtime, "cgroup_cpu_limit", lambda: 2.5)
    assert runtime.usable_cores() == 2  # rounded down: never more threads than the quota
    monkeypatch.setattr(runtime, "cgroup_cpu_limit", lambda: 0.5)
    assert runtime.usable_cores() == 1
    monkeypatch.setattr(runtime, "cgroup_cpu_limit", lambda: 16.0)
    assert runtime.usable_cores() == 4


def test_set_num_threads_validates_and_sets():
    import numba

    before = engine.get_num_threads()
    try:
        engine.set_num_threads(1)
        assert engine.get_num_threads() == numba.get_num_threads() == 1
    finally:
        engine.set_num_threads(before)
    limit = numba.config.NUMBA_NUM_THREADS
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(InputError, match="set_num_threads"):
            engine.set_num_threads(bad)
    with pytest.raises(InputError, match=f"at most {limit}"):
        engine.set_num_threads(limit + 1)


def _fresh(code: str, **env) -> str:
    e = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NUMBA_NUM_THREADS", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")
    }
    e.update(env, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=300, check=True
    )
    return out.stdout.strip()


def test_a_fresh_process_gets_the_default_and_the_bounded_spin():
    """Imported first, the engine sizes Numba's pool to the usable cores and bounds libgomp's spin;
    the environment's own choices win."""
    code = (
        "import os, engine, numba; from engine import runtime; "
        "print(numba.config.NUMBA_NUM_THREADS, engine.usable_cores(), os.environ.get('GOMP_SPINCOUNT'),"
        " runtime.spin_bounded())"
    )
    pool, usable, spin, bounded = _fresh(code).split()
    assert pool == usable and spin == str(runtime.SPIN_COUNT) and bounded == "True"
    pool, _, spin, bounded = _fresh(code, NUMBA_NUM_THREADS="1", OMP_WAIT_POLICY="ACTIVE").split()
    assert (pool, spin, bounded) == ("1", "None", "False")


def test_the_spin_reaches_libgomp():
    """libgomp reads GOMP_SPINCOUNT when it loads: the engine's value is in the process's environment
    before Numba's OpenMP layer starts (at the first kernel, or here get_num_threads)."""
    code = (
        "import engine, numba, os; numba.get_num_threads(); "
        "print(numba.threading_layer(), os.environ['GOMP_SPINCOUNT'], "
        "'libgomp' in open('/proc/self/maps').read())"
    )
    layer, spin, loaded = _fresh(code).split()
    if layer != "omp":
        pytest.skip(f"Numba runs the {layer} threading layer here")
    assert spin == str(runtime.SPIN_COUNT) and loaded == "True"


def _runs(pace, n, one, threaded, seen):
    """n runs taking one(run) seconds on one thread and threaded(run) threaded, timed where the pace
    asks (as the executor does); seen: 1 for each run on one thread, 2 for each threaded run."""
    for _ in range(n):
        side = pace.threaded()
        seen.append(2 if side else 1)
        if pace.sample:
            pace.done(side, threaded(len(seen)) if side else one(len(seen)))


def test_pace_runs_the_faster_side_and_tries_the_other_again(monkeypatch):
    """Both sides are tried first; then the faster runs, the other is tried (one run of the one-thread
    side, PACE_PROBE_RUNS runs in a row of the threaded side) every PACE_PROBE[0] runs, the interval
    doubling while it stays slower; one slow run is no verdict; when the cores get taken (threaded runs slow down) the next runs go to one thread within
    PACE_SAMPLES timed runs (one in PACE_SAMPLE_EVERY), and back when threads pay again."""
    monkeypatch.setattr(runtime, "PACE_ON", True)
    k, n = runtime.PACE_PROBE[0], runtime.PACE_PROBE_RUNS
    pace, seen = runtime.Pace(), []
    _runs(pace, 2, lambda r: 2.0, lambda r: 1.0, seen)
    assert seen == [2, 1]
    seen.clear()
    _runs(pace, 8 * k, lambda r: 2.0, lambda r: 1.0, seen)
    probes = [r for r, side in enumerate(seen) if side == 1 and (r == 0 or seen[r - 1] == 2)]
    assert [b - a for a, b in itertools.pairwise(probes)] == [k, 2 * k, 4 * k][: len(probes) - 1]
    assert all(seen[p : p + 2] == [1, 2] for p in probes if p + 2 <= len(seen))
    seen.clear()
    give_up, seen_up = runtime.Pace(), []  # the try's first run is over PACE_GIVE_UP x slower: no second
    _runs(give_up, 2 * k, lambda r: 9.0, lambda r: 1.0, seen_up)
    probe = seen_up.index(1, 2)
    assert seen_up[probe - 1 : probe + 2] == [2, 1, 2]
    one_slow, seen_once = runtime.Pace(), []
    _runs(one_slow, 6, lambda r: 2.0, lambda r: 9.0 if r == 3 else 1.0, seen_once)
    assert seen_once == [2, 1, 2, 2, 2, 2]
    every = runtime.PACE_SAMPLE_EVERY
    _runs(pace, 2 * every * runtime.PACE_SAMPLES, lambda r: 2.0, lambda r: 9.0, seen)  # cores taken
    assert seen[-every:] == [1] * every
    seen.clear()
    _runs(pace, 2 * k, lambda r: 2.0, lambda r: 1.0, seen)  # free again: the next probe finds it
    i = seen.index(2)
    assert i <= k and seen[i : i + n] == [2] * n and seen[i : i + k - 1] == [2] * (k - 1)
    seen.clear()
    monkeypatch.setattr(runtime, "PACE_ON", False)  # ENGINE_PACE=0
    _runs(pace, 4, lambda r: 1.0, lambda r: 9.0, seen)
    assert seen == [2] * 4


def test_a_pace_whose_other_side_has_threads_tries_it_for_as_many_runs(monkeypatch):
    """Pace(one_thread_try=n): a try of the side that is not the threaded one is n runs in a row
    (a whole batch's team runs against the batch in lanes, engine/model.py)."""
    monkeypatch.setattr(runtime, "PACE_ON", True)
    k, n = runtime.PACE_PROBE[0], runtime.PACE_PROBE_RUNS
    pace, seen = runtime.Pace(one_thread_try=n), []
    _runs(pace, 4 * k, lambda r: 2.0, lambda r: 1.0, seen)
    probes = [r for r, side in enumerate(seen) if side == 1 and r > 1 and seen[r - 1] == 2]
    assert probes and all(seen[p : p + n] == [1] * n for p in probes if p + n <= len(seen))


def test_a_model_runs_through_the_pace(models_dir):
    """Model.run times every run in its plan's Pace; every run, calibrating, threaded or single-threaded,
    gives the reference kernels' outputs."""
    import numpy as np

    from tests.oracle import reference_run

    path = models_dir / "mnist_uint8.tflite"
    m = engine.load(path)
    x = np.random.default_rng(0).integers(0, 256, (1, 28, 28, 1)).astype(np.uint8)  # (a batch: lanes)
    (want,) = reference_run(path, [x], preserve_all=False)["outputs"]
    for _ in range(6):  # the first runs time the serial builds, then the parallel ones (executor.py)
        assert np.array_equal(m.run(x)[0], want)
    pace = m.plan(1).pace
    threads = engine.get_num_threads() > 1 and m.plan(1)._threaded is not m.plan(1)._serial
    assert (len(pace.times[True]) > 0) == threads
    for _ in range(40):  # whichever side each run takes, the results are the same
        (got,) = m.run(x)
        assert np.array_equal(got, want)
    assert (len(pace.times[False]) > 0) == threads
