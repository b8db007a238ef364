"""The handler of ONNX's LSTM, GRU and RNN nodes: each one layer (one or two
directions) of the registry cell its attributes name, appended to the chain
with its weights in torch's layout and its initial states as rows of the
graph's state inputs."""
from typing import NamedTuple, Optional

import numpy as np

from cyrnn import _cells
from cyrnn.onnx._chain import ChainRecurrent
from cyrnn.onnx._elements import element_type
from cyrnn.onnx._errors import BadModel, SwappedAxes, quoted
from cyrnn.onnx._inputs import state_value
from cyrnn.onnx._operands import as_zeros, check_arity, constant_array
from cyrnn.onnx._registry import select_cell, torch_blocks, torch_peephole
from cyrnn.onnx._values import (Constant, Data, FinalRow, InputRow, Lengths, StateRows, Zeros,
                                data_atoms, describe_axes, describe_dims, feature_atoms,
                                kind_of)


class _Weights(NamedTuple):
    """A node's weights as ONNX has them, checked against its cell."""
    cell: _cells.CellSpec
    H: int
    I: int
    W: np.ndarray                # (D, G*H, I)
    R: np.ndarray                # (D, G*H, H)
    bias: Optional[np.ndarray]   # (D, 2*G*H)
    peephole: Optional[np.ndarray]  # (D, 3*H)


def recurrent(reading, where, inputs, attributes, node):
    op = node.op_type
    has_c = op == "LSTM"
    check_arity(where, inputs, 3, 8 if has_c else 6)
    X, W, R, B, seq, h0, c0, P = list(inputs) + [None] * (8 - len(inputs))
    direction, layout = _check_attributes(where, op, attributes)
    D = 2 if direction == "bidirectional" else 1
    weights = _weights(where, op, attributes, (W, R, B, P), direction, D)
    _check_x(reading, where, X, layout, weights.I)
    lengths = None
    if seq is not None:
        if not isinstance(seq, Lengths):
            raise BadModel(f"{where}'s sequence_lens must be a graph input, got {kind_of(seq)}")
        lengths = seq.name
    rows_h = _initial_rows(reading, where, "initial_h", h0, layout, D, weights.H)
    rows_c = _initial_rows(reading, where, "initial_c", c0, layout, D, weights.H) \
        if has_c else None
    element = ChainRecurrent(weights.cell, direction, weights.H, weights.I,
                             _torch_params(weights, D), weights.bias is not None, lengths,
                             rows_h, rows_c, where)
    pos = reading.chain.append(where, X, element)
    return _node_outputs(reading, pos, element, layout, weights.W.dtype)


def _check_attributes(where, op, attributes):
    """(direction, layout) of a node whose attributes cyrnn's layers compute."""
    allowed = {"activation_alpha", "activation_beta", "activations", "clip", "direction",
               "hidden_size", "layout"} | ({"input_forget"} if op == "LSTM" else set()) | \
        ({"linear_before_reset"} if op == "GRU" else set())
    unknown = set(attributes) - allowed
    if unknown:
        raise BadModel(f"{where} has attributes {sorted(map(quoted, unknown))} that ONNX's {op} "
                       f"does not define")
    if "clip" in attributes:
        raise BadModel(f"{where} clips its cell input (clip={attributes['clip']}), which "
                       f"cyrnn's layers do not")
    if attributes.get("input_forget", 0):
        raise BadModel(f"{where} couples the input and forget gates (input_forget=1), which "
                       f"cyrnn's LSTM does not")
    direction = attributes.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise BadModel(f"{where} has direction {quoted(direction)}")
    layout = attributes.get("layout", 0)
    if layout not in (0, 1):
        raise BadModel(f"{where} has layout {layout}; ONNX defines 0 and 1")
    return direction, layout


def _weights(where, op, attributes, arrays, direction, D):
    """The node's W, R, B and P (the last two optional), checked."""
    W, R, B, P = arrays
    W = constant_array(W, where, "W")
    R = constant_array(R, where, "R")
    dtype = W.dtype
    if dtype.kind != "f" or W.ndim != 3:
        raise BadModel(f"{where}'s W must be a 3-D float tensor, got shape {W.shape}, "
                       f"{W.dtype}")
    cell = select_cell(where, op, attributes, D, P is not None)
    G = cell.gates
    if W.shape[0] != D or W.shape[1] % G or W.shape[1] == 0:
        raise BadModel(f"{where}'s W has shape {W.shape}; direction={direction} needs "
                       f"({D}, {G}*hidden_size, input_size)")
    H, I = W.shape[1] // G, W.shape[2]
    if attributes.get("hidden_size", H) != H:
        raise BadModel(f"{where} has hidden_size={attributes['hidden_size']}, but its W "
                       f"has shape {W.shape}")
    _check_shape(where, "R", R, (D, G * H, H), dtype)
    bias = peephole = None
    if B is not None:
        bias = constant_array(B, where, "B")
        _check_shape(where, "B", bias, (D, 2 * G * H), dtype)
    if P is not None:
        peephole = constant_array(P, where, "P")
        _check_shape(where, "P", peephole, (D, _cells.PEEPHOLE_ROWS * H), dtype)
    return _Weights(cell, H, I, W, R, bias, peephole)


