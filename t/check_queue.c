/* SPDX-License-Identifier: MIT */
/*
 * check_queue.c - queues: FIFO order, capacity, every error code, item
 * ownership (destructor counts), close with blocked putters and getters,
 * blocked putters served in order, direct hand-over to a parked getter,
 * timed-out and cancelled calls that never consume nor enqueue (also as
 * races against the waker), and conservation with 4 producers and 4
 * consumers (threads, main's coroutines, another loop's coroutines) at
 * capacities 1, 2 and 1024.
 */
#include "streams.h"

/* Item `s` of producer `p`, never NULL. */
#define ITEM(p, s) ((void *)(((intptr_t)(p) + 1) << 24 | (intptr_t)(s)))
#define ITEM_P(v) ((int)(((intptr_t)(v) >> 24) - 1))
#define ITEM_S(v) ((long)((intptr_t)(v) & 0xffffff))

/* ---- Basics ------------------------------------------------------------- */

START_TEST(test_new_ref_unref)
{
    stage_queue *q;
    void *v = NULL;
    long i;

    errno = 0;
    ck_assert_ptr_null(stage_queue_new(0, NULL));
    ck_assert_int_eq(errno, EINVAL);
    q = stage_queue_new(1, NULL);
    ck_assert_ptr_nonnull(q);
    ck_assert_ptr_eq(stage_queue_ref(q), q);
    stage_queue_unref(q);
    ck_assert_int_eq(stage_queue_length(q), 0);
    stage_queue_unref(q);
    ck_assert_ptr_null(stage_queue_ref(NULL));
    stage_queue_unref(NULL);
    ck_assert_int_eq(stage_queue_length(NULL), 0);

    /* Unbounded: never full; the ring grows as needed. */
    q = stage_queue_new(STAGE_QUEUE_UNBOUNDED, NULL);
    ck_assert_ptr_nonnull(q);
    for (i = 0; i < 10000; i++)
        ck_assert_int_eq(stage_queue_try_put(q, ITEM(0, i)), 0);
    ck_assert_int_eq(stage_queue_length(q), 10000);
    for (i = 0; i < 10000; i++) {
        ck_assert_int_eq(stage_queue_get(q, &v, 0), 0);
        ck_assert_ptr_eq(v, ITEM(0, i));
    }
    ck_assert_int_eq(stage_queue_try_get(q, &v), EAGAIN);
    stage_queue_unref(q);
}
END_TEST

START_TEST(test_einval)
{
    atomic_int freed = 0;
    stage_queue *q = stage_queue_new(2, t_val_free);
    t_val *x = t_val_new(&freed, 1);
    void *v = &v;

    ck_assert_int_eq(stage_queue_put(NULL, x, 0), EINVAL);
    ck_assert_int_eq(stage_queue_put(q, x, NAN), EINVAL);
    ck_assert_int_eq(stage_queue_try_put(NULL, x), EINVAL);
    ck_assert_int_eq(stage_queue_get(NULL, &v, 0), EINVAL);
    ck_assert_int_eq(stage_queue_get(q, NULL, 0), EINVAL);
    ck_assert_int_eq(stage_queue_get(q, &v, NAN), EINVAL);
    ck_assert_int_eq(stage_queue_try_get(NULL, &v), EINVAL);
    ck_assert_int_eq(stage_queue_try_get(q, NULL), EINVAL);
    ck_assert_int_eq(stage_queue_close(NULL), EINVAL);
    ck_assert_ptr_eq(v, &v);
    /* Nothing was enqueued, nothing destroyed: x is still ours. */
    ck_assert_int_eq(stage_queue_length(q), 0);
    stage_queue_unref(q);
    ck_assert_int_eq(atomic_load(&freed), 0);
    t_val_free(x);
}
END_TEST

