/* SPDX-License-Identifier: MIT */
/*
 * check_server.c - control-inversion servers: every error code; calls from
 * threads, from main's coroutines and from another loop's coroutines,
 * processed one at a time on the thread that calls stage_server_process,
 * oldest first; what the handler's outcomes become for the client; a reply
 * settled later; a client that times out or is cancelled while queued
 * (withdrawn, never handled) or while being handled (it returns only after
 * the handler); close (ECANCELED, EPIPE); stage_server_wait; destructors
 * exactly once.
 */
#include "stages.h"
#include "streams.h"

/* ---- A recording handler ---------------------------------------------------- */

enum {
    M_RESOLVE,      /* resolve with t_val(n + 1) */
    M_RETURN_ERR,   /* return EIO */
    M_RETURN_NEG,   /* return -1 */
    M_FAIL,         /* fail the reply with EBADMSG, return 0 */
    M_CANCEL,       /* cancel the reply, return 0 */
    M_NOTHING,      /* return 0, reply untouched */
    M_KEEP,         /* keep a reference, return 0: settled later */
    M_GATE,         /* open in_handler, wait for the gate, then resolve */
    M_RESOLVE_ERR   /* resolve, then return EIO anyway */
};

typedef struct hst {
    atomic_int calls;     /* handler runs */
    atomic_int ud_freed;  /* user_data destructor runs */
    atomic_int res_freed; /* reply values destroyed */
    int mode;
    stage_future *in_handler; /* M_GATE: opened on entry */
    stage_future *gate;       /* M_GATE: waited for */
    stage_future *kept;       /* M_KEEP: the reply */
    stage_server *srv_seen;
    int order[16];            /* request numbers, in handling order */
    pid_t tid;                /* the handler's thread */
} hst;

static void hst_init(hst *h, int mode)
{
    memset(h, 0, sizeof *h);
    atomic_init(&h->calls, 0);
    atomic_init(&h->ud_freed, 0);
    atomic_init(&h->res_freed, 0);
    h->mode = mode;
}

static void hst_free(void *p)
{
    hst *h = p;

    atomic_fetch_add(&h->ud_freed, 1);
}

/* The client's request: on the client's stack. */
typedef struct creq {
    int n;
} creq;

static int handler(stage_server *srv, void *request, stage_future *reply,
                   void *user_data)
{
    hst *h = user_data;
    creq *rq = request;
    int k = atomic_fetch_add(&h->calls, 1);

    h->srv_seen = srv;
    h->tid = t_gettid();
    if (k < 16)
        h->order[k] = rq->n;
    switch (h->mode) {
    case M_RETURN_ERR:
        return EIO;
    case M_RETURN_NEG:
        return -1;
    case M_FAIL:
        return stage_future_fail(reply, EBADMSG, "bad %d", rq->n);
    case M_CANCEL:
        return stage_future_cancel(reply);
    case M_NOTHING:
        return 0;
    case M_KEEP:
        h->kept = stage_future_ref(reply);
        return 0;
    case M_GATE:
        t_latch_open(h->in_handler);
        stage_future_wait(h->gate, 60.0 * t_tol());
        break;
    default:
        break;
    }
    /* Reads the request after the gate: the client is still there. */
    stage_future_resolve(reply, t_val_new(&h->res_freed, rq->n + 1),
                         t_val_free);
    return h->mode == M_RESOLVE_ERR ? EIO : 0;
}

static stage_server *new_server(hst *h)
{
    stage_server *srv = stage_server_new(handler, h, hst_free);

    ck_assert_ptr_nonnull(srv);
    return srv;
}

/* ---- A client --------------------------------------------------------------- */

typedef struct client {
    stage_server *srv;
    int n;
    double timeout;
    int no_reply;        /* pass reply NULL */
    stage_future *about; /* opened right before the call */
    stage_future *done;  /* opened right after the call (may be NULL) */
    int rc;
    intptr_t got;        /* the reply's id */
    double elapsed;
} client;

