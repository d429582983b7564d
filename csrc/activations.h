/*
 * activations.h: the gate nonlinearities, written once for both dtypes.
 *
 * Included by the cell templates after REAL and SFX are defined; the
 * functions are static inline so each instantiation gets its own copy.
 * They use libm so that results match the references to the last bits
 * that floating point allows.
 */
#include <math.h>

#ifndef RNNPY_ACT_FN
#define RNNPY_ACT_FN
static inline float rnn_exp_f32(float v) { return expf(v); }
static inline double rnn_exp_f64(double v) { return exp(v); }
static inline float rnn_tanh_f32(float v) { return tanhf(v); }
static inline double rnn_tanh_f64(double v) { return tanh(v); }
#endif

/* sigmoid(v) = 1 / (1 + e^-v); for v << 0, e^-v overflows to inf and the
 * quotient is the correct 0. */
static inline REAL SFX(rnn_sigmoid)(REAL v) { return (REAL)1 / ((REAL)1 + SFX(rnn_exp)(-v)); }
static inline REAL SFX(rnn_tanhv)(REAL v) { return SFX(rnn_tanh)(v); }
