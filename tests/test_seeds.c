/*
 * The GenServer write-ups in shared/seeds, scenario by scenario, in hive.
 *
 * 000: calling a server that went away (the whereis/call race).
 * 001: what a hand-rolled call gets wrong: refs, dead servers, DOWNs left
 *      behind after a reply, deadlocks between two servers.
 * 002: call time-outs: the server completes the request, early replies,
 *      no late reply cluttering the caller's mailbox.
 * 003: notes on Task/GenServer: state access, stop and terminate, continue
 *      with a periodic timer, linked servers, names, deferred replies from
 *      tasks, linked and unlinked tasks, many servers computing in parallel.
 * 004: making an asynchronous service look synchronous with a deferred reply.
 */
#include <stdio.h>

#include "harness.h"

enum {
    Q_QUERY = 1, Q_STATE, Q_YAWN, Q_BEFORE_SLEEP, Q_DOUBLE, Q_TRIPLE, Q_LINK, Q_READY,
    Q_MSG, Q_REPEAT, Q_ASYNC, Q_RESULT, Q_GREET, Q_SEND, Q_RECEIVED, Q_FACT, Q_PING,
    Q_EXITNOW, Q_SPAWN_TASK, Q_GO, Q_NOTE, Q_TERMINATED, Q_DOZE, Q_BEFORE_DOZE, Q_WAKE,
};

static uint32_t my_queue_len(void)
{
    struct hive_process_info pi;
    ck_assert_int_eq(hive_process_info(hive_self(), &pi), 0);
    return pi.message_queue_len;
}

static hive_ref monitor(hive_pid pid)
{
    hive_ref r;
    ck_assert_int_eq(hive_monitor(pid, &r), 0);
    return r;
}

static long reply_long(hive_msg *m)
{
    long v = *(long *)m->data;
    hive_msg_free(m);
    return v;
}

static long call_long(hive_pid pid, uint32_t tag, const void *req, size_t len)
{
    hive_msg *m;
    int rc = hive_call(pid, tag, req, len, &m, 5000);
    ck_assert_msg(rc == 0, "call %u: %s", tag, hive_strerror(rc));
    return reply_long(m);
}

static void get_long_fn(void *state, void *ctx)
{
    *(long *)ctx = *(long *)state;
}

/* :sys.get_state for servers whose state starts with a long */
static long state_long(hive_pid pid)
{
    long v = -1;
    ck_assert_int_eq(hive_gs_exec(pid, get_long_fn, &v, 5000), 0);
    return v;
}

/* ------------------------------------------------------------------ */
/* 000: Foo, a named server that a task stops while another queries    */
/* ------------------------------------------------------------------ */

static void foo_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    hive_reply(from, Q_STATE, state, sizeof(long)); /* {:reply, state, state} */
}

static const hive_gen_server FOO = { .handle_call = foo_call };
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

static void body_seed000_query_before_and_after(void *arg)
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

START_TEST(seed000_query_gets_the_state_then_gone_away_after_shutdown)
{
    run_hive(2, body_seed000_query_before_and_after, NULL);
}
END_TEST

static void body_seed000_stale_pid(void *arg)
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

