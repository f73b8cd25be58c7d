/*
 * Message nodes: allocation, the per-scheduler caches, the depot.
 */
#include "runtime/proc/msg.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "alloc/alloc.h"

/* Small nodes come from a per-scheduler cache (three size classes): a free on
 * another scheduler feeds that scheduler's cache, no lock either way.
 * Senders and receivers are often on different schedulers, so one cache
 * fills while another empties: a full cache hands a batch of MBATCH nodes
 * to a global depot, and an empty one takes a batch back — one mutex
 * operation per MBATCH messages instead of a trip through jemalloc (and its
 * fresh pages) for each. Past the depot's cap, and for big or
 * foreign-thread nodes, jemalloc's own thread caches do the work. */
#define MCACHE_MAX MNODE_CACHE_MAX
#define MBATCH 1024u
#define DEPOT_MAX 64u

static struct {
    pthread_mutex_t lock;
    _Atomic unsigned n[MNODE_CLASSES];   /* batches; written under lock, peeked without */
    struct mnode *nodes[MNODE_CLASSES][DEPOT_MAX * MBATCH]; /* batch k at [k * MBATCH] */
} depot = { .lock = PTHREAD_MUTEX_INITIALIZER };

static _Thread_local struct mnode_cache *tls_cache;

struct mnode_cache *mnode_cache_self(void)
{
    return tls_cache;
}

void mnode_cache_bind(struct mnode_cache *mc)
{
    tls_cache = mc;
}

