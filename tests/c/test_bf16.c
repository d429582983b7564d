/*
 * test_bf16.c: checks csrc/gemm_bf16.c (bf16.h): the float32 -> bfloat16
 * conversion (fixed vectors for ties, subnormals, Inf, NaN and overflow; a
 * sweep of bit patterns against an independent round-to-nearest-even in
 * double; the vector path against the scalar one, bit for bit), and the
 * mixed-precision product on every instruction set this CPU has, against
 * float64 references:
 *   - the exact product of the original float32 inputs, within the bound
 *     derived in bf16.h (rnn_gemm_bf16_bound);
 *   - the exact product of the inputs rounded by rnn_f32_to_bf16, within
 *     the float32 summation term alone: this pins the rounding of the inputs
 *     to round-to-nearest-even, whatever the path;
 * over shapes that are not multiples of the tiles, K = 1, every transpose,
 * padded leading dimensions, general alpha/beta, NaN in C with beta = 0 and
 * non-finite inputs; the pre-packed B (its documented layout, and results
 * equal bit for bit to the unpacked product); the status codes; and, in a
 * child process whose requests for AMX tile data the OS refuses (a seccomp
 * filter), that the product falls back to the next instruction set.
 *
 *   gcc -std=c11 -O2 -Wall -Wextra -Werror -Icsrc csrc/gemm_bf16.c tests/c/test_bf16.c -lm
 *
 * Prints "N passed, M failed" last and exits non-zero on any failure.
 */
#define _GNU_SOURCE /* syscall, fork and prctl under -std=c11 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) && !defined(RNN_GEMM_PORTABLE)
#define TEST_REFUSAL 1
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "bf16.h"
#include "rnn_common.h"

#define HARNESS_SEED 0x2545F4914F6CDD1DULL
#include "harness.h"

static void *workspace;

