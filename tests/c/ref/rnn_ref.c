/*
 * rnn_ref.c (tests only, see cells_ref.h): the Elman RNN cell (tanh or relu), forward and backward through
 * time, float32 and float64 from one template.
 *
 *   h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
 *
 * Forward does the input projection for all steps as one product, so only
 * h_{t-1} W_hh^T stays in the time loop; backward batches the weight
 * gradients and dx into three products over all steps.
 */
#ifndef REAL
#include "cells_ref.h"

#define REAL float
#define SFX(name) name##_f32
#include "rnn_ref.c"
#undef REAL
#undef SFX
#undef GEMM

#define REAL double
#define SFX(name) name##_f64
#include "rnn_ref.c"
#undef REAL
#undef SFX
#undef GEMM

#else /* template body, instantiated once per dtype */
#include "cell_common.h"

/* forward scratch: pre (B, H) recurrent product | W_hh^T packed */
/* backward scratch: dA (R, H) pre-activation grads | dh (B, H) | dhr (B, H) | dAs (B, H) |
 *   dbs (H) | W_hh packed | W_ih packed */

/* One row of a forward step: hr (H) holds x W_ih^T and becomes h_t; the
 * state hb advances in place; saves h_{t-1} and writes the output. */
static CELL_INLINE void SFX(rnn_fwd_row)(int64_t H, REAL *restrict hr, const REAL *restrict pb,
                                         const REAL *restrict b_ih, const REAL *restrict b_hh,
                                         REAL *restrict hb, REAL *restrict o, REAL *restrict hpr,
                                         int relu) {
    for (int64_t j = 0; j < H; j++) {
        hpr[j] = hb[j];
        REAL a = hr[j] + b_ih[j] + pb[j] + b_hh[j];
        REAL h = relu ? (a > 0 ? a : (REAL)0) : SFX(rnn_tanhv)(a);
        hr[j] = h;
        hb[j] = h;
        o[j] = h;
    }
}
CELL_ROW_VARIANTS(rnn_fwd_row,
                  (int64_t H, REAL *restrict hr, const REAL *restrict pb, const REAL *restrict b_ih,
                   const REAL *restrict b_hh, REAL *restrict hb, REAL *restrict o,
                   REAL *restrict hpr, int relu),
                  (H, hr, pb, b_ih, b_hh, hb, o, hpr, relu))

/* One row of a backward step: the pre-activation gradient into da and das. */
static CELL_INLINE void SFX(rnn_bwd_row_loop)(int64_t H, const REAL *restrict hr,
                                         const REAL *restrict go, const REAL *restrict db,
                                         REAL *restrict da, REAL *restrict das, int relu, const int use_go) {
    for (int64_t j = 0; j < H; j++) {
        REAL g = db[j] + (use_go ? go[j] : 0);
        REAL h = hr[j];
        REAL v = relu ? (h > 0 ? g : (REAL)0) : g * ((REAL)1 - h * h);
        da[j] = v;
        das[j] = v;
    }
}
static CELL_INLINE void SFX(rnn_bwd_row)(int64_t H, const REAL *restrict hr,
                                         const REAL *restrict go, const REAL *restrict db,
                                         REAL *restrict da, REAL *restrict das, int relu) {
    /* two copies of the loop, so neither tests go per element */
    if (go) SFX(rnn_bwd_row_loop)(H, hr, go, db, da, das, relu, 1);
    else SFX(rnn_bwd_row_loop)(H, hr, go, db, da, das, relu, 0);
}
CELL_ROW_VARIANTS(rnn_bwd_row,
                  (int64_t H, const REAL *restrict hr, const REAL *restrict go,
                   const REAL *restrict db, REAL *restrict da, REAL *restrict das, int relu),
                  (H, hr, go, db, da, das, relu))

