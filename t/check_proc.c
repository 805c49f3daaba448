/* SPDX-License-Identifier: MIT */
/*
 * check_proc.c - subprocesses: argument errors and ENOENT without leaks,
 * exit status, signals, timeouts and cancellation of waits, stdin, stdout
 * and stderr pipes, envp and PATH search, many waiters on one child, a
 * running child killed and reaped by stage_proc_free, the application's
 * own children and SIGCHLD handler left alone, ECHILD when the application
 * steals a child, signals during waits, and the acceptance test: 200
 * subprocesses each echoing 1,000 lines read by coroutines, all lines
 * received, all children reaped, no fd leaked.
 *
 * Most tests run twice (loop tests): _i == 0 with pidfds, as libstage does
 * on Linux >= 5.3; _i == 1 with the helper-thread fallback, forced with
 * STAGE_NO_PIDFD.  (Under valgrind 3.19 pidfd_open is ENOSYS, so both runs
 * use the fallback there.)
 */
#include "common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

/* ---- Helpers -------------------------------------------------------------- */

static const char *t_mode_name(int mode)
{
    return mode ? "helper thread" : "pidfd";
}

/* Select how children are waited for: 0 pidfd, 1 helper thread. */
static void t_mode(int mode)
{
    if (mode)
        setenv("STAGE_NO_PIDFD", "1", 1);
    else
        unsetenv("STAGE_NO_PIDFD");
}

static void *t_noop(void *arg)
{
    return arg;
}

/* The thread count, after a first thread was started and joined: the
 * sanitizer runtimes start a helper thread of their own at the first
 * pthread_create, which must not count as ours, and the joined thread may
 * still be listed for a moment (t_threads_settle): on a loaded machine the
 * count read at once was one too many (seen in a Debian build beside
 * other jobs). */
static int t_thread_baseline(void)
{
    int before = t_thread_count();
#if defined(STAGE_ASAN) || defined(STAGE_TSAN)
    int extra = 1;
#else
    int extra = 0;
#endif

    t_thread_join(t_thread_start(t_noop, NULL));
    return t_threads_settle(before + extra, 2.0 * t_tol());
}

/* Spawn /bin/sh -c script [args...]. */
static stage_proc *t_sh(const char *script, unsigned int flags,
                        char *const envp[], const char *arg1)
{
    char *argv[] = {"sh", "-c", (char *)script, "sh", (char *)arg1, NULL};
    stage_proc *p = NULL;

    ck_assert_int_eq(stage_proc_spawn("/bin/sh", argv, envp, flags, &p), 0);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* A long-running child that ends only when killed. */
static stage_proc *t_sleeper(unsigned int flags)
{
    return t_sh("exec sleep 30", flags, NULL, NULL);
}

/* Read one line of fd into out (NUL-terminated, at most 255 bytes). */
static int t_line(int fd, char *out)
{
    stage_reader *r = stage_reader_new(fd, 255, 0);
    char *line = NULL;
    size_t len = 0;
    int err;

    ck_assert_ptr_nonnull(r);
    err = stage_reader_line(r, &line, &len, 10.0 * t_tol());
    if (err == 0)
        snprintf(out, 256, "%s", line ? line : "<EOF>");
    stage_reader_free(r);
    return err;
}

static int t_wait_status(stage_proc *p)
{
    int st = -1;

    ck_assert_int_eq(stage_proc_wait(p, 10.0 * t_tol(), &st), 0);
    return st;
}

/* p ends (or ended) with exit(code). */
static void t_expect_exit(stage_proc *p, int code)
{
    int st = t_wait_status(p);

    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == code,
                  "status %#x, not exit(%d)", st, code);
}

/* p ends (or ended) killed by sig. */
static void t_expect_signal(stage_proc *p, int sig)
{
    int st = t_wait_status(p);

    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == sig,
                  "status %#x, not signal %d", st, sig);
}

/* ---- Arguments and spawn errors -------------------------------------------- */

/* Spawning a program that does not exist fails with ENOENT.  Under
 * valgrind or qemu-user, which run posix_spawn's vfork-style clone as a
 * fork, the exec error cannot reach the parent: the spawn succeeds and the
 * child exits with 127, as a shell reports it. */
