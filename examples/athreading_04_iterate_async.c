/* SPDX-License-Identifier: MIT */
/*
 * athreading.md, block 4: "Iterator -> AsyncIterator", Asynchronous.
 *
 * worker(3) of block 3 (a blocking generator: every 0.5 s it yields the
 * current time) now runs on an executor of 4 threads: stage_go_gen on a
 * Stage with 4 workers runs each producer on a pool thread
 * (athreading.iterate(worker(3), executor)).  Four consumers, coroutines of
 * the main thread's loop gathered by waiting for their four futures
 * (asyncio.gather), print the streams as they come, so the four streams
 * overlap and the story takes about 1.5 s, not 6 s.
 *
 * In Python the order within a round is that of the asyncio schedule.
 * Here it is fixed with events: the consumer of stream k prints its item
 * of round r only once stream k-1 has printed its own (turn[k-1][r] is
 * set), and stream 0 only once the last stream has printed its item of
 * the round before, so each round prints streams 0, 1, 2, 3:
 *
 *   stream: 0 time: 2023-12-05 09:37:15.834115
 *   stream: 1 time: 2023-12-05 09:37:15.835140
 *   stream: 2 time: 2023-12-05 09:37:15.835749
 *   stream: 3 time: 2023-12-05 09:37:15.836387
 *   stream: 0 time: ...
 *
 * (The seed's output shows 1 s between rounds, for a 0.5 s sleep; ours
 * shows 0.5 s.)  Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define STREAMS 4
#define ITEMS 3

/* def worker(n): for i in range(n): time.sleep(0.5); yield now()
 * (on a pool thread: it blocks the thread). */
static void worker(stage_gen *gen, void *arg)
{
    intptr_t n = (intptr_t)arg;
    for (intptr_t i = 0; i < n; i++) {
        blocking_sleep(seed_time(0.5));
        char *value = malloc(27);
        if (!value)
            return;
        seed_datetime_now(value);
        if (stage_gen_yield(gen, value, NULL) != 0) {
            free(value); /* refused: still ours */
            return;
        }
    }
}

/* turn[k][r]: stream k has printed its item of round r. */
static stage_event *turn[STREAMS][ITEMS];

struct stream {
    int id;
    stage_gen *gen;
};

/* async def aprint_stream(id, stream): async with stream: async for ... */
static void *aprint_stream(void *arg)
{
    struct stream *s = arg;
    void *value;
    int err, r = 0;
    while ((err = stage_gen_next(s->gen, &value, STAGE_FOREVER)) == 0) {
        if (r < ITEMS && s->id > 0) /* wait for the previous stream */
            stage_event_wait(turn[s->id - 1][r], STAGE_FOREVER, NULL);
        else if (r < ITEMS && r > 0) /* stream 0: for the previous round */
            stage_event_wait(turn[STREAMS - 1][r - 1], STAGE_FOREVER, NULL);
        printf("stream: %d time: %s\n", s->id, (char *)value);
        free(value);
        if (r < ITEMS)
            stage_event_set(turn[s->id][r], NULL);
        r++;
    }
    stage_gen_close(s->gen); /* leaving `async with stream` */
    return (void *)(intptr_t)(err == EPIPE && r == ITEMS);
}

int main(void)
{
    int ok = 1;
    for (int k = 0; k < STREAMS; k++)
        for (int r = 0; r < ITEMS; r++)
            if (!(turn[k][r] = stage_event_new()))
                return 1;

    /* executor = ThreadPoolExecutor(max_workers=4) */
    stage *executor = stage_new("executor", 4, 0);
    if (!executor)
        return 1;
    struct stream streams[STREAMS];
    stage_future *tasks[STREAMS];
    for (int sid = 0; sid < STREAMS; sid++) {
        streams[sid].id = sid;
        if (stage_go_gen(executor, worker, (void *)(intptr_t)ITEMS, free, 1,
                         0, &streams[sid].gen) != 0 ||
            stage_coro_spawn(NULL, aprint_stream, &streams[sid], NULL, 0,
                             &tasks[sid]) != 0)
            return 1;
    }
    /* await asyncio.gather(...): the main thread runs its loop meanwhile. */
    for (int sid = 0; sid < STREAMS; sid++) {
        void *done = NULL;
        ok &= stage_future_get(tasks[sid], STAGE_FOREVER, &done) == 0 &&
              done != NULL;
        stage_future_unref(tasks[sid]);
        stage_gen_unref(streams[sid].gen);
    }
    stage_free(executor);
    for (int k = 0; k < STREAMS; k++)
        for (int r = 0; r < ITEMS; r++)
            stage_event_unref(turn[k][r]);
    stage_loop_free(stage_loop_current());
    return ok ? 0 : 1;
}
