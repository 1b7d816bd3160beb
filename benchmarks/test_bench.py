"""pytest-benchmark cases: the engine and LiteRT (XNNPACK, builtin, reference kernels) on the same inputs.

    python -m pytest benchmarks --benchmark-group-by=param:case      # real measurements
    python -m pytest benchmarks --benchmark-disable                  # CI smoke: each case once

The cases are benchmarks/cases.py's, the ones scripts/bench.py runs (which interleaves the runners and
prints the ratios). Each case's engine outputs are compared with the oracle once before any timing.
Each call runs a whole batch: extra_info holds the batch and, when timed, the median ms per image.
"""

from __future__ import annotations

import numba
import pytest

import engine
from benchmarks.cases import CASES, LITERT_KINDS, REFERENCE_OK, case_input, check_outputs, litert_runner
from engine.registry import model_file

THREADS = [1, 2]
_checked: set[str] = set()


def model_and_input(case: str):
    name, batch, _ = CASES[case]
    path = model_file(name)
    m = engine.load(path)
    x = case_input(m, batch)
    if case not in _checked:  # once per case: the engine's answers are the oracle's
        check_outputs(case, path, m, x)
        _checked.add(case)
    return path, m, x


def per_image(benchmark, batch: int) -> None:
    benchmark.extra_info["batch"] = batch
    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["ms_per_image_median"] = stats.stats.median * 1e3 / batch


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("case", list(CASES))
def test_engine(benchmark, case, threads):
    _, m, x = model_and_input(case)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    benchmark(m.run, x)
    per_image(benchmark, len(x))


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", LITERT_KINDS)
def test_litert(benchmark, case, kind, threads):
    pytest.importorskip("ai_edge_litert.interpreter")
    _, _, lite_batch = CASES[case]
    if lite_batch is None:
        pytest.skip(f"LiteRT refuses {case}")
    if kind == "litert_reference" and case not in REFERENCE_OK:
        pytest.skip("the reference kernels take seconds per run here")
    path, _, x = model_and_input(case)
    run = litert_runner(path, kind, threads, lite_batch)
    benchmark(run, x[:lite_batch])
    per_image(benchmark, lite_batch)
