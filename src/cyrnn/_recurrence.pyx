# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The time loops of every cell kind, forward (inference or training) and
backward (BPTT), run without the GIL over every layer and direction.

The Python layer validates, packs the batch and allocates every buffer; this
module only reads pointers out of them and loops. Sequences are packed as
torch's PackedSequence: rows sorted by length, step t owning the first
batch_sizes[t] rows, stored at rows offsets[t] ... of every (N, width) buffer.
Forward, each step is one fused kernel call per range of unit blocks (input
and recurrent products in registers, then the cell); backward, one packed
product per step gives dL/dh_{t-1} (for an LSTM, with step t-1's cell
backward run on its tiles), and the weight gradients are packed products
over all steps, a chunk of rows at a time.
"""
import numpy as np
cimport numpy as cnp
from cpython.ref cimport Py_INCREF
from cython cimport floating
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy, memset

from cyrnn._blas cimport gemm
from cython.parallel cimport parallel, prange, threadid
from cyrnn._kernels cimport (
    lstm_backward, lstm_backward_product, gru_backward, rnn_backward, copy_rows, add_rows,
    weight_gradient_chunk,
    multiply, packed_blocks, packed_elements, pack_weights, pack_weight_blocks,
    packed_product,
    pack_bias, cell_step, cyrnn_packed_bias_size_f, cyrnn_packed_bias_size_d,
    cyrnn_sigmoid_f, cyrnn_sigmoid_d, cyrnn_tanh_f, cyrnn_tanh_d,
    cyrnn_packed_size_f, cyrnn_packed_size_d, cyrnn_gradient_width_f, cyrnn_gradient_width_d)

cnp.import_array()

cpdef enum CellKind:
    LSTM = 0
    GRU = 1
    RNN_TANH = 2
    RNN_RELU = 3


cdef struct Direction:
    # parameters
    void *w_ih
    void *w_hh
    void *w_hr          # LSTM projection, or NULL
    void *bias_x        # biases folded into the input projection (G*H)
    void *bias_hn       # GRU: b_hn, which stays inside r * (...)
    void *packed        # forward: W_hh, W_ih and the biases packed for cell_step
    bint packed_ready   # packed already holds them (a cached packing)
    void *transposed    # training: W_hh, then W_ih, packed transposed for BPTT
    # forward buffers: the tape (training only)
    void *gates         # (N, G*H) activated gates
    void *extra         # (N, E) the cell's extra values
    void *hprev         # (N, Hout) state before each step
    # forward buffers, always
    void *m             # LSTM with projection: (N, H) tape or (B, H) scratch
    void *h             # (B, Hout) state: h0 in, h_n out
    void *c             # (B, H) LSTM cell state: c0 in, c_n out
    # backward buffers
    # The pre-activations' gradients: the input side (dgx) and the recurrent
    # side (dgh, the same as dgx but for GRU), a chunk of whole steps at a
    # time (gradient_rows rows at most, ldg apart), where each step's dL/dh
    # product reads them; once the chunk is complete, dx and the weight
    # gradients read them there too.
    void *dgx
    void *dgh
    void *dhall         # LSTM with projection: (N, Hout) dL/dh per step
    void *dm            # LSTM with projection: (B, H) scratch
    void *dh            # (B, Hout): dL/dh_n in, dL/dh0 out
    void *dc            # (B, H): dL/dc_n in, dL/dc0 out
    void *dw_ih
    void *dw_hh
    void *db_ih
    void *db_hh
    void *dw_hr


cdef struct Layer:
    int in_size
    void *x             # (N, in_size) packed input
    void *y             # (N, D*Hout) packed output
    void *mask          # (N, D*Hout) dropout mask applied to y, or NULL
    void *dx            # (N, in_size)
    void *dy            # (N, D*Hout)
    Direction dirs[2]


cdef struct Plan:
    int kind
    bint training
    int num_threads     # OpenMP threads sharing each step's unit blocks
    bint stream_tape    # store the tape past the caches (see _fill_plan)
    Py_ssize_t gradient_rows  # rows of a chunk of the weight gradients, at most
    Py_ssize_t ldg      # distance between the rows of dgx and dgh
    int T, H, Hout, G, E, D, L
    void *packed        # backward: the weight gradients' scratch
    Py_ssize_t B, N
    const Py_ssize_t *batch_sizes
    const Py_ssize_t *offsets
    Layer *layers


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


cdef int _gate_count(int kind) noexcept:
    return 4 if kind == LSTM else (3 if kind == GRU else 1)


cdef int _extra_width(int kind, int H) noexcept:
    return 2 * H if kind == LSTM else (H if kind == GRU else 0)


def extra_width(int kind, int hidden_size):
    """Columns per packed row of a cell's extra tape (LSTM: c_{t-1} and
    tanh c_t; GRU: W_hn h + b_hn; RNN: none)."""
    return _extra_width(kind, hidden_size)


cdef object _FLOAT32 = np.dtype(np.float32)


cdef inline bint _is_float32(object dtype):
    """dtype == np.float32, without converting np.float32 to a dtype at every
    comparison: run() has made dtype an np.dtype, native float32's singleton."""
    return dtype is _FLOAT32 or dtype == _FLOAT32


