# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Backpropagation through time for every cell kind, run without the GIL
over every layer and direction of a plan (_plan.pyx), from the tape of a
training forward pass (_forward.pyx).

One packed product per step gives dL/dh_{t-1}; for a cell whose backward
is fused with it (the LSTM), the product runs the next step's cell backward
on its tiles. The pre-activations' gradients collect in chunks of whole
steps; once a chunk is complete, dx and the weight gradients are GEMMs over
its rows, which BLAS runs where it beats the kernels' packed products
(_cpu.blas_runs_gradients), each thread calling it on its share. Where
BLAS's vectors are wider than the kernels' (_cpu.blas_runs_products), BLAS
runs the per-step products too.
"""
from libc.string cimport memcpy, memset

from cython cimport floating
from cython.parallel cimport parallel, threadid

from cyrnn._blas cimport gemm
from cyrnn._kernels cimport (add_rows, cell_backward, copy_rows, gru_reset_before_reset,
                             lstm_backward_product, multiply, packed_blocks, packed_elements,
                             packed_product, peephole_gradient, weight_gradient_chunk)
from cyrnn._loops cimport omp_barrier, pack_share, threads_for
from cyrnn._plan cimport (Direction, Layer, Plan, chunk_end, chunk_first_row, in_time_order,
                          run_plan)


# BLAS's chunk products go in two pieces of columns or gate rows, whatever
# the thread count: OpenBLAS's AVX2 (Haswell) SGEMM rounds an element
# differently as the width of the call around it changes, so shares that
# follow the thread count made results depend on it (an AMD EPYC with
# OpenBLAS held to Haswell, dx and dW_ih of an LSTM). Each thread takes whole
# pieces, so a third thread and more wait for these products; two pieces cost
# one thread 0-2% of a level-1 training step (LSTM large 1.00x, medium
# 1.02x), four cost 4-7%.
cdef enum:
    BLAS_PIECES = 2


cdef inline int _piece_start(int n, int piece) noexcept nogil:
    """The first column (or row) of piece `piece` of n, in runs of 16 (a
    cache line of floats), so that threads write apart."""
    cdef int runs = (n + 15) // 16
    return min(n, piece * runs // BLAS_PIECES * 16)


cdef void _blas_gradient_chunk(const Plan *p, const Layer *ly, int d, Py_ssize_t row0,
                               int rows, bint accumulate, const floating *x, int tid,
                               int threads) noexcept nogil:
    """_gradient_chunk's products by BLAS (see _plan.pxd), thread tid's
    pieces of them, from the plain copy of W_ih the forward pass kept: dx
    (+)= dgx W_ih by columns, then by gate rows dW_ih (+)= dgx^T x, dW_hh
    (+)= dgh^T h_{t-1} and the biases' (+)= column sums of dg."""
    cdef int piece
    for piece in range(tid * BLAS_PIECES // threads, (tid + 1) * BLAS_PIECES // threads):
        _blas_gradient_piece(p, ly, d, row0, rows, accumulate, x, piece)


cdef void _blas_gradient_piece(const Plan *p, const Layer *ly, int d, Py_ssize_t row0,
                               int rows, bint accumulate, const floating *x,
                               int piece) noexcept nogil:
    cdef const Direction *dr = &ly.dirs[d]
    cdef int GH = p.G * p.H, Hout = p.Hout, I = ly.in_size, ldg = <int>p.ldg
    cdef int i0 = _piece_start(I, piece), i1 = _piece_start(I, piece + 1)
    cdef int g0 = _piece_start(GH, piece), g1 = _piece_start(GH, piece + 1)
    cdef const floating *dgx = <const floating *>dr.dgx
    cdef const floating *w_ih = <const floating *>dr.transposed + packed_elements(
        1, Hout, GH, <floating *>NULL)
    cdef floating beta = 1 if accumulate else 0
    if i1 > i0 and ly.dx != NULL:
        gemm(False, False, rows, i1 - i0, GH, <floating>1, dgx, ldg, w_ih + i0, I,
             <floating>(1 if d > 0 else 0), <floating *>ly.dx + row0 * I + i0, I)
    if g1 > g0:
        gemm(True, False, g1 - g0, I, rows, <floating>1, dgx + g0, ldg, x + row0 * I, I, beta,
             <floating *>dr.dw_ih + g0 * I, I)
        _state_weight_gradients(p, dr, row0, rows, beta, g0, g1)
        _column_sums(rows, g0, g1, dgx, ldg, <floating *>dr.db_ih, accumulate)
        if dr.dgh != dr.dgx:
            _column_sums(rows, g0, g1, <const floating *>dr.dgh, ldg, <floating *>dr.db_hh,
                         accumulate)


cdef inline void _state_weight_gradients(const Plan *p, const Direction *dr, Py_ssize_t row0,
                                         int rows, floating beta, int g0,
                                         int g1) noexcept nogil:
    """Gate rows [g0, g1) of dW_hh (+)= dgh^T by W_hh's input: h_{t-1} for
    its first group, r * h_{t-1} (on the tape) for the reset-before GRU's
    W_hn."""
    cdef const floating *dgh = <const floating *>dr.dgh
    cdef int Hout = p.Hout, ldg = <int>p.ldg, first = p.hh_first * p.H
    cdef int a = max(g0, first)
    if g0 < first:
        gemm(True, False, min(g1, first) - g0, Hout, rows, <floating>1, dgh + g0, ldg,
             <const floating *>dr.hprev + row0 * Hout, Hout, beta,
             <floating *>dr.dw_hh + g0 * Hout, Hout)
    if p.reset_before and g1 > a:
        gemm(True, False, g1 - a, Hout, rows, <floating>1, dgh + a, ldg,
             <const floating *>dr.extra + row0 * p.E, <int>p.E, beta,
             <floating *>dr.dw_hh + a * Hout, Hout)


cdef inline void _column_sums(int rows, int c0, int c1, const floating *a, Py_ssize_t lda,
                              floating *sums, bint accumulate) noexcept nogil:
    """sums[c0:c1] (=, or += if accumulate) the column sums of a[:, c0:c1]
    (rows of lda); nothing for sums NULL (a layer without biases)."""
    if sums == NULL:
        return
    if not accumulate:
        memset(sums + c0, 0, (c1 - c0) * sizeof(floating))
    add_rows(rows, c1 - c0, a + c0, lda, sums + c0, 0)


cdef inline void _gradient_chunk(const Plan *p, const Layer *ly, int d, floating *panels,
                                 Py_ssize_t row0, int rows, bint accumulate, int tid,
                                 int threads) noexcept nogil:
    """Thread tid's share of the work on a complete chunk of rows [row0,
    row0 + rows): by units, a peephole LSTM's peephole gradients; then dx,
    the weight and the bias gradients, by BLAS (_blas_gradient_chunk) or by
    the kernels (_packed_gradient_chunk)."""
    cdef const Direction *dr = &ly.dirs[d]
    if dr.dpeephole != NULL:  # read from the tape and dg in place
        peephole_gradient(rows, p.H, tid * p.H // threads, (tid + 1) * p.H // threads,
                          <const floating *>dr.dgx, p.ldg,
                          <const floating *>dr.gates + row0 * p.G * p.H,
                          <const floating *>dr.extra + row0 * p.E, <floating *>dr.dpeephole,
                          accumulate)
    if ly.blas_gradients:
        _blas_gradient_chunk(p, ly, d, row0, rows, accumulate, <const floating *>ly.x, tid,
                             threads)
    else:
        _packed_gradient_chunk(p, ly, d, panels, row0, rows, accumulate, tid, threads)


cdef inline void _packed_gradient_chunk(const Plan *p, const Layer *ly, int d,
                                        floating *panels, Py_ssize_t row0, int rows,
                                        bint accumulate, int tid, int threads) noexcept nogil:
    """_gradient_chunk's products by the kernels: thread tid's rows of dx =
    dgx W_ih (+= for the second direction, which reads the same input) by
    blocks of input units; then, by groups of gate rows, dW_ih (+)= dgx^T x,
    dW_hh (+)= dgh^T h_{t-1} and the bias gradients (+)= dg's column sums,
    reading dg in place (see the module's docstring). The chunk of x and of
    h_{t-1} is packed once, its blocks shared."""
    cdef const Direction *dr = &ly.dirs[d]
    cdef int GH = p.G * p.H, Hout = p.Hout, in_size = ly.in_size
    cdef int groups = packed_blocks(GH, <floating *>NULL)
    cdef int g0 = tid * groups // threads, g1 = (tid + 1) * groups // threads
    cdef int x_blocks = packed_blocks(in_size, <floating *>NULL)
    cdef const floating *packed_ih = <const floating *>dr.transposed + packed_elements(
        1, Hout, GH, <floating *>NULL)
    cdef floating *panels_x = panels
    cdef floating *panels_h = panels + packed_elements(1, in_size, rows, <floating *>NULL)
    cdef floating *panels_rh = panels_h + packed_elements(1, Hout, rows, <floating *>NULL)
    if ly.dx != NULL:  # NULL: the caller wants no dL/dx
        _product_blocks(in_size, GH, rows, packed_ih, <const floating *>dr.dgx, p.ldg,
                        <floating *>ly.dx + row0 * in_size, in_size, d > 0,
                        tid * x_blocks // threads, (tid + 1) * x_blocks // threads)
    pack_share(tid, threads, 1, in_size, rows, <const floating *>ly.x + row0 * in_size, 1,
               in_size, panels_x)
    pack_share(tid, threads, 1, Hout, rows, <const floating *>dr.hprev + row0 * Hout, 1, Hout,
               panels_h)
    if p.reset_before:  # W_hn's input: r * h_{t-1}, on the tape
        pack_share(tid, threads, 1, p.H, rows, <const floating *>dr.extra + row0 * p.E, 1,
                   p.H, panels_rh)
    if threads > 1:  # every thread reads all of the panels
        omp_barrier()
    if p.reset_before:
        _reset_before_weight_gradients(p, ly, dr, panels_x, panels_h, panels_rh, rows,
                                       accumulate, tid, threads)
    elif dr.dgh == dr.dgx:  # dW_ih and dW_hh share the pre-activations' gradients
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


cdef inline void _reset_before_weight_gradients(
        const Plan *p, const Layer *ly, const Direction *dr, const floating *panels_x,
        const floating *panels_h, const floating *panels_rh, int rows, bint accumulate,
        int tid, int threads) noexcept nogil:
    """_gradient_chunk's weight gradients for the reset-before GRU: W_hh's
    rows of r and z against h_{t-1}, those of n against r * h_{t-1}."""
    cdef int H = p.H, I = ly.in_size, Hout = p.Hout
    cdef int ga = packed_blocks(2 * H, <floating *>NULL), gb = packed_blocks(H, <floating *>NULL)
    cdef const floating *dg = <const floating *>dr.dgx
    cdef floating *db = <floating *>dr.db_ih
    weight_gradient_chunk(2 * H, tid * ga // threads, (tid + 1) * ga // threads, rows, dg,
                          p.ldg, I, panels_x, <floating *>dr.dw_ih, Hout, panels_h,
                          <floating *>dr.dw_hh, db, accumulate)
    weight_gradient_chunk(H, tid * gb // threads, (tid + 1) * gb // threads, rows, dg + 2 * H,
                          p.ldg, I, panels_x, <floating *>dr.dw_ih + 2 * H * I, H, panels_rh,
                          <floating *>dr.dw_hh + 2 * H * Hout,
                          db + 2 * H if db != NULL else NULL, accumulate)


cdef inline void _reset_before_products(const Plan *p, const Direction *dr, int t,
                                        Py_ssize_t row0, const floating *packed_hh, int tid,
                                        int threads) noexcept nogil:
    """BPTT's products of a reset-before GRU's step t, with its cell's second
    phase between them: d(r * h) = dn W_hn into dg's r block (by blocks of
    units), which becomes the reset gate's gradient as d(r * h) * r joins dh
    (by rows); then dL/dh_{t-1} += (dr, dz) W_h{r,z} (by blocks)."""
    cdef int H = p.H, n = <int>p.batch_sizes[t], blocks = packed_blocks(H, <floating *>NULL)
    cdef int b0 = tid * blocks // threads, b1 = (tid + 1) * blocks // threads
    cdef int r0 = tid * n // threads, r1 = (tid + 1) * n // threads
    cdef Py_ssize_t off = p.offsets[t]
    cdef floating *dg = <floating *>dr.dgx + (off - row0) * p.ldg
    cdef const floating *packed_hn = packed_hh + packed_elements(1, H, 2 * H, <floating *>NULL)
    if p.blas_products:  # packed_hh: W_hh as it is (see _pack_direction)
        if tid == 0:
            gemm(False, False, n, H, H, <floating>1, dg + 2 * H, <int>p.ldg,
                 packed_hh + 2 * H * H, H, <floating>0, dg, <int>p.ldg)
    else:
        _product_blocks(H, H, n, packed_hn, dg + 2 * H, p.ldg, dg, p.ldg, False, b0, b1)
    if threads > 1:
        omp_barrier()
    if r1 > r0:
        gru_reset_before_reset(r1 - r0, H, <const floating *>dr.gates + (off + r0) * 3 * H,
                               <const floating *>dr.hprev + (off + r0) * H,
                               <floating *>dr.dh + r0 * H, dg + r0 * p.ldg, p.ldg)
    if threads > 1:
        omp_barrier()
    if p.blas_products:
        if tid == 0:
            gemm(False, False, n, H, 2 * H, <floating>1, dg, <int>p.ldg, packed_hh, H,
                 <floating>1, <floating *>dr.dh, H)
    else:
        _product_blocks(H, 2 * H, n, packed_hh, dg, p.ldg, <floating *>dr.dh, H, True, b0, b1)


cdef void _gradient_chunk_alone(const Plan *p, const Layer *ly, int d, floating *panels,
                                Py_ssize_t row0, int rows, bint accumulate) noexcept nogil:
    """_gradient_chunk from a time loop on one thread: a team of its own when
    the chunk is big enough (a batch of one row, say, leaves the loop on one
    thread, but not the chunk's many rows)."""
    cdef int tid = 0, GH = p.G * p.H
    cdef int threads = threads_for(p.num_threads, packed_blocks(GH, <floating *>NULL),
                                    <double>GH * (2 * ly.in_size + p.Hout) * rows)
    if threads > 1:
        with parallel(num_threads=threads):
            tid = threadid()
            _gradient_chunk(p, ly, d, panels, row0, rows, accumulate, tid, threads)
    else:
        _gradient_chunk(p, ly, d, panels, row0, rows, accumulate, 0, 1)


cdef inline void _product_blocks(int H, int K, int n, const floating *packed,
                                 const floating *x, Py_ssize_t ldx, floating *out,
                                 Py_ssize_t ldo, bint accumulate, int first_block,
                                 int end_block) noexcept nogil:
    """The columns of unit blocks [first_block, end_block) of out (n, H; rows
    ldo apart) = (or +=) x (n, K; rows ldx apart) W^T, for W packed by
    pack_weights with G = 1."""
    packed_product(H, K, n, packed, first_block, end_block, x, ldx, out, ldo, accumulate)



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
    if w_hr != NULL:
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
    # dL/dh reaches the cell through the projection (dm) if there is one. A
    # cell that splits its gradients (the GRU) leaves the direct part z * dh
    # in dh; the product adds the part that flows back through the weights.
    cell_backward(p.kind, r1 - r0, H, gates, extra,
                  <const floating *>dr.hprev + (off + r0) * Hout,
                  <const floating *>dr.peephole,
                  (dm + r0 * H) if w_hr != NULL else dh + r0 * Hout, dc, dgx, dgh, p.ldg)


cdef inline void _state_gradients(const Plan *p, const Direction *dr, int d,
                                  const floating *dy, int t, int n, Py_ssize_t row0,
                                  bint fuse_next, const floating *packed_hh, int tid,
                                  int threads) noexcept nogil:
    """dL/dh_{t-1} from step t's gradients dgh (thread tid's share): the
    reset-before GRU's two products, the LSTM's product fused with the next
    step's cell backward (fuse_next), BLAS's product, or the kernels'."""
    cdef int GH = p.G * p.H, DH = p.D * p.Hout, blocks = packed_blocks(p.Hout, <floating *>NULL)
    cdef int following, cells
    cdef floating *dgh = <floating *>dr.dgh
    if p.reset_before:
        _reset_before_products(p, dr, t, row0, packed_hh, tid, threads)
    elif fuse_next:
        # dL/dh_{t'} = dg_t W_hh for the step t' visited next, and on the
        # same tiles t''s cell backward: its gates' gradients
        following = t - 1 if in_time_order(p, d) else t + 1
        cells = min(n, <int>p.batch_sizes[following])
        lstm_backward_product(p.H, tid * blocks // threads, (tid + 1) * blocks // threads,
                              n, cells, packed_hh, dgh + (p.offsets[t] - row0) * p.ldg,
                              p.ldg, dy + p.offsets[following] * DH, DH,
                              <const floating *>dr.gates + p.offsets[following] * GH,
                              <const floating *>dr.extra + p.offsets[following] * p.E,
                              <const floating *>dr.peephole, <floating *>dr.dc,
                              <floating *>dr.dh,
                              dgh + (p.offsets[following] - row0) * p.ldg)
    elif p.blas_products:  # packed_hh: W_hh as it is (see _pack_direction)
        if tid == 0:
            gemm(False, False, n, p.Hout, GH, <floating>1,
                 dgh + (p.offsets[t] - row0) * p.ldg, <int>p.ldg, packed_hh, p.Hout,
                 <floating>(1 if p.split_gradients else 0), <floating *>dr.dh, p.Hout)
    else:
        # dL/dh_{t-1} = (GRU: +=) dgh W_hh, by blocks of Hout units
        _product_blocks(p.Hout, GH, n, packed_hh, dgh + (p.offsets[t] - row0) * p.ldg, p.ldg,
                        <floating *>dr.dh, p.Hout, p.split_gradients,
                        tid * blocks // threads, (tid + 1) * blocks // threads)


cdef inline void _backward_step(const Plan *p, const Layer *ly, int d,
                                 const floating *packed_hh, floating *panels, int s, int s0,
                                 int s1, Py_ssize_t row0, int tid, int threads) noexcept nogil:
    """Thread tid's share of the s-th step direction d visits, in the chunk of
    steps [s0, s1) whose rows start at row0; the chunk's dx and weight
    gradients after its last step. With several threads, a barrier wherever the next
    phase reads what other threads wrote."""
    cdef bint forward_in_time = in_time_order(p, d)
    cdef int t = p.T - 1 - s if forward_in_time else s
    cdef Py_ssize_t end = p.offsets[p.T - s0] if forward_in_time else p.offsets[s1]
    cdef const Direction *dr = &ly.dirs[d]
    cdef int n = <int>p.batch_sizes[t], first = 0
    cdef const floating *dy = <const floating *>ly.dy + d * p.Hout
    # An LSTM's product runs the next step's cell on its tiles (_state_gradients):
    # not across a chunk's end, whose gradients still need these rows.
    cdef bint fused = p.fused_backward and dr.w_hr == NULL and not p.blas_products
    if fused and s > s0:  # the rows the previous step's product went on with
        first = min(n, <int>p.batch_sizes[t + 1 if forward_in_time else t - 1])
    if first < n:
        _backward_rows(p, dr, dy, t, row0, first, tid, threads)
        if threads > 1:
            omp_barrier()
    _state_gradients(p, dr, d, dy, t, n, row0, fused and s + 1 < s1, packed_hh, tid, threads)
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
    # BPTT visits the steps in the order opposite to the forward pass's
    cdef bint ascending = not in_time_order(p, d)
    # The weights the forward pass kept for BPTT (see _pack_direction): W_hh
    # transposed by blocks of its output units for dL/dh (as it is, for
    # BLAS, with blas_products), then W_ih the same way for dx, chunk by
    # chunk (as it is with the layer's blas_gradients).
    cdef const floating *packed_hh = <const floating *>dr.transposed
    cdef floating *panels = <floating *>p.packed
    # The first step has the most rows (they are sorted by length).
    threads = threads_for(p.num_threads, blocks, <double>p.batch_sizes[0] * Hout * GH)
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
                    s1 = chunk_end(p, ascending, s0)
                    row0 = chunk_first_row(p, ascending, s0, s1)
                _backward_step(p, ly, d, packed_hh, panels, s, s0, s1, row0, tid, threads)
    else:
        for s in range(p.T):
            if s == s1:
                s0 = s
                s1 = chunk_end(p, ascending, s0)
                row0 = chunk_first_row(p, ascending, s0, s1)
            _backward_step(p, ly, d, packed_hh, panels, s, s0, s1, row0, 0, 1)
    if dr.db_ih != NULL and dr.dgh == dr.dgx:  # both biases sit in the same pre-activations
        memcpy(dr.db_hh, dr.db_ih, GH * sizeof(floating))
    if dr.w_hr != NULL:
        gemm(True, False, Hout, p.H, <int>p.N, <floating>1, <const floating *>dr.dhall, Hout,
             <const floating *>dr.m, p.H, <floating>0, <floating *>dr.dw_hr, p.H)



cdef void _run_backward(const Plan *p, const floating *first_x) noexcept nogil:
    cdef int l, d
    cdef const Layer *ly
    for l in range(p.L - 1, -1, -1):
        ly = &p.layers[l]
        if ly.mask != NULL:
            multiply(p.N * p.D * p.Hout, <floating *>ly.dy, <const floating *>ly.mask)
        for d in range(p.D):
            _backward_direction(p, ly, d, <const floating *>ly.x)


def run(object cell, bint reverse, const Py_ssize_t[::1] batch_sizes,
        const Py_ssize_t[::1] offsets, int hidden_size, int out_size, list layers,
        object dtype, object packed, int num_threads=1):
    """BPTT of `cell` (an entry of the registry, _cells.py) over the
    LayerGradients of every layer, their arrays prepared by the Python
    layer; `packed` is the weight gradients' scratch."""
    run_plan(cell, True, reverse, batch_sizes, offsets, hidden_size, out_size, layers, dtype,
             num_threads, packed, None, _run_backward[float], _run_backward[double])
