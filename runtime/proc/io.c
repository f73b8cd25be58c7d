/*
 * I/O from processes: blocking-style calls that park the process, never
 * the scheduler, and {active, once} receives delivered as messages.
 *
 * A request (struct ioreq) is an operation for the backend (io/backend.h)
 * plus the message that will carry its completion. The message's payload
 * is the operation's buffer: the kernel receives into it, sends from a copy
 * made into it, writes a peer's address into it. So the kernel never holds
 * a pointer into a process's stack or memory, and a process that exits,
 * is killed, or gives its stack back while idle leaves nothing the kernel
 * could write to. A blocking call copies between the payload and the
 * caller's buffer when it returns.
 *
 * Who owns a request. It is started on the ring of the scheduler the
 * process runs on (its owner), and is on the process's list of requests
 * in flight. Its state moves once, by CAS:
 *   INFLIGHT -> COMPLETED  the owner, when the backend hands it back: the
 *                          message goes to the process's mailbox (like any
 *                          message, so a process stolen by another
 *                          scheduler meanwhile gets it there), and the
 *                          request now belongs to the process alone, which
 *                          frees it when the message leaves its mailbox
 *                          (io_delivered) or when it exits;
 *   INFLIGHT -> ORPHAN     the process, when it exits with the request in
 *                          flight: the request belongs to the owner alone.
 *                          On the exiting thread's own ring it is cancelled
 *                          there and then; otherwise the process posts it
 *                          on the owner's cancel stack and wakes the owner.
 *                          The owner cancels it in the kernel and frees it,
 *                          with its buffer, once both have happened: the
 *                          stack entry was taken (cancel_seen) and the
 *                          backend handed it back (kdone), and, for the one
 *                          request of each push that carries the exiting
 *                          process (waiter), once that process was told
 *                          its cancels reached the kernel (take_acks): the
 *                          exit waits for that before it is announced
 *                          (exit.c, Y_EXIT_IO).
 * Neither side touches the request after losing it: the owner reads what
 * it needs before its CAS, the process after its own.
 *
 * Receives of at most IOB_LEND_SIZE bytes borrow their buffer (io/backend.h,
 * "Receive buffers lent"): the request starts with a message of LEND_NODE
 * payload bytes and no buffer, the backend lends it one when the data
 * arrive, and the completion copies them into the message (a bigger one if
 * they do not fit) before the buffer goes back. So a connection that waits
 * for data holds no buffer for them. With every buffer out the op ends
 * with -ENOBUFS; the owner runs it again with a buffer of its own
 * (lend_retries) after the reap, outside the backend's dispatch.
 *
 * Time-outs: a blocking call's operation carries the time left, and the
 * backend cancels it once that has passed (io/tmo.h); the process waits
 * for the operation's own completion whatever happens. Data that arrived
 * before the cancel are returned, not lost; a time-out is -ECANCELED,
 * reported as -ETIMEDOUT, and never early (the deadline is counted from
 * the op's start, after the call's). The socket stays usable.
 */
#include "runtime/proc/io.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc/alloc.h"
#include "io/backend.h"
#include "io/ring.h"
#include "runtime/proc/msg.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/receive.h"
#include "runtime/sched/sched.h"

/* The most one operation moves: a larger recv or read returns what fits,
 * a larger send or write goes in pieces of this size. */
#define IO_CHUNK (256u * 1024u)

enum { RQ_INFLIGHT = 0, RQ_COMPLETED, RQ_ORPHAN };

