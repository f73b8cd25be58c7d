/*
 * Mailbox: an intrusive multi-producer single-consumer queue (Vyukov's
 * design) whose head pointer also carries the consumer's "waiting" bit.
 *
 * Who: any thread pushes; only the owning process (or the scheduler acting
 * for it while it is switched out) pops and marks it waiting.
 *
 * States of `head` (the producers' end):
 *   node           the last node pushed; the consumer is runnable or running
 *   stub | WAITING the queue is empty and the consumer is parked in a receive
 * Transitions:
 *   push:      XCHG head := node. If the old value had WAITING, this push is
 *              the one that ended the wait: mbox_push returns true and the
 *              caller must schedule the receiver. Exactly one push can see
 *              the bit, because the XCHG removes it.
 *   try_wait:  CAS head: stub -> stub|WAITING, only after the consumer
 *              drained everything. Fails if any push got in first; then the
 *              consumer stays runnable.
 * This is the whole "no lost wake-up, no double scheduling" argument: the
 * consumer is handed to a run queue only by the push that clears WAITING,
 * and the bit is set only by a CAS that proves the queue was empty.
 *
 * The mailbox knows nothing about processes or schedulers (lower rooms never
 * call up): push reports, the send path schedules.
 */
#ifndef HIVE_MAILBOX_H
#define HIVE_MAILBOX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct mq_node {
    _Atomic(struct mq_node *) next;
};

/* Embed it at a 64-byte boundary (_Alignas(64) on the member): the
 * producers' end then fills one cache line and the consumer's end starts
 * the next. The struct itself is not over-aligned, so it has no tail
 * padding: the 48 bytes after it, on the consumer's line, are the
 * container's, for fields its consumer touches (runtime/proc/proc.h). */
struct mbox {
    /* Producers' end; on its own cache line, it is the contended word.
     * flooded shares the line: a producer reads it right after its
     * exchange, for free; the consumer writes it only when it changes. */
    _Atomic(uintptr_t) head;
    _Atomic uint32_t flooded;
    /* Messages the layer above counts against a limit (runtime/proc/send.c,
     * "Mailbox limits"): added to by producers before their push, taken
     * from by the consumer when a counted node leaves. On the producers'
     * line: a bounded send's add lands on the line its exchange takes
     * anyway. Untouched for an unbounded mailbox. */
    _Atomic uint32_t counted;
    char pad_[64 - 2 * sizeof(uint32_t) - sizeof(uintptr_t)];
    /* Consumer's end (stub.next is also written by the producer that
     * pushes onto an empty queue). */
    struct mq_node *tail;
    struct mq_node stub;
};
_Static_assert(__builtin_offsetof(struct mbox, tail) == 64, "the consumer's end starts a line");

#define MBOX_WAITING ((uintptr_t)1)

static inline void mbox_init(struct mbox *q)
{
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&q->head, (uintptr_t)&q->stub, memory_order_relaxed);
    atomic_store_explicit(&q->counted, 0, memory_order_relaxed);
    q->tail = &q->stub;
}

/* Returns true if the consumer was waiting: the caller must schedule it. */
static inline bool mbox_push(struct mbox *q, struct mq_node *n)
{
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* acq_rel: release publishes n's contents to the consumer (paired with
     * the acquire load of prev->next in mbox_pop, through the release store
     * below); acquire pairs with the release of mbox_try_wait's CAS so that
     * whoever schedules the consumer sees everything it wrote before it
     * started waiting. */
    uintptr_t prev = atomic_exchange_explicit(&q->head, (uintptr_t)n, memory_order_acq_rel);
    struct mq_node *p = (struct mq_node *)(prev & ~MBOX_WAITING);
    /* release: pairs with the acquire load of next in mbox_pop. */
    atomic_store_explicit(&p->next, n, memory_order_release);
    return (prev & MBOX_WAITING) != 0;
}

enum mbox_pop_result { MBOX_GOT, MBOX_EMPTY, MBOX_BUSY };

/* Consumer only. MBOX_BUSY: a producer is between its XCHG and its link
 * store; the queue is not empty, try again in a moment. */
static inline enum mbox_pop_result mbox_pop(struct mbox *q, struct mq_node **out)
{
    struct mq_node *tail = q->tail;
    /* acquire: pairs with the release store of next in mbox_push. */
    struct mq_node *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &q->stub) {
        if (next == NULL) {
            uintptr_t h = atomic_load_explicit(&q->head, memory_order_acquire);
            return (h & ~MBOX_WAITING) == (uintptr_t)&q->stub ? MBOX_EMPTY : MBOX_BUSY;
        }
        q->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next != NULL) {
        q->tail = next;
        *out = tail;
        return MBOX_GOT;
    }
    uintptr_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    if ((struct mq_node *)h != tail)
        return MBOX_BUSY;
    /* tail is the last node: put the stub behind it so tail can leave. */
    mbox_push(q, &q->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next != NULL) {
        q->tail = next;
        *out = tail;
        return MBOX_GOT;
    }
    return MBOX_BUSY;
}

/* Consumer side, after a drain that ended in MBOX_EMPTY. Returns true if the
 * consumer is now waiting (a push will schedule it), false if a message got
 * in first (the consumer must stay runnable). */
static inline bool mbox_try_wait(struct mbox *q)
{
    uintptr_t expect = (uintptr_t)&q->stub;
    /* release: everything the consumer's side wrote before waiting (its
     * saved registers, its stack ownership) is visible to the producer
     * whose XCHG clears the bit (acquire there). */
    return atomic_compare_exchange_strong_explicit(&q->head, &expect,
                                                   expect | MBOX_WAITING,
                                                   memory_order_acq_rel,
                                                   memory_order_relaxed);
}

/* Back-pressure hint, set by the consumer when it used a whole time slice
 * receiving and messages were still queued, cleared when it finds the
 * mailbox empty. Its value says where the consumer was then: its
 * scheduler's id + 1 (0: not flooded), which a flooding sender on another
 * scheduler reads to move there (switch.c, "Flooding senders"). A hint,
 * not synchronisation: relaxed, and written only on a change so the
 * producers' line is not taken away for nothing. */
static inline uint32_t mbox_flooded(struct mbox *q)
{
    return atomic_load_explicit(&q->flooded, memory_order_relaxed);
}

static inline void mbox_set_flooded(struct mbox *q, uint32_t where)
{
    if (mbox_flooded(q) != where)
        atomic_store_explicit(&q->flooded, where, memory_order_relaxed);
}

/* Cheap emptiness hint for the consumer (may be stale by the time it returns). */
static inline bool mbox_maybe_nonempty(struct mbox *q)
{
    return q->tail != &q->stub ||
           atomic_load_explicit(&q->stub.next, memory_order_acquire) != NULL;
}

#endif