static float f_of(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static uint32_t u_of(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ------------------------------------------------------------ conversion */

/* Round to nearest even computed from values, not bits: the two bfloat16
 * neighbours of a finite normal f (toward zero, and the next one out; past
 * the largest finite that is 2^128, i.e. Inf) compared by distance in
 * double, where every quantity here is exact. */
static uint16_t rne_reference(float f) {
    uint32_t u = u_of(f);
    if (isnan(f)) return (uint16_t)((u >> 16) | 0x40);
    if (isinf(f)) return (uint16_t)(u >> 16);
    if (fpclassify(f) == FP_SUBNORMAL || f == 0) return (uint16_t)((u >> 16) & 0x8000);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    double d = fabs((double)f);
    double vlo = fabs((double)f_of((uint32_t)lo << 16));
    double vhi = (hi & 0x7fff) == 0x7f80 ? ldexp(1.0, 128) : fabs((double)f_of((uint32_t)hi << 16));
    double dl = d - vlo, dh = vhi - d;
    if (dl < dh) return lo;
    if (dh < dl) return hi;
    return (lo & 1) ? hi : lo;
}

static void test_conversion_vectors(void) {
    static const uint32_t v[][2] = {
        {0x3f800000, 0x3f80}, /* 1 */
        {0x3f808000, 0x3f80}, /* tie, even below */
        {0x3f818000, 0x3f82}, /* tie, odd below: up */
        {0x3f808001, 0x3f81}, /* just above the tie */
        {0x3f807fff, 0x3f80}, /* just below the tie */
        {0xbf818000, 0xbf82}, /* negative tie */
        {0xbf808000, 0xbf80},
        {0x00000000, 0x0000}, {0x80000000, 0x8000},
        {0x00000001, 0x0000}, /* smallest subnormal: signed zero */
        {0x80000001, 0x8000},
        {0x007fffff, 0x0000}, /* largest subnormal: zero, not the smallest normal */
        {0x807fffff, 0x8000},
        {0x00800000, 0x0080}, /* smallest normal */
        {0x00ff8000, 0x0100}, /* tie at the smallest normals */
        {0x7f7f7fff, 0x7f7f}, /* largest bf16, from just below the tie */
        {0x7f7f8000, 0x7f80}, /* tie at the top, odd below: Inf */
        {0x7f7fffff, 0x7f80}, /* FLT_MAX rounds to Inf */
        {0xff7fffff, 0xff80},
        {0x7f800000, 0x7f80}, {0xff800000, 0xff80}, /* Inf */
        {0x7f800001, 0x7fc0}, /* signalling NaN with a low payload: quiet, not Inf */
        {0x7fa00000, 0x7fe0}, /* signalling NaN: quiet bit set, payload kept */
        {0x7fc00000, 0x7fc0}, {0xffc12345, 0xffc1}, {0x7fffffff, 0x7fff},
    };
    const int n = (int)(sizeof v / sizeof v[0]);
    float src[64];
    rnn_bf16 dst[64];
    for (int i = 0; i < n; i++) {
        char what[120];
        float f = f_of(v[i][0]);
        snprintf(what, sizeof what, "scalar %08x -> %04x, got %04x", (unsigned)v[i][0],
                 (unsigned)v[i][1], (unsigned)rnn_f32_to_bf16(f));
        check(rnn_f32_to_bf16(f) == v[i][1], what);
        snprintf(what, sizeof what, "reference %08x -> %04x", (unsigned)v[i][0],
                 (unsigned)v[i][1]);
        check(rne_reference(f) == v[i][1], what);
        src[i] = f;
    }
    for (int isa = RNN_BF16_GENERIC; isa <= RNN_BF16_AMX; isa++) {
        if (!rnn_bf16_isa_supported(isa)) continue;
        for (int len = 1; len <= n; len++) {
            for (int i = 0; i < 64; i++) dst[i] = 0xabcd;
            rnn_f32_to_bf16_n_isa(isa, src, dst, len);
            int ok = 1;
            for (int i = 0; i < 64; i++)
                ok &= i < len ? dst[i] == v[i][1] : dst[i] == 0xabcd;
            char what[80];
            snprintf(what, sizeof what, "%s conversion of the vectors, n = %d",
                     rnn_bf16_isa_name(isa), len);
            check(ok, what);
        }
    }
}

/* Bit patterns spread over all 2^32 (a stride prime to 2^32) and around
 * every rounding boundary of a few thousand random values: the scalar
 * conversion against rne_reference, the vector path against the scalar. */
static void test_conversion_sweep(void) {
    enum { N = 1 << 17 };
    float *src = xmalloc(N * sizeof(float));
    rnn_bf16 *dst = xmalloc(N * sizeof(rnn_bf16));
    int bad_ref = 0;
    for (int pass = 0; pass < 4; pass++) {
        for (uint32_t i = 0; i < N; i++) {
            uint32_t u;
            if (pass < 2) u = (uint32_t)(i + (uint32_t)pass * N) * 0x9E3779B1u;
            else {
                /* boundaries: xxxx7fff, xxxx8000, xxxx8001, xxxx0000, and neighbours */
                static const uint32_t lows[] = {0x7ffe, 0x7fff, 0x8000, 0x8001, 0x0000, 0xffff,
                                                0x0001, 0x4000};
                uint32_t hi = (uint32_t)(uniform() * 32768.0 + 32768.0) & 0xffff;
                if (pass == 3) hi = i / 8 % 0x10000;
                u = hi << 16 | lows[i % 8];
            }
            src[i] = f_of(u);
            if (rnn_f32_to_bf16(src[i]) != rne_reference(src[i]) && bad_ref++ < 5)
                printf("  %08x: scalar %04x, reference %04x\n", (unsigned)u,
                       (unsigned)rnn_f32_to_bf16(src[i]), (unsigned)rne_reference(src[i]));
        }
        for (int isa = RNN_BF16_GENERIC; isa <= RNN_BF16_AMX; isa++) {
            if (!rnn_bf16_isa_supported(isa)) continue;
            rnn_f32_to_bf16_n_isa(isa, src, dst, N);
            int bad = 0;
            for (uint32_t i = 0; i < N; i++) bad += dst[i] != rnn_f32_to_bf16(src[i]);
            char what[80];
            snprintf(what, sizeof what, "%s conversion equals the scalar one (sweep %d)",
                     rnn_bf16_isa_name(isa), pass);
            check(bad == 0, what);
        }
    }
    check(bad_ref == 0, "scalar conversion is round-to-nearest-even over the sweep");
    free(src);
    free(dst);
}

/* --------------------------------------------------------------- product */

typedef struct {
    double max_ratio;     /* largest error / bound against the original inputs */
    double max_rel_orig;  /* largest error / S against the original inputs */
} stats;
static stats st_all[3];

/* One product on one isa, checked against both references; returns 1 if it
 * passes. pad_* widen the leading dimensions; nan_c fills C with NaN
 * (beta must be 0); packed also runs the pre-packed path and wants it equal
 * bit for bit. special puts an Inf and a NaN into A. */
static int run(int isa, int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha,
               double beta, int64_t pad_a, int64_t pad_b, int64_t pad_c, int nan_c, int packed,
               int special) {
    int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int64_t lda = ac + pad_a, ldb = bc + pad_b, ldc = N + pad_c;
    size_t na = (size_t)(ar * lda) + 1, nb = (size_t)(br * ldb) + 1, nc = (size_t)(M * ldc) + 1;
    float *A = xmalloc(na * sizeof(float)), *B = xmalloc(nb * sizeof(float));
    float *C = xmalloc(nc * sizeof(float)), *C0 = xmalloc(nc * sizeof(float));
    float *P = xmalloc(nc * sizeof(float));
    for (size_t i = 0; i < na; i++) A[i] = (float)uniform();
    for (size_t i = 0; i < nb; i++) B[i] = (float)uniform();
    if (special && M * K >= 2) {
        A[0] = INFINITY;           /* op(A)[0][0] */
        A[na - 2] = NAN;           /* an element of the last stored row */
    }
    for (size_t i = 0; i < nc; i++) C0[i] = nan_c ? NAN : (float)uniform();
    memcpy(C, C0, nc * sizeof(float));
    memcpy(P, C0, nc * sizeof(float));
    int status = rnn_gemm_bf16_isa(isa, ta, tb, M, N, K, (float)alpha, A, lda, B, ldb,
                                   (float)beta, C, ldc, workspace);
    int ok = status == RNN_OK;
    if (packed && ok) {
        size_t bytes = rnn_gemm_bf16_packed_size(N, K);
        void *pk = xmalloc(bytes);
        ok = rnn_gemm_bf16_pack_b(tb, N, K, B, ldb, pk) == RNN_OK &&
             rnn_gemm_bf16_packed_isa(isa, ta, M, N, K, (float)alpha, A, lda, pk, (float)beta,
                                      P, ldc, workspace) == RNN_OK &&
             memcmp(C, P, nc * sizeof(float)) == 0;
        if (!ok) printf("  packed product differs from the unpacked one\n");
        free(pk);
    }
    double amax = 0, bmax = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t k = 0; k < K; k++) {
            double a = fabs((double)(ta ? A[k * lda + i] : A[i * lda + k]));
            if (isfinite(a) && a > amax) amax = a;
        }
    for (int64_t k = 0; k < K; k++)
        for (int64_t j = 0; j < N; j++) {
            double b = fabs((double)(tb ? B[j * ldb + k] : B[k * ldb + j]));
            if (b > bmax) bmax = b;
        }
    const double v = 0x1p-24;
    double nrnd = (double)K + 2.0 * (double)((K + RNN_BF16_KC - 1) / RNN_BF16_KC) + 2.0;
    double gamma = nrnd * v / (1 - nrnd * v);
    stats *sa = &st_all[isa];
    for (int64_t i = 0; i < M && ok; i++)
        for (int64_t j = 0; j < ldc && ok; j++) {
            float cf = C[i * ldc + j];
            if (j >= N) { /* padding stays untouched */
                ok = memcmp(&C[i * ldc + j], &C0[i * ldc + j], sizeof(float)) == 0;
                continue;
            }
            double s = 0, sr = 0, S = 0, Sr = 0;
            for (int64_t k = 0; k < K; k++) {
                float a = ta ? A[k * lda + i] : A[i * lda + k];
                float b = tb ? B[j * ldb + k] : B[k * ldb + j];
                double ar_ = rnn_bf16_to_f32(rnn_f32_to_bf16(a));
                double br_ = rnn_bf16_to_f32(rnn_f32_to_bf16(b));
                s += (double)a * b;
                sr += ar_ * br_;
                S += fabs((double)a * b);
                Sr += fabs(ar_ * br_);
            }
            double c0 = nan_c ? 0 : C0[i * ldc + j];
            double want = alpha * s + (beta == 0 ? 0 : beta * c0);
            double want_r = alpha * sr + (beta == 0 ? 0 : beta * c0);
            if (!isfinite(want_r)) {
                /* Inf or NaN reached this entry: the same class as the
                 * reference on the rounded inputs */
                ok = isnan(want_r) ? isnan(cf) : cf == want_r;
                if (!ok)
                    printf("  %s non-finite C[%lld,%lld] = %g, reference %g\n",
                           rnn_bf16_isa_name(isa), (long long)i, (long long)j, cf, want_r);
                continue;
            }
            double bound = rnn_gemm_bf16_bound(K, alpha, beta, S, c0, amax, bmax);
            double bound_r = gamma * (fabs(alpha) * Sr + fabs(beta * c0)) +
                             fabs(alpha) * (nrnd + 1) * 0x1p-126 * (amax > 1 ? amax : 1) *
                                 (bmax > 1 ? bmax : 1);
            double err = fabs(cf - want), err_r = fabs(cf - want_r);
            /* + slack for the float64 references' own rounding */
            ok = isfinite(cf) && err <= bound * (1 + 1e-9) + 1e-300 &&
                 err_r <= bound_r * (1 + 1e-9) + 1e-300;
            if (bound > 0 && err / bound > sa->max_ratio) sa->max_ratio = err / bound;
            if (S > 0 && err / (fabs(alpha) * S) > sa->max_rel_orig)
                sa->max_rel_orig = err / (fabs(alpha) * S);
            if (!ok)
                printf("  %s ta=%d tb=%d M=%lld N=%lld K=%lld: C[%lld,%lld]=%.9g exact=%.9g "
                       "(bound %.3g) rounded-inputs=%.9g (bound %.3g)\n",
                       rnn_bf16_isa_name(isa), ta, tb, (long long)M, (long long)N, (long long)K,
                       (long long)i, (long long)j, cf, want, bound, want_r, bound_r);
        }
    ok = ok && memcmp(&C[nc - 1], &C0[nc - 1], sizeof(float)) == 0;
    free(A);
    free(B);
    free(C);
    free(C0);
    free(P);
    return ok;
}

static void run_check(int isa, int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha,
                      double beta, int64_t pad_a, int64_t pad_b, int64_t pad_c, int nan_c,
                      int packed, int special) {
    char what[200];
    snprintf(what, sizeof what,
             "%s ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g pads=%lld,%lld,%lld nan=%d "
             "packed=%d special=%d",
             rnn_bf16_isa_name(isa), ta, tb, (long long)M, (long long)N, (long long)K, alpha,
             beta, (long long)pad_a, (long long)pad_b, (long long)pad_c, nan_c, packed, special);
    check(run(isa, ta, tb, M, N, K, alpha, beta, pad_a, pad_b, pad_c, nan_c, packed, special),
          what);
}

static void test_shapes(int isa) {
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        /* every small size along one axis, the others not tile multiples */
        for (int64_t s = 1; s <= 40; s++) {
            run_check(isa, ta, tb, s, 19, 23, 1, 0, 0, 0, 0, 0, s % 7 == 0, 0);
            run_check(isa, ta, tb, 21, s, 37, 0.5, -1.5, 0, 0, 0, 0, s % 5 == 0, 0);
            run_check(isa, ta, tb, 17, 35, s, 1, 1, 0, 0, 0, 0, s % 3 == 0, 0);
        }
        /* K = 1, M = 1, N = 1 */
        run_check(isa, ta, tb, 45, 77, 1, 1, 0, 0, 0, 0, 0, 1, 0);
        run_check(isa, ta, tb, 1, 77, 45, -2, 0.25, 0, 0, 0, 0, 1, 0);
        run_check(isa, ta, tb, 77, 1, 45, 1, 0, 0, 0, 0, 0, 1, 0);
        run_check(isa, ta, tb, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0);
        /* odd mixtures; K past one slice with a remainder; M past MC, N past NC */
        static const int64_t sh[][3] = {{33, 47, 65},  {31, 17, 33},  {100, 97, 513},
                                        {129, 770, 300}, {64, 1024, 256}, {3, 100, 50},
                                        {250, 49, 31}, {16, 16, 32}, {32, 32, 32}};
        for (size_t p = 0; p < sizeof sh / sizeof sh[0]; p++)
            run_check(isa, ta, tb, sh[p][0], sh[p][1], sh[p][2], p % 2 ? 0.5 : 1,
                      p % 3 ? 0 : -1.5, 0, 0, 0, 0, 1, 0);
        /* padded leading dimensions; beta = 0 over NaN */
        run_check(isa, ta, tb, 29, 45, 67, 0.5, -1.5, 3, 5, 7, 0, 1, 0);
        run_check(isa, ta, tb, 29, 45, 67, 1, 0, 1, 17, 2, 1, 1, 0);
        run_check(isa, ta, tb, 70, 130, 300, 1, 0, 11, 0, 9, 1, 1, 0);
        /* Inf and NaN in A reach exactly the entries they should */
        run_check(isa, ta, tb, 20, 21, 22, 1, 0, 0, 0, 0, 0, 1, 1);
        /* K = 0 and alpha = 0 scale C by beta */
        run_check(isa, ta, tb, 13, 17, 0, 1, 0.5, 0, 0, 0, 0, 1, 0);
        run_check(isa, ta, tb, 13, 17, 0, 1, 0, 0, 0, 0, 1, 1, 0);
        run_check(isa, ta, tb, 13, 17, 5, 0, -2, 0, 0, 0, 0, 1, 0);
    }
}

