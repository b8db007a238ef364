# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The forward time loops of every cell kind (inference or training), run
without the GIL over every layer and direction of a plan (_plan.pyx).

Sequences are packed as torch's PackedSequence: rows sorted by length, step
t owning the first batch_sizes[t] rows, stored at rows offsets[t] ... of
every (N, width) buffer. Each step is one fused kernel call per range of
unit blocks: the input and recurrent products in registers, then the cell.
"""

from libc.string cimport memcpy

from cython cimport floating
from cython.parallel cimport parallel, prange, threadid

from cyrnn._blas cimport gemm
from cyrnn._kernels cimport (cell_step, copy_rows, multiply, pack_bias, pack_weights,
                             packed_blocks, packed_elements)
from cyrnn._loops cimport omp_barrier, pack_share, threads_for
from cyrnn._plan cimport (Direction, Layer, Plan, chunk_end, chunk_first_row, in_time_order,
                          run_plan)

cdef extern from "cyrnn_kernels.h":
    enum:
        CYRNN_STEP_STREAM_TAPE
        CYRNN_STEP_SKIP_ZEROS


cdef void _pack_shared(int max_threads, int G, int H, int K, const floating *w,
                       Py_ssize_t row_stride, Py_ssize_t col_stride,
                       floating *packed) noexcept nogil:
    """pack_weights, its blocks shared between threads when it is big enough
    to pay for waking them (a training pass's two packings of W move about 11
    values per ns on one core of a Zen 5)."""
    cdef int chunk, threads = min(max_threads, packed_blocks(H, <floating *>NULL))
    if threads > 1 and <double>G * H * K >= 1 << 15:
        for chunk in prange(threads, num_threads=threads, schedule="static"):
            pack_share(chunk, threads, G, H, K, w, row_stride, col_stride, packed)
    else:
        pack_weights(G, H, K, w, row_stride, col_stride, packed)


cdef struct StepRows:
    # One thread's share of a step (floating arrays, typed where they are
    # used): its unit blocks [first_block, end_block) of the n rows. Rows
    # below `carried` continue from `prev` (the previous step's output, rows
    # ld_prev apart), the others from `rest` (rows Hout apart); rows below
    # next_rows also store h to next_h. pre_x, pre_h: the products BLAS ran
    # (rows G*H apart), or NULL; gates and extra: the tape's rows, or NULL.
    const void *packed_ih
    const void *packed_hh
    const void *packed_bias
    const void *pre_x
    const void *pre_h
    int first_block, end_block, in_size, n, carried, next_rows
    const void *prev
    Py_ssize_t ld_prev
    const void *rest
    void *out
    Py_ssize_t ldo
    void *gates
    void *extra
    void *next_h


cdef inline void _step_blocks(const Plan *p, const Direction *dr, const StepRows *a,
                              const floating *x, int tid, int threads) noexcept nogil:
    """One step for a thread's unit blocks (x: the step's input rows): a
    two-phase cell's phase 1 for them, then, once every thread's is done
    (phase 2 reads every unit of r * h), its phase 2; with BLAS's products,
    phase 2's (r * h) W_hn^T between them."""
    if p.reset_before:
        _phase_blocks(p, dr, a, x, 1)
        if threads > 1:
            omp_barrier()
        if p.blas_products:
            _candidate_products(p, dr, a.n, <const floating *>a.extra,
                                <floating *>a.pre_h, tid, threads)
    _phase_blocks(p, dr, a, x, 2 if p.reset_before else 0)


cdef inline void _candidate_products(const Plan *p, const Direction *dr, int n,
                                     const floating *rh, floating *pre_h, int tid,
                                     int threads) noexcept nogil:
    """The reset-before GRU's pre_h = (r * h_{t-1}) W_hn^T by BLAS (on
    thread 0, every thread waiting for it) for a step's n rows, r * h_{t-1}
    from its first phase (rows H apart)."""
    if tid == 0:
        gemm(False, True, n, p.H, p.H, <floating>1, rh, p.H,
             <const floating *>dr.w_hh + 2 * p.H * p.Hout, p.Hout, <floating>0, pre_h, p.H)
    if threads > 1:
        omp_barrier()


cdef inline floating *_rows_on(void *rows, Py_ssize_t skip, const floating *like) noexcept nogil:
    """rows (an array of floating, or NULL) `skip` elements on."""
    return <floating *>rows + skip if rows != NULL else NULL


