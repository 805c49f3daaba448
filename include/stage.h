/* SPDX-License-Identifier: MIT */
/*
 * stage.h - libstage, mixed threaded and asynchronous programming for C.
 *
 * One header for the whole public API.  The reference is in the man pages:
 * start with stage(7).  Conventions, in one paragraph:
 *
 *   - Functions that can fail return 0 or a positive error number (like
 *     pthreads); constructors that return a pointer return NULL and set errno.
 *   - Every blocking call is hybrid: on a plain thread it blocks the thread,
 *     in a coroutine it suspends only that coroutine.  Every blocking call
 *     takes a timeout in seconds (STAGE_FOREVER: no limit; 0: do not block)
 *     and returns ECANCELED when the calling task has been cancelled.
 *   - Values are void * with an optional destructor; who owns what is written
 *     in each man page.
 */
#ifndef STAGE_H
#define STAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Export macro ------------------------------------------------------- */

#if defined(STAGE_BUILDING) && defined(__GNUC__)
#define STAGE_API __attribute__((visibility("default")))
#else
#define STAGE_API
#endif

#if defined(__GNUC__)
#define STAGE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define STAGE_PRINTF(f, a)
#endif

/* ---- Version: stage_version(3) ------------------------------------------ */

#define STAGE_VERSION_MAJOR 0
#define STAGE_VERSION_MINOR 1
#define STAGE_VERSION_PATCH 0
#define STAGE_VERSION_STRING "0.1.0"
/* 0xMMmmpp, comparable with STAGE_VERSION_HEX. */
#define STAGE_VERSION_HEX                                                     \
    ((STAGE_VERSION_MAJOR << 16) | (STAGE_VERSION_MINOR << 8) |               \
     STAGE_VERSION_PATCH)

STAGE_API unsigned int stage_version(void);
STAGE_API const char *stage_version_string(void);

/* ---- Common types ------------------------------------------------------- */

/* Wait without a time limit. */
#define STAGE_FOREVER (-1.0)

/* Frees a value or user_data handed to the library. */
typedef void (*stage_destroy_fn)(void *data);

/* The body of a task (thread or coroutine).  Its return value resolves the
 * task's future; stage_task_fail() makes it fail instead. */
typedef void *(*stage_task_fn)(void *arg);

typedef struct stage_loop stage_loop;
typedef struct stage_future stage_future;

/* ---- Time: stage_now(3), stage_sleep(3) --------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
STAGE_API int64_t stage_now(void);

/* Hybrid sleep: blocks a thread, suspends a coroutine. */
STAGE_API int stage_sleep(double seconds);

/* Let other coroutines of this thread's loop run. */
STAGE_API int stage_yield(void);

/* ---- Loops: stage_loop_current(3) --------------------------------------- */

/* The calling thread's loop, created on first use. */
STAGE_API stage_loop *stage_loop_current(void);
/* Run the calling thread's loop until `until` settles (NULL: until no
 * coroutine is left), or the timeout passes. */
STAGE_API int stage_loop_run(stage_loop *loop, stage_future *until,
                             double timeout);
/* Cancel the loop's coroutines, let them finish, free the loop. */
STAGE_API int stage_loop_free(stage_loop *loop);
/* Number of live coroutines on the loop. */
STAGE_API size_t stage_loop_count(stage_loop *loop);

/* ---- Tasks: stage_coro_spawn(3), stage_thread_spawn(3) ------------------ */

/* Default coroutine stack size in bytes (256 KiB, of which only the pages a
 * coroutine touches become resident). */
#define STAGE_STACK_DEFAULT ((size_t)256 * 1024)

/* Start fn(arg) as a coroutine on `loop` (NULL: the calling thread's loop;
 * another thread's loop is fine).  *out (may be NULL) receives the task's
 * future, one reference owned by the caller. */
STAGE_API int stage_coro_spawn(stage_loop *loop, stage_task_fn fn, void *arg,
                               stage_destroy_fn result_destroy,
                               size_t stack_size, stage_future **out);
/* Start fn(arg) on a new thread of its own. */
STAGE_API int stage_thread_spawn(stage_task_fn fn, void *arg,
                                 stage_destroy_fn result_destroy,
                                 stage_future **out);

/* The current task's future (borrowed), or NULL on a plain thread. */
STAGE_API stage_future *stage_task_self(void);
/* Non-zero when the current task has been asked to cancel. */
STAGE_API int stage_task_cancelled(void);
/* Record a failure for the current task; returns NULL so that a task body
 * can `return stage_task_fail(EIO, "...")`. */
STAGE_API void *stage_task_fail(int err, const char *fmt, ...)
    STAGE_PRINTF(2, 3);

/* ---- File descriptors: stage_fd_wait(3) --------------------------------- */

#define STAGE_FD_READ 0x1u
#define STAGE_FD_WRITE 0x2u

/* Wait until fd is readable and/or writable (hybrid). */
STAGE_API int stage_fd_wait(int fd, unsigned int events, double timeout,
                            unsigned int *revents);

/* ---- Futures: stage_future_new(3) --------------------------------------- */

typedef enum stage_state {
    STAGE_PENDING = 0,
    STAGE_DONE,
    STAGE_FAILED,
    STAGE_CANCELLED
} stage_state;

typedef void (*stage_future_cb)(stage_future *future, void *user_data);

STAGE_API stage_future *stage_future_new(void);
STAGE_API stage_future *stage_future_ref(stage_future *future);
STAGE_API void stage_future_unref(stage_future *future);

STAGE_API int stage_future_resolve(stage_future *future, void *value,
                                   stage_destroy_fn destroy);
STAGE_API int stage_future_fail(stage_future *future, int err,
                                const char *fmt, ...) STAGE_PRINTF(3, 4);
STAGE_API int stage_future_cancel(stage_future *future);

/* Wait until the future settles (hybrid). */
STAGE_API int stage_future_wait(stage_future *future, double timeout);
/* Wait, then report the outcome: 0 and the value (borrowed), or the error. */
STAGE_API int stage_future_get(stage_future *future, double timeout,
                               void **value);
/* Take ownership of a done future's value (once). */
STAGE_API int stage_future_take(stage_future *future, void **value);

STAGE_API stage_state stage_future_state(stage_future *future);
STAGE_API int stage_future_error(stage_future *future);
STAGE_API const char *stage_future_message(stage_future *future);

/* Run cb(future, user_data) once, when the future settles. */
STAGE_API int stage_future_add_callback(stage_future *future,
                                        stage_future_cb cb, void *user_data,
                                        stage_destroy_fn destroy);

#ifdef __cplusplus
}
#endif

#endif /* STAGE_H */