/* The pre-packed B follows the layout documented in gemm_bf16.c: 16-column
 * strips of kp = round_up(K, 32), element (k, j) at strip j / 16, offset
 * (k / 2) * 32 + (j % 16) * 2 + (k & 1), zeros in the padding. */
static void test_packed_layout(void) {
    for (int tb = 0; tb < 2; tb++) {
        const int64_t N = 37, K = 45, kp = 64, np = 96, ldb = (tb ? K : N) + 3;
        float *B = xmalloc((size_t)((tb ? N : K) * ldb) * sizeof(float));
        for (int64_t i = 0; i < (tb ? N : K) * ldb; i++) B[i] = (float)uniform();
        size_t bytes = rnn_gemm_bf16_packed_size(N, K);
        check(bytes >= 128 + (size_t)(np * kp) * 2, "packed size covers the padded strips");
        unsigned char *raw = xmalloc(bytes + 64);
        void *pk = raw + 5; /* any alignment */
        check(rnn_gemm_bf16_pack_b(tb, N, K, B, ldb, pk) == RNN_OK, "pack_b succeeds");
        const rnn_bf16 *d =
            (const rnn_bf16 *)((((uintptr_t)pk + 63) & ~(uintptr_t)63) + 64);
        int bad = 0;
        for (int64_t j = 0; j < np; j++)
            for (int64_t k = 0; k < kp; k++) {
                rnn_bf16 want = j < N && k < K
                                    ? rnn_f32_to_bf16(tb ? B[j * ldb + k] : B[k * ldb + j])
                                    : 0;
                bad += d[(j / 16) * 16 * kp + (k / 2) * 32 + (j % 16) * 2 + (k & 1)] != want;
            }
        char what[60];
        snprintf(what, sizeof what, "packed layout, trans_b = %d", tb);
        check(bad == 0, what);
        free(raw);
        free(B);
    }
}

