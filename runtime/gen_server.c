/*
 * gen_server: OTP's generic server, and the call/reply machinery it uses.
 *
 * A server is a handler process (proc.h): while idle it holds no stack. Each
 * message gets a pooled stack and is dispatched on its node kind (MK_CALL ->
 * handle_call, MK_CAST -> handle_cast, MK_SYSTEM -> stop / exec, anything
 * else -> handle_info). The message is lent to us by the handler process
 * (proc.c): it is freed after gs_handle returns, or by proc_exit if the
 * server dies inside a callback (hive_exit, HIVE_KILL while it waits in a
 * nested receive), and so is a pending continue (held_next). Its context,
 * struct hive_gs, lives in a side table indexed by process slot rather
 * than on the heap: an idle server costs its struct proc plus one table
 * entry.
 *
 * Start. hive_gs_start hands the new process a start block (heap, owned by
 * the child from then on), monitors it, and waits for an MK_REPLY ack whose
 * ref is an alias of the starter, or for the DOWN: a crash in init cannot
 * hang the starter. The child registers its name (before init, as OTP
 * does), runs init, and acks; on HIVE_IGNORE or an error it unregisters,
 * unlinks from the starter and acks before exiting normally, so the starter
 * never sees the name, nor an EXIT from a start that failed.
 *
 * Calls. hive_call marks the end of the caller's private queue
 * (proc_mark), monitors the server (an internal monitor, not listed by
 * hive_process_info), makes the monitor ref an alias, sends an MK_CALL
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
#include "gen_server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../alloc/alloc.h"
#include "msg.h"
#include "proc.h"
#include "sched.h"
#include "wheel.h"

/* System requests (MK_SYSTEM nodes): n->aux says which. The tag is a
 * system tag, so a process that is not a gen_server and receives one sees
 * a tag >= HIVE_TAG_SYSTEM (as an Erlang process sees a {system, ...}). */
enum gs_sys { GS_SYS_STOP = 1, GS_SYS_EXEC };
#define GS_TAG_SYS (HIVE_TAG_SYSTEM + 0x100u)

struct hive_gs {
    hive_gen_server b;      /* the callbacks (copied: the caller's may go away) */
    void       *state;
    hive_pid    parent;     /* linked starter (HIVE_LINK), else HIVE_NOPID */
    hive_reason stop_reason;
    bool        stopping;   /* hive_gs_stop_self was called */
};

/* What the starter hands to the new process. */
struct gs_start {
    const hive_gen_server *b;
    void    *arg;
    hive_pid starter;
    hive_ref ack_ref;
    bool     link;
    char     name[HIVE_NAME_MAX + 1];
};

struct gs_ack {
    int      rc;
    hive_pid pid;           /* -EEXIST: the process that has the name */
};

/* hive_gs_exec: shared by the caller and the server. States, and who moves
 * them:
 *   PENDING -> RUNNING    server, before it calls fn
 *   RUNNING -> DONE       server, after fn, before it replies
 *   PENDING -> ABANDONED  caller, on timeout
 * The server never touches the ticket after it sent the reply; the caller
 * frees it on the reply or the DOWN. An abandoned ticket is the server's to
 * free (when it gets to the request). */
enum { EX_PENDING, EX_RUNNING, EX_DONE, EX_ABANDONED };
struct exec_ticket {
    _Atomic int st;
    void (*fn)(void *state, void *ctx);
    void *ctx;
};

/* ------------------------------------------------------------------ */
/* The context table                                                   */
/* ------------------------------------------------------------------ */

/* Chunks of 4096 entries, allocated on first use and kept for the life of
 * the program (a later runtime reuses them): every entry is rewritten when
 * a server starts in its slot. An entry holds no message: the one being
 * handled and a pending continue are the process's (held, held_next). */
#define GS_CHUNK_SHIFT 12
#define GS_CHUNK (1u << GS_CHUNK_SHIFT)
#define GS_NCHUNKS ((1u << 24) >> GS_CHUNK_SHIFT)   /* max_processes <= 1 << 24 */

