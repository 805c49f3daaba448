/* SPDX-License-Identifier: MIT */
/*
 * tour.c - a walk through libstage, one feature at a time.
 *
 * This is what the README's first command runs.  Each step prints what it
 * does and what happened; the program exits 0 when every step behaved.
 */
#include <stage.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        printf("  !! unexpected: %s\n", what);
        failures++;
    }
}

static double since(int64_t t0) { return (double)(stage_now() - t0) / 1e9; }

/* 1. Coroutines take turns on one thread. */
static void *counter(void *arg)
{
    const char *name = arg;
    for (int i = 1; i <= 3; i++) {
        printf("  %s counts %d\n", name, i);
        stage_yield();
    }
    return NULL;
}

/* 2. One sleep function for threads and coroutines.  Each napper notes
 * when it slept, for the check that the sleeps overlapped. */
static double nap_secs[3] = {0.3, 0.1, 0.2};
static int64_t nap_start[3], nap_end[3];

static void *napper(void *arg)
{
    int i = (int)((double *)arg - nap_secs);
    nap_start[i] = stage_now();
    stage_sleep(nap_secs[i]);
    nap_end[i] = stage_now();
    printf("  coroutine slept %.1f s\n", nap_secs[i]);
    return NULL;
}

/* 3. A thread computes, a coroutine waits for the answer. */
static void *compute(void *arg)
{
    stage_sleep(0.1); /* pretend to work */
    int *answer = malloc(sizeof *answer);
    *answer = 6 * 7;
    stage_future_resolve(arg, answer, free);
    return NULL;
}

static void *await_answer(void *arg)
{
    void *value;
    int err = stage_future_get(arg, 5.0, &value);
    printf("  coroutine got %d from the thread (error %d)\n",
           err ? -1 : *(int *)value, err);
    return NULL;
}

/* 4. Cancellation reaches a blocked task, thread or coroutine alike. */
struct sleeper {
    const char *name;
    stage_future *asleep; /* resolved just before the long sleep */
};

static void *sleeper(void *arg)
{
    struct sleeper *s = arg;
    stage_future_resolve(s->asleep, NULL, NULL);
    int err = stage_sleep(60);
    printf("  %s: sleep returned \"%s\"\n", s->name, strerror(err));
    return NULL;
}

/* 5. Failure is the C form of an exception. */
static void *fetch(void *arg)
{
    (void)arg;
    return stage_task_fail(ECONNREFUSED, "server %s said no", "example.org");
}

/* 6. Waiting for a file descriptor. */
static void *reader(void *arg)
{
    int fd = *(int *)arg;
    char buf[32] = {0};
    unsigned int ev = 0;
    int err = stage_fd_wait(fd, STAGE_FD_READ, 5.0, &ev);
    ssize_t n = err ? -1 : read(fd, buf, sizeof buf - 1);
    printf("  coroutine read %zd bytes: \"%s\"\n", n, n > 0 ? buf : "");
    return NULL;
}

/* 7. A Stage: plain functions on its pool, coroutines on its loop.  Each
 * job notes when it ran (stage_close waits for both, so main reads these
 * after they are written). */
static int64_t job_start[2], job_end[2];

static void *blocking_job(void *arg)
{
    struct timespec ts = {0, 400 * 1000 * 1000};
    job_start[0] = stage_now();
    nanosleep(&ts, NULL); /* a call libstage cannot see into */
    job_end[0] = stage_now();
    return arg;
}

static void *async_job(void *arg)
{
    job_start[1] = stage_now();
    stage_sleep(0.2);
    job_end[1] = stage_now();
    return arg;
}

/* 8. A stage function: started once, waited for anywhere. */
static void *handler(void *arg)
{
    static char said[64];
    snprintf(said, sizeof said, "Someone said: %s", (const char *)arg);
    return said;
}

/* 9. A generator: a producer on a thread, a consumer anywhere. */
static void count_to(stage_gen *gen, void *arg)
{
    intptr_t n = (intptr_t)arg;
    for (intptr_t i = 1; i <= n; i++)
        if (stage_gen_yield(gen, (void *)i, NULL) != 0)
            return;
}

/* 10. Run a coroutine function from a plain thread. */
static void *twice(void *arg)
{
    stage_sleep(0.01);
    return (void *)(2 * (intptr_t)arg);
}