cdef Py_ssize_t _packed_size(int G, int H, int K, object dtype):
    return cyrnn_packed_size_f(G, H, K) if _is_float32(dtype) else cyrnn_packed_size_d(G, H, K)


cdef Py_ssize_t _packed_size_for(int kind, int H, int Hout, object dtype, bint backward):
    # Forward multiplies by W_hh^T (units: G gates x H), backward by W_hh
    # (units: Hout, summed over all G*H pre-activations).
    if backward:
        return _packed_size(1, Hout, _gate_count(kind) * H, dtype)
    return _packed_size(_gate_count(kind), H, Hout, dtype)


cdef enum:
    # A tape from this size up is streamed past the caches (at the levels
    # whose vectors are whole cache lines: csrc/isa.h): about one L2.
    STREAM_TAPE_BYTES = 1 << 20
    # Rows of dg and X per pass of the weight gradients (whole steps, unless
    # one step has more): fewer passes over the gradients (too large for L2)
    # against larger packed copies. 512 measured fastest on an AMD EPYC with
    # AVX-512; on an Intel Sapphire Rapids, 256: LSTM medium training 69.5
    # -> 64 ms at AVX-512, 92 -> 89 at AVX2, small 5.7 -> 5.5 at AVX2.
    GRADIENT_ROWS = 256


cdef Py_ssize_t _gradient_rows(Py_ssize_t batch) noexcept:
    return max(<Py_ssize_t>GRADIENT_ROWS, batch)


def gradient_rows(Py_ssize_t batch):
    """Rows of a chunk of BPTT's pre-activation gradients, at most, for
    batches of `batch` rows."""
    return _gradient_rows(batch)


cdef Py_ssize_t _gradient_width(int kind, int H, object dtype):
    cdef int GH = _gate_count(kind) * H
    return cyrnn_gradient_width_f(GH) if _is_float32(dtype) else cyrnn_gradient_width_d(GH)


def gate_gradient_width(int kind, int hidden_size, object dtype):
    """Columns of BPTT's buffers of a cell's pre-activation gradients (dgx
    and dgh): the gates' G*H, padded."""
    return _gradient_width(kind, hidden_size, np.dtype(dtype))


cdef Py_ssize_t _gradient_scratch(int Hout, int in_size, Py_ssize_t batch, object dtype):
    # a chunk of X and one of h_{t-1} packed for the weight gradients
    cdef Py_ssize_t rows = _gradient_rows(batch)
    return _packed_size(1, in_size, rows, dtype) + _packed_size(1, Hout, rows, dtype)


def gradient_scratch_size(int out_size, list in_sizes, Py_ssize_t batch, object dtype):
    """Elements of BPTT's scratch for the weight gradients, for batches of
    `batch` rows and the widest of the layers' in_sizes."""
    return max([_gradient_scratch(out_size, k, batch, np.dtype(dtype)) for k in in_sizes]
               or [0])


def packed_size(int kind, int hidden_size, int out_size, object dtype, bint transposed,
                int in_size):
    """Elements of a buffer for weights packed by unit blocks: W_hh, and after
    it W_ih; by gate units, then the biases, for the forward step, or
    transposed (by output and input units), for BPTT."""
    return _packed_weights_size(kind, hidden_size, out_size, in_size, np.dtype(dtype),
                                transposed)


cdef Py_ssize_t _packed_weights_size(int kind, int H, int Hout, int in_size, object dtype,
                                     bint transposed):
    return (_packed_size_for(kind, H, Hout, dtype, transposed)
            + _packed_w_ih_size(kind, H, in_size, dtype, transposed))


cdef Py_ssize_t _packed_w_ih_size(int kind, int H, int in_size, object dtype, bint backward):
    if backward:
        return _packed_size(1, in_size, _gate_count(kind) * H, dtype)
    # forward: W_ih by gate units, then the biases the step kernel starts from
    return _packed_size(_gate_count(kind), H, in_size, dtype) + (
        cyrnn_packed_bias_size_f(kind, H) if _is_float32(dtype)
        else cyrnn_packed_bias_size_d(kind, H))


