/* One fused time step of a cell (template, see instantiate.h): for a range
 * of unit blocks, the pre-activations
 *
 *   bias + x_t W_ih^T + h_{t-1} W_hh^T
 *
 * are accumulated in registers, both weights packed by pack_weights, and the
 * cell is applied to each register tile before it leaves L1. Nothing of the
 * pre-activations goes to memory: no input-projection pass, no recurrent
 * product buffer, no bias fill. The activated gates and the cell's extra
 * values go to the tape when training; inference stores only the state
 * (the tape's stores evicted the streamed weights: 7% of a step).
 *
 * The GRU keeps W_hn h + b_hn apart from x W_in^T + b_in (r multiplies only
 * the former), so its tile has a fourth accumulator (the registry's `accumulators`). A
 * peephole LSTM adds c's weights to i, f and o in the cell. */

#ifndef CYRNN_ENTRY_POINTS

#define V ((int)(CYRNN_PANEL_BYTES / sizeof(REAL)))

/* Vectors of the packed bias of one block: the A accumulators' starting
 * values, then a peephole LSTM's three rows (i, f, o). */
static inline int FN(packed_bias_vectors)(int cell)
{
    return cyrnn_cell_accumulators(cell) + CYRNN_PEEPHOLE_ROWS * cyrnn_cell_peephole(cell);
}

static ptrdiff_t FN(cyrnn_packed_bias_size)(int cell, int H)
{
    return (ptrdiff_t)((H + V - 1) / V) * FN(packed_bias_vectors)(cell) * V;
}

/* The value of packed bias vector a of one unit: a gate's folded bias, the
 * GRU's b_hn (a = 3) or a peephole weight (a >= A). */
static inline REAL FN(packed_bias_value)(int cell, int H, int a, int unit,
                                         const REAL *restrict bias,
                                         const REAL *restrict bias_hn,
                                         const REAL *restrict peephole)
{
    int G = cyrnn_cell_gates(cell), A = cyrnn_cell_accumulators(cell);
    if (unit >= H)
        return 0;
    if (a < G)
        return bias[a * H + unit];
    return a < A ? bias_hn[unit] : peephole[(a - A) * H + unit];
}

/* packed_bias[(block * P + a) * V + v] for the P vectors of each block
 * (zero past H). */
static void FN(cyrnn_pack_bias)(int cell, int H, const REAL *restrict bias,
                                const REAL *restrict bias_hn, const REAL *restrict peephole,
                                REAL *restrict packed_bias)
{
    int blocks = (H + V - 1) / V, P = FN(packed_bias_vectors)(cell);
    for (int block = 0; block < blocks; ++block)
        for (int a = 0; a < P; ++a)
            for (int v = 0; v < V; ++v)
                packed_bias[((ptrdiff_t)block * P + a) * V + v] = FN(packed_bias_value)(
                    cell, H, a, block * V + v, bias, bias_hn, peephole);
}

/* The cells of one row of one block, on whole vectors: acc holds the A
 * pre-activations of V units. What the tape needs goes to `keep` (one
 * vector per value) whether or not there is a tape, so that inference and
 * training compute alike (the tests check they agree bit for bit). */
static inline __attribute__((always_inline)) FN(panel_vec)
FN(lstm_cell)(const int peephole, const FN(panel_vec) *acc, const FN(panel_vec) *p,
              FN(panel_vec) *c, FN(panel_vec) *keep)
{
    FN(panel_vec) cp = *c, ai = acc[0], af = acc[1], ao = acc[3];
    if (peephole) { /* p: the weights of c into i, f and o */
        ai += p[0] * cp;
        af += p[1] * cp;
    }
    FN(panel_vec) i = FN(sigmoid)(ai), f = FN(sigmoid)(af), g = FN(tanh)(acc[2]);
    FN(panel_vec) cn = f * cp + i * g, tc = FN(tanh)(cn);
    if (peephole)
        ao += p[2] * cn;
    FN(panel_vec) o = FN(sigmoid)(ao);
    *c = cn;
    keep[0] = i;
    keep[1] = f;
    keep[2] = g;
    keep[3] = o;
    keep[4] = cp;
    keep[5] = tc;
    return o * tc;
}

static inline __attribute__((always_inline)) FN(panel_vec)
FN(gru_cell)(const FN(panel_vec) *acc, FN(panel_vec) hprev, FN(panel_vec) *keep)
{
    FN(panel_vec) r = FN(sigmoid)(acc[0]), z = FN(sigmoid)(acc[1]), hn = acc[3];
    FN(panel_vec) n = FN(tanh)(acc[2] + r * hn);
    keep[0] = r;
    keep[1] = z;
    keep[2] = n;
    keep[3] = hn;
    return n + z * (hprev - n);
}

