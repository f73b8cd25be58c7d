/*
 * A gen_server from start to stop: the state init sets, the ways it stops
 * (each running terminate), continue and periodic work, linked servers
 * going down together, names. The scenarios are seeds/003's notes on
 * Task and GenServer.
 */
#include "gs_scenarios.h"

enum { Q_DOUBLE = Q_LOCAL, Q_TRIPLE, Q_TERMINATED, Q_REPEAT, Q_LINK, Q_MSG };

/* seeds/003, MinimalGs and FirstGs: the state is what init made it. */
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

static void body_state(void *arg)
{
    (void)arg;
    static const hive_gen_server minimal = { .init = minimal_init };
    hive_pid pid;
    ck_assert_int_eq(hive_gs_start(&minimal, (void *)(intptr_t)1, NULL, &pid), 0);
    ck_assert_int_eq(state_long(pid), 1);
    /* FirstGs: three instances on the fly */
    static const hive_gen_server first = { .init = arg_is_state_init, .handle_call = first_call };
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

START_TEST(init_sets_the_state_that_calls_and_get_state_see)
{
    run_hive(2, body_state, NULL);
}
END_TEST

/* seeds/003, Stop: GenServer.stop(pid, :code), {:stop, reason, state}, and
 * trap_exit in init so that terminate runs on the parent's EXIT. */
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

static void body_stop(void *arg)
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

START_TEST(stop_by_call_by_callback_and_by_a_trapped_parent_exit_run_terminate)
{
    run_hive(2, body_stop, NULL);
}
END_TEST

/* seeds/003, Periodic: init -> {:continue, :run} -> send_after(:repeat),
 * and again on every :repeat. */
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

static void body_periodic(void *arg)
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

START_TEST(periodic_server_continues_then_repeats_with_send_after)
{
    run_hive(2, body_periodic, NULL);
}
END_TEST

/* seeds/003, Parent and Child: Parent.link starts a Child with start_link
 * from its handle_call. */
static const hive_gen_server CHILD = { .init = arg_is_state_init,
                                       .terminate = stoppable_terminate };

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

static void body_linked(void *arg)
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

START_TEST(linked_parent_and_child_servers_stop_together)
{
    run_hive(2, body_linked, NULL);
}
END_TEST

/* seeds/003, CallByPid: start_link, send {:msg, pid}, call :ready returns
 * the pid. */
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

static void body_by_pid(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = arg_is_state_init, .handle_call = bypid_call,
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

START_TEST(call_by_pid_returns_the_pid_and_messages_reach_handle_info)
{
    run_hive(2, body_by_pid, NULL);
}
END_TEST

/* seeds/003, CallByAtom / CallByRegistry: names, started once. */
static void body_names(void *arg)
{
    (void)arg;
    static const hive_gen_server b = { .init = arg_is_state_init, .handle_call = foo_call };
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

START_TEST(named_servers_start_once_and_keep_their_state)
{
    run_hive(2, body_names, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("gs_lifecycle");
    TCase *tc = tcase_create("gs_lifecycle");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, init_sets_the_state_that_calls_and_get_state_see);
    tcase_add_test(tc, stop_by_call_by_callback_and_by_a_trapped_parent_exit_run_terminate);
    tcase_add_test(tc, periodic_server_continues_then_repeats_with_send_after);
    tcase_add_test(tc, linked_parent_and_child_servers_stop_together);
    tcase_add_test(tc, call_by_pid_returns_the_pid_and_messages_reach_handle_info);
    tcase_add_test(tc, named_servers_start_once_and_keep_their_state);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(make_suite)
