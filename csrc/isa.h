/* The geometry of the kernels at each level (see cpu_level.h): the width of
 * their vectors and how many rows a register tile takes, sized so that a
 * tile's accumulators, the weights it loads and a broadcast value stay in
 * the register file:
 *
 *   level 2, AVX-512: 32 registers of 64 bytes
 *   level 1, AVX2 + FMA: 16 registers of 32 bytes
 *   level 0, SSE2 (16 x 16 bytes, no FMA: a product needs a temporary) or
 *            NEON (32 x 16 bytes)
 *
 * A packed panel is one vector wide, so a unit block holds V = bytes /
 * sizeof(REAL) units and its weights are packed for the level in use.
 *
 * Tiles, in rows:
 *   STEP      forward step of an LSTM or GRU: 4 accumulators a row, plus the
 *             4 (LSTM) or 3 (GRU) gate vectors of W loaded for each k
 *   LSTM_PASSES  where more than 1, the LSTM's step tile takes STEP x
 *             LSTM_PASSES rows and its gates in that many passes, each over
 *             4 / LSTM_PASSES gates packed side by side: at AVX2, 3 rows x 4
 *             gates need 17 registers of 16, two passes of 6 rows x 2 gates
 *             15, and each k of weights serves twice the rows (tiles of one
 *             or two rows take all gates in one pass)
 *   STEP_RNN  forward step of an Elman RNN: STEP_RNN_BLOCKS accumulators a
 *             row (and the reset-before GRU's second phase)
 *   RESET     the reset-before GRU's first phase: 3 accumulators a row, plus
 *             3 gate vectors of W loaded for each k
 *   PRODUCT   BPTT's products (dL/dh, dx): PRODUCT_BLOCKS accumulators a row
 *   WEIGHT    weight gradients: WEIGHT_BLOCKS accumulators a row (at most V
 *             rows used)
 *   BACKWARD  the LSTM's fused BPTT step: a product tile of BACKWARD_BLOCKS
 *             accumulators a row, then the cell
 * SPLAT_FROM_VECTOR: whether a tile broadcasts its R adjacent values of x
 * from one vector load (see the x86 level 0 below)
 * A tile of several unit blocks loads NB weight vectors and R values of x
 * for R x NB products: with one block, a tile's loads nearly equal its
 * multiplies, which the narrower levels' load ports cannot feed; and every
 * tile reads its blocks' weights from L2, so the more rows a tile has, the
 * less often they are read.
 * STREAM_TAPE: whether a training forward pass stores its large tapes with
 * non-temporal stores (see step_template.h). Only where a vector is a whole
 * cache line: AVX2's half-line streams (a row's two halves stored by two
 * different blocks' tiles) cost LSTM medium training 95 against 85 ms.
 * SKIP_ZEROS: whether a relu RNN's step skips its state's zeros (about
 * half of them; rnn_sparse_rows in step_template.h). Each product then
 * loads its own weights, one load a multiply-add where the dense tile
 * shares each among its rows: worth it where loads keep up. RNN-relu
 * inference (100, 32, 128, 256) on a Zen 5, tools/ab_builds.py, 5 rounds:
 * level 1 4.99 -> 4.33 ms, x86 level 0 12.3 -> 9.6; level 2, 3 alternating
 * rounds of a first build: 2.51 -> 2.87 (two 64-byte loads a cycle for two
 * multiply-adds), so off there, and off for NEON, not measured.
 *
 * To check that a level's tiles stay in registers: `python tools/check_spills.py
 * [--cc clang]` compiles csrc/ as setup.py does and counts, in each kernel
 * variant's innermost loops that are mostly multiplies (its products), the
 * vectors on the stack; a tile that spills shows them by the dozen. By
 * hand: `perf annotate` a kernel (cyrnn_cell_step_avx2_f, say) and look for
 * (%rsp)/(%rbp) operands among the FMAs of its hot loop. */
#ifndef CYRNN_ISA_H
#define CYRNN_ISA_H

/* 6 x 4 step tiles (29 registers) and two-block products: against 4 rows
 * and one block, LSTM inference 4-12% and training 6-9% faster on a Sapphire
 * Rapids, the RNN 13%. Every tile reads its blocks' weights from L2, so the
 * more rows a tile has, the less often they are read. */
#define CYRNN_VECTOR_BYTES_LEVEL2 64
#define CYRNN_VECTOR_REGISTERS_LEVEL2 32
#define CYRNN_STEP_ROWS_LEVEL2 6
#define CYRNN_LSTM_PASSES_LEVEL2 1
#define CYRNN_RESET_ROWS_LEVEL2 8
#define CYRNN_STEP_RNN_ROWS_LEVEL2 8
#define CYRNN_STEP_RNN_BLOCKS_LEVEL2 2
#define CYRNN_PRODUCT_ROWS_LEVEL2 8
#define CYRNN_WEIGHT_ROWS_LEVEL2 8
#define CYRNN_BACKWARD_ROWS_LEVEL2 8
#define CYRNN_PRODUCT_BLOCKS_LEVEL2 2
#define CYRNN_WEIGHT_BLOCKS_LEVEL2 2
#define CYRNN_BACKWARD_BLOCKS_LEVEL2 2
#define CYRNN_STREAM_TAPE_LEVEL2 1
#define CYRNN_SPLAT_FROM_VECTOR_LEVEL2 0
#define CYRNN_SKIP_ZEROS_LEVEL2 0

