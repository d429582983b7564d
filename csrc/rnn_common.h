/*
 * rnn_common.h: what every C file of the rnnpy core shares.
 *
 * The core is plain C11 over pointers and sizes: no Python, no allocation,
 * no global mutable state. Kernels return a status code; the caller (the
 * CPython module in py_*.c, or a C test) turns it into an error.
 *
 * Dimension key, used in every shape comment of csrc/:
 *   T  time steps            B  batch size
 *   I  input features        H  hidden units
 *   G  gates per cell (RNN 1, LSTM 4, GRU 3); GH = G*H
 *   R  rows of a sequence array = T*B
 *
 * Sequence arrays (x, out, dout, dx and the caches) are 2-D row-major
 * matrices of R rows. The row of time step t and batch entry b is
 *     row(t, b) = t*ts + b*bs
 * with (ts, bs) = (B, 1) for time-major data (T, B, .) and (1, T) for
 * batch-first data (B, T, .), so kernels read either layout in place.
 * Matrices carry their own leading dimension (ld*, in elements) so that a
 * direction of a bidirectional layer can read and write column slices.
 */
#ifndef RNNPY_RNN_COMMON_H
#define RNNPY_RNN_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* Status codes returned by every kernel. */
typedef enum {
    RNN_OK = 0,
    RNN_ERR_NULL = 1,     /* a required pointer was NULL */
    RNN_ERR_SIZE = 2,     /* a size was not positive, or a product overflowed */
    RNN_ERR_LENGTHS = 3,  /* lengths[b] outside [0, T] */
    RNN_ERR_LD = 4,       /* a leading dimension smaller than its row */
    RNN_ERR_WORKSPACE = 5, /* workspace smaller than the kernel asked for */
    RNN_ERR_COMPUTE = 6    /* a compute precision the kernel's dtype does not offer */
} rnn_status;

/* Human-readable text for a status code (static storage, never NULL). */
const char *rnn_status_string(int status);

/* The sizes and layout of one run of a cell over a batch of sequences. */
typedef struct {
    int64_t T;      /* time steps */
    int64_t B;      /* batch size */
    int64_t I;      /* input features */
    int64_t H;      /* hidden units */
    int64_t ts;     /* row stride of one time step (B time-major, 1 batch-first) */
    int64_t bs;     /* row stride of one batch entry (1 time-major, T batch-first) */
    int64_t ldx;    /* leading dimension of x and dx, >= I */
    int64_t ldo;    /* leading dimension of out and dout, >= H */
    int reverse;    /* 0: t runs 0..len-1; 1: t runs len-1..0 (per sequence) */
    int threads;    /* threads the kernel may use; 0 or 1 = the calling thread only.
                     * The GEMM workspace must then hold threads workspaces. */
    struct rnn_pool *pool; /* where the other threads come from (pool.h); NULL: the
                     * calling thread runs everything, with the same results */
    int compute;    /* precision of the products (rnn_compute): RNN_COMPUTE_NATIVE, or
                     * RNN_COMPUTE_BF16 (float32 kernels only) */
    int inference;  /* forward only: 1 keeps no cache for backward (the kernels then work
                     * in step-sized scratch and ignore their cache argument, which may
                     * be NULL; the cache length is 0); backward refuses it */
} rnn_dims;

/* The precision a kernel's matrix products run in. Everything else (gates,
 * states, elementwise work, sums of the small gradients) stays in the
 * kernel's dtype.
 *   NATIVE  the kernel's dtype (float32 or float64)
 *   BF16    float32 kernels: both operands of every product rounded to
 *           bfloat16 (nearest even), float32 accumulation (bf16.h), on
 *           AMX tiles or AVX512-BF16 where the CPU has them */
typedef enum { RNN_COMPUTE_NATIVE = 0, RNN_COMPUTE_BF16 = 1 } rnn_compute;

/* Most threads a kernel call uses (bounds the workspace a caller sizes). */
#define RNN_MAX_THREADS 64

/* The weight bytes a core's L2 (2 MiB here) keeps, step after step, beside
 * the rest of a step (its rows, gates and the GEMM's strips). Two rules
 * read it: a step is split by rows only where each task's whole W_hh fits
 * (rnn_step_split, cell_common.h), and a product of a few rows against a
 * larger weight takes a block of columns per this many bytes, more threads
 * than its multiply-adds alone would ask for (rnn_gemm_weight_threads,
 * gemm.h). */
#ifndef RNN_L2_WEIGHT_BYTES
#define RNN_L2_WEIGHT_BYTES (1536 << 10)
#endif

/* Cell kinds, in the order the glue and the Python layer use. */
typedef enum {
    RNN_CELL_TANH = 0,
    RNN_CELL_RELU = 1,
    RNN_CELL_LSTM = 2,
    RNN_CELL_PEEPHOLE = 3,
    RNN_CELL_GRU = 4
} rnn_cell_kind;

/* Number of gates of a cell kind (1, 4 or 3). */
int rnn_cell_gates(int kind);

/* Checks dims for a kernel call: positive sizes, consistent strides, and
 * leading dimensions; returns RNN_OK or the first error. */
int rnn_dims_check(const rnn_dims *d);

/* The time index that step s of a sequence of length len reads and writes,
 * or -1 when the sequence has ended before step s. */
static inline int64_t rnn_step_time(const rnn_dims *d, int64_t s, int64_t len) {
    if (s >= len) return -1;
    return d->reverse ? len - 1 - s : s;
}

/* Length of sequence b: lengths[b], or T when no lengths are given. */
static inline int64_t rnn_seq_len(const rnn_dims *d, const int64_t *lengths, int64_t b) {
    return lengths ? lengths[b] : d->T;
}

/* Checks that every lengths[b] lies in [0, T]. */
int rnn_lengths_check(const rnn_dims *d, const int64_t *lengths);

/* a+b, or -1 if either is negative (an earlier overflow) or the sum overflows. */
static inline int64_t rnn_add(int64_t a, int64_t b) {
    if (a < 0 || b < 0 || a > INT64_MAX - b) return -1;
    return a + b;
}

/* a*b, or -1 if the product of two non-negative sizes overflows int64. */
static inline int64_t rnn_mul(int64_t a, int64_t b) {
    if (a < 0 || b < 0) return -1;
    if (a != 0 && b > INT64_MAX / a) return -1;
    return a * b;
}

/* The instruction-set paths of a kernel family (gemm.c, gemm_bf16.c), best
 * first, the last one portable C that every CPU runs. */
typedef struct {
    int isa;          /* the family's enum value */
    const char *name; /* as the binding reports it */
} rnn_isa_path;

/* want, if it is one of the n paths and supported(want); else the first
 * supported path (the best this CPU runs). want = -1 asks for the best. */
int rnn_isa_pick(const rnn_isa_path *paths, int n, int (*supported)(int), int want);

/* The name of path isa, or "unknown". */
const char *rnn_isa_path_name(const rnn_isa_path *paths, int n, int isa);

#endif /* RNNPY_RNN_COMMON_H */
