/* SPDX-License-Identifier: MIT */
/*
 * proc.c - subprocesses: posix_spawn with pipes, and reaping that touches
 * only our own children.
 *
 * Reaping must not disturb the application: no SIGCHLD handler, no
 * waitpid(-1).  Each child is waited for by its own pid only, in one of
 * two ways, chosen per child at spawn:
 *
 *   pidfd (Linux >= 5.3)   pidfd_open(pid) gives an fd that becomes
 *                          readable when the child ends.  stage_proc_wait
 *                          waits for it with stage_fd_wait (the loop's
 *                          poll in a coroutine, poll(2) on a thread), then
 *                          reaps with waitpid(pid, WNOHANG) under the lock.
 *                          Signals go through pidfd_send_signal, which can
 *                          never hit a recycled pid.
 *
 *   helper thread          pidfd_open is missing (ENOSYS: an old kernel,
 *                          or valgrind 3.19, which does not know syscall
 *                          434).  A small thread per child, started at
 *                          spawn with every signal blocked, sleeps in
 *                          waitid(P_PID, pid, WEXITED | WNOWAIT) until the
 *                          child ends, reaps it under the lock and resolves
 *                          the `exited` future, on which stage_proc_wait
 *                          waits.  It costs a thread per running child, no
 *                          polling; the child is reaped as soon as it ends.
 *
 * Either way only the one pid is reaped, and only under `lock`, so while
 * a caller of stage_proc_kill holds the lock and sees the child unreaped,
 * its pid cannot have been recycled (a zombie keeps it).  The limit: an
 * application that reaps with waitpid(-1) (or ignores SIGCHLD) takes our
 * children; stage_proc_wait then reports ECHILD.
 *
 * Pipes are made with O_CLOEXEC, so a child spawned concurrently from
 * another thread does not inherit them; our ends are O_NONBLOCK for the
 * hybrid reads and writes of io.c, the child's ends stay blocking.
 */
#include "common-int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define PROC_FLAGS                                                            \
    (STAGE_PROC_STDIN | STAGE_PROC_STDOUT | STAGE_PROC_STDERR |              \
     STAGE_PROC_STDERR_TO_STDOUT)

struct stage_proc {
    /* Protects reaped, status and wait_err, and makes "not reaped yet,
     * so the pid is still ours" hold while it is held (kill). */
    pthread_mutex_t lock;
    pid_t pid;
    unsigned int flags;
    int fds[3];            /* our ends of the pipes, -1: none or closed */
    int pidfd;             /* -1: the helper thread waits instead */
    int reaped;            /* the child is reaped (or someone else took it) */
    int status;            /* waitpid(2) status, once reaped */
    int wait_err;          /* 0, or ECHILD: reaped by someone else */
    stage_future *exited;  /* helper thread mode: resolved once reaped */
    pthread_t helper;
};

/* 1 once pidfd_open failed with ENOSYS: it will not start working.
 * Relaxed: a stale 0 costs one more failing system call, nothing else. */
static atomic_int no_pidfd;

/* A pidfd for pid, or -1: then the helper thread waits.  STAGE_NO_PIDFD
 * (set, not "0") forces the helper thread, so that tests reach it. */
static int pidfd_for(pid_t pid)
{
#ifdef SYS_pidfd_open
    if (atomic_load_explicit(&no_pidfd, memory_order_relaxed))
        return -1;
    const char *e = getenv("STAGE_NO_PIDFD");
    if (e && *e && strcmp(e, "0") != 0)
        return -1;
    long fd = syscall(SYS_pidfd_open, pid, 0); /* close-on-exec */
    if (fd >= 0)
        return (int)fd;
    if (errno == ENOSYS)
        atomic_store_explicit(&no_pidfd, 1, memory_order_relaxed);
#else
    (void)pid;
#endif
    return -1;
}

/* Under p->lock: reap the child if it ended (options: WNOHANG or 0).
 * Returns 1 once it is reaped, or gone (wait_err ECHILD). */
static int try_reap(stage_proc *p, int options)
{
    int st = 0;
    pid_t r;
    do
        r = waitpid(p->pid, &st, options);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return 0;
    p->reaped = 1;
    if (r < 0)
        p->wait_err = errno;
    else
        p->status = st;
    return 1;
}

/* Under p->lock, child not reaped: send sig. */
static int send_signal(stage_proc *p, int sig)
{
#ifdef SYS_pidfd_send_signal
    if (p->pidfd >= 0) {
        if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) == 0)
            return 0;
        if (errno != ENOSYS)
            return errno;
    }
