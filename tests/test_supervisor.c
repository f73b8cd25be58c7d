/*
 * Supervisors: start order and failed starts, every strategy with every
 * restart type, intensity, shutdown (time-out then kill, brutal kill,
 * order), the child API and its errors, dynamic supervisors, nested trees,
 * named children restarted many times, and the seed's scenarios.
 *
 * Workers report to the test process (the observer) when they start and
 * when they stop; every test waits on those messages and on monitors.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "harness.h"

enum {
    T_STARTED = 1,   /* start function (in the supervisor) -> observer: struct ev */
    T_STOPPING,      /* worker -> observer: struct ev (trapped the shutdown) */
    T_CRASH,         /* -> worker: exit with the payload reason */
    T_PING,          /* call: reply with the worker's id */
    T_EEXIST,        /* start function -> observer: a name was taken */
};

struct ev {
    int      id;
    hive_pid pid;
    hive_reason reason;
};

static hive_pid g_obs;

struct wcfg {
    int  id;
    bool trap;            /* trap exits and report T_STOPPING */
    bool ignore_shutdown; /* trap and never exit on the shutdown */
    int  start_rc;        /* the start function returns this instead (if != 0) */
};

static void report(uint32_t tag, int id, hive_reason reason)
{
    struct ev e = { .id = id, .pid = hive_self(), .reason = reason };
    hive_send(g_obs, tag, &e, sizeof e);
}

static void worker(void *arg)
{
    const struct wcfg *c = arg;
    if (c->trap || c->ignore_shutdown)
        hive_trap_exits(true);
    for (;;) {
        hive_msg *m;
        if (hive_receive(&m, HIVE_INFINITY) != 0)
            continue;
        if (m->tag == T_CRASH) {
            hive_reason r = *(hive_reason *)m->data;
            hive_msg_free(m);
            hive_exit(r);
        }
        if (m->tag == HIVE_TAG_EXIT) {
            hive_exit_signal e = *(hive_exit_signal *)m->data;
            hive_msg_free(m);
            if (c->ignore_shutdown)
                continue;
            report(T_STOPPING, c->id, e.reason);
            hive_exit(e.reason);
        }
        hive_msg_free(m);
    }
}

static int start_worker(void *arg, hive_pid *out)
{
    const struct wcfg *c = arg;
    if (c->start_rc)
        return c->start_rc;
    /* Reported from the supervisor's process, so in start order. The
     * worker sets trap_exits before it looks at its mailbox, so a shutdown
     * that comes first is trapped all the same. */
    int rc = hive_spawn_opt(worker, arg, &(hive_spawn_opts){ .flags = HIVE_LINK }, out);
    if (rc == 0) {
        struct ev e = { .id = c->id, .pid = *out };
        hive_send(g_obs, T_STARTED, &e, sizeof e);
    }
    return rc;
}

static struct ev recv_ev(uint32_t tag)
{
    hive_msg *m = recv_tag(tag, 10000);
    struct ev e = *(struct ev *)m->data;
    hive_msg_free(m);
    return e;
}

static bool has_tag(uint32_t tag)
{
    hive_msg *m;
    if (hive_receive_if(match_tag, &tag, &m, 0) != 0)
        return false;
    hive_msg_free(m);
    return true;
}

static hive_child_spec wspec(const char *id, struct wcfg *c, enum hive_restart r)
{
    return (hive_child_spec){ .id = id, .start = start_worker, .arg = c, .restart = r };
}

static hive_pid child_pid(hive_pid sup, const char *id)
{
    hive_child_info info[64];
    int n = hive_sup_which_children(sup, info, 64);
    ck_assert_int_ge(n, 0);
    for (int i = 0; i < n && i < 64; i++)
        if (strcmp(info[i].id, id) == 0)
            return info[i].pid;
    return HIVE_NOPID;
}

static void crash(hive_pid pid, hive_reason r)
{
    hive_send(pid, T_CRASH, &r, sizeof r);
}

/* Crash pid and wait until it is gone. */
static void crash_wait(hive_pid pid, hive_reason r)
{
    hive_ref ref;
    ck_assert_int_eq(hive_monitor(pid, &ref), 0);
    crash(pid, r);
    ck_assert_int_eq(wait_down(ref), r);
}

static hive_reason stop_sup(hive_pid sup)
{
    hive_ref ref;
    ck_assert_int_eq(hive_monitor(sup, &ref), 0);
    ck_assert_int_eq(hive_gs_stop(sup, HIVE_SHUTDOWN, 10000), 0);
    return wait_down(ref);
}

static uint32_t my_queue_len(void)
{
    struct hive_process_info pi;
    ck_assert_int_eq(hive_process_info(hive_self(), &pi), 0);
    return pi.message_queue_len;
}

/* ------------------------------------------------------------------ */

