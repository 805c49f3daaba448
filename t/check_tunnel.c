/* SPDX-License-Identifier: MIT */
/*
 * check_tunnel.c - tunnels: every reader sees every item in one order; the
 * end (close) and the failure (once, then EPIPE); late readers replay; a
 * bounded history and the EOVERFLOW of a reader that fell behind; the item
 * a reader holds outlives its eviction until the reader moves on; per-reader
 * idle timeouts that leave other readers alone; cancellation; collect; item
 * destructor counts; and 16 readers (8 threads, 8 coroutines on two loops)
 * each receiving 100,000 items in order.
 */
#include "streams.h"

/* Integer items 0, 1, 2, ... as non-NULL pointers. */
#define ITEM(i) ((void *)((intptr_t)(i) + 1))
#define ITEM_I(v) ((long)((intptr_t)(v) - 1))

static atomic_int int_freed;

/* stage_destroy_fn for integer items: counts. */
static void int_free(void *p)
{
    (void)p;
    atomic_fetch_add(&int_freed, 1);
}

static void put_n(stage_tunnel *t, long from, long to)
{
    long i;

    for (i = from; i < to; i++)
        ck_assert_int_eq(stage_tunnel_put(t, ITEM(i)), 0);
}

/* Read items from..to-1 from r, in order. */
static void expect_items(stage_tunnel_reader *r, long from, long to)
{
    void *v = NULL;
    long i;

    for (i = from; i < to; i++) {
        ck_assert_int_eq(stage_tunnel_next(r, &v), 0);
        ck_assert_int_eq(ITEM_I(v), i);
    }
}

/* ---- Basics ------------------------------------------------------------- */

START_TEST(test_new_ref_unref)
{
    stage_tunnel *t;

    errno = 0;
    ck_assert_ptr_null(stage_tunnel_new(NAN, 0, NULL));
    ck_assert_int_eq(errno, EINVAL);
    t = stage_tunnel_new(STAGE_TUNNEL_INHERIT, 0, int_free);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_eq(stage_tunnel_ref(t), t);
    atomic_store(&int_freed, 0);
    put_n(t, 0, 3);
    stage_tunnel_unref(t);
    ck_assert_int_eq(atomic_load(&int_freed), 0);
    stage_tunnel_unref(t); /* the last: destroys the items, once each */
    ck_assert_int_eq(atomic_load(&int_freed), 3);
    ck_assert_ptr_null(stage_tunnel_ref(NULL));
    stage_tunnel_unref(NULL);
    t = stage_tunnel_new(STAGE_FOREVER, 5, NULL);
    ck_assert_ptr_nonnull(t);
    stage_tunnel_unref(t);
}
END_TEST

START_TEST(test_einval)
{
    stage_tunnel *t = stage_tunnel_new(1.0, 0, NULL);
    stage_tunnel_reader *r = stage_tunnel_reader_new(t, 0);
    void **items = (void **)&items;
    size_t n = 7;
    void *v = &v;

    ck_assert_int_eq(stage_tunnel_put(NULL, ITEM(0)), EINVAL);
    ck_assert_int_eq(stage_tunnel_close(NULL), EINVAL);
    ck_assert_int_eq(stage_tunnel_fail(NULL, EIO, "x"), EINVAL);
    ck_assert_int_eq(stage_tunnel_fail(t, 0, "x"), EINVAL);
    ck_assert_int_eq(stage_tunnel_fail(t, -1, NULL), EINVAL);
    ck_assert_ptr_null(stage_tunnel_message(NULL));
    errno = 0;
    ck_assert_ptr_null(stage_tunnel_reader_new(NULL, 1.0));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(stage_tunnel_reader_new(t, NAN));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(stage_tunnel_next(NULL, &v), EINVAL);
    ck_assert_int_eq(stage_tunnel_next(r, NULL), EINVAL);
    ck_assert_int_eq(stage_tunnel_collect(NULL, 0, &items, &n), EINVAL);
    ck_assert_int_eq(stage_tunnel_collect(t, 0, NULL, &n), EINVAL);
    ck_assert_int_eq(stage_tunnel_collect(t, 0, &items, NULL), EINVAL);
    ck_assert_int_eq(stage_tunnel_collect(t, NAN, &items, &n), EINVAL);
    ck_assert_ptr_eq(v, &v);
    ck_assert_int_eq(stage_tunnel_reader_missed(NULL), 0);
    stage_tunnel_reader_free(NULL);
    /* Rejected calls changed nothing: the stream is open and works. */
    ck_assert_int_eq(stage_tunnel_put(t, ITEM(0)), 0);
    expect_items(r, 0, 1);
    stage_tunnel_reader_free(r);
    stage_tunnel_unref(t);
}
END_TEST

