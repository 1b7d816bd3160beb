"""Drops the reference counting a kernel does on the arrays it is given, before LLVM optimizes it.

Numba counts references to an array's memory with atomic increments and decrements (NRT_incref,
NRT_decref: one `lock` instruction each, in a function LLVM may not inline). Each view, each inlined
helper's argument and each slice inside a loop adds a pair, and Numba's own pruning (refprune) keeps
the pairs it cannot match within a block or a diamond: depthwise_conv2d on a 6 x 6 x 128 map spent
38 % of its 2.3 us in them, vww (MLPerf Tiny) 26 % of a run, and the calls stop LLVM from moving
loads out of loops.

A kernel allocates nothing: every array it touches is an argument or a view of one, and the caller
holds a reference to each argument for the whole call (Numba's convention: arguments are borrowed;
the wrapper called from Python holds one too). Counting those references within the call changes
nothing, provided the function creates no array memory, returns no pointer and stores none where it
would outlive the call. strip() checks exactly that on the LLVM text of each engine function after
Numba's first (inlining) module pass, for the function and every function it calls in the module
(views are helpers returning a counted reference), and removes every NRT_incref/NRT_decref there;
helpers also called from elsewhere keep theirs, and those stripped become internal copies under
their own names (the JIT cannot resolve a call to another library's copy). Anything it cannot read
(an indirect call, an unknown external taking pointers, a runtime call that allocates) leaves the
function as Numba made it. (Stores are read by their type; an LLVM memcpy is taken as copying data,
which is all a kernel copies.) Only modules that define an engine function are read: other Numba code in
the process is untouched. ENGINE_REFOPS=0 leaves Numba's counting (for comparison).
"""

from __future__ import annotations

import os
import re

import llvmlite.binding as ll
from numba.core import codegen

_DEFINE = re.compile(r"^define [^@]*@(\"[^\"]+\"|[-\w.$]+)\(")
_CALLEE = re.compile(r"\bcall [^@%]*?([@%](?:\"[^\"]+\"|[-\w.$]+))\(")
_REFOP = re.compile(r"^\s*(?:tail |musttail |notail )?call void @NRT_(?:incref|decref)\(")
_STORE = re.compile(r"^\s*store (?:volatile )?(.*), ptr (%[^\s,]+)(?:,.*)?$")
_OPERAND = re.compile(r"\bptr (%[^\s,]+)")  # a pointer operand (types hold no %names)
_DEF = re.compile(r"^\s*(%[-\w.$]+|%\"[^\"]+\") = (\w+)")
_ENGINE = "_ZN6engine"  # how Numba mangles a function of the engine package
_REGION = "__numba_parfor_gufunc_"  # a parallel region's body (of an engine kernel, in these modules)
# runtime functions a kernel may call: counting (removed), and its exceptions' machinery
# (NRT_Allocate: raw memory, for an exception's runtime arguments)
_RUNTIME = {"NRT_incref", "NRT_decref", "NRT_Allocate", "NRT_Free"}
_EXTERNAL = (
    "llvm.",
    "numba_attempt_nocopy_reshape",
    "numba_unpickle",
    "numba_runtime_build_excinfo_struct",
    "numba_do_raise",
    "numba_gil_ensure",
    "numba_gil_release",
    "PyErr_",
    "Py_IncRef",
    "Py_DecRef",
    "PyBytes_FromStringAndSize",
    "PyUnicode_FromString",
    "get_thread_id",  # (the threading layer's)
    "get_num_threads",
    # a parallel region's launch: the schedule's raw memory, and the pool (pool.py) calling the body
    "get_sched_size",
    "allocate_sched",
    "deallocate_sched",
    "do_scheduling_",
    "numba_parallel_for",
)
_installed = False
removed = 0  # refops removed in this process (tests and curiosity)
kept: dict[str, str] = {}  # each engine function whose counting stayed -> why


def install() -> None:
    """Route Numba's final module optimization through strip() (once per process; before any kernel
    is compiled: cached kernels keep what they were compiled with)."""
    global _installed
    if _installed or os.environ.get("ENGINE_REFOPS", "1") == "0":
        return
    if not hasattr(codegen.CPUCodeLibrary, "_optimize_final_module"):  # a Numba this was not written for
        return
    codegen.CPUCodeLibrary._optimize_final_module = _optimize_final_module
    _installed = True


def installed() -> bool:
    return _installed


def _optimize_final_module(self) -> None:
    """numba.core.codegen.CPUCodeLibrary._optimize_final_module with strip() between its two passes."""
    cg = self._codegen
    cheap, cheap_pb = cg._module_pass_manager(
        loop_vectorize=cg._loopvect, slp_vectorize=False, opt=cg._opt_level, cost="cheap"
    )
    with self._recorded_timings.record("Module passes (cheap optimization for refprune)", cheap_pb):
        cheap.run(self._final_module, cheap_pb)
    text = str(self._final_module)
    if _ENGINE in text:
        stripped, count = strip(text)
        if count:
            module = ll.parse_assembly(stripped)
            module.name = self._final_module.name
            module.verify()
            self._final_module = module
    full, full_pb = cg._module_pass_manager()
    with self._recorded_timings.record("Module passes (full optimization)", full_pb):
        full.run(self._final_module, full_pb)