static _Atomic(struct hive_gs *) gs_chunks[GS_NCHUNKS];
static pthread_mutex_t gs_grow = PTHREAD_MUTEX_INITIALIZER;

static struct hive_gs *gs_entry(uint32_t slot)
{
    unsigned ci = slot >> GS_CHUNK_SHIFT;
    /* acquire: pairs with the release store below. */
    struct hive_gs *c = atomic_load_explicit(&gs_chunks[ci], memory_order_acquire);
    if (!c) {
        pthread_mutex_lock(&gs_grow);
        c = atomic_load_explicit(&gs_chunks[ci], memory_order_relaxed);
        if (!c) {
            c = calloc(GS_CHUNK, sizeof *c);
            if (c)
                atomic_store_explicit(&gs_chunks[ci], c, memory_order_release);
        }
        pthread_mutex_unlock(&gs_grow);
        if (!c)
            return NULL;
    }
    return &c[slot & (GS_CHUNK - 1)];
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static void count_send(void)
{
    struct sched_counters *st = sched_counters();
    atomic_store_explicit(&st->msgs_sent,
                          atomic_load_explicit(&st->msgs_sent, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static inline hive_pid self_pid(struct proc *p)
{
    return atomic_load_explicit(&p->pid, memory_order_relaxed);
}

/* A name as the registry takes it: -EINVAL for NULL, "" or too long. */
static int check_name(const char *name)
{
    if (!name)
        return -EINVAL;
    size_t len = strnlen(name, HIVE_NAME_MAX + 1);
    return len == 0 || len > HIVE_NAME_MAX ? -EINVAL : 0;
}

/* Removes a call's monitor. Returns true if its DOWN can no longer come;
 * false means the DOWN was already sent: it is in our mailbox or queue
 * (sig_unmonitor decides under the server's lock, where the DOWNs are
 * pushed, whatever the server's pid says). */
static bool call_demonitor(struct proc *self, hive_ref ref)
{
    return sig_unmonitor(self, ref);
}

/* A reply to, or the DOWN of, the call with this ref. The kind is checked
 * so that a user message carrying a forged ref cannot pass for either. */
static bool match_call(const hive_msg *m, void *ctx)
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

struct call {
    hive_ref      ref;     /* monitor ref == alias == from.ref */
    struct mnode *mark;    /* end of the private queue before the request */
    bool          has_mark;
};

/* Checks shared by every blocking request to a server. */
static int call_check(struct proc *self, hive_pid server, int64_t timeout_ms)
{
    if (!self)
        return -EPERM;
    if (server == HIVE_NOPID)
        return -EINVAL;
    struct proc *t;
    int rc = proc_resolve(server, &t);
    if (rc == -EINVAL)
        return rc;
    if (server == self_pid(self))
        return -EDEADLK;
    return proc_check_timeout(timeout_ms);
}

/* Monitors the server, activates the alias, sends n (an MK_CALL or
 * MK_SYSTEM whose tag and payload are set). On success the request is in
 * flight and must be ended with call_end. On failure n is freed and
 * nothing is left: -ESRCH (server not alive) or -ENOMEM. */
static int call_begin(struct proc *self, hive_pid server, struct mnode *n, struct call *c,
                      bool use_mark)
{
    c->has_mark = use_mark;
    c->mark = use_mark ? proc_mark(self) : NULL;
    int rc = sig_monitor(self, server, true, &c->ref);
    if (rc) {
        mnode_free(n);
        return rc;
    }
    alias_add(self, c->ref);
    n->msg.from = self_pid(self);
    n->msg.ref = c->ref;
    rc = proc_send_node(server, n);
    if (rc) {
        /* Dead when we sent (a pid never comes back). Either the monitor
         * found it dead and queued a DOWN(noproc), or it died after the
         * monitor and its DOWN is sent or will never be: call_demonitor
         * says which, and a DOWN that was sent is taken away. */
        mnode_free(n);
        alias_remove(self, c->ref);
        hive_msg *m;
        if (!call_demonitor(self, c->ref))
            while (proc_receive(self, match_call, &c->ref, c->mark, &m, 0) == 0)
                hive_msg_free(m);
        return -ESRCH;
    }
    count_send();
    return 0;
}

/* Ends a call on every path. got_down: the call's DOWN was consumed. */
static void call_end(struct proc *self, struct call *c, bool got_down)
{
    alias_remove(self, c->ref);
    bool quiet = got_down ? true : call_demonitor(self, c->ref);
    /* Anything after the mark may be this call's: a DOWN that raced the
     * demonitor, or a reply drained while the alias was still active (a
     * second hive_reply). Without a mark (send_request) the whole queue is
     * looked at, but only when there is something in it. */
    bool look = !quiet || (c->has_mark ? self->pq_tail != c->mark : self->pq_len != 0);
    if (look) {
        hive_msg *m;
        while (proc_receive(self, match_call, &c->ref, c->mark, &m, 0) == 0)
            hive_msg_free(m);
    }
}

/* What a call's DOWN means. noproc: the monitor found the server dead or
 * already exiting (proc_exit marks a process exiting before its pid dies,
 * so the request may even have been accepted by its mailbox): it was not
 * alive when called, -ESRCH, as OTP's call exits with noproc. Any other
 * reason: it exited with the call pending. */
static int down_result(struct proc *self, const hive_msg *down)
{
    hive_reason r = ((const hive_down *)down->data)->reason;
    self->call_reason = r;
    return r == HIVE_NOPROC ? -ESRCH : -ECONNRESET;
}

/* Waits for the reply or the DOWN. 0 with *out set, -ETIMEDOUT (the call
 * is still in flight: the caller decides), or -ECONNRESET / -ESRCH (ended
 * by the DOWN, consumed; see down_result). */
static int call_wait(struct proc *self, struct call *c, hive_msg **out, int64_t timeout_ms)
{
    hive_msg *m;
    int rc = proc_receive(self, match_call, &c->ref, c->mark, &m, timeout_ms);
    if (rc)
        return rc;
    struct mnode *n = mnode_of(m);
    if (n->kind == MK_REPLY) {
        *out = m;
        return 0;
    }
    rc = down_result(self, m);
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
    if (!reply || (!req && len) || tag >= HIVE_TAG_SYSTEM || check_name(name))
        return -EINVAL;
    struct proc *self = cur_proc;
    if (!self)
        return -EPERM;
    /* A name that goes away between the lookup and the monitor gives the
     * call's DOWN(noproc): -ESRCH, like a name that was never there. */
    hive_pid server = hive_whereis(name);
    if (server == HIVE_NOPID)
        return -ESRCH;
    return do_call(self, server, tag, req, len, reply, timeout_ms);
}

hive_reason hive_call_reason(void)
{
    struct proc *self = cur_proc;
    return self ? self->call_reason : HIVE_NORMAL;
}

int hive_cast(hive_pid server, uint32_t tag, const void *msg, size_t len)
{
    if ((!msg && len) || tag >= HIVE_TAG_SYSTEM || server == HIVE_NOPID)
        return -EINVAL;
    if (!g_rt)
        return -EPERM;
    if (len > g_rt->cfg.max_message)
        return -EMSGSIZE;
    struct proc *t;
    int rc = proc_resolve(server, &t);
    if (rc == -EINVAL)
        return rc;
    if (rc || atomic_load_explicit(&t->pid, memory_order_acquire) != server)
        return 0; /* a dead server: the cast is dropped, as in OTP */
    struct mnode *n = mnode_make(MK_CAST, tag, msg, len);
    if (!n)
        return -ENOMEM;
    n->msg.from = hive_self();
    if (proc_send_node(server, n)) {
        mnode_free(n);
        return 0;
    }
    count_send();
    if (cur_proc)
        proc_reduce(cur_proc);
    return 0;
}

int hive_cast_name(const char *name, uint32_t tag, const void *msg, size_t len)
{
    if (check_name(name) || (!msg && len) || tag >= HIVE_TAG_SYSTEM)
        return -EINVAL;
    if (!g_rt)
        return -EPERM;
    hive_pid server = hive_whereis(name);
    if (server == HIVE_NOPID)
        return 0;
    return hive_cast(server, tag, msg, len);
}

int hive_reply(hive_from from, uint32_t tag, const void *data, size_t len)
{
    if ((!data && len) || tag >= HIVE_TAG_SYSTEM || from.pid == HIVE_NOPID)
        return -EINVAL;
    if (!g_rt)
        return -EPERM;
    if (len > g_rt->cfg.max_message)
        return -EMSGSIZE;
    struct proc *t;
    int rc = proc_resolve(from.pid, &t);
    if (rc == -EINVAL)
        return rc;
    if (rc || atomic_load_explicit(&t->pid, memory_order_acquire) != from.pid)
        return 0; /* the caller is gone: nothing to do */
    struct proc *self = cur_proc;
    struct mnode *n = mnode_make_on(proc_sched_of(self), MK_REPLY, tag, data, len);
    if (!n)
        return -ENOMEM;
    n->msg.from = self ? self_pid(self) : HIVE_NOPID;
    n->msg.ref = from.ref;
    /* A caller that died since the check is like one that dies just
     * after the push: its drain frees the node (wrong generation). */
    proc_post(self, t, from.pid, n);
    return 0;
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

/* ------------------------------------------------------------------ */
/* The server                                                          */
/* ------------------------------------------------------------------ */

static inline struct hive_gs *gs_self(void)
{
    return cur_proc->gs;
}

/* Runs terminate and exits: the end of every stop that gen_server itself
 * carries out (stop_self, hive_gs_stop, a parent's exit while trapping). */
static _Noreturn void gs_stop_now(struct hive_gs *gs, hive_reason reason)
{
    struct proc *p = cur_proc;
    if (p->held_next) {
        mnode_free(p->held_next);
        p->held_next = NULL;
    }
    if (gs->b.terminate)
        gs->b.terminate(gs, gs->state, reason);
    proc_exit(cur_proc, reason);
}

/* After each callback: a requested stop, then pending continues (which run
 * before any other message, since we are still inside this activation).
 * A continue becomes the held message in place of the one just handled. */
static void gs_after(struct hive_gs *gs)
{
    struct proc *p = cur_proc;
    for (;;) {
        if (gs->stopping)
            gs_stop_now(gs, gs->stop_reason);
        struct mnode *c = p->held_next;
        if (!c)
            return;
        p->held_next = NULL;
        proc_hold(p, c);
        if (gs->b.handle_continue) {
            gs->b.handle_continue(gs, gs->state, &c->msg);
        } else {
            /* OTP: {continue, _} without handle_continue is an undef crash */
            gs->stopping = true;
            gs->stop_reason = HIVE_ERROR;
        }
    }
}

static void gs_exec(struct hive_gs *gs, struct mnode *n)
{
    struct exec_ticket *t = *(struct exec_ticket **)n->msg.data;
    int expect = EX_PENDING;
    /* acq_rel: acquire pairs with the caller's release CAS to ABANDONED
     * (and with its writes of fn/ctx, published by the send). */
    if (!atomic_compare_exchange_strong_explicit(&t->st, &expect, EX_RUNNING,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        mem_free(t, sizeof *t); /* abandoned: ours to free */
        return;
    }
    t->fn(gs->state, t->ctx);
    /* release: fn's effects before the caller sees DONE. */
    atomic_store_explicit(&t->st, EX_DONE, memory_order_release);
    hive_reply((hive_from){ n->msg.from, n->msg.ref }, 0, NULL, 0);
    /* the ticket is the caller's again from the reply on */
}

static void gs_handle(void *arg, hive_msg *m)
{
    (void)arg;
    struct hive_gs *gs = gs_self();
    struct mnode *n = mnode_of(m);
    switch (n->kind) {
    case MK_CALL:
        if (gs->b.handle_call) {
            gs->b.handle_call(gs, gs->state, m, (hive_from){ m->from, m->ref });
        } else {
            /* OTP crashes a server on a call it has no clause for; the
             * caller gets -ECONNRESET with reason HIVE_ERROR. */
            gs->stopping = true;
            gs->stop_reason = HIVE_ERROR;
        }
        break;
    case MK_CAST:
        if (gs->b.handle_cast) {
            gs->b.handle_cast(gs, gs->state, m);
        } else {
            gs->stopping = true;
            gs->stop_reason = HIVE_ERROR;
        }
        break;
    case MK_SYSTEM:
        if (n->aux == GS_SYS_STOP) {
            gs_stop_now(gs, *(hive_reason *)m->data);
        }
        if (n->aux == GS_SYS_EXEC)
            gs_exec(gs, n);
        break;
    case MK_REPLY:
        /* The answer to a hive_send_request made from a callback: the
         * request is over once it is here. */
        alias_remove(cur_proc, m->ref);
        if (!call_demonitor(cur_proc, m->ref)) {
            hive_msg *d;
            while (proc_receive(cur_proc, match_call, &m->ref, NULL, &d, 0) == 0)
                hive_msg_free(d);
        }
        if (gs->b.handle_info)
            gs->b.handle_info(gs, gs->state, m);
        break;
    default:
        if (m->tag == HIVE_TAG_EXIT && gs->parent != HIVE_NOPID && m->from == gs->parent) {
            /* The parent's exit, trapped: gen_server's own business. */
            gs_stop_now(gs, ((hive_exit_signal *)m->data)->reason);
        }
        if (gs->b.handle_info)
            gs->b.handle_info(gs, gs->state, m);
        break;
    }
    gs_after(gs);
}

static void gs_ack(const struct gs_start *s, int rc, hive_pid pid)
{
    struct gs_ack a = { .rc = rc, .pid = pid };
    struct mnode *n = mnode_make(MK_REPLY, 0, &a, sizeof a);
    if (!n)
        return; /* the starter sees our DOWN instead */
    n->msg.from = hive_self();
    n->msg.ref = s->ack_ref;
    if (proc_send_node(s->starter, n))
        mnode_free(n);
}

/* Failed start: no name, no link (so no EXIT at the starter), then the
 * answer, then a normal exit. */
static _Noreturn void gs_init_fail(const struct gs_start *s, bool registered, int rc,
                                   hive_pid other)
{
    struct proc *p = cur_proc;
    if (registered)
        hive_unregister(s->name);
    if (s->link)
        hive_unlink(s->starter);
    p->gs = NULL;
    gs_ack(s, rc, other);
    proc_exit(p, HIVE_NORMAL);
}

/* First activation of a new server: name, init, ack, continue. The start
 * block is copied to this stack and freed first: init may exit. */
static void gs_init_hook(void *arg)
{
    struct gs_start s = *(struct gs_start *)arg;
    mem_free(arg, sizeof s);
    struct proc *p = cur_proc;
    hive_pid me = self_pid(p);
    struct hive_gs *gs = gs_entry(p->slot);
    if (!gs)
        gs_init_fail(&s, false, -ENOMEM, HIVE_NOPID);
    memset(gs, 0, sizeof *gs);
    gs->b = *s.b;
    gs->parent = s.link ? s.starter : HIVE_NOPID;
    p->gs = gs;

    if (s.name[0]) {
        int rc;
        hive_pid other = HIVE_NOPID;
        /* The holder may exit between our attempt and the lookup: try
         * again, the name is then free. */
        for (int tries = 0; tries < 100; tries++) {
            rc = hive_register(s.name, me);
            if (rc != -EEXIST || (other = hive_whereis(s.name)) != HIVE_NOPID)
                break;
        }
        if (rc)
            gs_init_fail(&s, false, rc, other);
    }

    void *state = s.arg;
    int rc = gs->b.init ? gs->b.init(gs, s.arg, &state) : 0;
    if (rc != 0)
        gs_init_fail(&s, s.name[0] != 0, rc, HIVE_NOPID);
    gs->state = state;
    gs_ack(&s, 0, me);
    gs_after(gs);
}

static bool match_ack(const hive_msg *m, void *ctx)
{
    const hive_ref *r = ctx; /* r[0]: ack ref, r[1]: monitor ref */
    uint32_t k = mnode_of(m)->kind;
    if (k == MK_REPLY)
        return hive_ref_eq(m->ref, r[0]);
    return k == MK_DOWN && hive_ref_eq(m->ref, r[1]);
}

int hive_gs_start(const hive_gen_server *b, void *arg, const hive_gs_opts *opts, hive_pid *out)
{
    if (!b)
        return -EINVAL;
    unsigned flags = opts ? opts->flags : 0;
    const char *name = opts ? opts->name : NULL;
    if (flags & ~HIVE_LINK)
        return -EINVAL;
    if (name && check_name(name))
        return -EINVAL;
    struct proc *self = cur_proc;
    if (!self)
        return -EPERM;

    struct gs_start *s = mem_alloc(sizeof *s);
    if (!s)
        return -ENOMEM;
    s->b = b;
    s->arg = arg;
    s->starter = self_pid(self);
    s->ack_ref = hive_make_ref();
    s->link = flags & HIVE_LINK;
    s->name[0] = 0;
    if (name)
        memcpy(s->name, name, strlen(name) + 1);

    struct mnode *mark = proc_mark(self);
    alias_add(self, s->ack_ref);
    hive_ref refs[2] = { s->ack_ref, { 0, 0 } };
    hive_spawn_opts so = { .flags = flags & HIVE_LINK };
    hive_pid pid;
    int rc = proc_spawn(gs_init_hook, gs_handle, s, &so, &pid);
    if (rc) {
        alias_remove(self, refs[0]);
        mem_free(s, sizeof *s);
        return rc;
    }
    /* s belongs to the child now. If it already exited, the monitor gives
     * an immediate DOWN, queued after its ack. */
    if ((rc = sig_monitor(self, pid, true, &refs[1])) != 0) {
        /* out of memory: wait for the ack alone */
        refs[1] = (hive_ref){ 0, 0 };
    }
    hive_msg *m;
    proc_receive(self, match_ack, refs, mark, &m, HIVE_INFINITY);
    struct mnode *n = mnode_of(m);
    bool down = n->kind == MK_DOWN;
    if (down) {
        /* init exited (hive_exit) or was killed before it answered */
        self->call_reason = ((hive_down *)m->data)->reason;
        rc = -ECONNRESET;
    } else {
        struct gs_ack *a = m->data;
        rc = a->rc;
        if (rc == 0 || rc == -EEXIST)
            pid = a->pid;
    }
    hive_msg_free(m);
    struct call c = { .ref = refs[1], .mark = mark, .has_mark = true };
    alias_remove(self, refs[0]);
    if (!down && (refs[1].hi || refs[1].lo))
        call_end(self, &c, false);
    if ((rc == 0 || rc == -EEXIST) && out)
        *out = pid;
    return rc;
}

/* ------------------------------------------------------------------ */
/* Public API: inside callbacks                                        */
/* ------------------------------------------------------------------ */

void hive_gs_stop_self(hive_gs *gs, hive_reason reason)
{
    if (!gs)
        return;
    gs->stopping = true;
    gs->stop_reason = reason;
}

void hive_gs_continue(hive_gs *gs, uint32_t tag, const void *data, size_t len)
{
    if (!gs || (!data && len) || tag >= HIVE_TAG_SYSTEM)
        return;
    struct mnode *n = mnode_make(MK_USER, tag, data, len);
    if (!n) {
        fprintf(stderr, "hive: out of memory for a gen_server continue\n");
        gs->stopping = true;
        gs->stop_reason = HIVE_ERROR;
        return;
    }
    struct proc *p = cur_proc;
    if (!p || p->gs != gs) { /* not from inside this server's callbacks */
        mnode_free(n);
        return;
    }
    n->msg.from = self_pid(p);
    if (p->held_next)
        mnode_free(p->held_next); /* one continue per callback: the last one counts */
    p->held_next = n;
}

void hive_gs_set_state(hive_gs *gs, void *state)
{
    if (gs)
        gs->state = state;
}

/* ------------------------------------------------------------------ */
/* Public API: stop, exec                                              */
/* ------------------------------------------------------------------ */

static bool match_down_ref(const hive_msg *m, void *ctx)
{
    return mnode_of(m)->kind == MK_DOWN && hive_ref_eq(m->ref, *(hive_ref *)ctx);
}

int hive_gs_stop(hive_pid server, hive_reason reason, int64_t timeout_ms)
{
    struct proc *self = cur_proc;
    int rc = call_check(self, server, timeout_ms);
    if (rc)
        return rc;
    struct mnode *n = mnode_make(MK_SYSTEM, GS_TAG_SYS + GS_SYS_STOP, &reason, sizeof reason);
    if (!n)
        return -ENOMEM;
    n->aux = GS_SYS_STOP;
    struct call c;
    if ((rc = call_begin(self, server, n, &c, true)) != 0)
        return rc;
    /* Only the DOWN ends a stop: it comes once terminate ran and the
     * process is gone. noproc: it was exiting already, not our stop. */
    hive_msg *m;
    rc = proc_receive(self, match_down_ref, &c.ref, c.mark, &m, timeout_ms);
    if (rc == 0) {
        if (down_result(self, m) == -ESRCH)
            rc = -ESRCH;
        hive_msg_free(m);
    }
    call_end(self, &c, rc != -ETIMEDOUT);
    return rc;
}

int hive_gs_exec(hive_pid server, void (*fn)(void *state, void *ctx), void *ctx,
                 int64_t timeout_ms)
{
    if (!fn)
        return -EINVAL;
    struct proc *self = cur_proc;
    int rc = call_check(self, server, timeout_ms);
    if (rc)
        return rc;
    struct exec_ticket *t = mem_alloc(sizeof *t);
    if (!t)
        return -ENOMEM;
    atomic_init(&t->st, EX_PENDING);
    t->fn = fn;
    t->ctx = ctx;
    struct mnode *n = mnode_make(MK_SYSTEM, GS_TAG_SYS + GS_SYS_EXEC, &t, sizeof t);
    if (!n) {
        mem_free(t, sizeof *t);
        return -ENOMEM;
    }
    n->aux = GS_SYS_EXEC;
    struct call c;
    if ((rc = call_begin(self, server, n, &c, true)) != 0) {
        mem_free(t, sizeof *t);
        return rc;
    }
    hive_msg *m = NULL;
    rc = call_wait(self, &c, &m, timeout_ms);
    if (rc == -ETIMEDOUT) {
        int expect = EX_PENDING;
        /* release: pairs with the server's acquire CAS; after it the
         * ticket is the server's. */
        if (atomic_compare_exchange_strong_explicit(&t->st, &expect, EX_ABANDONED,
                                                    memory_order_release, memory_order_relaxed)) {
            call_end(self, &c, false);
            return -ETIMEDOUT;
        }
        /* fn has started: it finishes before we return, and then it has
         * run, so the answer is its outcome. */
        rc = call_wait(self, &c, &m, HIVE_INFINITY);
    }
    if (m)
        hive_msg_free(m);
    call_end(self, &c, rc == -ECONNRESET || rc == -ESRCH);
    mem_free(t, sizeof *t);
    return rc;
}

static void get_state_fn(void *state, void *ctx)
{
    *(void **)ctx = state;
}

int hive_gs_get_state(hive_pid server, void **state, int64_t timeout_ms)
{
    if (!state)
        return -EINVAL;
    return hive_gs_exec(server, get_state_fn, state, timeout_ms);
}

size_t gs_context_bytes(void)
{
    return sizeof(struct hive_gs);
}