START_TEST(test_read_close)
{
    atomic_int freed = 0;
    stage_tunnel *t = stage_tunnel_new(STAGE_FOREVER, 0, t_val_free);
    stage_tunnel_reader *r = stage_tunnel_reader_new(t, 1.0);
    t_val *late = t_val_new(&freed, 9);
    void *v = NULL;
    int i;

    for (i = 0; i < 3; i++)
        ck_assert_int_eq(stage_tunnel_put(t, t_val_new(&freed, i)), 0);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(stage_tunnel_next(r, &v), 0);
        ck_assert_int_eq(((t_val *)v)->id, i);
    }
    ck_assert_int_eq(stage_tunnel_close(t), 0);
    ck_assert_int_eq(stage_tunnel_close(t), 0); /* idempotent */
    ck_assert_int_eq(stage_tunnel_fail(t, EIO, "late"), EALREADY);
    ck_assert_ptr_null(stage_tunnel_message(t));
    ck_assert_int_eq(stage_tunnel_put(t, late), EPIPE); /* still ours */
    v = &v;
    ck_assert_int_eq(stage_tunnel_next(r, &v), EPIPE);
    ck_assert_int_eq(stage_tunnel_next(r, &v), EPIPE);
    ck_assert_ptr_eq(v, &v);
    /* Borrowed, not consumed: nothing was destroyed. */
    ck_assert_int_eq(atomic_load(&freed), 0);
    /* The reader holds a reference of its own. */
    stage_tunnel_unref(t);
    ck_assert_int_eq(atomic_load(&freed), 0);
    stage_tunnel_reader_free(r);
    ck_assert_int_eq(atomic_load(&freed), 3);
    t_val_free(late);
}
END_TEST

START_TEST(test_fail)
{
    stage_tunnel *t = stage_tunnel_new(STAGE_FOREVER, 0, NULL);
    stage_tunnel_reader *r1 = stage_tunnel_reader_new(t, STAGE_FOREVER);
    stage_tunnel_reader *r2;
    char arg[8];
    void *v = NULL;
    int k;

    put_n(t, 0, 2);
    strcpy(arg, "seven");
    ck_assert_int_eq(stage_tunnel_fail(t, EPROTO, "bad %s", arg), 0);
    memset(arg, 'Q', sizeof arg - 1); /* the message was copied */
    ck_assert_str_eq(stage_tunnel_message(t), "bad seven");
    ck_assert_int_eq(stage_tunnel_fail(t, EIO, "again"), EALREADY);
    ck_assert_int_eq(stage_tunnel_close(t), 0);
    ck_assert_str_eq(stage_tunnel_message(t), "bad seven");
    ck_assert_int_eq(stage_tunnel_put(t, ITEM(5)), EPIPE);
    /* Every reader: each item, then the error once, then EPIPE. */
    r2 = stage_tunnel_reader_new(t, 0);
    for (k = 0; k < 2; k++) {
        stage_tunnel_reader *r = k ? r2 : r1;

        expect_items(r, 0, 2);
        ck_assert_int_eq(stage_tunnel_next(r, &v), EPROTO);
        ck_assert_int_eq(stage_tunnel_next(r, &v), EPIPE);
        ck_assert_int_eq(stage_tunnel_next(r, &v), EPIPE);
        stage_tunnel_reader_free(r);
    }
    stage_tunnel_unref(t);

    /* A failure without a message. */
    t = stage_tunnel_new(STAGE_FOREVER, 0, NULL);
    ck_assert_int_eq(stage_tunnel_fail(t, ENOENT, NULL), 0);
    ck_assert_ptr_null(stage_tunnel_message(t));
    r1 = stage_tunnel_reader_new(t, STAGE_TUNNEL_INHERIT);
    ck_assert_int_eq(stage_tunnel_next(r1, &v), ENOENT);
    ck_assert_int_eq(stage_tunnel_next(r1, &v), EPIPE);
    stage_tunnel_reader_free(r1);
    stage_tunnel_unref(t);
}
END_TEST

