"""engine/kernels/inlinecopy.py: an inlined helper's IR is copied with one scope, not one per block."""

from __future__ import annotations

import numba
import numpy as np
from numba.core import ir
from numba.core.untyped_passes import InlineInlinables

from engine.kernels import inlinecopy


@numba.njit(inline="always")
def _helper(a, n):  # a loop and a branch: several blocks
    s = 0
    for i in range(n):
        if a[i] > 0:
            s += a[i]
        else:
            s -= 1
    return s


def _compile_and_count_scope_copies(monkeypatch) -> tuple[int, int]:
    """(the result of a fresh function that inlines _helper, the scopes its compile copied)."""
    copies = []
    plain = inlinecopy._scope_deepcopy

    def counting(self, memo):
        new = plain(self, memo)
        if all(new is not seen for seen in copies):
            copies.append(new)
        return new

    monkeypatch.setattr(ir.Scope, "__deepcopy__", counting)
    fresh = numba.njit(lambda a: _helper(a, len(a)))  # not cached: compiles here
    return fresh(np.array([3, -2, 5], np.int64)), len(copies)


def test_an_inlining_copies_the_scope_once_per_ir_copy(monkeypatch):
    assert inlinecopy.installed()
    got, shared = _compile_and_count_scope_copies(monkeypatch)
    assert got == 7
    assert shared == 4  # Numba copies the helper's IR twice per inlining: its scope and the parent scope

    # Numba's own pass: a copy of the scope per block of each copy
    monkeypatch.setattr(InlineInlinables, "run_pass", inlinecopy._numba_run_pass)
    got, per_block = _compile_and_count_scope_copies(monkeypatch)
    assert got == 7
    assert per_block > 3 * shared  # (14 blocks: 28)
