/*
 * Tasks: Elixir's Task (async / await / yield / shutdown) and
 * Task.Supervisor.async_nolink.
 *
 * Where a result goes. A plain process's task (hive_task_async from a
 * process that is not a gen_server) does not send its result as a
 * message: such an owner takes results only with await, yield or
 * shutdown, in whatever order it likes, and a selective receive for one
 * reply among many (plus each one's DOWN) costs a scan of every message
 * that came before it — quadratic for a batch awaited in order but
 * finished out of order (measured: 1,000,000 tasks in batches of 1,000
 * took 7-12 s that way, against 0.5 s). Instead each task process has a
 * result slot in a table indexed by its process slot (struct tslot: a
 * state word and the result), and the task lingers after its function
 * returned until the owner has taken the result: while it is alive its
 * table slot is its own, and the owner can drop its monitor and link
 * before it goes, so that no DOWN and no exit signal is ever sent for a
 * task that delivered.
 *
 * The state word is generation << 8 | state; the generation (the task
 * pid's) tells a slot that belongs to this task from one left by an
 * earlier process in the same slot or claimed by a later one. Transitions
 * (all CAS, acq_rel; the result is written before DONE and WOKEN and read
 * after them):
 *
 *   RUNNING -> DONE     the task, its function returned (no message)
 *   RUNNING -> WAITING  the owner, about to wait in a receive
 *   WAITING -> WOKEN    the task: it returned while the owner waits, and
 *                       then sends it one TASK_TAG_WAKE message
 *   WAITING -> RUNNING  the owner, whose wait timed out (yield)
 *
 * So the owner gets at most one message per task, and only while it waits
 * for that very task. A task that dies without a result (a crash, a kill)
 * leaves its state at RUNNING or WAITING and the owner gets its DOWN.
 * Ending a task that delivered: demonitor (quiet: the task is alive),
 * unlink, kill (it exits with no link or monitor, sending nothing).
 *
 * Who claims a slot: both the spawner (before async returns) and the task
 * (first thing) move it from a foreign generation to this task's RUNNING;
 * whichever comes second sees its own generation and leaves it alone.
 *
 * A lingering task waits as a handler process, holding no stack, until
 * it is awaited, or until its owner exits (the link).
 *
 * The other mode, Elixir's, is for owners that take their messages as
 * they come: the task of a gen_server (which gets its tasks' replies in
 * handle_info and may never await them), a task supervisor's task and a
 * stream's item. The task sends its result as a TASK_TAG_REPLY message
 * (HIVE_TAG_TASK_REPLY, msg->ref = the owner's monitor of it) and exits;
 * its DOWN follows. An owner that never awaits holds no process for it;
 * a gen_server that awaits many of its tasks in one callback pays the
 * scan above, as in Elixir. The owner tells the modes apart by the result slot: a task that replies
 * never claims one. A stream's few running items are matched in O(1) by
 * their slot in the stream.
 *
 * How a replying task knows its ref: a task spawned monitored has the
 * monitor's ref written into its start block by the spawn, before it can
 * run; the spawner reads it back from the block, which the two share and
 * the last of them frees. A task supervisor's task waits for a go from its
 * owner before it runs, which carries the ref: the owner monitors it
 * first, so even a task that crashes at once gives the owner its own
 * reason.
 */
#include <hive.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/otp/task.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/signal.h"

/* ------------------------------------------------------------------ */
/* Result slots                                                        */
/* ------------------------------------------------------------------ */

enum { TS_RUNNING = 1, TS_DONE, TS_WAITING, TS_WOKEN };

struct tslot {
    _Atomic uint64_t st;    /* generation << 8 | state */
    void *result;
};

#define TS_CHUNK_SHIFT 12
#define TS_CHUNK (1u << TS_CHUNK_SHIFT)
#define TS_NCHUNKS ((1u << 24) >> TS_CHUNK_SHIFT)

/* Chunks allocated on first use and kept for the life of the program
 * (entries are claimed afresh by every task). */
static _Atomic(struct tslot *) ts_chunks[TS_NCHUNKS];
static pthread_mutex_t ts_grow = PTHREAD_MUTEX_INITIALIZER;