START_TEST(test_fifo_capacity)
{
    stage_queue *q = stage_queue_new(3, NULL);
    void *v = NULL;

    ck_assert_int_eq(stage_queue_try_put(q, ITEM(0, 1)), 0);
    ck_assert_int_eq(stage_queue_put(q, ITEM(0, 2), 0), 0);
    ck_assert_int_eq(stage_queue_put(q, ITEM(0, 3), STAGE_FOREVER), 0);
    ck_assert_int_eq(stage_queue_length(q), 3);
    ck_assert_int_eq(stage_queue_try_put(q, ITEM(0, 4)), EAGAIN);
    ck_assert_int_eq(stage_queue_put(q, ITEM(0, 4), 0), ETIMEDOUT);
    ck_assert_int_eq(stage_queue_length(q), 3);
    ck_assert_int_eq(stage_queue_try_get(q, &v), 0);
    ck_assert_ptr_eq(v, ITEM(0, 1));
    ck_assert_int_eq(stage_queue_try_put(q, ITEM(0, 4)), 0);
    ck_assert_int_eq(stage_queue_get(q, &v, STAGE_FOREVER), 0);
    ck_assert_ptr_eq(v, ITEM(0, 2));
    ck_assert_int_eq(stage_queue_get(q, &v, 0), 0);
    ck_assert_ptr_eq(v, ITEM(0, 3));
    ck_assert_int_eq(stage_queue_get(q, &v, 1.0), 0);
    ck_assert_ptr_eq(v, ITEM(0, 4));
    v = &v;
    ck_assert_int_eq(stage_queue_try_get(q, &v), EAGAIN);
    ck_assert_int_eq(stage_queue_get(q, &v, 0), ETIMEDOUT);
    ck_assert_ptr_eq(v, &v);
    /* NULL is an item like any other. */
    ck_assert_int_eq(stage_queue_put(q, NULL, 0), 0);
    ck_assert_int_eq(stage_queue_get(q, &v, 0), 0);
    ck_assert_ptr_null(v);
    stage_queue_unref(q);
}
END_TEST

/* A timed put or get, from a coroutine or a thread. */
typedef struct timed {
    stage_queue *q;
    int put;
    double timeout;
    int rc;
    double elapsed;
    void *v;
} timed;

static void *timed_body(void *arg)
{
    timed *t = arg;
    double t0 = t_time();

    t->rc = t->put ? stage_queue_put(t->q, t->v, t->timeout)
                   : stage_queue_get(t->q, &t->v, t->timeout);
    t->elapsed = t_time() - t0;
    return NULL;
}

START_TEST(test_timeouts)
{
    atomic_int freed = 0;
    stage_queue *q = stage_queue_new(1, t_val_free);
    t_val *a = t_val_new(&freed, 1);
    t_val *x = t_val_new(&freed, 2);
    int where, put;

    for (where = 0; where < ON_MAIN + 1; where++) {
        for (put = 0; put < 2; put++) {
            timed t = {q, put, 0.05, -1, 0, put ? (void *)x : NULL};

            /* Full for the putter, empty for the getter. */
            if (put)
                ck_assert_int_eq(stage_queue_put(q, a, 0), 0);
            t_finish(t_start(where, NULL, timed_body, &t), STAGE_DONE);
            ck_assert_int_eq(t.rc, ETIMEDOUT);
            ck_assert_double_ge(t.elapsed, 0.05);
            ck_assert_double_lt(t.elapsed, 0.05 + 1.0 * t_tol());
            ck_assert_int_eq(stage_queue_length(q), put);
            if (put) {
                void *v = NULL;

                ck_assert_int_eq(stage_queue_get(q, &v, 0), 0);
                ck_assert_ptr_eq(v, a);
            } else {
                ck_assert_ptr_null(t.v);
            }
        }
    }
    /* Neither the timed-out item nor the got one was destroyed. */
    ck_assert_int_eq(atomic_load(&freed), 0);
    stage_queue_unref(q);
    t_val_free(a);
    t_val_free(x);
}
END_TEST

