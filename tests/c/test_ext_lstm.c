/*
 * test_ext_lstm.c: the extended LSTM kernel (csrc/lstm_ext.c, contract in
 * csrc/cells_ext.h) on its own, with no Python: status codes for bad
 * arguments and configs; float64 backward against central differences of
 * forward for each option alone and all together (peepholes, projection,
 * layer norm, zoneout with per-step and shared masks, recurrent dropout),
 * both layouts, both directions, ragged lengths with a zero length, B = 1
 * (every layout, direction and lengths for the zero config and peepholes);
 * float32 against float64; backward twice adds twice; threads = 2 gives
 * the bits of threads = 1. Built and run (also under AddressSanitizer and
 * UBSan) by tests/kernels/test_c_kernels.py:
 *
 *   gcc -std=c11 -O2 -Wall -Wextra -Werror -Icsrc csrc/gemm.c csrc/pool.c csrc/rnn_common.c \
 *       csrc/rnn_ext_common.c csrc/rnn_ext.c csrc/lstm_ext.c csrc/gru_ext.c \
 *       tests/c/test_ext_lstm.c -lm -pthread
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

#define HARNESS_SEED 0x9E3779B97F4A7C15ULL
#include "harness.h"

static double worst_fd; /* the largest finite-difference error seen */
#define DALLOC(n) ((double *)xmalloc((size_t)(n) * sizeof(double)))
#define FALLOC(n) ((float *)xmalloc((size_t)(n) * sizeof(float)))

/* The GEMM workspace of every call (two threads' worth), made once: a
 * fresh megabyte per forward would dominate the run under ASan. */
static void *ws_raw;
static void *gemm_ws(void) {
    if (!ws_raw) ws_raw = xmalloc(2 * rnn_gemm_workspace_size() + 64);
    return (void *)(((uintptr_t)ws_raw + 63) & ~(uintptr_t)63);
}

/* Zoneout modes of a problem. */
enum { ZO_NONE = 0, ZO_STEP = 1, ZO_SHARED = 2, ZO_H_ONLY = 3, ZO_C_ONLY = 4 };

/* One problem: sizes, layout, options, masks and every array in float64. */
typedef struct {
    rnn_ext_config cfg;
    rnn_dims d;
    int64_t lengths[64];
    int use_lengths;
    int64_t Hs, G, R;
    /* parameters, back to back in w: offsets (-1 = option off) */
    int64_t o_ih, o_hh, o_bih, o_bhh, o_peep, o_hr, o_lnih, o_lnhh, o_lnc, n_w;
    double *w, *x, *h0, *c0;
    double *rec, *zh, *zc; /* NULL = off */
    int64_t zh_ld, zc_ld;
    double *Rw, *S, *U; /* loss weights for out (R, Hs), hT (B, Hs), cT (B, H) */
} problem;

typedef struct {
    int peep, P, ln, zo, rec, binary; /* binary: training-like 0/1 masks */
} options;

static void make_problem(problem *p, options o, int64_t T, int64_t B, int64_t I, int64_t H,
                         int batch_first, int reverse, int use_lengths, int pad) {
    memset(p, 0, sizeof *p);
    p->cfg = (rnn_ext_config){.P = o.P, .peephole = o.peep, .layer_norm = o.ln, .relu = 0};
    int64_t Hs = o.P > 0 ? o.P : H, G = 4 * H, R = T * B;
    p->Hs = Hs;
    p->G = G;
    p->R = R;
    p->d = (rnn_dims){.T = T, .B = B, .I = I, .H = H, .ts = batch_first ? 1 : B,
                      .bs = batch_first ? T : 1, .ldx = I + pad, .ldo = Hs + pad,
                      .reverse = reverse, .threads = 1};
    p->use_lengths = use_lengths;
    for (int64_t b = 0; b < B; b++) p->lengths[b] = (b * 7 + 3) % (T + 1);
    if (B > 1) p->lengths[1] = 0; /* always one empty sequence when ragged */
    int64_t n = 0;
    p->o_ih = n; n += G * I;
    p->o_hh = n; n += G * Hs;
    p->o_bih = n; n += G;
    p->o_bhh = n; n += G;
    p->o_peep = o.peep ? n : -1; n += o.peep ? 3 * H : 0;
    p->o_hr = o.P > 0 ? n : -1; n += o.P > 0 ? o.P * H : 0;
    p->o_lnih = o.ln ? n : -1; n += o.ln ? G : 0;
    p->o_lnhh = o.ln ? n : -1; n += o.ln ? G : 0;
    p->o_lnc = o.ln ? n : -1; n += o.ln ? 2 * H : 0;
    p->n_w = n;
    p->w = DALLOC(n);
    for (int64_t k = 0; k < n; k++) p->w[k] = 0.6 * uniform();
    if (o.ln) {
        for (int64_t k = 0; k < G; k++) {
            p->w[p->o_lnih + k] = 1 + 0.3 * uniform();
            p->w[p->o_lnhh + k] = 1 + 0.3 * uniform();
        }
        for (int64_t k = 0; k < H; k++) p->w[p->o_lnc + k] = 1 + 0.3 * uniform();
    }
    p->x = DALLOC(R * p->d.ldx);
    for (int64_t k = 0; k < R * p->d.ldx; k++) p->x[k] = uniform();
    p->h0 = DALLOC(B * Hs);
    p->c0 = DALLOC(B * H);
    p->S = DALLOC(B * Hs);
    p->U = DALLOC(B * H);
    p->Rw = DALLOC(R * Hs);
    for (int64_t k = 0; k < B * Hs; k++) { p->h0[k] = 0.5 * uniform(); p->S[k] = uniform(); }
    for (int64_t k = 0; k < B * H; k++) { p->c0[k] = 0.5 * uniform(); p->U[k] = uniform(); }
    for (int64_t k = 0; k < R * Hs; k++) p->Rw[k] = uniform();
    if (o.rec) {
        p->rec = DALLOC(B * Hs);
        for (int64_t k = 0; k < B * Hs; k++)
            p->rec[k] = o.binary ? (uniform() < -0.4 ? 0.0 : 1 / 0.7) : 1 + 0.5 * uniform();
    }
    if (o.zo != ZO_NONE) {
        int shared = o.zo == ZO_SHARED;
        int64_t rows = shared ? 1 : R;
        if (o.zo != ZO_C_ONLY) {
            p->zh_ld = shared ? 0 : Hs + pad;
            p->zh = DALLOC(rows * (Hs + pad));
            for (int64_t k = 0; k < rows * (Hs + pad); k++)
                p->zh[k] = o.binary ? (uniform() < 0 ? 0.0 : 1.0) : 0.5 + 0.5 * uniform();
        }
        if (o.zo != ZO_H_ONLY) {
            p->zc_ld = shared ? 0 : H + pad;
            p->zc = DALLOC(rows * (H + pad));
            for (int64_t k = 0; k < rows * (H + pad); k++)
                p->zc[k] = o.binary ? (uniform() < 0 ? 0.0 : 1.0) : 0.5 + 0.5 * uniform();
        }
    }
}

