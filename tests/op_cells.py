"""One small one-op graph per (op, type): the cells of the README's supported-ops table.

cell(op, dtype) -> Cell (the graph and its inputs) builds the simplest graph of `op` on data of `dtype`
with the quantization the reference kernels require of that type (int16: zero points 0; SOFTMAX,
LOGISTIC, TANH: their fixed output scales; data-movement ops: one quantization in and out), so
that the reference kernels run it exactly when they run that (op, type) at all.
tests/test_op_table.py runs every cell through the engine and the oracle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tests.harness import Net

TYPES = ("uint8", "int8", "int16", "float32", "int32", "int64")
# (input, output) quantization per type; outputs differ from inputs so that rescaling shows
Q = {
    "uint8": ((0.05, 128), (0.07, 120)),
    "int8": ((0.05, -3), (0.07, 5)),
    "int16": ((0.002, 0), (0.003, 0)),
    "float32": ((None, None), (None, None)),
    "int32": ((None, None), (None, None)),
    "int64": ((None, None), (None, None)),
}
SHAPE = [1, 4, 5, 3]


@dataclass
class Cell:
    net: Net
    inputs: Callable[[np.random.Generator, int], list[np.ndarray]] | None = None  # rng, batch -> inputs

    def input_sets(self, seed: int, batches=(1, 2)) -> list[list[np.ndarray]]:
        rng = np.random.default_rng(seed)
        make = self.inputs or self.net.random_inputs
        return [make(rng, b) for b in batches]


def _qi(dtype):
    return Q[dtype][0]


def _qo(dtype):
    return Q[dtype][1]


def _unary(op: str, dtype: str, same: bool = False, qo=None, out_dtype=None, **options) -> Cell:
    net = Net()
    x = net.input(SHAPE, dtype, *_qi(dtype))
    q_out = qo if qo is not None else (_qi(dtype) if same else _qo(dtype))
    net.op(op, [x], [net.tensor(SHAPE, out_dtype or dtype, *q_out)], f"{op} {dtype}", **options)
    return Cell(net)


def _binary(op: str, dtype: str, same: bool = False, **options) -> Cell:
    net = Net()
    a = net.input(SHAPE, dtype, *_qi(dtype))
    b = net.input(SHAPE, dtype, *_qo(dtype))
    net.op(
        op,
        [a, b],
        [net.tensor(SHAPE, dtype, *(_qi(dtype) if same else _qo(dtype)))],
        f"{op} {dtype}",
        **options,
    )
    return Cell(net)


def _conv(op: str, dtype: str) -> Cell:
    net = Net()
    rng = np.random.default_rng(0)
    cin, cout = SHAPE[3], 4 if op != "DEPTHWISE_CONV_2D" else SHAPE[3]
    wq = {"uint8": ("uint8", 0.02, 130), "int8": ("int8", 0.02, 0), "int16": ("int8", 0.02, 0)}
    bias_t = {"uint8": "int32", "int8": "int32", "int16": "int64"}.get(dtype, dtype)
    if op == "FULLY_CONNECTED":
        in_shape, w_shape, out_shape, opts = [1, 12], [cout, 12], [1, cout], {}
    else:
        in_shape = SHAPE
        w_shape = [cout, 3, 3, cin] if op == "CONV_2D" else [1, 3, 3, cout]
        out_shape = [1, SHAPE[1], SHAPE[2], cout]
        opts = {"padding": "SAME", "stride_h": 1, "stride_w": 1}
        if op == "DEPTHWISE_CONV_2D":
            opts["depth_multiplier"] = 1
    x = net.input(in_shape, dtype, *_qi(dtype))
    if dtype not in wq:  # float32 (and the integer types, which no convolution takes)
        w = net.const((rng.standard_normal(w_shape) * 3).astype(dtype), dtype)
        b = net.const((rng.standard_normal(cout) * 3).astype(dtype), dtype)
    else:
        wt, ws, wz = wq[dtype]
        info = np.iinfo(wt)
        w = net.const(rng.integers(info.min, int(info.max) + 1, w_shape), wt, ws, wz)
        b = net.const(rng.integers(-500, 500, cout), bias_t, _qi(dtype)[0] * ws, 0)
    out = net.tensor(out_shape, dtype, *_qo(dtype))
    net.op(op, [x, w, b], [out], f"{op} {dtype}", **opts)
    return Cell(net)


def _pool(op: str, dtype: str) -> Cell:
    opts = {"padding": "VALID", "stride_h": 1, "stride_w": 1, "filter_height": 2, "filter_width": 2}
    net = Net()
    x = net.input(SHAPE, dtype, *_qi(dtype))
    out = [1, SHAPE[1] - 1, SHAPE[2] - 1, SHAPE[3]]
    net.op(op, [x], [net.tensor(out, dtype, *_qi(dtype))], f"{op} {dtype}", **opts)
    return Cell(net)


def _reduce(op: str, dtype: str, same: bool = False) -> Cell:
    net = Net()
    x = net.input(SHAPE, dtype, *_qi(dtype))
    axes = net.const(np.array([1, 2], np.int32), "int32")
    out = net.tensor([1, 1, 1, SHAPE[3]], dtype, *(_qi(dtype) if same else _qo(dtype)))
    net.op(op, [x, axes], [out], f"{op} {dtype}", keep_dims=True)
    return Cell(net)


def _fixed_out(op: str, dtype: str) -> Cell:
    """SOFTMAX, LOGISTIC, TANH: the output quantization each type's kernel requires."""
    unit = {"SOFTMAX": 1 / 256, "LOGISTIC": 1 / 256, "TANH": 1 / 128}[op]
    qo = {
        "uint8": (unit, 128 if op == "TANH" else 0),
        "int8": (unit, 0 if op == "TANH" else -128),
        "int16": (1 / 32768, 0),
    }.get(dtype, (None, None))
    options = {"beta": 1.0} if op == "SOFTMAX" else {}
    return _unary(op, dtype, qo=qo, **options)


