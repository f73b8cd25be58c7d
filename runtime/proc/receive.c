/*
 * Receiving: drain the mailbox into the private queue, handle what the
 * runtime owns (exit signals, timeout wake-ups, late replies), then match.
 *
 * The private queue keeps skipped messages in arrival order (the save queue
 * of selective receive). A receive scans each message once: after a wake-up
 * it continues from where the previous scan ended, and a mark (proc_mark)
 * lets a call skip everything that was queued before its request went out.
 */
#include <stdio.h>
#include <stdlib.h>

#include "alloc/alloc.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/receive.h"
#include "runtime/proc/signal.h"
#include "runtime/sched/sched.h"
#include "runtime/proc/timer.h"
#include "runtime/proc/io.h"

static inline struct mnode *pq_next(struct mnode *n)
{
    return (struct mnode *)atomic_load_explicit(&n->q.next, memory_order_relaxed);
}

static inline void pq_append(struct proc *p, struct mnode *n)
{
    atomic_store_explicit(&n->q.next, NULL, memory_order_relaxed);
    if (p->pq_tail)
        atomic_store_explicit(&p->pq_tail->q.next, &n->q, memory_order_relaxed);
    else
        p->pq_head = n;
    p->pq_tail = n;
    p->pq_len++;
}

static inline void pq_unlink(struct proc *p, struct mnode *prev, struct mnode *n)
{
    struct mnode *nx = pq_next(n);
    if (prev)
        atomic_store_explicit(&prev->q.next, (struct mq_node *)nx, memory_order_relaxed);
    else
        p->pq_head = nx;
    if (p->pq_tail == n)
        p->pq_tail = prev;
    p->pq_len--;
}

/* A node dropped in place (MN_DROPPED: pq_len and the limit's counter
 * already left it) is unlinked and freed by whoever passes it. */
static __attribute__((noinline)) void pq_free_dead(struct proc *p, struct mnode *prev,
                                                   struct mnode *n)
{
    pq_unlink(p, prev, n);
    p->pq_len++; /* pq_unlink took one; a dead node was no longer counted */
    mnode_free_on(&p->sched->msgs, n);
}

static inline bool pq_dead(const struct mnode *n)
{
    return n->aux2 == MN_DROPPED;
}

/* Drop-oldest (send.c, "Mailbox limits"): n, a counted node just taken
 * from the mailbox, would leave more than max_queue counted messages, so
 * the oldest go first: the private queue's (all older than n), then n.
 * Returns n, or NULL if n itself was dropped. The receive in progress
 * holds two pointers into the private queue: its start (a call's mark,
 * which the caller uses again) is only marked dead, never unlinked; its
 * cursor, if unlinked, moves back to the node before it (already looked
 * at). Nothing else points into the queue while a receive runs. */
static __attribute__((noinline)) struct mnode *trim_oldest(struct proc *p, struct mnode *n,
                                                           struct mnode *start,
                                                           struct mnode **cursor)
{
    uint32_t max = atomic_load_explicit(&p->max_queue, memory_order_relaxed);
    struct mnode *prev = NULL, *v = p->pq_head;
    while (atomic_load_explicit(&p->mbox.counted, memory_order_relaxed) > max) {
        while (v && !mnode_counted(v)) {
            prev = v;
            v = pq_next(v);
        }
        proc_note_dropped(p);
        if (!v) {
            proc_uncount(p, n);
            mnode_free_on(&p->sched->msgs, n);
            return NULL;
        }
        struct mnode *victim = v;
        proc_uncount(p, victim);
        v = pq_next(victim);
        if (victim == start) {
            victim->aux2 = MN_DROPPED;
            p->pq_len--;
            prev = victim;
            continue;
        }
        if (cursor && *cursor == victim)
            *cursor = prev;
        pq_unlink(p, prev, victim);
        mnode_free_on(&p->sched->msgs, victim);
    }
    return n;
}

void proc_queue_append(struct proc *p, struct mnode *n)
{
    pq_append(p, n);
}

/* The next node from the mailbox that a receive can see, or NULL once the
 * mailbox is empty. What the runtime owns (timeout wake-ups, exit signals,
 * late replies, nodes for an earlier process in this slot) is handled here
 * and never returned. An exit signal that is trapped becomes a message on
 * the private queue (sig_exit_verdict), so a caller that bypasses the queue
 * must look at pq_head after this returns. */
