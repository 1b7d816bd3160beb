"""engine/kernels/refops.py: which reference counting it removes from a module's text, which it keeps,
and that kernels built with it leave every array's count as they found it (a removed increment whose
decrement stayed would free an array in use; the reverse would leak it)."""

from __future__ import annotations

import sys
from types import FunctionType

import llvmlite.binding as ll
import numpy as np
import pytest
from numba import njit

import engine
from engine.kernels import refops
from engine.kernels.kernel import BUILDS, parallel_build
from tests.harness import threaded_build

HELPER = """
define linkonce_odr i32 @_ZN5numba4viewE(ptr %retptr, ptr %excinfo, ptr %arg.a.0) {
entry:
  call void @NRT_incref(ptr %arg.a.0)
  store ptr %arg.a.0, ptr %retptr, align 8
  ret i32 0
}
"""
TAIL = """
declare void @NRT_incref(ptr)
declare void @NRT_decref(ptr)
declare ptr @NRT_MemInfo_alloc_aligned(i64, i32)
"""


def kernel_ir(body: str = "", name: str = "_ZN6engine4kernE") -> str:
    """A kernel that takes a view of its argument (through HELPER) and counts its references."""
    return f"""
define i32 @{name}(ptr %retptr, ptr %excinfo, ptr %arg.x.0, ptr %arg.x.1, i64 %arg.x.2) {{
entry:
  %view = alloca ptr, align 8
  call void @NRT_incref(ptr %arg.x.0)
  %r = call i32 @_ZN5numba4viewE(ptr %view, ptr %excinfo, ptr %arg.x.0)
  %m = load ptr, ptr %view, align 8
{body}
  call void @NRT_decref(ptr %m)
  call void @NRT_decref(ptr %arg.x.0)
  ret i32 0
}}
"""


def refops_in(text: str) -> int:
    return text.count("@NRT_incref(ptr %") + text.count("@NRT_decref(ptr %")


def test_strips_a_kernel_and_the_helpers_it_alone_calls() -> None:
    text = kernel_ir() + HELPER + TAIL
    out, count = refops.strip(text)
    assert count == 4 and refops_in(out) == 0
    # the helper, stripped, is the kernel's own copy: internal, under its own name
    assert "define internal i32 @_ZN5numba4viewE.borrowed(" in out
    assert "call i32 @_ZN5numba4viewE.borrowed(" in out
    ll.parse_assembly(out).verify()


@pytest.mark.parametrize(
    "body, why",
    [
        ("  %n = call ptr @NRT_MemInfo_alloc_aligned(i64 8, i32 32)", "calls NRT_MemInfo_alloc_aligned"),
        ("  store ptr %m, ptr %arg.x.1, align 8", "store ptr %m, ptr %arg.x.1"),  # may outlive the call
        ("  store ptr %m, ptr %retptr, align 8", "returns a pointer"),
        ("  %f = load ptr, ptr %arg.x.1, align 8\n  call void %f(ptr %m)", "call void %f"),  # indirect
    ],
)
def test_keeps_what_it_cannot_vouch_for(body: str, why: str) -> None:
    refops.kept.clear()
    text = kernel_ir(body) + HELPER + TAIL
    out, count = refops.strip(text)
    assert count == 0 and out == text
    assert why in refops.kept["_ZN6engine4kernE"]


def test_keeps_a_helper_called_from_elsewhere() -> None:
    other = """
define i32 @_ZN7cpython5otherE(ptr %retptr, ptr %excinfo, ptr %arg.y.0) {
entry:
  %v = alloca ptr, align 8
  %r = call i32 @_ZN5numba4viewE(ptr %v, ptr %excinfo, ptr %arg.y.0)
  ret i32 0
}
"""
    refops.kept.clear()
    text = kernel_ir() + HELPER + other + TAIL
    assert refops.strip(text) == (text, 0)
    assert "called from elsewhere" in refops.kept["_ZN6engine4kernE"]


def test_leaves_other_code_alone() -> None:
    text = kernel_ir(name="_ZN8__main__4kernE") + HELPER + TAIL
    assert refops.strip(text) == (text, 0)


def _probe(x, out):
    for i in range(x.shape[0]):
        row = x[i]  # a view in a loop: a counted reference each iteration
        out[i] = _row_sum(row[1:], row)


@njit(inline="always")
def _row_sum(a, b):
    return a.sum() + b[0]


def test_a_kernel_compiled_with_it_counts_nothing_and_computes_the_same() -> None:
    """A function of the engine's (by its module) compiled here, without the cache."""
    if not refops.installed():
        pytest.skip("ENGINE_REFOPS=0")
    fn = FunctionType(_probe.__code__, _probe.__globals__, "refops_probe")
    fn.__module__ = "engine.kernels.refops_probe"
    before = refops.removed
    probe = njit(cache=False)(fn)
    x = np.arange(24, dtype=np.int64).reshape(6, 4)
    out = np.zeros(6, np.int64)
    probe(x, out)
    assert refops.removed > before
    np.testing.assert_array_equal(out, x[:, 1:].sum(axis=1) + x[:, 0])
    counts = sys.getrefcount(x), sys.getrefcount(out)
    for _ in range(1000):
        probe(x, out)
    assert (sys.getrefcount(x), sys.getrefcount(out)) == counts


def _arrays(args) -> list[np.ndarray]:
    found = []
    for a in args:
        if isinstance(a, np.ndarray):
            found.append(a)
        elif isinstance(a, tuple):
            found.extend(_arrays(a))
    return found


@pytest.mark.parametrize(
    "name, numerics",
    [
        ("mnist_uint8", "reference"),  # the parallel builds too (as test_team.py compiles them)
        ("mnist_uint8", "tflm"),
        ("zoo/vww_96_int8", "reference"),
        ("zoo/kws_ref_model", "litert"),  # XNNPACK's fp32 rule: the kernels' other variants
        ("zoo/str_ww_ref_model", "reference"),
        ("zoo/int16x8_mixed", "reference"),  # int16 kernels
        ("zoo/keras_lstm_mnist_ptq", "tflm"),  # TFLite Micro's integer LSTM
    ],
)
def test_every_kernel_call_leaves_reference_counts_as_they_were(name: str, numerics: str, models_dir) -> None:
    """Each of a plan's kernel calls, its serial and threaded builds (MNIST's parallel builds too: see
    harness.threaded_build), run many times: the Python reference count of every array it is given
    (NRT holds one through each call) ends where it began. (Every kernel call of the 19 shared models,
    and of 9 of them under each profile, was checked so once.)"""
    m = engine.load(models_dir / f"{name}.tflite", numerics=numerics)
    g = m.graph
    x = np.zeros((1, *g.tensors[g.inputs[0]].shape[1:]), g.tensors[g.inputs[0]].np_dtype)
    m.run(x)
    plan = m.plan(1)
    calls = [call for step in plan._bound_serial for call in step]  # (serial builds, their arguments)
    for fn, args in (call for step in plan._bound for call in step if call[0] in BUILDS):
        calls.append((threaded_build(fn), args))
        if name == "mnist_uint8" and numerics == "reference":
            calls.append((parallel_build(fn), args))
    for build, args in calls:
        arrays = _arrays(args)
        build(*args)
        counts = [sys.getrefcount(a) for a in arrays]
        for _ in range(50):
            build(*args)
        assert [sys.getrefcount(a) for a in arrays] == counts, build