/* The chunk for index ci, allocated on first use; NULL without memory. */
static __attribute__((noinline)) struct tslot *tslot_grow(unsigned ci)
{
    pthread_mutex_lock(&ts_grow);
    struct tslot *c = atomic_load_explicit(&ts_chunks[ci], memory_order_relaxed);
    if (!c) {
        c = calloc(TS_CHUNK, sizeof *c);
        if (c)
            atomic_store_explicit(&ts_chunks[ci], c, memory_order_release);
    }
    pthread_mutex_unlock(&ts_grow);
    return c;
}

static inline struct tslot *tslot_of(hive_pid pid)
{
    uint32_t slot = pid_slot(pid);
    unsigned ci = slot >> TS_CHUNK_SHIFT;
    /* acquire: pairs with the release store in tslot_grow. */
    struct tslot *c = atomic_load_explicit(&ts_chunks[ci], memory_order_acquire);
    if (__builtin_expect(!c, 0) && !(c = tslot_grow(ci)))
        return NULL;
    return &c[slot & (TS_CHUNK - 1)];
}

static inline uint64_t ts_word(hive_pid pid, unsigned state)
{
    return (uint64_t)pid_gen(pid) << 8 | state;
}

/* Moves the slot to this task's RUNNING unless it is this task's already. */
static void tslot_claim(struct tslot *e, hive_pid pid)
{
    uint64_t old = atomic_load_explicit(&e->st, memory_order_acquire);
    while ((old >> 8) != pid_gen(pid))
        if (atomic_compare_exchange_weak_explicit(&e->st, &old, ts_word(pid, TS_RUNNING),
                                                  memory_order_acq_rel, memory_order_acquire))
            break;
}

static bool ts_cas(struct tslot *e, hive_pid pid, unsigned from, unsigned to, uint64_t *seen)
{
    uint64_t old = ts_word(pid, from);
    bool ok = atomic_compare_exchange_strong_explicit(&e->st, &old, ts_word(pid, to),
                                                      memory_order_acq_rel, memory_order_acquire);
    if (seen)
        *seen = old;
    return ok;
}

/* ------------------------------------------------------------------ */
/* The task process                                                    */
/* ------------------------------------------------------------------ */

static bool match_go(const hive_msg *m, void *ctx)
{
    return m->tag == TASK_TAG_GO && m->from == *(const hive_pid *)ctx;
}

/* "Done, and you wait": the owner's one message for this task. Never
 * refused or dropped by a mailbox limit (the owner waits for it). The
 * owner is queued behind what is runnable here: its batch's other tasks,
 * spawned before it waited, then finish first, and it takes their
 * results without waiting again (in the next slot it would run before
 * them and wait once per task). Without memory the wake cannot be sent:
 * the task dies, and the owner gets its DOWN. */
static void task_wake(hive_pid owner)
{
    struct mnode *n = mnode_make(MK_USER, TASK_TAG_WAKE, NULL, 0);
    if (!n)
        hive_exit(HIVE_NOMEM);
    if (proc_send_uncounted(owner, n, true) != 0)
        mnode_free(n); /* the owner is gone */
}

/* A task that delivered waits to be taken as a handler process, holding
 * no stack (the owner may have a thousand such tasks outstanding; a
 * stack each would be a page each, cold by the time the owner gets to
 * them). ctx is the owner's pid; `trapping` whether the task trapped
 * exits before it delivered. The owner takes it (kills it), or its exit
 * does, whatever its reason: a normal exit too, so exits are trapped
 * while it lingers (a result nobody can take any more holds nothing).
 * Another process's exit signal acts as it would have without the trap.
 * Other messages are dropped (the loop frees them). */
static void linger_on(void *ctx, const hive_msg *m, bool trapping)
{
    if (m->tag != HIVE_TAG_EXIT)
        return;
    hive_pid owner = (hive_pid)(uintptr_t)ctx;
    /* the owner's exit, or the runtime's stop (from no process) */
    if (m->from == owner || m->from == HIVE_NOPID)
        hive_exit(HIVE_NORMAL);
    hive_reason why = m->len >= sizeof(hive_exit_signal)
                          ? ((const hive_exit_signal *)m->data)->reason : HIVE_NORMAL;
    if (!trapping && why != HIVE_NORMAL)
        hive_exit(why);
}

