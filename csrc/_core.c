/*
 * _core.c: the CPython/NumPy module rnnpy._core, the only C file that sees
 * Python. It wraps the kernels of cells.h as three NumPy-aware types, one
 * per cell kind, and exposes the GEMM for tests and benchmarks.
 *
 * Each type is one layer in one direction. Its parameters live in one flat
 * NumPy vector (given by the caller, so that a whole model can share one
 * buffer), named arrays are views of it, and `layout()` tells where each
 * name lives. forward() validates and converts its arguments, allocates the
 * outputs, the cache and the scratch, releases the GIL around the kernel and
 * keeps the cache for backward(). backward() adds into the flat gradient.
 *
 * Errors name the argument and what was expected. An object runs one call
 * at a time: a second thread entering while the first is inside a kernel
 * gets a RuntimeError, never a corrupted cache.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
/* NumPy pulls in <complex.h>, whose macro I (the imaginary unit) would
 * swallow our dimension key's I (input features). */
#undef I

#include <math.h>
#include <string.h>
#ifdef _WIN32
#include <process.h>
#define getpid _getpid
#else
#include <unistd.h>
#endif

#include "cells.h"
#include "cells_ext.h"
#include "gemm.h"
#include "bf16.h"
#include "pool.h"

/* ---------------------------------------------------------------- state */

typedef struct {
    PyTypeObject *rnn_type;
    PyTypeObject *lstm_type;
    PyTypeObject *gru_type;
    rnn_pool *pool;         /* the kernels' threads, made on first need (see pool_of) */
} module_state;

static struct PyModuleDef core_module;

/* The module state of the module that defined tp (or a base of tp), or NULL. */
static module_state *state_of_type(PyTypeObject *tp) {
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *m = PyType_GetModuleByDef(tp, &core_module);
    if (!m) {
        PyErr_Clear();
        return NULL;
    }
    return PyModule_GetState(m);
#else
    PyObject *mro = tp->tp_mro;
    for (Py_ssize_t i = 0; mro && i < PyTuple_GET_SIZE(mro); i++) {
        PyTypeObject *base = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        if (!(base->tp_flags & Py_TPFLAGS_HEAPTYPE)) continue;
        PyObject *m = PyType_GetModule(base);
        if (!m) {
            PyErr_Clear();
            continue;
        }
        if (PyModule_GetDef(m) == &core_module) return PyModule_GetState(m);
    }
    return NULL;
#endif
}

/* The pool a kernel call on `threads` threads runs on, or NULL (the calling
 * thread alone, with the same results: at threads <= 1, or when memory for
 * a pool is short). Called with the GIL held, which serialises making it.
 * In a child made by fork the parent's pool has no threads (and a lock
 * that a parent thread may have held at the fork): it is dropped unused
 * and a new one made, so the child's calls run on threads of their own. */
static rnn_pool *pool_of(module_state *st, int threads) {
    if (!st || threads <= 1) return NULL;
    if (st->pool && rnn_pool_stale(st->pool)) {
        rnn_pool_abandon(st->pool);
        st->pool = NULL;
    }
    if (!st->pool) st->pool = rnn_pool_new();
    return st->pool;
}

typedef struct {
    PyObject_HEAD
    int kind;               /* rnn_cell_kind */
    int typenum;            /* NPY_FLOAT or NPY_DOUBLE */
    int64_t I, H;           /* input features, hidden units */
    rnn_ext_config cfg;     /* projection, layer norm (peephole and relu mirror kind) */
    PyArrayObject *params;  /* (P,) flat parameters, views are the named weights */
    PyArrayObject *grads;   /* (P,) flat gradients, same layout */
    long busy;              /* pid of the process whose call is inside, or 0 (checked
                             * with the GIL held; a copy made by fork mid-call is free
                             * in the child, where the calling thread does not exist) */
    int threads;            /* threads a kernel call may use (>= 1) */
    /* what forward keeps for backward */
    int have_cache;
    rnn_dims dims;
    int batch_first;
    void *cache;            /* rnn_cache_len elements */
    void *x_saved;          /* (R, I) copy of the input, in its layout */
    int64_t *lengths;       /* (B,) or NULL */
    int cache_ext;          /* the cache is an extended kernel's (cells_ext.h) */
    void *m_rec, *m_zh, *m_zc; /* copies of the masks that forward used, or NULL */
    int64_t zh_ld, zc_ld;
} CellObject;

/* Hs: units of the recurrent state h (the projection size, else H). */
static int64_t state_size(const CellObject *self) { return self->cfg.P > 0 ? self->cfg.P : self->H; }

/* Whether the cell's options need the extended kernels whatever the masks.
 * Peepholes go there too: its peephole loop is vectorised per instruction
 * set and split over threads, lstm.c's is not (about twice as fast). */
static int needs_ext(const CellObject *self) {
    return self->cfg.P > 0 || self->cfg.layer_norm || self->cfg.peephole;
}

/* Offsets of the named parameters inside the flat vector, in elements. */
typedef struct {
    int64_t w_ih, w_hh, b_ih, b_hh, peep, w_hr, ln_ih, ln_hh, ln_c, total;
} cell_layout;

/* PyTorch's order (w_ih, w_hh, b_ih, b_hh, then w_hr), our peepholes before
 * the projection, the layer-norm gains (and the LSTM's cell-norm gain and
 * bias) last. */
static cell_layout layout_of(int kind, int64_t I, int64_t H, const rnn_ext_config *cfg) {
    cell_layout L;
    int64_t GH = rnn_cell_gates(kind) * H, Hs = cfg->P > 0 ? cfg->P : H;
    int lstm = kind == RNN_CELL_LSTM || kind == RNN_CELL_PEEPHOLE;
    L.w_ih = 0;
    L.w_hh = L.w_ih + GH * I;
    L.b_ih = L.w_hh + GH * Hs;
    L.b_hh = L.b_ih + GH;
    L.peep = L.b_hh + GH;
    L.w_hr = L.peep + (kind == RNN_CELL_PEEPHOLE ? 3 * H : 0);
    L.ln_ih = L.w_hr + cfg->P * H;
    L.ln_hh = L.ln_ih + (cfg->layer_norm ? GH : 0);
    L.ln_c = L.ln_hh + (cfg->layer_norm ? GH : 0);
    L.total = L.ln_c + (cfg->layer_norm && lstm ? 2 * H : 0);
    return L;
}

/* Whether a call of this process is inside the cell. */
static int cell_busy(const CellObject *self) { return self->busy && self->busy == (long)getpid(); }

static size_t elsize_of(int typenum) { return typenum == NPY_FLOAT ? sizeof(float) : sizeof(double); }

static const char *dtype_name(int typenum) { return typenum == NPY_FLOAT ? "float32" : "float64"; }

/* ------------------------------------------------------- argument checks */

/* Parses a dtype argument ("float32", np.float64, ...) into NPY_FLOAT or
 * NPY_DOUBLE; -1 with TypeError otherwise. */
