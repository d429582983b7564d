/*
 * bench_gemm_bf16.c: times the bfloat16 product (csrc/gemm_bf16.c) against
 * the float32 one (csrc/gemm.c) on one core, at the shapes of an LSTM layer
 * (T*B = 6400, I = H = 256, 4H = 1024, B = 64), with the tile peaks. A
 * benchmark run by hand, not a test:
 *
 *   gcc -std=c11 -O3 -Icsrc csrc/gemm.c csrc/gemm_bf16.c csrc/rnn_common.c \
 *       tests/c/bench_gemm_bf16.c -lm -o /tmp/bench_bf16 && /tmp/bench_bf16
 *
 * Each figure is the median (and best) of many short timed windows (~2 ms
 * each, so that a busy machine's preemptions spoil few of them).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bf16.h"
#include "gemm.h"
#include "rnn_common.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { F32 = -1, F32_PACKED = -2 };
typedef struct {
    int ta, tb;
    int64_t M, N, K;
    const float *A, *B;
    float *C;
    void *ws, *pk, *pk32;
} prob;

static void call(int isa, int packed, const prob *p) {
    int64_t lda = p->ta ? p->M : p->K, ldb = p->tb ? p->K : p->N;
    int st;
    if (isa == F32)
        st = rnn_gemm_isa_f32(RNN_ISA_AVX512, p->ta, p->tb, p->M, p->N, p->K, 1, p->A, lda, p->B,
                              ldb, 0, p->C, p->N, p->ws);
    else if (isa == F32_PACKED)
        st = rnn_gemm_packed_f32(p->M, p->N, p->K, 1, p->A, lda, p->pk32, 0, p->C, p->N, p->ws);
    else if (packed)
        st = rnn_gemm_bf16_packed_isa(isa, p->ta, p->M, p->N, p->K, 1, p->A, lda, p->pk, 0, p->C,
                                      p->N, p->ws);
    else
        st = rnn_gemm_bf16_isa(isa, p->ta, p->tb, p->M, p->N, p->K, 1, p->A, lda, p->B, ldb, 0,
                               p->C, p->N, p->ws);
    if (st) {
        printf("status %d\n", st);
        exit(1);
    }
}

/* GFLOP/s: median and best over `windows` windows of ~2 ms. */
static void timeit(const char *name, int isa, int packed, const prob *p, int windows) {
    double flops = 2.0 * (double)p->M * (double)p->N * (double)p->K;
    call(isa, packed, p);
    double t0 = now();
    call(isa, packed, p);
    double one = now() - t0;
    int reps = one > 2e-3 ? 1 : (int)(2e-3 / (one > 1e-7 ? one : 1e-7)) + 1;
    double *g = malloc(sizeof(double) * (size_t)windows);
    for (int w = 0; w < windows; w++) {
        t0 = now();
        for (int r = 0; r < reps; r++) call(isa, packed, p);
        g[w] = flops * reps / (now() - t0) * 1e-9;
    }
    qsort(g, (size_t)windows, sizeof(double), cmp);
    printf("  %-28s median %7.1f  best %7.1f GFLOP/s\n", name, g[windows / 2], g[windows - 1]);
    free(g);
}

int main(int argc, char **argv) {
    int windows = argc > 1 ? atoi(argv[1]) : 31;
    for (int isa = RNN_BF16_AVX512; isa <= RNN_BF16_AMX; isa++) {
        if (!rnn_bf16_isa_supported(isa)) continue;
        double g[41];
        for (int r = 0; r < 41; r++)
            rnn_bf16_peak(isa, isa == RNN_BF16_AMX ? 10000 : 50000, &g[r]);
        qsort(g, 41, sizeof(double), cmp);
        printf("peak %-12s median %7.1f  best %7.1f GFLOP/s\n", rnn_bf16_isa_name(isa), g[20],
               g[40]);
    }
    static const struct {
        const char *name;
        int ta, tb, packed;
        int64_t M, N, K;
    } shapes[] = {
        {"input projection x W_ih^T", 0, 1, 0, 6400, 1024, 256},
        {"weight gradient dG^T x", 1, 0, 0, 1024, 256, 6400},
        {"recurrent step h W_hh^T", 0, 1, 1, 64, 1024, 256},
        {"recurrent step B=16", 0, 1, 1, 16, 1024, 256},
        {"recurrent step H=512", 0, 1, 1, 64, 2048, 512},
    };
    size_t wsz = rnn_gemm_bf16_workspace_size() > rnn_gemm_workspace_size()
                     ? rnn_gemm_bf16_workspace_size()
                     : rnn_gemm_workspace_size();
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        prob p = {shapes[s].ta, shapes[s].tb, shapes[s].M, shapes[s].N, shapes[s].K,
                  NULL, NULL, NULL, NULL, NULL, NULL};
        float *A = malloc(sizeof(float) * (size_t)(p.M * p.K));
        float *B = malloc(sizeof(float) * (size_t)(p.K * p.N));
        p.C = malloc(sizeof(float) * (size_t)(p.M * p.N));
        for (int64_t i = 0; i < p.M * p.K; i++) A[i] = (float)((i * 7919) % 1000) / 1000 - 0.5f;
        for (int64_t i = 0; i < p.K * p.N; i++) B[i] = (float)((i * 104729) % 1000) / 1000 - 0.5f;
        p.A = A;
        p.B = B;
        p.ws = aligned_alloc(64, (wsz + 63) / 64 * 64);
        p.pk = malloc(rnn_gemm_bf16_packed_size(p.N, p.K));
        p.pk32 = malloc(rnn_gemm_packed_size_f32(p.tb, p.N, p.K));
        rnn_gemm_bf16_pack_b(p.tb, p.N, p.K, B, p.tb ? p.K : p.N, p.pk);
        rnn_gemm_pack_b_isa_f32(RNN_ISA_AVX512, p.tb, p.N, p.K, B, p.tb ? p.K : p.N, p.pk32);
        printf("%s: M=%lld N=%lld K=%lld ta=%d tb=%d%s\n", shapes[s].name, (long long)p.M,
               (long long)p.N, (long long)p.K, p.ta, p.tb, shapes[s].packed ? " (B pre-packed)" : "");
        timeit("float32 rnn_gemm_f32", F32, 0, &p, windows);
        if (shapes[s].packed && !p.ta) timeit("float32 packed", F32_PACKED, 0, &p, windows);
        for (int isa = RNN_BF16_AVX512; isa <= RNN_BF16_AMX; isa++) {
            if (!rnn_bf16_isa_supported(isa)) continue;
            char nm[64];
            snprintf(nm, sizeof nm, "bf16 %s", rnn_bf16_isa_name(isa));
            timeit(nm, isa, 0, &p, windows);
            if (shapes[s].packed) {
                snprintf(nm, sizeof nm, "bf16 %s pre-packed", rnn_bf16_isa_name(isa));
                timeit(nm, isa, 1, &p, windows);
            }
        }
        free(A);
        free(B);
        free(p.C);
        free(p.ws);
        free(p.pk);
        free(p.pk32);
    }
    return 0;
}
