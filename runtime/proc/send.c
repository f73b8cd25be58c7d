/*
 * The send path: one way for every message into a mailbox.
 *
 * A message's way: hive_send -> proc_send_copy (checks, resolves the pid
 * once) -> mnode_make_on (msg.c, the sender's node cache) -> deliver_on:
 * mbox_push (ds/mailbox.h), and sched_ready_on when the push ended the
 * receiver's wait -> send_done (counts, charges the sender a reduction).
 * The receiver takes it in receive.c and gives it back to msg.c with
 * hive_msg_free.
 */
#include <string.h>

#include "runtime/proc/proc.h"
#include "runtime/proc/receive.h"
#include "runtime/proc/signal.h"
#include "runtime/sched/sched.h"

/* The push and the scheduling it may call for, in one place: mbox_push
 * says whether the receiver was waiting (and so must now be made
 * runnable); the mailbox itself knows nothing of schedulers. */
static inline uint32_t deliver_on(struct sched *s, struct proc *p, struct mnode *n)
{
    if (mbox_push(&p->mbox, &n->q))
        sched_ready_on(s, p);
    return mbox_flooded(&p->mbox);
}

uint32_t proc_deliver(struct proc *p, struct mnode *n)
{
    return deliver_on(cur_sched, p, n);
}

