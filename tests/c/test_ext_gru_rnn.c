/*
 * test_ext_gru_rnn.c: the extended GRU and RNN kernels of cells_ext.h
 * (gru_ext.c, rnn_ext.c) on their own, with no Python:
 *
 *   - forward against a naive float64 reference written from the formulas
 *     of cells_ext.h (layer norm, zoneout, recurrent dropout, lengths,
 *     reverse), so a forward and backward that agree with each other but
 *     not with the contract cannot pass;
 *   - float64 backward against central differences of forward (random loss
 *     weights on out and hT; dx, dh0 and every parameter gradient), for
 *     each option alone and all together, tanh and relu RNNs, both layouts,
 *     both directions, ragged lengths with a zero length, B = 1 and B > 1;
 *   - masks that change nothing (rec = 1, zh = 0) change no bit;
 *   - float32 against float64 (the zero config too); backward twice adds the same again;
 *   - threads = 2 against threads = 1, bit for bit (on the core's pool);
 *   - status codes and the cache / scratch sizes.
 *
 * Built and run (also under AddressSanitizer and UBSan) by tests/kernels/test_c_kernels.py:
 *
 *   gcc -std=c11 -O2 -Wall -Wextra -Werror -Icsrc csrc/gemm.c csrc/pool.c csrc/rnn_common.c \
 *       csrc/rnn_ext_common.c csrc/rnn_ext.c csrc/lstm_ext.c csrc/gru_ext.c \
 *       tests/c/test_ext_gru_rnn.c -lm -pthread
 *
 * Prints "N passed, M failed" last and exits non-zero on any failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cells_ext.h"
#include "gemm.h"

#define HARNESS_SEED 0x2545F4914F6CDD1DULL
#include "harness.h"

#define NEW(T, n) ((T *)xmalloc((size_t)(n) * sizeof(T)))

enum { OPT_LN = 1, OPT_ZH = 2, OPT_ZH0 = 4, OPT_REC = 8 };
#define PAD_VALUE 1e3 /* in the columns past I of x and past H of dout: never read */

/* One problem: kind, options, sizes, every input in float64, the loss weights. */
typedef struct {
    int kind, opts, threads;
    rnn_ext_config cfg;
    rnn_dims d;
    int64_t lengths[256];
    int use_lengths;
    int64_t G, GH, n_w, o_hh, o_bih, o_bhh, o_lnih, o_lnhh, zh_ld;
    double *w, *x, *h0, *rec, *zh; /* w: w_ih | w_hh | b_ih | b_hh | ln_ih | ln_hh */
    double *Rw, *Sw;               /* loss weights on out (R, H) and hT (B, H) */
    double *out, *hT, *cache, *work; /* forward buffers, reused */
    void *gws, *graw;
} problem;

static const int64_t *lens_of(const problem *p) { return p->use_lengths ? p->lengths : NULL; }
/* The problem's dims with its thread count and the shared pool. */
static rnn_dims dims_of(const problem *p) {
    rnn_dims d = p->d;
    d.threads = p->threads;
    d.pool = harness_pool();
    return d;
}

/* The ext kernels for one dtype, on the problem's options. */
#define DEFINE_RUNNERS(REAL, SFX)                                                                  \
    static void params_##SFX(const problem *p, const REAL *w, rnn_ext_params_##SFX *prm) {         \
        memset(prm, 0, sizeof *prm);                                                               \
        prm->w_ih = w; prm->w_hh = w + p->o_hh; prm->b_ih = w + p->o_bih; prm->b_hh = w + p->o_bhh; \
        if (p->opts & OPT_LN) { prm->ln_ih = w + p->o_lnih; prm->ln_hh = w + p->o_lnhh; }          \
    }                                                                                              \
    static void grads_##SFX(const problem *p, REAL *w, rnn_ext_grads_##SFX *g) {                   \
        memset(g, 0, sizeof *g);                                                                   \
        g->w_ih = w; g->w_hh = w + p->o_hh; g->b_ih = w + p->o_bih; g->b_hh = w + p->o_bhh;         \
        if (p->opts & OPT_LN) { g->ln_ih = w + p->o_lnih; g->ln_hh = w + p->o_lnhh; }              \
    }                                                                                              \
    static void masks_##SFX(const problem *p, const REAL *rec, const REAL *zh,                     \
                            rnn_ext_masks_##SFX *m) {                                              \
        memset(m, 0, sizeof *m);                                                                   \
        m->rec = (p->opts & OPT_REC) ? rec : NULL;                                                 \
        m->zh = (p->opts & (OPT_ZH | OPT_ZH0)) ? zh : NULL;                                        \
        m->zh_ld = p->zh_ld;                                                                       \
    }                                                                                              \
    static int fwd_##SFX(const problem *p, const REAL *w, const REAL *x, const REAL *h0,           \
                         const REAL *rec, const REAL *zh, REAL *out, REAL *hT, REAL *cache,        \
                         REAL *work) {                                                             \
        rnn_ext_params_##SFX prm;                                                                  \
        rnn_ext_masks_##SFX m;                                                                     \
        params_##SFX(p, w, &prm);                                                                  \
        masks_##SFX(p, rec, zh, &m);                                                               \
        rnn_dims d = dims_of(p);                                                                   \
        if (p->kind == RNN_CELL_GRU)                                                               \
            return gru_ext_forward_##SFX(out, hT, cache, x, h0, &prm, &m, &p->cfg, lens_of(p), &d, \
                                         work, p->gws);                                            \
        return rnn_ext_forward_##SFX(out, hT, cache, x, h0, &prm, &m, &p->cfg, lens_of(p), &d,     \
                                     work, p->gws);                                                \
    }                                                                                              \
    static int bwd_##SFX(const problem *p, const REAL *w, const REAL *x, const REAL *rec,          \
                         const REAL *zh, const REAL *cache, const REAL *dout, const REAL *dhT,     \
                         REAL *dx, REAL *dh0, REAL *dw, REAL *work) {                              \
        rnn_ext_params_##SFX prm;                                                                  \
        rnn_ext_grads_##SFX g;                                                                     \
        rnn_ext_masks_##SFX m;                                                                     \
        params_##SFX(p, w, &prm);                                                                  \
        grads_##SFX(p, dw, &g);                                                                    \
        masks_##SFX(p, rec, zh, &m);                                                               \
        rnn_dims d = dims_of(p);                                                                   \
        if (p->kind == RNN_CELL_GRU)                                                               \
            return gru_ext_backward_##SFX(dx, dh0, &g, dout, dhT, cache, x, &prm, &m, &p->cfg,     \
                                          lens_of(p), &d, work, p->gws);                           \
        return rnn_ext_backward_##SFX(dx, dh0, &g, dout, dhT, cache, x, &prm, &m, &p->cfg,         \
                                      lens_of(p), &d, work, p->gws);                               \
    }
