/* SPDX-License-Identifier: MIT */
/*
 * check_gen.c - generators (stage_go_gen): items in order across every
 * placement of producer (pool thread, Stage coroutine) and consumer (main,
 * a thread, a coroutine of main's loop, of another loop, of the Stage's
 * loop); the producer's failure after its items, and the end that keeps
 * reporting EPIPE; buffered producers that never get more than `buffer`
 * items ahead; lockstep send/yield (the producer runs only on demand, also
 * after a send that timed out); lazy start; close and unref (cleanup once,
 * yield refused, items left in the buffer destroyed once, a lazy body
 * never run); collect; timed-out and cancelled calls that never consume
 * (also as races); 8 generators at once and consumers sharing one
 * generator; the default Stage; every EINVAL.
 *
 * Producers record what they saw (counters, return codes) and the test
 * asserts afterwards; latches and pthread barriers order the threads.
 */
#include "stages.h"
#include "streams.h"

/* Item k of a stream: never NULL. */
#define ITEM(k) ((void *)(intptr_t)(k))
#define ITEM_K(v) ((long)(intptr_t)(v))

/* Items per stream in the placement tests (fewer under valgrind). */
static long t_items(long n)
{
    return t_slow() ? n / 50 : n;
}

/* A Stage with room for `workers` blocked pool producers or consumers. */
static stage *new_stage(size_t workers)
{
    stage *st = stage_new("gen", workers, 0);

    ck_assert_ptr_nonnull(st);
    return st;
}

static void free_stage(stage *st)
{
    ck_assert_int_eq(stage_free(st), 0);
}

/* A t_val made off the main thread (no ck_assert there). */
static void *val_new(atomic_int *freed, long id)
{
    t_val *v = malloc(sizeof *v);

    if (v == NULL)
        abort();
    v->freed = freed;
    v->id = id;
    return v;
}

/* ---- The producer ------------------------------------------------------- */

typedef struct src {
    long n;                /* yields items 1..n */
    atomic_int *freed;     /* non-NULL: the items are t_vals counted here */
    int fail;              /* non-zero: then fails with it */
    long gate_at;          /* before item gate_at, waits for gate */
    stage_future *gate;
    int gate_rc;
    long about_at;         /* opens `about` right before yield #about_at */
    stage_future *about;
    stage_future *ended;   /* opened as the body ends */
    stage_future *self;    /* its task, read once `about` is open */
    atomic_int runs;       /* body entries */
    atomic_int cleanups;   /* runs of the code after the loop */
    atomic_int reached;    /* the last yield begun */
    atomic_int placed;     /* the last yield that returned 0 */
    int stop_rc;           /* what the yield that stopped the loop returned */
} src;

static void src_init(src *s, long n)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->gate_rc = -1;
    s->ended = t_latch();
    atomic_init(&s->runs, 0);
    atomic_init(&s->cleanups, 0);
    atomic_init(&s->reached, 0);
    atomic_init(&s->placed, 0);
}

static void src_fini(src *s)
{
    stage_future_unref(s->ended);
    if (s->gate != NULL)
        stage_future_unref(s->gate);
    if (s->about != NULL)
        stage_future_unref(s->about);
}

/* The producer gets to its cleanup, once. */
static void src_ended(src *s)
{
    t_done(s->ended);
    ck_assert_int_eq(t_wait_count(&s->cleanups, 1, 10.0), 1);
    ck_assert_int_eq(atomic_load(&s->runs), 1);
}

/* The producer waits for a gate before item k. */
static void src_gate(src *s, long k)
{
    s->gate_at = k;
    s->gate = t_latch();
}

/* The producer opens a latch right before its yield of item k. */
static void src_about(src *s, long k)
{
    s->about_at = k;
    s->about = t_latch();
}

/* The yield that stopped the producer was refused: the generator was
 * closed (not ECANCELED, although the close cancels the producer). */
static void src_refused(src *s)
{
    ck_assert_msg(s->stop_rc == EPIPE, "yield after close: %d", s->stop_rc);
}

static void src_body(stage_gen *g, void *arg)
{
    src *s = arg;
    long k;

    atomic_fetch_add(&s->runs, 1);
    s->self = stage_task_self();
    for (k = 1; k <= s->n; k++) {
        void *item = ITEM(k);
        int rc;

        if (k == s->gate_at)
            s->gate_rc = stage_future_wait(s->gate, 60.0 * t_tol());
        if (s->freed != NULL)
            item = val_new(s->freed, k);
        atomic_store(&s->reached, (int)k);
        if (k == s->about_at)
            t_about(s->about);
        rc = stage_gen_yield(g, item, NULL);
        if (rc != 0) {
            s->stop_rc = rc;
            if (s->freed != NULL)
                t_val_free(item); /* refused: still ours */
            break;
        }
        atomic_store(&s->placed, (int)k);
    }
    if (s->fail && k > s->n)
        stage_task_fail(s->fail, "failed after %ld items", s->n);
    atomic_fetch_add(&s->cleanups, 1);
    t_latch_open(s->ended);
}

/* Start src_body on st; the generator is returned. */
static stage_gen *src_go(stage *st, src *s, stage_destroy_fn destroy,
                         size_t buffer, unsigned int flags)
{
    stage_gen *g = NULL;

    ck_assert_int_eq(stage_go_gen(st, src_body, s, destroy, buffer, flags, &g),
                     0);
    ck_assert_ptr_nonnull(g);
    return g;
}

/* ---- One run per producer placement ------------------------------------ */

/* A fresh Stage and producer for one run of a test body: once with the
 * producer on a pool thread, once as a coroutine of the Stage. */
typedef struct run {
    stage *st;
    unsigned int flags; /* 0 or STAGE_GEN_CORO */
    atomic_int freed;   /* destructor runs of the producer's items */
    src s;
} run;

/* Makes r->s anew: n items, t_vals counted in r->freed (from 0 again). */
static void run_src(run *r, long n)
{
    src_fini(&r->s);
    src_init(&r->s, n);
    r->s.freed = &r->freed;
    atomic_store(&r->freed, 0);
}

/* body(r) for each producer placement.  Then, the Stage freed, every item
 * the last producer made was destroyed exactly once: by the consumer, by
 * the generator or by the producer (refused). */
static void each_producer(void (*body)(run *r))
{
    unsigned int flags;

    for (flags = 0; flags <= STAGE_GEN_CORO; flags += STAGE_GEN_CORO) {
        run r;

        r.st = new_stage(1);
        r.flags = flags;
        atomic_init(&r.freed, 0);
        src_init(&r.s, 0);
        body(&r);
        free_stage(r.st);
        ck_assert_int_eq(atomic_load(&r.freed), atomic_load(&r.s.reached));
        src_fini(&r.s);
    }
}

/* test_<body>: body(r) for each producer placement. */
#define EACH_PRODUCER_TEST(body)                                              \
    START_TEST(test_##body) { each_producer(body); }                          \
    END_TEST

/* The next item must be item k. */
static void next_is(stage_gen *g, long k)
{
    void *v = NULL;

    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), 0);
    ck_assert_int_eq(ITEM_K(v), k);
}

/* The next t_val must have id k; the caller now owns it: free it. */
static void next_val_is(stage_gen *g, long k)
{
    void *v = NULL;

    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), 0);
    ck_assert_int_eq(((t_val *)v)->id, k);
    t_val_free(v);
}

/* t_wait_count for a count that main's coroutines move: waits in
 * stage_sleep, which runs them. */
static int wait_count_running(atomic_int *count, int want)
{
    double deadline = t_time() + T_LONG;

    while (atomic_load(count) < want && t_time() < deadline)
        ck_assert_int_eq(stage_sleep(0.0005), 0);
    return atomic_load(count);
}

/* Run a no-op coroutine on the Stage's loop and wait for it: whatever that
 * loop had been given to run before has had its turn. */
static void *noop(void *arg)
{
    return arg;
}

