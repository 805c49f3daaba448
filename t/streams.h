/* SPDX-License-Identifier: MIT */
/*
 * streams.h - helpers shared by the Check programs of the stream
 * primitives (check_queue, check_event, check_tunnel), on top of common.h:
 *
 *   - a "host": a thread task that runs its own loop, so tests can start
 *     coroutines on a loop other than main's (stage_coro_spawn onto another
 *     thread's loop) while that thread sits in stage_loop_run;
 *   - t_start(): run a function as a thread task, a coroutine of the main
 *     thread's loop, or a coroutine of the host, by one switch;
 *     t_start_about(): the same, returning once the body is about to block
 *     (it calls t_about() right before its blocking call);
 *   - t_run_cancelled(): run a body that goes on as a cancelled task;
 *   - t_wait(): wait for a task from main (which runs main's coroutines
 *     meanwhile) and check that it finished.
 */
#ifndef STAGE_T_STREAMS_H
#define STAGE_T_STREAMS_H

#include "common.h"

/* Where a test body runs. */
enum { ON_THREAD, ON_MAIN, ON_HOST, ON_N };

static const char *const t_where_name[ON_N] = {"thread", "main coroutine",
                                               "host coroutine"};

typedef struct t_host {
    stage_future *thread; /* the host's task */
    stage_future *ready;  /* resolved once `loop` is set */
    stage_future *stop;   /* resolved by t_host_stop: no more spawns */
    stage_loop *loop;
} t_host;

static void *t_host_body(void *arg)
{
    t_host *h = arg;

    h->loop = stage_loop_current();
    stage_future_resolve(h->ready, NULL, NULL);
    stage_loop_run(h->loop, h->stop, STAGE_FOREVER);
    /* Then let the coroutines still running finish. */
    stage_loop_run(h->loop, NULL, STAGE_FOREVER);
    return NULL;
}

static inline void t_host_start(t_host *h)
{
    h->ready = stage_future_new();
    h->stop = stage_future_new();
    ck_assert_ptr_nonnull(h->ready);
    ck_assert_ptr_nonnull(h->stop);
    ck_assert_int_eq(stage_thread_spawn(t_host_body, h, NULL, &h->thread), 0);
    ck_assert_int_eq(stage_future_wait(h->ready, 10.0 * t_tol()), 0);
}

/* Ends the host once its coroutines are done. */
static inline void t_host_stop(t_host *h)
{
    ck_assert_int_eq(stage_future_resolve(h->stop, NULL, NULL), 0);
    ck_assert_int_eq(stage_future_wait(h->thread, 60.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_state(h->thread), STAGE_DONE);
    stage_future_unref(h->thread);
    stage_future_unref(h->ready);
    stage_future_unref(h->stop);
}

/* Start fn(arg) `where`; returns its future (one reference). */
static inline stage_future *t_start(int where, t_host *h, stage_task_fn fn,
                                    void *arg)
{
    stage_future *f = NULL;

    if (where == ON_THREAD)
        ck_assert_int_eq(stage_thread_spawn(fn, arg, NULL, &f), 0);
    else
        ck_assert_int_eq(stage_coro_spawn(where == ON_HOST ? h->loop : NULL,
                                          fn, arg, NULL, 64 * 1024, &f),
                         0);
    return f;
}

/* Opened by a test body right before its blocking call (NULL: no latch). */
static inline void t_about(stage_future *about)
{
    if (about != NULL)
        stage_future_resolve(about, NULL, NULL);
}

/* t_start, then wait until the body called t_about(*about) with the new
 * latch made here; the latch is released and *about reset to NULL. */
static inline stage_future *t_start_about(int where, t_host *h,
                                          stage_task_fn fn, void *arg,
                                          stage_future **about)
{
    stage_future *f;

    *about = stage_future_new();
    ck_assert_ptr_nonnull(*about);
    f = t_start(where, h, fn, arg);
    ck_assert_int_eq(stage_future_wait(*about, 10.0 * t_tol()), 0);
    stage_future_unref(*about);
    *about = NULL;
    return f;
}

/* Wait for a task started by t_start to finish (state `want`), drop it. */
static inline void t_finish(stage_future *f, stage_state want)
{
    ck_assert_int_eq(stage_future_wait(f, 60.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_state(f), want);
    stage_future_unref(f);
}

/* Give tasks that were just released a chance to block in their call.
 * Never needed for correctness (each test's outcome is the same whether or
 * not they blocked first); it makes the blocked path the one exercised.
 * Main's sleep also runs main's coroutines up to their blocking call. */
static inline void t_settle(void)
{
    ck_assert_int_eq(stage_sleep(0.02), 0);
}

/* In a test body: open `about`, then block until the task is cancelled;
 * returns what that wait returned (ECANCELED, if all went well). */
static inline int t_until_cancelled(stage_future *about)
{
    stage_future *never = stage_future_new();
    int rc;

    t_about(about);
    rc = stage_future_wait(never, STAGE_FOREVER);
    stage_future_unref(never);
    return rc;
}

/* Start fn(arg) `where`, wait until it blocks in t_until_cancelled(*about),
 * cancel it, and wait until it ended, cancelled: what fn does after that
 * runs in a cancelled task. */
static inline void t_run_cancelled(int where, t_host *h, stage_task_fn fn,
                                   void *arg, stage_future **about)
{
    stage_future *f = t_start_about(where, h, fn, arg, about);

    t_settle();
    ck_assert_int_eq(stage_future_cancel(f), 0);
    t_finish(f, STAGE_CANCELLED);
}

#endif /* STAGE_T_STREAMS_H */