static int parse_dtype(PyObject *obj, const char *name) {
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
static void format_shape(char *buf, size_t n, int ndim, const npy_intp *dims) {
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
static PyArrayObject *as_real_array(PyObject *obj, const char *name, int typenum) {
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
static int check_shape(PyArrayObject *arr, const char *name, int ndim, const npy_intp *want,
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

/* ValueError when a contiguous real array holds NaN or Inf. */
/* Whether any of p[0:n] is NaN or Inf (x * 0 is NaN exactly then), in
 * independent lanes without an early exit so that the loop vectorises. */
static int any_nonfinite_f32(const float *p, npy_intp n) {
    float acc[16] = {0};
    npy_intp i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] += p[i + l] * 0.0f;
    for (; i < n; i++) acc[0] += p[i] * 0.0f;
    float s = 0;
    for (int l = 0; l < 16; l++) s += acc[l];
    return s != s;
}
static int any_nonfinite_f64(const double *p, npy_intp n) {
    double acc[8] = {0};
    npy_intp i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += p[i + l] * 0.0;
    for (; i < n; i++) acc[0] += p[i] * 0.0;
    double s = 0;
    for (int l = 0; l < 8; l++) s += acc[l];
    return s != s;
}

static int check_finite(PyArrayObject *arr, const char *name) {
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
static PyArrayObject *as_state(PyObject *obj, const char *name, int typenum, int64_t B,
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
static int parse_lengths(PyObject *obj, int64_t B, int64_t T, int64_t **out) {
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
static void raise_status(const char *where, int st) {
    PyErr_Format(PyExc_RuntimeError, "%s: kernel error %d: %s", where, st, rnn_status_string(st));
}

/* A scratch block of n_elems reals followed by a 64-byte-aligned GEMM
 * workspace for `threads` threads. *raw is what to free. */
static void *alloc_scratch(int64_t n_elems, size_t elsize, int threads, void **raw, void **gemm_ws) {
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

/* ------------------------------------------------------------ lifetime */

static void cell_free_cache(CellObject *self) {
    PyMem_RawFree(self->cache);
    PyMem_RawFree(self->x_saved);
    PyMem_RawFree(self->lengths);
    PyMem_RawFree(self->m_rec);
    PyMem_RawFree(self->m_zh);
    PyMem_RawFree(self->m_zc);
    self->cache = self->x_saved = NULL;
    self->m_rec = self->m_zh = self->m_zc = NULL;
    self->lengths = NULL;
    self->have_cache = 0;
    self->cache_ext = 0;
}

static int cell_traverse(CellObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->params);
    Py_VISIT(self->grads);
    return 0;
}

static int cell_clear(CellObject *self) {
    Py_CLEAR(self->params);
    Py_CLEAR(self->grads);
    return 0;
}

static void cell_dealloc(CellObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    cell_clear(self);
    cell_free_cache(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* Takes a caller's flat vector (checked to be usable in place) or makes a
 * zeroed one. */
static PyArrayObject *flat_vector(PyObject *obj, const char *name, int typenum, int64_t n) {
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
static long long parse_size(PyObject *obj, const char *name) {
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
static int overlaps(PyArrayObject *a, PyArrayObject *b) {
    const char *a0 = PyArray_BYTES(a), *b0 = PyArray_BYTES(b);
    return a0 < b0 + PyArray_NBYTES(b) && b0 < a0 + PyArray_NBYTES(a);
}

/* A thread count: a positive int up to RNN_MAX_THREADS; -1 on error. */
static int parse_threads(PyObject *obj) {
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
static long long parse_proj(PyObject *obj, long long H) {
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

static int cell_init_common(CellObject *self, int kind, PyObject *I_obj, PyObject *H_obj,
                            PyObject *dtype, PyObject *params, PyObject *grads,
                            PyObject *threads_obj, PyObject *proj_obj, int layer_norm) {
    long long I = parse_size(I_obj, "input_size");
    if (I < 0) return -1;
    long long H = parse_size(H_obj, "hidden_size");
    if (H < 0) return -1;
    long long P = parse_proj(proj_obj, H);
    if (P < 0) return -1;
    rnn_ext_config cfg = {.P = P, .peephole = kind == RNN_CELL_PEEPHOLE,
                          .layer_norm = layer_norm != 0, .relu = kind == RNN_CELL_RELU};
    /* all parameter counts and per-row products must fit comfortably */
    if (I > (1LL << 31) || H > (1LL << 28) || rnn_mul(4 * H, I + 2 * H + 5) < 0 ||
        rnn_mul(4 * H, I + 2 * H + 5) > (int64_t)NPY_MAX_INTP / 8) {
        PyErr_Format(PyExc_ValueError, "input_size, hidden_size: (%lld, %lld) is too large", I, H);
        return -1;
    }
    int typenum = parse_dtype(dtype, "dtype");
    if (typenum < 0) return -1;
    int threads = parse_threads(threads_obj);
    if (threads < 0) return -1;
    cell_layout L = layout_of(kind, I, H, &cfg);
    PyArrayObject *p = flat_vector(params, "params", typenum, L.total);
    if (!p) return -1;
    PyArrayObject *g = flat_vector(grads, "grads", typenum, L.total);
    if (!g) { Py_DECREF(p); return -1; }
    if (overlaps(g, p)) {
        Py_DECREF(p); Py_DECREF(g);
        PyErr_SetString(PyExc_ValueError, "grads: must not share memory with params");
        return -1;
    }
    if (cell_busy(self)) {
        Py_DECREF(p); Py_DECREF(g);
        PyErr_SetString(PyExc_RuntimeError, "__init__: the cell is in use by another thread");
        return -1;
    }
    Py_XSETREF(self->params, p);
    Py_XSETREF(self->grads, g);
    cell_free_cache(self);
    self->kind = kind;
    self->cfg = cfg;
    self->typenum = typenum;
    self->I = I;
    self->H = H;
    self->threads = threads;
    return 0;
}

static int rnncell_init(CellObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"input_size", "hidden_size", "nonlinearity", "dtype", "params", "grads",
                             "threads", NULL};
    PyObject *I, *H, *dtype = NULL, *params = NULL, *grads = NULL, *threads = NULL;
    const char *nl = "tanh";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$sOOOO:RNNCell", kwlist, &I, &H, &nl, &dtype,
                                     &params, &grads, &threads))
        return -1;
    int kind;
    if (strcmp(nl, "tanh") == 0) kind = RNN_CELL_TANH;
    else if (strcmp(nl, "relu") == 0) kind = RNN_CELL_RELU;
    else {
        PyErr_Format(PyExc_ValueError, "nonlinearity: expected 'tanh' or 'relu', got '%s'", nl);
        return -1;
    }
    return cell_init_common(self, kind, I, H, dtype, params, grads, threads, NULL, 0);
}

static int lstmcell_init(CellObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"input_size", "hidden_size", "peephole", "proj_size", "layer_norm",
                             "dtype", "params", "grads", "threads", NULL};
    PyObject *I, *H, *dtype = NULL, *params = NULL, *grads = NULL, *threads = NULL, *proj = NULL;
    int peephole = 0, layer_norm = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$pOpOOOO:LSTMCell", kwlist, &I, &H, &peephole,
                                     &proj, &layer_norm, &dtype, &params, &grads, &threads))
        return -1;
    return cell_init_common(self, peephole ? RNN_CELL_PEEPHOLE : RNN_CELL_LSTM, I, H, dtype,
                            params, grads, threads, proj, layer_norm);
}

static int grucell_init(CellObject *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"input_size", "hidden_size", "layer_norm", "dtype", "params", "grads",
                             "threads", NULL};
    PyObject *I, *H, *dtype = NULL, *params = NULL, *grads = NULL, *threads = NULL;
    int layer_norm = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$pOOOO:GRUCell", kwlist, &I, &H, &layer_norm,
                                     &dtype, &params, &grads, &threads))
        return -1;
    return cell_init_common(self, RNN_CELL_GRU, I, H, dtype, params, grads, threads, NULL,
                            layer_norm);
}

static int cell_ready(CellObject *self, const char *where) {
    if (!self->params) {
        PyErr_Format(PyExc_RuntimeError, "%s: the cell was not initialised", where);
        return -1;
    }
    if (cell_busy(self)) {
        PyErr_Format(PyExc_RuntimeError,
                     "%s: the cell is in use by another thread; one cell runs one call at a time",
                     where);
        return -1;
    }
    return 0;
}

static int is_lstm(const CellObject *self) {
    return self->kind == RNN_CELL_LSTM || self->kind == RNN_CELL_PEEPHOLE;
}

/* -------------------------------------------------------------- forward */

/* forward/backward hold the busy flag for the whole call, not just around the
 * kernel: converting an argument can run Python code (__array__, __bool__,
 * __index__) that calls back into this cell, or another thread can enter while
 * the GIL is released; either must get a RuntimeError, never a cache or sizes
 * that change under the running call. */
static PyObject *cell_forward_impl(CellObject *self, PyObject *args, PyObject *kw);
static PyObject *cell_backward_impl(CellObject *self, PyObject *args, PyObject *kw);

static PyObject *cell_forward(CellObject *self, PyObject *args, PyObject *kw) {
    if (cell_ready(self, "forward")) return NULL;
    self->busy = (long)getpid();
    PyObject *result = cell_forward_impl(self, args, kw);
    self->busy = 0;
    return result;
}

static PyObject *cell_backward(CellObject *self, PyObject *args, PyObject *kw) {
    if (cell_ready(self, "backward")) return NULL;
    self->busy = (long)getpid();
    PyObject *result = cell_backward_impl(self, args, kw);
    self->busy = 0;
    return result;
}

/* A mask argument of forward: converted, shape-checked against one of two
 * shapes (want2 may be NULL), finite, and in [0, 1] when unit. *which says
 * which shape matched (1 or 2). NULL without an error when obj is None. */
static PyArrayObject *as_mask(PyObject *obj, const char *name, int typenum, int nd1,
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

/* A fresh copy of an array's data (PyMem_RawMalloc), or NULL for NULL. */
static void *copy_data(PyArrayObject *a, int *failed) {
    if (!a) return NULL;
    size_t n = (size_t)PyArray_NBYTES(a);
    void *p = PyMem_RawMalloc(n > 0 ? n : 1);
    if (!p) { *failed = 1; return NULL; }
    memcpy(p, PyArray_DATA(a), n);
    return p;
}

/* The extended kernels' parameter, gradient and mask structs of a cell, per
 * dtype: fields whose option is off stay NULL. */
#define DEFINE_EXT_FILL(REAL, SFX)                                                            \
    static void ext_params_##SFX(const CellObject *self, const char *base,                   \
                                 rnn_ext_params_##SFX *p) {                                   \
        cell_layout L = layout_of(self->kind, self->I, self->H, &self->cfg);                  \
        const REAL *b = (const REAL *)base;                                                   \
        *p = (rnn_ext_params_##SFX){.w_ih = b + L.w_ih, .w_hh = b + L.w_hh,                   \
                                    .b_ih = b + L.b_ih, .b_hh = b + L.b_hh};                  \
        if (self->cfg.peephole) p->w_peep = b + L.peep;                                       \
        if (self->cfg.P > 0) p->w_hr = b + L.w_hr;                                            \
        if (self->cfg.layer_norm) {                                                           \
            p->ln_ih = b + L.ln_ih;                                                           \
            p->ln_hh = b + L.ln_hh;                                                           \
            if (is_lstm(self)) p->ln_c = b + L.ln_c;                                          \
        }                                                                                     \
    }                                                                                         \
    static void ext_grads_##SFX(const CellObject *self, char *base, rnn_ext_grads_##SFX *g) { \
        rnn_ext_params_##SFX p;                                                               \
        ext_params_##SFX(self, base, &p);                                                     \
        *g = (rnn_ext_grads_##SFX){(REAL *)p.w_ih, (REAL *)p.w_hh, (REAL *)p.b_ih,            \
                                   (REAL *)p.b_hh, (REAL *)p.w_peep, (REAL *)p.w_hr,          \
                                   (REAL *)p.ln_ih, (REAL *)p.ln_hh, (REAL *)p.ln_c};          \
    }                                                                                         \
    static rnn_ext_masks_##SFX ext_masks_##SFX(const void *rec, const void *zh, int64_t zh_ld, \
                                               const void *zc, int64_t zc_ld) {               \
        return (rnn_ext_masks_##SFX){.rec = rec, .zh = zh, .zh_ld = zh_ld, .zc = zc,          \
                                     .zc_ld = zc_ld};                                         \
    }
DEFINE_EXT_FILL(float, f32)
DEFINE_EXT_FILL(double, f64)

static PyObject *cell_forward_impl(CellObject *self, PyObject *args, PyObject *kw) {
    static char *kw_lstm[] = {"x", "h0", "c0", "lengths", "reverse", "batch_first", "rec_mask",
                              "zoneout_h", "zoneout_c", NULL};
    static char *kw_plain[] = {"x", "h0", "lengths", "reverse", "batch_first", "rec_mask",
                               "zoneout_h", NULL};
    PyObject *x_obj, *h0_obj = Py_None, *c0_obj = Py_None, *len_obj = Py_None;
    PyObject *rec_obj = Py_None, *zh_obj = Py_None, *zc_obj = Py_None;
    int reverse = 0, batch_first = 0;
    PyArrayObject *x = NULL, *h0 = NULL, *c0 = NULL, *out = NULL, *hT = NULL, *cT = NULL;
    PyArrayObject *rec = NULL, *zh = NULL, *zc = NULL;
    int64_t *lengths = NULL;
    void *cache = NULL, *x_saved = NULL, *scratch_raw = NULL;
    void *m_rec = NULL, *m_zh = NULL, *m_zc = NULL;
    PyObject *result = NULL;
    int lstm = 0;

    lstm = is_lstm(self);
    if (lstm) {
        if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOO$ppOOO:forward", kw_lstm, &x_obj, &h0_obj,
                                         &c0_obj, &len_obj, &reverse, &batch_first, &rec_obj,
                                         &zh_obj, &zc_obj))
            return NULL;
    } else if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO$ppOO:forward", kw_plain, &x_obj,
                                            &h0_obj, &len_obj, &reverse, &batch_first, &rec_obj,
                                            &zh_obj)) {
        return NULL;
    }
    const int typenum = self->typenum;
    const size_t es = elsize_of(typenum);
    const int64_t H = self->H, Hs = state_size(self);
    const char *hsym = self->cfg.P > 0 ? "(B, P)" : "(B, H)";
    x = as_real_array(x_obj, "x", typenum);
    if (!x) goto error;
    {
        npy_intp want[3] = {-1, -1, (npy_intp)self->I};
        if (check_shape(x, "x", 3, want, batch_first ? "(B, T, I)" : "(T, B, I)")) goto error;
    }
    npy_intp d0 = PyArray_DIM(x, 0), d1 = PyArray_DIM(x, 1);
    const int64_t T = batch_first ? d1 : d0, B = batch_first ? d0 : d1;
    if (T == 0 || B == 0) {
        char got[96];
        format_shape(got, sizeof got, 3, PyArray_DIMS(x));
        PyErr_Format(PyExc_ValueError,
                     "x: expected at least one time step and one sequence, got shape %s", got);
        goto error;
    }
    if (check_finite(x, "x")) goto error;
    if (!(h0 = as_state(h0_obj, "h0", typenum, B, Hs, hsym)) && PyErr_Occurred()) goto error;
    if (lstm && !(c0 = as_state(c0_obj, "c0", typenum, B, H, "(B, H)")) && PyErr_Occurred())
        goto error;
    if (parse_lengths(len_obj, B, T, &lengths)) goto error;
    int64_t zh_ld = 0, zc_ld = 0;
    {
        int which = 0;
        npy_intp wrec[2] = {(npy_intp)B, (npy_intp)Hs};
        if (!(rec = as_mask(rec_obj, "rec_mask", typenum, 2, wrec, hsym, 0, NULL, NULL, 0, &which)) &&
            PyErr_Occurred())
            goto error;
        const char *seq = batch_first ? "(B, T, Hs)" : "(T, B, Hs)";
        npy_intp wz1[1] = {(npy_intp)Hs}, wz3[3] = {d0, d1, (npy_intp)Hs};
        if (!(zh = as_mask(zh_obj, "zoneout_h", typenum, 1, wz1, "(Hs,)", 3, wz3, seq, 1, &which)) &&
            PyErr_Occurred())
            goto error;
        zh_ld = which == 2 ? Hs : 0;
        const char *seqc = batch_first ? "(B, T, H)" : "(T, B, H)";
        npy_intp wc1[1] = {(npy_intp)H}, wc3[3] = {d0, d1, (npy_intp)H};
        if (lstm && !(zc = as_mask(zc_obj, "zoneout_c", typenum, 1, wc1, "(H,)", 3, wc3, seqc, 1,
                                   &which)) && PyErr_Occurred())
            goto error;
        zc_ld = which == 2 ? H : 0;
    }
    const int ext = needs_ext(self) || rec || zh || zc;

    rnn_dims d = {.T = T, .B = B, .I = self->I, .H = H,
                  .ts = batch_first ? 1 : B, .bs = batch_first ? T : 1,
                  .ldx = self->I, .ldo = Hs, .reverse = reverse, .threads = self->threads,
                  .pool = pool_of(state_of_type(Py_TYPE(self)), self->threads)};
    int64_t cache_len = ext ? rnn_ext_cache_len(self->kind, &d, &self->cfg)
                            : rnn_cache_len(self->kind, &d);
    int64_t work_len = ext ? rnn_ext_forward_work_len(self->kind, &d, &self->cfg)
                           : rnn_forward_work_len(self->kind, &d);
    int64_t x_len = rnn_mul(rnn_mul(T, B), self->I);
    int bad_dims = ext ? rnn_ext_dims_check(self->kind, &d, &self->cfg) : rnn_dims_check(&d);
    if (bad_dims || cache_len < 0 || work_len < 0 || x_len < 0 ||
        (uint64_t)cache_len > SIZE_MAX / es / 2 || (uint64_t)x_len > SIZE_MAX / es / 2) {
        PyErr_Format(PyExc_ValueError, "x: (T, B, I) = (%lld, %lld, %lld) is too large to process",
                     (long long)T, (long long)B, (long long)self->I);
        goto error;
    }
    {
        npy_intp odims[3] = {d0, d1, (npy_intp)Hs}, sdims[2] = {(npy_intp)B, (npy_intp)Hs};
        npy_intp cdims[2] = {(npy_intp)B, (npy_intp)H};
        out = (PyArrayObject *)PyArray_EMPTY(3, odims, typenum, 0);
        hT = (PyArrayObject *)PyArray_EMPTY(2, sdims, typenum, 0);
        if (!out || !hT) goto error;
        if (lstm && !(cT = (PyArrayObject *)PyArray_EMPTY(2, cdims, typenum, 0))) goto error;
    }
    cache = PyMem_RawMalloc((size_t)cache_len * es);
    x_saved = PyMem_RawMalloc((size_t)x_len * es);
    int copy_failed = 0;
    m_rec = copy_data(rec, &copy_failed);
    m_zh = copy_data(zh, &copy_failed);
    m_zc = copy_data(zc, &copy_failed);
    void *gemm_ws = NULL;
    void *work = alloc_scratch(work_len, es, self->threads, &scratch_raw, &gemm_ws);
    if (!cache || !x_saved || !work || copy_failed) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto error;
    }

    {
        const char *p = PyArray_BYTES(self->params);
        cell_layout L = layout_of(self->kind, self->I, self->H, &self->cfg);
        const void *w_ih = p + L.w_ih * es, *w_hh = p + L.w_hh * es, *b_ih = p + L.b_ih * es,
                   *b_hh = p + L.b_hh * es;
        const void *peep = self->kind == RNN_CELL_PEEPHOLE ? p + L.peep * es : NULL;
        const void *xp = PyArray_DATA(x), *h0p = h0 ? PyArray_DATA(h0) : NULL,
                   *c0p = c0 ? PyArray_DATA(c0) : NULL;
        void *op = PyArray_DATA(out), *hTp = PyArray_DATA(hT), *cTp = cT ? PyArray_DATA(cT) : NULL;
        int kind = self->kind, st = RNN_OK;
        const rnn_ext_config *cfg = &self->cfg;
        rnn_ext_params_f32 p32 = {0};
        rnn_ext_params_f64 p64 = {0};
        rnn_ext_masks_f32 m32 = ext_masks_f32(m_rec, m_zh, zh_ld, m_zc, zc_ld);
        rnn_ext_masks_f64 m64 = ext_masks_f64(m_rec, m_zh, zh_ld, m_zc, zc_ld);
        if (typenum == NPY_FLOAT) ext_params_f32(self, p, &p32);
        else ext_params_f64(self, p, &p64);
        Py_BEGIN_ALLOW_THREADS
        memcpy(x_saved, xp, (size_t)x_len * es);
        if (ext && typenum == NPY_FLOAT) {
            if (lstm)
                st = lstm_ext_forward_f32(op, hTp, cTp, cache, xp, h0p, c0p, &p32, &m32, cfg,
                                          lengths, &d, work, gemm_ws);
            else if (kind == RNN_CELL_GRU)
                st = gru_ext_forward_f32(op, hTp, cache, xp, h0p, &p32, &m32, cfg, lengths, &d,
                                         work, gemm_ws);
            else
                st = rnn_ext_forward_f32(op, hTp, cache, xp, h0p, &p32, &m32, cfg, lengths, &d,
                                         work, gemm_ws);
        } else if (ext) {
            if (lstm)
                st = lstm_ext_forward_f64(op, hTp, cTp, cache, xp, h0p, c0p, &p64, &m64, cfg,
                                          lengths, &d, work, gemm_ws);
            else if (kind == RNN_CELL_GRU)
                st = gru_ext_forward_f64(op, hTp, cache, xp, h0p, &p64, &m64, cfg, lengths, &d,
                                         work, gemm_ws);
            else
                st = rnn_ext_forward_f64(op, hTp, cache, xp, h0p, &p64, &m64, cfg, lengths, &d,
                                         work, gemm_ws);
        } else if (typenum == NPY_FLOAT) {
            if (kind == RNN_CELL_TANH || kind == RNN_CELL_RELU)
                st = rnn_forward_f32(op, hTp, cache, xp, h0p, w_ih, w_hh, b_ih, b_hh,
                                     kind == RNN_CELL_RELU, lengths, &d, work, gemm_ws);
            else if (kind == RNN_CELL_GRU)
                st = gru_forward_f32(op, hTp, cache, xp, h0p, w_ih, w_hh, b_ih, b_hh, lengths, &d,
                                     work, gemm_ws);
            else
                st = lstm_forward_f32(op, hTp, cTp, cache, xp, h0p, c0p, w_ih, w_hh, b_ih, b_hh,
                                      peep, lengths, &d, work, gemm_ws);
        } else {
            if (kind == RNN_CELL_TANH || kind == RNN_CELL_RELU)
                st = rnn_forward_f64(op, hTp, cache, xp, h0p, w_ih, w_hh, b_ih, b_hh,
                                     kind == RNN_CELL_RELU, lengths, &d, work, gemm_ws);
            else if (kind == RNN_CELL_GRU)
                st = gru_forward_f64(op, hTp, cache, xp, h0p, w_ih, w_hh, b_ih, b_hh, lengths, &d,
                                     work, gemm_ws);
            else
                st = lstm_forward_f64(op, hTp, cTp, cache, xp, h0p, c0p, w_ih, w_hh, b_ih, b_hh,
                                      peep, lengths, &d, work, gemm_ws);
        }
        Py_END_ALLOW_THREADS
        if (st) { raise_status("forward", st); goto error; }
    }
    /* the new cache replaces the old one only once the kernel succeeded */
    cell_free_cache(self);
    self->cache = cache;
    self->x_saved = x_saved;
    self->lengths = lengths;
    self->dims = d;
    self->batch_first = batch_first;
    self->have_cache = 1;
    self->cache_ext = ext;
    self->m_rec = m_rec;
    self->m_zh = m_zh;
    self->m_zc = m_zc;
    self->zh_ld = zh_ld;
    self->zc_ld = zc_ld;
    cache = x_saved = m_rec = m_zh = m_zc = NULL;
    lengths = NULL;
    result = lstm ? PyTuple_Pack(3, out, hT, cT) : PyTuple_Pack(2, out, hT);
