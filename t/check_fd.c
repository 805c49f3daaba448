/* SPDX-License-Identifier: MIT */
/*
 * check_fd.c - stage_fd_wait with pipes and socket pairs: argument errors,
 * readiness and revents, timeouts, wake-up on write from threads and
 * coroutines, hang-up and error reporting, several waiters on one fd,
 * cancellation of coroutine and thread waiters, and EMFILE.
 */
#include "common.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* ---- Helpers -------------------------------------------------------------- */

static void t_pipe(int p[2])
{
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_eq(fcntl(p[0], F_SETFD, FD_CLOEXEC), 0);
    ck_assert_int_eq(fcntl(p[1], F_SETFD, FD_CLOEXEC), 0);
}

static void t_close2(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

static void t_put(int fd)
{
    char c = 'x';

    ck_assert_int_eq(write(fd, &c, 1), 1);
}

static void t_get(int fd)
{
    char c = 0;

    ck_assert_int_eq(read(fd, &c, 1), 1);
    ck_assert_int_eq(c, 'x');
}

/* ---- Arguments and immediate readiness ------------------------------------ */

START_TEST(test_fd_args)
{
    int p[2];
    unsigned int rev = 0;

    t_pipe(p);
    ck_assert_int_eq(stage_fd_wait(p[0], 0, 0, &rev), EINVAL);
    ck_assert_int_eq(stage_fd_wait(p[0], 0x4u, 0, &rev), EINVAL);
    ck_assert_int_eq(stage_fd_wait(p[0], STAGE_FD_READ | 0x80u, 0, &rev),
                     EINVAL);
    ck_assert_int_eq(stage_fd_wait(-1, STAGE_FD_READ, 0, &rev), EBADF);
    ck_assert_int_eq(stage_fd_wait(-7, STAGE_FD_WRITE, 0, NULL), EBADF);
    ck_assert_int_eq(stage_fd_wait(p[0], STAGE_FD_READ, NAN, &rev), EINVAL);
    t_close2(p);
}
END_TEST

START_TEST(test_fd_ready_now)
{
    int p[2], sv[2];
    unsigned int rev = 0;

    t_pipe(p);
    /* A pipe's write end is writable at once. */
    ck_assert_int_eq(stage_fd_wait(p[1], STAGE_FD_WRITE, 0, &rev), 0);
    ck_assert_uint_eq(rev, STAGE_FD_WRITE);
    ck_assert_int_eq(stage_fd_wait(p[1], STAGE_FD_WRITE, STAGE_FOREVER, NULL),
                     0);
    /* Empty read end, timeout 0: poll once. */
    ck_assert_int_eq(stage_fd_wait(p[0], STAGE_FD_READ, 0, &rev), ETIMEDOUT);
    t_put(p[1]);
    rev = 0;
    ck_assert_int_eq(stage_fd_wait(p[0], STAGE_FD_READ, 0, &rev), 0);
    ck_assert_uint_eq(rev, STAGE_FD_READ);
    rev = 0;
    ck_assert_int_eq(stage_fd_wait(p[0], STAGE_FD_READ, STAGE_FOREVER, &rev),
                     0);
    ck_assert_uint_eq(rev, STAGE_FD_READ);
    t_get(p[0]);
    ck_assert_int_eq(stage_fd_wait(p[0], STAGE_FD_READ, 0, NULL), ETIMEDOUT);
    t_close2(p);

    /* A socket: writable always, readable once data is in. */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    rev = 0;
    ck_assert_int_eq(
        stage_fd_wait(sv[0], STAGE_FD_READ | STAGE_FD_WRITE, 0, &rev), 0);
    ck_assert_uint_eq(rev, STAGE_FD_WRITE);
    t_put(sv[1]);
    rev = 0;
    ck_assert_int_eq(
        stage_fd_wait(sv[0], STAGE_FD_READ | STAGE_FD_WRITE, 0, &rev), 0);
    ck_assert_uint_eq(rev, STAGE_FD_READ | STAGE_FD_WRITE);
    rev = 0;
    ck_assert_int_eq(stage_fd_wait(sv[0], STAGE_FD_READ, 0, &rev), 0);
    ck_assert_uint_eq(rev, STAGE_FD_READ); /* only requested bits */
    t_close2(sv);
}
END_TEST

START_TEST(test_fd_timeout)
{
    int p[2];
    double t0, el;

    t_pipe(p);
    t0 = t_time();
    ck_assert_int_eq(stage_fd_wait(p[0], STAGE_FD_READ, 0.05, NULL),
                     ETIMEDOUT);
    el = t_time() - t0;
    ck_assert_double_ge(el, 0.05);
    ck_assert_double_lt(el, 0.05 + 1.0 * t_tol());
    t_close2(p);
}
END_TEST

/* ---- Wake on write ---------------------------------------------------------- */

typedef struct writer {
    int fd;
    double delay;
} writer;

/* Writes one byte after a delay (the delay only makes it likely that the
 * reader is already blocked; the result is the same either way). */
static void *write_later(void *arg)
{
    writer *w = arg;
    char c = 'x';

    stage_sleep(w->delay);
    if (write(w->fd, &c, 1) != 1)
        return stage_task_fail(errno, "write");
    return NULL;
}

/* A plain thread (main) blocked in stage_fd_wait wakes on another thread's
 * write. */
START_TEST(test_fd_thread_wakes)
{
    int p[2];
    writer w;
    pthread_t th;
    unsigned int rev = 0;

    t_pipe(p);
    w.fd = p[1];
    w.delay = 0.02;
    th = t_thread_start(write_later, &w);
    ck_assert_int_eq(stage_fd_wait(p[0], STAGE_FD_READ, 5.0 * t_tol(), &rev),
                     0);
    ck_assert_uint_eq(rev, STAGE_FD_READ);
    t_get(p[0]);
    t_thread_join(th);
    t_close2(p);
}
END_TEST

/* Main blocked in stage_fd_wait runs its coroutines: one of them writes. */
START_TEST(test_fd_thread_runs_coroutines)
{
    int p[2];
    writer w;
    stage_future *t = NULL;
    unsigned int rev = 0;

    t_pipe(p);
    w.fd = p[1];
    w.delay = 0.01;
    ck_assert_int_eq(stage_coro_spawn(NULL, write_later, &w, NULL, 0, &t), 0);
    ck_assert_int_eq(stage_fd_wait(p[0], STAGE_FD_READ, 5.0 * t_tol(), &rev),
                     0);
    ck_assert_uint_eq(rev, STAGE_FD_READ);
    ck_assert_int_eq(stage_future_wait(t, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_state(t), STAGE_DONE);
    t_get(p[0]);
    stage_future_unref(t);
    t_close2(p);
}
END_TEST

/* A coroutine waits for input; meanwhile another coroutine keeps running;
 * the byte comes from a coroutine or from another thread. */
typedef struct fdco {
    int fd;
    unsigned int events;
    int rc;
    unsigned int rev;
    int64_t woke;
} fdco;

static void *fd_waiter(void *arg)
{
    fdco *c = arg;

    c->rc = stage_fd_wait(c->fd, c->events, STAGE_FOREVER, &c->rev);
    c->woke = stage_now();
    return NULL;
}

typedef struct ticks {
    stage_future *stop;   /* the fd waiter's task: tick until it ends */
    stage_future *ticked; /* resolved at the third tick */
    int n;
} ticks;

static void *ticker(void *arg)
{
    ticks *t = arg;

    while (stage_future_state(t->stop) == STAGE_PENDING) {
        if (++t->n == 3)
            stage_future_resolve(t->ticked, NULL, NULL);
        if (stage_sleep(0.002) != 0)
            break;
    }
    return NULL;
}

/* Writes one byte once the ticker ticked three times. */
typedef struct twriter {
    int fd;
    stage_future *ticked;
} twriter;

static void *write_after_ticks(void *arg)
{
    twriter *w = arg;
    char c = 'x';
    int rc = stage_future_wait(w->ticked, STAGE_FOREVER);

    if (rc != 0)
        return stage_task_fail(rc, "wait");
    if (write(w->fd, &c, 1) != 1)
        return stage_task_fail(errno, "write");
    return NULL;
}

/* The byte is written only after the ticker ran three times while the
 * reader was blocked: the waiting coroutine did not block the loop. */
static void run_coro_wakes(int from_thread)
{
    int p[2];
    twriter w;
    fdco c = {-1, STAGE_FD_READ, -1, 0, 0};
    ticks tk;
    stage_future *wt = NULL, *ct = NULL, *tt = NULL;

    t_pipe(p);
    c.fd = p[0];
    ck_assert_int_eq(stage_coro_spawn(NULL, fd_waiter, &c, NULL, 0, &ct), 0);
    tk.stop = ct;
    tk.ticked = stage_future_new();
    tk.n = 0;
    w.fd = p[1];
    w.ticked = tk.ticked;
    ck_assert_int_eq(stage_coro_spawn(NULL, ticker, &tk, NULL, 0, &tt), 0);
    if (from_thread)
        ck_assert_int_eq(
            stage_thread_spawn(write_after_ticks, &w, NULL, &wt), 0);
    else
        ck_assert_int_eq(
            stage_coro_spawn(NULL, write_after_ticks, &w, NULL, 0, &wt), 0);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_uint_eq(c.rev, STAGE_FD_READ);
    ck_assert_int_ge(tk.n, 3);
    ck_assert_int_eq(stage_future_wait(wt, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_state(wt), STAGE_DONE);
    t_get(p[0]);
    stage_future_unref(wt);
    stage_future_unref(ct);
    stage_future_unref(tt);
    stage_future_unref(tk.ticked);
    t_close2(p);
}

START_TEST(test_fd_coro_wakes_from_coro)
{
    run_coro_wakes(0);
}
END_TEST

START_TEST(test_fd_coro_wakes_from_thread)
{
    run_coro_wakes(1);
}
END_TEST

/* A coroutine waiting to write on a full pipe wakes when it is drained. */
START_TEST(test_fd_write_when_drained)
{
    int p[2];
    fdco c = {-1, STAGE_FD_WRITE, -1, 0, 0};
    stage_future *ct = NULL;
    char buf[4096];
    ssize_t n;

    t_pipe(p);
    ck_assert_int_eq(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
    ck_assert_int_eq(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
    memset(buf, 'y', sizeof buf);
    while ((n = write(p[1], buf, sizeof buf)) > 0)
        ;
    ck_assert(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    ck_assert_int_eq(stage_fd_wait(p[1], STAGE_FD_WRITE, 0, NULL), ETIMEDOUT);
    c.fd = p[1];
    ck_assert_int_eq(stage_coro_spawn(NULL, fd_waiter, &c, NULL, 0, &ct), 0);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), ct, 0.05),
                     ETIMEDOUT);
    ck_assert_int_eq(c.rc, -1);
    while (read(p[0], buf, sizeof buf) > 0)
        ;
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), ct, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_uint_eq(c.rev, STAGE_FD_WRITE);
    stage_future_unref(ct);
    t_close2(p);
}
END_TEST

/* ---- Hang-up and errors ------------------------------------------------------ */

START_TEST(test_fd_hangup)
{
    int p[2];
    unsigned int rev = 0;
    fdco c = {-1, STAGE_FD_READ, -1, 0, 0};
    stage_future *ct = NULL;
    char ch;

    /* Reader blocked in a coroutine; the writer closes: READ, then EOF. */
    t_pipe(p);
    c.fd = p[0];
    ck_assert_int_eq(stage_coro_spawn(NULL, fd_waiter, &c, NULL, 0, &ct), 0);
    ck_assert_int_eq(stage_yield(), 0); /* it blocks */
    close(p[1]);
    p[1] = -1;
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), ct, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_uint_eq(c.rev, STAGE_FD_READ);
    ck_assert_int_eq(read(p[0], &ch, 1), 0);
    /* Hang-up with both bits requested: both reported. */
    rev = 0;
    ck_assert_int_eq(
        stage_fd_wait(p[0], STAGE_FD_READ | STAGE_FD_WRITE, 0, &rev), 0);
    ck_assert_uint_eq(rev, STAGE_FD_READ | STAGE_FD_WRITE);
    stage_future_unref(ct);
    t_close2(p);

    /* Writer; the reader closes: WRITE (the write would fail with EPIPE). */
    t_pipe(p);
    close(p[0]);
    p[0] = -1;
    rev = 0;
    ck_assert_int_eq(stage_fd_wait(p[1], STAGE_FD_WRITE, 1.0 * t_tol(), &rev),
                     0);
    ck_assert_uint_eq(rev, STAGE_FD_WRITE);
    rev = 0;
    ck_assert_int_eq(
        stage_fd_wait(p[1], STAGE_FD_READ | STAGE_FD_WRITE, 1.0 * t_tol(),
                      &rev),
        0);
    ck_assert_uint_eq(rev, STAGE_FD_READ | STAGE_FD_WRITE);
    t_close2(p);
}
END_TEST

/* A thread blocked on a pipe whose writer closes wakes with READ. */
typedef struct closer {
    int fd;
} closer;

static void *close_later(void *arg)
{
    closer *c = arg;

    stage_sleep(0.02);
    close(c->fd);
    return NULL;
}

START_TEST(test_fd_hangup_thread)
{
    int p[2];
    closer cl;
    pthread_t th;
    unsigned int rev = 0;

    t_pipe(p);
    cl.fd = p[1];
    th = t_thread_start(close_later, &cl);
    ck_assert_int_eq(stage_fd_wait(p[0], STAGE_FD_READ, 5.0 * t_tol(), &rev),
                     0);
    ck_assert_uint_eq(rev, STAGE_FD_READ);
    t_thread_join(th);
    close(p[0]);
}
END_TEST

/* ---- Several waiters on one fd -------------------------------------------------- */

typedef struct fdthr {
    stage_future *ready;
    fdco c;
} fdthr;

static void *fd_thread_waiter(void *arg)
{
    fdthr *t = arg;

    stage_future_resolve(t->ready, NULL, NULL);
    fd_waiter(&t->c);
    return NULL;
}

START_TEST(test_fd_several_waiters)
{
    int p[2];
    fdco c1 = {-1, STAGE_FD_READ, -1, 0, 0}, c2 = {-1, STAGE_FD_READ, -1, 0, 0};
    fdthr t;
    stage_future *t1 = NULL, *t2 = NULL, *tt = NULL;

    t_pipe(p);
    c1.fd = c2.fd = p[0];
    t.ready = stage_future_new();
    t.c = c1;
    ck_assert_int_eq(stage_coro_spawn(NULL, fd_waiter, &c1, NULL, 0, &t1), 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, fd_waiter, &c2, NULL, 0, &t2), 0);
    ck_assert_int_eq(stage_thread_spawn(fd_thread_waiter, &t, NULL, &tt), 0);
    ck_assert_int_eq(stage_future_wait(t.ready, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_yield(), 0);
    /* Nobody is ready before the write. */
    ck_assert_int_eq(c1.rc, -1);
    ck_assert_int_eq(c2.rc, -1);
    t_put(p[1]);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(stage_future_wait(tt, 5.0 * t_tol()), 0);
    ck_assert_int_eq(c1.rc, 0);
    ck_assert_uint_eq(c1.rev, STAGE_FD_READ);
    ck_assert_int_eq(c2.rc, 0);
    ck_assert_uint_eq(c2.rev, STAGE_FD_READ);
    ck_assert_int_eq(t.c.rc, 0);
    ck_assert_uint_eq(t.c.rev, STAGE_FD_READ);
    t_get(p[0]);
    stage_future_unref(t1);
    stage_future_unref(t2);
    stage_future_unref(tt);
    stage_future_unref(t.ready);
    t_close2(p);
}
END_TEST

/* Two coroutines on one socket: one waits to read, one to write. */
START_TEST(test_fd_read_and_write_waiters)
{
    int sv[2];
    fdco r = {-1, STAGE_FD_READ, -1, 0, 0}, w = {-1, STAGE_FD_WRITE, -1, 0, 0};
    stage_future *tr = NULL, *tw = NULL;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    r.fd = w.fd = sv[0];
    ck_assert_int_eq(stage_coro_spawn(NULL, fd_waiter, &r, NULL, 0, &tr), 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, fd_waiter, &w, NULL, 0, &tw), 0);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), tw, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_uint_eq(w.rev, STAGE_FD_WRITE);
    ck_assert_int_eq(r.rc, -1); /* still waiting */
    t_put(sv[1]);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), tr, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(r.rc, 0);
    ck_assert_uint_eq(r.rev, STAGE_FD_READ);
    stage_future_unref(tr);
    stage_future_unref(tw);
    t_close2(sv);
}
END_TEST