class _Function:
    def __init__(self, name: str, first: int, last: int, lines: list[str]):
        self.name, self.first, self.last = name, first, last  # the define line, the closing brace
        self.linked = lines[first].startswith("define linkonce_odr ")  # a copy of another library's
        self.callees: set[str] = set()
        self.readable = True  # creates no array memory, stores no pointer where it outlives the call
        self.unread = ""  # else the first line that says otherwise
        self.returns_pointer = False
        defs: dict[str, tuple[str, str]] = {}
        for line in lines[first + 1 : last]:
            m = _DEF.match(line)
            if m:
                defs[m.group(1)] = (m.group(2), line)
        for line in lines[first + 1 : last]:
            for callee in _CALLEE.findall(line):
                if callee.startswith("%"):
                    self._unreadable(line)  # an indirect call
                else:
                    self.callees.add(callee[1:].strip('"'))
            m = _STORE.match(line)
            if line.lstrip().startswith("store ") and not m:
                self._unreadable(line)
            elif m and "ptr" in m.group(1) and not m.group(1).endswith(" null"):
                base = _base(m.group(2), defs)
                if base == "%retptr":
                    self.returns_pointer = True
                elif base != "%excinfo" and not base.startswith("alloca"):
                    self._unreadable(line)

    def _unreadable(self, line: str) -> None:
        if self.readable:
            self.readable, self.unread = False, line.strip()[:200]


def _base(name: str, defs: dict) -> str:
    """What a pointer is derived from: "alloca" (the stack, or raw memory for an exception's arguments
    that it boxes: numbers and strings), or the parameter or value it offsets."""
    seen = 0
    while name in defs and seen < 64:
        kind, line = defs[name]
        if kind == "alloca" or "@NRT_Allocate(" in line:  # the stack, or an exception's arguments
            return "alloca"
        if kind != "getelementptr":
            return name
        m = _OPERAND.search(line, line.index("getelementptr"))
        if m is None:
            return name
        name = m.group(1)
        seen += 1
    return name


def strip(text: str) -> tuple[str, int]:
    """The module's text with the refops of each engine function that may go without them (and of
    the helpers it alone calls) removed, and how many went."""
    global removed
    lines = text.split("\n")
    functions: dict[str, _Function] = {}
    start = None
    for n, line in enumerate(lines):
        if start is None:
            m = _DEFINE.match(line)
            if m:
                start, name = n, m.group(1).strip('"')
        elif line.startswith("}"):
            functions[name] = _Function(name, start, n, lines)
            start = None
    callers: dict[str, set[str]] = {}
    for f in functions.values():
        for c in f.callees:
            callers.setdefault(c, set()).add(f.name)
    drop: set[int] = set()
    renamed: dict[str, str] = {}
    for f in functions.values():
        if not f.name.startswith(_ENGINE) and _REGION not in f.name or f.name.startswith("_ZN7cpython"):
            continue
        tree, why = _tree(f.name, functions)
        if f.returns_pointer:
            tree, why = None, "returns a pointer"
        for g in tree - {f.name} if tree else ():
            if callers.get(g, set()) - tree or not functions[g].linked:
                tree, why = None, f"{g} is called from elsewhere"
                break
        if tree is None:
            kept[f.name] = why
            continue
        for g in tree:
            h = functions[g]
            drop.update(n for n in range(h.first + 1, h.last) if _REFOP.match(lines[n]))
            if g != f.name:
                renamed[g] = g + ".borrowed"
    if not drop:
        return text, 0
    removed += len(drop)
    out = [line for n, line in enumerate(lines) if n not in drop]
    if renamed:
        names = re.compile('@("?)(' + "|".join(re.escape(g) for g in renamed) + r")\1(?=\()")
        out = [names.sub(lambda m: f"@{m.group(1)}{renamed[m.group(2)]}{m.group(1)}", line) for line in out]
        out = [
            line.replace("define linkonce_odr ", "define internal ", 1)
            if line.startswith("define linkonce_odr ") and ".borrowed" in line
            else line
            for line in out
        ]
    return "\n".join(out), len(drop)


def _tree(name: str, functions: dict[str, _Function]) -> tuple[set[str] | None, str]:
    """name and the module's functions it calls, transitively, if all of them may go without counting;
    else None and why."""
    tree: set[str] = set()
    todo = [name]
    while todo:
        g = todo.pop()
        if g in tree:
            continue
        f = functions.get(g)
        if f is None or not f.readable:
            return None, f"{g}: {f.unread}" if f else f"{g} is not defined"
        tree.add(g)
        for c in f.callees:
            if c in functions and not c.startswith(("NRT_", "nrt_")):
                todo.append(c)
            elif c not in _RUNTIME and not c.startswith(_EXTERNAL):
                return None, f"{g} calls {c}"
    return tree, ""
