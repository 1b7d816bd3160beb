"""numerics="litert": LiteRT's optimized builtin kernels for the 8-bit ADD/SUB/MUL the XNNPACK delegate leaves
to them (scales outside its ranges), as x86 LiteRT 2.3 builds them: their NEON code compiled through
NEON_2_SSE (optimized_ops / optimized_integer_ops AddElementwise, MulElementwise), blocks of `BLOCK[dtype]`
elements, and the scalar reference loop for the tail of each element-wise call.

Per element of a NEON block:
- MUL: p = (a - z_a)(b - z_b); p <<= max(shift, 0) (a count of 32 or more gives 0, as NEON's vshl);
  p = vqrdmulh(p, m) (rounds half up, saturates); p = RoundingDivideByPOT(p, max(-shift, 0));
  out = saturate8(wrap16(saturate16(p) + z_out)) (the offset add wraps in int16 lanes), clamped.
- ADD/SUB: x_i = vqrdmulh((q_i - z_i) << (20 + shift_i), m_i); s = x_1 + x_2;
  s = RoundingDivideByPOT(vqrdmulh(s, m_out), -shift_out); out = saturate8(wrap16(s) + z_out) (int16 lanes
  wrap on the narrowing and the offset add), clamped.
The tail runs the reference's scalar arithmetic (the engine's reference tables).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..kernels.int16 import GENERAL, _apply16
from ..numerics.fixedpoint import rounding_divide_by_pot

BLOCK = {"int8": 16, "uint8": 8}  # elements per NEON iteration (MulElementwise/AddElementwise)


@njit(inline="always", cache=True)
def _vqrdmulh(a, b):
    """NEON's saturating rounding doubling high multiply: (2ab + 2**31) >> 32, rounding half up."""
    if a == -(1 << 31) and b == -(1 << 31):
        return (1 << 31) - 1
    return (2 * a * b + (1 << 31)) >> 32


@njit(inline="always", cache=True)
def _rdivpot(x, e):
    mask = (1 << e) - 1
    rem = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > threshold else 0)


@njit(inline="always", cache=True)
def _wrap32(x):
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


@njit(inline="always", cache=True)
def _wrap16(x):
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


@njit(inline="always", cache=True)
def _shl32(x, n):
    """NEON vshlq_s32 by a non-negative count: wraps in int32; 32 or more gives 0."""
    return 0 if n >= 32 else _wrap32(x << n)


@njit(cache=True)
def mul_table(v1, v2, off1, off2, m, shift, zp_out, bounds):
    lo, hi, qmin, qmax = bounds
    left, right = max(shift, 0), max(-shift, 0)
    table = np.empty((v1.shape[0], v2.shape[0]), np.int64)
    for i in range(v1.shape[0]):
        for j in range(v2.shape[0]):
            p = _shl32((v1[i] + off1) * (v2[j] + off2), left)
            p = _rdivpot(_vqrdmulh(p, m), right)
            p = _wrap16(min(max(p, -32768), 32767) + zp_out)  # vqmovn_s32, then vaddq_s16 wraps
            p = min(max(p, qmin), qmax)
            table[i, j] = min(max(p, lo), hi)
    return table


@njit(inline="always", cache=True)
def _vshl(x, n):
    """vshlq_s32 by a signed count: left (wrapping, 0 from 32 on) or arithmetic right (truncating)."""
    return _shl32(x, n) if n >= 0 else x >> min(-n, 31)


@njit(cache=True)
def add_table(v1, v2, in1, in2, out, bounds):
    """in_i = (offset, multiplier, left_shift <= 0), out = (offset, multiplier, left_shift <= 0)."""
    lo, hi, qmin, qmax = bounds
    table = np.empty((v1.shape[0], v2.shape[0]), np.int64)
    x2 = np.empty(v2.shape[0], np.int64)
    for j in range(v2.shape[0]):
        x2[j] = _vqrdmulh(_vshl(v2[j] + in2[0], 20 + in2[2]), in2[1])
    for i in range(v1.shape[0]):
        x1 = _vqrdmulh(_vshl(v1[i] + in1[0], 20 + in1[2]), in1[1])
        for j in range(v2.shape[0]):
            s = _rdivpot(_vqrdmulh(_wrap32(x1 + x2[j]), out[1]), -out[2])
            p = _wrap16(_wrap16(s) + out[0])  # vmovn_s32 truncates, vaddq_s16 wraps
            p = min(max(p, qmin), qmax)
            table[i, j] = min(max(p, lo), hi)
    return table