static void client_init(client *c, stage_server *srv, int n, double timeout)
{
    memset(c, 0, sizeof *c);
    c->srv = srv;
    c->n = n;
    c->timeout = timeout;
    c->rc = -1;
}

static void *client_body(void *arg)
{
    client *c = arg;
    creq rq = {c->n};
    void *v = NULL;
    double t0;

    t_about(c->about);
    t0 = t_time();
    c->rc = stage_server_call(c->srv, &rq, c->timeout,
                              c->no_reply ? NULL : &v);
    c->elapsed = t_time() - t0;
    if (c->done != NULL)
        t_latch_open(c->done);
    if (c->rc == 0 && v != NULL) {
        c->got = ((t_val *)v)->id;
        t_val_free(v); /* transferred to us */
    }
    return NULL;
}

/* Wait (from main) until a request is pending. */
static void pending(stage_server *srv)
{
    ck_assert_int_eq(stage_server_wait(srv, T_LONG), 0);
}

/* A thread running stage_server_process once. */
static void *process_body(void *arg)
{
    return (void *)(intptr_t)stage_server_process(arg);
}

/* ---- API ------------------------------------------------------------------- */

START_TEST(test_einval)
{
    hst h;
    stage_server *srv;
    void *v = &v;

    hst_init(&h, M_RESOLVE);
    errno = 0;
    ck_assert_ptr_null(stage_server_new(NULL, &h, hst_free));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(atomic_load(&h.ud_freed), 0);
    srv = new_server(&h);
    ck_assert_ptr_null(stage_server_ref(NULL));
    stage_server_unref(NULL);
    ck_assert_int_eq(stage_server_call(NULL, NULL, 0, &v), EINVAL);
    ck_assert_int_eq(stage_server_call(srv, NULL, NAN, &v), EINVAL);
    ck_assert_ptr_eq(v, &v);
    ck_assert_int_eq(stage_server_process(NULL), EINVAL);
    ck_assert_int_eq(stage_server_wait(NULL, 0), EINVAL);
    ck_assert_int_eq(stage_server_wait(srv, NAN), EINVAL);
    ck_assert_int_eq(stage_server_close(NULL), EINVAL);
    /* Nothing pending: process returns at once, wait times out. */
    ck_assert_int_eq(stage_server_process(srv), EAGAIN);
    ck_assert_int_eq(stage_server_wait(srv, 0), ETIMEDOUT);
    {
        double t0 = t_time(), el;

        ck_assert_int_eq(stage_server_wait(srv, 0.03), ETIMEDOUT);
        el = t_time() - t0;
        ck_assert_double_ge(el, 0.03);
        ck_assert_double_lt(el, 0.03 + 1.0 * t_tol());
    }
    /* timeout 0: nobody can answer at once; the request is withdrawn. */
    ck_assert_int_eq(stage_server_call(srv, NULL, 0, &v), ETIMEDOUT);
    ck_assert_int_eq(stage_server_process(srv), EAGAIN);
    ck_assert_int_eq(atomic_load(&h.calls), 0);
    ck_assert_ptr_eq(stage_server_ref(srv), srv);
    stage_server_unref(srv);
    ck_assert_int_eq(atomic_load(&h.ud_freed), 0);
    stage_server_unref(srv);
    ck_assert_int_eq(atomic_load(&h.ud_freed), 1);
}
END_TEST

/* A client on a thread, in a coroutine of main's loop, in a coroutine of
 * another thread's loop: the handler runs on the processing thread (main),
 * with the request, the server and user_data; the client gets the value. */
