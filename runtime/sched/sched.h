/*
 * Schedulers: one OS thread per core, each with a LIFO "next" slot, a local
 * run queue others can steal from, and event sources (timers, its
 * io_uring) polled through one table.
 *
 * Finding work, in order (sched.c): next slot, local queue (the global
 * queue first every 61 picks, for fairness), global queue, steal half of a
 * random victim's queue, then the event sources; then spin up to spin_us
 * (at most half of the schedulers spin at once) and park in the ring with
 * the sources' earliest deadline as timeout.
 *
 * How processes start and stop running is the switch protocol, all of it
 * in switch.c.
 *
 * Per-scheduler state of the modules above is owned by those modules, each
 * in a struct of its own (struct mnode_cache, struct mon_cache, struct
 * timer_local), embedded here so that the hot paths reach it without an
 * indirection, and handed to the module by pointer.
 */
#ifndef HIVE_SCHED_H
#define HIVE_SCHED_H

#include <hive.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/stack.h"
#include "io/clock.h"
#include "io/ring.h"
#include "runtime/ds/runq.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/timer.h"
#include "runtime/sched/spin.h"
#include "runtime/sched/ctx.h"

struct proc;
struct sched;

/* A flooded mark for a full mailbox whose receiver's place is not known. */
#define BP_NOWHERE UINT32_MAX

/* Single-writer counters; readers load them relaxed. */
#define STAT_INC(s, f) \
    atomic_store_explicit(&(s)->st.f, atomic_load_explicit(&(s)->st.f, memory_order_relaxed) + 1, \
                          memory_order_relaxed)
struct sched_counters {
    _Atomic uint64_t msgs_sent, msgs_received, switches, steals, parks, wakeups_sent,
        ring_enters, syscalls, timers_armed, timers_fired, timers_cancelled,
        late_replies_dropped, spawns, exits, backpressure_yields, wake_retries,
        io_submitted, io_completed, io_cancels, mailbox_rejected, mailbox_dropped,
        mailbox_overflow_kills, io_recv_bufs, io_recv_lent, io_recv_nobufs, io_send_zc,
        quiet_trims, stacks_trimmed, spin_pauses, flood_moves, io_timeouts;
};

/* An event source the scheduler loop polls besides its run queues: timers
 * (proc/timer.c), the ring's I/O and wake-up completions (proc/io.c). Registered at start
 * (rt.c), in a fixed table the loop walks on every pass where it looks for
 * work. */
struct sched_source {
    const char *name;
    /* Does what is due on s; returns how many processes it made runnable. */
    unsigned (*poll)(struct sched *s);
    /* Something handed over by another thread waits (keeps s from parking). */
    bool (*pending)(struct sched *s);
    /* The earliest absolute deadline (clock_precise_ns) at which poll has work
     * even if nothing wakes s; false if none. */
    bool (*deadline)(struct sched *s, uint64_t *ns);
};
#define SCHED_SOURCES_MAX 4
/* Adds a source (before the schedulers start); -ENOSPC when the table is full. */
int sched_add_source(const struct sched_source *src);


