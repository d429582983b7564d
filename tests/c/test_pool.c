/*
 * test_pool.c: the core's thread pool (csrc/pool.h) on its own.
 *
 * Every task of a job runs exactly once, for many jobs in a row and for
 * task counts above the thread count; two callers at once both finish (one
 * of them on its own thread); a pool used before a fork is stale in the
 * child, where a job still runs (on the calling thread) and a new pool runs
 * jobs on threads again; the parent's pool keeps working after the fork; a
 * job that lost time to a slow worker makes the next ones run on the caller,
 * and so do threaded jobs that gain nothing (caller and worker on one core);
 * a worker woken on its caller's CPU runs elsewhere.
 */
#define _GNU_SOURCE
#define HARNESS_SEED 0x5EED0F9001ULL
#include "harness.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

#define MAXT 64

typedef struct {
    atomic_int runs[MAXT];
    atomic_int total;
} job;

static void task(void *ctx, int i) {
    job *j = ctx;
    atomic_fetch_add(&j->runs[i], 1);
    atomic_fetch_add(&j->total, 1);
    /* a little work, so that workers get a chance to claim tasks */
    volatile double s = 0;
    for (int k = 0; k < 2000; k++) s += k * 0.5;
}

/* Two tasks that each wait (up to 10 s) for the other to start: they meet
 * only when two threads run them at once. */
typedef struct {
    atomic_int started;
    atomic_int met;
} meet_job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void meet_task(void *ctx, int i) {
    (void)i;
    meet_job *j = ctx;
    atomic_fetch_add(&j->started, 1);
    double until = now_s() + 10;
    while (atomic_load(&j->started) < 2 && now_s() < until) {
    }
    if (atomic_load(&j->started) >= 2) atomic_fetch_add(&j->met, 1);
}

/* 1 when the first job of a new pool, two tasks, ran them on two threads at
 * once (later jobs may run on the caller alone for a while, after jobs that
 * lost time to a descheduled worker). */
static int meets(void) {
    rnn_pool *fresh = rnn_pool_new();
    if (!fresh) return 0;
    meet_job j;
    atomic_init(&j.started, 0);
    atomic_init(&j.met, 0);
    rnn_pool_run(fresh, 2, meet_task, &j);
    rnn_pool_free(fresh);
    return atomic_load(&j.met) == 2;
}

/* Runs one job of n tasks; 1 when each ran once. */
static int run_once(rnn_pool *p, int n) {
    job j;
    memset(&j, 0, sizeof j);
    for (int i = 0; i < MAXT; i++) atomic_init(&j.runs[i], 0);
    atomic_init(&j.total, 0);
    rnn_pool_run(p, n, task, &j);
    int ok = atomic_load(&j.total) == n;
    for (int i = 0; i < n; i++) ok = ok && atomic_load(&j.runs[i]) == 1;
    return ok;
}

static void many_jobs(void) {
    rnn_pool *p = rnn_pool_new();
    check(p != NULL, "pool made");
    int ok = 1;
    for (int r = 0; r < 3000 && ok; r++) ok = run_once(p, 1 + r % 9);
    check(ok, "3000 jobs of 1..9 tasks: every task ran exactly once");
    check(rnn_pool_workers(p) == 8, "the pool grew to 8 workers for 9 tasks");
    check(meets(), "two tasks run on two threads at once");
    check(run_once(NULL, 5), "a NULL pool runs the job on the caller");
    rnn_pool_free(p);
}

typedef struct {
    rnn_pool *p;
    int ok;
} caller_arg;

static void *caller(void *arg) {
    caller_arg *a = arg;
    a->ok = 1;
    for (int r = 0; r < 500 && a->ok; r++) a->ok = run_once(a->p, 2 + r % 3);
    return NULL;
}

