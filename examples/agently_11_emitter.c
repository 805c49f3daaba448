/* SPDX-License-Identifier: MIT */
/*
 * agently-stage.md, block 11: "`EventEmitter`: Use It EXACTLY THE SAME AS
 * IT SHOULD BE USED IN NODEJS".
 *
 * An emitter (on the default Stage, like EventEmitter()) with one async
 * listener: a coroutine (STAGE_LISTENER_CORO) that prints what it got and
 * returns True to the emitter.  The event is emitted twice, each time
 * without waiting for anything: once from a task of another Stage (the
 * seed's `stage.go(lambda: emitter.emit(...))` inside `with Stage()`), then
 * from the main thread, which prints the responses of its emit:
 *
 *   I got: EventEmitter is Cool!
 *   I got: I'll say it again, EventEmitter is Cool!
 *   True
 *
 * In Python the order of the two "I got" lines comes from timing.  Here it
 * is fixed: the lambda returns its emit's responses (Python's lambda returns
 * emit's list too), and main waits for them before it emits again.
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>
#include <stdlib.h>

static stage_emitter *emitter;

/* Python's True, as a listener's return value. */
static const int True = 1;

/* async def listener(data): a coroutine on the emitter's Stage loop. */
static void *listener(const char *event, void *data, void *user_data)
{
    (void)event;
    (void)user_data;
    printf("I got: %s\n", (const char *)data);
    /* You can return value to emitter */
    return (void *)&True;
}

/* An emit's responses, as the lambda's result. */
struct responses {
    stage_future **v;
    size_t n;
};

static void responses_free(void *p)
{
    struct responses *r = p;
    for (size_t i = 0; i < r->n; i++)
        stage_future_unref(r->v[i]);
    free(r->v);
    free(r);
}

/* lambda: emitter.emit("data", "EventEmitter is Cool!") */
static void *emit_task(void *arg)
{
    (void)arg;
    struct responses *r = malloc(sizeof *r);
    if (!r || stage_emitter_emit(emitter, "data", "EventEmitter is Cool!",
                                 NULL, &r->v, &r->n) != 0) {
        free(r);
        return stage_task_fail(ENOMEM, "emit");
    }
    return r;
}

int main(void)
{
    int ok = 1;
    emitter = stage_emitter_new(NULL); /* EventEmitter(): the default Stage */
    if (!emitter)
        return 1;
    ok &= stage_emitter_on(emitter, "data", listener, NULL, NULL, NULL,
                           STAGE_LISTENER_CORO) == 0;

    stage_future *lambda;
    { /* with Stage() as stage: */
        stage *st = stage_new("stage", 0, 0);
        if (!st || stage_go(st, emit_task, NULL, responses_free, &lambda))
            return 1;
        stage_free(st);
    }
    /* The first emit's listener has answered before the second emit. */
    struct responses *first = NULL;
    ok &= stage_future_get(lambda, STAGE_FOREVER, (void **)&first) == 0;
    for (size_t i = 0; first && i < first->n; i++)
        ok &= stage_future_wait(first->v[i], STAGE_FOREVER) == 0;
    stage_future_unref(lambda);

    stage_future **responses;
    size_t count;
    ok &= stage_emitter_emit(emitter, "data",
                             "I'll say it again, EventEmitter is Cool!", NULL,
                             &responses, &count) == 0;
    /* Get responses from all event listeners */
    for (size_t i = 0; ok && i < count; i++) {
        void *value;
        ok &= stage_future_get(responses[i], STAGE_FOREVER, &value) == 0;
        printf("%s\n", ok && *(const int *)value ? "True" : "False");
        stage_future_unref(responses[i]);
    }
    free(responses);

    stage_emitter_unref(emitter);
    stage_loop_free(stage_loop_current());
    return ok ? 0 : 1;
}
