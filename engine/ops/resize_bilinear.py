"""RESIZE_BILINEAR (kernels/resize_bilinear.cc; reference_ops::ResizeBilinear, ResizeBilinearInteger).

The reference runs two different computations:
- float32 and uint8: ResizeBilinear, in float32. For output row y, input_y = y * scale (or
  (y + 0.5) * scale - 0.5 with half_pixel_centers), y0 = max(floor(input_y), 0),
  y1 = min(ceil(input_y), h - 1), and the same for columns; then, summed in this order,
    v00 * (1 - dy) * (1 - dx) + v10 * dy * (1 - dx) + v01 * (1 - dy) * dx + v11 * dy * dx (+ 0.5 for
  uint8, then truncated), with dy = input_y - y0 (not clamped: it can leave [0, 1] at the borders).
- int8 and int16: ResizeBilinearInteger, in fixed point with 10 fractional bits: scale_10 =
  round(1024 * in / out) (integer division), input_y = y * scale_10 (+ scale_10 / 2 - 512 with
  half_pixel_centers), y0 = max(input_y / 1024, 0), y1 = min(ceil(input_y / 1024), h - 1), and the
  four products (weights 1024 - (input_y - 1024 y0) and input_y - 1024 y0) summed in int64,
  rounded half away from zero by dividing by 2**20.
No requantization: the reference copies input values as they are (scales must match).
prepare() tabulates rows and columns; the kernel only multiplies and adds.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..graph import Graph, Op
from ..kernels.kernel import kernel
from ..profiles import litert, litert_xnn, profile_of
from .common import Prepared, Shape, bound, tensors, view
from .resize_nearest_neighbor import resize_geometry

TYPES = ("uint8", "int8", "int16", "float32")


def float_axis(n_in: int, n_out: int, align: bool, half: bool):
    """(lower, upper, weight of upper, weight of lower) per output position, float32 as the reference."""
    f32 = np.float32
    scale = f32(n_in) / f32(n_out)
    if align and n_out > 1:
        scale = f32(n_in - 1) / f32(n_out - 1)
    pos = np.arange(n_out, dtype=np.float32)
    v = (pos + f32(0.5)) * scale - f32(0.5) if half else pos * scale
    lo = np.maximum(np.floor(v).astype(np.int64), 0)
    hi = np.minimum(np.ceil(v).astype(np.int64), n_in - 1)
    frac = (v - lo.astype(np.float32)).astype(np.float32)
    return lo, hi, frac, (f32(1) - frac).astype(np.float32)


def integer_axis(n_in: int, n_out: int, align: bool, half: bool):
    """(lower, upper, weight of upper, weight of lower) per output position in 1/1024 units."""
    if align and n_out > 1:
        scale = ((1 << 10) * (n_in - 1) + (n_out - 1) // 2) // (n_out - 1)
    else:
        scale = ((1 << 10) * n_in + n_out // 2) // n_out
    pos = np.arange(n_out, dtype=np.int64)
    v = pos * scale + (scale // 2 - (1 << 9) if half else 0)
    # C division truncates toward zero: v / 1024 and (v + 1023) / 1024 for negative v
    lo = np.maximum(np.trunc(v / 1024).astype(np.int64), 0)
    hi = np.minimum(np.trunc((v + 1023) / 1024).astype(np.int64), n_in - 1)
    frac = v - 1024 * lo
    return lo, hi, frac, 1024 - frac


@kernel
def _bilinear_float(src, out, ys, xs, dims, half_up):
    """The reference's float32 interpolation. A pixel computes its channels rounded up to whole vectors
    of 16 (dims' fifth) where the extra lanes land in the next pixels of its row (which then overwrite
    them) and read inside src, else exactly its own: the vector loop then has no scalar tail (DeepLab's
    21 classes, 513 x 513 of them: 1.37 -> 1.04 ms at one thread)."""
    ylo, yhi, fy, gy = ys
    xlo, xhi, fx, gx = xs
    n, h, w, c, cp = dims
    oh, ow = ylo.shape[0], xlo.shape[0]
    for t in prange(n * oh):
        b, y = t // oh, t % oh
        r0 = (b * h + ylo[y]) * w
        r1 = (b * h + yhi[y]) * w
        o = t * ow * c
        wy0, wy1 = gy[y], fy[y]
        for x in range(ow):
            # unsigned indices: no negative-index test, so the channel loop vectorizes
            p00, p10 = np.uint64((r0 + xlo[x]) * c), np.uint64((r1 + xlo[x]) * c)
            p01, p11 = np.uint64((r0 + xhi[x]) * c), np.uint64((r1 + xhi[x]) * c)
            wx0, wx1 = gx[x], fx[x]
            uo = np.uint64(o)
            # (the extra lanes' writes stay in this row, their reads in src)
            wide = o + cp <= (t + 1) * ow * c
            wide = wide and max(max(p00, p10), max(p01, p11)) + np.uint64(cp) <= np.uint64(src.size)
            for k in range(cp if wide else c):
                out[uo + np.uint64(k)] = _bilinear_value(src, p00, p10, p01, p11, wy0, wy1, wx0, wx1, k) + half_up
            o += c


@njit(inline="always", cache=True)
def _bilinear_value(src, p00, p10, p01, p11, wy0, wy1, wx0, wx1, k):
    """Channel k of one output pixel as the reference sums it in float32 (its four corners at p00 ..)."""
    u = np.uint64(k)
    v = np.float32(src[p00 + u]) * wy0 * wx0
    v = v + np.float32(src[p10 + u]) * wy1 * wx0
    v = v + np.float32(src[p01 + u]) * wy0 * wx1
    return v + np.float32(src[p11 + u]) * wy1 * wx1


@kernel
def _bilinear_int(src, out, ys, xs, dims):
    ylo, yhi, fy, gy = ys
    xlo, xhi, fx, gx = xs
    n, h, w, c = dims
    oh, ow = ylo.shape[0], xlo.shape[0]
    for t in prange(n * oh):
        b, y = t // oh, t % oh
        r0 = (b * h + ylo[y]) * w
        r1 = (b * h + yhi[y]) * w
        o = t * ow * c
        for x in range(ow):
            p00, p10 = np.uint64((r0 + xlo[x]) * c), np.uint64((r1 + xlo[x]) * c)
            p01, p11 = np.uint64((r0 + xhi[x]) * c), np.uint64((r1 + xhi[x]) * c)
            w00, w10 = gy[y] * gx[x], fy[y] * gx[x]
            w01, w11 = gy[y] * fx[x], fy[y] * fx[x]
            uo = np.uint64(o)
            for k in range(c):
                u = np.uint64(k)
                s = (
                    np.int64(src[p00 + u]) * w00
                    + np.int64(src[p10 + u]) * w10
                    + np.int64(src[p01 + u]) * w01
                    + np.int64(src[p11 + u]) * w11
                )
                r = s + (1 << 19) if s > 0 else s - (1 << 19)
                q = abs(r) >> 20  # C division: truncation toward zero
                out[uo + u] = q if r >= 0 else -q
            o += c


def xnn_axis(n_in: int, n_out: int, align: bool, half: bool):
    """(lower, upper, weight of upper in 1/2048) per output position, as XNNPACK's indirection
    setup computes them in float32 (numerics="litert": src/indirection.c, resize_bilinear2d_hwc_q11)."""
    f32 = np.float32
    adj = int(align and n_out != 1)
    scale = f32(n_in - adj) / f32(n_out - adj)
    pos = np.arange(n_out, dtype=np.float32)
    if align or not half:  # TensorFlow's legacy mapping
        v = np.minimum(pos * scale, f32(n_in - 1))
    else:
        offset = f32(f32(0.5) * scale - f32(0.5))
        v = np.minimum(np.maximum((pos * scale).astype(f32) + offset, f32(0)), f32(n_in - 1))
    lo = v.astype(np.int64)  # truncation of a non-negative float
    hi = np.minimum(lo + 1, n_in - 1)
    alpha = np.rint((v - lo.astype(np.float32)) * f32(2048)).astype(np.int64)
    return lo, hi, alpha


@kernel
def _bilinear_xnn(src, out, ys, xs, dims):
    """XNNPACK's 8-bit ibilinear micro-kernel: two 11-bit interpolations, (acc + 2**21) >> 22."""
    ylo, yhi, ay = ys
    xlo, xhi, ax = xs
    n, h, w, c = dims
    oh, ow = ylo.shape[0], xlo.shape[0]
    for t in prange(n * oh):
        b, y = t // oh, t % oh
        r0 = (b * h + ylo[y]) * w
        r1 = (b * h + yhi[y]) * w
        o = t * ow * c
        av = ay[y]
        for x in range(ow):
            p00, p10 = np.uint64((r0 + xlo[x]) * c), np.uint64((r1 + xlo[x]) * c)
            p01, p11 = np.uint64((r0 + xhi[x]) * c), np.uint64((r1 + xhi[x]) * c)
            ah = ax[x]
            uo = np.uint64(o)
            for k in range(c):
                u = np.uint64(k)
                tl, tr = np.int64(src[p00 + u]), np.int64(src[p01 + u])
                bl, br = np.int64(src[p10 + u]), np.int64(src[p11 + u])
                top = (tl << 11) + (tr - tl) * ah
                bot = (bl << 11) + (br - bl) * ah
                out[uo + u] = ((top << 11) + (bot - top) * av + (1 << 21)) >> 22
            o += c


