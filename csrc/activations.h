/* Branch-free sigmoid, tanh and relu on whole vectors, and the vector type
 * of the packed kernels. Part of a template: see instantiate.h for the
 * macros it expects.
 *
 * They are written with GCC's vector extensions on one 64-byte vector,
 * which compiles to one AVX-512 register, two AVX or four SSE ones. Scalar
 * functions over arrays left the vectorizing to the compiler, which used
 * half-width registers, and for relu none at all: the step kernel's code
 * was 70% larger and an RNN-relu step 3% slower.
 *
 * Clamping is `x > c ? c : x`, so that NaN passes through unchanged
 * (fmin/fmax would replace it by the bound): x86's min and max where the
 * level allows, else a compare and a select. */

/* The vector the packed kernels work in: one 64-byte panel row of units. */
typedef REAL FN(panel_vec) __attribute__((vector_size(CYRNN_PANEL_BYTES), aligned(sizeof(REAL)), may_alias));
/* Its bits, for masks and exponent arithmetic. */
typedef UINT FN(panel_bits) __attribute__((vector_size(CYRNN_PANEL_BYTES), aligned(sizeof(REAL)), may_alias));

/* mask ? a : b in every lane; a comparison gives lanes of all ones or zeros */
static inline __attribute__((always_inline)) FN(panel_vec)
FN(select)(FN(panel_bits) mask, FN(panel_vec) a, FN(panel_vec) b)
{
    return (FN(panel_vec))(((FN(panel_bits))a & mask) | ((FN(panel_bits))b & ~mask));
}

static inline __attribute__((always_inline)) FN(panel_vec) FN(splat)(REAL value)
{
    return (FN(panel_vec)){0} + value;
}

/* x86's min and max of a vector, (a < b ? a : b) and (a > b ? a : b): one
 * instruction where the compare and select take three with AVX-512, and
 * given NaN in b they return it, so that NaN passes through a clamp as
 * through the select. Measured on a Zen 5 EPYC, alternating processes: LSTM
 * inference at small size 3% faster at levels 2 and 1, a small training
 * step 2-2.5%. Level 0 keeps the select: there GCC then laid out the LSTM's
 * step differently, and its unchanged product loops ran 9% slower. */
#if CYRNN_X86_DISPATCH && CYRNN_ISA_LEVEL == 2
#define CYRNN_VEC_MIN(a, b) CYRNN_VEC_X86(_mm512_min, 512, a, b)
#define CYRNN_VEC_MAX(a, b) CYRNN_VEC_X86(_mm512_max, 512, a, b)
#elif CYRNN_X86_DISPATCH && CYRNN_ISA_LEVEL == 1
#define CYRNN_VEC_MIN(a, b) CYRNN_VEC_X86(_mm256_min, 256, a, b)
#define CYRNN_VEC_MAX(a, b) CYRNN_VEC_X86(_mm256_max, 256, a, b)
#endif
#if CYRNN_DOUBLE
#define CYRNN_VEC_X86(op, bits, a, b) \
    ((FN(panel_vec))op##_pd((__m##bits##d)(a), (__m##bits##d)(b)))
#else
#define CYRNN_VEC_X86(op, bits, a, b) ((FN(panel_vec))op##_ps((__m##bits)(a), (__m##bits)(b)))
#endif

#ifndef CYRNN_VEC_MIN /* the same, by a compare and a select */
#define CYRNN_VEC_MIN(a, b) FN(select)((FN(panel_bits))((b) > (a)), (a), (b))
#define CYRNN_VEC_MAX(a, b) FN(select)((FN(panel_bits))((b) < (a)), (a), (b))
#endif

/* y, or bound where y > bound (NaN stays) */
static inline __attribute__((always_inline)) FN(panel_vec)
FN(at_most)(FN(panel_vec) y, REAL bound)
{
    return CYRNN_VEC_MIN(FN(splat)(bound), y);
}

/* y, or bound where y < bound (NaN stays) */
static inline __attribute__((always_inline)) FN(panel_vec)
FN(at_least)(FN(panel_vec) y, REAL bound)
{
    return CYRNN_VEC_MAX(FN(splat)(bound), y);
}

/* Splits e^y as s * (1 + p) with s = 2^round(y / ln2) and p = e^r - 1 for the
 * reduced argument r; y must lie where s is a normal number. */
static inline __attribute__((always_inline)) FN(panel_vec)
FN(exp_split)(FN(panel_vec) y, FN(panel_vec) *s)
{
    FN(panel_vec) v = y * (REAL)1.4426950408889634 + ROUND_MAGIC;
    FN(panel_vec) k = v - ROUND_MAGIC;
    FN(panel_vec) r = (y - k * LN2_HI) - k * LN2_LO;
    *s = (FN(panel_vec))(((FN(panel_bits))v - ROUND_MAGIC_BITS + EXP_BIAS) << MANT_BITS);
    return EXPM1_POLY(r);
}

static inline __attribute__((always_inline)) FN(panel_vec) FN(sigmoid)(FN(panel_vec) x)
{
    FN(panel_vec) y = FN(at_least)(FN(at_most)(-x, SIGMOID_CLAMP), -SIGMOID_CLAMP);
    FN(panel_vec) s, p = FN(exp_split)(y, &s);
    return (REAL)1 / ((REAL)1 + (s + s * p));
}

/* tanh|x| = e / (e + 2) with e = expm1(2|x|) = s p + (s - 1), exact in the
 * small-argument case s == 1, so tanh stays accurate near zero. */
static inline __attribute__((always_inline)) FN(panel_vec) FN(tanh)(FN(panel_vec) x)
{
    const FN(panel_bits) sign = (FN(panel_bits)){0} + ((UINT)1 << (8 * sizeof(REAL) - 1));
    FN(panel_vec) a = FN(at_most)((FN(panel_vec))((FN(panel_bits))x & ~sign), TANH_CLAMP);
    FN(panel_vec) s, p = FN(exp_split)(a + a, &s);
    FN(panel_vec) e = s * p + (s - (REAL)1);
    FN(panel_vec) t = e / (e + (REAL)2);
    return (FN(panel_vec))((FN(panel_bits))t | ((FN(panel_bits))x & sign)); /* x's sign */
}

/* NaN passes through, and -0 stays -0 (as max(0, x) in torch). */
static inline __attribute__((always_inline)) FN(panel_vec) FN(relu)(FN(panel_vec) x)
{
    return FN(at_least)(x, 0);
}

/* The first `units` values at p as a vector, zero past them. */
static inline __attribute__((always_inline)) FN(panel_vec)
FN(load_units)(const REAL *p, int units)
{
    FN(panel_vec) v = {0};
    if (units == (int)(CYRNN_PANEL_BYTES / sizeof(REAL)))
        return *(const FN(panel_vec) *)p;
    memcpy(&v, p, (size_t)units * sizeof(REAL));
    return v;
}

/* Stores the first `units` lanes of v at p. */
static inline __attribute__((always_inline)) void
FN(store_units)(REAL *p, FN(panel_vec) v, int units)
{
    if (units == (int)(CYRNN_PANEL_BYTES / sizeof(REAL)))
        *(FN(panel_vec) *)p = v;
    else
        memcpy(p, &v, (size_t)units * sizeof(REAL));
}

#undef CYRNN_VEC_MIN
#undef CYRNN_VEC_MAX
#undef CYRNN_VEC_X86
