/*
 * The scheduler loop. See sched.h for the order in which work is found.
 *
 * Spinning and parking. A scheduler with nothing to do counts itself in
 * n_spinning (at most half of the schedulers spin at once) and polls for up
 * to spin_us. Then it parks: parked = 1 and n_parked++ (seq_cst), a last
 * look at every queue, then one io_uring_enter that waits for a wake-up or
 * its next timer deadline. Whoever makes work stealable (spawn, a displaced
 * next slot, the global queue, a yield behind which others wait) calls
 * sched_kick: if nobody spins and
 * someone is parked, it claims one parked scheduler (CAS parked 1 -> 0) and
 * wakes it with one MSG_RING submission. The seq_cst on both sides is a
 * Dekker pair: either the waker sees n_parked > 0, or the parker's last look
 * sees the work. A running scheduler is never woken by a system call.
 */
#include "runtime/sched/sched.h"

#include <sched.h>
#include <signal.h>
#include <ucontext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runtime/proc/proc.h"
#include "runtime/proc/timer.h"
#include "runtime/proc/io.h"

struct rt *g_rt;
static _Thread_local struct sched *tls_sched;

uint64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct sched_counters *sched_counters(void)
{
    struct sched *s = cur_sched;
    return s ? &s->st : &g_rt->outside_st;
}

/* ------------------------------------------------------------------ */
/* Global queue                                                        */
/* ------------------------------------------------------------------ */

static void gq_push(struct proc *p)
{
    pthread_mutex_lock(&g_rt->gq_lock);
    p->rq_next = NULL;
    if (g_rt->gq_tail)
        g_rt->gq_tail->rq_next = p;
    else
        g_rt->gq_head = p;
    g_rt->gq_tail = p;
    atomic_fetch_add_explicit(&g_rt->gq_len, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&g_rt->gq_lock);
}

/* Takes a fair share of the global queue: one to run, the rest into s's
 * local queue. */
static struct proc *gq_take(struct sched *s)
{
    if (atomic_load_explicit(&g_rt->gq_len, memory_order_relaxed) == 0)
        return NULL;
    pthread_mutex_lock(&g_rt->gq_lock);
    uint32_t len = atomic_load_explicit(&g_rt->gq_len, memory_order_relaxed);
    uint32_t n = len / g_rt->n + 1;
    if (n > len)
        n = len;
    if (n > RUNQ_SIZE / 2)
        n = RUNQ_SIZE / 2;
    uint32_t room = RUNQ_SIZE - runq_len(&s->rq);
    if (n > room + 1)
        n = room + 1;
    struct proc *first = NULL;
    for (uint32_t i = 0; i < n; i++) {
        struct proc *p = g_rt->gq_head;
        g_rt->gq_head = p->rq_next;
        if (!g_rt->gq_head)
            g_rt->gq_tail = NULL;
        if (!first)
            first = p;
        else
            runq_push(&s->rq, p); /* fits: only we push to our queue, and n <= room + 1 */
    }
    atomic_fetch_sub_explicit(&g_rt->gq_len, n, memory_order_relaxed);
    pthread_mutex_unlock(&g_rt->gq_lock);
    return first;
}

/* ------------------------------------------------------------------ */
/* Making processes runnable                                           */
/* ------------------------------------------------------------------ */

void sched_enqueue(struct sched *s, struct proc *p)
{
    if (runq_push(&s->rq, p))
        return;
    /* Full: move half of it, plus p, to the global queue. */
    void *batch[RUNQ_SIZE / 2];
    uint32_t k = runq_take(&s->rq, batch, RUNQ_SIZE / 2);
    pthread_mutex_lock(&g_rt->gq_lock);
    for (uint32_t i = 0; i <= k; i++) {
        struct proc *q = i < k ? batch[i] : p;
        q->rq_next = NULL;
        if (g_rt->gq_tail)
            g_rt->gq_tail->rq_next = q;
        else
            g_rt->gq_head = q;
        g_rt->gq_tail = q;
    }
    atomic_fetch_add_explicit(&g_rt->gq_len, k + 1, memory_order_seq_cst);
    pthread_mutex_unlock(&g_rt->gq_lock);
}

void sched_ready(struct proc *p)
{
    sched_ready_on(cur_sched, p);
}

