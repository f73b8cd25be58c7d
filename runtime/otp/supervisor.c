/*
 * Supervisors: OTP's supervisor, Elixir's DynamicSupervisor and
 * Task.Supervisor, built on the public API only (plus task.h for the task
 * supervisor's tasks).
 *
 * A supervisor is a gen_server that traps exits. Its children are linked
 * to it (the start function runs in the supervisor and links the child to
 * its caller), so a death reaches it as a HIVE_TAG_EXIT message in
 * handle_info; the restart decision and the restart itself happen there,
 * in the supervisor's own process. Like any gen_server it holds no stack
 * while idle.
 *
 * Restart state lives in the gen_server's state (struct sup): the children
 * in start order (a doubly linked list, so a dynamic supervisor adds and
 * drops children in O(1)), a pid -> child hash for the EXIT lookup, and the
 * times of recent restarts (a ring that holds at most intensity entries,
 * and only those within period). A restart costs a hash lookup, a clock
 * read (vDSO, no system call) and the child's start.
 *
 * Shutting a child down, as OTP does: monitor it, unlink it (an EXIT that
 * was already trapped into a message is taken), send the HIVE_SHUTDOWN exit
 * signal, wait for the DOWN for shutdown_ms, then HIVE_KILL and wait for
 * the DOWN. HIVE_BRUTAL_KILL kills at once, HIVE_INFINITY waits.
 *
 * Requests (start_child, which_children, ...) are gen_server calls with
 * tags just below the system range, answered with a copied reply, so a
 * caller that dies meanwhile leaves nothing dangling.
 *
 * A supervisor stops on its parent's exit (gen_server's rule), on
 * hive_gs_stop, on intensity overflow, and on an exit signal that comes
 * from no process (the runtime's stop, or hive_kill from a foreign
 * thread): each time its terminate shuts the children down in reverse
 * start order. One that is killed with HIVE_KILL runs no code: its state
 * stays on a list of supervisor states and is freed by the next supervisor
 * start that finds its process gone.
 */
#include <hive.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/clock.h"
#include "runtime/otp/task.h"

enum sup_kind { SK_STATIC, SK_DYNAMIC, SK_TASK };

enum {
    SUP_TAG = HIVE_TAG_SYSTEM - 0x200u,
    SUP_START_CHILD,
    SUP_TERMINATE,      /* by id */
    SUP_TERMINATE_PID,
    SUP_RESTART,
    SUP_DELETE,
    SUP_WHICH,
    SUP_COUNT,
    SUP_START_TASK,
    SUP_RETRY,          /* cast to itself: try a failed restart again */
};

#define WORKER_SHUTDOWN_MS 5000

struct child {
    struct child *prev, *next;  /* start order */
    struct child *hnext;        /* pid hash chain */
    char     id[HIVE_NAME_MAX + 1];
    int    (*start)(void *arg, hive_pid *out);  /* NULL: a task supervisor's task */
    void    *arg;
    enum hive_restart restart;
    int64_t  shutdown;          /* ms > 0, HIVE_INFINITY or HIVE_BRUTAL_KILL */
    enum hive_child_type type;
    hive_pid pid;               /* HIVE_NOPID: not running */
    uint64_t serial;            /* names the child in a SUP_RETRY */
    bool     restarting;
};

struct sup {
    struct sup *reg_prev, *reg_next;   /* every supervisor state (reclaim list) */
    hive_pid self;
    enum sup_kind kind;
    enum hive_strategy strategy;
    int      intensity;
    int64_t  period_ns;
    unsigned max_children;
    struct child *head, *tail;
    unsigned n;
    struct child **buckets;            /* pid -> running child */
    unsigned nbuckets, nhashed;
    int64_t *rs;                       /* restart times (ns), a ring */
    unsigned rs_cap, rs_head, rs_n;
    uint64_t serial;
};

/* ------------------------------------------------------------------ */
/* Supervisor states: reclaiming those of killed supervisors           */
/* ------------------------------------------------------------------ */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sup *reg_head;
static unsigned reg_n, reg_swept_at;

static void sup_free(struct sup *s);

