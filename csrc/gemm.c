/*
 * gemm.c: the cache-blocked matrix products of the rnnpy core (gemm.h).
 *
 * Goto/BLIS structure: for each NC-wide column block of op(B) and KC-deep
 * slice of K, op(B) is packed into NR-wide column strips and op(A), MC rows
 * at a time, into MR-tall row strips, both zero-padded at the edges; a
 * register-tiled micro-kernel then multiplies an MR x KC strip of A by a
 * KC x NR strip of B into an MR x NR tile of C. A strip of B is packed the
 * first time it is needed and reused by every later row block, so small-M
 * products (the per-step shapes of an RNN) touch it while it is still in L1,
 * and the kernel prefetches the source of the next strip meanwhile. M == 1
 * (batch-1 inference) skips packing: a row-vector product streams B once.
 * alpha == 0 or K == 0 only scales C by beta (A and B are not read).
 *
 * The micro-kernels exist per instruction set (AVX-512, AVX2+FMA, portable
 * C), chosen at run time from the CPU's features; the x86 ones are compiled
 * with GCC target attributes so the library itself is built without -march.
 *
 * float32 and float64 come from one template: the second half of this file
 * is included twice with REAL/SFX defined (see GEMM_TEMPLATE).
 */
#ifndef GEMM_TEMPLATE

#include "gemm.h"
#include "rnn_common.h"
#include "pool.h"

/* RNN_GEMM_PORTABLE builds only the portable kernel (to test it as non-x86
 * targets compile it). */
#if (defined(__x86_64__) || defined(__i386__)) && !defined(RNN_GEMM_PORTABLE)
#define GEMM_X86 1
#include <immintrin.h>
#define TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,fma")))
#define TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define GEMM_X86 0
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Blocking, for a 48 KiB L1d and 2 MiB L2 per core: a KC x NR strip of B
 * (32 KiB) and an MR x KC strip of A stay in L1 through a micro-kernel call,
 * the MC x KC block of A in L2, and the KC x NC panel of B (1 MiB) in L2
 * across row blocks. Sizes are in elements; NC is a multiple of every NR of
 * its type. Each can be overridden with -D for tuning. */
#ifndef KC_F32
#define KC_F32 256
#endif
#ifndef MC_F32
#define MC_F32 112
#endif
#ifndef NC_F32
#define NC_F32 1024
#endif
#ifndef KC_F64
#define KC_F64 256
#endif
#ifndef MC_F64
#define MC_F64 112
#endif
#ifndef NC_F64
#define NC_F64 512
#endif

/* Register tiles. AVX-512: MR rows x NV vectors; AVX2: 6 x 2 vectors. */
#ifndef MR512_F32
#define MR512_F32 14
#endif
#ifndef NV512_F32
#define NV512_F32 2
#endif
#ifndef MR512_F64
#define MR512_F64 14
#endif
#ifndef NV512_F64
#define NV512_F64 2
#endif
#define MR256_F32 6
#define NV256_F32 2
#define MR256_F64 6
#define NV256_F64 2
#define MRG_F32 4
#define NRG_F32 8
#define MRG_F64 4
#define NRG_F64 4

/* Largest MR of any kernel: bound of the packed-A padding and tile buffers. */
#define MR_MAX 16
#define NR_MAX RNN_GEMM_NR_MAX

_Static_assert(MR512_F32 <= MR_MAX && MR512_F64 <= MR_MAX, "MR512 > MR_MAX");
_Static_assert(NR_MAX % (NV512_F32 * 16) == 0 && NR_MAX % (NV512_F64 * 8) == 0 &&
                   NR_MAX % (NV256_F32 * 8) == 0 && NR_MAX % (NV256_F64 * 4) == 0 &&
                   NR_MAX % NRG_F32 == 0 && NR_MAX % NRG_F64 == 0,
               "every NR divides NR_MAX (column splits fall on strip boundaries)");

#define ALIGN_UP(x) (((x) + 63) & ~(size_t)63)

static size_t ws_bytes(size_t kc, size_t mc, size_t nc, size_t elt) {
    /* A block rounded up to MR_MAX rows, B panel rounded up to NR_MAX cols. */
    return ALIGN_UP((mc + MR_MAX) * kc * elt) + ALIGN_UP((nc + NR_MAX) * kc * elt);
}

size_t rnn_gemm_workspace_size(void) {
    size_t a = ws_bytes(KC_F32, MC_F32, NC_F32, sizeof(float));
    size_t b = ws_bytes(KC_F64, MC_F64, NC_F64, sizeof(double));
    return (a > b ? a : b) + 64; /* + slack to align the caller's pointer */
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* A packed op(B) (rnn_gemm_pack_b_*): this header at the first 64-byte
 * boundary of the caller's buffer, then, for each KC-deep slice of K in
 * order, the slice's npad / NR strips of NR columns, each kc x NR (NR values
 * per k, zero-padded past N). Slice pc starts at pc * npad elements and the
 * strip of columns [j, j + NR) of a slice kc deep at j * kc, so any range of
 * whole strips is found without walking the ones before it. */
#define PACK_MAGIC 0x524e4e50u /* "RNNP" */
#define PACK_HDR 64
typedef struct {
    uint32_t magic;
    int32_t isa;
    int32_t elt;      /* sizeof(REAL) */
    int32_t nr;
    int64_t n, k, npad;
} gemm_packed_hdr;
_Static_assert(sizeof(gemm_packed_hdr) <= PACK_HDR, "packed header too large");

static int64_t round_up64(int64_t x, int64_t q) { return (x + q - 1) / q * q; }

int64_t rnn_gemm_packed_len(int64_t N, int64_t K) {
    if (N < 0 || K < 0) return -1;
    int64_t npad = round_up64(N, NR_MAX);
    if (K > 0 && npad > (INT64_MAX - 32) / K) return -1;
    /* + 128 bytes (header and alignment slack) in elements of the smaller type */
    return npad * K + 128 / (int64_t)sizeof(float);
}

/* Threads: the core's pool (pool.h). A product is split into a few column
 * (or row) blocks, one task each; the tasks write disjoint blocks of C and
 * each uses the workspace of its own index, whichever thread runs it. */

/* Below this many multiply-adds a second thread costs more than it saves. */
#ifndef RNN_MT_MIN_MADDS
#define RNN_MT_MIN_MADDS (1 << 19)
#endif

/* When the pool backs off (rnn_pool_alone), a product of *nt > 1 blocks
 * runs as one block (*nt = 1); or, where only the weight's size split it
 * (*nt > nt_madds: a few rows against a large weight), as its blocks of
 * columns one after another on the caller (returns 1), which cost what one
 * block does (the same bits either way). */
static int gemm_backing_off(rnn_pool *pool, int *nt, int nt_madds) {
    if (*nt <= 1 || !rnn_pool_alone(pool)) return 0;
    if (*nt > nt_madds) return 1;
    *nt = 1;
    return 0;
}

/* Runs tasks 0 .. n-1 of fn on the pool, or one after another on the
 * caller (serial). */
static void gemm_run_tasks(rnn_pool *pool, int serial, int n, rnn_pool_fn fn, void *ctx) {
    if (!serial) {
        rnn_pool_run(pool, n, fn, ctx);
        return;
    }
    for (int i = 0; i < n; i++) fn(ctx, i);
}

int rnn_gemm_threads_for(int threads, int64_t M, int64_t N, int64_t K) {
    if (threads <= 1 || M <= 0 || N <= 0 || K <= 0) return 1;
    if (threads > RNN_MAX_THREADS) threads = RNN_MAX_THREADS;
    double madds = (double)M * (double)N * (double)K;
    int64_t n = (int64_t)(madds / RNN_MT_MIN_MADDS);
    if (n < 2) return 1;
    return (int)min64(threads, n);
}

