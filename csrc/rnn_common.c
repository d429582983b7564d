/*
 * rnn_common.c: status strings and the argument checks every kernel shares.
 */
#include "rnn_common.h"

const char *rnn_status_string(int status) {
    switch (status) {
    case RNN_OK: return "ok";
    case RNN_ERR_NULL: return "a required array was missing";
    case RNN_ERR_SIZE: return "a size was not positive or too large";
    case RNN_ERR_LENGTHS: return "a sequence length was outside [0, T]";
    case RNN_ERR_LD: return "a leading dimension was smaller than its row";
    case RNN_ERR_WORKSPACE: return "the workspace was too small";
    default: return "unknown error";
    }
}

int rnn_cell_gates(int kind) {
    switch (kind) {
    case RNN_CELL_TANH:
    case RNN_CELL_RELU: return 1;
    case RNN_CELL_LSTM:
    case RNN_CELL_PEEPHOLE: return 4;
    case RNN_CELL_GRU: return 3;
    default: return 0;
    }
}

int rnn_dims_check(const rnn_dims *d) {
    if (!d) return RNN_ERR_NULL;
    if (d->T <= 0 || d->B <= 0 || d->I <= 0 || d->H <= 0) return RNN_ERR_SIZE;
    /* every product the kernels form must fit: R*max(ld, 4H) and B*4H */
    int64_t R = rnn_mul(d->T, d->B);
    int64_t GH = rnn_mul(4, d->H);
    if (R < 0 || GH < 0) return RNN_ERR_SIZE;
    if (rnn_mul(R, GH) < 0 || rnn_mul(R, d->ldx) < 0 || rnn_mul(R, d->ldo) < 0)
        return RNN_ERR_SIZE;
    if (d->ldx < d->I || d->ldo < d->H) return RNN_ERR_LD;
    int time_major = d->ts == d->B && d->bs == 1;
    int batch_first = d->ts == 1 && d->bs == d->T;
    if (!time_major && !batch_first) return RNN_ERR_SIZE;
    return RNN_OK;
}

int rnn_lengths_check(const rnn_dims *d, const int64_t *lengths) {
    if (!lengths) return RNN_OK;
    for (int64_t b = 0; b < d->B; b++)
        if (lengths[b] < 0 || lengths[b] > d->T) return RNN_ERR_LENGTHS;
    return RNN_OK;
}

/* Sizes of the cache and scratch of each kernel, in elements; the layouts
 * are documented beside each kernel. -1 when a product overflows. */
#include "cells.h"
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
