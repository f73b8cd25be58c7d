/*
 * The io_uring backend (backend.h): one SQE per operation; completions
 * dispatched from the CQ ring without a system call. An op with a time-out
 * waits in the ring's time-out heap (io/tmo.h) as well; when its deadline
 * passes, the scheduler's next reap or park sends the kernel an async
 * cancel for it.
 *
 * user_data: the op's address for its own completion, the address | 1 for
 * the completion of a cancel aimed at it, 0 for entries nobody waits for
 * (the final cancel-all, failed wake-ups). An op with a
 * cancel in flight is handed back only once both completions are in, so
 * its address is never reused while any entry in the kernel names it: a
 * cancel can never hit a later op at the same address.
 *
 * The ring itself (set-up, probe, park, wake, drain) is at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "io/backend.h"
#include "io/fdgen.h"
#include "io/ring.h"
#include "io/uring_compat.h"

#define IOPB_CANCELLING 0x1u   /* a cancel for it is in the kernel */
#define IOPB_DONE       0x2u   /* its own completion came; res holds it */
#define IOPB_INFLIGHT   0x4u   /* started and not yet handed back */
#define IOPB_CLOSED     0x20u  /* its number was closed before it was submitted */
#define IOPB_ZCWAIT     0x40u  /* a zero-copy send's notification is still to come */

/* The buffer group of the receive buffers a ring lends (backend.h). */
#define LEND_BGID 0

static inline size_t lend_ring_bytes(unsigned count)
{
    return (size_t)count * sizeof(struct io_uring_buf);
}

static int ur_reap(struct ring *r);
static int ur_flush(struct ring *r);
static int ur_setup_done(struct ring *r, const struct io_uring_params *p, bool sqpoll,
                         const char **why);

/* Before every submission: an op whose descriptor hive_io_close closed
 * since it was queued goes in as a no-op and ends as the close would have
 * ended it (io/fdgen.h), instead of reaching whatever file the number
 * names now. */
static void pre_submit(struct ring *r)
{
    for (struct iop *op = r->queued; op; op = op->enext) {
        if (fdgen_of(op->fd) == op->fdgen)
            continue;
        struct io_uring_sqe *sqe = op->sqe;
        /* a no-op takes no buffer: the selection goes */
        uint8_t flags = sqe->flags & (uint8_t)~IOSQE_BUFFER_SELECT;
        uint64_t ud = sqe->user_data;
        io_uring_prep_nop(sqe);
        sqe->flags = flags;
        sqe->user_data = ud;
        op->bflags |= IOPB_CLOSED;
    }
    r->queued = NULL;
}

/* One enter: the SQ to the kernel. On a DEFER_TASKRUN ring the same
 * enter also runs the completions' deferred work (GETEVENTS), which on
 * such a ring happens only when its owner asks: what a plain submit does
 * by itself on a COOP_TASKRUN ring, where any return from the kernel runs
 * pending task work. */
static inline int enter_submit(struct ring *r)
{
    if (r->features & RING_F_DEFER_TASKRUN)
        return io_uring_submit_and_get_events(&r->uring);
    return io_uring_submit(&r->uring);
}

static inline int submit(struct ring *r)
{
    if (!r->queued)
        return enter_submit(r);
    /* The generations checked and the numbers in the kernel's hands, in
     * one fd section (io/fdgen.h). */
    ring_fd_enter(r);
    pre_submit(r);
    int rc = enter_submit(r);
    ring_fd_leave(r);
    return rc;
}

/* Room for n SQEs: what is queued goes to the kernel first when the SQ is
 * full. Returns 0, or a negative errno if the kernel takes nothing. */
static int make_room(struct ring *r, unsigned n)
{
    for (int tries = 0; io_uring_sq_space_left(&r->uring) < n; tries++) {
        if (r->sqpoll) {
            /* The kernel's thread frees entries as it takes them. */
            submit(r);
            int rc = io_uring_sqring_wait(&r->uring);
            r->enters++;
            if (rc < 0 && rc != -EINTR)
                return rc;
            continue;
        }
        int rc = submit(r);
        r->enters++;
        if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR)
            return rc;
        if (rc <= 0) {
            /* The kernel wants its completions taken first (a CQ backlog). */
            ur_reap(r);
            if (tries > 1000)
                return -EAGAIN;
        }
    }
    return 0;
}