def _shaped(op: str, dtype: str, out_shape, extra, same: bool = True, out_dtype=None, **options) -> Cell:
    """One data input of SHAPE, constant extra inputs (np arrays, int32), one output."""
    net = Net()
    x = net.input(SHAPE, dtype, *_qi(dtype))
    ins = [x] + [net.const(a, str(a.dtype)) for a in extra]
    q = _qi(dtype) if same else _qo(dtype)
    if out_dtype not in (None, dtype):
        q = (None, None)
    net.op(op, ins, [net.tensor(out_shape, out_dtype or dtype, *q)], f"{op} {dtype}", **options)
    return Cell(net)


def _i32(*v) -> np.ndarray:
    return np.array(v, np.int32)


def _positive(cell: Cell, dtype: str, k: int = 0) -> Cell:
    """Input k kept away from its zero (divisors, square roots)."""
    base = cell.net.random_inputs

    def make(rng, batch):
        xs = base(rng, batch)
        x = xs[k]
        if dtype == "float32":
            xs[k] = np.abs(x) + np.float32(0.1)
        else:
            zp = (_qi(dtype)[1] if k == 0 else _qo(dtype)[1]) or 0
            zp = zp if dtype != "int32" else 0
            hi = min(np.iinfo(dtype).max, 1 << 20)
            xs[k] = rng.integers(zp + 1, int(hi) + 1, x.shape).astype(dtype)
        return xs

    cell.inputs = make
    return cell


def _quantize(dtype: str) -> Cell:
    net = Net()
    x = net.input(SHAPE, "float32")
    net.op("QUANTIZE", [x], [net.tensor(SHAPE, dtype, *_qo(dtype))], f"QUANTIZE float32 -> {dtype}")
    if dtype != "float32":
        y = net.input(SHAPE, dtype, *_qi(dtype))
        net.op("QUANTIZE", [y], [net.tensor(SHAPE, dtype, *_qo(dtype))], f"QUANTIZE {dtype} -> {dtype}")
    return Cell(net)


def _concat(dtype: str) -> Cell:
    net = Net()
    a = net.input(SHAPE, dtype, *(_qo(dtype) if dtype == "int8" else _qi(dtype)))  # int8: one quantization
    b = net.input(SHAPE, dtype, *_qo(dtype))
    out = [*SHAPE[:3], 2 * SHAPE[3]]
    net.op("CONCATENATION", [a, b], [net.tensor(out, dtype, *_qo(dtype))], f"CONCATENATION {dtype}", axis=3)
    return Cell(net)


def _gather(op: str, dtype: str) -> Cell:
    if op == "GATHER":
        return _shaped(op, dtype, [1, 4, 2, 3], [_i32(4, 0)], axis=2)
    return _shaped(op, dtype, [2, 3], [np.array([[0, 1, 2], [0, 3, 4]], np.int32)])


