/* One level's kernels of CYRNN_TEMPLATE, for float and double (see
 * instantiate.h): CYRNN_ISA names the level, CYRNN_ISA_LEVEL numbers it.
 * Every function of the pass, helpers included, is compiled for the level's
 * instruction set, so that the always_inline helpers inline into the
 * kernels. */
#define CYRNN_LEVEL_VALUE(name) CYRNN_PASTE(name, CYRNN_ISA_LEVEL)
#define CYRNN_PANEL_BYTES CYRNN_LEVEL_VALUE(CYRNN_VECTOR_BYTES_LEVEL)
#define CYRNN_STEP_ROWS CYRNN_LEVEL_VALUE(CYRNN_STEP_ROWS_LEVEL)
#define CYRNN_RESET_ROWS CYRNN_LEVEL_VALUE(CYRNN_RESET_ROWS_LEVEL)
#define CYRNN_LSTM_PASSES CYRNN_LEVEL_VALUE(CYRNN_LSTM_PASSES_LEVEL)
#define CYRNN_VECTOR_REGISTERS CYRNN_LEVEL_VALUE(CYRNN_VECTOR_REGISTERS_LEVEL)
#define CYRNN_STEP_RNN_ROWS CYRNN_LEVEL_VALUE(CYRNN_STEP_RNN_ROWS_LEVEL)
#define CYRNN_STEP_RNN_BLOCKS CYRNN_LEVEL_VALUE(CYRNN_STEP_RNN_BLOCKS_LEVEL)
#define CYRNN_PRODUCT_ROWS CYRNN_LEVEL_VALUE(CYRNN_PRODUCT_ROWS_LEVEL)
#define CYRNN_WEIGHT_ROWS CYRNN_LEVEL_VALUE(CYRNN_WEIGHT_ROWS_LEVEL)
#define CYRNN_BACKWARD_ROWS CYRNN_LEVEL_VALUE(CYRNN_BACKWARD_ROWS_LEVEL)
#define CYRNN_STREAM_TAPE CYRNN_LEVEL_VALUE(CYRNN_STREAM_TAPE_LEVEL)
#define CYRNN_SPLAT_FROM_VECTOR CYRNN_LEVEL_VALUE(CYRNN_SPLAT_FROM_VECTOR_LEVEL)
#define CYRNN_SKIP_ZEROS CYRNN_LEVEL_VALUE(CYRNN_SKIP_ZEROS_LEVEL)
#define CYRNN_PRODUCT_BLOCKS CYRNN_LEVEL_VALUE(CYRNN_PRODUCT_BLOCKS_LEVEL)
#define CYRNN_WEIGHT_BLOCKS CYRNN_LEVEL_VALUE(CYRNN_WEIGHT_BLOCKS_LEVEL)
#define CYRNN_BACKWARD_BLOCKS CYRNN_LEVEL_VALUE(CYRNN_BACKWARD_BLOCKS_LEVEL)
#define FN(name) CYRNN_CAT3(name, CYRNN_ISA, SFX)
/* Marks the products' loops over k. At x86's level 0, two k a turn: a turn
 * of one k (about 114 bytes of SSE2) ran up to 15% faster or slower with
 * where it fell in its cache lines (docs/ARCHITECTURE.md); two a turn made
 * the peephole LSTM's inference on a Zen 5 15% faster, as fast as the plain
 * LSTM's, and the other cells' steps up to 2.5%, none slower. */
#if CYRNN_ISA_LEVEL == 0 && defined(__x86_64__) && !defined(__clang__)
#define CYRNN_K_LOOP _Pragma("GCC unroll 2")
#else
#define CYRNN_K_LOOP
#endif

#if CYRNN_ISA_LEVEL > 0 && defined(__clang__)
#if CYRNN_ISA_LEVEL == 2
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx512cd,avx2,fma,bmi,bmi2,lzcnt,movbe,f16c,popcnt"))), apply_to = function)
#else
#pragma clang attribute push(__attribute__((target("avx2,fma,bmi,bmi2,lzcnt,movbe,f16c,popcnt"))), apply_to = function)
#endif
#elif CYRNN_ISA_LEVEL > 0
#pragma GCC push_options
#if CYRNN_ISA_LEVEL == 2
#pragma GCC target("arch=x86-64-v4")
#else
#pragma GCC target("arch=x86-64-v3")
#endif
#endif

#define CYRNN_DOUBLE 0
#include "real.h"
#include "activations.h"
#include "panel_tile.h"
#include CYRNN_TEMPLATE
#undef CYRNN_DOUBLE
#define CYRNN_DOUBLE 1
#include "real.h"
#include "activations.h"
#include "panel_tile.h"
#include CYRNN_TEMPLATE
#undef CYRNN_DOUBLE

#if CYRNN_ISA_LEVEL > 0 && defined(__clang__)
#pragma clang attribute pop
#elif CYRNN_ISA_LEVEL > 0
#pragma GCC pop_options
#endif

#undef FN
#undef CYRNN_K_LOOP
#undef CYRNN_LEVEL_VALUE
#undef CYRNN_PANEL_BYTES
#undef CYRNN_STEP_ROWS
#undef CYRNN_RESET_ROWS
#undef CYRNN_LSTM_PASSES
#undef CYRNN_VECTOR_REGISTERS
#undef CYRNN_STEP_RNN_ROWS
#undef CYRNN_STEP_RNN_BLOCKS
#undef CYRNN_PRODUCT_ROWS
#undef CYRNN_WEIGHT_ROWS
#undef CYRNN_BACKWARD_ROWS
#undef CYRNN_STREAM_TAPE
#undef CYRNN_SPLAT_FROM_VECTOR
#undef CYRNN_SKIP_ZEROS
#undef CYRNN_PRODUCT_BLOCKS
#undef CYRNN_WEIGHT_BLOCKS
#undef CYRNN_BACKWARD_BLOCKS
