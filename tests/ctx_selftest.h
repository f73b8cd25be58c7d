/*
 * Context-switch self test, independent of the runtime: two contexts bounce
 * control back and forth while holding values in callee-saved registers
 * and floating point; both must see their state intact after every switch.
 * Used by test_ctx.c, and built on its own for other architectures
 * (scripts/check-aarch64.sh runs it under qemu).
 */
#ifndef HIVE_CTX_SELFTEST_H
#define HIVE_CTX_SELFTEST_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "runtime/sched/ctx.h"

static struct ctx st_main, st_co;
static volatile int st_errors;
static volatile uint64_t st_shared;

static void st_co_fn(void *arg)
{
    ctx_started();
    uint64_t a = (uint64_t)(uintptr_t)arg, b = a * 3, c = a ^ 0x5555;
    double d = 1.5;
    for (int i = 0; i < 1000; i++) {
        st_shared = a + b + c + (uint64_t)i;
        ctx_switch(&st_co, &st_main, false);
        if (a != (uint64_t)(uintptr_t)arg || b != a * 3 || c != (a ^ 0x5555))
            st_errors++;
        d = d * 1.0001 + 0.5;
    }
    if (d < 1.5)
        st_errors++;
    st_shared = 0;
    ctx_switch(&st_co, &st_main, true);
    abort(); /* never resumed */
}

static int ctx_selftest(void)
{
    static char stack[64 * 1024] __attribute__((aligned(16)));
    st_errors = 0;
    ctx_init(&st_co, stack, sizeof stack, st_co_fn, (void *)(uintptr_t)77);
#ifdef HIVE_TSAN
    st_co.tsan_fiber = __tsan_create_fiber(0);
    st_main.tsan_fiber = __tsan_get_current_fiber();
#endif
#ifdef HIVE_ASAN
    {
        pthread_attr_t attr;
        void *lo;
        size_t sz;
        pthread_getattr_np(pthread_self(), &attr);
        pthread_attr_getstack(&attr, &lo, &sz);
        pthread_attr_destroy(&attr);
        st_main.stack_lo = lo;
        st_main.stack_size = sz;
    }
#endif
    uint64_t x = 11, y = 22;
    double z = 0.25;
    for (int i = 0; i < 1000; i++) {
        ctx_switch(&st_main, &st_co, false);
        uint64_t expect = 77 + 77 * 3 + (77 ^ 0x5555) + (uint64_t)i;
        if (st_shared != expect || x != 11 || y != 22)
            st_errors++;
        z = z * 2.0;
        if (z > 1e6)
            z = 0.25;
    }
    ctx_switch(&st_main, &st_co, false); /* let it finish */
    if (st_shared != 0 || z <= 0)
        st_errors++;
#ifdef HIVE_TSAN
    __tsan_destroy_fiber(st_co.tsan_fiber);
#endif
    return st_errors;
}

#endif
