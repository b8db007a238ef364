# cython: language_level=3
"""Array helpers the Python layer needs in C: aligned allocation in one
call, and a byte comparison of two arrays."""
import numpy as np
cimport numpy as cnp
from cpython.ref cimport Py_INCREF
from libc.string cimport memcmp, memset

cnp.import_array()


cdef extern from "numpy/arrayobject.h":
    # (numpy's .pxd leaves it out) steals a reference to descr
    object PyArray_NewFromDescr(type subtype, cnp.dtype descr, int nd,
                                cnp.npy_intp *dims, cnp.npy_intp *strides, void *data,
                                int flags, object obj)


def aligned_array(tuple shape, object dtype, Py_ssize_t alignment, bint zero):
    """An uninitialised (zero: zero-filled) C array of that shape and dtype
    whose data starts on an `alignment`-byte boundary, made in one call: the
    numpy steps it takes in Python (an over-sized byte array, a slice, a
    view, a reshape) took 14 us right after a large call, with their code
    out of the caches, against 6 for np.empty; a training step of a small
    LSTM makes about a dozen."""
    cdef cnp.dtype descr = np.dtype(dtype)
    cdef cnp.npy_intp dims[cnp.NPY_MAXDIMS]
    cdef cnp.npy_intp nbytes = descr.itemsize
    cdef int nd = len(shape), i
    if nd > cnp.NPY_MAXDIMS or alignment < 1:
        raise ValueError("cyrnn internal error: bad aligned_array request")
    for i in range(nd):
        dims[i] = shape[i]
        nbytes *= dims[i]
    cdef cnp.npy_intp raw_size = nbytes + alignment
    cdef cnp.ndarray raw = cnp.PyArray_EMPTY(1, &raw_size, cnp.NPY_UINT8, 0)
    cdef char *data = <char *>cnp.PyArray_DATA(raw)
    data += (alignment - <size_t>data % alignment) % alignment
    if zero:
        memset(data, 0, nbytes)
    Py_INCREF(descr)  # PyArray_NewFromDescr steals a reference to it
    cdef cnp.ndarray array = PyArray_NewFromDescr(
        np.ndarray, descr, nd, dims, NULL, data, cnp.NPY_ARRAY_CARRAY, None)
    cnp.set_array_base(array, raw)
    return array


def same_bytes(cnp.ndarray a, cnp.ndarray b):
    """Whether two C-contiguous arrays hold the very same bytes."""
    if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_IS_C_CONTIGUOUS(b)):
        raise RuntimeError("cyrnn internal error: same_bytes needs C arrays")
    return a.nbytes == b.nbytes and memcmp(cnp.PyArray_DATA(a), cnp.PyArray_DATA(b),
                                           a.nbytes) == 0
