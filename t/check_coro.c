/* SPDX-License-Identifier: MIT */
/*
 * check_coro.c - tasks: stage_coro_spawn and stage_thread_spawn, results and
 * their destructors, detached tasks, stack sizes, stage_task_self,
 * stage_task_fail (code and message reach the waiters), EDEADLK on one's own
 * future, task futures that only the task may settle, callbacks on task
 * futures, and a thread task's loop freed at thread exit.
 */
#include "common.h"

#include <fcntl.h>

/* ---- Simple bodies ------------------------------------------------------ */

typedef struct rec {
    atomic_int ran;        /* body entries */
    atomic_int freed;      /* destructor runs of the returned value */
    stage_future *self;    /* stage_task_self() seen by the body */
    int cancelled;         /* stage_task_cancelled() seen by the body */
    pthread_t thread;      /* thread the body ran on */
    intptr_t ret_id;       /* id of the value to return (0: return NULL) */
} rec;

static void rec_init(rec *r, intptr_t ret_id)
{
    memset(r, 0, sizeof *r);
    atomic_init(&r->ran, 0);
    atomic_init(&r->freed, 0);
    r->ret_id = ret_id;
    r->cancelled = -1;
}

static void *rec_body(void *arg)
{
    rec *r = arg;

    atomic_fetch_add(&r->ran, 1);
    r->self = stage_task_self();
    r->cancelled = stage_task_cancelled();
    r->thread = pthread_self();
    return r->ret_id ? t_val_new(&r->freed, r->ret_id) : NULL;
}

START_TEST(test_spawn_runs_later)
{
    rec r;
    stage_future *task = NULL;
    void *v = NULL;

    rec_init(&r, 11);
    ck_assert_int_eq(stage_coro_spawn(NULL, rec_body, &r, t_val_free, 0, &task),
                     0);
    ck_assert_ptr_nonnull(task);
    /* asyncio create_task semantics: nothing ran yet. */
    ck_assert_int_eq(atomic_load(&r.ran), 0);
    ck_assert_int_eq(stage_future_state(task), STAGE_PENDING);
    ck_assert_uint_eq(stage_loop_count(stage_loop_current()), 1);
    ck_assert_int_eq(stage_yield(), 0);
    ck_assert_int_eq(atomic_load(&r.ran), 1);
    ck_assert_int_eq(stage_future_wait(task, 5.0 * t_tol()), 0);
    ck_assert_uint_eq(stage_loop_count(stage_loop_current()), 0);
    ck_assert_int_eq(stage_future_state(task), STAGE_DONE);
    ck_assert_ptr_eq(r.self, task);
    ck_assert_int_eq(r.cancelled, 0);
    ck_assert(pthread_equal(r.thread, pthread_self()));
    ck_assert_int_eq(stage_future_get(task, 0, &v), 0);
    ck_assert_int_eq(((t_val *)v)->id, 11);
    /* Never taken: destroyed at the last unref, once. */
    ck_assert_int_eq(atomic_load(&r.freed), 0);
    stage_future_unref(task);
    ck_assert_int_eq(atomic_load(&r.freed), 1);
    ck_assert_int_eq(atomic_load(&r.ran), 1);
}
END_TEST

