#include "runtime/proc/timer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/alloc.h"
#include "io/clock.h"
#include "runtime/proc/msg.h"
#include "runtime/proc/proc.h"
#include "runtime/sched/sched.h"
#include "runtime/ds/wheel.h"

enum { ST_FREE = 0, ST_ARMED = 1, ST_FIRED = 2, ST_CANCELLED = 3 };
enum { TK_WAKE, TK_SEND, TK_INTERVAL };

struct tentry {
    struct wentry w;                  /* owner: wheel link */
    _Atomic uint64_t state;           /* gen << 2 | ST_* */
    _Atomic(struct tentry *) cnext;   /* link on the owner's cancel stack */
    _Atomic uint64_t deadline_ns;     /* next firing, absolute */
    struct tentry *fnext;             /* owner: free list */
    struct sched *owner;
    uint32_t idx, gen;
    uint8_t  kind;
    uint32_t seq;
    hive_pid to;
    uint64_t interval_ticks;
    struct mnode *msg;                /* SEND: to deliver; INTERVAL: template */
};

#define TCHUNK_SHIFT 10
#define TCHUNK (1u << TCHUNK_SHIFT)
#define TCHUNKS_MAX (1u << 14)

static struct {
    _Atomic(struct tentry *) chunks[TCHUNKS_MAX];
    _Atomic uint32_t fresh;
    pthread_mutex_t lock;
} tt = { .lock = PTHREAD_MUTEX_INITIALIZER };

void timer_global_init(void)
{
    atomic_store(&tt.fresh, 0);
    clock_init();
}

void timer_global_fini(void)
{
    for (unsigned i = 0; i < TCHUNKS_MAX; i++) {
        struct tentry *c = atomic_load(&tt.chunks[i]);
        if (c) {
            mem_unmap(c, sizeof(struct tentry) * TCHUNK);
            atomic_store(&tt.chunks[i], NULL);
        }
    }
}

static struct tentry *entry_at(uint32_t idx)
{
    if (idx >= TCHUNKS_MAX * TCHUNK)
        return NULL;
    /* acquire: pairs with the release store of the chunk. */
    struct tentry *c = atomic_load_explicit(&tt.chunks[idx >> TCHUNK_SHIFT], memory_order_acquire);
    return c ? &c[idx & (TCHUNK - 1)] : NULL;
}

static struct tentry *entry_alloc(struct sched *s)
{
    struct tentry *e = s->timers.free;
    if (e) {
        s->timers.free = e->fnext;
        return e;
    }
    uint32_t idx = atomic_fetch_add_explicit(&tt.fresh, 1, memory_order_relaxed);
    if (idx >= TCHUNKS_MAX * TCHUNK)
        return NULL;
    e = entry_at(idx);
    if (!e) {
        pthread_mutex_lock(&tt.lock);
        unsigned ci = idx >> TCHUNK_SHIFT;
        struct tentry *c = atomic_load_explicit(&tt.chunks[ci], memory_order_relaxed);
        if (!c) {
            c = mem_map(sizeof(struct tentry) * TCHUNK);
            if (c) {
                for (unsigned i = 0; i < TCHUNK; i++) {
                    c[i].idx = (ci << TCHUNK_SHIFT) + i;
                    c[i].w.level = -2;
                }
                atomic_store_explicit(&tt.chunks[ci], c, memory_order_release);
            }
        }
        pthread_mutex_unlock(&tt.lock);
        if (!c)
            return NULL;
        e = &c[idx & (TCHUNK - 1)];
    }
    return e;
}

static void entry_free(struct sched *s, struct tentry *e)
{
    if (e->msg) {
        mnode_free(e->msg);
        e->msg = NULL;
    }
    e->gen++;
    /* release: a late cancel with the old generation fails its CAS. */
    atomic_store_explicit(&e->state, (uint64_t)e->gen << 2 | ST_FREE, memory_order_release);
    e->fnext = s->timers.free;
    s->timers.free = e;
}

static inline uint64_t tick_of(uint64_t ns)
{
    return (ns - g_rt->base_ns + 999999) / 1000000;  /* round up: never early */
}

static uint64_t arm_at(struct sched *s, struct tentry *e, uint8_t kind, hive_pid to,
                       uint64_t deadline);