static void linger_plain(void *ctx, hive_msg *m)
{
    linger_on(ctx, m, false);
}

static void linger_trapping(void *ctx, hive_msg *m)
{
    linger_on(ctx, m, true);
}

/* Publishes the result in e, the slot of me, then waits to be taken. */
static __attribute__((noreturn)) void task_deliver(const struct task_start *st, struct tslot *e,
                                                   hive_pid me, void *result)
{
    e->result = result;
    if (!ts_cas(e, me, TS_RUNNING, TS_DONE, NULL) && ts_cas(e, me, TS_WAITING, TS_WOKEN, NULL))
        task_wake(st->owner);
    bool trapping = hive_trap_exits(true);
    _Static_assert(sizeof(hive_pid) <= sizeof(uintptr_t), "a pid fits the handler's context");
    proc_become_handler(cur_proc, trapping ? linger_trapping : linger_plain,
                        (void *)(uintptr_t)st->owner);
}

/* What task_spawn hands the task: the start, with the monitor's ref that
 * the spawn writes before the task runs. Held by the task and, when it
 * needs the ref back, by the spawner; the last to let go frees it. */
struct task_block {
    struct task_start st;
    _Atomic unsigned holders;
};

static void block_release(struct task_block *b)
{
    /* Alone (the other never held it, or let go already: acquire pairs
     * with its release), no read-modify-write is needed. acq_rel: the
     * other holder's reads come before the free. */
    if (atomic_load_explicit(&b->holders, memory_order_acquire) == 1 ||
        atomic_fetch_sub_explicit(&b->holders, 1, memory_order_acq_rel) == 1)
        mnode_block_free(b);
}

static void task_main(void *arg)
{
    struct task_block *b = arg;
    struct task_start st = b->st;
    block_release(b);
    hive_pid me = HIVE_NOPID;
    struct tslot *e = NULL;
    if (st.linger) {
        me = hive_self();
        e = tslot_of(me);
        if (!e)
            hive_exit(HIVE_NOMEM); /* the owner gets the DOWN: no result */
        tslot_claim(e, me);
    }
    if (st.wait_go) {
        hive_msg *m;
        if (hive_receive_if(match_go, &st.owner, &m, HIVE_INFINITY) != 0)
            return;
        if (m->len == sizeof st.ref)
            memcpy(&st.ref, m->data, sizeof st.ref);
        hive_msg_free(m);
    }
    if (st.linger)
        task_deliver(&st, e, me, st.fn1(st.arg));
    struct task_reply r = { .index = st.index, .slot = st.slot };
    r.result = st.fn2 ? st.fn2(st.arg, st.index) : st.fn1(st.arg);
    if (st.unlink_owner)
        hive_unlink(st.owner);
    /* Never refused or dropped by the owner's mailbox limit: a reply it
     * waits for (or takes in handle_info). */
    struct mnode *n = mnode_make(MK_USER, TASK_TAG_REPLY, &r, sizeof r);
    if (!n)
        hive_exit(HIVE_NOMEM); /* the owner gets the DOWN: no result */
    n->msg.ref = st.ref; /* zero for a stream's item, matched by its slot */
    if (proc_send_uncounted(st.owner, n, false) != 0)
        mnode_free(n); /* the owner is gone */
}

int task_spawn(const struct task_start *st, const hive_spawn_opts *so, hive_pid *out)
{
    /* From the node cache: a few instructions, where malloc and free
     * took about 85 per task. */
    _Static_assert(sizeof(struct mnode) + sizeof(struct task_block) <= 256,
                   "a task's start block fits a cached node");
    struct task_block *b = mnode_block_alloc(sizeof *b);
    if (!b)
        return -ENOMEM;
    b->st = *st;
    b->st.ref = (hive_ref){ 0, 0 };
    hive_spawn_opts o = *so;
    /* A replying task tags its reply with the ref. */
    bool want_ref = (o.flags & HIVE_MONITOR) && st->ref_reply;
    if (want_ref)
        o.monitor = &b->st.ref; /* written before the task can run */
    atomic_init(&b->holders, want_ref ? 2u : 1u);
    int rc = hive_spawn_opt(task_main, b, &o, out);
    if (rc) {
        mnode_block_free(b);
        return rc;
    }
    if (want_ref) {
        *so->monitor = b->st.ref;
        block_release(b);
    }
    return 0;
}

