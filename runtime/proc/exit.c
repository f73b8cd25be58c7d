/*
 * Exit: how a process ends, in order.
 *
 *   proc_exit (on the process's stack, or proc_exit_unstacked elsewhere)
 *     1. PF_EXITING under the lock: no new links or monitors
 *     2. the registered name released (a restarted child can take it)
 *     3. the slot marked dying, then the pid dead (release)
 *     4. I/O in flight cancelled on this thread's ring, or handed to the
 *        scheduler whose ring holds it (io.c); then, on the process's
 *        stack, a switch-out (Y_EXIT_IO) until each such scheduler has
 *        submitted its cancels
 *     5. sig_on_exit (signal.c): DOWNs to watchers, exit signals to links,
 *        own monitors dropped
 *     6. receive timer dropped, held messages, both queues, aliases freed
 *     7. sched_switch_out(Y_EXIT): the last switch
 *   proc_release (run by whatever the scheduler switched to, switch.c)
 *     8. stack back to the scheduler's cache, slot on the free list,
 *        dying cleared, the exit counted; the runtime told when the main
 *        process or the last one is gone
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/proc/io.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/receive.h"
#include "runtime/proc/signal.h"
#include "runtime/proc/registry.h"
#include "runtime/sched/sched.h"

static void free_queue(struct proc *p)
{
    struct mnode *n = p->pq_head;
    while (n) {
        struct mnode *nx = (struct mnode *)atomic_load_explicit(&n->q.next, memory_order_relaxed);
        if (mnode_counted(n))
            proc_uncount(p, n);
        mnode_free(n);
        n = nx;
    }
    p->pq_head = p->pq_tail = NULL;
    p->pq_len = 0;
    for (;;) {
        struct mq_node *qn;
        enum mbox_pop_result r = mbox_pop(&p->mbox, &qn);
        if (r == MBOX_EMPTY)
            break;
        if (r == MBOX_BUSY)
            continue; /* a sender is mid-push; it finishes in a moment */
        if (mnode_counted((struct mnode *)qn))
            proc_uncount(p, (struct mnode *)qn);
        mnode_free((struct mnode *)qn);
    }
}

/* Everything an exit does before the final switch, on whatever stack it
 * runs (the process's own, or, for a process that cannot get one, another
 * context's: proc_exit_unstacked). */
static void exit_work(struct proc *p, hive_reason reason, bool stacked)
{
    hive_pid self = atomic_load_explicit(&p->pid, memory_order_relaxed);
    p->exit_reason = reason;
    atomic_store_explicit(&p->status, PS_EXITING, memory_order_relaxed);

    /* The name goes first, so a supervisor that sees the DOWN/EXIT can
     * register it again. PF_EXITING is set under the lock, and linkers and
     * monitors check it under the same lock: once we drop it, nobody adds
     * a link or a monitored_by record (only removes), and the monitors
     * list is ours alone. So lists found empty here stay empty, and
     * sig_on_exit, which would take the lock again to detach them, has
     * nothing to do. */
    proc_lock(p);
    p->flags |= PF_EXITING;
    char *name = p->name;
    p->name = NULL;
    bool quiet = !p->links && !p->monitored_by && !p->monitors && !p->call_mt;
    proc_unlock(p);
    if (name) {
        registry_release(name, self);
        free(name);
    }
    /* Mark the slot as on its way back before anybody can learn of the
     * death (DOWN, EXIT, hive_is_alive): a spawner that finds the table
     * full waits for such slots (slot_alloc_after_exits). The release
     * store of pid below orders this store before every such signal. */
    atomic_store_explicit(&p->sched->dying, p, memory_order_relaxed);
    /* From here on the pid is dead for senders and hive_is_alive.
     * release: pairs with the acquire in proc_resolve_live. */
    atomic_store_explicit(&p->pid, 0, memory_order_release);
    /* I/O in flight is cancelled (on this thread's ring), or handed to
     * the scheduler whose ring holds it, before anyone learns of the
     * death (io.c, io_proc_exit). A receive handed to another scheduler
     * is still in the kernel until that thread submits its cancel: one
     * told of the death could send data it would take. So a process on
     * its stack waits for that, switched out; nothing of its exit is
     * announced meanwhile. Without a stack (proc_exit_unstacked: a
     * process that cannot get one, or a kill done in place, which
     * hive_kill does only when all its I/O is on the killer's ring)
     * there is nothing to wait on, and those cancels follow the exit. */
    if (p->io && io_proc_exit(p, stacked)) {
        /* Its slot is not on its way back while it waits: a spawner
         * that finds the table full must not spin for it (the owner it
         * waits for may be that spawner's scheduler). release: as
         * proc_release's store of NULL. */
        atomic_store_explicit(&p->sched->dying, NULL, memory_order_release);
        sched_switch_out(p, Y_EXIT_IO);
        /* Runnable again, on whichever scheduler took it. */
        atomic_store_explicit(&p->status, PS_EXITING, memory_order_relaxed);
        atomic_store_explicit(&p->sched->dying, p, memory_order_relaxed);
    }
    if (!quiet)
        sig_on_exit(p, self, reason);
    proc_timer_drop(p);
    proc_hold(p, NULL);
    if (p->held_next) {
        mnode_free(p->held_next);
        p->held_next = NULL;
    }
    free_queue(p);
    if (p->aliases.v)
        free(p->aliases.v);
    memset(&p->aliases, 0, sizeof p->aliases);
}

