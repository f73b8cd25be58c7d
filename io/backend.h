/*
 * The I/O backend: how one operation reaches the kernel and how its
 * completion comes back. The process-facing layer (runtime/proc/io.c) sits
 * above this interface and knows nothing of io_uring; a later epoll backend
 * (non-blocking sockets, readiness, epoll_wait to park) provides the same
 * functions.
 *
 * Ownership. The layer above allocates a struct iop, fills its request
 * fields and hands it to iob_start on the ring of the scheduler it runs
 * on. From then on the backend references the op, and every buffer it
 * points at, until it calls the completion handler exactly once for it —
 * after the last kernel entry (the op's own completion, and that of a
 * cancel issued for it) has been reaped. Only then may the op or its
 * buffers be freed or reused. Everything here runs on the ring's owner
 * thread, except where a function says otherwise.
 */
#ifndef HIVE_IO_BACKEND_H
#define HIVE_IO_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/time_types.h>
#include <sys/socket.h>

struct ring;

enum iop_kind { IOP_RECV = 1, IOP_SEND, IOP_READ, IOP_WRITE, IOP_ACCEPT, IOP_CONNECT };

struct iop {
    /* --- request: set by the layer above before iob_start --- */
    uint8_t    kind;           /* enum iop_kind */
    int        fd;
    void      *buf;            /* data; ACCEPT: where the peer's address goes;
                                  CONNECT: the address to connect to */
    uint32_t   len;            /* bytes; CONNECT: the address's length */
    socklen_t *addrlen;        /* ACCEPT: in: room at buf, out: its length */
    int64_t    off;            /* READ/WRITE: file offset, -1 = current position */
    int64_t    timeout_ns;     /* < 0: none; else the kernel cancels the op after it */

    /* --- backend state (owner thread) --- */
    int        res;            /* the op's result, kept while a cancel is pending */
    uint8_t    bflags;         /* IOPB_* */
    struct __kernel_timespec ts; /* the linked timeout's, read by the kernel at submit */
};

/* Called once per started op when the backend holds no more reference to
 * it: res is the op's result (>= 0, or -errno; -ECANCELED after a time-out
 * or a cancel). Set once, before any ring exists. */
typedef void (*iob_done_fn)(struct iop *op, int res);
void iob_set_handler(iob_done_fn fn);

/* Queues op for the next submission (iob_flush, or the park). 0, or a
 * negative errno: the op was not started and belongs to the caller. The
 * submission queue being full is not an error: what is queued goes to the
 * kernel at once to make room. */
int  iob_start(struct ring *r, struct iop *op);
/* Asks the kernel to cancel op, started on r. Its completion still comes,
 * through the handler, once the cancel is done. The op may be handed back
 * while this runs (it reaps to make room): the caller must not free it
 * from the handler until this returns. */
void iob_cancel(struct ring *r, struct iop *op);
/* Submits what is queued: one io_uring_enter, none when nothing is queued
 * (or with SQPOLL, whose thread is awake). Returns 1 if it entered the
 * kernel, else 0. */
int  iob_flush(struct ring *r);
/* Dispatches every completion that is ready, without a system call unless
 * the completion queue overflowed (then one enter flushes the kernel's
 * backlog, and those are dispatched too). Returns how many CQEs it took. */
int  iob_reap(struct ring *r);
/* Every io_uring_enter the backend makes is counted in r->enters. */
/* Operations started and not yet handed back (owner thread). */
unsigned iob_inflight(const struct ring *r);

#endif