START_TEST(test_ownership)
{
    atomic_int freed = 0;
    stage_queue *q = stage_queue_new(STAGE_QUEUE_UNBOUNDED, t_val_free);
    t_val *late = t_val_new(&freed, 9);
    void *v = NULL;
    int i;

    for (i = 0; i < 3; i++)
        ck_assert_int_eq(stage_queue_put(q, t_val_new(&freed, i), 0), 0);
    ck_assert_int_eq(stage_queue_get(q, &v, 0), 0);
    ck_assert_int_eq(((t_val *)v)->id, 0);
    ck_assert_int_eq(atomic_load(&freed), 0);
    t_val_free(v); /* transferred to us by the get */
    ck_assert_int_eq(atomic_load(&freed), 1);
    ck_assert_int_eq(stage_queue_close(q), 0);
    /* Refused: it stays ours. */
    ck_assert_int_eq(stage_queue_put(q, late, STAGE_FOREVER), EPIPE);
    ck_assert_int_eq(stage_queue_try_put(q, late), EPIPE);
    ck_assert_int_eq(atomic_load(&freed), 1);
    /* The last unref destroys the two items left, once each. */
    stage_queue_ref(q);
    stage_queue_unref(q);
    ck_assert_int_eq(atomic_load(&freed), 1);
    stage_queue_unref(q);
    ck_assert_int_eq(atomic_load(&freed), 3);
    t_val_free(late);
}
END_TEST

START_TEST(test_close_drains)
{
    stage_queue *q = stage_queue_new(4, NULL);
    void *v = NULL;

    ck_assert_int_eq(stage_queue_put(q, ITEM(0, 1), 0), 0);
    ck_assert_int_eq(stage_queue_put(q, ITEM(0, 2), 0), 0);
    ck_assert_int_eq(stage_queue_put(q, ITEM(0, 3), 0), 0);
    ck_assert_int_eq(stage_queue_close(q), 0);
    ck_assert_int_eq(stage_queue_close(q), 0); /* idempotent */
    ck_assert_int_eq(stage_queue_put(q, ITEM(0, 4), 0), EPIPE);
    ck_assert_int_eq(stage_queue_length(q), 3);
    ck_assert_int_eq(stage_queue_get(q, &v, STAGE_FOREVER), 0);
    ck_assert_ptr_eq(v, ITEM(0, 1));
    ck_assert_int_eq(stage_queue_try_get(q, &v), 0);
    ck_assert_ptr_eq(v, ITEM(0, 2));
    ck_assert_int_eq(stage_queue_get(q, &v, 0), 0);
    ck_assert_ptr_eq(v, ITEM(0, 3));
    /* Empty and closed: EPIPE at once, even without a time limit. */
    ck_assert_int_eq(stage_queue_get(q, &v, STAGE_FOREVER), EPIPE);
    ck_assert_int_eq(stage_queue_get(q, &v, 0), EPIPE);
    ck_assert_int_eq(stage_queue_try_get(q, &v), EPIPE);
    ck_assert_int_eq(stage_queue_length(q), 0);
    stage_queue_unref(q);
}
END_TEST

/* ---- Blocked callers ---------------------------------------------------- */

/* A put or get without a time limit, that says when it is about to call. */
typedef struct blocked {
    stage_queue *q;
    int put;
    void *v;
    stage_future *about; /* resolved right before the call */
    int rc;
    double woke;
} blocked;

static void *blocked_body(void *arg)
{
    blocked *b = arg;

    t_about(b->about);
    b->rc = b->put ? stage_queue_put(b->q, b->v, STAGE_FOREVER)
                   : stage_queue_get(b->q, &b->v, STAGE_FOREVER);
    b->woke = t_time();
    /* A refused item is still ours: free it. */
    if (b->rc != 0 && b->put)
        t_val_free(b->v);
    return NULL;
}

static void blocked_init(blocked *b, stage_queue *q, int put, void *v)
{
    b->q = q;
    b->put = put;
    b->v = v;
    b->about = NULL;
    b->rc = -1;
    b->woke = 0;
}

/* Start b `where` and wait until it is about to block. */
static stage_future *blocked_start(blocked *b, int where, t_host *h)
{
    return t_start_about(where, h, blocked_body, b, &b->about);
}

#define NBLK (2 * ON_N)