static void stage_roundtrip(stage *st)
{
    stage_future *f = NULL;

    ck_assert_int_eq(stage_go_coro(st, noop, NULL, NULL, &f), 0);
    t_done(f);
    stage_future_unref(f);
}

/* ---- Consumers ---------------------------------------------------------- */

/* Where a consumer runs. */
enum { C_MAIN, C_THREAD, C_CORO, C_HOST, C_STAGE, C_N };

static const char *const c_name[C_N] = {
    "main thread", "thread", "main's coroutine", "host's coroutine",
    "Stage's coroutine"};

typedef struct sink {
    stage_gen *g;
    src *s;          /* when set, its producer is checked ... */
    long ahead;      /* ... never to have begun more than `ahead` items
                      * beyond those taken */
    long got;        /* items taken */
    long bad;        /* out of order */
    long too_far;    /* times the producer was too far ahead */
    int rc;          /* what ended the loop */
} sink;

static void sink_init(sink *c, stage_gen *g, src *s, long ahead)
{
    memset(c, 0, sizeof *c);
    c->g = g;
    c->s = s;
    c->ahead = ahead;
    c->rc = -1;
}

static void *sink_body(void *arg)
{
    sink *c = arg;
    void *v;

    while ((c->rc = stage_gen_next(c->g, &v, 60.0 * t_tol())) == 0) {
        c->got++;
        if (ITEM_K(v) != c->got)
            c->bad++;
        if (c->s != NULL && atomic_load(&c->s->reached) > c->got + c->ahead)
            c->too_far++;
    }
    return NULL;
}

/* Run fn(arg) `where`; returns its future (NULL: it ran on main). */
static stage_future *c_start(int where, stage *st, t_host *h,
                             stage_task_fn fn, void *arg)
{
    stage_future *f = NULL;

    switch (where) {
    case C_MAIN:
        fn(arg);
        return NULL;
    case C_THREAD:
        return t_start(ON_THREAD, h, fn, arg);
    case C_CORO:
        return t_start(ON_MAIN, h, fn, arg);
    case C_HOST:
        return t_start(ON_HOST, h, fn, arg);
    default:
        ck_assert_int_eq(stage_go_coro(st, fn, arg, NULL, &f), 0);
        return f;
    }
}

/* Sink c read the n items of its stream, in order, then the end. */
static void sink_check(sink *c, long n, const char *what)
{
    ck_assert_msg(c->rc == EPIPE, "%s: ended with %d", what, c->rc);
    ck_assert_msg(c->got == n, "%s: %ld of %ld items", what, c->got, n);
    ck_assert_msg(c->bad == 0, "%s: %ld out of order", what, c->bad);
    ck_assert_msg(c->too_far == 0, "%s: producer ahead %ld times", what,
                  c->too_far);
}

/* ---- Basics ------------------------------------------------------------- */

START_TEST(test_einval)
{
    stage *st = new_stage(1);
    stage_gen *g = ITEM(1), *h;
    void **items = ITEM(2);
    void *v = ITEM(3);
    size_t count = 7;
    src s;

    src_init(&s, 1);
    ck_assert_int_eq(stage_go_gen(st, NULL, &s, NULL, 1, 0, &g), EINVAL);
    ck_assert_int_eq(stage_go_gen(st, src_body, &s, NULL, 1, 0, NULL), EINVAL);
    ck_assert_int_eq(stage_go_gen(st, src_body, &s, NULL, 1, 0x4, &g), EINVAL);
    ck_assert_int_eq(stage_go_gen(st, src_body, &s, NULL, 1, ~0u, &g), EINVAL);
    ck_assert_ptr_eq(g, ITEM(1)); /* untouched */
    ck_assert_int_eq(stage_gen_yield(NULL, ITEM(1), &v), EINVAL);
    ck_assert_int_eq(stage_gen_next(NULL, &v, 0), EINVAL);
    ck_assert_int_eq(stage_gen_send(NULL, NULL, &v, 0), EINVAL);
    ck_assert_int_eq(stage_gen_collect(NULL, 0, &items, &count), EINVAL);
    ck_assert_int_eq(stage_gen_close(NULL), EINVAL);
    ck_assert_ptr_null(stage_gen_message(NULL));
    ck_assert_ptr_null(stage_gen_ref(NULL));
    stage_gen_unref(NULL);
    ck_assert_int_eq(atomic_load(&s.runs), 0);

    /* Lazy: the bad calls below must not start it either. */
    h = src_go(st, &s, NULL, 1, STAGE_GEN_LAZY);
    ck_assert_int_eq(stage_gen_next(h, NULL, 0), EINVAL);
    ck_assert_int_eq(stage_gen_next(h, &v, NAN), EINVAL);
    ck_assert_int_eq(stage_gen_send(h, NULL, NULL, 0), EINVAL);
    ck_assert_int_eq(stage_gen_collect(h, NAN, &items, &count), EINVAL);
    ck_assert_int_eq(stage_gen_collect(h, 0, NULL, &count), EINVAL);
    ck_assert_int_eq(stage_gen_collect(h, 0, &items, NULL), EINVAL);
    /* Buffered: send is for lockstep generators only. */
    ck_assert_int_eq(stage_gen_send(h, ITEM(5), &v, T_LONG), EINVAL);
    ck_assert_ptr_eq(v, ITEM(3));
    ck_assert_ptr_eq(items, ITEM(2));
    ck_assert_int_eq(count, 7);
    stage_roundtrip(st);
    ck_assert_int_eq(atomic_load(&s.runs), 0);
    next_is(h, 1);
    ck_assert_int_eq(stage_gen_next(h, &v, T_LONG), EPIPE);
    stage_gen_unref(h);
    free_stage(st);
    src_fini(&s);
}
END_TEST

/* The Stage's go errors: EPIPE once it is closed (eager: at once; lazy: at
 * the first call, which is then the end of the stream). */
START_TEST(test_closed_stage)
{
    stage *st = new_stage(1);
    stage_gen *g = ITEM(1);
    void *v = NULL;
    src s;

    src_init(&s, 3);
    ck_assert_int_eq(stage_close(st, T_LONG), 0);
    ck_assert_int_eq(stage_go_gen(st, src_body, &s, NULL, 1, 0, &g), EPIPE);
    ck_assert_int_eq(stage_go_gen(st, src_body, &s, NULL, 0, STAGE_GEN_CORO,
                                  &g),
                     EPIPE);
    ck_assert_ptr_eq(g, ITEM(1));
    g = src_go(st, &s, NULL, 1, STAGE_GEN_LAZY | STAGE_GEN_CORO);
    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
    stage_gen_unref(g);
    ck_assert_int_eq(atomic_load(&s.runs), 0);
    free_stage(st);
    src_fini(&s);
}
END_TEST

/* st NULL: the default Stage (in a child: its threads live until exit). */
static void child_default(int wfd)
{
    src s;
    sink c;
    stage_gen *g = NULL;
    char ok;

    memset(&s, 0, sizeof s);
    s.n = 1000;
    s.ended = stage_future_new();
    if (s.ended == NULL ||
        stage_go_gen(NULL, src_body, &s, NULL, 4, 0, &g) != 0)
        _exit(1);
    sink_init(&c, g, NULL, 0);
    sink_body(&c);
    ok = c.rc == EPIPE && c.got == s.n && c.bad == 0 ? 'y' : 'n';
    stage_gen_unref(g);
    if (write(wfd, &ok, 1) != 1)
        _exit(2);
    stage_future_unref(s.ended);
    stage_loop_free(stage_loop_current());
}

START_TEST(test_default_stage)
{
    t_child_result res;

    t_child(child_default, 60.0 * t_tol(), &res);
    ck_assert_msg(res.got_byte && res.byte == 'y', "child: %s", res.err);
    ck_assert(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0);
}
END_TEST

/* NULL is an item like any other, never given to the destroy function; an
 * empty stream ends at once. */
static atomic_int null_destroyed;

static void null_destroy(void *item)
{
    (void)item;
    atomic_fetch_add(&null_destroyed, 1);
}

