/*
 * optim_ops.c: the kernels of optim_ops.h, float and double from one body.
 *
 * Each line is one NumPy operation of rnnpy.optim.Adam._update, rounded as
 * NumPy rounds it: the Python constants (doubles) are cast to the vector's
 * type, then multiplied, added, divided, square-rooted in it. The file is
 * compiled as ISO C (-std=c11), where GCC does not contract a*b + c into an
 * FMA, which would round once where NumPy rounds twice.
 */
#ifndef REAL
#include "optim_ops.h"

#include <math.h>
#include <stddef.h>

#include "gemm.h"
#include "rnn_common.h"

/* AVX-512 loops of the update: the same IEEE operations in the same order
 * (VMULP, VADDP, VSUBP, VDIVP, VSQRTP round exactly as their scalar forms,
 * and no FMA), so the same bits, 16 or 8 elements at a time; the scalar
 * square root keeps the plain loop at ~3 ns an element. */
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && !defined(RNN_GEMM_PORTABLE)
#include <immintrin.h>
#define OPTIM_V512 1
#define OPTIM_V512_FN __attribute__((target("avx512f"))) static void
#else
#define OPTIM_V512 0
#endif


#define DTYPE_TEMPLATE "optim_ops.c"
#include "dtype_template.h"

#else /* the template body, once per dtype */

#if DTYPE_F32
#define OPTIM_SQRT(x) sqrtf(x)
#else
#define OPTIM_SQRT(x) sqrt(x)
#endif

/* np.maximum: NaN when either is NaN */
static inline REAL SFX(nan_max)(REAL a, REAL b) {
    if (a != a) return a;
    if (b != b) return b;
    return a > b ? a : b;
}

/* One element i of the update; DEC, L2, NEAR, AMS are constants in each
 * loop below, so the compiler drops the branches of each. (The square root
 * keeps the loops scalar: GCC vectorises it only without errno, which would
 * take -fno-math-errno for the whole library.) */
#define ADAM_ONE(DEC, L2, NEAR, AMS)                                                      \
    do {                                                                                  \
        REAL pi = p[i], gi = g[i];                                                        \
        if (DEC) pi *= decay;                                                             \
        if (L2) {                                                                         \
            REAL t_ = pi * wd;                                                            \
            gi = gi + t_;                                                                 \
        }                                                                                 \
        REAL mi = m[i], diff = gi - mi;                                                   \
        diff *= lerp_w;                                                                   \
        if (NEAR)                                                                         \
            mi += diff;                                                                   \
        else                                                                              \
            mi = gi - diff;                                                               \
        REAL vi = v[i] * b2, sq = gi * one_b2;                                            \
        sq *= gi;                                                                         \
        vi += sq;                                                                         \
        REAL vu = vi;                                                                     \
        if (AMS) vu = vmax[i] = SFX(nan_max)(vmax[i], vi);                                \
        REAL denom = OPTIM_SQRT(vu);                                                      \
        denom /= bc2;                                                                     \
        denom += eps;                                                                     \
        REAL delta = mi * neg_step;                                                       \
        delta /= denom;                                                                   \
        p[i] = pi + delta;                                                                \
        m[i] = mi;                                                                        \
        v[i] = vi;                                                                        \
    } while (0)

#if OPTIM_V512
#if DTYPE_F32
#define ADAM_VL_f32 16
#define OV __m512
#define OV_SET _mm512_set1_ps
#define OV_LD _mm512_loadu_ps
#define OV_ST _mm512_storeu_ps
#define OV_MUL _mm512_mul_ps
#define OV_ADD _mm512_add_ps
#define OV_SUB _mm512_sub_ps
#define OV_DIV _mm512_div_ps
#define OV_SQRT _mm512_sqrt_ps
#else
#define ADAM_VL_f64 8
#define OV __m512d
#define OV_SET _mm512_set1_pd
#define OV_LD _mm512_loadu_pd
#define OV_ST _mm512_storeu_pd
#define OV_MUL _mm512_mul_pd
#define OV_ADD _mm512_add_pd
#define OV_SUB _mm512_sub_pd
#define OV_DIV _mm512_div_pd
#define OV_SQRT _mm512_sqrt_pd
#endif
/* ADAM_ONE without amsgrad over [0, n), n a multiple of the vector length:
 * each line the scalar line's operation on a vector. */
