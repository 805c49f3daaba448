/* SPDX-License-Identifier: MIT */
/*
 * check_describe.c - task introspection (stage_future_describe, default
 * task names) and custom awaitables (stage_await).
 */
#include "common.h"

#include <fcntl.h>
#include <regex.h>

static char buf[512];

/* Describe f into buf; the call must succeed. */
static const char *desc(stage_future *f)
{
    ck_assert_int_eq(stage_future_describe(f, buf, sizeof buf), 0);
    return buf;
}

/* Does `s` match the extended regular expression `re` as a whole? */
static int matches(const char *s, const char *re)
{
    regex_t rx;
    char *whole = malloc(strlen(re) + 3);
    int ok;

    ck_assert_ptr_nonnull(whole);
    sprintf(whole, "^%s$", re);
    ck_assert_int_eq(regcomp(&rx, whole, REG_EXTENDED | REG_NOSUB), 0);
    ok = regexec(&rx, s, 0, NULL, 0) == 0;
    regfree(&rx);
    free(whole);
    return ok;
}

#define assert_desc(f, re)                                                    \
    do {                                                                      \
        const char *d_ = desc(f);                                             \
        ck_assert_msg(matches(d_, re), "\"%s\" does not match /%s/", d_, re); \
    } while (0)

/* "Task-<id>" of a task, from stage_future_name (its default name). */
static const char *name_of(stage_future *f)
{
    const char *n = stage_future_name(f);
    ck_assert_ptr_nonnull(n);
    return n;
}

/* ---- Plain futures ------------------------------------------------------ */

START_TEST(test_einval)
{
    stage_future *f = stage_future_new();

    ck_assert_int_eq(stage_future_describe(NULL, buf, sizeof buf), EINVAL);
    ck_assert_int_eq(stage_future_describe(f, NULL, 10), EINVAL);
    ck_assert_int_eq(stage_future_describe(f, buf, 0), EINVAL);
    stage_future_unref(f);
}
END_TEST

START_TEST(test_plain_states)
{
    static int x;
    stage_future *f = stage_future_new();

    ck_assert_str_eq(desc(f), "<Future pending>");
    ck_assert_ptr_null(stage_future_name(f)); /* no default name */
    ck_assert_int_eq(stage_future_set_name(f, "answer"), 0);
    ck_assert_str_eq(desc(f), "<Future pending name='answer'>");
    ck_assert_int_eq(stage_future_resolve(f, &x, NULL), 0);
    char want[128];
    snprintf(want, sizeof want, "<Future finished name='answer' result=%p>",
             (void *)&x);
    ck_assert_str_eq(desc(f), want);
    stage_future_unref(f);

    f = stage_future_new();
    stage_future_resolve(f, NULL, NULL);
    ck_assert_str_eq(desc(f), "<Future finished result=NULL>");
    stage_future_unref(f);

    f = stage_future_new();
    stage_future_fail(f, EIO, "disk on %s", "fire");
    ck_assert_str_eq(desc(f), "<Future finished exception=EIO 'disk on fire'>");
    ck_assert_int_eq(stage_future_error(f), EIO); /* still to collect */
    stage_future_unref(f);

    f = stage_future_new();
    stage_future_fail(f, 4000, NULL);
    ck_assert_str_eq(desc(f), "<Future finished exception=errno 4000>");
    stage_future_unref(f);

    f = stage_future_new();
    stage_future_cancel(f);
    ck_assert_str_eq(desc(f), "<Future cancelled>");
    stage_future_unref(f);
}
END_TEST

START_TEST(test_truncation)
{
    stage_future *f = stage_future_new();
    char small[8];

    memset(small, 'x', sizeof small);
    ck_assert_int_eq(stage_future_describe(f, small, sizeof small), ERANGE);
    ck_assert_str_eq(small, "<Future");
    ck_assert_int_eq(stage_future_describe(f, small, 1), ERANGE);
    ck_assert_str_eq(small, "");
    /* Exactly enough room: "<Future pending>" is 16 characters. */
    char exact[17];
    ck_assert_int_eq(stage_future_describe(f, exact, sizeof exact), 0);
    ck_assert_str_eq(exact, "<Future pending>");
    ck_assert_int_eq(stage_future_describe(f, exact, 16), ERANGE);
    ck_assert_str_eq(exact, "<Future pending");
    stage_future_unref(f);
}
END_TEST