static void null_body(stage_gen *g, void *arg)
{
    int *rc = arg;

    rc[0] = stage_gen_yield(g, NULL, NULL);
    rc[1] = stage_gen_yield(g, ITEM(2), NULL);
}

static void empty_body(stage_gen *g, void *arg)
{
    (void)g;
    atomic_fetch_add((atomic_int *)arg, 1);
}

START_TEST(test_null_item_and_empty)
{
    stage *st = new_stage(1);
    atomic_int runs = 0;
    int rc[2] = {-1, -1};
    stage_gen *g = NULL;
    void *v = ITEM(9);

    ck_assert_int_eq(stage_go_gen(st, null_body, rc, null_destroy, 1,
                                  STAGE_GEN_CORO, &g),
                     0);
    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), 0);
    ck_assert_ptr_null(v);
    next_is(g, 2);
    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
    ck_assert_int_eq(rc[0], 0);
    ck_assert_int_eq(rc[1], 0);
    stage_gen_unref(g);
    ck_assert_int_eq(atomic_load(&null_destroyed), 0);

    ck_assert_int_eq(stage_go_gen(st, empty_body, &runs, NULL, 0, 0, &g), 0);
    v = ITEM(9);
    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
    ck_assert_int_eq(stage_gen_next(g, &v, 0), EPIPE);
    ck_assert_ptr_eq(v, ITEM(9));
    ck_assert_ptr_null(stage_gen_message(g));
    ck_assert_int_eq(atomic_load(&runs), 1);
    stage_gen_unref(g);

    /* Both left in the buffer: only item 2 is destroyed. */
    ck_assert_int_eq(stage_go_gen(st, null_body, rc, null_destroy, 2, 0, &g),
                     0);
    ck_assert_int_eq(stage_close(st, T_LONG), 0); /* the producer is done */
    stage_gen_unref(g);
    ck_assert_int_eq(atomic_load(&null_destroyed), 1);
    free_stage(st);
}
END_TEST

/* Every handle counts; the last unref closes the generator (each_producer
 * checks that every item was destroyed once). */
static void ref_unref(run *r)
{
    stage_gen *g;

    run_src(r, 100);
    g = src_go(r->st, &r->s, t_val_free, 1, r->flags);
    ck_assert_ptr_eq(stage_gen_ref(g), g);
    ck_assert_ptr_eq(stage_gen_ref(g), g);
    stage_gen_unref(g);
    stage_gen_unref(g);
    /* Still open: one handle left. */
    next_val_is(g, 1);
    next_val_is(g, 2);
    ck_assert_int_eq(atomic_load(&r->s.cleanups), 0);
    stage_gen_unref(g); /* the last: closes it */
    src_ended(&r->s);
    src_refused(&r->s);
}

EACH_PRODUCER_TEST(ref_unref)

/* ---- Placements: producer thread or coroutine x consumer anywhere ------- */

static void placements(size_t buffer, long n)
{
    stage *st = new_stage(4);
    t_host h;
    unsigned int flags;
    int where;

    t_host_start(&h);
    for (flags = 0; flags <= STAGE_GEN_CORO; flags += STAGE_GEN_CORO) {
        for (where = 0; where < C_N; where++) {
            src s;
            sink c;
            stage_gen *g;
            stage_future *f;
            char what[96];

            snprintf(what, sizeof what, "buffer %zu, %s producer, %s", buffer,
                     flags ? "coroutine" : "thread", c_name[where]);
            src_init(&s, n);
            g = src_go(st, &s, NULL, buffer, flags);
            /* A buffered producer is at most in the yield of item
             * taken + buffer + 1; a lockstep one never begins an item
             * before it is asked for. */
            sink_init(&c, g, &s, buffer ? (long)buffer + 1 : 0);
            f = c_start(where, st, &h, sink_body, &c);
            if (f != NULL)
                t_finish(f, STAGE_DONE);
            sink_check(&c, n, what);
            src_ended(&s);
            ck_assert_int_eq(s.stop_rc, 0);
            stage_gen_unref(g);
            src_fini(&s);
        }
    }
    t_host_stop(&h);
    free_stage(st);
}

START_TEST(test_placements_buffer_64) { placements(64, t_items(100000)); }
END_TEST

START_TEST(test_placements_buffer_1) { placements(1, t_items(10000)); }
END_TEST

START_TEST(test_placements_lockstep) { placements(0, t_items(10000)); }
END_TEST

/* ---- The end: failure after items, then EPIPE for ever ------------------ */

/* The producer's failure comes once, after every item, then the end; the
 * consumer read it, so the Stage has none to report. */
static void failure_after_items(run *r)
{
    t_reports rs;
    stage_gen *g;
    void *v = ITEM(9);

    t_reports_init(&rs);
    ck_assert_int_eq(
        stage_set_error_handler(r->st, t_reports_handler, &rs, NULL), 0);
    run_src(r, 3);
    r->s.fail = EIO;
    g = src_go(r->st, &r->s, t_val_free, 4, r->flags);
    next_val_is(g, 1);
    next_val_is(g, 2);
    next_val_is(g, 3);
    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EIO);
    ck_assert_str_eq(stage_gen_message(g), "failed after 3 items");
    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
    ck_assert_int_eq(stage_gen_next(g, &v, 0), EPIPE);
    ck_assert_ptr_eq(v, ITEM(9));
    ck_assert_str_eq(stage_gen_message(g), "failed after 3 items");
    src_ended(&r->s);
    stage_gen_unref(g);
    ck_assert_int_eq(stage_close(r->st, T_LONG), 0);
    ck_assert_int_eq(t_reports_count(&rs), 0);
    t_reports_fini(&rs);
}

EACH_PRODUCER_TEST(failure_after_items)

/* A failure nobody read by the time the Stage closes is the Stage's to
 * report (the close waits for the producer to settle). */
START_TEST(test_failure_unread_reported)
{
    stage *st = new_stage(1);
    t_reports rs;
    stage_gen *g;
    src s;

    t_reports_init(&rs);
    ck_assert_int_eq(stage_set_error_handler(st, t_reports_handler, &rs, NULL),
                     0);
    src_init(&s, 2);
    s.fail = ENOENT;
    g = src_go(st, &s, NULL, 4, STAGE_GEN_CORO);
    next_is(g, 1);
    ck_assert_int_eq(stage_close(st, T_LONG), 0);
    ck_assert_int_eq(t_reports_count(&rs), 1);
    ck_assert_int_eq(rs.r[0].err, ENOENT);
    ck_assert_str_eq(rs.r[0].msg, "failed after 2 items");
    ck_assert_str_eq(stage_gen_message(g), "failed after 2 items");
    stage_gen_unref(g);
    free_stage(st);
    ck_assert_int_eq(t_reports_count(&rs), 1);
    t_reports_fini(&rs);
    src_fini(&s);
}
END_TEST

/* After the end: next and send keep returning EPIPE, collect 0 and no
 * items, from any consumer. */
typedef struct ended_calls {
    stage_gen *g;
    int rc[4];
    size_t count;
    void **items;
} ended_calls;

static void *ended_body(void *arg)
{
    ended_calls *e = arg;
    void *v;

    e->rc[0] = stage_gen_next(e->g, &v, STAGE_FOREVER);
    e->rc[1] = stage_gen_send(e->g, ITEM(1), &v, STAGE_FOREVER);
    e->rc[2] = stage_gen_collect(e->g, STAGE_FOREVER, &e->items, &e->count);
    e->rc[3] = stage_gen_next(e->g, &v, 0);
    return NULL;
}

