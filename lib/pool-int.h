/* SPDX-License-Identifier: MIT */
/*
 * pool-int.h - what the Stage needs from the pool beyond the public API.
 */
#ifndef STAGE_POOL_INT_H
#define STAGE_POOL_INT_H

#include "common-int.h"

/* stage_pool_submit, with the Stage that owns the task (for reports). */
int stage__pool_submit(stage_pool *p, stage_task_fn fn, void *arg,
                       stage_destroy_fn destroy, stage *owner,
                       stage_future **out);
/* The pool the calling thread works for, or NULL. */
stage_pool *stage__pool_current(void);

/* coro.c: stage_coro_spawn, with the owning Stage. */
int stage__coro_spawn(stage_loop *loop, stage_task_fn fn, void *arg,
                      stage_destroy_fn destroy, size_t stack_size,
                      stage *owner, stage_future **out);

#endif