static inline void count_sent(struct proc *self)
{
    if (self) {
        STAT_INC(self->sched, msgs_sent);
    } else {
        struct sched_counters *st = sched_counters();
        atomic_store_explicit(&st->msgs_sent,
                              atomic_load_explicit(&st->msgs_sent, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    }
}

/* After a send: count it on the sender's counters, and charge a running
 * sender a reduction. A sender whose receiver is flooded (see
 * proc_reduce_receive) ends its slice: it is never blocked, but the
 * receiver gets the core before it sends more. `flooded` is the
 * receiver's mark (mbox_flooded: where it is flooded), BP_NOWHERE for a
 * full mailbox whose receiver's place is not known, or 0; the scheduler
 * keeps it for the yield that ends the slice (switch.c, "Flooding
 * senders"). */
#define BP_SLICE 16
static inline __attribute__((always_inline)) void send_done(struct proc *self, uint32_t flooded)
{
    count_sent(self);
    if (!self)
        return;
    if (__builtin_expect(flooded != 0, 0)) { /* only marked with backpressure on */
        struct sched *s = self->sched;
        s->bp_to = flooded;
        if (s->budget > BP_SLICE) {
            STAT_INC(s, backpressure_yields);
            s->budget = BP_SLICE;
        }
    }
    sched_reduce(self);
}

/* ------------------------------------------------------------------ */
/* Mailbox limits (hive_spawn_opts.max_queue)                          */
/* ------------------------------------------------------------------ */
/*
 * The counter: p->mbox.counted, the counted nodes (aux2 == MN_COUNTED) in
 * p's mailbox and private queue, plus the adds of senders that have not
 * yet pushed or taken their add back. Only sends of user messages by
 * others count (hive_send, hive_send_msg, hive_cast, call requests);
 * replies, DOWN and EXIT, timer messages and I/O completions never do.
 *
 * Partners. Every add (admit, here, by a sender) has exactly one sub:
 * the sender's own, when the mailbox refuses the message; or the
 * receiver's proc_uncount when the counted node leaves: received
 * (receive.c), dropped by drop-oldest (receive.c, trim_oldest), freed at
 * exit (exit.c), or freed as stale by a later process in the slot
 * (next_msg). So the counter is never reset, not even at spawn: nodes on
 * their way to an earlier process in the slot are counted until the new
 * one frees them. All relaxed: the counter publishes nothing (the
 * mailbox's exchange does), and the bound below needs only the single
 * modification order every atomic has.
 *
 * Invariant (reject, drop-newest, kill): a sender pushes only if its add
 * returned less than max_queue. Each pushed counted node holds the add
 * that admitted it until its sub, and an add returns at least the number
 * of such nodes; so at most max_queue counted nodes are ever queued, and
 * a refused add is taken back at once. (A refused add that is still
 * outstanding can make another sender see the mailbox full one message
 * early: it is full to within the senders of that instant.)
 *
 * Drop-oldest: a sender cannot take a node out of an MPSC queue (only the
 * receiver unlinks), so it always pushes, and the receiver makes room:
 * whenever it takes a counted node from its mailbox it first drops, oldest
 * first (its private queue, then that node), until the counter is back at
 * max_queue. The counter includes every queued counted node (and the adds
 * of senders still on their way), so the private queue, and so what a
 * receive or hive_process_info sees, never holds more than max_queue
 * counted messages; messages pushed while the receiver takes none wait in
 * its mailbox until its next receive drops the excess, and their senders
 * end their slice (as under back-pressure) so that it runs.
 *
 * Kill: the first sender to find the mailbox full sends an exit signal
 * that cannot be trapped (SIGF_OVERFLOW); its message and those of any
 * sender that finds it full before the receiver is gone are dropped.
 *
 * The unbounded path pays one predictable branch on max_queue, which
 * sits on the line of the pid that resolving the receiver loaded.
 */
enum admit { ADMIT_PUSH = 0, ADMIT_DROPPED = 1 };

/* Overflow counters: on the sender's scheduler, atomically on the
 * foreign threads' record (several foreign threads may send). */
#define LIMIT_STAT(s, f)                                                              \
    do {                                                                              \
        if (s)                                                                        \
            STAT_INC(s, f);                                                           \
        else                                                                          \
            atomic_fetch_add_explicit(&g_rt->outside_st.f, 1, memory_order_relaxed); \
    } while (0)

/* One counted send to p (to: its pid): ADMIT_PUSH (push a node with aux2 =
 * MN_COUNTED), ADMIT_DROPPED (push nothing, report success) or -EAGAIN.
 * *over: the mailbox was full (the sender ends its slice). */
static __attribute__((noinline)) int admit(struct sched *s, struct proc *p, hive_pid to,
                                           uint32_t max, bool *over)
{
    uint32_t was = atomic_fetch_add_explicit(&p->mbox.counted, 1, memory_order_relaxed);
    unsigned pol = atomic_load_explicit(&p->overflow, memory_order_relaxed);
    *over = was >= max;
    if (was < max || pol == HIVE_OVERFLOW_DROP_OLDEST)
        return ADMIT_PUSH;
    atomic_fetch_sub_explicit(&p->mbox.counted, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->dropped, 1, memory_order_relaxed);
    if (pol == HIVE_OVERFLOW_REJECT) {
        LIMIT_STAT(s, mailbox_rejected);
        return -EAGAIN;
    }
    LIMIT_STAT(s, mailbox_dropped);
    if (pol == HIVE_OVERFLOW_KILL &&
        atomic_exchange_explicit(&p->ovf_kill, to, memory_order_relaxed) != to &&
        sig_overflow_kill(p, to) == 0)
        LIMIT_STAT(s, mailbox_overflow_kills);
    return ADMIT_DROPPED;
}

void proc_note_dropped(struct proc *p)
{
    atomic_fetch_add_explicit(&p->dropped, 1, memory_order_relaxed);
    STAT_INC(p->sched, mailbox_dropped);
}

static inline uint32_t limit_of(struct proc *p)
{
    return atomic_load_explicit(&p->max_queue, memory_order_relaxed);
}

/* The pid is resolved once. A receiver that dies between that check and
 * the push is like one that dies just after it: its drain (or the next
 * process in the slot) frees a node whose `to` is not its pid. */
static inline int check_send(hive_pid to, uint32_t tag, const void *data, size_t len,
                             struct proc **out)
{
    if ((!data && len) || tag >= HIVE_TAG_SYSTEM)
        return -EINVAL;
    if (!g_rt)
        return -EPERM;
    if (len > g_rt->cfg.max_message)
        return -EMSGSIZE;
    return proc_resolve_live(to, out);
}

int proc_check_send(hive_pid to, uint32_t tag, const void *data, size_t len, struct proc **out)
{
    return check_send(to, tag, data, len, out);
}

/* The mark a bounded send leaves for send_done: the receiver's own
 * (where it is flooded), else BP_NOWHERE when admit found the mailbox
 * over its limit. */
static inline uint32_t bounded_mark(uint32_t flooded, bool over)
{
    return flooded ? flooded : over ? BP_NOWHERE : 0;
}

/* A counted copy (MK_USER, MK_CAST: no ref) to a bounded receiver:
 * admitted first, so a refused message is never built. */
static __attribute__((noinline)) int send_copy_bounded(struct proc *p, uint32_t kind, hive_pid to,
                                                       uint32_t tag, const void *data, size_t len)
{
    struct proc *self = cur_proc;
    struct sched *s = self ? self->sched : cur_sched;
    bool over;
    int rc = admit(s, p, to, limit_of(p), &over);
    if (rc < 0) {
        if (self)
            sched_reduce(self);
        return rc;
    }
    if (rc == ADMIT_DROPPED) {
        send_done(self, BP_NOWHERE);
        return 0;
    }
    struct mnode *n = mnode_make_on(s ? &s->msgs : NULL, kind, tag, data, len);
    if (!n) {
        atomic_fetch_sub_explicit(&p->mbox.counted, 1, memory_order_relaxed);
        return -ENOMEM;
    }
    n->aux2 = MN_COUNTED;
    n->msg.from = self ? atomic_load_explicit(&self->pid, memory_order_relaxed) : HIVE_NOPID;
    n->to = to;
    send_done(self, bounded_mark(deliver_on(s, p, n), over));
    return 0;
}

/* The one path for copied messages (hive_send, hive_cast, hive_reply):
 * checks the arguments, resolves the pid once, builds the node on the
 * sender's scheduler and delivers it. A dead target is -ESRCH; whether that
 * is an error is the caller's to say. `limited`, a constant, says whether
 * the message counts against a mailbox limit (a reply does not). */
static inline __attribute__((always_inline)) int
send_copy(uint32_t kind, hive_pid to, uint32_t tag, const void *data, size_t len, hive_ref ref,
          bool limited)
{
    struct proc *p;
    int rc = check_send(to, tag, data, len, &p);
    if (rc)
        return rc;
    if (limited && __builtin_expect(limit_of(p) != 0, 0))
        return send_copy_bounded(p, kind, to, tag, data, len);
    struct proc *self = cur_proc;
    struct sched *s = self ? self->sched : cur_sched;
    struct mnode *n = mnode_make_on(s ? &s->msgs : NULL, kind, tag, data, len);
    if (!n)
        return -ENOMEM;
    n->msg.from = self ? atomic_load_explicit(&self->pid, memory_order_relaxed) : HIVE_NOPID;
    n->msg.ref = ref;
    n->to = to;
    send_done(self, deliver_on(s, p, n));
    return 0;
}

int proc_send_copy(uint32_t kind, hive_pid to, uint32_t tag, const void *data, size_t len)
{
    return send_copy(kind, to, tag, data, len, (hive_ref){ 0, 0 }, true);
}

int proc_send_reply(hive_pid to, uint32_t tag, const void *data, size_t len, hive_ref ref)
{
    return send_copy(MK_REPLY, to, tag, data, len, ref, false);
}

int proc_send_user_bounded(struct proc *p, hive_pid to, struct mnode *n, uint32_t max,
                           uint32_t *flooded)
{
    struct sched *s = cur_sched;
    bool over;
    int rc = admit(s, p, to, max, &over);
    if (rc < 0)
        return rc;
    if (rc == ADMIT_DROPPED) {
        mnode_free(n);
        *flooded = BP_NOWHERE;
        return 0;
    }
    n->aux2 = MN_COUNTED;
    *flooded = bounded_mark(deliver_on(s, p, n), over);
    return 0;
}

int proc_send_uncounted(hive_pid to, struct mnode *n, bool behind)
{
    struct proc *p;
    int rc = proc_resolve_live(to, &p);
    if (rc)
        return rc;
    struct proc *self = cur_proc;
    struct sched *s = self ? self->sched : cur_sched;
    n->msg.from = self ? atomic_load_explicit(&self->pid, memory_order_relaxed) : HIVE_NOPID;
    n->to = to;
    uint32_t flooded;
    if (behind) {
        if (mbox_push(&p->mbox, &n->q))
            sched_ready_behind(s, p);
        flooded = mbox_flooded(&p->mbox);
    } else {
        flooded = deliver_on(s, p, n);
    }
    send_done(self, flooded);
    return 0;
}

int hive_send(hive_pid to, uint32_t tag, const void *data, size_t len)
{
    return proc_send_copy(MK_USER, to, tag, data, len);
}

hive_msg *hive_msg_alloc(size_t len)
{
    if (!g_rt || len > g_rt->cfg.max_message)
        return NULL;
    struct mnode *n = mnode_alloc(len);
    if (!n)
        return NULL;
    n->kind = MK_USER;
    n->msg.tag = 0;
    n->msg.len = (uint32_t)len;
    n->msg.from = HIVE_NOPID;
    n->msg.ref = (hive_ref){ 0, 0 };
    return &n->msg;
}

int hive_send_msg(hive_pid to, hive_msg *m)
{
    if (!m || m->tag >= HIVE_TAG_SYSTEM)
        return -EINVAL;
    struct mnode *n = mnode_of(m);
    if (m->len > n->size - sizeof(struct mnode) || m->data != (void *)(n + 1))
        return -EINVAL;
    n->kind = MK_USER;
    struct proc *self = cur_proc;
    m->from = self ? atomic_load_explicit(&self->pid, memory_order_relaxed) : HIVE_NOPID;
    uint32_t flooded;
    int rc = proc_send_user_node(to, n, &flooded);
    if (rc) {
        if (rc == -EAGAIN && self)
            sched_reduce(self);
        return rc;
    }
    send_done(self, flooded);
    return 0;
}

void hive_msg_free(hive_msg *m)
{
    if (m)
        mnode_free(mnode_of(m));
}

