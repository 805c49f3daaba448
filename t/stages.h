/* SPDX-License-Identifier: MIT */
/*
 * stages.h - helpers shared by the Check programs of the Stage layer
 * (check_pool, check_stage, check_func), on top of common.h:
 *
 *   - T_LONG and t_done(): a generous bound for things that must happen,
 *     and "this future must settle" with that bound;
 *   - a gated body: it opens its `started` latch, then blocks (on a gate
 *     future, or in stage_sleep when there is no gate) and records what the
 *     blocking call returned, so tests order threads with futures only;
 *   - a peak counter: how many bodies run at once;
 *   - an error handler that records what it is given (Stage reports);
 *   - stderr capture into a buffer (reports printed by the library);
 *   - thread names from /proc/self/task/<tid>/comm;
 *   - t_child(): run a function in a forked child and collect a byte from
 *     it, its stderr and its exit status (process-exit behaviour).
 *
 * Rules as in common.h: no ck_assert in bodies (they record; the test
 * asserts afterwards).
 */
#ifndef STAGE_T_STAGES_H
#define STAGE_T_STAGES_H

#include "common.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

/* A bound for things that must happen (generous: 2 noisy cores). */
#define T_LONG (10.0 * t_tol())

/* The future must settle within T_LONG. */
static inline void t_done(stage_future *f)
{
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(stage_future_wait(f, T_LONG), 0);
}

/* A fresh plain future (a latch or a gate). */
static inline stage_future *t_latch(void)
{
    stage_future *f = stage_future_new();

    ck_assert_ptr_nonnull(f);
    return f;
}

/* Start fn(arg) through st: as a coroutine (stage_go_coro) when coro,
 * else on its pool (stage_go); *out gets the response. */
static inline void t_go(stage *st, int coro, stage_task_fn fn, void *arg,
                        stage_destroy_fn destroy, stage_future **out)
{
    if (coro)
        ck_assert_int_eq(stage_go_coro(st, fn, arg, destroy, out), 0);
    else
        ck_assert_int_eq(stage_go(st, fn, arg, destroy, out), 0);
}

/* `text` (stderr, captured) contains `want`. */
#define t_assert_has(text, want)                                              \
    ck_assert_msg(strstr((text), (want)) != NULL,                             \
                  "stderr was \"%s\", want \"%s\"", (text), (want))

/* The kernel thread id of the caller (for /proc/self/task/<tid>). */
static inline pid_t t_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* Tests of library bugs that are reported and not fixed yet run only when
 * STAGE_TEST_KNOWN_BUGS is set (non-empty, not "0"). */
static inline int t_known_bugs(void)
{
    const char *e = getenv("STAGE_TEST_KNOWN_BUGS");

    return e != NULL && *e != '\0' && strcmp(e, "0") != 0;
}

/* ---- Gated bodies ------------------------------------------------------- */

typedef struct t_gated {
    stage_future *started; /* opened by the body on entry */
    stage_future *gate;    /* waited for; NULL: stage_sleep(long) instead */
    stage_future *ended;   /* opened by the body before it returns */
    atomic_int ran;        /* body entries */
    atomic_int freed;      /* destructor runs of the returned value */
    int rc;                /* what the blocking call returned */
    intptr_t ret_id;       /* returns t_val(ret_id) when non-zero */
    int fail;              /* non-zero: stage_task_fail(fail, "gated") */
    pthread_t thread;
    pid_t tid;
    stage_future *self;    /* stage_task_self() in the body */
} t_gated;

static inline void t_gated_init(t_gated *g, stage_future *gate,
                                intptr_t ret_id)
{
    memset(g, 0, sizeof *g);
    g->started = t_latch();
    g->ended = t_latch();
    g->gate = gate;
    atomic_init(&g->ran, 0);
    atomic_init(&g->freed, 0);
    g->rc = -1;
    g->ret_id = ret_id;
}