/* Source of the next strip of op(B), which a micro-kernel prefetches into L2
 * (two lines per k) while it computes, so that packing a B too large for L2
 * overlaps with arithmetic: `rows` rows `ld` bytes apart, 128 bytes each,
 * then the next 128 bytes of every row. */
typedef struct {
    const char *p;
    int64_t ld;
    int64_t rows;
} gemm_prefetch;

static int isa_supported(int isa) {
    if (isa == RNN_ISA_GENERIC) return 1;
#if GEMM_X86
    __builtin_cpu_init();
    if (isa == RNN_ISA_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == RNN_ISA_AVX512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma");
#endif
    return 0;
}

static const rnn_isa_path gemm_paths[] = {
    {RNN_ISA_AVX512, "avx512"}, {RNN_ISA_AVX2, "avx2"}, {RNN_ISA_GENERIC, "generic"}};
#define N_GEMM_PATHS ((int)(sizeof gemm_paths / sizeof gemm_paths[0]))

int rnn_gemm_best_isa(void) { return rnn_isa_pick(gemm_paths, N_GEMM_PATHS, isa_supported, -1); }

const char *rnn_gemm_isa_name(int isa) { return rnn_isa_path_name(gemm_paths, N_GEMM_PATHS, isa); }

static int resolve_isa(int isa) { return rnn_isa_pick(gemm_paths, N_GEMM_PATHS, isa_supported, isa); }

#if GEMM_X86
/* The prefetch walk of a micro-kernel (see gemm_prefetch). */
#define PF_START(pf)                                     \
    const char *pf_row = (pf) ? (pf)->p : NULL;          \
    const char *pf_col = pf_row;                         \
    int64_t pf_ld = (pf) ? (pf)->ld : 0;                 \
    int64_t pf_rows = (pf) ? (pf)->rows : 0, pf_r = 0
#define PF_STEP()                                        \
    if (pf_row) {                                        \
        _mm_prefetch(pf_row, _MM_HINT_T1);               \
        _mm_prefetch(pf_row + 64, _MM_HINT_T1);          \
        pf_row += pf_ld;                                 \
        if (++pf_r == pf_rows) {                         \
            pf_r = 0;                                    \
            pf_col += 128;                               \
            pf_row = pf_col;                             \
        }                                                \
    }

/* In-register transposes of a square block (rows of k become rows of n),
 * used to pack op(B) = W^T without scalar strided stores. */
TARGET_AVX512 static ALWAYS_INLINE void tr512_f32(__m512 r[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int g = 0; g < 4; g++) {
        __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 2]);
        __m512d c = _mm512_castps_pd(t[4 * g + 1]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int c = 0; c < 4; c++) {
        __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);
        __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xdd);
        __m512 w0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        __m512 w1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xdd);
        r[c] = _mm512_shuffle_f32x4(v0, w0, 0x88);
        r[4 + c] = _mm512_shuffle_f32x4(v1, w1, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(v0, w0, 0xdd);
        r[12 + c] = _mm512_shuffle_f32x4(v1, w1, 0xdd);
    }
}

TARGET_AVX512 static ALWAYS_INLINE void tr512_f64(__m512d r[8]) {
    __m512d t[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
    }
    for (int c = 0; c < 2; c++) {
        __m512d v0 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0x88);
        __m512d v1 = _mm512_shuffle_f64x2(t[c], t[2 + c], 0xdd);
        __m512d w0 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0x88);
        __m512d w1 = _mm512_shuffle_f64x2(t[4 + c], t[6 + c], 0xdd);
        r[c] = _mm512_shuffle_f64x2(v0, w0, 0x88);
        r[2 + c] = _mm512_shuffle_f64x2(v1, w1, 0x88);
        r[4 + c] = _mm512_shuffle_f64x2(v0, w0, 0xdd);
        r[6 + c] = _mm512_shuffle_f64x2(v1, w1, 0xdd);
    }
}
#endif

/* ---- instantiate the template for float32 and float64 ---- */
#define GEMM_TEMPLATE

#define REAL float
#define SFX(name) name##_f32
#define KC_T KC_F32
#define MC_T MC_F32
#define NC_T NC_F32
#define MRG MRG_F32
#define NRG NRG_F32
#if GEMM_X86
#define MR512 MR512_F32
#define NV512 NV512_F32
#define VL512 16
#define V512 __m512
#define M512 __mmask16
#define LD512 _mm512_loadu_ps
#define MLD512 _mm512_maskz_loadu_ps
#define ST512 _mm512_storeu_ps
#define MST512 _mm512_mask_storeu_ps
#define SET512 _mm512_set1_ps
#define ZERO512 _mm512_setzero_ps
#define FMA512 _mm512_fmadd_ps
#define MUL512 _mm512_mul_ps
#define RED512 _mm512_reduce_add_ps
#define MR256 MR256_F32
#define NV256 NV256_F32
#define VL256 8
#define V256 __m256
#define LD256 _mm256_loadu_ps
#define ST256 _mm256_storeu_ps
#define SET256 _mm256_set1_ps
#define ZERO256 _mm256_setzero_ps
#define FMA256 _mm256_fmadd_ps
#define MUL256 _mm256_mul_ps
#endif
#include "gemm.c"
#undef REAL
#undef SFX
#undef KC_T
#undef MC_T
#undef NC_T
#undef MRG
#undef NRG
#if GEMM_X86
#undef MR512
#undef NV512
#undef VL512
#undef V512
#undef M512
#undef LD512
#undef MLD512
#undef ST512
#undef MST512
#undef SET512
#undef ZERO512
#undef FMA512
#undef MUL512
#undef RED512
#undef MR256
#undef NV256
#undef VL256
#undef V256
#undef LD256
#undef ST256
#undef SET256
#undef ZERO256
#undef FMA256
#undef MUL256
#endif

#define REAL double
#define SFX(name) name##_f64
#define KC_T KC_F64
#define MC_T MC_F64
#define NC_T NC_F64
#define MRG MRG_F64
#define NRG NRG_F64
#if GEMM_X86
#define MR512 MR512_F64
#define NV512 NV512_F64
#define VL512 8
#define V512 __m512d
#define M512 __mmask8
#define LD512 _mm512_loadu_pd
#define MLD512 _mm512_maskz_loadu_pd
#define ST512 _mm512_storeu_pd
#define MST512 _mm512_mask_storeu_pd
#define SET512 _mm512_set1_pd
#define ZERO512 _mm512_setzero_pd
#define FMA512 _mm512_fmadd_pd
#define MUL512 _mm512_mul_pd
#define RED512 _mm512_reduce_add_pd
#define MR256 MR256_F64
#define NV256 NV256_F64
#define VL256 4
#define V256 __m256d
#define LD256 _mm256_loadu_pd
#define ST256 _mm256_storeu_pd
#define SET256 _mm256_set1_pd
#define ZERO256 _mm256_setzero_pd
#define FMA256 _mm256_fmadd_pd
#define MUL256 _mm256_mul_pd
#endif
#include "gemm.c"

#else /* GEMM_TEMPLATE: everything below is compiled once per REAL */

/* Packed-strip kernel: C[0:m, 0:n] = alpha * pa * pb + beta * C, where pa is
 * a kc x MR strip of op(A) (MR values per k) and pb a kc x NR strip of op(B)
 * (NR values per k); m <= MR and n <= NR are the valid part of the tile. */
typedef void (*SFX(kern_fn))(int64_t kc, const REAL *pa, const REAL *pb, REAL *c,
                             int64_t ldc, REAL alpha, REAL beta, int m, int n,
                             const gemm_prefetch *pf);

/* kern_fn with op(A) read in place instead of from a packed strip: element
 * (i, k) of the tile's rows of op(A) is a[i * si + k * sk], where si == 1
 * (op(A) = A^T, sk = lda) or sk == 1 (op(A) = A, si = lda). */