/* ---- Task names and states ---------------------------------------------- */

static void *ret_arg(void *arg) { return arg; }
static void *fail_eio(void *arg)
{
    (void)arg;
    return stage_task_fail(EIO, "no %s", "disk");
}

START_TEST(test_task_names)
{
    stage_future *a, *b;
    char want[64];

    ck_assert_int_eq(stage_coro_spawn(NULL, ret_arg, NULL, NULL, 0, &a), 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, ret_arg, NULL, NULL, 0, &b), 0);
    ck_assert_msg(matches(name_of(a), "Task-[1-9][0-9]*"), "%s", name_of(a));
    /* Consecutive tasks, consecutive numbers (plain futures apart). */
    unsigned long na = strtoul(name_of(a) + 5, NULL, 10);
    unsigned long nb = strtoul(name_of(b) + 5, NULL, 10);
    ck_assert_uint_eq(nb, na + 1);
    snprintf(want, sizeof want, "<Task pending name='%s'>", name_of(a));
    ck_assert_str_eq(desc(a), want);
    ck_assert_int_eq(stage_future_set_name(b, "worker"), 0);
    ck_assert_str_eq(desc(b), "<Task pending name='worker'>");
    ck_assert_int_eq(stage_future_wait(b, STAGE_FOREVER), 0);
    ck_assert_str_eq(desc(b), "<Task finished name='worker' result=NULL>");
    stage_future_unref(a);
    stage_future_unref(b);
}
END_TEST

START_TEST(test_task_states)
{
    static int x;
    stage_future *f;
    char want[128];

    ck_assert_int_eq(stage_coro_spawn(NULL, ret_arg, &x, NULL, 0, &f), 0);
    stage_future_set_name(f, "t");
    stage_future_wait(f, STAGE_FOREVER);
    snprintf(want, sizeof want, "<Task finished name='t' result=%p>",
             (void *)&x);
    ck_assert_str_eq(desc(f), want);
    stage_future_unref(f);

    ck_assert_int_eq(stage_thread_spawn(fail_eio, NULL, NULL, &f), 0);
    stage_future_set_name(f, "t");
    stage_future_wait(f, STAGE_FOREVER);
    ck_assert_str_eq(desc(f), "<Task finished name='t' exception=EIO 'no disk'>");
    stage_future_unref(f);

    ck_assert_int_eq(stage_coro_spawn(NULL, ret_arg, NULL, NULL, 0, &f), 0);
    stage_future_set_name(f, "t");
    stage_future_cancel(f); /* before it started: it never runs */
    ck_assert_str_eq(desc(f), "<Task cancelling name='t'>");
    stage_future_wait(f, STAGE_FOREVER);
    ck_assert_str_eq(desc(f), "<Task cancelled name='t'>");
    stage_future_unref(f);
}
END_TEST

/* ---- What a task waits on ----------------------------------------------- */

static void *do_sleep(void *arg)
{
    (void)arg;
    stage_sleep(60);
    return NULL;
}
static void *do_sleep_forever(void *arg)
{
    (void)arg;
    stage_sleep(STAGE_FOREVER);
    return NULL;
}
static void *do_wait(void *arg)
{
    stage_future_wait(arg, STAGE_FOREVER);
    return NULL;
}
static void *do_get(void *arg)
{
    void *item;
    stage_queue_get(arg, &item, STAGE_FOREVER);
    return NULL;
}
static void *do_put(void *arg)
{
    stage_queue_put(arg, arg, STAGE_FOREVER);
    return NULL;
}
static void *do_event(void *arg)
{
    stage_event_wait(arg, STAGE_FOREVER, NULL);
    return NULL;
}
static void *do_tunnel(void *arg)
{
    stage_tunnel_reader *r = stage_tunnel_reader_new(arg, STAGE_FOREVER);
    void *item;
    stage_tunnel_next(r, &item);
    stage_tunnel_reader_free(r);
    return NULL;
}
static int g_fd;
static unsigned int g_events;
static void *do_fd(void *arg)
{
    (void)arg;
    stage_fd_wait(g_fd, g_events, STAGE_FOREVER, NULL);
    return NULL;
}

