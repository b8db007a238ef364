/* Row helpers the time loops need around the BLAS calls (template, see
 * instantiate.h), and the activations exported for tests. */

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

CYRNN_KERNEL void FN(cyrnn_add_rows)(int n, int w, const REAL *restrict src,
                                      ptrdiff_t lds, REAL *restrict dst,
                                      ptrdiff_t ldd)
{
    for (int b = 0; b < n; ++b) {
        const REAL *s = src + b * lds;
        REAL *d = dst + b * ldd;
        for (int j = 0; j < w; ++j)
            d[j] += s[j];
    }
}

CYRNN_KERNEL void FN(cyrnn_multiply)(ptrdiff_t n, REAL *restrict a, const REAL *restrict b)
{
    for (ptrdiff_t k = 0; k < n; ++k)
        a[k] *= b[k];
}

CYRNN_KERNEL void FN(cyrnn_sigmoid)(ptrdiff_t n, const REAL *restrict x, REAL *restrict y)
{
    for (ptrdiff_t k = 0; k < n; ++k)
        y[k] = FN(sigmoid)(x[k]);
}

CYRNN_KERNEL void FN(cyrnn_tanh)(ptrdiff_t n, const REAL *restrict x, REAL *restrict y)
{
    for (ptrdiff_t k = 0; k < n; ++k)
        y[k] = FN(tanh)(x[k]);
}
