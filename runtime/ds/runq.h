/*
 * Local run queue: a bounded ring owned by one scheduler, from which other
 * schedulers steal half at a time.
 *
 * Who: the owner pushes at tail and pops at head; thieves take from head.
 * head is advanced only by CAS (owner pop and thieves race there); tail is
 * written only by the owner. Slots are relaxed atomics: a thief may read a
 * slot the owner is about to reuse, but then the thief's CAS on head fails
 * and what it read is discarded.
 *
 * Items are opaque pointers: the queue knows nothing about processes.
 */
#ifndef HIVE_RUNQ_H
#define HIVE_RUNQ_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Large enough that a process spawning a slice's worth of children (the
 * default budget is 2000 reductions) fills its own queue, where the other
 * schedulers steal from it without a lock, rather than overflowing to the
 * global queue and its mutex (fork_join: 2.0M -> 2.7M tasks/s, cold). */
#define RUNQ_SIZE 4096u

struct runq {
    _Alignas(64) _Atomic uint32_t head;
    _Alignas(64) _Atomic uint32_t tail;
    _Atomic(void *) buf[RUNQ_SIZE];
};

static inline void runq_init(struct runq *q)
{
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
}

/* Owner only. False when full (the caller moves work elsewhere). */
static inline bool runq_push(struct runq *q, void *item)
{
    /* acquire: pairs with the CAS on head in pop/steal, so the slot we
     * overwrite has really been taken. */
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (t - h >= RUNQ_SIZE)
        return false;
    atomic_store_explicit(&q->buf[t % RUNQ_SIZE], item, memory_order_relaxed);
    /* release: publishes the slot to thieves (acquire load of tail). */
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    return true;
}

/* Owner only. */
static inline void *runq_pop(struct runq *q)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (h == t)
            return NULL;
        void *item = atomic_load_explicit(&q->buf[h % RUNQ_SIZE], memory_order_relaxed);
        /* acq_rel: a successful CAS claims the slot against thieves. */
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return item;
    }
}

static inline uint32_t runq_len(struct runq *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    return t - h;
}

/* Owner only: takes up to n items from the head into out[] (to move them to
 * the global queue when the ring is full). Returns how many. */
static inline uint32_t runq_take(struct runq *q, void **out, uint32_t n)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        uint32_t k = t - h;
        if (k > n)
            k = n;
        for (uint32_t i = 0; i < k; i++)
            out[i] = atomic_load_explicit(&q->buf[(h + i) % RUNQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + k, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return k;
    }
}

/* Thief: moves half of victim's items into dst (which the caller owns) and
 * returns one of them to run now, or NULL if there was nothing. */
static inline void *runq_steal(struct runq *victim, struct runq *dst)
{
    uint32_t dt = atomic_load_explicit(&dst->tail, memory_order_relaxed);
    for (;;) {
        /* acquire on both: pairs with the owner's release of tail and the
         * CAS on head of anyone who took items. */
        uint32_t h = atomic_load_explicit(&victim->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&victim->tail, memory_order_acquire);
        uint32_t n = t - h;
        n -= n / 2;
        if (n == 0)
            return NULL;
        if (n > RUNQ_SIZE / 2)
            continue; /* read head and tail at different moments */
        for (uint32_t i = 0; i < n; i++) {
            void *it = atomic_load_explicit(&victim->buf[(h + i) % RUNQ_SIZE], memory_order_relaxed);
            atomic_store_explicit(&dst->buf[(dt + i) % RUNQ_SIZE], it, memory_order_relaxed);
        }
        if (!atomic_compare_exchange_weak_explicit(&victim->head, &h, h + n,
                                                   memory_order_acq_rel, memory_order_relaxed))
            continue;
        /* Keep the last one to run; publish the rest (release: pairs with
         * thieves' acquire of our tail). dst was empty when the thief
         * started searching, so n - 1 < RUNQ_SIZE always fits. */
        n--;
        void *run = atomic_load_explicit(&dst->buf[(dt + n) % RUNQ_SIZE], memory_order_relaxed);
        if (n)
            atomic_store_explicit(&dst->tail, dt + n, memory_order_release);
        return run;
    }
}

#endif