static void two_callers(void) {
    rnn_pool *p = rnn_pool_new();
    caller_arg a = {p, 0}, b = {p, 0};
    pthread_t ta, tb;
    int made = pthread_create(&ta, NULL, caller, &a) == 0;
    made = made && pthread_create(&tb, NULL, caller, &b) == 0;
    if (made) {
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
    }
    check(made && a.ok && b.ok, "two callers at once: both finish, every task once");
    rnn_pool_free(p);
}

static void after_fork(void) {
    rnn_pool *p = rnn_pool_new();
    int ok = run_once(p, 2);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        /* the child: the parent's pool is stale; a job on it runs here */
        int c = rnn_pool_stale(p) && rnn_pool_workers(p) == 0 && run_once(p, 4);
        rnn_pool *q = rnn_pool_new();
        for (int r = 0; r < 200 && c; r++) c = run_once(q, 3);
        c = c && meets() && rnn_pool_workers(q) == 2;
        rnn_pool_free(q);
        rnn_pool_abandon(p);
        _exit(c ? 0 : 3);
    }
    int status = 0;
    check(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0,
          "fork: the child runs jobs on the stale pool and on threads of a new one");
    check(ok && !rnn_pool_stale(p) && run_once(p, 3) && meets(),
          "fork: the parent's pool still works");
    rnn_pool_free(p);
}

/* A job whose worker-run task is slow (its thread descheduled, as when the
 * other cores are busy) lost time against one thread: the next jobs run on
 * the caller alone. */
typedef struct {
    atomic_int started;
    pthread_t caller;
    atomic_int on_caller;
    sem_t go; /* posted when a worker's task starts */
} slow_job;

/* A slow_job for the calling thread, no task started yet. */
static void slow_job_init(slow_job *j) {
    atomic_init(&j->started, 0);
    atomic_init(&j->on_caller, 0);
    j->caller = pthread_self();
    sem_init(&j->go, 0, 0);
}

static void slow_task(void *ctx, int i) {
    (void)i;
    slow_job *j = ctx;
    atomic_fetch_add(&j->started, 1);
    if (pthread_equal(pthread_self(), j->caller)) {
        /* waits for the worker's task blocked on a semaphore, so that the
         * caller's task stays a short one in CPU time (a few us), however
         * late the worker is: the pool judges the loss by that time, and a
         * caller that polled while a new worker started (2 ms and more
         * under AddressSanitizer) had used enough CPU to make its lost job
         * look long, whose stretch alone is then counted by time */
        atomic_fetch_add(&j->on_caller, 1);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 10;
        while (sem_timedwait(&j->go, &until) != 0 && errno == EINTR) {
        }
    } else {
        sem_post(&j->go);
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void where_task(void *ctx, int i) {
    (void)i;
    slow_job *j = ctx;
    if (pthread_equal(pthread_self(), j->caller)) atomic_fetch_add(&j->on_caller, 1);
}

static void backoff(void) {
    rnn_pool *p = rnn_pool_new();
    slow_job a, b;
    slow_job_init(&a);
    rnn_pool_run(p, 2, slow_task, &a);
    slow_job_init(&b);
    rnn_pool_run(p, 2, where_task, &b);
    check(atomic_load(&a.on_caller) == 1 && atomic_load(&b.on_caller) == 2,
          "after a job that waited on a slow worker, the next runs on the caller alone");
    rnn_pool_free(p);
}

/* Caller and worker on one core (another process has the other cores, or
 * the process is pinned to one): every threaded job takes the time of all
 * its tasks plus the switching, however its time is split between the
 * threads, so the pool must run nearly every job on the caller alone. The
 * caller's own task may wait for its core while the worker runs there: the
 * cost of its tasks is its CPU time, not the wall time they took. Tasks of
 * 2 ms: a woken worker then waits for its core longer than the wake-up the
 * pool forgives (RNN_POOL_WAKE_US, 1 ms in this build). Jobs of 4 ms are
 * long ones, whose stretches alone are counted by time (5 jobs, 10, 20, ...
 * as the losses double them; see long_loss). */

/* Spins until the calling thread has used `seconds` of CPU time. */
static void cpu_burn(double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    double until = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec + seconds;
    do clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    while ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec < until);
}

static void busy_task(void *ctx, int i) {
    (void)ctx;
    (void)i;
    cpu_burn(2e-3);
}

/* Pins the calling thread to the first CPU it may run on, the CPUs it had
 * into *old; returns that CPU, or -1 (not pinned). */
static int pin_to_first_cpu(cpu_set_t *old) {
    cpu_set_t one;
    if (pthread_getaffinity_np(pthread_self(), sizeof *old, old) != 0) return -1;
    int cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, old)) cpu++;
    if (cpu == CPU_SETSIZE) return -1;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0 ? cpu : -1;
}

