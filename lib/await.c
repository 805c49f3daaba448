/* SPDX-License-Identifier: MIT */
/*
 * await.c - custom awaitables: Python's __await__, in C.
 *
 * An awaitable is any object with a function that hands out a future for
 * one await (Python's __await__ returns an iterator for one await).
 * stage_await calls it, waits for the future with the one hybrid wait, and
 * hands the outcome over.  Nothing else is needed: the future is the
 * waitable interface of the library, so an object that can make or find
 * one (spawn a coroutine, submit to a pool, keep a stage_future of its own
 * and resolve it later) is awaitable from threads and coroutines alike.
 *
 * When the wait gives up (timeout, or the caller's cancellation) the
 * future is cancelled, as asyncio cancels what a cancelled task awaits and
 * what asyncio.wait_for gives up on; so an await leaves nothing running.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"

#include <errno.h>

int stage_await(stage_await_fn fn, void *object, double timeout,
                void **value)
{
    int64_t deadline;
    if (!fn || stage__deadline(timeout, &deadline))
        return EINVAL;
    /* Cancelled already: hand nothing out, so nothing is left to cancel. */
    if (stage_task_cancelled())
        return ECANCELED;
    errno = 0;
    stage_future *f = fn(object);
    if (!f)
        return errno > 0 ? errno : EINVAL;
    int err = stage_future_wait(f, timeout);
    if (err == ETIMEDOUT || err == ECANCELED) {
        stage_future_cancel(f);
    } else if (!err) {
        /* Settled: its outcome, and its value handed over. */
        err = value ? stage_future_take(f, value)
                    : stage_future_get(f, 0, NULL);
    }
    stage_future_unref(f);
    return err;
}