cdef inline void _phase_blocks(const Plan *p, const Direction *dr, const StepRows *a,
                               const floating *x, int phase) noexcept nogil:
    """One step (or one phase of it) for a thread's unit blocks, in two
    calls: the carried rows, then the others. The calls split the rows the
    same way with or without a tape: a row's bits depend on the tile it
    falls in."""
    cdef floating *c = <floating *>dr.c
    cdef Py_ssize_t GH = p.G * p.H
    cdef int k = a.carried, I = a.in_size
    # pre_h's rows: the state's product with W_hh's first group, or phase 2's
    # with W_hn
    cdef Py_ssize_t ldp = p.H if phase == 2 else p.hh_first * p.H
    cdef int options = ((CYRNN_STEP_STREAM_TAPE if p.stream_tape else 0) |
                        (CYRNN_STEP_SKIP_ZEROS if dr.skip_zeros else 0))
    if k > 0:
        cell_step(p.kind, phase, p.H, I, p.Hout, a.first_block, a.end_block, k,
                  <const floating *>a.packed_ih, <const floating *>a.packed_hh,
                  <const floating *>a.packed_bias, <const floating *>a.pre_x,
                  <const floating *>a.pre_h, x, I, <const floating *>a.prev, a.ld_prev, c,
                  <floating *>a.out, a.ldo, <floating *>a.gates, <floating *>a.extra,
                  <floating *>a.next_h, a.next_rows, options)
    if a.n > k:
        cell_step(p.kind, phase, p.H, I, p.Hout, a.first_block, a.end_block, a.n - k,
                  <const floating *>a.packed_ih, <const floating *>a.packed_hh,
                  <const floating *>a.packed_bias, _rows_on(<void *>a.pre_x, k * GH, x),
                  _rows_on(<void *>a.pre_h, k * ldp, x), x + k * I, I,
                  <const floating *>a.rest, p.Hout, _rows_on(c, k * p.H, x),
                  _rows_on(a.out, k * a.ldo, x), a.ldo, _rows_on(a.gates, k * GH, x),
                  _rows_on(a.extra, k * p.E, x), _rows_on(a.next_h, k * p.H, x),
                  a.next_rows - k, options)


cdef inline void _keep_previous_states(const Plan *p, const Direction *dr, int d, int t,
                                       int s, int r0, int r1, int carried,
                                       const floating *prev, Py_ssize_t ld_prev,
                                       floating **next_h, int *next_rows) noexcept nogil:
    """Thread rows [r0, r1) of h_{t-1} onto the tape, which keeps them for
    the weight gradients. Without a projection, the previous step's kernel
    stored the carried rows there already (see next_h: where this step's
    kernel stores the rows the next step carries); the others come from the
    initial state."""
    cdef int Hout = p.Hout, n = <int>p.batch_sizes[t], next_t
    cdef Py_ssize_t off = p.offsets[t]
    cdef floating *h = <floating *>dr.h
    cdef floating *hprev = <floating *>dr.hprev
    cdef int lo = min(r1, carried)
    if lo > r0 and dr.w_hr != NULL:
        copy_rows(lo - r0, Hout, prev + r0 * ld_prev, ld_prev, hprev + (off + r0) * Hout, Hout)
    if s + 1 < p.T and dr.w_hr == NULL:
        next_t = t + 1 if in_time_order(p, d) else t - 1
        next_rows[0] = min(n, <int>p.batch_sizes[next_t])
        next_h[0] = hprev + p.offsets[next_t] * Hout
    lo = max(r0, carried)
    if r1 > lo:
        copy_rows(r1 - lo, Hout, h + lo * Hout, Hout, hprev + (off + lo) * Hout, Hout)


cdef inline void _finish_step(const Plan *p, const Direction *dr, floating *y, int d, int t,
                              int r0, int r1, const floating *out, int tid,
                              int threads) noexcept nogil:
    """After the cell: an LSTM's projection of m into y, and the rows whose
    sequence ends at step t handing their state to h_n."""
    cdef int H = p.H, Hout = p.Hout, DH = p.D * p.Hout, n = <int>p.batch_sizes[t]
    cdef int finished, lo
    cdef Py_ssize_t off = p.offsets[t]
    cdef floating *h = <floating *>dr.h
    if in_time_order(p, d):
        finished = <int>p.batch_sizes[t + 1] if t + 1 < p.T else 0
    else:
        finished = 0 if t == 0 else n
    if dr.w_hr != NULL:
        # One thread projects every row: BLAS's bits for a row depend on how
        # many rows it is given, and results must not depend on the threads.
        if tid == 0:
            gemm(False, True, n, Hout, H, <floating>1, out, H,
                 <const floating *>dr.w_hr, H, <floating>0, y + off * DH, DH)
            copy_rows(n - finished, Hout, y + (off + finished) * DH, DH,
                      h + finished * Hout, Hout)
        if threads > 1:  # the next step reads the projected rows
            omp_barrier()
    else:
        lo = max(finished, r0)
        if r1 > lo:
            copy_rows(r1 - lo, Hout, y + (off + lo) * DH, DH, h + lo * Hout, Hout)


