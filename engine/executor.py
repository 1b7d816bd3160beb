"""Planner and executor: shape propagation for a batch size, constant folding, buffer reuse by lifetime."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field, replace

import numpy as np

from .budget import Ledger
from .errors import EngineError, ModelFormatError, UnsupportedError
from .formats.npz import MAX_TENSOR_BYTES
from .fusion import fuse
from .graph import DTYPES, Graph, folds
from .kernels import aligned, native, pool
from .kernels.kernel import compile_for, compiled_for, parallel_build, serial_call, team_build
from .kernels.native import NOT_ALONE, fed_entry, native_call, native_entry, native_table
from .ops import kernel_for, variable_shapes
from .profiles import admit, admit_output
from .runtime import Pace, threads_now
from .storage import flippable

# more than one thread: the plan's calls as team runs (kernels/native.py run_team) where the engine's
# pool runs the threads (x86-64 Linux), else each call's parallel or serial build as timed (and with
# ENGINE_TEAM=0)
TEAM = native.ENABLED and os.environ.get("ENGINE_TEAM", "1") != "0"
# a call whose serial build takes this long is shared by the threads when more than one runs: split
# in a team run (each split call ends with the threads meeting on its counter; 0.3, 0.6 and 1.5 us
# measured alike), else timed on its parallel build (a parallel region costs about 0.3 us on the
# engine's pool with its workers awake)
PARALLEL_MIN_SECONDS = 1.5e-6
CALIBRATION_RUNS = 2  # timed runs of each build before the threaded calls are chosen (the best)
CALIBRATION_SECONDS = 0.1  # or fewer runs when they took this long
CALIBRATION_SHORT = (16, 0.005)  # and up to this many runs while they took less than these seconds


@dataclass
class Step:
    op_index: int
    run: object  # Prepared.run
    inputs: list[int]
    outputs: list[int]
    scratch_spec: list = field(default_factory=list)  # Prepared.scratch
    scratch: list = field(default_factory=list)  # views of the plan's arena
    work: int = 0  # Prepared.work
    warmup: object = None  # Prepared.warmup
    bind: object = None  # Prepared.bind
    alias: bool = False  # Prepared.alias
    observed_only: bool = False  # fused into a later step (engine/fusion.py): runs only when observed
    observe_call: tuple = ()  # then its run and the plan's arrays it runs on


def _output_shapes(op, g: Graph, batch: int, out_shapes: list) -> dict[int, tuple]:
    """The shapes an op's prepare() computed for its outputs, checked: types the engine holds, sizes it
    can allocate, and what the profile's runtime would compute (profiles.admit_output)."""
    if len(out_shapes) != len(op.outputs):
        raise ModelFormatError(f"{op.where()}: has {len(op.outputs)} outputs, expected {len(out_shapes)}")
    shapes = {}
    for i, s in zip(op.outputs, out_shapes):
        t = g.tensors[i]
        if t.dtype not in DTYPES:
            raise UnsupportedError(f"{op.where()}: output {t.describe()} has unsupported type")
        s = tuple(int(d) for d in s)
        if any(d < 0 for d in s) or math.prod(s) * t.np_dtype.itemsize > MAX_TENSOR_BYTES * batch:
            raise ModelFormatError(f"{op.where()}: output {t.describe()} would have shape {list(s)}")
        admit_output(op, g, batch, i, s)
        shapes[i] = s
    return shapes