START_TEST(test_spawn_take_result)
{
    rec r;
    stage_future *task = NULL;
    void *v = NULL;

    rec_init(&r, 12);
    ck_assert_int_eq(stage_coro_spawn(NULL, rec_body, &r, t_val_free, 0, &task),
                     0);
    ck_assert_int_eq(stage_future_take(task, &v), EAGAIN);
    ck_assert_int_eq(
        stage_loop_run(stage_loop_current(), task, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_take(task, &v), 0);
    ck_assert_int_eq(((t_val *)v)->id, 12);
    stage_future_unref(task);
    ck_assert_int_eq(atomic_load(&r.freed), 0);
    t_val_free(v);
    ck_assert_int_eq(atomic_load(&r.freed), 1);
}
END_TEST

START_TEST(test_spawn_einval)
{
    stage_future *task = NULL;

    ck_assert_int_eq(stage_coro_spawn(NULL, NULL, NULL, NULL, 0, &task),
                     EINVAL);
    ck_assert_int_eq(stage_coro_spawn(NULL, NULL, NULL, NULL, 0, NULL),
                     EINVAL);
    ck_assert_int_eq(stage_thread_spawn(NULL, NULL, NULL, &task), EINVAL);
    ck_assert_int_eq(stage_thread_spawn(NULL, NULL, NULL, NULL), EINVAL);
    ck_assert_uint_eq(stage_loop_count(stage_loop_current()), 0);
}
END_TEST

START_TEST(test_spawn_detached)
{
    rec r;

    rec_init(&r, 13);
    ck_assert_int_eq(stage_coro_spawn(NULL, rec_body, &r, t_val_free, 0, NULL),
                     0);
    ck_assert_uint_eq(stage_loop_count(stage_loop_current()), 1);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(atomic_load(&r.ran), 1);
    /* A detached task still is a task. */
    ck_assert_ptr_nonnull(r.self);
    /* Its result is destroyed when it ends. */
    ck_assert_int_eq(atomic_load(&r.freed), 1);
}
END_TEST

START_TEST(test_spawn_explicit_loop)
{
    rec r;
    stage_future *task = NULL;

    rec_init(&r, 0);
    ck_assert_int_eq(stage_coro_spawn(stage_loop_current(), rec_body, &r, NULL,
                                      0, &task),
                     0);
    ck_assert_int_eq(stage_future_wait(task, 5.0 * t_tol()), 0);
    ck_assert_int_eq(atomic_load(&r.ran), 1);
    ck_assert_int_eq(stage_future_state(task), STAGE_DONE);
    stage_future_unref(task);
}
END_TEST

/* ---- Stack sizes -------------------------------------------------------- */

typedef struct stack_arg {
    size_t use; /* bytes of stack to touch */
    long sum;
} stack_arg;

/* Use about 4 KiB of stack per level; not a tail call (the sum after the
 * call keeps every frame alive). */
static __attribute__((noinline)) long stack_recurse(size_t depth)
{
    volatile unsigned char buf[4096];
    long sum;

    buf[0] = (unsigned char)depth;
    buf[sizeof buf - 1] = (unsigned char)(depth >> 8);
    if (depth == 0)
        return buf[0];
    sum = stack_recurse(depth - 1);
    return sum + buf[sizeof buf - 1] + buf[0];
}

static void *stack_body(void *arg)
{
    stack_arg *a = arg;

    a->sum = stack_recurse(a->use / 4096);
    return NULL;
}

START_TEST(test_stack_sizes)
{
    /* stack_size 1 rounds up to the 16 KiB minimum; 100000 rounds up to a
     * page multiple; 0 is 256 KiB; 1 MiB holds 700 KiB of frames. */
    static const struct {
        size_t stack;
        size_t use;
    } cases[] = {
        {1, 4095},       {16 * 1024, 4095},         {100000, 48 * 1024},
        {0, 160 * 1024}, {1024 * 1024, 700 * 1024},
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stack_arg a = {cases[i].use, -1};
        stage_future *task = NULL;

        ck_assert_int_eq(stage_coro_spawn(NULL, stack_body, &a, NULL,
                                          cases[i].stack, &task),
                         0);
        ck_assert_int_eq(stage_future_wait(task, 5.0 * t_tol()), 0);
        ck_assert_int_eq(stage_future_state(task), STAGE_DONE);
        ck_assert_int_ge(a.sum, 0);
        stage_future_unref(task);
    }
}
END_TEST

/* ---- stage_task_self / stage_task_cancelled outside tasks --------------- */

static void *plain_thread_self(void *arg)
{
    rec *r = arg;

    r->self = stage_task_self();
    r->cancelled = stage_task_cancelled();
    return NULL;
}

START_TEST(test_self_outside_task)
{
    rec r;

    ck_assert_ptr_null(stage_task_self());
    ck_assert_int_eq(stage_task_cancelled(), 0);
    /* Outside a task stage_task_fail does nothing and returns NULL. */
    ck_assert_ptr_null(stage_task_fail(EIO, "not a task %d", 1));
    ck_assert_ptr_null(stage_task_self());
    rec_init(&r, 0);
    r.self = (stage_future *)&r;
    t_thread_join(t_thread_start(plain_thread_self, &r));
    ck_assert_ptr_null(r.self);
    ck_assert_int_eq(r.cancelled, 0);
}
END_TEST

/* ---- Thread tasks ------------------------------------------------------- */

START_TEST(test_thread_spawn)
{
    rec r;
    stage_future *task = NULL;
    void *v = NULL;

    rec_init(&r, 21);
    ck_assert_int_eq(stage_thread_spawn(rec_body, &r, t_val_free, &task), 0);
    ck_assert_ptr_nonnull(task);
    ck_assert_int_eq(stage_future_get(task, 5.0 * t_tol(), &v), 0);
    ck_assert_int_eq(((t_val *)v)->id, 21);
    ck_assert_int_eq(atomic_load(&r.ran), 1);
    ck_assert_ptr_eq(r.self, task);
    ck_assert_int_eq(r.cancelled, 0);
    ck_assert(!pthread_equal(r.thread, pthread_self()));
    ck_assert_int_eq(atomic_load(&r.freed), 0);
    stage_future_unref(task);
    /* The thread may drop its own reference just after settling. */
    ck_assert_int_eq(t_wait_count(&r.freed, 1, 5.0), 1);
    ck_assert_int_eq(atomic_load(&r.freed), 1);
}
END_TEST

/* A detached thread task runs; its result is destroyed when it ends. */
typedef struct det {
    stage_future *ran; /* resolved by the body */
    atomic_int freed;
} det;

static void *det_body(void *arg)
{
    det *d = arg;

    stage_future_resolve(d->ran, NULL, NULL);
    return t_val_new(&d->freed, 1);
}

START_TEST(test_thread_detached)
{
    det d;

    d.ran = stage_future_new();
    atomic_init(&d.freed, 0);
    ck_assert_int_eq(stage_thread_spawn(det_body, &d, t_val_free, NULL), 0);
    ck_assert_int_eq(stage_future_wait(d.ran, 5.0 * t_tol()), 0);
    /* The result is destroyed as the thread ends: wait for that condition
     * with a deadline (nothing else to synchronise on for a detached task). */
    ck_assert_int_eq(t_wait_count(&d.freed, 1, 5.0), 1);
    stage_future_unref(d.ran);
}
END_TEST

/* A thread task's blocking call runs the thread's own loop. */
static void *ten_body(void *arg)
{
    (void)arg;
    stage_yield();
    return (void *)(intptr_t)10;
}

static void *thread_runs_coro_body(void *arg)
{
    stage_future *c = NULL;
    void *v = NULL;
    int *rc = arg;

    *rc = stage_coro_spawn(NULL, ten_body, NULL, NULL, 0, &c);
    if (*rc != 0)
        return NULL;
    *rc = stage_future_get(c, STAGE_FOREVER, &v);
    stage_future_unref(c);
    return v;
}

START_TEST(test_thread_task_runs_its_coroutines)
{
    stage_future *task = NULL;
    void *v = NULL;
    int rc = -1;

    ck_assert_int_eq(
        stage_thread_spawn(thread_runs_coro_body, &rc, NULL, &task), 0);
    ck_assert_int_eq(stage_future_get(task, 5.0 * t_tol(), &v), 0);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq((intptr_t)v, 10);
    stage_future_unref(task);
}
END_TEST

/* A thread task's loop is freed when the thread ends: its blocked coroutine
 * is cancelled, its not-yet-started one never runs; both before the thread
 * task's future settles. */
typedef struct exitloop {
    stage_future *never;   /* never resolved */
    stage_future *blocked; /* task: started, blocked on `never` */
    stage_future *unstarted;
    rec unstarted_rec;
    int blocked_rc;
    int spawn_rc;
} exitloop;

static void *exit_blocked_body(void *arg)
{
    exitloop *e = arg;

    e->blocked_rc = stage_future_wait(e->never, STAGE_FOREVER);
    return NULL;
}

static void *exit_thread_body(void *arg)
{
    exitloop *e = arg;

    e->spawn_rc = stage_coro_spawn(NULL, exit_blocked_body, e, NULL, 0,
                                   &e->blocked);
    if (e->spawn_rc == 0)
        stage_yield(); /* the coroutine starts and blocks */
    if (e->spawn_rc == 0)
        e->spawn_rc = stage_coro_spawn(NULL, rec_body, &e->unstarted_rec,
                                       NULL, 0, &e->unstarted);
    return NULL; /* loop freed at thread exit */
}

START_TEST(test_thread_exit_frees_loop)
{
    exitloop e;
    stage_future *task = NULL;

    memset(&e, 0, sizeof e);
    rec_init(&e.unstarted_rec, 0);
    e.never = stage_future_new();
    e.blocked_rc = -1;
    ck_assert_int_eq(stage_thread_spawn(exit_thread_body, &e, NULL, &task), 0);
    ck_assert_int_eq(stage_future_wait(task, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_state(task), STAGE_DONE);
    ck_assert_int_eq(e.spawn_rc, 0);
    ck_assert_int_eq(e.blocked_rc, ECANCELED);
    ck_assert_int_eq(stage_future_state(e.blocked), STAGE_CANCELLED);
    ck_assert_int_eq(stage_future_state(e.unstarted), STAGE_CANCELLED);
    ck_assert_int_eq(atomic_load(&e.unstarted_rec.ran), 0);
    ck_assert_int_eq(stage_future_state(e.never), STAGE_PENDING);
    stage_future_unref(e.blocked);
    stage_future_unref(e.unstarted);
    stage_future_unref(e.never);
    stage_future_unref(task);
}
END_TEST

/* ---- stage_task_fail ---------------------------------------------------- */

typedef struct failer {
    int mode;
    atomic_int freed;
    void *ret;
} failer;

static void *fail_body(void *arg)
{
    failer *f = arg;

    switch (f->mode) {
    case 0: /* code + message, returns NULL */
        return stage_task_fail(EIO, "disk %d is %s", 3, "gone");
    case 1: /* last call wins */
        stage_task_fail(EIO, "first");
        stage_task_fail(EPROTO, "second %s", "call");
        return NULL;
    case 2: /* err <= 0 records EINVAL */
        return stage_task_fail(0, "zero");
    case 3: /* fmt may be NULL */
        return stage_task_fail(ENOENT, NULL);
    case 4: /* a returned value is destroyed, the task still fails */
        stage_task_fail(ERANGE, "with value");
        return t_val_new(&f->freed, 4);
    default:
        return stage_task_fail(-1, "negative");
    }
}

static void check_failed(stage_future *task, int err, const char *msg)
{
    void *v = &v;

    ck_assert_int_eq(stage_future_wait(task, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_state(task), STAGE_FAILED);
    ck_assert_int_eq(stage_future_error(task), err);
    ck_assert_int_eq(stage_future_get(task, 0, &v), err);
    ck_assert_ptr_eq(v, &v);
    ck_assert_int_eq(stage_future_take(task, &v), err);
    if (msg != NULL)
        ck_assert_str_eq(stage_future_message(task), msg);
}

static void run_fail_modes(int on_thread)
{
    static const struct {
        int err;
        const char *msg;
    } want[] = {
        {EIO, "disk 3 is gone"}, {EPROTO, "second call"}, {EINVAL, NULL},
        {ENOENT, NULL},          {ERANGE, "with value"},  {EINVAL, NULL},
    };
    int mode;

    for (mode = 0; mode < 6; mode++) {
        failer f;
        stage_future *task = NULL;

        f.mode = mode;
        atomic_init(&f.freed, 0);
        if (on_thread)
            ck_assert_int_eq(
                stage_thread_spawn(fail_body, &f, t_val_free, &task), 0);
        else
            ck_assert_int_eq(
                stage_coro_spawn(NULL, fail_body, &f, t_val_free, 0, &task),
                0);
        check_failed(task, want[mode].err, want[mode].msg);
        stage_future_unref(task);
        if (mode == 4)
            ck_assert_int_eq(t_wait_count(&f.freed, 1, 5.0), 1);
        ck_assert_int_eq(atomic_load(&f.freed), mode == 4 ? 1 : 0);
    }
}

START_TEST(test_task_fail_coro)
{
    run_fail_modes(0);
}
END_TEST

START_TEST(test_task_fail_thread)
{
    run_fail_modes(1);
}
END_TEST

/* A coroutine waiter gets the code and message of a failed thread task. */
typedef struct failwait {
    stage_future *task;
    int rc;
    char msg[64];
} failwait;

static void *failwait_body(void *arg)
{
    failwait *w = arg;
    const char *m;

    w->rc = stage_future_get(w->task, STAGE_FOREVER, NULL);
    m = stage_future_message(w->task);
    snprintf(w->msg, sizeof w->msg, "%s", m != NULL ? m : "(null)");
    return NULL;
}

START_TEST(test_task_fail_reaches_coroutine)
{
    failer f;
    failwait w;
    stage_future *co = NULL;

    f.mode = 0;
    atomic_init(&f.freed, 0);
    memset(&w, 0, sizeof w);
    w.rc = -1;
    ck_assert_int_eq(stage_thread_spawn(fail_body, &f, NULL, &w.task), 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, failwait_body, &w, NULL, 0, &co),
                     0);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), co, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(w.rc, EIO);
    ck_assert_str_eq(w.msg, "disk 3 is gone");
    stage_future_unref(co);
    stage_future_unref(w.task);
}
END_TEST

/* A failure of a detached task is printed on stderr. */
START_TEST(test_detached_failure_reported)
{
    failer f;
    char path[] = "/tmp/check_coro_stderr.XXXXXX";
    char buf[512], want[256];
    int fd, saved;
    ssize_t n;

    f.mode = 0;
    atomic_init(&f.freed, 0);
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    fflush(stderr);
    saved = dup(2);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    ck_assert_int_eq(stage_coro_spawn(NULL, fail_body, &f, NULL, 0, NULL), 0);
    ck_assert_int_eq(
        stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()), 0);
    fflush(stderr);
    ck_assert_int_eq(dup2(saved, 2), 2);
    close(saved);
    n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    ck_assert_int_ge(n, 0);
    buf[n] = '\0';
    snprintf(want, sizeof want,
             "libstage: unobserved task failure: %s: disk 3 is gone",
             strerror(EIO));
    ck_assert_msg(strstr(buf, want) != NULL, "stderr was \"%s\", want \"%s\"",
                  buf, want);
}
END_TEST

