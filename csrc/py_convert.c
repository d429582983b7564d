/*
 * py_convert.c: turning Python arguments into what the kernels take:
 * float32/float64 arrays (converted, shape- and finite-checked), states,
 * lengths, masks, sizes and thread counts, each refusal a Python exception
 * that names the argument and what was expected; and kernel status codes
 * into exceptions.
 */
#include "py_binding.h" /* first: Python.h must precede the system headers */

#include <math.h>
#include <string.h>

#include "gemm.h"

/* Parses a dtype argument ("float32", np.float64, ...) into NPY_FLOAT or
 * NPY_DOUBLE; -1 with TypeError otherwise. */
int parse_dtype(PyObject *obj, const char *name) {
    PyArray_Descr *descr = NULL;
    if (obj == NULL) return NPY_FLOAT;
    if (obj == Py_None) {
        PyErr_Format(PyExc_TypeError, "%s: expected 'float32' or 'float64', got None", name);
        return -1;
    }
    if (!PyArray_DescrConverter2(obj, &descr) || descr == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "%s: expected 'float32' or 'float64', got %R", name, obj);
        return -1;
    }
    int t = descr->type_num;
    Py_DECREF(descr);
    if (t != NPY_FLOAT && t != NPY_DOUBLE) {
        PyErr_Format(PyExc_TypeError, "%s: expected 'float32' or 'float64', got %R", name, obj);
        return -1;
    }
    return t;
}

/* Formats a shape as "(a, b, c)" into buf. */
void format_shape(char *buf, size_t n, int ndim, const npy_intp *dims) {
    size_t used = 0;
    used += (size_t)snprintf(buf + used, n - used, "(");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)dims[i]);
    if (used < n) used += (size_t)snprintf(buf + used, n - used, ndim == 1 ? ",)" : ")");
    (void)used;
}

/* Converts an array-like to a C-contiguous, aligned array of typenum. An
 * ndarray must already be float32 or float64 (the other is cast); other
 * array-likes (lists, scalars) may hold any real numbers. Never returns an
 * array that aliases a caller's non-contiguous memory. */
PyArrayObject *as_real_array(PyObject *obj, const char *name, int typenum) {
    PyArrayObject *arr = NULL, *out = NULL;
    if (PyArray_Check(obj)) {
        arr = (PyArrayObject *)obj;
        Py_INCREF(arr);
        int t = PyArray_TYPE(arr);
        if (t != NPY_FLOAT && t != NPY_DOUBLE) {
            PyErr_Format(PyExc_TypeError, "%s: expected a float32 or float64 array, got dtype %S",
                         name, (PyObject *)PyArray_DESCR(arr));
            goto error;
        }
    } else {
        arr = (PyArrayObject *)PyArray_FROM_O(obj);
        if (!arr) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s: expected an array of real numbers, got %.100s", name,
                         Py_TYPE(obj)->tp_name);
            goto error;
        }
        char k = PyArray_DESCR(arr)->kind;
        if (k != 'f' && k != 'i' && k != 'u') {
            PyErr_Format(PyExc_TypeError, "%s: expected an array of real numbers, got dtype %S", name,
                         (PyObject *)PyArray_DESCR(arr));
            goto error;
        }
    }
    out = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)arr, typenum,
                                            NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    Py_DECREF(arr);
    return out;
error:
    Py_XDECREF(arr);
    return NULL;
}

/* Checks arr's shape against want (ndim entries, -1 = any); on mismatch a
 * ValueError such as "h0: expected shape (B, H) = (4, 32), got (4, 16)". */