START_TEST(test_end_keeps_epipe)
{
    stage *st = new_stage(2);
    t_host h;
    stage_gen *g;
    int where;
    src s;

    t_host_start(&h);
    src_init(&s, 2);
    g = src_go(st, &s, NULL, 0, STAGE_GEN_LAZY);
    next_is(g, 1);
    next_is(g, 2);
    for (where = 0; where < C_N; where++) {
        ended_calls e = {g, {-1, -1, -1, -1}, 9, ITEM(1)};
        stage_future *f = c_start(where, st, &h, ended_body, &e);

        if (f != NULL)
            t_finish(f, STAGE_DONE);
        ck_assert_msg(e.rc[0] == EPIPE && e.rc[1] == EPIPE && e.rc[2] == 0 &&
                          e.rc[3] == EPIPE,
                      "%s: %d %d %d %d", c_name[where], e.rc[0], e.rc[1],
                      e.rc[2], e.rc[3]);
        ck_assert_int_eq(e.count, 0);
        ck_assert_ptr_null(e.items);
    }
    src_ended(&s);
    ck_assert_int_eq(s.stop_rc, 0);
    t_host_stop(&h);
    stage_gen_unref(g);
    free_stage(st);
    src_fini(&s);
}
END_TEST

/* ---- Buffered: the producer blocks while `buffer` items wait ------------ */

static void buffer_full_blocks(run *r)
{
    static const long sizes[] = {1, 3};
    int i;

    for (i = 0; i < 2; i++) {
        long b = sizes[i], k;
        stage_gen *g;

        run_src(r, 3 * b + 2);
        src_about(&r->s, b + 1);
        g = src_go(r->st, &r->s, t_val_free, (size_t)b, r->flags);
        t_done(r->s.about);
        t_settle();
        /* Items 1..b placed; blocked in the yield of item b+1. */
        ck_assert_int_eq(atomic_load(&r->s.placed), b);
        ck_assert_int_eq(atomic_load(&r->s.reached), b + 1);
        for (k = 1; k <= r->s.n; k++) {
            next_val_is(g, k);
            /* Room for one more: it moves up by exactly one. */
            ck_assert_int_le(atomic_load(&r->s.reached), k + b + 1);
            if (k + b <= r->s.n)
                ck_assert_int_eq(t_wait_count(&r->s.placed, (int)(k + b), 10.0),
                                 (int)(k + b));
        }
        src_ended(&r->s);
        stage_gen_unref(g);
        ck_assert_int_eq(atomic_load(&r->freed), r->s.n);
    }
}

EACH_PRODUCER_TEST(buffer_full_blocks)

/* ---- Lockstep: send and yield, the producer runs on demand -------------- */

/* Yields "first", then, each time, what its yield returned (NULL: -1). */
typedef struct echo {
    int rounds;
    atomic_int reached;
    int rc;
} echo;

static void echo_body(stage_gen *g, void *arg)
{
    echo *e = arg;
    void *item = ITEM(1000), *sent = ITEM(7);
    int i;

    for (i = 1; i <= e->rounds; i++) {
        atomic_store(&e->reached, i);
        e->rc = stage_gen_yield(g, item, &sent);
        if (e->rc != 0)
            return;
        item = sent != NULL ? sent : ITEM(-1);
    }
}

/* A lazy echo generator on st, started by a first send whose value is
 * ignored: no yield waits for it. */
static stage_gen *echo_start(stage *st, echo *e, unsigned int flags)
{
    stage_gen *g = NULL;
    void *v = NULL;

    ck_assert_int_eq(stage_go_gen(st, echo_body, e, NULL, 0,
                                  flags | STAGE_GEN_LAZY, &g),
                     0);
    ck_assert_int_eq(stage_gen_send(g, ITEM(5), &v, T_LONG), 0);
    ck_assert_int_eq(ITEM_K(v), 1000);
    ck_assert_int_eq(atomic_load(&e->reached), 1);
    return g;
}

START_TEST(test_lockstep_send_echo)
{
    stage *st = new_stage(1);
    unsigned int flags;

    for (flags = 0; flags <= STAGE_GEN_CORO; flags += STAGE_GEN_CORO) {
        echo e = {6, 0, -1};
        stage_gen *g = echo_start(st, &e, flags);
        void *v = NULL;

        /* Each yield returns what the next request sent. */
        ck_assert_int_eq(stage_gen_send(g, ITEM(11), &v, T_LONG), 0);
        ck_assert_int_eq(ITEM_K(v), 11);
        ck_assert_int_eq(stage_gen_send(g, ITEM(22), &v, T_LONG), 0);
        ck_assert_int_eq(ITEM_K(v), 22);
        /* next sends NULL. */
        ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), 0);
        ck_assert_int_eq(ITEM_K(v), -1);
        ck_assert_int_eq(stage_gen_send(g, NULL, &v, T_LONG), 0);
        ck_assert_int_eq(ITEM_K(v), -1);
        ck_assert_int_eq(stage_gen_send(g, ITEM(33), &v, T_LONG), 0);
        ck_assert_int_eq(ITEM_K(v), 33);
        ck_assert_int_eq(atomic_load(&e.reached), 6);
        /* The request after the last item ends it. */
        ck_assert_int_eq(stage_gen_send(g, ITEM(44), &v, T_LONG), EPIPE);
        ck_assert_int_eq(e.rc, 0);
        stage_gen_unref(g);
    }
    free_stage(st);
}
END_TEST

/* The producer begins item k only when item k is asked for (lazy: nothing
 * before the first request; eager: only item 1). */
static void lockstep_on_demand(run *r)
{
    int lazy;

    for (lazy = 0; lazy < 2; lazy++) {
        stage_gen *g;
        void *v = NULL;
        long k;

        run_src(r, 5);
        g = src_go(r->st, &r->s, t_val_free, 0,
                   r->flags | (lazy ? STAGE_GEN_LAZY : 0));
        if (lazy) {
            stage_roundtrip(r->st);
            ck_assert_int_eq(atomic_load(&r->s.runs), 0);
        } else {
            /* Item 1 is made and placed, and nothing more. */
            ck_assert_int_eq(t_wait_count(&r->s.reached, 1, 10.0), 1);
        }
        t_settle();
        ck_assert_int_eq(atomic_load(&r->s.reached), lazy ? 0 : 1);
        ck_assert_int_eq(atomic_load(&r->s.placed), 0);
        for (k = 1; k <= r->s.n; k++) {
            next_val_is(g, k);
            /* Yield k waits for the request of item k+1. */
            ck_assert_int_eq(atomic_load(&r->s.reached), k);
            ck_assert_int_eq(atomic_load(&r->s.placed), k - 1);
        }
        /* The request after the last item ends the stream. */
        ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
        src_ended(&r->s);
        ck_assert_int_eq(atomic_load(&r->s.placed), r->s.n);
        stage_gen_unref(g);
    }
}

EACH_PRODUCER_TEST(lockstep_on_demand)

/* ---- Lazy start --------------------------------------------------------- */

/* next, send and collect each start a lazy generator; nothing else does. */
START_TEST(test_lazy_start)
{
    int call;

    for (call = 0; call < 3; call++) {
        stage *st = new_stage(1);
        unsigned int flags = STAGE_GEN_LAZY | (call == 1 ? STAGE_GEN_CORO : 0);
        stage_gen *g;
        void **items = NULL;
        size_t count = 0;
        void *v = NULL;
        src s;

        src_init(&s, 3);
        g = src_go(st, &s, NULL, call == 1 ? 0 : 2, flags);
        ck_assert_ptr_eq(stage_gen_ref(g), g);
        stage_gen_unref(g);
        ck_assert_ptr_null(stage_gen_message(g));
        stage_roundtrip(st);
        t_settle();
        ck_assert_int_eq(atomic_load(&s.runs), 0);
        if (call == 0) {
            ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), 0);
            ck_assert_ptr_eq(v, ITEM(1));
        } else if (call == 1) {
            ck_assert_int_eq(stage_gen_send(g, ITEM(8), &v, T_LONG), 0);
            ck_assert_ptr_eq(v, ITEM(1));
        } else {
            ck_assert_int_eq(stage_gen_collect(g, T_LONG, &items, &count), 0);
            ck_assert_int_eq(count, 3);
            ck_assert_ptr_eq(items[2], ITEM(3));
            free(items);
        }
        ck_assert_int_eq(atomic_load(&s.runs), 1);
        stage_gen_unref(g);
        src_ended(&s);
        free_stage(st);
        src_fini(&s);
    }
}
END_TEST