static void reg_add(struct sup *s)
{
    struct sup *dead = NULL;
    pthread_mutex_lock(&reg_lock);
    /* Amortised: look for states of killed supervisors only when the list
     * has doubled since the last look. */
    if (reg_n >= 2 * reg_swept_at + 8) {
        for (struct sup *x = reg_head, *nx; x; x = nx) {
            nx = x->reg_next;
            if (hive_is_alive(x->self))
                continue;
            if (x->reg_prev)
                x->reg_prev->reg_next = x->reg_next;
            else
                reg_head = x->reg_next;
            if (x->reg_next)
                x->reg_next->reg_prev = x->reg_prev;
            reg_n--;
            x->reg_next = dead;
            dead = x;
        }
        reg_swept_at = reg_n;
    }
    s->reg_prev = NULL;
    s->reg_next = reg_head;
    if (reg_head)
        reg_head->reg_prev = s;
    reg_head = s;
    reg_n++;
    pthread_mutex_unlock(&reg_lock);
    while (dead) {
        struct sup *nx = dead->reg_next;
        sup_free(dead);
        dead = nx;
    }
}

static void reg_del(struct sup *s)
{
    pthread_mutex_lock(&reg_lock);
    if (s->reg_prev)
        s->reg_prev->reg_next = s->reg_next;
    else
        reg_head = s->reg_next;
    if (s->reg_next)
        s->reg_next->reg_prev = s->reg_prev;
    reg_n--;
    pthread_mutex_unlock(&reg_lock);
}

/* ------------------------------------------------------------------ */
/* Children: list, pid hash                                            */
/* ------------------------------------------------------------------ */

static inline unsigned pid_hash(const struct sup *s, hive_pid pid)
{
    return (unsigned)((pid * 0x9E3779B97F4A7C15ull) >> 40) & (s->nbuckets - 1);
}

/* A table twice the size, built from the list: every running child goes
 * in (the one being added included). False when out of memory (the old
 * table stays, with longer chains). */
static bool hash_rebuild(struct sup *s)
{
    unsigned nb = s->nbuckets ? s->nbuckets * 2 : 16;
    struct child **b = calloc(nb, sizeof *b);
    if (!b)
        return false;
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
    s->nhashed = 0;
    for (struct child *c = s->head; c; c = c->next) {
        if (!c->pid)
            continue;
        unsigned h = pid_hash(s, c->pid);
        c->hnext = b[h];
        b[h] = c;
        s->nhashed++;
    }
    return true;
}

/* c->pid is set. */
static void hash_add(struct sup *s, struct child *c)
{
    if (s->nhashed >= s->nbuckets && hash_rebuild(s))
        return;
    if (!s->nbuckets)
        return; /* out of memory at the first child: found by the list walk */
    unsigned h = pid_hash(s, c->pid);
    c->hnext = s->buckets[h];
    s->buckets[h] = c;
    s->nhashed++;
}

static void hash_del(struct sup *s, struct child *c)
{
    if (!s->nbuckets)
        return;
    for (struct child **pp = &s->buckets[pid_hash(s, c->pid)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == c) {
            *pp = c->hnext;
            s->nhashed--;
            return;
        }
    }
}

static struct child *child_by_pid(struct sup *s, hive_pid pid)
{
    if (pid == HIVE_NOPID)
        return NULL;
    if (s->nbuckets) {
        for (struct child *c = s->buckets[pid_hash(s, pid)]; c; c = c->hnext)
            if (c->pid == pid)
                return c;
        return NULL;
    }
    for (struct child *c = s->head; c; c = c->next)
        if (c->pid == pid)
            return c;
    return NULL;
}

static struct child *child_by_id(struct sup *s, const char *id)
{
    for (struct child *c = s->head; c; c = c->next)
        if (strcmp(c->id, id) == 0)
            return c;
    return NULL;
}

static void set_pid(struct sup *s, struct child *c, hive_pid pid)
{
    if (c->pid)
        hash_del(s, c);
    c->pid = pid;
    if (pid)
        hash_add(s, c);
}

