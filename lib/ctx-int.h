/* SPDX-License-Identifier: MIT */
/*
 * ctx-int.h - the stack-switch backend, behind a two-function seam.
 *
 * stage__ctx_init prepares a context that, when first switched to, calls
 * fn(arg) on the given stack; fn must never return (a coroutine ends by
 * switching away for good).  stage__ctx_switch saves the current context in
 * *from and resumes *to.  A context that has never run needs no init when
 * it is only ever a `from` first (the root context of a thread).
 *
 * Backends, chosen by configure --with-context:
 *   asm       ctx-asm.S: x86-64 and AArch64.  Saves only callee-saved
 *             registers plus the FP control words (MXCSR and x87 CW, or
 *             FPCR); about 20 instructions, no system call.
 *   ucontext  ctx-ucontext.c: POSIX makecontext/swapcontext, for every other
 *             architecture.  swapcontext saves the signal mask with a system
 *             call, so it is an order of magnitude slower.
 * A port to a new architecture adds one block to ctx-asm.S and one case in
 * configure.ac.
 */
#ifndef STAGE_CTX_INT_H
#define STAGE_CTX_INT_H

#include <stddef.h>

#if defined(STAGE_CTX_UCONTEXT)
#include <ucontext.h>
typedef struct stage__ctx {
    ucontext_t uc;
} stage__ctx;
#else
typedef struct stage__ctx {
    void *sp; /* saved stack pointer; the registers are on that stack */
} stage__ctx;
#endif

void stage__ctx_init(stage__ctx *ctx, void *stack_lo, size_t size,
                     void (*fn)(void *), void *arg);
void stage__ctx_switch(stage__ctx *from, stage__ctx *to);

#endif
