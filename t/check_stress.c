/* SPDX-License-Identifier: MIT */
/*
 * check_stress.c - the stress suite (issue 8), run by `make check-stress`,
 * not by `make check`.
 *
 *   resolve/cancel/timeout   a resolver, a canceller and a timed waiter
 *                            race on one future, thousands of times;
 *                            exactly one settles it, the value is
 *                            destroyed once, the waiter's answer agrees;
 *   task cancel/timeout      a coroutine task waits with a tiny timeout on
 *                            a future another thread resolves while main
 *                            cancels the task;
 *   queue close              producers and consumers (threads and
 *                            coroutines on two loops) blocked on a small
 *                            queue when it closes: every item is received
 *                            once or destroyed once, every caller wakes;
 *   tunnel churn             readers join and leave while a writer runs:
 *                            each sees an increasing run of items, every
 *                            item is destroyed once;
 *   timer model              coroutines sleep random delays, some are
 *                            cancelled at random moments; wake-ups must
 *                            come in (deadline, arming) order, checked
 *                            against a sorted model (the seed is printed;
 *                            STAGE_TEST_SEED replays it);
 *   signal storm             SIGUSR1 (no SA_RESTART) hammers threads
 *                            blocked in timed waits (condvar and poll
 *                            sleeps, coroutine and thread waits): no wait
 *                            ends early, none hangs;
 *   loop free in flight      a thread frees its loop while other threads
 *                            spawn onto it, wake its coroutines and
 *                            resolve what they wait for.
 *
 * (Scope cancellation during cleanup: the scope module adds its stress
 * case here, in the "scope" test case slot below.)
 *
 * Every test runs in a forked child (Check's fork mode) under a timeout, so
 * a hang fails the test.  Each test's teardown checks that the process is
 * back to its baseline: the same fds, the same threads, and no more than a
 * few extra mappings (glibc keeps a small cache of thread stacks and
 * arenas, so an exact count would be noise; a leaked coroutine stack per
 * iteration would show as hundreds).
 *
 * Duration: STAGE_STRESS_SECONDS per test (default 4; under valgrind a
 * tenth of it).  `make check-stress STAGE_STRESS_SECONDS=60` for a long
 * run.
 */
#include "common.h"
#include "streams.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>

/* ---- Budget and baseline -------------------------------------------------- */

static double budget(void)
{
    const char *e = getenv("STAGE_STRESS_SECONDS");
    double s = e && *e ? strtod(e, NULL) : 4.0;

    if (!(s > 0))
        s = 4.0;
    return t_on_valgrind() ? s / 10 : s;
}

/* A Check timeout that lets a test use its whole budget, and then some. */
static double case_timeout(void)
{
    return 60.0 + 3.0 * budget();
}

/* Open fds among the first 4096 numbers. */
static int count_fds(void)
{
    int n = 0;

    for (int fd = 0; fd < 4096; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    int n = 0, c;

    if (f == NULL)
        return -1;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static int base_fds, base_threads, base_maps;

static void baseline(void)
{
    /* One arena: glibc's threads would otherwise each map a new one for
     * good (musl has neither arenas nor mallopt). */
#ifdef M_ARENA_MAX
    mallopt(M_ARENA_MAX, 1);
#endif
    base_fds = count_fds();
    base_threads = t_thread_count();
    base_maps = count_maps();
}

/* Slack for glibc's cached thread stacks (each a stack and a guard). */
#define MAP_SLACK 48

/* Sanitizer runtimes start background threads of their own, lazily, and
 * map memory of their own (TSan's per-thread and per-fiber state stays
 * mapped): under them, allow two more threads and skip the mapping count.
 * Run TSan with TSAN_OPTIONS=report_thread_leaks=0: task threads are
 * joined lazily (by the next spawn, or at exit, which Check's forked
 * children skip). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define T_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define T_SANITIZED 1
#endif
#endif
#ifndef T_SANITIZED
#define T_SANITIZED 0
#endif
#define THREAD_SLACK (T_SANITIZED ? 2 : 0)

static void back_to_baseline(void)
{
    stage_loop *loop = stage_loop_current();
    double deadline = t_time() + 10.0 * t_tol();
    struct timespec ts = {0, 1000 * 1000};

    ck_assert_ptr_nonnull(loop);
    ck_assert_int_eq(stage_loop_free(loop), 0);
    /* Task threads settle their future just before they exit. */
    while (t_thread_count() > base_threads + THREAD_SLACK &&
           t_time() < deadline)
        nanosleep(&ts, NULL);
    ck_assert_int_le(t_thread_count(), base_threads + THREAD_SLACK);
    ck_assert_int_ge(t_thread_count(), base_threads);
    ck_assert_int_eq(count_fds(), base_fds);
    if (!T_SANITIZED)
        ck_assert_int_le(count_maps(), base_maps + MAP_SLACK);
}

static TCase *stress_case(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, baseline, back_to_baseline);
    tcase_set_timeout(tc, t_timeout(case_timeout()));
    suite_add_tcase(s, tc);
    return tc;
}

