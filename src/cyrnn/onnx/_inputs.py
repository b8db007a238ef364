"""The graph's inputs: what each one feeds (found by following its
consumers through the plumbing), its declared type and shape, and the value
the reading starts it as."""
from typing import NamedTuple, Optional

import numpy as np

from cyrnn.onnx._elements import FLOATS, INT64, INTEGERS, NUMPY_TYPES
from cyrnn.onnx._errors import BadModel, quoted
from cyrnn.onnx._registry import RECURRENT_OPS
from cyrnn.onnx._source import tensor_array
from cyrnn.onnx._values import (Constant, Data, InputRow, Lengths, Opaque, StateRows,
                                data_atoms, feature_atoms)

# the operators whose first input (Concat: any input) flows on to their
# outputs, so that a graph input's role is found past them
_PASS_THROUGH = frozenset({"Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Slice",
                           "Concat", "Cast", "Expand", "Split", "Dropout", "Gather"})
# the recurrent operators' inputs by position: X, sequence_lens, initial_h,
# initial_c; the others are weights
_RECURRENT_INPUTS = {0: "x", 4: "lengths", 5: "state", 6: "state"}


class StateInput(NamedTuple):
    """A graph input of initial states: its declared dims and which of its
    first two axes holds the rows."""
    dims: list
    rows_axis: int


class _Declared(NamedTuple):
    elem: int
    dims: Optional[list]      # each an int or None; None: no shape declared


def define_inputs(reading, initializers):
    """Starts every graph input as its value, the data input first (the
    states' batch axis is the data's)."""
    graph = reading.graph
    roles = _input_roles(graph.node, reading.consumers, [v.name for v in graph.input])
    for value in sorted(graph.input, key=lambda v: roles.get(v.name) not in ("x", "ids")):
        _define_input(reading, value, roles.get(value.name), initializers)


def _input_roles(nodes, consumers, names):
    """graph input -> what it feeds: "x" (the data), "ids", "lengths",
    "state", "weight", or None, following the plumbing."""
    roles = {}
    for name in names:
        found = _roles_fed(nodes, consumers, name)
        if len(found) > 1:
            raise BadModel(f"graph input {quoted(name)} feeds the model as "
                           f"{' and '.join(sorted(found))} at once")
        roles[name] = found.pop() if found else None
    return roles


def _roles_fed(nodes, consumers, name):
    found, seen, todo = set(), {name}, [name]
    while todo:
        value = todo.pop()
        for index, position in consumers.get(value, ()):
            if index is None:
                continue
            node = nodes[index]
            op = node.op_type if node.domain in ("", "ai.onnx") else None
            role = _role_at(op, position)
            if role:
                found.add(role)
            elif (op in _PASS_THROUGH and (position == 0 or op == "Concat")) or op == "Add":
                for out in node.output:
                    if out and out not in seen:
                        seen.add(out)
                        todo.append(out)
    return found


def _role_at(op, position):
    """What the input at `position` of an `op` node is to the model, when
    that op says it."""
    if op in RECURRENT_OPS:
        return _RECURRENT_INPUTS.get(position, "weight")
    if op == "Gather" and position == 1:
        return "ids"
    if op in ("MatMul", "Gemm"):
        return "x" if position == 0 else "weight"
    return None


def _declared(value):
    """(elem type, dims) of a graph input: each dim an int, or None."""
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise BadModel(f"graph input {quoted(value.name)} is not a tensor")
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return _Declared(tensor.elem_type, None)
    dims = []
    for dim in tensor.shape.dim:
        dims.append(dim.dim_value if dim.WhichOneof("value") == "dim_value" else None)
    return _Declared(tensor.elem_type, dims)


