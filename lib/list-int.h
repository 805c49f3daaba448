/* SPDX-License-Identifier: MIT */
/*
 * list-int.h - intrusive circular doubly-linked list.
 *
 *     head <-> a <-> b <-> c <-> (head)
 *
 * A node whose next pointer is NULL is "not on any list", so code can ask
 * whether another thread already unlinked a node (stage__node_linked) while
 * holding the lock of the list it was on.
 */
#ifndef STAGE_LIST_INT_H
#define STAGE_LIST_INT_H

#include <stddef.h>

typedef struct stage__node {
    struct stage__node *next;
    struct stage__node *prev;
} stage__node;

typedef stage__node stage__list;

static inline void stage__list_init(stage__list *l) { l->next = l->prev = l; }

static inline int stage__list_empty(const stage__list *l)
{
    return l->next == l;
}

static inline void stage__node_init(stage__node *n) { n->next = n->prev = NULL; }

static inline int stage__node_linked(const stage__node *n)
{
    return n->next != NULL;
}

static inline void stage__list_push(stage__list *l, stage__node *n)
{
    n->prev = l->prev;
    n->next = l;
    l->prev->next = n;
    l->prev = n;
}

static inline void stage__list_remove(stage__node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

static inline stage__node *stage__list_pop(stage__list *l)
{
    stage__node *n = l->next;
    if (n == l)
        return NULL;
    stage__list_remove(n);
    return n;
}

/* Move every node of `from` to the end of `to`; `from` becomes empty. */
static inline void stage__list_splice(stage__list *to, stage__list *from)
{
    if (stage__list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    stage__list_init(from);
}

#endif