static void free_problem(problem *p) {
    free(p->w); free(p->x); free(p->h0); free(p->c0); free(p->rec); free(p->zh); free(p->zc);
    free(p->Rw); free(p->S); free(p->U);
}

#define PARAM(base, off) ((off) < 0 ? NULL : (base) + (off))
/* the fields of rnn_ext_params / rnn_ext_grads, in order, inside w */
#define PARAMS_AT(w, p)                                                                   \
    PARAM(w, (p)->o_ih), PARAM(w, (p)->o_hh), PARAM(w, (p)->o_bih), PARAM(w, (p)->o_bhh), \
        PARAM(w, (p)->o_peep), PARAM(w, (p)->o_hr), PARAM(w, (p)->o_lnih),                \
        PARAM(w, (p)->o_lnhh), PARAM(w, (p)->o_lnc)

static rnn_ext_params_f64 params64(const problem *p, const double *w) {
    return (rnn_ext_params_f64){PARAMS_AT(w, p)};
}
static rnn_ext_grads_f64 grads64(const problem *p, double *w) {
    return (rnn_ext_grads_f64){PARAMS_AT(w, p)};
}
static rnn_ext_params_f32 params32(const problem *p, const float *w) {
    return (rnn_ext_params_f32){PARAMS_AT(w, p)};
}
static rnn_ext_grads_f32 grads32(const problem *p, float *w) {
    return (rnn_ext_grads_f32){PARAMS_AT(w, p)};
}
static rnn_ext_masks_f64 masks64(const problem *p) {
    return (rnn_ext_masks_f64){p->rec, p->zh, p->zh_ld, p->zc, p->zc_ld};
}

static const int64_t *lens_of(const problem *p) { return p->use_lengths ? p->lengths : NULL; }

static double loss_of(const problem *p, const double *out, const double *hT, const double *cT) {
    const rnn_dims *d = &p->d;
    double L = 0;
    for (int64_t r = 0; r < p->R; r++)
        for (int64_t j = 0; j < p->Hs; j++) L += out[r * d->ldo + j] * p->Rw[r * p->Hs + j];
    for (int64_t k = 0; k < d->B * p->Hs; k++) L += hT[k] * p->S[k];
    for (int64_t k = 0; k < d->B * d->H; k++) L += cT[k] * p->U[k];
    return L;
}

/* The float64 results of one problem: forward outputs, cache, gradients. */
typedef struct {
    double *out, *hT, *cT, *cache;
    double *dx, *dh0, *dc0, *dw;
    int st_f, st_b;
} result64;

static void free_result64(result64 *r) {
    free(r->out); free(r->hT); free(r->cT); free(r->cache);
    free(r->dx); free(r->dh0); free(r->dc0); free(r->dw);
}

/* Forward (and backward when grads) of the extended kernel in float64. */
static result64 run64(const problem *p, int grads) {
    const rnn_dims *d = &p->d;
    result64 res;
    memset(&res, 0, sizeof res);
    int64_t B = d->B, H = d->H;
    res.out = DALLOC(p->R * d->ldo);
    res.hT = DALLOC(B * p->Hs);
    res.cT = DALLOC(B * H);
    res.cache = DALLOC(rnn_ext_cache_len_lstm(d, &p->cfg));
    void *gws = gemm_ws();
    double *work = DALLOC(rnn_ext_forward_work_len_lstm(d, &p->cfg));
    rnn_ext_params_f64 prm = params64(p, p->w);
    rnn_ext_masks_f64 m = masks64(p);
    res.st_f = lstm_ext_forward_f64(res.out, res.hT, res.cT, res.cache, p->x, p->h0, p->c0, &prm,
                                    &m, &p->cfg, lens_of(p), d, work, gws);
    free(work);
    if (grads) {
        res.dx = DALLOC(p->R * d->ldx);
        res.dh0 = DALLOC(B * p->Hs);
        res.dc0 = DALLOC(B * H);
        res.dw = DALLOC(p->n_w);
        rnn_ext_grads_f64 g = grads64(p, res.dw);
        work = DALLOC(rnn_ext_backward_work_len_lstm(d, &p->cfg));
        res.st_b = lstm_ext_backward_f64(res.dx, res.dh0, res.dc0, &g, p->Rw, p->S, p->U, res.cache,
                                         p->x, &prm, &m, &p->cfg, lens_of(p), d, work, gws);
        free(work);
    }
   
    return res;
}

