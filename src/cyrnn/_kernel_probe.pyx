# cython: boundscheck=False, wraparound=False
"""The C kernels one at a time, numpy in and out, for tests: the packed
product of BPTT, the weight-gradient product and one forward step of a cell,
each on weights packed as the time loops pack them. Not a public API: its
checks only keep the kernels inside the arrays (every size at least 1)."""
import numpy as np

from cyrnn._cells import PEEPHOLE_ROWS

from cython cimport floating

cimport numpy as cnp

from cyrnn._kernels cimport (cell_step, gradient_width, pack_bias, pack_weights,
                             packed_bias_elements, packed_blocks, packed_elements,
                             packed_product, weight_gradient_chunk, cyrnn_sigmoid_f,
                             cyrnn_sigmoid_d, cyrnn_tanh_f, cyrnn_tanh_d)

cnp.import_array()


def _require(bint holds, str what):
    if not holds:
        raise ValueError(what)


cdef object _packed(floating[:, ::1] w, int G, int H, bint transposed):
    """w (G*H, K) packed by unit blocks of H; transposed: w is (K, G*H)."""
    cdef int K = w.shape[0] if transposed else w.shape[1]
    out = np.empty(packed_elements(G, H, K, <floating *>NULL), np.asarray(w).dtype)
    cdef floating[::1] p = out
    if transposed:
        pack_weights(G, H, K, &w[0, 0], 1, G * H, &p[0])
    else:
        pack_weights(G, H, K, &w[0, 0], K, 1, &p[0])
    return out


cdef object _packed_hh(object cell, floating[:, ::1] w_hh, int H):
    """W_hh packed for the step in the registry's groups of gates, as the
    forward loops pack it."""
    cdef int first = 0, G
    parts = []
    for G in cell.recurrent_groups:
        parts.append(_packed(w_hh[first * H:(first + G) * H], G, H, False))
        first += G
    return np.concatenate(parts)


def product(floating[:, ::1] x, floating[:, ::1] w):
    """x @ w.T through the packed product: x (n, K), w (H, K)."""
    cdef int n = x.shape[0], K = x.shape[1], H = w.shape[0]
    _require(n > 0 and K > 0 and H > 0 and w.shape[1] == K, "x (n, K) and w (H, K)")
    cdef floating[::1] p = _packed(w, 1, H, False)
    out = np.empty((n, H), np.asarray(x).dtype)
    cdef floating[:, ::1] o = out
    packed_product(H, K, n, &p[0], 0, packed_blocks(H, <floating *>NULL), &x[0, 0], K,
                   &o[0, 0], H, False)
    return out


def weight_gradients(floating[:, ::1] dg, floating[:, ::1] x1, floating[:, ::1] x2):
    """(dg.T @ x1, dg.T @ x2, dg.sum(axis=0)) through the weight-gradient
    kernel, dg's rows padded as BPTT pads them. dg (rows, M), x1 (rows, K1),
    x2 (rows, K2)."""
    cdef int rows = dg.shape[0], M = dg.shape[1], K1 = x1.shape[1], K2 = x2.shape[1]
    _require(rows > 0 and M > 0 and K1 > 0 and K2 > 0 and x1.shape[0] == rows
             and x2.shape[0] == rows, "dg (rows, M), x1 (rows, K1), x2 (rows, K2)")
    dtype = np.asarray(dg).dtype
    cdef Py_ssize_t ldg = gradient_width(M, <floating *>NULL)
    padded = np.zeros((rows, ldg), dtype)
    padded[:, :M] = dg
    cdef floating[:, ::1] g = padded
    cdef floating[::1] p1 = _packed(x1, 1, K1, True), p2 = _packed(x2, 1, K2, True)
    out1, out2 = np.empty((M, K1), dtype), np.empty((M, K2), dtype)
    db = np.empty(M, dtype)
    cdef floating[:, ::1] o1 = out1, o2 = out2
    cdef floating[::1] b = db
    weight_gradient_chunk(M, 0, packed_blocks(M, <floating *>NULL), rows, &g[0, 0], ldg,
                          K1, &p1[0], &o1[0, 0], K2, &p2[0], &o2[0, 0], &b[0], False)
    return out1, out2, db


