/*
 * pool.c: the thread pool of pool.h.
 *
 * One job at a time. The caller publishes (fn, ctx) and then a new ticket,
 * a 64-bit word holding the job's generation, its task count and the next
 * unclaimed task. Every thread, the caller included, claims task i by
 * advancing the ticket from (gen, n, i) to (gen, n, i + 1) with a
 * compare-and-swap, so a worker that lags behind can never claim a task of
 * a newer job with an older ticket: its CAS fails on the generation, and a
 * ticket whose tasks are all claimed claims nothing. Finished tasks count
 * up `done`; the caller returns when it reaches n, and only then writes the
 * next job's fields (which a successful claim therefore read intact).
 *
 * Waiting, both for a job (workers) and for the last task (caller), spins
 * for at most RNN_POOL_SPIN_US and then sleeps on a futex word (wake_seq,
 * done); the waker issues the system call only when someone sleeps. Each
 * sleeper announces itself before checking the condition a last time and
 * the waker changes the condition before reading the announcement, so with
 * sequentially consistent atomics one of the two always sees the other.
 *
 * No global state: a pool records the process that made it, and a copy
 * inherited through fork is recognised and never waited on: by a page the
 * kernel zeroes in a child (MADV_WIPEONFORK), a load where getpid() would
 * be a system call per job, or by that pid where the page cannot be had.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include "pool.h"

#include <stdlib.h>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(_POSIX_THREADS) && _POSIX_THREADS > 0 && !defined(__STDC_NO_ATOMICS__) && \
    !defined(RNN_POOL_SERIAL)
#define POOL_THREADS 1
#else
#define POOL_THREADS 0
#endif

#ifndef RNN_POOL_SPIN_US
#define RNN_POOL_SPIN_US 100 /* spin this long before sleeping (microseconds) */
#endif
#define POOL_MAX_WORKERS 63  /* RNN_MAX_THREADS - 1: the caller is the 64th */
#define POOL_RETRY_JOBS 256  /* after a failed pthread_create, jobs before trying again */
#ifndef RNN_POOL_WAKE_US
#define RNN_POOL_WAKE_US 200 /* the most a wake-up costs a job on a free core (us) */
#endif
#ifndef RNN_POOL_SOLO_JOB_US
#define RNN_POOL_SOLO_JOB_US 2500 /* a stretch alone counts longer jobs by time (us) */
#endif
/* Jobs are judged (rnn_pool_run) by the caller's CPU time, a system call of
 * about 0.5 us (2 per job) in a VM: on a job of a few microseconds (a step
 * product at B = 1-4) that is 10% of the job, on the caller's path. So
 * after a job shorter than RNN_POOL_CLOCK_US (its wall time, read at 25 ns)
 * the next is judged one time in RNN_POOL_CLOCK_EVERY, drawn at random (a
 * fixed count would lock onto the jobs of a step: with two or four jobs a
 * step, the same one every time); after a longer one, and when a worker may
 * be woken, every job is. */
#ifndef RNN_POOL_CLOCK_US
#define RNN_POOL_CLOCK_US 50
#endif
#ifndef RNN_POOL_CLOCK_EVERY
#define RNN_POOL_CLOCK_EVERY 4
#endif

#if POOL_THREADS

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define POOL_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define POOL_PAUSE() __asm__ __volatile__("yield")
#else
#define POOL_PAUSE() ((void)0)
#endif

/* ticket = gen << 32 | ntasks << 16 | next */
#define GEN_OF(t) ((uint64_t)(t) >> 32)
#define NTASKS_OF(t) ((int)(((t) >> 16) & 0xffff))
#define NEXT_OF(t) ((int)((t) & 0xffff))
#define POOL_MAX_TASKS 0xffff

