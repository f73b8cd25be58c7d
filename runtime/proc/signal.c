/*
 * Links, monitors and exit signals, with Erlang's rules.
 *
 * Records: a link is kept on both ends (each under its own process's lock);
 * a monitor has a record on the target (monitored_by: whom to send DOWN) and
 * one on the watcher (monitors: what to demonitor).
 *
 * Exit order (proc_exit): name released -> pid dead -> DOWNs pushed while
 * the target's lock is held -> exit signals to links. Pushing DOWNs under
 * the lock is what makes demonitor(FLUSH) exact: once demonitor has taken
 * and dropped the target's lock, any DOWN for that monitor is already in the
 * watcher's mailbox, where the flush finds it.
 *
 * Removing a monitor is O(1) on the target's side. Under the target's
 * lock the watcher asks one question: is the slot still the target's
 * (t->gen, written under that lock at spawn) and has it not yet detached
 * its watchers (PF_DOWNED, set in the same lock section that detaches the
 * list and pushes the DOWNs)? Then the record is still on the list and
 * only the watcher can take it off: unlink it through pprev. Otherwise
 * the DOWN is already in the watcher's mailbox and the target freed the
 * record.
 *
 * An exit signal acts when the receiver drains its mailbox: the receiver
 * removes the link on its side then (so unlink before that point makes the
 * signal void, as in Erlang), and traps it into a message or dies.
 */
#include <stdlib.h>

#include "alloc/alloc.h"
#include "runtime/proc/io.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/receive.h"
#include "runtime/proc/signal.h"
#include "runtime/sched/sched.h"

static void lock2(struct proc *a, struct proc *b)
{
    if (a == b) {
        proc_lock(a);
    } else if (a->slot < b->slot) {
        proc_lock(a);
        proc_lock(b);
    } else {
        proc_lock(b);
        proc_lock(a);
    }
}

static void unlock2(struct proc *a, struct proc *b)
{
    proc_unlock(a);
    if (a != b)
        proc_unlock(b);
}

static void link_push(struct link **head, struct link *l)
{
    l->next = *head;
    if (l->next)
        l->next->pprev = &l->next;
    l->pprev = head;
    *head = l;
}

static void link_unlink(struct link *l)
{
    *l->pprev = l->next;
    if (l->next)
        l->next->pprev = l->pprev;
}

static void link_free(struct sched *s, struct link *l);

static bool link_remove(struct sched *s, struct link **head, hive_pid pid)
{
    for (struct link *l = *head; l; l = l->next) {
        if (l->pid == pid) {
            link_unlink(l);
            link_free(s, l);
            return true;
        }
    }
    return false;
}

static bool link_has(struct link *l, hive_pid pid)
{
    for (; l; l = l->next)
        if (l->pid == pid)
            return true;
    return false;
}

/* Self's record of its link to target, both alive and locked: walks both
 * lists at once and takes whichever finds the pair first, so the cost is
 * the shorter list's (a task's one link, not its owner's thousand). */
static struct link *link_find_pair(struct proc *self, hive_pid me, struct proc *t,
                                   hive_pid target)
{
    struct link *a = self->links, *b = t->links;
    while (a || b) {
        if (a) {
            if (a->pid == target)
                return a;
            a = a->next;
        }
        if (b) {
            if (b->pid == me)
                return b->peer;
            b = b->next;
        }
    }
    return NULL;
}

/* Monitor records: a call makes two and frees two, so they come from a
 * free list of the scheduler the caller runs on (a record freed on another
 * scheduler feeds that one's list), capped like the message node cache
 * (at most 4096 of each kind idle per scheduler: 256 KiB of monitor and
 * 128 KiB of link records); past the cap, and off the schedulers, from
 * the allocator. An owner awaiting a batch of 1,000 tasks frees and makes
 * 4,000 records a batch: under a cap of 1,024 most went through jemalloc
 * (task_async_await: 2,172 instructions per task, 1,860 with 4,096). */
