/*
 * Context switch for AArch64 (AAPCS64).
 *
 * void ctx_swap(void **save_sp, void *load_sp)
 *   Saves x19-x30 and d8-d15 (the callee-saved set) in a 160-byte frame on
 *   the current stack, stores sp in *save_sp, loads load_sp and restores the
 *   same frame from there; returns through the restored x30.
 *
 * A fresh context holds x19 = argument, x20 = function, x30 = ctx_entry.
 */
    .text
    .globl  ctx_swap
    .hidden ctx_swap
    .type   ctx_swap,%function
    .p2align 4
ctx_swap:
    sub     sp, sp, #160
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8,  d9,  [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mov     x2, sp
    str     x2, [x0]
    mov     sp, x1
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8,  d9,  [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #160
    ret
    .size   ctx_swap,.-ctx_swap

    .globl  ctx_entry
    .hidden ctx_entry
    .type   ctx_entry,%function
    .p2align 4
ctx_entry:
    mov     x0, x19
    blr     x20
    brk     #0
    .size   ctx_entry,.-ctx_entry

    .section .note.GNU-stack,"",%progbits
