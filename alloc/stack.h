/*
 * Process stacks: mmap'ed, recycled through a per-scheduler cache and a
 * global pool.
 *
 * Overflow protection: a guard page below every stack where it is cheap,
 * a canary where it is not.
 *  - With the kernel's guard regions (Linux 6.13, MADV_GUARD_INSTALL),
 *    default-size stacks are carved 64 at a time from one mapping (an
 *    arena: one map entry) with a guard page at the bottom of every
 *    stride, all 64 installed by one system call when the arena is
 *    mapped and kept through every release of the stacks' pages
 *    (stack.c). Every such stack is guarded; stacks of other sizes are
 *    mapped alone with a guard while the budget below lasts.
 *  - Without them, a guard page is an mprotect(PROT_NONE) page, which
 *    splits its mapping: a stack mapped alone with one costs two map
 *    entries, so guarded stacks are held to a budget derived from
 *    vm.max_map_count (HIVE_GUARD_STACKS, default 1024). A fault in a
 *    guard page prints the pid and aborts.
 *  - Beyond the budget (or with HIVE_GUARD_STACKS=0) stacks come from
 *    arenas without guards. Their lowest 64 bytes are a canary that must
 *    stay zero: checked on every switch out of the process. Each such
 *    stack sits 64 bytes below its stride, so its canary is the top line
 *    of the previous stack's top page, already resident (stack.c,
 *    CANARY_SHIFT): the check costs neither memory nor a page fault.
 *    Releasing that previous stack's pages zeroes the canary. An
 *    overflow that writes only zeros there, or that skips past it and
 *    returns before the process next switches, is not caught.
 */
#ifndef HIVE_STACK_H
#define HIVE_STACK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct stack_arena;

/* The descriptor sits in the stack's own top bytes (stack.c): valid while
 * the stack is in use, cached, pooled or idle, gone with its pages when
 * they are given back. */
struct stack {
    struct stack *next;     /* link on its arena's idle list */
    char   *map;            /* whole mapping, guard included */
    size_t  map_size;
    char   *lo;             /* lowest usable byte (the canary lives here) */
    size_t  size;           /* usable bytes: from lo up to this descriptor */
    struct stack_arena *arena; /* carved from this arena (never unmapped
                                * alone), NULL for a stack mapped alone */
    void   *tsan_fiber;
    unsigned vg_id;
    uint16_t tsan_lives;    /* contexts started on tsan_fiber (TSan only) */
    bool    guarded;
};

/* An arena stack whose memory nobody has touched yet (a fresh one, or one
 * whose pages were given back): what stack_get_or_reserve hands out
 * instead of a stack, so that the page fault of its first page is taken by
 * whoever calls stack_claim, not by the caller. arena NULL: none. */
struct stack_resv {
    struct stack_arena *arena;
    unsigned index;
};

/* Warm stacks a scheduler keeps for itself (alloc/stack.c says why so
 * many). */
#define STACK_CACHE_MAX 2048u

struct stack_cache {        /* per scheduler, owner thread only */
    unsigned count;
    /* Stacks this cache's owner took minus those it gave back (either may
     * be negative: a stack can come back on another scheduler). Written by
     * the owner alone (load + store, no read-modify-write), summed by
     * stack_in_use over the caches on the global list. */
    _Atomic long in_use;
    bool listed;
    struct stack_cache *list_next;
    /* The stacks, the most recently put last. An array rather than a list
     * through the descriptors: a descriptor lives on its stack's own page,
     * cold on this core when the stack last ran on another, so moving a
     * batch to or from the global pool copies pointers and touches no
     * stack. */
    struct stack *slot[STACK_CACHE_MAX];
};


/* guard_stacks < 0: derive the budget from vm.max_map_count. */
void stack_global_init(size_t default_size, int guard_stacks);
void stack_global_fini(void);
/* A stack of the default size (from the cache, the pool, or fresh), or of
 * `size` if it differs. NULL when memory is exhausted. */
