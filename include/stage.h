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
#include <sys/types.h> /* pid_t */

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

/* Observers: run once when the future settles in one of the states of
 * `when`; a non-zero return is a failure of the observer, reported to the
 * task's Stage (stage_future_observe(3)). */
#define STAGE_ON_DONE 0x1u
#define STAGE_ON_FAILED 0x2u
#define STAGE_ON_CANCELLED 0x4u
#define STAGE_ON_SETTLED 0x7u
typedef int (*stage_observer_fn)(stage_future *future, void *user_data);
STAGE_API int stage_future_observe(stage_future *future, unsigned int when,
                                   stage_observer_fn fn, void *user_data,
                                   stage_destroy_fn destroy);

/* A name for reports and descriptions (copied). */
STAGE_API int stage_future_set_name(stage_future *future, const char *name);
STAGE_API const char *stage_future_name(stage_future *future);

/* ---- Thread pools: stage_pool_new(3) ------------------------------------ */

typedef struct stage_pool stage_pool;

#define STAGE_POOL_CANCEL 0x1u /* close: cancel queued tasks */

STAGE_API stage_pool *stage_pool_new(const char *name, size_t min_workers,
                                     size_t max_workers, double idle_timeout);
STAGE_API int stage_pool_submit(stage_pool *pool, stage_task_fn fn, void *arg,
                                stage_destroy_fn result_destroy,
                                stage_future **out);
STAGE_API size_t stage_pool_workers(stage_pool *pool);
STAGE_API int stage_pool_close(stage_pool *pool, unsigned int flags,
                               double timeout);
STAGE_API int stage_pool_free(stage_pool *pool);

/* ---- Stages: stage_new(3) ----------------------------------------------- */

/* A dispatcher: one loop thread for coroutines (started on first use) and
 * a pool of threads for plain functions. */
typedef struct stage stage;

#define STAGE_DAEMON 0x1u /* never delays process exit */

typedef void (*stage_error_fn)(stage *st, const char *task, int err,
                               const char *message, void *user_data);

STAGE_API stage *stage_new(const char *name, size_t max_workers,
                           unsigned int flags);
STAGE_API stage *stage_default(void);
STAGE_API int stage_set_error_handler(stage *st, stage_error_fn fn,
                                      void *user_data,
                                      stage_destroy_fn destroy);
STAGE_API int stage_go(stage *st, stage_task_fn fn, void *arg,
                       stage_destroy_fn result_destroy, stage_future **out);
STAGE_API int stage_go_coro(stage *st, stage_task_fn fn, void *arg,
                            stage_destroy_fn result_destroy,
                            stage_future **out);
STAGE_API int stage_close(stage *st, double timeout);
STAGE_API int stage_free(stage *st);

/* Run a function on a pool thread and wait for it (hybrid). */
STAGE_API int stage_offload(stage *st, stage_task_fn fn, void *arg,
                            stage_destroy_fn result_destroy, double timeout,
                            void **result);
/* Run a coroutine function from anywhere: inline in a coroutine, on the
 * calling thread's own loop from a plain thread. */
STAGE_API int stage_run(stage_task_fn fn, void *arg,
                        stage_destroy_fn result_destroy, void **result);

/* ---- Stage functions: stage_func_new(3) --------------------------------- */

typedef struct stage_func stage_func;

#define STAGE_FUNC_CORO 0x1u /* run as a coroutine on the Stage's loop */

STAGE_API stage_func *stage_func_new(stage *st, stage_task_fn fn,
                                     unsigned int flags,
                                     stage_destroy_fn result_destroy);
STAGE_API stage_func *stage_func_ref(stage_func *func);
STAGE_API void stage_func_unref(stage_func *func);
STAGE_API int stage_func_start(stage_func *func, void *arg);
STAGE_API int stage_func_wait(stage_func *func, double timeout, void **value);
STAGE_API int stage_func_reset(stage_func *func);

/* ---- Generators: stage_go_gen(3) ---------------------------------------- */

/* A producer on a pool thread or a coroutine, a consumer anywhere. */
typedef struct stage_gen stage_gen;
typedef void (*stage_gen_fn)(stage_gen *gen, void *arg);

#define STAGE_GEN_CORO 0x1u /* the producer is a coroutine of the Stage */
#define STAGE_GEN_LAZY 0x2u /* start at the first next/send/collect */

STAGE_API int stage_go_gen(stage *st, stage_gen_fn fn, void *arg,
                           stage_destroy_fn item_destroy, size_t buffer,
                           unsigned int flags, stage_gen **out);
STAGE_API stage_gen *stage_gen_ref(stage_gen *gen);
STAGE_API void stage_gen_unref(stage_gen *gen);
/* Producer side: hand an item over (blocks while the buffer is full). */
STAGE_API int stage_gen_yield(stage_gen *gen, void *item, void **sent);
/* Consumer side (hybrid). */
STAGE_API int stage_gen_next(stage_gen *gen, void **item, double timeout);
STAGE_API int stage_gen_send(stage_gen *gen, void *value, void **item,
                             double timeout);
