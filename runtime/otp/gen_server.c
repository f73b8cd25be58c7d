/*
 * gen_server: OTP's generic server (the call/reply machinery is call.c).
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
 */
#include "runtime/otp/gen_server.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/alloc.h"
#include "runtime/otp/call.h"
#include "runtime/proc/msg.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/receive.h"
#include "runtime/proc/signal.h"
#include "runtime/sched/sched.h"

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
        if (!sig_unmonitor(cur_proc, m->ref)) {
            hive_msg *d;
            while (proc_receive(cur_proc, call_match, &m->ref, NULL, &d, 0) == 0)
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
    mnode_block_free(arg);
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
    if (name && call_check_name(name))
        return -EINVAL;
    if (opts && (unsigned)opts->overflow > HIVE_OVERFLOW_KILL)
        return -EINVAL;
    struct proc *self = cur_proc;
    if (!self)
        return -EPERM;

    /* From the node cache (msg.h): the child frees it on its first run. */
    _Static_assert(sizeof(struct mnode) + sizeof(struct gs_start) <= 256,
                   "a start block fits a cached node");
    struct gs_start *s = mnode_block_alloc(sizeof *s);
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
    if (alias_add(self, s->ack_ref) != 0) {
        mnode_block_free(s);
        return -ENOMEM;
    }
    hive_ref refs[2] = { s->ack_ref, { 0, 0 } };
    /* The monitor is set before the child can run, so an init that exits
     * at once is seen with its own reason, not as noproc. */
    hive_spawn_opts so = { .flags = (flags & HIVE_LINK) | HIVE_MONITOR | PSPAWN_INTERNAL_MONITOR,
                           .monitor = &refs[1],
                           .max_queue = opts ? opts->max_queue : 0,
                           .overflow = opts ? opts->overflow : HIVE_OVERFLOW_REJECT };
    hive_pid pid;
    int rc = proc_spawn(gs_init_hook, gs_handle, s, &so, &pid);
    if (rc) {
        alias_remove(self, refs[0]);
        mnode_block_free(s);
        return rc;
    }
    /* s belongs to the child now. Without a monitor (out of memory) we
     * wait for the ack alone. */
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

/* The state the next callback (and terminate) gets; only from inside this
 * server's own callbacks, as hive_gs_continue: gs is the callee's, and
 * another process writing it would race with the server's next call. */
void hive_gs_set_state(hive_gs *gs, void *state)
{
    struct proc *p = cur_proc;
    if (gs && p && p->gs == gs)
        gs->state = state;
}

/* ------------------------------------------------------------------ */
/* Public API: stop, exec                                              */
/* ------------------------------------------------------------------ */

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
    rc = proc_receive(self, proc_match_down_ref, &c.ref, c.mark, &m, timeout_ms);
    if (rc == 0) {
        if (call_down_result(self, m) == -ESRCH)
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
