# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The plan of one pass: the typed records the Python layer fills with its
arrays, their checks, and the C structs of pointers the time loops read
(see _plan.pxd); with the sizes of the buffers Python must allocate for
them.

Every array is checked here against the size the loops will use, so that a
bug in the Python layer is an exception, never a write outside an array.
A record has a fixed set of fields: a misspelt one is an AttributeError.
"""
import numpy as np
cimport numpy as cnp
from libc.stdlib cimport calloc, free

from cyrnn._kernels cimport (cyrnn_packed_bias_size_f, cyrnn_packed_bias_size_d,
                             cyrnn_packed_size_f, cyrnn_packed_size_d,
                             cyrnn_gradient_width_f, cyrnn_gradient_width_d,
                             cyrnn_all_finite_f, cyrnn_all_finite_d)

from cyrnn._cpu import blas_runs_gradients, blas_runs_products, stream_tape_bytes

cnp.import_array()
cdef Py_ssize_t _stream_tape_bytes = stream_tape_bytes()

cdef extern from "cyrnn_cells.h":
    int CYRNN_CELL_COUNT
    int CYRNN_PEEPHOLE_ROWS


cdef class _Record:
    """A record of named arrays (FIELDS), for reading back: fields() gives
    them by name."""
    FIELDS = ()

    def fields(self):
        return {name: getattr(self, name) for name in self.FIELDS}


cdef class DirectionBuffers(_Record):
    """One direction of one layer in a forward pass: its weights (None once
    the pass is over: the tape keeps only what BPTT reads), their packings,
    its tape (None for inference) and its state."""
    FIELDS = ("w_ih", "w_hh", "w_hr", "bias_x", "bias_hn", "peephole", "packed",
              "transposed", "gates", "extra", "hprev", "m", "h", "c")

    def __init__(self, *, w_ih, w_hh, w_hr, bias_x, bias_hn, peephole, packed,
                 packed_ready, h, c, m, transposed=None, gates=None, extra=None,
                 hprev=None):
        self.w_ih, self.w_hh, self.w_hr = w_ih, w_hh, w_hr
        self.bias_x, self.bias_hn, self.peephole = bias_x, bias_hn, peephole
        self.packed, self.packed_ready, self.transposed = packed, packed_ready, transposed
        self.gates, self.extra, self.hprev = gates, extra, hprev
        self.h, self.c, self.m = h, c, m


cdef class LayerBuffers(_Record):
    """One layer of a forward pass: packed input and output, the dropout
    mask applied to the output (or None), a DirectionBuffers per direction."""
    FIELDS = ("x", "y", "mask")

    def __init__(self, *, x, y, mask, dirs):
        self.x, self.y, self.mask, self.dirs = x, y, mask, dirs


cdef class DirectionGradients(_Record):
    """One direction of one layer in BPTT: the forward pass's buffers, the
    scratch of the pre-activations' gradients, the state's gradients (dh,
    dc: of the final state in, of the initial state out) and the
    parameters' gradients (None for parameters the layer does not have)."""
    FIELDS = ("dgx", "dgh", "dhall", "dm", "dh", "dc", "dw_ih", "dw_hh", "db_ih", "db_hh",
              "dw_hr", "dpeephole")

    def __init__(self, *, forward, dgx, dgh, dhall, dm, dh, dc, dw_ih, dw_hh, db_ih, db_hh,
                 dw_hr, dpeephole):
        self.forward = forward
        self.dgx, self.dgh, self.dhall, self.dm, self.dh, self.dc = dgx, dgh, dhall, dm, dh, dc
        self.dw_ih, self.dw_hh, self.db_ih, self.db_hh = dw_ih, dw_hh, db_ih, db_hh
        self.dw_hr, self.dpeephole = dw_hr, dpeephole


cdef class LayerGradients(_Record):
    """One layer of BPTT: its forward LayerBuffers, dL/dx (out) and dL/dy
    (in), a DirectionGradients per direction."""
    FIELDS = ("dx", "dy")

    def __init__(self, *, forward, dx, dy, dirs):
        self.forward, self.dx, self.dy, self.dirs = forward, dx, dy, dirs


