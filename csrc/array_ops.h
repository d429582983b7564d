/*
 * array_ops.h: checks over whole arrays that the Python layer makes on
 * every call (so they must cost little next to the kernels).
 */
#ifndef RNNPY_ARRAY_OPS_H
#define RNNPY_ARRAY_OPS_H

#include <stdint.h>

/* 1 when none of the n values of x (contiguous) is NaN or infinite, else 0:
 * a value is finite when its exponent bits are not all ones. */
int rnn_all_finite_f32(const float *x, int64_t n);
int rnn_all_finite_f64(const double *x, int64_t n);

#endif /* RNNPY_ARRAY_OPS_H */
