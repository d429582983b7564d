/*
 * rnn_ext.c: the extended Elman RNN of cells_ext.h (zoneout, recurrent
 * dropout; no layer norm), forward and backward through time, float32 and
 * float64 from one template.
 *
 *   h~ = act(W_ih x_t + b_ih + W_hh (m_b*h_{t-1}) + b_hh)   act tanh or relu (cfg->relu)
 *   h_t = zh*h_{t-1} + (1-zh)*h~
 *
 * Cache layout (R rows each, in the row(t, b) order of x; rows of steps past
 * a sequence's length are zero):
 *   hs (R, H) h~_t (before zoneout) | hm (R, H) m_b*h_{t-1} (h_{t-1} without a rec mask)
 * The same size as the plain RNN's cache; without masks it holds the same
 * values. Backward needs h~ for act' and m_b*h_{t-1} for dW_hh only: the
 * zoneout path to h_{t-1} does not read the state.
 *
 * Forward scratch: pre (B, H) recurrent product | hm (B, H) m_b*h_{t-1} |
 *   W_hh^T packed | blk (Tc*B, H) W_ih x of a block of Tc steps
 *   (rnn_ext_proj_steps), also h~ at inference | xs (Tc*B, I) the block's
 *   rows of x, when they are not in place | W_ih^T packed | at inference
 *   one step's rows of m_b*h_{t-1}.
 * Both forwards compute the input projection a block of steps ahead, so it
 * stays in cache until its steps read it (as in lstm_ext.c; the blocks give
 * the same bits).
 * Backward scratch: dA (Rb, H) pre-activation grads of a block of Tb steps
 *   (rnn_bwd_block_steps) | dh (B, H) carried dL/dh | dhr (B, H) | dAs (B, H)
 *   this step's dA, zero for ended rows | W_hh packed | and with Tb < T the
 *   block's rows of x (Rb, I) and m_b*h_{t-1} (Rb, H) gathered where they
 *   are not in place, and its dx rows (Rb, I). With Tb < T a block's
 *   Rb = Tb*B rows are in step order (row j*B + b: the block's step j,
 *   sequence b) and its weight gradients and dx are computed once its steps
 *   are done, while the rows are in cache (as in lstm_ext.c); with one block
 *   of all T steps they are the R rows in the row(t, b) order of x.
 *
 * Interpretations of the contract:
 *   - the kind is RNN_CELL_RELU when cfg->relu, else RNN_CELL_TANH, so the
 *     kernels cannot disagree with cfg; rnn_ext_dims_check rejects layer_norm,
 *     a projection and peepholes.
 *   - m may be NULL (no masks), as may any of its pointers.
 *   - zh_ld must be 0 or >= H; anything else, or a negative ld, is RNN_ERR_LD.
 *   - backward does not read the biases, so p->b_ih and p->b_hh may be NULL there.
 */
#ifndef REAL
#include "cells_ext.h"

static int rx_kind(const rnn_ext_config *cfg) {
    return cfg && cfg->relu ? RNN_CELL_RELU : RNN_CELL_TANH;
}

/* Rows of a backward block (rx_bwd_block): all R, or Tb*B; rows gathered. */
static int64_t rx_bwd_block_rows(const rnn_dims *d, int64_t *gathered) {
    int64_t tb = rnn_bwd_block_steps(d, d->H);
    *gathered = tb >= d->T ? 0 : rnn_mul(tb, d->B);
    return tb >= d->T ? rnn_mul(d->T, d->B) : *gathered;
}

#define DTYPE_TEMPLATE "rnn_ext.c"
#include "dtype_template.h"

int64_t rnn_ext_cache_len_rnn(const rnn_dims *d, const rnn_ext_config *cfg) {
    if (rnn_ext_dims_check(rx_kind(cfg), d, cfg)) return -1;
    if (d->inference) return 0;
    return rnn_mul(rnn_mul(rnn_mul(d->T, d->B), d->H), 2);
}

