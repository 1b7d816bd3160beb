"""Numba / LLVM IR kernels the ops call: GEMM micro-kernels, requantization, convolution, depthwise, fully
connected, the lookup-table gathers, the serial/parallel builds (kernel.py), and the one reader of the
CPU's features (cpu.py)."""

from . import cacheload, inlinecopy

# before any module here loads a compiled function from Numba's cache (pool.py's, at its import)
cacheload.install()
inlinecopy.install()  # before the first compile