static int64_t resolve_shutdown(const hive_child_spec *spec)
{
    if (spec->shutdown_ms != 0)
        return spec->shutdown_ms;
    return spec->type == HIVE_SUPERVISOR ? HIVE_INFINITY : WORKER_SHUTDOWN_MS;
}

/* A new child at the end of the start order. */
static struct child *child_new(struct sup *s, const hive_child_spec *spec, const char *id)
{
    struct child *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (id)
        strcpy(c->id, id);
    c->start = spec->start;
    c->arg = spec->arg;
    c->restart = spec->restart;
    c->shutdown = resolve_shutdown(spec);
    c->type = spec->type;
    c->serial = ++s->serial;
    c->prev = s->tail;
    if (s->tail)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
    s->n++;
    return c;
}

static void child_remove(struct sup *s, struct child *c)
{
    set_pid(s, c, HIVE_NOPID);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        s->tail = c->prev;
    s->n--;
    free(c);
}

static void sup_free(struct sup *s)
{
    while (s->head) {
        struct child *c = s->head;
        s->head = c->next;
        free(c);
    }
    free(s->buckets);
    free(s->rs);
    free(s);
}

/* ------------------------------------------------------------------ */
/* Starting and stopping children                                      */
/* ------------------------------------------------------------------ */

/* 0 (running), HIVE_IGNORE (not running, spec kept), or a negative errno. */
static int child_start(struct sup *s, struct child *c)
{
    hive_pid pid = HIVE_NOPID;
    int rc = c->start(c->arg, &pid);
    if (rc == 0 && pid == HIVE_NOPID)
        rc = HIVE_IGNORE; /* OTP's {ok, undefined} */
    else if (rc > 0 && rc != HIVE_IGNORE)
        rc = -EINVAL;     /* not an answer a start function may give */
    if (rc == 0)
        set_pid(s, c, pid);
    return rc;
}

static bool match_exit_from(const hive_msg *m, void *ctx)
{
    return m->tag == HIVE_TAG_EXIT && m->from == *(const hive_pid *)ctx;
}

static bool match_down(const hive_msg *m, void *ctx)
{
    return m->tag == HIVE_TAG_DOWN && hive_ref_eq(m->ref, *(const hive_ref *)ctx);
}

static void wait_down(hive_ref mref)
{
    hive_msg *m;
    if (hive_receive_if(match_down, &mref, &m, HIVE_INFINITY) == 0)
        hive_msg_free(m);
}

/* Stops a running child and waits until it is gone (OTP's shutdown/2). */
static void child_shutdown(struct sup *s, struct child *c)
{
    hive_pid pid = c->pid;
    if (!pid)
        return;
    set_pid(s, c, HIVE_NOPID);
    hive_ref mref;
    if (hive_monitor(pid, &mref) != 0) {
        /* No memory for a monitor: kill it and rely on the link. */
        hive_kill(pid, HIVE_KILL);
        hive_msg *m;
        if (hive_receive_if(match_exit_from, &pid, &m, HIVE_INFINITY) == 0)
            hive_msg_free(m);
        return;
    }
    /* From here on the DOWN tells us it is gone; its EXIT, if it was
     * already trapped into a message, goes, and no later one comes. */
    hive_unlink(pid);
    hive_msg *m;
    while (hive_receive_if(match_exit_from, &pid, &m, 0) == 0)
        hive_msg_free(m);
    if (c->shutdown != HIVE_BRUTAL_KILL) {
        hive_kill(pid, HIVE_SHUTDOWN);
        if (hive_receive_if(match_down, &mref, &m, c->shutdown) == 0) {
            hive_msg_free(m);
            return;
        }
    }
    hive_kill(pid, HIVE_KILL);
    wait_down(mref);
}

/* Shuts down the running children from `to`'s end of the list back to
 * `from` (inclusive), in reverse start order. Temporary children are
 * dropped (OTP: a temporary child terminated by its supervisor is gone). */