_Noreturn void proc_exit(struct proc *p, hive_reason reason)
{
    exit_work(p, reason, true);
    sched_switch_out(p, Y_EXIT);
    __builtin_unreachable();
}

void proc_exit_unstacked(struct proc *p, hive_reason reason)
{
    exit_work(p, reason, false);
    proc_release(p->sched, p);
}

void proc_release(struct sched *s, struct proc *p)
{
    if (p->stack) {
        stack_put(s ? &s->stacks : NULL, p->stack);
        p->stack = NULL;
    } else if (resv_warm(p)) {
        stack_put(s ? &s->stacks : NULL, resv_warm(p));
        p->resv_arena = NULL;
    } else if (p->resv_arena) {
        struct stack_resv r = { p->resv_arena, p->resv_index };
        stack_unreserve(s ? &s->stacks : NULL, &r);
        p->resv_arena = NULL;
    }
    atomic_store_explicit(&p->status, PS_FREE, memory_order_relaxed);
    hive_pid self = pid_make(p->slot, p->gen);
    bool was_main = self == g_rt->main_pid;
    proc_slot_free(s, p);
    /* release: the slot is on a free list before dying reads NULL;
     * pairs with the acquire in slot_alloc_after_exits. */
    if (s)
        atomic_store_explicit(&s->dying, NULL, memory_order_release);
    /* release: pairs with the acquire loads in rt_live; see
     * proc_count_spawn. */
    if (s)
        atomic_store_explicit(&s->st.exits,
                              atomic_load_explicit(&s->st.exits, memory_order_relaxed) + 1,
                              memory_order_release);
    else
        atomic_fetch_add_explicit(&g_rt->outside_st.exits, 1, memory_order_release);
    if (was_main) {
        atomic_store_explicit(&g_rt->main_gone, true, memory_order_relaxed);
        rt_notify_exit(true);
    } else if (atomic_load_explicit(&g_rt->main_gone, memory_order_relaxed) && rt_live() == 0) {
        /* Only after the main process is gone can the count reach zero.
         * An exit that misses main_gone set at the same moment costs
         * wait_empty one of its periodic looks (at most 20 ms). */
        rt_notify_exit(false);
    }
}


_Noreturn void hive_exit(hive_reason reason)
{
    struct proc *p = cur_proc;
    if (!p) {
        fprintf(stderr, "hive: hive_exit called outside a hive process\n");
        abort();
    }
    proc_exit(p, reason);
}