void sched_ready_on(struct sched *s, struct proc *p)
{
    atomic_store_explicit(&p->status, PS_RUNNABLE, memory_order_relaxed);
    if (!s) {
        gq_push(p);
        sched_kick();
        return;
    }
    /* LIFO slot: the process woken by the running one runs next, here,
     * while what it needs is still in this core's cache. */
    struct proc *old = s->next;
    s->next = p;
    if (old) {
        sched_enqueue(s, old);
        sched_kick();
    }
}

static void wake(struct sched *target)
{
    struct sched *s = cur_sched;
    if (s) {
        ring_wake(&s->ring, ring_fd(&target->ring));
        STAT_INC(s, wakeups_sent);
        STAT_INC(s, ring_enters);
        STAT_INC(s, syscalls);
    } else {
        pthread_mutex_lock(&g_rt->outside_lock);
        ring_wake(&g_rt->outside, ring_fd(&target->ring));
        atomic_fetch_add_explicit(&g_rt->outside_st.wakeups_sent, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_rt->outside_st.ring_enters, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_rt->outside_st.syscalls, 1, memory_order_relaxed);
        pthread_mutex_unlock(&g_rt->outside_lock);
    }
}

void sched_kick(void)
{
    /* seq_cst: the Dekker pair with the parker (see the top of this file). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&g_rt->n_spinning, memory_order_relaxed) != 0 ||
        atomic_load_explicit(&g_rt->n_parked, memory_order_relaxed) == 0)
        return;
    unsigned n = g_rt->n;
    struct sched *cs = cur_sched;
    unsigned start = cs ? cs->id + 1 : 0;
    for (unsigned i = 0; i < n; i++) {
        struct sched *t = &g_rt->scheds[(start + i) % n];
        int one = 1;
        if (atomic_load_explicit(&t->parked, memory_order_relaxed) == 1 &&
            atomic_compare_exchange_strong_explicit(&t->parked, &one, 0, memory_order_seq_cst,
                                                    memory_order_relaxed)) {
            wake(t);
            return;
        }
    }
}

void sched_wake_all(void)
{
    for (unsigned i = 0; i < g_rt->n; i++) {
        struct sched *t = &g_rt->scheds[i];
        int one = 1;
        if (atomic_compare_exchange_strong_explicit(&t->parked, &one, 0, memory_order_seq_cst,
                                                    memory_order_relaxed))
            wake(t);
    }
}

/* ------------------------------------------------------------------ */
/* Running a process                                                   */
/* ------------------------------------------------------------------ */

void (*proc_entry_for(struct proc *p))(void *);

static void stack_overflow(struct proc *p)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "hive: process %#llx: stack overflow (canary overwritten)\n",
                     (unsigned long long)pid_make(p->slot, p->gen));
    if (write(2, buf, (size_t)n) < 0) { /* nothing more to do */ }
    abort();
}

/* Takes back the stack an idle handler kept, unless it took it first (it
 * ran again; it may be anywhere now, even gone and its slot reused). */
static void sched_reclaim_idle_stack(struct sched *s, struct proc *p)
{
    /* acq_rel: pairs with the exchange in sched_prepare. */
    struct stack *st = atomic_exchange_explicit(&p->idle_stack, NULL, memory_order_acq_rel);
    if (st)
        stack_put(&s->stacks, st);
}

/* Gets p ready to be switched to on s: a stack if it has none, and the
 * bookkeeping of "p runs on s now". */
void sched_prepare(struct sched *s, struct proc *p)
{
    if (!p->stack) {
        /* An idle handler whose stack was not reclaimed resumes on it, in
         * its loop; otherwise it starts afresh at its entry, which holds
         * nothing between messages. acq_rel: pairs with the exchange of a
         * reclaiming scheduler; one of the two gets the stack. */
        struct stack *st;
        if (atomic_load_explicit(&p->idle_stack, memory_order_relaxed) &&
            (st = atomic_exchange_explicit(&p->idle_stack, NULL, memory_order_acq_rel))) {
            p->stack = st;
            goto ready;
        }
        p->stack = stack_get(&s->stacks, p->stack_size);
        if (!p->stack) {
            fprintf(stderr, "hive: out of memory for a process stack\n");
            abort();
        }
        p->canary = !p->stack->guarded;
        ctx_init(&p->ctx, p->stack->lo, p->stack->size, proc_entry_for(p), p);
        p->ctx.tsan_fiber = p->stack->tsan_fiber;
    }
ready:
    proc_set_self(p);
    p->sched = s;
    atomic_store_explicit(&p->status, PS_RUNNING, memory_order_relaxed);
    STAT_INC(s, switches);
}

