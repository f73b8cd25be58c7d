/*
 * The I/O backend: how one operation reaches the kernel and how its
 * completion comes back. The process-facing layer (runtime/proc/io.c) sits
 * above this interface and knows nothing of io_uring; a later epoll backend
 * (non-blocking sockets, readiness, epoll_wait to park) provides the same
 * functions (io/epoll.c).
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
#include <sys/socket.h>

struct ring;
struct iop;

enum iop_kind { IOP_RECV = 1, IOP_SEND, IOP_READ, IOP_WRITE, IOP_ACCEPT, IOP_CONNECT };

struct iop {
    /* --- request: set by the layer above before iob_start --- */
    uint8_t    kind;           /* enum iop_kind */
    bool       lend;           /* RECV only: buf is NULL, the backend lends one
                                  of the ring's receive buffers (below) */
    int16_t    lent;           /* backend: the lent buffer's index, -1: none */
    bool       zc;             /* SEND only, where iob_have_send_zc: zero-copy
                                  (IORING_OP_SEND_ZC); the op is handed back
                                  once the kernel has said it no longer
                                  reads buf (its notification) */
    int        fd;
    void      *buf;            /* data; ACCEPT: where the peer's address goes;
                                  CONNECT: the address to connect to */
    uint32_t   len;            /* bytes; CONNECT: the address's length */
    socklen_t *addrlen;        /* ACCEPT: in: room at buf, out: its length */
    int64_t    off;            /* READ/WRITE: file offset, -1 = current position */
    int64_t    timeout_ns;     /* < 0: none; else the backend cancels the op once
                                  this long has passed since iob_start (io/tmo.h) */

    /* --- backend state (owner thread) --- */
    int        res;            /* the op's result, kept while a cancel is pending */
    uint8_t    bflags;         /* IOPB_* */
    /* epoll: the op's place while it waits for readiness (io/epoll.c) */
    struct iop *enext, *eprev;   /* its fd's wait list, or the list of finished ops;
                                    uring: enext links the ops not yet submitted */
    uint64_t    deadline;        /* CLOCK_MONOTONIC ns its time-out ends at */
    uint32_t    hidx;            /* 1 + its index in its ring's time-out heap
                                    (io/tmo.h); 0: not there */
    uint32_t    progress;        /* bytes sent or written so far */
    uint32_t    fdgen;           /* the fd's generation when it started (io/fdgen.h) */
    void       *sqe;             /* uring: its entry, until submitted */
};

/* Receive buffers lent by the ring. A RECV started with lend set (and len
 * at most iob_lend_size) has no buffer of its own: the backend takes one of
 * the ring's buffers only when data arrive (io_uring: a provided-buffer
 * ring, the kernel picks the buffer as it completes the receive; epoll:
 * a pool, taken for the non-blocking try), so a receive that waits holds
 * no memory. When such an op is handed back with res > 0, op->buf points
 * at the data in the lent buffer for the time of the handler's call: the
 * handler copies them, and the backend takes the buffer back when the
 * handler returns. With every buffer out, the op ends with -ENOBUFS and
 * the layer above runs it again with a buffer of its own. */
#define IOB_LEND_SIZE 4096u
/* The size of the buffers r lends (IOB_LEND_SIZE), or 0 when it lends none
 * (hive_config.recv_bufs 0, or a kernel without provided-buffer rings).
 * Owner thread, after iob_lend_init. */
unsigned iob_lend_size(const struct ring *r);

/* The kernel has IORING_OP_SEND_ZC (Linux 6.0) and io_uring runs: set by
 * the probe at start, read-only after. */
extern bool iob_have_send_zc;

/* Called once per started op when the backend holds no more reference to
 * it: res is the op's result (>= 0, or -errno; -ECANCELED after a time-out
 * or a cancel). Set once, before any ring exists. */
typedef void (*iob_done_fn)(struct iop *op, int res);
void iob_set_handler(iob_done_fn fn);
extern iob_done_fn iob_done;

/* The two backends. Which one runs is chosen once, at start, by ring_select
 * (io/ring.h); every ring of the runtime uses it. */
enum io_kind { IO_URING = 1, IO_EPOLL = 2 };

struct io_ops {
    enum io_kind kind;
    const char  *name;
    /* the ring's life and parking: see io/ring.h */
    int  (*init)(struct ring *r, unsigned entries, unsigned flags, const char **why);
    /* on the thread that will own the ring, before its first use */
    int  (*bind)(struct ring *r, const char **why);
    int  (*probe)(struct ring *r, const char **why);
    void (*drain)(struct ring *r);
    void (*fini)(struct ring *r);
    int  (*park)(struct ring *r, int64_t timeout_ns);
    int  (*wake)(struct ring *r, int target);
    /* operations: see the wrappers below */
    int  (*start)(struct ring *r, struct iop *op);
    void (*cancel)(struct ring *r, struct iop *op);
    int  (*flush)(struct ring *r);
    int  (*reap)(struct ring *r);
    /* what a backend does for a number about to be closed, after the
     * common part (the generation bumped, the close barrier passed) */
    void (*fd_closing)(struct ring *r, int fd);
    /* sets up count receive buffers of IOB_LEND_SIZE to lend (owner
     * thread, after bind); 0, or -errno: the ring then lends none */
    int  (*lend_init)(struct ring *r, unsigned count, const char **why);
};
extern const struct io_ops uring_ops, epoll_ops;
extern const struct io_ops *io_ops;    /* set by ring_select, read-only after */

/* Sets up r's receive buffers (see iob_lend_size); on failure r lends
 * none and *why says why. Owner thread, after ring_bind. */
static inline int iob_lend_init(struct ring *r, unsigned count, const char **why)
{
    return io_ops->lend_init(r, count, why);
}

/* Queues op for the next submission (iob_flush, or the park). 0, or a
 * negative errno: the op was not started and belongs to the caller. The
 * submission queue being full is not an error: what is queued goes to the
 * kernel at once to make room. The handler is never called for op from
 * inside this call. */
static inline int iob_start(struct ring *r, struct iop *op) { return io_ops->start(r, op); }
/* Asks the kernel to cancel op, started on r. Its completion still comes,
 * through the handler, once the cancel is done. The op may be handed back
 * while this runs (it reaps to make room): the caller must not free it
 * from the handler until this returns. */
static inline void iob_cancel(struct ring *r, struct iop *op) { io_ops->cancel(r, op); }
/* Submits what is queued: one io_uring_enter, none when nothing is queued
 * (or with SQPOLL, whose thread is awake). Returns 1 if it entered the
 * kernel, else 0. epoll has nothing to submit. */
static inline int iob_flush(struct ring *r) { return io_ops->flush(r); }
/* Dispatches every completion that is ready. io_uring: without a system
 * call unless the completion queue overflowed (then one enter flushes the
 * kernel's backlog, and those are dispatched too). epoll: one epoll_wait
 * that does not block, at most every EP_POLL_NS while operations wait.
 * Returns how many operations it handed back. */
static inline int iob_reap(struct ring *r) { return io_ops->reap(r); }
/* The descriptor number fd now names a new file (hive made it: accept,
 * socket) or is about to stop naming its file (hive_io_close, before
 * close): whatever a backend knows about the number is stale. Any thread;
 * r is the caller's ring, or NULL. */
void iob_fd_new(int fd);
void iob_fd_closing(struct ring *r, int fd);
/* Operations started and not yet handed back (owner thread). */
unsigned iob_inflight(const struct ring *r);

#endif
