/* Handler processes: one call per message on a pooled stack, no stack
 * while idle, the stack kept only while the handler blocks. The handler
 * borrows each message: the runtime frees it after the handler returns,
 * or when the process exits inside the handler. */
#include <stdatomic.h>

#include "harness.h"
#include "alloc/stack.h"
#include "runtime/proc/proc.h"

enum { T_PING = 1, T_PONG, T_BLOCK, T_WAKE, T_EXIT, T_HOLD };

struct hstate {
    int handled;
    bool started;
};

static void h_start(void *ctx)
{
    ((struct hstate *)ctx)->started = true;
}

static void h_handle(void *ctx, hive_msg *m)
{
    struct hstate *st = ctx;
    st->handled++;
    if (m->tag == T_PING) {
        int v = st->handled;
        hive_send(m->from, T_PONG, &v, sizeof v);
    } else if (m->tag == T_BLOCK) {
        /* blocks inside the handler: keeps its stack until woken */
        hive_pid from = m->from;
        hive_msg *w = recv_tag(T_WAKE, 5000);
        hive_msg_free(w);
        hive_send(from, T_PONG, &st->handled, sizeof st->handled);
    } else if (m->tag == T_EXIT) {
        hive_exit(*(hive_reason *)m->data); /* the message it holds is freed */
    } else if (m->tag == T_HOLD) {
        /* says so, then blocks holding the message until killed */
        hive_send(m->from, T_PONG, NULL, 0);
        hive_msg *w = recv_tag(T_WAKE, HIVE_INFINITY);
        hive_msg_free(w);
    }
}

#define NH 5000
static struct hstate states[NH];
static hive_pid pids[NH];

static void wait_stacks_at_most(long n)
{
    for (int i = 0; i < 100000 && stack_in_use() > n; i++)
        hive_yield();
    ck_assert_int_le(stack_in_use(), n);
}

static void t_idle(void *arg)
{
    (void)arg;
    memset(states, 0, sizeof states);
    long base = stack_in_use(); /* the main process's own */
    for (int i = 0; i < NH; i++)
        ck_assert_int_eq(proc_spawn(h_start, h_handle, &states[i], NULL, &pids[i]), 0);
    for (int round = 1; round <= 2; round++) {
        for (int i = 0; i < NH; i++)
            hive_send(pids[i], T_PING, NULL, 0);
        for (int i = 0; i < NH; i++) {
            hive_msg *m = recv_tag(T_PONG, 5000);
            ck_assert_int_eq(*(int *)m->data, round);
            hive_msg_free(m);
        }
        /* all idle again: none of them holds a stack, but the last to go
         * idle on each of the 2 schedulers, which keeps it lent */
        wait_stacks_at_most(base + 2);
    }
    for (int i = 0; i < NH; i++)
        ck_assert(states[i].started);

    /* A handler that blocks keeps its stack until it returns (it goes on
     * from where it blocked, below); the kept ones may be taken back. */
    hive_send(pids[0], T_BLOCK, NULL, 0);
    for (int i = 0; i < 1000 && stack_in_use() < base + 1; i++)
        hive_yield();
    ck_assert_int_ge(stack_in_use(), base + 1);
    ck_assert_int_le(stack_in_use(), base + 3);
    hive_send(pids[0], T_PING, NULL, 0);   /* queued behind the blocked handler */
    hive_send(pids[0], T_WAKE, NULL, 0);
    hive_msg *m = recv_tag(T_PONG, 5000);
    ck_assert_int_eq(*(int *)m->data, 3);   /* the block's reply */
    hive_msg_free(m);
    m = recv_tag(T_PONG, 5000);
    ck_assert_int_eq(*(int *)m->data, 4);   /* then the ping, in order */
    hive_msg_free(m);
    wait_stacks_at_most(base + 2);
    for (int i = 0; i < NH; i++)
        hive_kill(pids[i], HIVE_KILL);
}
START_TEST(idle_handler_processes_hold_no_stack) { run_hive(2, t_idle, NULL); }
END_TEST

/* A handler that exits, or is killed while it blocks inside the handler,
 * leaves no message behind (the leak checker of the ASan build sees the
 * slots that stay free). */
static void t_exit_inside(void *arg)
{
    (void)arg;
    static struct hstate st[2];
    memset(st, 0, sizeof st);
    hive_pid a, b;
    hive_ref ra, rb;
    ck_assert_int_eq(proc_spawn(h_start, h_handle, &st[0], NULL, &a), 0);
    ck_assert_int_eq(proc_spawn(h_start, h_handle, &st[1], NULL, &b), 0);
    hive_monitor(a, &ra);
    hive_monitor(b, &rb);
    hive_reason why = 17;
    hive_send(a, T_EXIT, &why, sizeof why);
    hive_msg *m = recv_tag(HIVE_TAG_DOWN, 5000);
    ck_assert(hive_ref_eq(m->ref, ra));
    ck_assert_int_eq(((hive_down *)m->data)->reason, 17);
    hive_msg_free(m);
    /* b blocks inside the handler, holding T_HOLD, and is killed there */
    hive_send(b, T_HOLD, NULL, 0);
    hive_msg_free(recv_tag(T_PONG, 5000));
    hive_kill(b, HIVE_KILL);
    m = recv_tag(HIVE_TAG_DOWN, 5000);
    ck_assert(hive_ref_eq(m->ref, rb));
    ck_assert_int_eq(((hive_down *)m->data)->reason, HIVE_KILLED);
    hive_msg_free(m);
}
START_TEST(handler_exit_inside_the_handler_frees_the_message) { run_hive(2, t_exit_inside, NULL); }
END_TEST

