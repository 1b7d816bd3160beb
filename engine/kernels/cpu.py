"""The one place that reads the CPU's features; the kernel modules pick their variants from these flags.

Read once, at import. tests/portable_worker.py hides AVX-512 from the engine by replacing llvmlite's
get_host_cpu_features before the engine is imported (and has Numba compile for that CPU too).
"""

from __future__ import annotations

import llvmlite.binding as llvm

FEATURES = llvm.get_host_cpu_features()
AVX2 = bool(FEATURES.get("avx2"))
AVX512F = bool(FEATURES.get("avx512f"))  # 16 int32 lanes: the vector requantization
AVX512BW = bool(FEATURES.get("avx512bw"))  # 512-bit byte and word operations: the GEMM, depthwise
VNNI = AVX512BW and bool(FEATURES.get("avx512vnni"))  # vpdpbusd / vpdpwssd
VBMI = AVX512BW and bool(FEATURES.get("avx512vbmi"))  # vpermi2b: 256-entry byte tables in registers
# the instruction set the GEMM and depthwise kernels are built for (their names end with it)
ISA = "avx512" if AVX512BW else "avx2" if AVX2 else "portable"