cdef inline const floating *_state_products(const Plan *p, const Direction *dr, int n,
                                            int carried, const floating *prev,
                                            Py_ssize_t ld_prev, const floating *rest,
                                            int tid, int threads) noexcept nogil:
    """pre_h = h_{t-1} W_hh^T by BLAS (on thread 0, every thread waiting for
    it) for a step's n rows, returned (W_hh's first group of gates: the
    others wait for the step's reset gate): the carried rows from prev, the
    others from rest (rows Hout apart)."""
    cdef int GH = p.hh_first * p.H, Hout = p.Hout
    cdef floating *pre_h = <floating *>p.pre_h
    cdef const floating *w_hh = <const floating *>dr.w_hh
    if tid == 0:
        gemm(False, True, carried, GH, Hout, <floating>1, prev, <int>ld_prev, w_hh, Hout,
             <floating>0, pre_h, GH)
        gemm(False, True, n - carried, GH, Hout, <floating>1, rest, Hout, w_hh, Hout,
             <floating>0, pre_h + carried * GH, GH)
    if threads > 1:
        omp_barrier()
    return pre_h


cdef inline void _tape_rows(const Plan *p, const Direction *dr, int d, int t, int s, int r0,
                            int r1, const floating *prev, StepRows *a,
                            int threads) noexcept nogil:
    """Training: step t's rows of the tape (gates, extra) and its previous
    states (prev: the previous step's output), which the tape keeps (thread
    rows [r0, r1) copied there); the step then reads h_{t-1} from the tape."""
    cdef Py_ssize_t off = p.offsets[t]
    cdef floating *next_h = NULL
    a.gates = <floating *>dr.gates + off * p.G * p.H
    a.extra = <floating *>dr.extra + off * p.E if p.E else NULL
    _keep_previous_states(p, dr, d, t, s, r0, r1, a.carried, prev, p.D * p.Hout, &next_h,
                          &a.next_rows)
    a.next_h = next_h
    if threads > 1:
        omp_barrier()
    a.prev = <floating *>dr.hprev + off * p.Hout
    a.ld_prev = p.Hout
    a.rest = <floating *>dr.hprev + (off + a.carried) * p.Hout


cdef inline void _forward_step(const Plan *p, const Layer *ly, int d, const floating *x,
                               const floating *packed_ih, const floating *packed_hh,
                               const floating *packed_bias, int s, Py_ssize_t row0, int tid,
                               int threads) noexcept nogil:
    """Thread tid's share of step s: rows of the copies and of the
    projection, unit blocks of the cell; with several threads, a barrier
    wherever the next phase reads what other threads wrote. row0: the first
    row of the chunk whose input product pre_x holds (with blas_products)."""
    cdef const Direction *dr = &ly.dirs[d]
    cdef int H = p.H, Hout = p.Hout, DH = p.D * p.Hout
    cdef int blocks = packed_blocks(H, <floating *>NULL)
    cdef int t = s if in_time_order(p, d) else p.T - 1 - s
    cdef int n = <int>p.batch_sizes[t], r0 = tid * n // threads, r1 = (tid + 1) * n // threads
    cdef Py_ssize_t off = p.offsets[t]
    cdef floating *y = <floating *>ly.y + d * Hout
    cdef int prev_t = t - 1 if in_time_order(p, d) else t + 1
    cdef const floating *prev = NULL
    cdef StepRows a = StepRows(
        packed_ih=packed_ih, packed_hh=packed_hh, packed_bias=packed_bias, pre_x=NULL,
        pre_h=NULL, first_block=tid * blocks // threads,
        end_block=(tid + 1) * blocks // threads, in_size=ly.in_size, n=n, carried=0,
        next_rows=0, prev=NULL, ld_prev=DH, rest=NULL, out=y + off * DH, ldo=DH, gates=NULL,
        extra=NULL, next_h=NULL)
    # The state lives in y: each step reads the previous step's rows of y
    # (rows are sorted by length, so they are the first ones) and writes its
    # own, with no copy in between.
    if s > 0:
        a.carried = min(n, <int>p.batch_sizes[prev_t])
        prev = y + p.offsets[prev_t] * DH
        a.prev = prev
    a.rest = <floating *>dr.h + a.carried * Hout
    if p.reset_before and not p.training:  # the two phases' scratch rows
        a.gates, a.extra = dr.gates, dr.extra
    if p.training:
        _tape_rows(p, dr, d, t, s, r0, r1, prev, &a, threads)
    if dr.w_hr != NULL:  # the cell's output m is projected into y below
        a.out, a.ldo = <floating *>dr.m + (off * H if p.training else 0), H
    if p.blas_products:
        a.pre_x = <const floating *>p.pre_x + (off - row0) * p.G * H
        a.pre_h = _state_products(p, dr, n, a.carried, <const floating *>a.prev, a.ld_prev,
                                  <const floating *>a.rest, tid, threads)
    _step_blocks(p, dr, &a, x + off * ly.in_size, tid, threads)
    if threads > 1:
        omp_barrier()
    _finish_step(p, dr, y, d, t, r0, r1, <floating *>a.out, tid, threads)