DEFINE_RUNNERS(float, f32)
DEFINE_RUNNERS(double, f64)

static int64_t rows(const problem *p) { return p->d.T * p->d.B; }
static int64_t mask_len(const problem *p) {
    if (p->opts & OPT_ZH0) return p->d.H;
    return rows(p) * (p->zh_ld > 0 ? p->zh_ld : p->d.H);
}

static void fill_problem(problem *p) {
    const rnn_dims *d = &p->d;
    int64_t R = rows(p), H = d->H;
    for (int64_t k = 0; k < p->n_w; k++) p->w[k] = 0.6 * uniform();
    if (p->opts & OPT_LN)
        for (int64_t k = 0; k < 2 * p->GH; k++) p->w[p->o_lnih + k] = 1.0 + 0.4 * uniform();
    for (int64_t r = 0; r < R; r++)
        for (int64_t i = 0; i < d->ldx; i++) p->x[r * d->ldx + i] = i < d->I ? uniform() : PAD_VALUE;
    for (int64_t k = 0; k < d->B * H; k++) {
        p->h0[k] = 0.5 * uniform();
        p->rec[k] = uniform() < -0.6 ? 0.0 : 1.25; /* inverted dropout with p = 0.2 */
        p->Sw[k] = uniform();
    }
    for (int64_t k = 0; k < mask_len(p); k++) p->zh[k] = 0.5 + 0.5 * uniform();
    for (int64_t k = 0; k < R * H; k++) p->Rw[k] = uniform();
}

static void make_problem(problem *p, int kind, int opts, int64_t T, int64_t B, int64_t I, int64_t H,
                         int batch_first, int reverse, int use_lengths, int ldpad) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->opts = opts;
    p->cfg.layer_norm = (opts & OPT_LN) != 0;
    p->cfg.relu = kind == RNN_CELL_RELU;
    p->d = (rnn_dims){.T = T, .B = B, .I = I, .H = H, .ts = batch_first ? 1 : B,
                      .bs = batch_first ? T : 1, .ldx = I + ldpad, .ldo = H + 2 * ldpad,
                      .reverse = reverse};
    p->use_lengths = use_lengths;
    for (int64_t b = 0; b < B; b++) /* T-1, 0, T, T-1, 0, T, ... */
        p->lengths[b] = b % 3 == 0 ? T - 1 : (b % 3 == 1 ? 0 : T);
    if (B == 1) p->lengths[0] = T - 1;
    p->zh_ld = (opts & OPT_ZH0) ? 0 : H;
    p->G = rnn_cell_gates(kind);
    p->GH = p->G * H;
    p->o_hh = p->GH * I;
    p->o_bih = p->o_hh + p->GH * H;
    p->o_bhh = p->o_bih + p->GH;
    p->o_lnih = p->o_bhh + p->GH;
    p->o_lnhh = p->o_lnih + p->GH;
    p->n_w = p->o_lnih + ((opts & OPT_LN) ? 2 * p->GH : 0);
    int64_t R = T * B;
    p->w = NEW(double, p->n_w);
    p->x = NEW(double, R * p->d.ldx);
    p->h0 = NEW(double, B * H);
    p->rec = NEW(double, B * H);
    p->zh = NEW(double, mask_len(p));
    p->Rw = NEW(double, R * H);
    p->Sw = NEW(double, B * H);
    p->out = NEW(double, R * p->d.ldo);
    p->hT = NEW(double, B * H);
    int64_t cl = rnn_ext_cache_len(kind, &p->d, &p->cfg);
    int64_t wl = rnn_ext_forward_work_len(kind, &p->d, &p->cfg);
    int64_t bl = rnn_ext_backward_work_len(kind, &p->d, &p->cfg);
    if (cl < 0 || wl < 0 || bl < 0) { printf("bad sizes\n"); exit(2); }
    p->cache = NEW(double, cl);
    p->work = NEW(double, wl > bl ? wl : bl);
    p->gws = aligned64(2 * rnn_gemm_workspace_size(), &p->graw);
    fill_problem(p);
}

static void free_problem(problem *p) {
    free(p->w); free(p->x); free(p->h0); free(p->rec); free(p->zh); free(p->Rw); free(p->Sw);
    free(p->out); free(p->hT); free(p->cache); free(p->work); free(p->graw);
}

/* ---- the reference: the formulas of cells_ext.h, one sequence at a time ---- */

static double sigm(double v) { return 1.0 / (1.0 + exp(-v)); }

static void ref_ln(double *v, int64_t n, const double *gain, const double *shift) {
    double mu = 0, var = 0;
    for (int64_t j = 0; j < n; j++) mu += v[j];
    mu /= (double)n;
    for (int64_t j = 0; j < n; j++) var += (v[j] - mu) * (v[j] - mu);
    var /= (double)n;
    for (int64_t j = 0; j < n; j++) v[j] = gain[j] * (v[j] - mu) / sqrt(var + RNN_LN_EPS) + shift[j];
}

