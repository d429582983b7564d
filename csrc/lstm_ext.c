/*
 * lstm_ext.c: the extended LSTM of cells_ext.h (peepholes, projection,
 * layer normalisation, zoneout, recurrent dropout, in any combination),
 * forward and backward through time, float32 and float64 from one template.
 *
 *   a   = ln_ih*LN(W_ih x_t) + b_ih + ln_hh*LN(W_hh (m_b*h_{t-1})) + b_hh
 *   i   = sig(a_i + p_i*c_{t-1})   f = sig(a_f + p_f*c_{t-1})   g = tanh(a_g)
 *   c~  = f*c_{t-1} + i*g          o = sig(a_o + p_o*c~)
 *   u   = o * tanh(ln_c[0]*LN(c~) + ln_c[1])       h~ = W_hr u (or u)
 *   c_t = zc*c_{t-1} + (1-zc)*c~   h_t = zh*h_{t-1} + (1-zh)*h~   out_t = h_t
 *
 * H is d->H, Hs the size of h (P with a projection, else H), G = 4H and
 * R = T*B. Every row(t, b) below is t*ts + b*bs, as in cells_ext.h.
 *
 * Cache (R rows each; rows of steps past a sequence's length are zero):
 *   gates (R, 4H)  sigmoid/tanh of i, f, g, o
 *   cs    (R, H)   c~ (the new cell value before zoneout of c)
 *   hp    (R, Hs)  m_b*h_{t-1}, the masked state W_hh multiplies
 *   cp    (R, H)   c_{t-1}
 *   u     (R, H)   o*tanh(...), the input of W_hr          (projection only)
 *   xn    (R, 4H)  LN(W_ih x_t), normalised               (layer_norm only)
 *   hn    (R, 4H)  LN(W_hh (m_b*h_{t-1})), normalised       (layer_norm only)
 *   cn    (R, H)   LN(c~), normalised                      (layer_norm only)
 *   rs    (R, 3)   1/sqrt(var + eps) of the three norms    (layer_norm only)
 * With a zero config and no masks this is lstm.c's cache, array for array
 * (gates | cs | hp | cp), with the same values.
 *
 * Forward scratch: blk (Tc*B, 4H) W_ih x of a block of Tc steps
 *   (rnn_ext_proj_steps), the activated gates too at inference | bias (4H)
 *   b_ih + b_hh | pre (B, 4H) recurrent product | hm (B, Hs) m_b*h_{t-1} |
 *   zero (H) | y (B, H) ln_c[0]*LN(c~) + ln_c[1] (layer_norm) | ub (B, H),
 *   hpr (B, P) (projection) | W_hh^T packed (whole, or gate by gate where
 *   steps split by units, rnn_unit_split) | hx (B, Hs) h's second buffer
 *   there | W_hr^T packed (projection) |
 *   xs (Tc*B, I) the block's rows of x, when they are not in place |
 *   W_ih^T packed
 * The block keeps the input projection in cache between the product and
 * its steps: computed for all R rows at once into the cache, it went to
 * memory and back (measured, H 256, B 64, T 100, I 64: the training
 * forward 44.7 ms against 33.8 at inference; the blocks give the same bits).
 * Where W_ih is too large for blocks to pay (rnn_proj_blocks), the training
 * forward computes it for all rows into the cache's gates (Tc = 0: no blk,
 * xs or packed W_ih).
 * Backward scratch: dXg (Rb, 4H) dL/d(W_ih x_t) (also dL/da without
 *   layer norm) of a block of Tb steps (rnn_bwd_block_steps) | dHh (Rb, 4H)
 *   dL/d(W_hh hm) (layer_norm) | dHt (Rb, P) dL/dh~ (projection) | the
 *   block's rows of x (Rb, I), hm (Rb, Hs), u (Rb, H) (projection) gathered
 *   where they are not in place, and its dx rows (Rb, I) | ... With Tb < T
 *   a block's rows are Rb = Tb*B in step order (row j*B + b: the block's
 *   step j, sequence b); with one block of all T steps (whole) they are the
 *   R rows in the row(t, b) order of x, and the products read x, hm and u
 *   where they are (no gathered rows) and add into dx. | dh (B, Hs) | dc (B, H) | dhr (B, Hs) | dGs (B, 4H) this
 *   step's dHh rows | dGs2 (B, 4H) the next step's, for steps split by units | du (B, H) dL/du | dt (B, P) dL/dh~ (projection) |
 *   da (B, 4H) (layer_norm) | dy (B, H) | zero (H) | per-sequence sums of
 *   the small gradients: peep (B, 3H), and with layer_norm bias (B, 4H),
 *   ln_ih (B, 4H), ln_hh (B, 4H), ln_c (B, 2H) | W_hh packed |
 *   W_hr packed (projection)
 * The small gradients are summed per sequence and then over sequences in a
 * fixed order, so that the rows of a step may run on any number of threads
 * and give the same bits.
 *
 * Readings of the contract (cells_ext.h) this file makes:
 *  - Zoneout masks: zh_ld and zc_ld must be 0 or at least the row (Hs, H);
 *    anything else (negative, or rows that would overlap) is RNN_ERR_LD.
 *  - Masks may be NULL as a whole (m == NULL means no masks).
 *  - h0, c0, dout, dhT, dcT may be NULL (zeros), as in cells_ext.h; backward
 *    needs neither b_ih nor b_hh from p, so they may be NULL there.
 *  - The kernels accept any cfg that rnn_ext_dims_check(RNN_CELL_LSTM, ...)
 *    accepts: cfg->peephole decides the peepholes; cfg->relu must be 0.
 */
#ifndef REAL
#include <string.h>

#include "cells_ext.h"
#include "gemm.h"

/* Offsets (elements) of every cache and scratch array; an array whose
 * option is off takes no room. */
typedef struct {
    int64_t off;
    int bad;
} lx_alloc;

static int64_t lx_take(lx_alloc *a, int64_t n) {
    if (n < 0 || a->bad || a->off > INT64_MAX - n) {
        a->bad = 1;
        return 0;
    }
    int64_t o = a->off;
    a->off += n;
    return o;
}

typedef struct {
    int64_t H, Hs, P, G, R, B, Tc;
    int peep, ln, proj, blocks; /* blocks: rnn_proj_blocks */
    /* cache */
    int64_t gates, cs, cp, hp, u, xn, hn, cn, rs, cache_len;
    /* forward scratch */
    int64_t f_blk, f_bias, f_pre, f_hm, f_zero, f_y, f_ub, f_hpr, f_wpk, f_wrpk, f_xs, f_wipk, fwork_len;
    int64_t f_hx;   /* h's second buffer (B, Hs), for steps split by units */
    int64_t gpk;    /* elements of one gate's packed W_hh^T (steps split by units) */
    /* backward scratch */
    int64_t Tb;  /* steps per block of the backward's weight gradients */
    int whole;   /* Tb == T: one block, its rows in row(t, b) order */
    int64_t b_dxg, b_dhh, b_dht, b_xs, b_hps, b_us, b_dxs, b_dh, b_dc, b_dhr, b_dgs, b_du, b_dt, b_da, b_dy, b_zero,
        b_accp, b_accb, b_accli, b_acclh, b_acclc, b_wpk, b_wrpk, bwork_len;
    int64_t b_dgs2; /* dGs's second buffer (B, 4H), for steps split by units */
} lx_layout;