/* Start body(arg) as a coroutine of the main loop and let it run until it
 * parks; describe it; then end the wait with `end` (NULL: cancel it). */
static void coro_waits(stage_task_fn body, void *arg, const char *re,
                       void (*end)(void *), void *end_arg)
{
    stage_future *f;
    ck_assert_int_eq(stage_coro_spawn(NULL, body, arg, NULL, 0, &f), 0);
    stage_future_set_name(f, "w");
    stage_yield(); /* runs it until it parks */
    assert_desc(f, re);
    if (end)
        end(end_arg);
    else
        stage_future_cancel(f);
    ck_assert_int_eq(stage_future_wait(f, STAGE_FOREVER), 0);
    ck_assert_int_eq(stage_future_state(f), end ? STAGE_DONE : STAGE_CANCELLED);
    stage_future_unref(f);
}

static void end_resolve(void *f) { stage_future_resolve(f, NULL, NULL); }

START_TEST(test_wait_kinds_coro)
{
    stage_future *g = stage_future_new();
    stage_queue *q = stage_queue_new(1, NULL);
    stage_event *e = stage_event_new();
    stage_tunnel *t = stage_tunnel_new(STAGE_FOREVER, 0, NULL);
    int p[2];

    ck_assert_int_eq(pipe(p), 0);
    coro_waits(do_sleep, NULL,
               "<Task pending name='w' wait_for=<sleep 60\\.000s, "
               "(59|60)\\.[0-9]{3}s left>>",
               NULL, NULL);
    coro_waits(do_sleep_forever, NULL,
               "<Task pending name='w' wait_for=<sleep forever>>", NULL, NULL);
    coro_waits(do_wait, g, "<Task pending name='w' wait_for=<Future pending>>",
               end_resolve, g);
    stage_future_unref(g);
    g = stage_future_new();
    stage_future_set_name(g, "inner");
    coro_waits(do_wait, g,
               "<Task pending name='w' wait_for=<Future pending name='inner'>>",
               NULL, NULL);
    stage_future_unref(g);
    coro_waits(do_get, q, "<Task pending name='w' wait_for=<queue get>>", NULL,
               NULL);
    ck_assert_int_eq(stage_queue_put(q, q, 0), 0); /* now full */
    coro_waits(do_put, q, "<Task pending name='w' wait_for=<queue put>>", NULL,
               NULL);
    coro_waits(do_event, e, "<Task pending name='w' wait_for=<event>>", NULL,
               NULL);
    coro_waits(do_tunnel, t, "<Task pending name='w' wait_for=<tunnel>>", NULL,
               NULL);
    g_fd = p[0];
    g_events = STAGE_FD_READ;
    char re[96];
    snprintf(re, sizeof re, "<Task pending name='w' wait_for=<fd %d read>>",
             p[0]);
    coro_waits(do_fd, NULL, re, NULL, NULL);
    /* A full pipe: its write end waits for room. */
    ck_assert_int_eq(fcntl(p[1], F_SETFL, O_NONBLOCK), 0);
    static char junk[4096];
    while (write(p[1], junk, sizeof junk) > 0)
        continue;
    g_fd = p[1];
    g_events = STAGE_FD_WRITE;
    snprintf(re, sizeof re, "<Task pending name='w' wait_for=<fd %d write>>",
             p[1]);
    coro_waits(do_fd, NULL, re, NULL, NULL);
    g_events = STAGE_FD_WRITE | STAGE_FD_READ;
    snprintf(re, sizeof re,
             "<Task pending name='w' wait_for=<fd %d read\\|write>>", p[1]);
    coro_waits(do_fd, NULL, re, NULL, NULL);
    close(p[0]);
    close(p[1]);
    stage_queue_unref(q);
    stage_event_unref(e);
    stage_tunnel_unref(t);
}
END_TEST