/* Stores v to dst, a vector-aligned row of the tape, past the caches. The
 * tape is read only by BPTT, long after the forward pass has moved on:
 * stored normally, each line is first read in (write-allocate) and then
 * evicts the streamed weights. */
static inline __attribute__((always_inline)) void
FN(stream_vec)(REAL *dst, FN(panel_vec) v)
{
#if CYRNN_ISA_LEVEL == 2
    _mm512_stream_si512((__m512i *)dst, (__m512i)v);
#elif CYRNN_ISA_LEVEL == 1
    _mm256_stream_si256((__m256i *)dst, (__m256i)v);
#elif CYRNN_X86_DISPATCH
    _mm_stream_si128((__m128i *)dst, (__m128i)v);
#else
    *(FN(panel_vec) *)dst = v;
#endif
}

/* Stores `count` kept vectors to rows of the tape `stride` apart, streamed
 * past the caches (if stream) where a whole vector goes to an aligned row. */
static inline __attribute__((always_inline)) void
FN(store_kept)(int stream, int count, int units, const FN(panel_vec) *keep,
               REAL *tape, ptrdiff_t stride)
{
    for (int q = 0; q < count; ++q) {
        REAL *dst = tape + q * stride;
        if (units == V && stream && ((uintptr_t)dst % CYRNN_PANEL_BYTES) == 0)
            FN(stream_vec)(dst, keep[q]);
        else
            FN(store_units)(dst, keep[q], units);
    }
}

/* acc[r][.] += sum_k src[r * ld + k] W[k] for the R rows of a tile, W packed
 * by G gates; with split, gate 2 goes to accumulator 3 (the GRU's W_hn h).
 *
 * Each k loads the G gates' weights, then broadcasts each row's value of x:
 * R x A accumulators, G weights and one value. Where that exceeds the
 * register file (the LSTM at AVX2: 3 x 4 + 4 + 1 = 17 of 16), GCC reads the
 * last gate's weights from memory in each multiply, but clang spills an
 * accumulator through the stack on every k (LSTM medium inference 36 ms
 * against GCC's 28); for clang the R values of x come first there, then one
 * gate's weights at a time (R x A + R + 1), which GCC runs 10% slower. */
static inline __attribute__((always_inline)) void
FN(accumulate_rows)(const int R, const int G, const int A, const int split, int K,
                    const REAL *restrict packed, const REAL *restrict src, ptrdiff_t ld,
                    FN(panel_vec) acc[R][A])
{
    if (CYRNN_CLANG && R * A + G + 1 > CYRNN_VECTOR_REGISTERS) {
        FN(panel_vec) s[R]; /* out here: see panel_accumulate */
        for (int k = 0; k < K; ++k) {
            const FN(panel_vec) *w = (const FN(panel_vec) *)(packed + (ptrdiff_t)k * G * V);
            CYRNN_TILE_LOOP
            for (int r = 0; r < R; ++r)
                s[r] = FN(splat)(src[r * ld + k]);
            CYRNN_TILE_LOOP
            for (int g = 0; g < G; ++g) {
                FN(panel_vec) wg = w[g];
                CYRNN_TILE_LOOP
                for (int r = 0; r < R; ++r)
                    acc[r][split && g == 2 ? 3 : g] += s[r] * wg;
            }
        }
        return;
    }
    CYRNN_K_LOOP
    for (int k = 0; k < K; ++k) {
        const FN(panel_vec) *w = (const FN(panel_vec) *)(packed + (ptrdiff_t)k * G * V);
        CYRNN_TILE_LOOP
        for (int r = 0; r < R; ++r) {
            REAL x = src[r * ld + k];
            CYRNN_TILE_LOOP
            for (int g = 0; g < G; ++g)
                acc[r][split && g == 2 ? 3 : g] += x * w[g];
        }
    }
}

/* acc[r][.] += the pre-activations a product outside the step left in pre
 * (rows G*H apart, gate g at g*H: see cyrnn_cell_step), units [j0, j0 +
 * units) of rows 0 ... R - 1; with split, gate 2 goes to accumulator 3 as
 * in accumulate_rows. */
static inline __attribute__((always_inline)) void
FN(add_preactivations)(const int R, const int G, const int A, const int split,
                       const REAL *restrict pre, int H, int j0, int units,
                       FN(panel_vec) acc[R][A])
{
    const ptrdiff_t GH = (ptrdiff_t)G * H;
    CYRNN_TILE_LOOP
    for (int r = 0; r < R; ++r)
        CYRNN_TILE_LOOP
        for (int g = 0; g < G; ++g)
            acc[r][split && g == 2 ? 3 : g] += FN(load_units)(pre + r * GH + g * H + j0, units);
}

