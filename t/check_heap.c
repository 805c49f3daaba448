/* SPDX-License-Identifier: MIT */
/*
 * check_heap.c - the timer heap (lib/heap.c) and stage__deadline
 * (lib/clock.c) as units: both files are compiled into this program, which
 * calls their internal functions directly.
 *
 * The heap is checked against a model, a plain array kept sorted by
 * (deadline, push order), over 200,000 random pushes, removals of a random
 * armed timer and pops of the top, with deadlines from a small range so
 * that ties are common: the top is always the model's first (so equal
 * deadlines come out first-in first-out), every armed timer's slot points
 * back at it, unarmed timers have no slot, and the array is a heap.  The
 * seed comes from STAGE_TEST_SEED, or the time; every failure prints it.
 */
#include "common.h"

#include "common-int.h"
#include "heap-int.h"

#include <float.h>
#include <stdarg.h>

/* ---- The model ---------------------------------------------------------- */

#define POOL 4096  /* timers that exist; at most this many armed */
#define NOPS 200000
#define PHASE 10000 /* ops between switches of grow / shrink bias */

typedef struct item {
    stage__timer t;
    uint64_t order; /* the model's push counter: FIFO among equal deadlines */
    int armed;
} item;

static item pool[POOL];
static size_t model[POOL]; /* armed pool indexes, sorted by (deadline, order) */
static size_t nmodel;
static size_t freelist[POOL]; /* unarmed pool indexes */
static size_t nfree;
static uint64_t pushes;

static unsigned long long seed;
static long op; /* current operation, for messages */

/* Check without Check's per-assertion bookkeeping (this runs millions of
 * times), and always say how to repeat the run. */
#define HCHECK(cond, ...)                                                     \
    do {                                                                      \
        if (!(cond))                                                          \
            heap_fail(__LINE__, #cond, __VA_ARGS__);                          \
    } while (0)

static void heap_fail(int line, const char *what, const char *fmt, ...)
    STAGE_PRINTF(3, 4);

static void heap_fail(int line, const char *what, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ck_abort_msg("line %d, op %ld: '%s' failed: %s "
                 "(repeat with STAGE_TEST_SEED=%llu)",
                 line, op, what, msg, seed);
}

/* splitmix64: the same sequence on every libc. */
static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng() % n);
}

static void seed_init(void)
{
    const char *e = getenv("STAGE_TEST_SEED");

    if (e != NULL && *e != '\0')
        seed = strtoull(e, NULL, 0);
    else
        seed = (unsigned long long)time(NULL) ^
               ((unsigned long long)getpid() << 32);
    rng_state = seed;
}

static int item_before(const item *a, const item *b)
{
    if (a->t.deadline != b->t.deadline)
        return a->t.deadline < b->t.deadline;
    return a->order < b->order;
}

static void model_reset(void)
{
    size_t i;

    memset(pool, 0, sizeof pool);
    for (i = 0; i < POOL; i++) {
        pool[i].t.slot = STAGE__NOSLOT;
        freelist[i] = POOL - 1 - i;
    }
    nfree = POOL;
    nmodel = 0;
    pushes = 0;
}

