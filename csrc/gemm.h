/*
 * gemm.h: the matrix products of the rnnpy core, float32 and float64.
 *
 *   C = alpha * op(A) * op(B) + beta * C
 *
 * All matrices are row-major. op(A) is M x K, op(B) is K x N, C is M x N.
 * trans_a = 0: A is stored M x K with leading dimension lda >= K;
 * trans_a = 1: A is stored K x M with lda >= M (op(A) = A^T). Likewise B
 * (K x N, ldb >= N; or N x K, ldb >= K when trans_b = 1). ldc >= N.
 * beta = 0 overwrites C without reading it (NaN in C does not propagate).
 * K = 0 scales C by beta. C must not overlap A or B.
 *
 * The implementation is cache-blocked: panels of A and B are packed into
 * the caller's workspace and multiplied by a register-tiled micro-kernel
 * chosen at run time from the CPU's features (AVX-512, AVX2+FMA, or
 * portable C). It allocates nothing: the caller passes a workspace of at
 * least rnn_gemm_workspace_size() bytes, aligned to 64 bytes.
 */
#ifndef RNNPY_GEMM_H
#define RNNPY_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "pool.h"
#include "rnn_common.h"

/* Every instruction set's column strip (its NR) divides this: a packed
 * product's columns split at multiples of it (rnn_gemm_packed_cols_*). */
#define RNN_GEMM_NR_MAX 64

/* Bytes of workspace rnn_gemm_f32/f64 need (the same for any shape). */
size_t rnn_gemm_workspace_size(void);

/* Returns RNN_OK, RNN_ERR_NULL, RNN_ERR_SIZE (negative M, N or K) or
 * RNN_ERR_LD (a leading dimension too small). */
int rnn_gemm_f32(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda,
                 const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc, void *workspace);

int rnn_gemm_f64(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                 double alpha, const double *A, int64_t lda,
                 const double *B, int64_t ldb,
                 double beta, double *C, int64_t ldc, void *workspace);

/* The plain triple loop, kept as the reference the fast path is tested
 * against (same contract, no workspace). */
int rnn_gemm_ref_f32(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                     float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb,
                     float beta, float *C, int64_t ldc);
int rnn_gemm_ref_f64(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                     double alpha, const double *A, int64_t lda,
                     const double *B, int64_t ldb,
                     double beta, double *C, int64_t ldc);

/* Instruction sets of the micro-kernels. */
enum { RNN_ISA_GENERIC = 0, RNN_ISA_AVX2 = 1, RNN_ISA_AVX512 = 2 };

/* The best instruction set this CPU supports (what rnn_gemm_* use). */
int rnn_gemm_best_isa(void);
/* Name of an instruction set: "avx512", "avx2" or "generic". */
const char *rnn_gemm_isa_name(int isa);

/* The same products with the micro-kernel named explicitly, so that tests
 * can run every path this CPU supports. An isa the CPU lacks falls back to
 * the best one it has. */
int rnn_gemm_isa_f32(int isa, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                     float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb,
                     float beta, float *C, int64_t ldc, void *workspace);
int rnn_gemm_isa_f64(int isa, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                     double alpha, const double *A, int64_t lda,
                     const double *B, int64_t ldb,
                     double beta, double *C, int64_t ldc, void *workspace);

/* The same product on up to `threads` threads of `pool` (pool.h; NULL: the
 * calling thread only, with the same results), with `workspace` holding `threads`
 * workspaces of rnn_gemm_workspace_size() bytes back to back. The work is
 * split into column (or row) blocks of C, each computed exactly as the
 * one-thread product computes it, so C is bit-identical for every thread
 * count; products too small to gain from a second thread run on one. */
int rnn_gemm_mt_f32(int isa, rnn_pool *pool, int threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                    float alpha, const float *A, int64_t lda,
                    const float *B, int64_t ldb,
                    float beta, float *C, int64_t ldc, void *workspace);
int rnn_gemm_mt_f64(int isa, rnn_pool *pool, int threads, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                    double alpha, const double *A, int64_t lda,
                    const double *B, int64_t ldb,
                    double beta, double *C, int64_t ldc, void *workspace);

/* How many threads a product of M x N x K uses when given `threads`. */
int rnn_gemm_threads_for(int threads, int64_t M, int64_t N, int64_t K);

