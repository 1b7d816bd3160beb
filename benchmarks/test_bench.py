"""pytest-benchmark cases: the engine and LiteRT on the same inputs, in one process.

    python -m pytest benchmarks --benchmark-group-by=param:case      # real measurements
    python -m pytest benchmarks --benchmark-disable                  # CI smoke: each case once

Ratios against LiteRT come from comparing the groups' medians (scripts/bench.py prints them).
"""

from __future__ import annotations

import numpy as np
import pytest

import engine
from engine.registry import model_file

CASES = {"mnist_b1": ("mnist", 1), "mnist_b256": ("mnist", 256), "ssd_b1": ("ssd_mobilenet_v1", 1)}


def model_and_input(case: str):
    name, batch = CASES[case]
    path = model_file(name)
    m = engine.load(path)
    t = m.inputs[0]
    info = np.iinfo(t.dtype)
    x = np.random.default_rng(0).integers(info.min, info.max + 1, (batch, *t.shape[1:])).astype(t.dtype)
    return path, m, x


@pytest.mark.parametrize("case", list(CASES))
def test_engine(benchmark, case):
    _, m, x = model_and_input(case)
    benchmark(m.run, x)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("kind", ["xnnpack", "builtin"])
def test_litert(benchmark, case, kind):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    path, _, x = model_and_input(case)
    resolver = {
        "xnnpack": litert.OpResolverType.AUTO,
        "builtin": litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    }
    it = litert.Interpreter(model_path=str(path), num_threads=2, experimental_op_resolver_type=resolver[kind])
    d = it.get_input_details()[0]
    if x.shape[0] != d["shape"][0]:
        it.resize_tensor_input(d["index"], list(x.shape))
    it.allocate_tensors()

    def run():
        it.set_tensor(d["index"], x)
        it.invoke()

    benchmark(run)
