/* SPDX-License-Identifier: MIT */
/*
 * server.c - control inversion (threaded_async's Server and Client): clients
 * issue requests and are suspended until the server, on a thread of its
 * choosing and at a moment of its choosing, processes them one at a time.
 *
 * A request (struct req) lives on the calling client's stack, with the
 * reply future the client waits on.  Its state, under the server's lock:
 *
 *     QUEUED --process--> TAKEN --handler returned--> HANDLED
 *        |                  the handler borrows the request; the client
 *        |                  does not return before HANDLED
 *        +--client's timeout or cancellation--> withdrawn (unlinked)
 *        +--close--> CLOSED (the reply is cancelled: ECANCELED)
 *
 * So a request is never lost (a client that gives up early takes it back
 * untouched) and never handled after its client left: once the handler
 * has it, the client waits for the handler to return, even when its own
 * timeout passes or its task is cancelled meanwhile.  That wait is bounded
 * by the handler's run, and it uses a shielded waiter, one that
 * cancellation does not decide (stage__waiter_init_shielded).
 *
 * The reply is a plain future: the handler settles it, now or later (it
 * may keep a reference); the client takes its value.
 *
 * Threads blocked in stage_server_wait are listed on `waiters`; every new
 * request wakes them all (it is "a request is pending", not a hand-over),
 * and close wakes them with EPIPE (in w->item).
 *
 * Lock order: the server's lock, then a loop's (waking).  No future's lock
 * is taken under it: replies are settled and unreferenced after it is
 * released, and waiters are initialised before it is taken.
 */
#include "common-int.h"
#include "loop-int.h"
#include "stream-int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

enum { QUEUED, TAKEN, HANDLED, CLOSED };

struct req {
    stage__node link;       /* srv->pending, while QUEUED */
    void *request;          /* borrowed from the client */
    stage_future *reply;    /* the client's reference */
    int state;              /* QUEUED...CLOSED */
    stage__waiter *handled; /* the client, waiting for HANDLED */
};

struct stage_server {
    /* head.lock protects pending, npending, waiters (and their fields),
     * closed, and the state and handled fields of every request. */
    stage__head head;
    stage_handler_fn handler;
    void *user_data;
    stage_destroy_fn user_data_destroy;
    stage__list pending; /* struct req.link, oldest first */
    size_t npending;
    stage__list waiters; /* stage_server_wait */
    int closed;
};

stage_server *stage_server_new(stage_handler_fn handler, void *user_data,
                               stage_destroy_fn user_data_destroy)
{
    if (!handler) {
        errno = EINVAL;
        return NULL;
    }
    stage_server *srv = stage__head_new(sizeof *srv);
    if (!srv)
        return NULL;
    srv->handler = handler;
    srv->user_data = user_data;
    srv->user_data_destroy = user_data_destroy;
    stage__list_init(&srv->pending);
    stage__list_init(&srv->waiters);
    return srv;
}

stage_server *stage_server_ref(stage_server *srv)
{
    if (srv)
        stage__head_ref(&srv->head);
    return srv;
}

void stage_server_unref(stage_server *srv)
{
    if (!srv || !stage__head_unref(&srv->head))
        return;
    /* Every caller holds a reference for its whole call. */
    stage__assert(stage__list_empty(&srv->pending));
    stage__assert(stage__list_empty(&srv->waiters));
    if (srv->user_data_destroy)
        srv->user_data_destroy(srv->user_data);
    stage__head_free(&srv->head);
}

/* Under the lock: tell every stage_server_wait caller `err`. */
static void wake_waiters(stage_server *srv, int err)
{
    stage__waiter *w;
    while ((w = stage__waiter_pop(&srv->waiters)) != NULL) {
        w->item = (void *)(intptr_t)err;
        stage__waiter_wake(w, STAGE__SIGNALLED);
    }
}

/* ---- Client side -------------------------------------------------------- */

/* Called with the lock held and r TAKEN; returns with it released, once
 * the handler has returned.  Not cancellable, no deadline: the handler is
 * using r->request. */
static void wait_handled(stage_server *srv, struct req *r)
{
    stage__waiter w;
    /* The caller's loop exists (stage_server_call made sure): no ENOMEM. */
    int err = stage__waiter_init_shielded(&w);
    stage__assert(err == 0);
    if (r->state == TAKEN) {
        r->handled = &w;
        pthread_mutex_unlock(&srv->head.lock);
        stage__waiter_park(&w, -1); /* only process() decides it */
    } else {
        pthread_mutex_unlock(&srv->head.lock);
    }
    stage__waiter_done(&w);
}

