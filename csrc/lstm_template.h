/* LSTM backward step kernels (template, see instantiate.h); the forward step
 * is in step_template.h. Gate blocks are i, f, g, o, torch's order. */

#ifndef CYRNN_ENTRY_POINTS

#define V ((int)(CYRNN_PANEL_BYTES / sizeof(REAL)))

/* The cell's backward on the first `units` of V units of one row: dh =
 * dL/dh_t; the tape's gates (i, f, g, o, H apart) and extra (c_{t-1},
 * tanh c_t, H apart); dc: dL/dc_t in, dL/dc_{t-1} out; dgates: the
 * pre-activations' gradients (H apart); with a peephole, p: its weights
 * (i, f, o, H apart), through which c_{t-1} and c_t reach the gates. */
static inline __attribute__((always_inline)) void
FN(lstm_backward_units)(const int peephole, int H, int units, FN(panel_vec) dh,
                        const REAL *restrict gates, const REAL *restrict extra,
                        const REAL *restrict p, REAL *restrict dc, REAL *restrict dgates)
{
    FN(panel_vec) i = FN(load_units)(gates, units), f = FN(load_units)(gates + H, units);
    FN(panel_vec) g = FN(load_units)(gates + 2 * H, units);
    FN(panel_vec) o = FN(load_units)(gates + 3 * H, units);
    FN(panel_vec) cprev = FN(load_units)(extra, units), tc = FN(load_units)(extra + H, units);
    FN(panel_vec) dgo = dh * tc * o * ((REAL)1 - o);
    FN(panel_vec) dct = FN(load_units)(dc, units) + dh * o * ((REAL)1 - tc * tc);
    if (peephole)
        dct += dgo * FN(load_units)(p + 2 * H, units);
    FN(panel_vec) dgi = dct * g * i * ((REAL)1 - i), dgf = dct * cprev * f * ((REAL)1 - f);
    FN(panel_vec) dcprev = dct * f;
    if (peephole)
        dcprev += dgi * FN(load_units)(p, units) + dgf * FN(load_units)(p + H, units);
    FN(store_units)(dgates, dgi, units);
    FN(store_units)(dgates + H, dgf, units);
    FN(store_units)(dgates + 2 * H, dct * i * ((REAL)1 - g * g), units);
    FN(store_units)(dgates + 3 * H, dgo, units);
    FN(store_units)(dc, dcprev, units);
}

static void FN(cyrnn_lstm_backward)(int n, int H, const REAL *restrict gates,
                                    const REAL *restrict extra,
                                    const REAL *restrict peephole, const REAL *restrict dh,
                                    REAL *restrict dc, REAL *restrict dgates, ptrdiff_t ldg)
{
    for (ptrdiff_t b = 0; b < n; ++b)
        for (int j0 = 0; j0 < H; j0 += V) {
            int units = H - j0 < V ? H - j0 : V;
            FN(panel_vec) dhv = FN(load_units)(dh + b * H + j0, units);
            const REAL *gb = gates + b * 4 * H + j0, *eb = extra + b * 2 * H + j0;
            if (peephole)
                FN(lstm_backward_units)(1, H, units, dhv, gb, eb, peephole + j0,
                                        dc + b * H + j0, dgates + b * ldg + j0);
            else
                FN(lstm_backward_units)(0, H, units, dhv, gb, eb, NULL, dc + b * H + j0,
                                        dgates + b * ldg + j0);
        }
}

/* The peephole weights' gradients (3, H), = or += over n rows of a chunk
 * of BPTT, for units [j0, j1): dp_i = sum dg_i c_{t-1}, dp_f = sum dg_f
 * c_{t-1}, dp_o = sum dg_o c_t, with c_t = f c_{t-1} + i g again from the
 * tape. */
static void FN(cyrnn_peephole_gradient)(int n, int H, int j0, int j1,
                                        const REAL *restrict dg, ptrdiff_t ldg,
                                        const REAL *restrict gates,
                                        const REAL *restrict extra, REAL *restrict dp,
                                        int accumulate)
{
    if (!accumulate)
        for (int q = 0; q < CYRNN_PEEPHOLE_ROWS; ++q)
            memset(dp + (ptrdiff_t)q * H + j0, 0, (size_t)(j1 - j0) * sizeof(REAL));
    for (ptrdiff_t b = 0; b < n; ++b) {
        const REAL *gi = gates + b * 4 * H, *gf = gi + H, *gg = gf + H;
        const REAL *cprev = extra + b * 2 * H, *d = dg + b * ldg;
        for (int j = j0; j < j1; ++j) {
            REAL ct = gf[j] * cprev[j] + gi[j] * gg[j];
            dp[j] += d[j] * cprev[j];
            dp[H + j] += d[H + j] * cprev[j];
            dp[2 * H + j] += d[3 * H + j] * ct;
        }
    }
}

/* The R rows from r0 of the NB unit blocks from `block` of BPTT's fused
 * step (see below); peephole is a constant. */
