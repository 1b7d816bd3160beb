"""Build small .tflite flatbuffers for tests, from plain dicts.

    build_model(tensors=[dict(name=, shape=, dtype=, data=None, scale=None, zero_point=None,
                              quantized_dimension=0, variable=False)],
                ops=[dict(op='CONV_2D' | custom code, inputs=[...], outputs=[...], options={...},
                          custom_options=None, version=None, intermediates=None)],
                inputs=[...], outputs=[...]) -> bytes

Option keys are the snake_case names engine/formats/tflite.py reads back (snake case of the generated
getters); 'padding' and 'fused_activation_function' (and a few other enum fields) may be given by name.
Every op that has a BuiltinOptions table gets one written, with defaults for the keys not given, as
the TFLite converter does.
"""

from __future__ import annotations

import inspect
import re
from functools import cache

import flatbuffers
import numpy as np
import tflite
from flatbuffers import flexbuffers

OPCODES = {k: v for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
OPTION_TYPES = {k: v for k, v in vars(tflite.BuiltinOptions).items() if not k.startswith("_") and k != "NONE"}
TENSOR_TYPES = {k.lower(): v for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
NP_DTYPES = {
    "float32": np.float32,
    "float16": np.float16,
    "float64": np.float64,
    "int32": np.int32,
    "uint8": np.uint8,
    "int64": np.int64,
    "int16": np.int16,
    "int8": np.int8,
    "bool": np.bool_,
    "uint32": np.uint32,
    "uint16": np.uint16,
}
CUSTOM = OPCODES["CUSTOM"]

# ops whose options table is not named after the op
OPTIONS_OVERRIDES = {
    "MAX_POOL_2D": "Pool2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "L2_POOL_2D": "Pool2DOptions",
    "MEAN": "ReducerOptions",
    "SUM": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions",
    "REDUCE_PROD": "ReducerOptions",
    "REDUCE_ANY": "ReducerOptions",
    "REDUCE_ALL": "ReducerOptions",
    "MAXIMUM": "MaximumMinimumOptions",
    "MINIMUM": "MaximumMinimumOptions",
    "L2_NORMALIZATION": "L2NormOptions",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions",
    "BIDIRECTIONAL_SEQUENCE_RNN": "BidirectionalSequenceRNNOptions",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTMOptions",
    "BIDIRECTIONAL_SEQUENCE_LSTM": "BidirectionalSequenceLSTMOptions",
    "ARG_MAX": "ArgMaxOptions",
    "ARG_MIN": "ArgMinOptions",
    "NON_MAX_SUPPRESSION_V4": "NonMaxSuppressionV4Options",
    "NON_MAX_SUPPRESSION_V5": "NonMaxSuppressionV5Options",
}

ENUMS = {
    "padding": tflite.Padding,
    "fused_activation_function": tflite.ActivationFunctionType,
    "weights_format": tflite.FullyConnectedOptionsWeightsFormat,
    "mode": tflite.MirrorPadMode,
    "kernel_type": tflite.LSTMKernelType,
    "combiner": tflite.CombinerType,
    "quantized_bias_type": tflite.TensorType,
    "out_type": tflite.TensorType,
    "output_type": tflite.TensorType,
    "idx_out_type": tflite.TensorType,
    "in_data_type": tflite.TensorType,
    "out_data_type": tflite.TensorType,
}

FLAG_DTYPES = {
    "BoolFlags": np.bool_,
    "Int8Flags": np.int8,
    "Uint8Flags": np.uint8,
    "Int16Flags": np.int16,
    "Uint16Flags": np.uint16,
    "Int32Flags": np.int32,
    "Uint32Flags": np.uint32,
    "Int64Flags": np.int64,
    "Uint64Flags": np.uint64,
    "Float32Flags": np.float32,
    "Float64Flags": np.float64,
}


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _norm(s: str) -> str:
    return s.replace("_", "").lower()


_OPTIONS_BY_NORM = {_norm(k): k for k in OPTION_TYPES}


def options_type(op_name: str) -> str | None:
    """The BuiltinOptions table name of a builtin op, or None for ops without options."""
    if op_name in OPTIONS_OVERRIDES:
        return OPTIONS_OVERRIDES[op_name]
    return _OPTIONS_BY_NORM.get(_norm(op_name) + "options")


@cache
def option_setters(cls_name: str) -> dict[str, tuple[str, str, type | None]]:
    """snake field -> (kind, adder name, vector element dtype); kind is 'scalar', 'vector' or 'string'."""
    prefix = cls_name + "Add"
    fields = {}
    for name in dir(tflite):
        if not name.startswith(prefix):
            continue
        field = name[len(prefix) :]
        src = inspect.getsource(getattr(tflite, name))
        if "PrependUOffsetTRelativeSlot" not in src:
            fields[snake(field)] = ("scalar", name, None)
            continue
        getter = getattr(getattr(tflite, cls_name), field + "AsNumpy", None)
        if getter is not None:
            flag = re.search(
                r"GetVectorAsNumpy\(flatbuffers\.number_types\.(\w+Flags)", inspect.getsource(getter)
            ).group(1)
            fields[snake(field)] = ("vector", name, FLAG_DTYPES[flag])
        elif "String" in inspect.getsource(getattr(getattr(tflite, cls_name), field)):
            fields[snake(field)] = ("string", name, None)
        else:
            fields[snake(field)] = ("table", name, None)
    return fields


def _enum_value(field: str, value):
    if not isinstance(value, str):
        return value
    enum = ENUMS.get(field)
    if enum is None:
        raise ValueError(f"option {field!r}: string value {value!r} for a non-enum field")
    table = {k.upper(): v for k, v in vars(enum).items() if not k.startswith("_")}
    if value.upper() not in table:
        raise ValueError(f"option {field!r}: unknown value {value!r} (known: {sorted(table)})")
    return table[value.upper()]


def _vector(b: flatbuffers.Builder, values, dtype) -> int:
    arr = np.ascontiguousarray(np.asarray(values, dtype=dtype).reshape(-1))
    return b.CreateNumpyVector(arr)


def _byte_vector(b: flatbuffers.Builder, data: bytes, alignment: int = 16) -> int:
    """A ubyte vector whose payload starts on an `alignment` boundary (like the converter's buffers)."""
    b.StartVector(1, len(data), alignment)
    b.head = b.head - len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    b.vectorNumElems = len(data)
    return b.EndVector()


def _options(b: flatbuffers.Builder, op_name: str, options: dict) -> tuple[int, int]:
    cls_name = options_type(op_name)
    if cls_name is None:
        if options:
            raise ValueError(f"{op_name} has no builtin options, got {sorted(options)}")
        return 0, 0
    setters = option_setters(cls_name)
    by_norm = {_norm(k): k for k in setters}  # 'dilation_w_factor' and 'dilation_wfactor' both work
    unknown = sorted(k for k in options if _norm(k) not in by_norm)
    if unknown:
        raise ValueError(f"{op_name} ({cls_name}): unknown option(s) {unknown}; known: {sorted(setters)}")
    given = {}
    for key, value in options.items():
        field = by_norm[_norm(key)]
        # None omits a field; the importer reads an absent vector as the scalar 0
        if value is None or (setters[field][0] == "vector" and np.ndim(value) == 0 and value == 0):
            continue
        given[field] = value.item() if isinstance(value, np.generic) else value
    options = given
    offsets = {}  # vectors and strings must be built before the table starts
    for field, value in options.items():
        kind, _, dtype = setters[field]
        if kind == "vector":
            offsets[field] = _vector(b, value, dtype)
        elif kind == "string":
            offsets[field] = b.CreateString(value)
        elif kind == "table":
            raise ValueError(f"{op_name}: option {field!r} is a sub-table; not supported")
    getattr(tflite, cls_name + "Start")(b)
    for field, value in options.items():
        kind, adder, _ = setters[field]
        if kind == "scalar":
            value = _enum_value(field, value)
            getattr(tflite, adder)(b, bool(value) if isinstance(value, (bool, np.bool_)) else value)
        else:
            getattr(tflite, adder)(b, offsets[field])
    return OPTION_TYPES[cls_name], getattr(tflite, cls_name + "End")(b)


def flexbuffer_options(options: dict) -> bytes:
    """A flexbuffer map, as custom ops (TFLite_Detection_PostProcess) keep their options."""
    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key in sorted(options):  # flexbuffer maps are sorted by key
            value = options[key]
            if isinstance(value, (bool, np.bool_)):
                fbb.Bool(key, bool(value))
            elif isinstance(value, (int, np.integer)):
                fbb.Int(key, int(value))
            elif isinstance(value, (float, np.floating)):
                fbb.Float(key, float(value))
            elif isinstance(value, str):
                fbb.String(key, value)
            else:
                raise TypeError(f"flexbuffer option {key!r}: unsupported value {value!r}")
    return bytes(fbb.Finish())


def _tensor(b: flatbuffers.Builder, t: dict, buffer_index: int) -> int:
    dtype = t.get("dtype", "float32")
    if dtype not in TENSOR_TYPES:
        raise ValueError(f"tensor {t.get('name')!r}: unknown dtype {dtype!r}")
    name = b.CreateString(t.get("name", ""))
    shape = _vector(b, list(t.get("shape", ())), np.int32)
    quant = None
    scale = t.get("scale")
    if scale is not None and len(np.atleast_1d(scale)) > 0:
        scale = np.atleast_1d(np.asarray(scale, np.float32))
        zp = t.get("zero_point")
        zp = np.zeros(scale.size, np.int64) if zp is None else np.atleast_1d(np.asarray(zp, np.int64))
        scale_vec = _vector(b, scale, np.float32)
        zp_vec = _vector(b, zp, np.int64)
        tflite.QuantizationParametersStart(b)
        tflite.QuantizationParametersAddScale(b, scale_vec)
        tflite.QuantizationParametersAddZeroPoint(b, zp_vec)
        tflite.QuantizationParametersAddQuantizedDimension(b, int(t.get("quantized_dimension", 0)))
        quant = tflite.QuantizationParametersEnd(b)
    tflite.TensorStart(b)
    tflite.TensorAddShape(b, shape)
    tflite.TensorAddType(b, TENSOR_TYPES[dtype])
    tflite.TensorAddBuffer(b, buffer_index)
    tflite.TensorAddName(b, name)
    if quant is not None:
        tflite.TensorAddQuantization(b, quant)
    if t.get("variable"):
        tflite.TensorAddIsVariable(b, True)
    return tflite.TensorEnd(b)


def _offset_vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    b.vectorNumElems = len(offsets)
    return b.EndVector()


def build_model(
    tensors: list[dict], ops: list[dict], inputs: list[int], outputs: list[int], description: str = "tests"
) -> bytes:
    """Serialize one subgraph into .tflite bytes (schema version 3, identifier TFL3)."""
    b = flatbuffers.Builder(1024)

    # buffer 0 is the empty buffer; each constant tensor gets its own
    buffer_data: list[bytes | None] = [None]
    tensor_buffers = []
    for t in tensors:
        data = t.get("data")
        if data is None:
            tensor_buffers.append(0)
            continue
        np_dtype = NP_DTYPES[t.get("dtype", "float32")]
        arr = np.asarray(data)
        if arr.dtype != np_dtype:
            if np.issubdtype(arr.dtype, np.integer) and np.issubdtype(np_dtype, np.integer):
                info = np.iinfo(np_dtype)
                if arr.size and (arr.min() < info.min or arr.max() > info.max):
                    raise ValueError(f"tensor {t.get('name')!r}: data out of range for {t['dtype']}")
            arr = arr.astype(np_dtype)
        shape = tuple(t.get("shape", arr.shape))
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"tensor {t.get('name')!r}: data has {arr.size} values, shape {shape}")
        tensor_buffers.append(len(buffer_data))
        buffer_data.append(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())

    buffer_offsets = []
    for data in buffer_data:
        vec = _byte_vector(b, data) if data else None
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        buffer_offsets.append(tflite.BufferEnd(b))

    tensor_offsets = [_tensor(b, t, buf) for t, buf in zip(tensors, tensor_buffers)]

    # operator codes, deduplicated by (code, custom code, version)
    code_keys: list[tuple[int, str | None, int]] = []
    op_code_index = []
    for o in ops:
        name = o["op"]
        code = OPCODES.get(name, CUSTOM)
        if code == CUSTOM and name == "CUSTOM":
            raise ValueError("give a custom op its custom code as 'op'")
        key = (code, name if code == CUSTOM else None, int(o.get("version") or 1))
        if key not in code_keys:
            code_keys.append(key)
        op_code_index.append(code_keys.index(key))
    code_offsets = []
    for code, custom, version in code_keys:
        custom_off = b.CreateString(custom) if custom is not None else None
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, version)
        if custom_off is not None:
            tflite.OperatorCodeAddCustomCode(b, custom_off)
        code_offsets.append(tflite.OperatorCodeEnd(b))

    op_offsets = []
    for o, idx in zip(ops, op_code_index):
        name = o["op"]
        ins = _vector(b, o.get("inputs", []), np.int32)
        outs = _vector(b, o.get("outputs", []), np.int32)
        opt_type, opt = (0, 0) if name not in OPCODES else _options(b, name, dict(o.get("options") or {}))
        custom = o.get("custom_options")
        custom_vec = _byte_vector(b, bytes(custom), 1) if custom else None
        mids = _vector(b, o["intermediates"], np.int32) if o.get("intermediates") else None
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, idx)
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if opt_type:
            tflite.OperatorAddBuiltinOptionsType(b, opt_type)
            tflite.OperatorAddBuiltinOptions(b, opt)
        if mids is not None:
            tflite.OperatorAddIntermediates(b, mids)
        if custom_vec is not None:
            tflite.OperatorAddCustomOptions(b, custom_vec)
            tflite.OperatorAddCustomOptionsFormat(b, tflite.CustomOptionsFormat.FLEXBUFFERS)
        op_offsets.append(tflite.OperatorEnd(b))

    sg_name = b.CreateString("main")
    sg_tensors = _offset_vector(b, tensor_offsets)
    sg_ops = _offset_vector(b, op_offsets)
    sg_in = _vector(b, inputs, np.int32)
    sg_out = _vector(b, outputs, np.int32)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, sg_tensors)
    tflite.SubGraphAddInputs(b, sg_in)
    tflite.SubGraphAddOutputs(b, sg_out)
    tflite.SubGraphAddOperators(b, sg_ops)
    tflite.SubGraphAddName(b, sg_name)
    subgraph = tflite.SubGraphEnd(b)

    subgraphs = _offset_vector(b, [subgraph])
    codes = _offset_vector(b, code_offsets)
    buffers = _offset_vector(b, buffer_offsets)
    desc = b.CreateString(description)
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, subgraphs)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, buffers)
    model = tflite.ModelEnd(b)
    b.Finish(model, file_identifier=b"TFL3")
    return bytes(b.Output())