static uint64_t arm(struct sched *s, struct tentry *e, uint8_t kind, hive_pid to, int64_t ms)
{
    return arm_at(s, e, kind, to, clock_precise_ns() + (uint64_t)ms * 1000000u);
}

static uint64_t arm_at(struct sched *s, struct tentry *e, uint8_t kind, hive_pid to,
                       uint64_t deadline)
{
    e->owner = s;
    e->kind = kind;
    e->to = to;
    e->w.tick = tick_of(deadline);
    atomic_store_explicit(&e->deadline_ns, deadline, memory_order_relaxed);
    atomic_store_explicit(&e->cnext, NULL, memory_order_relaxed);
    if (e->gen == 0)
        e->gen = 1;
    /* release: the fields above before anyone can cancel by id. */
    atomic_store_explicit(&e->state, (uint64_t)e->gen << 2 | ST_ARMED, memory_order_release);
    wheel_insert(&s->timers.wheel, &e->w);
    /* it fires once the clock reaches its tick (timer_poll) */
    uint64_t at = g_rt->base_ns + e->w.tick * 1000000u;
    if (at < s->timers.due_ns)
        s->timers.due_ns = at;
    STAT_INC(s, timers_armed);
    return (uint64_t)e->gen << 32 | (e->idx + 1);
}

uint64_t timer_arm_wake(struct sched *s, hive_pid pid, uint32_t seq, uint64_t deadline_ns)
{
    struct tentry *e = entry_alloc(s);
    if (!e)
        return 0;
    e->seq = seq;
    e->msg = NULL;
    return arm_at(s, e, TK_WAKE, pid, deadline_ns);
}

