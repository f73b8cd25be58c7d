/* Fresh contexts: lay out the frame that ctx_swap pops. */
#include "runtime/sched/ctx.h"

#include <stdint.h>
#include <string.h>

#ifdef HIVE_ASAN
#include <sanitizer/asan_interface.h>
#endif


void ctx_init(struct ctx *c, void *lo, size_t size, void (*fn)(void *), void *arg)
{
    uintptr_t top = ((uintptr_t)lo + size) & ~(uintptr_t)15;
#ifdef HIVE_ASAN
    /* A recycled stack may still carry the poison of frames that were
     * abandoned (an exited process, an idle handler): start clean. The
     * canary word at the bottom stays outside ASan's view. */
    ASAN_UNPOISON_MEMORY_REGION(lo, size);
#endif
    c->stack_lo = lo;
    c->stack_size = size;
    c->asan_fake = NULL;
#if defined(__x86_64__)
    /* ctx_swap pops: 8 bytes of control words, r15 r14 r13 r12 rbx rbp, then
     * returns into ctx_entry. After that ret, rsp = frame + 64 must be
     * 16-byte aligned so that ctx_entry's call leaves the callee aligned. */
    uint64_t *f = (uint64_t *)(top - 64 - 16);
    memset(f, 0, 64);
    uint32_t *cw = (uint32_t *)f;
    cw[0] = 0x1F80;              /* MXCSR default */
    cw[1] = 0x037F;              /* x87 control word default */
    f[1] = 0;                    /* r15 */
    f[2] = 0;                    /* r14 */
    f[3] = (uint64_t)(uintptr_t)fn;   /* r13 */
    f[4] = (uint64_t)(uintptr_t)arg;  /* r12 */
    f[5] = 0;                    /* rbx */
    f[6] = 0;                    /* rbp */
    f[7] = (uint64_t)(uintptr_t)ctx_entry;
    c->sp = f;
#elif defined(__aarch64__)
    uint64_t *f = (uint64_t *)(top - 160 - 16);
    memset(f, 0, 160);
    f[0] = (uint64_t)(uintptr_t)arg;       /* x19 */
    f[1] = (uint64_t)(uintptr_t)fn;        /* x20 */
    f[11] = (uint64_t)(uintptr_t)ctx_entry;/* x30 */
    c->sp = f;
#else
#error "hive supports x86-64 and aarch64"
#endif
}
