/*
 * gru_ext.c: the extended GRU of cells_ext.h (layer normalisation, zoneout,
 * recurrent dropout), forward and backward through time, float32 and
 * float64 from one template.
 *
 *   u = ln_ih*LN(W_ih x_t) + b_ih        v = ln_hh*LN(W_hh (m_b*h_{t-1})) + b_hh
 *   r = sig(u_r + v_r)   z = sig(u_z + v_z)   n = tanh(u_n + r*v_n)
 *   h~ = (1-z)*n + z*h_{t-1}              h_t = zh*h_{t-1} + (1-zh)*h~
 * (without layer_norm: u = W_ih x_t + b_ih, v = W_hh (m_b*h_{t-1}) + b_hh)
 *
 * Cache layout (R rows each, in the row(t, b) order of x; rows of steps past
 * a sequence's length are zero):
 *   gates (R, 3H) r, z, n | vn (R, H) v_n | hp (R, H) h_{t-1} (unmasked)
 *   and with layer_norm, after those:
 *   xi (R, 3H) LN(W_ih x_t) | xh (R, 3H) LN(W_hh (m_b*h_{t-1})) |
 *   rs (R, 2) 1/sqrt(var + eps) of the two norms
 * So without layer_norm it is the plain GRU's cache (5RH) and with it 11RH + 2R.
 * The cache does not depend on the masks: backward forms m_b*h_{t-1} itself.
 *
 * Forward scratch: pre (B, 3H) recurrent product | hm (B, H) m_b*h_{t-1} |
 *   W_hh^T packed | blk (Tc*B, 3H) W_ih x of a block of Tc steps
 *   (rnn_ext_proj_steps) | xs (Tc*B, I) the block's rows of x, when they are
 *   not in place | W_ih^T packed | at inference one step's rows of the
 *   cache's arrays: gates (layer_norm) | vn | hp | xh, rs (layer_norm); the
 *   gates (without a norm) or LN(W_ih x) (with one) go to blk instead.
 * Both forwards compute the input projection a block of steps ahead, so it
 * stays in cache until its steps read it; computed for all R rows at once
 * into the cache it went to memory and back (as in lstm_ext.c; the blocks
 * give the same bits).
 * Backward scratch: dU (Rb, 3H) dL/du | dV (Rb, 3H) dL/dv of a block of Tb
 *   steps (rnn_bwd_block_steps) | dh (B, H) carried dL/dh | dhr (B, H) the
 *   step's product (before it, zoneout's scratch) | dGs (B, 3H) this step's
 *   dL/d(W_hh hm) | W_hh packed | and with Tb < T the block's rows gathered
 *   where they are not in place: x (Rb, I), m_b*h_{t-1} (Rb, H), dx (Rb, I),
 *   and with layer_norm xi, xh (Rb, 3H), rs (Rb, 2).
 *   With Tb < T a block's Rb = Tb*B rows are in step order (row j*B + b: the
 *   block's step j, sequence b), and its weight gradients and dx are
 *   computed once its steps are done, while the rows are in cache
 *   (gx_bwd_block). With one block of all T steps (whole) they are the R rows
 *   in the row(t, b) order of x, computed after the time loop as before:
 *   dU becomes dL/d(W_ih x) and dV dL/d(W_hh hm) in place (the layer-norm
 *   backward), and dU's storage, once dW_ih and dx are done, holds
 *   m_b*h_{t-1} (R, H) for dW_hh when there is a rec mask.
 *
 * Interpretations of the contract:
 *   - m may be NULL (no masks), as may any of its pointers.
 *   - zh_ld must be 0 or >= H (rows may not overlap partially); anything
 *     else, or a negative ld, is RNN_ERR_LD.
 *   - backward does not read the biases (v_n is cached), so p->b_ih and
 *     p->b_hh may be NULL there; with layer_norm it reads p->ln_ih, p->ln_hh.
 *   - the mean and variance of a norm are sums in a fixed order over eight
 *     partial sums, so they vectorise and give the same bits on every
 *     instruction set; 1/sqrt(var + eps) is computed in double.
 */
#ifndef REAL
#include "cells_ext.h"

/* The backward's scratch (elements from work), as gru_ext_backward lays it out. */
typedef struct {
    int64_t Tb, Rb;
    int whole;
    int64_t dU, dV, dh, dhr, dGs, wpk, xs, hs, dxs, xis, xhs, rss, len;
} gx_bwd_layout;

static int gx_bwd_layout_make(const rnn_dims *d, const rnn_ext_config *cfg, gx_bwd_layout *L) {
    const int64_t G = rnn_mul(3, d->H), BH = rnn_mul(d->B, d->H);
    L->Tb = rnn_bwd_block_steps(d, G);
    L->whole = L->Tb >= d->T;
    L->Rb = L->whole ? rnn_mul(d->T, d->B) : rnn_mul(L->Tb, d->B);
    const int64_t Rg = L->whole ? 0 : L->Rb, ln = cfg->layer_norm != 0;
    int64_t n = 0;
    L->dU = n; n = rnn_add(n, rnn_mul(L->Rb, G));
    L->dV = n; n = rnn_add(n, rnn_mul(L->Rb, G));
    L->dh = n; n = rnn_add(n, BH);
    L->dhr = n; n = rnn_add(n, BH);
    L->dGs = n; n = rnn_add(n, rnn_mul(d->B, G));
    L->wpk = n; n = rnn_add(n, rnn_ext_packed_len(d, d->H, G));
    L->xs = n; n = rnn_add(n, rnn_mul(Rg, d->I));
    L->hs = n; n = rnn_add(n, rnn_mul(Rg, d->H));
    L->dxs = n; n = rnn_add(n, rnn_mul(Rg, d->I));
    L->xis = n; n = rnn_add(n, ln ? rnn_mul(Rg, G) : 0);
    L->xhs = n; n = rnn_add(n, ln ? rnn_mul(Rg, G) : 0);
    L->rss = n; n = rnn_add(n, ln ? rnn_mul(Rg, 2) : 0);
    L->len = n;
    return n < 0 ? RNN_ERR_SIZE : RNN_OK;
}