/* dout as the kernel reads it: Rw spread over rows of ldo. */
static double *dout_of(const problem *p) {
    double *g = DALLOC(p->R * p->d.ldo);
    for (int64_t r = 0; r < p->R; r++)
        memcpy(g + r * p->d.ldo, p->Rw + r * p->Hs, (size_t)p->Hs * sizeof(double));
    return g;
}

static double loss64(const problem *p) {
    result64 r = run64(p, 0);
    double L = loss_of(p, r.out, r.hT, r.cT);
    free_result64(&r);
    return L;
}

static double numeric(problem *p, double *entry) {
    const double eps = 1e-6;
    double old = *entry;
    *entry = old + eps;
    double lp = loss64(p);
    *entry = old - eps;
    double lm = loss64(p);
    *entry = old;
    return (lp - lm) / (2 * eps);
}

static double rel_err(double num, double ana) { return fabs(num - ana) / fmax(1.0, fabs(num)); }

static void describe(char *buf, size_t n, const problem *p, const char *what) {
    snprintf(buf, n,
             "%s: peep=%d P=%lld ln=%d zh=%s zc=%s rec=%d T=%lld B=%lld H=%lld bf=%d rev=%d len=%d",
             what, p->cfg.peephole, (long long)p->cfg.P, p->cfg.layer_norm,
             p->zh ? (p->zh_ld ? "step" : "shared") : "off",
             p->zc ? (p->zc_ld ? "step" : "shared") : "off", p->rec != NULL, (long long)p->d.T,
             (long long)p->d.B, (long long)p->d.H, p->d.bs == p->d.T && p->d.B > 1, p->d.reverse,
             p->use_lengths);
}

static void gradient_check(options o, int64_t T, int64_t B, int64_t I, int64_t H, int bf, int rev,
                           int len, int pad) {
    problem p;
    make_problem(&p, o, T, B, I, H, bf, rev, len, pad);
    /* the kernel reads dout through ldo; the loss reads Rw (R, Hs) */
    double *gout = dout_of(&p);
    result64 res;
    {
        const rnn_dims *d = &p.d;
        res = run64(&p, 0);
        res.dx = DALLOC(p.R * d->ldx);
        res.dh0 = DALLOC(d->B * p.Hs);
        res.dc0 = DALLOC(d->B * d->H);
        res.dw = DALLOC(p.n_w);
        rnn_ext_grads_f64 g = grads64(&p, res.dw);
        rnn_ext_params_f64 prm = params64(&p, p.w);
        rnn_ext_masks_f64 m = masks64(&p);
        void *gws = gemm_ws();
        double *work = DALLOC(rnn_ext_backward_work_len_lstm(d, &p.cfg));
        res.st_b = lstm_ext_backward_f64(res.dx, res.dh0, res.dc0, &g, gout, p.S, p.U, res.cache,
                                         p.x, &prm, &m, &p.cfg, lens_of(&p), d, work, gws);
        /* a second backward adds the same gradients again */
        double *dw2 = DALLOC(p.n_w), *dx2 = DALLOC(p.R * d->ldx);
        double *dh2 = DALLOC(d->B * p.Hs), *dc2 = DALLOC(d->B * d->H);
        memcpy(dw2, res.dw, (size_t)p.n_w * sizeof(double));
        memcpy(dx2, res.dx, (size_t)(p.R * d->ldx) * sizeof(double));
        memcpy(dh2, res.dh0, (size_t)(d->B * p.Hs) * sizeof(double));
        memcpy(dc2, res.dc0, (size_t)(d->B * d->H) * sizeof(double));
        rnn_ext_grads_f64 g2 = grads64(&p, dw2);
        int st2 = lstm_ext_backward_f64(dx2, dh2, dc2, &g2, gout, p.S, p.U, res.cache, p.x, &prm,
                                        &m, &p.cfg, lens_of(&p), d, work, gws);
        double dbl = 0;
        for (int64_t k = 0; k < p.n_w; k++) dbl = fmax(dbl, fabs(dw2[k] - 2 * res.dw[k]));
        for (int64_t k = 0; k < p.R * d->ldx; k++) dbl = fmax(dbl, fabs(dx2[k] - 2 * res.dx[k]));
        for (int64_t k = 0; k < d->B * p.Hs; k++) dbl = fmax(dbl, fabs(dh2[k] - 2 * res.dh0[k]));
        for (int64_t k = 0; k < d->B * d->H; k++) dbl = fmax(dbl, fabs(dc2[k] - 2 * res.dc0[k]));
        char what[256];
        describe(what, sizeof what, &p, "second backward adds the same again");
        check(st2 == RNN_OK && dbl < 1e-12, what);
        free(dw2); free(dx2); free(dh2); free(dc2); free(work);
    }
    char what[320], base[256];
    describe(base, sizeof base, &p, "gradient");
    check(res.st_f == RNN_OK && res.st_b == RNN_OK, base);

    /* padded rows of out are zero, padding columns untouched (zero) */
    int pad_ok = 1;
    for (int64_t b = 0; b < p.d.B; b++)
        for (int64_t t = 0; t < p.d.T; t++) {
            int64_t r = t * p.d.ts + b * p.d.bs;
            int ended = p.use_lengths && t >= p.lengths[b];
            for (int64_t j = 0; j < p.d.ldo; j++)
                if ((ended || j >= p.Hs) && res.out[r * p.d.ldo + j] != 0) pad_ok = 0;
        }
    describe(what, sizeof what, &p, "padded steps and columns of out are zero");
    check(pad_ok, what);

    double worst = 0;
    const char *where = "";
    for (int64_t k = 0; k < p.n_w; k++) {
        double e = rel_err(numeric(&p, &p.w[k]), res.dw[k]);
        if (e > worst) {
            worst = e;
            where = k >= p.o_lnih && p.o_lnih >= 0 ? "ln" : k >= p.o_hr && p.o_hr >= 0 ? "w_hr"
                  : k >= p.o_peep && p.o_peep >= 0 ? "peep" : k >= p.o_bih ? "bias"
                  : k >= p.o_hh ? "w_hh" : "w_ih";
        }
    }
    for (int64_t r = 0; r < p.R; r++)
        for (int64_t j = 0; j < p.d.I; j++) {
            int64_t k = r * p.d.ldx + j;
            double e = rel_err(numeric(&p, &p.x[k]), res.dx[k]);
            if (e > worst) { worst = e; where = "x"; }
        }
    for (int64_t k = 0; k < p.d.B * p.Hs; k++) {
        double e = rel_err(numeric(&p, &p.h0[k]), res.dh0[k]);
        if (e > worst) { worst = e; where = "h0"; }
    }
    for (int64_t k = 0; k < p.d.B * p.d.H; k++) {
        double e = rel_err(numeric(&p, &p.c0[k]), res.dc0[k]);
        if (e > worst) { worst = e; where = "c0"; }
    }
    if (worst > worst_fd) worst_fd = worst;
    snprintf(what, sizeof what, "%s: error %.3g (in %s)", base, worst, where);
    check(worst < 1e-6, what);
    free_result64(&res);
    free(gout);
    free_problem(&p);
}