int64_t rnn_ext_forward_work_len_rnn(const rnn_dims *d, const rnn_ext_config *cfg) {
    if (rnn_ext_dims_check(rx_kind(cfg), d, cfg)) return -1;
    int64_t n = rnn_add(rnn_mul(rnn_mul(d->B, d->H), 2), rnn_ext_packed_len(d, d->H, d->H));
    /* the block of x W_ih^T rows, x's rows gathered, W_ih packed (none of
     * them where the training forward projects all rows at once), and at
     * inference one step's hm rows */
    int64_t blocks = rnn_proj_blocks(d, d->H);
    int64_t tcb = blocks ? rnn_mul(rnn_ext_proj_steps(d, d->H), d->B) : 0;
    n = rnn_add(n, rnn_mul(tcb, d->H));
    n = rnn_add(n, rnn_mul(tcb, d->I));
    n = rnn_add(n, blocks ? rnn_ext_packed_len(d, d->H, d->I) : 0);
    return d->inference ? rnn_add(n, rnn_mul(d->B, d->H)) : n;
}

int64_t rnn_ext_backward_work_len_rnn(const rnn_dims *d, const rnn_ext_config *cfg) {
    if (rnn_ext_dims_check(rx_kind(cfg), d, cfg)) return -1;
    int64_t rg, rb = rx_bwd_block_rows(d, &rg);
    int64_t n = rnn_add(rnn_mul(rb, d->H), rnn_mul(rnn_mul(d->B, d->H), 3));
    n = rnn_add(n, rnn_ext_packed_len(d, d->H, d->H));
    return rnn_add(n, rnn_mul(rg, rnn_add(rnn_mul(2, d->I), d->H)));
}

#else /* template body, instantiated once per dtype */
#include "cell_common.h"

/* One row of a forward step: h~ into hr (H) from xs, x W_ih^T (xs may be
 * hr); pb is hm W_hh^T; the state hb advances in place (zoneout by zr when
 * use_z) and the output is written. */
static CELL_INLINE void SFX(rx_fwd_loop)(int64_t H, REAL *hr, const REAL *xs,
                                         const REAL *restrict pb,
                                         const REAL *restrict b_ih, const REAL *restrict b_hh,
                                         REAL *restrict hb, REAL *restrict o,
                                         const REAL *restrict zr, int relu, const int use_z) {
    for (int64_t j = 0; j < H; j++) {
        REAL h_prev = hb[j];
        REAL a = xs[j] + b_ih[j] + pb[j] + b_hh[j];
        REAL ht = relu ? (a > 0 ? a : (REAL)0) : SFX(rnn_tanhv)(a);
        REAL h = use_z ? zr[j] * h_prev + ((REAL)1 - zr[j]) * ht : ht;
        hr[j] = ht;
        hb[j] = h;
        o[j] = h;
    }
}
#undef RX_V512
#if DTYPE_F32 && RNN_V512
/* rx_fwd_loop's tanh case (float32) by hand with AVX-512: its operations in
 * its order (rnn_v512_tanh: the scalar tanh's bits), so the same bits. */
__attribute__((target("avx512f,avx512vl,avx512dq,fma"))) static void
rx_fwd_tanh_v512(int64_t H, float *hr, const float *xs, const float *restrict pb,
                 const float *restrict b_ih, const float *restrict b_hh, float *restrict hb,
                 float *restrict o, const float *restrict zr) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t j = 0; j < H; j += 16) {
        const __mmask16 m = rnn_v512_mask(H, j);
        __m512 a = _mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(m, xs + j),
                                        _mm512_maskz_loadu_ps(m, b_ih + j)),
                          _mm512_maskz_loadu_ps(m, pb + j)),
            _mm512_maskz_loadu_ps(m, b_hh + j));
        __m512 ht = rnn_v512_tanh(a), h = ht;
        if (zr) {
            __m512 z = _mm512_maskz_loadu_ps(m, zr + j);
            h = _mm512_add_ps(_mm512_mul_ps(z, _mm512_maskz_loadu_ps(m, hb + j)),
                              _mm512_mul_ps(_mm512_sub_ps(one, z), ht));
        }
        _mm512_mask_storeu_ps(hr + j, m, ht);
        _mm512_mask_storeu_ps(hb + j, m, h);
        _mm512_mask_storeu_ps(o + j, m, h);
    }
}
#define RX_V512 1
#else
#define RX_V512 0
#endif
/* h~ into hr from xs, x W_ih^T (which may be hr); v512: the AVX-512
 * variant (float32 tanh: rx_fwd_tanh_v512) */