/* ---- History ------------------------------------------------------------ */

START_TEST(test_late_replay)
{
    stage_tunnel *t = stage_tunnel_new(STAGE_FOREVER, 0, NULL);
    stage_tunnel_reader *early = stage_tunnel_reader_new(t, 0);
    stage_tunnel_reader *mid, *late;
    void *v = NULL;

    put_n(t, 0, 5);
    mid = stage_tunnel_reader_new(t, 0);
    put_n(t, 5, 8);
    ck_assert_int_eq(stage_tunnel_close(t), 0);
    late = stage_tunnel_reader_new(t, 0);
    expect_items(early, 0, 8);
    expect_items(mid, 0, 8);
    expect_items(late, 0, 8);
    ck_assert_int_eq(stage_tunnel_next(early, &v), EPIPE);
    ck_assert_int_eq(stage_tunnel_next(mid, &v), EPIPE);
    ck_assert_int_eq(stage_tunnel_next(late, &v), EPIPE);
    stage_tunnel_reader_free(early);
    stage_tunnel_reader_free(mid);
    stage_tunnel_reader_free(late);
    stage_tunnel_unref(t);
}
END_TEST

START_TEST(test_history_lag)
{
    stage_tunnel *t = stage_tunnel_new(STAGE_FOREVER, 3, int_free);
    stage_tunnel_reader *r = stage_tunnel_reader_new(t, 0);
    stage_tunnel_reader *fresh;
    void *v = NULL;

    atomic_store(&int_freed, 0);
    ck_assert_int_eq(stage_tunnel_reader_missed(r), 0);
    put_n(t, 0, 10);
    /* 0..6 left the window, and nobody held them: destroyed. */
    ck_assert_int_eq(atomic_load(&int_freed), 7);
    ck_assert_int_eq(stage_tunnel_next(r, &v), EOVERFLOW);
    ck_assert_int_eq(stage_tunnel_reader_missed(r), 7);
    expect_items(r, 7, 10);
    /* A new reader starts at the oldest retained item. */
    fresh = stage_tunnel_reader_new(t, 0);
    expect_items(fresh, 7, 8);
    ck_assert_int_eq(stage_tunnel_reader_missed(fresh), 0);
    /* Falls behind again: missed counts the latest lag only. */
    put_n(t, 10, 15);
    ck_assert_int_eq(stage_tunnel_next(fresh, &v), EOVERFLOW);
    ck_assert_int_eq(stage_tunnel_reader_missed(fresh), 4); /* 8..11 */
    expect_items(fresh, 12, 15);
    ck_assert_int_eq(stage_tunnel_next(r, &v), EOVERFLOW);
    ck_assert_int_eq(stage_tunnel_reader_missed(r), 2); /* 10, 11 */
    expect_items(r, 12, 15);
    ck_assert_int_eq(stage_tunnel_close(t), 0);
    ck_assert_int_eq(stage_tunnel_next(r, &v), EPIPE);
    stage_tunnel_reader_free(r);
    stage_tunnel_reader_free(fresh);
    stage_tunnel_unref(t);
    ck_assert_int_eq(atomic_load(&int_freed), 15);
}
END_TEST

START_TEST(test_history_lag_reported)
{
    /* r fell behind while it was not reading: EOVERFLOW comes before the
     * next item, not a silent skip. */
    stage_tunnel *t = stage_tunnel_new(STAGE_FOREVER, 2, NULL);
    stage_tunnel_reader *r = stage_tunnel_reader_new(t, 0);
    void *v = NULL;

    put_n(t, 0, 2);
    expect_items(r, 0, 1);
    put_n(t, 2, 5); /* window: 3, 4 */
    ck_assert_int_eq(stage_tunnel_next(r, &v), EOVERFLOW);
    ck_assert_int_eq(stage_tunnel_reader_missed(r), 2); /* 1, 2 */
    expect_items(r, 3, 5);
    ck_assert_int_eq(stage_tunnel_next(r, &v), ETIMEDOUT); /* idle 0 */
    stage_tunnel_reader_free(r);
    stage_tunnel_unref(t);
}
END_TEST

/* The item a reader holds survives leaving the window until the reader's
 * next call (or its free). */