/* float32 forward and backward against float64 on float32-representable data. */
static void precision_check(options o, int64_t H) {
    problem p;
    make_problem(&p, o, 6, 4, 5, H, 0, 1, 1, 1);
    const rnn_dims *d = &p.d;
    int64_t B = d->B, R = p.R, Hs = p.Hs, ldx = d->ldx, ldo = d->ldo;
    double *arrays[] = {p.w, p.x, p.h0, p.c0, p.rec, p.zh, p.zc, p.Rw, p.S, p.U};
    int64_t counts[] = {p.n_w, R * ldx, B * Hs, B * H, p.rec ? B * Hs : 0,
                        p.zh ? (p.zh_ld ? R * p.zh_ld : Hs) : 0,
                        p.zc ? (p.zc_ld ? R * p.zc_ld : H) : 0, R * Hs, B * Hs, B * H};
    float *f[10];
    for (int a = 0; a < 10; a++) {
        f[a] = FALLOC(counts[a]);
        for (int64_t k = 0; k < counts[a]; k++) {
            f[a][k] = (float)arrays[a][k];
            arrays[a][k] = f[a][k];
        }
    }
    double *gout = dout_of(&p);
    float *gout32 = FALLOC(R * ldo);
    for (int64_t k = 0; k < R * ldo; k++) gout32[k] = (float)gout[k];
    problem q = p;
    q.Rw = gout;
    result64 r64 = run64(&q, 1);

    float *out = FALLOC(R * ldo), *hT = FALLOC(B * Hs), *cT = FALLOC(B * H);
    float *cache = FALLOC(rnn_ext_cache_len_lstm(d, &p.cfg));
    float *work = FALLOC(rnn_ext_backward_work_len_lstm(d, &p.cfg) +
                         rnn_ext_forward_work_len_lstm(d, &p.cfg));
    void *gws = gemm_ws();
    rnn_ext_params_f32 prm = params32(&p, f[0]);
    rnn_ext_masks_f32 m = {f[4], f[5], p.zh_ld, f[6], p.zc_ld};
    if (!p.rec) m.rec = NULL;
    if (!p.zh) m.zh = NULL;
    if (!p.zc) m.zc = NULL;
    int st = lstm_ext_forward_f32(out, hT, cT, cache, f[1], f[2], f[3], &prm, &m, &p.cfg,
                                  lens_of(&p), d, work, gws);
    float *dx = FALLOC(R * ldx), *dh0 = FALLOC(B * Hs), *dc0 = FALLOC(B * H), *dw = FALLOC(p.n_w);
    rnn_ext_grads_f32 g = grads32(&p, dw);
    st |= lstm_ext_backward_f32(dx, dh0, dc0, &g, gout32, f[8], f[9], cache, f[1], &prm, &m,
                                &p.cfg, lens_of(&p), d, work, gws);
    double ef = 0, eb = 0;
    for (int64_t k = 0; k < R * ldo; k++) ef = fmax(ef, fabs(out[k] - r64.out[k]));
    for (int64_t k = 0; k < B * Hs; k++) ef = fmax(ef, fabs(hT[k] - r64.hT[k]));
    for (int64_t k = 0; k < B * H; k++) ef = fmax(ef, fabs(cT[k] - r64.cT[k]));
    for (int64_t k = 0; k < p.n_w; k++) eb = fmax(eb, rel_err(r64.dw[k], dw[k]));
    for (int64_t k = 0; k < R * ldx; k++) eb = fmax(eb, rel_err(r64.dx[k], dx[k]));
    for (int64_t k = 0; k < B * Hs; k++) eb = fmax(eb, rel_err(r64.dh0[k], dh0[k]));
    for (int64_t k = 0; k < B * H; k++) eb = fmax(eb, rel_err(r64.dc0[k], dc0[k]));
    char what[320], base[256];
    describe(base, sizeof base, &p, "float32 against float64");
    snprintf(what, sizeof what, "%s: forward %.3g, backward %.3g", base, ef, eb);
    check(st == RNN_OK && r64.st_f == RNN_OK && r64.st_b == RNN_OK && ef < 1e-5 && eb < 1e-4,
          what);
    for (int a = 0; a < 10; a++) free(f[a]);
    free(gout); free(gout32); free(out); free(hT); free(cT); free(cache); free(work); free(dx);
    free(dh0); free(dc0); free(dw);
    free_result64(&r64);
    free_problem(&p);
}

