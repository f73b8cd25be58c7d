/*
 * The per-scheduler ring: where a scheduler parks, how other threads wake
 * it, and the queue its processes' I/O goes through (io/backend.h). Two
 * backends implement it, chosen once at start (ring_select): io_uring
 * (io/uring.c), described below, and epoll (io/epoll.c: epoll_wait to
 * park, an eventfd to be woken, non-blocking calls retried on readiness).
 *
 * A scheduler enters the kernel only here: to submit its processes' I/O
 * (at most one io_uring_enter per pass of its loop, iob_flush), to park
 * (one io_uring_enter that submits what is queued and waits for one
 * completion or the next timer deadline), and to wake a parked peer (one
 * IORING_OP_MSG_RING submission from its own ring; foreign threads share
 * one "outside" ring under a lock). Completions are reaped from the shared
 * CQ ring without a system call.
 */
#ifndef HIVE_RING_H
#define HIVE_RING_H

#include <liburing.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "io/backend.h"
#include "io/tmo.h"

#define RING_WAKE_UD ((uint64_t)0x77616b65u)   /* "wake" */

/* What the kernel offers beyond the minimum, found at ring_init. */
#define RING_F_SINGLE_ISSUER 0x1u
#define RING_F_COOP_TASKRUN  0x2u
#define RING_F_CANCEL_ANY    0x4u   /* IORING_ASYNC_CANCEL_ANY (5.19) */
#define RING_F_DEFER_TASKRUN 0x8u   /* SINGLE_ISSUER | DEFER_TASKRUN (6.1) */

/* ring_init's flags. */
#define RING_INIT_SQPOLL 0x1u   /* a kernel thread polls the SQ (HIVE_SQPOLL) */
/* A scheduler's own ring, which only its thread (after ring_bind) submits
 * to, reaps and drains: made SINGLE_ISSUER | DEFER_TASKRUN. */
#define RING_INIT_DEFER  0x2u

struct ep;

struct ring {
    struct io_uring uring;          /* io_uring backend */
    struct ep *ep;                  /* epoll backend (io/epoll.c) */
    bool     ready;
    bool     sqpoll;
    bool     disabled;              /* uring: made R_DISABLED, not bound yet */
    unsigned features;              /* RING_F_* */
    unsigned cq_entries;
    int      wake_fd;               /* what ring_wake aims at: the ring's fd or
                                       the eventfd */
    /* --- owner thread --- */
    unsigned inflight;              /* ops started and not handed back (backend.h) */
    uint64_t enters;                /* io_uring_enter calls the backend made */
    struct iop *queued;             /* uring: started, not yet submitted */
    struct tmo_heap tmo;            /* uring: started ops with a time-out, by
                                       deadline (io/tmo.h; epoll keeps its own) */
    uint64_t sys;                   /* its other system calls (epoll_wait,
                                       epoll_ctl, recv, send, eventfd writes...) */
    uint64_t timeouts;              /* ops whose time-out passed first
                                       (hive_stats.io_timeouts) */
    /* receive buffers it lends (backend.h): uring's provided-buffer ring */
    struct io_uring_buf_ring *lend_br;
    char    *lend_mem;              /* count * IOB_LEND_SIZE bytes */
    unsigned lend_count;            /* 0: it lends none */
    void    *lend_retry;            /* the layer above's: ops that met -ENOBUFS */
    void    *acks;                  /* the layer above's: exits to tell that
                                       their cancels reached the kernel */
    /* --- any thread --- */
    /* 1 while the owner checks descriptor generations and hands numbers
     * to the kernel (io/fdgen.h); its partner is the closer's load in
     * fdgen_close_barrier. */
    _Atomic int fd_section;
    unsigned fd_slot;               /* in fdgen's ring table */
    /* Cross-thread requests of the layer above (runtime/proc/io.c keeps
     * its cancels here: a Treiber stack, pushed with release by any
     * thread, taken whole by the owner with acquire). */
    _Alignas(64) void *_Atomic posted;
    /* Set by the layer above on the owner thread (NULL until then): takes
     * what is posted. The epoll backend calls it, when posted is not
     * empty, after each epoll_wait and before it runs any operation on
     * the events: a cancel posted before the data it must not take
     * arrived is taken before the data can be. */
    void (*take_posted)(struct ring *r);
};

/* Chooses the backend and makes the shared ring of the threads outside the
 * schedulers with it. mode: HIVE_IO_AUTO (io_uring when it can be set up
 * and has every opcode hive needs, else epoll), HIVE_IO_URING (fail, with
 * *why, when it cannot), HIVE_IO_EPOLL. On success *why is NULL, or says
 * why io_uring was passed over. 0 or -errno. */
int  ring_select(int mode, struct ring *outside, const char **why);
/* Which backend runs (after ring_select), and why io_uring does not. */
const char *ring_backend(const char **why);

/* 0 or -errno; on failure *why says what the kernel refused. */
static inline int ring_init(struct ring *r, unsigned entries, unsigned flags, const char **why)
{
    return io_ops->init(r, entries, flags, why);
}
/* On the owner thread, before anything else touches an OWNED ring. */
static inline int ring_bind(struct ring *r, const char **why) { return io_ops->bind(r, why); }
/* Checks that the kernel has what hive needs (io_uring: MSG_RING, EXT_ARG,
 * the I/O opcodes, a working io_uring_enter). */
static inline int ring_probe(struct ring *r, const char **why) { return io_ops->probe(r, why); }
/* Cancels everything in flight on r and reaps until the backend has handed
 * every op back (teardown; any thread once the owner stopped). */
static inline void ring_drain(struct ring *r) { io_ops->drain(r); }
/* Cancels and waits for whatever I/O is still in flight, then frees the
 * ring. Any thread, once the owner has stopped. */
static inline void ring_fini(struct ring *r) { io_ops->fini(r); }
/* Parks until a completion or a wake-up arrives or timeout_ns passes (<0:
 * no timeout), submitting what is queued on the way in. Returns the number
 * of operations handed back. */
static inline int ring_park(struct ring *r, int64_t timeout_ns) { return io_ops->park(r, timeout_ns); }
/* Reaps ready completions (iob_reap). */
static inline int ring_reap(struct ring *r) { return io_ops->reap(r); }
/* Wakes the ring whose ring_fd is target, from ring r (r must be owned by
 * the caller; the outside ring under its lock). */
static inline int ring_wake(struct ring *r, int target) { return io_ops->wake(r, target); }
static inline int ring_fd(const struct ring *r) { return r->wake_fd; }
/* Takes the system calls and time-outs the backend counted on r since
 * the last take. */
static inline void ring_take_counts(struct ring *r, uint64_t *enters, uint64_t *sys,
                                    uint64_t *timeouts)
{
    *enters = r->enters;
    *sys = r->sys;
    *timeouts = r->timeouts;
    r->enters = r->sys = r->timeouts = 0;
}

/* The ring's half of the close barrier (io/fdgen.h). */
static inline void ring_fd_enter(struct ring *r)
{
    atomic_store_explicit(&r->fd_section, 1, memory_order_seq_cst);
}
static inline void ring_fd_leave(struct ring *r)
{
    atomic_store_explicit(&r->fd_section, 0, memory_order_release);
}

#endif
