"""BATCH_MATMUL as LiteRT's reference kernels compute it (kernels/batch_matmul.cc,
reference_ops::BatchMatMul).

out[..., i, j] = sum_k lhs[..., i, k] rhs[..., k, j], adj_x / adj_y transposing the last two axes of
lhs / rhs, the batch axes (ranks 2 to 5) broadcast where one side has 1.
- float32: each value sums its products in k order from 0.0f.
- int8 (per tensor, any zero points): int32 sums of (l - zp_l)(r - zp_r), MultiplyByQuantizedMultiplier
  with s_l * s_r (in float32, GetQuantizedConvolutionMultipler) / s_out, + zp_out; no activation.
- int16 (zero points 0): the same with int64 sums and the int64 MultiplyByQuantizedMultiplier
  (BatchMatMul<int16_t, int64_t>).
- int8 x int8 -> int32 (EvalInt8Int32): the int32 sums of the stored values, zero points ignored.
A constant int8 rhs without batch axes runs as FULLY_CONNECTED's GEMM (kernels/conv.py).
TFLite Micro (batch_matmul.cc there) runs the same kernels but takes the scale product in double.
"""

from __future__ import annotations

import numba
import numpy as np

from ..graph import Graph, Op
from ..kernels import conv as C
from ..kernels import gemm, requantize
from ..kernels import transpose_conv as K
from ..kernels.gemm import OCB, PX, pack_weights, padded_channels
from ..numerics import multipliers
from ..profiles import profile_of, tflm
from .common import Prepared, bound, per_thread, require, tensors, view
from .quant_params import check_shift, fold_zero_point


def _shapes(op: Op, shapes: list) -> tuple[tuple, tuple, tuple, int, int, int]:
    """(output shape, lhs and rhs batch shapes extended to the output's rank, m, k, n), checked."""
    lhs, rhs = tuple(shapes[0]), tuple(shapes[1])
    require(op, 2 <= len(lhs) <= 5 and 2 <= len(rhs) <= 5, f"ranks {len(lhs)} and {len(rhs)} must be 2 to 5")
    adj_x, adj_y = bool(op.options.get("adj_x", False)), bool(op.options.get("adj_y", False))
    m, k = (lhs[-1], lhs[-2]) if adj_x else (lhs[-2], lhs[-1])
    k2, n = (rhs[-1], rhs[-2]) if adj_y else (rhs[-2], rhs[-1])
    require(
        op, k == k2, f"lhs {list(lhs)} and rhs {list(rhs)} (adj_x={adj_x}, adj_y={adj_y}) differ in depth"
    )
    rank = max(len(lhs), len(rhs))
    lb = (1,) * (rank - len(lhs)) + lhs[:-2]
    rb = (1,) * (rank - len(rhs)) + rhs[:-2]
    for a, b in zip(lb, rb):
        require(op, a == b or a == 1 or b == 1, f"batch axes of {list(lhs)} and {list(rhs)} do not broadcast")
    ob = tuple(max(a, b) if min(a, b) != 0 else 0 for a, b in zip(lb, rb))
    require(op, min((m, k, n, *ob), default=1) > 0, f"empty operand {list(lhs)} or {list(rhs)}")
    return (*ob, m, n), lb, rb, m, k, n


def _batch_offsets(out_batch: tuple, batch: tuple, matrix: int) -> np.ndarray:
    """Where each output batch's matrix starts in an operand of batch shape `batch` (broadcast axes: 0)."""
    if not out_batch:
        return np.zeros(1, np.int64)
    strides = np.ones(len(batch), np.int64)
    for d in range(len(batch) - 2, -1, -1):
        strides[d] = strides[d + 1] * batch[d + 1]
    strides = np.where(np.asarray(batch) == 1, 0, strides) * matrix
    idx = np.indices(out_batch).reshape(len(out_batch), -1)
    return np.ascontiguousarray((idx * strides[:, None]).sum(axis=0).astype(np.int64))


def _quantized(op: Op, lhs, rhs, out, micro: bool):
    """(zp_l, zp_r, (multiplier, shift, zp_out, lo, hi)) of the int8 / int16 kernels; micro: TFLite
    Micro's multiplier, whose scale product is in double (measured: the reference's is float32)."""
    for t in (lhs, rhs, out):
        require(op, t.quantized and t.scale.size == 1, f"{t.describe()}: must be quantized per tensor")
    zps = [int(t.zero_point[0]) for t in (lhs, rhs, out)]
    if lhs.dtype == "int16":
        require(op, zps == [0, 0, 0], "int16 zero points must be 0")
    mult, shift, real = multipliers.conv_multipliers(lhs.scale[0], rhs.scale, out.scale[0], 1, True)
    check_shift(op, int(shift[0]), float(real[0]))
    if micro:
        mult, shift = tflm.fc_multipliers(lhs.scale[0], rhs.scale, out.scale[0], 1)
    info = np.iinfo(out.np_dtype)
    return (
        zps[0],
        zps[1],
        (np.int64(mult[0]), np.int64(shift[0]), np.int64(zps[2]), int(info.min), int(info.max)),
    )


