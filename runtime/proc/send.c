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
#include "runtime/sched/sched.h"

/* The push and the scheduling it may call for, in one place: mbox_push
 * says whether the receiver was waiting (and so must now be made
 * runnable); the mailbox itself knows nothing of schedulers. */
static inline bool deliver_on(struct sched *s, struct proc *p, struct mnode *n)
{
    if (mbox_push(&p->mbox, &n->q))
        sched_ready_on(s, p);
    return mbox_flooded(&p->mbox);
}

bool proc_deliver(struct proc *p, struct mnode *n)
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
 * receiver gets the core before it sends more. */
#define BP_SLICE 16
static void send_done(struct proc *self, bool flooded)
{
    count_sent(self);
    if (!self)
        return;
    if (__builtin_expect(flooded, 0)) { /* only marked with backpressure on */
        struct sched *s = self->sched;
        if (s->budget > BP_SLICE) {
            STAT_INC(s, backpressure_yields);
            s->budget = BP_SLICE;
        }
    }
    sched_reduce(self);
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

/* The one path for copied messages (hive_send, hive_cast, hive_reply):
 * checks the arguments, resolves the pid once, builds the node on the
 * sender's scheduler and delivers it. A dead target is -ESRCH; whether that
 * is an error is the caller's to say. */
int proc_send_copy(uint32_t kind, hive_pid to, uint32_t tag, const void *data, size_t len,
                   hive_ref ref)
{
    struct proc *p;
    int rc = check_send(to, tag, data, len, &p);
    if (rc)
        return rc;
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

int hive_send(hive_pid to, uint32_t tag, const void *data, size_t len)
{
    return proc_send_copy(MK_USER, to, tag, data, len, (hive_ref){ 0, 0 });
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
    bool flooded;
    int rc = proc_send_node_flooded(to, n, &flooded);
    if (rc)
        return rc;
    send_done(self, flooded);
    return 0;
}

void hive_msg_free(hive_msg *m)
{
    if (m)
        mnode_free(mnode_of(m));
}

