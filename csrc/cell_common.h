/*
 * cell_common.h: helpers the cell templates share, instantiated per dtype.
 *
 * Included by the cell kernels inside their template section, after
 * REAL and SFX are defined (SFX(name) -> name_f32 or name_f64).
 */
#include <string.h>
#include "gemm.h"
#include "bf16.h"
#include "activations.h"

#ifndef RNNPY_CELL_COMMON_ONCE
#define RNNPY_CELL_COMMON_ONCE
/* The elementwise gate loops are compiled once per instruction set from one
 * always-inline body (so the compiler vectorises them for AVX-512 or AVX2
 * while the library is built without -march) and picked at run time with
 * the GEMM's choice. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(RNN_GEMM_PORTABLE)
#define CELL_X86 1
#define CELL_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))
#define CELL_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define CELL_X86 0
#endif
#ifdef __GNUC__
#define CELL_INLINE inline __attribute__((always_inline))
#else
#define CELL_INLINE inline
#endif

/* Threads for one step's elementwise pass over B rows of n values each:
 * below about 32k values the fork costs more than the pass. Rows are
 * independent, so the result does not depend on the count. */
static inline int rnn_elem_threads(const rnn_dims *d, int64_t n) {
    if (d->threads <= 1 || d->B < 2 || d->B * n < 32768) return 1;
    int k = d->threads < RNN_MAX_THREADS ? d->threads : RNN_MAX_THREADS;
    return k < d->B ? k : (int)d->B;
}

/* Whether a call's products with a weight of K rows (op(W), K x N) read it
 * where it lies, one row-vector product per step (rnn_gemm's M == 1 path),
 * instead of packing it once per call: a batch of one over few steps, in
 * the native precision. Packing costs a pass over the weight; reading it in
 * place costs every step a horizontal sum per column, which matters less
 * the longer the columns. Measured (LSTM, B = 1, one thread): at H = 256
 * reading in place is 2.9x faster at T = 1, 1.3x at T = 8, and loses from
 * T = 12-24; at H = 64, 1.6x at T = 1, 1.15x at T = 2, and loses from T = 4:
 * so T = 1, or T <= K / 32. The training and the inference forward (and the
 * backward) decide from the same dims and K, so the forwards keep the same
 * sums (and bits). */
static inline int rnn_in_place(const rnn_dims *d, int64_t K) {
    return d->B == 1 && (d->T == 1 || d->T * 32 <= K) && d->compute == RNN_COMPUTE_NATIVE;
}

/* A step's elementwise pass over rows [b0, b1) of the batch; ctx holds what
 * the kernel's loop body reads. */
typedef void (*rnn_rows_fn)(void *ctx, int64_t b0, int64_t b1);
typedef struct {
    rnn_rows_fn fn;
    void *ctx;
    int64_t rows;
    int n;
} rnn_rows_job;
static inline void rnn_rows_task(void *job, int i) {
    const rnn_rows_job *j = job;
    int64_t b0, b1;
    rnn_pool_part(j->rows, j->n, i, &b0, &b1);
    j->fn(j->ctx, b0, b1);
}
/* Runs fn over `rows` rows in ne contiguous parts on d's pool (the rows are
 * independent, so which thread runs a part does not change the result). */
static inline void rnn_par_rows(const rnn_dims *d, int ne, int64_t rows, rnn_rows_fn fn,
                                void *ctx) {
    if (ne <= 1) {
        fn(ctx, 0, rows);
        return;
    }
    rnn_rows_job j = {fn, ctx, rows, ne};
    rnn_pool_run(d->pool, ne, rnn_rows_task, &j);
}


/* A step split by rows. Sequences do not interact within a step: every
 * product of a step (h W_hh^T, its backward dG W_hh, the projection's) and
 * its elementwise pass take row b of their inputs to row b of their
 * outputs. So a step can run as one job of row blocks, each task computing
 * its rows' products and then their elementwise pass on one thread, instead
 * of a job per product split by columns and one more for the rows: one
 * barrier per step instead of two or three, each thread's gates made and
 * used in its own caches, and the elementwise work split whatever its
 * size. Each task reads the whole packed W_hh, so the split is for weights
 * that fit in a core's L2 beside the step's rows (RNN_L2_WEIGHT_BYTES).
 *
 * The bits are those of the unsplit step: a product's row does not depend
 * on the rows computed with it (the micro-kernel sums every element in the
 * same order, whatever the tile's height). A product of one row runs the
 * packed row-vector kernel, which today sums in that order too; blocks keep
 * two rows or more all the same, so that a change to that kernel cannot
 * change a split step's bits. */
