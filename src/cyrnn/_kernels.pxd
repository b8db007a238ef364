# The C kernels of csrc/ and fused float/double wrappers over them, so that
# the time loops are written once for both types.
from cython cimport floating

cdef extern from "cyrnn_kernels.h" nogil:
    void cyrnn_cell_backward_f(int cell, int n, int H, const float *gates, const float *extra, const float *hprev, const float *peephole, float *dh, float *dc, float *dgx, float *dgh, Py_ssize_t ldg)
    void cyrnn_cell_backward_d(int cell, int n, int H, const double *gates, const double *extra, const double *hprev, const double *peephole, double *dh, double *dc, double *dgx, double *dgh, Py_ssize_t ldg)
    void cyrnn_peephole_gradient_f(int n, int H, int j0, int j1, const float *dg, Py_ssize_t ldg, const float *gates, const float *extra, float *dp, int accumulate)
    void cyrnn_peephole_gradient_d(int n, int H, int j0, int j1, const double *dg, Py_ssize_t ldg, const double *gates, const double *extra, double *dp, int accumulate)
    void cyrnn_lstm_backward_product_f(int H, int first_block, int end_block, int n, int cells, const float *packed, const float *dg, Py_ssize_t ldg, const float *dy, Py_ssize_t ldy, const float *gates, const float *extra, const float *peephole, float *dc, float *dh, float *dg_out)
    void cyrnn_lstm_backward_product_d(int H, int first_block, int end_block, int n, int cells, const double *packed, const double *dg, Py_ssize_t ldg, const double *dy, Py_ssize_t ldy, const double *gates, const double *extra, const double *peephole, double *dc, double *dh, double *dg_out)
    void cyrnn_copy_rows_f(int n, int w, const float *src, Py_ssize_t lds, float *dst, Py_ssize_t ldd)
    void cyrnn_copy_rows_d(int n, int w, const double *src, Py_ssize_t lds, double *dst, Py_ssize_t ldd)
    void cyrnn_add_rows_f(int n, int w, const float *src, Py_ssize_t lds, float *dst, Py_ssize_t ldd)
    void cyrnn_add_rows_d(int n, int w, const double *src, Py_ssize_t lds, double *dst, Py_ssize_t ldd)
    void cyrnn_multiply_f(Py_ssize_t n, float *a, const float *b)
    void cyrnn_multiply_d(Py_ssize_t n, double *a, const double *b)
    Py_ssize_t cyrnn_packed_size_f(int G, int H, int K)
    Py_ssize_t cyrnn_packed_size_d(int G, int H, int K)
    int cyrnn_packed_blocks_f(int H)
    int cyrnn_packed_blocks_d(int H)
    Py_ssize_t cyrnn_gradient_width_f(int GH)
    Py_ssize_t cyrnn_gradient_width_d(int GH)
    void cyrnn_pack_weights_f(int G, int H, int K, const float *w, Py_ssize_t row_stride, Py_ssize_t col_stride, float *packed)
    void cyrnn_pack_weights_d(int G, int H, int K, const double *w, Py_ssize_t row_stride, Py_ssize_t col_stride, double *packed)
    void cyrnn_pack_weight_blocks_f(int G, int H, int K, const float *w, Py_ssize_t row_stride, Py_ssize_t col_stride, int first_block, int end_block, float *packed)
    void cyrnn_pack_weight_blocks_d(int G, int H, int K, const double *w, Py_ssize_t row_stride, Py_ssize_t col_stride, int first_block, int end_block, double *packed)
    void cyrnn_packed_product_f(int H, int K, int n, const float *packed, int first_block, int end_block, const float *x, Py_ssize_t ldx, float *out, Py_ssize_t ldo, int accumulate)
    void cyrnn_packed_product_d(int H, int K, int n, const double *packed, int first_block, int end_block, const double *x, Py_ssize_t ldx, double *out, Py_ssize_t ldo, int accumulate)
    void cyrnn_gru_reset_before_reset_f(int n, int H, const float *gates, const float *hprev, float *dh, float *dg, Py_ssize_t ldg)
    void cyrnn_gru_reset_before_reset_d(int n, int H, const double *gates, const double *hprev, double *dh, double *dg, Py_ssize_t ldg)
    Py_ssize_t cyrnn_packed_bias_size_f(int cell, int H)
    Py_ssize_t cyrnn_packed_bias_size_d(int cell, int H)
    void cyrnn_pack_bias_f(int cell, int H, const float *bias, const float *bias_hn, const float *peephole, float *packed_bias)
    void cyrnn_pack_bias_d(int cell, int H, const double *bias, const double *bias_hn, const double *peephole, double *packed_bias)
    void cyrnn_cell_step_f(int cell, int phase, int H, int I, int Hout, int first_block, int end_block, int n, const float *packed_ih, const float *packed_hh, const float *packed_bias, const float *x, Py_ssize_t ldx, const float *h, Py_ssize_t ldh, float *c, float *out, Py_ssize_t ldo, float *gates, float *extra, float *next_h, int next_rows, int stream_tape)
    void cyrnn_cell_step_d(int cell, int phase, int H, int I, int Hout, int first_block, int end_block, int n, const double *packed_ih, const double *packed_hh, const double *packed_bias, const double *x, Py_ssize_t ldx, const double *h, Py_ssize_t ldh, double *c, double *out, Py_ssize_t ldo, double *gates, double *extra, double *next_h, int next_rows, int stream_tape)
    void cyrnn_weight_gradient_chunk_f(int M, int first_group, int end_group, int rows, const float *dg, Py_ssize_t ldg, int K1, const float *panels1, float *out1, int K2, const float *panels2, float *out2, float *db, int accumulate)
    void cyrnn_weight_gradient_chunk_d(int M, int first_group, int end_group, int rows, const double *dg, Py_ssize_t ldg, int K1, const double *panels1, double *out1, int K2, const double *panels2, double *out2, double *db, int accumulate)
    void cyrnn_sigmoid_f(Py_ssize_t n, const float *x, float *y)
    void cyrnn_sigmoid_d(Py_ssize_t n, const double *x, double *y)
    void cyrnn_tanh_f(Py_ssize_t n, const float *x, float *y)
    void cyrnn_tanh_d(Py_ssize_t n, const double *x, double *y)


