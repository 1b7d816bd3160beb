"""What the LLVM IR kernels (@intrinsic) share: their operands by name, pointers into arrays.

An intrinsic's codegen gets its arguments as LLVM values in order; operand() turns one into something
named: an array into an Operand (its Numba type and value), a named tuple into a namespace of its
members (integers widened to intp, arrays as Operands), so each operand is named once, where it is
unpacked, and never addressed by position again.
"""

from __future__ import annotations

from types import SimpleNamespace

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic


def _populate_array(view, **fields) -> None:
    """numba.np.arrayobj.populate_array, imported where code is generated: that module and what it
    imports take about 0.1 s that a process running cached kernels never needs."""
    from numba.np.arrayobj import populate_array

    populate_array(view, **fields)


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


@intrinsic
def reshaped(typingctx, a, shape):
    """The C-contiguous array a as an array of `shape` (a tuple of integers whose product is a.size: the
    caller's word, unchecked), sharing a's memory. Numba's reshape calls into its C helper on every use
    (35 ns: 5 % of a small depthwise layer that reshaped per row, 0.7 us of ad01's 5.3)."""
    if not (isinstance(a, types.Array) and a.layout == "C" and isinstance(shape, types.UniTuple)):
        return None
    if not isinstance(shape.dtype, types.Integer):
        return None
    result = a.copy(ndim=shape.count, layout="C")

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        dims = [context.cast(builder, d, shape.dtype, types.intp) for d in cgutils.unpack_tuple(builder, args[1])]
        strides, step = [], src.itemsize
        for d in reversed(dims):
            strides.insert(0, step)
            step = builder.mul(step, d)
        view = context.make_array(result)(context, builder)
        _populate_array(
            view, data=src.data, shape=dims, strides=strides, itemsize=src.itemsize, meminfo=src.meminfo, parent=src.parent
        )
        return impl_ret_borrowed(context, builder, result, view._getvalue())

    return result(a, shape), codegen


@njit(inline="always", cache=True)
def flat_view(a):
    """The C-contiguous array a as one dimension (see reshaped)."""
    return reshaped(a, (a.size,))


@intrinsic
def retyped(typingctx, a, dtype):
    """The 1-D C-contiguous array a's bytes as an array of dtype (its whole elements: a.size *
    a.itemsize // dtype's size), sharing a's memory. Numba's view() calls a checking helper on every
    use (30 ns: a sixth of a 128 -> 128 fully connected layer at batch 1)."""
    if not (isinstance(a, types.Array) and a.layout == "C" and a.ndim == 1):
        return None
    if not isinstance(dtype, (types.DType, types.NumberClass)):
        return None
    result = types.Array(dtype.dtype, 1, "C")

    def codegen(context, builder, signature, args):
        src = context.make_array(signature.args[0])(context, builder, args[0])
        size = context.get_abi_sizeof(context.get_data_type(result.dtype))
        count = builder.udiv(builder.mul(src.nitems, src.itemsize), ir.Constant(src.nitems.type, size))
        view = context.make_array(result)(context, builder)
        data = builder.bitcast(src.data, view.data.type)
        itemsize = ir.Constant(src.itemsize.type, size)
        _populate_array(
            view,
            data=data,
            shape=[count],
            strides=[itemsize],
            itemsize=itemsize,
            meminfo=src.meminfo,
            parent=src.parent,
        )
        return impl_ret_borrowed(context, builder, result, view._getvalue())

    return result(a, dtype), codegen
