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
    stage_task_fn fn;
    void *arg;
    stage_destroy_fn destroy;
    stage_future *task; /* the thread's reference */
    int detached;
};

static void *thread_main(void *p)
{
    struct thread_start *ts = p;
    tls_root_task = ts->task;
    void *result = NULL;
    if (!stage__task_cancel_requested(ts->task))
        result = ts->fn(ts->arg);
    /* Settle as the thread's last act: once a waiter sees the result, the
     * thread holds nothing of libstage any more. */
    stage_loop *loop = stage__loop_get();
    if (loop)
        stage_loop_free(loop);
    tls_root_task = NULL;
    stage__task_finish(ts->task, result, ts->destroy, ts->detached);
    stage_future_unref(ts->task);
    free(ts);
    return NULL;
}

int stage_thread_spawn(stage_task_fn fn, void *arg,
                       stage_destroy_fn result_destroy, stage_future **out)
{
    if (!fn)
        return EINVAL;
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
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    stage_future *task = ts->task; /* ts belongs to the thread once it runs */
    pthread_t th;
    int err = pthread_create(&th, &attr, thread_main, ts);
    pthread_attr_destroy(&attr);
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
