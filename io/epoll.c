/*
 * The epoll backend (backend.h, ring.h), for where io_uring is forbidden or
 * missing: a seccomp filter (Docker's default profile), the sysctl
 * kernel.io_uring_disabled, gVisor, an old kernel.
 *
 * One epoll instance per scheduler, and one eventfd in it that other
 * threads write to wake the scheduler (edge-triggered and never read: each
 * write is one edge, and the wake costs the parked side nothing).
 *
 * An operation is tried at once, without blocking (MSG_DONTWAIT, or a file
 * made O_NONBLOCK). If it would block, it waits on its descriptor's list
 * (reads and accepts on one, sends, writes and connects on the other) and
 * is tried again, in order, when epoll says the descriptor is ready. Each
 * descriptor is registered once per scheduler, edge-triggered, for input:
 * no epoll_ctl per wait. Output is added only when a send, write or
 * connect has to wait (a full socket buffer), and dropped at the first
 * output edge nobody waits for, so the ACKs of sent data do not wake a
 * parked scheduler. A finished
 * operation goes on the ring's finished list and is handed back at the next
 * reap, never from inside iob_start. Regular files do not wait: pread and
 * pwrite (or read/write at the current position) run at once, from the
 * page cache, on the scheduler thread.
 *
 * Time-outs: a waiting operation with one sits in a min-heap by deadline
 * (io/tmo.h); the reap and the park end those whose deadline passed
 * (-ECANCELED, or the bytes sent so far), and the park sleeps no longer
 * than the first one.
 *
 * Descriptor numbers are reused, files are not: the kernel drops a
 * registration when its file closes, and a new file under the same number
 * would never be registered if this ring believed the old registration
 * still stood. So a ring's record of a number is good only for the
 * number's generation it was made in (io/fdgen.h). A descriptor closed with plain close() and reused by a file
 * hive did not make (a pipe, a socket of the program's) keeps its stale
 * record; close descriptors that hive I/O used with hive_io_close.
 *
 * Closing under a waiting operation. io_uring holds each operation's file,
 * so a close cannot redirect it; a readiness backend names the file by its
 * number only. hive_io_close therefore bumps the generation first, and an
 * operation whose generation is no longer the number's ends the way the
 * close's shutdown would end it (a receive or read with 0, an accept with
 * -EINVAL, a send or write with -EPIPE) without touching the number again.
 * Operations waiting on another scheduler learn of it through a notice
 * posted to that ring (and a wake-up), found through fd_waiters: one bit
 * per ring (its slot modulo 64) that has operations waiting on the number.
 * Dekker pair: the closer bumps fd_gen then reads fd_waiters; a ring that
 * starts waiting sets its bit then reads fd_gen again; both seq_cst, so
 * one of them sees the other and no operation waits on a closed number.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/backend.h"
#include "io/fdgen.h"
#include "io/ring.h"

/* A busy scheduler (one that reaps between processes, not parked) asks
 * epoll what is ready at most this often while operations wait: each ask
 * is a system call, and the park asks anyway. */
#define EP_POLL_NS 20000u
#define EP_EVENTS  256
#define EP_WAKE    UINT64_MAX      /* the eventfd's epoll data */
#define EP_LEND_KEEP 32u           /* free lent buffers kept (struct ep) */

#define IOPB_INFLIGHT 0x4u   /* started and not yet handed back */
#define IOPB_WAITING  0x8u   /* on its descriptor's wait list */
#define IOPB_FINISHED 0x10u  /* on the finished list; res holds the result */

enum { FK_UNKNOWN = 0, FK_FILE, FK_STREAM };

struct oplist {
    struct iop *head, *tail;
};