START_TEST(test_call_anywhere)
{
    hst h;
    stage_server *srv;
    t_host host;
    int where;

    hst_init(&h, M_RESOLVE);
    srv = new_server(&h);
    t_host_start(&host);
    for (where = 0; where < ON_N; where++) {
        client c;
        stage_future *f;

        client_init(&c, srv, 10 * where, STAGE_FOREVER);
        f = t_start(where, &host, client_body, &c);
        pending(srv);
        ck_assert_int_eq(stage_server_process(srv), 0);
        t_finish(f, STAGE_DONE);
        ck_assert_msg(c.rc == 0, "%s: %d", t_where_name[where], c.rc);
        ck_assert_int_eq(c.got, 10 * where + 1);
        ck_assert_int_eq(h.tid, t_gettid());
        ck_assert_ptr_eq(h.srv_seen, srv);
        ck_assert_int_eq(stage_server_process(srv), EAGAIN);
    }
    t_host_stop(&host);
    ck_assert_int_eq(atomic_load(&h.calls), ON_N);
    ck_assert_int_eq(atomic_load(&h.res_freed), ON_N); /* by the clients */
    stage_server_unref(srv);
    ck_assert_int_eq(atomic_load(&h.ud_freed), 1);
}
END_TEST

/* Oldest request first; one per process; many clients at once. */
START_TEST(test_order_and_many)
{
    hst h;
    stage_server *srv;
    client c[12];
    stage_future *f[12];
    t_host host;
    int i, handled = 0;

    hst_init(&h, M_RESOLVE);
    srv = new_server(&h);
    /* Coroutines of main's loop queue in the order they run: spawn order. */
    for (i = 0; i < 4; i++) {
        client_init(&c[i], srv, i, STAGE_FOREVER);
        f[i] = t_start(ON_MAIN, NULL, client_body, &c[i]);
    }
    ck_assert_int_eq(stage_yield(), 0);
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(stage_server_process(srv), 0);
        ck_assert_int_eq(h.order[i], i);
    }
    for (i = 0; i < 4; i++) {
        t_finish(f[i], STAGE_DONE);
        ck_assert_int_eq(c[i].got, i + 1);
    }
    /* Threads and another loop's coroutines, all at once. */
    t_host_start(&host);
    for (i = 0; i < 12; i++) {
        client_init(&c[i], srv, 100 + i, STAGE_FOREVER);
        f[i] = t_start(i % 2 ? ON_THREAD : ON_HOST, &host, client_body,
                       &c[i]);
    }
    while (handled < 12) {
        pending(srv);
        ck_assert_int_eq(stage_server_process(srv), 0);
        handled++;
    }
    for (i = 0; i < 12; i++) {
        t_finish(f[i], STAGE_DONE);
        ck_assert_int_eq(c[i].rc, 0);
        ck_assert_int_eq(c[i].got, 101 + i);
    }
    t_host_stop(&host);
    ck_assert_int_eq(stage_server_process(srv), EAGAIN);
    ck_assert_int_eq(atomic_load(&h.res_freed), 16);
    stage_server_unref(srv);
}
END_TEST

/* What the handler does, and what the client gets. */
START_TEST(test_outcomes)
{
    static const struct {
        int mode, rc;
    } cases[] = {
        {M_RETURN_ERR, EIO},  {M_RETURN_NEG, EINVAL}, {M_FAIL, EBADMSG},
        {M_CANCEL, ECANCELED}, {M_NOTHING, EPROTO},   {M_RESOLVE_ERR, 0},
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hst h;
        stage_server *srv;
        client c;
        stage_future *f;

        hst_init(&h, cases[i].mode);
        srv = new_server(&h);
        client_init(&c, srv, 7, STAGE_FOREVER);
        f = t_start(ON_MAIN, NULL, client_body, &c);
        pending(srv);
        ck_assert_int_eq(stage_server_process(srv), 0);
        t_finish(f, STAGE_DONE);
        ck_assert_msg(c.rc == cases[i].rc, "mode %d: %d", cases[i].mode,
                      c.rc);
        ck_assert_int_eq(c.got, cases[i].rc ? 0 : 8);
        ck_assert_int_eq(atomic_load(&h.res_freed), cases[i].rc ? 0 : 1);
        stage_server_unref(srv);
        ck_assert_int_eq(atomic_load(&h.ud_freed), 1);
    }
}
END_TEST

/* The handler keeps the reply and settles it later, from another thread;
 * the client waits for it.  With reply NULL, the value goes with the
 * reply future, through the handler's destructor. */