struct rnn_pool {
    pid_t pid;                   /* the process that made the pool */
    volatile int *fork_mark;     /* 1 in that process, 0 in a child (MADV_WIPEONFORK), or NULL */
    int64_t last_wall;           /* the wall time of the last job run on threads (us) */
    uint32_t draw;               /* xorshift state for the jobs judged at random */
    atomic_int busy;             /* a caller's job is running (try-lock) */
    _Atomic(uint64_t) ticket;    /* generation, task count, next unclaimed task */
    _Atomic(rnn_pool_fn) fn;     /* the current job */
    _Atomic(void *) ctx;
    atomic_uint done;            /* tasks of the current job finished (futex word) */
    atomic_int caller_sleeps;    /* the caller sleeps on done */
    atomic_uint wake_seq;        /* bumped for every job and at stop (futex word) */
    atomic_int sleepers;         /* workers asleep on wake_seq */
    atomic_int stop;
    atomic_int caller_cpu;       /* the CPU the caller published the current job on (-1: unknown) */
    int nworkers;                /* threads[0..nworkers) exist (written by the busy holder) */
    int64_t jobs, retry_at;      /* jobs run; the first job that may create threads again */
    int64_t solo_until;          /* jobs before this one run on the caller alone */
    int64_t backoff;             /* jobs to run alone after the next lost job */
    int64_t doubling;            /* the same without repayment (long jobs' stretch) */
    int64_t balance;             /* us the recent threaded jobs saved (< 0: cost) */
    int64_t gain16;              /* what recent jobs that gained saved, 1/16 us */
    _Atomic(int64_t) picked_up;  /* when a worker first saw the current job (us), or
                                    -(its generation) until one has */
    int woke_last;               /* the last job a worker joined was issued to sleeping workers */
    _Atomic(int64_t) threaded;   /* jobs run on several threads (read by rnn_pool_counts) */
    _Atomic(int64_t) alone;      /* jobs run on the caller alone */
    pthread_t threads[POOL_MAX_WORKERS];
#if !defined(__linux__)
    pthread_mutex_t mu;          /* the futex's stand-in: sleep and wake under mu */
    pthread_cond_t cv;
#endif
};

/* ------------------------------------------------------------ sleeping */

