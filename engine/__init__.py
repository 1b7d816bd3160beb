"""Bit-exact inference for quantized TFLite models on the CPU, with Numba kernels."""

from .errors import EngineError, FetchError, ImageError, InputError, ModelFormatError, UnsupportedError
from .model import Model, TensorInfo, load

__all__ = [
    "EngineError",
    "FetchError",
    "ImageError",
    "InputError",
    "Model",
    "ModelFormatError",
    "TensorInfo",
    "UnsupportedError",
    "load",
]