/* ---- Task futures ------------------------------------------------------- */

/* Only the task settles its future. */
START_TEST(test_task_future_is_read_only)
{
    rec r;
    atomic_int freed = 0;
    stage_future *task = NULL;
    t_val *val = t_val_new(&freed, 1);

    rec_init(&r, 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, rec_body, &r, NULL, 0, &task), 0);
    ck_assert_int_eq(stage_future_resolve(task, val, t_val_free), EINVAL);
    ck_assert_int_eq(stage_future_fail(task, EIO, "x"), EINVAL);
    ck_assert_int_eq(stage_future_state(task), STAGE_PENDING);
    ck_assert_int_eq(stage_future_wait(task, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_state(task), STAGE_DONE);
    ck_assert_int_eq(stage_future_resolve(task, val, t_val_free), EINVAL);
    ck_assert_int_eq(stage_future_fail(task, EIO, "x"), EINVAL);
    /* Cancelling a finished task: EALREADY. */
    ck_assert_int_eq(stage_future_cancel(task), EALREADY);
    ck_assert_int_eq(stage_future_state(task), STAGE_DONE);
    ck_assert_int_eq(atomic_load(&r.ran), 1);
    stage_future_unref(task);
    ck_assert_int_eq(atomic_load(&freed), 0);
    t_val_free(val);
}
END_TEST

