"""Bad input and corrupt models: every failure is an EngineError subclass whose message says where.

.tflite: truncated, random bytes, out-of-range indices, bad shapes and buffers, bad quantization.
.npz: missing / extra / mistyped arrays, pickled objects, newer versions, malformed graph.json.
Unsupported: unknown ops, float and int16 models. run(): wrong shape, dtype, batch, names, NaN.
Models are built with tests.tflite_builder, or built and then patched in place (flatbuffer fields
located through the generated tflite accessors), so each test corrupts exactly one thing.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tflite

import engine
from engine import InputError, ModelFormatError, UnsupportedError
from tests.fuzz_worker import small_model_bytes
from tests.oracle import OracleError, micro_run, reference_run
from tests.tflite_builder import build_model, detection_model, flexbuffer_options

MNIST = "mnist_uint8.tflite"


# --------------------------------------------------------------------------------------------- helpers
def q8(name: str, shape, scale=0.05, zp=0, dtype="int8") -> dict:
    return {"name": name, "shape": list(shape), "dtype": dtype, "scale": [scale], "zero_point": [zp]}


def fc_spec(**tensor_overrides) -> dict:
    """in int8 [1,8] -> FULLY_CONNECTED (4 units, bias) -> out int8 [1,4]; override tensor fields by
    '<tensor index>_<field>' keys, e.g. fc_spec(**{'0_scale': [0.0]})."""
    rng = np.random.default_rng(0)
    tensors = [
        q8("in", [1, 8], 0.05, -3),
        {
            "name": "w",
            "shape": [4, 8],
            "dtype": "int8",
            "data": rng.integers(-127, 128, (4, 8)),
            "scale": [0.02],
            "zero_point": [0],
        },
        {
            "name": "b",
            "shape": [4],
            "dtype": "int32",
            "data": rng.integers(-500, 500, 4),
            "scale": [0.001],
            "zero_point": [0],
        },
        q8("out", [1, 4], 0.1, 2),
    ]
    for key, value in tensor_overrides.items():
        i, field = key.split("_", 1)
        tensors[int(i)][field] = value
    return {
        "tensors": tensors,
        "ops": [{"op": "FULLY_CONNECTED", "inputs": [0, 1, 2], "outputs": [3]}],
        "inputs": [0],
        "outputs": [3],
    }


def fc_model(**tensor_overrides) -> bytes:
    return build_model(**fc_spec(**tensor_overrides))


def conv_spec(dtype: str = "int8", act_dtype: str | None = None) -> dict:
    """A CONV_2D model; dtype float32 gives a float model, act_dtype int16 a 16x8 model."""
    act_dtype = act_dtype or dtype
    rng = np.random.default_rng(1)
    if dtype == "float32":
        w = {"name": "w", "shape": [2, 3, 3, 1], "dtype": "float32", "data": rng.normal(size=(2, 3, 3, 1))}
        b = {"name": "b", "shape": [2], "dtype": "float32", "data": rng.normal(size=2)}
        x, y = (
            {"name": "x", "shape": [1, 5, 5, 1], "dtype": "float32"},
            {"name": "y", "shape": [1, 5, 5, 2], "dtype": "float32"},
        )
    else:
        w = {
            "name": "w",
            "shape": [2, 3, 3, 1],
            "dtype": "int8",
            "data": rng.integers(-127, 128, (2, 3, 3, 1)),
            "scale": [0.01, 0.02],
            "zero_point": [0, 0],
        }
        bias_type = "int64" if act_dtype == "int16" else "int32"
        b = {
            "name": "b",
            "shape": [2],
            "dtype": bias_type,
            "data": rng.integers(-99, 99, 2),
            "scale": [5e-4, 1e-3],
            "zero_point": [0, 0],
        }
        x, y = q8("x", [1, 5, 5, 1], 0.05, 0, act_dtype), q8("y", [1, 5, 5, 2], 0.1, 0, act_dtype)
    options = {"padding": "SAME", "stride_w": 1, "stride_h": 1, "dilation_wfactor": 1, "dilation_hfactor": 1}
    relu = {"op": "RELU", "inputs": [3], "outputs": [4]}
    y2 = dict(y, name="y2")
    return {
        "tensors": [x, w, b, y, y2],
        "ops": [{"op": "CONV_2D", "inputs": [0, 1, 2], "outputs": [3], "options": options}, relu],
        "inputs": [0],
        "outputs": [4],
    }


def _tables(data: bytes):
    model = tflite.Model.GetRootAs(data, 0)
    return model, model.Subgraphs(0)


def field_pos(table, slot: int) -> int:
    """Absolute position of a scalar field (vtable slot 4, 6, 8, ...) of a flatbuffer table."""
    off = table._tab.Offset(slot)
    assert off, f"field at slot {slot} is absent (default value): cannot patch it in place"
    return table._tab.Pos + off


def vector_pos(table, slot: int, j: int, itemsize: int = 4) -> int:
    off = table._tab.Offset(slot)
    assert off, f"vector at slot {slot} is absent"
    return table._tab.Vector(off) + j * itemsize


def patch(data: bytes, pos: int, fmt: str, value) -> bytes:
    buf = bytearray(data)
    struct.pack_into("<" + fmt, buf, pos, value)
    return bytes(buf)


# Tensor slots: shape 4, type 6, buffer 8, name 10, quantization 12. Operator: opcode_index 4, inputs 6,
# outputs 8. QuantizationParameters: scale 8, zero_point 10, quantized_dimension 16. OperatorCode:
# deprecated_builtin_code 4, builtin_code 10.
def patch_tensor_shape(data: bytes, tensor: int, dim: int, value: int) -> bytes:
    _, sg = _tables(data)
    return patch(data, vector_pos(sg.Tensors(tensor), 4, dim), "i", value)


def load_error(source, cls=engine.EngineError) -> str:
    """engine.load must raise exactly `cls` (a subclass of EngineError); returns the message."""
    with pytest.raises(engine.EngineError) as info:
        engine.load(source)
    assert isinstance(info.value, cls), (
        f"expected {cls.__name__}, got {type(info.value).__name__}: {info.value}"
    )
    return str(info.value)


def run_error(model: engine.Model, x, cls=InputError) -> str:
    with pytest.raises(engine.EngineError) as info:
        model.run(x)
    assert isinstance(info.value, cls), (
        f"expected {cls.__name__}, got {type(info.value).__name__}: {info.value}"
    )
    return str(info.value)


@pytest.fixture(scope="module")
def mnist_bytes(models_dir) -> bytes:
    return (models_dir / MNIST).read_bytes()


@pytest.fixture(scope="module")
def small_bytes() -> bytes:
    return small_model_bytes()


@pytest.fixture(scope="module")
def small_model(small_bytes) -> engine.Model:
    return engine.load(small_bytes)


# ---------------------------------------------------------------------------------------- .tflite bytes
def test_truncated_tflite_many_cut_points(mnist_bytes, tmp_path):
    n = len(mnist_bytes)
    cuts = sorted(set(range(64)) | set(np.linspace(64, n - 1, 150).astype(int).tolist()) | {n - 1, n - 4})
    with pytest.raises(OracleError):  # the reference refuses even the shortest cut too
        reference_run(mnist_bytes[: n - 1], [np.zeros((1, 28, 28, 1), np.uint8)], preserve_all=False)
    for cut in cuts:  # every cut is refused as a corrupt file
        with pytest.raises(ModelFormatError) as e:
            engine.load(mnist_bytes[:cut])
        assert type(e.value) is ModelFormatError and str(e.value).startswith("<bytes>"), (cut, str(e.value))
    # from a file, the message names the file
    path = tmp_path / "cut.tflite"
    path.write_bytes(mnist_bytes[: n // 2])
    assert str(path) in load_error(path, ModelFormatError)


def test_random_bytes_and_non_models(tmp_path):
    rng = np.random.default_rng(0)
    blobs = [
        b"",
        b"\x00",
        b"TFL3",
        b"\x00" * 8,
        b"\x10\x00\x00\x00TFL3",
        b"PK\x03\x04",
        b"PK\x03\x04" + bytes(100),
    ]
    for size in (8, 16, 64, 1000, 100_000):
        for k in range(6):
            blob = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
            if k % 2:  # past the identifier check, into the flatbuffer reader
                blob = blob[:4] + b"TFL3" + blob[8:]
            blobs.append(blob[:size])
    for blob in blobs:
        msg = load_error(blob, ModelFormatError)
        assert msg.startswith("<bytes>"), msg
    for name, blob in [("junk.tflite", rng.bytes(999)), ("junk.npz", b"PK\x03\x04" + rng.bytes(999))]:
        (tmp_path / name).write_bytes(blob)
        assert str(tmp_path / name) in load_error(tmp_path / name, ModelFormatError)
    assert "cannot read" in load_error(tmp_path / "does_not_exist.tflite", ModelFormatError)
    assert "cannot read" in load_error(tmp_path, ModelFormatError)  # a directory


def test_op_tensor_index_out_of_range():
    spec = fc_spec()
    spec["ops"][0]["inputs"] = [0, 9, 2]
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "op 0 (FULLY_CONNECTED)" in msg and "tensor index 9" in msg
    spec = fc_spec()
    spec["ops"][0]["outputs"] = [7]
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "op 0 (FULLY_CONNECTED)" in msg and "tensor index 7" in msg
    # patched in place: an input index of 2**31 - 1 and a negative one
    data = fc_model()
    _, sg = _tables(data)
    for value in (2**31 - 1, -5):
        msg = load_error(patch(data, vector_pos(sg.Operators(0), 6, 1), "i", value), ModelFormatError)
        assert "op 0 (FULLY_CONNECTED)" in msg and f"tensor index {value}" in msg


def test_graph_input_and_output_index_out_of_range():
    for key, value, what in [("inputs", [12], "graph inputs"), ("outputs", [-7], "graph outputs")]:
        spec = fc_spec()
        spec[key] = value
        msg = load_error(build_model(**spec), ModelFormatError)
        assert what in msg and str(value[0]) in msg


def test_graph_input_minus_one_refused():
    """-1 means 'omitted' only for optional op inputs; as a graph input/output or op output it must be
    refused (it would otherwise silently mean the last tensor through Python's negative indexing)."""
    spec = fc_spec()
    spec["ops"][0]["outputs"] = [-1]
    spec["outputs"] = [-1]
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "-1" in msg
    spec = fc_spec()
    spec["tensors"][3], spec["tensors"][0] = (
        spec["tensors"][0],
        spec["tensors"][3],
    )  # input is the last tensor
    spec["ops"][0].update(inputs=[3, 1, 2], outputs=[0])
    spec.update(inputs=[-1], outputs=[0])
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "graph inputs" in msg and "-1" in msg


def test_buffer_index_out_of_range():
    data = fc_model()
    _, sg = _tables(data)
    for value in (99, 2**32 - 1):
        msg = load_error(patch(data, field_pos(sg.Tensors(1), 8), "I", value), ModelFormatError)
        assert "tensor 1 'w'" in msg and "buffer index" in msg


def test_opcode_index_out_of_range():
    data = fc_model()
    _, sg = _tables(data)
    op = sg.Operators(0)
    off = op._tab.Offset(4)
    if not off:  # index 0 is the default and not stored: point the op at a bad code through a second op
        spec = fc_spec()
        spec["tensors"].append(q8("out2", [1, 4], 0.1, 2))
        spec["ops"].append({"op": "RELU", "inputs": [3], "outputs": [4]})
        spec["outputs"] = [4]
        data = build_model(**spec)
        _, sg = _tables(data)
        op = sg.Operators(1)
    msg = load_error(patch(data, field_pos(op, 4), "I", 77), ModelFormatError)
    assert "opcode index 77" in msg


def test_unknown_builtin_code_is_unsupported():
    data = fc_model()
    model, _ = _tables(data)
    code = model.OperatorCodes(0)
    data = patch(data, field_pos(code, 10), "i", 4000)  # builtin_code beyond every known operator
    data = patch(data, field_pos(code, 4), "b", 127)  # deprecated_builtin_code: "look at builtin_code"
    msg = load_error(data, UnsupportedError)
    assert "op 0" in msg and "4000" in msg


def test_negative_shape():
    for tensor in (0, 3):
        spec = fc_spec(**{f"{tensor}_shape": [1, -8] if tensor == 0 else [-1, 4]})
        msg = load_error(build_model(**spec), ModelFormatError)
        assert f"tensor {tensor} '{'in' if tensor == 0 else 'out'}'" in msg and "negative" in msg
    # a constant with a negative dimension, patched in place
    msg = load_error(patch_tensor_shape(fc_model(), 1, 0, -4), ModelFormatError)
    assert "tensor 1 'w'" in msg


def test_overflowing_shape():
    """Element counts past int64 (numpy's np.prod wraps around) must not load."""
    for shape in ([1, 2**30, 2**30, 8], [1, 2**31 - 1, 2**31 - 1, 2**31 - 1]):
        msg = load_error(fc_model(**{"0_shape": shape}))
        assert "tensor 0 'in'" in msg or "op 0 (FULLY_CONNECTED)" in msg, msg


def test_huge_activation_is_an_engine_error():
    """A well-formed model whose activations would need terabytes: an EngineError, not MemoryError."""
    spec = conv_spec()
    for t in (0, 3, 4):
        spec["tensors"][t]["shape"][1:3] = [1 << 20, 1 << 20]
    msg = load_error(build_model(**spec))
    assert "op 0 (CONV_2D)" in msg or "tensor 0 'x'" in msg, msg


def test_buffer_shorter_than_shape():
    data = patch_tensor_shape(fc_model(), 1, 0, 5)  # weights [5, 8] with 4x8 bytes of data
    msg = load_error(data, ModelFormatError)
    assert "tensor 1 'w'" in msg and "32 bytes" in msg and "40" in msg
    data = patch_tensor_shape(fc_model(), 2, 0, 3)  # int32 bias [3] with 16 bytes
    msg = load_error(data, ModelFormatError)
    assert "tensor 2 'b'" in msg and "16 bytes" in msg


@pytest.mark.parametrize("scale", [0.0, float("nan"), float("inf"), -0.1, float("-inf")])
@pytest.mark.parametrize("tensor", [0, 1, 3])
def test_bad_scale(scale, tensor):
    msg = load_error(fc_model(**{f"{tensor}_scale": [scale]}), ModelFormatError)
    assert f"tensor {tensor} '{['in', 'w', 'b', 'out'][tensor]}'" in msg and "scale" in msg


def test_bad_per_channel_scale_inside_array():
    spec = conv_spec()
    spec["tensors"][1]["scale"] = [0.01, float("nan")]
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "tensor 1 'w'" in msg and "scale" in msg


@pytest.mark.parametrize(
    "dtype,zp",
    [("int8", 128), ("int8", -129), ("int8", 1000), ("uint8", -1), ("uint8", 256), ("int16", 40000)],
)
def test_zero_point_out_of_dtype_range(dtype, zp):
    data = fc_model(**{"0_dtype": dtype, "0_zero_point": [zp], "3_dtype": dtype})
    msg = load_error(data, ModelFormatError)
    assert "tensor 0 'in'" in msg and "zero point" in msg


def test_zero_point_vector_shorter_than_scale():
    """An empty zero_point vector next to one scale (found by fuzzing: IndexError in Tensor.describe)."""
    for tensor in (0, 1, 3):
        msg = load_error(fc_model(**{f"{tensor}_zero_point": []}), ModelFormatError)
        assert f"tensor {tensor} '" in msg and "zero point" in msg, msg
    spec = conv_spec()
    spec["tensors"][1]["zero_point"] = [0]  # 2 per-channel scales, 1 zero point
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "tensor 1 'w'" in msg, msg


def test_zero_point_int64_extremes():
    data = fc_model(**{"3_zero_point": [2**62]})
    msg = load_error(data, ModelFormatError)
    assert "tensor 3 'out'" in msg and "zero point" in msg


def test_per_channel_wrong_length():
    spec = conv_spec()
    spec["tensors"][1].update(scale=[0.01, 0.02, 0.03], zero_point=[0, 0, 0])  # 3 scales, 2 filters
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "tensor 1 'w'" in msg and "3" in msg
    spec = conv_spec()
    spec["tensors"][1].update(zero_point=[0, 0, 0])  # 2 scales, 3 zero points
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "tensor 1 'w'" in msg and "zero point" in msg
    spec = conv_spec()
    spec["tensors"][2].update(scale=[5e-4] * 5, zero_point=[0] * 5)  # bias [2] with 5 scales
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "tensor 2 'b'" in msg


@pytest.mark.parametrize("axis", [4, 17, -1, 2**31 - 1])
def test_per_channel_axis_out_of_range(axis):
    spec = conv_spec()
    spec["tensors"][1]["quantized_dimension"] = axis
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "tensor 1 'w'" in msg and "dimension" in msg


def test_per_channel_on_rank_one_bias_with_filter_axis(models_dir):
    """TFLite Micro's converter writes the depthwise filter's quantized_dimension (3) on the rank-1 bias
    too (person_detect_int8). TFLite Micro runs it; the engine must not refuse the model for it."""
    path = models_dir / "person_detect_int8.tflite"
    m = engine.load(path)  # loads, and runs as TFLite Micro does
    x = np.random.default_rng(5).integers(-128, 128, (1, 96, 96, 1)).astype(np.int8)
    np.testing.assert_array_equal(m.run(x)[0], micro_run(path, [x])[0])


# -------------------------------------------------------------------------------------------- graph
def test_op_writing_graph_input_is_refused():
    """ADD broadcasting a [4096, 8] constant into the graph input [1, 8]: used to segfault (the kernel
    wrote past the caller's array). Run in a subprocess so a regression cannot kill the test session."""
    code = """
import numpy as np, engine
from tests.tflite_builder import build_model
q = dict(dtype='int8', scale=[0.05], zero_point=[0])
data = build_model(
    tensors=[dict(name='in', shape=[1, 8], **q), dict(name='c', shape=[4096, 8], data=np.ones((4096, 8)), **q)],
    ops=[dict(op='ADD', inputs=[0, 1], outputs=[0])], inputs=[0], outputs=[0])
try:
    m = engine.load(data)
    x = np.zeros((1, 8), np.int8)
    m.run(x)
    print('RAN', x.tolist())
except engine.ModelFormatError as e:
    print('REFUSED', e)
"""
    out = _subprocess(code)
    assert out.startswith("REFUSED") and "op 0 (ADD)" in out and "tensor 0 'in'" in out, out


def test_op_writing_constant_is_refused():
    spec = fc_spec()
    spec["tensors"].append(q8("y", [4, 8]))
    spec["ops"].append({"op": "ADD", "inputs": [3, 3], "outputs": [1]})  # overwrites the FC's weights
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "op 1 (ADD)" in msg and "tensor 1 'w'" in msg


def test_tensor_with_two_producers_is_refused():
    spec = fc_spec()
    spec["ops"].append({"op": "FULLY_CONNECTED", "inputs": [0, 1, 2], "outputs": [3]})
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "op 1 (FULLY_CONNECTED)" in msg and "tensor 3 'out'" in msg


def test_cycle_and_use_before_definition():
    spec = fc_spec()
    spec["tensors"].append(q8("z", [1, 4]))
    spec["ops"] = [
        {"op": "ADD", "inputs": [4, 3], "outputs": [3]},
        {"op": "ADD", "inputs": [3, 3], "outputs": [4]},
    ]
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "op 0 (ADD)" in msg and "before" in msg


def test_graph_output_never_produced():
    spec = fc_spec()
    spec["tensors"].append(q8("orphan", [1, 4]))
    spec["outputs"] = [3, 4]
    msg = load_error(build_model(**spec), ModelFormatError)
    assert "4" in msg and "never produced" in msg


@pytest.mark.parametrize("inputs", [[0], [0, 1, 2, 3, 0]])
def test_wrong_op_arity(inputs):
    spec = fc_spec()
    spec["ops"][0]["inputs"] = inputs
    msg = load_error(build_model(**spec))
    assert "op 0 (FULLY_CONNECTED)" in msg


def test_wrong_op_arity_message_is_specific():
    """Too few inputs / no outputs: the message should say so, not relay a Python unpacking error."""
    spec = fc_spec()
    spec["ops"][0]["inputs"] = [0]
    msg = load_error(build_model(**spec))
    assert "op 0 (FULLY_CONNECTED)" in msg and "unpack" not in msg, msg
    spec = fc_spec()
    spec["ops"][0]["inputs"] = [0, -1, 2]  # the required weights omitted
    msg = load_error(build_model(**spec))
    assert "op 0 (FULLY_CONNECTED)" in msg and "NoneType" not in msg, msg


@pytest.mark.parametrize("dtype", ["float16", "float64", "uint16", "uint32", "complex64", "string"])
@pytest.mark.parametrize("tensor", [0, 3])
def test_unsupported_tensor_type(dtype, tensor):
    msg = load_error(fc_model(**{f"{tensor}_dtype": dtype}), UnsupportedError)
    assert f"tensor {tensor}" in msg and dtype in msg


def test_unknown_tensor_type_enum():
    data = fc_model()
    _, sg = _tables(data)
    data = patch(data, field_pos(sg.Tensors(3), 6), "b", 99)
    msg = load_error(data)
    assert "tensor 3" in msg and "99" in msg


# -------------------------------------------------------------------------------------- unsupported
def test_lstm_is_unsupported():
    spec = fc_spec()
    spec["tensors"].append(q8("y", [1, 4]))
    spec["ops"].append({"op": "LSTM", "inputs": [3], "outputs": [4]})
    spec["outputs"] = [4]
    msg = load_error(build_model(**spec), UnsupportedError)
    assert "op 1 (LSTM)" in msg


def test_made_up_custom_op_is_unsupported():
    spec = fc_spec()
    spec["tensors"].append(q8("y", [1, 4]))
    spec["ops"].append(
        {
            "op": "MadeUpCustomOp",
            "inputs": [3],
            "outputs": [4],
            "custom_options": flexbuffer_options({"alpha": 2}),
        }
    )
    spec["outputs"] = [4]
    msg = load_error(build_model(**spec), UnsupportedError)
    assert "op 1 (MadeUpCustomOp)" in msg


def test_malformed_custom_options():
    """Custom options that are not a flexbuffer: a ModelFormatError naming the op."""
    spec = fc_spec()
    spec["tensors"].append(q8("y", [1, 4]))
    spec["ops"].append(
        {"op": "MadeUpCustomOp", "inputs": [3], "outputs": [4], "custom_options": b"\xff\x13\x00\x07garbage"}
    )
    spec["outputs"] = [4]
    msg = load_error(build_model(**spec))
    assert "op 1" in msg, msg


def test_float_model_runs_and_hybrid_is_refused_at_load():
    """A float32 CONV_2D model runs (the reference's float kernel); one with int8 weights on a float
    input (a hybrid kernel) is refused by load() with an UnsupportedError, never half-run."""
    spec = conv_spec("float32")
    x = np.random.default_rng(2).normal(size=(1, 5, 5, 1)).astype(np.float32)
    want = reference_run(build_model(**spec), [x], preserve_all=False)["outputs"][0]
    np.testing.assert_array_equal(engine.load(build_model(**spec)).run(x)[0], want)
    hybrid = {"dtype": "int8", "data": np.ones((2, 3, 3, 1)), "scale": [0.01], "zero_point": [0]}
    spec["tensors"][1] = dict(spec["tensors"][1], **hybrid)
    msg = load_error(build_model(**spec), UnsupportedError)
    assert "op 0 (CONV_2D)" in msg and "float32" in msg


def test_int16_activations_run_and_int16_hard_swish_is_refused():
    """16x8 models run (tests/test_int16.py); where the reference has no int16 kernel, the engine refuses."""
    model = build_model(**conv_spec("int8", "int16"))
    x = np.arange(-12, 13, dtype=np.int16).reshape(1, 5, 5, 1) * 1000
    want = reference_run(model, [x], preserve_all=False)["outputs"][0]
    np.testing.assert_array_equal(engine.load(model).run(x)[0], want)
    spec = {
        "tensors": [q8("x", [1, 4], 0.01, 0, "int16"), q8("y", [1, 4], 0.01, 0, "int16")],
        "ops": [{"op": "HARD_SWISH", "inputs": [0], "outputs": [1]}],
        "inputs": [0],
        "outputs": [1],
    }
    msg = load_error(build_model(**spec), UnsupportedError)
    assert "op 0 (HARD_SWISH)" in msg and "int16" in msg


def test_unsupported_option_value():
    spec = fc_spec()
    spec["ops"][0]["options"] = {"fused_activation_function": "SIGN_BIT"}
    msg = load_error(build_model(**spec), UnsupportedError)
    assert "op 0 (FULLY_CONNECTED)" in msg and "SIGN_BIT" in msg
    spec = conv_spec()
    spec["ops"][0]["options"].update(stride_w=0)
    msg = load_error(build_model(**spec), UnsupportedError)
    assert "op 0 (CONV_2D)" in msg and "stride" in msg


def test_op_version_is_not_checked_but_runs_exactly():
    """The engine validates features (types, options) rather than op version numbers: a version-99 op
    whose features are supported runs and gives the reference kernels' result for version 1."""
    spec = fc_spec()
    x = np.arange(-4, 4, dtype=np.int8).reshape(1, 8)
    want = reference_run(build_model(**spec), [x], preserve_all=False)["outputs"][0]
    spec["ops"][0]["version"] = 99
    np.testing.assert_array_equal(engine.load(build_model(**spec)).run(x)[0], want)
    # LiteRT itself refuses the version it does not know: the engine differs here on purpose
    with pytest.raises(OracleError, match="version '99'"):
        reference_run(build_model(**spec), [x], preserve_all=False)


# ---------------------------------------------------------------------------------------------- .npz
def npz_members(model: engine.Model, tmp_path: Path) -> dict[str, bytes]:
    path = tmp_path / "model.npz"
    model.save(path)
    with zipfile.ZipFile(path) as z:
        return {name: z.read(name) for name in z.namelist()}


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=True)
    return buf.getvalue()