static void t_spawn_enoent(const char *path, char *const argv[],
                           unsigned int flags)
{
    stage_proc *p = NULL;
    int rc = stage_proc_spawn(path, argv, NULL, flags, &p);

    if (rc == 0 && (t_on_valgrind() || t_on_emulator())) {
        t_expect_exit(p, 127);
        stage_proc_free(p);
        return;
    }
    ck_assert_int_eq(rc, ENOENT);
    ck_assert_ptr_null(p);
}

START_TEST(test_proc_args)
{
    char *argv[] = {"true", NULL};
    char *noargs[] = {NULL};
    stage_proc *p = (stage_proc *)&p;
    int fds, st = 0;

    /* First make what lasts for the loop's life, its wake-up fd (made the
     * first time the loop waits on an fd), so that the fd count below sees
     * only the failed spawns' own: under valgrind and qemu-user they
     * succeed and are waited for, and that wait makes the wake-up fd only
     * if the child has not ended yet.  A pipe nobody writes makes it every
     * time. */
    int pp[2];
    ck_assert_int_eq(pipe(pp), 0);
    ck_assert_int_eq(stage_fd_wait(pp[0], STAGE_FD_READ, 0.001, NULL),
                     ETIMEDOUT);
    close(pp[0]);
    close(pp[1]);
    fds = t_fd_count();

    ck_assert_int_eq(stage_proc_spawn(NULL, argv, NULL, 0, &p), EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(stage_proc_spawn("", argv, NULL, 0, &p), EINVAL);
    ck_assert_int_eq(stage_proc_spawn("/bin/true", NULL, NULL, 0, &p),
                     EINVAL);
    ck_assert_int_eq(stage_proc_spawn("/bin/true", noargs, NULL, 0, &p),
                     EINVAL);
    ck_assert_int_eq(stage_proc_spawn("/bin/true", argv, NULL, 0, NULL),
                     EINVAL);
    ck_assert_int_eq(stage_proc_spawn("/bin/true", argv, NULL, 0x100u, &p),
                     EINVAL);
    ck_assert_int_eq(
        stage_proc_spawn("/bin/true", argv, NULL,
                         STAGE_PROC_STDERR | STAGE_PROC_STDERR_TO_STDOUT, &p),
        EINVAL);
    ck_assert_ptr_null(p);

    /* No such program: ENOENT from posix_spawn, with or without a PATH
     * search, and the pipes made for it are closed again. */
    t_spawn_enoent("/nonexistent/prog", argv,
                   STAGE_PROC_STDIN | STAGE_PROC_STDOUT | STAGE_PROC_STDERR);
    t_spawn_enoent("stage-no-such-program", argv, STAGE_PROC_STDOUT);
    ck_assert_int_eq(t_fd_count(), fds);
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* no zombie */
    ck_assert_int_eq(errno, ECHILD);

    ck_assert_int_eq(stage_proc_fd(NULL, 1), -1);
    ck_assert_int_eq(stage_proc_pid(NULL), -1);
    ck_assert_int_eq(stage_proc_wait(NULL, 0, &st), EINVAL);
    ck_assert_int_eq(stage_proc_kill(NULL, SIGTERM), EINVAL);
    ck_assert_int_eq(stage_proc_close_stdin(NULL), EINVAL);
    stage_proc_free(NULL);

    p = t_sh("exit 0", 0, NULL, NULL);
    ck_assert_int_eq(stage_proc_fd(p, 0), -1); /* nothing piped */
    ck_assert_int_eq(stage_proc_fd(p, 1), -1);
    ck_assert_int_eq(stage_proc_fd(p, 2), -1);
    ck_assert_int_eq(stage_proc_fd(p, 3), -1);
    ck_assert_int_eq(stage_proc_fd(p, -1), -1);
    ck_assert_int_eq(stage_proc_close_stdin(p), EINVAL);
    ck_assert_int_eq(stage_proc_wait(p, NAN, &st), EINVAL);
    ck_assert_int_eq(stage_proc_kill(p, -1), EINVAL);
    ck_assert_int_gt(stage_proc_pid(p), 0);
    ck_assert_int_eq(stage_proc_wait(p, 10.0 * t_tol(), NULL), 0);
    stage_proc_free(p);
}
END_TEST

/* The mechanism in use shows in the resources: a pidfd is one more fd,
 * the fallback one more thread while the child runs. */
START_TEST(test_proc_mode)
{
    int fds, threads;
    stage_proc *p;

    t_mode(_i);
    fds = t_fd_count();
    threads = t_thread_baseline();
    p = t_sleeper(STAGE_PROC_STDOUT);
    if (_i == 1) {
        ck_assert_int_eq(t_fd_count(), fds + 1); /* the pipe */
        ck_assert_int_eq(t_thread_count(), threads + 1);
    } else if (!t_on_valgrind()) {
        ck_assert_int_eq(t_fd_count(), fds + 2); /* the pipe and pidfd */
        ck_assert_int_eq(t_thread_count(), threads);
    }
    stage_proc_free(p);
    ck_assert_int_eq(t_fd_count(), fds);
    ck_assert_int_eq(t_threads_settle(threads, 2.0 * t_tol()), threads);
}
END_TEST

/* ---- Status, signals, timeouts ---------------------------------------------- */

START_TEST(test_proc_status)
{
    stage_proc *p;
    int st = -1;

    t_mode(_i);
    p = t_sh("exit 3", 0, NULL, NULL);
    t_expect_exit(p, 3);
    /* Reaped once; every later wait gives the same status, at once. */
    st = -1;
    ck_assert_int_eq(stage_proc_wait(p, 0, &st), 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3);
    ck_assert_int_eq(stage_proc_kill(p, SIGTERM), ESRCH);
    ck_assert_int_eq(stage_proc_kill(p, 0), ESRCH);
    stage_proc_free(p);

    p = t_sh("exit 0", 0, NULL, NULL);
    t_expect_exit(p, 0);
    stage_proc_free(p);
}
END_TEST

START_TEST(test_proc_kill)
{
    stage_proc *p;
    int st = -1;
    double t0, el;

    t_mode(_i);
    p = t_sleeper(0);
    ck_assert_int_eq(stage_proc_wait(p, 0, &st), ETIMEDOUT);
    t0 = t_time();
    ck_assert_int_eq(stage_proc_wait(p, 0.05, &st), ETIMEDOUT);
    el = t_time() - t0;
    ck_assert_double_ge(el, 0.05);
    ck_assert_double_lt(el, 0.05 + 1.0 * t_tol());
    ck_assert_int_eq(st, -1);
    ck_assert_int_eq(stage_proc_kill(p, 0), 0); /* alive */
    ck_assert_int_eq(stage_proc_kill(p, SIGTERM), 0);
    t_expect_signal(p, SIGTERM);
    ck_assert_int_eq(stage_proc_kill(p, SIGTERM), ESRCH);
    stage_proc_free(p);

    /* The child starts with no signal blocked, whatever our mask. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    p = t_sleeper(0);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    ck_assert_int_eq(stage_proc_kill(p, SIGTERM), 0);
    t_expect_signal(p, SIGTERM);
    stage_proc_free(p);
}
END_TEST

/* stage_proc_free on a running child kills and reaps it. */
START_TEST(test_proc_free_running)
{
    stage_proc *p;
    pid_t pid;
    int fds = t_fd_count();

    t_mode(_i);
    p = t_sleeper(STAGE_PROC_STDIN | STAGE_PROC_STDOUT | STAGE_PROC_STDERR);
    pid = stage_proc_pid(p);
    stage_proc_free(p);
    errno = 0;
    ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1); /* no zombie */
    ck_assert_int_eq(errno, ECHILD);
    ck_assert_int_eq(t_fd_count(), fds);
}
END_TEST

/* ---- Pipes ------------------------------------------------------------------- */

START_TEST(test_proc_stdin_cat)
{
    char *argv[] = {"cat", NULL};
    stage_proc *p = NULL;
    stage_reader *r;
    char *line;
    size_t len;
    char buf[64];

    t_mode(_i);
    ck_assert_int_eq(stage_proc_spawn("cat", argv, NULL,
                                      STAGE_PROC_STDIN | STAGE_PROC_STDOUT,
                                      &p),
                     0);
    ck_assert_int_ge(stage_proc_fd(p, 0), 3);
    ck_assert_int_ge(stage_proc_fd(p, 1), 3);
    ck_assert_int_eq(stage_proc_fd(p, 2), -1);
    /* Our ends are non-blocking and close-on-exec. */
    ck_assert(fcntl(stage_proc_fd(p, 0), F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(stage_proc_fd(p, 1), F_GETFD) & FD_CLOEXEC);
    r = stage_reader_new(stage_proc_fd(p, 1), 0, 0);
    ck_assert_ptr_nonnull(r);
    for (int i = 0; i < 100; i++) {
        int n = snprintf(buf, sizeof buf, "echo %d\n", i);

        ck_assert_int_eq(stage_fd_write(stage_proc_fd(p, 0), buf, (size_t)n,
                                        5.0 * t_tol(), NULL),
                         0);
        ck_assert_int_eq(stage_reader_line(r, &line, &len, 5.0 * t_tol()),
                         0);
        ck_assert_str_eq(line, buf);
    }
    ck_assert_int_eq(stage_proc_close_stdin(p), 0);
    ck_assert_int_eq(stage_proc_fd(p, 0), -1);
    ck_assert_int_eq(stage_proc_close_stdin(p), 0); /* again: nothing */
    ck_assert_int_eq(stage_reader_line(r, &line, &len, 5.0 * t_tol()), 0);
    ck_assert_ptr_null(line); /* cat saw EOF, and so do we */
    stage_reader_free(r);
    t_expect_exit(p, 0);
    stage_proc_free(p);
}
END_TEST

START_TEST(test_proc_stderr)
{
    stage_proc *p;
    char line[256];

    t_mode(_i);
    p = t_sh("echo out; echo err >&2", STAGE_PROC_STDOUT | STAGE_PROC_STDERR,
             NULL, NULL);
    ck_assert_int_eq(t_line(stage_proc_fd(p, 2), line), 0);
    ck_assert_str_eq(line, "err\n");
    ck_assert_int_eq(t_line(stage_proc_fd(p, 1), line), 0);
    ck_assert_str_eq(line, "out\n");
    t_expect_exit(p, 0);
    stage_proc_free(p);

    /* 2>&1 into the stdout pipe. */
    p = t_sh("echo err >&2; echo out",
             STAGE_PROC_STDOUT | STAGE_PROC_STDERR_TO_STDOUT, NULL, NULL);
    ck_assert_int_eq(stage_proc_fd(p, 2), -1);
    {
        stage_reader *r = stage_reader_new(stage_proc_fd(p, 1), 0, 0);
        char *l;
        size_t len;

        ck_assert_ptr_nonnull(r);
        ck_assert_int_eq(stage_reader_line(r, &l, &len, 5.0 * t_tol()), 0);
        ck_assert_str_eq(l, "err\n");
        ck_assert_int_eq(stage_reader_line(r, &l, &len, 5.0 * t_tol()), 0);
        ck_assert_str_eq(l, "out\n");
        ck_assert_int_eq(stage_reader_line(r, &l, &len, 5.0 * t_tol()), 0);
        ck_assert_ptr_null(l);
        stage_reader_free(r);
    }
    ck_assert_int_eq(stage_proc_wait(p, 10.0 * t_tol(), NULL), 0);
    stage_proc_free(p);
}
END_TEST

START_TEST(test_proc_envp)
{
    char *env[] = {"STAGE_T=given", NULL};
    char *argv[] = {"sh", "-c", "echo \"$STAGE_T|$STAGE_T2|$HOME\"", NULL};
    stage_proc *p = NULL;
    char line[256];

    t_mode(_i);
    /* envp replaces the environment; "sh" is found on PATH. */
    ck_assert_int_eq(stage_proc_spawn("sh", argv, env, STAGE_PROC_STDOUT, &p),
                     0);
    ck_assert_int_eq(t_line(stage_proc_fd(p, 1), line), 0);
    ck_assert_str_eq(line, "given||\n");
    ck_assert_int_eq(stage_proc_wait(p, 10.0 * t_tol(), NULL), 0);
    stage_proc_free(p);

    /* envp NULL: ours. */
    setenv("STAGE_T", "inherited", 1);
    setenv("STAGE_T2", "too", 1);
    setenv("HOME", "/home/t", 1);
    ck_assert_int_eq(
        stage_proc_spawn("/bin/sh", argv, NULL, STAGE_PROC_STDOUT, &p), 0);
    ck_assert_int_eq(t_line(stage_proc_fd(p, 1), line), 0);
    ck_assert_str_eq(line, "inherited|too|/home/t\n");
    ck_assert_int_eq(stage_proc_wait(p, 10.0 * t_tol(), NULL), 0);
    stage_proc_free(p);
    unsetenv("STAGE_T");
    unsetenv("STAGE_T2");
}
END_TEST

/* ---- Waiters: cancellation, several at once ----------------------------------- */

typedef struct waiter {
    stage_proc *p;
    stage_future *ready; /* opened just before the wait */
    int rc;
    int status;
} waiter;

static void *wait_proc(void *arg)
{
    waiter *w = arg;

    if (w->ready)
        t_latch_open(w->ready);
    w->rc = stage_proc_wait(w->p, STAGE_FOREVER, &w->status);
    return NULL;
}

/* A wait cancelled (a coroutine's, _i 0-1, or a thread task's, _i 2-3)
 * leaves the child running and waitable. */
START_TEST(test_proc_wait_cancel)
{
    waiter w = {NULL, NULL, -1, -1};
    stage_future *f = NULL;

    t_mode(_i % 2);
    w.p = t_sleeper(0);
    if (_i < 2) {
        ck_assert_int_eq(stage_coro_spawn(NULL, wait_proc, &w, NULL, 0, &f),
                         0);
        ck_assert_int_eq(stage_yield(), 0); /* it blocks */
    } else {
        w.ready = stage_future_new();
        ck_assert_int_eq(stage_thread_spawn(wait_proc, &w, NULL, &f), 0);
        ck_assert_int_eq(stage_future_wait(w.ready, 5.0 * t_tol()), 0);
    }
    ck_assert_int_eq(stage_future_cancel(f), 0);
    ck_assert_int_eq(stage_future_wait(f, 5.0 * t_tol()), 0);
    ck_assert_int_eq(w.rc, ECANCELED);
    ck_assert_int_eq(w.status, -1);
    stage_future_unref(f);
    if (w.ready)
        stage_future_unref(w.ready);
    ck_assert_int_eq(stage_proc_kill(w.p, 0), 0); /* still running */
    ck_assert_int_eq(stage_proc_kill(w.p, SIGKILL), 0);
    t_expect_signal(w.p, SIGKILL);
    stage_proc_free(w.p);
}
END_TEST

/* Four coroutines and two thread tasks wait for one child: all get its
 * status. */
START_TEST(test_proc_many_waiters)
{
    enum { NCO = 4, NTH = 2 };
    waiter w[NCO + NTH];
    stage_future *f[NCO + NTH];
    stage_proc *p;

    t_mode(_i);
    p = t_sh("read x; exit 5", STAGE_PROC_STDIN, NULL, NULL);
    for (int i = 0; i < NCO + NTH; i++) {
        w[i] = (waiter){p, NULL, -1, -1};
        if (i < NCO) {
            ck_assert_int_eq(
                stage_coro_spawn(NULL, wait_proc, &w[i], NULL, 0, &f[i]), 0);
        } else {
            w[i].ready = stage_future_new();
            ck_assert_int_eq(
                stage_thread_spawn(wait_proc, &w[i], NULL, &f[i]), 0);
            ck_assert_int_eq(stage_future_wait(w[i].ready, 5.0 * t_tol()),
                             0);
        }
    }
    ck_assert_int_eq(stage_yield(), 0);
    ck_assert_int_eq(stage_proc_close_stdin(p), 0); /* read x: EOF */
    for (int i = 0; i < NCO + NTH; i++) {
        ck_assert_int_eq(stage_future_wait(f[i], 10.0 * t_tol()), 0);
        ck_assert_int_eq(w[i].rc, 0);
        ck_assert(WIFEXITED(w[i].status) && WEXITSTATUS(w[i].status) == 5);
        stage_future_unref(f[i]);
        if (w[i].ready)
            stage_future_unref(w[i].ready);
    }
    stage_proc_free(p);
}
END_TEST

/* ---- The application's own children ----------------------------------------- */

static atomic_int t_sigchld;

/* fork() a child of the application that exits with `code`.  It execs a
 * shell to do so: under valgrind a forked child that merely _exit()s is
 * still checked for leaks, and with --error-exitcode its status changes. */
static pid_t t_fork_exit(int code)
{
    char script[32];
    pid_t pid;

    snprintf(script, sizeof script, "exit %d", code);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(126);
    }
    return pid;
}

static void on_sigchld(int sig)
{
    (void)sig;
    atomic_fetch_add(&t_sigchld, 1);
}

/* Our reaping leaves the application's child alone (it stays a zombie for
 * the application to reap) and its SIGCHLD handler still runs. */
START_TEST(test_proc_app_child)
{
    struct sigaction sa, old;
    stage_proc *p;
    pid_t own;
    int st = -1, seen;

    t_mode(_i);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGCHLD, &sa, &old), 0);
    atomic_store(&t_sigchld, 0);

    own = t_fork_exit(7);
    /* Our child, spawned and reaped after the application's ended. */
    p = t_sh("exit 2", 0, NULL, NULL);
    t_expect_exit(p, 2);
    stage_proc_free(p);
    /* Both children ended: the handler ran (signals may merge). */
    seen = t_wait_count(&t_sigchld, 1, 5.0);
    ck_assert_int_ge(seen, 1);
    /* The application's child is still there to reap. */
    st = -1;
    ck_assert_int_eq(waitpid(own, &st, 0), own);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 7);

    /* And the other way round: the application reaps its own child by
     * pid while we wait for ours. */
    atomic_store(&t_sigchld, 0);
    p = t_sh("read x; exit 4", STAGE_PROC_STDIN, NULL, NULL);
    own = t_fork_exit(9);
    ck_assert_int_eq(waitpid(own, &st, 0), own);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 9);
    ck_assert_int_eq(stage_proc_wait(p, 0, NULL), ETIMEDOUT);
    ck_assert_int_eq(stage_proc_close_stdin(p), 0);
    t_expect_exit(p, 4);
    stage_proc_free(p);
    ck_assert_int_ge(t_wait_count(&t_sigchld, 2, 5.0), 1);
    ck_assert_int_eq(sigaction(SIGCHLD, &old, NULL), 0);
}
END_TEST

