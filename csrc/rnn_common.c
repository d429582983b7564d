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
    case RNN_ERR_COMPUTE: return "the compute precision is not offered for this dtype";
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
    if (d->compute != RNN_COMPUTE_NATIVE && d->compute != RNN_COMPUTE_BF16) return RNN_ERR_COMPUTE;
    return RNN_OK;
}

int rnn_lengths_check(const rnn_dims *d, const int64_t *lengths) {
    if (!lengths) return RNN_OK;
    for (int64_t b = 0; b < d->B; b++)
        if (lengths[b] < 0 || lengths[b] > d->T) return RNN_ERR_LENGTHS;
    return RNN_OK;
}

int rnn_isa_pick(const rnn_isa_path *paths, int n, int (*supported)(int), int want) {
    for (int i = 0; i < n; i++)
        if (paths[i].isa == want && supported(want)) return want;
    for (int i = 0; i < n - 1; i++)
        if (supported(paths[i].isa)) return paths[i].isa;
    return paths[n - 1].isa;
}

const char *rnn_isa_path_name(const rnn_isa_path *paths, int n, int isa) {
    for (int i = 0; i < n; i++)
        if (paths[i].isa == isa) return paths[i].name;
    return "unknown";
}