struct sched {
    /* --- owner thread only --- */
    /* proc/msg.c: free message nodes. First, so that a caller's "s's cache,
     * or none" (s ? &s->msgs : NULL) is s itself: no branch on the send path. */
    struct mnode_cache msgs;
    unsigned      id;
    struct ctx    ctx;              /* the scheduler's own context */
    struct proc  *current;
    struct proc  *next;             /* LIFO slot, not stealable */
    struct proc  *prev;             /* switched out, waiting for the after-switch hook */
    int           budget;           /* reductions left in the current slice */
    unsigned      tick;             /* picks so far (global queue fairness) */
    uint64_t      rng;
    /* sched.c, steal: per victim (by id), its queue's head at the first
     * look that found it short, and when; n entries. */
    struct steal_look { uint32_t head; uint64_t since_ns; } *looks;
    struct stack_cache stacks;      /* alloc/stack.c */
    struct proc  *keep;             /* the last handler that went idle here
                                       with its stack lent (Y_IDLE) */
    struct mon_cache   mons;        /* proc/signal.c: free monitor records */
    struct timer_local timers;      /* proc/timer.c: wheel, free entries */
    struct ring   ring;
    pthread_t     thread;
    uint64_t      now_ns;           /* clock at the last look */
    /* sched.c, "Quiet trim": since when nothing has run here (clock_precise_ns;
     * 0: not known to be quiet), the switch count then, and whether this
     * quiet spell's trim is done. */
    uint64_t      quiet_since;
    uint64_t      quiet_switches;
    bool          trimmed;
    /* switch.c, "Flooding senders": the flooded mark (mbox_flooded) of the
     * running process's last send to a flooded receiver in this slice, 0
     * if none; and the processes that yielded here at such a send, which
     * no thief can take (a FIFO through rq_next). */
    uint32_t      bp_to;
    struct proc  *held_head, *held_tail;

    /* --- shared --- */
    struct runq   rq;
    struct timer_remote timers_in;  /* proc/timer.c: cancels from other threads */
    _Atomic int   parked;           /* 1 while parked (or about to) */
    /* The process on this scheduler whose pid is dead but whose slot is
     * not yet free (between proc_exit and proc_release), or NULL. Written
     * only by the owner; read by spawners that find the table full. */
    _Atomic(struct proc *) dying;
    struct sched_counters st;
    /* proc/proc.c, "Free slots": the slots of processes released on this
     * scheduler. Pushed and popped by the owner, emptied in one CAS by
     * spawners elsewhere whose own is empty. On a line of its own: the
     * owner writes it at every spawn and exit. */
    _Alignas(64) _Atomic uint64_t free_slots;
    /* switch.c, "Flooding senders": processes other schedulers moved here,
     * a stack through rq_next pushed by them (a release CAS, then a
     * seq_cst fence before they look at parked) and taken whole by the
     * owner (an acquire exchange), who adds them to held_head. On a line
     * of its own: the owner reads it whenever its queue is empty. */
    _Alignas(64) _Atomic(struct proc *) moved_in;
};

struct rt {
    hive_config cfg;
    unsigned    n;
    struct sched *scheds;
    uint64_t    base_ns;

    /* global injection queue (foreign threads, overflow) */
    pthread_mutex_t gq_lock;
    struct proc *gq_head, *gq_tail;
    _Atomic uint32_t gq_len;

    struct spin_gov spin;           /* spin.h: whether idle schedulers may spin */

    _Alignas(64) _Atomic unsigned n_spinning;
    _Atomic unsigned n_parked;
    _Atomic bool     stopping;      /* schedulers leave their loops */
    _Atomic bool     main_gone;     /* the main process was released (rt_live) */

    /* wake-ups from threads without a ring */
    pthread_mutex_t outside_lock;
    struct ring     outside;
    struct sched_counters outside_st;

    _Atomic uint64_t ref_counter;
    hive_pid main_pid;

    struct sched_source sources[SCHED_SOURCES_MAX];
    unsigned nsources;
};

extern struct rt *g_rt;
#define cur_sched (sched_self())


/* Make p runnable (it must not be queued anywhere). From a scheduler thread
 * it goes to that scheduler's next slot; from elsewhere to the global queue. */
void sched_ready(struct proc *p);
/* The same, for a caller that knows its scheduler (NULL: a foreign thread):
 * inline below, since every wake-by-message takes it. */
static inline void sched_ready_on(struct sched *s, struct proc *p);
/* sched_ready_on's other halves, out of line on purpose (inlined, the
 * enqueue and kick cost gen_server_call 4-5 instructions a call in the
 * callers' registers): the process the next slot held goes to the back of
 * the queue; a wake-up from outside goes to the global queue. */
