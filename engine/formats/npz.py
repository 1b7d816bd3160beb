"""The engine's own model file: one .npz holding every constant array plus a JSON graph.

Layout: `graph.json` (UTF-8 JSON as a uint8 array) and `t<index>` for each constant tensor.
Loaded with allow_pickle=False and validated field by field before anything runs.
"""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np

from ..errors import ModelFormatError, UnsupportedError
from ..graph import DTYPES, Graph, Op, Tensor

FORMAT_VERSION = 1


def graph_to_json(g: Graph) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "description": g.description,
        "inputs": g.inputs,
        "outputs": g.outputs,
        "tensors": [
            {
                "name": t.name,
                "shape": list(t.shape),
                "dtype": t.dtype,
                "const": t.is_const,
                "scale": [float(s) for s in t.scale],
                "zero_point": [int(z) for z in t.zero_point],
                "quant_axis": t.quant_axis,
                "variable": t.is_variable,
            }
            for t in g.tensors
        ],
        "ops": [
            {
                "type": o.type,
                "version": o.version,
                "inputs": o.inputs,
                "outputs": o.outputs,
                "options": o.options,
                "intermediates": o.intermediates,
            }
            for o in g.ops
        ],
    }


def save_npz(g: Graph, path, provenance: dict | None = None) -> None:
    """Write g as .npz; provenance (e.g. the source's sha256, the engine version) goes into graph.json."""
    arrays = {f"t{t.index}": t.data for t in g.tensors if t.is_const}
    meta = graph_to_json(g)
    if provenance is not None:
        meta["provenance"] = provenance
    meta = json.dumps(meta).encode()
    arrays["graph.json"] = np.frombuffer(meta, np.uint8)
    np.savez(path, **arrays)


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ModelFormatError(f"{where}: {msg}")


def _int(v, where: str) -> int:
    _check(isinstance(v, int) and not isinstance(v, bool), where, f"expected an integer, got {v!r}")
    return v


def _option(v, where: str):
    """Option values hold only what TFLite options hold: bools, strings, int32s, finite floats, lists."""
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        _check(-(1 << 31) <= v < (1 << 31), where, f"value {v} out of the int32 range")
        return v
    if isinstance(v, float):
        _check(math.isfinite(v), where, f"value {v} is not finite")
        return v
    _check(isinstance(v, list), where, f"value {v!r} has an unsupported type")
    for x in v:
        _check(not isinstance(x, (list, dict)), where, "nested lists are not options")
    return [_option(x, where) for x in v]


MAX_GRAPH_JSON = 64 << 20  # bytes of graph.json (the SSD's is about 60 KB)
DEFLATE_MAX_RATIO = 1100  # deflate cannot expand more than ~1032:1: a larger claim is a forged header


def _mib(nbytes: int) -> str:
    return f"{nbytes / (1 << 20):.1f} MiB"