/* ---- Close and the last unref ------------------------------------------- */

/* Close g: the producer's cleanup runs once, its yield of the item after
 * the `placed` first ones refused. */
static void close_stops_at(run *r, stage_gen *g, int placed)
{
    ck_assert_int_eq(stage_gen_close(g), 0);
    src_ended(&r->s);
    src_refused(&r->s);
    ck_assert_int_eq(atomic_load(&r->s.placed), placed);
    ck_assert_int_eq(atomic_load(&r->s.reached), placed + 1);
}

/* A producer blocked on a full buffer: its yield is refused (the item
 * stays its own), its cleanup runs once, the items left in the buffer are
 * destroyed once, at the close. */
static void close_blocked_producer(run *r)
{
    stage_gen *g;
    void *v = ITEM(9);

    run_src(r, 10);
    src_about(&r->s, 3);
    g = src_go(r->st, &r->s, t_val_free, 2, r->flags);
    t_done(r->s.about);
    t_settle();
    ck_assert_int_eq(atomic_load(&r->freed), 0);
    close_stops_at(r, g, 2);
    /* Items 1 and 2 went with the close, item 3 with the producer. */
    ck_assert_int_eq(atomic_load(&r->freed), 3);
    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
    ck_assert_ptr_eq(v, ITEM(9));
    /* Idempotent, and nothing is destroyed twice. */
    ck_assert_int_eq(stage_gen_close(g), 0);
    ck_assert_int_eq(stage_gen_next(g, &v, 0), EPIPE);
    stage_gen_unref(g);
}

EACH_PRODUCER_TEST(close_blocked_producer)

/* The producer's other blocking calls return ECANCELED; its next yield is
 * refused. */
static void close_busy_producer(run *r)
{
    stage_gen *g;

    run_src(r, 5);
    src_gate(&r->s, 2);
    g = src_go(r->st, &r->s, t_val_free, 4, r->flags);
    next_val_is(g, 1);
    /* Yield 1 returned: on its way to the gate. */
    ck_assert_int_eq(t_wait_count(&r->s.placed, 1, 10.0), 1);
    t_settle();
    close_stops_at(r, g, 1);
    ck_assert_int_eq(r->s.gate_rc, ECANCELED);
    stage_gen_unref(g);
}

EACH_PRODUCER_TEST(close_busy_producer)

/* Lockstep: a yield whose item was placed returns 0 even when the close
 * comes while it waits for demand; the next one is refused.  An item
 * placed and never asked for goes with the close. */
static void close_lockstep(run *r)
{
    stage_gen *g;

    run_src(r, 5);
    g = src_go(r->st, &r->s, t_val_free, 0, r->flags);
    next_val_is(g, 1); /* yield 1 placed it and waits for demand */
    close_stops_at(r, g, 1);
    ck_assert_int_eq(atomic_load(&r->freed), 2);
    stage_gen_unref(g);

    /* Eager: item 1 is made before anyone asks; whether the close found it
     * placed or refused it, it is destroyed once (each_producer checks). */
    run_src(r, 5);
    g = src_go(r->st, &r->s, t_val_free, 0, r->flags);
    ck_assert_int_eq(t_wait_count(&r->s.reached, 1, 10.0), 1);
    t_settle();
    stage_gen_unref(g);
    src_ended(&r->s);
    ck_assert_int_eq(atomic_load(&r->s.placed), atomic_load(&r->s.reached) - 1);
}

EACH_PRODUCER_TEST(close_lockstep)

/* A lazy generator closed (or dropped) before its first request never
 * runs its body, and leaves the Stage nothing to wait for. */
static void close_lazy_never_runs(run *r)
{
    stage_gen *g;
    void *v = NULL;
    size_t count = 5;
    void **items = ITEM(1);

    run_src(r, 3);
    g = src_go(r->st, &r->s, t_val_free, 1, r->flags | STAGE_GEN_LAZY);
    ck_assert_int_eq(stage_gen_close(g), 0);
    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
    ck_assert_int_eq(stage_gen_collect(g, T_LONG, &items, &count), 0);
    ck_assert_int_eq(count, 0);
    ck_assert_ptr_null(items);
    stage_gen_unref(g);

    /* The last unref of two handles, never used. */
    g = src_go(r->st, &r->s, t_val_free, 0, r->flags | STAGE_GEN_LAZY);
    stage_gen_ref(g);
    stage_gen_unref(g);
    stage_gen_unref(g);

    stage_roundtrip(r->st);
    ck_assert_int_eq(stage_close(r->st, T_LONG), 0);
    ck_assert_int_eq(atomic_load(&r->s.runs), 0);
    ck_assert_int_eq(atomic_load(&r->s.cleanups), 0);
}

EACH_PRODUCER_TEST(close_lazy_never_runs)

/* The last unref destroys what is left in the buffer, once each; what the
 * consumer took is its own. */
static void unref_destroys_buffer(run *r)
{
    stage_gen *g;

    run_src(r, 5);
    g = src_go(r->st, &r->s, t_val_free, 8, r->flags);
    src_ended(&r->s); /* all five in the buffer */
    next_val_is(g, 1);
    next_val_is(g, 2);
    ck_assert_int_eq(atomic_load(&r->freed), 2);
    stage_gen_unref(g);
    ck_assert_int_eq(atomic_load(&r->freed), 5);
}

EACH_PRODUCER_TEST(unref_destroys_buffer)

/* Consumers blocked in next, anywhere, return EPIPE when the generator is
 * closed. */
typedef struct waiting {
    stage_gen *g;
    stage_future *about; /* opened right before the call (may be NULL) */
    double timeout;
    int rc;
    double elapsed;
    void *v;
} waiting;

static void *waiting_body(void *arg)
{
    waiting *w = arg;
    double t0;

    t_about(w->about);
    t0 = t_time();
    w->rc = stage_gen_next(w->g, &w->v, w->timeout);
    w->elapsed = t_time() - t0;
    return NULL;
}

START_TEST(test_close_wakes_consumers)
{
    stage *st = new_stage(1);
    waiting w[3];
    stage_future *f[3];
    t_host h;
    stage_gen *g;
    int i;
    src s;

    t_host_start(&h);
    src_init(&s, 1);
    src_gate(&s, 1);
    g = src_go(st, &s, NULL, 1, STAGE_GEN_CORO);
    for (i = 0; i < 3; i++) {
        w[i] = (waiting){g, NULL, STAGE_FOREVER, -1, 0, ITEM(9)};
        f[i] = t_start_about(i, &h, waiting_body, &w[i], &w[i].about);
    }
    t_settle();
    ck_assert_int_eq(stage_gen_close(g), 0);
    for (i = 0; i < 3; i++) {
        t_finish(f[i], STAGE_DONE);
        ck_assert_msg(w[i].rc == EPIPE, "%s: %d", t_where_name[i], w[i].rc);
        ck_assert_ptr_eq(w[i].v, ITEM(9));
    }
    src_ended(&s);
    ck_assert_int_eq(s.gate_rc, ECANCELED);
    t_host_stop(&h);
    stage_gen_unref(g);
    free_stage(st);
    src_fini(&s);
}
END_TEST

/* The producer's own task cancelled (not closed): a yield whose item is
 * not placed yet returns ECANCELED and the item stays the producer's; one
 * whose item was placed returns 0.  The stream ends after the items
 * placed. */
