/* SPDX-License-Identifier: MIT */
/*
 * threaded-async.md, block 2: an async worker fed through queues.
 *
 * increment_worker is a coroutine on the runner (a Stage's loop thread,
 * as in block 1): it takes numbers from in_queue and puts each plus one
 * into out_queue, for ever.  The main thread, a plain thread, puts 0 to 9
 * (put_wait = stage_queue_put, blocking) and prints what comes back
 * (get_wait = stage_queue_get):
 *
 *   1
 *   ...
 *   10
 *
 * Then it cancels the worker (background_task.cancel() =
 * stage_future_cancel): its pending stage_queue_get returns ECANCELED, the
 * worker returns, and its future's get returns ECANCELED, which main
 * checks.  The queues hold integers as pointers (0 is a valid item).
 */
#include "seed.h"

#include <stage.h>
#include <stdint.h>
#include <stdio.h>

struct queues {
    stage_queue *in_queue, *out_queue;
};

/* Increment integers from in_queue and put them in out_queue. */
static void *increment_worker(void *arg)
{
    struct queues *q = arg;
    for (;;) {
        void *number;
        if (stage_queue_get(q->in_queue, &number, STAGE_FOREVER) != 0)
            return NULL; /* ECANCELED: cancelled */
        if (stage_queue_put(q->out_queue, (void *)((intptr_t)number + 1),
                            STAGE_FOREVER) != 0)
            return NULL;
    }
}

int main(void)
{
    int ok = 1;
    { /* with threaded_async.AsyncRunner() as runner: */
        stage *runner = stage_new("runner", 0, 0);
        struct queues q = {stage_queue_new(STAGE_QUEUE_UNBOUNDED, NULL),
                           stage_queue_new(STAGE_QUEUE_UNBOUNDED, NULL)};
        if (!runner || !q.in_queue || !q.out_queue)
            return 1;
        stage_future *background_task;
        if (stage_go_coro(runner, increment_worker, &q, NULL,
                          &background_task) != 0)
            return 1;
        for (intptr_t i = 0; i < 10; i++) {
            void *out;
            ok &= stage_queue_put(q.in_queue, (void *)i, STAGE_FOREVER) == 0;
            ok &= stage_queue_get(q.out_queue, &out, STAGE_FOREVER) == 0;
            printf("%d\n", (int)(intptr_t)out);
        }
        ok &= stage_future_cancel(background_task) == 0;
        void *value;
        ok &= stage_future_get(background_task, STAGE_FOREVER, &value) ==
              ECANCELED;
        stage_future_unref(background_task);
        stage_free(runner);
        stage_queue_unref(q.in_queue);
        stage_queue_unref(q.out_queue);
    }
    stage_loop_free(stage_loop_current());
    return ok ? 0 : 1;
}