START_TEST(seed000_call_to_a_pid_stopped_after_whereis_is_esrch)
{
    run_hive(2, body_seed000_stale_pid, NULL);
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

static void body_seed000_race(void *arg)
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

START_TEST(seed000_whereis_call_race_never_crashes_or_hangs)
{
    run_hive(4, body_seed000_race, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 001: what a hand-rolled call gets wrong                             */
/* ------------------------------------------------------------------ */

static void send_fakes_fn(void *state, void *ctx)
{
    (void)state;
    long fake = 666;
    for (int i = 0; i < 3; i++)
        hive_send(*(hive_pid *)ctx, Q_STATE, &fake, sizeof fake);
}

static void body_seed001_ref(void *arg)
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

START_TEST(seed001_the_reply_is_matched_by_its_ref)
{
    run_hive(2, body_seed001_ref, NULL);
}
END_TEST

static void body_seed001_dead(void *arg)
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

START_TEST(seed001_server_dead_before_the_call_is_esrch_by_pid_and_name)
{
    run_hive(2, body_seed001_dead, NULL);
}
END_TEST

static void reply_then_die(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)state;
    hive_reply(from, Q_STATE, req->data, req->len);
    hive_exit(HIVE_ERROR); /* crashes right after replying */
}

static void body_seed001_down_after_reply(void *arg)
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

START_TEST(seed001_server_crashing_right_after_replying_leaves_no_down)
{
    run_hive(2, body_seed001_down_after_reply, NULL);
}
END_TEST

/* Two servers that call each other synchronously. */
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

static void body_seed001_deadlock(void *arg)
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

START_TEST(seed001_two_servers_calling_each_other_recover_by_timeout)
{
    run_hive(2, body_seed001_deadlock, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 002: Timesout                                                       */
/* ------------------------------------------------------------------ */

/* The write-up's server sleeps longer than its client's timeout. Where a
 * test needs "the call timed out before the reply" for certain, the server
 * dozes instead: it waits for a Q_WAKE that the test sends only after the
 * call has returned, so the outcome does not rest on timer margins. */
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

static void body_seed002_timeout(void *arg)
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

START_TEST(seed002_timed_out_call_still_completes_and_the_client_survives)
{
    run_hive(2, body_seed002_timeout, NULL);
}
END_TEST

static void body_seed002_blocked(void *arg)
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

START_TEST(seed002_a_blocked_server_times_out_the_next_call_too)
{
    run_hive(2, body_seed002_blocked, NULL);
}
END_TEST

static void body_seed002_early(void *arg)
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

START_TEST(seed002_replying_early_does_not_time_out)
{
    run_hive(2, body_seed002_early, NULL);
}
END_TEST

static void body_seed002_no_clutter(void *arg)
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

START_TEST(seed002_caught_timeouts_leave_no_reply_in_the_mailbox)
{
    run_hive(2, body_seed002_no_clutter, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 003: notes on Task and GenServer                                    */
/* ------------------------------------------------------------------ */

static int minimal_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    static long one;
    one = (long)(intptr_t)arg;
    *state = &one;
    return 0;
}

static void first_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    long *s = state;
    long v = req->tag == Q_DOUBLE ? *s * 2 : *(long *)req->data * 3;
    hive_reply(from, req->tag, &v, sizeof v);
}

static int first_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    *state = arg;
    return 0;
}

static void body_seed003_state(void *arg)
{
    (void)arg;
    static const hive_gen_server minimal = { .init = minimal_init };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&minimal, (void *)(intptr_t)1, NULL, &pid), 0);
    ck_assert_int_eq(state_long(pid), 1);
    /* FirstGs: three instances on the fly */
    static const hive_gen_server first = { .init = first_init, .handle_call = first_call };
    long states[3] = { 1, 2, 3 };
    for (int i = 0; i < 3; i++) {
        hive_pid p;
        ck_assert_int_eq(hive_gs_start(&first, &states[i], NULL, &p), 0);
        ck_assert_int_eq(call_long(p, Q_DOUBLE, NULL, 0), states[i] * 2);
        ck_assert_int_eq(call_long(p, Q_TRIPLE, &states[i], sizeof(long)), states[i] * 3);
        ck_assert_int_eq(state_long(p), states[i]);
        ck_assert_int_eq(hive_gs_stop(p, HIVE_NORMAL, 1000), 0);
        ck_assert(!hive_is_alive(p));
    }
}

START_TEST(seed003_minimal_and_first_gs_state_and_calls)
{
    run_hive(2, body_seed003_state, NULL);
}
END_TEST

/* Stop: GenServer.stop(pid, :code), {:stop, reason, state}, and trap_exit
 * in init so that terminate runs on the parent's EXIT. */
struct stoppable {
    hive_pid observer;
    bool     trap;
};

static int stoppable_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    struct stoppable *s = arg;
    if (s->trap)
        hive_trap_exits(true);
    *state = s;
    return 0;
}

static void stoppable_cast(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)state;
    hive_gs_stop_self(gs, *(hive_reason *)msg->data);
}