#define DTYPE_TEMPLATE "gru_ext.c"
#include "dtype_template.h"

int64_t rnn_ext_cache_len_gru(const rnn_dims *d, const rnn_ext_config *cfg) {
    if (rnn_ext_dims_check(RNN_CELL_GRU, d, cfg)) return -1;
    if (d->inference) return 0;
    int64_t R = rnn_mul(d->T, d->B), RH = rnn_mul(R, d->H);
    int64_t n = rnn_mul(RH, 5);
    if (cfg->layer_norm) n = rnn_add(rnn_add(n, rnn_mul(RH, 6)), rnn_mul(R, 2));
    return n;
}

int64_t rnn_ext_forward_work_len_gru(const rnn_dims *d, const rnn_ext_config *cfg) {
    if (rnn_ext_dims_check(RNN_CELL_GRU, d, cfg)) return -1;
    int64_t BH = rnn_mul(d->B, d->H);
    int64_t n = rnn_mul(BH, 4);
    n = rnn_add(n, rnn_ext_packed_len(d, rnn_mul(3, d->H), d->H));
    /* the block of x W_ih^T rows, x's rows gathered, W_ih packed (none of
     * them where the training forward projects all rows at once) */
    int64_t G = rnn_mul(3, d->H), blocks = rnn_proj_blocks(d, G);
    int64_t tcb = blocks ? rnn_mul(rnn_ext_proj_steps(d, G), d->B) : 0;
    n = rnn_add(n, rnn_mul(tcb, G));
    n = rnn_add(n, rnn_mul(tcb, d->I));
    n = rnn_add(n, blocks ? rnn_ext_packed_len(d, G, d->I) : 0);
    if (!d->inference) return n;
    /* inference: one step's rows of the cache's arrays */
    n = rnn_add(n, rnn_mul(BH, cfg->layer_norm ? 8 : 2));
    return rnn_add(n, cfg->layer_norm ? rnn_mul(d->B, 2) : 0);
}

int64_t rnn_ext_backward_work_len_gru(const rnn_dims *d, const rnn_ext_config *cfg) {
    if (rnn_ext_dims_check(RNN_CELL_GRU, d, cfg)) return -1;
    gx_bwd_layout L;
    return gx_bwd_layout_make(d, cfg, &L) ? -1 : L.len;
}

#else /* template body, instantiated once per dtype */
#include "cell_common.h"

#include "layer_norm.h"

/* dst = LN(src) over n values (dst may be src); returns 1/sqrt(var + eps). */
static CELL_INLINE REAL SFX(gx_ln_fwd)(int64_t n, const REAL *src, REAL *dst) {
    REAL mu, rs;
    SFX(ln_stats)(src, n, &mu, &rs);
    for (int64_t j = 0; j < n; j++) dst[j] = (src[j] - mu) * rs;
    return rs;
}

/* For the backward of y = gain*LN(x) + shift, which is
 *   dx = rs*(e - mean(e) - xhat*mean(e*xhat)),  e = gain*dy,
 * the two means. */
static CELL_INLINE void SFX(gx_ln_bwd_means)(int64_t n, const REAL *restrict dy,
                                             const REAL *restrict xhat, const REAL *restrict gain,
                                             REAL *ma, REAL *mc) {
    REAL a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, c[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) {
            REAL e = gain[j + k] * dy[j + k];
            a[k] += e;
            c[k] += e * xhat[j + k];
        }
    REAL sa = RNN_LN_LANES(a), sc = RNN_LN_LANES(c);
    for (; j < n; j++) {
        REAL e = gain[j] * dy[j];
        sa += e;
        sc += e * xhat[j];
    }
    *ma = sa / (REAL)n;
    *mc = sc / (REAL)n;
}

#include "gru_row.h"

/* A forward row with layer norm: the norm of xs (3H), x W_ih^T, goes to xr
 * (which may be xs), the norm of pr to xh; rs gets the two
 * 1/sqrt(var + eps); the gates go to gr. */
static CELL_INLINE void SFX(gx_fwd_ln_loop)(int64_t H, const REAL *xs, REAL *xr,
                                            const REAL *restrict pr,
                                            REAL *restrict xh, REAL *restrict rs,
                                            const REAL *restrict ln_ih, const REAL *restrict ln_hh,
                                            const REAL *restrict b_ih, const REAL *restrict b_hh,
                                            REAL *restrict gr, REAL *restrict hb, REAL *restrict o,
                                            REAL *restrict hnr, REAL *restrict hpr) {
    const int64_t G = 3 * H;
    rs[0] = SFX(gx_ln_fwd)(G, xs, xr);
    rs[1] = SFX(gx_ln_fwd)(G, pr, xh);
    for (int64_t j = 0; j < H; j++) {
        REAL h_prev = hb[j];
        hpr[j] = h_prev;
        REAL ur = ln_ih[j] * xr[j] + b_ih[j], vr = ln_hh[j] * xh[j] + b_hh[j];
        REAL uz = ln_ih[H + j] * xr[H + j] + b_ih[H + j];
        REAL vz = ln_hh[H + j] * xh[H + j] + b_hh[H + j];
        REAL un = ln_ih[2 * H + j] * xr[2 * H + j] + b_ih[2 * H + j];
        REAL vn = ln_hh[2 * H + j] * xh[2 * H + j] + b_hh[2 * H + j];
        REAL rg = SFX(rnn_sigmoid)(ur + vr);
        REAL zg = SFX(rnn_sigmoid)(uz + vz);
        REAL ng = SFX(rnn_tanhv)(un + rg * vn);
        REAL h = ((REAL)1 - zg) * ng + zg * h_prev;
        gr[j] = rg; gr[H + j] = zg; gr[2 * H + j] = ng;
        hnr[j] = vn;
        hb[j] = h;
        o[j] = h;
    }
}

