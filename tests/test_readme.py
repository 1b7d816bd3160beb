"""Every example in README.md runs as shown: each line of a ```bash block and each ```python block.

They run in a scratch folder holding the files the examples name (digit.png, table.jpg, photos/,
model.tflite, ...: copies of the shared data, listed in FILES), with the offline mirror set as the
README's Quickstart says, and `python` being this interpreter; Python blocks run after PRELUDE. Lines skipped on purpose are in SKIP
with the reason; a line whose model the engine still refuses (exit 3, an op not supported yet) is
skipped with the engine's message, so it turns on when the op lands.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import HAVE_LITERT

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

SKIP = {
    "pip install": "installs the package (.ci/run does it in a fresh virtual environment)",
    "python -m pytest": "the test suite itself",
    "scripts/evaluate.py --model all": "minutes: all 10,000 MNIST images and the reference kernels "
    "(tests/test_evaluate.py runs the script on subsets)",
}
# files the examples name -> where the scratch copy comes from (relative to the shared folder)
FILES = {
    "table.jpg": "data/ssd/table.jpg",
    "photos/table.jpg": "data/ssd/table.jpg",
    "photos/pets.jpg": "data/zoo/pets.jpg",
    "pets.jpg": "data/zoo/pets.jpg",
    "bird.bmp": "data/zoo/bird_segmentation.bmp",
    "squat.bmp": "data/zoo/squat.bmp",
    "person.bmp": "data/person/person.bmp",
    "model.tflite": "models/mnist_uint8.tflite",
    "mnist_uint8.tflite": "models/mnist_uint8.tflite",
    "ad01_int8.tflite": "models/zoo/ad01_int8.tflite",
    "kws.tflite": "models/zoo/kws_ref_model.tflite",
    "vww_96_int8.tflite": "models/zoo/vww_96_int8.tflite",
}
PRELUDE = "import engine\n"  # Python examples may assume it, as a reader at a prompt would have it


def blocks(kind: str) -> list[str]:
    return re.findall(
        rf"^```{kind}\n(.*?)^```$", README.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE
    )


def bash_lines() -> list[str]:
    return [
        line for b in blocks("bash") for line in b.splitlines() if line.strip() and not line.startswith("#")
    ]


def skip_reason(line: str) -> str | None:
    return next((why for key, why in SKIP.items() if key in line), None)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory, shared, models_dir):
    from engine.sample import sample_digit

    d = tmp_path_factory.mktemp("readme")
    for name, src in FILES.items():
        (d / name).parent.mkdir(exist_ok=True)
        shutil.copy(shared / src, d / name)
    sample_digit(3).save(d / "digit.png")
    sample_digit(7).convert("RGB").save(d / "cat.jpg")  # model.tflite is MNIST: any picture will do
    (d / "labels.txt").write_text("".join(f"digit {i}\n" for i in range(10)))
    np.save(d / "features.npy", np.zeros((1, 1960), np.int8))  # micro_speech's input
    (d / "scripts").symlink_to(ROOT / "scripts")
    (d / "bin").mkdir()
    wrapper = d / "bin" / "python"  # a venv's python must be started by its own path: a script, not a link
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    env = dict(
        os.environ,
        ENGINE_MODEL_MIRROR=str(models_dir),
        ENGINE_HOME=str(d / "home"),
        PYTHONPATH=str(ROOT),
        PATH=f"{d / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    env.pop("ENGINE_REGISTRY", None)
    env.pop("ENGINE_OFFLINE", None)
    return d, env


def run(cmd: list[str], scratch) -> subprocess.CompletedProcess:
    d, env = scratch
    return subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True, timeout=900, check=False)


def refused(p: subprocess.CompletedProcess) -> str | None:
    if p.returncode == 3 and "is not supported" in p.stderr:
        return p.stderr.strip().splitlines()[-1]
    return None


def test_readme_has_examples():
    assert len(bash_lines()) >= 15 and len(blocks("python")) >= 3


@pytest.mark.parametrize("line", bash_lines())
def test_bash_example(line, scratch):
    why = skip_reason(line)
    if why:
        pytest.skip(why)
    p = run(["bash", "-c", f"set -o pipefail; {line}"], scratch)
    if (msg := refused(p)) is not None:
        pytest.skip(f"the engine refuses this model until its ops land: {msg}")
    assert p.returncode == 0, (
        f"{line}\nexit {p.returncode}\nstdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}"
    )
    # Dask's worker processes may log a closed-connection traceback of their own while the cluster shuts down
    own = [t for t in p.stderr.split("Traceback")[1:] if "distributed/" not in t and "CommClosedError" not in t]
    assert not own, p.stderr[-3000:]


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_example(index, scratch):
    code = blocks("python")[index]
    if "ai_edge_litert" in code and not HAVE_LITERT:
        pytest.skip("ai_edge_litert not installed")
    path = scratch[0] / f"example_{index}.py"
    path.write_text(PRELUDE + code)
    p = run([sys.executable, str(path)], scratch)
    if (msg := refused(p)) is not None:
        pytest.skip(f"the engine refuses this model until its ops land: {msg}")
    assert p.returncode == 0, f"exit {p.returncode}\n{code}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr[-3000:]}"
    if "BUILTIN_REF" in code:  # the layer-by-layer comparison: the engine equals the reference kernels
        assert p.stdout.strip().splitlines()[-1] == "[]"