typedef void (*SFX(kernd_fn))(int64_t kc, const REAL *a, int64_t si, int64_t sk,
                              const REAL *pb, REAL *c, int64_t ldc, REAL alpha, REAL beta,
                              int m, int n, const gemm_prefetch *pf);

/* Packs columns [n0, n0+n) x rows [k0, k0+kc) of op(B) as one NR-wide strip
 * (NR values per k), zero-padding columns n..NR-1. */
typedef void (*SFX(packb_fn))(int trans_b, const REAL *B, int64_t ldb, int64_t k0,
                              int64_t n0, int64_t kc, int n, int NR, REAL *dst);

/* Packs rows [m0, m0+mc) x cols [k0, k0+kc) of op(A) into MR-tall strips,
 * each kc x MR (MR values per k), zero-padding the last strip. */
typedef void (*SFX(packa_fn))(int trans_a, const REAL *A, int64_t lda, int64_t m0,
                              int64_t k0, int64_t mc, int64_t kc, int MR, REAL *dst);

/* Row-vector product for M == 1, where packing would cost as much as the
 * product: y[0:N] = alpha * x[0:K] op(B) + beta * y, x contiguous. */
typedef void (*SFX(gemv_fn))(int trans_b, int64_t N, int64_t K, REAL alpha, const REAL *x,
                             const REAL *B, int64_t ldb, REAL beta, REAL *y);

/* Row-vector product against a packed op(B) (rnn_gemm_pack_b): y[0:N] =
 * alpha * x[0:K] * (columns [n0, n0 + N) of the packed matrix) + beta * y,
 * summed exactly as the micro-kernel sums a one-row tile (k in order within
 * each KC slice, the slices added into y in order), so that M == 1 gives
 * the bits of the blocked path. kcb is the packing's KC, npad its width. */
typedef void (*SFX(pgemv_fn))(int64_t n0, int64_t N, int64_t K, int64_t kcb, int64_t npad,
                              REAL alpha, const REAL *x, const REAL *pk, REAL beta, REAL *y);

typedef struct {
    int mr, nr;           /* register tile */
    int64_t kc, mc, nc;   /* cache blocks */
    SFX(kern_fn) kern;
    SFX(packa_fn) packa;
    SFX(packb_fn) packb;
    SFX(gemv_fn) gemv;
    SFX(pgemv_fn) pgemv;  /* NULL: M == 1 takes the blocked path */
    SFX(kernd_fn) kernd;  /* NULL: op(A) is always packed */
} SFX(gemm_isa);

/* Stores an MR x NR tile computed in a local buffer (ldt = NR) into the
 * valid m x n part of C; beta == 0 never reads C. */
static void SFX(store_tile)(const REAL *t, int ldt, REAL *c, int64_t ldc,
                            REAL alpha, REAL beta, int m, int n) {
    for (int i = 0; i < m; i++) {
        REAL *ci = c + i * ldc;
        const REAL *ti = t + i * ldt;
        if (beta == 0)
            for (int j = 0; j < n; j++) ci[j] = alpha * ti[j];
        else
            for (int j = 0; j < n; j++) ci[j] = alpha * ti[j] + beta * ci[j];
    }
}

/* C = beta * C (the whole product when K == 0 or alpha == 0). */
static void SFX(scale_c)(int64_t M, int64_t N, REAL beta, REAL *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++) {
        REAL *ci = C + i * ldc;
        if (beta == 0)
            for (int64_t j = 0; j < N; j++) ci[j] = 0;
        else if (beta != 1)
            for (int64_t j = 0; j < N; j++) ci[j] *= beta;
    }
}

/* Portable packer of op(A). */
static void SFX(pack_a)(int trans_a, const REAL *A, int64_t lda, int64_t m0, int64_t k0,
                        int64_t mc, int64_t kc, int MR, REAL *dst) {
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {
        int mr = (int)min64(MR, mc - i0);
        if (trans_a) {
            /* A is K x M: each k holds mr consecutive values. */
            for (int64_t k = 0; k < kc; k++) {
                const REAL *src = A + (k0 + k) * lda + m0 + i0;
                REAL *d = dst + k * MR;
                int i = 0;
                for (; i < mr; i++) d[i] = src[i];
                for (; i < MR; i++) d[i] = 0;
            }
        } else {
            /* A is M x K: read each row contiguously, write with stride MR. */
            int i = 0;
            for (; i < mr; i++) {
                const REAL *src = A + (m0 + i0 + i) * lda + k0;
                REAL *d = dst + i;
                for (int64_t k = 0; k < kc; k++) d[k * MR] = src[k];
            }
            for (; i < MR; i++)
                for (int64_t k = 0; k < kc; k++) dst[k * MR + i] = 0;
        }
    }
}

/* Portable strip packer of op(B). */
static void SFX(packb_gen)(int trans_b, const REAL *B, int64_t ldb, int64_t k0,
                           int64_t n0, int64_t kc, int n, int NR, REAL *dst) {
    if (trans_b) {
        /* B is N x K: column j of the strip is row n0+j of B. */
        int j = 0;
        for (; j < n; j++) {
            const REAL *src = B + (n0 + j) * ldb + k0;
            for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = src[k];
        }
        for (; j < NR; j++)
            for (int64_t k = 0; k < kc; k++) dst[k * NR + j] = 0;
    } else {
        for (int64_t k = 0; k < kc; k++) {
            const REAL *src = B + (k0 + k) * ldb + n0;
            REAL *d = dst + k * NR;
            int j = 0;
            for (; j < n; j++) d[j] = src[j];
            for (; j < NR; j++) d[j] = 0;
        }
    }
}

/* Portable micro-kernel: fixed-size accumulators so the compiler keeps them
 * in vector registers. */
static void SFX(kern_gen)(int64_t kc, const REAL *pa, const REAL *pb, REAL *c,
                          int64_t ldc, REAL alpha, REAL beta, int m, int n,
                          const gemm_prefetch *pf) {
    (void)pf;
    REAL acc[MRG][NRG];
    for (int i = 0; i < MRG; i++)
        for (int j = 0; j < NRG; j++) acc[i][j] = 0;
    for (int64_t k = 0; k < kc; k++, pa += MRG, pb += NRG)
        for (int i = 0; i < MRG; i++)
            for (int j = 0; j < NRG; j++) acc[i][j] += pa[i] * pb[j];
    SFX(store_tile)(&acc[0][0], NRG, c, ldc, alpha, beta, m, n);
}

/* Portable row-vector product: dot products with the rows of B (trans_b),
 * or accumulators over a chunk of columns streamed row by row. */
static ALWAYS_INLINE void SFX(gemv_body)(int trans_b, int64_t N, int64_t K, REAL alpha,
                                         const REAL *x, const REAL *B, int64_t ldb, REAL beta,
                                         REAL *y) {
    if (trans_b) {
        for (int64_t n = 0; n < N; n++) {
            const REAL *w = B + n * ldb;
            REAL s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int64_t k = 0;
            for (; k + 8 <= K; k += 8)
                for (int l = 0; l < 8; l++) s[l] += x[k + l] * w[k + l];
            for (; k < K; k++) s[0] += x[k] * w[k];
            REAL t = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
            y[n] = beta == 0 ? alpha * t : alpha * t + beta * y[n];
        }
        return;
    }
    enum { CH = 64 };
    for (int64_t n0 = 0; n0 < N; n0 += CH) {
        REAL acc[CH];
        int nn = (int)min64(CH, N - n0);
        for (int j = 0; j < CH; j++) acc[j] = 0;
        if (nn == CH)
            for (int64_t k = 0; k < K; k++)
                for (int j = 0; j < CH; j++) acc[j] += x[k] * B[k * ldb + n0 + j];
        else
            for (int64_t k = 0; k < K; k++)
                for (int j = 0; j < nn; j++) acc[j] += x[k] * B[k * ldb + n0 + j];
        SFX(store_tile)(acc, CH, y + n0, 0, alpha, beta, 1, nn);
    }
}

