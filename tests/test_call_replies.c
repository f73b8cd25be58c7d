/*
 * What a call takes as its reply: the message carrying its own ref, and
 * nothing else (seeds/001, what a hand-rolled call gets wrong).
 */
#include "gs_scenarios.h"

/* seeds/001: look-alike replies already queued from the called server. */
static void send_fakes_fn(void *state, void *ctx)
{
    (void)state;
    long fake = 666;
    for (int i = 0; i < 3; i++)
        hive_send(*(hive_pid *)ctx, Q_STATE, &fake, sizeof fake);
}

static void body_ref(void *arg)
{
    (void)arg;
    static long a_state = 1, b_state = 2;
    hive_pid a, b;
    ck_assert_int_eq(hive_gs_start(&FOO, &a_state, NULL, &a), 0);
    ck_assert_int_eq(hive_gs_start(&FOO, &b_state, NULL, &b), 0);
    /* messages shaped like a reply are already waiting: same tag, sent
     * by the very server we are about to call */
    hive_pid me = hive_self();
    ck_assert_int_eq(hive_gs_exec(a, send_fakes_fn, &me, 1000), 0);
    hive_ref rb;
    ck_assert_int_eq(hive_send_request(b, Q_QUERY, NULL, 0, &rb), 0);
    ck_assert_int_eq(call_long(a, Q_QUERY, NULL, 0), 1); /* a's reply, not b's nor a fake */
    hive_msg *m;
    ck_assert_int_eq(hive_receive_response(rb, &m, 5000), 0);
    ck_assert_int_eq(reply_long(m), 2);
    ck_assert_uint_eq(my_queue_len(), 3); /* the look-alikes are untouched */
}

START_TEST(reply_is_matched_by_its_ref_not_its_tag_or_sender)
{
    run_hive(2, body_ref, NULL);
}
END_TEST

/* seeds/001: the monitor a call sets is gone with the reply. */
static void reply_then_die(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)state;
    hive_reply(from, Q_STATE, req->data, req->len);
    hive_exit(HIVE_ERROR); /* crashes right after replying */
}

static void body_down_after_reply(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .handle_call = reply_then_die };
    for (long i = 0; i < 300; i++) {
        hive_pid pid;
        ck_assert_int_eq(hive_gs_start(&b, NULL, NULL, &pid), 0);
        ck_assert_int_eq(call_long(pid, Q_QUERY, &i, sizeof i), i);
        /* no DOWN left behind, now or later */
        ck_assert_uint_eq(my_queue_len(), 0);
    }
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 20), -ETIMEDOUT);
}

START_TEST(server_crashing_right_after_replying_leaves_no_down)
{
    run_hive(2, body_down_after_reply, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("call_replies");
    TCase *tc = tcase_create("call_replies");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, reply_is_matched_by_its_ref_not_its_tag_or_sender);
    tcase_add_test(tc, server_crashing_right_after_replying_leaves_no_down);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(make_suite)