cdef inline void cell_backward(int cell, int n, int H, const floating *gates,
                               const floating *extra, const floating *hprev,
                               const floating *peephole, floating *dh, floating *dc,
                               floating *dgx, floating *dgh, Py_ssize_t ldg) noexcept nogil:
    if floating is float:
        cyrnn_cell_backward_f(cell, n, H, gates, extra, hprev, peephole, dh, dc, dgx, dgh, ldg)
    else:
        cyrnn_cell_backward_d(cell, n, H, gates, extra, hprev, peephole, dh, dc, dgx, dgh, ldg)

cdef inline void peephole_gradient(int n, int H, int j0, int j1, const floating *dg,
                                   Py_ssize_t ldg, const floating *gates,
                                   const floating *extra, floating *dp,
                                   bint accumulate) noexcept nogil:
    if floating is float:
        cyrnn_peephole_gradient_f(n, H, j0, j1, dg, ldg, gates, extra, dp, accumulate)
    else:
        cyrnn_peephole_gradient_d(n, H, j0, j1, dg, ldg, gates, extra, dp, accumulate)

cdef inline void lstm_backward_product(int H, int first_block, int end_block, int n,
                                       int cells, const floating *packed, const floating *dg,
                                       Py_ssize_t ldg, const floating *dy, Py_ssize_t ldy,
                                       const floating *gates, const floating *extra,
                                       const floating *peephole, floating *dc, floating *dh,
                                       floating *dg_out) noexcept nogil:
    if floating is float:
        cyrnn_lstm_backward_product_f(H, first_block, end_block, n, cells, packed, dg, ldg,
                                      dy, ldy, gates, extra, peephole, dc, dh, dg_out)
    else:
        cyrnn_lstm_backward_product_d(H, first_block, end_block, n, cells, packed, dg, ldg,
                                      dy, ldy, gates, extra, peephole, dc, dh, dg_out)

cdef inline void copy_rows(int n, int w, const floating *src, Py_ssize_t lds,
                           floating *dst, Py_ssize_t ldd) noexcept nogil:
    if floating is float:
        cyrnn_copy_rows_f(n, w, src, lds, dst, ldd)
    else:
        cyrnn_copy_rows_d(n, w, src, lds, dst, ldd)

cdef inline void add_rows(int n, int w, const floating *src, Py_ssize_t lds,
                          floating *dst, Py_ssize_t ldd) noexcept nogil:
    if floating is float:
        cyrnn_add_rows_f(n, w, src, lds, dst, ldd)
    else:
        cyrnn_add_rows_d(n, w, src, lds, dst, ldd)

cdef inline void multiply(Py_ssize_t n, floating *a, const floating *b) noexcept nogil:
    if floating is float:
        cyrnn_multiply_f(n, a, b)
    else:
        cyrnn_multiply_d(n, a, b)

cdef inline int packed_blocks(int H, floating *kind) noexcept nogil:
    if floating is float:
        return cyrnn_packed_blocks_f(H)
    else:
        return cyrnn_packed_blocks_d(H)