static void SFX(gemv_gen)(int trans_b, int64_t N, int64_t K, REAL alpha, const REAL *x,
                          const REAL *B, int64_t ldb, REAL beta, REAL *y) {
    SFX(gemv_body)(trans_b, N, K, alpha, x, B, ldb, beta, y);
}

static void SFX(packb_gen_nrg)(int trans_b, const REAL *B, int64_t ldb, int64_t k0,
                               int64_t n0, int64_t kc, int n, int nr, REAL *dst) {
    (void)nr;
    SFX(packb_gen)(trans_b, B, ldb, k0, n0, kc, n, NRG, dst);
}

#if GEMM_X86
/* ---- AVX2 + FMA: MR256 x (NV256 * VL256) tile ---- */
#define NR256 (NV256 * VL256)

TARGET_AVX2 static ALWAYS_INLINE void SFX(k256_body)(int mr, int64_t kc, const REAL *pa,
                                                     const REAL *pb, REAL *c, int64_t ldc,
                                                     REAL alpha, REAL beta, int n,
                                                     const gemm_prefetch *pf) {
    V256 acc[MR_MAX][NV256];
    PF_START(pf);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < NV256; j++) acc[i][j] = ZERO256();
    for (int64_t k = 0; k < kc; k++, pa += MR256, pb += NR256) {
        PF_STEP();
        V256 b[NV256];
        for (int j = 0; j < NV256; j++) b[j] = LD256(pb + j * VL256);
        for (int i = 0; i < mr; i++) {
            V256 a = SET256(pa[i]);
            for (int j = 0; j < NV256; j++) acc[i][j] = FMA256(a, b[j], acc[i][j]);
        }
    }
    V256 va = SET256(alpha);
    if (n == NR256) {
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < NV256; j++) {
                REAL *cij = c + i * ldc + j * VL256;
                V256 r = MUL256(acc[i][j], va);
                if (beta != 0) r = FMA256(SET256(beta), LD256(cij), r);
                ST256(cij, r);
            }
    } else {
        REAL t[MR_MAX * NR256];
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < NV256; j++) ST256(t + i * NR256 + j * VL256, acc[i][j]);
        SFX(store_tile)(t, NR256, c, ldc, alpha, beta, mr, n);
    }
}

TARGET_AVX2 static void SFX(kern256)(int64_t kc, const REAL *pa, const REAL *pb, REAL *c,
                                     int64_t ldc, REAL alpha, REAL beta, int m, int n,
                                     const gemm_prefetch *pf) {
    switch (m) {
    case 1: SFX(k256_body)(1, kc, pa, pb, c, ldc, alpha, beta, n, pf); break;
    case 2: SFX(k256_body)(2, kc, pa, pb, c, ldc, alpha, beta, n, pf); break;
    case 3: SFX(k256_body)(3, kc, pa, pb, c, ldc, alpha, beta, n, pf); break;
    case 4: SFX(k256_body)(4, kc, pa, pb, c, ldc, alpha, beta, n, pf); break;
    case 5: SFX(k256_body)(5, kc, pa, pb, c, ldc, alpha, beta, n, pf); break;
    default: SFX(k256_body)(MR256, kc, pa, pb, c, ldc, alpha, beta, n, pf); break;
    }
}

TARGET_AVX2 static void SFX(gemv256)(int trans_b, int64_t N, int64_t K, REAL alpha,
                                     const REAL *x, const REAL *B, int64_t ldb, REAL beta,
                                     REAL *y) {
    SFX(gemv_body)(trans_b, N, K, alpha, x, B, ldb, beta, y);
}

TARGET_AVX2 static void SFX(packb256)(int trans_b, const REAL *B, int64_t ldb, int64_t k0,
                                      int64_t n0, int64_t kc, int n, int nr, REAL *dst) {
    (void)nr;
    SFX(packb_gen)(trans_b, B, ldb, k0, n0, kc, n, NR256, dst);
}

/* ---- AVX-512: MR512 x (NV512 * VL512) tile ---- */
#define NR512 (NV512 * VL512)

static M512 SFX(mask512)(int n) {
    return n >= VL512 ? (M512)-1 : n <= 0 ? (M512)0 : (M512)((1u << n) - 1);
}

/* The tile's op(A) element (i, k) is pa[i * si + k * sk]: a packed strip
 * (si = 1, sk = MR512), or A read in place (kernd512). */
TARGET_AVX512 static ALWAYS_INLINE void SFX(k512_body)(int mr, int64_t kc, const REAL *pa,
                                                       int64_t si, int64_t sk,
                                                       const REAL *pb, REAL *c, int64_t ldc,
                                                       REAL alpha, REAL beta, int n,
                                                       const gemm_prefetch *pf) {
    V512 acc[MR_MAX][NV512];
    PF_START(pf);
    for (int i = 0; i < mr; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + NR512 - 1), _MM_HINT_T0);
        for (int j = 0; j < NV512; j++) acc[i][j] = ZERO512();
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        PF_STEP();
        V512 b[NV512];
        for (int j = 0; j < NV512; j++) b[j] = LD512(pb + k * NR512 + j * VL512);
        for (int i = 0; i < mr; i++) {
            V512 a = SET512(pa[k * sk + i * si]);
            for (int j = 0; j < NV512; j++) acc[i][j] = FMA512(a, b[j], acc[i][j]);
        }
    }
    V512 va = SET512(alpha), vb = SET512(beta);
    if (n == NR512) {
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < NV512; j++) {
                REAL *cij = c + i * ldc + j * VL512;
                V512 r = MUL512(acc[i][j], va);
                if (beta != 0) r = FMA512(vb, LD512(cij), r);
                ST512(cij, r);
            }
    } else {
        for (int j = 0; j < NV512; j++) {
            M512 mk = SFX(mask512)(n - j * VL512);
            if (!mk) break;
            for (int i = 0; i < mr; i++) {
                REAL *cij = c + i * ldc + j * VL512;
                V512 r = MUL512(acc[i][j], va);
                if (beta != 0) r = FMA512(vb, MLD512(mk, cij), r);
                MST512(cij, mk, r);
            }
        }
    }
}

#define K512_SWITCH(m, SI, SK)                                                                \
    switch (m) {                                                                              \
    K512_CASE(1, SI, SK) K512_CASE(2, SI, SK) K512_CASE(3, SI, SK) K512_CASE(4, SI, SK)       \
    K512_CASE(5, SI, SK) K512_CASE(6, SI, SK) K512_CASE(7, SI, SK) K512_MORE(SI, SK)          \
    default: SFX(k512_body)(MR512, kc, pa, SI, SK, pb, c, ldc, alpha, beta, n, pf); break;    \
    }
#define K512_CASE(r, SI, SK)                                                                  \
    case r:                                                                                   \
        SFX(k512_body)(r < MR512 ? r : MR512, kc, pa, SI, SK, pb, c, ldc, alpha, beta, n, pf); \
        break;
#if MR512 > 8
#define K512_MORE(SI, SK)                                                                     \
    K512_CASE(8, SI, SK) K512_CASE(9, SI, SK) K512_CASE(10, SI, SK) K512_CASE(11, SI, SK)     \
    K512_CASE(12, SI, SK) K512_CASE(13, SI, SK)
#else
#define K512_MORE(SI, SK)
#endif

