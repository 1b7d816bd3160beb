"""`python -m engine.run` in a subprocess with the offline mirror, for the end-to-end task tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def engine_env(home: Path, models_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(
        os.environ,
        ENGINE_HOME=str(home),
        ENGINE_MODEL_MIRROR=str(models_dir),
        ENGINE_OFFLINE="1",
        PYTHONPATH=str(ROOT),
    )
    env.pop("ENGINE_REGISTRY", None)
    env.update(extra)
    return env


def make_cli(tmp_path: Path, models_dir: Path):
    """cli(*args, expect=0, env={...}) runs the CLI in tmp_path; expect=None accepts any exit status."""

    def run(*args: str, expect: int | None = 0, env: dict | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run(
            [sys.executable, "-m", "engine.run", *args],
            check=False,
            cwd=tmp_path,
            env=engine_env(tmp_path / "home", models_dir, **(env or {})),
            capture_output=True,
            text=True,
            timeout=900,
        )
        if expect is not None:
            assert p.returncode == expect, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
        return p

    return run
