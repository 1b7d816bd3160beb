"""Elementwise binary ops on plain (not quantized) numbers: float32, int32, int64.

ADD, SUB, MUL, DIV (reference_ops BroadcastAdd/Sub/Mul/Div...Slow and their elementwise forms): the
float32 or wrapping integer operation, then ActivationFunctionWithMinMax with the fused activation's
bounds; with no activation those are the type's limits, so a float32 inf becomes +-FLT_MAX as in the
reference. FLOOR_DIV (reference_ops::FloorDiv): floor(double(a) / double(b)) converted back to the
type. MAXIMUM, MINIMUM: a > b ? a : b (a < b ? a : b), raw values (8-bit and int16 too).
Integer division by zero is refused at load for a constant divisor, an InputError otherwise (the
reference reports an error). numpy broadcasts as TFLite does (right-aligned, size-1 dimensions).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..graph import Graph, Op
from ..kernels import plain
from ..profiles import litert, litert_xnn, profile_of
from . import div_quantized
from .broadcast import broadcast_plan, broadcast_shape
from .common import Prepared, Shape, bound, fail, require, tensors, view

FLOAT_INT = ("float32", "int32", "int64")
TYPES = {
    "ADD": FLOAT_INT,
    "SUB": FLOAT_INT,
    "MUL": FLOAT_INT,
    "DIV": ("float32", "int32"),  # int64: the reference refuses it
    "FLOOR_DIV": ("float32", "int8", "int16", "int32"),  # 8/16-bit: raw values, scales ignored; no int64
    "MAXIMUM": ("float32", "uint8", "int8", "int16", "int32", "int64"),
    "MINIMUM": ("float32", "uint8", "int8", "int16", "int32", "int64"),
}
ACTIVATION_BOUNDS = {"NONE": (None, None), "RELU": (0, None), "RELU6": (0, 6), "RELU_N1_TO_1": (-1, 1)}


def _bounds(op: Op, dtype: np.dtype):
    """The clamp of the fused activation (CalculateActivationRange), or None when it cannot bite."""
    if op.type not in ("ADD", "SUB", "MUL", "DIV"):
        return None
    act = op.options.get("fused_activation_function", "NONE")
    require(op, act in ACTIVATION_BOUNDS, f"fused activation {act} not supported")
    lo, hi = ACTIVATION_BOUNDS[act]
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    lo = dtype.type(info.min if lo is None else lo)
    hi = dtype.type(info.max if hi is None else hi)
    if dtype.kind != "f" and lo == info.min and hi == info.max:
        return None
    return lo, hi


def _floor_div(a, b, out):
    q = np.floor(np.divide(a, b, dtype=np.float64))
    if out.dtype.kind == "f":
        np.copyto(out, q, casting="unsafe")
    else:  # C's double -> int conversion: out of range gives the type's minimum on x86
        info = np.iinfo(out.dtype)
        q[~((q >= info.min) & (q <= info.max))] = info.min
        np.copyto(out, q, casting="unsafe")


def _int_div(a, b, out):
    """C's integer division (truncation toward zero), int32/int64 without going through double."""
    q = np.abs(a) // np.abs(b)
    np.copyto(out, np.where((a < 0) != (b < 0), -q, q), casting="unsafe")


def _compute(kind: str, dtype: np.dtype):
    if kind == "ADD":
        return lambda a, b, out: np.add(a, b, out=out)
    if kind == "SUB":
        return lambda a, b, out: np.subtract(a, b, out=out)
    if kind == "MUL":
        return lambda a, b, out: np.multiply(a, b, out=out)
    if kind == "DIV":
        return (lambda a, b, out: np.divide(a, b, out=out)) if dtype.kind == "f" else _int_div
    if kind == "FLOOR_DIV":
        return _floor_div
    if kind == "MAXIMUM":
        return lambda a, b, out: np.copyto(out, np.where(a > b, a, b))
    return lambda a, b, out: np.copyto(out, np.where(a < b, a, b))


def prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[np.ndarray | None]) -> Prepared:
    ins, outs = tensors(op, g)
    require(op, len(ins) == 2 and None not in ins and len(outs) == 1, "takes 2 inputs and 1 output")
    a, b, out = ins[0], ins[1], outs[0]
    if op.type == "DIV" and a.dtype in ("uint8", "int8", "int16"):
        return div_quantized.prepare(op, g, shapes, values)
    allowed = TYPES[op.type]
    require(op, a.dtype in allowed, f"{a.describe()}: type {a.dtype} not supported (supported: {allowed})")
    require(op, b.dtype == a.dtype and out.dtype == a.dtype, f"inputs and output must all be {a.dtype}")
    if op.type in ("MAXIMUM", "MINIMUM") and a.quantized:
        for t in (b, out):  # raw values are compared: the reference assumes one quantization
            require(op, t.quantized and t.scale.size == 1, f"{t.describe()}: must be quantized per tensor")
    dtype = out.np_dtype
    out_shape = broadcast_shape(op, shapes[0], shapes[1])
    bounds = _bounds(op, dtype)
    xnn = dtype == np.float32 and profile_of(g) == "litert" and litert.delegated(op, g)
    if xnn and bounds is not None:  # XNNPACK's output range: an unbounded side is infinite, not +-FLT_MAX
        info = np.finfo(dtype)
        bounds = tuple(dtype.type(v * np.inf) if abs(v) == info.max else v for v in bounds)
    compute = _compute(op.type, dtype)
    int_div = op.type in ("DIV", "FLOOR_DIV") and dtype.kind != "f"
    if int_div and values[1] is not None and not np.all(values[1]):
        raise fail(op, f"{b.describe()}: division by zero")
    if bounds is None and not xnn:  # (a fused clamp, XNNPACK's float rules: through NumPy below)
        return _compiled(op, dtype, shapes, out_shape)
    check_zero = int_div and values[1] is None

    def run(inputs: list, outputs: list, scratch: list) -> None:
        x, y, o = inputs[0], inputs[1], outputs[0]
        if check_zero and not np.all(y):
            raise InputError(f"{op.where()}: division by zero")
        with np.errstate(all="ignore"):
            compute(x, y, o)
            if bounds is not None:
                np.clip(o, bounds[0], bounds[1], out=o)

    prepared = Prepared([out_shape], run)
    if xnn:
        return litert_xnn.flush_denormals(prepared, shapes)  # XNNPACK: denormals are zero
    return prepared


_KERNELS = {
    "ADD": plain.add,
    "SUB": plain.sub,
    "MUL": plain.mul,
    "MAXIMUM": plain.maximum,
    "MINIMUM": plain.minimum,
    "DIV": plain.div_float,  # (float32: the integer divisions check their divisors, below)
    "FLOOR_DIV": plain.floor_div_float,
}


def _compiled(op: Op, dtype: np.dtype, shapes: list, out_shape: Shape) -> Prepared:
    """The op as one compiled call (kernels/plain.py) over the broadcast walk."""
    walk = broadcast_plan(out_shape, shapes[0], shapes[1])
    if dtype.kind == "f" or op.type not in ("DIV", "FLOOR_DIV"):
        fn = _KERNELS[op.type]

        def bind(inputs: list, outputs: list, scratch: list) -> list:
            return [(fn, (view(inputs[0]), view(inputs[1]), view(outputs[0]), *walk))]

        return bound([out_shape], bind)
    info = np.iinfo(dtype)
    floor = op.type == "FLOOR_DIV"

    def divide(a, b, out, wide) -> None:  # (the kernels write nothing where a divisor is zero)
        ok = (
            plain.floor_div_int(a, b, out, *walk, info.min, info.max, wide)
            if floor
            else plain.div_int(a, b, out, *walk)
        )
        if not ok:
            raise InputError(f"{op.where()}: division by zero")

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        wide = scratch[0] if floor else None
        return [(divide, (view(inputs[0]), view(inputs[1]), view(outputs[0]), wide))]

    return bound([out_shape], bind, [((math.prod(out_shape),), np.int64)] if floor else [])
