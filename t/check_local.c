/* SPDX-License-Identifier: MIT */
/*
 * check_local.c - task-local variables (stage_local_*): inheritance by
 * every kind of task, captured at creation, isolation between tasks, the
 * copied context of stage_local_run, keys freed while contexts use them.
 */
#include "common.h"

/* ---- Basics ------------------------------------------------------------- */

START_TEST(test_basics)
{
    static int def, a, b;
    stage_local *k;

    errno = 0;
    ck_assert_ptr_null(stage_local_new(NULL, NULL));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(stage_local_get(NULL));
    ck_assert_int_eq(stage_local_set(NULL, &a), EINVAL);
    ck_assert_ptr_null(stage_local_name(NULL));
    ck_assert_int_eq(stage_local_run(NULL, NULL, NULL), EINVAL);
    stage_local_free(NULL); /* harmless */

    k = stage_local_new("var", &def);
    ck_assert_ptr_nonnull(k);
    ck_assert_str_eq(stage_local_name(k), "var");
    ck_assert_ptr_eq(stage_local_get(k), &def);
    ck_assert_int_eq(stage_local_set(k, &a), 0);
    ck_assert_ptr_eq(stage_local_get(k), &a);
    ck_assert_int_eq(stage_local_set(k, &b), 0);
    ck_assert_ptr_eq(stage_local_get(k), &b);
    ck_assert_int_eq(stage_local_set(k, NULL), 0); /* NULL is a value */
    ck_assert_ptr_null(stage_local_get(k));
    stage_local_free(k);
}
END_TEST

START_TEST(test_many_keys)
{
    enum { N = 40 };
    static int vals[N];
    stage_local *k[N];
    int i;

    for (i = 0; i < N; i++) {
        k[i] = stage_local_new("k", NULL);
        ck_assert_ptr_nonnull(k[i]);
        ck_assert_int_eq(stage_local_set(k[i], &vals[i]), 0);
    }
    for (i = 0; i < N; i++)
        ck_assert_ptr_eq(stage_local_get(k[i]), &vals[i]);
    for (i = 0; i < N; i++)
        stage_local_free(k[i]);
}
END_TEST

/* ---- Inheritance by every kind of task ---------------------------------- */

static stage_local *g_key;
static int v_parent, v_child, v_other;

/* A child: returns the value it started with, then sets its own. */
static void *child(void *arg)
{
    (void)arg;
    void *seen = stage_local_get(g_key);
    stage_local_set(g_key, &v_child);
    if (stage_local_get(g_key) != &v_child)
        return &v_other; /* a failed set shows as a wrong value */
    return seen;
}

static void key_setup(void)
{
    g_key = stage_local_new("g", NULL);
    ck_assert_ptr_nonnull(g_key);
    ck_assert_int_eq(stage_local_set(g_key, &v_parent), 0);
}

static void key_done(void)
{
    ck_assert_ptr_eq(stage_local_get(g_key), &v_parent); /* no leak up */
    stage_local_free(g_key);
}

static void *got(stage_future *f)
{
    void *v = NULL;

    ck_assert_int_eq(stage_future_get(f, 10.0 * t_tol(), &v), 0);
    stage_future_unref(f);
    return v;
}

START_TEST(test_inherit_coro_thread_pool)
{
    stage_future *f;
    stage_pool *pool;

    key_setup();
    ck_assert_int_eq(stage_coro_spawn(NULL, child, NULL, NULL, 0, &f), 0);
    ck_assert_ptr_eq(got(f), &v_parent);
    ck_assert_int_eq(stage_thread_spawn(child, NULL, NULL, &f), 0);
    ck_assert_ptr_eq(got(f), &v_parent);
    pool = stage_pool_new("locals", 1, 2, STAGE_FOREVER);
    ck_assert_ptr_nonnull(pool);
    ck_assert_int_eq(stage_pool_submit(pool, child, NULL, NULL, &f), 0);
    ck_assert_ptr_eq(got(f), &v_parent);
    ck_assert_int_eq(stage_pool_close(pool, 0, STAGE_FOREVER), 0);
    ck_assert_int_eq(stage_pool_free(pool), 0);
    key_done();
}
END_TEST

/* Through a Stage: a coroutine spawned onto another thread's loop (handed
 * over through that loop's inbox), a pool job, an offloaded call, a stage
 * function: each starts with its creator's values. */
