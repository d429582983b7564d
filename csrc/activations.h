/*
 * activations.h: the gate nonlinearities, written once for both dtypes.
 *
 * Included by the cell templates after REAL and SFX are defined; the
 * functions are static inline so each instantiation gets its own copy.
 *
 * float64 uses libm, so that results match the references to the last bits
 * floating point allows. float32 uses the branch-free versions below: libm's
 * tanhf and expf are calls the compiler cannot vectorise, and they cost more
 * than the recurrent product at small H. The fast ones are plain IEEE
 * arithmetic with explicit fused multiply-adds (fmaf, rounded once, so the
 * same bits whether a vector FMA instruction or libm computes it; the gate
 * loops are compiled with FMA for AVX2 and AVX-512), so a loop of them
 * vectorises and gives the same bits at every vector width. Their accuracy
 * against libm is tested over a dense sweep (rnnpy._core.activation; tests/tools/test_bench.py):
 * exp within 2 ulp, sigmoid and tanh within a few ulp and 2e-7 absolute.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#ifndef RNNPY_ACT_FN
#define RNNPY_ACT_FN
#ifdef __GNUC__
#define RNN_FMAF(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define RNN_FMAF(a, b, c) fmaf((a), (b), (c))
#endif
static inline float rnn_exp_f32(float v) { return expf(v); }
static inline double rnn_exp_f64(double v) { return exp(v); }
static inline float rnn_tanh_libm_f32(float v) { return tanhf(v); }
static inline double rnn_tanh_libm_f64(double v) { return tanh(v); }
static inline float rnn_sigmoid_libm_f32(float v) { return 1.0f / (1.0f + expf(-v)); }
static inline double rnn_sigmoid_libm_f64(double v) { return 1.0 / (1.0 + exp(-v)); }

/* e^x for x in [-87, 88] (callers clamp): x = n ln2 + r, |r| <= ln2/2, with
 * ln2 split in two so n ln2 is exact, a degree-7 polynomial for e^r (Cephes'
 * coefficients), and 2^n built in the exponent bits. Rounding x/ln2 to the
 * nearest integer adds and subtracts 1.5 * 2^23, which needs no libm call. */
static inline float rnn_fast_exp_f32(float x) {
    const float shifter = 12582912.0f; /* 1.5 * 2^23 */
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = RNN_FMAF(n, -0.693359375f, x);
    r = RNN_FMAF(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = RNN_FMAF(p, r, 1.3981999507e-3f);
    p = RNN_FMAF(p, r, 8.3334519073e-3f);
    p = RNN_FMAF(p, r, 4.1665795894e-2f);
    p = RNN_FMAF(p, r, 1.6666665459e-1f);
    p = RNN_FMAF(p, r, 5.0000001201e-1f);
    p = RNN_FMAF(p, r * r, r) + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* sigmoid(x) = 1 / (1 + e^-x) with x clamped to [-87, 87], where the true
 * value is already within one float32 ulp of 0 or 1 (or below 2e-38). */
static inline float rnn_fast_sigmoid_f32(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 87.0f ? 87.0f : x;
    return 1.0f / (1.0f + rnn_fast_exp_f32(-x));
}

/* tanh(x): an odd Taylor polynomial for |x| < 0.3 (truncation below 1e-10),
 * else sign(x) (1 - t) / (1 + t) with t = e^(-2|x|) <= 1, which neither
 * overflows nor cancels badly there. Both are computed and one is selected,
 * so the loop stays branch-free. */
static inline float rnn_fast_tanh_f32(float x) {
    float a = x < 0.0f ? -x : x;
    float a2 = a > 43.0f ? 43.0f : a;
    float t = rnn_fast_exp_f32(-2.0f * a2);
    float big = (1.0f - t) / (1.0f + t);
    float x2 = x * x;
    float q = 21844.0f / 6081075.0f;
    q = RNN_FMAF(q, x2, -1382.0f / 155925.0f);
    q = RNN_FMAF(q, x2, 62.0f / 2835.0f);
    q = RNN_FMAF(q, x2, -17.0f / 315.0f);
    q = RNN_FMAF(q, x2, 2.0f / 15.0f);
    q = RNN_FMAF(q, x2, -1.0f / 3.0f);
    float small = RNN_FMAF(x, x2 * q, x);
    float res = x < 0.0f ? -big : big;
    return a < 0.3f ? small : res;
}

/* The same three functions on 16 floats at once with AVX-512, for the gate
 * loops that the compiler vectorises poorly (it turns the clamps into mask
 * arithmetic around the whole exponential). Every operation is the scalar
 * version's, in its order and rounding, so the bits are the same (tested
 * over a dense sweep, rnnpy._core.activation(..., impl="avx512")): the
 * product by 2^n is VSCALEFPS instead of building 2^n in the exponent bits
 * (both are the exactly rounded p * 2^n for n in [-126, 127]), and the
 * clamps are MAXPS / MINPS with the bound first, which, like the scalar
 * comparisons, pass a NaN through. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(RNN_GEMM_PORTABLE)
#include <immintrin.h>
#define RNN_V512 1
#define RNN_V512_FN static inline __attribute__((target("avx512f,avx512vl,avx512dq,fma"), always_inline))
/* The lanes of the 16 floats from index j of a row of n: all, or the tail. */
RNN_V512_FN __mmask16 rnn_v512_mask(int64_t n, int64_t j) {
    return n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1);
}
RNN_V512_FN __m512 rnn_v512_exp(__m512 x) {
    const __m512 shifter = _mm512_set1_ps(12582912.0f);
    __m512 n = _mm512_sub_ps(
        _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), shifter), shifter);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}