/* out (R, H) dense and hT (B, H); returns the smallest |pre-activation| of a relu RNN. */
static double ref_forward(const problem *p, double *out, double *hT) {
    const rnn_dims *d = &p->d;
    int64_t H = d->H, I = d->I, GH = p->GH;
    const double *w_ih = p->w, *w_hh = p->w + p->o_hh, *b_ih = p->w + p->o_bih,
                 *b_hh = p->w + p->o_bhh;
    double *h = NEW(double, H), *hm = NEW(double, H), *u = NEW(double, GH), *v = NEW(double, GH);
    double min_a = INFINITY;
    memset(out, 0, (size_t)(rows(p) * H) * sizeof(double));
    for (int64_t b = 0; b < d->B; b++) {
        memcpy(h, p->h0 + b * H, (size_t)H * sizeof(double));
        int64_t len = p->use_lengths ? p->lengths[b] : d->T;
        for (int64_t s = 0; s < len; s++) {
            int64_t t = d->reverse ? len - 1 - s : s, r = t * d->ts + b * d->bs;
            const double *xr = p->x + r * d->ldx;
            for (int64_t j = 0; j < H; j++) hm[j] = (p->opts & OPT_REC) ? p->rec[b * H + j] * h[j] : h[j];
            for (int64_t k = 0; k < GH; k++) {
                u[k] = 0;
                v[k] = 0;
                for (int64_t i = 0; i < I; i++) u[k] += w_ih[k * I + i] * xr[i];
                for (int64_t i = 0; i < H; i++) v[k] += w_hh[k * H + i] * hm[i];
            }
            if (p->opts & OPT_LN) {
                ref_ln(u, GH, p->w + p->o_lnih, b_ih);
                ref_ln(v, GH, p->w + p->o_lnhh, b_hh);
            } else {
                for (int64_t k = 0; k < GH; k++) { u[k] += b_ih[k]; v[k] += b_hh[k]; }
            }
            const double *zr = (p->opts & (OPT_ZH | OPT_ZH0)) ? p->zh + r * p->zh_ld : NULL;
            for (int64_t j = 0; j < H; j++) {
                double ht;
                if (p->kind == RNN_CELL_GRU) {
                    double rg = sigm(u[j] + v[j]), zg = sigm(u[H + j] + v[H + j]);
                    double ng = tanh(u[2 * H + j] + rg * v[2 * H + j]);
                    ht = (1 - zg) * ng + zg * h[j];
                } else {
                    double a = u[j] + v[j];
                    min_a = fmin(min_a, fabs(a));
                    ht = p->kind == RNN_CELL_RELU ? (a > 0 ? a : 0) : tanh(a);
                }
                out[r * H + j] = zr ? zr[j] * h[j] + (1 - zr[j]) * ht : ht;
            }
            for (int64_t j = 0; j < H; j++) h[j] = out[r * H + j];
        }
        memcpy(hT + b * H, h, (size_t)H * sizeof(double));
    }
    free(h); free(hm); free(u); free(v);
    return p->kind == RNN_CELL_RELU ? min_a : INFINITY;
}

/* ---- helpers ---- */

static int forward64(problem *p) {
    return fwd_f64(p, p->w, p->x, p->h0, p->rec, p->zh, p->out, p->hT, p->cache, p->work);
}

static double loss_of(const problem *p) {
    const rnn_dims *d = &p->d;
    double L = 0;
    for (int64_t r = 0; r < rows(p); r++)
        for (int64_t j = 0; j < d->H; j++) L += p->out[r * d->ldo + j] * p->Rw[r * d->H + j];
    for (int64_t k = 0; k < d->B * d->H; k++) L += p->hT[k] * p->Sw[k];
    return L;
}

/* dout (R rows, ldo) from the loss weights, with PAD_VALUE past H */
static double *make_dout(const problem *p) {
    const rnn_dims *d = &p->d;
    double *dout = NEW(double, rows(p) * d->ldo);
    for (int64_t r = 0; r < rows(p); r++)
        for (int64_t j = 0; j < d->ldo; j++)
            dout[r * d->ldo + j] = j < d->H ? p->Rw[r * d->H + j] : PAD_VALUE;
    return dout;
}

static double numeric(problem *p, double *entry) {
    const double eps = 1e-6;
    double old = *entry, lp, lm;
    *entry = old + eps;
    forward64(p);
    lp = loss_of(p);
    *entry = old - eps;
    forward64(p);
    lm = loss_of(p);
    *entry = old;
    return (lp - lm) / (2 * eps);
}

static double max_abs_diff(const double *a, const double *b, int64_t n) {
    double m = 0;
    for (int64_t k = 0; k < n; k++) m = fmax(m, fabs(a[k] - b[k]));
    return m;
}

static double worst_fd = 0; /* largest gradient error over all checks */
static char worst_fd_what[200];

static const char *kind_name(int kind) {
    return kind == RNN_CELL_GRU ? "gru" : kind == RNN_CELL_RELU ? "relu" : "tanh";
}

/* ---- float64 backward against central differences (and forward against the reference) ---- */

static void gradient_check(int kind, int opts, int64_t B, int bf, int rev, int use_lengths) {
    problem p;
    int ldpad = bf; /* batch-first problems also read x and write out through column slices */
    int64_t T = 4, I = 3, H = kind == RNN_CELL_GRU ? 4 : 5;
    double min_a = 0;
    for (int tries = 0; tries < 50; tries++) { /* keep relu pre-activations away from the kink */
        make_problem(&p, kind, opts, T, B, I, H, bf, rev, use_lengths, ldpad);
        double *o = NEW(double, rows(&p) * H), *hT = NEW(double, B * H);
        min_a = ref_forward(&p, o, hT);
        free(o); free(hT);
        if (min_a > 1e-3) break;
        free_problem(&p);
    }
    const rnn_dims *d = &p.d;
    int64_t R = rows(&p);
    char what[200];
    snprintf(what, sizeof what, "%s opts=%d B=%d bf=%d rev=%d lengths=%d", kind_name(kind), opts,
             (int)B, bf, rev, use_lengths);
    char msg[300];

    /* forward against the reference */
    double *ro = NEW(double, R * H), *rh = NEW(double, B * H);
    ref_forward(&p, ro, rh);
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = d->H; j < d->ldo; j++) p.out[r * d->ldo + j] = -7.0;
    int st = forward64(&p);
    double fe = max_abs_diff(p.hT, rh, B * H);
    int pad_ok = 1;
    for (int64_t r = 0; r < R; r++) {
        fe = fmax(fe, max_abs_diff(p.out + r * d->ldo, ro + r * H, H));
        for (int64_t j = d->H; j < d->ldo; j++) pad_ok &= p.out[r * d->ldo + j] == -7.0;
    }
    snprintf(msg, sizeof msg, "forward against the reference, %s: error %.3g", what, fe);
    check(st == RNN_OK && fe < 1e-12, msg);
    snprintf(msg, sizeof msg, "forward leaves the columns past H alone, %s", what);
    check(pad_ok, msg);

    /* backward */
    double *dout = make_dout(&p);
    double *dx = NEW(double, R * d->ldx), *dh0 = NEW(double, B * H), *dw = NEW(double, p.n_w);
    st = bwd_f64(&p, p.w, p.x, p.rec, p.zh, p.cache, dout, p.Sw, dx, dh0, dw, p.work);
    snprintf(msg, sizeof msg, "backward status, %s", what);
    check(st == RNN_OK, msg);
    int dxpad_ok = 1;
    for (int64_t r = 0; r < R; r++)
        for (int64_t i = d->I; i < d->ldx; i++) dxpad_ok &= dx[r * d->ldx + i] == 0.0;
    snprintf(msg, sizeof msg, "backward leaves the columns of dx past I alone, %s", what);
    check(dxpad_ok, msg);

    /* a second backward adds the same gradients again (the cache is only read) */
    double *dx2 = NEW(double, R * d->ldx), *dh02 = NEW(double, B * H), *dw2 = NEW(double, p.n_w);
    memcpy(dx2, dx, (size_t)(R * d->ldx) * sizeof(double));
    memcpy(dh02, dh0, (size_t)(B * H) * sizeof(double));
    memcpy(dw2, dw, (size_t)p.n_w * sizeof(double));
    st = bwd_f64(&p, p.w, p.x, p.rec, p.zh, p.cache, dout, p.Sw, dx2, dh02, dw2, p.work);
    double dbl = 0;
    for (int64_t k = 0; k < p.n_w; k++) dbl = fmax(dbl, fabs(dw2[k] - 2 * dw[k]));
    for (int64_t k = 0; k < R * d->ldx; k++) dbl = fmax(dbl, fabs(dx2[k] - 2 * dx[k]));
    for (int64_t k = 0; k < B * H; k++) dbl = fmax(dbl, fabs(dh02[k] - 2 * dh0[k]));
    snprintf(msg, sizeof msg, "second backward adds the same again, %s: %.3g", what, dbl);
    check(st == RNN_OK && dbl < 1e-12, msg);

    /* central differences */
    double worst = 0;
    for (int64_t k = 0; k < p.n_w; k++) {
        double num = numeric(&p, &p.w[k]);
        worst = fmax(worst, fabs(num - dw[k]) / fmax(1.0, fabs(num)));
    }
    for (int64_t r = 0; r < R; r++)
        for (int64_t i = 0; i < d->I; i++) {
            double num = numeric(&p, &p.x[r * d->ldx + i]);
            worst = fmax(worst, fabs(num - dx[r * d->ldx + i]) / fmax(1.0, fabs(num)));
        }
    for (int64_t k = 0; k < B * H; k++) {
        double num = numeric(&p, &p.h0[k]);
        worst = fmax(worst, fabs(num - dh0[k]) / fmax(1.0, fabs(num)));
    }
    snprintf(msg, sizeof msg, "gradient %s: error %.3g", what, worst);
    check(worst < 1e-7, msg);
    if (worst > worst_fd) {
        worst_fd = worst;
        snprintf(worst_fd_what, sizeof worst_fd_what, "%s", what);
    }
    free(ro); free(rh); free(dout); free(dx); free(dh0); free(dw); free(dx2); free(dh02); free(dw2);
    free_problem(&p);
}

