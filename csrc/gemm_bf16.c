/*
 * gemm_bf16.c: bfloat16 conversion and the mixed-precision product of
 * bf16.h (float32 operands rounded to bfloat16, float32 sums).
 *
 * Structure as in gemm.c (Goto/BLIS): for each NC-wide column block of
 * op(B) and KC-deep slice of K, op(B) is packed into 16-column strips and
 * op(A), MC rows at a time, into 16-row strips, rounded to bfloat16 as they
 * are packed and zero-padded at every edge; a micro-kernel multiplies strips
 * into a block of C. One packed layout serves every micro-kernel:
 *   op(A) strip (16 rows, kp deep): 32-deep blocks of 16 x 32 bf16, row r
 *       of block b at b*512 + r*32, i.e. an AMX A tile (64-byte rows);
 *   op(B) strip (16 columns, kp deep): pair rows P = k/2 of 16 columns x 2,
 *       element (k, j) at (k/2)*32 + j*2 + (k&1): the VNNI pair layout of an
 *       AMX B tile, and one vdpbf16ps operand per pair row.
 * kp is the slice depth rounded up to 32; the zero padding adds exact zeros.
 *
 * The x86 paths are compiled with GCC target attributes so the library is
 * built without -march, and chosen at run time from the CPU's features (and,
 * for AMX, the OS's permission to use tile data).
 */
#define _GNU_SOURCE /* syscall() and clock_gettime() under -std=c11 */

#include "bf16.h"
#include "gemm.h"
#include "pool.h"
#include "rnn_common.h"

#include <math.h>
#include <stdatomic.h>
#include <time.h>

#if (defined(__x86_64__) || defined(__i386__)) && !defined(RNN_GEMM_PORTABLE)
#define BF16_X86 1
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define TARGET_BF16 \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#define TARGET_AMX                                                                     \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,amx-tile," \
                          "amx-bf16")))
#else
#define BF16_X86 0
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* Blocking, for a 48 KiB L1d and 2 MiB L2 per core: the KC x NC panel of
 * B (768 KiB) stays in L2; the AVX-512 kernel keeps a 48-column strip of B
 * (24 KiB) in L1 while it walks the MC x KC block of A (64 KiB, L2); the
 * AMX kernel, see MC_AMX. KC and MC are multiples of 32 (the AMX tile depth
 * and height), NC of 96 (every kernel's NR: 32, 48, 16). NC = 1536 holds
 * an LSTM's 4H = 1024 in one panel, so op(A) is packed once. */
#define KC RNN_BF16_KC
#ifndef MC
#define MC 128
#endif
#ifndef NC
#define NC 1536
#endif
/* The AMX kernel runs one 32-row A strip pair (16 KiB, L1) against the
 * whole B panel (streamed from L2): a_outer in bf16_isa. (Before that loop
 * order, 128 rows with B strips outside made A come from L2: 2-3x slower
 * at T*B = 6400.) The kernel is then indifferent to MC, and 128 rows make
 * the transposed packing read 512 contiguous bytes per row of A instead of
 * 128 (the packing of the weight gradient's dG^T took ~45% of its time at
 * 32 rows, ~30% at 128, in perf samples). */
#ifndef MC_AMX
#define MC_AMX 128
#endif
#ifndef MC_AVX
#define MC_AVX MC
#endif
#define NR_PACK 96 /* column padding of a pre-packed B: a multiple of every NR */

_Static_assert(KC % 32 == 0 && MC % 32 == 0 && NC % NR_PACK == 0 && MC_AMX % 32 == 0 &&
                   MC_AMX <= MC && MC_AVX % 32 == 0 && MC_AVX <= MC,
               "bf16 blocking");

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t round_up64(int64_t x, int64_t q) { return (x + q - 1) / q * q; }
#define ALIGN_UP(x) (((x) + 63) & ~(size_t)63)

size_t rnn_gemm_bf16_workspace_size(void) {
    return ALIGN_UP((size_t)MC * KC * sizeof(rnn_bf16)) +
           ALIGN_UP((size_t)NC * KC * sizeof(rnn_bf16)) + 64;
}

/* ------------------------------------------------------ run-time choice */

#if BF16_X86
/* Permission to use AMX tile data is per process and, once granted, lasts
 * for the life of the process (Linux has no call to give it back; a fork
 * inherits it, an exec starts over, and so does this static). The answer is
 * kept so that each product does not pay a system call (~0.3 us, a tenth of
 * a small recurrent step). This is a cache of a fact about the process, as
 * __builtin_cpu_supports caches the CPU's features in libgcc; two threads
 * asking at once both get the same answer and store the same value. A
 * refusal is kept too: AMX then stays off for the process. */
#define ARCH_REQ_XCOMP_PERM_ 0x1023
#define XFEATURE_XTILEDATA_ 18
static int amx_permitted(void) {
    static atomic_int state; /* 0 not asked, 1 granted, -1 refused */
    int s = atomic_load_explicit(&state, memory_order_relaxed);
    if (s == 0) {
        long r = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_XTILEDATA_);
        s = r == 0 ? 1 : -1;
        atomic_store_explicit(&state, s, memory_order_relaxed);
    }
    return s > 0;
}
#endif

int rnn_bf16_isa_supported(int isa) {
    if (isa == RNN_BF16_GENERIC) return 1;
#if BF16_X86
    __builtin_cpu_init();
    int avx = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
              __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
              __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("fma");
    if (isa == RNN_BF16_AVX512) return avx;
    if (isa == RNN_BF16_AMX)
        return avx && __builtin_cpu_supports("amx-tile") && __builtin_cpu_supports("amx-bf16") &&
               amx_permitted();
#endif
    return 0;
}

static const rnn_isa_path bf16_paths[] = {
    {RNN_BF16_AMX, "amx"}, {RNN_BF16_AVX512, "avx512_bf16"}, {RNN_BF16_GENERIC, "generic"}};
