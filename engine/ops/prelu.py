"""PRELU (kernels/activations.cc PreluPrepare/PreluEval<kReference>, reference_ops::BroadcastPrelu4DSlow).

float32: x >= 0 ? x : x * alpha, alpha broadcast against the input.
uint8/int8: m1 = QuantizeMultiplier(s_in / s_out), m2 = QuantizeMultiplier(s_in * s_alpha / s_out)
(each formula in float32, then widened); d = q - zp_in;
  out = clamp(zp_out + (d >= 0 ? MBQM(d, m1) : MBQM(d * (a - zp_alpha), m2)))
to the type's range. A 256x256 table over (input byte, alpha byte) is the kernel. The reference
broadcasts up to 4 dimensions only.
int16: the same formula with int8 alphas (the reference reads alpha as int8 for int16 inputs: an int16
alpha is refused), computed per element (alpha broadcast into plan scratch).
numerics="tflm" (micro/kernels/prelu_common.cc): both multipliers divided in double.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..numerics.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from ..numerics.gemmlowp import byte_values
from ..profiles import profile_of
from .broadcast import binary_table_runner, broadcast_shape
from .common import Prepared, Shape, bound, per_tensor, require, tensors, view


@njit(cache=True)
def prelu_table(values, zp_in, zp_al, m1, sh1, m2, sh2, zp_out, lo, hi):
    n = values.shape[0]
    table = np.empty((n, n), np.int64)
    for i in range(n):
        d = values[i] - zp_in
        for j in range(n):
            if d >= 0:
                r = multiply_by_quantized_multiplier(d, m1, sh1)
            else:
                r = multiply_by_quantized_multiplier(d * (values[j] - zp_al), m2, sh2)
            table[i, j] = min(max(r + zp_out, lo), hi)
    return table


@kernel
def _prelu16(x, alpha, out, zps, m1, sh1, m2, sh2):
    """The int16 kernel, flat: zps = (zp_in, zp_alpha, zp_out)."""
    for i in prange(x.size):
        d = np.int64(x[i]) - zps[0]
        if d >= 0:
            r = multiply_by_quantized_multiplier(d, m1, sh1)
        else:
            r = multiply_by_quantized_multiplier(d * (np.int64(alpha[i]) - zps[1]), m2, sh2)
        out[i] = min(max(r + zps[2], -32768), 32767)


def _multipliers(op: Op, x, alpha, out, micro: bool) -> tuple[tuple[int, int, int], int, int, int, int]:
    """(zero points), m1, shift1, m2, shift2; micro: TFLite Micro's multipliers, in double (prelu_common.cc)."""
    (s_in, zp_in), (s_al, zp_al), (s_out, zp_out) = (per_tensor(op, t) for t in (x, alpha, out))
    require(op, min(s_in, s_al, s_out) > 0, "scales must be positive")
    f_in, f_al, f_out = np.float32(s_in), np.float32(s_al), np.float32(s_out)
    if micro:
        m1, sh1 = quantize_multiplier(float(f_in) / float(f_out))
        m2, sh2 = quantize_multiplier(float(f_in) * float(f_al) / float(f_out))
    else:
        m1, sh1 = quantize_multiplier(float(f_in / f_out))
        m2, sh2 = quantize_multiplier(float(f_in * f_al / f_out))
    require(op, max(sh1, sh2) <= 30, "input scale too large for the output scale")
    return (zp_in, zp_al, zp_out), m1, sh1, m2, sh2


def _table(op: Op, x, alpha, out, micro: bool) -> np.ndarray:
    (zp_in, zp_al, zp_out), m1, sh1, m2, sh2 = _multipliers(op, x, alpha, out, micro)
    info = np.iinfo(out.np_dtype)
    table = prelu_table(byte_values(x.dtype), zp_in, zp_al, m1, sh1, m2, sh2, zp_out, info.min, info.max)
    return table.astype(out.np_dtype)


def _prepare16(op: Op, x, alpha, out, out_shape: Shape, micro: bool) -> Prepared:
    ok = alpha.dtype == "int8" and out.dtype == "int16"
    require(op, ok, "int16 PRELU takes int8 alphas and an int16 output")
    zps, m1, sh1, m2, sh2 = _multipliers(op, x, alpha, out, micro)
    zps = np.array(zps, np.int64)
    run16 = _prelu16.pick(int(np.prod(out_shape)))

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        wide = scratch[0]  # (the alphas spread to the input's shape)
        return [
            (np.copyto, (wide, np.broadcast_to(inputs[1], out_shape))),
            (run16, (view(inputs[0]), view(wide), view(outputs[0]), zps, m1, sh1, m2, sh2)),
        ]

    return bound([out_shape], bind, [(out_shape, np.int8)])


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    (x, alpha), (out,) = tensors(op, g)
    allowed = ("float32", "uint8", "int8", "int16")
    require(op, x.dtype in allowed, f"{x.describe()}: type {x.dtype} not supported (supported: {allowed})")
    s1, s2 = tuple(shapes[0]), tuple(shapes[1])
    out_shape = broadcast_shape(op, s1, s2)
    require(op, len(out_shape) <= 4, "rank above 4 not supported (the reference's broadcast is 4-D)")
    require(op, out_shape == s1, f"alpha {list(s2)} must broadcast to the input's shape {list(s1)}")
    micro = profile_of(g) == "tflm"
    if x.dtype == "int16":
        return _prepare16(op, x, alpha, out, out_shape, micro)
    require(
        op, alpha.dtype == x.dtype and out.dtype == x.dtype, f"input, alpha and output must all be {x.dtype}"
    )
    if x.dtype != "float32":
        return Prepared([out_shape], binary_table_runner(out_shape, s1, s2, _table(op, x, alpha, out, micro)))

    def run(inputs: list, outputs: list, scratch: list) -> None:
        a, w = inputs[0], inputs[1]
        with np.errstate(all="ignore"):
            np.copyto(outputs[0], np.where(a >= 0, a, a * w))

    return Prepared([out_shape], run)
