/*
 * cells_ext.h: the cells, forward and backward through time, float32 (_f32)
 * and float64 (_f64): one kernel per cell kind and direction, the only entry
 * points of the library (the binding calls them with a zero config for a
 * plain cell). Options, chosen by rnn_ext_config and the masks:
 *
 *   layer normalisation   (LSTM, GRU; Ba, Kiros & Hinton 2016)
 *   zoneout               (all cells; Krueger et al. 2017)
 *   recurrent dropout     (all cells; Gal & Ghahramani 2016, one mask per sequence)
 *   projection            (LSTM; Sak et al. 2014, PyTorch's proj_size)
 *   peepholes             (LSTM, combinable with all of the above)
 *
 * One call runs one layer in one direction over a whole batch (see
 * rnn_common.h for the dimension key and the row(t, b) layout). Weights are
 * PyTorch's, row-major, gate blocks stacked along the first axis: RNN G=1;
 * LSTM G=4 in the order i, f, g, o; GRU G=3 in the order r, z, n.
 *
 * Forward writes out (R rows, ldo), the final state hT (B, Hs) (and cT) and a
 * cache for backward. h0/c0 may be NULL (zeros). lengths (B) may be NULL
 * (every sequence has T steps); steps t >= lengths[b] leave sequence b's
 * state unchanged, its output rows zero and receive no gradient. Backward
 * takes dout (R rows, ldo; NULL = zeros) and dhT/dcT (NULL = zeros) and ADDS
 * into dx (R rows, ldx), dh0/dc0 and every weight gradient; the caller zeroes
 * them when it wants plain gradients. The cache is only read, so backward
 * may run more than once per forward. Each kernel also takes `work`, scratch
 * of rnn_ext_*_work_len elements, and `gemm_ws`, d->threads (at least one)
 * times rnn_gemm_workspace_size() bytes (64-byte aligned). Kernels never
 * allocate. They return RNN_OK or an rnn_status code.
 *
 * Sizes. H is d->H, the cell's hidden units (the LSTM's cell state c has H).
 * Hs is the size of the recurrent state h: P for a projected LSTM, else H.
 * out, dout, h0, hT, dh0, dhT have Hs columns; c0, cT, dc0, dcT have H.
 * d->ldo must be >= Hs (not H); the ext kernels check dims with
 * rnn_ext_dims_check, never rnn_dims_check.
 *
 * Parameters (rnn_ext_params_*; gradients rnn_ext_grads_* have the same
 * fields and shapes; a field is NULL when its option is off):
 *   w_ih (GH, I), w_hh (GH, Hs), b_ih (GH), b_hh (GH)   as PyTorch
 *   w_peep (3, H)   LSTM peepholes on i, f, o
 *   w_hr   (P, H)   LSTM projection: h~_t = W_hr (o * tanh(c_t))
 *   ln_ih  (GH)     gain of the layer norm of W_ih x_t (over all GH values)
 *   ln_hh  (GH)     gain of the layer norm of W_hh h_{t-1} (over all GH values)
 *   ln_c   (2, H)   LSTM: gain (row 0) and bias (row 1) of the norm of c_t
 * b_ih and b_hh are the shifts of the two input norms. LN(v) = (v - mean(v))
 * / sqrt(var(v) + RNN_LN_EPS), var the biased variance.
 *
 * LSTM with every option (p = 0 without peepholes, LN = identity and
 * gains 1 without layer_norm, W_hr = identity without projection):
 *   a   = ln_ih*LN(W_ih x_t) + b_ih + ln_hh*LN(W_hh (m_b*h_{t-1})) + b_hh
 *   i   = sig(a_i + p_i*c_{t-1})   f = sig(a_f + p_f*c_{t-1})   g = tanh(a_g)
 *   c~  = f*c_{t-1} + i*g          o = sig(a_o + p_o*c~)
 *   h~  = W_hr (o * tanh(ln_c[0]*LN(c~) + ln_c[1]))
 *   c_t = zc*c_{t-1} + (1-zc)*c~   h_t = zh*h_{t-1} + (1-zh)*h~    out_t = h_t
 * (the peephole on o reads c~; the cell-state norm, like the paper, does not
 * change the state carried forward: c~ is carried, its norm feeds only tanh)
 *
 * GRU (PyTorch's formulation, r, z, n gate blocks):
 *   u = ln_ih*LN(W_ih x_t) + b_ih        v = ln_hh*LN(W_hh (m_b*h_{t-1})) + b_hh
 *   r = sig(u_r + v_r)   z = sig(u_z + v_z)   n = tanh(u_n + r*v_n)
 *   h~ = (1-z)*n + z*h_{t-1}           h_t = zh*h_{t-1} + (1-zh)*h~
 * RNN: h~ = act(W_ih x_t + b_ih + W_hh (m_b*h_{t-1}) + b_hh), act tanh or
 *   relu (cfg->relu), h_t = zh*h_{t-1} + (1-zh)*h~; no layer norm.
 *
 * Masks (rnn_ext_masks_*; NULL = off), fixed inputs (not differentiated):
 *   rec   (B, Hs)  m_b, multiplies h_{t-1} where it enters W_hh only (the
 *                  GRU's z-interpolation and zoneout use the unmasked h);
 *                  the caller scales it (0 or 1/(1-p) for inverted dropout)
 *   zh    zoneout of h: row(t, b) of the mask is zh + row(t, b)*zh_ld, Hs
 *         values; zh_ld = Hs gives one mask row per step and sequence
 *         (training: 1 keeps the previous value, 0 takes the new one) and
 *         zh_ld = 0 one row for all (evaluation: the probability itself)
 *   zc    (LSTM) zoneout of c, likewise with zc_ld and H values
 * The layer's output at a step is h_t after zoneout. Steps past a
 * sequence's length leave its state unchanged whatever the masks say.
 * m itself may be NULL (no masks). zh_ld and zc_ld must be 0 or at least
 * the row width (Hs, H); anything else is RNN_ERR_LD. They are read only
 * when their mask is given.
 *
 * Pointers: forward needs w_ih, w_hh, b_ih, b_hh and every array its
 * config turns on; backward does not read b_ih, b_hh. h0, c0, dout, dhT
 * and dcT may be NULL (zeros). The cache and scratch layouts are
 * documented at the top of each kernel file, beside the functions that size them.
 */