static void stoppable_terminate(hive_gs *gs, void *state, hive_reason reason)
{
    (void)gs;
    struct stoppable *s = state;
    hive_send(s->observer, Q_TERMINATED, &reason, sizeof reason); /* save the state */
}

static const hive_gen_server STOPPABLE = {
    .init = stoppable_init, .handle_cast = stoppable_cast, .terminate = stoppable_terminate,
};

static hive_reason terminated_reason(void)
{
    hive_msg *m = recv_tag(Q_TERMINATED, 5000);
    hive_reason r = *(hive_reason *)m->data;
    hive_msg_free(m);
    return r;
}

struct trap_parent {
    struct stoppable s;
    hive_pid child;
};

static void trap_parent_proc(void *arg)
{
    struct trap_parent *t = arg;
    hive_gs_opts o = { .flags = HIVE_LINK };
    ck_assert_int_eq(hive_gs_start(&STOPPABLE, &t->s, &o, &t->child), 0);
    hive_send(t->s.observer, Q_READY, NULL, 0);
    hive_msg_free(recv_tag(Q_GO, 5000));
    hive_exit(HIVE_SHUTDOWN);
}

static void body_seed003_stop(void *arg)
{
    (void)arg;
    struct stoppable s = { .observer = hive_self() };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&STOPPABLE, &s, NULL, &pid), 0);
    ck_assert_int_eq(hive_gs_stop(pid, 17, 1000), 0);          /* GenServer.stop(pid, :code) */
    ck_assert_int_eq(terminated_reason(), 17);
    ck_assert_int_eq(hive_gs_start(&STOPPABLE, &s, NULL, &pid), 0);
    hive_ref r = monitor(pid);
    hive_reason why = 18;
    hive_cast(pid, Q_NOTE, &why, sizeof why);                   /* {:stop, :reason, state} */
    ck_assert_int_eq(terminated_reason(), 18);
    ck_assert_int_eq(wait_down(r), 18);
    /* trap_exit set in init: the parent's EXIT runs terminate */
    struct trap_parent t = { .s = { .observer = hive_self(), .trap = true } };
    hive_pid parent;
    hive_spawn(trap_parent_proc, &t, &parent);
    hive_msg_free(recv_tag(Q_READY, 5000));
    r = monitor(t.child);
    hive_send(parent, Q_GO, NULL, 0);
    ck_assert_int_eq(terminated_reason(), HIVE_SHUTDOWN);
    ck_assert_int_eq(wait_down(r), HIVE_SHUTDOWN);
}

START_TEST(seed003_stop_by_call_by_callback_and_by_a_trapped_parent_exit_run_terminate)
{
    run_hive(2, body_seed003_stop, NULL);
}
END_TEST

/* Periodic: init -> {:continue, :run} -> send_after(:repeat) -> ... */
struct periodic {
    hive_pid observer;
    int64_t  every;
    int      repeats;
    bool     continued;
};

static int periodic_init(hive_gs *gs, void *arg, void **state)
{
    *state = arg;
    hive_gs_continue(gs, Q_REPEAT, NULL, 0);
    return 0;
}

static void periodic_continue(hive_gs *gs, void *state, const hive_msg *cont)
{
    (void)gs;
    (void)cont;
    struct periodic *p = state;
    p->continued = true;
    ck_assert_int_eq(hive_send_after(hive_self(), Q_REPEAT, NULL, 0, p->every, NULL), 0);
}

static void periodic_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct periodic *p = state;
    if (msg->tag != Q_REPEAT)
        return;
    ck_assert(p->continued); /* the continue ran first */
    if (++p->repeats == 3)
        hive_send(p->observer, Q_NOTE, NULL, 0);
    hive_send_after(hive_self(), Q_REPEAT, NULL, 0, p->every, NULL);
}

static void body_seed003_periodic(void *arg)
{
    (void)arg;
    static const hive_gen_server b = {
        .init = periodic_init, .handle_continue = periodic_continue, .handle_info = periodic_info,
    };
    struct periodic p = { .observer = hive_self(), .every = 3 };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&b, &p, NULL, &pid), 0);
    hive_msg_free(recv_tag(Q_NOTE, 5000));
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_SHUTDOWN, 1000), 0);
    ck_assert_int_ge(p.repeats, 3);
}

