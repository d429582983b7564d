/*
 * py_module.c: the module rnnpy._core itself: its state (the cell types and
 * the kernels' thread pool), multi-phase init and its constants. The other
 * py_*.c files hold the types and functions it exports (see py_binding.h).
 */
#define RNNPY_IMPORTS_NUMPY
#include "py_binding.h"

#ifdef _WIN32
#include <process.h>
#define getpid _getpid
#else
#include <unistd.h>
#endif

static struct PyModuleDef core_module;

long current_pid(void) { return (long)getpid(); }

/* The module state of the module that defined tp (or a base of tp), or NULL. */
module_state *state_of_type(PyTypeObject *tp) {
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
rnn_pool *pool_of(module_state *st, int threads) {
    if (!st || threads <= 1) return NULL;
    if (st->pool && rnn_pool_stale(st->pool)) {
        rnn_pool_abandon(st->pool);
        st->pool = NULL;
    }
    if (!st->pool) st->pool = rnn_pool_new();
    return st->pool;
}

/* --------------------------------------------------------------- module */

static int core_exec(PyObject *m) {
    if (PyArray_ImportNumPyAPI() < 0) return -1;
    if (PyModule_AddFunctions(m, optim_methods) < 0) return -1;
    module_state *st = PyModule_GetState(m);
    st->rnn_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &rnn_spec, NULL);
    if (!st->rnn_type || PyModule_AddType(m, st->rnn_type) < 0) return -1;
    st->lstm_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &lstm_spec, NULL);
    if (!st->lstm_type || PyModule_AddType(m, st->lstm_type) < 0) return -1;
    st->gru_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &gru_spec, NULL);
    if (!st->gru_type || PyModule_AddType(m, st->gru_type) < 0) return -1;
    /* the most threads a call may use, for the Python layer's own checks */
    if (PyModule_AddIntConstant(m, "MAX_THREADS", RNN_MAX_THREADS) < 0) return -1;
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