void task_go(hive_pid task, hive_ref mref)
{
    hive_send(task, TASK_TAG_GO, &mref, sizeof mref);
}

/* ------------------------------------------------------------------ */
/* The owner's side                                                    */
/* ------------------------------------------------------------------ */

struct task_match {
    hive_pid pid;
    hive_ref ref;
};

/* The task's wake (or stream reply) or its DOWN. */
static bool match_task(const hive_msg *m, void *ctx)
{
    const struct task_match *t = ctx;
    if (m->tag == TASK_TAG_WAKE || m->tag == TASK_TAG_REPLY)
        return m->from == t->pid;
    return m->tag == HIVE_TAG_DOWN && hive_ref_eq(m->ref, t->ref);
}

static bool match_reply(const hive_msg *m, void *ctx)
{
    return (m->tag == TASK_TAG_REPLY || m->tag == TASK_TAG_WAKE) &&
           m->from == *(const hive_pid *)ctx;
}

static bool match_down(const hive_msg *m, void *ctx)
{
    return m->tag == HIVE_TAG_DOWN && hive_ref_eq(m->ref, *(const hive_ref *)ctx);
}

static bool match_exit_from(const hive_msg *m, void *ctx)
{
    return m->tag == HIVE_TAG_EXIT && m->from == *(const hive_pid *)ctx;
}

void task_kill_flush(hive_pid pid, hive_ref mref, bool linked)
{
    hive_msg *m;
    if (linked) {
        hive_unlink(pid);
        /* An EXIT that was trapped before the unlink is the kill's, not
         * the owner's business. */
        while (hive_receive_if(match_exit_from, &pid, &m, 0) == 0)
            hive_msg_free(m);
    }
    hive_kill(pid, HIVE_KILL);
    if (hive_receive_if(match_down, &mref, &m, HIVE_INFINITY) == 0)
        hive_msg_free(m);
    /* A reply or wake sent just before the kill came before the DOWN. */
    while (hive_receive_if(match_reply, &pid, &m, 0) == 0)
        hive_msg_free(m);
}

void task_crash_propagates(hive_pid pid, hive_reason reason)
{
    if (reason == HIVE_NORMAL)
        return;
    bool trapping = hive_trap_exits(true);
    hive_trap_exits(trapping);
    if (!trapping && call_self_linked(pid))
        hive_exit(reason);
}

static void task_ended(hive_task *t)
{
    t->ref = (hive_ref){ 0, 0 };
}

static bool task_open(const hive_task *t)
{
    return t->ref.hi || t->ref.lo;
}

/* Checks shared by await, yield and shutdown. */
static int task_check(hive_task *t, int64_t timeout_ms, bool allow_brutal)
{
    if (!t)
        return -EINVAL;
    hive_pid self = hive_self();
    if (self == HIVE_NOPID)
        return -EPERM;
    if (t->owner == HIVE_NOPID && t->pid == HIVE_NOPID)
        return -EINVAL;
    if (t->owner != self)
        return -EPERM;
    if (timeout_ms < 0 && timeout_ms != HIVE_INFINITY &&
        !(allow_brutal && timeout_ms == HIVE_BRUTAL_KILL))
        return -EINVAL;
    if (!task_open(t))
        return -ESRCH;
    return 0;
}

/* Drops the monitor of a task; a DOWN that was already sent is taken.
 * Through the task's list of watchers: an owner with many tasks
 * outstanding has a long list of monitors, each task a short one. */
static void task_demonitor(hive_pid pid, hive_ref ref)
{
    if (sig_unmonitor_pid(cur_proc, pid, ref))
        return;
    hive_msg *m;
    while (hive_receive_if(match_down, &ref, &m, 0) == 0)
        hive_msg_free(m);
}

