/*
 * Processes: the process table, pids, spawn and exit, receive.
 *
 * A pid is  generation:32 | slot:24 | 0xA5:8. The low byte tells a pid from
 * garbage, the slot indexes the table, the generation makes a dead pid never
 * resolve to a newer process in the same slot. Table memory is never
 * returned while the runtime runs, so resolving any well-formed pid is
 * memory-safe; whether it is still alive is decided by comparing
 * proc->pid.
 *
 * Field ownership: fields under "owner" are touched only by the thread
 * running the process (or by the scheduler acting for it while it is
 * switched out); fields under "lock" are guarded by proc->lock; the rest
 * say how they are shared.
 */
#ifndef HIVE_PROC_H
#define HIVE_PROC_H

#include <hive.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/stack.h"
#include "runtime/sched/ctx.h"
#include "runtime/ds/mailbox.h"
#include "runtime/proc/msg.h"

struct ioreq;
struct sched;
struct stack;
struct tentry;

enum proc_kind { PK_FN, PK_HANDLER };

/* Why a process switched back to its scheduler. */
enum yield_why { Y_YIELD, Y_WAIT, Y_IDLE, Y_EXIT_IO, Y_EXIT };

enum proc_status { PS_FREE, PS_RUNNABLE, PS_RUNNING, PS_WAITING, PS_EXITING };

#define PF_EXITING   0x2u   /* lock: set once exit began; no new links/monitors */
#define PF_DOWNED    0x4u   /* lock: the watchers' records are detached and their
                             * DOWNs pushed (sig_on_exit); none is left to unlink */

struct link {               /* a link, kept on both ends */
    struct link *next;
    struct link **pprev;    /* the pointer that points at it: O(1) unlink */
    struct link *peer;      /* the other end's record (valid while both live) */
    hive_pid pid;
};

/* A monitor has two records. The target's, on its monitored_by list (under
 * the target's lock), is doubly linked through pprev so that the watcher
 * can unlink it in O(1) however many monitors the target has (a server
 * with thousands of calls in flight). The watcher's, on its monitors list,
 * points at it (peer). */
struct mon {
    struct mon *next;
    struct mon **pprev;     /* the pointer that points at it (both lists) */
    struct mon *peer;       /* watcher's record: the target's record; target's
                               record of a listed monitor: the watcher's */
    hive_ref ref;
    hive_pid pid;           /* on the target's list: the watcher; on the watcher's: the target */
    bool     internal;      /* a call's monitor: not listed by process_info */
};

/* Free monitor and link records of one scheduler (signal.c), owner
 * thread only. */
struct mon_cache {
    struct mon  *head;
    unsigned     n;
    unsigned     nlinks;
    struct link *links;
};

struct alias_set {          /* refs of calls in flight: replies to others are dropped */
    hive_ref *v;
    uint32_t n, cap;
    hive_ref one;           /* inline slot for the common single call */
    bool     has_one;
};

typedef void (*handler_fn)(void *ctx, hive_msg *m);

struct proc {
    /* --- the mailbox: producers' end on line 0, consumer's end on line 1
     * (see mailbox.h) --- */
    _Alignas(64) struct mbox mbox;

    /* --- owner, on the mailbox consumer's line: what a receive touches
     * right after its pop --- */
    /* private message queue (drained from the mailbox, not yet received) */
    struct mnode *pq_head, *pq_tail;
    uint32_t      pq_len;
    /* receive timeouts (receive.c): the one wake-up timer this process may
     * have armed, left armed between receives for the next to reuse */
    uint32_t      rtimer_tok;       /* its MK_TIMEOUT's aux: tells it from older ones */
    uint64_t      rtimer;           /* its id, 0 when none is armed */
    uint64_t      rtimer_dl;        /* its deadline (clock_precise_ns) */
    uint64_t      examined;         /* messages offered to selective-receive
                                       matchers (tests prove O(1) waits) */

    /* --- shared, atomic --- */
    _Atomic hive_pid pid;           /* current pid of this slot, 0 when free/dead */
    _Atomic uint32_t status;        /* enum proc_status, for introspection */
    /* Mailbox limit (send.c), set at spawn before the pid is published and
     * read by senders after they resolve the pid, on this same line: an
     * unbounded send pays one predictable branch on max_queue. Atomic
     * (relaxed) only because a sender holding a stale pid may read them
     * while a spawn rewrites them. */
    _Atomic uint32_t max_queue;     /* 0 = unbounded */
    _Atomic uint8_t  overflow;      /* enum hive_overflow */
    _Atomic bool     lock;          /* spinlock for links/monitors/name/flags */
    /* --- lock (flags) --- */
    uint32_t      flags;
    /* Overflow bookkeeping, touched only when a bounded mailbox is full. */
    _Atomic uint64_t dropped;       /* hive_process_info's messages_dropped */
    _Atomic hive_pid ovf_kill;      /* the pid an overflow kill was sent to: one
                                       kill per process, however many senders */

