/* The recurrent product h W_hh^T with weights packed once per pass (template,
 * see instantiate.h).
 *
 * BLAS repacks its right operand on every call; a recurrence multiplies by
 * the same W_hh at every step, so packing it once and streaming it from
 * cache pays. The packed layout serves one block of V units at a time with
 * all G gates of those units together, so a block's output is exactly what
 * the cell kernel needs for those units:
 *
 *   packed[((block * K + k) * G + g) * V + v] = W[g * H + block * V + v][k]
 *
 * (zero past H). The micro-kernel keeps an R x G tile of V-wide vectors in
 * registers; R is chosen per instruction set so the tile fits its register
 * file. Written with GCC vector extensions, it compiles to AVX-512, AVX2 or
 * SSE from one source. */

#define V ((int)(CYRNN_PANEL_BYTES / sizeof(REAL)))

ptrdiff_t FN(cyrnn_packed_size)(int G, int H, int K)
{
    ptrdiff_t blocks = (H + V - 1) / V;
    return blocks * K * G * V;
}

/* w[(g * H + unit) * row_stride + k * col_stride]: (G*H, K) row-major with
 * strides (K, 1), or its transpose (K, G*H) with strides (1, G*H). */
void FN(cyrnn_pack_weights)(int G, int H, int K, const REAL *restrict w,
                            ptrdiff_t row_stride, ptrdiff_t col_stride,
                            REAL *restrict packed)
{
    int blocks = (H + V - 1) / V;
    for (int block = 0; block < blocks; ++block)
        for (int k = 0; k < K; ++k)
            for (int g = 0; g < G; ++g) {
                REAL *dst = packed + (((ptrdiff_t)block * K + k) * G + g) * V;
                for (int v = 0; v < V; ++v) {
                    int unit = block * V + v;
                    dst[v] = unit < H ? w[((ptrdiff_t)g * H + unit) * row_stride +
                                          k * col_stride] : (REAL)0;
                }
            }
}

/* out[r, g * H + u] = sum_k x[r, k] W[g * H + block * V + u, k] for R rows,
 * with x[r, k] at x[r * xr + k * xk] (xk = 1 for a row-major x; xr = 1 for
 * the transpose of a row-major array, as in a weight gradient); G and R are
 * compile-time constants once inlined. */
static inline __attribute__((always_inline)) void
FN(packed_tile)(const int G, const int R, int H, int K, const REAL *restrict panel,
                const REAL *restrict x, ptrdiff_t xr, ptrdiff_t xk, REAL *restrict out,
                ptrdiff_t ldo, int units, int accumulate)
{
    FN(panel_vec) acc[R][G];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int g = 0; g < G; ++g)
            acc[r][g] = (FN(panel_vec)){0};
    for (int k = 0; k < K; ++k) {
        const FN(panel_vec) *w = (const FN(panel_vec) *)(panel + (ptrdiff_t)k * G * V);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            REAL xv = x[r * xr + k * xk];
#pragma GCC unroll 4
            for (int g = 0; g < G; ++g)
                acc[r][g] += xv * w[g];
        }
    }
    if (units == V) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
            for (int g = 0; g < G; ++g) {
                FN(panel_vec) *o = (FN(panel_vec) *)(out + (ptrdiff_t)r * ldo + (ptrdiff_t)g * H);
                if (accumulate)
                    *o += acc[r][g];
                else
                    *o = acc[r][g];
            }
        return;
    }
    for (int r = 0; r < R; ++r) /* the last, partial block of units */
        for (int g = 0; g < G; ++g) {
            REAL *o = out + (ptrdiff_t)r * ldo + (ptrdiff_t)g * H;
            REAL part[V];
            memcpy(part, &acc[r][g], sizeof part);
            for (int u = 0; u < units; ++u)
                o[u] = accumulate ? o[u] + part[u] : part[u];
        }
}

#define CYRNN_PACKED_ROWS(G_, R_)                                              \
    do {                                                                       \
        int r0 = 0;                                                            \
        for (; r0 + (R_) <= n; r0 += (R_))                                     \
            FN(packed_tile)(G_, R_, H, K, panel, x + r0 * xr, xr, xk,          \
                            o + (ptrdiff_t)r0 * ld, ld, units, accumulate);    \
        for (; r0 < n; ++r0)                                                   \
            FN(packed_tile)(G_, 1, H, K, panel, x + r0 * xr, xr, xk,           \
                            o + (ptrdiff_t)r0 * ld, ld, units, accumulate);    \
    } while (0)

/* One instantiation per instruction set, with register tiles sized for it:
 * R4, R3, R1 rows for G = 4, 3, 1. */
