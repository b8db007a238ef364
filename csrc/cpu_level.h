/* Which instruction set the kernels run: chosen once per process, the same
 * for every kernel, since weights are packed in the layout of the kernel
 * that reads them. */
#ifndef CYRNN_CPU_LEVEL_H
#define CYRNN_CPU_LEVEL_H

/* 2: AVX-512 (F, DQ, VL, BW), 1: AVX2 + FMA, 0: the baseline of the build
 * (SSE2 on x86-64, NEON on aarch64). Run-time dispatch needs x86-64 and a
 * compiler with target attributes and __builtin_cpu_supports (GCC, clang). */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CYRNN_X86_DISPATCH 1
#else
#define CYRNN_X86_DISPATCH 0
#endif

/* The level in use: the best this CPU runs, lowered by the environment
 * variable CYRNN_CPU_LEVEL ("0" or "1"; anything else is ignored). */
int cyrnn_kernel_level(void);
/* The best level this CPU runs, ignoring CYRNN_CPU_LEVEL. */
int cyrnn_cpu_best_level(void);
/* Whether the CPU has AVX (256-bit vectors, which any BLAS of x86-64 uses
 * where it can), whatever the kernels' level; 0 off x86-64. */
int cyrnn_cpu_has_avx(void);
/* Whether the CPU is AMD's; 0 off x86-64. Zen's L3 holds what its cores'
 * L2s evict, which changes where a tape is best stored (_cpu.pyx). */
int cyrnn_cpu_is_amd(void);
/* "AVX-512", "AVX2+FMA", "SSE2", "NEON" or "generic": the level's name on
 * this build. */
const char *cyrnn_kernel_level_name(int level);
/* The width in bytes of the kernels' vectors (their panels) at a level. */
int cyrnn_kernel_vector_bytes(int level);

#endif
