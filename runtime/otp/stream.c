/*
 * async_stream: Elixir's Task.async_stream and
 * Task.Supervisor.async_stream_nolink, on the public API and task.c's
 * task process.
 *
 * The window. A stream owns max_concurrency slots; an item holds a slot
 * from its start until the consumer has taken its outcome (result, crash
 * or time-out). A new item starts only when a slot is free, that is right
 * after hive_stream_next handed one out, so at most max_concurrency tasks
 * run, and the memory held is the slots plus what those tasks hold, never
 * proportional to n. In input order (the default) the slot of item i is
 * i % max_concurrency: the items holding slots are always a run of
 * consecutive indices starting at the next one to hand out, so no two
 * collide. Unordered streams take slots from a free list and hand
 * outcomes out in the order they come (a small FIFO of finished slots).
 *
 * Time-outs. Every item gets the same time-out from its start, and items
 * start in index order, so the running item that started first has the
 * earliest deadline: running items are kept on a list in start order and
 * the consumer's receive waits until its head's deadline. kill_on_timeout
 * kills that item (its outcome is -ETIMEDOUT); otherwise the stream ends
 * with -ETIMEDOUT, that item's index, and every running task stopped.
 *
 * The consumer's mailbox: a reply is taken with its DOWN (demonitor with
 * flush), a crash is its DOWN, a task stopped by the stream is unlinked,
 * killed and its DOWN (and a reply that raced the kill) taken. Nothing of
 * a stream is left behind after it ends or is closed.
 */
#include <errno.h>
#include <hive.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "io/clock.h"
#include "runtime/otp/task.h"

enum { SI_FREE, SI_RUNNING, SI_DONE, SI_FAILED, SI_TIMEDOUT };

struct sitem {
    struct sitem *rprev, *rnext;   /* running list, start order */
    size_t   index;
    hive_pid pid;
    hive_ref mref;
    int64_t  deadline;             /* ns; INT64_MAX: none */
    void    *result;
    hive_reason reason;
    unsigned next_free;            /* unordered: free list link (slot + 1) */
    int      state;
};

struct hive_stream {
    hive_pid owner;
    size_t   n;
    void  *(*fn)(void *ctx, size_t i);
    void    *ctx;
    unsigned maxc;
    bool     unordered;
    bool     kill_on_timeout;
    int64_t  timeout_ns;           /* < 0: none */
    hive_pid sup;                  /* HIVE_NOPID: linked tasks */
    size_t   next_start;
    size_t   next_emit;            /* ordered: the next index to hand out */
    unsigned inflight;             /* slots held */
    struct sitem *run_head, *run_tail;
    unsigned free_head;            /* unordered: slot + 1, 0 = none */
    unsigned *doneq;               /* unordered: finished slots, FIFO */
    unsigned dq_head, dq_n;
    bool     failed;               /* ended by an error: it sticks */
    int      err;
    size_t   err_index;
    struct sitem items[];
};

/* Deadlines are read from the coarse clock (a per-tick value, much cheaper
 * to read than the precise one in a VM, where a precise read was 15% of a
 * short item's cost). It lags real time by at most its resolution, so a
 * deadline gets that resolution added: a time-out is never early. */
static int64_t now_ns(void)
{
    return (int64_t)clock_coarse_ns();
}

static void run_remove(struct hive_stream *s, struct sitem *it)
{
    if (it->rprev)
        it->rprev->rnext = it->rnext;
    else
        s->run_head = it->rnext;
    if (it->rnext)
        it->rnext->rprev = it->rprev;
    else
        s->run_tail = it->rprev;
    it->rprev = it->rnext = NULL;
}

static void run_append(struct hive_stream *s, struct sitem *it)
{
    it->rnext = NULL;
    it->rprev = s->run_tail;
    if (s->run_tail)
        s->run_tail->rnext = it;
    else
        s->run_head = it;
    s->run_tail = it;
}

/* A running item has an outcome now. */
static void item_finished(struct hive_stream *s, struct sitem *it, int state)
{
    run_remove(s, it);
    it->state = state;
    if (s->unordered)
        s->doneq[(s->dq_head + s->dq_n++) % s->maxc] = (unsigned)(it - s->items);
}

static void stop_task(struct hive_stream *s, struct sitem *it)
{
    task_kill_flush(it->pid, it->mref, s->sup == HIVE_NOPID);
}

static void stop_all(struct hive_stream *s)
{
    while (s->run_head) {
        struct sitem *it = s->run_head;
        stop_task(s, it);
        run_remove(s, it);
        it->state = SI_FREE;
    }
}