struct ioreq {
    struct iop      op;          /* first: the backend hands it back */
    _Atomic uint32_t state;      /* RQ_*, see the top of this file */
    bool            async;       /* hive_io_recv_async: a HIVE_TAG_IO message */
    /* owner thread */
    bool            retrying;    /* on the ring's lend_retry list: not in the backend */
    /* owner thread, once orphaned */
    bool            kdone;       /* the backend handed it back */
    bool            cancel_seen; /* its entry on the cancel stack was taken */
    int             res;         /* the result, for an exit that finds it COMPLETED */
    struct ring    *ring;        /* the owner's */
    struct mnode   *node;        /* the completion message; its payload is the buffer */
    hive_pid        pid;
    struct ioreq   *cnext;       /* cancel stack link (written before the push);
                                    once taken, the ring's acks link */
    struct proc    *waiter;      /* an exiting process to tell once this cancel
                                    (the last of its group) reached the kernel */
    struct ioreq   *rnext;       /* lend_retry link (owner thread) */
    uint32_t        cap;         /* a lending receive: the buffer a retry gets */
    struct ioreq   *pnext, **pprev; /* the process's list (the process only) */
};

/* The payload a lending receive's message starts with: what fits in the
 * smallest node class (128 bytes with its header), room for an error's
 * int and for small data; larger data get a node of their size. */
#define LEND_NODE 48u

/* ACCEPT's payload: where the kernel writes the peer's address. */
struct accept_buf {
    struct sockaddr_storage ss;
    socklen_t len;
};

static struct sched_counters *counters(void)
{
    struct sched *s = cur_sched;
    return s ? &s->st : NULL;
}

static inline void count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* The backend's system calls (SQ full, CQ overflow, flushes, epoll's
 * calls) on the owner's counters. */
static inline void count_enters(struct sched *s)
{
    sched_count_ring(s);
}

static void req_free(struct ioreq *q)
{
    if (q->node)
        mnode_free(q->node);
    mem_free(q, sizeof *q);
}

/* ------------------------------------------------------------------ */
/* The owner's side                                                    */
/* ------------------------------------------------------------------ */

/* An orphan is the owner's once both are true; then nobody else names it. */
static void orphan_step(struct ioreq *q)
{
    if (q->kdone && q->cancel_seen && !q->waiter) {
        /* An accept that completed for nobody: its connection is closed,
         * not leaked. */
        if (q->op.kind == IOP_ACCEPT && q->res >= 0)
            close(q->res);
        req_free(q);
    }
}

/* A node of len payload bytes in place of q's, with the same header. */
static struct mnode *regrow(struct ioreq *q, size_t len)
{
    struct mnode *o = q->node, *n = mnode_alloc(len);
    if (!n)
        return NULL;
    n->kind = o->kind;
    n->msg.tag = o->msg.tag;
    n->msg.from = o->msg.from;
    n->msg.ref = o->msg.ref;
    mnode_free(o);
    q->node = n;
    return n;
}

/* The data of a lending receive, in the lent buffer for the time of the
 * handler's call, into its message: res, or -ENOMEM (the data are lost). */
static int take_lent(struct ioreq *q, int res, struct sched_counters *st)
{
    if (res <= 0)
        return res;
    struct mnode *n = q->node;
    if ((size_t)res > LEND_NODE && !(n = regrow(q, (size_t)res)))
        return -ENOMEM;
    memcpy(n->msg.data, q->op.buf, (size_t)res);
    if (st)
        count(&st->io_recv_lent, 1);
    return res;
}

