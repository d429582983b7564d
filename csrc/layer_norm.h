/*
 * layer_norm.h: the row reductions of layer normalisation, shared by
 * lstm_ext.c and gru_ext.c; instantiated per dtype inside their template
 * sections (after cell_common.h, with REAL and SFX defined).
 *
 * Each sum runs over eight explicit lanes combined in a fixed order, so it
 * gives the same bits whether the compiler vectorises the loop or not, at
 * any vector width and on every instruction set.
 */
#include <math.h>

#ifndef RNN_LN_LANES
/* the eight lanes of a[] summed pairwise, always in this order */
#define RNN_LN_LANES(a) ((((a)[0] + (a)[1]) + ((a)[2] + (a)[3])) + (((a)[4] + (a)[5]) + ((a)[6] + (a)[7])))
#endif

/* sum of v[0..n) */
static CELL_INLINE REAL SFX(ln_sum)(const REAL *restrict v, int64_t n) {
    REAL a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) a[k] += v[j + k];
    REAL s = RNN_LN_LANES(a);
    for (; j < n; j++) s += v[j];
    return s;
}

/* sum of v[j]*w[j] */
static CELL_INLINE REAL SFX(ln_dot)(const REAL *restrict v, const REAL *restrict w, int64_t n) {
    REAL a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) a[k] += v[j + k] * w[j + k];
    REAL s = RNN_LN_LANES(a);
    for (; j < n; j++) s += v[j] * w[j];
    return s;
}

/* sum of (v - mu)^2 */
static CELL_INLINE REAL SFX(ln_sqdev)(const REAL *restrict v, REAL mu, int64_t n) {
    REAL a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) {
            REAL e = v[j + k] - mu;
            a[k] += e * e;
        }
    REAL s = RNN_LN_LANES(a);
    for (; j < n; j++) s += (v[j] - mu) * (v[j] - mu);
    return s;
}

/* mean and 1/sqrt(biased variance + RNN_LN_EPS) of a row, two passes (the
 * root in double) */
static CELL_INLINE void SFX(ln_stats)(const REAL *restrict v, int64_t n, REAL *mu, REAL *rs) {
    REAL m = SFX(ln_sum)(v, n) / (REAL)n;
    REAL var = SFX(ln_sqdev)(v, m, n) / (REAL)n;
    *mu = m;
    *rs = (REAL)(1.0 / sqrt((double)var + RNN_LN_EPS));
}
