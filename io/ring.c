#include "io/ring.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "io/backend.h"

/* Completions per submission-queue entry: the CQ is sized well above the
 * SQ, because one pass of a scheduler can have many more operations in
 * flight (every idle connection's receive) than it submits at once. An
 * overflow still loses nothing (IORING_FEAT_NODROP, see iob_reap). */
#define CQ_PER_SQ 16u

int ring_init(struct ring *r, unsigned entries, bool sqpoll, const char **why)
{
    struct io_uring_params p;
    memset(r, 0, sizeof *r);
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    p.cq_entries = entries * CQ_PER_SQ;
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
    if (!(p.features & IORING_FEAT_EXT_ARG)) {
        io_uring_queue_exit(&r->uring);
        *why = "this kernel's io_uring lacks IORING_FEAT_EXT_ARG (needs Linux >= 5.11)";
        return -ENOSYS;
    }
    if (!(p.features & IORING_FEAT_NODROP)) {
        io_uring_queue_exit(&r->uring);
        *why = "this kernel's io_uring lacks IORING_FEAT_NODROP (needs Linux >= 5.5)";
        return -ENOSYS;
    }
    r->sqpoll = sqpoll;
    r->cq_entries = p.cq_entries;
    r->ready = true;
    atomic_init(&r->posted, NULL);
    return 0;
}

int ring_probe(struct ring *r, const char **why)
{
    static const struct { int op; const char *name; } need[] = {
        { IORING_OP_MSG_RING, "IORING_OP_MSG_RING (needs Linux >= 5.18)" },
        { IORING_OP_RECV, "IORING_OP_RECV" },
        { IORING_OP_SEND, "IORING_OP_SEND" },
        { IORING_OP_READ, "IORING_OP_READ" },
        { IORING_OP_WRITE, "IORING_OP_WRITE" },
        { IORING_OP_ACCEPT, "IORING_OP_ACCEPT" },
        { IORING_OP_CONNECT, "IORING_OP_CONNECT" },
        { IORING_OP_LINK_TIMEOUT, "IORING_OP_LINK_TIMEOUT" },
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
    io_uring_free_probe(pr);
    return 0;
}

/* Cancels every operation still in the kernel and reaps until the backend
 * has handed each one back, so that no buffer is freed under the kernel.
 * Bounded: after 10 s of a kernel that does not answer, what is left
 * leaks rather than being freed under it. */
void ring_drain(struct ring *r)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool asked = false;
    while (r->inflight) {
        if (!asked) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
            if (!sqe) {
                io_uring_submit(&r->uring);
                continue;
            }
            io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
            io_uring_sqe_set_data64(sqe, 0);
            asked = true;
        }
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
        io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, &ts, NULL);
        iob_reap(r);
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

void ring_fini(struct ring *r)
{
    if (r->ready) {
        if (r->inflight)
            ring_drain(r);
        io_uring_queue_exit(&r->uring);
    }
    r->ready = false;
}

int ring_reap(struct ring *r)
{
    return iob_reap(r);
}

int ring_park(struct ring *r, int64_t timeout_ns)
{
    struct io_uring_cqe *cqe = NULL;
    struct __kernel_timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, tsp, NULL);
    return ring_reap(r);
}

int ring_wake(struct ring *r, int target_fd)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    if (!sqe) {
        io_uring_submit(&r->uring);
        sqe = io_uring_get_sqe(&r->uring);
        if (!sqe)
            return -EBUSY;
    }
    io_uring_prep_msg_ring(sqe, target_fd, 0, RING_WAKE_UD, 0);
    /* No completion on our side for a wake that worked. */
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, 0);
    int rc = io_uring_submit(&r->uring);
    return rc < 0 ? rc : 0;
}
