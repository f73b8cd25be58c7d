/*
 * The name registry: unique names -> pids.
 *
 * A fixed array of buckets, each a chain guarded by a spinlock for writers
 * and a sequence counter for readers: hive_whereis takes no lock. Readers
 * load everything with relaxed atomics between two loads of the bucket's
 * sequence (acquire) and retry if a writer was active (odd) or the count
 * moved. Entries are type-stable — recycled through a free list, never
 * freed while the runtime runs — so a reader that follows a stale pointer
 * reads a valid entry, and the sequence check throws the result away.
 *
 * Lock order: a process's lock before a bucket's lock.
 * Limits: 16384 buckets; lookups degrade linearly past ~100k names.
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/proc/proc.h"
#include "runtime/proc/registry.h"
#include "runtime/sched/sched.h"

#define REG_BUCKETS 16384u
#define NAME_WORDS 8

struct rentry {
    _Atomic(struct rentry *) next;
    _Atomic uint64_t words[NAME_WORDS];
    _Atomic hive_pid pid;
    struct rentry *fnext;
};

struct bucket {
    _Atomic uint32_t seq;
    _Atomic bool lock;
    _Atomic(struct rentry *) head;
};

static struct bucket *buckets;
static pthread_mutex_t free_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rentry *free_list;
static struct rentry *all_blocks;   /* every allocated block, for fini */

struct key {
    uint64_t w[NAME_WORDS];
    uint32_t hash;
};

static int make_key(const char *name, struct key *k)
{
    if (!name)
        return -EINVAL;
    /* a loop, not strnlen: a caller's shorter array, inlined here, made
     * gcc warn that the bound exceeds it (the NUL ends the scan first) */
    size_t len = 0;
    while (len <= HIVE_NAME_MAX && name[len])
        len++;
    if (len == 0 || len > HIVE_NAME_MAX)
        return -EINVAL;
    memset(k->w, 0, sizeof k->w);
    memcpy(k->w, name, len);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
    k->hash = (uint32_t)(h ^ (h >> 32));
    return 0;
}

static bool entry_is(struct rentry *e, const struct key *k)
{
    for (int i = 0; i < NAME_WORDS; i++)
        if (atomic_load_explicit(&e->words[i], memory_order_relaxed) != k->w[i])
            return false;
    return true;
}

static void block(struct bucket *b)
{
    while (atomic_exchange_explicit(&b->lock, true, memory_order_acquire))
        while (atomic_load_explicit(&b->lock, memory_order_relaxed))
            cpu_relax();
    /* odd: readers retry. The release fence orders the increment before
     * the chain writes that follow. */
    atomic_fetch_add_explicit(&b->seq, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void bunlock(struct bucket *b)
{
    /* release: the chain writes before the even count readers check. */
    atomic_fetch_add_explicit(&b->seq, 1, memory_order_release);
    atomic_store_explicit(&b->lock, false, memory_order_release);
}

static struct rentry *entry_new(void)
{
    pthread_mutex_lock(&free_lock);
    struct rentry *e = free_list;
    if (e) {
        free_list = e->fnext;
    } else {
        /* blocks of 64; the first entry of each block links the blocks */
        struct rentry *b = calloc(64, sizeof *b);
        if (b) {
            b[0].fnext = all_blocks;
            all_blocks = b;
            for (int i = 2; i < 64; i++) {
                b[i].fnext = free_list;
                free_list = &b[i];
            }
            e = &b[1];
        }
    }
    pthread_mutex_unlock(&free_lock);
    return e;
}

static void entry_del(struct rentry *e)
{
    pthread_mutex_lock(&free_lock);
    e->fnext = free_list;
    free_list = e;
    pthread_mutex_unlock(&free_lock);
}

int registry_init(void)
{
    buckets = calloc(REG_BUCKETS, sizeof *buckets);
    return buckets ? 0 : -ENOMEM;
}

void registry_fini(void)
{
    while (all_blocks) {
        struct rentry *b = all_blocks;
        all_blocks = b[0].fnext;
        free(b);
    }
    free_list = NULL;
    free(buckets);
    buckets = NULL;
}

/* Writer side, bucket locked. */
static struct rentry *find_locked(struct bucket *b, const struct key *k,
                                  _Atomic(struct rentry *) **link)
{
    _Atomic(struct rentry *) *pp = &b->head;
    for (struct rentry *e; (e = atomic_load_explicit(pp, memory_order_relaxed));
         pp = &e->next) {
        if (entry_is(e, k)) {
            if (link)
                *link = pp;
            return e;
        }
    }
    return NULL;
}

/* Splices e out of its chain (bucket locked). release: pairs with the
 * acquire loads in lookup, like the store that published e. */
static void unlink_entry(_Atomic(struct rentry *) *link, struct rentry *e)
{
    atomic_store_explicit(link, atomic_load_explicit(&e->next, memory_order_relaxed),
                          memory_order_release);
}

static hive_pid lookup(const struct key *k)
{
    struct bucket *b = &buckets[k->hash % REG_BUCKETS];
    for (;;) {
        /* acquire: pairs with the release increment in bunlock. */
        uint32_t s1 = atomic_load_explicit(&b->seq, memory_order_acquire);
        if (s1 & 1) {
            cpu_relax();
            continue;
        }
        hive_pid found = HIVE_NOPID;
        unsigned steps = 0;
        /* acquire on every link: pairs with the release stores that
         * publish an entry (hive_register) or splice one out (unlink), so
         * an entry reached here is seen as initialised. */
        for (struct rentry *e = atomic_load_explicit(&b->head, memory_order_acquire);
             e && steps < 100000; e = atomic_load_explicit(&e->next, memory_order_acquire),
                                  steps++) {
            if (entry_is(e, k)) {
                found = atomic_load_explicit(&e->pid, memory_order_relaxed);
                break;
            }
        }
        /* acquire fence: the loads above happen before the re-check. */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&b->seq, memory_order_relaxed) == s1)
            return found;
    }
}

