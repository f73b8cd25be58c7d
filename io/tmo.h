/*
 * Time-outs of operations in a backend's hands (io/backend.h): a min-heap
 * of the ops that have one, by deadline (struct iop's deadline and hidx),
 * kept by the ring's owner thread. Both backends end an op whose deadline
 * passed themselves: epoll takes it off its wait list; io_uring sends the
 * kernel an async cancel for it, the op ends with -ECANCELED (or with the
 * data that beat the cancel), and its buffers stay the kernel's until
 * both completions are in, as for any cancel.
 *
 * io_uring used to link every timed op to an IORING_OP_LINK_TIMEOUT. That
 * is an extra SQE and a kernel hrtimer armed and cancelled under the
 * ring's timeout lock for every send with a time-out, which nearly always
 * completes long before it: 4-5% of the echo server's CPU
 * (docs/io.md, "Time-outs in user space"). A heap entry costs a few
 * compares, and the expiry check on a scheduler pass is one read of the
 * coarse clock.
 */
#ifndef HIVE_IO_TMO_H
#define HIVE_IO_TMO_H

#include <stdbool.h>
#include <stdint.h>

#include "io/clock.h"

struct iop;

struct tmo_heap {
    struct iop **v;          /* v[0] has the earliest deadline */
    unsigned n, cap;
    unsigned skips;          /* tmo_due: coarse-clock answers in a row */
};

/* Adds op, its deadline set: 0 or -ENOMEM. */
int  tmo_add(struct tmo_heap *h, struct iop *op);
/* Takes op out, if it is in (hidx != 0). */
void tmo_del(struct tmo_heap *h, struct iop *op);
void tmo_free(struct tmo_heap *h);

/* The op with the earliest deadline, or NULL. */
static inline struct iop *tmo_first(const struct tmo_heap *h) { return h->n ? h->v[0] : NULL; }

/* Whether the earliest deadline may have passed, and if so the precise
 * time in *now: the coarse clock (the last kernel tick, never ahead of the
 * precise one) answers "not yet" while the deadline is more than a tick
 * away, at most CLOCK_COARSE_SKIPS passes in a row (clock_not_yet);
 * otherwise the precise clock decides. So
 * an op is never ended early, and late by at most a tick on a busy ring. */
bool tmo_due(struct tmo_heap *h, uint64_t *now);

/* How long until the earliest deadline (0 if it passed), capped by
 * timeout_ns (< 0: none): what a park may wait. */
int64_t tmo_wait(const struct tmo_heap *h, int64_t timeout_ns);

#endif