#undef GX_V512
#if DTYPE_F32 && RNN_V512
/* gru_fwd_row (float32) by hand with AVX-512, its operations in its order
 * (rnn_v512_*: the scalar activations' bits), so the same bits; the
 * compiler's vectorisation of the scalar loop wraps each exponential in mask
 * arithmetic for the activations' clamps. */
__attribute__((target("avx512f,avx512vl,avx512dq,fma"))) static void
gru_fwd_row_v512(int64_t H, float *gr, const float *xs, const float *restrict pr,
                 const float *restrict b_ih, const float *restrict b_hh, float *restrict hb,
                 float *restrict o, float *restrict hnr, float *restrict hpr) {
    const __m512 one = _mm512_set1_ps(1.0f);
#define GRU_LD(p, k) _mm512_maskz_loadu_ps(m, (p) + (k) * H + j)
    for (int64_t j = 0; j < H; j += 16) {
        const __mmask16 m = rnn_v512_mask(H, j);
        __m512 h_prev = GRU_LD(hb, 0);
        _mm512_mask_storeu_ps(hpr + j, m, h_prev);
        __m512 rg = rnn_v512_sigmoid(_mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(GRU_LD(xs, 0), GRU_LD(b_ih, 0)), GRU_LD(pr, 0)),
            GRU_LD(b_hh, 0)));
        __m512 zg = rnn_v512_sigmoid(_mm512_add_ps(
            _mm512_add_ps(_mm512_add_ps(GRU_LD(xs, 1), GRU_LD(b_ih, 1)), GRU_LD(pr, 1)),
            GRU_LD(b_hh, 1)));
        __m512 hnj = _mm512_add_ps(GRU_LD(pr, 2), GRU_LD(b_hh, 2));
        __m512 ng = rnn_v512_tanh(_mm512_add_ps(_mm512_add_ps(GRU_LD(xs, 2), GRU_LD(b_ih, 2)),
                                                _mm512_mul_ps(rg, hnj)));
        __m512 h = _mm512_add_ps(_mm512_mul_ps(_mm512_sub_ps(one, zg), ng),
                                 _mm512_mul_ps(zg, h_prev));
        _mm512_mask_storeu_ps(gr + j, m, rg);
        _mm512_mask_storeu_ps(gr + H + j, m, zg);
        _mm512_mask_storeu_ps(gr + 2 * H + j, m, ng);
        _mm512_mask_storeu_ps(hnr + j, m, hnj);
        _mm512_mask_storeu_ps(hb + j, m, h);
        _mm512_mask_storeu_ps(o + j, m, h);
    }
#undef GRU_LD
}
#define GX_V512 1
#else
#define GX_V512 0
#endif

/* One forward row: xs is the row of x W_ih^T; the gates go to gr, and with
 * a norm (ln_ih not NULL) LN(xs) to xr, the other outputs to xh and rs (xs
 * may be gr without a norm, xr with one). zr is the zoneout row or NULL.
 * v512: the AVX-512 variant (float32: gru_fwd_row_v512). */
static CELL_INLINE void SFX(gx_fwd_row)(int64_t H, const REAL *xs, REAL *xr,
                                        const REAL *restrict pr,
                                        REAL *restrict xh, REAL *restrict rs,
                                        const REAL *restrict ln_ih, const REAL *restrict ln_hh,
                                        const REAL *restrict b_ih, const REAL *restrict b_hh,
                                        REAL *gr, REAL *restrict hb, REAL *restrict o,
                                        REAL *restrict hnr, REAL *restrict hpr,
                                        const REAL *restrict zr, const int v512) {
    if (ln_ih)
        SFX(gx_fwd_ln_loop)(H, xs, xr, pr, xh, rs, ln_ih, ln_hh, b_ih, b_hh, gr, hb, o, hnr, hpr);
#if GX_V512
    else if (v512) gru_fwd_row_v512(H, gr, xs, pr, b_ih, b_hh, hb, o, hnr, hpr);
#else
    else if ((void)v512, 0) {}
#endif
    else SFX(gru_fwd_row)(H, gr, xs, pr, b_ih, b_hh, hb, o, hnr, hpr);
    if (zr) /* zoneout, a pass of its own so the gate loops exist once */
        for (int64_t j = 0; j < H; j++) {
            REAL h = zr[j] * hpr[j] + ((REAL)1 - zr[j]) * hb[j];
            hb[j] = h;
            o[j] = h;
        }
}
CELL_ROW_VARIANTS2(gx_fwd_row,
                   (int64_t H, const REAL *xs, REAL *xr, const REAL *restrict pr,
                    REAL *restrict xh, REAL *restrict rs, const REAL *restrict ln_ih,
                    const REAL *restrict ln_hh, const REAL *restrict b_ih,
                    const REAL *restrict b_hh, REAL *gr, REAL *restrict hb, REAL *restrict o,
                    REAL *restrict hnr, REAL *restrict hpr, const REAL *restrict zr),
                   (H, xs, xr, pr, xh, rs, ln_ih, ln_hh, b_ih, b_hh, gr, hb, o, hnr, hpr, zr, 0),
                   (H, xs, xr, pr, xh, rs, ln_ih, ln_hh, b_ih, b_hh, gr, hb, o, hnr, hpr, zr, 1))

/* One row of a backward step: dL/du into du (3H), dL/dv into dv and dgs
 * from dhb + go = dL/dh~; dhb becomes the path z * dL/dh~ to h_{t-1}. */
