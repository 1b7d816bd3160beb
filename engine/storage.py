"""Which int8 tensors a plan stores flipped: as uint8, each value + 128 (the same bits with the top one
flipped), its zero point + 128.

The GEMM reads uint8 data (kernels/gemm.py), so an int8 convolution first copies its input into that form
(kernels/conv.pad_input: one pass over the tensor, written and read back), unless it pads the input and
copies it anyway. A convolution writes any zero point and clamp for the same price, and every quantized
op computes on value - zero point: where an int8 tensor goes from a convolution to convolutions only,
the producer writes it flipped (its zero point and clamp + 128, stored unsigned: conv2d.rescale) and
the readers read it as uint8 in place (common.stored): the pass is gone and the arithmetic unchanged.
MobileNets' depthwise -> pointwise and pointwise -> pointwise pairs and MNIST's two layers are such.
ADD, a table over its inputs' bytes, reads and writes either form alike, so residual streams (MobileNet
v2's block outputs, each read by the next expansion and the next ADD) are stored flipped too; its
kernels take one type, so an ADD's inputs and output are all flipped or none.

Only the tensors' bytes change: observe runs see the int8 values (Plan un-flips what it hands out),
keep_all plans store nothing flipped, and graph inputs, outputs and state never are. The reference and
TFLite Micro profiles (whose convolutions and ADD compute alike); not LiteRT's, whose XNNPACK tables
are built per type (profiles/litert_xnn.py).
"""

from __future__ import annotations

from .graph import Graph, folds

PRODUCERS = ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD")  # (conv2d.rescale; ADD: add.prepare_add_like)
READERS = {"CONV_2D": (0,), "ADD": (0, 1)}  # the inputs each reads through common.stored


def flippable(g: Graph) -> set[int]:
    """The int8 tensors of g a production plan may store flipped (the module docstring): each written by
    one op of PRODUCERS on int8 data and read only as READERS read, every ADD's tensors alike; the plan
    folds (computes at load) none of them."""
    if g.numerics not in ("reference", "tflm"):
        return set()
    writers: dict[int, list] = {}
    readers: dict[int, list] = {}
    for op in g.ops:
        for i in op.outputs:
            writers.setdefault(i, []).append(op)
        for k, i in enumerate(op.inputs):
            if i >= 0:
                readers.setdefault(i, []).append((op, k))
    known = {t.index for t in g.tensors if t.is_const}
    for op in g.ops:
        if folds(op, known):
            known.update(op.outputs)
    pinned = {*g.inputs, *g.outputs} | known
    chosen = set()
    for i, ops in writers.items():
        t, op = g.tensors[i], ops[0]
        if len(ops) != 1 or op.type not in PRODUCERS or op.outputs != [i] or i in pinned:
            continue
        if t.dtype != "int8" or t.is_const or t.is_variable or g.tensors[op.inputs[0]].dtype != "int8":
            continue
        reads = readers.get(i, [])
        if reads and all(k in READERS.get(r.type, ()) for r, k in reads):
            chosen.add(i)
    adds = [[*op.inputs, *op.outputs] for op in g.ops if op.type == "ADD"]
    while True:  # (dropping one ADD's tensors may leave another ADD mixed)
        mixed = [ts for ts in adds if chosen.intersection(ts) and not chosen.issuperset(ts)]
        if not mixed:
            return chosen
        chosen.difference_update(*mixed)