def graph_json(members: dict[str, bytes]) -> dict:
    return json.loads(np.load(io.BytesIO(members["graph.json.npy"])).tobytes())


def with_graph_json(members: dict[str, bytes], meta) -> dict[str, bytes]:
    text = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    return dict(members, **{"graph.json.npy": npy(np.frombuffer(text, np.uint8))})


def save_npz_to(tmp_path: Path, members: dict[str, bytes], name: str = "bad.npz") -> Path:
    path = tmp_path / name
    path.write_bytes(zip_bytes(members))
    return path


def test_npz_round_trip_is_exact(small_model, small_bytes, tmp_path):
    """The baseline the .npz corruptions start from: save + load gives the same outputs."""
    path = tmp_path / "m.npz"
    small_model.save(path)
    x = np.random.default_rng(0).integers(-128, 128, (1, 6, 6, 2)).astype(np.int8)
    np.testing.assert_array_equal(engine.load(path).run(x)[0], small_model.run(x)[0])


def test_npz_missing_array(small_model, tmp_path):
    members = npz_members(small_model, tmp_path)
    del members["t1.npy"]
    path = save_npz_to(tmp_path, members)
    msg = load_error(path, ModelFormatError)
    assert str(path) in msg and "tensor 1" in msg and "t1" in msg


