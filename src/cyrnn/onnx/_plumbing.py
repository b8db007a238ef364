"""The handlers of the operators that pass a value on or move its axes:
Identity, Dropout (inference), Cast, Transpose, Squeeze, Unsqueeze, Reshape
and Expand. Constants are computed; the model's data and states keep their
atoms, and a move that splits or mixes them is refused."""
import math

import numpy as np

from cyrnn.onnx._elements import NUMPY_TYPES
from cyrnn.onnx._errors import BadModel
from cyrnn.onnx._operands import (axes_argument, axis_index, check_arity, check_folded,
                                  constant_array, int_entries)
from cyrnn.onnx._shapes import broadcast, regroup, reshape_dims
from cyrnn.onnx._values import (Constant, Data, Lengths, ShapeInts, StateRows, Zeros,
                                data_atoms, describe_axes, describe_dims, dims_of, kind_of,
                                rank_of, static_size, with_axes)


def identity(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 1, 1)
    return inputs[0]


def dropout(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 1, 3)
    if len(inputs) == 3 and inputs[2] is not None:
        training = constant_array(inputs[2], where, "training_mode")
        if training.size != 1 or bool(training.reshape(-1)[0]):
            raise BadModel(f"{where} runs in training mode; cyrnn.onnx reads inference graphs")
    if len(node.output) > 1 and node.output[1] and reading.consumers.get(node.output[1]):
        raise BadModel(f"{where}'s mask is used; at inference Dropout is the identity")
    return [inputs[0], None]


def cast(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 1, 1)
    to = attributes.get("to")
    value = inputs[0]
    if to not in NUMPY_TYPES:
        raise BadModel(f"{where} casts to element type {to}, which cyrnn.onnx does not read")
    dtype = NUMPY_TYPES[to]
    if isinstance(value, Constant):
        return Constant(value.array.astype(dtype))
    if isinstance(value, (ShapeInts, Lengths)) and np.dtype(dtype).kind in "iu":
        return value
    if isinstance(value, Zeros):
        return Zeros(value.dims, dtype)
    if isinstance(value, (Data, StateRows)) and np.dtype(dtype) == value.dtype:
        return value
    raise BadModel(f"{where} casts {kind_of(value)} to {np.dtype(dtype)}, which cyrnn's "
                   f"layers cannot follow")


def transpose(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 1, 1)
    value = inputs[0]
    rank = rank_of(value, where)
    perm = list(attributes.get("perm", range(rank - 1, -1, -1)))
    if sorted(perm) != list(range(rank)):
        raise BadModel(f"{where}'s perm {perm} is not a permutation of {rank} axes")
    if isinstance(value, ShapeInts):
        return value
    if isinstance(value, Constant):
        return Constant(np.transpose(value.array, perm))
    return _axes_in_order(value, perm)


def squeeze(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 1, 2)
    value = inputs[0]
    rank = rank_of(value, where)
    axes = axes_argument(inputs, attributes, where, 1, rank)
    if isinstance(value, Constant):
        return Constant(np.squeeze(value.array, axis=tuple(axes) if axes is not None
                                   else None))
    if isinstance(value, ShapeInts):
        if value.scalar or len(value.entries) != 1:
            raise BadModel(f"{where} squeezes a shape that is not one entry")
        return ShapeInts(value.entries, scalar=True)
    sizes = dims_of(value)
    if axes is None:
        axes = [k for k, size in enumerate(sizes) if size == 1]
    for k in axes:
        if sizes[k] != 1:
            raise BadModel(f"{where} squeezes axis {k}, which is not of size 1 "
                           f"({describe_dims(sizes)})")
    return _axes_in_order(value, [k for k in range(rank) if k not in axes])


def _axes_in_order(value, order):
    """Zeros, the model's data or states with only the axes `order` names,
    in that order."""
    if isinstance(value, Zeros):
        return Zeros([value.dims[k] for k in order], value.dtype)
    return with_axes(value, [value.axes[k] for k in order])


