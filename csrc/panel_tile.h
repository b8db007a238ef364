/* The micro-kernel of the packed products (part of a template: see
 * instantiate.h for the macros it expects): R rows of x times one packed
 * panel, kept in R V-wide registers. The products of BPTT (packed_template.h)
 * store the registers; the LSTM's fused BPTT step (lstm_template.h) applies
 * the cell's backward to them first. */

/* acc[r] = sum_k x[r * xr + k * xk] panel[k * V .. k * V + V - 1] for the R
 * rows of a tile: xk = 1 for a row-major x, xr = 1 for the transpose of a
 * row-major array (as in a weight gradient). R is a compile-time constant
 * once inlined, so that acc stays in registers. */
static inline __attribute__((always_inline)) void
FN(panel_accumulate)(const int R, int K, const REAL *restrict panel, const REAL *restrict x,
                     ptrdiff_t xr, ptrdiff_t xk, FN(panel_vec) *restrict acc)
{
    const int V = (int)(CYRNN_PANEL_BYTES / sizeof(REAL));
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
        acc[r] = (FN(panel_vec)){0};
    for (int k = 0; k < K; ++k) {
        FN(panel_vec) w = *(const FN(panel_vec) *)(panel + (ptrdiff_t)k * V);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r)
            acc[r] += x[r * xr + k * xk] * w;
    }
}
