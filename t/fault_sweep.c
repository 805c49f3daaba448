/* SPDX-License-Identifier: MIT */
/*
 * fault_sweep.c - resource-failure sweep over every module (issue 8).
 *
 * Run under the t/failalloc.c interposer (t/fault-sweep.sh sets
 * LD_PRELOAD).  For N = 1, 2, ... a forked child arms the interposer so
 * that the N-th resource libstage asks for (memory, a stack mapping, a
 * thread) is refused, runs the workload below, which touches every module
 * (futures, coroutines, loops, fd waits, threads, pools, Stages, stage
 * functions, generators, queues, events, tunnels), frees everything, and
 * exits.  The sweep ends when the failure no longer fires (N is past the
 * last call).  A child fails the sweep when
 *
 *   - a public call returns something else than success or the error its
 *     man page documents for a lack of resources (ENOMEM, EAGAIN for
 *     threads, or what follows from them: a task that could not start
 *     fails with ENOMEM, and so on);
 *   - it crashes, or hangs (a watchdog kills it after WATCHDOG seconds);
 *   - a value handed to the library is lost or destroyed twice (counted);
 *   - libstage still holds memory or a mapping at exit (the interposer's
 *     leak check, exit status 99), or an fd or a thread after the
 *     workload.
 *
 *   fault_sweep [-m once|after] [-k mem,map,thread] [-n N] [-v]
 *     -m once   only the N-th call fails (default); after: it and all later
 *     -k        the kinds of calls counted (default all)
 *     -n N      run one child with N (0: no failure) and show its output
 *     -v        show every child's stderr
 *   fault_sweep -e   the EMFILE case: wake-up fds under a low RLIMIT_NOFILE
 *
 * Exit status: 0 clean, 1 a child failed, 77 no interposer (skip).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <stage.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WATCHDOG 30

/* ---- The interposer's controls (found at run time) ----------------------- */

static void (*fa_arm)(long n, int mode, int kinds);
static long (*fa_disarm)(void);
static int (*fa_fired)(void);
static size_t (*fa_live)(void);
static void (*fa_dump)(FILE *out, size_t max);

static int find_interposer(void)
{
    fa_arm = (void (*)(long, int, int))dlsym(RTLD_DEFAULT, "failalloc_arm");
    fa_disarm = (long (*)(void))dlsym(RTLD_DEFAULT, "failalloc_disarm");
    fa_fired = (int (*)(void))dlsym(RTLD_DEFAULT, "failalloc_fired");
    fa_live = (size_t(*)(void))dlsym(RTLD_DEFAULT, "failalloc_live");
    fa_dump = (void (*)(FILE *, size_t))dlsym(RTLD_DEFAULT, "failalloc_dump");
    return fa_arm && fa_disarm && fa_fired && fa_live && fa_dump;
}

/* ---- Checking return values ------------------------------------------------ */

static atomic_int bad; /* unexpected results, anywhere */

/* rc must be 0, ENOMEM, EAGAIN or one of the -1-terminated extras. */
static int check_rc(int rc, const char *what, int line, const int *extra)
{
    if (rc == 0 || rc == ENOMEM || rc == EAGAIN)
        return rc;
    for (; *extra >= 0; extra++)
        if (rc == *extra)
            return rc;
    fprintf(stderr, "fault_sweep:%d: %s returned %d (%s)\n", line, what, rc,
            strerror(rc));
    atomic_fetch_add(&bad, 1);
    return rc;
}

#define CALL(...) CALL_(__VA_ARGS__, -1)
#define CALL_(expr, ...)                                                      \
    check_rc((expr), #expr, __LINE__, (const int[]){__VA_ARGS__})

/* A constructor's NULL must come with errno ENOMEM (or EAGAIN). */
#define MADE(p)                                                               \
    ((p) != NULL ? 1                                                          \
                 : (check_rc(errno ? errno : -2, #p " (NULL)", __LINE__,      \
                             (const int[]){-1}),                              \
                    0))

#define EXPECT(cond)                                                          \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fault_sweep:%d: expected %s\n", __LINE__,        \
                    #cond);                                                   \
            atomic_fetch_add(&bad, 1);                                        \
        }                                                                     \
    } while (0)

