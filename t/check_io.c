/* SPDX-License-Identifier: MIT */
/*
 * check_io.c - stage_fd_read, stage_fd_write and the line reader: argument
 * errors, blocking fds refused, reads of what is there, EOF apart from
 * timeouts, partial writes into a pipe drained slowly, EINTR from signals
 * during waits, timeouts and cancellation (of coroutines and of thread
 * tasks, by threads and by coroutines) that keep the bytes written so far
 * counted and the bytes read so far buffered, lines split and joined in
 * every way, EMSGSIZE with the data kept, and EBUSY.
 */
#include "common.h"

#include <fcntl.h>
#include <signal.h>

/* ---- Helpers -------------------------------------------------------------- */

/* A pipe with both ends non-blocking and close-on-exec. */
static void t_nbpipe(int p[2])
{
    ck_assert_int_eq(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

static void t_close2(int p[2])
{
    if (p[0] >= 0)
        close(p[0]);
    if (p[1] >= 0)
        close(p[1]);
    p[0] = p[1] = -1;
}

static void t_write_all(int fd, const char *s)
{
    size_t n = strlen(s);

    ck_assert_int_eq(write(fd, s, n), (ssize_t)n);
}

/* Nothing is left to read in fd right now. */
static int t_drained(int fd)
{
    return stage_fd_wait(fd, STAGE_FD_READ, 0, NULL) == ETIMEDOUT;
}

/* Wait (bounded) until fd has nothing left to read: another thread took
 * it.  A condition wait, not an ordering guess. */
static int t_wait_drained(int fd, double timeout)
{
    double deadline = t_time() + timeout * t_tol();
    struct timespec ts = {0, 200 * 1000};

    while (!t_drained(fd) && t_time() < deadline)
        nanosleep(&ts, NULL);
    return t_drained(fd);
}

/* The byte at offset i of the test pattern. */
static char t_pat(size_t i)
{
    return (char)('a' + (i * 7 + i / 251) % 26);
}

static char *t_pattern(size_t size)
{
    char *b = malloc(size);

    ck_assert_ptr_nonnull(b);
    for (size_t i = 0; i < size; i++)
        b[i] = t_pat(i);
    return b;
}

/* Read everything there is in a non-blocking fd; check it is the pattern
 * from offset `from`; returns the count. */
static size_t t_drain_pattern(int fd, size_t from)
{
    char buf[4096];
    size_t total = 0;
    ssize_t n;

    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            ck_assert_int_eq(buf[i], t_pat(from + total + (size_t)i));
        total += (size_t)n;
    }
    return total;
}

/* The next line of r is `want` ('\n' included), NUL-terminated. */
static void t_expect_line(stage_reader *r, double timeout, const char *want)
{
    char *line = NULL;
    size_t len = 0;
    int err = stage_reader_line(r, &line, &len, timeout);

    ck_assert_msg(err == 0, "line \"%s\": %s", want, strerror(err));
    ck_assert_ptr_nonnull(line);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_str_eq(line, want);
}

/* r is at the end of its file. */
static void t_expect_eof(stage_reader *r, double timeout)
{
    char *line = (char *)"x";
    size_t len = 99;

    ck_assert_int_eq(stage_reader_line(r, &line, &len, timeout), 0);
    ck_assert_ptr_null(line);
    ck_assert_uint_eq(len, 0);
}

/* ---- Arguments -------------------------------------------------------------- */

START_TEST(test_io_args)
{
    int p[2], b[2];
    char buf[8];
    size_t n = 99;
    char *line = (char *)buf;
    size_t len = 99;
    stage_reader *r;

    t_nbpipe(p);
    ck_assert_int_eq(stage_fd_read(p[0], NULL, 8, 0, &n), EINVAL);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(stage_fd_read(p[0], buf, 0, 0, &n), EINVAL);
    ck_assert_int_eq(stage_fd_read(p[0], buf, 8, 0, NULL), EINVAL);
    ck_assert_int_eq(stage_fd_read(p[0], buf, 8, NAN, &n), EINVAL);
    ck_assert_int_eq(stage_fd_read(-1, buf, 8, 0, &n), EBADF);
    ck_assert_int_eq(stage_fd_write(p[1], NULL, 8, 0, &n), EINVAL);
    ck_assert_int_eq(stage_fd_write(p[1], buf, 8, NAN, &n), EINVAL);
    ck_assert_int_eq(stage_fd_write(-3, buf, 8, 0, &n), EBADF);
    /* Nothing to write: done, whatever the fd's state. */
    n = 99;
    ck_assert_int_eq(stage_fd_write(p[1], NULL, 0, 0, &n), 0);
    ck_assert_uint_eq(n, 0);

    /* Blocking fds are refused, before anything is read or written. */
    ck_assert_int_eq(pipe(b), 0);
    ck_assert_int_eq(write(b[1], "x", 1), 1);
    ck_assert_int_eq(stage_fd_read(b[0], buf, 8, 0, &n), EINVAL);
    ck_assert_int_eq(stage_fd_write(b[1], "y", 1, 0, &n), EINVAL);
    ck_assert_uint_eq(n, 0);
    errno = 0;
    ck_assert_ptr_null(stage_reader_new(b[0], 0, 0));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(read(b[0], buf, 8), 1); /* the byte is still there */

    /* A closed fd number. */
    close(b[1]);
    ck_assert_int_eq(stage_fd_write(b[1], "y", 1, 0, &n), EBADF);
    errno = 0;
    ck_assert_ptr_null(stage_reader_new(b[1], 0, 0));
    ck_assert_int_eq(errno, EBADF);
    close(b[0]);

    errno = 0;
    ck_assert_ptr_null(stage_reader_new(p[0], 0, 0x80u));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(stage_reader_new(p[0], SIZE_MAX, 0));
    ck_assert_int_eq(errno, EINVAL);

    r = stage_reader_new(p[0], 0, 0);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(stage_reader_line(NULL, &line, &len, 0), EINVAL);
    ck_assert_int_eq(stage_reader_line(r, NULL, &len, 0), EINVAL);
    ck_assert_int_eq(stage_reader_line(r, &line, NULL, 0), EINVAL);
    ck_assert_ptr_null(line);
    line = (char *)buf;
    ck_assert_int_eq(stage_reader_line(r, &line, &len, NAN), EINVAL);
    ck_assert_ptr_null(line);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(stage_reader_read(NULL, buf, 8, 0, &n), EINVAL);
    ck_assert_int_eq(stage_reader_read(r, NULL, 8, 0, &n), EINVAL);
    ck_assert_int_eq(stage_reader_read(r, buf, 0, 0, &n), EINVAL);
    ck_assert_int_eq(stage_reader_read(r, buf, 8, 0, NULL), EINVAL);
    ck_assert_int_eq(stage_reader_read(r, buf, 8, NAN, &n), EINVAL);
    stage_reader_free(r);
    stage_reader_free(NULL);
    t_close2(p);
}
END_TEST

/* ---- Reads, EOF, timeouts --------------------------------------------------- */

START_TEST(test_io_read_available)
{
    int p[2];
    char buf[64];
    size_t n = 0;

    t_nbpipe(p);
    /* timeout 0: one try, no wait. */
    ck_assert_int_eq(stage_fd_read(p[0], buf, sizeof buf, 0, &n), ETIMEDOUT);
    ck_assert_uint_eq(n, 0);
    t_write_all(p[1], "abc");
    /* What is there, not the whole buffer. */
    ck_assert_int_eq(stage_fd_read(p[0], buf, sizeof buf, STAGE_FOREVER, &n),
                     0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
    /* At most size bytes; the rest stays. */
    t_write_all(p[1], "defgh");
    ck_assert_int_eq(stage_fd_read(p[0], buf, 2, 0, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(memcmp(buf, "de", 2), 0);
    ck_assert_int_eq(stage_fd_read(p[0], buf, sizeof buf, 1.0, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(memcmp(buf, "fgh", 3), 0);
    t_close2(p);
}
END_TEST

START_TEST(test_io_eof)
{
    int p[2];
    char buf[16];
    size_t n = 99;
    stage_reader *r;

    /* A plain read: EOF is 0 with nothing read, not a timeout. */
    t_nbpipe(p);
    close(p[1]);
    p[1] = -1;
    ck_assert_int_eq(stage_fd_read(p[0], buf, sizeof buf, 0, &n), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(stage_fd_read(p[0], buf, sizeof buf, STAGE_FOREVER, &n),
                     0);
    ck_assert_uint_eq(n, 0);
    t_close2(p);

    /* Lines: the last one without '\n', then EOF, and EOF again. */
    t_nbpipe(p);
    t_write_all(p[1], "one\ntwo");
    close(p[1]);
    p[1] = -1;
    r = stage_reader_new(p[0], 0, 0);
    ck_assert_ptr_nonnull(r);
    t_expect_line(r, 1.0, "one\n");
    t_expect_line(r, 1.0, "two");
    t_expect_eof(r, 1.0);
    t_expect_eof(r, 1.0);
    ck_assert_int_eq(stage_reader_read(r, buf, sizeof buf, 1.0, &n), 0);
    ck_assert_uint_eq(n, 0);
    stage_reader_free(r);
    t_close2(p);
}
END_TEST

START_TEST(test_io_timeout)
{
    int p[2];
    char buf[16];
    size_t n = 99, size = 1 << 20;
    char *line = buf;
    size_t len = 99;
    char *big = t_pattern(size);
    stage_reader *r;
    double t0, el;

    t_nbpipe(p);
    t0 = t_time();
    ck_assert_int_eq(stage_fd_read(p[0], buf, sizeof buf, 0.05, &n),
                     ETIMEDOUT);
    el = t_time() - t0;
    ck_assert_uint_eq(n, 0);
    ck_assert_double_ge(el, 0.05);
    ck_assert_double_lt(el, 0.05 + 1.0 * t_tol());

    r = stage_reader_new(p[0], 0, 0);
    ck_assert_ptr_nonnull(r);
    t_write_all(p[1], "no newline yet");
    t0 = t_time();
    ck_assert_int_eq(stage_reader_line(r, &line, &len, 0.05), ETIMEDOUT);
    el = t_time() - t0;
    ck_assert_ptr_null(line);
    ck_assert_uint_eq(len, 0);
    ck_assert_double_ge(el, 0.05);
    ck_assert_double_lt(el, 0.05 + 1.0 * t_tol());
    ck_assert(t_drained(p[0])); /* it is in the reader's buffer ... */
    t_write_all(p[1], "\n");
    t_expect_line(r, 0, "no newline yet\n"); /* ... and nothing lost */
    stage_reader_free(r);

    /* A write into a pipe nobody reads: what fitted is counted. */
    t0 = t_time();
    ck_assert_int_eq(stage_fd_write(p[1], big, size, 0.05, &n), ETIMEDOUT);
    el = t_time() - t0;
    ck_assert_double_ge(el, 0.05);
    ck_assert_uint_gt(n, 0);
    ck_assert_uint_lt(n, size);
    ck_assert_uint_eq(t_drain_pattern(p[0], 0), n);
    /* timeout 0: what fits now, then ETIMEDOUT at once. */
    size_t n0 = 0;
    ck_assert_int_eq(stage_fd_write(p[1], big, size, 0, &n0), ETIMEDOUT);
    ck_assert_uint_gt(n0, 0);
    ck_assert_uint_eq(t_drain_pattern(p[0], 0), n0);
    free(big);
    t_close2(p);
}
END_TEST

START_TEST(test_io_epipe)
{
    int p[2];
    size_t n = 99;

    /* As write(2): EPIPE once SIGPIPE is ignored (the default kills). */
    signal(SIGPIPE, SIG_IGN);
    t_nbpipe(p);
    close(p[0]);
    p[0] = -1;
    ck_assert_int_eq(stage_fd_write(p[1], "x", 1, 1.0, &n), EPIPE);
    ck_assert_uint_eq(n, 0);
    t_close2(p);
    signal(SIGPIPE, SIG_DFL);
}
END_TEST

/* ---- Partial writes ---------------------------------------------------------- */

typedef struct drainer {
    int fd;
    size_t got;
    int bad; /* a byte out of pattern */
} drainer;

/* A slow reader: small reads with pauses, until EOF (blocking fd). */
static void *drain_slowly(void *arg)
{
    drainer *d = arg;
    char buf[1000];
    struct timespec ts = {0, 100 * 1000};
    ssize_t n;
    int flags = fcntl(d->fd, F_GETFL);

    fcntl(d->fd, F_SETFL, flags & ~O_NONBLOCK);
    while ((n = read(d->fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != t_pat(d->got + (size_t)i))
                d->bad = 1;
        d->got += (size_t)n;
        nanosleep(&ts, NULL);
    }
    return NULL;
}

typedef struct bigwrite {
    int fd;
    const char *buf;
    size_t size;
    double timeout;
    int rc;
    size_t n;
} bigwrite;

static void *write_big(void *arg)
{
    bigwrite *w = arg;

    w->rc = stage_fd_write(w->fd, w->buf, w->size, w->timeout, &w->n);
    return NULL;
}

/* _i == 0: the writer is the main thread; 1: a coroutine of main's loop.
 * The pipe is shrunk to one page where the system allows, so the write is
 * cut into hundreds of partial writes. */
START_TEST(test_io_partial_writes)
{
    int p[2];
    size_t size = t_on_valgrind() ? (1u << 20) : (4u << 20);
    char *big = t_pattern(size);
    drainer d = {0, 0, 0};
    bigwrite w;
    pthread_t th;

    t_nbpipe(p);
#ifdef F_SETPIPE_SZ
    fcntl(p[1], F_SETPIPE_SZ, 4096);
#endif
    d.fd = p[0];
    th = t_thread_start(drain_slowly, &d);
    w = (bigwrite){p[1], big, size, 60.0 * t_tol(), -1, 0};
    if (_i == 0) {
        write_big(&w);
    } else {
        stage_future *f = NULL;

        ck_assert_int_eq(stage_coro_spawn(NULL, write_big, &w, NULL, 0, &f),
                         0);
        ck_assert_int_eq(stage_future_wait(f, STAGE_FOREVER), 0);
        stage_future_unref(f);
    }
    ck_assert_int_eq(w.rc, 0);
    ck_assert_uint_eq(w.n, size);
    close(p[1]);
    p[1] = -1;
    t_thread_join(th);
    ck_assert_uint_eq(d.got, size);
    ck_assert_int_eq(d.bad, 0);
    free(big);
    t_close2(p);
}
END_TEST

/* ---- EINTR -------------------------------------------------------------------- */

static atomic_int t_signals;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&t_signals, 1);
}

typedef struct pester {
    pthread_t target;
    int count;
    int fd;            /* then: write `msg` here, or ... */
    const char *msg;
    int drain_fd;      /* ... drain this fd (if >= 0) */
    size_t drained;
} pester;

/* Signals the target thread `count` times, a millisecond apart, while it
 * waits; then lets its wait end.  (Signals that arrive while one is
 * pending merge, so the test counts "some", not `count`.) */
static void *pester_then_finish(void *arg)
{
    pester *ps = arg;
    struct timespec ts = {0, 1000 * 1000};

    for (int i = 0; i < ps->count; i++) {
        pthread_kill(ps->target, SIGUSR1);
        nanosleep(&ts, NULL);
    }
    if (ps->msg && write(ps->fd, ps->msg, strlen(ps->msg)) < 0)
        ps->drained = (size_t)-1; /* reported by the test */
    if (ps->drain_fd >= 0) {
        int flags = fcntl(ps->drain_fd, F_GETFL);
        char buf[4096];
        ssize_t n;

        fcntl(ps->drain_fd, F_SETFL, flags & ~O_NONBLOCK);
        while ((n = read(ps->drain_fd, buf, sizeof buf)) > 0)
            ps->drained += (size_t)n;
    }
    return NULL;
}

/* Signals whose handler does not restart system calls land during the
 * waits of a read, a line and a write: each call carries on. */
START_TEST(test_io_eintr)
{
    struct sigaction sa, old;
    int p[2];
    char buf[16];
    size_t n = 0, size = 1 << 20;
    char *line = NULL, *big = t_pattern(size);
    size_t len = 0;
    stage_reader *r;
    pthread_t th;
    pester ps;
    int sig;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = 0; /* no SA_RESTART: poll(2) fails with EINTR */
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
    atomic_store(&t_signals, 0);

    t_nbpipe(p);
    ps = (pester){pthread_self(), 20, p[1], "done", -1, 0};
    th = t_thread_start(pester_then_finish, &ps);
    ck_assert_int_eq(
        stage_fd_read(p[0], buf, sizeof buf, 30.0 * t_tol(), &n), 0);
    t_thread_join(th);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(memcmp(buf, "done", 4), 0);
    ck_assert_uint_eq(ps.drained, 0);
    ck_assert_int_gt(atomic_load(&t_signals), 0);
    sig = atomic_load(&t_signals);

    r = stage_reader_new(p[0], 0, 0);
    ck_assert_ptr_nonnull(r);
    ps = (pester){pthread_self(), 20, p[1], "a line\n", -1, 0};
    th = t_thread_start(pester_then_finish, &ps);
    ck_assert_int_eq(stage_reader_line(r, &line, &len, 30.0 * t_tol()), 0);
    t_thread_join(th);
    ck_assert_str_eq(line, "a line\n");
    ck_assert_uint_eq(ps.drained, 0);
    ck_assert_int_gt(atomic_load(&t_signals), sig);
    sig = atomic_load(&t_signals);
    stage_reader_free(r);

    /* A write into a full pipe, drained only after the signals. */
    ps = (pester){pthread_self(), 20, -1, NULL, p[0], 0};
    th = t_thread_start(pester_then_finish, &ps);
    ck_assert_int_eq(stage_fd_write(p[1], big, size, 30.0 * t_tol(), &n), 0);
    ck_assert_uint_eq(n, size);
    close(p[1]);
    p[1] = -1;
    t_thread_join(th);
    ck_assert_uint_eq(ps.drained, size);
    ck_assert_int_gt(atomic_load(&t_signals), sig);
    ck_assert_int_eq(sigaction(SIGUSR1, &old, NULL), 0);
    free(big);
    t_close2(p);
}
END_TEST

/* ---- Cancellation ------------------------------------------------------------- */

typedef struct op {
    int kind; /* 0 read, 1 write (1 MiB), 2 line */
    int fd;
    stage_reader *r;
    stage_future *ready; /* opened when the op is about to start */
    int rc;
    size_t n;
    char line[64];
} op;

static void *run_op(void *arg)
{
    op *o = arg;
    char buf[64];
    char *line = NULL;
    size_t len = 0;

    if (o->ready)
        t_latch_open(o->ready);
    switch (o->kind) {
    case 0:
        o->rc = stage_fd_read(o->fd, buf, sizeof buf, STAGE_FOREVER, &o->n);
        break;
    case 1: {
        size_t size = 1 << 20;
        char *big = t_pattern(size);

        o->rc = stage_fd_write(o->fd, big, size, STAGE_FOREVER, &o->n);
        free(big);
        break;
    }
    default:
        o->rc = stage_reader_line(o->r, &line, &len, STAGE_FOREVER);
        if (o->rc == 0 && line)
            snprintf(o->line, sizeof o->line, "%s", line);
        break;
    }
    return NULL;
}

/* Cancels the future in arg (from a coroutine). */
static void *cancel_it(void *arg)
{
    stage_future_cancel(arg);
    return NULL;
}

/* A fresh op of `kind` on a new pipe p. */
static void t_op_init(op *o, int kind, int p[2])
{
    memset(o, 0, sizeof *o);
    o->rc = -1;
    o->kind = kind;
    t_nbpipe(p);
    o->fd = kind == 1 ? p[1] : p[0];
    if (kind == 2) {
        o->r = stage_reader_new(p[0], 0, 0);
        ck_assert_ptr_nonnull(o->r);
    }
}

/* Cancel task f, from the main thread or (by_coro) from a coroutine, and
 * wait until it ended. */
static void t_cancel(stage_future *f, int by_coro)
{
    stage_future *c = NULL;

    if (!by_coro) {
        ck_assert_int_eq(stage_future_cancel(f), 0);
    } else {
        ck_assert_int_eq(stage_coro_spawn(NULL, cancel_it, f, NULL, 0, &c),
                         0);
        ck_assert_int_eq(stage_future_wait(c, 5.0 * t_tol()), 0);
        stage_future_unref(c);
    }
    ck_assert_int_eq(stage_future_wait(f, 5.0 * t_tol()), 0);
}

/* A coroutine blocked in a read, a write or a line wait is cancelled by
 * the main thread (_i 0-2), or by another coroutine (_i 3-5). */
START_TEST(test_io_cancel_coro)
{
    int p[2];
    op o;
    stage_future *f = NULL;
    size_t size;

    t_op_init(&o, _i % 3, p);
    ck_assert_int_eq(stage_coro_spawn(NULL, run_op, &o, NULL, 0, &f), 0);
    ck_assert_int_eq(stage_yield(), 0); /* it runs and blocks */
    ck_assert_int_eq(o.rc, -1);
    t_cancel(f, _i >= 3);
    ck_assert_int_eq(o.rc, ECANCELED);
    ck_assert_int_eq(stage_future_state(f), STAGE_CANCELLED);
    stage_future_unref(f);
    if (o.kind == 1) {
        /* The bytes written before the cancel are counted. */
        ck_assert_uint_gt(o.n, 0);
        size = t_drain_pattern(p[0], 0);
        ck_assert_uint_eq(size, o.n);
    } else {
        ck_assert_uint_eq(o.n, 0);
    }
    stage_reader_free(o.r);
    t_close2(p);
}
END_TEST

/* A thread task blocked in a read, a write or a line wait is cancelled by
 * the main thread (_i 0-2) or by a coroutine (_i 3-5). */
START_TEST(test_io_cancel_thread)
{
    int p[2];
    op o;
    stage_future *f = NULL;

    t_op_init(&o, _i % 3, p);
    o.ready = stage_future_new();
    ck_assert_int_eq(stage_thread_spawn(run_op, &o, NULL, &f), 0);
    ck_assert_int_eq(stage_future_wait(o.ready, 5.0 * t_tol()), 0);
    /* Blocked or about to block: a cancel lands either way. */
    if (o.kind == 1)
        ck_assert_int_eq(stage_fd_wait(p[0], STAGE_FD_READ, 5.0 * t_tol(),
                                       NULL),
                         0);
    t_cancel(f, _i >= 3);
    ck_assert_int_eq(o.rc, ECANCELED);
    if (o.kind == 1)
        ck_assert_uint_eq(t_drain_pattern(p[0], 0), o.n);
    stage_future_unref(f);
    stage_future_unref(o.ready);
    stage_reader_free(o.r);
    t_close2(p);
}
END_TEST

/* A line wait cancelled half-way through a line loses nothing: the next
 * reader of the same stage_reader gets the whole line.  _i == 0: the
 * cancelled reader is a coroutine; 1: a thread task; the next reader is
 * the main thread, then a coroutine. */
START_TEST(test_io_cancel_midline)
{
    int p[2];
    op o;
    stage_future *f = NULL;

    memset(&o, 0, sizeof o);
    o.rc = -1;
    o.kind = 2;
    t_nbpipe(p);
    o.r = stage_reader_new(p[0], 0, 0);
    ck_assert_ptr_nonnull(o.r);
    t_write_all(p[1], "first li");
    if (_i == 0) {
        ck_assert_int_eq(stage_coro_spawn(NULL, run_op, &o, NULL, 0, &f), 0);
        ck_assert_int_eq(stage_yield(), 0); /* it reads, then blocks */
    } else {
        ck_assert_int_eq(stage_thread_spawn(run_op, &o, NULL, &f), 0);
    }
    /* The reader took the half line out of the pipe. */
    ck_assert(t_wait_drained(p[0], 5.0));
    ck_assert_int_eq(stage_future_cancel(f), 0);
    ck_assert_int_eq(stage_future_wait(f, 5.0 * t_tol()), 0);
    ck_assert_int_eq(o.rc, ECANCELED);
    stage_future_unref(f);

    t_write_all(p[1], "ne\nsecond li");
    t_expect_line(o.r, 1.0 * t_tol(), "first line\n");

    /* Once more with a coroutine as the next reader. */
    o.rc = -1;
    ck_assert_int_eq(stage_coro_spawn(NULL, run_op, &o, NULL, 0, &f), 0);
    ck_assert_int_eq(stage_yield(), 0);
    ck_assert_int_eq(stage_future_cancel(f), 0);
    ck_assert_int_eq(stage_future_wait(f, 5.0 * t_tol()), 0);
    ck_assert_int_eq(o.rc, ECANCELED);
    stage_future_unref(f);
    t_write_all(p[1], "ne\n");
    o.rc = -1;
    ck_assert_int_eq(stage_coro_spawn(NULL, run_op, &o, NULL, 0, &f), 0);
    ck_assert_int_eq(stage_future_wait(f, 5.0 * t_tol()), 0);
    ck_assert_int_eq(o.rc, 0);
    ck_assert_str_eq(o.line, "second line\n");
    stage_future_unref(f);
    stage_reader_free(o.r);
    t_close2(p);
}
END_TEST

/* ---- Lines ------------------------------------------------------------------- */

START_TEST(test_io_lines)
{
    int p[2];
    char *line = NULL;
    size_t len = 0;
    stage_reader *r;

    t_nbpipe(p);
    r = stage_reader_new(p[0], 0, 0);
    ck_assert_ptr_nonnull(r);
    /* Several lines in one write, an empty one among them. */
    t_write_all(p[1], "alpha\n\nbeta\ngam");
    t_expect_line(r, 0, "alpha\n");
    t_expect_line(r, 0, "\n");
    t_expect_line(r, 0, "beta\n");
    /* Incomplete: timeout 0 says so at once, and keeps it. */
    ck_assert_int_eq(stage_reader_line(r, &line, &len, 0), ETIMEDOUT);
    t_write_all(p[1], "ma\ndelta");
    t_expect_line(r, 0, "gamma\n");
    /* A line with a NUL byte in it: len tells. */
    ck_assert_int_eq(write(p[1], "\n\0z\n", 4), 4);
    t_expect_line(r, 0, "delta\n");
    ck_assert_int_eq(stage_reader_line(r, &line, &len, 0), 0);
    ck_assert_uint_eq(len, 3);
    ck_assert_int_eq(memcmp(line, "\0z\n", 4), 0); /* and a NUL after */
    stage_reader_free(r);
    t_close2(p);
}
END_TEST

typedef struct liner {
    int fd;
    int nlines;
    int err; /* the first failed write (no ck_assert off the main thread) */
} liner;

/* Writes lines of lengths 0..70 in odd-sized pieces, then closes. */
static void *write_lines(void *arg)
{
    liner *l = arg;
    char buf[8192];
    size_t used = 0;
    size_t n;

    for (int i = 0; i < l->nlines; i++) {
        int w = i % 71;

        if (used + (size_t)w + 1 > sizeof buf || i % 13 == 0) {
            for (size_t off = 0; off < used; off += n) {
                n = used - off < 37 ? used - off : 37;
                int err = stage_fd_write(l->fd, buf + off, n, STAGE_FOREVER,
                                         NULL);

                if (err && !l->err)
                    l->err = err;
            }
            used = 0;
        }
        for (int j = 0; j < w; j++)
            buf[used++] = (char)('A' + (i + j) % 26);
        buf[used++] = '\n';
    }
    int err = stage_fd_write(l->fd, buf, used, STAGE_FOREVER, NULL);

    if (err && !l->err)
        l->err = err;
    close(l->fd);
    return NULL;
}

/* Thousands of lines of every length up to the limit, arriving in pieces
 * that split lines anywhere: the buffer compacts and never rescans. */
START_TEST(test_io_lines_stream)
{
    int p[2];
    liner l;
    pthread_t th;
    stage_reader *r;
    char *line;
    size_t len;
    int i = 0;

    t_nbpipe(p);
    l.fd = p[1];
    l.nlines = t_on_valgrind() ? 2000 : 20000;
    l.err = 0;
    r = stage_reader_new(p[0], 70, 0); /* the longest line: 70 + '\n' */
    ck_assert_ptr_nonnull(r);
    th = t_thread_start(write_lines, &l);
    for (;;) {
        ck_assert_int_eq(stage_reader_line(r, &line, &len, 30.0 * t_tol()),
                         0);
        if (!line)
            break;
        int w = i % 71;

        ck_assert_uint_eq(len, (size_t)w + 1);
        for (int j = 0; j < w; j++)
            ck_assert_int_eq(line[j], 'A' + (i + j) % 26);
        ck_assert_int_eq(line[w], '\n');
        ck_assert_int_eq(line[w + 1], '\0');
        i++;
    }
    ck_assert_int_eq(i, l.nlines);
    t_thread_join(th);
    ck_assert_int_eq(l.err, 0);
    stage_reader_free(r);
    close(p[0]);
}
END_TEST

START_TEST(test_io_emsgsize)
{
    int p[2];
    char *line = NULL, buf[64];
    size_t len = 0, n = 0;
    stage_reader *r;

    t_nbpipe(p);
    r = stage_reader_new(p[0], 8, 0);
    ck_assert_ptr_nonnull(r);
    /* 8 bytes and '\n' fit; 9 bytes without '\n' do not. */
    t_write_all(p[1], "12345678\n0123456789abcdef\nok\n");
    t_expect_line(r, 0, "12345678\n");
    ck_assert_int_eq(stage_reader_line(r, &line, &len, 0), EMSGSIZE);
    ck_assert_ptr_null(line);
    ck_assert_uint_eq(len, 0);
    /* The data stays: EMSGSIZE again, until the caller reads it out. */
    ck_assert_int_eq(stage_reader_line(r, &line, &len, 0), EMSGSIZE);
    ck_assert_int_eq(stage_reader_read(r, buf, sizeof buf, 0, &n), 0);
    ck_assert_uint_eq(n, 9); /* what was buffered: max_line + 1 */
    ck_assert_int_eq(memcmp(buf, "012345678", 9), 0);
    t_expect_line(r, 0, "9abcdef\n");
    t_expect_line(r, 0, "ok\n");
    /* At EOF, a last line of max_line bytes without '\n' is a line. */
    t_write_all(p[1], "ABCDEFGH");
    close(p[1]);
    p[1] = -1;
    t_expect_line(r, 1.0, "ABCDEFGH");
    t_expect_eof(r, 1.0);
    stage_reader_free(r);
    t_close2(p);
}
END_TEST

START_TEST(test_io_reader_read)
{
    int p[2];
    char buf[64];
    size_t n = 0;
    stage_reader *r;

    t_nbpipe(p);
    r = stage_reader_new(p[0], 0, 0);
    ck_assert_ptr_nonnull(r);
    t_write_all(p[1], "head\nbody bytes");
    t_expect_line(r, 0, "head\n");
    /* The buffer first, in pieces ... */
    ck_assert_int_eq(stage_reader_read(r, buf, 4, 0, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(memcmp(buf, "body", 4), 0);
    ck_assert_int_eq(stage_reader_read(r, buf, sizeof buf, 0, &n), 0);
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(memcmp(buf, " bytes", 6), 0);
    /* ... then the fd itself. */
    ck_assert_int_eq(stage_reader_read(r, buf, sizeof buf, 0, &n), ETIMEDOUT);
    t_write_all(p[1], "tail\nnext\n");
    ck_assert_int_eq(stage_reader_read(r, buf, 3, 1.0, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(memcmp(buf, "tai", 3), 0);
    t_expect_line(r, 0, "l\n");
    t_expect_line(r, 0, "next\n");
    stage_reader_free(r);
    t_close2(p);
}
END_TEST

START_TEST(test_io_reader_busy_and_close)
{
    int p[2];
    op o;
    stage_future *f = NULL;
    char *line = NULL, buf[8];
    size_t len = 0, n = 0;

    memset(&o, 0, sizeof o);
    o.rc = -1;
    o.kind = 2;
    t_nbpipe(p);
    o.r = stage_reader_new(p[0], 0, STAGE_READER_CLOSE);
    ck_assert_ptr_nonnull(o.r);
    ck_assert_int_eq(stage_coro_spawn(NULL, run_op, &o, NULL, 0, &f), 0);
    ck_assert_int_eq(stage_yield(), 0);
    /* One call at a time. */
    ck_assert_int_eq(stage_reader_line(o.r, &line, &len, 0), EBUSY);
    ck_assert_int_eq(stage_reader_read(o.r, buf, sizeof buf, 0, &n), EBUSY);
    t_write_all(p[1], "ok\n");
    ck_assert_int_eq(stage_future_wait(f, 5.0 * t_tol()), 0);
    ck_assert_int_eq(o.rc, 0);
    ck_assert_str_eq(o.line, "ok\n");
    stage_future_unref(f);
    /* STAGE_READER_CLOSE: the reader owns the fd. */
    stage_reader_free(o.r);
    errno = 0;
    ck_assert_int_eq(fcntl(p[0], F_GETFD), -1);
    ck_assert_int_eq(errno, EBADF);
    p[0] = -1;
    t_close2(p);
}
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc;

    tc = t_tcase(s, "basic", 10);
    tcase_add_test(tc, test_io_args);
    tcase_add_test(tc, test_io_read_available);
    tcase_add_test(tc, test_io_eof);
    tcase_add_test(tc, test_io_timeout);
    tcase_add_test(tc, test_io_epipe);
    tcase_add_loop_test(tc, test_io_partial_writes, 0, 2);
    tcase_add_test(tc, test_io_eintr);

    tc = t_tcase(s, "cancel", 10);
    tcase_add_loop_test(tc, test_io_cancel_coro, 0, 6);
    tcase_add_loop_test(tc, test_io_cancel_thread, 0, 6);
    tcase_add_loop_test(tc, test_io_cancel_midline, 0, 2);

    tc = t_tcase(s, "lines", 30);
    tcase_add_test(tc, test_io_lines);
    tcase_add_test(tc, test_io_lines_stream);
    tcase_add_test(tc, test_io_emsgsize);
    tcase_add_test(tc, test_io_reader_read);
    tcase_add_test(tc, test_io_reader_busy_and_close);
    return s;
}

T_MAIN(io_suite)
