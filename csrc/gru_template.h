/* GRU backward step kernel (template, see instantiate.h; the forward step is
 * in step_template.h), for torch's formulation:
 *   r = s(x_r + h_r), z = s(x_z + h_z), n = tanh(x_n + r * (W_hn h + b_hn)),
 *   h' = (1 - z) n + z h,
 * where the x_* blocks already hold b_ir + b_hr, b_iz + b_hz and b_in. */

#ifndef CYRNN_ENTRY_POINTS

static void FN(cyrnn_gru_backward)(int n, int H, const REAL *restrict gates,
                                   const REAL *restrict extra, const REAL *restrict hprev,
                                   REAL *restrict dh, REAL *restrict dgx, REAL *restrict dgh,
                                   ptrdiff_t ldg)
{
    for (int b = 0; b < n; ++b) {
        const REAL *gr = gates + (ptrdiff_t)b * 3 * H, *gz = gr + H, *gn = gz + H;
        const REAL *hnb = extra + (ptrdiff_t)b * H, *hp = hprev + (ptrdiff_t)b * H;
        REAL *dhb = dh + (ptrdiff_t)b * H;
        REAL *dxr = dgx + b * ldg, *dxz = dxr + H, *dxn = dxz + H;
        REAL *dhr = dgh + b * ldg, *dhz = dhr + H, *dhn = dhz + H;
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
#else /* CYRNN_ENTRY_POINTS */

void FN(cyrnn_gru_backward)(int n, int H, const REAL *gates, const REAL *extra,
                            const REAL *hprev, REAL *dh, REAL *dgx, REAL *dgh, ptrdiff_t ldg)
{
    CYRNN_PICK(cyrnn_gru_backward)(n, H, gates, extra, hprev, dh, dgx, dgh, ldg);
}

#endif /* CYRNN_ENTRY_POINTS */
