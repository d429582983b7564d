/*
 * test_cells.c: the cell kernels on their own, with no Python: status codes
 * for bad arguments, float64 backward against central differences of
 * forward, and float32 against float64, for every cell kind, both layouts,
 * both directions and ragged lengths. Built and run (also under
 * AddressSanitizer and UBSan) by tests/test_c_kernels.py:
 *
 *   gcc -std=c11 -O2 -Wall -Wextra -Werror -Icsrc -Itests/c/ref csrc/gemm.c csrc/rnn_common.c \
 *       tests/c/ref/{sizes,rnn,lstm,gru}_ref.c tests/c/test_cells.c -lm
 *
 * Prints "N passed, M failed" last and exits non-zero on any failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cells_ref.h"
#include "gemm.h"

#define HARNESS_SEED 0x9E3779B97F4A7C15ULL
#include "harness.h"

/* One problem: sizes, layout, and every array in float64 (and a float32 copy). */
typedef struct {
    int kind;
    rnn_dims d;
    int64_t lengths[8];
    int use_lengths;
    int64_t n_w;                 /* parameters: w_ih | w_hh | b_ih | b_hh | peep */
    double *w, *x, *h0, *c0;     /* inputs */
    double *R, *S, *U;           /* loss weights for out, hT, cT */
} problem;

static int64_t gates_of(int kind) { return rnn_cell_gates(kind); }

/* Runs forward in float64 and returns the loss sum(out*R) + sum(hT*S) + sum(cT*U). */
static int forward64(const problem *p, double *loss, double *out_keep, double *cache_keep) {
    const rnn_dims *d = &p->d;
    int64_t R = d->T * d->B, H = d->H, I = d->I, GH = gates_of(p->kind) * H;
    double *out = xmalloc((size_t)(R * d->ldo) * sizeof(double));
    double *hT = xmalloc((size_t)(d->B * H) * sizeof(double)), *cT = xmalloc((size_t)(d->B * H) * sizeof(double));
    double *cache = cache_keep ? cache_keep : xmalloc((size_t)rnn_cache_len(p->kind, d) * sizeof(double));
    void *raw, *graw;
    double *work = xmalloc((size_t)rnn_forward_work_len(p->kind, d) * sizeof(double));
    void *gws = aligned64(rnn_gemm_workspace_size(), &graw);
    (void)raw;
    const double *w_ih = p->w, *w_hh = w_ih + GH * I, *b_ih = w_hh + GH * H, *b_hh = b_ih + GH;
    const double *peep = p->kind == RNN_CELL_PEEPHOLE ? b_hh + GH : NULL;
    const int64_t *len = p->use_lengths ? p->lengths : NULL;
    int st;
    if (p->kind == RNN_CELL_LSTM || p->kind == RNN_CELL_PEEPHOLE)
        st = lstm_forward_f64(out, hT, cT, cache, p->x, p->h0, p->c0, w_ih, w_hh, b_ih, b_hh, peep, len, d, work, gws);
    else if (p->kind == RNN_CELL_GRU)
        st = gru_forward_f64(out, hT, cache, p->x, p->h0, w_ih, w_hh, b_ih, b_hh, len, d, work, gws);
    else
        st = rnn_forward_f64(out, hT, cache, p->x, p->h0, w_ih, w_hh, b_ih, b_hh, p->kind == RNN_CELL_RELU, len, d, work, gws);
    double L = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < H; j++) L += out[r * d->ldo + j] * p->R[r * H + j];
    for (int64_t k = 0; k < d->B * H; k++) L += hT[k] * p->S[k];
    if (p->kind == RNN_CELL_LSTM || p->kind == RNN_CELL_PEEPHOLE)
        for (int64_t k = 0; k < d->B * H; k++) L += cT[k] * p->U[k];
    *loss = L;
    if (out_keep) memcpy(out_keep, out, (size_t)(R * d->ldo) * sizeof(double));
    free(out); free(hT); free(cT); free(work); free(graw);
    if (!cache_keep) free(cache);
    return st;
}