TARGET_AVX512 static void SFX(kern512)(int64_t kc, const REAL *pa, const REAL *pb, REAL *c,
                                       int64_t ldc, REAL alpha, REAL beta, int m, int n,
                                       const gemm_prefetch *pf) {
    K512_SWITCH(m, 1, MR512)
}

/* The same tile with op(A) read where it lies (see kernd_fn): the sums,
 * and so the bits, of kern512 on the packed strip. */
TARGET_AVX512 static void SFX(kernd512)(int64_t kc, const REAL *pa, int64_t si, int64_t sk,
                                        const REAL *pb, REAL *c, int64_t ldc, REAL alpha,
                                        REAL beta, int m, int n, const gemm_prefetch *pf) {
    if (si == 1) {
        K512_SWITCH(m, 1, sk)
    } else {
        K512_SWITCH(m, si, 1)
    }
}
#undef K512_SWITCH
#undef K512_CASE
#undef K512_MORE

/* Strip packer of op(B): rows of B copied with masked loads, or (trans_b)
 * VL x VL blocks of W transposed in registers. */
TARGET_AVX512 static void SFX(packb512)(int trans_b, const REAL *B, int64_t ldb, int64_t k0,
                                        int64_t n0, int64_t kc, int n, int nr, REAL *dst) {
    (void)nr;
    if (!trans_b) {
        M512 mk[NV512];
        for (int j = 0; j < NV512; j++) mk[j] = SFX(mask512)(n - j * VL512);
        const REAL *src = B + k0 * ldb + n0;
        for (int64_t k = 0; k < kc; k++, src += ldb, dst += NR512)
            for (int j = 0; j < NV512; j++) ST512(dst + j * VL512, MLD512(mk[j], src + j * VL512));
        return;
    }
    for (int64_t k = 0; k < kc; k += VL512) {
        int kl = (int)min64(VL512, kc - k);
        M512 mk = SFX(mask512)(kl);
        for (int jb = 0; jb < NR512; jb += VL512) {
            V512 r[VL512];
            for (int i = 0; i < VL512; i++)
                r[i] = jb + i < n ? MLD512(mk, B + (n0 + jb + i) * ldb + k0 + k) : ZERO512();
            SFX(tr512)(r);
            for (int i = 0; i < kl; i++) ST512(dst + (k + i) * NR512 + jb, r[i]);
        }
    }
}

/* Row-vector product: four rows of W at a time against x (trans_b), or
 * GV vectors of columns accumulated over the rows of B. */
TARGET_AVX512 static void SFX(gemv512)(int trans_b, int64_t N, int64_t K, REAL alpha,
                                       const REAL *x, const REAL *B, int64_t ldb, REAL beta,
                                       REAL *y) {
    if (trans_b) {
        int64_t n = 0;
        for (; n + 4 <= N; n += 4) {
            const REAL *w = B + n * ldb;
            V512 s0 = ZERO512(), s1 = ZERO512(), s2 = ZERO512(), s3 = ZERO512();
            for (int64_t k = 0; k < K; k += VL512) {
                M512 mk = SFX(mask512)((int)min64(VL512, K - k));
                V512 xv = MLD512(mk, x + k);
                s0 = FMA512(xv, MLD512(mk, w + k), s0);
                s1 = FMA512(xv, MLD512(mk, w + ldb + k), s1);
                s2 = FMA512(xv, MLD512(mk, w + 2 * ldb + k), s2);
                s3 = FMA512(xv, MLD512(mk, w + 3 * ldb + k), s3);
            }
            REAL t[4] = {RED512(s0), RED512(s1), RED512(s2), RED512(s3)};
            SFX(store_tile)(t, 4, y + n, 0, alpha, beta, 1, 4);
        }
        for (; n < N; n++) {
            const REAL *w = B + n * ldb;
            V512 s0 = ZERO512();
            for (int64_t k = 0; k < K; k += VL512) {
                M512 mk = SFX(mask512)((int)min64(VL512, K - k));
                s0 = FMA512(MLD512(mk, x + k), MLD512(mk, w + k), s0);
            }
            REAL t = RED512(s0);
            y[n] = beta == 0 ? alpha * t : alpha * t + beta * y[n];
        }
        return;
    }
    enum { GV = 8 };
    V512 va = SET512(alpha), vb = SET512(beta);
    for (int64_t n0 = 0; n0 < N; n0 += GV * VL512) {
        M512 mk[GV];
        V512 acc[GV];
        for (int j = 0; j < GV; j++) {
            mk[j] = SFX(mask512)((int)min64(VL512, N - n0 - j * VL512));
            acc[j] = ZERO512();
        }
        const REAL *b = B + n0;
        for (int64_t k = 0; k < K; k++, b += ldb) {
            V512 xv = SET512(x[k]);
            for (int j = 0; j < GV; j++) acc[j] = FMA512(xv, MLD512(mk[j], b + j * VL512), acc[j]);
        }
        for (int j = 0; j < GV; j++) {
            V512 r = MUL512(acc[j], va);
            if (beta != 0) r = FMA512(vb, MLD512(mk[j], y + n0 + j * VL512), r);
            MST512(y + n0 + j * VL512, mk[j], r);
        }
    }
}

/* Packed row-vector product (see pgemv_fn): four strips of columns at a
 * time, so that eight independent accumulator chains hide the FMA latency
 * that a one-row micro-kernel tile (two chains) waits on. */
TARGET_AVX512 static void SFX(pgemv512)(int64_t n0, int64_t N, int64_t K, int64_t kcb,
                                        int64_t npad, REAL alpha, const REAL *x,
                                        const REAL *pk, REAL beta, REAL *y) {
    enum { NS = 4 };
    const V512 va = SET512(alpha);
    for (int64_t j0 = 0; j0 < N; j0 += NS * NR512) {
        const int ns = (int)min64(NS, (N - j0 + NR512 - 1) / NR512);
        for (int64_t pc = 0; pc < K; pc += kcb) {
            const int64_t kc = min64(kcb, K - pc);
            const REAL *sl = pk + pc * npad + (n0 + j0) * kc;
            const REAL *xk = x + pc;
            V512 acc[NS][NV512];
            for (int q = 0; q < NS; q++)
                for (int v = 0; v < NV512; v++) acc[q][v] = ZERO512();
            if (ns == NS) {
                for (int64_t k = 0; k < kc; k++) {
                    V512 xv = SET512(xk[k]);
                    for (int q = 0; q < NS; q++)
                        for (int v = 0; v < NV512; v++)
                            acc[q][v] = FMA512(xv, LD512(sl + (q * kc + k) * NR512 + v * VL512),
                                               acc[q][v]);
                }
            } else {
                for (int64_t k = 0; k < kc; k++) {
                    V512 xv = SET512(xk[k]);
                    for (int q = 0; q < ns; q++)
                        for (int v = 0; v < NV512; v++)
                            acc[q][v] = FMA512(xv, LD512(sl + (q * kc + k) * NR512 + v * VL512),
                                               acc[q][v]);
                }
            }
            const REAL beta_p = pc == 0 ? beta : (REAL)1;
            const V512 vb = SET512(beta_p);
            for (int q = 0; q < ns; q++)
                for (int v = 0; v < NV512; v++) {
                    int64_t c = j0 + q * NR512 + v * VL512;
                    M512 mk = SFX(mask512)((int)min64(VL512, N - c));
                    if (!mk) continue;
                    V512 r = MUL512(acc[q][v], va);
                    if (beta_p != 0) r = FMA512(vb, MLD512(mk, y + c), r);
                    MST512(y + c, mk, r);
                }
        }
    }
}

/* Strip packer of op(A): (trans_a) MR contiguous values per k copied with
 * masked loads, or VL x VL blocks of A transposed in registers. */