static void t_start_order(void *arg)
{
    (void)arg;
    g_obs = hive_self();
    struct wcfg c[3] = { { .id = 0 }, { .id = 1 }, { .id = 2 } };
    hive_child_spec specs[3] = { wspec("a", &c[0], HIVE_PERMANENT), wspec("b", &c[1], HIVE_PERMANENT),
                                 wspec("c", &c[2], HIVE_PERMANENT) };
    specs[2].type = HIVE_WORKER;
    hive_pid sup;
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.name = "top";
    ck_assert_int_eq(hive_sup_start(specs, 3, &o, &sup), 0);
    ck_assert_uint_eq(hive_whereis("top"), sup);
    /* in list order, and all started when hive_sup_start returned */
    hive_pid pids[3];
    for (int i = 0; i < 3; i++) {
        hive_msg *m;
        ck_assert_int_eq(hive_receive(&m, 0), 0);
        ck_assert_uint_eq(m->tag, T_STARTED);
        ck_assert_int_eq(((struct ev *)m->data)->id, i);
        pids[i] = ((struct ev *)m->data)->pid;
        hive_msg_free(m);
    }
    hive_child_info info[4];
    ck_assert_int_eq(hive_sup_which_children(sup, info, 4), 3);
    ck_assert_int_eq(hive_sup_which_children(sup, info, 1), 3);
    ck_assert_int_eq(hive_sup_which_children(sup, NULL, 0), 3);
    ck_assert_int_eq(hive_sup_which_children(sup, info, 4), 3);
    const char *ids[3] = { "a", "b", "c" };
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(info[i].id, ids[i]);
        ck_assert_uint_eq(info[i].pid, pids[i]);
        ck_assert_int_eq(info[i].type, HIVE_WORKER);
        ck_assert(!info[i].restarting);
    }
    hive_child_counts k;
    ck_assert_int_eq(hive_sup_count_children(sup, &k), 0);
    ck_assert_uint_eq(k.specs, 3);
    ck_assert_uint_eq(k.active, 3);
    ck_assert_uint_eq(k.workers, 3);
    ck_assert_uint_eq(k.supervisors, 0);
    /* a supervisor is a gen_server, linked to each child, trapping exits */
    struct hive_process_info pi;
    ck_assert_int_eq(hive_process_info(sup, &pi), 0);
    ck_assert(pi.gen_server);
    ck_assert(pi.trap_exit);
    ck_assert_uint_eq(pi.links, 3);
    /* the name is taken */
    hive_pid other = 0;
    ck_assert_int_eq(hive_sup_start(specs, 3, &o, &other), -EEXIST);
    ck_assert_uint_eq(other, sup);
    ck_assert_int_eq(stop_sup(sup), HIVE_SHUTDOWN);
    ck_assert_uint_eq(hive_whereis("top"), HIVE_NOPID);
    for (int i = 0; i < 3; i++)
        ck_assert(!hive_is_alive(pids[i]));
}
START_TEST(children_start_in_order_and_are_listed_in_start_order) { run_hive(2, t_start_order, NULL); }
END_TEST