RNN_V512_FN __m512 rnn_v512_neg(__m512 x) {
    return _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
}
RNN_V512_FN __m512 rnn_v512_sigmoid(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);
    x = _mm512_min_ps(_mm512_set1_ps(87.0f), x);
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, rnn_v512_exp(rnn_v512_neg(x))));
}
RNN_V512_FN __m512 rnn_v512_tanh(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 a = _mm512_mask_blend_ps(neg, x, rnn_v512_neg(x));
    __m512 a2 = _mm512_min_ps(_mm512_set1_ps(43.0f), a);
    __m512 t = rnn_v512_exp(_mm512_mul_ps(_mm512_set1_ps(-2.0f), a2));
    __m512 big = _mm512_div_ps(_mm512_sub_ps(one, t), _mm512_add_ps(one, t));
    __m512 x2 = _mm512_mul_ps(x, x);
    __m512 q = _mm512_set1_ps(21844.0f / 6081075.0f);
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1382.0f / 155925.0f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(62.0f / 2835.0f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-17.0f / 315.0f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(2.0f / 15.0f));
    q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(-1.0f / 3.0f));
    __m512 small = _mm512_fmadd_ps(x, _mm512_mul_ps(x2, q), x);
    __m512 res = _mm512_mask_blend_ps(neg, big, rnn_v512_neg(big));
    const __mmask16 tiny = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.3f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(tiny, res, small);
}
#else
#define RNN_V512 0
#endif

/* What the cell kernels call. */
static inline float rnn_sigmoid_fn_f32(float v) { return rnn_fast_sigmoid_f32(v); }
static inline double rnn_sigmoid_fn_f64(double v) { return rnn_sigmoid_libm_f64(v); }
static inline float rnn_tanh_f32(float v) { return rnn_fast_tanh_f32(v); }
static inline double rnn_tanh_f64(double v) { return rnn_tanh_libm_f64(v); }
#endif

/* sigmoid(v) = 1 / (1 + e^-v); in float64, for v << 0, e^-v overflows to
 * inf and the quotient is the correct 0. */
static inline REAL SFX(rnn_sigmoid)(REAL v) { return SFX(rnn_sigmoid_fn)(v); }
static inline REAL SFX(rnn_tanhv)(REAL v) { return SFX(rnn_tanh)(v); }
