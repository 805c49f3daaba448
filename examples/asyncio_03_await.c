/* SPDX-License-Identifier: MIT */
/*
 * asyncio-tutorial.md, cells 3-5: "Using Them Together" (a coroutine
 * awaited from main), "Awaitable" (inspect.isawaitable) and "Custom
 * Awaitables (Implementing __await__())".
 *
 * Cell 3: an "async def" is a plain C function run as a coroutine;
 * "await my_function()" is calling it (stage_sleep inside suspends only
 * the coroutine); asyncio.run is stage_run.  After 4 s:
 *
 *   Hello! from my_function()
 *
 * Cell 4: calling my_function() in Python makes a coroutine object, which
 * is awaitable, and is never awaited (Python warns about it).  Here the
 * call that makes the coroutine, stage_coro_spawn, gives its task's
 * future: a stage_future is what every wait of libstage takes, so it is
 * awaitable.  Nobody awaits it: it is cancelled before it starts, so, like
 * the Python coroutine, its body never runs (and nothing is printed on
 * stderr):
 *
 *   isawaitable =  True
 *
 * Cell 5: an awaitable object is an object and a function that hands out a
 * future for one await (stage_await_fn, Python's __await__).  This one
 * delegates to a 2 s sleep in a coroutine, which returns the message:
 *
 *   Custom Awaitable Done
 *
 * About 6 s in all.  Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <errno.h>
#include <stage.h>
#include <stdio.h>

/* ---- Cell 3 ---- */

/* async def my_function() */
static void *my_function(void *arg)
{
    (void)arg;
    stage_sleep(seed_time(4));
    printf("Hello! from my_function()\n");
    return NULL;
}

/* async def main(): await my_function() */
static void *amain(void *arg)
{
    return my_function(arg);
}

/* ---- Cell 5 ---- */

/* class CustomAwaitable */
struct custom_awaitable {
    double seconds;
};

/* What __await__ delegates to: asyncio.sleep(2), then the return value. */
static void *custom_awaitable_body(void *arg)
{
    const struct custom_awaitable *self = arg;
    if (stage_sleep(self->seconds) != 0)
        return NULL;
    return "Custom Awaitable Done";
}

/* def __await__(self): a future for this await (a new coroutine's). */
static stage_future *custom_awaitable_await(void *object)
{
    stage_future *f = NULL;
    errno = stage_coro_spawn(NULL, custom_awaitable_body, object, NULL, 0,
                             &f);
    return f;
}

/* async def main(): result = await CustomAwaitable(); print(result) */
static void *amain5(void *arg)
{
    (void)arg;
    struct custom_awaitable awaitable = {seed_time(2)};
    void *result = NULL;
    if (stage_await(custom_awaitable_await, &awaitable, STAGE_FOREVER,
                    &result) == 0)
        printf("%s\n", (const char *)result);
    return NULL;
}

int main(void)
{
    /* Cell 3: asyncio.run(main()) */
    stage_run(amain, NULL, NULL, NULL);

    /* Cell 4: inspect.isawaitable(my_function()) */
    stage_future *coro = NULL;
    stage_coro_spawn(NULL, my_function, NULL, NULL, 0, &coro);
    printf("isawaitable =  %s\n", coro != NULL ? "True" : "False");
    stage_future_cancel(coro); /* never awaited: it never runs */
    stage_future_wait(coro, STAGE_FOREVER);
    stage_future_unref(coro);

    /* Cell 5: asyncio.run(main()) */
    stage_run(amain5, NULL, NULL, NULL);

    stage_loop_free(stage_loop_current());
    return 0;
}