START_TEST(test_pinned_item)
{
    atomic_int freed = 0;
    stage_tunnel *t = stage_tunnel_new(STAGE_FOREVER, 1, t_val_free);
    stage_tunnel_reader *r = stage_tunnel_reader_new(t, 0);
    stage_tunnel_reader *other = stage_tunnel_reader_new(t, 0);
    void *a = NULL, *b = NULL, *o = NULL;

    ck_assert_int_eq(stage_tunnel_put(t, t_val_new(&freed, 1)), 0);
    ck_assert_int_eq(stage_tunnel_next(r, &a), 0);
    ck_assert_int_eq(stage_tunnel_next(other, &o), 0);
    ck_assert_ptr_eq(a, o);
    ck_assert_int_eq(stage_tunnel_put(t, t_val_new(&freed, 2)), 0);
    /* Item 1 left the window, but two readers hold it. */
    ck_assert_int_eq(atomic_load(&freed), 0);
    ck_assert_int_eq(((t_val *)a)->id, 1);
    ck_assert_int_eq(stage_tunnel_next(r, &b), 0);
    ck_assert_int_eq(((t_val *)b)->id, 2);
    ck_assert_int_eq(atomic_load(&freed), 0); /* `other` still holds it */
    stage_tunnel_reader_free(other);
    ck_assert_int_eq(atomic_load(&freed), 1);
    ck_assert_int_eq(stage_tunnel_put(t, t_val_new(&freed, 3)), 0);
    ck_assert_int_eq(atomic_load(&freed), 1); /* r holds 2 */
    ck_assert_int_eq(((t_val *)b)->id, 2);
    stage_tunnel_reader_free(r);
    ck_assert_int_eq(atomic_load(&freed), 2);
    stage_tunnel_unref(t);
    ck_assert_int_eq(atomic_load(&freed), 3);
}
END_TEST

/* ---- Readers on every side ---------------------------------------------- */

/* Reads until the first error; records the items (up to 8) and the time. */
typedef struct reading {
    stage_tunnel_reader *r;
    stage_future *about;
    long n;
    long items[8];
    int rc;
    double elapsed;
} reading;

static void *reading_body(void *arg)
{
    reading *rd = arg;
    double t0 = t_time();
    void *v;

    t_about(rd->about);
    while ((rd->rc = stage_tunnel_next(rd->r, &v)) == 0)
        if (rd->n < 8)
            rd->items[rd->n++] = ITEM_I(v);
    rd->elapsed = t_time() - t0;
    return NULL;
}

static stage_future *reading_start(reading *rd, stage_tunnel *t, double idle,
                                   int where, t_host *h)
{
    memset(rd, 0, sizeof *rd);
    rd->r = stage_tunnel_reader_new(t, idle);
    ck_assert_ptr_nonnull(rd->r);
    rd->rc = -1;
    return t_start_about(where, h, reading_body, rd, &rd->about);
}

/* One reader's idle timeout ends that reader only; the others, waiting
 * without limit or with the tunnel's default, go on. */
START_TEST(test_idle_per_reader)
{
    stage_tunnel *t = stage_tunnel_new(STAGE_FOREVER, 0, NULL);
    reading quick, patient, inherit;
    stage_future *fq, *fp, *fi;
    t_host h;
    void *v = NULL;

    t_host_start(&h);
    fp = reading_start(&patient, t, STAGE_FOREVER, ON_THREAD, &h);
    fi = reading_start(&inherit, t, STAGE_TUNNEL_INHERIT, ON_HOST, &h);
    fq = reading_start(&quick, t, 0.05, ON_MAIN, &h);
    t_finish(fq, STAGE_DONE);
    ck_assert_int_eq(quick.rc, ETIMEDOUT);
    ck_assert_double_ge(quick.elapsed, 0.05);
    ck_assert_double_lt(quick.elapsed, 0.05 + 1.0 * t_tol());
    put_n(t, 0, 2);
    ck_assert_int_eq(stage_tunnel_close(t), 0);
    t_finish(fp, STAGE_DONE);
    t_finish(fi, STAGE_DONE);
    ck_assert_int_eq(patient.rc, EPIPE);
    ck_assert_int_eq(inherit.rc, EPIPE);
    ck_assert_int_eq(patient.n, 2);
    ck_assert_int_eq(inherit.n, 2);
    ck_assert_int_eq(patient.items[1], 1);
    ck_assert_int_eq(inherit.items[1], 1);
    /* The quick reader's iteration is over, items or not. */
    ck_assert_int_eq(quick.n, 0);
    ck_assert_int_eq(stage_tunnel_next(quick.r, &v), ETIMEDOUT);
    ck_assert_int_eq(stage_tunnel_next(quick.r, &v), ETIMEDOUT);
    stage_tunnel_reader_free(quick.r);
    stage_tunnel_reader_free(patient.r);
    stage_tunnel_reader_free(inherit.r);
    t_host_stop(&h);
    stage_tunnel_unref(t);
}
END_TEST