static void producer_cancelled(run *r)
{
    stage_gen *g;
    void *v = NULL;

    /* Buffered: blocked on a full buffer in the yield of item 2. */
    run_src(r, 5);
    src_about(&r->s, 2);
    g = src_go(r->st, &r->s, t_val_free, 1, r->flags);
    t_done(r->s.about);
    t_settle();
    ck_assert_int_eq(stage_future_cancel(r->s.self), 0);
    src_ended(&r->s);
    ck_assert_int_eq(r->s.stop_rc, ECANCELED);
    ck_assert_int_eq(atomic_load(&r->freed), 1); /* item 2, by the producer */
    next_val_is(g, 1);
    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
    stage_gen_unref(g);

    /* Lockstep: waiting for demand after placing item 1. */
    run_src(r, 5);
    g = src_go(r->st, &r->s, t_val_free, 0, r->flags);
    next_val_is(g, 1);
    ck_assert_int_eq(stage_future_cancel(r->s.self), 0);
    src_ended(&r->s);
    ck_assert_int_eq(atomic_load(&r->s.placed), 1);
    ck_assert_int_eq(r->s.stop_rc, ECANCELED);
    ck_assert_int_eq(atomic_load(&r->s.reached), 2);
    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
    ck_assert_int_eq(atomic_load(&r->freed), 2);
    stage_gen_unref(g);
}

EACH_PRODUCER_TEST(producer_cancelled)

/* ---- Collect ------------------------------------------------------------ */

START_TEST(test_collect)
{
    stage *st = new_stage(1);
    atomic_int freed = 0;
    stage_gen *g;
    void **items = NULL;
    size_t count = 0, i;
    long n = t_items(5000);
    src s;

    /* Everything, in order, transferred to the caller. */
    src_init(&s, n);
    s.freed = &freed;
    g = src_go(st, &s, t_val_free, 16, 0);
    ck_assert_int_eq(stage_gen_collect(g, T_LONG, &items, &count), 0);
    ck_assert_int_eq(count, n);
    for (i = 0; i < count; i++) {
        ck_assert_int_eq(((t_val *)items[i])->id, (long)i + 1);
        t_val_free(items[i]);
    }
    free(items);
    ck_assert_int_eq(atomic_load(&freed), n);
    /* At the end: 0 and nothing, again. */
    ck_assert_int_eq(stage_gen_collect(g, T_LONG, &items, &count), 0);
    ck_assert_int_eq(count, 0);
    ck_assert_ptr_null(items);
    stage_gen_unref(g);
    ck_assert_int_eq(atomic_load(&freed), n);
    src_fini(&s);

    /* The producer's failure, with the items before it. */
    src_init(&s, 3);
    s.fail = EIO;
    g = src_go(st, &s, NULL, 0, STAGE_GEN_CORO);
    ck_assert_int_eq(stage_gen_collect(g, T_LONG, &items, &count), EIO);
    ck_assert_int_eq(count, 3);
    ck_assert_ptr_eq(items[0], ITEM(1));
    ck_assert_ptr_eq(items[2], ITEM(3));
    free(items);
    ck_assert_str_eq(stage_gen_message(g), "failed after 3 items");
    ck_assert_int_eq(stage_gen_collect(g, 0, &items, &count), 0);
    ck_assert_int_eq(count, 0);
    stage_gen_unref(g);
    src_fini(&s);

    /* Timed out: what came so far; the rest is still there. */
    src_init(&s, 5);
    src_gate(&s, 3);
    g = src_go(st, &s, NULL, 0, 0);
    ck_assert_int_eq(stage_gen_collect(g, 0.05, &items, &count), ETIMEDOUT);
    ck_assert_int_eq(count, 2);
    ck_assert_ptr_eq(items[1], ITEM(2));
    free(items);
    t_latch_open(s.gate);
    ck_assert_int_eq(stage_gen_collect(g, T_LONG, &items, &count), 0);
    ck_assert_int_eq(count, 3);
    ck_assert_ptr_eq(items[0], ITEM(3));
    ck_assert_ptr_eq(items[2], ITEM(5));
    free(items);
    src_ended(&s);
    stage_gen_unref(g);
    free_stage(st);
    src_fini(&s);
}
END_TEST

/* A collect whose task is cancelled returns ECANCELED with the items it
 * read; none is lost. */
typedef struct collector {
    stage_gen *g;
    int rc;
    void **items;
    size_t count;
} collector;

static void *collector_body(void *arg)
{
    collector *c = arg;

    c->rc = stage_gen_collect(c->g, STAGE_FOREVER, &c->items, &c->count);
    return NULL;
}

START_TEST(test_collect_cancelled)
{
    stage *st = new_stage(1);
    t_host h;
    int where;

    t_host_start(&h);
    for (where = 0; where < ON_N; where++) {
        collector c = {NULL, -1, NULL, 0};
        stage_future *f;
        size_t i;
        long k;
        src s;

        src_init(&s, 4);
        src_gate(&s, 3);
        c.g = src_go(st, &s, NULL, 1, where == ON_MAIN ? STAGE_GEN_CORO : 0);
        f = t_start(where, &h, collector_body, &c);
        /* Item 2 placed: the producer heads for the gate. */
        ck_assert_int_eq(wait_count_running(&s.placed, 2), 2);
        t_settle();
        ck_assert_int_eq(stage_future_cancel(f), 0);
        t_finish(f, STAGE_CANCELLED);
        ck_assert_int_eq(c.rc, ECANCELED);
        ck_assert_int_le(c.count, 2);
        for (i = 0; i < c.count; i++)
            ck_assert_ptr_eq(c.items[i], ITEM(i + 1));
        free(c.items);
        t_latch_open(s.gate);
        for (k = (long)c.count + 1; k <= s.n; k++)
            next_is(c.g, k);
        src_ended(&s);
        stage_gen_unref(c.g);
        src_fini(&s);
    }
    t_host_stop(&h);
    free_stage(st);
}
END_TEST

/* ---- Timed-out and cancelled calls never consume ------------------------ */

START_TEST(test_next_timeout)
{
    stage *st = new_stage(1);
    t_host h;
    size_t buffer;
    int where;

    t_host_start(&h);
    for (buffer = 0; buffer < 2; buffer++) {
        for (where = 0; where < C_N; where++) {
            waiting w = {NULL, NULL, 0.05, -1, 0, ITEM(9)};
            stage_future *f;
            src s;

            src_init(&s, 2);
            src_gate(&s, 1);
            w.g = src_go(st, &s, NULL, buffer, 0);
            f = c_start(where, st, &h, waiting_body, &w);
            if (f != NULL)
                t_finish(f, STAGE_DONE);
            ck_assert_msg(w.rc == ETIMEDOUT, "%s: %d", c_name[where], w.rc);
            ck_assert_double_ge(w.elapsed, 0.05);
            ck_assert_double_lt(w.elapsed, 0.05 + 1.0 * t_tol());
            ck_assert_ptr_eq(w.v, ITEM(9));
            /* Nothing was taken; with an item there, timeout 0 takes it. */
            t_latch_open(s.gate);
            if (buffer > 0) {
                ck_assert_int_eq(t_wait_count(&s.placed, 1, 10.0), 1);
                ck_assert_int_eq(stage_gen_next(w.g, &w.v, 0), 0);
                ck_assert_ptr_eq(w.v, ITEM(1));
            } else {
                next_is(w.g, 1);
            }
            next_is(w.g, 2);
            ck_assert_int_eq(stage_gen_next(w.g, &w.v, T_LONG), EPIPE);
            src_ended(&s);
            stage_gen_unref(w.g);
            src_fini(&s);
        }
    }
    t_host_stop(&h);
    free_stage(st);
}
END_TEST

/* A consumer task cancelled while it waits in next returns ECANCELED. */
START_TEST(test_next_cancelled)
{
    stage *st = new_stage(1);
    t_host h;
    int where;

    t_host_start(&h);
    for (where = 0; where < ON_N; where++) {
        waiting w = {NULL, NULL, STAGE_FOREVER, -1, 0, ITEM(9)};
        stage_future *f;
        src s;

        src_init(&s, 2);
        src_gate(&s, 1);
        w.g = src_go(st, &s, NULL, where == ON_HOST ? 0 : 1, STAGE_GEN_CORO);
        f = t_start_about(where, &h, waiting_body, &w, &w.about);
        t_settle();
        ck_assert_int_eq(stage_future_cancel(f), 0);
        t_finish(f, STAGE_CANCELLED);
        ck_assert_int_eq(w.rc, ECANCELED);
        ck_assert_ptr_eq(w.v, ITEM(9));
        t_latch_open(s.gate);
        next_is(w.g, 1);
        next_is(w.g, 2);
        stage_gen_unref(w.g);
        src_ended(&s);
        src_fini(&s);
    }
    t_host_stop(&h);
    free_stage(st);
}
END_TEST