/* RNN_OK, or the status of the dims check, or RNN_ERR_SIZE on overflow. */
static int lx_layout_make(const rnn_dims *d, const rnn_ext_config *cfg, lx_layout *L) {
    int st = rnn_ext_dims_check(RNN_CELL_LSTM, d, cfg);
    if (st) return st;
    const int64_t H = d->H, Hs = rnn_ext_state_size(d, cfg), P = cfg->P > 0 ? cfg->P : 0;
    const int64_t G = 4 * H, B = d->B, R = d->T * d->B; /* fit: rnn_dims_check */
    *L = (lx_layout){.H = H, .Hs = Hs, .P = P, .G = G, .R = R, .B = B,
                     .peep = cfg->peephole != 0, .ln = cfg->layer_norm != 0, .proj = P > 0};
    const int ln = L->ln, proj = L->proj, inf = d->inference != 0;
    /* the per-row arrays: the cache (R rows), or at inference one step's B
     * rows at the start of the forward scratch. Both forwards compute the
     * input projection a block of Tc steps ahead of them into the forward
     * scratch (blk), where it stays in cache until its steps read it; at
     * inference the activated gates go back there, in training to the
     * cache's gates. */
    lx_alloc c = {0, 0}, f = {0, 0};
    lx_alloc *a = inf ? &f : &c;
    const int64_t Rc = inf ? B : R;
    L->blocks = rnn_proj_blocks(d, G);
    L->Tc = L->blocks ? rnn_ext_proj_steps(d, G) : 0;
    L->f_blk = lx_take(&f, rnn_mul(rnn_mul(L->Tc, B), G));
    L->gates = inf ? L->f_blk : lx_take(a, rnn_mul(R, G));
    L->cs = lx_take(a, rnn_mul(Rc, H));
    L->hp = lx_take(a, rnn_mul(Rc, Hs));
    L->cp = lx_take(a, rnn_mul(Rc, H));
    L->u = lx_take(a, proj ? rnn_mul(Rc, H) : 0);
    L->xn = lx_take(a, ln ? rnn_mul(Rc, G) : 0);
    L->hn = lx_take(a, ln ? rnn_mul(Rc, G) : 0);
    L->cn = lx_take(a, ln ? rnn_mul(Rc, H) : 0);
    L->rs = lx_take(a, ln ? rnn_mul(Rc, 3) : 0);
    L->cache_len = c.off;

    L->f_bias = lx_take(&f, G);
    L->f_pre = lx_take(&f, rnn_mul(B, G));
    L->f_hm = lx_take(&f, rnn_mul(B, Hs));
    L->f_zero = lx_take(&f, H);
    L->f_y = lx_take(&f, ln ? rnn_mul(B, H) : 0);
    L->f_ub = lx_take(&f, proj ? rnn_mul(B, H) : 0);
    L->f_hpr = lx_take(&f, proj ? rnn_mul(B, P) : 0);
    /* W_hh^T packed whole, or gate by gate for steps split by units */
    const int64_t wpk = rnn_ext_packed_len(d, G, Hs);
    L->gpk = rnn_ext_packed_len(d, H, Hs);
    const int64_t g4 = rnn_mul(4, L->gpk);
    L->f_wpk = lx_take(&f, wpk < 0 || g4 < 0 ? -1 : wpk > g4 ? wpk : g4);
    L->f_hx = lx_take(&f, rnn_mul(B, Hs));
    L->f_wrpk = lx_take(&f, proj ? rnn_ext_packed_len(d, P, H) : 0);
    L->f_xs = lx_take(&f, rnn_mul(rnn_mul(L->Tc, B), d->I));
    L->f_wipk = lx_take(&f, L->blocks ? rnn_ext_packed_len(d, G, d->I) : 0);
    L->fwork_len = f.off;

    lx_alloc w = {0, 0};
    L->Tb = rnn_bwd_block_steps(d, G);
    L->whole = L->Tb >= d->T;
    const int64_t Rb = L->whole ? R : rnn_mul(L->Tb, B); /* rows of a block */
    const int64_t Rg = L->whole ? 0 : Rb;                /* rows gathered */
    L->b_dxg = lx_take(&w, rnn_mul(Rb, G));
    L->b_dhh = lx_take(&w, ln ? rnn_mul(Rb, G) : 0);
    L->b_dht = lx_take(&w, proj ? rnn_mul(Rb, P) : 0);
    L->b_xs = lx_take(&w, rnn_mul(Rg, d->I));
    L->b_hps = lx_take(&w, rnn_mul(Rg, Hs));
    L->b_us = lx_take(&w, proj ? rnn_mul(Rg, H) : 0);
    L->b_dxs = lx_take(&w, rnn_mul(Rg, d->I));
    L->b_dh = lx_take(&w, rnn_mul(B, Hs));
    L->b_dc = lx_take(&w, rnn_mul(B, H));
    L->b_dhr = lx_take(&w, rnn_mul(B, Hs));
    L->b_dgs = lx_take(&w, rnn_mul(B, G));
    L->b_dgs2 = lx_take(&w, rnn_mul(B, G));
    L->b_du = lx_take(&w, rnn_mul(B, H));
    L->b_dt = lx_take(&w, proj ? rnn_mul(B, P) : 0);
    L->b_da = lx_take(&w, ln ? rnn_mul(B, G) : 0);
    L->b_dy = lx_take(&w, rnn_mul(B, H));
    L->b_zero = lx_take(&w, H);
    L->b_accp = lx_take(&w, L->peep ? rnn_mul(B, 3 * H) : 0);
    L->b_accb = lx_take(&w, ln ? rnn_mul(B, G) : 0);
    L->b_accli = lx_take(&w, ln ? rnn_mul(B, G) : 0);
    L->b_acclh = lx_take(&w, ln ? rnn_mul(B, G) : 0);
    L->b_acclc = lx_take(&w, ln ? rnn_mul(B, 2 * H) : 0);
    L->b_wpk = lx_take(&w, rnn_ext_packed_len(d, Hs, G));
    L->b_wrpk = lx_take(&w, proj ? rnn_ext_packed_len(d, H, P) : 0);
    L->bwork_len = w.off;
    return c.bad || f.bad || w.bad ? RNN_ERR_SIZE : RNN_OK;
}

int64_t rnn_ext_cache_len_lstm(const rnn_dims *d, const rnn_ext_config *cfg) {
    lx_layout L;
    return lx_layout_make(d, cfg, &L) ? -1 : L.cache_len;
}

int64_t rnn_ext_forward_work_len_lstm(const rnn_dims *d, const rnn_ext_config *cfg) {
    lx_layout L;
    return lx_layout_make(d, cfg, &L) ? -1 : L.fwork_len;
}

int64_t rnn_ext_backward_work_len_lstm(const rnn_dims *d, const rnn_ext_config *cfg) {
    lx_layout L;
    return lx_layout_make(d, cfg, &L) ? -1 : L.bwork_len;
}

/* float32 rows are compiled per instruction set (cell_common.h); float64
 * rows call libm's exp and tanh, which no width vectorises, so one copy. */
#define DTYPE_TEMPLATE "lstm_ext.c"
#include "dtype_template.h"

#else /* template body, instantiated once per dtype */
#include "cell_common.h"