TARGET_AVX512 static void SFX(packa512)(int trans_a, const REAL *A, int64_t lda, int64_t m0,
                                        int64_t k0, int64_t mc, int64_t kc, int MR,
                                        REAL *dst) {
    if (trans_a) {
        /* Row k of A feeds every strip: walk A once, row by row, since rows
         * a power-of-two apart would otherwise thrash one L1 set per strip. */
        /* The rows are far apart (A is often a big array straight from
         * memory), which the hardware prefetcher follows poorly: fetch the
         * row PFD ahead meanwhile. */
        enum { PFD = 8 };
        const int64_t row_bytes = mc * (int64_t)sizeof(REAL);
        for (int64_t k = 0; k < kc; k++) {
            const REAL *src = A + (k0 + k) * lda + m0;
            REAL *d = dst + k * MR;
            if (k + PFD < kc)
                for (int64_t b = 0; b < row_bytes; b += 64)
                    _mm_prefetch((const char *)(src + PFD * lda) + b, _MM_HINT_T0);
            for (int64_t i0 = 0; i0 < mc; i0 += MR, d += MR * kc) {
                int mr = (int)min64(MR, mc - i0);
                for (int ib = 0; ib < MR; ib += VL512)
                    MST512(d + ib, SFX(mask512)(MR - ib),
                           MLD512(SFX(mask512)(mr - ib), src + i0 + ib));
            }
        }
        return;
    }
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += MR * kc) {
        int mr = (int)min64(MR, mc - i0);
        for (int ib = 0; ib < MR; ib += VL512) {
            M512 ms = SFX(mask512)(MR - ib);
            for (int64_t k = 0; k < kc; k += VL512) {
                int kl = (int)min64(VL512, kc - k);
                M512 mk = SFX(mask512)(kl);
                V512 r[VL512];
                for (int i = 0; i < VL512; i++)
                    r[i] = ib + i < mr ? MLD512(mk, A + (m0 + i0 + ib + i) * lda + k0 + k)
                                       : ZERO512();
                SFX(tr512)(r);
                for (int i = 0; i < kl; i++) MST512(dst + (k + i) * MR + ib, ms, r[i]);
            }
        }
    }
}
#endif /* GEMM_X86 */

static const SFX(gemm_isa) SFX(isa_generic) = {MRG, NRG, KC_T, MC_T, NC_T,
                                                SFX(kern_gen), SFX(pack_a), SFX(packb_gen_nrg),
                                                SFX(gemv_gen), NULL, NULL};
#if GEMM_X86
static const SFX(gemm_isa) SFX(isa_avx2) = {MR256, NR256, KC_T, MC_T, NC_T,
                                             SFX(kern256), SFX(pack_a), SFX(packb256),
                                             SFX(gemv256), NULL, NULL};
static const SFX(gemm_isa) SFX(isa_avx512) = {MR512, NR512, KC_T, MC_T, NC_T,
                                               SFX(kern512), SFX(packa512), SFX(packb512),
                                               SFX(gemv512), SFX(pgemv512), SFX(kernd512)};
#endif

/* Whether the tiles of a product with N columns read op(A) in place rather
 * than from packed strips. A packed block of op(A) serves every strip of
 * N; with few strips, packing costs more than the strided reads it saves.
 * Measured in the cells' products (LSTM, GRU, RNN training at H = 32-512):
 * reading in place wins 8-17% of a whole training call at H = 64 and 2-4%
 * at H = 128, and loses up to 8% where N spans many strips (H = 512). A^T
 * (rows of op(A) strided in memory by lda, often a power of two that maps
 * them onto few L1 sets) only pays off up to two strips. */
static int SFX(direct_a)(const SFX(gemm_isa) *d, int trans_a, int64_t N) {
    return d->kernd && N <= (trans_a ? 2 : 4) * d->nr;
}

/* The blocked product (arguments already checked, M, N, K > 0). */
static void SFX(gemm_blocked)(const SFX(gemm_isa) *d, int trans_a, int trans_b, int64_t M,
                              int64_t N, int64_t K, REAL alpha, const REAL *A, int64_t lda,
                              const REAL *B, int64_t ldb, REAL beta, REAL *C, int64_t ldc,
                              void *workspace) {
    const int MR = d->mr, NR = d->nr;
    uintptr_t base = ((uintptr_t)workspace + 63) & ~(uintptr_t)63;
    REAL *pb = (REAL *)base;
    REAL *pa = (REAL *)(base + ALIGN_UP((size_t)(d->nc + NR_MAX) * d->kc * sizeof(REAL)));

    const int direct = SFX(direct_a)(d, trans_a, N);
    const int64_t si = trans_a ? 1 : lda, sk = trans_a ? lda : 1;
    for (int64_t jc = 0; jc < N; jc += d->nc) {
        int64_t nc = min64(d->nc, N - jc);
        for (int64_t pc = 0; pc < K; pc += d->kc) {
            int64_t kc = min64(d->kc, K - pc);
            REAL beta_p = pc == 0 ? beta : (REAL)1;
            for (int64_t ic = 0; ic < M; ic += d->mc) {
                int64_t mc = min64(d->mc, M - ic);
                if (!direct) d->packa(trans_a, A, lda, ic, pc, mc, kc, MR, pa);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    int nr = (int)min64(NR, nc - jr);
                    REAL *pbj = pb + jr * kc;
                    /* First row block packs the strip; later ones reuse it. */
                    gemm_prefetch next = {NULL, (int64_t)sizeof(REAL) * ldb, 0};
                    if (ic == 0) {
                        d->packb(trans_b, B, ldb, pc, jc + jr, kc, nr, NR, pbj);
                        int64_t n1 = jc + jr + NR; /* first column of the next strip */
                        if (jr + NR < nc) {
                            next.p = (const char *)(trans_b ? B + n1 * ldb + pc
                                                            : B + pc * ldb + n1);
                            next.rows = trans_b ? min64(NR, nc - jr - NR) : kc;
                        }
                    }
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        int mr = (int)min64(MR, mc - ir);
                        const gemm_prefetch *pf = ir == 0 && next.p ? &next : NULL;
                        REAL *cr = C + (ic + ir) * ldc + jc + jr;
                        if (direct)
                            d->kernd(kc, A + (ic + ir) * si + pc * sk, si, sk, pbj, cr, ldc,
                                     alpha, beta_p, mr, nr, pf);
                        else
                            d->kern(kc, pa + ir * kc, pbj, cr, ldc, alpha, beta_p, mr, nr, pf);
                    }
                }
            }
        }
    }
}

/* The micro-kernels of a resolved instruction set. */
static const SFX(gemm_isa) *SFX(isa_desc)(int isa) {
#if GEMM_X86
    switch (isa) {
    case RNN_ISA_AVX512: return &SFX(isa_avx512);
    case RNN_ISA_AVX2: return &SFX(isa_avx2);
    default: break;
    }
#else
    (void)isa;
#endif
    return &SFX(isa_generic);
}

/* The blocked product against a packed op(B) (arguments checked, M, N, K >
 * 0): columns [n0, n0 + N) of the packed matrix, n0 a multiple of NR, into
 * C[:, 0:N]. The loops, and so every sum, are those of gemm_blocked. */