START_TEST(seed003_periodic_server_continues_then_repeats_with_send_after)
{
    run_hive(2, body_seed003_periodic, NULL);
}
END_TEST

/* Parent and Child: Parent.link starts a Child with start_link from its
 * handle_call. */
static int child_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    *state = arg;
    return 0;
}

static const hive_gen_server CHILD = { .init = child_init, .terminate = stoppable_terminate };

static void parent_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    hive_pid child = HIVE_NOPID;
    hive_gs_opts o = { .flags = HIVE_LINK };
    int rc = hive_gs_start(&CHILD, state, &o, &child);
    ck_assert_int_eq(rc, 0);
    hive_reply(from, Q_LINK, &child, sizeof child);
}

static const hive_gen_server PARENT = { .handle_call = parent_call,
                                        .terminate = stoppable_terminate };

static hive_pid link_child(hive_pid parent)
{
    hive_msg *m;
    ck_assert_int_eq(hive_call(parent, Q_LINK, NULL, 0, &m, 5000), 0);
    hive_pid c = *(hive_pid *)m->data;
    hive_msg_free(m);
    return c;
}

static void body_seed003_linked(void *arg)
{
    (void)arg;
    struct stoppable s = { .observer = hive_self() };
    hive_pid parent, child;
    ck_assert_int_eq(hive_gs_start(&PARENT, &s, NULL, &parent), 0);
    child = link_child(parent);
    ck_assert(hive_is_alive(parent) && hive_is_alive(child));
    struct hive_process_info pi;
    ck_assert_int_eq(hive_process_info(parent, &pi), 0);
    ck_assert_uint_eq(pi.links, 1);
    ck_assert_int_eq(pi.link[0], child);
    ck_assert_int_eq(hive_process_info(child, &pi), 0);
    ck_assert_uint_eq(pi.links, 1);
    ck_assert_int_eq(pi.link[0], parent);
    /* stop the parent: both stop (the child does not trap exits) */
    hive_ref rc = monitor(child);
    ck_assert_int_eq(hive_gs_stop(parent, HIVE_SHUTDOWN, 1000), 0);
    ck_assert_int_eq(wait_down(rc), HIVE_SHUTDOWN);
    ck_assert(!hive_is_alive(parent) && !hive_is_alive(child));
    ck_assert_int_eq(terminated_reason(), HIVE_SHUTDOWN); /* the parent's only */
    /* again, and stop the child: the parent goes too */
    ck_assert_int_eq(hive_gs_start(&PARENT, &s, NULL, &parent), 0);
    child = link_child(parent);
    hive_ref rp = monitor(parent);
    ck_assert_int_eq(hive_gs_stop(child, HIVE_SHUTDOWN, 1000), 0);
    ck_assert_int_eq(wait_down(rp), HIVE_SHUTDOWN);
    ck_assert(!hive_is_alive(parent) && !hive_is_alive(child));
    ck_assert_int_eq(terminated_reason(), HIVE_SHUTDOWN); /* the child's only */
    hive_msg *m;
    ck_assert_int_eq(hive_receive_if(match_tag, &(uint32_t){ Q_TERMINATED }, &m, 10), -ETIMEDOUT);
}

START_TEST(seed003_linked_parent_and_child_servers_stop_together)
{
    run_hive(2, body_seed003_linked, NULL);
}
END_TEST

/* CallByPid: start_link, send {:msg, pid}, call :ready returns the pid. */
struct bypid {
    hive_pid observer;
    int      infos;
};

static void bypid_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    hive_pid me = hive_self();
    hive_send(me, Q_MSG, &from.pid, sizeof from.pid); /* send(self(), {:msg, ...}) */
    hive_reply(from, Q_READY, &me, sizeof me);
}

static void bypid_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct bypid *b = state;
    if (msg->tag == Q_MSG && ++b->infos == 2)
        hive_send(b->observer, Q_NOTE, NULL, 0);
}