/* The after-switch hook: runs first thing on whatever stack was switched
 * to, once the process that stopped (s->prev) has its registers saved.
 * Only now may that process become visible to other schedulers. */
void sched_finish_prev(struct sched *s)
{
    struct proc *p = s->prev;
    if (!p)
        return;
    s->prev = NULL;
    if (p->canary && !stack_intact(p->stack))
        stack_overflow(p);
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
    case Y_EXIT:
        proc_release(p);
        break;
    }
}

/* The next process to switch to directly from a process that stops, or
 * NULL to go through the scheduler loop (which also looks at the global
 * queue, timers and the ring). Every 61st pick goes through the loop. */
struct proc *sched_pick_fast(struct sched *s)
{
    if (++s->tick % 61 == 0)
        return NULL;
    struct proc *p = s->next;
    if (p) {
        s->next = NULL;     /* inherits the current slice */
        return p;
    }
    if ((p = runq_pop(&s->rq)))
        s->budget = (int)g_rt->cfg.budget;
    return p;
}

struct sched *sched_self(void)
{
    return tls_sched;
}

static void run(struct sched *s, struct proc *p)
{
    sched_prepare(s, p);
    ctx_switch(&s->ctx, &p->ctx, false);
    /* Back on the scheduler's stack. */
    proc_set_self(NULL);
    sched_finish_prev(s);
}

/* ------------------------------------------------------------------ */
/* Finding work                                                        */
/* ------------------------------------------------------------------ */