static CELL_INLINE void SFX(gx_bwd_loop)(int64_t H, const REAL *restrict gr,
                                         const REAL *restrict hnr, const REAL *restrict hpr,
                                         const REAL *restrict go, REAL *restrict dhb,
                                         REAL *restrict du, REAL *restrict dv,
                                         REAL *restrict dgs, const int use_go) {
    for (int64_t j = 0; j < H; j++) {
        REAL rg = gr[j], zg = gr[H + j], ng = gr[2 * H + j];
        REAL dht = dhb[j] + (use_go ? go[j] : 0);
        REAL dan = dht * ((REAL)1 - zg) * ((REAL)1 - ng * ng);
        REAL daz = dht * (hpr[j] - ng) * zg * ((REAL)1 - zg);
        REAL dar = dan * hnr[j] * rg * ((REAL)1 - rg);
        REAL dahn = dan * rg;
        du[j] = dv[j] = dgs[j] = dar;
        du[H + j] = dv[H + j] = dgs[H + j] = daz;
        du[2 * H + j] = dan;
        dv[2 * H + j] = dgs[2 * H + j] = dahn;
        dhb[j] = dht * zg;
    }
}
/* One backward row: dhb is dL/dh_t less go (dout's row or NULL) on entry
 * and the path (zh + (1-zh)*z) * dL/dh_t to h_{t-1} on exit, to which the
 * step's product adds the rest. Zoneout (zr) splits dL/dh_t in a pass of its
 * own, parking zh * dL/dh_t in st (H scratch), so the gate loop exists
 * once per go. With a norm (ln_hh not NULL), dgs becomes dL/d(W_hh hm) from
 * dv, the row's xh and its rs. */
static CELL_INLINE void SFX(gx_bwd_row)(int64_t H, const REAL *restrict gr,
                                        const REAL *restrict hnr, const REAL *restrict hpr,
                                        const REAL *restrict go, const REAL *restrict zr,
                                        REAL *restrict dhb, REAL *restrict st, REAL *restrict du,
                                        REAL *restrict dv, REAL *restrict dgs,
                                        const REAL *restrict xh, REAL rs,
                                        const REAL *restrict ln_hh) {
    if (zr) {
        if (go)
            for (int64_t j = 0; j < H; j++) {
                REAL gh = dhb[j] + go[j];
                st[j] = zr[j] * gh;
                dhb[j] = ((REAL)1 - zr[j]) * gh;
            }
        else
            for (int64_t j = 0; j < H; j++) {
                REAL gh = dhb[j];
                st[j] = zr[j] * gh;
                dhb[j] = ((REAL)1 - zr[j]) * gh;
            }
        SFX(gx_bwd_loop)(H, gr, hnr, hpr, go, dhb, du, dv, dgs, 0);
        for (int64_t j = 0; j < H; j++) dhb[j] += st[j];
    } else if (go) {
        SFX(gx_bwd_loop)(H, gr, hnr, hpr, go, dhb, du, dv, dgs, 1);
    } else {
        SFX(gx_bwd_loop)(H, gr, hnr, hpr, go, dhb, du, dv, dgs, 0);
    }
    if (ln_hh) {
        const int64_t G = 3 * H;
        REAL ma, mc;
        SFX(gx_ln_bwd_means)(G, dv, xh, ln_hh, &ma, &mc);
        for (int64_t j = 0; j < G; j++) dgs[j] = rs * (ln_hh[j] * dv[j] - ma - xh[j] * mc);
    }
}
CELL_ROW_VARIANTS(gx_bwd_row,
                  (int64_t H, const REAL *restrict gr, const REAL *restrict hnr,
                   const REAL *restrict hpr, const REAL *restrict go, const REAL *restrict zr,
                   REAL *restrict dhb, REAL *restrict st, REAL *restrict du, REAL *restrict dv,
                   REAL *restrict dgs, const REAL *restrict xh, REAL rs,
                   const REAL *restrict ln_hh),
                  (H, gr, hnr, hpr, go, zr, dhb, st, du, dv, dgs, xh, rs, ln_hh))

/* The layer-norm backward of one row in place (after the time loop). */
static CELL_INLINE void SFX(gx_ln_bwd_row)(int64_t n, REAL *restrict dy, const REAL *restrict xhat,
                                           REAL rs, const REAL *restrict gain) {
    REAL ma, mc;
    SFX(gx_ln_bwd_means)(n, dy, xhat, gain, &ma, &mc);
    for (int64_t j = 0; j < n; j++) dy[j] = rs * (gain[j] * dy[j] - ma - xhat[j] * mc);
}
CELL_ROW_VARIANTS(gx_ln_bwd_row,
                  (int64_t n, REAL *restrict dy, const REAL *restrict xhat, REAL rs,
                   const REAL *restrict gain),
                  (n, dy, xhat, rs, gain))

/* dst[j] += sum over the R rows of a[r*ld + j] * b[r*ld + j], j < n. */
static inline void SFX(gx_colsum_prod_add)(REAL *restrict dst, const REAL *restrict a,
                                           const REAL *restrict b, int64_t R, int64_t n,
                                           int64_t ld) {
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < n; j++) dst[j] += a[r * ld + j] * b[r * ld + j];
}

/* dst[i] = m[i] * h[i] */
static inline void SFX(gx_mul)(REAL *restrict dst, const REAL *restrict m, const REAL *restrict h,
                               int64_t count) {
    for (int64_t i = 0; i < count; i++) dst[i] = m[i] * h[i];
}