START_TEST(test_close_wakes_blocked)
{
    atomic_int freed = 0;
    stage_queue *full = stage_queue_new(2, t_val_free);
    stage_queue *empty = stage_queue_new(2, t_val_free);
    blocked put[NBLK], get[NBLK];
    stage_future *fp[NBLK], *fg[NBLK];
    t_host h;
    double t0;
    void *v = NULL;
    int i;

    t_host_start(&h);
    ck_assert_int_eq(stage_queue_put(full, t_val_new(&freed, 100), 0), 0);
    ck_assert_int_eq(stage_queue_put(full, t_val_new(&freed, 101), 0), 0);
    for (i = 0; i < NBLK; i++) {
        blocked_init(&put[i], full, 1, t_val_new(&freed, i));
        blocked_init(&get[i], empty, 0, NULL);
        fp[i] = blocked_start(&put[i], i % ON_N, &h);
        fg[i] = blocked_start(&get[i], i % ON_N, &h);
    }
    t_settle();
    ck_assert_int_eq(stage_queue_length(full), 2);
    ck_assert_int_eq(stage_queue_length(empty), 0);
    t0 = t_time();
    ck_assert_int_eq(stage_queue_close(full), 0);
    ck_assert_int_eq(stage_queue_close(empty), 0);
    for (i = 0; i < NBLK; i++) {
        t_finish(fp[i], STAGE_DONE);
        t_finish(fg[i], STAGE_DONE);
        ck_assert_msg(put[i].rc == EPIPE, "putter %d (%s): %d", i,
                      t_where_name[i % ON_N], put[i].rc);
        ck_assert_msg(get[i].rc == EPIPE, "getter %d (%s): %d", i,
                      t_where_name[i % ON_N], get[i].rc);
        ck_assert_double_lt(put[i].woke - t0, 1.0 * t_tol());
        ck_assert_double_lt(get[i].woke - t0, 1.0 * t_tol());
    }
    /* The putters freed their own items; the queued two are intact. */
    ck_assert_int_eq(atomic_load(&freed), NBLK);
    ck_assert_int_eq(stage_queue_get(full, &v, 0), 0);
    ck_assert_int_eq(((t_val *)v)->id, 100);
    t_val_free(v);
    ck_assert_int_eq(stage_queue_get(full, &v, STAGE_FOREVER), 0);
    ck_assert_int_eq(((t_val *)v)->id, 101);
    t_val_free(v);
    ck_assert_int_eq(stage_queue_get(full, &v, STAGE_FOREVER), EPIPE);
    t_host_stop(&h);
    stage_queue_unref(full);
    stage_queue_unref(empty);
    ck_assert_int_eq(atomic_load(&freed), NBLK + 2);
}
END_TEST

/* Blocked putters get in in the order they blocked (coroutines of main's
 * loop block in spawn order: deterministic). */
START_TEST(test_putters_fifo)
{
    stage_queue *q = stage_queue_new(1, NULL);
    blocked b[3];
    stage_future *f[3];
    void *v = NULL;
    int i;

    ck_assert_int_eq(stage_queue_put(q, ITEM(9, 0), 0), 0);
    for (i = 0; i < 3; i++) {
        blocked_init(&b[i], q, 1, ITEM(i, 1));
        f[i] = t_start(ON_MAIN, NULL, blocked_body, &b[i]);
    }
    ck_assert_int_eq(stage_yield(), 0); /* each runs into its put */
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(b[i].rc, -1); /* blocked */
    ck_assert_int_eq(stage_queue_length(q), 1);
    ck_assert_int_eq(stage_queue_get(q, &v, 0), 0);
    ck_assert_ptr_eq(v, ITEM(9, 0));
    for (i = 0; i < 3; i++) {
        /* The first blocked putter moved into the freed slot. */
        ck_assert_int_eq(stage_queue_length(q), 1);
        ck_assert_int_eq(stage_queue_get(q, &v, 0), 0);
        ck_assert_ptr_eq(v, ITEM(i, 1));
    }
    for (i = 0; i < 3; i++) {
        t_finish(f[i], STAGE_DONE);
        ck_assert_int_eq(b[i].rc, 0);
    }
    stage_queue_unref(q);
}
END_TEST

