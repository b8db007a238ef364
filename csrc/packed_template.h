/* Weights packed once per pass, and the products of BPTT with them
 * (template, see instantiate.h).
 *
 * BLAS repacks its right operand on every call; a recurrence multiplies by
 * the same W_hh at every step, so packing it once and streaming it from
 * cache pays. The packed layout serves one block of V units at a time with
 * all G gates of those units together, so a block's output is exactly what
 * a cell needs for those units:
 *
 *   packed[((block * K + k) * G + g) * V + v] = W[g * H + block * V + v][k]
 *
 * (zero past H), or in passes of gates where the level's LSTM step takes
 * them so (packed_offset). The forward step multiplies by it in
 * step_template.h; the single-gate (G = 1) product here serves BPTT (dL/dh,
 * dx and the weight gradients). Its micro-kernel keeps R V-wide vectors in
 * registers, R chosen per instruction set. Written with GCC vector
 * extensions, it compiles to AVX-512, AVX2 or SSE from one source. */

#ifndef CYRNN_ENTRY_POINTS

#define V ((int)(CYRNN_PANEL_BYTES / sizeof(REAL)))
/* Rows of w a pass of the contiguous packing takes (see below) */
#define CYRNN_PACK_ROWS 16

static ptrdiff_t FN(cyrnn_packed_size)(int G, int H, int K)
{
    ptrdiff_t blocks = (H + V - 1) / V;
    return blocks * K * G * V;
}

/* Where gate g of unit block `block` starts at k, in a packing of G
 * gates over K. With the step's gates in S passes (gate_passes), each
 * pass's G / S gates lie side by side over all of K, one pass after the
 * other; the next k is then G / S vectors on. */
static inline ptrdiff_t FN(packed_offset)(int G, int K, int block, int k, int g)
{
    int S = FN(gate_passes)(G), Gs = G / S;
    if (S == 1)
        return (((ptrdiff_t)block * K + k) * G + g) * V;
    return ((((ptrdiff_t)block * S + g / Gs) * K + k) * Gs + g % Gs) * V;
}

/* A V x V tile transposed in registers: log2(V) stages, each swapping the
 * off-diagonal d x d blocks of every 2d x 2d block, two rows at a time, by
 * shuffles of constant lanes (GCC from 12 and clang spell them
 * __builtin_shufflevector, older GCC __builtin_shuffle). Element (v, k)
 * has the bits of v and k that differ swapped at every stage, so it ends
 * at (k, v). */
#define CYRNN_LANES (CYRNN_PANEL_BYTES / (4 << CYRNN_DOUBLE))
#if CYRNN_LANES == 16
#define CYRNN_LANE_LIST(F, d) F(0, d), F(1, d), F(2, d), F(3, d), F(4, d), F(5, d), \
    F(6, d), F(7, d), F(8, d), F(9, d), F(10, d), F(11, d), F(12, d), F(13, d),   \
    F(14, d), F(15, d)
#elif CYRNN_LANES == 8
#define CYRNN_LANE_LIST(F, d) F(0, d), F(1, d), F(2, d), F(3, d), F(4, d), F(5, d), \
    F(6, d), F(7, d)
#elif CYRNN_LANES == 4
#define CYRNN_LANE_LIST(F, d) F(0, d), F(1, d), F(2, d), F(3, d)
#else
#define CYRNN_LANE_LIST(F, d) F(0, d), F(1, d)
#endif
/* lane c of the rows i (bit d of i clear) and i + d after stage d, as
 * indices into the pair (i's lanes, then i + d's) */
#define CYRNN_LOWER_LANE(c, d) ((c) & (d) ? CYRNN_LANES + (c) - (d) : (c))
#define CYRNN_UPPER_LANE(c, d) ((c) & (d) ? CYRNN_LANES + (c) : (c) + (d))
#if defined(__clang__) || __GNUC__ >= 12
#define CYRNN_SHUFFLE(a, b, LANE, d) __builtin_shufflevector(a, b, CYRNN_LANE_LIST(LANE, d))
#else
#define CYRNN_SHUFFLE(a, b, LANE, d) \
    __builtin_shuffle(a, b, (FN(panel_bits)){CYRNN_LANE_LIST(LANE, d)})