/* The rows [b0, b1) of gru_ext_forward's step loop; the fields are that loop's locals. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(gx_fwd_row_fn) row;
    int64_t H;
    int64_t G;
    int ln;
    REAL *blk; /* the block of x W_ih^T rows, or NULL: they are in the cache */
    REAL *xi;  /* LN(x W_ih^T) rows (layer_norm) */
    REAL *pre;
    REAL *xh;
    REAL *rs;
    const REAL *ln_ih;
    const REAL *ln_hh;
    const SFX(rnn_ext_params) *p;
    REAL *gates;
    REAL *hT;
    REAL *out;
    REAL *vn;
    REAL *hp;
    const REAL *zh;
    int64_t zld;
    int inf;      /* inference: the arrays but blk hold one step's rows */
    int64_t goff; /* the step's first row in blk */
} SFX(gx_fwd_rows_ctx);
static void SFX(gx_fwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(gx_fwd_rows_ctx) *c_ = ctx;
    const rnn_dims *d = c_->d;
    const int64_t *lengths = c_->lengths;
    int64_t s = c_->s;
    SFX(gx_fwd_row_fn) row = c_->row;
    int64_t H = c_->H;
    int64_t G = c_->G;
    int ln = c_->ln;
    REAL *pre = c_->pre;
    REAL *xh = c_->xh;
    REAL *rs = c_->rs;
    const REAL *ln_ih = c_->ln_ih;
    const REAL *ln_hh = c_->ln_hh;
    const SFX(rnn_ext_params) *p = c_->p;
    REAL *gates = c_->gates;
    REAL *hT = c_->hT;
    REAL *out = c_->out;
    REAL *vn = c_->vn;
    REAL *hp = c_->hp;
    const REAL *zh = c_->zh;
    int64_t zld = c_->zld;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, s, rnn_seq_len(d, lengths, b));
        if (t < 0) continue;
        int64_t r = t * d->ts + b * d->bs;
        int64_t q = c_->inf ? b : r; /* the row of the step's arrays */
        REAL *xs = !c_->blk ? (ln ? c_->xi : gates) + r * G /* in the cache: in place */
                            : c_->blk + (c_->goff + b) * G; /* at inference also LN(xs), or the gates */
        REAL *xr = ln ? (c_->inf ? xs : c_->xi + r * G) : NULL;
        REAL *gr = ln || !c_->inf ? gates + q * G : xs;
        row(H, xs, xr, pre + b * G, ln ? xh + q * G : NULL, ln ? rs + 2 * q : NULL, ln_ih, ln_hh,
            p->b_ih, p->b_hh, gr, hT + b * H, out + r * d->ldo, vn + q * H, hp + q * H,
            zh ? zh + r * zld : NULL);
    }
}

/* gru_ext_forward's step over rows [b0, b1) (rnn_run_step): the recurrent
 * product, then the rows' gates and state. */
typedef struct {
    SFX(gx_fwd_rows_ctx) rows; /* the step's rows pass */
    int split, ne;             /* a task of a split step; the unsplit step's row threads */
    const REAL *rec;           /* recurrent dropout's mask, or NULL */
    REAL *hm;                  /* rec * h_{t-1} */
    const SFX(step_w) *whh;
} SFX(gx_fwd_step_ctx);
static int SFX(gx_fwd_step)(void *ctx, int64_t b0, int64_t b1, void *ws) {
    SFX(gx_fwd_step_ctx) *k = ctx;
    const rnn_dims *d = k->rows.d;
    const int64_t H = k->rows.H, G = k->rows.G;
    const REAL *a = k->rows.hT;
    if (k->rec) {
        SFX(gx_mul)(k->hm + b0 * H, k->rec + b0 * H, k->rows.hT + b0 * H, (b1 - b0) * H);
        a = k->hm;
    }
    int st = SFX(step_mul_rows)(d, k->split, b0, b1, G, H, a, k->whh, 0, k->rows.pre, G, ws);
    if (st) return st;
    rnn_step_rows(d, k->split, k->ne, b0, b1, SFX(gx_fwd_rows), &k->rows);
    return RNN_OK;
}

