/* SPDX-License-Identifier: MIT */
/*
 * athreading.md, "Generator -> AsyncGenerator" (no code in the seed: both
 * halves say TODO).
 *
 * athreading.generate turns a Generator (one that also receives values
 * through send()) into an AsyncGenerator.  In libstage that is a lockstep
 * generator (buffer 0): the producer, a blocking function on a pool thread,
 * runs only on demand, and each stage_gen_yield returns the value that the
 * consumer's next stage_gen_send handed over.  The consumer is a
 * coroutine, so its waits suspend it only.
 *
 * echo(3) sleeps 0.5 s (blocking) and yields what it was last sent, three
 * times.  As in Python, the first send must be None (its value is
 * ignored: no yield is waiting for it); the send after the last item
 * ends the stream (StopIteration = EPIPE).  1.5 s in all:
 *
 *   send None -> echo: None
 *   send 1 -> echo: 1
 *   send 2 -> echo: 2
 *   send 3 -> end of stream
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* def echo(n):
 *     value = None
 *     for i in range(n):
 *         time.sleep(0.5)
 *         value = yield f"echo: {value}"                                  */
static void echo(stage_gen *gen, void *arg)
{
    intptr_t n = (intptr_t)arg;
    void *value = NULL;
    for (intptr_t i = 0; i < n; i++) {
        blocking_sleep(seed_time(0.5));
        char *item = malloc(64);
        if (!item)
            return;
        snprintf(item, 64, "echo: %s", value ? (char *)value : "None");
        if (stage_gen_yield(gen, item, &value) != 0) {
            free(item);
            return;
        }
    }
}

/* async def asend_all(stream): async with stream: ... await stream.asend */
static void *asend_all(void *arg)
{
    stage_gen *stream = arg;
    static char *const values[] = {NULL, "1", "2", "3"};
    int err = 0;
    for (int i = 0; i < 4 && err == 0; i++) {
        void *item;
        err = stage_gen_send(stream, values[i], &item, STAGE_FOREVER);
        printf("send %s -> ", values[i] ? values[i] : "None");
        if (err == 0) {
            printf("%s\n", (char *)item);
            free(item);
        } else {
            printf("%s\n", err == EPIPE ? "end of stream" : "error");
        }
    }
    stage_gen_close(stream);
    return (void *)(intptr_t)(err == EPIPE);
}

int main(void)
{
    stage *executor = stage_new("executor", 1, 0);
    stage_gen *stream;
    stage_future *task;
    void *ok = NULL;
    if (!executor ||
        stage_go_gen(executor, echo, (void *)(intptr_t)3, free, 0,
                     STAGE_GEN_LAZY, &stream) != 0 ||
        stage_coro_spawn(NULL, asend_all, stream, NULL, 0, &task) != 0)
        return 1;
    /* asyncio.run(...): the main thread runs its loop until it is done. */
    int err = stage_future_get(task, STAGE_FOREVER, &ok);
    stage_future_unref(task);
    stage_gen_unref(stream);
    stage_free(executor);
    stage_loop_free(stage_loop_current());
    return err == 0 && ok ? 0 : 1;
}
