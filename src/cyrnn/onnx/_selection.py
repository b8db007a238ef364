"""The handlers of the operators that pick parts of values or join them:
Gather (on constants, shapes and states; an embedding when it looks the
data's ids up), Slice, Split and Concat. States are followed row by row:
which input row or which layer's final state each row is."""
import numpy as np

from cyrnn.onnx._errors import BadModel
from cyrnn.onnx._layer_ops import embedding
from cyrnn.onnx._operands import (as_zeros, axis_index, check_arity, check_folded,
                                  constant_array, int_entries)
from cyrnn.onnx._shapes import slice_indices
from cyrnn.onnx._values import (Constant, Data, ShapeInts, StateRows, Zeros, data_atoms,
                                describe_axes, dims_of, kind_of, rank_of, static_size)


def gather(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 2, 2)
    data, indices = inputs
    axis = attributes.get("axis", 0)
    if isinstance(indices, Data):
        return embedding(reading, where, data, indices, axis)
    index = constant_array(indices, where, "indices", integer=True)
    if isinstance(data, Constant):
        return _gather_constant(where, data.array, index, axis)
    if isinstance(data, ShapeInts):
        return _gather_shape(where, data, index, axis)
    if isinstance(data, StateRows):
        axis = axis_index(axis, len(data.axes), where)
        return pick_rows(where, data, axis, index)
    if isinstance(data, Zeros):
        axis = axis_index(axis, len(data.dims), where)
        n = data.dims[axis]
        if not isinstance(n, int):
            raise BadModel(f"{where} gathers along the time or batch axis")
        dims = list(data.dims[:axis]) + list(index.shape) + list(data.dims[axis + 1:])
        return Zeros(dims, data.dtype)
    raise BadModel(f"{where} gathers from {kind_of(data)}; cyrnn.onnx reads Gather as an "
                   f"embedding (a constant table, the data's ids) or on shapes and states")


