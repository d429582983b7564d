/*
 * lstm_ref.c (tests only, see cells_ref.h): the LSTM cell, with optional diagonal peepholes (Gers &
 * Schmidhuber), forward and backward through time, float32 and float64
 * from one template.
 *
 *   i = sig(a_i + p_i*c_{t-1})   f = sig(a_f + p_f*c_{t-1})   g = tanh(a_g)
 *   c_t = f*c_{t-1} + i*g        o = sig(a_o + p_o*c_t)       h_t = o*tanh(c_t)
 *   a = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh, gate blocks i, f, g, o
 *
 * Without peepholes p = 0, which is PyTorch's nn.LSTM.
 */
#ifndef REAL
#include "cells_ref.h"

#define REAL float
#define SFX(name) name##_f32
#include "lstm_ref.c"
#undef REAL
#undef SFX
#undef GEMM

#define REAL double
#define SFX(name) name##_f64
#include "lstm_ref.c"
#undef REAL
#undef SFX
#undef GEMM

#else /* template body, instantiated once per dtype */
#include "cell_common.h"

/* forward scratch: bias (4H) b_ih + b_hh | pre (B, 4H) recurrent product |
 *   W_hh^T packed | W_ih^T packed */
/* backward scratch: dG (R, 4H) | dh (B, H) | dc (B, H) | dhr (B, H) | dGs (B, 4H) |
 *   dbs (4H) | W_hh packed | W_ih packed */

/* One row of a forward step without peepholes: gates from the input part
 * gr (4H, overwritten with the activated gates), the recurrent part pr and
 * the summed bias; the state cb, hb (H) advances in place; saves h_{t-1},
 * c_{t-1}, c_t and writes the output. */
static CELL_INLINE void SFX(lstm_fwd_row_loop)(int64_t H, REAL *restrict gr,
                                               const REAL *restrict pr,
                                               const REAL *restrict bias, REAL *restrict cb,
                                               REAL *restrict hb, REAL *restrict o,
                                               REAL *restrict csr, REAL *restrict hpr,
                                               REAL *restrict cpr, const int use_pr) {
    for (int64_t j = 0; j < H; j++) {
        REAL c_prev = cb[j];
        hpr[j] = hb[j];
        cpr[j] = c_prev;
        REAL ai = (use_pr ? gr[j] + pr[j] : gr[j]) + bias[j];
        REAL af = (use_pr ? gr[H + j] + pr[H + j] : gr[H + j]) + bias[H + j];
        REAL ag = (use_pr ? gr[2 * H + j] + pr[2 * H + j] : gr[2 * H + j]) + bias[2 * H + j];
        REAL ao = (use_pr ? gr[3 * H + j] + pr[3 * H + j] : gr[3 * H + j]) + bias[3 * H + j];
        REAL ig = SFX(rnn_sigmoid)(ai), fg = SFX(rnn_sigmoid)(af), gg = SFX(rnn_tanhv)(ag);
        REAL c = fg * c_prev + ig * gg;
        REAL og = SFX(rnn_sigmoid)(ao);
        REAL h = og * SFX(rnn_tanhv)(c);
        gr[j] = ig; gr[H + j] = fg; gr[2 * H + j] = gg; gr[3 * H + j] = og;
        csr[j] = c;
        cb[j] = c;
        hb[j] = h;
        o[j] = h;
    }
}
/* pr == NULL: gr already holds the recurrent part too (see lstm_forward). */
static CELL_INLINE void SFX(lstm_fwd_row)(int64_t H, REAL *restrict gr, const REAL *restrict pr,
                                          const REAL *restrict bias, REAL *restrict cb,
                                          REAL *restrict hb, REAL *restrict o,
                                          REAL *restrict csr, REAL *restrict hpr,
                                          REAL *restrict cpr) {
    if (pr) SFX(lstm_fwd_row_loop)(H, gr, pr, bias, cb, hb, o, csr, hpr, cpr, 1);
    else SFX(lstm_fwd_row_loop)(H, gr, pr, bias, cb, hb, o, csr, hpr, cpr, 0);
}
CELL_ROW_VARIANTS(lstm_fwd_row,
                  (int64_t H, REAL *restrict gr, const REAL *restrict pr, const REAL *restrict bias,
                   REAL *restrict cb, REAL *restrict hb, REAL *restrict o, REAL *restrict csr,
                   REAL *restrict hpr, REAL *restrict cpr),
                  (H, gr, pr, bias, cb, hb, o, csr, hpr, cpr))