/* The documented limit: an application that reaps with waitpid(-1) takes
 * our child; stage_proc_wait then says ECHILD (pidfd mode, where nobody
 * reaps before stage_proc_wait). */
START_TEST(test_proc_stolen)
{
    stage_proc *p;
    pid_t pid;
    int st = -1;

    /* valgrind 3.19 has no pidfd_open: the helper thread would race the
     * application for the child. */
    if (t_on_valgrind())
        return;
    t_mode(0);
    p = t_sh("exit 1", 0, NULL, NULL);
    pid = stage_proc_pid(p);
    ck_assert_int_eq(waitpid(-1, &st, 0), pid);
    st = -1;
    ck_assert_int_eq(stage_proc_wait(p, 5.0 * t_tol(), &st), ECHILD);
    ck_assert_int_eq(st, -1);
    ck_assert_int_eq(stage_proc_wait(p, 0, &st), ECHILD);
    ck_assert_int_eq(stage_proc_kill(p, SIGTERM), ESRCH);
    stage_proc_free(p);
}
END_TEST

/* ---- Signals during waits ------------------------------------------------------ */

static atomic_int t_usr1;

static void on_usr1(int sig)
{
    (void)sig;
    atomic_fetch_add(&t_usr1, 1);
}

typedef struct pester {
    pthread_t target;
    stage_proc *p;
} pester;