STAGE_API int stage_gen_collect(stage_gen *gen, double timeout, void ***items,
                                size_t *count);
STAGE_API int stage_gen_close(stage_gen *gen);
STAGE_API const char *stage_gen_message(stage_gen *gen);

/* ---- Queues: stage_queue_new(3) ----------------------------------------- */

/* A FIFO of void * items, many producers and many consumers (hybrid). */
typedef struct stage_queue stage_queue;

/* A capacity: no limit on the number of queued items. */
#define STAGE_QUEUE_UNBOUNDED ((size_t)-1)

STAGE_API stage_queue *stage_queue_new(size_t capacity,
                                       stage_destroy_fn item_destroy);
STAGE_API stage_queue *stage_queue_ref(stage_queue *queue);
STAGE_API void stage_queue_unref(stage_queue *queue);
/* Put (the item is transferred on success) and get, blocking when full or
 * empty; the try_ forms return EAGAIN instead. */
STAGE_API int stage_queue_put(stage_queue *queue, void *item, double timeout);
STAGE_API int stage_queue_get(stage_queue *queue, void **item,
                              double timeout);
STAGE_API int stage_queue_try_put(stage_queue *queue, void *item);
STAGE_API int stage_queue_try_get(stage_queue *queue, void **item);
STAGE_API size_t stage_queue_length(stage_queue *queue);
/* No more puts; blocked callers wake with EPIPE; queued items drain. */
STAGE_API int stage_queue_close(stage_queue *queue);

/* ---- Events: stage_event_new(3) ----------------------------------------- */

/* A flag with a payload that threads and coroutines wait for (hybrid). */
typedef struct stage_event stage_event;

STAGE_API stage_event *stage_event_new(void);
STAGE_API stage_event *stage_event_ref(stage_event *event);
STAGE_API void stage_event_unref(stage_event *event);
STAGE_API int stage_event_set(stage_event *event, void *payload);
STAGE_API int stage_event_clear(stage_event *event);
STAGE_API int stage_event_is_set(stage_event *event);
/* Return at once if set, else wait until it is set. */
STAGE_API int stage_event_wait(stage_event *event, double timeout,
                               void **payload);

/* ---- Tunnels: stage_tunnel_new(3) --------------------------------------- */

/* A broadcast stream: every reader sees every item, in one order. */
typedef struct stage_tunnel stage_tunnel;
typedef struct stage_tunnel_reader stage_tunnel_reader;

/* The default idle timeout of a tunnel's readers, in seconds. */
#define STAGE_TUNNEL_TIMEOUT 10.0
/* An idle timeout that means "the default": the tunnel's for its readers,
 * STAGE_TUNNEL_TIMEOUT for a tunnel.  (Any value below -1.5.) */
#define STAGE_TUNNEL_INHERIT (-2.0)

STAGE_API stage_tunnel *stage_tunnel_new(double idle_timeout, size_t history,
                                         stage_destroy_fn item_destroy);
STAGE_API stage_tunnel *stage_tunnel_ref(stage_tunnel *tunnel);
STAGE_API void stage_tunnel_unref(stage_tunnel *tunnel);
/* Never blocks; the item is transferred on success. */
STAGE_API int stage_tunnel_put(stage_tunnel *tunnel, void *item);
/* End the stream: normally, or with an error each reader receives once. */
STAGE_API int stage_tunnel_close(stage_tunnel *tunnel);
STAGE_API int stage_tunnel_fail(stage_tunnel *tunnel, int err,
                                const char *fmt, ...) STAGE_PRINTF(3, 4);
STAGE_API const char *stage_tunnel_message(stage_tunnel *tunnel);

STAGE_API stage_tunnel_reader *stage_tunnel_reader_new(stage_tunnel *tunnel,
                                                       double idle_timeout);
STAGE_API void stage_tunnel_reader_free(stage_tunnel_reader *reader);
/* The next item (borrowed), waiting for it (hybrid). */
STAGE_API int stage_tunnel_next(stage_tunnel_reader *reader, void **item);
STAGE_API size_t stage_tunnel_reader_missed(stage_tunnel_reader *reader);
/* Read the whole stream into a malloc'd array of borrowed items. */
STAGE_API int stage_tunnel_collect(stage_tunnel *tunnel, double idle_timeout,
                                   void ***items, size_t *count);

/* ---- Event emitters: stage_emitter_new(3) ------------------------------- */

/* Listeners by event name, run as tasks of a Stage at each emit; each emit
 * returns one response (the listener's future) per listener. */
