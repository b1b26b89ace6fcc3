/* pt_threads.c: the kernels' thread pool (pthreads) and per-thread workspaces.
 *
 * The caller's thread is thread 0 and works too; threads 1..n-1 are started on the first
 * parallel call. A job is published by bumping a generation counter; workers spin briefly on
 * it (kernels follow each other closely) and then sleep on a condition variable. Tasks are
 * handed out by a compare-and-swap on one 64-bit word holding (generation << 32 | next task);
 * a finished job is marked exhausted before the next one's fields are written, so a late
 * worker can never claim a task of a newer job with an older job's generation. At
 * one thread nothing is started and fn runs inline. */
#define _POSIX_C_SOURCE 200809L
#include "pt_kernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define PT_MAX_THREADS 256
#define PT_WS_SLOTS 4
#define PT_SPIN 20000
/* Task index of a finished job: no worker claims from it. */
#define PT_EXHAUSTED 0xffffffffu

typedef struct {
    void *ptr;
    size_t bytes;
} pt_ws;

static pt_ws g_ws[PT_MAX_THREADS][PT_WS_SLOTS];

void *pt_workspace(int tid, int slot, size_t bytes) {
    if (tid < 0 || tid >= PT_MAX_THREADS || slot < 0 || slot >= PT_WS_SLOTS) return NULL;
    pt_ws *w = &g_ws[tid][slot];
    if (w->bytes >= bytes && w->ptr) return w->ptr;
    size_t sz = (bytes + 63) & ~(size_t)63;
    if (sz == 0) sz = 64;
    void *p = aligned_alloc(64, sz);
    if (!p) return NULL;
    free(w->ptr);
    w->ptr = p;
    w->bytes = sz;
    return p;
}

static inline void pt_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_ullong job;   /* generation << 32 | next task index */
    atomic_int done;     /* tasks finished */
    atomic_int stop;
    atomic_int n;        /* tasks of the current job */
    pt_task_fn fn;
    void *ctx;
    int started; /* worker threads running */
    pthread_t th[PT_MAX_THREADS];
} pt_pool;

static pt_pool g_pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static int g_threads = 1;
static _Thread_local int t_in_pool = 0;
static _Thread_local int t_tid = 0;

/* Claims and runs tasks of generation `gen` until none is left. A task index is claimed by
 * a CAS that also checks the generation; the job's function and context are read only after a
 * successful claim (they cannot change before that task is done), and the caller marks a
 * finished job exhausted (index PT_EXHAUSTED) before it writes the next job's fields, so a
 * late worker never runs a task of a newer job under an older generation. */
static void pt_run_tasks(unsigned gen, int tid) {
    pt_pool *p = &g_pool;
    unsigned long long v = atomic_load_explicit(&p->job, memory_order_acquire);
    for (;;) {
        unsigned idx = (unsigned)(v & 0xffffffffu);
        if ((unsigned)(v >> 32) != gen || idx == PT_EXHAUSTED) break;
        if (idx >= (unsigned)atomic_load_explicit(&p->n, memory_order_relaxed)) break;
        if (!atomic_compare_exchange_weak_explicit(&p->job, &v, v + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        p->fn(p->ctx, (int)idx, tid);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        v = atomic_load_explicit(&p->job, memory_order_acquire);
    }
}

static inline unsigned pt_gen(void) {
    return (unsigned)(atomic_load_explicit(&g_pool.job, memory_order_acquire) >> 32);
}

static void *pt_worker(void *arg) {
    int tid = (int)(intptr_t)arg;
    pt_pool *p = &g_pool;
    t_in_pool = 1;
    t_tid = tid;
    unsigned seen = pt_gen();
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = pt_gen()) == seen &&
               !atomic_load_explicit(&p->stop, memory_order_relaxed) && spins < PT_SPIN) {
            pt_cpu_relax();
            spins++;
        }
        if (g == seen && !atomic_load_explicit(&p->stop, memory_order_relaxed)) {
            pthread_mutex_lock(&p->mu);
            while ((g = pt_gen()) == seen &&
                   !atomic_load_explicit(&p->stop, memory_order_relaxed))
                pthread_cond_wait(&p->cv, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load_explicit(&p->stop, memory_order_relaxed)) break;
        seen = g;
        if (tid < g_threads) pt_run_tasks(g, tid);
    }
    return NULL;
}

void pt_threads_shutdown(void) {
    pt_pool *p = &g_pool;
    if (p->started == 0) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i <= p->started; i++) pthread_join(p->th[i], NULL);
    p->started = 0;
    atomic_store(&p->stop, 0);
}

void pt_set_threads(int n) {
    if (n < 1) n = 1;
    if (n > PT_MAX_THREADS) n = PT_MAX_THREADS;
    if (n < g_pool.started + 1) pt_threads_shutdown();
    g_threads = n;
}

int pt_get_threads(void) { return g_threads; }

/* Starts workers up to g_threads - 1; returns the number of threads usable. */
static int pt_ensure_started(void) {
    pt_pool *p = &g_pool;
    while (p->started + 1 < g_threads) {
        int tid = p->started + 1;
        if (pthread_create(&p->th[tid], NULL, pt_worker, (void *)(intptr_t)tid) != 0) break;
        p->started = tid;
    }
    return p->started + 1;
}

void pt_parallel_for_tid(int n, pt_task_fn fn, void *ctx) {
    if (n <= 0) return;
    if (g_threads <= 1 || n == 1 || t_in_pool) {
        for (int i = 0; i < n; i++) fn(ctx, i, t_tid);
        return;
    }
    int nt = pt_ensure_started();
    if (nt <= 1) {
        for (int i = 0; i < n; i++) fn(ctx, i, 0);
        return;
    }
    pt_pool *p = &g_pool;
    atomic_store_explicit(&p->n, n, memory_order_relaxed);
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    unsigned gen = pt_gen() + 1;
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->job, (unsigned long long)gen << 32, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    t_in_pool = 1;
    pt_run_tasks(gen, 0);
    t_in_pool = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < n) pt_cpu_relax();
    atomic_store_explicit(&p->job, ((unsigned long long)gen << 32) | PT_EXHAUSTED,
                          memory_order_release);
}

/* pt_rt.h's loop on the same pool. */
typedef struct {
    pt_task fn;
    void *ctx;
    int64_t base;
} pt_rt_loop;

static void pt_rt_trampoline(void *vctx, int i, int tid) {
    (void)tid;
    const pt_rt_loop *l = (const pt_rt_loop *)vctx;
    l->fn(l->ctx, l->base + i);
}

void pt_parallel_for(int64_t n, pt_task fn, void *ctx) {
    for (int64_t base = 0; base < n; base += 0x40000000) {
        int64_t cnt = n - base < 0x40000000 ? n - base : 0x40000000;
        pt_rt_loop l = {fn, ctx, base};
        pt_parallel_for_tid((int)cnt, pt_rt_trampoline, &l);
    }
}
