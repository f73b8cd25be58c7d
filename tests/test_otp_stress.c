/*
 * Concurrency stress for calls, gen_server exits, links and monitors,
 * across 4 schedulers. Each test checks every outcome (not just "no crash")
 * and ends by proving that no caller was left with a stray message.
 *
 * "Nothing left behind" needs a sync point: a server's DOWNs are all pushed
 * while it holds its lock, so once a watcher got its own DOWN of a server
 * (whichever comes first in that batch), a second monitor (which takes the
 * same lock, and answers noproc) is ordered after every DOWN the server
 * sent. settle() does that.
 */
#include "harness.h"

enum { S_ECHO = 1, S_DONE, S_GO, S_COUNT, S_LEFT, S_ALL_REPLIED, S_READY };

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint32_t my_queue_len(void)
{
    struct hive_process_info pi;
    ck_assert_int_eq(hive_process_info(hive_self(), &pi), 0);
    return pi.message_queue_len;
}

/* Waits for pid's exit; returns once every DOWN that exit sent to us is in
 * our mailbox (and so was dropped or purged, or is there to be seen). */
static void settle(hive_pid pid)
{
    hive_ref r;
    ck_assert_int_eq(hive_monitor(pid, &r), 0);
    wait_down(r);
    ck_assert_int_eq(hive_monitor(pid, &r), 0);
    ck_assert_int_eq(wait_down(r), HIVE_NOPROC);
}

static void echo_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)state;
    if (((const uint64_t *)req->data)[1] & 1)
        hive_yield(); /* widen the windows */
    hive_reply(from, S_ECHO, req->data, req->len);
}

static const hive_gen_server ECHO = { .handle_call = echo_call };

static bool call_ok(int rc)
{
    return rc == 0 || rc == -ESRCH || rc == -ECONNRESET;
}

/* ------------------------------------------------------------------ */
/* Callers against servers killed and restarted at random              */
/* ------------------------------------------------------------------ */

#define NSERVERS 6
#define NCALLERS 12
#define NCALLS   400

static const char *const names[NSERVERS] = { "s0", "s1", "s2", "s3", "s4", "s5" };

struct chaos {
    hive_pid test;
    hive_pid restarter;
    _Atomic long ok, noproc, reset, restarts;
};

static void restarter(void *arg)
{
    struct chaos *c = arg;
    hive_ref mons[NSERVERS];
    for (int i = 0; i < NSERVERS; i++) {
        hive_pid pid;
        ck_assert_int_eq(hive_gs_start(&ECHO, NULL, &(hive_gs_opts){ .name = names[i] }, &pid), 0);
        ck_assert_int_eq(hive_monitor(pid, &mons[i]), 0);
    }
    hive_send(c->test, S_READY, NULL, 0);
    for (;;) {
        hive_msg *m;
        ck_assert_int_eq(hive_receive(&m, 10000), 0);
        if (m->tag == S_DONE) {
            hive_msg_free(m);
            break;
        }
        ck_assert_uint_eq(m->tag, HIVE_TAG_DOWN);
        int i = 0;
        while (i < NSERVERS && !hive_ref_eq(mons[i], m->ref))
            i++;
        ck_assert_int_lt(i, NSERVERS);
        hive_msg_free(m);
        /* the name was released before the DOWN: a restart gets it */
        hive_pid pid;
        ck_assert_int_eq(hive_gs_start(&ECHO, NULL, &(hive_gs_opts){ .name = names[i] }, &pid), 0);
        ck_assert_int_eq(hive_monitor(pid, &mons[i]), 0);
        c->restarts++;
    }
    for (int i = 0; i < NSERVERS; i++) {
        hive_demonitor(mons[i], HIVE_FLUSH);
        hive_gs_stop(hive_whereis(names[i]), HIVE_SHUTDOWN, 5000);
    }
    hive_send(c->test, S_DONE, NULL, 0);
}

static void chaos_monkey(void *arg)
{
    struct chaos *c = arg;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int k = 0; k < 150; k++) {
        hive_pid pid = hive_whereis(names[rnd(&seed) % NSERVERS]);
        switch (rnd(&seed) % 3) {
        case 0: hive_kill(pid, HIVE_KILL); break;
        case 1: hive_kill(pid, HIVE_SHUTDOWN); break;
        default: {
            int rc = hive_gs_stop(pid, 3, 5000);
            ck_assert(rc == 0 || rc == -ESRCH || rc == -EINVAL);
        }
        }
        for (unsigned y = rnd(&seed) % 64; y > 0; y--)
            hive_yield();
    }
    hive_send(c->test, S_DONE, NULL, 0);
}

