/* SPDX-License-Identifier: MIT */
/*
 * tamer.h - slow_echo, the coroutine function that most async-tamer.md
 * blocks define (examples/tamer_*): it sleeps (suspending only itself when
 * it runs as a coroutine) and prints its message.  Include after seed.h.
 *
 *     @tamed
 *     async def slow_echo(msg:str, delay:int) -> None:
 *         await asyncio.sleep(delay)
 *         print(msg)
 */
#ifndef TAMER_H
#define TAMER_H

#include <stage.h>
#include <stdio.h>

struct echo {
    const char *msg;
    double delay; /* seconds, scaled by seed_time */
};

/* @tamed async def slow_echo(msg, delay): arg is a struct echo. */
static inline void *slow_echo(void *arg)
{
    struct echo *echo = arg;
    stage_sleep(seed_time(echo->delay));
    printf("%s\n", echo->msg);
    return NULL;
}

#endif /* TAMER_H */