typedef struct stage_emitter stage_emitter;
/* A listener: its return value resolves its response; stage_task_fail()
 * makes the response fail instead. */
typedef void *(*stage_listener_fn)(const char *event, void *data,
                                   void *user_data);

/* Run the listener as a coroutine on the Stage's loop (default: on its
 * pool). */
#define STAGE_LISTENER_CORO 0x1u

STAGE_API stage_emitter *stage_emitter_new(stage *st);
STAGE_API stage_emitter *stage_emitter_ref(stage_emitter *em);
STAGE_API void stage_emitter_unref(stage_emitter *em);
STAGE_API int stage_emitter_on(stage_emitter *em, const char *event,
                               stage_listener_fn fn, void *user_data,
                               stage_destroy_fn user_data_destroy,
                               stage_destroy_fn result_destroy,
                               unsigned int flags);
STAGE_API int stage_emitter_once(stage_emitter *em, const char *event,
                                 stage_listener_fn fn, void *user_data,
                                 stage_destroy_fn user_data_destroy,
                                 stage_destroy_fn result_destroy,
                                 unsigned int flags);
/* Remove the latest registration of (fn, user_data); ENOENT if none. */
STAGE_API int stage_emitter_off(stage_emitter *em, const char *event,
                                stage_listener_fn fn, void *user_data);
/* Remove every listener of `event` (NULL: of every event). */
STAGE_API int stage_emitter_off_all(stage_emitter *em, const char *event);
STAGE_API size_t stage_emitter_count(stage_emitter *em, const char *event);
/* Never waits for a listener; *responses: a malloc'd array, one reference
 * each, regular listeners first, then once-listeners. */
STAGE_API int stage_emitter_emit(stage_emitter *em, const char *event,
                                 void *data, stage_destroy_fn data_destroy,
                                 stage_future ***responses, size_t *count);
STAGE_API int stage_emitter_close(stage_emitter *em);

/* ---- Servers: stage_server_new(3) --------------------------------------- */

/* Control inversion: clients' calls wait until a server thread processes
 * their requests, one per stage_server_process, when it chooses. */
typedef struct stage_server stage_server;
/* Settles `reply` (borrowed) for `request` (borrowed until it returns);
 * a non-zero return fails the reply with that error. */
typedef int (*stage_handler_fn)(stage_server *srv, void *request,
                                stage_future *reply, void *user_data);

STAGE_API stage_server *stage_server_new(stage_handler_fn handler,
                                         void *user_data,
                                         stage_destroy_fn user_data_destroy);
STAGE_API stage_server *stage_server_ref(stage_server *srv);
STAGE_API void stage_server_unref(stage_server *srv);
/* Client side (hybrid): queue the request, wait for the reply's value
 * (transferred to the caller). */
STAGE_API int stage_server_call(stage_server *srv, void *request,
                                double timeout, void **reply);
/* Server side: handle one pending request on the calling thread; EAGAIN
 * at once when none is pending. */
STAGE_API int stage_server_process(stage_server *srv);
/* Wait until a request is pending (hybrid). */
STAGE_API int stage_server_wait(stage_server *srv, double timeout);
/* Pending calls return ECANCELED, later ones EPIPE. */
STAGE_API int stage_server_close(stage_server *srv);
/* ---- Task-local variables: stage_local_new(3) --------------------------- */

/* asyncio's contextvars: a value per task.  A new task starts with a copy
 * of its creator's values; its changes never reach its creator or its
 * siblings.  Values are borrowed: the library never frees them. */
typedef struct stage_local stage_local;

STAGE_API stage_local *stage_local_new(const char *name, void *default_value);
STAGE_API void stage_local_free(stage_local *key);
STAGE_API const char *stage_local_name(stage_local *key);
/* The current task's value, or the default. */
STAGE_API void *stage_local_get(stage_local *key);
STAGE_API int stage_local_set(stage_local *key, void *value);
/* Run fn(arg) inline in a copy of the current context (ctx.run). */
STAGE_API int stage_local_run(stage_task_fn fn, void *arg, void **result);

/* ---- Introspection and awaitables: stage_future_describe(3) ------------- */

/* One line, like asyncio's repr: "<Task pending name='Task-1'
 * wait_for=<sleep 2.000s, 1.500s left>>".  0, or ERANGE when cut short. */
STAGE_API int stage_future_describe(stage_future *future, char *buf,
                                    size_t size);

/* A custom awaitable: a function that hands out a future for one await
 * (one new reference), like Python's __await__. */
typedef stage_future *(*stage_await_fn)(void *object);
/* Call fn(object), wait for its future (hybrid), hand the value over. */
STAGE_API int stage_await(stage_await_fn fn, void *object, double timeout,
                          void **value);
/* ---- I/O: stage_fd_read(3), stage_reader_new(3) ------------------------ */