int SFX(gru_ext_forward)(REAL *out, REAL *hT, REAL *cache, const REAL *x, const REAL *h0,
                         const SFX(rnn_ext_params) *p, const SFX(rnn_ext_masks) *m,
                         const rnn_ext_config *cfg, const int64_t *lengths, const rnn_dims *d,
                         REAL *work, void *gemm_ws) {
    int st = rnn_ext_dims_check(RNN_CELL_GRU, d, cfg);
    if (st) return st;
    const int inf = d->inference != 0;
    if (!out || !hT || (!cache && !inf) || !x || !p || !work || !gemm_ws) return RNN_ERR_NULL;
    if (!p->w_ih || !p->w_hh || !p->b_ih || !p->b_hh) return RNN_ERR_NULL;
    const int ln = cfg->layer_norm != 0;
    if (ln && (!p->ln_ih || !p->ln_hh)) return RNN_ERR_NULL;
    if ((st = rnn_lengths_check(d, lengths))) return st;
    const REAL *rec = m ? m->rec : NULL, *zh = m ? m->zh : NULL;
    const int64_t zld = m ? m->zh_ld : 0;
    if ((st = rnn_ext_mask_check(zh, zld, d->H, d))) return st;

    const int64_t T = d->T, B = d->B, I = d->I, H = d->H, R = T * B, G = 3 * H;
    REAL *pre = work;           /* (B, 3H) */
    REAL *hm = pre + B * G;     /* (B, H) */
    REAL *wpk = hm + B * H;     /* W_hh^T packed */
    const int blocks = rnn_proj_blocks(d, G); /* else x W_ih^T of all rows in the cache */
    const int64_t Tc = blocks ? rnn_ext_proj_steps(d, G) : 0;
    REAL *blk = wpk + rnn_ext_packed_len(d, G, H); /* (Tc*B, 3H) */
    REAL *xs = blk + Tc * B * G;                    /* (Tc*B, I) */
    REAL *wipk = xs + Tc * B * I;                   /* W_ih^T packed */
    REAL *gates, *vn, *hp, *xi, *xh, *rs;
    if (!inf) {
        gates = cache;                /* (R, 3H) */
        vn = gates + R * G;           /* (R, H) */
        hp = vn + R * H;              /* (R, H) */
        xi = ln ? hp + R * H : NULL;  /* (R, 3H), layer norm only */
        xh = ln ? xi + R * G : NULL;  /* (R, 3H), layer norm only */
        rs = ln ? xh + R * G : NULL;  /* (R, 2), layer norm only */
    } else {
        /* inference: one step's rows of the cache's arrays; xi, or the
         * gates without a norm, in blk */
        REAL *next = wipk + rnn_ext_packed_len(d, G, I); /* inference: always blocks */
        gates = ln ? next : blk;
        next += ln ? B * G : 0;
        vn = next;
        hp = vn + B * H;
        xi = ln ? blk : NULL;
        xh = ln ? hp + B * H : NULL;
        rs = ln ? xh + B * G : NULL;
    }
    const REAL *ln_ih = ln ? p->ln_ih : NULL, *ln_hh = ln ? p->ln_hh : NULL;

    /* W_ih x_t a block of steps ahead of them, W_ih packed once, or for
     * every step at once into the cache (xi with a norm, else the gates) */
    if (!blocks) {
        if ((st = SFX(input_proj)(d, G, x, p->w_ih, ln ? xi : gates, gemm_ws))) return st;
    } else if (!rnn_in_place(d, I) && (st = SFX(step_pack_ld)(d, 1, G, I, p->w_ih, I, wipk))) {
        return st;
    }
    SFX(step_w) whh;
    if ((st = SFX(step_w_make)(d, 1, G, H, p->w_hh, H, wpk, &whh))) return st;
    SFX(copy_or_zero)(hT, h0, B * H);
    const int nst = rnn_step_split(d, G, H, sizeof(REAL));
    SFX(gx_fwd_step_ctx) step = {
        .rows = {.d = d, .lengths = lengths, .row = SFX(gx_fwd_row_pick)(rnn_gemm_best_isa()),
                 .H = H, .G = G, .ln = ln, .blk = blocks ? blk : NULL, .xi = xi, .pre = pre, .xh = xh, .rs = rs,
                 .ln_ih = ln_ih, .ln_hh = ln_hh, .p = p, .gates = gates, .hT = hT, .out = out,
                 .vn = vn, .hp = hp, .zh = zh, .zld = zld, .inf = inf},
        .split = nst > 1, .ne = rnn_elem_threads(d, G), .rec = rec, .hm = hm, .whh = &whh};

    rnn_proj_block pb = {0, 0};
    for (int64_t s = 0; s < T; s++) {
        if (blocks && (st = SFX(proj_block_next)(d, lengths, s, Tc, G, x, p->w_ih, wipk, xs, blk,
                                                 &pb, gemm_ws)))
            return st;
        step.rows.s = s;
        step.rows.goff = blocks ? (s - pb.p0) * B : 0;
        if ((st = rnn_run_step(d, nst, SFX(gx_fwd_step), &step, gemm_ws))) return st;
    }
    SFX(zero_padded_rows)(out, H, d->ldo, lengths, d);
    if (inf) return RNN_OK;
    SFX(zero_padded_rows)(gates, G, G, lengths, d);
    SFX(zero_padded_rows)(vn, H, H, lengths, d);
    SFX(zero_padded_rows)(hp, H, H, lengths, d);
    if (ln) {
        SFX(zero_padded_rows)(xi, G, G, lengths, d);
        SFX(zero_padded_rows)(xh, G, G, lengths, d);
        SFX(zero_padded_rows)(rs, 2, 2, lengths, d);
    }
    return RNN_OK;
}

/* The rows [b0, b1) of gru_ext_backward's step loop; the fields are that loop's locals. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(gx_bwd_row_fn) row;
    int64_t H;
    int64_t G;
    int ln;
    const REAL *gates;
    const REAL *vn;
    const REAL *hp;
    const REAL *dout;
    const REAL *zh;
    int64_t zld;
    REAL *dh;
    REAL *dhr;
    REAL *dU;
    REAL *dV;
    REAL *dGs;
    const REAL *xh;
    const REAL *rs;
    const REAL *ln_hh;
    int64_t qoff; /* the step's first row in dU and dV (a block of steps) */
    int whole;    /* dU and dV have all R rows, in row(t, b) order */
} SFX(gx_bwd_rows_ctx);
static void SFX(gx_bwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(gx_bwd_rows_ctx) *c_ = ctx;
    const rnn_dims *d = c_->d;
    const int64_t *lengths = c_->lengths;
    int64_t s = c_->s;
    SFX(gx_bwd_row_fn) row = c_->row;
    int64_t H = c_->H;
    int64_t G = c_->G;
    int ln = c_->ln;
    const REAL *gates = c_->gates;
    const REAL *vn = c_->vn;
    const REAL *hp = c_->hp;
    const REAL *dout = c_->dout;
    const REAL *zh = c_->zh;
    int64_t zld = c_->zld;
    REAL *dh = c_->dh;
    REAL *dhr = c_->dhr;
    REAL *dU = c_->dU;
    REAL *dV = c_->dV;
    REAL *dGs = c_->dGs;
    const REAL *xh = c_->xh;
    const REAL *rs = c_->rs;
    const REAL *ln_hh = c_->ln_hh;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, s, rnn_seq_len(d, lengths, b));
        REAL *dgs = dGs + b * G;
        if (t < 0) {
            memset(dgs, 0, (size_t)G * sizeof(REAL));
            SFX(bwd_block_zero)(c_->whole, c_->qoff, b, dU, G);
            SFX(bwd_block_zero)(c_->whole, c_->qoff, b, dV, G);
            continue;
        }
        int64_t r = t * d->ts + b * d->bs, q = rnn_bwd_block_row(c_->whole, c_->qoff, b, r);
        row(H, gates + r * G, vn + r * H, hp + r * H, dout ? dout + r * d->ldo : NULL,
            zh ? zh + r * zld : NULL, dh + b * H, dhr + b * H, dU + q * G, dV + q * G, dgs,
            ln ? xh + r * G : NULL, ln ? rs[2 * r + 1] : 0, ln_hh);
    }
}