int check_shape(PyArrayObject *arr, const char *name, int ndim, const npy_intp *want,
                       const char *symbols) {
    int ok = PyArray_NDIM(arr) == ndim;
    for (int i = 0; ok && i < ndim; i++)
        if (want[i] >= 0 && PyArray_DIM(arr, i) != want[i]) ok = 0;
    if (ok) return 0;
    char got[160], exp[160];
    format_shape(got, sizeof got, PyArray_NDIM(arr), PyArray_DIMS(arr));
    size_t used = (size_t)snprintf(exp, sizeof exp, "(");
    for (int i = 0; i < ndim; i++) {
        if (want[i] >= 0)
            used += (size_t)snprintf(exp + used, sizeof exp - used, i ? ", %lld" : "%lld",
                                     (long long)want[i]);
        else
            used += (size_t)snprintf(exp + used, sizeof exp - used, i ? ", any" : "any");
        if (used >= sizeof exp) break;
    }
    if (used < sizeof exp) snprintf(exp + used, sizeof exp - used, ndim == 1 ? ",)" : ")");
    PyErr_Format(PyExc_ValueError, "%s: expected shape %s = %s, got %s", name, symbols, exp, got);
    return -1;
}

/* Whether any of p[0:n] is NaN or Inf (x * 0 is NaN exactly then), in
 * independent lanes without an early exit so that the loop vectorises. */
#define ANY_NONFINITE(SUF, REAL, LANES)                                                   \
    static int any_nonfinite_##SUF(const REAL *p, npy_intp n) {                           \
        REAL acc[LANES] = {0};                                                            \
        npy_intp i = 0;                                                                   \
        for (; i + LANES <= n; i += LANES)                                                \
            for (int l = 0; l < LANES; l++) acc[l] += p[i + l] * (REAL)0;                 \
        for (; i < n; i++) acc[0] += p[i] * (REAL)0;                                      \
        REAL s = 0;                                                                       \
        for (int l = 0; l < LANES; l++) s += acc[l];                                      \
        return s != s;                                                                    \
    }
ANY_NONFINITE(f32, float, 16) /* 64 bytes of lanes each */
ANY_NONFINITE(f64, double, 8)
#undef ANY_NONFINITE

int check_finite(PyArrayObject *arr, const char *name) {
    npy_intp n = PyArray_SIZE(arr);
    npy_intp bad = -1;
    /* a vectorised pass first; the element-wise search only on failure */
    if (PyArray_TYPE(arr) == NPY_FLOAT) {
        const float *p = (const float *)PyArray_DATA(arr);
        if (any_nonfinite_f32(p, n))
            for (npy_intp i = 0; i < n; i++)
                if (!isfinite(p[i])) { bad = i; break; }
    } else {
        const double *p = (const double *)PyArray_DATA(arr);
        if (any_nonfinite_f64(p, n))
            for (npy_intp i = 0; i < n; i++)
                if (!isfinite(p[i])) { bad = i; break; }
    }
    if (bad < 0) return 0;
    PyErr_Format(PyExc_ValueError, "%s: expected finite values, found NaN or Inf at flat index %zd",
                 name, bad);
    return -1;
}

