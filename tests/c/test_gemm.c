/*
 * test_gemm.c: checks the blocked GEMM of csrc/gemm.c against its plain
 * triple-loop reference, for every instruction set this CPU supports, both
 * dtypes, all transposes, edge shapes, padded leading dimensions, general
 * alpha/beta, NaN in C with beta = 0, empty sizes and the error codes; and
 * the rule that splits one row's product against a large weight by columns.
 *
 *   gcc -std=c11 -O2 -Wall -Wextra -Werror -Icsrc csrc/gemm.c csrc/pool.c \
 *       csrc/rnn_common.c tests/c/test_gemm.c -lm -pthread
 *
 * Prints "N passed, M failed" last and exits non-zero on any failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "rnn_common.h"

#define HARNESS_SEED 88172645463325252ull
#include "harness.h"

static void *workspace;

/* One product in one dtype and isa, compared element-wise against the
 * reference with a tolerance relative to |alpha| sum|a||b| + |beta c|,
 * bounded by |alpha| K + |beta| since every entry lies in [-1, 1).
 * pad_* widen the leading dimensions; nan_c fills C with NaN (beta = 0). */
#define DEFINE_RUN(REAL, SFX, EPS)                                                            \
    static int run_##SFX(int isa, int ta, int tb, int64_t M, int64_t N, int64_t K,           \
                         double alpha, double beta, int64_t pad_a, int64_t pad_b,             \
                         int64_t pad_c, int nan_c) {                                          \
        int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;           \
        int64_t lda = ac + pad_a, ldb = bc + pad_b, ldc = N + pad_c;                          \
        size_t na = (size_t)(ar * lda) + 1, nb = (size_t)(br * ldb) + 1;                      \
        size_t nc = (size_t)(M * ldc) + 1;                                                    \
        REAL *A = malloc(na * sizeof(REAL)), *B = malloc(nb * sizeof(REAL));                  \
        REAL *C = malloc(nc * sizeof(REAL)), *R = malloc(nc * sizeof(REAL));                  \
        for (size_t i = 0; i < na; i++) A[i] = (REAL)uniform();                               \
        for (size_t i = 0; i < nb; i++) B[i] = (REAL)uniform();                               \
        for (size_t i = 0; i < nc; i++) C[i] = nan_c ? (REAL)NAN : (REAL)uniform();           \
        memcpy(R, C, nc * sizeof(REAL));                                                      \
        int st = rnn_gemm_isa_##SFX(isa, ta, tb, M, N, K, (REAL)alpha, A, lda, B, ldb,        \
                                    (REAL)beta, C, ldc, workspace);                           \
        int st_ref = rnn_gemm_ref_##SFX(ta, tb, M, N, K, (REAL)alpha, A, lda, B, ldb,         \
                                        (REAL)beta, R, ldc);                                  \
        int ok = st == RNN_OK && st_ref == RNN_OK;                                            \
        for (int64_t i = 0; i < M && ok; i++)                                                 \
            for (int64_t j = 0; j < ldc && ok; j++) {                                         \
                double c = C[i * ldc + j], r = R[i * ldc + j];                                \
                if (j >= N) { /* padding must be left untouched */                          \
                    ok = memcmp(&C[i * ldc + j], &R[i * ldc + j], sizeof(REAL)) == 0;         \
                    continue;                                                                 \
                }                                                                             \
                /* |a|, |b| < 1, so sum|a||b| <= K: a cheap, safe scale. */            \
                double tol = (EPS) * (fabs(alpha) * (double)K + (nan_c ? 0 : fabs(beta) * 2) +   \
                                      1e-30);                                                 \
                ok = isfinite(c) && fabs(c - r) <= tol;                                       \
                if (!ok)                                                                      \
                    printf("  %s %s ta=%d tb=%d M=%lld N=%lld K=%lld: C[%lld,%lld]=%.17g "   \
                           "ref=%.17g\n",                                                     \
                           #SFX, rnn_gemm_isa_name(isa), ta, tb, (long long)M, (long long)N,  \
                           (long long)K, (long long)i, (long long)j, c, r);                   \
            }                                                                                 \
        ok = ok && memcmp(&C[nc - 1], &R[nc - 1], sizeof(REAL)) == 0;                         \
        FREE_ALL(A, B, C, R);                                                                 \
        return ok;                                                                            \
    }

