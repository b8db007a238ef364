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

/* Rows [0, n) in tiles: as many of R rows as fit (R at most 16), then what
 * is left in at most three tiles (8, 4, then 3, 2 or 1 rows). Every tile
 * streams the block's weights once, so a ragged batch's odd rows must not
 * go one by one (a single-row tile costs nearly what a full one does).
 * TILE(RT, R0) runs the RT rows from R0; RT is a constant, as a tile's
 * registers need. */
#define CYRNN_ROW_TILES(R, n, TILE)                                            \
    do {                                                                       \
        int r0_ = 0, rest_;                                                    \
        for (; r0_ + (R) <= (n); r0_ += (R))                                   \
            TILE(R, r0_);                                                      \
        rest_ = (n) - r0_;                                                     \
        if ((R) > 8 && rest_ >= 8) {                                           \
            TILE(8, r0_);                                                      \
            r0_ += 8;                                                          \
            rest_ -= 8;                                                        \
        }                                                                      \
        if ((R) > 4 && rest_ >= 4) {                                           \
            TILE(4, r0_);                                                      \
            r0_ += 4;                                                          \
            rest_ -= 4;                                                        \
        }                                                                      \
        if ((R) > 3 && rest_ == 3)                                             \
            TILE(3, r0_);                                                      \
        else if ((R) > 2 && rest_ == 2)                                        \
            TILE(2, r0_);                                                      \
        else if (rest_ >= 1) /* R > 2 leaves 1 here; R = 2 leaves 1 at most */ \
            TILE(1, r0_);                                                      \
    } while (0)