/* 11. A queue: a coroutine doubles what main puts in. */
static void *doubler(void *arg)
{
    stage_queue **q = arg; /* q[0]: in, q[1]: out */
    void *n;
    while (stage_queue_get(q[0], &n, 1.0) == 0)
        stage_queue_put(q[1], (void *)(2 * (intptr_t)n), 1.0);
    stage_queue_close(q[1]); /* in closed and drained: so is out */
    return NULL;
}

/* 12. An event: a thread sets it with a payload. */
static void *starter(void *arg)
{
    stage_sleep(0.02);
    stage_event_set(arg, "go");
    return NULL;
}

/* 14. An event emitter: every listener answers every emit. */
static void *shout(const char *event, void *data, void *user_data)
{
    printf("  %s listener got %s \"%s\"\n", (const char *)user_data, event,
           (const char *)data);
    return "ok";
}

/* 15. Control inversion: main serves a coroutine's call when it chooses. */
static int add_one(stage_server *srv, void *request, stage_future *reply,
                   void *user_data)
{
    (void)srv;
    (void)user_data;
    intptr_t x = *(intptr_t *)request; /* borrowed until we return */
    return stage_future_resolve(reply, (void *)(x + 1), NULL);
}

static void *caller(void *arg)
{
    intptr_t x = 41;
    void *y = NULL;
    int err = stage_server_call(arg, &x, 1.0, &y); /* suspends until served */
    return err ? stage_task_fail(err, "call") : y;
}

/* 16. Task-local variables: each task starts with its creator's values. */
static stage_local *request;

static void *serve(void *arg)
{
    const char *inherited = stage_local_get(request);
    stage_local_set(request, arg); /* this task's own value */
    stage_sleep(0.01);             /* the other handler runs */
    printf("  handler %s: started with \"%s\", now \"%s\"\n",
           (const char *)arg, inherited,
           (const char *)stage_local_get(request));
    return stage_local_get(request);
}

/* 17. A custom awaitable: an object whose await hands out a future. */
static stage_future *await_twice(void *object)
{
    stage_future *f = NULL;
    errno = stage_coro_spawn(NULL, twice, object, NULL, 0, &f);
    return f;
}

/* 19. A scope: every task ends before it closes. */
static void *fetch_fruit(void *arg)
{
    const char *what = arg;
    if (stage_sleep(what[0] == 'b' ? 0.05 : 0.02) != 0)
        return NULL; /* cancelled by the scope */
    if (what[0] == 'b')
        return stage_task_fail(EIO, "%s: server said no", what);
    return arg;
}