def _define_input(reading, value, role, initializers):
    name = value.name
    elem, dims = _declared(value)
    default = initializers.get(name)
    where = f"graph input {quoted(name)}"
    if name in reading.constants:
        if role in ("x", "ids", "lengths"):
            raise BadModel(f"{where} is the model's {role}, so it cannot be a constant")
        reading.values[name] = Constant(reading.constants[name])
        reading.inputs[name] = "constant"
        return
    if role in ("x", "ids"):
        if reading.data_input is not None:
            raise BadModel(f"the graph has two data inputs, {quoted(reading.data_input)} and "
                           f"{quoted(name)}; cyrnn models take one")
        reading.data_input = name
        reading.values[name] = _data_value(reading, name, elem, dims)
        reading.inputs[name] = "ids" if reading.chain.ids else "x"
    elif role == "lengths":
        if elem not in INTEGERS:
            raise BadModel(f"{where} is sequence_lens, which must be int32, got element "
                           f"type {elem}")
        reading.values[name] = Lengths(name)
        reading.inputs[name] = "lengths"
    elif role == "state":
        reading.values[name] = state_value(reading, name, elem, dims, default)
        reading.inputs[name] = "state"
    elif default is not None:  # an initializer listed among the inputs
        return
    elif role == "weight":
        raise BadModel(f"{where} feeds a layer's weights, which cyrnn needs as constants: "
                       f"make it an initializer, or pass its value in "
                       f"constants={{{quoted(name)}: array}}")
    else:
        reading.values[name] = Opaque(name)
        reading.inputs[name] = "unused"


def _data_value(reading, name, elem, dims):
    """The data input: its leading axes time and batch (batch first when
    the reading says so), then its features unless it holds ids."""
    where = f"graph input {quoted(name)}"
    if dims is None:
        raise BadModel(f"{where} declares no shape; cyrnn.onnx needs at least its rank")
    integer = elem in INTEGERS
    if not integer and elem not in FLOATS:
        raise BadModel(f"{where} has element type {elem}; the model's data must be float "
                       f"(or int ids for an embedding)")
    reading.chain.ids = integer
    lead = len(dims) if integer else len(dims) - 1
    if not 1 <= lead <= 2:
        raise BadModel(f"{where} has rank {len(dims)}; the model's data must be "
                       f"{'(time, batch) ids' if integer else '(time, batch, features)'}, or "
                       f"with batch first")
    names = ["B", "T"] if reading.batch_first and lead == 2 else ["T", "B"][:lead]
    atoms = {n: (n, dims[k]) for k, n in enumerate(names)}
    reading.T, reading.B = atoms["T"], atoms.get("B", ("B", None))
    axes = [(atoms[n],) for n in names]
    if integer:
        reading.chain.features[0] = ()
    else:
        width = dims[-1]
        if width is None or width < 1:
            raise BadModel(f"{where} must declare its number of features (its last "
                           f"dimension), got {dims[-1]!r}")
        features = feature_atoms(0, [width])
        axes.append(features)
        reading.chain.features[0] = data_atoms(features)
    return Data(0, axes, NUMPY_TYPES[INT64 if integer else elem])


def state_value(reading, name, elem, dims, default, swapped=False):
    """A state input as its rows: (rows, batch, units), or (batch, rows,
    units) when so declared or `swapped` (as a layout=1 node reads it)."""
    where = f"graph input {quoted(name)}"
    if elem not in FLOATS:
        raise BadModel(f"{where} is an initial state, which must be float, got element "
                       f"type {elem}")
    if dims is None or len(dims) != 3:
        raise BadModel(f"{where} is an initial state, which must declare a shape of rank 3 "
                       f"(rows, batch, hidden_size), got {dims}")
    if default is not None:
        array = tensor_array(default, f"initializer {quoted(name)}", reading.source)
        if array.size and np.any(array != 0):
            raise BadModel(f"{where} is an initial state whose default is not zeros; "
                           f"cyrnn's layers start from zeros")
    rows_axis = 1 if swapped or (dims[0] is None and dims[1] is not None) else 0
    n, units = dims[rows_axis], dims[2]
    if n is None or units is None:
        raise BadModel(f"{where} is an initial state, which must declare its number of rows "
                       f"and units, got {dims}")
    reading.states[name] = StateInput(dims, rows_axis)
    axes = [(("R", n),), (("S", units),)]
    axes.insert(1 - rows_axis, (reading.B,))
    return StateRows([InputRow(name, k) for k in range(n)], axes, NUMPY_TYPES[elem], raw=name)
