"""The README's supported-ops table is true: every "yes" cell runs a one-op graph equal to the reference
kernels (batch 1 and 2), every blank cell is refused at load, and the blank cells the reference does run
are exactly the ones the README names as not implemented."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import engine
from engine.ops import MODULES
from tests.harness import cached_reference
from tests.op_cells import BUILDERS, cell, merge
from tests.oracle import OracleError, reference_run_many

README = Path(__file__).resolve().parent.parent / "README.md"
COLUMNS = ("uint8", "int8", "int16", "float32", "int32", "int64")
# blank cells the reference kernels run (README: int16 SUM, whose output the reference leaves undefined)
REFERENCE_RUNS = {("SUM", "int16")}
# in tables and tests of their own (README; tests/test_lstm*.py, test_ops_transpose_conv.py,
# test_ops_batch_matmul.py): a TRANSPOSE_CONV's output_shape constant fixes its batch
NOT_IN_TABLE = {
    "TFLite_Detection_PostProcess",
    "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "TRANSPOSE_CONV",
    "BATCH_MATMUL",
}


def table() -> dict[tuple[str, str], bool]:
    """{(op, type): supported} from the README's table."""
    text = README.read_text()
    section = text[text.index("## Supported operators") :]
    cells = {}
    for line in section.splitlines():
        if not line.startswith("| ") or line.startswith(("| op ", "| ---")):
            if cells and not line.startswith("|"):
                break
            continue
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        for op in re.split(r",\s*", parts[0]):
            for dtype, mark in zip(COLUMNS, parts[1:7]):
                assert mark == "" or mark.startswith("yes"), f"README cell {op} {dtype}: {mark!r}"
                cells[(op, dtype)] = mark.startswith("yes")
    return cells


def test_table_lists_every_op():
    ops = {op for op, _ in table()}
    assert ops == set(MODULES) - NOT_IN_TABLE
    assert ops <= set(BUILDERS)


@pytest.mark.parametrize("dtype", COLUMNS)
def test_yes_cells_equal_the_reference(dtype, kernel_build):
    """(Each cell on its kernels' serial builds, and threaded: every call split between the threads.)"""
    ops = sorted(op for (op, t), yes in table().items() if t == dtype and yes)
    combined = merge([cell(op, dtype) for op in ops])
    model = combined.net.build()
    sets = combined.input_sets(40 + COLUMNS.index(dtype))
    refs = cached_reference(model, sets)
    m = engine.load(model)
    for xs, ref in zip(sets, refs):
        got = m.run(list(xs))
        for label, g, w in zip(combined.net.labels, got, ref["outputs"]):
            assert g.dtype == w.dtype and g.shape == w.shape, (
                f"{label}: {g.dtype}{g.shape} vs {w.dtype}{w.shape}"
            )
            assert np.array_equal(g, w, equal_nan=g.dtype.kind == "f"), f"{label} (batch {xs[0].shape[0]})"


BLANKS = sorted(k for k, yes in table().items() if not yes)


@pytest.mark.parametrize("op, dtype", BLANKS)
def test_blank_cells_are_refused(op, dtype):
    c = cell(op, dtype)
    with pytest.raises(engine.UnsupportedError, match=op):
        engine.load(c.net.build())
    if (op, dtype) in REFERENCE_RUNS:
        reference_run_many(c.net.build(), c.input_sets(50, (1,)))
    else:
        with pytest.raises(OracleError):
            reference_run_many(c.net.build(), c.input_sets(50, (1,)))


@pytest.mark.parametrize("dtype", COLUMNS)
def test_npz_export_carries_every_cell(dtype, tmp_path):
    """Every "yes" cell's graph written as .npz (scripts/export_tflite.py's format) loads and runs with the
    same results as the .tflite (whose results equal the reference: test_yes_cells_equal_the_reference)."""
    from engine.formats.npz import save_npz
    from engine.formats.tflite import import_tflite

    ops = sorted(op for (op, t), yes in table().items() if t == dtype and yes)
    combined = merge([cell(op, dtype) for op in ops])
    model = combined.net.build()
    path = tmp_path / "cells.npz"
    save_npz(import_tflite(model, "cells"), path)
    a, b = engine.load(model), engine.load(path)
    for xs in combined.input_sets(70, (2,)):
        for label, x, y in zip(combined.net.labels, a.run(list(xs)), b.run(list(xs))):
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), label
