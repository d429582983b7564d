/*
 * pool.h: the core's own thread pool, which runs the parallel parts of a
 * kernel call (the GEMM's column or row blocks, a step's gate rows).
 *
 * A job is `ntasks` independent tasks fn(ctx, 0..ntasks-1); each runs once,
 * on whichever thread claims it first (the calling thread claims too), so
 * a task computes the same bits whatever thread runs it and however many
 * threads there are. That is what keeps results identical for every thread
 * count, and what makes the pool robust:
 *   - a worker that is asleep or descheduled (another process on its core)
 *     does not stall the caller, who takes the tasks no one has claimed;
 *   - a worker that could not be created (no memory for its stack) leaves
 *     its tasks to the others; at worst the caller runs them all;
 *   - a pool made by another process (this one is a child made by fork,
 *     whose copy of the pool has no threads and may hold a claimed lock) is
 *     never waited on: rnn_pool_run runs such a job on the calling thread,
 *     and rnn_pool_stale tells the owner to drop it (rnn_pool_abandon) and
 *     make a new one;
 *   - a job that finds the pool busy with another caller's job runs on its
 *     caller's thread instead of waiting.
 * Idle workers spin briefly (RNN_POOL_SPIN_US), then sleep on a futex (a
 * condition variable off Linux), so a waiting thread gives its core away.
 *
 * Without POSIX threads the pool has no workers and every job runs on the
 * calling thread, with the same results.
 */
#ifndef RNNPY_POOL_H
#define RNNPY_POOL_H

#include <stdint.h>

typedef struct rnn_pool rnn_pool;

/* One task of a job: task in [0, ntasks). */
typedef void (*rnn_pool_fn)(void *ctx, int task);

/* A pool with no workers yet (made as jobs need them), or NULL when out of
 * memory (callers then pass NULL: every job runs on the calling thread). */
rnn_pool *rnn_pool_new(void);

/* Stops and joins the workers and frees the pool; NULL is a no-op. Only in
 * the process that made it (see rnn_pool_abandon) and with no job running. */
void rnn_pool_free(rnn_pool *pool);

/* Whether the pool was made by another process (before a fork). */
int rnn_pool_stale(const rnn_pool *pool);

/* Frees a stale pool's memory without touching its threads or its locks,
 * which do not exist in this process. */
void rnn_pool_abandon(rnn_pool *pool);

/* Runs fn(ctx, i) once for every i in [0, ntasks) on up to ntasks threads
 * (the caller's and ntasks - 1 workers, created on first need) and returns
 * when all have finished. pool NULL or stale, ntasks <= 1, or a pool busy
 * with another job: all tasks run on the calling thread. */
void rnn_pool_run(rnn_pool *pool, int ntasks, rnn_pool_fn fn, void *ctx);

/* Whether the next job would run on the caller alone (after lost jobs, see
 * rnn_pool_run; or no pool). When the pool is backing off, this counts as
 * that job: the caller then runs the work undivided (a product as one block
 * instead of its thread-sized blocks one after another), with the same
 * results, since a job's tasks compute the same bits however it is split. */
int rnn_pool_alone(rnn_pool *pool);

/* Workers the pool has now (tests use it). */
int rnn_pool_workers(const rnn_pool *pool);

/* Jobs of more than one task the pool ran on several threads and on the
 * caller alone (after a lost job, see rnn_pool_run), for tests. */
void rnn_pool_counts(const rnn_pool *pool, int64_t *threaded, int64_t *alone);

/* The part [*lo, *hi) of [0, len) that task i of n takes (contiguous parts,
 * the first len % n one longer). */
static inline void rnn_pool_part(int64_t len, int n, int i, int64_t *lo, int64_t *hi) {
    int64_t q = len / n, r = len % n;
    *lo = i * q + (i < r ? i : r);
    *hi = *lo + q + (i < r);
}

#endif /* RNNPY_POOL_H */