/* What one ring knows of one descriptor number (owner thread). */
struct fdrec {
    uint32_t gen;            /* the number's generation this record is for */
    uint8_t  reg;            /* registered in this ring's epoll, for events */
    uint32_t events;         /* EPOLL* it is registered for */
    uint8_t  kind;           /* FK_*: whether READ/WRITE wait for readiness */
    uint8_t  nonblock;       /* the file is O_NONBLOCK (we set it, or it was) */
    uint8_t  rd_dry;         /* the last recv found the socket drained (a short
                                read or EAGAIN) and no input edge came since:
                                the next recv waits for one untried */
    struct oplist rd, wr;    /* waiting to read or accept / to send, write, connect */
};

struct notice {              /* a descriptor hive_io_close closed elsewhere */
    struct notice *next;
    int fd;
};

struct ep {
    int epfd, evfd;
    bool pwait2;             /* epoll_pwait2 works (ns time-outs) */
    uint64_t bit;            /* its bit in fd_waiters: its ring's slot in
                                fdgen's ring table, modulo 64 */
    struct fdrec *recs;      /* by descriptor number */
    unsigned nrecs;
    struct oplist fin;       /* finished, handed back at the next reap */
    struct tmo_heap tmo;     /* waiting operations with a time-out (io/tmo.h) */
    unsigned waiting;        /* operations on wait lists */
    uint64_t last_poll;
    /* Receive buffers it lends (backend.h): free ones in a LIFO list linked
     * through their first word, so the same few stay warm; made on demand,
     * at most r->lend_count out or free at once. A buffer is out from the
     * try that fills it to the hand-back, so a poll that finds hundreds of
     * sockets ready has hundreds out at once; of those only EP_LEND_KEEP
     * stay on the free list afterwards, the rest go back to the allocator
     * (a burst of 10,000 connections left 2 MB of them behind). */
    void *lend_free;
    unsigned lend_made;      /* out or on the free list */
    unsigned lend_nfree;     /* on the free list */
    /* Pushed by any thread (release), taken whole by the owner (acquire). */
    _Atomic(struct notice *) notices;
};

/* Per descriptor number: one bit per ring (its slot in fdgen's ring
 * table, modulo 64) with operations waiting on it. Sized like the generations (io/fdgen.h). */
static _Atomic uint64_t *fd_waiters;
static size_t fd_cap;
static pthread_once_t fd_once = PTHREAD_ONCE_INIT;