static void shutdown_range(struct sup *s, struct child *from)
{
    struct child *c = s->tail;
    while (c) {
        struct child *prev = c->prev;
        bool last = c == from;
        if (c->pid) {
            child_shutdown(s, c);
            if (c->restart == HIVE_TEMPORARY)
                child_remove(s, c);
        }
        if (last)
            break;
        c = prev;
    }
}

static void shutdown_all(struct sup *s)
{
    if (s->head)
        shutdown_range(s, s->head);
}

/* ------------------------------------------------------------------ */
/* Restarts                                                            */
/* ------------------------------------------------------------------ */

static int64_t now_ns(void)
{
    return (int64_t)clock_precise_ns();
}

/* Counts a restart; true when it is one too many (more than intensity
 * within period). */
static bool restart_overflows(struct sup *s)
{
    int64_t now = now_ns();
    while (s->rs_n && now - s->rs[s->rs_head] > s->period_ns) {
        s->rs_head = (s->rs_head + 1) % s->rs_cap;
        s->rs_n--;
    }
    if (s->rs_n >= (unsigned)s->intensity)
        return true;
    if (s->rs_n == s->rs_cap) {
        unsigned cap = s->rs_cap ? s->rs_cap * 2 : 4;
        if (cap > (unsigned)s->intensity)
            cap = (unsigned)s->intensity;
        int64_t *r = malloc(cap * sizeof *r);
        if (!r)
            return true; /* cannot count it: treat as overflow */
        for (unsigned i = 0; i < s->rs_n; i++)
            r[i] = s->rs[(s->rs_head + i) % s->rs_cap];
        free(s->rs);
        s->rs = r;
        s->rs_cap = cap;
        s->rs_head = 0;
    }
    s->rs[(s->rs_head + s->rs_n) % s->rs_cap] = now;
    s->rs_n++;
    return false;
}

static void schedule_retry(struct sup *s, struct child *c)
{
    c->restarting = true;
    hive_cast(s->self, SUP_RETRY, &c->serial, sizeof c->serial);
}

/* Starts the children from c to the end that are not running. Stops at
 * the first failure, which is tried again later. */
static void start_from(struct sup *s, struct child *c)
{
    while (c) {
        struct child *next = c->next;
        if (!c->pid) {
            int rc = child_start(s, c);
            if (rc < 0) {
                schedule_retry(s, c);
                return;
            }
        }
        c = next;
    }
}

/* c died (or a restart of it failed) and must be restarted: count it and
 * apply the strategy. Returns false when the supervisor must stop. */
static bool restart(hive_gs *gs, struct sup *s, struct child *c)
{
    c->restarting = false;
    if (restart_overflows(s)) {
        shutdown_all(s);
        hive_gs_stop_self(gs, HIVE_SHUTDOWN);
        return false;
    }
    enum hive_strategy st = s->kind == SK_STATIC ? s->strategy : HIVE_ONE_FOR_ONE;
    switch (st) {
    case HIVE_ONE_FOR_ALL:
        shutdown_all(s);
        start_from(s, s->head);
        break;
    case HIVE_REST_FOR_ONE:
        if (c->next)
            shutdown_range(s, c->next);
        start_from(s, c);
        break;
    default: {
        int rc = child_start(s, c);
        if (rc < 0)
            schedule_retry(s, c);
        else if (rc == HIVE_IGNORE && s->kind != SK_STATIC)
            child_remove(s, c);
        break;
    }
    }
    return true;
}