static void t_failed_start(void *arg)
{
    (void)arg;
    g_obs = hive_self();
    struct wcfg c[4] = { { .id = 0, .trap = true }, { .id = 1, .trap = true },
                         { .id = 2, .start_rc = -ENOTSUP }, { .id = 3 } };
    hive_child_spec specs[4] = { wspec("a", &c[0], 0), wspec("b", &c[1], 0), wspec("c", &c[2], 0),
                                 wspec("d", &c[3], 0) };
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.name = "failing";
    hive_pid sup = 12345;
    ck_assert_int_eq(hive_sup_start(specs, 4, &o, &sup), -ENOTSUP);
    ck_assert_uint_eq(sup, 12345); /* not written on failure */
    ck_assert_uint_eq(hive_whereis("failing"), HIVE_NOPID);
    ck_assert_int_eq(recv_ev(T_STARTED).id, 0);
    ck_assert_int_eq(recv_ev(T_STARTED).id, 1);
    /* shut down in reverse order, with HIVE_SHUTDOWN */
    struct ev e1 = recv_ev(T_STOPPING), e0 = recv_ev(T_STOPPING);
    ck_assert_int_eq(e1.id, 1);
    ck_assert_int_eq(e0.id, 0);
    ck_assert_int_eq(e0.reason, HIVE_SHUTDOWN);
    ck_assert(!has_tag(T_STARTED)); /* d never started */
    /* bad specs and options */
    hive_child_spec bad = wspec(NULL, &c[0], 0);
    ck_assert_int_eq(hive_sup_start(&bad, 1, NULL, &sup), -EINVAL);
    bad = wspec("x", &c[0], 0);
    bad.start = NULL;
    ck_assert_int_eq(hive_sup_start(&bad, 1, NULL, &sup), -EINVAL);
    char longid[HIVE_NAME_MAX + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    bad = wspec(longid, &c[0], 0);
    ck_assert_int_eq(hive_sup_start(&bad, 1, NULL, &sup), -EINVAL);
    bad = wspec("x", &c[0], 0);
    bad.shutdown_ms = -7;
    ck_assert_int_eq(hive_sup_start(&bad, 1, NULL, &sup), -EINVAL);
    ck_assert_int_eq(hive_sup_start(NULL, 1, NULL, &sup), -EINVAL);
    hive_child_spec dup[2] = { wspec("x", &c[0], 0), wspec("x", &c[1], 0) };
    ck_assert_int_eq(hive_sup_start(dup, 2, NULL, &sup), -EEXIST);
    hive_sup_opts z = { 0 }; /* zeroed: period 0 is -EINVAL */
    ck_assert_int_eq(hive_sup_start(NULL, 0, &z, &sup), -EINVAL);
    z.period_ms = 1000;
    z.strategy = 7;
    ck_assert_int_eq(hive_sup_start(NULL, 0, &z, &sup), -EINVAL);
    z.strategy = HIVE_ONE_FOR_ALL;
    ck_assert_int_eq(hive_dynsup_start(&z, &sup), -EINVAL); /* dynamic: one_for_one only */
    z.strategy = HIVE_ONE_FOR_ONE;
    z.intensity = -1;
    ck_assert_int_eq(hive_sup_start(NULL, 0, &z, &sup), -EINVAL);
    /* an empty supervisor is fine */
    z.intensity = 0;
    ck_assert_int_eq(hive_sup_start(NULL, 0, &z, &sup), 0);
    ck_assert_int_eq(hive_sup_which_children(sup, NULL, 0), 0);
    ck_assert_int_eq(stop_sup(sup), HIVE_SHUTDOWN);
    ck_assert_uint_eq(my_queue_len(), 0);
}
START_TEST(a_failed_start_stops_the_started_children_in_reverse_and_returns_the_error)
{
    run_hive(2, t_failed_start, NULL);
}
END_TEST

/* Every strategy with every restart type and exit kind: which children
 * get restarted, which are stopped, and in which order. Four children;
 * child 1 exits. */
struct matrix_case {
    enum hive_strategy st;
    enum hive_restart rt;
    hive_reason reason;
};

static void t_matrix(void *arg)
{
    (void)arg;
    g_obs = hive_self();
    enum hive_strategy sts[3] = { HIVE_ONE_FOR_ONE, HIVE_ONE_FOR_ALL, HIVE_REST_FOR_ONE };
    enum hive_restart rts[3] = { HIVE_PERMANENT, HIVE_TRANSIENT, HIVE_TEMPORARY };
    hive_reason reasons[3] = { HIVE_NORMAL, HIVE_SHUTDOWN, 77 };
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int r = 0; r < 3; r++) {
                struct wcfg c[4];
                hive_child_spec specs[4];
                const char *ids[4] = { "c0", "c1", "c2", "c3" };
                for (int i = 0; i < 4; i++) {
                    c[i] = (struct wcfg){ .id = i, .trap = true };
                    /* the child that exits has the restart type under test,
                     * the others are permanent */
                    specs[i] = wspec(ids[i], &c[i], i == 1 ? rts[b] : HIVE_PERMANENT);
                }
                hive_sup_opts o;
                hive_sup_opts_default(&o);
                o.strategy = sts[a];
                hive_pid sup;
                ck_assert_int_eq(hive_sup_start(specs, 4, &o, &sup), 0);
                hive_pid pid[4];
                for (int i = 0; i < 4; i++)
                    pid[i] = recv_ev(T_STARTED).pid;
                crash_wait(pid[1], reasons[r]);
                bool restart = rts[b] == HIVE_PERMANENT ||
                               (rts[b] == HIVE_TRANSIENT && reasons[r] == 77);
                /* what the strategy stops, in reverse start order */
                int stopped[4], ns = 0;
                if (restart && sts[a] == HIVE_ONE_FOR_ALL) {
                    stopped[ns++] = 3;
                    stopped[ns++] = 2;
                    stopped[ns++] = 0;
                } else if (restart && sts[a] == HIVE_REST_FOR_ONE) {
                    stopped[ns++] = 3;
                    stopped[ns++] = 2;
                }
                for (int i = 0; i < ns; i++) {
                    struct ev e = recv_ev(T_STOPPING);
                    ck_assert_msg(e.id == stopped[i], "st %d rt %d reason %d: stop %d, want %d",
                                  a, b, r, e.id, stopped[i]);
                    ck_assert_int_eq(e.reason, HIVE_SHUTDOWN);
                }
                /* then the restarts, in start order */
                int started[4], nr = 0;
                if (restart) {
                    if (sts[a] == HIVE_ONE_FOR_ALL)
                        for (int i = 0; i < 4; i++)
                            started[nr++] = i;
                    else if (sts[a] == HIVE_REST_FOR_ONE)
                        for (int i = 1; i < 4; i++)
                            started[nr++] = i;
                    else
                        started[nr++] = 1;
                }
                for (int i = 0; i < nr; i++) {
                    struct ev e = recv_ev(T_STARTED);
                    ck_assert_int_eq(e.id, started[i]);
                    pid[e.id] = e.pid;
                }
                /* the supervisor's view once it answers (after the restarts) */
                hive_child_info info[4];
                int n = hive_sup_which_children(sup, info, 4);
                int want = rts[b] == HIVE_TEMPORARY ? 3 : 4;
                ck_assert_msg(n == want, "st %d rt %d reason %d: %d children", a, b, r, n);
                for (int i = 0, j = 0; i < 4; i++) {
                    if (i == 1 && rts[b] == HIVE_TEMPORARY)
                        continue; /* its spec is dropped */
                    ck_assert_str_eq(info[j].id, ids[i]);
                    if (i == 1 && !restart)
                        ck_assert_uint_eq(info[j].pid, HIVE_NOPID);
                    else
                        ck_assert_uint_eq(info[j].pid, pid[i]);
                    j++;
                }
                ck_assert(!has_tag(T_STARTED));
                ck_assert_int_eq(stop_sup(sup), HIVE_SHUTDOWN);
                /* the rest of the children report their stop: reverse order */
                int prev = 4;
                for (int i = 0; i < 4; i++) {
                    if (i == 1 && !restart)
                        continue;
                    struct ev e = recv_ev(T_STOPPING);
                    ck_assert_int_lt(e.id, prev);
                    prev = e.id;
                }
                ck_assert_uint_eq(my_queue_len(), 0);
            }
}
START_TEST(every_strategy_with_every_restart_type_restarts_and_stops_the_right_children)
{
    run_hive(2, t_matrix, NULL);
}
END_TEST