static void *resolve_later(void *arg)
{
    hst *h = arg;

    stage_future_resolve(h->kept, t_val_new(&h->res_freed, 55), t_val_free);
    stage_future_unref(h->kept);
    return NULL;
}

START_TEST(test_settle_later_and_no_reply)
{
    hst h;
    stage_server *srv;
    client c;
    stage_future *f, *t;

    hst_init(&h, M_KEEP);
    srv = new_server(&h);
    client_init(&c, srv, 1, STAGE_FOREVER);
    f = t_start(ON_THREAD, NULL, client_body, &c);
    pending(srv);
    ck_assert_int_eq(stage_server_process(srv), 0);
    ck_assert_ptr_nonnull(h.kept);
    t_settle();
    ck_assert_int_eq(stage_future_state(f), STAGE_PENDING);
    ck_assert_int_eq(stage_server_wait(srv, 0), ETIMEDOUT); /* not pending */
    ck_assert_int_eq(stage_thread_spawn(resolve_later, &h, NULL, &t), 0);
    t_finish(f, STAGE_DONE);
    t_finish(t, STAGE_DONE);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(c.got, 55);

    h.mode = M_RESOLVE;
    atomic_store(&h.res_freed, 0);
    client_init(&c, srv, 2, STAGE_FOREVER);
    c.no_reply = 1;
    f = t_start(ON_MAIN, NULL, client_body, &c);
    pending(srv);
    ck_assert_int_eq(stage_server_process(srv), 0);
    t_finish(f, STAGE_DONE);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(atomic_load(&h.res_freed), 1);
    stage_server_unref(srv);
}
END_TEST

/* ---- Giving up ---------------------------------------------------------------- */

/* A queued request whose client times out is withdrawn: never handled. */
START_TEST(test_timeout_queued)
{
    hst h;
    stage_server *srv;
    t_host host;
    int where;

    hst_init(&h, M_RESOLVE);
    srv = new_server(&h);
    t_host_start(&host);
    for (where = 0; where < ON_N; where++) {
        client c;
        stage_future *f;

        client_init(&c, srv, 1, 0.05);
        f = t_start(where, &host, client_body, &c);
        t_finish(f, STAGE_DONE);
        ck_assert_int_eq(c.rc, ETIMEDOUT);
        ck_assert_double_ge(c.elapsed, 0.05);
        ck_assert_double_lt(c.elapsed, 0.05 + 1.0 * t_tol());
        ck_assert_int_eq(stage_server_process(srv), EAGAIN);
        ck_assert_int_eq(stage_server_wait(srv, 0), ETIMEDOUT);
    }
    t_host_stop(&host);
    ck_assert_int_eq(atomic_load(&h.calls), 0);
    stage_server_unref(srv);
}
END_TEST

/* A queued request whose client is cancelled: ECANCELED, withdrawn. */
START_TEST(test_cancel_queued)
{
    hst h;
    stage_server *srv;
    t_host host;
    int where;

    hst_init(&h, M_RESOLVE);
    srv = new_server(&h);
    t_host_start(&host);
    for (where = 0; where < ON_N; where++) {
        client c;
        stage_future *f;

        client_init(&c, srv, 1, STAGE_FOREVER);
        f = t_start(where, &host, client_body, &c);
        pending(srv);
        ck_assert_int_eq(stage_future_cancel(f), 0);
        t_finish(f, STAGE_CANCELLED);
        ck_assert_int_eq(c.rc, ECANCELED);
        ck_assert_int_eq(stage_server_process(srv), EAGAIN);
    }
    t_host_stop(&host);
    ck_assert_int_eq(atomic_load(&h.calls), 0);
    stage_server_unref(srv);
}
END_TEST

/* A thread running stage_server_wait, then stage_server_process. */
static void *serve_one(void *arg)
{
    stage_server *srv = arg;
    int rc = stage_server_wait(srv, 60.0 * t_tol());

    if (rc == 0)
        rc = stage_server_process(srv);
    return (void *)(intptr_t)rc;
}