#define MON_CACHE_MAX 4096u

static struct mon *mon_alloc(struct sched *s)
{
    struct mon_cache *c = s ? &s->mons : NULL;
    struct mon *m = c ? c->head : NULL;
    if (m) {
        c->head = m->next;
        c->n--;
        return m;
    }
    return mem_alloc(sizeof *m);
}

static void mon_free(struct sched *s, struct mon *m)
{
    if (!m)
        return;
    struct mon_cache *c = s ? &s->mons : NULL;
    if (c && c->n < MON_CACHE_MAX) {
        m->next = c->head;
        c->head = m;
        c->n++;
        return;
    }
    mem_free(m, sizeof *m);
}

/* Link records the same way: a linked spawn (a task, a supervised child)
 * makes two and its exit frees two. */
static struct link *link_alloc(struct sched *s)
{
    struct mon_cache *c = s ? &s->mons : NULL;
    struct link *l = c ? c->links : NULL;
    if (l) {
        c->links = l->next;
        c->nlinks--;
        return l;
    }
    return mem_alloc(sizeof *l);
}

static void link_free(struct sched *s, struct link *l)
{
    if (!l)
        return;
    struct mon_cache *c = s ? &s->mons : NULL;
    if (c && c->nlinks < MON_CACHE_MAX) {
        l->next = c->links;
        c->links = l;
        c->nlinks++;
        return;
    }
    mem_free(l, sizeof *l);
}

void sig_cache_flush(struct mon_cache *c)
{
    while (c->head) {
        struct mon *m = c->head;
        c->head = m->next;
        mem_free(m, sizeof *m);
    }
    c->n = 0;
    while (c->links) {
        struct link *l = c->links;
        c->links = l->next;
        mem_free(l, sizeof *l);
    }
    c->nlinks = 0;
}

/* The target's list, under its lock. */
static void mon_push_target(struct proc *t, struct mon *mt)
{
    mt->next = t->monitored_by;
    if (mt->next)
        mt->next->pprev = &mt->next;
    mt->pprev = &t->monitored_by;
    t->monitored_by = mt;
}

static void mon_unlink_target(struct mon *mt)
{
    *mt->pprev = mt->next;
    if (mt->next)
        mt->next->pprev = mt->pprev;
}

/* A watcher's list (doubly linked through pprev too). */
static void mon_push_watcher(struct proc *w, struct mon *mw)
{
    mw->next = w->monitors;
    if (mw->next)
        mw->next->pprev = &mw->next;
    mw->pprev = &w->monitors;
    w->monitors = mw;
}

static struct mon *mon_take(struct mon **head, hive_ref ref)
{
    for (struct mon *m = *head; m; m = m->next) {
        if (hive_ref_eq(m->ref, ref)) {
            mon_unlink_target(m); /* the same unlink, on either list */
            return m;
        }
    }
    return NULL;
}

int sig_link(struct proc *self, hive_pid target)
{
    hive_pid me = atomic_load_explicit(&self->pid, memory_order_relaxed);
    if (target == me)
        return 0;
    struct proc *t;
    int rc = proc_resolve(target, &t);
    if (rc)
        return rc;
    struct sched *s = self->sched;
    struct link *a = link_alloc(s), *b = link_alloc(s);
    if (!a || !b) {
        link_free(s, a);
        link_free(s, b);
        return -ENOMEM;
    }
    lock2(self, t);
    if (atomic_load_explicit(&t->pid, memory_order_relaxed) != target ||
        (t->flags & PF_EXITING)) {
        rc = -ESRCH;
    } else if (!link_has(t->links, me)) {
        /* Links are kept on both ends under both locks, so either list
         * answers; the target's is the one to read: a process that spawns
         * many linked children (tasks) has a long list, each child a short
         * one. */
        a->pid = target;
        a->peer = b;
        link_push(&self->links, a);
        b->pid = me;
        b->peer = a;
        link_push(&t->links, b);
        a = b = NULL;
    }
    unlock2(self, t);
    link_free(s, a);
    link_free(s, b);
    return rc;
}

