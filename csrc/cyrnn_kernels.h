/* The C kernels of the recurrent cells, for float (_f) and double (_d).
 *
 * Plain C99 that knows nothing of Python. A step kernel works on one time
 * step of `n` batch rows, row-major, with the widths given in the comments.
 * Forward, one fused kernel per cell kind computes the pre-activations in
 * registers and applies the cell (step_template.h); it stores the activated
 * gates, which the backward kernels read.
 */
#ifndef CYRNN_KERNELS_H
#define CYRNN_KERNELS_H

#include <stddef.h>

#include "cyrnn_cells.h" /* the kinds: generated from the registry of cells */

/* cyrnn_cell_step's options, or-ed together. */
enum cyrnn_step_option {
    CYRNN_STEP_STREAM_TAPE = 1, /* store the tape past the caches */
    /* W_hh is finite, so that a product with a zero of h is exactly zero:
       a relu step may skip them (where the level gains by it, isa.h) */
    CYRNN_STEP_SKIP_ZEROS = 2
};

#define CYRNN_DECLARE_KERNELS(REAL, SFX)                                        \
    /* Backward steps. The pre-activations' gradients (dgates, dg, dgx,   \
       dgh) have rows ldg apart: see cyrnn_gradient_width. LSTM, gates     \
       i,f,g,o (4H); extra = (c_{t-1}, tanh c_t) (2H); dh (H) -> dgates     \
       (4H); dc: dL/dc_t in, dL/dc_{t-1} out; peephole (3H: i, f, o) or     \
       NULL. */                                                               \
    void cyrnn_lstm_backward_##SFX(int n, int H, const REAL *gates,            \
                                   const REAL *extra, const REAL *peephole,    \
                                   const REAL *dh, REAL *dc, REAL *dgates,     \
                                   ptrdiff_t ldg);                             \
    /* The peephole weights' gradients (3H) for units [j0, j1) of n rows.  \
       */                                                                     \
    void cyrnn_peephole_gradient_##SFX(int n, int H, int j0, int j1,           \
                                       const REAL *dg, ptrdiff_t ldg,          \
                                       const REAL *gates, const REAL *extra,   \
                                       REAL *dp, int accumulate);              \
    /* BPTT's cell step of any kind: the kernel of its cell, below. */        \
    void cyrnn_cell_backward_##SFX(int cell, int n, int H, const REAL *gates,  \
                                   const REAL *extra, const REAL *hprev,       \
                                   const REAL *peephole, REAL *dh, REAL *dc,   \
                                   REAL *dgx, REAL *dgh, ptrdiff_t ldg);       \
    /* The product dL/dh = dg W_hh of BPTT's step fused with the next        \
       step's cell backward, for an LSTM without projection: see           \
       lstm_template.h. */                                                     \
    void cyrnn_lstm_backward_product_##SFX(int H, int first_block,            \
                                           int end_block, int n, int cells,   \
                                           const REAL *packed, const REAL *dg,\
                                           ptrdiff_t ldg, const REAL *dy,     \
                                           ptrdiff_t ldy, const REAL *gates,  \
                                           const REAL *extra,                 \
                                           const REAL *peephole, REAL *dc,    \
                                           REAL *dh, REAL *dg_out);           \
    /* GRU, gates r,z,n (3H); extra = W_hn h + b_hn (H); hprev = h_{t-1};  \
       dh: dL/dh_t in, its direct part z * dh out (the rest arrives through   \
       dgh @ W_hh); dgx, dgh (3H) differ only in the n block. */              \
    void cyrnn_gru_backward_##SFX(int n, int H, const REAL *gates,             \
                                  const REAL *extra, const REAL *hprev,        \
                                  REAL *dh, REAL *dgx, REAL *dgh,              \
                                  ptrdiff_t ldg);                              \
    /* GRU_RESET_BEFORE: the cell's backward in two phases around the      \
       product d(r * h) = dn W_hn, which the first leaves in dg's n block  \
       and the second reads from its r block: see                          \
       gru_reset_before_template.h. */                                      \
    void cyrnn_gru_reset_before_backward_##SFX(int n, int H, const REAL *gates, \
                                               const REAL *hprev, REAL *dh,    \
                                               REAL *dg, ptrdiff_t ldg);       \
    void cyrnn_gru_reset_before_reset_##SFX(int n, int H, const REAL *gates,   \
                                            const REAL *hprev, REAL *dh,       \
                                            REAL *dg, ptrdiff_t ldg);          \
    /* Elman RNN: gates (H) hold h_t. */                                      \
    void cyrnn_rnn_tanh_backward_##SFX(int n, int H, const REAL *gates,        \
                                       const REAL *dh, REAL *dgates,           \
                                       ptrdiff_t ldg);                         \
    void cyrnn_rnn_relu_backward_##SFX(int n, int H, const REAL *gates,        \
                                       const REAL *dh, REAL *dgates,           \
                                       ptrdiff_t ldg);                         \
    /* Row helpers; ld* are leading dimensions in elements. */                 \
    void cyrnn_copy_rows_##SFX(int n, int w, const REAL *src, ptrdiff_t lds,   \
                               REAL *dst, ptrdiff_t ldd);                      \
    void cyrnn_add_rows_##SFX(int n, int w, const REAL *src, ptrdiff_t lds,    \
                              REAL *dst, ptrdiff_t ldd);                       \
    void cyrnn_multiply_##SFX(ptrdiff_t n, REAL *a, const REAL *b);            \
    /* 1 where all n values of a are finite (no Inf, no NaN), else 0. */     \
    int cyrnn_all_finite_##SFX(ptrdiff_t n, const REAL *a);                    \
    /* Recurrent product with W (G*H, K) packed once: see packed_template.h */\
    ptrdiff_t cyrnn_packed_size_##SFX(int G, int H, int K);                    \
    int cyrnn_packed_blocks_##SFX(int H);                                      \
    ptrdiff_t cyrnn_gradient_width_##SFX(int GH);                              \
    void cyrnn_pack_weights_##SFX(int G, int H, int K, const REAL *w,          \
                                  ptrdiff_t row_stride, ptrdiff_t col_stride,  \
                                  REAL *packed);                               \
    void cyrnn_pack_weight_blocks_##SFX(int G, int H, int K, const REAL *w,    \
                                        ptrdiff_t row_stride,                  \
                                        ptrdiff_t col_stride, int first_block, \
                                        int end_block, REAL *packed);          \
    void cyrnn_packed_product_##SFX(int H, int K, int n, const REAL *packed,   \
                                    int first_block, int end_block,            \
                                    const REAL *x, ptrdiff_t ldx, REAL *out,   \
                                    ptrdiff_t ldo, int accumulate);            \
    /* One fused step (pre-activations in registers, then the cell) for unit \
       blocks [first_block, end_block) of rows 0..n-1: see step_template.h.  \
       x (ldx), h = h_{t-1} (ldh), out = the new h, or m for an LSTM with a   \
       projection (ldo); c (H) the LSTM's cell state, in place; gates (G*H)  \
       and extra (LSTM 2H, GRU H) the tape, or NULL for inference; rows    \
       below next_rows also store the new h to next_h (rows H apart: the    \
       next step's h_{t-1} on the tape); options: cyrnn_step_option's.     \
       phase: 0 for a one-phase cell; a two-phase cell         \
       (GRU_RESET_BEFORE) takes 1 then 2, every thread's phase 1 of the     \
       step done before any phase 2, with gates and extra (its tape, or   \
       scratch rows for inference) never NULL. pre_x, pre_h: NULL, or the  \
       input's (x W_ih^T) or the state's (h W_hh^T) product, done outside   \
       (by BLAS), rows G*H apart from row 0 of the step, gates in W's     \
       order; the step then skips that product. GRU_RESET_BEFORE's pre_h:  \
       h W_h{r,z}^T (2H) in phase 1, (r * h) W_hn^T (H) in phase 2. */       \
    ptrdiff_t cyrnn_packed_bias_size_##SFX(int cell, int H);                   \
    void cyrnn_pack_bias_##SFX(int cell, int H, const REAL *bias,              \
                               const REAL *bias_hn, const REAL *peephole,      \
                               REAL *packed_bias);                             \
    void cyrnn_cell_step_##SFX(int cell, int phase, int H, int in_size,        \
                               int Hout,                                       \
                               int first_block, int end_block, int n,          \
                               const REAL *packed_ih, const REAL *packed_hh,   \
                               const REAL *packed_bias, const REAL *pre_x,     \
                               const REAL *pre_h, const REAL *x,               \
                               ptrdiff_t ldx, const REAL *h, ptrdiff_t ldh,    \
                               REAL *c, REAL *out, ptrdiff_t ldo,              \
                               REAL *gates, REAL *extra, REAL *next_h,         \
                               int next_rows, int options);                    \
    /* Weight gradients out1 (M, K1) = dg^T X1 and out2 (M, K2) = dg^T X2  \
       and the bias gradient db (M) = dg's column sums, unless NULL (=, or  \
       += if accumulate) over one chunk of rows of dg (rows ldg apart), for  \
       the gate rows of groups [first_group, end_group); see              \
       packed_template.h. */                                                  \
    void cyrnn_weight_gradient_chunk_##SFX(int M, int first_group,            \
                                           int end_group, int rows,           \
                                           const REAL *dg, ptrdiff_t ldg,     \
                                           int K1,                            \
                                           const REAL *panels1, REAL *out1,   \
                                           int K2, const REAL *panels2,       \
                                           REAL *out2, REAL *db,              \
                                           int accumulate);                   \
    /* The step kernel's activations, exported for testing their accuracy. */\
    void cyrnn_sigmoid_##SFX(ptrdiff_t n, const REAL *x, REAL *y);            \
    void cyrnn_tanh_##SFX(ptrdiff_t n, const REAL *x, REAL *y);

CYRNN_DECLARE_KERNELS(float, f)
CYRNN_DECLARE_KERNELS(double, d)

#endif