#if CYRNN_LSTM_PASSES > 1
/* accumulate_rows over all four gates of a two-pass packing, gates 0 and 1
 * from w0 and 2 and 3 from w1: for tiles of one or two rows, whose passes
 * would have too few accumulators to hide the multiplies' latency (one
 * row: inference at B = 1 23% slower). */
static inline __attribute__((always_inline)) void
FN(accumulate_halves)(const int R, const int A, int K, const REAL *restrict w0,
                      const REAL *restrict w1, const REAL *restrict src, ptrdiff_t ld,
                      FN(panel_vec) acc[R][A])
{
    for (int k = 0; k < K; ++k) {
        const FN(panel_vec) *a = (const FN(panel_vec) *)(w0 + (ptrdiff_t)k * 2 * V);
        const FN(panel_vec) *b = (const FN(panel_vec) *)(w1 + (ptrdiff_t)k * 2 * V);
        FN(panel_vec) w[4] = {a[0], a[1], b[0], b[1]};
        CYRNN_TILE_LOOP
        for (int r = 0; r < R; ++r) {
            REAL x = src[r * ld + k];
            CYRNN_TILE_LOOP
            for (int g = 0; g < 4; ++g)
                acc[r][g] += x * w[g];
        }
    }
}

/* acc[r][g0 + g] += sum_k src[r * ld + k] W[k] for gates g0 ... g0 + Gs - 1
 * of one pass of an LSTM tile (see LSTM_PASSES in isa.h); rows 3 and on
 * are read from their own base, so that six rows need two row offsets:
 * with five, GCC kept one on the stack. */
static inline __attribute__((always_inline)) void
FN(accumulate_pass)(const int R, const int Gs, const int g0, const int A, int K,
                    const REAL *restrict packed, const REAL *restrict src, ptrdiff_t ld,
                    FN(panel_vec) acc[R][A])
{
    const REAL *src3 = src + 3 * ld;
    for (int k = 0; k < K; ++k) {
        const FN(panel_vec) *w = (const FN(panel_vec) *)(packed + (ptrdiff_t)k * Gs * V);
        CYRNN_TILE_LOOP
        for (int r = 0; r < R; ++r) {
            REAL x = r < 3 ? src[r * ld + k] : src3[(r - 3) * ld + k];
            CYRNN_TILE_LOOP
            for (int g = 0; g < Gs; ++g)
                acc[r][g0 + g] += x * w[g];
        }
    }
}

/* The products of a tile whose packing of G gates the step takes in
 * passes (x's with I values a row, h's with Hout): all gates at once for
 * one or two rows, else pass by pass. */
static inline __attribute__((always_inline)) void
FN(accumulate_in_passes)(const int R, const int G, const int A, int I, const REAL *restrict pih,
                         const REAL *restrict xt, ptrdiff_t ldx, int Hout,
                         const REAL *restrict phh, const REAL *restrict ht, ptrdiff_t ldh,
                         FN(panel_vec) acc[R][A])
{
    const int S = FN(gate_passes)(G), Gs = G / S;
    if (S == 2 && R <= 2) {
        FN(accumulate_halves)(R, A, I, pih, pih + (ptrdiff_t)I * 2 * V, xt, ldx, acc);
        FN(accumulate_halves)(R, A, Hout, phh, phh + (ptrdiff_t)Hout * 2 * V, ht, ldh, acc);
        return;
    }
    CYRNN_TILE_LOOP
    for (int s = 0; s < S; ++s) {
        FN(accumulate_pass)(R, Gs, s * Gs, A, I, pih + (ptrdiff_t)s * I * Gs * V, xt, ldx,
                            acc);
        FN(accumulate_pass)(R, Gs, s * Gs, A, Hout, phh + (ptrdiff_t)s * Hout * Gs * V, ht,
                            ldh, acc);
    }
}
#endif

/* Stores a row's new state (V units from j, `units` of them real) to out
 * and, for a row the next step carries, to next_h (rows H apart), where the
 * next step reads it. */
static inline __attribute__((always_inline)) void
FN(store_state)(FN(panel_vec) hv, ptrdiff_t row, int j, int units, int H,
                REAL *restrict out, ptrdiff_t ldo, REAL *restrict next_h, int next_rows)
{
    FN(store_units)(out + row * ldo + j, hv, units);
    if (row < next_rows)
        FN(store_units)(next_h + row * H + j, hv, units);
}