static inline void t_gated_fini(t_gated *g)
{
    stage_future_unref(g->started);
    stage_future_unref(g->ended);
}

static inline void *t_gated_body(void *arg)
{
    t_gated *g = arg;

    g->thread = pthread_self();
    g->tid = t_gettid();
    g->self = stage_task_self();
    atomic_fetch_add(&g->ran, 1);
    t_latch_open(g->started);
    if (g->gate != NULL)
        g->rc = stage_future_wait(g->gate, 60.0 * t_tol());
    else
        g->rc = stage_sleep(60.0 * t_tol());
    t_latch_open(g->ended);
    if (g->fail)
        stage_task_fail(g->fail, "gated %d", g->fail);
    return g->ret_id ? t_val_new(&g->freed, g->ret_id) : NULL;
}

/* ---- Failing bodies ----------------------------------------------------- */

/* Fails with err and msg; names its own task first when `name` is set. */
typedef struct failer {
    const char *name;
    int err;
    const char *msg;
} failer;

static inline void *fail_body(void *arg)
{
    failer *f = arg;

    if (f->name != NULL)
        stage_future_set_name(stage_task_self(), f->name);
    return stage_task_fail(f->err, "%s", f->msg);
}

/* ---- Peak concurrency --------------------------------------------------- */

typedef struct t_peak {
    atomic_int now, peak, ran;
} t_peak;

static inline void t_peak_init(t_peak *p)
{
    atomic_init(&p->now, 0);
    atomic_init(&p->peak, 0);
    atomic_init(&p->ran, 0);
}

static inline void t_peak_enter(t_peak *p)
{
    int n = atomic_fetch_add(&p->now, 1) + 1;
    int old = atomic_load(&p->peak);

    atomic_fetch_add(&p->ran, 1);
    while (n > old && !atomic_compare_exchange_weak(&p->peak, &old, n))
        ;
}

static inline void t_peak_leave(t_peak *p)
{
    atomic_fetch_sub(&p->now, 1);
}

/* A body counted in a t_peak: opens its own latch, waits for a shared
 * gate. */
typedef struct t_conc {
    t_peak *peak;
    stage_future *started; /* opened on entry */
    stage_future *gate;    /* waited for */
    pid_t tid;
    int rc;                /* what the wait returned */
} t_conc;

static inline void t_conc_init(t_conc *a, t_peak *peak, stage_future *gate)
{
    a->peak = peak;
    a->started = t_latch();
    a->gate = gate;
    a->tid = 0;
    a->rc = -1;
}

static inline void *t_conc_body(void *arg)
{
    t_conc *a = arg;

    t_peak_enter(a->peak);
    a->tid = t_gettid();
    t_latch_open(a->started);
    a->rc = stage_future_wait(a->gate, 60.0 * t_tol());
    t_peak_leave(a->peak);
    return NULL;
}

/* Wait for bodies [0, n) to finish (DONE, gate wait 0); drop them. */
static inline void t_conc_finish(t_conc *args, stage_future **fs, int n)
{
    int i;

    for (i = 0; i < n; i++) {
        t_done(fs[i]);
        ck_assert_int_eq(stage_future_state(fs[i]), STAGE_DONE);
        ck_assert_int_eq(args[i].rc, 0);
        stage_future_unref(fs[i]);
        stage_future_unref(args[i].started);
    }
}

/* ---- Recorded Stage reports --------------------------------------------- */

#define T_REPORTS_MAX 16

typedef struct t_report {
    stage *st;
    char task[64];
    int err;
    char msg[128];
    int had_msg;
    pthread_t thread;
} t_report;

typedef struct t_reports {
    pthread_mutex_t lock;
    int n;
    t_report r[T_REPORTS_MAX];
    stage_future *first; /* opened by the first report */
    atomic_int destroyed; /* t_reports_destroy runs */
} t_reports;