cdef void *_data(object arr, object dtype, Py_ssize_t size, str name) except? NULL:
    """Pointer to an internal buffer, after checking the Python layer built it
    as agreed; a failure here is a bug in cyrnn, never a user error."""
    if arr is None:
        return NULL
    # isinstance, dtype ==, flags.c_contiguous and .size through the C API
    # (a tenth of a microsecond less per buffer, some fifteen buffers a call).
    cdef cnp.dtype descr
    if cnp.PyArray_Check(arr):
        descr = <cnp.dtype>cnp.PyArray_DESCR(<cnp.ndarray>arr)
        if ((descr is dtype or cnp.PyArray_EquivTypes(descr, <cnp.dtype>dtype))
                and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>arr)
                and cnp.PyArray_SIZE(<cnp.ndarray>arr) == size):
            return cnp.PyArray_DATA(<cnp.ndarray>arr)
    raise RuntimeError(f"cyrnn internal error: buffer {name!r} is malformed")


cdef inline int _require(bint holds, str what) except -1:
    if not holds:
        raise RuntimeError(f"cyrnn internal error: {what}")
    return 0


cdef object _FLOAT32 = np.dtype(np.float32)


cdef bint is_float32(object dtype):
    """dtype == np.float32, without converting np.float32 to a dtype at every
    comparison: the callers have made dtype an np.dtype, native float32's
    singleton."""
    return dtype is _FLOAT32 or dtype == _FLOAT32


# -- sizes ---------------------------------------------------------------------
cdef enum:
    # Rows of dg and X per pass of the weight gradients (whole steps, unless
    # one step has more): fewer passes over the gradients (too large for L2)
    # against larger packed copies. 512 measured fastest on an AMD EPYC with
    # AVX-512; on an Intel Sapphire Rapids, 256: LSTM medium training 69.5
    # -> 64 ms at AVX-512, 92 -> 89 at AVX2, small 5.7 -> 5.5 at AVX2.
    GRADIENT_ROWS = 256


cdef Py_ssize_t _packed_size(int G, int H, int K, object dtype):
    return cyrnn_packed_size_f(G, H, K) if is_float32(dtype) else cyrnn_packed_size_d(G, H, K)


cdef Py_ssize_t _gradient_rows(Py_ssize_t batch) noexcept:
    return max(<Py_ssize_t>GRADIENT_ROWS, batch)


cdef Py_ssize_t _gradient_width(int GH, object dtype):
    return cyrnn_gradient_width_f(GH) if is_float32(dtype) else cyrnn_gradient_width_d(GH)


cdef Py_ssize_t _gradient_scratch(int Hout, int in_size, Py_ssize_t batch, object dtype,
                                  bint reset_before):
    # a chunk of X and one of h_{t-1} packed for the weight gradients; for
    # the reset-before GRU, one of r * h_{t-1} too (W_hn's input)
    cdef Py_ssize_t rows = _gradient_rows(batch)
    return _packed_size(1, in_size, rows, dtype) + _packed_size(1, Hout, rows, dtype) * (
        2 if reset_before else 1)


cdef Py_ssize_t _packed_weights_size(int kind, int G, int H, int Hout, int in_size,
                                     object dtype, bint transposed):
    """W_hh, then W_ih, packed by unit blocks: forward by gate units (W_ih
    followed by the biases the step kernel starts from), or transposed for
    BPTT (by output and input units)."""
    if transposed:
        return _packed_size(1, Hout, G * H, dtype) + _packed_size(1, in_size, G * H, dtype)
    return _packed_size(G, H, Hout, dtype) + _packed_size(G, H, in_size, dtype) + (
        cyrnn_packed_bias_size_f(kind, H) if is_float32(dtype)
        else cyrnn_packed_bias_size_d(kind, H))


def products_size(object cell, int hidden_size, Py_ssize_t batch):
    """Elements of the scratch of the products BLAS runs (where
    _cpu.blas_runs_products) for batches of `batch` rows: a chunk's x
    W_ih^T, then a step's h W_hh^T."""
    return (_gradient_rows(batch) + batch) * cell.gates * hidden_size


def packed_size(object cell, int hidden_size, int out_size, int in_size, object dtype,
                bint transposed):
    """Elements of a direction's buffer of packed weights (see
    _packed_weights_size)."""
    return _packed_weights_size(cell.kind, cell.gates, hidden_size, out_size, in_size,
                                np.dtype(dtype), transposed)


def streams_tape(object cell, int hidden_size, Py_ssize_t rows, object dtype):
    """Whether a training forward pass over `rows` rows (T * B, or the sum
    of the lengths) stores a direction's tape past the caches: from
    _cpu.stream_tape_bytes() up; never a two-phase step's, which reads its
    tape back within the step."""
    return not cell.reset_before and rows * (cell.gates + cell.extra) * hidden_size * \
        np.dtype(dtype).itemsize >= _stream_tape_bytes


