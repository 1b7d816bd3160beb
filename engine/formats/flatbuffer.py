"""Reading FlatBuffers tables: just what a schema-driven reader needs, every read bounds-checked.

A table at `pos` starts with a signed offset back to its vtable: the vtable's size and the table's
(uint16 each), then a uint16 per field slot, the field's offset in the table (0: absent, the schema's
default). Tables, vectors and strings are reached through a uint32 offset forward from where it is
stored; a vector is a uint32 count, then its elements. Any read outside the buffer raises
FlatbufferError (Python's struct would read a negative offset from the end).
"""

from __future__ import annotations

import struct

import numpy as np

_U16, _I32, _U32 = struct.Struct("<H"), struct.Struct("<i"), struct.Struct("<I")
_SCALARS = {code: struct.Struct("<" + code) for code in "?bBhHiIqQfd"}


class FlatbufferError(ValueError):
    """The buffer is not a well-formed flatbuffer where it was read."""


def _check(buf: bytes, at: int, size: int) -> None:
    if at < 0 or at + size > len(buf):
        raise FlatbufferError(f"{size} bytes at offset {at} are outside the buffer ({len(buf)} bytes)")


def root(buf: bytes) -> Table:
    """The buffer's root table."""
    _check(buf, 0, 4)
    return Table(buf, _U32.unpack_from(buf, 0)[0])


class Table:
    __slots__ = ("_vsize", "_vtable", "buf", "pos")

    def __init__(self, buf: bytes, pos: int):
        _check(buf, pos, 4)
        vtable = pos - _I32.unpack_from(buf, pos)[0]
        _check(buf, vtable, 4)
        vsize = _U16.unpack_from(buf, vtable)[0]
        _check(buf, vtable, vsize)
        self.buf, self.pos, self._vtable, self._vsize = buf, pos, vtable, vsize

    def _field(self, slot: int) -> int:
        """The field's address, or 0 where the table does not store it."""
        at = 4 + 2 * slot
        if at + 2 > self._vsize:
            return 0
        offset = _U16.unpack_from(self.buf, self._vtable + at)[0]
        return self.pos + offset if offset else 0

    def _target(self, slot: int) -> int:
        """Where the field's uint32 offset points, or 0 where the table does not store it."""
        at = self._field(slot)
        if not at:
            return 0
        _check(self.buf, at, 4)
        return at + _U32.unpack_from(self.buf, at)[0]

    def scalar(self, slot: int, code: str, default=0):
        """A scalar field (code: its struct format character)."""
        at = self._field(slot)
        if not at:
            return default
        fmt = _SCALARS[code]
        _check(self.buf, at, fmt.size)
        return fmt.unpack_from(self.buf, at)[0]

    def table(self, slot: int) -> Table | None:
        at = self._target(slot)
        return Table(self.buf, at) if at else None

    def _vector(self, slot: int, itemsize: int) -> tuple[int, int] | None:
        """(address of the first element, count), or None where the table does not store it."""
        at = self._target(slot)
        if not at:
            return None
        _check(self.buf, at, 4)
        count = _U32.unpack_from(self.buf, at)[0]
        _check(self.buf, at + 4, count * itemsize)
        return at + 4, count

    def array(self, slot: int, code: str) -> np.ndarray | None:
        """A vector of scalars as a read-only array over the buffer; None where not stored."""
        dtype = np.dtype("<" + code)
        found = self._vector(slot, dtype.itemsize)
        if found is None:
            return None
        start, count = found
        return np.frombuffer(self.buf, dtype, count, start)

    def tables(self, slot: int) -> Tables:
        """A vector of tables (empty where not stored), each read where it is indexed: a vector's
        entries may all point at one small table, so a count says nothing of the memory it would take."""
        found = self._vector(slot, 4)
        return Tables(self.buf, *(found or (0, 0)))

    def string(self, slot: int) -> bytes | None:
        found = self._vector(slot, 1)
        if found is None:
            return None
        start, count = found
        return bytes(self.buf[start : start + count])


class Tables:
    """A vector of tables: len(), and a Table for each index."""

    __slots__ = ("buf", "count", "start")

    def __init__(self, buf: bytes, start: int, count: int):
        self.buf, self.start, self.count = buf, start, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int) -> Table:
        if not 0 <= k < self.count:
            raise IndexError(f"table {k} of a vector of {self.count}")
        at = self.start + 4 * k
        return Table(self.buf, at + _U32.unpack_from(self.buf, at)[0])

    def __iter__(self):
        return (self[k] for k in range(self.count))