/* A cheap per-thread random generator (xorshift64*). */
static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t seed_of(const char *what)
{
    const char *e = getenv("STAGE_TEST_SEED");
    uint64_t seed = e && *e ? strtoull(e, NULL, 0)
                            : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);

    if (seed == 0)
        seed = 1;
    printf("check_stress: %s: seed %llu (STAGE_TEST_SEED=%llu replays it)\n",
           what, (unsigned long long)seed, (unsigned long long)seed);
    fflush(stdout);
    return seed;
}

/* Spin a little (0 .. n iterations): shifts the race window around. */
static void jitter(uint64_t *s, unsigned n)
{
    volatile unsigned k = (unsigned)(rnd(s) % (n + 1));

    while (k > 0)
        k--;
}

/* ---- 1. resolve / cancel / timeout ---------------------------------------- */

/* One round: a future, a resolver thread and a canceller thread started
 * together by a barrier, and main waiting with a tiny timeout. */
typedef struct race {
    pthread_barrier_t go;
    stage_future *f;
    atomic_int destroyed;
    int resolve_rc, cancel_rc;
    atomic_int stop;
    uint64_t seed;
} race;

static void race_destroy(void *p)
{
    race *r = p;

    atomic_fetch_add(&r->destroyed, 1);
}

static void *resolver(void *arg)
{
    race *r = arg;
    uint64_t s = r->seed ^ 0x1234;

    for (;;) {
        pthread_barrier_wait(&r->go);
        if (atomic_load(&r->stop))
            return NULL;
        jitter(&s, 2000);
        r->resolve_rc = stage_future_resolve(r->f, r, race_destroy);
        pthread_barrier_wait(&r->go);
    }
}

static void *canceller(void *arg)
{
    race *r = arg;
    uint64_t s = r->seed ^ 0x5678;

    for (;;) {
        pthread_barrier_wait(&r->go);
        if (atomic_load(&r->stop))
            return NULL;
        jitter(&s, 2000);
        r->cancel_rc = stage_future_cancel(r->f);
        pthread_barrier_wait(&r->go);
    }
}

START_TEST(test_resolve_cancel_timeout)
{
    race r;
    pthread_t a, b;
    double end = t_time() + budget();
    long rounds = 0, timeouts = 0, resolved = 0;

    memset(&r, 0, sizeof r);
    r.seed = seed_of("resolve/cancel/timeout");
    ck_assert_int_eq(pthread_barrier_init(&r.go, NULL, 3), 0);
    a = t_thread_start(resolver, &r);
    b = t_thread_start(canceller, &r);
    while (t_time() < end) {
        int wrc;
        stage_state st;
        void *v = NULL;

        r.f = stage_future_new();
        ck_assert_ptr_nonnull(r.f);
        atomic_store(&r.destroyed, 0);
        pthread_barrier_wait(&r.go);
        wrc = stage_future_wait(r.f, (double)(rnd(&r.seed) % 50) * 1e-6);
        pthread_barrier_wait(&r.go);
        /* Both have returned: exactly one of them settled it. */
        st = stage_future_state(r.f);
        ck_assert(wrc == 0 || wrc == ETIMEDOUT);
        if (st == STAGE_DONE) {
            ck_assert_int_eq(r.resolve_rc, 0);
            ck_assert_int_eq(r.cancel_rc, EALREADY);
            ck_assert_int_eq(stage_future_get(r.f, 0, &v), 0);
            ck_assert_ptr_eq(v, &r);
            resolved++;
        } else {
            ck_assert_int_eq(st, STAGE_CANCELLED);
            ck_assert_int_eq(r.cancel_rc, 0);
            ck_assert_int_eq(r.resolve_rc, ECANCELED);
            ck_assert_int_eq(stage_future_get(r.f, 0, &v), ECANCELED);
        }
        timeouts += wrc == ETIMEDOUT;
        stage_future_unref(r.f);
        /* Destroyed once if resolve won, never otherwise (the value stays
         * the resolver's when it loses). */
        ck_assert_int_eq(atomic_load(&r.destroyed), st == STAGE_DONE);
        rounds++;
    }
    atomic_store(&r.stop, 1);
    pthread_barrier_wait(&r.go);
    t_thread_join(a);
    t_thread_join(b);
    pthread_barrier_destroy(&r.go);
    printf("check_stress: %ld rounds, %ld resolved, %ld waits timed out\n",
           rounds, resolved, timeouts);
    ck_assert_int_gt(rounds, 0);
}
END_TEST

