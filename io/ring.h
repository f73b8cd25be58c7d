/*
 * The per-scheduler io_uring: where a scheduler parks, how other threads
 * wake it, and the queue its processes' I/O goes through (io/backend.h).
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

#define RING_WAKE_UD ((uint64_t)0x77616b65u)   /* "wake" */

/* What the kernel offers beyond the minimum, found at ring_init. */
#define RING_F_SINGLE_ISSUER 0x1u
#define RING_F_COOP_TASKRUN  0x2u
#define RING_F_CANCEL_ANY    0x4u   /* IORING_ASYNC_CANCEL_ANY (5.19) */

struct ring {
    struct io_uring uring;
    bool     ready;
    bool     sqpoll;
    unsigned features;              /* RING_F_* */
    unsigned cq_entries;
    /* --- owner thread --- */
    unsigned inflight;              /* ops started and not handed back (backend.h) */
    uint64_t enters;                /* io_uring_enter calls the backend made */
    /* --- any thread --- */
    /* Cross-thread requests of the layer above (runtime/proc/io.c keeps
     * its cancels here: a Treiber stack, pushed with release by any
     * thread, taken whole by the owner with acquire). */
    _Alignas(64) void *_Atomic posted;
};

/* 0 or -errno; on failure *why says what the kernel refused. */
int  ring_init(struct ring *r, unsigned entries, bool sqpoll, const char **why);
/* Cancels and waits for whatever I/O is still in flight, then frees the
 * ring. Any thread, once the owner has stopped. */
void ring_fini(struct ring *r);
/* Cancels everything in flight on r and reaps until the backend has handed
 * every op back (teardown; any thread once the owner stopped). */
void ring_drain(struct ring *r);
/* Checks that the kernel has what hive needs (MSG_RING, EXT_ARG, the I/O
 * opcodes). */
int  ring_probe(struct ring *r, const char **why);
/* Parks until a completion arrives or timeout_ns passes (<0: no timeout),
 * submitting what is queued on the way in. Returns the number of
 * completions reaped. */
int  ring_park(struct ring *r, int64_t timeout_ns);
/* Reaps ready completions without entering the kernel (unless its CQ
 * overflowed: see iob_reap). I/O completions go to the backend's handler. */
int  ring_reap(struct ring *r);
/* Wakes the ring target_fd from ring r (r must be owned by the caller). */
int  ring_wake(struct ring *r, int target_fd);
static inline int ring_fd(const struct ring *r) { return r->uring.ring_fd; }

#endif