/* The task delivered: take the result and let it go, leaving nothing. */
static int task_take(hive_task *t, void *value, void **result)
{
    if (result)
        *result = value;
    hive_pid pid = t->pid;
    /* It is alive: no DOWN was sent. Monitor and link go in one section;
     * the general path is for a task another process killed meanwhile. */
    if (!sig_drop_child(cur_proc, pid, t->ref)) {
        task_demonitor(pid, t->ref);
        hive_unlink(pid);
    }
    /* An EXIT trapped from it is possible only if someone else killed it
     * meanwhile; and only one already on the private queue: the unlink
     * voids a signal still in the mailbox. Nothing queued, nothing to
     * take (the common case, and a scan saved). */
    if (cur_proc->pq_head) {
        hive_msg *m;
        while (hive_receive_if(match_exit_from, &pid, &m, 0) == 0)
            hive_msg_free(m);
    }
    hive_kill(pid, HIVE_KILL);
    task_ended(t);
    return 0;
}

/* The task died without a result: its DOWN is (or will be) ours. */
static int task_lost(hive_task *t, hive_msg *down)
{
    hive_msg *m = down;
    if (!m && hive_receive_if(match_down, &t->ref, &m, HIVE_INFINITY) != 0)
        return -ESRCH;
    hive_reason reason = ((const hive_down *)m->data)->reason;
    hive_msg_free(m);
    task_ended(t);
    task_crash_propagates(t->pid, reason);
    call_set_reason(reason);
    return -ECONNRESET;
}

/* Waits for the task's outcome: 0 (result taken), -ECONNRESET (died),
 * -ETIMEDOUT (still running: nothing changed), or a receive error. */
static int task_wait(hive_task *t, int64_t timeout_ms, void **result)
{
    struct tslot *e = tslot_of(t->pid);
    if (!e)
        return -ENOMEM;
    uint64_t seen;
    bool waiting = ts_cas(e, t->pid, TS_RUNNING, TS_WAITING, &seen);
    if (!waiting && seen == ts_word(t->pid, TS_DONE))
        return task_take(t, e->result, result);
    /* Waiting for a lingering task's wake; or the slot is not this
     * task's: a task supervisor's task (it replies with a message), or a
     * task that died (its DOWN is queued). */
    struct task_match mt = { t->pid, t->ref };
    hive_msg *m;
    int rc = hive_receive_if(match_task, &mt, &m, timeout_ms);
    if (rc == -ETIMEDOUT) {
        if (!waiting || ts_cas(e, t->pid, TS_WAITING, TS_RUNNING, NULL))
            return -ETIMEDOUT;
        /* It returned just now: its wake is on the way. */
        rc = hive_receive_if(match_task, &mt, &m, HIVE_INFINITY);
    }
    if (rc)
        return rc;
    if (m->tag == HIVE_TAG_DOWN)
        return task_lost(t, m);
    void *value = m->tag == TASK_TAG_REPLY ? ((const struct task_reply *)m->data)->result
                                           : e->result;
    hive_msg_free(m);
    return task_take(t, value, result);
}

int hive_task_await(hive_task *t, int64_t timeout_ms, void **result)
{
    int rc = task_check(t, timeout_ms, false);
    if (rc)
        return rc;
    rc = task_wait(t, timeout_ms, result);
    if (rc == -ETIMEDOUT) {
        /* Stopped, never leaked. */
        task_kill_flush(t->pid, t->ref, true);
        task_ended(t);
    }
    return rc;
}

int hive_task_yield(hive_task *t, int64_t timeout_ms, void **result)
{
    int rc = task_check(t, timeout_ms, false);
    if (rc)
        return rc;
    return task_wait(t, timeout_ms, result); /* -ETIMEDOUT: may be yielded again */
}

