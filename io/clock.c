/* The coarse clock's resolution (io/clock.h). */
#include "io/clock.h"

/* Written by clock_init before the scheduler threads start (their creation
 * orders it before their reads), the same value each time: plain. */
uint64_t g_clock_coarse_res_ns = 1000000000u;

void clock_init(void)
{
    struct timespec r;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &r) == 0)
        g_clock_coarse_res_ns = (uint64_t)r.tv_sec * 1000000000u + (uint64_t)r.tv_nsec;
}
