#include "msg.h"

#include <string.h>

#include "../alloc/alloc.h"
#include "sched.h"

/* Small nodes come from a per-scheduler cache (two size classes): a free on
 * another scheduler feeds that scheduler's cache, no lock either way. The
 * cache is capped; past the cap, and for big or foreign-thread nodes,
 * jemalloc's own thread caches do the work. */
#define MCACHE_MAX 4096u

static inline int mclass(size_t size)
{
    return size <= 128 ? 0 : size <= 256 ? 1 : -1;
}

static inline struct mnode *alloc_on(struct sched *s, size_t len)
{
    size_t size = sizeof(struct mnode) + ((len + 15) & ~(size_t)15);
    int c = mclass(size);
    struct mnode *n = NULL;
    if (c >= 0) {
        size = c ? 256 : 128;
        if (s && (n = s->mcache[c])) {
            s->mcache[c] = (struct mnode *)atomic_load_explicit(&n->q.next, memory_order_relaxed);
            s->mcache_n[c]--;
        }
    }
    if (!n && !(n = mem_alloc(size)))
        return NULL;
    n->size = (uint32_t)size;
    n->to = HIVE_NOPID;
    n->aux = 0;
    n->aux2 = 0;
    n->msg.data = n + 1;
    n->msg.len = (uint32_t)len;
    return n;
}

struct mnode *mnode_alloc(size_t len)
{
    size_t size = sizeof(struct mnode) + ((len + 15) & ~(size_t)15);
    return alloc_on(mclass(size) >= 0 ? cur_sched : NULL, len);
}

void mnode_free_on(struct sched *s, struct mnode *n)
{
    int c = mclass(n->size);
    if (c >= 0) {
        if (s && s->mcache_n[c] < MCACHE_MAX) {
            atomic_store_explicit(&n->q.next, (struct mq_node *)s->mcache[c], memory_order_relaxed);
            s->mcache[c] = n;
            s->mcache_n[c]++;
            return;
        }
    }
    mem_free(n, n->size);
}

void mnode_free(struct mnode *n)
{
    mnode_free_on(mclass(n->size) >= 0 ? cur_sched : NULL, n);
}

void mnode_cache_flush(struct sched *s)
{
    for (int c = 0; c < 2; c++) {
        while (s->mcache[c]) {
            struct mnode *n = s->mcache[c];
            s->mcache[c] = (struct mnode *)atomic_load_explicit(&n->q.next, memory_order_relaxed);
            mem_free(n, n->size);
        }
        s->mcache_n[c] = 0;
    }
}

struct mnode *mnode_make_on(struct sched *s, uint32_t kind, uint32_t tag, const void *data,
                            size_t len)
{
    struct mnode *n = alloc_on(s, len);
    if (!n)
        return NULL;
    n->kind = kind;
    n->msg.tag = tag;
    n->msg.from = HIVE_NOPID;
    n->msg.ref = (hive_ref){ 0, 0 };
    if (len)
        memcpy(n + 1, data, len);
    return n;
}

struct mnode *mnode_make(uint32_t kind, uint32_t tag, const void *data, size_t len)
{
    size_t size = sizeof(struct mnode) + ((len + 15) & ~(size_t)15);
    return mnode_make_on(mclass(size) >= 0 ? cur_sched : NULL, kind, tag, data, len);
}