/* ---- Counted values: created, destroyed --------------------------------------- */

static atomic_int made, destroyed;

static void *val_new(void)
{
    /* The test's own memory: the interposer never fails it. */
    int *v = malloc(sizeof *v);
    if (!v)
        abort();
    atomic_fetch_add(&made, 1);
    return v;
}

static void val_free(void *v)
{
    atomic_fetch_add(&destroyed, 1);
    free(v);
}

/* ---- Futures ------------------------------------------------------------------ */

static atomic_int cb_runs;
static void on_settled(stage_future *f, void *ud)
{
    (void)f;
    (void)ud;
    atomic_fetch_add(&cb_runs, 1);
}

static int observer(stage_future *f, void *ud)
{
    (void)f;
    (void)ud;
    return 0;
}

static void futures(void)
{
    stage_future *f = stage_future_new();
    if (MADE(f)) {
        CALL(stage_future_set_name(f, "sweep"));
        void *ud = val_new();
        if (CALL(stage_future_add_callback(f, on_settled, ud, val_free)))
            val_free(ud); /* handed back */
        ud = val_new();
        if (CALL(stage_future_observe(f, STAGE_ON_SETTLED, observer, ud,
                                      val_free)))
            val_free(ud);
        CALL(stage_future_resolve(f, val_new(), val_free));
        void *v;
        CALL(stage_future_get(f, 0, &v));
        stage_future_unref(f);
    }
    f = stage_future_new();
    if (MADE(f)) {
        if (CALL(stage_future_fail(f, EIO, "failed %d", 1)))
            CALL(stage_future_cancel(f)); /* no message: still pending */
        EXPECT(stage_future_state(f) != STAGE_PENDING);
        stage_future_unref(f);
    }
}

/* ---- Coroutines, loops, fds, threads -------------------------------------------- */

static int pipefd[2] = {-1, -1};

static void *leaf(void *arg)
{
    CALL(stage_yield());
    return arg;
}

static void *sleeper(void *arg)
{
    (void)arg;
    /* Cancelled when it outlives its loop (a detached one on a thread's
     * loop that ends). */
    CALL(stage_sleep(0.002), ECANCELED);
    return NULL;
}

/* Waits on a future a sibling resolves, sleeps, waits for an fd, spawns. */
static void *coro_body(void *arg)
{
    stage_future *gate = arg;
    CALL(stage_future_wait(gate, 10.0));
    CALL(stage_sleep(0.001));
    unsigned int re = 0;
    CALL(stage_fd_wait(pipefd[0], STAGE_FD_READ, 10.0, &re));
    stage_future *f = NULL;
    if (!CALL(stage_coro_spawn(NULL, leaf, NULL, NULL, 64 * 1024, &f))) {
        CALL(stage_future_wait(f, 10.0));
        stage_future_unref(f);
    }
    return val_new();
}

static void *opener(void *arg)
{
    CALL(stage_future_resolve(arg, NULL, NULL), ECANCELED);
    return NULL;
}

static void coroutines(void)
{
    stage_loop *loop = stage_loop_current();
    if (!MADE(loop))
        return;
    stage_future *gate = stage_future_new();
    if (!MADE(gate))
        return;
    stage_future *a = NULL;
    if (CALL(stage_coro_spawn(loop, coro_body, gate, val_free, 0, &a)))
        a = NULL;
    if (CALL(stage_coro_spawn(loop, opener, gate, NULL, 0, NULL)))
        stage_future_resolve(gate, NULL, NULL);
    for (int i = 0; i < 8; i++)
        CALL(stage_coro_spawn(NULL, sleeper, NULL, NULL, 0, NULL));
    if (a) {
        void *v = NULL;
        CALL(stage_future_get(a, 10.0, &v));
        stage_future_unref(a);
    }
    CALL(stage_loop_run(loop, NULL, 10.0));
    EXPECT(stage_loop_count(loop) == 0);
    stage_future_unref(gate);
}