DEFINE_RUN(float, f32, 1e-5)
DEFINE_RUN(double, f64, 1e-13)

static void run_both(int isa, int ta, int tb, int64_t M, int64_t N, int64_t K, double alpha,
                     double beta, int64_t pad_a, int64_t pad_b, int64_t pad_c, int nan_c) {
    char what[200];
    snprintf(what, sizeof what,
             "%s ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g pads=%lld,%lld,%lld nan=%d",
             rnn_gemm_isa_name(isa), ta, tb, (long long)M, (long long)N, (long long)K, alpha,
             beta, (long long)pad_a, (long long)pad_b, (long long)pad_c, nan_c);
    char w32[220], w64[220];
    snprintf(w32, sizeof w32, "f32 %s", what);
    snprintf(w64, sizeof w64, "f64 %s", what);
    check(run_f32(isa, ta, tb, M, N, K, alpha, beta, pad_a, pad_b, pad_c, nan_c), w32);
    check(run_f64(isa, ta, tb, M, N, K, alpha, beta, pad_a, pad_b, pad_c, nan_c), w64);
}

static void test_shapes(int isa) {
    static const double ab[][2] = {{1, 0}, {0.5, -1.5}, {1, 1}, {-2, 0.25}};
    /* Every small shape 1..33 along one axis at a time, the others fixed. */
    for (int t = 0; t < 4; t++) {
        int ta = t & 1, tb = t >> 1;
        for (int64_t s = 1; s <= 33; s++) {
            run_both(isa, ta, tb, s, 19, 23, 1, 0, 0, 0, 0, 0);
            run_both(isa, ta, tb, 21, s, 23, 0.5, -1.5, 0, 0, 0, 0);
            run_both(isa, ta, tb, 17, 35, s, 1, 1, 0, 0, 0, 0);
        }
        /* Row-vector products (M = 1), contiguous and strided op(A). */
        for (int64_t s = 1; s <= 40; s++) {
            run_both(isa, ta, tb, 1, s, s + 3, 1, 0, 0, 0, 0, 0);
            run_both(isa, ta, tb, 1, 3 * s + 1, s, 0.5, -1.5, 0, s % 3, 0, 0);
        }
        run_both(isa, ta, tb, 1, 77, 45, 1, 1, 3, 2, 1, 0);
        /* Small cubes and odd mixtures. */
        for (int64_t s = 1; s <= 20; s++) run_both(isa, ta, tb, s, s, s, 1, 0, 0, 0, 0, 0);
        static const int64_t primes[][3] = {{37, 61, 131}, {61, 37, 257}, {131, 257, 37},
                                            {257, 131, 61}, {1, 257, 131}, {257, 1, 61},
                                            {37, 37, 1},   {1, 1, 1000}};
        for (size_t p = 0; p < sizeof primes / sizeof primes[0]; p++)
            for (size_t a = 0; a < sizeof ab / sizeof ab[0]; a++)
                run_both(isa, ta, tb, primes[p][0], primes[p][1], primes[p][2], ab[a][0],
                         ab[a][1], 0, 0, 0, 0);
        /* Per-step RNN shapes: M = batch, N = G*H, K = H. */
        static const int64_t steps[][3] = {{1, 128, 32}, {16, 128, 32}, {32, 512, 128},
                                           {64, 384, 96}, {3, 100, 50}};
        for (size_t p = 0; p < sizeof steps / sizeof steps[0]; p++)
            run_both(isa, ta, tb, steps[p][0], steps[p][1], steps[p][2], 1, 1, 0, 0, 0, 0);
        /* Padded leading dimensions, beta = 0 over NaN. */
        run_both(isa, ta, tb, 29, 45, 67, 0.5, -1.5, 3, 5, 7, 0);
        run_both(isa, ta, tb, 29, 45, 67, 1, 0, 1, 17, 2, 1);
        run_both(isa, ta, tb, 300, 70, 520, 1, 0, 11, 0, 9, 1);
        run_both(isa, ta, tb, 9, 1100, 40, -1, 0.5, 0, 13, 31, 0);
        /* Larger than one cache block in every dimension. */
        run_both(isa, ta, tb, 131, 1050, 270, 0.5, -1.5, 0, 0, 0, 0);
        /* K = 0 scales C by beta; alpha = 0 likewise. */
        run_both(isa, ta, tb, 13, 17, 0, 1, 0.5, 0, 0, 0, 0);
        run_both(isa, ta, tb, 13, 17, 0, 1, 0, 0, 0, 0, 1);
        run_both(isa, ta, tb, 13, 17, 5, 0, -2, 0, 0, 0, 0);
    }
}

