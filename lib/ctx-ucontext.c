/* SPDX-License-Identifier: MIT */
/*
 * ctx-ucontext.c - stage__ctx_init for both backends.
 *
 * asm backend: lays out the first frame that stage__ctx_switch pops (see
 * ctx-asm.S), so that its `ret` lands in stage__ctx_trampoline with the
 * entry function and its argument in callee-saved registers.
 *
 * ucontext backend: makecontext passes only int arguments, so the pointer
 * to the start record travels split in two 32-bit halves.
 */
#include "common-int.h"
#include "ctx-int.h"

#include <string.h>

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

#else /* STAGE_CTX_ASM */

void stage__ctx_trampoline(void);

void stage__ctx_init(stage__ctx *ctx, void *stack_lo, size_t size,
                     void (*fn)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* After the 8 pops and ret, %rsp == top: 16-aligned, so the `call` in
     * the trampoline enters fn with the ABI's alignment. */
    uint64_t *f = (uint64_t *)(top - 64);
    memset(f, 0, 64);
    /* The new context starts with the creating thread's floating-point
     * control state (rounding, exception masks), as a C11 thread does and
     * as the ucontext backend's getcontext gives. */
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    f[0] = mxcsr | ((uint64_t)fpucw << 32);
    f[3] = (uint64_t)(uintptr_t)arg;            /* r13 */
    f[4] = (uint64_t)(uintptr_t)fn;             /* r12 */
    f[7] = (uint64_t)(uintptr_t)stage__ctx_trampoline;
    ctx->sp = f;
#elif defined(__aarch64__)
    uint64_t *f = (uint64_t *)(top - 176);
    memset(f, 0, 176);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    f[20] = fpcr; /* [sp+160]: the creating thread's FP control state */
    f[0] = (uint64_t)(uintptr_t)fn;  /* x19 */
    f[1] = (uint64_t)(uintptr_t)arg; /* x20 */
    f[11] = (uint64_t)(uintptr_t)stage__ctx_trampoline; /* x30 (lr) */
    ctx->sp = f;
#else
#error "no assembly context backend for this CPU"
#endif
}

#endif