static inline __attribute__((always_inline)) struct mnode *
next_msg(struct proc *p, hive_pid self, struct mnode *start, struct mnode **cursor)
{
    unsigned busy = 0;
    for (;;) {
        struct mq_node *qn;
        enum mbox_pop_result r = mbox_pop(&p->mbox, &qn);
        if (r == MBOX_EMPTY) {
            mbox_set_flooded(&p->mbox, 0);
            return NULL;
        }
        if (r == MBOX_BUSY) {
            /* A sender is between its exchange and its link store. */
            if (++busy < 1024) {
                cpu_relax();
            } else {
                busy = 0;
                sched_switch_out(p, Y_YIELD);
            }
            continue;
        }
        struct mnode *n = (struct mnode *)qn;
        if (n->to != self) { /* sent to an earlier process in this slot */
            if (mnode_counted(n))
                proc_uncount(p, n);
            mnode_free_on(&p->sched->msgs, n);
            continue;
        }
        switch (n->kind) {
        case MK_TIMEOUT:
            /* Our armed timer has fired; a receive waiting on it looks at
             * the clock (wait_until). Older timers' nodes are ignored. */
            if ((uint32_t)n->aux == p->rtimer_tok)
                p->rtimer = 0;
            mnode_free_on(&p->sched->msgs, n);
            continue;
        case MK_SIG_EXIT: {
            hive_reason why;
            if (sig_exit_verdict(p, n, &why) == SIG_DIE)
                proc_exit(p, why);
            continue; /* ignored, or trapped onto the private queue */
        }
        case MK_REPLY:
            if (!alias_active(p, n->msg.ref)) {
                STAT_INC(p->sched, late_replies_dropped);
                mnode_free_on(&p->sched->msgs, n);
                continue;
            }
            return n;
        case MK_DOWN:
            sig_down_delivered(p, n->msg.ref);
            return n;
        case MK_IO:           /* I/O hook: the request is done with */
            io_delivered(p, n);
            return n;
        default:
            if (__builtin_expect(mnode_counted(n), 0) &&
                atomic_load_explicit(&p->overflow, memory_order_relaxed) ==
                    HIVE_OVERFLOW_DROP_OLDEST &&
                !(n = trim_oldest(p, n, start, cursor)))
                continue;
            return n;
        }
    }
}

/* Moves everything from the mailbox into the private queue. */
static void drain(struct proc *p)
{
    hive_pid self = atomic_load_explicit(&p->pid, memory_order_relaxed);
    struct mnode *n;
    while ((n = next_msg(p, self, NULL, NULL)))
        pq_append(p, n);
}

void proc_poll_signals(struct proc *p)
{
    if (mbox_maybe_nonempty(&p->mbox))
        drain(p);
}

/* No drain: what the mailbox holds now arrived before the mark, and a
 * receive from the mark looks at it once as it moves it to the private
 * queue, which is what a drain here would have cost. */
struct mnode *proc_mark(struct proc *p)
{
    return p->pq_tail;
}

/* Receive timeouts. A process has at most one wake-up timer armed, and a
 * receive that ends leaves it armed: the next receive whose deadline is at
 * or after the timer's reuses it, so a process that makes calls with the
 * default 5 s timeout every few microseconds arms one timer per 5 s, not
 * one per call. A receive times out only when the clock says its own
 * deadline has passed; a timer that fires earlier (an earlier receive's)
 * just wakes it to arm another for the rest. Timers never fire before
 * their deadline, so timeouts are never early.
 *
 * Called before blocking; *deadline is 0 on the first call of a receive.
 * Returns 0 to block, -ETIMEDOUT, or -ENOMEM. */
static int wait_until(struct proc *p, uint64_t *deadline, int64_t timeout_ms)
{
    if (timeout_ms == 0)
        return -ETIMEDOUT;
    if (timeout_ms < 0)
        return 0; /* HIVE_INFINITY */
    if (!*deadline)
        *deadline = clock_precise_ns() + (uint64_t)timeout_ms * 1000000u;
    else if (!p->rtimer && clock_precise_ns() >= *deadline)
        return -ETIMEDOUT;
    if (p->rtimer && p->rtimer_dl <= *deadline)
        return 0;
    if (p->rtimer) /* it would fire too late for this receive */
        timer_cancel_wake(p->rtimer);
    p->rtimer = timer_arm_wake(p->sched, atomic_load_explicit(&p->pid, memory_order_relaxed),
                               ++p->rtimer_tok, *deadline);
    if (!p->rtimer)
        return -ENOMEM;
    p->rtimer_dl = *deadline;
    return 0;
}

