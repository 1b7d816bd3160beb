"""Read a .tflite flatbuffer into a Graph (the first subgraph), with every option decoded.

The tables are read by slot (engine/formats/flatbuffer.py) as TFLite's schema lays them out; the
enums and the builtin options' fields come from tflite_schema.py, generated from the `tflite`
package, which loading a model so does not import (its 190 modules took longer than the parse).
"""

from __future__ import annotations

import numpy as np
from flatbuffers import flexbuffers

from ..errors import ModelFormatError, UnsupportedError
from ..graph import DTYPES, Graph, Op, Tensor
from . import tflite_schema as schema
from .flatbuffer import Table, Tables, root

TENSOR_TYPES = {code: name.lower() for code, name in schema.TENSOR_TYPES.items()}
# enum-valued option fields, turned into names so the JSON graph reads well
ENUM_FIELDS = {"padding": schema.PADDINGS, "fused_activation_function": schema.ACTIVATIONS}

# the schema's slots of the tables read here (schema.fbs: a table's fields in order, from 0)
MODEL_OPERATOR_CODES, MODEL_SUBGRAPHS, MODEL_DESCRIPTION, MODEL_BUFFERS, MODEL_SIGNATURE_DEFS = 1, 2, 3, 4, 7
SUBGRAPH_TENSORS, SUBGRAPH_INPUTS, SUBGRAPH_OUTPUTS, SUBGRAPH_OPERATORS = 0, 1, 2, 3
TENSOR_SHAPE, TENSOR_TYPE, TENSOR_BUFFER, TENSOR_NAME, TENSOR_QUANTIZATION, TENSOR_IS_VARIABLE = 0, 1, 2, 3, 4, 5
TENSOR_SHAPE_SIGNATURE = 7
QUANT_SCALE, QUANT_ZERO_POINT, QUANT_DIMENSION = 2, 3, 6
BUFFER_DATA, BUFFER_OFFSET, BUFFER_SIZE = 0, 1, 2
CODE_DEPRECATED_BUILTIN, CODE_CUSTOM, CODE_VERSION, CODE_BUILTIN = 0, 1, 2, 3
OP_OPCODE_INDEX, OP_INPUTS, OP_OUTPUTS, OP_OPTIONS_TYPE, OP_OPTIONS, OP_CUSTOM_OPTIONS = 0, 1, 2, 3, 4, 5
OP_INTERMEDIATES = 8
SIGNATURE_INPUTS, SIGNATURE_OUTPUTS, SIGNATURE_KEY, SIGNATURE_SUBGRAPH = 0, 1, 2, 4
TENSOR_MAP_NAME, TENSOR_MAP_INDEX = 0, 1


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", "replace")


def read_options(op: Table) -> dict:
    """The builtin options of an operator: each field of its options table (the schema's default
    where absent; a vector that is absent reads 0, as the tflite package's ...AsNumpy gives it)."""
    kind = op.scalar(OP_OPTIONS_TYPE, "B")
    if kind == 0:
        return {}
    if kind not in schema.OPTIONS:
        raise ModelFormatError(f"unknown builtin options type {kind}")
    _, fields = schema.OPTIONS[kind]
    table = op.table(OP_OPTIONS)
    options = {}
    for name, slot, code, default in fields:
        if table is None:
            value = default
        elif code == "s":
            value = _text(table.string(slot))
        elif code[0] == "[":
            array = table.array(slot, code[1:])
            value = default if array is None else array.tolist()
        else:
            value = table.scalar(slot, code, default)
        if name in ENUM_FIELDS:
            value = ENUM_FIELDS[name].get(value, value)
        options[name] = value
    return options


def read_custom_options(op: Table) -> dict:
    raw = op.array(OP_CUSTOM_OPTIONS, "B")
    if raw is None or raw.size == 0:
        return {}
    value = flexbuffers.Loads(raw.tobytes())
    if not isinstance(value, dict):
        raise ModelFormatError("custom options are not a flexbuffer map")
    return {k: (float(v) if isinstance(v, float) else v) for k, v in value.items()}


