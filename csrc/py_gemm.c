/*
 * py_gemm.c: the module's functions beside the cells, for tests and
 * benchmarks: rnnpy's own GEMM (every instruction set, threads), the
 * bfloat16 product and its peak, and the float32 gate nonlinearities.
 */
#include "py_binding.h" /* first: Python.h must precede the system headers */

#include <string.h>

#include "array_ops.h"
#include "gemm.h"
#include "bf16.h"

static int parse_isa(PyObject *obj) {
    if (obj == NULL || obj == Py_None) return rnn_gemm_best_isa();
    const char *s = PyUnicode_Check(obj) ? PyUnicode_AsUTF8(obj) : NULL;
    if (!s) PyErr_Clear();
    for (int isa = RNN_ISA_GENERIC; s && isa <= RNN_ISA_AVX512; isa++)
        if (strcmp(s, rnn_gemm_isa_name(isa)) == 0) return isa;
    if (s && strcmp(s, "reference") == 0) return -2;
    PyErr_Format(PyExc_ValueError,
                 "isa: expected 'avx512', 'avx2', 'generic', 'reference' or None, got %R", obj);
    return -1;
}

/* The operands of gemm and gemm_bf16: a and b as 2-D typenum arrays whose
 * op(a) (M, K) and op(b) (K, N) agree, and c, the caller's (M, N) array or a
 * new zero one. New references in *a, *b, *c (NULL where not made); 0, or -1
 * with an exception set. */
static int gemm_operands(PyObject *a_obj, PyObject *b_obj, PyObject *c_obj, int typenum, int ta,
                         int tb, PyArrayObject **a, PyArrayObject **b, PyArrayObject **c,
                         npy_intp *M_out, npy_intp *N_out, npy_intp *K_out) {
    if (!(*a = as_real_array(a_obj, "a", typenum)) || !(*b = as_real_array(b_obj, "b", typenum)))
        return -1;
    if (PyArray_NDIM(*a) != 2 || PyArray_NDIM(*b) != 2) {
        PyErr_SetString(PyExc_ValueError, "a, b: expected 2-D arrays");
        return -1;
    }
    npy_intp M = ta ? PyArray_DIM(*a, 1) : PyArray_DIM(*a, 0), K = ta ? PyArray_DIM(*a, 0) : PyArray_DIM(*a, 1);
    npy_intp K2 = tb ? PyArray_DIM(*b, 1) : PyArray_DIM(*b, 0), N = tb ? PyArray_DIM(*b, 0) : PyArray_DIM(*b, 1);
    if (K != K2) {
        PyErr_Format(PyExc_ValueError, "b: expected %zd rows of op(b) to match op(a)'s columns, got %zd",
                     K, K2);
        return -1;
    }
    npy_intp cdims[2] = {M, N};
    if (c_obj != Py_None) {
        if (!PyArray_Check(c_obj) || PyArray_TYPE((PyArrayObject *)c_obj) != typenum ||
            !PyArray_ISCARRAY((PyArrayObject *)c_obj)) {
            PyErr_Format(PyExc_TypeError, "c: expected a C-contiguous writeable %s array",
                         dtype_name(typenum));
            return -1;
        }
        *c = (PyArrayObject *)Py_NewRef(c_obj);
        if (check_shape(*c, "c", 2, cdims, "(M, N)")) return -1;
        if (overlaps(*c, *a) || overlaps(*c, *b)) {   /* the product reads a and b while writing c */
            PyErr_SetString(PyExc_ValueError, "c: must not share memory with a or b");
            return -1;
        }
    } else if (!(*c = (PyArrayObject *)PyArray_ZEROS(2, cdims, typenum, 0))) {
        return -1;
    }
    *M_out = M;
    *N_out = N;
    *K_out = K;
    return 0;
}