#define N_BF16_PATHS ((int)(sizeof bf16_paths / sizeof bf16_paths[0]))

int rnn_bf16_best_isa(void) {
    return rnn_isa_pick(bf16_paths, N_BF16_PATHS, rnn_bf16_isa_supported, -1);
}

const char *rnn_bf16_isa_name(int isa) { return rnn_isa_path_name(bf16_paths, N_BF16_PATHS, isa); }

static int resolve_isa(int isa) {
    return rnn_isa_pick(bf16_paths, N_BF16_PATHS, rnn_bf16_isa_supported, isa);
}

/* ----------------------------------------------------------- conversion */

static void cvt_gen(const float *src, rnn_bf16 *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = rnn_f32_to_bf16(src[i]);
}

#if BF16_X86
static ALWAYS_INLINE __mmask16 mask16(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* 32 bf16 from src[0:n] (n may be <= 0 or > 32), zeros past n. */
TARGET_BF16 static ALWAYS_INLINE __m512i cvt32(const float *src, int64_t n) {
    __m512 lo = _mm512_maskz_loadu_ps(mask16(n), src);
    __m512 hi = _mm512_maskz_loadu_ps(mask16(n - 16), n > 16 ? src + 16 : src);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

TARGET_BF16 static void cvt_avx(const float *src, rnn_bf16 *dst, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) _mm512_storeu_si512((void *)(dst + i), cvt32(src + i, 32));
    if (i < n) {
        int64_t r = n - i;
        __m512i v = cvt32(src + i, r);
        _mm512_mask_storeu_epi16(dst + i, r >= 32 ? (__mmask32)-1 : (((__mmask32)1 << r) - 1), v);
    }
}

/* Dword j = (bf16(r0[j]), bf16(r1[j])) for j < n, zero past n; a NULL row
 * reads as zeros. */
TARGET_BF16 static ALWAYS_INLINE __m512i pairs16(const float *r0, const float *r1, int64_t n) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    __mmask16 m = mask16(n);
    __m512 a = r0 ? _mm512_maskz_loadu_ps(m, r0) : _mm512_setzero_ps();
    __m512 b = r1 ? _mm512_maskz_loadu_ps(m, r1) : _mm512_setzero_ps();
    return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
}

/* In-place transpose of a 16 x 16 matrix of dwords (r[i] is row i). */
TARGET_BF16 static ALWAYS_INLINE void tr16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* u[4g + q], lane L: column 4L + q of rows 4g .. 4g + 3 */
    for (int g = 0; g < 4; g++) {
        u[4 * g + 0] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int q = 0; q < 4; q++) {
        __m512i x0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x88);
        __m512i y0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xdd);
        __m512i x1 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x88);
        __m512i y1 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xdd);
        r[q] = _mm512_shuffle_i32x4(x0, x1, 0x88);
        r[4 + q] = _mm512_shuffle_i32x4(y0, y1, 0x88);
        r[8 + q] = _mm512_shuffle_i32x4(x0, x1, 0xdd);
        r[12 + q] = _mm512_shuffle_i32x4(y0, y1, 0xdd);
    }
}
#endif

void rnn_f32_to_bf16_n_isa(int isa, const float *src, rnn_bf16 *dst, int64_t n) {
    if (!src || !dst || n <= 0) return;
#if BF16_X86
    if (resolve_isa(isa) != RNN_BF16_GENERIC) {
        cvt_avx(src, dst, n);
        return;
    }
#else
    (void)isa;
#endif
    cvt_gen(src, dst, n);
}

void rnn_f32_to_bf16_n(const float *src, rnn_bf16 *dst, int64_t n) {
    rnn_f32_to_bf16_n_isa(rnn_bf16_best_isa(), src, dst, n);
}

/* -------------------------------------------------------------- packing */

/* Packs rows [m0, m0+mc) x cols [k0, k0+kc) of op(A) into mp/16 strips of
 * 16 rows, kp deep (layout at the top of the file); mp >= mc and kp >= kc
 * are multiples of 16 and 32, the rest is zero. */
typedef void (*packa_fn)(int trans_a, const float *A, int64_t lda, int64_t m0, int64_t k0,
                         int64_t mc, int64_t kc, int64_t mp, int64_t kp, rnn_bf16 *dst);
/* Packs cols [n0, n0+nc) x rows [k0, k0+kc) of op(B) into np/16 strips of
 * 16 columns, kp deep; np >= nc and kp >= kc multiples of 16 and 32. */
typedef void (*packb_fn)(int trans_b, const float *B, int64_t ldb, int64_t k0, int64_t n0,
                         int64_t kc, int64_t nc, int64_t np, int64_t kp, rnn_bf16 *dst);
/* C[0:m, 0:n] = alpha * (A strips) * (B strips) + beta * C over kp (a
 * multiple of 32): pa points at the kernel's first row of its first A strip,
 * sa elements from one A strip to the next; pb at its first B strip, sb
 * elements from one B strip to the next. m <= mr and n <= nr are the valid
 * part of the block; the padded rest is computed and discarded. */
typedef void (*kern_fn)(int64_t kp, const rnn_bf16 *pa, int64_t sa, const rnn_bf16 *pb,
                        int64_t sb, float *c, int64_t ldc, float alpha, float beta, int m, int n);

typedef struct {
    int mr, nr; /* block of C per kernel call */
    int64_t mc; /* rows of op(A) packed at a time (a multiple of 32, <= MC) */
    kern_fn kern;
    packa_fn packa;
    packb_fn packb;
    int amx;     /* load the tile configuration around the product */
    int a_outer; /* loop over strips of A outside strips of B */
} bf16_isa;