def read_tensor(i: int, t: Table, buffers: Tables, buf: bytes) -> Tensor:
    code = t.scalar(TENSOR_TYPE, "b")
    type_name = TENSOR_TYPES.get(code, str(code))
    if type_name not in DTYPES:
        raise UnsupportedError(f"tensor {i}: type {type_name} not supported (supported: {', '.join(DTYPES)})")
    dims = t.array(TENSOR_SHAPE, "i")
    shape = () if dims is None else tuple(dims.tolist())
    name = _text(t.string(TENSOR_NAME)) or f"tensor_{i}"
    variable = t.scalar(TENSOR_IS_VARIABLE, "?", False)
    tensor = Tensor(index=i, name=name, shape=shape, dtype=type_name, is_variable=variable)
    q = t.table(TENSOR_QUANTIZATION)
    scale = None if q is None else q.array(QUANT_SCALE, "f")
    if scale is not None and scale.size > 0:
        zero_point = q.array(QUANT_ZERO_POINT, "q")
        tensor.scale = scale.astype(np.float32)
        tensor.zero_point = np.zeros(scale.size, np.int64) if zero_point is None else zero_point.astype(np.int64)
        tensor.quant_axis = q.scalar(QUANT_DIMENSION, "i")
        if tensor.zero_point.size != tensor.scale.size:
            raise ModelFormatError(
                f"tensor {i} '{name}': {tensor.zero_point.size} zero points for {tensor.scale.size} scales"
            )
    b = t.scalar(TENSOR_BUFFER, "I")
    if b >= len(buffers):
        raise ModelFormatError(f"{tensor.describe()}: buffer index {b} out of range")
    buffer = buffers[b]
    raw = None
    start = buffer.scalar(BUFFER_OFFSET, "Q")
    if start > 1:  # models over 2 GB keep data after the flatbuffer
        size = buffer.scalar(BUFFER_SIZE, "Q")
        if start + size > len(buf):
            raise ModelFormatError(
                f"{tensor.describe()}: buffer at offset {start} runs past the end of the file"
            )
        raw = np.frombuffer(buf, np.uint8, count=size, offset=start)
    else:
        data = buffer.array(BUFFER_DATA, "B")
        raw = data if data is not None and data.size > 0 else None
    if raw is not None:
        if any(d < 0 for d in shape):
            raise ModelFormatError(f"{tensor.describe()}: constant with negative dimension")
        dtype = np.dtype(DTYPES[type_name])
        want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if len(raw) != want:
            raise ModelFormatError(f"{tensor.describe()}: buffer holds {len(raw)} bytes, shape needs {want}")
        # a read-only view of the model's bytes, not a copy: kernels never write constants
        tensor.data = raw.view(dtype).reshape(shape)
    return tensor


def is_tflite(buf: bytes) -> bool:
    """Whether buf carries TFLite's file identifier."""
    return len(buf) >= 8 and buf[4:8] == b"TFL3"


