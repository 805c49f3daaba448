/* SPDX-License-Identifier: MIT */
/*
 * asyncio-tutorial.md, cells 7-10: "Example of Using Futures", "Example:
 * Understanding Future States in asyncio", "Cancelling a Future" and
 * "examples of future methods".
 *
 * Cell 7: a task created early runs while main sleeps ten seconds; its
 * future then gives the result at once.  Cells 8 and 10 (the same code):
 * a plain future goes from pending to done with its result.  Cell 9: a
 * cancelled future reports cancelled.
 *
 * future.done() is stage_future_state() != STAGE_PENDING; result() is
 * stage_future_get; Python's True/False are printed as Python prints them.
 * About 14 s in all (10 + 2 + 2).  Times are scaled by STAGE_TIME_SCALE
 * (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>

static const char *py_bool(int b) { return b ? "True" : "False"; }

static int done(stage_future *f)
{
    return stage_future_state(f) != STAGE_PENDING;
}

/* ---- Cell 7 ---- */

/* async def my_coroutine() */
static void *my_coroutine(void *arg)
{
    (void)arg;
    stage_sleep(seed_time(1));
    printf("\tTask done...\n");
    return "My Coroutine completed";
}

static void *amain(void *arg)
{
    (void)arg;
    /* Create a Task (which returns a Future) */
    printf("Starting Coroutine...\n");
    stage_future *future;
    stage_coro_spawn(NULL, my_coroutine, NULL, NULL, 0, &future);

    printf("Going to Maldives on a 2 day vacation\n");
    stage_sleep(seed_time(10));
    printf("Come back from vacation\n");

    /* Await the Future */
    void *result = NULL;
    stage_future_get(future, STAGE_FOREVER, &result);
    printf("future =  %s\n", (const char *)result);
    stage_future_unref(future);
    return NULL;
}

/* ---- Cells 8 and 10 ---- */

static void *example_future(void *arg)
{
    (void)arg;
    stage_future *future = stage_future_new(); /* Create a Future object */
    printf("Initial state: %s\n", py_bool(done(future))); /* False */

    /* Simulate computation */
    stage_sleep(seed_time(2));

    stage_future_resolve(future, "Task Completed", NULL); /* Mark as done */
    printf("Final state: %s\n", py_bool(done(future))); /* True */
    void *result = NULL;
    stage_future_get(future, 0, &result);
    printf("Result: %s\n", (const char *)result); /* "Task Completed" */
    stage_future_unref(future);
    return NULL;
}

/* ---- Cell 9 ---- */

static void *example_cancellation(void *arg)
{
    (void)arg;
    stage_future *future = stage_future_new();

    stage_future_cancel(future); /* Cancelling the future */
    printf("Cancelled: %s\n",
           py_bool(stage_future_state(future) == STAGE_CANCELLED));
    stage_future_unref(future);
    return NULL;
}

int main(void)
{
    stage_run(amain, NULL, NULL, NULL);                /* cell 7 */
    stage_run(example_future, NULL, NULL, NULL);       /* cell 8 */
    stage_run(example_cancellation, NULL, NULL, NULL); /* cell 9 */
    stage_run(example_future, NULL, NULL, NULL);       /* cell 10 */

    stage_loop_free(stage_loop_current());
    return 0;
}