/* The cell of one row (`row`) of a tile of an LSTM or GRU, on the
 * accumulators acc of its V units from j0 (p: a peephole LSTM's weights):
 * the state and, with a tape, what it keeps. */
static inline __attribute__((always_inline)) void
FN(row_cell)(const int cell, int stream, int H, const FN(panel_vec) *acc,
             const FN(panel_vec) *p, ptrdiff_t row, int j0, int units,
             const REAL *restrict h, ptrdiff_t ldh, REAL *restrict c, REAL *restrict out,
             ptrdiff_t ldo, REAL *restrict gates, REAL *restrict extra,
             REAL *restrict next_h, int next_rows)
{
    const ptrdiff_t GH = (ptrdiff_t)cyrnn_cell_gates(cell) * H;
    const ptrdiff_t E = (ptrdiff_t)cyrnn_cell_extra(cell) * H;
    FN(panel_vec) keep[6], hv;
    if (cyrnn_cell_peephole(cell) || cell == CYRNN_CELL_LSTM) {
        REAL *cr = c + row * H + j0;
        FN(panel_vec) cv = FN(load_units)(cr, units);
        hv = FN(lstm_cell)(cyrnn_cell_peephole(cell), acc, p, &cv, keep);
        FN(store_units)(cr, cv, units);
        if (gates) {
            FN(store_kept)(stream, 4, units, keep, gates + row * GH + j0, H);
            FN(store_kept)(stream, 2, units, keep + 4, extra + row * E + j0, H);
        }
    } else { /* GRU: the RNN has rnn_step_tile */
        FN(panel_vec) hp = FN(load_units)(h + row * ldh + j0, units);
        hv = FN(gru_cell)(acc, hp, keep);
        if (gates) {
            FN(store_kept)(stream, 3, units, keep, gates + row * GH + j0, H);
            FN(store_kept)(stream, 1, units, keep + 3, extra + row * E + j0, H);
        }
    }
    FN(store_state)(hv, row, j0, units, H, out, ldo, next_h, next_rows);
}

/* Rows r0 ... r0 + R - 1 of one unit block of an LSTM or GRU. c has rows
 * of H, gates of G*H, extra of E; c is NULL for the GRU, gates and extra
 * without a tape. */
static inline __attribute__((always_inline)) void
FN(step_tile)(const int R, int r0, const int cell, int stream, int H, int I, int Hout,
              const REAL *restrict pih, const REAL *restrict phh,
              const REAL *restrict pbias, const REAL *restrict pre_x,
              const REAL *restrict pre_h, const REAL *restrict x,
              ptrdiff_t ldx, const REAL *restrict h, ptrdiff_t ldh, REAL *restrict c,
              REAL *restrict out, ptrdiff_t ldo, REAL *restrict gates,
              REAL *restrict extra, REAL *restrict next_h, int next_rows, int j0,
              int units)
{
    const int G = cyrnn_cell_gates(cell), A = cyrnn_cell_accumulators(cell);
    const int split = cell == CYRNN_CELL_GRU; /* W_hn h goes to accumulator 3 */
    const ptrdiff_t GH = (ptrdiff_t)G * H;
    const REAL *xt = x + r0 * ldx, *ht = h + r0 * ldh;
    FN(panel_vec) acc[R][A];
    const FN(panel_vec) *b = (const FN(panel_vec) *)pbias;
    CYRNN_TILE_LOOP
    for (int r = 0; r < R; ++r)
        CYRNN_TILE_LOOP
        for (int a = 0; a < A; ++a)
            acc[r][a] = b[a];
    if (pre_x)
        FN(add_preactivations)(R, G, A, 0, pre_x + r0 * GH, H, j0, units, acc);
    if (pre_h)
        FN(add_preactivations)(R, G, A, split, pre_h + r0 * GH, H, j0, units, acc);
#if CYRNN_LSTM_PASSES > 1
    if (FN(gate_passes)(G) > 1)
        FN(accumulate_in_passes)(R, G, A, I, pih, xt, ldx, Hout, phh, ht, ldh, acc);
    else
#endif
    {
        FN(accumulate_rows)(R, G, A, 0, I, pih, xt, ldx, acc);
        FN(accumulate_rows)(R, G, A, split, Hout, phh, ht, ldh, acc);
    }
#if CYRNN_LSTM_PASSES > 1
    /* one row's cell at a time: GCC unrolled the cells of a 6-row tile
     * together and spilled (a training forward pass 7% slower) */
#pragma GCC unroll 1
#endif
    for (int r = 0; r < R; ++r)
        FN(row_cell)(cell, stream, H, acc[r], b + A, r0 + r, j0, units, h, ldh, c, out, ldo,
                     gates, extra, next_h, next_rows);
}

