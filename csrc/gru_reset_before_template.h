/* The GRU with the reset gate applied before the recurrent product (ONNX's
 * default, linear_before_reset = 0; Keras's reset_after = False), template
 * (see instantiate.h; included by step_template.h, whose step dispatches to
 * it):
 *
 *   r = s(x_r + W_hr h), z = s(x_z + W_hz h),
 *   n = tanh(x_n + W_hn (r * h)),  h' = (1 - z) n + z h,
 *
 * where the x_* blocks hold W_i* x and every bias (b_hn too: r does not
 * scale it here). n's product needs r * h for every unit, so a step has two
 * phases with every thread's first phase done before any second one:
 *   1. the gates' tile: x W_ih^T (3 gates) and h W_h{r,z}^T (2 gates) in
 *      registers; r and z are stored to gates (r, z, then x_n for phase 2),
 *      r * h to extra;
 *   2. the candidate's tile: x_n + (r * h) W_hn^T, then n and h'; n replaces
 *      x_n in gates.
 * W_hh is packed as W_h{r,z} (2 gates), then W_hn (1 gate). BPTT's step has
 * two products too: d(r * h) = dn W_hn between the cell's two phases, then
 * dL/dh_{t-1} += (dr, dz) W_h{r,z}. */

#ifndef CYRNN_ENTRY_POINTS

/* (step_template.h includes this where V, accumulate_rows and the row tiles
 * are defined.) */

/* Phase 1 on rows r0 ... r0 + R - 1 of one unit block from j0. */
static inline __attribute__((always_inline)) void
FN(reset_gates_tile)(const int R, int r0, int H, int I, int Hout, const REAL *restrict pih,
                     const REAL *restrict phh, const REAL *restrict pbias,
                     const REAL *restrict pre_x, const REAL *restrict pre_h,
                     const REAL *restrict x, ptrdiff_t ldx, const REAL *restrict h,
                     ptrdiff_t ldh, REAL *restrict gates, REAL *restrict rh, int j0,
                     int units)
{
    const ptrdiff_t GH = 3 * (ptrdiff_t)H;
    FN(panel_vec) acc[R][3];
    const FN(panel_vec) *b = (const FN(panel_vec) *)pbias;
    CYRNN_TILE_LOOP
    for (int r = 0; r < R; ++r)
        CYRNN_TILE_LOOP
        for (int a = 0; a < 3; ++a)
            acc[r][a] = b[a];
    if (pre_x)
        FN(add_preactivations)(R, 3, 3, 0, pre_x + r0 * GH, H, j0, units, acc);
    if (pre_h) /* h W_h{r,z}^T: rows 2H apart */
        FN(add_preactivations)(R, 2, 3, 0, pre_h + r0 * 2 * H, H, j0, units, acc);
    FN(accumulate_rows)(R, 3, 3, 0, I, pih, x + r0 * ldx, ldx, acc);
    FN(accumulate_rows)(R, 2, 3, 0, Hout, phh, h + r0 * ldh, ldh, acc);
    for (int r = 0; r < R; ++r) {
        ptrdiff_t row = r0 + r;
        FN(panel_vec) reset = FN(sigmoid)(acc[r][0]);
        FN(panel_vec) hp = FN(load_units)(h + row * ldh + j0, units);
        FN(store_units)(gates + row * GH + j0, reset, units);
        FN(store_units)(gates + row * GH + H + j0, FN(sigmoid)(acc[r][1]), units);
        FN(store_units)(gates + row * GH + 2 * H + j0, acc[r][2], units);
        FN(store_units)(rh + row * H + j0, reset * hp, units);
    }
}

/* Phase 2 on rows r0 ... r0 + R - 1 of the NB unit blocks from `block`;
 * packed_hn: W_hn's packing. */
static inline __attribute__((always_inline)) void
FN(reset_candidate_tile)(const int R, int r0, const int NB, int block, int H,
                         const REAL *restrict packed_hn, const REAL *restrict pre_h,
                         const REAL *restrict h, ptrdiff_t ldh,
                         REAL *restrict gates, const REAL *restrict rh,
                         REAL *restrict out, ptrdiff_t ldo, REAL *restrict next_h,
                         int next_rows)
{
    const ptrdiff_t GH = 3 * (ptrdiff_t)H;
    const REAL *phn = packed_hn + (ptrdiff_t)block * H * V;
    const int j0 = block * V;
    FN(panel_vec) acc[R][NB];
    CYRNN_TILE_LOOP
    for (int rb = 0; rb < R * NB; ++rb) { /* the tile's vectors: x_n (phase 1's) */
        const int r = rb / NB, b = rb % NB;
        ptrdiff_t row = r0 + r;
        int j = j0 + b * V, units = H - j < V ? H - j : V;
        acc[r][b] = FN(load_units)(gates + row * GH + 2 * H + j, units);
        if (pre_h) /* (r * h) W_hn^T: rows H apart */
            acc[r][b] += FN(load_units)(pre_h + row * H + j, units);
    }
    FN(panel_accumulate)(R, NB, pre_h ? 0 : H, phn, (ptrdiff_t)H * V, rh + r0 * H, H, 1, acc);
    CYRNN_TILE_LOOP
    for (int rb = 0; rb < R * NB; ++rb) { /* the tile's vectors, row by row */
        const int r = rb / NB, b = rb % NB;
        ptrdiff_t row = r0 + r;
        int j = j0 + b * V, units = H - j < V ? H - j : V;
        FN(panel_vec) n = FN(tanh)(acc[r][b]);
        FN(panel_vec) z = FN(load_units)(gates + row * GH + H + j, units);
        FN(panel_vec) hp = FN(load_units)(h + row * ldh + j, units);
        FN(panel_vec) hv = n + z * (hp - n);
        FN(store_units)(gates + row * GH + 2 * H + j, n, units);
        FN(store_state)(hv, row, j, units, H, out, ldo, next_h, next_rows);
    }
}

