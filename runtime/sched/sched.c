/*
 * The scheduler loop: finding work, spinning, parking, waking; the global
 * queue; the event-source table; thread setup. See sched.h for the order
 * in which work is found and switch.c for how processes run.
 *
 * Spinning and parking. A scheduler with nothing to do counts itself in
 * n_spinning (at most half of the schedulers spin at once) and polls for up
 * to spin_us, unless other threads of the machine are waiting for a CPU
 * (spin.h: then nobody spins for a while). Then it parks: parked = 1 and
 * n_parked++ (seq_cst), a last
 * look at every queue and source, then one io_uring_enter that submits what
 * its ring holds and waits for a completion (a wake-up) or the sources'
 * next deadline. Whoever makes work stealable (spawn, a displaced next
 * slot, the global queue, a yield behind which others wait) calls
 * sched_kick: if nobody spins and someone is parked, it claims one parked
 * scheduler (CAS parked 1 -> 0) and wakes it with one MSG_RING submission.
 * The seq_cst on both sides is a Dekker pair: either the waker sees
 * n_parked > 0, or the parker's last look sees the work. A running
 * scheduler is never woken by a system call. A wake-up that cannot be
 * submitted is not lost: it is retried on the ring of the threads outside
 * the schedulers, and if that fails too the claim is undone (parked = 1
 * again) so that the next kick tries again.
 */
#include "runtime/sched/sched.h"

#include <sched.h>
#include <signal.h>
#include <ucontext.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc/alloc.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/signal.h"
#include "runtime/proc/io.h"

struct rt *g_rt;
static _Thread_local struct sched *tls_sched;

struct sched *sched_self(void)
{
    return tls_sched;
}

struct sched_counters *sched_counters(void)
{
    struct sched *s = cur_sched;
    return s ? &s->st : &g_rt->outside_st;
}

/* ------------------------------------------------------------------ */
/* Global queue                                                        */
/* ------------------------------------------------------------------ */

/* Appends p to a FIFO of processes linked through rq_next (the global
 * queue, a scheduler's held processes). */
static inline void fifo_append(struct proc **head, struct proc **tail, struct proc *p)
{
    p->rq_next = NULL;
    if (*tail)
        (*tail)->rq_next = p;
    else
        *head = p;
    *tail = p;
}

/* Appends p at the tail; gq_lock held. */
static inline void gq_append_locked(struct proc *p)
{
    fifo_append(&g_rt->gq_head, &g_rt->gq_tail, p);
}

static void gq_push(struct proc *p)
{
    pthread_mutex_lock(&g_rt->gq_lock);
    gq_append_locked(p);
    /* seq_cst: the parker's last look (work_visible) reads gq_len. */
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
    for (uint32_t i = 0; i < k; i++)
        gq_append_locked(batch[i]);
    gq_append_locked(p);
    atomic_fetch_add_explicit(&g_rt->gq_len, k + 1, memory_order_seq_cst);
    pthread_mutex_unlock(&g_rt->gq_lock);
}

void sched_ready(struct proc *p)
{
    sched_ready_on(cur_sched, p);
}

void sched_ready_outside(struct proc *p)
{
    gq_push(p);
    sched_kick();
}

void sched_ready_bump(struct sched *s, struct proc *old)
{
    sched_enqueue(s, old);
    sched_kick();
}

void sched_ready_behind(struct sched *s, struct proc *p)
{
    if (!s) {
        sched_ready_on(s, p);
        return;
    }
    atomic_store_explicit(&p->status, PS_RUNNABLE, memory_order_relaxed);
    /* Kick only when the queue was empty, as a spawn does (proc.c). */
    bool was_empty = runq_len(&s->rq) == 0;
    sched_enqueue(s, p);
    if (was_empty)
        sched_kick();
}