static void fail(struct hive_stream *s, int err, size_t index)
{
    stop_all(s);
    s->failed = true;
    s->err = err;
    s->err_index = index;
}

/* Starts the next item in a free slot. */
static int start_one(struct hive_stream *s)
{
    unsigned slot;
    if (s->unordered) {
        slot = s->free_head - 1;
        s->free_head = s->items[slot].next_free;
    } else {
        slot = (unsigned)(s->next_start % s->maxc);
    }
    struct sitem *it = &s->items[slot];
    size_t index = s->next_start++;
    struct task_start st = {
        .fn2 = s->fn, .arg = s->ctx, .index = index, .slot = slot, .owner = s->owner,
        .unlink_owner = s->sup == HIVE_NOPID, .wait_go = s->sup != HIVE_NOPID,
    };
    int rc;
    if (s->sup == HIVE_NOPID) {
        rc = task_spawn(&st, &(hive_spawn_opts){ .flags = HIVE_LINK | HIVE_MONITOR,
                                                 .monitor = &it->mref },
                        &it->pid);
    } else {
        rc = sup_start_task(s->sup, &st, &it->pid);
        if (rc == 0 && (rc = hive_monitor(it->pid, &it->mref)) != 0)
            hive_kill(it->pid, HIVE_KILL);
        if (rc == 0)
            task_go(it->pid, it->mref);
    }
    if (rc) {
        if (s->unordered) {
            it->next_free = s->free_head;
            s->free_head = slot + 1;
        }
        return rc;
    }
    it->index = index;
    it->state = SI_RUNNING;
    it->deadline = s->timeout_ns < 0 ? INT64_MAX : now_ns() + s->timeout_ns;
    run_append(s, it);
    s->inflight++;
    return 0;
}

static void refill(struct hive_stream *s)
{
    while (!s->failed && s->inflight < s->maxc && s->next_start < s->n) {
        size_t index = s->next_start;
        int rc = start_one(s);
        if (rc)
            fail(s, rc, index);
    }
}

static struct sitem *running_by_ref(struct hive_stream *s, hive_ref ref)
{
    for (struct sitem *it = s->run_head; it; it = it->rnext)
        if (hive_ref_eq(it->mref, ref))
            return it;
    return NULL;
}

static bool match_stream(const hive_msg *m, void *ctx)
{
    struct hive_stream *s = ctx;
    if (m->tag == TASK_TAG_REPLY) {
        if (m->len != sizeof(struct task_reply))
            return false;
        unsigned slot = ((const struct task_reply *)m->data)->slot;
        return slot < s->maxc && s->items[slot].state == SI_RUNNING &&
               s->items[slot].pid == m->from;
    }
    return m->tag == HIVE_TAG_DOWN && running_by_ref(s, m->ref) != NULL;
}

static void on_message(struct hive_stream *s, hive_msg *m)
{
    if (m->tag == TASK_TAG_REPLY) {
        const struct task_reply *r = m->data;
        struct sitem *it = &s->items[r->slot];
        it->result = r->result;
        hive_demonitor(it->mref, HIVE_FLUSH);
        item_finished(s, it, SI_DONE);
    } else {
        struct sitem *it = running_by_ref(s, m->ref);
        it->reason = ((const hive_down *)m->data)->reason;
        if (s->sup == HIVE_NOPID)
            task_crash_propagates(it->pid, it->reason);
        item_finished(s, it, SI_FAILED);
    }
    hive_msg_free(m);
}

/* Items whose deadline passed. */
static void on_timeouts(struct hive_stream *s)
{
    int64_t now = now_ns();
    while (s->run_head && s->run_head->deadline <= now) {
        struct sitem *it = s->run_head;
        if (!s->kill_on_timeout) {
            fail(s, -ETIMEDOUT, it->index);
            return;
        }
        stop_task(s, it);
        item_finished(s, it, SI_TIMEDOUT);
    }
}

/* Hands out a finished item and frees its slot. */
static int emit(struct hive_stream *s, struct sitem *it, size_t *index, void **result)
{
    int rc;
    if (index)
        *index = it->index;
    switch (it->state) {
    case SI_DONE:
        if (result)
            *result = it->result;
        rc = 1;
        break;
    case SI_FAILED:
        call_set_reason(it->reason);
        rc = -ECONNRESET;
        break;
    default:
        rc = -ETIMEDOUT;
        break;
    }
    it->state = SI_FREE;
    s->inflight--;
    if (s->unordered) {
        unsigned slot = (unsigned)(it - s->items);
        it->next_free = s->free_head;
        s->free_head = slot + 1;
    } else {
        s->next_emit++;
    }
    refill(s);
    return rc;
}

