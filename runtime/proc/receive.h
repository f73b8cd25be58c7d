/*
 * Receiving (receive.c): selective receive, marks, the private queue,
 * receive timeouts, aliases of calls in flight.
 */
#ifndef HIVE_RECEIVE_H
#define HIVE_RECEIVE_H

#include <hive.h>
#include <stdbool.h>
#include <stdint.h>

struct proc;
struct mnode;
struct mon_cache;

/* --- receive (the running process) --- */
typedef bool (*match_fn)(const hive_msg *, void *);
/* Selective receive. start: scan from the message after this one (a mark,
 * see proc_mark), NULL for the whole queue. */
int  proc_receive(struct proc *p, match_fn match, void *ctx, struct mnode *start, hive_msg **out,
                  int64_t timeout_ms);
/* proc_receive(p, NULL, NULL, NULL, ..): the first message, whatever it is. */
int  proc_receive_any(struct proc *p, hive_msg **out, int64_t timeout_ms);
/* Current end of the private queue: messages that arrive after the mark are
 * the only ones proc_receive(.., mark, ..) looks at (the O(1) reply wait). */
struct mnode *proc_mark(struct proc *p);
/* Matches the DOWN message of the monitor whose ref ctx points at. */
bool proc_match_down_ref(const hive_msg *m, void *ref);
/* Removes the first queued message that matches, without blocking; true if one was removed. */
bool proc_flush_one(struct proc *p, match_fn match, void *ctx);
/* 0, or -EINVAL for a timeout that is neither >= 0 nor HIVE_INFINITY, or
 * beyond the timer wheel's range. */
int proc_check_timeout(int64_t t);
/* Drain the mailbox if something is there (exit signals act then). */
void proc_poll_signals(struct proc *p);
/* Cancels the process's receive timer, if armed (exit). */
void proc_timer_drop(struct proc *p);
/* proc_reduce after a receive: also marks a flooded mailbox. */
void proc_reduce_receive(struct proc *p);

/* --- aliases --- */
int  alias_add(struct proc *p, hive_ref r);   /* 0 or -ENOMEM */
void alias_remove(struct proc *p, hive_ref r);
bool alias_active(const struct proc *p, hive_ref r);

/* Appends to the private queue (the process's own thread). */
void proc_queue_append(struct proc *p, struct mnode *n);
uint32_t proc_queue_len(struct proc *p);

#endif