#include "nonzero_template.h"

/* acc[r][b] += sum over m < M of vals[r ldl + m] times row offs[r ldl + m]
 * of block b's packed weights (panel + b stride): the product with a tile's
 * rows of a relu state, its zeros skipped (nonzero_list). The R rows' lists
 * go in step, padded to the longest (M) with zeros times the first row.
 * Each product loads its own row of weights, where the dense product shares
 * one among the tile's rows: about 70% of its speed a product, for half the
 * products. */
static inline __attribute__((always_inline)) void
FN(sparse_accumulate)(const int R, const int NB, int M, const REAL *restrict panel,
                      ptrdiff_t stride, const REAL *restrict vals,
                      const int32_t *restrict offs, ptrdiff_t ldl, FN(panel_vec) acc[R][NB])
{
    const REAL *w[NB];
    CYRNN_TILE_LOOP
    for (int b = 0; b < NB; ++b)
        w[b] = panel + b * stride;
    for (int m = 0; m < M; ++m) {
        CYRNN_TILE_LOOP
        for (int r = 0; r < R; ++r) {
            REAL s = vals[r * ldl + m];
            const ptrdiff_t o = offs[r * ldl + m];
            CYRNN_TILE_LOOP
            for (int b = 0; b < NB; ++b)
                acc[r][b] += s * *(const FN(panel_vec) *)(w[b] + o);
        }
    }
}

/* Rows r0 ... r0 + R - 1 of the NB unit blocks from `block` of an Elman
 * RNN: one accumulator a block, so a tile takes several blocks to reuse
 * each value of x it broadcasts (see isa.h). gates (H) is the tape, or
 * NULL. With vals, the product with h runs over the rows' lists of nonzero
 * values (sparse_accumulate; M entries each, ldl apart) instead of h. */
static inline __attribute__((always_inline)) void
FN(rnn_step_tile)(const int R, int r0, const int NB, int block, int relu, int stream, int H,
                  int I, const REAL *restrict packed_ih, const REAL *restrict packed_hh,
                  const REAL *restrict packed_bias, const REAL *restrict pre_x,
                  const REAL *restrict pre_h, const REAL *restrict x,
                  ptrdiff_t ldx, int Kh, const REAL *restrict h, ptrdiff_t ldh,
                  REAL *restrict out, ptrdiff_t ldo, REAL *restrict gates,
                  REAL *restrict next_h, int next_rows, int M, const REAL *restrict vals,
                  const int32_t *restrict offs, ptrdiff_t ldl)
{
    const REAL *pih = packed_ih + (ptrdiff_t)block * I * V;
    const REAL *phh = packed_hh + (ptrdiff_t)block * H * V;
    const REAL *pbias = packed_bias + (ptrdiff_t)block * V;
    const int j0 = block * V;
    FN(panel_vec) acc[R][NB];
    CYRNN_TILE_LOOP
    for (int r = 0; r < R; ++r)
        CYRNN_TILE_LOOP
        for (int n = 0; n < NB; ++n) {
            int j = j0 + n * V, units = H - j < V ? H - j : V;
            acc[r][n] = ((const FN(panel_vec) *)pbias)[n];
            if (pre_x)
                acc[r][n] += FN(load_units)(pre_x + (r0 + r) * (ptrdiff_t)H + j, units);
            if (pre_h)
                acc[r][n] += FN(load_units)(pre_h + (r0 + r) * (ptrdiff_t)H + j, units);
        }
    FN(panel_accumulate)(R, NB, I, pih, (ptrdiff_t)I * V, x + r0 * ldx, ldx, 1, acc);
    if (vals)
        FN(sparse_accumulate)(R, NB, M, phh, (ptrdiff_t)H * V, vals, offs, ldl, acc);
    else
        FN(panel_accumulate)(R, NB, Kh, phh, (ptrdiff_t)H * V, h + r0 * ldh, ldh, 1, acc);
    CYRNN_TILE_LOOP
    for (int r = 0; r < R; ++r)
        CYRNN_TILE_LOOP
        for (int n = 0; n < NB; ++n) {
            ptrdiff_t row = r0 + r;
            int j = j0 + n * V, units = H - j < V ? H - j : V;
            FN(panel_vec) y = relu ? FN(relu)(acc[r][n]) : FN(tanh)(acc[r][n]);
            if (gates)
                FN(store_kept)(stream, 1, units, &y, gates + row * H + j, H);
            FN(store_state)(y, row, j, units, H, out, ldo, next_h, next_rows);
        }
}