static void make_problem(problem *p, int kind, int64_t T, int64_t B, int64_t I, int64_t H,
                         int batch_first, int reverse, int use_lengths) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->d = (rnn_dims){.T = T, .B = B, .I = I, .H = H, .ts = batch_first ? 1 : B,
                      .bs = batch_first ? T : 1, .ldx = I, .ldo = H, .reverse = reverse};
    p->use_lengths = use_lengths;
    for (int64_t b = 0; b < B; b++) p->lengths[b] = (b * 7 + 3) % (T + 1);
    int64_t GH = gates_of(kind) * H, R = T * B;
    p->n_w = GH * (I + H + 2) + (kind == RNN_CELL_PEEPHOLE ? 3 * H : 0);
    p->w = xmalloc((size_t)p->n_w * sizeof(double));
    p->x = xmalloc((size_t)(R * I) * sizeof(double));
    p->h0 = xmalloc((size_t)(B * H) * sizeof(double));
    p->c0 = xmalloc((size_t)(B * H) * sizeof(double));
    p->R = xmalloc((size_t)(R * H) * sizeof(double));
    p->S = xmalloc((size_t)(B * H) * sizeof(double));
    p->U = xmalloc((size_t)(B * H) * sizeof(double));
    for (int64_t k = 0; k < p->n_w; k++) p->w[k] = 0.6 * uniform();
    for (int64_t k = 0; k < R * I; k++) p->x[k] = uniform();
    for (int64_t k = 0; k < B * H; k++) {
        p->h0[k] = 0.5 * uniform();
        p->c0[k] = 0.5 * uniform();
        p->S[k] = uniform();
        p->U[k] = uniform();
    }
    for (int64_t k = 0; k < R * H; k++) p->R[k] = uniform();
}

static void free_problem(problem *p) {
    free(p->w); free(p->x); free(p->h0); free(p->c0); free(p->R); free(p->S); free(p->U);
}

/* Central difference of the loss in one entry of an array of the problem. */
static double numeric(problem *p, double *entry) {
    const double eps = 1e-6;
    double old = *entry, lp, lm;
    *entry = old + eps;
    forward64(p, &lp, NULL, NULL);
    *entry = old - eps;
    forward64(p, &lm, NULL, NULL);
    *entry = old;
    return (lp - lm) / (2 * eps);
}

static void gradient_check(int kind, int batch_first, int reverse, int use_lengths) {
    problem p;
    make_problem(&p, kind, 4, 3, 3, 3, batch_first, reverse, use_lengths);
    const rnn_dims *d = &p.d;
    int64_t R = d->T * d->B, H = d->H, I = d->I, GH = gates_of(kind) * H;
    int lstm = kind == RNN_CELL_LSTM || kind == RNN_CELL_PEEPHOLE;
    double loss;
    double *cache = xmalloc((size_t)rnn_cache_len(kind, d) * sizeof(double));
    int st = forward64(&p, &loss, NULL, cache);
    check(st == RNN_OK, "forward64 status");

    double *dx = xmalloc((size_t)(R * I) * sizeof(double)), *dw = xmalloc((size_t)p.n_w * sizeof(double));
    double *dh0 = xmalloc((size_t)(d->B * H) * sizeof(double)), *dc0 = xmalloc((size_t)(d->B * H) * sizeof(double));
    double *work = xmalloc((size_t)rnn_backward_work_len(kind, d) * sizeof(double));
    void *graw;
    void *gws = aligned64(rnn_gemm_workspace_size(), &graw);
    const double *w_ih = p.w, *w_hh = w_ih + GH * I;
    double *dw_ih = dw, *dw_hh = dw_ih + GH * I, *db_ih = dw_hh + GH * H, *db_hh = db_ih + GH;
    const double *peep = kind == RNN_CELL_PEEPHOLE ? p.w + GH * (I + H + 2) : NULL;
    double *dpeep = kind == RNN_CELL_PEEPHOLE ? db_hh + GH : NULL;
    const int64_t *len = use_lengths ? p.lengths : NULL;
    if (lstm)
        st = lstm_backward_f64(dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dpeep, p.R, p.S, p.U, cache, p.x,
                               w_ih, w_hh, peep, len, d, work, gws);
    else if (kind == RNN_CELL_GRU)
        st = gru_backward_f64(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, p.R, p.S, cache, p.x, w_ih, w_hh, len, d,
                              work, gws);
    else
        st = rnn_backward_f64(dx, dh0, dw_ih, dw_hh, db_ih, db_hh, p.R, p.S, cache, p.x, w_ih, w_hh,
                              kind == RNN_CELL_RELU, len, d, work, gws);
    check(st == RNN_OK, "backward status");

    char what[160];
    double worst = 0;
    for (int64_t k = 0; k < p.n_w; k++) {
        double num = numeric(&p, &p.w[k]);
        worst = fmax(worst, fabs(num - dw[k]) / fmax(1.0, fabs(num)));
    }
    for (int64_t k = 0; k < R * I; k++) {
        double num = numeric(&p, &p.x[k]);
        worst = fmax(worst, fabs(num - dx[k]) / fmax(1.0, fabs(num)));
    }
    for (int64_t k = 0; k < d->B * H; k++) {
        worst = fmax(worst, fabs(numeric(&p, &p.h0[k]) - dh0[k]));
        if (lstm) worst = fmax(worst, fabs(numeric(&p, &p.c0[k]) - dc0[k]));
    }
    snprintf(what, sizeof what, "gradient kind=%d batch_first=%d reverse=%d lengths=%d: error %.3g",
             kind, batch_first, reverse, use_lengths, worst);
    check(worst < 1e-7, what);

    /* backward adds: a second call doubles every gradient */
    double *dw2 = xmalloc((size_t)p.n_w * sizeof(double));
    memcpy(dw2, dw, (size_t)p.n_w * sizeof(double));
    if (lstm)
        st = lstm_backward_f64(dx, dh0, dc0, dw2, dw2 + GH * I, dw2 + GH * (I + H), dw2 + GH * (I + H + 1),
                               peep ? dw2 + GH * (I + H + 2) : NULL, p.R, p.S, p.U, cache, p.x, w_ih, w_hh,
                               peep, len, d, work, gws);
    else if (kind == RNN_CELL_GRU)
        st = gru_backward_f64(dx, dh0, dw2, dw2 + GH * I, dw2 + GH * (I + H), dw2 + GH * (I + H + 1), p.R, p.S,
                              cache, p.x, w_ih, w_hh, len, d, work, gws);
    else
        st = rnn_backward_f64(dx, dh0, dw2, dw2 + GH * I, dw2 + GH * (I + H), dw2 + GH * (I + H + 1), p.R, p.S,
                              cache, p.x, w_ih, w_hh, kind == RNN_CELL_RELU, len, d, work, gws);
    double dbl = 0;
    for (int64_t k = 0; k < p.n_w; k++) dbl = fmax(dbl, fabs(dw2[k] - 2 * dw[k]));
    check(st == RNN_OK && dbl < 1e-12, "second backward adds the same gradients again");

    free(dw2); free(cache); free(dx); free(dw); free(dh0); free(dc0); free(work); free(graw);
    free_problem(&p);
}

