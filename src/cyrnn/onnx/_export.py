"""export: a cyrnn model written as one ONNX graph, each layer kind by its
own writer."""
import numbers
import os
from typing import NamedTuple, Union

import numpy as np

from cyrnn._version import __version__
from cyrnn.dropout import Dropout
from cyrnn.embedding import Embedding
from cyrnn.layers import GRU, LSTM, RNN
from cyrnn.linear import Linear
from cyrnn.onnx._dependency import require_onnx
from cyrnn.onnx._elements import DOUBLE, FLOAT, INT32, INT64
from cyrnn.onnx._export_recurrent import write_recurrent
from cyrnn.onnx._metadata import write_metadata
from cyrnn.onnx._writer import GraphWriter, Stream
from cyrnn.sequential import Sequential

DEFAULT_OPSET = 17      # runs on every onnxruntime since 1.11
MIN_EXPORT_OPSET = 14   # Squeeze/Unsqueeze axes as inputs (13), the RNNs' layout (14)

_RECURRENT = (LSTM, GRU, RNN)


class _Item(NamedTuple):
    """A layer to write, with the prefix of its names in the graph."""
    prefix: str
    layer: object


class ExportOptions(NamedTuple):
    """export's arguments, checked."""
    batch_first: bool
    T: Union[int, str]    # time_steps, or the symbol "time"
    B: Union[int, str]    # batch_size, or the symbol "batch"
    lengths: bool
    opset: int
    elem: int             # the element type of the model's floats

    @property
    def lead(self):
        """x's and y's leading dimensions."""
        return [self.B, self.T] if self.batch_first else [self.T, self.B]

    @property
    def layout_doc(self):
        return "(batch, time, ...)" if self.batch_first else "(time, batch, ...)"


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
    onnx = require_onnx()
    import onnx.numpy_helper  # noqa: F401  (the writer's from_array)
    items = _exportable(model)
    options = _check_options(onnx, model, items, batch_first, time_steps, batch_size,
                             lengths, opset)
    w = GraphWriter(onnx, options.elem)
    w.used.update({"x", "y", "lengths"})
    stream, width = _declare_inputs(w, items, options)
    width = _write_layers(w, items, stream, options, width)
    _declare_y(w, stream, width, options)
    return _save(_model_proto(onnx, w, model, options.opset).SerializeToString(), f)


def _exportable(model):
    """The model's layers, each checked exportable."""
    if type(model) is Sequential:
        items = [(f"{i}.", f"model[{i}]", layer) for i, layer in enumerate(model.layers)]
    else:
        items = [("", "model", model)]
    checked = []
    for prefix, where, layer in items:
        if type(layer) not in _RECURRENT and type(layer) not in _FEED_FORWARD:
            what = "a nested Sequential (flatten it into one)" if type(layer) is Sequential \
                else type(layer).__name__
            raise TypeError(f"{where} must be a cyrnn LSTM, GRU, RNN, Linear, Embedding, "
                            f"Dropout or a Sequential of them to export to ONNX, got {what}")
        if type(layer) in _RECURRENT and layer.proj_size:
            raise ValueError(f"{where} has proj_size={layer.proj_size}: ONNX's LSTM operator "
                             f"has no projection (weight_hr), so it cannot be exported")
        if type(layer) is Embedding and checked:
            raise ValueError(f"{where} is an Embedding after other layers; it can only be "
                             f"the first layer (it takes integer ids)")
        checked.append(_Item(prefix, layer))
    return checked


def _check_options(onnx, model, items, batch_first, time_steps, batch_size, lengths, opset):
    opset = _check_opset(onnx, opset)
    dtype = np.dtype(next((item.layer.dtype for item in items
                           if type(item.layer) is not Dropout), np.float32))
    if batch_first is None:
        batch_first = bool(getattr(model, "batch_first", False))
    elif not isinstance(batch_first, (bool, np.bool_)):
        raise TypeError(f"batch_first must be None or a bool, got {batch_first!r}")
    T = _check_dim("time_steps", time_steps, "time")
    B = _check_dim("batch_size", batch_size, "batch")
    if not isinstance(lengths, (bool, np.bool_)):
        raise TypeError(f"lengths must be a bool, got {lengths!r}")
    if lengths and not any(type(item.layer) in _RECURRENT for item in items):
        raise ValueError("lengths=True needs a recurrent layer (LSTM, GRU or RNN) to "
                         "give sequence_lens to; this model has none")
    return ExportOptions(bool(batch_first), T, B, bool(lengths), opset,
                         FLOAT if dtype == np.float32 else DOUBLE)


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


