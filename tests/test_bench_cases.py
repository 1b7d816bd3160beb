"""The benchmark harness itself: one case list for scripts/bench.py and benchmarks/test_bench.py, each
case checked against the oracle before timing, per-image figures, and the clock the peak is taken at."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import cases

ROOT = Path(__file__).resolve().parents[1]


def test_one_case_list():
    spec = importlib.util.spec_from_file_location("bench_script", ROOT / "scripts/bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    from benchmarks import test_bench

    assert bench.CASES is cases.CASES is test_bench.CASES
    assert len(cases.CASES) == 13


@pytest.mark.parametrize(
    "cpuinfo, base, want",
    [
        (
            "model name\t: Intel(R) Xeon(R) Gold 5418Y @ 2.00GHz\ncpu MHz\t\t: 3800.000\n",
            "",
            (2000.0, "nominal"),
        ),
        ("model name\t: AMD EPYC\ncpu MHz\t\t: 2596.146\n", "", (2596.146, "current")),
        ("model name\t: AMD EPYC\ncpu MHz\t\t: 2596.146\n", "2300000\n", (2300.0, "nominal")),
    ],
)
def test_nominal_clock_is_not_the_current_one(cpuinfo, base, want):
    mhz, source = cases.nominal_mhz(cpuinfo, base)
    assert (mhz, source.split(" ")[0]) == want


def test_outputs_are_checked_before_timing(models_dir):
    """check_outputs fails a case whose outputs differ from the oracle's (a tampered model run)."""
    import engine

    path = models_dir / "mnist_uint8.tflite"
    m = engine.load(path)
    x = cases.case_input(m, 2)
    cases.check_outputs("mnist_b1", path, m, x)

    class Off:
        def run(self, x):
            (y,) = m.run(x)
            y[0, 0] ^= 1
            return [y]

    with pytest.raises(AssertionError, match="differs from the oracle"):
        cases.check_outputs("mnist_b1", path, Off(), x)


def test_bench_script_quick_mode(tmp_path):
    """scripts/bench.py in smoke mode (tiny measurements): checks the case, writes per-image figures."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = ["--quick", "--cases", "mnist_b1", "--threads", "1", "--no-load-time", "--out", str(tmp_path)]
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    runners = report["results"][0]["runners"]
    assert {"engine", "litert_reference"} <= set(runners)
    assert all(np.isfinite(r["ms_per_image_median"]) for r in runners.values())
    assert report["clock_mhz"]["source"]


def test_zoo_mode_writes_every_setting_and_the_readme_table(tmp_path):
    """bench.py --zoo --quick on one model: both thread counts, batch 1 and 64, ratios against XNNPACK,
    and the README table generated from the JSON between its markers."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = ["--zoo", "--quick", "--models", "mnist_uint8", "--out", str(tmp_path)]
    p = subprocess.run(
        [sys.executable, str(ROOT / "scripts/bench.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    report = json.loads((tmp_path / "bench.json").read_text())
    got = {(r["threads"], r["batch"]): r for r in report["results"]}
    assert set(got) == {(t, b) for t in cases.ZOO_THREADS for b in cases.ZOO_BATCHES}
    for r in got.values():
        assert r["litert_batch"] == str(r["batch"])  # LiteRT resizes MNIST
        assert r["engine_time_ratio"] > 0 and set(r["runners"]) == {"engine", "litert_xnnpack"}
    assert (tmp_path / "bench.png").stat().st_size > 0
    from benchmarks import zoo

    report["contention"] = {
        "model": "m.tflite",
        "rounds": [
            {
                "round": 0,
                "case": "two",
                "ms_per_image": {"engine": [9.0, 11.0], "litert_xnnpack": [14.0, 15.0]},
                "engine_time_ratio": 11 / 15,
            }
        ],
    }
    table = zoo.readme_table(report)
    assert (
        report["machine"]["cpu"] in table
        and "| mnist_uint8 | " in table
        and "two processes together" in table
    )
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{zoo.README_START}\nold\n{zoo.README_END}\nafter\n")
    zoo.update_readme(readme, report)
    text = readme.read_text()
    assert "old" not in text and text.endswith(f"{zoo.README_END}\nafter\n") and "| mnist_uint8 | " in text


@pytest.mark.parametrize("kind, runner", [("two", "engine"), ("busy", "litert_xnnpack")])
def test_contention_case_times_each_process(models_dir, kind, runner):
    """The contention harness starts every process of a case together and returns each one's median."""
    from benchmarks.contention import run_case

    ms = run_case(kind, runner, models_dir / "mnist_uint8.tflite", 0.2)
    assert len(ms) == (2 if kind == "two" else 1) and all(0 < v < 1e4 for v in ms)