static int ur_start(struct ring *r, struct iop *op)
{
    int rc = make_room(r, 1);
    if (rc)
        return rc;
    if (op->timeout_ns >= 0) {
        /* From now, not from the submission at the end of the pass: the
         * deadline is never later than the caller asked. */
        op->deadline = clock_precise_ns() + (uint64_t)op->timeout_ns;
        if (tmo_add(&r->tmo, op))
            return -ENOMEM;
    } else {
        op->hidx = 0;
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    switch (op->kind) {
    case IOP_RECV:
        if (op->lend) {
            /* The kernel takes a buffer from the ring's group only when
             * the data are there (backend.h, "Receive buffers lent"). */
            io_uring_prep_recv(sqe, op->fd, NULL, op->len, 0);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = LEND_BGID;
            break;
        }
        io_uring_prep_recv(sqe, op->fd, op->buf, op->len, 0);
        break;
    case IOP_SEND:
        /* Every byte or an error; a peer that went away is -EPIPE or
         * -ECONNRESET, never SIGPIPE. */
        if (op->zc && iob_have_send_zc)
            io_uring_prep_send_zc(sqe, op->fd, op->buf, op->len, MSG_NOSIGNAL | MSG_WAITALL, 0);
        else
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
        tmo_del(&r->tmo, op);
        return -EINVAL;
    }
    io_uring_sqe_set_data(sqe, op);
    op->lent = -1;
    op->bflags = IOPB_INFLIGHT;
    op->res = 0;
    op->progress = 0;
    op->fdgen = fdgen_of(op->fd);
    op->sqe = sqe;
    op->enext = r->queued;
    r->queued = op;
    r->inflight++;
    return 0;
}

/* Queues a cancel aimed at op, unless one is in already or op's own
 * completion came; the SQ has room. */
static void queue_cancel(struct ring *r, struct iop *op)
{
    if (!(op->bflags & IOPB_INFLIGHT) || (op->bflags & (IOPB_CANCELLING | IOPB_DONE)))
        return;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    io_uring_prep_cancel(sqe, op, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | 1u);
    op->bflags |= IOPB_CANCELLING;
}

static void ur_cancel(struct ring *r, struct iop *op)
{
    if (make_room(r, 1))
        return; /* the kernel takes nothing: the op ends when its fd does */
    /* Making room reaps: the op may have been handed back meanwhile (the
     * caller keeps it alive until this returns). */
    queue_cancel(r, op);
}

/* The ops whose deadline passed (io/tmo.h) get a cancel each, which goes
 * to the kernel with the next submission: -ECANCELED, or the op's own
 * result if it completed first. An op's handler may give it to a process
 * that frees it on another scheduler, so nothing here reaps (make_room
 * would): with the SQ full and the kernel taking nothing more, the rest
 * wait for the next reap. precise: read the clock, else tmo_due decides
 * whether to. */
static void expire(struct ring *r, bool precise)
{
    struct tmo_heap *h = &r->tmo;
    uint64_t now;
    if (!h->n)
        return;
    if (precise)
        now = clock_precise_ns();
    else if (!tmo_due(h, &now))
        return;
    struct iop *op;
    while ((op = tmo_first(h)) && op->deadline <= now) {
        if (io_uring_sq_space_left(&r->uring) == 0) {
            ur_flush(r);
            if (io_uring_sq_space_left(&r->uring) == 0)
                return;
        }
        tmo_del(h, op);
        if (!(op->bflags & (IOPB_CANCELLING | IOPB_DONE)))
            r->timeouts++;
        queue_cancel(r, op);
    }
}

static int ur_flush(struct ring *r)
{
    if (io_uring_sq_ready(&r->uring) == 0)
        return 0;
    /* With SQPOLL the kernel's thread takes the entries; liburing enters
     * only to wake it when it went to sleep. */
    bool enters = !r->sqpoll ||
                  (IO_URING_READ_ONCE(*r->uring.sq.kflags) & IORING_SQ_NEED_WAKEUP);
    submit(r);
    if (enters)
        r->enters++;
    return enters ? 1 : 0;
}

/* A lent buffer goes back to the end of the ring: the kernel lends it
 * again after every buffer put back before it. */
static void lend_put(struct ring *r, unsigned bid)
{
    io_uring_buf_ring_add(r->lend_br, r->lend_mem + (size_t)bid * IOB_LEND_SIZE,
                          IOB_LEND_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(r->lend_count), 0);
    /* a release store of the tail: the entry before the kernel sees it */
    io_uring_buf_ring_advance(r->lend_br, 1);
}

static void hand_back(struct ring *r, struct iop *op, int res)
{
    tmo_del(&r->tmo, op);
    if (op->bflags & IOPB_CLOSED)
        res = closed_result(op);
    op->bflags &= (uint8_t)~IOPB_INFLIGHT;
    r->inflight--;
    int lent = op->lent;
    if (lent >= 0)
        op->buf = r->lend_mem + (size_t)lent * IOB_LEND_SIZE;
    /* the handler copies the data out; op may be gone when it returns */
    iob_done(op, res);
    if (lent >= 0)
        lend_put(r, (unsigned)lent);
}

/* The buffer the kernel picked for op's data, if it picked one. */
static inline void took_buffer(struct ring *r, struct iop *op, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_BUFFER))
        return;
    unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
    if (bid < r->lend_count)
        op->lent = (int16_t)bid;
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
            if ((op->bflags & (IOPB_DONE | IOPB_ZCWAIT)) == IOPB_DONE)
                hand_back(r, op, op->res);
            continue;
        }
        /* A zero-copy send completes twice: its result, with F_MORE when
         * the kernel still reads the buffer, then a notification (F_NOTIF)
         * once it does not. The op is handed back after both. */
        if (cqe->flags & IORING_CQE_F_NOTIF) {
            op->bflags &= (uint8_t)~IOPB_ZCWAIT;
            if ((op->bflags & (IOPB_DONE | IOPB_CANCELLING)) == IOPB_DONE)
                hand_back(r, op, op->res);
            continue;
        }
        if (cqe->flags & IORING_CQE_F_MORE) {
            op->res = cqe->res;
            op->bflags |= IOPB_DONE | IOPB_ZCWAIT;
            continue;
        }
        took_buffer(r, op, cqe);
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