static void chaos_caller(void *arg)
{
    struct chaos *c = arg;
    uint64_t seed = (uint64_t)hive_self();
    for (uint64_t k = 0; k < NCALLS; k++) {
        uint64_t req[2] = { rnd(&seed), k };
        const char *name = names[req[0] % NSERVERS];
        hive_msg *m;
        int rc = (k & 2) ? hive_call_name(name, S_ECHO, req, sizeof req, &m, 10000)
                         : hive_call(hive_whereis(name), S_ECHO, req, sizeof req, &m, 10000);
        if (rc == -EINVAL) /* whereis between a death and the restart */
            rc = -ESRCH;
        ck_assert_msg(call_ok(rc), "call: %s", hive_strerror(rc));
        if (rc == 0) {
            ck_assert_uint_eq(m->len, sizeof req);
            ck_assert(memcmp(m->data, req, sizeof req) == 0); /* our reply, not another's */
            hive_msg_free(m);
            c->ok++;
        } else if (rc == -ESRCH) {
            c->noproc++;
        } else {
            hive_reason r = hive_call_reason();
            ck_assert_msg(r == HIVE_KILLED || r == HIVE_SHUTDOWN || r == 3, "reason %lld",
                          (long long)r);
            c->reset++;
        }
    }
    hive_send(c->test, S_DONE, NULL, 0);
    /* stay until every server this caller may have called is gone */
    hive_msg_free(recv_tag(S_GO, 20000));
    ck_assert_uint_eq(my_queue_len(), 0);
    hive_send(c->test, S_LEFT, NULL, 0);
}

static void body_chaos(void *arg)
{
    (void)arg;
    static struct chaos c;
    c.test = hive_self();
    hive_pid callers[NCALLERS], pid;
    hive_spawn(restarter, &c, &c.restarter);
    hive_msg_free(recv_tag(S_READY, 5000));
    for (int i = 0; i < NCALLERS; i++)
        hive_spawn(chaos_caller, &c, &callers[i]);
    hive_spawn(chaos_monkey, &c, &pid);
    for (int i = 0; i < NCALLERS + 1; i++)
        hive_msg_free(recv_tag(S_DONE, 30000));
    hive_send(c.restarter, S_DONE, NULL, 0);
    hive_msg_free(recv_tag(S_DONE, 30000)); /* every server stopped */
    for (int i = 0; i < NCALLERS; i++)
        hive_send(callers[i], S_GO, NULL, 0);
    for (int i = 0; i < NCALLERS; i++)
        hive_msg_free(recv_tag(S_LEFT, 30000));
    ck_assert_int_eq(c.ok + c.noproc + c.reset, NCALLERS * NCALLS);
    ck_assert_int_gt(c.ok, 0);
    ck_assert_int_gt(c.restarts, 0);
}

START_TEST(callers_against_servers_killed_and_restarted_at_random)
{
    run_hive(4, body_chaos, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 10,000 calls that all time out                                      */
/* ------------------------------------------------------------------ */

#define STORM 10000
/* ThreadSanitizer keeps a trace per fiber and runs out well before 10,000
 * live ones: there the same 10,000 calls come from fewer clients. */
#ifdef __SANITIZE_THREAD__
#define STORM_CLIENTS 1000
#else
#define STORM_CLIENTS STORM
#endif
#define STORM_CALLS (STORM / STORM_CLIENTS)

struct storm {
    hive_pid  test;
    hive_from from[STORM];
    int       nfrom;
};

/* Keeps every request; the replies all go out, late, once the test says
 * every caller has given up (S_GO). */
static void storm_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    struct storm *s = state;
    s->from[s->nfrom++] = from;
}

static void storm_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct storm *s = state;
    if (msg->tag != S_GO)
        return;
    for (int i = 0; i < s->nfrom; i++)
        hive_reply(s->from[i], S_ECHO, NULL, 0);
    /* server-to-client order: each client gets this after its reply */
    for (int i = 0; i < s->nfrom; i++)
        hive_send(s->from[i].pid, S_COUNT, NULL, 0);
    hive_send(s->test, S_ALL_REPLIED, &s->nfrom, sizeof s->nfrom);
}

static const hive_gen_server STORM_SRV = { .handle_call = storm_call, .handle_info = storm_info };

static void storm_client(void *arg)
{
    hive_pid *p = arg; /* server, test */
    int timeouts = 0;
    for (int i = 0; i < STORM_CALLS; i++) {
        hive_msg *m;
        int rc = hive_call(p[0], S_ECHO, NULL, 0, &m, 5);
        timeouts += rc == -ETIMEDOUT;
        if (rc == 0)
            hive_msg_free(m);
    }
    hive_send(p[1], S_DONE, &timeouts, sizeof timeouts);
    for (int i = 0; i < STORM_CALLS; i++) /* one per call, after its reply */
        hive_msg_free(recv_tag(S_COUNT, 20000));
    uint32_t left = my_queue_len();
    hive_send(p[1], S_LEFT, &left, sizeof left);
}