error:
    PyMem_RawFree(scratch_raw);
    PyMem_RawFree(cache);
    PyMem_RawFree(x_saved);
    PyMem_RawFree(lengths);
    PyMem_RawFree(m_rec);
    PyMem_RawFree(m_zh);
    PyMem_RawFree(m_zc);
    Py_XDECREF(x);
    Py_XDECREF(h0);
    Py_XDECREF(c0);
    Py_XDECREF(rec);
    Py_XDECREF(zh);
    Py_XDECREF(zc);
    Py_XDECREF(out);
    Py_XDECREF(hT);
    Py_XDECREF(cT);
    return result;
}

/* ------------------------------------------------------------- backward */

static PyObject *cell_backward_impl(CellObject *self, PyObject *args, PyObject *kw) {
    static char *kw_lstm[] = {"dout", "dhT", "dcT", NULL};
    static char *kw_plain[] = {"dout", "dhT", NULL};
    PyObject *dout_obj = Py_None, *dhT_obj = Py_None, *dcT_obj = Py_None;
    PyArrayObject *dout = NULL, *dhT = NULL, *dcT = NULL, *dx = NULL, *dh0 = NULL, *dc0 = NULL;
    void *scratch_raw = NULL;
    PyObject *result = NULL;
    int lstm;

    lstm = is_lstm(self);
    if (lstm) {
        if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOO:backward", kw_lstm, &dout_obj, &dhT_obj,
                                         &dcT_obj))
            return NULL;
    } else if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:backward", kw_plain, &dout_obj,
                                            &dhT_obj)) {
        return NULL;
    }
    if (!self->have_cache) {
        PyErr_SetString(PyExc_RuntimeError,
                        "backward: nothing to differentiate; call forward first");
        return NULL;
    }
    rnn_dims d = self->dims;
    d.threads = self->threads; /* the count set now, not at forward */
    d.pool = pool_of(state_of_type(Py_TYPE(self)), d.threads);
    const int typenum = self->typenum;
    const size_t es = elsize_of(typenum);
    const int64_t Hs = state_size(self);
    const int ext = self->cache_ext;
    const char *hsym = self->cfg.P > 0 ? "(B, P)" : "(B, H)";
    npy_intp xdims[3] = {self->batch_first ? d.B : d.T, self->batch_first ? d.T : d.B, d.I};
    if (dout_obj != Py_None) {
        if (!(dout = as_real_array(dout_obj, "dout", typenum))) goto error;
        npy_intp want[3] = {xdims[0], xdims[1], Hs};
        const char *sym = self->cfg.P > 0 ? (self->batch_first ? "(B, T, P)" : "(T, B, P)")
                                          : (self->batch_first ? "(B, T, H)" : "(T, B, H)");
        if (check_shape(dout, "dout", 3, want, sym) || check_finite(dout, "dout")) goto error;
    }
    if (!(dhT = as_state(dhT_obj, "dhT", typenum, d.B, Hs, hsym)) && PyErr_Occurred()) goto error;
    if (lstm && !(dcT = as_state(dcT_obj, "dcT", typenum, d.B, d.H, "(B, H)")) && PyErr_Occurred())
        goto error;
    {
        npy_intp sdims[2] = {(npy_intp)d.B, (npy_intp)Hs}, cdims[2] = {(npy_intp)d.B, (npy_intp)d.H};
        dx = (PyArrayObject *)PyArray_ZEROS(3, xdims, typenum, 0);
        dh0 = (PyArrayObject *)PyArray_ZEROS(2, sdims, typenum, 0);
        if (!dx || !dh0) goto error;
        if (lstm && !(dc0 = (PyArrayObject *)PyArray_ZEROS(2, cdims, typenum, 0))) goto error;
    }
    void *gemm_ws = NULL;
    int64_t work_len = ext ? rnn_ext_backward_work_len(self->kind, &d, &self->cfg)
                           : rnn_backward_work_len(self->kind, &d);
    void *work = alloc_scratch(work_len, es, d.threads, &scratch_raw, &gemm_ws);
    if (!work) goto error;
    {
        cell_layout L = layout_of(self->kind, self->I, self->H, &self->cfg);
        const char *p = PyArray_BYTES(self->params);
        char *g = PyArray_BYTES(self->grads);
        const void *w_ih = p + L.w_ih * es, *w_hh = p + L.w_hh * es;
        const void *peep = self->kind == RNN_CELL_PEEPHOLE ? p + L.peep * es : NULL;
        void *gw_ih = g + L.w_ih * es, *gw_hh = g + L.w_hh * es, *gb_ih = g + L.b_ih * es,
             *gb_hh = g + L.b_hh * es;
        void *gpeep = self->kind == RNN_CELL_PEEPHOLE ? g + L.peep * es : NULL;
        const void *doutp = dout ? PyArray_DATA(dout) : NULL, *dhTp = dhT ? PyArray_DATA(dhT) : NULL,
                   *dcTp = dcT ? PyArray_DATA(dcT) : NULL;
        void *dxp = PyArray_DATA(dx), *dh0p = PyArray_DATA(dh0), *dc0p = dc0 ? PyArray_DATA(dc0) : NULL;
        const void *cache = self->cache, *xs = self->x_saved;
        const int64_t *lengths = self->lengths;
        int kind = self->kind, st = RNN_OK;
        const rnn_ext_config *cfg = &self->cfg;
        rnn_ext_params_f32 p32 = {0};
        rnn_ext_params_f64 p64 = {0};
        rnn_ext_grads_f32 g32 = {0};
        rnn_ext_grads_f64 g64 = {0};
        rnn_ext_masks_f32 m32 = ext_masks_f32(self->m_rec, self->m_zh, self->zh_ld, self->m_zc,
                                              self->zc_ld);
        rnn_ext_masks_f64 m64 = ext_masks_f64(self->m_rec, self->m_zh, self->zh_ld, self->m_zc,
                                              self->zc_ld);
        if (typenum == NPY_FLOAT) {
            ext_params_f32(self, p, &p32);
            ext_grads_f32(self, g, &g32);
        } else {
            ext_params_f64(self, p, &p64);
            ext_grads_f64(self, g, &g64);
        }
        Py_BEGIN_ALLOW_THREADS
        if (ext && typenum == NPY_FLOAT) {
            if (lstm)
                st = lstm_ext_backward_f32(dxp, dh0p, dc0p, &g32, doutp, dhTp, dcTp, cache, xs,
                                           &p32, &m32, cfg, lengths, &d, work, gemm_ws);
            else if (kind == RNN_CELL_GRU)
                st = gru_ext_backward_f32(dxp, dh0p, &g32, doutp, dhTp, cache, xs, &p32, &m32, cfg,
                                          lengths, &d, work, gemm_ws);
            else
                st = rnn_ext_backward_f32(dxp, dh0p, &g32, doutp, dhTp, cache, xs, &p32, &m32, cfg,
                                          lengths, &d, work, gemm_ws);
        } else if (ext) {
            if (lstm)
                st = lstm_ext_backward_f64(dxp, dh0p, dc0p, &g64, doutp, dhTp, dcTp, cache, xs,
                                           &p64, &m64, cfg, lengths, &d, work, gemm_ws);
            else if (kind == RNN_CELL_GRU)
                st = gru_ext_backward_f64(dxp, dh0p, &g64, doutp, dhTp, cache, xs, &p64, &m64, cfg,
                                          lengths, &d, work, gemm_ws);
            else
                st = rnn_ext_backward_f64(dxp, dh0p, &g64, doutp, dhTp, cache, xs, &p64, &m64, cfg,
                                          lengths, &d, work, gemm_ws);
        } else if (typenum == NPY_FLOAT) {
            if (kind == RNN_CELL_TANH || kind == RNN_CELL_RELU)
                st = rnn_backward_f32(dxp, dh0p, gw_ih, gw_hh, gb_ih, gb_hh, doutp, dhTp, cache, xs,
                                      w_ih, w_hh, kind == RNN_CELL_RELU, lengths, &d, work, gemm_ws);
            else if (kind == RNN_CELL_GRU)
                st = gru_backward_f32(dxp, dh0p, gw_ih, gw_hh, gb_ih, gb_hh, doutp, dhTp, cache, xs,
                                      w_ih, w_hh, lengths, &d, work, gemm_ws);
            else
                st = lstm_backward_f32(dxp, dh0p, dc0p, gw_ih, gw_hh, gb_ih, gb_hh, gpeep, doutp,
                                       dhTp, dcTp, cache, xs, w_ih, w_hh, peep, lengths, &d, work,
                                       gemm_ws);
        } else {
            if (kind == RNN_CELL_TANH || kind == RNN_CELL_RELU)
                st = rnn_backward_f64(dxp, dh0p, gw_ih, gw_hh, gb_ih, gb_hh, doutp, dhTp, cache, xs,
                                      w_ih, w_hh, kind == RNN_CELL_RELU, lengths, &d, work, gemm_ws);
            else if (kind == RNN_CELL_GRU)
                st = gru_backward_f64(dxp, dh0p, gw_ih, gw_hh, gb_ih, gb_hh, doutp, dhTp, cache, xs,
                                      w_ih, w_hh, lengths, &d, work, gemm_ws);
            else
                st = lstm_backward_f64(dxp, dh0p, dc0p, gw_ih, gw_hh, gb_ih, gb_hh, gpeep, doutp,
                                       dhTp, dcTp, cache, xs, w_ih, w_hh, peep, lengths, &d, work,
                                       gemm_ws);
        }
        Py_END_ALLOW_THREADS
        if (st) { raise_status("backward", st); goto error; }
    }
    result = lstm ? PyTuple_Pack(3, dx, dh0, dc0) : PyTuple_Pack(2, dx, dh0);