static int ur_reap(struct ring *r)
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
    expire(r, false);
    return (int)n;
}

/* Completions per submission-queue entry: the CQ is sized well above the
 * SQ, because one pass of a scheduler can have many more operations in
 * flight (every idle connection's receive) than it submits at once. An
 * overflow still loses nothing (IORING_FEAT_NODROP, see iob_reap). */
#define CQ_PER_SQ 16u

static int ur_init(struct ring *r, unsigned entries, unsigned flags, const char **why)
{
    fdgen_init();
    bool sqpoll = flags & RING_INIT_SQPOLL;
    struct io_uring_params p;
    memset(r, 0, sizeof *r);
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    p.cq_entries = entries * CQ_PER_SQ;
    /* A scheduler's ring with DEFER_TASKRUN: completions' work is queued
     * on the ring itself and run only when its owner enters with
     * GETEVENTS (no task-work notification per completion, no wake-up of
     * a parked owner before it has something to take). It needs
     * SINGLE_ISSUER, and the issuer is the thread that enables the ring:
     * created disabled here, on the main thread, it is enabled by
     * ur_bind on its scheduler's thread, which also drains it at the end
     * (runtime/sched/sched.c). Kernels before 6.1 refuse the flags: the
     * ring is made without them, with a line on stderr. */
    bool defer = !sqpoll && (flags & RING_INIT_DEFER);
    if (defer) {
        p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
                   IORING_SETUP_R_DISABLED | IORING_SETUP_COOP_TASKRUN |
                   IORING_SETUP_TASKRUN_FLAG;
        int rc = io_uring_queue_init_params(entries, &r->uring, &p);
        if (rc == 0) {
            r->features |= RING_F_DEFER_TASKRUN | RING_F_SINGLE_ISSUER | RING_F_COOP_TASKRUN;
            r->disabled = true;
            return ur_setup_done(r, &p, sqpoll, why);
        }
        static _Atomic bool said_defer;
        if (rc == -EINVAL && !atomic_exchange(&said_defer, true))
            fprintf(stderr, "hive: this kernel's io_uring lacks IORING_SETUP_DEFER_TASKRUN "
                            "(Linux >= 6.1): completions run as COOP_TASKRUN task work\n");
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
        p.cq_entries = entries * CQ_PER_SQ;
    }
    /* Completions' task work runs when the scheduler next enters the
     * kernel (its submit, or get_events when IORING_SQ_TASKRUN says some
     * wait), not by an interrupt in the middle of a running process.
     * Measured in docs/io.md; kernels before 5.19 refuse it, and get the
     * interrupting default. With SQPOLL the kernel's thread runs it (and
     * the kernel refuses the flags). */
    if (!sqpoll)
        p.flags |= IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG;
    if (sqpoll) {
        p.flags |= IORING_SETUP_SQPOLL;
        p.sq_thread_idle = 1000;
    }
    int rc = io_uring_queue_init_params(entries, &r->uring, &p);
    if (rc == -EINVAL && !sqpoll) {
        unsigned want = p.flags & ~(IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG);
        memset(&p, 0, sizeof p);
        p.flags = want;
        p.cq_entries = entries * CQ_PER_SQ;
        p.sq_thread_idle = 1000;
        rc = io_uring_queue_init_params(entries, &r->uring, &p);
        static _Atomic bool said;
        if (rc == 0 && !atomic_exchange(&said, true))
            fprintf(stderr, "hive: this kernel's io_uring lacks IORING_SETUP_COOP_TASKRUN "
                            "(Linux >= 5.19): I/O completions interrupt running schedulers\n");
    } else if (rc == 0) {
        r->features |= RING_F_COOP_TASKRUN;
    }
    if (rc < 0) {
        *why = NULL;
        int disabled = 0;
        FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
        if (f) {
            if (fscanf(f, "%d", &disabled) != 1)
                disabled = 0;
            fclose(f);
        }
        if (disabled)
            *why = "io_uring is disabled by sysctl kernel.io_uring_disabled "
                   "(set it to 0, or 1 and run in the io_uring group)";
        else if (rc == -EPERM)
            *why = "io_uring_setup was refused (EPERM): a seccomp filter or container "
                   "policy forbids io_uring";
        else if (rc == -ENOSYS)
            *why = "this kernel has no io_uring (ENOSYS): hive needs Linux >= 5.19";
        else if (rc == -ENOMEM)
            *why = "io_uring_setup failed with ENOMEM: raise RLIMIT_MEMLOCK (ulimit -l) "
                   "or lower ring_entries";
        else if (rc == -EINVAL)
            *why = "io_uring_setup rejected the parameters (EINVAL): ring_entries too "
                   "large or sqpoll unsupported";
        else
            *why = "io_uring_setup failed";
        return rc;
    }
    return ur_setup_done(r, &p, sqpoll, why);
}