static ALWAYS_INLINE float op_at(int trans, const float *X, int64_t ld, int64_t r, int64_t c) {
    return trans ? X[c * ld + r] : X[r * ld + c];
}

static void packa_gen(int trans_a, const float *A, int64_t lda, int64_t m0, int64_t k0,
                      int64_t mc, int64_t kc, int64_t mp, int64_t kp, rnn_bf16 *dst) {
    for (int64_t s = 0; s < mp; s += 16)
        for (int64_t b = 0; b < kp; b += 32)
            for (int64_t r = 0; r < 16; r++) {
                rnn_bf16 *d = dst + s * kp + b * 16 + r * 32;
                int64_t i = s + r;
                for (int64_t kk = 0; kk < 32; kk++) {
                    int64_t k = b + kk;
                    d[kk] = i < mc && k < kc
                                ? rnn_f32_to_bf16(op_at(trans_a, A, lda, m0 + i, k0 + k))
                                : 0;
                }
            }
}

static void packb_gen(int trans_b, const float *B, int64_t ldb, int64_t k0, int64_t n0,
                      int64_t kc, int64_t nc, int64_t np, int64_t kp, rnn_bf16 *dst) {
    for (int64_t s = 0; s < np; s += 16)
        for (int64_t k = 0; k < kp; k++)
            for (int64_t jj = 0; jj < 16; jj++) {
                int64_t j = s + jj;
                dst[s * kp + (k >> 1) * 32 + jj * 2 + (k & 1)] =
                    j < nc && k < kc ? rnn_f32_to_bf16(op_at(!trans_b, B, ldb, n0 + j, k0 + k))
                                     : 0;
            }
}

/* Stores a tile t (ldt floats per row) into the valid m x n part of C. */
static void store_tile(const float *t, int64_t ldt, float *c, int64_t ldc, float alpha,
                       float beta, int m, int n) {
    for (int i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        const float *ti = t + i * ldt;
        if (beta == 0)
            for (int j = 0; j < n; j++) ci[j] = alpha * ti[j];
        else
            for (int j = 0; j < n; j++) ci[j] = alpha * ti[j] + beta * ci[j];
    }
}

/* Portable kernel: one 16-row strip by one 16-column strip. */
static void kern_gen(int64_t kp, const rnn_bf16 *pa, int64_t sa, const rnn_bf16 *pb, int64_t sb,
                     float *c, int64_t ldc, float alpha, float beta, int m, int n) {
    (void)sa;
    (void)sb;
    float acc[16][16];
    memset(acc, 0, sizeof acc);
    for (int64_t p = 0; p < kp / 2; p++) {
        const rnn_bf16 *a = pa + (p >> 4) * 512 + (p & 15) * 2;
        const rnn_bf16 *b = pb + p * 32;
        float b0[16], b1[16];
        for (int j = 0; j < 16; j++) {
            b0[j] = rnn_bf16_to_f32(b[2 * j]);
            b1[j] = rnn_bf16_to_f32(b[2 * j + 1]);
        }
        for (int i = 0; i < m; i++) {
            float a0 = rnn_bf16_to_f32(a[i * 32]), a1 = rnn_bf16_to_f32(a[i * 32 + 1]);
            for (int j = 0; j < 16; j++) acc[i][j] += a0 * b0[j] + a1 * b1[j];
        }
    }
    store_tile(&acc[0][0], 16, c, ldc, alpha, beta, m, n);
}

static const bf16_isa isa_generic = {16, 16, MC, kern_gen, packa_gen, packb_gen, 0, 0};

#if BF16_X86
/* ---- vector packers (AVX512-BF16; shared by the AMX path) ---- */

TARGET_BF16 static void packa_avx(int trans_a, const float *A, int64_t lda, int64_t m0,
                                  int64_t k0, int64_t mc, int64_t kc, int64_t mp, int64_t kp,
                                  rnn_bf16 *dst) {
    if (!trans_a) {
        for (int64_t s = 0; s < mp; s += 16)
            for (int64_t b = 0; b < kp; b += 32) {
                /* a tile row is 32 consecutive k of a row of A */
                rnn_bf16 *d = dst + s * kp + b * 16;
                for (int64_t r = 0; r < 16; r++) {
                    int64_t i = s + r;
                    __m512i v = i < mc && b < kc ? cvt32(A + (m0 + i) * lda + k0 + b, kc - b)
                                                 : _mm512_setzero_si512();
                    _mm512_storeu_si512((void *)(d + r * 32), v);
                }
            }
        return;
    }
    /* A is K x M: pair up two rows of k, then transpose the pairs. Each row
     * of A gives only mc floats, rows lda apart (often in different pages),
     * which the hardware prefetchers do not follow: each 32-row block takes
     * all its strips while its lines are fresh, and the rows of the block two
     * ahead are prefetched meanwhile. */
    for (int64_t b = 0; b < kp; b += 32) {
        for (int64_t k = b + 64; k < b + 96 && k < kc; k++) {
            const char *row = (const char *)(A + (k0 + k) * lda + m0);
            for (int64_t off = 0; off < mc * (int64_t)sizeof(float); off += 64)
                _mm_prefetch(row + off, _MM_HINT_T0);
        }
        for (int64_t s = 0; s < mp; s += 16) {
            rnn_bf16 *d = dst + s * kp + b * 16;
            __m512i v[16];
            int64_t n = mc - s;
            for (int64_t q = 0; q < 16; q++) {
                int64_t k = b + 2 * q;
                const float *r0 = n > 0 && k < kc ? A + (k0 + k) * lda + m0 + s : NULL;
                const float *r1 = n > 0 && k + 1 < kc ? A + (k0 + k + 1) * lda + m0 + s : NULL;
                v[q] = pairs16(r0, r1, n);
            }
            tr16(v);
            for (int r = 0; r < 16; r++) _mm512_storeu_si512((void *)(d + r * 32), v[r]);
        }
    }
}