error:
    PyMem_RawFree(scratch_raw);
    Py_XDECREF(dout);
    Py_XDECREF(dhT);
    Py_XDECREF(dcT);
    Py_XDECREF(dx);
    Py_XDECREF(dh0);
    Py_XDECREF(dc0);
    return result;
}

/* ------------------------------------------------------- other methods */

static PyObject *cell_zero_grad(CellObject *self, PyObject *Py_UNUSED(ignored)) {
    if (cell_ready(self, "zero_grad")) return NULL;
    memset(PyArray_DATA(self->grads), 0, (size_t)PyArray_NBYTES(self->grads));
    Py_RETURN_NONE;
}

static PyObject *cell_clear_cache(CellObject *self, PyObject *Py_UNUSED(ignored)) {
    if (cell_ready(self, "clear_cache")) return NULL;
    cell_free_cache(self);
    Py_RETURN_NONE;
}

/* [(name, offset, shape), ...] of the named parameters in the flat vector */
static PyObject *cell_layout_list(CellObject *self, PyObject *Py_UNUSED(ignored)) {
    if (cell_ready(self, "layout")) return NULL;
    cell_layout L = layout_of(self->kind, self->I, self->H, &self->cfg);
    long long GH = rnn_cell_gates(self->kind) * self->H, I = self->I, H = self->H;
    long long Hs = state_size(self), P = self->cfg.P;
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
#define LAYOUT_ADD(FMT, ...)                                                  \
    do {                                                                      \
        PyObject *item = Py_BuildValue(FMT, __VA_ARGS__);                     \
        if (!item || PyList_Append(list, item)) {                             \
            Py_XDECREF(item);                                                 \
            Py_DECREF(list);                                                  \
            return NULL;                                                      \
        }                                                                     \
        Py_DECREF(item);                                                      \
    } while (0)
    LAYOUT_ADD("(sL(LL))", "weight_ih", (long long)L.w_ih, GH, I);
    LAYOUT_ADD("(sL(LL))", "weight_hh", (long long)L.w_hh, GH, Hs);
    LAYOUT_ADD("(sL(L))", "bias_ih", (long long)L.b_ih, GH);
    LAYOUT_ADD("(sL(L))", "bias_hh", (long long)L.b_hh, GH);
    if (self->cfg.peephole) LAYOUT_ADD("(sL(LL))", "weight_peep", (long long)L.peep, 3LL, H);
    if (P > 0) LAYOUT_ADD("(sL(LL))", "weight_hr", (long long)L.w_hr, P, H);
    if (self->cfg.layer_norm) {
        LAYOUT_ADD("(sL(L))", "ln_weight_ih", (long long)L.ln_ih, GH);
        LAYOUT_ADD("(sL(L))", "ln_weight_hh", (long long)L.ln_hh, GH);
        if (is_lstm(self)) {
            LAYOUT_ADD("(sL(L))", "ln_weight_c", (long long)L.ln_c, H);
            LAYOUT_ADD("(sL(L))", "ln_bias_c", (long long)(L.ln_c + H), H);
        }
    }
#undef LAYOUT_ADD
    return list;
}