/* Rows [r0, r1) of the layer-norm backward over all R rows of dY (dU or
 * dV): lnrow(G, dY + r*G, Xh + r*G, rs[2*r + which], gain). */
typedef struct {
    SFX(gx_ln_bwd_row_fn) lnrow;
    int64_t G;
    REAL *dY;
    const REAL *Xh, *rs;
    int which;
    const REAL *gain;
} SFX(gx_ln_rows_ctx);
static void SFX(gx_ln_rows)(void *ctx, int64_t r0, int64_t r1) {
    const SFX(gx_ln_rows_ctx) *k = ctx;
    for (int64_t r = r0; r < r1; r++)
        k->lnrow(k->G, k->dY + r * k->G, k->Xh + r * k->G, k->rs[2 * r + k->which], k->gain);
}

/* gru_ext_backward's step over rows [b0, b1) (rnn_run_step): the rows' gate
 * gradients, then dL/dh_{t-1}. */
typedef struct {
    SFX(gx_bwd_rows_ctx) rows; /* the step's rows pass */
    int split, ne;             /* a task of a split step; the unsplit step's row threads */
    const REAL *rec;           /* recurrent dropout's mask, or NULL */
    const SFX(step_w) *whh;
} SFX(gx_bwd_step_ctx);
static int SFX(gx_bwd_step)(void *ctx, int64_t b0, int64_t b1, void *ws) {
    SFX(gx_bwd_step_ctx) *k = ctx;
    const rnn_dims *d = k->rows.d;
    const int64_t H = k->rows.H, G = k->rows.G;
    REAL *dh = k->rows.dh, *dhr = k->rows.dhr;
    rnn_step_rows(d, k->split, k->ne, b0, b1, SFX(gx_bwd_rows), &k->rows);
    /* dh_{t-1} = direct + m_b * (dGs_t W_hh) for running rows; ended rows pass through */
    int st = SFX(step_mul_rows)(d, k->split, b0, b1, H, G, k->rows.dGs, k->whh, 0, dhr, H, ws);
    if (st) return st;
    SFX(step_dh_add)(d, k->rows.lengths, k->rows.s, b0, b1, H, 0, H, dh, dhr, k->rec, 0);
    return RNN_OK;
}

/* What gru_ext_backward's blocks share. */
typedef struct {
    const rnn_dims *d;
    const gx_bwd_layout *L;
    const int64_t *lengths;
    const REAL *x, *hp, *xi, *xh, *rs, *rec;
    const SFX(rnn_ext_params) *p;
    const SFX(rnn_ext_grads) *g;
    REAL *dx, *work;
    void *gemm_ws;
} SFX(gx_bwd_block_ctx);

/* The weight gradients and dx of the block of steps s0 .. s0+n-1, from
 * dU and dV (row j*B + b: step s0+j, sequence b; with one whole block, the
 * R rows in row(t, b) order, whose padded rows this zeroes first). */
static int SFX(gx_bwd_block)(const SFX(gx_bwd_block_ctx) *k, int64_t s0, int64_t n) {
    const rnn_dims *d = k->d;
    const gx_bwd_layout *L = k->L;
    const int64_t *lengths = k->lengths;
    const int64_t B = d->B, I = d->I, H = d->H, G = 3 * H;
    const int ln = k->xi != NULL, whole = L->whole;
    const int64_t rows = whole ? d->T * B : n * B;
    REAL *work = k->work, *dU = work + L->dU, *dV = work + L->dV;
    void *gemm_ws = k->gemm_ws;
    const SFX(rnn_ext_params) *p = k->p;
    const SFX(rnn_ext_grads) *g = k->g;
    int64_t lx = d->ldx;
    const REAL *xa = k->x, *xi = k->xi, *xh = k->xh, *rs = k->rs;
    if (whole) { /* the rows of steps past a sequence's end were never written */
        SFX(zero_padded_rows)(dU, G, G, lengths, d);
        SFX(zero_padded_rows)(dV, G, G, lengths, d);
    } else {
        xa = SFX(steps_x_rows)(d, lengths, s0, n, k->x, work + L->xs, &lx);
        if (ln) { /* their rows are G, G and 2 apart either way */
            xi = SFX(steps_rows_contig)(d, lengths, s0, n, xi, G, work + L->xis);
            xh = SFX(steps_rows_contig)(d, lengths, s0, n, xh, G, work + L->xhs);
            rs = SFX(steps_rows_contig)(d, lengths, s0, n, rs, 2, work + L->rss);
        }
    }
    const SFX(gx_ln_bwd_row_fn) lnrow = SFX(gx_ln_bwd_row_pick)(rnn_gemm_best_isa());
    const int nr = rnn_elem_threads(d, G);
    int st;
    /* input side: biases and gains from dL/du, then dU becomes dL/d(W_ih x) */
    SFX(colsum_add)(g->b_ih, dU, rows, G, G);
    if (ln) {
        SFX(gx_colsum_prod_add)(g->ln_ih, dU, xi, rows, G, G);
        SFX(gx_ln_rows_ctx) ln_ctx = {lnrow, G, dU, xi, rs, 0, p->ln_ih};
        rnn_par_rows(d, nr, rows, SFX(gx_ln_rows), &ln_ctx);
    }
    if ((st = GEMM(1, 0, G, I, rows, 1, dU, G, xa, lx, 1, g->w_ih, I, gemm_ws))) return st;
    if ((st = SFX(block_dx)(d, lengths, s0, n, whole, rows, G, dU, p->w_ih, k->dx,
                            work + L->dxs, gemm_ws)))
        return st;
    /* recurrent side likewise; dV becomes dL/d(W_hh hm) */
    SFX(colsum_add)(g->b_hh, dV, rows, G, G);
    if (ln) {
        SFX(gx_colsum_prod_add)(g->ln_hh, dV, xh, rows, G, G);
        SFX(gx_ln_rows_ctx) ln_ctx = {lnrow, G, dV, xh, rs, 1, p->ln_hh};
        rnn_par_rows(d, nr, rows, SFX(gx_ln_rows), &ln_ctx);
    }
    const REAL *hin = k->hp;
    int64_t lhin = H;
    if (whole && k->rec) { /* hm = m_b * h_{t-1} in dU's storage, which is free now */
        REAL *hmr = dU;
        for (int64_t t = 0; t < d->T; t++)
            for (int64_t b = 0; b < B; b++) {
                int64_t r = t * d->ts + b * d->bs;
                SFX(gx_mul)(hmr + r * H, k->rec + b * H, k->hp + r * H, H);
            }
        hin = hmr;
    } else if (!whole) { /* the block's h_{t-1} (times m_b) rows */
        hin = SFX(steps_rows_by)(d, lengths, s0, n, k->hp, H, H, k->rec, work + L->hs, &lhin);
    }
    return GEMM(1, 0, G, H, rows, 1, dV, G, hin, lhin, 1, g->w_hh, H, gemm_ws);
}