static void fd_tables_init(void)
{
    fdgen_init();
    if (!fdgen_cap)
        return;
    void *m = mmap(NULL, fdgen_cap * sizeof *fd_waiters, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        return; /* fd_cap stays 0: every number takes the slow, safe path */
    fd_waiters = m;
    fd_cap = fdgen_cap;
}

static inline uint32_t gen_of(int fd)
{
    return (size_t)fd < fd_cap ? fdgen_of(fd) : 0;
}

/* ------------------------------------------------------------------ */
/* Lists                                                               */
/* ------------------------------------------------------------------ */

static void list_add(struct oplist *l, struct iop *op)
{
    op->enext = NULL;
    op->eprev = l->tail;
    if (l->tail)
        l->tail->enext = op;
    else
        l->head = op;
    l->tail = op;
}

static void list_del(struct oplist *l, struct iop *op)
{
    if (op->eprev)
        op->eprev->enext = op->enext;
    else
        l->head = op->enext;
    if (op->enext)
        op->enext->eprev = op->eprev;
    else
        l->tail = op->eprev;
    op->enext = op->eprev = NULL;
}

static inline bool reads(const struct iop *op)
{
    return op->kind == IOP_RECV || op->kind == IOP_READ || op->kind == IOP_ACCEPT;
}

static inline struct oplist *list_of(struct fdrec *rec, const struct iop *op)
{
    return reads(op) ? &rec->rd : &rec->wr;
}

/* ------------------------------------------------------------------ */
/* Descriptor records                                                  */
/* ------------------------------------------------------------------ */

static void finish(struct ep *e, struct iop *op);

/* Ends the operations waiting on fd that belong to an older generation. */
static void end_closed(struct ep *e, int fd)
{
    if ((unsigned)fd >= e->nrecs)
        return;
    uint32_t g = gen_of(fd);
    struct fdrec *rec = &e->recs[fd];
    struct oplist *ls[2] = { &rec->rd, &rec->wr };
    for (int k = 0; k < 2; k++) {
        struct iop *op = ls[k]->head;
        while (op) {
            struct iop *nx = op->enext;
            if (op->fdgen != g) {
                op->res = closed_result(op);
                finish(e, op);
            }
            op = nx;
        }
    }
}

/* The record for fd, current for its generation; NULL without memory. */
static struct fdrec *rec_for(struct ep *e, int fd)
{
    if ((unsigned)fd >= e->nrecs) {
        unsigned n = e->nrecs ? e->nrecs : 64;
        while (n <= (unsigned)fd)
            n *= 2;
        struct fdrec *r = realloc(e->recs, n * sizeof *r);
        if (!r)
            return NULL;
        memset(r + e->nrecs, 0, (n - e->nrecs) * sizeof *r);
        e->recs = r;
        e->nrecs = n;
    }
    uint32_t g = gen_of(fd);
    struct fdrec *rec = &e->recs[fd];
    if (rec->gen != g || (size_t)fd >= fd_cap) {
        /* A new file under the number (or one we cannot tell apart): what
         * waited on the old one ends, and nothing known of it is kept. */
        end_closed(e, fd);
        if (rec->gen != g) {
            rec->gen = g;
            rec->reg = 0;
            rec->events = 0;
            rec->rd_dry = 0;
            rec->kind = FK_UNKNOWN;
            rec->nonblock = 0;
        }
        if ((size_t)fd >= fd_cap)
            rec->reg = 0; /* no generations up there: register at every wait */
    }
    return rec;
}

static void waiters_clear(struct ep *e, int fd)
{
    /* Bits are shared by slots 64 apart: with that many rings, leave them
     * set (a spare notice costs a look, a missing one a stuck operation). */
    if ((size_t)fd < fd_cap && fdgen_rings_high() <= 64)
        atomic_fetch_and_explicit(&fd_waiters[fd], ~e->bit, memory_order_relaxed);
}

/* Moves op from wherever it waits to the finished list. */
static void finish(struct ep *e, struct iop *op)
{
    if (op->bflags & IOPB_WAITING) {
        struct fdrec *rec = &e->recs[op->fd];
        list_del(list_of(rec, op), op);
        op->bflags &= (uint8_t)~IOPB_WAITING;
        e->waiting--;
        if (!rec->rd.head && !rec->wr.head)
            waiters_clear(e, op->fd);
    }
    if (op->hidx)
        tmo_del(&e->tmo, op);
    op->bflags |= IOPB_FINISHED;
    list_add(&e->fin, op);
}

/* ------------------------------------------------------------------ */
/* Trying an operation                                                 */
/* ------------------------------------------------------------------ */

static int set_nonblock(struct ring *r, struct fdrec *rec, int fd)
{
    if (rec->nonblock)
        return 0;
    int fl = fcntl(fd, F_GETFL);
    r->sys++;
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK)) {
        r->sys++;
        if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
            return -errno;
    }
    rec->nonblock = 1;
    return 0;
}

static int file_kind(struct ring *r, struct fdrec *rec, int fd)
{
    if (rec->kind == FK_UNKNOWN) {
        struct stat st;
        r->sys++;
        if (fstat(fd, &st) < 0)
            return -errno;
        rec->kind = (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) ? FK_FILE : FK_STREAM;
    }
    return rec->kind;
}

static inline bool would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK;
}

/* Sends or writes what is left of op; 1 when it is finished. */
static int put_rest(struct ring *r, struct iop *op, bool sock)
{
    while (op->progress < op->len) {
        const char *p = (const char *)op->buf + op->progress;
        size_t left = op->len - op->progress;
        r->sys++;
        ssize_t n = sock ? send(op->fd, p, left, MSG_DONTWAIT | MSG_NOSIGNAL)
                         : write(op->fd, p, left);
        if (n > 0) {
            op->progress += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && would_block(errno))
            return 0;
        op->res = op->progress ? (int)op->progress : n < 0 ? -errno : 0;
        return 1;
    }
    op->res = (int)op->progress;
    return 1;
}