static void body_seed003_by_pid(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = child_init, .handle_call = bypid_call,
                                       .handle_info = bypid_info };
    struct bypid st = { .observer = hive_self() };
    hive_pid pid;
    hive_gs_opts o = { .flags = HIVE_LINK };
    ck_assert_int_eq(hive_gs_start(&b, &st, &o, &pid), 0);
    hive_send(pid, Q_MSG, &pid, sizeof pid);
    hive_msg *m;
    ck_assert_int_eq(hive_call(pid, Q_READY, NULL, 0, &m, 1000), 0);
    ck_assert_int_eq(*(hive_pid *)m->data, pid); /* returns the spawned pid */
    hive_msg_free(m);
    hive_msg_free(recv_tag(Q_NOTE, 5000));   /* both {:msg, _} reached handle_info */
    ck_assert(hive_is_alive(pid));
    hive_unlink(pid);
}

START_TEST(seed003_call_by_pid_returns_the_pid_and_messages_reach_handle_info)
{
    run_hive(2, body_seed003_by_pid, NULL);
}
END_TEST

/* CallByAtom / CallByRegistry: names, started once. */
static void body_seed003_names(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = first_init, .handle_call = foo_call };
    static long one = 1, two = 2;
    hive_pid p1, p2;
    hive_gs_opts atom = { .name = "CallByAtom", .flags = HIVE_LINK };
    ck_assert_int_eq(hive_gs_start(&b, &one, &atom, &p1), 0);
    ck_assert_int_eq(hive_gs_start(&b, &two, &atom, &p2), -EEXIST); /* already_started */
    ck_assert_int_eq(p2, p1);
    hive_msg *m;
    ck_assert_int_eq(hive_call_name("CallByAtom", Q_STATE, NULL, 0, &m, 1000), 0);
    ck_assert_int_eq(reply_long(m), 1); /* the state is still "1" */
    /* string names: "fish_1" once, "fish_2" separately */
    hive_gs_opts f1 = { .name = "fish_1" }, f2 = { .name = "fish_2" };
    ck_assert_int_eq(hive_gs_start(&b, &one, &f1, &p1), 0);
    ck_assert_int_eq(hive_gs_start(&b, &two, &f1, &p2), -EEXIST);
    ck_assert_int_eq(hive_gs_start(&b, &two, &f2, &p2), 0);
    ck_assert_int_eq(state_long(hive_whereis("fish_1")), 1);
    ck_assert_int_eq(state_long(hive_whereis("fish_2")), 2);
    hive_unlink(hive_whereis("CallByAtom"));
}

START_TEST(seed003_named_servers_start_once_and_keep_their_state)
{
    run_hive(2, body_seed003_names, NULL);
}
END_TEST

/* AsyncTaskReplier: handle_call starts a monitored task and does not
 * reply; the task's {ref, result} arrives in handle_info, which
 * demonitors with flush and replies with GenServer.reply. */
struct replier {
    hive_ref  task_ref;
    hive_pid  task;
    hive_from from;
    long      result;
    int       downs;
};

struct task_arg {
    hive_pid parent;
    hive_ref ref;
};

static struct task_arg the_task_arg;

static void async_task(void *arg)
{
    struct task_arg *t = arg;
    hive_msg_free(recv_tag(Q_GO, 5000));
    long result = 4242;
    hive_msg *m = hive_msg_alloc(sizeof result);
    m->tag = Q_RESULT;
    m->ref = t->ref;          /* {ref, result} */
    memcpy(m->data, &result, sizeof result);
    ck_assert_int_eq(hive_send_msg(t->parent, m), 0);
}

static void replier_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    struct replier *r = state;
    the_task_arg.parent = hive_self();
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r->task_ref };
    ck_assert_int_eq(hive_spawn_opt(async_task, &the_task_arg, &o, &r->task), 0);
    the_task_arg.ref = r->task_ref;
    hive_send(r->task, Q_GO, NULL, 0);
    r->from = from; /* {:noreply, {ref, from}} */
}

static void queue_len_fn(void *state, void *ctx)
{
    (void)state;
    struct hive_process_info pi;
    hive_process_info(hive_self(), &pi);
    *(uint32_t *)ctx = pi.message_queue_len;
}