/* A view of part of a flat vector as an array of ndim dims. */
static PyObject *flat_view(PyArrayObject *flat, int64_t offset, int ndim, npy_intp *dims) {
    PyArray_Descr *descr = PyArray_DESCR(flat);
    Py_INCREF(descr);
    PyObject *v = PyArray_NewFromDescr(&PyArray_Type, descr, ndim, dims, NULL,
                                       PyArray_BYTES(flat) + offset * PyArray_ITEMSIZE(flat),
                                       NPY_ARRAY_CARRAY, NULL);
    if (!v) return NULL;
    Py_INCREF(flat);
    if (PyArray_SetBaseObject((PyArrayObject *)v, (PyObject *)flat) < 0) {
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

/* getters for weight_ih, weight_hh, bias_ih, bias_hh, weight_peep (closure = index) */
static PyObject *cell_get_weight(CellObject *self, void *closure) {
    if (cell_ready(self, "weights")) return NULL;
    intptr_t which = (intptr_t)closure;
    cell_layout L = layout_of(self->kind, self->I, self->H, &self->cfg);
    npy_intp GH = rnn_cell_gates(self->kind) * self->H;
    npy_intp dims[2];
    switch (which) {
    case 0: dims[0] = GH; dims[1] = self->I; return flat_view(self->params, L.w_ih, 2, dims);
    case 1: dims[0] = GH; dims[1] = state_size(self); return flat_view(self->params, L.w_hh, 2, dims);
    case 2: dims[0] = GH; return flat_view(self->params, L.b_ih, 1, dims);
    case 3: dims[0] = GH; return flat_view(self->params, L.b_hh, 1, dims);
    case 4:
        if (self->kind != RNN_CELL_PEEPHOLE) Py_RETURN_NONE;
        dims[0] = 3; dims[1] = self->H;
        return flat_view(self->params, L.peep, 2, dims);
    case 5:
        if (self->cfg.P <= 0) Py_RETURN_NONE;
        dims[0] = self->cfg.P; dims[1] = self->H;
        return flat_view(self->params, L.w_hr, 2, dims);
    case 6:
    case 7:
        if (!self->cfg.layer_norm) Py_RETURN_NONE;
        dims[0] = GH;
        return flat_view(self->params, which == 6 ? L.ln_ih : L.ln_hh, 1, dims);
    default:
        if (!self->cfg.layer_norm || !is_lstm(self)) Py_RETURN_NONE;
        dims[0] = 2; dims[1] = self->H;
        return flat_view(self->params, L.ln_c, 2, dims);
    }
}

static PyObject *cell_get_params(CellObject *self, void *Py_UNUSED(c)) {
    if (cell_ready(self, "params")) return NULL;
    return Py_NewRef(self->params);
}
static PyObject *cell_get_grads(CellObject *self, void *Py_UNUSED(c)) {
    if (cell_ready(self, "grads")) return NULL;
    return Py_NewRef(self->grads);
}
static PyObject *cell_get_input_size(CellObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->I);
}
static PyObject *cell_get_hidden_size(CellObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->H);
}
static PyObject *cell_get_proj_size(CellObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(self->cfg.P);
}
static PyObject *cell_get_layer_norm(CellObject *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->cfg.layer_norm);
}
static PyObject *cell_get_dtype(CellObject *self, void *Py_UNUSED(c)) {
    if (cell_ready(self, "dtype")) return NULL;
    return PyUnicode_FromString(dtype_name(self->typenum));
}
static PyObject *cell_get_num_params(CellObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromLongLong(layout_of(self->kind, self->I, self->H, &self->cfg).total);
}
static PyObject *cell_get_kind(CellObject *self, void *Py_UNUSED(c)) {
    static const char *names[] = {"rnn_tanh", "rnn_relu", "lstm", "lstm_peephole", "gru"};
    return PyUnicode_FromString(names[self->kind]);
}
static PyObject *cell_get_has_cache(CellObject *self, void *Py_UNUSED(c)) {
    return PyBool_FromLong(self->have_cache);
}

