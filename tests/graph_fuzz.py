"""Semantic fuzzing: random *valid* graphs of 1-3 ops, run by the engine and the reference kernels.

Each chain starts from a graph input of random shape and type (uint8, int8, or int16 in the 16x8
scheme: zero point 0, int8 weights, int64 bias, where the reference runs the op on it) and applies 1-3 ops
drawn from OPS (one entry per op: when it applies to a tensor, and how to build it with random
options, shapes, scales, zero points, weights, broadcast operands). Many chains share one model,
so one oracle process checks them all; every tensor, intermediates included, is compared through
the production plan (tests/every_tensor.py) at batch 1 and at a random batch > 1. When the model
as a whole fails, each chain is rerun alone to name the culprit.

    cases = generate(seed, chains=12)         # -> Case (a Net plus a description per chain)
    failures = check_case(cases)              # [] when the engine equals the reference everywhere

numerics="litert" or "tflm" checks that profile against its own oracle (LiteRT's default interpreter,
every tensor and the delegate's partition, tests/litert_check.py; TFLite Micro at batch 1): where the
oracle refuses a chain, the engine must refuse it too.

To add an op: write `build_<op>(g, t) -> T | None` (None: does not apply to t) and add it to OPS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import engine
from engine.errors import EngineError
from tests.every_tensor import assert_every_tensor_equal
from tests.harness import Net
from tests.litert_check import check_litert
from tests.oracle import OracleError, litert_run_many, micro_run_many, reference_run_many

PROFILES = ("reference", "litert", "tflm")

F32 = np.float32
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
EIGHT = ("uint8", "int8")
QUANTIZED = ("uint8", "int8", "int16")  # int16: the 16x8 scheme (zero point 0, int8 weights, int64 bias)


@dataclass
class T:
    """An activation tensor of the graph under construction (shape at batch 1)."""

    index: int
    shape: list[int]
    dtype: str
    scale: float
    zp: int


@dataclass
class G:
    """Generation context: the random source and the net being built; desc collects the chain's text."""

    rng: np.random.Generator
    net: Net
    desc: list[str] = field(default_factory=list)

    def pick(self, items):
        return items[int(self.rng.integers(len(items)))]

    def coin(self, p: float = 0.5) -> bool:
        return bool(self.rng.random() < p)

    def scale(self, lo: float = -3.0, hi: float = 0.0) -> float:
        return float(F32(10 ** self.rng.uniform(lo, hi)))

    def zp(self, dtype: str) -> int:
        if dtype == "int16":
            return 0
        info = np.iinfo(dtype)
        if self.coin(0.2):  # the extremes of the range
            return int(self.pick([info.min, info.max]))
        return int(self.rng.integers(info.min, int(info.max) + 1))

    def act(self, shape, dtype: str, scale: float, zp: int) -> T:
        return T(self.net.tensor(shape, dtype, scale, zp), list(shape), dtype, scale, zp)

    def same(self, t: T, shape) -> T:
        """A new tensor with t's type and quantization (ops that copy bytes require it)."""
        return self.act(shape, t.dtype, t.scale, t.zp)

    def op(self, name: str, inputs: list[int], out: T, text: str, **options) -> T:
        self.net.ops.append({"op": name, "inputs": inputs, "outputs": [out.index], "options": options})
        self.desc.append(f"{name}({text}) -> {out.dtype}{out.shape} s={out.scale:.3g} zp={out.zp}")
        return out

    def weights(self, shape, dtype: str, axis: int, per_channel: bool) -> tuple[int, list[float]]:
        info = np.iinfo(dtype)
        w = self.rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
        n = shape[axis] if per_channel else 1
        scales = [self.scale(-3, -1) for _ in range(n)]
        zps = [self.zp(dtype) if dtype == "uint8" else 0 for _ in range(n)]
        t = {"name": f"w{len(self.net.tensors)}", "shape": list(shape), "dtype": dtype, "data": w}
        t.update(scale=scales, zero_point=zps, quantized_dimension=axis if per_channel else 0)
        self.net.tensors.append(t)
        return len(self.net.tensors) - 1, scales

    def bias(self, t: T, w_scales: list[float], n: int) -> int:
        dtype = "int64" if t.dtype == "int16" else "int32"
        data = self.rng.integers(-30000, 30000, size=n).astype(dtype)
        scales = [float(F32(t.scale) * F32(s)) for s in w_scales]
        entry = {"name": f"b{len(self.net.tensors)}", "shape": [n], "dtype": dtype, "data": data}
        entry.update(scale=scales, zero_point=[0] * len(scales))
        self.net.tensors.append(entry)
        return len(self.net.tensors) - 1

    def out_scale(self, s_in: float, s_w: float, k: int, dtype: str = "int8") -> float:
        """An output scale that spreads sums of k full-range products over the output's range, give or
        take a factor of 10 (saturated and very fine outputs are both drawn)."""
        spread = s_in * s_w * 74 * 74 * math.sqrt(k) / 40 * 10 ** self.rng.uniform(-1, 1)
        return float(F32(spread if dtype in EIGHT else spread * 256 / 32768))