#endif
#define CYRNN_TRANSPOSE_STAGE(t, d)                                            \
    CYRNN_TILE_LOOP                                                            \
    for (int i_ = 0; i_ < V; ++i_)                                             \
        if (!(i_ & (d))) {                                                     \
            FN(panel_vec) a_ = t[i_], b_ = t[i_ + (d)];                        \
            t[i_] = CYRNN_SHUFFLE(a_, b_, CYRNN_LOWER_LANE, d);                \
            t[i_ + (d)] = CYRNN_SHUFFLE(a_, b_, CYRNN_UPPER_LANE, d);          \
        }

/* dst[k * kstep + v] = src[v * ld + k] for k < kn and v < V, zero for the
 * rows v >= units (past H): one tile of the packing of a row-major W. Value
 * by value (about 3 a ns), a training step of an LSTM at T = B = 1, I = 64,
 * H = 128 took 88 us at AVX-512 against 74 with these tiles; a small one
 * (T = 50, B = 16) 1% longer. */
static inline __attribute__((always_inline)) void
FN(transpose_tile)(const REAL *restrict src, ptrdiff_t ld, int units, int kn,
                   REAL *restrict dst, ptrdiff_t kstep)
{
    FN(panel_vec) t[V];
    CYRNN_TILE_LOOP
    for (int v = 0; v < V; ++v)
        t[v] = v < units ? FN(load_units)(src + v * ld, kn) : (FN(panel_vec)){0};
#if CYRNN_LANES >= 16
    CYRNN_TRANSPOSE_STAGE(t, 8)
#endif
#if CYRNN_LANES >= 8
    CYRNN_TRANSPOSE_STAGE(t, 4)
#endif
#if CYRNN_LANES >= 4
    CYRNN_TRANSPOSE_STAGE(t, 2)
#endif
    CYRNN_TRANSPOSE_STAGE(t, 1)
    CYRNN_TILE_LOOP
    for (int k = 0; k < V; ++k)
        if (k < kn)
            *(FN(panel_vec) *)(dst + k * kstep) = t[k];
}
#undef CYRNN_TRANSPOSE_STAGE
#undef CYRNN_SHUFFLE
#undef CYRNN_UPPER_LANE
#undef CYRNN_LOWER_LANE
#undef CYRNN_LANE_LIST
#undef CYRNN_LANES

/* w[(g * H + unit) * row_stride + k * col_stride]: (G*H, K) row-major with
 * strides (K, 1), or its transpose (K, G*H) with strides (1, G*H). Packs
 * unit blocks [first_block, end_block) into their place in `packed`, so that
 * threads can share the packing. */
