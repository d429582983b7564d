/*
 * gru_ref.c (tests only, see cells_ref.h): the GRU cell in PyTorch's formulation, forward and backward
 * through time, float32 and float64 from one template.
 *
 *   r = sig(W_ir x + b_ir + W_hr h + b_hr)   z = sig(W_iz x + b_iz + W_hz h + b_hz)
 *   n = tanh(W_in x + b_in + r*(W_hn h + b_hn))
 *   h_t = (1-z)*n + z*h_{t-1}
 *
 * The recurrent part of n sits inside r*(.), so backward keeps two gate
 * gradients: dGx for the input side (r, z, n) and dGh for the recurrent side,
 * which differs from dGx only in its n block (r * dn_pre); that block is
 * kept separately as dHN.
 */
#ifndef REAL
#include "cells_ref.h"

#define REAL float
#define SFX(name) name##_f32
#include "gru_ref.c"
#undef REAL
#undef SFX
#undef GEMM

#define REAL double
#define SFX(name) name##_f64
#include "gru_ref.c"
#undef REAL
#undef SFX
#undef GEMM

#else /* template body, instantiated once per dtype */
#include "cell_common.h"

/* forward scratch: pre (B, 3H) recurrent product h W_hh^T | W_hh^T packed */
/* backward scratch: dGx (R, 3H) | dHN (R, H) | dh (B, H) | dhr (B, H) | dGs (B, 3H) |
 *   dbx, dbs (3H each) | W_hh packed | W_ih packed */

#include "gru_row.h"
CELL_ROW_VARIANTS(gru_fwd_row,
                  (int64_t H, REAL *restrict gr, const REAL *restrict pr, const REAL *restrict b_ih,
                   const REAL *restrict b_hh, REAL *restrict hb, REAL *restrict o,
                   REAL *restrict hnr, REAL *restrict hpr),
                  (H, gr, pr, b_ih, b_hh, hb, o, hnr, hpr))

/* One row of a backward step: input-side gate gradients into dgr (3H), the
 * recurrent side into dgs (3H) and dhn (H); dhb becomes the direct path
 * z*dh, to which the step's product adds the rest. */
static CELL_INLINE void SFX(gru_bwd_row_loop)(int64_t H, const REAL *restrict gr,
                                         const REAL *restrict hnr, const REAL *restrict hpr,
                                         const REAL *restrict go, REAL *restrict dhb,
                                         REAL *restrict dgr, REAL *restrict dhn,
                                         REAL *restrict dgs, const int use_go) {
    for (int64_t j = 0; j < H; j++) {
        REAL rg = gr[j], zg = gr[H + j], ng = gr[2 * H + j];
        REAL gh = dhb[j] + (use_go ? go[j] : 0);
        REAL dan = gh * ((REAL)1 - zg) * ((REAL)1 - ng * ng);
        REAL daz = gh * (hpr[j] - ng) * zg * ((REAL)1 - zg);
        REAL dar = dan * hnr[j] * rg * ((REAL)1 - rg);
        REAL dahn = dan * rg;
        dgr[j] = dgs[j] = dar;
        dgr[H + j] = dgs[H + j] = daz;
        dgr[2 * H + j] = dan;
        dhn[j] = dgs[2 * H + j] = dahn;
        dhb[j] = gh * zg;
    }
}
static CELL_INLINE void SFX(gru_bwd_row)(int64_t H, const REAL *restrict gr,
                                         const REAL *restrict hnr, const REAL *restrict hpr,
                                         const REAL *restrict go, REAL *restrict dhb,
                                         REAL *restrict dgr, REAL *restrict dhn,
                                         REAL *restrict dgs) {
    /* two copies of the loop, so neither tests go per element */
    if (go) SFX(gru_bwd_row_loop)(H, gr, hnr, hpr, go, dhb, dgr, dhn, dgs, 1);
    else SFX(gru_bwd_row_loop)(H, gr, hnr, hpr, go, dhb, dgr, dhn, dgs, 0);
}
CELL_ROW_VARIANTS(gru_bwd_row,
                  (int64_t H, const REAL *restrict gr, const REAL *restrict hnr,
                   const REAL *restrict hpr, const REAL *restrict go, REAL *restrict dhb,
                   REAL *restrict dgr, REAL *restrict dhn, REAL *restrict dgs),
                  (H, gr, hnr, hpr, go, dhb, dgr, dhn, dgs))