/* A wake-up from the ring of the threads outside the schedulers. */
static int wake_outside(struct sched *target)
{
    pthread_mutex_lock(&g_rt->outside_lock);
    int rc = ring_wake(&g_rt->outside, ring_fd(&target->ring));
    uint64_t enters, sys, timeouts;
    ring_take_counts(&g_rt->outside, &enters, &sys, &timeouts);
    atomic_fetch_add_explicit(&g_rt->outside_st.wakeups_sent, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_rt->outside_st.ring_enters, enters, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_rt->outside_st.syscalls, enters + sys, memory_order_relaxed);
    pthread_mutex_unlock(&g_rt->outside_lock);
    return rc;
}

/* Wakes target, which this thread claimed (parked 1 -> 0). */
static void wake(struct sched *target)
{
    struct sched *s = cur_sched;
    int rc;
    if (s) {
        rc = ring_wake(&s->ring, ring_fd(&target->ring));
        STAT_INC(s, wakeups_sent);
        sched_count_ring(s);
        if (rc == 0)
            return;
        STAT_INC(s, wake_retries);
    }
    rc = wake_outside(target);
    if (rc == 0)
        return;
    /* Neither ring could carry it: give the claim back, so that the next
     * kick (the park's own last look finds the work too) tries again.
     * seq_cst: the same Dekker pair as the claim. */
    atomic_store_explicit(&target->parked, 1, memory_order_seq_cst);
}

/* Claims t if it is parked (CAS parked 1 -> 0, seq_cst: the Dekker pair
 * with its park; the caller fenced before, after publishing its work) and
 * wakes it. Whether it claimed it. */
static bool wake_if_parked(struct sched *t)
{
    int one = 1;
    if (atomic_load_explicit(&t->parked, memory_order_relaxed) == 1 &&
        atomic_compare_exchange_strong_explicit(&t->parked, &one, 0, memory_order_seq_cst,
                                                memory_order_relaxed)) {
        wake(t);
        return true;
    }
    return false;
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
        if (wake_if_parked(&g_rt->scheds[(start + i) % n]))
            return;
    }
}

void sched_wake_all(void)
{
    atomic_thread_fence(memory_order_seq_cst);
    for (unsigned i = 0; i < g_rt->n; i++)
        wake_if_parked(&g_rt->scheds[i]);
}

/* ------------------------------------------------------------------ */
/* Flooding senders (switch.c): held and moved processes               */
/* ------------------------------------------------------------------ */

void sched_hold(struct sched *s, struct proc *p)
{
    atomic_store_explicit(&p->status, PS_RUNNABLE, memory_order_relaxed);
    fifo_append(&s->held_head, &s->held_tail, p);
}

struct proc *sched_held_pop(struct sched *s)
{
    /* relaxed: a look; the exchange below is what takes them. */
    if (__builtin_expect(atomic_load_explicit(&s->moved_in, memory_order_relaxed) != NULL, 0)) {
        /* acquire: pairs with the movers' CAS, so their rq_next links and
         * everything the processes' last scheduler wrote are visible. */
        struct proc *l = atomic_exchange_explicit(&s->moved_in, NULL, memory_order_acquire);
        struct proc *fifo = NULL, *last = l;
        while (l) { /* pushed last first: reversed to the order they came */
            struct proc *nx = l->rq_next;
            l->rq_next = fifo;
            fifo = l;
            l = nx;
        }
        /* appended whole (their movers marked them runnable); only this
         * thread takes from moved_in, so the look above still holds */
        if (s->held_tail)
            s->held_tail->rq_next = fifo;
        else
            s->held_head = fifo;
        s->held_tail = last;
    }
    struct proc *p = s->held_head;
    if (p) {
        s->held_head = p->rq_next;
        if (!s->held_head)
            s->held_tail = NULL;
    }
    return p;
}

