/* gru_ext.c: placeholder until the kernel lands; every call fails. */
#include "cells_ext.h"

int64_t rnn_ext_cache_len_gru(const rnn_dims *d, const rnn_ext_config *cfg) { (void)d; (void)cfg; return -1; }
int64_t rnn_ext_forward_work_len_gru(const rnn_dims *d, const rnn_ext_config *cfg) { (void)d; (void)cfg; return -1; }
int64_t rnn_ext_backward_work_len_gru(const rnn_dims *d, const rnn_ext_config *cfg) { (void)d; (void)cfg; return -1; }
int gru_ext_forward_f32(float *out, float *hT, float *cache, const float *x, const float *h0, const rnn_ext_params_f32 *p, const rnn_ext_masks_f32 *m, const rnn_ext_config *cfg, const int64_t *lengths, const rnn_dims *d, float *work, void *gemm_ws) {
    (void)out; (void)hT; (void)cache; (void)x; (void)h0; (void)p; (void)m; (void)cfg; (void)lengths; (void)d; (void)work; (void)gemm_ws;
    return RNN_ERR_SIZE;
}
int gru_ext_backward_f32(float *dx, float *dh0, const rnn_ext_grads_f32 *g, const float *dout, const float *dhT, const float *cache, const float *x, const rnn_ext_params_f32 *p, const rnn_ext_masks_f32 *m, const rnn_ext_config *cfg, const int64_t *lengths, const rnn_dims *d, float *work, void *gemm_ws) {
    (void)dx; (void)dh0; (void)g; (void)dout; (void)dhT; (void)cache; (void)x; (void)p; (void)m; (void)cfg; (void)lengths; (void)d; (void)work; (void)gemm_ws;
    return RNN_ERR_SIZE;
}
int gru_ext_forward_f64(double *out, double *hT, double *cache, const double *x, const double *h0, const rnn_ext_params_f64 *p, const rnn_ext_masks_f64 *m, const rnn_ext_config *cfg, const int64_t *lengths, const rnn_dims *d, double *work, void *gemm_ws) {
    (void)out; (void)hT; (void)cache; (void)x; (void)h0; (void)p; (void)m; (void)cfg; (void)lengths; (void)d; (void)work; (void)gemm_ws;
    return RNN_ERR_SIZE;
}
int gru_ext_backward_f64(double *dx, double *dh0, const rnn_ext_grads_f64 *g, const double *dout, const double *dhT, const double *cache, const double *x, const rnn_ext_params_f64 *p, const rnn_ext_masks_f64 *m, const rnn_ext_config *cfg, const int64_t *lengths, const rnn_dims *d, double *work, void *gemm_ws) {
    (void)dx; (void)dh0; (void)g; (void)dout; (void)dhT; (void)cache; (void)x; (void)p; (void)m; (void)cfg; (void)lengths; (void)d; (void)work; (void)gemm_ws;
    return RNN_ERR_SIZE;
}
