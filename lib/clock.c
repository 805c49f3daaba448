/* SPDX-License-Identifier: MIT */
/*
 * clock.c - time and deadlines.
 *
 * The API speaks relative seconds as double (the seeds' habit); inside, a
 * wait is converted once into an absolute CLOCK_MONOTONIC deadline in
 * nanoseconds, so retries after spurious wake-ups never stretch it.
 */
#include "common-int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int64_t stage_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int stage__deadline(double timeout, int64_t *deadline)
{
    if (isnan(timeout))
        return EINVAL;
    if (timeout < 0) {
        *deadline = -1;
        return 0;
    }
    /* About 292 years of nanoseconds fit in int64_t; clamp beyond that. */
    if (timeout > 9.0e9) {
        *deadline = -1;
        return 0;
    }
    /* Round up (no libm): never wake early. */
    double ns = timeout * 1e9;
    int64_t n = (int64_t)ns;
    if ((double)n < ns)
        n++;
    *deadline = stage_now() + n;
    return 0;
}

double stage__time_left(int64_t deadline)
{
    if (deadline < 0)
        return STAGE_FOREVER;
    int64_t d = deadline - stage_now();
    return d > 0 ? (double)d / 1e9 : 0.0;
}

_Noreturn void stage__panic(const char *file, int line, const char *what)
{
    fprintf(stderr, "libstage: %s:%d: internal error: %s\n", file, line, what);
    abort();
}