def gradient_rows(Py_ssize_t batch):
    """Rows of a chunk of BPTT's pre-activation gradients, at most, for
    batches of `batch` rows."""
    return _gradient_rows(batch)


def gate_gradient_width(object cell, int hidden_size, object dtype):
    """Columns of BPTT's buffers of a cell's pre-activation gradients (dgx
    and dgh): the gates' G*H, padded."""
    return _gradient_width(cell.gates * hidden_size, np.dtype(dtype))


def gradient_scratch_size(object cell, int out_size, list in_sizes, Py_ssize_t batch,
                          object dtype):
    """Elements of BPTT's scratch for the weight gradients, for batches of
    `batch` rows and the widest of the layers' in_sizes."""
    return max([_gradient_scratch(out_size, k, batch, np.dtype(dtype), cell.reset_before)
                for k in in_sizes] or [0])


# -- the plan ------------------------------------------------------------------
cdef int run_plan(object cell, bint training, bint reverse,
                  const Py_ssize_t[::1] batch_sizes, const Py_ssize_t[::1] offsets, int H,
                  int Hout, list layers, object dtype, int num_threads, object packed,
                  object products, loop_float run_float, loop_double run_double) except -1:
    """Builds the plan of a forward pass (`products`: the scratch of the
    products BLAS runs, see _plan.pxd), or of BPTT when `packed` (its
    scratch) is given, over the records in `layers`, and runs the loop of
    the dtype's real type on it without the GIL."""
    cdef Plan p
    p.layers = NULL
    dtype = np.dtype(dtype)
    try:
        init_plan(&p, cell, training, batch_sizes, offsets, H, Hout, layers, dtype, num_threads)
        _require(not reverse or p.D == 1, "a reversed layer has one direction")
        p.reverse = reverse
        if packed is None:
            fill_forward(&p, layers, dtype, products)
        else:
            fill_backward(&p, layers, dtype, packed)
        if is_float32(dtype):
            with nogil:
                run_float(&p, NULL)
        else:
            with nogil:
                run_double(&p, NULL)
    finally:
        free(p.layers)
    return 0


cdef int init_plan(Plan *p, object cell, bint training,
                   const Py_ssize_t[::1] batch_sizes, const Py_ssize_t[::1] offsets,
                   int H, int Hout, list layers, object dtype, int num_threads) except -1:
    """The plan's header from the registry's entry of the cell and the
    schedule of the packed batch; p.layers allocated (the caller frees it)."""
    if not 0 <= cell.kind < CYRNN_CELL_COUNT:
        raise RuntimeError(f"cyrnn internal error: no kernels for the cell {cell!r}")
    _require(batch_sizes.shape[0] >= 1 and offsets.shape[0] == batch_sizes.shape[0] + 1
             and len(layers) > 0 and len(layers[0].dirs) in (1, 2), "empty plan")
    p.kind = cell.kind
    p.G = cell.gates
    p.E = cell.extra * H
    p.fused_backward = cell.fused_backward
    p.split_gradients = cell.split_gradients
    p.has_cell_state, p.bias_hn_apart = cell.has_cell_state, cell.bias_hn_apart
    p.zeros_in_state = cell.zeros_in_state
    p.peephole, p.reset_before = cell.peephole, cell.reset_before
    _require(len(cell.recurrent_groups) <= 2 and sum(cell.recurrent_groups) == cell.gates,
             "W_hh packed in one group or two")
    p.hh_first = cell.recurrent_groups[0]
    p.training = training
    p.reverse = False  # run_plan's caller says otherwise
    p.T = batch_sizes.shape[0]
    p.H, p.Hout = H, Hout
    p.B, p.N = batch_sizes[0], offsets[offsets.shape[0] - 1]
    p.L, p.D = len(layers), len(layers[0].dirs)
    p.batch_sizes, p.offsets = &batch_sizes[0], &offsets[0]
    p.num_threads = max(1, num_threads)
    p.stream_tape = training and streams_tape(cell, H, p.N, dtype)
    p.gradient_rows = _gradient_rows(p.B)
    p.ldg = _gradient_width(p.G * H, dtype)
    p.packed = NULL
    p.blas_products = False  # fill_forward's or fill_backward's to choose
    p.pre_x = p.pre_h = NULL
    p.layers = <Layer *>calloc(p.L, sizeof(Layer))
    if p.layers == NULL:
        raise MemoryError()
    return 0