#ifndef RNNPY_CELLS_EXT_H
#define RNNPY_CELLS_EXT_H

#include "rnn_common.h"

#define RNN_LN_EPS 1e-5

/* The options of one extended cell (dtype-free). */
typedef struct {
    int64_t P;      /* LSTM projection size, 0 = none (then 0 < P < H) */
    int peephole;   /* LSTM: w_peep present */
    int layer_norm; /* LSTM, GRU: ln_ih, ln_hh (and the LSTM's ln_c) present */
    int relu;       /* RNN: relu instead of tanh */
} rnn_ext_config;

/* d checked as rnn_dims_check does, except that ldo must be >= Hs; also
 * checks cfg against kind (a projection only on an LSTM with 0 < P < H,
 * layer_norm not on an RNN, peephole only on an LSTM). */
int rnn_ext_dims_check(int kind, const rnn_dims *d, const rnn_ext_config *cfg);

/* A zoneout mask's stride: RNN_OK when mask is NULL or ld is 0 or at least
 * the row width n; RNN_ERR_LD for any other ld, RNN_ERR_SIZE when T*B*ld
 * overflows. */
int rnn_ext_mask_check(const void *mask, int64_t ld, int64_t n, const rnn_dims *d);

/* Hs: cfg->P when it is positive (LSTM), else d->H. */
static inline int64_t rnn_ext_state_size(const rnn_dims *d, const rnn_ext_config *cfg) {
    return cfg->P > 0 ? cfg->P : d->H;
}

/* Elements of the cache and scratch of each kernel (-1 on overflow or a
 * bad config). kind: RNN_CELL_TANH/RELU (cfg->relu must agree), RNN_CELL_LSTM
 * (peepholes by cfg->peephole; RNN_CELL_PEEPHOLE is accepted too) or
 * RNN_CELL_GRU. The caches depend on the options, not on the masks. */
int64_t rnn_ext_cache_len(int kind, const rnn_dims *d, const rnn_ext_config *cfg);
int64_t rnn_ext_forward_work_len(int kind, const rnn_dims *d, const rnn_ext_config *cfg);
int64_t rnn_ext_backward_work_len(int kind, const rnn_dims *d, const rnn_ext_config *cfg);
/* Whether W_ih (G x I) fits in a core's L2 beside the step's work:
 * G*I <= RNN_PROJ_BLOCK_MAX_ELEMS. */
