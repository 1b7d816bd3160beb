"""Runs models as the engine runs them on a CPU without AVX-512 (run by tests/test_portable.py).

The host's AVX-512 and VNNI features are hidden from the engine before it is imported, and the
caller sets NUMBA_CPU_NAME / NUMBA_CPU_FEATURES so that Numba compiles for that CPU too: the
int16 GEMM on AVX2, the unfused requantization, the portable depthwise kernel.

    python tests/portable_worker.py OUT.npz MODEL INPUT.npy|INPUTS.npz [MODEL INPUT ...]

$PORTABLE_NUMERICS names the profile the models are loaded with (default: the reference).
"""

from __future__ import annotations

import sys

import llvmlite.binding as llvm

_host_features = llvm.get_host_cpu_features


def without_avx512():
    features = _host_features()
    for name in list(features):
        if name.startswith(("avx512", "amx")) or "vnni" in name:
            features[name] = False
    return features


def avx2_feature_string() -> str:
    """NUMBA_CPU_FEATURES for this host with AVX-512, AMX and VNNI switched off."""
    return ",".join(("+" if on else "-") + name for name, on in without_avx512().items())


if __name__ == "__main__":
    llvm.get_host_cpu_features = without_avx512
    import os

    import numpy as np

    import engine
    from engine.kernels import depthwise, gemm, requantize

    assert not (gemm.VNNI or gemm.FUSED or requantize.SIMD or depthwise.SIMD)
    # one thread, serial builds: the portable paths are in the kernels' bodies, the same in every build,
    # and compiling the threaded builds as well doubled the minutes this worker takes
    engine.set_num_threads(1)
    out, pairs = sys.argv[1], sys.argv[2:]
    results = {}
    for k in range(0, len(pairs), 2):
        model = engine.load(pairs[k], numerics=os.environ.get("PORTABLE_NUMERICS", "reference"))
        if pairs[k + 1].endswith(".npz"):  # one array per model input
            with np.load(pairs[k + 1]) as z:
                x = [z[f"arr_{i}"] for i in range(len(z.files))]
        else:
            x = np.load(pairs[k + 1])
        for j, y in enumerate(model.run(x)):
            results[f"{k // 2}_{j}"] = y
    np.savez(out, **results)
