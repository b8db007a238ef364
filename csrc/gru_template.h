/* GRU step kernels (template, see instantiate.h), torch's formulation:
 *   r = s(x_r + h_r), z = s(x_z + h_z), n = tanh(x_n + r * (W_hn h + b_hn)),
 *   h' = (1 - z) n + z h,
 * where the x_* blocks already hold b_ir + b_hr, b_iz + b_hz and b_in. */

CYRNN_KERNEL void FN(cyrnn_gru_forward)(int n, int H, int units,
                                         REAL *restrict gates,
                                         const REAL *restrict hg,
                                         const REAL *restrict b_hn,
                                         const REAL *restrict hprev,
                                         REAL *restrict h, REAL *restrict extra)
{
    for (int b = 0; b < n; ++b) {
        REAL *gr = gates + (ptrdiff_t)b * 3 * H, *gz = gr + H, *gn = gz + H;
        const REAL *hr = hg + (ptrdiff_t)b * 3 * H, *hz = hr + H, *hn = hz + H;
        const REAL *hp = hprev + (ptrdiff_t)b * H;
        REAL *hb = h + (ptrdiff_t)b * H, *hnb = extra + (ptrdiff_t)b * H;
        for (int j = 0; j < units; ++j) {
            REAL r = FN(sigmoid)(gr[j] + hr[j]);
            REAL z = FN(sigmoid)(gz[j] + hz[j]);
            REAL hnj = hn[j] + b_hn[j];
            REAL nj = FN(tanh)(gn[j] + r * hnj);
            gr[j] = r;
            gz[j] = z;
            gn[j] = nj;
            hnb[j] = hnj;
            hb[j] = nj + z * (hp[j] - nj);
        }
    }
}

CYRNN_KERNEL void FN(cyrnn_gru_backward)(int n, int H, const REAL *restrict gates,
                                          const REAL *restrict extra,
                                          const REAL *restrict hprev,
                                          REAL *restrict dh, REAL *restrict dgx,
                                          REAL *restrict dgh)
{
    for (int b = 0; b < n; ++b) {
        const REAL *gr = gates + (ptrdiff_t)b * 3 * H, *gz = gr + H, *gn = gz + H;
        const REAL *hnb = extra + (ptrdiff_t)b * H, *hp = hprev + (ptrdiff_t)b * H;
        REAL *dhb = dh + (ptrdiff_t)b * H;
        REAL *dxr = dgx + (ptrdiff_t)b * 3 * H, *dxz = dxr + H, *dxn = dxz + H;
        REAL *dhr = dgh + (ptrdiff_t)b * 3 * H, *dhz = dhr + H, *dhn = dhz + H;
        for (int j = 0; j < H; ++j) {
            REAL r = gr[j], z = gz[j], nj = gn[j], d = dhb[j];
            REAL dn = d * ((REAL)1 - z) * ((REAL)1 - nj * nj);
            REAL dr = dn * hnb[j] * r * ((REAL)1 - r);
            REAL dz = d * (hp[j] - nj) * z * ((REAL)1 - z);
            dxr[j] = dr;
            dxz[j] = dz;
            dxn[j] = dn;
            dhr[j] = dr;
            dhz[j] = dz;
            dhn[j] = dn * r;
            dhb[j] = d * z;
        }
    }
}