/* A thread task: publishes its loop, then runs it until told to stop, so
 * that main can spawn coroutines onto it from outside. */
typedef struct host {
    stage_future *ready, *stop;
} host;

static void *host_body(void *arg)
{
    host *h = arg;
    stage_loop *loop = stage_loop_current();
    if (!MADE(loop)) {
        CALL(stage_future_fail(h->ready, ENOMEM, NULL));
        return NULL;
    }
    CALL(stage_future_resolve(h->ready, loop, NULL));
    CALL(stage_loop_run(loop, h->stop, 20.0), ECANCELED);
    return val_new();
}

static void threads(void)
{
    host h = {stage_future_new(), stage_future_new()};
    stage_future *t = NULL;
    if (!MADE(h.ready) || !MADE(h.stop) ||
        CALL(stage_thread_spawn(host_body, &h, val_free, &t))) {
        stage_future_unref(h.ready);
        stage_future_unref(h.stop);
        return;
    }
    void *loop = NULL;
    if (!CALL(stage_future_get(h.ready, 10.0, &loop))) {
        stage_future *c = NULL;
        if (!CALL(stage_coro_spawn(loop, leaf, NULL, NULL, 0, &c))) {
            CALL(stage_future_wait(c, 10.0));
            /* A coroutine the loop could not start fails with ENOMEM. */
            CALL(stage_future_error(c));
            stage_future_unref(c);
        }
        CALL(stage_coro_spawn(loop, sleeper, NULL, NULL, 0, NULL), EPIPE);
    }
    CALL(stage_future_resolve(h.stop, NULL, NULL));
    CALL(stage_future_wait(t, 10.0));
    stage_future_unref(t);
    stage_future_unref(h.ready);
    stage_future_unref(h.stop);
    /* A detached one. */
    CALL(stage_thread_spawn(leaf, NULL, NULL, NULL));
}

/* ---- Queues, events, tunnels ---------------------------------------------------- */

#define NITEMS 40

static void *producer_thread(void *arg)
{
    stage_queue *q = arg;
    for (int i = 0; i < NITEMS; i++) {
        void *v = val_new();
        if (CALL(stage_queue_put(q, v, 10.0), EPIPE))
            val_free(v); /* not taken: still ours */
    }
    CALL(stage_queue_close(q));
    return NULL;
}

static void *consumer_coro(void *arg)
{
    stage_queue *q = arg;
    void *v;
    int rc;
    while ((rc = stage_queue_get(q, &v, 10.0)) == 0)
        val_free(v);
    CALL(rc, EPIPE);
    if (rc != EPIPE)
        stage_queue_close(q);
    return NULL;
}

static void queues(void)
{
    stage_queue *q = stage_queue_new(4, val_free);
    if (!MADE(q))
        return;
    stage_future *p = NULL, *c = NULL;
    if (CALL(stage_thread_spawn(producer_thread, stage_queue_ref(q), NULL,
                                &p))) {
        stage_queue_unref(q);
        CALL(stage_queue_close(q));
    }
    if (CALL(stage_coro_spawn(NULL, consumer_coro, q, NULL, 0, &c)))
        c = NULL;
    if (c) {
        CALL(stage_future_wait(c, 10.0));
        stage_future_unref(c);
    } else {
        CALL(stage_queue_close(q));
    }
    if (p) {
        CALL(stage_future_wait(p, 10.0));
        stage_future_unref(p);
        stage_queue_unref(q); /* the producer's */
    }
    /* Unbounded: the ring grows. */
    void *v = val_new();
    if (CALL(stage_queue_try_put(q, v), EPIPE))
        val_free(v);
    stage_queue_unref(q);
    q = stage_queue_new(STAGE_QUEUE_UNBOUNDED, val_free);
    if (MADE(q)) {
        for (int i = 0; i < 20; i++) {
            v = val_new();
            if (CALL(stage_queue_try_put(q, v)))
                val_free(v);
        }
        if (!CALL(stage_queue_try_get(q, &v)))
            val_free(v);
        stage_queue_unref(q);
    }
}