static void replier_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct replier *r = state;
    if (msg->tag == Q_RESULT && hive_ref_eq(msg->ref, r->task_ref)) {
        hive_demonitor(r->task_ref, HIVE_FLUSH); /* no :DOWN after success */
        r->result = *(long *)msg->data;
        struct { hive_pid pid; long response; } rep = { r->from.pid, r->result };
        hive_reply(r->from, Q_RESULT, &rep, sizeof rep);
    } else if (msg->tag == HIVE_TAG_DOWN) {
        r->downs++;
    }
}

static void body_seed003_replier(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = first_init, .handle_call = replier_call,
                                       .handle_info = replier_info };
    struct replier st = { 0 };
    hive_pid pid;
    hive_gs_opts o = { .name = "AsyncTaskReplier" };
    ck_assert_int_eq(hive_gs_start(&b, &st, &o, &pid), 0);
    hive_msg *m;
    ck_assert_int_eq(hive_call_name("AsyncTaskReplier", Q_ASYNC, NULL, 0, &m, 5000), 0);
    struct { hive_pid pid; long response; } *rep = m->data;
    ck_assert_int_eq(rep->pid, hive_self());
    ck_assert_int_eq(rep->response, 4242);
    hive_msg_free(m);
    ck_assert(hive_is_alive(pid));
    /* after the task ended, the server's mailbox holds no :DOWN */
    hive_ref r = monitor(st.task);
    wait_down(r);
    uint32_t qlen = 99;
    ck_assert_int_eq(hive_gs_exec(pid, queue_len_fn, &qlen, 1000), 0);
    ck_assert_uint_eq(qlen, 0);
    ck_assert_int_eq(st.downs, 0);
}

START_TEST(seed003_async_task_result_is_replied_later_with_reply)
{
    run_hive(2, body_seed003_replier, NULL);
}
END_TEST

/* NoFailAsyncTaskRunner: a task started linked dies with the server
 * stopped with :kill; one started unlinked survives it. */
static void forever_task(void *arg)
{
    (void)arg;
    hive_msg_free(recv_tag(Q_GO, HIVE_INFINITY));
}

static void runner_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)state;
    hive_pid task;
    hive_spawn_opts o = { .flags = req->tag == Q_LINK ? HIVE_LINK : 0 };
    ck_assert_int_eq(hive_spawn_opt(forever_task, NULL, &o, &task), 0);
    hive_reply(from, req->tag, &task, sizeof task);
}

static void body_seed003_runner(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .handle_call = runner_call };
    for (int linked = 1; linked >= 0; linked--) {
        hive_pid pid;
        hive_gs_opts o = { .name = "NoFailAsyncTaskRunner" };
        ck_assert_int_eq(hive_gs_start(&b, NULL, &o, &pid), 0);
        hive_msg *m;
        ck_assert_int_eq(hive_call(pid, linked ? Q_LINK : Q_ASYNC, NULL, 0, &m, 1000), 0);
        hive_pid task = *(hive_pid *)m->data;
        hive_msg_free(m);
        hive_ref rt = monitor(task);
        ck_assert_int_eq(hive_gs_stop(hive_whereis("NoFailAsyncTaskRunner"), HIVE_KILL, 1000), 0);
        if (linked) {
            ck_assert_int_eq(wait_down(rt), HIVE_KILLED); /* Is task alive? false */
        } else {
            ck_assert(hive_is_alive(task));                /* Is task alive? true */
            hive_send(task, Q_GO, NULL, 0);
            ck_assert_int_eq(wait_down(rt), HIVE_NORMAL);
        }
    }
}

START_TEST(seed003_linked_task_dies_with_its_server_unlinked_survives)
{
    run_hive(2, body_seed003_runner, NULL);
}
END_TEST

/* AsyncTaskRunner: a failing task that is only monitored reaches
 * handle_info as a :DOWN, the server lives on; a failing linked task
 * takes the server down (a supervisor would restart it). */
struct taskrunner {
    hive_pid observer;
};

static void failing_task(void *arg)
{
    (void)arg;
    hive_kill(hive_self(), HIVE_KILL); /* Process.exit(self(), :kill) */
}