static CELL_INLINE void SFX(rx_fwd_row)(int64_t H, REAL *hr, const REAL *xs,
                                        const REAL *restrict pb,
                                        const REAL *restrict b_ih, const REAL *restrict b_hh,
                                        REAL *restrict hb, REAL *restrict o, REAL *restrict hmr,
                                        const REAL *restrict mr, const REAL *restrict zr,
                                        int relu, const int v512) {
    /* saves m_b*h_{t-1} (mr the rec row, or NULL) for dW_hh, then a copy of
     * the loop with and one without zoneout, so neither tests it per element */
    if (mr)
        for (int64_t j = 0; j < H; j++) hmr[j] = mr[j] * hb[j];
    else
        memcpy(hmr, hb, (size_t)H * sizeof(REAL));
#if RX_V512
    if (v512 && !relu) rx_fwd_tanh_v512(H, hr, xs, pb, b_ih, b_hh, hb, o, zr);
    else
#else
    (void)v512;
#endif
    if (zr) SFX(rx_fwd_loop)(H, hr, xs, pb, b_ih, b_hh, hb, o, zr, relu, 1);
    else SFX(rx_fwd_loop)(H, hr, xs, pb, b_ih, b_hh, hb, o, zr, relu, 0);
}
CELL_ROW_VARIANTS2(rx_fwd_row,
                   (int64_t H, REAL *hr, const REAL *xs, const REAL *restrict pb,
                    const REAL *restrict b_ih, const REAL *restrict b_hh, REAL *restrict hb,
                    REAL *restrict o, REAL *restrict hmr, const REAL *restrict mr,
                    const REAL *restrict zr, int relu),
                   (H, hr, xs, pb, b_ih, b_hh, hb, o, hmr, mr, zr, relu, 0),
                   (H, hr, xs, pb, b_ih, b_hh, hb, o, hmr, mr, zr, relu, 1))

/* One row of a backward step: the pre-activation gradient into da and das;
 * db (dL/dh_t on entry) becomes the zoneout path zh * dL/dh_t (0 without
 * zoneout), to which the step's product adds the rest. */
static CELL_INLINE void SFX(rx_bwd_loop)(int64_t H, const REAL *restrict hr,
                                         const REAL *restrict go, const REAL *restrict zr,
                                         REAL *restrict db, REAL *restrict da,
                                         REAL *restrict das, int relu, const int use_go,
                                         const int use_z) {
    for (int64_t j = 0; j < H; j++) {
        REAL g = db[j] + (use_go ? go[j] : 0);
        REAL gt = use_z ? ((REAL)1 - zr[j]) * g : g;
        REAL h = hr[j];
        REAL v = relu ? (h > 0 ? gt : (REAL)0) : gt * ((REAL)1 - h * h);
        da[j] = v;
        das[j] = v;
        db[j] = use_z ? zr[j] * g : (REAL)0;
    }
}
static CELL_INLINE void SFX(rx_bwd_row)(int64_t H, const REAL *restrict hr,
                                        const REAL *restrict go, const REAL *restrict zr,
                                        REAL *restrict db, REAL *restrict da, REAL *restrict das,
                                        int relu) {
    if (go) {
        if (zr) SFX(rx_bwd_loop)(H, hr, go, zr, db, da, das, relu, 1, 1);
        else SFX(rx_bwd_loop)(H, hr, go, zr, db, da, das, relu, 1, 0);
    } else {
        if (zr) SFX(rx_bwd_loop)(H, hr, go, zr, db, da, das, relu, 0, 1);
        else SFX(rx_bwd_loop)(H, hr, go, zr, db, da, das, relu, 0, 0);
    }
}
CELL_ROW_VARIANTS(rx_bwd_row,
                  (int64_t H, const REAL *restrict hr, const REAL *restrict go,
                   const REAL *restrict zr, REAL *restrict db, REAL *restrict da,
                   REAL *restrict das, int relu),
                  (H, hr, go, zr, db, da, das, relu))

