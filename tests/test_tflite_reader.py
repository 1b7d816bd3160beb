"""The .tflite reader (engine/formats/tflite.py, flatbuffer.py) reads what the `tflite` package reads.

The reader walks TFLite's tables by slot with its own bounds-checked flatbuffer code, and takes the
options' fields from tflite_schema.py (generated from the package). The reference here reads the same
bytes through the package's generated accessors (flatbuffers' own Python runtime):
- every shared and zoo model: tensors (names, shapes, types, quantization, constant bytes), ops
  (codes, versions, inputs, outputs, intermediates, every option), graph inputs and outputs;
- every builtin options table, each of its fields written with a random value, and with none written
  (the schema's defaults);
- shape signatures and SignatureDefs (the Interpreter's);
- corrupted files: the reader either reads what the package reads or raises ModelFormatError.
"""

from __future__ import annotations

import inspect
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import tflite

from engine.errors import ModelFormatError, UnsupportedError
from engine.formats import tflite_schema
from engine.formats.tflite import import_tflite, shape_signatures, signature_defs
from tests import tflite_builder as tb

ROOT = Path(__file__).resolve().parents[1]


def _models(shared: Path) -> list[Path]:
    return sorted((shared / "models").glob("*.tflite")) + sorted((shared / "models" / "zoo").glob("*.tflite"))


# -- the reference: the tflite package's accessors ---------------------------------------------------


def _reference_options(op) -> dict:
    kind = op.BuiltinOptionsType()
    if kind == 0:
        return {}
    cls_name = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}[kind]
    cls = getattr(tflite, cls_name)
    obj = cls()
    table = op.BuiltinOptions()
    obj.Init(table.Bytes, table.Pos)
    options = {}
    for name, fn in vars(cls).items():
        if name.startswith(("_", "GetRootAs")) or name in ("Init",) or name.endswith(("BufferHasIdentifier", "IsNone", "Length")):
            continue
        params = list(inspect.signature(fn).parameters)
        if name.endswith("AsNumpy"):
            value = getattr(obj, name)()
            options[tb.snake(name[: -len("AsNumpy")])] = value.tolist() if isinstance(value, np.ndarray) else value
        elif params == ["self"]:
            value = getattr(obj, name)()
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            elif not isinstance(value, (bool, int, float, type(None))):
                continue  # a sub-table: not an option the engine reads
            options[tb.snake(name)] = value
    names = {"padding": vars(tflite.Padding), "fused_activation_function": vars(tflite.ActivationFunctionType)}
    for field, enum in names.items():
        if field in options:
            options[field] = {v: k for k, v in enum.items() if not k.startswith("_")}.get(options[field], options[field])
    return options


def _reference(buf: bytes) -> dict:
    from flatbuffers import flexbuffers

    m = tflite.Model.GetRootAs(buf, 0)
    sg = m.Subgraphs(0)
    types = {v: k.lower() for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
    tensors = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        q = t.Quantization()
        quant = None
        if q is not None and not q.ScaleIsNone() and q.ScaleLength() > 0:
            zp = q.ZeroPointAsNumpy().tolist() if not q.ZeroPointIsNone() else [0] * q.ScaleLength()
            quant = (q.ScaleAsNumpy().astype(np.float32).tolist(), zp, q.QuantizedDimension())
        b = m.Buffers(t.Buffer())
        data = b.DataAsNumpy().tobytes() if not b.DataIsNone() and b.DataLength() > 0 else None
        name = t.Name().decode("utf-8", "replace") if t.Name() else f"tensor_{i}"
        shape = tuple(t.ShapeAsNumpy().tolist()) if not t.ShapeIsNone() and t.ShapeLength() else ()
        tensors.append((name, shape, types[t.Type()], quant, bool(t.IsVariable()), data))
    codes = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        name = tflite.utils.BUILTIN_OPCODE2NAME[max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())]
        codes.append(((oc.CustomCode() or b"").decode() if name == "CUSTOM" else name, oc.Version()))
    ops = []
    for i in range(sg.OperatorsLength()):
        o = sg.Operators(i)
        options = _reference_options(o)
        if not o.CustomOptionsIsNone() and o.CustomOptionsLength() > 0:
            custom = flexbuffers.Loads(o.CustomOptionsAsNumpy().tobytes())
            options.update({k: float(v) if isinstance(v, float) else v for k, v in custom.items()})
        vec = [[] if none() else get().tolist() for none, get in (
            (o.InputsIsNone, o.InputsAsNumpy), (o.OutputsIsNone, o.OutputsAsNumpy),
            (o.IntermediatesIsNone, o.IntermediatesAsNumpy))]
        ops.append((*codes[o.OpcodeIndex()], *vec, options))
    desc = m.Description().decode("utf-8", "replace") if m.Description() else ""
    return {"tensors": tensors, "ops": ops, "inputs": sg.InputsAsNumpy().tolist(),
            "outputs": sg.OutputsAsNumpy().tolist(), "description": desc}


