/*
 * The per-scheduler io_uring: where a scheduler parks, and how other
 * threads wake it.
 *
 * A scheduler enters the kernel only here: to park (one io_uring_enter that
 * submits what is queued and waits for one completion or the next timer
 * deadline) and to wake a parked peer (one IORING_OP_MSG_RING submission
 * from its own ring; foreign threads share one "outside" ring under a lock).
 */
#ifndef HIVE_RING_H
#define HIVE_RING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#define RING_WAKE_UD ((uint64_t)0x77616b65u)   /* "wake" */

struct ring {
    struct io_uring uring;
    bool ready;
};

/* 0 or -errno; on failure *why says what the kernel refused. */
int  ring_init(struct ring *r, unsigned entries, bool sqpoll, const char **why);
void ring_fini(struct ring *r);
/* Checks that the kernel has what hive needs (MSG_RING, EXT_ARG). */
int  ring_probe(struct ring *r, const char **why);
/* Parks until a completion arrives or timeout_ns passes (<0: no timeout).
 * Returns the number of completions reaped. */
int  ring_park(struct ring *r, int64_t timeout_ns);
/* Reaps ready completions without entering the kernel. */
int  ring_reap(struct ring *r);
/* Wakes the ring target_fd from ring r (r must be owned by the caller). */
int  ring_wake(struct ring *r, int target_fd);
static inline int ring_fd(const struct ring *r) { return r->uring.ring_fd; }

#endif