/* A consumer coroutine waiting for a generator's item; the producer (a
 * pool thread of a Stage) waits for an event first. */
static void produce_late(stage_gen *gen, void *arg)
{
    stage_event_wait(arg, STAGE_FOREVER, NULL);
    stage_gen_yield(gen, arg, NULL);
}

static void *do_next(void *arg)
{
    void *item;
    stage_gen_next(arg, &item, STAGE_FOREVER);
    return item;
}

START_TEST(test_wait_gen)
{
    stage *st = stage_new("gen", 1, 0);
    stage_event *e = stage_event_new();
    stage_gen *gen;
    stage_future *f;

    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(stage_go_gen(st, produce_late, e, NULL, 1, 0, &gen), 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, do_next, gen, NULL, 0, &f), 0);
    stage_future_set_name(f, "consumer");
    stage_yield();
    ck_assert_str_eq(desc(f), "<Task pending name='consumer' "
                              "wait_for=<generator next>>");
    stage_event_set(e, NULL);
    ck_assert_int_eq(stage_future_wait(f, STAGE_FOREVER), 0);
    stage_future_unref(f);
    stage_gen_unref(gen);
    stage_event_unref(e);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* A task waiting on another task shows that task (one level deep: not
 * what the inner one waits on). */
START_TEST(test_wait_for_task)
{
    stage_future *inner, *outer;

    ck_assert_int_eq(stage_coro_spawn(NULL, do_sleep, NULL, NULL, 0, &inner),
                     0);
    ck_assert_int_eq(stage_coro_spawn(NULL, do_wait, inner, NULL, 0, &outer),
                     0);
    stage_future_set_name(inner, "sleeper");
    stage_future_set_name(outer, "waiter");
    stage_yield();
    ck_assert_str_eq(desc(outer), "<Task pending name='waiter' "
                                  "wait_for=<Task pending name='sleeper'>>");
    stage_future_cancel(inner);
    stage_future_wait(outer, STAGE_FOREVER);
    ck_assert_str_eq(desc(outer), "<Task finished name='waiter' result=NULL>");
    ck_assert_str_eq(desc(inner), "<Task cancelled name='sleeper'>");
    stage_future_unref(inner);
    stage_future_unref(outer);
}
END_TEST

/* Thread tasks are described from another thread: poll the description
 * (bounded) until the task is parked. */
static void wait_parked(stage_future *f)
{
    double deadline = t_time() + 10.0 * t_tol();
    struct timespec ts = {0, 1000 * 1000};

    while (!strstr(desc(f), "wait_for=") && t_time() < deadline)
        nanosleep(&ts, NULL);
}

static void thread_waits(stage_task_fn body, void *arg, const char *re)
{
    stage_future *f;

    ck_assert_int_eq(stage_thread_spawn(body, arg, NULL, &f), 0);
    stage_future_set_name(f, "th");
    wait_parked(f);
    assert_desc(f, re);
    stage_future_cancel(f);
    ck_assert_int_eq(stage_future_wait(f, STAGE_FOREVER), 0);
    ck_assert_str_eq(desc(f), "<Task cancelled name='th'>");
    stage_future_unref(f);
}

/* A thread task running its own loop until its coroutines are done. */
static void *run_loop(void *arg)
{
    stage_coro_spawn(NULL, do_event, arg, NULL, 0, NULL);
    stage_loop_run(stage_loop_current(), NULL, STAGE_FOREVER);
    return NULL;
}

