"""The one place that decides how the engine's threads run: how many, and how they wait.

engine/__init__.py imports this module first, so that it acts before Numba is imported and before
Numba's threading layer (OpenMP, libgomp) loads; both read their settings from the environment once.

How many: by default the cores this process may use (`usable_cores`: its CPU affinity, capped by a
cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us` quota, rounded down, at least 1), never more; the
environment's NUMBA_NUM_THREADS, where set, wins. `set_num_threads` changes it later (per calling
thread, as Numba's own), within that pool.

How they wait: every parallel kernel ends in a barrier, about a hundred per SSD inference. libgomp's
threads spin there before they sleep, by default 300,000 pause instructions (about 20 ms on the AMD
EPYC here): alone that keeps the second thread awake between kernels (fast), but two engine
processes on the same cores, or one beside a busy process, then burn each other's time slices
spinning for a thread that is not running, and an image took 400-600 ms instead of 5. Passive
waiting (OMP_WAIT_POLICY=PASSIVE, no spin) costs 2x alone: each kernel then wakes a sleeping thread.
SPIN_COUNT bounds the spin to about 70 us (GOMP_SPINCOUNT, measured in docs/contention.md): enough
to bridge most gaps between two kernels of one run, far less than a time slice. Where the cores are
taken all the same, `Pace` (each plan's) sends runs that come out 3x slower than the plan's best to
one thread for a while, where no thread waits for another.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

SPIN_COUNT = 1000  # libgomp spins before a waiting thread sleeps (docs/contention.md)
CGROUP = Path("/sys/fs/cgroup")


def _cgroup_quota_v2(rel: str, root: Path) -> float | None:
    """The tightest cpu.max quota (in CPUs) on the cgroup v2 path rel and its ancestors."""
    best = None
    parts = [p for p in rel.strip("/").split("/") if p]
    for depth in range(len(parts), -1, -1):
        f = root.joinpath(*parts[:depth], "cpu.max")
        try:
            quota, period = f.read_text().split()[:2]
        except (OSError, ValueError):
            continue
        if quota != "max" and int(period) > 0:
            cpus = int(quota) / int(period)
            best = cpus if best is None else min(best, cpus)
    return best


def _cgroup_quota_v1(rel: str, mount: Path) -> float | None:
    """The tightest cfs_quota_us / cfs_period_us (in CPUs) on the cgroup v1 path rel and its ancestors."""
    best = None
    parts = [p for p in rel.strip("/").split("/") if p]
    for depth in range(len(parts), -1, -1):
        d = mount.joinpath(*parts[:depth])
        try:
            quota = int((d / "cpu.cfs_quota_us").read_text())
            period = int((d / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        if quota > 0 and period > 0:
            best = quota / period if best is None else min(best, quota / period)
    return best


def cgroup_cpu_limit(proc_cgroup: str | None = None, root: Path = CGROUP) -> float | None:
    """CPUs this process's cgroup may use (a quota of 1.5 -> 1.5), or None where no quota is set."""
    if proc_cgroup is None:
        try:
            proc_cgroup = Path("/proc/self/cgroup").read_text()
        except OSError:
            return None
    limits = []
    for line in proc_cgroup.splitlines():
        _, controllers, rel = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # cgroup v2 (unified hierarchy)
            limits.append(_cgroup_quota_v2(rel, root))
        elif "cpu" in controllers.split(","):
            for name in (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu"):
                if (root / name).is_dir():
                    limits.append(_cgroup_quota_v1(rel, root / name))
                    break
    limits = [x for x in limits if x is not None]
    return min(limits) if limits else None


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by its cgroup's CPU quota (rounded
    down: a 1.5-CPU quota runs one thread, never more threads than the quota), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, math.floor(quota))
    return max(1, cores)


def _libgomp_loaded() -> bool:
    try:
        return "libgomp" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def configure() -> None:
    """Set the thread count and the wait policy where nobody chose them, before Numba reads them."""
    env = os.environ
    if "numba" not in sys.modules:
        env.setdefault("NUMBA_NUM_THREADS", str(usable_cores()))
    if "GOMP_SPINCOUNT" not in env and "OMP_WAIT_POLICY" not in env:
        env["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    if "numba" in sys.modules:  # imported before the engine: its pool is sized, limit the default
        import numba

        numba.set_num_threads(min(usable_cores(), numba.config.NUMBA_NUM_THREADS))


def spin_bounded() -> bool:
    """True where libgomp runs with this module's bounded spin (False: it was loaded before the
    engine, by another library, or the environment chose its own wait policy)."""
    return os.environ.get("GOMP_SPINCOUNT") == str(SPIN_COUNT) and not _PRELOADED


def set_num_threads(n: int) -> None:
    """Run the engine's kernels on n threads, from the calling thread on (Numba's setting is per
    thread). At most NUMBA_NUM_THREADS (by default the cores this process may use)."""
    import numba

    from .errors import InputError

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"set_num_threads: the thread count should be an integer >= 1, got {n!r}")
    limit = numba.config.NUMBA_NUM_THREADS
    if n > limit:
        raise InputError(
            f"set_num_threads({n}): at most {limit} threads here (the cores this process may use;"
            " set NUMBA_NUM_THREADS before importing the engine to allow more)"
        )
    numba.set_num_threads(n)


def get_num_threads() -> int:
    """The thread count the calling thread's runs use."""
    import numba

    return numba.get_num_threads()


# A run this many times slower than its plan's best (at any thread count) twice in a row: the cores
# are taken (other processes' threads, or ours waiting on each other). Runs then go single-threaded,
# where no thread waits for another that is not running, for PACE_BACKOFF[0] runs, doubling up to
# PACE_BACKOFF[1] while the probe after each back-off is slow again.
PACE_SLOW = float(os.environ.get("ENGINE_PACE_SLOW") or 3.0)
PACE_BACKOFF = (16, 256)
PACE_ON = os.environ.get("ENGINE_PACE", "1") != "0"  # ENGINE_PACE=0: always the threads asked for


class Pace:
    """Times a plan's runs; backs off to one thread while the cores are taken (docs/contention.md).

    Costs about 1.6 us per run (measured under load); Numba's thread count is only read and set while
    backing off (it is per calling thread, so each backed-off run sets it and puts it back)."""

    __slots__ = ("backoff", "best", "left", "restore", "slow", "t0")

    def __init__(self) -> None:
        self.best = math.inf
        self.slow = 0  # slow runs in a row
        self.left = 0  # single-threaded runs left in this back-off
        self.backoff = PACE_BACKOFF[0]
        self.restore = 0
        self.t0 = 0.0

    def __enter__(self) -> Pace:  # noqa: PYI034 (Python 3.10 has no typing.Self)
        if self.left:
            self.left -= 1
            import numba

            n = numba.get_num_threads()
            if n > 1:
                numba.set_num_threads(1)
                self.restore = n
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        dt = time.perf_counter() - self.t0
        if self.restore:
            import numba

            numba.set_num_threads(self.restore)
            self.restore = 0
            return
        if exc[0] is not None or not PACE_ON:
            return
        self.best = min(self.best, dt)
        if dt <= PACE_SLOW * self.best:
            self.slow, self.backoff = 0, PACE_BACKOFF[0]
            return
        self.slow += 1
        if self.slow >= 2:
            self.left, self.slow = self.backoff, 0
            self.backoff = min(2 * self.backoff, PACE_BACKOFF[1])


_PRELOADED = _libgomp_loaded()
configure()