/* A put hands its item straight to a parked getter, on any side. */
START_TEST(test_handover)
{
    stage_queue *q = stage_queue_new(4, NULL);
    t_host h;
    int where;

    t_host_start(&h);
    for (where = 0; where < ON_N; where++) {
        blocked b;
        stage_future *f;

        blocked_init(&b, q, 0, NULL);
        f = blocked_start(&b, where, &h);
        t_settle();
        ck_assert_int_eq(stage_queue_try_put(q, ITEM(where, 7)), 0);
        t_finish(f, STAGE_DONE);
        ck_assert_int_eq(b.rc, 0);
        ck_assert_ptr_eq(b.v, ITEM(where, 7));
        ck_assert_int_eq(stage_queue_length(q), 0);
    }
    t_host_stop(&h);
    stage_queue_unref(q);
}
END_TEST

/* ---- Timed-out and cancelled calls never consume or enqueue ------------- */

START_TEST(test_timed_out_get_never_consumes)
{
    stage_queue *q = stage_queue_new(1, NULL);
    int where;

    for (where = 0; where < ON_MAIN + 1; where++) {
        timed t = {q, 0, 0.02, -1, 0, NULL};
        void *v = NULL;

        t_finish(t_start(where, NULL, timed_body, &t), STAGE_DONE);
        ck_assert_int_eq(t.rc, ETIMEDOUT);
        /* An item put right after goes to the next get. */
        ck_assert_int_eq(stage_queue_put(q, ITEM(where, 1), 0), 0);
        ck_assert_int_eq(stage_queue_length(q), 1);
        ck_assert_int_eq(stage_queue_get(q, &v, 0), 0);
        ck_assert_ptr_eq(v, ITEM(where, 1));
    }
    stage_queue_unref(q);
}
END_TEST

START_TEST(test_cancelled_get_never_consumes)
{
    stage_queue *q = stage_queue_new(1, NULL);
    int where;

    for (where = 0; where < ON_MAIN + 1; where++) {
        blocked b;
        stage_future *f;
        void *v = NULL;

        blocked_init(&b, q, 0, NULL);
        f = blocked_start(&b, where, NULL);
        t_settle();
        ck_assert_int_eq(stage_future_cancel(f), 0);
        t_finish(f, STAGE_CANCELLED);
        ck_assert_int_eq(b.rc, ECANCELED);
        ck_assert_ptr_null(b.v);
        ck_assert_int_eq(stage_queue_put(q, ITEM(where, 2), 0), 0);
        ck_assert_int_eq(stage_queue_try_get(q, &v), 0);
        ck_assert_ptr_eq(v, ITEM(where, 2));
    }
    stage_queue_unref(q);
}
END_TEST

START_TEST(test_stopped_put_never_enqueues)
{
    atomic_int freed = 0;
    stage_queue *q = stage_queue_new(1, NULL);
    int where;

    for (where = 0; where < ON_MAIN + 1; where++) {
        blocked b;
        timed t = {q, 1, 0.02, -1, 0, ITEM(where, 3)};
        stage_future *f;
        void *v = NULL;

        ck_assert_int_eq(stage_queue_put(q, ITEM(9, 0), 0), 0);
        /* Timed out. */
        t_finish(t_start(where, NULL, timed_body, &t), STAGE_DONE);
        ck_assert_int_eq(t.rc, ETIMEDOUT);
        /* Cancelled. */
        blocked_init(&b, q, 1, t_val_new(&freed, where));
        f = blocked_start(&b, where, NULL);
        t_settle();
        ck_assert_int_eq(stage_future_cancel(f), 0);
        t_finish(f, STAGE_CANCELLED);
        ck_assert_int_eq(b.rc, ECANCELED);
        ck_assert_int_eq(atomic_load(&freed), where + 1); /* freed by b */
        /* Only the first item is in the queue. */
        ck_assert_int_eq(stage_queue_length(q), 1);
        ck_assert_int_eq(stage_queue_get(q, &v, 0), 0);
        ck_assert_ptr_eq(v, ITEM(9, 0));
        ck_assert_int_eq(stage_queue_try_get(q, &v), EAGAIN);
    }
    stage_queue_unref(q);
}
END_TEST

/* A cancelled task: every put and get returns ECANCELED, even those that
 * would not block; the try_ forms still work (for cleanup). */
typedef struct cancelled {
    stage_queue *q;
    stage_future *about;
    int rc[6];
    void *v;
} cancelled;

