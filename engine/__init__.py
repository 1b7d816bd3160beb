"""Bit-exact inference for quantized TFLite models on the CPU, with Numba kernels."""

from .errors import EngineError, FetchError, ImageError, InputError, ModelFormatError, UnsupportedError
from .interpreter import Interpreter
from .model import Model, TensorInfo, load
from .registry import model_file

__all__ = [
    "EngineError",
    "FetchError",
    "ImageError",
    "InputError",
    "Interpreter",
    "Model",
    "ModelFormatError",
    "TensorInfo",
    "UnsupportedError",
    "load",
    "model_file",
]