void sched_move(struct sched *s, struct sched *t, struct proc *p)
{
    atomic_store_explicit(&p->status, PS_RUNNABLE, memory_order_relaxed);
    STAT_INC(s, flood_moves);
    /* release: p's state to t's exchange (sched_held_pop). From here on
     * p is t's. Then the Dekker pair with a parking t, as for a kick: t
     * stores parked = 1 and then loads moved_in (work_visible, seq_cst),
     * we store moved_in, fence and load parked; one of us sees the other. */
    struct proc *h = atomic_load_explicit(&t->moved_in, memory_order_relaxed);
    do
        p->rq_next = h;
    while (!atomic_compare_exchange_weak_explicit(&t->moved_in, &h, p, memory_order_release,
                                                  memory_order_relaxed));
    atomic_thread_fence(memory_order_seq_cst);
    wake_if_parked(t);
}

static inline bool held_any(struct sched *s)
{
    return s->held_head || atomic_load_explicit(&s->moved_in, memory_order_seq_cst);
}

/* ------------------------------------------------------------------ */
/* Event sources                                                       */
/* ------------------------------------------------------------------ */

int sched_add_source(const struct sched_source *src)
{
    if (g_rt->nsources == SCHED_SOURCES_MAX)
        return -ENOSPC;
    g_rt->sources[g_rt->nsources++] = *src;
    return 0;
}

/* Polls every source; how much they did. */
static unsigned poll_sources(struct sched *s)
{
    unsigned did = 0;
    for (unsigned i = 0; i < g_rt->nsources; i++)
        did += g_rt->sources[i].poll(s);
    return did;
}

static bool sources_pending(struct sched *s)
{
    for (unsigned i = 0; i < g_rt->nsources; i++)
        if (g_rt->sources[i].pending && g_rt->sources[i].pending(s))
            return true;
    return false;
}

/* The earliest deadline of any source, or -1 (none) as a park timeout. */
static int64_t sources_timeout(struct sched *s)
{
    bool any = false;
    uint64_t dl = UINT64_MAX, d;
    for (unsigned i = 0; i < g_rt->nsources; i++)
        if (g_rt->sources[i].deadline && g_rt->sources[i].deadline(s, &d)) {
            any = true;
            if (d < dl)
                dl = d;
        }
    if (!any)
        return -1;
    uint64_t now = clock_precise_ns();
    return dl > now ? (int64_t)(dl - now) : 0;
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
    if (++s->tick % 61 == 0 && ((p = gq_take(s)) || (p = sched_held_pop(s))))
        return p;
    if ((p = s->next)) {
        s->next = NULL;
        *inherit = true;
        return p;
    }
    if ((p = runq_pop(&s->rq)) || (p = sched_held_pop(s)))
        return p;
    return gq_take(s);
}

/* Stealing a short queue waits until its owner has left it alone for a
 * while. A process just spawned or woken behind one or two others is
 * usually taken by its own scheduler within a microsecond or two (the
 * running process blocks, waiting for it); taken by a thief instead, its
 * record, stack and messages cross cores twice, once to run and once for
 * whoever waits on it, and on two cores that made a stream of tiny tasks
 * run at a third of one scheduler's rate. So a victim with fewer than
 * STEAL_EAGER_LEN queued is robbed only once its head has not moved for
 * the grace: its owner is busy with something long. A longer queue is
 * robbed at once (half of it), as before. The thief keeps its look per
 * victim (s->looks); head only grows, so an unchanged head means nobody
 * took anything in between.
 *
 * The grace was 3 us. gen_server_call_2c (two callers, one server) then
 * stole 42k times per million calls: the server, queued behind a caller
 * for a few microseconds, was taken by the other core and its state
 * crossed over, and a call that waited for such a steal made the p99
 * (6.5 us, against 0.3 on one scheduler). At 30 us its own scheduler
 * nearly always gets to it first: 3.54M -> 4.10M calls/s and p99 6.55 ->
 * 1.59 us (medians of 6 alternated runs), the other workloads within
 * their noise, the servers' too (docs/performance.md). 10 us was worse
 * than either (p99 13 us: the steals still happened, later). 100 us,
 * the default since, holds the p99 at 0.46-0.50 us (the steals fall
 * from 7k to 1.7k per million calls) and measured 4.26-4.37M calls/s
 * against 3.78-4.20M at 30 in five alternated pairs. Linux
 * holds a task that ran within the last 0.5 ms as cache-hot for the
 * same reason. A process queued behind one that computes for long waits
 * up to this long for an idle core. The grace is hive_config.steal_grace_us
 * (HIVE_STEAL_GRACE_US, default 100); 0 robs short queues at once too. */