static void SFX(gemm_packed_blocked)(const SFX(gemm_isa) *d, int64_t M, int64_t n0, int64_t N,
                                     int64_t K, int64_t npad, REAL alpha, const REAL *A,
                                     int64_t lda, const REAL *pk, REAL beta, REAL *C,
                                     int64_t ldc, void *workspace) {
    const int MR = d->mr, NR = d->nr;
    REAL *pa = (REAL *)(((uintptr_t)workspace + 63) & ~(uintptr_t)63);

    if (M == 1 && d->pgemv) {
        d->pgemv(n0, N, K, d->kc, npad, alpha, A, pk, beta, C);
        return;
    }
    const int direct = SFX(direct_a)(d, 0, N);
    for (int64_t jc = 0; jc < N; jc += d->nc) {
        int64_t nc = min64(d->nc, N - jc);
        for (int64_t pc = 0; pc < K; pc += d->kc) {
            int64_t kc = min64(d->kc, K - pc);
            REAL beta_p = pc == 0 ? beta : (REAL)1;
            const REAL *slice = pk + pc * npad + (n0 + jc) * kc;
            for (int64_t ic = 0; ic < M; ic += d->mc) {
                int64_t mc = min64(d->mc, M - ic);
                if (!direct) d->packa(0, A, lda, ic, pc, mc, kc, MR, pa);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    int nr = (int)min64(NR, nc - jr);
                    const REAL *pbj = slice + jr * kc;
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        int mr = (int)min64(MR, mc - ir);
                        REAL *cr = C + (ic + ir) * ldc + jc + jr;
                        if (direct)
                            d->kernd(kc, A + (ic + ir) * lda + pc, lda, 1, pbj, cr, ldc, alpha,
                                     beta_p, mr, nr, NULL);
                        else
                            d->kern(kc, pa + ir * kc, pbj, cr, ldc, alpha, beta_p, mr, nr, NULL);
                    }
                }
            }
        }
    }
}

size_t SFX(rnn_gemm_packed_size)(int trans_b, int64_t N, int64_t K) {
    (void)trans_b;
    int64_t len = rnn_gemm_packed_len(N, K);
    if (len < 0 || (uint64_t)len > SIZE_MAX / sizeof(REAL)) return 0;
    return PACK_HDR + PACK_HDR + (size_t)round_up64(N, NR_MAX) * (size_t)K * sizeof(REAL);
}

int SFX(rnn_gemm_pack_b_isa)(int isa, int trans_b, int64_t N, int64_t K, const REAL *B,
                             int64_t ldb, void *packed) {
    if (N < 0 || K < 0) return RNN_ERR_SIZE;
    if (!packed || (N > 0 && K > 0 && !B)) return RNN_ERR_NULL;
    if (N > 0 && K > 0 && ldb < (trans_b ? K : N)) return RNN_ERR_LD;
    const int r = resolve_isa(isa);
    const SFX(gemm_isa) *d = SFX(isa_desc)(r);
    const int NR = d->nr;
    uintptr_t base = ((uintptr_t)packed + 63) & ~(uintptr_t)63;
    gemm_packed_hdr *h = (gemm_packed_hdr *)base;
    *h = (gemm_packed_hdr){PACK_MAGIC, r, (int32_t)sizeof(REAL), NR, N, K, round_up64(N, NR)};
    REAL *dst = (REAL *)(base + PACK_HDR);
    for (int64_t pc = 0; pc < K; pc += d->kc) {
        int64_t kc = min64(d->kc, K - pc);
        REAL *slice = dst + pc * h->npad;
        for (int64_t j = 0; j < N; j += NR)
            d->packb(trans_b != 0, B, ldb, pc, j, kc, (int)min64(NR, N - j), NR, slice + j * kc);
    }
    return RNN_OK;
}

int SFX(rnn_gemm_pack_b)(int trans_b, int64_t N, int64_t K, const REAL *B, int64_t ldb,
                         void *packed) {
    return SFX(rnn_gemm_pack_b_isa)(rnn_gemm_best_isa(), trans_b, N, K, B, ldb, packed);
}

/* One block of a threaded product: the arguments every task shares. */
typedef struct {
    const SFX(gemm_isa) *d;
    int isa, trans_a, trans_b, by_cols;
    int64_t M, N, K, npad, lda, ldb, ldc, len, chunk;
    REAL alpha, beta;
    const REAL *A, *B, *pk;
    REAL *C;
    void *workspace;
    size_t ws_step;
    int status[RNN_MAX_THREADS];
} SFX(gemm_job);

static void SFX(gemm_packed_task)(void *ctx, int i) {
    const SFX(gemm_job) *j = ctx;
    int64_t s0 = i * j->chunk, n = min64(j->chunk, j->len - s0);
    void *ws = (char *)j->workspace + (size_t)i * j->ws_step;
    if (j->by_cols)
        SFX(gemm_packed_blocked)(j->d, j->M, s0, n, j->K, j->npad, j->alpha, j->A, j->lda, j->pk,
                                 j->beta, j->C + s0, j->ldc, ws);
    else
        SFX(gemm_packed_blocked)(j->d, n, 0, j->N, j->K, j->npad, j->alpha, j->A + s0 * j->lda,
                                 j->lda, j->pk, j->beta, j->C + s0 * j->ldc, j->ldc, ws);
}

int SFX(rnn_gemm_packed_mt)(rnn_pool *pool, int threads, int64_t M, int64_t N, int64_t K,
                            REAL alpha, const REAL *A, int64_t lda, const void *packed, REAL beta,
                            REAL *C, int64_t ldc, void *workspace) {
    if (M < 0 || N < 0 || K < 0) return RNN_ERR_SIZE;
    if (M == 0 || N == 0) return RNN_OK;
    if (!C || (K > 0 && (!A || !packed))) return RNN_ERR_NULL;
    if (ldc < N || (K > 0 && lda < K)) return RNN_ERR_LD;
    if (!workspace) return RNN_ERR_NULL;
    if (K == 0 || alpha == 0) {
        SFX(scale_c)(M, N, beta, C, ldc);
        return RNN_OK;
    }
    const gemm_packed_hdr *h =
        (const gemm_packed_hdr *)(((uintptr_t)packed + 63) & ~(uintptr_t)63);
    if (h->magic != PACK_MAGIC || h->elt != (int32_t)sizeof(REAL) || h->n != N || h->k != K)
        return RNN_ERR_SIZE;
    const SFX(gemm_isa) *d = SFX(isa_desc)(h->isa);
    const REAL *pk = (const REAL *)((const char *)h + PACK_HDR);
    const int64_t npad = h->npad;
    const int nt_madds = rnn_gemm_threads_for(threads, M, N, K);
    int nt = rnn_gemm_weight_threads(threads, nt_madds,
                                     N > NR_MAX ? (double)npad * (double)K * sizeof(REAL) : 0);
    const int serial = gemm_backing_off(pool, &nt, nt_madds);
    if (nt <= 1) {
        SFX(gemm_packed_blocked)(d, M, 0, N, K, npad, alpha, A, lda, pk, beta, C, ldc, workspace);
        return RNN_OK;
    }
    /* The blocks of rnn_gemm_mt: NR_MAX columns (a multiple of every NR)
     * or 16 rows at a time, each computed as the one-thread product does. */
    SFX(gemm_job) j = {.d = d, .by_cols = N >= M, .M = M, .N = N, .K = K, .npad = npad,
                       .lda = lda, .ldc = ldc, .alpha = alpha, .beta = beta, .A = A, .pk = pk,
                       .C = C, .workspace = workspace, .ws_step = rnn_gemm_workspace_size()};
    const int64_t quantum = j.by_cols ? NR_MAX : 16;
    j.len = j.by_cols ? N : M;
    j.chunk = (j.len + nt - 1) / nt;
    j.chunk = (j.chunk + quantum - 1) / quantum * quantum;
    nt = (int)((j.len + j.chunk - 1) / j.chunk);
    gemm_run_tasks(pool, serial, nt, SFX(gemm_packed_task), &j);
    return RNN_OK;
}