/* Empty products leave C alone; K = 0 with beta scales it. */
static void test_empty(void) {
    float c[4] = {1, 2, 3, 4};
    float a[4] = {1, 1, 1, 1};
    check(rnn_gemm_f32(0, 0, 0, 2, 2, 1, a, 2, a, 2, 0, c, 2, workspace) == RNN_OK &&
              c[0] == 1,
          "M = 0 is a no-op");
    check(rnn_gemm_f32(0, 0, 2, 0, 2, 1, a, 2, a, 2, 0, c, 2, workspace) == RNN_OK &&
              c[0] == 1,
          "N = 0 is a no-op");
    check(rnn_gemm_f32(0, 0, 0, 0, 0, 1, NULL, 0, NULL, 0, 0, NULL, 0, NULL) == RNN_OK,
          "all-empty with NULLs is a no-op");
    check(rnn_gemm_f32(0, 0, 2, 2, 0, 1, NULL, 0, NULL, 0, 2, c, 2, workspace) == RNN_OK &&
              c[0] == 2 && c[3] == 8,
          "K = 0 scales C by beta, A and B unused");
}

static void test_errors(void) {
    double a[64] = {0}, b[64] = {0}, c[64] = {0};
    void *w = workspace;
    CHECK_GEMM_ARG_ERRORS(rnn_gemm_f64, a, b, c, w);
    check(rnn_gemm_f64(1, 1, 2, 3, 4, 1, a, 2, b, 4, 0, c, 3, w) == RNN_OK, "minimal lds ok");
    check(rnn_gemm_ref_f32(0, 0, -1, 1, 1, 1, NULL, 1, NULL, 1, 0, NULL, 1) == RNN_ERR_SIZE,
          "ref M < 0");
    check(rnn_gemm_ref_f32(0, 0, 1, 1, 1, 1, NULL, 1, NULL, 1, 0, (float *)c, 1) == RNN_ERR_NULL,
          "ref A NULL");
    check(rnn_gemm_ref_f32(0, 0, 1, 2, 1, 1, (float *)a, 1, (float *)b, 2, 0, (float *)c, 1) ==
              RNN_ERR_LD,
          "ref ldc < N");
}

static void test_isa(void) {
    int best = rnn_gemm_best_isa();
    check(best >= RNN_ISA_GENERIC && best <= RNN_ISA_AVX512, "best isa in range");
    check(strcmp(rnn_gemm_isa_name(RNN_ISA_AVX512), "avx512") == 0 &&
              strcmp(rnn_gemm_isa_name(RNN_ISA_AVX2), "avx2") == 0 &&
              strcmp(rnn_gemm_isa_name(RNN_ISA_GENERIC), "generic") == 0,
          "isa names");
    check(rnn_gemm_workspace_size() >= 64 && rnn_gemm_workspace_size() <= ((size_t)4 << 20),
          "workspace size modest");
    /* An unknown isa falls back to the best one. */
    float a = 2, b = 3, c = 0;
    check(rnn_gemm_isa_f32(99, 0, 0, 1, 1, 1, 1, &a, 1, &b, 1, 0, &c, 1, workspace) == RNN_OK &&
              c == 6,
          "unknown isa falls back");
}

