"""ONNX in and out: cyrnn models as ONNX graphs, and ONNX graphs of recurrent
layers as cyrnn models.

An optional extra, ``pip install "cyrnn[onnx]"`` (onnx, and onnxruntime to
run what is exported). ``import cyrnn`` never imports onnx, and this module
imports it only when one of its functions is called::

    import cyrnn, cyrnn.onnx
    model = cyrnn.Sequential(cyrnn.Embedding(100, 16, seed=0),
                             cyrnn.LSTM(16, 32, num_layers=2, bidirectional=True, seed=1),
                             cyrnn.Linear(64, 100, seed=2))
    cyrnn.onnx.export(model, "model.onnx")        # for onnxruntime
    again = cyrnn.onnx.load("model.onnx")         # the same layers, the same weights

    graph = cyrnn.onnx.load_graph("from_torch.onnx")
    out, h_n, c_n = graph.run(None, {"ids": ids})  # as onnxruntime's session.run
    graph.model                                    # the cyrnn model it runs

* ``export(model, f=None, ...)`` writes an ``LSTM``, ``GRU``, ``RNN``,
  ``Linear``, ``Embedding``, ``Dropout`` or a ``Sequential`` of them as one
  ONNX graph: input ``x`` (``(time, batch, features)``, or ``(batch, time,
  ...)`` with ``batch_first``; int64 ids for an Embedding first), optional
  inputs ``h0``/``c0`` (zeros when not fed) and ``lengths``, outputs ``y``
  and ``h_n``/``c_n``, in cyrnn's (torch's) layouts.
* ``load(source)`` reads a graph of ``LSTM``/``GRU``/``RNN`` nodes, dense
  heads (``Gemm``, ``MatMul`` + ``Add``) and ``Gather`` embeddings, with the
  plumbing exporters put around them, into a cyrnn layer or ``Sequential``
  with torch-layout weights. ``load_graph(source)`` also keeps how the
  graph's inputs and outputs map onto that model, so that
  ``graph.run(output_names, feed)`` answers as onnxruntime does.

Reading is defensive: the file is parsed as a protobuf message and nothing
in it is executed or unpickled; every tensor's declared size is checked
against the bytes that hold it before anything is allocated; external data
is refused unless asked for, and then read only from inside the model's
folder; any operator outside the supported set is a ValueError naming it
and its node. docs/ONNX.md lists the operators and attributes.
"""
import json
import math
import numbers
import os
import stat

import numpy as np

from cyrnn import _cells
from cyrnn._version import __version__

__all__ = ["export", "load", "load_graph", "ImportedGraph", "DEFAULT_OPSET"]

DEFAULT_OPSET = 17      # runs on every onnxruntime since 1.11
MIN_EXPORT_OPSET = 14   # Squeeze/Unsqueeze axes as inputs (13), the RNNs' layout (14)
MIN_IMPORT_OPSET = 7    # the RNN operators' current form
_METADATA_KEY = "cyrnn.model"

# The numpy types of the ONNX element types this module reads or writes.
_FLOAT, _INT32, _INT64, _DOUBLE, _FLOAT16, _BOOL = 1, 6, 7, 11, 10, 9
_NUMPY_TYPES = {_FLOAT: np.float32, _DOUBLE: np.float64, _INT32: np.int32,
                _INT64: np.int64, _FLOAT16: np.float16, _BOOL: np.bool_}
_ELEMENT_NAMES = {_FLOAT: "float32", _DOUBLE: "float64", _INT32: "int32", _INT64: "int64",
                  _FLOAT16: "float16", _BOOL: "bool"}

# A constant that the import computes (ConstantOfShape, Expand, ...) holds at
# most this many values; the file's own tensors are bounded by its bytes.
_MAX_FOLDED = 1 << 24
_MAX_RANK = 64  # entries of a shape-like input (a Reshape's shape, a Slice's starts...)
_INT64_MAX = (1 << 63) - 1


def _require_onnx():
    try:
        import onnx
        import onnx.checker
        import onnx.helper
    except ImportError as exc:
        raise ImportError('cyrnn.onnx needs the onnx package, an optional extra of cyrnn: '
                          'pip install "cyrnn[onnx]"') from exc
    return onnx


def _q(name, width=80):
    """A name from the file, quoted and cut short for an error message."""
    text = repr(str(name))
    return text if len(text) <= width else text[:width - 4] + "...'"


# ============================================================================
# the registry's ONNX facts, both ways
# ============================================================================
# ONNX's default attributes of each operator (the spec's), to compare a
# node's with the registry's CellSpec.onnx_attributes.
_ONNX_DEFAULTS = {"LSTM": {"activations": ("sigmoid", "tanh", "tanh")},
                  "GRU": {"activations": ("sigmoid", "tanh"), "linear_before_reset": 0},
                  "RNN": {"activations": ("tanh",)}}
_RECURRENT_OPS = tuple(sorted({cell.onnx_op for cell in _cells.CELLS}))
# activations that take no alpha or beta: their activation_alpha/beta are moot
_PLAIN_ACTIVATIONS = {"sigmoid", "tanh", "relu"}


def _normal_attributes(op, attributes):
    """An operator's attributes with ONNX's defaults filled in and the
    activations lower-case, as a dict."""
    normal = dict(_ONNX_DEFAULTS[op])
    for name, value in attributes:
        normal[name] = tuple(v.lower() for v in value) if name == "activations" else value
    return normal


def _onnx_blocks(w, cell):
    """torch's gate blocks (along axis 0) in ONNX's order."""
    blocks = np.split(np.asarray(w), cell.gates, axis=0)
    return np.concatenate([blocks[k] for k in cell.onnx_gate_order], axis=0)


def _torch_blocks(w, cell):
    """ONNX's gate blocks (along axis 0) in torch's order."""
    blocks = np.split(np.asarray(w), cell.gates, axis=0)
    ordered = [None] * cell.gates
    for j, k in enumerate(cell.onnx_gate_order):
        ordered[k] = blocks[j]
    return np.concatenate(ordered, axis=0)


def _onnx_peephole(p):
    """cyrnn's (3, H) rows i, f, o -> ONNX's P (3H,): blocks i, o, f."""
    return np.asarray(p)[list(_cells.ONNX_PEEPHOLE_ORDER)].reshape(-1)


def _torch_peephole(p, H):
    blocks = np.asarray(p).reshape(_cells.PEEPHOLE_ROWS, H)
    rows = [None] * _cells.PEEPHOLE_ROWS
    for j, k in enumerate(_cells.ONNX_PEEPHOLE_ORDER):
        rows[k] = blocks[j]
    return np.stack(rows)


# ============================================================================
# export
# ============================================================================
def _layer_classes():
    from cyrnn.dropout import Dropout
    from cyrnn.embedding import Embedding
    from cyrnn.layers import GRU, LSTM, RNN
    from cyrnn.linear import Linear
    from cyrnn.sequential import Sequential
    return {"LSTM": LSTM, "GRU": GRU, "RNN": RNN, "Linear": Linear,
            "Embedding": Embedding, "Dropout": Dropout, "Sequential": Sequential}


def _export_layers(model):
    """[(prefix, kind, layer)] of the model, each checked exportable."""
    classes = _layer_classes()
    kinds = {cls: name for name, cls in classes.items()}
    if type(model) is classes["Sequential"]:
        items = [(f"{i}.", f"model[{i}]", layer) for i, layer in enumerate(model.layers)]
    else:
        items = [("", "model", model)]
    layers = []
    for prefix, where, layer in items:
        kind = kinds.get(type(layer))
        if kind is None or kind == "Sequential":
            what = "a nested Sequential (flatten it into one)" if kind else type(layer).__name__
            raise TypeError(f"{where} must be a cyrnn LSTM, GRU, RNN, Linear, Embedding, "
                            f"Dropout or a Sequential of them to export to ONNX, got {what}")
        if kind in ("LSTM", "GRU", "RNN") and layer.proj_size:
            raise ValueError(f"{where} has proj_size={layer.proj_size}: ONNX's LSTM operator "
                             f"has no projection (weight_hr), so it cannot be exported")
        if kind == "Embedding" and layers:
            raise ValueError(f"{where} is an Embedding after other layers; it can only be "
                             f"the first layer (it takes integer ids)")
        layers.append((prefix, kind, layer))
    return layers


class _Writer:
    """The nodes, initializers, inputs and outputs of the graph being built."""

    def __init__(self, onnx, elem):
        self.onnx, self.elem = onnx, elem
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self.used = set()

    def name(self, base):
        name, k = base, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def const(self, base, array):
        name = self.name(base)
        tensor = self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)
        self.inits.append(tensor)
        return name

    def ints(self, base, values):
        return self.const(base, np.asarray(values, dtype=np.int64))

    def node(self, op, inputs, outputs, node_name, **attributes):
        names = [self.name(o) for o in outputs]
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), names,
                                                     name=self.name(node_name), **attributes))
        return names

    def value_info(self, name, elem, shape, doc):
        info = self.onnx.helper.make_tensor_value_info(name, elem, shape)
        info.doc_string = doc
        return info


def export(model, f=None, *, batch_first=None, time_steps=None, batch_size=None,
           lengths=False, opset=DEFAULT_OPSET):
    """Writes `model` as an ONNX model to `f` (a path or a binary file
    object), or returns the serialized model as bytes when `f` is None.

    `model` is an LSTM, GRU, RNN (every option but proj_size, which ONNX's
    LSTM cannot express: a ValueError), Linear, Embedding, Dropout or a
    Sequential of them. The graph has

    * input ``x``: ``(time, batch, input_size)``, or ``(batch, time, ...)``
      when `batch_first` (default: the model's own batch_first); int64 ids
      ``(time, batch)`` when the first layer is an Embedding;
    * optional inputs ``h0`` and, for an LSTM, ``c0`` of shape
      ``(num_layers * num_directions, batch, hidden_size)`` (zeros when not
      fed; graph inputs with a default, which onnxruntime calls
      overridable initializers), named ``h0_k``/``c0_k`` for the k-th
      recurrent layer of a Sequential with more than one;
    * with `lengths=True`, a required input ``lengths`` (int32, ``(batch,)``),
      every sequence's length: each recurrent node's ``sequence_lens``;
    * outputs ``y`` (cyrnn's output, in x's layout), ``h_n`` and ``c_n``
      (or ``h_n_k``/``c_n_k``), the final states.

    `time_steps` and `batch_size` fix those dimensions in the declared
    shapes (default None: symbolic, named "time" and "batch"). One ONNX node
    per recurrent layer and direction group, joined by Transpose/Reshape
    (ONNX's Y is ``(T, D, B, H)``); batch_first is a Transpose of x and y,
    not the nodes' layout=1, which onnxruntime's CPU kernels refuse. A
    Dropout is an Identity (inference). `opset` is the ai.onnx version, 14
    or newer. The model's dtype is the graph's: onnxruntime 1.32 runs
    float64 for MatMul, Add and Gather but not for its LSTM, GRU and RNN
    kernels, which are float32 only.
    """
    onnx = _require_onnx()
    import onnx.numpy_helper  # noqa: F401  (the Writer's from_array)
    layers = _export_layers(model)
    opset = _check_opset(onnx, opset)
    dtype = np.dtype(next((layer.dtype for _, kind, layer in layers if kind != "Dropout"),
                          np.float32))
    elem = _FLOAT if dtype == np.float32 else _DOUBLE
    if batch_first is None:
        batch_first = bool(getattr(model, "batch_first", False))
    elif not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"batch_first must be None or a bool, got {batch_first!r}")
    batch_first = bool(batch_first)
    T = _check_dim("time_steps", time_steps, "time")
    B = _check_dim("batch_size", batch_size, "batch")
    if not isinstance(lengths, (bool, np.bool_)):
        raise TypeError(f"lengths must be a bool, got {lengths!r}")
    recurrent = [layer for _, kind, layer in layers if kind in ("LSTM", "GRU", "RNN")]
    if lengths and not recurrent:
        raise ValueError("lengths=True needs a recurrent layer (LSTM, GRU or RNN) to "
                         "give sequence_lens to; this model has none")

    w = _Writer(onnx, elem)
    w.used.update({"x", "y", "lengths"})
    lead = [B, T] if batch_first else [T, B]
    first_kind = layers[0][1]
    first = next((layer for _, kind, layer in layers if kind != "Dropout"), layers[0][2])
    features = getattr(first, "input_size", None) or getattr(first, "in_features", None)
    if first_kind == "Embedding":
        w.inputs.append(w.value_info("x", _INT64, lead, "token ids, " + _layout_doc(batch_first)))
    else:
        w.inputs.append(w.value_info("x", elem, lead + [features or "features"],
                                     "input sequence, " + _layout_doc(batch_first)))
    state = {"stream": "x", "time_major": not batch_first, "batch": None, "lengths": ""}
    if lengths:
        w.used.add("lengths")
        w.inputs.append(w.value_info("lengths", _INT32, [B], "every sequence's length, "
                                     "in [1, time]"))
        state["lengths"] = "lengths"
    suffixes = iter([""] if len(recurrent) == 1 else [f"_{k}" for k in range(len(recurrent))])
    width = features
    for prefix, kind, layer in layers:
        if kind == "Embedding":
            weight = w.const(prefix + "weight", layer.state_dict()["weight"])
            state["stream"] = w.node("Gather", [weight, state["stream"]], [prefix + "embedded"],
                                     prefix + "Embedding")[0]
            width = layer.embedding_dim
        elif kind == "Linear":
            params = layer.state_dict()
            weight = w.const(prefix + "weight_T", np.ascontiguousarray(params["weight"].T))
            out = w.node("MatMul", [state["stream"], weight], [prefix + "matmul"],
                         prefix + "Linear")[0]
            if layer.bias:
                bias = w.const(prefix + "bias", params["bias"])
                out = w.node("Add", [out, bias], [prefix + "linear"], prefix + "Linear_bias")[0]
            state["stream"] = out
            width = layer.out_features
        elif kind == "Dropout":
            state["stream"] = w.node("Identity", [state["stream"]], [prefix + "dropout"],
                                     prefix + f"Dropout_p{layer.p}_inference")[0]
        else:
            _export_recurrent(w, prefix, layer, state, next(suffixes), B, T, batch_first)
            width = layer.output_size
    if state["time_major"] == batch_first:  # back to the layout of x
        state["stream"] = w.node("Transpose", [state["stream"]], ["y_transposed"],
                                 "y_layout", perm=[1, 0, 2])[0]
    _name_output(w, state["stream"], "y")
    y_elem = elem
    w.outputs.insert(0, w.value_info("y", y_elem, lead + [width or "features"],
                                     "output, " + _layout_doc(batch_first)))
    graph = onnx.helper.make_graph(w.nodes, "cyrnn", w.inputs, w.outputs, initializer=w.inits)
    graph.doc_string = f"{model!r}"
    proto = onnx.helper.make_model_gen_version(
        graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
        producer_name="cyrnn", producer_version=__version__)
    _write_metadata(onnx, proto, model)
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if f is None:
        return data
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as out:
            out.write(data)
    elif hasattr(f, "write"):
        f.write(data)
    else:
        raise TypeError(f"f must be None, a path or a binary file object, got {type(f).__name__}")
    return None


