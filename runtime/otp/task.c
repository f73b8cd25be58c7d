/*
 * Tasks: Elixir's Task (async / await / yield / shutdown) and
 * Task.Supervisor.async_nolink, on the public API.
 *
 * A task is a process that runs fn(arg), sends its owner one reply (tag
 * TASK_TAG_REPLY, from = the task, the result in the payload) and exits
 * normally. The owner monitors it, so a task that ends without a reply is
 * its DOWN; the reply always comes before the DOWN (both are sent by the
 * task, in that order). A linked task unlinks itself before it replies: a
 * task that delivered its result sends no exit signal, so even an owner
 * that traps exits finds nothing of it in its mailbox after the await.
 *
 * Every way a task ends for its owner takes what the task left: the reply
 * and then the DOWN (demonitor with flush), the DOWN alone, or, when the
 * owner stops it (await timeout, shutdown), unlink + kill + the DOWN, then
 * a reply that came just before. An ended task's ref is zeroed, so a
 * second await is -ESRCH.
 *
 * A task supervisor's task waits for a go from its owner before it runs:
 * the owner monitors it first, so even a task that crashes at once gives
 * the owner its own reason.
 */
#include <hive.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/otp/task.h"

static bool match_go(const hive_msg *m, void *ctx)
{
    return m->tag == TASK_TAG_GO && m->from == *(const hive_pid *)ctx;
}

static void task_main(void *arg)
{
    struct task_start st = *(struct task_start *)arg;
    free(arg);
    if (st.wait_go) {
        hive_msg *m;
        if (hive_receive_if(match_go, &st.owner, &m, HIVE_INFINITY) != 0)
            return;
        hive_msg_free(m);
    }
    struct task_reply r = { .index = st.index, .slot = st.slot };
    r.result = st.fn2 ? st.fn2(st.arg, st.index) : st.fn1(st.arg);
    if (st.unlink_owner)
        hive_unlink(st.owner);
    hive_send(st.owner, TASK_TAG_REPLY, &r, sizeof r);
}

int task_spawn(const struct task_start *st, const hive_spawn_opts *so, hive_pid *out)
{
    struct task_start *copy = malloc(sizeof *copy);
    if (!copy)
        return -ENOMEM;
    *copy = *st;
    int rc = hive_spawn_opt(task_main, copy, so, out);
    if (rc)
        free(copy);
    return rc;
}

void task_go(hive_pid task)
{
    hive_send(task, TASK_TAG_GO, NULL, 0);
}

/* ------------------------------------------------------------------ */
/* The owner's side                                                    */
/* ------------------------------------------------------------------ */

struct task_match {
    hive_pid pid;
    hive_ref ref;
};

/* The task's reply or its DOWN. */
static bool match_task(const hive_msg *m, void *ctx)
{
    const struct task_match *t = ctx;
    if (m->tag == TASK_TAG_REPLY)
        return m->from == t->pid;
    return m->tag == HIVE_TAG_DOWN && hive_ref_eq(m->ref, t->ref);
}

static bool match_reply(const hive_msg *m, void *ctx)
{
    return m->tag == TASK_TAG_REPLY && m->from == *(const hive_pid *)ctx;
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
    /* A reply sent just before the kill came before the DOWN. */
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

/* What a reply or DOWN from the task means; the task is over either way. */
static int task_outcome(hive_task *t, hive_msg *m, void **result)
{
    int rc;
    if (m->tag == TASK_TAG_REPLY) {
        if (result)
            *result = ((const struct task_reply *)m->data)->result;
        hive_msg_free(m);
        hive_demonitor(t->ref, HIVE_FLUSH);
        rc = 0;
    } else {
        hive_reason reason = ((const hive_down *)m->data)->reason;
        hive_msg_free(m);
        task_crash_propagates(t->pid, reason);
        call_set_reason(reason);
        rc = -ECONNRESET;
    }
    task_ended(t);
    return rc;
}

static bool task_linked(const hive_task *t)
{
    /* A task supervisor's task is not linked to its owner; unlinking a
     * process we are not linked to is harmless, so always unlink. */
    (void)t;
    return true;
}

int hive_task_await(hive_task *t, int64_t timeout_ms, void **result)
{
    int rc = task_check(t, timeout_ms, false);
    if (rc)
        return rc;
    struct task_match mt = { t->pid, t->ref };
    hive_msg *m;
    rc = hive_receive_if(match_task, &mt, &m, timeout_ms);
    if (rc == -ETIMEDOUT) {
        /* Stopped, never leaked; a reply that raced the kill is taken. */
        task_kill_flush(t->pid, t->ref, task_linked(t));
        task_ended(t);
        return -ETIMEDOUT;
    }
    if (rc)
        return rc;
    return task_outcome(t, m, result);
}

int hive_task_yield(hive_task *t, int64_t timeout_ms, void **result)
{
    int rc = task_check(t, timeout_ms, false);
    if (rc)
        return rc;
    struct task_match mt = { t->pid, t->ref };
    hive_msg *m;
    rc = hive_receive_if(match_task, &mt, &m, timeout_ms);
    if (rc)
        return rc; /* -ETIMEDOUT: still running, may be yielded again */
    return task_outcome(t, m, result);
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
    if (m->tag == TASK_TAG_REPLY)
        return task_outcome(t, m, result); /* it had finished: its result */
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
    struct task_start st = { .fn1 = fn, .arg = arg, .owner = self, .unlink_owner = true };
    hive_ref ref;
    hive_pid pid;
    int rc = task_spawn(&st, &(hive_spawn_opts){ .flags = HIVE_LINK | HIVE_MONITOR, .monitor = &ref },
                        &pid);
    if (rc)
        return rc;
    out->pid = pid;
    out->ref = ref;
    out->owner = self;
    return 0;
}

int hive_task_sup_async_nolink(hive_pid sup, void *(*fn)(void *arg), void *arg, hive_task *out)
{
    if (!fn || !out || sup == HIVE_NOPID)
        return -EINVAL;
    hive_pid self = hive_self();
    if (self == HIVE_NOPID)
        return -EPERM;
    struct task_start st = { .fn1 = fn, .arg = arg, .owner = self, .wait_go = true };
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
    task_go(pid);
    out->pid = pid;
    out->ref = ref;
    out->owner = self;
    return 0;
}