/* The rows [b0, b1) of rnn_forward's step loop; the fields are that loop's locals. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(rnn_fwd_row_fn) row;
    int64_t H;
    REAL *hs;
    REAL *pre;
    const REAL *b_ih;
    const REAL *b_hh;
    REAL *hT;
    REAL *out;
    REAL *hp;
    int relu;
} SFX(rnn_fwd_rows_ctx);
static void SFX(rnn_fwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(rnn_fwd_rows_ctx) *c_ = ctx;
    const rnn_dims *d = c_->d;
    const int64_t *lengths = c_->lengths;
    int64_t s = c_->s;
    SFX(rnn_fwd_row_fn) row = c_->row;
    int64_t H = c_->H;
    REAL *hs = c_->hs;
    REAL *pre = c_->pre;
    const REAL *b_ih = c_->b_ih;
    const REAL *b_hh = c_->b_hh;
    REAL *hT = c_->hT;
    REAL *out = c_->out;
    REAL *hp = c_->hp;
    int relu = c_->relu;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, s, rnn_seq_len(d, lengths, b));
        if (t < 0) continue;
        int64_t r = t * d->ts + b * d->bs;
        row(H, hs + r * H, pre + b * H, b_ih, b_hh, hT + b * H, out + r * d->ldo, hp + r * H,
            relu);
    }
}

int SFX(rnn_forward)(REAL *out, REAL *hT, REAL *cache,
                     const REAL *x, const REAL *h0,
                     const REAL *w_ih, const REAL *w_hh,
                     const REAL *b_ih, const REAL *b_hh, int relu,
                     const int64_t *lengths, const rnn_dims *d,
                     REAL *work, void *gemm_ws) {
    int st = rnn_dims_check(d);
    if (st) return st;
    if (!out || !hT || !cache || !x || !w_ih || !w_hh || !b_ih || !b_hh || !work || !gemm_ws)
        return RNN_ERR_NULL;
    if ((st = rnn_lengths_check(d, lengths))) return st;
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, R = T * B;
    REAL *hs = cache;          /* (R, H) */
    REAL *hp = cache + R * H;  /* (R, H) */
    REAL *pre = work;          /* (B, H) */
    REAL *wpk = pre + B * H;   /* W_hh^T packed */

    /* hs = x W_ih^T for every step at once; the time loop adds the rest */
    if ((st = GEMM(0, 1, R, H, I, 1, x, d->ldx, w_ih, I, 0, hs, H, gemm_ws))) return st;
    if ((st = SFX(step_pack)(d, 1, H, H, w_hh, wpk))) return st;
    SFX(copy_or_zero)(hT, h0, B * H); /* hT is the running state */
    const SFX(rnn_fwd_row_fn) row = SFX(rnn_fwd_row_pick)(rnn_gemm_best_isa());
    const int ne = rnn_elem_threads(d, 4 * H); /* tanh costs about four gates' worth */

    for (int64_t s = 0; s < T; s++) {
        if ((st = SFX(step_gemm)(d, 1, H, H, hT, w_hh, wpk, pre, gemm_ws))) return st;
        SFX(rnn_fwd_rows_ctx) rows_ctx = {.d = d, .lengths = lengths, .s = s, .row = row, .H = H,
                                          .hs = hs, .pre = pre, .b_ih = b_ih, .b_hh = b_hh,
                                          .hT = hT, .out = out, .hp = hp, .relu = relu};
        rnn_par_rows(d, ne, B, SFX(rnn_fwd_rows), &rows_ctx);
    }
    SFX(zero_padded_rows)(out, H, d->ldo, lengths, d);
    SFX(zero_padded_rows)(hs, H, H, lengths, d);
    SFX(zero_padded_rows)(hp, H, H, lengths, d);
    return RNN_OK;
}