ARG_ROW = 32  # the most channels bilinear_arg_u8 takes (its keys' loop: a fixed 32, one vector)


@kernel
def bilinear_arg_u8(src, out, ys, xs, dims, flip):
    """RESIZE_BILINEAR on uint8 (_bilinear_float's arithmetic, half_up 0.5) and then ARG_MAX or ARG_MIN
    over its channels, per output pixel, the resized tensor never written (engine/fusion.py): each
    channel's byte q gives the key ((q ^ flip) << 8) | (255 - channel), and the largest key names the
    first largest (flip 0) or smallest (0xFF) byte, as _arg_bytes. dims: (n, h, w, c, ARG_ROW),
    c <= ARG_ROW; a pixel's reads of ARG_ROW channels, where they stay inside src, key the extra ones 0
    (below any but channel 255's). DeepLab's 33 -> 513 x 21 classes: 1.9 -> 1.25 ms at one thread."""
    ylo, yhi, fy, gy = ys
    xlo, xhi, fx, gx = xs
    n, h, w, c, _ = dims
    oh, ow = ylo.shape[0], xlo.shape[0]
    zero, size = np.uint16(0), np.uint64(src.size)
    for t in prange(n * oh):
        b, y = t // oh, t % oh
        r0 = (b * h + ylo[y]) * w
        r1 = (b * h + yhi[y]) * w
        wy0, wy1 = gy[y], fy[y]
        for x in range(ow):
            p00, p10 = np.uint64((r0 + xlo[x]) * c), np.uint64((r1 + xlo[x]) * c)
            p01, p11 = np.uint64((r0 + xhi[x]) * c), np.uint64((r1 + xhi[x]) * c)
            wx0, wx1 = gx[x], fx[x]
            best = zero
            if max(max(p00, p10), max(p01, p11)) + np.uint64(ARG_ROW) <= size:
                for k in range(ARG_ROW):  # (a constant count: one 32-lane pass; 16-bit keys, no store)
                    key = _bilinear_key(src, p00, p10, p01, p11, wy0, wy1, wx0, wx1, k, flip)
                    best = max(best, key if k < c else zero)
            else:
                for k in range(c):
                    best = max(best, _bilinear_key(src, p00, p10, p01, p11, wy0, wy1, wx0, wx1, k, flip))
            out[t * ow + x] = 255 - (best & 255)


