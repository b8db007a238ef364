"""load and load_graph: a file read, interpreted and built into a cyrnn
model; every problem with the file a ValueError naming it."""
import numpy as np

from cyrnn.onnx._build import build_model
from cyrnn.onnx._dependency import require_onnx
from cyrnn.onnx._errors import BadModel, SwappedAxes
from cyrnn.onnx._graph import GraphReading
from cyrnn.onnx._imported import ImportedGraph
from cyrnn.onnx._metadata import metadata_text
from cyrnn.onnx._source import read_model


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
    onnx = require_onnx()
    checked = _checked_constants(constants)
    if not isinstance(external_data, (bool, np.bool_)):
        raise TypeError(f"external_data must be a bool, got {external_data!r}")
    proto, where = read_model(onnx, source, bool(external_data))
    try:
        if not proto.HasField("graph"):
            raise BadModel("it holds no graph")
        interpretation = _interpret(onnx, proto, where, checked)
        built = build_model(interpretation, dtype, metadata_text(proto))
        return ImportedGraph(built.model, interpretation, built.groups)
    except BadModel as exc:
        raise ValueError(f"{where.label} is not an ONNX model cyrnn can read: {exc}") from None
    except (ValueError, IndexError, KeyError, TypeError, RecursionError, MemoryError,
            OverflowError) as exc:  # what numpy or a constructor makes of a damaged file
        raise ValueError(f"{where.label} is not an ONNX model cyrnn can read: "
                         f"{type(exc).__name__}: {str(exc)[:200]}") from None


def load(source, *, constants=None, dtype=None, external_data=False):
    """Reads an ONNX model into the cyrnn layer or Sequential that computes
    it, with torch-layout weights; see load_graph for what it reads (and
    for running the graph with its own input and output names)."""
    return load_graph(source, constants=constants, dtype=dtype,
                      external_data=external_data).model


def _checked_constants(constants):
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
    return checked


def _interpret(onnx, proto, source, constants):
    """The graph read with the data's leading axes as (time, batch) first;
    if that reading fails, as (batch, time). The error reported is the first
    reading's, unless it failed on time and batch being swapped."""
    try:
        return GraphReading(onnx, proto, source, constants, False).run()
    except BadModel as exc:  # kept as text: its frames hold the first reading's arrays
        first, swapped = str(exc), isinstance(exc, SwappedAxes)
    try:
        return GraphReading(onnx, proto, source, constants, True).run()
    except BadModel as second:
        raise BadModel(str(second) if swapped else first) from None