TARGET_BF16 static void packb_avx(int trans_b, const float *B, int64_t ldb, int64_t k0,
                                  int64_t n0, int64_t kc, int64_t nc, int64_t np, int64_t kp,
                                  rnn_bf16 *dst) {
    for (int64_t s = 0; s < np; s += 16) {
        rnn_bf16 *d = dst + s * kp;
        int64_t n = nc - s;
        if (!trans_b) {
            /* B is K x N: a pair row interleaves rows k and k + 1 */
            for (int64_t k = 0; k < kp; k += 2) {
                const float *r0 = k < kc && n > 0 ? B + (k0 + k) * ldb + n0 + s : NULL;
                const float *r1 = k + 1 < kc && n > 0 ? B + (k0 + k + 1) * ldb + n0 + s : NULL;
                if (n > 0 && k + 33 < kc) { /* 64 bytes per row, rows ldb apart: fetch ahead */
                    _mm_prefetch((const char *)(r0 + 32 * ldb), _MM_HINT_T0);
                    _mm_prefetch((const char *)(r1 + 32 * ldb), _MM_HINT_T0);
                }
                _mm512_storeu_si512((void *)(d + k * 16), pairs16(r0, r1, n));
            }
        } else {
            /* B is N x K: a row of B holds the pairs of one column; transpose */
            for (int64_t b = 0; b < kp; b += 32) {
                __m512i v[16];
                for (int64_t jj = 0; jj < 16; jj++)
                    v[jj] = jj < n && b < kc ? cvt32(B + (n0 + s + jj) * ldb + k0 + b, kc - b)
                                             : _mm512_setzero_si512();
                tr16(v);
                for (int q = 0; q < 16; q++)
                    _mm512_storeu_si512((void *)(d + b * 16 + q * 32), v[q]);
            }
        }
    }
}

/* C[0:m, 0:n] = alpha * t + beta * C for a tile t of `rows` x (16 * nv)
 * floats (ldt per row); beta == 0 never reads C. */
TARGET_BF16 static ALWAYS_INLINE void store_avx(const float *t, int64_t ldt, int nv, float *c,
                                                int64_t ldc, float alpha, float beta, int m,
                                                int n) {
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    for (int j = 0; j < nv; j++) {
        __mmask16 mk = mask16(n - 16 * j);
        if (!mk) break;
        for (int i = 0; i < m; i++) {
            float *cij = c + i * ldc + 16 * j;
            __m512 r = _mm512_mul_ps(_mm512_loadu_ps(t + i * ldt + 16 * j), va);
            if (beta != 0) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mk, cij), r);
            _mm512_mask_storeu_ps(cij, mk, r);
        }
    }
}

/* ---- AVX512-BF16: 8 rows x 3 strips (48 columns) ---- */
#define MR_AVX 8
#define NV_AVX 3

/* One row of C (m == 1: a row-vector product, B = 1 inference): 48
 * columns, only the strips that hold some, each summed in one chain in k
 * order exactly as kern_avx sums a row, so that a row's bits do not depend
 * on the tile it falls in (an inference forward's blocks of steps and the
 * training forward's one product then agree). */
TARGET_BF16 static void kern_avx_row(int64_t kp, const rnn_bf16 *pa, const rnn_bf16 *pb,
                                     int64_t sb, float *c, int64_t ldc, float alpha, float beta,
                                     int n) {
    __m512 acc[NV_AVX];
    for (int j = 0; j < NV_AVX; j++) acc[j] = _mm512_setzero_ps();
    const int nv = n > 32 ? 3 : n > 16 ? 2 : 1;
    for (int64_t b = 0; b < kp; b += 32) {
        const rnn_bf16 *ab = pa + b * 16, *bb = pb + b * 16;
        for (int q = 0; q < 16; q++) {
            int32_t pair;
            memcpy(&pair, ab + q * 2, sizeof pair);
            __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
            for (int j = 0; j < nv; j++)
                acc[j] = _mm512_dpbf16_ps(
                    acc[j], av, (__m512bh)_mm512_loadu_si512((const void *)(bb + j * sb + q * 32)));
        }
    }
    float t[NV_AVX * 16];
    for (int j = 0; j < NV_AVX; j++) _mm512_storeu_ps(t + j * 16, acc[j]);
    store_avx(t, NV_AVX * 16, NV_AVX, c, ldc, alpha, beta, 1, n);
}

TARGET_BF16 static void kern_avx(int64_t kp, const rnn_bf16 *pa, int64_t sa, const rnn_bf16 *pb,
                                 int64_t sb, float *c, int64_t ldc, float alpha, float beta,
                                 int m, int n) {
    (void)sa;
    if (m == 1) {
        kern_avx_row(kp, pa, pb, sb, c, ldc, alpha, beta, n);
        return;
    }
    __m512 acc[MR_AVX][NV_AVX];
    for (int i = 0; i < MR_AVX; i++)
        for (int j = 0; j < NV_AVX; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < kp; b += 32) {
        const rnn_bf16 *ab = pa + b * 16, *bb = pb + b * 16;
#pragma GCC unroll 2
        for (int q = 0; q < 16; q++) {
            __m512bh bv[NV_AVX];
            for (int j = 0; j < NV_AVX; j++)
                bv[j] = (__m512bh)_mm512_loadu_si512((const void *)(bb + j * sb + q * 32));
            for (int i = 0; i < MR_AVX; i++) {
                int32_t pair;
                memcpy(&pair, ab + i * 32 + q * 2, sizeof pair);
                __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
                for (int j = 0; j < NV_AVX; j++) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
            }
        }
    }
    float t[MR_AVX * NV_AVX * 16];
    for (int i = 0; i < MR_AVX; i++)
        for (int j = 0; j < NV_AVX; j++) _mm512_storeu_ps(t + i * NV_AVX * 16 + j * 16, acc[i][j]);
    store_avx(t, NV_AVX * 16, NV_AVX, c, ldc, alpha, beta, m, n);
}