/* a float32 copy (NULL for an absent mask) */
static float *to_f32(const double *a, int64_t n) {
    if (!a) return NULL;
    float *f = NEW(float, n);
    for (int64_t k = 0; k < n; k++) f[k] = (float)a[k];
    return f;
}

/* ---- masks that change nothing change no bit ---- */

static void identity_mask_check(int kind, int ln) {
    problem p;
    make_problem(&p, kind, (ln ? OPT_LN : 0) | OPT_ZH0 | OPT_REC, 5, 4, 3, 6, 0, 1, 1, 0);
    const rnn_dims *d = &p.d;
    int64_t R = rows(&p), H = d->H, B = d->B;
    for (int64_t k = 0; k < B * H; k++) p.rec[k] = 1.0;
    for (int64_t k = 0; k < H; k++) p.zh[k] = 0.0;
    double *dout = make_dout(&p);
    int64_t cl = rnn_ext_cache_len(kind, d, &p.cfg);
    double *out = NEW(double, R * d->ldo), *hT = NEW(double, B * H), *cache = NEW(double, cl);
    int st = fwd_f64(&p, p.w, p.x, p.h0, p.rec, p.zh, p.out, p.hT, p.cache, p.work);
    int opts = p.opts;
    p.opts &= OPT_LN;
    st |= fwd_f64(&p, p.w, p.x, p.h0, NULL, NULL, out, hT, cache, p.work);
    int same = memcmp(out, p.out, (size_t)(R * d->ldo) * sizeof(double)) == 0 &&
               memcmp(hT, p.hT, (size_t)(B * H) * sizeof(double)) == 0 &&
               memcmp(cache, p.cache, (size_t)cl * sizeof(double)) == 0;
    char msg[120];
    snprintf(msg, sizeof msg, "%s ln=%d: rec = 1 and zh = 0 give the maskless forward's bits",
             kind_name(kind), ln);
    check(st == RNN_OK && same, msg);
    double *dx = NEW(double, R * d->ldx), *dh0 = NEW(double, B * H), *dw = NEW(double, p.n_w);
    double *dx2 = NEW(double, R * d->ldx), *dh02 = NEW(double, B * H), *dw2 = NEW(double, p.n_w);
    st = bwd_f64(&p, p.w, p.x, NULL, NULL, cache, dout, p.Sw, dx, dh0, dw, p.work);
    p.opts = opts;
    st |= bwd_f64(&p, p.w, p.x, p.rec, p.zh, p.cache, dout, p.Sw, dx2, dh02, dw2, p.work);
    same = memcmp(dx, dx2, (size_t)(R * d->ldx) * sizeof(double)) == 0 &&
           memcmp(dh0, dh02, (size_t)(B * H) * sizeof(double)) == 0 &&
           memcmp(dw, dw2, (size_t)p.n_w * sizeof(double)) == 0;
    snprintf(msg, sizeof msg, "%s ln=%d: rec = 1 and zh = 0 give the maskless backward's bits",
             kind_name(kind), ln);
    check(st == RNN_OK && same, msg);

    /* a zoneout stride past H reads the same rows */
    p.opts = (p.opts & ~OPT_ZH0) | OPT_ZH;
    p.zh_ld = H;
    double *zf = NEW(double, R * H), *zw = NEW(double, R * (H + 3));
    for (int64_t k = 0; k < R * H; k++) zf[k] = 0.5 + 0.5 * uniform();
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < H + 3; j++) zw[r * (H + 3) + j] = j < H ? zf[r * H + j] : NAN;
    st = fwd_f64(&p, p.w, p.x, p.h0, p.rec, zf, out, hT, cache, p.work);
    p.zh_ld = H + 3;
    st |= fwd_f64(&p, p.w, p.x, p.h0, p.rec, zw, p.out, p.hT, p.cache, p.work);
    same = memcmp(out, p.out, (size_t)(R * d->ldo) * sizeof(double)) == 0 &&
           memcmp(hT, p.hT, (size_t)(B * H) * sizeof(double)) == 0;
    snprintf(msg, sizeof msg, "%s ln=%d: zh_ld = H + 3 reads the same mask rows", kind_name(kind), ln);
    check(st == RNN_OK && same, msg);
    free(zf); free(zw);
    free(dout); free(out); free(hT); free(cache); free(dx); free(dh0); free(dw); free(dx2);
    free(dh02); free(dw2);
    free_problem(&p);
}

/* ---- float32 against float64 ---- */