static void *pester_then_end(void *arg)
{
    pester *ps = arg;
    struct timespec ts = {0, 1000 * 1000};

    for (int i = 0; i < 20; i++) {
        pthread_kill(ps->target, SIGUSR1);
        nanosleep(&ts, NULL);
    }
    stage_proc_kill(ps->p, SIGTERM);
    return NULL;
}

START_TEST(test_proc_eintr)
{
    struct sigaction sa, old;
    pester ps;
    pthread_t th;

    t_mode(_i);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
    atomic_store(&t_usr1, 0);
    ps.target = pthread_self();
    ps.p = t_sleeper(0);
    th = t_thread_start(pester_then_end, &ps);
    t_expect_signal(ps.p, SIGTERM);
    t_thread_join(th);
    ck_assert_int_gt(atomic_load(&t_usr1), 0);
    stage_proc_free(ps.p);
    ck_assert_int_eq(sigaction(SIGUSR1, &old, NULL), 0);
}
END_TEST

/* ---- Acceptance: many subprocesses, many coroutines --------------------------- */

typedef struct echoer {
    int id;
    int nlines;
    int rc;        /* first error */
    int got;       /* lines received, in order and intact */
    int status;
} echoer;

/* One coroutine: spawn a child echoing "<id> <i>" for i < nlines, read
 * every line back, reap it. */
