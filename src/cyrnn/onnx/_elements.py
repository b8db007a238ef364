"""ONNX's element types (TensorProto.DataType) that cyrnn.onnx reads or
writes, and their numpy types."""
import numpy as np

FLOAT, INT32, INT64, DOUBLE, FLOAT16, BOOL = 1, 6, 7, 11, 10, 9
NUMPY_TYPES = {FLOAT: np.float32, DOUBLE: np.float64, INT32: np.int32,
               INT64: np.int64, FLOAT16: np.float16, BOOL: np.bool_}
FLOATS = (FLOAT, DOUBLE, FLOAT16)
INTEGERS = (INT32, INT64)


def element_type(dtype):
    """The ONNX element type of a numpy dtype."""
    return {np.dtype(v): k for k, v in NUMPY_TYPES.items()}[np.dtype(dtype)]