static inline void t_reports_init(t_reports *rs)
{
    memset(rs, 0, sizeof *rs);
    pthread_mutex_init(&rs->lock, NULL);
    rs->first = t_latch();
    atomic_init(&rs->destroyed, 0);
}

static inline void t_reports_fini(t_reports *rs)
{
    stage_future_unref(rs->first);
    pthread_mutex_destroy(&rs->lock);
}

static inline int t_reports_count(t_reports *rs)
{
    int n;

    pthread_mutex_lock(&rs->lock);
    n = rs->n;
    pthread_mutex_unlock(&rs->lock);
    return n;
}

/* stage_error_fn recording into a t_reports. */
static inline void t_reports_handler(stage *st, const char *task, int err,
                              const char *message, void *user_data)
{
    t_reports *rs = user_data;

    pthread_mutex_lock(&rs->lock);
    if (rs->n < T_REPORTS_MAX) {
        t_report *r = &rs->r[rs->n];

        r->st = st;
        snprintf(r->task, sizeof r->task, "%s", task ? task : "(null)");
        r->err = err;
        r->had_msg = message != NULL;
        snprintf(r->msg, sizeof r->msg, "%s", message ? message : "");
        r->thread = pthread_self();
    }
    rs->n++;
    pthread_mutex_unlock(&rs->lock);
    t_latch_open(rs->first);
}

/* stage_destroy_fn for a t_reports handed as the handler's user_data. */
static inline void t_reports_destroy(void *user_data)
{
    t_reports *rs = user_data;

    atomic_fetch_add(&rs->destroyed, 1);
}

/* The report about `task` (NULL when none). */
static inline t_report *t_reports_find(t_reports *rs, const char *task)
{
    int i;

    for (i = 0; i < rs->n && i < T_REPORTS_MAX; i++)
        if (strcmp(rs->r[i].task, task) == 0)
            return &rs->r[i];
    return NULL;
}

/* "Task-<N>" with N a positive decimal number. */
static inline int t_is_default_task_name(const char *name)
{
    const char *p = name + 5;

    if (strncmp(name, "Task-", 5) != 0 || *p == '\0' || *p == '0')
        return 0;
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

/* ---- stderr capture ----------------------------------------------------- */

typedef struct t_capture {
    int fd, saved;
} t_capture;

/* From here on, fd 2 goes to an unlinked temporary file. */
static inline void t_capture_start(t_capture *c)
{
    char path[] = "/tmp/check_stage_stderr.XXXXXX";

    c->fd = mkstemp(path);
    ck_assert_int_ge(c->fd, 0);
    unlink(path);
    fflush(stderr);
    c->saved = dup(2);
    ck_assert_int_ge(c->saved, 0);
    ck_assert_int_eq(dup2(c->fd, 2), 2);
}

/* Restores fd 2; buf gets what was written meanwhile (NUL-terminated). */
static inline void t_capture_end(t_capture *c, char *buf, size_t size)
{
    ssize_t n;

    fflush(stderr);
    ck_assert_int_eq(dup2(c->saved, 2), 2);
    close(c->saved);
    n = pread(c->fd, buf, size - 1, 0);
    close(c->fd);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
}

/* ---- Thread names ------------------------------------------------------- */

/* The name of thread `tid` of this process ("" when unknown). */
static inline void t_comm(pid_t tid, char *buf, size_t size)
{
    char path[64];
    FILE *f;

    buf[0] = '\0';
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)tid);
    f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fgets(buf, (int)size, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    buf[strcspn(buf, "\n")] = '\0';
}

