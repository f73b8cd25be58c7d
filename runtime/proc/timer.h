/*
 * Timers: hive_send_after/interval, receive timeouts and sleeps, all kept in
 * the arming scheduler's wheel (wheel.c). Arming and cancelling make no
 * system call; the wheel's next deadline is the timeout of the scheduler's
 * park.
 *
 * Entries live in a global table of chunks (never freed while the runtime
 * runs) so that a hive_timer id — index and generation — can be checked
 * from any thread. Each entry's `state` word is  gen << 2 | ST_*:
 *   ARMED -> FIRED      by the owner scheduler when it fires (CAS)
 *   ARMED -> CANCELLED  by hive_cancel_timer / a finished receive (CAS)
 * Whoever wins the CAS decides the entry's fate; the entry is unlinked and
 * freed only by its owner scheduler: at once when it fired or was cancelled
 * on the owner's thread, else when the owner drains its `cancels` stack.
 */
#ifndef HIVE_TIMER_H
#define HIVE_TIMER_H

#include <hive.h>
#include <stdbool.h>
#include <stdint.h>

struct sched;
struct proc;
struct tentry;

void timer_global_init(void);
void timer_global_fini(void);
void timer_sched_init(struct sched *s);
void timer_sched_fini(struct sched *s);   /* frees what is left in its wheel */

/* Receive timeouts: deliver an MK_TIMEOUT node with aux = seq to pid, at
 * or after deadline_ns (absolute, clock_ns). Returns the timer's id (never
 * 0), or 0 when out of memory. */
uint64_t timer_arm_wake(struct sched *s, hive_pid pid, uint32_t seq, uint64_t deadline_ns);
/* Cancels by id from any thread: ms left (rounded up), or -ENOENT when it
 * already fired, was cancelled, or the id is not a timer's. */
int64_t timer_cancel_id(uint64_t id);
/* The same without the time left (no clock read): a receive's timeout. */
void timer_cancel_wake(uint64_t id);

/* Owner: cancels from other threads, then fire what is due. */
void timer_poll(struct sched *s, uint64_t now_ns);
/* Owner: when the next timer is due (absolute ns); false if none. */
bool timer_next(struct sched *s, uint64_t *deadline_ns);
bool timer_pending_cancels(struct sched *s);

#endif