def _layout_doc(batch_first):
    return "(batch, time, ...)" if batch_first else "(time, batch, ...)"


def _check_opset(onnx, opset):
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, (bool, np.bool_)) or not isinstance(opset, numbers.Integral) \
            or not MIN_EXPORT_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an integer from {MIN_EXPORT_OPSET} to {newest} (this "
                         f"onnx's newest), got {opset!r}")
    return int(opset)


def _check_dim(name, value, symbol):
    if value is None:
        return symbol
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < 1:
        raise ValueError(f"{name} must be None (symbolic) or a positive int, got {value!r}")
    return int(value)


def _name_output(w, value, name):
    """Gives the graph's output its name: the node making `value` is renamed
    (nothing has read it yet), or an Identity when `value` is the input."""
    for node in reversed(w.nodes):
        for k, out in enumerate(node.output):
            if out == value:
                node.output[k] = name
                return
    w.nodes.append(w.onnx.helper.make_node("Identity", [value], [name], name="y"))


def _batch_vector(w, state, batch_first):
    """A 1-D int64 tensor holding the batch size, from x's shape (made once)."""
    if state["batch"] is None:
        shape = w.node("Shape", ["x"], ["x_shape"], "x_shape")[0]
        index = w.ints("batch_axis", [0 if batch_first else 1])
        state["batch"] = w.node("Gather", [shape, index], ["batch_size"], "batch_size",
                                axis=0)[0]
    return state["batch"]


def _export_recurrent(w, prefix, layer, state, sfx, B, T, batch_first):
    cell, H, L = layer._cell, layer.hidden_size, layer.num_layers
    D = 2 if layer.bidirectional else 1
    reverse = bool(getattr(layer, "reverse", False))
    direction = "bidirectional" if D == 2 else ("reverse" if reverse else "forward")
    dtype = layer.dtype
    params = layer.state_dict()
    if not state["time_major"]:
        state["stream"] = w.node("Transpose", [state["stream"]], [prefix + "time_major"],
                                 prefix + "time_major", perm=[1, 0, 2])[0]
        state["time_major"] = True
    # the initial states: optional inputs whose default is zeros, (L*D, 1, H)
    # expanded to the batch (or the whole (L*D, B, H) when B is fixed)
    kinds = ["h", "c"] if cell.has_cell_state else ["h"]
    initial = {}
    for kind in kinds:
        name = f"{kind}0{sfx}"
        w.used.add(name)
        w.inputs.append(w.value_info(name, w.elem, [L * D, B, H],
                                     f"{prefix or 'the layer'}'s initial {kind} "
                                     "(num_layers*num_directions, batch, hidden_size); "
                                     "zeros when not given"))
        fixed = not isinstance(B, str)
        w.inits.append(w.onnx.numpy_helper.from_array(
            np.zeros((L * D, B if fixed else 1, H), dtype), name))
        if fixed:
            initial[kind] = name
            continue
        shape = w.node("Concat", [w.ints(f"{name}_rows", [L * D]),
                                  _batch_vector(w, state, batch_first),
                                  w.ints(f"{name}_units", [H])], [f"{name}_shape"],
                       f"{name}_shape", axis=0)[0]
        initial[kind] = w.node("Expand", [name, shape], [f"{name}_expanded"],
                               f"{name}_expanded")[0]
    attributes = {name: (list(value) * D if name == "activations" else value)
                  for name, value in cell.onnx_attributes}
    finals = {kind: [] for kind in kinds}
    for layer_index in range(L):
        sfxs = [_cells.direction_suffix(layer_index, d) for d in range(D)]
        at = f"{prefix}l{layer_index}"
        W = w.const(f"{prefix}W_l{layer_index}",
                    np.stack([_onnx_blocks(params["weight_ih" + s], cell) for s in sfxs]))
        R = w.const(f"{prefix}R_l{layer_index}",
                    np.stack([_onnx_blocks(params["weight_hh" + s], cell) for s in sfxs]))
        Bias = ""
        if layer.bias:
            Bias = w.const(f"{prefix}B_l{layer_index}", np.stack([
                np.concatenate([_onnx_blocks(params["bias_ih" + s], cell),
                                _onnx_blocks(params["bias_hh" + s], cell)]) for s in sfxs]))
        inputs = [state["stream"], W, R, Bias, state["lengths"]]
        for kind in kinds:
            if L == 1:
                inputs.append(initial[kind])
            else:
                inputs.append(w.node("Slice", [initial[kind],
                                               w.ints(f"{at}_{kind}_start", [layer_index * D]),
                                               w.ints(f"{at}_{kind}_end", [layer_index * D + D]),
                                               w.ints(f"{at}_{kind}_axis", [0])],
                                     [f"{at}_{kind}0"], f"{at}_{kind}0")[0])
        if cell.peephole:
            inputs.append(w.const(f"{prefix}P_l{layer_index}", np.stack(
                [_onnx_peephole(params["weight_peephole" + s]) for s in sfxs])))
        outputs = [f"{at}_Y"] + [f"{at}_Y_{kind}" for kind in kinds]
        made = w.node(cell.onnx_op, inputs, outputs, f"{prefix}{cell.onnx_op}_l{layer_index}",
                      hidden_size=H, direction=direction, **attributes)
        y = made[0]
        for kind, out in zip(kinds, made[1:]):
            finals[kind].append(out)
        if D == 1:
            state["stream"] = w.node("Squeeze", [y, w.ints(f"{at}_squeeze_axis", [1])],
                                     [f"{at}_y"], f"{at}_y")[0]
        else:
            moved = w.node("Transpose", [y], [f"{at}_y_moved"], f"{at}_y_moved",
                           perm=[0, 2, 1, 3])[0]
            state["stream"] = w.node("Reshape", [moved, w.ints(f"{at}_y_shape", [0, 0, -1])],
                                     [f"{at}_y"], f"{at}_y")[0]
    for kind in kinds:
        name = f"{kind}_n{sfx}"
        w.used.add(name)
        if L == 1:
            _rename_value(w, finals[kind][0], name)
        else:
            w.nodes.append(w.onnx.helper.make_node("Concat", finals[kind], [name],
                                                   name=w.name(name), axis=0))
        w.outputs.append(w.value_info(name, w.elem, [L * D, B, H],
                                      f"{prefix or 'the layer'}'s final {kind} "
                                      "(num_layers*num_directions, batch, hidden_size)"))


def _rename_value(w, old, new):
    for node in w.nodes:
        for k, out in enumerate(node.output):
            if out == old:
                node.output[k] = new


def _write_metadata(onnx, proto, model):
    """The model's cyrnn configuration (JSON), for load to rebuild the same
    layers (Dropout, padding_idx, dropout between layers) when it fits."""
    from cyrnn._model_config import describe
    try:
        text = json.dumps(describe(model), allow_nan=False)
    except (TypeError, ValueError):
        return
    entry = proto.metadata_props.add()
    entry.key, entry.value = _METADATA_KEY, text


# ============================================================================
# import: reading the file
# ============================================================================
class _Bad(Exception):
    """A problem with the file; load reports it as a ValueError."""


class _Swap(_Bad):
    """The data input's two leading axes were read the wrong way round."""


class _Source:
    """Where the model came from: its folder (for external data) or none."""

    def __init__(self, label, folder, external_data):
        self.label, self.folder, self.external_data = label, folder, external_data

    def external(self, tensor, nbytes, where):
        if not self.external_data:
            raise _Bad(f"{where} keeps its values in an external file; cyrnn.onnx reads "
                       f"external data only when asked (load(..., external_data=True)), and "
                       f"then only from the model's own folder")
        if self.folder is None:
            raise _Bad(f"{where} keeps its values in an external file, but the model was "
                       f"not read from a path, so it has no folder to read them from")
        info = {}
        for entry in tensor.external_data:
            if entry.key in info:
                raise _Bad(f"{where}'s external data names {_q(entry.key)} twice")
            info[entry.key] = entry.value
        unknown = set(info) - {"location", "offset", "length", "checksum"}
        if unknown:
            raise _Bad(f"{where}'s external data has unknown keys {sorted(map(_q, unknown))}")
        location = info.get("location", "")
        if not location or "\x00" in location:
            raise _Bad(f"{where}'s external data has no valid location")
        if os.path.isabs(location) or os.path.splitdrive(location)[0] \
                or location.startswith(("/", "\\")):
            raise _Bad(f"{where}'s external data is at an absolute path {_q(location)}; "
                       f"only files inside the model's folder are read")
        parts = location.replace("\\", "/").split("/")
        if ".." in parts:
            raise _Bad(f"{where}'s external data path {_q(location)} leaves the model's "
                       f"folder; only files inside it are read")
        path = os.path.realpath(os.path.join(self.folder, *parts))
        if os.path.commonpath([path, self.folder]) != self.folder:
            raise _Bad(f"{where}'s external data {_q(location)} resolves outside the "
                       f"model's folder (a link); only files inside it are read")
        offset = _external_int(info.get("offset", "0"), "offset", where)
        if "length" in info and _external_int(info["length"], "length", where) != nbytes:
            raise _Bad(f"{where}'s external data length is {_q(info['length'])} bytes, but "
                       f"its dims and type take {nbytes}")
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    raise _Bad(f"{where}'s external data {_q(location)} is not a regular file")
                if offset + nbytes > st.st_size:
                    raise _Bad(f"{where}'s external data needs bytes {offset} to "
                               f"{offset + nbytes} of {_q(location)}, which holds "
                               f"{st.st_size}")
                f.seek(offset)
                data = f.read(nbytes)
        except OSError as exc:
            raise _Bad(f"{where}'s external data {_q(location)} cannot be read "
                       f"({type(exc).__name__}: {exc.strerror})") from None
        if len(data) != nbytes:
            raise _Bad(f"{where}'s external data {_q(location)} is shorter than announced")
        return data


def _external_int(text, key, where):
    if not text.isdigit() or len(text) > 18:
        raise _Bad(f"{where}'s external data {key} must be a non-negative integer, "
                   f"got {_q(text)}")
    return int(text)


def _tensor_array(tensor, where, source):
    """A TensorProto as a numpy array, its declared size checked against the
    bytes that hold it before anything is allocated."""
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise _Bad(f"{where} has negative dimensions {dims}")
    dtype = _NUMPY_TYPES.get(tensor.data_type)
    if dtype is None:
        raise _Bad(f"{where} has element type {tensor.data_type}, which cyrnn.onnx does not "
                   f"read (float32, float64, float16, int32, int64, bool)")
    if tensor.HasField("segment"):
        raise _Bad(f"{where} is a segment of a tensor, which cyrnn.onnx does not read")
    count = math.prod(dims)
    itemsize = np.dtype(dtype).itemsize
    nbytes = count * itemsize
    little = np.dtype(dtype).newbyteorder("<")
    if tensor.data_location == 1:  # EXTERNAL
        raw = source.external(tensor, nbytes, where)
        return np.frombuffer(raw, little).astype(dtype).reshape(dims)
    if tensor.raw_data:
        if len(tensor.raw_data) != nbytes:
            raise _Bad(f"{where} holds {len(tensor.raw_data)} bytes, but its dims {dims} "
                       f"and type {_ELEMENT_NAMES[tensor.data_type]} take {nbytes}")
        return np.frombuffer(tensor.raw_data, little).astype(dtype).reshape(dims)
    if tensor.data_type == _FLOAT:
        field, kind = tensor.float_data, dtype
    elif tensor.data_type == _DOUBLE:
        field, kind = tensor.double_data, dtype
    elif tensor.data_type == _INT64:
        field, kind = tensor.int64_data, dtype
    else:  # int32, float16 (as bits), bool: int32_data
        field, kind = tensor.int32_data, np.int32
    if len(field) != count:
        raise _Bad(f"{where} holds {len(field)} values, but its dims {dims} take {count}")
    array = np.fromiter(field, dtype=kind, count=count)
    if tensor.data_type == _FLOAT16:
        array = array.astype(np.uint16).view(np.float16)
    return array.astype(dtype).reshape(dims)