def detection_model() -> bytes:
    """TFLite_Detection_PostProcess alone (6 anchors, 2 classes, fast NMS): float32 inputs boxes, scores."""
    n, classes = 6, 2
    rng = np.random.default_rng(5)
    anchors = np.concatenate([rng.uniform(0.2, 0.8, (n, 2)), rng.uniform(0.1, 0.3, (n, 2))], 1).astype(
        np.float32
    )
    tensors = [
        {"name": "boxes", "shape": [1, n, 4], "dtype": "float32"},
        {"name": "scores", "shape": [1, n, classes + 1], "dtype": "float32"},
        {"name": "anchors", "shape": [n, 4], "dtype": "float32", "data": anchors},
        *({"name": f"out{k}", "shape": [], "dtype": "float32"} for k in range(4)),
    ]
    options = {
        "max_detections": 3,
        "max_classes_per_detection": 1,
        "detections_per_class": 100,
        "use_regular_nms": False,
        "nms_score_threshold": 0.1,
        "nms_iou_threshold": 0.5,
        "num_classes": classes,
        "y_scale": 10.0,
        "x_scale": 10.0,
        "h_scale": 5.0,
        "w_scale": 5.0,
    }
    op = {
        "op": "TFLite_Detection_PostProcess",
        "inputs": [0, 1, 2],
        "outputs": [3, 4, 5, 6],
        "custom_options": flexbuffer_options(options),
    }
    return build_model(tensors, [op], inputs=[0, 1], outputs=[3, 4, 5, 6])