/* A relu RNN's rows r0 ... r0 + R - 1 over blocks [first_block, end_block):
 * the lists of their states' nonzero values (in vals and offs, rows ldl
 * apart), then each group of blocks' tile. The rows go outside the blocks
 * (the other way round, each tile's lists would be made again for every
 * group), so the blocks' weights come from L2 for each tile; the step
 * stays in L2 either way. Where the lists are long, the tile runs the
 * dense product: at AVX2 on a Zen 5 (RNN-relu inference of medium size,
 * the bias moved to set the density), with 71% of the state nonzero the
 * lists took 5.3 ms and the dense product 5.1, with 50% 4.5 against 5.0. */
static inline __attribute__((always_inline)) void
FN(rnn_sparse_rows)(const int R, int r0, int first_block, int end_block, int stream, int H,
                    int I, const REAL *restrict packed_ih, const REAL *restrict packed_hh,
                    const REAL *restrict packed_bias, const REAL *restrict pre_x,
                    const REAL *restrict x, ptrdiff_t ldx, int Kh, const REAL *restrict h,
                    ptrdiff_t ldh, REAL *restrict out, ptrdiff_t ldo, REAL *restrict gates,
                    REAL *restrict next_h, int next_rows, REAL *restrict vals,
                    int32_t *restrict offs, ptrdiff_t ldl)
{
    int M = 0, count[R];
    CYRNN_TILE_LOOP
    for (int r = 0; r < R; ++r) {
        count[r] = FN(nonzero_list)(Kh, h + (r0 + r) * ldh, vals + r * ldl, offs + r * ldl);
        M = count[r] > M ? count[r] : M;
    }
    for (int r = 0; r < R; ++r)
        for (int m = count[r]; m < M; ++m) {
            vals[r * ldl + m] = 0;
            offs[r * ldl + m] = 0;
        }
    const int sparse = 3 * M <= 2 * Kh;
    CYRNN_GROUPS(CYRNN_STEP_RNN_BLOCKS, 1, first_block, end_block, CYRNN_GROUP_TILE,
                 FN(rnn_step_tile), R, r0, 1, stream, H, I, packed_ih, packed_hh, packed_bias,
                 pre_x, NULL, x, ldx, Kh, h, ldh, out, ldo, gates, next_h, next_rows, M,
                 sparse ? vals : NULL, offs, ldl);
}

#define CYRNN_STEP_PARAMS                                                      \
    (int cell, int H, int I, int Hout, int first_block, int end_block, int n,  \
     const REAL *packed_ih, const REAL *packed_hh, const REAL *packed_bias,    \
     const REAL *pre_x, const REAL *pre_h,                                     \
     const REAL *x, ptrdiff_t ldx, const REAL *h, ptrdiff_t ldh, REAL *c,       \
     REAL *out, ptrdiff_t ldo, REAL *gates, REAL *extra, REAL *next_h,         \
     int next_rows, int stream)

/* The LSTM's or GRU's step: tiles of ROWS rows of one block, CELL a
 * constant so that each cell's tile compiles on its own. */
#define CYRNN_GATED_STEP(CELL, ROWS)                                           \
    for (int block = first_block; block < end_block; ++block) {               \
        const REAL *pih = packed_ih + (ptrdiff_t)block * I * G * V;            \
        const REAL *phh = packed_hh + (ptrdiff_t)block * Hout * G * V;         \
        const REAL *pb = packed_bias + (ptrdiff_t)block * P * V;               \
        int j0 = block * V, units = H - j0 < V ? H - j0 : V;                   \
        CYRNN_ROW_TILES(ROWS, n, FN(step_tile), CELL, stream, H, I, Hout, pih, phh, pb, \
                        pre_x, pre_h, x, ldx, h, ldh, c, out, ldo, gates, extra,  \
                        next_h, next_rows, j0, units);                          \
    }