static void taskrunner_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)state;
    hive_pid task;
    hive_ref ref;
    hive_spawn_opts o = { .flags = req->tag == Q_LINK ? HIVE_LINK : HIVE_MONITOR, .monitor = &ref };
    ck_assert_int_eq(hive_spawn_opt(failing_task, NULL, &o, &task), 0);
    bool alive = true;
    hive_reply(from, req->tag, &alive, sizeof alive); /* {:reply, Process.alive?(self()), ref} */
}

static void taskrunner_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct taskrunner *t = state;
    if (msg->tag == HIVE_TAG_DOWN) {
        hive_reason why = ((const hive_down *)msg->data)->reason;
        hive_send(t->observer, Q_NOTE, &why, sizeof why);
    }
}

static void body_seed003_failing_tasks(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = first_init, .handle_call = taskrunner_call,
                                       .handle_info = taskrunner_info };
    struct taskrunner st = { .observer = hive_self() };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&b, &st, NULL, &pid), 0);
    hive_msg *m;
    ck_assert_int_eq(hive_call(pid, Q_ASYNC, NULL, 0, &m, 1000), 0);
    hive_msg_free(m);
    m = recv_tag(Q_NOTE, 5000);
    ck_assert_int_eq(*(hive_reason *)m->data, HIVE_KILLED);
    hive_msg_free(m);
    ck_assert(hive_is_alive(pid)); /* same pid, not restarted */
    hive_ref r = monitor(pid);
    ck_assert_int_eq(hive_call(pid, Q_LINK, NULL, 0, &m, 1000), 0);
    hive_msg_free(m);
    ck_assert_int_eq(wait_down(r), HIVE_KILLED); /* the linked failure took it down */
}

START_TEST(seed003_failing_monitored_task_is_a_down_failing_linked_task_kills_the_server)
{
    run_hive(2, body_seed003_failing_tasks, NULL);
}
END_TEST

/* FactorialGs: n! mod p by 1000 servers, one chunk of 10 each. */
#define FACT_P 1000000007L

struct chunk {
    long lo, hi;
};

static void fact_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    struct chunk *c = state;
    long v = 1;
    for (long i = c->lo; i <= c->hi; i++)
        v = v * i % FACT_P;
    hive_reply(from, Q_FACT, &v, sizeof v);
}

static void body_seed003_factorial(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = first_init, .handle_call = fact_call };
    enum { N = 10000, CHUNK = 10 };
    static struct chunk chunks[N / CHUNK];
    long single = 1;
    for (long i = 1; i <= N; i++)
        single = single * i % FACT_P;
    static hive_pid pids[N / CHUNK];
    static hive_ref reqs[N / CHUNK];
    for (int k = 0; k < N / CHUNK; k++) {
        chunks[k] = (struct chunk){ k * CHUNK + 1, (k + 1) * CHUNK };
        ck_assert_int_eq(hive_gs_start(&b, &chunks[k], NULL, &pids[k]), 0);
        ck_assert_int_eq(hive_send_request(pids[k], Q_FACT, NULL, 0, &reqs[k]), 0);
    }
    long product = 1;
    for (int k = 0; k < N / CHUNK; k++) {
        hive_msg *m;
        ck_assert_int_eq(hive_receive_response(reqs[k], &m, 5000), 0);
        product = product * reply_long(m) % FACT_P;
        ck_assert_int_eq(hive_gs_stop(pids[k], HIVE_NORMAL, 1000), 0);
    }
    ck_assert_int_eq(product, single);
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(seed003_factorial_by_a_thousand_servers_matches_one_process)
{
    run_hive(4, body_seed003_factorial, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 004: Coordinator and WebSocket                                      */
/* ------------------------------------------------------------------ */

struct websocket {
    hive_pid caller;
};

static int ws_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    struct websocket *w = arg;
    *state = w;
    return 0;
}

static void ws_cast(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct websocket *w = state;
    char response[128];
    int n = snprintf(response, sizeof response, "%.*s to you too!", (int)msg->len,
                     (const char *)msg->data);
    hive_send(w->caller, Q_RECEIVED, response, (size_t)n); /* {:message_received, response} */
}

static const hive_gen_server WEBSOCKET = { .init = ws_init, .handle_cast = ws_cast };

struct coordinator {
    struct websocket ws_state;
    hive_pid  async_pid;
    hive_from caller;
};

static int coord_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    struct coordinator *c = arg;
    c->ws_state.caller = hive_self();
    hive_gs_opts o = { .flags = HIVE_LINK };
    int rc = hive_gs_start(&WEBSOCKET, &c->ws_state, &o, &c->async_pid);
    *state = c;
    return rc;
}