    /* --- lock --- */
    struct link  *links;
    struct mon   *monitored_by;     /* watchers of this process */
    char         *name;             /* registered name or NULL */

    /* --- owner --- */
    struct ctx    ctx;
    struct stack *stack;
    /* The stack a process got at spawn and has not run on yet: the first
     * run makes it p->stack on the thread that runs it (sched_prepare,
     * proc_stack_claim), so the spawner touches none of its memory. Either
     * an untouched arena stack (struct stack_resv, alloc/stack.h; its index
     * is resv_index below), whose page fault the runner takes, or, tagged
     * with RESV_WARM, a warm stack (struct stack *: resv_warm), which the
     * runner trades for the warmest stack in its own cache when it has
     * one (stack_cache_trade): a short task then runs on the stack the
     * last one to exit on that core left, whose lines are still there,
     * wherever it was spawned. (An untouched one is claimed as it is:
     * giving it back for a cached stack takes the pool's lock, and in
     * fork_join that halved the rate.) NULL when none. */
    struct stack_arena *resv_arena;
    /* An idle handler's stack, lent back while it waits (sched.c, Y_IDLE):
     * whoever exchanges it out first owns it, the process when it runs
     * again (and resumes on it) or its scheduler reclaiming it. */
    _Atomic(struct stack *) idle_stack;
    struct sched *sched;            /* scheduler running it (valid while running) */
    struct proc  *rq_next;          /* global-queue link */
    enum proc_kind kind;
    enum yield_why why;
    void (*fn)(void *);
    handler_fn handler;
    void         *arg;
    size_t        stack_size;
    uint32_t      gen;
    uint32_t      slot;
    hive_reason   exit_reason;
    hive_reason   call_reason;      /* hive_call_reason() */

    bool          trap_exit;
    uint8_t       resv_index;       /* with resv_arena */
    bool          canary;           /* unguarded stack: check the canary on switch-out */
    /* An exit waiting for other schedulers to cancel its I/O (Y_EXIT_IO,
     * io.c): 1 for the process itself, given up in sched_finish_prev
     * after its switch-out, plus one per group of cancels posted to
     * another scheduler, given up by that scheduler once they reached the
     * kernel (take_acks). Whoever brings it to 0 makes the process
     * runnable; nobody touches the process after a decrement that does
     * not. Here, in the hole after the flags above, it keeps the slot at
     * seven lines; only an exit with I/O in flight touches it. */
    _Atomic uint32_t io_exit_wait;

    /* Messages a handler process holds outside its queues; proc_exit frees
     * them if it exits (hive_exit, killed) before it is done with them. */
    struct mnode *held;             /* the one being handled: borrowed by the
                                     * handler, freed by handler_main after it */
    struct mnode *held_next;        /* one the behaviour handles next (gen_server's continue) */

    struct mon   *monitors;         /* owner-side records of monitors this process holds */
    struct mon   *call_mt;          /* the synchronous call's monitor: its record on
                                       the server (owner only; see sig_call_monitor) */
    hive_pid      call_target;      /* that server */
    struct alias_set aliases;
    void         *gs;               /* gen_server context, if any */
    uint64_t      freenext;         /* free-list link (slot + 1) */
    struct ioreq *io;               /* owner: I/O requests in flight (runtime/proc/io.c) */
};
/* Seven lines: the slot is most of what a process costs beyond its stack
 * page (spawn's bytes per process). A field that would make it eight goes
 * into a hole first (a 4-byte one was io_exit_wait's place). */
_Static_assert(sizeof(struct proc) == 448, "struct proc grew past seven cache lines");

/* --- table and pids --- */
#define PID_MAGIC 0xA5u
static inline uint32_t pid_slot(hive_pid p) { return (uint32_t)(p >> 8) & 0xFFFFFFu; }
static inline uint32_t pid_gen(hive_pid p) { return (uint32_t)(p >> 32); }
static inline hive_pid pid_make(uint32_t slot, uint32_t gen)
{
    return ((uint64_t)gen << 32) | ((uint64_t)slot << 8) | PID_MAGIC;
}

/* The table: chunks of PROC_CHUNK processes, mapped on first use. Read
 * inline on every send; grown under a lock in proc.c. */
#define PROC_CHUNK_SHIFT 12
#define PROC_CHUNK (1u << PROC_CHUNK_SHIFT)
struct proc_table {
    unsigned max;
    unsigned nchunks;
    _Atomic(struct proc *) *chunks;
    _Atomic uint32_t fresh;          /* slots ever handed out */
    /* Slots freed by threads without a scheduler: a free-slot stack
     * (proc.c, "Free slots"); each scheduler has its own (sched.h). */
    _Atomic uint64_t free_head;
};
extern struct proc_table proc_tab;
struct rt;
extern struct rt *g_rt;