/* A client whose timeout passes while the handler has its request: it
 * returns only after the handler did (the handler still reads the
 * request), with ETIMEDOUT, and the reply's value is destroyed, once.
 * (A thread client scheduled late may see the reply before its timeout:
 * then it gets the value.)  Whether the server takes the request before
 * the client's timeout passes is up to the scheduler: when the client
 * wins, the round is run again with a longer timeout. */
START_TEST(test_timeout_while_handled)
{
    hst h;
    stage_server *srv;
    double timeout;

    hst_init(&h, M_GATE);
    srv = new_server(&h);
    for (timeout = 0.05;; timeout *= 2) {
        client c;
        stage_future *f, *proc;
        void *prc = NULL;

        ck_assert_double_lt(timeout, 10.0);
        h.in_handler = t_latch();
        h.gate = t_latch();
        ck_assert_int_eq(stage_thread_spawn(serve_one, srv, NULL, &proc), 0);
        client_init(&c, srv, 4, timeout);
        c.done = h.in_handler; /* also opened if the client is first */
        f = t_start(ON_THREAD, NULL, client_body, &c);
        t_done(h.in_handler);
        if (atomic_load(&h.calls) == 0) {
            /* The client gave up before the server took the request. */
            t_finish(f, STAGE_DONE);
            ck_assert_int_eq(c.rc, ETIMEDOUT);
            /* The server waits still (ECANCELED), or saw the request
             * and found it withdrawn (EAGAIN). */
            stage_future_cancel(proc);
            t_done(proc);
            if (stage_future_state(proc) == STAGE_DONE) {
                ck_assert_int_eq(stage_future_get(proc, 0, &prc), 0);
                ck_assert_int_eq((int)(intptr_t)prc, EAGAIN);
            }
            stage_future_unref(proc);
            stage_future_unref(h.in_handler);
            stage_future_unref(h.gate);
            continue;
        }
        /* The handler has the request: let the client's deadline pass. */
        ck_assert_int_eq(stage_sleep(timeout + 0.1), 0);
        t_settle();
        ck_assert_int_eq(stage_future_state(f), STAGE_PENDING);
        t_latch_open(h.gate);
        t_finish(f, STAGE_DONE);
        ck_assert_msg(c.rc == ETIMEDOUT || (c.rc == 0 && c.got == 5), "rc %d",
                      c.rc);
        ck_assert_double_ge(c.elapsed, timeout);
        ck_assert_int_eq(stage_future_get(proc, T_LONG, &prc), 0);
        ck_assert_int_eq((int)(intptr_t)prc, 0);
        ck_assert_int_eq(atomic_load(&h.res_freed), 1);
        stage_future_unref(proc);
        stage_future_unref(h.in_handler);
        stage_future_unref(h.gate);
        break;
    }
    ck_assert_int_eq(atomic_load(&h.calls), 1);
    ck_assert_int_eq(stage_server_process(srv), EAGAIN);
    stage_server_unref(srv);
}
END_TEST

/* A client whose task is cancelled while the handler has its request, on
 * a thread and in another loop's coroutine: it returns only after the
 * handler did, with ECANCELED; the reply's value is destroyed, once. */