cdef int _fill_layer(const Plan *p, Layer *ly, LayerBuffers spec, object dtype) except -1:
    cdef Py_ssize_t DH = p.D * p.Hout
    _require(len(spec.dirs) == p.D, "directions differ between layers")
    ly.in_size = spec.x.shape[1]
    # a tape is read by the BPTT of the same process, whose choice is the same
    ly.blas_gradients = p.training and blas_runs_gradients(
        <Py_ssize_t>p.G * p.H * (ly.in_size + p.Hout))
    ly.x = _data(spec.x, dtype, p.N * ly.in_size, "x")
    ly.y = _data(spec.y, dtype, p.N * DH, "y")
    ly.mask = _data(spec.mask, dtype, p.N * DH, "mask")
    return 0


cdef bint _all_finite(const void *w, Py_ssize_t n, object dtype):
    """Whether all n values at w (of dtype) are finite: in C, as it runs on
    every forward pass of a relu RNN (through numpy, a sum and isfinite
    made an RNNCell's step of 32 units 12.1-12.8 us where it now takes
    9.4-10.0)."""
    if is_float32(dtype):
        return cyrnn_all_finite_f(n, <const float *>w)
    return cyrnn_all_finite_d(n, <const double *>w)


cdef int _fill_weights(const Plan *p, Direction *dr, DirectionBuffers ds, int in_size,
                       object dtype) except -1:
    cdef Py_ssize_t GH = p.G * p.H
    dr.w_ih = _data(ds.w_ih, dtype, GH * in_size, "w_ih")
    dr.w_hh = _data(ds.w_hh, dtype, GH * p.Hout, "w_hh")
    dr.bias_x = _data(ds.bias_x, dtype, GH, "bias_x")
    dr.bias_hn = _data(ds.bias_hn, dtype, p.H, "bias_hn")
    _require((dr.bias_hn != NULL) == p.bias_hn_apart, "bias_hn for the cells that keep it")
    dr.packed = _data(ds.packed, dtype, _packed_weights_size(
        p.kind, p.G, p.H, p.Hout, in_size, dtype, False), "packed")
    dr.packed_ready = ds.packed_ready
    # A relu state's zeros may be skipped where every product with them is
    # exactly zero: IEEE's 0 * Inf and 0 * NaN are NaN, which must reach
    # the output.
    dr.skip_zeros = p.zeros_in_state and _all_finite(dr.w_hh, GH * p.Hout, dtype)
    return 0


cdef int _fill_state(const Plan *p, Direction *dr, DirectionBuffers ds, int in_size,
                     object dtype) except -1:
    """What both passes read: the state, the tape (which a training forward
    pass fills and BPTT reads) and the weights BPTT reads as they are."""
    cdef Py_ssize_t N = p.N, rows = p.N if p.training else p.B
    dr.gates = _data(ds.gates, dtype, rows * p.G * p.H, "gates")
    dr.extra = _data(ds.extra, dtype, rows * p.E, "extra")
    _require(not p.reset_before or (dr.gates != NULL and dr.extra != NULL),
             "a two-phase step without its gates' rows")
    dr.hprev = _data(ds.hprev, dtype, N * p.Hout, "hprev")
    dr.m = _data(ds.m, dtype, rows * p.H, "m")
    dr.h = _data(ds.h, dtype, p.B * p.Hout, "h")
    dr.c = _data(ds.c, dtype, p.B * p.H, "c")
    dr.w_hr = _data(ds.w_hr, dtype, p.Hout * p.H, "w_hr")
    dr.peephole = _data(ds.peephole, dtype, CYRNN_PEEPHOLE_ROWS * p.H, "peephole")
    _require((dr.c != NULL) == p.has_cell_state, "c for the cells that have one")
    _require((dr.peephole != NULL) == p.peephole, "peephole weights for the cells with them")
    if p.training:
        dr.transposed = _data(ds.transposed, dtype, _packed_weights_size(
            p.kind, p.G, p.H, p.Hout, in_size, dtype, True), "transposed")
        _require(dr.gates != NULL and dr.hprev != NULL and (p.E == 0 or dr.extra != NULL),
                 "a training pass without its tape")
    _require(dr.h != NULL and (dr.w_hr == NULL or dr.m != NULL), "missing state buffer")
    return 0


