/* SPDX-License-Identifier: MIT */
/*
 * ctx-ucontext.c - the ucontext context backend (configure
 * --with-context=ucontext), for CPUs that ctx-asm.S does not know.
 *
 * makecontext passes only int arguments, so the pointer to the start
 * record travels split in two 32-bit halves.  The assembly backend is all
 * in ctx-asm.S.
 */
#include "common-int.h"
#include "ctx-int.h"

#if defined(STAGE_CTX_UCONTEXT)

#include <stdint.h>

struct start {
    void (*fn)(void *);
    void *arg;
};

static void trampoline(unsigned int hi, unsigned int lo)
{
    uintptr_t p = ((uintptr_t)hi << 16 << 16) | (uintptr_t)lo;
    struct start *s = (struct start *)p;
    s->fn(s->arg);
    stage__panic(__FILE__, __LINE__, "coroutine entry returned");
}

void stage__ctx_init(stage__ctx *ctx, void *stack_lo, size_t size,
                     void (*fn)(void *), void *arg)
{
    /* The start record lives at the top of the new stack; makecontext's
     * frame goes below it. */
    char *top = (char *)stack_lo + size;
    struct start *s =
        (struct start *)(((uintptr_t)top - sizeof *s) & ~(uintptr_t)15);
    s->fn = fn;
    s->arg = arg;
    stage__assert(getcontext(&ctx->uc) == 0);
    ctx->uc.uc_stack.ss_sp = stack_lo;
    ctx->uc.uc_stack.ss_size = (size_t)((char *)s - (char *)stack_lo);
    ctx->uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)s;
    makecontext(&ctx->uc, (void (*)(void))trampoline, 2,
                (unsigned int)(p >> 16 >> 16), (unsigned int)p);
}

void stage__ctx_switch(stage__ctx *from, stage__ctx *to)
{
    stage__assert(swapcontext(&from->uc, &to->uc) == 0);
}

#endif
