# cython: language_level=3, boundscheck=False, wraparound=False
"""The step of a stream (the Python class is _streaming.Stream): the plan of
a one-step inference pass (_plan.pyx), built once over the stream's records
and kept, then run at every step on the caller's x and output rows. The
state stays in the records' h and c, which each pass reads as h0 and c0 and
leaves as h_n and c_n; each layer's y is the next one's x. A step is thus
the layer's own forward pass with T = 1, through the same loop and kernels,
and gives the layer's bits.

Only the step is here, and the checks that keep the C inside the arrays:
the Python class checks the caller's arguments and allocates every buffer.
"""
import numpy as np
cimport numpy as cnp
from libc.stdlib cimport free

from cyrnn._forward cimport pack_plan, run_forward
from cyrnn._plan cimport Plan, fill_forward, init_plan, is_float32

cnp.import_array()

# What an array must be for the step to read it (or write it) as it is.
cdef int _READ = cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_ALIGNED
cdef int _WRITE = _READ | cnp.NPY_ARRAY_WRITEABLE

cdef enum:
    # Multiply-adds of a step from which it runs without the GIL: releasing
    # and retaking it cost 0.07 us of an LSTM's step of 16 inputs and 32
    # units (6k: 0.34 us with out=, 0.27 holding the GIL; AVX-512), more
    # than another thread would gain in the time; a step of 32k takes a
    # microsecond or more at every level.
    RELEASE_GIL_WORK = 1 << 15

_BUSY = ("this stream is stepping in another thread: a stream is one sequence, used "
         "by one thread at a time (make one stream per thread)")


cdef inline bint _takes(object a, cnp.dtype descr, int nd, const cnp.npy_intp *dims,
                        int flags) noexcept:
    """Whether `a` is an array the step may use as it is: of descr's type,
    with `flags`, of shape dims[:nd]. Through the C API: the same tests
    through numpy's attributes (a.dtype, a.flags, a.shape) take 0.3 us,
    more than the arithmetic of an LSTM's step of 16 inputs and 32 units."""
    cdef cnp.ndarray array
    cdef cnp.dtype d
    cdef int i
    if not cnp.PyArray_Check(a):
        return False
    array = <cnp.ndarray>a
    if (cnp.PyArray_FLAGS(array) & flags) != flags or cnp.PyArray_NDIM(array) != nd:
        return False
    for i in range(nd):
        if cnp.PyArray_DIMS(array)[i] != dims[i]:
            return False
    d = <cnp.dtype>cnp.PyArray_DESCR(array)
    return d is descr or cnp.PyArray_EquivTypes(d, descr)


cdef int _dims(tuple shape, cnp.npy_intp *dims, Py_ssize_t size) except -1:
    """shape (of one or two positive sizes, `size` elements) into dims;
    returns its rank."""
    cdef int i, nd = len(shape)
    cdef Py_ssize_t elements = 1
    if not 1 <= nd <= 2:
        raise RuntimeError(f"cyrnn internal error: a stream's shape {shape}")
    for i in range(nd):
        dims[i] = shape[i]
        elements *= dims[i]
    if elements != size:
        raise RuntimeError(f"cyrnn internal error: a stream's shape {shape} is not "
                           f"{size} elements")
    return nd


cdef double _work(const Plan *p) noexcept:
    """Multiply-adds of one step of a one-direction plan: every layer's
    products, and its projection."""
    cdef double work = 0
    cdef int l
    for l in range(p.L):
        work += <double>p.B * p.G * p.H * (p.layers[l].in_size + p.Hout)
        if p.layers[l].dirs[0].w_hr != NULL:
            work += <double>p.B * p.H * p.Hout
    return work