cdef inline void pack_weights(int G, int H, int K, const floating *w, Py_ssize_t row_stride,
                              Py_ssize_t col_stride, floating *packed) noexcept nogil:
    if floating is float:
        cyrnn_pack_weights_f(G, H, K, w, row_stride, col_stride, packed)
    else:
        cyrnn_pack_weights_d(G, H, K, w, row_stride, col_stride, packed)

cdef inline void pack_weight_blocks(int G, int H, int K, const floating *w,
                                    Py_ssize_t row_stride, Py_ssize_t col_stride,
                                    int first_block, int end_block,
                                    floating *packed) noexcept nogil:
    if floating is float:
        cyrnn_pack_weight_blocks_f(G, H, K, w, row_stride, col_stride, first_block,
                                   end_block, packed)
    else:
        cyrnn_pack_weight_blocks_d(G, H, K, w, row_stride, col_stride, first_block,
                                   end_block, packed)

cdef inline void packed_product(int H, int K, int n, const floating *packed, int first_block,
                                int end_block, const floating *x, Py_ssize_t ldx,
                                floating *out, Py_ssize_t ldo,
                                bint accumulate) noexcept nogil:
    if floating is float:
        cyrnn_packed_product_f(H, K, n, packed, first_block, end_block, x, ldx, out, ldo,
                               accumulate)
    else:
        cyrnn_packed_product_d(H, K, n, packed, first_block, end_block, x, ldx, out, ldo,
                               accumulate)

cdef inline void gru_reset_before_reset(int n, int H, const floating *gates,
                                        const floating *hprev, floating *dh, floating *dg,
                                        Py_ssize_t ldg) noexcept nogil:
    if floating is float:
        cyrnn_gru_reset_before_reset_f(n, H, gates, hprev, dh, dg, ldg)
    else:
        cyrnn_gru_reset_before_reset_d(n, H, gates, hprev, dh, dg, ldg)

cdef inline Py_ssize_t packed_elements(int G, int H, int K, floating *kind) noexcept nogil:
    if floating is float:
        return cyrnn_packed_size_f(G, H, K)
    else:
        return cyrnn_packed_size_d(G, H, K)

cdef inline Py_ssize_t packed_bias_elements(int cell, int H, floating *kind) noexcept nogil:
    if floating is float:
        return cyrnn_packed_bias_size_f(cell, H)
    else:
        return cyrnn_packed_bias_size_d(cell, H)

cdef inline Py_ssize_t gradient_width(int GH, floating *kind) noexcept nogil:
    if floating is float:
        return cyrnn_gradient_width_f(GH)
    else:
        return cyrnn_gradient_width_d(GH)

cdef inline void pack_bias(int cell, int H, const floating *bias, const floating *bias_hn,
                           const floating *peephole, floating *packed_bias) noexcept nogil:
    if floating is float:
        cyrnn_pack_bias_f(cell, H, bias, bias_hn, peephole, packed_bias)
    else:
        cyrnn_pack_bias_d(cell, H, bias, bias_hn, peephole, packed_bias)

cdef inline void cell_step(int cell, int phase, int H, int I, int Hout, int first_block,
                           int end_block, int n, const floating *packed_ih, const floating *packed_hh,
                           const floating *packed_bias, const floating *x, Py_ssize_t ldx,
                           const floating *h, Py_ssize_t ldh, floating *c, floating *out,
                           Py_ssize_t ldo, floating *gates, floating *extra,
                           floating *next_h, int next_rows,
                           bint stream_tape) noexcept nogil:
    if floating is float:
        cyrnn_cell_step_f(cell, phase, H, I, Hout, first_block, end_block, n, packed_ih, packed_hh,
                          packed_bias, x, ldx, h, ldh, c, out, ldo, gates, extra, next_h,
                          next_rows, stream_tape)
    else:
        cyrnn_cell_step_d(cell, phase, H, I, Hout, first_block, end_block, n, packed_ih, packed_hh,
                          packed_bias, x, ldx, h, ldh, c, out, ldo, gates, extra, next_h,
                          next_rows, stream_tape)

cdef inline void weight_gradient_chunk(int M, int first_group, int end_group, int rows,
                                       const floating *dg, Py_ssize_t ldg,
                                       int K1, const floating *panels1, floating *out1,
                                       int K2, const floating *panels2, floating *out2,
                                       floating *db, bint accumulate) noexcept nogil:
    if floating is float:
        cyrnn_weight_gradient_chunk_f(M, first_group, end_group, rows, dg, ldg, K1, panels1,
                                      out1, K2, panels2, out2, db, accumulate)
    else:
        cyrnn_weight_gradient_chunk_d(M, first_group, end_group, rows, dg, ldg, K1, panels1,
                                      out1, K2, panels2, out2, db, accumulate)
