/*
 * Calls to a server that is gone, or goes while it is being called: an
 * error value (-ESRCH, or -ECONNRESET when it exits during the call), never
 * a crash or a wait forever, and nothing left in the caller's mailbox.
 */
#include "gs_scenarios.h"

/* seeds/000, Foo: a named server that a task stops while another queries. */
static long foo_bar = 0xba5;

static hive_pid foo_start(void)
{
    hive_pid pid;
    hive_gs_opts o = { .name = "Foo" };
    ck_assert_int_eq(hive_gs_start(&FOO, &foo_bar, &o, &pid), 0);
    return pid;
}

/* Foo.query: whereis, then call the pid; "gone away" either way. */
static int foo_query(long *out)
{
    hive_pid pid = hive_whereis("Foo");
    if (pid == HIVE_NOPID)
        return -ESRCH;
    hive_msg *m;
    int rc = hive_call(pid, Q_QUERY, NULL, 0, &m, 5000);
    if (rc == 0)
        *out = reply_long(m);
    return rc;
}

static void body_query_before_and_after(void *arg)
{
    (void)arg;
    hive_pid pid = foo_start();
    long v = 0;
    ck_assert_int_eq(foo_query(&v), 0); /* query(10): the state */
    ck_assert_int_eq(v, 0xba5);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 1000), 0); /* shutdown(100) */
    ck_assert_int_eq(foo_query(&v), -ESRCH);                  /* query(150): gone away */
    hive_msg *m;
    ck_assert_int_eq(hive_call_name("Foo", Q_QUERY, NULL, 0, &m, 1000), -ESRCH);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(whereis_then_call_gets_the_state_and_esrch_once_the_server_stopped)
{
    run_hive(2, body_query_before_and_after, NULL);
}
END_TEST

static void body_stale_pid(void *arg)
{
    (void)arg;
    hive_pid pid = foo_start();
    /* the race window, made deterministic: whereis found it, then it
     * stopped, then the call: an error value, not a crash */
    hive_pid seen = hive_whereis("Foo");
    ck_assert_int_eq(seen, pid);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_NORMAL, 1000), 0);
    hive_msg *m;
    ck_assert_int_eq(hive_call(seen, Q_QUERY, NULL, 0, &m, 1000), -ESRCH);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(call_to_a_pid_stopped_after_whereis_is_esrch)
{
    run_hive(2, body_stale_pid, NULL);
}
END_TEST

struct race000 {
    hive_pid test;
};

static void foo_shutdown_task(void *arg)
{
    struct race000 *r = arg;
    hive_pid pid = hive_whereis("Foo");
    int rc = pid ? hive_gs_stop(pid, HIVE_NORMAL, 5000) : -ESRCH;
    ck_assert(rc == 0 || rc == -ESRCH);
    hive_send(r->test, Q_NOTE, NULL, 0);
}

static void foo_query_task(void *arg)
{
    struct race000 *r = arg;
    long v = 0;
    int rc;
    /* by name and by pid, while the shutdown task races us */
    for (int i = 0; i < 4; i++) {
        rc = foo_query(&v);
        ck_assert_msg(rc == 0 || rc == -ESRCH || rc == -ECONNRESET, "query: %s",
                      hive_strerror(rc));
        if (rc == 0)
            ck_assert_int_eq(v, 0xba5);
        hive_msg *m;
        rc = hive_call_name("Foo", Q_QUERY, NULL, 0, &m, 5000);
        ck_assert(rc == 0 || rc == -ESRCH || rc == -ECONNRESET);
        if (rc == 0)
            hive_msg_free(m);
    }
    ck_assert_uint_eq(my_queue_len(), 0);
    hive_send(r->test, Q_NOTE, NULL, 0);
}

static void body_race(void *arg)
{
    (void)arg;
    struct race000 r = { .test = hive_self() };
    for (int round = 0; round < 100; round++) {
        foo_start();
        hive_pid a, b;
        hive_spawn(foo_query_task, &r, &a);
        hive_spawn(foo_shutdown_task, &r, &b);
        for (int i = 0; i < 2; i++)
            hive_msg_free(recv_tag(Q_NOTE, 10000));
        ck_assert_int_eq(hive_whereis("Foo"), HIVE_NOPID);
    }
}

START_TEST(whereis_call_racing_a_stop_never_crashes_or_hangs)
{
    run_hive(4, body_race, NULL);
}
END_TEST

/* seeds/001: the server crashed before the call was sent. */
static void body_dead(void *arg)
{
    (void)arg;
    static long st = 1;
    hive_pid pid;
    hive_gs_opts o = { .name = "srv001" };
    ck_assert_int_eq(hive_gs_start(&FOO, &st, &o, &pid), 0);
    hive_ref r = monitor(pid);
    hive_kill(pid, HIVE_KILL); /* crashes before our message is sent */
    ck_assert_int_eq(wait_down(r), HIVE_KILLED);
    hive_msg *m;
    /* 1. via pid: an error, not a wait forever */
    ck_assert_int_eq(hive_call(pid, Q_QUERY, NULL, 0, &m, HIVE_INFINITY), -ESRCH);
    /* 2. via name: an error, not a crash */
    ck_assert_int_eq(hive_call_name("srv001", Q_QUERY, NULL, 0, &m, HIVE_INFINITY), -ESRCH);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(server_dead_before_the_call_is_esrch_by_pid_and_name)
{
    run_hive(2, body_dead, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("call_to_dead_servers");
    TCase *tc = tcase_create("call_to_dead_servers");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, whereis_then_call_gets_the_state_and_esrch_once_the_server_stopped);
    tcase_add_test(tc, call_to_a_pid_stopped_after_whereis_is_esrch);
    tcase_add_test(tc, whereis_call_racing_a_stop_never_crashes_or_hangs);
    tcase_add_test(tc, server_dead_before_the_call_is_esrch_by_pid_and_name);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(make_suite)
