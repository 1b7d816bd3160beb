"""Plan rewrites that replace a chain of prepared steps by one cheaper step with the same outputs.

SiLU (swish): y = MUL(x, LOGISTIC(x)) on 8-bit per-tensor data is one function of the 256 values of x.
Where a MUL's inputs are a tensor x and LOGISTIC(x), of one shape, and the LOGISTIC output feeds
nothing else and is not a graph output, the MUL step becomes a 256-entry table lookup on x and the
LOGISTIC step runs only when a run observes every op (Model.run(observe=...)). The table is built by
running the two ops' own prepared kernels (for the graph's numerics profile) on the 256 values of x,
so it equals the unfused steps bit for bit by construction.

Segmentation heads: ARG_MAX (ARG_MIN) over the channels of a uint8 RESIZE_BILINEAR that feeds nothing
else (DeepLab's 33 x 33 x 21 logits resized to 513 x 513, then the class of each pixel) becomes one
step that resizes each pixel's channels in registers and keeps only their index
(ops/resize_bilinear.bilinear_arg_u8: the resize kernel's own arithmetic and the ARG_MAX kernel's
keys); the 5.5 MB resized tensor is never written or read back, and the RESIZE_BILINEAR step runs only
when observed. The fused step lists the resize's input among its inputs, so it stays alive.

Convolution then max pool: a MAX_POOL_2D of an 8-bit CONV_2D's output that feeds nothing else and is not
a graph output, its windows without padding and never sharing a row (stride = height), becomes one
step of conv2d.prepare_pooled (kernels/conv.conv2d_pooled: each row of windows' convolution rows
computed into a per-thread band and pooled there); the convolution's output is never written whole or
read back, and the CONV_2D step runs only when observed. Where the convolution does not requantize in
the micro-kernel (no AVX-512, a filter dilated along x) the pair stays two steps.

Plans that keep every tensor (keep_all) are not rewritten.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import EngineError
from .graph import Graph, Op
from .kernels.lookup import table_runner
from .ops import conv2d, kernel_for
from .ops.common import Prepared, pool_geometry, view
from .ops.resize_bilinear import ARG_ROW, bilinear_arg_u8, float_path
from .profiles import litert, profile_of

BYTE_TYPES = ("int8", "uint8")


def fuse(steps: list, g: Graph, shapes: dict, keep_all: bool) -> None:
    """Rewrite a plan's steps in place (see the module docstring); keep_all plans stay as they are."""
    if keep_all:
        return
    producer = {}  # tensor -> the step that computes it
    readers: dict[int, int] = {}  # tensor -> how many op inputs read it
    for op in g.ops:
        for i in op.inputs:
            readers[i] = readers.get(i, 0) + 1
    for step in steps:
        for i in step.outputs:
            producer[i] = step
        op = g.ops[step.op_index]
        if op.type == "MUL":
            _fuse_silu(step, op, g, producer, readers, shapes)
        elif op.type in ("ARG_MAX", "ARG_MIN"):
            _fuse_resize_arg(step, op, g, producer, readers, shapes)
        elif op.type == "MAX_POOL_2D":
            _fuse_conv_pool(step, op, g, producer, readers, shapes)


def _fuse_silu(step, op: Op, g: Graph, producer: dict, readers: dict, shapes: dict) -> None:
    pair = _silu_pair(op, g, producer, readers, shapes)
    if pair is None:
        return
    logistic_step, x_at = pair
    table = _silu_table(g.ops[logistic_step.op_index], op, g, x_at, len(shapes[op.outputs[0]]))
    if table is None:
        return
    _to_lookup(step, table, x_at, math.prod(shapes[op.outputs[0]]))
    logistic_step.observed_only = True


def _fuse_resize_arg(step, op: Op, g: Graph, producer: dict, readers: dict, shapes: dict) -> None:
    """ARG_MAX / ARG_MIN over the last axis of a uint8 RESIZE_BILINEAR's output that nothing else reads,
    where the engine resizes in float32 (ops/resize_bilinear.float_path) and the channels fit
    bilinear_arg_u8 (ARG_ROW): one step of that kernel (see the module docstring)."""
    resized, axis = op.inputs[0], op.inputs[1]
    resize_step = producer.get(resized)
    if resize_step is None or resize_step.observed_only or g.ops[resize_step.op_index].type != "RESIZE_BILINEAR":
        return
    if readers.get(resized, 0) != 1 or resized in g.outputs or g.tensors[resized].dtype != "uint8":
        return
    axis_t = g.tensors[axis]
    if not axis_t.is_const or np.size(axis_t.data) != 1 or int(np.asarray(axis_t.data).reshape(-1)[0]) not in (3, -1):
        return
    resize = g.ops[resize_step.op_index]
    source = resize.inputs[0]
    ins = [shapes.get(i) if i >= 0 else None for i in resize.inputs]
    values = [g.tensors[i].data if i >= 0 and g.tensors[i].is_const else None for i in resize.inputs]
    try:
        path = float_path(resize, g, ins, values)
    except EngineError:
        return
    if path is None or path[2][3] > ARG_ROW:
        return
    ys, xs, (n, h, w, c) = path
    kernel = bilinear_arg_u8.pick(math.prod(shapes[resized]))
    flip = np.uint8(0 if op.type == "ARG_MAX" else 0xFF)
    dims = (n, h, w, c, ARG_ROW)
    at = len(step.inputs)
    step.inputs.append(source)  # (alive until this step: the planner reads lifetimes off the inputs)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(kernel, (view(inputs[at]), view(outputs[0]), ys, xs, dims, flip))]

    def run(inputs: list, outputs: list, scratch: list) -> None:
        for fn, args in bind(inputs, outputs, scratch):
            fn(*args)

    step.run, step.bind, step.scratch_spec, step.work, step.warmup = run, bind, [], 0, None
    resize_step.observed_only = True