/* ---- 2. task cancel vs wake-up vs timeout --------------------------------- */

typedef struct tc_round {
    stage_future *gate; /* what the task waits for */
    double timeout;
    int rc;             /* what its wait returned */
} tc_round;

static void *gate_waiter(void *arg)
{
    tc_round *t = arg;

    t->rc = stage_future_wait(t->gate, t->timeout);
    return NULL;
}

static void *gate_opener(void *arg)
{
    stage_future_resolve(arg, NULL, NULL);
    return NULL;
}

START_TEST(test_task_cancel_race)
{
    uint64_t seed = seed_of("task cancel/wake/timeout");
    double end = t_time() + budget();
    long rounds = 0, by[4] = {0};

    while (t_time() < end) {
        tc_round t = {stage_future_new(), (double)(rnd(&seed) % 100) * 1e-6,
                      -1};
        stage_future *task = NULL, *opener = NULL;

        ck_assert_ptr_nonnull(t.gate);
        ck_assert_int_eq(
            stage_coro_spawn(NULL, gate_waiter, &t, NULL, 0, &task), 0);
        ck_assert_int_eq(stage_yield(), 0); /* it is waiting now */
        ck_assert_int_eq(
            stage_thread_spawn(gate_opener, t.gate, NULL, &opener), 0);
        jitter(&seed, 20000);
        ck_assert(stage_future_cancel(task) == 0 ||
                  stage_future_state(task) != STAGE_PENDING);
        ck_assert_int_eq(stage_future_wait(task, 10.0 * t_tol()), 0);
        ck_assert_int_eq(stage_future_wait(opener, 10.0 * t_tol()), 0);
        /* The wait's answer is one of the three, and agrees with the
         * task's end: cancelled unless it had finished first. */
        ck_assert(t.rc == 0 || t.rc == ETIMEDOUT || t.rc == ECANCELED);
        if (t.rc == ECANCELED)
            ck_assert_int_eq(stage_future_state(task), STAGE_CANCELLED);
        ck_assert_int_eq(stage_future_state(t.gate), STAGE_DONE);
        by[t.rc == 0 ? 0 : t.rc == ETIMEDOUT ? 1 : 2]++;
        stage_future_unref(task);
        stage_future_unref(opener);
        stage_future_unref(t.gate);
        rounds++;
    }
    printf("check_stress: %ld rounds: %ld woken, %ld timed out, %ld "
           "cancelled\n", rounds, by[0], by[1], by[2]);
    ck_assert_int_gt(rounds, 0);
}
END_TEST

/* ---- 3. queue close with blocked producers and consumers ------------------ */

#define QP 4 /* producers: 2 threads, 2 coroutines of main */
#define QC 4 /* consumers: 2 threads, 2 coroutines of a host thread */

typedef struct qstress {
    stage_queue *q;
    atomic_int destroyed;  /* by the queue (left at unref) */
    atomic_long put_ok;    /* items the queue took */
    atomic_long got;       /* items consumers received */
    atomic_int bad;        /* wrong return values */
} qstress;

static void q_item_free(void *p)
{
    qstress *s = *(qstress **)p;

    atomic_fetch_add(&s->destroyed, 1);
    free(p);
}

static void *q_producer(void *arg)
{
    qstress *s = arg;

    for (;;) {
        qstress **item = malloc(sizeof *item);
        int rc;

        *item = s;
        rc = stage_queue_put(s->q, item, STAGE_FOREVER);
        if (rc == 0) {
            atomic_fetch_add(&s->put_ok, 1);
            continue;
        }
        free(item); /* not taken: ours */
        if (rc != EPIPE)
            atomic_fetch_add(&s->bad, 1);
        return NULL;
    }
}

static void *q_consumer(void *arg)
{
    qstress *s = arg;
    void *item;
    int rc;

    while ((rc = stage_queue_get(s->q, &item, STAGE_FOREVER)) == 0) {
        atomic_fetch_add(&s->got, 1);
        free(item);
        /* Consume slower than the producers: they block on a full queue. */
        stage_yield();
    }
    if (rc != EPIPE)
        atomic_fetch_add(&s->bad, 1);
    return NULL;
}

