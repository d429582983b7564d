/*
 * rnn_ext_common.c: the checks and size dispatch the extended cells share
 * (the kernels themselves are rnn_ext.c, lstm_ext.c and gru_ext.c).
 */
#include "cells_ext.h"
#include "bf16.h"
#include "gemm.h"

static int is_lstm_kind(int kind) { return kind == RNN_CELL_LSTM || kind == RNN_CELL_PEEPHOLE; }

int rnn_ext_dims_check(int kind, const rnn_dims *d, const rnn_ext_config *cfg) {
    if (!d || !cfg) return RNN_ERR_NULL;
    if (rnn_cell_gates(kind) == 0) return RNN_ERR_SIZE;
    if (cfg->P < 0 || (cfg->P > 0 && (!is_lstm_kind(kind) || cfg->P >= d->H))) return RNN_ERR_SIZE;
    if (cfg->peephole && !is_lstm_kind(kind)) return RNN_ERR_SIZE;
    if (cfg->layer_norm && (kind == RNN_CELL_TANH || kind == RNN_CELL_RELU)) return RNN_ERR_SIZE;
    if ((kind == RNN_CELL_RELU) != (cfg->relu != 0)) return RNN_ERR_SIZE;
    /* rnn_dims_check with ldo measured against Hs rather than H */
    rnn_dims c = *d;
    if (c.ldo >= rnn_ext_state_size(d, cfg) && c.ldo < c.H) c.ldo = c.H;
    return rnn_dims_check(&c);
}

int rnn_ext_mask_check(const void *mask, int64_t ld, int64_t n, const rnn_dims *d) {
    if (!mask) return RNN_OK;
    if (ld < 0 || (ld > 0 && ld < n)) return RNN_ERR_LD;
    if (rnn_mul(rnn_mul(d->T, d->B), ld) < 0) return RNN_ERR_SIZE;
    return RNN_OK;
}

int64_t rnn_ext_cache_len(int kind, const rnn_dims *d, const rnn_ext_config *cfg) {
    if (rnn_ext_dims_check(kind, d, cfg)) return -1;
    if (is_lstm_kind(kind)) return rnn_ext_cache_len_lstm(d, cfg);
    return kind == RNN_CELL_GRU ? rnn_ext_cache_len_gru(d, cfg) : rnn_ext_cache_len_rnn(d, cfg);
}

int64_t rnn_ext_forward_work_len(int kind, const rnn_dims *d, const rnn_ext_config *cfg) {
    if (rnn_ext_dims_check(kind, d, cfg)) return -1;
    if (is_lstm_kind(kind)) return rnn_ext_forward_work_len_lstm(d, cfg);
    return kind == RNN_CELL_GRU ? rnn_ext_forward_work_len_gru(d, cfg)
                                : rnn_ext_forward_work_len_rnn(d, cfg);
}

int64_t rnn_ext_backward_work_len(int kind, const rnn_dims *d, const rnn_ext_config *cfg) {
    if (rnn_ext_dims_check(kind, d, cfg)) return -1;
    if (is_lstm_kind(kind)) return rnn_ext_backward_work_len_lstm(d, cfg);
    return kind == RNN_CELL_GRU ? rnn_ext_backward_work_len_gru(d, cfg)
                                : rnn_ext_backward_work_len_rnn(d, cfg);
}

int64_t rnn_ext_packed_len(const rnn_dims *d, int64_t N, int64_t K) {
    int64_t n = rnn_gemm_packed_len(N, K);
    if (n < 0 || d->compute != RNN_COMPUTE_BF16) return n;
    size_t bytes = rnn_gemm_bf16_packed_size(N, K);
    if (bytes == 0 || bytes > (size_t)INT64_MAX - sizeof(float)) return -1;
    int64_t m = (int64_t)((bytes + sizeof(float) - 1) / sizeof(float));
    return m > n ? m : n;
}
