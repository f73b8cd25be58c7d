/*
 * Work stealing's grace (hive_config.steal_grace_us): an idle scheduler
 * takes a process queued alone (or with one other) behind a busy one only
 * once that queue's head has stood still for the grace, and then it does
 * take it. A process that spins without a reduction holds its scheduler;
 * the process queued behind it can only run by being stolen, and it ends
 * the spin when it runs.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>

#include "harness.h"
#include "runtime/sched/sched.h"

enum { T_REPORT = 1 };

struct runner {
    _Atomic uint64_t spawned_ns, started_ns;
    _Atomic unsigned sched;
};
static struct runner g_busy, g_queued;
static _Atomic int g_released;
static hive_pid g_main;

/* Holds its scheduler until the queued process runs (or 10 s pass). */
static void busy(void *arg)
{
    (void)arg;
    atomic_store(&g_busy.started_ns, test_now_ns());
    atomic_store(&g_busy.sched, cur_sched->id);
    uint64_t t0 = test_now_ns();
    while (!atomic_load(&g_released) && test_now_ns() - t0 < 10000000000ull)
        ;
    int released = atomic_load(&g_released);
    hive_send(g_main, T_REPORT, &released, sizeof released);
}

static void queued(void *arg)
{
    (void)arg;
    atomic_store(&g_queued.started_ns, test_now_ns());
    atomic_store(&g_queued.sched, cur_sched->id);
    atomic_store(&g_released, 1);
}

/* The one of the two that ran on a scheduler other than the spawner's
 * was stolen: not before the grace had passed since it was queued. */
static void check_stolen_after(const struct runner *r, unsigned home, uint64_t grace_ns)
{
    if (atomic_load(&r->sched) == home)
        return;
    uint64_t waited = atomic_load(&r->started_ns) - atomic_load(&r->spawned_ns);
    ck_assert_msg(waited >= grace_ns, "stolen %llu ns after it was queued, grace %llu ns",
                  (unsigned long long)waited, (unsigned long long)grace_ns);
}

static void t_grace(void *arg)
{
    uint64_t grace_ns = (uint64_t)(uintptr_t)arg * 1000u;
    g_main = hive_self();
    unsigned home = cur_sched->id;
    atomic_store(&g_busy.spawned_ns, test_now_ns());
    ck_assert_int_eq(hive_spawn(busy, NULL, NULL), 0);
    atomic_store(&g_queued.spawned_ns, test_now_ns());
    ck_assert_int_eq(hive_spawn(queued, NULL, NULL), 0);
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 20000), 0);
    ck_assert_uint_eq(m->tag, T_REPORT);
    ck_assert_msg(*(int *)m->data == 1, "the queued process never ran: it was not stolen");
    hive_msg_free(m);
    /* they cannot have shared a scheduler: busy never let go of its own */
    ck_assert_uint_ne(atomic_load(&g_busy.sched), atomic_load(&g_queued.sched));
    check_stolen_after(&g_busy, home, grace_ns);
    check_stolen_after(&g_queued, home, grace_ns);
}

START_TEST(a_short_queue_is_stolen_after_the_default_grace)
{
    hive_config cfg = test_config(2);
    ck_assert_uint_eq(cfg.steal_grace_us, 100);
    run_hive_cfg(&cfg, t_grace, (void *)(uintptr_t)cfg.steal_grace_us);
}
END_TEST

START_TEST(a_short_queue_is_not_stolen_before_a_long_grace)
{
    hive_config cfg = test_config(2);
    cfg.steal_grace_us = 200000; /* 200 ms */
    run_hive_cfg(&cfg, t_grace, (void *)(uintptr_t)cfg.steal_grace_us);
}
END_TEST

START_TEST(a_grace_of_zero_steals_a_short_queue_too)
{
    hive_config cfg = test_config(2);
    cfg.steal_grace_us = 0;
    run_hive_cfg(&cfg, t_grace, (void *)(uintptr_t)0);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("steal");
    TCase *tc = tcase_create("grace");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, a_short_queue_is_stolen_after_the_default_grace);
    tcase_add_test(tc, a_short_queue_is_not_stolen_before_a_long_grace);
    tcase_add_test(tc, a_grace_of_zero_steals_a_short_queue_too);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(make_suite)
