/*
 * The clocks every deadline and time stamp of the runtime is read from:
 * timers and receive time-outs, the I/O time-outs (io/tmo.c), the
 * scheduler loop's spin and steal timings, async_stream's item time-outs.
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

#include <stdbool.h>
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

/* Answers in a row a caller may take from the coarse clock (clock_not_yet):
 * how late a deadline can be seen where the tick stops on a busy core
 * (nohz_full) and the coarse clock stalls. */
#define CLOCK_COARSE_SKIPS 64u

/* True when the coarse clock alone shows that deadline is more than a tick
 * away (*skips counts such answers; at most CLOCK_COARSE_SKIPS in a row);
 * false, with *skips reset, when the caller must read the precise clock. */
static inline bool clock_not_yet(uint64_t deadline, unsigned *skips)
{
    if (*skips < CLOCK_COARSE_SKIPS && deadline > g_clock_coarse_res_ns &&
        clock_coarse_ns() < deadline - g_clock_coarse_res_ns) {
        (*skips)++;
        return true;
    }
    *skips = 0;
    return false;
}

#endif
