/*
 * gru_row.h: one row of a GRU forward step without layer norm, as gru_ext.c
 * computes it.
 * Instantiated per dtype inside its template section (after
 * cell_common.h, with REAL and SFX defined).
 */

/* One row of a forward step: from xs (3H), x W_ih^T, the gates r, z, n go
 * to gr (which may be xs); pr is h W_hh^T (m_b*h in the extended kernel);
 * the state hb advances in place; saves W_hn h + b_hn and h_{t-1}, and
 * writes the output. */
static CELL_INLINE void SFX(gru_fwd_row)(int64_t H, REAL *gr, const REAL *xs,
                                         const REAL *restrict pr,
                                         const REAL *restrict b_ih, const REAL *restrict b_hh,
                                         REAL *restrict hb, REAL *restrict o,
                                         REAL *restrict hnr, REAL *restrict hpr) {
    for (int64_t j = 0; j < H; j++) {
        REAL h_prev = hb[j];
        hpr[j] = h_prev;
        REAL rg = SFX(rnn_sigmoid)(xs[j] + b_ih[j] + pr[j] + b_hh[j]);
        REAL zg = SFX(rnn_sigmoid)(xs[H + j] + b_ih[H + j] + pr[H + j] + b_hh[H + j]);
        REAL hnj = pr[2 * H + j] + b_hh[2 * H + j];
        REAL ng = SFX(rnn_tanhv)(xs[2 * H + j] + b_ih[2 * H + j] + rg * hnj);
        REAL h = ((REAL)1 - zg) * ng + zg * h_prev;
        gr[j] = rg; gr[H + j] = zg; gr[2 * H + j] = ng;
        hnr[j] = hnj;
        hb[j] = h;
        o[j] = h;
    }
}
