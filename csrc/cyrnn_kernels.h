/* Fused per-step kernels of the recurrent cells, for float (_f) and double (_d).
 *
 * Plain C99 that knows nothing of Python. Every kernel works on one time step
 * of `n` batch rows; all row blocks are contiguous, row-major, with the widths
 * given in the comments. The gate blocks are updated in place: they hold the
 * pre-activations (input projection plus biases) on entry and the activated
 * gates, which the backward pass reads, on exit.
 */
#ifndef CYRNN_KERNELS_H
#define CYRNN_KERNELS_H

#include <stddef.h>

#define CYRNN_DECLARE_KERNELS(REAL, SFX)                                        \
    /* LSTM, gates i,f,g,o (4H); extra = (c_{t-1}, tanh c_t) (2H). The      \
       forward kernels handle `units` units from where the pointers start;    \
       H stays the row stride (in blocks of H). */                            \
    void cyrnn_lstm_forward_##SFX(int n, int H, int units, REAL *gates,       \
                                  const REAL *hg, REAL *c, REAL *h,            \
                                  REAL *extra);                                \
    /* dh (H) -> dgates (4H); dc: dL/dc_t in, dL/dc_{t-1} out. */             \
    void cyrnn_lstm_backward_##SFX(int n, int H, const REAL *gates,            \
                                   const REAL *extra, const REAL *dh,          \
                                   REAL *dc, REAL *dgates);                    \
    /* GRU, gates r,z,n (3H); hg = W_hh h without bias; extra = W_hn h + b_hn \
       (H); hprev = h_{t-1}, h = h_t. */                                       \
    void cyrnn_gru_forward_##SFX(int n, int H, int units, REAL *gates,        \
                                 const REAL *hg, const REAL *b_hn,             \
                                 const REAL *hprev, REAL *h, REAL *extra);     \
    /* dh: dL/dh_t in, its direct part z * dh out (the rest arrives through   \
       dgh @ W_hh); dgx, dgh (3H) differ only in the n block. */              \
    void cyrnn_gru_backward_##SFX(int n, int H, const REAL *gates,             \
                                  const REAL *extra, const REAL *hprev,        \
                                  REAL *dh, REAL *dgx, REAL *dgh);             \
    /* Elman RNN: gates (H) become h_t, which is also written to h. */        \
    void cyrnn_rnn_tanh_forward_##SFX(int n, int H, int units, REAL *gates,   \
                                      const REAL *hg, REAL *h);                \
    void cyrnn_rnn_tanh_backward_##SFX(int n, int H, const REAL *gates,        \
                                       const REAL *dh, REAL *dgates);          \
    void cyrnn_rnn_relu_forward_##SFX(int n, int H, int units, REAL *gates,   \
                                      const REAL *hg, REAL *h);                \
    void cyrnn_rnn_relu_backward_##SFX(int n, int H, const REAL *gates,        \
                                       const REAL *dh, REAL *dgates);          \
    /* Row helpers; ld* are leading dimensions in elements. */                 \
    void cyrnn_fill_rows_##SFX(ptrdiff_t n, int w, const REAL *row, REAL *out);\
    void cyrnn_copy_rows_##SFX(int n, int w, const REAL *src, ptrdiff_t lds,   \
                               REAL *dst, ptrdiff_t ldd);                      \
    void cyrnn_add_rows_##SFX(int n, int w, const REAL *src, ptrdiff_t lds,    \
                              REAL *dst, ptrdiff_t ldd);                       \
    void cyrnn_column_sums_##SFX(ptrdiff_t n, int w, const REAL *a, REAL *out);\
    void cyrnn_multiply_##SFX(ptrdiff_t n, REAL *a, const REAL *b);            \
    /* Recurrent product with W (G*H, K) packed once: see packed_template.h */\
    ptrdiff_t cyrnn_packed_size_##SFX(int G, int H, int K);                    \
    int cyrnn_packed_blocks_##SFX(int H);                                      \
    void cyrnn_pack_weights_##SFX(int G, int H, int K, const REAL *w,          \
                                  ptrdiff_t row_stride, ptrdiff_t col_stride,  \
                                  REAL *packed);                               \
    void cyrnn_packed_product_##SFX(int G, int H, int K, int n,                \
                                    const REAL *packed, int block,             \
                                    const REAL *x, REAL *out, int accumulate); \
    /* Scalar activations, exported for testing their accuracy. */             \
    void cyrnn_sigmoid_##SFX(ptrdiff_t n, const REAL *x, REAL *y);            \
    void cyrnn_tanh_##SFX(ptrdiff_t n, const REAL *x, REAL *y);

CYRNN_DECLARE_KERNELS(float, f)
CYRNN_DECLARE_KERNELS(double, d)

#endif