def blocks_runner(out_shape, shapes, neon: np.ndarray, scalar: np.ndarray, dtype: str):
    """run() of a builtin element-wise kernel: the NEON table on whole blocks, the scalar (reference) table on
    the tail of the flat element-wise loop. Broadcast operands go through the NEON table everywhere (LiteRT's
    broadcast dispatch splits them into runs whose tails the profile does not follow)."""
    from ..ops.broadcast import binary_table_runner

    run_neon = binary_table_runner(out_shape, shapes[0], shapes[1], neon)
    size = int(np.prod(out_shape))
    start = size - size % BLOCK[dtype]
    if tuple(shapes[0]) != tuple(shapes[1]) or start == size:
        return run_neon
    scalar = np.ascontiguousarray(scalar)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        run_neon(inputs, outputs, scratch)
        a = inputs[0].reshape(-1)[start:].view(np.uint8)
        b = inputs[1].reshape(-1)[start:].view(np.uint8)
        outputs[0].reshape(-1)[start:] = scalar[a, b]

    return run


INT16_BLOCK = 16  # the builtin int16 ADD's NEON iteration


@njit(cache=True)
def add16(x, y, out, p, lo, hi):
    """LiteRT's builtin int16 ADD on equal shapes (general scales): NEON blocks of 16, where each input's
    shift is folded into the left shift, x_i = vqrdmulh((q_i - zp_i) << (15 + shift_i), m_i), then the
    reference's scalar loop on the tail. p: the reference's GENERAL parameters (engine/kernels/int16.py)."""
    n = x.size
    start = n - n % INT16_BLOCK
    for i in range(n):
        a, b = np.int64(x[i]), np.int64(y[i])
        if i < start:
            xa = _vqrdmulh(_vshl(a - p[0], 15 + p[2]), p[1])
            xb = _vqrdmulh(_vshl(b - p[3], 15 + p[5]), p[4])
            r = rounding_divide_by_pot(_vqrdmulh(_wrap32(xa + p[9] * xb), p[6]), -p[7]) + p[8]
        else:
            r = _apply16(GENERAL, a, b, p)
        out[i] = min(max(r, lo), hi)


@njit(cache=True)
def requantize_table(values, zp_in, m, shift, zp_out, qmin, qmax):
    """LiteRT's builtin 8-bit requantization (QUANTIZE the delegate leaves) in its NEON blocks:
    vqrdmulh((q - zp_in) << max(shift, 0), m), then a rounding right shift that rounds half up (vrshl),
    plus zp_out, saturated; per raw byte."""
    right = max(-shift, 0)
    table = np.empty(values.shape[0], np.int64)
    for i in range(values.shape[0]):
        r = _vqrdmulh(_shl32(values[i] - zp_in, max(shift, 0)), m)
        if right > 0:
            r = (r + (1 << (right - 1))) >> right
        table[i] = min(max(r + zp_out, qmin), qmax)
    return table


def unary_blocks_runner(neon: np.ndarray, scalar: np.ndarray, size: int, block: int = 16):
    """run() of a builtin 8-bit element-wise kernel: the NEON table on whole blocks, the scalar one on the tail."""
    from ..ops.int16 import lookup_runner

    run_neon = lookup_runner(neon, "uint8", size)
    start = size - size % block
    if start == size:
        return run_neon
    scalar = np.ascontiguousarray(scalar)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        run_neon(inputs, outputs, scratch)
        tail = inputs[0].reshape(-1)[start:].view(np.uint8)
        outputs[0].reshape(-1)[start:] = scalar[tail]

    return run