def _declare_inputs(w, items, options):
    """Declares x (and lengths); where the data starts, and its width."""
    first = next((item.layer for item in items if type(item.layer) is not Dropout),
                 items[0].layer)
    features = getattr(first, "input_size", None) or getattr(first, "in_features", None)
    if type(items[0].layer) is Embedding:
        w.inputs.append(w.value_info("x", INT64, options.lead,
                                     "token ids, " + options.layout_doc))
    else:
        w.inputs.append(w.value_info("x", w.elem, options.lead + [features or "features"],
                                     "input sequence, " + options.layout_doc))
    stream = Stream("x", time_major=not options.batch_first)
    if options.lengths:
        w.inputs.append(w.value_info("lengths", INT32, [options.B], "every sequence's "
                                     "length, in [1, time]"))
        stream.lengths = "lengths"
    return stream, features


def _write_layers(w, items, stream, options, width):
    """Writes every layer's nodes; the width of the last one's output."""
    recurrent = sum(type(item.layer) in _RECURRENT for item in items)
    suffixes = iter([""] if recurrent == 1 else [f"_{k}" for k in range(recurrent)])
    for prefix, layer in items:
        if type(layer) in _RECURRENT:
            write_recurrent(w, prefix, layer, stream, next(suffixes), options)
            width = layer.output_size
        else:
            width = _FEED_FORWARD[type(layer)](w, prefix, layer, stream, width)
    return width


def _write_embedding(w, prefix, layer, stream, width):
    weight = w.const(prefix + "weight", layer.state_dict()["weight"])
    stream.value = w.node("Gather", [weight, stream.value], [prefix + "embedded"],
                          prefix + "Embedding")[0]
    return layer.embedding_dim


def _write_linear(w, prefix, layer, stream, width):
    params = layer.state_dict()
    weight = w.const(prefix + "weight_T", np.ascontiguousarray(params["weight"].T))
    out = w.node("MatMul", [stream.value, weight], [prefix + "matmul"], prefix + "Linear")[0]
    if layer.bias:
        bias = w.const(prefix + "bias", params["bias"])
        out = w.node("Add", [out, bias], [prefix + "linear"], prefix + "Linear_bias")[0]
    stream.value = out
    return layer.out_features


def _write_dropout(w, prefix, layer, stream, width):
    stream.value = w.node("Identity", [stream.value], [prefix + "dropout"],
                          prefix + f"Dropout_p{layer.p}_inference")[0]
    return width


# the writers of the other layer classes: (w, prefix, layer, stream, width in) -> width out
_FEED_FORWARD = {Embedding: _write_embedding, Linear: _write_linear, Dropout: _write_dropout}


def _declare_y(w, stream, width, options):
    if stream.time_major == options.batch_first:  # back to the layout of x
        stream.value = w.node("Transpose", [stream.value], ["y_transposed"],
                              "y_layout", perm=[1, 0, 2])[0]
    w.name_output(stream.value, "y")
    w.outputs.insert(0, w.value_info("y", w.elem, options.lead + [width or "features"],
                                     "output, " + options.layout_doc))


def _model_proto(onnx, w, model, opset):
    graph = onnx.helper.make_graph(w.nodes, "cyrnn", w.inputs, w.outputs, initializer=w.inits)
    graph.doc_string = f"{model!r}"
    proto = onnx.helper.make_model_gen_version(
        graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
        producer_name="cyrnn", producer_version=__version__)
    write_metadata(proto, model)
    onnx.checker.check_model(proto)
    return proto


def _save(data, f):
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