/* Hybrid reads and writes on non-blocking file descriptors (O_NONBLOCK). */
STAGE_API int stage_fd_read(int fd, void *buf, size_t size, double timeout,
                            size_t *nread);
STAGE_API int stage_fd_write(int fd, const void *buf, size_t size,
                             double timeout, size_t *nwritten);

/* A buffered reader of lines over a non-blocking fd. */
typedef struct stage_reader stage_reader;

#define STAGE_READER_CLOSE 0x1u /* stage_reader_free closes the fd */
/* The longest line when max_line is 0 (asyncio's StreamReader limit). */
#define STAGE_READER_LINE_MAX ((size_t)65536)

STAGE_API stage_reader *stage_reader_new(int fd, size_t max_line,
                                         unsigned int flags);
/* The next line, '\n' included (borrowed until the next call). */
STAGE_API int stage_reader_line(stage_reader *reader, char **line,
                                size_t *len, double timeout);
/* Buffered bytes first, then at most one read(2). */
STAGE_API int stage_reader_read(stage_reader *reader, void *buf, size_t size,
                                double timeout, size_t *nread);
STAGE_API void stage_reader_free(stage_reader *reader);

/* ---- Subprocesses: stage_proc_spawn(3) ---------------------------------- */

/* A child process started with posix_spawn, reaped by libstage alone. */
typedef struct stage_proc stage_proc;

#define STAGE_PROC_STDIN 0x1u  /* pipe the child's stdin */
#define STAGE_PROC_STDOUT 0x2u /* pipe the child's stdout */
#define STAGE_PROC_STDERR 0x4u /* pipe the child's stderr */
#define STAGE_PROC_STDERR_TO_STDOUT 0x8u /* the child's stderr: its stdout */

STAGE_API int stage_proc_spawn(const char *path, char *const argv[],
                               char *const envp[], unsigned int flags,
                               stage_proc **out);
/* Our end of the pipe to the child's fd 0, 1 or 2, or -1 (borrowed). */
STAGE_API int stage_proc_fd(stage_proc *proc, int which);
STAGE_API int stage_proc_close_stdin(stage_proc *proc);
STAGE_API pid_t stage_proc_pid(stage_proc *proc);
/* Wait for the child to end (hybrid); *status as waitpid(2) reports it. */
STAGE_API int stage_proc_wait(stage_proc *proc, double timeout, int *status);
STAGE_API int stage_proc_kill(stage_proc *proc, int sig);
STAGE_API void stage_proc_free(stage_proc *proc);
/* ---- Scopes: stage_scope_new(3), stage_future_gather(3) ---------------- */

/* Structured concurrency (async-tamer's AsyncScope, trio's nursery): every
 * task started in a scope has finished when the scope closes, and no
 * failure is left behind.  A task's future is its delayed result. */
typedef struct stage_scope stage_scope;

#define STAGE_SCOPE_WAIT 0x0u     /* exit mode (default): close waits */
#define STAGE_SCOPE_CANCEL 0x1u   /* exit mode: close cancels, then waits */
#define STAGE_SCOPE_RAISE 0x2u    /* exit mode: wait; report unread results */
#define STAGE_SCOPE_CONTINUE 0x4u /* error mode: a failure does not cancel
                                   * the siblings (default: it does) */

STAGE_API stage_scope *stage_scope_new(stage *st, unsigned int flags,
                                       double timeout);
/* Start fn(arg) in the scope: on the Stage's pool, or as a coroutine on the
 * loop of the thread that opened the scope. */
STAGE_API int stage_scope_go(stage_scope *scope, stage_task_fn fn, void *arg,
                             stage_destroy_fn result_destroy,
                             stage_future **out);
STAGE_API int stage_scope_go_coro(stage_scope *scope, stage_task_fn fn,
                                  void *arg, stage_destroy_fn result_destroy,
                                  stage_future **out);
STAGE_API int stage_scope_cancel(stage_scope *scope);
/* Wait until every task has finished (hybrid); 0 or the first failure
 * nobody collected. */
STAGE_API int stage_scope_close(stage_scope *scope, double timeout);
/* The failures that close collected, in the order they happened. */
STAGE_API int stage_scope_failure(stage_scope *scope, size_t index,
                                  const char **task_name, int *err,
                                  const char **message);
STAGE_API void stage_scope_free(stage_scope *scope);

/* Wait for all of a set of futures, or for the first one to settle. */
#define STAGE_GATHER_CANCEL 0x1u /* the first failure cancels the others */

STAGE_API int stage_future_gather(stage_future *const *futures, size_t n,
                                  unsigned int flags, double timeout,
                                  void **values, size_t *failed);
STAGE_API int stage_future_wait_any(stage_future *const *futures, size_t n,
                                    double timeout, size_t *index);

#ifdef __cplusplus
}
#endif

#endif /* STAGE_H */
