"""The values of the graph as the reading sees them, without computing the
model: constants, shapes, zeros, the model's data and its states, each
dynamic one described by its axes.

Each axis is a tuple of atoms, the dimensions it merges. Atoms:
("T", static size or None) and ("B", ...), time and batch; ("F", position,
j, size), the j-th feature factor of the data at a position of the chain
(an RNN's Y has two: directions and units); ("R", n), the n state rows of a
state tensor (layers * directions); ("S", n), a state's units. An atom of
static size 1 is a unit: it holds no data and may come and go (Squeeze,
Unsqueeze, Reshape).
"""
from typing import NamedTuple

from cyrnn.onnx._errors import BadModel


def atom_size(atom):
    """An atom's static size; None for time and batch."""
    return None if atom[0] in ("T", "B") else atom[-1]


def is_unit(atom):
    return atom[0] not in ("T", "B") and atom[-1] == 1


def data_atoms(axis):
    """The atoms of an axis that hold data."""
    return tuple(a for a in axis if not is_unit(a))


def static_size(axis):
    """An axis's static size, or None when it holds time or batch."""
    size = 1
    for atom in data_atoms(axis):
        if atom_size(atom) is None:
            return None
        size *= atom_size(atom)
    return size


def feature_atoms(pos, sizes):
    """The feature atoms of the data at position `pos` of the chain."""
    return tuple(("F", pos, j, size) for j, size in enumerate(sizes))


def shape_entry(axis):
    """What Shape gives for an axis: its static size, its time or batch
    atom, or None."""
    real = data_atoms(axis)
    static = static_size(axis)
    if static is not None:
        return static
    return real[0] if len(real) == 1 else None


def describe_axes(axes):
    def one(axis):
        real = data_atoms(axis)
        if not real:
            return "1"
        return "*".join("time" if a[0] == "T" else "batch" if a[0] == "B" else
                        str(atom_size(a)) for a in real)
    return "(" + ", ".join(one(axis) for axis in axes) + ")"


def describe_dims(dims):
    return "(" + ", ".join("time" if isinstance(d, tuple) and d[0] == "T" else
                           "batch" if isinstance(d, tuple) else str(d) for d in dims) + ")"


# -- the kinds of value ------------------------------------------------------
class Constant:
    """A tensor the file holds or the reading computed."""
    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array


class ShapeInts:
    """A small int64 tensor (rank 0 or 1) computed from shapes: each entry
    an int, a time/batch atom, or None (unknown)."""
    __slots__ = ("entries", "scalar")

    def __init__(self, entries, scalar=False):
        self.entries, self.scalar = tuple(entries), scalar


class Zeros:
    """Zeros of a shape that may hold time/batch atoms."""
    __slots__ = ("dims", "dtype")

    def __init__(self, dims, dtype):
        self.dims, self.dtype = tuple(dims), dtype


class Data:
    """The model's data at a position of the chain, with its axes."""
    __slots__ = ("pos", "axes", "dtype")

    def __init__(self, pos, axes, dtype):
        self.pos, self.axes, self.dtype = pos, tuple(tuple(a) for a in axes), dtype


class InputRow(NamedTuple):
    """A state row fed to the model: row `row` of the graph input `input`."""
    input: str
    row: int


class FinalRow(NamedTuple):
    """A state row the model gives: the final `kind` ("h" or "c") of a
    direction of the chain's element `element`."""
    element: int
    direction: int
    kind: str


class StateRows:
    """State rows: each an InputRow, a FinalRow or None (zeros), and the
    tensor's axes (an ("R", n) atom where the rows are). `raw` is the graph
    input's name while untouched."""
    __slots__ = ("rows", "axes", "raw", "dtype")

    def __init__(self, rows, axes, dtype, raw=None):
        self.rows, self.axes, self.dtype, self.raw = tuple(rows), tuple(axes), dtype, raw


class Lengths:
    """The graph input of the recurrent nodes' sequence_lens."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class Opaque:
    """A graph input whose use the import cannot tell."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


_KINDS = {Constant: "a constant", ShapeInts: "a shape", Zeros: "zeros",
          Data: "the model's data", StateRows: "a state", Lengths: "the sequence lengths",
          Opaque: "an input of unknown use"}


def kind_of(value):
    """What a value is, for an error message."""
    return _KINDS.get(type(value), "nothing (an unused output)")


def rank_of(value, where):
    if isinstance(value, Constant):
        return value.array.ndim
    if isinstance(value, ShapeInts):
        return 0 if value.scalar else 1
    if isinstance(value, Zeros):
        return len(value.dims)
    if isinstance(value, (Data, StateRows)):
        return len(value.axes)
    raise BadModel(f"{where} reads {kind_of(value)}")


def dims_of(value):
    """Each axis's static size, or its time/batch atom, or None."""
    if isinstance(value, Zeros):
        return list(value.dims)
    if isinstance(value, Constant):
        return list(value.array.shape)
    return [shape_entry(axis) for axis in value.axes]


def with_axes(value, axes):
    """The model's data or states laid out as `axes`."""
    if isinstance(value, Data):
        return Data(value.pos, axes, value.dtype)
    return StateRows(value.rows, axes, value.dtype)