static void body_storm(void *arg)
{
    (void)arg;
    static struct storm s;
    s.test = hive_self();
    hive_pid server;
    ck_assert_int_eq(hive_gs_start(&STORM_SRV, &s, NULL, &server), 0);
    hive_sched_stats a, b;
    hive_stats(NULL, 0, &a);
    static hive_pid args[2];
    args[0] = server;
    args[1] = hive_self();
    for (int i = 0; i < STORM_CLIENTS; i++) {
        hive_pid c;
        ck_assert_int_eq(hive_spawn(storm_client, args, &c), 0);
    }
    int timeouts = 0;
    for (int i = 0; i < STORM_CLIENTS; i++) {
        hive_msg *m = recv_tag(S_DONE, 30000);
        timeouts += *(int *)m->data;
        hive_msg_free(m);
    }
    hive_send(server, S_GO, NULL, 0);
    hive_msg *all = recv_tag(S_ALL_REPLIED, 30000);
    ck_assert_int_eq(*(int *)all->data, STORM);
    hive_msg_free(all);
    long left = 0;
    for (int i = 0; i < STORM_CLIENTS; i++) {
        hive_msg *m = recv_tag(S_LEFT, 30000);
        left += *(uint32_t *)m->data;
        hive_msg_free(m);
    }
    hive_stats(NULL, 0, &b);
    ck_assert_int_eq(timeouts, STORM);
    ck_assert_int_eq(left, 0);
    ck_assert_uint_eq(b.late_replies_dropped - a.late_replies_dropped, STORM);
}