static void *cancelled_body(void *arg)
{
    cancelled *c = arg;

    c->rc[0] = t_until_cancelled(c->about);
    c->rc[1] = stage_queue_put(c->q, ITEM(0, 1), 0);
    c->rc[2] = stage_queue_put(c->q, ITEM(0, 1), STAGE_FOREVER);
    c->rc[3] = stage_queue_get(c->q, &c->v, STAGE_FOREVER);
    c->rc[4] = stage_queue_try_put(c->q, ITEM(0, 2));
    c->rc[5] = stage_queue_try_get(c->q, &c->v);
    return NULL;
}

START_TEST(test_cancelled_task)
{
    int where;

    for (where = 0; where < ON_MAIN + 1; where++) {
        cancelled c = {stage_queue_new(1, NULL), NULL, {0}, NULL};

        t_run_cancelled(where, NULL, cancelled_body, &c, &c.about);
        ck_assert_int_eq(c.rc[0], ECANCELED);
        ck_assert_int_eq(c.rc[1], ECANCELED);
        ck_assert_int_eq(c.rc[2], ECANCELED);
        ck_assert_int_eq(c.rc[3], ECANCELED);
        ck_assert_int_eq(c.rc[4], 0);
        ck_assert_int_eq(c.rc[5], 0);
        ck_assert_ptr_eq(c.v, ITEM(0, 2));
        ck_assert_int_eq(stage_queue_length(c.q), 0);
        stage_queue_unref(c.q);
    }
}
END_TEST

/* ---- Races: timeout or cancel against the waker (HACKING, rule 4) ------- */

#define RACE_N 200

typedef struct race {
    stage_queue *q;
    pthread_barrier_t go, done;
    int put;       /* the racing call is a put (else a get) */
    int n;
    int rc[RACE_N];
    void *v[RACE_N];
} race;

/* Plain thread: RACE_N calls with a tiny timeout, each racing main. */
static void *race_timed(void *arg)
{
    race *r = arg;
    int k;

    for (k = 0; k < r->n; k++) {
        pthread_barrier_wait(&r->go);
        r->v[k] = r->put ? ITEM(1, k) : NULL;
        r->rc[k] = r->put ? stage_queue_put(r->q, r->v[k], 0.0005)
                          : stage_queue_get(r->q, &r->v[k], 0.0005);
        pthread_barrier_wait(&r->done);
    }
    return NULL;
}

static void race_pause(int k)
{
    struct timespec ts = {0, (k % 4) * 200 * 1000};

    nanosleep(&ts, NULL);
}

/* A fresh queue of capacity 1 and a plain thread running fn(r). */
static pthread_t race_begin(race *r, int put, void *(*fn)(void *))
{
    r->q = stage_queue_new(1, NULL);
    r->put = put;
    r->n = t_slow() ? RACE_N / 10 : RACE_N;
    pthread_barrier_init(&r->go, NULL, 2);
    pthread_barrier_init(&r->done, NULL, 2);
    return t_thread_start(fn, r);
}

static void race_end(race *r, pthread_t th)
{
    t_thread_join(th);
    pthread_barrier_destroy(&r->go);
    pthread_barrier_destroy(&r->done);
    stage_queue_unref(r->q);
}

/* A get that times out as a put arrives either got the item, or left it
 * in the queue: never both, never neither. */
START_TEST(test_race_timed_get)
{
    static race r;
    pthread_t th = race_begin(&r, 0, race_timed);
    int k;

    for (k = 0; k < r.n; k++) {
        pthread_barrier_wait(&r.go);
        race_pause(k);
        ck_assert_int_eq(stage_queue_put(r.q, ITEM(0, k), 0), 0);
        pthread_barrier_wait(&r.done);
        if (r.rc[k] == 0) {
            ck_assert_ptr_eq(r.v[k], ITEM(0, k));
            ck_assert_int_eq(stage_queue_length(r.q), 0);
        } else {
            void *v = NULL;

            ck_assert_int_eq(r.rc[k], ETIMEDOUT);
            ck_assert_int_eq(stage_queue_try_get(r.q, &v), 0);
            ck_assert_ptr_eq(v, ITEM(0, k));
        }
    }
    race_end(&r, th);
}
END_TEST