/* The rows [b0, b1) of gru_forward's step loop; the fields are that loop's locals. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(gru_fwd_row_fn) row;
    int64_t G;
    int64_t H;
    REAL *gates;
    REAL *pre;
    const REAL *b_ih;
    const REAL *b_hh;
    REAL *hT;
    REAL *out;
    REAL *hn;
    REAL *hp;
} SFX(gru_fwd_rows_ctx);
static void SFX(gru_fwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(gru_fwd_rows_ctx) *c_ = ctx;
    const rnn_dims *d = c_->d;
    const int64_t *lengths = c_->lengths;
    int64_t s = c_->s;
    SFX(gru_fwd_row_fn) row = c_->row;
    int64_t G = c_->G;
    int64_t H = c_->H;
    REAL *gates = c_->gates;
    REAL *pre = c_->pre;
    const REAL *b_ih = c_->b_ih;
    const REAL *b_hh = c_->b_hh;
    REAL *hT = c_->hT;
    REAL *out = c_->out;
    REAL *hn = c_->hn;
    REAL *hp = c_->hp;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, s, rnn_seq_len(d, lengths, b));
        if (t < 0) continue;
        int64_t r = t * d->ts + b * d->bs;
        row(H, gates + r * G, pre + b * G, b_ih, b_hh, hT + b * H, out + r * d->ldo,
            hn + r * H, hp + r * H);
    }
}

int SFX(gru_forward)(REAL *out, REAL *hT, REAL *cache,
                     const REAL *x, const REAL *h0,
                     const REAL *w_ih, const REAL *w_hh,
                     const REAL *b_ih, const REAL *b_hh,
                     const int64_t *lengths, const rnn_dims *d,
                     REAL *work, void *gemm_ws) {
    int st = rnn_dims_check(d);
    if (st) return st;
    if (!out || !hT || !cache || !x || !w_ih || !w_hh || !b_ih || !b_hh || !work || !gemm_ws)
        return RNN_ERR_NULL;
    if ((st = rnn_lengths_check(d, lengths))) return st;
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, R = T * B, G = 3 * H;
    REAL *gates = cache;        /* (R, 3H) */
    REAL *hn = gates + R * G;   /* (R, H) */
    REAL *hp = hn + R * H;      /* (R, H) */
    REAL *pre = work;           /* (B, 3H) */
    REAL *wpk = pre + B * G;    /* W_hh^T packed */

    if ((st = GEMM(0, 1, R, G, I, 1, x, d->ldx, w_ih, I, 0, gates, G, gemm_ws))) return st;
    if ((st = SFX(step_pack)(d, 1, G, H, w_hh, wpk))) return st;
    SFX(copy_or_zero)(hT, h0, B * H);
    const SFX(gru_fwd_row_fn) row = SFX(gru_fwd_row_pick)(rnn_gemm_best_isa());
    const int ne = rnn_elem_threads(d, G);

    for (int64_t s = 0; s < T; s++) {
        if ((st = SFX(step_gemm)(d, 1, G, H, hT, w_hh, wpk, pre, gemm_ws))) return st;
        SFX(gru_fwd_rows_ctx) rows_ctx = {.d = d, .lengths = lengths, .s = s, .row = row, .G = G,
                                          .H = H, .gates = gates, .pre = pre, .b_ih = b_ih,
                                          .b_hh = b_hh, .hT = hT, .out = out, .hn = hn, .hp = hp};
        rnn_par_rows(d, ne, B, SFX(gru_fwd_rows), &rows_ctx);
    }
    SFX(zero_padded_rows)(out, H, d->ldo, lengths, d);
    SFX(zero_padded_rows)(gates, G, G, lengths, d);
    SFX(zero_padded_rows)(hn, H, H, lengths, d);
    SFX(zero_padded_rows)(hp, H, H, lengths, d);
    return RNN_OK;
}

