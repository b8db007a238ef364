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
 * (zero past H). The forward step multiplies by it in step_template.h; the
 * single-gate (G = 1) product here serves BPTT (dL/dh, dx and the weight
 * gradients). Its micro-kernel keeps R V-wide vectors in registers, R chosen
 * per instruction set. Written with GCC vector extensions, it compiles to
 * AVX-512, AVX2 or SSE from one source. */

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

/* out[r, u] = sum_k x[r, k] W[block * V + u, k] for R rows, with x[r, k] at
 * x[r * xr + k * xk] (xk = 1 for a row-major x; xr = 1 for the transpose of a
 * row-major array, as in a weight gradient); R is a compile-time constant
 * once inlined. */
static inline __attribute__((always_inline)) void
FN(packed_tile)(const int R, int K, const REAL *restrict panel, const REAL *restrict x,
                ptrdiff_t xr, ptrdiff_t xk, REAL *restrict out, ptrdiff_t ldo, int units,
                int accumulate)
{
    FN(panel_vec) acc[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
        acc[r] = (FN(panel_vec)){0};
    for (int k = 0; k < K; ++k) {
        FN(panel_vec) w = *(const FN(panel_vec) *)(panel + (ptrdiff_t)k * V);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r)
            acc[r] += x[r * xr + k * xk] * w;
    }
    if (units == V) {
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            FN(panel_vec) *o = (FN(panel_vec) *)(out + (ptrdiff_t)r * ldo);
            if (accumulate)
                *o += acc[r];
            else
                *o = acc[r];
        }
        return;
    }
    for (int r = 0; r < R; ++r) { /* the last, partial block of units */
        REAL *o = out + (ptrdiff_t)r * ldo;
        REAL part[V];
        memcpy(part, &acc[r], sizeof part);
        for (int u = 0; u < units; ++u)
            o[u] = accumulate ? o[u] + part[u] : part[u];
    }
}

/* One instantiation per instruction set, with tiles of R rows sized for its
 * register file. Only single-gate packings (G = 1) come here: the forward
 * step, which packs G gates together, has its own kernel (step_template.h). */
#define CYRNN_DEFINE_PACKED_PRODUCT(ISA, TARGET, R)                            \
    TARGET static void FN(packed_product_##ISA)(                               \
        int H, int K, int n, const REAL *restrict packed, int block,           \
        const REAL *restrict x, ptrdiff_t xr, ptrdiff_t xk,                    \
        REAL *restrict out, ptrdiff_t ld, int accumulate)                      \
    {                                                                          \
        const REAL *panel = packed + (ptrdiff_t)block * K * V;                 \
        int units = H - block * V < V ? H - block * V : V;                     \
        REAL *o = out + (ptrdiff_t)block * V;                                  \
        int r0 = 0;                                                            \
        for (; r0 + (R) <= n; r0 += (R))                                       \
            FN(packed_tile)(R, K, panel, x + r0 * xr, xr, xk,            \
                            o + (ptrdiff_t)r0 * ld, ld, units, accumulate);    \
        for (; r0 < n; ++r0)                                                   \
            FN(packed_tile)(1, K, panel, x + r0 * xr, xr, xk,            \
                            o + (ptrdiff_t)r0 * ld, ld, units, accumulate);    \
    }

#if CYRNN_X86_DISPATCH
CYRNN_DEFINE_PACKED_PRODUCT(avx512, __attribute__((target("arch=x86-64-v4"))), 8)
CYRNN_DEFINE_PACKED_PRODUCT(avx2, __attribute__((target("arch=x86-64-v3"))), 4)
#endif
CYRNN_DEFINE_PACKED_PRODUCT(generic, , 2)

/* The block's columns of x W^T for x[r, k] at x[r * xr + k * xk], into out
 * with rows ld apart. */
static void FN(packed_product_strided)(int H, int K, int n, const REAL *packed,
                                       int block, const REAL *x, ptrdiff_t xr,
                                       ptrdiff_t xk, REAL *out, ptrdiff_t ld,
                                       int accumulate)
{
#if CYRNN_X86_DISPATCH
    static int isa = -1; /* benign race: every thread computes the same value */
    if (isa < 0)
        isa = cyrnn_cpu_level();
    if (isa == 2) {
        FN(packed_product_avx512)(H, K, n, packed, block, x, xr, xk, out, ld, accumulate);
        return;
    }
    if (isa == 1) {
        FN(packed_product_avx2)(H, K, n, packed, block, x, xr, xk, out, ld, accumulate);
        return;
    }
#endif
    FN(packed_product_generic)(H, K, n, packed, block, x, xr, xk, out, ld, accumulate);
}

/* out (n, H) gets (accumulate = 0) or adds (accumulate = 1) the columns of
 * unit block `block` of x (n, K) W^T, for W (H, K) packed with G = 1. */
void FN(cyrnn_packed_product)(int H, int K, int n, const REAL *packed, int block,
                              const REAL *x, REAL *out, int accumulate)
{
    FN(packed_product_strided)(H, K, n, packed, block, x, K, 1, out, H, accumulate);
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
            FN(packed_product_strided)(units, rows, M, panels, block,
                                       dg + (ptrdiff_t)n0 * ld_dg, 1, ld_dg,
                                       out + first_unit, K, n0 > 0);
    }
}
#undef N_CHUNK

int FN(cyrnn_packed_blocks)(int H) { return (H + V - 1) / V; }

#undef V
