"""engine/kernels/irtools.py's views: the same arrays as numpy's reshape and view, sharing memory."""

import numpy as np
import pytest
from numba import njit

from engine.kernels.irtools import flat_view, reshaped, retyped


@njit
def _views(a, rows, cols):
    return reshaped(a, (rows, cols)), flat_view(a)


@njit
def _row_view(a, i, w, c):
    return reshaped(a.reshape(-1)[i * w * c : (i + 1) * w * c], (w, c))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float64])
def test_views_match_numpy_and_share_memory(dtype):
    a = np.arange(24).astype(dtype).reshape(2, 3, 4)
    two, one = _views(a, 6, 4)
    np.testing.assert_array_equal(two, a.reshape(6, 4))
    assert two.strides == a.reshape(6, 4).strides
    np.testing.assert_array_equal(one, a.reshape(-1))
    a[1, 2, 3] = 7
    assert two[5, 3] == 7 and one[23] == 7


def test_view_of_a_slice():
    a = np.arange(60, dtype=np.uint8).reshape(3, 5, 4)
    np.testing.assert_array_equal(_row_view(a, 1, 5, 4), a[1])


def test_only_c_contiguous_arrays():
    with pytest.raises(Exception, match="reshaped"):
        _views(np.zeros((4, 6), np.int8)[:, ::2], 4, 3)


@njit
def _retyped(a, start, stop):
    part = a[start:stop]
    return retyped(part, np.int32), retyped(part, np.float64), retyped(part, np.uint8)


@pytest.mark.parametrize("start, stop", [(0, 16), (3, 11), (5, 16)])
def test_retyped_matches_numpy_view_of_whole_elements(start, stop):
    a = np.random.default_rng(0).integers(-(1 << 62), 1 << 62, 16, dtype=np.int64)
    i32, f64, u8 = _retyped(a, start, stop)
    part = a[start:stop]
    np.testing.assert_array_equal(i32, part.view(np.int32))
    np.testing.assert_array_equal(f64.view(np.int64), part)  # (as bits: NaN payloads compare unequal)
    np.testing.assert_array_equal(u8, part.view(np.uint8))
    i32[0] = 9
    assert part.view(np.int32)[0] == 9  # (shares a's memory)


def test_retyped_keeps_whole_elements_only():
    (i16,) = _retyped_odd(np.arange(7, dtype=np.uint8))
    assert i16.size == 3 and i16[0] == 0x0100


@njit
def _retyped_odd(a):
    return (retyped(a, np.int16),)