def _read_proto(onnx, source):
    """(ModelProto, label, folder) from a path, bytes or a binary file object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label, folder = bytes(source), "the bytes given", None
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        with open(path, "rb") as f:  # OSError (a missing file...) as usual
            data = f.read()
        label = _q(path, 200)
        folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    elif hasattr(source, "read"):
        data, label, folder = source.read(), "the file object", None
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("source must be opened in binary mode")
        data = bytes(data)
    else:
        raise TypeError(f"source must be a path, bytes or a binary file object, "
                        f"got {type(source).__name__}")
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:  # google.protobuf's DecodeError, and its kin
        raise ValueError(f"{label} is not an ONNX model: it does not parse as one "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None
    return proto, label, folder


# ============================================================================
# import: the values of the graph, as the interpreter sees them
# ============================================================================
# Dynamic tensors (the data flowing through the model, its states) are
# described by their axes; each axis is a tuple of atoms, the dimensions it
# merges. Atoms: ("T", static size or None) and ("B", ...), time and batch;
# ("F", position, j, size), the j-th feature factor of the stream at a
# position of the chain (an RNN's Y has two: directions and units);
# ("R", n), the n state rows of a state tensor (layers * directions);
# ("S", n), a state's units. An atom of static size 1 is a unit: it holds no
# data and may come and go (Squeeze, Unsqueeze, Reshape).
def _size(atom):
    return None if atom[0] in ("T", "B") else atom[-1]


def _unit(atom):
    return atom[0] not in ("T", "B") and atom[-1] == 1


def _real(axis):
    """The atoms of an axis that hold data."""
    return tuple(a for a in axis if not _unit(a))


def _static(axis):
    """An axis's static size, or None when it holds time or batch."""
    size = 1
    for atom in _real(axis):
        if _size(atom) is None:
            return None
        size *= _size(atom)
    return size


def _describe_axes(axes):
    def one(axis):
        real = _real(axis)
        if not real:
            return "1"
        return "*".join("time" if a[0] == "T" else "batch" if a[0] == "B" else str(_size(a))
                        for a in real)
    return "(" + ", ".join(one(axis) for axis in axes) + ")"


class _Const:
    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array


class _Ints:
    """A small int64 tensor (rank 0 or 1) computed from shapes: each entry
    an int, a time/batch atom, or None (unknown)."""
    __slots__ = ("entries", "scalar")

    def __init__(self, entries, scalar=False):
        self.entries, self.scalar = tuple(entries), scalar


class _Zeros:
    """Zeros of a shape that may hold time/batch atoms."""
    __slots__ = ("dims", "dtype")

    def __init__(self, dims, dtype):
        self.dims, self.dtype = tuple(dims), dtype


class _Seq:
    """The model's data at a position of the chain, with its axes."""
    __slots__ = ("pos", "axes", "dtype")

    def __init__(self, pos, axes, dtype):
        self.pos, self.axes, self.dtype = pos, tuple(tuple(a) for a in axes), dtype


class _State:
    """State rows: each ("in", input name, row), ("out", element, direction,
    "h"/"c") or None (zeros), and the tensor's axes (an ("R", n) atom where
    the rows are). `raw` is the graph input's name while untouched."""
    __slots__ = ("rows", "axes", "raw", "dtype")

    def __init__(self, rows, axes, dtype, raw=None):
        self.rows, self.axes, self.dtype, self.raw = tuple(rows), tuple(axes), dtype, raw


class _Lengths:
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


class _Opaque:
    """A graph input whose use the import cannot tell."""
    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


def _kind(value):
    return {_Const: "a constant", _Ints: "a shape", _Zeros: "zeros", _Seq: "the model's data",
            _State: "a state", _Lengths: "the sequence lengths",
            _Opaque: "an input of unknown use"}.get(type(value), "nothing (an unused output)")


# ============================================================================
# import: the chain the graph computes
# ============================================================================
class _Embedding:
    kind = "Embedding"

    def __init__(self, weight):
        self.weight = weight


class _Linear:
    kind = "Linear"

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias


class _Recurrent:
    kind = "recurrent"

    def __init__(self, cell, direction, H, I, params, bias, lengths, h0, c0, where):
        self.cell, self.direction, self.H, self.I = cell, direction, H, I
        self.params, self.bias, self.lengths = params, bias, lengths
        self.h0, self.c0, self.where = h0, c0, where
        self.D = 2 if direction == "bidirectional" else 1

    def key(self):
        """What consecutive layers must share to be one multi-layer layer."""
        return (self.cell.key, self.direction, self.H, self.bias, self.lengths)


# ============================================================================
# import: the interpreter
# ============================================================================
_PLUMBING = {"Identity", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Slice", "Concat",
             "Cast", "Expand", "Split", "Dropout", "Gather"}
_SUPPORTED = sorted(set(_RECURRENT_OPS) | _PLUMBING |
                    {"Gemm", "MatMul", "Add", "Constant", "Shape", "ConstantOfShape"})


def _attributes(onnx, node, where):
    """name -> value of a node's attributes (no graphs, no references)."""
    A = onnx.AttributeProto
    values = {}
    for attribute in node.attribute:
        name = attribute.name
        if name in values:
            raise _Bad(f"{where} has the attribute {_q(name)} twice")
        if attribute.ref_attr_name:
            raise _Bad(f"{where}'s attribute {_q(name)} refers to a function's attribute")
        kind = attribute.type
        if kind == A.INT:
            value = attribute.i
        elif kind == A.FLOAT:
            value = attribute.f
        elif kind == A.STRING:
            value = _text(attribute.s, where, name)
        elif kind == A.INTS:
            value = tuple(attribute.ints)
        elif kind == A.FLOATS:
            value = tuple(attribute.floats)
        elif kind == A.STRINGS:
            value = tuple(_text(s, where, name) for s in attribute.strings)
        elif kind == A.TENSOR:
            value = attribute.t
        elif kind in (A.GRAPH, A.GRAPHS):
            raise _Bad(f"{where} holds a subgraph (attribute {_q(name)}); cyrnn.onnx reads "
                       f"flat graphs only")
        else:
            raise _Bad(f"{where}'s attribute {_q(name)} has a type ({kind}) cyrnn.onnx "
                       f"does not read")
        values[name] = value
    return values


def _text(data, where, name):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Bad(f"{where}'s attribute {_q(name)} is not UTF-8 text") from None