static void precision_check(int kind, int opts) {
    problem p;
    make_problem(&p, kind, opts, 6, 4, 5, 7, 1, 0, 1, 1);
    const rnn_dims *d = &p.d;
    int64_t R = rows(&p), H = d->H, B = d->B;
    /* float32-representable data, so both runs see the same inputs */
    for (int64_t k = 0; k < p.n_w; k++) p.w[k] = (float)p.w[k];
    for (int64_t k = 0; k < R * d->ldx; k++) p.x[k] = (float)p.x[k];
    for (int64_t k = 0; k < B * H; k++) { p.h0[k] = (float)p.h0[k]; p.Sw[k] = (float)p.Sw[k]; }
    for (int64_t k = 0; k < mask_len(&p); k++) p.zh[k] = (float)p.zh[k];
    for (int64_t k = 0; k < R * H; k++) p.Rw[k] = (float)p.Rw[k];
    double *dout = make_dout(&p);
    int st = forward64(&p);
    double *dx = NEW(double, R * d->ldx), *dh0 = NEW(double, B * H), *dw = NEW(double, p.n_w);
    st |= bwd_f64(&p, p.w, p.x, p.rec, p.zh, p.cache, dout, p.Sw, dx, dh0, dw, p.work);

    int64_t cl = rnn_ext_cache_len(kind, d, &p.cfg);
    int64_t wl = rnn_ext_forward_work_len(kind, d, &p.cfg), bl = rnn_ext_backward_work_len(kind, d, &p.cfg);
    float *wf = to_f32(p.w, p.n_w), *xf = to_f32(p.x, R * d->ldx), *h0f = to_f32(p.h0, B * H);
    float *recf = to_f32(p.rec, B * H), *zhf = to_f32(p.zh, mask_len(&p));
    float *doutf = to_f32(dout, R * d->ldo), *Sf = to_f32(p.Sw, B * H);
    float *o = NEW(float, R * d->ldo), *hT = NEW(float, B * H), *c = NEW(float, cl);
    float *wk = NEW(float, wl > bl ? wl : bl);
    float *gx = NEW(float, R * d->ldx), *gh = NEW(float, B * H), *gw = NEW(float, p.n_w);
    st |= fwd_f32(&p, wf, xf, h0f, recf, zhf, o, hT, c, wk);
    st |= bwd_f32(&p, wf, xf, recf, zhf, c, doutf, Sf, gx, gh, gw, wk);
    double fe = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < H; j++) fe = fmax(fe, fabs(o[r * d->ldo + j] - p.out[r * d->ldo + j]));
    for (int64_t k = 0; k < B * H; k++) fe = fmax(fe, fabs(hT[k] - p.hT[k]));
    /* gradients: error relative to the largest gradient of each array */
    double be = 0, s;
    s = 0; for (int64_t k = 0; k < p.n_w; k++) s = fmax(s, fabs(dw[k]));
    for (int64_t k = 0; k < p.n_w; k++) be = fmax(be, fabs(gw[k] - dw[k]) / fmax(s, 1e-30));
    s = 0; for (int64_t k = 0; k < R * d->ldx; k++) s = fmax(s, fabs(dx[k]));
    for (int64_t k = 0; k < R * d->ldx; k++) be = fmax(be, fabs(gx[k] - dx[k]) / fmax(s, 1e-30));
    s = 0; for (int64_t k = 0; k < B * H; k++) s = fmax(s, fabs(dh0[k]));
    for (int64_t k = 0; k < B * H; k++) be = fmax(be, fabs(gh[k] - dh0[k]) / fmax(s, 1e-30));
    char msg[160];
    snprintf(msg, sizeof msg, "%s opts=%d float32 against float64: forward %.3g, backward %.3g (relative)",
             kind_name(kind), opts, fe, be);
    check(st == RNN_OK && fe < 1e-5 && be < 1e-4, msg);
    printf("info: %s\n", msg);
    free(dout); free(dx); free(dh0); free(dw); free(wf); free(xf); free(h0f); free(recf); free(zhf);
    free(doutf); free(Sf); free(o); free(hT); free(c); free(wk); free(gx); free(gh); free(gw);
    free_problem(&p);
}

/* ---- threads = 2 against threads = 1, bit for bit ---- */

static void threads_check(int kind, int opts, int64_t B, int64_t H) {
    problem p;
    make_problem(&p, kind, opts, 3, B, 16, H, 0, 0, 1, 0);
    const rnn_dims *d = &p.d;
    int64_t R = rows(&p), cl = rnn_ext_cache_len(kind, d, &p.cfg);
    int64_t wl = rnn_ext_forward_work_len(kind, d, &p.cfg), bl = rnn_ext_backward_work_len(kind, d, &p.cfg);
    float *wf = to_f32(p.w, p.n_w), *xf = to_f32(p.x, R * d->ldx), *h0f = to_f32(p.h0, B * H);
    float *recf = to_f32(p.rec, B * H), *zhf = to_f32(p.zh, mask_len(&p));
    float *doutf = NEW(float, R * d->ldo), *Sf = to_f32(p.Sw, B * H);
    for (int64_t k = 0; k < R * H; k++) doutf[k] = (float)p.Rw[k];
    float *wk = NEW(float, wl > bl ? wl : bl);
    float *o[2], *hT[2], *c[2], *gx[2], *gh[2], *gw[2];
    int st = 0;
    for (int i = 0; i < 2; i++) {
        o[i] = NEW(float, R * d->ldo); hT[i] = NEW(float, B * H); c[i] = NEW(float, cl);
        gx[i] = NEW(float, R * d->ldx); gh[i] = NEW(float, B * H); gw[i] = NEW(float, p.n_w);
        p.threads = i + 1;
        st |= fwd_f32(&p, wf, xf, h0f, recf, zhf, o[i], hT[i], c[i], wk);
        st |= bwd_f32(&p, wf, xf, recf, zhf, c[i], doutf, Sf, gx[i], gh[i], gw[i], wk);
    }
    int same = memcmp(o[0], o[1], (size_t)(R * d->ldo) * sizeof(float)) == 0 &&
               memcmp(hT[0], hT[1], (size_t)(B * H) * sizeof(float)) == 0 &&
               memcmp(c[0], c[1], (size_t)cl * sizeof(float)) == 0 &&
               memcmp(gx[0], gx[1], (size_t)(R * d->ldx) * sizeof(float)) == 0 &&
               memcmp(gh[0], gh[1], (size_t)(B * H) * sizeof(float)) == 0 &&
               memcmp(gw[0], gw[1], (size_t)p.n_w * sizeof(float)) == 0;
    char msg[120];
    snprintf(msg, sizeof msg, "%s opts=%d B=%d H=%d: threads = 2 gives the bits of threads = 1",
             kind_name(kind), opts, (int)B, (int)H);
    check(st == RNN_OK && same, msg);
    for (int i = 0; i < 2; i++) { free(o[i]); free(hT[i]); free(c[i]); free(gx[i]); free(gh[i]); free(gw[i]); }
    free(wf); free(xf); free(h0f); free(recf); free(zhf); free(doutf); free(Sf); free(wk);
    free_problem(&p);
}