#endif
    return kill(p->pid, sig) == 0 ? 0 : errno;
}

/* The helper thread: sleep until the child ends, then reap it. */
static void *helper_main(void *arg)
{
    stage_proc *p = arg;
    siginfo_t si;
    int r;
    do {
        memset(&si, 0, sizeof si);
        /* WNOWAIT: the child stays a zombie, so its pid stays ours until
         * we reap it under the lock. */
        r = waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOWAIT);
    } while (r < 0 && errno == EINTR);
    pthread_mutex_lock(&p->lock);
    while (!p->reaped)
        try_reap(p, 0); /* it ended (or is gone): this does not block */
    pthread_mutex_unlock(&p->lock);
    stage_future_resolve(p->exited, NULL, NULL);
    return NULL;
}

static int helper_start(stage_proc *p)
{
    p->exited = stage_future_new();
    if (!p->exited)
        return ENOMEM;
    pthread_attr_t attr;
    sigset_t all, old;
    int err = pthread_attr_init(&attr);
    if (err) {
        stage_future_unref(p->exited);
        return err;
    }
    /* It only calls waitid: a small stack is plenty. */
    size_t stack = 128 * 1024;
    if (stack < (size_t)PTHREAD_STACK_MIN)
        stack = (size_t)PTHREAD_STACK_MIN;
    pthread_attr_setstacksize(&attr, stack);
    /* Every signal blocked: the application's handlers never run on our
     * thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    err = pthread_create(&p->helper, &attr, helper_main, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err) {
        stage_future_unref(p->exited);
        p->exited = NULL;
        return EAGAIN;
    }
    return 0;
}

/* Move *fd above 0-2, so that dup2 onto the child's 0-2 always makes a new
 * fd without close-on-exec (dup2(fd, fd) would keep the flag). */
static int above_stdio(int *fd)
{
    if (*fd > 2)
        return 0;
    int n = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (n < 0)
        return errno;
    close(*fd);
    *fd = n;
    return 0;
}

/* The pipe for the child's fd `which`: ours in p->fds, the child's in
 * *child. */
static int make_pipe(stage_proc *p, int which, int *child)
{
    int pf[2];
    if (pipe2(pf, O_CLOEXEC) != 0)
        return errno;
    int err = above_stdio(&pf[0]);
    if (!err)
        err = above_stdio(&pf[1]);
    int ours = which == 0 ? pf[1] : pf[0];
    *child = which == 0 ? pf[0] : pf[1];
    p->fds[which] = ours;
    if (!err && fcntl(ours, F_SETFL, fcntl(ours, F_GETFL) | O_NONBLOCK) != 0)
        err = errno;
    return err;
}

static void close_fds(int *fds)
{
    for (int i = 0; i < 3; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

/* File actions and attributes, then the spawn itself. */
static int spawn(stage_proc *p, const char *path, char *const argv[],
                 char *const envp[], const int *child)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t mask, def;
    int err = posix_spawn_file_actions_init(&fa);
    if (err)
        return err;
    err = posix_spawnattr_init(&attr);
    if (err) {
        posix_spawn_file_actions_destroy(&fa);
        return err;
    }
    for (int i = 0; i < 3 && !err; i++)
        if (child[i] >= 0)
            err = posix_spawn_file_actions_adddup2(&fa, child[i], i);
    if (!err && (p->flags & STAGE_PROC_STDERR_TO_STDOUT))
        err = posix_spawn_file_actions_adddup2(&fa, 1, 2);
    /* The child starts with no signal blocked (the spawning thread may
     * block some, and a child that blocks SIGTERM could not be stopped)
     * and with SIGPIPE at its default (as Python's subprocess does). */
    sigemptyset(&mask);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    if (!err)
        err = posix_spawnattr_setsigmask(&attr, &mask);
    if (!err)
        err = posix_spawnattr_setsigdefault(&attr, &def);
    if (!err)
        err = posix_spawnattr_setflags(
            &attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (!err) {
        char *const *env = envp ? envp : environ;
        /* No '/': search PATH, as execvp(3) and asyncio do. */
        if (strchr(path, '/'))
            err = posix_spawn(&p->pid, path, &fa, &attr, argv, env);
        else
            err = posix_spawnp(&p->pid, path, &fa, &attr, argv, env);
    }
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return err;
}

int stage_proc_spawn(const char *path, char *const argv[],
                     char *const envp[], unsigned int flags, stage_proc **out)
{
    if (out)
        *out = NULL;
    if (!path || !*path || !argv || !argv[0] || !out ||
        (flags & ~PROC_FLAGS) ||
        ((flags & STAGE_PROC_STDERR) && (flags & STAGE_PROC_STDERR_TO_STDOUT)))
        return EINVAL;
    stage_proc *p = calloc(1, sizeof *p);
    if (!p)
        return ENOMEM;
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        return ENOMEM;
    }
    p->flags = flags;
    p->pidfd = -1;
    int child[3] = {-1, -1, -1};
    p->fds[0] = p->fds[1] = p->fds[2] = -1;
    int err = 0;
    for (int i = 0; i < 3 && !err; i++)
        if (flags & (1u << i))
            err = make_pipe(p, i, &child[i]);
    if (!err)
        err = spawn(p, path, argv, envp, child);
    close_fds(child);
    if (!err) {
        p->pidfd = pidfd_for(p->pid);
        if (p->pidfd < 0) {
            err = helper_start(p);
            if (err) { /* no way to wait for it: do not leave it behind */
                kill(p->pid, SIGKILL);
                try_reap(p, 0);
            }
        }
    }
    if (err) {
        close_fds(p->fds);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return err;
    }
    *out = p;
    return 0;
}

int stage_proc_fd(stage_proc *p, int which)
{
    if (!p || which < 0 || which > 2)
        return -1;
    return p->fds[which];
}

pid_t stage_proc_pid(stage_proc *p) { return p ? p->pid : -1; }

int stage_proc_close_stdin(stage_proc *p)
{
    if (!p || !(p->flags & STAGE_PROC_STDIN))
        return EINVAL;
    if (p->fds[0] >= 0)
        close(p->fds[0]);
    p->fds[0] = -1;
    return 0;
}

/* Under p->lock, once reaped: the outcome of every wait. */
static int outcome(stage_proc *p, int *status)
{
    if (!p->wait_err && status)
        *status = p->status;
    return p->wait_err;
}

int stage_proc_wait(stage_proc *p, double timeout, int *status)
{
    int64_t deadline;
    if (!p || stage__deadline(timeout, &deadline))
        return EINVAL;
    int err;
    if (p->pidfd < 0) {
        err = stage_future_wait(p->exited, timeout);
        if (err)
            return err;
        pthread_mutex_lock(&p->lock);
        err = outcome(p, status);
        pthread_mutex_unlock(&p->lock);
        return err;
    }
    /* Reaped: the answer is at hand, nothing to cancel (as a settled
     * future).  Else the cancellation check comes first. */
    pthread_mutex_lock(&p->lock);
    int reaped = p->reaped;
    if (reaped)
        err = outcome(p, status);
    pthread_mutex_unlock(&p->lock);
    if (reaped)
        return err;
    if (stage_task_cancelled())
        return ECANCELED;
    for (;;) {
        /* Several callers may wait at once: each wakes when the pidfd is
         * readable, one reaps, all read the one outcome. */
        pthread_mutex_lock(&p->lock);
        reaped = p->reaped || try_reap(p, WNOHANG);
        if (reaped)
            err = outcome(p, status);
        pthread_mutex_unlock(&p->lock);
        if (reaped)
            return err;
        err = stage_fd_wait(p->pidfd, STAGE_FD_READ, stage__time_left(deadline),
                            NULL);
        if (err)
            return err;
    }
}

int stage_proc_kill(stage_proc *p, int sig)
{
    if (!p || sig < 0)
        return EINVAL;
    pthread_mutex_lock(&p->lock);
    int err = p->reaped ? ESRCH : send_signal(p, sig);
    pthread_mutex_unlock(&p->lock);
    return err;
}

void stage_proc_free(stage_proc *p)
{
    if (!p)
        return;
    close_fds(p->fds);
    /* A child still running is killed and reaped: no zombie is left, and
     * no process outlives the handle that could wait for it. */
    pthread_mutex_lock(&p->lock);
    if (!p->reaped)
        send_signal(p, SIGKILL);
    if (p->pidfd >= 0 && !p->reaped)
        try_reap(p, 0); /* blocks only while the kernel ends the child */
    pthread_mutex_unlock(&p->lock);
    if (p->pidfd >= 0) {
        close(p->pidfd);
    } else {
        pthread_join(p->helper, NULL); /* it reaps, then returns */
        stage_future_unref(p->exited);
    }
    pthread_mutex_destroy(&p->lock);
    free(p);
}