cdef int fill_forward(Plan *p, list layers, object dtype, object products) except -1:
    """The plan of a forward pass over LayerBuffers; products: None, or the
    scratch of the products BLAS runs (products_size elements)."""
    cdef int l, d
    cdef Layer *ly
    cdef Py_ssize_t GH = p.G * p.H, itemsize = dtype.itemsize
    _require(not p.training or (products is not None) == blas_runs_products(),
             "the products' scratch where BLAS runs them, and only there")
    if products is not None:
        p.blas_products = True
        p.pre_x = _data(products, dtype, (p.gradient_rows + p.B) * GH, "products")
        p.pre_h = <char *>p.pre_x + p.gradient_rows * GH * itemsize
    for l in range(p.L):
        spec = <LayerBuffers?>layers[l]
        ly = &p.layers[l]
        _fill_layer(p, ly, spec, dtype)
        for d in range(p.D):
            _fill_state(p, &ly.dirs[d], spec.dirs[d], ly.in_size, dtype)
            _fill_weights(p, &ly.dirs[d], spec.dirs[d], ly.in_size, dtype)
            _require(ly.dirs[d].w_ih != NULL and ly.dirs[d].w_hh != NULL, "missing weights")
    return 0


cdef int _fill_gradients(const Plan *p, Direction *dr, DirectionGradients ds, int in_size,
                         object dtype) except -1:
    cdef Py_ssize_t GH = p.G * p.H, B = p.B
    dr.dgx = _data(ds.dgx, dtype, p.gradient_rows * p.ldg, "dgx")
    dr.dgh = _data(ds.dgh, dtype, p.gradient_rows * p.ldg, "dgh")
    _require((dr.dgx == dr.dgh) != p.split_gradients, "dgh must be dgx unless split")
    dr.dhall = _data(ds.dhall, dtype, p.N * p.Hout, "dhall")
    dr.dm = _data(ds.dm, dtype, B * p.H, "dm")
    dr.dh = _data(ds.dh, dtype, B * p.Hout, "dh")
    dr.dc = _data(ds.dc, dtype, B * p.H, "dc")
    dr.dw_ih = _data(ds.dw_ih, dtype, GH * in_size, "dw_ih")
    dr.dw_hh = _data(ds.dw_hh, dtype, GH * p.Hout, "dw_hh")
    dr.db_ih = _data(ds.db_ih, dtype, GH, "db_ih")
    dr.db_hh = _data(ds.db_hh, dtype, GH, "db_hh")
    dr.dw_hr = _data(ds.dw_hr, dtype, p.Hout * p.H, "dw_hr")
    dr.dpeephole = _data(ds.dpeephole, dtype, CYRNN_PEEPHOLE_ROWS * p.H, "dpeephole")
    _require((dr.c == NULL) == (dr.dc == NULL), "dc must come with c")
    _require((dr.peephole == NULL) == (dr.dpeephole == NULL), "dpeephole with peephole")
    _require(dr.dh != NULL and dr.dw_ih != NULL and dr.dw_hh != NULL
             and (dr.w_hr == NULL or (dr.dhall != NULL and dr.dm != NULL
                                      and dr.dw_hr != NULL)), "missing gradient buffer")
    return 0


cdef int fill_backward(Plan *p, list layers, object dtype, object packed) except -1:
    """The plan of BPTT over LayerGradients; `packed` is its scratch for the
    weight gradients."""
    cdef int l, d
    cdef Layer *ly
    cdef LayerGradients spec
    _require(p.training, "BPTT needs a training pass's tape")
    p.blas_products = blas_runs_products()  # as the forward pass chose
    p.packed = _data(packed, dtype, packed.size, "packed")
    for l in range(p.L):
        spec = <LayerGradients?>layers[l]
        ly = &p.layers[l]
        _fill_layer(p, ly, spec.forward, dtype)
        _require(packed.size >= _gradient_scratch(p.Hout, ly.in_size, p.B, dtype,
                                                  p.reset_before),
                 "packed buffer too small")
        ly.dx = _data(spec.dx, dtype, p.N * ly.in_size, "dx")
        ly.dy = _data(spec.dy, dtype, p.N * p.D * p.Hout, "dy")
        for d in range(p.D):
            _fill_state(p, &ly.dirs[d], (<DirectionGradients?>spec.dirs[d]).forward,
                       ly.in_size, dtype)
            _fill_gradients(p, &ly.dirs[d], spec.dirs[d], ly.in_size, dtype)
    return 0