def _l2norm(dtype: str) -> Cell:
    qo = {"uint8": (1 / 128, 128), "int8": (1 / 128, 0), "int16": (1 / 32768, 0)}.get(dtype, (None, None))
    return _unary("L2_NORMALIZATION", dtype, qo=qo)


def _prelu(dtype: str) -> Cell:
    net = Net()
    x = net.input(SHAPE, dtype, *_qi(dtype))
    alpha = np.linspace(-1, 1, SHAPE[3])
    if dtype in ("uint8", "int8", "int16"):
        a_type = "int8" if dtype == "int16" else dtype  # int16 PRELU takes int8 alphas
        s, z = 0.01, (0 if dtype != "uint8" else 128)
        alpha = np.round(alpha / s) + z
        a = net.const(alpha.astype(a_type), a_type, s, z)
    else:
        a = net.const(alpha.astype(dtype), dtype)
    net.op("PRELU", [x, a], [net.tensor(SHAPE, dtype, *_qo(dtype))], f"PRELU {dtype}")
    return Cell(net)


def _resize(op: str, dtype: str) -> Cell:
    return _shaped(op, dtype, [1, 7, 9, 3], [_i32(7, 9)])


def _split(op: str, dtype: str) -> Cell:
    net = Net()
    if op == "SPLIT":
        axis = net.const(_i32(3), "int32")
        x = net.input([1, 4, 5, 4], dtype, *_qi(dtype))
        ins, opts = [axis, x], {"num_splits": 2}
    else:
        x = net.input([1, 4, 5, 4], dtype, *_qi(dtype))
        ins, opts = [x, net.const(_i32(1, 3), "int32"), net.const(_i32(3), "int32")], {"num_splits": 2}
    widths = (2, 2) if op == "SPLIT" else (1, 3)
    outs = [net.tensor([1, 4, 5, w], dtype, *_qi(dtype)) for w in widths]
    net.op(op, ins, outs, f"{op} {dtype}", **opts)
    return Cell(net)


def _pack(op: str, dtype: str) -> Cell:
    net = Net()
    if op == "PACK":
        a = net.input(SHAPE, dtype, *_qi(dtype))
        b = net.input(SHAPE, dtype, *_qi(dtype))
        net.op(
            op, [a, b], [net.tensor([*SHAPE, 2], dtype, *_qi(dtype))], f"{op} {dtype}", values_count=2, axis=4
        )
    else:
        x = net.input(SHAPE, dtype, *_qi(dtype))
        outs = [net.tensor(SHAPE[:3], dtype, *_qi(dtype)) for _ in range(SHAPE[3])]
        net.op(op, [x], outs, f"{op} {dtype}", num=SHAPE[3], axis=3)
    return Cell(net)


def _squeeze(dtype: str) -> Cell:
    net = Net()
    x = net.input([1, 4, 1, 3], dtype, *_qi(dtype))
    net.op("SQUEEZE", [x], [net.tensor([1, 4, 3], dtype, *_qi(dtype))], f"SQUEEZE {dtype}", squeeze_dims=[2])
    return Cell(net)


def _cast(dtype: str) -> Cell:
    net = Net()
    x = net.input(SHAPE, dtype, *_qi(dtype))
    to = "int32" if dtype != "int32" else "float32"
    net.op("CAST", [x], [net.tensor(SHAPE, to)], f"CAST {dtype} -> {to}")
    return Cell(net)


def _dequantize(dtype: str) -> Cell:
    net = Net()
    x = net.input(SHAPE, dtype, *_qi(dtype))
    net.op("DEQUANTIZE", [x], [net.tensor(SHAPE, "float32")], f"DEQUANTIZE {dtype}")
    return Cell(net)


