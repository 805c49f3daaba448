/* SPDX-License-Identifier: MIT */
/*
 * asyncio-tutorial.md, cells 11-12: "What is an Event Loop?" - a task
 * created on a loop, shown while pending and again while it waits.
 *
 * loop.create_task(example_future()) is stage_coro_spawn on the main
 * thread's loop, and the notebook's `task` (its repr) is
 * stage_future_describe.  In the notebook the loop runs between the two
 * cells; here main lets its loop run until the task blocks (one
 * stage_yield), so the task has started (and printed its first line)
 * before the second description, and waits in its sleep:
 *
 *   <Task pending name='Task-1'>
 *   Initial state: False
 *   <Task pending name='Task-1' wait_for=<sleep 2.000s, 2.000s left>>
 *
 * Then main waits for it (our addition, so that the program ends): it
 * finishes its story and is described once more.
 *
 *   Final state: True
 *   Result: Task Completed
 *   <Task finished name='Task-1' result=NULL>
 *
 * It is Task-1, the process's first task, where the notebook had made 22
 * before.  asyncio also shows the coroutine and its line (coro=<...>),
 * which C cannot, and waits on a future of its own (wait_for=<Future
 * pending cb=[Task.__wakeup()]>) where libstage says what the task waits
 * on.  About 2 s.  Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>

static const char *py_bool(int b) { return b ? "True" : "False"; }

/* The coroutine of cell 10. */
static void *example_future(void *arg)
{
    (void)arg;
    stage_future *future = stage_future_new(); /* Create a Future object */
    printf("Initial state: %s\n",
           py_bool(stage_future_state(future) != STAGE_PENDING));

    /* Simulate computation */
    stage_sleep(seed_time(2));

    stage_future_resolve(future, "Task Completed", NULL); /* Mark as done */
    printf("Final state: %s\n",
           py_bool(stage_future_state(future) != STAGE_PENDING));
    void *result = NULL;
    stage_future_get(future, 0, &result);
    printf("Result: %s\n", (const char *)result);
    stage_future_unref(future);
    return NULL;
}

/* The notebook's `task` cell: print the task's repr. */
static void show(stage_future *task)
{
    char line[256];
    stage_future_describe(task, line, sizeof line);
    printf("%s\n", line);
}

int main(void)
{
    stage_loop *loop = stage_loop_current(); /* asyncio.get_event_loop() */
    stage_future *task;                      /* loop.create_task(...) */
    if (!loop ||
        stage_coro_spawn(loop, example_future, NULL, NULL, 0, &task) != 0)
        return 1;
    show(task); /* cell 11 */

    stage_yield(); /* the loop runs the task until it waits */
    show(task); /* cell 12 */

    stage_future_wait(task, STAGE_FOREVER);
    show(task);
    stage_future_unref(task);
    stage_loop_free(loop);
    return 0;
}