/* A put that times out as a get makes room either got in, or did not. */
START_TEST(test_race_timed_put)
{
    static race r;
    pthread_t th = race_begin(&r, 1, race_timed);
    int k;

    for (k = 0; k < r.n; k++) {
        void *v = NULL;

        ck_assert_int_eq(stage_queue_put(r.q, ITEM(0, k), 0), 0);
        pthread_barrier_wait(&r.go);
        race_pause(k);
        ck_assert_int_eq(stage_queue_get(r.q, &v, STAGE_FOREVER), 0);
        ck_assert_ptr_eq(v, ITEM(0, k));
        pthread_barrier_wait(&r.done);
        if (r.rc[k] == 0) {
            ck_assert_int_eq(stage_queue_try_get(r.q, &v), 0);
            ck_assert_ptr_eq(v, ITEM(1, k));
        } else {
            ck_assert_int_eq(r.rc[k], ETIMEDOUT);
            ck_assert_int_eq(stage_queue_length(r.q), 0);
        }
    }
    race_end(&r, th);
}
END_TEST

/* Plain thread: puts item k when main cancels getter k. */
static void *race_putter(void *arg)
{
    race *r = arg;
    int k;

    for (k = 0; k < r->n; k++) {
        pthread_barrier_wait(&r->go);
        stage_queue_put(r->q, ITEM(0, k), STAGE_FOREVER);
        pthread_barrier_wait(&r->done);
    }
    return NULL;
}

/* A get cancelled as a put arrives either got the item, or left it. */
START_TEST(test_race_cancelled_get)
{
    static race r;
    pthread_t th = race_begin(&r, 0, race_putter);
    t_host h;
    int k;

    t_host_start(&h);
    for (k = 0; k < r.n; k++) {
        blocked b;
        stage_future *f;
        int cancel;

        /* Getters on a thread of their own, or on the host's loop. */
        blocked_init(&b, r.q, 0, NULL);
        f = blocked_start(&b, k % 2 ? ON_HOST : ON_THREAD, &h);
        race_pause(k);
        pthread_barrier_wait(&r.go);
        cancel = stage_future_cancel(f);
        pthread_barrier_wait(&r.done);
        /* EALREADY: the getter got its item and finished first. */
        ck_assert(cancel == 0 || (cancel == EALREADY && b.rc == 0));
        t_finish(f, cancel == 0 ? STAGE_CANCELLED : STAGE_DONE);
        if (b.rc == 0) {
            ck_assert_ptr_eq(b.v, ITEM(0, k));
            ck_assert_int_eq(stage_queue_length(r.q), 0);
        } else {
            void *v = NULL;

            ck_assert_int_eq(b.rc, ECANCELED);
            ck_assert_int_eq(stage_queue_try_get(r.q, &v), 0);
            ck_assert_ptr_eq(v, ITEM(0, k));
        }
    }
    t_host_stop(&h);
    race_end(&r, th);
}
END_TEST

/* ---- Conservation: 4 producers x 4 consumers ----------------------------- */

#define NPROD 4
#define NCONS 4
#define PER_PROD 25000

typedef struct flow {
    stage_queue *q;
    long n;                          /* items per producer */
    atomic_uchar seen[NPROD][PER_PROD];
} flow;

typedef struct prod {
    flow *fl;
    int id;
    int rc;
} prod;

typedef struct cons {
    flow *fl;
    long got;
    long bad;     /* out of a producer's order, or not an item */
    long last[NPROD];
    int rc;
} cons;

static void *producer(void *arg)
{
    prod *p = arg;
    long s;

    p->rc = 0;
    for (s = 0; s < p->fl->n && p->rc == 0; s++)
        p->rc = stage_queue_put(p->fl->q, ITEM(p->id, s), STAGE_FOREVER);
    return NULL;
}

static void *consumer(void *arg)
{
    cons *c = arg;
    void *v;
    int i;

    for (i = 0; i < NPROD; i++)
        c->last[i] = -1;
    while ((c->rc = stage_queue_get(c->fl->q, &v, STAGE_FOREVER)) == 0) {
        int p = ITEM_P(v);
        long s = ITEM_S(v);

        if (p < 0 || p >= NPROD || s >= c->fl->n || s <= c->last[p]) {
            c->bad++;
            continue;
        }
        c->last[p] = s;
        atomic_fetch_add(&c->fl->seen[p][s], 1);
        c->got++;
    }
    return NULL;
}

