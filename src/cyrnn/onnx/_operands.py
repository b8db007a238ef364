"""A node's inputs in the form its handler needs (a constant array, a list
of ints or atoms, axes), checked, with the bounds on what the reading may
compute."""
import math

import numpy as np

from cyrnn.onnx._errors import BadModel
from cyrnn.onnx._values import Constant, ShapeInts, Zeros, kind_of

# A constant that the import computes (ConstantOfShape, Expand, ...) holds at
# most this many values; the file's own tensors are bounded by its bytes.
MAX_FOLDED = 1 << 24
MAX_RANK = 64  # entries of a shape-like input (a Reshape's shape, a Slice's starts...)


def check_arity(where, inputs, low, high):
    if not low <= len(inputs) <= high or any(v is None for v in inputs[:low]):
        raise BadModel(f"{where} takes {low} to {high} inputs, got "
                       f"{sum(v is not None for v in inputs)}")


def check_folded(count, where):
    if count > MAX_FOLDED:
        raise BadModel(f"{where} would make a constant of {count} values; cyrnn.onnx computes "
                       f"at most {MAX_FOLDED} (a larger one is no plumbing of a recurrent "
                       f"model)")


def axis_index(axis, rank, where):
    """An axis of a tensor of rank `rank`, negative ones counted from the end."""
    if not isinstance(axis, int) or not -rank <= axis < rank:
        raise BadModel(f"{where} names axis {axis!r} of a tensor of rank {rank}")
    return axis + rank if axis < 0 else axis


def constant_array(value, where, what, integer=False):
    """The array of an input that must be a constant (zeros of a static shape
    made one)."""
    if isinstance(value, Zeros):
        value = Constant(materialize(value, where))
    if not isinstance(value, Constant):
        raise BadModel(f"{where}'s {what} must be a constant, got {kind_of(value)}")
    array = value.array
    if integer and array.dtype.kind not in "iu":
        raise BadModel(f"{where}'s {what} must be integers, got {array.dtype}")
    return array


def materialize(zeros, where):
    if any(not isinstance(d, int) for d in zeros.dims):
        raise BadModel(f"{where} needs a constant where the graph has zeros of a shape "
                       f"that depends on the data")
    check_folded(math.prod(zeros.dims), where)
    return np.zeros(zeros.dims, zeros.dtype)


def int_entries(value, where, what):
    """A 1-D shape-like input as a list of entries (int or atom)."""
    if isinstance(value, ShapeInts):
        return list(value.entries) if not value.scalar else [value.entries[0]]
    array = constant_array(value, where, what, integer=True)
    if array.ndim > 1 or array.size > MAX_RANK:
        raise BadModel(f"{where}'s {what} must be 1-D with at most {MAX_RANK} entries, got "
                       f"shape {array.shape}")
    return [int(v) for v in array.reshape(-1)]


def axes_argument(inputs, attributes, where, position, rank, name="axes"):
    """The axes of Squeeze/Unsqueeze/ReduceX: an input from opset 13, an
    attribute before."""
    if len(inputs) > position and inputs[position] is not None:
        return [axis_index(e, rank, where) for e in int_entries(inputs[position], where, name)]
    if name in attributes:
        return [axis_index(a, rank, where) for a in attributes[name]]
    return None


def as_zeros(where, value):
    """Zeros, or a constant of float zeros as such: what may stand where
    states flow."""
    if isinstance(value, Zeros):
        return value
    if isinstance(value, Constant) and value.array.dtype.kind == "f" and \
            not np.any(value.array):
        return Zeros(value.array.shape, value.array.dtype)
    raise BadModel(f"{where} uses a constant, non-zero tensor where states flow")