def lstm_model(
    n_batch: int,
    n_time: int,
    n_input: int,
    n_cell: int,
    *,
    time_major: bool = False,
    cifg: bool = False,
    peephole: bool = False,
    layer_norm: bool = False,
    n_output: int | None = None,
    projection_bias: bool = True,
    cell_clip: float = 0.0,
    proj_clip: float = 0.0,
    cell_log2: int = -12,
    x_q: tuple[float, int] = (0.02, 3),
    h_q: tuple[float, int] = (0.008, -1),
    hidden_q: tuple[float, int] = (0.008, -1),
    seed: int = 0,
) -> bytes:
    """An integer UNIDIRECTIONAL_SEQUENCE_LSTM alone, laid out as the converter writes one (24 inputs,
    variable state, 5 intermediates): int8 input/output/state, int16 cell of scale 2^cell_log2.
    n_output (not None) adds a projection from the n_cell hidden values to n_output outputs."""
    rng = np.random.default_rng(seed)
    n_out = n_output or n_cell
    seq = [n_time, n_batch] if time_major else [n_batch, n_time]
    x = {"name": "x", "shape": [*seq, n_input], "dtype": "int8", "scale": x_q[0], "zero_point": x_q[1]}
    tensors: list[dict] = [x]

    def add(t: dict) -> int:
        tensors.append(t)
        return len(tensors) - 1

    def const(name, shape, dtype, lim, scale) -> int:
        data = rng.integers(-lim, lim + 1, shape)
        return add(
            {
                "name": name,
                "shape": list(shape),
                "dtype": dtype,
                "data": data,
                "scale": scale,
                "zero_point": 0,
            }
        )

    def scale(lo=-2.5, hi=-1.5) -> float:
        return float(10 ** rng.uniform(lo, hi))

    gates = ("input", "forget", "cell", "output")
    skip = {"input"} if cifg else set()
    ins = [0]
    ins += [-1 if g in skip else const(f"w_x_{g}", (n_cell, n_input), "int8", 127, scale()) for g in gates]
    ins += [-1 if g in skip else const(f"w_h_{g}", (n_cell, n_out), "int8", 127, scale()) for g in gates]
    for g in ("input", "forget", "output"):
        use = peephole and g not in skip
        ins.append(const(f"w_c_{g}", (n_cell,), "int16", 3000, scale(-4, -3)) if use else -1)
    for g in gates:
        ins.append(-1 if g in skip else const(f"b_{g}", (n_cell,), "int32", 1 << 14, 1e-5))
    if n_output:
        ins.append(const("w_proj", (n_out, n_cell), "int8", 127, scale()))
        ins.append(const("b_proj", (n_out,), "int32", 1 << 12, 1e-5) if projection_bias else -1)
    else:
        ins += [-1, -1]
    ins.append(
        add(
            {
                "name": "h",
                "shape": [n_batch, n_out],
                "dtype": "int8",
                "scale": h_q[0],
                "zero_point": h_q[1],
                "variable": True,
            }
        )
    )
    ins.append(
        add(
            {
                "name": "c",
                "shape": [n_batch, n_cell],
                "dtype": "int16",
                "scale": 2.0**cell_log2,
                "zero_point": 0,
                "variable": True,
            }
        )
    )
    for g in gates:
        use = layer_norm and g not in skip
        ins.append(const(f"ln_{g}", (n_cell,), "int16", 32767, scale(-4.5, -4)) if use else -1)
    if layer_norm:
        mids = [
            add(
                {
                    "name": f"{g}_intermediate",
                    "shape": [0],
                    "dtype": "int16",
                    "scale": scale(-4, -3),
                    "zero_point": 0,
                }
            )
            for g in gates
        ]
    else:
        mids = [add({"name": f"{g}_intermediate", "shape": [0], "dtype": "float32"}) for g in gates]
    mids.append(
        add(
            {"name": "hidden", "shape": [0], "dtype": "int8", "scale": hidden_q[0], "zero_point": hidden_q[1]}
        )
    )
    out = add({"name": "y", "shape": [*seq, n_out], "dtype": "int8", "scale": h_q[0], "zero_point": h_q[1]})
    options = {
        "fused_activation_function": "TANH",
        "cell_clip": cell_clip,
        "proj_clip": proj_clip,
        "time_major": time_major,
    }
    op = {
        "op": "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "inputs": ins,
        "outputs": [out],
        "options": options,
        "intermediates": mids,
    }
    return build_model(tensors, [op], inputs=[0], outputs=[out])
