/* SPDX-License-Identifier: MIT */
/*
 * athreading.md, block 3: "Iterator -> AsyncIterator", Synchronous.
 * (Block 4, the asynchronous half: athreading_04_iterate_async.c.)
 *
 * worker(3) is a generator: every 0.5 s (blocking) it yields the current
 * time.  In C a generator is a struct holding its state and a function that
 * produces the next item, returning 0 when exhausted.  Four streams of three
 * items, one after the other, take 6 s and print:
 *
 *   stream: 0 time: 2023-12-05 09:37:38.758954
 *   stream: 0 time: 2023-12-05 09:37:39.259106
 *   ...
 *   stream: 3 time: 2023-12-05 09:37:44.263225
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stdio.h>

/* def worker(n): for i in range(n): time.sleep(0.5); yield now() */
struct worker {
    int i, n;
};

static struct worker worker(int n)
{
    struct worker w = {0, n};
    return w;
}

static int worker_next(struct worker *w, char value[27])
{
    if (w->i == w->n)
        return 0; /* StopIteration */
    w->i++;
    blocking_sleep(seed_time(0.5));
    seed_datetime_now(value);
    return 1;
}

static void print_stream(int id, struct worker *stream)
{
    char value[27];
    while (worker_next(stream, value)) /* for value in stream: */
        printf("stream: %d time: %s\n", id, value);
}

int main(void)
{
    for (int sid = 0; sid < 4; sid++) {
        struct worker stream = worker(3);
        print_stream(sid, &stream);
    }
    return 0;
}