#undef LX_ROW_VARIANTS
#undef LX_ROW_VARIANTS2
#undef LX_V512
#if DTYPE_F32
#define LX_ROW_VARIANTS CELL_ROW_VARIANTS
#define LX_ROW_VARIANTS2 CELL_ROW_VARIANTS2
#define LX_V512 RNN_V512 /* the float32 AVX-512 row uses lx_fwd_gates_v512 / lx_fwd_out_v512 */
#else
#define LX_ROW_VARIANTS(fn, PARAMS, ARGS)                                                   \
    static void SFX(fn##_gen) PARAMS { SFX(fn) ARGS; }                                     \
    typedef void(*SFX(fn##_fn)) PARAMS;                                                    \
    static SFX(fn##_fn) SFX(fn##_pick)(int isa) { (void)isa; return SFX(fn##_gen); }
#define LX_ROW_VARIANTS2(fn, PARAMS, ARGS, ARGS512) LX_ROW_VARIANTS(fn, PARAMS, ARGS)
#define LX_V512 0
#endif

#include "layer_norm.h"

/* ---- forward pieces ---- */

/* gr = xr + pr + bias (G values): the gate pre-activations without norms
 * (xr, W_ih x_t, may be gr itself) */
static CELL_INLINE void SFX(lx_fwd_sum)(int64_t G, REAL *gr, const REAL *xr,
                                        const REAL *restrict pr, const REAL *restrict bias) {
    for (int64_t j = 0; j < G; j++) gr[j] = xr[j] + pr[j] + bias[j];
}

/* gr = ln_ih*LN(xr) + b_ih + ln_hh*LN(pr) + b_hh, saving both normalised
 * rows and their 1/sqrt(var + eps) (xr may be gr itself) */
static CELL_INLINE void SFX(lx_fwd_ln_in)(int64_t G, REAL *gr, const REAL *xr,
                                          const REAL *restrict pr,
                                          const REAL *restrict gih, const REAL *restrict bih,
                                          const REAL *restrict ghh, const REAL *restrict bhh,
                                          REAL *restrict xn, REAL *restrict hn,
                                          REAL *restrict rs) {
    REAL mx, rx, mh, rh;
    SFX(ln_stats)(xr, G, &mx, &rx);
    SFX(ln_stats)(pr, G, &mh, &rh);
    for (int64_t j = 0; j < G; j++) {
        REAL a = (xr[j] - mx) * rx, b = (pr[j] - mh) * rh;
        xn[j] = a;
        hn[j] = b;
        gr[j] = gih[j] * a + bih[j] + ghh[j] * b + bhh[j];
    }
    rs[0] = rx;
    rs[1] = rh;
}

/* Gates of n units from the pre-activations in gr (overwritten with the
 * activated gates; gate q of unit j at gr[q*ld + j]); c~ into csr, c_{t-1}
 * into cpr, and the carried c (cb) advances through zoneout (a zero row
 * when there is none). */
static CELL_INLINE void SFX(lx_fwd_gates)(int64_t n, int64_t ld, REAL *restrict gr,
                                          const REAL *restrict pi, const REAL *restrict pf,
                                          const REAL *restrict po, const REAL *restrict zcr,
                                          REAL *restrict cb, REAL *restrict csr,
                                          REAL *restrict cpr, const int peep) {
    for (int64_t j = 0; j < n; j++) {
        REAL c_prev = cb[j];
        cpr[j] = c_prev;
        REAL ai = gr[j], af = gr[ld + j], ag = gr[2 * ld + j], ao = gr[3 * ld + j];
        if (peep) {
            ai += pi[j] * c_prev;
            af += pf[j] * c_prev;
        }
        REAL ig = SFX(rnn_sigmoid)(ai), fg = SFX(rnn_sigmoid)(af), gg = SFX(rnn_tanhv)(ag);
        REAL c = fg * c_prev + ig * gg;
        if (peep) ao += po[j] * c;
        REAL og = SFX(rnn_sigmoid)(ao);
        gr[j] = ig; gr[ld + j] = fg; gr[2 * ld + j] = gg; gr[3 * ld + j] = og;
        csr[j] = c;
        cb[j] = zcr[j] * c_prev + ((REAL)1 - zcr[j]) * c;
    }
}

#if LX_V512
/* lx_fwd_gates and lx_fwd_out (float32) by hand with AVX-512: the compiler
 * vectorises the scalar loops with the activations' clamps turned into mask
 * arithmetic around each exponential. The same operations in the same order
 * (rnn_v512_*: the scalar activations' bits), so the same bits. */
#define LX_V512_FN __attribute__((target("avx512f,avx512vl,avx512dq,fma"))) static void
/* With pr (not NULL) it first adds pr + bias to xr, W_ih x_t, as
 * lx_fwd_sum would (one pass over the gates instead of two), else it reads
 * the pre-activations from xr; the gates go to gr (which may be xr). With
 * keep == 0 (inference) it stores only the output gate, which lx_fwd_out
 * reads. */
LX_V512_FN lx_fwd_gates_v512(int64_t n, int64_t ld, float *gr, const float *xr,
                             const float *restrict pr, const float *restrict bias,
                             const float *restrict pi, const float *restrict pf,
                             const float *restrict po, const float *restrict zcr,
                             float *restrict cb, float *restrict csr, float *restrict cpr,
                             const int peep, const int keep) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = rnn_v512_mask(n, j);
        __m512 c_prev = _mm512_maskz_loadu_ps(m, cb + j);
        _mm512_mask_storeu_ps(cpr + j, m, c_prev);
        __m512 a[4];
        for (int q = 0; q < 4; q++) {
            a[q] = _mm512_maskz_loadu_ps(m, xr + q * ld + j);
            if (pr)
                a[q] = _mm512_add_ps(_mm512_add_ps(a[q], _mm512_maskz_loadu_ps(m, pr + q * ld + j)),
                                     _mm512_maskz_loadu_ps(m, bias + q * ld + j));
        }
        __m512 ai = a[0], af = a[1], ag = a[2], ao = a[3];
        if (peep) {
            ai = _mm512_add_ps(ai, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, pi + j), c_prev));
            af = _mm512_add_ps(af, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, pf + j), c_prev));
        }
        __m512 ig = rnn_v512_sigmoid(ai), fg = rnn_v512_sigmoid(af), gg = rnn_v512_tanh(ag);
        __m512 c = _mm512_add_ps(_mm512_mul_ps(fg, c_prev), _mm512_mul_ps(ig, gg));
        if (peep) ao = _mm512_add_ps(ao, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, po + j), c));
        __m512 og = rnn_v512_sigmoid(ao);
        if (keep) {
            _mm512_mask_storeu_ps(gr + j, m, ig);
            _mm512_mask_storeu_ps(gr + ld + j, m, fg);
            _mm512_mask_storeu_ps(gr + 2 * ld + j, m, gg);
        }
        _mm512_mask_storeu_ps(gr + 3 * ld + j, m, og);
        _mm512_mask_storeu_ps(csr + j, m, c);
        __m512 z = _mm512_maskz_loadu_ps(m, zcr + j);
        _mm512_mask_storeu_ps(cb + j, m, _mm512_add_ps(_mm512_mul_ps(z, c_prev),
                                                       _mm512_mul_ps(_mm512_sub_ps(one, z), c)));
    }
}

LX_V512_FN lx_fwd_out_v512(int64_t n, const float *restrict y, const float *restrict og,
                           const float *restrict zhr, const float *hprev, float *hb,
                           float *restrict o, float *restrict ub, float *restrict ur,
                           const int proj) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = rnn_v512_mask(n, j);
        __m512 u = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, og + j),
                                 rnn_v512_tanh(_mm512_maskz_loadu_ps(m, y + j)));
        if (proj) {
            _mm512_mask_storeu_ps(ub + j, m, u);
            _mm512_mask_storeu_ps(ur + j, m, u);
        } else {
            __m512 z = _mm512_maskz_loadu_ps(m, zhr + j);
            __m512 h = _mm512_add_ps(_mm512_mul_ps(z, _mm512_maskz_loadu_ps(m, hprev + j)),
                                     _mm512_mul_ps(_mm512_sub_ps(one, z), u));
            _mm512_mask_storeu_ps(hb + j, m, h);
            _mm512_mask_storeu_ps(o + j, m, h);
        }
    }
}
#endif

/* cn = LN(c~), its 1/sqrt(var + eps), and y = g0*cn + g1 */
static CELL_INLINE void SFX(lx_fwd_ln_c)(int64_t H, const REAL *restrict csr,
                                         const REAL *restrict g0, const REAL *restrict g1,
                                         REAL *restrict cnr, REAL *restrict yr, REAL *restrict rs) {
    REAL m, r;
    SFX(ln_stats)(csr, H, &m, &r);
    for (int64_t j = 0; j < H; j++) {
        REAL cn = (csr[j] - m) * r;
        cnr[j] = cn;
        yr[j] = g0[j] * cn + g1[j];
    }
    *rs = r;
}

/* u = o*tanh(y) for n units; then u into ub and ur (proj), or h_t
 * (through zoneout, from h_{t-1} in hprev, which may be hb itself) into hb
 * and the output row. */
static CELL_INLINE void SFX(lx_fwd_out)(int64_t n, const REAL *restrict y,
                                        const REAL *restrict og, const REAL *restrict zhr,
                                        const REAL *hprev, REAL *hb, REAL *restrict o,
                                        REAL *restrict ub, REAL *restrict ur, const int proj) {
    for (int64_t j = 0; j < n; j++) {
        REAL u = og[j] * SFX(rnn_tanhv)(y[j]);
        if (proj) {
            ub[j] = u;
            ur[j] = u;
        } else {
            REAL h = zhr[j] * hprev[j] + ((REAL)1 - zhr[j]) * u;
            hb[j] = h;
            o[j] = h;
        }
    }
}

/* After the projection: h_t from h~ (P values), through zoneout */
static void SFX(lx_fwd_proj_out)(int64_t P, const REAL *restrict ht, const REAL *restrict zhr,
                                 REAL *restrict hb, REAL *restrict o) {
    for (int64_t j = 0; j < P; j++) {
        REAL h = zhr[j] * hb[j] + ((REAL)1 - zhr[j]) * ht[j];
        hb[j] = h;
        o[j] = h;
    }
}

/* What one forward call shares with its rows. */
typedef struct {
    int64_t H, Hs, P, G, ldo, zh_ld, zc_ld;
    int peep, ln, proj;
    int inf;      /* the per-row arrays hold one step's rows, indexed by b (inference) */
    int blocks;   /* W_ih x rows in blk (rnn_proj_blocks), else in the cache's gates */
    int64_t goff; /* the step's first row in the block of W_ih x rows */
    const REAL *bias, *b_ih, *b_hh, *ln_ih, *ln_hh, *g0, *g1, *pi, *pf, *po, *zh, *zc;
    const REAL *pre, *A, *hpr;
    const REAL *hsrc; /* h_{t-1} (B, Hs), zoneout's; hT itself unless steps go by units */
    REAL *blk, *gates, *cs, *cp, *hp, *U, *XN, *HN, *CN, *RS, *hT, *cT, *ub, *Y, *out;
} SFX(lx_fctx);

/* Units [u0, u1) of one row of a forward step, up to h_t (or u before the
 * projection): r is the row of x and out, q the row of the per-row arrays
 * (r, or b at inference, where nothing is kept for backward). With layer
 * norm or a projection, whose sums span the row, only the whole row
 * (u0 = 0, u1 = H). The units' results do not depend on the others. */
