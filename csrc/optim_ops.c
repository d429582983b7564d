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

#include "rnn_common.h"


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
#define ADAM_LOOP(DEC, L2, NEAR, AMS) \
    for (int64_t i = 0; i < n; i++) ADAM_ONE(DEC, L2, NEAR, AMS)
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
