/* SPDX-License-Identifier: MIT */
/*
 * seed.h - tiny helpers shared by the examples that mirror the seed
 * documents (examples/agently_*, tamer_*, athreading_*, threaded_async_*).
 *
 * Those examples sleep for the seconds the seeds show, multiplied by a
 * scale read from the environment variable STAGE_TIME_SCALE (default 1.0),
 * so that the conformance suite (t/conformance.sh) can run every story ten
 * times faster.  Include it first (it asks for POSIX declarations):
 *
 *     stage_sleep(seed_time(1));   // Python: await asyncio.sleep(1)
 *     blocking_sleep(seed_time(2)); // Python: time.sleep(2)
 */
#ifndef SEED_H
#define SEED_H

#ifndef _POSIX_C_SOURCE /* nanosleep, localtime_r, gettimeofday in -std=c11 */
#define _POSIX_C_SOURCE 200809L
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

/* The time scale: STAGE_TIME_SCALE if it is a positive number, else 1. */
static inline double seed_scale(void)
{
    const char *s = getenv("STAGE_TIME_SCALE");
    char *end;
    double scale = s ? strtod(s, &end) : 1.0;
    if (!s || end == s || *end != '\0' || !(scale > 0))
        scale = 1.0;
    return scale;
}

/* A duration of the seed, in seconds, scaled. */
static inline double seed_time(double seconds)
{
    return seconds * seed_scale();
}

/* Block the calling thread, like Python's time.sleep: unlike stage_sleep,
 * a coroutine calling this would block its whole loop. */
static inline void blocking_sleep(double seconds)
{
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        continue;
}

/* The wall-clock time as Python prints datetime.datetime.now():
 * "2023-12-05 14:45:57.716696".  buf needs 27 bytes. */
static inline const char *seed_datetime_now(char buf[27])
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, 20, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, 27 - n, ".%06ld", (long)tv.tv_usec);
    return buf;
}

#endif /* SEED_H */