static void test_errors(void) {
    float a[64] = {0}, b[64] = {0}, c[64] = {0};
    void *ws = workspace;
    CHECK_GEMM_ARG_ERRORS(rnn_gemm_bf16, a, b, c, ws);
    check(rnn_gemm_bf16(1, 0, 3, 3, 4, 1, a, 2, b, 3, 0, c, 3, ws) == RNN_ERR_LD, "lda < M (T)");
    c[0] = 5;
    check(rnn_gemm_bf16(0, 0, 0, 3, 4, 1, NULL, 4, NULL, 3, 0, c, 3, NULL) == RNN_OK && c[0] == 5,
          "M = 0 is a no-op");
    /* packed: N and K must match the packing; a buffer that was never packed */
    size_t bytes = rnn_gemm_bf16_packed_size(5, 6);
    void *pk = xmalloc(bytes);
    check(rnn_gemm_bf16_packed(0, 2, 5, 6, 1, a, 6, pk, 0, c, 5, ws) == RNN_ERR_SIZE,
          "unpacked buffer refused");
    check(rnn_gemm_bf16_pack_b(0, 5, 6, b, 5, pk) == RNN_OK, "pack 6 x 5");
    check(rnn_gemm_bf16_packed(0, 2, 5, 7, 1, a, 7, pk, 0, c, 5, ws) == RNN_ERR_SIZE,
          "packed K mismatch");
    check(rnn_gemm_bf16_packed(0, 2, 4, 6, 1, a, 6, pk, 0, c, 5, ws) == RNN_ERR_SIZE,
          "packed N mismatch");
    check(rnn_gemm_bf16_packed(0, 2, 5, 6, 1, a, 6, NULL, 0, c, 5, ws) == RNN_ERR_NULL,
          "packed NULL");
    check(rnn_gemm_bf16_packed(0, 2, 5, 6, 1, a, 5, pk, 0, c, 5, ws) == RNN_ERR_LD,
          "packed lda < K");
    check(rnn_gemm_bf16_pack_b(0, 5, 6, b, 4, pk) == RNN_ERR_LD, "pack ldb < N");
    check(rnn_gemm_bf16_pack_b(0, -1, 6, b, 4, pk) == RNN_ERR_SIZE, "pack N < 0");
    check(rnn_gemm_bf16_pack_b(0, 5, 6, NULL, 5, pk) == RNN_ERR_NULL, "pack B NULL");
    check(rnn_gemm_bf16_packed_size(INT64_MAX / 2, INT64_MAX / 2) == 0, "packed size overflow");
    free(pk);
    /* an unknown isa falls back to the best one */
    float x[4] = {1, 2, 3, 4}, y[4] = {1, 0, 0, 1}, z[4];
    check(rnn_gemm_bf16_isa(99, 0, 0, 2, 2, 2, 1, x, 2, y, 2, 0, z, 2, ws) == RNN_OK && z[0] == 1 &&
              z[1] == 2 && z[2] == 3 && z[3] == 4,
          "unknown isa falls back, exact on small integers");
    double g = 0;
    check(rnn_bf16_peak(RNN_BF16_GENERIC, 0, &g) == RNN_ERR_SIZE, "peak with no iterations");
    check(rnn_bf16_peak(7, 10, &g) == RNN_ERR_SIZE, "peak of an unknown isa");
    check(rnn_bf16_peak(RNN_BF16_GENERIC, 10, NULL) == RNN_ERR_NULL, "peak without output");
}