static CELL_INLINE void SFX(lx_fwd_row)(const SFX(lx_fctx) *c, int64_t b, int64_t r, int64_t u0,
                                        int64_t u1, const int v512) {
    const int64_t H = c->H, Hs = c->Hs, G = c->G, q = c->inf ? b : r, n = u1 - u0;
    REAL *xr = c->blocks ? c->blk + (c->goff + b) * G : c->gates + r * G; /* W_ih x_t */
    REAL *gr = c->inf ? xr : c->gates + r * G, *cb = c->cT + b * H + u0;
    REAL *hb = c->hT + b * Hs + u0;
    REAL *csr = c->cs + q * H + u0, *cpr = c->cp + q * H + u0, *o = c->out + r * c->ldo + u0;
    const REAL *pr = c->pre + b * G, *hprev = c->hsrc + b * Hs + u0;
    if (!c->inf) /* the whole row with a projection (Hs = P) */
        memcpy(c->hp + q * Hs + u0, c->A + b * Hs + u0,
               (size_t)(c->proj ? Hs : n) * sizeof(REAL));
    const REAL *zhr = c->zh + r * c->zh_ld + u0, *zcr = c->zc + r * c->zc_ld + u0;
    const REAL *pi = c->peep ? c->pi + u0 : NULL, *pf = c->peep ? c->pf + u0 : NULL;
    const REAL *po = c->peep ? c->po + u0 : NULL;
    if (c->ln) {
        SFX(lx_fwd_ln_in)(G, gr, xr, pr, c->ln_ih, c->b_ih, c->ln_hh, c->b_hh, c->XN + q * G,
                          c->HN + q * G, c->RS + q * 3);
    } else if (!(LX_V512 && v512)) {
        for (int g = 0; g < 4; g++)
            SFX(lx_fwd_sum)(n, gr + g * H + u0, xr + g * H + u0, pr + g * H + u0,
                            c->bias + g * H + u0);
    }
    gr += u0;
#if LX_V512
    if (v512)
        lx_fwd_gates_v512(n, H, gr, c->ln ? gr : xr + u0, c->ln ? NULL : pr + u0, c->bias + u0, pi,
                          pf, po, zcr, cb, csr, cpr, c->peep, !c->inf);
    else
#else
    (void)v512;
#endif
    if (c->peep) SFX(lx_fwd_gates)(n, H, gr, pi, pf, po, zcr, cb, csr, cpr, 1);
    else SFX(lx_fwd_gates)(n, H, gr, pi, pf, po, zcr, cb, csr, cpr, 0);
    const REAL *og = gr + 3 * H;
    REAL *ub = c->proj ? c->ub + b * H : NULL, *ur = c->proj ? c->U + q * H : NULL;
    const REAL *y = csr;
    if (c->ln) {
        REAL *yr = c->Y + b * H;
        SFX(lx_fwd_ln_c)(H, csr, c->g0, c->g1, c->CN + q * H, yr, c->RS + q * 3 + 2);
        y = yr;
    }
#if LX_V512
    if (v512) lx_fwd_out_v512(n, y, og, zhr, hprev, hb, o, ub, ur, c->proj);
    else
#endif
    if (c->proj) SFX(lx_fwd_out)(n, y, og, zhr, hprev, hb, o, ub, ur, 1);
    else SFX(lx_fwd_out)(n, y, og, zhr, hprev, hb, o, ub, ur, 0);
}
LX_ROW_VARIANTS2(lx_fwd_row,
                 (const SFX(lx_fctx) *c, int64_t b, int64_t r, int64_t u0, int64_t u1),
                 (c, b, r, u0, u1, 0), (c, b, r, u0, u1, 1))

/* ---- backward pieces ---- */

/* dL/dh_t = dh + dout; dL/dh~ = (1-zh) dL/dh_t into dt and the direct
 * part zh dL/dh_t of dL/dh_{t-1} into dhb. */
static void SFX(lx_bwd_h)(int64_t n, const REAL *restrict go, const REAL *restrict zhr,
                          REAL *restrict dhb, REAL *restrict dt) {
    for (int64_t j = 0; j < n; j++) {
        REAL gh = dhb[j] + go[j];
        dt[j] = ((REAL)1 - zhr[j]) * gh;
        dhb[j] = zhr[j] * gh;
    }
}

/* From dL/du: dL/da_o into dao and dL/dy (lnc: dL/dcn, with the ln_c sums
 * into ag0, ag1) into dy. */
static CELL_INLINE void SFX(lx_bwd_out)(int64_t H, const REAL *restrict du,
                                        const REAL *restrict og, const REAL *restrict ysrc,
                                        const REAL *restrict g0, const REAL *restrict g1,
                                        REAL *restrict dao, REAL *restrict dy,
                                        REAL *restrict ag0, REAL *restrict ag1, const int lnc) {
    for (int64_t j = 0; j < H; j++) {
        REAL y = lnc ? g0[j] * ysrc[j] + g1[j] : ysrc[j];
        REAL ty = SFX(rnn_tanhv)(y), o = og[j];
        dao[j] = du[j] * ty * o * ((REAL)1 - o);
        REAL dyj = du[j] * o * ((REAL)1 - ty * ty);
        if (lnc) {
            ag0[j] += dyj * ysrc[j];
            ag1[j] += dyj;
            dy[j] = dyj * g0[j];
        } else {
            dy[j] = dyj;
        }
    }
}

/* The layer norm's backward in place: dv = rs (dv - mean(dv) - vn mean(dv vn)) */
static CELL_INLINE void SFX(lx_bwd_ln)(int64_t n, REAL *restrict dv, const REAL *restrict vn,
                                       REAL rs) {
    REAL m1 = SFX(ln_sum)(dv, n) / (REAL)n, m2 = SFX(ln_dot)(dv, vn, n) / (REAL)n;
    for (int64_t j = 0; j < n; j++) dv[j] = rs * (dv[j] - m1 - vn[j] * m2);
}

/* From dL/dc~ (dy, the part through u) and the carried dL/dc_t (dcb): the
 * gate pre-activation gradients of n units into da (its o block is already
 * there) and dL/dc_{t-1} into dcb; the peephole sums into ap. Gate q of
 * unit j is at gr, da and ap [q*ld + j]. */
static CELL_INLINE void SFX(lx_bwd_gates)(int64_t n, int64_t ld, const REAL *restrict gr,
                                          const REAL *restrict csr, const REAL *restrict cpr,
                                          const REAL *restrict dy, const REAL *restrict zcr,
                                          const REAL *restrict pi, const REAL *restrict pf,
                                          const REAL *restrict po, REAL *restrict dcb,
                                          REAL *restrict da, REAL *restrict ap, const int peep) {
    for (int64_t j = 0; j < n; j++) {
        REAL ig = gr[j], fg = gr[ld + j], gg = gr[2 * ld + j];
        REAL c = csr[j], c_prev = cpr[j], dc_in = dcb[j], dao = da[3 * ld + j];
        REAL gc = ((REAL)1 - zcr[j]) * dc_in + dy[j];
        if (peep) gc += dao * po[j];
        REAL dai = gc * gg * ig * ((REAL)1 - ig);
        REAL daf = gc * c_prev * fg * ((REAL)1 - fg);
        REAL dag = gc * ig * ((REAL)1 - gg * gg);
        REAL dc_prev = gc * fg + zcr[j] * dc_in;
        if (peep) {
            dc_prev += dai * pi[j] + daf * pf[j];
            ap[j] += dai * c_prev;
            ap[ld + j] += daf * c_prev;
            ap[2 * ld + j] += dao * c;
        }
        da[j] = dai;
        da[ld + j] = daf;
        da[2 * ld + j] = dag;
        dcb[j] = dc_prev;
    }
}

/* Through the two input norms: from da (G), dL/d(W_ih x) into dxg and
 * dL/d(W_hh hm) into dhh; the bias and gain sums of this sequence. */
static CELL_INLINE void SFX(lx_bwd_ln_in)(int64_t G, const REAL *restrict da,
                                          const REAL *restrict xn, const REAL *restrict hn,
                                          const REAL *restrict gih, const REAL *restrict ghh,
                                          const REAL *restrict rs, REAL *restrict dxg,
                                          REAL *restrict dhh, REAL *restrict ab,
                                          REAL *restrict ali, REAL *restrict alh) {
    for (int64_t j = 0; j < G; j++) {
        REAL a = da[j];
        ab[j] += a;
        ali[j] += a * xn[j];
        alh[j] += a * hn[j];
        dxg[j] = a * gih[j];
        dhh[j] = a * ghh[j];
    }
    SFX(lx_bwd_ln)(G, dxg, xn, rs[0]);
    SFX(lx_bwd_ln)(G, dhh, hn, rs[1]);
}