def _check_shape(where, what, array, shape, dtype):
    if array.shape != shape:
        raise BadModel(f"{where}'s {what} has shape {array.shape}, expected {shape}")
    if array.dtype != dtype:
        raise BadModel(f"{where}'s {what} is {array.dtype}, but its W is {dtype}")


def _check_x(reading, where, X, layout, I):
    """X is the model's data, time and batch where the layout puts them."""
    if not isinstance(X, Data):
        raise BadModel(f"{where}'s X must be the model's data, got {kind_of(X)}")
    if len(X.axes) != 3:
        raise BadModel(f"{where}'s X must have 3 axes, got {describe_axes(X.axes)}")
    time_axis, batch_axis = (0, 1) if layout == 0 else (1, 0)
    lead = (data_atoms(X.axes[time_axis]), data_atoms(X.axes[batch_axis]))
    if lead != ((reading.T,), (reading.B,)):
        if lead == ((reading.B,), (reading.T,)):
            raise SwappedAxes(f"{where} (layout={layout}) reads the data's axes "
                              f"{describe_axes(X.axes)} with time and batch the other way "
                              f"round")
        raise BadModel(f"{where}'s X must be (time, batch, features) (layout 0) or (batch, "
                       f"time, features) (layout 1), got axes {describe_axes(X.axes)}")
    reading.chain.check_features(where, X, 2, I, "X")


def _torch_params(weights, D):
    """The node's weights under torch's names (layer 0), in torch's gate order."""
    cell, G, H = weights.cell, weights.cell.gates, weights.H
    params = {}
    for d in range(D):
        sfx = _cells.direction_suffix(0, d)
        params["weight_ih" + sfx] = torch_blocks(weights.W[d], cell)
        params["weight_hh" + sfx] = torch_blocks(weights.R[d], cell)
        if weights.bias is not None:
            params["bias_ih" + sfx] = torch_blocks(weights.bias[d, :G * H], cell)
            params["bias_hh" + sfx] = torch_blocks(weights.bias[d, G * H:], cell)
        if weights.peephole is not None:
            params["weight_peephole" + sfx] = torch_peephole(weights.peephole[d], H)
    return params


def _node_outputs(reading, pos, element, layout, dtype):
    """Y, its features two atoms (directions, units), and Y_h (and Y_c): the
    element's final states, row by row."""
    T, B, D, H = reading.T, reading.B, element.D, element.H
    d_atom, h_atom = feature_atoms(pos, [D, H])
    reading.chain.features[pos] = data_atoms((d_atom, h_atom))
    y_axes = [(T,), (d_atom,), (B,), (h_atom,)]
    if layout == 1:
        y_axes = [(B,), (T,), (d_atom,), (h_atom,)]
    outputs = [Data(pos, y_axes, dtype)]
    for kind in ("h", "c") if element.cell.has_cell_state else ("h",):
        state_axes = [(("R", D),), (B,), (("S", H),)]
        if layout == 1:
            state_axes[0], state_axes[1] = state_axes[1], state_axes[0]
        outputs.append(StateRows([FinalRow(pos - 1, d, kind) for d in range(D)], state_axes,
                                 dtype))
    return outputs


def _initial_rows(reading, where, what, value, layout, D, H):
    """The rows (D of them) of a node's initial state: InputRows or None
    (zeros)."""
    if value is None:
        return [None] * D
    if isinstance(value, Constant):
        value = as_zeros(f"{where}'s {what}", value)
    expected = (D, "batch", H) if layout == 0 else ("batch", D, H)
    rows_axis = 0 if layout == 0 else 1
    if isinstance(value, Zeros):
        dims = value.dims
        if len(dims) != 3 or dims[rows_axis] != D or dims[2] != H or \
                not (dims[1 - rows_axis] == reading.B or isinstance(dims[1 - rows_axis], int)):
            raise BadModel(f"{where}'s {what} must have shape {expected}, got zeros of "
                           f"shape {describe_dims(dims)}")
        return [None] * D
    if not isinstance(value, StateRows):
        raise BadModel(f"{where}'s {what} must be a state, got {kind_of(value)}")
    if layout == 1:
        value = _rows_second(reading, value)
    axes = value.axes
    if len(axes) != 3 or len(value.rows) != D or \
            data_atoms(axes[rows_axis]) not in ((("R", D),), ()) or \
            data_atoms(axes[1 - rows_axis]) != (reading.B,) or \
            data_atoms(axes[2]) != data_atoms((("S", H),)):
        raise BadModel(f"{where}'s {what} must have shape {expected}, got a state of "
                       f"{len(value.rows)} rows, axes {describe_axes(axes)}")
    for row in value.rows:
        if row is not None and not isinstance(row, InputRow):
            raise BadModel(f"{where}'s {what} is another layer's final state; cyrnn's "
                           f"layers start from the states given to the model")
    return list(value.rows)


def _rows_second(reading, state):
    """A state input read again with its rows second, as a layout=1 node
    reads it, when its declared shape (all static) was read rows first."""
    if state.raw is None:
        return state
    declared = reading.states[state.raw]
    if declared.rows_axis != 0 or declared.dims[1] is None:
        return state
    state = state_value(reading, state.raw, element_type(state.dtype), declared.dims, None,
                        swapped=True)
    reading.values[state.raw] = state
    return state