START_TEST(test_queue_close_blocked)
{
    uint64_t seed = seed_of("queue close");
    double end = t_time() + budget();
    long rounds = 0, items = 0;

    while (t_time() < end) {
        qstress s;
        t_host h;
        stage_future *p[QP], *c[QC];
        int i;

        memset(&s, 0, sizeof s);
        s.q = stage_queue_new(1 + rnd(&seed) % 3, q_item_free);
        ck_assert_ptr_nonnull(s.q);
        t_host_start(&h);
        for (i = 0; i < QP; i++)
            ck_assert_int_eq(
                i < 2 ? stage_thread_spawn(q_producer, &s, NULL, &p[i])
                      : stage_coro_spawn(NULL, q_producer, &s, NULL, 0, &p[i]),
                0);
        for (i = 0; i < QC; i++)
            ck_assert_int_eq(
                i < 2 ? stage_thread_spawn(q_consumer, &s, NULL, &c[i])
                      : stage_coro_spawn(h.loop, q_consumer, &s, NULL, 0,
                                         &c[i]),
                0);
        /* Let them run (main's coroutines too), then close. */
        ck_assert_int_eq(stage_sleep((double)(rnd(&seed) % 3000) * 1e-6), 0);
        ck_assert_int_eq(stage_queue_close(s.q), 0);
        for (i = 0; i < QP; i++) {
            ck_assert_int_eq(stage_future_wait(p[i], 10.0 * t_tol()), 0);
            stage_future_unref(p[i]);
        }
        for (i = 0; i < QC; i++) {
            ck_assert_int_eq(stage_future_wait(c[i], 10.0 * t_tol()), 0);
            stage_future_unref(c[i]);
        }
        t_host_stop(&h);
        ck_assert_int_eq(atomic_load(&s.bad), 0);
        /* What was queued and not received goes with the queue. */
        {
            long left = (long)stage_queue_length(s.q);

            stage_queue_unref(s.q);
            ck_assert_int_eq(atomic_load(&s.destroyed), left);
            ck_assert_int_eq(atomic_load(&s.got) + left,
                             atomic_load(&s.put_ok));
        }
        items += atomic_load(&s.put_ok);
        rounds++;
    }
    printf("check_stress: %ld rounds, %ld items\n", rounds, items);
    ck_assert_int_gt(rounds, 0);
}
END_TEST

/* ---- 4. tunnel readers joining and leaving -------------------------------- */

typedef struct tstress {
    stage_tunnel *t;
    atomic_int destroyed;
    atomic_int bad;
    atomic_long seen;
    atomic_int ended; /* set before the tunnel closes */
    uint64_t seed;
} tstress;

static void t_item_free(void *p)
{
    tstress *s = *(tstress **)p;

    atomic_fetch_add(&s->destroyed, 1);
    free(p);
}

typedef struct titem {
    tstress *s; /* first: t_item_free reads it */
    long seq;
} titem;

/* Join, read a few items (their sequence must increase), leave; again,
 * until the stream ends. */
static void *t_churner(void *arg)
{
    tstress *s = arg;
    uint64_t r = s->seed ^ (uint64_t)(uintptr_t)&r;

    for (;;) {
        stage_tunnel_reader *rd = stage_tunnel_reader_new(s->t, 10.0);
        long last = -1;
        int k = 1 + (int)(rnd(&r) % 50), rc = 0;
        void *item;

        if (rd == NULL) {
            atomic_fetch_add(&s->bad, 1);
            return NULL;
        }
        /* Once the stream has ended, read to its end (a reader that
         * joins then replays the window, and would never see EPIPE in
         * bites shorter than the window). */
        if (atomic_load(&s->ended))
            k = 1 << 30;
        while (k-- > 0 && ((rc = stage_tunnel_next(rd, &item)) == 0 ||
                           rc == EOVERFLOW)) {
            if (rc == EOVERFLOW)
                continue;
            if (((titem *)item)->seq <= last)
                atomic_fetch_add(&s->bad, 1);
            last = ((titem *)item)->seq;
            atomic_fetch_add(&s->seen, 1);
        }
        stage_tunnel_reader_free(rd);
        if (rc == EPIPE)
            return NULL;
        /* A coroutine on the writer's thread must let the writer run: a
         * new reader replays the window, so bites shorter than the window
         * would never block. */
        stage_yield();
        if (rc != 0 && rc != EOVERFLOW) {
            atomic_fetch_add(&s->bad, 1);
            return NULL;
        }
    }
}