OPTIM_V512_FN SFX(adam_v512)(int64_t n, REAL *restrict p, const REAL *restrict g,
                             REAL *restrict m, REAL *restrict v, REAL lerp_w_, REAL wd_,
                             REAL decay_, REAL b2_, REAL one_b2_, REAL bc2_, REAL eps_,
                             REAL neg_step_, int dec, int l2, int near) {
    const OV lerp_w = OV_SET(lerp_w_), wd = OV_SET(wd_), decay = OV_SET(decay_),
             b2 = OV_SET(b2_), one_b2 = OV_SET(one_b2_), bc2 = OV_SET(bc2_), eps = OV_SET(eps_),
             neg_step = OV_SET(neg_step_);
    for (int64_t i = 0; i < n; i += SFX(ADAM_VL)) {
        OV pi = OV_LD(p + i), gi = OV_LD(g + i);
        if (dec) pi = OV_MUL(pi, decay);
        if (l2) gi = OV_ADD(gi, OV_MUL(pi, wd));
        OV mi = OV_LD(m + i), diff = OV_MUL(OV_SUB(gi, mi), lerp_w);
        mi = near ? OV_ADD(mi, diff) : OV_SUB(gi, diff);
        OV vi = OV_ADD(OV_MUL(OV_LD(v + i), b2), OV_MUL(OV_MUL(gi, one_b2), gi));
        OV denom = OV_ADD(OV_DIV(OV_SQRT(vi), bc2), eps);
        OV delta = OV_DIV(OV_MUL(mi, neg_step), denom);
        OV_ST(p + i, OV_ADD(pi, delta));
        OV_ST(m + i, mi);
        OV_ST(v + i, vi);
    }
}
#undef OV
#undef OV_SET
#undef OV_LD
#undef OV_ST
#undef OV_MUL
#undef OV_ADD
#undef OV_SUB
#undef OV_DIV
#undef OV_SQRT
#endif

int SFX(rnn_adam_step)(int64_t n, REAL *restrict p, const REAL *restrict g, REAL *restrict m,
                       REAL *restrict v, REAL *restrict vmax, const rnn_adam_args *a) {
    if (n < 0) return RNN_ERR_SIZE;
    if (n == 0) return RNN_OK;
    if (!p || !g || !m || !v || !a || (a->amsgrad && !vmax)) return RNN_ERR_NULL;
    const double w1 = 1.0 - a->beta1; /* _lerp(m, g, 1 - beta1) */
    const int near = fabs(w1) < 0.5;
    const REAL lerp_w = (REAL)(near ? w1 : 1.0 - w1), wd = (REAL)a->weight_decay,
               decay = (REAL)a->decay, b2 = (REAL)a->beta2, one_b2 = (REAL)(1.0 - a->beta2),
               bc2 = (REAL)a->bc2_sqrt, eps = (REAL)a->eps, neg_step = (REAL)(-a->step_size);
    const int l2 = a->weight_decay != 0 && !a->decoupled;
    const int dec = a->weight_decay != 0 && a->decoupled;
    int64_t i0 = 0; /* the elements before i0 are done */
#if OPTIM_V512
    if (!a->amsgrad && rnn_gemm_best_isa() == RNN_ISA_AVX512) {
        i0 = n - n % SFX(ADAM_VL);
        SFX(adam_v512)(i0, p, g, m, v, lerp_w, wd, decay, b2, one_b2, bc2, eps, neg_step, dec,
                       l2, near);
    }
#endif
#define ADAM_LOOP(DEC, L2, NEAR, AMS) \
    for (int64_t i = i0; i < n; i++) ADAM_ONE(DEC, L2, NEAR, AMS)
    if (near && !dec && !l2 && !a->amsgrad)
        ADAM_LOOP(0, 0, 1, 0); /* Adam's defaults */
    else if (near && dec && !a->amsgrad)
        ADAM_LOOP(1, 0, 1, 0); /* AdamW's */
    else if (near && l2 && !a->amsgrad)
        ADAM_LOOP(0, 1, 1, 0);
    else
        ADAM_LOOP(dec, l2, near, a->amsgrad);
#undef ADAM_LOOP
#undef ADAM_ONE
    return RNN_OK;
}

#undef OPTIM_SQRT
#endif