cdef void _fill_plan(Plan *p, int kind, bint training, const Py_ssize_t[::1] batch_sizes,
                     const Py_ssize_t[::1] offsets, int H, int Hout, list layers,
                     object dtype, bint backward, object packed,
                     int num_threads) except *:
    cdef Py_ssize_t B = batch_sizes[0], N = offsets[offsets.shape[0] - 1]
    cdef int l, d, GH, E, DH, n_dirs
    cdef Layer *ly
    cdef Direction *dr
    p.kind = kind
    p.training = training
    p.T = batch_sizes.shape[0]
    p.H = H
    p.Hout = Hout
    p.G = _gate_count(kind)
    p.E = _extra_width(kind, H)
    p.B = B
    p.N = N
    p.L = len(layers)
    p.batch_sizes = &batch_sizes[0]
    p.offsets = &offsets[0]
    GH = p.G * H
    E = p.E
    p.num_threads = max(1, num_threads)
    # A direction's tape larger than L2 is streamed past the caches: it
    # would not stay there until BPTT reads it, and on its way through it
    # evicts the weights (measured in one process, paired calls: training
    # steps of a small and a medium LSTM and a medium GRU 2-2.5% faster
    # streamed; a tiny LSTM's 77 kB tape, read back from memory, 8% slower).
    p.stream_tape = training and N * (GH + E) * dtype.itemsize >= STREAM_TAPE_BYTES
    p.gradient_rows = _gradient_rows(B)
    p.ldg = _gradient_width(kind, H, dtype)
    p.packed = NULL
    if backward:
        p.packed = _data(packed, dtype, packed.size, "packed")
    for l in range(p.L):
        spec = layers[l]
        n_dirs = len(spec["dirs"])
        p.D = n_dirs
        DH = n_dirs * Hout
        ly = &p.layers[l]
        ly.in_size = spec["x"].shape[1]
        if backward and packed.size < _gradient_scratch(Hout, ly.in_size, B, dtype):
            raise RuntimeError("cyrnn internal error: packed buffer too small")
        ly.x = _data(spec["x"], dtype, N * ly.in_size, "x")
        ly.y = _data(spec["y"], dtype, N * DH, "y")
        ly.mask = _data(spec.get("mask"), dtype, N * DH, "mask")
        if backward:
            ly.dx = _data(spec["dx"], dtype, N * ly.in_size, "dx")
            ly.dy = _data(spec["dy"], dtype, N * DH, "dy")
        for d in range(n_dirs):
            ds = spec["dirs"][d]
            dr = &ly.dirs[d]
            # (BPTT reads them only as the tape's transposed packing)
            dr.w_ih = _data(ds.get("w_ih"), dtype, GH * ly.in_size, "w_ih")
            dr.w_hh = _data(ds.get("w_hh"), dtype, GH * Hout, "w_hh")
            dr.w_hr = _data(ds.get("w_hr"), dtype, Hout * H, "w_hr")
            dr.bias_x = _data(ds["bias_x"], dtype, GH, "bias_x")
            dr.bias_hn = _data(ds.get("bias_hn"), dtype, H, "bias_hn")
            dr.gates = _data(ds.get("gates"), dtype, N * GH, "gates")
            dr.extra = _data(ds.get("extra"), dtype, N * E, "extra")
            dr.m = _data(ds.get("m"), dtype, (N if training else B) * H, "m")
            dr.hprev = _data(ds.get("hprev"), dtype, N * Hout, "hprev")
            dr.h = _data(ds["h"], dtype, B * Hout, "h")
            dr.c = _data(ds.get("c"), dtype, B * H, "c")
            if (not backward and (dr.w_ih == NULL or dr.w_hh == NULL)) \
                    or (training and (dr.gates == NULL or dr.hprev == NULL
                              or (E > 0 and dr.extra == NULL))) \
                    or (kind == LSTM and dr.c == NULL) \
                    or (kind == GRU and dr.bias_hn == NULL) \
                    or (dr.w_hr != NULL and dr.m == NULL):
                raise RuntimeError("cyrnn internal error: missing buffer")
            if training:
                dr.transposed = _data(ds["transposed"], dtype,
                                      _packed_weights_size(kind, H, Hout, ly.in_size, dtype,
                                                           True), "transposed")
            if not backward:
                dr.packed = _data(ds["packed"], dtype,
                                  _packed_weights_size(kind, H, Hout, ly.in_size, dtype, False),
                                  "packed")
                dr.packed_ready = ds.get("packed_ready", False)
                continue
            dr.dgx = _data(ds["dgx"], dtype, p.gradient_rows * p.ldg, "dgx")
            dr.dgh = _data(ds["dgh"], dtype, p.gradient_rows * p.ldg, "dgh")
            if (dr.dgx == dr.dgh) != (kind != GRU):
                raise RuntimeError("cyrnn internal error: dgh must be dgx but for GRU")
            dr.dhall = _data(ds.get("dhall"), dtype, N * Hout, "dhall")
            dr.dm = _data(ds.get("dm"), dtype, B * H, "dm")
            dr.dh = _data(ds["dh"], dtype, B * Hout, "dh")
            dr.dc = _data(ds.get("dc"), dtype, B * H, "dc")
            dr.dw_ih = _data(ds["dw_ih"], dtype, GH * ly.in_size, "dw_ih")
            dr.dw_hh = _data(ds["dw_hh"], dtype, GH * Hout, "dw_hh")
            dr.db_ih = _data(ds.get("db_ih"), dtype, GH, "db_ih")
            dr.db_hh = _data(ds.get("db_hh"), dtype, GH, "db_hh")
            dr.dw_hr = _data(ds.get("dw_hr"), dtype, Hout * H, "dw_hr")
            if (not training) or (kind == LSTM and dr.dc == NULL) or \
                    (dr.w_hr != NULL and (dr.dhall == NULL or dr.dm == NULL or dr.dw_hr == NULL)):
                raise RuntimeError("cyrnn internal error: missing buffer")


cdef inline int _threads_for(int max_threads, int blocks, double flops) noexcept nogil:
    """Threads to share `blocks` unit blocks of a product of about `flops`
    multiply-adds: one below a million, where waking a team costs more than
    it saves (measured on the per-step products)."""
    return min(max_threads, blocks) if flops >= 1e6 else 1


