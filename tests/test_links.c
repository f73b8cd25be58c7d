/* Links, monitors, exit signals, trap_exit, kill, and the name registry. */
#include <stdatomic.h>
#include <stdio.h>

#include "harness.h"

enum { T_GO = 1, T_READY, T_X };

static void waits_forever(void *arg)
{
    (void)arg;
    hive_msg *m;
    for (;;)
        if (hive_receive(&m, HIVE_INFINITY) == 0)
            hive_msg_free(m);
}

static void exits_with(void *arg)
{
    hive_msg *m;
    hive_receive(&m, HIVE_INFINITY); /* wait for the go */
    hive_msg_free(m);
    hive_exit((hive_reason)(intptr_t)arg);
}

static hive_msg *recv_exit(void)
{
    return recv_tag(HIVE_TAG_EXIT, 5000);
}

/* A linked child exits with `reason`; report what the trapping parent sees. */
static void t_link_trap(void *arg)
{
    (void)arg;
    ck_assert(!hive_trap_exits(true));
    ck_assert(hive_trap_exits(true));
    hive_reason reasons[] = { HIVE_NORMAL, 5, HIVE_SHUTDOWN, HIVE_KILL };
    hive_reason expect[] = { HIVE_NORMAL, 5, HIVE_SHUTDOWN, HIVE_KILLED };
    for (int i = 0; i < 4; i++) {
        hive_pid c;
        hive_spawn_opts o = { .flags = HIVE_LINK };
        ck_assert_int_eq(hive_spawn_opt(exits_with, (void *)(intptr_t)reasons[i], &o, &c), 0);
        hive_send(c, T_GO, NULL, 0);
        hive_msg *m = recv_exit();
        hive_exit_signal *es = m->data;
        ck_assert_uint_eq(es->from, c);
        ck_assert_uint_eq(m->from, c);
        ck_assert_int_eq(es->reason, expect[i]);
        hive_msg_free(m);
    }
}
START_TEST(trapping_process_gets_exit_message_for_every_link_exit) { run_hive(2, t_link_trap, NULL); }
END_TEST

struct chain {
    hive_reason child_reason;
};

static void middle(void *arg)
{
    /* linked to a child that exits with the given reason; not trapping */
    hive_pid c;
    hive_spawn_opts o = { .flags = HIVE_LINK };
    hive_spawn_opt(exits_with, arg, &o, &c);
    hive_send(c, T_GO, NULL, 0);
    hive_msg *m;
    hive_receive(&m, 200); /* normal exit of the child: still alive here */
    hive_exit(42);
}

static void t_link_kills(void *arg)
{
    (void)arg;
    /* non-normal reason kills the non-trapping linked middle with that reason */
    hive_ref r;
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r };
    hive_spawn_opt(middle, (void *)(intptr_t)9, &o, NULL);
    ck_assert_int_eq(wait_down(r), 9);
    /* normal does not kill: middle lives on and exits with its own 42 */
    hive_spawn_opt(middle, (void *)(intptr_t)HIVE_NORMAL, &o, NULL);
    ck_assert_int_eq(wait_down(r), 42);
}
START_TEST(linked_exit_kills_unless_normal) { run_hive(2, t_link_kills, NULL); }
END_TEST

static void traps_and_reports(void *arg)
{
    hive_pid parent = *(hive_pid *)arg;
    hive_trap_exits(true);
    hive_send(parent, T_READY, NULL, 0);
    hive_msg *m;
    for (;;) {
        if (hive_receive(&m, HIVE_INFINITY))
            return;
        if (m->tag == HIVE_TAG_EXIT)
            hive_send(parent, T_X, m->data, sizeof(hive_exit_signal));
        hive_msg_free(m);
    }
}

