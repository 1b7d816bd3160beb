"""What the LLVM IR kernels (@intrinsic) share: their operands by name, pointers into arrays.

An intrinsic's codegen gets its arguments as LLVM values in order; operand() turns one into something
named: an array into an Operand (its Numba type and value), a named tuple into a namespace of its
members (integers widened to intp, arrays as Operands), so each operand is named once, where it is
unpacked, and never addressed by position again.
"""

from __future__ import annotations

from types import SimpleNamespace

from llvmlite import ir
from numba import types
from numba.core import cgutils


class Operand:
    """An array operand of an intrinsic: its Numba type and its LLVM value."""

    def __init__(self, ty: types.Array, value):
        self.ty = ty
        self.value = value


def _member(context, builder, ty, value):
    if isinstance(ty, types.Array):
        return Operand(ty, value)
    if isinstance(ty, types.Integer):
        return context.cast(builder, value, ty, types.intp)
    return value


def operand(context, builder, signature, args, k: int):
    """Argument k of an intrinsic, by name: an Operand for an array, a namespace of the members for a
    named tuple, an intp for an integer (booleans as they are)."""
    ty, value = signature.args[k], args[k]
    if isinstance(ty, types.BaseNamedTuple):
        members = cgutils.unpack_tuple(builder, value, len(ty))
        return SimpleNamespace(
            **{name: _member(context, builder, t, m) for name, t, m in zip(ty.fields, ty.types, members)}
        )
    return _member(context, builder, ty, value)


def data_ptr(context, builder, a: Operand, elem: ir.Type | None = None):
    """The pointer to a's first element (as a pointer to elem when given)."""
    data = context.make_array(a.ty)(context, builder, a.value).data
    return data if elem is None else builder.bitcast(data, elem.as_pointer())


def element_ptr(context, builder, a: Operand, index, vty: ir.Type):
    """The pointer to the flat element `index` of a, as a pointer to vty (a vector type, say)."""
    return builder.bitcast(builder.gep(data_ptr(context, builder, a), [index]), vty.as_pointer())


def row_ptr(context, builder, a: Operand, row: int, col, vty: ir.Type):
    """The pointer to a[row, col] of a C-contiguous 2-D array, as a pointer to vty."""
    arr = context.make_array(a.ty)(context, builder, a.value)
    columns = cgutils.unpack_tuple(builder, arr.shape, 2)[1]
    index = builder.add(builder.mul(ir.Constant(columns.type, row), columns), col)
    return builder.bitcast(builder.gep(arr.data, [index]), vty.as_pointer())


def empty_codegen(context, builder, signature, args):
    """An intrinsic's body for a CPU it does not apply to, where its callers never reach it."""
    return context.get_dummy_value()
