/* Elman RNN backward step kernels (template, see instantiate.h; the forward
 * step is in step_template.h). The tape keeps the activated output: both
 * derivatives are functions of it. */

#ifndef CYRNN_ENTRY_POINTS

/* dgates = dh * (1 - y^2), y = h_t */
static void FN(cyrnn_rnn_tanh_backward)(int n, int H, const REAL *restrict gates,
                                        const REAL *restrict dh, REAL *restrict dgates,
                                        ptrdiff_t ldg)
{
    for (ptrdiff_t b = 0; b < n; ++b)
        for (int j = 0; j < H; ++j) {
            REAL y = gates[b * H + j];
            dgates[b * ldg + j] = dh[b * H + j] * ((REAL)1 - y * y);
        }
}

/* torch's threshold_backward: exactly 0 where y <= 0, whatever dh holds there. */
static void FN(cyrnn_rnn_relu_backward)(int n, int H, const REAL *restrict gates,
                                        const REAL *restrict dh, REAL *restrict dgates,
                                        ptrdiff_t ldg)
{
    for (ptrdiff_t b = 0; b < n; ++b)
        for (int j = 0; j < H; ++j)
            dgates[b * ldg + j] = gates[b * H + j] > 0 ? dh[b * H + j] : (REAL)0;
}

#else /* CYRNN_ENTRY_POINTS */

void FN(cyrnn_rnn_tanh_backward)(int n, int H, const REAL *gates, const REAL *dh,
                                 REAL *dgates, ptrdiff_t ldg)
{
    CYRNN_PICK(cyrnn_rnn_tanh_backward)(n, H, gates, dh, dgates, ldg);
}

void FN(cyrnn_rnn_relu_backward)(int n, int H, const REAL *gates, const REAL *dh,
                                 REAL *dgates, ptrdiff_t ldg)
{
    CYRNN_PICK(cyrnn_rnn_relu_backward)(n, H, gates, dh, dgates, ldg);
}

#endif /* CYRNN_ENTRY_POINTS */