void sched_ready_bump(struct sched *s, struct proc *old);
void sched_ready_outside(struct proc *p);
/* Make p runnable behind what is queued here (not the next slot): for a
 * waker whose siblings, already queued, are what p will want next (a
 * task waking its owner, which then finds the rest of its batch done). */
void sched_ready_behind(struct sched *s, struct proc *p);
/* Back of the local queue (yield, spawn). */
void sched_enqueue(struct sched *s, struct proc *p);
/* Flooding senders (switch.c): p, which yielded at a send to a receiver
 * flooded on s, waits on s where no thief takes it; or moves to t, the
 * receiver's scheduler (waking it if parked). The owner takes them from
 * its held FIFO when its queue is empty, and every 61st pick. */
void sched_hold(struct sched *s, struct proc *p);
void sched_move(struct sched *s, struct sched *t, struct proc *p);
struct proc *sched_held_pop(struct sched *s);
/* Wake a parked scheduler if nobody is looking for work. */
void sched_kick(void);

static inline void sched_ready_on(struct sched *s, struct proc *p)
{
    atomic_store_explicit(&p->status, PS_RUNNABLE, memory_order_relaxed);
    if (__builtin_expect(s == NULL, 0)) {
        sched_ready_outside(p);
        return;
    }
    /* LIFO slot: the process woken by the running one runs next, here,
     * while what it needs is still in this core's cache. */
    struct proc *old = s->next;
    s->next = p;
    if (old)
        sched_ready_bump(s, old);
}
void sched_wake_all(void);
/* Counter of the calling thread (a scheduler's, or the foreign one). */
struct sched_counters *sched_counters(void);
/* cur_sched read through a call: after a switch the process may be on
 * another thread, and a TLS address computed before it would be stale. */
struct sched *sched_self(void) HIVE_TLS_ACCESSOR;

/* --- the switch protocol (switch.c) --- */
/* Stops the running process p for `why` and runs another; returns when p
 * runs again (never for Y_EXIT), possibly on another scheduler. */
void sched_switch_out(struct proc *p, enum yield_why why);
/* One reduction: yields when the slice is spent. */
void sched_reduce(struct proc *p);
/* Gets p ready to run on s; false if it could not (it has exited). */
bool sched_prepare(struct sched *s, struct proc *p);
/* First thing after any switch: publish the process that stopped. */
void sched_finish_prev(struct sched *s);
/* Runs p from the scheduler's own context until it switches back. */
void sched_run(struct sched *s, struct proc *p);
/* Takes back the stack an idle handler kept, unless it took it first. */
void sched_reclaim_idle_stack(struct sched *s, struct proc *p);

/* rt.c: called by the exit path when the process count reaches zero or the
 * main process exited. */
void rt_notify_exit(bool main_exited);
/* Processes alive: the sum of every scheduler's spawns minus its exits
 * (see proc_count_spawn). Reads every scheduler's counters: for shutdown,
 * not for hot paths. */
int64_t rt_live(void);
/* sched.c: the scheduler thread body and its setup/teardown. */
int   sched_init(struct sched *s, unsigned id, const char **why);
void  sched_fini(struct sched *s);
void *sched_thread(void *arg);
void  sched_install_segv(void);

/* Moves the system calls s's ring counted into s's counters (owner). */
static inline void sched_count_ring(struct sched *s)
{
    uint64_t enters, sys, timeouts;
    ring_take_counts(&s->ring, &enters, &sys, &timeouts);
    if (timeouts)
        atomic_store_explicit(&s->st.io_timeouts,
                              atomic_load_explicit(&s->st.io_timeouts, memory_order_relaxed) + timeouts,
                              memory_order_relaxed);
    if (enters | sys) {
        atomic_store_explicit(&s->st.ring_enters,
                              atomic_load_explicit(&s->st.ring_enters, memory_order_relaxed) + enters,
                              memory_order_relaxed);
        atomic_store_explicit(&s->st.syscalls,
                              atomic_load_explicit(&s->st.syscalls, memory_order_relaxed) + enters + sys,
                              memory_order_relaxed);
    }
}

#endif