/* The rows [b0, b1) of rnn_ext_forward's step loop; the fields are that loop's locals. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(rx_fwd_row_fn) row;
    int64_t H;
    REAL *blk; /* the block of x W_ih^T rows, or NULL: they are in hs */
    REAL *hs;  /* h~ rows (blk at inference) */
    REAL *pre;
    const SFX(rnn_ext_params) *p;
    REAL *hT;
    REAL *out;
    REAL *hmc;
    const REAL *rec;
    const REAL *zh;
    int64_t zld;
    int relu;
    int inf;      /* inference: hmc holds one step's rows */
    int64_t goff; /* the step's first row in blk */
} SFX(rx_fwd_rows_ctx);
static void SFX(rx_fwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(rx_fwd_rows_ctx) *c_ = ctx;
    const rnn_dims *d = c_->d;
    const int64_t *lengths = c_->lengths;
    int64_t s = c_->s;
    SFX(rx_fwd_row_fn) row = c_->row;
    int64_t H = c_->H;
    REAL *hs = c_->hs;
    REAL *pre = c_->pre;
    const SFX(rnn_ext_params) *p = c_->p;
    REAL *hT = c_->hT;
    REAL *out = c_->out;
    REAL *hmc = c_->hmc;
    const REAL *rec = c_->rec;
    const REAL *zh = c_->zh;
    int64_t zld = c_->zld;
    int relu = c_->relu;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, s, rnn_seq_len(d, lengths, b));
        if (t < 0) continue;
        int64_t r = t * d->ts + b * d->bs;
        const REAL *xs = c_->blk ? c_->blk + (c_->goff + b) * H : hs + r * H; /* in place */
        int64_t q = c_->inf ? b : r, hq = c_->inf ? c_->goff + b : r; /* rows of hmc, hs */
        row(H, hs + hq * H, xs, pre + b * H, p->b_ih, p->b_hh, hT + b * H, out + r * d->ldo,
            hmc + q * H, rec ? rec + b * H : NULL, zh ? zh + r * zld : NULL, relu);
    }
}

/* rnn_ext_forward's step over rows [b0, b1) (rnn_run_step): the recurrent
 * product, then the rows' state. */
typedef struct {
    SFX(rx_fwd_rows_ctx) rows; /* the step's rows pass */
    int split, ne;             /* a task of a split step; the unsplit step's row threads */
    REAL *hm;                  /* rec * h_{t-1} */
    const SFX(step_w) *whh;
} SFX(rx_fwd_step_ctx);
static int SFX(rx_fwd_step)(void *ctx, int64_t b0, int64_t b1, void *ws) {
    SFX(rx_fwd_step_ctx) *k = ctx;
    const rnn_dims *d = k->rows.d;
    const int64_t H = k->rows.H;
    const REAL *a = k->rows.hT, *rec = k->rows.rec;
    if (rec) {
        for (int64_t j = b0 * H; j < b1 * H; j++) k->hm[j] = rec[j] * k->rows.hT[j];
        a = k->hm;
    }
    int st = SFX(step_mul_rows)(d, k->split, b0, b1, H, H, a, k->whh, 0, k->rows.pre, H, ws);
    if (st) return st;
    rnn_step_rows(d, k->split, k->ne, b0, b1, SFX(rx_fwd_rows), &k->rows);
    return RNN_OK;
}