static void *lend_take(struct ring *r)
{
    struct ep *e = r->ep;
    void *b = e->lend_free;
    if (b) {
        memcpy(&e->lend_free, b, sizeof(void *));
        e->lend_nfree--;
        return b;
    }
    if (e->lend_made == r->lend_count)
        return NULL;
    if ((b = malloc(IOB_LEND_SIZE)))
        e->lend_made++;
    return b;
}

static void lend_give(struct ring *r, void *b)
{
    struct ep *e = r->ep;
    if (e->lend_nfree >= EP_LEND_KEEP) {
        free(b);
        e->lend_made--;
        return;
    }
    memcpy(b, &e->lend_free, sizeof(void *));
    e->lend_free = b;
    e->lend_nfree++;
}

/* A receive into a lent buffer: one is taken for the try, and kept only if
 * the try finished the op with data or EOF. */
static ssize_t recv_lent(struct ring *r, struct iop *op)
{
    void *b = lend_take(r);
    if (!b) {
        errno = ENOBUFS;
        return -1;
    }
    ssize_t n = recv(op->fd, b, op->len, MSG_DONTWAIT);
    if (n < 0) {
        int e = errno;
        lend_give(r, b);
        errno = e;
        return n;
    }
    op->buf = b;
    op->lent = 0;
    return n;
}

/* Tries op without blocking: 1 when it finished (op->res holds the
 * result), 0 when it must wait for readiness. */
static int try_op(struct ring *r, struct fdrec *rec, struct iop *op)
{
    if (gen_of(op->fd) != op->fdgen) {
        op->res = closed_result(op);
        return 1;
    }
    int fd = op->fd, k;
    ssize_t n;
    for (;;) {
        switch (op->kind) {
        case IOP_RECV:
            r->sys++;
            n = op->lend ? recv_lent(r, op) : recv(fd, op->buf, op->len, MSG_DONTWAIT);
            /* Short, or nothing: drained until the next input edge. Data
             * that arrive after this call raise an edge of their own (the
             * descriptor is registered before any recv is skipped). */
            if ((n > 0 && (size_t)n < op->len) || (n < 0 && would_block(errno)))
                rec->rd_dry = 1;
            break;
        case IOP_SEND:
            return put_rest(r, op, true);
        case IOP_READ:
        case IOP_WRITE:
            if ((k = file_kind(r, rec, fd)) < 0) {
                op->res = k;
                return 1;
            }
            if (k == FK_STREAM && (k = set_nonblock(r, rec, fd)) < 0) {
                op->res = k;
                return 1;
            }
            if (op->kind == IOP_WRITE && rec->kind == FK_STREAM && op->off < 0)
                return put_rest(r, op, false);
            r->sys++;
            if (op->kind == IOP_READ)
                n = op->off < 0 ? read(fd, op->buf, op->len)
                                : pread(fd, op->buf, op->len, (off_t)op->off);
            else
                n = op->off < 0 ? write(fd, op->buf, op->len)
                                : pwrite(fd, op->buf, op->len, (off_t)op->off);
            break;
        case IOP_ACCEPT:
            if ((k = set_nonblock(r, rec, fd)) < 0) {
                op->res = k;
                return 1;
            }
            /* the room at buf, as the layer above gave it (kept in progress) */
            if (!op->progress)
                op->progress = *op->addrlen;
            *op->addrlen = (socklen_t)op->progress;
            r->sys++;
            n = accept4(fd, (struct sockaddr *)op->buf, op->addrlen, SOCK_CLOEXEC);
            if (n >= 0)
                fdgen_bump((int)n);
            else if (errno == ECONNABORTED)
                continue;
            break;
        case IOP_CONNECT: {
            if (!op->progress) {
                /* first try: start it; the socket is made non-blocking for
                 * the connect's sake and given back as it was */
                int fl = fcntl(fd, F_GETFL);
                r->sys++;
                if (fl < 0) {
                    op->res = -errno;
                    return 1;
                }
                op->progress = (fl & O_NONBLOCK) ? 1 : 2;
                if (op->progress == 2) {
                    r->sys++;
                    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
                }
                r->sys++;
                n = connect(fd, (const struct sockaddr *)op->buf, (socklen_t)op->len);
                if (n < 0 && (errno == EINPROGRESS || errno == EALREADY))
                    return 0;
            } else {
                int err = 0;
                socklen_t el = sizeof err;
                r->sys++;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0) {
                    n = -1;
                } else if (err) {
                    errno = err;
                    n = -1;
                } else {
                    r->sys++;
                    n = connect(fd, (const struct sockaddr *)op->buf, (socklen_t)op->len);
                    if (n < 0 && errno == EISCONN)
                        n = 0;
                    else if (n < 0 && (errno == EINPROGRESS || errno == EALREADY))
                        return 0;
                }
            }
            int e = errno;
            if (op->progress == 2) {
                int fl = fcntl(fd, F_GETFL);
                r->sys += 2;
                if (fl >= 0)
                    fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
            }
            op->res = n < 0 ? -e : 0;
            return 1;
        }
        default:
            op->res = -EINVAL;
            return 1;
        }
        if (n >= 0) {
            op->res = (int)n;
            return 1;
        }
        if (errno == EINTR)
            continue;
        if (would_block(errno))
            return 0;
        op->res = -errno;
        return 1;
    }
}

