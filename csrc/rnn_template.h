/* Elman RNN backward step kernels (template, see instantiate.h; the forward
 * step is in step_template.h). The tape keeps the activated output: both
 * derivatives are functions of it. */

#define CYRNN_RNN_KERNELS(NAME, DACT)                                           \
    CYRNN_KERNEL void FN(cyrnn_rnn_##NAME##_backward)(                          \
        int n, int H, const REAL *restrict gates, const REAL *restrict dh,      \
        REAL *restrict dgates)                                                  \
    {                                                                           \
        ptrdiff_t total = (ptrdiff_t)n * H;                                     \
        for (ptrdiff_t k = 0; k < total; ++k) {                                 \
            REAL y = gates[k];                                                  \
            dgates[k] = dh[k] * (DACT);                                         \
        }                                                                       \
    }

CYRNN_RNN_KERNELS(tanh, ((REAL)1 - y * y))
CYRNN_RNN_KERNELS(relu, (y > 0 ? (REAL)1 : (REAL)0))

#undef CYRNN_RNN_KERNELS
