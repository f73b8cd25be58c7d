/*
 * Process stacks: mmap'ed, recycled through a per-scheduler cache and a
 * global pool.
 *
 * Overflow protection has two layers:
 *  - a guard page (PROT_NONE) below the stack, while the number of guarded
 *    stacks stays under a budget derived from vm.max_map_count (each guard
 *    splits the mapping: two map entries per stack, so the default 65530
 *    allows ~32k). A fault in a guard page prints the pid and aborts.
 *  - a canary word at the bottom of every stack, checked on every switch
 *    out of a process; this is what protects stacks beyond the budget
 *    (an overflow that skips the canary entirely is not caught there).
 */
#ifndef HIVE_STACK_H
#define HIVE_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stack {
    struct stack *next;     /* pool link */
    char   *map;            /* whole mapping, guard included */
    size_t  map_size;
    char   *lo;             /* lowest usable byte (the canary lives here) */
    size_t  size;           /* usable bytes */
    bool    guarded;
    void   *tsan_fiber;
    unsigned vg_id;
};

struct stack_cache {        /* per scheduler, owner thread only */
    struct stack *head;
    unsigned count;
};

#define STACK_CANARY 0x6869766563616e79ull  /* "hivecany" */

void stack_global_init(size_t default_size);
void stack_global_fini(void);
/* A stack of the default size (from the cache, the pool, or fresh), or of
 * `size` if it differs. NULL when memory is exhausted. */
struct stack *stack_get(struct stack_cache *c, size_t size);
void stack_put(struct stack_cache *c, struct stack *s);
void stack_cache_flush(struct stack_cache *c);
static inline bool stack_intact(const struct stack *s)
{
    return *(const volatile uint64_t *)s->lo == STACK_CANARY;
}
/* Is addr inside s's guard page? */
bool stack_in_guard(const struct stack *s, const void *addr);
uint64_t stack_mmaps(void);   /* system calls spent on stacks so far */

#endif

/* Stacks handed out and not yet given back (introspection, tests). */
long stack_in_use(void);