def _fuse_conv_pool(step, op: Op, g: Graph, producer: dict, readers: dict, shapes: dict) -> None:
    """MAX_POOL_2D of an 8-bit CONV_2D's output that nothing else reads, its windows without padding
    and rows never shared (sh == fh): one step of conv2d.prepare_pooled (see the module docstring)."""
    conv_out = op.inputs[0]
    conv_step = producer.get(conv_out)
    if conv_step is None or conv_step.observed_only or g.ops[conv_step.op_index].type != "CONV_2D":
        return
    if readers.get(conv_out, 0) != 1 or conv_out in g.outputs or g.tensors[conv_out].dtype not in BYTE_TYPES:
        return
    conv = g.ops[conv_step.op_index]
    try:
        _, pool = pool_geometry(op, g, [shapes[conv_out]])
    except EngineError:
        return
    if pool.ph or pool.pw or pool.sh != pool.fh:
        return
    ins = [shapes.get(i) if i >= 0 else None for i in conv.inputs]
    values = [g.tensors[i].data if i >= 0 and g.tensors[i].is_const else None for i in conv.inputs]
    prepared = conv2d.prepare_pooled(conv, g, ins, values, pool)
    if prepared is None or tuple(prepared.out_shapes[0]) != tuple(shapes[op.outputs[0]]):
        return
    at = len(step.inputs)
    step.inputs.extend(conv.inputs)  # (alive until this step: the planner reads lifetimes off the inputs)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return prepared.bind(inputs[at:], outputs, scratch)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        prepared.run(inputs[at:], outputs, scratch)

    step.run, step.bind, step.scratch_spec, step.work, step.warmup = run, bind, prepared.scratch, 0, None
    conv_step.observed_only = True


def _silu_pair(op: Op, g: Graph, producer: dict, readers: dict, shapes: dict):
    """(the LOGISTIC step, position of x among the MUL's inputs) when op is MUL(x, LOGISTIC(x)) as the
    module docstring says, else None."""
    if len(op.inputs) != 2 or min(op.inputs) < 0:
        return None
    for x_at in (0, 1):
        x, s = op.inputs[x_at], op.inputs[1 - x_at]
        step = producer.get(s)
        if step is None or step.observed_only:
            continue
        logistic = g.ops[step.op_index]
        if logistic.type != "LOGISTIC" or logistic.inputs[0] != x or x == s:
            continue
        if readers.get(s, 0) != 1 or s in g.outputs or shapes.get(x) != shapes.get(s):
            continue
        ts = [g.tensors[i] for i in (x, s, op.outputs[0])]
        if any(t.dtype not in BYTE_TYPES or t.scale.size != 1 for t in ts):
            continue
        if profile_of(g) == "litert" and not litert.delegated(op, g):
            continue  # LiteRT's builtin MUL: NEON blocks and a scalar tail (position-dependent)
        return step, x_at
    return None


def _silu_table(logistic: Op, mul: Op, g: Graph, x_at: int, rank: int) -> np.ndarray | None:
    """MUL(x, LOGISTIC(x)) for the 256 raw bytes of x (index = raw byte), computed by the two ops'
    prepared kernels on a tensor of 256 elements; None where either refuses that shape."""
    shape = (1,) * (rank - 1) + (256,)
    x = np.arange(256, dtype=np.uint8).view(g.tensors[logistic.inputs[0]].np_dtype).reshape(shape)
    try:
        (s,) = _run(logistic, g, [x])
        ins = [x, s] if x_at == 0 else [s, x]
        (y,) = _run(mul, g, ins)
    except EngineError:
        return None
    return np.ascontiguousarray(y.reshape(256))


def _run(op: Op, g: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    """op's outputs on these inputs, through its own prepare() and run()."""
    prepared: Prepared = kernel_for(op)(op, g, [a.shape for a in ins], [None] * len(ins))
    outs = [np.zeros(s, g.tensors[i].np_dtype) for i, s in zip(op.outputs, prepared.out_shapes)]
    scratch = [np.zeros(s, d) for s, d in prepared.scratch]
    prepared.run_serial(ins, outs, scratch)
    return outs


def _to_lookup(step, table: np.ndarray, x_at: int, size: int) -> None:
    """The MUL step made a table lookup on input x_at (its inputs stay listed: buffer lifetimes are
    unchanged)."""
    lookup = table_runner(table, size)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return lookup.bind([inputs[x_at]], outputs, scratch)

    def run(inputs: list, outputs: list, scratch: list) -> None:
        lookup([inputs[x_at]], outputs, scratch)

    step.run, step.bind, step.scratch_spec, step.work, step.warmup = run, bind, [], 0, None
