/*
 * test_one_kernel.c: the library's one kernel per cell (cells_ext.h) at a
 * zero config, no masks, against the plain reference kernels kept for tests
 * (tests/c/ref): bit for bit, in float32 and float64, on 1, 2 and 3 threads,
 * both layouts, both directions, with and without ragged lengths:
 *
 *   out, hT, cT, the cache (array for array: same length, same bits), dx,
 *   dh0, dc0, dW_ih and dW_hh are identical;
 *   db_ih, db_hh sum the same R terms in another order: equal to rounding
 *   (relative 5e-4 in float32, 1e-11 in float64, after cancellation).
 *
 * So the binding, which runs every cell through its extended kernel, gives
 * what the plain kernels gave. Built and run (also under AddressSanitizer and
 * UBSan) by tests/test_c_kernels.py.
 *
 * Prints "N passed, M failed" last and exits non-zero on any failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cells_ext.h"
#include "cells_ref.h"
#include "gemm.h"

#define HARNESS_SEED 0x51AF0C3E5D2B9A17ULL
#include "harness.h"

static const char *kind_name(int kind) {
    static const char *names[] = {"rnn_tanh", "rnn_relu", "lstm", "lstm_peephole", "gru"};
    return names[kind];
}

/* Whether two arrays of n values hold the same bits. */
static int same_bits(const void *a, const void *b, int64_t n, size_t es) {
    return memcmp(a, b, (size_t)n * es) == 0;
}

/* The largest |a - b| / max(1, |a|) over n values. */
#define DEFINE_REL(REAL, SFX)                                                          \
    static double rel_##SFX(const REAL *a, const REAL *b, int64_t n) {                 \
        double e = 0;                                                                  \
        for (int64_t k = 0; k < n; k++)                                                \
            e = fmax(e, fabs((double)a[k] - (double)b[k]) / fmax(1.0, fabs((double)a[k]))); \
        return e;                                                                      \
    }
DEFINE_REL(float, f32)
DEFINE_REL(double, f64)