class _Members:
    """The .npz members, read one at a time and only when graph.json asks for them: each member's
    declared size (zip header) and .npy header (dtype, shape) are checked before its data is
    decompressed, so a small file cannot make the engine allocate what it does not declare."""

    def __init__(self, data: bytes, source: str, budget: int | None):
        self.source = source
        self.expected: dict[str, tuple] = {}  # member -> (dtype, shape) that graph.json declares
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except Exception as e:  # noqa: BLE001 (zipfile raises BadZipFile, ValueError, OSError...)
            raise ModelFormatError(f"{source}: not a readable .npz ({type(e).__name__}: {e})") from None
        self.infos = {i.filename.removesuffix(".npy"): i for i in infos}
        _check(len(self.infos) == len(infos), source, "repeated member names")
        for name, info in self.infos.items():
            ratio = info.file_size / max(info.compress_size, 1)
            _check(
                info.file_size < 1 << 20 or ratio <= DEFLATE_MAX_RATIO,
                source,
                f"member {name!r} claims {info.file_size} bytes from {info.compress_size} (ratio {ratio:.0f})",
            )
        total = sum(i.file_size for i in infos)
        if budget is not None and total > budget:
            big = max(infos, key=lambda i: i.file_size)
            raise UnsupportedError(  # engine/budget.py's rule, before anything is decompressed
                f"{source}: its arrays declare {_mib(total)}, over the memory budget of "
                f"{_mib(budget)} (largest: {big.filename!r}, {_mib(big.file_size)})"
            )

    def __contains__(self, key: str) -> bool:
        return key in self.infos

    def __iter__(self):
        return iter(self.infos)

    def __getitem__(self, key: str) -> np.ndarray:
        where = f"{self.source}: member {key!r}" + (f" (tensor {key[1:]})" if key in self.expected else "")
        info = self.infos[key]
        try:
            with self.zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0
                if version != (1, 0):
                    read_header = np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read_header(f, max_header_size=10000)
                header = f.tell()
                nbytes = math.prod(shape) * dtype.itemsize
                _check(not dtype.hasobject, where, "holds Python objects")
                _check(header + nbytes == info.file_size, where, "size differs from its .npy header")
                if key in self.expected:
                    want_dtype, want_shape = self.expected[key]
                    _check(dtype == want_dtype, where, f"array dtype {dtype} != declared {want_dtype}")
                    _check(shape == want_shape, where, f"array shape {shape} != declared {list(want_shape)}")
                a = np.frombuffer(f.read(nbytes), dtype, math.prod(shape))
        except ModelFormatError:
            raise
        except Exception as e:  # noqa: BLE001 (zipfile, zlib and numpy's header parser)
            raise ModelFormatError(f"{where}: not a readable .npy array ({type(e).__name__}: {e})") from None
        a = a.reshape(shape[::-1]).T if fortran else a.reshape(shape)
        return np.array(a)  # writable, owns its memory

    def declare(self, meta) -> None:
        """Remember the dtype and shape graph.json gives each constant (checked again when built)."""
        tensors = meta.get("tensors") if isinstance(meta, dict) else None
        for i, tj in enumerate(tensors if isinstance(tensors, list) else []):
            if not (isinstance(tj, dict) and tj.get("const") and str(tj.get("dtype")) in DTYPES):
                continue
            shape = tj.get("shape")
            if isinstance(shape, list) and all(type(d) is int for d in shape):
                self.expected[f"t{i}"] = (np.dtype(DTYPES[str(tj["dtype"])]), tuple(shape))


def load_npz(data: bytes, source: str = "<npz>", budget: int | None = None) -> Graph:
    members = _Members(data, source, budget)
    _check("graph.json" in members, source, "no graph.json entry")
    _check(members.infos["graph.json"].file_size <= MAX_GRAPH_JSON, source, "graph.json is too large")
    raw = members["graph.json"]
    _check(raw.dtype == np.uint8 and raw.ndim == 1, source, "bad graph.json")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except RecursionError:
        raise ModelFormatError(f"{source}: graph.json is nested too deeply") from None
    except ValueError as e:  # UnicodeDecodeError, JSONDecodeError, integers of thousands of digits
        raise ModelFormatError(f"{source}: graph.json is not valid JSON ({e})") from None
    del members.infos["graph.json"]
    try:
        members.declare(meta)
        return _graph_from_json(meta, members, source)
    except ModelFormatError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as e:
        raise ModelFormatError(f"{source}: malformed graph.json ({type(e).__name__}: {e})") from None


def _graph_from_json(meta: dict, arrays: dict, source: str) -> Graph:
    _check(isinstance(meta, dict), source, "graph.json is not an object")
    version = meta.get("format_version")
    _check(isinstance(version, int), source, "no format_version")
    _check(
        version <= FORMAT_VERSION,
        source,
        f"format version {version} is newer than this engine's ({FORMAT_VERSION})",
    )
    tensors = []
    used = set()
    for i, tj in enumerate(meta["tensors"]):
        where = f"{source}: tensor {i}"
        dtype = tj["dtype"]
        _check(dtype in DTYPES, where, f"unknown dtype {dtype!r}")
        shape = tuple(_int(d, where) for d in tj["shape"])
        scale = np.asarray(tj.get("scale", []), np.float32)
        zp = np.asarray([_int(z, where) for z in tj.get("zero_point", [])], np.int64)
        _check(scale.ndim == 1 and zp.shape == scale.shape, where, "scale and zero_point lengths differ")
        t = Tensor(i, str(tj["name"]), shape, dtype, None, scale, zp, _int(tj.get("quant_axis", 0), where))
        t.is_variable = tj.get("variable", False)  # absent in files written before variables existed
        _check(isinstance(t.is_variable, bool), where, "variable must be true or false")
        if tj.get("const"):
            key = f"t{i}"
            _check(key in arrays, where, f"constant array {key} missing")
            a = arrays[key]
            _check(a.dtype == np.dtype(DTYPES[dtype]), where, f"array dtype {a.dtype} != declared {dtype}")
            _check(a.shape == shape, where, f"array shape {a.shape} != declared {list(shape)}")
            t.data = a
            used.add(key)
        tensors.append(t)
    extra = set(arrays) - used
    _check(not extra, source, f"unexpected arrays {sorted(extra)[:5]}")
    n = len(tensors)

    def idx(values, where: str, allow_missing: bool) -> list[int]:
        out = [_int(v, where) for v in values]
        for v in out:
            _check((allow_missing and v == -1) or 0 <= v < n, where, f"tensor index {v} out of range")
        return out

    ops = []
    for k, oj in enumerate(meta["ops"]):
        where = f"{source}: op {k}"
        options = oj.get("options", {})
        _check(isinstance(options, dict), where, "options is not an object")
        options = {str(key): _option(v, f"{where} option {key!r}") for key, v in options.items()}
        ops.append(
            Op(
                k,
                str(oj["type"]),
                idx(oj["inputs"], where, True),
                idx(oj["outputs"], where, False),
                options,
                int(oj.get("version", 1)),
                idx(oj.get("intermediates", []), where, False),
            )
        )
    return Graph(
        tensors,
        ops,
        idx(meta["inputs"], f"{source}: inputs", False),
        idx(meta["outputs"], f"{source}: outputs", False),
        str(meta.get("description", "")),
    )


