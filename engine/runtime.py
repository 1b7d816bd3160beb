"""The one place that decides how the engine's threads run: how many, and how they wait.

engine/__init__.py imports this module first, so that it acts before Numba is imported and before
Numba's threading layer (OpenMP, libgomp) loads; both read their settings from the environment once.

How many: by default the cores this process may use (`usable_cores`: its CPU affinity, capped by a
cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us` quota, rounded down, at least 1), never more; the
environment's NUMBA_NUM_THREADS, where set, wins. `set_num_threads` changes it later (per calling
thread, as Numba's own), within that pool.

How they wait: every parallel kernel is a fork and a join, up to a hundred per inference. With
Numba's OpenMP layer (libgomp) a waiting thread spins, then sleeps: libgomp's default spin (about
20 ms here) keeps the second thread awake between kernels, but two engine processes on the same cores,
or one beside a busy process, then burn each other's time slices spinning for a thread that is not
running (400-600 ms an image instead of 5); a short spin sleeps at most kernels and pays a wake-up
(tens of microseconds in a VM) at the next. Numba's TBB layer does not have that trade: its idle
threads spin yielding the core (sched_yield) to whoever waits for it, and the thread that starts a
kernel works through its tasks instead of waiting on a thread that is not running. So the engine runs
on TBB (the `tbb` wheel, a dependency; `use_tbb`), and where TBB cannot load, on libgomp with the spin
bounded to SPIN_COUNT (docs/contention.md). Where the cores are taken all the same, `Pace` (each
plan's) sends runs that come out 3x slower than the plan's best to one thread for a while.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import sysconfig
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


TBB_LIBRARY = "libtbb.so.12"  # the interface Numba's TBB layer links against


def use_tbb() -> bool:
    """Load TBB's library for Numba's TBB layer: pip installs it in the environment's lib/, which the
    loader does not search (Numba's extension carries no RPATH), so it is loaded here by path, into the
    global namespace, where the extension's dependency then finds it. False where it is not installed."""
    dirs = {
        Path(sys.prefix) / "lib",
        Path(sys.base_prefix) / "lib",
        Path(sysconfig.get_config_var("LIBDIR") or ""),
    }
    for path in [d / TBB_LIBRARY for d in dirs if d.parts] + [Path(TBB_LIBRARY)]:
        if path.parts[:-1] and not path.exists():
            continue
        try:
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        except OSError:
            continue
        return True
    return False


def configure() -> None:
    """Set the thread count, the threading layer and the wait policy where nobody chose them, before
    Numba reads them."""
    env = os.environ
    if "numba" not in sys.modules:
        env.setdefault("NUMBA_NUM_THREADS", str(usable_cores()))
        # (inherited "tbb", e.g. in a worker process, needs the library loaded again)
        if env.get("NUMBA_THREADING_LAYER", "default") in ("default", "tbb") and use_tbb():
            env["NUMBA_THREADING_LAYER"] = "tbb"
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


def threads_now() -> int:
    """The calling thread's thread count, as numba.get_num_threads() without its checks (0.2 us
    instead of 1.5: the executor reads it every run). Numba's pool is launched by engine.kernels."""
    global _get_num_threads
    if _get_num_threads is None:
        import numba
        from numba.np.ufunc import parallel

        numba.get_num_threads()  # launches the pool: the raw getter reads it
        _get_num_threads = getattr(parallel, "_get_num_threads", numba.get_num_threads)
    return _get_num_threads()


_get_num_threads = None

# A run this many times slower than its plan's best twice in a row: the cores are taken (other
# processes' threads, or ours waiting on each other). Runs then go single-threaded (each kernel's
# serial build), where no thread waits for another that is not running, for PACE_BACKOFF[0] runs,
# doubling up to PACE_BACKOFF[1] while the probe after each back-off is slow again.
PACE_SLOW = float(os.environ.get("ENGINE_PACE_SLOW") or 3.0)
PACE_BACKOFF = (16, 256)
PACE_ON = os.environ.get("ENGINE_PACE", "1") != "0"  # ENGINE_PACE=0: always the threads asked for


class Pace:
    """Times a plan's threaded runs; sends runs to one thread while the cores are taken
    (docs/contention.md). The executor asks `backing_off()` before a threaded run and reports its
    time with `done()`; single-threaded runs are not timed."""

    __slots__ = ("backoff", "best", "left", "slow")

    def __init__(self) -> None:
        self.best = math.inf
        self.slow = 0  # slow runs in a row
        self.left = 0  # single-threaded runs left in this back-off
        self.backoff = PACE_BACKOFF[0]

    def backing_off(self) -> bool:
        """True: this run goes single-threaded (one of the back-off's runs)."""
        if self.left:
            self.left -= 1
            return True
        return False

    def done(self, seconds: float) -> None:
        """A threaded run took `seconds`."""
        if not PACE_ON:
            return
        self.best = min(self.best, seconds)
        if seconds <= PACE_SLOW * self.best:
            self.slow, self.backoff = 0, PACE_BACKOFF[0]
            return
        self.slow += 1
        if self.slow >= 2:
            self.left, self.slow = self.backoff, 0
            self.backoff = min(2 * self.backoff, PACE_BACKOFF[1])


_PRELOADED = _libgomp_loaded()
configure()
