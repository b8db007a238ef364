"""The handlers of the operators that are feed-forward layers of the chain:
a Gather of the data's ids in a constant table (an embedding), MatMul or
Gemm by a constant matrix (a dense layer) and the Add of its bias. On
constants alone MatMul and Add are computed."""
import math

import numpy as np

from cyrnn.onnx._chain import ChainEmbedding, ChainLinear
from cyrnn.onnx._errors import BadModel, quoted
from cyrnn.onnx._operands import check_arity, check_folded, constant_array
from cyrnn.onnx._values import Constant, Data, data_atoms, describe_axes, feature_atoms, kind_of


def embedding(reading, where, table, ids, axis):
    """Gather's handler when it looks the data's ids up."""
    chain = reading.chain
    if not isinstance(table, Constant):
        raise BadModel(f"{where} looks ids up in {kind_of(table)}; an embedding's table must "
                       f"be a constant")
    weight = table.array
    if weight.ndim != 2 or axis != 0 or weight.dtype.kind != "f":
        raise BadModel(f"{where} is not an embedding lookup: it needs a 2-D float table "
                       f"and axis 0, got shape {weight.shape}, axis {axis}")
    if not chain.ids or ids.pos != 0 or chain.features[0] != () or len(chain):
        raise BadModel(f"{where} looks up {kind_of(ids)} in a table; cyrnn's Embedding takes "
                       f"the graph's integer ids, as the first layer")
    pos = chain.append(where, ids, ChainEmbedding(weight))
    atoms = feature_atoms(pos, [weight.shape[1]])
    chain.features[pos] = data_atoms(atoms)
    return Data(pos, ids.axes + (atoms,), weight.dtype)


def matmul(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 2, 2)
    a, b = inputs
    if isinstance(a, Constant) and isinstance(b, Constant):
        return _fold(where, np.matmul, a.array, b.array)
    if not isinstance(a, Data):
        raise BadModel(f"{where} multiplies {kind_of(a)} by {kind_of(b)}; cyrnn.onnx reads "
                       f"MatMul as a dense layer: the data times a constant matrix")
    weight = constant_array(b, where, "weight")
    if weight.ndim != 2 or weight.dtype.kind != "f":
        raise BadModel(f"{where}'s weight must be a 2-D float matrix, got shape "
                       f"{weight.shape}, {weight.dtype}")
    reading.chain.check_features(where, a, -1, weight.shape[0], "input")
    return _dense(reading, where, a, np.ascontiguousarray(weight.T), None, node)


def gemm(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 2, 3)
    a, b = inputs[:2]
    c = inputs[2] if len(inputs) == 3 else None
    unknown = set(attributes) - {"alpha", "beta", "transA", "transB"}
    if unknown:
        raise BadModel(f"{where} has attributes {sorted(map(quoted, unknown))} cyrnn.onnx "
                       f"does not read")
    if not isinstance(a, Data) or attributes.get("transA", 0):
        raise BadModel(f"{where}: cyrnn.onnx reads Gemm as a dense layer, A the data "
                       f"(not transposed) and B, C constants")
    if len(a.axes) != 2:
        raise BadModel(f"{where}'s A must be 2-D, got axes {describe_axes(a.axes)}")
    matrix = constant_array(b, where, "B")
    if matrix.ndim != 2 or matrix.dtype.kind != "f":
        raise BadModel(f"{where}'s B must be a 2-D float matrix, got shape {matrix.shape}")
    weight = matrix if attributes.get("transB", 0) else matrix.T
    reading.chain.check_features(where, a, -1, weight.shape[1], "A")
    alpha, beta = attributes.get("alpha", 1.0), attributes.get("beta", 1.0)
    if alpha != 1.0:
        weight = weight * np.asarray(alpha, weight.dtype)
    bias = None
    if c is not None:
        bias = _bias_vector(where, constant_array(c, where, "C"), weight.shape[0], 2)
        if beta != 1.0:
            bias = bias * np.asarray(beta, bias.dtype)
    return _dense(reading, where, a, np.ascontiguousarray(weight), bias, node)


def _dense(reading, where, data, weight, bias, node):
    """A dense layer (weight: (out, in)) appended to the chain after `data`."""
    element = ChainLinear(weight, bias, output=node.output[0] if node.output else "")
    pos = reading.chain.append(where, data, element)
    atoms = feature_atoms(pos, [weight.shape[0]])
    reading.chain.features[pos] = data_atoms(atoms)
    return Data(pos, data.axes[:-1] + (atoms,), weight.dtype)


def _bias_vector(where, array, width, rank):
    if array.dtype.kind != "f" or array.ndim > rank or \
            any(d != 1 for d in array.shape[:-1]) or \
            (array.ndim and array.shape[-1] not in (1, width)):
        raise BadModel(f"{where}'s bias must broadcast along the features only, got shape "
                       f"{array.shape} for {width} features")
    return np.ascontiguousarray(np.broadcast_to(array.reshape(-1), (width,)))


def add(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 2, 2)
    a, b = inputs
    if isinstance(a, Constant) and isinstance(b, Constant):
        return _fold(where, np.add, a.array, b.array)
    data, other, name = (a, b, node.input[0]) if isinstance(a, Data) else \
        (b, a, node.input[1])
    if not isinstance(data, Data) or not isinstance(other, Constant):
        raise BadModel(f"{where} adds {kind_of(a)} and {kind_of(b)}; cyrnn.onnx reads Add as "
                       f"the bias of a dense layer (MatMul, Gemm)")
    chain = reading.chain
    last = chain.elements[-1] if len(chain) else None
    if not isinstance(last, ChainLinear) or data.pos != len(chain) or \
            name != last.output or len(reading.consumers.get(name, ())) != 1 or \
            data_atoms(data.axes[-1]) != chain.features[data.pos]:
        raise BadModel(f"{where} adds a constant that is not the bias of the dense layer "
                       f"(MatMul, Gemm) just before it")
    bias = _bias_vector(where, other.array, last.weight.shape[0], len(data.axes))
    last.bias = bias if last.bias is None else last.bias + bias.astype(last.bias.dtype)
    return data


def _fold(where, function, a, b):
    """np.matmul or np.add of two constants, bounded in size."""
    shape = np.broadcast_shapes(a.shape, b.shape[:-2] + (1, 1)) if function is np.matmul \
        else np.broadcast_shapes(a.shape, b.shape)
    check_folded(math.prod(shape) * (b.shape[-1] if function is np.matmul and b.ndim
                                     else 1), where)
    try:
        return Constant(np.asarray(function(a, b)))
    except ValueError as exc:
        raise BadModel(f"{where} cannot be computed: {exc}") from None


HANDLERS = {"MatMul": matmul, "Gemm": gemm, "Add": add}
