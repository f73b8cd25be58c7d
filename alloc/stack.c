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
 * Released stacks stay on their arena's cold list and are reused last
 * (fresh zero pages). Stacks being released are on no list while the lock
 * is dropped around the system calls, so none is handed out then, and no
 * range given to madvise ever holds a stack that is in use or being
 * carved. A guarded stack (its own mapping) beyond the cache and the pool
 * is unmapped.
 */
#include "alloc/stack.h"

#include "alloc/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
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
#define CACHE_MAX 2048u
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
static struct stack *g_pool;      /* warm: pages still resident */
static unsigned g_pool_count;

#define ARENA_STACKS 64u    /* one bit each in the masks below */
struct stack_arena {        /* everything under g_pool_lock */
    struct stack_arena *next;       /* g_arenas: all of them */
    struct stack_arena *warm_next;  /* g_warm, while on_warm */
    struct stack_arena *cold_next;  /* g_cold, while on_cold */
    char    *map;
    size_t   size;                  /* the whole mapping */
    size_t   stack_size;
    unsigned used;                  /* stacks carved so far */
    unsigned nidle;
    bool     on_warm, on_cold;
    uint64_t idle_bits;             /* stacks on idle, by index */
    uint64_t cold_bits;             /* stacks on cold, by index */
    struct stack *idle;             /* free, pages maybe resident */
    struct stack *cold;             /* free, pages given back */
};
static struct stack_arena *g_arenas;    /* the head is being carved */
/* Arenas that may have idle (warm) or cold stacks: an arena whose list has
 * emptied stays until a search passes it. */
static struct stack_arena *g_warm, *g_cold;
static unsigned g_idle_count;           /* stacks on the arenas' idle lists */
/* Caches whose in_use counts are part of stack_in_use, under g_pool_lock. */
static struct stack_cache *g_caches;

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
    /* Two map entries per guarded stack; leave half of the limit to the
     * program and its libraries. */
    g_guard_budget = maps / 4;
    if (guard_stacks >= 0 && guard_stacks < g_guard_budget)
        g_guard_budget = guard_stacks;
    atomic_store(&g_guarded, 0);
}

static void stack_register(struct stack *s)
{
#ifdef HIVE_TSAN
    s->tsan_fiber = __tsan_create_fiber(0);
#else
    s->tsan_fiber = NULL;
#endif
#ifdef HIVE_HAVE_VALGRIND
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, s->lo + s->size);
#else
    s->vg_id = 0;
#endif
}

/* Carves a stack from the current arena (g_pool_lock held). */
static struct stack *arena_carve(struct stack *s, size_t size)
{
    struct stack_arena *a = g_arenas;
    if (!a || a->used == ARENA_STACKS) {
        a = mem_alloc(sizeof *a);
        if (!a)
            return NULL;
        a->size = size * ARENA_STACKS;
        a->map = mmap(NULL, a->size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
        if (a->map == MAP_FAILED) {
            mem_free(a, sizeof *a);
            return NULL;
        }
        a->stack_size = size;
        a->used = 0;
        a->nidle = 0;
        a->on_warm = a->on_cold = false;
        a->idle_bits = a->cold_bits = 0;
        a->idle = a->cold = NULL;
        a->next = g_arenas;
        g_arenas = a;
    }
    s->map = a->map + (size_t)a->used++ * size;
    s->map_size = size;
    s->lo = s->map;
    s->size = size;
    s->guarded = false;
    s->arena = a;
    return s;
}

static uint64_t arena_bit(const struct stack_arena *a, const struct stack *s)
{
    return 1ull << ((size_t)(s->map - a->map) / a->stack_size);
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

static void arena_push_cold(struct stack *s)
{
    struct stack_arena *a = s->arena;
    s->next = a->cold;
    a->cold = s;
    a->cold_bits |= arena_bit(a, s);
    if (!a->on_cold) {
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

/* A released stack or NULL; g_pool_lock held. */
static struct stack *take_cold(void)
{
    while (g_cold) {
        struct stack_arena *a = g_cold;
        struct stack *s = a->cold;
        if (!s) {
            g_cold = a->cold_next;
            a->on_cold = false;
            continue;
        }
        a->cold = s->next;
        a->cold_bits &= ~arena_bit(a, s);
        return s;
    }
    return NULL;
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
        struct stack *lists[2] = { a->idle, a->cold };
        a->idle = a->cold = NULL;
        a->idle_bits = a->cold_bits = 0;
        g_idle_count -= a->nidle;
        a->nidle = 0;
        pthread_mutex_unlock(&g_pool_lock);
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
                    give_back(a->map + (size_t)i * a->stack_size, (size_t)(j - i) * a->stack_size);
                    calls++;
                }
                i = j;
            }
        }
        atomic_fetch_add_explicit(&g_syscalls, calls, memory_order_relaxed);
        pthread_mutex_lock(&g_pool_lock);
        for (int k = 0; k < 2; k++) {
            for (struct stack *s = lists[k], *n; s; s = n) {
                n = s->next;
                arena_push_cold(s);
            }
        }
        /* Stacks put back meanwhile may have made the arena all free. */
        if ((a->idle_bits | a->cold_bits) != ~0ull)
            break;
    }
}

