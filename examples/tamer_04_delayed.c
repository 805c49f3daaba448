/* SPDX-License-Identifier: MIT */
/*
 * async-tamer.md, block 4: "Returning Results" - DelayedResult.
 *
 * In a scope, a task's future is its delayed result: pass it around (here
 * to post_process, which awaits it in a coroutine), read it without
 * blocking (DelayedResult.value: stage_future_get with timeout 0 says
 * ETIMEDOUT, "not arrived yet", where Python raises AttributeError), or
 * block on it from a thread (DelayedResult.block(): stage_future_wait).
 * Prints, in about 0.1 s:
 *
 *   scope > result: Not yet available.
 *   scope > result: Status 200: `You are very awesome!`
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A tuple (return code, message) as one malloc'd struct. */
struct reply {
    int ret_code;
    char msg[64];
};

/* @tamed async def request(delay) */
static void *request(void *arg)
{
    const double *delay = arg;
    stage_sleep(seed_time(*delay));
    struct reply *reply = malloc(sizeof *reply);
    if (!reply)
        return stage_task_fail(ENOMEM, "no memory");
    reply->ret_code = 200;
    snprintf(reply->msg, sizeof reply->msg, "You are awesome!");
    return reply;
}

/* @tamed async def post_process(raw_result) */
static void *post_process(void *arg)
{
    stage_future *raw_result = arg;
    void *value;
    int err = stage_future_get(raw_result, STAGE_FOREVER, &value); /* await */
    if (err)
        return stage_task_fail(err, "no raw result");
    const struct reply *raw = value;
    struct reply *reply = malloc(sizeof *reply);
    if (!reply)
        return stage_task_fail(ENOMEM, "no memory");
    /* a, b = msg.rsplit(" ", 1); " ".join((a, "very", b)) */
    const char *b = strrchr(raw->msg, ' ');
    int a = b ? (int)(b - raw->msg) : 0;
    reply->ret_code = raw->ret_code;
    if (snprintf(reply->msg, sizeof reply->msg, "%.*s very %s", a, raw->msg,
                 b ? b + 1 : raw->msg) >= (int)sizeof reply->msg) {
        free(reply);
        return stage_task_fail(EOVERFLOW, "message too long");
    }
    return reply;
}

int main(void)
{
    static const double delay = 0.1;
    stage_future *raw_result, *result;
    void *value;

    /* with AsyncScope() as scope: */
    stage_scope *scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    if (!scope)
        return 1;
    if (stage_scope_go_coro(scope, request, (void *)&delay, free,
                            &raw_result) ||
        stage_scope_go_coro(scope, post_process, raw_result, free, &result))
        return 1; /* <-- pass it around */

    if (stage_future_get(result, 0, &value) == ETIMEDOUT) /* not yet */
        printf("scope > result: Not yet available.\n");

    stage_future_wait(result, STAGE_FOREVER); /* <-- block in sync context */
    if (stage_future_get(result, 0, &value) == 0) {
        const struct reply *reply = value;
        printf("scope > result: Status %d: `%s`\n", reply->ret_code,
               reply->msg);
    }
    int err = stage_scope_close(scope, STAGE_FOREVER);
    stage_scope_free(scope);

    stage_future_unref(result);
    stage_future_unref(raw_result);
    stage_loop_free(stage_loop_current());
    return err ? 1 : 0;
}
