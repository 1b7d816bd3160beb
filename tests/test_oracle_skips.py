"""The one skip rule: without LiteRT or TFLite Micro installed, every test that needs an oracle is
skipped, never failed (tests/oracle.py require(); run here in a child pytest that hides both)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# imported by every Python process of the run (sitecustomize on PYTHONPATH): the oracle workers and
# the CLI subprocesses do not see the packages either
HIDE = "import sys\nsys.modules['ai_edge_litert'] = None\nsys.modules['tflite_micro'] = None\n"
# one test per way of reaching an oracle: a module importing it, an import inside a function,
# a script's --compare-litert in a subprocess, the LiteRT Interpreter in a subprocess
SELECTED = [
    "tests/test_ops_conv.py::test_conv2d_options",
    "tests/test_detection_postprocess.py",
    "tests/test_cli.py::test_hello_world_sample_and_npy_input",
    "tests/test_evaluate.py::test_e2e_person_exact_outputs",
    "tests/test_models.py::test_person_detect_matches_tflite_micro_every_tensor",
    "tests/test_interpreter.py",
    "tests/test_errors.py::test_op_version_is_not_checked_but_runs_exactly",
]


def test_oracle_tests_skip_without_litert(tmp_path):
    (tmp_path / "sitecustomize.py").write_text(HIDE)
    path = os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])
    args = ["-q", "-rs", "-p", "no:cacheprovider", "-x", *SELECTED]
    p = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=dict(os.environ, PYTHONPATH=path),
        timeout=900,
    )
    tail = p.stdout[-3000:]
    assert p.returncode == 0, tail
    assert " failed" not in tail and " error" not in tail, tail
    assert "not installed: the reference oracle is unavailable" in tail, tail
    assert "not installed: the micro oracle is unavailable" in tail, tail
