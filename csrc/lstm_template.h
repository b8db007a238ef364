/* LSTM step kernels (template, see instantiate.h). Gate blocks are i, f, g, o,
 * torch's order. */

CYRNN_KERNEL void FN(cyrnn_lstm_forward)(int n, int H, int units, REAL *restrict gates,
                                          const REAL *restrict hg,
                                          REAL *restrict c, REAL *restrict h,
                                          REAL *restrict extra)
{
    for (int b = 0; b < n; ++b) {
        REAL *gi = gates + (ptrdiff_t)b * 4 * H, *gf = gi + H, *gg = gf + H, *go = gg + H;
        const REAL *hi = hg + (ptrdiff_t)b * 4 * H, *hf = hi + H, *hgg = hf + H, *ho = hgg + H;
        REAL *cb = c + (ptrdiff_t)b * H, *hb = h + (ptrdiff_t)b * H;
        REAL *cprev = extra + (ptrdiff_t)b * 2 * H, *tanh_c = cprev + H;
        for (int j = 0; j < units; ++j) {
            /* each activated gate replaces its pre-activation: the tape */
            REAL i = gi[j] = FN(sigmoid)(gi[j] + hi[j]);
            REAL f = gf[j] = FN(sigmoid)(gf[j] + hf[j]);
            REAL g = gg[j] = FN(tanh)(gg[j] + hgg[j]);
            REAL o = go[j] = FN(sigmoid)(go[j] + ho[j]);
            REAL cp = cprev[j] = cb[j];
            REAL cn = cb[j] = f * cp + i * g;
            hb[j] = o * (tanh_c[j] = FN(tanh)(cn));
        }
    }
}

CYRNN_KERNEL void FN(cyrnn_lstm_backward)(int n, int H, const REAL *restrict gates,
                                           const REAL *restrict extra,
                                           const REAL *restrict dh,
                                           REAL *restrict dc,
                                           REAL *restrict dgates)
{
    for (int b = 0; b < n; ++b) {
        const REAL *gi = gates + (ptrdiff_t)b * 4 * H, *gf = gi + H, *gg = gf + H, *go = gg + H;
        const REAL *cprev = extra + (ptrdiff_t)b * 2 * H, *tanh_c = cprev + H;
        const REAL *dhb = dh + (ptrdiff_t)b * H;
        REAL *dcb = dc + (ptrdiff_t)b * H;
        REAL *di = dgates + (ptrdiff_t)b * 4 * H, *df = di + H, *dg = df + H, *dout = dg + H;
        for (int j = 0; j < H; ++j) {
            REAL i = gi[j], f = gf[j], g = gg[j], o = go[j], tc = tanh_c[j];
            REAL dct = dcb[j] + dhb[j] * o * ((REAL)1 - tc * tc);
            di[j] = dct * g * i * ((REAL)1 - i);
            df[j] = dct * cprev[j] * f * ((REAL)1 - f);
            dg[j] = dct * i * ((REAL)1 - g * g);
            dout[j] = dhb[j] * tc * o * ((REAL)1 - o);
            dcb[j] = dct * f;
        }
    }
}
