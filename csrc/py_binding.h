/*
 * py_binding.h: what the files of the CPython/NumPy module rnnpy._core share.
 * The module is the only part of csrc/ that sees Python (the py_*.c files);
 * the kernels it calls are cells_ext.h's and gemm.h's.
 *
 *   py_module.c     module state, the thread pool, module init and constants
 *   py_convert.c    argument conversion and checks (arrays, shapes, sizes)
 *   py_cell_type.c  the cell types: construction, parameter layout, getters
 *   py_cell_call.c  forward/backward: the dispatch table and reused buffers
 *   py_gemm.c       the GEMM, bfloat16 and activation functions for tests
 *   py_optim.c      the optimizer update over flat vectors (optim_ops.h)
 */
#ifndef RNNPY_PY_BINDING_H
#define RNNPY_PY_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#ifndef RNNPY_IMPORTS_NUMPY
#define NO_IMPORT_ARRAY
#endif
#define PY_ARRAY_UNIQUE_SYMBOL rnnpy_core_ARRAY_API
#include <numpy/arrayobject.h>
/* NumPy pulls in <complex.h>, whose macro I (the imaginary unit) would
 * swallow our dimension key's I (input features). */
#undef I

#include "cells_ext.h"
#include "pool.h"

/* ---------------------------------------------------------------- module */

typedef struct {
    PyTypeObject *rnn_type;
    PyTypeObject *lstm_type;
    PyTypeObject *gru_type;
    rnn_pool *pool;         /* the kernels' threads, made on first need (see pool_of) */
} module_state;

/* The module state of the module that defined tp (or a base of tp), or NULL. */
module_state *state_of_type(PyTypeObject *tp);
/* The pool a kernel call on `threads` threads runs on, or NULL (the calling
 * thread alone, with the same results). Called with the GIL held. */
rnn_pool *pool_of(module_state *st, int threads);
/* This process's id, as the busy flag records it. */
long current_pid(void);

/* ---------------------------------------------------------- the cell type */

/* A block of memory a cell keeps between calls, reused while its size stays
 * the same, released when it changes (PyMem_RawMalloc). */
typedef struct {
    void *p;
    size_t n;               /* bytes */
} cell_buf;

typedef struct {
    PyObject_HEAD
    int kind;               /* rnn_cell_kind */
    int typenum;            /* NPY_FLOAT or NPY_DOUBLE */
    int64_t I, H;           /* input features, hidden units */
    rnn_ext_config cfg;     /* projection, layer norm (peephole and relu mirror kind) */
    PyArrayObject *params;  /* (num_params,) flat parameters, views are the named weights */
    PyArrayObject *grads;   /* (num_params,) flat gradients, same layout */
    long busy;              /* pid of the process whose call is inside, or 0 (checked
                             * with the GIL held; a copy made by fork mid-call is free
                             * in the child, where the calling thread does not exist) */
    int threads;            /* threads a kernel call may use (>= 1) */
    int compute;            /* rnn_compute: the precision of the kernels' products */
    /* what forward keeps for backward (valid while have_cache) */
    int have_cache;
    rnn_dims dims;
    int batch_first;
    cell_buf cache;         /* rnn_ext_cache_len elements */
    cell_buf x_saved;       /* (R, I) copy of the input, in its layout */
    cell_buf lengths;       /* (B,) int64, or empty: no lengths */
    cell_buf m_rec, m_zh, m_zc; /* copies of the masks that forward used, or empty */
    int64_t zh_ld, zc_ld;
    /* the kernels' scratch, forward's and backward's, and the GEMM workspace
     * both share, reused call to call (not part of what backward needs) */
    cell_buf scratch[2];
    cell_buf gemm_ws;
} CellObject;

/* Offsets of the named parameters inside the flat vector, in elements. */
typedef struct {
    int64_t w_ih, w_hh, b_ih, b_hh, peep, w_hr, ln_ih, ln_hh, ln_c, total;
} cell_layout;

cell_layout layout_of(int kind, int64_t I, int64_t H, const rnn_ext_config *cfg);
/* Hs: units of the recurrent state h (the projection size, else H). */
static inline int64_t state_size(const CellObject *self) {
    return rnn_ext_state_size(&(rnn_dims){.H = self->H}, &self->cfg);
}
static inline int is_lstm(const CellObject *self) {
    return self->kind == RNN_CELL_LSTM || self->kind == RNN_CELL_PEEPHOLE;
}
/* Whether a call of this process is inside the cell. */
static inline int cell_busy(const CellObject *self) {
    return self->busy && self->busy == current_pid();
}
/* 0, or -1 with RuntimeError when the cell is uninitialised or busy. */
int cell_ready(CellObject *self, const char *where);
/* Frees what forward kept and the scratch. */
void cell_free_cache(CellObject *self);

extern PyType_Spec rnn_spec, lstm_spec, gru_spec;

/* py_cell_call.c: the methods that run kernels */
PyObject *cell_forward(CellObject *self, PyObject *args, PyObject *kw);
PyObject *cell_backward(CellObject *self, PyObject *args, PyObject *kw);

/* py_gemm.c: the module's functions */
extern PyMethodDef core_methods[];
/* py_optim.c: the optimizer kernels (added to the module by core_exec) */
extern PyMethodDef optim_methods[];

/* ------------------------------------------------------------ conversion */

static inline size_t elsize_of(int typenum) {
    return typenum == NPY_FLOAT ? sizeof(float) : sizeof(double);
}
static inline const char *dtype_name(int typenum) {
    return typenum == NPY_FLOAT ? "float32" : "float64";
}

int parse_dtype(PyObject *obj, const char *name);
void format_shape(char *buf, size_t n, int ndim, const npy_intp *dims);
PyArrayObject *as_real_array(PyObject *obj, const char *name, int typenum);
int check_shape(PyArrayObject *arr, const char *name, int ndim, const npy_intp *want,
                const char *symbols);
int check_finite(PyArrayObject *arr, const char *name);
PyArrayObject *as_state(PyObject *obj, const char *name, int typenum, int64_t B, int64_t H,
                        const char *symbols);
int parse_lengths(PyObject *obj, int64_t B, int64_t T, int64_t **out);
void raise_status(const char *where, int st);
PyArrayObject *flat_vector(PyObject *obj, const char *name, int typenum, int64_t n);
long long parse_size(PyObject *obj, const char *name);
int overlaps(PyArrayObject *a, PyArrayObject *b);
int parse_threads(PyObject *obj);
long long parse_proj(PyObject *obj, long long H);
PyArrayObject *as_mask(PyObject *obj, const char *name, int typenum, int nd1,
                       const npy_intp *want1, const char *sym1, int nd2, const npy_intp *want2,
                       const char *sym2, int unit, int *which);
/* A scratch block of n_elems reals followed by a 64-byte-aligned GEMM
 * workspace for `threads` threads. *raw is what to free; NULL with
 * MemoryError. */
void *alloc_scratch(int64_t n_elems, size_t elsize, int threads, void **raw, void **gemm_ws);

#endif /* RNNPY_PY_BINDING_H */