int main(void)
{
    printf("libstage %s tour\n\n", stage_version_string());

    printf("1. Two coroutines on the main thread take turns:\n");
    stage_future *a, *b;
    stage_coro_spawn(NULL, counter, "A", NULL, 0, &a);
    stage_coro_spawn(NULL, counter, "B", NULL, 0, &b);
    check(stage_loop_run(stage_loop_current(), NULL, STAGE_FOREVER) == 0,
          "loop ran to the end");
    stage_future_unref(a);
    stage_future_unref(b);

    printf("\n2. Three coroutines sleep 0.3, 0.1 and 0.2 s at once:\n");
    int64_t t0 = stage_now();
    for (int i = 0; i < 3; i++)
        stage_coro_spawn(NULL, napper, &nap_secs[i], NULL, 0, NULL);
    stage_loop_run(stage_loop_current(), NULL, STAGE_FOREVER);
    double t = since(t0);
    printf("  all done in %.2f s: the longest, not the sum\n", t);
    /* Overlapped: every nap began before any ended (the wall time alone
     * also counts whatever else the machine does). */
    int overlapped = t >= 0.3;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            overlapped = overlapped && nap_start[i] < nap_end[j];
    check(overlapped, "sleeps overlapped");

    printf("\n3. A thread resolves a future that a coroutine and main wait "
           "for:\n");
    stage_future *answer = stage_future_new(), *th, *co;
    stage_coro_spawn(NULL, await_answer, answer, NULL, 0, &co);
    stage_thread_spawn(compute, answer, NULL, &th);
    void *value = NULL;
    int err = stage_future_get(answer, 5.0, &value);
    printf("  main got %d too\n", err ? -1 : *(int *)value);
    check(err == 0 && *(int *)value == 42, "the answer is 42");
    stage_future_wait(co, 5.0);
    stage_future_wait(th, 5.0);
    stage_future_unref(co);
    stage_future_unref(th);
    stage_future_unref(answer);

    printf("\n4. Cancelling a sleeping thread and a sleeping coroutine:\n");
    stage_future *st, *sc;
    struct sleeper ts = {"thread", stage_future_new()};
    struct sleeper cs = {"coroutine", stage_future_new()};
    stage_thread_spawn(sleeper, &ts, NULL, &st);
    stage_coro_spawn(NULL, sleeper, &cs, NULL, 0, &sc);
    /* Cancel only once both sleep, so both print what sleep returned. */
    stage_future_wait(ts.asleep, 5.0);
    stage_future_wait(cs.asleep, 5.0);
    stage_future_unref(ts.asleep);
    stage_future_unref(cs.asleep);
    t0 = stage_now();
    stage_future_cancel(st);
    stage_future_cancel(sc);
    stage_future_wait(st, 5.0);
    stage_future_wait(sc, 5.0);
    printf("  both ended in %.3f s, states: %s and %s\n", since(t0),
           stage_future_state(st) == STAGE_CANCELLED ? "cancelled" : "?",
           stage_future_state(sc) == STAGE_CANCELLED ? "cancelled" : "?");
    check(stage_future_state(st) == STAGE_CANCELLED &&
              stage_future_state(sc) == STAGE_CANCELLED,
          "both cancelled");
    stage_future_unref(st);
    stage_future_unref(sc);

    printf("\n5. A task that fails hands its error to whoever waits:\n");
    stage_future *f;
    stage_coro_spawn(NULL, fetch, NULL, NULL, 0, &f);
    err = stage_future_get(f, 5.0, NULL);
    printf("  error %d (%s): %s\n", err, strerror(err),
           stage_future_message(f));
    check(err == ECONNREFUSED, "the task's error arrived");
    stage_future_unref(f);

    printf("\n6. A coroutine waits for a pipe while main writes to it:\n");
    int p[2];
    if (pipe(p) == 0) {
        stage_future *r;
        stage_coro_spawn(NULL, reader, &p[0], NULL, 0, &r);
        stage_sleep(0.05); /* the reader is parked in poll meanwhile */
        check(write(p[1], "hello, poll", 11) == 11, "wrote to the pipe");
        stage_future_wait(r, 5.0);
        stage_future_unref(r);
        close(p[0]);
        close(p[1]);
    }

    printf("\n7. A Stage runs a blocking function and a coroutine at "
           "once:\n");
    stage *stg = stage_new("tour", 4, 0);
    stage_future *sync_r, *async_r;
    t0 = stage_now();
    stage_go(stg, blocking_job, "pool thread", NULL, &sync_r);
    stage_go_coro(stg, async_job, "coroutine", NULL, &async_r);
    check(stage_close(stg, 5.0) == 0, "the Stage closed");
    t = since(t0);
    void *r1 = NULL, *r2 = NULL;
    stage_future_get(sync_r, 0, &r1);
    stage_future_get(async_r, 0, &r2);
    printf("  results \"%s\" and \"%s\" after %.2f s (0.4 + 0.2 "
           "overlapped)\n", (char *)r1, (char *)r2, t);
    /* They overlapped if each started before the other ended (the wall
     * time alone also counts the Stage's start, slow under valgrind). */
    check(job_start[0] < job_end[1] && job_start[1] < job_end[0],
          "the two tasks overlapped");
    stage_future_unref(sync_r);
    stage_future_unref(async_r);
    stage_free(stg);

    printf("\n8. A stage function runs once, however often it is "
           "started:\n");
    stage_func *fn = stage_func_new(NULL, handler, STAGE_FUNC_CORO, NULL);
    stage_func_start(fn, "StageFunction is useful!");
    void *said = NULL;
    stage_func_wait(fn, 5.0, &said);
    printf("  %s\n", (char *)said);
    check(stage_func_start(fn, "again") == EALREADY, "it runs only once");
    stage_func_wait(fn, 5.0, &said);
    printf("  %s (waited again)\n", (char *)said);
    stage_func_unref(fn);

    printf("\n9. A generator on a pool thread, consumed here:\n");
    stage_gen *gen;
    void **items = NULL;
    size_t count = 0;
    stage_go_gen(NULL, count_to, (void *)5, NULL, 2, 0, &gen);
    stage_gen_collect(gen, 5.0, &items, &count);
    printf("  [");
    for (size_t i = 0; i < count; i++)
        printf("%s%d", i ? ", " : "", (int)(intptr_t)items[i]);
    printf("]\n");
    check(count == 5, "five items");
    free(items);
    stage_gen_unref(gen);

    printf("\n10. stage_run calls a coroutine function from a plain "
           "thread:\n");
    void *doubled = NULL;
    stage_run(twice, (void *)21, NULL, &doubled);
    printf("  twice(21) = %d\n", (int)(intptr_t)doubled);
    check((intptr_t)doubled == 42, "21 doubled");

    printf("\n11. A queue between main and a coroutine of its loop:\n");
    stage_queue *q[2] = {stage_queue_new(STAGE_QUEUE_UNBOUNDED, NULL),
                         stage_queue_new(STAGE_QUEUE_UNBOUNDED, NULL)};
    stage_future *dbl;
    stage_coro_spawn(NULL, doubler, q, NULL, 0, &dbl);
    for (intptr_t i = 1; i <= 3; i++)
        stage_queue_put(q[0], (void *)i, 1.0);
    stage_queue_close(q[0]);
    void *n;
    intptr_t sum = 0;
    printf("  main put 1 2 3, got back:");
    while (stage_queue_get(q[1], &n, 1.0) == 0) { /* runs the coroutine */
        printf(" %d", (int)(intptr_t)n);
        sum += (intptr_t)n;
    }
    printf("\n");
    check(sum == 12 && stage_future_wait(dbl, 1.0) == 0, "2 + 4 + 6 = 12");
    stage_future_unref(dbl);
    stage_queue_unref(q[0]);
    stage_queue_unref(q[1]);

    printf("\n12. An event that a thread sets and main waits for:\n");
    stage_event *ev = stage_event_new();
    stage_future *setter;
    stage_thread_spawn(starter, ev, NULL, &setter);
    void *payload = NULL;
    err = stage_event_wait(ev, 1.0, &payload);
    printf("  event set with payload \"%s\"\n",
           err ? "?" : (const char *)payload);
    check(err == 0 && stage_event_is_set(ev), "the event is set");
    stage_future_wait(setter, 1.0);
    stage_future_unref(setter);
    stage_event_unref(ev);

    printf("\n13. A tunnel: every reader sees every item:\n");
    stage_tunnel *tn = stage_tunnel_new(1.0, 0, NULL);
    stage_tunnel_reader *early = stage_tunnel_reader_new(tn, 0);
    for (intptr_t i = 1; i <= 3; i++)
        stage_tunnel_put(tn, (void *)i);
    stage_tunnel_close(tn);
    stage_tunnel_reader *late = stage_tunnel_reader_new(tn, 0);
    stage_tunnel_reader *readers[2] = {early, late};
    int seen = 0;
    for (int r = 0; r < 2; r++) {
        void *item;
        printf("  %s reader:", r ? "late " : "early");
        while ((err = stage_tunnel_next(readers[r], &item)) == 0) {
            printf(" %d", (int)(intptr_t)item);
            seen++;
        }
        printf(" (then %s)\n", err == EPIPE ? "the end" : strerror(err));
        stage_tunnel_reader_free(readers[r]);
    }
    check(seen == 6, "both readers saw 1 2 3");
    stage_tunnel_unref(tn);

    printf("\n14. An event emitter: a pool listener and a coroutine listener:\n");
    stage *est = stage_new("tour", 0, 0);
    stage_emitter *em = stage_emitter_new(est);
    stage_emitter_on(em, "news", shout, "pool", NULL, NULL, 0);
    stage_emitter_on(em, "news", shout, "coroutine", NULL, NULL,
                     STAGE_LISTENER_CORO);
    stage_future **resp = NULL;
    size_t nresp = 0;
    int answered = 0;
    if (stage_emitter_emit(em, "news", "hello", NULL, &resp, &nresp) == 0) {
        for (size_t i = 0; i < nresp; i++) { /* emit did not wait: we do */
            void *v;
            answered += stage_future_get(resp[i], 1.0, &v) == 0 &&
                        strcmp(v, "ok") == 0;
            stage_future_unref(resp[i]);
        }
        free(resp);
    }
    check(nresp == 2 && answered == 2, "both listeners answered");
    stage_emitter_unref(em);
    stage_free(est);

    printf("\n15. Control inversion: main serves a coroutine's call:\n");
    stage_server *srv = stage_server_new(add_one, NULL, NULL);
    stage_future *cl;
    stage_coro_spawn(NULL, caller, srv, NULL, 0, &cl);
    check(stage_server_process(srv) == EAGAIN, "nothing to serve yet");
    stage_server_wait(srv, 1.0); /* runs the coroutine, which calls */
    check(stage_server_process(srv) == 0, "main served one request");
    void *got = NULL;
    err = stage_future_get(cl, 1.0, &got);
    printf("  the client got %d\n", (int)(intptr_t)got);
    check(err == 0 && (intptr_t)got == 42, "41 + 1 = 42");
    stage_future_unref(cl);
    stage_server_unref(srv);

    printf("\n16. Task-local variables, and what a task waits on:\n");
    request = stage_local_new("request", "none");
    stage_local_set(request, "main's");
    stage_future *h[2];
    stage_coro_spawn(NULL, serve, "A", NULL, 0, &h[0]);
    stage_coro_spawn(NULL, serve, "B", NULL, 0, &h[1]);
    stage_future_set_name(h[1], "handler-B");
    stage_yield(); /* both start and sleep */
    char line[128];
    stage_future_describe(h[1], line, sizeof line);
    printf("  %s\n", line);
    void *va = NULL, *vb = NULL;
    stage_future_get(h[0], 1.0, &va);
    stage_future_get(h[1], 1.0, &vb);
    stage_future_describe(h[1], line, sizeof line);
    printf("  %s\n", line);
    printf("  main still has \"%s\"\n", (const char *)stage_local_get(request));
    check(va && vb && strcmp(va, "A") == 0 && strcmp(vb, "B") == 0 &&
              strcmp(stage_local_get(request), "main's") == 0,
          "each task kept its own value");
    stage_future_unref(h[0]);
    stage_future_unref(h[1]);
    stage_local_free(request);

    printf("\n17. A custom awaitable (an object that hands out a future):\n");
    void *r = NULL;
    err = stage_await(await_twice, (void *)21, 1.0, &r);
    printf("  await twice(21) = %d\n", err ? -1 : (int)(intptr_t)r);
    check(err == 0 && (intptr_t)r == 42, "awaited 42");

    printf("\n18. A subprocess: its output read line by line, then reaped:\n");
    char *sh_argv[] = {"sh", "-c", "echo one; echo two; exit 3", NULL};
    stage_proc *proc;
    int lines = 0, status = -1;
    err = stage_proc_spawn("/bin/sh", sh_argv, NULL, STAGE_PROC_STDOUT, &proc);
    if (err == 0) {
        /* The pipe is non-blocking: reading suspends a coroutine, blocks a
         * thread (main here, whose loop runs meanwhile). */
        stage_reader *out = stage_reader_new(stage_proc_fd(proc, 1), 0, 0);
        char *text;
        size_t len;
        while (stage_reader_line(out, &text, &len, 5.0) == 0 && text) {
            printf("  child says: %s", text);
            lines++;
        }
        stage_reader_free(out);
        err = stage_proc_wait(proc, 5.0, &status); /* reaps this child only */
        printf("  child exited with status %d\n",
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        stage_proc_free(proc);
    }
    check(err == 0 && lines == 2 && WIFEXITED(status) &&
              WEXITSTATUS(status) == 3,
          "two lines, then exit 3");

    printf("\n19. A scope: its tasks end before it closes; gather:\n");
    stage_scope *scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    stage_future *fruit[2];
    stage_scope_go_coro(scope, fetch_fruit, "apples", NULL, &fruit[0]);
    stage_scope_go(scope, fetch_fruit, "pears", NULL, &fruit[1]); /* pool */
    stage_scope_go_coro(scope, fetch_fruit, "bananas", NULL, NULL);
    void *got2[2];
    printf("  apples, read at once: %s\n",
           stage_future_get(fruit[0], 0, &got2[0]) == ETIMEDOUT ? "not yet"
                                                               : "?");
    err = stage_future_gather(fruit, 2, 0, 1.0, got2, NULL);
    printf("  gathered: %s and %s\n", err ? "?" : (const char *)got2[0],
           err ? "?" : (const char *)got2[1]);
    err = stage_scope_close(scope, 1.0); /* waits for bananas */
    const char *msg = NULL;
    stage_scope_failure(scope, 0, NULL, NULL, &msg);
    printf("  close: %s (%s)\n", strerror(err), msg ? msg : "-");
    check(err == EIO && msg != NULL, "close returns the failure nobody read");
    stage_scope_free(scope);
    stage_future_unref(fruit[0]);
    stage_future_unref(fruit[1]);

    stage_loop_free(stage_loop_current());
    printf("\n%s\n", failures ? "Some steps misbehaved." : "Tour complete.");
    return failures ? 1 : 0;
}
