# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The time loops of every cell kind, forward (inference or training) and
backward (BPTT), run without the GIL over every layer and direction.

The Python layer validates, packs the batch and allocates every buffer; this
module only reads pointers out of them and loops. Sequences are packed as
torch's PackedSequence: rows sorted by length, step t owning the first
batch_sizes[t] rows, stored at rows offsets[t] ... of every (N, width) buffer.
One GEMM projects the inputs of all steps, one GEMM per step gives the
recurrent product, and the weight gradients are GEMMs over all steps.
"""
import numpy as np
cimport numpy as cnp
from cython cimport floating
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

from cyrnn._blas cimport gemm, gemm_parallel
from cython.parallel cimport prange
from cyrnn._kernels cimport (
    lstm_forward, lstm_backward, gru_forward, gru_backward, rnn_forward,
    rnn_backward, fill_rows, copy_rows, add_rows, column_sums, multiply,
    packed_blocks, packed_elements, pack_weights, packed_product,
    cyrnn_sigmoid_f, cyrnn_sigmoid_d, cyrnn_tanh_f, cyrnn_tanh_d,
    cyrnn_packed_size_f, cyrnn_packed_size_d)

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
    # forward buffers; the tape when training
    void *gates         # (N, G*H): projections in, activated gates out
    void *extra         # (N, E) tape, or (B, E) scratch at inference
    void *hprev         # (N, Hout) state before each step, training only
    void *m             # LSTM with projection: (N, H) tape or (B, H) scratch
    void *h             # (B, Hout) state: h0 in, h_n out
    void *c             # (B, H) LSTM cell state: c0 in, c_n out
    void *hg            # (B, G*H) scratch for the recurrent product
    void *hnext         # (B, H) scratch: the new state while the old is read
    # backward buffers
    void *dgx           # (N, G*H) gradients of the input-side pre-activations
    void *dgh           # (N, G*H) recurrent side; the same as dgx but for GRU
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
    int T, H, Hout, G, E, D, L
    void *packed        # scratch for W_hh packed by unit blocks
    Py_ssize_t B, N
    const Py_ssize_t *batch_sizes
    const Py_ssize_t *offsets
    Layer *layers


cdef void *_data(object arr, object dtype, Py_ssize_t size, str name) except? NULL:
    """Pointer to an internal buffer, after checking the Python layer built it
    as agreed; a failure here is a bug in cyrnn, never a user error."""
    if arr is None:
        return NULL
    if (not isinstance(arr, np.ndarray) or arr.dtype != dtype
            or not arr.flags.c_contiguous or arr.size != size):
        raise RuntimeError(f"cyrnn internal error: buffer {name!r} is malformed")
    return cnp.PyArray_DATA(<cnp.ndarray>arr)


cdef int _gate_count(int kind) noexcept:
    return 4 if kind == LSTM else (3 if kind == GRU else 1)


cdef int _extra_width(int kind, int H) noexcept:
    return 2 * H if kind == LSTM else (H if kind == GRU else 0)


def extra_width(int kind, int hidden_size):
    """Columns per packed row of a cell's extra tape (LSTM: c_{t-1} and
    tanh c_t; GRU: W_hn h + b_hn; RNN: none)."""
    return _extra_width(kind, hidden_size)


cdef Py_ssize_t _packed_size(int G, int H, int K, object dtype):
    return cyrnn_packed_size_f(G, H, K) if dtype == np.float32 else cyrnn_packed_size_d(G, H, K)


cdef Py_ssize_t _packed_size_for(int kind, int H, int Hout, object dtype, bint backward):
    # Forward multiplies by W_hh^T (units: G gates x H), backward by W_hh
    # (units: Hout, summed over all G*H pre-activations).
    if backward:
        return _packed_size(1, Hout, _gate_count(kind) * H, dtype)
    return _packed_size(_gate_count(kind), H, Hout, dtype)


def packed_size(int kind, int hidden_size, int out_size, object dtype, bint backward,
                list in_sizes):
    """Elements of the scratch buffer for weights packed by unit blocks: W_hh,
    and after it W_ih (forward: by gate units; backward: transposed, by input
    units), for the widest of the layers' in_sizes."""
    dtype = np.dtype(dtype)
    size = _packed_size_for(kind, hidden_size, out_size, dtype, backward)
    return size + max([_packed_w_ih_size(kind, hidden_size, k, dtype, backward)
                       for k in in_sizes] or [0])


cdef Py_ssize_t _packed_w_ih_size(int kind, int H, int in_size, object dtype, bint backward):
    if backward:
        return _packed_size(1, in_size, _gate_count(kind) * H, dtype)
    return _packed_size(_gate_count(kind), H, in_size, dtype)


