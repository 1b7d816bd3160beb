"""The package's shape stays as the README's "Layout" describes it (issue 9): checked on the source, with ast.

- no function in engine/ takes more than 12 parameters or runs over 100 lines (kernels group their
  parameters in named tuples; long functions are split where their decisions split);
- every @kernel is one prange loop, its last statement (a team build shares that loop between the
  threads and runs the code before it on each: kernel.py), and writes nothing before it unless it
  says team=False;
- engine/ops/ holds op modules (each with a prepare()) and the named helpers ops share, nothing else;
- the layers import downwards only: numerics imports nothing of the engine but itself, kernels only numerics
  (and themselves), formats only graph, errors and budget.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parent.parent / "engine"
MAX_PARAMETERS = 12
MAX_LINES = 100
# engine/ops/ modules that are not ops: helpers several ops share, each named for what it holds
OPS_HELPERS = {"__init__.py", "common.py", "broadcast.py", "quant_params.py"}


def _sources() -> list[Path]:
    return sorted(ENGINE.rglob("*.py"))


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def _parameters(fn: ast.FunctionDef) -> int:
    a = fn.args
    return (
        len(a.posonlyargs) + len(a.args) + len(a.kwonlyargs) + (a.vararg is not None) + (a.kwarg is not None)
    )


def test_no_function_takes_more_than_12_parameters():
    over = [
        f"{p.relative_to(ENGINE.parent)}:{fn.lineno} {fn.name}() takes {_parameters(fn)}"
        for p in _sources()
        for fn in _functions(p)
        if _parameters(fn) > MAX_PARAMETERS
    ]
    assert not over, "group parameters in a named tuple:\n" + "\n".join(over)


def test_no_function_runs_over_100_lines():
    over = [
        f"{p.relative_to(ENGINE.parent)}:{fn.lineno} {fn.name}() runs {fn.end_lineno - fn.lineno + 1} lines"
        for p in _sources()
        for fn in _functions(p)
        if fn.end_lineno - fn.lineno + 1 > MAX_LINES
    ]
    assert not over, "split these where their decisions split:\n" + "\n".join(over)


def _is_kernel(fn: ast.FunctionDef) -> bool:
    def name(d):
        d = d.func if isinstance(d, ast.Call) else d
        return d.id if isinstance(d, ast.Name) else d.attr if isinstance(d, ast.Attribute) else None

    return any(name(d) == "kernel" for d in fn.decorator_list)


def _team_off(fn: ast.FunctionDef) -> bool:
    return any(
        isinstance(d, ast.Call)
        and any(k.arg == "team" and ast.literal_eval(k.value) is False for k in d.keywords)
        for d in fn.decorator_list
    )


def _prange_loops(node) -> list:
    return [
        n
        for n in ast.walk(node)
        if isinstance(n, ast.For)
        and isinstance(n.iter, ast.Call)
        and getattr(n.iter.func, "id", None) == "prange"
    ]


def test_every_kernel_is_one_prange_loop_and_writes_nothing_before_it():
    kernels = [(p, fn) for p in _sources() for fn in _functions(p) if _is_kernel(fn)]
    assert len(kernels) > 50
    wrong = []
    for p, fn in kernels:
        where = f"{p.relative_to(ENGINE.parent)}:{fn.lineno} {fn.name}()"
        loops = _prange_loops(fn)
        body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        if len(loops) != 1 or body[-1] is not loops[0]:
            if not _team_off(fn):
                wrong.append(
                    f"{where}: {len(loops)} prange loops, the last statement {type(body[-1]).__name__}"
                )
            continue
        for s in body[:-1]:  # before the loop: names bound, nothing stored into memory
            stores = [
                t
                for n in ast.walk(s)
                if isinstance(n, (ast.Assign, ast.AugAssign))
                for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                if not isinstance(t, (ast.Name, ast.Tuple))
            ]
            if stores and not _team_off(fn):
                wrong.append(f"{where}: writes {ast.unparse(stores[0])} before its loop")
    assert not wrong, "a kernel's team build would be wrong:\n" + "\n".join(wrong)


def test_ops_holds_op_modules_and_named_helpers_only():
    for p in sorted((ENGINE / "ops").glob("*.py")):
        if p.name in OPS_HELPERS:
            continue
        names = {fn.name for fn in _functions(p)}
        assert "prepare" in names, (
            f"engine/ops/{p.name} is no op module (no prepare()): kernels go to engine/kernels/"
        )


def _engine_imports(path: Path) -> set[str]:
    """The engine packages (first component below engine/) that a module imports."""
    package = path.relative_to(ENGINE).parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[: len(package) - node.level + 1])
            parts = base + (node.module.split(".") if node.module else [])
            if parts:
                found.add(parts[0])
            else:  # from . import x
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("engine."):
            found.add(node.module.split(".")[1])
    return found


@pytest.mark.parametrize(
    ("layer", "allowed"),
    [
        ("numerics", {"numerics"}),
        ("kernels", {"kernels", "numerics"}),
        ("formats", {"errors", "graph", "budget"}),
    ],
)
def test_layers_import_downwards(layer, allowed):
    for p in sorted((ENGINE / layer).glob("*.py")):
        extra = {m.removesuffix(".py") for m in _engine_imports(p)} - allowed - {layer}
        assert not extra, (
            f"engine/{layer}/{p.name} imports {sorted(extra)}: only {sorted(allowed)} sit below it"
        )