/* ---- Cancellation ------------------------------------------------------------- */

START_TEST(test_fd_cancel_coro)
{
    int p[2];
    fdco c = {-1, STAGE_FD_READ, -1, 0, 0};
    stage_future *ct = NULL;
    int64_t t0;

    t_pipe(p);
    c.fd = p[0];
    ck_assert_int_eq(stage_coro_spawn(NULL, fd_waiter, &c, NULL, 0, &ct), 0);
    ck_assert_int_eq(stage_yield(), 0); /* it blocks in stage_fd_wait */
    ck_assert_int_eq(c.rc, -1);
    t0 = stage_now();
    ck_assert_int_eq(stage_future_cancel(ct), 0);
    ck_assert_int_eq(stage_future_wait(ct, 5.0 * t_tol()), 0);
    ck_assert_int_eq(c.rc, ECANCELED);
    ck_assert_double_lt(t_ns2s(c.woke - t0), 0.05 * t_tol());
    ck_assert_int_eq(stage_future_state(ct), STAGE_CANCELLED);
    stage_future_unref(ct);
    t_close2(p);
}
END_TEST

START_TEST(test_fd_cancel_thread_task)
{
    int p[2];
    fdthr t;
    stage_future *tt = NULL;
    int64_t t0;

    t_pipe(p);
    memset(&t, 0, sizeof t);
    t.ready = stage_future_new();
    t.c.fd = p[0];
    t.c.events = STAGE_FD_READ;
    t.c.rc = -1;
    ck_assert_int_eq(stage_thread_spawn(fd_thread_waiter, &t, NULL, &tt), 0);
    ck_assert_int_eq(stage_future_wait(t.ready, 5.0 * t_tol()), 0);
    /* Not needed for the result (a cancel before the wait also makes it
     * return ECANCELED); makes the blocked case the likely one. */
    stage_sleep(0.02);
    t0 = stage_now();
    ck_assert_int_eq(stage_future_cancel(tt), 0);
    ck_assert_int_eq(stage_future_wait(tt, 5.0 * t_tol()), 0);
    ck_assert_int_eq(t.c.rc, ECANCELED);
    ck_assert_double_lt(t_ns2s(t.c.woke - t0), 0.05 * t_tol());
    ck_assert_int_eq(stage_future_state(tt), STAGE_CANCELLED);
    stage_future_unref(tt);
    stage_future_unref(t.ready);
    t_close2(p);
}
END_TEST

