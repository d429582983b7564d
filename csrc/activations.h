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
