/*
 * cells_ref.h: the plain RNN, LSTM and GRU kernels, kept for the C tests
 * only: the library's one kernel per cell is cells_ext.h's, which at a zero
 * config gives these kernels' cache, outputs and input gradients bit for bit
 * (tests/c/test_one_kernel.c checks it). float32 (_f32) and float64 (_f64).
 *
 * One call runs one layer in one direction over a whole batch (see
 * rnn_common.h for the dimension key and the row(t, b) layout). Weights are
 * PyTorch's, row-major, gate blocks stacked along the first axis:
 *   w_ih (GH, I), w_hh (GH, H), b_ih (GH), b_hh (GH)
 *   RNN G=1; LSTM G=4 in the order i, f, g, o; GRU G=3 in the order r, z, n;
 *   w_peep (3, H): the peephole rows for i, f, o (NULL for a plain LSTM).
 *
 * Forward writes out (R rows, ldo), the final state hT (B, H) (and cT) and
 * a cache for backward. h0/c0 may be NULL (zeros). lengths (B) may be NULL
 * (every sequence has T steps); steps t >= lengths[b] leave sequence b's
 * state unchanged, its output rows zero and receive no gradient.
 *
 * Backward takes dout (R rows, ldo; NULL = zeros) and dhT/dcT (B, H; NULL
 * = zeros) and ADDS into dx (R rows, ldx), dh0/dc0 (B, H) and every weight
 * gradient; the caller zeroes them when it wants plain gradients. The cache
 * is only read, so backward may run more than once per forward.
 *
 * Cache layouts (R rows each, in the row(t, b) order of x; rows of steps
 * past a sequence's length are zero):
 *   RNN:  hs (R, H) h_t | hp (R, H) h_{t-1}
 *   LSTM: gates (R, 4H) sigmoid/tanh of i, f, g, o | cs (R, H) c_t |
 *         hp (R, H) h_{t-1} | cp (R, H) c_{t-1}
 *   GRU:  gates (R, 3H) r, z, n | hn (R, H) W_hn h_{t-1} + b_hn | hp (R, H)
 *
 * Each kernel also takes `work`, scratch of *_work_len(d) elements, and
 * `gemm_ws`, rnn_gemm_workspace_size() bytes (64-byte aligned). Kernels
 * never allocate. They return RNN_OK or an rnn_status code.
 */
#ifndef RNNPY_CELLS_REF_H
#define RNNPY_CELLS_REF_H

#include "rnn_common.h"

/* Elements of the cache and of the scratch each kernel needs (-1 on
 * overflow). kind is an rnn_cell_kind. */
int64_t rnn_cache_len(int kind, const rnn_dims *d);
int64_t rnn_forward_work_len(int kind, const rnn_dims *d);
int64_t rnn_backward_work_len(int kind, const rnn_dims *d);

#define RNNPY_DECLARE_CELLS(REAL, SFX)                                                   \
    /* Elman RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), relu if relu */      \
    int rnn_forward_##SFX(REAL *out, REAL *hT, REAL *cache,                              \
                          const REAL *x, const REAL *h0,                                 \
                          const REAL *w_ih, const REAL *w_hh,                            \
                          const REAL *b_ih, const REAL *b_hh, int relu,                  \
                          const int64_t *lengths, const rnn_dims *d,                     \
                          REAL *work, void *gemm_ws);                                    \
    int rnn_backward_##SFX(REAL *dx, REAL *dh0,                                          \
                           REAL *dw_ih, REAL *dw_hh, REAL *db_ih, REAL *db_hh,           \
                           const REAL *dout, const REAL *dhT,                            \
                           const REAL *cache, const REAL *x,                             \
                           const REAL *w_ih, const REAL *w_hh, int relu,                 \
                           const int64_t *lengths, const rnn_dims *d,                    \
                           REAL *work, void *gemm_ws);                                   \
    /* LSTM, with diagonal peepholes when w_peep is not NULL */                          \
    int lstm_forward_##SFX(REAL *out, REAL *hT, REAL *cT, REAL *cache,                   \
                           const REAL *x, const REAL *h0, const REAL *c0,                \
                           const REAL *w_ih, const REAL *w_hh,                           \
                           const REAL *b_ih, const REAL *b_hh, const REAL *w_peep,       \
                           const int64_t *lengths, const rnn_dims *d,                    \
                           REAL *work, void *gemm_ws);                                   \
    int lstm_backward_##SFX(REAL *dx, REAL *dh0, REAL *dc0,                              \
                            REAL *dw_ih, REAL *dw_hh, REAL *db_ih, REAL *db_hh,          \
                            REAL *dw_peep,                                               \
                            const REAL *dout, const REAL *dhT, const REAL *dcT,          \
                            const REAL *cache, const REAL *x,                            \
                            const REAL *w_ih, const REAL *w_hh, const REAL *w_peep,      \
                            const int64_t *lengths, const rnn_dims *d,                   \
                            REAL *work, void *gemm_ws);                                  \
    /* GRU, PyTorch's formulation: n = tanh(W_in x + b_in + r*(W_hn h + b_hn)) */         \
    int gru_forward_##SFX(REAL *out, REAL *hT, REAL *cache,                              \
                          const REAL *x, const REAL *h0,                                 \
                          const REAL *w_ih, const REAL *w_hh,                            \
                          const REAL *b_ih, const REAL *b_hh,                            \
                          const int64_t *lengths, const rnn_dims *d,                     \
                          REAL *work, void *gemm_ws);                                    \
    int gru_backward_##SFX(REAL *dx, REAL *dh0,                                          \
                           REAL *dw_ih, REAL *dw_hh, REAL *db_ih, REAL *db_hh,           \
                           const REAL *dout, const REAL *dhT,                            \
                           const REAL *cache, const REAL *x,                             \
                           const REAL *w_ih, const REAL *w_hh,                           \
                           const int64_t *lengths, const rnn_dims *d,                    \
                           REAL *work, void *gemm_ws);

RNNPY_DECLARE_CELLS(float, f32)
RNNPY_DECLARE_CELLS(double, f64)

#endif /* RNNPY_CELLS_REF_H */
