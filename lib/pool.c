/* SPDX-License-Identifier: MIT */
/*
 * pool.c - worker threads for functions that block in ways libstage cannot
 * see (plain sleep, blocking system calls, CPU work).
 *
 * A FIFO of jobs under one mutex, and workers that take them.  The pool
 * grows when queued jobs outnumber idle workers, up to max_workers; a
 * worker idle for idle_timeout exits while more than min_workers remain.
 * Each job runs as a task at the root of its worker (so it can be cancelled
 * while it blocks in libstage, and coroutines it spawns run on the worker's
 * own loop).  Workers are joinable: an exiting worker queues itself on
 * `exited`, and the next submit or close joins it, so no thread outlives
 * stage_pool_close.
 *
 * Closing seals the pool (submit returns EPIPE), optionally cancels queued
 * jobs (STAGE_POOL_CANCEL: their futures end CANCELLED without running),
 * lets the workers finish what is queued, and waits for them, with a
 * timeout; a timed-out close may simply be called again.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"
#include "pool-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job {
    stage__node node;
    stage_task_fn fn;
    void *arg;
    stage_destroy_fn destroy;
    stage_future *task; /* the job's reference */
    int detached;
};

struct worker {
    stage__node node; /* on pool->exited once it is leaving */
    pthread_t thread;
    stage_pool *pool;
    unsigned int number;
};

struct stage_pool {
    /* Protects every field below.  Lock order: taken alone; settling a
     * job's future happens with it released. */
    pthread_mutex_t lock;
    pthread_cond_t work;  /* idle workers wait here (CLOCK_MONOTONIC) */
    stage__list jobs;
    size_t njobs;
    stage__list exited;   /* struct worker, to be joined */
    size_t min, max;
    size_t workers;       /* started and not yet exited */
    size_t idle;          /* waiting on `work` */
    int64_t idle_ns;      /* -1: never exit when idle */
    int closing;
    size_t leaving;       /* left `workers`, still freeing their loop */
    unsigned int seq;     /* numbers workers for their names */
    stage_future *drained; /* resolved once closing and workers == 0 */
    char name[16];
};

/* The pool whose worker the calling thread is, for EDEADLK checks. */
static _Thread_local stage_pool *tls_pool STAGE__TLS_MODEL;

stage_pool *stage__pool_current(void) { return tls_pool; }

stage_pool *stage_pool_new(const char *name, size_t min_workers,
                           size_t max_workers, double idle_timeout)
{
    int64_t idle_ns;
    if (max_workers == 0 || min_workers > max_workers ||
        stage__deadline(idle_timeout, &idle_ns)) {
        errno = EINVAL;
        return NULL;
    }
    stage_pool *p = calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&p->lock, NULL) != 0 ||
        pthread_cond_init(&p->work, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    pthread_condattr_destroy(&ca);
    /* Made now so that close cannot fail for want of memory (a Stage's
     * close ignored that, and the pool and its workers leaked). */
    p->drained = stage_future_new();
    if (!p->drained) {
        pthread_cond_destroy(&p->work);
        pthread_mutex_destroy(&p->lock);
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    stage__list_init(&p->jobs);
    stage__list_init(&p->exited);
    p->min = min_workers;
    p->max = max_workers;
    p->idle_ns = idle_ns < 0 ? -1 : idle_ns - stage_now(); /* relative */
    snprintf(p->name, sizeof p->name, "%s", name ? name : "stage");
    return p;
}

size_t stage_pool_workers(stage_pool *p)
{
    if (!p)
        return 0;
    pthread_mutex_lock(&p->lock);
    size_t n = p->workers;
    pthread_mutex_unlock(&p->lock);
    return n;
}

static void run_job(struct job *j)
{
    void *result = stage__task_run_body(j->task, j->fn, j->arg);
    stage__task_finish(j->task, result, j->destroy, j->detached);
    stage_future_unref(j->task);
    free(j);
}

/* A job that will never run: its future ends CANCELLED. */
static void drop_job(struct job *j)
{
    stage_future_cancel(j->task);
    stage__task_finish(j->task, NULL, NULL, 0);
    stage_future_unref(j->task);
    free(j);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    stage_pool *p = w->pool;
    tls_pool = p;
#ifdef HAVE_PTHREAD_SETNAME_NP
    char name[16];
    snprintf(name, sizeof name, "%.10s-%u", p->name, w->number);
    pthread_setname_np(pthread_self(), name);
#endif
    pthread_mutex_lock(&p->lock);
    for (;;) {
        stage__node *n = stage__list_pop(&p->jobs);
        if (n) {
            p->njobs--;
            pthread_mutex_unlock(&p->lock);
            run_job(stage__container_of(n, struct job, node));
            pthread_mutex_lock(&p->lock);
            continue;
        }
        if (p->closing)
            break;
        p->idle++;
        int rc;
        if (p->idle_ns < 0) {
            rc = pthread_cond_wait(&p->work, &p->lock);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            int64_t t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec +
                        p->idle_ns;
            ts.tv_sec = (time_t)(t / 1000000000);
            ts.tv_nsec = (long)(t % 1000000000);
            rc = pthread_cond_timedwait(&p->work, &p->lock, &ts);
        }
        p->idle--;
        if (rc == ETIMEDOUT && stage__list_empty(&p->jobs) &&
            p->workers > p->min)
            break;
    }
    /* Counted out at once, under the lock: a submit from now on starts a
     * new worker, and other idle workers see that min is at stake. */
    p->workers--;
    p->leaving++;
    pthread_mutex_unlock(&p->lock);
    stage_loop *loop = stage__loop_get();
    if (loop)
        stage_loop_free(loop);
    pthread_mutex_lock(&p->lock);
    stage__list_push(&p->exited, &w->node);
    stage_future *drained = NULL;
    if (--p->leaving == 0 && p->workers == 0 && p->closing && p->drained)
        drained = stage_future_ref(p->drained);
    pthread_mutex_unlock(&p->lock);
    if (drained) {
        stage_future_resolve(drained, NULL, NULL);
        stage_future_unref(drained);
    }
    return NULL;
}

/* Join the workers that have left.  Called without the lock. */
static void reap(stage_pool *p)
{
    stage__list gone;
    stage__list_init(&gone);
    pthread_mutex_lock(&p->lock);
    stage__list_splice(&gone, &p->exited);
    pthread_mutex_unlock(&p->lock);
    stage__node *n;
    while ((n = stage__list_pop(&gone)) != NULL) {
        struct worker *w = stage__container_of(n, struct worker, node);
        pthread_join(w->thread, NULL);
        free(w);
    }
}

/* Start one worker.  Called with the lock held; 0 or EAGAIN/ENOMEM. */
static int start_worker(stage_pool *p)
{
    struct worker *w = malloc(sizeof *w);
    if (!w)
        return ENOMEM;
    w->pool = p;
    w->number = ++p->seq;
    stage__node_init(&w->node);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        free(w);
        return EAGAIN;
    }
    p->workers++;
    return 0;
}

