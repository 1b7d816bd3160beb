"""Planner and executor: shape propagation for a batch size, constant folding, buffer reuse by lifetime."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .budget import Ledger
from .errors import EngineError, ModelFormatError, UnsupportedError
from .formats.npz import MAX_TENSOR_BYTES
from .graph import DTYPES, Graph
from .ops import kernel_for, variable_shapes
from .profiles import admit
from .runtime import Pace

# ops whose output depends only on input shapes: folded even when the input is not constant
SHAPE_ONLY = {"SHAPE"}


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


class Plan:
    """Everything needed to run the graph at one batch size: steps and preallocated buffers."""

    def __init__(self, g: Graph, batch: int, keep_all: bool = False, budget: int | None = None):
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
            in_shapes = [shapes[i] if i >= 0 else None for i in op.inputs]
            in_values = [values.get(i) if i >= 0 else None for i in op.inputs]
            try:
                prepared = prepare(op, g, in_shapes, in_values)
            except EngineError:
                raise
            except Exception as e:  # noqa: BLE001 (a prepare step that trips on a malformed model)
                raise ModelFormatError(f"{op.where()}: cannot prepare ({type(e).__name__}: {e})") from None
            if len(prepared.out_shapes) != len(op.outputs):
                raise ModelFormatError(
                    f"{op.where()}: has {len(op.outputs)} outputs, expected {len(prepared.out_shapes)}"
                )
            for i, s in zip(op.outputs, prepared.out_shapes):
                t = g.tensors[i]
                if t.dtype not in DTYPES:
                    raise UnsupportedError(f"{op.where()}: output {t.describe()} has unsupported type")
                s = tuple(int(d) for d in s)
                if any(d < 0 for d in s) or math.prod(s) * t.np_dtype.itemsize > MAX_TENSOR_BYTES * batch:
                    raise ModelFormatError(f"{op.where()}: output {t.describe()} would have shape {list(s)}")
                shapes[i] = s
            known = [i for i in op.inputs if i >= 0]
            if known and (op.type in SHAPE_ONLY or all(i in values for i in known)):
                for i in op.outputs:  # folded values are held by the plan
                    ledger.add(_nbytes(g, i, shapes[i]), f"{op.where()} output {g.tensors[i].describe()}")
                ledger.add(_scratch_bytes(prepared.scratch) + prepared.work, f"{op.where()} scratch")
                outs = [np.zeros(shapes[i], g.tensors[i].np_dtype) for i in op.outputs]
                scratch = [np.zeros(shape, dtype) for shape, dtype in prepared.scratch]
                prepared.run([values.get(i) if i >= 0 else None for i in op.inputs], outs, scratch)
                values.update(zip(op.outputs, outs))
                continue
            step = Step(op.index, prepared.run, list(op.inputs), list(op.outputs), prepared.scratch)
            step.work, step.warmup = prepared.work, prepared.warmup
            self.steps.append(step)
        for i in g.outputs:
            if i not in shapes:
                raise ModelFormatError(f"graph output tensor {i} is never produced")
        self.shapes = shapes
        self.values = values
        layout = self._layout(keep_all)
        for size, i in zip(*layout[:2]):
            ledger.add(size, f"activation {g.tensors[i].describe()} {list(shapes[i])}")
        # steps run one at a time: the arena holds the largest step's scratch (and its work arrays)
        arena = max([_scratch_bytes(s.scratch_spec) + s.work for s in self.steps], default=0)
        biggest = max(self.steps, key=lambda s: _scratch_bytes(s.scratch_spec) + s.work, default=None)
        if biggest is not None:
            ledger.add(arena, f"{g.ops[biggest.op_index].where()} scratch {_largest(biggest)}")
        for i in self.variables:
            ledger.add(math.prod(shapes[i]) * g.tensors[i].np_dtype.itemsize, f"state {g.tensors[i].describe()}")
        self.nbytes = ledger.total  # what this plan holds, constants included
        self.buffers = self._allocate(layout)
        for i in self.variables:
            self.buffers[i] = np.empty(shapes[i], g.tensors[i].np_dtype)
        self._resets = [(self.buffers[i], self._reset_value(g.tensors[i])) for i in self.variables]
        self._allocate_scratch()
        self._bind()

    @staticmethod
    def _reset_value(t) -> int:
        """What the reference's ResetVariableTensor writes: the zero point's byte for int8, else 0."""
        return int(t.zero_point[0]) if t.dtype == "int8" and t.zero_point.size else 0

    def _bind(self) -> None:
        """Each step's argument lists, built once: a run only puts the feeds into their slots."""
        arrays = {**self.values, **self.buffers}
        inputs = set(self.graph.inputs)
        self._calls = []
        self._feed_slots: list[tuple[int, list, int]] = []  # (tensor, a step's input list, position)
        for step in self.steps:
            ins = [arrays.get(i) if i >= 0 else None for i in step.inputs]
            self._feed_slots += [(i, ins, k) for k, i in enumerate(step.inputs) if i in inputs]
            args = (ins, [arrays[i] for i in step.outputs], step.scratch)
            self._calls.append((step.run, args))
        self._warm_calls = [(s.warmup or run, args) for s, (run, args) in zip(self.steps, self._calls)]

    def _allocate_scratch(self) -> None:
        """One arena, as large as the largest step's scratch: steps run one at a time."""
        sizes = [
            [
                int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
                for shape, dtype in s.scratch_spec
            ]
            for s in self.steps
        ]
        arena = np.empty(max([sum(x) + 64 * len(x) for x in sizes], default=0), np.uint8)
        for step, nbytes in zip(self.steps, sizes):
            offset = 0
            for (shape, dtype), size in zip(step.scratch_spec, nbytes):
                step.scratch.append(arena[offset : offset + size].view(dtype).reshape(shape))
                offset += -(-size // 64) * 64  # keep each array 64-byte aligned within the arena

    def _layout(self, keep_all: bool) -> tuple[list[int], list[int], dict[int, int]]:
        """Activation memory by lifetime, before anything is allocated: the byte size of each block,
        the first tensor of each block, and the block of each tensor (a dead tensor's block goes to a
        later tensor that fits, unless keep_all)."""
        g = self.graph
        last_use: dict[int, int] = {}
        for n, step in enumerate(self.steps):
            for i in step.inputs:
                last_use[i] = n
        pinned = set(g.inputs) | set(g.outputs)
        sizes: list[int] = []
        firsts: list[int] = []
        free: list[int] = []  # blocks of dead tensors
        block_of: dict[int, int] = {}
        for n, step in enumerate(self.steps):
            for i in step.outputs:
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
            for i in set(step.inputs):
                if i in block_of and last_use.get(i) == n and i not in pinned and i not in step.outputs:
                    free.append(block_of[i])
        return sizes, firsts, block_of

    def _allocate(self, layout: tuple[list[int], list[int], dict[int, int]]) -> dict[int, np.ndarray]:
        """One array per activation tensor, views of the layout's blocks."""
        sizes, _, block_of = layout
        raws = [np.empty(size, np.uint8) for size in sizes]
        buffers: dict[int, np.ndarray] = {}
        for i, block in block_of.items():
            t = self.graph.tensors[i]
            nbytes = _nbytes(self.graph, i, self.shapes[i])
            buffers[i] = raws[block][:nbytes].view(t.np_dtype).reshape(self.shapes[i])
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
        warm: the load-time warm-up (steps with a warmup function call it instead: their outputs
        are then undefined).
        """
        for i, ins, k in self._feed_slots:
            ins[k] = feeds[i]
        for buf, value in self._resets:  # a run is stateless: state starts as after a reset
            buf.fill(value)
        try:
            if warm:
                for run, args in self._warm_calls:
                    run(*args)
            elif timings is None and observe is None:
                with self.pace:  # backs off to one thread while the cores are taken (engine/runtime.py)
                    for run, args in self._calls:
                        run(*args)
            else:
                for step, (run, args) in zip(self.steps, self._calls):
                    t0 = time.perf_counter()
                    run(*args)
                    if timings is not None:
                        timings.append((step.op_index, time.perf_counter() - t0))
                    if observe is not None:
                        observe(step.op_index, dict(zip(step.outputs, args[1])))
        finally:  # the plan keeps no reference to the caller's arrays
            for _, ins, k in self._feed_slots:
                ins[k] = None
        return {**self.values, **self.buffers, **feeds}


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