/* An exit signal from `from` with `reason`; flags SIGF_*. */
static struct mnode *make_exit_signal(hive_pid from, hive_reason reason, uint64_t flags)
{
    struct mnode *n = mnode_alloc(0);
    if (n) {
        n->kind = MK_SIG_EXIT;
        n->msg.tag = HIVE_TAG_EXIT;
        n->msg.from = from;
        n->msg.ref = (hive_ref){ 0, 0 };
        n->aux = reason;
        n->aux2 = flags;
    }
    return n;
}

static struct mnode *make_down(hive_ref ref, hive_pid pid, hive_reason reason)
{
    hive_down d = { .ref = ref, .pid = pid, .reason = reason };
    struct mnode *n = mnode_make(MK_DOWN, HIVE_TAG_DOWN, &d, sizeof d);
    if (n) {
        n->msg.from = pid;
        n->msg.ref = ref;
    }
    return n;
}

/* The part every monitor shares: a fresh ref in *out and mt, filled in, on
 * the target's list if the target is alive and not exiting (checked under
 * its lock, where its exit detaches the list). Returns 1 if mt is on the
 * list; 0 if not, in which case the DOWN with reason noproc is already in
 * self's mailbox and mt is the caller's to free; or an error. */
static inline __attribute__((always_inline)) int
monitor_target(struct proc *self, hive_pid target, bool internal, struct mon *mt, struct mon *mw,
               hive_ref *out)
{
    struct proc *t;
    int rc = proc_resolve(target, &t);
    if (rc == -EINVAL)
        return rc;
    hive_ref ref = hive_make_ref();
    hive_pid me = atomic_load_explicit(&self->pid, memory_order_relaxed);
    *out = ref;
    if (rc == 0) {
        bool ok = false;
        proc_lock(t);
        if (atomic_load_explicit(&t->pid, memory_order_relaxed) == target &&
            !(t->flags & PF_EXITING)) {
            mt->ref = ref;
            mt->pid = me;
            mt->internal = internal;
            mt->peer = mw; /* set before it is on the list: the target frees it */
            mon_push_target(t, mt);
            ok = true;
        }
        proc_unlock(t);
        if (ok)
            return 1;
    }
    /* Dead or stale: an immediate DOWN with reason noproc. */
    struct mnode *n = make_down(ref, target, HIVE_NOPROC);
    if (!n)
        return -ENOMEM;
    n->to = me;
    proc_deliver(self, n);
    return 0;
}

/* Drops mt, our record on target's list (see the top of this file). True
 * if it was still there: no DOWN will come. Otherwise the target detached
 * it, pushed the DOWN and frees it. */
static bool drop_target_record(struct sched *s, hive_pid target, struct mon *mt)
{
    struct proc *t;
    if (proc_resolve(target, &t) != 0)
        return false; /* cannot happen: the target existed */
    bool mine = false;
    proc_lock(t);
    if (t->gen == pid_gen(target) && !(t->flags & PF_DOWNED)) {
        mon_unlink_target(mt);
        mine = true;
    }
    proc_unlock(t);
    if (mine)
        mon_free(s, mt);
    return mine;
}

int sig_monitor(struct proc *self, hive_pid target, bool internal, hive_ref *out)
{
    struct sched *s = self->sched;
    struct mon *mt = mon_alloc(s);
    struct mon *mw = mon_alloc(s);
    int rc = mt && mw ? monitor_target(self, target, internal, mt, mw, out) : -ENOMEM;
    if (rc == 1) {
        mw->ref = *out;
        mw->pid = target;
        mw->internal = internal;
        mw->peer = mt;
        proc_lock(self);
        mon_push_watcher(self, mw);
        proc_unlock(self);
        return 0;
    }
    mon_free(s, mt);
    mon_free(s, mw);
    return rc;
}

