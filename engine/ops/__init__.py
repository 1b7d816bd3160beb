"""One module per op. Each module defines

    prepare(op: Op, g: Graph, shapes: list[Shape | None], values: list[ndarray | None]) -> Prepared

shapes: the runtime shape of each input (batch included; None for an omitted optional input).
values: each input's value when it is known before running (constants, folded shape ops), else None.
prepare() validates everything and computes per-op constants once; Prepared.run() only computes.
"""

from __future__ import annotations

import importlib

from ..errors import ModelFormatError
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
    "SPLIT": "split",
    "SPLIT_V": "split",
    "TRANSPOSE": "transpose",
    "RESIZE_NEAREST_NEIGHBOR": "resize_nearest_neighbor",
    "RESIZE_BILINEAR": "resize_bilinear",
    "ARG_MAX": "arg_min_max",
    "ARG_MIN": "arg_min_max",
    "DIV": "arith_plain",
    "FLOOR_DIV": "arith_plain",
    "MAXIMUM": "arith_plain",
    "MINIMUM": "arith_plain",
    "CAST": "cast",
    "SQRT": "unary_float",
    "RSQRT": "unary_float",
    "UNPACK": "unpack",
    "GATHER": "gather",
    "GATHER_ND": "gather",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "lstm",
    "LEAKY_RELU": "leaky_relu",
    "SQUARED_DIFFERENCE": "squared_difference",
    "EXP": "exp",
    "REDUCE_MAX": "reduce_max",
    "PRELU": "prelu",
    "TRANSPOSE_CONV": "transpose_conv",
    "BATCH_MATMUL": "batch_matmul",
    "SUM": "reduce_sum",
    "L2_NORMALIZATION": "l2_normalization",
}


ANY = -1  # an op with any number (at least one) of outputs
# op type -> (fewest inputs, most inputs, outputs); the first `fewest` inputs are required
ARITY = {
    "CONV_2D": (2, 3, 1),
    "DEPTHWISE_CONV_2D": (2, 3, 1),
    "FULLY_CONNECTED": (2, 3, 1),
    "ADD": (2, 2, 1),
    "SUB": (2, 2, 1),
    "MUL": (2, 2, 1),
    "MEAN": (2, 2, 1),
    "PAD": (2, 2, 1),
    "PADV2": (2, 3, 1),
    "RESHAPE": (1, 2, 1),
    "CONCATENATION": (1, 1 << 16, 1),
    "STRIDED_SLICE": (4, 4, 1),
    "PACK": (1, 1 << 16, 1),
    "TFLite_Detection_PostProcess": (3, 3, 4),
    "SPLIT": (2, 2, ANY),
    "SPLIT_V": (3, 3, ANY),
    "TRANSPOSE": (2, 2, 1),
    "RESIZE_NEAREST_NEIGHBOR": (2, 2, 1),
    "RESIZE_BILINEAR": (2, 2, 1),
    "ARG_MAX": (2, 2, 1),
    "ARG_MIN": (2, 2, 1),
    "DIV": (2, 2, 1),
    "FLOOR_DIV": (2, 2, 1),
    "MAXIMUM": (2, 2, 1),
    "MINIMUM": (2, 2, 1),
    "UNPACK": (1, 1, ANY),
    "GATHER": (2, 2, 1),
    "GATHER_ND": (2, 2, 1),
    "SQUARED_DIFFERENCE": (2, 2, 1),
    "REDUCE_MAX": (2, 2, 1),
    "PRELU": (2, 2, 1),
    "TRANSPOSE_CONV": (3, 4, 1),
    "BATCH_MATMUL": (2, 2, 1),
    "SUM": (2, 2, 1),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": (1, 24, 1),  # optional inputs in the middle: checked at prepare
}
UNARY = (1, 1, 1)


def check_arity(op: Op) -> None:
    """The one check of an op's input and output counts (and of its required inputs): ops rely on it."""
    fewest, most, n_out = ARITY.get(op.type, UNARY)
    outs_ok = len(op.outputs) >= 1 if n_out == ANY else len(op.outputs) == n_out
    if not fewest <= len(op.inputs) <= most or not outs_ok:
        want = (
            f"{fewest}"
            if fewest == most
            else f"{fewest} to {most}"
            if most < 1 << 16
            else f"at least {fewest}"
        )
        raise ModelFormatError(
            f"{op.where()}: takes {want} inputs and {'some' if n_out == ANY else n_out} output(s), has {len(op.inputs)} and {len(op.outputs)}"
        )
    for k in range(fewest):
        if op.inputs[k] < 0:
            raise ModelFormatError(f"{op.where()}: required input {k} is omitted")


def kernel_for(op: Op):
    """The prepare function of an op, or an UnsupportedError naming it."""
    name = MODULES.get(op.type)
    if name is None:
        raise fail(op, f"operator {op.type} is not supported (supported: {', '.join(sorted(MODULES))})")
    check_arity(op)
    try:
        module = importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise fail(op, f"operator {op.type} is not implemented yet") from None
    return module.prepare


def variable_shapes(op: Op, g, shapes: list) -> dict[int, tuple[int, ...]]:
    """Runtime shapes of the variable tensors op reads first, where its module sizes them (else {})."""
    name = MODULES.get(op.type)
    if name is None:
        return {}
    sizer = getattr(importlib.import_module(f".{name}", __name__), "variable_shapes", None)
    return sizer(op, g, shapes) if sizer is not None else {}


__all__ = ["MODULES", "Prepared", "kernel_for", "variable_shapes"]