/* threads = 2 gives the bits of threads = 1 (float32 and float64), with
 * rows wide enough that both the step products and the row loops split. */
static void threads_check(options o) {
    problem p;
    make_problem(&p, o, 2, 32, 8, 256, 1, 0, 1, 0);
    const rnn_dims *d = &p.d;
    int64_t B = d->B, R = p.R, Hs = p.Hs, H = d->H;
    double *gout = dout_of(&p);
    problem q = p;
    q.Rw = gout;
    result64 a = run64(&q, 1);
    q.d.threads = 2;
    q.d.pool = harness_pool();
    result64 b = run64(&q, 1);
    int same = a.st_f == RNN_OK && a.st_b == RNN_OK && b.st_f == RNN_OK && b.st_b == RNN_OK;
    same = same && !memcmp(a.out, b.out, (size_t)(R * d->ldo) * sizeof(double));
    same = same && !memcmp(a.hT, b.hT, (size_t)(B * Hs) * sizeof(double));
    same = same && !memcmp(a.cT, b.cT, (size_t)(B * H) * sizeof(double));
    same = same && !memcmp(a.dx, b.dx, (size_t)(R * d->ldx) * sizeof(double));
    same = same && !memcmp(a.dh0, b.dh0, (size_t)(B * Hs) * sizeof(double));
    same = same && !memcmp(a.dc0, b.dc0, (size_t)(B * H) * sizeof(double));
    same = same && !memcmp(a.dw, b.dw, (size_t)p.n_w * sizeof(double));
    char what[256];
    describe(what, sizeof what, &p, "float64 threads=2 equals threads=1 bit for bit");
    check(same, what);
    free_result64(&a);
    free_result64(&b);

    /* float32 */
    float *w = FALLOC(p.n_w), *x = FALLOC(R * d->ldx), *go = FALLOC(R * d->ldo);
    for (int64_t k = 0; k < p.n_w; k++) w[k] = (float)p.w[k];
    for (int64_t k = 0; k < R * d->ldx; k++) x[k] = (float)p.x[k];
    for (int64_t k = 0; k < R * d->ldo; k++) go[k] = (float)gout[k];
    float *rec = NULL, *zh = NULL, *zc = NULL;
    if (p.rec) { rec = FALLOC(B * Hs); for (int64_t k = 0; k < B * Hs; k++) rec[k] = (float)p.rec[k]; }
    if (p.zh) {
        int64_t n = p.zh_ld ? R * p.zh_ld : Hs;
        zh = FALLOC(n);
        for (int64_t k = 0; k < n; k++) zh[k] = (float)p.zh[k];
    }
    if (p.zc) {
        int64_t n = p.zc_ld ? R * p.zc_ld : H;
        zc = FALLOC(n);
        for (int64_t k = 0; k < n; k++) zc[k] = (float)p.zc[k];
    }
    rnn_ext_masks_f32 m = {rec, zh, p.zh_ld, zc, p.zc_ld};
    rnn_ext_params_f32 prm = params32(&p, w);
    float *res[2][7];
    int st = 0;
    for (int t = 0; t < 2; t++) {
        rnn_dims dt = *d;
        dt.threads = t + 1;
        dt.pool = harness_pool();
        void *gws = gemm_ws();
        float *out = FALLOC(R * d->ldo), *hT = FALLOC(B * Hs), *cT = FALLOC(B * H);
        float *cache = FALLOC(rnn_ext_cache_len_lstm(&dt, &p.cfg));
        float *work = FALLOC(rnn_ext_backward_work_len_lstm(&dt, &p.cfg) +
                             rnn_ext_forward_work_len_lstm(&dt, &p.cfg));
        float *dx = FALLOC(R * d->ldx), *dh0 = FALLOC(B * Hs), *dc0 = FALLOC(B * H);
        float *dw = FALLOC(p.n_w);
        rnn_ext_grads_f32 g = grads32(&p, dw);
        st |= lstm_ext_forward_f32(out, hT, cT, cache, x, NULL, NULL, &prm, &m, &p.cfg,
                                   lens_of(&p), &dt, work, gws);
        st |= lstm_ext_backward_f32(dx, dh0, dc0, &g, go, NULL, NULL, cache, x, &prm, &m, &p.cfg,
                                    lens_of(&p), &dt, work, gws);
        res[t][0] = out; res[t][1] = hT; res[t][2] = cT; res[t][3] = dx; res[t][4] = dh0;
        res[t][5] = dc0; res[t][6] = dw;
        free(cache); free(work);
    }
    int64_t n[7] = {R * d->ldo, B * Hs, B * H, R * d->ldx, B * Hs, B * H, p.n_w};
    same = st == RNN_OK;
    for (int k = 0; k < 7; k++) {
        same = same && !memcmp(res[0][k], res[1][k], (size_t)n[k] * sizeof(float));
        free(res[0][k]);
        free(res[1][k]);
    }
    describe(what, sizeof what, &p, "float32 threads=2 equals threads=1 bit for bit");
    check(same, what);
    free(w); free(x); free(go); free(rec); free(zh); free(zc); free(gout);
    free_problem(&p);
}