static PyObject *core_gemm(PyObject *m, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"a", "b", "trans_a", "trans_b", "alpha", "beta", "c", "isa", "threads",
                             NULL};
    PyObject *a_obj, *b_obj, *c_obj = Py_None, *isa_obj = Py_None, *thr_obj = NULL;
    int ta = 0, tb = 0;
    double alpha = 1.0, beta = 0.0;
    PyArrayObject *a = NULL, *b = NULL, *c = NULL;
    void *raw = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$ppddOOO:gemm", kwlist, &a_obj, &b_obj, &ta, &tb,
                                     &alpha, &beta, &c_obj, &isa_obj, &thr_obj))
        return NULL;
    int threads = parse_threads(thr_obj);
    if (threads < 0) return NULL;
    rnn_pool *pool = pool_of(PyModule_GetState(m), threads);
    int isa = parse_isa(isa_obj);
    if (isa == -1) return NULL;
    int typenum = NPY_FLOAT;
    if (PyArray_Check(a_obj) && PyArray_TYPE((PyArrayObject *)a_obj) == NPY_DOUBLE) typenum = NPY_DOUBLE;
    npy_intp M, N, K;
    if (gemm_operands(a_obj, b_obj, c_obj, typenum, ta, tb, &a, &b, &c, &M, &N, &K)) goto error;
    void *ws = NULL;
    if (!alloc_scratch(0, 1, threads, &raw, &ws)) goto error;
    int st;
    const void *ap = PyArray_DATA(a), *bp = PyArray_DATA(b);
    void *cp = PyArray_DATA(c);
    npy_intp lda = PyArray_DIM(a, 1), ldb = PyArray_DIM(b, 1);
    Py_BEGIN_ALLOW_THREADS
    if (typenum == NPY_FLOAT)
        st = isa == -2 ? rnn_gemm_ref_f32(ta, tb, M, N, K, (float)alpha, ap, lda, bp, ldb, (float)beta, cp, N)
                       : rnn_gemm_mt_f32(isa, pool, threads, ta, tb, M, N, K, (float)alpha, ap, lda, bp,
                                         ldb, (float)beta, cp, N, ws);
    else
        st = isa == -2 ? rnn_gemm_ref_f64(ta, tb, M, N, K, alpha, ap, lda, bp, ldb, beta, cp, N)
                       : rnn_gemm_mt_f64(isa, pool, threads, ta, tb, M, N, K, alpha, ap, lda, bp, ldb, beta,
                                         cp, N, ws);
    Py_END_ALLOW_THREADS
    if (st) { raise_status("gemm", st); goto error; }
    PyMem_RawFree(raw);
    Py_DECREF(a);
    Py_DECREF(b);
    return (PyObject *)c;
error:
    PyMem_RawFree(raw);
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
    return NULL;
}

/* ------------------------------------------------------------ activations */

#define REAL float
#define SFX(name) name##_f32
#include "activations.h"
#undef REAL
#undef SFX

#if RNN_V512
/* y = f(x) 16 at a time (which: 0 sigmoid, 1 tanh, 2 exp); returns how many
 * were done, the rest left to the scalar loop. */
__attribute__((target("avx512f,avx512vl,avx512dq,fma"))) static npy_intp
activation_v512(int which, const float *x, float *y, npy_intp n) {
    npy_intp i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        v = which == 0 ? rnn_v512_sigmoid(v) : which == 1 ? rnn_v512_tanh(v) : rnn_v512_exp(v);
        _mm512_storeu_ps(y + i, v);
    }
    return i;
}
#endif

static PyObject *core_all_finite(PyObject *Py_UNUSED(m), PyObject *arg) {
    if (!PyArray_Check(arg)) Py_RETURN_NONE;
    PyArrayObject *a = (PyArrayObject *)arg;
    int t = PyArray_TYPE(a);
    if (!(t == NPY_FLOAT || t == NPY_DOUBLE) || !PyArray_IS_C_CONTIGUOUS(a) ||
        !PyArray_ISALIGNED(a) || PyArray_ISBYTESWAPPED(a))
        Py_RETURN_NONE;
    const void *x = PyArray_DATA(a);
    npy_intp n = PyArray_SIZE(a);
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = t == NPY_FLOAT ? rnn_all_finite_f32(x, n) : rnn_all_finite_f64(x, n);
    Py_END_ALLOW_THREADS
    return PyBool_FromLong(ok);
}

