/*
 * bf16.h: bfloat16 conversion and the mixed-precision matrix product of the
 * rnnpy core (float32 in and out, bfloat16 multiplies, float32 sums).
 *
 * Conversion (rnn_f32_to_bf16, rnn_f32_to_bf16_n): round to nearest, ties
 * to even, on the 16 high bits of the float32. The scalar function below
 * gives the same bits as the AVX512-BF16 instruction (vcvtne2ps2bf16) the
 * vector paths use, including its three special cases:
 *   - NaN stays a NaN, made quiet: (bits >> 16) | 0x0040 (sign and the top
 *     payload bits kept; rounding never turns a NaN into an Inf);
 *   - a float32 subnormal becomes a zero of the same sign (the instruction
 *     treats subnormal inputs as zero; the products below flush them too);
 *   - a finite value that rounds past the largest bfloat16 becomes Inf.
 *
 * The product:
 *   C = alpha * op(A) * op(B) + beta * C
 * with exactly the contract and argument order of rnn_gemm_f32 (gemm.h):
 * row-major, op(A) M x K, op(B) K x N, lda/ldb/ldc as there, beta = 0 never
 * reads C, K = 0 or alpha = 0 only scales C, C must not overlap A or B.
 * op(A) and op(B) are rounded to bfloat16 (as above) while their panels are
 * packed, once per panel; the products of two bfloat16 values are exact in
 * float32 and are summed in float32. Alternatively op(B) is packed once
 * (rnn_gemm_bf16_pack_b) and reused, as the recurrent product of an RNN
 * reuses its weights every step.
 *
 * Micro-kernels, chosen at run time (the library is built without -march):
 *   RNN_BF16_AMX      AMX tiles, TDPBF16PS on 32 x 32 blocks of C (four
 *                     accumulator tiles, two 16 x 32 bf16 A tiles, two
 *                     32 x 16 B tiles in VNNI pair layout). Needs the CPU's
 *                     AMX-TILE and AMX-BF16 and the OS's permission for tile
 *                     data, requested once per process (arch_prctl
 *                     ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); a refusal
 *                     makes AMX unavailable and the next choice is used.
 *   RNN_BF16_AVX512   AVX512-BF16 vdpbf16ps on 8 x 48 blocks.
 *   RNN_BF16_GENERIC  portable C over the same packed panels: the same
 *                     rounding of the inputs, sums in another order.
 *
 * Accuracy. Let u = 2^-8 (unit roundoff of bfloat16's 8-bit significand),
 * v = 2^-24 (float32's) and gamma(n) = n v / (1 - n v). Rounding gives
 * a' = a (1 + d_a), b' = b (1 + d_b) with |d_a|, |d_b| <= u, so
 *     |a'b' - ab| <= (2u + u^2) |a||b|.
 * Each entry is then a float32 sum of the exact products a'b' of one row and
 * column, K terms plus the partial sums of the KC-deep slices (see
 * RNN_BF16_KC), each slice scaled by alpha and added into C: at most
 * n = K + 2 ceil(K / KC) + 2 roundings on any term's path, whatever order a
 * kernel sums in. Hence, for the exact c = alpha sum_k a_k b_k + beta c0:
 *   |c^ - c| <= |alpha| (2u + u^2) S + gamma(n) (|alpha| (1 + 2u + u^2) S
 *               + |beta c0|) + |alpha| (n + 1) 2^-126 m,      S = sum_k |a_k||b_k|
 * The last term (m = max(1, max|a|) * max(1, max|b|)) covers the hardware's
 * flushing of subnormal inputs and results to zero (DAZ/FTZ in vdpbf16ps
 * and TDPBF16PS); it is nil for data of ordinary magnitude. The first term
 * dominates: the relative error of a sum of same-sign products is at most
 * 2^-7 + 2^-16 ~= 0.78%, and for K up to 10^4 the float32 sums add at most
 * ~6e-4 relative. rnn_gemm_bf16_bound() evaluates this bound.
 */
#ifndef RNNPY_BF16_H
#define RNNPY_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* One bfloat16 value: the high 16 bits of a float32. */
typedef uint16_t rnn_bf16;

/* float32 -> bfloat16, round to nearest even (see above for NaN and
 * subnormals). */
static inline rnn_bf16 rnn_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (rnn_bf16)((u >> 16) | 0x0040u);
    if ((u & 0x7f800000u) == 0) return (rnn_bf16)((u >> 16) & 0x8000u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (rnn_bf16)(u >> 16);
}