#if TEST_REFUSAL
/* In a child process: make arch_prctl(ARCH_REQ_XCOMP_PERM, ...) fail with
 * EPERM (everything else allowed), then check that AMX is reported absent
 * and the product still runs, on the next best instruction set, correctly.
 * Must run before this process asks for AMX itself (the answer is kept). */
static void test_amx_refused(void) {
    pid_t pid = fork();
    if (pid < 0) {
        check(0, "fork for the refusal test");
        return;
    }
    if (pid == 0) {
        struct sock_filter prog[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_arch_prctl, 0, 3),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x1023, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog fprog = {(unsigned short)(sizeof prog / sizeof prog[0]), prog};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog))
            _exit(3); /* no seccomp here: reported as skipped */
        if (syscall(SYS_arch_prctl, 0x1023, 18) == 0) _exit(4); /* the filter did not bite */
        int ok = !rnn_bf16_isa_supported(RNN_BF16_AMX) && rnn_bf16_best_isa() != RNN_BF16_AMX;
        float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {1, 0, 0, 1, 1, 1}, c[4];
        ok = ok && rnn_gemm_bf16(0, 0, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2, workspace) == RNN_OK &&
             c[0] == 4 && c[1] == 5 && c[2] == 10 && c[3] == 11;
        /* and asking for AMX by name falls back too */
        ok = ok && rnn_gemm_bf16_isa(RNN_BF16_AMX, 0, 0, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2,
                                     workspace) == RNN_OK && c[3] == 11;
        _exit(ok ? 0 : 1);
    }
    int wst = 0;
    waitpid(pid, &wst, 0);
    int code = WIFEXITED(wst) ? WEXITSTATUS(wst) : -1;
    if (code == 3) {
        printf("refusal test: seccomp unavailable, skipped\n");
        return;
    }
    check(code == 0, "AMX refused by the OS: reported absent, products fall back");
}
#endif

