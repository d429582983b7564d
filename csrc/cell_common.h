/*
 * cell_common.h: helpers the cell templates share, instantiated per dtype.
 *
 * Included by rnn.c, lstm.c and gru.c inside their template section, after
 * REAL and SFX are defined (SFX(name) -> name_f32 or name_f64).
 */
#include <string.h>
#include "gemm.h"
#include "activations.h"

#define GEMM SFX(rnn_gemm)

/* dst[j] += sum over the R rows of src[r*ld + j], j < n. */
static inline void SFX(colsum_add)(REAL *dst, const REAL *src, int64_t R, int64_t n, int64_t ld) {
    for (int64_t r = 0; r < R; r++) {
        const REAL *row = src + r * ld;
        for (int64_t j = 0; j < n; j++) dst[j] += row[j];
    }
}

/* dst (B, n) = src (B, n), or zeros when src is NULL. */
static inline void SFX(copy_or_zero)(REAL *dst, const REAL *src, int64_t count) {
    if (!src) memset(dst, 0, (size_t)count * sizeof(REAL));
    else if (dst != src) memmove(dst, src, (size_t)count * sizeof(REAL));
}

/* dst[i] += src[i] */
static inline void SFX(add_into)(REAL *dst, const REAL *src, int64_t count) {
    for (int64_t i = 0; i < count; i++) dst[i] += src[i];
}

/* Zero row(t, b) of a (R rows, n columns, ld) array for every step past a
 * sequence's end, so that padded steps output zero and weigh nothing in the
 * weight-gradient products. */
static inline void SFX(zero_padded_rows)(REAL *a, int64_t n, int64_t ld, const int64_t *lengths,
                                         const rnn_dims *d) {
    if (!lengths) return;
    for (int64_t b = 0; b < d->B; b++)
        for (int64_t t = lengths[b]; t < d->T; t++)
            memset(a + (t * d->ts + b * d->bs) * ld, 0, (size_t)n * sizeof(REAL));
}
