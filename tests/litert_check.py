"""numerics="litert" against LiteRT's default interpreter (OpResolverType.AUTO, XNNPACK applied), shared
by the litert tests: every tensor the default interpreter exposes, and the delegate's partitioning.

    compare_litert(model, input_sets) -> Comparison (mismatches, tensors and elements compared, ...)
    check_litert(model, input_sets, labels=None)  asserts 0 differing elements and the same partition
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

import engine
from engine.profiles import litert
from tests.oracle import litert_run_many


@dataclass
class Comparison:
    tensors: int = 0  # tensor values compared (one per tensor and input set)
    elements: int = 0
    differing: int = 0  # elements
    mismatches: list = field(default_factory=list)  # (set, tensor name, differing, size)
    # (op index, type, engine says delegated, LiteRT did, the rule's reason) for op types with a rule
    partition: list = field(default_factory=list)


def _graph(m):
    return m.graph


_CACHE: dict[str, tuple[list[dict], list[dict]]] = {}


def litert_oracle(model: bytes, input_sets: list[list[np.ndarray]]) -> tuple[list[dict], list[dict]]:
    """The default interpreter's runs with every tensor (preserve_all: one partition per op) and with
    whole partitions (outputs only), memoized on the model and inputs (the kernel-build variants of a
    test compare with one oracle run)."""
    h = hashlib.sha256(model)
    for xs in input_sets:
        for x in xs:
            h.update(repr((x.dtype.str, x.shape)).encode())
            h.update(np.ascontiguousarray(x).tobytes())
    key = h.hexdigest()
    if key not in _CACHE:
        _CACHE[key] = (
            litert_run_many(model, input_sets, preserve_all=True),
            litert_run_many(model, input_sets, preserve_all=False),
        )
    return _CACHE[key]


def compare_litert(model: bytes, input_sets: list[list[np.ndarray]], numerics: str = "litert") -> Comparison:
    """Run every input set through the engine (numerics="litert", or another profile to show that it
    differs) and LiteRT's default interpreter; compare each tensor the interpreter exposes, and the
    final outputs of a run with whole partitions."""
    refs, finals = litert_oracle(model, input_sets)
    m = engine.load(model, numerics=numerics)
    res = Comparison()
    g = _graph(m)
    taken = set(finals[0]["delegated"])
    for op in g.ops:
        if op.type not in litert.RULES:  # no rule yet: the engine assumes builtin (reported elsewhere)
            continue
        mine = litert.delegated(op, g)
        if mine != (op.index in taken):
            res.partition.append((op.index, op.type, mine, op.index in taken, litert.refusal(op, g)))
    inputs = {g.tensors[i].name for i in g.inputs}
    for k, (xs, ref, final) in enumerate(zip(input_sets, refs, finals)):
        x = list(xs) if len(xs) > 1 else xs[0]
        got = m.run(x, keep_all=True)
        for name, want in ref["tensors"].items():
            if name in inputs or name not in got:
                continue
            have = got[name]
            assert have.shape == want.shape, f"set {k}, {name}: shape {have.shape} != LiteRT's {want.shape}"
            d = int(np.count_nonzero(have != want))
            res.tensors += 1
            res.elements += want.size
            res.differing += d
            if d:
                res.mismatches.append((k, name, d, want.size))
        for j, (have, want) in enumerate(zip(m.run(x), final["outputs"])):
            d = int(np.count_nonzero(have != want))
            res.tensors += 1
            res.elements += want.size
            res.differing += d
            if d:
                res.mismatches.append((k, f"output {j}", d, want.size))
    return res


def check_litert(model: bytes, input_sets: list[list[np.ndarray]]) -> Comparison:
    """compare_litert, asserting the same partition and 0 differing elements."""
    res = compare_litert(model, input_sets)
    assert not res.partition, (
        f"delegation differs from LiteRT's (index, type, engine, LiteRT, why): {res.partition}"
    )
    assert res.differing == 0, f"{res.differing} of {res.elements} elements differ: {res.mismatches[:10]}"
    assert res.tensors > 0
    return res