static void one_core(void) {
    cpu_set_t old;
    if (pin_to_first_cpu(&old) < 0) return;
    rnn_pool *p = rnn_pool_new(); /* its workers inherit the one core */
    int fresh = rnn_pool_alone(p) == 0; /* no workers yet: the first job makes them */
    for (int r = 0; r < 400; r++) rnn_pool_run(p, 2, busy_task, NULL);
    int64_t threaded, alone;
    rnn_pool_counts(p, &threaded, &alone);
    /* backing off: the next job is the caller's, counted as one (should the
     * 400th job have ended a stretch alone, the next threaded one starts
     * another) */
    int backing = 0, counted = 1;
    for (int r = 0; r < 50 && !backing; r++) {
        int64_t t1, a1, t2, a2;
        rnn_pool_counts(p, &t1, &a1);
        backing = rnn_pool_alone(p) == 1;
        rnn_pool_counts(p, &t2, &a2);
        counted = counted && t2 == t1 && a2 == a1 + backing;
        if (!backing) rnn_pool_run(p, 2, busy_task, NULL);
    }
    rnn_pool_free(p);
    pthread_setaffinity_np(pthread_self(), sizeof old, &old);
    printf("one core: %lld jobs threaded, %lld alone\n", (long long)threaded, (long long)alone);
    check(threaded + alone == 400 && threaded <= 40,
          "on one core, jobs run on the caller alone after the first few threaded ones");
    check(fresh && backing && counted && rnn_pool_alone(NULL) == 1,
          "rnn_pool_alone: 0 for a new pool, 1 (and counted) while it backs off, 1 for none");
}

/* After a job that lost far more than a job gains (a worker asleep for 20
 * ms), the pool runs the next jobs alone for as long as it would take their
 * gains to make up for it (up to its limit), not for the 8 jobs of a first
 * loss. */
static void tiny_task(void *ctx, int i) {
    (void)ctx;
    (void)i;
    volatile double s = 0;
    for (int k = 0; k < 200; k++) s += k * 0.5;
}

/* The checks below measure a VM's scheduling: a stretch where the
 * hypervisor holds the worker's core for milliseconds (an idle virtual CPU
 * has been seen to take 0.2-4 ms to wake at one wake-up in five to twenty)
 * can fail one attempt, so each check gets up to WAKE_TRIES attempts and
 * passes if one shows the rule (a broken rule fails them all). An attempt
 * takes 0.1 s or less. */
#define WAKE_TRIES 10

static int repay_once(void) {
    rnn_pool *p = rnn_pool_new();
    slow_job a;
    slow_job_init(&a);
    rnn_pool_run(p, 2, slow_task, &a);
    int64_t t0, a0, t1, a1;
    rnn_pool_counts(p, &t0, &a0);
    for (int r = 0; r < 300; r++) rnn_pool_run(p, 2, tiny_task, NULL);
    rnn_pool_counts(p, &t1, &a1);
    rnn_pool_free(p);
    int ok = t0 == 1 && a0 == 0 && t1 == 1 && a1 == 300;
    if (!ok)
        printf("after a loss of 20 ms: %lld threaded, %lld alone, then %lld, %lld\n", (long long)t0,
               (long long)a0, (long long)t1, (long long)a1);
    return ok;
}

