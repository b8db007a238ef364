"""ONNX in and out: cyrnn models as ONNX graphs, and ONNX graphs of recurrent
layers as cyrnn models.

An optional extra, ``pip install "cyrnn[onnx]"`` (onnx, and onnxruntime to
run what is exported). ``import cyrnn`` never imports onnx, and this package
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
from cyrnn.onnx._export import DEFAULT_OPSET, MIN_EXPORT_OPSET, export  # noqa: F401
from cyrnn.onnx._graph import MIN_IMPORT_OPSET  # noqa: F401
from cyrnn.onnx._imported import ImportedGraph
from cyrnn.onnx._load import load, load_graph

__all__ = ["export", "load", "load_graph", "ImportedGraph", "DEFAULT_OPSET"]

# documented, shown by help() and pickled under the package's name, as when
# cyrnn.onnx was one module
for _public in (export, load, load_graph, ImportedGraph):
    _public.__module__ = __name__
del _public