struct stack *stack_get(struct stack_cache *c, size_t size);
void stack_put(struct stack_cache *c, struct stack *s);
/* Like stack_get, except that an untouched arena stack comes back as
 * *r (and NULL). NULL with r->arena NULL: no memory. */
struct stack *stack_get_or_reserve(struct stack_cache *c, size_t size, struct stack_resv *r);
/* The stack of a reservation (writes its descriptor: its first page
 * fault). Cannot fail; the reservation is used up. */
struct stack *stack_claim(const struct stack_resv *r);
/* Gives back a reservation that was never claimed. */
void stack_unreserve(struct stack_cache *c, const struct stack_resv *r);
void stack_cache_flush(struct stack_cache *c);
/* Trades w, a warm default-size stack had elsewhere (a spawn's, on the
 * spawner's core), for the one c's owner put last, the warmest on this
 * core: w takes its place in the cache. Moves two pointers and touches
 * neither stack. w itself when c is empty. */
static inline struct stack *stack_cache_trade(struct stack_cache *c, struct stack *w)
{
    if (!c->count)
        return w;
    struct stack *h = c->slot[c->count - 1];
    c->slot[c->count - 1] = w;
    return h;
}
/* What an idle scheduler keeps (runtime/sched/sched.c, "Quiet trim"): its
 * cache's warmest STACK_TRIM_KEEP, and STACK_TRIM_POOL in the pool. */
#define STACK_TRIM_KEEP 64u
#define STACK_TRIM_POOL 64u
/* Gives back what c holds beyond its keep warmest, and what the global
 * pool holds beyond STACK_TRIM_POOL, the way stacks beyond a full pool
 * go: arena stacks to their arenas' idle lists, whose memory goes back to
 * the kernel in batches (madvise) past the resident limit, stacks mapped
 * alone unmapped. c's owner thread (c may be NULL). Returns how many
 * stacks left the cache and the pool. */
unsigned stack_trim(struct stack_cache *c, unsigned keep);
static inline bool stack_intact(const struct stack *s)
{
    const volatile uint64_t *w = (const volatile uint64_t *)s->lo;
    return (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) == 0;
}
/* Is addr inside s's guard page? */
bool stack_in_guard(const struct stack *s, const void *addr);
/* Whether guard pages are the kernel's guard regions (Linux 6.13,
 * madvise MADV_GUARD_INSTALL: no map entry of their own) rather than
 * mprotect(PROT_NONE) pages, which split their stack's mapping. */
bool stack_guard_regions(void);
/* Tests: answer stack_guard_regions with v (1 as if the kernel had guard
 * regions, 0 as if it lacked them, -1 to probe again); before
 * stack_global_init, which decides from it whether arenas are guarded. */
void stack_guard_regions_force(int v);
/* The TSan fiber for a context about to start afresh at its entry on s
 * (NULL without TSan). A fiber's shadow call stack still holds the frames
 * of the last context that left s without returning (an exit, a handler
 * giving its stack back); starting on top of them would pile up frames,
 * life after life, until the shadow stack (65,536 frames) overflows. So
 * every STACK_FIBER_LIVES starts s gets a new fiber (a new fiber costs a
 * map and an unmap of TSan's shadow stack, too slow for every start):
 * enough while no context leaves a stack from deeper than 2,000 frames.
 * Never for the running context's own stack. */
#define STACK_FIBER_LIVES 32u
#if defined(__SANITIZE_THREAD__)
void *stack_fresh_fiber(struct stack *s);
#else
static inline void *stack_fresh_fiber(struct stack *s)
{
    (void)s;
    return NULL;
}
#endif
uint64_t stack_mmaps(void);   /* system calls spent on stacks so far */

#endif

/* Stacks handed out and not yet given back (introspection, tests). */
long stack_in_use(void);
