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
#define EXPM1_POLY(r) \
    ((r) * (1.0f + (r) * (1.0f / 2 + (r) * (1.0f / 6 + (r) * (1.0f / 24 + \
    (r) * (1.0f / 120 + (r) * (1.0f / 720 + (r) * (1.0f / 5040))))))))
#else
/* double: degree 13 keeps the polynomial's error below half an ulp. */
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
#define EXPM1_POLY(r) \
    ((r) * (1.0 + (r) * (1.0 / 2 + (r) * (1.0 / 6 + (r) * (1.0 / 24 + \
    (r) * (1.0 / 120 + (r) * (1.0 / 720 + (r) * (1.0 / 5040 + \
    (r) * (1.0 / 40320 + (r) * (1.0 / 362880 + (r) * (1.0 / 3628800 + \
    (r) * (1.0 / 39916800 + (r) * (1.0 / 479001600 + \
    (r) * (1.0 / 6227020800.0))))))))))))))
#endif