/* In a cancelled task every consumer call returns ECANCELED, even with an
 * item waiting, and takes nothing. */
typedef struct cancelled {
    stage_gen *g;
    stage_future *never;
    int rc[4];
    void **items;
    size_t count;
    void *v;
} cancelled;

static void *cancelled_body(void *arg)
{
    cancelled *c = arg;

    c->rc[0] = stage_future_wait(c->never, STAGE_FOREVER);
    c->rc[1] = stage_gen_next(c->g, &c->v, 0);
    c->rc[2] = stage_gen_next(c->g, &c->v, STAGE_FOREVER);
    c->rc[3] = stage_gen_collect(c->g, STAGE_FOREVER, &c->items, &c->count);
    return NULL;
}

START_TEST(test_cancelled_task_takes_nothing)
{
    stage *st = new_stage(1);
    int where;

    for (where = 0; where <= ON_MAIN; where++) {
        cancelled c = {NULL, t_latch(), {0}, NULL, 9, ITEM(9)};
        stage_future *f;
        src s;

        src_init(&s, 1);
        c.g = src_go(st, &s, NULL, 1, 0);
        src_ended(&s); /* item 1 waits in the buffer */
        f = t_start(where, NULL, cancelled_body, &c);
        t_settle();
        ck_assert_int_eq(stage_future_cancel(f), 0);
        t_finish(f, STAGE_CANCELLED);
        ck_assert_int_eq(c.rc[0], ECANCELED);
        ck_assert_int_eq(c.rc[1], ECANCELED);
        ck_assert_int_eq(c.rc[2], ECANCELED);
        ck_assert_int_eq(c.rc[3], ECANCELED);
        ck_assert_int_eq(c.count, 0);
        ck_assert_ptr_null(c.items);
        ck_assert_ptr_eq(c.v, ITEM(9));
        next_is(c.g, 1);
        stage_gen_unref(c.g);
        stage_future_unref(c.never);
        src_fini(&s);
    }
    free_stage(st);
}
END_TEST

/* ---- Races: a timeout or a cancel against the yield that would serve --- */

#define RACE_N 200

typedef struct race {
    pthread_barrier_t go, done;
    int n;
} race;

static void race_pause(int k)
{
    struct timespec ts = {0, (k % 4) * 200 * 1000};

    nanosleep(&ts, NULL);
}

/* Yields item k between the barriers of round k (a pool thread). */
static void race_body(stage_gen *g, void *arg)
{
    race *r = arg;
    int k;

    for (k = 1; k <= r->n; k++) {
        pthread_barrier_wait(&r->go);
        race_pause(k);
        stage_gen_yield(g, ITEM(k), NULL);
        pthread_barrier_wait(&r->done);
    }
}

static stage_gen *race_begin(stage *st, race *r)
{
    stage_gen *g = NULL;

    r->n = t_slow() ? RACE_N / 10 : RACE_N;
    pthread_barrier_init(&r->go, NULL, 2);
    pthread_barrier_init(&r->done, NULL, 2);
    ck_assert_int_eq(stage_go_gen(st, race_body, r, NULL, 1, 0, &g), 0);
    return g;
}

static void race_end(stage *st, race *r, stage_gen *g)
{
    void *v;

    ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
    stage_gen_unref(g);
    free_stage(st);
    pthread_barrier_destroy(&r->go);
    pthread_barrier_destroy(&r->done);
}

/* A next that times out as the item arrives either took it or left it. */
START_TEST(test_race_timed_next)
{
    static race r;
    stage *st = new_stage(1);
    stage_gen *g = race_begin(st, &r);
    int k;

    for (k = 1; k <= r.n; k++) {
        void *v = NULL;
        int rc;

        pthread_barrier_wait(&r.go);
        rc = stage_gen_next(g, &v, 0.0005);
        pthread_barrier_wait(&r.done);
        if (rc != 0) {
            ck_assert_int_eq(rc, ETIMEDOUT);
            ck_assert_ptr_null(v);
            ck_assert_int_eq(stage_gen_next(g, &v, 0), 0);
        }
        ck_assert_ptr_eq(v, ITEM(k));
    }
    race_end(st, &r, g);
}
END_TEST

/* A next cancelled as the item arrives either took it or left it. */
START_TEST(test_race_cancelled_next)
{
    static race r;
    stage *st = new_stage(1);
    stage_gen *g = race_begin(st, &r);
    t_host h;
    int k;

    t_host_start(&h);
    for (k = 1; k <= r.n; k++) {
        waiting w = {g, NULL, STAGE_FOREVER, -1, 0, NULL};
        stage_future *f;
        int cancel;

        f = t_start_about(k % 2 ? ON_HOST : ON_THREAD, &h, waiting_body, &w,
                          &w.about);
        race_pause(k + 1);
        pthread_barrier_wait(&r.go);
        cancel = stage_future_cancel(f);
        pthread_barrier_wait(&r.done);
        /* EALREADY: the consumer got its item and finished first. */
        ck_assert(cancel == 0 || (cancel == EALREADY && w.rc == 0));
        t_finish(f, cancel == 0 ? STAGE_CANCELLED : STAGE_DONE);
        if (w.rc != 0) {
            ck_assert_int_eq(w.rc, ECANCELED);
            ck_assert_ptr_null(w.v);
            ck_assert_int_eq(stage_gen_next(g, &w.v, 0), 0);
        }
        ck_assert_ptr_eq(w.v, ITEM(k));
    }
    t_host_stop(&h);
    race_end(st, &r, g);
}
END_TEST

/* ---- Many at once ------------------------------------------------------- */

#define NPAR 8

/* 8 generators (thread and coroutine producers, lockstep and buffered)
 * and their 8 consumers (threads and coroutines of three loops), all at
 * once. */
START_TEST(test_parallel_8)
{
    static const size_t buffers[4] = {0, 1, 4, 64};
    static const int where[NPAR] = {C_THREAD, C_CORO, C_HOST, C_STAGE,
                                    C_STAGE,  C_HOST, C_CORO, C_THREAD};
    stage *st = new_stage(NPAR);
    long n = t_items(10000);
    src s[NPAR];
    sink c[NPAR];
    stage_gen *g[NPAR];
    stage_future *f[NPAR];
    t_host h;
    int i;

    t_host_start(&h);
    for (i = 0; i < NPAR; i++) {
        size_t b = buffers[i / 2];

        src_init(&s[i], n);
        g[i] = src_go(st, &s[i], NULL, b, i % 2 ? STAGE_GEN_CORO : 0);
        sink_init(&c[i], g[i], &s[i], b ? (long)b + 1 : 0);
        f[i] = c_start(where[i], st, &h, sink_body, &c[i]);
    }
    for (i = 0; i < NPAR; i++) {
        char what[64];

        t_finish(f[i], STAGE_DONE);
        snprintf(what, sizeof what, "generator %d (%s)", i, c_name[where[i]]);
        sink_check(&c[i], n, what);
        src_ended(&s[i]);
        stage_gen_unref(g[i]);
        src_fini(&s[i]);
    }
    t_host_stop(&h);
    free_stage(st);
}
END_TEST

/* Consumers sharing one generator: every item exactly once, each
 * consumer's in increasing order. */
#define NSHARE 4

typedef struct share {
    stage_gen *g;
    atomic_uchar *seen;
    long n, got, bad;
    int rc;
} share;

