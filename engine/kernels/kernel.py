"""Kernels compiled two ways: as a team build, and with prange spread over threads.

A kernel is one prange loop over independent tasks, its last statement. Its team build is the serial
code with prange(n) standing for the part of range(n) that the thread running it took in a team run
(pool.team_range), and for all of range(n) anywhere else: it is the kernel's serial build too, so
each kernel is compiled once for both (a second serial build cost a third of a cold compile), except
where a kernel's calls are so short that the team build's loop shows (own_serial: FULLY_CONNECTED of 4
rows or more; fewer take fc_packed.FEW_ROWS, plain functions). The
executor runs every kernel's serial build at one thread. At more threads it runs a plan's calls as
team runs (native.py run_team): the threads go through the calls together, and a large call's team
build shares the loop without a fork and join. Where team runs cannot go (not x86-64 Linux,
ENGINE_TEAM=0), each large call runs its parallel build (Numba's parfor on the engine's pool,
pool.py: about 0.3 us a region with the workers awake, tens of microseconds to wake one) where
timing says it pays (engine/executor.py). Ops bind arguments valid for every build (serial_call: a
kernel may give its serial build other arguments, a split of one).
"""

from __future__ import annotations

from types import FunctionType

import numba
import numpy as np
from numba import njit
from numba.core.dispatcher import Dispatcher

from . import pool, refops

# Launches Numba's threading layer now: kernels index per-thread scratch by numba.get_thread_id(),
# which calls into that layer (a null pointer before it runs), in serial builds too.
numba.get_num_threads()
# ... and routes its parallel regions through the engine's own pool (pool.py), before any kernel is
# compiled or loaded from the cache
pool.install(numba.config.NUMBA_NUM_THREADS)
# ... and compiles kernels without counting references to the arrays they are given (refops.py)
refops.install()
# elements (or multiply-accumulates / 16) below which pick() gives the serial build: the choice of
# steps that are not timed (constant folding, the warm-up of a plan that has not run)
PARALLEL_MIN_WORK = 1 << 16

BUILDS: dict = {}  # each build (a Numba dispatcher) -> its Kernel


class Kernel:
    serial_args = None  # args -> the serial build's args (serial_call), where they differ

    def __init__(self, fn: FunctionType, team: bool = True, own_serial: bool = False):
        self.fn = fn
        self.parallel = njit(parallel=True, cache=True, nogil=True)(fn)
        self._team = None if team else False  # (made at first use: team_build)
        # without a team build, or where the team build's loop costs a small kernel's call (own_serial):
        # the code compiled with prange as range
        apart = own_serial or not team
        self._serial = njit(cache=True, nogil=True)(_twin(fn, "_serial", fn.__globals__)) if apart else None
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        BUILDS[self.parallel] = self
        if self._serial is not None:
            BUILDS[self._serial] = self

    @property
    def serial(self):
        """The serial build: the team build (outside a team run's split call its prange is all of
        range(n)), or for a kernel without one its code with prange as range."""
        return self.team if self._serial is None else self._serial

    @property
    def team(self):
        """The team build (native.run_team): serial, its prange(n) the part of range(n) that the
        thread running it claimed; None where the kernel's code before its loop writes to memory the
        other threads read (each thread runs that code). Made at first use, once the kernel's module
        has defined every name the kernel reads."""
        if self._team is None:
            twin = _twin(self.fn, "_team", {**self.fn.__globals__, "prange": pool.team_range})
            self._team = njit(cache=True, nogil=True)(twin)
            BUILDS[self._team] = self
        return self._team or None

    def pick(self, work: int):
        """The build for a run of `work` elementary steps."""
        return self.parallel if work >= PARALLEL_MIN_WORK else self.serial