def unsqueeze(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 1, 2)
    value = inputs[0]
    rank = rank_of(value, where)
    entries = int_entries(inputs[1], where, "axes") if len(inputs) > 1 and inputs[1] \
        is not None else list(attributes.get("axes", ()))
    if not entries:
        raise BadModel(f"{where} has no axes")
    out_rank = rank + len(entries)
    axes = sorted(axis_index(a, out_rank, where) for a in entries)
    if len(set(axes)) != len(axes):
        raise BadModel(f"{where} names an axis twice")
    if isinstance(value, Constant):
        return Constant(np.expand_dims(value.array, tuple(axes)))
    if isinstance(value, ShapeInts):
        if not value.scalar or axes != [0]:
            raise BadModel(f"{where} unsqueezes a shape into more than one dimension")
        return ShapeInts(value.entries)
    if isinstance(value, Zeros):
        dims = list(value.dims)
        for k in axes:
            dims.insert(k, 1)
        return Zeros(dims, value.dtype)
    new = list(value.axes)
    for k in axes:
        new.insert(k, ())
    return with_axes(value, new)


def reshape(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 2, 2)
    value, shape = inputs
    allowzero = attributes.get("allowzero", 0)
    entries = int_entries(shape, where, "shape")
    if isinstance(value, Constant):
        if any(not isinstance(e, int) for e in entries):
            raise BadModel(f"{where} reshapes a constant to a shape that depends on the data")
        target = [value.array.shape[k] if e == 0 and not allowzero else e
                  for k, e in enumerate(entries)]
        try:
            return Constant(value.array.reshape(target))
        except ValueError as exc:
            raise BadModel(f"{where} cannot reshape: {exc}") from None
    if isinstance(value, ShapeInts):
        if len(entries) > 1 or entries and entries[0] not in (-1, len(value.entries)):
            raise BadModel(f"{where} reshapes a shape to {entries}")
        return ShapeInts(value.entries, scalar=not entries)
    if isinstance(value, Zeros):
        return Zeros(reshape_dims(value.dims, entries, allowzero, where), value.dtype)
    if isinstance(value, (Data, StateRows)):
        return with_axes(value, regroup(value.axes, entries, allowzero, where))
    raise BadModel(f"{where} reshapes {kind_of(value)}")


def expand(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 2, 2)
    value, shape = inputs
    entries = int_entries(shape, where, "shape")
    if any(e is None for e in entries):
        raise BadModel(f"{where} expands to a shape of unknown dimensions")
    if isinstance(value, Constant) and value.array.size and not np.any(value.array):
        value = Zeros(value.array.shape, value.array.dtype)
    if isinstance(value, Constant):
        if any(not isinstance(e, int) for e in entries):
            raise BadModel(f"{where} expands a non-zero constant to a shape that depends on "
                           f"the data")
        dims = broadcast(value.array.shape, entries, where)
        check_folded(math.prod(dims), where)
        return Constant(np.array(np.broadcast_to(value.array, dims)))
    if isinstance(value, Zeros):
        return Zeros(broadcast(value.dims, entries, where), value.dtype)
    if isinstance(value, (StateRows, Data)):
        return with_axes(value, _expanded_axes(where, value, entries))
    raise BadModel(f"{where} expands {kind_of(value)}")


def _expanded_axes(where, value, entries):
    """The axes of the model's data or states expanded to `entries`: only
    to what they already are, or a state of batch 1 to the batch."""
    if len(entries) > len(value.axes):
        raise BadModel(f"{where} expands {kind_of(value)} to more dimensions")
    entries = [1] * (len(value.axes) - len(entries)) + entries
    axes = list(value.axes)
    for k, (axis, entry) in enumerate(zip(value.axes, entries)):
        size, real = static_size(axis), data_atoms(axis)
        if entry == 1 or entry == size or (not isinstance(entry, int) and
                                           real == (entry,)):
            continue
        if isinstance(entry, int) and len(real) == 1 and real[0][0] in ("T", "B") \
                and real[0][1] == entry:  # the declared size of time or batch
            continue
        if size == 1 and not isinstance(entry, int) and isinstance(value, StateRows):
            axes[k] = (entry,)  # a state of batch 1 made the batch's
            continue
        raise BadModel(f"{where} expands {kind_of(value)} {describe_axes(value.axes)} "
                       f"to {entries}, which cyrnn's layers cannot follow")
    return axes


HANDLERS = {"Identity": identity, "Dropout": dropout, "Cast": cast, "Transpose": transpose,
            "Squeeze": squeeze, "Unsqueeze": unsqueeze, "Reshape": reshape, "Expand": expand}