/* What one backward call shares with its rows. */
typedef struct {
    int64_t H, Hs, P, G, ldo, zh_ld, zc_ld;
    int peep, ln, proj;
    const REAL *gates, *cs, *cp, *XN, *HN, *CN, *RS, *dout;
    const REAL *ln_ih, *ln_hh, *g0, *g1, *pi, *pf, *po, *zh, *zc;
    REAL *dXg, *dHh, *dHt, *dh, *dc, *dGs, *du, *dt, *da, *dy, *accp, *accb, *accli, *acclh,
        *acclc;
    int64_t qoff; /* the step's first row in the block arrays dXg, dHh, dHt */
    int whole;    /* the block arrays have all R rows, in row(t, b) order */
} SFX(lx_bctx);

/* The row of the block arrays (dXg, dHh, dHt) of sequence b at row r. */
static inline int64_t SFX(lx_brow)(const SFX(lx_bctx) *c, int64_t b, int64_t r) {
    return rnn_bwd_block_row(c->whole, c->qoff, b, r);
}

/* Before the projection's product: dL/dh~ of units [u0, u1) of one row
 * (into dt and dHt; with a projection the whole row); r is the row of the
 * cache and dout, b the sequence. */
static void SFX(lx_bwd_row_h)(const SFX(lx_bctx) *c, int64_t b, int64_t r, int64_t u0,
                              int64_t u1) {
    const int64_t Hs = c->Hs;
    REAL *dhb = c->dh + b * Hs + u0, *dst = (c->proj ? c->dt : c->du) + b * Hs + u0;
    SFX(lx_bwd_h)(u1 - u0, c->dout + r * c->ldo + u0, c->zh + r * c->zh_ld + u0, dhb, dst);
    if (c->proj) memcpy(c->dHt + SFX(lx_brow)(c, b, r) * Hs, dst, (size_t)Hs * sizeof(REAL));
}

/* Units [u0, u1) of one row of a backward step, from dL/du to the
 * dL/d(W_hh hm) row in dGs (with layer norm, whose sums span the row, only
 * the whole row). */
static CELL_INLINE void SFX(lx_bwd_row)(const SFX(lx_bctx) *c, int64_t b, int64_t r, int64_t u0,
                                        int64_t u1) {
    const int64_t H = c->H, G = c->G, q = SFX(lx_brow)(c, b, r), n = u1 - u0;
    const REAL *gr = c->gates + r * G + u0, *csr = c->cs + r * H + u0, *cpr = c->cp + r * H + u0;
    REAL *dcb = c->dc + b * H + u0, *dgs = c->dGs + b * G;
    REAL *ap = c->peep ? c->accp + b * 3 * H + u0 : NULL;
    const REAL *du = c->du + b * H + u0, *zcr = c->zc + r * c->zc_ld + u0;
    const REAL *pi = c->peep ? c->pi + u0 : NULL, *pf = c->peep ? c->pf + u0 : NULL;
    const REAL *po = c->peep ? c->po + u0 : NULL;
    REAL *dy = c->dy + b * H + u0, *da = c->ln ? c->da + b * G : c->dXg + q * G;
    if (c->ln) {
        REAL *ag = c->acclc + b * 2 * H;
        const REAL *cnr = c->CN + r * H;
        SFX(lx_bwd_out)(H, du, gr + 3 * H, cnr, c->g0, c->g1, da + 3 * H, dy, ag, ag + H, 1);
        SFX(lx_bwd_ln)(H, dy, cnr, c->RS[r * 3 + 2]);
    } else {
        SFX(lx_bwd_out)(n, du, gr + 3 * H, csr, c->g0, c->g1, da + 3 * H + u0, dy, NULL, NULL,
                        0);
    }
    if (c->peep) SFX(lx_bwd_gates)(n, H, gr, csr, cpr, dy, zcr, pi, pf, po, dcb, da + u0, ap, 1);
    else SFX(lx_bwd_gates)(n, H, gr, csr, cpr, dy, zcr, pi, pf, po, dcb, da + u0, ap, 0);
    if (c->ln) {
        REAL *dhh = c->dHh + q * G;
        SFX(lx_bwd_ln_in)(G, da, c->XN + r * G, c->HN + r * G, c->ln_ih, c->ln_hh, c->RS + r * 3,
                          c->dXg + q * G, dhh, c->accb + b * G, c->accli + b * G,
                          c->acclh + b * G);
        memcpy(dgs, dhh, (size_t)G * sizeof(REAL));
    } else {
        for (int g = 0; g < 4; g++)
            memcpy(dgs + g * H + u0, da + g * H + u0, (size_t)n * sizeof(REAL));
    }
}
LX_ROW_VARIANTS(lx_bwd_row,
                (const SFX(lx_bctx) *c, int64_t b, int64_t r, int64_t u0, int64_t u1),
                (c, b, r, u0, u1))

/* The masks, zoneout always on: a missing mask reads the zero row (zh = 0
 * gives h_t = h~ exactly), so that every row has one form (measured: this
 * one vectorised loop per piece ran a peephole LSTM 5x faster than a fused
 * copy of lstm.c's loop did here); zo says whether either was given. */
typedef struct {
    const REAL *rec, *zh, *zc;
    int64_t zh_ld, zc_ld;
    int zo;
} SFX(lx_masks);

/* What forward and backward check before the step loop: the lengths, then the masks, whose
 * absent zoneout rows read as zero. */
static int SFX(lx_masks_get)(const SFX(rnn_ext_masks) *m, const lx_layout *L, const rnn_dims *d,
                             const int64_t *lengths, const REAL *zero, SFX(lx_masks) *k) {
    *k = (SFX(lx_masks)){NULL, zero, zero, 0, 0, 0};
    int st;
    if ((st = rnn_lengths_check(d, lengths))) return st;
    if (!m) return RNN_OK;
    if ((st = rnn_ext_mask_check(m->zh, m->zh_ld, L->Hs, d))) return st;
    if ((st = rnn_ext_mask_check(m->zc, m->zc_ld, L->H, d))) return st;
    k->rec = m->rec;
    k->zo = m->zh || m->zc;
    if (m->zh) {
        k->zh = m->zh;
        k->zh_ld = m->zh_ld;
    }
    if (m->zc) {
        k->zc = m->zc;
        k->zc_ld = m->zc_ld;
    }
    return RNN_OK;
}

/* The rows [b0, b1) of lstm_ext_forward's step loop. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(lx_fwd_row_fn) row;
    const SFX(lx_fctx) *c;
} SFX(lx_fwd_rows_ctx);
static void SFX(lx_fwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(lx_fwd_rows_ctx) *k = ctx;
    const rnn_dims *d = k->d;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, k->s, rnn_seq_len(d, k->lengths, b));
        if (t >= 0) k->row(k->c, b, t * d->ts + b * d->bs, 0, k->c->H);
    }
}

/* lstm_ext_forward's step over rows [b0, b1) (rnn_run_step): the recurrent
 * product, the rows' gates and state, and the projection. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    int split, ne; /* a task of a split step; the unsplit step's row threads */
    SFX(lx_fwd_row_fn) row;
    const SFX(lx_fctx) *c;
    const REAL *rec; /* recurrent dropout's mask, or NULL */
    REAL *hm;        /* rec * h_{t-1} */
    const SFX(step_w) *whh, *whr;
} SFX(lx_fwd_step_ctx);
static int SFX(lx_fwd_step)(void *ctx, int64_t b0, int64_t b1, void *ws) {
    const SFX(lx_fwd_step_ctx) *k = ctx;
    const rnn_dims *d = k->d;
    const SFX(lx_fctx) *c = k->c;
    const int64_t Hs = c->Hs, H = c->H, P = c->P, G = c->G;
    int st;
    if (k->rec)
        for (int64_t i = b0 * Hs; i < b1 * Hs; i++) k->hm[i] = k->rec[i] * c->hT[i];
    if ((st = SFX(step_mul_rows)(d, k->split, b0, b1, G, Hs, c->A, k->whh, 0, (REAL *)c->pre, G,
                                 ws)))
        return st;
    SFX(lx_fwd_rows_ctx) rows_ctx = {.d = d, .lengths = k->lengths, .s = k->s, .row = k->row,
                                     .c = c};
    rnn_step_rows(d, k->split, k->ne, b0, b1, SFX(lx_fwd_rows), &rows_ctx);
    if (!c->proj) return RNN_OK;
    if ((st = SFX(step_mul_rows)(d, k->split, b0, b1, P, H, c->ub, k->whr, 0, (REAL *)c->hpr, P,
                                 ws)))
        return st;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, k->s, rnn_seq_len(d, k->lengths, b));
        if (t < 0) continue;
        int64_t r = t * d->ts + b * d->bs;
        SFX(lx_fwd_proj_out)(P, c->hpr + b * P, c->zh + r * c->zh_ld, c->hT + b * P,
                             c->out + r * d->ldo);
    }
    return RNN_OK;
}

