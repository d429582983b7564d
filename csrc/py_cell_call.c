/*
 * py_cell_call.c: forward() and backward() of the cell types. Each validates
 * and converts its arguments, allocates the outputs, releases the GIL around
 * one kernel of cells_ext.h (picked from a table by cell family and dtype; a
 * plain cell runs it with a zero config) and turns its status into an
 * exception.
 *
 * What forward keeps for backward (the cache, a copy of x, the lengths and
 * the masks) and both kernels' scratch stay with the cell between calls and
 * are reused in place while their size is unchanged (same T, B, dtype and
 * options), so that a training step does not fault in fresh pages each call;
 * a block whose size changes is replaced, so memory follows the last shape.
 * Backward sees exactly its forward's cache: a forward that fails before its
 * kernel leaves the previous cache alone, one whose kernel fails after
 * overwriting it leaves nothing to differentiate.
 *
 * An object runs one call at a time: a second thread entering while the
 * first is inside gets a RuntimeError, never a corrupted cache.
 */
#include "py_binding.h" /* first: Python.h must precede the system headers */

#include <string.h>

#include "gemm.h"

/* ------------------------------------------------------- dispatch table */

/* Everything one kernel call reads or writes; a field the call does not
 * use is NULL. params/grads are the flat vectors, L where each name lives. */
typedef struct {
    void *out, *hT, *cT, *cache;            /* forward writes (cache: backward reads) */
    const void *x, *h0, *c0;                /* x: the input, or backward's saved copy */
    void *dx, *dh0, *dc0;                   /* backward adds into */
    const void *dout, *dhT, *dcT;
    const char *params;
    char *grads;
    cell_layout L;
    const void *rec, *zh, *zc;              /* masks */
    int64_t zh_ld, zc_ld;
    const rnn_ext_config *cfg;
    const int64_t *lengths;
    const rnn_dims *d;
    void *work, *gemm_ws;
} kernel_call;

typedef int (*kernel_fn)(const kernel_call *c);
typedef struct {
    kernel_fn forward, backward;
} cell_kernels;

enum { FAMILY_RNN, FAMILY_LSTM, FAMILY_GRU, N_FAMILIES };

static int family_of(int kind) {
    return kind == RNN_CELL_GRU ? FAMILY_GRU
         : (kind == RNN_CELL_LSTM || kind == RNN_CELL_PEEPHOLE) ? FAMILY_LSTM : FAMILY_RNN;
}

/* forward and backward calls of a cell whose only state is h (rnn, gru:
 * RNNPY_DECLARE_H_CELL in cells_ext.h) */
#define DEFINE_H_CELL_CALLS(CELL, SFX)                                                        \
    static int CELL##_fwd_##SFX(const kernel_call *c) {                                        \
        rnn_ext_params_##SFX p = params_##SFX(c, c->params, 0);                                \
        rnn_ext_masks_##SFX m = masks_##SFX(c);                                                \
        return CELL##_ext_forward_##SFX(c->out, c->hT, c->cache, c->x, c->h0, &p, &m, c->cfg,  \
                                        c->lengths, c->d, c->work, c->gemm_ws);                \
    }                                                                                          \
    static int CELL##_bwd_##SFX(const kernel_call *c) {                                        \
        rnn_ext_params_##SFX p = params_##SFX(c, c->params, 0);                                \
        rnn_ext_grads_##SFX g = grads_##SFX(c, 0);                                             \
        rnn_ext_masks_##SFX m = masks_##SFX(c);                                                \
        return CELL##_ext_backward_##SFX(c->dx, c->dh0, &g, c->dout, c->dhT, c->cache, c->x,   \
                                         &p, &m, c->cfg, c->lengths, c->d, c->work,            \
                                         c->gemm_ws);                                          \
    }

/* The kernels' parameter, gradient and mask structs of one call, per dtype:
 * fields whose option is off stay NULL; then one forward and one backward
 * adapter per cell family. */
