/* SPDX-License-Identifier: MIT */
/*
 * async-tamer.md, block 7: "The `AsyncScope`" - exit modes: a rate
 * limiter shut down by exit mode "cancel".
 *
 * The service layer scope runs generate_tokens, an endless loop that adds
 * a token every second; its exit mode is STAGE_SCOPE_CANCEL, so closing it
 * cancels that loop (its stage_sleep returns ECANCELED) instead of waiting
 * for ever.  The inner batch scope (exit mode wait) makes six requests:
 * three at once (the initial burst of tokens), then one per second.
 *
 * The seed's get_token polls (`while tokens == 0: await sleep(0)`).  Here
 * the tokens are items of a bounded queue: get_token waits for one with
 * stage_queue_get, and generate_tokens adds one with stage_queue_try_put,
 * which a full queue refuses (min(tokens + 1, max_tokens)).  So nobody
 * polls.  Prints six timestamped lines, the last about 3 s after the
 * first:
 *
 *   00:22:28.348290 Requesting...   (three at once)
 *   ...
 *   00:22:31.347597 Requesting...   (then one per second)
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>

#define TOKEN ((void *)1)

struct rate_limiter {
    int max_tokens;
    stage_queue *tokens; /* one item per token */
};

static int rate_limiter_init(struct rate_limiter *self)
{
    /* allow an initial burst */
    self->max_tokens = 3;
    self->tokens = stage_queue_new((size_t)self->max_tokens, NULL);
    if (!self->tokens)
        return -1;
    for (int i = 0; i < self->max_tokens; i++)
        stage_queue_try_put(self->tokens, TOKEN);
    return 0;
}

struct generator {
    struct rate_limiter *self;
    double delay;
};

/* @tamed async def generate_tokens(self, delay) */
static void *generate_tokens(void *arg)
{
    struct generator *g = arg;
    /* generate new tokens forever (until the scope cancels us) */
    while (stage_sleep(seed_time(g->delay)) == 0)
        stage_queue_try_put(g->self->tokens, TOKEN);
    return NULL;
}

/* @tamed async def get_token(self) */
static int get_token(struct rate_limiter *self)
{
    void *token;
    return stage_queue_get(self->tokens, &token, STAGE_FOREVER) == 0;
}

/* @tamed async def fake_request(rate_limiter) */
static void *fake_request(void *arg)
{
    struct rate_limiter *rate_limiter = arg;
    char now[27];
    if (get_token(rate_limiter))
        printf("%s Requesting...\n", seed_datetime_now(now) + 11);
    return NULL;
}

int main(void)
{
    struct rate_limiter throttle;
    if (rate_limiter_init(&throttle))
        return 1;
    struct generator gen = {&throttle, 1};

    /* with AsyncScope(exit_mode="cancel") as service_layer: */
    stage_scope *service_layer =
        stage_scope_new(NULL, STAGE_SCOPE_CANCEL, STAGE_FOREVER);
    if (!service_layer)
        return 1;
    stage_scope_go_coro(service_layer, generate_tokens, &gen, NULL, NULL);

    /* with AsyncScope() as batch: */
    stage_scope *batch = stage_scope_new(NULL, 0, STAGE_FOREVER);
    if (!batch)
        return 1;
    for (int i = 0; i < 6; i++)
        stage_scope_go_coro(batch, fake_request, &throttle, NULL, NULL);
    int err = stage_scope_close(batch, STAGE_FOREVER);
    stage_scope_free(batch); /* <-- wait for all requests to finish */

    if (!err)
        err = stage_scope_close(service_layer, STAGE_FOREVER);
    stage_scope_free(service_layer); /* <-- cancel the rate limiter */

    stage_queue_unref(throttle.tokens);
    stage_loop_free(stage_loop_current());
    return err ? 1 : 0;
}