def import_tflite(buf: bytes, source: str = "<bytes>") -> Graph:
    """Parse .tflite bytes. Any malformation becomes a ModelFormatError naming the source."""
    if not is_tflite(buf):
        raise ModelFormatError(f"{source}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        return _import(bytes(buf))
    except (ModelFormatError, UnsupportedError) as e:
        raise type(e)(f"{source}: {e}") from None
    except Exception as e:  # noqa: BLE001 (a corrupt offset fails any read: FlatbufferError, and more in flexbuffers)
        raise ModelFormatError(f"{source}: corrupt flatbuffer ({type(e).__name__}: {e})") from None


def _indices(array, what: str, n: int, allow_missing: bool = False) -> list[int]:
    """Tensor indices of an int32 vector ([] where absent); -1 (an omitted optional input) only where
    allow_missing."""
    out = [] if array is None else array.tolist()
    for x in out:
        if x < (-1 if allow_missing else 0) or x >= n:
            raise ModelFormatError(f"{what}: tensor index {x} out of range (model has {n} tensors)")
    return out


def _opcode(oc: Table) -> tuple[str, int]:
    """An operator code's (name, version): the builtin's name, or the custom code."""
    builtin = max(oc.scalar(CODE_BUILTIN, "i"), oc.scalar(CODE_DEPRECATED_BUILTIN, "b"))
    name = schema.BUILTIN_OPERATORS.get(builtin, f"BUILTIN_{builtin}")
    if name == "CUSTOM":
        name = _text(oc.string(CODE_CUSTOM)) or ""
    return name, oc.scalar(CODE_VERSION, "i", 1)


def _import(buf: bytes) -> Graph:
    model = root(buf)
    subgraphs = model.tables(MODEL_SUBGRAPHS)
    if not subgraphs:
        raise ModelFormatError("model has no subgraph")
    sg = subgraphs[0]
    buffers = model.tables(MODEL_BUFFERS)
    tensors = [read_tensor(i, t, buffers, buf) for i, t in enumerate(sg.tables(SUBGRAPH_TENSORS))]
    n = len(tensors)
    opcodes = model.tables(MODEL_OPERATOR_CODES)
    ops = []
    for i, o in enumerate(sg.tables(SUBGRAPH_OPERATORS)):
        index = o.scalar(OP_OPCODE_INDEX, "I")
        if index >= len(opcodes):
            raise ModelFormatError(f"op {i}: opcode index {index} out of range")
        name, version = _opcode(opcodes[index])
        where = f"op {i} ({name})"
        try:
            options = read_options(o)
            options.update(read_custom_options(o))
        except ModelFormatError as e:
            raise ModelFormatError(f"{where}: {e}") from None
        except Exception as e:  # noqa: BLE001 (flexbuffers raises KeyError, IndexError, struct.error on garbage)
            raise ModelFormatError(f"{where}: cannot read its options ({type(e).__name__}: {e})") from None
        ins = _indices(o.array(OP_INPUTS, "i"), where + " inputs", n, True)
        outs = _indices(o.array(OP_OUTPUTS, "i"), where + " outputs", n)
        mids = _indices(o.array(OP_INTERMEDIATES, "i"), where + " intermediates", n)
        ops.append(Op(i, name, ins, outs, options, version, mids))
    inputs = _indices(sg.array(SUBGRAPH_INPUTS, "i"), "graph inputs", n)
    outputs = _indices(sg.array(SUBGRAPH_OUTPUTS, "i"), "graph outputs", n)
    desc = _text(model.string(MODEL_DESCRIPTION)) or ""
    return Graph(tensors=tensors, ops=ops, inputs=inputs, outputs=outputs, description=desc)


def shape_signatures(buf: bytes) -> dict[int, tuple[int, ...]]:
    """shape_signature of subgraph 0's tensors (-1 marks a dynamic dimension), where the file stores
    one; {} for a file that is not a TFLite flatbuffer (import_tflite says what is wrong with it)."""
    if not is_tflite(buf):
        return {}
    subgraphs = root(buf).tables(MODEL_SUBGRAPHS)
    signatures = {}
    for i, t in enumerate(subgraphs[0].tables(SUBGRAPH_TENSORS) if subgraphs else []):
        dims = t.array(TENSOR_SHAPE_SIGNATURE, "i")
        if dims is not None and dims.size > 0:
            signatures[i] = tuple(dims.tolist())
    return signatures


def signature_defs(buf: bytes) -> dict[str, dict[str, dict[str, int]]]:
    """{key: {"inputs": {name: tensor index}, "outputs": {...}}} of the SignatureDefs of subgraph 0."""
    if not is_tflite(buf):
        return {}

    def names(maps: list[Table]) -> dict[str, int]:
        return {_text(m.string(TENSOR_MAP_NAME)): m.scalar(TENSOR_MAP_INDEX, "I") for m in maps}

    defs = {}
    for s in root(buf).tables(MODEL_SIGNATURE_DEFS):
        if s.scalar(SIGNATURE_SUBGRAPH, "I") != 0:
            continue  # the engine runs subgraph 0 only
        defs[_text(s.string(SIGNATURE_KEY))] = {
            "inputs": names(s.tables(SIGNATURE_INPUTS)),
            "outputs": names(s.tables(SIGNATURE_OUTPUTS)),
        }
    return defs