int hive_stream_next(hive_stream *s, size_t *index, void **result)
{
    if (!s)
        return -EINVAL;
    if (hive_self() != s->owner)
        return -EPERM;
    refill(s);
    for (;;) {
        if (s->failed) {
            if (index)
                *index = s->err_index;
            return s->err;
        }
        if (s->unordered) {
            if (s->dq_n) {
                unsigned slot = s->doneq[s->dq_head];
                s->dq_head = (s->dq_head + 1) % s->maxc;
                s->dq_n--;
                return emit(s, &s->items[slot], index, result);
            }
        } else if (s->inflight) {
            struct sitem *it = &s->items[s->next_emit % s->maxc];
            if (it->state != SI_RUNNING && it->state != SI_FREE)
                return emit(s, it, index, result);
        }
        if (s->inflight == 0)
            return 0;
        int64_t timeout = HIVE_INFINITY;
        if (s->run_head && s->run_head->deadline != INT64_MAX) {
            int64_t left = s->run_head->deadline - now_ns();
            if (left <= 0) {
                on_timeouts(s);
                continue;
            }
            timeout = (left + 999999) / 1000000;
        }
        hive_msg *m;
        int rc = hive_receive_if(match_stream, s, &m, timeout);
        if (rc == 0)
            on_message(s, m);
        else if (rc == -ETIMEDOUT)
            on_timeouts(s);
        else
            return rc;
    }
}

/* The owner stops its running tasks and takes what they left in its
 * mailbox. Anyone else may close only a stream whose owner is gone: no one
 * can be using it then, and its mailbox is gone with it; what still runs
 * (nolink tasks, or linked ones that outlived a normal exit) is killed.
 * While the owner lives, a close from another process or thread could
 * free the stream under the owner's feet and could not take the owner's
 * messages: it is refused (errno = EPERM) and the stream stays the
 * owner's, whole. */
void hive_stream_close(hive_stream *s)
{
    if (!s)
        return;
    if (hive_self() != s->owner) {
        if (hive_is_alive(s->owner)) {
            errno = EPERM;
            return;
        }
        for (struct sitem *it = s->run_head; it; it = it->rnext)
            hive_kill(it->pid, HIVE_KILL);
    } else {
        stop_all(s);
    }
    free(s->doneq);
    free(s);
}

int hive_task_async_stream(size_t n, void *(*fn)(void *ctx, size_t i), void *ctx,
                           const hive_stream_opts *opts, hive_stream **out)
{
    if (!fn || !out)
        return -EINVAL;
    hive_stream_opts o = { 0 };
    if (opts)
        o = *opts;
    if (o.timeout_ms < 0 && o.timeout_ms != HIVE_INFINITY)
        return -EINVAL;
    if (o.timeout_ms > (int64_t)INT32_MAX * 1000)
        return -EINVAL;
    hive_pid self = hive_self();
    if (self == HIVE_NOPID)
        return -EPERM;
    if (o.supervisor != HIVE_NOPID && !hive_is_alive(o.supervisor)) {
        hive_ref r;
        int rc = hive_monitor(o.supervisor, &r); /* -EINVAL for a garbage pid */
        if (rc)
            return rc;
        hive_demonitor(r, HIVE_FLUSH);
        return -ESRCH;
    }
    unsigned maxc = o.max_concurrency;
    if (maxc == 0) {
        int ns = hive_stats(NULL, 0, NULL);
        maxc = ns > 0 ? (unsigned)ns : 1;
    }
    if (maxc > (1u << 24))
        return -EINVAL;
    struct hive_stream *s = calloc(1, sizeof *s + (size_t)maxc * sizeof(struct sitem));
    if (!s)
        return -ENOMEM;
    if (o.unordered && !(s->doneq = malloc(maxc * sizeof *s->doneq))) {
        free(s);
        return -ENOMEM;
    }
    s->owner = self;
    s->n = n;
    s->fn = fn;
    s->ctx = ctx;
    s->maxc = maxc;
    s->unordered = o.unordered;
    s->kill_on_timeout = o.kill_on_timeout;
    s->timeout_ns = o.timeout_ms == HIVE_INFINITY ? -1
                    : (o.timeout_ms == 0 ? 5000 : o.timeout_ms) * 1000000 + (int64_t)g_clock_coarse_res_ns;
    s->sup = o.supervisor;
    if (s->unordered) {
        for (unsigned i = 0; i < maxc; i++)
            s->items[i].next_free = i + 1 < maxc ? i + 2 : 0;
        s->free_head = 1;
    }
    *out = s;
    return 0;
}
