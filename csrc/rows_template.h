/* Row helpers of the time loops (template, see instantiate.h), and the
 * activations exported for tests. */

#ifndef CYRNN_ENTRY_POINTS

static void FN(cyrnn_add_rows)(int n, int w, const REAL *restrict src, ptrdiff_t lds,
                               REAL *restrict dst, ptrdiff_t ldd)
{
    for (int b = 0; b < n; ++b) {
        const REAL *s = src + b * lds;
        REAL *d = dst + b * ldd;
        for (int j = 0; j < w; ++j)
            d[j] += s[j];
    }
}

static void FN(cyrnn_multiply)(ptrdiff_t n, REAL *restrict a, const REAL *restrict b)
{
    for (ptrdiff_t k = 0; k < n; ++k)
        a[k] *= b[k];
}

/* The step kernel's activations over an array, for testing their accuracy:
 * whole vectors, then the tail in a zero-padded one. */
#define CYRNN_ACTIVATION_ROWS(NAME)                                            \
    static void FN(cyrnn_##NAME)(ptrdiff_t n, const REAL *restrict x, REAL *restrict y) \
    {                                                                          \
        const int V = (int)(CYRNN_PANEL_BYTES / sizeof(REAL));                 \
        for (ptrdiff_t k = 0; k < n; k += V) {                                 \
            int units = n - k < V ? (int)(n - k) : V;                          \
            FN(store_units)(y + k, FN(NAME)(FN(load_units)(x + k, units)), units); \
        }                                                                      \
    }

CYRNN_ACTIVATION_ROWS(sigmoid)
CYRNN_ACTIVATION_ROWS(tanh)
#undef CYRNN_ACTIVATION_ROWS

#else /* CYRNN_ENTRY_POINTS */

/* A copy is memcpy's work at every level. */
void FN(cyrnn_copy_rows)(int n, int w, const REAL *restrict src, ptrdiff_t lds,
                         REAL *restrict dst, ptrdiff_t ldd)
{
    if (lds == w && ldd == w) { /* both contiguous: one copy */
        memcpy(dst, src, (size_t)n * (size_t)w * sizeof(REAL));
        return;
    }
    for (int b = 0; b < n; ++b)
        memcpy(dst + b * ldd, src + b * lds, (size_t)w * sizeof(REAL));
}

void FN(cyrnn_add_rows)(int n, int w, const REAL *src, ptrdiff_t lds, REAL *dst,
                        ptrdiff_t ldd)
{
    CYRNN_PICK(cyrnn_add_rows)(n, w, src, lds, dst, ldd);
}

void FN(cyrnn_multiply)(ptrdiff_t n, REAL *a, const REAL *b)
{
    CYRNN_PICK(cyrnn_multiply)(n, a, b);
}

void FN(cyrnn_sigmoid)(ptrdiff_t n, const REAL *x, REAL *y)
{
    CYRNN_PICK(cyrnn_sigmoid)(n, x, y);
}

void FN(cyrnn_tanh)(ptrdiff_t n, const REAL *x, REAL *y) { CYRNN_PICK(cyrnn_tanh)(n, x, y); }

/* Whether every one of the n values at a is finite: none has its exponent
 * all ones (Inf, NaN). Branch-free over the bits, which any level's compiler
 * vectorizes: a relu RNN's W_hh is tested on every forward pass. */
int FN(cyrnn_all_finite)(ptrdiff_t n, const REAL *a)
{
    const UINT exponent = (UINT)(2 * EXP_BIAS + 1) << MANT_BITS;
    UINT special = 0;
    for (ptrdiff_t k = 0; k < n; ++k) {
        UINT bits;
        memcpy(&bits, a + k, sizeof bits);
        special |= (UINT)((bits & exponent) == exponent);
    }
    return !special;
}

#endif /* CYRNN_ENTRY_POINTS */
