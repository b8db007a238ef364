"""The interpreter's core: one reading of a graph, its nodes walked in the
file's order, each handed to its operator's handler, without computing the
model; what it finds is an Interpretation, the chain of layers and how the
graph's inputs and outputs map onto it."""
from typing import NamedTuple, Optional

from cyrnn.onnx import _constant_ops, _layer_ops, _plumbing, _selection
from cyrnn.onnx._chain import Chain, ChainRecurrent
from cyrnn.onnx._errors import BadModel, quoted
from cyrnn.onnx._inputs import define_inputs
from cyrnn.onnx._recurrent_op import recurrent
from cyrnn.onnx._registry import RECURRENT_OPS
from cyrnn.onnx._source import node_attributes, tensor_array
from cyrnn.onnx._values import Constant, Data, FinalRow, StateRows, kind_of

MIN_IMPORT_OPSET = 7    # the RNN operators' current form

# op -> handler(reading, where, inputs, attributes, node): the node's output values
HANDLERS = {**_constant_ops.HANDLERS, **_plumbing.HANDLERS, **_selection.HANDLERS,
            **_layer_ops.HANDLERS, **{op: recurrent for op in RECURRENT_OPS}}
SUPPORTED = sorted(HANDLERS)


class GraphOutput(NamedTuple):
    role: str                       # "y" (the model's output) or "state" (final states)
    axes: tuple
    rows: Optional[tuple] = None    # a state's FinalRows


class Interpretation(NamedTuple):
    """What a reading found."""
    batch_first: bool
    chain: list                     # ChainEmbedding, ChainLinear, ChainRecurrent
    input_roles: dict               # graph input -> "x", "ids", "lengths", "state"...
    data_input: Optional[str]
    lead_atoms: list                # the atoms of the data's leading axes (time, batch)
    y_features: tuple               # the atoms of the last layer's features
    B: Optional[tuple]              # the batch atom
    state_inputs: dict              # graph input -> StateInput
    lengths_input: Optional[str]
    outputs: dict                   # graph output -> GraphOutput


def opset_version(proto):
    versions = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise BadModel("it imports no version of the standard ai.onnx operators")
    version = max(versions)
    if version < MIN_IMPORT_OPSET:
        raise BadModel(f"it uses ai.onnx opset {version}; cyrnn.onnx reads opset "
                       f"{MIN_IMPORT_OPSET} and newer")
    return version


def consumers_of(graph):
    """value name -> [(node index, input position)], (None, None) for a
    graph output."""
    consumers = {}
    for index, node in enumerate(graph.node):
        for position, name in enumerate(node.input):
            if name:
                consumers.setdefault(name, []).append((index, position))
    for value in graph.output:
        consumers.setdefault(value.name, []).append((None, None))
    return consumers