START_TEST(test_wait_kinds_thread)
{
    stage_future *g = stage_future_new();
    stage_event *e = stage_event_new();

    thread_waits(do_sleep, NULL,
                 "<Task pending name='th' wait_for=<sleep "
                 "60\\.000s, [0-9.]+s left>>");
    thread_waits(do_wait, g,
                 "<Task pending name='th' wait_for=<Future pending>>");
    thread_waits(do_event, e, "<Task pending name='th' wait_for=<event>>");
    thread_waits(run_loop, e, "<Task pending name='th' wait_for=<loop>>");
    stage_future_unref(g);
    stage_event_unref(e);
}
END_TEST

/* A coroutine parks and wakes in a loop while another thread describes it
 * over and over: every description is one of the two consistent forms. */
struct churn {
    stage_future *task;
    atomic_int stop;
    int bad;
    char last[256];
};

static void *describer(void *arg)
{
    struct churn *c = arg;
    char b[256];
    while (!atomic_load(&c->stop)) {
        stage_future_describe(c->task, b, sizeof b);
        if (strcmp(b, "<Task pending name='churn'>") != 0 &&
            strcmp(b, "<Task pending name='churn' wait_for=<queue get>>") != 0 &&
            strcmp(b, "<Task finished name='churn' result=NULL>") != 0) {
            c->bad++;
            snprintf(c->last, sizeof c->last, "%s", b);
        }
    }
    return NULL;
}

static void *getter(void *arg)
{
    void *item;
    while (stage_queue_get(arg, &item, STAGE_FOREVER) == 0 && item)
        continue;
    return NULL;
}

START_TEST(test_describe_concurrently)
{
    stage_queue *q = stage_queue_new(STAGE_QUEUE_UNBOUNDED, NULL);
    struct churn c = {NULL, 0, 0, ""};
    int n = t_on_valgrind() ? 500 : 20000;

    ck_assert_int_eq(stage_coro_spawn(NULL, getter, q, NULL, 0, &c.task), 0);
    stage_future_set_name(c.task, "churn");
    pthread_t th = t_thread_start(describer, &c);
    for (int i = 0; i < n; i++) {
        stage_queue_put(q, &c, STAGE_FOREVER);
        stage_yield();
    }
    stage_queue_put(q, NULL, STAGE_FOREVER);
    stage_future_wait(c.task, STAGE_FOREVER);
    atomic_store(&c.stop, 1);
    t_thread_join(th);
    ck_assert_msg(c.bad == 0, "%d bad descriptions, last \"%s\"", c.bad,
                  c.last);
    stage_future_unref(c.task);
    stage_queue_unref(q);
}
END_TEST

/* ---- Custom awaitables -------------------------------------------------- */

/* An awaitable that delegates to a sleep and returns a message (the
 * asyncio tutorial's CustomAwaitable), with a destructor count. */
struct custom {
    double seconds;
    atomic_int freed;
    stage_future *handed; /* the latest future handed out (a reference,
                           * which the test releases) */
};

static void *custom_body(void *arg)
{
    struct custom *c = arg;
    int err = stage_sleep(c->seconds);
    if (err)
        return stage_task_fail(err, "sleep: %d", err);
    return t_val_new(&c->freed, 42);
}

static stage_future *custom_await(void *object)
{
    struct custom *c = object;
    stage_future *f = NULL;
    if (stage_coro_spawn(NULL, custom_body, c, t_val_free, 0, &f) != 0)
        return NULL;
    c->handed = stage_future_ref(f); /* the test releases it */
    return f;
}

static stage_future *refuse(void *object)
{
    (void)object;
    errno = EMFILE;
    return NULL;
}

static stage_future *refuse_silently(void *object)
{
    (void)object;
    return NULL;
}

