"""export's writer of an LSTM, GRU or RNN: one ONNX node per layer of it
(both directions in one), its initial states as optional graph inputs and
its final states as graph outputs."""
from typing import NamedTuple

import numpy as np

from cyrnn import _cells
from cyrnn.onnx._registry import onnx_blocks, onnx_peephole


class _Layer(NamedTuple):
    """What every node of the layer shares."""
    prefix: str
    cell: _cells.CellSpec
    H: int
    L: int
    D: int
    direction: str           # the nodes' direction attribute
    params: dict             # the layer's state_dict
    bias: bool
    kinds: tuple             # its states: ("h", "c") or ("h",)
    attributes: dict         # the registry's attributes of its operator, per direction

    @property
    def rows(self):
        """The rows of its states (num_layers * num_directions)."""
        return self.L * self.D


def write_recurrent(w, prefix, layer, stream, suffix, options):
    """Writes the layer's nodes after the stream (made time-major first),
    the graph inputs h0/c0 and outputs h_n/c_n named with `suffix`."""
    r = _layer_facts(prefix, layer)
    if not stream.time_major:
        stream.value = w.node("Transpose", [stream.value], [prefix + "time_major"],
                              prefix + "time_major", perm=[1, 0, 2])[0]
        stream.time_major = True
    initial = {kind: _initial_state(w, r, kind, suffix, stream, options, layer.dtype)
               for kind in r.kinds}
    finals = {kind: [] for kind in r.kinds}
    for layer_index in range(r.L):
        made = _write_node(w, r, layer_index, stream, initial)
        for kind, out in zip(r.kinds, made[1:]):
            finals[kind].append(out)
        stream.value = _next_x(w, r, layer_index, made[0])
    for kind in r.kinds:
        _final_state(w, r, kind, suffix, finals[kind], options.B)


def _layer_facts(prefix, layer):
    cell = layer._cell
    D = 2 if layer.bidirectional else 1
    reverse = bool(getattr(layer, "reverse", False))
    direction = "bidirectional" if D == 2 else ("reverse" if reverse else "forward")
    attributes = {name: (list(value) * D if name == "activations" else value)
                  for name, value in cell.onnx_attributes}
    return _Layer(prefix, cell, layer.hidden_size, layer.num_layers, D, direction,
                  layer.state_dict(), layer.bias,
                  ("h", "c") if cell.has_cell_state else ("h",), attributes)


def _initial_state(w, r, kind, suffix, stream, options, dtype):
    """An optional graph input whose default is zeros, (L*D, 1, H) expanded
    to the batch (or the whole (L*D, B, H) when B is fixed)."""
    name = f"{kind}0{suffix}"
    B = options.B
    w.used.add(name)
    w.inputs.append(w.value_info(name, w.elem, [r.rows, B, r.H],
                                 f"{r.prefix or 'the layer'}'s initial {kind} "
                                 "(num_layers*num_directions, batch, hidden_size); "
                                 "zeros when not given"))
    fixed = not isinstance(B, str)
    w.inits.append(w.onnx.numpy_helper.from_array(
        np.zeros((r.rows, B if fixed else 1, r.H), dtype), name))
    if fixed:
        return name
    shape = w.node("Concat", [w.ints(f"{name}_rows", [r.rows]),
                              _batch_vector(w, stream, options.batch_first),
                              w.ints(f"{name}_units", [r.H])], [f"{name}_shape"],
                   f"{name}_shape", axis=0)[0]
    return w.node("Expand", [name, shape], [f"{name}_expanded"], f"{name}_expanded")[0]


def _batch_vector(w, stream, batch_first):
    """A 1-D int64 tensor holding the batch size, from x's shape (made once)."""
    if stream.batch is None:
        shape = w.node("Shape", ["x"], ["x_shape"], "x_shape")[0]
        index = w.ints("batch_axis", [0 if batch_first else 1])
        stream.batch = w.node("Gather", [shape, index], ["batch_size"], "batch_size",
                              axis=0)[0]
    return stream.batch


def _write_node(w, r, layer_index, stream, initial):
    """The node of one layer; its outputs' names (Y, then Y_h, Y_c)."""
    sfxs = [_cells.direction_suffix(layer_index, d) for d in range(r.D)]
    at = f"{r.prefix}l{layer_index}"
    inputs = [stream.value, *_node_weights(w, r, layer_index, sfxs), stream.lengths]
    for kind in r.kinds:
        inputs.append(_layer_rows(w, r, at, kind, initial[kind], layer_index))
    if r.cell.peephole:
        inputs.append(w.const(f"{r.prefix}P_l{layer_index}", np.stack(
            [onnx_peephole(r.params["weight_peephole" + s]) for s in sfxs])))
    outputs = [f"{at}_Y"] + [f"{at}_Y_{kind}" for kind in r.kinds]
    return w.node(r.cell.onnx_op, inputs, outputs, f"{r.prefix}{r.cell.onnx_op}_l{layer_index}",
                  hidden_size=r.H, direction=r.direction, **r.attributes)


def _node_weights(w, r, layer_index, sfxs):
    """The node's W, R and B ("" without bias): its directions' torch
    weights stacked, their gate blocks in ONNX's order."""
    def stacked(name):
        return np.stack([onnx_blocks(r.params[name + s], r.cell) for s in sfxs])
    W = w.const(f"{r.prefix}W_l{layer_index}", stacked("weight_ih"))
    R = w.const(f"{r.prefix}R_l{layer_index}", stacked("weight_hh"))
    bias = ""
    if r.bias:
        bias = w.const(f"{r.prefix}B_l{layer_index}", np.stack([
            np.concatenate([onnx_blocks(r.params["bias_ih" + s], r.cell),
                            onnx_blocks(r.params["bias_hh" + s], r.cell)]) for s in sfxs]))
    return [W, R, bias]


def _layer_rows(w, r, at, kind, state, layer_index):
    """A layer's rows of an initial state (all of them when it is the only one)."""
    if r.L == 1:
        return state
    start = layer_index * r.D
    return w.node("Slice", [state,
                            w.ints(f"{at}_{kind}_start", [start]),
                            w.ints(f"{at}_{kind}_end", [start + r.D]),
                            w.ints(f"{at}_{kind}_axis", [0])],
                  [f"{at}_{kind}0"], f"{at}_{kind}0")[0]


def _next_x(w, r, layer_index, y):
    """The node's Y (T, D, B, H) as the next node's X (T, B, D*H)."""
    at = f"{r.prefix}l{layer_index}"
    if r.D == 1:
        return w.node("Squeeze", [y, w.ints(f"{at}_squeeze_axis", [1])],
                      [f"{at}_y"], f"{at}_y")[0]
    moved = w.node("Transpose", [y], [f"{at}_y_moved"], f"{at}_y_moved",
                   perm=[0, 2, 1, 3])[0]
    return w.node("Reshape", [moved, w.ints(f"{at}_y_shape", [0, 0, -1])],
                  [f"{at}_y"], f"{at}_y")[0]


def _final_state(w, r, kind, suffix, finals, B):
    """The graph output of a final state: the nodes' Y_h (or Y_c), renamed
    or concatenated."""
    name = f"{kind}_n{suffix}"
    w.used.add(name)
    if r.L == 1:
        w.rename(finals[0], name)
    else:
        w.nodes.append(w.onnx.helper.make_node("Concat", finals, [name],
                                               name=w.name(name), axis=0))
    w.outputs.append(w.value_info(name, w.elem, [r.rows, B, r.H],
                                  f"{r.prefix or 'the layer'}'s final {kind} "
                                  "(num_layers*num_directions, batch, hidden_size)"))