/* Cancels by id; with want_left, the ms it had left (one clock read). */
static int64_t cancel(uint64_t id, bool want_left)
{
    uint32_t idx = (uint32_t)id - 1;
    uint32_t gen = (uint32_t)(id >> 32);
    if ((uint32_t)id == 0 || idx >= atomic_load_explicit(&tt.fresh, memory_order_relaxed))
        return -ENOENT;
    struct tentry *e = entry_at(idx);
    if (!e)
        return -ENOENT;
    uint64_t expect = (uint64_t)gen << 2 | ST_ARMED;
    /* acq_rel: acquire pairs with arm's release (we read owner, deadline);
     * winning this CAS makes us the one who has the entry freed. */
    if (!atomic_compare_exchange_strong_explicit(&e->state, &expect,
                                                 (uint64_t)gen << 2 | ST_CANCELLED,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return -ENOENT;
    int64_t left = 0;
    if (want_left) {
        uint64_t now = clock_precise_ns();
        uint64_t dl = atomic_load_explicit(&e->deadline_ns, memory_order_relaxed);
        left = dl > now ? (int64_t)((dl - now + 999999) / 1000000) : 0;
    }
    struct sched *s = cur_sched;
    struct sched *owner = e->owner;
    if (s == owner) {
        wheel_remove(&s->timers.wheel, &e->w);
        entry_free(s, e);
        STAT_INC(s, timers_cancelled);
    } else {
        struct tentry *h = atomic_load_explicit(&owner->timers_in.cancels, memory_order_relaxed);
        do {
            atomic_store_explicit(&e->cnext, h, memory_order_relaxed);
            /* release: pairs with the owner's acquire exchange in timer_poll. */
        } while (!atomic_compare_exchange_weak_explicit(&owner->timers_in.cancels, &h, e,
                                                        memory_order_release,
                                                        memory_order_relaxed));
    }
    return left;
}

int64_t timer_cancel_id(uint64_t id)
{
    return cancel(id, true);
}

void timer_cancel_wake(uint64_t id)
{
    cancel(id, false);
}

static void fire(struct wentry *w, void *ctx)
{
    struct sched *s = ctx;
    struct tentry *e = (struct tentry *)w;
    uint64_t armed = (uint64_t)e->gen << 2 | ST_ARMED;
    if (e->kind == TK_INTERVAL) {
        if (atomic_load_explicit(&e->state, memory_order_acquire) != armed)
            return; /* cancelled: its cancel record frees it */
        struct mnode *t = e->msg;
        struct mnode *n = mnode_make(MK_USER, t->msg.tag, t + 1, t->msg.len);
        int rc = -ENOMEM;
        if (n) {
            n->msg.ref = t->msg.ref;
            n->msg.from = HIVE_NOPID;
            rc = proc_send_node(e->to, n);
            if (rc)
                mnode_free(n);
        }
        STAT_INC(s, timers_fired);
        if (rc == -ESRCH || rc == -EINVAL) {
            /* the target is gone: the interval ends with it */
            uint64_t exp = armed;
            if (atomic_compare_exchange_strong_explicit(&e->state, &exp,
                                                        (uint64_t)e->gen << 2 | ST_FIRED,
                                                        memory_order_acq_rel,
                                                        memory_order_relaxed))
                entry_free(s, e);
            return;
        }
        uint64_t dl = atomic_load_explicit(&e->deadline_ns, memory_order_relaxed) +
                      e->interval_ticks * 1000000u;
        e->w.tick += e->interval_ticks;
        if (e->w.tick <= s->timers.wheel.now) {   /* fell behind: skip, don't burst */
            e->w.tick = s->timers.wheel.now + 1;
            dl = g_rt->base_ns + e->w.tick * 1000000u;
        }
        atomic_store_explicit(&e->deadline_ns, dl, memory_order_relaxed);
        wheel_insert(&s->timers.wheel, &e->w);
        return;
    }
    uint64_t exp = armed;
    if (!atomic_compare_exchange_strong_explicit(&e->state, &exp, (uint64_t)e->gen << 2 | ST_FIRED,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return; /* lost to a cancel: its record frees the entry */
    STAT_INC(s, timers_fired);
    if (e->kind == TK_WAKE) {
        struct mnode *n = mnode_alloc(0);
        if (n) {
            n->kind = MK_TIMEOUT;
            n->aux = e->seq;
            if (proc_send_node(e->to, n))
                mnode_free(n);
        }
    } else {
        struct mnode *n = e->msg;
        e->msg = NULL;
        if (proc_send_node(e->to, n))
            mnode_free(n);
    }
    entry_free(s, e);
}

static bool pending_cancels(struct sched *s)
{
    return atomic_load_explicit(&s->timers_in.cancels, memory_order_relaxed) != NULL;
}

/* Owner: cancels from other threads, then fire what is due. */
static void timer_poll(struct sched *s, uint64_t now_ns)
{
    if (atomic_load_explicit(&s->timers_in.cancels, memory_order_relaxed)) {
        /* acquire: pairs with the release CAS of the cancellers. */
        struct tentry *e = atomic_exchange_explicit(&s->timers_in.cancels, NULL, memory_order_acquire);
        while (e) {
            struct tentry *nx = atomic_load_explicit(&e->cnext, memory_order_relaxed);
            wheel_remove(&s->timers.wheel, &e->w);
            entry_free(s, e);
            STAT_INC(s, timers_cancelled);
            e = nx;
        }
    }
    uint64_t next;
    if (!wheel_next(&s->timers.wheel, &next))
        return;
    uint64_t cur = (now_ns - g_rt->base_ns) / 1000000;
    if (next <= cur)
        wheel_advance(&s->timers.wheel, cur, fire, s);
}

/* When the next timer is due (absolute ns); false if none. */
static bool next_deadline(struct sched *s, uint64_t *deadline_ns)
{
    uint64_t t;
    if (!wheel_next(&s->timers.wheel, &t))
        return false;
    *deadline_ns = g_rt->base_ns + t * 1000000u;
    return true;
}

/* The scheduler loop's view of the timers (struct sched_source), asked on
 * every pass: the clock is read only when something is armed or a cancel
 * waits. A process that calls with a time-out keeps a timer armed (its
 * receive timer, reused from call to call: receive.c), so that was a
 * precise clock read, 22 ns here, per pass: 5% of gen_server_call_2c's
 * cycles. The coarse clock (the time of the last kernel tick, 3-4 ns, never
 * ahead of the precise one and behind it by at most a tick while ticks
 * run) says when nothing can be due yet: due_ns, the earliest time
 * anything in the wheel fires, is more than a tick away. Timers still
 * fire only after a precise read says their time has come, so never
 * early; at most CLOCK_COARSE_SKIPS passes trust the coarse clock in a row
 * (io/clock.h, clock_not_yet). */
static unsigned poll_source(struct sched *s)
{
    struct timer_local *t = &s->timers;
    bool cancels = pending_cancels(s);
    if (t->wheel.count == 0 && !cancels)
        return 0;
    if (cancels)
        t->skips = 0;
    else if (clock_not_yet(t->due_ns, &t->skips))
        return 0;
    uint64_t fired = atomic_load_explicit(&s->st.timers_fired, memory_order_relaxed);
    s->now_ns = clock_precise_ns();
    timer_poll(s, s->now_ns);
    uint64_t tick;
    t->due_ns = wheel_next(&t->wheel, &tick) ? g_rt->base_ns + tick * 1000000u : UINT64_MAX;
    return (unsigned)(atomic_load_explicit(&s->st.timers_fired, memory_order_relaxed) - fired);
}

const struct sched_source timer_source = {
    .name = "timers",
    .poll = poll_source,
    .pending = pending_cancels,
    .deadline = next_deadline,
};

void timer_sched_init(struct sched *s)
{
    wheel_init(&s->timers.wheel, 0);
    s->timers.free = NULL;
    atomic_store(&s->timers_in.cancels, NULL);
}

static void drop_entry(struct wentry *w, void *ctx)
{
    struct tentry *e = (struct tentry *)w;
    (void)ctx;
    if (e->msg) {
        mnode_free(e->msg);
        e->msg = NULL;
    }
}

void timer_sched_fini(struct sched *s)
{
    /* Pending cancels first (they are still linked), then everything left. */
    struct tentry *e = atomic_exchange(&s->timers_in.cancels, NULL);
    while (e) {
        struct tentry *nx = atomic_load_explicit(&e->cnext, memory_order_relaxed);
        wheel_remove(&s->timers.wheel, &e->w);
        drop_entry(&e->w, NULL);
        e = nx;
    }
    for (int l = 0; l < WHEEL_LEVELS; l++)
        for (int k = 0; k < WHEEL_SLOTS; k++)
            while (s->timers.wheel.slots[l][k].next != &s->timers.wheel.slots[l][k]) {
                struct wentry *w = s->timers.wheel.slots[l][k].next;
                wheel_remove(&s->timers.wheel, w);
                drop_entry(w, NULL);
            }
    while (s->timers.wheel.due.next != &s->timers.wheel.due) {
        struct wentry *w = s->timers.wheel.due.next;
        wheel_remove(&s->timers.wheel, w);
        drop_entry(w, NULL);
    }
}

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

static int timer_start(hive_pid to, uint32_t tag, const void *data, size_t len, int64_t ms,
                       bool interval, hive_timer *out)
{
    if (ms < 0 || (interval && ms == 0) || (uint64_t)ms >= (WHEEL_MAX_TICKS >> 1))
        return -EINVAL;
    struct proc *p;
    int rc = proc_check_send(to, tag, data, len, &p);
    if (rc)
        return rc;
    struct sched *s = cur_sched;
    if (!s)
        return -EPERM;
    struct tentry *e = entry_alloc(s);
    if (!e)
        return -ENOMEM;
    struct mnode *n = mnode_make(MK_USER, tag, data, len);
    if (!n) {
        e->fnext = s->timers.free;
        s->timers.free = e;
        return -ENOMEM;
    }
    n->msg.from = HIVE_NOPID;
    e->msg = n;
    e->interval_ticks = interval ? (uint64_t)ms : 0;
    if (e->gen == 0)
        e->gen = 1;
    uint64_t id = (uint64_t)e->gen << 32 | (e->idx + 1);
    n->msg.ref = (hive_ref){ 0, id };
    arm(s, e, interval ? TK_INTERVAL : TK_SEND, to, ms);
    if (out)
        out->id = id;
    return 0;
}

int hive_send_after(hive_pid to, uint32_t tag, const void *data, size_t len, int64_t ms,
                    hive_timer *out)
{
    return timer_start(to, tag, data, len, ms, false, out);
}

int hive_send_interval(hive_pid to, uint32_t tag, const void *data, size_t len, int64_t ms,
                       hive_timer *out)
{
    return timer_start(to, tag, data, len, ms, true, out);
}

int64_t hive_cancel_timer(hive_timer t)
{
    if (!g_rt)
        return -ENOENT;
    return timer_cancel_id(t.id);
}