/* The packed path: op(B) packed once (into a buffer 8 bytes off malloc's
 * alignment), then products against it must equal rnn_gemm_isa_* bit for
 * bit (M > 1: the same sums), match the reference, and not depend on the
 * thread count. */
#define DEFINE_PACKED(REAL, SFX, EPS)                                                         \
    static int packed_##SFX(int isa, int tb, int64_t M, int64_t N, int64_t K, double alpha,  \
                            double beta, int threads, void *ws) {                             \
        int64_t lda = K + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;                             \
        size_t na = (size_t)(M * lda), nb = (size_t)((tb ? N : K) * ldb);                     \
        size_t nc = (size_t)(M * ldc);                                                        \
        REAL *A = malloc(na * sizeof(REAL)), *B = malloc(nb * sizeof(REAL));                  \
        REAL *C = malloc(nc * sizeof(REAL)), *U = malloc(nc * sizeof(REAL));                  \
        REAL *R = malloc(nc * sizeof(REAL)), *V = malloc(nc * sizeof(REAL));                  \
        REAL *O = malloc(nc * sizeof(REAL));                                                  \
        size_t psz = rnn_gemm_packed_size_##SFX(tb, N, K);                                    \
        int ok = psz > 0 && psz <= (size_t)rnn_gemm_packed_len(N, K) * sizeof(REAL);          \
        char *praw = malloc(psz + 8), *pk = praw + 8;                                         \
        for (size_t i = 0; i < na; i++) A[i] = (REAL)uniform();                               \
        for (size_t i = 0; i < nb; i++) B[i] = (REAL)uniform();                               \
        for (size_t i = 0; i < nc; i++) C[i] = (REAL)uniform();                               \
        memcpy(U, C, nc * sizeof(REAL));                                                      \
        memcpy(R, C, nc * sizeof(REAL));                                                      \
        memcpy(V, C, nc * sizeof(REAL));                                                      \
        memcpy(O, C, nc * sizeof(REAL));                                                      \
        ok = ok && rnn_gemm_pack_b_isa_##SFX(isa, tb, N, K, B, ldb, pk) == RNN_OK;            \
        ok = ok && rnn_gemm_packed_mt_##SFX(harness_pool(), threads, M, N, K, (REAL)alpha, A,  \
                                            lda, pk, (REAL)beta, C, ldc, ws) == RNN_OK;       \
        ok = ok && rnn_gemm_isa_##SFX(isa, 0, tb, M, N, K, (REAL)alpha, A, lda, B, ldb,       \
                                      (REAL)beta, U, ldc, ws) == RNN_OK;                      \
        ok = ok && rnn_gemm_ref_##SFX(0, tb, M, N, K, (REAL)alpha, A, lda, B, ldb,            \
                                      (REAL)beta, R, ldc) == RNN_OK;                          \
        double tol = (EPS) * (fabs(alpha) * (double)K + fabs(beta) * 2 + 1e-30);              \
        for (size_t i = 0; i < nc && ok; i++) {                                               \
            if (M > 1 && memcmp(&C[i], &U[i], sizeof(REAL)) != 0) ok = 0;                     \
            if (!(fabs((double)C[i] - (double)R[i]) <= tol)) ok = 0;                          \
            if (!ok)                                                                          \
                printf("  packed %s %s tb=%d M=%lld N=%lld K=%lld thr=%d: C[%zu]=%.17g "      \
                       "unpacked=%.17g ref=%.17g\n",                                          \
                       #SFX, rnn_gemm_isa_name(isa), tb, (long long)M, (long long)N,          \
                       (long long)K, threads, i, (double)C[i], (double)U[i], (double)R[i]);   \
        }                                                                                     \
        /* blocks of columns, each as the whole product computed it (M == 1 too):   \
         * [0, 64), [64, 192), [192, N), the columns outside a block untouched */    \
        for (int64_t n0 = 0, w = 64; ok && n0 < N; n0 += w, w *= 2) {                          \
            int64_t n1 = n0 + w < N ? n0 + w : N;                                             \
            ok = rnn_gemm_packed_cols_##SFX(M, n0, n1, N, K, (REAL)alpha, A, lda, pk,          \
                                            (REAL)beta, V, ldc, ws) == RNN_OK;                \
            for (int64_t i = 0; i < M && ok; i++)                                             \
                for (int64_t j = 0; j < N && ok; j++) {                                       \
                    size_t e = (size_t)(i * ldc + j);                                         \
                    const REAL *want = j < n1 ? &C[e] : &O[e]; /* O: C as it came in */      \
                    if (memcmp(&V[e], want, sizeof(REAL)) != 0) {                             \
                        ok = 0;                                                               \
                        printf("  packed cols [%lld, %lld) %s tb=%d M=%lld N=%lld K=%lld: "   \
                               "C[%lld][%lld]\n", (long long)n0, (long long)n1, #SFX, tb,     \
                               (long long)M, (long long)N, (long long)K, (long long)i,       \
                               (long long)j);                                                 \
                    }                                                                         \
                }                                                                             \
        }                                                                                     \
        if (ok && N > 64) /* a block must start on a strip boundary, end within N */           \
            ok = rnn_gemm_packed_cols_##SFX(M, 32, N, N, K, 1, A, lda, pk, 0, V, ldc, ws) ==   \
                     RNN_ERR_SIZE &&                                                          \
                 rnn_gemm_packed_cols_##SFX(M, 64, N + 1, N, K, 1, A, lda, pk, 0, V, ldc,     \
                                            ws) == RNN_ERR_SIZE;                              \
        if (ok && K > 0) { /* sizes other than the packed ones are refused */                 \
            ok = rnn_gemm_packed_##SFX(M, N + 1, K, 1, A, lda, pk, 0, C, ldc + 1, ws) ==      \
                     RNN_ERR_SIZE &&                                                          \
                 rnn_gemm_packed_##SFX(M, N, K - 1 > 0 ? K - 1 : K + 1, 1, A, lda, pk, 0, C,  \
                                       ldc, ws) == RNN_ERR_SIZE &&                            \
                 rnn_gemm_packed_##SFX(M, N, K, 1, A, K - 1, pk, 0, C, ldc, ws) ==            \
                     RNN_ERR_LD &&                                                            \
                 rnn_gemm_packed_##SFX(M, N, K, 1, A, lda, NULL, 0, C, ldc, ws) ==            \
                     RNN_ERR_NULL;                                                            \
        }                                                                                     \
        FREE_ALL(A, B, C, U, R, V, O, praw);                                                  \
        return ok;                                                                            \
    }