#ifndef RNN_PROJ_BLOCK_MAX_ELEMS
#define RNN_PROJ_BLOCK_MAX_ELEMS (1 << 18)
#endif
static inline int rnn_w_ih_fits(const rnn_dims *d, int64_t G) {
    return (double)G * (double)d->I <= (double)RNN_PROJ_BLOCK_MAX_ELEMS;
}
/* Elements of gates per block of steps whose input projection a forward
 * computes just ahead of those steps: enough rows to keep the product
 * efficient at small B, few enough to stay in cache. Every block reads all
 * of W_ih, so where W_ih does not fit in L2 (an inference forward there)
 * the blocks are larger, RNN_PROJ_ELEMS_LARGE: W_ih then streams from
 * memory once per 4 MiB of rows (float32) instead of per 256 KiB (measured,
 * LSTM inference at I = H = 1024: 1.03-1.23x at B 64 and 32, one and two
 * threads, 1.10-1.14x at B 1; at I = H = 512, B 1-4, 1.01-1.10x; GRU
 * I = H = 1024, B 32, 1.14-1.17x; at I = H = 256, where W_ih fits, the
 * larger blocks lost 10%). */
#ifndef RNN_PROJ_ELEMS
#define RNN_PROJ_ELEMS 65536
#endif
#ifndef RNN_PROJ_ELEMS_LARGE
#define RNN_PROJ_ELEMS_LARGE (1 << 20)
#endif
/* Steps per such block for G gate rows per step: at least min(2, T) (a
 * block may start a step early), at most T. */
static inline int64_t rnn_ext_proj_steps(const rnn_dims *d, int64_t G) {
    const int64_t elems = rnn_w_ih_fits(d, G) ? RNN_PROJ_ELEMS : RNN_PROJ_ELEMS_LARGE;
    int64_t per = d->B * G, tc = per > 0 ? elems / per : 1;
    tc = tc < 2 ? 2 : tc;
    return tc > d->T ? d->T : tc;
}
/* Whether a forward computes its input projection x W_ih^T a block of
 * steps ahead (rnn_ext_proj_steps) rather than for all R rows at once into
 * the cache: always at inference; in training where W_ih fits in L2, since
 * every block streams all of it (measured: with blocks the LSTM's training
 * forward ran 1.06-1.38x faster at G*I up to 2^18, and 0.93-0.99x at
 * H = 512, 0.78x at H = 1024 on two threads). */
static inline int rnn_proj_blocks(const rnn_dims *d, int64_t G) {
    return d->inference || rnn_w_ih_fits(d, G);
}

/* Steps per block of a backward's weight gradients, for G gate columns:
 * the products over the steps' rows (dW_ih, dW_hh, db, dx) run once a block
 * of steps is done, while its gate gradients are still in cache, instead of
 * over all R rows after the time loop, when they have gone to memory. About
 * RNN_BWD_ROWS rows (one KC-deep slice of the GEMM: as many passes over the
 * weight gradients as one product of all rows makes), at least one step.
 * T (one block after the loop, in the rows' own order) where a block's
 * gradients would not stay in L2 beside the packed W_hh (G > RNN_BWD_MAX_G
 * = 1024 in float32: measured at H = 512 the blocks lost 2-6%, at H = 64-256 they won
 * 3-12%), or where one block holds every step anyway. */
#ifndef RNN_BWD_ROWS
#define RNN_BWD_ROWS 256
#endif
#ifndef RNN_BWD_MAX_G
#define RNN_BWD_MAX_G 1024
#endif
static inline int64_t rnn_bwd_block_steps(const rnn_dims *d, int64_t G) {
    if (d->B <= 0 || G > RNN_BWD_MAX_G) return d->T;
    int64_t tb = RNN_BWD_ROWS / d->B;
    tb = tb < 1 ? 1 : tb;
    return tb > d->T ? d->T : tb;
}
/* Elements (of float) of a step product's packed op(W), K x N, in the
 * precision d->compute asks for (the larger of the two layouts, so a kernel's
 * scratch suits either); -1 on overflow. */
