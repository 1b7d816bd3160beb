"""engine/kernels/cacheload.py: the names read from a cached object's symbol table are those Numba
read from its module, and a function loaded that way runs, and links into a function compiled later."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import llvmlite.binding as ll
import numpy as np
import pytest

import engine
from engine.kernels import cacheload
from tests.test_ops_conv import SCHEMES
from tests.test_ops_conv_rows import strip_net

ROOT = Path(__file__).resolve().parent.parent


def cached_kernels() -> list[tuple[bytes, bytes]]:
    """(object, bitcode) of each kernel a run of a net of convolutions calls, as Numba's cache holds
    them (the run compiled and saved them, or loaded them)."""
    net = strip_net(SCHEMES[0])
    model = engine.load(net.build())
    model.run(list(net.random_inputs(np.random.default_rng(1), 1)))
    found = []
    for fn in {fn for step in model.plan(1)._bound_serial for fn, _ in step}:
        for sig in fn.overloads:
            data = fn._cache._cache_file.load(fn._cache._index_key(sig, fn.targetctx.codegen()))
            _, kind, (obj, bitcode) = data[0]  # the library's state (CodeLibrary.serialize_using_object_code)
            assert kind == "object"
            found.append((obj, bitcode))
    assert found
    return found


@pytest.mark.skipif(not cacheload.installed(), reason="ENGINE_CACHELOAD=0")
def test_names_from_the_object_are_the_modules() -> None:
    for obj, bitcode in cached_kernels():
        found = cacheload.symbols(obj)
        assert found is not None, "not an ELF64 object"
        names = found[0]
        module = ll.parse_bitcode(bitcode)
        defined = {g.name for g in [*module.functions, *module.global_variables] if not g.is_declaration}
        entries = {f.name for f in module.functions if not f.is_declaration and "6engine" in f.name}
        assert entries and entries <= names <= defined, (entries - names, names - defined)


def test_symbols_refuses_other_formats() -> None:
    assert cacheload.symbols(b"\xcf\xfa\xed\xfe" + bytes(60)) is None  # Mach-O
    assert cacheload.symbols(b"") is None
    assert cacheload.symbols(b"\x7fELF\x02\x01" + bytes(58)) is None  # no symbol table
    truncated = b"\x7fELF\x02\x01" + bytes(34) + (10**6).to_bytes(8, "little") + bytes(14) + b"\x40\x00\x01\x00"
    assert cacheload.symbols(truncated) is None  # its section table lies past its end


CACHED = """
from numba import njit

@njit(cache=True)
def twice(x):
    return 2 * x
"""

RUN = """
import sys
sys.path.insert(0, sys.argv[1])
from numba.core import base
refreshes = []
numba_refresh = base.BaseContext.refresh
def refresh(self):
    refreshes.append(type(self).__name__)
    numba_refresh(self)
base.BaseContext.refresh = refresh

import engine.kernels  # installs the cache loader
from engine.kernels import cacheload
from numba import njit
from cached_fn import twice

assert twice(21) == 42
loaded = twice.stats.cache_hits
if loaded:  # the second process: loaded without its module, which the caller below links in
    lib = twice.overloads[twice.signatures[0]].library
    assert cacheload.installed() and lib._shared_module is None and lib._engine_bitcode
    assert not refreshes, refreshes  # nor Numba's lowerings

@njit
def caller(x):
    return twice(x) + 1

assert caller(20) == 41 and refreshes  # a compile refreshes for itself
print(sum(loaded.values()))
"""


def test_a_cached_function_loads_runs_and_links(tmp_path: Path) -> None:
    if os.environ.get("ENGINE_CACHELOAD", "1") == "0":
        pytest.skip("ENGINE_CACHELOAD=0")
    (tmp_path / "cached_fn.py").write_text(textwrap.dedent(CACHED))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    hits = []
    for _ in range(2):
        run = [sys.executable, "-c", RUN, str(tmp_path)]
        out = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        hits.append(int(out.stdout.split()[-1]))
    assert hits == [0, 1]



NRT_RUN = """
import sys
from numba.core.runtime import nrtdynmod

made = []  # each compile of Numba's runtime module
create = nrtdynmod.create_nrt_module
nrtdynmod.create_nrt_module = lambda ctx: (made.append(1), create(ctx))[1]
import numpy as np
from numba import njit

import engine  # (its pool's functions initialize Numba's runtime)


@njit
def allocating(k):  # compiled now: links the runtime module, calls its NRT_decref
    return np.arange(k).sum() + np.ones(k).size


assert allocating(10) == 55
print(len(made))
"""


def test_numbas_runtime_module_loads_from_its_cache(tmp_path: Path) -> None:
    """The runtime module is compiled where no cached file holds it, loaded where one does (and a
    function compiled afterwards links it and runs), compiled again where the file is corrupt."""
    if os.environ.get("ENGINE_CACHELOAD", "1") == "0":
        pytest.skip("ENGINE_CACHELOAD=0")
    cache = tmp_path / "cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}

    def compiles() -> int:
        run = [sys.executable, "-c", NRT_RUN]
        out = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert out.returncode == 0, out.stderr[-2000:]
        return int(out.stdout.split()[-1])

    assert compiles() == 1
    (saved,) = cache.rglob("nrt-*.nbo")
    assert compiles() == 0
    data = bytearray(saved.read_bytes())
    data[-100] ^= 0xFF
    saved.write_bytes(bytes(data))
    assert compiles() == 1
    assert compiles() == 0