/* One row of a backward step without peepholes: from the saved gates and
 * cell states and the carried dh, dc (H), writes the pre-activation gate
 * gradients into dgr and dgs (4H) and the carried dc for step t-1. */
static CELL_INLINE void SFX(lstm_bwd_row_loop)(int64_t H, const REAL *restrict gr,
                                          const REAL *restrict csr, const REAL *restrict cpr,
                                          const REAL *restrict go, const REAL *restrict dhb,
                                          REAL *restrict dcb, REAL *restrict dgr,
                                          REAL *restrict dgs, const int use_go) {
    for (int64_t j = 0; j < H; j++) {
        REAL ig = gr[j], fg = gr[H + j], gg = gr[2 * H + j], og = gr[3 * H + j];
        REAL c = csr[j], c_prev = cpr[j], tc = SFX(rnn_tanhv)(c);
        REAL gh = dhb[j] + (use_go ? go[j] : 0);
        REAL dao = gh * tc * og * ((REAL)1 - og);
        REAL gc = dcb[j] + gh * og * ((REAL)1 - tc * tc);
        REAL dai = gc * gg * ig * ((REAL)1 - ig);
        REAL daf = gc * c_prev * fg * ((REAL)1 - fg);
        REAL dag = gc * ig * ((REAL)1 - gg * gg);
        dgr[j] = dai;
        dgr[H + j] = daf;
        dgr[2 * H + j] = dag;
        dgr[3 * H + j] = dao;
        dcb[j] = gc * fg;
    }
    /* a copy afterwards: two stores per value kept GCC from vectorising */
    memcpy(dgs, dgr, (size_t)(4 * H) * sizeof(REAL));
}
static CELL_INLINE void SFX(lstm_bwd_row)(int64_t H, const REAL *restrict gr,
                                          const REAL *restrict csr, const REAL *restrict cpr,
                                          const REAL *restrict go, const REAL *restrict dhb,
                                          REAL *restrict dcb, REAL *restrict dgr,
                                          REAL *restrict dgs) {
    /* two copies of the loop, so neither tests go per element */
    if (go) SFX(lstm_bwd_row_loop)(H, gr, csr, cpr, go, dhb, dcb, dgr, dgs, 1);
    else SFX(lstm_bwd_row_loop)(H, gr, csr, cpr, go, dhb, dcb, dgr, dgs, 0);
}
CELL_ROW_VARIANTS(lstm_bwd_row,
                  (int64_t H, const REAL *restrict gr, const REAL *restrict csr,
                   const REAL *restrict cpr, const REAL *restrict go, const REAL *restrict dhb,
                   REAL *restrict dcb, REAL *restrict dgr, REAL *restrict dgs),
                  (H, gr, csr, cpr, go, dhb, dcb, dgr, dgs))

