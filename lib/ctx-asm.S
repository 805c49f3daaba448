/* SPDX-License-Identifier: MIT */
/*
 * ctx-asm.S - context switch for x86-64 (System V) and AArch64 (AAPCS64).
 *
 * void stage__ctx_switch(stage__ctx *from, stage__ctx *to)
 *   Pushes the callee-saved registers and the FP control state on the
 *   current stack, stores the stack pointer in from->sp, loads to->sp and
 *   pops the same frame from there.  Everything caller-saved is already
 *   saved by the compiler around the call.
 *
 * void stage__ctx_trampoline(void)
 *   The first "return address" of a new context (see ctx_init in
 *   ctx-ucontext.c's sibling, stage__ctx_init in stack.c): calls the entry
 *   function held in a callee-saved register with the argument held in
 *   another.  The entry never returns; a trap follows just in case.
 *
 * Frame layout (lowest address first), x86-64, 64 bytes:
 *   [sp+0] MXCSR (4 bytes) and x87 control word (2 bytes)
 *   [sp+8] r15  [sp+16] r14  [sp+24] r13  [sp+32] r12
 *   [sp+40] rbx [sp+48] rbp  [sp+56] return address
 * AArch64, 176 bytes:
 *   x19..x30 at [sp+0..95], d8..d15 at [sp+96..159], FPCR at [sp+160]
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

#else
#error "--with-context=asm: no assembly backend for this CPU; use ucontext"
#endif

#endif /* STAGE_CTX_ASM */

#if defined(__linux__) && defined(__ELF__)
    .section .note.GNU-stack, "", %progbits
#endif