/* Freeing the loop cancels a coroutine blocked in stage_fd_wait. */
START_TEST(test_fd_loop_free_cancels)
{
    int p[2];
    fdco c = {-1, STAGE_FD_READ, -1, 0, 0};
    stage_future *ct = NULL;

    t_pipe(p);
    c.fd = p[0];
    ck_assert_int_eq(stage_coro_spawn(NULL, fd_waiter, &c, NULL, 0, &ct), 0);
    ck_assert_int_eq(stage_yield(), 0);
    ck_assert_int_eq(stage_loop_free(stage_loop_current()), 0);
    ck_assert_int_eq(c.rc, ECANCELED);
    ck_assert_int_eq(stage_future_state(ct), STAGE_CANCELLED);
    stage_future_unref(ct);
    t_close2(p);
}
END_TEST

/* ---- EMFILE ---------------------------------------------------------------------- */

typedef struct emfile {
    int fd;
    int rc;
} emfile;

static void *emfile_thread(void *arg)
{
    emfile *e = arg;

    /* A fresh thread: its loop (and wake-up fd) does not exist yet. */
    e->rc = stage_fd_wait(e->fd, STAGE_FD_READ, 0.01, NULL);
    return NULL;
}

START_TEST(test_fd_emfile)
{
    int p[2];
    struct rlimit old, lim;
    static int dups[65536];
    int ndup = 0, fd, i;
    emfile e;
    pthread_t th;

    t_pipe(p);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)p[1] + 8;
    if (lim.rlim_cur > old.rlim_cur)
        lim.rlim_cur = old.rlim_cur;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
    /* Use up every descriptor. */
    while (ndup < 65536 && (fd = dup(p[0])) >= 0)
        dups[ndup++] = fd;
    ck_assert_int_eq(errno, EMFILE);
    e.fd = p[0];
    e.rc = -1;
    /* pthread_create needs no descriptor. */
    th = t_thread_start(emfile_thread, &e);
    t_thread_join(th);
    for (i = 0; i < ndup; i++)
        close(dups[i]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    /* The thread's loop could not create its wake-up fd. */
    ck_assert_int_eq(e.rc, EMFILE);
    /* Works again once descriptors are back. */
    e.rc = -1;
    th = t_thread_start(emfile_thread, &e);
    t_thread_join(th);
    ck_assert_int_eq(e.rc, ETIMEDOUT);
    t_close2(p);
}
END_TEST

