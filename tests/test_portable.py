"""The engine on a CPU without AVX-512 (emulated on this one), against the reference kernels.

Such a CPU runs other code paths: the int16 GEMM on AVX2 instead of uint8 x int8 on VNNI, the
requantization after the GEMM instead of fused into it, the portable depthwise kernel. A worker
process hides AVX-512 from the engine and has Numba compile for it (tests/portable_worker.py);
its outputs must be the reference's, bit for bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.oracle import reference_run
from tests.portable_worker import avx2_feature_string

# model file: batch. (SSD-MobileNet ran here too: its kernels compiled for this CPU took 12 s of the
# worker's 80, and the sweeps and these two models take every portable path it took)
MODELS = {
    "mnist_uint8.tflite": 3,
    "micro_speech_int8.tflite": 2,
}


def sweep_cases(tmp_path: Path) -> tuple[list[str], list[str], list[list[np.ndarray]]]:
    """The one-op option sweeps of test_ops_conv.py (the same models and inputs, batch 3) and the chains
    of tensors stored flipped (test_storage.py): worker arguments, labels and the reference's outputs."""
    from tests.harness import cached_reference, run_sets
    from tests.test_ops_conv import SCHEMES, SWEEPS
    from tests.test_storage import chains

    cases = {"storage": (lambda scheme: chains(scheme, 60)[0], 61)}
    args, labels, wanted = [], [], []
    for kind, (build, seed) in {**SWEEPS, **cases}.items():
        for scheme in SCHEMES if kind in SWEEPS else ["int8_per_channel"]:
            net = build(scheme)
            model = net.build()
            xs = run_sets(net, seed, batches=(1, 3))[1]
            (tmp_path / f"{kind}_{scheme}.tflite").write_bytes(model)
            np.savez(tmp_path / f"{kind}_{scheme}.npz", *xs)
            args += [str(tmp_path / f"{kind}_{scheme}.tflite"), str(tmp_path / f"{kind}_{scheme}.npz")]
            labels.append(f"{kind} {scheme}")
            wanted.append(cached_reference(model, [xs])[0]["outputs"])
    return args, labels, wanted


@pytest.mark.early
def test_without_avx512_matches_reference(models_dir, tmp_path):
    """The shared models and the conv / depthwise / FC option sweeps, compiled for a CPU without AVX-512."""
    import engine

    rng = np.random.default_rng(11)
    args, labels, wanted = sweep_cases(tmp_path)
    for name, batch in MODELS.items():
        path = models_dir / name
        t = engine.load(path, warmup=False).inputs[0]
        x = rng.integers(0, 256, (batch, *t.shape[1:])).astype(np.uint8).view(t.dtype)
        np.save(tmp_path / f"{name}.npy", x)
        args += [str(path), str(tmp_path / f"{name}.npy")]
        labels.append(name)
        wanted.append(reference_run(path, [x], preserve_all=False)["outputs"])
    env = dict(
        os.environ,
        NUMBA_CPU_NAME="haswell",
        NUMBA_CPU_FEATURES=avx2_feature_string(),
        NUMBA_CACHE_DIR=str(tmp_path / "numba"),  # kernels compiled for the other CPU stay apart
        PYTHONPATH=os.pathsep.join(
            [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    )
    worker = Path(__file__).with_name("portable_worker.py")
    out = tmp_path / "out.npz"
    command = [sys.executable, str(worker), str(out), *args]
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True)
    if done.returncode:
        pytest.fail(f"worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    got = np.load(out)
    for k, outputs in enumerate(wanted):
        for j, want in enumerate(outputs):
            assert np.array_equal(got[f"{k}_{j}"], want), f"{labels[k]} output {j} differs"
