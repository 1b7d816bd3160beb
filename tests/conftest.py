"""Shared fixtures: where the shared models and data live; oracle tests skip when LiteRT is missing."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `import tests.oracle` works whatever the rootdir/import mode
    sys.path.insert(0, str(ROOT))

HAVE_LITERT = importlib.util.find_spec("ai_edge_litert") is not None
HAVE_MICRO = importlib.util.find_spec("tflite_micro") is not None


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
    if not HAVE_LITERT:
        pytest.skip("ai_edge_litert not installed")


@pytest.fixture(scope="session")
def tflm() -> None:
    """Request this in tests that need the TFLite Micro interpreter."""
    if not HAVE_MICRO:
        pytest.skip("tflite-micro not installed")


def pytest_collection_modifyitems(config, items):
    # modules that import tests.oracle need LiteRT (reference) or TFLite Micro: skip them when absent
    skip = pytest.mark.skip(reason="ai_edge_litert not installed")
    for item in items:
        mod = getattr(item, "module", None)
        if not HAVE_LITERT and mod is not None and hasattr(mod, "reference_run"):
            item.add_marker(skip)
