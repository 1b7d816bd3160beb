"""engine/kernels/kernel.py types a call's arguments from what Numba's typeof reads of them (_type_key),
remembering each kind's type: every value here must get exactly the type Numba's typeof gives it, and
values that Numba types apart must not share a key."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from engine.kernels.kernel import _type_key, _typeof


class Pair(NamedTuple):
    a: int
    b: np.ndarray


class Other(NamedTuple):
    a: int
    b: np.ndarray


@njit
def _probe(x):  # (a dispatcher to type with; never called)
    return x


def _values() -> list:
    c = np.zeros((3, 4), np.int8)
    readonly = np.zeros(5, np.int16)
    readonly.flags.writeable = False
    return [
        c, c.T, c[:, ::2], c[0], np.zeros(4, np.int8), np.zeros(4, np.uint8), np.zeros((2, 2, 2), np.int64),
        readonly, np.zeros(5, np.int16), np.zeros(0, np.float32), np.zeros((1, 1), np.int32), np.zeros(3, ">i4"),
        0, 1, -1, 2**31, -(2**31), 2**40, 2**63 - 1, 2**63, True, False, 1.5,
        np.int8(3), np.uint8(3), np.int64(-2), np.float32(0.5), np.bool_(True),
        (1, 2), (1, c), (c, c), (True, 2**40), Pair(1, c), Other(1, c), Pair(2**40, c.T), (Pair(1, c), 3),
        ((1, 2), (3, np.int16(4))),
    ]


def test_every_value_gets_numbas_type():
    for value in _values():
        want = _probe.typeof_pyval(value)
        assert _typeof(_probe, value) == want, repr(value)
        assert _typeof(_probe, value) == want, repr(value)  # (from the memo this time)


def test_values_numba_types_apart_have_keys_apart():
    values = _values()
    for i, u in enumerate(values):
        for v in values[i + 1 :]:
            key_u, key_v = _type_key(u), _type_key(v)
            if key_u is not None and key_u == key_v:
                assert _probe.typeof_pyval(u) == _probe.typeof_pyval(v), (u, v)
