/* Branch-free sigmoid and tanh that gcc vectorizes (libm's are scalar calls),
 * relu, and the vector type of the packed kernels.
 * Part of a template: see instantiate.h for the macros it expects.
 *
 * Clamping is written as `x > c ? c : x` so that NaN passes through unchanged
 * (fmin/fmax would replace it by the bound). */

/* Splits e^y as s * (1 + p) with s = 2^round(y / ln2) and p = e^r - 1 for the
 * reduced argument r; y must lie where s is a normal number. */
static inline REAL FN(exp_split)(REAL y, REAL *s)
{
    REAL v = y * (REAL)1.4426950408889634 + ROUND_MAGIC;
    UINT bits;
    memcpy(&bits, &v, sizeof bits);
    REAL k = v - ROUND_MAGIC;
    REAL r = (y - k * LN2_HI) - k * LN2_LO;
    UINT sbits = (bits - ROUND_MAGIC_BITS + EXP_BIAS) << MANT_BITS;
    memcpy(s, &sbits, sizeof sbits);
    return EXPM1_POLY(r);
}

static inline REAL FN(sigmoid)(REAL x)
{
    REAL y = -x;
    y = y > SIGMOID_CLAMP ? SIGMOID_CLAMP : y;
    y = y < -SIGMOID_CLAMP ? -SIGMOID_CLAMP : y;
    REAL s;
    REAL p = FN(exp_split)(y, &s);
    return (REAL)1 / ((REAL)1 + (s + s * p));
}

/* tanh|x| = e / (e + 2) with e = expm1(2|x|) = s p + (s - 1), exact in the
 * small-argument case s == 1, so tanh stays accurate near zero. */
static inline REAL FN(tanh)(REAL x)
{
    REAL a = x < 0 ? -x : x;
    a = a > TANH_CLAMP ? TANH_CLAMP : a;
    REAL s;
    REAL p = FN(exp_split)(a + a, &s);
    REAL e = s * p + (s - (REAL)1);
    REAL t = e / (e + (REAL)2);
    return x < 0 ? -t : t;
}

/* One select, so it vectorizes; NaN (x < 0 false) passes through. */
static inline REAL FN(relu)(REAL x) { return x < 0 ? (REAL)0 : x; }

/* The vector the packed kernels work in: one 64-byte panel row of units
 * (GCC vector extensions compile it to whatever the target has). */
typedef REAL FN(panel_vec) __attribute__((vector_size(CYRNN_PANEL_BYTES), aligned(sizeof(REAL)), may_alias));
