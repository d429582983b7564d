/*
 * test_ext_inference.c: the inference forward (rnn_dims.inference = 1) of
 * every cell kernel against its training forward. Built with a small
 * RNN_PROJ_ELEMS (tests/kernels/test_c_kernels.py), so that small shapes
 * cross many blocks of the input projection, a last block of one step
 * among them. For every cell and option, both layouts, both directions,
 * lengths none / mixed / all zero, masks, threads 1 and 2, float64,
 * float32 and float32 with bfloat16 products:
 *   - the cache length is 0 and the kernel runs with cache = NULL, in
 *     scratch of exactly rnn_ext_forward_work_len elements (a separate
 *     allocation each, so that AddressSanitizer sees any overrun);
 *   - out, hT (and cT) are bit for bit those of the training forward;
 *   - backward with dims.inference = 1 refuses (RNN_ERR_SIZE).
 */
#define HARNESS_SEED 0x1DF0A5E5EED5ULL
#include <math.h>
#include <string.h>

#include "bf16.h"
#include "cells_ext.h"
#include "gemm.h"
#include "harness.h"

typedef struct {
    int kind;
    rnn_ext_config cfg;
    const char *name;
} cell_case;

static const cell_case CELLS_[] = {
    {RNN_CELL_LSTM, {0, 0, 0, 0}, "lstm"},
    {RNN_CELL_PEEPHOLE, {0, 1, 0, 0}, "lstm peephole"},
    {RNN_CELL_LSTM, {2, 0, 0, 0}, "lstm proj"},
    {RNN_CELL_LSTM, {0, 0, 1, 0}, "lstm layer_norm"},
    {RNN_CELL_PEEPHOLE, {2, 1, 1, 0}, "lstm peephole proj layer_norm"},
    {RNN_CELL_GRU, {0, 0, 0, 0}, "gru"},
    {RNN_CELL_GRU, {0, 0, 1, 0}, "gru layer_norm"},
    {RNN_CELL_TANH, {0, 0, 0, 0}, "rnn tanh"},
    {RNN_CELL_RELU, {0, 0, 0, 1}, "rnn relu"},
};

/* T, B, I, H */
static const int64_t SHAPES[][4] = {{1, 1, 1, 3}, {7, 1, 2, 3}, {5, 3, 1, 4}, {6, 2, 5, 5},
                                    {4, 5, 3, 3}, {9, 1, 7, 17}, {3, 3, 6, 17},
                                    {3, 17, 300, 5}, {3, 12, 300, 8}};

static void fill(double *v, int64_t n, double scale) {
    for (int64_t i = 0; i < n; i++) v[i] = uniform() * scale;
}

