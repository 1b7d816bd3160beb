"""The engine's own fork and join: Numba's parallel regions run on threads of this module.

Numba lowers a prange loop into a call of `numba_parallel_for(fn, args, dims, steps, data, ...)`, a
symbol of its threading layer, which calls fn once per item of a schedule (one item per thread). Its
OpenMP layer costs 1.5-2 us a region with the threads awake, and 25-110 us where one must be woken:
more than most small kernels' work. `install()` points that symbol (and `get_thread_id`) at the
functions below instead, before any kernel is compiled or loaded from the cache:

- a worker thread per extra core waits in native code (no GIL) for a region: it spins SPIN_CYCLES
  after its last item, then sleeps on a futex (a process beside a busy one gives its core back);
- the calling thread publishes a region and takes items itself; a worker takes any item left, so a
  sleeping or descheduled worker never holds a region up: the caller runs what nobody took and waits
  only for items under way. Each item is claimed by a compare-and-swap on one word holding the
  region's generation and its next item, so a worker that reads a region as it is replaced fails
  its claim instead of running stale work;
- a region started while the pool is taken (another Python thread, or a region inside an item) runs
  its items on the calling thread, as does every region after a fork until the workers are back.

A team run (native.run_team) is a region of an item per worker whose item is the worker's turn
through a plan's calls beside the caller's: team_open publishes it, team_close drops the items nobody
took and waits for those taken; team_range is a team build's prange, the part of the loop that the
thread's slot (PARTS) names. Another Python thread has thread id 0 too, as a team run's caller has:
a slot's part counts only on the thread that marked the slot with its pthread id (native._turn).

Items and thread ids are those of Numba's layer (an item per thread, `get_thread_id()` below the
region's thread count), so every kernel computes exactly what it computed on OpenMP.
ENGINE_POOL=0 keeps Numba's own layer.
"""

from __future__ import annotations

import atexit
import os
import threading

import numba
import numpy as np
from llvmlite import binding as ll
from llvmlite import ir
from numba import cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

ENABLED = os.environ.get("ENGINE_POOL", "1") != "0"
SPIN_CYCLES = 200_000  # a worker spins this many TSC cycles (~70 us) after its last item, then sleeps
JOIN_YIELD_CYCLES = 2_000_000  # the caller waiting for items under way yields its core after this
MAX_THREADS = 64
SLOT = 512  # words of each thread's item space: the dimensions (<= ARG_MAX), then the arguments
ARG_MAX = 64

# the state: int64 words, the hot ones each on a cache line of their own
CLAIM = 0  # generation << 32 | next item of the region
DONE = 8  # items of the region finished
BUSY = 16  # 1 while a caller owns the pool
FN, ARGS, DIMS, STEPS, DATA, ARG_LEN, ARRAY_COUNT, SIZE, MAX_TID = range(24, 33)  # the region
WAKE = 40  # futex word (its low 32 bits), bumped where a region finds workers asleep
SLEEPERS = 48
STOP = 56
WORKERS = 57
TIDS = 64  # pthread id of worker k at TIDS + k
TIMESPEC = 64 + MAX_THREADS  # a sleep's timeout: (seconds, nanoseconds)
SCHEDULER = 200  # Numba's do_scheduling_signed, _unsigned (for loops of more than one dimension)
TEAM_ITEMS = 208  # a team run's region: its item count (the region's dimensions)
PARTS = 256  # thread k's part of a team run's split call at PARTS + 8 k, the call's parts and the
# pthread id of the thread in that team run (0: none) after it
SCRATCH = PARTS + 8 * MAX_THREADS
WORDS = SCRATCH + MAX_THREADS * SLOT
ITEM_MASK = 0xFFFFFFFF

SYS_FUTEX = 202  # x86-64
FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE = 128, 129
SYMBOL = "engine_pool_state"

_state = np.zeros(WORDS, np.int64)
_state[CLAIM] = ITEM_MASK  # closed: no item to take
_state[TIMESPEC + 1] = 100_000_000  # a lost wake-up costs at most 0.1 s
_state[PARTS:SCRATCH:8] = -1  # no thread in a team run's call
# the native code below reaches the state by this symbol, bound before any of it is linked
ll.add_symbol(SYMBOL, _state.ctypes.data)


# -- native pieces: addresses are int64, every load of shared state atomic -------------------------

_i64 = ir.IntType(64)


def _ptr(builder, addr, ty=_i64):
    return builder.inttoptr(addr, ty.as_pointer())