#define DEFINE_KERNEL_CALLS(REAL, SFX)                                                         \
    static rnn_ext_params_##SFX params_##SFX(const kernel_call *c, const char *base, int lstm) { \
        const cell_layout *L = &c->L;                                                          \
        const REAL *b = (const REAL *)base;                                                    \
        rnn_ext_params_##SFX p = {.w_ih = b + L->w_ih, .w_hh = b + L->w_hh,                   \
                                  .b_ih = b + L->b_ih, .b_hh = b + L->b_hh};                  \
        if (c->cfg->peephole) p.w_peep = b + L->peep;                                          \
        if (c->cfg->P > 0) p.w_hr = b + L->w_hr;                                               \
        if (c->cfg->layer_norm) {                                                              \
            p.ln_ih = b + L->ln_ih;                                                            \
            p.ln_hh = b + L->ln_hh;                                                            \
            if (lstm) p.ln_c = b + L->ln_c;                                                    \
        }                                                                                      \
        return p;                                                                              \
    }                                                                                          \
    static rnn_ext_grads_##SFX grads_##SFX(const kernel_call *c, int lstm) {                   \
        rnn_ext_params_##SFX p = params_##SFX(c, c->grads, lstm);                              \
        return (rnn_ext_grads_##SFX){(REAL *)p.w_ih,  (REAL *)p.w_hh,  (REAL *)p.b_ih,         \
                                     (REAL *)p.b_hh,  (REAL *)p.w_peep, (REAL *)p.w_hr,        \
                                     (REAL *)p.ln_ih, (REAL *)p.ln_hh, (REAL *)p.ln_c};        \
    }                                                                                          \
    static rnn_ext_masks_##SFX masks_##SFX(const kernel_call *c) {                             \
        return (rnn_ext_masks_##SFX){.rec = c->rec, .zh = c->zh, .zh_ld = c->zh_ld,            \
                                     .zc = c->zc, .zc_ld = c->zc_ld};                         \
    }                                                                                          \
    DEFINE_H_CELL_CALLS(rnn, SFX)                                                              \
    static int lstm_fwd_##SFX(const kernel_call *c) {                                          \
        rnn_ext_params_##SFX p = params_##SFX(c, c->params, 1);                                \
        rnn_ext_masks_##SFX m = masks_##SFX(c);                                                \
        return lstm_ext_forward_##SFX(c->out, c->hT, c->cT, c->cache, c->x, c->h0, c->c0, &p,  \
                                      &m, c->cfg, c->lengths, c->d, c->work, c->gemm_ws);      \
    }                                                                                          \
    static int lstm_bwd_##SFX(const kernel_call *c) {                                          \
        rnn_ext_params_##SFX p = params_##SFX(c, c->params, 1);                                \
        rnn_ext_grads_##SFX g = grads_##SFX(c, 1);                                             \
        rnn_ext_masks_##SFX m = masks_##SFX(c);                                                \
        return lstm_ext_backward_##SFX(c->dx, c->dh0, c->dc0, &g, c->dout, c->dhT, c->dcT,     \
                                       c->cache, c->x, &p, &m, c->cfg, c->lengths, c->d,       \
                                       c->work, c->gemm_ws);                                   \
    }                                                                                          \
    DEFINE_H_CELL_CALLS(gru, SFX)
DEFINE_KERNEL_CALLS(float, f32)
DEFINE_KERNEL_CALLS(double, f64)

/* cell family x dtype (float32, float64) -> its kernels */
static const cell_kernels KERNELS[N_FAMILIES][2] = {
    [FAMILY_RNN] = {{rnn_fwd_f32, rnn_bwd_f32}, {rnn_fwd_f64, rnn_bwd_f64}},
    [FAMILY_LSTM] = {{lstm_fwd_f32, lstm_bwd_f32}, {lstm_fwd_f64, lstm_bwd_f64}},
    [FAMILY_GRU] = {{gru_fwd_f32, gru_bwd_f32}, {gru_fwd_f64, gru_bwd_f64}},
};

static const cell_kernels *kernels_of(const CellObject *self) {
    return &KERNELS[family_of(self->kind)][self->typenum == NPY_FLOAT ? 0 : 1];
}

/* ------------------------------------------------------- kept buffers */

/* n bytes to write into: b's own block when it already has n bytes (reused
 * in place, *fresh = NULL), else a new block in *fresh that replaces b's at
 * buf_commit. NULL for n = 0 (nothing to keep), or with MemoryError. */