static void *share_body(void *arg)
{
    share *c = arg;
    long last = 0;
    void *v;

    while ((c->rc = stage_gen_next(c->g, &v, 60.0 * t_tol())) == 0) {
        long k = ITEM_K(v);

        if (k <= last || k > c->n) {
            c->bad++;
            continue;
        }
        last = k;
        atomic_fetch_add(&c->seen[k - 1], 1);
        c->got++;
    }
    return NULL;
}

START_TEST(test_shared_consumers)
{
    static const int where[NSHARE] = {C_THREAD, C_CORO, C_HOST, C_STAGE};
    static atomic_uchar seen[40000];
    unsigned int flags;
    stage *st = new_stage(2);
    t_host h;

    t_host_start(&h);
    for (flags = 0; flags <= STAGE_GEN_CORO; flags += STAGE_GEN_CORO) {
        long n = t_items(40000), total = 0, k;
        share c[NSHARE];
        stage_future *f[NSHARE];
        stage_gen *g;
        int i;
        src s;

        memset(seen, 0, sizeof seen);
        src_init(&s, n);
        g = src_go(st, &s, NULL, 4, flags);
        for (i = 0; i < NSHARE; i++) {
            c[i] = (share){g, seen, n, 0, 0, -1};
            f[i] = c_start(where[i], st, &h, share_body, &c[i]);
        }
        for (i = 0; i < NSHARE; i++) {
            t_finish(f[i], STAGE_DONE);
            ck_assert_msg(c[i].rc == EPIPE, "%s: %d", c_name[where[i]],
                          c[i].rc);
            ck_assert_int_eq(c[i].bad, 0);
            total += c[i].got;
        }
        ck_assert_int_eq(total, n);
        for (k = 0; k < n; k++)
            ck_assert_msg(atomic_load(&seen[k]) == 1, "item %ld seen %d times",
                          k + 1, (int)atomic_load(&seen[k]));
        src_ended(&s);
        stage_gen_unref(g);
        src_fini(&s);
    }
    t_host_stop(&h);
    free_stage(st);
}
END_TEST

/* Two coroutines of one loop each wait in next: a wait suspends only its
 * coroutine.  Producer A yields only once B's consumer got its item. */
typedef struct pair {
    stage_gen *g;
    stage_future *open;  /* opened after the first item (may be NULL) */
    int rc;
    void *v;
} pair;

static void *pair_body(void *arg)
{
    pair *p = arg;

    p->rc = stage_gen_next(p->g, &p->v, 60.0 * t_tol());
    if (p->open != NULL)
        t_latch_open(p->open);
    return NULL;
}

START_TEST(test_coroutine_consumers_interleave)
{
    stage *st = new_stage(2);
    unsigned int flags;

    for (flags = 0; flags <= STAGE_GEN_CORO; flags += STAGE_GEN_CORO) {
        src a, b;
        pair pa, pb;
        stage_future *fa, *fb;

        src_init(&a, 1);
        src_init(&b, 1);
        src_gate(&a, 1);
        pa = (pair){src_go(st, &a, NULL, 0, flags), NULL, -1, NULL};
        pb = (pair){src_go(st, &b, NULL, 0, flags), a.gate, -1, NULL};
        /* A's consumer blocks first (main's coroutines run in order). */
        fa = t_start(ON_MAIN, NULL, pair_body, &pa);
        fb = t_start(ON_MAIN, NULL, pair_body, &pb);
        t_finish(fa, STAGE_DONE);
        t_finish(fb, STAGE_DONE);
        ck_assert_int_eq(pa.rc, 0);
        ck_assert_int_eq(pb.rc, 0);
        ck_assert_ptr_eq(pa.v, ITEM(1));
        ck_assert_ptr_eq(pb.v, ITEM(1));
        ck_assert_int_eq(a.gate_rc, 0);
        stage_gen_unref(pa.g);
        stage_gen_unref(pb.g);
        src_ended(&a);
        src_ended(&b);
        src_fini(&a);
        src_fini(&b);
    }
    free_stage(st);
}
END_TEST

/* Lockstep: a send cut short by its timeout still asked for the next item.
 * Its request stays: the pending yield returns its value, and the next
 * call takes the item it asked for, without asking again (its own value
 * goes nowhere), so the producer never runs ahead of demand. */
START_TEST(test_lockstep_timed_out_send)
{
    stage *st = new_stage(1);
    unsigned int flags;

    for (flags = 0; flags <= STAGE_GEN_CORO; flags += STAGE_GEN_CORO) {
        echo e = {3, 0, -1};
        stage_gen *g = echo_start(st, &e, flags);
        void *v = ITEM(9);

        /* Nothing can come within 0: yield 1 waits for this very request. */
        ck_assert_int_eq(stage_gen_send(g, ITEM(2), &v, 0), ETIMEDOUT);
        ck_assert_ptr_eq(v, ITEM(9));
        ck_assert_int_eq(stage_gen_send(g, ITEM(3), &v, T_LONG), 0);
        ck_assert_int_eq(ITEM_K(v), 2);
        /* Item 3 was not asked for yet. */
        ck_assert_int_eq(t_wait_count(&e.reached, 3, 0.1), 2);
        ck_assert_int_eq(stage_gen_send(g, ITEM(4), &v, T_LONG), 0);
        ck_assert_int_eq(ITEM_K(v), 4);
        ck_assert_int_eq(atomic_load(&e.reached), 3);
        /* The request after the last item ends the stream. */
        ck_assert_int_eq(stage_gen_next(g, &v, T_LONG), EPIPE);
        ck_assert_int_eq(e.rc, 0);
        stage_gen_unref(g);
    }
    free_stage(st);
}
END_TEST

static Suite *gen_suite(void)
{
    Suite *s = suite_create("gen");
    TCase *tc;

    tc = t_tcase(s, "basics", 30);
    tcase_add_test(tc, test_einval);
    tcase_add_test(tc, test_closed_stage);
    tcase_add_test(tc, test_default_stage);
    tcase_add_test(tc, test_null_item_and_empty);
    tcase_add_test(tc, test_ref_unref);

    tc = t_tcase(s, "placements", 60);
    tcase_add_test(tc, test_placements_buffer_64);
    tcase_add_test(tc, test_placements_buffer_1);
    tcase_add_test(tc, test_placements_lockstep);

    tc = t_tcase(s, "stream", 30);
    tcase_add_test(tc, test_failure_after_items);
    tcase_add_test(tc, test_failure_unread_reported);
    tcase_add_test(tc, test_end_keeps_epipe);
    tcase_add_test(tc, test_buffer_full_blocks);
    tcase_add_test(tc, test_lockstep_send_echo);
    tcase_add_test(tc, test_lockstep_on_demand);
    tcase_add_test(tc, test_lockstep_timed_out_send);
    tcase_add_test(tc, test_lazy_start);
    tcase_add_test(tc, test_collect);

    tc = t_tcase(s, "close", 30);
    tcase_add_test(tc, test_close_blocked_producer);
    tcase_add_test(tc, test_close_busy_producer);
    tcase_add_test(tc, test_close_lockstep);
    tcase_add_test(tc, test_close_lazy_never_runs);
    tcase_add_test(tc, test_unref_destroys_buffer);
    tcase_add_test(tc, test_close_wakes_consumers);
    tcase_add_test(tc, test_producer_cancelled);

    tc = t_tcase(s, "stop", 30);
    tcase_add_test(tc, test_next_timeout);
    tcase_add_test(tc, test_next_cancelled);
    tcase_add_test(tc, test_cancelled_task_takes_nothing);
    tcase_add_test(tc, test_collect_cancelled);

    tc = t_tcase(s, "race", 30);
    tcase_add_test(tc, test_race_timed_next);
    tcase_add_test(tc, test_race_cancelled_next);

    tc = t_tcase(s, "parallel", 60);
    tcase_add_test(tc, test_parallel_8);
    tcase_add_test(tc, test_shared_consumers);
    tcase_add_test(tc, test_coroutine_consumers_interleave);
    return s;
}

T_MAIN(gen_suite)