static void t_intensity(void *arg)
{
    (void)arg;
    g_obs = hive_self();
    struct wcfg c[3] = { { .id = 0, .trap = true }, { .id = 1, .trap = true }, { .id = 2, .trap = true } };
    hive_child_spec specs[3] = { wspec("a", &c[0], 0), wspec("b", &c[1], 0), wspec("c", &c[2], 0) };
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.intensity = 2;
    o.period_ms = 60000;
    hive_pid sup;
    ck_assert_int_eq(hive_sup_start(specs, 3, &o, &sup), 0);
    hive_ref mref;
    ck_assert_int_eq(hive_monitor(sup, &mref), 0);
    hive_pid p1 = HIVE_NOPID;
    for (int i = 0; i < 3; i++) {
        struct ev e = recv_ev(T_STARTED);
        if (e.id == 1)
            p1 = e.pid;
    }
    /* two restarts are within the intensity */
    for (int i = 0; i < 2; i++) {
        crash_wait(p1, 9);
        struct ev e = recv_ev(T_STARTED);
        ck_assert_int_eq(e.id, 1);
        p1 = e.pid;
    }
    /* the third is one too many: everything is shut down, in reverse
     * order, and the supervisor exits with HIVE_SHUTDOWN */
    crash_wait(p1, 9);
    ck_assert_int_eq(recv_ev(T_STOPPING).id, 2);
    ck_assert_int_eq(recv_ev(T_STOPPING).id, 0);
    ck_assert_int_eq(wait_down(mref), HIVE_SHUTDOWN);
    ck_assert(!has_tag(T_STARTED));

    /* intensity 0: no restart at all */
    o.intensity = 0;
    ck_assert_int_eq(hive_sup_start(specs, 1, &o, &sup), 0);
    ck_assert_int_eq(hive_monitor(sup, &mref), 0);
    crash_wait(recv_ev(T_STARTED).pid, 5);
    ck_assert_int_eq(wait_down(mref), HIVE_SHUTDOWN);
    ck_assert(!has_tag(T_STARTED));

    /* restarts older than the period are forgotten */
    o.intensity = 1;
    o.period_ms = 50;
    ck_assert_int_eq(hive_sup_start(specs, 1, &o, &sup), 0);
    ck_assert_int_eq(hive_monitor(sup, &mref), 0);
    hive_pid p = recv_ev(T_STARTED).pid;
    for (int i = 0; i < 3; i++) {
        crash_wait(p, 5);
        p = recv_ev(T_STARTED).pid;
        hive_sleep(60); /* let the period pass: the behaviour under test */
    }
    ck_assert(hive_is_alive(sup));
    ck_assert_int_eq(stop_sup(sup), HIVE_SHUTDOWN);
}
START_TEST(more_restarts_than_intensity_within_period_stop_the_supervisor)
{
    run_hive(2, t_intensity, NULL);
}
END_TEST

