/*
 * py_cell_type.c: the three cell types of rnnpy._core (RNNCell, LSTMCell,
 * GRUCell), each one layer in one direction. Its parameters live in one
 * flat NumPy vector (given by the caller, so that a whole model can share
 * one buffer), named arrays are views of it, and `layout()` tells where each
 * name lives. Heap types from PyType_Spec with full GC slots; forward and
 * backward are in py_cell_call.c.
 */
#include "py_binding.h" /* first: Python.h must precede the system headers */

#include <string.h>

/* PyTorch's order (w_ih, w_hh, b_ih, b_hh, then w_hr), our peepholes before
 * the projection, the layer-norm gains (and the LSTM's cell-norm gain and
 * bias) last. */
cell_layout layout_of(int kind, int64_t I, int64_t H, const rnn_ext_config *cfg) {
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

/* ------------------------------------------------------------ lifetime */

static void buf_free(cell_buf *b) {
    PyMem_RawFree(b->p);
    b->p = NULL;
    b->n = 0;
}

void cell_free_cache(CellObject *self) {
    buf_free(&self->cache);
    buf_free(&self->x_saved);
    buf_free(&self->lengths);
    buf_free(&self->m_rec);
    buf_free(&self->m_zh);
    buf_free(&self->m_zc);
    buf_free(&self->scratch[0]);
    buf_free(&self->scratch[1]);
    buf_free(&self->gemm_ws);
    self->have_cache = 0;
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
    self->compute = RNN_COMPUTE_NATIVE;
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

int cell_ready(CellObject *self, const char *where) {
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

static PyObject *cell_get_compute_dtype(CellObject *self, void *Py_UNUSED(c)) {
    if (cell_ready(self, "compute_dtype")) return NULL;
    return PyUnicode_FromString(self->compute == RNN_COMPUTE_BF16 ? "bfloat16"
                                                                  : dtype_name(self->typenum));
}
static int cell_set_compute_dtype(CellObject *self, PyObject *value, void *Py_UNUSED(c)) {
    if (!value) {
        PyErr_SetString(PyExc_AttributeError, "compute_dtype: cannot be deleted");
        return -1;
    }
    if (cell_ready(self, "compute_dtype")) return -1;
    const char *own = dtype_name(self->typenum);
    const char *s = PyUnicode_Check(value) ? PyUnicode_AsUTF8(value) : NULL;
    if (PyUnicode_Check(value) && !s) return -1;
    int compute;
    if (s && strcmp(s, own) == 0) {
        compute = RNN_COMPUTE_NATIVE;
    } else if (s && strcmp(s, "bfloat16") == 0) {
        if (self->typenum != NPY_FLOAT) {
            PyErr_Format(PyExc_ValueError,
                         "compute_dtype: 'bfloat16' needs a float32 cell, this one is %s", own);
            return -1;
        }
        compute = RNN_COMPUTE_BF16;
    } else {
        PyErr_Format(PyExc_ValueError, "compute_dtype: expected '%s' or 'bfloat16', got %R", own,
                     value);
        return -1;
    }
    self->compute = compute;
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
    {"compute_dtype", (getter)cell_get_compute_dtype, (setter)cell_set_compute_dtype,
     "precision of the matrix products: the cell's dtype, or 'bfloat16' (float32 cells: operands\n"
     "rounded to bfloat16, float32 sums; state, gates and gradients stay float32). Runs on AMX\n"
     "or AVX512-BF16 where the CPU has them, else on portable C",
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
    "Keeps what backward() needs; the GIL is released while the kernel runs.\n"              \
    "keep_cache=False: inference; nothing is kept, and backward() then refuses (the LSTM\n" \
    "also skips writing its cache, working step by step in small scratch)."

#define BACKWARD_DOC_COMMON                                                                 \
    "Gradients for the most recent forward; None means zeros. Parameter gradients are\n"    \
    "added into grads."

/* the methods every cell type has beside forward and backward, and the end */
#define CELL_COMMON_METHODS                                                                 \
    {"zero_grad", (PyCFunction)cell_zero_grad, METH_NOARGS, "Sets grads to zero."},         \
    {"clear_cache", (PyCFunction)cell_clear_cache, METH_NOARGS, "Frees what forward kept."}, \
    {"layout", (PyCFunction)cell_layout_list, METH_NOARGS,                                  \
     "[(name, offset, shape), ...] of the named parameters inside params."},                \
    {NULL, NULL, 0, NULL},

static PyMethodDef lstm_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))cell_forward, METH_VARARGS | METH_KEYWORDS,
     "forward(x, h0=None, c0=None, lengths=None, *, reverse=False, batch_first=False,"
     " rec_mask=None, zoneout_h=None, zoneout_c=None, keep_cache=True) -> (out, hT, cT)\n\n"
     FORWARD_DOC_COMMON "\nzoneout_c: the same for the cell state c, with H features."},
    {"backward", (PyCFunction)(void (*)(void))cell_backward, METH_VARARGS | METH_KEYWORDS,
     "backward(dout=None, dhT=None, dcT=None) -> (dx, dh0, dc0)\n\n"
     BACKWARD_DOC_COMMON},
    CELL_COMMON_METHODS
};

static PyMethodDef plain_methods[] = {
    {"forward", (PyCFunction)(void (*)(void))cell_forward, METH_VARARGS | METH_KEYWORDS,
     "forward(x, h0=None, lengths=None, *, reverse=False, batch_first=False, rec_mask=None,"
     " zoneout_h=None, keep_cache=True) -> (out, hT)\n\n"
     FORWARD_DOC_COMMON},
    {"backward", (PyCFunction)(void (*)(void))cell_backward, METH_VARARGS | METH_KEYWORDS,
     "backward(dout=None, dhT=None) -> (dx, dh0)\n\n"
     BACKWARD_DOC_COMMON},
    CELL_COMMON_METHODS
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

PyType_Spec rnn_spec = {"rnnpy._core.RNNCell", sizeof(CellObject), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, rnn_slots};
PyType_Spec lstm_spec = {"rnnpy._core.LSTMCell", sizeof(CellObject), 0,
                                Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, lstm_slots};
PyType_Spec gru_spec = {"rnnpy._core.GRUCell", sizeof(CellObject), 0,
                               Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, gru_slots};
