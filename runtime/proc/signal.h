/*
 * Links, monitors and exit signals (signal.c).
 */
#ifndef HIVE_SIGNAL_H
#define HIVE_SIGNAL_H

#include <hive.h>
#include <stdbool.h>
#include <stdint.h>

struct proc;
struct mnode;
struct mon_cache;

/* --- exit signals and monitors (signal.c) --- */
/* What an exit signal means for the process that drained it: nothing
 * (void, or a normal exit while not trapping), a message (trapped: an EXIT
 * message is now on p's private queue), or death with *reason. Consumes
 * n. The receive path acts on the verdict. */
enum sig_verdict { SIG_IGNORE, SIG_TRAPPED, SIG_DIE };
enum sig_verdict sig_exit_verdict(struct proc *p, struct mnode *n, hive_reason *reason);
/* Fires links and monitors of an exiting process (called by proc_exit). */
void sig_on_exit(struct proc *p, hive_pid self, hive_reason reason);
/* The watcher-side record for a DOWN that was delivered is dropped. */
void sig_down_delivered(struct proc *p, hive_ref ref);
int  sig_monitor(struct proc *self, hive_pid target, bool internal, hive_ref *out);
int  sig_demonitor(struct proc *self, hive_ref ref, unsigned flags);
/* Removes self's monitor ref (no flush). True if the monitor was removed
 * before its DOWN was sent: no DOWN will come. False if there was no such
 * monitor (its DOWN was drained already) or its DOWN was already pushed:
 * it is in self's mailbox or private queue. */
bool sig_unmonitor(struct proc *self, hive_ref ref);
/* The same for a monitor of `target` (its pid): O(1) in the number of
 * monitors self holds, as long as the target lives (its short list of
 * watchers is searched instead of self's). */
bool sig_unmonitor_pid(struct proc *self, hive_pid target, hive_ref ref);
/* What an owner does to a child that is done with it (a task that
 * delivered): drops self's monitor `ref` of the live process `child` and
 * the link between them, if any, in one section under both locks. True if
 * done: no DOWN and no exit signal will come from child for them. False
 * (nothing changed) if child is not alive or holds no such monitor. */
bool sig_drop_child(struct proc *self, hive_pid child, hive_ref ref);
/* A synchronous call's monitor (hive_call, gs_stop, gs_exec): only the
 * server's record, kept in self->call_mt, no watcher record and no lock of
 * self. A process is in at most one synchronous call. A dead server gets
 * an immediate DOWN(noproc) and no record. */
int  sig_call_monitor(struct proc *self, hive_pid target, hive_ref *out);
/* Removes it: true if no DOWN will come (same answer as sig_unmonitor). */
bool sig_call_unmonitor(struct proc *self);
int  sig_link(struct proc *self, hive_pid target);
void sig_free_records(struct proc *p);
/* The overflow kill (send.c): an exit signal with HIVE_OVERFLOWED that p,
 * whose pid is pid, cannot trap. 0 or -ENOMEM. */
int  sig_overflow_kill(struct proc *p, hive_pid pid);
/* Frees a scheduler's cached monitor records (at its teardown). */
void sig_cache_flush(struct mon_cache *c);

#endif
