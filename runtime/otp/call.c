/*
 * Calls and replies: the request/response machinery under hive_call,
 * hive_send_request, hive_reply and hive_cast (gen_server.c is the server
 * side).
 *
 * Calls. hive_call marks the end of the caller's private queue
 * (proc_mark), monitors the server (an internal monitor, not listed by
 * hive_process_info; for a synchronous call only the server's record,
 * sig_call_monitor), makes the monitor ref an alias, sends an MK_CALL
 * whose from is {caller, ref}, and waits for an MK_REPLY or a DOWN carrying
 * that ref, looking only at what arrived after the mark: the wait costs
 * nothing for messages queued before the call. Every way out (reply,
 * timeout, DOWN) goes through call_end: the alias goes first, so a reply
 * that comes later is freed at delivery (late_replies_dropped); then the
 * monitor, and whatever the call may have left after the mark (a DOWN that
 * raced the demonitor, a second reply drained while the alias was active)
 * is purged. A call leaves nothing in the caller's mailbox.
 *
 * Replies are MK_REPLY nodes sent to from.pid with from.ref. The runtime
 * drops them at delivery unless the ref is an active alias of the
 * receiver, which is what makes a second reply, or one after a timeout,
 * harmless.
 *
 * Limits. Ending a call unlinks its record from the server's
 * monitored_by list in O(1) (struct mon's back-link, signal.c), however
 * many calls are in flight to that server. The alias set and the caller's
 * own monitor list are linear, which only matters for a process with many
 * send_requests in flight.
 */
#include "runtime/otp/call.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/alloc.h"
#include "runtime/proc/msg.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/receive.h"
#include "runtime/proc/signal.h"
#include "runtime/sched/sched.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