static void t_shutdown_timeout(void *arg)
{
    (void)arg;
    g_obs = hive_self();
    struct wcfg stubborn = { .id = 0, .ignore_shutdown = true };
    struct wcfg polite = { .id = 1, .trap = true };
    hive_child_spec specs[3] = { wspec("stubborn", &stubborn, 0), wspec("brutal", &stubborn, 0),
                                 wspec("polite", &polite, 0) };
    specs[0].shutdown_ms = 300;
    specs[1].shutdown_ms = HIVE_BRUTAL_KILL;
    specs[2].shutdown_ms = HIVE_INFINITY;
    hive_pid sup;
    ck_assert_int_eq(hive_sup_start(specs, 3, NULL, &sup), 0);
    hive_pid p[3];
    for (int i = 0; i < 3; i++)
        p[i] = recv_ev(T_STARTED).pid;
    hive_ref r[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(hive_monitor(p[i], &r[i]), 0);

    /* ignores the shutdown: killed after its 300 ms, not before */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(hive_sup_terminate_child(sup, "stubborn"), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    ck_assert_msg(ms >= 300, "killed after %.1f ms", ms);
    ck_assert_int_eq(wait_down(r[0]), HIVE_KILLED);
    ck_assert(!has_tag(T_STOPPING));

    /* brutal kill: at once, it never sees a shutdown */
    ck_assert_int_eq(hive_sup_terminate_child(sup, "brutal"), 0);
    ck_assert_int_eq(wait_down(r[1]), HIVE_KILLED);
    ck_assert(!has_tag(T_STOPPING));

    /* infinity: waits for the child to finish its shutdown */
    ck_assert_int_eq(hive_sup_terminate_child(sup, "polite"), 0);
    ck_assert_int_eq(wait_down(r[2]), HIVE_SHUTDOWN);
    ck_assert_int_eq(recv_ev(T_STOPPING).id, 1);

    /* terminated children keep their specs and are not restarted */
    hive_child_counts k;
    ck_assert_int_eq(hive_sup_count_children(sup, &k), 0);
    ck_assert_uint_eq(k.specs, 3);
    ck_assert_uint_eq(k.active, 0);
    ck_assert_int_eq(hive_sup_terminate_child(sup, "polite"), 0); /* not running: fine */
    ck_assert_int_eq(stop_sup(sup), HIVE_SHUTDOWN);
    ck_assert(!has_tag(T_STARTED));
}
START_TEST(shutdown_waits_its_time_out_then_kills_and_brutal_kill_kills_at_once)
{
    run_hive(2, t_shutdown_timeout, NULL);
}
END_TEST

static int start_ignore(void *arg, hive_pid *out)
{
    (void)arg;
    (void)out;
    return HIVE_IGNORE;
}

static void t_child_api(void *arg)
{
    (void)arg;
    g_obs = hive_self();
    struct wcfg c[3] = { { .id = 0 }, { .id = 1 }, { .id = 2, .start_rc = -EIO } };
    hive_pid sup;
    ck_assert_int_eq(hive_sup_start(NULL, 0, NULL, &sup), 0);
    hive_child_spec a = wspec("a", &c[0], HIVE_PERMANENT);
    hive_pid pa = 0, out = 0;
    ck_assert_int_eq(hive_sup_start_child(sup, &a, &pa), 0);
    ck_assert_uint_eq(recv_ev(T_STARTED).pid, pa);
    /* an id already present: -EEXIST and its pid */
    ck_assert_int_eq(hive_sup_start_child(sup, &a, &out), -EEXIST);
    ck_assert_uint_eq(out, pa);
    /* a failing start: its error, nothing kept */
    hive_child_spec f = wspec("f", &c[2], 0);
    out = 99;
    ck_assert_int_eq(hive_sup_start_child(sup, &f, &out), -EIO);
    ck_assert_uint_eq(out, 99);
    ck_assert_int_eq(hive_sup_which_children(sup, NULL, 0), 1);
    /* HIVE_IGNORE: spec kept, not running, *out = HIVE_NOPID */
    hive_child_spec ig = { .id = "ign", .start = start_ignore };
    out = 99;
    ck_assert_int_eq(hive_sup_start_child(sup, &ig, &out), HIVE_IGNORE);
    ck_assert_uint_eq(out, HIVE_NOPID);
    ck_assert_int_eq(hive_sup_start_child(sup, &ig, &out), -EEXIST);
    ck_assert_uint_eq(child_pid(sup, "ign"), HIVE_NOPID);
    /* restart/delete of a running child: -EBUSY; unknown: -ENOENT */
    ck_assert_int_eq(hive_sup_restart_child(sup, "a", &out), -EBUSY);
    ck_assert_int_eq(hive_sup_delete_child(sup, "a"), -EBUSY);
    ck_assert_int_eq(hive_sup_restart_child(sup, "nope", &out), -ENOENT);
    ck_assert_int_eq(hive_sup_delete_child(sup, "nope"), -ENOENT);
    ck_assert_int_eq(hive_sup_terminate_child(sup, "nope"), -ENOENT);
    ck_assert_int_eq(hive_dynsup_terminate_child(sup, hive_self()), -ENOENT);
    /* terminate, restart, delete */
    ck_assert_int_eq(hive_sup_terminate_child(sup, "a"), 0);
    ck_assert(!hive_is_alive(pa));
    ck_assert_uint_eq(child_pid(sup, "a"), HIVE_NOPID);
    hive_pid pa2 = 0;
    ck_assert_int_eq(hive_sup_restart_child(sup, "a", &pa2), 0);
    ck_assert_uint_eq(recv_ev(T_STARTED).pid, pa2);
    ck_assert_uint_ne(pa2, pa);
    ck_assert_uint_eq(child_pid(sup, "a"), pa2);
    ck_assert_int_eq(hive_sup_restart_child(sup, "ign", &out), HIVE_IGNORE);
    ck_assert_int_eq(hive_sup_delete_child(sup, "ign"), 0);
    ck_assert_int_eq(hive_sup_delete_child(sup, "ign"), -ENOENT);
    /* by pid, as for a dynamic supervisor */
    ck_assert_int_eq(hive_dynsup_terminate_child(sup, pa2), 0);
    ck_assert(!hive_is_alive(pa2));
    ck_assert_int_eq(hive_sup_delete_child(sup, "a"), 0);
    ck_assert_int_eq(hive_sup_which_children(sup, NULL, 0), 0);
    /* a temporary child's spec goes with it */
    hive_child_spec t = wspec("t", &c[1], HIVE_TEMPORARY);
    hive_pid pt;
    ck_assert_int_eq(hive_sup_start_child(sup, &t, &pt), 0);
    recv_ev(T_STARTED);
    ck_assert_int_eq(hive_sup_terminate_child(sup, "t"), 0);
    ck_assert_int_eq(hive_sup_which_children(sup, NULL, 0), 0);
    /* bad arguments */
    ck_assert_int_eq(hive_sup_start_child(sup, NULL, &out), -EINVAL);
    hive_child_spec noid = wspec(NULL, &c[0], 0);
    ck_assert_int_eq(hive_sup_start_child(sup, &noid, &out), -EINVAL);
    ck_assert_int_eq(hive_sup_terminate_child(sup, NULL), -EINVAL);
    ck_assert_int_eq(hive_sup_which_children(sup, NULL, 3), -EINVAL);
    ck_assert_int_eq(hive_sup_count_children(sup, NULL), -EINVAL);
    ck_assert_int_eq(hive_sup_start_child(HIVE_NOPID, &a, &out), -EINVAL);
    /* the supervisor is gone: -ESRCH */
    ck_assert_int_eq(stop_sup(sup), HIVE_SHUTDOWN);
    hive_child_counts k;
    ck_assert_int_eq(hive_sup_start_child(sup, &a, &out), -ESRCH);
    ck_assert_int_eq(hive_sup_terminate_child(sup, "a"), -ESRCH);
    ck_assert_int_eq(hive_sup_restart_child(sup, "a", &out), -ESRCH);
    ck_assert_int_eq(hive_sup_delete_child(sup, "a"), -ESRCH);
    ck_assert_int_eq(hive_sup_which_children(sup, NULL, 0), -ESRCH);
    ck_assert_int_eq(hive_sup_count_children(sup, &k), -ESRCH);
    ck_assert_int_eq(hive_dynsup_start_child(sup, &a, &out), -ESRCH);
    ck_assert_int_eq(hive_dynsup_terminate_child(sup, pa), -ESRCH);
    ck_assert_int_eq(hive_gs_stop(sup, HIVE_SHUTDOWN, 1000), -ESRCH);
    ck_assert(!has_tag(T_STARTED));
    ck_assert_uint_eq(my_queue_len(), 0);
}
START_TEST(the_child_api_and_every_error_it_returns) { run_hive(2, t_child_api, NULL); }
END_TEST

static void t_dynsup(void *arg)
{
    (void)arg;
    g_obs = hive_self();
    struct wcfg c[4] = { { .id = 0 }, { .id = 1 }, { .id = 2 }, { .id = 3 } };
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.max_children = 3;
    o.name = "DynSup";
    hive_pid sup;
    ck_assert_int_eq(hive_dynsup_start(&o, &sup), 0);
    hive_pid p[3];
    hive_child_spec spec[3] = { wspec(NULL, &c[0], HIVE_PERMANENT), wspec(NULL, &c[1], HIVE_TRANSIENT),
                                wspec("ignored", &c[2], HIVE_TEMPORARY) };
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(hive_dynsup_start_child(sup, &spec[i], &p[i]), 0);
        ck_assert_uint_eq(recv_ev(T_STARTED).pid, p[i]);
    }
    hive_pid out = 7;
    hive_child_spec more = wspec(NULL, &c[3], 0);
    ck_assert_int_eq(hive_dynsup_start_child(sup, &more, &out), -ENOSPC);
    ck_assert_uint_eq(out, 7);
    hive_child_info info[4];
    ck_assert_int_eq(hive_sup_which_children(sup, info, 4), 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(info[i].id, "");
        ck_assert_uint_eq(info[i].pid, p[i]);
    }
    /* the seed's DynSupGs: stopped with :shutdown, a permanent child is
     * restarted with a new pid */
    crash_wait(p[0], HIVE_SHUTDOWN);
    hive_pid np = recv_ev(T_STARTED).pid;
    ck_assert_uint_ne(np, p[0]);
    ck_assert_int_eq(hive_sup_which_children(sup, info, 4), 3);
    ck_assert_uint_eq(info[0].pid, np);
    /* transient exiting normally, temporary crashing: both gone */
    crash_wait(p[1], HIVE_NORMAL);
    crash_wait(p[2], 5);
    ck_assert_int_eq(hive_sup_which_children(sup, info, 4), 1);
    /* terminate by pid; a pid that is not a child is -ENOENT */
    ck_assert_int_eq(hive_dynsup_terminate_child(sup, p[1]), -ENOENT);
    ck_assert_int_eq(hive_dynsup_terminate_child(sup, np), 0);
    ck_assert_int_eq(hive_sup_which_children(sup, info, 4), 0);
    ck_assert(!hive_is_alive(np));
    /* HIVE_IGNORE keeps nothing */
    hive_child_spec ig = { .start = start_ignore };
    ck_assert_int_eq(hive_dynsup_start_child(sup, &ig, &out), HIVE_IGNORE);
    ck_assert_int_eq(hive_sup_which_children(sup, info, 4), 0);
    ck_assert_int_eq(hive_dynsup_start_child(sup, NULL, &out), -EINVAL);
    /* id-based calls find nothing in a dynamic supervisor */
    ck_assert_int_eq(hive_sup_terminate_child(sup, "ignored"), -ENOENT);
    ck_assert_int_eq(stop_sup(sup), HIVE_SHUTDOWN);
    ck_assert(!has_tag(T_STARTED));
}
START_TEST(dynamic_supervisor_limits_restarts_and_terminates_by_pid) { run_hive(2, t_dynsup, NULL); }
END_TEST

/* ------------------------------------------------------------------ */
/* Nested trees                                                        */
/* ------------------------------------------------------------------ */

struct subsup {
    struct wcfg w[2];
    char ids[2][8];
    hive_child_spec specs[2];
};

static int start_subsup(void *arg, hive_pid *out)
{
    struct subsup *s = arg;
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.flags = HIVE_LINK;
    return hive_sup_start(s->specs, 2, &o, out);
}

static void t_nested(void *arg)
{
    (void)arg;
    g_obs = hive_self();
    /* root: worker 0, sub A (workers 10, 11), worker 1, sub B (20, 21) */
    struct subsup sa, sb;
    struct subsup *subs[2] = { &sa, &sb };
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < 2; i++) {
            subs[s]->w[i] = (struct wcfg){ .id = 10 * (s + 1) + i, .trap = true };
            snprintf(subs[s]->ids[i], 8, "w%d", i);
            subs[s]->specs[i] = wspec(subs[s]->ids[i], &subs[s]->w[i], 0);
        }
    }
    struct wcfg w0 = { .id = 0, .trap = true }, w1 = { .id = 1, .trap = true };
    hive_child_spec root[4] = {
        wspec("w0", &w0, 0),
        { .id = "A", .start = start_subsup, .arg = &sa, .type = HIVE_SUPERVISOR },
        wspec("w1", &w1, 0),
        { .id = "B", .start = start_subsup, .arg = &sb, .type = HIVE_SUPERVISOR },
    };
    hive_pid top;
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.name = "MySupervisor";
    ck_assert_int_eq(hive_sup_start(root, 4, &o, &top), 0);
    int order[6] = { 0, 10, 11, 1, 20, 21 };
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(recv_ev(T_STARTED).id, order[i]);
    hive_child_counts k;
    ck_assert_int_eq(hive_sup_count_children(top, &k), 0);
    ck_assert_uint_eq(k.specs, 4);
    ck_assert_uint_eq(k.active, 4);
    ck_assert_uint_eq(k.supervisors, 2);
    ck_assert_uint_eq(k.workers, 2);
    hive_pid a = child_pid(top, "A");
    ck_assert_int_eq(hive_sup_which_children(a, NULL, 0), 2);
    /* a worker deep in the tree is restarted by its own supervisor */
    hive_pid w11 = child_pid(a, "w1");
    crash_wait(w11, 3);
    ck_assert_int_eq(recv_ev(T_STARTED).id, 11);
    ck_assert_uint_eq(child_pid(top, "A"), a);
    /* stopping the root stops everything in reverse order, depth first */
    ck_assert_int_eq(stop_sup(top), HIVE_SHUTDOWN);
    int stop_order[6] = { 21, 20, 1, 11, 10, 0 };
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(recv_ev(T_STOPPING).id, stop_order[i]);
    ck_assert(!hive_is_alive(a));
    ck_assert_uint_eq(hive_whereis("MySupervisor"), HIVE_NOPID);
    ck_assert_uint_eq(my_queue_len(), 0);
}
START_TEST(nested_trees_restart_locally_and_stop_in_reverse_order) { run_hive(2, t_nested, NULL); }
END_TEST

