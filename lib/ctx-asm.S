/* SPDX-License-Identifier: MIT */
/*
 * ctx-asm.S - the assembly context backend: x86-64 (System V) and AArch64
 * (AAPCS64).  Everything one CPU needs is in its block below, so a port
 * to another CPU is one more block here and its name in configure.ac's
 * list of asm CPUs (HACKING, "Platforms and porting").
 *
 * void stage__ctx_switch(stage__ctx *from, stage__ctx *to)
 *   Pushes the callee-saved registers and the FP control state on the
 *   current stack, stores the stack pointer in from->sp, loads to->sp and
 *   pops the same frame from there.  Everything caller-saved is already
 *   saved by the compiler around the call.
 *
 * void stage__ctx_init(stage__ctx *ctx, void *stack_lo, size_t size,
 *                      void (*fn)(void *), void *arg)
 *   Lays out, at the 16-byte aligned top of the stack, the frame that
 *   stage__ctx_switch pops: fn and arg in two callee-saved registers, the
 *   other registers zero (a zero frame pointer ends backtraces), the FP
 *   control state of the calling thread (rounding, exception masks: a new
 *   coroutine inherits them, as a C11 thread does and as the ucontext
 *   backend's getcontext gives), and as the return address
 *   stage__ctx_trampoline.  Stores the frame's address in ctx->sp.
 *
 * void stage__ctx_trampoline(void)
 *   Where the first switch to a new context "returns" to: calls fn(arg)
 *   with the stack 16-byte aligned, as the ABI wants at a call.  fn never
 *   returns; a trap follows just in case.
 *
 * Frame layout (lowest address first), x86-64, 64 bytes:
 *   [sp+0] MXCSR (4 bytes) and x87 control word (2 bytes)
 *   [sp+8] r15  [sp+16] r14  [sp+24] r13  [sp+32] r12
 *   [sp+40] rbx [sp+48] rbp  [sp+56] return address
 *   A new frame: r12 = fn, r13 = arg, return address = the trampoline;
 *   after the pops and the ret, %rsp is the aligned top.
 * AArch64, 176 bytes:
 *   x19..x30 at [sp+0..95], d8..d15 at [sp+96..159], FPCR at [sp+160]
 *   A new frame: x19 = fn, x20 = arg, x30 (lr) = the trampoline; sp is the
 *   aligned top after the switch.
 */
#include "config.h"

#if defined(STAGE_CTX_ASM)

#if defined(__x86_64__)

    .text
    .p2align 4
    .globl stage__ctx_switch
    .hidden stage__ctx_switch
    .type stage__ctx_switch, @function
stage__ctx_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size stage__ctx_switch, .-stage__ctx_switch

    .p2align 4
    .globl stage__ctx_trampoline
    .hidden stage__ctx_trampoline
    .type stage__ctx_trampoline, @function
stage__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq %r13, %rdi
    callq *%r12
    ud2
    .cfi_endproc
    .size stage__ctx_trampoline, .-stage__ctx_trampoline

    .p2align 4
    .globl stage__ctx_init
    .hidden stage__ctx_init
    .type stage__ctx_init, @function
stage__ctx_init:
    /* %rdi ctx, %rsi stack_lo, %rdx size, %rcx fn, %r8 arg */
    .cfi_startproc
    leaq (%rsi,%rdx), %rax
    andq $-16, %rax
    subq $64, %rax
    movq $0, (%rax)
    stmxcsr (%rax)
    fnstcw 4(%rax)
    movq $0, 8(%rax)
    movq $0, 16(%rax)
    movq %r8, 24(%rax)
    movq %rcx, 32(%rax)
    movq $0, 40(%rax)
    movq $0, 48(%rax)
    leaq stage__ctx_trampoline(%rip), %rdx
    movq %rdx, 56(%rax)
    movq %rax, (%rdi)
    ret
    .cfi_endproc
    .size stage__ctx_init, .-stage__ctx_init

#elif defined(__aarch64__)

    .text
    .p2align 4
    .globl stage__ctx_switch
    .hidden stage__ctx_switch
    .type stage__ctx_switch, %function
stage__ctx_switch:
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x9, sp
    str x9, [x0]
    ldr x9, [x1]
    mov sp, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    ldr x9, [sp, #160]
    msr fpcr, x9
    add sp, sp, #176
    ret
    .size stage__ctx_switch, .-stage__ctx_switch

    .p2align 4
    .globl stage__ctx_trampoline
    .hidden stage__ctx_trampoline
    .type stage__ctx_trampoline, %function
stage__ctx_trampoline:
    mov x0, x20
    blr x19
    brk #0
    .size stage__ctx_trampoline, .-stage__ctx_trampoline

    .p2align 4
    .globl stage__ctx_init
    .hidden stage__ctx_init
    .type stage__ctx_init, %function
stage__ctx_init:
    /* x0 ctx, x1 stack_lo, x2 size, x3 fn, x4 arg */
    add x9, x1, x2
    and x9, x9, #~15
    sub x9, x9, #176
    stp x3, x4, [x9, #0]
    stp xzr, xzr, [x9, #16]
    stp xzr, xzr, [x9, #32]
    stp xzr, xzr, [x9, #48]
    stp xzr, xzr, [x9, #64]
    adr x10, stage__ctx_trampoline
    stp xzr, x10, [x9, #80]
    stp xzr, xzr, [x9, #96]
    stp xzr, xzr, [x9, #112]
    stp xzr, xzr, [x9, #128]
    stp xzr, xzr, [x9, #144]
    mrs x10, fpcr
    stp x10, xzr, [x9, #160]
    str x9, [x0]
    ret
    .size stage__ctx_init, .-stage__ctx_init

#else
#error "--with-context=asm: no assembly backend for this CPU; use ucontext"
#endif

#endif /* STAGE_CTX_ASM */

#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack, "", %progbits
#endif