static void child_exited(hive_gs *gs, struct sup *s, struct child *c, hive_reason reason)
{
    set_pid(s, c, HIVE_NOPID);
    bool again = c->restart == HIVE_PERMANENT ||
                 (c->restart == HIVE_TRANSIENT && reason != HIVE_NORMAL && reason != HIVE_SHUTDOWN);
    if (!again) {
        if (c->restart == HIVE_TEMPORARY || s->kind != SK_STATIC)
            child_remove(s, c);
        return;
    }
    restart(gs, s, c);
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

struct req_spec {
    hive_child_spec spec;      /* spec.id is not used: see id */
    char id[HIVE_NAME_MAX + 1];
};

struct req_id {
    char id[HIVE_NAME_MAX + 1];
};

struct rep {
    int      rc;
    hive_pid pid;
};

struct rep_which {
    int total;
    int n;
    hive_child_info info[];
};

static void reply_rc(hive_from from, int rc, hive_pid pid)
{
    struct rep r = { .rc = rc, .pid = pid };
    hive_reply(from, SUP_TAG, &r, sizeof r);
}

static void do_start_child(struct sup *s, const struct req_spec *q, hive_from from)
{
    if (s->kind == SK_STATIC) {
        struct child *old = child_by_id(s, q->id);
        if (old) {
            reply_rc(from, -EEXIST, old->pid);
            return;
        }
    } else if (s->max_children && s->n >= s->max_children) {
        reply_rc(from, -ENOSPC, HIVE_NOPID);
        return;
    }
    if (s->kind == SK_TASK && !q->spec.start) {
        reply_rc(from, -EINVAL, HIVE_NOPID);
        return;
    }
    struct child *c = child_new(s, &q->spec, s->kind == SK_STATIC ? q->id : NULL);
    if (!c) {
        reply_rc(from, -ENOMEM, HIVE_NOPID);
        return;
    }
    int rc = child_start(s, c);
    hive_pid pid = c->pid;
    if (rc < 0 || (rc == HIVE_IGNORE && s->kind != SK_STATIC))
        child_remove(s, c);
    reply_rc(from, rc, pid);
}

static void do_start_task(struct sup *s, const struct task_start *st, hive_from from)
{
    if (s->kind != SK_TASK) {
        reply_rc(from, -EINVAL, HIVE_NOPID);
        return;
    }
    if (s->max_children && s->n >= s->max_children) {
        reply_rc(from, -ENOSPC, HIVE_NOPID);
        return;
    }
    hive_child_spec spec = { .restart = HIVE_TEMPORARY };
    struct child *c = child_new(s, &spec, NULL);
    if (!c) {
        reply_rc(from, -ENOMEM, HIVE_NOPID);
        return;
    }
    hive_pid pid;
    int rc = task_spawn(st, &(hive_spawn_opts){ .flags = HIVE_LINK }, &pid);
    if (rc) {
        child_remove(s, c);
        reply_rc(from, rc, HIVE_NOPID);
        return;
    }
    set_pid(s, c, pid);
    reply_rc(from, 0, pid);
}

static void do_terminate(struct sup *s, struct child *c, hive_from from)
{
    if (!c) {
        reply_rc(from, -ENOENT, HIVE_NOPID);
        return;
    }
    child_shutdown(s, c);
    c->restarting = false;
    if (c->restart == HIVE_TEMPORARY || s->kind != SK_STATIC)
        child_remove(s, c);
    reply_rc(from, 0, HIVE_NOPID);
}

/* The static child `id` that is not running, or NULL after answering
 * -ENOENT (no such child) or -EBUSY (running, or being restarted). */
static struct child *stopped_child(struct sup *s, const char *id, hive_from from)
{
    struct child *c = s->kind == SK_STATIC ? child_by_id(s, id) : NULL;
    if (!c) {
        reply_rc(from, -ENOENT, HIVE_NOPID);
        return NULL;
    }
    if (c->pid || c->restarting) {
        reply_rc(from, -EBUSY, HIVE_NOPID);
        return NULL;
    }
    return c;
}

static void do_restart(struct sup *s, const char *id, hive_from from)
{
    struct child *c = stopped_child(s, id, from);
    if (!c)
        return;
    int rc = child_start(s, c);
    reply_rc(from, rc, c->pid);
}

static void do_delete(struct sup *s, const char *id, hive_from from)
{
    struct child *c = stopped_child(s, id, from);
    if (!c)
        return;
    child_remove(s, c);
    reply_rc(from, 0, HIVE_NOPID);
}

static void do_which(struct sup *s, size_t max, hive_from from)
{
    size_t n = s->n < max ? s->n : max;
    size_t len = sizeof(struct rep_which) + n * sizeof(hive_child_info);
    struct rep_which *r = calloc(1, len);
    if (!r) {
        reply_rc(from, -ENOMEM, HIVE_NOPID);
        return;
    }
    r->total = (int)s->n;
    r->n = (int)n;
    size_t i = 0;
    for (struct child *c = s->head; c && i < n; c = c->next, i++) {
        strcpy(r->info[i].id, c->id);
        r->info[i].pid = c->pid;
        r->info[i].type = c->type;
        r->info[i].restarting = c->restarting;
    }
    hive_reply(from, SUP_WHICH, r, len);
    free(r);
}

static void do_count(struct sup *s, hive_from from)
{
    hive_child_counts k = { 0 };
    for (struct child *c = s->head; c; c = c->next) {
        k.specs++;
        if (c->pid)
            k.active++;
        if (c->type == HIVE_SUPERVISOR)
            k.supervisors++;
        else
            k.workers++;
    }
    hive_reply(from, SUP_COUNT, &k, sizeof k);
}

/* ------------------------------------------------------------------ */
/* The gen_server                                                      */
/* ------------------------------------------------------------------ */

struct sup_start_arg {
    enum sup_kind kind;
    const hive_child_spec *children;
    size_t n;
    hive_sup_opts o;
};

static int sup_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    const struct sup_start_arg *a = arg;
    struct sup *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->self = hive_self();
    s->kind = a->kind;
    s->strategy = a->o.strategy;
    s->intensity = a->o.intensity;
    s->period_ns = a->o.period_ms * 1000000;
    s->max_children = a->o.max_children;
    hive_trap_exits(true);
    for (size_t i = 0; i < a->n; i++) {
        if (!child_new(s, &a->children[i], a->children[i].id)) {
            sup_free(s);
            return -ENOMEM;
        }
    }
    for (struct child *c = s->head; c; c = c->next) {
        int rc = child_start(s, c);
        if (rc < 0) {
            shutdown_all(s);
            sup_free(s);
            return rc;
        }
    }
    reg_add(s);
    *state = s;
    return 0;
}