#define STEAL_EAGER_LEN 3u
/* A spinner's longest wait between looks at the others' queues, in spin
 * passes of 16 pauses each (idle, below). */
#define STEAL_GAP_MAX   8u

static struct proc *steal(struct sched *s)
{
    unsigned n = g_rt->n;
    if (n < 2)
        return NULL;
    unsigned start = (unsigned)(rng_next(s) % n);
    uint64_t now = 0, grace_ns = (uint64_t)g_rt->cfg.steal_grace_us * 1000u;
    for (unsigned i = 0; i < n; i++) {
        struct sched *v = &g_rt->scheds[(start + i) % n];
        if (v == s)
            continue;
        /* relaxed: a hint; runq_steal's own loads decide */
        uint32_t h = atomic_load_explicit(&v->rq.head, memory_order_relaxed);
        uint32_t len = atomic_load_explicit(&v->rq.tail, memory_order_relaxed) - h;
        if (len == 0 || len > RUNQ_SIZE)
            continue;
        if (len < STEAL_EAGER_LEN && grace_ns) {
            struct steal_look *l = &s->looks[v->id];
            if (!now)
                now = clock_precise_ns();
            if (l->head != h || l->since_ns == 0) {
                l->head = h;
                l->since_ns = now;
                continue;
            }
            if (now - l->since_ns < grace_ns)
                continue;
        }
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
    return held_any(s) || sources_pending(s) || atomic_load(&g_rt->stopping);
}

/* Quiet trim. What a scheduler keeps warm for busy times (stacks in its
 * cache and in the global pool, free pages in the allocator) is still
 * resident after a burst: a server that took 10,000 connections at once
 * held 5.7 MB of stacks afterwards, though its handlers wait stackless. A
 * scheduler on which nothing has run for trim_ms (hive_config, default
 * 100 ms; 0: never) gives back all but
 * a few of its stacks (stack_trim) and the allocator's free pages
 * (mem_trim), once per quiet spell: a park that would outlast the spell's
 * due time is cut to it, so an idle scheduler wakes once to trim. A
 * scheduler that runs something at least every trim_ms never trims,
 * and none trims in the middle of work; the system calls (munmap,
 * madvise) are paid once per quiet spell, not per process. */

/* The park time-out, cut to the quiet spell's due trim, after the trim if
 * it is due. */
static int64_t quiet_trim(struct sched *s, int64_t timeout)
{
    if (!g_rt->cfg.trim_ms)
        return timeout;
    uint64_t now = clock_precise_ns();
    uint64_t sw = atomic_load_explicit(&s->st.switches, memory_order_relaxed);
    if (!s->quiet_since || sw != s->quiet_switches) {
        s->quiet_since = now;
        s->quiet_switches = sw;
        s->trimmed = false;
    }
    if (s->trimmed)
        return timeout;
    uint64_t due = s->quiet_since + (uint64_t)g_rt->cfg.trim_ms * 1000000u;
    if (now >= due) {
        unsigned n = stack_trim(&s->stacks, STACK_TRIM_KEEP);
        mem_trim();
        s->trimmed = true;
        STAT_INC(s, quiet_trims);
        atomic_store_explicit(&s->st.stacks_trimmed,
                              atomic_load_explicit(&s->st.stacks_trimmed, memory_order_relaxed) + n,
                              memory_order_relaxed);
        return timeout;
    }
    int64_t left = (int64_t)(due - now);
    return timeout < 0 || left < timeout ? left : timeout;
}

/* Nothing to run: spin a while, then park. Returns a process or NULL. */
static struct proc *idle(struct sched *s)
{
    bool inherit;
    struct proc *p;
    bool spinning = false;
    uint64_t now = clock_precise_ns();
    unsigned ns = atomic_load_explicit(&g_rt->n_spinning, memory_order_relaxed);
    if (ns * 2 < g_rt->n && g_rt->cfg.spin_us && spin_gov_allows(&g_rt->spin, s, now)) {
        atomic_fetch_add_explicit(&g_rt->n_spinning, 1, memory_order_seq_cst);
        spinning = true;
    }
    uint64_t until = now + (uint64_t)g_rt->cfg.spin_us * 1000u;
    if (spinning) {
        /* Its own queues and sources are looked at on every pass (its own
         * lines); the other schedulers' queues every gap passes, the gap
         * doubling up to STEAL_GAP_MAX while they hold nothing to take.
         * Each look at a victim's head and tail takes those lines from
         * the core that is pushing and popping there: looked at every
         * pass (about 0.4 us), a spinner halved the rate of the busy
         * scheduler it watched (async_stream, gen_server_call_2c). */
        unsigned gap = 1, wait = 0;
        for (unsigned it = 0;; it++) {
            if ((p = find_local(s, &inherit)))
                goto found;
            if (wait == 0) {
                if ((p = steal(s)))
                    goto found;
                if (gap < STEAL_GAP_MAX)
                    gap *= 2;
                wait = gap;
            }
            wait--;
            if (poll_sources(s) && (s->next || runq_len(&s->rq)))
                continue;
            if (atomic_load_explicit(&g_rt->stopping, memory_order_relaxed))
                goto out;
            if ((it & 15) == 15 && clock_precise_ns() >= until)
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
            sched_count_ring(s);
        }
        atomic_fetch_sub_explicit(&g_rt->n_parked, 1, memory_order_seq_cst);
        return NULL;
    }
    int64_t timeout = quiet_trim(s, sources_timeout(s));
    STAT_INC(s, parks);
    ring_park(&s->ring, timeout);
    sched_count_ring(s);
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
            sched_run(s, p);
            /* Processes switch among themselves and come back here every
             * 61st pick (switch.c): look at the sources each time. */
            poll_sources(s);
            continue;
        }
        poll_sources(s);
        if (s->next || runq_len(&s->rq) || held_any(s))
            continue;
        if (atomic_load_explicit(&g_rt->stopping, memory_order_acquire))
            return;
        if ((p = idle(s)))
            sched_run(s, p);
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
    s->looks = calloc(g_rt->n, sizeof *s->looks);
    if (!s->looks) {
        *why = "out of memory";
        return -ENOMEM;
    }
    runq_init(&s->rq);
    timer_sched_init(s);
    atomic_store(&s->parked, 0);
    unsigned flags = g_rt->cfg.sqpoll ? RING_INIT_SQPOLL : 0;
    if (g_rt->cfg.defer_taskrun)
        flags |= RING_INIT_DEFER;
    int rc = ring_init(&s->ring, g_rt->cfg.ring_entries, flags, why);
    if (rc) {
        free(s->looks);
        s->looks = NULL;
    }
    return rc;
}

