/* SPDX-License-Identifier: MIT */
/*
 * local.c - task-local variables, asyncio's contextvars.
 *
 * A context maps keys to values (borrowed pointers: the library never frees
 * a value).  Every task has one, held by its future (f->locals); a plain
 * thread has one in TLS.  A new task starts with its creator's context,
 * captured when its future is made (stage__future_new_task), and its
 * changes never reach its creator or its siblings:
 *
 *     creator ctx  --capture: refs++-->  shared by creator and child
 *     child sets   --refs > 1: copy, change the copy-->  child's own ctx
 *     sets again   --refs == 1: change in place (nobody else sees it)
 *
 * So a context is immutable while shared, and copied on the first write
 * after a spawn: spawning costs one relaxed atomic increment, and nothing
 * at all while the creator has no variable (its context is NULL).  A
 * context is a small unsorted array, searched linearly: programs have a
 * handful of variables.
 *
 * Only the owner of a context slot ever reads or writes it: a task's slot
 * is used by the task itself (it is the only one that runs as that task,
 * and the only one that spawns as it), and the TLS slot by its thread.  So
 * slots need no lock.  A shared context is only read; its reference count
 * decides who may write: the owner of the only reference.
 *
 * Keys are reference counted too: the application holds one, and every
 * entry holds one, so stage_local_free never leaves an entry pointing at
 * freed memory (nor a new key at the same address finding old values).
 * Entries of a freed key are dropped at the next copy of their context,
 * or with it.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"
#include "local-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct stage_local {
    /* The application's reference and one per context entry.  Relaxed
     * increment (the incrementer already holds a valid reference);
     * acq_rel decrement (the freeing side sees every other use). */
    atomic_size_t refs;
    /* Set by stage_local_free; relaxed: it only lets a copy drop entries
     * that nobody can look up any more. */
    atomic_int freed;
    void *def; /* the default value (borrowed) */
    char *name;
};

struct entry {
    stage_local *key; /* one reference */
    void *value;
};

struct stage__locals {
    /* One per holder (task futures, a TLS slot, a stage_local_run in
     * progress).  Relaxed increment: a holder already holds one.  acq_rel
     * decrement, and acquire when the owner checks for 1 before writing in
     * place: a former holder's last reads happen before that write. */
    atomic_size_t refs;
    size_t n, cap;
    struct entry e[];
};

/* A plain thread's context; the pthread key frees it at thread exit (the
 * main thread's is left for the process to end with). */
static _Thread_local stage__locals *tls_locals STAGE__TLS_MODEL;
static pthread_key_t locals_key;
static pthread_once_t locals_once = PTHREAD_ONCE_INIT;

static void locals_key_destructor(void *p)
{
    (void)p;
    stage__locals *m = tls_locals;
    tls_locals = NULL;
    stage__locals_unref(m);
}

static void locals_key_create(void)
{
    stage__assert(pthread_key_create(&locals_key, locals_key_destructor) ==
                  0);
}

/* The current context's slot: the running task's, or the thread's. */
static stage__locals **slot(void)
{
    stage_future *t = stage__task_current();
    return t ? &t->locals : &tls_locals;
}

/* Store m in slot s (whose previous content the caller disposed of). */
static void slot_store(stage__locals **s, stage__locals *m)
{
    *s = m;
    if (s == &tls_locals && m) {
        /* Arm the destructor (any non-NULL value will do). */
        pthread_once(&locals_once, locals_key_create);
        pthread_setspecific(locals_key, &tls_locals);
    }
}