static void FN(cyrnn_pack_weight_blocks)(int G, int H, int K, const REAL *restrict w,
                                         ptrdiff_t row_stride, ptrdiff_t col_stride,
                                         int first_block, int end_block,
                                         REAL *restrict packed)
{
    /* (the next k: the gates of one pass on) */
    const ptrdiff_t kstep = (ptrdiff_t)G / FN(gate_passes)(G) * V;
    if (row_stride == 1) {
        /* Units are contiguous in w: read it in memory order, V units at a
         * time, CYRNN_PACK_ROWS values of k at once. Going down a whole
         * column instead strides by whole rows, which the prefetchers do
         * not follow (measured when BPTT packed the gates' gradients: a
         * fifth of the weight gradients' time); one k at a time writes to
         * every block at once, streams K * V apart that share a set of L1
         * (at AVX2 with 16 blocks, 3x slower than AVX-512 with 8). */
        for (int k0 = 0; k0 < K; k0 += CYRNN_PACK_ROWS) {
            int k1 = K - k0 < CYRNN_PACK_ROWS ? K : k0 + CYRNN_PACK_ROWS;
            for (int g = 0; g < G; ++g)
                for (int block = first_block; block < end_block; ++block) {
                    const REAL *src = w + (ptrdiff_t)g * H + block * V;
                    REAL *dst = packed + FN(packed_offset)(G, K, block, k0, g);
                    int units = H - block * V;
                    for (int k = k0; k < k1; ++k, dst += kstep) {
                        if (units >= V) { /* a constant size: one vector move */
                            memcpy(dst, src + k * col_stride, V * sizeof(REAL));
                            continue;
                        }
                        memcpy(dst, src + k * col_stride, units * sizeof(REAL));
                        memset(dst + units, 0, (V - units) * sizeof(REAL));
                    }
                }
        }
        return;
    }
    /* A row of W per unit (col_stride 1): transpose V x V tiles, each in
     * L1 (a unit's values of k are one row's run of w; reading V rows at
     * once for each k, as the layout suggests, was 10x slower than a
     * memcpy). */
    for (int block = first_block; block < end_block; ++block)
        for (int k0 = 0; k0 < K; k0 += V) {
            int kn = K - k0 < V ? K - k0 : V;
            for (int g = 0; g < G; ++g)
                FN(transpose_tile)(w + ((ptrdiff_t)g * H + block * V) * row_stride + k0,
                                   row_stride, H - block * V, kn,
                                   packed + FN(packed_offset)(G, K, block, k0, g), kstep);
        }
}

static void FN(cyrnn_pack_weights)(int G, int H, int K, const REAL *restrict w,
                                   ptrdiff_t row_stride, ptrdiff_t col_stride,
                                   REAL *restrict packed)
{
    FN(cyrnn_pack_weight_blocks)(G, H, K, w, row_stride, col_stride, 0,
                                 (H + V - 1) / V, packed);
}

/* out[r, j0 + u] = (or +=) sum_k x[r, k] W[j0 + u, k] for the R rows from
 * r0 and the NB unit blocks from `block` (j0 = block * V, u < NB * V, and
 * j0 + u < H), with x[r, k] at x[r * xr + k * xk] (see panel_accumulate). */
static inline __attribute__((always_inline)) void
FN(packed_tile)(const int R, int r0, const int NB, int block, int H, int K,
                const REAL *restrict packed, const REAL *restrict x, ptrdiff_t xr,
                ptrdiff_t xk, REAL *restrict out, ptrdiff_t ldo, int accumulate)
{
    const REAL *panel = packed + (ptrdiff_t)block * K * V;
    const int j0 = block * V;
    FN(panel_vec) acc[R][NB];
    x += r0 * xr;
    out += (ptrdiff_t)r0 * ldo;
    /* out is read back at the end: start fetching it now (a weight
     * gradient's out is too large for L1 and its rows far apart) */
    if (accumulate) {
        CYRNN_TILE_LOOP
        for (int r = 0; r < R; ++r)
            __builtin_prefetch(out + (ptrdiff_t)r * ldo + j0, 1);
    }
    FN(panel_zero)(R, NB, acc);
    FN(panel_accumulate)(R, NB, K, panel, (ptrdiff_t)K * V, x, xr, xk, acc);
    CYRNN_TILE_LOOP
    for (int r = 0; r < R; ++r)
        CYRNN_TILE_LOOP
        for (int b = 0; b < NB; ++b) {
            int j = j0 + b * V, units = H - j < V ? H - j : V;
            REAL *o = out + (ptrdiff_t)r * ldo + j;
            FN(panel_vec) v = acc[r][b];
            if (accumulate)
                v += FN(load_units)(o, units);
            FN(store_units)(o, v, units);
        }
}