# ----------------------------------------------------------------------------------------- ops
def _window(g: G, t: T, max_k: int = 3, dilation: bool = True):
    """Random kernel, strides, dilations and padding that give a non-empty output for t's H, W."""
    h, w = t.shape[1:3]
    pad = g.pick(["SAME", "VALID"])
    kh, kw = int(g.rng.integers(1, max_k + 1)), int(g.rng.integers(1, max_k + 1))
    sh, sw = int(g.rng.integers(1, 3)), int(g.rng.integers(1, 3))
    dh, dw = (int(g.rng.integers(1, 3)), int(g.rng.integers(1, 3))) if dilation else (1, 1)
    if pad == "VALID":
        kh, kw = min(kh, (h - 1) // dh + 1), min(kw, (w - 1) // dw + 1)
        oh, ow = (h - (kh - 1) * dh - 1) // sh + 1, (w - (kw - 1) * dw - 1) // sw + 1
    else:
        oh, ow = -(-h // sh), -(-w // sw)
    return pad, kh, kw, sh, sw, dh, dw, oh, ow


def _is_image(t: T) -> bool:
    return len(t.shape) == 4 and t.dtype in QUANTIZED


def build_conv2d(g: G, t: T) -> T | None:
    if not _is_image(t):
        return None
    pad, kh, kw, sh, sw, dh, dw, oh, ow = _window(g, t)
    c, oc = t.shape[3], int(g.rng.integers(1, 20))
    per_channel = t.dtype != "uint8" and g.coin()
    w, w_scales = g.weights((oc, kh, kw, c), "uint8" if t.dtype == "uint8" else "int8", 0, per_channel)
    b = g.bias(t, w_scales, oc)
    s_out = g.out_scale(t.scale, np.mean(w_scales), kh * kw * c, t.dtype)
    out = g.act([1, oh, ow, oc], t.dtype, s_out, g.zp(t.dtype))
    act = g.pick(ACTS)
    text = f"{kh}x{kw} {pad} s{sh}{sw} d{dh}{dw} {c}->{oc} {act} pc={per_channel}"
    opts = {"padding": pad, "stride_h": sh, "stride_w": sw, "dilation_h_factor": dh, "dilation_w_factor": dw}
    return g.op("CONV_2D", [t.index, w, b], out, text, fused_activation_function=act, **opts)


def build_depthwise(g: G, t: T) -> T | None:
    if not _is_image(t):
        return None
    pad, kh, kw, sh, sw, dh, dw, oh, ow = _window(g, t)
    c = t.shape[3]
    dm = int(g.pick([1, 1, 2, 3]))
    per_channel = t.dtype != "uint8" and g.coin()
    w, w_scales = g.weights((1, kh, kw, c * dm), "uint8" if t.dtype == "uint8" else "int8", 3, per_channel)
    bias = [g.bias(t, w_scales, c * dm)] if g.coin(0.8) else []
    s_out = g.out_scale(t.scale, np.mean(w_scales), kh * kw, t.dtype)
    out = g.act([1, oh, ow, c * dm], t.dtype, s_out, g.zp(t.dtype))
    act = g.pick(ACTS)
    text = f"{kh}x{kw} {pad} s{sh}{sw} d{dh}{dw} c{c} m{dm} {act} pc={per_channel}"
    opts = {"padding": pad, "stride_h": sh, "stride_w": sw, "dilation_h_factor": dh, "dilation_w_factor": dw}
    return g.op(
        "DEPTHWISE_CONV_2D",
        [t.index, w, *bias],
        out,
        text,
        depth_multiplier=dm,
        fused_activation_function=act,
        **opts,
    )


def build_fully_connected(g: G, t: T) -> T | None:
    if len(t.shape) < 2 or t.dtype not in QUANTIZED:
        return None
    depth, units = t.shape[-1], int(g.rng.integers(1, 40))
    keep = g.coin()
    per_channel = t.dtype != "uint8" and g.coin(0.3)
    w, w_scales = g.weights((units, depth), "uint8" if t.dtype == "uint8" else "int8", 0, per_channel)
    bias = [g.bias(t, w_scales, units)] if g.coin(0.7) else []
    rows = math.prod(t.shape) // depth
    shape = [*t.shape[:-1], units] if keep else [rows, units]
    if not keep and len(t.shape) > 2 and rows != 1:
        return None  # [rows, units] folds the batch into rows: batch > 1 would change the meaning
    out = g.act(shape, t.dtype, g.out_scale(t.scale, np.mean(w_scales), depth, t.dtype), g.zp(t.dtype))
    act = g.pick(ACTS)
    text = f"{depth}->{units} keep={keep} {act} pc={per_channel}"
    return g.op(
        "FULLY_CONNECTED", [t.index, w, *bias], out, text, keep_num_dims=keep, fused_activation_function=act
    )


def _pool(name: str):
    def build(g: G, t: T) -> T | None:
        if not _is_image(t):
            return None
        pad, kh, kw, sh, sw, _, _, oh, ow = _window(g, t, max_k=4, dilation=False)
        act = g.pick(["NONE", "RELU", "RELU6"])
        out = g.same(t, [1, oh, ow, t.shape[3]])
        opts = {"padding": pad, "stride_h": sh, "stride_w": sw, "filter_height": kh, "filter_width": kw}
        text = f"{kh}x{kw} {pad} s{sh}{sw} {act}"
        return g.op(name, [t.index], out, text, fused_activation_function=act, **opts)

    return build


def _broadcast_operand(g: G, t: T, dtype: str, scale: float, zp: int) -> tuple[int, str]:
    """A second operand: a constant or another graph input, of t's shape with some dimensions 1."""
    shape = [d if g.coin(0.6) else 1 for d in t.shape]
    shape[0] = 1 if g.coin(0.5) or len(shape) == 1 else shape[0]
    if len(shape) > 1 and g.coin(0.2):
        shape = shape[1:]  # a lower rank broadcasts from the right
    if g.coin(0.5):
        info = np.iinfo(dtype)
        data = g.rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype)
        return g.net.const(data, dtype, scale, zp), f"const{shape}"
    if len(shape) != len(t.shape):
        shape = [1, *shape]
    shape[0] = 1  # every graph input takes the batch
    return g.net.input(shape, dtype, scale, zp), f"input{shape}"


def _binary(name: str):
    def build(g: G, t: T) -> T | None:
        if t.dtype not in QUANTIZED:
            return None
        s2, z2 = g.scale(), g.zp(t.dtype)
        other, text = _broadcast_operand(g, t, t.dtype, s2, z2)
        if name == "MUL":
            s_out = float(
                F32(t.scale * s2 * (128 if t.dtype in EIGHT else 32768) * 10 ** g.rng.uniform(-1.5, 1))
            )
        else:  # the reference needs 2 * max input scale / (2^20 * output scale) < 1
            s_out = float(F32(max(t.scale, s2) * 10 ** g.rng.uniform(-1.5, 1)))
        a, b = (t.index, other) if g.coin() else (other, t.index)
        out_shape = list(np.broadcast_shapes(tuple(t.shape), tuple(g.net.tensors[other]["shape"])))
        out = g.act(out_shape, t.dtype, s_out, g.zp(t.dtype))
        act = g.pick(ACTS)
        return g.op(name, [a, b], out, f"{text} {act}", fused_activation_function=act)

    return build


def build_mean(g: G, t: T, name: str = "MEAN") -> T | None:
    if len(t.shape) < 2 or t.dtype not in (QUANTIZED if name == "MEAN" else EIGHT):  # int16 SUM: refused
        return None
    axes = [a for a in range(1, len(t.shape)) if g.coin()] or [len(t.shape) - 1]
    keep = g.coin()
    shape = (
        [1 if a in axes else d for a, d in enumerate(t.shape)]
        if keep
        else [d for a, d in enumerate(t.shape) if a not in axes]
    )
    axes_t = g.net.const(np.array(axes, np.int32), "int32")
    out = g.act(shape, t.dtype, t.scale * float(10 ** g.rng.uniform(-1, 0.5)), g.zp(t.dtype))
    return g.op(name, [t.index, axes_t], out, f"axes={axes} keep={keep}", keep_dims=keep)


def _fixed_output(name: str, scale: float, zps: dict):
    """An op whose output quantization is implied: (scale, zps[dtype]), int16 (2**-15, 0) where given."""

    def build(g: G, t: T) -> T | None:
        if t.dtype not in zps:
            return None
        out = g.act(list(t.shape), t.dtype, 2**-15 if t.dtype == "int16" else scale, zps[t.dtype])
        if name == "SOFTMAX":
            beta = float(F32(10 ** g.rng.uniform(-1, 0.5)))
            return g.op(name, [t.index], out, f"beta={beta:.3g}", beta=beta)
        return g.op(name, [t.index], out, "")

    return build


def _requantizing_unary(name: str, types: tuple[str, ...] = EIGHT):
    def build(g: G, t: T) -> T | None:
        if t.dtype not in types:
            return None
        s_out = float(F32(t.scale * 10 ** g.rng.uniform(-1, 1)))
        out = g.act(list(t.shape), t.dtype, s_out, g.zp(t.dtype))
        return g.op(name, [t.index], out, "")

    return build


def _pad(name: str):
    def build(g: G, t: T) -> T | None:
        pads = g.rng.integers(0, 3, size=(len(t.shape), 2)).astype(np.int32)
        pads[0] = 0  # the batch is the caller's
        shape = [d + int(p.sum()) for d, p in zip(t.shape, pads)]
        inputs = [t.index, g.net.const(pads, "int32")]
        text = f"{pads.tolist()}"
        if name == "PADV2":
            info = np.iinfo(t.dtype)
            value = int(g.rng.integers(info.min, int(info.max) + 1))
            inputs.append(g.net.const(np.array([value]), t.dtype, t.scale, t.zp))
            text += f" value={value}"
        return g.op(name, inputs, g.same(t, shape), text)

    return build


def build_reshape(g: G, t: T) -> T | None:
    rest = math.prod(t.shape[1:])
    d = g.pick([d for d in range(1, rest + 1) if rest % d == 0])
    shape = g.pick([[1, rest], [1, d, rest // d], [1, 1, rest, 1], [1, rest // d, 1, d]])
    target = [-1, *shape[1:]]  # -1 lets the batch through
    inputs = [t.index] if g.coin(0.3) else [t.index, g.net.const(np.array(target, np.int32), "int32")]
    return g.op("RESHAPE", inputs, g.same(t, shape), f"{target}", new_shape=target)


def build_squeeze(g: G, t: T) -> T | None:
    ones = [a for a in range(1, len(t.shape)) if t.shape[a] == 1]
    if not ones:
        return None
    dims = [a for a in ones if g.coin()] or ones[:1]
    shape = [d for a, d in enumerate(t.shape) if a not in dims]
    if g.coin(0.3):
        dims = [a - len(t.shape) for a in dims]  # negative dimensions count from the end
    return g.op("SQUEEZE", [t.index], g.same(t, shape), f"{dims}", squeeze_dims=dims)


def build_concat(g: G, t: T) -> T | None:
    if len(t.shape) < 2 or t.dtype not in QUANTIZED:
        return None
    axis = int(g.rng.integers(1, len(t.shape)))
    other_shape = list(t.shape)
    other_shape[axis] = int(g.rng.integers(1, 4))
    if t.dtype == "uint8":  # uint8 inputs may each have their own quantization
        s2, z2, s_out, z_out = g.scale(), g.zp("uint8"), g.scale(), g.zp("uint8")
    else:
        s2, z2, s_out, z_out = t.scale, t.zp, t.scale, t.zp
    other = g.net.input(other_shape, t.dtype, s2, z2)
    shape = list(t.shape)
    shape[axis] += other_shape[axis]
    a, b = (t.index, other) if g.coin() else (other, t.index)
    ax = axis - len(t.shape) if g.coin(0.3) else axis
    out = g.act(shape, t.dtype, s_out, z_out)
    return g.op("CONCATENATION", [a, b], out, f"axis={ax}", axis=ax, fused_activation_function="NONE")


def build_quantize(g: G, t: T) -> T | None:
    if t.dtype not in QUANTIZED:
        return None
    dtype = g.pick(
        {"uint8": ["uint8", "int8"], "int8": ["uint8", "int8", "int16"], "int16": ["int8", "int16"]}[t.dtype]
    )
    s_out = float(F32(t.scale * 10 ** g.rng.uniform(-1, 1)))
    return g.op("QUANTIZE", [t.index], g.act(list(t.shape), dtype, s_out, g.zp(dtype)), "")


def build_strided_slice(g: G, t: T) -> T | None:
    rank = len(t.shape)
    begin, end, strides, shape = [0], [0], [1], [1]
    shrink = 0
    for a in range(1, rank):
        n = t.shape[a]
        s = int(g.pick([1, 1, 2, -1, 3]))
        b, e = int(g.rng.integers(-n, n)), int(g.rng.integers(-n - 1, n + 1))
        size = len(range(n)[slice(b, e, s)])
        if size == 0:
            b, e, s = 0, n, 1
            size = n
        if size == 1 and s > 0 and g.coin(0.3):  # the reference reads out of bounds shrinking with s < 0
            shrink |= 1 << a
        begin, end, strides = begin + [b], end + [e], strides + [s]
        if not shrink & (1 << a):
            shape.append(size)
    consts = [g.net.const(np.array(v, np.int32), "int32") for v in (begin, end, strides)]
    text = f"{begin}:{end}:{strides} shrink={shrink}"
    out = g.same(t, shape)
    return g.op(
        "STRIDED_SLICE", [t.index, *consts], out, text, begin_mask=1, end_mask=1, shrink_axis_mask=shrink
    )


def build_dequantize(g: G, t: T) -> T | None:
    if t.dtype not in QUANTIZED:
        return None
    out = T(g.net.tensor(t.shape, "float32"), list(t.shape), "float32", 0.0, 0)
    return g.op("DEQUANTIZE", [t.index], out, "")


def build_transpose(g: G, t: T) -> T | None:
    perm = [0, *(1 + g.rng.permutation(len(t.shape) - 1))]  # the batch stays first
    perm_t = g.net.const(np.array(perm, np.int32), "int32")
    out = g.same(t, [t.shape[k] for k in perm])
    return g.op("TRANSPOSE", [t.index, perm_t], out, f"perm={perm}")


def _resize(name: str):
    def build(g: G, t: T) -> T | None:
        if not _is_image(t):
            return None
        size = [int(g.rng.integers(1, 13)), int(g.rng.integers(1, 13))]
        align = g.coin(0.3)
        half = not align and g.coin()
        size_t = g.net.const(np.array(size, np.int32), "int32")
        out = g.same(t, [1, *size, t.shape[3]])
        text = f"{size} align={align} half={half}"
        return g.op(name, [t.index, size_t], out, text, align_corners=align, half_pixel_centers=half)

    return build


def _min_max(name: str):
    def build(g: G, t: T) -> T | None:
        if t.dtype not in QUANTIZED:
            return None
        other, text = _broadcast_operand(g, t, t.dtype, t.scale, t.zp)  # the reference does not rescale
        out_shape = list(np.broadcast_shapes(tuple(t.shape), tuple(g.net.tensors[other]["shape"])))
        a, b = (t.index, other) if g.coin() else (other, t.index)
        return g.op(name, [a, b], g.same(t, out_shape), text)

    return build


def build_gather(g: G, t: T) -> T | None:
    if len(t.shape) < 2:
        return None
    axis = int(g.rng.integers(1, len(t.shape)))
    n = t.shape[axis]
    ids = g.rng.integers(0, n, size=int(g.rng.integers(1, 5))).astype(np.int32)
    ids_t = g.net.const(ids, "int32")
    out = g.same(t, [*t.shape[:axis], len(ids), *t.shape[axis + 1 :]])
    return g.op("GATHER", [t.index, ids_t], out, f"axis={axis} ids={ids.tolist()}", axis=axis)


def build_arg_max(g: G, t: T) -> T | None:
    if len(t.shape) < 2 or t.dtype not in EIGHT:
        return None
    axis = int(g.rng.integers(1, len(t.shape)))
    out_type = g.pick(["int32", "int64"])
    axis_t = g.net.const(np.array([axis], np.int32), "int32")
    shape = [d for k, d in enumerate(t.shape) if k != axis]
    out = T(g.net.tensor(shape, out_type), shape, out_type, 0.0, 0)
    return g.op("ARG_MAX", [t.index, axis_t], out, f"axis={axis}", output_type=out_type.upper())


def build_split(g: G, t: T) -> T | None:
    axes = [k for k in range(1, len(t.shape)) if t.shape[k] % 2 == 0 or t.shape[k] % 3 == 0]
    if not axes:
        return None
    axis = g.pick(axes)
    count = 2 if t.shape[axis] % 2 == 0 else 3
    axis_t = g.net.const(np.array(axis, np.int32), "int32")
    shape = list(t.shape)
    shape[axis] //= count
    outs = [g.same(t, shape) for _ in range(count)]
    keep = g.pick(outs)  # the chain goes on from one piece; the others are still compared
    g.net.ops.append(
        {
            "op": "SPLIT",
            "inputs": [axis_t, t.index],
            "outputs": [o.index for o in outs],
            "options": {"num_splits": count},
        }
    )
    g.desc.append(f"SPLIT(axis={axis} into {count}) -> piece {outs.index(keep)} {t.dtype}{shape}")
    return keep


def build_leaky_relu(g: G, t: T) -> T | None:
    if t.dtype not in QUANTIZED:
        return None
    alpha = float(F32(g.rng.uniform(-0.5, 1.5)))
    s_out = float(F32(t.scale * 10 ** g.rng.uniform(-1, 1)))
    out = g.act(list(t.shape), t.dtype, s_out, g.zp(t.dtype))
    return g.op("LEAKY_RELU", [t.index], out, f"alpha={alpha:.3g}", alpha=alpha)


def build_squared_difference(g: G, t: T) -> T | None:
    if t.dtype != "int8":
        return None
    s2, z2 = g.scale(), g.zp(t.dtype)
    other, text = _broadcast_operand(g, t, t.dtype, s2, z2)
    # the reference needs (2 * max input scale)^2 / (2^14 * output scale) < 1
    s_out = float(F32(max(t.scale, s2) ** 2 * 10 ** g.rng.uniform(1, 3)))
    a, b = (t.index, other) if g.coin() else (other, t.index)
    out_shape = list(np.broadcast_shapes(tuple(t.shape), tuple(g.net.tensors[other]["shape"])))
    return g.op("SQUARED_DIFFERENCE", [a, b], g.act(out_shape, t.dtype, s_out, g.zp(t.dtype)), text)


def build_batch_matmul(g: G, t: T) -> T | None:
    """t times a constant int8 rhs [k, n] (adj_y: [n, k]); adj_x transposes t's last two axes (rank 3+:
    never the batch axis)."""
    if t.dtype != "int8" or len(t.shape) < 2:
        return None
    adj_x, adj_y = len(t.shape) > 2 and g.coin(), g.coin()
    m, k = (t.shape[-1], t.shape[-2]) if adj_x else (t.shape[-2], t.shape[-1])
    n = int(g.rng.integers(1, 20))
    s_r, z_r = g.scale(-3, -1), g.zp("int8")
    data = g.rng.integers(-128, 128, size=(n, k) if adj_y else (k, n)).astype(np.int8)
    r = g.net.const(data, "int8", s_r, z_r)
    out = g.act([*t.shape[:-2], m, n], "int8", g.out_scale(t.scale, s_r, k), g.zp("int8"))
    return g.op(
        "BATCH_MATMUL",
        [t.index, r],
        out,
        f"k={k} n={n} adj_x={adj_x} adj_y={adj_y}",
        adj_x=adj_x,
        adj_y=adj_y,
    )


# op -> builder; a builder returns None where the op does not apply to its input
OPS: dict[str, Callable[[G, T], T | None]] = {
    "CONV_2D": build_conv2d,
    "DEPTHWISE_CONV_2D": build_depthwise,
    "FULLY_CONNECTED": build_fully_connected,
    "MAX_POOL_2D": _pool("MAX_POOL_2D"),
    "AVERAGE_POOL_2D": _pool("AVERAGE_POOL_2D"),
    "ADD": _binary("ADD"),
    "SUB": _binary("SUB"),
    "MUL": _binary("MUL"),
    "MEAN": build_mean,
    "SUM": lambda g, t: build_mean(g, t, "SUM"),
    "L2_NORMALIZATION": _fixed_output("L2_NORMALIZATION", 1 / 128, {"int8": 0, "uint8": 128}),
    "SOFTMAX": _fixed_output("SOFTMAX", 1 / 256, {"int8": -128, "uint8": 0, "int16": 0}),
    "LOGISTIC": _fixed_output("LOGISTIC", 1 / 256, {"int8": -128, "uint8": 0, "int16": 0}),
    "TANH": _fixed_output("TANH", 1 / 128, {"int8": 0, "uint8": 128, "int16": 0}),
    "RELU": _requantizing_unary("RELU", QUANTIZED),
    "RELU6": _requantizing_unary("RELU6"),
    "HARD_SWISH": _requantizing_unary("HARD_SWISH"),
    "LEAKY_RELU": build_leaky_relu,
    "SQUARED_DIFFERENCE": build_squared_difference,
    "PAD": _pad("PAD"),
    "PADV2": _pad("PADV2"),
    "RESHAPE": build_reshape,
    "SQUEEZE": build_squeeze,
    "CONCATENATION": build_concat,
    "QUANTIZE": build_quantize,
    "STRIDED_SLICE": build_strided_slice,
    "DEQUANTIZE": build_dequantize,
    "TRANSPOSE": build_transpose,
    "RESIZE_NEAREST_NEIGHBOR": _resize("RESIZE_NEAREST_NEIGHBOR"),
    "RESIZE_BILINEAR": _resize("RESIZE_BILINEAR"),
    "MAXIMUM": _min_max("MAXIMUM"),
    "MINIMUM": _min_max("MINIMUM"),
    "GATHER": build_gather,
    "ARG_MAX": build_arg_max,
    "SPLIT": build_split,
    "BATCH_MATMUL": build_batch_matmul,
}


# ------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    seed: int
    chains: list[Net]  # each with one output
    texts: list[str]  # per chain: its input and ops


def _start(g: G) -> T:
    rank = int(g.pick([2, 3, 4, 4, 4]))
    shape = [1, *(int(g.pick([1, 1, *range(2, 10)])) for _ in range(rank - 1))]  # 1s: SQUEEZE, broadcasts
    dtype = g.pick(["uint8", "int8", "int16"])
    scale, zp = g.scale(), g.zp(dtype)
    g.desc.append(f"input {dtype}{shape} s={scale:.3g} zp={zp}")
    return T(g.net.input(shape, dtype, scale, zp), shape, dtype, scale, zp)


def chain(rng: np.random.Generator, ops: list[str]) -> tuple[Net, str]:
    """One graph input through 1-3 random ops; the net and its description."""
    g = G(rng, Net())
    t = _start(g)
    n_ops, done = int(g.rng.integers(1, 4)), 0
    for _ in range(50):  # draws that do not apply to the current tensor are skipped
        if done == n_ops or t.dtype not in QUANTIZED:
            break
        nxt = OPS[g.pick(ops)](g, t)
        if nxt is not None:
            t, done = nxt, done + 1
    g.net.outputs.append(t.index)
    g.net.labels.append(" -> ".join(g.desc))
    return g.net, g.net.labels[-1]


def generate(seed: int, chains: int = 12, ops: list[str] | None = None) -> Case:
    """`chains` independent random chains (each 1-3 ops drawn from `ops`, default all of OPS)."""
    rng = np.random.default_rng(seed)
    nets, texts = [], []
    for _ in range(chains):
        net, text = chain(rng, ops or list(OPS))
        nets.append(net)
        texts.append(text)
    return Case(seed, nets, texts)


def merge(nets: list[Net]) -> Net:
    """The nets side by side in one model (one oracle process runs them all)."""
    out = Net()
    for k, net in enumerate(nets):
        base = len(out.tensors)
        for t in net.tensors:
            out.tensors.append({**t, "name": f"c{k}_{t['name']}"})
        for o in net.ops:
            moved = [i + base if i >= 0 else i for i in o["inputs"]]
            out.ops.append({**o, "inputs": moved, "outputs": [i + base for i in o["outputs"]]})
        out.inputs += [i + base for i in net.inputs]
        out.outputs += [i + base for i in net.outputs]
        out.labels += net.labels
    return out


def _oracle_runs(model: bytes, runs: list, numerics: str) -> list[dict]:
    """The profile's oracle on every input set, every tensor it exposes."""
    run_many = {"reference": reference_run_many, "litert": litert_run_many, "tflm": micro_run_many}[numerics]
    return run_many(model, runs, preserve_all=True)


def compare_model(model: bytes, runs: list, numerics: str = "reference") -> None:
    """The engine in profile `numerics` equals its oracle on every tensor (production plan) for each
    input set; raises AssertionError, EngineError or OracleError otherwise."""
    if numerics == "litert":
        check_litert(model, runs)
        return
    refs = _oracle_runs(model, runs, numerics)
    m = engine.load(model, numerics=numerics)
    for xs, ref in zip(runs, refs):
        assert_every_tensor_equal(m, xs, [ref])


def compare(net: Net, seed: int, batches: tuple[int, ...], numerics: str = "reference") -> None:
    """compare_model on random inputs at each batch size (TFLite Micro: batch 1, as the model says)."""
    rng = np.random.default_rng(seed)
    runs = [net.random_inputs(rng, b) for b in ((1,) if numerics == "tflm" else batches)]
    compare_model(net.build(), runs, numerics)


def _refused_alike(net: Net, seed: int, numerics: str) -> bool:
    """Whether the engine refuses the chain in this profile; AssertionError where only it does."""
    model = net.build()
    try:
        engine.load(model, numerics=numerics)
        return False
    except EngineError as e:
        refusal = str(e)
    try:
        _oracle_runs(model, [net.random_inputs(np.random.default_rng(seed), 1)], numerics)
    except OracleError:
        return True
    raise AssertionError(f"the engine refuses what the {numerics} oracle runs: {refusal}")


def check_case(case: Case, batches: tuple[int, ...] = (1, 3), numerics: str = "reference") -> list[str]:
    """[] when the engine equals the profile's oracle on the case; else one line per failing chain.
    The reference runs every generated chain; another profile's oracle may refuse some: those the
    engine refuses alike are set aside (each checked alone), the others merged."""
    failures, chains = [], list(range(len(case.chains)))
    if numerics != "reference":
        kept = []
        for k in chains:
            try:
                if not _refused_alike(case.chains[k], case.seed, numerics):
                    kept.append(k)
            except AssertionError as e:
                failures.append(f"seed {case.seed} chain {k}: {case.texts[k]}\n    {str(e)[:400]}")
        chains = kept
    if not chains:
        return failures
    try:
        compare(merge([case.chains[k] for k in chains]), case.seed, batches, numerics)
        return failures
    except (AssertionError, EngineError, OracleError):
        pass
    for k in chains:
        try:
            compare(case.chains[k], case.seed, batches, numerics)
        except (AssertionError, EngineError, OracleError) as e:
            why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:400]
            failures.append(f"seed {case.seed} chain {k}: {case.texts[k]}\n    {why}")
    return failures or [f"seed {case.seed}: the merged model fails, no chain alone does"]


# ------------------------------------------------------------------------- structural mutations
# values written over fields of a valid model: past the format checks, into prepare() and the kernels
INTERESTING = [0, 1, 2, 3, 7, 255, 256, 65536, -1, -2, -128, 2**31 - 1, -(2**31)]
BAD_SCALES = [0.0, -1.0, 1e-30, 1e30, float("nan"), float("inf"), 1e-7, 3.0]
DTYPES = ["uint8", "int8", "int16", "int32", "float32", "int64", "bool"]


def _mutate_tensor(rng: np.random.Generator, t: dict) -> str:
    what = rng.integers(6)
    if what == 0 and t["shape"]:
        k = int(rng.integers(len(t["shape"])))
        t["shape"] = list(t["shape"])
        t["shape"][k] = int(rng.choice(INTERESTING))
        return f"shape[{k}]={t['shape'][k]}"
    if what == 1:
        t["dtype"] = str(rng.choice(DTYPES))
        if "data" in t:
            t["data"] = np.zeros(np.shape(t["data"]))
        return f"dtype={t['dtype']}"
    if what == 2 and "scale" in t:
        t["scale"] = [float(rng.choice(BAD_SCALES))] * len(t["scale"])
        return f"scale={t['scale'][0]}"
    if what == 3 and "zero_point" in t:
        t["zero_point"] = [int(rng.choice([-129, 256, 1 << 40, -32769, 127]))] * len(t["zero_point"])
        return f"zero_point={t['zero_point'][0]}"
    if what == 4 and "scale" in t:
        t["quantized_dimension"] = int(rng.choice([1, 2, 3, 7, -1]))
        n = int(rng.choice([1, 2, 3, 40]))
        t["scale"], t["zero_point"] = t["scale"][:1] * n, t.get("zero_point", [0])[:1] * n
        return f"quantized_dimension={t['quantized_dimension']} x{n}"
    t.pop("scale", None), t.pop("zero_point", None)
    return "quantization removed"


def _mutate_op(rng: np.random.Generator, net: Net, o: dict) -> str:
    what = rng.integers(4)
    if what == 0 and o.get("options"):
        key = str(rng.choice(sorted(o["options"])))
        value = o["options"][key]
        if isinstance(value, str):  # an enum: another name of a real enum
            new = str(rng.choice(["SAME", "VALID", "NONE", "RELU", "TANH", "SIGN_BIT", "RELU6"]))
        elif isinstance(value, (list, tuple)):
            new = [int(rng.choice(INTERESTING)) for _ in range(int(rng.integers(0, 5)))]
        elif isinstance(value, float):
            new = float(rng.choice(BAD_SCALES))
        else:
            new = int(rng.choice(INTERESTING)) if not isinstance(value, bool) else not value
        o["options"] = {**o["options"], key: new}
        return f"{o['op']}.{key}={new}"
    if what == 1 and o["inputs"]:
        k = int(rng.integers(len(o["inputs"])))
        o["inputs"] = list(o["inputs"])
        o["inputs"][k] = int(rng.integers(-1, len(net.tensors)))
        return f"{o['op']}.inputs[{k}]={o['inputs'][k]}"
    if what == 2:
        o["inputs"] = list(o["inputs"])[: int(rng.integers(len(o["inputs"]) + 1))]
        return f"{o['op']} inputs cut to {len(o['inputs'])}"
    old, o["op"] = o["op"], str(rng.choice(list(OPS)))
    keep = _options_of(o["op"])
    o["options"] = {k: v for k, v in (o.get("options") or {}).items() if keep(k)}
    return f"{old} -> {o['op']}"


def _options_of(op: str):
    from tests.tflite_builder import option_setters, options_type

    cls = options_type(op)
    names = set(option_setters(cls)) if cls else set()
    return lambda key: key in names


def mutated_model(seed: int) -> tuple[bytes, str] | None:
    """A random valid chain with 1-3 of its fields changed (a shape, a type, a scale, a zero point, a
    quantized dimension, an option, an operand, the op itself), as .tflite bytes and a description;
    None when the builder itself cannot write the result."""
    import copy

    rng = np.random.default_rng(seed)
    net, text = chain(rng, list(OPS))
    net = copy.deepcopy(net)
    changes = []
    for _ in range(int(rng.integers(1, 4))):
        if rng.random() < 0.5:
            changes.append(_mutate_tensor(rng, net.tensors[int(rng.integers(len(net.tensors)))]))
        elif net.ops:
            changes.append(_mutate_op(rng, net, net.ops[int(rng.integers(len(net.ops)))]))
    try:
        return net.build(), f"{text} | mutated: {'; '.join(changes)}"
    except (ValueError, TypeError, OverflowError, KeyError):
        return None


def compare_mutated(seed: int, numerics: str = "reference") -> str:
    """For a mutated model the engine loads and runs: 'equal' when the profile's oracle runs it too and
    every tensor agrees, 'oracle-refuses' when the oracle does not run it; raises AssertionError on a
    difference (call it only after the crash-isolated worker has run the case)."""
    data, _ = mutated_model(seed)
    m = engine.load(data, numerics=numerics)
    rng = np.random.default_rng(seed)
    xs = []
    for t in m.inputs:
        if np.issubdtype(t.dtype, np.integer):
            info = np.iinfo(t.dtype)
            xs.append(rng.integers(info.min, int(info.max) + 1, size=t.shape).astype(t.dtype))
        else:
            xs.append(rng.standard_normal(t.shape).astype(t.dtype))
    try:
        compare_model(data, [xs], numerics)
    except OracleError:
        return "oracle-refuses"
    except EngineError as e:  # (inputs of other batch sizes than each other: the engine refuses)
        return f"engine-error:{type(e).__name__}"
    return "equal"
