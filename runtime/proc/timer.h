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

#include "runtime/ds/wheel.h"

struct sched;
struct proc;
struct tentry;

/* A scheduler's timers: its wheel and free entries (owner thread only). */
struct timer_local {
    struct wheel   wheel;
    struct tentry *free;
    /* timer.c, poll_source: nothing in the wheel fires before this clock
     * time (0: unknown, look), and the passes that trusted it without a
     * look at the precise clock since the last one. */
    uint64_t       due_ns;
    unsigned       skips;
};
/* What other threads hand a scheduler's timers: cancels, a Treiber stack
 * pushed by cancel (release) and taken whole by the owner's timer_poll
 * (acquire exchange). Its own cache line. */
struct timer_remote {
    _Alignas(64) _Atomic(struct tentry *) cancels;
};

void timer_global_init(void);
void timer_global_fini(void);
void timer_sched_init(struct sched *s);
void timer_sched_fini(struct sched *s);   /* frees what is left in its wheel */

/* Receive timeouts: deliver an MK_TIMEOUT node with aux = seq to pid, at
 * or after deadline_ns (absolute, clock_precise_ns). Returns the timer's id (never
 * 0), or 0 when out of memory. */
uint64_t timer_arm_wake(struct sched *s, hive_pid pid, uint32_t seq, uint64_t deadline_ns);
/* Cancels by id from any thread: ms left (rounded up), or -ENOENT when it
 * already fired, was cancelled, or the id is not a timer's. */
int64_t timer_cancel_id(uint64_t id);
/* The same without the time left (no clock read): a receive's timeout. */
void timer_cancel_wake(uint64_t id);

/* The scheduler loop polls the timers through this (rt.c registers it):
 * cancels from other threads, then what is due; the next deadline bounds
 * the scheduler's park. */
struct sched_source;
extern const struct sched_source timer_source;

#endif
