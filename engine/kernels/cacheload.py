"""Loads a kernel from Numba's cache without parsing its LLVM module.

A cached function is its machine code (an ELF object) and its whole optimized module as LLVM bitcode,
kept so that a function compiled later can link it in. Numba parses that bitcode at every load, only
to learn the names the object defines: for the engine's kernels, modules of 100-400 KB, that was 0.32
s of the 0.85 s that loading SSD-MobileNet took on a 2-core Intel Xeon (27 kernels), more than any
other part. install() makes a load read the names from the object's symbol table instead and keep the
bitcode unparsed until a library links it (`_get_module_for_linking`), which a run of cached kernels
never does. An object that is not 64-bit little-endian ELF (another OS) loads as Numba loads it.

Numba also refreshes its target context before every cache load; the first refresh imports and
registers every lowering it has (0.2-0.3 s there), which compiling needs and running machine code does
not. A load here initializes only Numba's runtime (NRT: the allocator symbols a kernel calls) and
refreshes where the object calls a symbol nobody has defined yet; a compile refreshes for itself.
The engine's kernels make their caches at their first compile or load (_LazyCache): making one
writes a file into its directory to see that it can (0.2-0.3 ms each; a load defines some 200 kernels
and runs a tenth of them). And Numba's runtime module (NRT_incref, NRT_decref and the atomics they
use), which Numba compiles from LLVM IR in every process that initializes its runtime (40-55 ms of a
0.7 s load to first result), is cached too: its object code beside the kernels', keyed by the
versions of Numba and llvmlite and the CPU (_compile_nrt_functions). ENGINE_CACHELOAD=0 keeps Numba's
way.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
from pathlib import Path

import llvmlite
import llvmlite.binding as ll
import numba
from numba.core import caching, codegen, registry
from numba.core.cpu import CPUContext
from numba.core.dispatcher import Dispatcher
from numba.core.runtime import nrtdynmod, rtsys

_ELF64_LE = b"\x7fELF\x02\x01"
_SHT_SYMTAB = 2
_GLOBAL, _WEAK = 1, 2
_installed = False


def symbols(obj: bytes) -> tuple[set[str], set[str]] | None:
    """(the global and weak symbols an ELF64 little-endian object defines, those it calls and does not
    define); None for another format (or a table this cannot read: Numba's own load then reads the
    module)."""
    if not obj.startswith(_ELF64_LE) or len(obj) < 64:
        return None
    try:
        return _symbols(obj)
    except (struct.error, ValueError, UnicodeDecodeError):
        return None


def _symbols(obj: bytes) -> tuple[set[str], set[str]] | None:
    shoff, = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
    if shentsize != 64 or shoff + shnum * 64 > len(obj):
        return None
    sections = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + 64 * k) for k in range(shnum)]
    found: tuple[set[str], set[str]] | None = None  # (None while no symbol table is found)
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != _SHT_SYMTAB or entsize != 24 or link >= shnum or offset + size > len(obj):
            continue
        strtab, (defined, undefined) = sections[link][4], found or (set(), set())
        for at in range(offset + 24, offset + size, 24):  # (symbol 0 is the null symbol)
            name, info, _, shndx = struct.unpack_from("<IBBH", obj, at)
            if name and (shndx == 0 or info >> 4 in (_GLOBAL, _WEAK)):
                end = obj.index(b"\0", strtab + name)
                (undefined if shndx == 0 else defined).add(obj[strtab + name : end].decode())
        found = defined, undefined
    return found


def install() -> None:
    """Route the loads of Numba's object-code caches through _unserialize, the engine's kernels' caches
    through _LazyCache and the runtime module's compile through its cache (once per process, before
    the first kernel is defined)."""
    global _installed, _numba_unserialize, _numba_module_for_linking, _numba_load_overload
    if _installed or os.environ.get("ENGINE_CACHELOAD", "1") == "0":
        return
    global _numba_enable_caching, _numba_compile_nrt_functions
    library, cache = codegen.CPUCodeLibrary, caching.Cache
    needed = [(library, "_unserialize"), (library, "_get_module_for_linking"), (library, "_set_compiled_object"),
              (cache, "load_overload"), (cache, "_load_overload"), (cache, "_guard_against_spurious_io_errors"),
              (Dispatcher, "enable_caching"), (nrtdynmod, "compile_nrt_functions"), (nrtdynmod, "create_nrt_module")]
    if not all(hasattr(owner, f) for owner, f in needed):
        return  # a Numba this was not written for
    _numba_unserialize = library._unserialize.__func__
    _numba_module_for_linking = library._get_module_for_linking
    _numba_load_overload = cache.load_overload
    _numba_enable_caching = Dispatcher.enable_caching
    _numba_compile_nrt_functions = nrtdynmod.compile_nrt_functions
    library._unserialize = classmethod(_unserialize)
    library._get_module_for_linking = _get_module_for_linking
    cache.load_overload = _load_overload
    Dispatcher.enable_caching = _enable_caching
    nrtdynmod.compile_nrt_functions = _compile_nrt_functions
    _installed = True


def installed() -> bool:
    return _installed


def _enable_caching(self) -> None:
    """Dispatcher.enable_caching: the engine's kernels get a _LazyCache, other functions Numba's."""
    if self.py_func.__module__.startswith(_PACKAGE):
        self._cache = _LazyCache(self.py_func)
    else:
        _numba_enable_caching(self)


_PACKAGE = __name__.split(".")[0] + "."


class _LazyCache:
    """A dispatcher's FunctionCache, made where the dispatcher first uses it."""

    def __init__(self, py_func):
        self._py_func, self._cache = py_func, None

    def __getattr__(self, name: str):
        if self._cache is None:
            self._cache = caching.FunctionCache(self._py_func)
        return getattr(self._cache, name)


