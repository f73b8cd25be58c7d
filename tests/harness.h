/*
 * Shared helpers for the Check suites.
 *
 * Each test runs a body as the main process of a fresh runtime
 * (hive_main), in Check's fork mode, so an assertion that fails inside a
 * hive process ends the forked test child cleanly. Tests synchronise on
 * messages and monitors, never on sleeps.
 */
#ifndef HIVE_TEST_HARNESS_H
#define HIVE_TEST_HARNESS_H

#include <check.h>
#include <hive.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* HIVE_TEST_DEFER_TASKRUN=1 (set by tests/CMakeLists.txt for the NAME@defer
 * runs of the I/O suites) runs every runtime of the test with
 * hive_config.defer_taskrun: the same tests on DEFER_TASKRUN rings. */
static inline void run_hive_cfg(hive_config *cfg, void (*fn)(void *), void *arg)
{
    const char *d = getenv("HIVE_TEST_DEFER_TASKRUN");
    if (d && !strcmp(d, "1"))
        cfg->defer_taskrun = true;
    int rc = hive_main(cfg, fn, arg);
    ck_assert_msg(rc == 0, "hive_main failed: %d (%s)", rc, hive_strerror(rc));
}

/* The tests' configuration: `scheds` schedulers, unpinned (so tests may
 * ask for more schedulers than cores), a short spin and shutdown. */
static inline hive_config test_config(unsigned scheds)
{
    hive_config cfg;
    hive_config_default(&cfg);
    cfg.schedulers = scheds;
    cfg.pin = false;
    cfg.spin_us = 20;
    cfg.shutdown_ms = 2000;
    return cfg;
}

/* Runs fn(arg) as the main process with test_config(scheds). */
static inline void run_hive(unsigned scheds, void (*fn)(void *), void *arg)
{
    hive_config cfg = test_config(scheds);
    run_hive_cfg(&cfg, fn, arg);
}

/* CLOCK_MONOTONIC in nanoseconds, for tests that measure when things
 * happened (never to wait for them). */
static inline uint64_t test_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Processes alive by hive_stats: spawns - exits. */
static inline long live_processes(void)
{
    hive_sched_stats t;
    hive_stats(NULL, 0, &t);
    return (long)(t.spawns - t.exits);
}

/* live_processes(), once it reads `want` or
 * after 5 s, whichever comes first. A process's exit is counted when its
 * slot is freed, just after its DOWN and EXIT signals went out
 * (runtime/proc/exit.c): a test that has seen every DOWN can still read
 * the count of a process that is a few instructions from the end on
 * another scheduler. The caller asserts on the value returned. */
static inline long live_processes_settled(long want)
{
    for (int i = 0;; i++) {
        long live = live_processes();
        if (live == want || i == 5000)
            return live;
        hive_sleep(1);
    }
}

/* Receive one message with the given tag (others stay queued). */
static inline bool match_tag(const hive_msg *m, void *ctx)
{
    return m->tag == *(uint32_t *)ctx;
}

static inline hive_msg *recv_tag(uint32_t tag, int64_t timeout_ms)
{
    hive_msg *m = NULL;
    int rc = hive_receive_if(match_tag, &tag, &m, timeout_ms);
    ck_assert_msg(rc == 0, "no message with tag %u: %s", tag, hive_strerror(rc));
    return m;
}

/* Waits for the DOWN of a monitor and returns its reason. */
static inline bool match_down(const hive_msg *m, void *ctx)
{
    return m->tag == HIVE_TAG_DOWN && hive_ref_eq(m->ref, *(hive_ref *)ctx);
}

static inline hive_reason wait_down(hive_ref ref)
{
    hive_msg *m;
    int rc = hive_receive_if(match_down, &ref, &m, 10000);
    ck_assert_msg(rc == 0, "no DOWN: %s", hive_strerror(rc));
    hive_reason r = ((hive_down *)m->data)->reason;
    hive_msg_free(m);
    return r;
}

/* Standard main(): runs the suite built by make_suite(). */
#define HIVE_TEST_MAIN(make_suite)                                        \
    int main(void)                                                        \
    {                                                                     \
        SRunner *sr = srunner_create(make_suite());                       \
        srunner_set_fork_status(sr, CK_FORK);                             \
        srunner_run_all(sr, CK_NORMAL);                                   \
        int failed = srunner_ntests_failed(sr);                           \
        srunner_free(sr);                                                 \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;                      \
    }

#endif