int sig_call_monitor(struct proc *self, hive_pid target, hive_ref *out)
{
    struct mon *mt = mon_alloc(self->sched);
    int rc = mt ? monitor_target(self, target, true, mt, NULL, out) : -ENOMEM;
    if (rc == 1) {
        self->call_mt = mt;
        self->call_target = target;
        return 0;
    }
    mon_free(self->sched, mt);
    self->call_mt = NULL;
    return rc;
}

/* A synchronous call's record (sig_call_monitor), if any. */
static bool drop_call_record(struct proc *self)
{
    struct mon *mt = self->call_mt;
    self->call_mt = NULL;
    return mt ? drop_target_record(self->sched, self->call_target, mt)
              : false; /* noproc: its DOWN is queued */
}

bool sig_call_unmonitor(struct proc *self)
{
    return drop_call_record(self);
}

bool sig_unmonitor(struct proc *self, hive_ref ref)
{
    proc_lock(self);
    struct mon *mw = mon_take(&self->monitors, ref);
    proc_unlock(self);
    if (!mw)
        return false;
    bool quiet = drop_target_record(self->sched, mw->pid, mw->peer);
    mon_free(self->sched, mw);
    return quiet;
}

bool sig_unmonitor_pid(struct proc *self, hive_pid target, hive_ref ref)
{
    struct proc *t;
    if (proc_resolve(target, &t) != 0)
        return sig_unmonitor(self, ref);
    struct mon *mt = NULL;
    proc_lock(t);
    if (t->gen == pid_gen(target) && !(t->flags & PF_DOWNED)) {
        hive_pid me = atomic_load_explicit(&self->pid, memory_order_relaxed);
        for (struct mon *m = t->monitored_by; m; m = m->next) {
            if (m->pid == me && m->peer && hive_ref_eq(m->ref, ref)) {
                mon_unlink_target(m);
                mt = m;
                break;
            }
        }
    }
    proc_unlock(t);
    if (!mt) /* gone, or not such a monitor: the general path decides */
        return sig_unmonitor(self, ref);
    /* Its watcher record is ours alone to unlink (we are self). */
    struct mon *mw = mt->peer;
    proc_lock(self);
    mon_unlink_target(mw);
    proc_unlock(self);
    mon_free(self->sched, mt);
    mon_free(self->sched, mw);
    return true;
}

bool sig_drop_child(struct proc *self, hive_pid child, hive_ref ref)
{
    struct proc *t;
    if (proc_resolve(child, &t) != 0)
        return false;
    hive_pid me = atomic_load_explicit(&self->pid, memory_order_relaxed);
    struct mon *mt = NULL;
    struct link *a = NULL;
    lock2(self, t);
    /* Alive under its lock: its exit has not detached its lists (the pid
     * dies before sig_on_exit takes the lock to do so). */
    if (atomic_load_explicit(&t->pid, memory_order_relaxed) == child) {
        for (struct mon *m = t->monitored_by; m; m = m->next) {
            if (m->pid == me && m->peer && hive_ref_eq(m->ref, ref)) {
                mt = m;
                break;
            }
        }
        if (mt) {
            mon_unlink_target(mt);
            mon_unlink_target(mt->peer); /* on self's list: self's lock is held */
            if ((a = link_find_pair(self, me, t, child))) {
                link_unlink(a);
                link_unlink(a->peer);
            }
        }
    }
    unlock2(self, t);
    if (!mt)
        return false;
    struct sched *s = self->sched;
    mon_free(s, mt->peer);
    mon_free(s, mt);
    if (a) {
        link_free(s, a->peer);
        link_free(s, a);
    }
    return true;
}

int sig_demonitor(struct proc *self, hive_ref ref, unsigned flags)
{
    if (!sig_unmonitor(self, ref) && (flags & HIVE_FLUSH))
        proc_flush_one(self, proc_match_down_ref, &ref);
    return 0;
}