@intrinsic
def _base(typingctx):
    """The state's address (a symbol that install() binds to _state, so cached code stays valid)."""

    def codegen(context, builder, signature, args):
        mod = builder.module
        gv = mod.globals.get(SYMBOL)
        if gv is None:
            gv = ir.GlobalVariable(mod, ir.IntType(8), SYMBOL)
            gv.linkage = "external"
        return builder.ptrtoint(gv, _i64)

    return types.int64(), codegen


@intrinsic
def atomic_load(typingctx, addr):
    def codegen(context, builder, signature, args):
        return builder.load_atomic(_ptr(builder, args[0]), "acquire", 8)

    return types.int64(types.int64), codegen


@intrinsic
def atomic_store(typingctx, addr, value):
    def codegen(context, builder, signature, args):
        builder.store_atomic(args[1], _ptr(builder, args[0]), "release", 8)
        return context.get_dummy_value()

    return types.void(types.int64, types.int64), codegen


@intrinsic
def plain_load(typingctx, addr):
    def codegen(context, builder, signature, args):
        return builder.load(_ptr(builder, args[0]), align=8)

    return types.int64(types.int64), codegen


@intrinsic
def plain_store(typingctx, addr, value):
    def codegen(context, builder, signature, args):
        builder.store(args[1], _ptr(builder, args[0]), align=8)
        return context.get_dummy_value()

    return types.void(types.int64, types.int64), codegen


@intrinsic
def cas(typingctx, addr, expected, new):
    def codegen(context, builder, signature, args):
        out = builder.cmpxchg(_ptr(builder, args[0]), args[1], args[2], "acq_rel", "acquire")
        return builder.extract_value(out, 1)

    return types.boolean(types.int64, types.int64, types.int64), codegen


@intrinsic
def atomic_add(typingctx, addr, value):
    """Atomic add (sequentially consistent); returns the old value."""

    def codegen(context, builder, signature, args):
        return builder.atomic_rmw("add", _ptr(builder, args[0]), args[1], "seq_cst")

    return types.int64(types.int64, types.int64), codegen


@intrinsic
def atomic_or(typingctx, addr, value):
    """Atomic or (sequentially consistent); returns the old value."""

    def codegen(context, builder, signature, args):
        return builder.atomic_rmw("or", _ptr(builder, args[0]), args[1], "seq_cst")

    return types.int64(types.int64, types.int64), codegen


@intrinsic
def _fence(typingctx):
    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _wake_word(typingctx, addr):
    """The futex word's value (32 bits)."""

    def codegen(context, builder, signature, args):
        v = builder.load_atomic(_ptr(builder, args[0], ir.IntType(32)), "seq_cst", 4)
        return builder.sext(v, _i64)

    return types.int64(types.int64), codegen


@intrinsic
def _pause(typingctx):
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause"
        )
        builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _cycles(typingctx):
    def codegen(context, builder, signature, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_i64, []), "llvm.readcyclecounter"
        )
        return builder.call(fn, [])

    return types.int64(), codegen


def _libc_call(builder, name: str, ret: ir.Type, params: list, args: list, var_arg: bool = False):
    """A call of the C library's `name`, resolved by symbol when the code is linked (cacheable)."""
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ret, params, var_arg=var_arg), name)
    out = builder.call(fn, args)
    return builder.sext(out, _i64) if ret.width < 64 else out


@intrinsic
def pthread_self(typingctx):
    def codegen(context, builder, signature, args):
        return _libc_call(builder, "pthread_self", _i64, [], [])

    return types.int64(), codegen


@intrinsic
def _sched_yield(typingctx):
    def codegen(context, builder, signature, args):
        return _libc_call(builder, "sched_yield", ir.IntType(32), [], [])

    return types.int64(), codegen


@intrinsic
def _futex(typingctx, addr, op, value, timeout):
    """syscall(SYS_futex, addr, op, value, timeout)."""

    def codegen(context, builder, signature, args):
        value32 = builder.trunc(args[2], ir.IntType(32))
        op32 = builder.trunc(args[1], ir.IntType(32))
        return _libc_call(
            builder, "syscall", _i64, [_i64], [_i64(SYS_FUTEX), args[0], op32, value32, args[3]], True
        )

    return types.int64(types.int64, types.int64, types.int64, types.int64), codegen


