/*
 * The switch protocol: every way a process starts running and stops.
 *
 * A process stops by calling sched_switch_out(p, why). When its scheduler
 * has another process ready locally (the next slot or the local queue), it
 * switches straight to it (one switch per hop); every 61st pick, and when
 * nothing is local, it switches to the scheduler's own context instead,
 * whose loop (sched.c) also looks at the global queue, its event sources
 * and other schedulers' queues. Either way the stopping process only
 * records itself in s->prev: whatever runs next first calls
 * sched_finish_prev, so everything that publishes the stopped process —
 * marking it waiting, queueing it, lending or releasing its stack — runs
 * after its registers are saved, when another scheduler may take it.
 *
 *   running --switch_out(Y_YIELD)--> finish_prev: back of the local queue
 *   running --switch_out(Y_WAIT)---> finish_prev: waiting, unless a message
 *                                    got in (mbox_try_wait fails): ready
 *   running --switch_out(Y_IDLE)---> finish_prev: a handler between messages,
 *                                    waiting with its stack lent back
 *   running --switch_out(Y_EXIT_IO)> finish_prev: an exit waiting for other
 *                                    schedulers to cancel its I/O: ready
 *                                    when the last of them is done
 *   running --switch_out(Y_EXIT)---> finish_prev: slot and stack released
 *
 * sched_prepare is the other half: it gives a process a stack if it has
 * none (an idle handler) and records that it runs on s.
 *
 * Flooding senders. A receiver that ends a slice receiving with messages
 * still queued marks its mailbox flooded with where it is (its
 * scheduler's id + 1, mbox_flooded), and a process that sends to it then
 * ends its slice soon after (send.c, send_done), leaving the mark in
 * s->bp_to. At that yield (Y_YIELD with bp_to set, hive_config.flood_move
 * on), the sender does not go back to its run queue: if the receiver is
 * flooded on another scheduler it moves there (sched_move: pushed onto
 * that scheduler's moved_in, which wakes it if it is parked), and if on
 * this one it is held here (sched_hold). Held processes run when the run
 * queue is empty, and on every 61st pick otherwise (the receiver, in that
 * queue, gets the core first: that is the back-pressure), and no thief
 * sees them, so an idle scheduler cannot take them straight back. The
 * first slice of a sender's that ends without such a send puts it in the
 * run queue again, stealable. So senders to a receiver that cannot keep
 * up join it on its core, where their messages stay in one cache and go
 * at its pace, across cores as on one, instead of outrunning it from
 * every other core; the others are left free. Four senders and a receiver
 * on two schedulers of a VM ran at 24M messages/s (39M on one) and run
 * at 35M with it (docs/performance.md, "Flooding senders").
 */
#include "runtime/sched/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "runtime/proc/proc.h"

static void stack_overflow(struct proc *p)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "hive: process %#llx: stack overflow (canary overwritten)\n",
                     (unsigned long long)pid_make(p->slot, p->gen));
    if (write(2, buf, (size_t)n) < 0) { /* nothing more to do */ }
    abort();
}

void sched_reclaim_idle_stack(struct sched *s, struct proc *p)
{
    /* acq_rel: pairs with the exchange in sched_prepare; one of the two
     * gets the stack. */
    struct stack *st = atomic_exchange_explicit(&p->idle_stack, NULL, memory_order_acq_rel);
    if (st)
        stack_put(&s->stacks, st);
}

/* Gets p ready to be switched to on s. Every process gets its stack at
 * spawn, or a reservation that its first run here turns into one; only an
 * idle handler (which gave its stack back) can lack one here. If no stack
 * can be had for it, it cannot run: it exits with
 * HIVE_NOMEM, which its links and monitors see, and false tells the
 * caller to pick another process. */
bool sched_prepare(struct sched *s, struct proc *p)
{
    if (__builtin_expect(!p->stack, 0)) {
        if (p->resv_arena) { /* its first run: its stack was reserved at spawn */
            proc_stack_claim(p, &s->stacks);
            goto ready;
        }
        /* An idle handler whose stack was not reclaimed resumes on it, in
         * its loop; otherwise it starts afresh at its entry, which holds
         * nothing between messages. acq_rel: pairs with the exchange of a
         * reclaiming scheduler (sched_reclaim_idle_stack). */
        struct stack *st;
        if (atomic_load_explicit(&p->idle_stack, memory_order_relaxed) &&
            (st = atomic_exchange_explicit(&p->idle_stack, NULL, memory_order_acq_rel))) {
            p->stack = st;
            goto ready;
        }
        if (proc_stack_init(p, &s->stacks) != 0) {
            p->sched = s;
            proc_exit_unstacked(p, HIVE_NOMEM);
            return false;
        }
    }
ready:
    proc_set_self(p);
    p->sched = s;
    atomic_store_explicit(&p->status, PS_RUNNING, memory_order_relaxed);
    STAT_INC(s, switches);
    return true;
}