#if defined(__linux__)
static void word_wait(rnn_pool *p, atomic_uint *w, unsigned old) {
    (void)p;
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAIT_PRIVATE, old, NULL, NULL, 0);
}
static void word_wake(rnn_pool *p, atomic_uint *w, int n) {
    (void)p;
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
#else
static void word_wait(rnn_pool *p, atomic_uint *w, unsigned old) {
    pthread_mutex_lock(&p->mu);
    if (atomic_load(w) == old) pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
static void word_wake(rnn_pool *p, atomic_uint *w, int n) {
    (void)w;
    (void)n;
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}
#endif

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The calling thread's CPU time (what its tasks cost, however long it was
 * descheduled meanwhile); the wall clock where there is no such clock. */
static int64_t thread_cpu_us(void) {
#if defined(CLOCK_THREAD_CPUTIME_ID)
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
#endif
    return now_us();
}

/* --------------------------------------------------------------- a job */

/* Claims and runs tasks of the job whose ticket was read as t until none
 * is left or a newer job replaced it. */
static int claim_tasks(rnn_pool *p, uint64_t t) {
    const uint64_t gen = GEN_OF(t);
    const int n = NTASKS_OF(t);
    int ran = 0;
    for (;;) {
        rnn_pool_fn fn = atomic_load_explicit(&p->fn, memory_order_relaxed);
        void *ctx = atomic_load_explicit(&p->ctx, memory_order_relaxed);
        int i = NEXT_OF(t);
        if (i >= n) return ran;
        if (atomic_compare_exchange_weak(&p->ticket, &t, t + 1)) {
            fn(ctx, i);
            ran++;
            unsigned d = atomic_fetch_add(&p->done, 1) + 1;
            if ((int)d == n && atomic_load(&p->caller_sleeps)) word_wake(p, &p->done, 1);
            t = atomic_load(&p->ticket);
        }
        if (GEN_OF(t) != gen) return ran;
    }
}

/* The CPU the calling thread runs on, or -1 where that cannot be known. */
static int this_cpu(void) {
#if defined(__linux__)
    return sched_getcpu();
#else
    return -1;
#endif
}

/* A worker woken on the CPU of the caller that woke it takes that CPU from
 * the caller, which is running the job's tasks: the scheduler puts a woken
 * thread beside its waker when it judges the other CPUs unavailable, as a
 * guest's kernel does with a CPU whose vCPU the hypervisor has descheduled
 * (it had halted; seen for 53 of 64 wake-ups on a 2-vCPU VM, each then
 * stealing ~100 us of spinning from the caller). Such a worker moves to its
 * other allowed CPUs (and gets all of them back for later), which runs it
 * when that CPU's turn comes while the caller goes on; with no other CPU
 * allowed it stays. */
static void leave_callers_cpu(rnn_pool *p) {
#if defined(__linux__)
    int me = this_cpu();
    if (me < 0 || me >= CPU_SETSIZE || me != atomic_load(&p->caller_cpu)) return;
    cpu_set_t all, others;
    if (pthread_getaffinity_np(pthread_self(), sizeof all, &all) != 0) return;
    others = all;
    CPU_CLR(me, &others);
    if (CPU_COUNT(&others) == 0) return;
    if (pthread_setaffinity_np(pthread_self(), sizeof others, &others) == 0)
        pthread_setaffinity_np(pthread_self(), sizeof all, &all);
#else
    (void)p;
#endif
}

static void *worker_main(void *arg) {
    rnn_pool *p = arg;
    uint64_t seen = UINT64_MAX; /* a new worker looks at the current job */
    for (;;) {
        uint64_t t = atomic_load(&p->ticket);
        if (atomic_load(&p->stop)) return NULL;
        if (GEN_OF(t) != seen) {
            seen = GEN_OF(t);
            int64_t none = -(int64_t)seen; /* a job of an older generation: no match */
            atomic_compare_exchange_strong(&p->picked_up, &none, now_us());
            claim_tasks(p, t);
            continue;
        }
        /* nothing new: spin a little, then sleep */
        int64_t until = now_us() + RNN_POOL_SPIN_US;
        int k = 0;
        while (GEN_OF(atomic_load_explicit(&p->ticket, memory_order_relaxed)) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            POOL_PAUSE();
            if (++k % 64 == 0 && now_us() > until) break;
        }
        atomic_fetch_add(&p->sleepers, 1);
        unsigned s = atomic_load(&p->wake_seq);
        if (GEN_OF(atomic_load(&p->ticket)) == seen && !atomic_load(&p->stop)) {
            word_wait(p, &p->wake_seq, s);
            leave_callers_cpu(p);
        }
        atomic_fetch_sub(&p->sleepers, 1);
    }
}

/* Creates workers up to `want` (by the busy holder); stops at the first
 * failure, leaving the job to the threads that exist. */
static void grow(rnn_pool *p, int want) {
    if (want > POOL_MAX_WORKERS) want = POOL_MAX_WORKERS;
    if (p->nworkers >= want || p->jobs < p->retry_at) return;
    /* workers take no signals: they stay with the threads that handle them */
    sigset_t all, old;
    sigfillset(&all);
    int masked = pthread_sigmask(SIG_SETMASK, &all, &old) == 0;
    while (p->nworkers < want) {
        if (pthread_create(&p->threads[p->nworkers], NULL, worker_main, p) != 0) {
            p->retry_at = p->jobs + POOL_RETRY_JOBS;
            break;
        }
        p->nworkers++;
    }
    if (masked) pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void run_serial(int ntasks, rnn_pool_fn fn, void *ctx) {
    for (int i = 0; i < ntasks; i++) fn(ctx, i);
}

void rnn_pool_run(rnn_pool *p, int ntasks, rnn_pool_fn fn, void *ctx) {
    int expect = 0;
    if (!p || ntasks <= 1 || ntasks > POOL_MAX_TASKS || rnn_pool_stale(p) ||
        !atomic_compare_exchange_strong(&p->busy, &expect, 1)) {
        run_serial(ntasks, fn, ctx);
        return;
    }
    p->jobs++;
    const int had = p->nworkers;
    grow(p, ntasks - 1);
    if (p->nworkers == 0 || p->jobs < p->solo_until) {
        p->woke_last = 0;
        run_serial(ntasks, fn, ctx);
        atomic_fetch_add_explicit(&p->alone, 1, memory_order_relaxed);
        atomic_store(&p->busy, 0);
        return;
    }
    atomic_fetch_add_explicit(&p->threaded, 1, memory_order_relaxed);
    /* judged: a long job, one that may wake a worker, or one in CLOCK_EVERY */
    p->draw ^= p->draw << 13;
    p->draw ^= p->draw >> 17;
    p->draw ^= p->draw << 5;
    const int timed = p->last_wall >= RNN_POOL_CLOCK_US || p->draw % RNN_POOL_CLOCK_EVERY == 0 ||
                      p->nworkers > had || atomic_load(&p->sleepers) > 0;
    int64_t t0 = now_us(), c0 = timed ? thread_cpu_us() : 0;
    atomic_store_explicit(&p->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&p->ctx, ctx, memory_order_relaxed);
    atomic_store(&p->done, 0);
    uint64_t gen = (GEN_OF(atomic_load(&p->ticket)) + 1) & 0xffffffffu;
    atomic_store(&p->picked_up, -(int64_t)gen);
    /* fewer workers awake than the job has tasks for them, or new ones: the
     * job waits for a worker to wake (or start: a new thread's start, 2 ms
     * here at times, says nothing of the cores, so it is never slow) */
    const int grown = p->nworkers > had;
    const int woke = grown || p->nworkers - atomic_load(&p->sleepers) < ntasks - 1;
    uint64_t t = gen << 32 | (uint64_t)ntasks << 16;
    atomic_store(&p->caller_cpu, this_cpu());
    atomic_store(&p->ticket, t);
    atomic_fetch_add(&p->wake_seq, 1);
    if (atomic_load(&p->sleepers) > 0) word_wake(p, &p->wake_seq, ntasks - 1);
    int mine = claim_tasks(p, t);
    int64_t c1 = timed ? thread_cpu_us() : 0;
    /* the tasks workers claimed: spin a little, then sleep */
    int64_t t1 = now_us(), until = t1 + RNN_POOL_SPIN_US;
    int k = 0;
    while ((int)atomic_load(&p->done) < ntasks) {
        POOL_PAUSE();
        if (++k % 64 == 0 && now_us() > until) {
            atomic_store(&p->caller_sleeps, 1);
            unsigned d;
            while ((int)(d = atomic_load(&p->done)) < ntasks) word_wait(p, &p->done, d);
            atomic_store(&p->caller_sleeps, 0);
            break;
        }
    }
    /* What the job saved: the time the caller alone would have taken (the
     * CPU time of its own tasks per task, times all tasks) minus the time
     * it took. The CPU time, not the wall time, of the caller's tasks: a
     * caller that waits for its core while a worker runs there would count
     * that wait as work and see a gain.
     *   - A job issued to sleeping workers that none of them joined ran as
     *     the caller alone would have run it: it is not judged, and the wake
     *     it issued stays pending for the next jobs, which the worker joins
     *     when it is up. A wake-up is not a sign of a busy core: on an idle
     *     2-core VM a worker woke in 5-20 us while its core was polling, but
     *     in 0.1-3 ms once the core had halted (the hypervisor runs it again
     *     when it can), which backing off only made certain (each stretch
     *     alone let the core halt before the next wake).
     *   - The job a woken worker joins waited for it to start and found its
     *     core cold (caches, clock; a worker task that ran 2x the caller's
     *     was seen): a loss of up to RNN_POOL_WAKE_US is not held against
     *     it (the jobs after it find the workers spinning), or every return
     *     from running alone would look lost and double the next stretch.
     *   - Not two such jobs in a row, though (jobs a worker was already up
     *     for, or jobs run alone, break the row; jobs no worker joined do
     *     not): where every job must wake a worker (one that shares a core
     *     with other work goes back to sleep between jobs; or long pauses
     *     between small jobs), the wake-ups are what threads cost, and the
     *     second is judged in full.
     *   - Otherwise the pool judges by `balance`, the savings of the last ~8
     *     jobs: it backs off when they are negative (threads cost more than
     *     they saved: a worker sharing the caller's core, or descheduled by
     *     other work), not at every job a worker was late for (a hypervisor
     *     taking the worker's core for 100 us), which recent gains repay.
     * Backing off, the next jobs run on the caller alone: twice as many as
     * the last time (8 the first time, 4096 at most), or if more, as many
     * as it takes jobs gaining what recent ones gained (8 us at least) to
     * make up for the recent loss (-balance); each threaded job that is not
     * lost shortens the next stretch by 1/16. Counted in jobs, a stretch
     * would hold long jobs on one thread for long (8 products of 25 ms
     * after one late worker: 200 ms; a loss to repay at 8 us a job, 4096
     * of them): a stretch is also no longer than the time of the doubling
     * count (8, 16, ..., without repayment) of jobs of RNN_POOL_SOLO_JOB_US,
     * in jobs the length of the lost one (its one-thread time), one at
     * least. So it binds for jobs longer than RNN_POOL_SOLO_JOB_US (20 ms
     * of them the first time), not for short ones. */
    int64_t seen = atomic_load(&p->picked_up);
    const int came = seen > 0; /* a worker saw the job (its time) */
    p->last_wall = now_us() - t0;
    if (timed && mine > 0 && (came || !woke)) {
        int64_t wall = p->last_wall, alone = (c1 - c0) * ntasks / mine;
        if (woke && !grown && !p->woke_last && wall > alone)
            wall -= wall - alone < RNN_POOL_WAKE_US ? wall - alone : RNN_POOL_WAKE_US;
        p->balance += alone - wall - p->balance / 8; /* the last ~8 jobs' savings */
        if (alone > wall) p->gain16 += ((alone - wall) * 16 - p->gain16) / 8;
        if (p->balance < -20) {
            int64_t debt = -p->balance;
            int64_t repay = debt * 16 / (p->gain16 > 128 ? p->gain16 : 128);
            p->backoff = p->backoff < 8 ? 8 : p->backoff < 2048 ? 2 * p->backoff : 4096;
            p->doubling = p->doubling < 8 ? 8 : p->doubling < 2048 ? 2 * p->doubling : 4096;
            if (p->backoff < repay) p->backoff = repay < 4096 ? repay : 4096;
            /* the count, or less for jobs over 2.5 ms: by time */
            int64_t by_time = p->doubling * RNN_POOL_SOLO_JOB_US / (alone > 1 ? alone : 1);
            int64_t stretch = p->backoff < by_time ? p->backoff : by_time;
            p->solo_until = p->jobs + 1 + (stretch > 1 ? stretch : 1);
            p->balance = 0;
        } else {
            p->backoff -= p->backoff / 16; /* forgotten slowly: a loss costs many wins */
            p->doubling -= p->doubling / 16;
        }
    }
    /* the row of jobs workers joined after a wake (a new thread's start
     * begins none; a job no worker joined leaves it as it was) */
    if (came || !woke) p->woke_last = woke && !grown;
    atomic_store(&p->busy, 0);
}

int rnn_pool_alone(rnn_pool *p) {
    int expect = 0;
    if (!p || rnn_pool_stale(p)) return 1;
    if (!atomic_compare_exchange_strong(&p->busy, &expect, 1)) return 1; /* another caller's */
    int alone = p->nworkers > 0 && p->jobs + 1 < p->solo_until;
    if (alone) {
        p->jobs++;
        p->woke_last = 0; /* as rnn_pool_run's jobs alone */
        atomic_fetch_add_explicit(&p->alone, 1, memory_order_relaxed);
    }
    atomic_store(&p->busy, 0);
    return alone;
}

/* ----------------------------------------------------------- lifetime */

rnn_pool *rnn_pool_new(void) {
    rnn_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
#if !defined(__linux__)
    if (pthread_mutex_init(&p->mu, NULL)) {
        free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->cv, NULL)) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return NULL;
    }
#endif
    p->pid = getpid();
    p->draw = 0x9e3779b9u;
#if defined(__linux__) && defined(MADV_WIPEONFORK)
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED) {
        if (madvise(page, 4096, MADV_WIPEONFORK) == 0) {
            p->fork_mark = page;
            *p->fork_mark = 1;
        } else {
            munmap(page, 4096);
        }
    }