static inline __attribute__((always_inline)) void
FN(lstm_backward_tile)(const int R, int r0, const int NB, int block, const int peephole,
                       int H, const REAL *restrict packed, int cells,
                       const REAL *restrict dg, ptrdiff_t ldg, const REAL *restrict dy,
                       ptrdiff_t ldy, const REAL *restrict gates, const REAL *restrict extra,
                       const REAL *restrict p, REAL *restrict dc, REAL *restrict dh,
                       REAL *restrict dg_out)
{
    const ptrdiff_t GH = 4 * (ptrdiff_t)H;
    const REAL *panel = packed + (ptrdiff_t)block * 4 * (ptrdiff_t)H * V;
    const int j0 = block * V;
    FN(panel_vec) acc[R][NB];
    /* The tape was streamed past the caches, and the product below takes
     * far longer than memory does: fetch the cells' rows of it now. */
    for (int r = 0; r < R && r0 + r < cells; ++r)
        for (int b = 0; b < NB; ++b) {
            ptrdiff_t j = j0 + b * V;
            const REAL *tape = gates + (r0 + r) * GH + j, *kept = extra + (r0 + r) * 2 * H + j;
            for (int q = 0; q < 4; ++q)
                __builtin_prefetch(tape + q * H, 0, 2);
            __builtin_prefetch(kept, 0, 2);
            __builtin_prefetch(kept + H, 0, 2);
            __builtin_prefetch(dy + (r0 + r) * ldy + j, 0, 2);
        }
    FN(panel_vec) sums[R][NB];
    FN(panel_zero)(R, NB, acc);
    FN(panel_accumulate)(R, NB, 4 * H, panel, 4 * (ptrdiff_t)H * V, dg + r0 * ldg, ldg, 1, acc);
    /* The cells one row at a time, from a copy of the tile in memory (acc
     * stays in registers for the product): unrolled over the tile's rows,
     * every tile shape's cells made this function 213 KB of AVX-512 code,
     * and the small LSTM's training step at AVX-512 took 4-5% longer
     * (the medium one's 6%). */
    CYRNN_TILE_LOOP
    for (int r = 0; r < R; ++r)
        CYRNN_TILE_LOOP
        for (int b = 0; b < NB; ++b)
            sums[r][b] = acc[r][b];
#pragma GCC unroll 1
    for (int r = 0; r < R; ++r)
        CYRNN_TILE_LOOP
        for (int b = 0; b < NB; ++b) {
            ptrdiff_t row = r0 + r, j = j0 + b * V;
            int units = H - j < V ? H - j : V;
            if (row < cells)
                FN(lstm_backward_units)(peephole, H, units,
                                        sums[r][b] + FN(load_units)(dy + row * ldy + j, units),
                                        gates + row * GH + j, extra + row * 2 * H + j,
                                        peephole ? p + j : NULL, dc + row * H + j,
                                        dg_out + row * ldg + j);
            else
                FN(store_units)(dh + row * H + j, sums[r][b], units);
        }
}

/* BPTT's step of an LSTM without projection from one step t to the one it
 * visits next, t': the product dL/dh_{t'} = dg_t W_hh for the first n rows
 * and unit blocks [first_block, end_block), W_hh packed transposed (G = 1,
 * K = 4H). Rows below `cells` (t' has them too) add dy_{t'} and go on
 * through the cell's backward, with t''s tape (gates, extra), dc in place,
 * into dg_out; the other rows (states that t' does not have: dL/dh0) are
 * stored to dh. Applying the cell to each product tile while it is in
 * registers saves a pass over dh, and its tape is fetched under the
 * product instead of on its own. */
static void FN(cyrnn_lstm_backward_product)(int H, int first_block, int end_block, int n,
                                            int cells, const REAL *restrict packed,
                                            const REAL *restrict dg, ptrdiff_t ldg,
                                            const REAL *restrict dy, ptrdiff_t ldy,
                                            const REAL *restrict gates,
                                            const REAL *restrict extra,
                                            const REAL *restrict peephole, REAL *restrict dc,
                                            REAL *restrict dh, REAL *restrict dg_out)
{
    /* the peephole a constant in each tile: the plain LSTM's stays as it was */
#define CYRNN_LSTM_BACKWARD_GROUPS(PEEPHOLE)                                   \
    CYRNN_BLOCK_GROUPS(CYRNN_BACKWARD_BLOCKS, 0, CYRNN_BACKWARD_ROWS, n, first_block,   \
                       end_block, FN(lstm_backward_tile), PEEPHOLE, H, packed, cells, dg, \
                       ldg, dy, ldy, gates, extra, peephole, dc, dh, dg_out)
    if (peephole)
        CYRNN_LSTM_BACKWARD_GROUPS(1);
    else
        CYRNN_LSTM_BACKWARD_GROUPS(0);
#undef CYRNN_LSTM_BACKWARD_GROUPS
}

#undef V

#else /* CYRNN_ENTRY_POINTS */

void FN(cyrnn_lstm_backward)(int n, int H, const REAL *gates, const REAL *extra,
                             const REAL *peephole, const REAL *dh, REAL *dc, REAL *dgates,
                             ptrdiff_t ldg)
{
    CYRNN_PICK(cyrnn_lstm_backward)(n, H, gates, extra, peephole, dh, dc, dgates, ldg);
}

void FN(cyrnn_peephole_gradient)(int n, int H, int j0, int j1, const REAL *dg, ptrdiff_t ldg,
                                 const REAL *gates, const REAL *extra, REAL *dp,
                                 int accumulate)
{
    CYRNN_PICK(cyrnn_peephole_gradient)(n, H, j0, j1, dg, ldg, gates, extra, dp, accumulate);
}

void FN(cyrnn_lstm_backward_product)(int H, int first_block, int end_block, int n,
                                     int cells, const REAL *packed, const REAL *dg,
                                     ptrdiff_t ldg, const REAL *dy, ptrdiff_t ldy,
                                     const REAL *gates, const REAL *extra,
                                     const REAL *peephole, REAL *dc, REAL *dh, REAL *dg_out)
{
    CYRNN_PICK(cyrnn_lstm_backward_product)(H, first_block, end_block, n, cells, packed, dg,
                                            ldg, dy, ldy, gates, extra, peephole, dc, dh,
                                            dg_out);
}

#endif /* CYRNN_ENTRY_POINTS */
