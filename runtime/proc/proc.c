/*
 * The process table and spawn: pids, slots, a process's first stack and
 * its entry (a plain function, or a handler's message loop). The send path
 * is send.c, receiving receive.c, the end of a process exit.c.
 */
#include "runtime/proc/proc.h"
#include "runtime/proc/receive.h"
#include "runtime/proc/signal.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/alloc.h"
#include "alloc/stack.h"
#include "runtime/sched/sched.h"
#include "runtime/proc/timer.h"
#include "runtime/proc/io.h"

#define CHUNK_SHIFT PROC_CHUNK_SHIFT
#define CHUNK_PROCS PROC_CHUNK

struct proc_table proc_tab;
#define tab proc_tab

static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;

static _Thread_local struct proc *tls_proc;

struct proc *proc_self(void)
{
    return tls_proc;
}

void proc_set_self(struct proc *p)
{
    tls_proc = p;
}

int proc_table_init(unsigned max_processes)
{
    tab.max = max_processes;
    tab.nchunks = (max_processes + CHUNK_PROCS - 1) >> CHUNK_SHIFT;
    tab.chunks = calloc(tab.nchunks, sizeof *tab.chunks);
    if (!tab.chunks)
        return -ENOMEM;
    atomic_store(&tab.fresh, 0);
    atomic_store(&tab.free_head, 0);
    return 0;
}

void proc_table_fini(void)
{
    for (unsigned i = 0; i < tab.nchunks; i++) {
        struct proc *c = atomic_load(&tab.chunks[i]);
        if (c)
            mem_unmap(c, sizeof(struct proc) * CHUNK_PROCS);
    }
    free(tab.chunks);
    tab.chunks = NULL;
}

unsigned proc_table_slots(void)
{
    uint32_t f = atomic_load_explicit(&tab.fresh, memory_order_acquire);
    return f < tab.max ? f : tab.max;
}

struct proc *proc_live(hive_pid pid)
{
    struct proc *p;
    return proc_resolve_live(pid, &p) == 0 ? p : NULL;
}

static struct proc *chunk_for(uint32_t slot)
{
    struct proc *p = proc_at(slot);
    if (p)
        return p;
    pthread_mutex_lock(&grow_lock);
    unsigned ci = slot >> CHUNK_SHIFT;
    struct proc *c = atomic_load_explicit(&tab.chunks[ci], memory_order_relaxed);
    if (!c) {
        c = mem_map(sizeof(struct proc) * CHUNK_PROCS);
        if (c) {
            for (unsigned i = 0; i < CHUNK_PROCS; i++) {
                mbox_init(&c[i].mbox);
                c[i].slot = (ci << CHUNK_SHIFT) + i;
            }
            /* release: the chunk's initialised mailboxes before its pointer. */
            atomic_store_explicit(&tab.chunks[ci], c, memory_order_release);
        }
    }
    pthread_mutex_unlock(&grow_lock);
    return c ? &c[slot & (CHUNK_PROCS - 1)] : NULL;
}

/*
 * Free slots. A slot is given back on the thread that releases its process,
 * to that scheduler's stack (sched.free_slots; the table's free_head for a
 * thread without a scheduler), and a spawn takes one from, in order: its
 * own scheduler's stack, the table's, another scheduler's (the whole stack
 * at once: it keeps one slot and makes the rest its own), a fresh slot.
 * One shared stack for all made every spawn and every exit a CAS on the
 * same line: in fork_join, where one scheduler spawns and both run the
 * tasks, that line and the popped slots' links were 27% of the cycles.
 *
 * Each stack is a Treiber stack whose head is count:32 | (slot + 1):32, the
 * links in the slots' freenext. Every change of a head (push, pop, taking
 * it all, installing a taken chain) is a CAS that adds one to the count,
 * so a head never holds the same value twice (short of 2^32 changes) and a
 * pop that read a slot's link before someone else took that slot fails
 * its CAS. Pushes are release and takes acquire: a slot's final state and
 * the links of everything below it are visible to whoever takes it, also
 * down a chain taken from one scheduler and installed in another (the
 * install is a release, the taker's CAS an acquire).
 *
 * "I saw it die, so its slot can be had" (slot_alloc_after_exits): the
 * release pushes the slot before it clears its scheduler's dying, and a
 * spawner that finds the table full looks at every stack after waiting
 * for the exits in flight. Between another spawner's take of a whole
 * stack and its install of the rest, those slots are on no stack for a
 * few instructions; a spawner that loses that race to a concurrent spawner
 * gets -EAGAIN, as it would had the other taken the last slot.
 */
