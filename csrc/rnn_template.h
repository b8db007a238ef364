/* Elman RNN backward step kernels (template, see instantiate.h; the forward
 * step is in step_template.h). The tape keeps the activated output: both
 * derivatives are functions of it. */

#define CYRNN_RNN_KERNELS(NAME, DGATE)                                          \
    static inline __attribute__((always_inline)) void                           \
    FN(cyrnn_rnn_##NAME##_backward_body)(int n, int H,                          \
                                         const REAL *restrict gates,            \
                                         const REAL *restrict dh,               \
                                         REAL *restrict dgates, ptrdiff_t ldg)  \
    {                                                                           \
        for (ptrdiff_t b = 0; b < n; ++b)                                       \
            for (int j = 0; j < H; ++j) {                                       \
                REAL y = gates[b * H + j], d = dh[b * H + j];                   \
                dgates[b * ldg + j] = (DGATE);                                  \
            }                                                                   \
    }                                                                           \
    CYRNN_VECTORIZED_KERNEL(cyrnn_rnn_##NAME##_backward,                        \
                            (int n, int H, const REAL *restrict gates,          \
                             const REAL *restrict dh, REAL *restrict dgates,    \
                             ptrdiff_t ldg),                                    \
                            n, H, gates, dh, dgates, ldg)

CYRNN_RNN_KERNELS(tanh, d * ((REAL)1 - y * y))
/* torch's threshold_backward: exactly 0 where y <= 0, whatever dh holds there. */
CYRNN_RNN_KERNELS(relu, y > 0 ? d : (REAL)0)

#undef CYRNN_RNN_KERNELS
