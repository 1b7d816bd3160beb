"""The one place that decides how the engine's threads run: how many, and how they wait.

engine/__init__.py imports this module first, so that it acts before Numba is imported and before
Numba's threading layer (OpenMP, libgomp) loads; both read their settings from the environment once.

How many: by default the cores this process may use (`usable_cores`: its CPU affinity, capped by a
cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us` quota, rounded down, at least 1), never more; the
environment's NUMBA_NUM_THREADS, where set, wins. `set_num_threads` changes it later (per calling
thread, as Numba's own), within that pool.

How they wait: every parallel kernel is a fork and a join, up to a hundred per inference. They run
on the engine's own pool (engine/kernels/pool.py): its workers spin about 70 us after their last
item, then sleep, and a region never waits for a worker that is asleep or descheduled (the caller
takes the items nobody took), so two engine processes on the same cores, or one beside a busy
process, do not burn each other's time slices (docs/contention.md). ENGINE_POOL=0 runs Numba's own
layer instead (OpenMP here: libgomp's waiting threads spin, then sleep; SPIN_COUNT bounds that spin,
GOMP_SPINCOUNT). Then `Pace` (each plan's) times threaded runs and single-threaded ones and runs
the faster: a model of small kernels, or cores taken by other processes, can make threads a loss.
"""

from __future__ import annotations

import math
import os
import sys
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

# Threads pay only where a run's kernels are large enough and the cores are free: a model of small
# kernels, or cores taken by other processes (or by another engine process), can make a threaded run
# slower than the same run on one thread. Each plan's Pace therefore times both and runs the faster,
# and tries the other again every PACE_PROBE[0] runs (the interval doubles, up to PACE_PROBE[1], while
# the other stays the slower, and starts again when they swap).
PACE_PROBE = (16, 256)
PACE_SAMPLES = 3  # each side's figure: the best of its last runs (one slow run is no verdict)
PACE_SAMPLE_EVERY = 4  # between tries, one run in this many of the chosen side is timed
# A try of the threaded side is this many runs in a row: its first run after a stretch on one thread
# is cold (YOLOv8n threaded: 18 ms, then 15; the other threads were asleep, their caches elsewhere);
# a first run over PACE_GIVE_UP times the faster side's figure, plus PACE_WAKE for waking the other
# threads (a small model's try: str_ww 20 us cold, 6 us after), ends the try (cores taken: no second).
# A try of the one-thread side is one run (nothing of it sleeps: YOLOv8n's tries cost 10 ms each),
# where that side has no threads of its own (Pace(one_thread_try)).
PACE_PROBE_RUNS = 4
PACE_GIVE_UP = 2.0
PACE_WAKE = 50e-6
PACE_ON = os.environ.get("ENGINE_PACE", "1") != "0"  # ENGINE_PACE=0: always the threads asked for


class Pace:
    """Chooses, run by run, between a plan's threaded calls and its single-threaded ones, by their
    recent times (docs/contention.md). The executor asks `threaded()` before a run and, where
    `sample` is then set, reports its time with `done()` (the tries of the other side, and one run in
    PACE_SAMPLE_EVERY of the chosen side: timing every run costs a small model more than a micro-
    second, hello_world's whole run being 3)."""

    __slots__ = ("fast", "interval", "next_probe", "probing", "runs", "sample", "times", "tries")

    def __init__(self, one_thread_try: int = 1) -> None:
        """one_thread_try: the runs of a try of the other side (more than one where it has threads
        of its own to wake: a whole batch's team runs against the batch in lanes, engine/model.py)."""
        self.tries = (one_thread_try, PACE_PROBE_RUNS)  # runs of a try, by side
        self.times: tuple[list[float], list[float]] = ([], [])  # recent seconds: one thread, threaded
        self.fast = True  # the side with the better figure
        self.runs = 0
        self.interval = PACE_PROBE[0]
        self.next_probe = PACE_PROBE[0]
        self.probing = 0  # runs left of the try under way
        self.sample = True  # whether this run is timed

    def _figure(self, threaded: bool) -> float:
        t = self.times[threaded]
        return min(t) if t else 0.0  # an untried side comes first

    def threaded(self) -> bool:
        """Whether this run goes threaded (and sets `sample`)."""
        if not PACE_ON:
            self.sample = False
            return True
        self.runs += 1
        if self.probing:
            self.probing -= 1
            self.sample = True
            return not self.fast
        if self.runs >= self.next_probe:  # the try's times alone are the other side's new figure
            self.next_probe = self.runs + self.interval
            self.interval = min(2 * self.interval, PACE_PROBE[1])
            self.times[not self.fast].clear()
            self.probing = self.tries[not self.fast] - 1
            self.sample = True
            return not self.fast
        self.sample = self.runs % PACE_SAMPLE_EVERY == 0 or len(self.times[self.fast]) < PACE_SAMPLES
        return self.fast

    def done(self, threaded: bool, seconds: float) -> None:
        """A run took `seconds`, threaded or not."""
        t = self.times[threaded]
        t.append(seconds)
        if len(t) > PACE_SAMPLES:
            del t[0]
        if self.probing and threaded != self.fast and seconds > PACE_GIVE_UP * self._figure(self.fast) + PACE_WAKE:
            self.probing = 0
        if self.probing:
            return
        fast = self._figure(True) <= self._figure(False)
        if fast != self.fast:  # the sides swapped: try the other again soon
            self.fast, self.interval = fast, PACE_PROBE[0]
            self.next_probe = self.runs + self.interval


_PRELOADED = _libgomp_loaded()
configure()


_LANE_POOL: list = []  # the pool of run_lanes's extra threads, made at its first use


def run_lanes(tasks: list) -> list:
    """Run the callables `tasks` at once, each on a thread of its own at one Numba thread (the
    first on the calling thread), and return their results in order: a large batch split in parts
    that share nothing runs with no fork and join per kernel (kernels release the GIL). Every task
    has finished when this returns or raises (the first error in order is raised)."""
    import concurrent.futures

    import numba

    if not _LANE_POOL:
        workers = max(1, numba.config.NUMBA_NUM_THREADS - 1)
        _LANE_POOL.append(concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="engine-lane"))
    futures = [_LANE_POOL[0].submit(_one_thread, task) for task in tasks[1:]]
    outcomes = [_outcome(_one_thread, tasks[0]), *(_outcome(f.result) for f in futures)]
    for ok, value in outcomes:
        if not ok:
            raise value
    return [value for _, value in outcomes]


def _one_thread(task):
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return task()
    finally:
        numba.set_num_threads(before)


def _outcome(fn, *args) -> tuple[bool, object]:
    try:
        return True, fn(*args)
    except BaseException as e:  # noqa: BLE001 (raised by run_lanes once every task is done)
        return False, e