/* float32 forward against float64 on the same (float32-representable) data. */
static void precision_check(int kind) {
    problem p;
    make_problem(&p, kind, 6, 4, 5, 7, 0, 0, 1);
    const rnn_dims *d = &p.d;
    int64_t R = d->T * d->B, H = d->H, I = d->I, GH = gates_of(kind) * H;
    for (int64_t k = 0; k < p.n_w; k++) p.w[k] = (float)p.w[k];
    for (int64_t k = 0; k < R * I; k++) p.x[k] = (float)p.x[k];
    for (int64_t k = 0; k < d->B * H; k++) { p.h0[k] = (float)p.h0[k]; p.c0[k] = (float)p.c0[k]; }
    double loss, *out64 = xmalloc((size_t)(R * H) * sizeof(double));
    forward64(&p, &loss, out64, NULL);
    float *w = xmalloc((size_t)p.n_w * sizeof(float)), *x = xmalloc((size_t)(R * I) * sizeof(float));
    float *h0 = xmalloc((size_t)(d->B * H) * sizeof(float)), *c0 = xmalloc((size_t)(d->B * H) * sizeof(float));
    for (int64_t k = 0; k < p.n_w; k++) w[k] = (float)p.w[k];
    for (int64_t k = 0; k < R * I; k++) x[k] = (float)p.x[k];
    for (int64_t k = 0; k < d->B * H; k++) { h0[k] = (float)p.h0[k]; c0[k] = (float)p.c0[k]; }
    float *out = xmalloc((size_t)(R * H) * sizeof(float)), *hT = xmalloc((size_t)(d->B * H) * sizeof(float));
    float *cT = xmalloc((size_t)(d->B * H) * sizeof(float));
    float *cache = xmalloc((size_t)rnn_cache_len(kind, d) * sizeof(float));
    float *work = xmalloc((size_t)rnn_forward_work_len(kind, d) * sizeof(float));
    void *graw;
    void *gws = aligned64(rnn_gemm_workspace_size(), &graw);
    const float *w_ih = w, *w_hh = w + GH * I, *b_ih = w_hh + GH * H, *b_hh = b_ih + GH;
    const float *peep = kind == RNN_CELL_PEEPHOLE ? b_hh + GH : NULL;
    int st;
    if (kind == RNN_CELL_LSTM || kind == RNN_CELL_PEEPHOLE)
        st = lstm_forward_f32(out, hT, cT, cache, x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep, p.lengths, d, work, gws);
    else if (kind == RNN_CELL_GRU)
        st = gru_forward_f32(out, hT, cache, x, h0, w_ih, w_hh, b_ih, b_hh, p.lengths, d, work, gws);
    else
        st = rnn_forward_f32(out, hT, cache, x, h0, w_ih, w_hh, b_ih, b_hh, kind == RNN_CELL_RELU, p.lengths, d,
                             work, gws);
    double worst = 0;
    for (int64_t k = 0; k < R * H; k++) worst = fmax(worst, fabs(out[k] - out64[k]));
    char what[96];
    snprintf(what, sizeof what, "float32 against float64, kind=%d: error %.3g", kind, worst);
    check(st == RNN_OK && worst < 2e-6, what);
    free(out64); free(w); free(x); free(h0); free(c0); free(out); free(hT); free(cT); free(cache); free(work);
    free(graw);
    free_problem(&p);
}