/* Refills an empty cache from the depot; false if the depot is empty. */
static __attribute__((noinline, cold)) bool depot_take(struct mnode_cache *mc, int c)
{
    /* A racy peek keeps an empty depot from costing a lock per message. */
    if (atomic_load_explicit(&depot.n[c], memory_order_relaxed) == 0)
        return false;
    pthread_mutex_lock(&depot.lock);
    unsigned k = atomic_load_explicit(&depot.n[c], memory_order_relaxed);
    if (k) {
        memcpy(mc->slot[c], &depot.nodes[c][(k - 1) * MBATCH], MBATCH * sizeof(struct mnode *));
        mc->n[c] = MBATCH;
        atomic_store_explicit(&depot.n[c], k - 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&depot.lock);
    return k != 0;
}

/* A full cache gives its oldest MBATCH nodes to the depot (or back to
 * jemalloc when the depot is full); the most recently freed stay. */
static __attribute__((noinline, cold)) void depot_give(struct mnode_cache *mc, int c)
{
    pthread_mutex_lock(&depot.lock);
    unsigned k = atomic_load_explicit(&depot.n[c], memory_order_relaxed);
    bool kept = k < DEPOT_MAX;
    if (kept) {
        memcpy(&depot.nodes[c][k * MBATCH], mc->slot[c], MBATCH * sizeof(struct mnode *));
        atomic_store_explicit(&depot.n[c], k + 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&depot.lock);
    if (!kept) {
        for (unsigned i = 0; i < MBATCH; i++)
            mem_free(mc->slot[c][i], mc->slot[c][i]->size);
    }
    mc->n[c] -= MBATCH;
    memmove(mc->slot[c], mc->slot[c] + MBATCH, mc->n[c] * sizeof(struct mnode *));
}

void mnode_depot_flush(void)
{
    pthread_mutex_lock(&depot.lock);
    for (int c = 0; c < MNODE_CLASSES; c++) {
        unsigned k;
        while ((k = atomic_load_explicit(&depot.n[c], memory_order_relaxed)) != 0) {
            atomic_store_explicit(&depot.n[c], k - 1, memory_order_relaxed);
            for (unsigned i = 0; i < MBATCH; i++) {
                struct mnode *n = depot.nodes[c][(k - 1) * MBATCH + i];
                mem_free(n, n->size);
            }
        }
    }
    pthread_mutex_unlock(&depot.lock);
}

/* The classes' sizes. 96 bytes for the smallest (the 80-byte header and
 * 16 of payload) rather than 128: fork_join, whose million results are
 * outstanding at once, ran at 4.07M tasks/s with 128 and 4.49M with 96
 * (medians of 5; docs/performance.md, "Message nodes of 96 bytes"). */
static const uint32_t class_size[MNODE_CLASSES] = { MNODE_SMALL, 128, 256 };

static inline int mclass(size_t size)
{
    return size <= MNODE_SMALL ? 0 : size <= 128 ? 1 : size <= 256 ? 2 : -1;
}

/* The scheduler's free nodes of class c, owner only. A push needs room
 * (n[c] < MCACHE_MAX: callers check). */
static inline struct mnode *cache_pop(struct mnode_cache *mc, int c)
{
    return mc->n[c] ? mc->slot[c][--mc->n[c]] : NULL;
}

static inline void cache_push(struct mnode_cache *mc, int c, struct mnode *n)
{
    mc->slot[c][mc->n[c]++] = n;
}

/* What every node starts with, whatever it is for. */
static inline void init_alloc(struct mnode *n, size_t size, size_t len)
{
    n->size = (uint32_t)size;
    n->to = HIVE_NOPID;
    n->aux = 0;
    n->aux2 = 0;
    n->msg.data = n + 1;
    n->msg.len = (uint32_t)len;
}

/* The slow half of alloc_on: an empty cache (the depot, else jemalloc), a
 * big node, or no scheduler. Out of line, so the fast path saves no
 * registers. */
static __attribute__((noinline)) struct mnode *alloc_slow(struct mnode_cache *mc, int c, size_t size)
{
    struct mnode *n;
    if (c >= 0 && mc && depot_take(mc, c) && (n = cache_pop(mc, c)))
        return n;
    return mem_alloc(size);
}

static inline struct mnode *alloc_on(struct mnode_cache *mc, size_t len)
{
    size_t size = sizeof(struct mnode) + ((len + 15) & ~(size_t)15);
    int c = mclass(size);
    struct mnode *n = NULL;
    if (c >= 0) {
        size = class_size[c];
        if (__builtin_expect(mc != NULL, 1))
            n = cache_pop(mc, c);
    }
    if (!n && !(n = alloc_slow(mc, c, size)))
        return NULL;
    init_alloc(n, size, len);
    return n;
}

struct mnode *mnode_alloc(size_t len)
{
    size_t size = sizeof(struct mnode) + ((len + 15) & ~(size_t)15);
    return alloc_on(mclass(size) >= 0 ? mnode_cache_self() : NULL, len);
}

/* The slow half of mnode_free_on: a full cache, a big node, or no
 * scheduler. */
static __attribute__((noinline)) void free_slow(struct mnode_cache *mc, int c, struct mnode *n)
{
    if (c >= 0 && mc) {
        depot_give(mc, c);
        cache_push(mc, c, n);
        return;
    }
    mem_free(n, n->size);
}

void mnode_free_on(struct mnode_cache *mc, struct mnode *n)
{
    int c = mclass(n->size);
    if (__builtin_expect(c < 0 || !mc || mc->n[c] >= MCACHE_MAX, 0)) {
        free_slow(mc, c, n);
        return;
    }
    cache_push(mc, c, n);
}

void mnode_free(struct mnode *n)
{
    mnode_free_on(mclass(n->size) >= 0 ? mnode_cache_self() : NULL, n);
}

void mnode_cache_flush(struct mnode_cache *mc)
{
    for (int c = 0; c < MNODE_CLASSES; c++) {
        while (mc->n[c]) {
            struct mnode *n = mc->slot[c][--mc->n[c]];
            mem_free(n, n->size);
        }
    }
}

static inline void init_node(struct mnode *n, uint32_t kind, uint32_t tag)
{
    n->kind = kind;
    n->msg.tag = tag;
    n->msg.from = HIVE_NOPID;
    n->msg.ref = (hive_ref){ 0, 0 };
}

/* Copies len <= 16 bytes inline, with loads and stores that never touch
 * a byte outside [0, len): two overlapping words, or three bytes. A call
 * to memcpy for the usual 8-byte payload cost 12 instructions in the slow
 * path below (callgrind, fork_join: its million outstanding results all
 * take it). */
static inline void copy_small(void *dst, const void *src, size_t len)
{
    unsigned char *d = dst;
    const unsigned char *p = src;
    if (len >= 8) {
        uint64_t x, y;
        memcpy(&x, p, 8);
        memcpy(&y, p + len - 8, 8);
        memcpy(d, &x, 8);
        memcpy(d + len - 8, &y, 8);
    } else if (len >= 4) {
        uint32_t x, y;
        memcpy(&x, p, 4);
        memcpy(&y, p + len - 4, 4);
        memcpy(d, &x, 4);
        memcpy(d + len - 4, &y, 4);
    } else if (len) {
        d[0] = p[0];
        d[len / 2] = p[len / 2];
        d[len - 1] = p[len - 1];
    }
}

static __attribute__((noinline)) struct mnode *make_slow(struct mnode_cache *mc, uint32_t kind,
                                                         uint32_t tag, const void *data,
                                                         size_t len)
{
    struct mnode *n = alloc_on(mc, len);
    if (!n)
        return NULL;
    init_node(n, kind, tag);
    if (len <= 16)
        copy_small(n + 1, data, len);
    else
        memcpy(n + 1, data, len);
    return n;
}

/* The fast path: a payload of up to 16 bytes (a counter, a pid, a pointer:
 * the common case) in a node from this scheduler's cache, copied inline
 * with loads and stores that never touch a byte outside [0, len). The rest
 * goes out of line, so this path saves no registers. */
struct mnode *mnode_make_on(struct mnode_cache *mc, uint32_t kind, uint32_t tag, const void *data,
                            size_t len)
{
    _Static_assert(sizeof(struct mnode) + 16 <= MNODE_SMALL, "a 16-byte payload fits class 0");
    struct mnode *n;
    if (__builtin_expect(!mc || len > 16 || !(n = cache_pop(mc, 0)), 0))
        return make_slow(mc, kind, tag, data, len);
    init_alloc(n, MNODE_SMALL, len);
    init_node(n, kind, tag);
    copy_small(n + 1, data, len);
    return n;
}

struct mnode *mnode_make(uint32_t kind, uint32_t tag, const void *data, size_t len)
{
    size_t size = sizeof(struct mnode) + ((len + 15) & ~(size_t)15);
    return mnode_make_on(mclass(size) >= 0 ? mnode_cache_self() : NULL, kind, tag, data, len);
}