/* dout, dhT, dcT = NULL mean zeros (the general rows read a zero row). */
static void null_grads_check(options o) {
    problem p;
    make_problem(&p, o, 4, 3, 3, 5, 1, 1, 1, 1);
    const rnn_dims *d = &p.d;
    int64_t B = d->B, H = d->H, Hs = p.Hs, R = p.R;
    result64 r = run64(&p, 0);
    double *zeros = DALLOC(R * d->ldo); /* also serves as zero dhT, dcT */
    double *dw[2], *dx[2], *dh[2], *dc[2];
    rnn_ext_params_f64 prm = params64(&p, p.w);
    rnn_ext_masks_f64 m = masks64(&p);
    double *work = DALLOC(rnn_ext_backward_work_len_lstm(d, &p.cfg));
    int st = r.st_f;
    for (int k = 0; k < 2; k++) {
        dw[k] = DALLOC(p.n_w); dx[k] = DALLOC(R * d->ldx); dh[k] = DALLOC(B * Hs); dc[k] = DALLOC(B * H);
        rnn_ext_grads_f64 g = grads64(&p, dw[k]);
        const double *z = k ? zeros : NULL;
        st |= lstm_ext_backward_f64(dx[k], dh[k], dc[k], &g, z, p.S, z, r.cache, p.x, &prm, &m,
                                    &p.cfg, lens_of(&p), d, work, gemm_ws());
    }
    int same = st == RNN_OK && !memcmp(dw[0], dw[1], (size_t)p.n_w * sizeof(double)) &&
               !memcmp(dx[0], dx[1], (size_t)(R * d->ldx) * sizeof(double)) &&
               !memcmp(dh[0], dh[1], (size_t)(B * Hs) * sizeof(double)) &&
               !memcmp(dc[0], dc[1], (size_t)(B * H) * sizeof(double));
    char what[256];
    describe(what, sizeof what, &p, "NULL dout and dcT are zeros");
    check(same, what);
    for (int k = 0; k < 2; k++) { free(dw[k]); free(dx[k]); free(dh[k]); free(dc[k]); }
    free(zeros); free(work);
    free_result64(&r);
    free_problem(&p);
}