START_TEST(test_tunnel_churn)
{
    tstress s;
    stage_future *r[4];
    double end = t_time() + budget();
    long n = 0;
    int i;

    memset(&s, 0, sizeof s);
    s.seed = seed_of("tunnel churn");
    s.t = stage_tunnel_new(10.0, 64, t_item_free);
    ck_assert_ptr_nonnull(s.t);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(
            i < 3 ? stage_thread_spawn(t_churner, &s, NULL, &r[i])
                  : stage_coro_spawn(NULL, t_churner, &s, NULL, 0, &r[i]),
            0);
    while (t_time() < end) {
        titem *it = malloc(sizeof *it);

        it->s = &s;
        it->seq = n++;
        ck_assert_int_eq(stage_tunnel_put(s.t, it), 0);
        if (n % 16 == 0)
            ck_assert_int_eq(stage_yield(), 0); /* main's reader runs */
    }
    atomic_store(&s.ended, 1);
    ck_assert_int_eq(stage_tunnel_close(s.t), 0);
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(stage_future_wait(r[i], 10.0 * t_tol()), 0);
        stage_future_unref(r[i]);
    }
    stage_tunnel_unref(s.t);
    ck_assert_int_eq(atomic_load(&s.bad), 0);
    ck_assert_int_eq(atomic_load(&s.destroyed), n);
    printf("check_stress: %ld items put, %ld reads\n", n,
           (long)atomic_load(&s.seen));
}
END_TEST

/* ---- 5. timers against a model -------------------------------------------- */

#define TM_MAX 1000
#define TM_QUANTUM 0.001 /* delays: 1 .. 20 ms */

typedef struct tm_coro {
    int slot;       /* delay in quanta */
    int index;      /* spawn order */
    int seq;        /* its clock reading in tm_reads */
    int rc;
    stage_future *task;
} tm_coro;

static tm_coro tm[TM_MAX];
static int tm_order[TM_MAX], tm_nwoke;

/* Clock readings in the order the coroutines ran in the first batch:
 * each sleeper reads the clock right before its stage_sleep, so the
 * library's own reading (its deadline's origin) lies between that reading
 * and the next one (the next coroutine's, or the killer's).  The model
 * works with that interval, so preemption anywhere cannot fake a
 * misordering. */
static int64_t tm_reads[TM_MAX + 1];
static int tm_nreads;

static void *tm_sleeper(void *arg)
{
    tm_coro *c = arg;

    c->seq = tm_nreads;
    tm_reads[tm_nreads++] = stage_now();
    c->rc = stage_sleep(c->slot * TM_QUANTUM);
    if (c->rc == 0)
        tm_order[tm_nwoke++] = c->index;
    return NULL;
}

/* Earliest and latest possible deadline of a sleeper. */
static int64_t tm_lo(const tm_coro *c)
{
    return tm_reads[c->seq] + (int64_t)(c->slot * TM_QUANTUM * 1e9);
}

static int64_t tm_hi(const tm_coro *c)
{
    return c->seq + 1 < tm_nreads
               ? tm_reads[c->seq + 1] + (int64_t)(c->slot * TM_QUANTUM * 1e9) +
                     1
               : INT64_MAX;
}

/* Cancels a random subset at random moments. */
typedef struct tm_killer {
    int n;
    uint64_t seed;
} tm_killer;

static void *tm_kill(void *arg)
{
    tm_killer *k = arg;
    int i;

    tm_reads[tm_nreads++] = stage_now(); /* closes the last interval */
    for (i = 0; i < k->n / 4; i++) {
        stage_sleep((double)(rnd(&k->seed) % 60) * 1e-6);
        stage_future_cancel(tm[rnd(&k->seed) % (uint64_t)k->n].task);
    }
    return NULL;
}

