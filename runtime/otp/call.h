/*
 * The call machinery shared by the client side (call.c) and the server side
 * (gen_server.c): a call monitors the server, makes the monitor ref an
 * alias of the caller, and waits for a reply or DOWN with that ref.
 */
#ifndef HIVE_CALL_H
#define HIVE_CALL_H

#include <hive.h>
#include <stdbool.h>
#include <stddef.h>

#include "runtime/proc/msg.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/receive.h"

struct call {
    hive_ref      ref;     /* monitor ref == alias == from.ref */
    struct mnode *mark;    /* end of the private queue before the request */
    bool          has_mark;
    bool          light;   /* a synchronous call: its monitor is self->call_mt
                              (sig_call_monitor), not a listed one */
};

static inline hive_pid self_pid(struct proc *p)
{
    return atomic_load_explicit(&p->pid, memory_order_relaxed);
}

void call_count_send(void);
/* A name as the registry takes it: -EINVAL for NULL, "" or too long. */
int  call_check_name(const char *name);
/* Removes a call's monitor; true if its DOWN can no longer come. */
bool call_unmonitor(struct proc *self, struct call *c);
/* A reply to, or the DOWN of, the call whose ref is *ctx. */
bool call_match(const hive_msg *m, void *ctx);
/* Checks shared by every blocking request to a server. */
static inline int call_check(struct proc *self, hive_pid server, int64_t timeout_ms)
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

/* Monitors the server, makes the ref an alias, sends n (consumed). A call
 * with a mark is synchronous (the caller waits for it before doing
 * anything else) and gets the light monitor. */
int  call_begin(struct proc *self, hive_pid server, struct mnode *n, struct call *c,
                bool with_mark);
/* Waits for the reply or the DOWN: 0, -ETIMEDOUT, -ESRCH, -ECONNRESET. */
int  call_wait(struct proc *self, struct call *c, hive_msg **out, int64_t timeout_ms);
/* Every way out of a call: alias, monitor, leftovers. */
void call_end(struct proc *self, struct call *c, bool got_down);
/* -ESRCH for a DOWN with noproc, else -ECONNRESET with call_reason set. */
int  call_down_result(struct proc *self, const hive_msg *down);
/* Sets what hive_call_reason() returns to the calling process (tasks). */
void call_set_reason(hive_reason r);
/* Whether the calling process is linked to pid (an exit signal from it
 * that is still on its way keeps the link until it acts). */
bool call_self_linked(hive_pid pid);

#endif