#define DEFINE_CASE(REAL, SFX)                                                                     \
    static REAL *copy_##SFX(const double *v, int64_t n) {                                          \
        REAL *r = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(REAL));                                 \
        for (int64_t i = 0; i < n; i++) r[i] = (REAL)v[i];                                         \
        return r;                                                                                  \
    }                                                                                              \
    static int fwd_##SFX(const cell_case *c, REAL *out, REAL *hT, REAL *cT, REAL *cache,           \
                         const REAL *x, const REAL *h0, const REAL *c0,                            \
                         const rnn_ext_params_##SFX *p, const rnn_ext_masks_##SFX *m,              \
                         const int64_t *len, const rnn_dims *d, REAL *work, void *ws) {            \
        if (c->kind == RNN_CELL_LSTM || c->kind == RNN_CELL_PEEPHOLE)                              \
            return lstm_ext_forward_##SFX(out, hT, cT, cache, x, h0, c0, p, m, &c->cfg, len, d,    \
                                          work, ws);                                               \
        if (c->kind == RNN_CELL_GRU)                                                               \
            return gru_ext_forward_##SFX(out, hT, cache, x, h0, p, m, &c->cfg, len, d, work, ws);  \
        return rnn_ext_forward_##SFX(out, hT, cache, x, h0, p, m, &c->cfg, len, d, work, ws);      \
    }                                                                                              \
    static int bwd_##SFX(const cell_case *c, const rnn_dims *d) {                                  \
        if (c->kind == RNN_CELL_LSTM || c->kind == RNN_CELL_PEEPHOLE)                              \
            return lstm_ext_backward_##SFX(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,   \
                                           NULL, NULL, &c->cfg, NULL, d, NULL, NULL);              \
        if (c->kind == RNN_CELL_GRU)                                                               \
            return gru_ext_backward_##SFX(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,    \
                                          &c->cfg, NULL, d, NULL, NULL);                           \
        return rnn_ext_backward_##SFX(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,        \
                                      &c->cfg, NULL, d, NULL, NULL);                               \
    }                                                                                              \
    /* One case: the training forward, then the inference forward. */                              \
    static void run_##SFX(const cell_case *c, const int64_t *sh, int bf, int rev, int lens,        \
                          int masks, int threads, int compute, void *ws) {                         \
        const int64_t T = sh[0], B = sh[1], I = sh[2], H = sh[3], R = T * B;                       \
        rnn_ext_config cfg = c->cfg;                                                               \
        if (cfg.P >= H) cfg.P = H - 1;                                                             \
        const cell_case cc = {c->kind, cfg, c->name};                                              \
        const int lstm = c->kind == RNN_CELL_LSTM || c->kind == RNN_CELL_PEEPHOLE;                 \
        const int64_t Hs = cfg.P > 0 ? cfg.P : H, G = rnn_cell_gates(c->kind) * H;                 \
        double *dv = xmalloc((size_t)(G * (I + Hs) + 8 * G + 4 * H + R * (I + 2 * Hs + H) +        \
                                      8 * B * (Hs + H)) * sizeof(double));                         \
        fill(dv, G * (I + Hs) + 8 * G + 4 * H + R * (I + 2 * Hs + H) + 8 * B * (Hs + H), 0.6);     \
        REAL *w_ih = copy_##SFX(dv, G * I), *w_hh = copy_##SFX(dv + 1, G * Hs);                    \
        REAL *b_ih = copy_##SFX(dv + 2, G), *b_hh = copy_##SFX(dv + 3, G);                         \
        REAL *w_peep = copy_##SFX(dv + 4, 3 * H), *w_hr = copy_##SFX(dv + 5, cfg.P * H);           \
        REAL *ln_ih = copy_##SFX(dv + 6, 2 * G), *ln_hh = copy_##SFX(dv + 7, 2 * G);               \
        REAL *ln_c = copy_##SFX(dv + 8, 2 * H);                                                    \
        REAL *x = copy_##SFX(dv + 9, R * I), *h0 = copy_##SFX(dv + 10, B * Hs);                    \
        REAL *c0 = copy_##SFX(dv + 11, B * H);                                                     \
        REAL *rec = xmalloc((size_t)(B * Hs) * sizeof(REAL));                                      \
        REAL *zh = xmalloc((size_t)(R * Hs) * sizeof(REAL));                                       \
        REAL *zc = xmalloc((size_t)(R * H) * sizeof(REAL));                                        \
        for (int64_t i = 0; i < B * Hs; i++) rec[i] = uniform() < 0.4 ? 0 : (REAL)(1 / 0.7);       \
        for (int64_t i = 0; i < R * Hs; i++) zh[i] = uniform() < 0.4 ? 1 : 0;                      \
        for (int64_t i = 0; i < R * H; i++) zc[i] = uniform() < 0.4 ? 1 : 0;                       \
        int64_t len[32];                                                                           \
        for (int64_t b = 0; b < B; b++)                                                            \
            len[b] = lens == 2 ? 0 : b % 3 == 0 ? T - 1 : b % 3 == 1 ? T : (T + 1) / 2;            \
        rnn_ext_params_##SFX p = {w_ih, w_hh, b_ih, b_hh, w_peep, w_hr, ln_ih, ln_hh, ln_c};       \
        if (!cfg.peephole) p.w_peep = NULL;                                                        \
        if (!cfg.P) p.w_hr = NULL;                                                                 \
        if (!cfg.layer_norm) p.ln_ih = p.ln_hh = p.ln_c = NULL;                                    \
        rnn_ext_masks_##SFX m = {rec, zh, Hs, lstm ? zc : NULL, H};                                \
        rnn_dims d = {.T = T, .B = B, .I = I, .H = H, .ts = bf ? 1 : B, .bs = bf ? T : 1,          \
                      .ldx = I, .ldo = Hs, .reverse = rev, .threads = threads,                     \
                      .pool = harness_pool(), .compute = compute};                                 \
        REAL *res[2][3];                                                                           \
        int st[2];                                                                                 \
        int64_t cl[2];                                                                             \
        for (int inf = 0; inf < 2; inf++) {                                                        \
            d.inference = inf;                                                                     \
            cl[inf] = rnn_ext_cache_len(c->kind, &d, &cfg);                                        \
            int64_t wl = rnn_ext_forward_work_len(c->kind, &d, &cfg);                              \
            REAL *cache = inf ? NULL : malloc((size_t)(cl[inf] > 0 ? cl[inf] : 1) * sizeof(REAL)); \
            REAL *work = malloc((size_t)(wl > 0 ? wl : 1) * sizeof(REAL));                         \
            for (int k = 0; k < 3; k++) {                                                          \
                int64_t n = k == 0 ? R * Hs : k == 1 ? B * Hs : B * H;                             \
                res[inf][k] = xmalloc((size_t)n * sizeof(REAL));                                   \
                memset(res[inf][k], 0x5a, (size_t)n * sizeof(REAL));                               \
            }                                                                                      \
            st[inf] = (wl < 0 || (!inf && !cache) || !work)                                        \
                          ? -1                                                                     \
                          : fwd_##SFX(&cc, res[inf][0], res[inf][1], lstm ? res[inf][2] : NULL,    \
                                      cache, x, h0, lstm ? c0 : NULL, &p, masks ? &m : NULL,       \
                                      lens ? len : NULL, &d, work, ws);                            \
            free(cache);                                                                           \
            free(work);                                                                            \
        }                                                                                          \
        char msg[300];                                                                             \
        snprintf(msg, sizeof msg,                                                                  \
                 "%s " #SFX " compute=%d T,B,I,H=%lld,%lld,%lld,%lld bf=%d rev=%d lens=%d "        \
                 "masks=%d threads=%d",                                                            \
                 c->name, compute, (long long)T, (long long)B, (long long)I, (long long)H, bf,     \
                 rev, lens, masks, threads);                                                       \
        char what[400];                                                                            \
        snprintf(what, sizeof what, "%s: both forwards run, the inference one keeps no cache",     \
                 msg);                                                                             \
        check(st[0] == RNN_OK && st[1] == RNN_OK && cl[1] == 0, what);                             \
        int same = 1;                                                                              \
        for (int k = 0; k < (lstm ? 3 : 2); k++) {                                                 \
            int64_t n = k == 0 ? R * Hs : k == 1 ? B * Hs : B * H;                                 \
            same &= memcmp(res[0][k], res[1][k], (size_t)n * sizeof(REAL)) == 0;                   \
        }                                                                                          \
        snprintf(what, sizeof what, "%s: the training forward's bits", msg);                       \
        check(same, what);                                                                         \
        d.inference = 1;                                                                           \
        snprintf(what, sizeof what, "%s: backward refuses an inference forward", msg);             \
        check(bwd_##SFX(&cc, &d) == RNN_ERR_SIZE, what);                                           \
        for (int inf = 0; inf < 2; inf++)                                                          \
            for (int k = 0; k < 3; k++) free(res[inf][k]);                                         \
        FREE_ALL(dv, w_ih, w_hh, b_ih, b_hh, w_peep, w_hr, ln_ih, ln_hh, ln_c, x, h0, c0, rec, zh, \
                 zc);                                                                              \
    }