/* The backend handed the op back: the kernel is done with its buffer. */
static void on_done(struct iop *op, int res)
{
    struct ioreq *q = (struct ioreq *)op;
    struct sched_counters *st = counters();
    if (st)
        count(&st->io_completed, 1);
    q->res = res;
    if (atomic_load_explicit(&q->state, memory_order_acquire) == RQ_INFLIGHT) {
        if (op->lend) {
            if (res == -ENOBUFS) {
                /* every buffer out: run again with one of its own, after
                 * the reap (lend_retries) */
                if (st)
                    count(&st->io_recv_nobufs, 1);
                q->retrying = true;
                q->rnext = q->ring->lend_retry;
                q->ring->lend_retry = q;
                return;
            }
            res = q->res = take_lent(q, res, st);
        }
        struct mnode *n = q->node;
        hive_pid pid = q->pid;
        n->aux = res;
        n->aux2 = (uint64_t)(uintptr_t)q;
        if (q->async) {
            if (res >= 0) {
                n->msg.len = (uint32_t)res;
            } else {
                n->msg.tag = HIVE_TAG_IO_ERROR;
                n->msg.len = sizeof(int);
                memcpy(n->msg.data, &res, sizeof res);
            }
        }
        uint32_t want = RQ_INFLIGHT;
        /* acq_rel: the payload and the fields above before the process
         * can free q (it owns it from here); pairs with its CAS. */
        if (atomic_compare_exchange_strong_explicit(&q->state, &want, RQ_COMPLETED,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            /* q is the process's now; only n and pid are used. A process
             * that died meanwhile frees q at exit; its message is freed
             * here or with its mailbox. */
            if (proc_send_node(pid, n) != 0)
                mnode_free(n);
            return;
        }
    }
    q->kdone = true;
    orphan_step(q);
}

/* The owner takes the cancel of the orphan q, on r's thread. */
static void take_cancel(struct ring *r, struct ioreq *q, bool finishing)
{
    if (!q->kdone && !q->retrying && !finishing) {
        /* cancel_seen only after: iob_cancel may reap q's completion,
         * and q must outlive the call. */
        iob_cancel(r, &q->op);
        struct sched_counters *st = counters();
        if (st)
            count(&st->io_cancels, 1);
    }
    if (q->waiter) {
        /* told after the flush that takes the cancel to the kernel */
        q->cnext = r->acks;
        r->acks = q;
    }
    q->cancel_seen = true;
    orphan_step(q);
}

/* The exits waiting for cancels this ring has taken and submitted: each
 * gives up its share of the process's io_exit_wait, and the last one
 * makes the process runnable here, to announce its exit. */
static void take_acks(struct ring *r)
{
    struct ioreq *q = r->acks;
    r->acks = NULL;
    while (q) {
        struct ioreq *nx = q->cnext;
        struct proc *w = q->waiter;
        q->waiter = NULL;
        /* acq_rel: pairs with the other decrements of io_exit_wait (the
         * process's own in sched_finish_prev, other owners' here): the
         * one that reaches 0 sees everything the others did first. */
        if (atomic_fetch_sub_explicit(&w->io_exit_wait, 1, memory_order_acq_rel) == 1)
            sched_ready_on(cur_sched, w);
        orphan_step(q);
        q = nx;
    }
}

/* Cancels posted by exiting processes (any thread). */
static void take_cancels(struct ring *r, bool finishing)
{
    /* acquire: pairs with the release CAS of post_cancel. */
    struct ioreq *q = atomic_exchange_explicit(&r->posted, NULL, memory_order_acquire);
    while (q) {
        struct ioreq *nx = q->cnext;
        take_cancel(r, q, finishing);
        q = nx;
    }
}

static void take_posted(struct ring *r)
{
    take_cancels(r, false);
}

void io_sched_bind(struct sched *s)
{
    s->ring.take_posted = take_posted;
}

/* Lending receives that met -ENOBUFS, run again with a buffer of their
 * own of the size asked for (the time-out starts again: never early). An
 * orphan among them is not in the backend: it is handed back here. */
static void lend_retries(struct ring *r)
{
    struct ioreq *q = r->lend_retry;
    r->lend_retry = NULL;
    while (q) {
        struct ioreq *nx = q->rnext;
        q->retrying = false;
        /* acquire: pairs with the exiting process's CAS (io_proc_exit) */
        if (atomic_load_explicit(&q->state, memory_order_acquire) == RQ_ORPHAN) {
            q->kdone = true;
            orphan_step(q);
        } else {
            struct mnode *n = regrow(q, q->cap);
            int rc = -ENOMEM;
            if (n) {
                q->op.lend = false;
                q->op.buf = n->msg.data;
                rc = iob_start(r, &q->op);
            }
            struct sched_counters *st = counters();
            if (rc)
                on_done(&q->op, rc); /* not started: its error is its completion */
            else if (st)
                count(&st->io_submitted, 1);
        }
        q = nx;
    }
}

/* The scheduler loop's source for its ring (struct sched_source): orphans
 * to cancel, this pass's requests in one submission, then the completions
 * reaped without a system call. Returns how many completions it took. */
static unsigned io_poll(struct sched *s)
{
    struct ring *r = &s->ring;
    if (atomic_load_explicit(&r->posted, memory_order_relaxed))
        take_cancels(r, false);
    iob_flush(r);
    int n = iob_reap(r);
    if (r->lend_retry)
        lend_retries(r);
    /* After the flush: the cancels taken above (or by the epoll backend
     * in its last wait) are in the kernel. */
    if (r->acks) {
        take_acks(r);
        n++;
    }
    count_enters(s);
    return n > 0 ? (unsigned)n : 0;
}

static bool io_pending(struct sched *s)
{
    return atomic_load_explicit(&s->ring.posted, memory_order_relaxed) != 0 ||
           s->ring.acks != NULL;
}

const struct sched_source io_source = {
    .name = "io",
    .poll = io_poll,
    .pending = io_pending,
};

void io_sched_fini(struct sched *s)
{
    struct ring *r = &s->ring;
    if (!r->ready)
        return;
    /* Every process is gone: what is still in the kernel is an orphan,
     * and the drain's cancel-all reaches each one; those waiting for a
     * retry are handed back. */
    take_cancels(r, true);
    take_acks(r);
    lend_retries(r);
    ring_drain(r);
}

/* ------------------------------------------------------------------ */
/* The process's side                                                  */
/* ------------------------------------------------------------------ */

static void plist_add(struct proc *p, struct ioreq *q)
{
    q->pnext = p->io;
    q->pprev = &p->io;
    if (p->io)
        p->io->pprev = &q->pnext;
    p->io = q;
}

static void plist_del(struct ioreq *q)
{
    *q->pprev = q->pnext;
    if (q->pnext)
        q->pnext->pprev = q->pprev;
}

void io_delivered(struct proc *p, struct mnode *n)
{
    (void)p;
    struct ioreq *q = (struct ioreq *)(uintptr_t)n->aux2;
    plist_del(q);
    q->node = NULL; /* the message is the receiver's now */
    req_free(q);
    n->aux2 = 0;
}

/* Pushes the chain head..tail (linked by cnext) on r's cancel stack in
 * one CAS, so that its owner takes all of it in one exchange: the ack of
 * its waiter never comes before one of its cancels was submitted. */
static void post_chain(struct ring *r, struct ioreq *head, struct ioreq *tail)
{
    struct ioreq *h = atomic_load_explicit(&r->posted, memory_order_relaxed);
    do {
        tail->cnext = h;
        /* release: the chain's links, the orphaning and the waiter's
         * io_exit_wait before the owner takes them; pairs with the
         * acquire exchange of take_cancels. */
    } while (!atomic_compare_exchange_weak_explicit(&r->posted, (void **)&h, head,
                                                    memory_order_release,
                                                    memory_order_relaxed));
}

/* One MSG_RING from s's ring: an owner that is parked wakes and takes its
 * cancels; one that is running reaps the wake-up with its completions. */
static void wake_owner(struct sched *s, struct sched *o)
{
    ring_wake(&s->ring, ring_fd(&o->ring));
    sched_count_ring(s);
}

/* The cancels io_proc_exit posts to one other scheduler. */
struct exit_group {
    struct sched *o;
    struct ioreq *head, *tail;
};

/* Posts g's cancels to its owner and wakes it; with p, the owner tells p
 * when they reached the kernel (take_acks). */
static void post_group(struct sched *s, struct exit_group *g, struct proc *p)
{
    if (p) {
        g->tail->waiter = p;
        /* relaxed: the post's release publishes it to the owner */
        atomic_fetch_add_explicit(&p->io_exit_wait, 1, memory_order_relaxed);
    }
    post_chain(&g->o->ring, g->head, g->tail); /* theirs from here */
    wake_owner(s, g->o);
}

bool io_proc_exit(struct proc *p, bool can_wait)
{
    struct sched *s = p->sched;
    struct exit_group g[8];
    unsigned ng = 0;
    bool here = false;
    struct proc *waiter = can_wait ? p : NULL;
    /* p's own share, given up after its switch-out (sched_finish_prev) */
    if (can_wait)
        atomic_store_explicit(&p->io_exit_wait, 1, memory_order_relaxed);
    while (p->io) {
        struct ioreq *q = p->io;
        plist_del(q);
        uint32_t want = RQ_INFLIGHT;
        /* acq_rel: pairs with the owner's CAS in on_done. */
        if (atomic_compare_exchange_strong_explicit(&q->state, &want, RQ_ORPHAN,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            struct sched *o = (struct sched *)((char *)q->ring - offsetof(struct sched, ring));
            if (o == s) {
                /* Its ring is this thread's: cancelled now, before the
                 * exit's DOWNs and exit signals go out, so that no one
                 * who learns of the death can start an operation on the
                 * same fd that this one could still take data from (the
                 * epoll backend ends a waiting op here and then). */
                take_cancel(q->ring, q, false);
                here = true;
                continue;
            }
            /* Another scheduler's ring: only its thread may cancel it.
             * Gathered per owner, posted below in one push each. */
            unsigned i = 0;
            while (i < ng && g[i].o != o)
                i++;
            if (i == ng) {
                if (ng == 8) { /* more owners than slots: post the first */
                    post_group(s, &g[0], waiter);
                    g[0] = g[--ng];
                    i = ng;
                }
                g[ng++] = (struct exit_group){ o, q, q };
                q->cnext = NULL;
            } else {
                q->cnext = g[i].head;
                g[i].head = q;
            }
        } else {
            /* Completed: its message is in our mailbox (freed with it) or
             * was dropped; an accepted connection nobody will see is closed. */
            if (q->op.kind == IOP_ACCEPT && q->res >= 0)
                close(q->res);
            q->node = NULL;
            req_free(q);
        }
    }
    /* The cancels queued here reach the kernel now (io_uring: one
     * io_uring_enter), not at the next pass of the loop: before the exit
     * is announced. */
    if (here)
        iob_flush(&s->ring);
    /* The others go to their owners, each woken (it may be parked with
     * nothing else to do) to take them now. */
    for (unsigned i = 0; i < ng; i++)
        post_group(s, &g[i], waiter);
    return can_wait && ng > 0; /* a group posted early left one in its place */
}

bool io_all_on(struct proc *p, struct sched *s)
{
    for (struct ioreq *q = p->io; q; q = q->pnext)
        if (q->ring != &s->ring)
            return false;
    return true;
}

/* ------------------------------------------------------------------ */
/* Starting and waiting                                                */
/* ------------------------------------------------------------------ */

/* A request of kind with a payload of cap bytes, for process p. */
static struct ioreq *req_new(struct proc *p, uint8_t kind, int fd, size_t cap)
{
    struct ioreq *q = mem_alloc(sizeof *q);
    if (!q)
        return NULL;
    struct mnode *n = mnode_alloc(cap);
    if (!n) {
        mem_free(q, sizeof *q);
        return NULL;
    }
    n->kind = MK_IO;
    n->msg.tag = HIVE_TAG_IO;
    n->msg.from = HIVE_NOPID;
    n->msg.ref = hive_make_ref();
    memset(&q->op, 0, sizeof q->op);
    q->op.kind = kind;
    q->op.fd = fd;
    q->op.buf = n->msg.data;
    q->op.len = (uint32_t)cap;
    q->op.off = -1;
    q->op.timeout_ns = -1;
    atomic_init(&q->state, RQ_INFLIGHT);
    q->async = false;
    q->kdone = false;
    q->cancel_seen = false;
    q->res = 0;
    q->ring = &p->sched->ring;
    q->node = n;
    q->pid = atomic_load_explicit(&p->pid, memory_order_relaxed);
    q->cnext = NULL;
    q->waiter = NULL;
    q->rnext = NULL;
    q->retrying = false;
    q->cap = (uint32_t)cap;
    return q;
}

/* A receive of up to len (at most IO_CHUNK) bytes: lending when the ring
 * lends buffers that large (then the message starts small), else with a
 * buffer of len bytes from the start. */
static struct ioreq *req_new_recv(struct proc *p, int fd, size_t len)
{
    bool lend = len <= iob_lend_size(&p->sched->ring);
    struct ioreq *q = req_new(p, IOP_RECV, fd, lend ? LEND_NODE : len);
    if (!q)
        return NULL;
    q->cap = (uint32_t)len;
    q->op.len = (uint32_t)len;
    if (lend) {
        q->op.lend = true;
        q->op.buf = NULL;
    }
    return q;
}

/* Hands q to the backend on p's scheduler; on failure q is freed. */
static int req_start(struct proc *p, struct ioreq *q)
{
    struct sched *s = p->sched;
    q->ring = &s->ring;
    int rc = iob_start(q->ring, &q->op);
    count_enters(s);
    if (rc) {
        req_free(q);
        return rc;
    }
    plist_add(p, q);
    STAT_INC(s, io_submitted);
    return 0;
}

static bool io_match(const hive_msg *m, void *ctx)
{
    const hive_ref *r = ctx;
    return m->ref.lo == r->lo && m->ref.hi == r->hi && mnode_of(m)->kind == MK_IO;
}

/* Starts q and parks until its completion: the result, with *out the
 * completion message (the caller frees it), or a negative errno with no
 * message. Exit signals act meanwhile (a kill ends the process here, and
 * its exit cancels q); other messages wait in the queue. */
static int req_run(struct proc *p, struct ioreq *q, struct mnode **out)
{
    hive_ref ref = q->node->msg.ref;
    /* Only what arrives after this point can be the completion: the wait
     * costs nothing for messages already queued. */
    struct mnode *mark = proc_mark(p);
    int rc = req_start(p, q);
    if (rc)
        return rc;
    hive_msg *m;
    rc = proc_receive(p, io_match, &ref, mark, &m, HIVE_INFINITY);
    if (rc) /* cannot happen without a time-out; the exit path cleans up */
        return rc;
    *out = mnode_of(m);
    return (int)(*out)->aux;
}

/* The checks every blocking call makes. */
static int io_check(struct proc **pp, int fd, const void *buf, size_t len, int64_t timeout_ms)
{
    struct proc *p = cur_proc;
    if (!p)
        return -EPERM;
    if (!buf && len)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    int rc = proc_check_timeout(timeout_ms);
    if (rc)
        return rc;
    *pp = p;
    return 0;
}

static inline uint64_t deadline_of(int64_t timeout_ms)
{
    return timeout_ms < 0 ? UINT64_MAX : clock_precise_ns() + (uint64_t)timeout_ms * 1000000u;
}

/* The time left until deadline, for the next operation's time-out:
 * -1 (none), or ns >= 0; false once it has passed (and a time-out of 0
 * was not asked for). */
static bool time_left(uint64_t deadline, int64_t timeout_ms, bool first, int64_t *ns)
{
    if (deadline == UINT64_MAX) {
        *ns = -1;
        return true;
    }
    if (first) {
        *ns = timeout_ms * 1000000;
        return true;
    }
    uint64_t now = clock_precise_ns();
    if (now >= deadline)
        return false;
    *ns = (int64_t)(deadline - now);
    return true;
}

/* A time-out is the kernel cancelling the op (-ECANCELED; -EINTR when the
 * cancel interrupted it mid-way). */
static inline int io_result(int res, bool timed)
{
    if (timed && (res == -ECANCELED || res == -EINTR))
        return -ETIMEDOUT;
    return res;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

/* A recv or read into the caller's buffer: the kernel fills the request's
 * own buffer (its completion message's payload), copied out here. */
static ssize_t copy_in(uint8_t op, int fd, void *buf, size_t len, int64_t offset,
                       int64_t timeout_ms)
{
    struct proc *p;
    int rc = io_check(&p, fd, buf, len, timeout_ms);
    if (rc)
        return rc;
    if (offset < -1)
        return -EINVAL;
    if (len == 0)
        return 0;
    size_t cap = len < IO_CHUNK ? len : IO_CHUNK;
    struct ioreq *q = op == IOP_RECV ? req_new_recv(p, fd, cap) : req_new(p, op, fd, cap);
    if (!q)
        return -ENOMEM;
    q->op.off = offset;
    q->op.timeout_ns = timeout_ms < 0 ? -1 : timeout_ms * 1000000;
    struct mnode *n = NULL;
    int res = req_run(p, q, &n);
    if (!n)
        return res;
    if (res > 0)
        memcpy(buf, n->msg.data, (size_t)res);
    mnode_free(n);
    return io_result(res, timeout_ms >= 0);
}

ssize_t hive_io_recv(int fd, void *buf, size_t len, int64_t timeout_ms)
{
    return copy_in(IOP_RECV, fd, buf, len, -1, timeout_ms);
}

ssize_t hive_io_read(int fd, void *buf, size_t len, int64_t offset, int64_t timeout_ms)
{
    return copy_in(IOP_READ, fd, buf, len, offset, timeout_ms);
}

/* send and write: every byte, in pieces of at most IO_CHUNK, each a copy
 * the kernel owns until it is done with it. */
static ssize_t put_all(uint8_t kind, int fd, const void *buf, size_t len, int64_t offset,
                       int64_t timeout_ms)
{
    struct proc *p;
    int rc = io_check(&p, fd, buf, len, timeout_ms);
    if (rc)
        return rc;
    if (offset < -1)
        return -EINVAL;
    if (len > (size_t)SSIZE_MAX)
        return -EINVAL;
    uint64_t deadline = deadline_of(timeout_ms);
    size_t done = 0;
    bool first = true;
    /* zero-copy where asked for and the kernel has it; a socket that does
     * not take it (-EOPNOTSUPP: AF_UNIX, say) gets plain sends */
    bool zc = kind == IOP_SEND && g_rt->cfg.send_zc && iob_have_send_zc;
    while (done < len) {
        int64_t ns;
        if (!time_left(deadline, timeout_ms, first, &ns))
            return -ETIMEDOUT;
        size_t piece = len - done < IO_CHUNK ? len - done : IO_CHUNK;
        struct ioreq *q = req_new(p, kind, fd, piece);
        if (!q)
            return -ENOMEM;
        memcpy(q->op.buf, (const char *)buf + done, piece);
        bool piece_zc = zc && piece >= g_rt->cfg.send_zc;
        q->op.zc = piece_zc;
        if (piece_zc)
            STAT_INC(p->sched, io_send_zc);
        q->op.off = offset < 0 ? -1 : offset + (int64_t)done;
        q->op.timeout_ns = ns;
        struct mnode *n = NULL;
        int res = req_run(p, q, &n);
        if (n)
            mnode_free(n);
        if (res == -EOPNOTSUPP && piece_zc) {
            zc = false; /* nothing was sent: the piece again, plainly */
            continue;
        }
        if (res < 0)
            return io_result(res, ns >= 0);
        if (res == 0 && piece > 0)
            return kind == IOP_SEND ? -EPIPE : -EIO;
        done += (size_t)res;
        first = false;
    }
    return (ssize_t)len;
}

ssize_t hive_io_send(int fd, const void *buf, size_t len, int64_t timeout_ms)
{
    if (len == 0) {
        struct proc *p;
        return io_check(&p, fd, buf, len, timeout_ms);
    }
    return put_all(IOP_SEND, fd, buf, len, -1, timeout_ms);
}

ssize_t hive_io_write(int fd, const void *buf, size_t len, int64_t offset, int64_t timeout_ms)
{
    if (len == 0) {
        struct proc *p;
        int rc = io_check(&p, fd, buf, len, timeout_ms);
        return rc ? rc : offset < -1 ? -EINVAL : 0;
    }
    return put_all(IOP_WRITE, fd, buf, len, offset, timeout_ms);
}

int hive_io_accept(int listen_fd, struct sockaddr *addr, socklen_t *addrlen, int64_t timeout_ms)
{
    struct proc *p;
    int rc = io_check(&p, listen_fd, NULL, 0, timeout_ms);
    if (rc)
        return rc;
    if ((addr && !addrlen) || (addrlen && !addr))
        return -EINVAL;
    struct ioreq *q = req_new(p, IOP_ACCEPT, listen_fd, sizeof(struct accept_buf));
    if (!q)
        return -ENOMEM;
    struct accept_buf *ab = q->op.buf;
    ab->len = sizeof ab->ss;
    q->op.addrlen = &ab->len;
    q->op.timeout_ns = timeout_ms < 0 ? -1 : timeout_ms * 1000000;
    struct mnode *n = NULL;
    int res = req_run(p, q, &n);
    if (!n)
        return res;
    if (res >= 0 && addr) {
        ab = n->msg.data;
        socklen_t k = ab->len < *addrlen ? ab->len : *addrlen;
        memcpy(addr, &ab->ss, k);
        *addrlen = ab->len;
    }
    mnode_free(n);
    return io_result(res, timeout_ms >= 0);
}

int hive_io_connect(int fd, const struct sockaddr *addr, socklen_t addrlen, int64_t timeout_ms)
{
    struct proc *p;
    int rc = io_check(&p, fd, addr, addrlen, timeout_ms);
    if (rc)
        return rc;
    if (!addr || addrlen == 0 || addrlen > sizeof(struct sockaddr_storage))
        return -EINVAL;
    struct ioreq *q = req_new(p, IOP_CONNECT, fd, addrlen);
    if (!q)
        return -ENOMEM;
    memcpy(q->op.buf, addr, addrlen);
    q->op.len = addrlen;
    q->op.timeout_ns = timeout_ms < 0 ? -1 : timeout_ms * 1000000;
    struct mnode *n = NULL;
    int res = req_run(p, q, &n);
    if (n)
        mnode_free(n);
    return io_result(res, timeout_ms >= 0);
}

int hive_io_recv_async(int fd, size_t max_len, hive_ref *req)
{
    struct proc *p = cur_proc;
    if (!p)
        return -EPERM;
    if (!req || max_len == 0)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    size_t cap = max_len < IO_CHUNK ? max_len : IO_CHUNK;
    if (cap > g_rt->cfg.max_message)
        cap = g_rt->cfg.max_message;
    size_t len = cap; /* what the kernel may write */
    if (cap < sizeof(int))
        cap = sizeof(int); /* room for an error's payload */
    struct ioreq *q = req_new_recv(p, fd, cap);
    if (!q)
        return -ENOMEM;
    q->op.len = (uint32_t)len;
    q->async = true;
    hive_ref ref = q->node->msg.ref;
    int rc = req_start(p, q);
    if (rc)
        return rc;
    *req = ref;
    return 0;
}

int hive_io_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    /* close() alone does not end an operation in flight on the socket: the
     * ring holds its own reference, no FIN goes out, a pending recv never
     * returns. shutdown() ends them (recv: 0, accept: -EINVAL); for other
     * files it fails harmlessly (ENOTSOCK). */
    struct sched *s = cur_sched;
    /* The backend learns first (io_uring: what this scheduler queued on
     * the fd reaches the kernel, so a recv_async just before the close
     * ends with EOF, not EBADF; epoll: operations waiting on the number
     * end as the shutdown ends them, and it forgets the number). */
    iob_fd_closing(s ? &s->ring : NULL, fd);
    if (s)
        count_enters(s);
    shutdown(fd, SHUT_RDWR);
    return close(fd) == 0 ? 0 : -errno;
}

void io_global_init(void)
{
    iob_set_handler(on_done);
    /* No SIGPIPE ever: sends pass MSG_NOSIGNAL, and a write to a closed
     * pipe or socket through hive_io_write would raise it. A handler the
     * program installed is left alone. */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
        !(sa.sa_flags & SA_SIGINFO)) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);
    }
}
