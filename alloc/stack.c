/*
 * Process stacks: where they come from and how their memory goes back.
 *
 * A stack given back goes, in order of preference, to its scheduler's
 * cache (CACHE_MAX), to the global pool (POOL_MAX), and, for an arena stack
 * beyond those, onto its arena's idle list: still resident and reused as it
 * is, with no system call. An arena's pages go back to the kernel in
 * batches, never one stack per exit:
 *  - when every stack of an arena is free (idle or already released), one
 *    madvise(MADV_DONTNEED) over the whole arena releases all 64;
 *  - when more than RESIDENT_MAX stacks sit idle across the arenas (free
 *    stacks scattered among live ones), whole arenas' idle stacks are
 *    released, one madvise per run of adjacent free stacks, until half
 *    that many are left.
 * Released stacks stay on their arena's cold mask and are reused last
 * (fresh zero pages). Stacks being released are on no list while the lock
 * is dropped around the system calls, so none is handed out then, and no
 * range given to madvise ever holds a stack that is in use or being
 * carved. A guarded stack (its own mapping) beyond the cache and the pool
 * is unmapped.
 *
 * A stack's descriptor (struct stack) lives in its own top 64 bytes, on
 * the page a process's first frames dirty anyway: a process costs no
 * memory for it beyond its stack page. A released stack's descriptor goes
 * with its pages, so released stacks are known by their bit in the
 * arena's cold mask alone, and the descriptor is written afresh when one
 * is taken (desc_init).
 */
#include "alloc/stack.h"

#include "alloc/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* The sanitizer switches this file needs: runtime/sched/ctx.h, which used
 * to bring them, is a higher room and no longer included here. Without
 * them a TSan build gives every stack a NULL fiber. */
#if defined(__SANITIZE_ADDRESS__) && !defined(HIVE_ASAN)
#define HIVE_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(HIVE_TSAN)
#define HIVE_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif

#ifdef HIVE_ASAN
#include <sanitizer/asan_interface.h>
/* Memory that held a stack may carry the poison of abandoned frames; clear
 * it before the range goes back to the kernel (and maybe to a new mapping). */
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define UNPOISON(p, n) ((void)0)
#endif

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HIVE_HAVE_VALGRIND 1
#endif

/* Stacks a scheduler keeps for itself. A process gets its stack at spawn,
 * so a parent that spawns a slice's worth of children (the default budget
 * is 2000 reductions, a spawn costs one) holds that many stacks until they
 * run; a cache that size keeps them off the global pool's lock, and the
 * children's exits refill it for the next slice. */
#define CACHE_MAX STACK_CACHE_MAX
#define POOL_MAX  4096u    /* stacks kept globally, any kind */
/* Idle arena stacks kept resident beyond the caches and the pool; past
 * this, idle stacks are released down to half of it. Small: servers that
 * hold 10,000 idle connections in stackless gen_servers pay for every
 * resident stack (4096 here cost 0.7 KiB per connection; 128 cost spawn's
 * burst exit 25k madvise calls for 1M processes instead of 15.5k). */
#define RESIDENT_MAX 128u

static size_t g_default_size;
static size_t g_page;
static long   g_guard_budget;
static _Atomic long g_guarded;
static _Atomic uint64_t g_syscalls;
static _Atomic long g_in_use;

static pthread_mutex_t g_pool_lock = PTHREAD_MUTEX_INITIALIZER;
/* Warm stacks (pages still resident), the most recently put last: an
 * array like the caches', so a batch moves between the two by copying
 * pointers, without a walk through descriptors on other cores' lines. */
static struct stack *g_pool[POOL_MAX];
static unsigned g_pool_count;