int  proc_table_init(unsigned max_processes);
void proc_table_fini(void);

static inline struct proc *proc_at(unsigned slot)
{
    /* acquire: pairs with the release store of the chunk pointer. */
    struct proc *c = atomic_load_explicit(&proc_tab.chunks[slot >> PROC_CHUNK_SHIFT],
                                          memory_order_acquire);
    return c ? &c[slot & (PROC_CHUNK - 1)] : NULL;
}

/* -EINVAL for a pid that cannot be one of ours; else the slot's proc
 * (which may hold another generation: compare proc->pid). */
static inline int proc_resolve(hive_pid pid, struct proc **out)
{
    if ((pid & 0xFF) != PID_MAGIC || pid_gen(pid) == 0)
        return -EINVAL;
    uint32_t slot = pid_slot(pid);
    if (!g_rt || slot >= proc_tab.max)
        return -EINVAL;
    struct proc *p = proc_at(slot);
    if (!p)
        return -ESRCH; /* well formed, never used: no such process */
    *out = p;
    return 0;
}
/* proc_resolve, and the process must be alive: -ESRCH for a stale pid. */
static inline int proc_resolve_live(hive_pid pid, struct proc **out)
{
    int rc = proc_resolve(pid, out);
    if (rc)
        return rc;
    /* acquire: pairs with the release store of pid in proc_spawn, so the
     * new process's fields are visible to whoever found it alive. */
    if (atomic_load_explicit(&(*out)->pid, memory_order_acquire) != pid)
        return -ESRCH;
    return 0;
}
/* The checks every copied message passes (a send, a timer's message):
 * its arguments, the runtime, the size limit, then its live target. 0,
 * -EINVAL, -EPERM, -EMSGSIZE or -ESRCH (send.c). */
int proc_check_send(hive_pid to, uint32_t tag, const void *data, size_t len, struct proc **out);
/* Gives p's slot back: to the free slots of s, the scheduler whose thread
 * calls (NULL: a thread without one, the table's own list). proc.c, "Free
 * slots". */
void proc_slot_free(struct sched *s, struct proc *p);

/* resv_arena's tag for a warm stack taken at spawn (struct proc). */
#define RESV_WARM ((uintptr_t)1)
static inline struct stack *resv_warm(const struct proc *p)
{
    uintptr_t v = (uintptr_t)p->resv_arena;
    return v & RESV_WARM ? (struct stack *)(v & ~RESV_WARM) : NULL;
}

/* The live process for pid, or NULL (dead, stale, or invalid). */
struct proc *proc_live(hive_pid pid);
/* Iterate over every allocated slot (shutdown, tests). */
unsigned proc_table_slots(void);

/* --- the running process ---
 * Thread-local state is read only through these out-of-line accessors: a
 * process can resume on another thread after any switch, and the compiler
 * treats the thread pointer as constant within a function, so an inlined
 * TLS read after a switch could see the previous thread's value. */
struct proc *proc_self(void) HIVE_TLS_ACCESSOR;
void proc_set_self(struct proc *p) HIVE_TLS_ACCESSOR;
#define cur_proc (proc_self())

static inline void proc_lock(struct proc *p)
{
    while (atomic_exchange_explicit(&p->lock, true, memory_order_acquire)) {
        while (atomic_load_explicit(&p->lock, memory_order_relaxed))
            cpu_relax();
    }
}
static inline void proc_unlock(struct proc *p)
{
    atomic_store_explicit(&p->lock, false, memory_order_release);
}

/* --- spawn, exit --- */
/* An internal spawn flag beside HIVE_LINK and HIVE_MONITOR: with
 * HIVE_MONITOR, the monitor is an internal one (sig_monitor's internal),
 * set before the child can run. hive_spawn_opt rejects it. If the
 * monitor cannot be set (out of memory), *opts->monitor is the zero ref. */
#define PSPAWN_INTERNAL_MONITOR (1u << 31)
int  proc_spawn(void (*fn)(void *), handler_fn handler, void *arg,
                const hive_spawn_opts *opts, hive_pid *out);
/* Ends the running process p: exit.c, in order. */
_Noreturn void proc_exit(struct proc *p, hive_reason reason);
/* The same for a process that cannot run (no stack could be had for it),
 * from another context on p->sched's thread; returns. */
void proc_exit_unstacked(struct proc *p, hive_reason reason);
/* Gets p a stack from c (NULL: the global pool) and sets its context to
 * start at p's entry. -ENOMEM if none can be had. */
struct stack_cache;
int  proc_stack_init(struct proc *p, struct stack_cache *c);
/* The first run of a process whose stack was reserved at spawn, on the
 * scheduler whose stack cache is c. */