/* The rows [b0, b1) of rnn_backward's step loop; the fields are that loop's locals. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(rnn_bwd_row_fn) row;
    int64_t H;
    const REAL *hs;
    const REAL *dout;
    REAL *dh;
    REAL *dA;
    REAL *dAs;
    int relu;
} SFX(rnn_bwd_rows_ctx);
static void SFX(rnn_bwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(rnn_bwd_rows_ctx) *c_ = ctx;
    const rnn_dims *d = c_->d;
    const int64_t *lengths = c_->lengths;
    int64_t s = c_->s;
    SFX(rnn_bwd_row_fn) row = c_->row;
    int64_t H = c_->H;
    const REAL *hs = c_->hs;
    const REAL *dout = c_->dout;
    REAL *dh = c_->dh;
    REAL *dA = c_->dA;
    REAL *dAs = c_->dAs;
    int relu = c_->relu;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, s, rnn_seq_len(d, lengths, b));
        REAL *das = dAs + b * H;
        if (t < 0) { memset(das, 0, (size_t)H * sizeof(REAL)); continue; }
        int64_t r = t * d->ts + b * d->bs;
        row(H, hs + r * H, dout ? dout + r * d->ldo : NULL, dh + b * H, dA + r * H, das, relu);
    }
}

int SFX(rnn_backward)(REAL *dx, REAL *dh0,
                      REAL *dw_ih, REAL *dw_hh, REAL *db_ih, REAL *db_hh,
                      const REAL *dout, const REAL *dhT,
                      const REAL *cache, const REAL *x,
                      const REAL *w_ih, const REAL *w_hh, int relu,
                      const int64_t *lengths, const rnn_dims *d,
                      REAL *work, void *gemm_ws) {
    int st = rnn_dims_check(d);
    if (st) return st;
    if (!dx || !dh0 || !dw_ih || !dw_hh || !db_ih || !db_hh || !cache || !x || !w_ih || !w_hh ||
        !work || !gemm_ws)
        return RNN_ERR_NULL;
    if ((st = rnn_lengths_check(d, lengths))) return st;
    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, R = T * B;
    const REAL *hs = cache, *hp = cache + R * H;
    REAL *dA = work;            /* (R, H) */
    REAL *dh = dA + R * H;      /* (B, H) carried dL/dh */
    REAL *dhr = dh + B * H;     /* (B, H) */
    REAL *dAs = dhr + B * H;    /* (B, H) this step's dA, zero for ended rows */
    REAL *dbs = dAs + B * H;    /* (H) sum of dA over the rows, for the biases */
    REAL *wpk = dbs + H;        /* W_hh packed */
    REAL *wipk = wpk + rnn_gemm_packed_len(H, H); /* W_ih packed, for dx */

    /* without lengths the step loop writes every row of dA */
    if (lengths) memset(dA, 0, (size_t)(R * H) * sizeof(REAL));
    memset(dbs, 0, (size_t)H * sizeof(REAL));
    SFX(copy_or_zero)(dh, dhT, B * H);
    if ((st = SFX(step_pack)(d, 0, H, H, w_hh, wpk))) return st;
    const SFX(rnn_bwd_row_fn) row = SFX(rnn_bwd_row_pick)(rnn_gemm_best_isa());
    const int ne = rnn_elem_threads(d, H);
    for (int64_t s = T - 1; s >= 0; s--) {
        SFX(rnn_bwd_rows_ctx) rows_ctx = {.d = d, .lengths = lengths, .s = s, .row = row, .H = H,
                                          .hs = hs, .dout = dout, .dh = dh, .dA = dA, .dAs = dAs,
                                          .relu = relu};
        rnn_par_rows(d, ne, B, SFX(rnn_bwd_rows), &rows_ctx);
        /* the bias gradients, summed per step while dAs is in cache */
        for (int64_t b = 0; b < B; b++) SFX(add_row)(dbs, dAs + b * H, H);
        /* dh_{t-1} = dA_t W_hh for running rows; ended rows pass dh through */
        if ((st = SFX(step_gemm)(d, 0, H, H, dAs, w_hh, wpk, dhr, gemm_ws))) return st;
        for (int64_t b = 0; b < B; b++)
            if (rnn_step_time(d, s, rnn_seq_len(d, lengths, b)) >= 0)
                memcpy(dh + b * H, dhr + b * H, (size_t)H * sizeof(REAL));
    }
    SFX(add_into)(dh0, dh, B * H);
    SFX(add_row)(db_ih, dbs, H);
    SFX(add_row)(db_hh, dbs, H);
    /* the weight and input gradients a block of rows of dA at a time (see
     * lstm_backward) */
    /* W_ih packed once for the blocks' dx products (the same sums as GEMM) */
    if ((st = SFX(rnn_gemm_pack_b)(0, I, H, w_ih, I, wipk))) return st;
    for (int64_t r0 = 0; r0 < R; r0 += RNN_GRAD_ROWS) {
        const int64_t rc = R - r0 < RNN_GRAD_ROWS ? R - r0 : RNN_GRAD_ROWS;
        const REAL *dAc = dA + r0 * H;
        if ((st = GEMM(1, 0, H, I, rc, 1, dAc, H, x + r0 * d->ldx, d->ldx, 1, dw_ih, I, gemm_ws)))
            return st;
        if ((st = GEMM(1, 0, H, H, rc, 1, dAc, H, hp + r0 * H, H, 1, dw_hh, H, gemm_ws)))
            return st;
        if ((st = SFX(rnn_gemm_packed_mt)(d->pool, d->threads, rc, I, H, 1, dAc, H, wipk, 1,
                                          dx + r0 * d->ldx, d->ldx, gemm_ws)))
            return st;
    }
    return RNN_OK;
}

#endif