#define ARENA_STACKS 64u    /* one bit each in the masks below */
struct stack_arena {        /* everything under g_pool_lock */
    struct stack_arena *next;       /* g_arenas: all of them */
    struct stack_arena *warm_next;  /* g_warm, while on_warm */
    struct stack_arena *cold_next;  /* g_cold, while on_cold */
    char    *map;
    size_t   size;                  /* the whole mapping */
    size_t   stack_size;            /* what a stack's owner gets, descriptor included */
    size_t   stride;                /* stack_size, plus the guard page when guarded */
    bool     guarded;               /* a guard page at the bottom of every stride */
    unsigned used;                  /* stacks carved so far */
    unsigned nidle;
    bool     on_warm, on_cold;
    uint64_t idle_bits;             /* stacks on idle, by index */
    uint64_t cold_bits;             /* free stacks whose pages were given
                                     * back (no descriptor), by index */
    struct stack *idle;             /* free, pages maybe resident */
};
static struct stack_arena *g_arenas;    /* the head is being carved */
/* Arenas that may have idle (warm) or cold stacks: an arena whose list has
 * emptied stays until a search passes it. */
static struct stack_arena *g_warm, *g_cold;
static unsigned g_idle_count;           /* stacks on the arenas' idle lists */
/* Caches whose in_use counts are part of stack_in_use, under g_pool_lock. */
static struct stack_cache *g_caches;

/* Guard pages. Linux 6.13 has guard regions (madvise MADV_GUARD_INSTALL):
 * a page that faults on any access without a mapping of its own, so a
 * guarded stack stays one map entry, and stacks mapped one after another
 * merge into one. Older kernels get mprotect(PROT_NONE), which splits
 * the stack's mapping in two. With guard regions call_timeout_storm (its
 * first 1,024 stacks guarded) went from 41.0-42.9 to 39.0-40.9 ms
 * (medians of 4 sets of alternated runs; docs/performance.md). Probed
 * once: 1 = guard regions, 0 = mprotect. Relaxed: the value stands alone
 * (no other data is published with it), and threads that race to probe
 * all get the same answer from the kernel. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
static _Atomic int g_guard_regions = -1;
/* Whether new arenas guard their stacks: guard regions, and guards not
 * turned off (HIVE_GUARD_STACKS=0). Set by stack_global_init, cleared
 * by a carve whose guards the kernel refused (the stacks carved before
 * keep theirs: a guard is per arena). Relaxed, with no partner: it stands
 * alone, each arena records what it read in a->guarded under
 * g_pool_lock, and a reader that sees it late only makes one more
 * arena of the old kind. */
static _Atomic bool g_arena_guards;

void stack_guard_regions_force(int v)
{
    atomic_store_explicit(&g_guard_regions, v, memory_order_relaxed);
}

bool stack_guard_regions(void)
{
    int v = atomic_load_explicit(&g_guard_regions, memory_order_relaxed);
    if (v < 0) {
        void *p = mmap(NULL, g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        v = p != MAP_FAILED && madvise(p, g_page, MADV_GUARD_INSTALL) == 0;
        if (p != MAP_FAILED)
            munmap(p, g_page);
        atomic_fetch_add_explicit(&g_syscalls, 3, memory_order_relaxed);
        atomic_store_explicit(&g_guard_regions, v, memory_order_relaxed);
    }
    return v;
}

/* Makes the page at m a guard page; false if the kernel refused (over
 * the map limit, for mprotect). */
static bool guard_install(char *m)
{
    if (stack_guard_regions() && madvise(m, g_page, MADV_GUARD_INSTALL) == 0)
        return true;
    return mprotect(m, g_page, PROT_NONE) == 0;
}

void stack_global_init(size_t default_size, int guard_stacks)
{
    g_page = (size_t)sysconf(_SC_PAGESIZE);
    g_default_size = (default_size + g_page - 1) & ~(g_page - 1);
    long maps = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &maps) != 1)
            maps = 65530;
        fclose(f);
    }
    /* Two map entries per guarded stack (with mprotect; at most one with
     * guard regions); leave half of the limit to the program and its
     * libraries. */
    g_guard_budget = maps / 4;
    if (guard_stacks >= 0 && guard_stacks < g_guard_budget)
        g_guard_budget = guard_stacks;
    atomic_store(&g_guarded, 0);
    atomic_store_explicit(&g_arena_guards, guard_stacks != 0 && stack_guard_regions(),
                          memory_order_relaxed);
}

