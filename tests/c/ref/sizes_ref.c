/*
 * sizes_ref.c: the cache and scratch sizes of the plain reference kernels
 * (cells_ref.h), which the tests compare the library's cells against.
 */
/* Sizes of the cache and scratch of each kernel, in elements; the layouts
 * are documented beside each kernel. -1 when a product overflows. */
#include "cells_ref.h"
#include "gemm.h"

static int64_t add3(int64_t a, int64_t b, int64_t c) { return rnn_add(rnn_add(a, b), c); }

int64_t rnn_cache_len(int kind, const rnn_dims *d) {
    int64_t R = rnn_mul(d->T, d->B), G = rnn_cell_gates(kind);
    if (G == 0) return -1;
    /* gates (R, GH) and, besides, RNN 1, LSTM 3, GRU 2 arrays of (R, H) */
    int64_t extra = kind == RNN_CELL_GRU ? 2 : (G == 4 ? 3 : 1);
    int64_t RH = rnn_mul(R, d->H);
    return add3(rnn_mul(RH, G), rnn_mul(RH, extra), 0);
}

int64_t rnn_forward_work_len(int kind, const rnn_dims *d) {
    int64_t G = rnn_cell_gates(kind);
    if (G == 0) return -1;
    int64_t GH = rnn_mul(G, d->H);
    /* pre (B, GH), the LSTM's summed bias (GH), and W_hh^T packed for the
     * step products */
    /* ... and, for the LSTM, W_ih^T packed for its blocks of steps */
    return add3(rnn_mul(d->B, GH), G == 4 ? add3(GH, rnn_gemm_packed_len(GH, d->I), 0) : 0,
                rnn_gemm_packed_len(GH, d->H));
}

int64_t rnn_backward_work_len(int kind, const rnn_dims *d) {
    int64_t R = rnn_mul(d->T, d->B), G = rnn_cell_gates(kind);
    if (G == 0) return -1;
    int64_t GH = rnn_mul(G, d->H), BH = rnn_mul(d->B, d->H);
    /* dG (R, GH) | GRU: dHN (R, H) | dh, dhr (and LSTM dc) (B, H) | dGs (B, GH) */
    int64_t big = add3(rnn_mul(R, GH), kind == RNN_CELL_GRU ? rnn_mul(R, d->H) : 0, 0);
    /* ... | the per-step bias sums: LSTM, RNN dbs (GH), GRU dbx, dbs (GH each) |
     * W_hh packed for the step products | W_ih packed for dx */
    int64_t small = add3(rnn_mul(BH, G == 4 ? 3 : 2),
                         add3(rnn_mul(d->B, GH), kind == RNN_CELL_GRU ? rnn_mul(2, GH) : GH, 0),
                         add3(rnn_gemm_packed_len(d->H, GH), rnn_gemm_packed_len(d->I, GH), 0));
    return add3(big, small, 0);
}
