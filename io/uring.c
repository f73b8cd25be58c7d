/*
 * The io_uring backend (backend.h): one SQE per operation, linked to a
 * LINK_TIMEOUT when it has a time-out, so the kernel itself cancels it;
 * completions dispatched from the CQ ring without a system call.
 *
 * user_data: the op's address for its own completion, the address | 1 for
 * the completion of a cancel aimed at it, 0 for entries nobody waits for
 * (linked timeouts, the final cancel-all, failed wake-ups). An op with a
 * cancel in flight is handed back only once both completions are in, so
 * its address is never reused while any entry in the kernel names it: a
 * cancel can never hit a later op at the same address.
 */
#include <errno.h>
#include <string.h>

#include "io/backend.h"
#include "io/ring.h"

#define IOPB_CANCELLING 0x1u   /* a cancel for it is in the kernel */
#define IOPB_DONE       0x2u   /* its own completion came; res holds it */
#define IOPB_INFLIGHT   0x4u   /* started and not yet handed back */

static iob_done_fn done_fn;

void iob_set_handler(iob_done_fn fn)
{
    done_fn = fn;
}

unsigned iob_inflight(const struct ring *r)
{
    return r->inflight;
}

/* Room for n SQEs: what is queued goes to the kernel first when the SQ is
 * full. Returns 0, or a negative errno if the kernel takes nothing. */
static int make_room(struct ring *r, unsigned n)
{
    for (int tries = 0; io_uring_sq_space_left(&r->uring) < n; tries++) {
        if (r->sqpoll) {
            /* The kernel's thread frees entries as it takes them. */
            io_uring_submit(&r->uring);
            int rc = io_uring_sqring_wait(&r->uring);
            r->enters++;
            if (rc < 0 && rc != -EINTR)
                return rc;
            continue;
        }
        int rc = io_uring_submit(&r->uring);
        r->enters++;
        if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR)
            return rc;
        if (rc <= 0) {
            /* The kernel wants its completions taken first (a CQ backlog). */
            iob_reap(r);
            if (tries > 1000)
                return -EAGAIN;
        }
    }
    return 0;
}

int iob_start(struct ring *r, struct iop *op)
{
    bool timed = op->timeout_ns >= 0;
    int rc = make_room(r, timed ? 2 : 1);
    if (rc)
        return rc;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    switch (op->kind) {
    case IOP_RECV:
        io_uring_prep_recv(sqe, op->fd, op->buf, op->len, 0);
        break;
    case IOP_SEND:
        /* Every byte or an error; a peer that went away is -EPIPE or
         * -ECONNRESET, never SIGPIPE. */
        io_uring_prep_send(sqe, op->fd, op->buf, op->len, MSG_NOSIGNAL | MSG_WAITALL);
        break;
    case IOP_READ:
        io_uring_prep_read(sqe, op->fd, op->buf, op->len, (uint64_t)op->off);
        break;
    case IOP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, op->len, (uint64_t)op->off);
        break;
    case IOP_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, (struct sockaddr *)op->buf, op->addrlen,
                             SOCK_CLOEXEC);
        break;
    case IOP_CONNECT:
        io_uring_prep_connect(sqe, op->fd, (const struct sockaddr *)op->buf,
                              (socklen_t)op->len);
        break;
    default:
        /* Not started: give the entry back as a no-op nobody waits for. */
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, 0);
        return -EINVAL;
    }
    io_uring_sqe_set_data(sqe, op);
    op->bflags = IOPB_INFLIGHT;
    op->res = 0;
    if (timed) {
        sqe->flags |= IOSQE_IO_LINK;
        op->ts.tv_sec = op->timeout_ns / 1000000000;
        op->ts.tv_nsec = op->timeout_ns % 1000000000;
        struct io_uring_sqe *t = io_uring_get_sqe(&r->uring);
        io_uring_prep_link_timeout(t, &op->ts, 0);
        io_uring_sqe_set_data64(t, 0);
    }
    r->inflight++;
    return 0;
}

void iob_cancel(struct ring *r, struct iop *op)
{
    if (make_room(r, 1))
        return; /* the kernel takes nothing: the op ends when its fd does */
    /* Making room reaps: the op may have been handed back meanwhile (the
     * caller keeps it alive until this returns). */
    if (!(op->bflags & IOPB_INFLIGHT) || (op->bflags & (IOPB_CANCELLING | IOPB_DONE)))
        return;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    io_uring_prep_cancel(sqe, op, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | 1u);
    op->bflags |= IOPB_CANCELLING;
}

int iob_flush(struct ring *r)
{
    if (io_uring_sq_ready(&r->uring) == 0)
        return 0;
    /* With SQPOLL the kernel's thread takes the entries; liburing enters
     * only to wake it when it went to sleep. */
    bool enters = !r->sqpoll ||
                  (IO_URING_READ_ONCE(*r->uring.sq.kflags) & IORING_SQ_NEED_WAKEUP);
    io_uring_submit(&r->uring);
    if (enters)
        r->enters++;
    return enters ? 1 : 0;
}

static void hand_back(struct ring *r, struct iop *op, int res)
{
    op->bflags &= (uint8_t)~IOPB_INFLIGHT;
    r->inflight--;
    done_fn(op, res);
}

static unsigned reap_once(struct ring *r)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&r->uring, head, cqe) {
        n++;
        uint64_t ud = cqe->user_data;
        if (ud == 0 || ud == RING_WAKE_UD)
            continue;
        struct iop *op = (struct iop *)(uintptr_t)(ud & ~(uint64_t)1);
        if (ud & 1) {               /* the cancel's own completion */
            op->bflags &= (uint8_t)~IOPB_CANCELLING;
            if (op->bflags & IOPB_DONE)
                hand_back(r, op, op->res);
            continue;
        }
        if (op->bflags & IOPB_CANCELLING) {
            op->res = cqe->res;
            op->bflags |= IOPB_DONE;
            continue;
        }
        hand_back(r, op, cqe->res);
    }
    if (n)
        io_uring_cq_advance(&r->uring, n);
    return n;
}

int iob_reap(struct ring *r)
{
    /* With COOP_TASKRUN, completions the kernel has ready but not yet
     * posted wait for task work that runs when we enter: the flag says
     * so, and one enter posts them all. */
    if (IO_URING_READ_ONCE(*r->uring.sq.kflags) & IORING_SQ_TASKRUN) {
        io_uring_get_events(&r->uring);
        r->enters++;
    }
    unsigned n = reap_once(r);
    /* Completions that did not fit wait in the kernel's overflow list
     * (IORING_FEAT_NODROP) until it is entered: flush them, then take
     * them, as long as the flag says some are left. */
    while (io_uring_cq_has_overflow(&r->uring)) {
        io_uring_get_events(&r->uring);
        r->enters++;
        unsigned k = reap_once(r);
        n += k;
        if (!k)
            break;
    }
    return (int)n;
}