static void stack_register(struct stack *s)
{
#ifdef HIVE_TSAN
    s->tsan_fiber = __tsan_create_fiber(0);
    s->tsan_lives = 0;
#else
    s->tsan_fiber = NULL;
#endif
#ifdef HIVE_HAVE_VALGRIND
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + s->size);
#else
    s->vg_id = 0;
#endif
}

#ifdef HIVE_TSAN
void *stack_fresh_fiber(struct stack *s)
{
    if (++s->tsan_lives >= STACK_FIBER_LIVES && s->tsan_fiber != __tsan_get_current_fiber()) {
        __tsan_destroy_fiber(s->tsan_fiber);
        s->tsan_fiber = __tsan_create_fiber(0);
        s->tsan_lives = 0;
    }
    return s->tsan_fiber;
}
#endif

static void stack_unregister(struct stack *s)
{
#ifdef HIVE_TSAN
    __tsan_destroy_fiber(s->tsan_fiber);
#endif
#ifdef HIVE_HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    (void)s;
}

/* Writes the descriptor of the stack whose mapping (guard included) is
 * [map, map + map_size) into its top bytes; the process gets the rest. */
_Static_assert(sizeof(struct stack) % 16 == 0, "the stack top stays 16-byte aligned");
static struct stack *desc_init(char *map, size_t map_size, size_t size, struct stack_arena *a,
                               bool guarded)
{
    struct stack *s = (struct stack *)(map + map_size - sizeof(struct stack));
    s->next = NULL;
    s->map = map;
    s->map_size = map_size;
    s->lo = map + (map_size - size);
    s->size = size - sizeof(struct stack);
    s->guarded = guarded;
    s->arena = a;
    stack_register(s);
    return s;
}

/* Where an arena's stacks lie: stride_i = base + i * stride, base one page
 * into the mapping.
 *
 * A guarded arena (the kernel's guard regions, Linux 6.13) has a guard
 * page at the bottom of every stride and the stack above it: stack i is
 * [stride_i, stride_i + stride), its guard page first. The guards are
 * installed when the arena is mapped, all 64 with one process_madvise
 * (one madvise each where that call refuses), and stay through every
 * MADV_DONTNEED that gives the stacks' pages back: they take no map
 * entry and no memory beyond page-table entries, so every stack is
 * guarded for one system call per 64 stacks, once.
 *
 * An unguarded arena (older kernels, HIVE_GUARD_STACKS=0) has stride ==
 * stack_size, and stack i is [stride_i - CANARY_SHIFT, stride_i +
 * stack_size - CANARY_SHIFT): every stack sits 64 bytes below its stride,
 * so its canary (its lowest 64 bytes) is the top line of the page below
 * its stride, the previous stack's top page, which that stack's first
 * frames made resident (the first stack's is in the lead page). Checking
 * a canary at the bottom of the stack's own range read a page nothing
 * else touches: a zero-page fault per process, as many faults as the
 * process's real first page (spawn: 2.1M faults for a million processes,
 * 1.1M since). */
#define CANARY_SHIFT 64u
/* How far below its stride a stack of a begins. */
static size_t arena_shift(const struct stack_arena *a)
{
    return a->guarded ? 0 : CANARY_SHIFT;
}

static char *arena_base(const struct stack_arena *a)
{
    return a->map + g_page;
}

/* An arena stack by index (carved, or taken cold) becomes a stack: its
 * descriptor is written, after g_pool_lock is dropped, so that the page
 * fault of a fresh page is not taken under the lock. */
