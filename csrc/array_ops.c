/*
 * array_ops.c: the checks of array_ops.h. NumPy's np.isfinite(x).all()
 * writes a boolean array and reads it again; here one pass over the
 * exponent bits, 64 bytes at a time with AVX-512 where the CPU has it.
 */
#include "array_ops.h"

#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(RNN_GEMM_PORTABLE)
#include <immintrin.h>
#define ARRAY_X86 1
#define ARRAY_AVX512 __attribute__((target("avx512f")))

static int has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

/* Four vectors a step (the exponent field of each 32- or 64-bit lane
 * compared with all ones), a masked load for the tail. */
ARRAY_AVX512 static int finite32_avx512(const float *x, int64_t n) {
    const __m512i e = _mm512_set1_epi32(0x7f800000);
    __mmask16 bad = 0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64)
        for (int k = 0; k < 4; k++) {
            __m512i v = _mm512_and_si512(_mm512_loadu_si512((const void *)(x + i + 16 * k)), e);
            bad |= _mm512_cmpeq_epi32_mask(v, e);
        }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512i v = _mm512_and_si512(_mm512_maskz_loadu_epi32(m, x + i), e);
        bad |= _mm512_mask_cmpeq_epi32_mask(m, v, e);
    }
    return bad == 0;
}

ARRAY_AVX512 static int finite64_avx512(const double *x, int64_t n) {
    const __m512i e = _mm512_set1_epi64(0x7ff0000000000000LL);
    __mmask8 bad = 0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int k = 0; k < 4; k++) {
            __m512i v = _mm512_and_si512(_mm512_loadu_si512((const void *)(x + i + 8 * k)), e);
            bad |= _mm512_cmpeq_epi64_mask(v, e);
        }
    for (; i < n; i += 8) {
        __mmask8 m = n - i >= 8 ? (__mmask8)0xff : (__mmask8)((1u << (n - i)) - 1);
        __m512i v = _mm512_and_si512(_mm512_maskz_loadu_epi64(m, x + i), e);
        bad |= _mm512_mask_cmpeq_epi64_mask(m, v, e);
    }
    return bad == 0;
}
#else
#define ARRAY_X86 0
#endif

int rnn_all_finite_f32(const float *x, int64_t n) {
#if ARRAY_X86
    if (has_avx512()) return finite32_avx512(x, n);
#endif
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (u & 0x7f800000u) == 0x7f800000u;
    }
    return bad == 0;
}

int rnn_all_finite_f64(const double *x, int64_t n) {
#if ARRAY_X86
    if (has_avx512()) return finite64_avx512(x, n);
#endif
    uint64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, x + i, sizeof u);
        bad |= (u & 0x7ff0000000000000ULL) == 0x7ff0000000000000ULL;
    }
    return bad == 0;
}