static void t_kill(void *arg)
{
    (void)arg;
    hive_pid me = hive_self(), c;
    hive_ref r;
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r };
    hive_spawn_opt(traps_and_reports, &me, &o, &c);
    hive_msg_free(recv_tag(T_READY, 5000));
    /* trappable kills become messages, from = the killer */
    ck_assert_int_eq(hive_kill(c, 77), 0);
    hive_msg *m = recv_tag(T_X, 5000);
    ck_assert_uint_eq(((hive_exit_signal *)m->data)->from, me);
    ck_assert_int_eq(((hive_exit_signal *)m->data)->reason, 77);
    hive_msg_free(m);
    ck_assert_int_eq(hive_kill(c, HIVE_NORMAL), 0);
    m = recv_tag(T_X, 5000);
    ck_assert_int_eq(((hive_exit_signal *)m->data)->reason, HIVE_NORMAL);
    hive_msg_free(m);
    /* HIVE_KILL cannot be trapped, and arrives as killed */
    ck_assert_int_eq(hive_kill(c, HIVE_KILL), 0);
    ck_assert_int_eq(wait_down(r), HIVE_KILLED);

    /* normal kill of a non-trapping process is ignored */
    hive_spawn_opt(waits_forever, NULL, &o, &c);
    ck_assert_int_eq(hive_kill(c, HIVE_NORMAL), 0);
    hive_send(c, T_GO, NULL, 0);
    ck_assert(hive_is_alive(c));
    ck_assert_int_eq(hive_kill(c, 3), 0);
    ck_assert_int_eq(wait_down(r), 3);
}
START_TEST(kill_rules_trappable_untrappable_and_normal) { run_hive(2, t_kill, NULL); }
END_TEST

static void t_unlink(void *arg)
{
    (void)arg;
    hive_pid c;
    hive_ref r;
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r };
    hive_spawn_opt(exits_with, (void *)(intptr_t)13, &o, &c);
    ck_assert_int_eq(hive_link(c), 0);
    ck_assert_int_eq(hive_link(c), 0);      /* idempotent */
    ck_assert_int_eq(hive_link(hive_self()), 0); /* self: no-op */
    ck_assert_int_eq(hive_unlink(c), 0);
    hive_send(c, T_GO, NULL, 0);
    ck_assert_int_eq(wait_down(r), 13);    /* and we are still alive */
    ck_assert_int_eq(hive_unlink(c), 0);   /* unlinking a dead pid is fine */
}
START_TEST(unlink_stops_exit_signals) { run_hive(2, t_unlink, NULL); }
END_TEST

static void t_monitors(void *arg)
{
    (void)arg;
    hive_pid c;
    hive_spawn(exits_with, (void *)(intptr_t)8, &c);
    hive_ref a, b, d;
    ck_assert_int_eq(hive_monitor(c, &a), 0);
    ck_assert_int_eq(hive_monitor(c, &b), 0);
    ck_assert_int_eq(hive_monitor(c, &d), 0);
    ck_assert(!hive_ref_eq(a, b));
    ck_assert_int_eq(hive_demonitor(d, 0), 0);
    hive_send(c, T_GO, NULL, 0);
    /* two DOWNs, each with its own ref; none for the removed monitor */
    hive_msg *m = recv_tag(HIVE_TAG_DOWN, 5000);
    hive_down *dn = m->data;
    ck_assert(hive_ref_eq(m->ref, dn->ref));
    ck_assert(hive_ref_eq(dn->ref, a) || hive_ref_eq(dn->ref, b));
    ck_assert_uint_eq(dn->pid, c);
    ck_assert_int_eq(dn->reason, 8);
    hive_msg_free(m);
    m = recv_tag(HIVE_TAG_DOWN, 5000);
    hive_msg_free(m);
    ck_assert_int_eq(hive_receive(&m, 20), -ETIMEDOUT);
}
START_TEST(many_monitors_per_pair_each_with_its_own_ref) { run_hive(2, t_monitors, NULL); }
END_TEST

static void t_flush(void *arg)
{
    (void)arg;
    hive_pid c;
    hive_ref r;
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r };
    hive_spawn_opt(exits_with, (void *)(intptr_t)1, &o, &c);
    hive_ref r2;
    hive_monitor(c, &r2);
    hive_send(c, T_GO, NULL, 0);
    ck_assert_int_eq(wait_down(r), 1); /* so r2's DOWN is already queued */
    ck_assert_int_eq(hive_demonitor(r2, HIVE_FLUSH), 0);
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 20), -ETIMEDOUT);
    ck_assert_int_eq(hive_demonitor(r2, 0x80), -EINVAL);
}
START_TEST(demonitor_flush_removes_a_queued_down) { run_hive(2, t_flush, NULL); }
END_TEST