@intrinsic
def _call_item(typingctx, fn, args, dims, steps, data):
    """fn(args, dims, steps, data): a parallel region's item function."""

    def codegen(context, builder, signature, a):
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p.as_pointer(), _i64.as_pointer(), _i64.as_pointer(), i8p])
        f = builder.inttoptr(a[0], fnty.as_pointer())
        builder.call(
            f,
            [
                _ptr(builder, a[1], i8p),
                _ptr(builder, a[2]),
                _ptr(builder, a[3]),
                _ptr(builder, a[4], ir.IntType(8)),
            ],
        )
        return context.get_dummy_value()

    return types.void(types.int64, types.int64, types.int64, types.int64, types.int64), codegen


# -- the region: items, the caller, the workers -----------------------------------------------------


@njit(inline="always")
def _run_item(fn, args, dims, steps, data, arg_len, array_count, r, space):
    """Item r: the dimensions with one schedule entry, each argument pointer advanced by its step."""
    for j in range(arg_len):
        plain_store(space + 8 * j, plain_load(dims + 8 * j))
    plain_store(space, 1)
    argv = space + 8 * ARG_MAX
    for j in range(array_count):
        a = plain_load(args + 8 * j)
        plain_store(argv + 8 * j, a + plain_load(steps + 8 * j) * r if a != 0 else 0)
    _call_item(fn, argv, space, steps, data)


@njit(inline="always")
def _run_inline(fn, args, dims, steps, data, arg_len, array_count, size):
    space = np.empty(ARG_MAX + array_count, np.int64)
    for r in range(size):
        _run_item(fn, args, dims, steps, data, arg_len, array_count, r, space.ctypes.data)


@njit(inline="always")
def _publish(s, fn, args, dims, steps, data, arg_len, array_count, size, max_tid):
    """Opens a region of `size` items (the caller owns the pool) and wakes sleeping workers."""
    atomic_store(s + 8 * FN, fn)
    atomic_store(s + 8 * ARGS, args)
    atomic_store(s + 8 * DIMS, dims)
    atomic_store(s + 8 * STEPS, steps)
    atomic_store(s + 8 * DATA, data)
    atomic_store(s + 8 * ARG_LEN, arg_len)
    atomic_store(s + 8 * ARRAY_COUNT, array_count)
    atomic_store(s + 8 * SIZE, size)
    atomic_store(s + 8 * MAX_TID, max_tid)
    atomic_store(s + 8 * DONE, 0)
    generation = (atomic_load(s + 8 * CLAIM) >> 32) + 1  # (the claim is closed: workers take nothing yet)
    atomic_store(s + 8 * CLAIM, generation << 32)
    _fence()
    if atomic_load(s + 8 * SLEEPERS) > 0:
        atomic_add(s + 8 * WAKE, 1)
        _futex(s + 8 * WAKE, FUTEX_WAKE_PRIVATE, MAX_THREADS, 0)


@njit(inline="always")
def wait_until(addr, value):
    """Waits until the word at addr is at least value: spins, then yields the core (its writer is
    running, or descheduled: then another process needs the core)."""
    t0 = _cycles()
    while atomic_load(addr) < value:
        if _cycles() - t0 > JOIN_YIELD_CYCLES:
            _sched_yield()
        else:
            _pause()


@njit(inline="always")
def _close(s, taken):
    """Ends the region once its `taken` items are done: closed before the fields change again."""
    wait_until(s + 8 * DONE, taken)
    atomic_store(s + 8 * CLAIM, ((atomic_load(s + 8 * CLAIM) >> 32) << 32) | ITEM_MASK)
    atomic_store(s + 8 * BUSY, 0)


@cfunc(
    types.void(
        types.int64, types.int64, types.int64, types.int64, types.int64, types.int64, types.int64, types.int64
    ),
    cache=True,
)
def parallel_for(fn, args, dims, steps, data, inner_ndim, array_count, num_threads):
    """numba_parallel_for: the caller publishes the region, takes items with the workers, waits for
    the items under way."""
    s = _base()
    arg_len = inner_ndim + 1
    size = plain_load(dims)
    free = num_threads > 1 and size > 1 and atomic_load(s + 8 * WORKERS) > 0
    if not free or arg_len > ARG_MAX or array_count > SLOT - ARG_MAX or not cas(s + 8 * BUSY, 0, 1):
        _run_inline(fn, args, dims, steps, data, arg_len, array_count, size)
        return
    _publish(s, fn, args, dims, steps, data, arg_len, array_count, size, num_threads - 1)
    space = s + 8 * SCRATCH
    while True:
        c = atomic_load(s + 8 * CLAIM)
        r = c & ITEM_MASK
        if r >= size:
            break
        if cas(s + 8 * CLAIM, c, c + 1):
            _run_item(fn, args, dims, steps, data, arg_len, array_count, r, space)
            atomic_add(s + 8 * DONE, 1)
    _close(s, size)


