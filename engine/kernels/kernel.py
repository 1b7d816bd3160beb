"""Kernels compiled twice: with prange spread over threads, and serial for small work.

Waking the thread pool costs microseconds; on a 28x28 MNIST layer that is more than the work.
Kernel() picks the serial build below a work threshold, so batch-1 latency does not pay for
parallelism that large batches need.
"""

from __future__ import annotations

from types import FunctionType

import numba
from numba import njit

# Launches Numba's threading layer now: kernels index per-thread scratch by numba.get_thread_id(),
# which calls into that layer (a null pointer before it runs), in serial builds too.
numba.get_num_threads()
# elements (or multiply-accumulates / 16) below which a serial run beats waking the threads
PARALLEL_MIN_WORK = 1 << 16


class Kernel:
    def __init__(self, fn: FunctionType):
        self.parallel = njit(parallel=True, cache=True)(fn)
        # a distinct function object (and name) so that Numba caches the two builds apart
        twin = FunctionType(
            fn.__code__, fn.__globals__, fn.__name__ + "_serial", fn.__defaults__, fn.__closure__
        )
        twin.__qualname__ = fn.__qualname__ + "_serial"
        twin.__module__ = fn.__module__
        self.serial = njit(cache=True)(twin)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def pick(self, work: int):
        """The build for a run of `work` elementary steps."""
        return self.parallel if work >= PARALLEL_MIN_WORK else self.serial


def kernel(fn: FunctionType) -> Kernel:
    """Decorator: an njit kernel with a parallel and a serial build (see Kernel)."""
    return Kernel(fn)