int SFX(rnn_ext_forward)(REAL *out, REAL *hT, REAL *cache, const REAL *x, const REAL *h0,
                         const SFX(rnn_ext_params) *p, const SFX(rnn_ext_masks) *m,
                         const rnn_ext_config *cfg, const int64_t *lengths, const rnn_dims *d,
                         REAL *work, void *gemm_ws) {
    int st = rnn_ext_dims_check(rx_kind(cfg), d, cfg);
    if (st) return st;
    const int relu = cfg->relu != 0;
    const int inf = d->inference != 0;
    if (!out || !hT || (!cache && !inf) || !x || !p || !work || !gemm_ws) return RNN_ERR_NULL;
    if (!p->w_ih || !p->w_hh || !p->b_ih || !p->b_hh) return RNN_ERR_NULL;
    if ((st = rnn_lengths_check(d, lengths))) return st;
    const REAL *rec = m ? m->rec : NULL, *zh = m ? m->zh : NULL;
    const int64_t zld = m ? m->zh_ld : 0;
    if ((st = rnn_ext_mask_check(zh, zld, d->H, d))) return st;

    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, R = T * B;
    REAL *pre = work;          /* (B, H) */
    REAL *hm = pre + B * H;    /* (B, H) */
    REAL *wpk = hm + B * H;    /* W_hh^T packed */
    const int blocks = rnn_proj_blocks(d, H); /* else x W_ih^T of all rows in hs */
    const int64_t Tc = blocks ? rnn_ext_proj_steps(d, H) : 0;
    REAL *blk = wpk + rnn_ext_packed_len(d, H, H); /* (Tc*B, H) */
    REAL *xs = blk + Tc * B * H, *wipk = xs + Tc * B * I;
    /* hs (R, H) h~ and hmc (R, H) m_b*h_{t-1} in the cache; at inference h~
     * in blk and one step's rows of hmc after W_ih packed */
    REAL *hs = inf ? blk : cache;
    REAL *hmc = inf ? wipk + rnn_ext_packed_len(d, H, I) : cache + R * H; /* inf: blocks */

    /* x W_ih^T a block of steps ahead of them, W_ih packed once; the time
     * loop adds the rest */
    if (!blocks) {
        if ((st = SFX(input_proj)(d, H, x, p->w_ih, hs, gemm_ws))) return st;
    } else if (!rnn_in_place(d, I) && (st = SFX(step_pack_ld)(d, 1, H, I, p->w_ih, I, wipk))) {
        return st;
    }
    SFX(step_w) whh;
    if ((st = SFX(step_w_make)(d, 1, H, H, p->w_hh, H, wpk, &whh))) return st;
    SFX(copy_or_zero)(hT, h0, B * H); /* hT is the running state */
    const int nst = rnn_step_split(d, H, H, sizeof(REAL));
    SFX(rx_fwd_step_ctx) step = {
        .rows = {.d = d, .lengths = lengths, .row = SFX(rx_fwd_row_pick)(rnn_gemm_best_isa()),
                 .H = H, .blk = blocks ? blk : NULL, .hs = hs, .pre = pre, .p = p, .hT = hT, .out = out, .hmc = hmc,
                 .rec = rec, .zh = zh, .zld = zld, .relu = relu, .inf = inf},
        .split = nst > 1,
        .ne = rnn_elem_threads(d, 4 * H), /* tanh costs about four gates' worth */
        .hm = hm, .whh = &whh};

    rnn_proj_block pb = {0, 0};
    for (int64_t s = 0; s < T; s++) {
        if (blocks && (st = SFX(proj_block_next)(d, lengths, s, Tc, H, x, p->w_ih, wipk, xs, blk,
                                                 &pb, gemm_ws)))
            return st;
        step.rows.s = s;
        step.rows.goff = blocks ? (s - pb.p0) * B : 0;
        if ((st = rnn_run_step(d, nst, SFX(rx_fwd_step), &step, gemm_ws))) return st;
    }
    SFX(zero_padded_rows)(out, H, d->ldo, lengths, d);
    if (inf) return RNN_OK;
    SFX(zero_padded_rows)(hs, H, H, lengths, d);
    SFX(zero_padded_rows)(hmc, H, H, lengths, d);
    return RNN_OK;
}