static void sup_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    struct sup *s = state;
    switch (req->tag) {
    case SUP_START_CHILD:
        do_start_child(s, req->data, from);
        break;
    case SUP_START_TASK:
        do_start_task(s, req->data, from);
        break;
    case SUP_TERMINATE: {
        const struct req_id *q = req->data;
        do_terminate(s, s->kind == SK_STATIC ? child_by_id(s, q->id) : NULL, from);
        break;
    }
    case SUP_TERMINATE_PID:
        do_terminate(s, child_by_pid(s, *(const hive_pid *)req->data), from);
        break;
    case SUP_RESTART:
        do_restart(s, ((const struct req_id *)req->data)->id, from);
        break;
    case SUP_DELETE:
        do_delete(s, ((const struct req_id *)req->data)->id, from);
        break;
    case SUP_WHICH:
        do_which(s, *(const size_t *)req->data, from);
        break;
    case SUP_COUNT:
        do_count(s, from);
        break;
    default:
        reply_rc(from, -EINVAL, HIVE_NOPID);
        break;
    }
}

static void sup_cast(hive_gs *gs, void *state, const hive_msg *msg)
{
    struct sup *s = state;
    if (msg->tag != SUP_RETRY || msg->len != sizeof(uint64_t) || msg->from != s->self)
        return;
    uint64_t serial = *(const uint64_t *)msg->data;
    for (struct child *c = s->head; c; c = c->next) {
        if (c->serial == serial) {
            if (c->restarting && !c->pid)
                restart(gs, s, c);
            return;
        }
    }
}

static void sup_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    struct sup *s = state;
    if (msg->tag != HIVE_TAG_EXIT || msg->len != sizeof(hive_exit_signal))
        return;
    const hive_exit_signal *e = msg->data;
    struct child *c = child_by_pid(s, e->from);
    if (c) {
        child_exited(gs, s, c, e->reason);
        return;
    }
    /* Not a child. An exit signal from no process is the runtime's stop
     * (or hive_kill from a foreign thread): stop, children first. Other
     * processes' exits are ignored, as OTP's supervisor does. */
    if (e->from == HIVE_NOPID)
        hive_gs_stop_self(gs, e->reason);
}