/* bfloat16 -> float32 (exact). */
static inline float rnn_bf16_to_f32(rnn_bf16 h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Converts n floats (vectorised where the CPU has AVX512-BF16; the same
 * bits either way). src and dst must not overlap. */
void rnn_f32_to_bf16_n(const float *src, rnn_bf16 *dst, int64_t n);
/* The same conversion with the instruction set named (tests). */
void rnn_f32_to_bf16_n_isa(int isa, const float *src, rnn_bf16 *dst, int64_t n);

/* Instruction sets of the bf16 micro-kernels. */
enum { RNN_BF16_GENERIC = 0, RNN_BF16_AVX512 = 1, RNN_BF16_AMX = 2 };

/* Whether this CPU (and, for AMX, the OS) supports the instruction set. */
int rnn_bf16_isa_supported(int isa);
/* The best instruction set available: AMX, AVX512-BF16, or generic. */
int rnn_bf16_best_isa(void);
/* "amx", "avx512_bf16", "generic" (or "unknown"). */
const char *rnn_bf16_isa_name(int isa);

/* Depth of the K slices (the n of the accuracy bound counts them). */
#define RNN_BF16_KC 256

/* Bytes of workspace rnn_gemm_bf16* need (the same for any shape); any
 * alignment. */
size_t rnn_gemm_bf16_workspace_size(void);

/* Returns RNN_OK, RNN_ERR_NULL, RNN_ERR_SIZE (negative M, N or K) or
 * RNN_ERR_LD (a leading dimension too small). The best instruction set. */
int rnn_gemm_bf16(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc, void *workspace);
/* The same with the micro-kernel named; an isa the CPU lacks falls back to
 * the best one it has. */
int rnn_gemm_bf16_isa(int isa, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                      float beta, float *C, int64_t ldc, void *workspace);

/* op(B) packed once in bfloat16: rnn_gemm_bf16_pack_b rounds op(B) (K x N,
 * as trans_b and ldb describe it) into `packed`, caller memory of at least
 * rnn_gemm_bf16_packed_size(N, K) bytes (any alignment; 0 means the size
 * overflows). The layout does not depend on the instruction set, so one
 * packed matrix serves every micro-kernel. rnn_gemm_bf16_packed_isa then
 * computes C = alpha * op(A) * op(B) + beta * C; it only reads `packed`, so
 * threads may share it. N and K must be those it was packed with
 * (RNN_ERR_SIZE otherwise). Results are bit-identical to rnn_gemm_bf16_isa
 * on the same operands and instruction set. */
size_t rnn_gemm_bf16_packed_size(int64_t N, int64_t K);
int rnn_gemm_bf16_pack_b(int trans_b, int64_t N, int64_t K, const float *B, int64_t ldb,
                         void *packed);
int rnn_gemm_bf16_packed_isa(int isa, int trans_a, int64_t M, int64_t N, int64_t K,
                             float alpha, const float *A, int64_t lda, const void *packed,
                             float beta, float *C, int64_t ldc, void *workspace);
int rnn_gemm_bf16_packed(int trans_a, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const void *packed, float beta, float *C,
                         int64_t ldc, void *workspace);

/* The same products on up to `threads` threads of `pool` (NULL: the calling
 * thread), C split into blocks of whole column strips (or rows) that each
 * task computes exactly as the one-thread product would, so the bits do not
 * depend on the thread count. `workspace` holds one workspace per thread,
 * ws_step >= rnn_gemm_bf16_workspace_size() bytes apart (RNN_ERR_WORKSPACE
 * otherwise). isa as for rnn_gemm_bf16_isa. */
struct rnn_pool;
int rnn_gemm_bf16_mt(int isa, struct rnn_pool *pool, int threads, int trans_a, int trans_b,
                     int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                     void *workspace, size_t ws_step);
int rnn_gemm_bf16_packed_mt(int isa, struct rnn_pool *pool, int threads, int trans_a, int64_t M,
                            int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                            const void *packed, float beta, float *C, int64_t ldc,
                            void *workspace, size_t ws_step);
/* Rows of A below which AMX's 16-row tiles lose to AVX512-BF16: measured in
 * LSTM steps (H = 256, 512), AMX already wins at two rows (B = 2: 4x faster
 * than vdpbf16ps's 8-row kernel), and ties one row with the row kernel. */
#ifndef RNN_BF16_AMX_MIN_ROWS
#define RNN_BF16_AMX_MIN_ROWS 2
#endif
/* The micro-kernel a product of this shape runs best on (measured on AMX
 * hardware: few rows of A waste most of a 16-row tile). */
int rnn_bf16_isa_for(int64_t M, int64_t N, int64_t K);

/* The accuracy bound above for one entry: S = sum_k |a_k||b_k| of the
 * original float32 inputs, c0 the entry of C before the call, amax/bmax the
 * largest |op(A)| and |op(B)|. */
double rnn_gemm_bf16_bound(int64_t K, double alpha, double beta, double S, double c0,
                           double amax, double bmax);

/* Peak of one core in GFLOP/s: `iters` rounds of independent multiply-adds
 * into several accumulators (six AMX tiles of TDPBF16PS; 24 zmm registers
 * of vdpbf16ps; generic: a float32 loop), timed with the monotonic clock.
 * Returns RNN_OK, or RNN_ERR_SIZE when isa is not available or iters < 1. */
int rnn_bf16_peak(int isa, int64_t iters, double *gflops);

#endif /* RNNPY_BF16_H */