/* The rows [b0, b1) of gru_backward's step loop; the fields are that loop's locals. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(gru_bwd_row_fn) row;
    int64_t G;
    int64_t H;
    const REAL *gates;
    const REAL *hn;
    const REAL *hp;
    const REAL *dout;
    REAL *dh;
    REAL *dGx;
    REAL *dHN;
    REAL *dGs;
} SFX(gru_bwd_rows_ctx);
static void SFX(gru_bwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(gru_bwd_rows_ctx) *c_ = ctx;
    const rnn_dims *d = c_->d;
    const int64_t *lengths = c_->lengths;
    int64_t s = c_->s;
    SFX(gru_bwd_row_fn) row = c_->row;
    int64_t G = c_->G;
    int64_t H = c_->H;
    const REAL *gates = c_->gates;
    const REAL *hn = c_->hn;
    const REAL *hp = c_->hp;
    const REAL *dout = c_->dout;
    REAL *dh = c_->dh;
    REAL *dGx = c_->dGx;
    REAL *dHN = c_->dHN;
    REAL *dGs = c_->dGs;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, s, rnn_seq_len(d, lengths, b));
        REAL *dgs = dGs + b * G;
        if (t < 0) { memset(dgs, 0, (size_t)G * sizeof(REAL)); continue; }
        int64_t r = t * d->ts + b * d->bs;
        row(H, gates + r * G, hn + r * H, hp + r * H, dout ? dout + r * d->ldo : NULL,
            dh + b * H, dGx + r * G, dHN + r * H, dgs);
    }
}

int SFX(gru_backward)(REAL *dx, REAL *dh0,
                      REAL *dw_ih, REAL *dw_hh, REAL *db_ih, REAL *db_hh,
                      const REAL *dout, const REAL *dhT,
                      const REAL *cache, const REAL *x,
                      const REAL *w_ih, const REAL *w_hh,
                      const int64_t *lengths, const rnn_dims *d,
                      REAL *work, void *gemm_ws) {
    int st = rnn_dims_check(d);
    if (st) return st;
    if (!dx || !dh0 || !dw_ih || !dw_hh || !db_ih || !db_hh || !cache || !x || !w_ih || !w_hh ||
        !work || !gemm_ws)
        return RNN_ERR_NULL;
    if ((st = rnn_lengths_check(d, lengths))) return st;
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, R = T * B, G = 3 * H;
    const REAL *gates = cache, *hn = gates + R * G, *hp = hn + R * H;
    REAL *dGx = work;           /* (R, 3H) input-side gate gradients */
    REAL *dHN = dGx + R * G;    /* (R, H) gradient of W_hn h + b_hn */
    REAL *dh = dHN + R * H;     /* (B, H) carried dL/dh */
    REAL *dhr = dh + B * H;     /* (B, H) */
    REAL *dGs = dhr + B * H;    /* (B, 3H) this step's recurrent-side gradients */
    REAL *dbx = dGs + B * G;    /* (3H) sum of dGx over the rows, for b_ih */
    REAL *dbs = dbx + G;        /* (3H) sum of dGs over the rows, for b_hh */
    REAL *wpk = dbs + G;        /* W_hh packed */
    REAL *wipk = wpk + rnn_gemm_packed_len(H, G); /* W_ih packed, for dx */

    /* without lengths the step loop writes every row of dGx and dHN */
    if (lengths) memset(dGx, 0, (size_t)(R * (G + H)) * sizeof(REAL));
    memset(dbx, 0, (size_t)(2 * G) * sizeof(REAL));
    SFX(copy_or_zero)(dh, dhT, B * H);
    if ((st = SFX(step_pack)(d, 0, H, G, w_hh, wpk))) return st;
    const SFX(gru_bwd_row_fn) row = SFX(gru_bwd_row_pick)(rnn_gemm_best_isa());
    const int ne = rnn_elem_threads(d, G);
    for (int64_t s = T - 1; s >= 0; s--) {
        SFX(gru_bwd_rows_ctx) rows_ctx = {.d = d, .lengths = lengths, .s = s, .row = row, .G = G,
                                          .H = H, .gates = gates, .hn = hn, .hp = hp, .dout = dout,
                                          .dh = dh, .dGx = dGx, .dHN = dHN, .dGs = dGs};
        rnn_par_rows(d, ne, B, SFX(gru_bwd_rows), &rows_ctx);
        /* the bias gradients, summed per step while the rows are in cache */
        for (int64_t b = 0; b < B; b++) {
            int64_t t = rnn_step_time(d, s, rnn_seq_len(d, lengths, b));
            if (t < 0) continue;
            SFX(add_row)(dbx, dGx + (t * d->ts + b * d->bs) * G, G);
            SFX(add_row)(dbs, dGs + b * G, G);
        }
        /* dh_{t-1} = z*dh + dGh_t W_hh for running rows; ended rows pass through */
        if ((st = SFX(step_gemm)(d, 0, H, G, dGs, w_hh, wpk, dhr, gemm_ws))) return st;
        for (int64_t b = 0; b < B; b++)
            if (rnn_step_time(d, s, rnn_seq_len(d, lengths, b)) >= 0)
                SFX(add_into)(dh + b * H, dhr + b * H, H);
    }
    SFX(add_into)(dh0, dh, B * H);
    SFX(add_row)(db_ih, dbx, G);
    SFX(add_row)(db_hh, dbs, G);
    /* the weight and input gradients a block of rows at a time (see
     * lstm_backward); W_hr, W_hz rows from dGx, W_hn rows from dHN */
    /* W_ih packed once for the blocks' dx products (the same sums as GEMM) */
    if ((st = SFX(rnn_gemm_pack_b)(0, I, G, w_ih, I, wipk))) return st;
    for (int64_t r0 = 0; r0 < R; r0 += RNN_GRAD_ROWS) {
        const int64_t rc = R - r0 < RNN_GRAD_ROWS ? R - r0 : RNN_GRAD_ROWS;
        const REAL *dGc = dGx + r0 * G, *hpc = hp + r0 * H;
        if ((st = GEMM(1, 0, G, I, rc, 1, dGc, G, x + r0 * d->ldx, d->ldx, 1, dw_ih, I, gemm_ws)))
            return st;
        if ((st = GEMM(1, 0, 2 * H, H, rc, 1, dGc, G, hpc, H, 1, dw_hh, H, gemm_ws))) return st;
        if ((st = GEMM(1, 0, H, H, rc, 1, dHN + r0 * H, H, hpc, H, 1, dw_hh + 2 * H * H, H,
                       gemm_ws)))
            return st;
        if ((st = SFX(rnn_gemm_packed_mt)(d->pool, d->threads, rc, I, G, 1, dGc, G, wipk, 1,
                                          dx + r0 * d->ldx, d->ldx, gemm_ws)))
            return st;
    }
    return RNN_OK;
}

#endif