/* Tries the operations waiting on list l of rec, in order, until one
 * would block. */
static void run_list(struct ring *r, struct fdrec *rec, struct oplist *l)
{
    struct iop *op;
    if (!l->head)
        return;
    ring_fd_enter(r);   /* try_op checks generations: io/fdgen.h */
    while ((op = l->head) && try_op(r, rec, op))
        finish(r->ep, op);
    ring_fd_leave(r);
}

/* Registers fd (once per generation) edge-triggered for input, and for
 * output too when out: one epoll_ctl when the registration changes, none
 * otherwise. */
static int set_events(struct ring *r, struct fdrec *rec, int fd, uint32_t events)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = (uint64_t)(unsigned)fd | (uint64_t)rec->gen << 32;
    int how = rec->reg ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    r->sys++;
    if (epoll_ctl(r->ep->epfd, how, fd, &ev) < 0) {
        if (errno != EEXIST && errno != ENOENT)
            return -errno;
        /* registered by a generation we could not tell apart, or dropped
         * by the kernel with its file: the other one */
        r->sys++;
        if (epoll_ctl(r->ep->epfd, how == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd,
                      &ev) < 0)
            return -errno;
    }
    rec->reg = 1;
    rec->events = events;
    return 0;
}

static int arm(struct ring *r, struct fdrec *rec, int fd, bool out)
{
    uint32_t want = EPOLLIN | EPOLLRDHUP | EPOLLET | (out ? EPOLLOUT : 0);
    if (rec->reg && (rec->events & want) == want)
        return 0;
    return set_events(r, rec, fd, want | (rec->reg ? rec->events : 0));
}

/* ------------------------------------------------------------------ */
/* Events, notices, time-outs, hand-back                               */
/* ------------------------------------------------------------------ */

static void take_notices(struct ring *r)
{
    struct ep *e = r->ep;
    /* acquire: pairs with the release CAS in ep_fd_closing. */
    struct notice *n = atomic_exchange_explicit(&e->notices, NULL, memory_order_acquire);
    while (n) {
        struct notice *nx = n->next;
        end_closed(e, n->fd);
        free(n);
        n = nx;
    }
}

/* Ends a waiting op as a time-out or a cancel does: -ECANCELED, or the
 * bytes a send or write moved so far. The next op on its list, if it was
 * behind this one, never had its try: it gets it now. */