static struct stack *arena_desc(struct stack_resv t)
{
    struct stack_arena *a = t.arena;
    char *map = arena_base(a) + (size_t)t.index * a->stride - arena_shift(a);
    if (a->guarded)
        return desc_init(map, a->stride, a->stack_size, a, true);
    /* The canary lies in stack index-1's top page, which the process's
     * first switch reads. If stack index-1 is still a reservation nobody
     * has claimed (the other scheduler runs its process later), that read
     * maps the zero page, and index-1's own descriptor write then takes a
     * second fault that replaces it, with a TLB shootdown of every other
     * core: an IPI, several microseconds in a VM (call_timeout_storm: 650
     * of them for 10,000 spawns, 4 of its 51 ms). So the canary is
     * written first (zero, what it must hold): the page is faulted in
     * writable once. index-1 was not cold when index was taken (cold
     * stacks go lowest first, and carving waits for them), so its page is
     * resident already or about to be. Stack 0's canary is in the lead
     * page, which nothing writes. */
    if (t.index)
        *(volatile uint64_t *)map = 0;
    return desc_init(map, a->stack_size, a->stack_size, a, false);
}

#ifndef PIDFD_SELF
#define PIDFD_SELF (-10000)   /* the calling process (Linux 6.14) */
#endif

/* Installs the guard page of each of a's 64 strides: one process_madvise
 * over all of them where the kernel takes it for the calling process
 * (6.13 allows every advice there, 6.14 knows PIDFD_SELF), else one
 * madvise each. False if the kernel refused a guard (page tables out of
 * memory). */
static bool arena_guards_install(struct stack_arena *a)
{
    struct iovec v[ARENA_STACKS];
    for (unsigned i = 0; i < ARENA_STACKS; i++)
        v[i] = (struct iovec){ arena_base(a) + (size_t)i * a->stride, g_page };
#ifdef SYS_process_madvise
    long done = syscall(SYS_process_madvise, PIDFD_SELF, v, ARENA_STACKS, MADV_GUARD_INSTALL, 0);
    atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
    if (done == (long)(ARENA_STACKS * g_page))
        return true;
#endif
    /* Installing a guard twice is harmless: all of them again. */
    for (unsigned i = 0; i < ARENA_STACKS; i++) {
        atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
        if (madvise(v[i].iov_base, g_page, MADV_GUARD_INSTALL) != 0)
            return false;
    }
    return true;
}

/* Maps a new arena for stacks of size bytes; NULL when no memory can be
 * had. */
