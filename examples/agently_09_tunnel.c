/* SPDX-License-Identifier: MIT */
/*
 * agently-stage.md, block 9: "`Tunnel`: Streaming Data Transportation
 * Between Threads and Coroutines is SO EASY!"
 *
 * A tunnel (a broadcast stream: every reader sees every item) is read by a
 * thread consumer (on the Stage's pool) and an async consumer (a coroutine
 * of the Stage); one second later a provider coroutine puts 1 to 5, one
 * every 0.1 s, and ends the stream (tunnel.put_stop() = stage_tunnel_close).
 * Once the Stage has closed, tunnel.get() = stage_tunnel_collect returns
 * the whole stream.
 *
 * In Python the output order comes from the timing.  Here it is fixed: the
 * thread consumer, after its time.sleep(1), waits on an event that the
 * async consumer sets once it has read the whole stream, and only then
 * opens its reader (tunnel.get_gen()), which replays the stream from the
 * start.  So the output is always:
 *
 *   async streaming: 1
 *   ...
 *   async streaming: 5
 *   streaming: 1
 *   ...
 *   streaming: 5
 *   [1, 2, 3, 4, 5]
 *
 * about 1.5 s in all.  Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static stage_tunnel *tunnel;
static stage_event *async_done; /* set when async_consumer has read all */

static void *consumer(void *arg)
{
    (void)arg;
    blocking_sleep(seed_time(1)); /* time.sleep(1) */
    stage_event_wait(async_done, STAGE_FOREVER, NULL);
    /* gen = tunnel.get_gen(): a reader with the tunnel's idle timeout. */
    stage_tunnel_reader *gen =
        stage_tunnel_reader_new(tunnel, STAGE_TUNNEL_INHERIT);
    void *data;
    int err;
    while ((err = stage_tunnel_next(gen, &data)) == 0)
        printf("streaming: %d\n", (int)(intptr_t)data);
    stage_tunnel_reader_free(gen);
    return (void *)(intptr_t)err;
}

static void *async_consumer(void *arg)
{
    (void)arg;
    /* async for data in tunnel: */
    stage_tunnel_reader *it =
        stage_tunnel_reader_new(tunnel, STAGE_TUNNEL_INHERIT);
    void *data;
    int err;
    while ((err = stage_tunnel_next(it, &data)) == 0)
        printf("async streaming: %d\n", (int)(intptr_t)data);
    stage_tunnel_reader_free(it);
    stage_event_set(async_done, NULL);
    return (void *)(intptr_t)err;
}

static void *provider(void *arg)
{
    intptr_t n = (intptr_t)arg;
    for (intptr_t i = 0; i < n; i++) {
        stage_tunnel_put(tunnel, (void *)(i + 1));
        stage_sleep(seed_time(0.1));
    }
    /* If you forget to close it, readers stop after their idle timeout
     * (10 s by default). */
    stage_tunnel_close(tunnel); /* tunnel.put_stop() */
    return NULL;
}

int main(void)
{
    /* tunnel = Tunnel(): idle timeout 10 s (STAGE_TUNNEL_TIMEOUT), and it
     * keeps every item (history 0), so late readers replay them all. */
    tunnel = stage_tunnel_new(STAGE_TUNNEL_INHERIT, 0, NULL);
    async_done = stage_event_new();
    if (!tunnel || !async_done)
        return 1;

    stage_future *c, *ac;
    { /* with Stage() as stage: */
        stage *st = stage_new("stage", 0, 0);
        /* Start the consumers first. */
        stage_go(st, consumer, NULL, NULL, &c);
        stage_go_coro(st, async_consumer, NULL, NULL, &ac);
        /* The provider starts providing data some time later. */
        blocking_sleep(seed_time(1));
        stage_go_coro(st, provider, (void *)(intptr_t)5, NULL, NULL);
        stage_close(st, STAGE_FOREVER);
        stage_free(st);
    }

    /* print(tunnel.get()) */
    void **items, *cerr = NULL, *acerr = NULL;
    size_t count;
    int err = stage_tunnel_collect(tunnel, STAGE_TUNNEL_INHERIT, &items,
                                   &count);
    printf("[");
    for (size_t i = 0; i < count; i++)
        printf("%s%d", i ? ", " : "", (int)(intptr_t)items[i]);
    printf("]\n");
    free(items);

    int ok = err == 0 && stage_future_get(c, 0, &cerr) == 0 &&
             stage_future_get(ac, 0, &acerr) == 0 &&
             (intptr_t)cerr == EPIPE && (intptr_t)acerr == EPIPE;
    stage_future_unref(c);
    stage_future_unref(ac);
    stage_event_unref(async_done);
    stage_tunnel_unref(tunnel);
    stage_loop_free(stage_loop_current());
    return ok ? 0 : 1;
}