/* lstm_ext_forward's step split by units (rnn_unit_split, rnn_run_units):
 * units [u0, u1) for every row, reading h_{t-1} from c->A (= c->hsrc) and
 * writing h_t to c->hT, the other buffer. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    SFX(lx_fwd_row_fn) row;
    const SFX(lx_fctx) *c;
    const void *wg[4];     /* W_hh^T packed gate by gate (Hs x H each) */
} SFX(lx_fwd_units_ctx);
static int SFX(lx_fwd_units)(void *ctx, int64_t u0, int64_t u1, void *ws) {
    const SFX(lx_fwd_units_ctx) *k = ctx;
    const rnn_dims *d = k->d;
    const SFX(lx_fctx) *c = k->c;
    const int64_t H = c->H, Hs = c->Hs, G = c->G, B = d->B;
    for (int g = 0; g < 4; g++) {
        int st = SFX(rnn_gemm_packed_cols)(B, u0, u1, H, Hs, 1, c->A, Hs, k->wg[g], 0,
                                           (REAL *)c->pre + g * H, G, ws);
        if (st) return st;
    }
    for (int64_t b = 0; b < B; b++) {
        int64_t t = rnn_step_time(d, k->s, rnn_seq_len(d, k->lengths, b));
        if (t >= 0)
            k->row(c, b, t * d->ts + b * d->bs, u0, u1);
        else /* an ended sequence keeps its h */
            memcpy(c->hT + b * Hs + u0, c->hsrc + b * Hs + u0, (size_t)(u1 - u0) * sizeof(REAL));
    }
    return RNN_OK;
}

int SFX(lstm_ext_forward)(REAL *out, REAL *hT, REAL *cT, REAL *cache, const REAL *x,
                          const REAL *h0, const REAL *c0, const SFX(rnn_ext_params) *p,
                          const SFX(rnn_ext_masks) *m, const rnn_ext_config *cfg,
                          const int64_t *lengths, const rnn_dims *d, REAL *work,
                          void *gemm_ws) {
    lx_layout L;
    int st = lx_layout_make(d, cfg, &L);
    if (st) return st;
    const int inf = d->inference != 0;
    if (!out || !hT || !cT || (!cache && !inf) || !x || !p || !work || !gemm_ws || !p->w_ih ||
        !p->w_hh || !p->b_ih || !p->b_hh || (L.peep && !p->w_peep) || (L.proj && !p->w_hr) ||
        (L.ln && (!p->ln_ih || !p->ln_hh || !p->ln_c)))
        return RNN_ERR_NULL;
    REAL *zero = work + L.f_zero;
    SFX(lx_masks) k;
    if ((st = SFX(lx_masks_get)(m, &L, d, lengths, zero, &k))) return st;
    const int64_t T = d->T, B = d->B, I = d->I, H = L.H, Hs = L.Hs, P = L.P, G = L.G;
    REAL *bias = work + L.f_bias, *pre = work + L.f_pre, *hm = work + L.f_hm;
    REAL *ub = L.proj ? work + L.f_ub : NULL, *hpr = L.proj ? work + L.f_hpr : NULL;
    void *wpk = work + L.f_wpk, *wrpk = work + L.f_wrpk, *wipk = work + L.f_wipk;
    REAL *rows = inf ? work : cache; /* where the per-row arrays are */
    SFX(lx_fctx) c = {
        .H = H, .Hs = Hs, .P = P, .G = G, .ldo = d->ldo, .zh_ld = k.zh_ld, .zc_ld = k.zc_ld,
        .peep = L.peep, .ln = L.ln, .proj = L.proj, .inf = inf,
        .bias = bias, .b_ih = p->b_ih, .b_hh = p->b_hh, .ln_ih = p->ln_ih, .ln_hh = p->ln_hh,
        .g0 = L.ln ? p->ln_c : NULL, .g1 = L.ln ? p->ln_c + H : NULL,
        .pi = L.peep ? p->w_peep : NULL, .pf = L.peep ? p->w_peep + H : NULL,
        .po = L.peep ? p->w_peep + 2 * H : NULL, .zh = k.zh, .zc = k.zc,
        .pre = pre, .A = k.rec ? hm : hT, .hpr = hpr, .hsrc = hT,
        .blocks = L.blocks, .blk = work + L.f_blk, .gates = rows + L.gates, .cs = rows + L.cs, .cp = rows + L.cp, .hp = rows + L.hp,
        .U = L.proj ? rows + L.u : NULL, .XN = L.ln ? rows + L.xn : NULL,
        .HN = L.ln ? rows + L.hn : NULL, .CN = L.ln ? rows + L.cn : NULL,
        .RS = L.ln ? rows + L.rs : NULL, .hT = hT, .cT = cT, .ub = ub,
        .Y = L.ln ? work + L.f_y : NULL, .out = out};

    memset(zero, 0, (size_t)H * sizeof(REAL));
    for (int64_t j = 0; j < G; j++) bias[j] = p->b_ih[j] + p->b_hh[j];
    /* W_ih x_t a block of steps ahead of them, W_ih packed once, or for
     * every step at once into the cache */
    if (!L.blocks) {
        if ((st = SFX(input_proj)(d, G, x, p->w_ih, c.gates, gemm_ws))) return st;
    } else if (!rnn_in_place(d, I) && (st = SFX(step_pack_ld)(d, 1, G, I, p->w_ih, I, wipk))) {
        return st;
    }
    /* steps by units: neither layer norm nor a projection (whose sums span
     * the row) nor recurrent dropout (whose masked h each task would write) */
    const int nu = L.ln || L.proj || k.rec || rnn_in_place(d, Hs) ? 1 : rnn_unit_split(d, H);
    SFX(lx_fwd_units_ctx) units = {.d = d, .lengths = lengths,
                                   .row = SFX(lx_fwd_row_pick)(rnn_gemm_best_isa()), .c = &c};
    SFX(step_w) whh, whr = {0};
    if (nu > 1) {
        for (int g = 0; g < 4; g++) {
            REAL *wg = work + L.f_wpk + g * L.gpk;
            if ((st = SFX(step_pack_ld)(d, 1, H, Hs, p->w_hh + g * H * Hs, Hs, wg))) return st;
            units.wg[g] = wg;
        }
    } else if ((st = SFX(step_w_make)(d, 1, G, Hs, p->w_hh, Hs, wpk, &whh))) {
        return st;
    }
    if (L.proj) {
        if ((st = SFX(step_w_make)(d, 1, P, H, p->w_hr, H, wrpk, &whr))) return st;
        memset(ub, 0, (size_t)(B * H) * sizeof(REAL)); /* rows of ended sequences */
    }
    SFX(copy_or_zero)(hT, h0, B * Hs);
    SFX(copy_or_zero)(cT, c0, B * H);
    const int nst = rnn_step_split(d, G, Hs, sizeof(REAL));
    SFX(lx_fwd_step_ctx) step = {.d = d, .lengths = lengths, .split = nst > 1,
                                 .ne = rnn_elem_threads(d, G),
                                 .row = SFX(lx_fwd_row_pick)(rnn_gemm_best_isa()), .c = &c,
                                 .rec = k.rec, .hm = hm, .whh = &whh, .whr = &whr};

    rnn_proj_block pb = {0, 0}; /* the steps whose W_ih x rows are in c.blk */
    for (int64_t s = 0; s < T; s++) {
        if (L.blocks && (st = SFX(proj_block_next)(d, lengths, s, L.Tc, G, x, p->w_ih, wipk,
                                                    work + L.f_xs, c.blk, &pb, gemm_ws)))
            return st;
        c.goff = L.blocks ? (s - pb.p0) * B : 0;
        if (nu > 1) { /* h_{t-1} in one buffer, h_t into the other */
            REAL *hx = work + L.f_hx, *cur = s & 1 ? hx : hT;
            c.A = c.hsrc = cur;
            c.hT = s & 1 ? hT : hx;
            units.s = s;
            if ((st = rnn_run_units(d, nu, H, SFX(lx_fwd_units), &units, gemm_ws))) return st;
            continue;
        }
        step.s = s;
        if ((st = rnn_run_step(d, nst, SFX(lx_fwd_step), &step, gemm_ws))) return st;
    }
    if (nu > 1 && (T & 1)) memcpy(hT, work + L.f_hx, (size_t)(B * Hs) * sizeof(REAL));
    SFX(zero_padded_rows)(out, Hs, d->ldo, lengths, d);
    if (inf) return RNN_OK;
    SFX(zero_padded_rows)(c.gates, G, G, lengths, d);
    SFX(zero_padded_rows)(c.cs, H, H, lengths, d);
    SFX(zero_padded_rows)(c.cp, H, H, lengths, d);
    SFX(zero_padded_rows)(c.hp, Hs, Hs, lengths, d);
    if (L.proj) SFX(zero_padded_rows)(c.U, H, H, lengths, d);
    if (L.ln) {
        SFX(zero_padded_rows)(c.XN, G, G, lengths, d);
        SFX(zero_padded_rows)(c.HN, G, G, lengths, d);
        SFX(zero_padded_rows)(c.CN, H, H, lengths, d);
        SFX(zero_padded_rows)(c.RS, 3, 3, lengths, d);
    }
    return RNN_OK;
}