void sig_down_delivered(struct proc *p, hive_ref ref)
{
    proc_lock(p);
    struct mon *mw = mon_take(&p->monitors, ref);
    proc_unlock(p);
    mon_free(p->sched, mw);
}

void sig_on_exit(struct proc *p, hive_pid self, hive_reason reason)
{
    proc_lock(p);
    struct link *links = p->links;
    p->links = NULL;
    struct mon *mons = p->monitored_by;
    p->monitored_by = NULL;
    p->flags |= PF_DOWNED;
    struct mon *mine = p->monitors;
    p->monitors = NULL;
    while (mons) {
        struct mon *m = mons;
        mons = m->next;
        struct mnode *n = make_down(m->ref, self, reason);
        if (n && proc_send_node(m->pid, n))
            mnode_free(n);
        mon_free(p->sched, m);
    }
    proc_unlock(p);

    while (links) {
        struct link *l = links;
        links = l->next;
        struct mnode *n = make_exit_signal(self, reason, SIGF_LINK);
        if (n && proc_send_node(l->pid, n))
            mnode_free(n);
        link_free(p->sched, l);
    }

    /* Monitors this process held: drop their records on the targets. A
     * DOWN already pushed to us is freed with our mailbox. */
    while (mine) {
        struct mon *m = mine;
        mine = m->next;
        drop_target_record(p->sched, m->pid, m->peer);
        mon_free(p->sched, m);
    }
    drop_call_record(p); /* killed in the middle of a call */
}

enum sig_verdict sig_exit_verdict(struct proc *p, struct mnode *n, hive_reason *reason)
{
    hive_pid from = n->msg.from;
    hive_reason why = n->aux;
    uint64_t flags = n->aux2;
    hive_pid to = n->to;
    mnode_free(n);
    if (flags & SIGF_LINK) {
        proc_lock(p);
        bool linked = link_remove(p->sched, &p->links, from);
        proc_unlock(p);
        if (!linked) /* unlinked meanwhile: the signal is void */
            return SIG_IGNORE;
        if (why == HIVE_KILL)
            why = HIVE_KILLED;
    } else if (why == HIVE_KILL) {
        *reason = HIVE_KILLED; /* untrappable */
        return SIG_DIE;
    } else if (flags & SIGF_OVERFLOW) {
        *reason = HIVE_OVERFLOWED; /* untrappable, like HIVE_KILL */
        return SIG_DIE;
    }
    if (p->trap_exit) {
        hive_exit_signal es = { .from = from, .reason = why };
        struct mnode *m = mnode_make(MK_USER, HIVE_TAG_EXIT, &es, sizeof es);
        if (!m) {
            /* The message cannot be built: dying is the one answer that
             * loses nothing silently (its watchers learn why). */
            *reason = HIVE_NOMEM;
            return SIG_DIE;
        }
        m->msg.from = from;
        m->to = to;
        proc_queue_append(p, m);
        return SIG_TRAPPED;
    }
    if (why == HIVE_NORMAL)
        return SIG_IGNORE;
    *reason = why;
    return SIG_DIE;
}