#define CYRNN_DEFINE_PACKED_PRODUCT(ISA, TARGET, R4, R3, R1)                   \
    TARGET static void FN(packed_product_##ISA)(                               \
        int G, int H, int K, int n, const REAL *restrict packed, int block,    \
        const REAL *restrict x, ptrdiff_t xr, ptrdiff_t xk,                    \
        REAL *restrict out, ptrdiff_t ld, int accumulate)                      \
    {                                                                          \
        const REAL *panel = packed + (ptrdiff_t)block * K * G * V;             \
        int units = H - block * V < V ? H - block * V : V;                     \
        REAL *o = out + (ptrdiff_t)block * V;                                  \
        if (G == 4)                                                            \
            CYRNN_PACKED_ROWS(4, R4);                                          \
        else if (G == 3)                                                       \
            CYRNN_PACKED_ROWS(3, R3);                                          \
        else                                                                   \
            CYRNN_PACKED_ROWS(1, R1);                                          \
    }

#if CYRNN_X86_DISPATCH
CYRNN_DEFINE_PACKED_PRODUCT(avx512, __attribute__((target("arch=x86-64-v4"))), 4, 6, 8)
CYRNN_DEFINE_PACKED_PRODUCT(avx2, __attribute__((target("arch=x86-64-v3"))), 1, 2, 4)
#endif
CYRNN_DEFINE_PACKED_PRODUCT(generic, , 1, 1, 2)

/* The block's columns of x W^T for x[r, k] at x[r * xr + k * xk], into out
 * with rows ld apart. */
static void FN(packed_product_strided)(int G, int H, int K, int n, const REAL *packed,
                                       int block, const REAL *x, ptrdiff_t xr,
                                       ptrdiff_t xk, REAL *out, ptrdiff_t ld,
                                       int accumulate)
{
#if CYRNN_X86_DISPATCH
    static int isa = -1; /* benign race: every thread computes the same value */
    if (isa < 0)
        isa = cyrnn_cpu_level();
    if (isa == 2) {
        FN(packed_product_avx512)(G, H, K, n, packed, block, x, xr, xk, out, ld, accumulate);
        return;
    }
    if (isa == 1) {
        FN(packed_product_avx2)(G, H, K, n, packed, block, x, xr, xk, out, ld, accumulate);
        return;
    }
#endif
    FN(packed_product_generic)(G, H, K, n, packed, block, x, xr, xk, out, ld, accumulate);
}

/* out (n, G*H) gets (accumulate = 0) or adds (accumulate = 1) the columns of
 * unit block `block` of x (n, K) W^T. */
void FN(cyrnn_packed_product)(int G, int H, int K, int n, const REAL *packed,
                              int block, const REAL *x, REAL *out, int accumulate)
{
    FN(packed_product_strided)(G, H, K, n, packed, block, x, K, 1, out, (ptrdiff_t)G * H,
                               accumulate);
}

/* Columns [first_block * V, end_block * V) of out (M, K) = dg^T X over N
 * rows: dg (N, M) with rows ld_dg apart, X (N, K) with rows ld_x apart.
 * BLAS repacks dg once per product and runs these long, thin shapes well
 * below its peak (measured); here X is packed as the weights are, N_CHUNK
 * rows at a time so that the rows of dg each chunk reads stay in L2, and
 * the micro-kernel reads dg transposed in place. scratch: packed_size(1,
 * K, N_CHUNK) elements. */
#define N_CHUNK 128
ptrdiff_t FN(cyrnn_weight_gradient_scratch)(int K) { return FN(cyrnn_packed_size)(1, K, N_CHUNK); }

void FN(cyrnn_weight_gradient)(int M, int K, int N, const REAL *dg, ptrdiff_t ld_dg,
                               const REAL *X, ptrdiff_t ld_x, int first_block,
                               int end_block, REAL *scratch, REAL *out)
{
    int first_unit = first_block * V;
    int units = (end_block * V < K ? end_block * V : K) - first_unit;
    if (units <= 0)
        return;
    for (int n0 = 0; n0 < N; n0 += N_CHUNK) {
        int rows = N - n0 < N_CHUNK ? N - n0 : N_CHUNK;
        REAL *panels = scratch + (ptrdiff_t)first_block * rows * V;
        /* this chunk's X^T for the blocks' units, by unit blocks */
        FN(cyrnn_pack_weights)(1, units, rows, X + (ptrdiff_t)n0 * ld_x + first_unit, 1,
                               ld_x, panels);
        for (int block = 0; block < end_block - first_block; ++block)
            FN(packed_product_strided)(1, units, rows, M, panels, block,
                                       dg + (ptrdiff_t)n0 * ld_dg, 1, ld_dg,
                                       out + first_unit, K, n0 > 0);
    }
}
#undef N_CHUNK

int FN(cyrnn_packed_blocks)(int H) { return (H + V - 1) / V; }

#undef V
