"""What TFLite Micro refuses to run (tflite-micro, tensorflow/lite/micro/kernels/*.cc), checked per op
at load so that numerics="tflm" refuses what the device would refuse instead of computing something
the device never would."""

from __future__ import annotations

from ..graph import Graph, Op

# ops whose TFLM kernels take uint8 data: QUANTIZE and DEQUANTIZE (quantize_common.cc,
# dequantize_common.cc), and those that copy bytes whatever the type (reshape.cc, squeeze.cc, shape.cc)
UINT8_OPS = {"QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE", "SHAPE"}


def refusal(op: Op, g: Graph) -> str | None:
    """Why TFLite Micro cannot run op (its message, where it prints one), or None."""
    data = [g.tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0 and not g.tensors[i].is_const]
    if (
        op.type in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
        and g.tensors[op.inputs[0]].dtype == "uint8"
    ):
        if op.type == "CONV_2D":
            return "uint8 convolution ('Hybrid models are not supported on TFLite Micro.', conv_common.cc)"
        return f"uint8 {op.type} ('Input type UINT8 (3) not supported.')"
    if op.type == "CAST" and g.tensors[op.inputs[0]].dtype == "uint8":
        return "CAST from UINT8 (its kernel casts int8, int16, int32, float32 and bool inputs only)"
    if op.type not in UINT8_OPS and any(t.dtype == "uint8" for t in data):
        t = next(t for t in data if t.dtype == "uint8")
        return f"{t.describe()}: its {op.type} kernel takes no uint8 tensors (TFLite Micro runs int8, int16, float32)"
    if op.type == "TFLite_Detection_PostProcess":
        t = g.tensors[op.inputs[0]]
        if t.dtype != "float32" or g.tensors[op.inputs[1]].dtype != "float32":
            return "quantized box or score inputs (its detection postprocess decodes float32 inputs only)"
    return None