cdef inline void _pack_share(int chunk, int threads, int G, int H, int K, const floating *w,
                             Py_ssize_t row_stride, Py_ssize_t col_stride,
                             floating *packed) noexcept nogil:
    """Thread `chunk`'s share of the unit blocks of pack_weights(G, H, K, w,
    row_stride, col_stride, packed)."""
    cdef int blocks = packed_blocks(H, <floating *>NULL)
    if H > 0:
        pack_weight_blocks(G, H, K, w, row_stride, col_stride, chunk * blocks // threads,
                           (chunk + 1) * blocks // threads, packed)


cdef void _pack_shared(int max_threads, int G, int H, int K, const floating *w,
                       Py_ssize_t row_stride, Py_ssize_t col_stride,
                       floating *packed) noexcept nogil:
    """pack_weights, its blocks shared between threads when it is big enough
    to pay for waking them (packing moves about 3 values per ns)."""
    cdef int chunk, threads = min(max_threads, packed_blocks(H, <floating *>NULL))
    if threads > 1 and <double>G * H * K >= 1 << 15:
        for chunk in prange(threads, num_threads=threads, schedule="static"):
            _pack_share(chunk, threads, G, H, K, w, row_stride, col_stride, packed)
    else:
        pack_weights(G, H, K, w, row_stride, col_stride, packed)


cdef inline void _gradient_chunk(const Plan *p, const Layer *ly, int d, floating *panels,
                                 Py_ssize_t row0, int rows, bint accumulate, int tid,
                                 int threads) noexcept nogil:
    """Thread tid's share of the work on a complete chunk of rows [row0,
    row0 + rows): its rows of dx = dgx W_ih (+= for the second direction,
    which reads the same input) by blocks of input units; then, by groups of
    gate rows, dW_ih (+)= dgx^T x, dW_hh (+)= dgh^T h_{t-1} and the bias
    gradients (+)= dg's column sums, reading dg in place. The chunk of x and
    of h_{t-1} is packed once, its blocks shared. Against scipy's BLAS, which
    repacks dg for each product, on an LSTM's two products at 1 thread
    (float32, best of 15): 96 vs 83 GFLOP/s at H=256, 96 vs 89 at H=512, even
    at H=128; at 2 threads it also keeps BLAS's pool out of the loops' way."""
    cdef const Direction *dr = &ly.dirs[d]
    cdef int GH = p.G * p.H, Hout = p.Hout, in_size = ly.in_size
    cdef int groups = packed_blocks(GH, <floating *>NULL)
    cdef int g0 = tid * groups // threads, g1 = (tid + 1) * groups // threads
    cdef int x_blocks = packed_blocks(in_size, <floating *>NULL)
    cdef const floating *packed_ih = <const floating *>dr.transposed + packed_elements(
        1, Hout, GH, <floating *>NULL)
    cdef floating *panels_x = panels
    cdef floating *panels_h = panels + packed_elements(1, in_size, rows, <floating *>NULL)
    _product_blocks(in_size, GH, rows, packed_ih, <const floating *>dr.dgx, p.ldg,
                    <floating *>ly.dx + row0 * in_size, d > 0, tid * x_blocks // threads,
                    (tid + 1) * x_blocks // threads)
    _pack_share(tid, threads, 1, in_size, rows, <const floating *>ly.x + row0 * in_size, 1,
                in_size, panels_x)
    _pack_share(tid, threads, 1, Hout, rows, <const floating *>dr.hprev + row0 * Hout, 1, Hout,
                panels_h)
    if threads > 1:  # every thread reads all of the panels
        omp_barrier()
    if dr.dgh == dr.dgx:  # dW_ih and dW_hh share the pre-activations' gradients
        weight_gradient_chunk(GH, g0, g1, rows, <const floating *>dr.dgx, p.ldg, in_size,
                              panels_x, <floating *>dr.dw_ih, Hout, panels_h,
                              <floating *>dr.dw_hh, <floating *>dr.db_ih, accumulate)
    else:
        weight_gradient_chunk(GH, g0, g1, rows, <const floating *>dr.dgx, p.ldg, in_size,
                              panels_x, <floating *>dr.dw_ih, 0, NULL, NULL,
                              <floating *>dr.db_ih, accumulate)
        weight_gradient_chunk(GH, g0, g1, rows, <const floating *>dr.dgh, p.ldg, Hout,
                              panels_h, <floating *>dr.dw_hh, 0, NULL, NULL,
                              <floating *>dr.db_hh, accumulate)


cdef void _gradient_chunk_alone(const Plan *p, const Layer *ly, int d, floating *panels,
                                Py_ssize_t row0, int rows, bint accumulate) noexcept nogil:
    """_gradient_chunk from a time loop on one thread: a team of its own when
    the chunk is big enough (a batch of one row, say, leaves the loop on one
    thread, but not the chunk's many rows)."""
    cdef int tid = 0, GH = p.G * p.H
    cdef int threads = _threads_for(p.num_threads, packed_blocks(GH, <floating *>NULL),
                                    <double>GH * (2 * ly.in_size + p.Hout) * rows)
    if threads > 1:
        with parallel(num_threads=threads):
            tid = threadid()
            _gradient_chunk(p, ly, d, panels, row0, rows, accumulate, tid, threads)
    else:
        _gradient_chunk(p, ly, d, panels, row0, rows, accumulate, 0, 1)


cdef inline int _chunk_end(const Plan *p, int d, int s0) noexcept nogil:
    """One past the last step (in the order direction d visits them) of the
    weight gradients' chunk that starts at step s0: as many whole steps as
    fit in gradient_rows rows (one at least: it holds a batch)."""
    cdef Py_ssize_t rows = 0
    cdef int s = s0, t
    while s < p.T:
        t = p.T - 1 - s if d == 0 else s
        if s > s0 and rows + p.batch_sizes[t] > p.gradient_rows:
            break
        rows += p.batch_sizes[t]
        s += 1
    return s


cdef inline Py_ssize_t _chunk_first_row(const Plan *p, int d, int s0, int s1) noexcept nogil:
    """The first row of the chunk of steps [s0, s1): its steps are consecutive
    in time, so its rows are too."""
    return p.offsets[p.T - s1] if d == 0 else p.offsets[s0]


cdef inline void _product_blocks(int H, int K, int n, const floating *packed,
                                 const floating *x, Py_ssize_t ldx, floating *out,
                                 bint accumulate, int first_block,
                                 int end_block) noexcept nogil:
    """The columns of unit blocks [first_block, end_block) of out (n, H) =
    (or +=) x (n, K; rows ldx apart) W^T, for W packed by pack_weights with
    G = 1."""
    packed_product(H, K, n, packed, first_block, end_block, x, ldx, out, accumulate)


cdef inline void _step_blocks(const Plan *p, const Direction *dr, const floating *packed_ih,
                              const floating *packed_hh, const floating *packed_bias,
                              int first_block, int end_block, int in_size, int n, int carried,
                              const floating *x, const floating *prev, Py_ssize_t ld_prev,
                              const floating *rest, floating *out, Py_ssize_t ldo,
                              floating *gates, floating *extra, floating *next_h,
                              int next_rows) noexcept nogil:
    """One step for a range of unit blocks. Rows below `carried` continue from
    `prev` (the previous step's output, rows ld_prev apart), the others from
    `rest` (rows Hout apart); rows below next_rows also store h to next_h.
    The two calls split the rows the same way with or without a tape: a
    row's bits depend on the tile it falls in."""
    cdef floating *c = <floating *>dr.c
    cdef Py_ssize_t GH = p.G * p.H
    if carried > 0:
        cell_step(p.kind, p.H, in_size, p.Hout, first_block, end_block, carried, packed_ih,
                  packed_hh, packed_bias, x, in_size, prev, ld_prev, c, out, ldo, gates,
                  extra, next_h, next_rows, p.stream_tape)
    if n > carried:
        cell_step(p.kind, p.H, in_size, p.Hout, first_block, end_block, n - carried,
                  packed_ih, packed_hh, packed_bias, x + carried * in_size, in_size,
                  rest, p.Hout,
                  c + carried * p.H if c != NULL else NULL, out + carried * ldo, ldo,
                  gates + carried * GH if gates != NULL else NULL,
                  extra + carried * p.E if extra != NULL else NULL,
                  next_h + carried * p.H if next_h != NULL else NULL, next_rows - carried,
                  p.stream_tape)


cdef extern from *:
    """
    /* An orphaned barrier binds to the enclosing parallel region, which
     * Cython's parallel() blocks cannot name themselves. */
    static void cyrnn_omp_barrier(void)
    {
    #pragma omp barrier
    }
    """
    void omp_barrier "cyrnn_omp_barrier"() noexcept nogil


cdef inline void _forward_step(const Plan *p, const Layer *ly, int d, const floating *x,
                               const floating *packed_ih, const floating *packed_hh,
                               const floating *packed_bias, int s, int tid,
                               int threads) noexcept nogil:
    """Thread tid's share of step s: rows of the copies and of the
    projection, unit blocks of the cell; with several threads, a barrier
    wherever the next phase reads what other threads wrote."""
    cdef const Direction *dr = &ly.dirs[d]
    cdef int H = p.H, Hout = p.Hout, GH = p.G * p.H, DH = p.D * p.Hout, I = ly.in_size
    cdef int blocks = packed_blocks(H, <floating *>NULL)
    cdef int t = s if d == 0 else p.T - 1 - s
    cdef int n = <int>p.batch_sizes[t], r0 = tid * n // threads, r1 = (tid + 1) * n // threads
    cdef int prev_t, next_t, carried = 0, finished, lo, next_rows = 0
    cdef Py_ssize_t off = p.offsets[t], ld_prev = DH, ldo = DH
    cdef floating *h = <floating *>dr.h
    cdef floating *hprev = <floating *>dr.hprev
    cdef floating *y = <floating *>ly.y + d * Hout
    cdef const floating *w_hr = <const floating *>dr.w_hr
    cdef const floating *prev = NULL
    cdef const floating *rest
    cdef floating *out = y + off * DH
    cdef floating *gates = NULL
    cdef floating *extra = NULL
    cdef floating *next_h = NULL
    # The state lives in y: each step reads the previous step's rows of y
    # (rows are sorted by length, so they are the first ones) and writes its
    # own, with no copy in between.
    if s > 0:
        prev_t = t - 1 if d == 0 else t + 1
        carried = min(n, <int>p.batch_sizes[prev_t])
        prev = y + p.offsets[prev_t] * DH
    rest = h + carried * Hout
    if p.training:
        gates = <floating *>dr.gates + off * GH
        if p.E:
            extra = <floating *>dr.extra + off * p.E
        # The tape keeps h_{t-1} for the weight gradients. Without a
        # projection, the previous step's kernel stored its rows there
        # already (below); the others come from the initial state.
        lo = min(r1, carried)
        if lo > r0 and w_hr != NULL:
            copy_rows(lo - r0, Hout, prev + r0 * DH, DH, hprev + (off + r0) * Hout, Hout)
        if s + 1 < p.T and w_hr == NULL:
            next_t = t + 1 if d == 0 else t - 1
            next_rows = min(n, <int>p.batch_sizes[next_t])
            next_h = hprev + p.offsets[next_t] * Hout
        lo = max(r0, carried)
        if r1 > lo:
            copy_rows(r1 - lo, Hout, h + lo * Hout, Hout, hprev + (off + lo) * Hout, Hout)
        if threads > 1:
            omp_barrier()
        prev = hprev + off * Hout
        ld_prev = Hout
        rest = prev + carried * Hout
    if w_hr != NULL:  # the cell's output m is projected into y below
        out = <floating *>dr.m + (off * H if p.training else 0)
        ldo = H
    _step_blocks(p, dr, packed_ih, packed_hh, packed_bias, tid * blocks // threads,
                 (tid + 1) * blocks // threads, I, n, carried, x + off * I, prev, ld_prev,
                 rest, out, ldo, gates, extra, next_h, next_rows)
    if threads > 1:
        omp_barrier()
    # Rows whose sequence ends at this step hand their state to h_n.
    if d == 0:
        finished = <int>p.batch_sizes[t + 1] if t + 1 < p.T else 0
    else:
        finished = 0 if t == 0 else n
    if w_hr != NULL:
        # One thread projects every row: BLAS's bits for a row depend on how
        # many rows it is given, and results must not depend on the threads.
        if tid == 0:
            gemm(False, True, n, Hout, H, <floating>1, out, H, w_hr, H,
                 <floating>0, y + off * DH, DH)
            copy_rows(n - finished, Hout, y + (off + finished) * DH, DH,
                      h + finished * Hout, Hout)
        if threads > 1:  # the next step reads the projected rows
            omp_barrier()
    else:
        lo = max(finished, r0)
        if r1 > lo:
            copy_rows(r1 - lo, Hout, y + (off + lo) * DH, DH, h + lo * Hout, Hout)


cdef void _forward_direction(const Plan *p, const Layer *ly, int d,
                             const floating *x) noexcept nogil:
    cdef const Direction *dr = &ly.dirs[d]
    # (initialized: parallel() copies them into each thread)
    cdef int H = p.H, Hout = p.Hout, GH = p.G * p.H, I = ly.in_size, s = 0, tid = 0, threads
    cdef floating *packed_hh = <floating *>dr.packed
    cdef floating *packed_ih = packed_hh + packed_elements(p.G, H, Hout, <floating *>NULL)
    cdef floating *packed_bias = packed_ih + packed_elements(p.G, H, I, <floating *>NULL)

    if not dr.packed_ready:
        _pack_shared(p.num_threads, p.G, H, Hout, <const floating *>dr.w_hh, Hout, 1,
                     packed_hh)
        _pack_shared(p.num_threads, p.G, H, I, <const floating *>dr.w_ih, I, 1, packed_ih)
        pack_bias(p.kind, H, <const floating *>dr.bias_x, <const floating *>dr.bias_hn,
                  packed_bias)
    if p.training:
        # BPTT's transposed packings, made now for the tape to keep: an
        # optimizer may step the weights in place before backward runs.
        _pack_shared(p.num_threads, 1, Hout, GH, <const floating *>dr.w_hh, 1, Hout,
                     <floating *>dr.transposed)
        _pack_shared(p.num_threads, 1, I, GH, <const floating *>dr.w_ih, 1, I,
                     <floating *>dr.transposed + packed_elements(1, Hout, GH, <floating *>NULL))
    # One team for the whole loop (the first step has the most rows): each
    # thread takes a contiguous range of unit blocks of every step.
    threads = _threads_for(p.num_threads, packed_blocks(H, <floating *>NULL),
                           <double>p.batch_sizes[0] * GH * (Hout + I))
    if threads > 1:
        with parallel(num_threads=threads):
            tid = threadid()
            for s in range(p.T):
                _forward_step(p, ly, d, x, packed_ih, packed_hh, packed_bias, s, tid, threads)
    else:
        for s in range(p.T):
            _forward_step(p, ly, d, x, packed_ih, packed_hh, packed_bias, s, 0, 1)


cdef inline void _backward_rows(const Plan *p, const Direction *dr, const floating *dy,
                                int t, Py_ssize_t row0, int first, int tid,
                                int threads) noexcept nogil:
    """Thread tid's share of rows [first, n) of step t: dL/dh_t gets dy_t, the
    cell's backward kernel turns it into the pre-activations' gradients (and
    dL/dc_{t-1}) in the rows of the chunk that starts at row0."""
    cdef int H = p.H, Hout = p.Hout, GH = p.G * p.H, DH = p.D * p.Hout
    cdef int n = <int>p.batch_sizes[t]
    cdef int r0 = first + tid * (n - first) // threads
    cdef int r1 = first + (tid + 1) * (n - first) // threads
    cdef Py_ssize_t off = p.offsets[t]
    cdef floating *dh = <floating *>dr.dh
    cdef floating *dc = <floating *>dr.dc + r0 * H if dr.dc != NULL else NULL
    cdef floating *dm = <floating *>dr.dm
    cdef floating *dgx = <floating *>dr.dgx + (off + r0 - row0) * p.ldg
    cdef floating *dgh = <floating *>dr.dgh + (off + r0 - row0) * p.ldg
    cdef const floating *gates = <const floating *>dr.gates + (off + r0) * GH
    cdef const floating *extra = NULL
    cdef const floating *w_hr = <const floating *>dr.w_hr
    if dr.extra != NULL:
        extra = <const floating *>dr.extra + (off + r0) * p.E
    if r1 > r0:
        add_rows(r1 - r0, Hout, dy + (off + r0) * DH, DH, dh + r0 * Hout, Hout)
    if p.kind == LSTM and w_hr != NULL:
        # One thread for BLAS, whose bits for a row depend on how many rows
        # it is given: results must not depend on the threads.
        if threads > 1:
            omp_barrier()
        if tid == 0:
            copy_rows(n, Hout, dh, Hout, <floating *>dr.dhall + off * Hout, Hout)
            gemm(False, False, n, H, Hout, <floating>1, dh, Hout, w_hr, H, <floating>0, dm, H)
        if threads > 1:
            omp_barrier()
    if r1 <= r0:
        return
    if p.kind == LSTM:
        lstm_backward(r1 - r0, H, gates, extra, (dm if w_hr != NULL else dh) + r0 * H, dc, dgx,
                      p.ldg)
    elif p.kind == GRU:
        # The kernel leaves the direct part z * dh in dh; the product adds
        # the part that flows back through the weights.
        gru_backward(r1 - r0, H, gates, extra, <const floating *>dr.hprev + (off + r0) * Hout,
                     dh + r0 * Hout, dgx, dgh, p.ldg)
    else:
        rnn_backward(p.kind == RNN_RELU, r1 - r0, H, gates, dh + r0 * Hout, dgx, p.ldg)


cdef inline void _backward_step(const Plan *p, const Layer *ly, int d,
                                 const floating *packed_hh, floating *panels, int s, int s0,
                                 int s1, Py_ssize_t row0, int tid, int threads) noexcept nogil:
    """Thread tid's share of the s-th step direction d visits, in the chunk of
    steps [s0, s1) whose rows start at row0; the chunk's dx and weight
    gradients after its last step. With several threads, a barrier wherever the next
    phase reads what other threads wrote."""
    cdef int t = p.T - 1 - s if d == 0 else s
    cdef Py_ssize_t end = p.offsets[p.T - s0] if d == 0 else p.offsets[s1]
    cdef const Direction *dr = &ly.dirs[d]
    cdef int GH = p.G * p.H, DH = p.D * p.Hout, blocks = packed_blocks(p.Hout, <floating *>NULL)
    cdef int n = <int>p.batch_sizes[t], first = 0, following, cells
    cdef const floating *dy = <const floating *>ly.dy + d * p.Hout
    cdef floating *dgh = <floating *>dr.dgh
    # An LSTM's product runs the next step's cell on its tiles (see below):
    # not across a chunk's end, whose gradients still need these rows.
    cdef bint fused = p.kind == LSTM and dr.w_hr == NULL
    if fused and s > s0:  # the rows the previous step's product went on with
        first = min(n, <int>p.batch_sizes[t + 1 if d == 0 else t - 1])
    if first < n:
        _backward_rows(p, dr, dy, t, row0, first, tid, threads)
        if threads > 1:
            omp_barrier()
    if fused and s + 1 < s1:
        # dL/dh_{t'} = dg_t W_hh for the step t' visited next, and on the
        # same tiles t''s cell backward: its gates' gradients
        following = t - 1 if d == 0 else t + 1
        cells = min(n, <int>p.batch_sizes[following])
        lstm_backward_product(p.H, tid * blocks // threads, (tid + 1) * blocks // threads,
                              n, cells, packed_hh, dgh + (p.offsets[t] - row0) * p.ldg,
                              p.ldg, dy + p.offsets[following] * DH, DH,
                              <const floating *>dr.gates + p.offsets[following] * GH,
                              <const floating *>dr.extra + p.offsets[following] * p.E,
                              <floating *>dr.dc, <floating *>dr.dh,
                              dgh + (p.offsets[following] - row0) * p.ldg)
    else:
        # dL/dh_{t-1} = (GRU: +=) dgh W_hh, by blocks of Hout units
        _product_blocks(p.Hout, GH, n, packed_hh, dgh + (p.offsets[t] - row0) * p.ldg, p.ldg,
                        <floating *>dr.dh, p.kind == GRU, tid * blocks // threads,
                        (tid + 1) * blocks // threads)
    if s == s1 - 1 and threads > 1:
        _gradient_chunk(p, ly, d, panels, row0, <int>(end - row0), s0 > 0, tid, threads)
    elif s == s1 - 1:
        _gradient_chunk_alone(p, ly, d, panels, row0, <int>(end - row0), s0 > 0)
    if threads > 1:
        omp_barrier()


cdef void _backward_direction(const Plan *p, const Layer *ly, int d,
                              const floating *x) noexcept nogil:
    cdef const Direction *dr = &ly.dirs[d]
    # (initialized: parallel() copies them into each thread)
    cdef int Hout = p.Hout, GH = p.G * p.H, s = 0, s0 = 0, s1 = 0, tid = 0, threads
    cdef int blocks = packed_blocks(Hout, <floating *>NULL)
    cdef Py_ssize_t row0 = 0
    # W_hh and W_ih transposed by the forward pass, by blocks of their output
    # units: W_hh's for dL/dh, W_ih's (measured faster than BLAS, which
    # repacks dg) for dx, chunk by chunk.
    cdef const floating *packed_hh = <const floating *>dr.transposed
    cdef floating *panels = <floating *>p.packed
    # The first step has the most rows (they are sorted by length).
    threads = _threads_for(p.num_threads, blocks, <double>p.batch_sizes[0] * Hout * GH)
    if threads > 1:
        # One team for the whole loop: each thread runs the cell's kernel on
        # its share of the rows, then the product on its share of the
        # blocks, which reads every row. Opening a team per step left the
        # kernel to one thread while the other waited.
        with parallel(num_threads=threads):
            tid = threadid()
            s1 = 0
            for s in range(p.T):
                if s == s1:  # the next chunk of the weight gradients
                    s0 = s
                    s1 = _chunk_end(p, d, s0)
                    row0 = _chunk_first_row(p, d, s0, s1)
                _backward_step(p, ly, d, packed_hh, panels, s, s0, s1, row0, tid, threads)
    else:
        for s in range(p.T):
            if s == s1:
                s0 = s
                s1 = _chunk_end(p, d, s0)
                row0 = _chunk_first_row(p, d, s0, s1)
            _backward_step(p, ly, d, packed_hh, panels, s, s0, s1, row0, 0, 1)
    if dr.db_ih != NULL and dr.dgh == dr.dgx:  # both biases sit in the same pre-activations
        memcpy(dr.db_hh, dr.db_ih, GH * sizeof(floating))
    if dr.w_hr != NULL:
        gemm(True, False, Hout, p.H, <int>p.N, <floating>1, <const floating *>dr.dhall, Hout,
             <const floating *>dr.m, p.H, <floating>0, <floating *>dr.dw_hr, p.H)


cdef void _run_forward(const Plan *p, const floating *first_x) noexcept nogil:
    cdef int l, d
    cdef const Layer *ly
    for l in range(p.L):
        ly = &p.layers[l]
        for d in range(p.D):
            _forward_direction(p, ly, d, <const floating *>ly.x)
        if ly.mask != NULL:
            multiply(p.N * p.D * p.Hout, <floating *>ly.y, <const floating *>ly.mask)


cdef void _run_backward(const Plan *p, const floating *first_x) noexcept nogil:
    cdef int l, d
    cdef const Layer *ly
    for l in range(p.L - 1, -1, -1):
        ly = &p.layers[l]
        if ly.mask != NULL:
            multiply(p.N * p.D * p.Hout, <floating *>ly.dy, <const floating *>ly.mask)
        for d in range(p.D):
            _backward_direction(p, ly, d, <const floating *>ly.x)


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


def run(int kind, bint training, bint backward, const Py_ssize_t[::1] batch_sizes,
        const Py_ssize_t[::1] offsets, int hidden_size, int out_size, list layers,
        object dtype, object packed=None, int num_threads=1):
    """Runs the forward pass (backward=False) or BPTT over buffers prepared by
    the Python layer; see Plan, Layer and Direction for what each holds.
    `packed` is BPTT's scratch; forward takes a packed buffer per direction."""
    cdef Plan p
    dtype = np.dtype(dtype)
    if batch_sizes.shape[0] < 1 or offsets.shape[0] != batch_sizes.shape[0] + 1 \
            or not layers:
        raise RuntimeError("cyrnn internal error: empty plan")
    p.layers = <Layer *>calloc(len(layers), sizeof(Layer))
    if p.layers == NULL:
        raise MemoryError()
    try:
        _fill_plan(&p, kind, training, batch_sizes, offsets, hidden_size,
                   out_size, layers, dtype, backward, packed, num_threads)
        if _is_float32(dtype):
            with nogil:
                if backward:
                    _run_backward(&p, <const float *>NULL)
                else:
                    _run_forward(&p, <const float *>NULL)
        else:
            with nogil:
                if backward:
                    _run_backward(&p, <const double *>NULL)
                else:
                    _run_forward(&p, <const double *>NULL)
    finally:
        free(p.layers)


def activation(str name, object values):
    """The C kernels' sigmoid or tanh applied to a float32 or float64 array,
    for checking their accuracy against numpy."""
    cdef cnp.ndarray x = np.ascontiguousarray(values)
    cdef cnp.ndarray out = np.empty_like(x)
    if x.dtype == np.float32 and name == "sigmoid":
        cyrnn_sigmoid_f(x.size, <float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(out))
    elif x.dtype == np.float32 and name == "tanh":
        cyrnn_tanh_f(x.size, <float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(out))
    elif x.dtype == np.float64 and name == "sigmoid":
        cyrnn_sigmoid_d(x.size, <double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(out))
    elif x.dtype == np.float64 and name == "tanh":
        cyrnn_tanh_d(x.size, <double *>cnp.PyArray_DATA(x), <double *>cnp.PyArray_DATA(out))
    else:
        raise ValueError(f"activation: unknown name {name!r} or dtype {x.dtype}")
    return out
