"""Every tensor of a model, read through the plan users run (buffer reuse on), against an oracle.

`tensors_through_plan` watches each op's outputs as the production plan produces them
(Model.run(observe=...)), before a later op may reuse their memory; `assert_every_tensor_equal`
compares each one with the oracle's tensor of the same name and fails on any tensor the oracle
does not hold: no tensor the engine computes goes unchecked.
"""

from __future__ import annotations

import numpy as np

import engine


def tensors_through_plan(m: engine.Model, xs) -> dict[str, np.ndarray]:
    """{tensor name: copy} of every non-constant tensor of one production run: the inputs, each op's
    outputs as they are produced, and the tensors folded at planning time."""
    seen: dict[int, np.ndarray] = {}

    def observe(op_index: int, outputs: dict[int, np.ndarray]) -> None:
        for i, a in outputs.items():
            assert i not in seen, f"tensor {i} produced twice"
            seen[i] = np.array(a)

    arrays = xs if isinstance(xs, (list, tuple)) else [xs]
    m.run(list(arrays), observe=observe)
    g = m.graph
    batch = arrays[0].shape[0]
    for i, a in m.plan(batch).values.items():
        if not g.tensors[i].is_const:
            seen[i] = np.array(a)
    for t, a in zip(m.inputs, arrays):
        seen[t.index] = np.asarray(a)
    return {g.tensors[i].name: a for i, a in seen.items()}


def assert_every_tensor_equal(m: engine.Model, xs, refs: list[dict]) -> int:
    """The engine's tensors for input xs (batch N) equal the oracle's: `refs` holds either one oracle
    result for the whole batch or N results of batch 1 (each tensor then compared slice by slice
    along its leading axis). Returns the number of tensors compared."""
    mine = tensors_through_plan(m, xs)
    assert_tensors_equal(mine, refs)
    outputs = m.run(list(xs) if isinstance(xs, (list, tuple)) else xs)
    for k, got in enumerate(outputs):
        parts = [r["outputs"][k] for r in refs]
        want = parts[0] if len(parts) == 1 else np.concatenate(parts)
        assert got.dtype == want.dtype and np.array_equal(got, want), f"output {k} differs"
    return len(mine)


def assert_tensors_equal(mine: dict[str, np.ndarray], refs: list[dict]) -> None:
    """{tensor name: array} of one engine run equals the oracle's (refs as assert_every_tensor_equal
    takes them); a tensor the oracle does not hold fails (it would go unchecked)."""
    unchecked = sorted(set(mine) - set(refs[0]["tensors"]))
    assert not unchecked, f"tensors the oracle does not hold (unchecked): {unchecked}"
    for name, got in mine.items():
        wants = [r["tensors"][name] for r in refs]
        want = wants[0] if len(wants) == 1 else np.concatenate(wants)
        assert got.dtype == want.dtype, f"tensor {name!r}: dtype {got.dtype} != {want.dtype}"
        assert got.shape == want.shape, f"tensor {name!r}: shape {got.shape} != {want.shape}"
        diff = np.count_nonzero(got != want)
        assert diff == 0, f"tensor {name!r} (batch {got.shape[0]}): {diff} of {got.size} values differ"
