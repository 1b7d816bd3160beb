"""Shared helpers of the one-op tests: build a graph (Net), random full-range inputs (run_sets,
qparams, all_bytes), and compare every output with TFLite's reference kernels bit for bit (check).
"""

from __future__ import annotations

import hashlib

import numpy as np

import engine
from tests.oracle import reference_run_many
from tests.tflite_builder import build_model

F32 = np.float32


class Net:
    """A model under construction: tensors, ops, graph inputs and outputs, each output labelled."""

    def __init__(self) -> None:
        self.tensors: list[dict] = []
        self.ops: list[dict] = []
        self.inputs: list[int] = []
        self.outputs: list[int] = []
        self.labels: list[str] = []

    def tensor(self, shape, dtype, scale=None, zero_point=None, data=None, name=None) -> int:
        t = {"name": name or f"t{len(self.tensors)}", "shape": list(shape), "dtype": dtype}
        if scale is not None:
            t["scale"] = [float(scale)]
            t["zero_point"] = [int(zero_point)]
        if data is not None:
            t["data"] = np.asarray(data)
        self.tensors.append(t)
        return len(self.tensors) - 1

    def input(self, shape, dtype, scale=None, zero_point=None) -> int:
        i = self.tensor(shape, dtype, scale, zero_point)
        self.inputs.append(i)
        return i

    def const(self, data, dtype, scale=None, zero_point=None) -> int:
        data = np.asarray(data)
        return self.tensor(data.shape, dtype, scale, zero_point, data=data)

    def op(self, op: str, inputs: list[int], outputs: list[int], label: str, **options) -> None:
        self.ops.append({"op": op, "inputs": inputs, "outputs": outputs, "options": options})
        for o in outputs:
            self.outputs.append(o)
            self.labels.append(label)

    def build(self) -> bytes:
        return build_model(self.tensors, self.ops, self.inputs, self.outputs)

    def random_inputs(self, rng: np.random.Generator, batch: int) -> list[np.ndarray]:
        """Full-range random values for every graph input, batch replacing the leading dimension."""
        xs = []
        for i in self.inputs:
            t = self.tensors[i]
            shape = (batch, *t["shape"][1:])
            if t["dtype"] in ("int8", "uint8", "int16", "int32"):
                info = np.iinfo(t["dtype"])
                xs.append(rng.integers(info.min, int(info.max) + 1, size=shape).astype(t["dtype"]))
            else:
                xs.append(rng.standard_normal(shape).astype(t["dtype"]))
        return xs


_REFERENCE_CACHE: dict[str, list[dict]] = {}


def cached_reference(model: bytes, input_sets: list[list[np.ndarray]]) -> list[dict]:
    """reference_run_many, memoized on the model and inputs: the variants of a test that force each
    kernel build (serial, parallel, VNNI, int16) compare with one oracle run."""
    h = hashlib.sha256(model)
    for xs in input_sets:
        for x in xs:
            h.update(repr((x.dtype.str, x.shape)).encode())
            h.update(np.ascontiguousarray(x).tobytes())
    key = h.hexdigest()
    if key not in _REFERENCE_CACHE:
        _REFERENCE_CACHE[key] = reference_run_many(model, input_sets)
    return _REFERENCE_CACHE[key]


def force_build(monkeypatch, build: str) -> list[tuple[str, bool]]:
    """Make every kernel picked from now on (at prepare) its `build`, "serial" or "parallel", whatever
    the work size; returns the list of (kernel name, parallel?) picks, filled as ops are prepared."""
    from engine.kernels import kernel as K

    forced = {"serial": 1 << 62, "parallel": 0}[build]
    monkeypatch.setattr(K, "PARALLEL_MIN_WORK", forced)
    try:
        from engine.kernels import lookup

        monkeypatch.setattr(lookup, "PARALLEL_MIN", forced, raising=False)
    except ImportError:
        pass
    picks: list[tuple[str, bool]] = []
    pick = K.Kernel.pick

    def recording_pick(self, work: int):
        chosen = pick(self, work)
        picks.append((self.__name__, chosen is self.parallel))
        return chosen

    monkeypatch.setattr(K.Kernel, "pick", recording_pick)
    return picks


def split_everywhere(monkeypatch) -> list[tuple[str, bool]]:
    """kernel_build's "parallel" (tests/conftest.py) for a test of its own: every kernel picked from now
    on its parallel build, every call of one with a team build split between the threads in every run
    after the load; returns the picks (force_build)."""
    from engine import executor

    picks = force_build(monkeypatch, "parallel")
    monkeypatch.setattr(executor, "PARALLEL_MIN_SECONDS", 0.0)
    threaded_runs(monkeypatch)
    return picks


def threaded_build(fn):
    """Kernel build fn's team build, what a team run calls for a large call; for a kernel without one
    (team=False: a team run calls its serial build), its parallel build, what runs threaded where team
    runs cannot. (The parallel builds of team kernels run only there: tests/test_team.py runs them on
    whole models; compiling each costs tens of seconds.)"""
    from engine.kernels.kernel import parallel_build, team_build

    return team_build(fn) or parallel_build(fn)


def check(net: Net, input_sets: list[list[np.ndarray]], model: bytes | None = None) -> None:
    """Every output of the engine equals the reference interpreter's, for every input set."""
    model = model or net.build()
    refs = cached_reference(model, input_sets)
    m = engine.load(model)
    for xs, ref in zip(input_sets, refs):
        got = m.run(list(xs) if len(xs) > 1 else xs[0])
        assert len(got) == len(ref["outputs"])
        for label, g, w in zip(net.labels, got, ref["outputs"]):
            assert g.dtype == w.dtype, label
            assert g.shape == w.shape, f"{label}: shape {g.shape} != reference {w.shape}"
            diff = np.count_nonzero(g != w)
            assert diff == 0, f"{label} (batch {xs[0].shape[0]}): {diff} of {g.size} values differ"


def run_sets(net: Net, seed: int, batches=(1, 1, 3)) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [net.random_inputs(rng, b) for b in batches]


def qparams(rng: np.random.Generator, dtype: str, lo: float = -3.0, hi: float = 0.0) -> tuple[float, int]:
    """A float32 scale log-uniform in [10**lo, 10**hi] and a zero point anywhere in the type's range."""
    info = np.iinfo(dtype)
    return float(F32(10 ** rng.uniform(lo, hi))), int(rng.integers(info.min, int(info.max) + 1))


def all_bytes(dtype: str, shape) -> np.ndarray:
    """The 256 values of an 8-bit type laid along the given shape (which holds 256 elements)."""
    return np.arange(256, dtype=np.uint8).view(dtype).reshape(shape).copy()


def threaded_runs(monkeypatch) -> None:
    """Every run from now on threaded (the pace off), after a new plan has timed its calls (its first
    runs would otherwise be its calibration's, on the serial builds)."""
    from engine import executor, runtime

    monkeypatch.setattr(runtime, "PACE_ON", False)
    paced = executor.Plan._paced

    def calibrated_first(plan):
        if plan._threaded is None:
            while plan._threaded is None:
                plan._calibrate(warm=False)
            for buf, value in plan._resets:  # (the state the calibration runs left: reset again)
                buf.fill(value)
        paced(plan)

    monkeypatch.setattr(executor.Plan, "_paced", calibrated_first)