int stage_server_call(stage_server *srv, void *request, double timeout,
                      void **reply)
{
    int64_t deadline;
    if (!srv || stage__deadline(timeout, &deadline))
        return EINVAL;
    stage_future *self = stage__task_current();
    if (self && stage__task_cancel_requested(self))
        return ECANCELED;
    /* The loop every later wait needs, made now, before the request can
     * reach the handler (wait_handled must not fail). */
    int err = 0;
    if (!stage__loop_ensure(&err))
        return err;
    struct req r = {.request = request, .state = QUEUED};
    stage__node_init(&r.link);
    r.reply = stage_future_new();
    if (!r.reply)
        return ENOMEM;

    pthread_mutex_lock(&srv->head.lock);
    if (srv->closed) {
        pthread_mutex_unlock(&srv->head.lock);
        stage_future_unref(r.reply);
        return EPIPE;
    }
    stage__list_push(&srv->pending, &r.link);
    srv->npending++;
    wake_waiters(srv, 0);
    pthread_mutex_unlock(&srv->head.lock);

    double left = timeout;
    if (deadline >= 0) {
        left = (double)(deadline - stage_now()) / 1e9;
        if (left < 0)
            left = 0;
    }
    err = stage_future_wait(r.reply, left);

    pthread_mutex_lock(&srv->head.lock);
    if (r.state == QUEUED) {
        /* Only a failed wait gets here (nobody settles a queued request's
         * reply): withdraw the request, untouched. */
        stage__list_remove(&r.link);
        srv->npending--;
        pthread_mutex_unlock(&srv->head.lock);
    } else if (r.state == TAKEN) {
        wait_handled(srv, &r);
    } else {
        pthread_mutex_unlock(&srv->head.lock);
    }
    if (!err) {
        /* Settled: its value is the caller's now, or goes with the
         * future (reply NULL); a failure or cancellation is the answer. */
        err = reply ? stage_future_take(r.reply, reply)
                    : stage_future_error(r.reply);
    }
    stage_future_unref(r.reply);
    return err;
}

/* ---- Server side -------------------------------------------------------- */

int stage_server_process(stage_server *srv)
{
    if (!srv)
        return EINVAL;
    pthread_mutex_lock(&srv->head.lock);
    if (srv->closed) {
        pthread_mutex_unlock(&srv->head.lock);
        return EPIPE;
    }
    stage__node *n = stage__list_pop(&srv->pending);
    if (!n) {
        pthread_mutex_unlock(&srv->head.lock);
        return EAGAIN;
    }
    srv->npending--;
    struct req *r = stage__container_of(n, struct req, link);
    r->state = TAKEN;
    void *request = r->request;
    stage_future *reply = stage_future_ref(r->reply);
    pthread_mutex_unlock(&srv->head.lock);

    int rc = srv->handler(srv, request, reply, srv->user_data);
    if (rc != 0) {
        stage_future_fail(reply, rc > 0 ? rc : EINVAL,
                          "the server's handler failed");
    } else if (stage_future_state(reply) == STAGE_PENDING &&
               atomic_load_explicit(&reply->refs, memory_order_acquire) <= 2) {
        /* Pending, and nobody but the client and us holds it: nobody can
         * ever settle it.  Fail it rather than leave the client hanging.
         * (A handler that keeps a reference to settle it later holds a
         * third one.  If that holder settles and drops it right now, this
         * fail finds the reply settled and does nothing.) */
        stage_future_fail(reply, EPROTO,
                          "the server's handler left the reply unsettled");
    }

    /* Ours goes first: the client's reference is then the last one (or
     * the handler's), so a value nobody takes is destroyed before the
     * client's call returns. */
    stage_future_unref(reply);
    /* r is valid until HANDLED is seen: its client waits for that. */
    pthread_mutex_lock(&srv->head.lock);
    r->state = HANDLED;
    stage__waiter *w = r->handled;
    if (w)
        stage__waiter_wake(w, STAGE__SIGNALLED);
    pthread_mutex_unlock(&srv->head.lock);
    return 0;
}

/* One stage_server_wait, as an attempt of stage__wait. */
struct wop {
    stage_server *srv;
    int err;
};

static int attempt(void *arg)
{
    struct wop *op = arg;
    if (op->srv->closed) {
        op->err = EPIPE;
        return 1;
    }
    return op->srv->npending > 0;
}

int stage_server_wait(stage_server *srv, double timeout)
{
    int64_t deadline;
    if (!srv || stage__deadline(timeout, &deadline))
        return EINVAL;
    struct wop op = {srv, 0};
    stage__waiter w;
    int woken;
    int err = stage__wait(&srv->head.lock, &srv->waiters, &w, NULL, deadline,
                          attempt, &op, &woken);
    if (err)
        return err;
    return woken ? (int)(intptr_t)w.item : op.err;
}

int stage_server_close(stage_server *srv)
{
    if (!srv)
        return EINVAL;
    pthread_mutex_lock(&srv->head.lock);
    srv->closed = 1;
    wake_waiters(srv, EPIPE);
    /* One request at a time: its reply is cancelled without the lock
     * (callbacks on it run there), holding a reference of ours, as its
     * client may leave as soon as the state is CLOSED. */
    stage__node *n;
    while ((n = stage__list_pop(&srv->pending)) != NULL) {
        struct req *r = stage__container_of(n, struct req, link);
        srv->npending--;
        r->state = CLOSED;
        stage_future *reply = stage_future_ref(r->reply);
        pthread_mutex_unlock(&srv->head.lock);
        stage_future_cancel(reply);
        stage_future_unref(reply);
        pthread_mutex_lock(&srv->head.lock);
    }
    pthread_mutex_unlock(&srv->head.lock);
    return 0;
}