static PyObject *cell_get_threads(CellObject *self, void *Py_UNUSED(c)) {
    return PyLong_FromLong(self->threads);
}
static int cell_set_threads(CellObject *self, PyObject *value, void *Py_UNUSED(c)) {
    if (!value) {
        PyErr_SetString(PyExc_AttributeError, "threads: cannot be deleted");
        return -1;
    }
    if (cell_busy(self)) {
        PyErr_SetString(PyExc_RuntimeError, "threads: the cell is in use by another thread");
        return -1;
    }
    int n = parse_threads(value);
    if (n < 0) return -1;
    self->threads = n;
    return 0;
}

static PyGetSetDef cell_getset[] = {
    {"weight_ih", (getter)cell_get_weight, NULL, "(G*H, I) input weights, a view of params", (void *)0},
    {"weight_hh", (getter)cell_get_weight, NULL, "(G*H, H) recurrent weights, a view of params", (void *)1},
    {"bias_ih", (getter)cell_get_weight, NULL, "(G*H,) input bias, a view of params", (void *)2},
    {"bias_hh", (getter)cell_get_weight, NULL, "(G*H,) recurrent bias, a view of params", (void *)3},
    {"weight_peep", (getter)cell_get_weight, NULL, "(3, H) peepholes for i, f, o, or None", (void *)4},
    {"weight_hr", (getter)cell_get_weight, NULL, "(P, H) LSTM projection, or None", (void *)5},
    {"ln_weight_ih", (getter)cell_get_weight, NULL, "(G*H,) gain of the input layer norm, or None",
     (void *)6},
    {"ln_weight_hh", (getter)cell_get_weight, NULL,
     "(G*H,) gain of the recurrent layer norm, or None", (void *)7},
    {"ln_c", (getter)cell_get_weight, NULL,
     "(2, H) LSTM cell-state layer norm: gain, bias; or None", (void *)8},
    {"proj_size", (getter)cell_get_proj_size, NULL, "P, the LSTM projection size (0 = none)", NULL},
    {"layer_norm", (getter)cell_get_layer_norm, NULL, "whether the cell is layer-normalised", NULL},
    {"params", (getter)cell_get_params, NULL, "(num_params,) the flat parameter vector", NULL},
    {"grads", (getter)cell_get_grads, NULL, "(num_params,) the flat gradient vector", NULL},
    {"input_size", (getter)cell_get_input_size, NULL, "I", NULL},
    {"hidden_size", (getter)cell_get_hidden_size, NULL, "H", NULL},
    {"dtype", (getter)cell_get_dtype, NULL, "'float32' or 'float64'", NULL},
    {"num_params", (getter)cell_get_num_params, NULL, "length of params", NULL},
    {"kind", (getter)cell_get_kind, NULL, "the cell kind", NULL},
    {"has_cache", (getter)cell_get_has_cache, NULL, "whether backward() has a forward to use", NULL},
    {"threads", (getter)cell_get_threads, (setter)cell_set_threads,
     "threads each forward/backward may use (results are bit-identical run to run at a fixed count)",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

#define FORWARD_DOC_COMMON                                                                  \
    "x: (T, B, I), or (B, T, I) with batch_first=True; any real array-like.\n"              \
    "lengths: optional (B,) integers in [0, T]; steps t >= lengths[b] leave sequence b's\n" \
    "state unchanged, output zeros and get no gradient.\n"                                  \
    "reverse: run each sequence from its last valid step to its first.\n"                   \
    "rec_mask: optional (B, Hs) recurrent-dropout mask multiplying h_{t-1} where it\n"    \
    "enters W_hh (Hs = P with a projection, else H).\n"                                     \
    "zoneout_h: optional zoneout of h, values in [0, 1]: shaped like x with Hs features\n" \
    "(1 keeps h_{t-1}, 0 takes the new h), or (Hs,) for every step (evaluation: the\n"    \
    "probability); h_t = z*h_{t-1} + (1-z)*h~_t. The masks are kept for backward.\n"      \
    "Returns out shaped like x with Hs features, and the final state (B, Hs).\n"           \
    "Keeps what backward() needs; the GIL is released while the kernel runs."

static PyMethodDef lstm_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))cell_forward, METH_VARARGS | METH_KEYWORDS,
     "forward(x, h0=None, c0=None, lengths=None, *, reverse=False, batch_first=False,"
     " rec_mask=None, zoneout_h=None, zoneout_c=None) -> (out, hT, cT)\n\n" FORWARD_DOC_COMMON
     "\nzoneout_c: the same for the cell state c, with H features."},
    {"backward", (PyCFunction)(void (*)(void))cell_backward, METH_VARARGS | METH_KEYWORDS,
     "backward(dout=None, dhT=None, dcT=None) -> (dx, dh0, dc0)\n\n"
     "Gradients for the most recent forward; None means zeros. Parameter gradients are\n"
     "added into grads."},
    {"zero_grad", (PyCFunction)cell_zero_grad, METH_NOARGS, "Sets grads to zero."},
    {"clear_cache", (PyCFunction)cell_clear_cache, METH_NOARGS, "Frees what forward kept."},
    {"layout", (PyCFunction)cell_layout_list, METH_NOARGS,
     "[(name, offset, shape), ...] of the named parameters inside params."},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef plain_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))cell_forward, METH_VARARGS | METH_KEYWORDS,
     "forward(x, h0=None, lengths=None, *, reverse=False, batch_first=False, rec_mask=None,"
     " zoneout_h=None) -> (out, hT)\n\n"
     FORWARD_DOC_COMMON},
    {"backward", (PyCFunction)(void (*)(void))cell_backward, METH_VARARGS | METH_KEYWORDS,
     "backward(dout=None, dhT=None) -> (dx, dh0)\n\n"
     "Gradients for the most recent forward; None means zeros. Parameter gradients are\n"
     "added into grads."},
    {"zero_grad", (PyCFunction)cell_zero_grad, METH_NOARGS, "Sets grads to zero."},
    {"clear_cache", (PyCFunction)cell_clear_cache, METH_NOARGS, "Frees what forward kept."},
    {"layout", (PyCFunction)cell_layout_list, METH_NOARGS,
     "[(name, offset, shape), ...] of the named parameters inside params."},
    {NULL, NULL, 0, NULL},
};

