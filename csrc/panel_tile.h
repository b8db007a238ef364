/* The micro-kernel of the packed products (part of a template: see
 * instantiate.h for the macros it expects): R rows of x times NB packed
 * panels (NB unit blocks side by side), kept in R x NB V-wide registers.
 * The products of BPTT (packed_template.h) store the registers; the LSTM's
 * fused BPTT step (lstm_template.h) applies the cell's backward to them
 * first. Several blocks per tile let a narrow vector reuse each value of x
 * it broadcasts: with AVX2's 8 floats and one block, a tile loaded nearly
 * as many values as it multiplied. */

/* acc[r][b] += sum_k x[r * xr + k * xk] panel_b[k * V .. k * V + V - 1] for
 * the R rows of a tile, panel_b = panel + b * stride: xk = 1 for a
 * row-major x, xr = 1 for the transpose of a row-major array (as in a
 * weight gradient). R and NB are compile-time constants once inlined, so
 * that acc stays in registers. */
static inline __attribute__((always_inline)) void
FN(panel_accumulate)(const int R, const int NB, int K, const REAL *restrict panel,
                     ptrdiff_t stride, const REAL *restrict x, ptrdiff_t xr, ptrdiff_t xk,
                     FN(panel_vec) acc[R][NB])
{
    const int V = (int)(CYRNN_PANEL_BYTES / sizeof(REAL));
    FN(panel_vec) w[NB]; /* out here: a variable-length array inside the loop
                            costs a stack adjustment every turn */
    CYRNN_K_LOOP
    for (int k = 0; k < K; ++k) {
        CYRNN_TILE_LOOP
        for (int b = 0; b < NB; ++b)
            w[b] = *(const FN(panel_vec) *)(panel + b * stride + (ptrdiff_t)k * V);
        /* see isa.h; only where xr is known to be 1 as this compiles (the
         * weight gradients): the other products' x strides rows by a run-time
         * ld, never 1, and a test of it would sit in their loops */
        if (CYRNN_SPLAT_FROM_VECTOR && __builtin_constant_p(xr) && xr == 1 && R == V) {
            FN(panel_vec) xs = *(const FN(panel_vec) *)(x + k * xk);
            CYRNN_TILE_LOOP
            for (int r = 0; r < R; ++r)
                CYRNN_TILE_LOOP
                for (int b = 0; b < NB; ++b)
                    acc[r][b] += xs[r] * w[b];
            continue;
        }
        CYRNN_TILE_LOOP
        for (int r = 0; r < R; ++r) {
            REAL s = x[r * xr + k * xk];
            CYRNN_TILE_LOOP
            for (int b = 0; b < NB; ++b)
                acc[r][b] += s * w[b];
        }
    }
}

/* The passes of the forward step over a packing of G gates: LSTM_PASSES
 * (isa.h) for the LSTM's four, else one. */
static inline int FN(gate_passes)(int G)
{
    return G == 4 ? CYRNN_LSTM_PASSES : 1;
}

/* acc = 0, for panel_accumulate to sum into */
static inline __attribute__((always_inline)) void
FN(panel_zero)(const int R, const int NB, FN(panel_vec) acc[R][NB])
{
    CYRNN_TILE_LOOP
    for (int r = 0; r < R; ++r)
        CYRNN_TILE_LOOP
        for (int b = 0; b < NB; ++b)
            acc[r][b] = (FN(panel_vec)){0};
}

/* Rows [0, n) in tiles: as many of R rows as fit (R at most 16), then what
 * is left in at most three tiles (8, 4, then 3, 2 or 1 rows). Every tile
 * streams the block's weights once, so a ragged batch's odd rows must not
 * go one by one (a single-row tile costs nearly what a full one does).
 * Where R is 5 to 7 and 1 or 2 rows are left, the last full tile and those
 * rows go as 4 and 3 or 4 and 4: with the LSTM's six, a batch of 32 rows
 * ended in a two-row tile that took 12% of an AVX-512 step's time for 6% of
 * its rows, its loads of weights outnumbering what L2 delivers.
 * TILE is an always-inline function called as TILE(RT, r0, ...): the RT
 * rows from r0, then this macro's other arguments. RT is a literal in each
 * call, as a tile's registers need. */