int main(void) {
    void *raw;
    workspace = aligned64(rnn_gemm_bf16_workspace_size(), &raw);
    /* an unaligned workspace works too */
    workspace = (char *)workspace + 4;
#if TEST_REFUSAL
    fflush(stdout);
    test_amx_refused();
#endif
    test_conversion_vectors();
    test_conversion_sweep();
    test_packed_layout();
    test_errors();
    for (int isa = RNN_BF16_GENERIC; isa <= RNN_BF16_AMX; isa++) {
        if (!rnn_bf16_isa_supported(isa)) {
            printf("%s: not on this CPU, skipped\n", rnn_bf16_isa_name(isa));
            continue;
        }
        test_shapes(isa);
        double g = 0;
        check(rnn_bf16_peak(isa, 1000, &g) == RNN_OK && g > 0, "peak loop runs");
        /* The references have teeth: the inputs really were rounded to
         * bfloat16 (a float32 product would be ~1e-7 relative), and the
         * bound is not loose by orders of magnitude. */
        check(st_all[isa].max_rel_orig > 1e-4, "errors are those of bfloat16 inputs");
        check(st_all[isa].max_ratio > 0.05, "the bound is within 20x of the worst error");
        printf("%s: worst error / bound %.3f, worst error / sum|a||b| %.2e\n",
               rnn_bf16_isa_name(isa), st_all[isa].max_ratio, st_all[isa].max_rel_orig);
    }
    free(raw);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
