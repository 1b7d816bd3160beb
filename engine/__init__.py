"""Bit-exact inference for quantized TFLite models on the CPU, with Numba kernels."""

from . import runtime  # first: thread count and wait policy, before anything imports Numba  # noqa: F401
from .errors import EngineError, FetchError, ImageError, InputError, ModelFormatError, UnsupportedError
from .interpreter import Interpreter
from .model import Model, TensorInfo, load
from .registry import model_file
from .runtime import get_num_threads, set_num_threads, usable_cores

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
    "get_num_threads",
    "load",
    "model_file",
    "set_num_threads",
    "usable_cores",
]