static const bf16_isa isa_avx = {MR_AVX, NV_AVX * 16, MC_AVX, kern_avx, packa_avx, packb_avx, 0, 0};

/* ---- AMX: 2 x 2 tiles of 16 x 16 floats (32 x 32 of C) ---- */

/* The tile configuration: palette 1, tiles 0-3 accumulators (16 rows of
 * 16 floats), 4-5 A (16 rows of 32 bf16), 6-7 B (16 pair rows of 16 x 2
 * bf16): all 16 rows of 64 bytes. */
typedef struct {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tilecfg;
_Static_assert(sizeof(amx_tilecfg) == 64, "tile configuration is 64 bytes");

TARGET_AMX static void amx_begin(void) {
    amx_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    /* Not _tile_loadconfig: GCC 12's version tells the compiler it reads
     * only 8 bytes, so the stores of the other 56 may be dropped. */
    __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
}

/* Gives the tile state back, so that the thread's context stays small. */
TARGET_AMX static void amx_end(void) { _tile_release(); }

/* The k loop over 1 or 2 A tiles (rows 0-15, 16-31) and 1 or 2 B tiles
 * (columns 0-15, 16-31), into accumulators 0 (A0 B0), 1 (A0 B1), 2 (A1 B0)
 * and 3 (A1 B1); each tile is loaded just before its first use. */
#define AMX_LOOP(TWO_A, TWO_B)                                     \
    for (int64_t b = 0; b < kp; b += 32) {                         \
        _tile_loadd(4, pa + b * 16, 64);                           \
        _tile_loadd(6, pb + b * 16, 64);                           \
        _tile_dpbf16ps(0, 4, 6);                                   \
        if (TWO_B) {                                               \
            _tile_loadd(7, pb1 + b * 16, 64);                      \
            _tile_dpbf16ps(1, 4, 7);                               \
        }                                                          \
        if (TWO_A) {                                               \
            _tile_loadd(5, pa1 + b * 16, 64);                      \
            _tile_dpbf16ps(2, 5, 6);                               \
            if (TWO_B) _tile_dpbf16ps(3, 5, 7);                    \
        }                                                          \
    }

/* 32 x 32 of C, or 16 rows / 16 columns of it when m / n need no more
 * (small batches, edges). Whole tiles with alpha = 1 and beta = 0 or 1
 * (every slice after the first) go straight between C and the accumulator
 * tiles; the rest through a buffer and store_avx. With alpha = beta = 1 a
 * partial tile's sums go on from C too (through the buffer), so that every
 * element of C gets the same bits wherever the tiles split the product. */
TARGET_AMX static void kern_amx(int64_t kp, const rnn_bf16 *pa, int64_t sa, const rnn_bf16 *pb,
                                int64_t sb, float *c, int64_t ldc, float alpha, float beta,
                                int m, int n) {
    const rnn_bf16 *pa1 = pa + sa, *pb1 = pb + sb;
    const int two_a = m > 16, two_b = n > 16;
    const int direct = alpha == 1 && (beta == 0 || beta == 1) && m == (two_a ? 32 : 16) &&
                       n == (two_b ? 32 : 16);
    const long ldcb = (long)(ldc * (int64_t)sizeof(float));
    float *c1 = c + 16, *c2 = c + 16 * ldc, *c3 = c + 16 * ldc + 16;
    const int from_c = alpha == 1 && beta == 1;
    float t[32 * 32] __attribute__((aligned(64)));
    if (direct && beta == 1) {
        _tile_loadd(0, c, ldcb);
        if (two_b) _tile_loadd(1, c1, ldcb);
        if (two_a) _tile_loadd(2, c2, ldcb);
        if (two_a && two_b) _tile_loadd(3, c3, ldcb);
    } else if (from_c) {
        for (int i = 0; i < 32; i++)
            for (int j = 0; j < 32; j++) t[i * 32 + j] = i < m && j < n ? c[i * ldc + j] : 0.0f;
        _tile_loadd(0, t, 128);
        _tile_loadd(1, t + 16, 128);
        _tile_loadd(2, t + 16 * 32, 128);
        _tile_loadd(3, t + 16 * 32 + 16, 128);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    if (two_a && two_b) AMX_LOOP(1, 1)
    else if (two_a) AMX_LOOP(1, 0)
    else if (two_b) AMX_LOOP(0, 1)
    else AMX_LOOP(0, 0)
    if (direct) {
        _tile_stored(0, c, ldcb);
        if (two_b) _tile_stored(1, c1, ldcb);
        if (two_a) _tile_stored(2, c2, ldcb);
        if (two_a && two_b) _tile_stored(3, c3, ldcb);
        return;
    }
    _tile_stored(0, t, 128);
    _tile_stored(1, t + 16, 128);
    _tile_stored(2, t + 16 * 32, 128);
    _tile_stored(3, t + 16 * 32 + 16, 128);
    store_avx(t, 32, 2, c, ldc, alpha, from_c ? 0.0f : beta, m, n);
}
#undef AMX_LOOP

static const bf16_isa isa_amx = {32, 32, MC_AMX, kern_amx, packa_avx, packb_avx, 1, 1};
#endif /* BF16_X86 */

static const bf16_isa *isa_desc(int isa) {
#if BF16_X86
    if (isa == RNN_BF16_AMX) return &isa_amx;
    if (isa == RNN_BF16_AVX512) return &isa_avx;
#else
    (void)isa;
#endif
    return &isa_generic;
}

/* ------------------------------------------------------------- products */

/* A packed op(B) (rnn_gemm_bf16_pack_b): this header at the first 64-byte
 * boundary of the caller's buffer, then np/16 strips of 16 columns, each
 * kp deep (np = N rounded up to NR_PACK, kp = K rounded up to 32). */
#define PACK_MAGIC 0x424e4e52u /* "RNNB" */
#define PACK_HDR 64
typedef struct {
    uint32_t magic;
    int64_t n, k, np, kp;
} bf16_packed_hdr;
_Static_assert(sizeof(bf16_packed_hdr) <= PACK_HDR, "packed header too large");

static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
    for (int64_t i = 0; i < M; i++) {
        float *ci = C + i * ldc;
        if (beta == 0)
            for (int64_t j = 0; j < N; j++) ci[j] = 0;
        else if (beta != 1)
            for (int64_t j = 0; j < N; j++) ci[j] *= beta;
    }
}

/* The blocked product (arguments checked, M, N, K > 0). op(B) is packed
 * per panel from B, or read from `pk` (its packed strips from column j0 on,
 * a multiple of 16; B unused). */
static void gemm_blocked(const bf16_isa *d, int trans_a, int trans_b, int64_t M, int64_t N,
                         int64_t K, float alpha, const float *A, int64_t lda, const float *B,
                         int64_t ldb, const bf16_packed_hdr *pk, int64_t j0, float beta,
                         float *C, int64_t ldc, void *workspace) {
    const int MR = d->mr, NR = d->nr;
    uintptr_t base = ((uintptr_t)workspace + 63) & ~(uintptr_t)63;
    rnn_bf16 *pa = (rnn_bf16 *)base;
    rnn_bf16 *pbuf = (rnn_bf16 *)(base + ALIGN_UP((size_t)MC * KC * sizeof(rnn_bf16)));
    const rnn_bf16 *pkd = pk ? (const rnn_bf16 *)((const char *)pk + PACK_HDR) : NULL;

#if BF16_X86
    if (d->amx) amx_begin();
#endif
    for (int64_t jc = 0; jc < N; jc += NC) {
        int64_t nc = min64(NC, N - jc);
        for (int64_t pc = 0; pc < K; pc += KC) {
            int64_t kc = min64(KC, K - pc), kp = round_up64(kc, 32);
            float beta_p = pc == 0 ? beta : 1.0f;
            const rnn_bf16 *pb;
            int64_t sb;
            if (pkd) {
                pb = pkd + (j0 + jc) * pk->kp + pc * 16;
                sb = 16 * pk->kp;
            } else {
                d->packb(trans_b, B, ldb, pc, jc, kc, nc, round_up64(nc, NR), kp, pbuf);
                pb = pbuf;
                sb = 16 * kp;
            }
            for (int64_t ic = 0; ic < M; ic += d->mc) {
                int64_t mc = min64(d->mc, M - ic);
                d->packa(trans_a, A, lda, ic, pc, mc, kc, round_up64(mc, 32), kp, pa);
                /* a_outer: one strip of A against the whole panel of B (A in
                 * L1, B from L2); otherwise one strip of B against the block
                 * of A. Either way every block of C is computed alike. */
                const int64_t n_outer = d->a_outer ? mc : nc, n_inner = d->a_outer ? nc : mc;
                const int64_t s_outer = d->a_outer ? MR : NR, s_inner = d->a_outer ? NR : MR;
                for (int64_t o = 0; o < n_outer; o += s_outer)
                    for (int64_t in = 0; in < n_inner; in += s_inner) {
                        int64_t ir = d->a_outer ? o : in, jr = d->a_outer ? in : o;
                        int mr = (int)min64(MR, mc - ir), nr = (int)min64(NR, nc - jr);
                        d->kern(kp, pa + (ir >> 4) * 16 * kp + (ir & 15) * 32, 16 * kp,
                                pb + (jr >> 4) * sb, sb, C + (ic + ir) * ldc + jc + jr, ldc,
                                alpha, beta_p, mr, nr);
                    }
            }
        }
    }
#if BF16_X86
    if (d->amx) amx_end();
#endif
}

/* Argument checks shared by the entry points: RNN_OK to proceed, -1 when
 * there is nothing to do, or an error code. B is checked only when given. */
static int gemm_check(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, const float *A,
                      int64_t lda, const float *B, int64_t ldb, const float *C, int64_t ldc,
                      int check_b) {
    if (M < 0 || N < 0 || K < 0) return RNN_ERR_SIZE;
    if (M == 0 || N == 0) return -1;
    if (!C || (K > 0 && (!A || (check_b && !B)))) return RNN_ERR_NULL;
    if (ldc < N) return RNN_ERR_LD;
    if (K > 0) {
        if (lda < (trans_a ? M : K)) return RNN_ERR_LD;
        if (check_b && ldb < (trans_b ? K : N)) return RNN_ERR_LD;
    }
    return RNN_OK;
}

int rnn_gemm_bf16_isa(int isa, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                      float beta, float *C, int64_t ldc, void *workspace) {
    return rnn_gemm_bf16_mt(isa, NULL, 1, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta,
                            C, ldc, workspace, rnn_gemm_bf16_workspace_size());
}

int rnn_gemm_bf16(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc, void *workspace) {
    return rnn_gemm_bf16_isa(rnn_bf16_best_isa(), trans_a, trans_b, M, N, K, alpha, A, lda, B,
                             ldb, beta, C, ldc, workspace);
}

size_t rnn_gemm_bf16_packed_size(int64_t N, int64_t K) {
    if (N < 0 || K < 0) return 0;
    int64_t np = round_up64(N, NR_PACK), kp = round_up64(K, 32);
    if (kp > 0 && np > (int64_t)((SIZE_MAX - 2 * PACK_HDR) / sizeof(rnn_bf16)) / kp) return 0;
    return 2 * PACK_HDR + (size_t)np * (size_t)kp * sizeof(rnn_bf16);
}

int rnn_gemm_bf16_pack_b(int trans_b, int64_t N, int64_t K, const float *B, int64_t ldb,
                         void *packed) {
    if (N < 0 || K < 0) return RNN_ERR_SIZE;
    if (!packed || (N > 0 && K > 0 && !B)) return RNN_ERR_NULL;
    if (N > 0 && K > 0 && ldb < (trans_b ? K : N)) return RNN_ERR_LD;
    if (rnn_gemm_bf16_packed_size(N, K) == 0) return RNN_ERR_SIZE;
    bf16_packed_hdr *h = (bf16_packed_hdr *)(((uintptr_t)packed + 63) & ~(uintptr_t)63);
    *h = (bf16_packed_hdr){PACK_MAGIC, N, K, round_up64(N, NR_PACK), round_up64(K, 32)};
    rnn_bf16 *dst = (rnn_bf16 *)((char *)h + PACK_HDR);
    if (h->np > 0 && h->kp > 0)
        isa_desc(rnn_bf16_best_isa() == RNN_BF16_GENERIC ? RNN_BF16_GENERIC : RNN_BF16_AVX512)
            ->packb(trans_b != 0, B, ldb, 0, 0, K, N, h->np, h->kp, dst);
    return RNN_OK;
}

int rnn_gemm_bf16_packed_isa(int isa, int trans_a, int64_t M, int64_t N, int64_t K,
                             float alpha, const float *A, int64_t lda, const void *packed,
                             float beta, float *C, int64_t ldc, void *workspace) {
    return rnn_gemm_bf16_packed_mt(isa, NULL, 1, trans_a, M, N, K, alpha, A, lda, packed, beta, C,
                                   ldc, workspace, rnn_gemm_bf16_workspace_size());
}

int rnn_gemm_bf16_packed(int trans_a, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const void *packed, float beta, float *C,
                         int64_t ldc, void *workspace) {
    return rnn_gemm_bf16_packed_isa(rnn_bf16_best_isa(), trans_a, M, N, K, alpha, A, lda, packed,
                                    beta, C, ldc, workspace);
}

/* ------------------------------------------------------------- threads */

int rnn_bf16_isa_for(int64_t M, int64_t N, int64_t K) {
    (void)N;
    (void)K;
    int best = rnn_bf16_best_isa();
    if (best == RNN_BF16_AMX && M < RNN_BF16_AMX_MIN_ROWS) return RNN_BF16_AVX512;
    return best;
}

/* One task per block of C: columns [s0, s0 + n) when by_cols, else rows. */
typedef struct {
    const bf16_isa *d;
    int trans_a, trans_b, by_cols;
    int64_t M, N, K, lda, ldb, ldc, len, chunk;
    float alpha, beta;
    const float *A, *B;
    const bf16_packed_hdr *pk;
    float *C;
    char *workspace;
    size_t ws_step;
} bf16_job;

static void bf16_task(void *ctx, int i) {
    const bf16_job *j = ctx;
    int64_t s0 = i * j->chunk, n = min64(j->chunk, j->len - s0);
    void *ws = j->workspace + (size_t)i * j->ws_step;
    if (j->by_cols) {
        const float *B = j->pk ? NULL : j->trans_b ? j->B + s0 * j->ldb : j->B + s0;
        gemm_blocked(j->d, j->trans_a, j->trans_b, j->M, n, j->K, j->alpha, j->A, j->lda, B,
                     j->ldb, j->pk, s0, j->beta, j->C + s0, j->ldc, ws);
    } else {
        const float *A = j->trans_a ? j->A + s0 : j->A + s0 * j->lda;
        gemm_blocked(j->d, j->trans_a, j->trans_b, n, j->N, j->K, j->alpha, A, j->lda, j->B,
                     j->ldb, j->pk, 0, j->beta, j->C + s0 * j->ldc, j->ldc, ws);
    }
}

/* Below this many multiply-adds a second thread costs more than it saves
 * (bfloat16 products run several times faster than float32 ones). */
#ifndef RNN_BF16_MT_MIN_MADDS
#define RNN_BF16_MT_MIN_MADDS (1 << 22)
#endif

/* Checked arguments, M, N, K > 0: the product on up to `threads` threads. */
static void bf16_run(const bf16_isa *d, rnn_pool *pool, int threads, int trans_a, int trans_b,
                     int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, const bf16_packed_hdr *pk, float beta,
                     float *C, int64_t ldc, void *workspace, size_t ws_step) {
    int64_t nt = 1;
    if (threads > 1) {
        double madds = (double)M * (double)N * (double)K;
        nt = (int64_t)(madds / RNN_BF16_MT_MIN_MADDS);
        nt = min64(nt, threads < RNN_MAX_THREADS ? threads : RNN_MAX_THREADS);
        if (pk && N > NR_PACK)
            nt = rnn_gemm_weight_threads(threads, (int)nt, (double)pk->np * (double)pk->kp * 2);
    }
    if (nt <= 1) {
        gemm_blocked(d, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, pk, 0, beta, C, ldc,
                     workspace);
        return;
    }
    /* whole strips of NR_PACK columns (a multiple of every kernel's NR and
     * of the packed strips' 16), or 32 rows (an AMX pair of tiles) */
    bf16_job j = {.d = d, .trans_a = trans_a, .trans_b = trans_b, .by_cols = N >= M, .M = M,
                  .N = N, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = alpha,
                  .beta = beta, .A = A, .B = B, .pk = pk, .C = C, .workspace = workspace,
                  .ws_step = ws_step};
    const int64_t quantum = j.by_cols ? NR_PACK : 32;
    j.len = j.by_cols ? N : M;
    j.chunk = round_up64((j.len + nt - 1) / nt, quantum);
    nt = (j.len + j.chunk - 1) / j.chunk;
    rnn_pool_run(pool, (int)nt, bf16_task, &j);
}

int rnn_gemm_bf16_mt(int isa, rnn_pool *pool, int threads, int trans_a, int trans_b, int64_t M,
                     int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                     const float *B, int64_t ldb, float beta, float *C, int64_t ldc,
                     void *workspace, size_t ws_step) {
    int st = gemm_check(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, 1);
    if (st < 0) return RNN_OK;
    if (st != RNN_OK) return st;
    if (!workspace) return RNN_ERR_NULL;
    if (ws_step < rnn_gemm_bf16_workspace_size()) return RNN_ERR_WORKSPACE;
    if (K == 0 || alpha == 0) {
        scale_c(M, N, beta, C, ldc);
        return RNN_OK;
    }
    bf16_run(isa_desc(resolve_isa(isa)), pool, threads, trans_a != 0, trans_b != 0, M, N, K,
             alpha, A, lda, B, ldb, NULL, beta, C, ldc, workspace, ws_step);
    return RNN_OK;
}

int rnn_gemm_bf16_packed_mt(int isa, rnn_pool *pool, int threads, int trans_a, int64_t M,
                            int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                            const void *packed, float beta, float *C, int64_t ldc,
                            void *workspace, size_t ws_step) {
    int st = gemm_check(trans_a, 0, M, N, K, A, lda, NULL, 0, C, ldc, 0);
    if (st < 0) return RNN_OK;
    if (st != RNN_OK) return st;
    if (!workspace || (K > 0 && !packed)) return RNN_ERR_NULL;
    if (ws_step < rnn_gemm_bf16_workspace_size()) return RNN_ERR_WORKSPACE;
    if (K == 0 || alpha == 0) {
        scale_c(M, N, beta, C, ldc);
        return RNN_OK;
    }
    const bf16_packed_hdr *h =
        (const bf16_packed_hdr *)(((uintptr_t)packed + 63) & ~(uintptr_t)63);
    if (h->magic != PACK_MAGIC || h->n != N || h->k != K) return RNN_ERR_SIZE;
    bf16_run(isa_desc(resolve_isa(isa)), pool, threads, trans_a != 0, 0, M, N, K, alpha, A, lda,
             NULL, 0, h, beta, C, ldc, workspace, ws_step);
    return RNN_OK;
}

double rnn_gemm_bf16_bound(int64_t K, double alpha, double beta, double S, double c0,
                           double amax, double bmax) {
    const double u = 0x1p-8, v = 0x1p-24;
    double n = (double)K + 2.0 * (double)((K + KC - 1) / KC) + 2.0;
    double gamma = n * v / (1.0 - n * v);
    double m = (amax > 1 ? amax : 1) * (bmax > 1 ? bmax : 1);
    double aa = fabs(alpha);
    return aa * (2 * u + u * u) * S + gamma * (aa * (1 + 2 * u + u * u) * S + fabs(beta * c0)) +
           aa * (n + 1) * 0x1p-126 * m;
}

/* ------------------------------------------------------------ peak loops */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* float32 multiply-adds in 8 independent chains (what the generic path can
 * at best do; the compiler vectorises it as far as the build allows). */
static double peak_gen(int64_t iters) {
    float acc[8][16], x[16];
    for (int j = 0; j < 16; j++) x[j] = 1.0f + 1e-7f * (float)j;
    memset(acc, 0, sizeof acc);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 16; j++) acc[i][j] = acc[i][j] * 0.999f + x[j];
    volatile float sink = acc[3][5];
    (void)sink;
    return (double)iters * 8 * 16 * 2;
}