static void conservation(size_t capacity)
{
    static flow fl;
    /* Producers and consumers: threads, main's coroutines, host's. */
    static const int pw[NPROD] = {ON_THREAD, ON_MAIN, ON_HOST, ON_THREAD};
    static const int cw[NCONS] = {ON_MAIN, ON_THREAD, ON_HOST, ON_THREAD};
    prod p[NPROD];
    cons c[NCONS];
    stage_future *fp[NPROD], *fc[NCONS];
    t_host h;
    long total = 0, s;
    int i;

    memset(&fl, 0, sizeof fl);
    fl.q = stage_queue_new(capacity, NULL);
    fl.n = t_slow() ? PER_PROD / 50 : PER_PROD;
    t_host_start(&h);
    for (i = 0; i < NCONS; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].fl = &fl;
        fc[i] = t_start(cw[i], &h, consumer, &c[i]);
    }
    for (i = 0; i < NPROD; i++) {
        p[i].fl = &fl;
        p[i].id = i;
        p[i].rc = -1;
        fp[i] = t_start(pw[i], &h, producer, &p[i]);
    }
    for (i = 0; i < NPROD; i++) {
        t_finish(fp[i], STAGE_DONE);
        ck_assert_msg(p[i].rc == 0, "producer %d: %d", i, p[i].rc);
    }
    ck_assert_int_eq(stage_queue_close(fl.q), 0);
    for (i = 0; i < NCONS; i++) {
        t_finish(fc[i], STAGE_DONE);
        ck_assert_msg(c[i].rc == EPIPE, "consumer %d: %d", i, c[i].rc);
        ck_assert_msg(c[i].bad == 0, "consumer %d: %ld out of order", i,
                      c[i].bad);
        total += c[i].got;
    }
    t_host_stop(&h);
    for (i = 0; i < NPROD; i++)
        for (s = 0; s < fl.n; s++)
            ck_assert_msg(atomic_load(&fl.seen[i][s]) == 1,
                          "capacity %zu: item %d/%ld seen %d times", capacity,
                          i, s, (int)atomic_load(&fl.seen[i][s]));
    ck_assert_int_eq(total, NPROD * fl.n);
    ck_assert_int_eq(stage_queue_length(fl.q), 0);
    stage_queue_unref(fl.q);
}

START_TEST(test_conservation_1) { conservation(1); }
END_TEST

START_TEST(test_conservation_2) { conservation(2); }
END_TEST

START_TEST(test_conservation_1024) { conservation(1024); }
END_TEST

static Suite *queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *tc;

    tc = t_tcase(s, "basics", 10);
    tcase_add_test(tc, test_new_ref_unref);
    tcase_add_test(tc, test_einval);
    tcase_add_test(tc, test_fifo_capacity);
    tcase_add_test(tc, test_timeouts);
    tcase_add_test(tc, test_ownership);
    tcase_add_test(tc, test_close_drains);

    tc = t_tcase(s, "blocked", 10);
    tcase_add_test(tc, test_close_wakes_blocked);
    tcase_add_test(tc, test_putters_fifo);
    tcase_add_test(tc, test_handover);
    tcase_add_test(tc, test_timed_out_get_never_consumes);
    tcase_add_test(tc, test_cancelled_get_never_consumes);
    tcase_add_test(tc, test_stopped_put_never_enqueues);
    tcase_add_test(tc, test_cancelled_task);

    tc = t_tcase(s, "race", 30);
    tcase_add_test(tc, test_race_timed_get);
    tcase_add_test(tc, test_race_timed_put);
    tcase_add_test(tc, test_race_cancelled_get);

    tc = t_tcase(s, "conservation", 60);
    tcase_add_test(tc, test_conservation_1);
    tcase_add_test(tc, test_conservation_2);
    tcase_add_test(tc, test_conservation_1024);
    return s;
}

T_MAIN(queue_suite)
