"""Shared fixtures: where the shared models and data live; oracle tests skip when LiteRT is missing."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `import tests.oracle` works whatever the rootdir/import mode
    sys.path.insert(0, str(ROOT))

from tests import oracle

HAVE_LITERT = oracle.available("reference")
HAVE_MICRO = oracle.available("micro")


def shared_dir() -> Path:
    return Path(os.environ.get("SHARED_DIR") or ROOT.parent / "shared")


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if not path.is_dir():
        pytest.skip(f"shared folder {path} not found (set SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def models_dir(shared: Path) -> Path:
    return shared / "models"


@pytest.fixture(scope="session")
def litert() -> None:
    """Request this (or mark the module) in tests that need the LiteRT reference interpreter."""
    oracle.require("reference")


@pytest.fixture(scope="session")
def tflm() -> None:
    """Request this in tests that need the TFLite Micro interpreter."""
    oracle.require("micro")


@pytest.fixture(params=["serial", "parallel"])
def kernel_build(request, monkeypatch):
    """Runs the test once with every kernel's serial build and once threaded (tests without the
    fixture get what the work size and the timings pick): "parallel" binds each kernel's parallel
    build and runs every call of a kernel with a team build split between the threads, in every run
    after the load (executor.TEAM; ENGINE_TEAM=0: each call's parallel build); fails a test that
    picked no kernel."""
    from engine import executor
    from tests.harness import force_build, split_everywhere

    threaded = request.param == "parallel"
    if threaded:
        picks = split_everywhere(monkeypatch)
    else:
        picks = force_build(monkeypatch, "serial")
        monkeypatch.setattr(executor, "PARALLEL_MIN_SECONDS", math.inf)
    yield request.param
    report = getattr(request.node, "rep_call", None)
    if report is None or not report.passed:  # skipped (no oracle) or failed: nothing to add
        return
    assert picks, "no kernel was picked: the test does not exercise a kernel build"
    wrong = [name for name, parallel in picks if parallel != threaded]
    assert not wrong, f"kernels not in their {request.param} build: {wrong}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `early` first (the sort is stable: the rest keep their order)."""
    items.sort(key=lambda item: item.get_closest_marker("early") is None)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps the call phase's report on the item (kernel_build's teardown reads it)."""
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report