DEFINE_PACKED(float, f32, 1e-5)
DEFINE_PACKED(double, f64, 1e-13)

static void test_packed(int isa) {
    enum { THREADS = 3 };
    size_t step = rnn_gemm_workspace_size();
    char *raw = malloc(step * THREADS + 64);
    void *ws = raw + 8;
    /* small and edge shapes, and the recurrent-step shapes of an LSTM/GRU
     * (M = B, op(B) = W_hh^T or W_hh), some spanning several KC slices and
     * NC blocks */
    static const int64_t shapes[][3] = {
        {1, 1, 1},     {2, 3, 5},      {7, 33, 17},    {15, 64, 65},  {29, 97, 31},
        {64, 256, 64}, {64, 64, 256},  {64, 512, 128}, {3, 1100, 20}, {17, 40, 600},
        {64, 1024, 256}, {130, 70, 300}};
    static const double ab[][2] = {{1, 0}, {0.5, -1.5}};
    char what[160];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tb = 0; tb <= 1; tb++)
            for (int a = 0; a < 2; a++)
                for (int thr = 1; thr <= THREADS; thr++) {
                    int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                    snprintf(what, sizeof what,
                             "packed %s tb=%d M=%lld N=%lld K=%lld alpha=%g threads=%d",
                             rnn_gemm_isa_name(isa), tb, (long long)M, (long long)N,
                             (long long)K, ab[a][0], thr);
                    check(packed_f32(isa, tb, M, N, K, ab[a][0], ab[a][1], thr, ws) &&
                              packed_f64(isa, tb, M, N, K, ab[a][0], ab[a][1], thr, ws),
                          what);
                }
    /* K = 0 and alpha = 0 only scale C; empty products do nothing. */
    float c[4] = {1, 2, 3, 4}, a1[4] = {1, 1, 1, 1};
    char pk[1024];
    check(rnn_gemm_pack_b_f32(1, 2, 2, a1, 2, pk) == RNN_OK &&
              rnn_gemm_packed_f32(2, 2, 2, 0, a1, 2, pk, 2, c, 2, ws) == RNN_OK && c[0] == 2 &&
              c[3] == 8,
          "packed alpha = 0 scales C");
    check(rnn_gemm_packed_f32(2, 2, 0, 1, NULL, 0, NULL, 0, c, 2, ws) == RNN_OK && c[0] == 0,
          "packed K = 0 zeroes C");
    check(rnn_gemm_packed_f32(0, 2, 2, 1, NULL, 0, NULL, 0, NULL, 0, NULL) == RNN_OK,
          "packed empty M");
    check(rnn_gemm_pack_b_f32(0, -1, 2, a1, 2, pk) == RNN_ERR_SIZE &&
              rnn_gemm_pack_b_f32(0, 2, 2, NULL, 2, pk) == RNN_ERR_NULL &&
              rnn_gemm_pack_b_f32(0, 2, 2, a1, 1, pk) == RNN_ERR_LD &&
              rnn_gemm_packed_size_f64(0, -1, 2) == 0 && rnn_gemm_packed_len(2, -1) == -1,
          "packed argument errors");
    /* a float32 packing is refused by the float64 product */
    double dc[4], da[4] = {1, 1, 1, 1};
    check(rnn_gemm_packed_f64(2, 2, 2, 1, da, 2, pk, 0, dc, 2, ws) == RNN_ERR_SIZE,
          "packed dtype mismatch refused");
    free(raw);
}