START_TEST(test_timer_model)
{
    uint64_t seed = seed_of("timer model");
    double end = t_time() + budget();
    long rounds = 0, woke = 0, cancelled = 0;
    int n = t_on_valgrind() ? 100 : TM_MAX;

    while (t_time() < end) {
        tm_killer k = {n, rnd(&seed)};
        stage_future *killer;
        int i;

        tm_nwoke = 0;
        tm_nreads = 0;
        for (i = 0; i < n; i++) {
            tm[i].slot = 1 + (int)(rnd(&seed) % 20); /* 0 would yield */
            tm[i].index = i;
            tm[i].rc = -1;
            ck_assert_int_eq(stage_coro_spawn(NULL, tm_sleeper, &tm[i], NULL,
                                              16 * 1024, &tm[i].task),
                             0);
        }
        ck_assert_int_eq(
            stage_coro_spawn(NULL, tm_kill, &k, NULL, 0, &killer), 0);
        ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL,
                                        30.0 * t_tol()),
                         0);
        /* The model: the survivors wake in the order of their deadlines,
         * each known to lie in [tm_lo, tm_hi]: a wake-up after one whose
         * earliest deadline is later than its own latest is out of
         * order. */
        for (i = 1; i < tm_nwoke; i++) {
            tm_coro *a = &tm[tm_order[i - 1]], *b = &tm[tm_order[i]];

            ck_assert_msg(tm_lo(a) <= tm_hi(b),
                          "wake-up %d: coroutine %d (deadline at most %lld) "
                          "after %d (deadline at least %lld ns later)", i,
                          b->index, (long long)tm_hi(b), a->index,
                          (long long)(tm_lo(a) - tm_hi(b)));
        }
        for (i = 0; i < n; i++) {
            stage_state st = stage_future_state(tm[i].task);

            /* A cancel that comes after the sleep returned still
             * cancels the task. */
            ck_assert(tm[i].rc == 0 || tm[i].rc == ECANCELED);
            ck_assert(st == STAGE_CANCELLED ||
                      (st == STAGE_DONE && tm[i].rc == 0));
            cancelled += st == STAGE_CANCELLED;
            stage_future_unref(tm[i].task);
        }
        stage_future_unref(killer);
        woke += tm_nwoke;
        rounds++;
    }
    printf("check_stress: %ld rounds, %ld wake-ups in order, %ld "
           "cancelled\n", rounds, woke, cancelled);
}
END_TEST

/* ---- 6. signal storm during timed waits ------------------------------------ */

static void on_usr1(int sig) { (void)sig; }

typedef struct storm {
    atomic_int stop;
    atomic_long sent;
    pthread_t targets[4];
    int ntargets;
} storm;