#ifndef RNN_STEP_SPLIT_MIN_MADDS
/* a step's product below this is not split (2^19: about 8 us on one core).
 * 2^18 gained up to 1.15x on idle cores but lost up to 2x with the other
 * core busy, where a worker preempted in a step of a few microseconds
 * stalls the caller; at 2^19 two threads stay about even with one there. */
#define RNN_STEP_SPLIT_MIN_MADDS (1 << 19)
#endif
/* Row blocks of a step of a call whose step product is B x N x K, with
 * weights of elt bytes: 1 (not split) or the number of tasks. */
static inline int rnn_step_split(const rnn_dims *d, int64_t N, int64_t K, size_t elt) {
    double madds = (double)d->B * (double)N * (double)K;
    double wbytes = (double)N * (double)K * (double)(d->compute == RNN_COMPUTE_BF16 ? 2 : elt);
    if (d->threads <= 1 || d->B < 4 || wbytes > RNN_L2_WEIGHT_BYTES) return 1;
    if (madds < RNN_STEP_SPLIT_MIN_MADDS) return 1;
    int64_t n = d->threads < RNN_MAX_THREADS ? d->threads : RNN_MAX_THREADS;
    if (n > d->B / 2) n = d->B / 2; /* two rows or more each */
    return (int)n;
}
/* A step split by units. Where the row split would give each thread few
 * rows against all of W_hh (a small batch: rows under a register tile's
 * height, and W_hh streamed through every core's L2, or from L3 where it
 * does not fit), a step can instead run as one job of unit blocks: task i
 * computes, for every row, the gate columns of its units (gate by gate,
 * from W_hh packed per gate: a slice of it, which stays in its core's L2
 * step after step) and then those units' elementwise pass; one barrier per
 * step, as with rows. The next step's product reads all of h_{t-1}, so h
 * is double-buffered. Unit blocks are multiples of RNN_GEMM_NR_MAX (the
 * packed strips' boundary), so each element is summed as in the unsplit
 * product and the bits are the same. The kernel decides which options
 * allow it (elementwise work that spans a row, such as layer norm, does
 * not). Returns 1 (not split) or the number of tasks. */
#ifndef RNN_UNIT_SPLIT_MAX_B
#define RNN_UNIT_SPLIT_MAX_B 8
#endif
static inline int rnn_unit_split(const rnn_dims *d, int64_t H) {
    const int64_t nq = (H + RNN_GEMM_NR_MAX - 1) / RNN_GEMM_NR_MAX;
    if (d->threads <= 1 || d->compute != RNN_COMPUTE_NATIVE || nq < 2) return 1;
    if (d->B > RNN_UNIT_SPLIT_MAX_B) return 1;
    int64_t n = d->threads < RNN_MAX_THREADS ? d->threads : RNN_MAX_THREADS;
    return (int)(n < nq ? n : nq);
}
/* Units [*u0, *u1) of task i of n over H units (whole blocks of
 * RNN_GEMM_NR_MAX, rnn_pool_part's share of them). */
static inline void rnn_unit_part(int64_t H, int n, int i, int64_t *u0, int64_t *u1) {
    int64_t q0, q1;
    rnn_pool_part((H + RNN_GEMM_NR_MAX - 1) / RNN_GEMM_NR_MAX, n, i, &q0, &q1);
    *u0 = q0 * RNN_GEMM_NR_MAX;
    *u1 = q1 * RNN_GEMM_NR_MAX < H ? q1 * RNN_GEMM_NR_MAX : H;
}

/* One task of a split step: rows [b0, b1) (or units, rnn_run_units), GEMM
 * workspace ws. */