/* The weight-size rule (rnn_gemm_weight_threads, gemm.h): a product of one
 * row against a weight over RNN_L2_WEIGHT_BYTES takes a block of columns
 * per that many bytes, one task each, though its multiply-adds alone would
 * not thread it; the blocks give the one-thread bits. */
static int64_t pool_jobs(void) {
    int64_t threaded = 0, alone = 0;
    rnn_pool_counts(harness_pool(), &threaded, &alone);
    return threaded + alone;
}
static void test_weight_split(void) {
    const double L = RNN_L2_WEIGHT_BYTES;
    check(rnn_gemm_weight_threads(1, 1, 100 * L) == 1 && rnn_gemm_weight_threads(2, 1, L) == 1 &&
              rnn_gemm_weight_threads(2, 1, L + 1) == 2 &&
              rnn_gemm_weight_threads(3, 1, 1.5 * L) == 2 &&
              rnn_gemm_weight_threads(3, 1, 2.5 * L) == 3 &&
              rnn_gemm_weight_threads(8, 1, 100 * L) == 8 &&
              rnn_gemm_weight_threads(2 * RNN_MAX_THREADS, 1, 1000 * L) == RNN_MAX_THREADS &&
              rnn_gemm_weight_threads(4, 3, 2.5 * L) == 3 &&
              rnn_gemm_weight_threads(4, 4, 1.5 * L) == 4 &&
              rnn_gemm_weight_threads(4, 2, 0) == 2 && rnn_gemm_weight_threads(4, 1, 0) == 1,
          "weight rule: a block of columns per RNN_L2_WEIGHT_BYTES, at most the threads, "
          "at least what the multiply-adds ask for");
    enum { THREADS = 2 };
    size_t step = rnn_gemm_workspace_size();
    char *raw = malloc(step * THREADS + 64);
    /* K x N float32 weights of 4/3 and 1/3 RNN_L2_WEIGHT_BYTES (2 MiB, split,
     * and 512 KiB, not split, by default): one row's multiply-adds (2^19 and
     * 2^17 there) are below what threads a product */
    const int64_t K = 512, cols = (int64_t)(L / (3.0 * (double)K * sizeof(float)));
    const int64_t shapes[][2] = {{4 * cols, 1}, {cols, 0}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0] && raw; s++) {
        int64_t N = shapes[s][0], want = shapes[s][1];
        float *A = malloc((size_t)K * sizeof(float)), *B = malloc((size_t)(N * K) * sizeof(float));
        float *C1 = malloc((size_t)N * sizeof(float)), *C2 = malloc((size_t)N * sizeof(float));
        float *P1 = malloc((size_t)N * sizeof(float)), *P2 = malloc((size_t)N * sizeof(float));
        char *pk = malloc(rnn_gemm_packed_size_f32(1, N, K));
        int ok = A && B && C1 && C2 && P1 && P2 && pk;
        for (int64_t i = 0; ok && i < K; i++) A[i] = (float)uniform();
        for (int64_t i = 0; ok && i < N * K; i++) B[i] = (float)uniform();
        ok = ok && rnn_gemm_pack_b_f32(1, N, K, B, K, pk) == RNN_OK;
        int64_t j0 = pool_jobs();
        ok = ok && rnn_gemm_packed_mt_f32(harness_pool(), 1, 1, N, K, 1, A, K, pk, 0, P1, N,
                                          raw + 8) == RNN_OK;
        ok = ok && rnn_gemm_mt_f32(rnn_gemm_best_isa(), harness_pool(), 1, 0, 1, 1, N, K, 1, A,
                                   K, B, K, 0, C1, N, raw + 8) == RNN_OK;
        int64_t j1 = pool_jobs();
        ok = ok && rnn_gemm_packed_mt_f32(harness_pool(), THREADS, 1, N, K, 1, A, K, pk, 0, P2,
                                          N, raw + 8) == RNN_OK;
        int64_t j2 = pool_jobs();
        ok = ok && rnn_gemm_mt_f32(rnn_gemm_best_isa(), harness_pool(), THREADS, 0, 1, 1, N, K,
                                   1, A, K, B, K, 0, C2, N, raw + 8) == RNN_OK;
        int64_t j3 = pool_jobs();
        char what[160];
        snprintf(what, sizeof what, "weight rule: one row, N=%lld K=%lld: data and products",
                 (long long)N, (long long)K);
        check(ok, what);
        snprintf(what, sizeof what, "weight rule: one row, N=%lld K=%lld: %s job at two threads",
                 (long long)N, (long long)K, want ? "one" : "no");
        check(ok && j1 == j0 && j2 - j1 == want && j3 - j2 == want, what);
        snprintf(what, sizeof what, "weight rule: one row, N=%lld K=%lld: one-thread bits",
                 (long long)N, (long long)K);
        check(ok && memcmp(P1, P2, (size_t)N * sizeof(float)) == 0 &&
                  memcmp(C1, C2, (size_t)N * sizeof(float)) == 0,
              what);
        FREE_ALL(A, B, C1, C2, P1, P2, pk);
    }
    check(raw != NULL, "weight rule: workspace");
    free(raw);
}

int main(void) {
    /* Offset the workspace by 8 bytes from malloc's alignment to exercise
     * the in-driver 64-byte alignment. */
    size_t ws = rnn_gemm_workspace_size();
    char *raw = malloc(ws + 64);
    workspace = raw + 8;
    test_isa();
    test_empty();
    test_errors();
    test_weight_split();
    int best = rnn_gemm_best_isa();
    for (int isa = RNN_ISA_GENERIC; isa <= best; isa++) {
        int before = n_fail;
        test_shapes(isa);
        test_packed(isa);
        printf("isa %s: %s\n", rnn_gemm_isa_name(isa), n_fail == before ? "ok" : "FAILED");
    }
    free(raw);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail != 0;
}