# -- team runs (native.run_team): the threads go through a plan's calls together ----------------------


@njit(inline="always")
def team_open(fn, data, size):
    """Opens a region of an item per worker up to size - 1, each calling fn(.., data) on its thread
    (its thread id is its place in the team); False where the pool is taken or has no workers."""
    s = _base()
    workers = atomic_load(s + 8 * WORKERS)
    if size < 2 or workers == 0 or not cas(s + 8 * BUSY, 0, 1):
        return False
    items = min(size - 1, workers)
    atomic_store(s + 8 * TEAM_ITEMS, items)  # (the region's one dimension; it has no arrays)
    _publish(s, fn, 0, s + 8 * TEAM_ITEMS, 0, data, 1, 0, items, items)
    return True


@njit(inline="always")
def team_close():
    """Ends a team run's region: the items no worker has taken are dropped (the caller ran their
    parts), those taken are waited for (their threads finish the run's last call with the caller)."""
    s = _base()
    size = atomic_load(s + 8 * SIZE)
    while True:
        c = atomic_load(s + 8 * CLAIM)
        taken = c & ITEM_MASK
        if taken >= size:
            taken = size
            break
        if cas(s + 8 * CLAIM, c, c - taken + size):
            break
    _close(s, taken)


@njit(inline="always")
def part_slot(thread):
    """Where `thread`'s part of the split call it runs is (-1: none), that call's parts after it, then
    the pthread id of the thread in a team run as member `thread` (0: none)."""
    return _base() + 8 * (PARTS + 8 * thread)