def _read(buf: bytes) -> dict:
    g = import_tflite(buf)
    tensors = []
    for t in g.tensors:
        quant = (t.scale.tolist(), t.zero_point.tolist(), t.quant_axis) if t.scale.size else None
        data = None if t.data is None else t.data.tobytes()
        tensors.append((t.name, tuple(t.shape), t.dtype, quant, t.is_variable, data))
    ops = [(o.type, o.version, o.inputs, o.outputs, o.intermediates, o.options) for o in g.ops]
    return {"tensors": tensors, "ops": ops, "inputs": g.inputs, "outputs": g.outputs, "description": g.description}


def _assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, wanted in want.items():
        if key in ("tensors", "ops"):
            assert len(got[key]) == len(wanted), key
            for k, (a, b) in enumerate(zip(got[key], wanted)):
                assert a == b, f"{key} {k}: {a!r:.300} != {b!r:.300}"
        else:
            assert got[key] == wanted, key


# -- the checks ------------------------------------------------------------------------------------


def test_schema_is_the_packages():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import tflite_schema as generator
    finally:
        sys.path.pop(0)
    assert generator.render() == Path(tflite_schema.__file__).read_text(), "run python scripts/tflite_schema.py"


def test_models_read_as_the_package_reads_them(shared: Path):
    models = _models(shared)
    assert len(models) >= 15
    for path in models:
        buf = path.read_bytes()
        _assert_same(_read(buf), _reference(buf))


def _random_value(kind: str, rng: random.Random):
    if kind == "?":
        return True
    if kind in "fd":
        return float(np.float32(rng.uniform(-100, 100)))
    bits = {"b": 8, "B": 8, "h": 16, "H": 16, "i": 32, "I": 32, "q": 64, "Q": 64}[kind]
    lo, hi = (0, 2**bits - 1) if kind.isupper() else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return rng.randint(lo, hi) or 1  # (not the default of 0: a written field)


def _op_for(cls_name: str) -> str | None:
    return next((op for op in tb.OPCODES if tb.options_type(op) == cls_name), None)


@pytest.mark.parametrize("written", [True, False], ids=["random", "defaults"])
def test_every_options_table_reads_back(written: bool):
    rng = random.Random(7)
    checked = 0
    for cls_name, fields in tflite_schema.OPTIONS.values():
        op = _op_for(cls_name)
        if op is None:
            continue
        options = {}
        for name, _, kind, _ in fields if written else ():
            if kind == "s":
                options[name] = "name" + str(rng.randint(0, 99))
            elif kind[0] == "[":
                options[name] = [_random_value(kind[1], rng) for _ in range(rng.randint(1, 5))]
            else:
                options[name] = _random_value(kind, rng)
        tensors = [{"name": "x", "shape": [1, 4], "dtype": "float32"}, {"name": "y", "shape": [1, 4], "dtype": "float32"}]
        buf = tb.build_model(tensors, [{"op": op, "inputs": [0], "outputs": [1], "options": options}], [0], [1])
        got, want = _read(buf)["ops"][0][5], _reference(buf)["ops"][0][5]
        assert got == want, cls_name
        checked += 1
    assert checked >= 100


def test_signatures_read_as_the_package_reads_them(shared: Path):
    found = 0
    for path in _models(shared):
        buf = path.read_bytes()
        m = tflite.Model.GetRootAs(buf, 0)
        sg = m.Subgraphs(0)
        want = {}
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            if not t.ShapeSignatureIsNone() and t.ShapeSignatureLength() > 0:
                want[i] = tuple(t.ShapeSignatureAsNumpy().tolist())
        assert shape_signatures(buf) == want, path.name
        defs = {}
        for k in range(m.SignatureDefsLength()):
            s = m.SignatureDefs(k)
            if s.SubgraphIndex() == 0:
                maps = [{f(j).Name().decode(): f(j).TensorIndex() for j in range(n)}
                        for f, n in ((s.Inputs, s.InputsLength()), (s.Outputs, s.OutputsLength()))]
                defs[s.SignatureKey().decode()] = {"inputs": maps[0], "outputs": maps[1]}
        assert signature_defs(buf) == defs, path.name
        found += bool(want) + bool(defs)
    assert found > 0


def test_corrupt_files_read_as_the_package_or_fail_cleanly(shared: Path):
    """Bytes flipped at random in a small model: the reader reads what the package reads, or raises
    ModelFormatError (the package reads some offsets out of the buffer without noticing)."""
    base = (shared / "models" / "hello_world_int8.tflite").read_bytes()
    rng = random.Random(3)
    outcomes = {"same": 0, "refused": 0}
    for _ in range(400):
        buf = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(8, len(buf))] = rng.randrange(256)
        buf = bytes(buf)
        try:
            got = _read(buf)
        except (ModelFormatError, UnsupportedError):
            outcomes["refused"] += 1
            continue
        try:
            want = _reference(buf)
        except Exception:  # noqa: BLE001 (what the package fails on, the reader may read: its fields unread)
            want = None
        if want is not None:
            _assert_same(got, want)
            outcomes["same"] += 1
    assert outcomes["same"] > 50 and outcomes["refused"] > 0, outcomes