static void status_checks(void) {
    problem p;
    make_problem(&p, RNN_CELL_LSTM, 3, 2, 2, 2, 0, 0, 0);
    rnn_dims d = p.d;
    double out[64], hT[8], cT[8], cache[256], work[256];
    void *graw;
    void *gws = aligned64(rnn_gemm_workspace_size(), &graw);
    const double *w = p.w;
    check(lstm_forward_f64(NULL, hT, cT, cache, p.x, NULL, NULL, w, w, w, w, NULL, NULL, &d, work, gws) ==
              RNN_ERR_NULL, "NULL out gives RNN_ERR_NULL");
    check(lstm_forward_f64(out, hT, cT, cache, p.x, NULL, NULL, w, w, w, w, NULL, NULL, NULL, work, gws) ==
              RNN_ERR_NULL, "NULL dims gives RNN_ERR_NULL");
    d.T = 0;
    check(lstm_forward_f64(out, hT, cT, cache, p.x, NULL, NULL, w, w, w, w, NULL, NULL, &d, work, gws) ==
              RNN_ERR_SIZE, "T = 0 gives RNN_ERR_SIZE");
    d = p.d;
    d.H = INT64_MAX / 2;
    d.ldo = d.H;
    check(lstm_forward_f64(out, hT, cT, cache, p.x, NULL, NULL, w, w, w, w, NULL, NULL, &d, work, gws) ==
              RNN_ERR_SIZE, "overflowing H gives RNN_ERR_SIZE");
    d = p.d;
    d.ldx = 1;
    check(gru_forward_f64(out, hT, cache, p.x, NULL, w, w, w, w, NULL, &d, work, gws) == RNN_ERR_LD,
          "ldx < I gives RNN_ERR_LD");
    d = p.d;
    d.ts = 5;
    check(rnn_forward_f64(out, hT, cache, p.x, NULL, w, w, w, w, 0, NULL, &d, work, gws) == RNN_ERR_SIZE,
          "strides that are neither layout give RNN_ERR_SIZE");
    d = p.d;
    int64_t bad[2] = {1, 4};
    check(rnn_forward_f64(out, hT, cache, p.x, NULL, w, w, w, w, 0, bad, &d, work, gws) == RNN_ERR_LENGTHS,
          "length > T gives RNN_ERR_LENGTHS");
    bad[1] = -1;
    check(lstm_backward_f64(out, hT, cT, work, work, work, work, NULL, NULL, NULL, NULL, cache, p.x, w, w,
                            NULL, bad, &d, work, gws) == RNN_ERR_LENGTHS,
          "negative length gives RNN_ERR_LENGTHS in backward");
    check(strcmp(rnn_status_string(RNN_ERR_LENGTHS), "a sequence length was outside [0, T]") == 0,
          "status string");
    check(rnn_cache_len(99, &p.d) == -1, "unknown kind has no cache size");
    free(graw);
    free_problem(&p);
}

int main(void) {
    const int kinds[] = {RNN_CELL_TANH, RNN_CELL_RELU, RNN_CELL_LSTM, RNN_CELL_PEEPHOLE, RNN_CELL_GRU};
    for (int k = 0; k < 5; k++) {
        for (int bf = 0; bf < 2; bf++)
            for (int rev = 0; rev < 2; rev++)
                for (int len = 0; len < 2; len++) gradient_check(kinds[k], bf, rev, len);
        precision_check(kinds[k]);
    }
    status_checks();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