/* What every successful set-up checks and records. */
static int ur_setup_done(struct ring *r, const struct io_uring_params *p, bool sqpoll,
                         const char **why)
{
    if (!(p->features & IORING_FEAT_EXT_ARG)) {
        io_uring_queue_exit(&r->uring);
        *why = "this kernel's io_uring lacks IORING_FEAT_EXT_ARG (needs Linux >= 5.11)";
        return -ENOSYS;
    }
    if (!(p->features & IORING_FEAT_NODROP)) {
        io_uring_queue_exit(&r->uring);
        *why = "this kernel's io_uring lacks IORING_FEAT_NODROP (needs Linux >= 5.5)";
        return -ENOSYS;
    }
    r->sqpoll = sqpoll;
    r->cq_entries = p->cq_entries;
    r->wake_fd = r->uring.ring_fd;
    if (fdgen_register(r)) {
        io_uring_queue_exit(&r->uring);
        *why = "too many rings";
        return -ENOSPC;
    }
    r->ready = true;
    atomic_init(&r->posted, NULL);
    return 0;
}

static int ur_bind(struct ring *r, const char **why)
{
    if (!r->disabled)
        return 0;
    /* SINGLE_ISSUER: the thread that enables the ring is its issuer. */
    int rc = hive_uring_enable_rings(&r->uring);
    if (rc < 0) {
        *why = "io_uring_register(IORING_REGISTER_ENABLE_RINGS) failed";
        return rc;
    }
    r->disabled = false;
    return 0;
}