static void coord_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    struct coordinator *c = state;
    ck_assert_int_eq(hive_cast(c->async_pid, Q_SEND, req->data, req->len), 0);
    c->caller = from; /* {:noreply, Map.put(state, :caller, from)} */
}

static void coord_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct coordinator *c = state;
    if (msg->tag == Q_RECEIVED)
        hive_reply(c->caller, Q_GREET, msg->data, msg->len);
}

static void body_seed004(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = coord_init, .handle_call = coord_call,
                                       .handle_info = coord_info };
    struct coordinator c = { 0 };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&b, &c, NULL, &pid), 0);
    for (int i = 0; i < 3; i++) {
        const char hello[] = "Hello world";
        hive_msg *m;
        ck_assert_int_eq(hive_call(pid, Q_GREET, hello, sizeof hello - 1, &m, 1000), 0);
        ck_assert_int_eq(m->len, strlen("Hello world to you too!"));
        ck_assert(memcmp(m->data, "Hello world to you too!", m->len) == 0);
        hive_msg_free(m);
    }
    ck_assert_uint_eq(my_queue_len(), 0);
    hive_ref r = monitor(c.async_pid);
    ck_assert_int_eq(hive_gs_stop(pid, HIVE_SHUTDOWN, 1000), 0);
    ck_assert_int_eq(wait_down(r), HIVE_SHUTDOWN); /* the linked WebSocket went with it */
}

START_TEST(seed004_greet_looks_synchronous_through_a_deferred_reply)
{
    run_hive(2, body_seed004, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("seeds");
    TCase *tc = tcase_create("seeds");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, seed000_query_gets_the_state_then_gone_away_after_shutdown);
    tcase_add_test(tc, seed000_call_to_a_pid_stopped_after_whereis_is_esrch);
    tcase_add_test(tc, seed000_whereis_call_race_never_crashes_or_hangs);
    tcase_add_test(tc, seed001_the_reply_is_matched_by_its_ref);
    tcase_add_test(tc, seed001_server_dead_before_the_call_is_esrch_by_pid_and_name);
    tcase_add_test(tc, seed001_server_crashing_right_after_replying_leaves_no_down);
    tcase_add_test(tc, seed001_two_servers_calling_each_other_recover_by_timeout);
    tcase_add_test(tc, seed002_timed_out_call_still_completes_and_the_client_survives);
    tcase_add_test(tc, seed002_a_blocked_server_times_out_the_next_call_too);
    tcase_add_test(tc, seed002_replying_early_does_not_time_out);
    tcase_add_test(tc, seed002_caught_timeouts_leave_no_reply_in_the_mailbox);
    tcase_add_test(tc, seed003_minimal_and_first_gs_state_and_calls);
    tcase_add_test(tc, seed003_stop_by_call_by_callback_and_by_a_trapped_parent_exit_run_terminate);
    tcase_add_test(tc, seed003_periodic_server_continues_then_repeats_with_send_after);
    tcase_add_test(tc, seed003_linked_parent_and_child_servers_stop_together);
    tcase_add_test(tc, seed003_call_by_pid_returns_the_pid_and_messages_reach_handle_info);
    tcase_add_test(tc, seed003_named_servers_start_once_and_keep_their_state);
    tcase_add_test(tc, seed003_async_task_result_is_replied_later_with_reply);
    tcase_add_test(tc, seed003_linked_task_dies_with_its_server_unlinked_survives);
    tcase_add_test(tc, seed003_failing_monitored_task_is_a_down_failing_linked_task_kills_the_server);
    tcase_add_test(tc, seed003_factorial_by_a_thousand_servers_matches_one_process);
    tcase_add_test(tc, seed004_greet_looks_synchronous_through_a_deferred_reply);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(make_suite)