typedef int (*rnn_step_fn)(void *ctx, int64_t b0, int64_t b1, void *ws);
typedef struct {
    rnn_step_fn fn;
    void *ctx;
    int64_t rows; /* or units (rnn_run_units) */
    int n;
    char *ws;
    size_t ws_step;
    int status[RNN_MAX_THREADS];
} rnn_step_job;
static inline void rnn_step_task(void *job, int i) {
    rnn_step_job *j = job;
    int64_t b0, b1;
    rnn_pool_part(j->rows, j->n, i, &b0, &b1);
    j->status[i] = j->fn(j->ctx, b0, b1, j->ws + (size_t)i * j->ws_step);
}
/* A step's elementwise pass over its rows [b0, b1): on the calling thread in
 * a task of a split step, else (b0, b1 = 0, B) on ne threads. */
static inline void rnn_step_rows(const rnn_dims *d, int split, int ne, int64_t b0, int64_t b1,
                                 rnn_rows_fn fn, void *ctx) {
    if (split) fn(ctx, b0, b1);
    else rnn_par_rows(d, ne, b1 - b0, fn, ctx);
}
/* Runs a step: fn(ctx, 0, B, gemm_ws) when n <= 1 (the step's products then
 * split themselves), else n row blocks on d's pool, task i with the i-th of
 * the GEMM workspaces; when the pool backs off, the caller runs the blocks
 * one after another (so a split step always computes by blocks, whatever
 * else the cores do). Returns the first error of a task. */
static inline int rnn_run_step(const rnn_dims *d, int n, rnn_step_fn fn, void *ctx,
                               void *gemm_ws) {
    if (n <= 1) return fn(ctx, 0, d->B, gemm_ws);
    rnn_step_job j = {.fn = fn, .ctx = ctx, .rows = d->B, .n = n, .ws = gemm_ws,
                      .ws_step = rnn_gemm_workspace_size()};
    rnn_pool_run(d->pool, n, rnn_step_task, &j);
    for (int i = 0; i < n; i++)
        if (j.status[i]) return j.status[i];
    return RNN_OK;
}
static inline void rnn_units_task(void *job, int i) {
    rnn_step_job *j = job;
    int64_t u0, u1;
    rnn_unit_part(j->rows, j->n, i, &u0, &u1);
    j->status[i] = j->fn(j->ctx, u0, u1, j->ws + (size_t)i * j->ws_step);
}
/* Runs a step split by units (rnn_unit_split): fn(ctx, u0, u1, ws) for the
 * n blocks of H units (rnn_unit_part) on d's pool, task i with the i-th of
 * the GEMM workspaces, as rnn_run_step runs row blocks. Returns the first
 * error of a task. */
static inline int rnn_run_units(const rnn_dims *d, int n, int64_t H, rnn_step_fn fn, void *ctx,
                                void *gemm_ws) {
    rnn_step_job j = {.fn = fn, .ctx = ctx, .rows = H, .n = n, .ws = gemm_ws,
                      .ws_step = rnn_gemm_workspace_size()};
    rnn_pool_run(d->pool, n, rnn_units_task, &j);
    for (int i = 0; i < n; i++)
        if (j.status[i]) return j.status[i];
    return RNN_OK;
}

/* Defines fn_avx512, fn_avx2 and fn_gen, each the body SFX(fn) compiled for
 * that instruction set, and SFX(fn##_pick)(isa) returning the one to use.
 * PARAMS is the parenthesised parameter list, ARGS the argument list. */
#if CELL_X86
#define CELL_ROW_VARIANTS(fn, PARAMS, ARGS) CELL_ROW_VARIANTS2(fn, PARAMS, ARGS, ARGS)
/* ... with the AVX-512 variant's body called with ARGS512 (e.g. a flag that
 * selects hand-vectorised pieces) */