static void *echo_lines(void *arg)
{
    echoer *e = arg;
    char id[32], want[64];
    char *argv[] = {"sh", "-c",
                    "i=0; while [ $i -lt $2 ]; do echo \"$1 $i\"; "
                    "i=$((i+1)); done",
                    "sh", id, NULL, NULL};
    char n[32];
    stage_proc *p = NULL;
    stage_reader *r;
    char *line;
    size_t len;

    snprintf(id, sizeof id, "%d", e->id);
    snprintf(n, sizeof n, "%d", e->nlines);
    argv[5] = n;
    e->rc = stage_proc_spawn("/bin/sh", argv, NULL, STAGE_PROC_STDOUT, &p);
    if (e->rc)
        return NULL;
    r = stage_reader_new(stage_proc_fd(p, 1), 64, 0);
    if (!r) {
        e->rc = errno;
        stage_proc_free(p);
        return NULL;
    }
    for (;;) {
        e->rc = stage_reader_line(r, &line, &len, 120.0 * t_tol());
        if (e->rc || !line)
            break;
        snprintf(want, sizeof want, "%d %d\n", e->id, e->got);
        if (strcmp(line, want) != 0) {
            e->rc = EPROTO;
            break;
        }
        e->got++;
    }
    stage_reader_free(r);
    if (!e->rc)
        e->rc = stage_proc_wait(p, 60.0 * t_tol(), &e->status);
    stage_proc_free(p);
    return NULL;
}