def kernel(fn: FunctionType | None = None, *, team: bool = True, own_serial: bool = False):
    """Decorator: an njit kernel with a team (= serial) and a parallel build (see Kernel); its one
    prange loop is its last statement. team=False: the code before the loop writes to shared memory
    (no team build: a serial build of its own). own_serial: a serial build of its own beside the team
    build, for kernels whose calls are short: the team build's loop, its bounds read at run time, cost
    hello_world's three FULLY_CONNECTED layers 0.32 -> 0.52 us a run at batch 8, 1.74 -> 2.03 at batch 64
    (one thread, through native.run_calls), for a second compile of the kernel where it runs at one
    thread."""
    if fn is None:
        return lambda f: Kernel(f, team, own_serial)
    return Kernel(fn, team, own_serial)


def _twin(fn: FunctionType, suffix: str, globals_: dict) -> FunctionType:
    """fn's code as a distinct function (and name: Numba caches the builds apart) reading globals_."""
    twin = FunctionType(fn.__code__, globals_, fn.__name__ + suffix, fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + suffix
    twin.__module__ = fn.__module__
    return twin


def team_build(fn):
    """fn's team build where fn is a Kernel's build that has one, else None."""
    k = BUILDS.get(fn)
    return None if k is None else k.team


def compiled_for(fn, args: tuple):
    """The compile result of Numba dispatcher fn for exactly these arguments' types (its entry_point,
    library, signature), or None: fn is no dispatcher, Numba cannot type an argument, or fn was not
    compiled for them."""
    key = _types(fn, args)
    return None if key is None else fn.overloads.get(key)


def compile_for(fn, args: tuple):
    """compiled_for(fn, args), compiling (or loading from the cache) fn for them first where needed."""
    key = _types(fn, args)
    if key is None:
        return None
    if key not in fn.overloads:
        fn.compile(key)
    return fn.overloads.get(key)


def _types(fn, args: tuple) -> tuple | None:
    """The Numba types of args as dispatcher fn types them, or None (no dispatcher, an untypable one)."""
    if not isinstance(fn, Dispatcher):
        return None
    try:
        return tuple(_typeof(fn, a) for a in args)
    except Exception:  # noqa: BLE001 (an argument Numba cannot type)
        return None


_TYPES: dict = {}  # _type_key(value) -> the Numba type of such values


def _typeof(fn, value):
    """fn.typeof_pyval(value), remembered by what Numba's typeof reads of the value (_type_key): a
    plan's calls are typed some 600 times as it loads (SSD-MobileNet), 0.05-0.1 ms each in Numba."""
    key = _type_key(value)
    if key is None:
        return fn.typeof_pyval(value)
    ty = _TYPES.get(key)
    if ty is None:
        ty = _TYPES[key] = fn.typeof_pyval(value)
    return ty


def _type_key(value):
    """What Numba's typeof (numba/core/typing/typeof.py) types a value by, for plain arrays, numbers
    and tuples of them; None for anything else (typed by Numba every time)."""
    kind = type(value)
    if kind is np.ndarray:
        flags = value.flags
        return (kind, value.dtype, value.ndim, flags.c_contiguous, flags.f_contiguous, flags.writeable)
    if kind is bool or kind is float:
        return kind
    if kind is int:  # (typed by its bit length)
        bits = value.bit_length()
        return kind, bits < 32, bits < 64, value >= 0 and bits == 64
    if isinstance(value, np.generic):
        return kind, value.dtype
    if isinstance(value, tuple):  # (a named tuple's class is part of its type)
        keys = tuple(_type_key(v) for v in value)
        return None if any(k is None for k in keys) else (kind, keys)
    return None


def serial_build(fn):
    """fn's serial build where fn is a Kernel's build, else fn."""
    k = BUILDS.get(fn)
    return fn if k is None else k.serial


def serial_call(fn, args: tuple) -> tuple:
    """(fn's serial build, the arguments it takes) for the call fn(*args): a kernel whose work is
    split for the threads (depthwise: row chunks) may take a split of one on its serial build."""
    k = BUILDS.get(fn)
    if k is None:
        return fn, args
    return k.serial, (args if k.serial_args is None else k.serial_args(args))


def parallel_build(fn):
    """fn's parallel build where fn is a Kernel's build, else fn."""
    k = BUILDS.get(fn)
    return fn if k is None else k.parallel