#define CELL_ROW_VARIANTS2(fn, PARAMS, ARGS, ARGS512)                            \
    CELL_TARGET_AVX512 static void SFX(fn##_avx512) PARAMS { SFX(fn) ARGS512; }         \
    CELL_TARGET_AVX2 static void SFX(fn##_avx2) PARAMS { SFX(fn) ARGS; }                \
    static void SFX(fn##_gen) PARAMS { SFX(fn) ARGS; }                                  \
    typedef void(*SFX(fn##_fn)) PARAMS;                                                 \
    static SFX(fn##_fn) SFX(fn##_pick)(int isa) {                                       \
        return isa == RNN_ISA_AVX512 ? SFX(fn##_avx512)                                 \
               : isa == RNN_ISA_AVX2 ? SFX(fn##_avx2) : SFX(fn##_gen);                  \
    }
#else
#define CELL_ROW_VARIANTS(fn, PARAMS, ARGS) CELL_ROW_VARIANTS2(fn, PARAMS, ARGS, ARGS)
#define CELL_ROW_VARIANTS2(fn, PARAMS, ARGS, ARGS512)                            \
    static void SFX(fn##_gen) PARAMS { SFX(fn) ARGS; }                                  \
    typedef void(*SFX(fn##_fn)) PARAMS;                                                 \
    static SFX(fn##_fn) SFX(fn##_pick)(int isa) { (void)isa; return SFX(fn##_gen); }
#endif
/* An inference forward's input projection (d->inference): the block of
 * steps [p0, pend) whose rows of x W_ih^T are in the kernel's block buffer,
 * step s's row of sequence b at (s - p0) * B + b. */
typedef struct {
    int64_t p0, pend;
} rnn_proj_block;

/* A backward runs its steps from T-1 down to 0 in blocks of Tb steps
 * (rnn_bwd_block_steps), the block of step s from s0 = s / Tb * Tb (the
 * last block, run first, may be shorter); a block's weight gradients run
 * once its first step s0 is done. For step s: that block's first step *s0
 * and its steps *n; returns the step's first row in the block arrays (row
 * j*B + b: step s0+j, sequence b). */
static inline int64_t rnn_bwd_block_of(const rnn_dims *d, int64_t Tb, int64_t s, int64_t *s0,
                                       int64_t *n) {
    *s0 = s / Tb * Tb;
    *n = (*s0 + Tb < d->T ? *s0 + Tb : d->T) - *s0;
    return (s - *s0) * d->B;
}
/* The row of a backward's block arrays that holds row r (= row(t, b)) of
 * sequence b at a step whose first row there is qoff: r itself when one
 * block holds every step, in row(t, b) order (whole), else qoff + b. */
static inline int64_t rnn_bwd_block_row(int whole, int64_t qoff, int64_t b, int64_t r) {
    return whole ? r : qoff + b;
}

#endif /* RNNPY_CELL_COMMON_ONCE */

/* Every product of a kernel, in the precision d->compute asks for: the best
 * micro-kernel of this CPU, on up to d->threads threads (the kernel's
 * rnn_dims must be in scope as d). bfloat16 products (float32 kernels only)
 * use the same per-thread GEMM workspaces, which rnn_gemm_workspace_size()
 * makes large enough for either. */
static inline int SFX(cell_gemm)(const rnn_dims *d, int trans_a, int trans_b, int64_t M,
                                 int64_t N, int64_t K, REAL alpha, const REAL *A, int64_t lda,
                                 const REAL *B, int64_t ldb, REAL beta, REAL *C, int64_t ldc,
                                 void *gemm_ws) {
#if DTYPE_F32
    if (d->compute == RNN_COMPUTE_BF16)
        return rnn_gemm_bf16_mt(rnn_bf16_isa_for(M, N, K), d->pool, d->threads, trans_a, trans_b,
                                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, gemm_ws,
                                rnn_gemm_workspace_size());
#endif
    if (d->compute != RNN_COMPUTE_NATIVE) return RNN_ERR_COMPUTE;
    return SFX(rnn_gemm_mt)(rnn_gemm_best_isa(), d->pool, d->threads, trans_a, trans_b, M, N, K,
                            alpha, A, lda, B, ldb, beta, C, ldc, gemm_ws);
}
#define GEMM(...) SFX(cell_gemm)(d, __VA_ARGS__)

/* The step products h_{t-1} W_hh^T (forward) and dG_t W_hh (backward), with
 * op(W) (K x N, ldw apart) packed once per call into `packed`
 * (rnn_ext_packed_len(d, N, K) elements): at B > 1 it spares packing the
 * weights every step, and at B == 1 (inference) the packed row-vector
 * product runs eight accumulator chains over contiguous strips. With
 * bfloat16 products the weights are rounded once, here. */
static inline int SFX(step_pack_ld)(const rnn_dims *d, int trans_b, int64_t N, int64_t K,
                                    const REAL *w, int64_t ldw, void *packed) {
#if DTYPE_F32
    if (d->compute == RNN_COMPUTE_BF16) return rnn_gemm_bf16_pack_b(trans_b, N, K, w, ldw, packed);
#endif
    if (d->compute != RNN_COMPUTE_NATIVE) return RNN_ERR_COMPUTE;
    return SFX(rnn_gemm_pack_b)(trans_b, N, K, w, ldw, packed);
}
/* C (M, N; ldc apart) = A (M, K; lda apart) op(W) + beta C, op(W) as
 * step_pack_ld packed it. bfloat16 products run on the micro-kernel
 * rnn_bf16_isa_for picks for isa_m rows: M, or the rows of the one product
 * that this one is a block of, so that both give the same bits. */
static inline int SFX(packed_product)(const rnn_dims *d, int64_t M, int64_t isa_m, int64_t N,
                                      int64_t K, const REAL *A, int64_t lda, const void *packed,
                                      REAL beta, REAL *C, int64_t ldc, void *gemm_ws) {
#if DTYPE_F32
    if (d->compute == RNN_COMPUTE_BF16)
        return rnn_gemm_bf16_packed_mt(rnn_bf16_isa_for(isa_m, N, K), d->pool, d->threads, 0, M, N,
                                       K, 1, A, lda, packed, beta, C, ldc, gemm_ws,
                                       rnn_gemm_workspace_size());
#else
    (void)isa_m;
#endif
    if (d->compute != RNN_COMPUTE_NATIVE) return RNN_ERR_COMPUTE;
    return SFX(rnn_gemm_packed_mt)(d->pool, d->threads, M, N, K, 1, A, lda, packed, beta, C, ldc,
                                   gemm_ws);
}
/* The step product: M = B rows of A, K apart. */
static inline int SFX(step_product)(const rnn_dims *d, int64_t N, int64_t K, const REAL *A,
                                    const void *packed, REAL beta, REAL *C, int64_t ldc,
                                    void *gemm_ws) {
    return SFX(packed_product)(d, d->B, d->B, N, K, A, K, packed, beta, C, ldc, gemm_ws);
}

/* One weight of a call's step products, op(W) (K x N): packed once per call
 * by step_w_make, or read in place (rnn_in_place; packed == NULL). */
typedef struct {
    const REAL *w;
    int64_t ldw;
    int trans_b;
    const void *packed;
} SFX(step_w);

/* Describes op(W) = W^T (trans_b) or W, K x N, rows of W ldw apart, and
 * packs it into `packed` (step_pack_ld's size) unless it is read in place. */
static inline int SFX(step_w_make)(const rnn_dims *d, int trans_b, int64_t N, int64_t K,
                                   const REAL *w, int64_t ldw, void *packed, SFX(step_w) *sw) {
    *sw = (SFX(step_w)){w, ldw, trans_b, NULL};
    if (rnn_in_place(d, K)) return RNN_OK;
    sw->packed = packed;
    return SFX(step_pack_ld)(d, trans_b, N, K, w, ldw, packed);
}

/* C (B, N; ldc apart) = A (B, K; K apart) op(W) + beta C. */
static inline int SFX(step_mul)(const rnn_dims *d, int64_t N, int64_t K, const REAL *A,
                                const SFX(step_w) *sw, REAL beta, REAL *C, int64_t ldc,
                                void *gemm_ws) {
    if (!sw->packed)
        return GEMM(0, sw->trans_b, d->B, N, K, 1, A, K, sw->w, sw->ldw, beta, C, ldc, gemm_ws);
    return SFX(step_product)(d, N, K, A, sw->packed, beta, C, ldc, gemm_ws);
}

/* Rows [b0, b1) of step_mul's product: all of it, split as step_mul splits
 * it, when the step is not split (split == 0); else on the calling thread
 * alone (a task of a split step, rnn_step_split), the bfloat16 micro-kernel
 * chosen for all B rows, as the unsplit product chooses it. */
static inline int SFX(step_mul_rows)(const rnn_dims *d, int split, int64_t b0, int64_t b1,
                                     int64_t N, int64_t K, const REAL *A, const SFX(step_w) *sw,
                                     REAL beta, REAL *C, int64_t ldc, void *gemm_ws) {
    if (!split) return SFX(step_mul)(d, N, K, A, sw, beta, C, ldc, gemm_ws);
    rnn_dims one = *d; /* this task's thread alone */
    one.threads = 1;
    one.pool = NULL;
    const int64_t M = b1 - b0;
    A += b0 * K;
    C += b0 * ldc;
    if (!sw->packed) /* in place: a batch of one, which is never split */
        return SFX(cell_gemm)(&one, 0, sw->trans_b, M, N, K, 1, A, K, sw->w, sw->ldw, beta, C,
                              ldc, gemm_ws);
    return SFX(packed_product)(&one, M, d->B, N, K, A, K, sw->packed, beta, C, ldc, gemm_ws);
}

/* The end of a backward step over rows [b0, b1): columns [j0, j1) of
 * dh_{t-1} (n per row) get dhr = dG_t W times the recurrent mask (rec, or
 * 1) for the rows of running sequences; dh of ended ones passes through.
 * set: dh has no other part (neither zoneout nor the cell's own), so dhr
 * (with no mask) replaces it. */
static inline void SFX(step_dh_add)(const rnn_dims *d, const int64_t *lengths, int64_t s,
                                    int64_t b0, int64_t b1, int64_t n, int64_t j0, int64_t j1,
                                    REAL *dh, const REAL *dhr, const REAL *rec, int set) {
    for (int64_t b = b0; b < b1; b++) {
        if (rnn_step_time(d, s, rnn_seq_len(d, lengths, b)) < 0) continue;
        REAL *restrict db = dh + b * n;
        const REAL *restrict dr = dhr + b * n;
        if (rec) {
            const REAL *restrict mb = rec + b * n;
            for (int64_t j = j0; j < j1; j++) db[j] += mb[j] * dr[j];
        } else if (set) {
            memcpy(db + j0, dr + j0, (size_t)(j1 - j0) * sizeof(REAL));
        } else {
            for (int64_t j = j0; j < j1; j++) db[j] += dr[j];
        }
    }
}

/* C (n, G) = x W_ih^T for n rows of x (ldx apart) one row-vector product at
 * a time, W_ih read in place (rnn_in_place): input_proj and proj_block_next
 * alike. */
static inline int SFX(proj_rows)(const rnn_dims *d, int64_t n, int64_t G, const REAL *x,
                                 int64_t ldx, const REAL *w_ih, REAL *C, void *gemm_ws) {
    const int64_t I = d->I;
    for (int64_t r = 0; r < n; r++) {
        int st = GEMM(0, 1, 1, G, I, 1, x + r * ldx, ldx, w_ih, I, 0, C + r * G, G, gemm_ws);
        if (st) return st;
    }
    return RNN_OK;
}

/* A training forward's input projection where it is not computed in blocks
 * (rnn_proj_blocks): C (R, G) = x W_ih^T for all R = T*B rows of x (ldx
 * apart) at once. The sums are those of the blocks. */
static inline int SFX(input_proj)(const rnn_dims *d, int64_t G, const REAL *x, const REAL *w_ih,
                                  REAL *C, void *gemm_ws) {
    const int64_t R = d->T * d->B, I = d->I;
    if (!rnn_in_place(d, I)) return GEMM(0, 1, R, G, I, 1, x, d->ldx, w_ih, I, 0, C, G, gemm_ws);
    return SFX(proj_rows)(d, R, G, x, d->ldx, w_ih, C, gemm_ws);
}

/* The rows that steps s0 .. s0+n-1 read of an array of R rows in the
 * row(t, b) order of x (ld apart, width values used), step by step (row
 * j*B + b is step s0+j of sequence b), as A and lda of a product: in place
 * when they are already so (time-major, forward) and m is NULL, else
 * gathered into buf (n*B, width) with zero rows for sequences that have
 * ended; m (B, width), when not NULL, multiplies each gathered row of
 * sequence b by row b of m (a recurrent dropout mask). */
static inline const REAL *SFX(steps_rows_by)(const rnn_dims *d, const int64_t *lengths,
                                             int64_t s0, int64_t n, const REAL *src, int64_t ld,
                                             int64_t width, const REAL *m, REAL *buf,
                                             int64_t *lda) {
    if (!m && !d->reverse && d->ts == d->B && d->bs == 1) {
        *lda = ld;
        return src + s0 * d->B * ld;
    }
    for (int64_t j = 0; j < n; j++)
        for (int64_t b = 0; b < d->B; b++) {
            REAL *restrict dst = buf + (j * d->B + b) * width;
            int64_t t = rnn_step_time(d, s0 + j, rnn_seq_len(d, lengths, b));
            if (t < 0) {
                memset(dst, 0, (size_t)width * sizeof(REAL));
                continue;
            }
            const REAL *restrict row = src + (t * d->ts + b * d->bs) * ld;
            if (!m) {
                memcpy(dst, row, (size_t)width * sizeof(REAL));
                continue;
            }
            const REAL *restrict mb = m + b * width;
            for (int64_t i = 0; i < width; i++) dst[i] = mb[i] * row[i];
        }
    *lda = width;
    return buf;
}
static inline const REAL *SFX(steps_rows)(const rnn_dims *d, const int64_t *lengths, int64_t s0,
                                          int64_t n, const REAL *src, int64_t ld, int64_t width,
                                          REAL *buf, int64_t *lda) {
    return SFX(steps_rows_by)(d, lengths, s0, n, src, ld, width, NULL, buf, lda);
}
/* steps_rows of an array whose rows hold exactly width values (ld ==
 * width): its rows are width apart whether read in place or gathered. */
static inline const REAL *SFX(steps_rows_contig)(const rnn_dims *d, const int64_t *lengths,
                                                 int64_t s0, int64_t n, const REAL *src,
                                                 int64_t width, REAL *buf) {
    int64_t ld;
    return SFX(steps_rows_by)(d, lengths, s0, n, src, width, width, NULL, buf, &ld);
}

/* The rows of x that steps s0 .. s0+n-1 read (steps_rows), gathered into xs
 * (n*B, I) when needed. */
static inline const REAL *SFX(steps_x_rows)(const rnn_dims *d, const int64_t *lengths,
                                            int64_t s0, int64_t n, const REAL *x, REAL *xs,
                                            int64_t *lda) {
    return SFX(steps_rows)(d, lengths, s0, n, x, d->ldx, d->I, xs, lda);
}

/* dst's rows (ld apart, row(t, b) order) += src's (n*B, width) rows j*B + b
 * of steps s0 .. s0+n-1, for the sequences still running at each step. */
static inline void SFX(steps_rows_add)(const rnn_dims *d, const int64_t *lengths, int64_t s0,
                                       int64_t n, REAL *dst, int64_t ld, int64_t width,
                                       const REAL *src) {
    for (int64_t j = 0; j < n; j++)
        for (int64_t b = 0; b < d->B; b++) {
            int64_t t = rnn_step_time(d, s0 + j, rnn_seq_len(d, lengths, b));
            if (t < 0) continue;
            REAL *restrict o = dst + (t * d->ts + b * d->bs) * ld;
            const REAL *restrict a = src + (j * d->B + b) * width;
            for (int64_t i = 0; i < width; i++) o[i] += a[i];
        }
}

/* A backward block's dx += dA W_ih, dA its rows (rows, G): straight into dx
 * when the block is whole (its rows in row(t, b) order), else into dxs
 * (n*B, I) and added back to the rows of steps s0 .. s0+n-1. */
static inline int SFX(block_dx)(const rnn_dims *d, const int64_t *lengths, int64_t s0, int64_t n,
                                int whole, int64_t rows, int64_t G, const REAL *dA,
                                const REAL *w_ih, REAL *dx, REAL *dxs, void *gemm_ws) {
    const int64_t I = d->I;
    if (whole) return GEMM(0, 0, rows, I, G, 1, dA, G, w_ih, I, 1, dx, d->ldx, gemm_ws);
    int st = GEMM(0, 0, rows, I, G, 1, dA, G, w_ih, I, 0, dxs, I, gemm_ws);
    if (st) return st;
    SFX(steps_rows_add)(d, lengths, s0, n, dx, d->ldx, I, dxs);
    return RNN_OK;
}

/* At the first step past the block, the next block of up to Tc steps
 * (rnn_ext_proj_steps), computed into dst (Tc*B, G) from W_ih packed in
 * wipk (op(W) = W_ih^T, G columns), x's rows gathered in xs when needed.
 * The sums are those of one product of all R rows (input_proj), whatever
 * the blocks: a last block of one row starts a step early (a one-row
 * product sums in another order; Tc >= 2 leaves room), and bfloat16 blocks
 * run on the micro-kernel chosen for R rows. */
static inline int SFX(proj_block_next)(const rnn_dims *d, const int64_t *lengths, int64_t s,
                                       int64_t Tc, int64_t G, const REAL *x, const REAL *w_ih,
                                       const void *wipk, REAL *xs, REAL *dst, rnn_proj_block *pb,
                                       void *gemm_ws) {
    if (s != pb->pend) return RNN_OK;
    const int64_t B = d->B, I = d->I, R = d->T * d->B, n = d->T - s < Tc ? d->T - s : Tc;
    int64_t lda;
    pb->p0 = n * B == 1 && s > 0 ? s - 1 : s;
    pb->pend = s + n;
    const REAL *xa = SFX(steps_x_rows)(d, lengths, pb->p0, pb->pend - pb->p0, x, xs, &lda);
    if (R == 1) return GEMM(0, 1, 1, G, I, 1, xa, lda, w_ih, I, 0, dst, G, gemm_ws);
    if (rnn_in_place(d, I))
        return SFX(proj_rows)(d, (pb->pend - pb->p0) * B, G, xa, lda, w_ih, dst, gemm_ws);
    return SFX(packed_product)(d, (pb->pend - pb->p0) * B, R, G, I, xa, lda, wipk, 0, dst, G,
                               gemm_ws);
}

/* dst[j] += src[j], j < n (no aliasing, so it vectorises). */
static inline void SFX(add_row)(REAL *restrict dst, const REAL *restrict src, int64_t n) {
    for (int64_t j = 0; j < n; j++) dst[j] += src[j];
}

/* dst[j] += sum over the R rows of src[r*ld + j], j < n. */
static inline void SFX(colsum_add)(REAL *dst, const REAL *src, int64_t R, int64_t n, int64_t ld) {
    for (int64_t r = 0; r < R; r++) {
        const REAL *row = src + r * ld;
        for (int64_t j = 0; j < n; j++) dst[j] += row[j];
    }
}

/* colsum_add into two vectors in one pass over src (each gets the bits
 * colsum_add would give it): the input and recurrent biases of a cell. */
static inline void SFX(colsum_add2)(REAL *restrict dst1, REAL *restrict dst2,
                                    const REAL *restrict src, int64_t R,
                                    int64_t n, int64_t ld) {
    for (int64_t r = 0; r < R; r++) {
        const REAL *row = src + r * ld;
        for (int64_t j = 0; j < n; j++) {
            dst1[j] += row[j];
            dst2[j] += row[j];
        }
    }
}

/* dst (B, n) = src (B, n), or zeros when src is NULL. */
static inline void SFX(copy_or_zero)(REAL *dst, const REAL *src, int64_t count) {
    if (!src) memset(dst, 0, (size_t)count * sizeof(REAL));
    else if (dst != src) memmove(dst, src, (size_t)count * sizeof(REAL));
}

/* dst[i] += src[i] */
static inline void SFX(add_into)(REAL *dst, const REAL *src, int64_t count) {
    for (int64_t i = 0; i < count; i++) dst[i] += src[i];
}

/* Row b of a backward step whose sequence has ended: its row of a block
 * array of n columns (rnn_bwd_block_row) becomes zero, so that it weighs
 * nothing in the block's products. With one whole block there is no such
 * row: the rows of steps past a sequence's end are zeroed apart, before
 * the products (zero_padded_rows). */
static inline void SFX(bwd_block_zero)(int whole, int64_t qoff, int64_t b, REAL *a, int64_t n) {
    if (!whole) memset(a + (qoff + b) * n, 0, (size_t)n * sizeof(REAL));
}

/* Zero row(t, b) of a (R rows, n columns, ld) array for every step past a
 * sequence's end, so that padded steps output zero and weigh nothing in the
 * weight-gradient products. */
static inline void SFX(zero_padded_rows)(REAL *a, int64_t n, int64_t ld, const int64_t *lengths,
                                         const rnn_dims *d) {
    if (!lengths) return;
    for (int64_t b = 0; b < d->B; b++)
        for (int64_t t = lengths[b]; t < d->T; t++)
            memset(a + (t * d->ts + b * d->bs) * ld, 0, (size_t)n * sizeof(REAL));
}
