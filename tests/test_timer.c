/* Timers: send_after, send_interval, cancel_timer, sleep. */
#include <stdatomic.h>
#include <time.h>

#include "harness.h"

enum { T_TICK = 1, T_LATE, T_ONCE };

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void t_send_after(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    hive_timer t;
    uint64_t t0 = now_ms();
    int v = 7;
    ck_assert_int_eq(hive_send_after(me, T_ONCE, &v, sizeof v, 20, &t), 0);
    hive_msg *m = recv_tag(T_ONCE, 5000);
    uint64_t el = now_ms() - t0;
    ck_assert_uint_ge(el, 20);
    ck_assert_uint_le(el, 200);
    ck_assert_int_eq(*(int *)m->data, 7);
    ck_assert_uint_eq(m->ref.lo, t.id); /* timer messages carry the timer in ref */
    hive_msg_free(m);
    /* fired: cancel says so */
    ck_assert_int_eq(hive_cancel_timer(t), -ENOENT);
    /* zero delay fires at once */
    ck_assert_int_eq(hive_send_after(me, T_ONCE, NULL, 0, 0, NULL), 0);
    m = recv_tag(T_ONCE, 1000);
    hive_msg_free(m);
}
START_TEST(send_after_delivers_once_not_early) { run_hive(2, t_send_after, NULL); }
END_TEST

static void t_cancel(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    hive_timer t;
    ck_assert_int_eq(hive_send_after(me, T_LATE, NULL, 0, 10000, &t), 0);
    int64_t left = hive_cancel_timer(t);
    ck_assert_int_ge(left, 9900);
    ck_assert_int_le(left, 10000);
    ck_assert_int_eq(hive_cancel_timer(t), -ENOENT); /* twice: already gone */
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 30), -ETIMEDOUT); /* and nothing comes */
    ck_assert_int_eq(hive_cancel_timer((hive_timer){ 0 }), -ENOENT);
    ck_assert_int_eq(hive_cancel_timer((hive_timer){ 0xFFFFFFFFFFull }), -ENOENT);
}
START_TEST(cancel_timer_returns_ms_left_then_enoent) { run_hive(2, t_cancel, NULL); }
END_TEST

static void t_interval(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    hive_timer t;
    uint64_t t0 = now_ms();
    ck_assert_int_eq(hive_send_interval(me, T_TICK, NULL, 0, 5, &t), 0);
    for (int i = 1; i <= 5; i++) {
        hive_msg *m = recv_tag(T_TICK, 5000);
        hive_msg_free(m);
        ck_assert_uint_ge(now_ms() - t0, (uint64_t)(5 * i));
    }
    int64_t left = hive_cancel_timer(t);
    ck_assert_int_ge(left, 0);
    ck_assert_int_le(left, 5);
    ck_assert_int_eq(hive_cancel_timer(t), -ENOENT);
    /* drain a tick that may have raced the cancel, then: silence */
    hive_msg *m;
    while (hive_receive(&m, 0) == 0)
        hive_msg_free(m);
    ck_assert_int_eq(hive_receive(&m, 30), -ETIMEDOUT);
    ck_assert_int_eq(hive_send_interval(me, T_TICK, NULL, 0, 0, NULL), -EINVAL);
}
START_TEST(interval_ticks_until_cancelled) { run_hive(2, t_interval, NULL); }
END_TEST

static void canceller(void *arg)
{
    hive_timer *t = arg;
    hive_pid parent;
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 5000), 0);
    parent = m->from;
    hive_msg_free(m);
    int64_t left = hive_cancel_timer(*t);
    hive_send(parent, T_ONCE, &left, sizeof left);
}