static void key_unref(stage_local *k)
{
    if (atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
        return;
    free(k->name);
    free(k);
}

static stage__locals *locals_ref(stage__locals *m)
{
    if (m)
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void stage__locals_unref(stage__locals *m)
{
    if (!m || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) !=
                  1)
        return;
    for (size_t i = 0; i < m->n; i++)
        key_unref(m->e[i].key);
    free(m);
}

stage__locals *stage__locals_capture(void) { return locals_ref(*slot()); }

stage__locals *stage__locals_install(stage__locals *m)
{
    stage__locals **s = slot();
    stage__locals *prev = *s;
    slot_store(s, locals_ref(m));
    return prev;
}

void stage__locals_restore(stage__locals *prev)
{
    stage__locals **s = slot();
    stage__locals *cur = *s;
    slot_store(s, prev);
    stage__locals_unref(cur);
}

/* ---- Public API --------------------------------------------------------- */

stage_local *stage_local_new(const char *name, void *default_value)
{
    if (!name) {
        errno = EINVAL;
        return NULL;
    }
    stage_local *k = malloc(sizeof *k);
    char *copy = strdup(name);
    if (!k || !copy) {
        free(k);
        free(copy);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&k->refs, 1);
    atomic_init(&k->freed, 0);
    k->def = default_value;
    k->name = copy;
    return k;
}

void stage_local_free(stage_local *key)
{
    if (!key)
        return;
    atomic_store_explicit(&key->freed, 1, memory_order_relaxed);
    key_unref(key);
}

const char *stage_local_name(stage_local *key)
{
    return key ? key->name : NULL;
}

void *stage_local_get(stage_local *key)
{
    if (!key)
        return NULL;
    const stage__locals *m = *slot();
    if (m)
        for (size_t i = 0; i < m->n; i++)
            if (m->e[i].key == key)
                return m->e[i].value;
    return key->def;
}

int stage_local_set(stage_local *key, void *value)
{
    if (!key)
        return EINVAL;
    stage__locals **s = slot();
    stage__locals *m = *s;
    size_t found = m ? m->n : 0;
    if (m) {
        for (size_t i = 0; i < m->n && found == m->n; i++)
            if (m->e[i].key == key)
                found = i;
    }
    /* Ours alone: change it in place. */
    if (m && atomic_load_explicit(&m->refs, memory_order_acquire) == 1) {
        if (found < m->n) {
            m->e[found].value = value;
            return 0;
        }
        if (m->n < m->cap) {
            atomic_fetch_add_explicit(&key->refs, 1, memory_order_relaxed);
            m->e[m->n++] = (struct entry){key, value};
            return 0;
        }
    }
    /* Shared (or full): a copy, without the entries of freed keys. */
    size_t live = 0;
    for (size_t i = 0; m && i < m->n; i++)
        if (!atomic_load_explicit(&m->e[i].key->freed, memory_order_relaxed))
            live++;
    size_t cap = live + 1 + (live + 1) / 2 + 1; /* room for a few more */
    stage__locals *c = malloc(sizeof *c + cap * sizeof c->e[0]);
    if (!c)
        return ENOMEM;
    atomic_init(&c->refs, 1);
    c->cap = cap;
    c->n = 0;
    int placed = 0;
    for (size_t i = 0; m && i < m->n; i++) {
        struct entry e = m->e[i];
        if (e.key == key) {
            e.value = value;
            placed = 1;
        } else if (atomic_load_explicit(&e.key->freed,
                                        memory_order_relaxed)) {
            continue;
        }
        atomic_fetch_add_explicit(&e.key->refs, 1, memory_order_relaxed);
        c->e[c->n++] = e;
    }
    if (!placed) {
        atomic_fetch_add_explicit(&key->refs, 1, memory_order_relaxed);
        c->e[c->n++] = (struct entry){key, value};
    }
    slot_store(s, c);
    stage__locals_unref(m);
    return 0;
}

int stage_local_run(stage_task_fn fn, void *arg, void **result)
{
    if (!fn)
        return EINVAL;
    /* The current context, shared with the run: its first set copies. */
    stage__locals *prev = stage__locals_install(*slot());
    void *r = fn(arg);
    stage__locals_restore(prev);
    if (result)
        *result = r;
    return 0;
}