class Plan:
    """Everything needed to run the graph at one batch size: steps and preallocated buffers."""

    def __init__(self, g: Graph, batch: int, keep_all: bool = False, budget: int | None = None):
        # the graph as this plan prepares it: which int8 tensors it stores flipped (engine/storage.py)
        g = replace(g, flipped=set() if keep_all else flippable(g))
        self.graph = g
        self.batch = batch
        self.pace = Pace()
        ledger = Ledger(budget, f"the plan for batch {batch}")
        for t in g.tensors:
            if t.is_const:
                ledger.add(t.data.nbytes, f"constant {t.describe()}")
        self.const_bytes = ledger.total  # shared by every plan of the model
        shapes: dict[int, tuple] = {}
        values: dict[int, np.ndarray] = {}
        for t in g.tensors:
            if t.is_const:
                shapes[t.index] = t.shape
                values[t.index] = t.data
        for i in g.inputs:
            t = g.tensors[i]
            if len(t.shape) == 0:
                raise UnsupportedError(f"graph input {t.describe()} is a scalar")
            shapes[i] = (batch, *t.shape[1:])
        # variable tensors (LSTM state), reset at the start of every run; the op that reads a variable
        # first may size it for this batch (an LSTM keeps one state row per sequence)
        self.variables = [t.index for t in g.tensors if t.is_variable and not t.is_const and t.shape]
        unsized = set(self.variables)
        self.steps: list[Step] = []
        for op in g.ops:
            if unsized.intersection(op.inputs):
                sized = variable_shapes(op, g, [shapes.get(i) if i >= 0 else None for i in op.inputs])
                for i in unsized.intersection(op.inputs):
                    shapes[i] = tuple(sized.get(i, g.tensors[i].shape))
                unsized.difference_update(op.inputs)
            for i in op.inputs:
                if i >= 0 and i not in shapes:
                    raise ModelFormatError(
                        f"{op.where()}: input tensor {i} is used before any op produces it"
                    )
            prepare = kernel_for(op)
            admit(op, g)  # the profile's runtime may refuse what the engine runs
            folded = folds(op, values)
            in_shapes = [shapes[i] if i >= 0 else None for i in op.inputs]
            in_values = [values.get(i) if i >= 0 else None for i in op.inputs]
            try:
                prepared = prepare(op, g, in_shapes, in_values)
            except EngineError:
                raise
            except Exception as e:  # noqa: BLE001 (a prepare step that trips on a malformed model)
                raise ModelFormatError(f"{op.where()}: cannot prepare ({type(e).__name__}: {e})") from None
            shapes.update(_output_shapes(op, g, batch, prepared.out_shapes))
            if folded:
                for i in op.outputs:  # folded values are held by the plan
                    ledger.add(_nbytes(g, i, shapes[i]), f"{op.where()} output {g.tensors[i].describe()}")
                ledger.add(_scratch_bytes(prepared.scratch) + prepared.work, f"{op.where()} scratch")
                outs = [np.zeros(shapes[i], g.tensors[i].np_dtype) for i in op.outputs]
                scratch = [np.zeros(shape, dtype) for shape, dtype in prepared.scratch]
                prepared.run_serial([values.get(i) if i >= 0 else None for i in op.inputs], outs, scratch)
                values.update(zip(op.outputs, outs))
                continue
            step = Step(op.index, prepared.run, list(op.inputs), list(op.outputs), prepared.scratch)
            step.work, step.warmup, step.bind = prepared.work, prepared.warmup, prepared.bind
            step.alias = prepared.alias
            self.steps.append(step)
        for i in g.outputs:
            if i not in shapes:
                raise ModelFormatError(f"graph output tensor {i} is never produced")
        self.shapes, self.values = shapes, values
        layout = self._layout(keep_all)
        for size, i in zip(*layout[:2]):
            ledger.add(size, f"activation {g.tensors[i].describe()} {list(shapes[i])}")
        # steps run one at a time: the arena holds the largest step's scratch (and its work arrays)
        arena = max([_scratch_bytes(s.scratch_spec) + s.work for s in self.steps], default=0)
        biggest = max(self.steps, key=lambda s: _scratch_bytes(s.scratch_spec) + s.work, default=None)
        if biggest is not None:
            ledger.add(arena, f"{g.ops[biggest.op_index].where()} scratch {_largest(biggest)}")
        for i in self.variables:
            ledger.add(_nbytes(g, i, shapes[i]), f"state {g.tensors[i].describe()}")
        fed = list(dict.fromkeys(g.inputs))
        for i in fed:  # the plan's own copy of each input: kernel calls are bound to fixed arrays
            ledger.add(_nbytes(g, i, shapes[i]), f"input {g.tensors[i].describe()}")
        self.nbytes = ledger.total  # what this plan holds, constants included
        self.buffers = self._allocate(layout)
        for i in fed:
            self.buffers.setdefault(i, aligned.array(shapes[i], g.tensors[i].np_dtype))
        self._feed_buffers = [(i, self.buffers[i]) for i in fed]
        for i in self.variables:
            self.buffers.setdefault(i, aligned.array(shapes[i], g.tensors[i].np_dtype))
        resets = [i for i in self.variables if i not in fed]  # a fed state is the caller's
        self._resets = [(self.buffers[i], self._reset_value(g.tensors[i])) for i in resets]
        self._allocate_scratch()
        self._bind()

    @staticmethod
    def _reset_value(t) -> int:
        """What the reference's ResetVariableTensor writes: the zero point's byte for int8, else 0."""
        return int(t.zero_point[0]) if t.dtype == "int8" and t.zero_point.size else 0

    def _bind(self) -> None:
        """Each step's calls, built once on the plan's fixed arrays: a step with Prepared.bind gives its
        kernel calls with every view made here; any other step is one call of its run."""
        arrays = {**self.values, **self.buffers}
        self._arrays = arrays  # what run() returns: every tensor's array, folded constants included
        self._fed = [buf for _, buf in self._feed_buffers]  # (arrays_runner)
        self._kept: list[np.ndarray] = []  # (keep_outputs)
        self._bound: list[list[tuple]] = []  # each step's calls as bound (Numba dispatchers)
        for step in self.steps:
            ins = [arrays.get(i) if i >= 0 else None for i in step.inputs]
            args = (ins, [arrays[i] for i in step.outputs], step.scratch)
            step.observe_call = (step.run, args) if step.observed_only else ()
            calls = [] if step.observed_only else list(step.bind(*args)) if step.bind else [(step.run, args)]
            self._bound.append(calls)
        # one thread: every kernel's serial build; more: chosen per call once timed (_calibrate)
        self._bound_serial = [[serial_call(fn, args) for fn, args in calls] for calls in self._bound]
        self._serial = _Calls([list(calls) for calls in self._bound_serial])
        self._threaded: _Calls | None = None
        self._candidates: _Calls | None = None  # calls timed with their parallel build
        self._timed = [[math.inf] * len(calls) for calls in self._bound]  # each serial call's best
        self._timed_par: list[list[float]] = []  # each candidate's best with its parallel build
        self._timed_runs, self._timed_seconds = 0, 0.0
        self._tried: list[list[bool]] = []  # the calls on their parallel build in _candidates
        self._serial_turn = False  # (the candidates' runs alternate with serial ones)

    def _calibrate(self, warm: bool) -> None:
        """One timed run of the calls being chosen (warm: the load-time warm-up; steps with a warmup
        function call it once, untimed). First CALIBRATION_RUNS runs on the serial builds (up to
        CALIBRATION_SHORT for a small model; the compiling run's seconds do not count): calls that took
        PARALLEL_MIN_SECONDS or more become candidates for their parallel build. Then as many runs with
        the candidates on their parallel builds (more than one thread must run), each followed by a
        serial run: a candidate keeps its parallel build where it was faster, wake-ups of the other
        threads included (on a loaded machine they cost more than the work they share). (Timing the calls kept again in the
        mix they run in, and dropping those slower there, was tried: each round's noise only drops
        calls, YOLOv8n kept 54-97 of its 287 calls threaded and ran 16-17 ms instead of 15.)"""
        # the candidates' runs alternate with serial ones: each call's two figures then come from
        # runs alike (the first runs after load are colder than later ones)
        serial = self._candidates is None or self._serial_turn
        calls_now, best_now = (self._serial, self._timed) if serial else (self._candidates, self._timed_par)
        for step, calls, best in zip(self.steps, calls_now.steps, best_now):
            if warm and step.warmup:  # (once: it only compiles)
                if self._candidates is None and not self._timed_runs:
                    step.warmup(*calls[0][1])
                continue
            for k, (fn, args) in enumerate(calls):
                t0 = time.perf_counter()
                fn(*args)
                dt = time.perf_counter() - t0
                best[k] = min(best[k], dt)
                self._timed_seconds += dt if self._timed_runs or not warm else 0.0  # (not compiling)
        calls_now.resolve()
        if self._candidates is not None:
            self._serial_turn = not serial
            if serial:
                return
        self._timed_runs += 1
        # a long run measures well enough in one go (a large batch's calibration stays short), but the
        # warm-up's first runs include compiling; a small model's runs go on to CALIBRATION_SHORT (its
        # first runs are cold: kws's convolutions 7-15 us each in its first two runs, 4.7 later)
        runs, seconds = self._timed_runs, self._timed_seconds
        if runs < CALIBRATION_RUNS and (warm or seconds < CALIBRATION_SECONDS):
            return
        if runs < CALIBRATION_SHORT[0] and seconds < CALIBRATION_SHORT[1]:
            return
        self._timed_runs, self._timed_seconds = 0, 0.0
        if self._candidates is None:
            large = self._large()
            if not any(map(any, large)):
                self._threaded = self._serial  # nothing large enough to share out
                return
            if TEAM and pool.installed():
                self._threaded = self._team(large)
                self.pace.done(False, sum(map(sum, self._timed)))
                return
            self._try(large)
            return
        # a call not tried on its parallel build never gets it (its second serial timing, warmer than
        # the first, is no parallel figure)
        kept = [[c and p < t for c, p, t in zip(*cpt)] for cpt in zip(self._tried, self._timed_par, self._timed)]
        if not any(map(any, kept)):  # (cores taken while this ran): the candidates, for Pace to try later
            kept = self._large()
        self._threaded = self._choose(kept)
        # the pace starts from these runs' times
        self.pace.done(False, sum(map(sum, self._timed)))
        par = zip(kept, self._timed_par, self._timed)
        self.pace.done(True, sum(p if f else t for fs, ps, ts in par for f, p, t in zip(fs, ps, ts)))

    def _try(self, parallel: list[list[bool]]) -> None:
        """The next calibration runs time the calls with `parallel` on their parallel builds."""
        self._tried = parallel
        self._candidates = self._choose(parallel)
        self._timed_par = [[math.inf] * len(calls) for calls in self._bound]

    def _large(self) -> list[list[bool]]:
        """Each call whose serial build took PARALLEL_MIN_SECONDS or more: a candidate for threads."""
        return [[t >= PARALLEL_MIN_SECONDS for t in ts] for ts in self._timed]

    def _choose(self, parallel: list[list[bool]]) -> _Calls:
        """The bound calls, each call's parallel build where `parallel` says so, else its serial one."""
        return _Calls(
            [
                [(parallel_build(fn), args) if p else one for (fn, args), one, p in zip(calls, ones, ps)]
                for calls, ones, ps in zip(self._bound, self._bound_serial, parallel)
            ]
        )

    def _team(self, split: list[list[bool]]) -> _Calls:
        """The bound calls as team runs (kernels/native.py run_team): `split` calls on their team
        build, shared by the threads, the others on their serial build."""
        steps, shared = [], []
        for calls, ones, ps in zip(self._bound, self._bound_serial, split):
            step = []
            for (fn, args), one, p in zip(calls, ones, ps):
                team = team_build(fn) if p else None
                if team is not None:
                    compile_for(team, args)
                step.append(one if team is None else (team, args))
                shared.append(team is not None)
            steps.append(step)
        calls = _Calls(steps, [one for ones in self._bound_serial for one in ones], shared)
        calls.resolve()  # (every build is compiled: the first team run is native, its tables made at load)
        return calls

    def _allocate_scratch(self) -> None:
        """One arena, as large as the largest step's scratch: steps run one at a time."""
        sizes = [
            [
                int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                for shape, dtype in s.scratch_spec
            ]
            for s in self.steps
        ]
        arena = aligned.empty(max([sum(x) + aligned.LINE * len(x) for x in sizes], default=0))
        for step, nbytes in zip(self.steps, sizes):
            offset = 0
            for (shape, dtype), size in zip(step.scratch_spec, nbytes):
                step.scratch.append(arena[offset : offset + size].view(dtype).reshape(shape))
                offset += -(-size // aligned.LINE) * aligned.LINE  # (each array on a cache line)

    def _layout(self, keep_all: bool) -> tuple[list[int], list[int], dict[int, int]]:
        """Activation memory by lifetime, before anything is allocated: the byte size of each block,
        the first tensor of each block, and the block of each tensor (a dead tensor's block goes to a
        later tensor that fits, unless keep_all)."""
        g = self.graph
        fuse(self.steps, g, self.shapes, keep_all)  # the steps as they will run first (engine/fusion.py)
        # an aliasing step's output (Prepared.alias) is its input's block: the block lives while either does
        # (where the input is another step's output: a graph input or a state is copied instead)
        root: dict[int, int] = {}
        produced = {i for step in self.steps for i in step.outputs} - set(self.variables)
        for step in self.steps:
            source = root.get(step.inputs[0], step.inputs[0]) if step.alias else -1
            if source in produced and not keep_all:
                root[step.outputs[0]] = source
        last_use: dict[int, int] = {}
        for n, step in enumerate(self.steps):
            for i in step.inputs:
                last_use[root.get(i, i)] = n
        pinned = {root.get(i, i) for i in (*g.inputs, *g.outputs)}
        sizes: list[int] = []
        firsts: list[int] = []
        free: list[int] = []  # blocks of dead tensors
        block_of: dict[int, int] = {}
        for n, step in enumerate(self.steps):
            for i in step.outputs:
                if i in root:
                    block_of[i] = block_of[root[i]]
                    continue
                nbytes = max(_nbytes(g, i, self.shapes[i]), 1)
                fits = [b for b in free if sizes[b] >= nbytes]
                if fits and not keep_all:
                    block = min(fits, key=sizes.__getitem__)
                    free.remove(block)
                else:
                    block = len(sizes)
                    sizes.append(nbytes)
                    firsts.append(i)
                block_of[i] = block
            if keep_all:
                continue
            for i in {root.get(i, i) for i in step.inputs}:
                if i in block_of and last_use.get(i) == n and i not in pinned and i not in step.outputs:
                    free.append(block_of[i])
        return sizes, firsts, block_of

    def _allocate(self, layout: tuple[list[int], list[int], dict[int, int]]) -> dict[int, np.ndarray]:
        """One array per activation tensor, views of the layout's blocks."""
        sizes, _, block_of = layout
        raws = [aligned.empty(size) for size in sizes]
        buffers: dict[int, np.ndarray] = {}
        for i, block in block_of.items():
            dtype = np.uint8 if i in self.graph.flipped else self.graph.tensors[i].np_dtype
            nbytes = _nbytes(self.graph, i, self.shapes[i])
            buffers[i] = raws[block][:nbytes].view(dtype).reshape(self.shapes[i])
        return buffers

    def run(
        self,
        feeds: dict[int, np.ndarray],
        timings: list | None = None,
        observe=None,
        warm: bool = False,
    ) -> dict[int, np.ndarray]:
        """Run every step; returns the buffer of every tensor (folded constants included).

        With a timings list, appends (op index, seconds) for each step. With observe, calls
        observe(op index, {tensor index: array}) right after each step, while its outputs are still
        in their (possibly reused) buffers: the arrays are views, copy what you keep.
        warm: the load-time warm-up: compiles every kernel the runs will call and times the serial
        builds (steps with a warmup function call it instead: their outputs are then undefined).
        """
        for i, buf in self._feed_buffers:
            np.copyto(buf, feeds[i], casting="no")
        self._compute(timings, observe, warm)
        return self._arrays

    def keep_outputs(self, outputs: list[int]) -> None:
        """The tensors arrays_runner's runs return (copies of)."""
        self._kept = [self._arrays[i] for i in outputs]

    def arrays_runner(self, count: int):
        """run() for arrays of exactly the graph inputs' types and shapes, in their order, each listed
        once (the caller checks): a function of x returning copies of the keep_outputs tensors; x the
        array where the graph has one input (count 1), else a list or tuple of them. A small model's
        shortest way, its names bound here once: ad01 at one thread (10 layers) is 3.9 us of native
        calls, and the lookups, calls and thread count read on the way there took 0.8 us more."""
        fed, kept, serial, stateless = self._fed, self._kept, self._serial, not self._resets
        first, out = fed[0], kept[0] if len(kept) == 1 else None
        # the serial calls' native run at one thread, x copied in there (one input) or here
        with_x = fed_entry(first) if count == 1 and native.ENABLED else None
        alone_entry = native_entry(alone=True) if count > 1 and native.ENABLED else None

        def copy_in(x) -> None:
            if count == 1:
                first[...] = x
            else:
                for buf, a in zip(fed, x):
                    buf[...] = a

        def run(x) -> list[np.ndarray]:
            alone = serial.alone  # (native_table's arguments for the serial calls, once resolved)
            if alone is None or not stateless:
                copy_in(x)
                self._compute()
            else:
                alone_only = self._threaded is not serial  # (else the serial calls run at any count)
                if with_x is not None:
                    failed = with_x(alone[0], alone[1], x, first, alone_only)
                else:
                    copy_in(x)
                    failed = alone_entry(alone[0], alone[1], alone_only)
                if failed == NOT_ALONE:  # (more threads: x copied in, nothing run)
                    self._compute()
                elif failed is not None:
                    serial.resume(alone, failed)
            return [out.copy()] if out is not None else [a.copy() for a in kept]

        return run

    def _compute(self, timings: list | None = None, observe=None, warm: bool = False) -> None:
        for buf, value in self._resets:  # a run is stateless: state starts as after a reset
            buf.fill(value)
        if warm:
            self._warm()
        elif timings is not None or observe is not None:
            self._run_steps(timings, observe)
        elif self._threaded is self._serial or threads_now() == 1:
            self._serial.run()
        else:
            self._paced()

    def _paced(self) -> None:
        """A run at more than one thread: threaded or not, whichever has been faster lately
        (engine/runtime.py), or a calibration run while the calls are being chosen."""
        if self._threaded is None:
            self._calibrate(warm=False)
            return
        pace = self.pace
        threaded = pace.threaded()
        calls = self._threaded if threaded else self._serial
        if not pace.sample:
            calls.run()
            return
        t0 = time.perf_counter()
        calls.run()
        pace.done(threaded, time.perf_counter() - t0)

    def _warm(self) -> None:
        """Compile (or load from Numba's cache) and time the serial builds, then the parallel builds
        of the calls large enough (at one thread that waits for the first threaded runs)."""
        while self._threaded is None and (self._candidates is None or threads_now() > 1):
            self._calibrate(warm=True)

    def _run_steps(self, timings: list | None, observe) -> None:
        """The slow path: each step timed or observed."""
        calls = self._serial if self._threaded is None or threads_now() == 1 else self._threaded
        for step, step_calls in zip(self.steps, calls.steps):
            t0 = time.perf_counter()
            for fn, args in step_calls:
                fn(*args)
            if step.observed_only and observe is not None:
                step.observe_call[0](*step.observe_call[1])
            if timings is not None:
                timings.append((step.op_index, time.perf_counter() - t0))
            if observe is not None:
                observe(step.op_index, {i: self._observed(i) for i in step.outputs})

    def _observed(self, i: int) -> np.ndarray:
        """Tensor i's array as observe hands it out: a flipped tensor's int8 values (engine/storage.py)."""
        a = self._arrays[i]
        return (a ^ np.uint8(128)).view(np.int8) if i in self.graph.flipped else a


class _Calls:
    """A plan's kernel calls, per step and flat. After their first run each Numba dispatcher is
    replaced by the compiled function behind it for the bound argument types (resolve): the
    dispatcher would type every argument again on every call (about 0.4 us per array, 1.5 us per
    named tuple), and a bound call's arguments never change. `runs` is what run() calls: each run of
    consecutive calls that go native as one call of native.run_calls (kernels/native.py), the others
    as they are."""

    __slots__ = ("alone", "flat", "native", "ones", "resolved", "runs", "split", "steps")

    def __init__(self, steps: list[list[tuple]], ones: list[tuple] | None = None, split: list[bool] | None = None):
        self.steps = steps
        self.flat = [call for calls in steps for call in calls]
        self.runs = self.flat
        # where runs is one native run of serial builds: its arguments (run_calls_alone's, run_calls_fed's)
        self.alone: tuple | None = None
        self.native: dict[int, list[tuple]] = {}  # id of a native run's arguments -> its calls
        self.resolved = False
        # a team run's calls: the flat calls on their serial builds (where a team run stops, the calls
        # from there run through their wrappers; a split call outside a native run runs alone), and
        # which flat calls the threads split (their team builds: a serial build may be one too)
        self.ones = ones
        self.split = [False] * len(self.flat) if split is None else split

    def run(self) -> None:
        for fn, args in self.runs:
            failed = fn(*args)  # (a kernel returns None; run_calls the call that failed, if one did)
            if failed is not None:
                self.resume(args, failed)
        if not self.resolved:
            self.resolve()

    def resume(self, args: tuple, failed) -> None:
        """After a native run stopped at its call `failed`: that call and the rest through their
        wrappers (which raise the kernel's error)."""
        calls = self.native.get(id(args))
        if calls is not None:  # (not a native run: a Python call's own result)
            for fn, call_args in calls[failed:]:
                fn(*call_args)

    def resolve(self) -> None:
        if self.resolved:
            return
        lists = (self.flat, *self.steps, *([] if self.ones is None else [self.ones]))
        # each call's compile result, its arguments typed once (the calls' objects live through this)
        compiled: dict = {}
        for fn, args in (call for calls in lists for call in calls):  # (steps hold flat's calls again)
            if (id(fn), id(args)) not in compiled:
                compiled[id(fn), id(args)] = compiled_for(fn, args)
        natives = [native_call(fn, args, compiled[id(fn), id(args)]) for fn, args in self.flat]
        split = self.split
        team_of = [fn for fn, _ in self.flat]  # (the dispatchers, before resolving)
        ones = self.flat if self.ones is None else self.ones
        for calls in lists:  # each dispatcher replaced by its compiled function, where it has one
            calls[:] = [(_entry_point(fn, compiled[id(fn), id(args)]), args) for fn, args in calls]
        self.runs = []
        start = 0
        for k in range(len(self.flat) + 1):  # each run of native calls, and the calls between
            if k < len(self.flat) and natives[k] is not None:
                continue
            team = any(split[start:k])
            if k > start:
                args = native_table(natives[start:k], split[start:k] if team else None)
                self.runs.append((native_entry(team), args))  # (self.flat holds the arrays)
                self.native[id(args)] = ones[start:k]
            if k < len(self.flat):  # (a split call that cannot go native: its parallel build)
                self.runs.append((parallel_build(team_of[k]), self.flat[k][1]) if split[k] else self.flat[k])
            start = k + 1
        if len(self.runs) == 1 and id(self.runs[0][1]) in self.native and not any(split):
            self.alone = self.runs[0][1]
        self.resolved = True


def _entry_point(fn, cres):
    """The compiled function behind a Numba dispatcher (cres: its compile result for the call's
    arguments, which it has just run), else fn itself."""
    return fn if cres is None else cres.entry_point


def _nbytes(g: Graph, i: int, shape: tuple) -> int:
    return math.prod(shape) * g.tensors[i].np_dtype.itemsize


def _scratch_bytes(spec: list) -> int:
    """What the arena gives a step's scratch arrays (each 64-byte aligned)."""
    return sum(-(-math.prod(shape) * np.dtype(dtype).itemsize // 64) * 64 for shape, dtype in spec)


def _largest(step: Step) -> str:
    """The largest of a step's scratch arrays, or its work arrays, for error messages."""
    spec = max(step.scratch_spec, key=lambda sd: _scratch_bytes([sd]), default=None)
    if spec is None or step.work > _scratch_bytes([spec]):
        return f"(work arrays of {step.work} bytes)"
    return f"{tuple(spec[0])} {np.dtype(spec[1]).name}"
