/* SPDX-License-Identifier: MIT */
/*
 * task.c - the current task, task failure, and tasks on threads.
 *
 * A task is a function running as a coroutine or as the root of a thread,
 * plus its future.  For a coroutine the loop knows it (loop->current); for a
 * thread started by stage_thread_spawn it is kept in tls_root_task.  A plain
 * thread (main, or one the application made) runs no task and is never
 * cancelled.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static _Thread_local stage_future *tls_root_task STAGE__TLS_MODEL;

stage_future *stage__task_current(void)
{
    stage_loop *loop = stage__loop_get();
    if (loop && loop->current)
        return loop->current->task;
    return tls_root_task;
}

stage_future *stage_task_self(void) { return stage__task_current(); }

int stage_task_cancelled(void)
{
    stage_future *t = stage__task_current();
    return t ? stage__task_cancel_requested(t) : 0;
}

void *stage_task_fail(int err, const char *fmt, ...)
{
    stage_future *t = stage__task_current();
    if (!t)
        return NULL;
    char *msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&msg, fmt, ap) < 0)
            msg = NULL;
        va_end(ap);
    }
    stage__task_set_failure(t, err > 0 ? err : EINVAL, msg);
    return NULL;
}

struct thread_start {
    stage__node node; /* on `exited` once the thread is leaving */
    pthread_t thread;
    stage_task_fn fn;
    void *arg;
    stage_destroy_fn destroy;
    stage_future *task; /* the thread's reference */
    int detached;
};

/*
 * Task threads are joinable, and joined by the library: a finishing thread
 * queues itself on `exited` just before it settles its future, and the next
 * stage_thread_spawn, or the exit handler, joins it.  So no thread of ours
 * is half-way through its exit when the process ends (valgrind would count
 * its TLS block as possibly lost), and none is left unjoined.
 * exited_lock protects `exited`; it is taken alone.
 */
static pthread_mutex_t exited_lock = PTHREAD_MUTEX_INITIALIZER;
static stage__list exited = {&exited, &exited};
static pthread_once_t reaper_once = PTHREAD_ONCE_INIT;

static void reap_threads(void)
{
    stage__list gone;
    stage__list_init(&gone);
    pthread_mutex_lock(&exited_lock);
    stage__list_splice(&gone, &exited);
    pthread_mutex_unlock(&exited_lock);
    stage__node *n;
    while ((n = stage__list_pop(&gone)) != NULL) {
        struct thread_start *ts =
            stage__container_of(n, struct thread_start, node);
        pthread_join(ts->thread, NULL);
        free(ts);
    }
}

/* In the child of a fork(): the parent's finished threads are not ours to
 * join (a new thread of the child may even reuse a pthread_t). */
static void forget_threads(void)
{
    pthread_mutex_init(&exited_lock, NULL);
    stage__node *n;
    while ((n = stage__list_pop(&exited)) != NULL)
        free(stage__container_of(n, struct thread_start, node));
}

static void register_reaper(void)
{
    atexit(reap_threads);
    pthread_atfork(NULL, NULL, forget_threads);
}

void *stage__task_run_body(stage_future *task, stage_task_fn fn, void *arg)
{
    stage_future *outer = tls_root_task;
    tls_root_task = task;
    void *result = NULL;
    if (!stage__task_cancel_requested(task))
        result = fn(arg);
    tls_root_task = outer;
    return result;
}

static void *thread_main(void *p)
{
    struct thread_start *ts = p;
    void *result = stage__task_run_body(ts->task, ts->fn, ts->arg);
    /* Settle as the thread's last act: once a waiter sees the result, the
     * thread holds nothing of libstage any more. */
    stage_loop *loop = stage__loop_get();
    if (loop)
        stage_loop_free(loop);
    /* Queue for joining before settling: whoever saw the result and then
     * reaps is sure to find (and wait for) this thread.  The reaper frees
     * ts only after the join, so it stays valid to the end. */
    pthread_mutex_lock(&exited_lock);
    stage__list_push(&exited, &ts->node);
    pthread_mutex_unlock(&exited_lock);
    stage__task_finish(ts->task, result, ts->destroy, ts->detached);
    stage_future_unref(ts->task);
    return NULL;
}

int stage_thread_spawn(stage_task_fn fn, void *arg,
                       stage_destroy_fn result_destroy, stage_future **out)
{
    if (!fn)
        return EINVAL;
    pthread_once(&reaper_once, register_reaper);
    reap_threads();
    struct thread_start *ts = malloc(sizeof *ts);
    if (!ts)
        return ENOMEM;
    ts->task = stage__future_new_task();
    if (!ts->task) {
        free(ts);
        return ENOMEM;
    }
    ts->fn = fn;
    ts->arg = arg;
    ts->destroy = result_destroy;
    ts->detached = out == NULL;
    if (out)
        stage_future_ref(ts->task);
    stage_future *task = ts->task; /* ts belongs to the thread once it runs */
    int err = pthread_create(&ts->thread, NULL, thread_main, ts);
    if (err) {
        if (out)
            stage_future_unref(ts->task);
        stage_future_unref(ts->task);
        free(ts);
        return EAGAIN;
    }
    if (out)
        *out = task;
    return 0;
}
