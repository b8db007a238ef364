/* BPTT's cell step, for every kind of the registry (template, see
 * instantiate.h; entry points only: each case calls its cell's kernels,
 * which dispatch on the level themselves). */

#ifdef CYRNN_ENTRY_POINTS

void FN(cyrnn_cell_backward)(int cell, int n, int H, const REAL *gates, const REAL *extra,
                             const REAL *hprev, const REAL *peephole, REAL *dh, REAL *dc,
                             REAL *dgx, REAL *dgh, ptrdiff_t ldg)
{
    switch ((enum cyrnn_cell)cell) {
    case CYRNN_CELL_LSTM:
    case CYRNN_CELL_LSTM_PEEPHOLE:
        FN(cyrnn_lstm_backward)(n, H, gates, extra, peephole, dh, dc, dgx, ldg);
        break;
    case CYRNN_CELL_GRU:
        FN(cyrnn_gru_backward)(n, H, gates, extra, hprev, dh, dgx, dgh, ldg);
        break;
    case CYRNN_CELL_RNN_TANH:
        FN(cyrnn_rnn_tanh_backward)(n, H, gates, dh, dgx, ldg);
        break;
    case CYRNN_CELL_RNN_RELU:
        FN(cyrnn_rnn_relu_backward)(n, H, gates, dh, dgx, ldg);
        break;
    case CYRNN_CELL_GRU_RESET_BEFORE: /* its first phase: see cyrnn_kernels.h */
        FN(cyrnn_gru_reset_before_backward)(n, H, gates, hprev, dh, dgx, ldg);
        break;
    }
}

#endif /* CYRNN_ENTRY_POINTS */