START_TEST(test_proc_acceptance)
{
    int nproc = t_on_valgrind() ? 20 : 200;
    int nlines = 1000;
    echoer *e = calloc((size_t)nproc, sizeof *e);
    stage_future **f = calloc((size_t)nproc, sizeof *f);
    int fds, threads;
    double t0 = t_time();

    ck_assert_ptr_nonnull(e);
    ck_assert_ptr_nonnull(f);
    t_mode(_i);
    /* Baseline without the loop's own wake-up fd, which lives as long as
     * the loop. */
    ck_assert_int_eq(stage_loop_free(stage_loop_current()), 0);
    fds = t_fd_count();
    threads = t_thread_baseline();
    for (int i = 0; i < nproc; i++) {
        e[i] = (echoer){i, nlines, -1, 0, -1};
        ck_assert_int_eq(
            stage_coro_spawn(NULL, echo_lines, &e[i], NULL, 0, &f[i]), 0);
    }
    for (int i = 0; i < nproc; i++) {
        ck_assert_int_eq(stage_future_wait(f[i], STAGE_FOREVER), 0);
        ck_assert_msg(e[i].rc == 0, "child %d: %s after %d lines", i,
                      strerror(e[i].rc), e[i].got);
        ck_assert_int_eq(e[i].got, nlines);
        ck_assert(WIFEXITED(e[i].status) && WEXITSTATUS(e[i].status) == 0);
        stage_future_unref(f[i]);
    }
    /* All reaped: no child of ours is left, not even a zombie. */
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
    ck_assert_int_eq(stage_loop_free(stage_loop_current()), 0);
    ck_assert_int_eq(t_fd_count(), fds);
    ck_assert_int_eq(t_threads_settle(threads, 2.0 * t_tol()), threads);
    fprintf(stderr, "check_proc: %d x %d lines (%s): %.2f s\n", nproc,
            nlines, t_mode_name(_i), t_time() - t0);
    free(e);
    free(f);
}
END_TEST

