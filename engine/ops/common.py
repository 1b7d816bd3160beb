"""What every op's prepare step shares: the Prepared contract, error helpers, quantization lookups."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numba
import numpy as np

from ..errors import UnsupportedError
from ..graph import Graph, Op, Tensor
from ..kernels import aligned
from ..kernels.kernel import serial_call
from ..numerics.fixedpoint import activation_range

Shape = tuple[int, ...]


@dataclass
class Prepared:
    """What an op's prepare() returns.

    out_shapes: the shape of each output for the input shapes prepare() was given
    (batch included). run(inputs, outputs, scratch) computes: inputs are the arrays of
    op.inputs (None where an optional input is omitted, constants included),
    outputs are preallocated arrays of the output tensors' dtypes and out_shapes,
    written in place. run() does no validation (prepare() has done it all) and allocates
    nothing: its working memory is scratch.

    scratch: (shape, dtype) of the working arrays the op needs while it runs; the planner
    backs them with one arena shared by all steps and passes them to run() in this order
    (an empty list when there are none). Their content is undefined at entry.

    work: bytes the run allocates itself at most (kernels with data-dependent work arrays), counted
    against the model's memory budget.

    warmup: called instead of run by the load-time warm-up, where a run's work depends on the data
    (NMS): it compiles the same kernels without the data-dependent part.

    bind(inputs, outputs, scratch) -> [(kernel, args)]: where a run is a fixed sequence of kernel calls,
    the planner binds them once to the plan's arrays (every view and reshape made then) and a run
    only makes the calls (see bound()).
    """

    out_shapes: list[Shape]
    run: Callable[..., None]
    scratch: list[tuple[Shape, type]] = field(default_factory=list)
    work: int = 0
    warmup: Callable[..., None] | None = None
    bind: Callable[..., list] | None = None
    alias: bool = False  # output 0 is input 0's bytes as they are: see same_bytes()

    def __post_init__(self) -> None:
        if self.bind is None:  # a shared runner (kernels/lookup.py) carries its bind on its run
            self.bind = getattr(self.run, "bind", None)

    def run_serial(self, inputs: list, outputs: list, scratch: list) -> None:
        """run() on the kernels' serial builds: one op run outside a plan (constant folding, a layer
        inspected alone), where the parallel build a large op picks would be compiled for one call
        (a parfor build compiles in 20-45 s, its serial build in a few)."""
        if self.bind is None:
            self.run(inputs, outputs, scratch)
            return
        for fn, args in self.bind(inputs, outputs, scratch):
            fn, args = serial_call(fn, args)
            fn(*args)


def runner(bind: Callable[..., list]) -> Callable[..., None]:
    """run(inputs, outputs, scratch) making the kernel calls bind(inputs, outputs, scratch) returns; it
    carries bind, which the planner calls once per plan instead (see Prepared)."""

    def run(inputs: list, outputs: list, scratch: list) -> None:
        for fn, args in bind(inputs, outputs, scratch):
            fn(*args)

    run.bind = bind
    return run


def bound(out_shapes: list[Shape], bind: Callable[..., list], scratch: list | None = None) -> Prepared:
    """A Prepared whose run is the kernel calls bind(inputs, outputs, scratch) returns (see Prepared)."""
    return Prepared(out_shapes, runner(bind), scratch or [], bind=bind)


def per_thread(length: int, dtype) -> tuple[tuple[int, int], np.dtype]:
    """A scratch spec (Prepared.scratch) of a row of `length` elements for each thread the pool may run
    (numba.get_thread_id() is below NUMBA_NUM_THREADS; kernels take row get_thread_id()), each row
    padded to whole cache lines and one more (the arena aligns the array): two threads that write one
    line pass it between their cores on every write. MobileNet v2's 112 x 112 x 32 depthwise layer
    took 139 us at 2 threads where the rows shared a line, 63 padded (96 serial)."""
    per_line = max(aligned.LINE // np.dtype(dtype).itemsize, 1)
    return (numba.config.NUMBA_NUM_THREADS, -(-length // per_line) * per_line + per_line), np.dtype(dtype)


def same_bytes(out_shape: Shape) -> Prepared:
    """A Prepared for an op whose one output is its input 0's bytes under out_shape (RESHAPE, SQUEEZE):
    the planner makes the output a view of the input's buffer where the input is an activation of its
    own (no copy, no call); else the run copies."""

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        if np.shares_memory(outputs[0], inputs[0]):
            return []
        return [(np.copyto, (outputs[0], view(inputs[0], out_shape)))]

    prepared = bound([out_shape], bind)
    prepared.alias = True
    return prepared


def view(a: np.ndarray, shape=-1) -> np.ndarray:
    """a reshaped without a copy (a bound call must read and write the plan's own arrays)."""
    return a.reshape(shape, copy=False)  # raises rather than copy


def fail(op: Op, msg: str) -> UnsupportedError:
    return UnsupportedError(f"{op.where()}: {msg}")


def tensors(op: Op, g: Graph) -> tuple[list[Tensor | None], list[Tensor]]:
    ins = [g.tensors[i] if i >= 0 else None for i in op.inputs]
    outs = [g.tensors[i] for i in op.outputs]
    return ins, outs


def require(op: Op, cond: bool, msg: str) -> None:
    if not cond:
        raise fail(op, msg)


def per_tensor(op: Op, t: Tensor) -> tuple[float, int]:
    """(scale, zero_point) of a per-tensor quantized tensor, or an error naming it."""
    if t.scale.size != 1:
        raise fail(op, f"{t.describe()} must be quantized per tensor")
    return float(t.scale[0]), int(t.zero_point[0])


def stored(g: Graph, i: int, dtype: str, zero_point: int) -> tuple[str, int]:
    """Tensor i's type and zero point as its bytes hold it: an int8 tensor the plan stores flipped
    (engine/storage.py) is uint8 with the zero point + 128."""
    return ("uint8", zero_point + 128) if i in g.flipped else (dtype, zero_point)


def stored_output(g: Graph, i: int, dtype: str, zero_point: int, clamp: tuple[int, int]) -> tuple[str, int, tuple]:
    """stored() for an op's output i, with its clamp moved as its zero point is: the same arithmetic
    written flipped."""
    stored_dtype, stored_zp = stored(g, i, dtype, zero_point)
    lo, hi = (v + stored_zp - zero_point for v in clamp)
    return stored_dtype, stored_zp, (lo, hi)


def require_types(op: Op, t: Tensor, allowed: tuple[str, ...]) -> None:
    if t.dtype not in allowed:
        raise fail(op, f"{t.describe()}: type {t.dtype} not supported (supported: {', '.join(allowed)})")
    if t.dtype in ("int8", "uint8", "int16") and not t.quantized:
        raise fail(op, f"{t.describe()}: {t.dtype} tensor without quantization parameters")


def fused_activation(op: Op, out: Tensor) -> tuple[int, int]:
    """Clamp bounds of the op's fused activation on its quantized output."""
    act = op.options.get("fused_activation_function", "NONE")
    if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        raise fail(op, f"fused activation {act} not supported")
    scale, zp = per_tensor(op, out)
    return activation_range(act, scale, zp, out.np_dtype)


FLOAT_ACTIVATIONS = {
    "NONE": (-np.inf, np.inf),
    "RELU": (0.0, np.inf),
    "RELU6": (0.0, 6.0),
    "RELU_N1_TO_1": (-1.0, 1.0),
}


def float_activation(op: Op) -> np.ndarray:
    """[lo, hi] (float32) of the op's fused activation on float data (CalculateActivationRange)."""
    act = op.options.get("fused_activation_function", "NONE")
    if act not in FLOAT_ACTIVATIONS:
        raise fail(op, f"fused activation {act} not supported")
    return np.array(FLOAT_ACTIVATIONS[act], np.float32)


def conv_output_size(op: Op, size: int, filt: int, stride: int, dilation: int, padding: str) -> int:
    """Output extent and the TFLite padding rule (ComputeOutSize)."""
    eff = (filt - 1) * dilation + 1
    if padding == "SAME":
        out = (size + stride - 1) // stride
    elif padding == "VALID":
        out = (size + stride - eff) // stride
    else:
        raise fail(op, f"padding {padding} not supported")
    if out <= 0:
        raise fail(
            op, f"input extent {size} too small for filter {filt} (dilation {dilation}) with {padding}"
        )
    return out


def conv_padding(size: int, filt: int, stride: int, dilation: int, out: int) -> int:
    """ComputePadding: padding before the first element (TFLite drops the odd extra at the end)."""
    eff = (filt - 1) * dilation + 1
    return max(((out - 1) * stride + eff - size) // 2, 0)


def int_option(op: Op, key: str, default: int, lo: int = 1, hi: int = 1 << 16) -> int:
    """An integer option, refused unless it is a plain int in [lo, hi] (.npz options are user data)."""
    v = op.options.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise fail(op, f"option {key}={v!r} must be an integer in [{lo}, {hi}]")
    return v


@dataclass(frozen=True)
class Window:
    """Where a sliding window (convolution or pooling) reads: strides, dilations, output size, and
    the zero-padded input extent (top/left padding first; TFLite puts the odd extra at the end)."""

    sh: int
    sw: int
    dh: int
    dw: int
    oh: int
    ow: int
    top: int
    left: int
    hp: int
    wp: int


def window(op: Op, h: int, w: int, kh: int, kw: int, dilated: bool = True) -> Window:
    """The geometry of op's window (options stride_*, dilation_*factor, padding) on an h x w input."""
    sh, sw = int_option(op, "stride_h", 1), int_option(op, "stride_w", 1)
    dh = int_option(op, "dilation_hfactor", 1) if dilated else 1
    dw = int_option(op, "dilation_wfactor", 1) if dilated else 1
    pad = op.options.get("padding", "SAME")
    oh = conv_output_size(op, h, kh, sh, dh, pad)
    ow = conv_output_size(op, w, kw, sw, dw, pad)
    top, left = conv_padding(h, kh, sh, dh, oh), conv_padding(w, kw, sw, dw, ow)
    hp = max(h + top, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(w + left, (ow - 1) * sw + (kw - 1) * dw + 1)
    return Window(sh, sw, dh, dw, oh, ow, top, left, hp, wp)


def unary_8bit(
    op: Op, g: Graph, types: tuple[str, ...] = ("uint8", "int8")
) -> tuple[Tensor, Tensor, tuple[float, int], tuple[float, int]]:
    """The input and output of a one-in one-out op on 8-bit (or `types`) per-tensor data of one type,
    checked, with their (scale, zero point)."""
    (inp,), (out,) = tensors(op, g)
    require_types(op, inp, types)
    require(op, out.dtype == inp.dtype, f"output type {out.dtype} must be the input type {inp.dtype}")
    require_types(op, out, (inp.dtype,))
    return inp, out, per_tensor(op, inp), per_tensor(op, out)


class Pool(NamedTuple):
    """A pooling window (filter fh x fw, strides, the padding before) and the fused activation's clamp:
    the pooling kernels' parameters, as one argument."""

    fh: int
    fw: int
    sh: int
    sw: int
    ph: int
    pw: int
    act_min: int
    act_max: int


def pool_geometry(op: Op, g: Graph, shapes: list[Shape | None]) -> tuple[Shape, Pool]:
    """Validate a pooling op (MAX_POOL_2D, AVERAGE_POOL_2D); returns (output shape, Pool)."""
    (src,), (dst,) = tensors(op, g)
    require_types(op, src, ("uint8", "int8", "int16", "float32"))
    require(op, dst.dtype == src.dtype, f"output type {dst.dtype} differs from input type {src.dtype}")
    require_types(op, dst, (src.dtype,))
    shape = shapes[0]
    require(op, len(shape) == 4, f"input must be 4-D NHWC, got shape {list(shape)}")
    fh, fw = int_option(op, "filter_height", 0), int_option(op, "filter_width", 0)
    sh, sw = int_option(op, "stride_h", 0), int_option(op, "stride_w", 0)
    require(
        op, fh > 0 and fw > 0 and sh > 0 and sw > 0, f"filter {fh}x{fw} and strides {sh}x{sw} must be > 0"
    )
    n, h, w, c = shape
    win = window(op, h, w, fh, fw, dilated=False)
    # every window must hold at least one input element (the reference fails otherwise)
    for size, f, s, p, out in ((h, fh, sh, win.top, win.oh), (w, fw, sw, win.left, win.ow)):
        origin = np.arange(out) * s - p
        lo = np.maximum(0, -origin)
        hi = np.minimum(f, size - origin)
        require(op, bool(np.all(hi > lo)), "a pooling window lies entirely in the padding")
    # the reference pools raw values: input and output quantization are assumed equal (DCHECK only)
    act_min, act_max = fused_activation(op, dst) if dst.dtype != "float32" else (0, 0)  # float: pool_float
    return (n, win.oh, win.ow, c), Pool(fh, fw, sh, sw, win.top, win.left, act_min, act_max)