void proc_timer_drop(struct proc *p)
{
    if (p->rtimer) {
        timer_cancel_wake(p->rtimer);
        p->rtimer = 0;
    }
}

/* After a receive that got a message: it leaves the queue. */
static inline void received(struct proc *p, hive_msg *m)
{
    struct mnode *n = mnode_of(m);
    if (__builtin_expect(mnode_counted(n), 0))
        proc_uncount(p, n);
    STAT_INC(p->sched, msgs_received);
    proc_reduce_receive(p);
}

/* The plain receive, the first message whatever it is: the private
 * queue's head, else the mailbox's first message, which then never enters
 * the private queue. Kept apart from the selective loop, whose bookkeeping
 * it does not need. */
int proc_receive_any(struct proc *p, hive_msg **out, int64_t timeout_ms)
{
    uint64_t deadline = 0;
    int rc = 0;
    hive_pid self = atomic_load_explicit(&p->pid, memory_order_relaxed);
    for (;;) {
        struct mnode *n = p->pq_head;
        if (n) {
            if (__builtin_expect(pq_dead(n), 0)) {
                pq_free_dead(p, NULL, n);
                continue;
            }
            pq_unlink(p, NULL, n);
            *out = &n->msg;
            break;
        }
        if ((n = next_msg(p, self, NULL, NULL))) {
            if (!p->pq_head) {
                *out = &n->msg;
                break;
            }
            pq_append(p, n); /* a trapped exit signal came first */
            continue;
        }
        if (p->pq_head)
            continue; /* the mailbox held a trapped exit signal */
        if ((rc = wait_until(p, &deadline, timeout_ms)) != 0)
            break;
        sched_switch_out(p, Y_WAIT);
    }
    if (rc == 0)
        received(p, *out);
    return rc;
}

int proc_receive(struct proc *p, match_fn match, void *ctx, struct mnode *start, hive_msg **out,
                 int64_t timeout_ms)
{
    if (!match && !start)
        return proc_receive_any(p, out, timeout_ms);
    uint64_t deadline = 0;
    struct mnode *cursor = start; /* last message already looked at */
    int rc;
    hive_pid self = atomic_load_explicit(&p->pid, memory_order_relaxed);
    for (;;) {
        /* What the private queue holds past the cursor (saved by earlier
         * receives, or queued by a trapped exit signal) comes first. */
        struct mnode *prev = cursor;
        struct mnode *n = prev ? pq_next(prev) : p->pq_head;
        while (n) {
            if (__builtin_expect(pq_dead(n), 0)) {
                struct mnode *nx = pq_next(n);
                pq_free_dead(p, prev, n);
                n = nx;
                continue;
            }
            p->examined++;
            if (!match || match(&n->msg, ctx)) {
                pq_unlink(p, prev, n);
                *out = &n->msg;
                rc = 0;
                goto done;
            }
            prev = n;
            n = pq_next(n);
        }
        cursor = prev;
        /* Then the mailbox, one message at a time, in arrival order: the
         * first that matches is the answer and never enters the private
         * queue; those that do not are saved behind the cursor. Whatever
         * arrived after it stays in the mailbox for the next receive. */
        bool rescan = false;
        while ((n = next_msg(p, self, start, &cursor))) {
            if (p->pq_tail != cursor) {
                /* A trapped exit signal became a message before this one. */
                pq_append(p, n);
                rescan = true;
                break;
            }
            p->examined++;
            if (!match || match(&n->msg, ctx)) {
                *out = &n->msg;
                rc = 0;
                goto done;
            }
            pq_append(p, n);
            cursor = n;
        }
        if (rescan || p->pq_tail != cursor)
            continue; /* trapped exit signals were queued meanwhile */
        if ((rc = wait_until(p, &deadline, timeout_ms)) != 0)
            goto done;
        sched_switch_out(p, Y_WAIT);
    }
done:
    if (rc == 0)
        received(p, *out);
    return rc;
}

