/*
 * py_optim.c: the optimizer kernels of optim_ops.h as module functions, over
 * the flat vectors rnnpy.optim keeps (added to the module by core_exec).
 */
#include "py_binding.h" /* first: Python.h must precede the system headers */

#include "optim_ops.h"

/* obj as a 1-D C-contiguous array of typenum with n entries (n < 0: any,
 * set from it), writeable when asked; a borrowed pointer, or NULL with an
 * exception naming the argument. */
static PyArrayObject *optim_vector(PyObject *obj, const char *name, int typenum, int writeable,
                                  npy_intp *n) {
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a %s ndarray, got %s", name,
                     dtype_name(typenum), Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != typenum || PyArray_NDIM(a) != 1 || !PyArray_IS_C_CONTIGUOUS(a) ||
        !PyArray_ISALIGNED(a) || (writeable && !PyArray_ISWRITEABLE(a))) {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous%s %s vector", name,
                     writeable ? " writeable" : "", dtype_name(typenum));
        return NULL;
    }
    if (*n >= 0 && PyArray_DIM(a, 0) != *n) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd values (as p), got %zd", name, *n,
                     PyArray_DIM(a, 0));
        return NULL;
    }
    *n = PyArray_DIM(a, 0);
    return a;
}

static PyObject *core_adam_step(PyObject *Py_UNUSED(m), PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"p", "g", "m", "v", "vmax", "weight_decay", "decay", "beta1",
                             "beta2", "eps", "step_size", "bc2_sqrt", "decoupled", NULL};
    PyObject *po, *go, *mo, *vo, *vmo;
    rnn_adam_args a = {0};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OOOOO$dddddddp:adam_step", kwlist, &po, &go, &mo,
                                     &vo, &vmo, &a.weight_decay, &a.decay, &a.beta1, &a.beta2,
                                     &a.eps, &a.step_size, &a.bc2_sqrt, &a.decoupled))
        return NULL;
    int typenum = PyArray_Check(po) && PyArray_TYPE((PyArrayObject *)po) == NPY_DOUBLE
                      ? NPY_DOUBLE : NPY_FLOAT;
    npy_intp n = -1;
    PyArrayObject *p = optim_vector(po, "p", typenum, 1, &n), *g = NULL, *mm = NULL, *v = NULL,
                  *vmax = NULL;
    if (!p || !(g = optim_vector(go, "g", typenum, 0, &n)) ||
        !(mm = optim_vector(mo, "m", typenum, 1, &n)) || !(v = optim_vector(vo, "v", typenum, 1, &n)))
        return NULL;
    a.amsgrad = vmo != Py_None;
    if (a.amsgrad && !(vmax = optim_vector(vmo, "vmax", typenum, 1, &n))) return NULL;
    PyArrayObject *all[5] = {p, g, mm, v, vmax};
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            if (all[i] && all[j] && (i == 0 || j != 1) && overlaps(all[i], all[j])) {
                PyErr_SetString(PyExc_ValueError,
                                "p, g, m, v, vmax: the vectors must not share memory");
                return NULL;
            }
    int st;
    Py_BEGIN_ALLOW_THREADS
    if (typenum == NPY_FLOAT)
        st = rnn_adam_step_f32(n, PyArray_DATA(p), PyArray_DATA(g), PyArray_DATA(mm),
                               PyArray_DATA(v), vmax ? PyArray_DATA(vmax) : NULL, &a);
    else
        st = rnn_adam_step_f64(n, PyArray_DATA(p), PyArray_DATA(g), PyArray_DATA(mm),
                               PyArray_DATA(v), vmax ? PyArray_DATA(vmax) : NULL, &a);
    Py_END_ALLOW_THREADS
    if (st) {
        raise_status("adam_step", st);
        return NULL;
    }
    Py_RETURN_NONE;
}

PyMethodDef optim_methods[] = {
    {"adam_step", (PyCFunction)(void (*)(void))core_adam_step, METH_VARARGS | METH_KEYWORDS,
     "adam_step(p, g, m, v, vmax, *, weight_decay, decay, beta1, beta2, eps, step_size,\n"
     "          bc2_sqrt, decoupled) -> None\n\n"
     "One Adam step in place over flat vectors of one dtype (float32 or float64): p the\n"
     "parameters, g the gradients, m and v the moments, vmax the AMSGrad maximum or None.\n"
     "The same bits as rnnpy.optim.Adam's NumPy update (csrc/optim_ops.h), in one pass."},
    {NULL, NULL, 0, NULL},
};