static void *event_waiter(void *arg)
{
    void *payload = NULL;
    CALL(stage_event_wait(arg, 10.0, &payload));
    return NULL;
}

static void events(void)
{
    stage_event *e = stage_event_new();
    if (!MADE(e))
        return;
    stage_future *w = NULL;
    if (CALL(stage_coro_spawn(NULL, event_waiter, e, NULL, 0, &w)))
        w = NULL;
    CALL(stage_yield());
    CALL(stage_event_set(e, e));
    if (w) {
        CALL(stage_future_wait(w, 10.0));
        stage_future_unref(w);
    }
    CALL(stage_event_clear(e));
    stage_event_unref(e);
}

static void *tunnel_reader(void *arg)
{
    stage_tunnel_reader *r = stage_tunnel_reader_new(arg, 10.0);
    if (!MADE(r))
        return NULL;
    void *item;
    int rc;
    while ((rc = stage_tunnel_next(r, &item)) == 0 || rc == EOVERFLOW)
        ;
    CALL(rc, EPIPE, EIO);
    stage_tunnel_reader_free(r);
    return NULL;
}

static void tunnels(int fail)
{
    stage_tunnel *t = stage_tunnel_new(10.0, fail ? 4 : 0, val_free);
    if (!MADE(t))
        return;
    stage_future *r1 = NULL, *r2 = NULL;
    if (CALL(stage_thread_spawn(tunnel_reader, t, NULL, &r1)))
        r1 = NULL;
    if (CALL(stage_coro_spawn(NULL, tunnel_reader, t, NULL, 0, &r2)))
        r2 = NULL;
    for (int i = 0; i < 20; i++) {
        void *v = val_new();
        if (CALL(stage_tunnel_put(t, v)))
            val_free(v);
        if (i % 5 == 0)
            CALL(stage_yield());
    }
    /* No memory for the message: the tunnel stays open; close it. */
    if (!fail || CALL(stage_tunnel_fail(t, EIO, "failed %s", "here")))
        CALL(stage_tunnel_close(t));
    void **items = NULL;
    size_t n = 0;
    CALL(stage_tunnel_collect(t, 1.0, &items, &n), EIO);
    free(items);
    if (r2) {
        CALL(stage_future_wait(r2, 10.0));
        stage_future_unref(r2);
    }
    if (r1) {
        CALL(stage_future_wait(r1, 10.0));
        stage_future_unref(r1);
    }
    stage_tunnel_unref(t);
}

/* ---- Pools, Stages, functions, generators ---------------------------------------- */

static void *tiny(void *arg) { return arg; }

static void *failing(void *arg)
{
    (void)arg;
    return stage_task_fail(EIO, "failing %d", 1);
}

static void pools(void)
{
    stage_pool *p = stage_pool_new("sweep", 0, 2, 0.01);
    if (!MADE(p))
        return;
    stage_future *fs[6];
    for (int i = 0; i < 6; i++) {
        void *v = val_new(); /* tiny returns it: the result */
        if (CALL(stage_pool_submit(p, tiny, v, val_free, &fs[i]))) {
            fs[i] = NULL;
            val_free(v); /* not submitted: still ours */
        }
    }
    for (int i = 0; i < 6; i++) {
        if (!fs[i])
            continue;
        void *v;
        CALL(stage_future_get(fs[i], 10.0, &v));
        stage_future_unref(fs[i]);
    }
    CALL(stage_pool_submit(p, tiny, NULL, NULL, NULL));
    int rc = stage_pool_close(p, STAGE_POOL_CANCEL, 10.0);
    CALL(rc);
    CALL(stage_pool_free(p));
}

