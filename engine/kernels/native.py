"""A plan's kernel calls as one native call: no Python between kernels, no argument unboxed per run.

Calling a compiled Numba function from Python costs 0.15-0.35 us in its wrapper (each array unboxed
into a fresh reference-counted struct, each named tuple field by field) and the loop around it: a
third of ad01's run (10 small FULLY_CONNECTED), a tenth of kws's. A bound call's arguments never
change (executor.Plan binds them once), so their native form can be built once too: the words Numba's
calling convention passes (an array: meminfo, parent, size, itemsize, data, shape, strides; a named
tuple: its members in order), into one int64 array. run_calls() then calls each kernel's native
function by address with its words, one after another, without the GIL.

Every word is an integer or a pointer, which x86-64's C convention passes alike (registers, then
8-byte stack slots): a call through a function type of ARITY[k] int64 parameters, at least the
callee's, reaches any such function; the callee reads its own and the caller pops the rest. A
call whose arguments include a float (passed in vector registers), an object or anything whose
words do not come out as Numba counts them stays a Python call (native_call() returns None). The
meminfo and parent words are 0: a kernel takes no new references (refops.py; NRT_incref and
NRT_decref pass a null meminfo by) and never hands an array back to Python.
A kernel that fails returns a status other than OK or None: run_calls stops there and tells which,
and the caller repeats that call through Numba's wrapper, which raises the kernel's error.
A repeated run of a plan whose serial calls are one native run enters through run_calls_alone (or
run_calls_fed, which copies the run's one input in first): they read the thread count themselves and
run nothing at more than one thread, where the plan's threaded calls run instead (Plan.arrays_runner).
"""

from __future__ import annotations

import functools
import os
import platform
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.core.registry import cpu_target
from numba.extending import intrinsic
from numba.np.ufunc.parallel import _iget_num_threads

from . import pool
from .kernel import compiled_for

# (the convention above is x86-64's); ENGINE_NATIVE=0 keeps every call in Python (for comparison)
ENABLED = platform.machine() in ("x86_64", "AMD64") and os.environ.get("ENGINE_NATIVE", "1") != "0"
# the function types run_calls calls through, by word count: each word past the callee's is a load and
# a stack store per call, so steps of 8 up to 64 (FULLY_CONNECTED's 41 words: 48, not 64)
ARITY = (8, 16, 24, 32, 40, 48, 56, 64, 128, 256)
MAX_WORDS = ARITY[-1]
_i64 = ir.IntType(64)


class NativeCall(NamedTuple):
    """A kernel call in native form: the function's address and its argument words."""

    address: int
    words: list[int]


def native_call(fn, args: tuple, cres=None) -> NativeCall | None:
    """fn(*args) as a NativeCall, where fn is a Numba dispatcher compiled for exactly these argument
    types, returning None, and every word of the arguments is an integer or a pointer; else None.
    cres: compiled_for(fn, args) where the caller has it (typing the arguments again costs more)."""
    cres = (cres or compiled_for(fn, args)) if ENABLED else None
    if cres is None or cres.signature.return_type != types.none:
        return None
    words: list[int] = []
    for ty, value in zip(cres.signature.args, args):
        if not _flatten(ty, value, words):
            return None
    if _word_count(cres.signature.args) != len(words) or len(words) > MAX_WORDS:
        return None
    address = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
    if not address:
        return None
    return NativeCall(address, [w & 0xFFFFFFFFFFFFFFFF for w in words])


@functools.cache
def _word_count(arg_types: tuple) -> int:
    """The words Numba's calling convention passes for arguments of these types, or -1 where one is
    neither an integer nor a pointer."""
    expected = cpu_target.target_context.call_conv._get_arg_packer(arg_types).argument_types
    return len(expected) if all(isinstance(t, (ir.IntType, ir.PointerType)) for t in expected) else -1


def _flatten(ty, value, words: list[int]) -> bool:
    """Appends the words of value (of Numba type ty) in Numba's argument order; False where it has none."""
    if isinstance(ty, types.Array):
        if not isinstance(value, np.ndarray):
            return False
        # meminfo, parent, nitems, itemsize, data, shape..., strides...
        words += [0, 0, value.size, value.itemsize, value.ctypes.data, *value.shape, *value.strides]
        return True
    if isinstance(ty, types.BaseTuple):  # (named or not: each member's words in turn)
        if not isinstance(value, tuple) or len(ty) != len(value):
            return False
        return all(_flatten(t, v, words) for t, v in zip(ty.types, value))
    if isinstance(ty, types.Boolean | types.Integer) and not isinstance(ty, types.Literal):
        words.append(int(value))
        return True
    return False