static Suite *proc_suite(void)
{
    Suite *s = suite_create("proc");
    TCase *tc;

    tc = t_tcase(s, "basic", 20);
    tcase_add_test(tc, test_proc_args);
    tcase_add_loop_test(tc, test_proc_mode, 0, 2);
    tcase_add_loop_test(tc, test_proc_status, 0, 2);
    tcase_add_loop_test(tc, test_proc_kill, 0, 2);
    tcase_add_loop_test(tc, test_proc_free_running, 0, 2);
    tcase_add_loop_test(tc, test_proc_stdin_cat, 0, 2);
    tcase_add_loop_test(tc, test_proc_stderr, 0, 2);
    tcase_add_loop_test(tc, test_proc_envp, 0, 2);

    tc = t_tcase(s, "waiters", 20);
    tcase_add_loop_test(tc, test_proc_wait_cancel, 0, 4);
    tcase_add_loop_test(tc, test_proc_many_waiters, 0, 2);
    tcase_add_loop_test(tc, test_proc_app_child, 0, 2);
    tcase_add_test(tc, test_proc_stolen);
    tcase_add_loop_test(tc, test_proc_eintr, 0, 2);

    tc = t_tcase(s, "acceptance", 120);
    tcase_add_loop_test(tc, test_proc_acceptance, 0, 2);
    return s;
}

T_MAIN(proc_suite)