static void end_wait(struct ring *r, struct iop *op)
{
    struct fdrec *rec = &r->ep->recs[op->fd];
    struct oplist *l = list_of(rec, op);
    bool head = l->head == op;
    op->res = (op->kind == IOP_SEND || op->kind == IOP_WRITE) && op->progress
                  ? (int)op->progress : -ECANCELED;
    finish(r->ep, op);
    if (head && l->head)
        run_list(r, rec, l);
}

static void expire(struct ring *r, uint64_t now)
{
    struct ep *e = r->ep;
    struct iop *op;
    while ((op = tmo_first(&e->tmo)) && op->deadline <= now) {
        r->timeouts++;
        end_wait(r, op);
    }
}

/* One epoll_wait (or epoll_pwait2, for ns time-outs): timeout_ns < 0
 * blocks until an event. */
static void poll_events(struct ring *r, int64_t timeout_ns)
{
    struct ep *e = r->ep;
    struct epoll_event evs[EP_EVENTS];
    int n = -1;
    r->sys++;
    if (e->pwait2) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ns >= 0) {
            ts.tv_sec = timeout_ns / 1000000000;
            ts.tv_nsec = timeout_ns % 1000000000;
            tsp = &ts;
        }
        n = epoll_pwait2(e->epfd, evs, EP_EVENTS, tsp, NULL);
    } else {
        int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
        if (timeout_ns > (int64_t)1000000 * 1000000)
            ms = 1000000000;
        n = epoll_wait(e->epfd, evs, EP_EVENTS, ms);
    }
    e->last_poll = clock_precise_ns();
    /* acquire: pairs with the release push of whoever posted. */
    if (n > 0 && r->take_posted && atomic_load_explicit(&r->posted, memory_order_acquire))
        r->take_posted(r);
    for (int i = 0; i < n; i++) {
        uint64_t d = evs[i].data.u64;
        if (d == EP_WAKE)
            continue;
        int fd = (int)(uint32_t)d;
        if ((unsigned)fd >= e->nrecs)
            continue;
        struct fdrec *rec = &e->recs[fd];
        if ((uint32_t)(d >> 32) != rec->gen || !rec->reg)
            continue; /* a registration of a file the number no longer names */
        uint32_t ev = evs[i].events;
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
            rec->rd_dry = 0;
            run_list(r, rec, &rec->rd);
        }
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            run_list(r, rec, &rec->wr);
        if ((ev & EPOLLOUT) && !rec->wr.head && (rec->events & EPOLLOUT))
            set_events(r, rec, fd, rec->events & ~(uint32_t)EPOLLOUT);
    }
}