/* ---- status codes and sizes ---- */

static void status_checks(void) {
    problem p;
    make_problem(&p, RNN_CELL_GRU, OPT_LN | OPT_ZH | OPT_REC, 3, 2, 2, 4, 0, 0, 0, 0);
    rnn_dims d = p.d;
    rnn_ext_config cfg = p.cfg;
    rnn_ext_params_f64 prm;
    rnn_ext_grads_f64 g;
    rnn_ext_masks_f64 m;
    double *dw = NEW(double, p.n_w), *dx = NEW(double, 64), *dh0 = NEW(double, 16);
    params_f64(&p, p.w, &prm);
    grads_f64(&p, dw, &g);
    masks_f64(&p, p.rec, p.zh, &m);
    double *out = p.out, *hT = p.hT, *cache = p.cache, *work = p.work, *x = p.x;
    void *ws = p.gws;
#define GF(pp, mm, cc, ll, dd) gru_ext_forward_f64(out, hT, cache, x, NULL, pp, mm, cc, ll, dd, work, ws)
#define GB(gg, pp, mm, cc, ll, dd) \
    gru_ext_backward_f64(dx, dh0, gg, NULL, NULL, cache, x, pp, mm, cc, ll, dd, work, ws)
    check(GF(&prm, &m, &cfg, NULL, &d) == RNN_OK, "gru: a valid call succeeds");
    check(GB(&g, &prm, &m, &cfg, NULL, &d) == RNN_OK, "gru: a valid backward succeeds");
    check(GF(&prm, NULL, &cfg, NULL, &d) == RNN_OK, "gru: NULL masks are no masks");
    check(gru_ext_forward_f64(NULL, hT, cache, x, NULL, &prm, &m, &cfg, NULL, &d, work, ws) == RNN_ERR_NULL,
          "gru: NULL out gives RNN_ERR_NULL");
    check(gru_ext_forward_f64(out, hT, cache, x, NULL, &prm, &m, &cfg, NULL, &d, NULL, ws) == RNN_ERR_NULL,
          "gru: NULL work gives RNN_ERR_NULL");
    check(GF(NULL, &m, &cfg, NULL, &d) == RNN_ERR_NULL, "gru: NULL params give RNN_ERR_NULL");
    check(GF(&prm, &m, NULL, NULL, &d) == RNN_ERR_NULL, "gru: NULL config gives RNN_ERR_NULL");
    check(GF(&prm, &m, &cfg, NULL, NULL) == RNN_ERR_NULL, "gru: NULL dims give RNN_ERR_NULL");
    rnn_ext_params_f64 q = prm;
    q.ln_hh = NULL;
    check(GF(&q, &m, &cfg, NULL, &d) == RNN_ERR_NULL, "gru: layer norm without ln_hh gives RNN_ERR_NULL");
    check(GB(&g, &q, &m, &cfg, NULL, &d) == RNN_ERR_NULL, "gru: backward without ln_hh gives RNN_ERR_NULL");
    q = prm;
    q.b_hh = NULL;
    check(GF(&q, &m, &cfg, NULL, &d) == RNN_ERR_NULL, "gru: NULL b_hh gives RNN_ERR_NULL");
    rnn_ext_config c0 = {0, 0, 0, 0};
    q = prm;
    q.ln_ih = q.ln_hh = NULL;
    check(GF(&q, &m, &c0, NULL, &d) == RNN_OK, "gru: no layer norm needs no gains");
    rnn_ext_grads_f64 h = g;
    h.ln_ih = NULL;
    check(GB(&h, &prm, &m, &cfg, NULL, &d) == RNN_ERR_NULL, "gru: NULL grad ln_ih gives RNN_ERR_NULL");
    check(GB(&h, &prm, &m, &c0, NULL, &d) == RNN_OK, "gru: no layer norm needs no gain gradients");
    h = g;
    h.w_hh = NULL;
    check(GB(&h, &prm, &m, &cfg, NULL, &d) == RNN_ERR_NULL, "gru: NULL grad w_hh gives RNN_ERR_NULL");
    check(GB(NULL, &prm, &m, &cfg, NULL, &d) == RNN_ERR_NULL, "gru: NULL grads give RNN_ERR_NULL");
    check(gru_ext_backward_f64(dx, NULL, &g, NULL, NULL, cache, x, &prm, &m, &cfg, NULL, &d, work, ws) ==
              RNN_ERR_NULL, "gru: NULL dh0 gives RNN_ERR_NULL");
    rnn_ext_config bad = cfg;
    bad.P = 2;
    check(GF(&prm, &m, &bad, NULL, &d) == RNN_ERR_SIZE, "gru: a projection gives RNN_ERR_SIZE");
    bad = cfg;
    bad.peephole = 1;
    check(GF(&prm, &m, &bad, NULL, &d) == RNN_ERR_SIZE, "gru: peepholes give RNN_ERR_SIZE");
    bad = cfg;
    bad.relu = 1;
    check(GF(&prm, &m, &bad, NULL, &d) == RNN_ERR_SIZE, "gru: relu gives RNN_ERR_SIZE");
    rnn_dims e;
    int want;
    const char *what;
    for (int i = 0; harness_bad_dims(&d, i, &e, &want, &what); i++)
        check(GF(&prm, &m, &cfg, NULL, &e) == want, what);
    e = d;
    e.ldo = 3;
    check(GB(&g, &prm, &m, &cfg, NULL, &e) == RNN_ERR_LD, "gru: ldo < H gives RNN_ERR_LD");
    int64_t badlen[2] = {1, 4};
    check(GF(&prm, &m, &cfg, badlen, &d) == RNN_ERR_LENGTHS, "gru: length > T gives RNN_ERR_LENGTHS");
    badlen[1] = -1;
    check(GB(&g, &prm, &m, &cfg, badlen, &d) == RNN_ERR_LENGTHS,
          "gru: a negative length gives RNN_ERR_LENGTHS in backward");
    rnn_ext_masks_f64 mm = m;
    mm.zh_ld = 1;
    check(GF(&prm, &mm, &cfg, NULL, &d) == RNN_ERR_LD, "gru: 0 < zh_ld < H gives RNN_ERR_LD");
    check(GB(&g, &prm, &mm, &cfg, NULL, &d) == RNN_ERR_LD, "gru: 0 < zh_ld < H gives RNN_ERR_LD in backward");
    mm.zh_ld = -4;
    check(GF(&prm, &mm, &cfg, NULL, &d) == RNN_ERR_LD, "gru: a negative zh_ld gives RNN_ERR_LD");
    mm.zh_ld = INT64_MAX / 2;
    check(GF(&prm, &mm, &cfg, NULL, &d) == RNN_ERR_SIZE, "gru: an overflowing zh_ld gives RNN_ERR_SIZE");
    mm.zh = NULL;
    mm.zh_ld = -4;
    check(GF(&prm, &mm, &cfg, NULL, &d) == RNN_OK, "gru: zh_ld is not read without a zh mask");
#undef GF
#undef GB

    /* the RNN */
    rnn_ext_config rc = {0, 0, 0, 0};
    check(rnn_ext_forward_f64(out, hT, cache, x, NULL, &prm, &m, &rc, NULL, &d, work, ws) == RNN_OK,
          "rnn: a valid call succeeds");
    check(rnn_ext_backward_f64(dx, dh0, &g, NULL, NULL, cache, x, &prm, &m, &rc, NULL, &d, work, ws) ==
              RNN_OK, "rnn: a valid backward succeeds");
    rc.layer_norm = 1;
    check(rnn_ext_forward_f64(out, hT, cache, x, NULL, &prm, &m, &rc, NULL, &d, work, ws) == RNN_ERR_SIZE,
          "rnn: layer norm gives RNN_ERR_SIZE");
    rc.layer_norm = 0;
    rc.P = 1;
    check(rnn_ext_backward_f64(dx, dh0, &g, NULL, NULL, cache, x, &prm, &m, &rc, NULL, &d, work, ws) ==
              RNN_ERR_SIZE, "rnn: a projection gives RNN_ERR_SIZE");
    rc.P = 0;
    rc.peephole = 1;
    check(rnn_ext_forward_f64(out, hT, cache, x, NULL, &prm, &m, &rc, NULL, &d, work, ws) == RNN_ERR_SIZE,
          "rnn: peepholes give RNN_ERR_SIZE");
    rc.peephole = 0;
    q = prm;
    q.w_ih = NULL;
    check(rnn_ext_forward_f64(out, hT, cache, x, NULL, &q, &m, &rc, NULL, &d, work, ws) == RNN_ERR_NULL,
          "rnn: NULL w_ih gives RNN_ERR_NULL");
    check(rnn_ext_forward_f64(out, hT, cache, x, NULL, &prm, &m, NULL, NULL, &d, work, ws) == RNN_ERR_NULL,
          "rnn: NULL config gives RNN_ERR_NULL");
    h = g;
    h.b_ih = NULL;
    check(rnn_ext_backward_f64(dx, dh0, &h, NULL, NULL, cache, x, &prm, &m, &rc, NULL, &d, work, ws) ==
              RNN_ERR_NULL, "rnn: NULL grad b_ih gives RNN_ERR_NULL");
    check(rnn_ext_backward_f64(dx, dh0, &g, NULL, NULL, NULL, x, &prm, &m, &rc, NULL, &d, work, ws) ==
              RNN_ERR_NULL, "rnn: NULL cache gives RNN_ERR_NULL");
    mm = m;
    mm.zh_ld = 2;
    check(rnn_ext_forward_f64(out, hT, cache, x, NULL, &prm, &mm, &rc, NULL, &d, work, ws) == RNN_ERR_LD,
          "rnn: 0 < zh_ld < H gives RNN_ERR_LD");
    e = d;
    e.ts = 5;
    check(rnn_ext_forward_f64(out, hT, cache, x, NULL, &prm, &m, &rc, NULL, &e, work, ws) == RNN_ERR_SIZE,
          "rnn: strides of neither layout give RNN_ERR_SIZE");
    e = d;
    e.ldx = 1;
    check(rnn_ext_backward_f64(dx, dh0, &g, NULL, NULL, cache, x, &prm, &m, &rc, NULL, &e, work, ws) ==
              RNN_ERR_LD, "rnn: ldx < I gives RNN_ERR_LD in backward");
    check(rnn_ext_forward_f64(NULL, hT, cache, x, NULL, &prm, &m, &rc, NULL, &d, work, ws) == RNN_ERR_NULL,
          "rnn: NULL out gives RNN_ERR_NULL");
    check(rnn_ext_forward_f64(out, hT, cache, x, NULL, &prm, &m, &rc, NULL, NULL, work, ws) == RNN_ERR_NULL,
          "rnn: NULL dims give RNN_ERR_NULL");
    int64_t badlen3[2] = {1, 4};
    check(rnn_ext_forward_f64(out, hT, cache, x, NULL, &prm, &m, &rc, badlen3, &d, work, ws) == RNN_ERR_LENGTHS,
          "rnn: length > T gives RNN_ERR_LENGTHS");
    int64_t badlen2[2] = {0, 5};
    check(rnn_ext_backward_f64(dx, dh0, &g, NULL, NULL, cache, x, &prm, &m, &rc, badlen2, &d, work, ws) ==
              RNN_ERR_LENGTHS, "rnn: length > T gives RNN_ERR_LENGTHS in backward");

    /* sizes */
    int64_t R = d.T * d.B, H = d.H, B = d.B;
    rnn_ext_config z = {0, 0, 0, 0}, ln = {0, 0, 1, 0}, re = {0, 0, 0, 1};
    check(rnn_ext_cache_len(RNN_CELL_GRU, &d, &z) == 5 * R * H, "gru cache without layer norm is 5RH");
    check(rnn_ext_cache_len(RNN_CELL_GRU, &d, &ln) == 11 * R * H + 2 * R, "gru cache with layer norm is 11RH + 2R");
    check(rnn_ext_cache_len_gru(&d, &ln) == 11 * R * H + 2 * R, "rnn_ext_cache_len_gru matches the dispatch");
    check(rnn_ext_cache_len(RNN_CELL_TANH, &d, &z) == 2 * R * H, "tanh rnn cache is 2RH");
    check(rnn_ext_cache_len(99, &d, &z) == -1, "unknown kind has no cache size");
    check(rnn_ext_cache_len(RNN_CELL_RELU, &d, &re) == 2 * R * H, "relu rnn cache is 2RH");
    check(rnn_ext_cache_len(RNN_CELL_TANH, &d, &re) == -1, "tanh kind with cfg->relu has no size");
    check(rnn_ext_cache_len(RNN_CELL_RELU, &d, &z) == -1, "relu kind without cfg->relu has no size");
    check(rnn_ext_cache_len(RNN_CELL_TANH, &d, &ln) == -1, "rnn with layer norm has no size");
    check(rnn_ext_cache_len_rnn(&d, &ln) == -1, "rnn_ext_cache_len_rnn rejects layer norm");
    check(rnn_ext_forward_work_len(99, &d, &z) == -1, "unknown kind has no size");
    check(rnn_ext_forward_work_len_gru(NULL, &z) == -1 && rnn_ext_backward_work_len_rnn(&d, NULL) == -1,
          "NULL dims or config have no size");
    /* the forward's scratch: the step's arrays and packed W_hh, then (where
     * the input projection runs in blocks) a block of Tc steps' projection,
     * their rows of x, packed W_ih */
    int blk = rnn_proj_blocks(&d, 3 * H);
    int64_t tc = blk ? rnn_ext_proj_steps(&d, 3 * H) : 0;
    check(rnn_ext_forward_work_len(RNN_CELL_GRU, &d, &ln) ==
              4 * B * H + rnn_gemm_packed_len(3 * H, H) + tc * B * (3 * H + d.I) +
                  (blk ? rnn_gemm_packed_len(3 * H, d.I) : 0),
          "gru forward scratch");
    blk = rnn_proj_blocks(&d, H);
    tc = blk ? rnn_ext_proj_steps(&d, H) : 0;
    check(rnn_ext_forward_work_len(RNN_CELL_TANH, &d, &z) ==
              2 * B * H + rnn_gemm_packed_len(H, H) + tc * B * (H + d.I) +
                  (blk ? rnn_gemm_packed_len(H, d.I) : 0),
          "rnn forward scratch");
    /* the backward's: dU, dV of one block of all R rows, or of Tb steps and
     * then the block's gathered rows of x, m_b*h and dx */
    int64_t tb = rnn_bwd_block_steps(&d, 3 * H), rb = tb >= d.T ? R : tb * B;
    check(rnn_ext_backward_work_len(RNN_CELL_GRU, &d, &z) ==
              6 * rb * H + 5 * B * H + rnn_gemm_packed_len(H, 3 * H) +
                  (tb >= d.T ? 0 : rb * (2 * d.I + H)),
          "gru backward scratch");
    tb = rnn_bwd_block_steps(&d, H);
    rb = tb >= d.T ? R : tb * B;
    check(rnn_ext_backward_work_len(RNN_CELL_TANH, &d, &z) ==
              rb * H + 3 * B * H + rnn_gemm_packed_len(H, H) + (tb >= d.T ? 0 : rb * (2 * d.I + H)),
          "rnn backward scratch");
    rnn_dims big = d;
    big.H = INT64_MAX / 8;
    big.ldo = big.H;
    check(rnn_ext_cache_len(RNN_CELL_GRU, &big, &ln) == -1 && rnn_ext_backward_work_len(RNN_CELL_TANH, &big, &z) == -1,
          "overflowing H has no size");
    rnn_dims one = d;
    one.B = 1;
    one.ts = 1;
    /* B = 1 packs W_hh too: the packed row-vector product is the fast one */
    blk = rnn_proj_blocks(&one, 3 * H);
    tc = blk ? rnn_ext_proj_steps(&one, 3 * H) : 0;
    check(rnn_ext_forward_work_len(RNN_CELL_GRU, &one, &z) ==
              4 * H + rnn_gemm_packed_len(3 * H, H) + tc * (3 * H + one.I) +
                  (blk ? rnn_gemm_packed_len(3 * H, one.I) : 0),
          "B = 1 holds packed W_hh");
    free(dw); free(dx); free(dh0);
    free_problem(&p);
}

