"""Which int8 tensors a plan stores flipped: as uint8, each value + 128 (the same bits with the top one
flipped), its zero point + 128.

The GEMM reads uint8 data (kernels/gemm.py), so an int8 convolution first copies its input into that form
(kernels/conv.pad_input: one pass over the tensor, written and read back), unless it pads the input and
copies it anyway. A convolution writes any zero point and clamp for the same price, and every quantized
op computes on value - zero point: where an int8 tensor goes from a convolution to convolutions only,
the producer writes it flipped (its zero point and clamp + 128, stored unsigned: conv2d.rescale) and
the readers read it as uint8 in place (common.stored): the pass is gone and the arithmetic unchanged.
MobileNets' depthwise -> pointwise and pointwise -> pointwise pairs and MNIST's two layers are such.

Only the tensors' bytes change: observe runs see the int8 values (Plan un-flips what it hands out),
keep_all plans store nothing flipped, and graph inputs, outputs and state never are. The reference
profile only (the TFLite Micro and LiteRT profiles keep their own kernels' forms).
"""

from __future__ import annotations

from .graph import Graph

PRODUCERS = ("CONV_2D", "DEPTHWISE_CONV_2D")  # (their 8-bit paths write through conv2d.rescale)
READERS = ("CONV_2D",)  # input 0, read through common.stored


def flippable(g: Graph) -> set[int]:
    """The int8 tensors of g a production plan may store flipped (the module docstring): each written by
    one op of PRODUCERS on int8 data and read only as input 0 of READERS. The plan drops those whose
    producer it folds (computed at load from constants) before any reader is prepared."""
    if g.numerics != "reference":
        return set()
    writers: dict[int, list] = {}
    readers: dict[int, list] = {}
    for op in g.ops:
        for i in op.outputs:
            writers.setdefault(i, []).append(op)
        for k, i in enumerate(op.inputs):
            if i >= 0:
                readers.setdefault(i, []).append((op, k))
    pinned = {*g.inputs, *g.outputs}
    chosen = set()
    for i, ops in writers.items():
        t, op = g.tensors[i], ops[0]
        if len(ops) != 1 or op.type not in PRODUCERS or op.outputs != [i] or i in pinned:
            continue
        if t.dtype != "int8" or t.is_const or t.is_variable or g.tensors[op.inputs[0]].dtype != "int8":
            continue
        reads = readers.get(i, [])
        if reads and all(r.type in READERS and k == 0 and r.inputs.count(i) == 1 for r, k in reads):
            chosen.add(i)
    return chosen