static void repay(void) {
    int ok = 0;
    for (int a = 0; a < WAKE_TRIES && !ok; a++) ok = repay_once();
    check(ok, "after a loss of 20 ms, jobs run alone until their gains would have repaid it");
}

/* After a long job lost (its worker descheduled for 100 ms while the
 * caller's task took 30 ms of CPU), the stretch alone is counted by time
 * (RNN_POOL_SOLO_JOB_US): about 20 ms of such jobs, here one, not the 8 (or,
 * with the loss to repay at 8 us a job, 4096) jobs a short job's loss
 * earns; after a second such loss, about 40 ms, one job again. Up to three
 * attempts, as a job may find no worker in time (then the attempt says
 * nothing). */
static void long_task(void *ctx, int i) {
    (void)i;
    slow_job *j = ctx;
    if (pthread_equal(pthread_self(), j->caller)) {
        atomic_fetch_add(&j->on_caller, 1);
        cpu_burn(30e-3);
    } else {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static void long_loss(void) {
    int judged = 0, ok = 0;
    for (int a = 0; a < 3 && !ok; a++) {
        rnn_pool *p = rnn_pool_new();
        slow_job j[3];
        /* lost (a worker ran the other task), a stretch of one job alone,
         * lost again: the second stretch is one such job too */
        for (int k = 0; k < 3; k++) {
            slow_job_init(&j[k]);
            rnn_pool_run(p, 2, long_task, &j[k]);
        }
        if (atomic_load(&j[0].on_caller) == 1 && atomic_load(&j[1].on_caller) == 2 &&
            atomic_load(&j[2].on_caller) == 1) {
            int64_t t0, a0, t1, a1;
            rnn_pool_counts(p, &t0, &a0);
            for (int r = 0; r < 4; r++) rnn_pool_run(p, 2, tiny_task, NULL);
            rnn_pool_counts(p, &t1, &a1);
            judged++;
            ok = a1 - a0 >= 1 && t1 - t0 >= 1;
            if (!ok) printf("after two long lost jobs: %lld threaded, %lld alone of 4\n",
                            (long long)(t1 - t0), (long long)(a1 - a0));
        }
        rnn_pool_free(p);
    }
    check(judged > 0 && ok, "after a long job lost, the stretch alone is counted by time");
}

/* A job issued to sleeping workers pays for waking one and for its core
 * starting cold: the worker's task may end well after the caller's. Up to
 * RNN_POOL_WAKE_US that is not a lost job when the jobs after it gain:
 * bursts of jobs, each after a pause (the worker asleep again) and the first
 * losing about 300 us to its worker (its task 500 us, the caller's 100 plus
 * its wait for the worker), stay on threads, instead of each return from
 * running alone looking lost and doubling the next stretch alone. Where
 * every job must wake the worker, the wake-ups are judged: jobs that each
 * follow a pause and lose to it run alone. (Built with RNN_POOL_WAKE_US =
 * 1000 by test_c_kernels.py, so that a hypervisor taking a core for a few
 * hundred us cannot fail it.) */
typedef struct {
    pthread_t caller;
    int late;           /* the worker's task takes 500 us, the caller's 100 */
    atomic_int started; /* the caller's task waits for the worker's to start */
} late_job;

static void late_task(void *ctx, int i) {
    (void)i;
    late_job *j = ctx;
    atomic_fetch_add(&j->started, 1);
    int mine = pthread_equal(pthread_self(), j->caller);
    double t = now_s();
    /* for a woken worker, asleep: that wait is not the caller's work (its
     * CPU time), which a job's worth is judged by; in a real job the caller
     * waits for a late worker after its tasks, not inside them */
    struct timespec nap = {0, 20 * 1000};
    while (mine && atomic_load(&j->started) < 2 && now_s() < t + 0.05)
        if (j->late) nanosleep(&nap, NULL);
    double until = now_s() + (j->late && !mine ? 500e-6 : 100e-6);
    while (now_s() < until) {
    }
}

/* A pause of 2 ms, long enough for the worker to go to sleep, then n
 * jobs, the first with a late worker task. */
static void burst_after_pause(rnn_pool *p, late_job *j, int n) {
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL);
    for (int k = 0; k < n; k++) {
        j->late = k == 0;
        atomic_store(&j->started, 0);
        rnn_pool_run(p, 2, late_task, j);
    }
}

static void wake_bursts(int burst, int64_t *threaded, int64_t *alone) {
    rnn_pool *p = rnn_pool_new();
    late_job j = {.caller = pthread_self()};
    atomic_init(&j.started, 0);
    rnn_pool_run(p, 2, late_task, &j); /* makes the worker */
    int64_t t0, a0, t1, a1;
    rnn_pool_counts(p, &t0, &a0);
    for (int r = 0; r < 40; r++) burst_after_pause(p, &j, burst);
    rnn_pool_counts(p, &t1, &a1);
    rnn_pool_free(p);
    *threaded = t1 - t0;
    *alone = a1 - a0;
}

static void wake(void) {
    int64_t bt = 0, ba = 0, et = 0, ea = 0;
    int ok_b = 0, ok_e = 0;
    for (int a = 0; a < WAKE_TRIES && !ok_b; a++) {
        wake_bursts(4, &bt, &ba);
        ok_b = bt >= 100 && bt + ba == 160;
        printf("after pauses: bursts %lld jobs threaded, %lld alone\n", (long long)bt,
               (long long)ba);
    }
    for (int a = 0; a < WAKE_TRIES && !ok_e; a++) {
        wake_bursts(1, &et, &ea);
        ok_e = et <= 20 && et + ea == 40;
        printf("after pauses: single jobs %lld threaded, %lld alone\n", (long long)et,
               (long long)ea);
    }
    check(ok_b, "a worker's wake-up is not a lost job: bursts after pauses stay on threads");
    check(ok_e, "jobs that each wake a worker and lose to it run on the caller alone");
}

/* A stretch alone that callers consume through rnn_pool_alone (as the GEMM
 * does) breaks a row of jobs issued to sleeping workers as jobs run alone
 * by rnn_pool_run do: the first job after it, which must wake the worker
 * again, has its wake-up forgiven and the burst it starts stays on threads. */
static int wake_after_alone_once(void) {
    rnn_pool *p = rnn_pool_new();
    late_job j = {.caller = pthread_self()};
    atomic_init(&j.started, 0);
    rnn_pool_run(p, 2, late_task, &j); /* makes the worker */
    struct timespec ts = {0, 2 * 1000 * 1000};
    nanosleep(&ts, NULL); /* the worker sleeps: the next job must wake it */
    slow_job a;
    slow_job_init(&a);
    rnn_pool_run(p, 2, slow_task, &a); /* lost (20 ms), and issued to a sleeping worker */
    int consumed = 0;
    while (consumed < 100000 && rnn_pool_alone(p)) consumed++;
    int ok = 1;
    for (int r = 0; r < 10 && ok; r++) {
        int64_t t0, a0, t1, a1;
        rnn_pool_counts(p, &t0, &a0);
        burst_after_pause(p, &j, 4);
        rnn_pool_counts(p, &t1, &a1);
        ok = t1 - t0 == 4;
        if (!ok) printf("after a stretch alone: burst %d ran %lld threaded, %lld alone\n", r,
                        (long long)(t1 - t0), (long long)(a1 - a0));
    }
    rnn_pool_free(p);
    return consumed > 0 && ok;
}

static void wake_after_alone(void) {
    int ok = 0;
    for (int a = 0; a < WAKE_TRIES && !ok; a++) ok = wake_after_alone_once();
    check(ok, "after a stretch consumed through rnn_pool_alone, bursts after pauses stay on threads");
}

static void parts(void) {
    int ok = 1;
    for (int64_t len = 0; len < 40; len++)
        for (int n = 1; n <= 9; n++) {
            int64_t prev = 0;
            for (int i = 0; i < n; i++) {
                int64_t lo, hi;
                rnn_pool_part(len, n, i, &lo, &hi);
                ok = ok && lo == prev && hi >= lo && hi - lo <= len / n + 1;
                prev = hi;
            }
            ok = ok && prev == len;
        }
    check(ok, "rnn_pool_part covers [0, len) in contiguous parts");
}

/* A worker woken on the CPU its caller runs on moves to another allowed CPU
 * instead of taking the caller's (pool.c, leave_callers_cpu). The worker is
 * made to last run on the caller's CPU (all threads pinned there, then the
 * worker's own task widens its mask again), so that the scheduler, which
 * puts a woken thread beside its waker when it judges the other CPUs
 * unavailable (a halted vCPU of a VM), may wake it there; its next task,
 * run while the caller's spins, must then not be on the caller's CPU. The
 * check needs a worker task in a round (a worker that wakes after the
 * caller's 3 ms took both tasks proves nothing); on one CPU it is vacuous. */
typedef struct {
    pthread_t caller;
    cpu_set_t wide;  /* the process's CPUs, for the worker to widen to */
    int widen;       /* this job's worker task widens its mask */
    atomic_int worker_cpu; /* the CPU a worker ran its task on, or -1 */
} beside_job;

static void beside_task(void *ctx, int i) {
    (void)i;
    beside_job *j = ctx;
    if (pthread_equal(pthread_self(), j->caller)) {
        double until = now_s() + 3e-3;
        while (now_s() < until && atomic_load(&j->worker_cpu) < 0) {
        }
        return;
    }
    atomic_store(&j->worker_cpu, sched_getcpu());
    if (j->widen) pthread_setaffinity_np(pthread_self(), sizeof j->wide, &j->wide);
}

static void woken_beside_caller(void) {
    cpu_set_t wide;
    int cpu = pin_to_first_cpu(&wide);
    if (cpu < 0) return;
    if (CPU_COUNT(&wide) < 2) {
        pthread_setaffinity_np(pthread_self(), sizeof wide, &wide);
        return;
    }
    rnn_pool *p = rnn_pool_new(); /* its worker is made on the one CPU */
    beside_job j = {.caller = pthread_self(), .wide = wide};
    int rounds = 0, beside = 0;
    for (int r = 0; r < 40 && rounds < 10; r++) {
        /* the worker runs a task on the caller's CPU and widens its mask */
        j.widen = 1;
        for (int tries = 0; tries < 50; tries++) {
            atomic_store(&j.worker_cpu, -1);
            rnn_pool_run(p, 2, beside_task, &j);
            if (atomic_load(&j.worker_cpu) >= 0) break;
        }
        struct timespec nap = {0, 5 * 1000 * 1000}; /* the worker goes to sleep */
        nanosleep(&nap, NULL);
        j.widen = 0;
        atomic_store(&j.worker_cpu, -1);
        rnn_pool_run(p, 2, beside_task, &j);
        int w = atomic_load(&j.worker_cpu);
        if (w < 0) continue; /* the caller ran both tasks */
        rounds++;
        beside += w == cpu;
    }
    rnn_pool_free(p);
    pthread_setaffinity_np(pthread_self(), sizeof wide, &wide);
    printf("woken beside the caller: %d of %d worker tasks on the caller's CPU\n", beside,
           rounds);
    check(beside == 0, "a worker woken on its caller's CPU runs its task on another CPU");
}

int main(void) {
    parts();
    many_jobs();
    two_callers();
    backoff();
    one_core();
    repay();
    long_loss();
    wake();
    wake_after_alone();
    woken_beside_caller();
    after_fork();
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