static struct stack *stack_new(size_t size)
{
    struct stack *s = mem_alloc(sizeof *s);
    if (!s)
        return NULL;
    s->next = NULL;
    bool guard = atomic_fetch_add_explicit(&g_guarded, 1, memory_order_relaxed) < g_guard_budget;
    if (!guard) {
        atomic_fetch_sub_explicit(&g_guarded, 1, memory_order_relaxed);
        if (size == g_default_size) {
            pthread_mutex_lock(&g_pool_lock);
            struct stack *r = arena_carve(s, size);
            pthread_mutex_unlock(&g_pool_lock);
            if (!r) {
                mem_free(s, sizeof *s);
                return NULL;
            }
            stack_register(s);
            return s;
        }
    }
    size_t map_size = size + (guard ? g_page : 0);
    char *m = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
    if (m == MAP_FAILED) {
        if (guard)
            atomic_fetch_sub_explicit(&g_guarded, 1, memory_order_relaxed);
        mem_free(s, sizeof *s);
        return NULL;
    }
    if (guard) {
        atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
        if (mprotect(m, g_page, PROT_NONE) != 0) {
            /* over the map limit after all: live without the guard */
            guard = false;
            atomic_fetch_sub_explicit(&g_guarded, 1, memory_order_relaxed);
        }
    }
    s->map = m;
    s->map_size = map_size;
    s->lo = m + (map_size - size);
    s->size = size;
    s->guarded = guard;
    s->arena = NULL;
    stack_register(s);
    return s;
}

static void stack_destroy(struct stack *s)
{
#ifdef HIVE_TSAN
    __tsan_destroy_fiber(s->tsan_fiber);
#endif
#ifdef HIVE_HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
    if (s->guarded)
        atomic_fetch_sub_explicit(&g_guarded, 1, memory_order_relaxed);
    if (!s->arena) {
        UNPOISON(s->map, s->map_size);
        munmap(s->map, s->map_size);
        atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
    }
    mem_free(s, sizeof *s);
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

static struct stack *stack_get_(struct stack_cache *c, size_t size);

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
    struct stack *s = stack_get_(c, size);
    if (s)
        count_in_use(c, 1);
    return s;
}

static struct stack *stack_get_(struct stack_cache *c, size_t size)
{
    if (size == 0)
        size = g_default_size;
    size = (size + g_page - 1) & ~(g_page - 1);
    if (size != g_default_size)
        return stack_new(size);
    struct stack *s = c ? c->head : NULL;
    if (s) {
        c->head = s->next;
        c->count--;
        return s;
    }
    pthread_mutex_lock(&g_pool_lock);
    s = g_pool;
    if (s) {
        g_pool = s->next;
        g_pool_count--;
    } else {
        s = take_idle();
    }
    if (s) {
        /* take a few more warm ones for the cache while we hold the lock */
        while (c && c->count < CACHE_MAX / 2) {
            struct stack *t = g_pool;
            if (t) {
                g_pool = t->next;
                g_pool_count--;
            } else if (!(t = take_idle())) {
                break;
            }
            t->next = c->head;
            c->head = t;
            c->count++;
        }
    } else {
        s = take_cold();
    }
    pthread_mutex_unlock(&g_pool_lock);
    if (s)
        return s;
    return stack_new(size);
}

void stack_put(struct stack_cache *c, struct stack *s)
{
    count_in_use(c, -1);
    if (s->size != g_default_size) {
        stack_destroy(s);
        return;
    }
    if (c && c->count < CACHE_MAX) {
        s->next = c->head;
        c->head = s;
        c->count++;
        return;
    }
    pthread_mutex_lock(&g_pool_lock);
    if (g_pool_count < POOL_MAX) {
        s->next = g_pool;
        g_pool = s;
        g_pool_count++;
        s = NULL;
    } else if (s->arena) {
        struct stack_arena *a = s->arena;
        arena_push_idle(s);
        s = NULL;
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
    }
    pthread_mutex_unlock(&g_pool_lock);
    if (s)
        stack_destroy(s);
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
    while (c->head) {
        struct stack *s = c->head;
        c->head = s->next;
        c->count--;
        stack_destroy(s);
    }
}

void stack_global_fini(void)
{
    pthread_mutex_lock(&g_pool_lock);
    struct stack *s = g_pool;
    g_pool = NULL;
    g_pool_count = 0;
    struct stack_arena *a = g_arenas;
    g_arenas = g_warm = g_cold = NULL;
    g_idle_count = 0;
    pthread_mutex_unlock(&g_pool_lock);
    while (s) {
        struct stack *n = s->next;
        stack_destroy(s);
        s = n;
    }
    for (struct stack_arena *b = a; b; b = b->next) {
        struct stack *lists[2] = { b->idle, b->cold };
        for (int i = 0; i < 2; i++) {
            for (struct stack *t = lists[i], *n; t; t = n) {
                n = t->next;
                stack_destroy(t);
            }
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