/* Push pool[k] with `deadline` on both sides. */
static void model_push(stage__heap *h, size_t k, int64_t deadline)
{
    item *it = &pool[k];
    size_t lo = 0, hi = nmodel;

    it->t.deadline = deadline;
    it->order = pushes++;
    it->armed = 1;
    HCHECK(stage__heap_push(h, &it->t) == 0, "push of timer %zu", k);
    /* Upper bound: after every timer that sorts before it. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (item_before(it, &pool[model[mid]]))
            hi = mid;
        else
            lo = mid + 1;
    }
    memmove(&model[lo + 1], &model[lo], (nmodel - lo) * sizeof model[0]);
    model[lo] = k;
    nmodel++;
}

/* Remove the timer at model position m from both sides. */
static void model_remove(stage__heap *h, size_t m)
{
    size_t k = model[m];

    stage__heap_remove(h, &pool[k].t);
    HCHECK(pool[k].t.slot == STAGE__NOSLOT, "removed timer %zu keeps slot %zu",
           k, pool[k].t.slot);
    pool[k].armed = 0;
    memmove(&model[m], &model[m + 1], (nmodel - m - 1) * sizeof model[0]);
    nmodel--;
    freelist[nfree++] = k;
}

/* What every operation must leave true. */
static void check_top(const stage__heap *h)
{
    stage__timer *top = stage__heap_top(h);

    HCHECK(h->n == nmodel, "heap holds %zu, model %zu", h->n, nmodel);
    if (nmodel == 0) {
        HCHECK(top == NULL, "top of an empty heap");
        return;
    }
    HCHECK(top == &pool[model[0]].t,
           "top is timer %td (deadline %lld, order %llu), model's first is "
           "%zu (deadline %lld, order %llu)",
           top ? (item *)(void *)top - pool : -1,
           top ? (long long)top->deadline : 0LL,
           top ? (unsigned long long)((item *)(void *)top)->order : 0ULL,
           model[0], (long long)pool[model[0]].t.deadline,
           (unsigned long long)pool[model[0]].order);
    HCHECK(top->slot == 0, "top's slot is %zu", top->slot);
}

/* The whole structure: slots both ways, and the heap property. */
static void check_all(const stage__heap *h)
{
    size_t i, armed = 0;

    check_top(h);
    HCHECK(h->n <= h->cap, "n %zu > cap %zu", h->n, h->cap);
    for (i = 0; i < h->n; i++) {
        const stage__timer *t = h->v[i];
        const item *it = (const item *)(const void *)t;

        HCHECK(t->slot == i, "v[%zu]->slot is %zu", i, t->slot);
        HCHECK(it->armed, "v[%zu] is not armed", i);
        /* The heap's own tie-break agrees with the push order. */
        HCHECK(t->seq == it->order, "v[%zu]: seq %llu, pushed #%llu", i,
               (unsigned long long)t->seq, (unsigned long long)it->order);
        if (i > 0)
            HCHECK(!item_before(it,
                                (const item *)(const void *)h->v[(i - 1) / 2]),
                   "v[%zu] sorts before its parent", i);
    }
    for (i = 0; i < POOL; i++) {
        if (pool[i].armed) {
            armed++;
            HCHECK(pool[i].t.slot < h->n && h->v[pool[i].t.slot] == &pool[i].t,
                   "armed timer %zu: slot %zu", i, pool[i].t.slot);
        } else {
            HCHECK(pool[i].t.slot == STAGE__NOSLOT,
                   "unarmed timer %zu has slot %zu", i, pool[i].t.slot);
        }
    }
    HCHECK(armed == nmodel, "%zu armed, model %zu", armed, nmodel);
}

/* Deadlines from a small range, so that ties are common, and now and then
 * an extreme value (the order must not overflow). */
static int64_t random_deadline(void)
{
    switch (rng_below(64)) {
    case 0:
        return INT64_MAX;
    case 1:
        return INT64_MIN;
    case 2:
        return -1;
    default:
        return 1000 + (int64_t)rng_below(48);
    }
}

/* ---- Random operations against the model ---------------------------------- */

START_TEST(test_heap_random)
{
    stage__heap h;
    size_t maxn = 0, ties = 0;

    seed_init();
    model_reset();
    stage__heap_init(&h);
    check_all(&h);
    for (op = 0; op < NOPS; op++) {
        /* Alternate phases that grow (60% pushes) and shrink (30%). */
        int grow = (op / PHASE) % 2 == 0;
        unsigned r = (unsigned)rng_below(100);
        int push = r < (grow ? 60u : 30u);

        if (nfree == 0)
            push = 0;
        if (nmodel == 0)
            push = 1;
        if (push) {
            size_t f = rng_below(nfree);
            size_t k = freelist[f];

            freelist[f] = freelist[--nfree];
            model_push(&h, k, random_deadline());
        } else if (rng_below(2) == 0) {
            /* Pop the top: it must be the model's first. */
            check_top(&h);
            model_remove(&h, 0);
        } else {
            model_remove(&h, rng_below(nmodel));
        }
        check_top(&h);
        if (nmodel > maxn)
            maxn = nmodel;
        if (nmodel > 1 &&
            pool[model[0]].t.deadline == pool[model[1]].t.deadline)
            ties++;
        /* The full walk is O(POOL): every op while the heap is small,
         * every 64th beyond. */
        if (nmodel <= 64 || op % 64 == 0)
            check_all(&h);
    }
    /* Drain in order: (deadline, push order) never goes backwards. */
    while (nmodel > 0) {
        item *top = (item *)(void *)stage__heap_top(&h);
        size_t k = model[0];

        model_remove(&h, 0);
        check_top(&h);
        if (nmodel > 0)
            HCHECK(item_before(top, &pool[model[0]]),
                   "drain: timer %zu after %zu", model[0], k);
        op++;
    }
    check_all(&h);
    /* The run covered what it is for: growth past the first allocation
     * (64), and ties at the top. */
    HCHECK(maxn > 1000, "largest heap %zu", maxn);
    HCHECK(ties > 1000, "ties at the top %zu", ties);
    stage__heap_fini(&h);
    ck_assert_ptr_null(h.v);
    ck_assert_uint_eq(h.n, 0);
}
END_TEST

/* ---- Fixed cases ------------------------------------------------------------- */

/* Equal deadlines come out in push order, also among other deadlines. */
START_TEST(test_heap_fifo)
{
    enum { N = 1000 };
    stage__heap h;
    size_t i, last[5];
    int64_t prev = INT64_MIN;

    model_reset();
    stage__heap_init(&h);
    ck_assert_ptr_null(stage__heap_top(&h));
    for (i = 0; i < N; i++) {
        pool[i].t.deadline = (int64_t)(i * 7 % 5); /* 0..4, interleaved */
        ck_assert_int_eq(stage__heap_push(&h, &pool[i].t), 0);
        pool[i].armed = 1;
    }
    for (i = 0; i < 5; i++)
        last[i] = SIZE_MAX;
    for (i = 0; i < N; i++) {
        stage__timer *t = stage__heap_top(&h);
        size_t k = (size_t)((item *)(void *)t - pool);
        size_t d = (size_t)t->deadline;

        ck_assert_int_ge(t->deadline, prev);
        ck_assert_msg(last[d] == SIZE_MAX || k > last[d],
                      "deadline %zu: timer %zu after timer %zu", d, k,
                      last[d]);
        last[d] = k;
        prev = t->deadline;
        stage__heap_remove(&h, t);
        ck_assert_uint_eq(t->slot, STAGE__NOSLOT);
    }
    ck_assert_ptr_null(stage__heap_top(&h));
    stage__heap_fini(&h);
}
END_TEST

/* A timer armed again goes behind the others of its deadline. */
START_TEST(test_heap_rearm_goes_last)
{
    stage__heap h;
    int i;

    model_reset();
    stage__heap_init(&h);
    for (i = 0; i < 4; i++) {
        pool[i].t.deadline = 5;
        ck_assert_int_eq(stage__heap_push(&h, &pool[i].t), 0);
    }
    ck_assert_ptr_eq(stage__heap_top(&h), &pool[0].t);
    stage__heap_remove(&h, &pool[0].t);
    ck_assert_int_eq(stage__heap_push(&h, &pool[0].t), 0);
    ck_assert_ptr_eq(stage__heap_top(&h), &pool[1].t);
    for (i = 1; i <= 4; i++) {
        stage__timer *t = stage__heap_top(&h);

        ck_assert_ptr_eq(t, &pool[i % 4].t);
        stage__heap_remove(&h, t);
    }
    ck_assert_uint_eq(h.n, 0);
    stage__heap_fini(&h);
}
END_TEST

/* Removing from the middle: the last timer fills the hole and has to move
 * up (it sorts before the hole's parent) or down. */
START_TEST(test_heap_remove_moves_last_up)
{
    /* Pushed in this order, each is >= its parent, so the array is exactly
     *              0
     *         10       1
     *       11  12   2   3                                            */
    static const int64_t d[] = {0, 10, 1, 11, 12, 2, 3};
    static const int64_t rest[] = {0, 1, 2, 3, 10, 12};
    stage__heap h;
    size_t i;

    model_reset();
    stage__heap_init(&h);
    for (i = 0; i < 7; i++) {
        pool[i].t.deadline = d[i];
        ck_assert_int_eq(stage__heap_push(&h, &pool[i].t), 0);
        ck_assert_uint_eq(pool[i].t.slot, i);
    }
    /* Remove 11 (slot 3): 3, the last, lands under 10 and must rise. */
    stage__heap_remove(&h, &pool[3].t);
    ck_assert_uint_eq(pool[3].t.slot, STAGE__NOSLOT);
    ck_assert_uint_eq(pool[6].t.slot, 1);
    ck_assert_uint_eq(pool[1].t.slot, 3);
    for (i = 0; i < h.n; i++) {
        ck_assert_uint_eq(h.v[i]->slot, i);
        if (i > 0)
            ck_assert_int_ge(h.v[i]->deadline, h.v[(i - 1) / 2]->deadline);
    }
    /* Pop the rest: each time the last timer takes the top and sinks. */
    for (i = 0; i < 6; i++) {
        stage__timer *t = stage__heap_top(&h);

        ck_assert_int_eq(t->deadline, rest[i]);
        stage__heap_remove(&h, t);
    }
    ck_assert_ptr_null(stage__heap_top(&h));
    /* Removing the last element leaves the rest alone. */
    pool[0].t.deadline = 1;
    pool[1].t.deadline = 2;
    ck_assert_int_eq(stage__heap_push(&h, &pool[0].t), 0);
    ck_assert_int_eq(stage__heap_push(&h, &pool[1].t), 0);
    stage__heap_remove(&h, &pool[1].t);
    ck_assert_uint_eq(h.n, 1);
    ck_assert_ptr_eq(stage__heap_top(&h), &pool[0].t);
    ck_assert_uint_eq(pool[0].t.slot, 0);
    stage__heap_fini(&h);
}
END_TEST

/* ---- stage__deadline ---------------------------------------------------- */

START_TEST(test_deadline)
{
    static const double never[] = {-1.0, STAGE_FOREVER, -1e-300, -INFINITY,
                                   9.0000001e9, 1e300, INFINITY, DBL_MAX};
    static const double after[] = {1e-12, 1e-9, 0.0003, 1.5, 59.999999999};
    int64_t d, before, now;
    size_t i;

    d = 42;
    ck_assert_int_eq(stage__deadline(NAN, &d), EINVAL);
    ck_assert_int_eq(d, 42);
    ck_assert_int_eq(stage__deadline(-NAN, &d), EINVAL);

    /* Negative: no limit.  Beyond ~292 years of nanoseconds: no limit. */
    for (i = 0; i < sizeof never / sizeof never[0]; i++) {
        d = 42;
        ck_assert_int_eq(stage__deadline(never[i], &d), 0);
        ck_assert_msg(d == -1, "timeout %g: deadline %lld", never[i],
                      (long long)d);
    }

    /* 0 (and -0.0): now. */
    for (i = 0; i < 2; i++) {
        before = stage_now();
        ck_assert_int_eq(stage__deadline(i ? -0.0 : 0.0, &d), 0);
        now = stage_now();
        ck_assert_int_ge(d, before);
        ck_assert_int_le(d, now);
    }

    /* Positive: now + timeout, rounded up to the nanosecond (never early),
     * by at most a nanosecond or two. */
    for (i = 0; i < sizeof after / sizeof after[0]; i++) {
        int64_t ns = t_s2ns(after[i]);

        before = stage_now();
        ck_assert_int_eq(stage__deadline(after[i], &d), 0);
        now = stage_now();
        ck_assert_msg(d >= before + ns && d > before,
                      "timeout %.12g: deadline %lld ns after the call began",
                      after[i], (long long)(d - before));
        ck_assert_msg(d <= now + ns + 2,
                      "timeout %.12g: deadline %lld ns after the call ended",
                      after[i], (long long)(d - now));
    }

    /* The largest timeout kept: no overflow, ~285 years ahead. */
    before = stage_now();
    ck_assert_int_eq(stage__deadline(9.0e9, &d), 0);
    ck_assert_int_ge(d, before + INT64_C(9000000000000000000));
    ck_assert_int_gt(d, 0);
}
END_TEST

static Suite *heap_suite(void)
{
    Suite *s = suite_create("heap");
    TCase *tc;

    tc = t_tcase(s, "model", 30);
    tcase_add_test(tc, test_heap_random);

    tc = t_tcase(s, "fixed", 5);
    tcase_add_test(tc, test_heap_fifo);
    tcase_add_test(tc, test_heap_rearm_goes_last);
    tcase_add_test(tc, test_heap_remove_moves_last_up);

    tc = t_tcase(s, "deadline", 5);
    tcase_add_test(tc, test_deadline);
    return s;
}

T_MAIN(heap_suite)