/* dst[j] += the B rows of src (B, n), summed in row order */
static void SFX(lx_rows_add)(REAL *dst, const REAL *src, int64_t B, int64_t n) {
    SFX(colsum_add)(dst, src, B, n, n);
}

/* The rows [b0, b1) of lstm_ext_backward's step loop. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s, G;
    SFX(lx_bwd_row_fn) row;
    const SFX(lx_bctx) *c;
    int proj;
} SFX(lx_bwd_rows_ctx);
static void SFX(lx_bwd_rows)(void *ctx, int64_t b0, int64_t b1) {
    const SFX(lx_bwd_rows_ctx) *k = ctx;
    const rnn_dims *d = k->d;
    for (int64_t b = b0; b < b1; b++) {
        int64_t t = rnn_step_time(d, k->s, rnn_seq_len(d, k->lengths, b));
        if (t < 0) { /* an ended sequence: zero rows, which weigh nothing in the products */
            const SFX(lx_bctx) *c = k->c;
            memset(c->dGs + b * k->G, 0, (size_t)k->G * sizeof(REAL));
            SFX(bwd_block_zero)(c->whole, c->qoff, b, c->dXg, k->G);
            if (c->ln) SFX(bwd_block_zero)(c->whole, c->qoff, b, c->dHh, k->G);
            if (c->proj) SFX(bwd_block_zero)(c->whole, c->qoff, b, c->dHt, c->Hs);
            continue;
        }
        int64_t r = t * d->ts + b * d->bs;
        if (!k->proj) SFX(lx_bwd_row_h)(k->c, b, r, 0, k->c->Hs);
        k->row(k->c, b, r, 0, k->c->H);
    }
}

/* lstm_ext_backward's step over rows [b0, b1) (rnn_run_step): dL/du through
 * the projection, the rows' gate gradients, then dL/dh_{t-1}. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    int split, ne; /* a task of a split step; the unsplit step's row threads */
    SFX(lx_bwd_row_fn) row;
    const SFX(lx_bctx) *c;
    const REAL *rec; /* recurrent dropout's mask, or NULL */
    REAL *dhr;       /* dG_t W_hh */
    const SFX(step_w) *whh, *whr;
} SFX(lx_bwd_step_ctx);
static int SFX(lx_bwd_step)(void *ctx, int64_t b0, int64_t b1, void *ws) {
    const SFX(lx_bwd_step_ctx) *k = ctx;
    const rnn_dims *d = k->d;
    const SFX(lx_bctx) *c = k->c;
    const int64_t Hs = c->Hs, H = c->H, P = c->P, G = c->G;
    int st;
    if (c->proj) {
        /* dL/dh~ (B, P), then dL/du = dL/dh~ W_hr */
        for (int64_t b = b0; b < b1; b++) {
            int64_t t = rnn_step_time(d, k->s, rnn_seq_len(d, k->lengths, b));
            if (t >= 0) SFX(lx_bwd_row_h)(c, b, t * d->ts + b * d->bs, 0, Hs);
        }
        if ((st = SFX(step_mul_rows)(d, k->split, b0, b1, H, P, c->dt, k->whr, 0, c->du, H, ws)))
            return st;
    }
    SFX(lx_bwd_rows_ctx) rows_ctx = {.d = d, .lengths = k->lengths, .s = k->s, .row = k->row,
                                     .c = c, .G = G, .proj = c->proj};
    rnn_step_rows(d, k->split, k->ne, b0, b1, SFX(lx_bwd_rows), &rows_ctx);
    /* dh_{t-1} = (zoneout's direct part) + m_b (dHh_t W_hh)
     * for running rows; ended rows pass dh through */
    if ((st = SFX(step_mul_rows)(d, k->split, b0, b1, Hs, G, c->dGs, k->whh, 0, k->dhr, Hs, ws)))
        return st;
    SFX(step_dh_add)(d, k->lengths, k->s, b0, b1, Hs, 0, Hs, c->dh, k->dhr, k->rec, 0);
    return RNN_OK;
}

/* lstm_ext_backward's step split by units (rnn_unit_split), task i's units
 * [u0, u1) for every row: first (prod) dL/dh of the step after this one,
 * dh += dG_{s+1} W_hh for those units, from all of the previous job's gate
 * gradients (dgn); then (rows) this step's rows for those units, their gate
 * gradients into c->dGs, the other buffer. One job per step, as forward. */
typedef struct {
    const rnn_dims *d;
    const int64_t *lengths;
    int64_t s;
    int prod, rows;
    SFX(lx_bwd_row_fn) row;
    const SFX(lx_bctx) *c;
    const void *wpk;  /* W_hh packed (G x Hs) */
    const REAL *dgn;  /* dG_{s+1} (B, G) */
    REAL *dhr;
} SFX(lx_bwd_units_ctx);
static int SFX(lx_bwd_units)(void *ctx, int64_t u0, int64_t u1, void *ws) {
    const SFX(lx_bwd_units_ctx) *k = ctx;
    const rnn_dims *d = k->d;
    const SFX(lx_bctx) *c = k->c;
    const int64_t H = c->H, G = c->G, B = d->B;
    if (k->prod) {
        int st = SFX(rnn_gemm_packed_cols)(B, u0, u1, H, G, 1, k->dgn, G, k->wpk, 0, k->dhr, H,
                                           ws);
        if (st) return st;
        SFX(step_dh_add)(d, k->lengths, k->s + 1, 0, B, H, u0, u1, c->dh, k->dhr, NULL, 0);
    }
    if (!k->rows) return RNN_OK;
    for (int64_t b = 0; b < B; b++) {
        int64_t t = rnn_step_time(d, k->s, rnn_seq_len(d, k->lengths, b));
        if (t < 0) { /* an ended sequence: zero rows (as lx_bwd_rows), these units' columns */
            for (int g = 0; g < 4; g++) {
                memset(c->dGs + b * G + g * H + u0, 0, (size_t)(u1 - u0) * sizeof(REAL));
                if (!c->whole)
                    memset(c->dXg + (c->qoff + b) * G + g * H + u0, 0,
                           (size_t)(u1 - u0) * sizeof(REAL));
            }
            continue;
        }
        int64_t r = t * d->ts + b * d->bs;
        SFX(lx_bwd_row_h)(c, b, r, u0, u1);
        k->row(c, b, r, u0, u1);
    }
    return RNN_OK;
}

/* The weight gradients and dx of the block of steps s0 .. s0+n-1, whose
 * rows are in the block arrays of c (row j*B + b: step s0+j, sequence b;
 * with one whole block, the R rows in row(t, b) order). */
static int SFX(lx_bwd_block)(const rnn_dims *d, const lx_layout *L, const int64_t *lengths,
                             int64_t s0, int64_t n, const SFX(lx_bctx) *c, const REAL *cache,
                             const REAL *x, const SFX(rnn_ext_params) *p,
                             const SFX(rnn_ext_grads) *g, REAL *dx, REAL *work, void *gemm_ws) {
    const int64_t I = d->I, H = L->H, Hs = L->Hs, P = L->P, G = L->G;
    const int64_t rows = L->whole ? L->R : n * d->B;
    int64_t lx = d->ldx;
    const REAL *xa = x, *ha = cache + L->hp, *ua = L->proj ? cache + L->u : NULL;
    if (!L->whole) { /* rows of hp (Hs) and u (H) are as far apart either way */
        xa = SFX(steps_x_rows)(d, lengths, s0, n, x, work + L->b_xs, &lx);
        ha = SFX(steps_rows_contig)(d, lengths, s0, n, ha, Hs, work + L->b_hps);
        if (L->proj) ua = SFX(steps_rows_contig)(d, lengths, s0, n, ua, H, work + L->b_us);
    }
    const REAL *dHh = L->ln ? c->dHh : c->dXg; /* dL/d(W_hh hm) */
    int st;
    if ((st = GEMM(1, 0, G, I, rows, 1, c->dXg, G, xa, lx, 1, g->w_ih, I, gemm_ws))) return st;
    if ((st = GEMM(1, 0, G, Hs, rows, 1, dHh, G, ha, Hs, 1, g->w_hh, Hs, gemm_ws))) return st;
    if (L->proj && (st = GEMM(1, 0, P, H, rows, 1, c->dHt, P, ua, H, 1, g->w_hr, H, gemm_ws)))
        return st;
    if (!L->ln) SFX(colsum_add2)(g->b_ih, g->b_hh, c->dXg, rows, G, G);
    return SFX(block_dx)(d, lengths, s0, n, L->whole, rows, G, c->dXg, p->w_ih, dx,
                         work + L->b_dxs, gemm_ws);
}

