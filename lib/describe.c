/* SPDX-License-Identifier: MIT */
/*
 * describe.c - one-line descriptions of futures and tasks, asyncio's repr:
 *
 *     <Task pending name='Task-1' wait_for=<sleep 2.000s, 1.250s left>>
 *     <Task finished name='fetch' result=0x5581c0a4f2a0>
 *     <Task finished name='Task-3' exception=EIO 'disk on fire'>
 *     <Task cancelled name='Task-4'>
 *     <Future pending>
 *
 * What a pending task waits on comes from its current waiter (the future's
 * task_waiter): every waiter records, when it is initialised and before it
 * is attached to its task, a kind and a value or two (stage__waiter_init_for
 * in loop.c).  task_waiter is set and cleared under the future's lock and
 * the record never changes while it is set, so reading it under that lock
 * is consistent, from any thread, and costs the waiting side nothing.
 *
 * A task waiting on a future is described with that future's own state
 * (one level deep: the inner description has no wait_for).  The inner
 * future is referenced under the outer lock (the waiter's caller holds a
 * reference while it waits, so it is alive) and described after that lock
 * is released: a future's lock is never taken under another's.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

/* An output buffer that remembers whether anything was cut off. */
struct out {
    char *buf;
    size_t size, len; /* len < size: buf[len] is always the NUL */
    int truncated;
};

STAGE_PRINTF(2, 3) static void put(struct out *o, const char *fmt, ...)
{
    size_t room = o->size - o->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, room, fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->buf[o->len] = '\0';
        o->truncated = 1;
    } else if ((size_t)n >= room) {
        o->len = o->size - 1;
        o->truncated = 1;
    } else {
        o->len += (size_t)n;
    }
}

/* The symbolic name of an error number ("EIO"), for the usual ones. */
static const struct {
    int err;
    const char *name;
} errnames[] = {
#define E(x) {x, #x}
    E(EPERM),       E(ENOENT),    E(ESRCH),        E(EINTR),
    E(EIO),         E(ENXIO),     E(E2BIG),        E(ENOEXEC),
    E(EBADF),       E(ECHILD),    E(EAGAIN),       E(ENOMEM),
    E(EACCES),      E(EFAULT),    E(EBUSY),        E(EEXIST),
    E(EXDEV),       E(ENODEV),    E(ENOTDIR),      E(EISDIR),
    E(EINVAL),      E(ENFILE),    E(EMFILE),       E(ENOTTY),
    E(EFBIG),       E(ENOSPC),    E(ESPIPE),       E(EROFS),
    E(EMLINK),      E(EPIPE),     E(EDOM),         E(ERANGE),
    E(EDEADLK),     E(ENAMETOOLONG), E(ENOSYS),    E(ENOTEMPTY),
    E(ELOOP),       E(ENOMSG),    E(EOVERFLOW),    E(EILSEQ),
    E(ENOTSUP),     E(ETIMEDOUT), E(ECANCELED),    E(EALREADY),
    E(EINPROGRESS), E(EPROTO),    E(EBADMSG),      E(ENOTCONN),
    E(ECONNREFUSED), E(ECONNRESET), E(ECONNABORTED), E(EADDRINUSE),
    E(ENETUNREACH), E(EHOSTUNREACH), E(EMSGSIZE),  E(ENOTSOCK),
#undef E
};

static void put_error(struct out *o, int err)
{
    for (size_t i = 0; i < sizeof errnames / sizeof errnames[0]; i++)
        if (errnames[i].err == err) {
            put(o, "%s", errnames[i].name);
            return;
        }
    put(o, "errno %d", err);
}

/* What a waiter of kind `kind` waits on (the record copied under lock). */
static void put_wait(struct out *o, int kind, int64_t a, int64_t b)
{
    switch (kind) {
    case STAGE__FOR_SLEEP:
        if (a < 0) {
            put(o, "<sleep forever>");
        } else {
            int64_t left = b - stage_now();
            put(o, "<sleep %.3fs, %.3fs left>", (double)a / 1e9,
                left > 0 ? (double)left / 1e9 : 0.0);
        }
        break;
    case STAGE__FOR_LOOP:
        put(o, "<loop>");
        break;
    case STAGE__FOR_FD:
        put(o, "<fd %lld %s>", (long long)a,
            b == (STAGE_FD_READ | STAGE_FD_WRITE) ? "read|write"
            : b == STAGE_FD_WRITE                 ? "write"
                                                  : "read");
        break;
    case STAGE__FOR_QUEUE_GET:
        put(o, "<queue get>");
        break;
    case STAGE__FOR_QUEUE_PUT:
        put(o, "<queue put>");
        break;
    case STAGE__FOR_EVENT:
        put(o, "<event>");
        break;
    case STAGE__FOR_TUNNEL:
        put(o, "<tunnel>");
        break;
    case STAGE__FOR_GEN_NEXT:
        put(o, "<generator next>");
        break;
    case STAGE__FOR_GEN_YIELD:
        put(o, "<generator yield>");
        break;
    case STAGE__FOR_SCOPE:
        put(o, "<scope close>");
        break;
    case STAGE__FOR_FUTURES:
        put(o, "<futures>");
        break;
    default:
        put(o, "<wait>");
        break;
    }
}

/* Describe f; `nested`: no wait_for (the inside of another description). */
static void describe(struct out *o, stage_future *f, int nested)
{
    stage_future *inner = NULL;
    int kind = STAGE__FOR_NONE;
    int64_t a = 0, b = 0;
    int waiting = 0;

    pthread_mutex_lock(&f->lock);
    int state = atomic_load_explicit(&f->state, memory_order_relaxed);
    static const char *const words[] = {
        [STAGE_PENDING] = "pending",
        [STAGE_DONE] = "finished",
        [STAGE_FAILED] = "finished",
        [STAGE_CANCELLED] = "cancelled",
    };
    const char *word = words[state];
    if (state == STAGE_PENDING && f->is_task &&
        atomic_load_explicit(&f->cancel, memory_order_relaxed))
        word = "cancelling";
    put(o, "<%s %s", f->is_task ? "Task" : "Future", word);
    if (f->name)
        put(o, " name='%s'", f->name);
    else if (f->is_task)
        put(o, " name='Task-%llu'", (unsigned long long)f->id);
    if (state == STAGE_PENDING && !nested && f->task_waiter) {
        const stage__waiter *w = f->task_waiter;
        waiting = 1;
        kind = w->for_kind;
        a = w->for_a;
        b = w->for_b;
        if (kind == STAGE__FOR_FUTURE)
            inner = stage_future_ref((stage_future *)(uintptr_t)w->for_obj);
    }
    pthread_mutex_unlock(&f->lock);

    /* Settled: value, err and msg never change again (state was read
     * under the lock that settling holds). */
    if (state == STAGE_DONE) {
        if (f->value)
            put(o, " result=%p", f->value);
        else
            put(o, " result=NULL");
    } else if (state == STAGE_FAILED) {
        put(o, " exception=");
        put_error(o, f->err);
        if (f->msg)
            put(o, " '%s'", f->msg);
    }
    if (waiting) {
        put(o, " wait_for=");
        if (inner) {
            describe(o, inner, 1);
            stage_future_unref(inner);
        } else {
            put_wait(o, kind, a, b);
        }
    }
    put(o, ">");
}

int stage_future_describe(stage_future *future, char *buf, size_t size)
{
    if (!future || !buf || size == 0)
        return EINVAL;
    struct out o = {buf, size, 0, 0};
    buf[0] = '\0';
    describe(&o, future, 0);
    return o.truncated ? ERANGE : 0;
}