void call_count_send(void)
{
    struct sched_counters *st = sched_counters();
    atomic_store_explicit(&st->msgs_sent,
                          atomic_load_explicit(&st->msgs_sent, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* A name as the registry takes it: -EINVAL for NULL, "" or too long. */
int call_check_name(const char *name)
{
    if (!name)
        return -EINVAL;
    size_t len = strnlen(name, HIVE_NAME_MAX + 1);
    return len == 0 || len > HIVE_NAME_MAX ? -EINVAL : 0;
}

/* Removes a call's monitor. Returns true if its DOWN can no longer come;
 * false means the DOWN was already sent: it is in our mailbox or queue
 * (decided under the server's lock, where the DOWNs are pushed, whatever
 * the server's pid says). */
bool call_unmonitor(struct proc *self, struct call *c)
{
    return c->light ? sig_call_unmonitor(self) : sig_unmonitor(self, c->ref);
}

/* A reply to, or the DOWN of, the call with this ref. The kind is checked
 * so that a user message carrying a forged ref cannot pass for either. */
bool call_match(const hive_msg *m, void *ctx)
{
    const hive_ref *r = ctx;
    if (m->ref.lo != r->lo || m->ref.hi != r->hi)
        return false;
    uint32_t k = mnode_of(m)->kind;
    return k == MK_REPLY || k == MK_DOWN;
}

/* ------------------------------------------------------------------ */
/* Calls: begin, wait, end                                             */
/* ------------------------------------------------------------------ */

/* Checks shared by every blocking request to a server. */

/* Drops a call's monitor that never carried a request; a DOWN it already
 * queued is taken away. */
static void call_forget(struct proc *self, struct call *c)
{
    hive_msg *m;
    if (!call_unmonitor(self, c))
        while (proc_receive(self, call_match, &c->ref, c->mark, &m, 0) == 0)
            hive_msg_free(m);
}

/* Monitors the server, activates the alias, sends n (an MK_CALL or
 * MK_SYSTEM whose tag and payload are set). On success the request is in
 * flight and must be ended with call_end. On failure n is freed and
 * nothing is left: -ESRCH (server not alive), -EAGAIN (its mailbox is
 * full under HIVE_OVERFLOW_REJECT) or -ENOMEM. */
int call_begin(struct proc *self, hive_pid server, struct mnode *n, struct call *c,
                      bool use_mark)
{
    c->has_mark = use_mark;
    c->mark = use_mark ? proc_mark(self) : NULL;
    c->light = use_mark;
    int rc = c->light ? sig_call_monitor(self, server, &c->ref)
                      : sig_monitor(self, server, true, &c->ref);
    if (rc) {
        mnode_free(n);
        return rc;
    }
    if (alias_add(self, c->ref) != 0) {
        mnode_free(n);
        call_forget(self, c);
        return -ENOMEM;
    }
    n->msg.from = self_pid(self);
    n->msg.ref = c->ref;
    /* A request counts against the server's mailbox limit; a system
     * request (stop, exec) does not. */
    uint32_t flooded;
    rc = n->kind == MK_CALL ? proc_send_user_node(server, n, &flooded)
                            : proc_send_node(server, n);
    if (rc == -EAGAIN) {
        /* Full, under reject: nothing was queued; the call ends now. */
        mnode_free(n);
        alias_remove(self, c->ref);
        call_forget(self, c);
        return -EAGAIN;
    }
    if (rc) {
        /* Dead when we sent (a pid never comes back). Either the monitor
         * found it dead and queued a DOWN(noproc), or it died after the
         * monitor and its DOWN is sent or will never be: call_unmonitor
         * says which, and a DOWN that was sent is taken away. */
        mnode_free(n);
        alias_remove(self, c->ref);
        call_forget(self, c);
        return -ESRCH;
    }
    call_count_send();
    return 0;
}

/* Ends a call on every path. got_down: the call's DOWN was consumed. */
void call_end(struct proc *self, struct call *c, bool got_down)
{
    alias_remove(self, c->ref);
    bool quiet;
    if (got_down) {
        quiet = true;
        if (c->light)
            self->call_mt = NULL; /* the server freed its record with the DOWN */
    } else {
        quiet = call_unmonitor(self, c);
    }
    /* Anything after the mark may be this call's: a DOWN that raced the
     * demonitor, or a reply drained while the alias was still active (a
     * second hive_reply). Without a mark (send_request) the whole queue is
     * looked at, but only when there is something in it. */
    bool look = !quiet || (c->has_mark ? self->pq_tail != c->mark : self->pq_len != 0);
    if (look) {
        hive_msg *m;
        while (proc_receive(self, call_match, &c->ref, c->mark, &m, 0) == 0)
            hive_msg_free(m);
    }
}

/* What a call's DOWN means. noproc: the monitor found the server dead or
 * already exiting (proc_exit marks a process exiting before its pid dies,
 * so the request may even have been accepted by its mailbox): it was not
 * alive when called, -ESRCH, as OTP's call exits with noproc. Any other
 * reason: it exited with the call pending. */
int call_down_result(struct proc *self, const hive_msg *down)
{
    hive_reason r = ((const hive_down *)down->data)->reason;
    self->call_reason = r;
    return r == HIVE_NOPROC ? -ESRCH : -ECONNRESET;
}

/* Waits for the reply or the DOWN. 0 with *out set, -ETIMEDOUT (the call
 * is still in flight: the caller decides), or -ECONNRESET / -ESRCH (ended
 * by the DOWN, consumed; see call_down_result). */
int call_wait(struct proc *self, struct call *c, hive_msg **out, int64_t timeout_ms)
{
    hive_msg *m;
    int rc = proc_receive(self, call_match, &c->ref, c->mark, &m, timeout_ms);
    if (rc)
        return rc;
    struct mnode *n = mnode_of(m);
    if (n->kind == MK_REPLY) {
        *out = m;
        return 0;
    }
    rc = call_down_result(self, m);
    hive_msg_free(m);
    return rc;
}

/* Checks, builds and sends a request: the shared front of hive_call and
 * hive_send_request. */
static int call_start(struct proc *self, hive_pid server, uint32_t tag, const void *req,
                      size_t len, int64_t timeout_ms, bool with_mark, struct call *c)
{
    int rc = call_check(self, server, timeout_ms);
    if (rc)
        return rc;
    if (len > g_rt->cfg.max_message)
        return -EMSGSIZE;
    struct mnode *n = mnode_make(MK_CALL, tag, req, len);
    if (!n)
        return -ENOMEM;
    return call_begin(self, server, n, c, with_mark);
}

static int do_call(struct proc *self, hive_pid server, uint32_t tag, const void *req, size_t len,
                   hive_msg **reply, int64_t timeout_ms)
{
    struct call c;
    int rc = call_start(self, server, tag, req, len, timeout_ms, true, &c);
    if (rc)
        return rc;
    rc = call_wait(self, &c, reply, timeout_ms);
    call_end(self, &c, rc == -ECONNRESET || rc == -ESRCH);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Public API: calls, casts, replies                                   */
/* ------------------------------------------------------------------ */

int hive_call(hive_pid server, uint32_t tag, const void *req, size_t len, hive_msg **reply,
              int64_t timeout_ms)
{
    if (!reply || (!req && len) || tag >= HIVE_TAG_SYSTEM)
        return -EINVAL;
    struct proc *self = cur_proc;
    if (!self)
        return -EPERM;
    return do_call(self, server, tag, req, len, reply, timeout_ms);
}

int hive_call_name(const char *name, uint32_t tag, const void *req, size_t len, hive_msg **reply,
                   int64_t timeout_ms)
{
    if (!reply || (!req && len) || tag >= HIVE_TAG_SYSTEM || call_check_name(name))
        return -EINVAL;
    struct proc *self = cur_proc;
    if (!self)
        return -EPERM;
    /* A name that goes away between the lookup and the monitor gives the
     * call's DOWN(noproc): -ESRCH, like a name that was never there. */
    hive_pid server = hive_whereis(name);
    if (server == HIVE_NOPID) {
        sched_reduce(self); /* a reduction, like the send it did not make */
        return -ESRCH;
    }
    return do_call(self, server, tag, req, len, reply, timeout_ms);
}

void call_set_reason(hive_reason r)
{
    struct proc *self = cur_proc;
    if (self)
        self->call_reason = r;
}

bool call_self_linked(hive_pid pid)
{
    struct proc *self = cur_proc;
    if (!self)
        return false;
    bool found = false;
    proc_lock(self);
    for (struct link *l = self->links; l && !found; l = l->next)
        found = l->pid == pid;
    proc_unlock(self);
    return found;
}

hive_reason hive_call_reason(void)
{
    struct proc *self = cur_proc;
    return self ? self->call_reason : HIVE_NORMAL;
}

/* Never fails for a dead server: the cast is dropped, as in OTP. */
int hive_cast(hive_pid server, uint32_t tag, const void *msg, size_t len)
{
    int rc = proc_send_copy(MK_CAST, server, tag, msg, len);
    return rc == -ESRCH ? 0 : rc;
}

int hive_cast_name(const char *name, uint32_t tag, const void *msg, size_t len)
{
    if (call_check_name(name) || (!msg && len) || tag >= HIVE_TAG_SYSTEM)
        return -EINVAL;
    if (!g_rt)
        return -EPERM;
    hive_pid server = hive_whereis(name);
    if (server == HIVE_NOPID)
        return 0;
    return hive_cast(server, tag, msg, len);
}

/* A reply to a caller that is gone is dropped; one to a call that already
 * ended is dropped at delivery (the alias is no longer active). */
int hive_reply(hive_from from, uint32_t tag, const void *data, size_t len)
{
    int rc = proc_send_reply(from.pid, tag, data, len, from.ref);
    return rc == -ESRCH ? 0 : rc;
}

/* send_request / receive_response: the request id is the call's ref. The
 * wait looks at the whole queue (no mark: the caller may receive other
 * messages between the two). */
int hive_send_request(hive_pid server, uint32_t tag, const void *req, size_t len,
                      hive_ref *req_id)
{
    if (!req_id || (!req && len) || tag >= HIVE_TAG_SYSTEM)
        return -EINVAL;
    struct proc *self = cur_proc;
    if (!self)
        return -EPERM;
    struct call c;
    int rc = call_start(self, server, tag, req, len, 0, false, &c);
    if (rc)
        return rc;
    *req_id = c.ref;
    return 0;
}

int hive_receive_response(hive_ref req_id, hive_msg **reply, int64_t timeout_ms)
{
    if (!reply)
        return -EINVAL;
    struct proc *self = cur_proc;
    if (!self)
        return -EPERM;
    int rc = proc_check_timeout(timeout_ms);
    if (rc)
        return rc;
    /* Not a request in flight (never was, answered, or abandoned). */
    if (!alias_active(self, req_id))
        return -EINVAL;
    struct call c = { .ref = req_id, .mark = NULL, .has_mark = false };
    rc = call_wait(self, &c, reply, timeout_ms);
    /* OTP's receive_response: a timeout abandons the request; its reply,
     * if it ever comes, is dropped. */
    call_end(self, &c, rc == -ECONNRESET || rc == -ESRCH);
    return rc;
}