START_TEST(test_cancel_while_handled)
{
    hst h;
    stage_server *srv;
    t_host host;
    int where;

    hst_init(&h, M_GATE);
    srv = new_server(&h);
    t_host_start(&host);
    for (where = 0; where < ON_N; where += 2) { /* ON_THREAD, ON_HOST */
        client c;
        stage_future *f, *proc;
        void *prc = NULL;

        h.in_handler = t_latch();
        h.gate = t_latch();
        atomic_store(&h.res_freed, 0);
        client_init(&c, srv, 4, STAGE_FOREVER);
        f = t_start(where, &host, client_body, &c);
        pending(srv);
        ck_assert_int_eq(stage_thread_spawn(process_body, srv, NULL, &proc),
                         0);
        t_done(h.in_handler);
        ck_assert_int_eq(stage_future_cancel(f), 0);
        t_settle();
        ck_assert_int_eq(stage_future_state(f), STAGE_PENDING);
        t_latch_open(h.gate);
        t_finish(f, STAGE_CANCELLED);
        ck_assert_int_eq(c.rc, ECANCELED);
        ck_assert_int_eq(stage_future_get(proc, T_LONG, &prc), 0);
        ck_assert_int_eq((int)(intptr_t)prc, 0);
        stage_future_unref(proc);
        /* Destroyed by the client's unref, before its call returned. */
        ck_assert_int_eq(atomic_load(&h.res_freed), 1);
        stage_future_unref(h.in_handler);
        stage_future_unref(h.gate);
    }
    t_host_stop(&host);
    ck_assert_int_eq(atomic_load(&h.calls), 2);
    stage_server_unref(srv);
}
END_TEST

/* ---- Close and wait ------------------------------------------------------------ */

/* Close: a pending call returns ECANCELED (its request never handled);
 * later calls EPIPE, as do process and wait; close again does nothing. */
START_TEST(test_close)
{
    hst h;
    stage_server *srv;
    t_host host;
    client late;
    int where;
    void *v = &v;

    t_host_start(&host);
    for (where = 0; where < ON_N; where++) {
        client c;
        stage_future *f;

        hst_init(&h, M_RESOLVE);
        srv = new_server(&h);
        client_init(&c, srv, where, STAGE_FOREVER);
        f = t_start(where, &host, client_body, &c);
        pending(srv);
        ck_assert_int_eq(stage_server_close(srv), 0);
        t_finish(f, STAGE_DONE);
        ck_assert_msg(c.rc == ECANCELED, "%s: %d", t_where_name[where],
                      c.rc);
        ck_assert_int_eq(atomic_load(&h.calls), 0);
        client_init(&late, srv, 9, STAGE_FOREVER);
        client_body(&late);
        ck_assert_int_eq(late.rc, EPIPE);
        ck_assert_int_eq(stage_server_call(srv, NULL, 0, &v), EPIPE);
        ck_assert_ptr_eq(v, &v);
        ck_assert_int_eq(stage_server_process(srv), EPIPE);
        ck_assert_int_eq(stage_server_wait(srv, 0), EPIPE);
        ck_assert_int_eq(stage_server_wait(srv, STAGE_FOREVER), EPIPE);
        ck_assert_int_eq(stage_server_close(srv), 0);
        ck_assert_int_eq(atomic_load(&h.ud_freed), 0);
        stage_server_unref(srv);
        ck_assert_int_eq(atomic_load(&h.ud_freed), 1);
    }
    t_host_stop(&host);
}
END_TEST

typedef struct waiter {
    stage_server *srv;
    stage_future *about;
    double timeout;
    int rc;
} waiter;

static void *wait_body(void *arg)
{
    waiter *w = arg;

    t_about(w->about);
    w->rc = stage_server_wait(w->srv, w->timeout);
    return NULL;
}

/* stage_server_wait from a thread, main's coroutines and another loop's
 * coroutines: woken by a call from elsewhere (0), by close (EPIPE), by
 * cancellation (ECANCELED); a request being handled is not pending. */