START_TEST(test_inherit_other_loop)
{
    stage *st = stage_new("other", 2, 0);
    stage_future *f;

    ck_assert_ptr_nonnull(st);
    key_setup();
    ck_assert_int_eq(stage_go_coro(st, child, NULL, NULL, &f), 0);
    ck_assert_ptr_eq(got(f), &v_parent);
    ck_assert_int_eq(stage_go(st, child, NULL, NULL, &f), 0);
    ck_assert_ptr_eq(got(f), &v_parent);
    void *r = NULL;
    ck_assert_int_eq(stage_offload(st, child, NULL, NULL, STAGE_FOREVER, &r),
                     0);
    ck_assert_ptr_eq(r, &v_parent);
    stage_func *fn = stage_func_new(st, child, STAGE_FUNC_CORO, NULL);
    ck_assert_ptr_nonnull(fn);
    ck_assert_int_eq(stage_func_start(fn, NULL), 0);
    ck_assert_int_eq(stage_func_wait(fn, STAGE_FOREVER, &r), 0);
    ck_assert_ptr_eq(r, &v_parent);
    stage_func_unref(fn);
    ck_assert_int_eq(stage_free(st), 0);
    key_done();
}
END_TEST

/* stage_run: from a plain thread (a coroutine of its loop) and inline in a
 * coroutine: both start from the caller's values and change only a copy. */
struct run_seen {
    void *outer_before, *inner, *outer_after;
};

static void *run_in_coro(void *arg)
{
    struct run_seen *s = arg;
    stage_local_set(g_key, &v_other);
    s->outer_before = stage_local_get(g_key);
    stage_run(child, NULL, NULL, &s->inner);
    s->outer_after = stage_local_get(g_key);
    return NULL;
}

START_TEST(test_inherit_run)
{
    struct run_seen s = {NULL, NULL, NULL};
    void *r = NULL;
    stage_future *f;

    key_setup();
    ck_assert_int_eq(stage_run(child, NULL, NULL, &r), 0);
    ck_assert_ptr_eq(r, &v_parent);
    ck_assert_int_eq(stage_coro_spawn(NULL, run_in_coro, &s, NULL, 0, &f), 0);
    got(f);
    ck_assert_ptr_eq(s.outer_before, &v_other);
    ck_assert_ptr_eq(s.inner, &v_other);    /* copied in ... */
    ck_assert_ptr_eq(s.outer_after, &v_other); /* ... not copied out */
    key_done();
}
END_TEST

/* Generators: the producer starts with its creator's values, eager or
 * lazy (a lazy one is started later by its first consumer, whose values
 * do not count). */
static void produce(stage_gen *gen, void *arg)
{
    (void)arg;
    stage_gen_yield(gen, stage_local_get(g_key), NULL);
    stage_local_set(g_key, &v_child);
    stage_gen_yield(gen, stage_local_get(g_key), NULL);
}

static void *consume_lazy(void *arg)
{
    stage_gen *gen = arg;
    void *item = NULL;
    stage_local_set(g_key, &v_other); /* the consumer's own value */
    stage_gen_next(gen, &item, STAGE_FOREVER);
    return item;
}

START_TEST(test_inherit_gen)
{
    unsigned int flags[] = {0, STAGE_GEN_CORO, STAGE_GEN_LAZY,
                            STAGE_GEN_LAZY | STAGE_GEN_CORO};
    stage *st = stage_new("gens", 2, 0);
    stage_gen *gen;
    stage_future *f;
    void *item;

    ck_assert_ptr_nonnull(st);
    key_setup();
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        ck_assert_int_eq(stage_go_gen(st, produce, NULL, NULL, 1, flags[i],
                                      &gen),
                         0);
        /* The creator changes its value after creating it: the producer
         * still starts with the value of the creation. */
        ck_assert_int_eq(stage_local_set(g_key, &v_other), 0);
        if (flags[i] & STAGE_GEN_LAZY) {
            ck_assert_int_eq(stage_thread_spawn(consume_lazy, gen, NULL, &f),
                             0);
            item = got(f);
        } else {
            ck_assert_int_eq(stage_gen_next(gen, &item, STAGE_FOREVER), 0);
        }
        ck_assert_ptr_eq(item, &v_parent);
        ck_assert_int_eq(stage_gen_next(gen, &item, STAGE_FOREVER), 0);
        ck_assert_ptr_eq(item, &v_child);
        ck_assert_int_eq(stage_gen_next(gen, &item, STAGE_FOREVER), EPIPE);
        stage_gen_unref(gen);
        ck_assert_int_eq(stage_local_set(g_key, &v_parent), 0);
    }
    ck_assert_int_eq(stage_free(st), 0);
    key_done();
}
END_TEST