cdef class StreamCore:
    """The typed half of a stream: its plan and the step. The Python class
    that derives from it (_streaming.Stream) builds the records, binds them
    here once (_bind), and supplies _input and _check_out, step's slow
    path."""
    cdef Plan plan
    cdef bint single            # float32 (else float64)
    cdef bint busy              # a step is running (without the GIL)
    cdef bint release_gil       # whether a step is big enough to release it
    cdef list records           # the LayerBuffers the plan points into
    cdef object schedule        # the plan's batch_sizes and offsets, ditto
    cdef cnp.dtype descr
    cdef int typenum, x_nd, y_nd
    cdef cnp.npy_intp x_dims[2]
    cdef cnp.npy_intp y_dims[2]
    cdef Py_ssize_t x_bytes, y_bytes

    def __cinit__(self, *args, **kwargs):
        self.plan.layers = NULL

    def __dealloc__(self):
        free(self.plan.layers)

    def _bind(self, object cell, int hidden_size, int out_size, list layers, object dtype,
              tuple x_shape, tuple y_shape):
        """Builds the plan of a one-step inference pass over `layers` (one
        LayerBuffers each, one direction, B rows), and packs the weights of
        those whose records do not bring them packed. step takes x of
        x_shape in place of layers[0].x, and writes y of y_shape in place of
        layers[-1].y."""
        if self.plan.layers != NULL:
            raise RuntimeError("cyrnn internal error: a stream's plan is built once")
        dtype = np.dtype(dtype)
        B = layers[0].x.shape[0]
        batch_sizes, offsets = np.full(1, B, np.intp), np.array([0, B], np.intp)
        init_plan(&self.plan, cell, False, batch_sizes, offsets, hidden_size, out_size, layers,
                  dtype, 1)
        fill_forward(&self.plan, layers, dtype, None)
        if self.plan.D != 1:
            raise RuntimeError("cyrnn internal error: a stream has one direction")
        self.x_nd = _dims(x_shape, self.x_dims, B * self.plan.layers[0].in_size)
        self.y_nd = _dims(y_shape, self.y_dims, B * out_size)
        self.x_bytes = B * self.plan.layers[0].in_size * dtype.itemsize
        self.y_bytes = B * out_size * dtype.itemsize
        self.single, self.descr, self.typenum = is_float32(dtype), dtype, dtype.num
        self.release_gil = _work(&self.plan) >= RELEASE_GIL_WORK
        self.records, self.schedule = layers, (batch_sizes, offsets)
        with nogil:
            pack_plan(&self.plan, self.single)

    def step(self, x, out=None):
        """Feeds one time step: x of shape (batch_size, input_size), or
        (input_size,) for a stream made with batch_size=None. Returns the
        last layer's output for this step, (batch_size, H_out) or (H_out,):
        a fresh array, or `out` filled (a writeable C-contiguous array of
        the stream's dtype and that shape, not overlapping x), which saves
        the allocation. The state moves on by one step.

        x is fastest as a C-contiguous array of the stream's dtype; other
        arrays and array-likes of real numbers are converted (a copy). A
        wrong shape or type is a ValueError or TypeError naming x (or out)
        and leaves the state as it was.

        The step runs on one thread, without the GIL unless it is tiny
        (under 32k multiply-adds, about a microsecond): streams stepping in
        different threads run in parallel. A stream itself is used by one
        thread at a time (RuntimeError otherwise)."""
        cdef char *xp
        cdef char *yp
        if self.plan.layers == NULL:  # made without RecurrentLayer.stream
            raise RuntimeError("this stream has no plan: make streams with model.stream()")
        if not _takes(x, self.descr, self.x_nd, self.x_dims, _READ):
            x = self._input(x)
            if not _takes(x, self.descr, self.x_nd, self.x_dims, _READ):
                raise RuntimeError("cyrnn internal error: the stream's input is malformed")
        if out is None:
            y = cnp.PyArray_EMPTY(self.y_nd, self.y_dims, self.typenum, 0)
        elif _takes(out, self.descr, self.y_nd, self.y_dims, _WRITE):
            y = out
        else:
            self._check_out(out)
            raise RuntimeError("cyrnn internal error: the stream's out is malformed")
        xp = <char *>cnp.PyArray_DATA(<cnp.ndarray>x)
        yp = <char *>cnp.PyArray_DATA(<cnp.ndarray>y)
        # the kernels read all of x while they write y
        if out is not None and xp < yp + self.y_bytes and yp < xp + self.x_bytes:
            raise ValueError("out must not share memory with x")
        if self.busy:
            raise RuntimeError(_BUSY)
        # Another thread's step would repoint x and y under this one: busy
        # is set and cleared holding the GIL, with nothing in between that
        # could release it.
        self.busy = True
        self.plan.layers[0].x = xp
        self.plan.layers[self.plan.L - 1].y = yp
        if self.release_gil:
            with nogil:
                run_forward(&self.plan, self.single)
        else:
            run_forward(&self.plan, self.single)
        self.busy = False
        return y

    def _require_idle(self):
        """For the state's readers and writers: no step is running."""
        if self.busy:
            raise RuntimeError(_BUSY)

    def _input(self, x):
        raise NotImplementedError("the Python class converts step's input")

    def _check_out(self, out):
        raise NotImplementedError("the Python class checks step's out")