MAX_TENSOR_BYTES = 1 << 31  # flatbuffer dims are int32; no real model has a 2 GB tensor


def validate_graph(g: Graph, source: str) -> None:
    """Each tensor has at most one producer, and no op writes a graph input or a constant.

    Kernels write their outputs in place without bounds checks: an op that wrote into the caller's
    input array, or into a tensor of another shape, would corrupt memory.
    """
    if len(set(g.inputs)) != len(g.inputs):
        raise ModelFormatError(f"{source}: graph inputs {g.inputs} repeat a tensor")
    for i in g.inputs:
        if g.tensors[i].is_const:
            raise ModelFormatError(f"{source}: graph input {g.tensors[i].describe()} is a constant")
    producer: dict[int, int] = {}
    for op in g.ops:
        if not op.outputs:
            raise ModelFormatError(f"{source}: {op.where()} has no outputs")
        for i in op.outputs:
            t = g.tensors[i]
            if i in g.inputs:
                raise ModelFormatError(f"{source}: {op.where()} writes graph input {t.describe()}")
            if t.is_const:
                raise ModelFormatError(f"{source}: {op.where()} writes constant {t.describe()}")
            if t.is_variable:  # variables are state inputs an op updates in place, never outputs
                raise ModelFormatError(f"{source}: {op.where()} writes {t.describe()} as an output")
            if i in producer:
                raise ModelFormatError(
                    f"{source}: {op.where()} writes {t.describe()}, written by op {producer[i]}"
                )
            producer[i] = op.index


def validate_quantization(g: Graph, source: str) -> None:
    """Shapes sane; scales finite and positive, zero points inside their dtype, per-channel lengths right."""
    for t in g.tensors:
        where = f"{source}: {t.describe()}"
        if any(d < 0 for d in t.shape):
            raise ModelFormatError(f"{where}: negative dimension")
        if math.prod(int(d) for d in t.shape) * t.np_dtype.itemsize > MAX_TENSOR_BYTES:
            raise ModelFormatError(f"{where}: more than {MAX_TENSOR_BYTES >> 30} GiB")
        if not t.quantized:
            continue
        if not all(math.isfinite(s) and s > 0 for s in t.scale.tolist()):
            raise ModelFormatError(f"{where}: scale must be finite and > 0, got {t.scale[:4].tolist()}")
        if t.zero_point.size != t.scale.size:
            raise ModelFormatError(f"{where}: {t.zero_point.size} zero points for {t.scale.size} scales")
        if t.dtype in ("int8", "uint8", "int16"):
            info = np.iinfo(DTYPES[t.dtype])
            if t.zero_point.min() < info.min or t.zero_point.max() > info.max:
                raise ModelFormatError(f"{where}: zero point outside the {t.dtype} range")
        if t.scale.size > 1:
            on_axis = 0 <= t.quant_axis < len(t.shape) and t.shape[t.quant_axis] == t.scale.size
            # TFLite Micro's person detector gives 1-D biases the filter's axis (3): the channel is the only dim
            bias_like = len(t.shape) == 1 and t.shape[0] == t.scale.size
            if not (on_axis or bias_like):
                raise ModelFormatError(
                    f"{where}: {t.scale.size} per-channel scales do not match dimension {t.quant_axis}"
                )