def prepare(op: Op, g: Graph, shapes: list, values: list) -> Prepared:
    (lhs, rhs), (out,) = tensors(op, g)
    types = ("float32", "int8", "int16")
    require(op, lhs.dtype in types, f"{lhs.describe()}: type {lhs.dtype} not supported")
    hybrid = lhs.dtype == "float32" and rhs.dtype == "int8"
    require(op, not hybrid, f"{rhs.describe()}: hybrid float32 x int8 (dequantized on the fly) not supported")
    require(op, rhs.dtype == lhs.dtype, f"{rhs.describe()}: type {rhs.dtype} differs from lhs {lhs.dtype}")
    raw = lhs.dtype == "int8" and out.dtype == "int32"  # the reference's EvalInt8Int32
    want = "int32" if raw else lhs.dtype
    require(op, out.dtype == want, f"{out.describe()}: output type {out.dtype} (expected {lhs.dtype})")
    out_shape, lb, rb, m, k, n = _shapes(op, shapes)
    adj_x, adj_y = bool(op.options.get("adj_x", False)), bool(op.options.get("adj_y", False))
    quant = None
    if raw:  # the int32 sums of the stored values: zero points ignored (measured)
        quant = 0, 0, (np.int64(0), np.int64(0), np.int64(0), 0, 0)
    elif lhs.dtype != "float32":
        quant = _quantized(op, lhs, rhs, out, profile_of(g) == "tflm")
    if lhs.dtype == "int8" and not raw and values[1] is not None and not adj_x and all(d == 1 for d in rb):
        return _prepare_fc(values[1], adj_y, out_shape, (m, k, n), quant)
    mm = K.MatMul(
        m, k, n, *((1, m) if adj_x else (k, 1)),
        _batch_offsets(out_shape[:-2], lb, m * k), _batch_offsets(out_shape[:-2], rb, k * n),
    )  # fmt: skip
    mode = None if quant is None else K.RAW32 if raw else K.RESCALE16 if lhs.dtype == "int16" else K.RESCALE8
    return _prepare_loops(mm, quant, mode, (shapes[1], rhs.np_dtype, values[1], adj_y), out_shape)


def _prepare_loops(mm: K.MatMul, quant, mode, rhs_info, out_shape) -> Prepared:
    """The kernels of kernels/transpose_conv.py: rhs as [.., k, n] (adj_y: transposed at prepare if
    constant, else into scratch at each run)."""
    rhs_shape, rhs_type, rhs_value, adj_y = rhs_info
    k, n = mm.k, mm.n
    rhs_kn = None
    if rhs_value is not None:
        r = np.asarray(rhs_value)
        rhs_kn = np.ascontiguousarray(np.swapaxes(r, -1, -2) if adj_y else r).reshape(-1)
    work = int(np.prod(out_shape[:-1])) * k * n // 16
    acc_type = np.float32 if quant is None else np.int64 if mode == K.RESCALE16 else np.int32
    scratch = [per_thread(n, acc_type)]
    size = int(np.prod(rhs_shape))
    swap = K.swap_last.pick(size)
    if adj_y and rhs_kn is None:
        scratch.append(((size,), rhs_type))
    fn = K.matmul_float.pick(work) if quant is None else K.matmul_int.pick(work)
    params = () if quant is None else (*quant, mode)  # (zl, zr, rq, mode)

    def bind(ins, outs, scratch):
        calls, r = [], rhs_kn
        if r is None:
            r = view(ins[1])
            if adj_y:
                calls.append((swap, (r, n, k, scratch[1])))
                r = scratch[1]
        return [*calls, (fn, (view(ins[0]), r, mm, *params, scratch[0], view(outs[0])))]

    return bound([out_shape], bind, scratch)


def _prepare_fc(r: np.ndarray, adj_y: bool, out_shape, dims, quant) -> Prepared:
    """A constant int8 rhs shared by every batch: FULLY_CONNECTED's GEMM with the fixed-point
    requantization (kernels/conv.fully_connected_fixed) over the lhs rows."""
    _, k, n = dims
    zl, zr, (mult, shift, out_zp, lo, hi) = quant
    r = np.asarray(r).reshape(n, k) if adj_y else np.asarray(r).reshape(k, n).T
    weights = r.astype(np.int16) - np.int16(zr)  # [n, k]
    bias = np.zeros(n, np.int32)
    u_zp = zl + 128
    if gemm.VNNI and 0 <= u_zp <= 255 and weights.min() >= -128 and weights.max() <= 127:
        group, data_type, delta = 4, np.uint8, u_zp - zl
        bias = fold_zero_point(bias, u_zp, weights, axis=1)
    else:
        group, data_type, delta = 2, np.int16, -zl
    kp = -(-k // group) * group
    packed = pack_weights(weights, group)
    blocks = padded_channels(n) // OCB
    table = requantize.params(bias, np.full(n, mult), np.full(n, shift))
    rq = requantize.Requant(table, int(out_zp), lo, hi)
    rows = int(np.prod(out_shape[:-1]))
    fn = C.fully_connected_fixed.pick(rows * n * k // 16)
    zeros = np.zeros(PX, np.int64)
    delta = np.int16(delta)
    threads = numba.config.NUMBA_NUM_THREADS
    scratch = [((threads, PX, kp), data_type), per_thread(PX * blocks * OCB, np.int32)]

    def bind(ins, outs, scratch):
        x, out = view(ins[0], (rows, k)), view(outs[0], (rows, n))
        return [(fn, (x, delta, packed, blocks, rq, zeros, scratch[0], scratch[1], out))]

    return bound([out_shape], bind, scratch)