/* One phase of the step for unit blocks [first_block, end_block) of rows
 * 0..n-1 (see cyrnn_cell_step): gates (3H) and rh (H) are the tape's rows,
 * or scratch rows for inference. pre_h, if given, holds the phase's
 * recurrent product: h W_h{r,z}^T (2H) in phase 1, (r * h) W_hn^T (H) in
 * phase 2; Hout is then 0 (the caller's; phase 2 skips its own). Phase 2
 * tiles as the Elman RNN's step does: one accumulator a block
 * (CYRNN_BLOCK_GROUPS with pairs). */
static void FN(reset_before_step)(int phase, int H, int I, int Hout, int first_block,
                                  int end_block, int n, const REAL *packed_ih,
                                  const REAL *packed_hh, const REAL *packed_bias,
                                  const REAL *pre_x, const REAL *pre_h,
                                  const REAL *x, ptrdiff_t ldx,
                                  const REAL *h, ptrdiff_t ldh, REAL *out, ptrdiff_t ldo,
                                  REAL *gates, REAL *rh, REAL *next_h, int next_rows)
{
    /* W_hn's packing follows W_h{r,z}'s (see packed_template.h's layout) */
    const REAL *phn = packed_hh + (ptrdiff_t)((H + V - 1) / V) * Hout * 2 * V;
    if (phase == 1) {
        for (int block = first_block; block < end_block; ++block) {
            const REAL *pih = packed_ih + (ptrdiff_t)block * I * 3 * V;
            const REAL *phh = packed_hh + (ptrdiff_t)block * Hout * 2 * V;
            const REAL *pb = packed_bias + (ptrdiff_t)block * 3 * V;
            int j0 = block * V, units = H - j0 < V ? H - j0 : V;
            CYRNN_ROW_TILES(CYRNN_RESET_ROWS, n, FN(reset_gates_tile), H, I, Hout, pih, phh,
                            pb, pre_x, pre_h, x, ldx, h, ldh, gates, rh, j0, units);
        }
        return;
    }
    CYRNN_BLOCK_GROUPS(CYRNN_STEP_RNN_BLOCKS, 1, CYRNN_STEP_RNN_ROWS, n, first_block,
                       end_block, FN(reset_candidate_tile), H, phn, pre_h, h, ldh, gates, rh,
                       out, ldo, next_h, next_rows);
}

/* BPTT, the cell's first phase on n rows: from dh = dL/dh_t and the tape
 * (gates r, z, n; hprev = h_{t-1}), dg's z and n blocks (rows ldg apart)
 * and the direct part z * dh left in dh. dg's r block waits for
 * d(r * h) = dn W_hn. */
static void FN(cyrnn_gru_reset_before_backward)(int n, int H, const REAL *restrict gates,
                                                const REAL *restrict hprev,
                                                REAL *restrict dh, REAL *restrict dg,
                                                ptrdiff_t ldg)
{
    for (ptrdiff_t b = 0; b < n; ++b) {
        const REAL *gz = gates + b * 3 * H + H, *gn = gz + H, *hp = hprev + b * H;
        REAL *dhb = dh + b * H, *dz = dg + b * ldg + H, *dn = dz + H;
        for (int j = 0; j < H; ++j) {
            REAL z = gz[j], nj = gn[j], d = dhb[j];
            dn[j] = d * ((REAL)1 - z) * ((REAL)1 - nj * nj);
            dz[j] = d * (hp[j] - nj) * z * ((REAL)1 - z);
            dhb[j] = d * z;
        }
    }
}

/* The second phase: dg's r block holds d(r * h); it becomes the reset
 * gate's pre-activation gradient, and d(r * h) * r joins dh. */
static void FN(cyrnn_gru_reset_before_reset)(int n, int H, const REAL *restrict gates,
                                             const REAL *restrict hprev, REAL *restrict dh,
                                             REAL *restrict dg, ptrdiff_t ldg)
{
    for (ptrdiff_t b = 0; b < n; ++b) {
        const REAL *gr = gates + b * 3 * H, *hp = hprev + b * H;
        REAL *dhb = dh + b * H, *dr = dg + b * ldg;
        for (int j = 0; j < H; ++j) {
            REAL r = gr[j], drh = dr[j];
            dhb[j] += drh * r;
            dr[j] = drh * hp[j] * r * ((REAL)1 - r);
        }
    }
}

#else /* CYRNN_ENTRY_POINTS */

void FN(cyrnn_gru_reset_before_backward)(int n, int H, const REAL *gates, const REAL *hprev,
                                         REAL *dh, REAL *dg, ptrdiff_t ldg)
{
    CYRNN_PICK(cyrnn_gru_reset_before_backward)(n, H, gates, hprev, dh, dg, ldg);
}

void FN(cyrnn_gru_reset_before_reset)(int n, int H, const REAL *gates, const REAL *hprev,
                                      REAL *dh, REAL *dg, ptrdiff_t ldg)
{
    CYRNN_PICK(cyrnn_gru_reset_before_reset)(n, H, gates, hprev, dh, dg, ldg);
}

#endif /* CYRNN_ENTRY_POINTS */