/* The runtime's stop: the main process returns with a tree running; each
 * supervisor shuts its children down and hive_main returns. */
static void t_main_returns(void *arg)
{
    (void)arg;
    g_obs = hive_self();
    static struct subsup sa;
    for (int i = 0; i < 2; i++) {
        sa.w[i] = (struct wcfg){ .id = i };
        snprintf(sa.ids[i], 8, "w%d", i);
        sa.specs[i] = wspec(sa.ids[i], &sa.w[i], 0);
    }
    hive_child_spec root[1] = { { .id = "A", .start = start_subsup, .arg = &sa, .type = HIVE_SUPERVISOR } };
    hive_pid top;
    ck_assert_int_eq(hive_sup_start(root, 1, NULL, &top), 0);
    recv_ev(T_STARTED);
    recv_ev(T_STARTED);
}
START_TEST(hive_main_returns_with_a_tree_running)
{
    hive_config cfg;
    hive_config_default(&cfg);
    cfg.schedulers = 2;
    cfg.pin = false;
    cfg.shutdown_ms = 60000; /* a supervisor left waiting would hang the test */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    run_hive_cfg(&cfg, t_main_returns, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 30);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Named children                                                      */
/* ------------------------------------------------------------------ */

static atomic_int g_eexist;

static int named_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    *state = arg;
    report(T_STARTED, 0, 0);
    return 0;
}

