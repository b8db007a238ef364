/* REAL and what the activations need of it, for float (CYRNN_DOUBLE 0) or
 * double (CYRNN_DOUBLE 1); included once per type by instantiate.h. */
#undef REAL
#undef SFX
#undef UINT
#undef MANT_BITS
#undef EXP_BIAS
#undef ROUND_MAGIC
#undef ROUND_MAGIC_BITS
#undef LN2_HI
#undef LN2_LO
#undef SIGMOID_CLAMP
#undef TANH_CLAMP
#undef EXPM1_POLY

#if !CYRNN_DOUBLE
/* float: e^y = 2^n (1 + p(r)), clamp bounds keep 2^n a normal number. */
#define REAL float
#define SFX f
#define UINT uint32_t
#define MANT_BITS 23
#define EXP_BIAS 127u
#define ROUND_MAGIC 12582912.0f /* 1.5 * 2^23 */
#define ROUND_MAGIC_BITS 0x4B400000u
#define LN2_HI 0.693145751953125f
#define LN2_LO 1.428606765330187e-06f
#define SIGMOID_CLAMP 80.0f
#define TANH_CLAMP 9.0f /* e / (e + 2) is exactly 1 from here on */
/* e^r - 1 = r g(r) for |r| <= ln2 / 2, g of degree 5 fitted by
 * tools/expm1_coefficients.py: within rounding, as Taylor's degree 6 */
#define EXPM1_POLY(r) \
    ((r) * (1.0f + (r) * (5e-01f + (r) * (1.6666505e-01f + (r) * (4.1666467e-02f + \
    (r) * (8.369155e-03f + (r) * 1.393365e-03f))))))
#else
/* double */
#define REAL double
#define SFX d
#define UINT uint64_t
#define MANT_BITS 52
#define EXP_BIAS 1023u
#define ROUND_MAGIC 6755399441055744.0 /* 1.5 * 2^52 */
#define ROUND_MAGIC_BITS 0x4338000000000000ull
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10
#define SIGMOID_CLAMP 700.0
#define TANH_CLAMP 20.0 /* e / (e + 2) is exactly 1 from here on */
/* g of degree 10, fitted as float's: within rounding, as Taylor's degree 12 */
#define EXPM1_POLY(r) \
    ((r) * (1.0 + (r) * (5.000000000000006e-01 + (r) * (1.666666666666667e-01 + \
    (r) * (4.1666666666573066e-02 + (r) * (8.333333333326136e-03 + \
    (r) * (1.388888893251478e-03 + (r) * (1.9841269874820627e-04 + \
    (r) * (2.480150431378554e-05 + (r) * (2.7557255400206422e-06 + \
    (r) * (2.7626371065696354e-07 + (r) * 2.5105217004720745e-08)))))))))))
#endif
