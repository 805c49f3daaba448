/* SPDX-License-Identifier: MIT */
/*
 * check_idle.c - a waiting loop sleeps in the kernel, it does not poll: a
 * coroutine waiting half a second for a future that another thread
 * resolves, a coroutine waiting in stage_fd_wait on a pipe (the loop sleeps
 * in poll), a coroutine and a plain thread in stage_sleep, each cost a few
 * milliseconds of process CPU time at most.  And a coroutine always resumes
 * on its own loop's thread, whoever wakes it.
 */
#include "common.h"

#include <fcntl.h>

#define IDLE_SECS 0.5
/* Process CPU time a half-second wait may cost: about 1% of it is what a
 * sleeping loop costs (thread start and loop set-up included); a loop that
 * polls burns the whole half second. */
#define IDLE_CPU_MAX 0.05
/* Under memcheck the first run of any code path costs its translation; it
 * still stays far below the 0.5 s that polling would cost. */
#define IDLE_CPU_MAX_VG 0.3

/* ---- Measuring ------------------------------------------------------------- */

static double cpu_time(void)
{
    struct timespec ts;

    ck_assert_int_eq(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct span {
    double wall0, cpu0;
} span;

static span span_start(void)
{
    span s;

    s.cpu0 = cpu_time();
    s.wall0 = t_time();
    return s;
}

/* The wait lasted at least IDLE_SECS of real time and cost next to no
 * CPU time. */
static void span_check(span s, const char *what)
{
    double wall = t_time() - s.wall0;
    double cpu = cpu_time() - s.cpu0;
    double max = t_slow() ? IDLE_CPU_MAX_VG : IDLE_CPU_MAX;

    fprintf(stderr, "check_idle: %s: %.3f s of CPU time over %.3f s\n", what,
            cpu, wall);
    ck_assert_msg(wall >= IDLE_SECS, "%s: the wait lasted %.3f s", what,
                  wall);
    ck_assert_msg(cpu < max,
                  "%s: %.3f s of CPU time over a %.3f s wait (at most %.3f)",
                  what, cpu, wall, max);
}

/* ---- A thread that acts after IDLE_SECS ---------------------------------- */

typedef struct later {
    stage_future *resolve; /* resolved after the sleep, if not NULL */
    int fd;                /* written to after the sleep, if >= 0 */
    int sleep_rc;
} later;

static void *later_thread(void *arg)
{
    later *l = arg;
    char c = 'x';

    l->sleep_rc = stage_sleep(IDLE_SECS);
    if (l->fd >= 0 && write(l->fd, &c, 1) != 1)
        l->sleep_rc = errno;
    if (l->resolve != NULL)
        t_latch_open(l->resolve);
    return NULL;
}

/* Spawn body(arg) on main's loop and, with `l`, start later_thread(l);
 * main's root runs the loop until the coroutine ends, which must take at
 * least IDLE_SECS and next to no CPU time. */
static void idle_run(stage_task_fn body, void *arg, later *l,
                     const char *what)
{
    stage_future *task = NULL;
    pthread_t th = pthread_self();
    span s = span_start();

    ck_assert_int_eq(stage_coro_spawn(NULL, body, arg, NULL, 0, &task), 0);
    if (l != NULL)
        th = t_thread_start(later_thread, l);
    ck_assert_int_eq(stage_future_wait(task, 10.0 * t_tol()), 0);
    span_check(s, what);
    if (l != NULL) {
        t_thread_join(th);
        ck_assert_int_eq(l->sleep_rc, 0);
    }
    ck_assert_int_eq(stage_future_state(task), STAGE_DONE);
    stage_future_unref(task);
}

/* ---- (a) a coroutine waits for a future ----------------------------------- */

typedef struct waiter {
    stage_future *future; /* to wait for */
    int fd;               /* or the fd to wait on */
    unsigned int revents;
    int rc;
} waiter;

static void *future_waiter(void *arg)
{
    waiter *w = arg;

    w->rc = stage_future_wait(w->future, 10.0 * t_tol());
    return NULL;
}

START_TEST(test_idle_future_wait)
{
    waiter w = {stage_future_new(), -1, 0, -1};
    later l = {w.future, -1, -1};

    ck_assert_ptr_nonnull(w.future);
    /* The coroutine blocks, the loop sleeps on its condition variable. */
    idle_run(future_waiter, &w, &l, "coroutine in stage_future_wait");
    ck_assert_int_eq(w.rc, 0);
    stage_future_unref(w.future);
}
END_TEST

/* ---- (b) a coroutine waits on a pipe --------------------------------------- */

static void *fd_waiter(void *arg)
{
    waiter *w = arg;

    w->rc = stage_fd_wait(w->fd, STAGE_FD_READ, 10.0 * t_tol(), &w->revents);
    return NULL;
}

START_TEST(test_idle_fd_wait)
{
    int p[2];
    waiter w = {NULL, -1, 0, -1};
    later l = {NULL, -1, -1};
    char c = 0;

    ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
    w.fd = p[0];
    l.fd = p[1];
    /* The loop sleeps in poll(2). */
    idle_run(fd_waiter, &w, &l, "coroutine in stage_fd_wait");
    ck_assert_int_eq(w.rc, 0);
    ck_assert_uint_eq(w.revents, STAGE_FD_READ);
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    close(p[0]);
    close(p[1]);
}
END_TEST

/* ---- (c) stage_sleep, on a thread and in a coroutine ------------------------ */

START_TEST(test_idle_thread_sleep)
{
    span s;

    ck_assert_uint_eq(stage_loop_count(stage_loop_current()), 0);
    s = span_start();
    ck_assert_int_eq(stage_sleep(IDLE_SECS), 0);
    span_check(s, "thread in stage_sleep");
}
END_TEST

static void *sleeper(void *arg)
{
    int *rc = arg;

    *rc = stage_sleep(IDLE_SECS);
    return NULL;
}

START_TEST(test_idle_coro_sleep)
{
    int rc = -1;

    /* The root sleeps until the coroutine's timer. */
    idle_run(sleeper, &rc, NULL, "coroutine in stage_sleep");
    ck_assert_int_eq(rc, 0);
}
END_TEST

/* ---- (d) a coroutine resumes on its loop's thread ---------------------------- */

#define HOME_ROUNDS 100

typedef struct home {
    stage_future *loop;    /* T's loop, as the value */
    stage_future *done;    /* main lets T go */
    stage_future *ack[HOME_ROUNDS]; /* the coroutine is about to wait */
    stage_future *go[HOME_ROUNDS];  /* main wakes it */
    pthread_t t;           /* T */
    pthread_t seen[HOME_ROUNDS + 1]; /* pthread_self() in the coroutine */
    int rc[HOME_ROUNDS];
    int t_rc;
} home;

static void *home_thread(void *arg)
{
    home *h = arg;

    h->t = pthread_self();
    stage_future_resolve(h->loop, stage_loop_current(), NULL);
    /* Blocked here, T runs its loop: the coroutine main spawns on it. */
    h->t_rc = stage_future_wait(h->done, 30.0 * t_tol());
    return NULL;
}

static void *home_coro(void *arg)
{
    home *h = arg;
    int i;

    h->seen[0] = pthread_self();
    for (i = 0; i < HOME_ROUNDS; i++) {
        t_latch_open(h->ack[i]);
        h->rc[i] = stage_future_wait(h->go[i], 10.0 * t_tol());
        h->seen[i + 1] = pthread_self();
    }
    return NULL;
}

START_TEST(test_resume_on_own_thread)
{
    home *h = calloc(1, sizeof *h);
    stage_future *task = NULL;
    void *loop = NULL;
    pthread_t th;
    int i;

    ck_assert_ptr_nonnull(h);
    h->loop = stage_future_new();
    h->done = stage_future_new();
    for (i = 0; i < HOME_ROUNDS; i++) {
        h->ack[i] = stage_future_new();
        h->go[i] = stage_future_new();
        h->rc[i] = -1;
    }
    th = t_thread_start(home_thread, h);
    ck_assert_int_eq(stage_future_get(h->loop, 10.0 * t_tol(), &loop), 0);
    ck_assert_ptr_nonnull(loop);
    /* Spawned by main onto T's loop; every wake-up comes from main. */
    ck_assert_int_eq(stage_coro_spawn(loop, home_coro, h, NULL, 0, &task), 0);
    for (i = 0; i < HOME_ROUNDS; i++) {
        ck_assert_int_eq(stage_future_wait(h->ack[i], 10.0 * t_tol()), 0);
        ck_assert_int_eq(stage_future_resolve(h->go[i], NULL, NULL), 0);
    }
    ck_assert_int_eq(stage_future_wait(task, 10.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_state(task), STAGE_DONE);
    t_latch_open(h->done);
    t_thread_join(th);
    ck_assert_int_eq(h->t_rc, 0);
    ck_assert(!pthread_equal(h->t, pthread_self()));
    for (i = 0; i <= HOME_ROUNDS; i++)
        ck_assert_msg(pthread_equal(h->seen[i], h->t),
                      "wait #%d: the coroutine resumed on another thread", i);
    for (i = 0; i < HOME_ROUNDS; i++) {
        ck_assert_int_eq(h->rc[i], 0);
        stage_future_unref(h->ack[i]);
        stage_future_unref(h->go[i]);
    }
    stage_future_unref(task);
    stage_future_unref(h->loop);
    stage_future_unref(h->done);
    free(h);
}
END_TEST

static Suite *idle_suite(void)
{
    Suite *s = suite_create("idle");
    TCase *tc;

    tc = t_tcase(s, "idle", 10);
    tcase_add_test(tc, test_idle_future_wait);
    tcase_add_test(tc, test_idle_fd_wait);
    tcase_add_test(tc, test_idle_thread_sleep);
    tcase_add_test(tc, test_idle_coro_sleep);

    tc = t_tcase(s, "affinity", 10);
    tcase_add_test(tc, test_resume_on_own_thread);
    return s;
}

T_MAIN(idle_suite)
