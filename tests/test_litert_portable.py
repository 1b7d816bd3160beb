"""numerics="litert" on a CPU without AVX-512 (emulated here, as tests/test_portable.py does): the scalar
requantizers (requantize_one's fp32 and ruy rules) instead of the vector ones, against LiteRT's default
interpreter: the convolution option sweeps, ties, the builtin (ruy) side, a whole model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.harness import run_sets
from tests.litert_check import litert_oracle
from tests.oracle import require
from tests.portable_worker import avx2_feature_string
from tests.test_litert_conv import SWEEPS, one_op
from tests.test_ops_conv import SCHEMES


@pytest.mark.slow  # (90 s compiling every kernel again: tests/test_portable.py covers the portable builds)
def test_without_avx512_matches_litert(models_dir, tmp_path):
    require("litert")
    nets = {f"{k} {s}": (SWEEPS[k][0](s), SWEEPS[k][1]) for k in SWEEPS for s in SCHEMES}
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        nets[f"{op} ties"] = (one_op(op, "int8", s_in=0.5, s_w=0.125, s_out=0.25, batch=3), 5)
        nets[f"{op} uint8 builtin"] = (one_op(op, "uint8", s_in=0.5, s_w=0.125, s_out=0.25, qdim=1), 6)
    args, labels, wanted = [], [], []
    for label, (net, seed) in nets.items():
        model = net.build()
        xs = run_sets(net, seed, batches=(1, 3))[1]
        stem = tmp_path / label.replace(" ", "_")
        Path(f"{stem}.tflite").write_bytes(model)
        np.savez(f"{stem}.npz", *xs)
        args += [f"{stem}.tflite", f"{stem}.npz"]
        labels.append(label)
        wanted.append(litert_oracle(model, [xs])[1][0]["outputs"])
    path = models_dir / "zoo/vww_96_int8.tflite"
    x = np.random.default_rng(3).integers(-128, 128, (1, 96, 96, 3)).astype(np.int8)
    np.save(tmp_path / "vww.npy", x)
    args += [str(path), str(tmp_path / "vww.npy")]
    labels.append("vww")
    wanted.append(litert_oracle(path.read_bytes(), [[x]])[1][0]["outputs"])
    env = dict(
        os.environ,
        PORTABLE_NUMERICS="litert",
        NUMBA_CPU_NAME="haswell",
        NUMBA_CPU_FEATURES=avx2_feature_string(),
        NUMBA_CACHE_DIR=str(tmp_path / "numba"),
        PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    )
    worker = Path(__file__).with_name("portable_worker.py")
    out = tmp_path / "out.npz"
    done = subprocess.run(
        [sys.executable, str(worker), str(out), *args], check=False, env=env, capture_output=True, text=True
    )
    if done.returncode:
        pytest.fail(f"worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    got = np.load(out)
    for k, outputs in enumerate(wanted):
        for j, want in enumerate(outputs):
            assert np.array_equal(got[f"{k}_{j}"], want), f"{labels[k]} output {j} differs"
