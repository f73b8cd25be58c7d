/*
 * Calls that time out: the server still does the work, the caller lives
 * on, and the late reply is dropped before it reaches the mailbox.
 */
#include "gs_scenarios.h"

enum { Q_YAWN = Q_LOCAL, Q_BEFORE_SLEEP, Q_BEFORE_DOZE, Q_DOZE, Q_WAKE, Q_PING };

/* seeds/002, Timesout: the write-up's server sleeps longer than its
 * client's timeout. Where a test needs "the call timed out before the
 * reply" for certain, the server dozes instead: it waits for a Q_WAKE that
 * the test sends only after the call has returned, so the outcome does not
 * rest on timer margins. */
static void doze(void)
{
    hive_msg *m;
    ck_assert_int_eq(hive_receive_if(match_tag, &(uint32_t){ Q_WAKE }, &m, 10000), 0);
    hive_msg_free(m);
}

static void timesout_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    long *call_count = state;
    switch (req->tag) {
    case Q_YAWN:
        hive_sleep(*(int64_t *)req->data);
        hive_reply(from, Q_YAWN, call_count, sizeof *call_count); /* {:previous_call_count, n} */
        ++*call_count;
        break;
    case Q_DOZE:
        doze();
        hive_reply(from, Q_YAWN, call_count, sizeof *call_count);
        ++*call_count;
        break;
    default: /* before_you_sleep, dozing */
        hive_reply(from, Q_BEFORE_SLEEP, call_count, sizeof *call_count);
        doze();
        ++*call_count;
        break;
    }
}

static const hive_gen_server TIMESOUT = { .handle_call = timesout_call };
#define TIMEOUT_MS 10

static int yawn(hive_pid pid, int64_t sleep_ms, int64_t timeout_ms, long *prev)
{
    hive_msg *m;
    int rc = hive_call(pid, Q_YAWN, &sleep_ms, sizeof sleep_ms, &m, timeout_ms);
    if (rc == 0)
        *prev = reply_long(m);
    return rc;
}

/* yawn(longer than the timeout): a call that cannot be answered in time */
static int doze_call(hive_pid pid)
{
    hive_msg *m;
    return hive_call(pid, Q_DOZE, NULL, 0, &m, TIMEOUT_MS);
}

static void body_timeout(void *arg)
{
    (void)arg;
    long count = 0, prev;
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&TIMESOUT, &count, NULL, &pid), 0);
    ck_assert_int_eq(state_long(pid), 0);                 /* :sys.get_state -> 0 */
    ck_assert_int_eq(doze_call(pid), -ETIMEDOUT);          /* yawn(110) with 100 */
    hive_send(pid, Q_WAKE, NULL, 0);
    /* the client is alive (we are), the server too, and the operation
     * completed: */
    ck_assert_int_eq(state_long(pid), 1);
    ck_assert_int_eq(yawn(pid, 1, 5000, &prev), 0);
    ck_assert_int_eq(prev, 1);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(timed_out_call_still_completes_and_the_caller_survives)
{
    run_hive(2, body_timeout, NULL);
}
END_TEST

static void body_blocked(void *arg)
{
    (void)arg;
    long count = 0, prev;
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&TIMESOUT, &count, NULL, &pid), 0);
    /* a blocked call keeps blocking the server after its timeout */
    ck_assert_int_eq(doze_call(pid), -ETIMEDOUT);
    ck_assert_int_eq(yawn(pid, 1, TIMEOUT_MS, &prev), -ETIMEDOUT); /* still dozing */
    hive_send(pid, Q_WAKE, NULL, 0);
    ck_assert_int_eq(state_long(pid), 2); /* both ran, in order */
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(a_blocked_server_times_out_the_next_call_too)
{
    run_hive(2, body_blocked, NULL);
}
END_TEST

static void body_early(void *arg)
{
    (void)arg;
    long count = 0;
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&TIMESOUT, &count, NULL, &pid), 0);
    hive_msg *m;
    /* replied before dozing: the call returns while the server still
     * dozes (it wakes only when we say so, after the call returned) */
    ck_assert_int_eq(hive_call(pid, Q_BEFORE_DOZE, NULL, 0, &m, 5000), 0);
    ck_assert_int_eq(reply_long(m), 0);
    hive_send(pid, Q_WAKE, NULL, 0);
    ck_assert_int_eq(state_long(pid), 1);
}