static void t_remote_cancel(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    /* Timers armed on one scheduler, cancelled from processes that may run
     * on another: each cancel must stop its timer. */
    for (int i = 0; i < 200; i++) {
        static hive_timer t;
        ck_assert_int_eq(hive_send_after(me, T_LATE, NULL, 0, 5000, &t), 0);
        hive_pid c;
        hive_spawn(canceller, &t, &c);
        hive_send(c, T_TICK, NULL, 0);
        hive_msg *m = recv_tag(T_ONCE, 5000);
        ck_assert_int_gt(*(int64_t *)m->data, 4000);
        hive_msg_free(m);
    }
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 20), -ETIMEDOUT);
    hive_sched_stats tot;
    hive_stats(NULL, 0, &tot);
    ck_assert_uint_ge(tot.timers_armed, 200);
}
START_TEST(cancel_from_another_scheduler_stops_the_timer) { run_hive(3, t_remote_cancel, NULL); }
END_TEST

static void t_target_dead(void *arg)
{
    (void)arg;
    ck_assert_int_eq(hive_send_after(HIVE_NOPID, T_ONCE, NULL, 0, 1, NULL), -EINVAL);
    ck_assert_int_eq(hive_send_after(hive_self(), T_ONCE, NULL, 4, 1, NULL), -EINVAL);
    ck_assert_int_eq(hive_send_after(hive_self(), T_ONCE, NULL, 0, -1, NULL), -EINVAL);
    ck_assert_int_eq(hive_send_after(hive_self(), HIVE_TAG_EXIT, NULL, 0, 1, NULL), -EINVAL);
}
START_TEST(timer_bad_arguments) { run_hive(1, t_target_dead, NULL); }
END_TEST

static void t_sleep(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    hive_send(me, T_ONCE, NULL, 0);   /* a queued message does not end a sleep */
    uint64_t t0 = now_ms();
    ck_assert_int_eq(hive_sleep(15), 0);
    ck_assert_uint_ge(now_ms() - t0, 15);
    hive_msg *m = recv_tag(T_ONCE, 0);  /* and is still there */
    hive_msg_free(m);
    ck_assert_int_eq(hive_sleep(0), 0);
}
START_TEST(sleep_blocks_the_process_not_the_scheduler) { run_hive(1, t_sleep, NULL); }
END_TEST

static void sleepy(void *arg)
{
    hive_pid parent = *(hive_pid *)arg;
    hive_sleep(20);
    hive_send(parent, T_ONCE, NULL, 0);
}

static void t_many_sleepers(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    uint64_t t0 = now_ms();
    for (int i = 0; i < 1000; i++)
        hive_spawn(sleepy, &me, NULL);
    for (int i = 0; i < 1000; i++) {
        hive_msg *m = recv_tag(T_ONCE, 5000);
        hive_msg_free(m);
    }
    /* one scheduler, 1000 sleepers of 20 ms: one after another they would
     * take 20 s; overlapping, well under half of that even under the
     * thread sanitizer on a loaded machine (~30 ms natively) */
    ck_assert_uint_lt(now_ms() - t0, 10000);
}
START_TEST(thousand_sleepers_overlap_on_one_scheduler) { run_hive(1, t_many_sleepers, NULL); }
END_TEST

/* A receive's timer stays armed after the receive ends, for the next one
 * to reuse. Each receive still times out on its own deadline: not at an
 * earlier receive's (shorter), nor at a later one's (longer). */