/* A task waiting on its own future: EDEADLK. */
typedef struct selfwait {
    int is_coro;
    int wait_rc, get_rc, run_rc;
} selfwait;

static void *selfwait_body(void *arg)
{
    selfwait *s = arg;
    void *v = NULL;

    s->wait_rc = stage_future_wait(stage_task_self(), 1.0);
    s->get_rc = stage_future_get(stage_task_self(), STAGE_FOREVER, &v);
    /* In a coroutine, stage_loop_run(until) is stage_future_wait(until). */
    if (s->is_coro)
        s->run_rc =
            stage_loop_run(stage_loop_current(), stage_task_self(), 1.0);
    return NULL;
}

START_TEST(test_wait_own_future_edeadlk)
{
    selfwait co_s = {1, -1, -1, -1}, th_s = {0, -1, -1, -1};
    stage_future *co = NULL, *th = NULL;

    ck_assert_int_eq(
        stage_coro_spawn(NULL, selfwait_body, &co_s, NULL, 0, &co), 0);
    ck_assert_int_eq(stage_thread_spawn(selfwait_body, &th_s, NULL, &th), 0);
    ck_assert_int_eq(stage_future_wait(co, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_wait(th, 5.0 * t_tol()), 0);
    ck_assert_int_eq(co_s.wait_rc, EDEADLK);
    ck_assert_int_eq(co_s.get_rc, EDEADLK);
    ck_assert_int_eq(co_s.run_rc, EDEADLK);
    ck_assert_int_eq(th_s.wait_rc, EDEADLK);
    ck_assert_int_eq(th_s.get_rc, EDEADLK);
    ck_assert_int_eq(stage_future_state(co), STAGE_DONE);
    ck_assert_int_eq(stage_future_state(th), STAGE_DONE);
    stage_future_unref(co);
    stage_future_unref(th);
}
END_TEST

/* Callbacks on a task future run after the body returned, on the task's
 * thread. */
typedef struct taskcb {
    stage_future *go;   /* resolved once the callback is registered */
    stage_future *gone; /* resolved by the destroy function */
    atomic_int body_done;
    atomic_int calls;
    atomic_int destroys;
    int done_at_call;   /* body_done seen by the callback */
    stage_state state_at_call;
    pthread_t body_thread, cb_thread;
} taskcb;

static void *taskcb_body(void *arg)
{
    taskcb *t = arg;

    t->body_thread = pthread_self();
    if (stage_future_wait(t->go, STAGE_FOREVER) != 0)
        return NULL;
    atomic_store(&t->body_done, 1);
    return (void *)t;
}

static void taskcb_cb(stage_future *f, void *ud)
{
    taskcb *t = ud;

    t->done_at_call = atomic_load(&t->body_done);
    t->state_at_call = stage_future_state(f);
    t->cb_thread = pthread_self();
    atomic_fetch_add(&t->calls, 1);
}

static void taskcb_destroy(void *ud)
{
    taskcb *t = ud;

    atomic_fetch_add(&t->destroys, 1);
    stage_future_resolve(t->gone, NULL, NULL);
}

static void taskcb_init(taskcb *t)
{
    memset(t, 0, sizeof *t);
    t->go = stage_future_new();
    t->gone = stage_future_new();
    atomic_init(&t->body_done, 0);
    atomic_init(&t->calls, 0);
    atomic_init(&t->destroys, 0);
    t->done_at_call = -1;
}

START_TEST(test_task_callbacks)
{
    taskcb tc, tt;
    stage_future *co = NULL, *th = NULL;

    taskcb_init(&tc);
    taskcb_init(&tt);
    ck_assert_int_eq(stage_coro_spawn(NULL, taskcb_body, &tc, NULL, 0, &co),
                     0);
    ck_assert_int_eq(stage_thread_spawn(taskcb_body, &tt, NULL, &th), 0);
    ck_assert_int_eq(
        stage_future_add_callback(co, taskcb_cb, &tc, taskcb_destroy), 0);
    ck_assert_int_eq(
        stage_future_add_callback(th, taskcb_cb, &tt, taskcb_destroy), 0);
    t_latch_open(tc.go);
    t_latch_open(tt.go);
    ck_assert_int_eq(stage_future_wait(co, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_wait(th, 5.0 * t_tol()), 0);
    /* Whether waiters wake before or after the callbacks ran is not
     * specified: wait for the destroy functions (they run after the cb). */
    ck_assert_int_eq(stage_future_wait(tc.gone, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_wait(tt.gone, 5.0 * t_tol()), 0);
    ck_assert_int_eq(atomic_load(&tc.calls), 1);
    ck_assert_int_eq(atomic_load(&tt.calls), 1);
    ck_assert_int_eq(tc.done_at_call, 1);
    ck_assert_int_eq(tt.done_at_call, 1);
    ck_assert_int_eq(tc.state_at_call, STAGE_DONE);
    ck_assert_int_eq(tt.state_at_call, STAGE_DONE);
    ck_assert(pthread_equal(tc.cb_thread, pthread_self()));
    ck_assert(pthread_equal(tt.cb_thread, tt.body_thread));
    ck_assert_int_eq(atomic_load(&tc.destroys), 1);
    stage_future_unref(co);
    stage_future_unref(th);
    ck_assert_int_eq(atomic_load(&tc.destroys), 1);
    ck_assert_int_eq(atomic_load(&tt.destroys), 1);
    ck_assert_int_eq(atomic_load(&tt.calls), 1);
    stage_future_unref(tc.go);
    stage_future_unref(tt.go);
    stage_future_unref(tc.gone);
    stage_future_unref(tt.gone);
}
END_TEST

/* ---- Coroutines inside coroutines --------------------------------------- */

static void *inner_body(void *arg)
{
    stage_yield();
    return (void *)((intptr_t)arg * 2);
}

static void *outer_body(void *arg)
{
    stage_future *c = NULL, *t = NULL;
    void *v1 = NULL, *v2 = NULL;
    intptr_t n = (intptr_t)arg;

    if (stage_coro_spawn(NULL, inner_body, (void *)n, NULL, 0, &c) != 0)
        return NULL;
    if (stage_thread_spawn(inner_body, (void *)(n + 1), NULL, &t) != 0) {
        stage_future_unref(c);
        return NULL;
    }
    if (stage_future_get(c, STAGE_FOREVER, &v1) != 0 ||
        stage_future_get(t, STAGE_FOREVER, &v2) != 0)
        v1 = NULL;
    else
        v1 = (void *)((intptr_t)v1 + (intptr_t)v2);
    stage_future_unref(c);
    stage_future_unref(t);
    return v1;
}

/* Ticks while the outer coroutine waits: waiting suspends only the caller. */
static void *ticker_body(void *arg)
{
    stage_future *stop = arg;
    intptr_t ticks = 0;

    while (stage_future_state(stop) == STAGE_PENDING) {
        ticks++;
        stage_sleep(0.001);
    }
    return (void *)ticks;
}

START_TEST(test_nested_spawn)
{
    stage_future *outer = NULL, *tick = NULL;
    void *v = NULL;

    ck_assert_int_eq(
        stage_coro_spawn(NULL, outer_body, (void *)(intptr_t)5, NULL, 0,
                         &outer),
        0);
    ck_assert_int_eq(
        stage_coro_spawn(NULL, ticker_body, outer, NULL, 0, &tick), 0);
    ck_assert_int_eq(stage_future_get(outer, 5.0 * t_tol(), &v), 0);
    ck_assert_int_eq((intptr_t)v, 5 * 2 + 6 * 2);
    ck_assert_int_eq(stage_future_get(tick, 5.0 * t_tol(), &v), 0);
    ck_assert_int_ge((intptr_t)v, 1);
    stage_future_unref(outer);
    stage_future_unref(tick);
}
END_TEST

/* ---- stage_yield interleaves -------------------------------------------- */

typedef struct ilv {
    char log[16];
    int n;
} ilv;

typedef struct ilv_arg {
    ilv *l;
    char id;
    int rc;
} ilv_arg;

static void *ilv_body(void *arg)
{
    ilv_arg *a = arg;
    int i;

    for (i = 0; i < 3; i++) {
        a->l->log[a->l->n++] = a->id;
        a->rc |= stage_yield();
    }
    return NULL;
}

START_TEST(test_yield_interleaves)
{
    ilv l;
    ilv_arg a = {&l, 'A', 0}, b = {&l, 'B', 0};

    memset(&l, 0, sizeof l);
    ck_assert_int_eq(stage_coro_spawn(NULL, ilv_body, &a, NULL, 0, NULL), 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, ilv_body, &b, NULL, 0, NULL), 0);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()),
                     0);
    ck_assert_str_eq(l.log, "ABABAB");
    ck_assert_int_eq(a.rc, 0);
    ck_assert_int_eq(b.rc, 0);
}
END_TEST

