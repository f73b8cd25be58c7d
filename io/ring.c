#include "io/ring.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int ring_init(struct ring *r, unsigned entries, bool sqpoll, const char **why)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    if (sqpoll) {
        p.flags |= IORING_SETUP_SQPOLL;
        p.sq_thread_idle = 1000;
    }
    int rc = io_uring_queue_init_params(entries, &r->uring, &p);
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
    r->ready = true;
    return 0;
}

int ring_probe(struct ring *r, const char **why)
{
    struct io_uring_probe *pr = io_uring_get_probe_ring(&r->uring);
    if (!pr) {
        *why = "cannot probe io_uring opcodes";
        return -ENOSYS;
    }
    bool ok = io_uring_opcode_supported(pr, IORING_OP_MSG_RING);
    io_uring_free_probe(pr);
    if (!ok) {
        *why = "this kernel's io_uring lacks IORING_OP_MSG_RING (needs Linux >= 5.18)";
        return -ENOSYS;
    }
    return 0;
}

void ring_fini(struct ring *r)
{
    if (r->ready)
        io_uring_queue_exit(&r->uring);
    r->ready = false;
}

int ring_reap(struct ring *r)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&r->uring, head, cqe) {
        /* Only wake-ups arrive today; I/O completions will be dispatched here. */
        n++;
    }
    if (n)
        io_uring_cq_advance(&r->uring, n);
    return (int)n;
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
    int rc = io_uring_submit(&r->uring);
    return rc < 0 ? rc : 0;
}