/* An idle handler killed with HIVE_KILL by a process dies in the kill
 * itself (it is dead when hive_kill returns: no stack is taken for it to
 * find the kill in its mailbox), and everything its death owes is done:
 * its watchers get DOWN killed, a trapping linked process gets EXIT
 * killed, its name is free, the messages sent after the kill are freed
 * (the leak checker of the ASan build), and the stack the last idle
 * handler kept lent comes back. */
static void linked_trapper(void *arg)
{
    hive_pid test = *(hive_pid *)arg;
    hive_trap_exits(true);
    hive_msg *m = recv_tag(T_PING, 5000);   /* the handler to link to */
    hive_pid h = *(hive_pid *)m->data;
    hive_msg_free(m);
    ck_assert_int_eq(hive_link(h), 0);
    hive_send(test, T_PONG, NULL, 0);
    m = recv_tag(HIVE_TAG_EXIT, 5000);
    ck_assert_uint_eq(m->from, h);
    ck_assert_int_eq(((hive_exit_signal *)m->data)->reason, HIVE_KILLED);
    hive_msg_free(m);
    hive_send(test, T_EXIT, NULL, 0);
}

static void t_kill_idle(void *arg)
{
    (void)arg;
    static struct hstate st[3];
    memset(st, 0, sizeof st);
    long base = stack_in_use();
    hive_pid h[3], me = hive_self(), trapper;
    hive_ref ref[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(proc_spawn(h_start, h_handle, &st[i], NULL, &h[i]), 0);
        ck_assert_int_eq(hive_monitor(h[i], &ref[i]), 0);
        hive_send(h[i], T_PING, NULL, 0);
        hive_msg_free(recv_tag(T_PONG, 5000));
    }
    ck_assert_int_eq(hive_register("idle_victim", h[0]), 0);
    ck_assert_int_eq(hive_spawn(linked_trapper, &me, &trapper), 0);
    hive_send(trapper, T_PING, &h[0], sizeof h[0]);
    hive_msg_free(recv_tag(T_PONG, 5000));
    /* all three idle (waiting, no stack of their own) */
    for (int i = 0; i < 3; i++) {
        struct hive_process_info pi;
        for (int k = 0; k < 100000; k++) {
            ck_assert_int_eq(hive_process_info(h[i], &pi), 0);
            if (pi.status == HIVE_STATUS_WAITING && pi.memory < 4096)
                break;
            hive_yield();
        }
        ck_assert_int_eq(pi.status, HIVE_STATUS_WAITING);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(hive_kill(h[i], HIVE_KILL), 0);
        ck_assert(!hive_is_alive(h[i]));
        /* sent to a dead pid: refused, nothing queued anywhere */
        ck_assert_int_eq(hive_send(h[i], T_PING, NULL, 0), -ESRCH);
        ck_assert_int_eq(wait_down(ref[i]), HIVE_KILLED);
    }
    ck_assert_uint_eq(hive_whereis("idle_victim"), HIVE_NOPID);
    hive_msg_free(recv_tag(T_EXIT, 5000));
    ck_assert_int_eq(hive_kill(h[0], HIVE_KILL), -ESRCH);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(st[i].handled, 1); /* the kill never reached a handler */
    wait_stacks_at_most(base + 1);          /* the trapper's, while it exits */
}
START_TEST(an_idle_handler_killed_dies_in_the_kill_and_its_links_and_monitors_are_told)
{
    run_hive(2, t_kill_idle, NULL);
}
END_TEST

/* A handler that goes idle gives its stack back and starts afresh at its
 * entry on the next message, usually on the same warm stack. Two handlers taking
 * turns restart 30,000 times each must leave nothing of the earlier lives behind on that
 * stack: under ThreadSanitizer each start used to pile the abandoned
 * frames of the last life onto the stack's fiber, whose shadow call stack
 * overflowed after some 10,000 restarts (a crash inside TSan, or calls
 * that never returned). */
#define RESTARTS 30000
static void t_restarts(void *arg)
{
    (void)arg;
    static struct hstate st[2];
    memset(st, 0, sizeof st);
    hive_pid h[2];
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(proc_spawn(h_start, h_handle, &st[k], NULL, &h[k]), 0);
    /* Taking turns: each one's going idle takes the lent stack back from
     * the other, which then starts afresh on the next message. */
    for (int i = 1; i <= RESTARTS; i++)
        for (int k = 0; k < 2; k++) {
            hive_send(h[k], T_PING, NULL, 0);
            hive_msg *m = recv_tag(T_PONG, 5000);
            ck_assert_int_eq(*(int *)m->data, i);
            hive_msg_free(m);
        }
    for (int k = 0; k < 2; k++)
        ck_assert_int_eq(hive_kill(h[k], HIVE_KILL), 0);
}
START_TEST(handlers_restarted_30000_times_on_warm_stacks_keep_running)
{
    run_hive(1, t_restarts, NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("handler");
    TCase *tc = tcase_create("stackless_idle");
    tcase_add_test(tc, idle_handler_processes_hold_no_stack);
    tcase_add_test(tc, handler_exit_inside_the_handler_frees_the_message);
    tcase_add_test(tc, an_idle_handler_killed_dies_in_the_kill_and_its_links_and_monitors_are_told);
    tcase_add_test(tc, handlers_restarted_30000_times_on_warm_stacks_keep_running);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