static int ur_probe(struct ring *r, const char **why)
{
    static const struct { int op; const char *name; } need[] = {
        { IORING_OP_MSG_RING, "IORING_OP_MSG_RING (needs Linux >= 5.18)" },
        { IORING_OP_RECV, "IORING_OP_RECV" },
        { IORING_OP_SEND, "IORING_OP_SEND" },
        { IORING_OP_READ, "IORING_OP_READ" },
        { IORING_OP_WRITE, "IORING_OP_WRITE" },
        { IORING_OP_ACCEPT, "IORING_OP_ACCEPT" },
        { IORING_OP_CONNECT, "IORING_OP_CONNECT" },
        { IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL" },
    };
    static char msg[128];
    struct io_uring_probe *pr = io_uring_get_probe_ring(&r->uring);
    if (!pr) {
        *why = "cannot probe io_uring opcodes";
        return -ENOSYS;
    }
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (!io_uring_opcode_supported(pr, need[i].op)) {
            io_uring_free_probe(pr);
            snprintf(msg, sizeof msg, "this kernel's io_uring lacks %s", need[i].name);
            *why = msg;
            return -ENOSYS;
        }
    }
    iob_have_send_zc = io_uring_opcode_supported(pr, IORING_OP_SEND_ZC);
    io_uring_free_probe(pr);
    /* A policy may let the ring be made and refuse to enter it: one no-op
     * round trip says whether io_uring_enter works. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    if (!sqe) {
        *why = "cannot get a submission entry";
        return -EBUSY;
    }
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data64(sqe, 0);
    int rc = io_uring_submit_and_wait(&r->uring, 1);
    if (rc < 0) {
        snprintf(msg, sizeof msg, "io_uring_enter was refused (%s): a seccomp filter or "
                 "container policy forbids io_uring", strerror(-rc));
        *why = msg;
        return rc;
    }
    ur_reap(r);
    return 0;
}

/* Cancels every operation still in the kernel and reaps until the backend
 * has handed each one back, so that no buffer is freed under the kernel.
 * Bounded: after 10 s of a kernel that does not answer, what is left
 * leaks rather than being freed under it. */
static void ur_drain(struct ring *r)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool asked = false;
    while (r->inflight) {
        if (!asked) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
            if (!sqe) {
                submit(r);
                continue;
            }
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
            io_uring_sqe_set_data64(sqe, 0);
            asked = true;
        }
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
        if (r->queued)
            submit(r);
        int rc = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts, NULL);
        if (rc == -EEXIST) {
            /* a SINGLE_ISSUER ring entered from another thread: its owner
             * should have drained it (sched_thread); nothing can be done */
            fprintf(stderr, "hive: %u I/O operations left on a ring drained off its thread\n",
                    r->inflight);
            break;
        }
        ur_reap(r);
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec > 10) {
            fprintf(stderr, "hive: %u I/O operations did not finish at shutdown\n",
                    r->inflight);
            break;
        }
        if (t1.tv_sec != t0.tv_sec)
            asked = false; /* ask again now and then: new ones may have raced */
    }
}

static void ur_fini(struct ring *r)
{
    if (r->ready) {
        if (r->inflight)
            ur_drain(r);
        /* the ring's exit releases the buffer group with it */
        io_uring_queue_exit(&r->uring);
        fdgen_unregister(r);
        tmo_free(&r->tmo);
        if (r->lend_count) {
            munmap(r->lend_br, lend_ring_bytes(r->lend_count));
            munmap(r->lend_mem, (size_t)r->lend_count * IOB_LEND_SIZE);
            r->lend_count = 0;
        }
    }
    r->ready = false;
}