static struct stack_arena *arena_map(size_t size)
{
    struct stack_arena *a = mem_alloc(sizeof *a);
    if (!a)
        return NULL;
    for (;;) {
        a->guarded = atomic_load_explicit(&g_arena_guards, memory_order_relaxed);
        a->stack_size = size;
        a->stride = size + (a->guarded ? g_page : 0);
        a->size = g_page + a->stride * ARENA_STACKS;   /* the lead page, then the strides */
        a->map = mmap(NULL, a->size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
        if (a->map == MAP_FAILED) {
            mem_free(a, sizeof *a);
            return NULL;
        }
        if (!a->guarded || arena_guards_install(a))
            return a;
        /* No guards to be had: this arena and the next ones go without,
         * their stacks checked by their canaries. */
        munmap(a->map, a->size);
        atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
        atomic_store_explicit(&g_arena_guards, false, memory_order_relaxed);
    }
}

/* Carves a stack from the current arena (g_pool_lock held); false when
 * no memory can be had. */
static bool arena_carve(size_t size, struct stack_resv *out)
{
    struct stack_arena *a = g_arenas;
    if (!a || a->used == ARENA_STACKS) {
        if (!(a = arena_map(size)))
            return false;
        a->used = 0;
        a->nidle = 0;
        a->on_warm = a->on_cold = false;
        a->idle_bits = a->cold_bits = 0;
        a->idle = NULL;
        a->next = g_arenas;
        g_arenas = a;
    }
    *out = (struct stack_resv){ a, a->used++ };
    return true;
}

static uint64_t arena_bit(const struct stack_arena *a, const struct stack *s)
{
    return 1ull << ((size_t)(s->map + arena_shift(a) - arena_base(a)) / a->stride);
}

static void arena_push_idle(struct stack *s)
{
    struct stack_arena *a = s->arena;
    s->next = a->idle;
    a->idle = s;
    a->nidle++;
    a->idle_bits |= arena_bit(a, s);
    g_idle_count++;
    if (!a->on_warm) {
        a->on_warm = true;
        a->warm_next = g_warm;
        g_warm = a;
    }
}

/* Stacks of a, by index, whose pages have been given back. */
static void arena_mark_cold(struct stack_arena *a, uint64_t bits)
{
    a->cold_bits |= bits;
    if (bits && !a->on_cold) {
        a->on_cold = true;
        a->cold_next = g_cold;
        g_cold = a;
    }
}

/* An idle stack (pages likely resident) or NULL; g_pool_lock held. */
static struct stack *take_idle(void)
{
    while (g_warm) {
        struct stack_arena *a = g_warm;
        struct stack *s = a->idle;
        if (!s) {
            g_warm = a->warm_next;
            a->on_warm = false;
            continue;
        }
        a->idle = s->next;
        a->nidle--;
        a->idle_bits &= ~arena_bit(a, s);
        g_idle_count--;
        return s;
    }
    return NULL;
}

/* A released stack, if any; g_pool_lock held. */
static bool take_cold(struct stack_resv *out)
{
    while (g_cold) {
        struct stack_arena *a = g_cold;
        if (!a->cold_bits) {
            g_cold = a->cold_next;
            a->on_cold = false;
            continue;
        }
        *out = (struct stack_resv){ a, (unsigned)__builtin_ctzll(a->cold_bits) };
        a->cold_bits &= a->cold_bits - 1;
        return true;
    }
    return false;
}

static void give_back(char *p, size_t n)
{
    UNPOISON(p, n);
    madvise(p, n, MADV_DONTNEED);
}

/* Releases the pages of a's idle stacks: the whole arena with one call
 * when all of its stacks are free, else one call per run of adjacent free
 * stacks that holds an idle one. Called and returns with g_pool_lock held,
 * dropping it around the system calls; meanwhile the stacks concerned are
 * on no list and their bits are clear, so no one takes them and no other
 * release covers them. */
static void arena_release(struct stack_arena *a)
{
    while (a->idle_bits) {
        uint64_t idle = a->idle_bits, all = idle | a->cold_bits;
        struct stack *list = a->idle;
        a->idle = NULL;
        a->idle_bits = a->cold_bits = 0;
        g_idle_count -= a->nidle;
        a->nidle = 0;
        pthread_mutex_unlock(&g_pool_lock);
        /* Their descriptors go with their pages. */
        for (struct stack *t = list, *n; t; t = n) {
            n = t->next;
            stack_unregister(t);
        }
        unsigned calls = 0;
        if (all == ~0ull) {
            give_back(a->map, a->size);
            calls = 1;
        } else {
            for (unsigned i = 0; i < ARENA_STACKS;) {
                if (!(all >> i & 1)) {
                    i++;
                    continue;
                }
                unsigned j = i;
                bool any_idle = false;
                while (j < ARENA_STACKS && (all >> j & 1))
                    any_idle |= (idle >> j++ & 1) != 0;
                if (any_idle) {
                    /* The strides of stacks i .. j-1: in an unguarded
                     * arena all of their pages but the one holding stack
                     * i's canary (stack i-1's top page, maybe in use),
                     * the last one holding stack j's canary, which reads
                     * zero again; in a guarded one their guards, which
                     * stay, and their stacks. */
                    give_back(arena_base(a) + (size_t)i * a->stride,
                              (size_t)(j - i) * a->stride);
                    calls++;
                }
                i = j;
            }
        }
        atomic_fetch_add_explicit(&g_syscalls, calls, memory_order_relaxed);
        pthread_mutex_lock(&g_pool_lock);
        arena_mark_cold(a, all);
        /* Stacks put back meanwhile may have made the arena all free. */
        if ((a->idle_bits | a->cold_bits) != ~0ull)
            break;
    }
}

/* The arena stack t: made a stack now, or handed out as *r when the
 * caller takes reservations. */
static struct stack *stack_or_resv(struct stack_resv t, struct stack_resv *r)
{
    if (!r)
        return arena_desc(t);
    *r = t;
    return NULL;
}

/* A new stack: carved from an arena (a reservation when r is given) if
 * it has the default size and arenas are guarded; else mapped alone with
 * a guard page while the budget lasts; else from an unguarded arena. */
static struct stack *stack_new(size_t size, struct stack_resv *r)
{
    bool arena = size == g_default_size, guard = false;
    if (!(arena && atomic_load_explicit(&g_arena_guards, memory_order_relaxed))) {
        guard = atomic_fetch_add_explicit(&g_guarded, 1, memory_order_relaxed) < g_guard_budget;
        if (!guard)
            atomic_fetch_sub_explicit(&g_guarded, 1, memory_order_relaxed);
    }
    if (arena && !guard) {
        struct stack_resv t;
        pthread_mutex_lock(&g_pool_lock);
        bool ok = arena_carve(size, &t);
        pthread_mutex_unlock(&g_pool_lock);
        return ok ? stack_or_resv(t, r) : NULL;
    }
    size_t map_size = size + (guard ? g_page : 0);
    char *m = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
    if (m == MAP_FAILED) {
        if (guard)
            atomic_fetch_sub_explicit(&g_guarded, 1, memory_order_relaxed);
        return NULL;
    }
    if (guard) {
        atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
        if (!guard_install(m)) {
            /* over the map limit after all: live without the guard */
            guard = false;
            atomic_fetch_sub_explicit(&g_guarded, 1, memory_order_relaxed);
        }
    }
    return desc_init(m, map_size, size, NULL, guard);
}

/* An arena stack's memory stays with its arena (stack_global_fini unmaps
 * it); a stack mapped alone is unmapped, its descriptor with it. */
static void stack_destroy(struct stack *s)
{
    stack_unregister(s);
    if (!s->arena) { /* an arena's stacks, guarded or not, are not in g_guarded */
        if (s->guarded)
            atomic_fetch_sub_explicit(&g_guarded, 1, memory_order_relaxed);
        char *map = s->map;
        size_t map_size = s->map_size;
        UNPOISON(map, map_size);
        munmap(map, map_size);
        atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
    }
}

long stack_in_use(void)
{
    pthread_mutex_lock(&g_pool_lock);
    long n = atomic_load_explicit(&g_in_use, memory_order_relaxed);
    for (struct stack_cache *c = g_caches; c; c = c->list_next)
        n += atomic_load_explicit(&c->in_use, memory_order_relaxed);
    pthread_mutex_unlock(&g_pool_lock);
    return n;
}

static struct stack *stack_get_(struct stack_cache *c, size_t size, struct stack_resv *r);

/* The in-use count without a shared counter on every get and put: each
 * cache counts its owner's, threads without a cache use g_in_use. */
static void count_in_use(struct stack_cache *c, long d)
{
    if (!c) {
        atomic_fetch_add_explicit(&g_in_use, d, memory_order_relaxed);
        return;
    }
    if (!c->listed) {
        pthread_mutex_lock(&g_pool_lock);
        c->list_next = g_caches;
        g_caches = c;
        c->listed = true;
        pthread_mutex_unlock(&g_pool_lock);
    }
    atomic_store_explicit(&c->in_use, atomic_load_explicit(&c->in_use, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

struct stack *stack_get(struct stack_cache *c, size_t size)
{
    struct stack *s = stack_get_(c, size, NULL);
    if (s)
        count_in_use(c, 1);
    return s;
}

struct stack *stack_get_or_reserve(struct stack_cache *c, size_t size, struct stack_resv *r)
{
    r->arena = NULL;
    struct stack *s = stack_get_(c, size, r);
    if (s || r->arena)
        count_in_use(c, 1);
    return s;
}

struct stack *stack_claim(const struct stack_resv *r)
{
    return arena_desc(*r);
}

void stack_unreserve(struct stack_cache *c, const struct stack_resv *r)
{
    count_in_use(c, -1);
    pthread_mutex_lock(&g_pool_lock);
    arena_mark_cold(r->arena, 1ull << r->index);
    pthread_mutex_unlock(&g_pool_lock);
}

/* A warm stack (cache, pool, idle), else an untouched arena stack: made a
 * stack here when r is NULL, handed out as *r otherwise; else a new
 * mapping. */
static struct stack *stack_get_(struct stack_cache *c, size_t size, struct stack_resv *r)
{
    if (size == 0)
        size = g_default_size;
    size = (size + g_page - 1) & ~(g_page - 1);
    if (size != g_default_size)
        return stack_new(size, NULL);
    if (c && c->count)
        return c->slot[--c->count];
    struct stack *s;
    pthread_mutex_lock(&g_pool_lock);
    if (g_pool_count) {
        s = g_pool[--g_pool_count];
        /* take more warm ones for the cache while we hold the lock: the
         * pool's most recent, in their order, so the warmest stay last */
        unsigned k = c ? (g_pool_count < CACHE_MAX / 2 ? g_pool_count : CACHE_MAX / 2) : 0;
        if (k) {
            g_pool_count -= k;
            memcpy(c->slot, g_pool + g_pool_count, k * sizeof *c->slot);
            c->count = k;
        }
    } else {
        s = take_idle();
    }
    if (s) {
        struct stack *t;
        while (c && c->count < CACHE_MAX / 2 && (t = take_idle()))
            c->slot[c->count++] = t;
        pthread_mutex_unlock(&g_pool_lock);
        return s;
    }
    struct stack_resv t;
    bool cold = take_cold(&t);
    pthread_mutex_unlock(&g_pool_lock);
    return cold ? stack_or_resv(t, r) : stack_new(size, r);
}

/* One default-size stack that neither a cache nor the pool keeps, under
 * g_pool_lock: an arena stack onto its arena's idle list, releasing idle
 * memory past RESIDENT_MAX (the lock is dropped around the madvise
 * calls). Returns s if it is to be destroyed (a mapped stack), after the
 * lock is dropped. */
static struct stack *put_idle_locked(struct stack *s)
{
    if (!s->arena)
        return s;
    struct stack_arena *a = s->arena;
    arena_push_idle(s);
    if ((a->idle_bits | a->cold_bits) == ~0ull) {
        arena_release(a);
    } else if (g_idle_count > RESIDENT_MAX) {
        while (g_warm && g_idle_count > RESIDENT_MAX / 2) {
            a = g_warm;
            if (a->idle) {
                arena_release(a);
            } else {
                g_warm = a->warm_next;
                a->on_warm = false;
            }
        }
    }
    return NULL;
}

/* One default-size stack beyond the caches, under g_pool_lock: to the
 * pool, else as put_idle_locked. */
static struct stack *put_global_locked(struct stack *s)
{
    if (g_pool_count < POOL_MAX) {
        g_pool[g_pool_count++] = s;
        return NULL;
    }
    return put_idle_locked(s);
}

/* Stacks that leave the caches and the pool for good, coldest first:
 * each as put_idle_locked, the mapped ones destroyed after the lock. The
 * list is the caller's own (put_idle_locked may drop the lock). */
static void release_all(struct stack **v, unsigned n)
{
    struct stack *doomed = NULL;
    pthread_mutex_lock(&g_pool_lock);
    for (unsigned i = 0; i < n; i++) {
        struct stack *t = put_idle_locked(v[i]);
        if (t) {
            t->next = doomed;
            doomed = t;
        }
    }
    pthread_mutex_unlock(&g_pool_lock);
    while (doomed) {
        struct stack *t = doomed;
        doomed = t->next;
        stack_destroy(t);
    }
}

/* A full cache gives half of itself to the global pool in one lock hold:
 * a scheduler where more processes exit than start (its stolen work ends
 * there) would otherwise take the lock for every stack it puts back. The
 * most recently put (warmest, the upper half) stay. What fits in the pool
 * is copied there without touching a stack; only the rest (a full pool)
 * is handled one stack at a time, by release_all. */
static void cache_spill(struct stack_cache *c)
{
    const unsigned half = CACHE_MAX / 2;
    pthread_mutex_lock(&g_pool_lock);
    unsigned fit = POOL_MAX - g_pool_count < half ? POOL_MAX - g_pool_count : half;
    memcpy(g_pool + g_pool_count, c->slot, fit * sizeof *c->slot);
    g_pool_count += fit;
    pthread_mutex_unlock(&g_pool_lock);
    if (fit < half)
        release_all(c->slot + fit, half - fit);
    memmove(c->slot, c->slot + half, (c->count - half) * sizeof *c->slot);
    c->count -= half;
}

void stack_put(struct stack_cache *c, struct stack *s)
{
    count_in_use(c, -1);
    if (s->size + sizeof *s != g_default_size) {
        stack_destroy(s);
        return;
    }
    if (c) {
        if (c->count >= CACHE_MAX)
            cache_spill(c);
        c->slot[c->count++] = s;
        return;
    }
    pthread_mutex_lock(&g_pool_lock);
    s = put_global_locked(s);
    pthread_mutex_unlock(&g_pool_lock);
    if (s)
        stack_destroy(s);
}

unsigned stack_trim(struct stack_cache *c, unsigned keep)
{
    unsigned done = 0;
    if (c && c->count > keep) {
        /* the coldest (lowest) go; the warmest keep move down */
        unsigned n = c->count - keep;
        release_all(c->slot, n);
        memmove(c->slot, c->slot + n, keep * sizeof *c->slot);
        c->count = keep;
        done += n;
    }
    /* The pool's coldest, in batches taken off it under the lock: the
     * pool may change while put_idle_locked has the lock dropped. */
    struct stack *v[256];
    for (;;) {
        pthread_mutex_lock(&g_pool_lock);
        unsigned n = g_pool_count > STACK_TRIM_POOL ? g_pool_count - STACK_TRIM_POOL : 0;
        if (n > sizeof v / sizeof v[0])
            n = sizeof v / sizeof v[0];
        memcpy(v, g_pool, n * sizeof *v);
        memmove(g_pool, g_pool + n, (g_pool_count - n) * sizeof *g_pool);
        g_pool_count -= n;
        pthread_mutex_unlock(&g_pool_lock);
        if (!n)
            break;
        release_all(v, n);
        done += n;
    }
    return done;
}

void stack_cache_flush(struct stack_cache *c)
{
    if (c->listed) {
        /* Its count moves to the global one as it leaves the list. */
        pthread_mutex_lock(&g_pool_lock);
        for (struct stack_cache **pp = &g_caches; *pp; pp = &(*pp)->list_next) {
            if (*pp == c) {
                *pp = c->list_next;
                break;
            }
        }
        atomic_fetch_add_explicit(&g_in_use, atomic_load_explicit(&c->in_use, memory_order_relaxed),
                                  memory_order_relaxed);
        atomic_store_explicit(&c->in_use, 0, memory_order_relaxed);
        c->listed = false;
        pthread_mutex_unlock(&g_pool_lock);
    }
    while (c->count)
        stack_destroy(c->slot[--c->count]);
}

void stack_global_fini(void)
{
    pthread_mutex_lock(&g_pool_lock);
    unsigned np = g_pool_count;
    g_pool_count = 0;
    struct stack_arena *a = g_arenas;
    g_arenas = g_warm = g_cold = NULL;
    g_idle_count = 0;
    pthread_mutex_unlock(&g_pool_lock);
    while (np)
        stack_destroy(g_pool[--np]);
    for (struct stack_arena *b = a; b; b = b->next) {
        for (struct stack *t = b->idle, *n; t; t = n) {
            n = t->next;
            stack_destroy(t);
        }
    }
    while (a) {
        struct stack_arena *n = a->next;
        UNPOISON(a->map, a->size);
        munmap(a->map, a->size);
        mem_free(a, sizeof *a);
        a = n;
    }
}

bool stack_in_guard(const struct stack *s, const void *addr)
{
    return s->guarded && (const char *)addr >= s->map && (const char *)addr < s->map + g_page;
}

uint64_t stack_mmaps(void)
{
    return atomic_load_explicit(&g_syscalls, memory_order_relaxed);
}