static void named_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)state;
    hive_reply(from, req->tag, req->data, req->len);
}

static const hive_gen_server named_gs = { .init = named_init, .handle_call = named_call };

static int start_named(void *arg, hive_pid *out)
{
    int rc = hive_gs_start(&named_gs, arg, &(hive_gs_opts){ .name = "SupMinimalGs", .flags = HIVE_LINK },
                           out);
    if (rc == -EEXIST)
        atomic_fetch_add(&g_eexist, 1);
    return rc;
}

static void t_named(void *arg)
{
    int rounds = (int)(intptr_t)arg;
    g_obs = hive_self();
    hive_child_spec spec = { .id = "SupMinimalGs", .start = start_named };
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.intensity = rounds + 1;
    o.period_ms = 1000000;
    o.name = "TestSupervisor";
    hive_pid sup;
    ck_assert_int_eq(hive_sup_start(&spec, 1, &o, &sup), 0);
    recv_ev(T_STARTED);
    hive_pid prev = HIVE_NOPID;
    for (int i = 0; i < rounds; i++) {
        hive_pid p = hive_whereis("SupMinimalGs");
        ck_assert_uint_ne(p, HIVE_NOPID);
        ck_assert_uint_ne(p, prev);
        hive_msg *m;
        int x = i;
        ck_assert_int_eq(hive_call_name("SupMinimalGs", 1, &x, sizeof x, &m, 5000), 0);
        ck_assert_int_eq(*(int *)m->data, i);
        hive_msg_free(m);
        /* alternate the seed's GenServer.stop(pid, :shutdown) with a kill */
        if (i & 1) {
            ck_assert_int_eq(hive_gs_stop(p, HIVE_SHUTDOWN, 5000), 0);
        } else {
            hive_ref r;
            hive_monitor(p, &r);
            hive_kill(p, HIVE_KILL);
            ck_assert_int_eq(wait_down(r), HIVE_KILLED);
        }
        recv_ev(T_STARTED); /* the restarted one registered its name */
        prev = p;
    }
    ck_assert_int_eq(atomic_load(&g_eexist), 0);
    hive_child_info info;
    ck_assert_int_eq(hive_sup_which_children(sup, &info, 1), 1);
    ck_assert_uint_eq(info.pid, hive_whereis("SupMinimalGs"));
    ck_assert_int_eq(stop_sup(sup), HIVE_SHUTDOWN);
    ck_assert_uint_eq(hive_whereis("SupMinimalGs"), HIVE_NOPID);
}
START_TEST(a_named_child_reregisters_its_name_on_every_restart)
{
    run_hive(2, t_named, (void *)(intptr_t)10000);
}
END_TEST

/* A supervisor killed outright: its children die with it (links). */
static void t_killed(void *arg)
{
    (void)arg;
    g_obs = hive_self();
    struct wcfg c[2] = { { .id = 0 }, { .id = 1, .trap = true } };
    hive_child_spec specs[2] = { wspec("a", &c[0], 0), wspec("b", &c[1], 0) };
    for (int round = 0; round < 20; round++) {
        hive_pid sup;
        ck_assert_int_eq(hive_sup_start(specs, 2, NULL, &sup), 0);
        hive_pid p0 = recv_ev(T_STARTED).pid, p1 = recv_ev(T_STARTED).pid;
        hive_ref r0, r1;
        hive_monitor(p0, &r0);
        hive_monitor(p1, &r1);
        hive_kill(sup, HIVE_KILL);
        ck_assert_int_eq(wait_down(r0), HIVE_KILLED);
        /* the trapping one gets the EXIT and stops with its reason */
        ck_assert_int_eq(wait_down(r1), HIVE_KILLED);
        ck_assert_int_eq(recv_ev(T_STOPPING).reason, HIVE_KILLED);
    }
}
START_TEST(a_killed_supervisor_takes_its_children_with_it) { run_hive(2, t_killed, NULL); }
END_TEST