def test_npz_missing_graph_json(small_model, tmp_path):
    members = npz_members(small_model, tmp_path)
    del members["graph.json.npy"]
    path = save_npz_to(tmp_path, members)
    msg = load_error(path, ModelFormatError)
    assert str(path) in msg and "graph.json" in msg


def test_npz_extra_array(small_model, tmp_path):
    members = npz_members(small_model, tmp_path)
    members["t999.npy"] = npy(np.zeros(3, np.int8))
    path = save_npz_to(tmp_path, members)
    msg = load_error(path, ModelFormatError)
    assert str(path) in msg and "t999" in msg


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.int64])
def test_npz_wrong_dtype(small_model, tmp_path, dtype):
    members = npz_members(small_model, tmp_path)
    members["t1.npy"] = npy(np.load(io.BytesIO(members["t1.npy"])).astype(dtype))
    path = save_npz_to(tmp_path, members)
    msg = load_error(path, ModelFormatError)
    assert str(path) in msg and "tensor 1" in msg and "dtype" in msg


def test_npz_wrong_shape(small_model, tmp_path):
    members = npz_members(small_model, tmp_path)
    members["t1.npy"] = npy(np.load(io.BytesIO(members["t1.npy"])).reshape(-1))
    path = save_npz_to(tmp_path, members)
    msg = load_error(path, ModelFormatError)
    assert "tensor 1" in msg and "shape" in msg


