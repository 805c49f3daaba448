/* SPDX-License-Identifier: MIT */
/*
 * local-int.h - task-local variables (local.c): what the rest of the
 * library needs of contexts.
 *
 * A context is an immutable-once-shared, reference-counted small map from
 * keys to values.  Every task holds one (its future's `locals`, NULL when
 * empty); a plain thread holds one in TLS.  A new task captures its
 * creator's context at creation: one relaxed atomic increment, nothing at
 * all when the creator has no variables.
 */
#ifndef STAGE_LOCAL_INT_H
#define STAGE_LOCAL_INT_H

#include "common-int.h"

typedef struct stage__locals stage__locals;

/* The calling task's (or plain thread's) context, with one more reference
 * for the caller; NULL when it holds no variable. */
stage__locals *stage__locals_capture(void);
void stage__locals_unref(stage__locals *m);

/* Make a new reference to `m` the current context; returns the previous
 * one, which the caller hands back to stage__locals_restore.  Whatever is
 * set in between goes with the context that restore drops. */
stage__locals *stage__locals_install(stage__locals *m);
void stage__locals_restore(stage__locals *prev);

#endif
