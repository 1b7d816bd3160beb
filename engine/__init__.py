"""Bit-exact inference for quantized TFLite models on the CPU, with Numba kernels."""

import gc

# Importing Numba and the engine makes some 100,000 objects that live as long as the process: the
# garbage collector ran 200 times as they were made (80 ms of a 1 s load to first result), and every
# full collection would scan them again (55 ms; left unfrozen, the first one lands in the load). They
# are made with it off, then frozen: never scanned again, nor collected (a reference cycle among them,
# or among objects the process made before importing the engine, is never freed: import it early).
_collecting = gc.isenabled()
gc.disable()
try:
    from . import runtime  # first: thread count and wait policy, before anything imports Numba  # noqa: F401
    from .errors import EngineError, FetchError, ImageError, InputError, ModelFormatError, UnsupportedError
    from .interpreter import Interpreter
    from .model import Model, TensorInfo, load
    from .registry import model_file
    from .runtime import get_num_threads, set_num_threads, usable_cores
finally:
    gc.freeze()
    if _collecting:
        gc.enable()

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