static int hand_back(struct ring *r)
{
    struct ep *e = r->ep;
    int n = 0;
    struct iop *op;
    while ((op = e->fin.head)) {
        list_del(&e->fin, op);
        op->bflags = 0;
        r->inflight--;
        n++;
        void *lent = op->lent >= 0 ? op->buf : NULL;
        /* the handler copies the data out; op may be gone when it returns */
        iob_done(op, op->res);
        if (lent)
            lend_give(r, lent);
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* The backend's functions                                             */
/* ------------------------------------------------------------------ */

static int ep_start(struct ring *r, struct iop *op)
{
    struct ep *e = r->ep;
    if (op->kind < IOP_RECV || op->kind > IOP_CONNECT)
        return -EINVAL;
    if (op->fd < 0)
        return -EBADF;
    struct fdrec *rec = rec_for(e, op->fd);
    if (!rec)
        return -ENOMEM;
    op->fdgen = rec->gen;
    op->lent = -1;
    op->bflags = IOPB_INFLIGHT;
    op->res = 0;
    op->progress = 0;
    op->hidx = 0;
    op->enext = op->eprev = NULL;
    r->inflight++;
    struct oplist *l = list_of(rec, op);
    /* Behind others waiting the same way, it waits its turn untried; so
     * does a recv on a socket the last one drained (it would only find
     * EAGAIN: the edge of the next data tries it). */
    bool dry = op->kind == IOP_RECV && rec->reg && rec->rd_dry;
    if (!l->head && !dry) {
        ring_fd_enter(r);
        int done = try_op(r, rec, op);
        ring_fd_leave(r);
        if (done) {
            finish(e, op);
            return 0;
        }
    }
    int rc = arm(r, rec, op->fd, !reads(op));
    if (rc == 0 && op->timeout_ns >= 0) {
        op->deadline = clock_precise_ns() + (uint64_t)op->timeout_ns;
        rc = tmo_add(&e->tmo, op);
    }
    if (rc) {
        r->inflight--;
        op->bflags = 0;
        return rc;
    }
    bool first = !rec->rd.head && !rec->wr.head;
    list_add(l, op);
    op->bflags |= IOPB_WAITING;
    e->waiting++;
    if (first && (size_t)op->fd < fd_cap) {
        /* seq_cst, then the generation again: the Dekker pair with
         * ep_fd_closing (see the top of this file). */
        atomic_fetch_or_explicit(&fd_waiters[op->fd], e->bit, memory_order_seq_cst);
        if (gen_of(op->fd) != op->fdgen)
            end_closed(e, op->fd);
    }
    return 0;
}

static void ep_cancel(struct ring *r, struct iop *op)
{
    if (!(op->bflags & IOPB_INFLIGHT) || !(op->bflags & IOPB_WAITING))
        return; /* handed back, or finished and about to be */
    end_wait(r, op);
}

static int ep_flush(struct ring *r)
{
    (void)r; /* nothing is queued: operations are tried when started */
    return 0;
}

static int ep_reap(struct ring *r)
{
    struct ep *e = r->ep;
    if (atomic_load_explicit(&e->notices, memory_order_relaxed))
        take_notices(r);
    if (e->waiting) {
        uint64_t now = clock_precise_ns();
        if (now - e->last_poll >= EP_POLL_NS) {
            poll_events(r, 0);
            now = e->last_poll;
        }
        if (e->tmo.n)
            expire(r, now);
    }
    return e->fin.head ? hand_back(r) : 0;
}

static int ep_park(struct ring *r, int64_t timeout_ns)
{
    struct ep *e = r->ep;
    if (e->fin.head || atomic_load_explicit(&e->notices, memory_order_relaxed))
        timeout_ns = 0;
    timeout_ns = tmo_wait(&e->tmo, timeout_ns);
    poll_events(r, timeout_ns);
    take_notices(r);
    if (e->tmo.n)
        expire(r, e->last_poll);
    return hand_back(r);
}

static int ep_wake(struct ring *r, int target)
{
    uint64_t one = 1;
    r->sys++;
    return write(target, &one, sizeof one) == (ssize_t)sizeof one ? 0 : -errno;
}

/* After iob_fd_closing bumped fd's generation and passed the barrier. */
static void ep_fd_closing(struct ring *r, int fd)
{
    /* seq_cst: after the bump, the other half of the Dekker pair with
     * ep_start's bit. */
    uint64_t mask = (size_t)fd < fd_cap
                        ? atomic_load_explicit(&fd_waiters[fd], memory_order_seq_cst) : ~0ull;
    struct ep *own = r ? r->ep : NULL;
    if (own)
        end_closed(own, fd);
    if (!mask)
        return;
    unsigned high = fdgen_rings_high();
    for (unsigned i = 0; i < high; i++) {
        if (!(mask & (1ull << (i & 63))))
            continue;
        struct ring *o = fdgen_ring_at(i);
        struct ep *e = o ? o->ep : NULL;
        if (!e || e == own)
            continue;
        struct notice *n = malloc(sizeof *n);
        if (!n)
            continue; /* its operations end at their time-out or the ring's end */
        n->fd = fd;
        n->next = atomic_load_explicit(&e->notices, memory_order_relaxed);
        /* release: the notice before the owner takes it. */
        while (!atomic_compare_exchange_weak_explicit(&e->notices, &n->next, n,
                                                      memory_order_release,
                                                      memory_order_relaxed))
            ;
        uint64_t one = 1;
        if (write(e->evfd, &one, sizeof one) < 0) {
            /* a full counter (2^64 - 2 wake-ups) only: it is awake anyway */
        }
        if (r)
            r->sys++;
    }
}

static int ep_bind(struct ring *r, const char **why)
{
    (void)r;
    (void)why;
    return 0; /* any thread may use an epoll instance */
}

static int ep_init(struct ring *r, unsigned entries, unsigned flags, const char **why)
{
    (void)entries;
    (void)flags; /* no submission thread to poll with, no owner to name: no effect */
    memset(r, 0, sizeof *r);
    pthread_once(&fd_once, fd_tables_init);
    struct ep *e = calloc(1, sizeof *e);
    if (!e) {
        *why = "out of memory for the epoll backend";
        return -ENOMEM;
    }
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (e->epfd < 0) {
        int err = errno;
        free(e);
        *why = "epoll_create1 failed";
        return -err;
    }
    e->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.u64 = EP_WAKE };
    if (e->evfd < 0 || epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->evfd, &ev) < 0) {
        int err = errno;
        if (e->evfd >= 0)
            close(e->evfd);
        close(e->epfd);
        free(e);
        *why = "eventfd for the epoll backend failed";
        return -err;
    }
    /* ns time-outs where the kernel (5.11) and the policy allow them */
    struct timespec zero = { 0, 0 };
    struct epoll_event one;
    e->pwait2 = epoll_pwait2(e->epfd, &one, 1, &zero, NULL) >= 0;
    atomic_init(&e->notices, NULL);
    atomic_init(&r->posted, NULL);
    /* r->ep before the ring is published in fdgen's table (its release):
     * closers on other threads reach e through it. */
    r->ep = e;
    if (fdgen_register(r)) {
        r->ep = NULL;
        close(e->evfd);
        close(e->epfd);
        free(e);
        *why = "too many rings";
        return -ENOSPC;
    }
    e->bit = 1ull << (r->fd_slot & 63);
    r->wake_fd = e->evfd;
    r->ready = true;
    return 0;
}