static void *buf_take(cell_buf *b, size_t n, void **fresh) {
    *fresh = NULL;
    if (n == 0) return NULL;
    if (b->p && b->n == n) return b->p;
    if (!(*fresh = PyMem_RawMalloc(n))) PyErr_NoMemory();
    return *fresh;
}

/* Makes the block that buf_take gave for n bytes b's own (an unused old one
 * is freed). */
static void buf_commit(cell_buf *b, void *fresh, size_t n) {
    if (fresh || n == 0) {
        PyMem_RawFree(b->p);
        b->p = fresh;
        b->n = n;
    }
}

/* b's block resized to exactly n bytes (kept when it has that size, else
 * the old one freed first) and its first 64-byte-aligned address; NULL with
 * MemoryError. */
static void *block_fit(cell_buf *b, size_t n) {
    if (n > SIZE_MAX - 64) {
        PyErr_NoMemory();
        return NULL;
    }
    n += 64;
    if (!b->p || b->n != n) {
        PyMem_RawFree(b->p);
        b->n = 0;
        if (!(b->p = PyMem_RawMalloc(n))) {
            PyErr_NoMemory();
            return NULL;
        }
        b->n = n;
    }
    return (void *)(((uintptr_t)b->p + 63) & ~(uintptr_t)63);
}

/* The scratch of one direction (0 forward, 1 backward), work_len reals, and
 * the GEMM workspace for `threads` threads in *gemm_ws; NULL with an error. */
static void *scratch_take(CellObject *self, int dir, int64_t work_len, size_t es, int threads,
                          void **gemm_ws) {
    if (work_len < 0 || (uint64_t)work_len > SIZE_MAX / 2 / es) {
        PyErr_NoMemory();
        return NULL;
    }
    size_t gbytes = rnn_gemm_workspace_size() * (size_t)(threads > 1 ? threads : 1);
    if (!(*gemm_ws = block_fit(&self->gemm_ws, gbytes))) return NULL;
    return block_fit(&self->scratch[dir], (size_t)work_len * es);
}

/* -------------------------------------------------------------- forward */