static Suite *coro_suite(void)
{
    Suite *s = suite_create("coro");
    TCase *tc;

    tc = t_tcase(s, "spawn", 10);
    tcase_add_test(tc, test_spawn_runs_later);
    tcase_add_test(tc, test_spawn_take_result);
    tcase_add_test(tc, test_spawn_einval);
    tcase_add_test(tc, test_spawn_detached);
    tcase_add_test(tc, test_spawn_explicit_loop);
    tcase_add_test(tc, test_stack_sizes);
    tcase_add_test(tc, test_self_outside_task);
    tcase_add_test(tc, test_yield_interleaves);
    tcase_add_test(tc, test_nested_spawn);

    tc = t_tcase(s, "thread", 10);
    tcase_add_test(tc, test_thread_spawn);
    tcase_add_test(tc, test_thread_detached);
    tcase_add_test(tc, test_thread_task_runs_its_coroutines);
    tcase_add_test(tc, test_thread_exit_frees_loop);

    tc = t_tcase(s, "fail", 10);
    tcase_add_test(tc, test_task_fail_coro);
    tcase_add_test(tc, test_task_fail_thread);
    tcase_add_test(tc, test_task_fail_reaches_coroutine);
    tcase_add_test(tc, test_detached_failure_reported);

    tc = t_tcase(s, "future", 10);
    tcase_add_test(tc, test_task_future_is_read_only);
    tcase_add_test(tc, test_wait_own_future_edeadlk);
    tcase_add_test(tc, test_task_callbacks);
    return s;
}

T_MAIN(coro_suite)
