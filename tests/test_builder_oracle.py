"""The test infrastructure itself: the .tflite builder round-trips through the importer, the oracle runs."""

from __future__ import annotations

import numpy as np
import pytest
from flatbuffers import flexbuffers

from engine.formats.tflite import import_tflite
from tests import oracle
from tests.oracle import OracleCrashed, OracleError, micro_run, reference_run, reference_run_many
from tests.tflite_builder import build_model, detection_model, flexbuffer_options, options_type

pytestmark = pytest.mark.usefixtures("litert")


def conv_model(rng: np.random.Generator, activation: str = "RELU6") -> bytes:
    """x int8 [1,5,5,2] -> CONV_2D per-channel (4 filters 3x3, stride 2, SAME) -> RESHAPE [-1, 36]."""
    w = rng.integers(-127, 128, (4, 3, 3, 2)).astype(np.int8)
    w_scale = [0.01, 0.02, 0.03, 0.04]
    bias = rng.integers(-1000, 1000, 4).astype(np.int32)
    tensors = [
        {"name": "x", "shape": [1, 5, 5, 2], "dtype": "int8", "scale": [0.05], "zero_point": [3]},
        {
            "name": "w",
            "shape": [4, 3, 3, 2],
            "dtype": "int8",
            "data": w,
            "scale": w_scale,
            "zero_point": [0] * 4,
        },
        {
            "name": "b",
            "shape": [4],
            "dtype": "int32",
            "data": bias,
            "scale": [0.05 * s for s in w_scale],
            "zero_point": [0] * 4,
        },
        {"name": "y", "shape": [1, 3, 3, 4], "dtype": "int8", "scale": [0.1], "zero_point": [-2]},
        {"name": "new_shape", "shape": [2], "dtype": "int32", "data": np.array([-1, 36], np.int32)},
        {"name": "z", "shape": [1, 36], "dtype": "int8", "scale": [0.1], "zero_point": [-2]},
    ]
    ops = [
        {
            "op": "CONV_2D",
            "inputs": [0, 1, 2],
            "outputs": [3],
            "options": {
                "padding": "SAME",
                "stride_w": 2,
                "stride_h": 2,
                "fused_activation_function": activation,
            },
        },
        {"op": "RESHAPE", "inputs": [3, 4], "outputs": [5], "options": {"new_shape": [-1, 36]}},
    ]
    return build_model(tensors, ops, inputs=[0], outputs=[5])


def test_roundtrip_through_importer():
    rng = np.random.default_rng(1)
    g = import_tflite(conv_model(rng, "RELU"))
    assert [t.name for t in g.tensors] == ["x", "w", "b", "y", "new_shape", "z"]
    assert g.inputs == [0] and g.outputs == [5]
    conv, reshape = g.ops
    assert conv.type == "CONV_2D" and conv.inputs == [0, 1, 2] and conv.outputs == [3]
    assert conv.options["padding"] == "SAME" and conv.options["fused_activation_function"] == "RELU"
    assert (conv.options["stride_w"], conv.options["stride_h"]) == (2, 2)
    assert (conv.options["dilation_wfactor"], conv.options["dilation_hfactor"]) == (1, 1)  # defaults
    assert reshape.options == {"new_shape": [-1, 36]}
    w = g.tensors[1]
    assert w.data.dtype == np.int8 and w.data.shape == (4, 3, 3, 2) and w.quant_axis == 0
    np.testing.assert_array_equal(w.scale, np.float32([0.01, 0.02, 0.03, 0.04]))
    assert g.tensors[0].zero_point.tolist() == [3] and g.tensors[0].data is None
    assert g.tensors[2].data.dtype == np.int32