/* The rows [b0, b1) of lstm_forward's step loop; the fields are that loop's locals. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(lstm_fwd_row_fn) row;
    int fused;
    int64_t G;
    int64_t H;
    REAL *gates;
    REAL *hT;
    REAL *cT;
    REAL *out;
    REAL *cs;
    REAL *pre;
    const REAL *w_peep;
    REAL *bias;
    REAL *hp;
    REAL *cp;
    const REAL *pi;
    const REAL *pf;
    const REAL *po;
} SFX(lstm_fwd_rows_ctx);
static void SFX(lstm_fwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(lstm_fwd_rows_ctx) *c_ = ctx;
    const rnn_dims *d = c_->d;
    const int64_t *lengths = c_->lengths;
    int64_t s = c_->s;
    SFX(lstm_fwd_row_fn) row = c_->row;
    int fused = c_->fused;
    int64_t G = c_->G;
    int64_t H = c_->H;
    REAL *gates = c_->gates;
    REAL *hT = c_->hT;
    REAL *cT = c_->cT;
    REAL *out = c_->out;
    REAL *cs = c_->cs;
    REAL *pre = c_->pre;
    const REAL *w_peep = c_->w_peep;
    REAL *bias = c_->bias;
    REAL *hp = c_->hp;
    REAL *cp = c_->cp;
    const REAL *pi = c_->pi;
    const REAL *pf = c_->pf;
    const REAL *po = c_->po;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, s, rnn_seq_len(d, lengths, b));
        if (t < 0) continue;
        int64_t r = t * d->ts + b * d->bs;
        REAL *gr = gates + r * G, *hb = hT + b * H, *cb = cT + b * H, *o = out + r * d->ldo;
        REAL *csr = cs + r * H;
        const REAL *pr = pre + b * G;
        if (!w_peep) {
            row(H, gr, fused ? NULL : pr, bias, cb, hb, o, csr, hp + r * H, cp + r * H);
            continue;
        }
        memcpy(hp + r * H, hb, (size_t)H * sizeof(REAL));
        memcpy(cp + r * H, cb, (size_t)H * sizeof(REAL));
        for (int64_t j = 0; j < H; j++) {
            REAL c_prev = cb[j];
            REAL ai = gr[j] + pr[j] + bias[j];
            REAL af = gr[H + j] + pr[H + j] + bias[H + j];
            REAL ag = gr[2 * H + j] + pr[2 * H + j] + bias[2 * H + j];
            REAL ao = gr[3 * H + j] + pr[3 * H + j] + bias[3 * H + j];
            if (w_peep) { ai += pi[j] * c_prev; af += pf[j] * c_prev; }
            REAL ig = SFX(rnn_sigmoid)(ai), fg = SFX(rnn_sigmoid)(af), gg = SFX(rnn_tanhv)(ag);
            REAL c = fg * c_prev + ig * gg;
            if (w_peep) ao += po[j] * c;
            REAL og = SFX(rnn_sigmoid)(ao);
            REAL h = og * SFX(rnn_tanhv)(c);
            gr[j] = ig; gr[H + j] = fg; gr[2 * H + j] = gg; gr[3 * H + j] = og;
            csr[j] = c;
            cb[j] = c;
            hb[j] = h;
            o[j] = h;
        }
    }
}

int SFX(lstm_forward)(REAL *out, REAL *hT, REAL *cT, REAL *cache,
                      const REAL *x, const REAL *h0, const REAL *c0,
                      const REAL *w_ih, const REAL *w_hh,
                      const REAL *b_ih, const REAL *b_hh, const REAL *w_peep,
                      const int64_t *lengths, const rnn_dims *d,
                      REAL *work, void *gemm_ws) {
    int st = rnn_dims_check(d);
    if (st) return st;
    if (!out || !hT || !cT || !cache || !x || !w_ih || !w_hh || !b_ih || !b_hh || !work ||
        !gemm_ws)
        return RNN_ERR_NULL;
    if ((st = rnn_lengths_check(d, lengths))) return st;
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, R = T * B, G = 4 * H;
    REAL *gates = cache;        /* (R, 4H) */
    REAL *cs = gates + R * G;   /* (R, H) */
    REAL *hp = cs + R * H;      /* (R, H) */
    REAL *cp = hp + R * H;      /* (R, H) */
    REAL *bias = work;          /* (4H) */
    REAL *pre = bias + G;       /* (B, 4H) */
    REAL *wpk = pre + B * G;    /* W_hh^T packed */
    REAL *wipk = wpk + rnn_gemm_packed_len(G, H); /* W_ih^T packed */
    const REAL *pi = w_peep, *pf = w_peep ? w_peep + H : NULL, *po = w_peep ? w_peep + 2 * H : NULL;

    for (int64_t j = 0; j < G; j++) bias[j] = b_ih[j] + b_hh[j];
    /* When a step's rows are one block of `gates`, the recurrent product
     * adds itself into them (the same rounding as adding `pre`), which saves
     * writing and reading `pre`; and the input projection runs a block of
     * steps ahead of the loop rather than all at once, so that the loop
     * finds those gates in cache rather than in memory. */
    const int fused = !w_peep && rnn_step_uniform(d, lengths);
    /* Not at B == 1, where blocks of a few rows would stream W_ih once per
     * block. Steps per block: one when a step's rows are strided
     * (batch-first). */
    const int blocked = fused && B > 1;
    const int contig = d->bs == 1;
    int64_t nsteps = contig ? RNN_PROJ_ELEMS / (B * G) : 1;
    nsteps = nsteps < 1 ? 1 : nsteps > T ? T : nsteps;
    if (blocked) {
        if ((st = SFX(rnn_gemm_pack_b)(1, G, I, w_ih, I, wipk))) return st;
    } else if ((st = GEMM(0, 1, R, G, I, 1, x, d->ldx, w_ih, I, 0, gates, G, gemm_ws))) {
        return st;
    }
    if ((st = SFX(step_pack)(d, 1, G, H, w_hh, wpk))) return st;
    SFX(copy_or_zero)(hT, h0, B * H);
    SFX(copy_or_zero)(cT, c0, B * H);
    const SFX(lstm_fwd_row_fn) row = SFX(lstm_fwd_row_pick)(rnn_gemm_best_isa());
    const int ne = w_peep ? 1 : rnn_elem_threads(d, G);

    for (int64_t s = 0; s < T; s++) {
        if (blocked && s % nsteps == 0) {
            const int64_t n = T - s < nsteps ? T - s : nsteps;
            const int64_t t0 = d->reverse ? T - s - n : s; /* earliest time of the block */
            const REAL *xb = x + t0 * d->ts * d->ldx;
            REAL *gb = gates + t0 * d->ts * G;
            st = contig ? SFX(rnn_gemm_packed_mt)(d->pool, d->threads, n * B, G, I, 1, xb, d->ldx,
                                                  wipk, 0, gb, G, gemm_ws)
                        : SFX(rnn_gemm_packed_mt)(d->pool, d->threads, B, G, I, 1, xb,
                                                  d->bs * d->ldx, wipk, 0, gb, d->bs * G, gemm_ws);
            if (st) return st;
        }
        if (fused) {
            int64_t t = d->reverse ? T - 1 - s : s;
            st = SFX(step_gemm_acc)(d, 1, G, H, hT, w_hh, wpk, gates + t * d->ts * G, d->bs * G,
                                    gemm_ws);
        } else {
            st = SFX(step_gemm)(d, 1, G, H, hT, w_hh, wpk, pre, gemm_ws);
        }
        if (st) return st;
        SFX(lstm_fwd_rows_ctx) rows_ctx = {.d = d, .lengths = lengths, .s = s, .row = row,
                                           .fused = fused, .G = G, .H = H, .gates = gates, .hT = hT,
                                           .cT = cT, .out = out, .cs = cs, .pre = pre,
                                           .w_peep = w_peep, .bias = bias, .hp = hp, .cp = cp,
                                           .pi = pi, .pf = pf, .po = po};
        rnn_par_rows(d, ne, B, SFX(lstm_fwd_rows), &rows_ctx);
    }
    SFX(zero_padded_rows)(out, H, d->ldo, lengths, d);
    SFX(zero_padded_rows)(gates, G, G, lengths, d);
    SFX(zero_padded_rows)(cs, H, H, lengths, d);
    SFX(zero_padded_rows)(hp, H, H, lengths, d);
    SFX(zero_padded_rows)(cp, H, H, lengths, d);
    return RNN_OK;
}

