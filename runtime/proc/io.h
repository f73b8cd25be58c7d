/*
 * Process-facing I/O (runtime/proc/io.c): the hooks the scheduler, the
 * exit path and the receive path call. The hive_io_* functions themselves
 * are public (hive.h).
 */
#ifndef HIVE_PROC_IO_H
#define HIVE_PROC_IO_H

#include <stdbool.h>

struct sched;
struct proc;
struct mnode;

/* Once, before the first scheduler starts: the backend's completion
 * handler, SIGPIPE ignored if nobody handles it. */
void io_global_init(void);
/* The scheduler loop, once per pass (and before parking): take cancels
 * posted by other threads, submit what this pass queued (one
 * io_uring_enter), dispatch ready completions (no system call). */
struct sched_source;
extern const struct sched_source io_source;   /* rt.c registers it */
/* On the scheduler's thread once its ring is bound: the backend may take
 * posted cancels itself before it hands data to operations (io/ring.h). */
void io_sched_bind(struct sched *s);
/* Scheduler teardown (after its thread stopped, before its ring goes):
 * waits until the kernel has let go of every operation started there. */
void io_sched_fini(struct sched *s);
/* The exit path: every operation the process still has in flight is
 * cancelled; its buffers belong to the scheduler until the kernel is done.
 * Cancels on this thread's ring reach the kernel before this returns.
 * Those on other schedulers' rings are posted to them; with can_wait,
 * each of those schedulers tells p once its cancels reached the kernel,
 * and true says that p must switch out with Y_EXIT_IO now: the last of
 * them (or p's own switch-out, if they were quicker) makes it runnable
 * again, to announce its exit only then. */
bool io_proc_exit(struct proc *p, bool can_wait);
/* Whether every operation p has in flight is on s's ring (so an exit on
 * s need not wait for another scheduler). */
bool io_all_on(struct proc *p, struct sched *s);
/* The receive path, when an MK_IO completion leaves the mailbox. */
void io_delivered(struct proc *p, struct mnode *n);

#endif