class GraphReading:
    """One reading of the graph, its data input's leading axes taken as
    (time, batch) or, with batch_first, (batch, time). The handlers read and
    change its state."""

    def __init__(self, onnx, proto, source, constants, batch_first):
        self.onnx, self.source = onnx, source
        self.graph = proto.graph
        self.batch_first = batch_first
        self.constants = constants
        self.chain = Chain()
        self.values = {}          # value name -> Constant, Data, StateRows... (None: nothing)
        self.consumers = {}
        self.inputs = {}          # graph input name -> role
        self.states = {}          # state input name -> StateInput
        self.data_input = None
        self.opset = opset_version(proto)
        self.T = self.B = None    # the time and batch atoms, once the data input is read

    def run(self):
        """The Interpretation of the graph, or a BadModel."""
        initializers = self._initializers()
        self._check_input_names()
        self.consumers = consumers_of(self.graph)
        define_inputs(self, initializers)
        for name, tensor in initializers.items():
            if name not in self.values:
                self.values[name] = Constant(tensor_array(tensor, f"initializer {quoted(name)}",
                                                          self.source))
        for index, node in enumerate(self.graph.node):
            self._run_node(index, node)
        return self._interpretation(self._outputs())

    def _initializers(self):
        if len(self.graph.sparse_initializer):
            raise BadModel("the graph has sparse initializers, which cyrnn.onnx does not read")
        initializers = {}
        for tensor in self.graph.initializer:
            if tensor.name in initializers:
                raise BadModel(f"two initializers are named {quoted(tensor.name)}")
            initializers[tensor.name] = tensor
        return initializers

    def _check_input_names(self):
        names = [v.name for v in self.graph.input]
        if len(set(names)) != len(names):
            raise BadModel("two graph inputs have the same name")
        unknown = set(self.constants) - set(names)
        if unknown:
            raise BadModel(f"constants names {sorted(map(quoted, unknown))}, which are not "
                           f"inputs of the graph (its inputs: {[quoted(n) for n in names][:20]})")

    # -- nodes -------------------------------------------------------------
    def _run_node(self, index, node):
        op = node.op_type
        where = f"node {index} ({op} {quoted(node.name)})"
        if node.domain not in ("", "ai.onnx"):
            raise BadModel(f"{where} is an operator of the domain {quoted(node.domain)}; "
                           f"cyrnn.onnx reads the standard ai.onnx operators {SUPPORTED}")
        if op not in HANDLERS:
            raise BadModel(f"{where}: the operator {quoted(op)} is not supported; cyrnn.onnx "
                           f"reads {SUPPORTED}")
        inputs = [self._node_input(where, name) for name in node.input]
        attributes = node_attributes(self.onnx, node, where)
        outputs = HANDLERS[op](self, where, inputs, attributes, node)
        self._assign(where, node, outputs if isinstance(outputs, list) else [outputs])

    def _node_input(self, where, name):
        if not name:
            return None
        if name not in self.values:
            raise BadModel(f"{where} reads {quoted(name)} before any node makes it: the graph "
                           f"has a cycle, is out of order, or names a value that does not "
                           f"exist")
        return self.values[name]

    def _assign(self, where, node, outputs):
        """The node's outputs by name, each value assigned once."""
        if len(node.output) > len(outputs):
            extra = [n for n in node.output[len(outputs):] if n]
            if extra:
                raise BadModel(f"{where} has outputs {[quoted(n) for n in extra]} that "
                               f"cyrnn.onnx does not compute")
        for name, value in zip(node.output, outputs):
            if not name:
                continue
            if name in self.values:
                raise BadModel(f"{where} makes {quoted(name)}, which another node or input "
                               f"already makes (values must be assigned once)")
            self.values[name] = value

    # -- outputs -----------------------------------------------------------
    def _outputs(self):
        outputs = {}
        for value in self.graph.output:
            outputs[value.name] = self._output(value.name)
        if not len(self.chain):
            raise BadModel("the graph has no layer cyrnn reads (LSTM, GRU, RNN, Gemm, MatMul, "
                           "Gather)")
        return outputs

    def _output(self, name):
        """What a graph output is: the last layer's output, or final states."""
        if name not in self.values:
            raise BadModel(f"graph output {quoted(name)} is made by no node")
        v = self.values[name]
        if v is None:
            raise BadModel(f"graph output {quoted(name)} is a Dropout's mask")
        if isinstance(v, Data):
            if v.pos != len(self.chain):
                inner = self.chain.elements[v.pos - 1].where if v.pos else "the input"
                raise BadModel(f"graph output {quoted(name)} is the output of an inner layer "
                               f"({inner}); cyrnn models give the last layer's output")
            if v.pos == 0:
                raise BadModel(f"graph output {quoted(name)} is the graph's input")
            return GraphOutput("y", v.axes)
        if isinstance(v, StateRows):
            if any(not isinstance(row, FinalRow) for row in v.rows):
                raise BadModel(f"graph output {quoted(name)} holds initial states or zeros, "
                               f"not the layers' final states")
            return GraphOutput("state", v.axes, v.rows)
        raise BadModel(f"graph output {quoted(name)} is {kind_of(v)}, not computed by the "
                       f"model's layers")

    def _interpretation(self, outputs):
        chain = self.chain
        lengths = {e.lengths for e in chain.elements if isinstance(e, ChainRecurrent)}
        if len(lengths) > 1:
            raise BadModel("the recurrent nodes do not all take the same sequence_lens (or all "
                           "none); cyrnn passes one lengths to every layer")
        lead = []
        if self.data_input:
            axes = self.values[self.data_input].axes
            lead = [a for axis in axes[:(2 if chain.ids else -1)] for a in axis]
        return Interpretation(self.batch_first, chain.elements, dict(self.inputs),
                              self.data_input, lead, chain.features[len(chain)], self.B,
                              dict(self.states), lengths.pop() if lengths else None, outputs)