START_TEST(ten_thousand_timed_out_calls_leave_no_message_behind)
{
    hive_config cfg;
    hive_config_default(&cfg);
    cfg.schedulers = 4;
    cfg.pin = false;
    cfg.spin_us = 20;
    cfg.stack_size = 128 * 1024;
    run_hive_cfg(&cfg, body_storm, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Calls racing a server's exit; DOWNs never left behind               */
/* ------------------------------------------------------------------ */

struct race {
    hive_pid test;
    hive_pid server;
};

static void racing_caller(void *arg)
{
    struct race *r = arg;
    hive_pid server = r->server, test = r->test;
    uint64_t seed = (uint64_t)hive_self();
    for (uint64_t k = 0; k < 50; k++) {
        uint64_t req[2] = { rnd(&seed), k };
        hive_msg *m;
        int rc;
        if (k % 3 == 0) {
            hive_ref id;
            rc = hive_send_request(server, S_ECHO, req, sizeof req, &id);
            if (rc == 0)
                rc = hive_receive_response(id, &m, 10000);
        } else {
            rc = hive_call(server, S_ECHO, req, sizeof req, &m, k % 3 == 1 ? 10000 : 1);
        }
        ck_assert_msg(call_ok(rc) || rc == -ETIMEDOUT, "call: %s", hive_strerror(rc));
        if (rc == 0) {
            ck_assert(memcmp(m->data, req, sizeof req) == 0);
            hive_msg_free(m);
        }
        if (rc == -ESRCH)
            break;
    }
    settle(server);
    ck_assert_uint_eq(my_queue_len(), 0);
    hive_send(test, S_DONE, NULL, 0);
}

static void body_exit_races(void *arg)
{
    (void)arg;
    uint64_t seed = 12345;
    for (int round = 0; round < 60; round++) {
        struct race r = { .test = hive_self() };
        ck_assert_int_eq(hive_gs_start(&ECHO, NULL, NULL, &r.server), 0);
        enum { K = 6 };
        for (int i = 0; i < K; i++) {
            hive_pid p;
            hive_spawn(racing_caller, &r, &p);
        }
        for (unsigned y = rnd(&seed) % 200; y > 0; y--)
            hive_yield();
        switch (round % 3) {
        case 0: hive_kill(r.server, HIVE_KILL); break;
        case 1: ck_assert_int_eq(hive_gs_stop(r.server, HIVE_SHUTDOWN, 5000), 0); break;
        default: hive_kill(r.server, HIVE_SHUTDOWN); break;
        }
        for (int i = 0; i < K; i++)
            hive_msg_free(recv_tag(S_DONE, 30000));
    }
    ck_assert_uint_eq(my_queue_len(), 0);
}

START_TEST(calls_racing_server_exits_leave_no_down_or_reply_behind)
{
    run_hive(4, body_exit_races, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Linked parents exiting while their servers start and work           */
/* ------------------------------------------------------------------ */

struct fam {
    hive_pid    test;
    bool        trap;
    hive_reason why;
    _Atomic int terminated;
};

static int fam_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    struct fam *f = arg;
    if (f->trap)
        hive_trap_exits(true);
    *state = f;
    return 0;
}

static void fam_terminate(hive_gs *gs, void *state, hive_reason reason)
{
    (void)gs;
    struct fam *f = state;
    ck_assert_int_eq(reason, f->why);
    f->terminated++;
}

static const hive_gen_server FAM = { .init = fam_init, .handle_call = echo_call,
                                     .terminate = fam_terminate };

static void fam_parent(void *arg)
{
    struct fam *f = arg;
    hive_pid server;
    int rc = hive_gs_start(&FAM, f, &(hive_gs_opts){ .flags = HIVE_LINK }, &server);
    ck_assert_int_eq(rc, 0);
    hive_send(f->test, S_READY, &server, sizeof server);
    hive_msg_free(recv_tag(S_GO, 10000));
    uint64_t seed = (uint64_t)server;
    for (unsigned y = rnd(&seed) % 100; y > 0; y--)
        hive_yield();
    hive_exit(f->why);
}

static void fam_caller(void *arg)
{
    hive_pid *p = arg; /* server, test */
    for (uint64_t k = 0; k < 30; k++) {
        uint64_t req[2] = { k, k };
        hive_msg *m;
        int rc = hive_call(p[0], S_ECHO, req, sizeof req, &m, 10000);
        ck_assert_msg(call_ok(rc), "call: %s", hive_strerror(rc));
        if (rc == 0)
            hive_msg_free(m);
        else
            break;
    }
    settle(p[0]);
    ck_assert_uint_eq(my_queue_len(), 0);
    hive_send(p[1], S_DONE, NULL, 0);
}

static void body_parent_races(void *arg)
{
    (void)arg;
    enum { ROUNDS = 80 };
    static struct fam fams[ROUNDS];
    static hive_pid cargs[ROUNDS][2];
    int expect_term = 0;
    for (int i = 0; i < ROUNDS; i++) {
        struct fam *f = &fams[i];
        f->test = hive_self();
        f->trap = i % 2;
        f->why = (i % 4 < 2) ? 9 : HIVE_NORMAL;
        hive_pid parent;
        hive_spawn(fam_parent, f, &parent);
        hive_msg *m = recv_tag(S_READY, 10000);
        hive_pid server = *(hive_pid *)m->data;
        hive_msg_free(m);
        hive_ref r;
        ck_assert_int_eq(hive_monitor(server, &r), 0);
        cargs[i][0] = server;
        cargs[i][1] = hive_self();
        for (int k = 0; k < 3; k++) {
            hive_pid c;
            hive_spawn(fam_caller, cargs[i], &c);
        }
        hive_send(parent, S_GO, NULL, 0);
        if (!f->trap && f->why == HIVE_NORMAL) {
            /* a normal parent exit leaves a server that does not trap
             * running: stop it ourselves */
            hive_gs_stop(server, HIVE_NORMAL, 10000);
            ck_assert_int_eq(wait_down(r), HIVE_NORMAL);
        } else {
            ck_assert_int_eq(wait_down(r), f->why);
            expect_term += f->trap;
        }
        for (int k = 0; k < 3; k++)
            hive_msg_free(recv_tag(S_DONE, 30000));
    }
    int term = 0;
    for (int i = 0; i < ROUNDS; i++)
        term += fams[i].terminated;
    /* terminate ran exactly for the servers that trap exits; the others
     * were stopped by hive_gs_stop (normal) or died without it */
    int stopped_normal = 0;
    for (int i = 0; i < ROUNDS; i++)
        stopped_normal += !fams[i].trap && fams[i].why == HIVE_NORMAL;
    ck_assert_int_eq(term, expect_term + stopped_normal);
}

START_TEST(linked_parents_exiting_at_random_stop_their_servers_by_otp_rules)
{
    run_hive(4, body_parent_races, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("otp_stress");
    TCase *tc = tcase_create("otp_stress");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, callers_against_servers_killed_and_restarted_at_random);
    tcase_add_test(tc, ten_thousand_timed_out_calls_leave_no_message_behind);
    tcase_add_test(tc, calls_racing_server_exits_leave_no_down_or_reply_behind);
    tcase_add_test(tc, linked_parents_exiting_at_random_stop_their_servers_by_otp_rules);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(make_suite)