#define CELL_SLOTS(INIT, METHODS, DOC)                                 \
    {Py_tp_doc, (void *)(DOC)}, {Py_tp_init, (void *)(INIT)},          \
    {Py_tp_new, (void *)PyType_GenericNew},                            \
    {Py_tp_dealloc, (void *)cell_dealloc},                             \
    {Py_tp_traverse, (void *)cell_traverse},                           \
    {Py_tp_clear, (void *)cell_clear}, {Py_tp_methods, (void *)(METHODS)}, \
    {Py_tp_getset, (void *)cell_getset}, {0, NULL}

static PyType_Slot rnn_slots[] = {CELL_SLOTS(
    rnncell_init, plain_methods,
    "RNNCell(input_size, hidden_size, *, nonlinearity='tanh', dtype='float32', params=None,"
    " grads=None)\n\nOne Elman RNN layer in one direction:\n"
    "h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act tanh or relu.\n"
    "params/grads: optional flat vectors of num_params values, used in place.")};
static PyType_Slot lstm_slots[] = {CELL_SLOTS(
    lstmcell_init, lstm_methods,
    "LSTMCell(input_size, hidden_size, *, peephole=False, proj_size=0, layer_norm=False,"
    " dtype='float32', params=None,"
    " grads=None)\n\nOne LSTM layer in one direction, gates i, f, g, o as in PyTorch;\n"
    "with peephole=True, i and f also see c_{t-1} and o sees c_t through weight_peep (3, H).\n"
    "params/grads: optional flat vectors of num_params values, used in place.")};
