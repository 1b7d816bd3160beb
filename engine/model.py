"""The user-facing Model: load once, run many times, look inside every layer."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numba
import numpy as np

from . import budget as memory
from . import profiles
from .atomic import atomic_path
from .batching import mixing_op
from .errors import EngineError, InputError, ModelFormatError, UnsupportedError
from .executor import Plan
from .formats.npz import load_npz, save_npz, validate_graph, validate_quantization
from .formats.tflite import import_tflite
from .graph import Graph
from .kernels import pool
from .runtime import PACE_PROBE_RUNS, PACE_SAMPLES, Pace, run_lanes, threads_now

MAX_PLANS = 4
CACHE_BYTES = 256 << 20  # plans kept for later runs hold at most this much (beyond the constants)
# a batch whose activations would exceed this runs in sub-batches that fit: op after op over a whole
# large batch streams every activation through memory, where a sub-batch stays in the caches
SUB_BATCH_BYTES = 8 << 20
# a batch of this many samples or more runs in lanes at several threads (_lanes), two or more a lane
# (a lane of one sample could squeeze the batch axis away)
LANE_MIN_BATCH = 4
LANE_MIN_SECONDS = 100e-6  # a batch whose whole run takes less never runs in lanes (_run_paced)
_WORKQUEUE_LOCK = threading.Lock()
_NO_LOCK = contextlib.nullcontext()
_LAYER_LOCK: list = []  # the lock for the threading layer, once one is running (it never changes)


def _kernel_lock():
    """Numba's fallback 'workqueue' threading layer aborts the process when two threads launch
    parallel kernels at once (OpenMP, TBB and the engine's pool do not): serialize all runs when it
    runs the parallel kernels."""
    if _LAYER_LOCK:
        return _LAYER_LOCK[0]
    if pool.installed():
        _LAYER_LOCK.append(_NO_LOCK)
        return _NO_LOCK
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: start the layer's threads (ms) to know it
        try:
            from numba.np.ufunc.parallel import _launch_threads

            _launch_threads()
            layer = numba.threading_layer()
        except (ImportError, ValueError):  # (a Numba without it: the first parallel kernel tells)
            return _WORKQUEUE_LOCK
    _LAYER_LOCK.append(_NO_LOCK if layer in ("omp", "tbb") else _WORKQUEUE_LOCK)
    return _LAYER_LOCK[0]


@dataclass(frozen=True)
class TensorInfo:
    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float  # per-tensor scale (0.0 when not quantized)
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float -> this tensor's integer type: round half away from zero, clamp."""
        q = np.asarray(x, np.float32) / np.float32(self.scale)  # TFLite divides in float32
        whole = np.floor(np.abs(q))
        q = np.copysign(whole + (np.abs(q) - whole >= 0.5), q) + self.zero_point
        info = np.iinfo(self.dtype)
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return ((np.asarray(q, np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)).astype(
            np.float32
        )


def _info(g: Graph, i: int) -> TensorInfo:
    t = g.tensors[i]
    scale = float(t.scale[0]) if t.scale.size else 0.0
    zp = int(t.zero_point[0]) if t.zero_point.size else 0
    return TensorInfo(t.name, i, t.shape, t.np_dtype, scale, zp)


class Model:
    """A prepared graph. run() is thread-safe (runs are serialized on the model's own buffers).

    numerics: the profile (engine/profiles) whose arithmetic every op was prepared with, fixed for the
    model's life; None keeps the graph's own (default "reference").
    """

    def __init__(
        self,
        graph: Graph,
        source: str = "<graph>",
        warmup: bool = True,
        memory_budget=None,
        numerics: str | None = None,
    ):
        if numerics is not None and numerics != profiles.profile_of(graph):
            graph = replace(graph, numerics=profiles.get(numerics).name)  # a copy: the caller's keeps its own
        self.graph = graph
        self.numerics = profiles.get(profiles.profile_of(graph)).name
        self.source = source
        self.memory_budget = memory.resolve(memory_budget)  # bytes one plan may hold
        if not graph.inputs:  # nothing to run on: every result would be a constant
            raise UnsupportedError("the graph has no inputs")
        self.inputs = [_info(graph, i) for i in graph.inputs]
        self.outputs = [_info(graph, i) for i in graph.outputs]
        # what _feeds accepts without a second look: integer inputs of the exact dtypes and shapes
        self._exact = [(np.dtype(t.dtype), t.shape[1:], len(t.shape), t.index) for t in self.inputs]
        self._output_indices = [t.index for t in self.outputs]
        if any(d.kind not in "iu" for d, *_ in self._exact):  # floats are checked for NaN: no shortcut
            self._exact = []
        self._plans: OrderedDict[tuple[int, bool], Plan] = OrderedDict()  # the few batch sizes in use
        self._lock = threading.Lock()
        self._per_sample: set[int] = set()  # batch sizes the graph cannot run at once
        self._batch_major: dict[int, bool] = {}  # sub-batch sizes checked (_sub_batch)
        self._last = _Last()  # the shortcut to the plan of the last exact run (_remember)
        self._independent: bool | None = None  # (_samples_independent)
        self._lane_copies: list[Model] = []  # the other lanes of a batch run (_run_lanes)
        self._lane_paces: dict[int, Pace] = {}  # lanes or not, per batch size (_run_paced)
        self._lane_warm: set[tuple[int, bool]] = set()  # (batch, in lanes) run once (_run_paced)
        self._whole_only: set[int] = set()  # batch sizes whose whole runs are too short for lanes
        one = self.plan(1)  # refuse what cannot run now, not at the first run()
        declared = {t.shape[0] for t in self.inputs if len(t.shape)}
        if self.numerics == "tflm" and len(declared) == 1 and declared != {1}:
            self.plan(declared.pop())  # the shapes TFLite Micro runs: checked now (profiles.admit_output)
        self._sample_bytes = max(one.nbytes - one.const_bytes, 1)  # what a sample's run holds
        if warmup:  # compile (or load from Numba's cache) every kernel now, not at the first run()
            feeds = {t.index: np.zeros((1, *t.shape[1:]), t.dtype) for t in self.inputs}
            # zeros can be bad data (an integer divisor)
            with self._lock, _kernel_lock(), contextlib.suppress(InputError):
                self.plan(1).run(feeds, warm=True)

    def __repr__(self) -> str:
        ins = ", ".join(f"{t.name}:{t.dtype}{list(t.shape)}" for t in self.inputs)
        outs = ", ".join(f"{t.name}:{t.dtype}{list(t.shape)}" for t in self.outputs)
        return f"<engine.Model {self.source!r} numerics={self.numerics!r} inputs=[{ins}] outputs=[{outs}]>"

    def plan(self, batch: int, keep_all: bool = False) -> Plan:
        key = (batch, keep_all)
        if self._plans and next(reversed(self._plans)) == key:  # the newest: nothing to reorder or free
            return self._plans[key]
        self._last.run = None
        if key not in self._plans:
            self._plans[key] = Plan(self.graph, batch, keep_all, self.memory_budget)
        self._plans.move_to_end(key)
        plan = self._plans[key]
        # buffers of batch sizes no longer used are freed: at most MAX_PLANS plans and CACHE_BYTES
        # of them, the newest kept (a plan larger than that is dropped after its run, see run())
        while len(self._plans) > 1 and (len(self._plans) > MAX_PLANS or self._cached_bytes() > CACHE_BYTES):
            self._plans.popitem(last=False)
        return plan

    def _cached_bytes(self) -> int:
        """Bytes held by the plans kept for later runs (a plan above CACHE_BYTES is dropped after its run)."""
        sizes = [p.nbytes - p.const_bytes for p in self._plans.values()]
        return sum(n for n in sizes if n <= CACHE_BYTES)

    def _release(self, plan: Plan) -> None:
        """Forget a plan too large to keep once its run is done (batch 1 stays: load made it)."""
        if plan.batch != 1 and plan.nbytes - plan.const_bytes > CACHE_BYTES:
            for key in [k for k, p in self._plans.items() if p is plan]:
                del self._plans[key]
            self._last.run = None

    def _exact_feeds(self, x) -> tuple[int, dict[int, np.ndarray]] | None:
        """_feeds for arrays (one, or a list or tuple in input order) of exactly the inputs' integer
        types and shapes, in a few checks: a run of a small model costs microseconds."""
        arrays = (x,) if type(x) is np.ndarray else x if type(x) in (list, tuple) else ()
        if not arrays or len(arrays) != len(self._exact):
            return None
        feeds, batch = {}, None
        for a, (dtype, tail, ndim, index) in zip(arrays, self._exact):
            if type(a) is not np.ndarray or a.dtype is not dtype or a.ndim != ndim or a.shape[1:] != tail:
                return None
            if a.shape[0] < 1 or batch not in (None, a.shape[0]):
                return None
            batch = a.shape[0]
            feeds[index] = a  # the plan copies it into its own buffer
        return batch, feeds

    def _feeds(self, x) -> tuple[int, dict[int, np.ndarray]]:
        exact = self._exact_feeds(x)
        if exact is not None:
            return exact
        if isinstance(x, dict):
            by_name = {t.name: t for t in self.inputs}
            unknown = set(x) - set(by_name)
            if unknown:
                raise InputError(f"unknown input name(s) {sorted(unknown)}; inputs are {list(by_name)}")
            arrays = [x.get(t.name) for t in self.inputs]
        elif isinstance(x, (list, tuple)):  # one array per input, in order
            arrays = list(x)
        else:
            arrays = [x]
        if len(arrays) != len(self.inputs) or any(a is None for a in arrays):
            raise InputError(f"model takes {len(self.inputs)} input(s): {[t.name for t in self.inputs]}")
        feeds = {}
        batch = None
        for t, a in zip(self.inputs, arrays):
            a = np.asarray(a)
            if a.dtype != t.dtype:
                a = _convert(a, t)
            if a.ndim != len(t.shape) or a.shape[1:] != t.shape[1:] or a.shape[0] < 1:
                want = ["N", *t.shape[1:]]
                raise InputError(f"input '{t.name}': shape {list(a.shape)}, model expects {want}")
            if batch is not None and a.shape[0] != batch:
                raise InputError(
                    f"input '{t.name}': batch {a.shape[0]} differs from the other inputs' {batch}"
                )
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise InputError(f"input '{t.name}': contains NaN or infinity")
            batch = a.shape[0]
            feeds[t.index] = np.ascontiguousarray(a)
        return batch, feeds

    def run(self, x, keep_all: bool = False, observe=None):
        """Run on x (an array, a list of arrays, or a dict by input name).

        Returns the list of output arrays (copies). With keep_all=True returns a dict
        {tensor name: array} of every tensor the graph computes, inputs and outputs included.
        observe(op index, {tensor index: array view}) is called after each op of the plan that
        actually runs (buffers reused), to look at every tensor as it is produced.
        """
        last = self._last.run
        if last is not None and not keep_all and observe is None:
            result = last(x)
            if result is not None:
                return result
        exact = None if keep_all or observe is not None else self._exact_feeds(x)
        if exact is not None and _LAYER_LOCK and _LAYER_LOCK[0] is _NO_LOCK and self._lanes(exact[0]) == 1:
            # the common case in a few steps: a plan for this batch, the newest, already made
            plans, key = self._plans, (exact[0], False)
            with self._lock:
                if plans and next(reversed(plans)) == key:
                    self._remember(x, plans[key])
                    return self._collect(plans[key].run(exact[1]), False)
        try:
            batch, feeds = exact or self._feeds(x)
        except MemoryError:
            raise InputError("the input does not fit in memory as a contiguous array") from None
        lanes = self._lanes(batch) if not keep_all and observe is None else 1
        if lanes > 1:
            return self._run_paced(feeds, batch, lanes)
        return self._run_whole(feeds, batch, keep_all, observe)

    def _run_whole(self, feeds: dict, batch: int, keep_all: bool, observe, into: tuple | None = None):
        """The batch on this model's plans: in sub-batches where they fit the caches, else at once.
        into = (outputs, at, batch): a sub-batch's outputs go to rows at.. of the whole batch's (allocated at
        the first), copied once from the plan's buffers (DeepLab's batch of 64: 2.1 MB an image copied
        once, not copied and then concatenated)."""
        part = self._sub_batch(batch) if not keep_all and observe is None else batch
        if part < batch:
            outputs: list[np.ndarray] = []
            for k in range(0, batch, part):
                sub = {i: a[k : k + part] for i, a in feeds.items()}
                self._run_whole(sub, min(part, batch - k), False, None, (outputs, k, batch))
            return outputs
        with self._lock, _kernel_lock():
            if batch in self._per_sample:
                return _place(self._run_per_sample(feeds, batch, keep_all, observe), into)
            try:
                plan = self.plan(batch, keep_all)
            except MemoryError:
                raise InputError(f"a batch of {batch} does not fit in memory") from None
            except memory.BudgetError as e:
                raise InputError(f"a batch of {batch}: {e}") from None
            except (UnsupportedError, ModelFormatError):
                if batch == 1:
                    raise
                # a graph written for one sample (MoveNet gathers at batch index 0, packs [1, 3]
                # shapes): a batch is then that many runs of one sample, as the reference runs it
                self._per_sample.add(batch)
                return _place(self._run_per_sample(feeds, batch, keep_all, observe), into)
            try:
                arrays = plan.run(feeds, observe=observe)
                if into is not None:
                    return _place([arrays[i] for i in self._output_indices], into)
                return self._collect(arrays, keep_all)
            finally:
                self._release(plan)

    def _run_paced(self, feeds: dict, batch: int, lanes: int) -> list[np.ndarray]:
        """The batch in lanes, or whole with each kernel threaded, whichever has been faster lately at
        this batch size (runtime.Pace): a lane's run hands the GIL over at every kernel call, tens of
        microseconds on a busy machine, more than a small model's calls take (hello_world's batch of
        64: 8 us whole, 90 in lanes)."""
        pace = self._lane_paces.get(batch)
        if pace is None:
            if len(self._lane_paces) > 64:  # (a caller cycling through batch sizes)
                self._lane_paces.clear()
                self._lane_warm.clear()
                self._whole_only.clear()
            pace = self._lane_paces[batch] = Pace(one_thread_try=PACE_PROBE_RUNS)
        whole = pace.times[False]
        # a whole run this short leaves lanes nothing to win: even their tries would cost; once the
        # pace has its figure, the batch runs whole, as a batch of one does (Model.run's short way)
        if len(whole) >= PACE_SAMPLES and max(whole) < LANE_MIN_SECONDS:
            self._whole_only.add(batch)
        in_lanes = pace.threaded() and not (whole and max(whole) < LANE_MIN_SECONDS)
        t0 = time.perf_counter()
        if in_lanes:
            result = self._run_lanes(feeds, batch, lanes)
        else:
            result = self._run_whole(feeds, batch, False, None)
        if (batch, in_lanes) in self._lane_warm:
            pace.done(in_lanes, time.perf_counter() - t0)
        else:  # each side's first run makes its plans (and the lanes' copies): not a figure
            self._lane_warm.add((batch, in_lanes))
        return result

    def _shortcut(self, kinds: tuple, plan: Plan):
        """The run of arrays like the last exact run's (kinds: each one's shape and dtype) straight on
        its plan: a function of x returning the outputs, or None where x is not like them or the plans
        have changed since (then run() takes the long way). Its checks and the names it reads are bound
        here, once: a small model's run is a few microseconds (ad01 at one thread, 10 layers: about 5),
        and the long way's lookups had taken 0.6 of them."""
        # (names bound, the model's own not among them: a model would hold itself in a cycle)
        lock, whole_only, last = self._lock, self._whole_only, self._last
        batch = kinds[0][0][0]
        lanes = batch >= LANE_MIN_BATCH  # (lanes can run such a batch at more threads)
        count = len(kinds)
        shape, dtype = kinds[0]
        run = plan.arrays_runner(count)

        def shortcut(x) -> list[np.ndarray] | None:
            if type(x) is np.ndarray:
                if count != 1 or x.shape != shape or x.dtype is not dtype:
                    return None
            elif type(x) not in (list, tuple) or len(x) != count:
                return None
            else:  # (a loop: all() over a generator costs 0.4 us)
                for a, (s, d) in zip(x, kinds):
                    if type(a) is not np.ndarray or a.shape != s or a.dtype is not d:
                        return None
                if count == 1:
                    x = x[0]  # (the runner takes one input's array itself)
            if lanes and batch not in whole_only and threads_now() > 1:
                return None  # (lanes, at this thread count)
            lock.acquire()  # (not `with`: 0.1 us)
            try:
                return run(x) if last.run is shortcut else None
            finally:
                lock.release()

        shortcut.kinds = kinds  # (what it takes: for a look from outside)
        return shortcut

    def _remember(self, x, plan: Plan) -> None:
        """After an exact run (x: an array, or a list or tuple of them) on the newest plan, under the
        lock: the next run of arrays of x's shapes and types goes straight to the plan
        (_shortcut). Only for a batch run whole (no sub-batches, no per-sample runs), inputs
        listed once each; plan() and _release forget it whenever the plans change."""
        arrays = (x,) if type(x) is np.ndarray else x
        batch = arrays[0].shape[0]
        whole = batch == 1 or batch * self._sample_bytes <= SUB_BATCH_BYTES  # as _sub_batch decides
        if len(set(self.graph.inputs)) == len(arrays) and whole and batch not in self._per_sample:
            plan.keep_outputs(self._output_indices)
            self._last.run = self._shortcut(tuple((a.shape, a.dtype) for a in arrays), plan)

    def _lanes(self, batch: int) -> int:
        """In how many parts a batch runs, each on a thread of its own at one Numba thread
        (runtime.run_lanes): at several threads, a batch whose samples' results are each their own
        runs in parallel with no fork and join per kernel (on small kernels that costs more than the
        work); else 1, and each kernel spreads over the threads instead."""
        threads = threads_now()
        if threads < 2 or batch < LANE_MIN_BATCH or batch * self._sample_bytes > self.memory_budget:
            return 1  # (a batch over the budget is refused whole)
        if batch in self._whole_only or not self._samples_independent():
            return 1
        return min(threads, batch // (LANE_MIN_BATCH // 2))

    def _run_lanes(self, feeds: dict, batch: int, lanes: int) -> list[np.ndarray]:
        """The batch in `lanes` consecutive parts: the first on this model, each other on a copy of
        it (plans and buffers of its own, made at the first such run)."""
        ins = [feeds[t.index] for t in self.inputs]
        cuts = [batch * k // lanes for k in range(lanes + 1)]
        with self._lock:
            while len(self._lane_copies) < lanes - 1:
                copy = Model(self.graph, self.source, warmup=False, memory_budget=self.memory_budget)
                self._lane_copies.append(copy)
            models = [self, *self._lane_copies[: lanes - 1]]
        tasks = [
            functools.partial(m.run, [a[cuts[k] : cuts[k + 1]] for a in ins]) for k, m in enumerate(models)
        ]
        results = run_lanes(tasks)
        return [np.concatenate([r[j] for r in results]) for j in range(len(self.outputs))]

    def _samples_independent(self) -> bool:
        """Whether each sample's results depend on that sample alone: every tensor of the graph at
        batch 2 is batch-major and no op reads across samples (engine/batching.py), or the graph runs
        a batch sample by sample (_run_per_sample)."""
        if self._independent is None:
            with self._lock:
                kept = (2, False) in self._plans
                try:
                    plan = self.plan(2)
                    shapes = [s for i, s in plan.shapes.items() if i not in plan.values]
                    independent = all(len(s) and s[0] == 2 for s in shapes) and mixing_op(plan) is None
                except (UnsupportedError, ModelFormatError):
                    independent = True  # written for one sample: a batch runs sample by sample
                except EngineError:
                    independent = False
                if not kept:  # the probe's plan is not kept
                    self._plans.pop((2, False), None)
                    self._last.run = None
            self._independent = independent
        return self._independent

    def _sub_batch(self, batch: int) -> int:
        """The sub-batch a run of `batch` samples goes in: the most samples whose activations fit
        SUB_BATCH_BYTES (at least 1), where every tensor of the graph is batch-major at that size
        (each sample's results its own: a graph that mixes samples runs whole); else the batch."""
        if batch in self._per_sample or batch == 1 or batch * self._sample_bytes > self.memory_budget:
            return batch  # (a batch over the budget is refused as a whole, as it always was)
        part = max(1, SUB_BATCH_BYTES // self._sample_bytes)
        if part >= batch:
            return batch
        if part not in self._batch_major:
            probe = max(part, 2)  # (at batch 1 every graph looks batch-major)
            with self._lock:
                try:
                    plan = self.plan(probe)
                except EngineError:
                    plan = None
            shapes = [] if plan is None else [s for i, s in plan.shapes.items() if i not in plan.values]
            batch_major = plan is not None and all(len(s) and s[0] == probe for s in shapes)
            self._batch_major[part] = batch_major and mixing_op(plan) is None
        return part if self._batch_major[part] else batch

    def _collect(self, arrays: dict, keep_all: bool):
        if keep_all:
            g = self.graph
            return {g.tensors[i].name: np.array(a) for i, a in arrays.items() if not g.tensors[i].is_const}
        return [arrays[i].copy() for i in self._output_indices]

    def _run_per_sample(self, feeds: dict, batch: int, keep_all: bool, observe=None):
        """Each sample through the batch-1 plan; results concatenated along their first axis."""
        plan = self.plan(1, keep_all)
        runs = [
            self._collect(plan.run({i: a[k : k + 1] for i, a in feeds.items()}, observe=observe), keep_all)
            for k in range(batch)
        ]
        if keep_all:
            return {name: _stack([r[name] for r in runs]) for name in runs[0]}
        return [_stack([r[k] for r in runs]) for k in range(len(self.outputs))]

    def profile(self, x, repeat: int = 10) -> list[tuple[int, str, float]]:
        """Median seconds per op over `repeat` runs on x: [(op index, op type, seconds)]."""
        batch, feeds = self._feeds(x)
        runs = []
        with self._lock:
            plan = self.plan(batch)
            for _ in range(repeat):
                timings: list = []
                plan.run(feeds, timings)
                runs.append(timings)
        ops = self.graph.ops
        return [
            (i, ops[i].type, float(np.median([r[k][1] for r in runs]))) for k, (i, _) in enumerate(runs[0])
        ]

    def save(self, path) -> None:
        """Write the model as .npz (numpy's rule: '.npz' is added to a name without it). A path is
        written atomically: a failed write leaves the previous file, never a truncated one."""
        if not isinstance(path, (str, os.PathLike)):  # a file object
            save_npz(self.graph, path)
            return
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        with atomic_path(path, mkdir=False) as tmp:
            save_npz(self.graph, tmp)


class _Last:
    """Where a model keeps its shortcut (Model._shortcut), which reads it to know it is still the one."""

    __slots__ = ("run",)

    def __init__(self) -> None:
        self.run = None


def _convert(a: np.ndarray, t: TensorInfo) -> np.ndarray:
    """Floats for a quantized input are quantized with its scale and zero point (as the CLI's --input)."""
    want = np.dtype(t.dtype)
    if a.dtype.kind == "f" and want.kind in "iu" and t.scale > 0:
        if not np.all(np.isfinite(a)):
            raise InputError(f"input '{t.name}': contains NaN or infinity")
        return t.quantize(a)
    how = (
        f"pass {want} values, or floats to be quantized"
        if t.scale > 0
        else f"the input is not quantized: pass {want} values (a.astype(np.{want}))"
    )
    raise InputError(f"input '{t.name}': dtype {a.dtype}, model expects {want}; {how}")


def _is_registry_name(source) -> bool:
    if not isinstance(source, str) or source.lower().endswith((".tflite", ".npz")) or "/" in source:
        return False
    return not Path(source).exists()


def _place(arrays: list[np.ndarray], into: tuple | None) -> list[np.ndarray]:
    """arrays (a sub-batch's outputs) copied to rows at.. of outputs, where into = (outputs, at, batch);
    outputs, empty before the first sub-batch, is then allocated for the whole batch. No into: arrays."""
    if into is None:
        return arrays
    outputs, at, batch = into
    if not outputs:
        outputs.extend(np.empty((batch, *a.shape[1:]), a.dtype) for a in arrays)
    for out, a in zip(outputs, arrays):
        out[at : at + len(a)] = a
    return outputs


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    """Per-sample results side by side: along axis 0 (scalars become a vector)."""
    return np.concatenate([np.atleast_1d(a) for a in arrays])


def load(
    source,
    warmup: bool = True,
    memory_budget: int | str | None = None,
    numerics: str = profiles.DEFAULT,
    name: str | None = None,
) -> Model:
    """Load a model from a .tflite or .npz path (or their bytes), or a registry name ("ssd", "mnist":
    fetched through the cache and the mirror), validate it and prepare it.

    warmup runs the model once on zeros so that every kernel is compiled before load returns.
    memory_budget: bytes (or '512M', '2G') one plan may hold, activations, scratch and constants
    together; default $ENGINE_MEMORY_BUDGET, else half the available memory. A model or a batch
    that needs more is refused before anything is allocated.
    numerics: whose arithmetic to equal bit for bit: "reference" (LiteRT's reference kernels, the
    default), "tflm" (TFLite Micro, which also refuses what TFLite Micro cannot run) or "litert"
    (LiteRT's default interpreter on x86: XNNPACK for the ops its delegate takes, the optimized
    builtin kernels for the rest).
    """
    profiles.get(numerics)  # an unknown profile is refused before any work
    if _is_registry_name(source):
        from .registry import Cache

        cache = Cache()
        return cache.load_model(cache.registry.model(source), numerics=numerics, warmup=warmup)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), name or "<bytes>"
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise ModelFormatError(f"{path}: cannot read ({e.strerror})") from None
        name = str(path)
    try:
        memory_budget = memory.resolve(memory_budget)
    except EngineError as e:
        raise type(e)(f"{name}: {e}") from None
    if data[:4] == b"PK\x03\x04":
        graph = load_npz(data, name, memory_budget)
    else:
        graph = import_tflite(data, name)
    validate_quantization(graph, name)
    validate_graph(graph, name)
    try:
        return Model(graph, name, warmup, memory_budget, numerics)
    except EngineError as e:  # planning errors name the op; add the file once
        raise type(e)(f"{name}: {e}") from None
