/* The kernels' instruction set, chosen once (see cpu_level.h). */
#include <stdlib.h>
#include "cpu_level.h"
#include "isa.h"

int cyrnn_cpu_best_level(void)
{
#if CYRNN_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 1;
#endif
    return 0;
}

int cyrnn_cpu_has_avx(void)
{
#if CYRNN_X86_DISPATCH
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx");
#else
    return 0;
#endif
}

int cyrnn_cpu_is_amd(void)
{
#if CYRNN_X86_DISPATCH
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
#else
    return 0;
#endif
}

static int cyrnn_choose_level(void)
{
    int level = cyrnn_cpu_best_level();
    const char *cap = getenv("CYRNN_CPU_LEVEL");
    /* only a lower level is taken: a request for more than the CPU has, or
     * a typo, must not select code the CPU cannot run */
    if (cap != NULL && cap[0] >= '0' && cap[0] < '0' + level && cap[1] == '\0')
        level = cap[0] - '0';
    return level;
}

int cyrnn_kernel_level(void)
{
    /* every thread that races here computes the same value */
    static int cached = -1;
    int level = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (level < 0) {
        level = cyrnn_choose_level();
        __atomic_store_n(&cached, level, __ATOMIC_RELAXED);
    }
    return level;
}

const char *cyrnn_kernel_level_name(int level)
{
    switch (level) {
    case 2:
        return "AVX-512";
    case 1:
        return "AVX2+FMA";
    default:
#if defined(__x86_64__)
        return "SSE2";
#elif defined(__aarch64__)
        return "NEON";
#else
        return "generic";
#endif
    }
}

int cyrnn_kernel_vector_bytes(int level)
{
    switch (level) {
    case 2:
        return CYRNN_VECTOR_BYTES_LEVEL2;
    case 1:
        return CYRNN_VECTOR_BYTES_LEVEL1;
    default:
        return CYRNN_VECTOR_BYTES_LEVEL0;
    }
}