START_TEST(test_await_args)
{
    struct custom c = {0.0, 0, NULL};
    void *v;

    ck_assert_int_eq(stage_await(NULL, &c, 1.0, &v), EINVAL);
    ck_assert_int_eq(stage_await(custom_await, &c, NAN, &v), EINVAL);
    ck_assert_ptr_null(c.handed); /* fn never called */
    ck_assert_int_eq(stage_await(refuse, NULL, 1.0, &v), EMFILE);
    ck_assert_int_eq(stage_await(refuse_silently, NULL, 1.0, &v), EINVAL);
}
END_TEST

START_TEST(test_await_thread)
{
    struct custom c = {0.01, 0, NULL};
    void *v = NULL;

    /* From a plain thread: the coroutine runs on this thread's loop. */
    ck_assert_int_eq(stage_await(custom_await, &c, STAGE_FOREVER, &v), 0);
    ck_assert_int_eq(((t_val *)v)->id, 42);
    ck_assert_int_eq(atomic_load(&c.freed), 0); /* handed over */
    t_val_free(v);
    ck_assert_int_eq(atomic_load(&c.freed), 1);
    stage_future_unref(c.handed);

    /* No value pointer: the value stays with the future, freed with it. */
    ck_assert_int_eq(stage_await(custom_await, &c, STAGE_FOREVER, NULL), 0);
    ck_assert_int_eq(atomic_load(&c.freed), 1);
    stage_future_unref(c.handed);
    c.handed = NULL;
    ck_assert_int_eq(atomic_load(&c.freed), 2);

    /* Timed out: the awaited future is cancelled, nothing is left. */
    c.seconds = 60;
    double t0 = t_time();
    ck_assert_int_eq(stage_await(custom_await, &c, 0.02, &v), ETIMEDOUT);
    ck_assert_int_eq(stage_future_wait(c.handed, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_state(c.handed), STAGE_CANCELLED);
    ck_assert(t_time() - t0 < 5.0 * t_tol());
    stage_future_unref(c.handed);
    ck_assert_int_eq(atomic_load(&c.freed), 2);
}
END_TEST

struct await_in {
    struct custom *c;
    int err;
    void *v;
    double timeout;
};

static void *await_body(void *arg)
{
    struct await_in *a = arg;
    a->err = stage_await(custom_await, a->c,
                         a->timeout > 0 ? a->timeout : 5.0, &a->v);
    return NULL;
}

/* The awaiting task f ends; its await gave up with `err`, got no value,
 * and cancelled the future it was handed.  Releases both. */
static void check_abandoned(stage_future *f, struct await_in *a, int err)
{
    ck_assert_int_eq(stage_future_wait(f, STAGE_FOREVER), 0);
    ck_assert_int_eq(a->err, err);
    ck_assert_ptr_null(a->v);
    ck_assert_int_eq(stage_future_wait(a->c->handed, STAGE_FOREVER), 0);
    ck_assert_int_eq(stage_future_state(a->c->handed), STAGE_CANCELLED);
    stage_future_unref(a->c->handed);
    a->c->handed = NULL;
    stage_future_unref(f);
}

static void *cancelled_await(void *arg)
{
    stage_future_cancel(stage_task_self());
    return await_body(arg);
}

START_TEST(test_await_coro)
{
    struct custom c = {0.01, 0, NULL};
    struct await_in a = {&c, -1, NULL, 0};
    stage_future *f;

    ck_assert_int_eq(stage_coro_spawn(NULL, await_body, &a, NULL, 0, &f), 0);
    ck_assert_int_eq(stage_future_wait(f, STAGE_FOREVER), 0);
    stage_future_unref(f);
    ck_assert_int_eq(a.err, 0);
    ck_assert_int_eq(((t_val *)a.v)->id, 42);
    t_val_free(a.v);
    stage_future_unref(c.handed);
    c.handed = NULL;

    /* The awaiting coroutine is cancelled: so is what it awaits. */
    c.seconds = 60;
    a.err = -1;
    a.v = NULL;
    ck_assert_int_eq(stage_coro_spawn(NULL, await_body, &a, NULL, 0, &f), 0);
    stage_yield(); /* parked in the await; the sleeper is parked too */
    stage_yield();
    char want[128];
    snprintf(want, sizeof want, "<Task pending name='%s' wait_for=<Task "
             "pending name='%s'>>", name_of(f), name_of(c.handed));
    ck_assert_str_eq(desc(f), want);
    stage_future_cancel(f);
    check_abandoned(f, &a, ECANCELED);

    /* Timed out in a coroutine: the awaited coroutine is cancelled. */
    a.err = -1;
    a.timeout = 0.02;
    ck_assert_int_eq(stage_coro_spawn(NULL, await_body, &a, NULL, 0, &f), 0);
    check_abandoned(f, &a, ETIMEDOUT);
    a.timeout = 0;

    /* Cancelled before it awaits: fn is not even called. */
    c.handed = NULL;
    a.err = -1;
    ck_assert_int_eq(stage_coro_spawn(NULL, cancelled_await, &a, NULL, 0, &f),
                     0);
    stage_future_wait(f, STAGE_FOREVER);
    ck_assert_int_eq(a.err, ECANCELED);
    ck_assert_ptr_null(c.handed);
    stage_future_unref(f);
    ck_assert_int_eq(atomic_load(&c.freed), 1);
}
END_TEST

/* From a thread task, cancelled while it awaits. */
START_TEST(test_await_thread_cancel)
{
    struct custom c = {60, 0, NULL};
    struct await_in a = {&c, -1, NULL, 0};
    stage_future *f;

    ck_assert_int_eq(stage_thread_spawn(await_body, &a, NULL, &f), 0);
    stage_future_set_name(f, "awaiter");
    wait_parked(f);
    assert_desc(f, "<Task pending name='awaiter' wait_for=<Task pending "
                   "name='Task-[0-9]+'>>");
    stage_future_cancel(f);
    ck_assert_int_eq(stage_future_wait(f, STAGE_FOREVER), 0);
    ck_assert_int_eq(a.err, ECANCELED);
    /* The thread's own loop ran the awaited coroutine; it was cancelled
     * (and the loop drained at the thread's end). */
    ck_assert_int_eq(stage_future_wait(c.handed, STAGE_FOREVER), 0);
    ck_assert_int_eq(stage_future_state(c.handed), STAGE_CANCELLED);
    stage_future_unref(c.handed);
    stage_future_unref(f);
    ck_assert_int_eq(atomic_load(&c.freed), 0);
}
END_TEST

/* A failure of the awaited future is the await's result. */
static stage_future *failing(void *object)
{
    stage_future *f = stage_future_new();
    (void)object;
    stage_future_fail(f, ENOENT, "gone");
    return f;
}

START_TEST(test_await_failure)
{
    void *v = &v;

    ck_assert_int_eq(stage_await(failing, NULL, 0, &v), ENOENT);
    ck_assert_ptr_eq(v, &v); /* untouched */
    ck_assert_int_eq(stage_await(failing, NULL, 0, NULL), ENOENT);
}
END_TEST

static Suite *describe_suite(void)
{
    Suite *s = suite_create("describe");
    TCase *tc = t_tcase(s, "describe", 20);

    tcase_add_test(tc, test_einval);
    tcase_add_test(tc, test_plain_states);
    tcase_add_test(tc, test_truncation);
    tcase_add_test(tc, test_task_names);
    tcase_add_test(tc, test_task_states);
    tcase_add_test(tc, test_wait_kinds_coro);
    tcase_add_test(tc, test_wait_for_task);
    tcase_add_test(tc, test_wait_gen);
    tcase_add_test(tc, test_wait_kinds_thread);
    tcase_add_test(tc, test_describe_concurrently);
    tc = t_tcase(s, "await", 20);
    tcase_add_test(tc, test_await_args);
    tcase_add_test(tc, test_await_thread);
    tcase_add_test(tc, test_await_coro);
    tcase_add_test(tc, test_await_thread_cancel);
    tcase_add_test(tc, test_await_failure);
    return s;
}

T_MAIN(describe_suite)