@njit(inline="always", cache=True)
def _bilinear_key(src, p00, p10, p01, p11, wy0, wy1, wx0, wx1, k, flip):
    """bilinear_arg_u8's key of channel k: _bilinear_float's uint8 value (its store's cast of v + 0.5)."""
    v = _bilinear_value(src, p00, p10, p01, p11, wy0, wy1, wx0, wx1, k)
    return np.uint16((np.uint16(np.uint8(v + np.float32(0.5)) ^ flip) << 8) | (255 - k))


def float_path(op: Op, g: Graph, shapes: list, values: list):
    """(ys, xs, input shape) for _bilinear_float where the engine resizes op's input with the reference's
    float32 arithmetic (float32 and uint8 data, not on numerics="litert"'s XNNPACK), else None."""
    shape, oh, ow, align, half = resize_geometry(op, g, shapes, values, TYPES)
    shape = tuple(int(d) for d in shape)
    dtype = tensors(op, g)[0][0].dtype
    if dtype not in ("float32", "uint8") or _on_xnnpack(op, g, dtype):
        return None
    return float_axis(shape[1], oh, align, half), float_axis(shape[2], ow, align, half), shape


def _on_xnnpack(op: Op, g: Graph, dtype: str) -> bool:
    """Whether numerics="litert" resizes op on XNNPACK (its 8-bit resizes)."""
    return profile_of(g) == "litert" and dtype in ("uint8", "int8") and litert.delegated(op, g)


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    shape, oh, ow, align, half = resize_geometry(op, g, shapes, values, TYPES)
    n, h, w, c = shape = tuple(int(d) for d in shape)
    dtype = tensors(op, g)[0][0].dtype
    out_shape = (n, oh, ow, c)
    work = n * oh * ow * c
    if _on_xnnpack(op, g, dtype):
        ys, xs = xnn_axis(h, oh, align, half), xnn_axis(w, ow, align, half)
        fn = _bilinear_xnn.pick(work)

        def bind(inputs: list, outputs: list, scratch: list) -> list:
            return [(fn, (view(inputs[0]), view(outputs[0]), ys, xs, shape))]

    elif dtype in ("float32", "uint8"):
        litert_xnn.require_reproduced(op, g)
        ys, xs, _ = float_path(op, g, shapes, values)
        fn = _bilinear_float.pick(work)
        half_up = np.float32(0.5 if dtype == "uint8" else 0.0)
        dims = (*shape, -(-c // 16) * 16)

        def bind(inputs: list, outputs: list, scratch: list) -> list:
            return [(fn, (view(inputs[0]), view(outputs[0]), ys, xs, dims, half_up))]

    else:
        ys, xs = integer_axis(h, oh, align, half), integer_axis(w, ow, align, half)
        fn = _bilinear_int.pick(work)

        def bind(inputs: list, outputs: list, scratch: list) -> list:
            return [(fn, (view(inputs[0]), view(outputs[0]), ys, xs, shape))]

    return bound([out_shape], bind)
