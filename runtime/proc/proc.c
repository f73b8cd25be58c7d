/*
 * The process table, spawn and exit, and the send path.
 *
 * A message's way: hive_send -> mnode_make (alloc/) -> proc_send_node ->
 * mbox_push (mailbox.h) -> sched_ready if the push ended a wait (sched.c)
 * -> the receiver's drain in receive.c -> hive_msg_free.
 */
#include "runtime/proc/proc.h"

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
    if (proc_resolve(pid, &p) != 0)
        return NULL;
    return atomic_load_explicit(&p->pid, memory_order_acquire) == pid ? p : NULL;
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

/* Free slots: a Treiber stack whose head carries a change count, so a slot
 * popped and pushed back between our read and our CAS cannot fool us. */
static void slot_free(struct proc *p)
{
    uint64_t h = atomic_load_explicit(&tab.free_head, memory_order_relaxed);
    for (;;) {
        __atomic_store_n(&p->freenext, (uint32_t)h, __ATOMIC_RELAXED);
        uint64_t n = ((h >> 32) + 1) << 32 | (uint64_t)(p->slot + 1);
        /* release: p's final state (and freenext) before it is reusable. */
        if (atomic_compare_exchange_weak_explicit(&tab.free_head, &h, n, memory_order_release,
                                                  memory_order_relaxed))
            return;
    }
}

static struct proc *slot_alloc(void)
{
    /* acquire: pairs with the release CAS in slot_free. */
    uint64_t h = atomic_load_explicit(&tab.free_head, memory_order_acquire);
    while ((uint32_t)h != 0) {
        struct proc *p = proc_at((uint32_t)h - 1);
        if (!p)
            break; /* cannot happen: a freed slot's chunk exists */
        /* freenext may be rewritten under us by a racing pop/push; the
         * count in the head makes such a CAS fail. */
        uint64_t nxt = __atomic_load_n(&p->freenext, __ATOMIC_RELAXED);
        uint64_t n = ((h >> 32) + 1) << 32 | (uint32_t)nxt;
        if (atomic_compare_exchange_weak_explicit(&tab.free_head, &h, n, memory_order_acquire,
                                                  memory_order_acquire))
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
        mnode_free_on(p->sched, p->held);
    p->held = n;
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
        proc_switch_out(p, Y_IDLE);
    }
}

void (*proc_entry_for(struct proc *p))(void *)
{
    return p->kind == PK_FN ? proc_main : handler_main;
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
    struct proc *self = cur_proc;
    if ((flags & (HIVE_LINK | HIVE_MONITOR)) && !self)
        return -EPERM;
    struct proc *p = slot_alloc();
    if (!p && !(p = slot_alloc_after_exits()))
        return -EAGAIN;

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
    p->stack = NULL;
    p->sched = NULL;
    p->rq_next = NULL;
    p->kind = handler ? PK_HANDLER : PK_FN;
    p->fn = fn;
    p->handler = handler;
    p->arg = arg;
    p->stack_size = opts ? opts->stack_size : 0;
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
    proc_unlock(p);
    atomic_store_explicit(&p->status, PS_RUNNABLE, memory_order_relaxed);
    struct sched *cs = cur_sched;
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

static void free_queue(struct proc *p)
{
    struct mnode *n = p->pq_head;
    while (n) {
        struct mnode *nx = (struct mnode *)atomic_load_explicit(&n->q.next, memory_order_relaxed);
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
        mnode_free((struct mnode *)qn);
    }
}

_Noreturn void proc_exit(struct proc *p, hive_reason reason)
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
     * release: pairs with the acquire in proc_live. */
    atomic_store_explicit(&p->pid, 0, memory_order_release);
    if (!quiet)
        sig_on_exit(p, self, reason);
    proc_timer_drop(p);
    if (p->io)               /* I/O hook: cancel what is in flight */
        io_proc_exit(p);
    proc_hold(p, NULL);
    if (p->held_next) {
        mnode_free(p->held_next);
        p->held_next = NULL;
    }
    free_queue(p);
    if (p->aliases.v)
        free(p->aliases.v);
    memset(&p->aliases, 0, sizeof p->aliases);
    proc_switch_out(p, Y_EXIT);
    __builtin_unreachable();
}