static void sup_terminate(hive_gs *gs, void *state, hive_reason reason)
{
    (void)gs;
    (void)reason;
    struct sup *s = state;
    shutdown_all(s);
    reg_del(s);
    sup_free(s);
}

static const hive_gen_server sup_behaviour = {
    .init = sup_init,
    .handle_call = sup_call,
    .handle_cast = sup_cast,
    .handle_info = sup_info,
    .terminate = sup_terminate,
};

/* ------------------------------------------------------------------ */
/* Public API                                                          */
/* ------------------------------------------------------------------ */

void hive_sup_opts_default(hive_sup_opts *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->strategy = HIVE_ONE_FOR_ONE;
    o->intensity = 3;
    o->period_ms = 5000;
}

static int name_check(const char *name)
{
    size_t len = strnlen(name, HIVE_NAME_MAX + 1);
    return len == 0 || len > HIVE_NAME_MAX ? -EINVAL : 0;
}

static int opts_check(const hive_sup_opts *o)
{
    if ((unsigned)o->strategy > HIVE_REST_FOR_ONE || o->intensity < 0 || o->period_ms < 1 ||
        (o->flags & ~HIVE_LINK))
        return -EINVAL;
    if (o->period_ms > INT64_MAX / 1000000)
        return -EINVAL;
    if (o->name && name_check(o->name))
        return -EINVAL;
    return 0;
}

static int spec_check(const hive_child_spec *c, bool need_id)
{
    if (!c || !c->start)
        return -EINVAL;
    if (need_id && (!c->id || name_check(c->id)))
        return -EINVAL;
    if ((unsigned)c->restart > HIVE_TEMPORARY || (unsigned)c->type > HIVE_SUPERVISOR)
        return -EINVAL;
    if (c->shutdown_ms < 0 && c->shutdown_ms != HIVE_INFINITY && c->shutdown_ms != HIVE_BRUTAL_KILL)
        return -EINVAL;
    return 0;
}

static int start_kind(enum sup_kind kind, const hive_child_spec *children, size_t n,
                      const hive_sup_opts *opts, hive_pid *out)
{
    struct sup_start_arg a = { .kind = kind, .children = children, .n = n };
    if (opts)
        a.o = *opts;
    else
        hive_sup_opts_default(&a.o);
    int rc = opts_check(&a.o);
    if (rc)
        return rc;
    if (kind != SK_STATIC && a.o.strategy != HIVE_ONE_FOR_ONE)
        return -EINVAL;
    if (n && !children)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if ((rc = spec_check(&children[i], true)) != 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(children[i].id, children[j].id) == 0)
                return -EEXIST;
    }
    if (hive_self() == HIVE_NOPID)
        return -EPERM;
    hive_gs_opts go = { .name = a.o.name, .flags = a.o.flags };
    return hive_gs_start(&sup_behaviour, &a, &go, out);
}

int hive_sup_start(const hive_child_spec *children, size_t n, const hive_sup_opts *opts,
                   hive_pid *out)
{
    return start_kind(SK_STATIC, children, n, opts, out);
}

int hive_dynsup_start(const hive_sup_opts *opts, hive_pid *out)
{
    return start_kind(SK_DYNAMIC, NULL, 0, opts, out);
}

int hive_task_sup_start(const hive_sup_opts *opts, hive_pid *out)
{
    return start_kind(SK_TASK, NULL, 0, opts, out);
}

/* One request to a supervisor; a supervisor that exits before it answers
 * is gone (-ESRCH). */
static int sup_call_raw(hive_pid sup, uint32_t tag, const void *req, size_t len, hive_msg **reply)
{
    if (sup == HIVE_NOPID)
        return -EINVAL;
    int rc = hive_call(sup, tag, req, len, reply, HIVE_INFINITY);
    return rc == -ECONNRESET ? -ESRCH : rc;
}

