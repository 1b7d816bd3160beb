"""Planner and executor: shape propagation for a batch size, constant folding, buffer reuse by lifetime."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .errors import EngineError, ModelFormatError, UnsupportedError
from .formats.npz import MAX_TENSOR_BYTES
from .graph import DTYPES, Graph
from .ops import kernel_for

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


class Plan:
    """Everything needed to run the graph at one batch size: steps and preallocated buffers."""

    def __init__(self, g: Graph, batch: int, keep_all: bool = False):
        self.graph = g
        self.batch = batch
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
        self.steps: list[Step] = []
        for op in g.ops:
            for i in op.inputs:
                if i >= 0 and i not in shapes:
                    raise ModelFormatError(
                        f"{op.where()}: input tensor {i} is used before any op produces it"
                    )
            prepare = kernel_for(op)
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
                outs = [np.zeros(shapes[i], g.tensors[i].np_dtype) for i in op.outputs]
                args = [[values.get(i) if i >= 0 else None for i in op.inputs], outs]
                if prepared.scratch:
                    args.append([np.zeros(shape, dtype) for shape, dtype in prepared.scratch])
                prepared.run(*args)
                values.update(zip(op.outputs, outs))
                continue
            self.steps.append(
                Step(op.index, prepared.run, list(op.inputs), list(op.outputs), prepared.scratch)
            )
        for i in g.outputs:
            if i not in shapes:
                raise ModelFormatError(f"graph output tensor {i} is never produced")
        self.shapes = shapes
        self.values = values
        self.buffers = self._allocate(keep_all)
        self._allocate_scratch()
        self._bind()

    def _bind(self) -> None:
        """Each step's argument lists, built once: a run only puts the feeds into their slots."""
        arrays = {**self.values, **self.buffers}
        inputs = set(self.graph.inputs)
        self._calls = []
        self._feed_slots: list[tuple[int, list, int]] = []  # (tensor, a step's input list, position)
        for step in self.steps:
            ins = [arrays.get(i) if i >= 0 else None for i in step.inputs]
            self._feed_slots += [(i, ins, k) for k, i in enumerate(step.inputs) if i in inputs]
            args = (ins, [arrays[i] for i in step.outputs]) + ((step.scratch,) if step.scratch else ())
            self._calls.append((step.run, args))

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

    def _allocate(self, keep_all: bool) -> dict[int, np.ndarray]:
        """One array per activation tensor; the memory of dead tensors is reused (unless keep_all)."""
        g = self.graph
        last_use: dict[int, int] = {}
        for n, step in enumerate(self.steps):
            for i in step.inputs:
                last_use[i] = n
        pinned = set(g.inputs) | set(g.outputs)
        free: list[np.ndarray] = []  # raw byte blocks of dead tensors
        raw_of: dict[int, np.ndarray] = {}
        buffers: dict[int, np.ndarray] = {}
        for n, step in enumerate(self.steps):
            for i in step.outputs:
                t = g.tensors[i]
                nbytes = max(int(np.prod(self.shapes[i], dtype=np.int64)) * t.np_dtype.itemsize, 1)
                fits = [b for b in free if b.size >= nbytes]
                if fits and not keep_all:
                    raw = min(fits, key=lambda b: b.size)
                    free = [b for b in free if b is not raw]
                else:
                    raw = np.empty(nbytes, np.uint8)
                raw_of[i] = raw
                buffers[i] = (
                    raw[: int(np.prod(self.shapes[i], dtype=np.int64)) * t.np_dtype.itemsize]
                    .view(t.np_dtype)
                    .reshape(self.shapes[i])
                )
            if keep_all:
                continue
            for i in set(step.inputs):
                if i in raw_of and last_use.get(i) == n and i not in pinned and i not in step.outputs:
                    free.append(raw_of[i])
        return buffers

    def run(
        self, feeds: dict[int, np.ndarray], timings: list | None = None, observe=None
    ) -> dict[int, np.ndarray]:
        """Run every step; returns the buffer of every tensor (folded constants included).

        With a timings list, appends (op index, seconds) for each step. With observe, calls
        observe(op index, {tensor index: array}) right after each step, while its outputs are still
        in their (possibly reused) buffers: the arrays are views, copy what you keep.
        """
        for i, ins, k in self._feed_slots:
            ins[k] = feeds[i]
        try:
            if timings is None and observe is None:
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
