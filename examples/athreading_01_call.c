/* SPDX-License-Identifier: MIT */
/*
 * athreading.md, blocks 1 and 2: "Callable -> Coroutine", Synchronous and
 * Asynchronous.
 *
 * print_sqrt blocks its thread for 0.5 s (simulated blocking I/O).  Called
 * three times in a row it takes 1.5 s.  Offloaded to a pool thread each
 * (stage_offload: athreading.call) and gathered, the three calls overlap and
 * take 0.5 s; the results come back in argument order:
 *
 *   2023-12-05 14:45:57.716696 1.4142135623730951
 *   2023-12-05 14:45:58.217192 1.7320508075688772
 *   2023-12-05 14:45:58.717934 2.0
 *   (1.4142135623730951 1.7320508075688772 2.0)
 *   2023-12-05 14:45:59.219461 1.4142135623730951
 *   2023-12-05 14:45:59.220492 1.7320508075688772
 *   2023-12-05 14:45:59.221174 2.0
 *   (1.4142135623730951 1.7320508075688772 2.0)
 *
 * (In the second half the three threads print at about the same moment, in
 * whatever order they get there.)  Link with -lm for sqrt.  Times are
 * scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <math.h>
#include <stage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Format a double as Python's repr() does: the shortest digits that read
 * back as the same number, and ".0" for whole numbers. */
static const char *repr(double x, char buf[32])
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, 32, "%.*g", digits, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    if (!strpbrk(buf, ".eni")) /* not 1e+20, inf or nan */
        strcat(buf, ".0");
    return buf;
}

static void *print_sqrt(void *arg)
{
    double x = *(double *)arg;
    blocking_sleep(seed_time(0.5)); /* time.sleep(0.5) */
    double *result = malloc(sizeof *result);
    *result = sqrt(x);
    char now[27], digits[32];
    printf("%s %s\n", seed_datetime_now(now), repr(*result, digits));
    return result;
}

static void print_res(double *res[3])
{
    char a[32], b[32], c[32];
    printf("(%s %s %s)\n", repr(*res[0], a), repr(*res[1], b),
           repr(*res[2], c));
}

/* athreading.call(print_sqrt): a coroutine that runs print_sqrt on a pool
 * thread of the default Stage and waits for it without blocking its loop. */
static void *aprint_sqrt(void *arg)
{
    void *result = NULL;
    int err = stage_offload(NULL, print_sqrt, arg, free, STAGE_FOREVER,
                            &result);
    if (err)
        return stage_task_fail(err, "print_sqrt failed");
    return result;
}

static double args[3] = {2, 3, 4};

static void *amain(void *arg)
{
    (void)arg;
    /* asyncio.gather(aprint_sqrt(2), aprint_sqrt(3), aprint_sqrt(4)) */
    stage_future *calls[3];
    for (int i = 0; i < 3; i++)
        stage_coro_spawn(NULL, aprint_sqrt, &args[i], free, 0, &calls[i]);
    double *res[3];
    int failed = 0;
    for (int i = 0; i < 3; i++) {
        void *value = NULL;
        if (stage_future_get(calls[i], STAGE_FOREVER, &value))
            failed = 1;
        res[i] = value;
    }
    if (!failed)
        print_res(res);
    for (int i = 0; i < 3; i++)
        stage_future_unref(calls[i]);
    return NULL;
}

int main(void)
{
    /* Synchronous */
    double *res[3];
    for (int i = 0; i < 3; i++)
        res[i] = print_sqrt(&args[i]);
    print_res(res);
    for (int i = 0; i < 3; i++)
        free(res[i]);

    /* Asynchronous */
    stage_run(amain, NULL, NULL, NULL); /* asyncio.run(amain()) */

    stage_loop_free(stage_loop_current());
    return 0;
}
