"""Semantic fuzzing against the reference kernels (tests/graph_fuzz.py).

- Random valid graphs of 1-3 ops (every op of graph_fuzz.OPS, random options, types, shapes, scales,
  zero points, broadcast operands), every tensor compared through the production plan at batch 1 and 3:
  fixed seeds (the same every run) plus rotating ones (a new set each day, or GRAPH_FUZZ_SEED=N),
  printed on failure so that the case can be rerun.
- Structural fuzz: fields of such valid graphs changed (shapes, types, scales, zero points, quantized
  dimensions, options, operands, the op itself) so that the cases reach past the format checks into
  prepare() and the kernels, in crash-isolated workers; where the engine runs a mutated model and the
  reference runs it too, every tensor must agree.
Longer runs: `python scripts/fuzz.py --graphs --minutes 30` and `--fields`.
"""

from __future__ import annotations

import datetime
import os
from collections import Counter

import pytest

from tests.fuzz_worker import is_failure, run_cases
from tests.graph_fuzz import OPS, check_case, compare_mutated, generate, mutated_model
from tests.oracle import require

pytestmark = pytest.mark.usefixtures("litert")

FIXED_SEEDS = list(range(20))  # 20 models x 12 chains
ROTATING = 8


def rotating_seeds() -> list[int]:
    """GRAPH_FUZZ_SEED, or a seed from today's date: CI explores new graphs every day."""
    env = os.environ.get("GRAPH_FUZZ_SEED")
    first = int(env) if env else 1000 + datetime.date.today().toordinal() % 100_000 * ROTATING
    return list(range(first, first + ROTATING))


def _run(seeds: list[int], how: str) -> None:
    failures = [f for s in seeds for f in check_case(generate(s))]
    assert not failures, (
        f"{how} seeds {seeds}: {len(failures)} failing chain(s); rerun one with GRAPH_FUZZ_SEED=<seed> or "
        f"`python scripts/fuzz.py --graphs --seed <seed> --cases 1`\n" + "\n".join(failures)
    )


def test_fixed_seeds_cover_every_op():
    seen = Counter(o["op"] for s in FIXED_SEEDS for net in generate(s).chains for o in net.ops)
    assert set(seen) == set(OPS), f"never drawn: {sorted(set(OPS) - set(seen))}"


@pytest.mark.parametrize("seed", FIXED_SEEDS)
def test_random_graphs_equal_reference(seed):
    _run([seed], "fixed")


def test_random_graphs_equal_reference_rotating_seed():
    _run(rotating_seeds(), "rotating")


# int16 chains among them (these seeds found TFLite Micro's int16 GATHER and RESIZE_BILINEAR refusals)
PROFILE_SEEDS = [7000, 7001, 7002, 7003]


@pytest.mark.parametrize("numerics", ["litert", "tflm"])
def test_random_graphs_equal_each_profiles_oracle(numerics):
    """The same graphs against LiteRT's default interpreter (every tensor, the delegate's partition) and
    TFLite Micro (batch 1); chains their oracle refuses, the engine must refuse too."""
    require("litert" if numerics == "litert" else "micro")
    failures = [f for s in PROFILE_SEEDS for f in check_case(generate(s), numerics=numerics)]
    assert not failures, (
        f"{numerics} seeds {PROFILE_SEEDS}: rerun one with `python scripts/fuzz.py --graphs --numerics "
        f"{numerics} --seed <seed> --cases 1`\n" + "\n".join(failures)
    )


@pytest.mark.parametrize("numerics, first, count", [("litert", 1000, 40), ("tflm", 0, 160)])
def test_mutated_fields_each_profile(numerics, first, count):
    """Mutated graphs loaded and run in each profile, crash-isolated: no exception outside EngineError
    (seed 1010 once raised IndexError in a litert rule), and where both run them, equal to the runtime."""
    require("litert" if numerics == "litert" else "micro")
    seeds = [s for s in range(first, first + count) if mutated_model(s) is not None]
    cases = [{"base": "fields", "seed": s, "numerics": numerics} for s in seeds]
    results = run_cases(cases, {}, batch_size=count, workers=1)
    failures = [(s, r) for s, r in zip(seeds, results) if is_failure(r)]
    assert not failures, "\n".join(f"seed {s}: {mutated_model(s)[1]}\n  -> {r[:500]}" for s, r in failures)
    compared = Counter(compare_mutated(s, numerics) for s, r in zip(seeds, results) if r == "ok")
    assert compared["equal"] >= 3, compared


def test_mutated_fields_reach_past_the_first_check():
    seeds = [s for s in range(160) if mutated_model(s) is not None]
    results = run_cases([{"base": "fields", "seed": s} for s in seeds], {}, batch_size=80, workers=2)
    failures = [(s, r) for s, r in zip(seeds, results) if is_failure(r)]
    assert not failures, "\n".join(f"seed {s}: {mutated_model(s)[1]}\n  -> {r[:500]}" for s, r in failures)
    outcomes = Counter(r.split(" ")[0] for r in results)
    corrupt = sum("corrupt flatbuffer" in r for r in results)
    # valid flatbuffers: the mutations reach prepare() (refusals there) and the kernels (runs)
    assert outcomes["ok"] >= 20 and outcomes["engine-error:UnsupportedError"] >= 20 and corrupt == 0, outcomes
    compared = Counter(compare_mutated(s) for s, r in zip(seeds, results) if r == "ok")
    assert compared["equal"] >= 20, compared


@pytest.mark.parametrize(
    "args, summary",
    [
        (["--graphs", "--cases", "2", "--round", "2", "--seed", "900"], "2 cases, 0 failures"),
        (["--graphs", "--numerics", "tflm", "--cases", "1", "--seed", "901"], "1 cases, 0 failures"),
        (["--fields", "--cases", "10", "--round", "10", "--seed", "900"], "10 cases, 0 failures"),
        (["--bases", "small_tflite", "--cases", "30", "--round", "30"], "30 cases, 0 failures"),
    ],
)
def test_fuzz_script_modes(args, summary):
    """scripts/fuzz.py, each mode in a short run: exit status 0 and its summary line."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    p = subprocess.run(
        [sys.executable, str(root / "scripts/fuzz.py"), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert p.returncode == 0 and summary in p.stdout, p.stdout[-2000:] + p.stderr[-2000:]