START_TEST(test_idle_inherit)
{
    stage_tunnel *t = stage_tunnel_new(0.05, 0, NULL);
    stage_tunnel_reader *r = stage_tunnel_reader_new(t, STAGE_TUNNEL_INHERIT);
    stage_tunnel_reader *z = stage_tunnel_reader_new(t, 0);
    void *v = NULL;
    double t0 = t_time(), el;

    ck_assert_int_eq(stage_tunnel_next(r, &v), ETIMEDOUT);
    el = t_time() - t0;
    ck_assert_double_ge(el, 0.05);
    ck_assert_double_lt(el, 0.05 + 1.0 * t_tol());
    /* Idle timeout 0: what is there, then ETIMEDOUT at once. */
    put_n(t, 0, 2);
    expect_items(z, 0, 2);
    ck_assert_int_eq(stage_tunnel_next(z, &v), ETIMEDOUT);
    stage_tunnel_reader_free(r);
    stage_tunnel_reader_free(z);
    stage_tunnel_unref(t);
}
END_TEST

START_TEST(test_cancel_reader)
{
    stage_tunnel *t = stage_tunnel_new(STAGE_FOREVER, 0, NULL);
    t_host h;
    int where;

    t_host_start(&h);
    for (where = 0; where < ON_N; where++) {
        reading rd;
        stage_future *f = reading_start(&rd, t, STAGE_FOREVER, where, &h);

        t_settle();
        ck_assert_int_eq(stage_future_cancel(f), 0);
        t_finish(f, STAGE_CANCELLED);
        ck_assert_int_eq(rd.rc, ECANCELED);
        /* It replayed some of the earlier rounds' items, perhaps all. */
        ck_assert_int_le(rd.n, where);
        /* Not the end of the reader: it goes on where it was. */
        ck_assert_int_eq(stage_tunnel_put(t, ITEM(where)), 0);
        expect_items(rd.r, rd.n, where + 1);
        stage_tunnel_reader_free(rd.r);
    }
    t_host_stop(&h);
    stage_tunnel_unref(t);
}
END_TEST

/* ---- Collect ------------------------------------------------------------ */

static void expect_array(void **items, size_t n, long from, long to)
{
    size_t i;

    ck_assert_int_eq(n, (size_t)(to - from));
    for (i = 0; i < n; i++)
        ck_assert_int_eq(ITEM_I(items[i]), from + (long)i);
    free(items);
}

START_TEST(test_collect_basic)
{
    stage_tunnel *t = stage_tunnel_new(STAGE_FOREVER, 0, NULL);
    void **items = NULL;
    size_t n = 9;
    double t0, el;

    /* Empty and closed. */
    ck_assert_int_eq(stage_tunnel_close(t), 0);
    ck_assert_int_eq(stage_tunnel_collect(t, STAGE_FOREVER, &items, &n), 0);
    ck_assert_ptr_null(items);
    ck_assert_int_eq(n, 0);
    stage_tunnel_unref(t);

    /* Items, then the end. */
    t = stage_tunnel_new(STAGE_FOREVER, 0, NULL);
    put_n(t, 0, 3);
    ck_assert_int_eq(stage_tunnel_close(t), 0);
    ck_assert_int_eq(stage_tunnel_collect(t, 0, &items, &n), 0);
    expect_array(items, n, 0, 3);
    stage_tunnel_unref(t);

    /* Idle: what arrived so far, and ETIMEDOUT. */
    t = stage_tunnel_new(0.05, 0, NULL);
    put_n(t, 0, 2);
    t0 = t_time();
    ck_assert_int_eq(
        stage_tunnel_collect(t, STAGE_TUNNEL_INHERIT, &items, &n), ETIMEDOUT);
    el = t_time() - t0;
    ck_assert_double_ge(el, 0.05);
    ck_assert_double_lt(el, 0.05 + 1.0 * t_tol());
    expect_array(items, n, 0, 2);
    ck_assert_int_eq(stage_tunnel_collect(t, 0, &items, &n), ETIMEDOUT);
    expect_array(items, n, 0, 2);

    /* The failure. */
    ck_assert_int_eq(stage_tunnel_fail(t, ECONNRESET, "reset"), 0);
    ck_assert_int_eq(stage_tunnel_collect(t, 0, &items, &n), ECONNRESET);
    expect_array(items, n, 0, 2);
    stage_tunnel_unref(t);

    /* A bounded history: the items still retained. */
    t = stage_tunnel_new(STAGE_FOREVER, 2, NULL);
    put_n(t, 0, 5);
    ck_assert_int_eq(stage_tunnel_close(t), 0);
    ck_assert_int_eq(stage_tunnel_collect(t, 1.0, &items, &n), 0);
    expect_array(items, n, 3, 5);
    stage_tunnel_unref(t);
}
END_TEST