int hive_task_shutdown(hive_task *t, int64_t timeout_ms, void **result)
{
    int rc = task_check(t, timeout_ms, true);
    if (rc)
        return rc;
    hive_pid pid = t->pid;
    hive_msg *m;
    /* Its exit is ours to take from now on. */
    hive_unlink(pid);
    while (hive_receive_if(match_exit_from, &pid, &m, 0) == 0)
        hive_msg_free(m);
    struct tslot *e = tslot_of(pid);
    if (!e)
        return -ENOMEM;
    uint64_t seen;
    if (!ts_cas(e, pid, TS_RUNNING, TS_WAITING, &seen) && seen == ts_word(pid, TS_DONE))
        return task_take(t, e->result, result); /* it had finished: its result */
    /* Running (or a task supervisor's task, or dead): stop it; a result
     * that comes first is its result. */
    struct task_match mt = { pid, t->ref };
    if (timeout_ms == HIVE_BRUTAL_KILL) {
        hive_kill(pid, HIVE_KILL);
        rc = hive_receive_if(match_task, &mt, &m, HIVE_INFINITY);
    } else {
        hive_kill(pid, HIVE_SHUTDOWN);
        rc = hive_receive_if(match_task, &mt, &m, timeout_ms);
        if (rc == -ETIMEDOUT) {
            hive_kill(pid, HIVE_KILL);
            rc = hive_receive_if(match_task, &mt, &m, HIVE_INFINITY);
        }
    }
    if (rc)
        return rc;
    if (m->tag != HIVE_TAG_DOWN) {
        void *value = m->tag == TASK_TAG_REPLY ? ((const struct task_reply *)m->data)->result
                                               : e->result;
        hive_msg_free(m);
        if (result)
            *result = value;
        hive_kill(pid, HIVE_KILL);
        task_demonitor(pid, t->ref);
        task_ended(t);
        return 0;
    }
    if (!m && hive_receive_if(match_down, &t->ref, &m, HIVE_INFINITY) != 0)
        return -ESRCH;
    hive_reason reason = ((const hive_down *)m->data)->reason;
    hive_msg_free(m);
    task_ended(t);
    if (reason == HIVE_SHUTDOWN || reason == HIVE_KILLED || reason == HIVE_NOPROC)
        return -ESRCH; /* stopped without a result */
    call_set_reason(reason);
    return -ECONNRESET;
}

int hive_task_async(void *(*fn)(void *arg), void *arg, hive_task *out)
{
    if (!fn || !out)
        return -EINVAL;
    hive_pid self = hive_self();
    if (self == HIVE_NOPID)
        return -EPERM;
    /* A gen_server takes its tasks' replies in handle_info: they come as
     * messages. A plain process takes them with await, yield or shutdown. */
    struct task_start st = { .fn1 = fn, .arg = arg, .owner = self, .unlink_owner = true,
                             .linger = cur_proc->gs == NULL,
                             .ref_reply = cur_proc->gs != NULL };
    hive_ref ref;
    hive_pid pid;
    int rc = task_spawn(&st, &(hive_spawn_opts){ .flags = HIVE_LINK | HIVE_MONITOR, .monitor = &ref },
                        &pid);
    if (rc)
        return rc;
    if (st.linger) {
        struct tslot *e = tslot_of(pid);
        if (!e) {
            task_kill_flush(pid, ref, true);
            return -ENOMEM;
        }
        tslot_claim(e, pid);
    }
    out->pid = pid;
    out->ref = ref;
    out->owner = self;
    return 0;
}

bool hive_task_reply_of(const hive_msg *m, const hive_task *t, void **result)
{
    if (!m || m->tag != TASK_TAG_REPLY || m->len != sizeof(struct task_reply))
        return false;
    if (t && (m->from != t->pid || !hive_ref_eq(m->ref, t->ref)))
        return false;
    if (result)
        *result = ((const struct task_reply *)m->data)->result;
    return true;
}

int hive_task_sup_async_nolink(hive_pid sup, void *(*fn)(void *arg), void *arg, hive_task *out)
{
    if (!fn || !out || sup == HIVE_NOPID)
        return -EINVAL;
    hive_pid self = hive_self();
    if (self == HIVE_NOPID)
        return -EPERM;
    struct task_start st = { .fn1 = fn, .arg = arg, .owner = self, .wait_go = true,
                             .ref_reply = true };
    hive_pid pid;
    int rc = sup_start_task(sup, &st, &pid);
    if (rc)
        return rc;
    hive_ref ref;
    rc = hive_monitor(pid, &ref);
    if (rc) {
        hive_kill(pid, HIVE_KILL);
        return rc;
    }
    task_go(pid, ref);
    out->pid = pid;
    out->ref = ref;
    out->owner = self;
    return 0;
}
