"""Copies an inlined helper's IR once per inlining, not once per block of it.

The kernels call many small helpers with `inline="always"`: Numba inlines them into its own IR at each
call site (the InlineInlinables pass). It copies the helper's IR twice per call site, deep-copying each
block by itself, and every variable in a block refers to the function's scope (all its variables), so
each block copies the whole scope again: blocks x variables per copy. After helpers inline helpers, a
scope holds hundreds of variables; compiling SSD-MobileNet's kernels spent a third of its time in those
copies (2.7 M variables copied for 108 inlinings).

install() makes the copies made during that pass share one copy of each scope, as the blocks of the
source IR share one scope: the copy is made once per inlining. The source IR of a call site is made
afresh for it, so no two copies need apart scopes. Outside the pass a scope copies as before.
ENGINE_INLINECOPY=0 keeps Numba's way.
"""

from __future__ import annotations

import copy
import os
import threading

from numba.core import ir
from numba.core.untyped_passes import InlineInlinables

_copies = threading.local()  # .shared: {id(source scope): (source, its copy)} while the pass runs
_installed = False


def install() -> None:
    """Patch Scope.__deepcopy__ and the inlining pass (once per process, before the first compile)."""
    global _installed, _numba_run_pass
    if _installed or os.environ.get("ENGINE_INLINECOPY", "1") == "0":
        return
    if hasattr(ir.Scope, "__deepcopy__") or not hasattr(InlineInlinables, "run_pass"):
        return  # a Numba this was not written for
    _numba_run_pass = InlineInlinables.run_pass
    ir.Scope.__deepcopy__ = _scope_deepcopy
    InlineInlinables.run_pass = _run_pass
    _installed = True


def installed() -> bool:
    return _installed


def _run_pass(self, state) -> bool:
    """InlineInlinables.run_pass with the scopes' copies shared (a helper's own pass, run while its IR is
    made, shares among its copies)."""
    outer = getattr(_copies, "shared", None)
    _copies.shared = {}
    try:
        return _numba_run_pass(self, state)
    finally:
        _copies.shared = outer


def _scope_deepcopy(self: ir.Scope, memo: dict) -> ir.Scope:
    """copy.deepcopy of a scope: the default field-by-field copy, made once per scope while the pass runs."""
    shared = getattr(_copies, "shared", None)
    if shared is not None and id(self) in shared:
        return shared[id(self)][1]
    new = ir.Scope.__new__(ir.Scope)
    memo[id(self)] = new
    new.__dict__.update(copy.deepcopy(self.__dict__, memo))
    if shared is not None:
        shared[id(self)] = (self, new)  # (holds the source, so its id is not reused while the pass runs)
    return new