#endif
    atomic_init(&p->busy, 0);
    atomic_init(&p->ticket, 0);
    atomic_init(&p->fn, NULL);
    atomic_init(&p->ctx, NULL);
    atomic_init(&p->done, 0);
    atomic_init(&p->caller_sleeps, 0);
    atomic_init(&p->wake_seq, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->caller_cpu, -1);
    atomic_init(&p->threaded, 0);
    atomic_init(&p->alone, 0);
    atomic_init(&p->picked_up, 0);
    return p;
}

void rnn_pool_free(rnn_pool *p) {
    if (!p) return;
    if (rnn_pool_stale(p)) {
        rnn_pool_abandon(p);
        return;
    }
    int expect = 0;
    if (!atomic_compare_exchange_strong(&p->busy, &expect, 1)) {
        /* a job still runs (a thread left inside a kernel at interpreter
         * exit): its caller finishes it alone; the memory stays */
        atomic_store(&p->stop, 1);
        return;
    }
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->wake_seq, 1);
    word_wake(p, &p->wake_seq, POOL_MAX_WORKERS);
    for (int i = 0; i < p->nworkers; i++) pthread_join(p->threads[i], NULL);
#if !defined(__linux__)
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
#endif
    rnn_pool_abandon(p);
}

int rnn_pool_stale(const rnn_pool *p) {
    if (!p) return 0;
    if (p->fork_mark) return *p->fork_mark == 0;
    return p->pid != getpid();
}