#define CYRNN_LSTM_ROWS (CYRNN_STEP_ROWS * CYRNN_LSTM_PASSES)
static void FN(gated_step) CYRNN_STEP_PARAMS
{
    const int G = cyrnn_cell_gates(cell), P = FN(packed_bias_vectors)(cell);
    switch ((enum cyrnn_cell)cell) {
    case CYRNN_CELL_LSTM: CYRNN_GATED_STEP(CYRNN_CELL_LSTM, CYRNN_LSTM_ROWS) break;
    case CYRNN_CELL_LSTM_PEEPHOLE:
        CYRNN_GATED_STEP(CYRNN_CELL_LSTM_PEEPHOLE, CYRNN_LSTM_ROWS) break;
#if CYRNN_LSTM_PASSES == 1
    case CYRNN_CELL_GRU: CYRNN_GATED_STEP(CYRNN_CELL_GRU, CYRNN_STEP_ROWS) break;
#else
    case CYRNN_CELL_GRU: /* gru_step */
#endif
    case CYRNN_CELL_RNN_TANH: case CYRNN_CELL_RNN_RELU: /* rnn_step */
    case CYRNN_CELL_GRU_RESET_BEFORE: /* reset_before_step */
        break;
    }
}

#if CYRNN_LSTM_PASSES > 1
/* Where the LSTM's tiles take their gates in passes, the GRU's step is a
 * function of its own: in gated_step, GCC's register allocation for the
 * whole function then kept the GRU loop's row offsets on the stack (its
 * step 4-7% slower at AVX2). The other levels compile gated_step as it was
 * before the passes: any change to it there moved the AVX-512 LSTM's row
 * offsets onto the stack (14-16% slower; see docs/ARCHITECTURE.md). */
static void FN(gru_step) CYRNN_STEP_PARAMS
{
    const int G = cyrnn_cell_gates(cell), P = FN(packed_bias_vectors)(cell);
    CYRNN_GATED_STEP(CYRNN_CELL_GRU, CYRNN_STEP_ROWS)
}
#endif
#undef CYRNN_LSTM_ROWS
#undef CYRNN_GATED_STEP

/* The Elman RNN's step: one accumulator a block (see CYRNN_BLOCK_GROUPS),
 * tiles of CYRNN_STEP_RNN_ROWS rows by CYRNN_STEP_RNN_BLOCKS blocks. */
static void FN(rnn_step) CYRNN_STEP_PARAMS
{
    const int relu = cell == CYRNN_CELL_RNN_RELU;
    (void)c, (void)extra; /* Hout: H, or 0 when pre_h holds the product */
    CYRNN_BLOCK_GROUPS(CYRNN_STEP_RNN_BLOCKS, 1, CYRNN_STEP_RNN_ROWS, n, first_block,
                       end_block, FN(rnn_step_tile), relu, stream, H, I, packed_ih,
                       packed_hh, packed_bias, pre_x, pre_h, x, ldx, Hout, h, ldh, out, ldo,
                       gates, next_h, next_rows, 0, NULL, NULL, 0);
}

/* Whether the step of `cell` skips the zeros of h in its product of Kh
 * columns: a relu RNN's, at a level where that pays (SKIP_ZEROS in isa.h),
 * as `options` allow (CYRNN_STEP_SKIP_ZEROS: W_hh is finite), where a
 * tile's lists fit CYRNN_NONZERO_LIST_BYTES of stack. */
static inline int FN(skips_zeros)(int cell, int options, int Kh)
{
    const ptrdiff_t list_bytes = (ptrdiff_t)CYRNN_STEP_RNN_ROWS * FN(nonzero_list_room)(Kh) *
                                 (ptrdiff_t)(sizeof(REAL) + sizeof(int32_t));
    return CYRNN_SKIP_ZEROS && cell == CYRNN_CELL_RNN_RELU &&
           (options & CYRNN_STEP_SKIP_ZEROS) && Kh > 0 && list_bytes <= CYRNN_NONZERO_LIST_BYTES;
}

/* The relu RNN's step over the lists of its rows' nonzero values
 * (rnn_sparse_rows), as skips_zeros allows: row tiles as rnn_step's. */
static void FN(rnn_sparse_step) CYRNN_STEP_PARAMS
{
    const ptrdiff_t ldl = FN(nonzero_list_room)(Hout);
    REAL vals[CYRNN_STEP_RNN_ROWS * ldl];
    int32_t offs[CYRNN_STEP_RNN_ROWS * ldl];
    (void)cell, (void)pre_h, (void)c, (void)extra; /* pre_h: NULL, as Hout > 0 */
    CYRNN_ROW_TILES(CYRNN_STEP_RNN_ROWS, n, FN(rnn_sparse_rows), first_block, end_block,
                    stream, H, I, packed_ih, packed_hh, packed_bias, pre_x, x, ldx, Hout, h,
                    ldh, out, ldo, gates, next_h, next_rows, vals, offs, ldl);
}
#undef CYRNN_STEP_PARAMS

#include "gru_reset_before_template.h"