/* The rows [b0, b1) of lstm_backward's step loop; the fields are that loop's locals. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(lstm_bwd_row_fn) row;
    int64_t G;
    int64_t H;
    const REAL *gates;
    const REAL *cs;
    const REAL *cp;
    const REAL *dout;
    REAL *dG;
    REAL *dh;
    REAL *dc;
    REAL *dGs;
    const REAL *w_peep;
    const REAL *pi;
    const REAL *pf;
    const REAL *po;
    REAL *dpi;
    REAL *dpf;
    REAL *dpo;
} SFX(lstm_bwd_rows_ctx);
static void SFX(lstm_bwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(lstm_bwd_rows_ctx) *c_ = ctx;
    const rnn_dims *d = c_->d;
    const int64_t *lengths = c_->lengths;
    int64_t s = c_->s;
    SFX(lstm_bwd_row_fn) row = c_->row;
    int64_t G = c_->G;
    int64_t H = c_->H;
    const REAL *gates = c_->gates;
    const REAL *cs = c_->cs;
    const REAL *cp = c_->cp;
    const REAL *dout = c_->dout;
    REAL *dG = c_->dG;
    REAL *dh = c_->dh;
    REAL *dc = c_->dc;
    REAL *dGs = c_->dGs;
    const REAL *w_peep = c_->w_peep;
    const REAL *pi = c_->pi;
    const REAL *pf = c_->pf;
    const REAL *po = c_->po;
    REAL *dpi = c_->dpi;
    REAL *dpf = c_->dpf;
    REAL *dpo = c_->dpo;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, s, rnn_seq_len(d, lengths, b));
        REAL *dgs = dGs + b * G;
        if (t < 0) { memset(dgs, 0, (size_t)G * sizeof(REAL)); continue; }
        int64_t r = t * d->ts + b * d->bs;
        const REAL *gr = gates + r * G, *csr = cs + r * H, *cpr = cp + r * H;
        const REAL *go = dout ? dout + r * d->ldo : NULL;
        REAL *dgr = dG + r * G, *dhb = dh + b * H, *dcb = dc + b * H;
        if (!w_peep) {
            row(H, gr, csr, cpr, go, dhb, dcb, dgr, dgs);
            continue;
        }
        for (int64_t j = 0; j < H; j++) {
            REAL ig = gr[j], fg = gr[H + j], gg = gr[2 * H + j], og = gr[3 * H + j];
            REAL c = csr[j], c_prev = cpr[j], tc = SFX(rnn_tanhv)(c);
            REAL gh = dhb[j] + (go ? go[j] : 0);
            REAL dao = gh * tc * og * ((REAL)1 - og);
            REAL gc = dcb[j] + gh * og * ((REAL)1 - tc * tc);
            if (w_peep) gc += dao * po[j];
            REAL dai = gc * gg * ig * ((REAL)1 - ig);
            REAL daf = gc * c_prev * fg * ((REAL)1 - fg);
            REAL dag = gc * ig * ((REAL)1 - gg * gg);
            REAL dc_prev = gc * fg;
            if (w_peep) {
                dc_prev += dai * pi[j] + daf * pf[j];
                dpi[j] += dai * c_prev;
                dpf[j] += daf * c_prev;
                dpo[j] += dao * c;
            }
            dgr[j] = dgs[j] = dai;
            dgr[H + j] = dgs[H + j] = daf;
            dgr[2 * H + j] = dgs[2 * H + j] = dag;
            dgr[3 * H + j] = dgs[3 * H + j] = dao;
            dcb[j] = dc_prev;
        }
    }
}

int SFX(lstm_backward)(REAL *dx, REAL *dh0, REAL *dc0,
                       REAL *dw_ih, REAL *dw_hh, REAL *db_ih, REAL *db_hh, REAL *dw_peep,
                       const REAL *dout, const REAL *dhT, const REAL *dcT,
                       const REAL *cache, const REAL *x,
                       const REAL *w_ih, const REAL *w_hh, const REAL *w_peep,
                       const int64_t *lengths, const rnn_dims *d,
                       REAL *work, void *gemm_ws) {
    int st = rnn_dims_check(d);
    if (st) return st;
    if (!dx || !dh0 || !dc0 || !dw_ih || !dw_hh || !db_ih || !db_hh || !cache || !x || !w_ih ||
        !w_hh || !work || !gemm_ws || (w_peep && !dw_peep))
        return RNN_ERR_NULL;
    if ((st = rnn_lengths_check(d, lengths))) return st;
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, R = T * B, G = 4 * H;
    const REAL *gates = cache, *cs = gates + R * G, *hp = cs + R * H, *cp = hp + R * H;
    REAL *dG = work;            /* (R, 4H) pre-activation gate gradients */
    REAL *dh = dG + R * G;      /* (B, H) carried dL/dh */
    REAL *dc = dh + B * H;      /* (B, H) carried dL/dc */
    REAL *dhr = dc + B * H;     /* (B, H) */
    REAL *dGs = dhr + B * H;    /* (B, 4H) this step's dG, zero for ended rows */
    REAL *dbs = dGs + B * G;    /* (4H) sum of dG over the rows, for the biases */
    REAL *wpk = dbs + G;        /* W_hh packed */
    REAL *wipk = wpk + rnn_gemm_packed_len(H, G); /* W_ih packed, for dx */
    const REAL *pi = w_peep, *pf = w_peep ? w_peep + H : NULL, *po = w_peep ? w_peep + 2 * H : NULL;
    REAL *dpi = dw_peep, *dpf = dw_peep ? dw_peep + H : NULL, *dpo = dw_peep ? dw_peep + 2 * H : NULL;

    /* without lengths the step loop writes every row of dG */
    if (lengths) memset(dG, 0, (size_t)(R * G) * sizeof(REAL));
    SFX(copy_or_zero)(dh, dhT, B * H);
    SFX(copy_or_zero)(dc, dcT, B * H);
    memset(dbs, 0, (size_t)G * sizeof(REAL));
    if ((st = SFX(step_pack)(d, 0, H, G, w_hh, wpk))) return st;
    const SFX(lstm_bwd_row_fn) row = SFX(lstm_bwd_row_pick)(rnn_gemm_best_isa());
    const int ne = w_peep ? 1 : rnn_elem_threads(d, G);
    for (int64_t s = T - 1; s >= 0; s--) {
        SFX(lstm_bwd_rows_ctx) rows_ctx = {.d = d, .lengths = lengths, .s = s, .row = row, .G = G,
                                           .H = H, .gates = gates, .cs = cs, .cp = cp, .dout = dout,
                                           .dG = dG, .dh = dh, .dc = dc, .dGs = dGs,
                                           .w_peep = w_peep, .pi = pi, .pf = pf, .po = po,
                                           .dpi = dpi, .dpf = dpf, .dpo = dpo};
        rnn_par_rows(d, ne, B, SFX(lstm_bwd_rows), &rows_ctx);
        /* the bias gradients, summed per step while dGs is in cache (its
         * rows of ended sequences are zero) */
        for (int64_t b = 0; b < B; b++) SFX(add_row)(dbs, dGs + b * G, G);
        /* dh_{t-1} = dG_t W_hh for running rows; ended rows pass dh through */
        if ((st = SFX(step_gemm)(d, 0, H, G, dGs, w_hh, wpk, dhr, gemm_ws))) return st;
        for (int64_t b = 0; b < B; b++)
            if (rnn_step_time(d, s, rnn_seq_len(d, lengths, b)) >= 0)
                memcpy(dh + b * H, dhr + b * H, (size_t)H * sizeof(REAL));
    }
    SFX(add_into)(dh0, dh, B * H);
    SFX(add_into)(dc0, dc, B * H);
    SFX(add_row)(db_ih, dbs, G);
    SFX(add_row)(db_hh, dbs, G);
    /* dW_ih += dG^T x, dW_hh += dG^T h_{t-1}, dx += dG W_ih, a block of rows
     * at a time, so that each block of dG comes from memory once and its
     * other two products find it in cache */
    /* W_ih packed once for the blocks' dx products (the same sums as GEMM) */
    if ((st = SFX(rnn_gemm_pack_b)(0, I, G, w_ih, I, wipk))) return st;
    for (int64_t r0 = 0; r0 < R; r0 += RNN_GRAD_ROWS) {
        const int64_t rc = R - r0 < RNN_GRAD_ROWS ? R - r0 : RNN_GRAD_ROWS;
        const REAL *dGc = dG + r0 * G;
        if ((st = GEMM(1, 0, G, I, rc, 1, dGc, G, x + r0 * d->ldx, d->ldx, 1, dw_ih, I, gemm_ws)))
            return st;
        if ((st = GEMM(1, 0, G, H, rc, 1, dGc, G, hp + r0 * H, H, 1, dw_hh, H, gemm_ws)))
            return st;
        if ((st = SFX(rnn_gemm_packed_mt)(d->pool, d->threads, rc, I, G, 1, dGc, G, wipk, 1,
                                          dx + r0 * d->ldx, d->ldx, gemm_ws)))
            return st;
    }
    return RNN_OK;
}

#endif