static PyObject *core_activation(PyObject *Py_UNUSED(m), PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"x", "name", "impl", NULL};
    PyObject *x_obj;
    const char *name, *impl = "fast";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Os|$s:activation", kwlist, &x_obj, &name, &impl))
        return NULL;
    int which = strcmp(name, "sigmoid") == 0 ? 0 : strcmp(name, "tanh") == 0 ? 1
              : strcmp(name, "exp") == 0 ? 2 : -1;
    if (which < 0) {
        PyErr_Format(PyExc_ValueError, "name: expected 'sigmoid', 'tanh' or 'exp', got '%s'", name);
        return NULL;
    }
    int fast = strcmp(impl, "fast") == 0 ? 1 : strcmp(impl, "avx512") == 0 ? 2 : 0;
    if (!fast && strcmp(impl, "libm") != 0) {
        PyErr_Format(PyExc_ValueError, "impl: expected 'fast', 'avx512' or 'libm', got '%s'", impl);
        return NULL;
    }
    if (fast == 2 && !(RNN_V512 && rnn_gemm_best_isa() == RNN_ISA_AVX512)) {
        PyErr_SetString(PyExc_ValueError, "impl: 'avx512' needs AVX-512, which this CPU (or build) lacks");
        return NULL;
    }
    PyArrayObject *x = (PyArrayObject *)PyArray_FROMANY(x_obj, NPY_FLOAT, 0, 0, NPY_ARRAY_CARRAY_RO);
    if (!x) return NULL;
    PyArrayObject *y = (PyArrayObject *)PyArray_NewLikeArray(x, NPY_CORDER, NULL, 0);
    if (!y) { Py_DECREF(x); return NULL; }
    const float *xp = PyArray_DATA(x);
    float *yp = PyArray_DATA(y);
    npy_intp n = PyArray_SIZE(x);
    Py_BEGIN_ALLOW_THREADS
    npy_intp i0 = 0;
#if RNN_V512
    if (fast == 2) i0 = activation_v512(which, xp, yp, n);
#endif
    for (npy_intp i = i0; i < n; i++) {
        float v = xp[i];
        if (which == 0) yp[i] = fast ? rnn_fast_sigmoid_f32(v) : rnn_sigmoid_libm_f32(v);
        else if (which == 1) yp[i] = fast ? rnn_fast_tanh_f32(v) : rnn_tanh_libm_f32(v);
        else yp[i] = fast ? rnn_fast_exp_f32(v) : rnn_exp_f32(v);
    }
    Py_END_ALLOW_THREADS
    Py_DECREF(x);
    return (PyObject *)y;
}

static PyObject *core_pool_counts(PyObject *m, PyObject *Py_UNUSED(ignored)) {
    module_state *st = PyModule_GetState(m);
    int64_t threaded = 0, alone = 0;
    if (st && st->pool) rnn_pool_counts(st->pool, &threaded, &alone);
    return Py_BuildValue("(LL)", (long long)threaded, (long long)alone);
}

static PyObject *core_gemm_isa(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored)) {
    return PyUnicode_FromString(rnn_gemm_isa_name(rnn_gemm_best_isa()));
}

/* ------------------------------------------------------------------ bf16 */

/* isa for the bfloat16 product: a name this CPU supports, or None (best). */
static int parse_bf16_isa(PyObject *obj) {
    if (obj == NULL || obj == Py_None) return rnn_bf16_best_isa();
    const char *s = PyUnicode_Check(obj) ? PyUnicode_AsUTF8(obj) : NULL;
    if (!s) PyErr_Clear();
    for (int isa = RNN_BF16_GENERIC; s && isa <= RNN_BF16_AMX; isa++)
        if (strcmp(s, rnn_bf16_isa_name(isa)) == 0) {
            if (rnn_bf16_isa_supported(isa)) return isa;
            PyErr_Format(PyExc_ValueError, "isa: '%s' is not available on this CPU", s);
            return -1;
        }
    PyErr_Format(PyExc_ValueError, "isa: expected 'amx', 'avx512_bf16', 'generic' or None, got %R",
                 obj);
    return -1;
}