cdef void _fill_plan(Plan *p, int kind, bint training, Py_ssize_t[::1] batch_sizes,
                     Py_ssize_t[::1] offsets, int H, int Hout, list layers,
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
    p.packed = _data(packed, dtype, packed.size, "packed")
    if packed.size < _packed_size_for(kind, H, Hout, dtype, backward):
        raise RuntimeError("cyrnn internal error: packed buffer too small")
    for l in range(p.L):
        spec = layers[l]
        n_dirs = len(spec["dirs"])
        p.D = n_dirs
        DH = n_dirs * Hout
        ly = &p.layers[l]
        ly.in_size = spec["x"].shape[1]
        if packed.size < (_packed_w_ih_size(kind, H, ly.in_size, dtype, backward)
                          + _packed_size_for(kind, H, Hout, dtype, backward)):
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
            rows = N if training else B
            dr.w_ih = _data(ds["w_ih"], dtype, GH * ly.in_size, "w_ih")
            dr.w_hh = _data(ds["w_hh"], dtype, GH * Hout, "w_hh")
            dr.w_hr = _data(ds.get("w_hr"), dtype, Hout * H, "w_hr")
            dr.bias_x = _data(ds["bias_x"], dtype, GH, "bias_x")
            dr.bias_hn = _data(ds.get("bias_hn"), dtype, H, "bias_hn")
            dr.gates = _data(ds["gates"], dtype, N * GH, "gates")
            dr.extra = _data(ds.get("extra"), dtype, rows * E, "extra")
            dr.hprev = _data(ds.get("hprev"), dtype, N * Hout, "hprev")
            dr.m = _data(ds.get("m"), dtype, rows * H, "m")
            dr.h = _data(ds["h"], dtype, B * Hout, "h")
            dr.c = _data(ds.get("c"), dtype, B * H, "c")
            dr.hg = _data(ds.get("hg"), dtype, B * GH, "hg")
            dr.hnext = _data(ds.get("hnext"), dtype, B * H, "hnext")
            if (training and dr.hprev == NULL) or (kind == LSTM and dr.c == NULL) \
                    or (kind == GRU and dr.bias_hn == NULL) \
                    or (E > 0 and dr.extra == NULL) or (dr.w_hr != NULL and dr.m == NULL):
                raise RuntimeError("cyrnn internal error: missing buffer")
            if not backward:
                if dr.hg == NULL or dr.hnext == NULL or p.packed == NULL:
                    raise RuntimeError("cyrnn internal error: missing buffer")
                continue
            dr.dgx = _data(ds["dgx"], dtype, N * GH, "dgx")
            dr.dgh = _data(ds["dgh"], dtype, N * GH, "dgh")
            dr.dhall = _data(ds.get("dhall"), dtype, N * Hout, "dhall")
            dr.dm = _data(ds.get("dm"), dtype, B * H, "dm")
            dr.dh = _data(ds["dh"], dtype, B * Hout, "dh")
            dr.dc = _data(ds.get("dc"), dtype, B * H, "dc")
            dr.dw_ih = _data(ds["dw_ih"], dtype, GH * ly.in_size, "dw_ih")
            dr.dw_hh = _data(ds["dw_hh"], dtype, GH * Hout, "dw_hh")
            dr.db_ih = _data(ds.get("db_ih"), dtype, GH, "db_ih")
            dr.db_hh = _data(ds.get("db_hh"), dtype, GH, "db_hh")
            dr.dw_hr = _data(ds.get("dw_hr"), dtype, Hout * H, "dw_hr")
            if (not training) or (kind == LSTM and dr.dc == NULL) or p.packed == NULL or \
                    (dr.w_hr != NULL and (dr.dhall == NULL or dr.dm == NULL or dr.dw_hr == NULL)):
                raise RuntimeError("cyrnn internal error: missing buffer")


cdef inline void _step_units(const Plan *p, const Direction *dr, const floating *packed_hh,
                             int first_block, int end_block, int n, floating *g,
                             const floating *h_in, floating *out,
                             floating *extra) noexcept nogil:
    """Recurrent product and cell of one step for a range of unit blocks: the
    products first, then one pass of the cell over the whole range, whose
    vector loops run long enough to be efficient."""
    cdef int H = p.H, V = <int>(64 // sizeof(floating)), block
    cdef int j0 = first_block * V
    cdef int units = min(end_block * V, H) - j0
    cdef floating *hg = <floating *>dr.hg
    for block in range(first_block, end_block):
        packed_product(p.G, H, p.Hout, n, packed_hh, block, h_in, hg, False)
    if p.kind == LSTM:
        lstm_forward(n, H, units, g + j0, hg + j0, <floating *>dr.c + j0, out + j0,
                     extra + j0)
    elif p.kind == GRU:
        gru_forward(n, H, units, g + j0, hg + j0, <const floating *>dr.bias_hn + j0,
                    h_in + j0, out + j0, extra + j0)
    else:
        rnn_forward(p.kind == RNN_RELU, n, H, units, g + j0, hg + j0, out + j0)


cdef void _packed_products(int max_threads, int G, int H, int K, int n,
                           const floating *packed, const floating *x, floating *out,
                           bint accumulate) noexcept nogil:
    """out (n, G*H) = (or +=) x (n, K) W^T over every unit block of W packed
    by pack_weights; threads share the blocks when there is enough work."""
    cdef int blocks = packed_blocks(H, <floating *>NULL), chunk, block
    cdef int threads = min(max_threads, blocks) if <double>n * G * H * K >= 1e6 else 1
    if threads > 1:
        for chunk in prange(threads, num_threads=threads, schedule="static"):
            for block in range(chunk * blocks // threads, (chunk + 1) * blocks // threads):
                packed_product(G, H, K, n, packed, block, x, out, accumulate)
    else:
        for block in range(blocks):
            packed_product(G, H, K, n, packed, block, x, out, accumulate)


cdef void _input_projection(const Plan *p, const Direction *dr, int in_size,
                            const floating *packed_ih, const floating *x, floating *gates,
                            int rows) noexcept nogil:
    """gates (rows, G*H) = x (rows, in_size) W_ih^T + the folded biases."""
    fill_rows(rows, p.G * p.H, <const floating *>dr.bias_x, gates)
    _packed_products(p.num_threads, p.G, p.H, in_size, rows, packed_ih, x, gates, True)


cdef void _forward_direction(const Plan *p, const Layer *ly, int d,
                             const floating *x) noexcept nogil:
    cdef const Direction *dr = &ly.dirs[d]
    cdef int H = p.H, Hout = p.Hout, GH = p.G * p.H, DH = p.D * p.Hout, n, s, t
    cdef int chunk, blocks = packed_blocks(H, <floating *>NULL), threads, chunk_steps, end
    cdef Py_ssize_t off, first_row, end_row
    cdef floating *packed_hh = <floating *>p.packed
    cdef floating *packed_ih = packed_hh + packed_elements(p.G, H, Hout, <floating *>NULL)
    cdef floating *gates = <floating *>dr.gates
    cdef floating *h = <floating *>dr.h
    cdef const floating *w_hr = <const floating *>dr.w_hr
    cdef floating *y = <floating *>ly.y + d * Hout
    cdef floating *g
    cdef floating *extra
    cdef floating *out
    cdef floating *h_in

    # W_hh, and W_ih after it, packed by unit blocks for this direction.
    pack_weights(p.G, H, Hout, <const floating *>dr.w_hh, Hout, 1, packed_hh)
    pack_weights(p.G, H, ly.in_size, <const floating *>dr.w_ih, ly.in_size, 1, packed_ih)
    # Input projections in chunks of steps taken just before they are used:
    # a chunk (about 128 rows) is still in cache when the cell reads it, where
    # one projection of all steps would go to memory and back (measured).
    chunk_steps = max(1, 128 // <int>p.B)

    for s in range(p.T):
        if s % chunk_steps == 0:
            end = min(s + chunk_steps, p.T)
            first_row = p.offsets[s] if d == 0 else p.offsets[p.T - end]
            end_row = p.offsets[end] if d == 0 else p.offsets[p.T - s]
            _input_projection(p, dr, ly.in_size, packed_ih, x + first_row * ly.in_size,
                              gates + first_row * GH, <int>(end_row - first_row))
        t = s if d == 0 else p.T - 1 - s
        n = <int>p.batch_sizes[t]
        off = p.offsets[t]
        g = gates + off * GH
        # Training keeps per-step rows for backward; inference reuses scratch.
        extra = <floating *>dr.extra + (off * p.E if p.training else 0)
        # The cell writes the new state elsewhere: other blocks still read h.
        out = (<floating *>dr.m + (off * H if p.training else 0)) if w_hr != NULL \
            else <floating *>dr.hnext
        h_in = h
        if p.training:
            h_in = <floating *>dr.hprev + off * Hout
            memcpy(h_in, h, n * Hout * sizeof(floating))
        # Threads pay off only when a step has enough work to share.
        # Each thread takes a contiguous range of unit blocks.
        threads = min(p.num_threads, blocks) if <double>n * GH * Hout >= 1e6 else 1
        if threads > 1:
            for chunk in prange(threads, num_threads=threads, schedule="static"):
                _step_units(p, dr, packed_hh, chunk * blocks // threads,
                            (chunk + 1) * blocks // threads, n, g, h_in, out, extra)
        else:
            _step_units(p, dr, packed_hh, 0, blocks, n, g, h_in, out, extra)
        if w_hr != NULL:
            gemm(False, True, n, Hout, H, <floating>1, out, H, w_hr, H,
                 <floating>0, h, Hout)
        else:
            copy_rows(n, H, out, H, h, Hout)
        copy_rows(n, Hout, h, Hout, y + off * DH, DH)


cdef void _backward_direction(const Plan *p, const Layer *ly, int d,
                              const floating *x) noexcept nogil:
    cdef const Direction *dr = &ly.dirs[d]
    cdef floating *packed_w
    cdef int H = p.H, Hout = p.Hout, GH = p.G * p.H, DH = p.D * p.Hout, n, s, t
    cdef int in_size = ly.in_size, N = <int>p.N
    cdef Py_ssize_t off
    cdef bint relu = p.kind == RNN_RELU
    cdef const floating *gates = <const floating *>dr.gates
    cdef const floating *extra = <const floating *>dr.extra
    cdef const floating *hprev = <const floating *>dr.hprev
    cdef const floating *w_hh = <const floating *>dr.w_hh
    cdef const floating *w_hr = <const floating *>dr.w_hr
    cdef const floating *dy = <const floating *>ly.dy + d * Hout
    cdef floating *dgx = <floating *>dr.dgx
    cdef floating *dgh = <floating *>dr.dgh
    cdef floating *dh = <floating *>dr.dh
    cdef floating *dc = <floating *>dr.dc
    cdef floating *dm = <floating *>dr.dm
    cdef floating *dhall = <floating *>dr.dhall

    pack_weights(1, Hout, GH, w_hh, 1, Hout, <floating *>p.packed)
    for s in range(p.T):
        t = p.T - 1 - s if d == 0 else s
        n = <int>p.batch_sizes[t]
        off = p.offsets[t]
        add_rows(n, Hout, dy + off * DH, DH, dh, Hout)
        if p.kind == LSTM:
            if w_hr != NULL:
                copy_rows(n, Hout, dh, Hout, dhall + off * Hout, Hout)
                gemm(False, False, n, H, Hout, <floating>1, dh, Hout, w_hr, H,
                     <floating>0, dm, H)
                lstm_backward(n, H, gates + off * GH, extra + off * p.E, dm, dc,
                              dgx + off * GH)
            else:
                lstm_backward(n, H, gates + off * GH, extra + off * p.E, dh, dc,
                              dgx + off * GH)
        elif p.kind == GRU:
            # The kernel leaves the direct part z * dh in dh; the product
            # below adds the part that flows back through the weights.
            gru_backward(n, H, gates + off * GH, extra + off * p.E,
                         hprev + off * Hout, dh, dgx + off * GH, dgh + off * GH)
        else:
            rnn_backward(relu, n, H, gates + off * GH, dh, dgx + off * GH)
        # dh (n, Hout) = (GRU: +=) dgh W_hh, with W_hh packed by Hout blocks
        _packed_products(p.num_threads, 1, Hout, GH, n, <const floating *>p.packed,
                         dgh + off * GH, dh, p.kind == GRU)

    gemm_parallel(p.num_threads, True, False, GH, in_size, N, <floating>1, dgx, GH, x,
                  in_size, <floating>0, <floating *>dr.dw_ih, in_size)
    gemm_parallel(p.num_threads, True, False, GH, Hout, N, <floating>1, dgh, GH, hprev,
                  Hout, <floating>0, <floating *>dr.dw_hh, Hout)
    if dr.db_ih != NULL:
        column_sums(p.N, GH, <const floating *>dgx, <floating *>dr.db_ih)
        if dgh == dgx:  # both biases sit in the same pre-activations
            memcpy(dr.db_hh, dr.db_ih, GH * sizeof(floating))
        else:
            column_sums(p.N, GH, <const floating *>dgh, <floating *>dr.db_hh)
    if w_hr != NULL:
        gemm(True, False, Hout, H, N, <floating>1, dhall, Hout,
             <const floating *>dr.m, H, <floating>0, <floating *>dr.dw_hr, H)
    # dx (N, in_size) = dgx W_ih, with W_ih packed by input units (it measured
    # faster than BLAS, which repacks dgx). Both directions read the same
    # input, so the second one accumulates.
    packed_w = <floating *>p.packed + packed_elements(1, Hout, GH, <floating *>NULL)
    pack_weights(1, in_size, GH, <const floating *>dr.w_ih, 1, in_size, packed_w)
    _packed_products(p.num_threads, 1, in_size, GH, N, packed_w, dgx, <floating *>ly.dx, d)


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


def run(int kind, bint training, bint backward, Py_ssize_t[::1] batch_sizes,
        Py_ssize_t[::1] offsets, int hidden_size, int out_size, list layers,
        object dtype, object packed=None, int num_threads=1):
    """Runs the forward pass (backward=False) or BPTT over buffers prepared by
    the Python layer; see Plan, Layer and Direction for what each holds."""
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
        if dtype == np.float32:
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
