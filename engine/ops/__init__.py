"""One module per op. Each module defines

    prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[ndarray | None]) -> Prepared

shapes: the runtime shape of each input (batch included; None for an omitted optional input).
values: each input's value when it is known before running (constants, folded shape ops), else None.
prepare() validates everything and computes per-op constants once; Prepared.run() only computes.
"""

from __future__ import annotations

import importlib

from ..graph import Op
from .common import Prepared, fail

# op type -> module in this package
MODULES = {
    "CONV_2D": "conv2d",
    "DEPTHWISE_CONV_2D": "depthwise_conv2d",
    "FULLY_CONNECTED": "fully_connected",
    "MAX_POOL_2D": "max_pool2d",
    "AVERAGE_POOL_2D": "average_pool2d",
    "ADD": "add",
    "SUB": "sub",
    "MUL": "mul",
    "MEAN": "mean",
    "SOFTMAX": "softmax",
    "LOGISTIC": "logistic",
    "TANH": "tanh",
    "RELU": "relu",
    "RELU6": "relu",
    "HARD_SWISH": "hard_swish",
    "PAD": "pad",
    "PADV2": "pad",
    "RESHAPE": "reshape",
    "SQUEEZE": "squeeze",
    "CONCATENATION": "concatenation",
    "QUANTIZE": "quantize",
    "DEQUANTIZE": "dequantize",
    "SHAPE": "shape",
    "STRIDED_SLICE": "strided_slice",
    "PACK": "pack",
    "TFLite_Detection_PostProcess": "detection_postprocess",
}


def kernel_for(op: Op):
    """The prepare function of an op, or an UnsupportedError naming it."""
    name = MODULES.get(op.type)
    if name is None:
        raise fail(op, f"operator {op.type} is not supported (supported: {', '.join(sorted(MODULES))})")
    try:
        module = importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise fail(op, f"operator {op.type} is not implemented yet") from None
    return module.prepare


__all__ = ["MODULES", "Prepared", "kernel_for"]