int SFX(rnn_gemm_packed_cols)(int64_t M, int64_t n0, int64_t n1, int64_t N, int64_t K,
                              REAL alpha, const REAL *A, int64_t lda, const void *packed,
                              REAL beta, REAL *C, int64_t ldc, void *workspace) {
    if (M < 0 || N < 0 || K < 0) return RNN_ERR_SIZE;
    if (n0 < 0 || n0 > n1 || n1 > N || n0 % NR_MAX != 0) return RNN_ERR_SIZE;
    if (M == 0 || n0 == n1) return RNN_OK;
    if (!C || (K > 0 && (!A || !packed))) return RNN_ERR_NULL;
    if (ldc < N || (K > 0 && lda < K)) return RNN_ERR_LD;
    if (!workspace) return RNN_ERR_NULL;
    if (K == 0 || alpha == 0) {
        SFX(scale_c)(M, n1 - n0, beta, C + n0, ldc);
        return RNN_OK;
    }
    const gemm_packed_hdr *h =
        (const gemm_packed_hdr *)(((uintptr_t)packed + 63) & ~(uintptr_t)63);
    if (h->magic != PACK_MAGIC || h->elt != (int32_t)sizeof(REAL) || h->n != N || h->k != K)
        return RNN_ERR_SIZE;
    SFX(gemm_packed_blocked)(SFX(isa_desc)(h->isa), M, n0, n1 - n0, K, h->npad, alpha, A, lda,
                             (const REAL *)((const char *)h + PACK_HDR), beta, C + n0, ldc,
                             workspace);
    return RNN_OK;
}

int SFX(rnn_gemm_packed)(int64_t M, int64_t N, int64_t K, REAL alpha, const REAL *A,
                         int64_t lda, const void *packed, REAL beta, REAL *C, int64_t ldc,
                         void *workspace) {
    return SFX(rnn_gemm_packed_mt)(NULL, 1, M, N, K, alpha, A, lda, packed, beta, C, ldc,
                                   workspace);
}

/* Argument checks shared by every entry point. Returns RNN_OK to proceed,
 * -1 when there is nothing to do, or an error code. */
static int SFX(gemm_check)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                           const REAL *A, int64_t lda, const REAL *B, int64_t ldb,
                           const REAL *C, int64_t ldc) {
    if (M < 0 || N < 0 || K < 0) return RNN_ERR_SIZE;
    if (M == 0 || N == 0) return -1;
    if (!C || (K > 0 && (!A || !B))) return RNN_ERR_NULL;
    if (ldc < N) return RNN_ERR_LD;
    if (K > 0) {
        if (lda < (trans_a ? M : K)) return RNN_ERR_LD;
        if (ldb < (trans_b ? K : N)) return RNN_ERR_LD;
    }
    return RNN_OK;
}

int SFX(rnn_gemm_isa)(int isa, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                      REAL alpha, const REAL *A, int64_t lda, const REAL *B, int64_t ldb,
                      REAL beta, REAL *C, int64_t ldc, void *workspace) {
    int st = SFX(gemm_check)(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc);
    if (st < 0) return RNN_OK;
    if (st != RNN_OK) return st;
    if (!workspace) return RNN_ERR_NULL;
    if (K == 0 || alpha == 0) {
        SFX(scale_c)(M, N, beta, C, ldc);
        return RNN_OK;
    }
    const SFX(gemm_isa) *d = SFX(isa_desc)(resolve_isa(isa));
    if (M == 1 && (!trans_a || lda == 1)) {
        d->gemv(trans_b != 0, N, K, alpha, A, B, ldb, beta, C);
        return RNN_OK;
    }
    SFX(gemm_blocked)(d, trans_a != 0, trans_b != 0, M, N, K, alpha, A, lda, B, ldb, beta, C,
                      ldc, workspace);
    return RNN_OK;
}

static void SFX(gemm_task)(void *ctx, int i) {
    SFX(gemm_job) *j = ctx;
    int64_t s0 = i * j->chunk, n = min64(j->chunk, j->len - s0);
    void *ws = (char *)j->workspace + (size_t)i * j->ws_step;
    if (j->by_cols)
        j->status[i] = SFX(rnn_gemm_isa)(j->isa, j->trans_a, j->trans_b, j->M, n, j->K, j->alpha,
                                         j->A, j->lda, j->trans_b ? j->B + s0 * j->ldb : j->B + s0,
                                         j->ldb, j->beta, j->C + s0, j->ldc, ws);
    else
        j->status[i] = SFX(rnn_gemm_isa)(j->isa, j->trans_a, j->trans_b, n, j->N, j->K, j->alpha,
                                         j->trans_a ? j->A + s0 : j->A + s0 * j->lda, j->lda, j->B,
                                         j->ldb, j->beta, j->C + s0 * j->ldc, j->ldc, ws);
}

int SFX(rnn_gemm_mt)(int isa, rnn_pool *pool, int threads, int trans_a, int trans_b, int64_t M,
                     int64_t N, int64_t K, REAL alpha, const REAL *A, int64_t lda, const REAL *B,
                     int64_t ldb, REAL beta, REAL *C, int64_t ldc, void *workspace) {
    const int nt_madds = rnn_gemm_threads_for(threads, M, N, K);
    int nt = nt_madds;
    if (M == 1 && N > NR_MAX) /* a row-vector product reads B as one against a packed B */
        nt = rnn_gemm_weight_threads(threads, nt, (double)N * (double)K * (double)sizeof(REAL));
    const int serial = gemm_backing_off(pool, &nt, nt_madds);
    if (nt <= 1)
        return SFX(rnn_gemm_isa)(isa, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C,
                                 ldc, workspace);
    int st = SFX(gemm_check)(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc);
    if (st < 0) return RNN_OK;
    if (st != RNN_OK) return st;
    if (!workspace) return RNN_ERR_NULL;
    /* Split the wider side of C into nt blocks, a multiple of NR_MAX columns
     * (or 16 rows) each, so every block keeps whole micro-kernel tiles. */
    SFX(gemm_job) j = {.isa = isa, .trans_a = trans_a, .trans_b = trans_b, .by_cols = N >= M,
                       .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha,
                       .beta = beta, .A = A, .B = B, .C = C, .workspace = workspace,
                       .ws_step = rnn_gemm_workspace_size()};
    const int64_t quantum = j.by_cols ? NR_MAX : 16;
    j.len = j.by_cols ? N : M;
    j.chunk = (j.len + nt - 1) / nt;
    j.chunk = (j.chunk + quantum - 1) / quantum * quantum;
    nt = (int)((j.len + j.chunk - 1) / j.chunk);
    gemm_run_tasks(pool, serial, nt, SFX(gemm_task), &j);
    int status = RNN_OK;
    for (int i = 0; i < nt; i++)
        if (j.status[i] > status) status = j.status[i];
    return status;
}

int SFX(rnn_gemm)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, REAL alpha,
                  const REAL *A, int64_t lda, const REAL *B, int64_t ldb, REAL beta, REAL *C,
                  int64_t ldc, void *workspace) {
    return SFX(rnn_gemm_isa)(rnn_gemm_best_isa(), trans_a, trans_b, M, N, K, alpha, A, lda, B,
                             ldb, beta, C, ldc, workspace);
}

int SFX(rnn_gemm_ref)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, REAL alpha,
                      const REAL *A, int64_t lda, const REAL *B, int64_t ldb, REAL beta,
                      REAL *C, int64_t ldc) {
    int st = SFX(gemm_check)(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc);
    if (st < 0) return RNN_OK;
    if (st != RNN_OK) return st;
    if (K == 0 || alpha == 0) {
        SFX(scale_c)(M, N, beta, C, ldc);
        return RNN_OK;
    }
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            REAL s = 0;
            for (int64_t k = 0; k < K; k++) {
                REAL a = trans_a ? A[k * lda + i] : A[i * lda + k];
                REAL b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
                s += a * b;
            }
            REAL *c = C + i * ldc + j;
            *c = beta == 0 ? alpha * s : alpha * s + beta * *c;
        }
    return RNN_OK;
}

#undef NR256
#undef NR512

#endif /* GEMM_TEMPLATE */