static int ep_probe(struct ring *r, const char **why)
{
    (void)r;
    (void)why;
    return 0;
}

static void ep_drain(struct ring *r)
{
    struct ep *e = r->ep;
    if (!e)
        return;
    take_notices(r);
    for (unsigned fd = 0; fd < e->nrecs && e->waiting; fd++) {
        struct fdrec *rec = &e->recs[fd];
        while (rec->rd.head)
            end_wait(r, rec->rd.head);
        while (rec->wr.head)
            end_wait(r, rec->wr.head);
    }
    hand_back(r);
}

static int ep_lend_init(struct ring *r, unsigned count, const char **why)
{
    (void)why;
    r->lend_count = count;
    return 0;
}

static void ep_fini(struct ring *r)
{
    struct ep *e = r->ep;
    if (!r->ready || !e)
        return;
    ep_drain(r);
    fdgen_unregister(r);
    take_notices(r);
    close(e->evfd);
    close(e->epfd);
    for (void *b = e->lend_free, *nx; b; b = nx) {
        memcpy(&nx, b, sizeof nx);
        free(b);
    }
    free(e->recs);
    tmo_free(&e->tmo);
    free(e);
    r->ep = NULL;
    r->ready = false;
}

const struct io_ops epoll_ops = {
    .kind = IO_EPOLL,
    .name = "epoll",
    .init = ep_init,
    .bind = ep_bind,
    .probe = ep_probe,
    .drain = ep_drain,
    .fini = ep_fini,
    .park = ep_park,
    .wake = ep_wake,
    .start = ep_start,
    .cancel = ep_cancel,
    .flush = ep_flush,
    .reap = ep_reap,
    .fd_closing = ep_fd_closing,
    .lend_init = ep_lend_init,
};