BUILDERS: dict[str, Callable[[str], Cell]] = {
    "CONV_2D": lambda t: _conv("CONV_2D", t),
    "DEPTHWISE_CONV_2D": lambda t: _conv("DEPTHWISE_CONV_2D", t),
    "FULLY_CONNECTED": lambda t: _conv("FULLY_CONNECTED", t),
    "MAX_POOL_2D": lambda t: _pool("MAX_POOL_2D", t),
    "AVERAGE_POOL_2D": lambda t: _pool("AVERAGE_POOL_2D", t),
    "ADD": lambda t: _binary("ADD", t),
    "SUB": lambda t: _binary("SUB", t),
    "MUL": lambda t: _binary("MUL", t),
    "MEAN": lambda t: _reduce("MEAN", t),
    "SUM": lambda t: _reduce("SUM", t),
    "REDUCE_MAX": lambda t: _reduce("REDUCE_MAX", t, same=True),
    "SOFTMAX": lambda t: _fixed_out("SOFTMAX", t),
    "LOGISTIC": lambda t: _fixed_out("LOGISTIC", t),
    "TANH": lambda t: _fixed_out("TANH", t),
    "RELU": lambda t: _unary("RELU", t),
    "RELU6": lambda t: _unary("RELU6", t),
    "HARD_SWISH": lambda t: _unary("HARD_SWISH", t),
    "LEAKY_RELU": lambda t: _unary("LEAKY_RELU", t, alpha=0.2),
    "EXP": lambda t: _unary("EXP", t),
    "SQRT": lambda t: _positive(_unary("SQRT", t), t),
    "RSQRT": lambda t: _positive(_unary("RSQRT", t), t),
    "L2_NORMALIZATION": _l2norm,
    "PRELU": _prelu,
    "SQUARED_DIFFERENCE": lambda t: _binary("SQUARED_DIFFERENCE", t),
    "DIV": lambda t: _positive(_binary("DIV", t), t, 1),
    "FLOOR_DIV": lambda t: _positive(_binary("FLOOR_DIV", t, same=True), t, 1),
    "MAXIMUM": lambda t: _binary("MAXIMUM", t, same=True),
    "MINIMUM": lambda t: _binary("MINIMUM", t, same=True),
    "PAD": lambda t: _shaped("PAD", t, [1, 6, 6, 3], [np.array([[0, 0], [1, 1], [0, 1], [0, 0]], np.int32)]),
    "PADV2": lambda t: _shaped(
        "PADV2", t, [1, 6, 6, 3], [np.array([[0, 0], [1, 1], [0, 1], [0, 0]], np.int32)]
    ),
    "RESHAPE": lambda t: _shaped("RESHAPE", t, [1, 20, 3], [_i32(-1, 20, 3)]),
    "SQUEEZE": _squeeze,
    "CONCATENATION": _concat,
    "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
    "SHAPE": lambda t: _shaped("SHAPE", t, [4], [], out_dtype="int32", out_type="INT32"),
    "STRIDED_SLICE": lambda t: _shaped(
        "STRIDED_SLICE", t, [1, 2, 3, 3], [_i32(0, 1, 0, 0), _i32(1, 5, 5, 3), _i32(1, 2, 2, 1)]
    ),
    "TRANSPOSE": lambda t: _shaped("TRANSPOSE", t, [1, 3, 4, 5], [_i32(0, 3, 1, 2)]),
    "RESIZE_NEAREST_NEIGHBOR": lambda t: _resize("RESIZE_NEAREST_NEIGHBOR", t),
    "RESIZE_BILINEAR": lambda t: _resize("RESIZE_BILINEAR", t),
    "ARG_MAX": lambda t: _shaped("ARG_MAX", t, [1, 4, 5], [_i32(3)], out_dtype="int32", output_type="INT32"),
    "ARG_MIN": lambda t: _shaped("ARG_MIN", t, [1, 4, 5], [_i32(3)], out_dtype="int32", output_type="INT32"),
    "GATHER": lambda t: _gather("GATHER", t),
    "GATHER_ND": lambda t: _gather("GATHER_ND", t),
    "SPLIT": lambda t: _split("SPLIT", t),
    "SPLIT_V": lambda t: _split("SPLIT_V", t),
    "PACK": lambda t: _pack("PACK", t),
    "UNPACK": lambda t: _pack("UNPACK", t),
    "CAST": _cast,
}


def cell(op: str, dtype: str) -> Cell:
    return BUILDERS[op](dtype)


def merge(cells: list[Cell]) -> Cell:
    """One graph holding every cell's graph side by side (one oracle run for many cells)."""
    net = Net()
    spans = []
    for c in cells:
        base = len(net.tensors)
        net.tensors += [dict(t, name=f"{t['name']}_{base}") for t in c.net.tensors]
        for o in c.net.ops:
            shifted = {k: [i + base if i >= 0 else i for i in o[k]] for k in ("inputs", "outputs")}
            net.ops.append({**o, **shifted})
        spans.append((len(net.inputs), len(c.net.inputs)))
        net.inputs += [i + base for i in c.net.inputs]
        net.outputs += [i + base for i in c.net.outputs]
        net.labels += c.net.labels

    def make(rng: np.random.Generator, batch: int) -> list[np.ndarray]:
        xs = []
        for c in cells:
            xs += (c.inputs or c.net.random_inputs)(rng, batch)
        return xs

    return Cell(net, make)