def native_table(calls: list[NativeCall], split: list[bool] | None = None) -> tuple:
    """run_calls()'s arguments for these calls, in order: the table of (address, first word, word
    count, split) and the words (ARITY's extra words past the last call's: zeros). The words point
    into the calls' arrays: the caller holds those as long as it runs the table. With `split` (a
    flag per call: its kernel's team build, shared by the threads), run_team()'s: the table, the
    words and the run's state."""
    table, words = [], []
    for k, call in enumerate(calls):
        table.append((call.address, len(words), len(call.words), int(bool(split and split[k]))))
        words += call.words
    packed = np.zeros(len(words) + MAX_WORDS, np.uint64)
    packed[: len(words)] = words
    table_, words_ = np.array(table, np.int64).reshape(-1, 4), packed.view(np.int64)
    if split is None:
        return table_, words_
    state = np.zeros(ROW * (len(calls) + 1) + 8, np.int64)
    state = state[-(state.ctypes.data // 8) % 8 :][: ROW * (len(calls) + 1)]  # (rows on cache lines)
    state[:8] = [0, table_.ctypes.data, len(calls), words_.ctypes.data, words_.size, 0, state.ctypes.data, 0]
    state[ITEM] = team_item.address
    return table_, words_, state


def native_entry(team: bool = False, alone: bool = False):
    """run_calls' (team: run_team's; alone: run_calls_alone's) compiled entry point for
    native_table()'s arguments (called without dispatch)."""
    if team:
        return run_team.compile((types.int64[:, ::1], types.int64[::1], types.int64[::1]))
    if alone:
        return run_calls_alone.compile((types.int64[:, ::1], types.int64[::1], types.boolean))
    return run_calls.compile((types.int64[:, ::1], types.int64[::1]))


def fed_entry(buf: np.ndarray):
    """run_calls_fed's compiled entry point for native_table()'s arguments, an input array x of buf's
    dtype and rank (any strides) and buf (a C-contiguous array of x's shape: the caller checks)."""
    dtype = numba.from_dtype(buf.dtype)
    x, to = types.Array(dtype, buf.ndim, "A"), types.Array(dtype, buf.ndim, "C")
    return run_calls_fed.compile((types.int64[:, ::1], types.int64[::1], x, to, types.boolean))


@intrinsic
def _call(typingctx, address, words, first, count):
    """Calls the native function at `address` with words[first : first + count], through the
    smallest ARITY function type that holds them; its status (int32 as int64)."""

    def codegen(context, builder, signature, args):
        addr, first_, count_ = args[0], args[2], args[3]
        base = builder.gep(context.make_array(signature.args[1])(context, builder, args[1]).data, [first_])
        ret = cgutils.alloca_once(builder, ir.ArrayType(_i64, 8))  # the callee's return slot (None)
        exc = cgutils.alloca_once(builder, ir.IntType(8).as_pointer())
        status = cgutils.alloca_once_value(builder, ir.Constant(ir.IntType(32), -1))  # (none called)
        done = builder.append_basic_block("called")
        for arity in ARITY:
            fits = builder.icmp_signed("<=", count_, ir.Constant(count_.type, arity))
            with builder.if_then(fits):
                fnty = ir.FunctionType(ir.IntType(32), [ir.IntType(8).as_pointer(), exc.type] + [_i64] * arity)
                fn = builder.inttoptr(addr, fnty.as_pointer())
                values = [builder.load(builder.gep(base, [ir.Constant(_i64, k)])) for k in range(arity)]
                builder.store(builder.call(fn, [builder.bitcast(ret, ir.IntType(8).as_pointer()), exc, *values]), status)
                builder.branch(done)
        builder.branch(done)
        builder.position_at_end(done)
        return builder.sext(builder.load(status), _i64)

    return types.int64(types.int64, words, types.int64, types.int64), codegen


@njit(cache=True, nogil=True)
def run_calls(table, words):
    """Each row of table (address, first word, word count): that native call, in order; None, or the
    row whose call failed (the calls after it not run)."""
    for i in range(table.shape[0]):
        status = _call(table[i, 0], words, table[i, 1], table[i, 2])
        if status != 0 and status != -2:  # (Numba's OK, and OK returning None)
            return i
    return None


NOT_ALONE = -1  # run_calls_alone's answer where it runs nothing: more than one thread


@njit(cache=True, nogil=True)
def run_calls_alone(table, words, alone_only):
    """run_calls, unless alone_only and the calling thread's Numba thread count is not 1: then
    NOT_ALONE, nothing run (the caller's threaded calls run instead). The caller of a plan's serial
    calls need not read the count itself (0.1 us in Python)."""
    if alone_only and _iget_num_threads() != 1:
        return NOT_ALONE
    return run_calls(table, words)


@njit(cache=True, nogil=True)
def run_calls_fed(table, words, x, buf, alone_only):
    """run_calls_alone after x copied into buf (the plan's input: same shape and dtype), the copy
    native too: a Python copy of 640 bytes costs 0.28 us, passing x here 0.03."""
    if _c_contiguous(x):
        _copy_bytes(buf.ctypes.data, x.ctypes.data, buf.nbytes)
    else:  # (an input sliced with steps: each element found from its index)
        for k in range(x.size):
            at, rest = 0, k
            for d in range(x.ndim - 1, -1, -1):
                at += (rest % x.shape[d]) * x.strides[d]
                rest //= x.shape[d]
            _copy_bytes(buf.ctypes.data + k * x.itemsize, x.ctypes.data + at, x.itemsize)
    return run_calls_alone(table, words, alone_only)


@njit(inline="always")
def _c_contiguous(x):
    step = x.itemsize
    for d in range(x.ndim - 1, -1, -1):
        if x.shape[d] != 1 and x.strides[d] != step:
            return False
        step *= x.shape[d]
    return True


@intrinsic
def _copy_bytes(typingctx, to, src, count):
    """count bytes from address src to address to (memcpy: the two do not overlap)."""

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        cgutils.raw_memcpy(builder, builder.inttoptr(args[0], i8p), builder.inttoptr(args[1], i8p), args[2], 1)
        return context.get_dummy_value()

    return types.void(types.int64, types.int64, types.int64), codegen


# -- team runs: the threads go through the table together, sharing each split call ------------------
# A team run's state: a header row, then ROW words per call: a bit per part taken (a cache line of
# its own), its parts finished (the next line). The header: the failed call + 1 (0: none), the table's
# address and rows, the words' address and count, the team's size, the state's own address, the
# address of the workers' item function (team_item).
ROW = 16
FAILED, TABLE, CALLS, WORDS, WORD_COUNT, SIZE, SELF, ITEM = range(8)


@intrinsic
def _words(typingctx, addr):
    """The int64 words at address addr (for carray)."""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], _i64.as_pointer())

    return types.CPointer(types.int64)(types.int64), codegen


