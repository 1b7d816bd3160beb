"""Static facts about a graph: multiply-accumulates per layer (used by inspect and the benchmarks)."""

from __future__ import annotations

import numpy as np

from .graph import Graph, Op


def op_macs(g: Graph, op: Op, shapes: dict[int, tuple]) -> int:
    """Multiply-accumulates of one op at the given tensor shapes (0 for ops without a MAC loop)."""
    if op.type == "TRANSPOSE_CONV":  # every input value times every tap of every output channel
        filt = g.tensors[op.inputs[1]].shape
        return int(np.prod(shapes[op.inputs[2]], dtype=np.int64)) * int(filt[0] * filt[1] * filt[2])
    if op.type == "BATCH_MATMUL":  # each output sums k products
        lhs = shapes[op.inputs[0]]
        k = lhs[-2] if op.options.get("adj_x", False) else lhs[-1]
        return int(np.prod(shapes[op.outputs[0]], dtype=np.int64)) * int(k)
    if op.type not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return 0
    out = int(np.prod(shapes[op.outputs[0]], dtype=np.int64))
    filt = g.tensors[op.inputs[1]].shape
    if op.type == "CONV_2D":
        return out * int(filt[1] * filt[2] * filt[3])
    if op.type == "DEPTHWISE_CONV_2D":
        return out * int(filt[1] * filt[2])
    return out * int(filt[1])


def model_macs(model, batch: int = 1) -> int:
    """Total multiply-accumulates of one run of an engine.Model at a batch size."""
    plan = model.plan(batch)
    return sum(op_macs(model.graph, op, plan.shapes) for op in model.graph.ops)