static Suite *fd_suite(void)
{
    Suite *s = suite_create("fd");
    TCase *tc;

    tc = t_tcase(s, "basic", 5);
    tcase_add_test(tc, test_fd_args);
    tcase_add_test(tc, test_fd_ready_now);
    tcase_add_test(tc, test_fd_timeout);
    tcase_add_test(tc, test_fd_hangup);
    tcase_add_test(tc, test_fd_hangup_thread);
    tcase_add_test(tc, test_fd_emfile);

    tc = t_tcase(s, "wake", 10);
    tcase_add_test(tc, test_fd_thread_wakes);
    tcase_add_test(tc, test_fd_thread_runs_coroutines);
    tcase_add_test(tc, test_fd_coro_wakes_from_coro);
    tcase_add_test(tc, test_fd_coro_wakes_from_thread);
    tcase_add_test(tc, test_fd_write_when_drained);
    tcase_add_test(tc, test_fd_several_waiters);
    tcase_add_test(tc, test_fd_read_and_write_waiters);

    tc = t_tcase(s, "cancel", 10);
    tcase_add_test(tc, test_fd_cancel_coro);
    tcase_add_test(tc, test_fd_cancel_thread_task);
    tcase_add_test(tc, test_fd_loop_free_cancels);
    return s;
}

T_MAIN(fd_suite)