int SFX(lstm_ext_backward)(REAL *dx, REAL *dh0, REAL *dc0, const SFX(rnn_ext_grads) *g,
                           const REAL *dout, const REAL *dhT, const REAL *dcT, const REAL *cache,
                           const REAL *x, const SFX(rnn_ext_params) *p,
                           const SFX(rnn_ext_masks) *m, const rnn_ext_config *cfg,
                           const int64_t *lengths, const rnn_dims *d, REAL *work,
                           void *gemm_ws) {
    lx_layout L;
    int st = lx_layout_make(d, cfg, &L);
    if (st) return st;
    if (d->inference) return RNN_ERR_SIZE; /* an inference forward keeps nothing */
    if (!dx || !dh0 || !dc0 || !g || !cache || !x || !p || !work || !gemm_ws || !p->w_ih ||
        !p->w_hh || !g->w_ih || !g->w_hh || !g->b_ih || !g->b_hh ||
        (L.peep && (!p->w_peep || !g->w_peep)) || (L.proj && (!p->w_hr || !g->w_hr)) ||
        (L.ln && (!p->ln_ih || !p->ln_hh || !p->ln_c || !g->ln_ih || !g->ln_hh || !g->ln_c)))
        return RNN_ERR_NULL;
    REAL *zero = work + L.b_zero;
    SFX(lx_masks) k;
    if ((st = SFX(lx_masks_get)(m, &L, d, lengths, zero, &k))) return st;
    const int64_t T = d->T, B = d->B, H = L.H, Hs = L.Hs, P = L.P, G = L.G;
    REAL *dh = work + L.b_dh, *dc = work + L.b_dc, *dhr = work + L.b_dhr;
    void *wpk = work + L.b_wpk, *wrpk = work + L.b_wrpk;
    SFX(lx_bctx) c = {
        .H = H, .Hs = Hs, .P = P, .G = G, .zh_ld = k.zh_ld, .zc_ld = k.zc_ld,
        .peep = L.peep, .ln = L.ln, .proj = L.proj,
        .gates = cache + L.gates, .cs = cache + L.cs, .cp = cache + L.cp,
        .XN = L.ln ? cache + L.xn : NULL, .HN = L.ln ? cache + L.hn : NULL,
        .CN = L.ln ? cache + L.cn : NULL, .RS = L.ln ? cache + L.rs : NULL,
        .dout = dout ? dout : zero, .ldo = dout ? d->ldo : 0, /* no dout: the zero row */
        .ln_ih = p->ln_ih, .ln_hh = p->ln_hh, .g0 = L.ln ? p->ln_c : NULL,
        .g1 = L.ln ? p->ln_c + H : NULL, .pi = L.peep ? p->w_peep : NULL,
        .pf = L.peep ? p->w_peep + H : NULL, .po = L.peep ? p->w_peep + 2 * H : NULL,
        .zh = k.zh, .zc = k.zc,
        .dXg = work + L.b_dxg, .dHh = L.ln ? work + L.b_dhh : NULL,
        .dHt = L.proj ? work + L.b_dht : NULL, .dh = dh, .dc = dc, .dGs = work + L.b_dgs,
        .du = work + L.b_du, .dt = L.proj ? work + L.b_dt : NULL,
        .da = L.ln ? work + L.b_da : NULL, .dy = work + L.b_dy,
        .accp = L.peep ? work + L.b_accp : NULL, .accb = L.ln ? work + L.b_accb : NULL,
        .accli = L.ln ? work + L.b_accli : NULL, .acclh = L.ln ? work + L.b_acclh : NULL,
        .acclc = L.ln ? work + L.b_acclc : NULL, .whole = L.whole};

    memset(zero, 0, (size_t)H * sizeof(REAL));
    if (L.proj) memset(c.dt, 0, (size_t)(B * P) * sizeof(REAL)); /* rows of ended sequences */
    if (L.whole) { /* every row of a running step is written; the others must be zero */
        SFX(zero_padded_rows)(c.dXg, G, G, lengths, d);
        if (L.ln) SFX(zero_padded_rows)(c.dHh, G, G, lengths, d);
        if (L.proj) SFX(zero_padded_rows)(c.dHt, P, P, lengths, d);
    }
    if (L.peep) memset(c.accp, 0, (size_t)(B * 3 * H) * sizeof(REAL));
    if (L.ln) {
        memset(c.accb, 0, (size_t)(B * G) * sizeof(REAL));
        memset(c.accli, 0, (size_t)(B * G) * sizeof(REAL));
        memset(c.acclh, 0, (size_t)(B * G) * sizeof(REAL));
        memset(c.acclc, 0, (size_t)(B * 2 * H) * sizeof(REAL));
    }
    SFX(copy_or_zero)(dh, dhT, B * Hs);
    SFX(copy_or_zero)(dc, dcT, B * H);
    SFX(step_w) whh, whr = {0};
    if ((st = SFX(step_w_make)(d, 0, Hs, G, p->w_hh, Hs, wpk, &whh))) return st;
    if (L.proj && (st = SFX(step_w_make)(d, 0, H, P, p->w_hr, H, wrpk, &whr))) return st;
    /* steps by units where the forward's go so (W_hh packed: not in place) */
    const int nu = L.ln || L.proj || k.rec || !whh.packed ? 1 : rnn_unit_split(d, H);
    SFX(lx_bwd_units_ctx) units = {.d = d, .lengths = lengths,
                                   .row = SFX(lx_bwd_row_pick)(rnn_gemm_best_isa()), .c = &c,
                                   .wpk = whh.packed, .dhr = dhr};
    const int nst = rnn_step_split(d, G, Hs, sizeof(REAL));
    SFX(lx_bwd_step_ctx) step = {.d = d, .lengths = lengths, .split = nst > 1,
                                 .ne = rnn_elem_threads(d, G),
                                 .row = SFX(lx_bwd_row_pick)(rnn_gemm_best_isa()), .c = &c,
                                 .rec = k.rec, .dhr = dhr, .whh = &whh, .whr = &whr};
    /* the steps in blocks of Tb (the last block, run first, may be shorter):
     * a block's weight gradients once its steps are done */
    for (int64_t s = T - 1; s >= 0; s--) {
        int64_t s0, n;
        c.qoff = rnn_bwd_block_of(d, L.Tb, s, &s0, &n);
        if (nu > 1) { /* dG_{s+1} in one buffer, dG_s into the other */
            REAL *a = work + L.b_dgs, *b2 = work + L.b_dgs2;
            units.dgn = s & 1 ? a : b2;
            c.dGs = s & 1 ? b2 : a;
            units.s = s;
            units.prod = s < T - 1;
            units.rows = 1;
            if ((st = rnn_run_units(d, nu, H, SFX(lx_bwd_units), &units, gemm_ws))) return st;
        } else {
            step.s = s;
            if ((st = rnn_run_step(d, nst, SFX(lx_bwd_step), &step, gemm_ws))) return st;
        }
        if (s == s0 && (st = SFX(lx_bwd_block)(d, &L, lengths, s0, n, &c, cache, x, p, g, dx,
                                                work, gemm_ws)))
            return st;
    }
    if (nu > 1 && T > 0) { /* dL/dh_{-1}: the first step's product */
        units.dgn = c.dGs;
        units.s = -1;
        units.prod = 1;
        units.rows = 0;
        if ((st = rnn_run_units(d, nu, H, SFX(lx_bwd_units), &units, gemm_ws))) return st;
    }
    SFX(add_into)(dh0, dh, B * Hs);
    SFX(add_into)(dc0, dc, B * H);
    if (L.ln) {
        SFX(lx_rows_add)(g->b_ih, c.accb, B, G);
        SFX(lx_rows_add)(g->b_hh, c.accb, B, G);
        SFX(lx_rows_add)(g->ln_ih, c.accli, B, G);
        SFX(lx_rows_add)(g->ln_hh, c.acclh, B, G);
        SFX(lx_rows_add)(g->ln_c, c.acclc, B, 2 * H);
    }
    if (L.peep) SFX(lx_rows_add)(g->w_peep, c.accp, B, 3 * H);
    return RNN_OK;
}

#endif