#if BF16_X86
TARGET_BF16 static double peak_avx(int64_t iters) {
    __m512 acc[24];
    for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps((float)i);
    __m512bh a = (__m512bh)_mm512_set1_epi16((short)0x3f80), b = (__m512bh)_mm512_set1_epi16(
                                                                   (short)0x3c00);
    for (int64_t it = 0; it < iters; it++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(a), "+v"(b));
    }
    __m512 s = acc[0];
    for (int i = 1; i < 24; i++) s = _mm512_add_ps(s, acc[i]);
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return (double)iters * 24 * 16 * 2 * 2;
}

TARGET_AMX static double peak_amx(int64_t iters) {
    rnn_bf16 buf[16 * 32] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 32; i++) buf[i] = 0x3c00; /* 2^-7 */
    amx_begin();
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_zero(4);
    _tile_zero(5);
    _tile_loadd(6, buf, 64);
    _tile_loadd(7, buf, 64);
    for (int64_t it = 0; it < iters; it++) {
        _tile_dpbf16ps(0, 6, 7);
        _tile_dpbf16ps(1, 6, 7);
        _tile_dpbf16ps(2, 6, 7);
        _tile_dpbf16ps(3, 6, 7);
        _tile_dpbf16ps(4, 6, 7);
        _tile_dpbf16ps(5, 6, 7);
    }
    float out[16 * 16] __attribute__((aligned(64)));
    _tile_stored(0, out, 64);
    amx_end();
    volatile float sink = out[17];
    (void)sink;
    return (double)iters * 6 * 16 * 16 * 32 * 2;
}
#endif

int rnn_bf16_peak(int isa, int64_t iters, double *gflops) {
    if (!gflops) return RNN_ERR_NULL;
    if (iters < 1 || !rnn_bf16_isa_supported(isa)) return RNN_ERR_SIZE;
    double t0 = now_seconds(), flops;
#if BF16_X86
    if (isa == RNN_BF16_AMX) flops = peak_amx(iters);
    else if (isa == RNN_BF16_AVX512) flops = peak_avx(iters);
    else
#endif
        flops = peak_gen(iters);
    double dt = now_seconds() - t0;
    *gflops = dt > 0 ? flops / dt * 1e-9 : 0;
    return RNN_OK;
}