void proc_release(struct proc *p)
{
    struct sched *s = cur_sched;
    if (p->stack) {
        stack_put(s ? &s->stacks : NULL, p->stack);
        p->stack = NULL;
    }
    atomic_store_explicit(&p->status, PS_FREE, memory_order_relaxed);
    hive_pid self = pid_make(p->slot, p->gen);
    bool was_main = self == g_rt->main_pid;
    slot_free(p);
    /* release: the slot is on the free list before dying reads NULL;
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

bool proc_deliver(struct proc *p, struct mnode *n)
{
    if (mbox_push(&p->mbox, &n->q))
        sched_ready(p);
    return mbox_flooded(&p->mbox);
}

/* proc_deliver for a sender that knows its scheduler (NULL: foreign thread). */
static inline bool deliver_on(struct sched *s, struct proc *p, struct mnode *n)
{
    if (mbox_push(&p->mbox, &n->q))
        sched_ready_on(s, p);
    return mbox_flooded(&p->mbox);
}

int proc_send_node_flooded(hive_pid to, struct mnode *n, bool *flooded)
{
    struct proc *p;
    int rc = proc_resolve(to, &p);
    if (rc)
        return rc;
    /* acquire: pairs with the release store of pid in spawn. */
    if (atomic_load_explicit(&p->pid, memory_order_acquire) != to)
        return -ESRCH;
    n->to = to;
    *flooded = proc_deliver(p, n);
    return 0;
}

int proc_send_node(hive_pid to, struct mnode *n)
{
    bool flooded;
    return proc_send_node_flooded(to, n, &flooded);
}

/* Stops the running process. When the scheduler has another process ready
 * locally we switch straight to it (one switch per hop); otherwise to the
 * scheduler's own context. Either way the side we land on runs
 * sched_finish_prev, which publishes p (waiting, queued, released) only
 * after its registers are saved. p may resume on another scheduler. */
void proc_switch_out(struct proc *p, enum yield_why why)
{
    struct sched *s = p->sched;
    p->why = why;
    s->prev = p;
    struct proc *q = sched_pick_fast(s);
    if (q) {
        sched_prepare(s, q);
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

void proc_reduce(struct proc *p)
{
    struct sched *s = p->sched;
    if (--s->budget > 0)
        return;
    s->budget = (int)g_rt->cfg.budget;
    proc_switch_out(p, Y_YIELD);
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
        mbox_set_flooded(&p->mbox, true);
    proc_reduce(p);
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
        proc_reduce(self);
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

struct sched *proc_sched_of(struct proc *self)
{
    return self ? self->sched : cur_sched;
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
    proc_reduce(self);
}

/* The pid is resolved once. A receiver that dies between that check and
 * the push is like one that dies just after it: its drain (or the next
 * process in the slot) frees a node whose `to` is not its pid. */
/* The one path for copied messages (hive_send, hive_cast, hive_reply):
 * checks the arguments, resolves the pid once, builds the node on the
 * sender's scheduler and delivers it. A dead target is -ESRCH; whether that
 * is an error is the caller's to say. */
int proc_send_copy(uint32_t kind, hive_pid to, uint32_t tag, const void *data, size_t len,
                   hive_ref ref)
{
    if ((!data && len) || tag >= HIVE_TAG_SYSTEM)
        return -EINVAL;
    if (!g_rt)
        return -EPERM;
    if (len > g_rt->cfg.max_message)
        return -EMSGSIZE;
    struct proc *p;
    int rc = proc_resolve(to, &p);
    if (rc)
        return rc;
    /* acquire: pairs with the release store of pid in spawn. */
    if (atomic_load_explicit(&p->pid, memory_order_acquire) != to)
        return -ESRCH;
    struct proc *self = cur_proc;
    struct sched *s = self ? self->sched : cur_sched;
    struct mnode *n = mnode_make_on(s, kind, tag, data, len);
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

int hive_yield(void)
{
    struct proc *p = cur_proc;
    if (!p)
        return -EPERM;
    p->sched->budget = (int)g_rt->cfg.budget;
    proc_switch_out(p, Y_YIELD);
    /* A yield is a point where exit signals take effect, so a process that
     * only computes and yields can still be killed. */
    proc_poll_signals(p);
    return 0;
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
