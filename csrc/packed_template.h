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

/* out[r, g * H + u] = sum_k x[r, k] W[g * H + block * V + u, k] for R rows;
 * G and R are compile-time constants once inlined. */
static inline __attribute__((always_inline)) void
FN(packed_tile)(const int G, const int R, int H, int K, const REAL *restrict panel,
                const REAL *restrict x, int ldx, REAL *restrict out, int ldo, int units,
                int accumulate)
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
            REAL xr = x[(ptrdiff_t)r * ldx + k];
#pragma GCC unroll 4
            for (int g = 0; g < G; ++g)
                acc[r][g] += xr * w[g];
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
            FN(packed_tile)(G_, R_, H, K, panel, x + (ptrdiff_t)r0 * K, K,     \
                            o + (ptrdiff_t)r0 * ld, ld, units, accumulate);    \
        for (; r0 < n; ++r0)                                                   \
            FN(packed_tile)(G_, 1, H, K, panel, x + (ptrdiff_t)r0 * K, K,      \
                            o + (ptrdiff_t)r0 * ld, ld, units, accumulate);    \
    } while (0)

/* One instantiation per instruction set, with register tiles sized for it:
 * R4, R3, R1 rows for G = 4, 3, 1. */
#define CYRNN_DEFINE_PACKED_PRODUCT(ISA, TARGET, R4, R3, R1)                   \
    TARGET static void FN(packed_product_##ISA)(                               \
        int G, int H, int K, int n, const REAL *restrict packed, int block,    \
        const REAL *restrict x, REAL *restrict out, int accumulate)            \
    {                                                                          \
        const REAL *panel = packed + (ptrdiff_t)block * K * G * V;             \
        int units = H - block * V < V ? H - block * V : V;                     \
        int ld = G * H;                                                        \
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

/* out (n, G*H) gets (accumulate = 0) or adds (accumulate = 1) the columns of
 * unit block `block` of x (n, K) W^T. */
void FN(cyrnn_packed_product)(int G, int H, int K, int n, const REAL *packed,
                              int block, const REAL *x, REAL *out, int accumulate)
{
#if CYRNN_X86_DISPATCH
    static int isa = -1; /* benign race: every thread computes the same value */
    if (isa < 0)
        isa = cyrnn_cpu_level();
    if (isa == 2) {
        FN(packed_product_avx512)(G, H, K, n, packed, block, x, out, accumulate);
        return;
    }
    if (isa == 1) {
        FN(packed_product_avx2)(G, H, K, n, packed, block, x, out, accumulate);
        return;
    }
#endif
    FN(packed_product_generic)(G, H, K, n, packed, block, x, out, accumulate);
}

int FN(cyrnn_packed_blocks)(int H) { return (H + V - 1) / V; }

#undef V