static PyType_Slot gru_slots[] = {CELL_SLOTS(
    grucell_init, plain_methods,
    "GRUCell(input_size, hidden_size, *, layer_norm=False, dtype='float32', params=None,"
    " grads=None)\n\n"
    "One GRU layer in one direction, gates r, z, n as in PyTorch:\n"
    "n = tanh(W_in x + b_in + r*(W_hn h + b_hn)), h_t = (1-z)*n + z*h_{t-1}.\n"
    "params/grads: optional flat vectors of num_params values, used in place.")};

static PyType_Spec rnn_spec = {"rnnpy._core.RNNCell", sizeof(CellObject), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, rnn_slots};
static PyType_Spec lstm_spec = {"rnnpy._core.LSTMCell", sizeof(CellObject), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, lstm_slots};
static PyType_Spec gru_spec = {"rnnpy._core.GRUCell", sizeof(CellObject), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, gru_slots};

/* ------------------------------------------------------------------ gemm */

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
    if (!(a = as_real_array(a_obj, "a", typenum)) || !(b = as_real_array(b_obj, "b", typenum)))
        goto error;
    if (PyArray_NDIM(a) != 2 || PyArray_NDIM(b) != 2) {
        PyErr_SetString(PyExc_ValueError, "a, b: expected 2-D arrays");
        goto error;
    }
    npy_intp M = ta ? PyArray_DIM(a, 1) : PyArray_DIM(a, 0), K = ta ? PyArray_DIM(a, 0) : PyArray_DIM(a, 1);
    npy_intp K2 = tb ? PyArray_DIM(b, 1) : PyArray_DIM(b, 0), N = tb ? PyArray_DIM(b, 0) : PyArray_DIM(b, 1);
    if (K != K2) {
        PyErr_Format(PyExc_ValueError, "b: expected %zd rows of op(b) to match op(a)'s columns, got %zd",
                     K, K2);
        goto error;
    }
    npy_intp cdims[2] = {M, N};
    if (c_obj != Py_None) {
        if (!PyArray_Check(c_obj) || PyArray_TYPE((PyArrayObject *)c_obj) != typenum ||
            !PyArray_ISCARRAY((PyArrayObject *)c_obj)) {
            PyErr_Format(PyExc_TypeError, "c: expected a C-contiguous writeable %s array",
                         dtype_name(typenum));
            goto error;
        }
        c = (PyArrayObject *)Py_NewRef(c_obj);
        if (check_shape(c, "c", 2, cdims, "(M, N)")) goto error;
        if (overlaps(c, a) || overlaps(c, b)) {   /* the product reads a and b while writing c */
            PyErr_SetString(PyExc_ValueError, "c: must not share memory with a or b");
            goto error;
        }
    } else if (!(c = (PyArrayObject *)PyArray_ZEROS(2, cdims, typenum, 0))) {
        goto error;
    }
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
    int fast = strcmp(impl, "fast") == 0;
    if (!fast && strcmp(impl, "libm") != 0) {
        PyErr_Format(PyExc_ValueError, "impl: expected 'fast' or 'libm', got '%s'", impl);
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
    for (npy_intp i = 0; i < n; i++) {
        float v = xp[i];
        if (which == 0) yp[i] = fast ? rnn_fast_sigmoid_f32(v) : rnn_sigmoid_libm_f32(v);
        else if (which == 1) yp[i] = fast ? rnn_fast_tanh_f32(v) : rnn_tanh_libm_f32(v);
        else yp[i] = fast ? rnn_fast_exp_f32(v) : rnn_exp_f32(v);
    }
    Py_END_ALLOW_THREADS
    Py_DECREF(x);
    return (PyObject *)y;
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
    if (!(a = as_real_array(a_obj, "a", NPY_FLOAT)) || !(b = as_real_array(b_obj, "b", NPY_FLOAT)))
        goto error;
    if (PyArray_NDIM(a) != 2 || PyArray_NDIM(b) != 2) {
        PyErr_SetString(PyExc_ValueError, "a, b: expected 2-D arrays");
        goto error;
    }
    npy_intp M = ta ? PyArray_DIM(a, 1) : PyArray_DIM(a, 0), K = ta ? PyArray_DIM(a, 0) : PyArray_DIM(a, 1);
    npy_intp K2 = tb ? PyArray_DIM(b, 1) : PyArray_DIM(b, 0), N = tb ? PyArray_DIM(b, 0) : PyArray_DIM(b, 1);
    if (K != K2) {
        PyErr_Format(PyExc_ValueError, "b: expected %zd rows of op(b) to match op(a)'s columns, got %zd",
                     K, K2);
        goto error;
    }
    npy_intp cdims[2] = {M, N};
    if (c_obj != Py_None) {
        if (!PyArray_Check(c_obj) || PyArray_TYPE((PyArrayObject *)c_obj) != NPY_FLOAT ||
            !PyArray_ISCARRAY((PyArrayObject *)c_obj)) {
            PyErr_SetString(PyExc_TypeError, "c: expected a C-contiguous writeable float32 array");
            goto error;
        }
        c = (PyArrayObject *)Py_NewRef(c_obj);
        if (check_shape(c, "c", 2, cdims, "(M, N)")) goto error;
        if (overlaps(c, a) || overlaps(c, b)) {
            PyErr_SetString(PyExc_ValueError, "c: must not share memory with a or b");
            goto error;
        }
    } else if (!(c = (PyArrayObject *)PyArray_ZEROS(2, cdims, NPY_FLOAT, 0))) {
        goto error;
    }
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

static PyMethodDef core_methods[] = {
    {"gemm", (PyCFunction)(void (*)(void))core_gemm, METH_VARARGS | METH_KEYWORDS,
     "gemm(a, b, *, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None, isa=None,\n"
     "     threads=1) -> c\n\n"
     "c = alpha * op(a) @ op(b) + beta * c with rnnpy's own GEMM (float64 when a is float64,\n"
     "else float32). isa: 'avx512', 'avx2', 'generic', 'reference' (the plain loop) or None\n"
     "(the best this CPU has). For tests and benchmarks."},
    {"activation", (PyCFunction)(void (*)(void))core_activation, METH_VARARGS | METH_KEYWORDS,
     "activation(x, name, *, impl='fast') -> y\n\n"
     "The float32 gate nonlinearities elementwise: name 'sigmoid', 'tanh' or 'exp'; impl\n"
     "'fast' (what the float32 kernels use; exp needs x in [-87, 88]) or 'libm'. For tests."},
    {"gemm_isa", (PyCFunction)core_gemm_isa, METH_NOARGS,
     "Name of the GEMM micro-kernel this CPU uses."},
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

/* --------------------------------------------------------------- module */

static int core_exec(PyObject *m) {
    if (PyArray_ImportNumPyAPI() < 0) return -1;
    module_state *st = PyModule_GetState(m);
    st->rnn_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &rnn_spec, NULL);
    if (!st->rnn_type || PyModule_AddType(m, st->rnn_type) < 0) return -1;
    st->lstm_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &lstm_spec, NULL);
    if (!st->lstm_type || PyModule_AddType(m, st->lstm_type) < 0) return -1;
    st->gru_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &gru_spec, NULL);
    if (!st->gru_type || PyModule_AddType(m, st->gru_type) < 0) return -1;
    return 0;
}

static int core_traverse(PyObject *m, visitproc visit, void *arg) {
    module_state *st = PyModule_GetState(m);
    Py_VISIT(st->rnn_type);
    Py_VISIT(st->lstm_type);
    Py_VISIT(st->gru_type);
    return 0;
}

static int core_clear(PyObject *m) {
    module_state *st = PyModule_GetState(m);
    Py_CLEAR(st->rnn_type);
    Py_CLEAR(st->lstm_type);
    Py_CLEAR(st->gru_type);
    return 0;
}

static void core_free(void *m) {
    core_clear((PyObject *)m);
    module_state *st = PyModule_GetState((PyObject *)m);
    if (st) {
        rnn_pool_free(st->pool); /* stops and joins its threads (a stale one: dropped) */
        st->pool = NULL;
    }
}

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, (void *)core_exec},
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rnnpy._core",
    .m_doc = "C kernels of rnnpy: RNN, LSTM and GRU cells over whole sequences, and the GEMM.",
    .m_size = sizeof(module_state),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&core_module); }