/* Races: link / monitor while the target exits on another scheduler. Each
 * must produce exactly one EXIT / DOWN (or -ESRCH / noproc), never two,
 * never none. */
static void short_lived(void *arg)
{
    (void)arg;
    for (int i = 0; i < (int)((uintptr_t)arg % 5); i++)
        hive_yield();
    hive_exit(21);
}

static void t_races(void *arg)
{
    (void)arg;
    hive_trap_exits(true);
    for (uintptr_t i = 0; i < 3000; i++) {
        hive_pid c;
        hive_spawn(short_lived, (void *)i, &c);
        hive_ref r;
        ck_assert_int_eq(hive_monitor(c, &r), 0);
        int lrc = hive_link(c);
        ck_assert(lrc == 0 || lrc == -ESRCH);
        hive_reason dr = wait_down(r);
        ck_assert(dr == 21 || dr == HIVE_NOPROC);
        if (lrc == 0) {
            hive_msg *m = recv_exit();
            ck_assert_uint_eq(((hive_exit_signal *)m->data)->from, c);
            ck_assert_int_eq(((hive_exit_signal *)m->data)->reason, 21);
            hive_msg_free(m);
        }
    }
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 10), -ETIMEDOUT); /* nothing doubled */
}
START_TEST(link_and_monitor_race_exit_exactly_once) { run_hive(4, t_races, NULL); }
END_TEST

/* Records come off the target's list from anywhere in it (head, middle,
 * tail): the monitors left still fire, the removed ones never do. */
static void t_demonitor_any_order(void *arg)
{
    (void)arg;
    enum { N = 300 };
    hive_pid c;
    hive_spawn(exits_with, (void *)(intptr_t)9, &c);
    static hive_ref refs[N];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(hive_monitor(c, &refs[i]), 0);
    /* every other one, in an order that is neither push nor pop order */
    for (int k = 0; k < N; k += 2)
        ck_assert_int_eq(hive_demonitor(refs[(k * 7) % N & ~1], 0), 0);
    hive_send(c, T_GO, NULL, 0);
    for (int i = 0; i < N / 2; i++) {
        hive_msg *m = recv_tag(HIVE_TAG_DOWN, 5000);
        int at = -1;
        for (int j = 0; j < N; j++)
            if (hive_ref_eq(m->ref, refs[j]))
                at = j;
        ck_assert_int_ge(at, 0);
        ck_assert_int_eq(at & 1, 1);
        ck_assert_int_eq(((hive_down *)m->data)->reason, 9);
        hive_msg_free(m);
    }
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 20), -ETIMEDOUT);
}
START_TEST(demonitor_removes_any_record_and_keeps_the_rest) { run_hive(2, t_demonitor_any_order, NULL); }
END_TEST

/* demonitor(FLUSH) while the target exits on another scheduler: after it
 * returns there is no DOWN for that monitor, now or later. */
static void t_demonitor_race(void *arg)
{
    (void)arg;
    for (uintptr_t i = 0; i < 3000; i++) {
        hive_pid c;
        hive_spawn(short_lived, (void *)i, &c);
        hive_ref r, keep;
        ck_assert_int_eq(hive_monitor(c, &r), 0);
        ck_assert_int_eq(hive_monitor(c, &keep), 0);
        for (uintptr_t k = 0; k < i % 3; k++)
            hive_yield();
        ck_assert_int_eq(hive_demonitor(r, HIVE_FLUSH), 0);
        hive_reason dr = wait_down(keep);
        ck_assert(dr == 21 || dr == HIVE_NOPROC);
    }
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 10), -ETIMEDOUT);
}
START_TEST(demonitor_flush_races_exit_and_leaves_no_down) { run_hive(4, t_demonitor_race, NULL); }
END_TEST


/* ---- registry ---- */