/* A producer with pauses shorter than the idle timeout. */
typedef struct slow {
    stage_tunnel *t;
    long n;
} slow;

static void *slow_producer(void *arg)
{
    slow *s = arg;
    long i;

    for (i = 0; i < s->n; i++) {
        if (i % 10 == 0)
            stage_sleep(0.002);
        stage_tunnel_put(s->t, ITEM(i));
    }
    stage_tunnel_close(s->t);
    return NULL;
}

typedef struct collecting {
    stage_tunnel *t;
    int rc;
    void **items;
    size_t n;
} collecting;

static void *collect_body(void *arg)
{
    collecting *c = arg;

    c->rc = stage_tunnel_collect(c->t, 5.0, &c->items, &c->n);
    return NULL;
}

START_TEST(test_collect_while_streaming)
{
    slow s = {stage_tunnel_new(0.01, 0, NULL), 100};
    collecting c[ON_N];
    stage_future *fc[ON_N];
    t_host h;
    int i;

    t_host_start(&h);
    for (i = 0; i < ON_N; i++) {
        c[i].t = s.t;
        c[i].rc = -1;
        fc[i] = t_start(i, &h, collect_body, &c[i]);
    }
    t_finish(t_start(ON_THREAD, &h, slow_producer, &s), STAGE_DONE);
    for (i = 0; i < ON_N; i++) {
        t_finish(fc[i], STAGE_DONE);
        ck_assert_msg(c[i].rc == 0, "%s: %d", t_where_name[i], c[i].rc);
        expect_array(c[i].items, c[i].n, 0, s.n);
    }
    t_host_stop(&h);
    stage_tunnel_unref(s.t);
}
END_TEST

typedef struct cancelled {
    stage_tunnel *t;
    stage_future *about;
    int rc[3];
    void **items;
    size_t n;
} cancelled;

static void *cancelled_body(void *arg)
{
    cancelled *c = arg;
    stage_tunnel_reader *r = stage_tunnel_reader_new(c->t, STAGE_FOREVER);
    void *v = NULL;

    c->rc[0] = t_until_cancelled(c->about);
    c->rc[1] = stage_tunnel_collect(c->t, 1.0, &c->items, &c->n);
    c->rc[2] = stage_tunnel_next(r, &v); /* even with an item there */
    stage_tunnel_reader_free(r);
    return NULL;
}

START_TEST(test_cancelled_task)
{
    int where;

    for (where = 0; where < ON_MAIN + 1; where++) {
        cancelled c = {stage_tunnel_new(STAGE_FOREVER, 0, NULL), NULL,
                       {0}, (void **)&c, 5};

        put_n(c.t, 0, 1);
        t_run_cancelled(where, NULL, cancelled_body, &c, &c.about);
        ck_assert_int_eq(c.rc[0], ECANCELED);
        ck_assert_int_eq(c.rc[1], ECANCELED);
        ck_assert_ptr_null(c.items);
        ck_assert_int_eq(c.n, 0);
        ck_assert_int_eq(c.rc[2], ECANCELED);
        stage_tunnel_unref(c.t);
    }
}
END_TEST

/* ---- 16 readers, 100,000 items ------------------------------------------ */

