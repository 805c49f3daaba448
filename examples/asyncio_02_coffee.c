/* SPDX-License-Identifier: MIT */
/*
 * asyncio-tutorial.md, cell 2: "Example: Making Coffee and Pastry".
 *
 * The synchronous order blocks the main thread for the coffee (2 s) and
 * then the pastry (3 s): about 5 s.  The asynchronous order runs both as
 * coroutines of the main thread's loop, whose sleeps overlap: about 3 s.
 *
 * "Thread Name": Python names the main thread MainThread; C threads have
 * no such name, so the program remembers which thread is main and calls
 * it that (any other thread would be "Thread", but there is none: the
 * synchronous order blocks the main thread, and the asynchronous one runs
 * both coroutines on the main thread's own loop, as asyncio does).
 *
 * The seed prints with rich, whose colour markup ([red]...[/red]) is not
 * printed; the total times vary (the expected output matches any number).
 * gather = waiting for each task in turn.  Times are scaled by
 * STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <pthread.h>
#include <stage.h>
#include <stdio.h>

static pthread_t main_thread;

/* threading.current_thread().name */
static const char *current_thread_name(void)
{
    return pthread_equal(pthread_self(), main_thread) ? "MainThread"
                                                      : "Thread";
}

/* time.time(), in seconds (monotonic: only differences are printed). */
static double now(void) { return (double)stage_now() / 1e9; }

/* Synchronous approach */
static void make_coffee_sync(void)
{
    printf("\tMaking coffee... : Thread Name: %s\n", current_thread_name());
    blocking_sleep(seed_time(2)); /* Simulate coffee preparation time */
    printf("\tCoffee is ready!\n");
}

static void make_pastry_sync(void)
{
    printf("\tMaking pastry... : Thread Name: %s\n", current_thread_name());
    blocking_sleep(seed_time(3)); /* Simulate pastry preparation time */
    printf("\tPastry is ready!\n");
}

static void order_sync(void)
{
    double start_time = now();
    make_coffee_sync();
    make_pastry_sync();
    double end_time = now();
    printf("Total time: %.15g seconds\n", end_time - start_time);
}

/* Asynchronous approach: coroutines */
static void *make_coffee_async(void *arg)
{
    (void)arg;
    printf("\tMaking coffee... : Thread Name: %s\n", current_thread_name());
    stage_sleep(seed_time(2)); /* Simulate coffee preparation time */
    printf("\tCoffee is ready!\n");
    return NULL;
}

static void *make_pastry_async(void *arg)
{
    (void)arg;
    printf("\tMaking pastry... : Thread Name: %s\n", current_thread_name());
    stage_sleep(seed_time(3)); /* Simulate pastry preparation time */
    printf("\tPastry is ready!\n");
    return NULL;
}

static void *order_async(void *arg)
{
    (void)arg;
    double start_time = now();
    stage_future *tasks[2]; /* asyncio.create_task */
    stage_coro_spawn(NULL, make_coffee_async, NULL, NULL, 0, &tasks[0]);
    stage_coro_spawn(NULL, make_pastry_async, NULL, NULL, 0, &tasks[1]);
    for (int i = 0; i < 2; i++) { /* await asyncio.gather(*tasks) */
        stage_future_wait(tasks[i], STAGE_FOREVER);
        stage_future_unref(tasks[i]);
    }
    double end_time = now();
    printf("Total time: %.15g seconds\n", end_time - start_time);
    return NULL;
}

int main(void)
{
    main_thread = pthread_self();

    /* Run the synchronous example */
    printf("Synchronous approach: \n");
    double start_time = now();

    printf("Main thread entring order_sync()\n");
    order_sync();
    printf("Main thread exiting order_sync()\n");

    printf("Total time: %.15g seconds\n", now() - start_time);

    /* Run the asynchronous example */
    printf("\n\nAsynchronous approach: \n");

    start_time = now();

    printf("Main thread entring order_async()\n");
    stage_run(order_async, NULL, NULL, NULL); /* asyncio.run(order_async()) */
    printf("Main thread exiting order_async()\n");

    printf("Total time: %.15g seconds\n", now() - start_time);

    stage_loop_free(stage_loop_current());
    return 0;
}
