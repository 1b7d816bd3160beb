"""Team runs (kernels/native.py run_team): the threads go through a plan's calls together, each split
call's loop in parts taken by whichever thread comes first.

Checked against NumPy: the parts cover each loop exactly once, both threads take parts, a call starts
only when the one before it has finished (each reads all of the one before's output), a failing kernel
stops the run and raises its error, a taken pool runs the calls on their serial builds; and models'
team runs against LiteRT's reference kernels.
"""

from __future__ import annotations

import threading
import time

import numba
import numpy as np
import pytest
from numba import njit, prange

import engine
from engine import executor, runtime
from engine import model as model_module
from engine.executor import _Calls
from engine.kernels import native, pool
from engine.kernels.kernel import compile_for, kernel, team_build
from engine.kernels.native import native_call, native_table, run_team
from tests import test_zoo_models
from tests.every_tensor import assert_tensors_equal, tensors_through_plan
from tests.harness import threaded_runs
from tests.oracle import micro_run_many, reference_run_many

pytestmark = pytest.mark.skipif(
    not (native.ENABLED and pool.installed() and runtime.usable_cores() > 1),
    reason="team runs need the engine's pool (x86-64 Linux) and two cores",
)


@kernel
def _mark(x, out, who):
    """out[i] = 3 x[i] + i, who[i] = the thread that wrote it, in tasks of 64 elements."""
    n = x.size
    for t in prange((n + 63) // 64):
        for i in range(t * 64, min(n, t * 64 + 64)):
            out[i] = 3 * x[i] + i
            who[i] = numba.get_thread_id()


@kernel
def _reverse(x, out, who):
    """out[i] = x[n - 1 - i] - 1: every part reads the other parts' input."""
    n = x.size
    for i in prange(n):
        out[i] = x[n - 1 - i] - 1
        who[i] = numba.get_thread_id()


@kernel
def _checked(x, out, who):
    for i in prange(x.size):
        if x[i] < 0:
            raise ValueError("negative input")
        out[i] = x[i]
        who[i] = numba.get_thread_id()


_mark_serial = _mark.serial  # (a global the njit caller below reads)


@pytest.fixture(autouse=True)
def _threads():
    yield
    engine.set_num_threads(runtime.usable_cores())


def _team_calls(calls: list[tuple]) -> tuple:
    """run_team's arguments for these (kernel, args) calls, each on its team build (compiled here)."""
    natives = []
    for fn, args in calls:
        compile_for(fn.team, args)
        natives.append(native_call(fn.team, args))
    return native_table(natives, [True] * len(natives))


@pytest.mark.parametrize("n", [0, 1, 63, 1000, 1 << 18])
def test_split_calls_cover_their_loops_once_and_in_order(n):
    x = np.arange(n, dtype=np.int64) % 1000 - 500
    a, b = np.zeros(n, np.int64), np.zeros(n, np.int64)
    who_a, who_b = np.full(n, -1, np.int32), np.full(n, -1, np.int32)
    args = _team_calls([(_mark, (x, a, who_a)), (_reverse, (a, b, who_b))])
    engine.set_num_threads(2)
    shared = False
    for _ in range(200):  # (until the worker, woken by the first runs, takes a part)
        a[:], b[:], who_a[:], who_b[:] = 0, 0, -1, -1
        assert run_team(*args) is None
        want = 3 * x + np.arange(n)
        np.testing.assert_array_equal(a, want)
        np.testing.assert_array_equal(b, want[::-1] - 1)
        assert ((who_a >= 0) & (who_a < 2)).all() and ((who_b >= 0) & (who_b < 2)).all()
        shared = len(np.unique(who_b)) == 2
        if shared or n < 1 << 18:
            break
    assert shared or n < 1 << 18, "the worker took no part of a large loop in 200 runs"


def test_parts_outside_a_team_run_are_the_whole_loop():
    x, out, who = np.arange(100, dtype=np.int64), np.zeros(100, np.int64), np.zeros(100, np.int32)
    _mark.team(x, out, who)
    np.testing.assert_array_equal(out, 3 * x + np.arange(100))
    assert _mark.serial is _mark.team  # (a kernel's serial build is its team build)


@njit(nogil=True)
def _serial_marks(x, out, who, want, times):
    """_mark's serial build `times` times on x, without the GIL: the calls whose out is not want."""
    wrong = 0
    for _ in range(times):
        out[:] = 0
        _mark_serial(x, out, who)
        wrong += not (out == want).all()
    return wrong


def test_serial_calls_beside_team_runs_cover_their_loops():
    """A kernel's serial build is its team build, and another Python thread has thread id 0 as a team
    run's caller has: its calls while team runs split theirs still compute all of their loops."""
    n = 1 << 16
    x, a, who_a = np.arange(n, dtype=np.int64), np.zeros(n, np.int64), np.zeros(n, np.int32)
    args = _team_calls([(_mark, (x, a, who_a))] * 100)
    small = np.arange(3000, dtype=np.int64)
    out, who = np.zeros(small.size, np.int64), np.zeros(small.size, np.int32)
    want = 3 * small + np.arange(small.size)
    assert _serial_marks(small, out, who, want, 1) == 0
    stop, runs = threading.Event(), []

    def team_runs():
        numba.set_num_threads(2)  # (per thread)
        while not stop.is_set():
            runs.append(run_team(*args))

    team = threading.Thread(target=team_runs)
    team.start()
    try:
        while not runs:  # (the team runs go on, one after another)
            time.sleep(0.01)
        wrong = _serial_marks(small, out, who, want, 20_000)
    finally:
        stop.set()
        team.join()
    assert wrong == 0, f"{wrong} of 20,000 serial calls beside team runs computed a part of their loop"
    assert all(r is None for r in runs)
    np.testing.assert_array_equal(a, 3 * x + np.arange(n))


def test_a_failing_kernel_stops_the_team_and_raises_its_error():
    x = np.arange(1 << 12, dtype=np.int64)
    a, b, c = (np.zeros(x.size, np.int64) for _ in range(3))
    who = np.zeros(x.size, np.int32)
    bad = x - 10
    calls = [(_checked, (x, a, who)), (_checked, (bad, b, who)), (_checked, (x, c, who))]
    engine.set_num_threads(2)
    assert run_team(*_team_calls(calls)) == 1
    np.testing.assert_array_equal(a, x)
    assert (c == 0).all()  # (the third call did not run)
    team_calls = _Calls([[(fn.team, args) for fn, args in calls]], [(fn.serial, args) for fn, args in calls], [True] * 3)
    team_calls.resolve()
    assert len(team_calls.runs) == 1 and id(team_calls.runs[0][1]) in team_calls.native
    with pytest.raises(ValueError, match="negative input"):
        team_calls.run()


def test_a_taken_pool_runs_the_calls_on_their_serial_builds():
    x = np.arange(5000, dtype=np.int64)
    a, b, who = np.zeros(x.size, np.int64), np.zeros(x.size, np.int64), np.zeros(x.size, np.int32)
    calls = [(_mark, (x, a, who)), (_reverse, (a, b, who))]
    for fn, args in calls:
        fn.team(*args)
        fn.serial(*args)
    team_calls = _Calls([[(fn.team, args) for fn, args in calls]], [(fn.serial, args) for fn, args in calls], [True] * 2)
    team_calls.resolve()
    a[:], b[:] = 0, 0
    engine.set_num_threads(2)
    pool._state[pool.BUSY] = 1  # (another thread's region)
    try:
        assert team_calls.runs[0][0](*team_calls.runs[0][1]) == 0
        team_calls.run()
    finally:
        pool._state[pool.BUSY] = 0
    np.testing.assert_array_equal(b, (3 * x + np.arange(x.size))[::-1] - 1)


SHARED = [
    "hello_world_int8",
    "micro_speech_int8",
    "mnist_uint8",
    "person_detect_int8",
    "ssd_mobilenet_v1_coco_uint8",
]
ZOO = [
    "ad01_int8", "deeplabv3_mnv2_dm05_pascal_quant", "int16x8_mixed", "keras_lstm_mnist_ptq", "kws_ref_model",
    "mobilenet_v1_0.25_128_quant", "movenet_single_pose_lightning_ptq", "pretrainedResnet_quant", "split_concat",
    "str_ww_ref_model", "tf2_mobilenet_v2_1.0_224_ptq", "traffic_model", "vww_96_int8",
    "yolov8n_full_integer_quant",
]  # fmt: skip


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("name", SHARED + [f"zoo/{n}" for n in ZOO])
def test_team_runs_give_the_oracles_tensors_on_every_model(name, batch, models_dir, monkeypatch):
    """Every shared and zoo model at two threads, every run a team run with every call that has a team
    build split between the threads (the batch whole, no lanes): every tensor, as keep_all returns it and
    as observe sees the production plan's, equals the oracle's (LiteRT's reference kernels; TFLite Micro
    for person_detect, which the reference refuses), batch 8 against 8 single runs."""
    monkeypatch.setattr(executor, "PARALLEL_MIN_SECONDS", 0.0)
    monkeypatch.setattr(model_module, "LANE_MIN_BATCH", 1 << 30)
    threaded_runs(monkeypatch)
    teams, team = [], executor.Plan._team
    monkeypatch.setattr(
        executor.Plan, "_team", lambda plan, split: teams.append(team(plan, split)) or teams[-1]
    )
    path = models_dir / f"{name}.tflite"
    engine.set_num_threads(2)
    m = engine.load(path)
    rng = np.random.default_rng(4)
    xs = []
    for t in m.inputs:
        info = np.iinfo(t.dtype)
        xs.append(rng.integers(info.min, int(info.max) + 1, (batch, *t.shape[1:])).astype(t.dtype))
    mine = m.run(xs if len(xs) > 1 else xs[0], keep_all=True)
    oracle = micro_run_many if name == "person_detect_int8" else reference_run_many
    refs = oracle(path, [[x[k : k + 1] for x in xs] for k in range(batch)], preserve_all=True)
    assert_tensors_equal(mine, refs)
    # the production plan too (buffers reused, int8 tensors stored flipped: engine/storage.py), every tensor
    # as observe hands it out, where test_zoo_models does not already (its five models at batch 1 and 8)
    if name.removeprefix("zoo/") not in test_zoo_models.ZOO:
        assert_tensors_equal(tensors_through_plan(m, xs), refs)
    split = [args[0][:, 3].any() for calls in teams for _, args in calls.runs if id(args) in calls.native]
    # (a batch of one of FULLY_CONNECTED layers alone, hello_world's or ad01's, has none: fc_packed.FEW_ROWS)
    splittable = [team_build(fn) is not None for p in m._plans.values() for cs in p._bound for fn, _ in cs]
    assert any(split) or not any(splittable), "no call ran split in a team run"
    assert any(splittable) or (batch == 1 and name in ("hello_world_int8", "zoo/ad01_int8"))


def test_without_team_runs_the_calls_take_their_parallel_builds(models_dir, monkeypatch):
    """ENGINE_TEAM=0 (and where the pool cannot run teams): the large calls are timed on their
    parallel builds; runs give the reference kernels' outputs."""
    monkeypatch.setattr(executor, "TEAM", False)
    monkeypatch.setattr(executor, "PARALLEL_MIN_SECONDS", 0.0)
    path = models_dir / "mnist_uint8.tflite"
    engine.set_num_threads(2)
    m = engine.load(path)
    rng = np.random.default_rng(3)
    xs = [rng.integers(0, 256, (1, 28, 28, 1)).astype(np.uint8) for _ in range(3)]
    got = [[o.copy() for o in m.run(x)] for x in xs]
    plan = m.plan(1)
    assert plan._threaded is not None and plan._threaded.ones is None  # (no team run)
    assert any(map(any, plan._tried))  # calls timed on their parallel builds
    for outs, ref in zip(got, reference_run_many(path, [[x] for x in xs])):
        for o, want in zip(outs, ref["outputs"]):
            np.testing.assert_array_equal(o, want)