static void on_error(stage *st, const char *task, int err, const char *msg,
                     void *ud)
{
    (void)st;
    (void)task;
    (void)err;
    (void)msg;
    (void)ud;
}

static void gen_counter(stage_gen *g, void *arg)
{
    (void)arg;
    for (int i = 0; i < 6; i++) {
        void *v = val_new();
        void *sent;
        int rc = stage_gen_yield(g, v, &sent);
        if (rc) {
            CALL(rc, EPIPE, ECANCELED);
            val_free(v);
            return;
        }
    }
}

static void *func_body(void *arg)
{
    (void)arg;
    return val_new();
}

static void gens(stage *st)
{
    for (int mode = 0; mode < 3; mode++) {
        stage_gen *g = NULL;
        unsigned int flags = mode == 1 ? STAGE_GEN_CORO : STAGE_GEN_LAZY;
        if (CALL(stage_go_gen(st, gen_counter, NULL, val_free,
                              mode == 2 ? 0 : 2, flags, &g)))
            continue;
        void *item;
        int rc;
        if (mode == 2) {
            rc = stage_gen_send(g, NULL, &item, 10.0);
            if (!rc)
                val_free(item);
            CALL(rc, EPIPE);
        }
        if (mode == 0) {
            void **items = NULL;
            size_t n = 0;
            CALL(stage_gen_collect(g, 10.0, &items, &n));
            for (size_t i = 0; i < n; i++)
                val_free(items[i]);
            free(items);
        } else {
            while ((rc = stage_gen_next(g, &item, 10.0)) == 0) {
                val_free(item);
                if (mode == 2)
                    break; /* close it early */
            }
            CALL(rc, EPIPE);
        }
        CALL(stage_gen_close(g));
        stage_gen_unref(g);
    }
}

static void funcs(stage *st)
{
    for (int coro = 0; coro < 2; coro++) {
        stage_func *fn =
            stage_func_new(st, func_body, coro ? STAGE_FUNC_CORO : 0, val_free);
        if (!MADE(fn))
            continue;
        void *v;
        /* Not started (no memory for its bookkeeping): nothing to wait
         * for; a start that failed later fails the waits too. */
        if (!CALL(stage_func_start(fn, NULL)))
            CALL(stage_func_wait(fn, 10.0, &v));
        CALL(stage_func_reset(fn));
        stage_func_unref(fn);
    }
}

static void stages(void)
{
    stage *st = stage_new("sweep", 2, 0);
    if (!MADE(st))
        return;
    CALL(stage_set_error_handler(st, on_error, NULL, NULL));
    stage_future *fs[4] = {NULL};
    for (int i = 0; i < 4; i++) {
        int rc = i % 2 ? stage_go_coro(st, tiny, NULL, NULL, &fs[i])
                       : stage_go(st, tiny, NULL, NULL, &fs[i]);
        if (CALL(rc))
            fs[i] = NULL;
    }
    CALL(stage_go(st, failing, NULL, NULL, NULL));
    CALL(stage_go_coro(st, failing, NULL, NULL, NULL));
    for (int i = 0; i < 4; i++) {
        if (!fs[i])
            continue;
        CALL(stage_future_wait(fs[i], 10.0));
        CALL(stage_future_error(fs[i]));
        stage_future_unref(fs[i]);
    }
    void *r = NULL;
    if (!CALL(stage_offload(st, func_body, NULL, val_free, 10.0, &r)))
        val_free(r);
    r = NULL;
    if (!CALL(stage_run(func_body, NULL, val_free, &r)))
        val_free(r);
    funcs(st);
    gens(st);
    /* Freeing may need memory (close's futures): retry a little, then
     * let memory come back, as it must for the Stage to go. */
    int rc, tries = 0;
    while ((rc = stage_free(st)) == ENOMEM && ++tries < 3)
        ;
    if (rc == ENOMEM) {
        fa_disarm();
        rc = stage_free(st);
    }
    CALL(rc);
}