def step(object cell, floating[:, ::1] x, floating[:, ::1] h, floating[:, ::1] c,
         floating[:, ::1] w_ih, floating[:, ::1] w_hh, floating[::1] bias,
         floating[::1] bias_hn, floating[:, ::1] peephole, str given="none"):
    """One forward step of `cell` (an entry of the registry, _cells.py) on n
    rows: the new h (returned) and c (updated in place, for an LSTM). bias:
    the folded biases (G*H); bias_hn: the GRU's b_hn (H) and peephole: a
    peephole LSTM's (3, H), else unused. given: which products the kernel
    is handed done (by numpy here, by BLAS in the loops) rather than run
    itself: "none", "input" (x W_ih^T) or "both" (and h W_hh^T; for the
    two-phase GRU, h W_h{r,z}^T, then (r * h) W_hn^T)."""
    cdef int n = x.shape[0], I = x.shape[1], H = h.shape[1], G = cell.gates, kind = cell.kind
    _require(n > 0 and I > 0 and H > 0 and h.shape[0] == n
             and c.shape[0] == n and c.shape[1] == H and w_ih.shape[0] == G * H
             and w_ih.shape[1] == I and w_hh.shape[0] == G * H and w_hh.shape[1] == H
             and bias.shape[0] == G * H and bias_hn.shape[0] == H
             and peephole.shape[0] == PEEPHOLE_ROWS and peephole.shape[1] == H,
             "x (n, I), h and c (n, H), w_ih (G*H, I), w_hh (G*H, H), bias (G*H), "
             "bias_hn (H), peephole (3, H)")
    dtype = np.asarray(x).dtype
    cdef floating[::1] p_ih = _packed(w_ih, G, H, False), p_hh = _packed_hh(cell, w_hh, H)
    packed_b = np.empty(packed_bias_elements(kind, H, <floating *>NULL), dtype)
    cdef floating[::1] pb = packed_b
    pack_bias(kind, H, &bias[0], &bias_hn[0], &peephole[0, 0], &pb[0])
    out = np.empty((n, H), dtype)
    # the two-phase cell's scratch rows (the others' inference has no tape)
    gates, extra = np.empty((n, G * H), dtype), np.empty((n, max(cell.extra, 1) * H), dtype)
    cdef floating[:, ::1] o = out, g = gates, e = extra
    _require(given in ("none", "input", "both"), "given: none, input or both")
    w_hh_first = np.asarray(w_hh)[:cell.recurrent_groups[0] * H]
    pre_x = np.ascontiguousarray(np.asarray(x) @ np.asarray(w_ih).T)
    pre_h = np.ascontiguousarray(np.asarray(h) @ w_hh_first.T)
    cdef floating[:, ::1] px = pre_x, ph = pre_h
    cdef const floating *given_x = &px[0, 0] if given != "none" else NULL
    cdef const floating *given_h = &ph[0, 0] if given == "both" else NULL
    cdef int phase
    cdef list phases = [1, 2] if cell.reset_before else [0]
    for phase in phases:
        if phase == 2 and given == "both":  # (r * h) W_hn^T, r * h from phase 1
            pre_h = np.ascontiguousarray(extra[:, :H] @ np.asarray(w_hh)[2 * H:].T)
            ph = pre_h
            given_h = &ph[0, 0]
        cell_step(kind, phase, H, I, H, 0, packed_blocks(H, <floating *>NULL), n, &p_ih[0],
                  &p_hh[0], &pb[0], given_x, given_h, &x[0, 0], I, &h[0, 0], H, &c[0, 0],
                  &o[0, 0], H,
                  &g[0, 0] if cell.reset_before else NULL,
                  &e[0, 0] if cell.reset_before else NULL, NULL, 0, 0)
    return out


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