/* seeds/003's application tree: MySupervisor (one_for_one) over a
 * DynamicSupervisor DynSup and a Task.Supervisor MyTaskSupervisor, both
 * found by name: a dynamic child under DynSup is restarted there, a nolink
 * task under MyTaskSupervisor runs and is awaited, count_children and
 * which_children describe the tree, and stopping the root stops it all. */
static int start_dynsup(void *arg, hive_pid *out)
{
    (void)arg;
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.name = "DynSup";
    o.flags = HIVE_LINK;
    return hive_dynsup_start(&o, out);
}

static int start_tasksup(void *arg, hive_pid *out)
{
    (void)arg;
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.name = "MyTaskSupervisor";
    o.flags = HIVE_LINK;
    return hive_task_sup_start(&o, out);
}

static void *email(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

static void t_app_tree(void *arg)
{
    (void)arg;
    g_obs = hive_self();
    hive_child_spec tree[2] = {
        { .id = "DynSup", .start = start_dynsup, .type = HIVE_SUPERVISOR },
        { .id = "MyTaskSupervisor", .start = start_tasksup, .type = HIVE_SUPERVISOR },
    };
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.name = "MySupervisor";
    hive_pid top;
    ck_assert_int_eq(hive_sup_start(tree, 2, &o, &top), 0);
    ck_assert_uint_eq(hive_whereis("MySupervisor"), top);
    hive_pid dynsup = hive_whereis("DynSup"), tsup = hive_whereis("MyTaskSupervisor");
    ck_assert_uint_ne(dynsup, HIVE_NOPID);
    ck_assert_uint_ne(tsup, HIVE_NOPID);
    ck_assert_uint_eq(child_pid(top, "DynSup"), dynsup);
    ck_assert_uint_eq(child_pid(top, "MyTaskSupervisor"), tsup);
    hive_child_counts k;
    ck_assert_int_eq(hive_sup_count_children(top, &k), 0);
    ck_assert_uint_eq(k.specs, 2);
    ck_assert_uint_eq(k.active, 2);
    ck_assert_uint_eq(k.supervisors, 2);
    ck_assert_uint_eq(k.workers, 0);
    /* DynSupGs under DynSup: stopped with :shutdown, a permanent child is back */
    struct wcfg w = { .id = 7, .trap = true };
    hive_child_spec ws = wspec(NULL, &w, HIVE_PERMANENT);
    hive_pid child;
    ck_assert_int_eq(hive_dynsup_start_child(dynsup, &ws, &child), 0);
    ck_assert_uint_eq(recv_ev(T_STARTED).pid, child);
    crash_wait(child, HIVE_SHUTDOWN);
    hive_pid again = recv_ev(T_STARTED).pid;
    ck_assert_uint_ne(again, child);
    ck_assert_int_eq(hive_sup_which_children(dynsup, NULL, 0), 1);
    /* a task under MyTaskSupervisor, looked up by name */
    hive_task t;
    ck_assert_int_eq(hive_task_sup_async_nolink(hive_whereis("MyTaskSupervisor"), email,
                                                (void *)(intptr_t)41, &t), 0);
    void *r;
    ck_assert_int_eq(hive_task_await(&t, 5000, &r), 0);
    ck_assert_int_eq((intptr_t)r, 42);
    ck_assert_uint_eq(my_queue_len(), 0);
    /* neither supervisor was restarted */
    ck_assert_uint_eq(child_pid(top, "DynSup"), dynsup);
    ck_assert_uint_eq(child_pid(top, "MyTaskSupervisor"), tsup);
    hive_ref rd, rt;
    ck_assert_int_eq(hive_monitor(dynsup, &rd), 0);
    ck_assert_int_eq(hive_monitor(tsup, &rt), 0);
    ck_assert_int_eq(stop_sup(top), HIVE_SHUTDOWN);
    ck_assert_int_eq(recv_ev(T_STOPPING).reason, HIVE_SHUTDOWN); /* the dynamic child */
    ck_assert_int_eq(wait_down(rt), HIVE_SHUTDOWN);               /* reverse order */
    ck_assert_int_eq(wait_down(rd), HIVE_SHUTDOWN);
    ck_assert_uint_eq(hive_whereis("DynSup"), HIVE_NOPID);
    ck_assert_uint_eq(hive_whereis("MyTaskSupervisor"), HIVE_NOPID);
    ck_assert_uint_eq(my_queue_len(), 0);
}
START_TEST(the_seeds_application_tree_holds_a_dynamic_and_a_task_supervisor_by_name)
{
    run_hive(2, t_app_tree, NULL);
}
END_TEST

Suite *supervisor_suite(void)
{
    Suite *s = suite_create("supervisor");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, children_start_in_order_and_are_listed_in_start_order);
    tcase_add_test(tc, a_failed_start_stops_the_started_children_in_reverse_and_returns_the_error);
    tcase_add_test(tc, every_strategy_with_every_restart_type_restarts_and_stops_the_right_children);
    tcase_add_test(tc, more_restarts_than_intensity_within_period_stop_the_supervisor);
    tcase_add_test(tc, shutdown_waits_its_time_out_then_kills_and_brutal_kill_kills_at_once);
    tcase_add_test(tc, the_child_api_and_every_error_it_returns);
    tcase_add_test(tc, dynamic_supervisor_limits_restarts_and_terminates_by_pid);
    tcase_add_test(tc, nested_trees_restart_locally_and_stop_in_reverse_order);
    tcase_add_test(tc, hive_main_returns_with_a_tree_running);
    tcase_add_test(tc, a_named_child_reregisters_its_name_on_every_restart);
    tcase_add_test(tc, a_killed_supervisor_takes_its_children_with_it);
    tcase_add_test(tc, the_seeds_application_tree_holds_a_dynamic_and_a_task_supervisor_by_name);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(supervisor_suite)
