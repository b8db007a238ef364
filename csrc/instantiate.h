/* Instantiates the template named by CYRNN_TEMPLATE once for float and once
 * for double. A template writes REAL for the type and FN(name) for a name
 * carrying the type suffix, and gets the activations of activations.h. */
#include <stdint.h>
#include <string.h>
#include "cyrnn_kernels.h"

#define CYRNN_CAT_(a, b) a##_##b
#define CYRNN_CAT(a, b) CYRNN_CAT_(a, b)
#define FN(name) CYRNN_CAT(name, SFX)

/* Kernels that pick their instruction set at run time come in three
 * variants: AVX-512, AVX2 + FMA and baseline x86-64, so that a portable wheel
 * is fast here and still runs on an older CPU. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CYRNN_X86_DISPATCH 1
#include <stdlib.h>
#ifdef CYRNN_NATIVE
/* Compiled with -march=native for this CPU only: every variant has its
 * instruction sets already, and a narrower target would stop GCC inlining
 * the always_inline helpers the variants are made of. */
#define CYRNN_TARGET_avx512
#define CYRNN_TARGET_avx2
#else
#define CYRNN_TARGET_avx512 __attribute__((target("arch=x86-64-v4")))
#define CYRNN_TARGET_avx2 __attribute__((target("arch=x86-64-v3")))
#endif
/* 2: AVX-512, 1: AVX2 + FMA, 0: baseline. CYRNN_CPU_LEVEL=0 or 1 in the
 * environment caps it, so that the tests can run the kernels an older CPU
 * would run. */
static inline int cyrnn_cpu_level(void)
{
    int level = 0;
    const char *cap = getenv("CYRNN_CPU_LEVEL");
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
        level = 2;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        level = 1;
    if (cap != NULL && cap[0] >= '0' && cap[0] < '0' + level && cap[1] == '\0')
        level = cap[0] - '0';
    return level;
}
/* Calls the void function FN(NAME_avx512), FN(NAME_avx2) or FN(NAME_generic)
 * with these arguments, the best this CPU (so capped) runs. */
#define CYRNN_DISPATCH(NAME, ...)                                              \
    do {                                                                       \
        static int isa = -1; /* benign race: every thread finds the same */   \
        if (isa < 0)                                                           \
            isa = cyrnn_cpu_level();                                           \
        if (isa == 2)                                                          \
            FN(NAME##_avx512)(__VA_ARGS__);                                    \
        else if (isa == 1)                                                     \
            FN(NAME##_avx2)(__VA_ARGS__);                                      \
        else                                                                   \
            FN(NAME##_generic)(__VA_ARGS__);                                   \
    } while (0)
/* The AVX-512 and AVX2 variants of a loop the compiler vectorizes itself:
 * FN(NAME_body), always_inline, compiled once per target. */
#define CYRNN_WIDE_VARIANTS(NAME, PARAMS, ...)                                 \
    CYRNN_TARGET_avx512 static void FN(NAME##_avx512) PARAMS                   \
    { FN(NAME##_body)(__VA_ARGS__); }                                          \
    CYRNN_TARGET_avx2 static void FN(NAME##_avx2) PARAMS                       \
    { FN(NAME##_body)(__VA_ARGS__); }
#else
#define CYRNN_X86_DISPATCH 0
#define CYRNN_DISPATCH(NAME, ...) FN(NAME##_generic)(__VA_ARGS__)
#define CYRNN_WIDE_VARIANTS(NAME, PARAMS, ...)
#endif
/* A variant's target attribute, by its name; the baseline keeps the build's. */
#define CYRNN_TARGET_generic
/* The exported void kernel FN(NAME) PARAMS, calling FN(NAME_body) (an
 * always_inline loop) with the arguments given, in the variant the CPU runs
 * best. */
#define CYRNN_VECTORIZED_KERNEL(NAME, PARAMS, ...)                             \
    CYRNN_WIDE_VARIANTS(NAME, PARAMS, __VA_ARGS__)                             \
    static void FN(NAME##_generic) PARAMS { FN(NAME##_body)(__VA_ARGS__); }   \
    void FN(NAME) PARAMS { CYRNN_DISPATCH(NAME, __VA_ARGS__); }
#define CYRNN_PANEL_BYTES 64

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
#include "activations.h"
#include "panel_tile.h"
#include CYRNN_TEMPLATE
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
#include "activations.h"
#include "panel_tile.h"
#include CYRNN_TEMPLATE