void sched_finish_prev(struct sched *s)
{
    struct proc *p = s->prev;
    if (!p)
        return;
    s->prev = NULL;
    if (p->canary && !stack_intact(p->stack))
        stack_overflow(p);
    /* Flooding senders (above): bp_to was left by p, the process that
     * stopped, in its slice; cleared at every switch that finds it set. */
    uint32_t to = s->bp_to;
    if (__builtin_expect(to != 0, 0)) {
        s->bp_to = 0;
        if (p->why == Y_YIELD && to <= g_rt->n && g_rt->cfg.flood_move) {
            struct sched *t = &g_rt->scheds[to - 1];
            if (t == s)
                sched_hold(s, p);
            else
                sched_move(s, t, p);
            return;
        }
    }
    switch (p->why) {
    case Y_YIELD:
        atomic_store_explicit(&p->status, PS_RUNNABLE, memory_order_relaxed);
        sched_enqueue(s, p);
        /* Processes that take turns here by yielding (a slice used up, a
         * send to a flooded receiver) create no new work, so nothing else
         * would wake a parked scheduler to take some of them. Two relaxed
         * loads first: the kick's fence is for when it matters. A kick
         * missed here costs balance, not progress (we run them all). */
        if (runq_len(&s->rq) > 1 &&
            atomic_load_explicit(&g_rt->n_parked, memory_order_relaxed) != 0 &&
            atomic_load_explicit(&g_rt->n_spinning, memory_order_relaxed) == 0)
            sched_kick();
        break;
    case Y_WAIT:
        atomic_store_explicit(&p->status, PS_WAITING, memory_order_relaxed);
        if (!mbox_try_wait(&p->mbox)) {
            /* a message got in after the drain: keep it here */
            atomic_store_explicit(&p->status, PS_RUNNABLE, memory_order_relaxed);
            sched_ready_on(s, p);
        }
        break;
    case Y_IDLE: {
        /* A handler process between messages holds no stack while it
         * waits, except the last one to go idle on each scheduler: its
         * stack is lent back (idle_stack) so that a server answering call
         * after call resumes where it stopped instead of taking a stack
         * and starting its loop again for every message. The lend is
         * published before the CAS that makes the process visible as
         * waiting (release there); from then on an exchange decides
         * whether the process (sched_prepare) or this scheduler (when the
         * next handler goes idle here) gets the stack. */
        struct stack *st = p->stack;
        p->stack = NULL;
        /* release: the stack's state (its cache links, what the process
         * left on it) before a reclaiming scheduler's exchange takes it. */
        atomic_store_explicit(&p->idle_stack, st, memory_order_release);
        atomic_store_explicit(&p->status, PS_WAITING, memory_order_relaxed);
        if (mbox_try_wait(&p->mbox)) {
            struct proc *old = s->keep;
            s->keep = p;
            if (old && old != p)
                sched_reclaim_idle_stack(s, old);
        } else {
            /* Not visible as waiting: only a scheduler that kept p from an
             * earlier idle period can race us for the stack; if it won, p
             * starts afresh. */
            p->stack = atomic_exchange_explicit(&p->idle_stack, NULL, memory_order_acq_rel);
            atomic_store_explicit(&p->status, PS_RUNNABLE, memory_order_relaxed);
            sched_ready_on(s, p);
        }
        break;
    }
    case Y_EXIT_IO:
        /* An exit waiting for other schedulers to submit its cancels
         * (exit.c): its own share of io_exit_wait goes now that its
         * registers are saved. acq_rel: pairs with the owners' decrements
         * (io.c, take_acks); whoever reaches 0 makes it runnable. */
        if (atomic_fetch_sub_explicit(&p->io_exit_wait, 1, memory_order_acq_rel) == 1)
            sched_ready_on(s, p);
        break;
    case Y_EXIT:
        proc_release(s, p);
        break;
    }
}

/* The next process to switch to directly from a process that stops, or
 * NULL to go through the scheduler loop. Every 61st pick goes through the
 * loop: the pick is left for its find_local to count, which makes it the
 * one that looks at the global queue and the held processes first. */
static struct proc *pick_fast(struct sched *s)
{
    if ((s->tick + 1) % 61 == 0)
        return NULL;
    s->tick++;
    struct proc *p = s->next;
    if (p) {
        s->next = NULL;     /* inherits the current slice */
        return p;
    }
    if ((p = runq_pop(&s->rq)) || (p = sched_held_pop(s)))
        s->budget = (int)g_rt->cfg.budget;
    return p;
}

void sched_run(struct sched *s, struct proc *p)
{
    if (!sched_prepare(s, p))
        return;
    ctx_switch(&s->ctx, &p->ctx, false);
    /* Back on the scheduler's stack. */
    proc_set_self(NULL);
    sched_finish_prev(s);
}

void sched_switch_out(struct proc *p, enum yield_why why)
{
    struct sched *s = p->sched;
    p->why = why;
    s->prev = p;
    struct proc *q;
    while ((q = pick_fast(s)) && !sched_prepare(s, q))
        ; /* q could not run and has exited: pick again */
    if (q) {
        ctx_switch(&p->ctx, &q->ctx, why == Y_EXIT);
    } else {
        proc_set_self(NULL);
        ctx_switch(&p->ctx, &s->ctx, why == Y_EXIT);
    }
    /* Whoever switched back to p ran sched_prepare(s', p) on its own
     * thread first, so p->sched is this thread's scheduler: no TLS read
     * (which the compiler could have hoisted above the switch). */
    sched_finish_prev(p->sched);
}

void sched_reduce(struct proc *p)
{
    struct sched *s = p->sched;
    if (--s->budget > 0)
        return;
    s->budget = (int)g_rt->cfg.budget;
    sched_switch_out(p, Y_YIELD);
}