/* The provided-buffer ring (Linux 5.19): count entries, page-aligned as
 * the kernel wants them, and count buffers of IOB_LEND_SIZE, which are
 * resident only once the kernel has received into them. liburing 2.3 has
 * no io_uring_setup_buf_ring: the ring is mapped and registered here. */
static int ur_lend_init(struct ring *r, unsigned count, const char **why)
{
    if (!count)
        return 0;
    void *br = mmap(NULL, lend_ring_bytes(count), PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *mem = mmap(NULL, (size_t)count * IOB_LEND_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    r->sys += 2;
    if (br == MAP_FAILED || mem == MAP_FAILED) {
        if (br != MAP_FAILED)
            munmap(br, lend_ring_bytes(count));
        if (mem != MAP_FAILED)
            munmap(mem, (size_t)count * IOB_LEND_SIZE);
        *why = "cannot map the receive buffers";
        return -ENOMEM;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)br;
    reg.ring_entries = count;
    reg.bgid = LEND_BGID;
    int rc = io_uring_register_buf_ring(&r->uring, &reg, 0);
    r->sys++;
    if (rc < 0) {
        munmap(br, lend_ring_bytes(count));
        munmap(mem, (size_t)count * IOB_LEND_SIZE);
        *why = rc == -EINVAL ? "this kernel's io_uring lacks provided-buffer rings "
                               "(IORING_REGISTER_PBUF_RING, Linux >= 5.19)"
                             : "io_uring_register(IORING_REGISTER_PBUF_RING) failed";
        return rc;
    }
    r->lend_br = br;
    r->lend_mem = mem;
    r->lend_count = count;
    io_uring_buf_ring_init(r->lend_br);
    for (unsigned i = 0; i < count; i++)
        io_uring_buf_ring_add(r->lend_br, r->lend_mem + (size_t)i * IOB_LEND_SIZE,
                              IOB_LEND_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(count), (int)i);
    io_uring_buf_ring_advance(r->lend_br, (int)count);
    return 0;
}

static int ur_park(struct ring *r, int64_t timeout_ns)
{
    struct io_uring_cqe *cqe = NULL;
    struct __kernel_timespec ts, *tsp = NULL;
    /* What is due is cancelled now (each op has had its try: queued ops
     * are submitted first); the wait lasts until the next deadline. */
    if (r->tmo.n) {
        ur_flush(r);
        expire(r, true);
        timeout_ns = tmo_wait(&r->tmo, timeout_ns);
    }
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    /* What is queued goes in by itself (its fd section must not last a
     * wait); the park's loop submitted it already, nearly always. */
    if (r->queued) {
        submit(r);
        r->enters++;
    }
    io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, tsp, NULL);
    r->enters++;
    return ur_reap(r);
}

static int ur_wake(struct ring *r, int target_fd)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    if (!sqe) {
        submit(r);
        sqe = io_uring_get_sqe(&r->uring);
        if (!sqe)
            return -EBUSY;
    }
    io_uring_prep_msg_ring(sqe, target_fd, 0, RING_WAKE_UD, 0);
    /* No completion on our side for a wake that worked. */
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, 0);
    int rc = submit(r);
    r->enters++;
    return rc < 0 ? rc : 0;
}

static void ur_fd_closing(struct ring *r, int fd)
{
    (void)fd;
    /* What this scheduler queued on the fd is settled before the close:
     * it ends as the shutdown ends it (a recv_async just before the close
     * with EOF, not EBADF). Other schedulers' queued ops see the bump at
     * their next submission (pre_submit). */
    if (r)
        ur_flush(r);
}

const struct io_ops uring_ops = {
    .kind = IO_URING,
    .name = "io_uring",
    .init = ur_init,
    .bind = ur_bind,
    .probe = ur_probe,
    .drain = ur_drain,
    .fini = ur_fini,
    .park = ur_park,
    .wake = ur_wake,
    .start = ur_start,
    .cancel = ur_cancel,
    .flush = ur_flush,
    .reap = ur_reap,
    .fd_closing = ur_fd_closing,
    .lend_init = ur_lend_init,
};