START_TEST(test_wait)
{
    hst h;
    stage_server *srv;
    t_host host;
    int where;

    hst_init(&h, M_RESOLVE);
    srv = new_server(&h);
    t_host_start(&host);
    for (where = 0; where < ON_N; where++) {
        waiter w = {srv, NULL, STAGE_FOREVER, -1};
        client c;
        stage_future *wf, *cf;

        wf = t_start_about(where, &host, wait_body, &w, &w.about);
        t_settle();
        ck_assert_int_eq(stage_future_state(wf), STAGE_PENDING);
        client_init(&c, srv, 3, STAGE_FOREVER);
        cf = t_start(ON_THREAD, NULL, client_body, &c);
        t_finish(wf, STAGE_DONE);
        ck_assert_int_eq(w.rc, 0);
        /* Still pending for everyone until processed. */
        ck_assert_int_eq(stage_server_wait(srv, 0), 0);
        ck_assert_int_eq(stage_server_process(srv), 0);
        t_finish(cf, STAGE_DONE);
        ck_assert_int_eq(c.got, 4);
        ck_assert_int_eq(stage_server_wait(srv, 0), ETIMEDOUT);

        /* Cancelled while waiting. */
        w.rc = -1;
        wf = t_start_about(where, &host, wait_body, &w, &w.about);
        t_settle();
        ck_assert_int_eq(stage_future_cancel(wf), 0);
        t_finish(wf, STAGE_CANCELLED);
        ck_assert_int_eq(w.rc, ECANCELED);
    }
    /* Close wakes every waiter with EPIPE. */
    {
        waiter w[ON_N];
        stage_future *wf[ON_N];

        for (where = 0; where < ON_N; where++) {
            w[where] = (waiter){srv, NULL, STAGE_FOREVER, -1};
            wf[where] = t_start_about(where, &host, wait_body, &w[where],
                                      &w[where].about);
        }
        t_settle();
        ck_assert_int_eq(stage_server_close(srv), 0);
        for (where = 0; where < ON_N; where++) {
            t_finish(wf[where], STAGE_DONE);
            ck_assert_int_eq(w[where].rc, EPIPE);
        }
    }
    t_host_stop(&host);
    stage_server_unref(srv);
}
END_TEST

/* Close while a request is being handled: the handler finishes and its
 * client gets the reply; the others are cancelled. */
START_TEST(test_close_while_handled)
{
    hst h;
    stage_server *srv;
    client a, b;
    stage_future *fa, *fb, *proc;
    void *prc = NULL;

    hst_init(&h, M_GATE);
    h.in_handler = t_latch();
    h.gate = t_latch();
    srv = new_server(&h);
    client_init(&a, srv, 1, STAGE_FOREVER);
    fa = t_start(ON_THREAD, NULL, client_body, &a);
    pending(srv);
    ck_assert_int_eq(stage_thread_spawn(process_body, srv, NULL, &proc), 0);
    t_done(h.in_handler);
    client_init(&b, srv, 2, STAGE_FOREVER);
    fb = t_start(ON_THREAD, NULL, client_body, &b);
    pending(srv);
    ck_assert_int_eq(stage_server_close(srv), 0);
    t_finish(fb, STAGE_DONE);
    ck_assert_int_eq(b.rc, ECANCELED);
    ck_assert_int_eq(stage_future_state(fa), STAGE_PENDING);
    t_latch_open(h.gate);
    t_finish(fa, STAGE_DONE);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(a.got, 2);
    ck_assert_int_eq(stage_future_get(proc, T_LONG, &prc), 0);
    ck_assert_int_eq((int)(intptr_t)prc, 0);
    stage_future_unref(proc);
    ck_assert_int_eq(atomic_load(&h.calls), 1);
    stage_server_unref(srv);
    stage_future_unref(h.in_handler);
    stage_future_unref(h.gate);
}
END_TEST

static Suite *server_suite(void)
{
    Suite *s = suite_create("server");
    TCase *tc;

    tc = t_tcase(s, "api", 10);
    tcase_add_test(tc, test_einval);
    tcase_add_test(tc, test_call_anywhere);
    tcase_add_test(tc, test_order_and_many);
    tcase_add_test(tc, test_outcomes);
    tcase_add_test(tc, test_settle_later_and_no_reply);

    tc = t_tcase(s, "give-up", 10);
    tcase_add_test(tc, test_timeout_queued);
    tcase_add_test(tc, test_cancel_queued);
    tcase_add_test(tc, test_timeout_while_handled);
    tcase_add_test(tc, test_cancel_while_handled);

    tc = t_tcase(s, "close", 10);
    tcase_add_test(tc, test_close);
    tcase_add_test(tc, test_wait);
    tcase_add_test(tc, test_close_while_handled);
    return s;
}

T_MAIN(server_suite)