int64_t rnn_ext_packed_len(const rnn_dims *d, int64_t N, int64_t K);
/* The same per kind, defined beside each kernel (rnn_ext.c, lstm_ext.c,
 * gru_ext.c); the three above check cfg and dispatch to them. */
#define RNNPY_DECLARE_EXT_LENS(K)                                                             \
    int64_t rnn_ext_cache_len_##K(const rnn_dims *d, const rnn_ext_config *cfg);             \
    int64_t rnn_ext_forward_work_len_##K(const rnn_dims *d, const rnn_ext_config *cfg);      \
    int64_t rnn_ext_backward_work_len_##K(const rnn_dims *d, const rnn_ext_config *cfg);
RNNPY_DECLARE_EXT_LENS(rnn)
RNNPY_DECLARE_EXT_LENS(lstm)
RNNPY_DECLARE_EXT_LENS(gru)

/* forward and backward of a cell whose only state is h (rnn, gru) */
#define RNNPY_DECLARE_H_CELL(CELL, REAL, SFX)                                                 \
    int CELL##_ext_forward_##SFX(REAL *out, REAL *hT, REAL *cache, const REAL *x,            \
                                 const REAL *h0, const rnn_ext_params_##SFX *p,              \
                                 const rnn_ext_masks_##SFX *m, const rnn_ext_config *cfg,    \
                                 const int64_t *lengths, const rnn_dims *d, REAL *work,      \
                                 void *gemm_ws);                                             \
    int CELL##_ext_backward_##SFX(REAL *dx, REAL *dh0, const rnn_ext_grads_##SFX *g,         \
                                  const REAL *dout, const REAL *dhT, const REAL *cache,      \
                                  const REAL *x, const rnn_ext_params_##SFX *p,              \
                                  const rnn_ext_masks_##SFX *m, const rnn_ext_config *cfg,   \
                                  const int64_t *lengths, const rnn_dims *d, REAL *work,     \
                                  void *gemm_ws);

#define RNNPY_DECLARE_EXT_CELLS(REAL, SFX)                                                    \
    typedef struct {                                                                         \
        const REAL *w_ih, *w_hh, *b_ih, *b_hh, *w_peep, *w_hr, *ln_ih, *ln_hh, *ln_c;          \
    } rnn_ext_params_##SFX;                                                                  \
    typedef struct {                                                                         \
        REAL *w_ih, *w_hh, *b_ih, *b_hh, *w_peep, *w_hr, *ln_ih, *ln_hh, *ln_c;                \
    } rnn_ext_grads_##SFX;                                                                   \
    typedef struct {                                                                         \
        const REAL *rec;                                                                     \
        const REAL *zh;                                                                      \
        int64_t zh_ld;                                                                       \
        const REAL *zc;                                                                      \
        int64_t zc_ld;                                                                       \
    } rnn_ext_masks_##SFX;                                                                   \
    RNNPY_DECLARE_H_CELL(rnn, REAL, SFX)                                                     \
    int lstm_ext_forward_##SFX(REAL *out, REAL *hT, REAL *cT, REAL *cache, const REAL *x,    \
                               const REAL *h0, const REAL *c0,                               \
                               const rnn_ext_params_##SFX *p, const rnn_ext_masks_##SFX *m,  \
                               const rnn_ext_config *cfg, const int64_t *lengths,            \
                               const rnn_dims *d, REAL *work, void *gemm_ws);                \
    int lstm_ext_backward_##SFX(REAL *dx, REAL *dh0, REAL *dc0,                              \
                                const rnn_ext_grads_##SFX *g, const REAL *dout,              \
                                const REAL *dhT, const REAL *dcT, const REAL *cache,         \
                                const REAL *x, const rnn_ext_params_##SFX *p,                \
                                const rnn_ext_masks_##SFX *m, const rnn_ext_config *cfg,     \
                                const int64_t *lengths, const rnn_dims *d, REAL *work,       \
                                void *gemm_ws);                                              \
    RNNPY_DECLARE_H_CELL(gru, REAL, SFX)

RNNPY_DECLARE_EXT_CELLS(float, f32)
RNNPY_DECLARE_EXT_CELLS(double, f64)

#endif /* RNNPY_CELLS_EXT_H */