static inline uint64_t head_next(uint64_t h, uint32_t slot1)
{
    return ((h >> 32) + 1) << 32 | slot1;
}

static void slots_push(_Atomic uint64_t *head, struct proc *p)
{
    uint64_t h = atomic_load_explicit(head, memory_order_relaxed);
    for (;;) {
        __atomic_store_n(&p->freenext, (uint32_t)h, __ATOMIC_RELAXED);
        /* release: p's final state (and freenext) before it is reusable;
         * pairs with the acquire CAS in slots_pop and slots_take. */
        if (atomic_compare_exchange_weak_explicit(head, &h, head_next(h, p->slot + 1),
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
}

void proc_slot_free(struct sched *s, struct proc *p)
{
    slots_push(s ? &s->free_slots : &tab.free_head, p);
}

/* One slot off a stack, or NULL. */
static struct proc *slots_pop(_Atomic uint64_t *head)
{
    uint64_t h = atomic_load_explicit(head, memory_order_acquire);
    while ((uint32_t)h != 0) {
        struct proc *p = proc_at((uint32_t)h - 1);
        if (!p)
            break; /* cannot happen: a freed slot's chunk exists */
        /* freenext may be rewritten under us by a racing take and reuse;
         * the count in the head makes such a CAS fail. */
        uint32_t nxt = (uint32_t)__atomic_load_n(&p->freenext, __ATOMIC_RELAXED);
        if (atomic_compare_exchange_weak_explicit(head, &h, head_next(h, nxt),
                                                  memory_order_acquire, memory_order_acquire))
            return p;
    }
    return NULL;
}

/* Takes all of another scheduler's stack: its first slot is returned, the
 * rest becomes own's stack (empty, and pushed to by this thread alone).
 * The load first keeps an empty stack's line from being taken for
 * nothing. */
static struct proc *slots_take(_Atomic uint64_t *from, _Atomic uint64_t *own)
{
    uint64_t h = atomic_load_explicit(from, memory_order_relaxed);
    while ((uint32_t)h != 0) {
        if (atomic_compare_exchange_weak_explicit(from, &h, head_next(h, 0), memory_order_acquire,
                                                  memory_order_relaxed)) {
            struct proc *p = proc_at((uint32_t)h - 1);
            uint32_t rest = (uint32_t)__atomic_load_n(&p->freenext, __ATOMIC_RELAXED);
            uint64_t o = atomic_load_explicit(own, memory_order_relaxed);
            while (rest) {
                if ((uint32_t)o != 0) {
                    /* Own is empty (the caller found it so, only its
                     * thread pushes to it, and takes leave an empty stack
                     * alone); were it not, the chain goes on slot by slot. */
                    for (uint32_t k = rest; k;) {
                        struct proc *q = proc_at(k - 1);
                        k = (uint32_t)__atomic_load_n(&q->freenext, __ATOMIC_RELAXED);
                        slots_push(own, q);
                    }
                    break;
                }
                /* release: the chain's links (and, through our acquire,
                 * the releases that pushed them) before another taker or
                 * pop reads them. */
                if (atomic_compare_exchange_weak_explicit(own, &o, head_next(o, rest),
                                                          memory_order_release,
                                                          memory_order_relaxed))
                    break;
            }
            return p;
        }
    }
    return NULL;
}

static struct proc *slot_alloc(void)
{
    struct sched *cs = cur_sched;
    struct proc *p;
    if (cs && (p = slots_pop(&cs->free_slots)))
        return p;
    if ((p = slots_pop(&tab.free_head)))
        return p;
    for (unsigned i = 1; g_rt && i < g_rt->n + !cs; i++) {
        /* a thread without a scheduler pops one slot; a scheduler takes
         * the whole stack, starting with its neighbour */
        unsigned k = cs ? (cs->id + i) % g_rt->n : i - 1;
        struct sched *o = &g_rt->scheds[k];
        if (cs ? (p = slots_take(&o->free_slots, &cs->free_slots))
               : (p = slots_pop(&o->free_slots)))
            return p;
    }
    uint32_t s = atomic_fetch_add_explicit(&tab.fresh, 1, memory_order_relaxed);
    if (s >= tab.max) {
        atomic_fetch_sub_explicit(&tab.fresh, 1, memory_order_relaxed);
        return NULL;
    }
    return chunk_for(s);
}

/* The table is full. A process whose death the caller may already have
 * seen (a DOWN, an EXIT, hive_is_alive false) can still be switching out
 * on its scheduler, its slot not yet free: proc_exit marks it dying before
 * its pid dies, and proc_release clears the mark after the slot is on the
 * free list. Wait for every exit in flight at this moment, then try once
 * more (also when none is in flight now: one may have finished since the
 * caller's try), so that "I saw it die" always means "its slot can be
 * had". Each wait is a few instructions on that scheduler (the rest of a
 * switch), unless its thread is preempted: then we give up our slice. */
static struct proc *slot_alloc_after_exits(void)
{
    for (unsigned i = 0; i < g_rt->n; i++) {
        struct sched *o = &g_rt->scheds[i];
        if (o == cur_sched)
            continue; /* our own exits were released before we ran */
        /* acquire: pairs with the release store of NULL in proc_release. */
        struct proc *d = atomic_load_explicit(&o->dying, memory_order_acquire);
        if (!d)
            continue;
        for (unsigned spins = 0;
             atomic_load_explicit(&o->dying, memory_order_acquire) == d; spins++) {
            if (spins < 1000)
                cpu_relax();
            else
                sched_yield();
        }
    }
    /* Always try again: an exit may have finished between the caller's
     * slot_alloc and our look at dying. */
    return slot_alloc();
}

static void proc_main(void *arg)
{
    ctx_started();
    struct proc *p = arg;
    sched_finish_prev(p->sched);
    p->fn(p->arg);
    proc_exit(p, HIVE_NORMAL);
}

void proc_hold(struct proc *p, struct mnode *n)
{
    if (p->held)
        mnode_free_on(&p->sched->msgs, p->held);
    p->held = n;
}

/* A handler process's life between messages. */
static __attribute__((noreturn)) void handler_loop(struct proc *p)
{
    for (;;) {
        hive_msg *m;
        if (proc_receive_any(p, &m, 0) == 0) {
            p->held = mnode_of(m);
            p->handler(p->arg, m);
            proc_hold(p, NULL);
            continue;
        }
        /* Nothing queued: give the stack back. If a message slipped in,
         * the scheduler resumes us here instead. */
        sched_switch_out(p, Y_IDLE);
    }
}

/* A handler process: each message is lent to the handler, which must not
 * free it; it is freed when the handler returns, or by proc_exit if the
 * process exits inside the handler. */
static void handler_main(void *arg)
{
    ctx_started();
    struct proc *p = arg;
    sched_finish_prev(p->sched);
    if (p->fn) {            /* one-time start hook (gen_server init) */
        void (*fn)(void *) = p->fn;
        p->fn = NULL;
        fn(p->arg);
        proc_hold(p, NULL);
    }
    handler_loop(p);
}

void proc_become_handler(struct proc *p, handler_fn handler, void *ctx)
{
    /* Only p reads these (its own loop, sched_prepare and
     * proc_stack_start when it runs again): plain stores. */
    p->kind = PK_HANDLER;
    p->handler = handler;
    p->arg = ctx;
    p->fn = NULL; /* no start hook when it starts afresh */
    handler_loop(p);
}

/* The process starts at its entry on p->stack. */
static void proc_stack_start(struct proc *p)
{
    p->canary = !p->stack->guarded;
    ctx_init(&p->ctx, p->stack->lo, p->stack->size,
             p->kind == PK_FN ? proc_main : handler_main, p);
    p->ctx.tsan_fiber = stack_fresh_fiber(p->stack);
}

int proc_stack_init(struct proc *p, struct stack_cache *c)
{
    p->stack = stack_get(c, p->stack_size);
    if (!p->stack)
        return -ENOMEM;
    proc_stack_start(p);
    return 0;
}

/* At spawn the stack is had, warm or untouched, but not started: the
 * scheduler that first runs the process makes it its stack
 * (sched_prepare), so that a parent spawning many processes neither takes
 * all their first page faults on its own core nor pulls their warm
 * stacks' lines over from the cores they last ran on, only for a thief to
 * pull them back. */
static int proc_stack_reserve(struct proc *p, struct stack_cache *c)
{
    struct stack_resv r;
    p->resv_arena = NULL;
    p->stack = NULL;
    struct stack *st = stack_get_or_reserve(c, p->stack_size, &r);
    if (st) {
        p->resv_arena = (struct stack_arena *)((uintptr_t)st | RESV_WARM);
        return 0;
    }
    if (!r.arena)
        return -ENOMEM;
    p->resv_arena = r.arena;
    p->resv_index = (uint8_t)r.index;
    return 0;
}

void proc_stack_claim(struct proc *p, struct stack_cache *c)
{
    struct stack *st = resv_warm(p);
    if (st) {
        st = stack_cache_trade(c, st);
    } else {
        struct stack_resv r = { p->resv_arena, p->resv_index };
        st = stack_claim(&r);
    }
    p->resv_arena = NULL;
    p->stack = st;
    proc_stack_start(p);
}

int proc_spawn(void (*fn)(void *), handler_fn handler, void *arg, const hive_spawn_opts *opts,
               hive_pid *out)
{
    if (!g_rt)
        return -EPERM;
    if (!fn && !handler)
        return -EINVAL;
    unsigned flags = opts ? opts->flags : 0;
    if (flags & ~(HIVE_LINK | HIVE_MONITOR | PSPAWN_INTERNAL_MONITOR))
        return -EINVAL;
    if ((flags & HIVE_MONITOR) && !opts->monitor)
        return -EINVAL;
    if (opts && (unsigned)opts->overflow > HIVE_OVERFLOW_KILL)
        return -EINVAL;
    struct proc *self = cur_proc;
    if ((flags & (HIVE_LINK | HIVE_MONITOR)) && !self)
        return -EPERM;
    struct proc *p = slot_alloc();
    if (!p && !(p = slot_alloc_after_exits()))
        return -EAGAIN;
    /* The stack is had now, so that a spawn that returned 0 never leaves a
     * process that cannot run. Only the owner of a slot touches these
     * fields, and nobody else owns a slot between slot_alloc and the
     * release store of its pid. */
    struct sched *cs = cur_sched;
    p->kind = handler ? PK_HANDLER : PK_FN;
    p->stack_size = opts ? opts->stack_size : 0;
    if (proc_stack_reserve(p, cs ? &cs->stacks : NULL) != 0) {
        proc_slot_free(cs, p);
        return -ENOMEM;
    }

    uint32_t gen = p->gen + 1;
    if (gen == 0)
        gen = 1;
    hive_pid pid = pid_make(p->slot, gen);
    /* Stale-pid link/monitor attempts may hold the lock; they bail out on
     * the pid check, but take it so their reads of flags stay ordered.
     * gen is written under the lock too: a watcher dropping its monitor
     * of the previous process in this slot compares it (sig_unmonitor). */
    proc_lock(p);
    p->gen = gen;
    p->flags = 0;
    p->links = NULL;
    p->monitored_by = NULL;
    p->name = NULL;
    p->sched = NULL;
    p->rq_next = NULL;
    p->fn = fn;
    p->handler = handler;
    p->arg = arg;
    p->exit_reason = HIVE_NORMAL;
    p->call_reason = HIVE_NORMAL;
    p->pq_head = p->pq_tail = NULL;
    p->pq_len = 0;
    p->rtimer = 0;
    p->rtimer_dl = 0;
    p->trap_exit = false;
    p->monitors = NULL;
    p->call_mt = NULL;
    p->held = p->held_next = NULL;
    memset(&p->aliases, 0, sizeof p->aliases);
    p->gs = NULL;
    p->io = NULL;
    atomic_store_explicit(&p->mbox.flooded, 0, memory_order_relaxed);
    /* The limit; mbox.counted is not reset (send.c: every add has its sub,
     * whichever process of the slot it lands on). */
    atomic_store_explicit(&p->max_queue, opts ? opts->max_queue : 0, memory_order_relaxed);
    atomic_store_explicit(&p->overflow, opts ? (uint8_t)opts->overflow : 0, memory_order_relaxed);
    atomic_store_explicit(&p->dropped, 0, memory_order_relaxed);
    atomic_store_explicit(&p->ovf_kill, HIVE_NOPID, memory_order_relaxed);
    proc_unlock(p);
    atomic_store_explicit(&p->status, PS_RUNNABLE, memory_order_relaxed);
    proc_count_spawn(cs);
    /* release: everything above before the pid makes the process visible. */
    atomic_store_explicit(&p->pid, pid, memory_order_release);

    if (flags & HIVE_LINK)
        sig_link(self, pid);   /* cannot fail: the child is alive and not running */
    if ((flags & HIVE_MONITOR) &&
        sig_monitor(self, pid, flags & PSPAWN_INTERNAL_MONITOR, opts->monitor))
        *opts->monitor = (hive_ref){ 0, 0 };

    if (out)
        *out = pid;
    if (cs) {
        /* A kick is for parallelism only (the queue's owner runs what
         * nobody steals), and its seq_cst fence is dear: kick when the
         * queue was empty. A scheduler that parks after that sees the
         * queue non-empty in its last look and stays up; one parked
         * before it was kicked by the push that made it non-empty. */
        bool was_empty = runq_len(&cs->rq) == 0;
        sched_enqueue(cs, p);
        if (was_empty)
            sched_kick();
    } else {
        sched_ready(p);
    }
    return 0;
}

/* The live count has no shared counter that every spawn and exit would
 * bounce between cores: each scheduler counts its own spawns and exits
 * (single writer, a plain load and release store), and only threads
 * outside the schedulers use an atomic add on outside_st. rt_live reads
 * all exit counters first, then all spawn counters, with acquire loads: a
 * process's spawn is counted (release) before it can run, so before its
 * exit is counted (release) on whatever scheduler releases it; a reader
 * that saw the exit therefore sees the spawn. The sum never counts an exit
 * without its spawn, so it is never below the number of processes alive
 * when the exits were read, and reads zero only when all have exited. */
void proc_count_spawn(struct sched *s)
{
    if (s)
        atomic_store_explicit(&s->st.spawns,
                              atomic_load_explicit(&s->st.spawns, memory_order_relaxed) + 1,
                              memory_order_release);
    else
        atomic_fetch_add_explicit(&g_rt->outside_st.spawns, 1, memory_order_release);
}

/* Back-pressure without blocking. A receiver that spends a whole slice
 * receiving and still has messages queued is being sent to faster than it
 * can take: it marks its mailbox flooded (cleared when a receive finds the
 * mailbox empty, next_msg), and every process that sends to it meanwhile
 * ends its own slice at that send (send_done). Senders sharing a core
 * with the receiver then let it run; without this they outrun it and its
 * queue, and the memory under it, grows without bound (cf. Erlang, which
 * has charged senders to long queues extra reductions). A process that
 * is not receiving (a parent that gathers its children's results later)
 * never marks its mailbox, so its senders are not slowed. */
void proc_reduce_receive(struct proc *p)
{
    /* This reduction ends the slice: mark before proc_reduce yields. */
    if (p->sched->budget <= 1 && g_rt->cfg.backpressure && mbox_maybe_nonempty(&p->mbox))
        mbox_set_flooded(&p->mbox, p->sched->id + 1);
    sched_reduce(p);
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

/* A spawn costs the parent a reduction, like a send: a process that spawns
 * in a loop lets its children run (and recycle their slots and stacks)
 * instead of queueing a million of them. */
int hive_spawn(void (*fn)(void *), void *arg, hive_pid *out)
{
    return hive_spawn_opt(fn, arg, NULL, out);
}

int hive_spawn_opt(void (*fn)(void *), void *arg, const hive_spawn_opts *opts, hive_pid *out)
{
    if (!fn || (opts && (opts->flags & PSPAWN_INTERNAL_MONITOR)))
        return -EINVAL;
    int rc = proc_spawn(fn, NULL, arg, opts, out);
    struct proc *self = cur_proc;
    if (rc == 0 && self)
        sched_reduce(self);
    return rc;
}

hive_pid hive_self(void)
{
    struct proc *p = cur_proc;
    return p ? atomic_load_explicit(&p->pid, memory_order_relaxed) : HIVE_NOPID;
}

bool hive_is_alive(hive_pid pid)
{
    return proc_live(pid) != NULL;
}

int hive_yield(void)
{
    struct proc *p = cur_proc;
    if (!p)
        return -EPERM;
    p->sched->budget = (int)g_rt->cfg.budget;
    sched_switch_out(p, Y_YIELD);
    /* A yield is a point where exit signals take effect, so a process that
     * only computes and yields can still be killed. */
    proc_poll_signals(p);
    return 0;
}

