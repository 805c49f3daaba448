/* SPDX-License-Identifier: MIT */
/*
 * asyncio-tutorial.md, cell 1: nest_asyncio (the nested-loop problem).
 *
 * asyncio refuses to run a loop inside a running loop ("RuntimeError: This
 * event loop is already running"), so a notebook, whose loop is always
 * running, must patch asyncio with nest_asyncio before it can call
 * asyncio.run.  libstage needs no patch: stage_run inside a coroutine runs
 * the function inline, a thread blocked in any libstage call keeps running
 * its loop, and stage_loop_run(loop, future) inside one of that loop's own
 * coroutines is just a wait.  This program nests all three, three levels
 * deep, and then prints the seed's message (with the seed's colour codes):
 *
 *    Successfully enable Colab/Jupyter Notebook to handle nested event loop
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>
#include <string.h>

/* A coroutine function: waits a little, returns a word. */
static void *leaf(void *arg)
{
    stage_sleep(seed_time(0.01));
    return arg;
}

/* Runs inside a running loop (a coroutine of main's loop): the nested
 * "asyncio.run" and "loop.run_until_complete" of the notebook. */
static void *inner(void *arg)
{
    (void)arg;
    void *r = NULL;
    /* asyncio.run(leaf()) inside a running loop. */
    if (stage_run(leaf, "run", NULL, &r) != 0 || strcmp(r, "run") != 0)
        return NULL;
    /* loop.run_until_complete(task) on the loop that runs us. */
    stage_future *task;
    if (stage_coro_spawn(NULL, leaf, "until", NULL, 0, &task) != 0)
        return NULL;
    int err = stage_loop_run(stage_loop_current(), task, STAGE_FOREVER);
    if (!err)
        err = stage_future_get(task, 0, &r);
    stage_future_unref(task);
    return err ? NULL : r;
}

static void *outer(void *arg)
{
    (void)arg;
    void *r = NULL;
    /* One more level: a nested run whose function nests again. */
    if (stage_run(inner, NULL, NULL, &r) != 0 || r == NULL)
        return NULL;
    return r;
}

int main(void)
{
    void *r = NULL;
    /* asyncio.run(outer()) from the main thread: the outermost loop. */
    if (stage_run(outer, NULL, NULL, &r) != 0 || r == NULL ||
        strcmp(r, "until") != 0)
        return 1;

    printf("\033[94m Successfully enable Colab/Jupyter Notebook to handle "
           "nested event loop \033[0m\n");

    stage_loop_free(stage_loop_current());
    return 0;
}
