"""Numba / LLVM IR kernels the ops call: GEMM micro-kernels, requantization, convolution, depthwise, fully
connected, the lookup-table gather, and the serial/parallel builds (kernel.py)."""