int main(void) {
    status_checks();

    /* each option alone and all together, both layouts, both directions, ragged or not */
    const int gru_opts[] = {0, OPT_LN, OPT_ZH, OPT_ZH0, OPT_REC, OPT_LN | OPT_ZH | OPT_REC,
                            OPT_LN | OPT_ZH0 | OPT_REC};
    const int rnn_opts[] = {0, OPT_ZH, OPT_ZH0, OPT_REC, OPT_ZH | OPT_REC, OPT_ZH0 | OPT_REC};
    for (int bf = 0; bf < 2; bf++)
        for (int rev = 0; rev < 2; rev++)
            for (int len = 0; len < 2; len++) {
                for (int o = 0; o < 7; o++) gradient_check(RNN_CELL_GRU, gru_opts[o], 3, bf, rev, len);
                for (int o = 0; o < 6; o++) {
                    gradient_check(RNN_CELL_TANH, rnn_opts[o], 3, bf, rev, len);
                    gradient_check(RNN_CELL_RELU, rnn_opts[o], 3, bf, rev, len);
                }
            }
    /* B = 1 (the unpacked row-vector step product), all options */
    for (int bf = 0; bf < 2; bf++)
        for (int rev = 0; rev < 2; rev++) {
            gradient_check(RNN_CELL_GRU, OPT_LN | OPT_ZH | OPT_REC, 1, bf, rev, rev);
            gradient_check(RNN_CELL_TANH, OPT_ZH | OPT_REC, 1, bf, rev, rev);
            gradient_check(RNN_CELL_RELU, OPT_ZH0 | OPT_REC, 1, bf, rev, !rev);
        }
    /* B > 3, so the packed step product sees several rows of each kind of length */
    gradient_check(RNN_CELL_GRU, OPT_LN | OPT_ZH | OPT_REC, 7, 0, 1, 1);
    gradient_check(RNN_CELL_RELU, OPT_ZH | OPT_REC, 7, 1, 0, 1);
    printf("info: largest gradient error %.3g (%s)\n", worst_fd, worst_fd_what);

    const int kinds[] = {RNN_CELL_GRU, RNN_CELL_TANH, RNN_CELL_RELU};
    for (int k = 0; k < 3; k++) {
        identity_mask_check(kinds[k], 0);
        precision_check(kinds[k], 0); /* the zero config */
    }
    identity_mask_check(RNN_CELL_GRU, 1);

    precision_check(RNN_CELL_GRU, OPT_LN | OPT_ZH | OPT_REC);
    precision_check(RNN_CELL_GRU, OPT_LN | OPT_ZH0);
    precision_check(RNN_CELL_TANH, OPT_ZH | OPT_REC);
    precision_check(RNN_CELL_RELU, OPT_ZH0 | OPT_REC);

    threads_check(RNN_CELL_GRU, OPT_LN | OPT_ZH | OPT_REC, 64, 192);
    threads_check(RNN_CELL_GRU, 0, 64, 192);
    threads_check(RNN_CELL_TANH, OPT_ZH | OPT_REC, 128, 256);

    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