void proc_stack_claim(struct proc *p, struct stack_cache *c);

/* Counts a spawn (before the process can run) on the calling thread's
 * counters. */
void proc_count_spawn(struct sched *s);
/* Scheduler side, after the exiting process switched away for good. */
void proc_release(struct sched *s, struct proc *p);   /* s: the scheduler it ran on last, the calling thread's */

/* The running process p (of either kind) goes on as a handler process:
 * from now on each message is lent to handler(ctx, m), and it holds no
 * stack while it waits (what is on its stack now is abandoned: nothing
 * there may be needed again). Never returns. */
__attribute__((noreturn)) void proc_become_handler(struct proc *p, handler_fn handler, void *ctx);

/* A handler process moves on to n (held_next, say): the message it was
 * handling is freed, n is the one it handles now. */
void proc_hold(struct proc *p, struct mnode *n);

/* --- delivery (any thread): push n into p's mailbox and schedule p if that
 * ended its wait. n->to must be set. */
/* The receiver's flooded mark (mbox_flooded): 0, or where it is flooded. */
uint32_t proc_deliver(struct proc *p, struct mnode *n);
/* The one send path for copied messages: validates, resolves `to` once,
 * delivers a node of `kind` (MK_USER or MK_CAST, which count against a
 * mailbox limit), counts the send and charges the running sender a
 * reduction. 0, -EINVAL, -EPERM, -EMSGSIZE, -ESRCH (dead target), -EAGAIN
 * (full mailbox under reject) or -ENOMEM. */
int  proc_send_copy(uint32_t kind, hive_pid to, uint32_t tag, const void *data, size_t len);
/* The same for a reply (MK_REPLY carrying ref): never counted. */
int  proc_send_reply(hive_pid to, uint32_t tag, const void *data, size_t len, hive_ref ref);
/* A message the runtime sends for a process to one that waits for it (a
 * task's result or its wake, MK_USER with a tag of the runtime's): counted
 * as a send and charged a reduction like hive_send_msg, but never against
 * the receiver's mailbox limit (a reply it waits for is never refused or
 * dropped). `behind`: a receiver this ends the wait of is queued behind
 * what is runnable here (sched_ready_behind), not in the next slot. 0 or
 * -ESRCH (n left to the caller). */
int  proc_send_uncounted(hive_pid to, struct mnode *n, bool behind);
/* Resolve `to` and deliver, also telling whether the receiver is flooded
 * (mbox_flooded); -EINVAL/-ESRCH with n left to the caller. Never counted
 * against a mailbox limit: timer messages, DOWNs, exit signals, system
 * requests and I/O completions go this way. */
static inline int proc_send_node_flooded(hive_pid to, struct mnode *n, uint32_t *flooded)
{
    struct proc *p;
    int rc = proc_resolve_live(to, &p);
    if (rc)
        return rc;
    n->to = to;
    *flooded = proc_deliver(p, n);
    return 0;
}
static inline int proc_send_node(hive_pid to, struct mnode *n)
{
    uint32_t flooded;
    return proc_send_node_flooded(to, n, &flooded);
}
/* The same for a node others send that counts against a mailbox limit
 * (hive_send_msg, call requests): also -EAGAIN (full, reject: n left to
 * the caller); a node that a full mailbox dropped is freed and 0 returned.
 * Inline like proc_send_node_flooded: the unbounded path is its one
 * branch more; the bounded one is send.c's. */
int proc_send_user_bounded(struct proc *p, hive_pid to, struct mnode *n, uint32_t max,
                           uint32_t *flooded);
static inline int proc_send_user_node(hive_pid to, struct mnode *n, uint32_t *flooded)
{
    struct proc *p;
    int rc = proc_resolve_live(to, &p);
    if (rc)
        return rc;
    n->to = to;
    uint32_t max = atomic_load_explicit(&p->max_queue, memory_order_relaxed);
    if (__builtin_expect(max != 0, 0))
        return proc_send_user_bounded(p, to, n, max, flooded);
    *flooded = proc_deliver(p, n);
    return 0;
}

/* --- mailbox limits (send.c) --- */
/* A counted node leaves p's queue (received, dropped, freed): the sub that
 * pairs with its sender's add. Relaxed, like the add: the counter orders
 * nothing else, the mailbox's own exchange publishes the node. */
static inline void proc_uncount(struct proc *p, struct mnode *n)
{
    n->aux2 = 0;
    atomic_fetch_sub_explicit(&p->mbox.counted, 1, memory_order_relaxed);
}
static inline bool mnode_counted(const struct mnode *n)
{
    return n->aux2 == MN_COUNTED;
}
/* Drop-oldest: the receiver dropped a counted message to make room. */
void proc_note_dropped(struct proc *p);

#endif
