/*
 * Context switch for x86-64 (System V).
 *
 * void ctx_swap(void **save_sp, void *load_sp)
 *   Pushes the callee-saved registers (rbp, rbx, r12-r15) and the SSE/x87
 *   control words on the current stack, stores the stack pointer in
 *   *save_sp, loads load_sp and pops the same frame from there. Everything
 *   caller-saved is dead across the call, so this is the whole state.
 *
 * A fresh context (ctx_init in ctx.c) holds a frame whose return address is
 * ctx_entry, with r12 = argument and r13 = function: ctx_entry calls
 * fn(arg) with an aligned stack; fn never returns.
 */
    .text
    .globl  ctx_swap
    .hidden ctx_swap
    .type   ctx_swap,@function
    .p2align 4
ctx_swap:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   ctx_swap,.-ctx_swap

    .globl  ctx_entry
    .hidden ctx_entry
    .type   ctx_entry,@function
    .p2align 4
ctx_entry:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r12, %rdi
    callq   *%r13
    ud2
    .cfi_endproc
    .size   ctx_entry,.-ctx_entry

    .section .note.GNU-stack,"",@progbits