#define NREADERS 16
#define NITEMS 100000

typedef struct fan {
    stage_tunnel_reader *r;
    long n;      /* items to expect */
    long got;
    long bad;    /* out of order */
    int rc;
} fan;

static void *fan_reader(void *arg)
{
    fan *f = arg;
    void *v;

    while ((f->rc = stage_tunnel_next(f->r, &v)) == 0) {
        if (ITEM_I(v) != f->got)
            f->bad++;
        f->got++;
    }
    return NULL;
}

typedef struct feed {
    stage_tunnel *t;
    long n;
    int rc;
} feed;

static void *feeder(void *arg)
{
    feed *fd = arg;
    long i;

    for (i = 0; i < fd->n && fd->rc == 0; i++)
        fd->rc = stage_tunnel_put(fd->t, ITEM(i));
    if (fd->rc == 0)
        fd->rc = stage_tunnel_close(fd->t);
    return NULL;
}

START_TEST(test_broadcast_16)
{
    /* 8 threads; 4 coroutines on main's loop, 4 on the host's. */
    static const int where[NREADERS] = {
        ON_THREAD, ON_THREAD, ON_THREAD, ON_THREAD, ON_THREAD, ON_THREAD,
        ON_THREAD, ON_THREAD, ON_MAIN,   ON_MAIN,   ON_MAIN,   ON_MAIN,
        ON_HOST,   ON_HOST,   ON_HOST,   ON_HOST};
    static fan f[NREADERS];
    stage_future *fr[NREADERS];
    feed fd = {stage_tunnel_new(STAGE_FOREVER, 0, int_free), 0, 0};
    t_host h;
    int i;

    fd.n = t_on_valgrind() ? NITEMS / 50 : NITEMS;
    atomic_store(&int_freed, 0);
    t_host_start(&h);
    for (i = 0; i < NREADERS; i++) {
        memset(&f[i], 0, sizeof f[i]);
        f[i].r = stage_tunnel_reader_new(fd.t, 30.0);
        f[i].n = fd.n;
        f[i].rc = -1;
        fr[i] = t_start(where[i], &h, fan_reader, &f[i]);
    }
    t_finish(t_start(ON_THREAD, &h, feeder, &fd), STAGE_DONE);
    ck_assert_int_eq(fd.rc, 0);
    for (i = 0; i < NREADERS; i++) {
        t_finish(fr[i], STAGE_DONE);
        ck_assert_msg(f[i].rc == EPIPE, "reader %d (%s): %d", i,
                      t_where_name[where[i]], f[i].rc);
        ck_assert_msg(f[i].got == fd.n && f[i].bad == 0,
                      "reader %d (%s): %ld items, %ld out of order", i,
                      t_where_name[where[i]], f[i].got, f[i].bad);
        stage_tunnel_reader_free(f[i].r);
    }
    t_host_stop(&h);
    ck_assert_int_eq(atomic_load(&int_freed), 0);
    stage_tunnel_unref(fd.t);
    ck_assert_int_eq(atomic_load(&int_freed), fd.n);
}
END_TEST

static Suite *tunnel_suite(void)
{
    Suite *s = suite_create("tunnel");
    TCase *tc;

    tc = t_tcase(s, "basics", 10);
    tcase_add_test(tc, test_new_ref_unref);
    tcase_add_test(tc, test_einval);
    tcase_add_test(tc, test_read_close);
    tcase_add_test(tc, test_fail);

    tc = t_tcase(s, "history", 10);
    tcase_add_test(tc, test_late_replay);
    tcase_add_test(tc, test_history_lag);
    tcase_add_test(tc, test_history_lag_reported);
    tcase_add_test(tc, test_pinned_item);

    tc = t_tcase(s, "readers", 10);
    tcase_add_test(tc, test_idle_per_reader);
    tcase_add_test(tc, test_idle_inherit);
    tcase_add_test(tc, test_cancel_reader);
    tcase_add_test(tc, test_cancelled_task);

    tc = t_tcase(s, "collect", 10);
    tcase_add_test(tc, test_collect_basic);
    tcase_add_test(tc, test_collect_while_streaming);

    tc = t_tcase(s, "broadcast", 60);
    tcase_add_test(tc, test_broadcast_16);
    return s;
}

T_MAIN(tunnel_suite)