/* Captured at creation, not when the task first runs. */
START_TEST(test_captured_at_creation)
{
    stage_future *f;

    key_setup();
    ck_assert_int_eq(stage_coro_spawn(NULL, child, NULL, NULL, 0, &f), 0);
    ck_assert_int_eq(stage_local_set(g_key, &v_other), 0); /* not run yet */
    ck_assert_ptr_eq(got(f), &v_parent);
    ck_assert_ptr_eq(stage_local_get(g_key), &v_other);
    ck_assert_int_eq(stage_local_set(g_key, &v_parent), 0);
    key_done();
}
END_TEST

/* ---- Isolation ---------------------------------------------------------- */

/* Two siblings on one loop set their own values and interleave; a parent
 * coroutine changes its value after spawning them. */
struct sib {
    int *mine;
    void *before, *after;
};

static void *sibling(void *arg)
{
    struct sib *s = arg;
    s->before = stage_local_get(g_key);
    stage_local_set(g_key, s->mine);
    stage_yield();
    stage_yield();
    s->after = stage_local_get(g_key);
    return NULL;
}

static void *parent(void *arg)
{
    struct sib *s = arg;
    stage_future *a, *b;
    stage_local_set(g_key, &v_other);
    stage_coro_spawn(NULL, sibling, &s[0], NULL, 0, &a);
    stage_coro_spawn(NULL, sibling, &s[1], NULL, 0, &b);
    stage_local_set(g_key, &v_parent); /* after the spawns: not seen */
    stage_future_wait(a, STAGE_FOREVER);
    stage_future_wait(b, STAGE_FOREVER);
    stage_future_unref(a);
    stage_future_unref(b);
    return stage_local_get(g_key);
}

START_TEST(test_isolation)
{
    static int one, two;
    struct sib s[2] = {{&one, NULL, NULL}, {&two, NULL, NULL}};
    stage_future *f;

    key_setup();
    ck_assert_int_eq(stage_coro_spawn(NULL, parent, s, NULL, 0, &f), 0);
    ck_assert_ptr_eq(got(f), &v_parent); /* the children did not leak */
    ck_assert_ptr_eq(s[0].before, &v_other);
    ck_assert_ptr_eq(s[1].before, &v_other);
    ck_assert_ptr_eq(s[0].after, &one);
    ck_assert_ptr_eq(s[1].after, &two);
    key_done();
}
END_TEST

/* Plain threads have contexts of their own, freed when they exit. */
static void *plain_thread(void *arg)
{
    void **seen = arg;
    seen[0] = stage_local_get(g_key); /* the default: nothing inherited */
    stage_local_set(g_key, &v_child);
    seen[1] = stage_local_get(g_key);
    return NULL;
}

START_TEST(test_plain_threads)
{
    void *seen[2] = {&v_other, NULL};

    key_setup();
    t_thread_join(t_thread_start(plain_thread, seen));
    ck_assert_ptr_null(seen[0]);
    ck_assert_ptr_eq(seen[1], &v_child);
    key_done();
}
END_TEST

/* ---- stage_local_run ---------------------------------------------------- */

struct ctx_seen {
    void *start, *after_set, *nested_start, *after_nested;
};

static void *nested(void *arg)
{
    struct ctx_seen *s = arg;
    s->nested_start = stage_local_get(g_key);
    stage_local_set(g_key, &v_parent);
    return NULL;
}

static void *in_copy(void *arg)
{
    struct ctx_seen *s = arg;
    s->start = stage_local_get(g_key);
    stage_local_set(g_key, &v_child);
    s->after_set = stage_local_get(g_key);
    stage_local_run(nested, s, NULL);
    s->after_nested = stage_local_get(g_key);
    return &v_other;
}

static void check_copy(const struct ctx_seen *s, void *outer)
{
    ck_assert_ptr_eq(s->start, outer);
    ck_assert_ptr_eq(s->after_set, &v_child);
    ck_assert_ptr_eq(s->nested_start, &v_child);
    ck_assert_ptr_eq(s->after_nested, &v_child);
}

static void *run_copy_in_coro(void *arg)
{
    struct ctx_seen *s = arg;
    void *r = NULL;
    stage_local_set(g_key, &v_other);
    stage_local_run(in_copy, s, &r);
    return stage_local_get(g_key) == &v_other ? r : NULL;
}