bool proc_match_down_ref(const hive_msg *m, void *ref)
{
    return mnode_of(m)->kind == MK_DOWN && hive_ref_eq(m->ref, *(hive_ref *)ref);
}

bool proc_flush_one(struct proc *p, match_fn match, void *ctx)
{
    drain(p);
    struct mnode *prev = NULL;
    for (struct mnode *n = p->pq_head; n; prev = n, n = pq_next(n)) {
        if (!pq_dead(n) && match(&n->msg, ctx)) {
            pq_unlink(p, prev, n);
            if (mnode_counted(n))
                proc_uncount(p, n);
            mnode_free(n);
            return true;
        }
    }
    return false;
}

uint32_t proc_queue_len(struct proc *p)
{
    drain(p);
    return p->pq_len;
}

/* ------------------------------------------------------------------ */
/* Aliases: refs of calls in flight                                    */
/* ------------------------------------------------------------------ */

int alias_add(struct proc *p, hive_ref r)
{
    struct alias_set *a = &p->aliases;
    if (!a->has_one) {
        a->one = r;
        a->has_one = true;
        return 0;
    }
    if (a->n == a->cap) {
        uint32_t cap = a->cap ? a->cap * 2 : 8;
        hive_ref *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = r;
    return 0;
}

void alias_remove(struct proc *p, hive_ref r)
{
    struct alias_set *a = &p->aliases;
    if (a->has_one && hive_ref_eq(a->one, r)) {
        a->has_one = false;
        return;
    }
    for (uint32_t i = 0; i < a->n; i++) {
        if (hive_ref_eq(a->v[i], r)) {
            a->v[i] = a->v[--a->n];
            return;
        }
    }
}

bool alias_active(const struct proc *p, hive_ref r)
{
    const struct alias_set *a = &p->aliases;
    if (a->has_one && hive_ref_eq(a->one, r))
        return true;
    for (uint32_t i = 0; i < a->n; i++)
        if (hive_ref_eq(a->v[i], r))
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

int proc_check_timeout(int64_t t)
{
    if (t < 0 && t != HIVE_INFINITY)
        return -EINVAL;
    if (t > 0 && (uint64_t)t >= (WHEEL_MAX_TICKS >> 1))
        return -EINVAL;
    return 0;
}

/* What every public receive checks first: the calling process, or an error. */
static inline int receive_start(hive_msg **out, int64_t timeout_ms, struct proc **p)
{
    if (!out)
        return -EINVAL;
    if (!(*p = cur_proc))
        return -EPERM;
    return proc_check_timeout(timeout_ms);
}

/* A receive that finds nothing costs a reduction too, as one that gets a
 * message does (received): a process polling its mailbox with a zero
 * time-out still ends its slice, so the processes queued behind it on its
 * scheduler run. */
static int receive_done(struct proc *p, int rc)
{
    if (rc == -ETIMEDOUT)
        sched_reduce(p);
    return rc;
}

int hive_receive(hive_msg **out, int64_t timeout_ms)
{
    struct proc *p;
    int rc = receive_start(out, timeout_ms, &p);
    return rc ? rc : receive_done(p, proc_receive_any(p, out, timeout_ms));
}

int hive_receive_if(bool (*match)(const hive_msg *, void *), void *ctx, hive_msg **out,
                    int64_t timeout_ms)
{
    if (!match)
        return -EINVAL;
    struct proc *p;
    int rc = receive_start(out, timeout_ms, &p);
    return rc ? rc : receive_done(p, proc_receive(p, match, ctx, NULL, out, timeout_ms));
}

static bool match_nothing(const hive_msg *m, void *ctx)
{
    (void)m;
    (void)ctx;
    return false;
}

int hive_sleep(int64_t ms)
{
    struct proc *p = cur_proc;
    if (!p)
        return -EPERM;
    int rc = proc_check_timeout(ms);
    if (rc)
        return rc;
    if (ms == 0)
        return hive_yield();
    hive_msg *m;
    rc = proc_receive(p, match_nothing, NULL, NULL, &m, ms);
    return rc == -ETIMEDOUT ? 0 : rc;
}