int SFX(gru_ext_backward)(REAL *dx, REAL *dh0, const SFX(rnn_ext_grads) *g, const REAL *dout,
                          const REAL *dhT, const REAL *cache, const REAL *x,
                          const SFX(rnn_ext_params) *p, const SFX(rnn_ext_masks) *m,
                          const rnn_ext_config *cfg, const int64_t *lengths, const rnn_dims *d,
                          REAL *work, void *gemm_ws) {
    int st = rnn_ext_dims_check(RNN_CELL_GRU, d, cfg);
    if (st) return st;
    if (d->inference) return RNN_ERR_SIZE; /* an inference forward keeps nothing */
    if (!dx || !dh0 || !g || !cache || !x || !p || !work || !gemm_ws) return RNN_ERR_NULL;
    if (!g->w_ih || !g->w_hh || !g->b_ih || !g->b_hh || !p->w_ih || !p->w_hh) return RNN_ERR_NULL;
    const int ln = cfg->layer_norm != 0;
    if (ln && (!g->ln_ih || !g->ln_hh || !p->ln_ih || !p->ln_hh)) return RNN_ERR_NULL;
    if ((st = rnn_lengths_check(d, lengths))) return st;
    const REAL *rec = m ? m->rec : NULL, *zh = m ? m->zh : NULL;
    const int64_t zld = m ? m->zh_ld : 0;
    if ((st = rnn_ext_mask_check(zh, zld, d->H, d))) return st;

    const int64_t T = d->T, B = d->B, H = d->H, R = T * B, G = 3 * H;
    gx_bwd_layout L;
    if ((st = gx_bwd_layout_make(d, cfg, &L))) return st;
    const REAL *gates = cache, *vn = gates + R * G, *hp = vn + R * H;
    /* layer norm only */
    const REAL *xi = ln ? hp + R * H : NULL, *xh = ln ? xi + R * G : NULL;
    const REAL *rs = ln ? xh + R * G : NULL;
    REAL *dU = work + L.dU, *dV = work + L.dV, *dh = work + L.dh, *dhr = work + L.dhr;
    REAL *dGs = work + L.dGs, *wpk = work + L.wpk;
    const REAL *ln_hh = ln ? p->ln_hh : NULL;

    SFX(copy_or_zero)(dh, dhT, B * H);
    SFX(step_w) whh;
    if ((st = SFX(step_w_make)(d, 0, H, G, p->w_hh, H, wpk, &whh))) return st;
    const int nst = rnn_step_split(d, G, H, sizeof(REAL));
    SFX(gx_bwd_step_ctx) step = {
        .rows = {.d = d, .lengths = lengths, .row = SFX(gx_bwd_row_pick)(rnn_gemm_best_isa()),
                 .H = H, .G = G, .ln = ln, .gates = gates, .vn = vn, .hp = hp, .dout = dout,
                 .zh = zh, .zld = zld, .dh = dh, .dhr = dhr, .dU = dU, .dV = dV, .dGs = dGs,
                 .xh = xh, .rs = rs, .ln_hh = ln_hh, .whole = L.whole},
        .split = nst > 1, .ne = rnn_elem_threads(d, G), .rec = rec, .whh = &whh};
    SFX(gx_bwd_block_ctx) blk = {.d = d, .L = &L, .lengths = lengths, .x = x, .hp = hp,
                                 .xi = xi, .xh = xh, .rs = rs, .rec = rec, .p = p, .g = g,
                                 .dx = dx, .work = work, .gemm_ws = gemm_ws};
    /* the steps in blocks of Tb (the last block, run first, may be shorter):
     * a block's weight gradients once its steps are done */
    for (int64_t s = T - 1; s >= 0; s--) {
        int64_t s0, n;
        step.rows.qoff = rnn_bwd_block_of(d, L.Tb, s, &s0, &n);
        step.rows.s = s;
        if ((st = rnn_run_step(d, nst, SFX(gx_bwd_step), &step, gemm_ws))) return st;
        if (s == s0 && (st = SFX(gx_bwd_block)(&blk, s0, n))) return st;
    }
    SFX(add_into)(dh0, dh, B * H);
    return RNN_OK;
}

#endif