static PyObject *core_gemm_bf16(PyObject *Py_UNUSED(m), PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"a", "b", "trans_a", "trans_b", "alpha", "beta", "c", "isa",
                             "prepack", NULL};
    PyObject *a_obj, *b_obj, *c_obj = Py_None, *isa_obj = Py_None;
    int ta = 0, tb = 0, prepack = 0;
    double alpha = 1.0, beta = 0.0;
    PyArrayObject *a = NULL, *b = NULL, *c = NULL;
    void *ws = NULL, *pk = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$ppddOOp:gemm_bf16", kwlist, &a_obj, &b_obj,
                                     &ta, &tb, &alpha, &beta, &c_obj, &isa_obj, &prepack))
        return NULL;
    int isa = parse_bf16_isa(isa_obj);
    if (isa < 0) return NULL;
    npy_intp M, N, K;
    if (gemm_operands(a_obj, b_obj, c_obj, NPY_FLOAT, ta, tb, &a, &b, &c, &M, &N, &K)) goto error;
    size_t pk_bytes = prepack ? rnn_gemm_bf16_packed_size(N, K) : 0;
    if (prepack && pk_bytes == 0) {
        PyErr_NoMemory();
        goto error;
    }
    if (!(ws = PyMem_RawMalloc(rnn_gemm_bf16_workspace_size())) ||
        (prepack && !(pk = PyMem_RawMalloc(pk_bytes)))) {
        PyErr_NoMemory();
        goto error;
    }
    const float *ap = PyArray_DATA(a), *bp = PyArray_DATA(b);
    float *cp = PyArray_DATA(c);
    npy_intp lda = PyArray_DIM(a, 1), ldb = PyArray_DIM(b, 1);
    int st;
    Py_BEGIN_ALLOW_THREADS
    if (prepack) {
        st = rnn_gemm_bf16_pack_b(tb, N, K, bp, ldb, pk);
        if (st == RNN_OK)
            st = rnn_gemm_bf16_packed_isa(isa, ta, M, N, K, (float)alpha, ap, lda, pk, (float)beta,
                                          cp, N, ws);
    } else {
        st = rnn_gemm_bf16_isa(isa, ta, tb, M, N, K, (float)alpha, ap, lda, bp, ldb, (float)beta,
                               cp, N, ws);
    }
    Py_END_ALLOW_THREADS
    if (st) { raise_status("gemm_bf16", st); goto error; }
    PyMem_RawFree(ws);
    PyMem_RawFree(pk);
    Py_DECREF(a);
    Py_DECREF(b);
    return (PyObject *)c;
error:
    PyMem_RawFree(ws);
    PyMem_RawFree(pk);
    Py_XDECREF(a);
    Py_XDECREF(b);
    Py_XDECREF(c);
    return NULL;
}

static PyObject *core_bf16_peak(PyObject *Py_UNUSED(m), PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"isa", "iters", "repeats", NULL};
    PyObject *isa_obj = Py_None, *iters_obj = Py_None;
    long long iters, repeats = 21;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|$OOL:bf16_peak", kwlist, &isa_obj, &iters_obj,
                                     &repeats))
        return NULL;
    int isa = parse_bf16_isa(isa_obj);
    if (isa < 0) return NULL;
    if (iters_obj == Py_None) {
        /* about half a millisecond per run, short enough that few runs on a busy
         * machine lose the core in the middle */
        iters = isa == RNN_BF16_AMX ? 10000 : isa == RNN_BF16_AVX512 ? 30000 : 100000;
    } else {
        iters = PyLong_Check(iters_obj) && !PyBool_Check(iters_obj) ? PyLong_AsLongLong(iters_obj) : -1;
        if (iters == -1 && PyErr_Occurred()) PyErr_Clear();
    }
    if (iters < 1 || iters > (1LL << 40)) {
        PyErr_Format(PyExc_ValueError, "iters: expected None or an int in [1, 2**40], got %R",
                     iters_obj);
        return NULL;
    }
    if (repeats < 1 || repeats > 1000) {
        PyErr_Format(PyExc_ValueError, "repeats: expected an int in [1, 1000], got %lld", repeats);
        return NULL;
    }
    double *g = PyMem_RawMalloc((size_t)repeats * sizeof(double));
    if (!g) return PyErr_NoMemory();
    int st = RNN_OK;
    Py_BEGIN_ALLOW_THREADS
    for (long long r = 0; r < repeats && st == RNN_OK; r++) st = rnn_bf16_peak(isa, iters, &g[r]);
    Py_END_ALLOW_THREADS
    if (st) {
        PyMem_RawFree(g);
        raise_status("bf16_peak", st);
        return NULL;
    }
    /* median (the machine may be busy: the middle run, not the first) */
    for (long long i = 1; i < repeats; i++)
        for (long long j = i; j > 0 && g[j - 1] > g[j]; j--) {
            double t = g[j];
            g[j] = g[j - 1];
            g[j - 1] = t;
        }
    double med = repeats % 2 ? g[repeats / 2] : 0.5 * (g[repeats / 2 - 1] + g[repeats / 2]);
    PyMem_RawFree(g);
    return PyFloat_FromDouble(med);
}