/* (the mark's page is mapped in a child too, zeroed) */
void rnn_pool_abandon(rnn_pool *p) {
    if (!p) return;
#if defined(__linux__)
    if (p->fork_mark) munmap((void *)p->fork_mark, 4096);
#endif
    free(p);
}

int rnn_pool_workers(const rnn_pool *p) { return p && !rnn_pool_stale(p) ? p->nworkers : 0; }

void rnn_pool_counts(const rnn_pool *p, int64_t *threaded, int64_t *alone) {
    int live = p && !rnn_pool_stale(p);
    *threaded = live ? atomic_load_explicit(&p->threaded, memory_order_relaxed) : 0;
    *alone = live ? atomic_load_explicit(&p->alone, memory_order_relaxed) : 0;
}

#else /* !POOL_THREADS: no workers, every job on the calling thread */

struct rnn_pool {
    int unused;
};

rnn_pool *rnn_pool_new(void) { return calloc(1, sizeof(rnn_pool)); }
void rnn_pool_free(rnn_pool *p) { free(p); }
int rnn_pool_stale(const rnn_pool *p) {
    (void)p;
    return 0;
}
void rnn_pool_abandon(rnn_pool *p) { free(p); }
int rnn_pool_workers(const rnn_pool *p) {
    (void)p;
    return 0;
}
void rnn_pool_counts(const rnn_pool *p, int64_t *threaded, int64_t *alone) {
    (void)p;
    *threaded = *alone = 0;
}
int rnn_pool_alone(rnn_pool *p) {
    (void)p;
    return 1;
}
void rnn_pool_run(rnn_pool *p, int ntasks, rnn_pool_fn fn, void *ctx) {
    (void)p;
    for (int i = 0; i < ntasks; i++) fn(ctx, i);
}

#endif
