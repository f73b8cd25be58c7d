/*
 * What tasks (task.c), streams (stream.c) and task supervisors
 * (supervisor.c) share: the task process, its start block and its reply.
 */
#ifndef HIVE_TASK_H
#define HIVE_TASK_H

#include <hive.h>
#include <stdbool.h>
#include <stddef.h>

/* Tags just below the system range: a task's reply, and the go a task
 * started by a task supervisor waits for (its owner monitors it first; the
 * go carries the monitor's ref, a hive_ref). */
#define TASK_TAG_REPLY HIVE_TAG_TASK_REPLY
#define TASK_TAG_GO    (HIVE_TAG_SYSTEM - 0x0FFu)
#define TASK_TAG_WAKE  (HIVE_TAG_SYSTEM - 0x0FEu)  /* task.c: "done, and you wait" */

/* What a task runs: fn1(arg), or fn2(arg, index) for a stream's item. */
struct task_start {
    void *(*fn1)(void *arg);
    void *(*fn2)(void *ctx, size_t i);
    void    *arg;
    size_t   index;
    unsigned slot;          /* the stream's slot for this item */
    hive_pid owner;         /* gets the reply */
    hive_ref ref;           /* tags the reply (ref_reply): the owner's monitor
                               of the task */
    bool     unlink_owner;  /* linked to the owner: unlink before the reply */
    bool     wait_go;       /* wait for TASK_TAG_GO from the owner first */
    bool     linger;        /* a hive_task of a plain process: the result goes
                               to its result slot and the task waits to be
                               taken (task.c); else it is sent as a
                               TASK_TAG_REPLY */
    bool     ref_reply;     /* the reply carries ref (a hive_task's, which its
                               owner may take by hand); a stream's items are
                               matched by their slot and go without */
};

/* The reply's payload (tag TASK_TAG_REPLY, from = the task, ref = the
 * owner's monitor of the task). The result comes first: the public
 * promise (HIVE_TAG_TASK_REPLY's payload starts with the result). */
struct task_reply {
    void    *result;
    size_t   index;
    unsigned slot;
};

/* Spawns a task running *st (copied) with these spawn options; with
 * HIVE_MONITOR its reply carries the monitor's ref (*so->monitor). */
int  task_spawn(const struct task_start *st, const hive_spawn_opts *so, hive_pid *out);
/* Asks the task supervisor sup to start a task linked to it (wait_go is
 * set): 0 and *out, -ESRCH, -ENOSPC, -ENOMEM, -EINVAL. */
int  sup_start_task(hive_pid sup, const struct task_start *st, hive_pid *out);
/* Lets a task that waits for its go run; mref (the owner's monitor of
 * it) tags its reply. */
void task_go(hive_pid task, hive_ref mref);
/* Stops a task at once and takes everything it may have left in the
 * caller's mailbox (reply, DOWN, a trapped EXIT). */
void task_kill_flush(hive_pid pid, hive_ref mref, bool linked);
/* hive_call_reason() for the calling process, and whether it is linked to
 * pid (call.c). */
void call_set_reason(hive_reason r);
bool call_self_linked(hive_pid pid);
/* A linked task ended without a result: as in Elixir, its exit signal
 * ends an owner that does not trap exits. That signal is on its way (the
 * task sends it after its DOWN); the owner exits with the same reason now
 * rather than return and be killed at its next receive. */
void task_crash_propagates(hive_pid pid, hive_reason reason);

#endif
