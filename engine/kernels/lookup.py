"""The gather of the 8-bit lookup-table ops: out = table[raw input byte], elementwise, any shape.

The tables themselves are computed at prepare (engine/numerics/gemmlowp.py: byte_values, lut_populate).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# below this many elements a parallel region costs more than it saves (and far more on a busy machine)
PARALLEL_MIN = 1 << 20


@njit(cache=True)
def _lookup(x, out, table):
    for i in range(x.size):
        out[i] = table[x[i]]


@njit(parallel=True, cache=True)
def _lookup_parallel(x, out, table):
    n = x.size
    chunk = 1 << 16
    for c in prange((n + chunk - 1) // chunk):
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            out[i] = table[x[i]]


def table_runner(table: np.ndarray):
    """run(inputs, outputs): outputs[0] = table[raw byte of inputs[0]], elementwise, any shape."""
    table = np.ascontiguousarray(table)

    def run(inputs: list, outputs: list) -> None:
        x = np.ascontiguousarray(inputs[0]).reshape(-1).view(np.uint8)
        (_lookup_parallel if x.size >= PARALLEL_MIN else _lookup)(x, outputs[0].reshape(-1), table)

    return run