/* ---- The workload ------------------------------------------------------------ */

/* Entries of a /proc directory (fds, threads), or -1. */
static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int count_fds(void)
{
    return count_dir("/proc/self/fd") - 1; /* the directory's own */
}

static int count_threads(void) { return count_dir("/proc/self/task"); }

static void workload(void)
{
    futures();
    coroutines();
    threads();
    queues();
    events();
    tunnels(0);
    tunnels(1);
    pools();
    stages();
}

/* One child: arm, run, disarm, free; the exit status says how it went. */
enum { C_FIRED = 0, C_NOT_FIRED = 10, C_BAD = 2 };

static int child(long n, int mode, int kinds)
{
    alarm(WATCHDOG);
    if (pipe(pipefd) != 0 || write(pipefd[1], "x", 1) != 1)
        return C_BAD;
    int fds0 = count_fds(), th0 = count_threads();
    fa_arm(n > 0 ? n : 1L << 60, mode, kinds); /* 0: count, never fail */
    workload();
    long calls = fa_disarm();
    int fired = fa_fired();
    stage_loop *loop = stage_loop_current();
    if (loop)
        CALL(stage_loop_free(loop));
    /* Detached thread tasks are joined by the next spawn or at exit:
     * wait for their count to fall, bounded. */
    for (int i = 0; i < 2000 && count_threads() > th0; i++)
        usleep(1000);
    close(pipefd[0]);
    close(pipefd[1]);
    EXPECT(count_fds() == fds0 - 2);
    EXPECT(count_threads() == th0);
    EXPECT(atomic_load(&made) == atomic_load(&destroyed));
    if (atomic_load(&made) != atomic_load(&destroyed))
        fprintf(stderr, "fault_sweep: %d values made, %d destroyed\n",
                atomic_load(&made), atomic_load(&destroyed));
    fprintf(stderr, "fault_sweep: n=%ld: %ld calls counted, %s\n", n, calls,
            fired ? "failure injected" : "no failure injected");
    if (atomic_load(&bad))
        return C_BAD;
    /* Exit through exit(): atexit handlers, then the leak check. */
    return n > 0 && !fired ? C_NOT_FIRED : C_FIRED;
}

/* Run one child; returns its exit status, or 128 + signal, or -1 when the
 * watchdog had to kill it.  Its stderr goes to `log` (NULL: ours). */