def _gather_constant(where, array, index, axis):
    axis = axis_index(axis, array.ndim, where)
    n = array.shape[axis]
    if index.size and (index.min() < -n or index.max() >= n):
        raise BadModel(f"{where} gathers indices outside [-{n}, {n})")
    check_folded(index.size * (array.size // max(n, 1)), where)
    return Constant(np.take(array, np.where(index < 0, index + n, index), axis=axis))


def _gather_shape(where, shape, index, axis):
    if shape.scalar or axis not in (0, -1):
        raise BadModel(f"{where} gathers from a shape along axis {axis}")
    n = len(shape.entries)
    if index.ndim > 1 or (index.size and (index.min() < -n or index.max() >= n)):
        raise BadModel(f"{where} gathers indices {index.tolist()} of a shape of rank {n}")
    picked = [shape.entries[int(i)] for i in index.reshape(-1)]
    if all(isinstance(e, int) for e in picked):
        return Constant(np.array(picked if index.ndim else picked[0], np.int64))
    return ShapeInts(picked, scalar=index.ndim == 0)


def pick_rows(where, state, axis, index):
    """The state rows `index` (an int array) of the rows axis `axis`."""
    atoms = data_atoms(state.axes[axis])
    rows_here = atoms == (("R", len(state.rows)),) or (not atoms and len(state.rows) == 1)
    if not rows_here:
        raise BadModel(f"{where} picks along axis {axis} of a state "
                       f"{describe_axes(state.axes)}, which does not hold its rows")
    n = len(state.rows)
    flat = index.reshape(-1)
    if flat.size and (flat.min() < -n or flat.max() >= n):
        raise BadModel(f"{where} picks rows {flat.tolist()[:10]} of {n}")
    rows = [state.rows[int(i)] for i in flat]
    axes = list(state.axes)
    if index.ndim == 0:
        del axes[axis]
    elif index.ndim == 1:
        axes[axis] = (("R", len(rows)),)
    else:
        raise BadModel(f"{where} picks state rows with a {index.ndim}-D index")
    return StateRows(rows, axes, state.dtype)


# -- Slice -----------------------------------------------------------------
def slice_(reading, where, inputs, attributes, node):
    value = inputs[0] if inputs else None
    starts, ends, axes, steps = _slice_arguments(reading, where, inputs, attributes)
    rank = rank_of(value, where)
    axes = list(range(len(starts))) if axes is None else [axis_index(a, rank, where)
                                                          for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    if not len(starts) == len(ends) == len(axes) == len(steps) or len(set(axes)) != len(axes):
        raise BadModel(f"{where}'s starts, ends, axes and steps do not match")
    if any(not isinstance(v, int) for v in starts + ends + steps):
        raise BadModel(f"{where} slices at positions that depend on the data")
    if any(s == 0 for s in steps):
        raise BadModel(f"{where} has a step of 0")
    if isinstance(value, Constant):
        array = value.array
        for a, s, e, st in zip(axes, starts, ends, steps):
            array = np.take(array, slice_indices(array.shape[a], s, e, st), axis=a)
        return Constant(array)
    if isinstance(value, ShapeInts):
        if value.scalar or axes != [0]:
            raise BadModel(f"{where} slices a shape along axis {axes}")
        picked = [value.entries[i] for i in slice_indices(len(value.entries), starts[0],
                                                          ends[0], steps[0])]
        if all(isinstance(e, int) for e in picked):
            return Constant(np.array(picked, np.int64))
        return ShapeInts(picked)
    return _slice_dynamic(where, value, zip(axes, starts, ends, steps))


def _slice_arguments(reading, where, inputs, attributes):
    """(starts, ends, axes or None, steps or None): attributes before opset
    10, inputs from it."""
    if reading.opset < 10:
        check_arity(where, inputs, 1, 1)
        return (list(attributes.get("starts", ())), list(attributes.get("ends", ())),
                attributes.get("axes"), None)
    check_arity(where, inputs, 3, 5)
    starts = int_entries(inputs[1], where, "starts")
    ends = int_entries(inputs[2], where, "ends")
    axes = int_entries(inputs[3], where, "axes") if len(inputs) > 3 and \
        inputs[3] is not None else None
    steps = int_entries(inputs[4], where, "steps") if len(inputs) > 4 and \
        inputs[4] is not None else None
    return starts, ends, axes, steps


def _slice_dynamic(where, value, slices):
    """A slice of zeros, data or states: of static axes only, and of the
    data not at all (but for a slice that keeps everything)."""
    sizes = dims_of(value)
    dims = list(sizes)
    pick = {}
    for a, s, e, st in slices:
        if isinstance(sizes[a], int):
            indices = slice_indices(sizes[a], s, e, st)
            if indices != list(range(sizes[a])):
                pick[a] = indices
                dims[a] = len(indices)
        elif not (s == 0 and st == 1 and e >= (1 << 31) - 1):
            raise BadModel(f"{where} slices the time or batch axis, which cyrnn's layers "
                           f"cannot follow")
    if isinstance(value, Zeros):
        return Zeros(dims, value.dtype)
    if not pick:
        return value
    if isinstance(value, StateRows) and len(pick) == 1:
        (axis, indices), = pick.items()
        return pick_rows(where, value, axis, np.array(indices))
    raise BadModel(f"{where} slices {kind_of(value)} along axes "
                   f"{sorted(pick)} of {describe_axes(value.axes)}, which cyrnn's layers "
                   f"cannot follow")


# -- Split -----------------------------------------------------------------
def split(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 1, 2)
    value = inputs[0]
    if not isinstance(value, (Constant, StateRows, Zeros)):  # shapes, data: no rows to part
        raise BadModel(f"{where} splits {kind_of(value)}")
    rank = rank_of(value, where)
    axis = axis_index(attributes.get("axis", 0), rank, where)
    n_out = len(node.output)
    parts = _split_sizes(where, inputs, attributes, value, axis, n_out)
    out, start = [], 0
    for part in parts:
        indices = np.arange(start, start + part)
        start += part
        if isinstance(value, Constant):
            out.append(Constant(np.take(value.array, indices, axis=axis)))
        elif isinstance(value, StateRows):
            out.append(pick_rows(where, value, axis, indices))
        elif isinstance(value, Zeros):
            dims = list(value.dims)
            dims[axis] = part
            out.append(Zeros(dims, value.dtype))
        else:
            raise BadModel(f"{where} splits {kind_of(value)}")
    return out


def _split_sizes(where, inputs, attributes, value, axis, n_out):
    """The size of each part: given (an input from opset 13, an attribute
    before), or the axis cut into equal parts."""
    if len(inputs) > 1 and inputs[1] is not None:
        sizes = int_entries(inputs[1], where, "split")
    elif "split" in attributes:
        sizes = list(attributes["split"])
    else:
        size = dims_of(value)[axis]
        if not isinstance(size, int):
            raise BadModel(f"{where} splits the time or batch axis")
        n = attributes.get("num_outputs", n_out)
        step = -(-size // n)
        sizes = [min(step, size - k * step) for k in range(n)]
    if len(sizes) != n_out or any(not isinstance(s, int) or s < 0 for s in sizes):
        raise BadModel(f"{where}'s split {sizes} does not match its {n_out} outputs")
    size = dims_of(value)[axis]
    if sum(sizes) != size:
        raise BadModel(f"{where} splits an axis of size {size} into {sizes}")
    return sizes


# -- Concat ----------------------------------------------------------------
def concat(reading, where, inputs, attributes, node):
    if not inputs or any(v is None for v in inputs):
        raise BadModel(f"{where} needs inputs")
    if "axis" not in attributes:
        raise BadModel(f"{where} has no axis")
    if len(inputs) == 1:
        return inputs[0]
    kinds = {type(v) for v in inputs}
    if kinds <= {Constant, ShapeInts}:
        return _concat_constants(where, inputs, attributes["axis"])
    rank = rank_of(inputs[0], where)
    axis = axis_index(attributes["axis"], rank, where)
    if any(rank_of(v, where) != rank for v in inputs):
        raise BadModel(f"{where} concatenates tensors of different ranks")
    if kinds <= {Zeros, Constant}:
        return _concat_zeros(where, inputs, axis)
    if kinds <= {StateRows, Zeros, Constant}:
        return _concat_states(where, inputs, axis)
    raise BadModel(f"{where} concatenates {', '.join(sorted({kind_of(v) for v in inputs}))}, "
                   f"which cyrnn's layers cannot follow (the model is a chain)")


def _concat_constants(where, inputs, axis):
    """Constants joined, or shapes (of which some entries may be atoms)."""
    if all(isinstance(v, Constant) for v in inputs):
        arrays = [v.array for v in inputs]
        check_folded(sum(a.size for a in arrays), where)
        try:
            return Constant(np.concatenate(arrays, axis=axis))
        except (ValueError, np.exceptions.AxisError) as exc:
            raise BadModel(f"{where} cannot concatenate: {exc}") from None
    if axis not in (0, -1):
        raise BadModel(f"{where} concatenates shapes along axis {axis}")
    entries = []
    for v in inputs:
        entries += int_entries(v, where, "input")
    return ShapeInts(entries)


def _concat_zeros(where, inputs, axis):
    zeros = [v if isinstance(v, Zeros) else as_zeros(where, v) for v in inputs]
    dims = list(zeros[0].dims)
    for z in zeros[1:]:
        if any(a != b for k, (a, b) in enumerate(zip(dims, z.dims)) if k != axis):
            raise BadModel(f"{where} concatenates zeros of different shapes")
        if not isinstance(dims[axis], int) or not isinstance(z.dims[axis], int):
            raise BadModel(f"{where} concatenates along the time or batch axis")
        dims[axis] += z.dims[axis]
    return Zeros(dims, zeros[0].dtype)


def _concat_states(where, inputs, axis):
    """States joined along their rows; zeros among them are rows of zeros."""
    model = next(v for v in inputs if isinstance(v, StateRows))
    others = [a for k, a in enumerate(model.axes) if k != axis]
    rows = []
    for v in inputs:
        if isinstance(v, StateRows):
            if [a for k, a in enumerate(v.axes) if k != axis] != others and \
                    [data_atoms(a) for k, a in enumerate(v.axes) if k != axis] != \
                    [data_atoms(a) for a in others]:
                raise BadModel(f"{where} concatenates states of different shapes")
            atoms = data_atoms(v.axes[axis])
            if atoms not in ((("R", len(v.rows)),), ()) or (not atoms and len(v.rows) != 1):
                raise BadModel(f"{where} concatenates states along an axis that does not "
                               f"hold their rows")
            rows += v.rows
        else:
            rows += [None] * _zero_rows(where, as_zeros(where, v), model, axis)
    axes = list(model.axes)
    axes[axis] = (("R", len(rows)),)
    return StateRows(rows, axes, model.dtype)


def _zero_rows(where, zeros, model, axis):
    """How many rows of zeros `zeros` adds to states like `model`."""
    n = zeros.dims[axis]
    expected = [static_size(a) for k, a in enumerate(model.axes) if k != axis]
    got = [d for k, d in enumerate(zeros.dims) if k != axis]
    if not isinstance(n, int) or any(e is not None and e != g for e, g in zip(expected, got)):
        raise BadModel(f"{where} concatenates zeros that do not fit the states")
    return n


HANDLERS = {"Gather": gather, "Slice": slice_, "Split": split, "Concat": concat}
