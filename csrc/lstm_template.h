/* LSTM backward step kernel (template, see instantiate.h); the forward step
 * is in step_template.h. Gate blocks are i, f, g, o, torch's order. */

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