static int run_child(long n, int mode, int kinds, FILE *log)
{
    fflush(NULL);
    if (log) {
        rewind(log);
        if (ftruncate(fileno(log), 0) != 0)
            perror("ftruncate");
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        if (log)
            dup2(fileno(log), 2);
        exit(child(n, mode, kinds));
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(st))
        return WTERMSIG(st) == SIGALRM ? -1 : 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

/* Copy a child's log to stdout. */
static void show(FILE *log)
{
    char line[512];
    fflush(log);
    rewind(log);
    while (fgets(line, sizeof line, log))
        printf("    %s", line);
}

static const char *describe(int rc)
{
    static char buf[64];
    switch (rc) {
    case -1:
        return "hung (watchdog)";
    case C_BAD:
        return "unexpected result";
    case 99:
        return "leaked";
    default:
        if (rc >= 128) {
            snprintf(buf, sizeof buf, "killed by signal %d (%s)", rc - 128,
                     strsignal(rc - 128));
            return buf;
        }
        snprintf(buf, sizeof buf, "exit status %d", rc);
        return buf;
    }
}

/* ---- EMFILE: the wake-up fd under a low fd limit ------------------------------ */

static void *fd_waiter(void *arg)
{
    (void)arg;
    unsigned int re;
    /* A thread's first fd wait needs the wake-up fd: EMFILE here. */
    return (void *)(intptr_t)stage_fd_wait(pipefd[0], STAGE_FD_READ, 1.0, &re);
}

static int emfile(void)
{
    if (pipe(pipefd) != 0)
        return 1;
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    stage_future *f = NULL;
    int rc = stage_coro_spawn(NULL, fd_waiter, NULL, NULL, 0, &f);
    if (rc) {
        fprintf(stderr, "fault_sweep -e: spawn: %s\n", strerror(rc));
        return 1;
    }
    /* Lower the limit to 64 and take every fd number left below it. */
    low = old;
    low.rlim_cur = 64;
    setrlimit(RLIMIT_NOFILE, &low);
    int filler[64], nfill = 0, fd;
    while (nfill < 64 && (fd = open("/dev/null", O_RDONLY)) >= 0)
        filler[nfill++] = fd;
    rc = stage_future_wait(f, 10.0);
    void *v = NULL;
    if (!rc)
        rc = stage_future_get(f, 0, &v);
    while (nfill > 0)
        close(filler[--nfill]);
    setrlimit(RLIMIT_NOFILE, &old);
    stage_future_unref(f);
    int got = (int)(intptr_t)v;
    fprintf(stderr, "fault_sweep -e: stage_fd_wait with no fd left: %s\n",
            strerror(got));
    int ok = !rc && got == EMFILE;
    /* With fds again, the same loop recovers. */
    if (write(pipefd[1], "x", 1) != 1)
        ok = 0;
    unsigned int re;
    rc = stage_fd_wait(pipefd[0], STAGE_FD_READ, 1.0, &re);
    if (rc) {
        fprintf(stderr, "fault_sweep -e: after raising the limit: %s\n",
                strerror(rc));
        ok = 0;
    }
    stage_loop_free(stage_loop_current());
    close(pipefd[0]);
    close(pipefd[1]);
    return ok ? 0 : 1;
}

/* ---- Main ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    int mode = 0, kinds = 7, verbose = 0, opt;
    long only = -1;
    while ((opt = getopt(argc, argv, "m:k:n:ve")) != -1) {
        switch (opt) {
        case 'm':
            mode = !strcmp(optarg, "after");
            break;
        case 'k':
            kinds = (strstr(optarg, "mem") ? 1 : 0) |
                    (strstr(optarg, "map") ? 2 : 0) |
                    (strstr(optarg, "thread") ? 4 : 0);
            break;
        case 'n':
            only = atol(optarg);
            break;
        case 'v':
            verbose = 1;
            break;
        case 'e':
            return emfile();
        default:
            fprintf(stderr, "usage: %s [-m once|after] [-k mem,map,thread] "
                            "[-n N] [-v] | -e\n", argv[0]);
            return 2;
        }
    }
    if (!find_interposer()) {
        fprintf(stderr, "%s: the failalloc interposer is not preloaded: "
                        "skipped\n", argv[0]);
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    if (only >= 0) {
        int rc = run_child(only, mode, kinds, NULL);
        printf("n=%ld: %s\n", only, rc == C_FIRED || rc == C_NOT_FIRED
                                         ? "ok" : describe(rc));
        return rc == C_FIRED || rc == C_NOT_FIRED ? 0 : 1;
    }
    int failures = 0, past_end = 0;
    long n;
    FILE *log = tmpfile();
    if (!log) {
        perror("tmpfile");
        return 1;
    }
    for (n = 1; past_end < 3; n++) {
        int rc = run_child(n, mode, kinds, log);
        if (verbose)
            show(log);
        if (rc == C_NOT_FIRED) {
            past_end++;
            continue;
        }
        past_end = 0;
        if (rc != C_FIRED) {
            failures++;
            printf("n=%ld: %s; its output:\n", n, describe(rc));
            if (!verbose)
                show(log);
            if (failures >= 10) {
                printf("too many failures; stopping\n");
                break;
            }
        }
    }
    printf("fault sweep (%s, kinds %s%s%s): %ld runs, %d failed\n",
           mode ? "every call from N on fails" : "the N-th call fails",
           kinds & 1 ? "mem " : "", kinds & 2 ? "map " : "",
           kinds & 4 ? "thread" : "", n - 1, failures);
    return failures ? 1 : 0;
}