static void status_checks(void) {
    problem p;
    options all = {.peep = 1, .P = 2, .ln = 1, .zo = ZO_STEP, .rec = 1};
    make_problem(&p, all, 3, 2, 2, 4, 0, 0, 0, 0);
    rnn_dims d = p.d;
    rnn_ext_config cfg = p.cfg;
    int64_t R = p.R, B = d.B, H = d.H;
    double *out = DALLOC(R * 8), *hT = DALLOC(B * H), *cT = DALLOC(B * H);
    double *cache = DALLOC(rnn_ext_cache_len_lstm(&d, &cfg));
    double *work = DALLOC(rnn_ext_backward_work_len_lstm(&d, &cfg) +
                          rnn_ext_forward_work_len_lstm(&d, &cfg));
    double *dx = DALLOC(R * 8), *dw = DALLOC(p.n_w);
    void *gws = gemm_ws();
    rnn_ext_params_f64 prm = params64(&p, p.w), bad;
    rnn_ext_grads_f64 g = grads64(&p, dw), gbad;
    rnn_ext_masks_f64 m = masks64(&p), mbad;
    const int64_t *L = NULL;
#define FWD(PRM, M, CFG, LEN, D) \
    lstm_ext_forward_f64(out, hT, cT, cache, p.x, NULL, NULL, PRM, M, CFG, LEN, D, work, gws)
#define BWD(G, PRM, M, CFG, LEN, D)                                                           \
    lstm_ext_backward_f64(dx, hT, cT, G, NULL, NULL, NULL, cache, p.x, PRM, M, CFG, LEN, D, \
                          work, gws)
    check(FWD(&prm, &m, &cfg, L, &d) == RNN_OK, "every option: forward ok");
    check(BWD(&g, &prm, &m, &cfg, L, &d) == RNN_OK, "every option: backward ok");
    check(lstm_ext_forward_f64(NULL, hT, cT, cache, p.x, NULL, NULL, &prm, &m, &cfg, L, &d, work,
                               gws) == RNN_ERR_NULL, "NULL out gives RNN_ERR_NULL");
    check(lstm_ext_forward_f64(out, hT, cT, cache, p.x, NULL, NULL, &prm, &m, &cfg, L, &d, NULL,
                               gws) == RNN_ERR_NULL, "NULL work gives RNN_ERR_NULL");
    check(FWD(NULL, &m, &cfg, L, &d) == RNN_ERR_NULL, "NULL params give RNN_ERR_NULL");
    check(FWD(&prm, &m, NULL, L, &d) == RNN_ERR_NULL, "NULL config gives RNN_ERR_NULL");
    check(FWD(&prm, &m, &cfg, L, NULL) == RNN_ERR_NULL, "NULL dims give RNN_ERR_NULL");
    check(FWD(&prm, NULL, &cfg, L, &d) == RNN_OK, "NULL masks mean no masks");
    bad = prm; bad.w_hr = NULL;
    check(FWD(&bad, &m, &cfg, L, &d) == RNN_ERR_NULL, "projection without w_hr: RNN_ERR_NULL");
    check(BWD(&g, &bad, &m, &cfg, L, &d) == RNN_ERR_NULL, "backward without w_hr: RNN_ERR_NULL");
    bad = prm; bad.w_peep = NULL;
    check(FWD(&bad, &m, &cfg, L, &d) == RNN_ERR_NULL, "peepholes without w_peep: RNN_ERR_NULL");
    bad = prm; bad.ln_c = NULL;
    check(FWD(&bad, &m, &cfg, L, &d) == RNN_ERR_NULL, "layer norm without ln_c: RNN_ERR_NULL");
    bad = prm; bad.ln_ih = NULL;
    check(BWD(&g, &bad, &m, &cfg, L, &d) == RNN_ERR_NULL, "backward without ln_ih: RNN_ERR_NULL");
    bad = prm; bad.b_ih = NULL;
    check(FWD(&bad, &m, &cfg, L, &d) == RNN_ERR_NULL, "forward without b_ih: RNN_ERR_NULL");
    check(BWD(&g, &bad, &m, &cfg, L, &d) == RNN_OK, "backward needs no b_ih");
    gbad = g; gbad.w_hr = NULL;
    check(BWD(&gbad, &prm, &m, &cfg, L, &d) == RNN_ERR_NULL, "NULL dW_hr: RNN_ERR_NULL");
    gbad = g; gbad.w_peep = NULL;
    check(BWD(&gbad, &prm, &m, &cfg, L, &d) == RNN_ERR_NULL, "NULL dw_peep: RNN_ERR_NULL");
    gbad = g; gbad.ln_hh = NULL;
    check(BWD(&gbad, &prm, &m, &cfg, L, &d) == RNN_ERR_NULL, "NULL dln_hh: RNN_ERR_NULL");
    gbad = g; gbad.b_hh = NULL;
    check(BWD(&gbad, &prm, &m, &cfg, L, &d) == RNN_ERR_NULL, "NULL db_hh: RNN_ERR_NULL");
    check(BWD(NULL, &prm, &m, &cfg, L, &d) == RNN_ERR_NULL, "NULL grads: RNN_ERR_NULL");
    /* gradients of options that are off may be NULL */
    {
        rnn_ext_config c0 = {0};
        rnn_ext_grads_f64 g0 = {g.w_ih, g.w_hh, g.b_ih, g.b_hh, NULL, NULL, NULL, NULL, NULL};
        rnn_ext_params_f64 p0 = {prm.w_ih, prm.w_hh, prm.b_ih, prm.b_hh, NULL, NULL, NULL, NULL,
                                 NULL};
        rnn_dims d0 = d;
        d0.ldo = H;
        double *w0 = DALLOC(p.n_w); /* w_hh (4H, H) needs more than the projected (4H, P) */
        memcpy(w0, p.w, (size_t)p.n_w * sizeof(double));
        p0.w_hh = w0;
        int st = FWD(&p0, NULL, &c0, L, &d0);
        check(st == RNN_OK && BWD(&g0, &p0, NULL, &c0, L, &d0) == RNN_OK,
              "zero config runs with NULL option fields");
        free(w0);
    }
    /* configs */
    rnn_ext_config c = cfg;
    c.P = H;
    check(FWD(&prm, &m, &c, L, &d) == RNN_ERR_SIZE, "P = H gives RNN_ERR_SIZE");
    c.P = -1;
    check(FWD(&prm, &m, &c, L, &d) == RNN_ERR_SIZE, "P < 0 gives RNN_ERR_SIZE");
    c = cfg;
    c.relu = 1;
    check(FWD(&prm, &m, &c, L, &d) == RNN_ERR_SIZE, "relu on an LSTM gives RNN_ERR_SIZE");
    check(rnn_ext_cache_len_lstm(&d, &c) == -1 && rnn_ext_forward_work_len_lstm(&d, &c) == -1 &&
              rnn_ext_backward_work_len_lstm(&d, &c) == -1,
          "sizes of a bad config are -1");
    check(rnn_ext_cache_len(RNN_CELL_PEEPHOLE, &d, &cfg) == rnn_ext_cache_len_lstm(&d, &cfg) &&
              rnn_ext_cache_len(RNN_CELL_LSTM, &d, &cfg) == rnn_ext_cache_len_lstm(&d, &cfg) &&
              rnn_ext_backward_work_len(RNN_CELL_LSTM, &d, &cfg) ==
                  rnn_ext_backward_work_len_lstm(&d, &cfg),
          "the dispatching sizes are the LSTM's");
    {
        rnn_ext_config c0 = {0};
        rnn_dims d0 = d;
        d0.ldo = H;
        check(rnn_ext_cache_len_lstm(&d0, &c0) == 7 * d0.T * d0.B * H,
              "zero config caches 7RH (gates 4H, c_t, h_{t-1}, c_{t-1})");
    }
    /* dims */
    rnn_dims e = d;
    e.ldo = p.Hs - 1;
    check(FWD(&prm, &m, &cfg, L, &e) == RNN_ERR_LD, "ldo < P gives RNN_ERR_LD");
    e.ldo = p.Hs;
    check(FWD(&prm, &m, &cfg, L, &e) == RNN_OK, "ldo = P < H is enough with a projection");
    int want;
    const char *what;
    for (int i = 0; harness_bad_dims(&d, i, &e, &want, &what); i++)
        check(FWD(&prm, &m, &cfg, L, &e) == want, what);
    int64_t badlen[2] = {1, 4};
    check(FWD(&prm, &m, &cfg, badlen, &d) == RNN_ERR_LENGTHS, "length > T gives RNN_ERR_LENGTHS");
    badlen[1] = -1;
    check(BWD(&g, &prm, &m, &cfg, badlen, &d) == RNN_ERR_LENGTHS,
          "negative length gives RNN_ERR_LENGTHS in backward");
    check(strcmp(rnn_status_string(RNN_ERR_LENGTHS), "a sequence length was outside [0, T]") == 0,
          "status string");
    check(rnn_ext_cache_len(99, &d, &cfg) == -1, "unknown kind has no cache size");
    /* masks */
    mbad = m;
    mbad.zh_ld = 1;
    check(FWD(&prm, &mbad, &cfg, L, &d) == RNN_ERR_LD, "0 < zh_ld < Hs gives RNN_ERR_LD");
    mbad.zh_ld = -2;
    check(BWD(&g, &prm, &mbad, &cfg, L, &d) == RNN_ERR_LD, "zh_ld < 0 gives RNN_ERR_LD");
    mbad = m;
    mbad.zc_ld = H - 1;
    check(FWD(&prm, &mbad, &cfg, L, &d) == RNN_ERR_LD, "0 < zc_ld < H gives RNN_ERR_LD");
    mbad.zc = NULL;
    check(FWD(&prm, &mbad, &cfg, L, &d) == RNN_OK, "an unused zc_ld is not checked");
#undef FWD
#undef BWD
    free(out); free(hT); free(cT); free(cache); free(work); free(dx); free(dw);
    free_problem(&p);
}

