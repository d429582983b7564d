/*
 * harness.h: what the C test programs share: the pass/fail tally, a
 * deterministic uniform generator, checked allocation and a thread pool. Each program
 * defines HARNESS_SEED before including it to choose its own data.
 */
#ifndef RNNPY_TEST_HARNESS_H
#define RNNPY_TEST_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "pool.h"
#include "rnn_common.h"

static int n_pass, n_fail;

/* One pool for the threaded checks, made on first use, freed at exit (so
 * that LeakSanitizer sees its threads joined and its memory returned). */
static rnn_pool *harness_pool_ptr;
static void harness_pool_free(void) { rnn_pool_free(harness_pool_ptr); }
static inline rnn_pool *harness_pool(void) {
    if (!harness_pool_ptr) {
        harness_pool_ptr = rnn_pool_new();
        atexit(harness_pool_free);
    }
    return harness_pool_ptr;
}

/* Counts a check; prints the first failures. */
static inline void check(int ok, const char *what) {
    if (ok) n_pass++;
    else {
        n_fail++;
        if (n_fail <= 40) printf("FAIL: %s\n", what);
    }
}

/* Frees each pointer given. */
#define FREE_ALL(...)                                                                              \
    do {                                                                                           \
        void *free_all_[] = {__VA_ARGS__};                                                         \
        for (size_t i_ = 0; i_ < sizeof free_all_ / sizeof *free_all_; i_++) free(free_all_[i_]); \
    } while (0)

/* The i-th of the dims every kernel refuses, each one change to the valid dims d: writes
 * the changed dims to e, the status expected to want and what the check says to what;
 * returns 0 past the last. */
static inline int harness_bad_dims(const rnn_dims *d, int i, rnn_dims *e, int *want,
                                   const char **what) {
    *e = *d;
    switch (i) {
    case 0: e->T = 0; *want = RNN_ERR_SIZE; *what = "T = 0 gives RNN_ERR_SIZE"; return 1;
    case 1:
        e->H = INT64_MAX / 2;
        e->ldo = e->H;
        *want = RNN_ERR_SIZE;
        *what = "overflowing H gives RNN_ERR_SIZE";
        return 1;
    case 2: e->ldx = 1; *want = RNN_ERR_LD; *what = "ldx < I gives RNN_ERR_LD"; return 1;
    case 3: e->bs = 7; *want = RNN_ERR_SIZE; *what = "batch stride of neither layout"; return 1;
    case 4: e->ts = 5; *want = RNN_ERR_SIZE; *what = "time stride of neither layout"; return 1;
    default: return 0;
    }
}

#ifndef HARNESS_SEED
#define HARNESS_SEED 0x9E3779B97F4A7C15ULL
#endif
static uint64_t rng_state = HARNESS_SEED;

/* xorshift64*, uniform in [-1, 1) */
static inline double uniform(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

/* zeroed memory, or exit(2) */
static inline void *xmalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) { printf("out of memory\n"); exit(2); }
    return p;
}

/* n bytes 64-byte aligned; *raw is what to free */
static inline void *aligned64(size_t n, void **raw) {
    *raw = xmalloc(n + 64);
    return (void *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63);
}

/* The argument checks of a product with rnn_gemm's signature (ta, tb, M, N,
 * K, alpha, A, lda, B, ldb, beta, C, ldc, workspace): negative sizes, each
 * NULL pointer, each leading dimension shorter than a row; a, b, c hold at
 * least 16 elements. */
#define CHECK_GEMM_ARG_ERRORS(GEMM, a, b, c, ws)                                               \
    do {                                                                                      \
        check(GEMM(0, 0, -1, 2, 2, 1, a, 2, b, 2, 0, c, 2, ws) == RNN_ERR_SIZE, "M < 0");    \
        check(GEMM(0, 0, 2, -1, 2, 1, a, 2, b, 2, 0, c, 2, ws) == RNN_ERR_SIZE, "N < 0");    \
        check(GEMM(0, 0, 2, 2, -1, 1, a, 2, b, 2, 0, c, 2, ws) == RNN_ERR_SIZE, "K < 0");    \
        check(GEMM(0, 0, 2, 2, 2, 1, NULL, 2, b, 2, 0, c, 2, ws) == RNN_ERR_NULL, "A NULL"); \
        check(GEMM(0, 0, 2, 2, 2, 1, a, 2, NULL, 2, 0, c, 2, ws) == RNN_ERR_NULL, "B NULL"); \
        check(GEMM(0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, NULL, 2, ws) == RNN_ERR_NULL, "C NULL"); \
        check(GEMM(0, 0, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2, NULL) == RNN_ERR_NULL,             \
              "workspace NULL");                                                             \
        check(GEMM(0, 0, 2, 3, 4, 1, a, 3, b, 3, 0, c, 3, ws) == RNN_ERR_LD, "lda < K");     \
        check(GEMM(1, 0, 2, 3, 4, 1, a, 1, b, 3, 0, c, 3, ws) == RNN_ERR_LD, "lda < M (ta)"); \
        check(GEMM(0, 0, 2, 3, 4, 1, a, 4, b, 2, 0, c, 3, ws) == RNN_ERR_LD, "ldb < N");     \
        check(GEMM(0, 1, 2, 3, 4, 1, a, 4, b, 3, 0, c, 3, ws) == RNN_ERR_LD, "ldb < K (tb)"); \
        check(GEMM(0, 0, 2, 3, 4, 1, a, 4, b, 3, 0, c, 2, ws) == RNN_ERR_LD, "ldc < N");     \
    } while (0)

#endif /* RNNPY_TEST_HARNESS_H */