class _Marker:
    """Unpickling this writes a file: proof that the loader ran pickle on an untrusted file."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "unpickled!"))


def test_npz_pickled_object_array_is_refused(small_model, tmp_path):
    marker = tmp_path / "pwned.txt"
    members = npz_members(small_model, tmp_path)
    evil = np.empty(1, dtype=object)
    evil[0] = _Marker(str(marker))
    for name in ("t1.npy", "graph.json.npy"):
        bad = dict(members, **{name: npy(evil)})
        path = save_npz_to(tmp_path, bad, f"evil_{name}.npz")
        msg = load_error(path, ModelFormatError)
        assert str(path) in msg
        assert not marker.exists(), "the loader unpickled an object array"
    # a raw pickle stream as a member (not an .npy at all)
    bad = dict(members, **{"t1.npy": pickle.dumps(_Marker(str(marker)))})
    load_error(save_npz_to(tmp_path, bad, "evil_raw.npz"), ModelFormatError)
    assert not marker.exists()


def test_npz_member_not_npy(small_model, tmp_path):
    """A member that is not an .npy file: np.load hands back raw bytes instead of an array."""
    members = npz_members(small_model, tmp_path)
    for name in ("graph.json.npy", "t1.npy"):
        bad = dict(members, **{name: b"\x93NUMPX not an npy file"})
        path = save_npz_to(tmp_path, bad, f"raw_{name}.npz")
        msg = load_error(path, ModelFormatError)
        assert str(path) in msg


def test_npz_corrupt_npy_header(small_model, tmp_path):
    members = npz_members(small_model, tmp_path)
    good = members["t1.npy"]
    header_len = struct.unpack("<H", good[8:10])[0]
    variants = [
        good[:72] + good[85:],  # the header dict cut in the middle
        good[:10]
        + b"{'descr': '|i1', 'fortran_order': False, 'shape': (4, 3, 3, 20), }".ljust(header_len)
        + good[10 + header_len :],  # more elements than the data holds
        good[:10]
        + b"{'descr': '|i1', 'fortran_order': False, 'shape': (1099511627776,), }".ljust(header_len)
        + good[10 + header_len :],  # claims a terabyte
        good[:10]
        + b"{'descr': 'O', 'fortran_order': False, 'shape': (2,), }".ljust(header_len)
        + good[10 + header_len :],
        good[:10]
        + b"{'descr': '<i4', 'fortran_order': False, 'shape': (-3,), }".ljust(header_len)
        + good[10 + header_len :],
        good[:10] + b"__import__('os').system('true')".ljust(header_len) + good[10 + header_len :],
        good[:20],
    ]
    for k, bad_member in enumerate(variants):
        path = save_npz_to(tmp_path, dict(members, **{"t1.npy": bad_member}), f"hdr{k}.npz")
        msg = load_error(path, ModelFormatError)
        assert str(path) in msg, (k, msg)


def test_npz_zip_crc_and_truncation(small_model, tmp_path):
    path = tmp_path / "m.npz"
    small_model.save(path)
    data = path.read_bytes()
    for cut in np.linspace(4, len(data) - 1, 40).astype(int):
        load_error(data[:cut], ModelFormatError)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside a member: the CRC check catches it
    load_error(bytes(flipped), ModelFormatError)


def test_npz_newer_format_version(small_model, tmp_path):
    members = npz_members(small_model, tmp_path)
    meta = graph_json(members)
    meta["format_version"] += 1
    path = save_npz_to(tmp_path, with_graph_json(members, meta))
    msg = load_error(path, ModelFormatError)
    assert str(path) in msg and "newer" in msg and str(meta["format_version"]) in msg


def _json_edits(meta: dict) -> list[tuple[str, object]]:
    """(label, edited graph.json) pairs, each malformed in one way."""
    import copy

    def edit(fn):
        m = copy.deepcopy(meta)
        fn(m)
        return m

    def drop(key):
        return lambda m: m.pop(key)

    def tensor(i, key, value):
        return lambda m: m["tensors"][i].__setitem__(key, value)

    def op(i, key, value):
        return lambda m: m["ops"][i].__setitem__(key, value)

    return [
        ("not json", b"{not json"),
        ("not utf-8", b"\xff\xfe{}"),
        ("a list", b"[1, 2]"),
        ("null", b"null"),
        ("no format_version", edit(drop("format_version"))),
        ("string format_version", edit(lambda m: m.__setitem__("format_version", "1"))),
        ("no tensors", edit(drop("tensors"))),
        ("no ops", edit(drop("ops"))),
        ("tensors not a list", edit(lambda m: m.__setitem__("tensors", 5))),
        ("tensor is a string", edit(lambda m: m["tensors"].__setitem__(0, "x"))),
        ("unknown dtype", edit(tensor(0, "dtype", "int3"))),
        ("shape a string", edit(tensor(0, "shape", "abc"))),
        ("shape nested", edit(tensor(0, "shape", [[1], 2]))),
        ("huge dim", edit(tensor(0, "shape", [1, 10**30, 6, 2]))),
        ("scale a string", edit(tensor(0, "scale", "x"))),
        ("scale nested", edit(tensor(0, "scale", [[0.1]]))),
        ("zero_point huge", edit(tensor(0, "zero_point", [10**30]))),
        ("quant_axis string", edit(tensor(1, "quant_axis", "x"))),
        ("op input out of range", edit(op(0, "inputs", [0, 999, 2]))),
        ("op input negative", edit(op(0, "inputs", [-7, 1, 2]))),
        ("op output -1", edit(op(0, "outputs", [-1]))),
        ("op inputs a dict", edit(op(0, "inputs", {"a": 1}))),
        ("op type int", edit(op(0, "type", 5))),
        ("op options a list", edit(op(0, "options", [1]))),
        ("op options wrong types", edit(op(0, "options", {"stride_w": "two", "padding": 3}))),
        ("graph input out of range", edit(lambda m: m.__setitem__("inputs", [99]))),
        ("graph outputs missing", edit(drop("outputs"))),
        ("const flag on activation", edit(tensor(3, "const", True))),
        ("const flag off on weights", edit(tensor(1, "const", False))),
    ]


def test_npz_malformed_graph_json(small_model, tmp_path):
    members = npz_members(small_model, tmp_path)
    meta = graph_json(members)
    problems = []
    for label, edited in _json_edits(meta):
        path = save_npz_to(tmp_path, with_graph_json(members, edited), re.sub(r"\W", "_", label) + ".npz")
        try:
            engine.load(path)
            problems.append(f"{label}: loaded")
        except engine.EngineError as e:
            if not re.search(r"op \d+ \(|tensor \d+", str(e)) and str(path) not in str(e):
                problems.append(f"{label}: message names neither the file, an op nor a tensor: {e}")
        except Exception as e:  # noqa: BLE001
            problems.append(f"{label}: {type(e).__name__}: {e}")
    assert not problems, "\n".join(problems)


def test_npz_graph_json_numbers_are_not_coerced(small_model, tmp_path):
    """Floats where integers belong (shape [1.5, 2], zero point 0.5) are corruption, not rounding."""
    members = npz_members(small_model, tmp_path)
    for label, key, value in [("shape", "shape", [1, 6.5, 6, 2]), ("zero point", "zero_point", [3.5])]:
        meta = graph_json(members)
        meta["tensors"][0][key] = value
        path = save_npz_to(tmp_path, with_graph_json(members, meta), f"float_{key}.npz")
        msg = load_error(path, ModelFormatError)
        assert "tensor 0" in msg, (label, msg)


NOT_INT = "must be an integer in [1, 65536]"


@pytest.mark.parametrize(
    "value, error, words",
    [
        (1e308, UnsupportedError, NOT_INT),
        (2**70, ModelFormatError, "out of the int32 range"),
        (-(2**70), ModelFormatError, "out of the int32 range"),
        ("2", UnsupportedError, NOT_INT),
        (2.5, UnsupportedError, NOT_INT),
        (None, ModelFormatError, "unsupported type"),
        ([1, 2], UnsupportedError, NOT_INT),
    ],
)
def test_npz_option_values_are_checked(small_model, tmp_path, value, error, words):
    """Options in graph.json flow into prepare(): absurd values are refused at load, naming the op
    (stride_h = 1e308 used to reach the numba kernel and fail there with a TypingError)."""
    members = npz_members(small_model, tmp_path)
    meta = graph_json(members)
    assert meta["ops"][1]["type"] == "DEPTHWISE_CONV_2D"
    meta["ops"][1]["options"]["stride_h"] = value
    path = save_npz_to(tmp_path, with_graph_json(members, meta), "options.npz")
    with pytest.raises(error) as e:  # refused at load (never at run()), naming the op and option
        engine.load(path)
    msg = str(e.value)
    assert type(e.value) is error and re.search(r"op 1\b", msg) and "stride_h" in msg and words in msg, msg


# ---------------------------------------------------------------------------------------------- run()
def test_run_wrong_shape(small_model):
    for shape in [(1, 6, 6), (1, 6, 6, 3), (1, 6, 7, 2), (6, 6, 2), (1, 1, 6, 6, 2), ()]:
        msg = run_error(small_model, np.zeros(shape, np.int8))
        assert "'x'" in msg and "shape" in msg, msg


def test_run_wrong_dtype(small_model):
    for dtype in [np.uint8, np.int16, np.int64, bool]:  # floats are quantized (test_first_user.py, point 11)
        msg = run_error(small_model, np.zeros((1, 6, 6, 2), dtype))
        assert "'x'" in msg and "dtype" in msg, msg
    for bad in ["abc", None, [[1, 2]], object()]:
        run_error(small_model, bad)


def test_run_batch_zero(small_model):
    msg = run_error(small_model, np.zeros((0, 6, 6, 2), np.int8))
    assert "'x'" in msg


def test_run_batch_too_large_is_an_engine_error(small_model):
    """A batch whose activations cannot be allocated: an EngineError (or MemoryError-free refusal)."""
    x = np.broadcast_to(np.zeros((1, 6, 6, 2), np.int8), (1 << 40, 6, 6, 2))  # no real memory behind it
    with pytest.raises(engine.EngineError):
        small_model.run(x)


def test_run_dict_with_wrong_names(small_model):
    x = np.zeros((1, 6, 6, 2), np.int8)
    msg = run_error(small_model, {"not_x": x})
    assert "not_x" in msg and "'x'" in msg
    msg = run_error(small_model, {"x": x, "extra": x})
    assert "extra" in msg
    msg = run_error(small_model, {})
    assert "x" in msg
    np.testing.assert_array_equal(small_model.run({"x": x})[0], small_model.run(x)[0])


def test_run_wrong_number_of_inputs(small_model):
    x = np.zeros((1, 6, 6, 2), np.int8)
    run_error(small_model, [x, x])
    run_error(small_model, [])


def test_run_non_contiguous_and_readonly_inputs_work(small_model):
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (2, 6, 12, 2)).astype(np.int8)
    view = x[:, :, ::2, :]  # strided
    ro = np.ascontiguousarray(view)
    ro.setflags(write=False)
    want = small_model.run(np.ascontiguousarray(view))[0]
    np.testing.assert_array_equal(small_model.run(view)[0], want)
    np.testing.assert_array_equal(small_model.run(ro)[0], want)
    np.testing.assert_array_equal(x[:, :, ::2, :], ro)  # inputs are never written


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_run_nan_in_float_inputs(bad):
    m = engine.load(detection_model())
    rng = np.random.default_rng(0)
    boxes = rng.normal(0, 1, (1, 6, 4)).astype(np.float32)
    scores = rng.uniform(0, 1, (1, 6, 3)).astype(np.float32)
    m.run([boxes, scores])  # the clean input runs
    scores[0, 2, 1] = bad
    msg = run_error(m, [boxes, scores])
    assert "'scores'" in msg and ("NaN" in msg or "inf" in msg)
    msg = run_error(m, {"boxes": scores, "scores": boxes})
    assert "'boxes'" in msg and "shape" in msg


def test_errors_have_the_readme_exit_codes():
    """README "Errors": EngineError 1, ModelFormatError 2, UnsupportedError 3, InputError 4 (also a
    ValueError), ImageError 5, FetchError 6."""
    from engine.errors import EngineError, FetchError, ImageError

    table = [(EngineError, 1), (ModelFormatError, 2), (UnsupportedError, 3), (InputError, 4)]
    table += [(ImageError, 5), (FetchError, 6)]
    assert [(cls, cls.exit_code) for cls, _ in table] == table
    assert all(issubclass(cls, EngineError) for cls, _ in table) and issubclass(InputError, ValueError)


# ---------------------------------------------------------------------------------------------- misc
def _subprocess(code: str) -> str:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=root, timeout=300
    )
    if proc.returncode != 0:
        return f"CRASHED rc={proc.returncode}\n{proc.stdout}\n{proc.stderr[-2000:]}"
    return proc.stdout.strip()