static PyObject *core_bf16_isas(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored)) {
    PyObject *t = PyTuple_New(0);
    for (int isa = RNN_BF16_AMX; t && isa >= RNN_BF16_GENERIC; isa--) {
        if (!rnn_bf16_isa_supported(isa)) continue;
        PyObject *name = PyUnicode_FromString(rnn_bf16_isa_name(isa));
        PyObject *one = name ? PyTuple_Pack(1, name) : NULL;
        PyObject *cat = one ? PySequence_Concat(t, one) : NULL;
        Py_XDECREF(name);
        Py_XDECREF(one);
        Py_SETREF(t, cat);
    }
    return t;
}

PyMethodDef core_methods[] = {
    {"gemm", (PyCFunction)(void (*)(void))core_gemm, METH_VARARGS | METH_KEYWORDS,
     "gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None, isa=None,\n"
     "     threads=1) -> c\n\n"
     "c = alpha * op(a) @ op(b) + beta * c with rnnpy's own GEMM (float64 when a is float64,\n"
     "else float32). isa: 'avx512', 'avx2', 'generic', 'reference' (the plain loop) or None\n"
     "(the best this CPU has). For tests and benchmarks."},
    {"all_finite", (PyCFunction)core_all_finite, METH_O,
     "all_finite(a) -> bool or None\n\n"
     "Whether a C-contiguous float32/float64 ndarray holds no NaN or Inf (one pass over\n"
     "the exponent bits); None for any other object, which the caller checks otherwise."},
    {"activation", (PyCFunction)(void (*)(void))core_activation, METH_VARARGS | METH_KEYWORDS,
     "activation(x, name, *, impl='fast') -> y\n\n"
     "The float32 gate nonlinearities elementwise: name 'sigmoid', 'tanh' or 'exp'; impl\n"
     "'fast' (what the float32 kernels use; exp needs x in [-87, 88]), 'avx512' (the same\n"
     "functions 16 at a time, as the AVX-512 gate loops run them; whole groups of 16, the\n"
     "rest as 'fast') or 'libm'. For tests."},
    {"gemm_isa", (PyCFunction)core_gemm_isa, METH_NOARGS,
     "Name of the GEMM micro-kernel this CPU uses."},
    {"pool_counts", (PyCFunction)core_pool_counts, METH_NOARGS,
     "pool_counts() -> (threaded, alone)\n\n"
     "Jobs of several tasks the kernels' thread pool ran so far on several threads, and on\n"
     "the calling thread alone because threads had recently cost more than they saved (the\n"
     "cores busy with other work). For benchmarks and tests."},
    {"gemm_bf16", (PyCFunction)(void (*)(void))core_gemm_bf16, METH_VARARGS | METH_KEYWORDS,
     "gemm_bf16(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None, isa=None,\n"
     "          prepack=False) -> c\n\n"
     "c = alpha * op(a) @ op(b) + beta * c in float32, with op(a) and op(b) rounded to bfloat16\n"
     "(nearest even) and float32 sums (csrc/bf16.h states the error bound). isa: 'amx',\n"
     "'avx512_bf16', 'generic' or None (the best available; ValueError if the CPU lacks it).\n"
     "prepack: pack op(b) once first, as the recurrent product does. For tests and benchmarks."},
    {"bf16_peak", (PyCFunction)(void (*)(void))core_bf16_peak, METH_VARARGS | METH_KEYWORDS,
     "bf16_peak(*, isa=None, iters=None, repeats=21) -> GFLOP/s\n\n"
     "One core's bfloat16 multiply-add peak, the median of `repeats` timed loops of independent\n"
     "AMX TDPBF16PS (isa 'amx') or AVX512-BF16 vdpbf16ps ('avx512_bf16') into several\n"
     "accumulators; 'generic' times a float32 loop. iters (default: ~0.5 ms per loop) sets\n"
     "each loop's length. Runs on the calling thread."},
    {"bf16_isas", (PyCFunction)core_bf16_isas, METH_NOARGS,
     "Names of the bfloat16 micro-kernels this CPU (and OS) supports, best first."},
    {NULL, NULL, 0, NULL},
};