static PyObject *cell_forward_impl(CellObject *self, PyObject *args, PyObject *kw) {
    static char *kw_lstm[] = {"x", "h0", "c0", "lengths", "reverse", "batch_first", "rec_mask",
                              "zoneout_h", "zoneout_c", "keep_cache", NULL};
    static char *kw_plain[] = {"x", "h0", "lengths", "reverse", "batch_first", "rec_mask",
                               "zoneout_h", "keep_cache", NULL};
    PyObject *x_obj, *h0_obj = Py_None, *c0_obj = Py_None, *len_obj = Py_None;
    PyObject *rec_obj = Py_None, *zh_obj = Py_None, *zc_obj = Py_None;
    int reverse = 0, batch_first = 0, keep = 1;
    PyArrayObject *x = NULL, *h0 = NULL, *c0 = NULL, *out = NULL, *hT = NULL, *cT = NULL;
    PyArrayObject *rec = NULL, *zh = NULL, *zc = NULL;
    int64_t *lengths = NULL;
    /* the kept blocks (cache, x, lengths, three masks): new ones until commit */
    enum { K_CACHE, K_X, K_LEN, K_REC, K_ZH, K_ZC, N_KEPT };
    void *fresh[N_KEPT] = {NULL};
    PyObject *result = NULL;
    const int lstm = is_lstm(self);

    if (lstm) {
        if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOO$ppOOOp:forward", kw_lstm, &x_obj,
                                         &h0_obj, &c0_obj, &len_obj, &reverse, &batch_first,
                                         &rec_obj, &zh_obj, &zc_obj, &keep))
            return NULL;
    } else if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OO$ppOOp:forward", kw_plain, &x_obj,
                                            &h0_obj, &len_obj, &reverse, &batch_first, &rec_obj,
                                            &zh_obj, &keep)) {
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

    rnn_dims d = {.T = T, .B = B, .I = self->I, .H = H,
                  .ts = batch_first ? 1 : B, .bs = batch_first ? T : 1,
                  .ldx = self->I, .ldo = Hs, .reverse = reverse, .threads = self->threads,
                  .pool = pool_of(state_of_type(Py_TYPE(self)), self->threads),
                  .compute = self->compute, .inference = !keep};
    int64_t cache_len = rnn_ext_cache_len(self->kind, &d, &self->cfg);
    int64_t work_len = rnn_ext_forward_work_len(self->kind, &d, &self->cfg);
    int64_t x_len = rnn_mul(rnn_mul(T, B), self->I);
    if (rnn_ext_dims_check(self->kind, &d, &self->cfg) || cache_len < 0 || work_len < 0 ||
        x_len < 0 || (uint64_t)cache_len > SIZE_MAX / es / 2 || (uint64_t)x_len > SIZE_MAX / es / 2) {
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
    /* where forward's keepings go: each in place when its size is unchanged */
    cell_buf *kept[N_KEPT] = {&self->cache, &self->x_saved, &self->lengths,
                              &self->m_rec, &self->m_zh, &self->m_zc};
    PyArrayObject *masks[3] = {rec, zh, zc};
    /* keep_cache=False keeps nothing for backward (and the kernels need no
     * cache then: cache_len is 0) */
    size_t size[N_KEPT] = {(size_t)cache_len * es, keep ? (size_t)x_len * es : 0,
                           keep && lengths ? (size_t)B * sizeof(int64_t) : 0};
    void *dst[N_KEPT];
    for (int k = K_REC; k < N_KEPT; k++)
        size[k] = keep && masks[k - K_REC] ? (size_t)PyArray_NBYTES(masks[k - K_REC]) : 0;
    int in_place = 0;
    for (int k = 0; k < N_KEPT; k++) {
        dst[k] = buf_take(kept[k], size[k], &fresh[k]);
        if (size[k] && !dst[k]) goto error;
        in_place |= size[k] && !fresh[k];
    }
    void *gemm_ws = NULL;
    void *work = scratch_take(self, 0, work_len, es, self->threads, &gemm_ws);
    if (!work) goto error;
    for (int k = K_REC; k < N_KEPT; k++)
        if (size[k]) memcpy(dst[k], PyArray_DATA(masks[k - K_REC]), size[k]);
    if (size[K_LEN]) memcpy(dst[K_LEN], lengths, size[K_LEN]);
    if (!keep) { /* the call reads the arrays themselves */
        dst[K_LEN] = lengths;
        for (int k = K_REC; k < N_KEPT; k++)
            dst[k] = masks[k - K_REC] ? PyArray_DATA(masks[k - K_REC]) : NULL;
    }

    /* from here the kept blocks reused in place hold the new call's data */
    const int had_cache = self->have_cache;
    if (in_place) self->have_cache = 0;
    int st;
    {
        kernel_call c = {.out = PyArray_DATA(out), .hT = PyArray_DATA(hT),
                         .cT = cT ? PyArray_DATA(cT) : NULL, .cache = dst[K_CACHE],
                         .x = PyArray_DATA(x), .h0 = h0 ? PyArray_DATA(h0) : NULL,
                         .c0 = c0 ? PyArray_DATA(c0) : NULL,
                         .params = PyArray_BYTES(self->params),
                         .L = layout_of(self->kind, self->I, self->H, &self->cfg),
                         .rec = dst[K_REC], .zh = dst[K_ZH], .zc = dst[K_ZC],
                         .zh_ld = zh_ld, .zc_ld = zc_ld, .cfg = &self->cfg,
                         .lengths = dst[K_LEN], .d = &d, .work = work, .gemm_ws = gemm_ws};
        kernel_fn forward = kernels_of(self)->forward;
        void *x_saved = dst[K_X];
        size_t x_bytes = size[K_X];
        Py_BEGIN_ALLOW_THREADS
        if (x_bytes) memcpy(x_saved, c.x, x_bytes);
        st = forward(&c);
        Py_END_ALLOW_THREADS
    }
    if (st) {
        if (!in_place) self->have_cache = had_cache;
        raise_status("forward", st);
        goto error;
    }
    /* the new cache replaces the old one only once the kernel succeeded
     * (without keep_cache, the blocks it did not use stay for later calls) */
    for (int k = 0; k < N_KEPT; k++) {
        if (keep || size[k]) buf_commit(kept[k], fresh[k], size[k]);
        fresh[k] = NULL;
    }
    self->dims = d;
    self->batch_first = batch_first;
    self->have_cache = keep;
    self->zh_ld = zh_ld;
    self->zc_ld = zc_ld;
    result = lstm ? PyTuple_Pack(3, out, hT, cT) : PyTuple_Pack(2, out, hT);
error:
    for (int k = 0; k < N_KEPT; k++) PyMem_RawFree(fresh[k]);
    PyMem_RawFree(lengths);
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
    PyObject *result = NULL;
    const int lstm = is_lstm(self);

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
                        self->dims.inference
                            ? "backward: nothing to differentiate; the last forward kept nothing "
                              "(keep_cache=False): call forward with keep_cache=True first"
                            : "backward: nothing to differentiate; call forward first");
        return NULL;
    }
    rnn_dims d = self->dims;
    d.threads = self->threads; /* the count set now, not at forward */
    d.pool = pool_of(state_of_type(Py_TYPE(self)), d.threads);
    const int typenum = self->typenum;
    const size_t es = elsize_of(typenum);
    const int64_t Hs = state_size(self);
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
    int64_t work_len = rnn_ext_backward_work_len(self->kind, &d, &self->cfg);
    void *work = scratch_take(self, 1, work_len, es, d.threads, &gemm_ws);
    if (!work) goto error;
    int st;
    {
        kernel_call c = {.cache = self->cache.p, .x = self->x_saved.p,
                         .dx = PyArray_DATA(dx), .dh0 = PyArray_DATA(dh0),
                         .dc0 = dc0 ? PyArray_DATA(dc0) : NULL,
                         .dout = dout ? PyArray_DATA(dout) : NULL,
                         .dhT = dhT ? PyArray_DATA(dhT) : NULL,
                         .dcT = dcT ? PyArray_DATA(dcT) : NULL,
                         .params = PyArray_BYTES(self->params), .grads = PyArray_BYTES(self->grads),
                         .L = layout_of(self->kind, self->I, self->H, &self->cfg),
                         .rec = self->m_rec.p, .zh = self->m_zh.p, .zc = self->m_zc.p,
                         .zh_ld = self->zh_ld, .zc_ld = self->zc_ld, .cfg = &self->cfg,
                         .lengths = self->lengths.p, .d = &d, .work = work, .gemm_ws = gemm_ws};
        kernel_fn backward = kernels_of(self)->backward;
        Py_BEGIN_ALLOW_THREADS
        st = backward(&c);
        Py_END_ALLOW_THREADS
    }
    if (st) { raise_status("backward", st); goto error; }
    result = lstm ? PyTuple_Pack(3, dx, dh0, dc0) : PyTuple_Pack(2, dx, dh0);
error:
    Py_XDECREF(dout);
    Py_XDECREF(dhT);
    Py_XDECREF(dcT);
    Py_XDECREF(dx);
    Py_XDECREF(dh0);
    Py_XDECREF(dc0);
    return result;
}

/* forward/backward hold the busy flag for the whole call, not just around the
 * kernel: converting an argument can run Python code (__array__, __bool__,
 * __index__) that calls back into this cell, or another thread can enter while
 * the GIL is released; either must get a RuntimeError, never a cache, buffers
 * or sizes that change under the running call. */
static PyObject *cell_call_busy(CellObject *self, const char *what,
                                PyObject *(*impl)(CellObject *, PyObject *, PyObject *),
                                PyObject *args, PyObject *kw) {
    if (cell_ready(self, what)) return NULL;
    self->busy = current_pid();
    PyObject *result = impl(self, args, kw);
    self->busy = 0;
    return result;
}

PyObject *cell_forward(CellObject *self, PyObject *args, PyObject *kw) {
    return cell_call_busy(self, "forward", cell_forward_impl, args, kw);
}

PyObject *cell_backward(CellObject *self, PyObject *args, PyObject *kw) {
    return cell_call_busy(self, "backward", cell_backward_impl, args, kw);
}