/* A product of a few rows against a packed op(B) (a step's h W_hh^T at
 * small B) reads all of op(B) for little arithmetic: where op(B) is larger
 * than a core's L2 keeps beside the rest of a step, that read, not the
 * multiply-adds, is its cost. Such a product takes a block of columns per
 * RNN_L2_WEIGHT_BYTES (rnn_common.h) of packed op(B), which, step after
 * step, can stay in the L2 of the core that reads it: the threads for a
 * packed op(B) of `bytes` bytes (0 where it is one block of columns), given
 * the `nt` its multiply-adds ask for. A row-vector product (M == 1) that
 * reads op(B) in place follows the same rule, and so does the bfloat16
 * packed product. */
static inline int rnn_gemm_weight_threads(int threads, int nt, double bytes) {
    if (threads <= 1 || !(bytes > RNN_L2_WEIGHT_BYTES)) return nt;
    int cap = threads < RNN_MAX_THREADS ? threads : RNN_MAX_THREADS, nb = 2;
    while (nb < cap && bytes > (double)nb * RNN_L2_WEIGHT_BYTES) nb++;
    return nb > nt ? nb : nt;
}

/* A product whose op(B) is packed once and reused: the recurrent products
 * of an RNN multiply a new A by the same weight matrix every step, and
 * packing it costs about as much as the product at small M.
 *
 * rnn_gemm_pack_b_* packs op(B) (K x N, as trans_b and ldb describe it for
 * rnn_gemm_*) into `packed`, caller memory of at least
 * rnn_gemm_packed_size_*(trans_b, N, K) bytes (any alignment; 0 means the
 * size overflows), for the given (or best) instruction set.
 * rnn_gemm_packed_* then computes C = alpha * A * op(B) + beta * C with A
 * stored M x K (lda >= K), on up to `threads` threads of `pool` with `workspace` as
 * for rnn_gemm_mt_*. Every element of C is summed in the same order as
 * rnn_gemm_mt_* sums it for M > 1 (M == 1 there takes a row-vector path),
 * so results match it bit for bit and for every thread count. The packed
 * buffer is only read, so threads may share it; N and K must be those it
 * was packed with (RNN_ERR_SIZE otherwise). */
size_t rnn_gemm_packed_size_f32(int trans_b, int64_t N, int64_t K);
size_t rnn_gemm_packed_size_f64(int trans_b, int64_t N, int64_t K);
/* The same size in elements, enough for either type (-1 on overflow). */
int64_t rnn_gemm_packed_len(int64_t N, int64_t K);

int rnn_gemm_pack_b_f32(int trans_b, int64_t N, int64_t K, const float *B, int64_t ldb,
                        void *packed);
int rnn_gemm_pack_b_f64(int trans_b, int64_t N, int64_t K, const double *B, int64_t ldb,
                        void *packed);
int rnn_gemm_pack_b_isa_f32(int isa, int trans_b, int64_t N, int64_t K, const float *B,
                            int64_t ldb, void *packed);
int rnn_gemm_pack_b_isa_f64(int isa, int trans_b, int64_t N, int64_t K, const double *B,
                            int64_t ldb, void *packed);

int rnn_gemm_packed_f32(int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                        int64_t lda, const void *packed, float beta, float *C, int64_t ldc,
                        void *workspace);
int rnn_gemm_packed_f64(int64_t M, int64_t N, int64_t K, double alpha, const double *A,
                        int64_t lda, const void *packed, double beta, double *C, int64_t ldc,
                        void *workspace);
/* Columns [n0, n1) of rnn_gemm_packed_*'s product (N, K: those packed),
 * the other columns of C untouched, on the calling thread: each element
 * the bits the whole product gives it. n0 must be a multiple of
 * RNN_GEMM_NR_MAX (RNN_ERR_SIZE otherwise), the packed strips' boundary
 * for every instruction set; C points at column 0. */
int rnn_gemm_packed_cols_f32(int64_t M, int64_t n0, int64_t n1, int64_t N, int64_t K,
                             float alpha, const float *A, int64_t lda, const void *packed,
                             float beta, float *C, int64_t ldc, void *workspace);
int rnn_gemm_packed_cols_f64(int64_t M, int64_t n0, int64_t n1, int64_t N, int64_t K,
                             double alpha, const double *A, int64_t lda, const void *packed,
                             double beta, double *C, int64_t ldc, void *workspace);
int rnn_gemm_packed_mt_f32(rnn_pool *pool, int threads, int64_t M, int64_t N, int64_t K, float alpha,
                           const float *A, int64_t lda, const void *packed, float beta, float *C,
                           int64_t ldc, void *workspace);
int rnn_gemm_packed_mt_f64(rnn_pool *pool, int threads, int64_t M, int64_t N, int64_t K, double alpha,
                           const double *A, int64_t lda, const void *packed, double beta,
                           double *C, int64_t ldc, void *workspace);

#endif /* RNNPY_GEMM_H */