def _compile_nrt_functions(ctx):
    """nrtdynmod.compile_nrt_functions (the runtime module as a library), from its cached object code
    where a file with the right key and checksum holds it, else compiled and cached."""
    cg = ctx.codegen()
    try:
        path = _nrt_cache_file(cg)
    except (OSError, RuntimeError):  # (no cache folder Numba can write: compiled, as Numba does)
        path = None
    try:
        data = path.read_bytes() if path is not None else b""
        if data and hashlib.sha256(data[32:]).digest() == data[:32]:  # (a torn file is compiled anew)
            return cg.unserialize_library(pickle.loads(data[32:]))
    except (OSError, pickle.UnpicklingError, ValueError, TypeError, EOFError):
        pass  # (no file yet, or one this Numba cannot read)
    ir_mod, library = nrtdynmod.create_nrt_module(ctx)
    library.enable_object_caching()
    library.add_ir_module(ir_mod)
    library.finalize()
    if path is not None:
        payload = pickle.dumps(library.serialize_using_object_code())
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_bytes(hashlib.sha256(payload).digest() + payload)
            os.replace(tmp, path)
        except OSError:
            pass  # (a read-only cache)
    return library


def _nrt_cache_file(cg) -> Path:
    key = repr((numba.__version__, llvmlite.__version__, cg.magic_tuple()))
    folder = caching.FunctionCache(_nrt_cache_file)._cache_path  # (where Numba caches this module's functions)
    return Path(folder) / f"nrt-{hashlib.sha256(key.encode()).hexdigest()[:16]}.nbo"


def _load_overload(self, sig, target_context):
    """numba.core.caching.Cache.load_overload with NRT initialized in place of the context's refresh
    (for the CPU target; another target's loads are Numba's)."""
    if not isinstance(target_context, CPUContext):
        return _numba_load_overload(self, sig, target_context)
    rtsys.initialize(target_context)
    with self._guard_against_spurious_io_errors():
        return self._load_overload(sig, target_context)
    return None  # (the guard swallowed an I/O error)


def _unserialize(cls, cg, state):
    """numba.core.codegen.CPUCodeLibrary._unserialize, the object kind without parsing the bitcode."""
    name, kind, data = state
    found = symbols(data[0]) if kind == "object" else None
    if found is None:
        registry.cpu_target.target_context.refresh()
        return _numba_unserialize(cls, cg, state)
    (defined, undefined), (object_code, bitcode) = found, data
    if any(not ll.address_of_symbol(s) for s in undefined - cg._engine._defined_symbols):
        registry.cpu_target.target_context.refresh()  # adds the symbols some registries define
    self = cg.create_library(name)
    self.enable_object_caching()
    self._set_compiled_object(object_code)
    self._engine_bitcode = bitcode  # parsed where a library links this one
    self._finalize_final_module()
    cg._engine._defined_symbols |= defined
    return self


def _get_module_for_linking(self):
    bitcode = getattr(self, "_engine_bitcode", None)
    if self._shared_module is None and bitcode is not None:
        self._shared_module = ll.parse_bitcode(bitcode)
    return _numba_module_for_linking(self)