void sched_fini(struct sched *s)
{
    if (s->keep) {
        sched_reclaim_idle_stack(s, s->keep);
        s->keep = NULL;
    }
    timer_sched_fini(s);
    mnode_cache_flush(&s->msgs);
    sig_cache_flush(&s->mons);
    stack_cache_flush(&s->stacks);
    io_sched_fini(s);          /* the kernel lets go of every buffer */
    ring_fini(&s->ring);
    free(s->looks);
    s->looks = NULL;
}

void *sched_thread(void *arg)
{
    struct sched *s = arg;
    tls_sched = s;
    mnode_cache_bind(&s->msgs);
    if (g_rt->cfg.pin) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncpu > 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(s->id % (unsigned)ncpu, &set);
            pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        }
    }
    /* The ring is this thread's from here (its SINGLE_ISSUER). */
    const char *why = NULL;
    int brc = ring_bind(&s->ring, &why);
    if (brc) {
        fprintf(stderr, "hive: scheduler %u: %s: %s\n", s->id, why ? why : "ring_bind",
                strerror(-brc));
        abort();
    }
    io_sched_bind(s);
    /* The receive buffers it lends (io/backend.h), set up by the thread
     * that owns the ring; without them every receive has its own. */
    if (g_rt->cfg.recv_bufs) {
        why = NULL;
        if (iob_lend_init(&s->ring, g_rt->cfg.recv_bufs, &why) == 0) {
            atomic_store_explicit(&s->st.io_recv_bufs, iob_lend_size(&s->ring) ?
                                  g_rt->cfg.recv_bufs : 0, memory_order_relaxed);
        } else {
            static _Atomic bool said;
            if (!atomic_exchange(&said, true))
                fprintf(stderr, "hive: every receive has its own buffer: %s\n",
                        why ? why : "the receive buffers could not be set up");
        }
    }
    if (g_rt->cfg.send_zc && io_ops->kind == IO_URING && !iob_have_send_zc) {
        static _Atomic bool said_zc;
        if (!atomic_exchange(&said_zc, true))
            fprintf(stderr, "hive: send_zc has no effect: this kernel's io_uring lacks "
                            "IORING_OP_SEND_ZC (Linux >= 6.0)\n");
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
    /* Every process is gone: what is left in the kernel is cancelled and
     * reaped here, by the ring's own thread (the only one a SINGLE_ISSUER
     * ring lets in); sched_fini finds nothing left. */
    io_sched_fini(s);
#if !defined(HIVE_ASAN) && !defined(HIVE_TSAN)
    if (ss.ss_sp) {
        stack_t off = { .ss_flags = SS_DISABLE };
        sigaltstack(&off, NULL);
        free(ss.ss_sp);
    }
#endif
    mnode_cache_bind(NULL);
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
    ADD(exits); ADD(backpressure_yields); ADD(wake_retries);
    ADD(io_submitted); ADD(io_completed); ADD(io_cancels);
    ADD(mailbox_rejected); ADD(mailbox_dropped); ADD(mailbox_overflow_kills);
    ADD(io_recv_bufs); ADD(io_recv_lent); ADD(io_recv_nobufs); ADD(io_send_zc);
    ADD(quiet_trims); ADD(stacks_trimmed); ADD(spin_pauses); ADD(flood_moves);
    ADD(io_timeouts);
#undef ADD
}

int hive_stats(hive_sched_stats *per, unsigned n, hive_sched_stats *total)
{
    if (!g_rt)
        return -EPERM;
    if (n && !per)
        return -EINVAL;
    uint64_t kind = (uint64_t)io_ops->kind;
    if (total) {
        memset(total, 0, sizeof *total);
        add_counters(total, &g_rt->outside_st);
        total->io_backend = kind;
    }
    for (unsigned i = 0; i < g_rt->n; i++) {
        if (i < n) {
            memset(&per[i], 0, sizeof per[i]);
            add_counters(&per[i], &g_rt->scheds[i].st);
            per[i].io_backend = kind;
        }
        if (total)
            add_counters(total, &g_rt->scheds[i].st);
    }
    return (int)g_rt->n;
}

const char *hive_io_backend(const char **why)
{
    if (why)
        *why = NULL;
    if (!g_rt)
        return NULL;
    return ring_backend(why);
}
