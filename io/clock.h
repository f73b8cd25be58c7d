/*
 * The clocks deadlines are read from, shared by the I/O time-outs
 * (io/tmo.c), the timer wheel's source (runtime/proc/timer.c) and
 * async_stream's item time-outs (runtime/otp/stream.c).
 *
 * The precise clock is CLOCK_MONOTONIC. The coarse one is the time of the
 * last kernel tick: 3-4 ns to read against the precise clock's 22 ns in a
 * VM, never ahead of the precise one, and behind it by at most
 * g_clock_coarse_res_ns while ticks run. A deadline checked against it is
 * checked against the precise clock once the coarse one says it may be
 * within that resolution, so nothing ends early; where the tick can stop
 * (a nohz_full core), the callers bound how many answers in a row they
 * take from it.
 */
#ifndef HIVE_IO_CLOCK_H
#define HIVE_IO_CLOCK_H

#include <stdint.h>
#include <time.h>

/* The coarse clock's resolution in ns (a tick); 1 s until clock_init has
 * read it, so that a caller before then only trusts the coarse clock less. */
extern uint64_t g_clock_coarse_res_ns;

/* Reads the resolution: at start, before any scheduler runs (the runtime
 * start and the ring set-up call it; calling it again is harmless). */
void clock_init(void);

static inline uint64_t clock_precise_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static inline uint64_t clock_coarse_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

#endif