/* The rows [b0, b1) of rnn_ext_backward's step loop; the fields are that loop's locals. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(rx_bwd_row_fn) row;
    int64_t H;
    const REAL *hs;
    const REAL *dout;
    const REAL *zh;
    int64_t zld;
    REAL *dh;
    REAL *dA;
    REAL *dAs;
    int relu;
    int64_t qoff; /* the step's first row in dA (a block of steps) */
    int whole;    /* dA has all R rows, in row(t, b) order */
} SFX(rx_bwd_rows_ctx);
static void SFX(rx_bwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(rx_bwd_rows_ctx) *c_ = ctx;
    const rnn_dims *d = c_->d;
    const int64_t *lengths = c_->lengths;
    int64_t s = c_->s;
    SFX(rx_bwd_row_fn) row = c_->row;
    int64_t H = c_->H;
    const REAL *hs = c_->hs;
    const REAL *dout = c_->dout;
    const REAL *zh = c_->zh;
    int64_t zld = c_->zld;
    REAL *dh = c_->dh;
    REAL *dA = c_->dA;
    REAL *dAs = c_->dAs;
    int relu = c_->relu;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, s, rnn_seq_len(d, lengths, b));
        REAL *das = dAs + b * H;
        if (t < 0) {
            memset(das, 0, (size_t)H * sizeof(REAL));
            SFX(bwd_block_zero)(c_->whole, c_->qoff, b, dA, H);
            continue;
        }
        int64_t r = t * d->ts + b * d->bs, q = rnn_bwd_block_row(c_->whole, c_->qoff, b, r);
        row(H, hs + r * H, dout ? dout + r * d->ldo : NULL, zh ? zh + r * zld : NULL,
            dh + b * H, dA + q * H, das, relu);
    }
}

/* rnn_ext_backward's step over rows [b0, b1) (rnn_run_step): the rows'
 * gradients, then dL/dh_{t-1}. */
typedef struct {
    SFX(rx_bwd_rows_ctx) rows; /* the step's rows pass */
    int split, ne;             /* a task of a split step; the unsplit step's row threads */
    const REAL *rec;           /* recurrent dropout's mask, or NULL */
    REAL *dhr;                 /* dA_t W_hh */
    const SFX(step_w) *whh;
} SFX(rx_bwd_step_ctx);
static int SFX(rx_bwd_step)(void *ctx, int64_t b0, int64_t b1, void *ws) {
    SFX(rx_bwd_step_ctx) *k = ctx;
    const rnn_dims *d = k->rows.d;
    const int64_t H = k->rows.H;
    rnn_step_rows(d, k->split, k->ne, b0, b1, SFX(rx_bwd_rows), &k->rows);
    /* dh_{t-1} = zh*dh + m_b * (dA_t W_hh) for running rows; ended rows pass dh through */
    int st = SFX(step_mul_rows)(d, k->split, b0, b1, H, H, k->rows.dAs, k->whh, 0, k->dhr, H, ws);
    if (st) return st;
    SFX(step_dh_add)(d, k->rows.lengths, k->rows.s, b0, b1, H, 0, H, k->rows.dh, k->dhr, k->rec,
                     !k->rows.zh);
    return RNN_OK;
}

/* The weight gradients and dx of the block of steps s0 .. s0+n-1 from dA
 * (row j*B + b: step s0+j, sequence b; with one whole block (rb == R), the R
 * rows in row(t, b) order, whose padded rows this zeroes first). */
static int SFX(rx_bwd_block)(const rnn_dims *d, const int64_t *lengths, int64_t s0, int64_t n,
                             int whole, REAL *dA, const REAL *x, const REAL *hmc,
                             const SFX(rnn_ext_params) *p, const SFX(rnn_ext_grads) *g,
                             REAL *dx, REAL *xs, REAL *hms, REAL *dxs, void *gemm_ws) {
    const int64_t I = d->I, H = d->H, rows = whole ? d->T * d->B : n * d->B;
    int64_t lx = d->ldx;
    const REAL *xa = x, *ha = hmc;
    if (whole) { /* the rows of steps past a sequence's end were never written */
        SFX(zero_padded_rows)(dA, H, H, lengths, d);
    } else {
        xa = SFX(steps_x_rows)(d, lengths, s0, n, x, xs, &lx);
        ha = SFX(steps_rows_contig)(d, lengths, s0, n, hmc, H, hms);
    }
    int st;
    if ((st = GEMM(1, 0, H, I, rows, 1, dA, H, xa, lx, 1, g->w_ih, I, gemm_ws))) return st;
    if ((st = GEMM(1, 0, H, H, rows, 1, dA, H, ha, H, 1, g->w_hh, H, gemm_ws))) return st;
    SFX(colsum_add2)(g->b_ih, g->b_hh, dA, rows, H, H);
    return SFX(block_dx)(d, lengths, s0, n, whole, rows, H, dA, p->w_ih, dx, dxs, gemm_ws);
}

