#include "alloc/stack.h"

#include "alloc/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/* The sanitizers' hooks: this file no longer sees runtime/sched/ctx.h,
 * which defines these for the rest of the runtime. */
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

#define CACHE_MAX 64u      /* stacks a scheduler keeps for itself */
#define POOL_MAX  4096u    /* stacks kept globally; more are unmapped */

static size_t g_default_size;
static size_t g_page;
static long   g_guard_budget;
static _Atomic long g_guarded;
static _Atomic uint64_t g_syscalls;
static _Atomic long g_in_use;

static pthread_mutex_t g_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stack *g_pool;      /* warm: pages still resident */
static unsigned g_pool_count;
static struct stack *g_cold;      /* arena stacks whose pages were given back */

#define ARENA_STACKS 64u
struct arena {
    struct arena *next;
    char  *map;
    size_t size;
    unsigned used;
};
static struct arena *g_arenas;    /* under g_pool_lock; the head is being carved */
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
    struct arena *a = g_arenas;
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
        a->used = 0;
        a->next = g_arenas;
        g_arenas = a;
    }
    s->map = a->map + (size_t)a->used++ * size;
    s->map_size = size;
    s->lo = s->map;
    s->size = size;
    s->guarded = false;
    s->arena = true;
    return s;
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
    s->arena = false;
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
        /* take a few more for the cache while we hold the lock */
        while (c && g_pool && c->count < CACHE_MAX / 2) {
            struct stack *t = g_pool;
            g_pool = t->next;
            g_pool_count--;
            t->next = c->head;
            c->head = t;
            c->count++;
        }
    }
    if (!s && (s = g_cold))
        g_cold = s->next;
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
    }
    pthread_mutex_unlock(&g_pool_lock);
    if (!s)
        return;
    if (s->arena) {
        /* Give the pages back but keep the address range for reuse. */
        UNPOISON(s->map, s->map_size);
        madvise(s->map, s->map_size, MADV_DONTNEED);
        atomic_fetch_add_explicit(&g_syscalls, 1, memory_order_relaxed);
        pthread_mutex_lock(&g_pool_lock);
        s->next = g_cold;
        g_cold = s;
        pthread_mutex_unlock(&g_pool_lock);
        return;
    }
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
    struct stack *lists[2] = { g_pool, g_cold };
    g_pool = g_cold = NULL;
    g_pool_count = 0;
    struct arena *a = g_arenas;
    g_arenas = NULL;
    pthread_mutex_unlock(&g_pool_lock);
    for (int i = 0; i < 2; i++) {
        struct stack *s = lists[i];
        while (s) {
            struct stack *n = s->next;
            stack_destroy(s);
            s = n;
        }
    }
    while (a) {
        struct arena *n = a->next;
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