int main(void) {
    status_checks();

    /* each option alone, and together */
    const options opts[] = {
        {0, 0, 0, ZO_NONE, 0, 0},      /* zero config */
        {1, 0, 0, ZO_NONE, 0, 0},      /* peepholes */
        {0, 2, 0, ZO_NONE, 0, 0},      /* projection */
        {0, 0, 1, ZO_NONE, 0, 0},      /* layer norm */
        {0, 0, 0, ZO_STEP, 0, 0},      /* zoneout, a mask row per step */
        {0, 0, 0, ZO_SHARED, 0, 0},    /* zoneout, one shared row (ld = 0) */
        {0, 0, 0, ZO_H_ONLY, 0, 0},    /* zoneout of h only */
        {0, 0, 0, ZO_C_ONLY, 0, 0},    /* zoneout of c only */
        {0, 0, 0, ZO_NONE, 1, 0},      /* recurrent dropout */
        {1, 3, 1, ZO_NONE, 0, 0},      /* peepholes + projection + layer norm */
        {1, 2, 1, ZO_STEP, 1, 0},      /* everything */
        {1, 2, 1, ZO_SHARED, 1, 0},    /* everything, shared zoneout row */
        {1, 3, 0, ZO_STEP, 1, 1},      /* training-like 0/1 masks */
    };
    const int n_opts = (int)(sizeof opts / sizeof opts[0]);
    for (int k = 0; k < n_opts; k++) {
        int every = k <= 1 || k >= n_opts - 3; /* all layouts: plain, peepholes, the big ones */
        for (int v = 0; v < 8; v++) {
            int bf = v & 1, rev = (v >> 1) & 1, len = (v >> 2) & 1;
            if (!every && v != 0 && v != 7 && v != 6) continue;
            gradient_check(opts[k], 4, 3, 3, 5, bf, rev, len, v == 7);
        }
    }
    /* B = 1, full length and ragged; a wider H whose rows fill the 8-lane sums */
    gradient_check(opts[10], 4, 1, 2, 5, 0, 0, 0, 0);
    gradient_check(opts[10], 4, 1, 2, 5, 1, 1, 1, 1);
    gradient_check((options){1, 3, 1, ZO_STEP, 1, 0}, 3, 2, 2, 9, 1, 0, 1, 1);

    for (int k = 0; k < n_opts; k++) precision_check(opts[k], 7);
    null_grads_check(opts[0]);
    null_grads_check(opts[1]);
    null_grads_check(opts[10]);
    precision_check(opts[10], 19);

    threads_check(opts[0]);
    threads_check((options){1, 128, 1, ZO_STEP, 1, 0});

    free(ws_raw);
    printf("largest finite-difference error: %.3g\n", worst_fd);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
