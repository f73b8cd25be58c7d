/*
 * Execution contexts: a saved stack pointer plus what the sanitizers need
 * to know about the stack it points into.
 *
 * Every switch in hive goes through ctx_switch so that ASan (fake stacks),
 * TSan (fibers) and valgrind (registered stacks, see alloc/stack.c) see
 * each one. A context that starts for the first time must call
 * ctx_started() before anything else.
 */
#ifndef HIVE_CTX_H
#define HIVE_CTX_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define HIVE_ASAN 1
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#define HIVE_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif

/* Functions that read thread-local state. A process can resume on another
 * thread after any switch, and the compiler treats the thread pointer as
 * constant within a function, so such reads must stay real calls: not
 * inlined, and (noipa) not analysed across functions either, which with
 * link-time optimization could let a result be reused after a switch. */
#if defined(__clang__)
#define HIVE_TLS_ACCESSOR __attribute__((noinline))
#else
#define HIVE_TLS_ACCESSOR __attribute__((noinline, noipa))
#endif

/* A hint to the core that we are spinning on a shared location. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield" ::: "memory");
#endif
}

struct ctx {
    void       *sp;          /* saved stack pointer while switched out */
    const void *stack_lo;    /* lowest address of the stack (for ASan) */
    size_t      stack_size;
    void       *tsan_fiber;  /* TSan's handle for this stack */
    void       *asan_fake;   /* ASan's fake-stack handle while switched out */
};

/* Implemented in ctx_<arch>.S. */
void ctx_swap(void **save_sp, void *load_sp);
/* Where a fresh context starts (ctx_<arch>.S): calls the function ctx_init
 * stored in its frame. */
void ctx_entry(void);

/* Prepares c to start fn(arg) on the stack [lo, lo + size). */
void ctx_init(struct ctx *c, void *lo, size_t size, void (*fn)(void *), void *arg);

/* Switches from the running context `from` to `to`. When `from` will never
 * run again (a process that exited) pass dying = true so ASan can free its
 * fake stack. Returns when something switches back to `from`. */
static inline void ctx_switch(struct ctx *from, struct ctx *to, bool dying)
{
#ifdef HIVE_ASAN
    __sanitizer_start_switch_fiber(dying ? NULL : &from->asan_fake, to->stack_lo,
                                   to->stack_size);
#else
    (void)dying;
#endif
#ifdef HIVE_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    ctx_swap(&from->sp, to->sp);
#ifdef HIVE_ASAN
    __sanitizer_finish_switch_fiber(from->asan_fake, NULL, NULL);
#endif
}

/* First thing a fresh context runs. */
static inline void ctx_started(void)
{
#ifdef HIVE_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
}

#endif