void sig_free_records(struct proc *p)
{
    while (p->links) {
        struct link *l = p->links;
        p->links = l->next;
        mem_free(l, sizeof *l);
    }
    p->call_mt = NULL; /* the server's record, freed on the server's list */
    struct mon **lists[2] = { &p->monitored_by, &p->monitors };
    for (int i = 0; i < 2; i++)
        while (*lists[i]) {
            struct mon *m = *lists[i];
            *lists[i] = m->next;
            mem_free(m, sizeof *m);
        }
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

int hive_link(hive_pid pid)
{
    struct proc *self = cur_proc;
    if (!self)
        return -EPERM;
    if (pid == HIVE_NOPID)
        return -EINVAL;
    return sig_link(self, pid);
}

int hive_unlink(hive_pid pid)
{
    struct proc *self = cur_proc;
    if (!self)
        return -EPERM;
    struct proc *t;
    int rc = proc_resolve(pid, &t);
    if (rc == -EINVAL)
        return rc;
    hive_pid me = atomic_load_explicit(&self->pid, memory_order_relaxed);
    if (rc == 0) {
        lock2(self, t);
        if (atomic_load_explicit(&t->pid, memory_order_relaxed) == pid) {
            /* Both alive: the pair, found through the shorter list. */
            struct link *a = link_find_pair(self, me, t, pid);
            if (a) {
                struct link *b = a->peer;
                link_unlink(a);
                link_unlink(b);
                link_free(self->sched, a);
                link_free(self->sched, b);
            }
        } else {
            link_remove(self->sched, &self->links, pid);
        }
        unlock2(self, t);
    }
    return 0;
}

int hive_monitor(hive_pid pid, hive_ref *mref)
{
    if (!mref || pid == HIVE_NOPID)
        return -EINVAL;
    struct proc *self = cur_proc;
    if (!self)
        return -EPERM;
    return sig_monitor(self, pid, false, mref);
}

int hive_demonitor(hive_ref mref, unsigned flags)
{
    struct proc *self = cur_proc;
    if (!self)
        return -EPERM;
    if (flags & ~HIVE_FLUSH)
        return -EINVAL;
    return sig_demonitor(self, mref, flags);
}

bool hive_trap_exits(bool on)
{
    struct proc *self = cur_proc;
    if (!self)
        return false;
    bool old = self->trap_exit;
    self->trap_exit = on;
    return old;
}

int sig_overflow_kill(struct proc *p, hive_pid pid)
{
    struct mnode *n = make_exit_signal(hive_self(), HIVE_OVERFLOWED, SIGF_KILL | SIGF_OVERFLOW);
    if (!n)
        return -ENOMEM;
    n->to = pid;
    proc_deliver(p, n);
    return 0;
}

int hive_kill(hive_pid pid, hive_reason reason)
{
    if (!g_rt)
        return -EPERM;
    struct proc *t;
    int rc = proc_resolve(pid, &t);
    if (rc)
        return rc;
    struct proc *self = cur_proc;
    hive_pid me = hive_self();
    if (self && pid == me) {
        if (reason == HIVE_KILL)
            proc_exit(self, HIVE_KILLED);
        if (!self->trap_exit)
            proc_exit(self, reason);
    }
    struct mnode *n = make_exit_signal(me, reason, SIGF_KILL);
    if (!n)
        return -ENOMEM;
    struct sched *s = self ? self->sched : NULL;
    if (reason != HIVE_KILL || !s) {
        rc = proc_send_node(pid, n);
        if (rc)
            mnode_free(n);
        return rc;
    }
    /* An untrappable kill from a scheduler. acquire: pairs with the
     * release store of pid in proc_spawn (as in proc_resolve_live). */
    if (atomic_load_explicit(&t->pid, memory_order_acquire) != pid) {
        mnode_free(n);
        return -ESRCH;
    }
    n->to = pid;
    if (!mbox_push(&t->mbox, &n->q))
        return 0; /* running or runnable: it drains the kill itself */
    /* The push ended its wait: t is ours to schedule (mailbox.h), and its
     * state from before the wait is visible (the push's acquire). An idle
     * handler process (no stack of its own) would be given a stack and
     * switched to only to find the kill first in its mailbox and die:
     * it dies here instead, on this scheduler, as sched_prepare has one
     * die that cannot get a stack. Its mailbox holds the kill and
     * whatever came after it, which its death drops (as it would have).
     * Not when it has I/O on another scheduler's ring: its exit waits,
     * on a stack, for that scheduler to cancel it (exit.c). */
    if (t->kind == PK_HANDLER && !t->stack && !t->resv_arena &&
        (!t->io || io_all_on(t, s))) {
        sched_reclaim_idle_stack(s, t);
        t->sched = s;
        proc_exit_unstacked(t, HIVE_KILLED);
        return 0;
    }
    sched_ready_on(s, t);
    return 0;
}