cdef void _pack_direction(const Plan *p, const Layer *ly, const Direction *dr,
                          floating *packed_ih, floating *packed_hh,
                          floating *packed_bias) noexcept nogil:
    """The weights packed for the step kernel (unless a cached packing holds
    them) and, training, transposed for BPTT: made now for the tape to keep,
    as an optimizer may step the weights in place before backward runs."""
    cdef int H = p.H, Hout = p.Hout, GH = p.G * p.H, I = ly.in_size
    # W_hh's gates in the registry's groups (one, or two for the reset-before
    # GRU: W_h{r,z}, then W_hn): in both directions, the same number of
    # elements as one packing.
    cdef int G1 = p.hh_first
    cdef const floating *w_hh = <const floating *>dr.w_hh
    cdef floating *transposed = <floating *>dr.transposed
    if not dr.packed_ready:
        _pack_shared(p.num_threads, G1, H, Hout, w_hh, Hout, 1, packed_hh)
        if G1 < p.G:
            _pack_shared(p.num_threads, p.G - G1, H, Hout, w_hh + G1 * H * Hout, Hout, 1,
                         packed_hh + packed_elements(G1, H, Hout, <floating *>NULL))
        _pack_shared(p.num_threads, p.G, H, I, <const floating *>dr.w_ih, I, 1, packed_ih)
        pack_bias(p.kind, H, <const floating *>dr.bias_x, <const floating *>dr.bias_hn,
                  <const floating *>dr.peephole, packed_bias)
    if not p.training:
        return
    # W_hh, then W_ih from the same place in either form (as they are for
    # BLAS: its part of a packing is at least as large)
    cdef floating *transposed_ih = transposed + packed_elements(1, Hout, GH, <floating *>NULL)
    if p.blas_products:
        memcpy(transposed, w_hh, GH * Hout * sizeof(floating))
    else:
        _pack_shared(p.num_threads, 1, Hout, G1 * H, w_hh, 1, Hout, transposed)
        if G1 < p.G:
            _pack_shared(p.num_threads, 1, Hout, (p.G - G1) * H, w_hh + G1 * H * Hout, 1,
                         Hout, transposed + packed_elements(1, Hout, G1 * H,
                                                            <floating *>NULL))
    if ly.blas_gradients:
        memcpy(transposed_ih, dr.w_ih, GH * I * sizeof(floating))
    else:
        _pack_shared(p.num_threads, 1, I, GH, <const floating *>dr.w_ih, 1, I, transposed_ih)


cdef inline void _packed_parts(const Plan *p, const Direction *dr, int I, floating **hh,
                               floating **ih, floating **bias) noexcept nogil:
    """Where W_hh, W_ih and the biases lie in a direction's packed buffer
    (in that order: see _plan._packed_weights_size)."""
    hh[0] = <floating *>dr.packed
    ih[0] = hh[0] + packed_elements(p.G, p.H, p.Hout, <floating *>NULL)
    bias[0] = ih[0] + packed_elements(p.G, p.H, I, <floating *>NULL)


cdef int _input_products(const Plan *p, const Layer *ly, int d, const floating *x, int s0,
                         Py_ssize_t *row0, int tid) noexcept nogil:
    """pre_x = x W_ih^T by BLAS (on thread 0) for the chunk of steps that
    direction d visits from its s0-th; every thread gets the chunk's first
    row in row0 and the step after it as the result."""
    cdef bint ascending = in_time_order(p, d)
    cdef int s1 = chunk_end(p, ascending, s0), I = ly.in_size, GH = p.G * p.H
    cdef Py_ssize_t first = chunk_first_row(p, ascending, s0, s1)
    cdef Py_ssize_t end = p.offsets[s1] if ascending else p.offsets[p.T - s0]
    if tid == 0:
        gemm(False, True, <int>(end - first), GH, I, <floating>1,
             x + first * I, I, <const floating *>ly.dirs[d].w_ih, I,
             <floating>0, <floating *>p.pre_x, GH)
    row0[0] = first
    return s1