static void t_registry(void *arg)
{
    (void)arg;
    hive_pid me = hive_self(), c;
    ck_assert_int_eq(hive_register("main", me), 0);
    ck_assert_uint_eq(hive_whereis("main"), me);
    ck_assert_int_eq(hive_register("main", me), -EEXIST);
    hive_spawn(waits_forever, NULL, &c);
    ck_assert_int_eq(hive_register("main", c), -EEXIST);
    ck_assert_int_eq(hive_register("other", me), -EINVAL); /* one name per process */
    ck_assert_int_eq(hive_register(NULL, me), -EINVAL);
    ck_assert_int_eq(hive_register("", me), -EINVAL);
    ck_assert_int_eq(hive_register("x", HIVE_NOPID), -EINVAL);
    char longname[100];
    memset(longname, 'a', 99);
    longname[99] = 0;
    ck_assert_int_eq(hive_register(longname, me), -EINVAL);
    ck_assert_uint_eq(hive_whereis(NULL), HIVE_NOPID);
    ck_assert_uint_eq(hive_whereis("nobody"), HIVE_NOPID);
    ck_assert_int_eq(hive_unregister("nobody"), -ESRCH);
    ck_assert_int_eq(hive_unregister("main"), 0);
    ck_assert_uint_eq(hive_whereis("main"), HIVE_NOPID);
    ck_assert_int_eq(hive_register("main", c), 0);
    ck_assert_uint_eq(hive_whereis("main"), c);
    /* released at exit, before monitors fire */
    hive_ref r;
    hive_monitor(c, &r);
    hive_kill(c, 5);
    wait_down(r);
    ck_assert_uint_eq(hive_whereis("main"), HIVE_NOPID);
    ck_assert_int_eq(hive_register("main", me), 0);
    /* a dead pid cannot be registered */
    ck_assert_int_eq(hive_register("dead", c), -ESRCH);
}
START_TEST(registry_register_whereis_unregister_release) { run_hive(2, t_registry, NULL); }
END_TEST

static _Atomic int reg_ok;

static void reg_worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg;
    char name[32];
    hive_pid me = hive_self();
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "n%u", (unsigned)(i % 7));
        if (hive_register(name, me) == 0) {
            ck_assert_uint_eq(hive_whereis(name), me);
            ck_assert_int_eq(hive_unregister(name), 0);
            atomic_fetch_add(&reg_ok, 1);
        }
        hive_pid w = hive_whereis(name);
        ck_assert(w == HIVE_NOPID || (w & 0xFF) == 0xA5);
        if (i % 50 == (int)(id % 50))
            hive_yield();
    }
}

static void t_registry_race(void *arg)
{
    (void)arg;
    atomic_store(&reg_ok, 0);
    hive_ref refs[16];
    for (uintptr_t i = 0; i < 16; i++) {
        hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &refs[i] };
        hive_spawn_opt(reg_worker, (void *)i, &o, NULL);
    }
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(wait_down(refs[i]), HIVE_NORMAL);
    ck_assert_int_gt(atomic_load(&reg_ok), 0);
    for (int i = 0; i < 7; i++) {
        char name[32];
        snprintf(name, sizeof name, "n%d", i);
        ck_assert_uint_eq(hive_whereis(name), HIVE_NOPID);
    }
}
START_TEST(registry_is_safe_under_concurrent_use) { run_hive(4, t_registry_race, NULL); }
END_TEST

/* Lookups and calls by name on every scheduler while servers register
 * names for the first time (fresh registry entries), stop and start again
 * under the same names. Under ThreadSanitizer this caught a relaxed
 * publication of a freshly allocated entry in the lookup chain. */
enum { NAMED = 400, READERS = 3, T_ECHO = 7, T_DONE = 8 };
static _Atomic int named_upto;     /* names 0 .. named_upto-1 have been used */
static _Atomic long calls_ok;

static void echo_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)state;
    hive_reply(from, T_ECHO, req->data, req->len);
}
static const hive_gen_server ECHO = { .handle_call = echo_call };