class _Graph:
    """One reading of the graph, its data input's leading axes taken as
    (time, batch) or, with batch_first, (batch, time)."""

    def __init__(self, onnx, proto, source, constants, batch_first):
        self.onnx, self.proto, self.source = onnx, proto, source
        self.graph = proto.graph
        self.batch_first = batch_first
        self.constants = constants
        self.chain = []           # _Embedding, _Linear, _Recurrent
        self.features = {}        # position -> its real feature atoms
        self.ids = False          # the data input holds ids
        self.values = {}
        self.inputs = {}          # graph input name -> role
        self.states = {}          # state input name -> (declared dims, default or None)
        self.data_input = None
        self.lengths_input = None
        self.opset = _opset(proto)
        self.T = self.B = None

    # -- set up ----------------------------------------------------------
    def run(self):
        graph = self.graph
        if len(graph.sparse_initializer):
            raise _Bad("the graph has sparse initializers, which cyrnn.onnx does not read")
        initializers = {}
        for k, tensor in enumerate(graph.initializer):
            if tensor.name in initializers:
                raise _Bad(f"two initializers are named {_q(tensor.name)}")
            initializers[tensor.name] = tensor
        names = [v.name for v in graph.input]
        if len(set(names)) != len(names):
            raise _Bad("two graph inputs have the same name")
        unknown = set(self.constants) - set(names)
        if unknown:
            raise _Bad(f"constants names {sorted(map(_q, unknown))}, which are not inputs of "
                       f"the graph (its inputs: {[_q(n) for n in names][:20]})")
        self.consumers = self._consumers()
        roles = self._roles(names, initializers)
        # the data input first: the states' batch axis is the data's
        for value in sorted(graph.input, key=lambda v: roles.get(v.name) not in ("x", "ids")):
            self._define_input(value, roles.get(value.name), initializers)
        for name, tensor in initializers.items():
            if name not in self.values:
                self.values[name] = _Const(_tensor_array(tensor, f"initializer {_q(name)}",
                                                         self.source))
        for index, node in enumerate(graph.node):
            self._run_node(index, node)
        return self._outputs()

    def _consumers(self):
        consumers = {}
        for index, node in enumerate(self.graph.node):
            for position, name in enumerate(node.input):
                if name:
                    consumers.setdefault(name, []).append((index, position))
        for value in self.graph.output:
            consumers.setdefault(value.name, []).append((None, None))
        return consumers

    def _roles(self, names, initializers):
        """graph input -> what it feeds: "x" (the data), "ids", "lengths",
        "state", "weight", or None, following the plumbing."""
        roles = {}
        nodes = self.graph.node
        for name in names:
            found, seen, todo = set(), {name}, [name]
            while todo:
                value = todo.pop()
                for index, position in self.consumers.get(value, ()):
                    if index is None:
                        continue
                    node = nodes[index]
                    op = node.op_type if node.domain in ("", "ai.onnx") else None
                    role = None
                    if op in _RECURRENT_OPS:
                        role = {0: "x", 4: "lengths", 5: "state", 6: "state"}.get(position,
                                                                                 "weight")
                    elif op == "Gather" and position == 1:
                        role = "ids"
                    elif op in ("MatMul", "Gemm"):
                        role = "x" if position == 0 else "weight"
                    elif (op in _PLUMBING and (position == 0 or op == "Concat")) or op == "Add":
                        for out in node.output:
                            if out and out not in seen:
                                seen.add(out)
                                todo.append(out)
                    if role:
                        found.add(role)
            if len(found) > 1:
                raise _Bad(f"graph input {_q(name)} feeds the model as {' and '.join(sorted(found))} "
                           f"at once")
            roles[name] = found.pop() if found else None
        return roles

    def _declared(self, value):
        """(elem type, dims) of a graph input: each dim an int, or None."""
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            raise _Bad(f"graph input {_q(value.name)} is not a tensor")
        tensor = value.type.tensor_type
        if not tensor.HasField("shape"):
            return tensor.elem_type, None
        dims = []
        for dim in tensor.shape.dim:
            dims.append(dim.dim_value if dim.WhichOneof("value") == "dim_value" else None)
        return tensor.elem_type, dims

    def _define_input(self, value, role, initializers):
        name = value.name
        elem, dims = self._declared(value)
        default = initializers.get(name)
        where = f"graph input {_q(name)}"
        if name in self.constants:
            if role in ("x", "ids", "lengths"):
                raise _Bad(f"{where} is the model's {role}, so it cannot be a constant")
            self.values[name] = _Const(self.constants[name])
            self.inputs[name] = "constant"
            return
        if role in ("x", "ids"):
            if self.data_input is not None:
                raise _Bad(f"the graph has two data inputs, {_q(self.data_input)} and "
                           f"{_q(name)}; cyrnn models take one")
            self.data_input = name
            self.values[name] = self._data_value(name, elem, dims)
            self.inputs[name] = "ids" if self.ids else "x"
        elif role == "lengths":
            if elem not in (_INT32, _INT64):
                raise _Bad(f"{where} is sequence_lens, which must be int32, got element "
                           f"type {elem}")
            self.values[name] = _Lengths(name)
            self.inputs[name] = "lengths"
        elif role == "state":
            self.values[name] = self._state_value(name, elem, dims, default, False)
            self.inputs[name] = "state"
        elif default is not None:  # an initializer listed among the inputs
            return
        elif role == "weight":
            raise _Bad(f"{where} feeds a layer's weights, which cyrnn needs as constants: "
                       f"make it an initializer, or pass its value in "
                       f"constants={{{_q(name)}: array}}")
        else:
            self.values[name] = _Opaque(name)
            self.inputs[name] = "unused"

    def _data_value(self, name, elem, dims):
        where = f"graph input {_q(name)}"
        if dims is None:
            raise _Bad(f"{where} declares no shape; cyrnn.onnx needs at least its rank")
        integer = elem in (_INT32, _INT64)
        if not integer and elem not in (_FLOAT, _DOUBLE, _FLOAT16):
            raise _Bad(f"{where} has element type {elem}; the model's data must be float "
                       f"(or int ids for an embedding)")
        self.ids = integer
        lead = len(dims) if integer else len(dims) - 1
        if not 1 <= lead <= 2:
            raise _Bad(f"{where} has rank {len(dims)}; the model's data must be "
                       f"{'(time, batch) ids' if integer else '(time, batch, features)'}, or "
                       f"with batch first")
        names = ["B", "T"] if self.batch_first and lead == 2 else ["T", "B"][:lead]
        atoms = [(n, dims[k]) for k, n in enumerate(names)]
        for atom in atoms:
            setattr(self, atom[0], atom)
        if self.B is None:
            self.B = ("B", None)
        axes = [(a,) for a in atoms]
        if not integer:
            width = dims[-1]
            if width is None or width < 1:
                raise _Bad(f"{where} must declare its number of features (its last "
                           f"dimension), got {dims[-1]!r}")
            feature = ("F", 0, 0, width)
            axes.append((feature,))
            self.features[0] = _real((feature,))
        else:
            self.features[0] = ()
        return _Seq(0, axes, _NUMPY_TYPES[_INT64 if integer else elem])

    def _state_value(self, name, elem, dims, default, swapped):
        where = f"graph input {_q(name)}"
        if elem not in (_FLOAT, _DOUBLE, _FLOAT16):
            raise _Bad(f"{where} is an initial state, which must be float, got element "
                       f"type {elem}")
        if dims is None or len(dims) != 3:
            raise _Bad(f"{where} is an initial state, which must declare a shape of rank 3 "
                       f"(rows, batch, hidden_size), got {dims}")
        if default is not None:
            array = _tensor_array(default, f"initializer {_q(name)}", self.source)
            if array.size and np.any(array != 0):
                raise _Bad(f"{where} is an initial state whose default is not zeros; cyrnn's "
                           f"layers start from zeros")
        rows_axis = 1 if swapped or (dims[0] is None and dims[1] is not None) else 0
        n, units = dims[rows_axis], dims[2]
        if n is None or units is None:
            raise _Bad(f"{where} is an initial state, which must declare its number of rows "
                       f"and units, got {dims}")
        self.states[name] = (dims, rows_axis)
        axes = [(("R", n),), (("S", units),)]
        axes.insert(1 - rows_axis, (self.B,))
        return _State([("in", name, k) for k in range(n)], axes, _NUMPY_TYPES[elem], raw=name)

    # -- nodes -----------------------------------------------------------
    def _run_node(self, index, node):
        op = node.op_type
        where = f"node {index} ({op} {_q(node.name)})"
        if node.domain not in ("", "ai.onnx"):
            raise _Bad(f"{where} is an operator of the domain {_q(node.domain)}; cyrnn.onnx "
                       f"reads the standard ai.onnx operators {_SUPPORTED}")
        if op not in _SUPPORTED:
            raise _Bad(f"{where}: the operator {_q(op)} is not supported; cyrnn.onnx reads "
                       f"{_SUPPORTED}")
        inputs = []
        for name in node.input:
            if not name:
                inputs.append(None)
            elif name in self.values:
                inputs.append(self.values[name])
            else:
                raise _Bad(f"{where} reads {_q(name)} before any node makes it: the graph "
                           f"has a cycle, is out of order, or names a value that does not "
                           f"exist")
        attributes = _attributes(self.onnx, node, where)
        handler = self._recurrent if op in _RECURRENT_OPS else getattr(self, "_op_" + op)
        outputs = handler(where, inputs, attributes, node)
        if not isinstance(outputs, list):
            outputs = [outputs]
        if len(node.output) > len(outputs):
            extra = [n for n in node.output[len(outputs):] if n]
            if extra:
                raise _Bad(f"{where} has outputs {[_q(n) for n in extra]} that cyrnn.onnx "
                           f"does not compute")
        for name, value in zip(node.output, outputs):
            if not name:
                continue
            if name in self.values:
                raise _Bad(f"{where} makes {_q(name)}, which another node or input already "
                           f"makes (values must be assigned once)")
            self.values[name] = value

    # helpers
    def _const(self, value, where, what, integer=False):
        if isinstance(value, _Zeros):
            value = _Const(self._materialize(value, where))
        if not isinstance(value, _Const):
            raise _Bad(f"{where}'s {what} must be a constant, got {_kind(value)}")
        array = value.array
        if integer and array.dtype.kind not in "iu":
            raise _Bad(f"{where}'s {what} must be integers, got {array.dtype}")
        return array

    def _materialize(self, zeros, where):
        if any(not isinstance(d, int) for d in zeros.dims):
            raise _Bad(f"{where} needs a constant where the graph has zeros of a shape "
                       f"that depends on the data")
        _check_folded(math.prod(zeros.dims), where)
        return np.zeros(zeros.dims, zeros.dtype)

    def _ints(self, value, where, what):
        """A 1-D shape-like input as a list of entries (int or atom)."""
        if isinstance(value, _Ints):
            return list(value.entries) if not value.scalar else [value.entries[0]]
        array = self._const(value, where, what, integer=True)
        if array.ndim > 1 or array.size > _MAX_RANK:
            raise _Bad(f"{where}'s {what} must be 1-D with at most {_MAX_RANK} entries, got "
                       f"shape {array.shape}")
        return [int(v) for v in array.reshape(-1)]

    def _axes_list(self, value, where, what, rank):
        entries = self._ints(value, where, what)
        return [_axis(e, rank, where) for e in entries]

    def _axes_arg(self, inputs, attributes, where, position, rank, name="axes"):
        """The axes of Squeeze/Unsqueeze/ReduceX: an input from opset 13, an
        attribute before."""
        if len(inputs) > position and inputs[position] is not None:
            return self._axes_list(inputs[position], where, name, rank)
        if name in attributes:
            return [_axis(a, rank, where) for a in attributes[name]]
        return None

    # -- the supported operators -----------------------------------------
    def _op_Constant(self, where, inputs, attributes, node):
        if len(attributes) != 1:
            raise _Bad(f"{where} must have exactly one value attribute")
        (name, value), = attributes.items()
        if name == "value":
            return _Const(_tensor_array(value, f"{where}'s value", self.source))
        if name == "value_float":
            return _Const(np.array(value, np.float32))
        if name == "value_floats":
            return _Const(np.array(value, np.float32))
        if name == "value_int":
            return _Const(np.array(value, np.int64))
        if name == "value_ints":
            return _Const(np.array(value, np.int64))
        raise _Bad(f"{where}'s attribute {_q(name)} is not read by cyrnn.onnx")

    def _op_Identity(self, where, inputs, attributes, node):
        _arity(where, inputs, 1, 1)
        return inputs[0]

    def _op_Dropout(self, where, inputs, attributes, node):
        _arity(where, inputs, 1, 3)
        if len(inputs) == 3 and inputs[2] is not None:
            training = self._const(inputs[2], where, "training_mode")
            if training.size != 1 or bool(training.reshape(-1)[0]):
                raise _Bad(f"{where} runs in training mode; cyrnn.onnx reads inference graphs")
        if len(node.output) > 1 and node.output[1] and self.consumers.get(node.output[1]):
            raise _Bad(f"{where}'s mask is used; at inference Dropout is the identity")
        return [inputs[0], None]

    def _op_Cast(self, where, inputs, attributes, node):
        _arity(where, inputs, 1, 1)
        to = attributes.get("to")
        value = inputs[0]
        if to not in _NUMPY_TYPES:
            raise _Bad(f"{where} casts to element type {to}, which cyrnn.onnx does not read")
        dtype = _NUMPY_TYPES[to]
        if isinstance(value, _Const):
            return _Const(value.array.astype(dtype))
        if isinstance(value, (_Ints, _Lengths)) and np.dtype(dtype).kind in "iu":
            return value
        if isinstance(value, _Zeros):
            return _Zeros(value.dims, dtype)
        if isinstance(value, (_Seq, _State)) and np.dtype(dtype) == value.dtype:
            return value
        raise _Bad(f"{where} casts {_kind(value)} to {np.dtype(dtype)}, which cyrnn's "
                   f"layers cannot follow")

    def _op_Shape(self, where, inputs, attributes, node):
        _arity(where, inputs, 1, 1)
        value = inputs[0]
        if isinstance(value, _Const):
            entries = list(value.array.shape)
        elif isinstance(value, _Zeros):
            entries = list(value.dims)
        elif isinstance(value, (_Seq, _State)):
            entries = [_shape_entry(axis) for axis in value.axes]
        else:
            raise _Bad(f"{where} takes the shape of {_kind(value)}")
        rank = len(entries)
        start = attributes.get("start", 0)
        end = attributes.get("end", rank)
        start = min(max(start + rank if start < 0 else start, 0), rank)
        end = min(max(end + rank if end < 0 else end, 0), rank)
        entries = entries[start:end]
        if all(isinstance(e, int) for e in entries):
            return _Const(np.array(entries, np.int64))
        return _Ints(entries)

    def _op_Gather(self, where, inputs, attributes, node):
        _arity(where, inputs, 2, 2)
        data, indices = inputs
        axis = attributes.get("axis", 0)
        if isinstance(indices, _Seq):
            return self._embedding(where, data, indices, axis)
        index = self._const(indices, where, "indices", integer=True)
        if isinstance(data, _Const):
            array = data.array
            axis = _axis(axis, array.ndim, where)
            n = array.shape[axis]
            if index.size and (index.min() < -n or index.max() >= n):
                raise _Bad(f"{where} gathers indices outside [-{n}, {n})")
            _check_folded(index.size * (array.size // max(n, 1)), where)
            return _Const(np.take(array, np.where(index < 0, index + n, index), axis=axis))
        if isinstance(data, _Ints):
            if data.scalar or axis not in (0, -1):
                raise _Bad(f"{where} gathers from a shape along axis {axis}")
            n = len(data.entries)
            if index.ndim > 1 or (index.size and (index.min() < -n or index.max() >= n)):
                raise _Bad(f"{where} gathers indices {index.tolist()} of a shape of rank {n}")
            picked = [data.entries[int(i)] for i in index.reshape(-1)]
            if all(isinstance(e, int) for e in picked):
                return _Const(np.array(picked if index.ndim else picked[0], np.int64))
            return _Ints(picked, scalar=index.ndim == 0)
        if isinstance(data, _State):
            axis = _axis(axis, len(data.axes), where)
            return self._pick_rows(where, data, axis, index)
        if isinstance(data, _Zeros):
            axis = _axis(axis, len(data.dims), where)
            n = data.dims[axis]
            if not isinstance(n, int):
                raise _Bad(f"{where} gathers along the time or batch axis")
            dims = list(data.dims[:axis]) + list(index.shape) + list(data.dims[axis + 1:])
            return _Zeros(dims, data.dtype)
        raise _Bad(f"{where} gathers from {_kind(data)}; cyrnn.onnx reads Gather as an "
                   f"embedding (a constant table, the data's ids) or on shapes and states")

    def _embedding(self, where, table, ids, axis):
        if not isinstance(table, _Const):
            raise _Bad(f"{where} looks ids up in {_kind(table)}; an embedding's table must "
                       f"be a constant")
        weight = table.array
        if weight.ndim != 2 or axis != 0 or weight.dtype.kind != "f":
            raise _Bad(f"{where} is not an embedding lookup: it needs a 2-D float table "
                       f"and axis 0, got shape {weight.shape}, axis {axis}")
        if not self.ids or ids.pos != 0 or self.features[0] != () or self.chain:
            raise _Bad(f"{where} looks up {_kind(ids)} in a table; cyrnn's Embedding takes "
                       f"the graph's integer ids, as the first layer")
        pos = self._append(where, ids, _Embedding(weight))
        atom = ("F", pos, 0, weight.shape[1])
        self.features[pos] = _real((atom,))
        return _Seq(pos, ids.axes + ((atom,),), weight.dtype)

    def _append(self, where, seq, element):
        """Adds an element to the chain, fed by `seq` (the chain's end)."""
        if seq.pos != len(self.chain):
            raise _Bad(f"{where} reads the output of an earlier layer, but the chain has "
                       f"gone on from it: cyrnn models are a chain of layers, each reading "
                       f"the last one's output")
        self.chain.append(element)
        element.where = where
        return len(self.chain)

    def _check_features(self, where, seq, axis_index, width, what):
        """`seq`'s axis holds exactly the features of its position, width wide."""
        axis = _real(seq.axes[axis_index])
        features = self.features[seq.pos]
        if axis != features or (self.ids and seq.pos == 0):
            raise _Bad(f"{where}'s {what} must hold the features of the data in its "
                       f"{'last ' if axis_index == -1 else ''}axis; its axes are "
                       f"{_describe_axes(seq.axes)}")
        size = math.prod(_size(a) for a in features)
        if size != width:
            raise _Bad(f"{where}'s {what} has {size} features, but its weights take {width}")

    def _op_MatMul(self, where, inputs, attributes, node):
        _arity(where, inputs, 2, 2)
        a, b = inputs
        if isinstance(a, _Const) and isinstance(b, _Const):
            return self._fold(where, np.matmul, a.array, b.array)
        if not isinstance(a, _Seq):
            raise _Bad(f"{where} multiplies {_kind(a)} by {_kind(b)}; cyrnn.onnx reads "
                       f"MatMul as a dense layer: the data times a constant matrix")
        weight = self._const(b, where, "weight")
        if weight.ndim != 2 or weight.dtype.kind != "f":
            raise _Bad(f"{where}'s weight must be a 2-D float matrix, got shape "
                       f"{weight.shape}, {weight.dtype}")
        self._check_features(where, a, -1, weight.shape[0], "input")
        return self._dense(where, a, np.ascontiguousarray(weight.T), None, node)

    def _dense(self, where, seq, weight, bias, node):
        element = _Linear(weight, bias)
        element.output = node.output[0] if node.output else ""
        pos = self._append(where, seq, element)
        atom = ("F", pos, 0, weight.shape[0])
        self.features[pos] = _real((atom,))
        return _Seq(pos, seq.axes[:-1] + ((atom,),), weight.dtype)

    def _op_Gemm(self, where, inputs, attributes, node):
        _arity(where, inputs, 2, 3)
        a, b = inputs[:2]
        c = inputs[2] if len(inputs) == 3 else None
        unknown = set(attributes) - {"alpha", "beta", "transA", "transB"}
        if unknown:
            raise _Bad(f"{where} has attributes {sorted(map(_q, unknown))} cyrnn.onnx does "
                       f"not read")
        if not isinstance(a, _Seq) or attributes.get("transA", 0):
            raise _Bad(f"{where}: cyrnn.onnx reads Gemm as a dense layer, A the data "
                       f"(not transposed) and B, C constants")
        if len(a.axes) != 2:
            raise _Bad(f"{where}'s A must be 2-D, got axes {_describe_axes(a.axes)}")
        matrix = self._const(b, where, "B")
        if matrix.ndim != 2 or matrix.dtype.kind != "f":
            raise _Bad(f"{where}'s B must be a 2-D float matrix, got shape {matrix.shape}")
        weight = matrix if attributes.get("transB", 0) else matrix.T
        self._check_features(where, a, -1, weight.shape[1], "A")
        alpha, beta = attributes.get("alpha", 1.0), attributes.get("beta", 1.0)
        if alpha != 1.0:
            weight = weight * np.asarray(alpha, weight.dtype)
        bias = None
        if c is not None:
            bias = self._bias_vector(where, self._const(c, where, "C"), weight.shape[0], 2)
            if beta != 1.0:
                bias = bias * np.asarray(beta, bias.dtype)
        return self._dense(where, a, np.ascontiguousarray(weight), bias, node)

    def _bias_vector(self, where, array, width, rank):
        if array.dtype.kind != "f" or array.ndim > rank or \
                any(d != 1 for d in array.shape[:-1]) or \
                (array.ndim and array.shape[-1] not in (1, width)):
            raise _Bad(f"{where}'s bias must broadcast along the features only, got shape "
                       f"{array.shape} for {width} features")
        return np.ascontiguousarray(np.broadcast_to(array.reshape(-1), (width,)))

    def _op_Add(self, where, inputs, attributes, node):
        _arity(where, inputs, 2, 2)
        a, b = inputs
        if isinstance(a, _Const) and isinstance(b, _Const):
            return self._fold(where, np.add, a.array, b.array)
        seq, other, name = (a, b, node.input[0]) if isinstance(a, _Seq) else \
            (b, a, node.input[1])
        if not isinstance(seq, _Seq) or not isinstance(other, _Const):
            raise _Bad(f"{where} adds {_kind(a)} and {_kind(b)}; cyrnn.onnx reads Add as "
                       f"the bias of a dense layer (MatMul, Gemm)")
        last = self.chain[-1] if self.chain else None
        if not isinstance(last, _Linear) or seq.pos != len(self.chain) or \
                name != last.output or len(self.consumers.get(name, ())) != 1 or \
                _real(seq.axes[-1]) != self.features[seq.pos]:
            raise _Bad(f"{where} adds a constant that is not the bias of the dense layer "
                       f"(MatMul, Gemm) just before it")
        bias = self._bias_vector(where, other.array, last.weight.shape[0], len(seq.axes))
        last.bias = bias if last.bias is None else last.bias + bias.astype(last.bias.dtype)
        return seq

    def _fold(self, where, function, a, b):
        shape = np.broadcast_shapes(a.shape, b.shape[:-2] + (1, 1)) if function is np.matmul \
            else np.broadcast_shapes(a.shape, b.shape)
        _check_folded(math.prod(shape) * (b.shape[-1] if function is np.matmul and b.ndim
                                          else 1), where)
        try:
            return _Const(np.asarray(function(a, b)))
        except ValueError as exc:
            raise _Bad(f"{where} cannot be computed: {exc}") from None

    def _op_Transpose(self, where, inputs, attributes, node):
        _arity(where, inputs, 1, 1)
        value = inputs[0]
        rank = _rank(value, where)
        perm = list(attributes.get("perm", range(rank - 1, -1, -1)))
        if sorted(perm) != list(range(rank)):
            raise _Bad(f"{where}'s perm {perm} is not a permutation of {rank} axes")
        if isinstance(value, _Ints):
            return value
        if isinstance(value, _Const):
            return _Const(np.transpose(value.array, perm))
        if isinstance(value, _Zeros):
            return _Zeros([value.dims[p] for p in perm], value.dtype)
        return _with_axes(value, [value.axes[p] for p in perm])

    def _op_Squeeze(self, where, inputs, attributes, node):
        _arity(where, inputs, 1, 2)
        value = inputs[0]
        rank = _rank(value, where)
        axes = self._axes_arg(inputs, attributes, where, 1, rank)
        if isinstance(value, _Const):
            return _Const(np.squeeze(value.array, axis=tuple(axes) if axes is not None
                                     else None))
        if isinstance(value, _Ints):
            if value.scalar or len(value.entries) != 1:
                raise _Bad(f"{where} squeezes a shape that is not one entry")
            return _Ints(value.entries, scalar=True)
        sizes = _dims_of(value)
        if axes is None:
            axes = [k for k, size in enumerate(sizes) if size == 1]
        for k in axes:
            if sizes[k] != 1:
                raise _Bad(f"{where} squeezes axis {k}, which is not of size 1 "
                           f"({_describe_dims(sizes)})")
        keep = [k for k in range(rank) if k not in axes]
        if isinstance(value, _Zeros):
            return _Zeros([value.dims[k] for k in keep], value.dtype)
        return _with_axes(value, [value.axes[k] for k in keep])

    def _op_Unsqueeze(self, where, inputs, attributes, node):
        _arity(where, inputs, 1, 2)
        value = inputs[0]
        rank = _rank(value, where)
        entries = self._ints(inputs[1], where, "axes") if len(inputs) > 1 and inputs[1] \
            is not None else list(attributes.get("axes", ()))
        if not entries:
            raise _Bad(f"{where} has no axes")
        out_rank = rank + len(entries)
        axes = sorted(_axis(a, out_rank, where) for a in entries)
        if len(set(axes)) != len(axes):
            raise _Bad(f"{where} names an axis twice")
        if isinstance(value, _Const):
            return _Const(np.expand_dims(value.array, tuple(axes)))
        if isinstance(value, _Ints):
            if not value.scalar or axes != [0]:
                raise _Bad(f"{where} unsqueezes a shape into more than one dimension")
            return _Ints(value.entries)
        if isinstance(value, _Zeros):
            dims = list(value.dims)
            for k in axes:
                dims.insert(k, 1)
            return _Zeros(dims, value.dtype)
        new = list(value.axes)
        for k in axes:
            new.insert(k, ())
        return _with_axes(value, new)

    def _op_Reshape(self, where, inputs, attributes, node):
        _arity(where, inputs, 2, 2)
        value, shape = inputs
        allowzero = attributes.get("allowzero", 0)
        entries = self._ints(shape, where, "shape")
        if isinstance(value, _Const):
            if any(not isinstance(e, int) for e in entries):
                raise _Bad(f"{where} reshapes a constant to a shape that depends on the data")
            target = [value.array.shape[k] if e == 0 and not allowzero else e
                      for k, e in enumerate(entries)]
            try:
                return _Const(value.array.reshape(target))
            except ValueError as exc:
                raise _Bad(f"{where} cannot reshape: {exc}") from None
        if isinstance(value, _Ints):
            if len(entries) > 1 or entries and entries[0] not in (-1, len(value.entries)):
                raise _Bad(f"{where} reshapes a shape to {entries}")
            return _Ints(value.entries, scalar=not entries)
        if isinstance(value, _Zeros):
            return _Zeros(_reshape_dims(value.dims, entries, allowzero, where), value.dtype)
        if isinstance(value, (_Seq, _State)):
            return _with_axes(value, _regroup(value.axes, entries, allowzero, where))
        raise _Bad(f"{where} reshapes {_kind(value)}")

    def _op_Slice(self, where, inputs, attributes, node):
        value = inputs[0] if inputs else None
        if self.opset < 10:
            _arity(where, inputs, 1, 1)
            starts, ends = list(attributes.get("starts", ())), list(attributes.get("ends", ()))
            axes = attributes.get("axes")
            steps = None
        else:
            _arity(where, inputs, 3, 5)
            starts = self._ints(inputs[1], where, "starts")
            ends = self._ints(inputs[2], where, "ends")
            axes = self._ints(inputs[3], where, "axes") if len(inputs) > 3 and \
                inputs[3] is not None else None
            steps = self._ints(inputs[4], where, "steps") if len(inputs) > 4 and \
                inputs[4] is not None else None
        rank = _rank(value, where)
        axes = list(range(len(starts))) if axes is None else [_axis(a, rank, where)
                                                               for a in axes]
        steps = [1] * len(starts) if steps is None else steps
        if not len(starts) == len(ends) == len(axes) == len(steps) or len(set(axes)) != len(axes):
            raise _Bad(f"{where}'s starts, ends, axes and steps do not match")
        if any(not isinstance(v, int) for v in starts + ends + steps):
            raise _Bad(f"{where} slices at positions that depend on the data")
        if any(s == 0 for s in steps):
            raise _Bad(f"{where} has a step of 0")
        if isinstance(value, _Const):
            array = value.array
            for a, s, e, st in zip(axes, starts, ends, steps):
                array = np.take(array, _slice_indices(array.shape[a], s, e, st), axis=a)
            return _Const(array)
        if isinstance(value, _Ints):
            if value.scalar or axes != [0]:
                raise _Bad(f"{where} slices a shape along axis {axes}")
            picked = [value.entries[i] for i in _slice_indices(len(value.entries), starts[0],
                                                               ends[0], steps[0])]
            if all(isinstance(e, int) for e in picked):
                return _Const(np.array(picked, np.int64))
            return _Ints(picked)
        sizes = _dims_of(value)
        dims = list(sizes)
        pick = {}
        for a, s, e, st in zip(axes, starts, ends, steps):
            if isinstance(sizes[a], int):
                indices = _slice_indices(sizes[a], s, e, st)
                if indices != list(range(sizes[a])):
                    pick[a] = indices
                    dims[a] = len(indices)
            elif not (s == 0 and st == 1 and e >= (1 << 31) - 1):
                raise _Bad(f"{where} slices the time or batch axis, which cyrnn's layers "
                           f"cannot follow")
        if isinstance(value, _Zeros):
            return _Zeros(dims, value.dtype)
        if not pick:
            return value
        if isinstance(value, _State) and len(pick) == 1:
            (axis, indices), = pick.items()
            return self._pick_rows(where, value, axis, np.array(indices))
        raise _Bad(f"{where} slices {_kind(value)} along axes "
                   f"{sorted(pick)} of {_describe_axes(value.axes)}, which cyrnn's layers "
                   f"cannot follow")

    def _pick_rows(self, where, state, axis, index):
        """The state rows `index` (an int array) of the rows axis `axis`."""
        atoms = _real(state.axes[axis])
        rows_here = atoms == (("R", len(state.rows)),) or (not atoms and len(state.rows) == 1)
        if not rows_here:
            raise _Bad(f"{where} picks along axis {axis} of a state "
                       f"{_describe_axes(state.axes)}, which does not hold its rows")
        n = len(state.rows)
        flat = index.reshape(-1)
        if flat.size and (flat.min() < -n or flat.max() >= n):
            raise _Bad(f"{where} picks rows {flat.tolist()[:10]} of {n}")
        rows = [state.rows[int(i)] for i in flat]
        axes = list(state.axes)
        if index.ndim == 0:
            del axes[axis]
        elif index.ndim == 1:
            axes[axis] = (("R", len(rows)),)
        else:
            raise _Bad(f"{where} picks state rows with a {index.ndim}-D index")
        return _State(rows, axes, state.dtype)

    def _op_Split(self, where, inputs, attributes, node):
        _arity(where, inputs, 1, 2)
        value = inputs[0]
        rank = _rank(value, where)
        axis = _axis(attributes.get("axis", 0), rank, where)
        n_out = len(node.output)
        if len(inputs) > 1 and inputs[1] is not None:
            split = self._ints(inputs[1], where, "split")
        elif "split" in attributes:
            split = list(attributes["split"])
        else:
            size = _dims_of(value)[axis]
            if not isinstance(size, int):
                raise _Bad(f"{where} splits the time or batch axis")
            n = attributes.get("num_outputs", n_out)
            step = -(-size // n)
            split = [min(step, size - k * step) for k in range(n)]
        if len(split) != n_out or any(not isinstance(s, int) or s < 0 for s in split):
            raise _Bad(f"{where}'s split {split} does not match its {n_out} outputs")
        size = _dims_of(value)[axis]
        if sum(split) != size:
            raise _Bad(f"{where} splits an axis of size {size} into {split}")
        out, start = [], 0
        for part in split:
            indices = np.arange(start, start + part)
            start += part
            if isinstance(value, _Const):
                out.append(_Const(np.take(value.array, indices, axis=axis)))
            elif isinstance(value, _State):
                out.append(self._pick_rows(where, value, axis, indices))
            elif isinstance(value, _Zeros):
                dims = list(value.dims)
                dims[axis] = part
                out.append(_Zeros(dims, value.dtype))
            else:
                raise _Bad(f"{where} splits {_kind(value)}")
        return out

    def _op_Concat(self, where, inputs, attributes, node):
        if not inputs or any(v is None for v in inputs):
            raise _Bad(f"{where} needs inputs")
        if "axis" not in attributes:
            raise _Bad(f"{where} has no axis")
        if len(inputs) == 1:
            return inputs[0]
        kinds = {type(v) for v in inputs}
        if kinds <= {_Const, _Ints}:
            if all(isinstance(v, _Const) for v in inputs):
                arrays = [v.array for v in inputs]
                _check_folded(sum(a.size for a in arrays), where)
                try:
                    return _Const(np.concatenate(arrays, axis=attributes["axis"]))
                except (ValueError, np.exceptions.AxisError) as exc:
                    raise _Bad(f"{where} cannot concatenate: {exc}") from None
            if attributes["axis"] not in (0, -1):
                raise _Bad(f"{where} concatenates shapes along axis {attributes['axis']}")
            entries = []
            for v in inputs:
                entries += self._ints(v, where, "input")
            return _Ints(entries)
        rank = _rank(inputs[0], where)
        axis = _axis(attributes["axis"], rank, where)
        if any(_rank(v, where) != rank for v in inputs):
            raise _Bad(f"{where} concatenates tensors of different ranks")
        if kinds <= {_Zeros, _Const}:
            zeros = [v if isinstance(v, _Zeros) else self._as_zeros(where, v) for v in inputs]
            dims = list(zeros[0].dims)
            for z in zeros[1:]:
                if any(a != b for k, (a, b) in enumerate(zip(dims, z.dims)) if k != axis):
                    raise _Bad(f"{where} concatenates zeros of different shapes")
                if not isinstance(dims[axis], int) or not isinstance(z.dims[axis], int):
                    raise _Bad(f"{where} concatenates along the time or batch axis")
                dims[axis] += z.dims[axis]
            return _Zeros(dims, zeros[0].dtype)
        if kinds <= {_State, _Zeros, _Const}:
            return self._concat_states(where, inputs, axis)
        raise _Bad(f"{where} concatenates {', '.join(sorted({_kind(v) for v in inputs}))}, "
                   f"which cyrnn's layers cannot follow (the model is a chain)")

    def _as_zeros(self, where, value):
        if isinstance(value, _Zeros):
            return value
        if isinstance(value, _Const) and value.array.dtype.kind == "f" and \
                not np.any(value.array):
            return _Zeros(value.array.shape, value.array.dtype)
        raise _Bad(f"{where} uses a constant, non-zero tensor where states flow")

    def _concat_states(self, where, inputs, axis):
        model = next(v for v in inputs if isinstance(v, _State))
        others = [a for k, a in enumerate(model.axes) if k != axis]
        rows = []
        for v in inputs:
            if isinstance(v, _State):
                if [a for k, a in enumerate(v.axes) if k != axis] != others and \
                        [_real(a) for k, a in enumerate(v.axes) if k != axis] != \
                        [_real(a) for a in others]:
                    raise _Bad(f"{where} concatenates states of different shapes")
                atoms = _real(v.axes[axis])
                if atoms not in ((("R", len(v.rows)),), ()) or (not atoms and len(v.rows) != 1):
                    raise _Bad(f"{where} concatenates states along an axis that does not "
                               f"hold their rows")
                rows += v.rows
            else:
                zeros = self._as_zeros(where, v)
                n = zeros.dims[axis]
                expected = [_static(a) for k, a in enumerate(model.axes) if k != axis]
                got = [d for k, d in enumerate(zeros.dims) if k != axis]
                if not isinstance(n, int) or any(
                        e is not None and e != g for e, g in zip(expected, got)):
                    raise _Bad(f"{where} concatenates zeros that do not fit the states")
                rows += [None] * n
        axes = list(model.axes)
        axes[axis] = (("R", len(rows)),)
        return _State(rows, axes, model.dtype)

    def _op_ConstantOfShape(self, where, inputs, attributes, node):
        _arity(where, inputs, 1, 1)
        entries = self._ints(inputs[0], where, "shape")
        tensor = attributes.get("value")
        value = np.zeros(1, np.float32) if tensor is None else \
            _tensor_array(tensor, f"{where}'s value", self.source)
        if value.size != 1:
            raise _Bad(f"{where}'s value must hold one number")
        if any(e is None or (isinstance(e, int) and e < 0) for e in entries):
            raise _Bad(f"{where} has a shape of unknown or negative dimensions")
        if value.reshape(-1)[0] == 0:
            return _Zeros(entries, value.dtype)
        if any(not isinstance(e, int) for e in entries):
            raise _Bad(f"{where} fills a tensor that depends on the data with a non-zero "
                       f"value")
        _check_folded(math.prod(entries), where)
        return _Const(np.full(entries, value.reshape(-1)[0], value.dtype))

    def _op_Expand(self, where, inputs, attributes, node):
        _arity(where, inputs, 2, 2)
        value, shape = inputs
        entries = self._ints(shape, where, "shape")
        if any(e is None for e in entries):
            raise _Bad(f"{where} expands to a shape of unknown dimensions")
        if isinstance(value, _Const) and value.array.size and not np.any(value.array):
            value = _Zeros(value.array.shape, value.array.dtype)
        if isinstance(value, _Const):
            if any(not isinstance(e, int) for e in entries):
                raise _Bad(f"{where} expands a non-zero constant to a shape that depends on "
                           f"the data")
            dims = _broadcast(value.array.shape, entries, where)
            _check_folded(math.prod(dims), where)
            return _Const(np.array(np.broadcast_to(value.array, dims)))
        if isinstance(value, _Zeros):
            return _Zeros(_broadcast(value.dims, entries, where), value.dtype)
        if isinstance(value, (_State, _Seq)):
            if len(entries) > len(value.axes):
                raise _Bad(f"{where} expands {_kind(value)} to more dimensions")
            entries = [1] * (len(value.axes) - len(entries)) + entries
            axes = list(value.axes)
            for k, (axis, entry) in enumerate(zip(value.axes, entries)):
                size, real = _static(axis), _real(axis)
                if entry == 1 or entry == size or (not isinstance(entry, int) and
                                                   real == (entry,)):
                    continue
                if isinstance(entry, int) and len(real) == 1 and real[0][0] in ("T", "B") \
                        and real[0][1] == entry:  # the declared size of time or batch
                    continue
                if size == 1 and not isinstance(entry, int) and isinstance(value, _State):
                    axes[k] = (entry,)  # a state of batch 1 made the batch's
                    continue
                raise _Bad(f"{where} expands {_kind(value)} {_describe_axes(value.axes)} "
                           f"to {entries}, which cyrnn's layers cannot follow")
            return _with_axes(value, axes)
        raise _Bad(f"{where} expands {_kind(value)}")

    # -- the recurrent operators -------------------------------------------
    def _recurrent(self, where, inputs, attributes, node):
        op = node.op_type
        has_c = op == "LSTM"
        _arity(where, inputs, 3, 8 if has_c else 6)
        inputs = list(inputs) + [None] * (8 - len(inputs))
        X, W, R, Bv, seq, h0, c0, P = inputs
        allowed = {"activation_alpha", "activation_beta", "activations", "clip", "direction",
                   "hidden_size", "layout"} | ({"input_forget"} if has_c else set()) | \
            ({"linear_before_reset"} if op == "GRU" else set())
        unknown = set(attributes) - allowed
        if unknown:
            raise _Bad(f"{where} has attributes {sorted(map(_q, unknown))} that ONNX's {op} "
                       f"does not define")
        if "clip" in attributes:
            raise _Bad(f"{where} clips its cell input (clip={attributes['clip']}), which "
                       f"cyrnn's layers do not")
        if attributes.get("input_forget", 0):
            raise _Bad(f"{where} couples the input and forget gates (input_forget=1), which "
                       f"cyrnn's LSTM does not")
        direction = attributes.get("direction", "forward")
        if direction not in ("forward", "reverse", "bidirectional"):
            raise _Bad(f"{where} has direction {_q(direction)}")
        layout = attributes.get("layout", 0)
        if layout not in (0, 1):
            raise _Bad(f"{where} has layout {layout}; ONNX defines 0 and 1")
        D = 2 if direction == "bidirectional" else 1
        W = self._const(W, where, "W")
        R = self._const(R, where, "R")
        dtype = W.dtype
        if dtype.kind != "f" or W.ndim != 3:
            raise _Bad(f"{where}'s W must be a 3-D float tensor, got shape {W.shape}, "
                       f"{W.dtype}")
        activations = attributes.get("activations")
        cell = self._select_cell(where, op, attributes, activations, D, P is not None)
        G = cell.gates
        if W.shape[0] != D or W.shape[1] % G or W.shape[1] == 0:
            raise _Bad(f"{where}'s W has shape {W.shape}; direction={direction} needs "
                       f"({D}, {G}*hidden_size, input_size)")
        H, I = W.shape[1] // G, W.shape[2]
        if attributes.get("hidden_size", H) != H:
            raise _Bad(f"{where} has hidden_size={attributes['hidden_size']}, but its W "
                       f"has shape {W.shape}")
        _check_shape(where, "R", R, (D, G * H, H), dtype)
        bias = None
        if Bv is not None:
            bias = self._const(Bv, where, "B")
            _check_shape(where, "B", bias, (D, 2 * G * H), dtype)
        peep = None
        if P is not None:
            peep = self._const(P, where, "P")
            _check_shape(where, "P", peep, (D, _cells.PEEPHOLE_ROWS * H), dtype)
        if not isinstance(X, _Seq):
            raise _Bad(f"{where}'s X must be the model's data, got {_kind(X)}")
        if len(X.axes) != 3:
            raise _Bad(f"{where}'s X must have 3 axes, got {_describe_axes(X.axes)}")
        time_axis, batch_axis = (0, 1) if layout == 0 else (1, 0)
        lead = (_real(X.axes[time_axis]), _real(X.axes[batch_axis]))
        if lead != ((self.T,), (self.B,)):
            if lead == ((self.B,), (self.T,)):
                raise _Swap(f"{where} (layout={layout}) reads the data's axes "
                            f"{_describe_axes(X.axes)} with time and batch the other way "
                            f"round")
            raise _Bad(f"{where}'s X must be (time, batch, features) (layout 0) or (batch, "
                       f"time, features) (layout 1), got axes {_describe_axes(X.axes)}")
        self._check_features(where, X, 2, I, "X")
        lengths = None
        if seq is not None:
            if not isinstance(seq, _Lengths):
                raise _Bad(f"{where}'s sequence_lens must be a graph input, got {_kind(seq)}")
            lengths = seq.name
        rows_h = self._initial(where, "initial_h", h0, layout, D, H)
        rows_c = self._initial(where, "initial_c", c0, layout, D, H) if has_c else None
        params = {}
        for d in range(D):
            sfx = _cells.direction_suffix(0, d)
            params["weight_ih" + sfx] = _torch_blocks(W[d], cell)
            params["weight_hh" + sfx] = _torch_blocks(R[d], cell)
            if bias is not None:
                params["bias_ih" + sfx] = _torch_blocks(bias[d, :G * H], cell)
                params["bias_hh" + sfx] = _torch_blocks(bias[d, G * H:], cell)
            if peep is not None:
                params["weight_peephole" + sfx] = _torch_peephole(peep[d], H)
        element = _Recurrent(cell, direction, H, I, params, bias is not None, lengths,
                             rows_h, rows_c, where)
        pos = self._append(where, X, element)
        index = pos - 1
        d_atom, h_atom = ("F", pos, 0, D), ("F", pos, 1, H)
        self.features[pos] = _real((d_atom, h_atom))
        y_axes = [(self.T,), (d_atom,), (self.B,), (h_atom,)]
        if layout == 1:
            y_axes = [(self.B,), (self.T,), (d_atom,), (h_atom,)]
        outputs = [_Seq(pos, y_axes, dtype)]
        for kind in ("h", "c") if has_c else ("h",):
            state_axes = [(("R", D),), (self.B,), (("S", H),)]
            if layout == 1:
                state_axes[0], state_axes[1] = state_axes[1], state_axes[0]
            outputs.append(_State([("out", index, d, kind) for d in range(D)], state_axes,
                                  dtype))
        return outputs

    def _select_cell(self, where, op, attributes, activations, D, peephole):
        """The registry's cell for a node's operator and attributes."""
        given = {}
        if activations is not None:
            names = tuple(a.lower() for a in activations)
            n = len(_ONNX_DEFAULTS[op]["activations"])
            if len(names) == n * D and D == 2:
                if names[:n] != names[n:]:
                    raise _Bad(f"{where} has different activations per direction {activations}")
                names = names[:n]
            if len(names) != n:
                raise _Bad(f"{where} has {len(names)} activations; {op} takes {n} per "
                           f"direction")
            if any(a not in _PLAIN_ACTIVATIONS for a in names):
                raise _Bad(f"{where} has activations {list(activations)}; cyrnn's cells "
                           f"use Sigmoid, Tanh and, for RNN, Relu")
            given["activations"] = names
        if "linear_before_reset" in attributes:
            given["linear_before_reset"] = attributes["linear_before_reset"]
        normal = dict(_ONNX_DEFAULTS[op])
        normal.update(given)
        for cell in _cells.CELLS:
            if cell.onnx_op != op or cell.peephole != peephole:
                continue
            if _normal_attributes(op, cell.onnx_attributes) == normal:
                return cell
        shown = {k: list(v) if isinstance(v, tuple) else v for k, v in normal.items()}
        raise _Bad(f"{where}: cyrnn has no cell computing {op} with {shown}"
                   f"{' and peepholes' if peephole else ''}; its {op} cells are "
                   f"{[dict(c.onnx_attributes) or 'the defaults' for c in _cells.CELLS if c.onnx_op == op]}")

    def _initial(self, where, what, value, layout, D, H):
        """The rows (D of them) of a node's initial state: ("in", name, row)
        or None (zeros)."""
        if value is None:
            return [None] * D
        if isinstance(value, _Const):
            value = self._as_zeros(f"{where}'s {what}", value)
        expected = (D, "batch", H) if layout == 0 else ("batch", D, H)
        if isinstance(value, _Zeros):
            rows_axis = 0 if layout == 0 else 1
            dims = value.dims
            if len(dims) != 3 or dims[rows_axis] != D or dims[2] != H or \
                    not (dims[1 - rows_axis] == self.B or isinstance(dims[1 - rows_axis], int)):
                raise _Bad(f"{where}'s {what} must have shape {expected}, got zeros of "
                           f"shape {_describe_dims(dims)}")
            return [None] * D
        if not isinstance(value, _State):
            raise _Bad(f"{where}'s {what} must be a state, got {_kind(value)}")
        if layout == 1 and value.raw is not None and self.states[value.raw][1] == 0:
            dims = self.states[value.raw][0]
            if dims[1] is not None:  # an all-static input read the other way
                value = self._state_value(value.raw, _elem_of(value.dtype), dims, None, True)
                self.values[value.raw] = value
        rows_axis = 0 if layout == 0 else 1
        axes = value.axes
        if len(axes) != 3 or len(value.rows) != D or \
                _real(axes[rows_axis]) not in ((("R", D),), ()) or \
                _real(axes[1 - rows_axis]) != (self.B,) or \
                _real(axes[2]) != _real((("S", H),)):
            raise _Bad(f"{where}'s {what} must have shape {expected}, got a state of "
                       f"{len(value.rows)} rows, axes {_describe_axes(axes)}")
        for row in value.rows:
            if row is not None and row[0] != "in":
                raise _Bad(f"{where}'s {what} is another layer's final state; cyrnn's "
                           f"layers start from the states given to the model")
        return list(value.rows)

    # -- outputs -------------------------------------------------------------
    def _outputs(self):
        outputs = {}
        final = len(self.chain)
        for value in self.graph.output:
            name = value.name
            if name not in self.values:
                raise _Bad(f"graph output {_q(name)} is made by no node")
            v = self.values[name]
            if v is None:
                raise _Bad(f"graph output {_q(name)} is a Dropout's mask")
            if isinstance(v, _Seq):
                if v.pos != final:
                    raise _Bad(f"graph output {_q(name)} is the output of an inner layer "
                               f"({self.chain[v.pos - 1].where if v.pos else 'the input'}); "
                               f"cyrnn models give the last layer's output")
                if v.pos == 0:
                    raise _Bad(f"graph output {_q(name)} is the graph's input")
                outputs[name] = ("y", v.axes)
            elif isinstance(v, _State):
                if any(row is None or row[0] != "out" for row in v.rows):
                    raise _Bad(f"graph output {_q(name)} holds initial states or zeros, not "
                               f"the layers' final states")
                outputs[name] = ("state", v.rows, v.axes)
            else:
                raise _Bad(f"graph output {_q(name)} is {_kind(v)}, not computed by the "
                           f"model's layers")
        if not self.chain:
            raise _Bad("the graph has no layer cyrnn reads (LSTM, GRU, RNN, Gemm, MatMul, "
                       "Gather)")
        lengths = {e.lengths for e in self.chain if isinstance(e, _Recurrent)}
        if len(lengths) > 1:
            raise _Bad("the recurrent nodes do not all take the same sequence_lens (or all "
                       "none); cyrnn passes one lengths to every layer")
        self.lengths_input = lengths.pop() if lengths else None
        return outputs


def _opset(proto):
    versions = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise _Bad("it imports no version of the standard ai.onnx operators")
    version = max(versions)
    if version < MIN_IMPORT_OPSET:
        raise _Bad(f"it uses ai.onnx opset {version}; cyrnn.onnx reads opset "
                   f"{MIN_IMPORT_OPSET} and newer")
    return version


def _elem_of(dtype):
    return {np.dtype(v): k for k, v in _NUMPY_TYPES.items()}[np.dtype(dtype)]


def _arity(where, inputs, low, high):
    if not low <= len(inputs) <= high or any(v is None for v in inputs[:low]):
        raise _Bad(f"{where} takes {low} to {high} inputs, got "
                   f"{sum(v is not None for v in inputs)}")


def _axis(axis, rank, where):
    if not isinstance(axis, int) or not -rank <= axis < rank:
        raise _Bad(f"{where} names axis {axis!r} of a tensor of rank {rank}")
    return axis + rank if axis < 0 else axis


def _rank(value, where):
    if isinstance(value, _Const):
        return value.array.ndim
    if isinstance(value, _Ints):
        return 0 if value.scalar else 1
    if isinstance(value, _Zeros):
        return len(value.dims)
    if isinstance(value, (_Seq, _State)):
        return len(value.axes)
    raise _Bad(f"{where} reads {_kind(value)}")


def _dims_of(value):
    """Each axis's static size, or its time/batch atom, or None."""
    if isinstance(value, _Zeros):
        return list(value.dims)
    if isinstance(value, _Const):
        return list(value.array.shape)
    return [_shape_entry(axis) for axis in value.axes]


def _shape_entry(axis):
    real = _real(axis)
    static = _static(axis)
    if static is not None:
        return static
    return real[0] if len(real) == 1 else None


def _describe_dims(dims):
    return "(" + ", ".join("time" if isinstance(d, tuple) and d[0] == "T" else
                           "batch" if isinstance(d, tuple) else str(d) for d in dims) + ")"


def _with_axes(value, axes):
    if isinstance(value, _Seq):
        return _Seq(value.pos, axes, value.dtype)
    return _State(value.rows, axes, value.dtype)


def _check_shape(where, what, array, shape, dtype):
    if array.shape != shape:
        raise _Bad(f"{where}'s {what} has shape {array.shape}, expected {shape}")
    if array.dtype != dtype:
        raise _Bad(f"{where}'s {what} is {array.dtype}, but its W is {dtype}")


def _check_folded(count, where):
    if count > _MAX_FOLDED:
        raise _Bad(f"{where} would make a constant of {count} values; cyrnn.onnx computes "
                   f"at most {_MAX_FOLDED} (a larger one is no plumbing of a recurrent model)")


def _slice_indices(dim, start, end, step):
    """ONNX Slice's indices of one axis (its clamping rules)."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return list(range(start, end, step))


def _broadcast(dims, target, where):
    """numpy's broadcast of two shapes whose entries may be time/batch atoms."""
    n = max(len(dims), len(target))
    a = [1] * (n - len(dims)) + list(dims)
    b = [1] * (n - len(target)) + list(target)
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise _Bad(f"{where} cannot broadcast {_describe_dims(dims)} to "
                       f"{_describe_dims(target)}")
    return out


def _reshape_dims(dims, entries, allowzero, where):
    """Reshape of a zeros tensor whose shape may hold time/batch atoms."""
    target = [dims[k] if e == 0 and not allowzero and k < len(dims) else e
              for k, e in enumerate(entries)]
    dynamic = [d for d in dims if not isinstance(d, int)]
    if [d for d in target if not isinstance(d, int)] != dynamic:
        raise _Bad(f"{where} reshapes zeros of shape {_describe_dims(dims)} to {entries}, "
                   f"moving the time or batch axis")
    static = math.prod(d for d in dims if isinstance(d, int))
    known = math.prod(d for d in target if isinstance(d, int) and d != -1)
    if target.count(-1) > 1 or any(isinstance(d, int) and d < -1 for d in target):
        raise _Bad(f"{where} has a bad shape {entries}")
    if -1 in target:
        if known == 0 or static % known:
            raise _Bad(f"{where} cannot reshape {_describe_dims(dims)} to {entries}")
        target[target.index(-1)] = static // known
    elif known != static:
        raise _Bad(f"{where} cannot reshape {_describe_dims(dims)} to {entries}")
    return target


def _regroup(axes, entries, allowzero, where):
    """Reshape of a dynamic tensor: the target's dimensions as groups of the
    atoms, in order. Splitting an atom is refused."""
    entries = list(entries)
    for k, e in enumerate(entries):
        if e == 0 and not allowzero:
            if k >= len(axes):
                raise _Bad(f"{where} copies dimension {k} of a tensor of rank {len(axes)}")
            entries[k] = ("copy", _real(axes[k]))
        elif isinstance(e, int) and e < -1:
            raise _Bad(f"{where} has a negative dimension {e}")
        elif e is None:
            raise _Bad(f"{where} reshapes to a dimension it cannot tell")
    if entries.count(-1) > 1:
        raise _Bad(f"{where} has more than one -1")
    queue = [a for axis in axes for a in _real(axis)]
    failure = _Bad(f"{where} reshapes {_describe_axes(axes)} to {_describe_target(entries)}, "
                   f"which splits or moves what cyrnn's layers keep whole (time, batch, "
                   f"features)")

    def take(entry, atoms):
        """The group of `atoms` (consumed from its front) that `entry` covers."""
        if isinstance(entry, tuple) and entry[0] == "copy":
            group = entry[1]
            if tuple(atoms[:len(group)]) != group:
                raise failure
            del atoms[:len(group)]
            return group
        if isinstance(entry, tuple):  # a time/batch atom from Shape
            if not atoms or atoms[0] != entry:
                raise failure
            return (atoms.pop(0),)
        if entry < 1:
            raise failure
        if entry == 1 and atoms and atoms[0][0] in ("T", "B") and atoms[0][1] == 1:
            return (atoms.pop(0),)  # a time or batch axis declared of size 1
        group, product = [], 1
        while product < entry:
            if not atoms:
                raise failure
            atom = atoms[0]
            size = _size(atom) if _size(atom) is not None else atom[1]
            if size is None:  # time or batch, of a size the graph does not declare
                raise failure
            product *= size
            group.append(atoms.pop(0))
        if product != entry:
            raise failure
        return tuple(group)

    if -1 in entries:
        split = entries.index(-1)
        front = [take(e, queue) for e in entries[:split]]
        back_queue = queue[::-1]
        back = []
        for e in reversed(entries[split + 1:]):
            if isinstance(e, tuple) and e[0] == "copy":
                e = ("copy", e[1][::-1])
            back.append(tuple(reversed(take(e, back_queue))))
        middle = back_queue[::-1]
        return front + [tuple(middle)] + back[::-1]
    groups = [take(e, queue) for e in entries]
    if queue:
        raise failure
    return groups


def _describe_target(entries):
    out = []
    for e in entries:
        if isinstance(e, tuple) and e[0] == "copy":
            out.append("0")
        elif isinstance(e, tuple):
            out.append("time" if e[0] == "T" else "batch")
        else:
            out.append(str(e))
    return "(" + ", ".join(out) + ")"


# ============================================================================
# import: the cyrnn model
# ============================================================================
class ImportedGraph:
    """An ONNX graph read into a cyrnn model, and how the graph's inputs and
    outputs map onto it.

    * ``model``: the cyrnn layer, or Sequential, computing the graph;
    * ``input_roles``: graph input -> "x" (the data), "ids", "lengths",
      "state" (initial state rows), "constant" (given to load_graph) or
      "unused";
    * ``output_roles``: graph output -> "y" (the model's output, in the
      graph's layout) or "state" (final state rows);
    * ``batch_first``: whether the graph's data is (batch, time, ...);
    * ``run(output_names, input_feed)``: the graph's outputs (a list, in
      the order asked; None for all) from its inputs by name, computed by
      ``model``, as onnxruntime's ``InferenceSession.run`` answers.
    """

    def __init__(self, model, interpretation, groups, outputs):
        g = interpretation
        self.model = model
        self.batch_first = g.batch_first
        self.input_roles = dict(g.inputs)
        self.output_roles = {name: spec[0] for name, spec in outputs.items()}
        self._data = g.data_input
        self._ids = g.ids
        self._lengths = g.lengths_input
        self._outputs = outputs
        self._groups = groups           # per stateful layer: [element index, ...]
        self._elements = {index: (k, layer) for k, group in enumerate(groups)
                          for layer, index in enumerate(group)}
        self._chain = g.chain
        self._state_inputs = dict(g.states)
        lead = [a for axis in g.values[g.data_input].axes[:(2 if g.ids else -1)]
                for a in axis] if g.data_input else []
        self._lead = lead
        self._y_atoms = lead + list(g.features[len(g.chain)])
        self._T, self._B = g.T, g.B

    def __repr__(self):
        return (f"<cyrnn.onnx.ImportedGraph inputs {self.input_roles}, outputs "
                f"{self.output_roles}, model {self.model!r}>")

    def run(self, output_names=None, input_feed=None):
        names = list(self._outputs) if output_names is None else list(output_names)
        unknown = [n for n in names if n not in self._outputs]
        if unknown:
            raise ValueError(f"output_names: the graph has no outputs {unknown}; it has "
                             f"{list(self._outputs)}")
        feed = dict(input_feed or {})
        unknown = [n for n in feed if n not in self.input_roles]
        if unknown:
            raise ValueError(f"input_feed: the graph has no inputs {unknown}; it has "
                             f"{list(self.input_roles)}")
        if self._data not in feed:
            raise ValueError(f"input_feed must hold the graph's data input {self._data!r}")
        x = np.asarray(feed[self._data])
        lengths = None
        if self._lengths is not None:
            if self._lengths not in feed:
                raise ValueError(f"input_feed must hold the sequence lengths "
                                 f"{self._lengths!r}")
            lengths = np.asarray(feed[self._lengths])
        stateful = getattr(self.model, "stateful", False)
        if stateful:
            hx = self._initial_states(feed, x)
            if not isinstance(self.model, _layer_classes()["Sequential"]):
                hx = hx[0]
            y, states = self.model(x, hx, lengths=lengths)
            if not isinstance(self.model, _layer_classes()["Sequential"]):
                states = [states]
        else:
            y, states = self.model(x), []
        finals = [state if isinstance(state, tuple) else (state, None) for state in states]
        sizes = self._sizes(y)
        results = []
        for name in names:
            spec = self._outputs[name]
            if spec[0] == "y":
                results.append(_arrange(y, self._y_atoms, spec[1], sizes))
            else:
                results.append(self._final_rows(spec[1], spec[2], finals, sizes))
        return results

    def _sizes(self, y):
        sizes = {}
        for k, atom in enumerate(self._lead):
            sizes[atom[0]] = y.shape[k]
        return sizes

    def _initial_states(self, feed, x):
        """Each stateful layer's hx, gathered row by row from the fed state
        inputs (zeros where a row has none, or its input is not fed)."""
        B = x.shape[0 if self.batch_first else 1] if x.ndim >= 2 else 1
        hx = []
        for group in self._groups:
            parts = []
            kinds = ("h", "c") if self._chain[group[0]].cell.has_cell_state else ("h",)
            for kind in kinds:
                rows, any_given = [], False
                for index in group:
                    element = self._chain[index]
                    for ref in (element.h0 if kind == "h" else element.c0):
                        row = None
                        if ref is not None and ref[1] in feed:
                            array = np.asarray(feed[ref[1]])
                            rows_axis = self._state_inputs[ref[1]][1]
                            if array.ndim != 3:
                                raise ValueError(f"input_feed[{ref[1]!r}] must have 3 axes, "
                                                 f"got shape {array.shape}")
                            row = np.take(array, ref[2], axis=rows_axis)
                            any_given = True
                        rows.append(row)
                if not any_given:
                    parts.append(None)
                    continue
                H = self._chain[group[0]].H
                dtype = self.model.dtype
                parts.append(np.stack([np.zeros((B, H), dtype) if r is None else r
                                       for r in rows]))
            if len(parts) == 2:
                h, c = parts
                if h is None and c is None:
                    hx.append(None)
                    continue
                template = h if h is not None else c
                hx.append((h if h is not None else np.zeros_like(template),
                           c if c is not None else np.zeros_like(template)))
            else:
                hx.append(parts[0])
        return hx

    def _final_rows(self, rows, axes, finals, sizes):
        arrays = []
        for _, index, d, kind in rows:
            k, layer = self._elements[index]
            h_n, c_n = finals[k]
            D = self._chain[index].D
            arrays.append((h_n if kind == "h" else c_n)[layer * D + d])
        stacked = np.stack(arrays)
        atoms = [a for a in ((("R", len(rows)),), (self._B,),
                             (("S", self._chain[rows[0][1]].H),)) for a in _real(a)]
        sizes = dict(sizes, B=stacked.shape[1])
        return _arrange(stacked, atoms, axes, sizes)


def _arrange(array, source, target_axes, sizes):
    """`array`, whose axes are the atoms `source` (merged as it has them), laid
    out as `target_axes`."""
    def size(atom):
        return sizes[atom[0]] if _size(atom) is None else _size(atom)
    source = [a for a in source if not _unit(a)]
    array = array.reshape([size(a) for a in source])
    flat = [a for axis in target_axes for a in _real(axis)]
    array = array.transpose([source.index(a) for a in flat])
    return np.ascontiguousarray(array.reshape(
        [math.prod(size(a) for a in _real(axis)) for axis in target_axes]))


def _groups(chain):
    """The chain's recurrent elements grouped into multi-layer layers:
    consecutive ones of the same cell, direction, size, bias and lengths."""
    groups, current = [], None
    for index, element in enumerate(chain):
        if isinstance(element, _Recurrent):
            if current and chain[current[-1]].key() == element.key() and \
                    current[-1] == index - 1:
                current.append(index)
            else:
                current = [index]
                groups.append(current)
        else:
            current = None
    return groups


def _model_dtype(chain, dtype):
    from cyrnn._validation import check_dtype
    if dtype is not None:
        return check_dtype(dtype)
    kinds = set()
    for element in chain:
        arrays = [element.weight] if not isinstance(element, _Recurrent) else \
            list(element.params.values())
        kinds |= {a.dtype for a in arrays}
    kinds = {np.dtype(k) for k in kinds}
    if len(kinds) == 1 and kinds <= {np.dtype(np.float32), np.dtype(np.float64)}:
        return kinds.pop()
    raise _Bad(f"its weights are {sorted(str(k) for k in kinds)}; cyrnn computes in float32 "
               f"or float64 (pass dtype=np.float32 to convert them)")


def _build(interpretation, dtype, metadata):
    """(model, groups): the cyrnn model of the chain, as the metadata of a
    cyrnn export describes it when it fits, else with consecutive recurrent
    nodes merged into multi-layer layers."""
    g = interpretation
    chain = g.chain
    dtype = _model_dtype(chain, dtype)
    built = _build_from_metadata(chain, metadata, g.batch_first, dtype) if metadata else None
    if built is not None:
        return built
    classes = _layer_classes()
    layers, groups, index = [], [], 0
    grouped = {group[0]: group for group in _groups(chain)}
    while index < len(chain):
        element = chain[index]
        if isinstance(element, _Embedding):
            layer = classes["Embedding"](*element.weight.shape, dtype=dtype)
            layer.load_state_dict({"weight": element.weight})
            index += 1
        elif isinstance(element, _Linear):
            layer = classes["Linear"](element.weight.shape[1], element.weight.shape[0],
                                      bias=element.bias is not None, dtype=dtype)
            layer.load_state_dict({"weight": element.weight} if element.bias is None else
                                  {"weight": element.weight, "bias": element.bias})
            index += 1
        else:
            group = grouped[index]
            layer = _recurrent_layer(chain, group, g.batch_first, dtype, {})
            groups.append(group)
            index += len(group)
        layers.append(layer)
    model = layers[0] if len(layers) == 1 else classes["Sequential"](*layers)
    return model, groups


def _recurrent_layer(chain, group, batch_first, dtype, options):
    from cyrnn.layers import make_layer
    first = chain[group[0]]
    params = {}
    for layer, index in enumerate(group):
        for name, value in chain[index].params.items():
            params[name.replace("_l0", f"_l{layer}", 1)] = value
    kwargs = dict(num_layers=len(group), bias=first.bias, batch_first=batch_first,
                  bidirectional=first.D == 2, dtype=dtype)
    kwargs.update(options)
    if first.direction == "reverse":
        kwargs["reverse"] = True
    try:
        layer = make_layer(first.cell.key, first.I, first.H, **kwargs)
    except TypeError as exc:
        if "reverse" in str(exc):
            raise _Bad(f"{first.where} runs in direction 'reverse', which this cyrnn's "
                       f"layers do not have (reverse=True)") from None
        raise
    layer.load_state_dict(params)
    return layer


def _build_from_metadata(chain, text, batch_first, dtype):
    """The layers the metadata describes, when they match the chain exactly
    (each size and option checked against the chain before anything is
    built); else None."""
    from cyrnn._model_config import BadFile, build, check_description
    try:
        description = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(
            ValueError(c)))
        name, config = check_description(description, "model")
        items = [check_description(item, "layer", nested=True) for item in config["layers"]] \
            if name == "Sequential" else [(name, config)]
    except (ValueError, TypeError, KeyError, RecursionError, BadFile):
        return None
    layers, groups, index = [], [], 0
    for kind, config in items:
        config = dict(config)
        if "dtype" in config:
            config["dtype"] = dtype.name
        if kind == "Dropout":
            pass
        elif kind == "Embedding":
            if index >= len(chain) or not isinstance(chain[index], _Embedding) or \
                    [config.get("num_embeddings"), config.get("embedding_dim")] != \
                    list(chain[index].weight.shape):
                return None
            index += 1
        elif kind == "Linear":
            e = chain[index] if index < len(chain) else None
            if not isinstance(e, _Linear) or config.get("bias") is not (e.bias is not None) \
                    or [config.get("out_features"), config.get("in_features")] != \
                    list(e.weight.shape):
                return None
            index += 1
        else:
            L = config.get("num_layers")
            if type(L) is not int or L < 1 or index + L > len(chain):
                return None
            group = list(range(index, index + L))
            try:
                cell = _cells.select(kind, **{k: config[k] for k in
                                              ("peephole", "reset_after", "nonlinearity")
                                              if k in config})
            except TypeError:
                return None
            first = chain[index]
            direction = "bidirectional" if config.get("bidirectional") else \
                ("reverse" if config.get("reverse") else "forward")
            for k in group:
                e = chain[k]
                if not isinstance(e, _Recurrent) or e.cell is not cell or \
                        e.key() != first.key() or e.direction != direction or \
                        e.H != config.get("hidden_size") or e.bias is not config.get("bias"):
                    return None
            if first.I != config.get("input_size") or config.get("proj_size", 0) != 0:
                return None
            config["batch_first"] = batch_first
            groups.append(group)
            index += L
        layers.append((kind, config))
    if index != len(chain):
        return None
    built, k, g = [], 0, 0
    try:
        for kind, config in layers:
            if kind in ("LSTM", "GRU", "RNN"):
                layer = build(kind, config)
                params = {}
                for l, element_index in enumerate(groups[g]):
                    for key, value in chain[element_index].params.items():
                        params[key.replace("_l0", f"_l{l}", 1)] = value
                layer.load_state_dict(params)
                k += len(groups[g])
                g += 1
            else:
                layer = build(kind, config)
                if kind == "Embedding":
                    layer.load_state_dict({"weight": chain[k].weight})
                    k += 1
                elif kind == "Linear":
                    e = chain[k]
                    layer.load_state_dict({"weight": e.weight} if e.bias is None else
                                          {"weight": e.weight, "bias": e.bias})
                    k += 1
            built.append(layer)
    except (BadFile, TypeError, ValueError):
        return None
    model = _layer_classes()["Sequential"](*built) if name == "Sequential" else built[0]
    return model, groups


def load_graph(source, *, constants=None, dtype=None, external_data=False):
    """Reads an ONNX model (a path, bytes or a binary file object) into an
    ImportedGraph: the cyrnn model that computes it (``.model``) and the
    map of the graph's inputs and outputs onto it (``.run``).

    The graph must be a chain: the data (a float ``(time, batch, features)``
    input, or ``(batch, time, ...)``, or int ids for a Gather) through
    LSTM, GRU and RNN nodes (any direction, layout 0 or 1, sequence_lens
    from one graph input, initial states from graph inputs or zeros),
    dense layers (Gemm, or MatMul with an optional Add of a bias) and a
    first Gather embedding, joined by the plumbing exporters put between
    them (Transpose, Reshape, Squeeze, Unsqueeze, Slice, Concat, Split,
    Identity, Cast, Expand, Shape, Gather and ConstantOfShape on shapes and
    states, inference Dropout). Consecutive recurrent nodes of the same kind
    become one multi-layer layer; a file written by cyrnn.onnx.export
    becomes the layers it was written from (Dropout and padding_idx
    included). Graph outputs may be the last layer's output in any layout
    and the final states (Y_h, Y_c) in any arrangement.

    `constants` maps graph inputs to arrays that are really weights (ONNX's
    node tests feed W, R and B as inputs). `dtype` converts the weights
    (default: theirs, float32 or float64). `external_data=True` allows
    tensors kept in external files, read only from inside the model's
    folder (never outside it, never from a model given as bytes).

    Anything else (another operator, clip, input_forget, other activations,
    a branch of the chain) is a ValueError naming the node; nothing from the
    file is executed.
    """
    onnx = _require_onnx()
    if constants is None:
        constants = {}
    if not hasattr(constants, "items"):
        raise TypeError(f"constants must be a mapping of graph input names to arrays, got "
                        f"{type(constants).__name__}")
    checked = {}
    for name, value in constants.items():
        array = np.asarray(value)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"constants[{name!r}] must be a numeric array, got {array.dtype}")
        checked[str(name)] = array
    if not isinstance(external_data, (bool, np.bool_)):
        raise TypeError(f"external_data must be a bool, got {external_data!r}")
    proto, label, folder = _read_proto(onnx, source)
    where = _Source(label, folder, bool(external_data))
    try:
        if not proto.HasField("graph"):
            raise _Bad("it holds no graph")
        metadata = {}
        for entry in proto.metadata_props:
            metadata[entry.key] = entry.value
        # The data's leading axes are read as (time, batch) first; if that
        # reading fails, as (batch, time). The error reported is the first
        # reading's, unless it failed on time and batch being swapped.
        first = None
        try:
            interpretation = _Graph(onnx, proto, where, checked, False)
            outputs = interpretation.run()
        except _Bad as exc:  # kept as text: its frames hold the first reading's arrays
            first, swapped, interpretation = str(exc), isinstance(exc, _Swap), None
        if first is not None:
            try:
                interpretation = _Graph(onnx, proto, where, checked, True)
                outputs = interpretation.run()
            except _Bad as second:
                raise _Bad(str(second) if swapped else first) from None
        model, groups = _build(interpretation, dtype, metadata.get(_METADATA_KEY))
        return ImportedGraph(model, interpretation, groups, outputs)
    except _Bad as exc:
        raise ValueError(f"{label} is not an ONNX model cyrnn can read: {exc}") from None
    except (ValueError, IndexError, KeyError, TypeError, RecursionError, MemoryError,
            OverflowError) as exc:  # what numpy or a constructor makes of a damaged file
        raise ValueError(f"{label} is not an ONNX model cyrnn can read: "
                         f"{type(exc).__name__}: {str(exc)[:200]}") from None


def load(source, *, constants=None, dtype=None, external_data=False):
    """Reads an ONNX model into the cyrnn layer or Sequential that computes
    it, with torch-layout weights; see load_graph for what it reads (and
    for running the graph with its own input and output names)."""
    return load_graph(source, constants=constants, dtype=dtype,
                      external_data=external_data).model
