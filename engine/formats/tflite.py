"""Read a .tflite flatbuffer into a Graph (the first subgraph), with every option decoded."""

from __future__ import annotations

import inspect
import re
from functools import cache

import numpy as np
import tflite
from flatbuffers import flexbuffers
from tflite.utils import BUILTIN_OPCODE2NAME

from ..errors import ModelFormatError, UnsupportedError
from ..graph import DTYPES, Graph, Op, Tensor

TENSOR_TYPES = {v: k.lower() for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
ACTIVATIONS = {v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")}
PADDINGS = {v: k for k, v in vars(tflite.Padding).items() if not k.startswith("_")}
OPTION_TYPES = {v: k for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_")}
# enum-valued option fields, turned into names so the JSON graph reads well
ENUM_FIELDS = {"padding": PADDINGS, "fused_activation_function": ACTIVATIONS}


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


@cache
def option_getters(cls_name: str) -> list[tuple[str, str]]:
    """(field, method) pairs of a generated options class: scalar getters and vector ...AsNumpy."""
    cls = getattr(tflite, cls_name)
    skip = ("GetRootAs", "Init")
    fields = []
    for name, fn in vars(cls).items():
        if name.startswith("_") or name.startswith(skip) or name.endswith(("BufferHasIdentifier", "IsNone")):
            continue
        if name.endswith("Length"):
            continue
        params = list(inspect.signature(fn).parameters)
        if name.endswith("AsNumpy"):
            fields.append((snake(name[: -len("AsNumpy")]), name))
        elif params == ["self"]:
            fields.append((snake(name), name))
    return fields


def read_options(op) -> dict:
    kind = op.BuiltinOptionsType()
    if kind == 0:
        return {}
    cls_name = OPTION_TYPES.get(kind)
    if cls_name is None:
        raise ModelFormatError(f"unknown builtin options type {kind}")
    table = op.BuiltinOptions()
    obj = getattr(tflite, cls_name)()
    obj.Init(table.Bytes, table.Pos)
    options = {}
    for field, method in option_getters(cls_name):
        value = getattr(obj, method)()
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, (bytes, bytearray)):
            value = value.decode("utf-8", "replace")
        if field in ENUM_FIELDS:
            value = ENUM_FIELDS[field].get(value, value)
        options[field] = value
    return options


def read_custom_options(op) -> dict:
    if op.CustomOptionsIsNone() or op.CustomOptionsLength() == 0:
        return {}
    raw = op.CustomOptionsAsNumpy().tobytes()
    value = flexbuffers.Loads(raw)
    if not isinstance(value, dict):
        raise ModelFormatError("custom options are not a flexbuffer map")
    return {k: (float(v) if isinstance(v, float) else v) for k, v in value.items()}


def read_tensor(i: int, t, model, buf: bytes) -> Tensor:
    type_name = TENSOR_TYPES.get(t.Type(), str(t.Type()))
    if type_name not in DTYPES:
        raise UnsupportedError(f"tensor {i}: type {type_name} not supported (supported: {', '.join(DTYPES)})")
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if not t.ShapeIsNone() else ()
    if not t.ShapeIsNone() and t.ShapeLength() == 0:
        shape = ()
    name = t.Name().decode("utf-8", "replace") if t.Name() else f"tensor_{i}"
    tensor = Tensor(index=i, name=name, shape=shape, dtype=type_name, is_variable=bool(t.IsVariable()))
    q = t.Quantization()
    if q is not None and not q.ScaleIsNone() and q.ScaleLength() > 0:
        tensor.scale = q.ScaleAsNumpy().astype(np.float32)
        tensor.zero_point = (
            q.ZeroPointAsNumpy().astype(np.int64)
            if not q.ZeroPointIsNone()
            else np.zeros(tensor.scale.size, np.int64)
        )
        tensor.quant_axis = int(q.QuantizedDimension())
        if tensor.zero_point.size != tensor.scale.size:
            raise ModelFormatError(
                f"tensor {i} '{name}': {tensor.zero_point.size} zero points for {tensor.scale.size} scales"
            )
    b = t.Buffer()
    if b < 0 or b >= model.BuffersLength():
        raise ModelFormatError(f"{tensor.describe()}: buffer index {b} out of range")
    buffer = model.Buffers(b)
    raw = None
    if buffer is not None and buffer.Offset() > 1:  # models over 2 GB keep data after the flatbuffer
        start, size = buffer.Offset(), buffer.Size()
        if start + size > len(buf):
            raise ModelFormatError(
                f"{tensor.describe()}: buffer at offset {start} runs past the end of the file"
            )
        raw = np.frombuffer(buf, np.uint8, count=size, offset=start)
    elif buffer is not None and not buffer.DataIsNone() and buffer.DataLength() > 0:
        raw = buffer.DataAsNumpy()
    if raw is not None:
        if type_name not in DTYPES:
            raise ModelFormatError(f"{tensor.describe()}: constant of unsupported type {type_name}")
        if any(d < 0 for d in shape):
            raise ModelFormatError(f"{tensor.describe()}: constant with negative dimension")
        dtype = np.dtype(DTYPES[type_name])
        want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if len(raw) != want:
            raise ModelFormatError(f"{tensor.describe()}: buffer holds {len(raw)} bytes, shape needs {want}")
        # a read-only view of the model's bytes, not a copy: kernels never write constants
        tensor.data = raw.view(dtype).reshape(shape)
    return tensor


def import_tflite(buf: bytes, source: str = "<bytes>") -> Graph:
    """Parse .tflite bytes. Any malformation becomes a ModelFormatError naming the source."""
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelFormatError(f"{source}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        return _import(bytes(buf))
    except (ModelFormatError, UnsupportedError) as e:
        raise type(e)(f"{source}: {e}") from None
    except Exception as e:  # noqa: BLE001 (the generated flatbuffer code raises anything on corrupt offsets)
        raise ModelFormatError(f"{source}: corrupt flatbuffer ({type(e).__name__}: {e})") from None


def _import(buf: bytes) -> Graph:
    model = tflite.Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() < 1:
        raise ModelFormatError("model has no subgraph")
    sg = model.Subgraphs(0)
    tensors = [read_tensor(i, sg.Tensors(i), model, buf) for i in range(sg.TensorsLength())]
    n = len(tensors)

    def indices(arr, what: str, allow_missing: bool = False) -> list[int]:
        """Tensor indices; -1 (an omitted optional input) only where allow_missing."""
        out = [int(x) for x in arr]
        for x in out:
            if x < (-1 if allow_missing else 0) or x >= n:
                raise ModelFormatError(f"{what}: tensor index {x} out of range (model has {n} tensors)")
        return out

    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        builtin = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        name = BUILTIN_OPCODE2NAME.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = (oc.CustomCode() or b"").decode("utf-8", "replace")
        codes.append((name, int(oc.Version())))
    ops = []
    for i in range(sg.OperatorsLength()):
        o = sg.Operators(i)
        if o.OpcodeIndex() >= len(codes):
            raise ModelFormatError(f"op {i}: opcode index {o.OpcodeIndex()} out of range")
        name, version = codes[o.OpcodeIndex()]
        where = f"op {i} ({name})"
        try:
            options = read_options(o)
            if not o.CustomOptionsIsNone() and o.CustomOptionsLength() > 0:
                options.update(read_custom_options(o))
        except ModelFormatError as e:
            raise ModelFormatError(f"{where}: {e}") from None
        except Exception as e:  # noqa: BLE001 (flexbuffers raises KeyError, IndexError, struct.error on garbage)
            raise ModelFormatError(f"{where}: cannot read its options ({type(e).__name__}: {e})") from None
        ins = indices(o.InputsAsNumpy(), where + " inputs", True) if not o.InputsIsNone() else []
        outs = indices(o.OutputsAsNumpy(), where + " outputs") if not o.OutputsIsNone() else []
        mids = indices(o.IntermediatesAsNumpy(), where + " intermediates") if not o.IntermediatesIsNone() else []
        ops.append(Op(i, name, ins, outs, options, version, mids))
    inputs = indices(sg.InputsAsNumpy(), "graph inputs") if not sg.InputsIsNone() else []
    outputs = indices(sg.OutputsAsNumpy(), "graph outputs") if not sg.OutputsIsNone() else []
    desc = model.Description().decode("utf-8", "replace") if model.Description() else ""
    return Graph(tensors=tensors, ops=ops, inputs=inputs, outputs=outputs, description=desc)
