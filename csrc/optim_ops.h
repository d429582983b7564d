/*
 * optim_ops.h: the optimizer update of a training step over a model's flat
 * parameter and gradient vectors, in one pass (n = number of parameters).
 *
 * Adam (and AdamW, AMSGrad) as rnnpy.optim.Adam computes it in NumPy, the
 * same operations in the same order on each element, rounded to the vector's
 * type after each one (so the results are the same bits as NumPy's), but one
 * pass instead of a dozen, and no copies: the kernel cannot be stopped half
 * way (it runs without the interpreter), so the update is all or nothing
 * without computing it on copies first.
 */
#ifndef RNNPY_OPTIM_OPS_H
#define RNNPY_OPTIM_OPS_H

#include <stdint.h>

/* The step's numbers, computed by the caller in double as rnnpy.optim does. */
typedef struct {
    double weight_decay;  /* L2 (added to the gradient) unless decoupled */
    double decay;         /* decoupled (AdamW): p *= decay = 1 - lr * weight_decay */
    double beta1, beta2, eps;
    double step_size;     /* lr / (1 - beta1^t) */
    double bc2_sqrt;      /* sqrt(1 - beta2^t) */
    int decoupled, amsgrad;
} rnn_adam_args;

/* p (n) parameters, updated; g (n) gradients; m, v (n) the moments, updated;
 * vmax (n) the running maximum of v with amsgrad (updated), else unused (may
 * be NULL). Returns RNN_OK, or RNN_ERR_NULL / RNN_ERR_SIZE. */
int rnn_adam_step_f32(int64_t n, float *p, const float *g, float *m, float *v, float *vmax,
                      const rnn_adam_args *a);
int rnn_adam_step_f64(int64_t n, double *p, const double *g, double *m, double *v,
                      double *vmax, const rnn_adam_args *a);

#endif /* RNNPY_OPTIM_OPS_H */