#define CYRNN_VECTOR_BYTES_LEVEL1 32
#define CYRNN_VECTOR_REGISTERS_LEVEL1 16
#define CYRNN_STEP_ROWS_LEVEL1 3
/* two passes of 6 x 2 (alternating A/B, OpenBLAS at Haswell): LSTM inference
 * T=100 B=64 I=H=512 283 -> 264 ms, float64 medium 62.3 -> 59.1; training
 * steps within 2%, the GRU unchanged */
#define CYRNN_LSTM_PASSES_LEVEL1 2
#define CYRNN_RESET_ROWS_LEVEL1 4
#define CYRNN_STEP_RNN_ROWS_LEVEL1 4
#define CYRNN_STEP_RNN_BLOCKS_LEVEL1 3
#define CYRNN_PRODUCT_ROWS_LEVEL1 6
#define CYRNN_WEIGHT_ROWS_LEVEL1 4
#define CYRNN_BACKWARD_ROWS_LEVEL1 6
#define CYRNN_PRODUCT_BLOCKS_LEVEL1 2
#define CYRNN_WEIGHT_BLOCKS_LEVEL1 3
#define CYRNN_BACKWARD_BLOCKS_LEVEL1 2
#define CYRNN_STREAM_TAPE_LEVEL1 0
#define CYRNN_SPLAT_FROM_VECTOR_LEVEL1 0
#define CYRNN_SKIP_ZEROS_LEVEL1 1

#define CYRNN_VECTOR_BYTES_LEVEL0 16
#if defined(__aarch64__)
/* NEON: 32 registers, and fused multiply-adds */
#define CYRNN_VECTOR_REGISTERS_LEVEL0 32
#define CYRNN_STEP_ROWS_LEVEL0 4
#define CYRNN_LSTM_PASSES_LEVEL0 1
#define CYRNN_RESET_ROWS_LEVEL0 6
#define CYRNN_STEP_RNN_ROWS_LEVEL0 6
#define CYRNN_STEP_RNN_BLOCKS_LEVEL0 4
#define CYRNN_PRODUCT_ROWS_LEVEL0 6
#define CYRNN_PRODUCT_BLOCKS_LEVEL0 4
#define CYRNN_WEIGHT_ROWS_LEVEL0 4
#define CYRNN_WEIGHT_BLOCKS_LEVEL0 4
#define CYRNN_BACKWARD_ROWS_LEVEL0 6
#define CYRNN_BACKWARD_BLOCKS_LEVEL0 4
#define CYRNN_SPLAT_FROM_VECTOR_LEVEL0 0
#else
/* SSE2: 16 registers, a product needs a temporary */
#define CYRNN_VECTOR_REGISTERS_LEVEL0 16
#define CYRNN_STEP_ROWS_LEVEL0 2
#define CYRNN_LSTM_PASSES_LEVEL0 1
#define CYRNN_RESET_ROWS_LEVEL0 3
#define CYRNN_STEP_RNN_ROWS_LEVEL0 3
#define CYRNN_STEP_RNN_BLOCKS_LEVEL0 3
#define CYRNN_PRODUCT_ROWS_LEVEL0 3
#define CYRNN_PRODUCT_BLOCKS_LEVEL0 3
#define CYRNN_WEIGHT_ROWS_LEVEL0 4
#define CYRNN_WEIGHT_BLOCKS_LEVEL0 2
#define CYRNN_BACKWARD_ROWS_LEVEL0 3
#define CYRNN_BACKWARD_BLOCKS_LEVEL0 3
/* SSE2 has no load that broadcasts: a value of x broadcast takes a load and
 * a shuffle. Where a tile's R values of x for one k are adjacent (a weight
 * gradient's, R = V), one vector load and R shuffles serve them: the
 * weight-gradient kernel 46 -> 49 GFLOP/s (gcc 12, Zen 5, in L1). Loading
 * V values of k of a row at once (the other products) keeps R more vectors
 * live and was slower. */
#define CYRNN_SPLAT_FROM_VECTOR_LEVEL0 1
#endif
#define CYRNN_STREAM_TAPE_LEVEL0 0
#if defined(__x86_64__)
#define CYRNN_SKIP_ZEROS_LEVEL0 1
#else
#define CYRNN_SKIP_ZEROS_LEVEL0 0
#endif

/* The stack a relu RNN's step may take for its tiles' lists of nonzero
 * values (step_template.h): a state of up to 1016 units of float at level
 * 1 (tiles of four rows), 678 of double; 1361 and 908 at x86's level 0
 * (three rows). Larger states run the dense product. A thread's stack is
 * 8 MiB on glibc, 512 KiB for macOS's threads and 128 KiB on musl. */
#define CYRNN_NONZERO_LIST_BYTES 32768

/* Marks a loop over a tile's rows, blocks or gates: unrolled completely, so
 * that its accumulators are registers, not an array on the stack. Its trip
 * count is a constant only once the tile's function is inlined; clang
 * unrolls `GCC unroll` loops before that, by a run-time count (a tile then
 * ran from the stack: 2.5-3.6x slower than GCC's build). */
#if defined(__clang__)
#define CYRNN_CLANG 1
#define CYRNN_TILE_LOOP _Pragma("clang loop unroll(full)")
#else
#define CYRNN_CLANG 0
#define CYRNN_TILE_LOOP _Pragma("GCC unroll 16")
#endif

#endif