START_TEST(test_run_copy)
{
    struct ctx_seen s;
    void *r = NULL;
    stage_future *f;

    key_setup();
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(stage_local_run(in_copy, &s, &r), 0);
    ck_assert_ptr_eq(r, &v_other);
    check_copy(&s, &v_parent);
    ck_assert_ptr_eq(stage_local_get(g_key), &v_parent);

    /* The same in a coroutine, and without a result pointer. */
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(stage_coro_spawn(NULL, run_copy_in_coro, &s, NULL, 0,
                                      &f),
                     0);
    ck_assert_ptr_eq(got(f), &v_other);
    check_copy(&s, &v_other);
    ck_assert_int_eq(stage_local_run(in_copy, &s, NULL), 0);

    /* A context with no variable at all. */
    stage_local_free(g_key);
    g_key = stage_local_new("fresh", &v_other);
    memset(&s, 0, sizeof s);
    ck_assert_int_eq(stage_local_run(in_copy, &s, NULL), 0);
    check_copy(&s, &v_other);
    ck_assert_ptr_eq(stage_local_get(g_key), &v_other);
    stage_local_free(g_key);
}
END_TEST

/* A task spawned inside stage_local_run inherits the copy. */
static void *spawn_in_copy(void *arg)
{
    stage_future **f = arg;
    stage_local_set(g_key, &v_other);
    stage_coro_spawn(NULL, child, NULL, NULL, 0, f);
    return NULL;
}

START_TEST(test_run_spawn)
{
    stage_future *f = NULL;

    key_setup();
    ck_assert_int_eq(stage_local_run(spawn_in_copy, &f, NULL), 0);
    ck_assert_ptr_eq(got(f), &v_other);
    key_done();
}
END_TEST

/* ---- stage_local_free --------------------------------------------------- */

struct hold {
    stage_local *key;
    stage_future *read; /* resolved once the value was read */
    stage_future *go;   /* resolved once the key was freed */
};

static void *hold(void *arg)
{
    struct hold *h = arg;
    void *before = stage_local_get(h->key);
    stage_future_resolve(h->read, NULL, NULL);
    stage_future_wait(h->go, STAGE_FOREVER);
    /* The key was freed meanwhile: our context keeps its entry alive, and
     * a new key (maybe at the same address) does not find it. */
    stage_local *k2 = stage_local_new("again", &v_other);
    void *fresh = stage_local_get(k2);
    stage_local_set(k2, &v_child);
    stage_local_free(k2);
    return fresh == &v_other ? before : NULL;
}

START_TEST(test_free_in_use)
{
    stage_future *go = stage_future_new();
    struct hold h[2];
    stage_future *f[2];

    key_setup();
    for (int i = 0; i < 2; i++) {
        h[i] = (struct hold){g_key, stage_future_new(), go};
        ck_assert_int_eq(i == 0 ? stage_coro_spawn(NULL, hold, &h[i], NULL, 0,
                                                   &f[i])
                                : stage_thread_spawn(hold, &h[i], NULL, &f[i]),
                         0);
        ck_assert_int_eq(stage_future_wait(h[i].read, STAGE_FOREVER), 0);
    }
    stage_local_free(g_key);
    g_key = NULL;
    stage_future_resolve(go, NULL, NULL);
    for (int i = 0; i < 2; i++) {
        ck_assert_ptr_eq(got(f[i]), &v_parent);
        stage_future_unref(h[i].read);
    }
    stage_future_unref(go);

    /* Keys freed and made again, each set in the same context: entries of
     * freed keys are dropped, the context does not grow without bound. */
    for (int i = 0; i < 1000; i++) {
        stage_local *k = stage_local_new("churn", NULL);
        ck_assert_ptr_nonnull(k);
        ck_assert_ptr_null(stage_local_get(k));
        ck_assert_int_eq(stage_local_set(k, &v_child), 0);
        ck_assert_ptr_eq(stage_local_get(k), &v_child);
        stage_local_free(k);
    }
}
END_TEST

static Suite *local_suite(void)
{
    Suite *s = suite_create("local");
    TCase *tc = t_tcase(s, "basics", 10);

    tcase_add_test(tc, test_basics);
    tcase_add_test(tc, test_many_keys);
    tc = t_tcase(s, "inherit", 30);
    tcase_add_test(tc, test_inherit_coro_thread_pool);
    tcase_add_test(tc, test_inherit_other_loop);
    tcase_add_test(tc, test_inherit_run);
    tcase_add_test(tc, test_inherit_gen);
    tcase_add_test(tc, test_captured_at_creation);
    tc = t_tcase(s, "isolation", 10);
    tcase_add_test(tc, test_isolation);
    tcase_add_test(tc, test_plain_threads);
    tc = t_tcase(s, "run", 10);
    tcase_add_test(tc, test_run_copy);
    tcase_add_test(tc, test_run_spawn);
    tc = t_tcase(s, "free", 10);
    tcase_add_test(tc, test_free_in_use);
    return s;
}

T_MAIN(local_suite)
