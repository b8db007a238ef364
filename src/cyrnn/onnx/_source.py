"""Reading the file safely: the protobuf message parsed and nothing in it
executed, every tensor's declared size checked against the bytes that hold
it before anything is allocated, external data read only when asked and
only from inside the model's folder, attributes without subgraphs."""
import math
import os
import stat

import numpy as np

from cyrnn.onnx._elements import DOUBLE, FLOAT, FLOAT16, INT64, NUMPY_TYPES
from cyrnn.onnx._errors import BadModel, quoted

_EXTERNAL = 1  # TensorProto.DataLocation EXTERNAL


class ModelSource:
    """Where the model came from: its label in messages, and its folder (for
    external data) or none."""

    def __init__(self, label, folder, external_data):
        self.label, self.folder, self.external_data = label, folder, external_data

    def external(self, tensor, nbytes, where):
        """The `nbytes` bytes of a tensor kept in an external file."""
        if not self.external_data:
            raise BadModel(f"{where} keeps its values in an external file; cyrnn.onnx reads "
                           f"external data only when asked (load(..., external_data=True)), "
                           f"and then only from the model's own folder")
        if self.folder is None:
            raise BadModel(f"{where} keeps its values in an external file, but the model was "
                           f"not read from a path, so it has no folder to read them from")
        info = _external_entries(tensor, where)
        location = info.get("location", "")
        path = self._confined(location, where)
        offset = _external_int(info.get("offset", "0"), "offset", where)
        if "length" in info and _external_int(info["length"], "length", where) != nbytes:
            raise BadModel(f"{where}'s external data length is {quoted(info['length'])} bytes, "
                           f"but its dims and type take {nbytes}")
        return _read_bytes(path, location, offset, nbytes, where)

    def _confined(self, location, where):
        """The real path of an external file, refused unless it is inside the
        model's folder."""
        if not location or "\x00" in location:
            raise BadModel(f"{where}'s external data has no valid location")
        if os.path.isabs(location) or os.path.splitdrive(location)[0] \
                or location.startswith(("/", "\\")):
            raise BadModel(f"{where}'s external data is at an absolute path {quoted(location)}; "
                           f"only files inside the model's folder are read")
        parts = location.replace("\\", "/").split("/")
        if ".." in parts:
            raise BadModel(f"{where}'s external data path {quoted(location)} leaves the model's "
                           f"folder; only files inside it are read")
        path = os.path.realpath(os.path.join(self.folder, *parts))
        if os.path.commonpath([path, self.folder]) != self.folder:
            raise BadModel(f"{where}'s external data {quoted(location)} resolves outside the "
                           f"model's folder (a link); only files inside it are read")
        return path


def _external_entries(tensor, where):
    """A tensor's external_data entries as a dict, each key known and once."""
    info = {}
    for entry in tensor.external_data:
        if entry.key in info:
            raise BadModel(f"{where}'s external data names {quoted(entry.key)} twice")
        info[entry.key] = entry.value
    unknown = set(info) - {"location", "offset", "length", "checksum"}
    if unknown:
        raise BadModel(f"{where}'s external data has unknown keys {sorted(map(quoted, unknown))}")
    return info


def _external_int(text, key, where):
    if not text.isdigit() or len(text) > 18:
        raise BadModel(f"{where}'s external data {key} must be a non-negative integer, "
                       f"got {quoted(text)}")
    return int(text)


