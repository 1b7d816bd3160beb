"""SignatureDefs of a .tflite file and LiteRT's SignatureRunner on the engine's Interpreter."""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .formats.tflite import signature_defs as read_signature_defs


def signature_defs(data: bytes | None) -> dict[str, dict[str, dict[str, int]]]:
    """{key: {"inputs": {name: tensor index}, "outputs": {...}}} of subgraph 0's SignatureDefs."""
    try:
        return read_signature_defs(data) if data is not None else {}
    except Exception:  # noqa: BLE001 - the importer validated the file; signatures are an extra
        return {}


class SignatureRunner:
    """runner(**inputs) -> {output name: array}, names as the SignatureDef gives them (LiteRT's API)."""

    def __init__(self, interpreter, key: str, sig: dict[str, dict[str, int]]):
        self._it = interpreter
        self._key = key
        self._inputs = sig["inputs"]
        self._outputs = sig["outputs"]

    def __call__(self, **kwargs) -> dict[str, np.ndarray]:
        if len(kwargs) != len(self._inputs):
            raise InputError(
                f"signature '{self._key}': {len(kwargs)} inputs given, it takes {len(self._inputs)}: "
                f"{list(self._inputs)}"
            )
        it = self._it
        for name, value in kwargs.items():
            if name not in self._inputs:
                raise InputError(
                    f"signature '{self._key}': no input named {name!r} (inputs: {list(self._inputs)})"
                )
            it.resize_tensor_input(self._inputs[name], np.shape(value))
        it.allocate_tensors()
        for name, value in kwargs.items():
            it.set_tensor(self._inputs[name], np.asarray(value))
        it.invoke()
        return {name: it.get_tensor(i) for name, i in self._outputs.items()}

    def get_input_details(self) -> dict[str, dict]:
        return {name: self._it._details(i) for name, i in self._inputs.items()}

    def get_output_details(self) -> dict[str, dict]:
        return {name: self._it._details(i) for name, i in self._outputs.items()}
