"""In-memory graph: tensors, operators, graph inputs and outputs.

Both model formats (.tflite and .npz) are read into this one structure; the
planner and the kernels only ever see a Graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DTYPES = {
    "float32": np.float32,
    "int32": np.int32,
    "uint8": np.uint8,
    "int64": np.int64,
    "int16": np.int16,
    "int8": np.int8,
    "bool": np.bool_,
}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # a key of DTYPES
    data: np.ndarray | None = None  # constant tensors only
    scale: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    zero_point: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    quant_axis: int = 0
    is_variable: bool = False  # state an op updates in place (LSTM); reset at the start of every run

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def quantized(self) -> bool:
        return self.scale.size > 0

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(DTYPES[self.dtype])

    def describe(self) -> str:
        zp = (
            self.zero_point[0] if self.zero_point.size else "?"
        )  # describe() builds error messages: never raise
        q = f" scale={self.scale[0]:.6g} zp={zp}" if self.scale.size == 1 else ""
        if self.scale.size > 1:
            q = f" per-channel({self.scale.size}, axis {self.quant_axis})"
        kind = " variable" if self.is_variable else ""
        return f"tensor {self.index} '{self.name}'{kind} {self.dtype}{list(self.shape)}{q}"


@dataclass
class Op:
    index: int
    type: str  # BuiltinOperator name, or the custom code for custom ops
    inputs: list[int]  # -1 marks an omitted optional input
    outputs: list[int]
    options: dict = field(default_factory=dict)
    version: int = 1
    intermediates: list[int] = field(default_factory=list)  # tensors whose quantization the op reads (LSTM)

    def where(self) -> str:
        return f"op {self.index} ({self.type})"


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    description: str = ""
    numerics: str = "reference"  # the profile ops prepare for (engine/profiles): set by Model, read at prepare
    flipped: set[int] = field(default_factory=set)  # int8 tensors stored as uint8 + 128 (engine/storage.py)


# ops whose output depends only on input shapes: folded even when the input is not constant
SHAPE_ONLY = {"SHAPE"}


def folds(op: Op, known) -> bool:
    """Whether a plan computes op once, at load: SHAPE, or an op whose inputs are all known (constants,
    or outputs of ops it folds: `known` holds them)."""
    inputs = [i for i in op.inputs if i >= 0]
    return bool(inputs) and (op.type in SHAPE_ONLY or all(i in known for i in inputs))