def _read_bytes(path, location, offset, nbytes, where):
    """Bytes offset to offset + nbytes of a regular file, checked to be there
    before they are read."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise BadModel(f"{where}'s external data {quoted(location)} is not a regular "
                               f"file")
            if offset + nbytes > st.st_size:
                raise BadModel(f"{where}'s external data needs bytes {offset} to "
                               f"{offset + nbytes} of {quoted(location)}, which holds "
                               f"{st.st_size}")
            f.seek(offset)
            data = f.read(nbytes)
    except OSError as exc:
        raise BadModel(f"{where}'s external data {quoted(location)} cannot be read "
                       f"({type(exc).__name__}: {exc.strerror})") from None
    if len(data) != nbytes:
        raise BadModel(f"{where}'s external data {quoted(location)} is shorter than announced")
    return data


def tensor_array(tensor, where, source):
    """A TensorProto as a numpy array, its declared size checked against the
    bytes that hold it before anything is allocated."""
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise BadModel(f"{where} has negative dimensions {dims}")
    dtype = NUMPY_TYPES.get(tensor.data_type)
    if dtype is None:
        raise BadModel(f"{where} has element type {tensor.data_type}, which cyrnn.onnx does "
                       f"not read (float32, float64, float16, int32, int64, bool)")
    if tensor.HasField("segment"):
        raise BadModel(f"{where} is a segment of a tensor, which cyrnn.onnx does not read")
    count = math.prod(dims)
    nbytes = count * np.dtype(dtype).itemsize
    little = np.dtype(dtype).newbyteorder("<")
    if tensor.data_location == _EXTERNAL:
        raw = source.external(tensor, nbytes, where)
        return np.frombuffer(raw, little).astype(dtype).reshape(dims)
    if tensor.raw_data:
        if len(tensor.raw_data) != nbytes:
            raise BadModel(f"{where} holds {len(tensor.raw_data)} bytes, but its dims {dims} "
                           f"and type {np.dtype(dtype).name} take {nbytes}")
        return np.frombuffer(tensor.raw_data, little).astype(dtype).reshape(dims)
    return _typed_field_array(tensor, where, dims, count, dtype)


def _typed_field_array(tensor, where, dims, count, dtype):
    """A tensor kept in its typed field (float_data, int32_data...)."""
    if tensor.data_type == FLOAT:
        field, kind = tensor.float_data, dtype
    elif tensor.data_type == DOUBLE:
        field, kind = tensor.double_data, dtype
    elif tensor.data_type == INT64:
        field, kind = tensor.int64_data, dtype
    else:  # int32, float16 (as bits), bool: int32_data
        field, kind = tensor.int32_data, np.int32
    if len(field) != count:
        raise BadModel(f"{where} holds {len(field)} values, but its dims {dims} take {count}")
    array = np.fromiter(field, dtype=kind, count=count)
    if tensor.data_type == FLOAT16:
        array = array.astype(np.uint16).view(np.float16)
    return array.astype(dtype).reshape(dims)


def read_model(onnx, source, external_data):
    """(ModelProto, ModelSource) from a path, bytes or a binary file object."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label, folder = bytes(source), "the bytes given", None
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        with open(path, "rb") as f:  # OSError (a missing file...) as usual
            data = f.read()
        label = quoted(path, 200)
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
    return proto, ModelSource(label, folder, external_data)


def node_attributes(onnx, node, where):
    """name -> value of a node's attributes (no graphs, no references)."""
    values = {}
    for attribute in node.attribute:
        name = attribute.name
        if name in values:
            raise BadModel(f"{where} has the attribute {quoted(name)} twice")
        if attribute.ref_attr_name:
            raise BadModel(f"{where}'s attribute {quoted(name)} refers to a function's "
                           f"attribute")
        values[name] = _attribute_value(onnx.AttributeProto, attribute, where)
    return values


def _attribute_value(A, attribute, where):
    name, kind = attribute.name, attribute.type
    if kind == A.INT:
        return attribute.i
    if kind == A.FLOAT:
        return attribute.f
    if kind == A.STRING:
        return _text(attribute.s, where, name)
    if kind == A.INTS:
        return tuple(attribute.ints)
    if kind == A.FLOATS:
        return tuple(attribute.floats)
    if kind == A.STRINGS:
        return tuple(_text(s, where, name) for s in attribute.strings)
    if kind == A.TENSOR:
        return attribute.t
    if kind in (A.GRAPH, A.GRAPHS):
        raise BadModel(f"{where} holds a subgraph (attribute {quoted(name)}); cyrnn.onnx reads "
                       f"flat graphs only")
    raise BadModel(f"{where}'s attribute {quoted(name)} has a type ({kind}) cyrnn.onnx "
                   f"does not read")


def _text(data, where, name):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadModel(f"{where}'s attribute {quoted(name)} is not UTF-8 text") from None
