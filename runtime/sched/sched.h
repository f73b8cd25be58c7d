/*
 * Schedulers: one OS thread per core, each with a LIFO "next" slot, a local
 * run queue others can steal from, a timer wheel and an io_uring.
 *
 * Finding work, in order: next slot, local queue (the global queue first
 * every 61 picks, for fairness), global queue, steal half of a random
 * victim's queue, due timers, ring completions; then spin up to spin_us
 * (at most half of the schedulers spin at once) and park in the ring with
 * the next timer deadline as timeout.
 *
 * A process that stops switches straight to the next local process (the
 * next slot or the local queue), or every 61st pick and when nothing is
 * local, to the scheduler's own context. Either way it only records itself
 * in `prev`: whatever runs next first calls sched_finish_prev, so everything
 * that publishes the stopped process — marking it waiting, queueing it,
 * releasing its stack — runs after its registers are saved.
 */
#ifndef HIVE_SCHED_H
#define HIVE_SCHED_H

#include <hive.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/stack.h"
#include "io/ring.h"
#include "runtime/sched/ctx.h"
#include "runtime/ds/runq.h"
#include "runtime/ds/wheel.h"

struct mon;
struct proc;
struct tentry;

/* Single-writer counters; readers load them relaxed. */
#define STAT_INC(s, f) \
    atomic_store_explicit(&(s)->st.f, atomic_load_explicit(&(s)->st.f, memory_order_relaxed) + 1, \
                          memory_order_relaxed)
struct sched_counters {
    _Atomic uint64_t msgs_sent, msgs_received, switches, steals, parks, wakeups_sent,
        ring_enters, syscalls, timers_armed, timers_fired, timers_cancelled,
        late_replies_dropped, spawns, exits, backpressure_yields,
        io_submitted, io_completed, io_cancels;
};

struct sched {
    /* --- owner thread only --- */
    unsigned      id;
    struct ctx    ctx;              /* the scheduler's own context */
    struct proc  *current;
    struct proc  *next;             /* LIFO slot, not stealable */
    struct proc  *prev;             /* switched out, waiting for the after-switch hook */
    int           budget;           /* reductions left in the current slice */
    unsigned      tick;             /* picks so far (global queue fairness) */
    uint64_t      rng;
    struct wheel  wheel;
    struct tentry *tfree;           /* timer entries free list */
    struct stack_cache stacks;
    struct proc  *keep;             /* the last handler that went idle here
                                       with its stack lent (Y_IDLE) */
    struct mnode *mcache[2];        /* free message nodes of 128 and 256 bytes */
    unsigned      mcache_n[2];
    struct mon   *mon_cache;        /* free monitor records (signal.c) */
    unsigned      mon_cache_n;
    struct ring   ring;
    pthread_t     thread;
    uint64_t      now_ns;           /* clock at the last look */

    /* --- shared --- */
    struct runq   rq;
    _Alignas(64) _Atomic(struct tentry *) cancels;  /* timers cancelled from other threads */
    _Atomic int   parked;           /* 1 while parked (or about to) */
    /* The process on this scheduler whose pid is dead but whose slot is
     * not yet free (between proc_exit and proc_release), or NULL. Written
     * only by the owner; read by spawners that find the table full. */
    _Atomic(struct proc *) dying;
    struct sched_counters st;
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
};

extern struct rt *g_rt;
#define cur_sched (sched_self())

uint64_t clock_ns(void);   /* CLOCK_MONOTONIC through the vDSO */

/* Make p runnable (it must not be queued anywhere). From a scheduler thread
 * it goes to that scheduler's next slot; from elsewhere to the global queue. */
void sched_ready(struct proc *p);
/* The same, for a caller that knows its scheduler (NULL: a foreign thread). */
void sched_ready_on(struct sched *s, struct proc *p);
/* Back of the local queue (yield). */
void sched_enqueue(struct sched *s, struct proc *p);
/* Wake a parked scheduler if nobody is looking for work. */
void sched_kick(void);
void sched_wake_all(void);
/* Counter of the calling thread (a scheduler's, or the foreign one). */
struct sched_counters *sched_counters(void);

#endif

/* The switch protocol (see proc_switch_out): prepare the process to run,
 * and, first thing after any switch, finish the one that stopped. */
void sched_prepare(struct sched *s, struct proc *p);
void sched_finish_prev(struct sched *s);
struct proc *sched_pick_fast(struct sched *s);
/* cur_sched read through a call: after a switch the process may be on
 * another thread, and a TLS address computed before it would be stale. */
struct sched *sched_self(void) HIVE_TLS_ACCESSOR;

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