static void t_timeout_reuse(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    hive_msg *m;
    /* ends by a message: leaves a timer due in about 300 ms */
    hive_send(me, 1, NULL, 0);
    ck_assert_int_eq(hive_receive(&m, 300), 0);
    hive_msg_free(m);
    /* shorter than the armed timer: times out on its own 20 ms */
    uint64_t t0 = now_ms();
    ck_assert_int_eq(hive_receive(&m, 20), -ETIMEDOUT);
    uint64_t el = now_ms() - t0;
    ck_assert_uint_ge(el, 20);
    ck_assert_uint_lt(el, 250);
    /* ends by a message: leaves a timer due in about 10 ms */
    hive_send(me, 1, NULL, 0);
    ck_assert_int_eq(hive_receive(&m, 10), 0);
    hive_msg_free(m);
    /* longer: that timer fires first and must not end this one */
    t0 = now_ms();
    ck_assert_int_eq(hive_receive(&m, 60), -ETIMEDOUT);
    ck_assert_uint_ge(now_ms() - t0, 60);
    /* infinite receives are woken by a leftover timer, and go on waiting */
    hive_send(me, 1, NULL, 0);
    ck_assert_int_eq(hive_receive(&m, 5), 0);
    hive_msg_free(m);
    ck_assert_int_eq(hive_send_after(me, 2, NULL, 0, 40, NULL), 0);
    t0 = now_ms();
    ck_assert_int_eq(hive_receive(&m, HIVE_INFINITY), 0);
    ck_assert_uint_eq(m->tag, 2);
    ck_assert_uint_ge(now_ms() - t0, 30);
    hive_msg_free(m);
}
START_TEST(receive_timeouts_reuse_a_timer_and_keep_their_own_deadline) { run_hive(1, t_timeout_reuse, NULL); }
END_TEST

/* The scheduler loop looks at the precise clock for its timers only when
 * the coarse one says the earliest could be due (timer.c, poll_source).
 * On one scheduler kept passing by a process that yields without end, a
 * timer armed behind a later one (which set the earliest time far off)
 * must still fire, and not early; so must one armed from a receive's
 * time-out. */
static _Atomic bool spin_stop;

static void yielder(void *arg)
{
    (void)arg;
    while (!atomic_load(&spin_stop))
        hive_yield();
}

static void t_busy_passes(void *arg)
{
    (void)arg;
    hive_pid me = hive_self(), y;
    atomic_store(&spin_stop, false);
    ck_assert_int_eq(hive_spawn(yielder, NULL, &y), 0);
    hive_timer far;
    ck_assert_int_eq(hive_send_after(me, T_LATE, NULL, 0, 60000, &far), 0);
    hive_yield(); /* a pass or more with only the far one armed */
    for (int round = 0; round < 3; round++) {
        uint64_t t0 = now_ms();
        ck_assert_int_eq(hive_send_after(me, T_ONCE, NULL, 0, 15, NULL), 0);
        hive_msg *m = recv_tag(T_ONCE, 5000);
        ck_assert_ptr_nonnull(m);
        uint64_t el = now_ms() - t0;
        ck_assert_uint_ge(el, 15);
        ck_assert_uint_le(el, 1000);
        hive_msg_free(m);
        /* a receive's own time-out, with the yielder still passing */
        t0 = now_ms();
        ck_assert_int_eq(hive_receive(&m, 12), -ETIMEDOUT);
        el = now_ms() - t0;
        ck_assert_uint_ge(el, 12);
        ck_assert_uint_le(el, 1000);
    }
    ck_assert_int_ge(hive_cancel_timer(far), 0);
    atomic_store(&spin_stop, true);
}
START_TEST(timers_fire_on_time_while_the_scheduler_never_stops_passing)
{
    run_hive(1, t_busy_passes, NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = tcase_create("timers");
    tcase_add_test(tc, send_after_delivers_once_not_early);
    tcase_add_test(tc, cancel_timer_returns_ms_left_then_enoent);
    tcase_add_test(tc, interval_ticks_until_cancelled);
    tcase_add_test(tc, cancel_from_another_scheduler_stops_the_timer);
    tcase_add_test(tc, timer_bad_arguments);
    tcase_add_test(tc, sleep_blocks_the_process_not_the_scheduler);
    tcase_add_test(tc, thousand_sleepers_overlap_on_one_scheduler);
    tcase_add_test(tc, receive_timeouts_reuse_a_timer_and_keep_their_own_deadline);
    tcase_add_test(tc, timers_fire_on_time_while_the_scheduler_never_stops_passing);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