DEFINE_CASE(float, f32)
DEFINE_CASE(double, f64)

int main(void) {
    void *raw;
    void *ws = aligned64(2 * rnn_gemm_workspace_size(), &raw);
    for (size_t c = 0; c < sizeof CELLS_ / sizeof *CELLS_; c++)
        for (size_t s = 0; s < sizeof SHAPES / sizeof *SHAPES; s++)
            for (int bf = 0; bf < 2; bf++)
                for (int rev = 0; rev < 2; rev++)
                    for (int lens = 0; lens < 3; lens++)
                        for (int masks = 0; masks < 2; masks++)
                            for (int threads = 1; threads <= 2; threads++) {
                                const cell_case *cc = &CELLS_[c];
                                const int64_t *sh = SHAPES[s];
                                run_f64(cc, sh, bf, rev, lens, masks, threads,
                                        RNN_COMPUTE_NATIVE, ws);
                                run_f32(cc, sh, bf, rev, lens, masks, threads,
                                        RNN_COMPUTE_NATIVE, ws);
                                if (rnn_bf16_best_isa() != RNN_BF16_GENERIC || s < 2)
                                    run_f32(cc, sh, bf, rev, lens, masks, threads,
                                            RNN_COMPUTE_BF16, ws);
                            }
    /* float64 kernels have no bfloat16 products, nor any unknown precision:
     * both forwards refuse with RNN_ERR_COMPUTE */
    for (size_t c = 0; c < sizeof CELLS_ / sizeof *CELLS_; c++)
        for (int inf = 0; inf < 2; inf++)
            for (int compute = RNN_COMPUTE_BF16; compute <= 7; compute += 6) {
                const cell_case *cc = &CELLS_[c];
                rnn_dims d = {.T = 3, .B = 2, .I = 2, .H = 3, .ts = 2, .bs = 1, .ldx = 2,
                              .ldo = 3, .compute = compute, .inference = inf};
                rnn_ext_config cfg = cc->cfg;
                const int64_t G = rnn_cell_gates(cc->kind) * 3;
                /* (an unknown precision has no sizes: -1) */
                int64_t wl = rnn_ext_forward_work_len(cc->kind, &d, &cfg);
                int64_t cl = rnn_ext_cache_len(cc->kind, &d, &cfg);
                check(compute == RNN_COMPUTE_BF16 || (wl == -1 && cl == -1),
                      "an unknown precision has no work or cache length");
                wl = wl > 0 ? wl : 0;
                cl = cl > 0 ? cl : 0;
                double *buf = xmalloc((size_t)(wl + cl + 16 * G + 64) * sizeof(double));
                double *v = buf + wl + cl;
                for (int64_t i = 0; i < 16 * G + 64; i++) v[i] = 0.5;
                rnn_ext_params_f64 p = {v, v, v, v, cfg.peephole ? v : NULL, cfg.P ? v : NULL,
                                        cfg.layer_norm ? v : NULL, cfg.layer_norm ? v : NULL,
                                        cfg.layer_norm ? v : NULL};
                int st = fwd_f64(cc, v + 32, v + 48, v + 56, inf ? NULL : buf + wl, v, NULL, NULL,
                                 &p, NULL, NULL, &d, buf, ws);
                char what[200];
                snprintf(what, sizeof what, "%s float64 compute=%d inference=%d: RNN_ERR_COMPUTE",
                         cc->name, compute, inf);
                check(st == RNN_ERR_COMPUTE, what);
                free(buf);
            }
    free(raw);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