cdef void _forward_direction(const Plan *p, const Layer *ly, int d,
                             const floating *x) noexcept nogil:
    cdef const Direction *dr = &ly.dirs[d]
    # (initialized: parallel() copies them into each thread)
    cdef int H = p.H, Hout = p.Hout, GH = p.G * p.H, I = ly.in_size, s = 0, tid = 0, threads
    cdef int s1 = 0
    cdef Py_ssize_t row0 = 0
    cdef floating *packed_hh
    cdef floating *packed_ih
    cdef floating *packed_bias
    _packed_parts(p, dr, I, &packed_hh, &packed_ih, &packed_bias)
    _pack_direction(p, ly, dr, packed_ih, packed_hh, packed_bias)
    # One team for the whole loop (the first step has the most rows): each
    # thread takes a contiguous range of unit blocks of every step.
    threads = threads_for(p.num_threads, packed_blocks(H, <floating *>NULL),
                          <double>p.batch_sizes[0] * GH * (Hout + I))
    if threads > 1:
        with parallel(num_threads=threads):
            tid = threadid()
            s1 = 0
            for s in range(p.T):
                if p.blas_products and s == s1:
                    s1 = _input_products(p, ly, d, x, s, &row0, tid)
                    omp_barrier()
                _forward_step(p, ly, d, x, packed_ih, packed_hh, packed_bias, s, row0, tid,
                              threads)
    else:
        for s in range(p.T):
            if p.blas_products and s == s1:
                s1 = _input_products(p, ly, d, x, s, &row0, 0)
            _forward_step(p, ly, d, x, packed_ih, packed_hh, packed_bias, s, row0, 0, 1)


cdef void _run_forward(const Plan *p, const floating *first_x) noexcept nogil:
    cdef int l, d
    cdef const Layer *ly
    for l in range(p.L):
        ly = &p.layers[l]
        for d in range(p.D):
            _forward_direction(p, ly, d, <const floating *>ly.x)
        if ly.mask != NULL:
            multiply(p.N * p.D * p.Hout, <floating *>ly.y, <const floating *>ly.mask)


def run(object cell, bint training, bint reverse, const Py_ssize_t[::1] batch_sizes,
        const Py_ssize_t[::1] offsets, int hidden_size, int out_size, list layers,
        object dtype, int num_threads=1, object products=None):
    """The forward pass of `cell` (an entry of the registry, _cells.py) over
    the LayerBuffers of every layer, their arrays prepared by the Python
    layer: inference, or training (the buffers then include the tape);
    `reverse`: the layers' one direction runs from the last step;
    `products`: None, or the scratch (_plan.products_size) of the products
    that BLAS then runs (where _cpu.blas_runs_products)."""
    run_plan(cell, training, reverse, batch_sizes, offsets, hidden_size, out_size, layers, dtype,
             num_threads, None, products, _run_forward[float], _run_forward[double])


# -- a plan kept between calls (_forward.pxd) -----------------------------------
cdef void _pack_plan(Plan *p, const floating *real) noexcept nogil:
    cdef int l, d, I
    cdef Direction *dr
    cdef floating *packed_hh
    cdef floating *packed_ih
    cdef floating *packed_bias
    for l in range(p.L):
        I = p.layers[l].in_size
        for d in range(p.D):
            dr = &p.layers[l].dirs[d]
            _packed_parts(p, dr, I, &packed_hh, &packed_ih, &packed_bias)
            _pack_direction(p, &p.layers[l], dr, packed_ih, packed_hh, packed_bias)
            dr.packed_ready = True


cdef void pack_plan(Plan *p, bint single) noexcept nogil:
    """Packs the weights of every direction whose record did not bring them
    packed, and marks them packed: run_forward then only steps. (A training
    plan's transposed packing is made at every pass.)"""
    if single:
        _pack_plan[float](p, NULL)
    else:
        _pack_plan[double](p, NULL)


cdef void run_forward(const Plan *p, bint single) noexcept nogil:
    """The forward pass of a plan, in float32 (single) or float64."""
    if single:
        _run_forward[float](p, NULL)
    else:
        _run_forward[double](p, NULL)