int SFX(rnn_ext_backward)(REAL *dx, REAL *dh0, const SFX(rnn_ext_grads) *g, const REAL *dout,
                          const REAL *dhT, const REAL *cache, const REAL *x,
                          const SFX(rnn_ext_params) *p, const SFX(rnn_ext_masks) *m,
                          const rnn_ext_config *cfg, const int64_t *lengths, const rnn_dims *d,
                          REAL *work, void *gemm_ws) {
    int st = rnn_ext_dims_check(rx_kind(cfg), d, cfg);
    if (st) return st;
    if (d->inference) return RNN_ERR_SIZE; /* an inference forward keeps nothing */
    const int relu = cfg->relu != 0;
    if (!dx || !dh0 || !g || !cache || !x || !p || !work || !gemm_ws) return RNN_ERR_NULL;
    if (!g->w_ih || !g->w_hh || !g->b_ih || !g->b_hh || !p->w_ih || !p->w_hh) return RNN_ERR_NULL;
    if ((st = rnn_lengths_check(d, lengths))) return st;
    const REAL *rec = m ? m->rec : NULL, *zh = m ? m->zh : NULL;
    const int64_t zld = m ? m->zh_ld : 0;
    if ((st = rnn_ext_mask_check(zh, zld, d->H, d))) return st;

    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, R = T * B;
    const int64_t Tb = rnn_bwd_block_steps(d, H);
    int64_t rg, rb = rx_bwd_block_rows(d, &rg);
    const int whole = rg == 0;
    const REAL *hs = cache, *hmc = cache + R * H;
    REAL *dA = work;            /* (rb, H) */
    REAL *dh = dA + rb * H;     /* (B, H) carried dL/dh */
    REAL *dhr = dh + B * H;     /* (B, H) */
    REAL *dAs = dhr + B * H;    /* (B, H) this step's dA, zero for ended rows */
    REAL *wpk = dAs + B * H;    /* W_hh packed */
    REAL *xs = wpk + rnn_ext_packed_len(d, H, H), *hms = xs + rg * I, *dxs = hms + rg * H;

    SFX(copy_or_zero)(dh, dhT, B * H);
    SFX(step_w) whh;
    if ((st = SFX(step_w_make)(d, 0, H, H, p->w_hh, H, wpk, &whh))) return st;
    const int nst = rnn_step_split(d, H, H, sizeof(REAL));
    SFX(rx_bwd_step_ctx) step = {
        .rows = {.d = d, .lengths = lengths, .row = SFX(rx_bwd_row_pick)(rnn_gemm_best_isa()),
                 .H = H, .hs = hs, .dout = dout, .zh = zh, .zld = zld, .dh = dh, .dA = dA,
                 .dAs = dAs, .relu = relu, .whole = whole},
        .split = nst > 1, .ne = rnn_elem_threads(d, H), .rec = rec, .dhr = dhr, .whh = &whh};
    /* the steps in blocks of Tb (the last block, run first, may be shorter):
     * a block's weight gradients once its steps are done */
    for (int64_t s = T - 1; s >= 0; s--) {
        int64_t s0, n;
        step.rows.qoff = rnn_bwd_block_of(d, Tb, s, &s0, &n);
        step.rows.s = s;
        if ((st = rnn_run_step(d, nst, SFX(rx_bwd_step), &step, gemm_ws))) return st;
        if (s == s0 && (st = SFX(rx_bwd_block)(d, lengths, s0, n, whole, dA, x, hmc, p, g, dx,
                                                xs, hms, dxs, gemm_ws)))
            return st;
    }
    SFX(add_into)(dh0, dh, B * H);
    return RNN_OK;
}

#endif
