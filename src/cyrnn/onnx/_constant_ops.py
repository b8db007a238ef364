"""The handlers of the operators that make constants and shapes: Constant,
Shape and ConstantOfShape. A handler takes (reading, where, inputs,
attributes, node) and gives the node's output values."""
import math

import numpy as np

from cyrnn.onnx._errors import BadModel, quoted
from cyrnn.onnx._operands import check_arity, check_folded, int_entries
from cyrnn.onnx._source import tensor_array
from cyrnn.onnx._values import Constant, Data, ShapeInts, StateRows, Zeros, kind_of, shape_entry

# Constant's attributes other than a tensor, and the types of their numbers
_CONSTANT_TYPES = {"value_float": np.float32, "value_floats": np.float32,
                   "value_int": np.int64, "value_ints": np.int64}


def constant(reading, where, inputs, attributes, node):
    if len(attributes) != 1:
        raise BadModel(f"{where} must have exactly one value attribute")
    (name, value), = attributes.items()
    if name == "value":
        return Constant(tensor_array(value, f"{where}'s value", reading.source))
    if name in _CONSTANT_TYPES:
        return Constant(np.array(value, _CONSTANT_TYPES[name]))
    raise BadModel(f"{where}'s attribute {quoted(name)} is not read by cyrnn.onnx")


def shape(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 1, 1)
    value = inputs[0]
    if isinstance(value, Constant):
        entries = list(value.array.shape)
    elif isinstance(value, Zeros):
        entries = list(value.dims)
    elif isinstance(value, (Data, StateRows)):
        entries = [shape_entry(axis) for axis in value.axes]
    else:
        raise BadModel(f"{where} takes the shape of {kind_of(value)}")
    rank = len(entries)
    start = attributes.get("start", 0)
    end = attributes.get("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    entries = entries[start:end]
    if all(isinstance(e, int) for e in entries):
        return Constant(np.array(entries, np.int64))
    return ShapeInts(entries)


def constant_of_shape(reading, where, inputs, attributes, node):
    check_arity(where, inputs, 1, 1)
    entries = int_entries(inputs[0], where, "shape")
    tensor = attributes.get("value")
    value = np.zeros(1, np.float32) if tensor is None else \
        tensor_array(tensor, f"{where}'s value", reading.source)
    if value.size != 1:
        raise BadModel(f"{where}'s value must hold one number")
    if any(e is None or (isinstance(e, int) and e < 0) for e in entries):
        raise BadModel(f"{where} has a shape of unknown or negative dimensions")
    if value.reshape(-1)[0] == 0:
        return Zeros(entries, value.dtype)
    if any(not isinstance(e, int) for e in entries):
        raise BadModel(f"{where} fills a tensor that depends on the data with a non-zero "
                       f"value")
    check_folded(math.prod(entries), where)
    return Constant(np.full(entries, value.reshape(-1)[0], value.dtype))


HANDLERS = {"Constant": constant, "Shape": shape, "ConstantOfShape": constant_of_shape}