START_TEST(replying_before_the_work_is_done_does_not_time_out)
{
    run_hive(2, body_early, NULL);
}
END_TEST

static void body_no_clutter(void *arg)
{
    (void)arg;
    long count = 0;
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&TIMESOUT, &count, NULL, &pid), 0);
    hive_sched_stats s0, s1;
    hive_stats(NULL, 0, &s0);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(doze_call(pid), -ETIMEDOUT);
        hive_send(pid, Q_WAKE, NULL, 0);
    }
    ck_assert_int_eq(state_long(pid), 5); /* all replies have been sent */
    /* `flush` shows nothing: the late replies never reached the mailbox */
    ck_assert_uint_eq(my_queue_len(), 0);
    hive_stats(NULL, 0, &s1);
    ck_assert_uint_eq(s1.late_replies_dropped - s0.late_replies_dropped, 5);
}

START_TEST(late_replies_to_timed_out_calls_never_reach_the_mailbox)
{
    run_hive(2, body_no_clutter, NULL);
}
END_TEST

/* seeds/001: two servers that call each other synchronously deadlock until
 * the first call times out. */
struct peer {
    hive_pid other;
    hive_pid test;
};

static bool match_go(const hive_msg *m, void *ctx)
{
    (void)ctx;
    return m->tag == Q_GO;
}

static void peer_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    struct peer *p = state;
    if (req->tag == Q_PING) { /* the other's call */
        long one = 1;
        hive_reply(from, Q_PING, &one, sizeof one);
        return;
    }
    hive_pid me = hive_self();
    hive_send(p->test, Q_READY, &me, sizeof me);
    hive_msg *m;
    ck_assert_int_eq(hive_receive_if(match_go, NULL, &m, 5000), 0);
    hive_msg_free(m);
    int rc = hive_call(p->other, Q_PING, NULL, 0, &m, 25);
    if (rc == 0)
        hive_msg_free(m);
    hive_reply(from, Q_QUERY, &rc, sizeof rc);
}

static const hive_gen_server PEER = { .handle_call = peer_call };

static void peer_client(void *arg)
{
    hive_pid *p = arg; /* server, test */
    hive_msg *m;
    ck_assert_int_eq(hive_call(p[0], Q_QUERY, NULL, 0, &m, 5000), 0);
    hive_send(p[1], Q_NOTE, m->data, sizeof(int));
    hive_msg_free(m);
}

static void body_deadlock(void *arg)
{
    (void)arg;
    struct peer pa = { .test = hive_self() }, pb = { .test = hive_self() };
    hive_pid a, b;
    ck_assert_int_eq(hive_gs_start(&PEER, &pa, NULL, &a), 0);
    ck_assert_int_eq(hive_gs_start(&PEER, &pb, NULL, &b), 0);
    pa.other = b;
    pb.other = a;
    hive_pid ca[2] = { a, hive_self() }, cb[2] = { b, hive_self() }, x;
    hive_spawn(peer_client, ca, &x);
    hive_spawn(peer_client, cb, &x);
    for (int i = 0; i < 2; i++)
        hive_msg_free(recv_tag(Q_READY, 5000));
    hive_send(a, Q_GO, NULL, 0);
    hive_send(b, Q_GO, NULL, 0);
    int timeouts = 0;
    for (int i = 0; i < 2; i++) {
        hive_msg *m = recv_tag(Q_NOTE, 5000);
        int rc = *(int *)m->data;
        hive_msg_free(m);
        ck_assert(rc == 0 || rc == -ETIMEDOUT);
        timeouts += rc == -ETIMEDOUT;
    }
    ck_assert_int_ge(timeouts, 1); /* deadlocked until the first timeout */
    ck_assert_int_eq(call_long(a, Q_PING, NULL, 0), 1); /* both serve again */
    ck_assert_int_eq(call_long(b, Q_PING, NULL, 0), 1);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(two_servers_calling_each_other_recover_by_timeout)
{
    run_hive(2, body_deadlock, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("call_timeouts");
    TCase *tc = tcase_create("call_timeouts");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, timed_out_call_still_completes_and_the_caller_survives);
    tcase_add_test(tc, a_blocked_server_times_out_the_next_call_too);
    tcase_add_test(tc, replying_before_the_work_is_done_does_not_time_out);
    tcase_add_test(tc, late_replies_to_timed_out_calls_never_reach_the_mailbox);
    tcase_add_test(tc, two_servers_calling_each_other_recover_by_timeout);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(make_suite)