/* The level's step (see isa.h for its tiles); phase: see cyrnn_kernels.h. */
static void FN(cyrnn_cell_step)(int cell, int phase, int H, int I, int Hout,
                                int first_block, int end_block, int n,
                                const REAL *packed_ih, const REAL *packed_hh,
                                const REAL *packed_bias, const REAL *pre_x,
                                const REAL *pre_h, const REAL *x, ptrdiff_t ldx,
                                const REAL *h, ptrdiff_t ldh, REAL *c, REAL *out,
                                ptrdiff_t ldo, REAL *gates, REAL *extra, REAL *next_h,
                                int next_rows, int options)
{
    const int stream = CYRNN_STREAM_TAPE && (options & CYRNN_STEP_STREAM_TAPE) && gates;
    /* a product whose result pre_* brings is not run here */
    const int Kx = pre_x ? 0 : I, Kh = pre_h ? 0 : Hout;
    switch ((enum cyrnn_cell)cell) {
#if CYRNN_LSTM_PASSES > 1
    case CYRNN_CELL_GRU:
        FN(gru_step)(cell, H, Kx, Kh, first_block, end_block, n, packed_ih, packed_hh,
                     packed_bias, pre_x, pre_h, x, ldx, h, ldh, c, out, ldo, gates, extra,
                     next_h, next_rows, stream);
        break;
    case CYRNN_CELL_LSTM: case CYRNN_CELL_LSTM_PEEPHOLE:
#else
    case CYRNN_CELL_LSTM: case CYRNN_CELL_LSTM_PEEPHOLE: case CYRNN_CELL_GRU:
#endif
        FN(gated_step)(cell, H, Kx, Kh, first_block, end_block, n, packed_ih, packed_hh,
                       packed_bias, pre_x, pre_h, x, ldx, h, ldh, c, out, ldo, gates, extra,
                       next_h, next_rows, stream);
        break;
    case CYRNN_CELL_RNN_TANH: case CYRNN_CELL_RNN_RELU:
        if (FN(skips_zeros)(cell, options, Kh))
            FN(rnn_sparse_step)(cell, H, Kx, Kh, first_block, end_block, n, packed_ih,
                                packed_hh, packed_bias, pre_x, pre_h, x, ldx, h, ldh, c, out,
                                ldo, gates, extra, next_h, next_rows, stream);
        else
            FN(rnn_step)(cell, H, Kx, Kh, first_block, end_block, n, packed_ih, packed_hh,
                         packed_bias, pre_x, pre_h, x, ldx, h, ldh, c, out, ldo, gates,
                         extra, next_h, next_rows, stream);
        break;
    case CYRNN_CELL_GRU_RESET_BEFORE: /* re-reads its rows of gates: never streamed */
        FN(reset_before_step)(phase, H, Kx, Kh, first_block, end_block, n, packed_ih,
                              packed_hh, packed_bias, pre_x, pre_h, x, ldx, h, ldh, out, ldo,
                              gates, extra, next_h, next_rows);
        break;
    }
#if CYRNN_X86_DISPATCH
    /* streamed stores are weakly ordered: fence them before another thread
     * (BPTT, or the next step's) may read the tape */
    if (stream)
        _mm_sfence();
#endif
}

#undef V

#else /* CYRNN_ENTRY_POINTS */

#include "gru_reset_before_template.h"

ptrdiff_t FN(cyrnn_packed_bias_size)(int cell, int H)
{
    return CYRNN_PICK(cyrnn_packed_bias_size)(cell, H);
}

void FN(cyrnn_pack_bias)(int cell, int H, const REAL *bias, const REAL *bias_hn,
                         const REAL *peephole, REAL *packed_bias)
{
    CYRNN_PICK(cyrnn_pack_bias)(cell, H, bias, bias_hn, peephole, packed_bias);
}

void FN(cyrnn_cell_step)(int cell, int phase, int H, int I, int Hout, int first_block,
                         int end_block, int n, const REAL *packed_ih,
                         const REAL *packed_hh, const REAL *packed_bias,
                         const REAL *pre_x, const REAL *pre_h,
                         const REAL *x, ptrdiff_t ldx, const REAL *h,
                         ptrdiff_t ldh, REAL *c, REAL *out, ptrdiff_t ldo,
                         REAL *gates, REAL *extra, REAL *next_h, int next_rows,
                         int options)
{
    CYRNN_PICK(cyrnn_cell_step)(cell, phase, H, I, Hout, first_block, end_block, n, packed_ih,
                                packed_hh, packed_bias, pre_x, pre_h, x, ldx, h, ldh, c, out,
                                ldo, gates, extra, next_h, next_rows, options);
}

#endif /* CYRNN_ENTRY_POINTS */