static inline uint64_t rng_next(struct sched *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static struct proc *find_local(struct sched *s, bool *inherit)
{
    *inherit = false;
    struct proc *p;
    if (++s->tick % 61 == 0 && (p = gq_take(s)))
        return p;
    if ((p = s->next)) {
        s->next = NULL;
        *inherit = true;
        return p;
    }
    if ((p = runq_pop(&s->rq)))
        return p;
    return gq_take(s);
}

static struct proc *steal(struct sched *s)
{
    unsigned n = g_rt->n;
    if (n < 2)
        return NULL;
    unsigned start = (unsigned)(rng_next(s) % n);
    for (unsigned i = 0; i < n; i++) {
        struct sched *v = &g_rt->scheds[(start + i) % n];
        if (v == s)
            continue;
        struct proc *p = runq_steal(&v->rq, &s->rq);
        if (p) {
            STAT_INC(s, steals);
            return p;
        }
    }
    return NULL;
}

static bool work_visible(struct sched *s)
{
    if (atomic_load_explicit(&g_rt->gq_len, memory_order_seq_cst) != 0)
        return true;
    for (unsigned i = 0; i < g_rt->n; i++)
        if (runq_len(&g_rt->scheds[i].rq) != 0)
            return true;
    return timer_pending_cancels(s) || atomic_load(&g_rt->stopping);
}

static void poll_timers(struct sched *s)
{
    if (s->wheel.count == 0 && !timer_pending_cancels(s))
        return;
    s->now_ns = clock_ns();
    timer_poll(s, s->now_ns);
}

/* Nothing to run: spin a while, then park. Returns a process or NULL. */
static struct proc *idle(struct sched *s)
{
    bool inherit;
    struct proc *p;
    bool spinning = false;
    unsigned ns = atomic_load_explicit(&g_rt->n_spinning, memory_order_relaxed);
    if (ns * 2 < g_rt->n) {
        atomic_fetch_add_explicit(&g_rt->n_spinning, 1, memory_order_seq_cst);
        spinning = true;
    }
    uint64_t until = clock_ns() + (uint64_t)g_rt->cfg.spin_us * 1000u;
    if (spinning) {
        for (unsigned it = 0;; it++) {
            if ((p = find_local(s, &inherit)) || (p = steal(s)))
                goto found;
            poll_timers(s);
            if (s->next || runq_len(&s->rq))
                continue;
            if (ring_reap(&s->ring) && (s->next || runq_len(&s->rq)))
                continue;
            if (atomic_load_explicit(&g_rt->stopping, memory_order_relaxed))
                goto out;
            if ((it & 15) == 15 && clock_ns() >= until)
                break;
            for (int k = 0; k < 16; k++)
                cpu_relax();
        }
        atomic_fetch_sub_explicit(&g_rt->n_spinning, 1, memory_order_seq_cst);
        spinning = false;
    }

    /* Park. */
    atomic_store_explicit(&s->parked, 1, memory_order_seq_cst);
    atomic_fetch_add_explicit(&g_rt->n_parked, 1, memory_order_seq_cst);
    if (work_visible(s)) {
        int one = 1;
        if (!atomic_compare_exchange_strong_explicit(&s->parked, &one, 0, memory_order_seq_cst,
                                                     memory_order_relaxed)) {
            /* a waker claimed us: its wake-up will arrive; take it now */
            ring_park(&s->ring, 0);
            STAT_INC(s, ring_enters);
            STAT_INC(s, syscalls);
        }
        atomic_fetch_sub_explicit(&g_rt->n_parked, 1, memory_order_seq_cst);
        return NULL;
    }
    int64_t timeout = -1;
    uint64_t dl;
    if (timer_next(s, &dl)) {
        uint64_t now = clock_ns();
        timeout = dl > now ? (int64_t)(dl - now) : 0;
    }
    STAT_INC(s, parks);
    STAT_INC(s, ring_enters);
    STAT_INC(s, syscalls);
    ring_park(&s->ring, timeout);
    atomic_store_explicit(&s->parked, 0, memory_order_seq_cst);
    atomic_fetch_sub_explicit(&g_rt->n_parked, 1, memory_order_seq_cst);
    return NULL;

found:
    if (spinning) {
        /* The last spinner found work: let another look, there may be more. */
        if (atomic_fetch_sub_explicit(&g_rt->n_spinning, 1, memory_order_seq_cst) == 1)
            sched_kick();
    }
    if (!inherit)
        s->budget = (int)g_rt->cfg.budget;
    return p;
out:
    if (spinning)
        atomic_fetch_sub_explicit(&g_rt->n_spinning, 1, memory_order_seq_cst);
    return NULL;
}

static void loop(struct sched *s)
{
    for (;;) {
        bool inherit;
        struct proc *p = find_local(s, &inherit);
        if (!p && (p = steal(s)))
            inherit = false;
        if (p) {
            if (!inherit)
                s->budget = (int)g_rt->cfg.budget;
            run(s, p);
            /* Processes switch among themselves and come back here every
             * 61st pick (sched_pick_fast): look at the timers each time. */
            poll_timers(s);
            io_poll(s);        /* I/O hook: submit this pass's I/O, reap */
            continue;
        }
        poll_timers(s);
        io_poll(s);            /* I/O hook: submit this pass's I/O, reap */
        if (s->next || runq_len(&s->rq))
            continue;
        if (atomic_load_explicit(&g_rt->stopping, memory_order_acquire))
            return;
        if ((p = idle(s)))
            run(s, p);
    }
}

/* ------------------------------------------------------------------ */
/* Thread setup                                                        */
/* ------------------------------------------------------------------ */

#if !defined(HIVE_ASAN) && !defined(HIVE_TSAN)
static void on_segv(int sig, siginfo_t *si, void *uc)
{
    struct proc *p = cur_proc;
    uintptr_t sp = 0;
#if defined(__x86_64__)
    sp = (uintptr_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    sp = (uintptr_t)((ucontext_t *)uc)->uc_mcontext.sp;
#endif
    /* A frame larger than the guard page can jump past it: the stack
     * pointer below the stack's lowest byte tells that case. */
    if (p && p->stack &&
        (stack_in_guard(p->stack, si->si_addr) ||
         (sp && sp < (uintptr_t)p->stack->lo + 512 &&
          sp + (1u << 20) > (uintptr_t)p->stack->lo))) {
        char buf[128];
        int n = snprintf(buf, sizeof buf, "hive: process %#llx: stack overflow (%s)\n",
                         (unsigned long long)pid_make(p->slot, p->gen),
                         stack_in_guard(p->stack, si->si_addr) ? "guard page hit"
                                                               : "stack pointer below the stack");
        if (write(2, buf, (size_t)n) < 0) { /* nothing more to do */ }
        abort();
    }
    /* Not ours: let the default action happen when the access repeats. */
    signal(sig, SIG_DFL);
}
#endif

int sched_init(struct sched *s, unsigned id, const char **why)
{
    memset(s, 0, sizeof *s);
    s->id = id;
    s->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)id << 32 | (id + 1));
    runq_init(&s->rq);
    timer_sched_init(s);
    atomic_store(&s->parked, 0);
    int rc = ring_init(&s->ring, g_rt->cfg.ring_entries, g_rt->cfg.sqpoll, why);
    return rc;
}