int stage__pool_submit(stage_pool *p, stage_task_fn fn, void *arg,
                       stage_destroy_fn destroy, stage *owner,
                       stage_future **out)
{
    if (!p || !fn)
        return EINVAL;
    reap(p);
    struct job *j = malloc(sizeof *j);
    if (!j)
        return ENOMEM;
    j->task = stage__future_new_task();
    if (!j->task) {
        free(j);
        return ENOMEM;
    }
    if (owner) {
        stage__ref(owner);
        j->task->owner = owner;
    }
    j->fn = fn;
    j->arg = arg;
    j->destroy = destroy;
    j->detached = out == NULL && owner == NULL;
    pthread_mutex_lock(&p->lock);
    if (p->closing) {
        pthread_mutex_unlock(&p->lock);
        stage_future_unref(j->task);
        free(j);
        return EPIPE;
    }
    stage__list_push(&p->jobs, &j->node);
    p->njobs++;
    if (p->njobs > p->idle && p->workers < p->max) {
        int err = start_worker(p);
        if (err && p->workers == 0) {
            /* Nobody could ever run it: give it back. */
            stage__list_remove(&j->node);
            p->njobs--;
            pthread_mutex_unlock(&p->lock);
            stage_future_unref(j->task);
            free(j);
            return err;
        }
    }
    if (p->idle > 0)
        pthread_cond_signal(&p->work);
    if (out)
        *out = stage_future_ref(j->task);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int stage_pool_submit(stage_pool *p, stage_task_fn fn, void *arg,
                      stage_destroy_fn result_destroy, stage_future **out)
{
    return stage__pool_submit(p, fn, arg, result_destroy, NULL, out);
}

int stage_pool_close(stage_pool *p, unsigned int flags, double timeout)
{
    int64_t deadline;
    if (!p || (flags & ~STAGE_POOL_CANCEL) ||
        stage__deadline(timeout, &deadline))
        return EINVAL;
    if (tls_pool == p)
        return EDEADLK;
    stage__list dropped;
    stage__list_init(&dropped);
    pthread_mutex_lock(&p->lock);
    if (!p->closing && p->workers == 0 && p->leaving == 0)
        stage_future_resolve(p->drained, NULL, NULL);
    p->closing = 1;
    if (flags & STAGE_POOL_CANCEL) {
        stage__list_splice(&dropped, &p->jobs);
        p->njobs = 0;
    }
    stage_future *drained = stage_future_ref(p->drained);
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->lock);
    stage__node *n;
    while ((n = stage__list_pop(&dropped)) != NULL)
        drop_job(stage__container_of(n, struct job, node));
    int err = stage_future_wait(drained, timeout);
    stage_future_unref(drained);
    if (!err)
        reap(p);
    return err;
}

int stage_pool_free(stage_pool *p)
{
    if (!p)
        return EINVAL;
    pthread_mutex_lock(&p->lock);
    int busy = !p->closing || p->workers > 0 || p->leaving > 0;
    pthread_mutex_unlock(&p->lock);
    if (busy)
        return EBUSY;
    reap(p);
    stage_future_unref(p->drained);
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->lock);
    free(p);
    return 0;
}