static int sup_request(hive_pid sup, uint32_t tag, const void *req, size_t len, hive_pid *out_pid)
{
    hive_msg *m;
    int rc = sup_call_raw(sup, tag, req, len, &m);
    if (rc)
        return rc;
    struct rep r = { -EINVAL, HIVE_NOPID };
    if (m->len == sizeof r)
        memcpy(&r, m->data, sizeof r);
    hive_msg_free(m);
    if (out_pid && (r.rc == 0 || r.rc == HIVE_IGNORE || (r.rc == -EEXIST && r.pid)))
        *out_pid = r.pid;
    return r.rc;
}

static int start_child_req(hive_pid sup, const hive_child_spec *spec, bool need_id, hive_pid *out)
{
    int rc = spec_check(spec, need_id);
    if (rc)
        return rc;
    struct req_spec q;
    memset(&q, 0, sizeof q);
    q.spec = *spec;
    q.spec.id = NULL;
    if (spec->id) {
        if (name_check(spec->id))
            return need_id ? -EINVAL : 0 /* unreachable */;
        strcpy(q.id, spec->id);
    }
    return sup_request(sup, SUP_START_CHILD, &q, sizeof q, out);
}

int hive_sup_start_child(hive_pid sup, const hive_child_spec *spec, hive_pid *out)
{
    return start_child_req(sup, spec, true, out);
}

int hive_dynsup_start_child(hive_pid sup, const hive_child_spec *spec, hive_pid *out)
{
    if (spec && spec->id && name_check(spec->id)) {
        /* ignored by dynamic supervisors */
        hive_child_spec c = *spec;
        c.id = NULL;
        return start_child_req(sup, &c, false, out);
    }
    return start_child_req(sup, spec, false, out);
}

static int id_request(hive_pid sup, uint32_t tag, const char *id, hive_pid *out)
{
    if (!id || name_check(id))
        return -EINVAL;
    struct req_id q;
    memset(&q, 0, sizeof q);
    strcpy(q.id, id);
    return sup_request(sup, tag, &q, sizeof q, out);
}

int hive_sup_terminate_child(hive_pid sup, const char *id)
{
    return id_request(sup, SUP_TERMINATE, id, NULL);
}

int hive_sup_restart_child(hive_pid sup, const char *id, hive_pid *out)
{
    return id_request(sup, SUP_RESTART, id, out);
}

int hive_sup_delete_child(hive_pid sup, const char *id)
{
    return id_request(sup, SUP_DELETE, id, NULL);
}

int hive_dynsup_terminate_child(hive_pid sup, hive_pid child)
{
    if (child == HIVE_NOPID)
        return -EINVAL;
    return sup_request(sup, SUP_TERMINATE_PID, &child, sizeof child, NULL);
}

int hive_sup_which_children(hive_pid sup, hive_child_info *out, size_t max)
{
    if (!out && max)
        return -EINVAL;
    hive_msg *m;
    int rc = sup_call_raw(sup, SUP_WHICH, &max, sizeof max, &m);
    if (rc)
        return rc;
    if (m->tag != SUP_WHICH) {
        struct rep r = { -EINVAL, 0 };
        if (m->len == sizeof r)
            memcpy(&r, m->data, sizeof r);
        hive_msg_free(m);
        return r.rc;
    }
    const struct rep_which *r = m->data;
    if (r->n > 0)
        memcpy(out, r->info, (size_t)r->n * sizeof *out);
    rc = r->total;
    hive_msg_free(m);
    return rc;
}

int hive_sup_count_children(hive_pid sup, hive_child_counts *out)
{
    if (!out)
        return -EINVAL;
    hive_msg *m;
    int rc = sup_call_raw(sup, SUP_COUNT, NULL, 0, &m);
    if (rc)
        return rc;
    if (m->tag == SUP_COUNT && m->len == sizeof *out) {
        memcpy(out, m->data, sizeof *out);
    } else {
        struct rep r = { -EINVAL, 0 };
        if (m->len == sizeof r)
            memcpy(&r, m->data, sizeof r);
        rc = r.rc;
    }
    hive_msg_free(m);
    return rc;
}

int sup_start_task(hive_pid sup, const struct task_start *st, hive_pid *out)
{
    return sup_request(sup, SUP_START_TASK, st, sizeof *st, out);
}