@njit(inline="always")
def team_range(n):
    """A team build's prange(n) (kernel.py): the calling thread's part of range(n) in the split call
    of a team run that it runs, else all of it (the team build is the serial build too)."""
    slot = part_slot(numba.get_thread_id())
    part = plain_load(slot)
    # (thread id 0 is every Python thread's outside the pool too: a part counts only on the thread
    # that marked the slot for its team run, native._turn)
    if part < 0 or plain_load(slot + 16) != pthread_self():
        return range(n)
    parts = plain_load(slot + 8)
    return range(part * n // parts, (part + 1) * n // parts)


@intrinsic
def _call_scheduler(typingctx, fn, num_dim, starts, ends, divisions, sched, debug):
    """Numba's do_scheduling_(un)signed at address fn."""

    def codegen(context, builder, signature, a):
        fnty = ir.FunctionType(
            ir.VoidType(), [_i64, _i64.as_pointer(), _i64.as_pointer(), _i64, _i64.as_pointer(), _i64]
        )
        f = builder.inttoptr(a[0], fnty.as_pointer())
        builder.call(f, [a[1], _ptr(builder, a[2]), _ptr(builder, a[3]), a[4], _ptr(builder, a[5]), a[6]])
        return context.get_dummy_value()

    sig = types.void(*[types.int64] * 7)
    return sig, codegen


@njit(inline="always")
def _schedule(num_dim, starts, ends, divisions, sched, debug, fallback):
    """A one-dimensional loop's schedule without the allocations of Numba's (std::vector's: a
    fifth of a small region's cost): division i runs the same iterations as in Numba's (one each
    where they are fewer than the divisions, an empty range (1, 0) for the rest), else
    near-equal runs in order. Loops of more dimensions go to Numba's scheduler."""
    if num_dim != 1 or debug != 0:
        _call_scheduler(atomic_load(_base() + 8 * fallback), num_dim, starts, ends, divisions, sched, debug)
        return
    start, end = plain_load(starts), plain_load(ends)
    n = end - start + 1
    cur = 0
    for i in range(divisions):
        if n <= divisions:
            lo, hi = (start + i, start + i) if i < n else (1, 0)
        else:
            run = (n - cur - 1) // (divisions - i) + 1
            lo, hi = start + cur, (start + cur + run - 1 if i < divisions - 1 else end)
            cur += run
        plain_store(sched + 16 * i, lo)
        plain_store(sched + 16 * i + 8, hi)


@cfunc(types.void(types.int64, types.int64, types.int64, types.int64, types.int64, types.int64), cache=True)
def schedule_signed(num_dim, starts, ends, divisions, sched, debug):
    _schedule(num_dim, starts, ends, divisions, sched, debug, SCHEDULER)


@cfunc(types.void(types.int64, types.int64, types.int64, types.int64, types.int64, types.int64), cache=True)
def schedule_unsigned(num_dim, starts, ends, divisions, sched, debug):
    _schedule(num_dim, starts, ends, divisions, sched, debug, SCHEDULER + 1)


@cfunc(types.int32(), cache=True)
def thread_id():
    """get_thread_id: worker k's id is k, any other thread's 0."""
    s = _base()
    me = pthread_self()
    for k in range(1, atomic_load(s + 8 * WORKERS) + 1):
        if atomic_load(s + 8 * (TIDS + k)) == me:
            return k
    return 0


@njit(nogil=True, cache=True)
def _worker(tid):
    """Worker tid's loop: take items of the regions, spin a while between them, then sleep."""
    s = _base()
    atomic_store(s + 8 * (TIDS + tid), pthread_self())
    space = s + 8 * (SCRATCH + tid * SLOT)
    idle_since = _cycles()
    while atomic_load(s + 8 * STOP) == 0:
        c = atomic_load(s + 8 * CLAIM)
        r = c & ITEM_MASK
        fn, args, dims = atomic_load(s + 8 * FN), atomic_load(s + 8 * ARGS), atomic_load(s + 8 * DIMS)
        steps, data = atomic_load(s + 8 * STEPS), atomic_load(s + 8 * DATA)
        arg_len, array_count = atomic_load(s + 8 * ARG_LEN), atomic_load(s + 8 * ARRAY_COUNT)
        open_ = r < atomic_load(s + 8 * SIZE) and tid <= atomic_load(s + 8 * MAX_TID)
        if open_:
            # the fields read above are this generation's where the claim succeeds (docstring)
            if cas(s + 8 * CLAIM, c, c + 1):
                _run_item(fn, args, dims, steps, data, arg_len, array_count, r, space)
                atomic_add(s + 8 * DONE, 1)
                idle_since = _cycles()
            continue
        if _cycles() - idle_since < SPIN_CYCLES:
            _pause()
            continue
        atomic_add(s + 8 * SLEEPERS, 1)
        word = _wake_word(s + 8 * WAKE)
        if atomic_load(s + 8 * CLAIM) == c and atomic_load(s + 8 * STOP) == 0:
            _futex(s + 8 * WAKE, FUTEX_WAIT_PRIVATE, word, s + 8 * TIMESPEC)
        atomic_add(s + 8 * SLEEPERS, -1)
        idle_since = _cycles()
    return 0


_threads: list[threading.Thread] = []


def _start(workers: int) -> None:
    _state[CLAIM] = ITEM_MASK
    _state[STOP] = 0
    _state[BUSY] = 0
    _state[TIDS : TIDS + MAX_THREADS] = 0
    _state[WORKERS] = workers
    _threads.clear()
    for tid in range(1, workers + 1):
        t = threading.Thread(target=_worker, args=(tid,), name=f"engine-pool-{tid}", daemon=True)
        t.start()
        _threads.append(t)


def _stop() -> None:
    _state[STOP] = 1
    _state[WAKE] += 1
    _futex_wake_all()
    for t in _threads:
        t.join(timeout=1.0)


@njit(cache=True)
def _wake_all():
    s = _base()
    atomic_add(s + 8 * WAKE, 1)
    return _futex(s + 8 * WAKE, FUTEX_WAKE_PRIVATE, MAX_THREADS, 0)


def _futex_wake_all() -> None:
    _wake_all()


def _after_fork_in_child() -> None:
    _state[WORKERS] = 0  # the workers are not in this process: regions run on the caller
    _start(_worker_count)


_installed = False
_worker_count = 0


def installed() -> bool:
    """Whether Numba's parallel regions run on this pool."""
    return _installed


def install(threads: int) -> bool:
    """Route Numba's parallel regions through this pool of threads - 1 workers (once, before any
    kernel is compiled or loaded). False where disabled or not on x86-64 Linux."""
    global _installed, _worker_count
    if _installed:
        return True
    import platform

    if not ENABLED or platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        return False
    _worker_count = min(max(threads - 1, 0), MAX_THREADS - 1)
    ll.add_symbol("numba_parallel_for", parallel_for.address)
    ll.add_symbol("get_thread_id", thread_id.address)
    from numba.np.ufunc import workqueue  # (every layer carries the same scheduler)

    _state[SCHEDULER] = workqueue.do_scheduling_signed
    _state[SCHEDULER + 1] = workqueue.do_scheduling_unsigned
    ll.add_symbol("do_scheduling_signed", schedule_signed.address)
    ll.add_symbol("do_scheduling_unsigned", schedule_unsigned.address)
    _start(_worker_count)
    atexit.register(_stop)
    os.register_at_fork(after_in_child=_after_fork_in_child)
    _installed = True
    return True