static void name_reader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    char name[HIVE_NAME_MAX + 1];
    for (;;) {
        hive_msg *m;
        if (hive_receive(&m, 0) == 0) { /* T_DONE */
            hive_msg_free(m);
            return;
        }
        int upto = atomic_load_explicit(&named_upto, memory_order_relaxed);
        seed = seed * 1103515245u + 12345u;
        /* half the time the newest name, whose server is most likely up */
        int i = upto == 0 ? 0 : (seed >> 16) & 1 ? upto - 1 : (int)(seed % (unsigned)upto);
        snprintf(name, sizeof name, "srv-%d", i);
        hive_pid w = hive_whereis(name);
        ck_assert(w == HIVE_NOPID || (w & 0xFF) == 0xA5);
        hive_msg *reply;
        int rc = hive_call_name(name, T_ECHO, &i, sizeof i, &reply, 1000);
        if (rc == 0) {
            ck_assert_int_eq(*(int *)reply->data, i);
            hive_msg_free(reply);
            atomic_fetch_add(&calls_ok, 1);
        } else {
            /* the name was free, or its server stopped during the call */
            ck_assert_msg(rc == -ESRCH || rc == -ECONNRESET, "call by name: %s",
                          hive_strerror(rc));
        }
    }
}

static void t_registry_first_use_race(void *arg)
{
    (void)arg;
    atomic_store(&named_upto, 0);
    atomic_store(&calls_ok, 0);
    hive_pid readers[READERS];
    hive_ref refs[READERS];
    for (uintptr_t i = 0; i < READERS; i++) {
        hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &refs[i] };
        ck_assert_int_eq(hive_spawn_opt(name_reader, (void *)i, &o, &readers[i]), 0);
    }
    char name[HIVE_NAME_MAX + 1];
    static hive_pid srv[NAMED];
    /* Round 0: every name registered for the first time and kept, so the
     * registry allocates fresh entry blocks while the readers look;
     * round 1: stopped and started again under the same names. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < NAMED; i++) {
            snprintf(name, sizeof name, "srv-%d", i);
            hive_gs_opts go = { .name = name };
            ck_assert_int_eq(hive_gs_start(&ECHO, NULL, &go, &srv[i]), 0);
            /* relaxed: the readers must not synchronise with this process
             * through it, or it would hide a missing release in the registry */
            atomic_store_explicit(&named_upto, i + 1, memory_order_relaxed);
            if (i % 8 == 0)
                hive_yield();
        }
        /* Every name is up: the readers' calls by name must get answers
         * before the servers go (waiting on the count, not on time). */
        while (atomic_load(&calls_ok) == 0)
            hive_yield();
        for (int i = 0; i < NAMED; i++)
            ck_assert_int_eq(hive_gs_stop(srv[i], HIVE_NORMAL, 5000), 0);
    }
    for (int i = 0; i < READERS; i++)
        hive_send(readers[i], T_DONE, NULL, 0);
    for (int i = 0; i < READERS; i++)
        ck_assert_int_eq(wait_down(refs[i]), HIVE_NORMAL);
    for (int i = 0; i < NAMED; i++) {
        snprintf(name, sizeof name, "srv-%d", i);
        ck_assert_uint_eq(hive_whereis(name), HIVE_NOPID);
    }
    ck_assert_int_gt(atomic_load(&calls_ok), 0);
    printf("registry first-use race: %ld calls by name answered\n", atomic_load(&calls_ok));
}
START_TEST(lookups_and_calls_by_name_race_first_registrations) { run_hive(4, t_registry_first_use_race, NULL); }
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("links");
    TCase *tc = tcase_create("links_monitors_registry");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, trapping_process_gets_exit_message_for_every_link_exit);
    tcase_add_test(tc, linked_exit_kills_unless_normal);
    tcase_add_test(tc, kill_rules_trappable_untrappable_and_normal);
    tcase_add_test(tc, unlink_stops_exit_signals);
    tcase_add_test(tc, many_monitors_per_pair_each_with_its_own_ref);
    tcase_add_test(tc, demonitor_flush_removes_a_queued_down);
    tcase_add_test(tc, link_and_monitor_race_exit_exactly_once);
    tcase_add_test(tc, demonitor_removes_any_record_and_keeps_the_rest);
    tcase_add_test(tc, demonitor_flush_races_exit_and_leaves_no_down);
    tcase_add_test(tc, registry_register_whereis_unregister_release);
    tcase_add_test(tc, registry_is_safe_under_concurrent_use);
    tcase_add_test(tc, lookups_and_calls_by_name_race_first_registrations);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
