/* Elman RNN step kernels (template, see instantiate.h). The activated output
 * is kept in the gate block: both derivatives are functions of it. */

static inline REAL FN(relu)(REAL x) { return x > 0 ? x : (x != x ? x : 0); }

#define CYRNN_RNN_KERNELS(NAME, ACT, DACT)                                      \
    CYRNN_KERNEL void FN(cyrnn_rnn_##NAME##_forward)(                           \
        int n, int H, int units, REAL *restrict gates,                          \
        const REAL *restrict hg, REAL *restrict h)                              \
    {                                                                           \
        for (int b = 0; b < n; ++b) {                                           \
            ptrdiff_t row = (ptrdiff_t)b * H;                                   \
            for (int j = 0; j < units; ++j) {                                   \
                REAL y = ACT(gates[row + j] + hg[row + j]);                     \
                gates[row + j] = y;                                             \
                h[row + j] = y;                                                 \
            }                                                                   \
        }                                                                       \
    }                                                                           \
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

CYRNN_RNN_KERNELS(tanh, FN(tanh), ((REAL)1 - y * y))
CYRNN_RNN_KERNELS(relu, FN(relu), (y > 0 ? (REAL)1 : (REAL)0))

#undef CYRNN_RNN_KERNELS
