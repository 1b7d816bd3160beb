"""Fuzzing engine.load + run() with mutated .tflite and .npz bytes, crash-isolated in subprocesses.

Cases are drawn by hypothesis, derandomized (the same cases on every run, so CI is deterministic):
bit flips, byte and int32 overwrites, truncations, splices, insertions and deletions of a .tflite
(biased towards the flatbuffer's structure rather than weight payloads), and for the engine's .npz:
edits inside the zip members (graph.json structure, .npy headers and data) re-zipped with valid CRCs,
plus raw byte mutations of the zip. Each case runs engine.load and one run() on a zero input in a
worker process (tests/fuzz_worker.py); the test asserts no crash (signal, abort, hang) and no exception
outside engine.EngineError. Failing cases are written out as files to reproduce them.
Longer runs: scripts/fuzz.py.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from tests.fuzz_worker import (
    generate_cases,
    is_failure,
    npz_bytes,
    run_cases,
    small_model_bytes,
    write_reproducer,
)

# ~2,000 cases in all; FUZZ_SCALE multiplies them (e.g. FUZZ_SCALE=10 for a deeper local run)
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
COUNTS = {"mnist_tflite": 600, "small_tflite": 600, "small_npz": 450, "mnist_npz": 350}
REPRO_DIR = Path(os.environ.get("FUZZ_REPRO_DIR", "/tmp/engine_fuzz_failures"))


@pytest.fixture(scope="module")
def bases(tmp_path_factory, models_dir) -> dict[str, str]:
    d = tmp_path_factory.mktemp("fuzz_bases")
    mnist = (models_dir / "mnist_uint8.tflite").read_bytes()
    small = small_model_bytes()
    files = {
        "mnist_tflite": mnist,
        "small_tflite": small,
        "small_npz": npz_bytes(small),
        "mnist_npz": npz_bytes(mnist),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = str(d / name)
        Path(paths[name]).write_bytes(data)
    return paths


def report(cases: list[dict], results: list[str], bases: dict[str, str]) -> str:
    failures = [(c, r) for c, r in zip(cases, results) if is_failure(r)]
    lines = [
        f"{len(failures)} of {len(cases)} cases failed; outcomes {dict(Counter(r.split(' ')[0] for r in results))}"
    ]
    by_kind: dict[str, list] = {}
    for c, r in failures:
        by_kind.setdefault(r.split(" ")[0].split("|")[0], []).append((c, r))
    for kind, items in by_kind.items():
        lines.append(f"--- {kind}: {len(items)} case(s); first ones:")
        for c, r in items[:3]:
            path = write_reproducer(c, bases, REPRO_DIR)
            lines.append(f"  {json.dumps(c)[:300]}\n    -> {r[:700]}\n    reproduce: engine.load('{path}')")
    return "\n".join(lines)


@pytest.mark.parametrize("base", list(COUNTS))
def test_fuzz_load_and_run(bases, base):
    data = Path(bases[base]).read_bytes()
    cases = generate_cases(base, data, max(1, int(COUNTS[base] * SCALE)))
    results = run_cases(cases, bases, batch_size=200, workers=2)
    outcomes = Counter(r.split(" ")[0] for r in results)
    # the mutations must reach past the first checks: some cases load and run, some are refused
    assert outcomes["ok"] > 0 and sum(v for k, v in outcomes.items() if k.startswith("engine-error")) > 0, (
        outcomes
    )
    failures = [r for r in results if is_failure(r)]
    assert not failures, report(cases, results, bases)


def test_fuzz_cases_are_deterministic():
    data = small_model_bytes()
    assert generate_cases("small_tflite", data, 30) == generate_cases("small_tflite", data, 30)


def test_harness_isolates_crashes_and_hangs(bases):
    """The worker's crash detection itself: the culprit is named, the other cases still run. Only the
    hanging case has a short deadline: the legitimate ones get the default, however slow the machine."""
    ok = {"base": "small_tflite", "muts": []}
    broken = {"base": "small_tflite", "muts": [["trunc", 100]]}
    hang = {"selftest": "hang", "timeout": 2}
    cases = [ok, broken, {"selftest": "abort"}, ok, {"selftest": "segv"}, broken, hang, ok]
    results = run_cases(cases, bases, batch_size=8, workers=1)
    assert results[0] == "ok" and results[3] == "ok" and results[7] == "ok", results
    assert results[1].startswith("engine-error:ModelFormatError") and results[5].startswith(
        "engine-error:"
    ), results
    assert results[2].startswith("crash:signal SIGABRT"), results[2]
    assert results[4].startswith("crash:signal SIGSEGV"), results[4]
    assert results[6].startswith("crash:timeout"), results[6]