/* Tiles of R rows by NB unit blocks, sized for the level's register file
 * (isa.h). Only single-gate packings (G = 1) come here: the forward step,
 * which packs G gates together, has its own kernel (step_template.h). The
 * weight gradients' product (weight_product) reads a tile's R values of x
 * for each k from one cache line (xr = 1). With AVX-512 its tiles of 16
 * rows by one block (a whole group of gate rows at once, the 8 x 1 before
 * them 4-6% slower on a Sapphire Rapids) took 17 loads a k for 16 FMAs;
 * 8 x 2 takes 10, and on an EPYC (Zen 5, two vector loads a cycle beside
 * two FMAs) made the training steps of a small and a medium LSTM 4% and 3%
 * faster, a float64 one 5% (alternating processes). The products of BPTT's
 * steps read R rows of x, each its own line; there, R = 16 measured slower
 * than 8 with AVX-512.
 *
 * The columns of unit blocks [first_block, end_block) of out (n, H; rows ld
 * apart) = (or +=) x W^T, for W (H, K) packed with G = 1 and x (n, K) at
 * x[r * xr + k * xk]: packed_product for BPTT's products (xk = 1),
 * weight_product for the weight gradients, where x = dg^T (xr = 1). */
#define CYRNN_DEFINE_PACKED_PRODUCT(NAME, R, NB)                               \
    static void FN(NAME)(int H, int K, int n, const REAL *restrict packed,     \
                         int first_block, int end_block, const REAL *restrict x, \
                         ptrdiff_t xr, ptrdiff_t xk, REAL *restrict out,       \
                         ptrdiff_t ld, int accumulate)                         \
    {                                                                          \
        CYRNN_BLOCK_GROUPS(NB, 0, R, n, first_block, end_block, FN(packed_tile), H, K, \
                           packed, x, xr, xk, out, ld, accumulate);            \
    }
CYRNN_DEFINE_PACKED_PRODUCT(packed_product, CYRNN_PRODUCT_ROWS, CYRNN_PRODUCT_BLOCKS)
CYRNN_DEFINE_PACKED_PRODUCT(weight_product, CYRNN_WEIGHT_ROWS, CYRNN_WEIGHT_BLOCKS)
#undef CYRNN_DEFINE_PACKED_PRODUCT

/* Gate rows [first_group * V, end_group * V) of the weight gradients
 * out1 (M, K1) = dg^T X1 and out2 (M, K2) = dg^T X2 over one chunk of `rows`
 * rows of dg (M wide, rows ldg apart; K2 = 0: no second product);
 * accumulate = 1 adds to out. The micro-kernel reads group g's column of dg
 * in place, one V-wide run per row: rows cyrnn_gradient_width apart fall in
 * different L1 sets. (Copying dg into column blocks first, so that it read
 * contiguously, cost a pass over dg that the products did not win back.)
 * X1 and X2 come packed by cyrnn_pack_weights(1, K, rows, X, 1, ld_x,
 * panels), X^T by unit blocks. The two products share each group of dg
 * while it is in cache, as an LSTM's dW_ih and dW_hh share dg; so does db
 * (M), the sum of dg over rows, unless NULL. */
static void FN(cyrnn_weight_gradient_chunk)(int M, int first_group, int end_group,
                                            int rows, const REAL *dg, ptrdiff_t ldg,
                                            int K1, const REAL *panels1, REAL *out1,
                                            int K2, const REAL *panels2, REAL *out2,
                                            REAL *db, int accumulate)
{
    int blocks1 = (K1 + V - 1) / V, blocks2 = (K2 + V - 1) / V;
    for (int g = first_group; g < end_group; ++g) {
        const REAL *group = dg + (ptrdiff_t)g * V;
        int n = M - g * V < V ? M - g * V : V;
        if (db) { /* the bias gradient, while the group is in cache */
            FN(panel_vec) part[4] = {{0}}, sum; /* four chains: adds have latency */
            int k = 0;
            for (; k + 4 <= rows; k += 4)
                for (int q = 0; q < 4; ++q)
                    part[q] += FN(load_units)(group + (ptrdiff_t)(k + q) * ldg, n);
            for (; k < rows; ++k)
                part[0] += FN(load_units)(group + (ptrdiff_t)k * ldg, n);
            sum = (part[0] + part[1]) + (part[2] + part[3]);
            for (int v = 0; v < n; ++v)
                db[g * V + v] = accumulate ? db[g * V + v] + sum[v] : sum[v];
        }
        FN(weight_product)(K1, rows, n, panels1, 0, blocks1, group, 1, ldg,
                           out1 + (ptrdiff_t)g * V * K1, K1, accumulate);
        FN(weight_product)(K2, rows, n, panels2, 0, blocks2, group, 1, ldg,
                           out2 + (ptrdiff_t)g * V * K2, K2, accumulate);
    }
}

