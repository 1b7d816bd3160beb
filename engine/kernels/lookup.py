"""The gathers of the 8-bit lookup-table ops: out = table[raw input byte] (one input), or
table[byte(a) * 256 + byte(b)] (two inputs, with broadcasting), elementwise.

The tables themselves are computed at prepare (engine/numerics/gemmlowp.py: byte_values, lut_populate;
the binary ops' modules). A lookup costs about a sixteenth of an elementary step: the builds are picked
for size // 16 (kernel.py).
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .kernel import kernel


@kernel
def gather(x, out, table):
    """out[i] = table[x[i]], in chunks of 64 Ki elements."""
    n = x.size
    chunk = 1 << 16
    for c in prange((n + chunk - 1) // chunk):
        for i in range(c * chunk, min(n, (c + 1) * chunk)):
            out[i] = table[x[i]]


def table_runner(table: np.ndarray, size: int):
    """run(inputs, outputs, scratch): outputs[0] = table[raw byte of inputs[0]], elementwise, any
    shape of `size` elements."""
    table = np.ascontiguousarray(table)
    lookup = gather.pick(size // 16)

    def bind(inputs: list, outputs: list, scratch: list) -> list:
        return [(lookup, (flat(inputs[0], np.uint8), flat(outputs[0]), table))]

    def run(inputs: list, outputs: list, scratch: list) -> None:
        for fn, args in bind(inputs, outputs, scratch):
            fn(*args)

    run.bind = bind  # the planner binds the call once (ops/common.py Prepared.bind)
    return run


def flat(a: np.ndarray, dtype=None) -> np.ndarray:
    """a as one axis of dtype (default its own), never a copy: a bound call keeps the array it was given."""
    return a.reshape(-1, copy=False).view(dtype or a.dtype)  # raises rather than copy


@kernel
def gather2_flat(a, b, out, table):
    """out[i] = table[a[i] * 256 + b[i]]: a and b of one shape."""
    for i in prange(out.size):
        out[i] = table[np.int64(a[i]) * 256 + np.int64(b[i])]


@kernel
def gather2_nd(a, b, out, table, ext, sa, sb):
    """out = table[a * 256 + b] over the 6-D extents ext, a and b read with strides sa and sb (0 where
    they broadcast)."""
    n0, n1, n2, n3, n4, n5 = ext[0], ext[1], ext[2], ext[3], ext[4], ext[5]
    for t in prange(n0 * n1 * n2):
        i0 = t // (n1 * n2)
        i1 = (t // n2) % n1
        i2 = t % n2
        o = t * n3 * n4 * n5
        pa0 = i0 * sa[0] + i1 * sa[1] + i2 * sa[2]
        pb0 = i0 * sb[0] + i1 * sb[1] + i2 * sb[2]
        for i3 in range(n3):
            for i4 in range(n4):
                pa = pa0 + i3 * sa[3] + i4 * sa[4]
                pb = pb0 + i3 * sb[3] + i4 * sb[4]
                for i5 in range(n5):
                    out[o] = table[np.int64(a[pa + i5 * sa[5]]) * 256 + np.int64(b[pb + i5 * sb[5]])]
                    o += 1