void sched_fini(struct sched *s)
{
    if (s->keep) {
        sched_reclaim_idle_stack(s, s->keep);
        s->keep = NULL;
    }
    timer_sched_fini(s);
    mnode_cache_flush(s);
    sig_cache_flush(s);
    stack_cache_flush(&s->stacks);
    io_sched_fini(s);          /* I/O hook: the kernel lets go of every buffer */
    ring_fini(&s->ring);
}

void *sched_thread(void *arg)
{
    struct sched *s = arg;
    tls_sched = s;
    if (g_rt->cfg.pin) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncpu > 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(s->id % (unsigned)ncpu, &set);
            pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        }
    }
    char name[16];
    snprintf(name, sizeof name, "hive-sched-%u", s->id);
    pthread_setname_np(pthread_self(), name);

    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *lo;
        size_t sz;
        pthread_attr_getstack(&attr, &lo, &sz);
        s->ctx.stack_lo = lo;
        s->ctx.stack_size = sz;
        pthread_attr_destroy(&attr);
    }
#ifdef HIVE_TSAN
    s->ctx.tsan_fiber = __tsan_get_current_fiber();
#endif
#if !defined(HIVE_ASAN) && !defined(HIVE_TSAN)
    /* An alternate signal stack, so a guard-page hit can be reported. */
    stack_t ss;
    ss.ss_size = 64 * 1024;
    ss.ss_sp = malloc(ss.ss_size);
    ss.ss_flags = 0;
    if (ss.ss_sp)
        sigaltstack(&ss, NULL);
#endif
    loop(s);
#if !defined(HIVE_ASAN) && !defined(HIVE_TSAN)
    if (ss.ss_sp) {
        stack_t off = { .ss_flags = SS_DISABLE };
        sigaltstack(&off, NULL);
        free(ss.ss_sp);
    }
#endif
    tls_sched = NULL;
    return NULL;
}

void sched_install_segv(void)
{
#if !defined(HIVE_ASAN) && !defined(HIVE_TSAN)
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
#endif
}

/* ------------------------------------------------------------------ */
/* Refs and stats                                                      */
/* ------------------------------------------------------------------ */

/* Blocks of 4096 from the shared counter: one atomic per 4096 refs. The
 * thread-local block is touched only here, out of line (HIVE_TLS_ACCESSOR),
 * so no caller can keep its address across a switch. */
static HIVE_TLS_ACCESSOR uint64_t next_ref(void)
{
    static _Thread_local uint64_t local_next, local_end;
    if (local_next == local_end) {
        local_next = atomic_fetch_add_explicit(&g_rt->ref_counter, 4096, memory_order_relaxed);
        local_end = local_next + 4096;
    }
    return ++local_next;
}

hive_ref hive_make_ref(void)
{
    if (!g_rt)
        return (hive_ref){ 0, 0 };
    return (hive_ref){ g_rt->base_ns, next_ref() };
}

static void add_counters(hive_sched_stats *o, struct sched_counters *c)
{
#define ADD(f) o->f += atomic_load_explicit(&c->f, memory_order_relaxed)
    ADD(msgs_sent); ADD(msgs_received); ADD(switches); ADD(steals); ADD(parks);
    ADD(wakeups_sent); ADD(ring_enters); ADD(syscalls); ADD(timers_armed);
    ADD(timers_fired); ADD(timers_cancelled); ADD(late_replies_dropped); ADD(spawns);
    ADD(exits); ADD(backpressure_yields);
    ADD(io_submitted); ADD(io_completed); ADD(io_cancels);
#undef ADD
}

int hive_stats(hive_sched_stats *per, unsigned n, hive_sched_stats *total)
{
    if (!g_rt)
        return -EPERM;
    if (n && !per)
        return -EINVAL;
    if (total) {
        memset(total, 0, sizeof *total);
        add_counters(total, &g_rt->outside_st);
    }
    for (unsigned i = 0; i < g_rt->n; i++) {
        if (i < n) {
            memset(&per[i], 0, sizeof per[i]);
            add_counters(&per[i], &g_rt->scheds[i].st);
        }
        if (total)
            add_counters(total, &g_rt->scheds[i].st);
    }
    return (int)g_rt->n;
}