@njit(inline="always")
def _turn(table, words, state, member, size):
    """Thread `member`'s way through a team run's calls (_calls_turn), its slot marked with its
    pthread id meanwhile: its parts are its own there (pool.team_range)."""
    slot = pool.part_slot(member)
    pool.plain_store(slot + 16, pool.pthread_self())
    _calls_turn(table, words, state, member, size, slot)
    pool.plain_store(slot + 16, 0)


@njit(inline="always")
def _calls_turn(table, words, state, member, size, slot):
    """Thread `member`'s way through a team run's calls (run_team): each call once the one before it
    has finished; a split call's parts while any is left, the other calls on member 0 only."""
    base = state[SELF]
    n = table.shape[0]
    for i in range(n):
        split = table[i, 3] != 0
        if not split and member != 0:
            continue
        claim = base + 8 * ROW * (i + 1)
        if i > 0:
            pool.wait_until(claim - 8 * ROW + 64, size if table[i - 1, 3] != 0 else 1)
        if pool.atomic_load(base + 8 * FAILED) != 0:
            return
        if not split:
            _run_part(table, words, base, i, claim)
            continue
        part = member  # (its own part first: consecutive calls split alike keep each part's data
        while part >= 0:  # in its thread's caches; then any part left)
            if pool.atomic_or(claim, 1 << part) & (1 << part) == 0:
                pool.plain_store(slot, part)  # (the team build's prange reads it: pool.team_range)
                pool.plain_store(slot + 8, size)
                _run_part(table, words, base, i, claim)
                pool.plain_store(slot, -1)
            part = _free_part(pool.atomic_load(claim), size)
    if member == 0 and n > 0:  # (the run ends when its last call has)
        pool.wait_until(base + 8 * ROW * n + 64, size if table[n - 1, 3] != 0 else 1)


@njit(inline="always")
def _free_part(claimed, size):
    """The first part of `size` whose bit is clear in claimed, else -1."""
    for part in range(size):
        if claimed & (1 << part) == 0:
            return part
    return -1


@njit(inline="always")
def _run_part(table, words, base, i, claim):
    """Call i (or the part of it this thread claimed), then counted as finished (failed or not)."""
    status = _call(table[i, 0], words, table[i, 1], table[i, 2])
    if status != 0 and status != -2:
        pool.cas(base + 8 * FAILED, 0, i + 1)
    pool.atomic_add(claim + 64, 1)


@njit(cache=True, nogil=True)
def run_team(table, words, state):
    """run_calls by a team of the calling thread's thread count: this thread (member 0) and the
    engine pool's workers that join (pool.team_open). A split call (table[:, 3]) runs in as many
    parts as the team has members: member k takes part k, then any part nobody has taken (a worker
    that never comes holds nothing up); the other calls run on member 0. None, or the call that failed
    (0 where the pool was taken: run the calls another way)."""
    size = _iget_num_threads()  # (the threading layer's symbol: numba.get_num_threads is not cached)
    state[ROW:] = 0
    state[FAILED] = 0
    state[SIZE] = size
    if not pool.team_open(state[ITEM], state[SELF], size):
        return 0
    _turn(table, words, state, 0, size)
    pool.team_close()
    failed = state[FAILED]
    if failed:
        return failed - 1
    return None


@cfunc(types.void(types.int64, types.int64, types.int64, types.int64), cache=True)
def team_item(args, dims, steps, data):
    """A worker's item of a team run's region (pool.team_open): its turn through the run at `data`,
    as the member its thread id says."""
    state = carray(_words(data), (pool.plain_load(data + 8 * CALLS) * ROW + ROW,))
    table = carray(_words(state[TABLE]), (state[CALLS], 4))
    words = carray(_words(state[WORDS]), (state[WORD_COUNT],))
    _turn(table, words, state, numba.get_thread_id(), state[SIZE])