def test_roundtrip_options_and_custom_op():
    # vector options, bools, floats, and a custom op with flexbuffer options
    tensors = [{"name": f"t{i}", "shape": [1, 2, 1, 3], "dtype": "float32"} for i in range(4)]
    tensors[2]["shape"] = [2, 3]
    ops = [
        {"op": "SQUEEZE", "inputs": [0], "outputs": [2], "options": {"squeeze_dims": [0, 2]}},
        {"op": "MEAN", "inputs": [0, -1], "outputs": [1], "options": {"keep_dims": True}},
        {"op": "SOFTMAX", "inputs": [1], "outputs": [3], "options": {"beta": 0.5}},
        {
            "op": "MyCustom",
            "inputs": [3],
            "outputs": [1],
            "custom_options": flexbuffer_options({"a": 3, "b": 1.5, "c": True}),
        },
    ]
    g = import_tflite(build_model(tensors, ops, inputs=[0], outputs=[2]))
    assert g.ops[0].options == {"squeeze_dims": [0, 2]}
    assert g.ops[1].options == {"keep_dims": True} and g.ops[1].inputs == [0, -1]
    assert g.ops[2].options == {"beta": 0.5}
    assert g.ops[3].type == "MyCustom" and g.ops[3].options == {"a": 3, "b": 1.5, "c": True}
    assert options_type("MAX_POOL_2D") == "Pool2DOptions" and options_type("RELU") is None
    assert flexbuffers.Loads(flexbuffer_options({"y": 1, "x": 2})) == {"x": 2, "y": 1}


def test_builder_rejects_unknown_option():
    t = [{"name": "a", "shape": [1], "dtype": "int8"}, {"name": "b", "shape": [1], "dtype": "int8"}]
    with pytest.raises(ValueError, match="strides"):
        build_model(
            t, [{"op": "CONV_2D", "inputs": [0], "outputs": [1], "options": {"strides": 2}}], [0], [1]
        )


def test_reference_run_conv():
    rng = np.random.default_rng(2)
    model = conv_model(rng)
    x = rng.integers(-128, 128, (1, 5, 5, 2)).astype(np.int8)
    ref = reference_run(model, [x])
    (z,) = ref["outputs"]
    assert z.dtype == np.int8 and z.shape == (1, 36)
    # RELU6 with scale 0.1, zero point -2 clamps to [-2, 58]
    assert z.min() >= -2 and z.max() <= 58
    assert set(ref["tensors"]) == {"x", "y", "z"}  # every non-constant tensor, no constants
    np.testing.assert_array_equal(ref["tensors"]["y"].reshape(1, 36), z)
    np.testing.assert_array_equal(ref["tensors"]["x"], x)
    # TFLite Micro runs the same reference numerics
    np.testing.assert_array_equal(micro_run(model, [x])[0], z)


def test_reference_run_many_resizes_batch():
    rng = np.random.default_rng(3)
    model = conv_model(rng)
    xs = [rng.integers(-128, 128, (1, 5, 5, 2)).astype(np.int8) for _ in range(3)]
    batch = np.concatenate(xs)
    results = reference_run_many(model, [[x] for x in xs] + [[batch]])
    assert len(results) == 4 and results[0]["tensors"] == {}
    np.testing.assert_array_equal(
        results[3]["outputs"][0], np.concatenate([r["outputs"][0] for r in results[:3]])
    )


def test_oracle_errors(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    model = conv_model(rng)
    with pytest.raises(OracleError, match="UINT8"):  # a refusal carries LiteRT's message
        reference_run(model, [np.zeros((1, 5, 5, 2), np.uint8)])
    crasher = tmp_path / "crash.py"
    crasher.write_text("import os\nos.abort()\n")
    monkeypatch.setattr(oracle, "WORKER", crasher)
    with pytest.raises(OracleCrashed, match="SIGABRT"):
        reference_run(model, [np.zeros((1, 5, 5, 2), np.int8)])


def test_custom_detection_postprocess_runs():
    """A custom op with flexbuffer options, as the SSD model has: LiteRT parses the options we write."""
    n, classes = 6, 2
    rng = np.random.default_rng(6)
    model = detection_model()
    g = import_tflite(model)
    assert g.ops[0].type == "TFLite_Detection_PostProcess"
    assert (
        g.ops[0].options["nms_iou_threshold"] == pytest.approx(0.5) and g.ops[0].options["num_classes"] == 2
    )
    boxes = rng.normal(0, 1, (1, n, 4)).astype(np.float32)
    scores = rng.uniform(0, 1, (1, n, classes + 1)).astype(np.float32)
    out_boxes, out_classes, out_scores, count = reference_run(model, [boxes, scores])["outputs"]
    assert out_boxes.shape == (1, 3, 4) and out_classes.shape == (1, 3) and out_scores.shape == (1, 3)
    assert count.shape == (1,) and 1 <= count[0] <= 3
    assert np.all(np.diff(out_scores[0, : int(count[0])]) <= 0)  # sorted by score