static int FN(cyrnn_packed_blocks)(int H) { return (H + V - 1) / V; }

/* The distance between rows of BPTT's pre-activation gradients, GH wide:
 * whole cache lines (so whole vectors), an odd number of them, so that a
 * column read down 64 successive rows visits all 64 of L1's sets. With
 * GH = 1024 floats unpadded, every row fell in one set. */
static ptrdiff_t FN(cyrnn_gradient_width)(int GH)
{
    const ptrdiff_t line = 64 / sizeof(REAL);
    return (((GH + line - 1) / line) | 1) * line;
}

static void FN(cyrnn_packed_product)(int H, int K, int n, const REAL *packed,
                                     int first_block, int end_block, const REAL *x,
                                     ptrdiff_t ldx, REAL *out, ptrdiff_t ldo, int accumulate)
{
    FN(packed_product)(H, K, n, packed, first_block, end_block, x, ldx, 1, out, ldo,
                       accumulate);
}

#undef V
#undef CYRNN_PACK_ROWS

#else /* CYRNN_ENTRY_POINTS */

ptrdiff_t FN(cyrnn_packed_size)(int G, int H, int K)
{
    return CYRNN_PICK(cyrnn_packed_size)(G, H, K);
}

int FN(cyrnn_packed_blocks)(int H) { return CYRNN_PICK(cyrnn_packed_blocks)(H); }

ptrdiff_t FN(cyrnn_gradient_width)(int GH) { return CYRNN_PICK(cyrnn_gradient_width)(GH); }

void FN(cyrnn_pack_weight_blocks)(int G, int H, int K, const REAL *w, ptrdiff_t row_stride,
                                  ptrdiff_t col_stride, int first_block, int end_block,
                                  REAL *packed)
{
    CYRNN_PICK(cyrnn_pack_weight_blocks)(G, H, K, w, row_stride, col_stride, first_block,
                                         end_block, packed);
}

void FN(cyrnn_pack_weights)(int G, int H, int K, const REAL *w, ptrdiff_t row_stride,
                            ptrdiff_t col_stride, REAL *packed)
{
    CYRNN_PICK(cyrnn_pack_weights)(G, H, K, w, row_stride, col_stride, packed);
}

void FN(cyrnn_packed_product)(int H, int K, int n, const REAL *packed, int first_block,
                              int end_block, const REAL *x, ptrdiff_t ldx, REAL *out,
                              ptrdiff_t ldo, int accumulate)
{
    CYRNN_PICK(cyrnn_packed_product)(H, K, n, packed, first_block, end_block, x, ldx, out,
                                     ldo, accumulate);
}

void FN(cyrnn_weight_gradient_chunk)(int M, int first_group, int end_group, int rows,
                                     const REAL *dg, ptrdiff_t ldg, int K1,
                                     const REAL *panels1, REAL *out1, int K2,
                                     const REAL *panels2, REAL *out2, REAL *db,
                                     int accumulate)
{
    CYRNN_PICK(cyrnn_weight_gradient_chunk)(M, first_group, end_group, rows, dg, ldg, K1,
                                            panels1, out1, K2, panels2, out2, db, accumulate);
}

#endif /* CYRNN_ENTRY_POINTS */