static void *storm_sender(void *arg)
{
    storm *s = arg;
    struct timespec ts = {0, 20 * 1000};

    while (!atomic_load(&s->stop)) {
        for (int i = 0; i < s->ntargets; i++)
            pthread_kill(s->targets[i], SIGUSR1);
        atomic_fetch_add(&s->sent, 1);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Timed waits that must last their whole timeout: a thread's condvar
 * sleep (future wait, queue get, sleep) and poll sleep (fd wait), and the
 * same from a coroutine. */
typedef struct waits {
    double end;
    atomic_int early, late, wrong;
    atomic_long n;
    int pipe_rd;
    pthread_barrier_t *ready;
} waits;

static void timed(waits *w, int kind)
{
    const double t = 0.01;
    double t0 = t_time(), el;
    int rc, want = ETIMEDOUT;
    stage_future *f = NULL;
    stage_queue *q = NULL;
    void *item;
    unsigned int re;

    switch (kind) {
    case 0:
        rc = stage_sleep(t);
        want = 0;
        break;
    case 1:
        f = stage_future_new();
        rc = stage_future_wait(f, t);
        stage_future_unref(f);
        break;
    case 2:
        q = stage_queue_new(1, NULL);
        rc = stage_queue_get(q, &item, t);
        stage_queue_unref(q);
        break;
    default:
        rc = stage_fd_wait(w->pipe_rd, STAGE_FD_READ, t, &re);
        break;
    }
    el = t_time() - t0;
    if (rc != want)
        atomic_fetch_add(&w->wrong, 1);
    if (el < t * 0.999)
        atomic_fetch_add(&w->early, 1);
    if (el > t + 2.0 * t_tol())
        atomic_fetch_add(&w->late, 1);
    atomic_fetch_add(&w->n, 1);
}

static void *waits_coro(void *arg)
{
    waits *w = arg;

    for (int k = 0; t_time() < w->end; k++)
        timed(w, k % 4);
    return NULL;
}

static void *waits_thread(void *arg)
{
    waits *w = arg;
    stage_future *c = NULL;

    /* Two coroutines on this thread's loop, while the thread (its root)
     * does timed waits of its own. */
    stage_coro_spawn(NULL, waits_coro, w, NULL, 0, &c);
    pthread_barrier_wait(w->ready);
    for (int k = 0; t_time() < w->end; k++)
        timed(w, (k + 1) % 4);
    stage_future_wait(c, STAGE_FOREVER);
    stage_future_unref(c);
    stage_loop_free(stage_loop_current());
    return NULL;
}

START_TEST(test_signal_storm)
{
    struct sigaction sa;
    storm s;
    waits w;
    pthread_barrier_t ready;
    pthread_t sender;
    int p[2], i;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1; /* no SA_RESTART: every wait sees EINTR */
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    ck_assert_int_eq(pipe(p), 0);
    memset(&s, 0, sizeof s);
    memset(&w, 0, sizeof w);
    w.end = t_time() + budget();
    w.pipe_rd = p[0];
    w.ready = &ready;
    s.ntargets = 3;
    ck_assert_int_eq(pthread_barrier_init(&ready, NULL, 4), 0);
    for (i = 0; i < 3; i++)
        s.targets[i] = t_thread_start(waits_thread, &w);
    pthread_barrier_wait(&ready);
    sender = t_thread_start(storm_sender, &s);
    for (i = 0; i < 3; i++)
        t_thread_join(s.targets[i]);
    atomic_store(&s.stop, 1);
    t_thread_join(sender);
    pthread_barrier_destroy(&ready);
    close(p[0]);
    close(p[1]);
    signal(SIGUSR1, SIG_DFL);
    printf("check_stress: %ld timed waits under %ld signal rounds: %d "
           "early, %d late, %d wrong\n", (long)atomic_load(&w.n),
           (long)atomic_load(&s.sent), atomic_load(&w.early),
           atomic_load(&w.late), atomic_load(&w.wrong));
    ck_assert_int_eq(atomic_load(&w.wrong), 0);
    ck_assert_int_eq(atomic_load(&w.early), 0);
    ck_assert_int_eq(atomic_load(&w.late), 0);
    ck_assert_int_gt(atomic_load(&w.n), 0);
}
END_TEST

/* ---- 7. a loop freed with work in flight ------------------------------------ */

typedef struct doomed {
    stage_loop *loop;
    stage_future *ready, *die; /* die: the loop thread frees its loop */
    stage_future *gates[8];    /* its coroutines wait on these */
    stage_queue *q;
    int pipe_rd;
    atomic_int spawned, refused, bad;
    atomic_int pokers_out; /* pokers that will not touch `loop` again */
    atomic_int guarding;   /* the guardian has started */
} doomed;

static void *d_block(void *arg)
{
    doomed *d = arg;
    int rc;
    void *item;
    unsigned int re;

    switch (stage_loop_count(d->loop) % 4) {
    case 0:
        rc = stage_future_wait(d->gates[stage_loop_count(d->loop) % 8],
                               STAGE_FOREVER);
        break;
    case 1:
        rc = stage_sleep(3600);
        break;
    case 2:
        rc = stage_queue_get(d->q, &item, STAGE_FOREVER);
        break;
    default:
        rc = stage_fd_wait(d->pipe_rd, STAGE_FD_READ, STAGE_FOREVER, &re);
        break;
    }
    if (rc != 0 && rc != ECANCELED && rc != EPIPE)
        atomic_fetch_add(&d->bad, 1);
    return NULL;
}

/* Keeps the loop alive (stage_loop_free runs it until its last coroutine
 * ends) until both pokers are done with its pointer: a loop's pointer is
 * only valid while it lives, and the pokers stop at their first EPIPE,
 * which a spawn returns once the free has begun.  It guards only once it
 * has started: a coroutine that stage_loop_free cancels before it started
 * never runs its function (see d_loop_thread). */
static void *d_guardian(void *arg)
{
    doomed *d = arg;
    struct timespec ts = {0, 100 * 1000};

    atomic_store(&d->guarding, 1);
    while (atomic_load(&d->pokers_out) < 2) {
        if (stage_sleep(0.001) != 0) /* cancelled: no more suspending */
            nanosleep(&ts, NULL);
    }
    return NULL;
}

static void *d_loop_thread(void *arg)
{
    doomed *d = arg;

    d->loop = stage_loop_current();
    stage_coro_spawn(NULL, d_guardian, d, NULL, 0, NULL);
    for (int i = 0; i < 64; i++)
        stage_coro_spawn(NULL, d_block, d, NULL, 0, NULL);
    /* Let the guardian start before the pokers get the loop's pointer.
     * Were it still unstarted when the loop is freed (main may resolve
     * `die` before this thread's first batch: usually so on a busy
     * machine), the free would cancel it before it ran, and finish while
     * a poker is still about to spawn onto the loop: that poker then
     * locked the freed loop's mutex, and either hung (the poker wait
     * timed out) or tripped glibc's assertion in
     * __pthread_tpp_change_priority. */
    while (!atomic_load(&d->guarding))
        stage_yield();
    stage_future_resolve(d->ready, NULL, NULL);
    /* Run until told to die, then free the loop with everything in
     * flight. */
    stage_loop_run(d->loop, d->die, STAGE_FOREVER);
    if (stage_loop_free(d->loop) != 0)
        atomic_fetch_add(&d->bad, 1);
    return NULL;
}

/* Spawns onto the doomed loop and pokes its coroutines until stopped.
 * A spawn after the loop's free began fails with EPIPE, or makes a task
 * that ends cancelled. */
static void *d_poker(void *arg)
{
    doomed *d = arg;
    int i = 0;

    for (;;) {
        stage_future *f = NULL;
        int rc = stage_coro_spawn(d->loop, d_block, d, NULL, 0, &f);

        if (rc == 0) {
            /* Each one stays (blocked) until the free: beyond a few
             * hundred, pace the spawns, or the free spends seconds
             * unmapping stacks. */
            struct timespec ts = {0, 50 * 1000};

            if (atomic_fetch_add(&d->spawned, 1) > 400)
                nanosleep(&ts, NULL);
            stage_future_unref(f);
        } else if (rc == EPIPE) {
            atomic_fetch_add(&d->refused, 1);
            break;
        } else {
            atomic_fetch_add(&d->bad, 1);
        }
        stage_future_resolve(d->gates[i++ % 8], NULL, NULL);
        stage_queue_try_put(d->q, NULL);
    }
    atomic_fetch_add(&d->pokers_out, 1);
    return NULL;
}

START_TEST(test_loop_free_in_flight)
{
    uint64_t seed = seed_of("loop free in flight");
    double end = t_time() + budget();
    long rounds = 0, spawned = 0;

    while (t_time() < end) {
        doomed d;
        stage_future *lt, *pk[2];
        int p[2], i;

        memset(&d, 0, sizeof d);
        ck_assert_int_eq(pipe(p), 0);
        d.pipe_rd = p[0];
        d.ready = stage_future_new();
        d.die = stage_future_new();
        d.q = stage_queue_new(4, NULL);
        for (i = 0; i < 8; i++)
            d.gates[i] = stage_future_new();
        ck_assert_int_eq(stage_thread_spawn(d_loop_thread, &d, NULL, &lt), 0);
        ck_assert_int_eq(stage_future_wait(d.ready, 10.0 * t_tol()), 0);
        for (i = 0; i < 2; i++)
            ck_assert_int_eq(stage_thread_spawn(d_poker, &d, NULL, &pk[i]),
                             0);
        jitter(&seed, 200000);
        ck_assert_int_eq(stage_future_resolve(d.die, NULL, NULL), 0);
        ck_assert_int_eq(stage_future_wait(lt, 60.0 * t_tol()), 0);
        ck_assert_int_eq(atomic_load(&d.guarding), 1);
        for (i = 0; i < 2; i++) {
            ck_assert_int_eq(stage_future_wait(pk[i], 10.0 * t_tol()), 0);
            stage_future_unref(pk[i]);
        }
        ck_assert_int_eq(atomic_load(&d.bad), 0);
        stage_future_unref(lt);
        stage_future_unref(d.ready);
        stage_future_unref(d.die);
        stage_queue_unref(d.q);
        for (i = 0; i < 8; i++)
            stage_future_unref(d.gates[i]);
        close(p[0]);
        close(p[1]);
        spawned += atomic_load(&d.spawned);
        rounds++;
    }
    printf("check_stress: %ld loops freed in flight, %ld cross-thread "
           "spawns\n", rounds, spawned);
}
END_TEST

static Suite *stress_suite(void)
{
    Suite *s = suite_create("stress");
    TCase *tc;

    tc = stress_case(s, "futures");
    tcase_add_test(tc, test_resolve_cancel_timeout);
    tcase_add_test(tc, test_task_cancel_race);
    tc = stress_case(s, "streams");
    tcase_add_test(tc, test_queue_close_blocked);
    tcase_add_test(tc, test_tunnel_churn);
    tc = stress_case(s, "timers");
    tcase_add_test(tc, test_timer_model);
    tcase_add_test(tc, test_signal_storm);
    tc = stress_case(s, "loops");
    tcase_add_test(tc, test_loop_free_in_flight);
    /* tc = stress_case(s, "scope"): the scope module's stress cases
     * (cancellation during cleanup) go here. */
    return s;
}

T_MAIN(stress_suite)