/* How many threads of this process are named `name`. */
static inline int t_comm_count(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    char comm[32];
    int n = 0;

    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        t_comm((pid_t)atoi(e->d_name), comm, sizeof comm);
        if (strcmp(comm, name) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* How many threads named `name` are left once those that were joined have
 * left /proc/self/task (waiting at most 5 s, scaled).  pthread_join returns
 * when the kernel clears the thread's id, which it does before it removes
 * the exited thread from the thread group: for a moment the joined thread
 * is still listed.  qemu-user widens that window to milliseconds. */
static inline int t_comm_gone(const char *name)
{
    struct timespec ms = {0, 1000000};
    double deadline = t_time() + 5.0 * t_tol();
    int n;

    while ((n = t_comm_count(name)) > 0 && t_time() < deadline)
        nanosleep(&ms, NULL);
    return n;
}

/* ---- Forked children ---------------------------------------------------- */

typedef struct t_child_result {
    int got_byte;     /* 1: the child (or its threads) wrote a byte */
    char byte;
    char err[1024];   /* the child's stderr */
    int status;       /* from waitpid */
    int killed;       /* 1: still running after the timeout, killed */
    double elapsed;   /* fork to exit, seconds */
} t_child_result;

/* Run body(wfd) in a forked child whose stderr is captured; the child then
 * exit(0)s (atexit handlers run, as when main returns).  The body may hand
 * wfd to its threads: the parent reads one byte, or end of file once every
 * holder of wfd is gone (the child exited).  A child still running after
 * `timeout` seconds is killed. */
static inline void t_child(void (*body)(int wfd), double timeout,
                           t_child_result *res)
{
    int data[2], errp[2];
    pid_t pid;
    double t0 = t_time();
    size_t nerr = 0;
    struct pollfd pf[2];
    int open_fds = 2;

    memset(res, 0, sizeof *res);
    ck_assert_int_eq(pipe(data), 0);
    ck_assert_int_eq(pipe(errp), 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(data[0]);
        close(errp[0]);
        if (dup2(errp[1], 2) != 2)
            _exit(90);
        close(errp[1]);
        body(data[1]);
        exit(0);
    }
    close(data[1]);
    close(errp[1]);
    pf[0].fd = data[0];
    pf[1].fd = errp[0];
    pf[0].events = pf[1].events = POLLIN;
    while (open_fds > 0 && t_time() < t0 + timeout) {
        int i;

        if (poll(pf, 2, 1000) < 0 && errno != EINTR)
            break;
        for (i = 0; i < 2; i++) {
            char buf[256];
            ssize_t n;

            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP)))
                continue;
            n = read(pf[i].fd, buf, sizeof buf);
            if (n <= 0) {
                close(pf[i].fd);
                pf[i].fd = -1;
                open_fds--;
            } else if (i == 0) {
                if (!res->got_byte) {
                    res->got_byte = 1;
                    res->byte = buf[0];
                }
            } else {
                size_t k = (size_t)n;

                if (k > sizeof res->err - 1 - nerr)
                    k = sizeof res->err - 1 - nerr;
                memcpy(res->err + nerr, buf, k);
                nerr += k;
            }
        }
    }
    res->err[nerr] = '\0';
    if (open_fds > 0) {
        res->killed = 1;
        kill(pid, SIGKILL);
        if (pf[0].fd >= 0)
            close(pf[0].fd);
        if (pf[1].fd >= 0)
            close(pf[1].fd);
    }
    ck_assert_int_eq(waitpid(pid, &res->status, 0), pid);
    res->elapsed = t_time() - t0;
}

/* The child exited with `code`.  A child that exits while threads of its
 * own still run (a daemon Stage's worker, say) has their TLS blocks counted
 * "possibly lost" by memcheck, which then exits with its error code 1
 * instead (its leak report is in the log): accepted when `threads_left`. */
#define t_assert_child_exit(res, code, threads_left)                          \
    ck_assert_msg(WIFEXITED((res)->status) &&                                 \
                      (WEXITSTATUS((res)->status) == (code) ||                \
                       ((threads_left) && t_on_valgrind() &&                  \
                        WEXITSTATUS((res)->status) == 1)),                    \
                  "child status %d, stderr \"%s\"", (res)->status,           \
                  (res)->err)

#endif /* STAGE_T_STAGES_H */