#define CYRNN_ROW_TILES(R, n, TILE, ...)                                       \
    do {                                                                       \
        const int fours_ = (R) > 4 && (R) < 8 ? 2 : 1;                         \
        int r0_ = 0, rest_, full_ = (n);                                       \
        if (fours_ > 1 && (n) > (R) && (n) % (R) != 0 && (n) % (R) <= 2)       \
            full_ -= (R);                                                      \
        for (; r0_ + (R) <= full_; r0_ += (R))                                 \
            TILE(R, r0_, __VA_ARGS__);                                         \
        rest_ = (n) - r0_;                                                     \
        if ((R) > 8 && rest_ >= 8) {                                           \
            TILE(8, r0_, __VA_ARGS__);                                         \
            r0_ += 8;                                                          \
            rest_ -= 8;                                                        \
        }                                                                      \
        for (int four_ = 0; (R) > 4 && four_ < fours_ && rest_ >= 4; ++four_) { \
            TILE(4, r0_, __VA_ARGS__);                                         \
            r0_ += 4;                                                          \
            rest_ -= 4;                                                        \
        }                                                                      \
        if ((R) > 3 && rest_ == 3)                                             \
            TILE(3, r0_, __VA_ARGS__);                                         \
        else if ((R) > 2 && rest_ == 2)                                        \
            TILE(2, r0_, __VA_ARGS__);                                         \
        else if (rest_ >= 1) /* R > 2 leaves 1 here; R = 2 leaves 1 at most */ \
            TILE(1, r0_, __VA_ARGS__);                                         \
    } while (0)

/* Unit blocks [first_block, end_block): groups of NB blocks side by side,
 * then (if PAIRS) pairs of the blocks left, then one by one, GROUP called
 * as GROUP(NBT, block, ...) for each: NBT blocks from `block`, then this
 * macro's other arguments. NBT is a literal in each call: a tile's sizes
 * must be constants for GCC to keep its accumulators out of a stack array.
 * Pairs serve tiles with one accumulator a block, where a single block has
 * too few of them to hide the multiplies' latency. */
#define CYRNN_GROUPS(NB, PAIRS, first_block, end_block, GROUP, ...)             \
    do {                                                                         \
        int block_ = (first_block);                                              \
        for (; block_ + (NB) <= (end_block); block_ += (NB))                     \
            GROUP(NB, block_, __VA_ARGS__);                                      \
        for (; (PAIRS) && (NB) > 2 && block_ + 2 <= (end_block); block_ += 2)    \
            GROUP(2, block_, __VA_ARGS__);                                       \
        for (; block_ < (end_block); ++block_)                                   \
            GROUP(1, block_, __VA_ARGS__);                                       \
    } while (0)

/* A group's rows [0, n) in tiles of R (CYRNN_ROW_TILES): TILE(RT, r0, NBT,
 * block, ...). */
#define CYRNN_GROUP_ROW_TILES(NBT, block, R, n, TILE, ...)                      \
    CYRNN_ROW_TILES(R, n, TILE, NBT, block, __VA_ARGS__)

/* A group's one tile of R rows from r0: TILE(R, r0, NBT, block, ...). */
#define CYRNN_GROUP_TILE(NBT, block, TILE, R, r0, ...) TILE(R, r0, NBT, block, __VA_ARGS__)

/* Unit blocks [first_block, end_block) of rows [0, n): CYRNN_GROUPS, each
 * group's rows in tiles of R (CYRNN_ROW_TILES). TILE is called as
 * TILE(RT, r0, NBT, block, ...), RT and NBT literals. */
#define CYRNN_BLOCK_GROUPS(NB, PAIRS, R, n, first_block, end_block, TILE, ...)     \
    CYRNN_GROUPS(NB, PAIRS, first_block, end_block, CYRNN_GROUP_ROW_TILES, R, n, TILE, \
                 __VA_ARGS__)