/* Converts, shape-checks and finite-checks an optional (B, H) state. */
PyArrayObject *as_state(PyObject *obj, const char *name, int typenum, int64_t B,
                               int64_t H, const char *symbols) {
    if (obj == NULL || obj == Py_None) return NULL;
    PyArrayObject *a = as_real_array(obj, name, typenum);
    if (!a) return NULL;
    npy_intp want[2] = {(npy_intp)B, (npy_intp)H};
    if (check_shape(a, name, 2, want, symbols) || check_finite(a, name)) {
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* Converts lengths to a fresh int64 buffer of B entries in [0, T]; *out is
 * NULL when obj is None. Returns 0 or -1 with an exception. */
int parse_lengths(PyObject *obj, int64_t B, int64_t T, int64_t **out) {
    *out = NULL;
    if (obj == NULL || obj == Py_None) return 0;
    PyArrayObject *arr = (PyArrayObject *)PyArray_FROM_O(obj);
    PyArrayObject *cast = NULL;
    int rc = -1;
    if (!arr) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "lengths: expected a sequence of integers, got %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    char k = PyArray_DESCR(arr)->kind;
    if (k != 'i' && k != 'u') {
        PyErr_Format(PyExc_TypeError, "lengths: expected integers, got dtype %S",
                     (PyObject *)PyArray_DESCR(arr));
        goto done;
    }
    npy_intp want[1] = {(npy_intp)B};
    if (check_shape(arr, "lengths", 1, want, "(B,)")) goto done;
    cast = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)arr, NPY_INT64,
                                             NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (!cast) goto done;
    if (k == 'u') { /* a huge unsigned value must not wrap to a valid one */
        PyArrayObject *big = (PyArrayObject *)PyArray_FROM_OTF((PyObject *)arr, NPY_UINT64,
                                                               NPY_ARRAY_IN_ARRAY);
        if (!big) goto done;
        const npy_uint64 *u = (const npy_uint64 *)PyArray_DATA(big);
        for (int64_t b = 0; b < B; b++)
            if (u[b] > (npy_uint64)T) {
                PyErr_Format(PyExc_ValueError,
                             "lengths: expected values in [0, T] = [0, %lld], got %llu at index %lld",
                             (long long)T, (unsigned long long)u[b], (long long)b);
                Py_DECREF(big);
                goto done;
            }
        Py_DECREF(big);
    }
    const int64_t *v = (const int64_t *)PyArray_DATA(cast);
    for (int64_t b = 0; b < B; b++)
        if (v[b] < 0 || v[b] > T) {
            PyErr_Format(PyExc_ValueError,
                         "lengths: expected values in [0, T] = [0, %lld], got %lld at index %lld",
                         (long long)T, (long long)v[b], (long long)b);
            goto done;
        }
    *out = PyMem_RawMalloc((size_t)B * sizeof(int64_t));
    if (!*out) { PyErr_NoMemory(); goto done; }
    memcpy(*out, v, (size_t)B * sizeof(int64_t));
    rc = 0;
done:
    Py_XDECREF(cast);
    Py_DECREF(arr);
    return rc;
}

/* Turns a kernel's status into an exception (callers hold the GIL). */
void raise_status(const char *where, int st) {
    PyErr_Format(PyExc_RuntimeError, "%s: kernel error %d: %s", where, st, rnn_status_string(st));
}

/* Takes a caller's flat vector (checked to be usable in place) or makes a
 * zeroed one. */
PyArrayObject *flat_vector(PyObject *obj, const char *name, int typenum, int64_t n) {
    if (obj == NULL || obj == Py_None) {
        npy_intp dims[1] = {(npy_intp)n};
        return (PyArrayObject *)PyArray_ZEROS(1, dims, typenum, 0);
    }
    if (!PyArray_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s: expected a 1-D numpy array of %lld %s values, got %.100s",
                     name, (long long)n, dtype_name(typenum), Py_TYPE(obj)->tp_name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)obj;
    if (PyArray_TYPE(a) != typenum) {
        PyErr_Format(PyExc_TypeError, "%s: expected dtype %s, got %S", name, dtype_name(typenum),
                     (PyObject *)PyArray_DESCR(a));
        return NULL;
    }
    npy_intp want[1] = {(npy_intp)n};
    if (check_shape(a, name, 1, want, "(num_params,)")) return NULL;
    if (!PyArray_ISCARRAY(a)) {
        PyErr_Format(PyExc_ValueError, "%s: expected a C-contiguous, aligned, writeable array", name);
        return NULL;
    }
    Py_INCREF(a);
    return a;
}

/* A size argument as a positive integer (bools and floats refused); -1 on error. */
long long parse_size(PyObject *obj, const char *name) {
    long long v = -1;
    if (!PyBool_Check(obj) && PyIndex_Check(obj)) {
        PyObject *idx = PyNumber_Index(obj);
        if (idx) {
            int overflow = 0;
            v = PyLong_AsLongLongAndOverflow(idx, &overflow);
            Py_DECREF(idx);
            if (overflow || (v == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                PyErr_Format(PyExc_ValueError, "%s: %R is too large", name, obj);
                return -1;
            }
        } else {
            PyErr_Clear();
        }
    } else {
        PyErr_Format(PyExc_TypeError, "%s: expected a positive integer, got %R", name, obj);
        return -1;
    }
    if (v <= 0) {
        PyErr_Format(PyExc_ValueError, "%s: expected a positive integer, got %R", name, obj);
        return -1;
    }
    return v;
}

/* Whether two arrays' memory overlaps. */
int overlaps(PyArrayObject *a, PyArrayObject *b) {
    const char *a0 = PyArray_BYTES(a), *b0 = PyArray_BYTES(b);
    return a0 < b0 + PyArray_NBYTES(b) && b0 < a0 + PyArray_NBYTES(a);
}

/* A thread count: a positive int up to RNN_MAX_THREADS; -1 on error. */
int parse_threads(PyObject *obj) {
    if (obj == NULL) return 1;
    long long v = parse_size(obj, "threads");
    if (v < 0) return -1;
    if (v > RNN_MAX_THREADS) {
        PyErr_Format(PyExc_ValueError, "threads: expected at most %d, got %lld", RNN_MAX_THREADS, v);
        return -1;
    }
    return (int)v;
}

/* proj_size: None or an int in [0, H); -1 on error. */
long long parse_proj(PyObject *obj, long long H) {
    if (obj == NULL || obj == Py_None) return 0;
    long long v = -1;
    if (!PyBool_Check(obj) && PyIndex_Check(obj)) {
        PyObject *idx = PyNumber_Index(obj);
        if (!idx) return -1;
        int overflow = 0;
        v = PyLong_AsLongLongAndOverflow(idx, &overflow);
        Py_DECREF(idx);
        if (v == -1 && PyErr_Occurred()) return -1;
        if (overflow) v = -1;
    } else {
        PyErr_Format(PyExc_TypeError, "proj_size: expected an int in [0, hidden_size), got %R", obj);
        return -1;
    }
    if (v < 0 || v >= H) {
        PyErr_Format(PyExc_ValueError,
                     "proj_size: expected an int in [0, hidden_size) = [0, %lld), got %R", H, obj);
        return -1;
    }
    return v;
}

/* A mask argument of forward: converted, shape-checked against one of two
 * shapes (want2 may be NULL), finite, and in [0, 1] when unit. *which says
 * which shape matched (1 or 2). NULL without an error when obj is None. */
PyArrayObject *as_mask(PyObject *obj, const char *name, int typenum, int nd1,
                              const npy_intp *want1, const char *sym1, int nd2,
                              const npy_intp *want2, const char *sym2, int unit, int *which) {
    if (obj == NULL || obj == Py_None) return NULL;
    PyArrayObject *a = as_real_array(obj, name, typenum);
    if (!a) return NULL;
    *which = 1;
    if (want2 && PyArray_NDIM(a) == nd2) {
        *which = 2;
        if (check_shape(a, name, nd2, want2, sym2)) goto error;
    } else if (check_shape(a, name, nd1, want1, sym1)) {
        goto error;
    }
    if (check_finite(a, name)) goto error;
    if (unit) {
        npy_intp n = PyArray_SIZE(a);
        for (npy_intp i = 0; i < n; i++) {
            double v = typenum == NPY_FLOAT ? ((const float *)PyArray_DATA(a))[i]
                                            : ((const double *)PyArray_DATA(a))[i];
            if (v < 0 || v > 1) {
                PyErr_Format(PyExc_ValueError,
                             "%s: expected values in [0, 1], got %g at flat index %zd", name, v, i);
                goto error;
            }
        }
    }
    return a;
error:
    Py_DECREF(a);
    return NULL;
}


/* A scratch block of n_elems reals followed by a 64-byte-aligned GEMM
 * workspace for `threads` threads. *raw is what to free. */
void *alloc_scratch(int64_t n_elems, size_t elsize, int threads, void **raw, void **gemm_ws) {
    size_t gbytes = rnn_gemm_workspace_size() * (size_t)(threads > 1 ? threads : 1);
    if (n_elems < 0 || (uint64_t)n_elems > (SIZE_MAX - gbytes - 192) / elsize) {
        PyErr_NoMemory();
        return NULL;
    }
    size_t bytes = (size_t)n_elems * elsize;
    *raw = PyMem_RawMalloc(bytes + gbytes + 192);
    if (!*raw) { PyErr_NoMemory(); return NULL; }
    uintptr_t p = ((uintptr_t)*raw + 63) & ~(uintptr_t)63;
    uintptr_t g = (p + bytes + 63) & ~(uintptr_t)63;
    *gemm_ws = (void *)g;
    return (void *)p;
}