void registry_release(const char *name, hive_pid pid)
{
    struct key k;
    if (make_key(name, &k))
        return;
    struct bucket *b = &buckets[k.hash % REG_BUCKETS];
    _Atomic(struct rentry *) *link;
    block(b);
    struct rentry *e = find_locked(b, &k, &link);
    if (e && atomic_load_explicit(&e->pid, memory_order_relaxed) == pid)
        unlink_entry(link, e);
    else
        e = NULL;
    bunlock(b);
    if (e)
        entry_del(e);
}

int hive_register(const char *name, hive_pid pid)
{
    struct key k;
    int rc = make_key(name, &k);
    if (rc)
        return rc;
    if (!g_rt)
        return -EPERM;
    struct proc *p;
    if ((rc = proc_resolve(pid, &p)) != 0)
        return rc;
    struct rentry *e = entry_new();
    if (!e)
        return -ENOMEM;
    char *copy = strdup(name);
    if (!copy) {
        entry_del(e);
        return -ENOMEM;
    }
    struct bucket *b = &buckets[k.hash % REG_BUCKETS];
    proc_lock(p);
    if (atomic_load_explicit(&p->pid, memory_order_relaxed) != pid || (p->flags & PF_EXITING)) {
        rc = -ESRCH;
    } else if (p->name) {
        rc = strcmp(p->name, name) == 0 ? -EEXIST : -EINVAL; /* one name per process */
    } else {
        block(b);
        if (find_locked(b, &k, NULL)) {
            rc = -EEXIST;
        } else {
            for (int i = 0; i < NAME_WORDS; i++)
                atomic_store_explicit(&e->words[i], k.w[i], memory_order_relaxed);
            atomic_store_explicit(&e->pid, pid, memory_order_relaxed);
            atomic_store_explicit(&e->next, atomic_load_explicit(&b->head, memory_order_relaxed),
                                  memory_order_relaxed);
            /* release: the entry's memory (calloc'ed, or last written by
             * an earlier owner) and the fields above before a lock-free
             * reader can reach it; pairs with the acquire loads of the
             * chain in lookup. */
            atomic_store_explicit(&b->head, e, memory_order_release);
            p->name = copy;
            e = NULL;
            copy = NULL;
        }
        bunlock(b);
    }
    proc_unlock(p);
    if (e)
        entry_del(e);
    free(copy);
    return rc;
}

int hive_unregister(const char *name)
{
    struct key k;
    int rc = make_key(name, &k);
    if (rc)
        return rc;
    if (!g_rt)
        return -EPERM;
    for (;;) {
        hive_pid pid = lookup(&k);
        if (pid == HIVE_NOPID)
            return -ESRCH;
        struct proc *p;
        if (proc_resolve(pid, &p))
            return -ESRCH;
        struct bucket *b = &buckets[k.hash % REG_BUCKETS];
        _Atomic(struct rentry *) *link;
        proc_lock(p);
        block(b);
        struct rentry *e = find_locked(b, &k, &link);
        bool ok = e && atomic_load_explicit(&e->pid, memory_order_relaxed) == pid;
        char *old = NULL;
        if (ok) {
            unlink_entry(link, e);
            if (atomic_load_explicit(&p->pid, memory_order_relaxed) == pid) {
                old = p->name;
                p->name = NULL;
            }
        }
        bunlock(b);
        proc_unlock(p);
        if (ok) {
            entry_del(e);
            free(old);
            return 0;
        }
        /* the name moved between lookup and lock: look again */
    }
}

hive_pid hive_whereis(const char *name)
{
    struct key k;
    if (!g_rt || make_key(name, &k))
        return HIVE_NOPID;
    return lookup(&k);
}

/* The registered name of a process, copied into buf (introspection). */
bool registry_name_of(struct proc *p, hive_pid pid, char *buf, size_t len)
{
    bool ok = false;
    proc_lock(p);
    if (atomic_load_explicit(&p->pid, memory_order_relaxed) == pid && p->name) {
        strncpy(buf, p->name, len - 1);
        buf[len - 1] = 0;
        ok = true;
    }
    proc_unlock(p);
    return ok;
}
