# The contract between the Python layer and the time loops: the typed
# records Python fills with its arrays (one per layer and direction), and the
# C structs of pointers the nogil loops read, which fill_plan makes from them.

cdef struct Direction:
    # parameters
    void *w_ih
    void *w_hh
    void *w_hr          # LSTM projection, or NULL
    void *bias_x        # biases folded into the input projection (G*H)
    void *bias_hn       # GRU: b_hn, which stays inside r * (...)
    void *peephole      # peephole LSTM: (3, H) weights of c into i, f, o
    void *packed        # forward: W_hh, W_ih and the biases packed for cell_step
    bint packed_ready   # packed already holds them (a cached packing)
    bint skip_zeros     # the step may skip the products with h's zeros (_fill_weights)
    void *transposed    # training: W_hh, then W_ih, packed transposed for BPTT
    #                     (as they are, with blas_products)
    # forward buffers: the tape (training only; for inference, a two-phase
    # cell's step uses B rows of gates and extra as scratch)
    void *gates         # (N, G*H) activated gates
    void *extra         # (N, E) the cell's extra values
    void *hprev         # (N, Hout) state before each step
    # forward buffers, always
    void *m             # LSTM with projection: (N, H) tape or (B, H) scratch
    void *h             # (B, Hout) state: h0 in, h_n out
    void *c             # (B, H) LSTM cell state: c0 in, c_n out
    # backward buffers
    # The pre-activations' gradients: the input side (dgx) and the recurrent
    # side (dgh, the same as dgx unless the cell splits them), a chunk of
    # whole steps at a time (gradient_rows rows at most, ldg apart), where
    # each step's dL/dh product reads them; once the chunk is complete, dx
    # and the weight gradients read them there too.
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
    void *dpeephole


cdef struct Layer:
    int in_size
    # dx and the weight gradients run by BLAS, chunk by chunk (where
    # _cpu.blas_runs_gradients); the tape's `transposed` then holds W_ih as
    # it is
    bint blas_gradients
    void *x             # (N, in_size) packed input
    void *y             # (N, D*Hout) packed output
    void *mask          # (N, D*Hout) dropout mask applied to y, or NULL
    void *dx            # (N, in_size), or NULL where no dL/dx is wanted
    void *dy            # (N, D*Hout)
    Direction dirs[2]


cdef struct Plan:
    int kind            # the registry's number of the cell (_cells.py)
    bint training
    bint fused_backward   # (registry) BPTT's product runs the next cell's backward
    bint split_gradients  # (registry) dgh apart from dgx; the product adds to dh
    bint has_cell_state, bias_hn_apart, peephole, reset_before  # (registry)
    bint zeros_in_state  # (registry) a relu state, about half zeros
    int hh_first        # (registry) gates of W_hh's first packed group (the
    #                     rest, if any, form the second)
    int num_threads     # OpenMP threads sharing each step's unit blocks
    bint stream_tape    # store the tape past the caches (see fill_plan)
    Py_ssize_t gradient_rows  # rows of a chunk of the weight gradients, at most
    Py_ssize_t ldg      # distance between the rows of dgx and dgh
    int T, H, Hout, G, E, D, L
    bint reverse        # the layer's one direction runs from the last step to the first
    # Every product run by BLAS rather than by the kernels (where
    # _cpu.blas_runs_products). Forward, the input's for a chunk of steps at
    # a time and the state's step by step (a two-phase cell's W_hn product
    # between its phases), into scratch rows which the step kernel starts
    # from; the tape's `transposed` then holds W_hh and W_ih as they are,
    # for BPTT's products: dL/dh_{t-1} per step, dx and the weight
    # gradients per chunk.
    bint blas_products
    void *pre_x         # (gradient_rows, G*H): x W_ih^T of a chunk's rows
    void *pre_h         # (B, G*H): h_{t-1} W_hh^T of a step's rows
    void *packed        # backward: the weight gradients' scratch
    Py_ssize_t B, N
    const Py_ssize_t *batch_sizes
    const Py_ssize_t *offsets
    Layer *layers


cdef class _Record:
    pass


cdef class DirectionBuffers(_Record):
    cdef public object w_ih, w_hh, w_hr, bias_x, bias_hn, peephole
    cdef public object packed, transposed
    cdef public bint packed_ready
    cdef public object gates, extra, hprev, m, h, c


cdef class LayerBuffers(_Record):
    cdef public object x, y, mask
    cdef public list dirs


cdef class DirectionGradients(_Record):
    cdef public DirectionBuffers forward
    cdef public object dgx, dgh, dhall, dm, dh, dc
    cdef public object dw_ih, dw_hh, db_ih, db_hh, dw_hr, dpeephole


cdef class LayerGradients(_Record):
    cdef public LayerBuffers forward
    cdef public object dx, dy
    cdef public list dirs


# A time loop of one real type over a plan (the pointer only picks the type).
ctypedef void (*loop_float)(const Plan *p, const float *real) noexcept nogil
ctypedef void (*loop_double)(const Plan *p, const double *real) noexcept nogil

cdef int run_plan(object cell, bint training, bint reverse,
                  const Py_ssize_t[::1] batch_sizes, const Py_ssize_t[::1] offsets, int H,
                  int Hout, list layers, object dtype, int num_threads, object packed,
                  object products, loop_float run_float, loop_double run_double) except -1


cdef inline bint in_time_order(const Plan *p, int d) noexcept nogil:
    """Whether direction d visits the steps from the first to the last: the
    first direction does, unless the layer runs in reverse."""
    return (d == 0) != p.reverse


cdef inline int chunk_end(const Plan *p, bint ascending, int s0) noexcept nogil:
    """One past the last step of the chunk of steps that starts at the s0-th
    step visited (from the first step if ascending, else from the last): as
    many whole steps as fit in gradient_rows rows (one at least: it holds a
    batch)."""
    cdef Py_ssize_t rows = 0
    cdef int s = s0, t
    while s < p.T:
        t = s if ascending else p.T - 1 - s
        if s > s0 and rows + p.batch_sizes[t] > p.gradient_rows:
            break
        rows += p.batch_sizes[t]
        s += 1
    return s


cdef inline Py_ssize_t chunk_first_row(const Plan *p, bint ascending, int s0,
                                       int s1) noexcept nogil:
    """The first row of the chunk of visited steps [s0, s1): its steps are
    consecutive in time, so its rows are too."""
    return p.offsets[s0] if ascending else p.offsets[p.T - s1]

# A plan built once and kept between calls, by a caller that runs it again and
# again (the stream, _stream.pyx): run_plan's first two steps. init_plan
# allocates p.layers (the caller frees it); p keeps pointers into
# batch_sizes, offsets and every array of the records (the caller keeps them).
cdef int init_plan(Plan *p, object cell, bint training, const Py_ssize_t[::1] batch_sizes,
                   const Py_ssize_t[::1] offsets, int H, int Hout, list layers, object dtype,
                   int num_threads) except -1
cdef int fill_forward(Plan *p, list layers, object dtype, object products) except -1
cdef bint is_float32(object dtype)