/* One case per dtype: both kernels on the same inputs, then the comparisons. */
#define DEFINE_CASE(REAL, SFX, TOL)                                                              \
    static void case_##SFX(int kind, int64_t T, int64_t B, int64_t I, int64_t H, int bf, int rev, \
                           int use_len, int threads) {                                           \
        const int64_t G = rnn_cell_gates(kind), GH = G * H, R = T * B;                           \
        const int lstm = kind == RNN_CELL_LSTM;                                                  \
        rnn_dims d = {.T = T, .B = B, .I = I, .H = H, .ts = bf ? 1 : B, .bs = bf ? T : 1,       \
                      .ldx = I, .ldo = H, .reverse = rev, .threads = threads,                    \
                      .pool = threads > 1 ? harness_pool() : NULL};                              \
        rnn_ext_config cfg = {.relu = kind == RNN_CELL_RELU};                                    \
        const int64_t nw = GH * (I + H + 2);                                                     \
        const int64_t o_hh = GH * I, o_bih = o_hh + GH * H, o_bhh = o_bih + GH;                 \
        REAL *w = xmalloc((size_t)nw * sizeof(REAL)), *x = xmalloc((size_t)(R * I) * sizeof(REAL)); \
        REAL *h0 = xmalloc((size_t)(B * H) * sizeof(REAL)), *c0 = xmalloc((size_t)(B * H) * sizeof(REAL)); \
        REAL *dout = xmalloc((size_t)(R * H) * sizeof(REAL));                                    \
        for (int64_t k = 0; k < nw; k++) w[k] = (REAL)(0.4 * uniform());                         \
        for (int64_t k = 0; k < R * I; k++) x[k] = (REAL)uniform();                              \
        for (int64_t k = 0; k < B * H; k++) { h0[k] = (REAL)uniform(); c0[k] = (REAL)uniform(); } \
        for (int64_t k = 0; k < R * H; k++) dout[k] = (REAL)uniform();                           \
        int64_t lens[16];                                                                        \
        for (int64_t b = 0; b < B; b++) lens[b] = use_len ? (b * 5 + 2) % (T + 1) : T;          \
        const int64_t *L = use_len ? lens : NULL;                                                \
        int64_t cl = rnn_cache_len(kind, &d), cle = rnn_ext_cache_len(kind, &d, &cfg);           \
        int64_t wl = rnn_forward_work_len(kind, &d), bl = rnn_backward_work_len(kind, &d);       \
        int64_t wle = rnn_ext_forward_work_len(kind, &d, &cfg);                                  \
        int64_t ble = rnn_ext_backward_work_len(kind, &d, &cfg);                                 \
        int64_t wmax = wl > bl ? wl : bl;                                                        \
        if (wle > wmax) wmax = wle;                                                              \
        if (ble > wmax) wmax = ble;                                                              \
        REAL *work = xmalloc((size_t)wmax * sizeof(REAL));                                       \
        void *graw;                                                                              \
        void *gws = aligned64(rnn_gemm_workspace_size() * (size_t)(threads > 1 ? threads : 1), &graw); \
        REAL *out[2], *hT[2], *cT[2], *cache[2], *dx[2], *dh0[2], *dc0[2], *dw[2];               \
        for (int e = 0; e < 2; e++) {                                                            \
            out[e] = xmalloc((size_t)(R * H) * sizeof(REAL));                                    \
            hT[e] = xmalloc((size_t)(B * H) * sizeof(REAL));                                     \
            cT[e] = xmalloc((size_t)(B * H) * sizeof(REAL));                                     \
            cache[e] = xmalloc((size_t)(cl > cle ? cl : cle) * sizeof(REAL));                    \
            dx[e] = xmalloc((size_t)(R * I) * sizeof(REAL));                                     \
            dh0[e] = xmalloc((size_t)(B * H) * sizeof(REAL));                                    \
            dc0[e] = xmalloc((size_t)(B * H) * sizeof(REAL));                                    \
            dw[e] = xmalloc((size_t)nw * sizeof(REAL));                                          \
        }                                                                                        \
        REAL *g = dw[0];                                                                         \
        rnn_ext_params_##SFX p = {.w_ih = w, .w_hh = w + o_hh, .b_ih = w + o_bih, .b_hh = w + o_bhh}; \
        rnn_ext_grads_##SFX gg = {.w_ih = dw[1], .w_hh = dw[1] + o_hh, .b_ih = dw[1] + o_bih,    \
                                  .b_hh = dw[1] + o_bhh};                                        \
        int st = 0;                                                                              \
        if (lstm) {                                                                              \
            st |= lstm_forward_##SFX(out[0], hT[0], cT[0], cache[0], x, h0, c0, w, w + o_hh,      \
                                     w + o_bih, w + o_bhh, NULL, L, &d, work, gws);              \
            st |= lstm_backward_##SFX(dx[0], dh0[0], dc0[0], g, g + o_hh, g + o_bih, g + o_bhh,   \
                                      NULL, dout, h0, c0, cache[0], x, w, w + o_hh, NULL, L, &d,  \
                                      work, gws);                                                \
            st |= lstm_ext_forward_##SFX(out[1], hT[1], cT[1], cache[1], x, h0, c0, &p, NULL,     \
                                         &cfg, L, &d, work, gws);                                \
            st |= lstm_ext_backward_##SFX(dx[1], dh0[1], dc0[1], &gg, dout, h0, c0, cache[1], x,  \
                                          &p, NULL, &cfg, L, &d, work, gws);                     \
        } else if (kind == RNN_CELL_GRU) {                                                       \
            st |= gru_forward_##SFX(out[0], hT[0], cache[0], x, h0, w, w + o_hh, w + o_bih,       \
                                    w + o_bhh, L, &d, work, gws);                                \
            st |= gru_backward_##SFX(dx[0], dh0[0], g, g + o_hh, g + o_bih, g + o_bhh, dout, h0,  \
                                     cache[0], x, w, w + o_hh, L, &d, work, gws);                \
            st |= gru_ext_forward_##SFX(out[1], hT[1], cache[1], x, h0, &p, NULL, &cfg, L, &d,   \
                                        work, gws);                                              \
            st |= gru_ext_backward_##SFX(dx[1], dh0[1], &gg, dout, h0, cache[1], x, &p, NULL,    \
                                         &cfg, L, &d, work, gws);                                \
        } else {                                                                                 \
            int relu = kind == RNN_CELL_RELU;                                                    \
            st |= rnn_forward_##SFX(out[0], hT[0], cache[0], x, h0, w, w + o_hh, w + o_bih,       \
                                    w + o_bhh, relu, L, &d, work, gws);                          \
            st |= rnn_backward_##SFX(dx[0], dh0[0], g, g + o_hh, g + o_bih, g + o_bhh, dout, h0,  \
                                     cache[0], x, w, w + o_hh, relu, L, &d, work, gws);          \
            st |= rnn_ext_forward_##SFX(out[1], hT[1], cache[1], x, h0, &p, NULL, &cfg, L, &d,   \
                                        work, gws);                                              \
            st |= rnn_ext_backward_##SFX(dx[1], dh0[1], &gg, dout, h0, cache[1], x, &p, NULL,    \
                                         &cfg, L, &d, work, gws);                                \
        }                                                                                        \
        const size_t es = sizeof(REAL);                                                          \
        int same = same_bits(out[0], out[1], R * H, es) && same_bits(hT[0], hT[1], B * H, es) && \
                   same_bits(cT[0], cT[1], B * H, es) && same_bits(cache[0], cache[1], cl, es) && \
                   same_bits(dx[0], dx[1], R * I, es) && same_bits(dh0[0], dh0[1], B * H, es) && \
                   same_bits(dc0[0], dc0[1], B * H, es) && same_bits(dw[0], dw[1], o_bih, es);   \
        double eb = rel_##SFX(dw[0] + o_bih, dw[1] + o_bih, 2 * GH);                             \
        char what[200];                                                                          \
        snprintf(what, sizeof what,                                                              \
                 "%s %s T=%lld B=%lld H=%lld bf=%d rev=%d len=%d threads=%d: status %d, cache "  \
                 "%lld vs %lld, same bits %d, bias gradients differ by %.3g",                    \
                 #SFX, kind_name(kind), (long long)T, (long long)B, (long long)H, bf, rev,       \
                 use_len, threads, st, (long long)cl, (long long)cle, same, eb);                 \
        check(st == RNN_OK && cl == cle && wle >= 0 && ble >= 0 && same && eb < (TOL), what);    \
        for (int e = 0; e < 2; e++) {                                                            \
            free(out[e]); free(hT[e]); free(cT[e]); free(cache[e]);                              \
            free(dx[e]); free(dh0[e]); free(dc0[e]); free(dw[e]);                                \
        }                                                                                        \
        free(w); free(x); free(h0); free(c0); free(dout); free(work); free(graw);                \
    }
DEFINE_CASE(float, f32, 5e-4)
DEFINE_CASE(double, f64, 1e-11)

int main(void) {
    static const int64_t shapes[][4] = {{7, 5, 3, 9}, {20, 16, 33, 64}, {5, 1, 4, 17}, {3, 2, 2, 3}};
    static const int kinds[] = {RNN_CELL_TANH, RNN_CELL_RELU, RNN_CELL_LSTM, RNN_CELL_GRU};
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int bf = 0; bf < 2; bf++)
                for (int rev = 0; rev < 2; rev++)
                    for (int len = 0; len < 2; len++)
                        for (int threads = 1; threads <= 3; threads++) {
                            const int64_t *sh = shapes[s];
                            case_f32(kinds[k], sh[0], sh[1], sh[2], sh[3], bf, rev, len, threads);
                            case_f64(kinds[k], sh[0], sh[1], sh[2], sh[3], bf, rev, len, threads);
                        }
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
