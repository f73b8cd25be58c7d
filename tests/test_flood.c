/*
 * Flooding senders (hive_config.flood_move, runtime/sched/switch.c): a
 * process whose slice ends at a send to a receiver flooded on another
 * scheduler moves to the receiver's scheduler, and there it is held where
 * no idle scheduler can take it. Nothing sent is lost or reordered by a
 * move, and processes killed in the middle of a flood leave the rest
 * intact.
 *
 * The placement is made, not hoped for: the receiver spins without a
 * reduction, holding its scheduler, until the sender has queued BACKLOG
 * messages, so the sender can only have run on the other scheduler (it is
 * stolen there after the steal grace), and the receiver's first slice
 * ends with most of the backlog still queued: its mailbox is marked
 * flooded on its own scheduler before the sender's next send.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>

#include "harness.h"
#include "runtime/sched/sched.h"

enum { T_DATA = 1, T_END, T_RECV_REPORT, T_SEND_REPORT, T_HALF };

#define BACKLOG 40000u
#define CAP     400000u /* the most a sender sends waiting for its move */
#define AFTER   32u     /* sends after the move, each checked for where it ran */

/* A slow receiver's work per message, so that a sender stolen back while
 * it drains (were it not held) would be found on the other scheduler. */
static void work_us(unsigned us)
{
    uint64_t t0 = test_now_ns();
    while (test_now_ns() - t0 < us * 1000ull)
        ;
}

/* One message for a receiver below: its tag, its payload copied to data
 * (size bytes, for T_DATA). */
static uint32_t take(void *data, size_t size)
{
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 30000), 0);
    uint32_t tag = m->tag;
    if (tag == T_DATA) {
        ck_assert_uint_eq(m->len, size);
        memcpy(data, m->data, size);
    }
    hive_msg_free(m);
    return tag;
}

static hive_pid g_main, g_recv;
static _Atomic unsigned g_sent;
static _Atomic int g_recv_sched = -1;

struct send_report {
    unsigned start_sched;   /* where the sender first ran */
    unsigned moved_at;      /* the send after which it ran elsewhere; 0: never */
    unsigned moved_to;      /* where it ran then */
    unsigned off_after;     /* of the AFTER sends that followed, those that ran
                               elsewhere than the receiver's scheduler */
    unsigned sent;
};

static void receiver(void *arg)
{
    unsigned work = (unsigned)(uintptr_t)arg;
    atomic_store(&g_recv_sched, (int)cur_sched->id);
    /* Hold this scheduler (no reduction) until the backlog is queued; 20 s
     * at most, after which the sender's report fails the test. */
    uint64_t t0 = test_now_ns();
    while (atomic_load(&g_sent) < BACKLOG && test_now_ns() - t0 < 20000000000ull)
        ;
    unsigned n = 0, next = 1;
    bool in_order = true;
    for (;;) {
        unsigned seq;
        if (take(&seq, sizeof seq) == T_END)
            break;
        in_order &= seq == next++;
        n++;
        if (work)
            work_us(work);
    }
    unsigned r[2] = { n, in_order };
    hive_send(g_main, T_RECV_REPORT, r, sizeof r);
}

static void sender(void *arg)
{
    (void)arg;
    struct send_report r = { .start_sched = cur_sched->id };
    unsigned i = 0;
    while (i < CAP) {
        ++i;
        hive_send(g_recv, T_DATA, &i, sizeof i);
        atomic_store(&g_sent, i);
        if (cur_sched->id != r.start_sched) {
            r.moved_at = i;
            r.moved_to = cur_sched->id;
            break;
        }
    }
    for (unsigned k = 0; k < AFTER && r.moved_at; k++) {
        ++i;
        hive_send(g_recv, T_DATA, &i, sizeof i);
        if ((int)cur_sched->id != atomic_load(&g_recv_sched))
            r.off_after++;
    }
    r.sent = i;
    hive_send(g_recv, T_END, NULL, 0);
    hive_send(g_main, T_SEND_REPORT, &r, sizeof r);
}

static uint64_t flood_moves(void)
{
    hive_sched_stats t;
    hive_stats(NULL, 0, &t);
    return t.flood_moves;
}

/* Runs one receiver and one sender; the two reports. */
static void flood_pair(unsigned work, struct send_report *sr, unsigned rr[2])
{
    g_main = hive_self();
    atomic_store(&g_sent, 0);
    ck_assert_int_eq(hive_spawn(receiver, (void *)(uintptr_t)work, &g_recv), 0);
    ck_assert_int_eq(hive_spawn(sender, NULL, NULL), 0);
    hive_msg *m = recv_tag(T_SEND_REPORT, 60000);
    memcpy(sr, m->data, sizeof *sr);
    hive_msg_free(m);
    m = recv_tag(T_RECV_REPORT, 60000);
    memcpy(rr, m->data, 2 * sizeof *rr);
    hive_msg_free(m);
    /* the receiver held its own scheduler until the backlog was queued */
    ck_assert_int_ne((int)sr->start_sched, atomic_load(&g_recv_sched));
    ck_assert_uint_eq(rr[0], sr->sent);
    ck_assert_msg(rr[1], "messages arrived out of order");
}

static void t_moves(void *arg)
{
    (void)arg;
    uint64_t before = flood_moves();
    struct send_report r;
    unsigned rr[2];
    flood_pair(2, &r, rr);
    ck_assert_msg(r.moved_at > BACKLOG, "the sender never moved (sent %u)", r.sent);
    ck_assert_int_eq((int)r.moved_to, atomic_load(&g_recv_sched));
    ck_assert_uint_eq(r.off_after, 0);
    ck_assert_uint_ge(flood_moves() - before, 1);
}

START_TEST(a_sender_flooding_a_receiver_on_another_scheduler_moves_there_and_stays)
{
    hive_config cfg = test_config(2);
    ck_assert(cfg.flood_move);
    /* Slices of 100: the held sender's turns (every 61st pick) come while
     * the receiver still has most of the backlog, so the AFTER sends end
     * slices at a flooded receiver (two of them) and are held each time;
     * were they queued instead, the idle scheduler would take the sender
     * during the receiver's next slice: it spins (spin_us) instead of
     * parking, looking at the queues. */
    cfg.budget = 100;
    cfg.spin_us = 1000000;
    run_hive_cfg(&cfg, t_moves, NULL);
}
END_TEST

static void t_stays(void *arg)
{
    (void)arg;
    struct send_report r;
    unsigned rr[2];
    flood_pair(0, &r, rr);
    ck_assert_uint_eq(flood_moves(), 0);
}

START_TEST(without_flood_move_no_sender_is_moved)
{
    hive_config cfg = test_config(2);
    cfg.flood_move = false;
    run_hive_cfg(&cfg, t_stays, NULL);
}
END_TEST

/* ---- many schedulers, many floods, random deaths ---- */

#define GROUPS   2
#define PER      4
#define STRESS_N 60000u

struct tagged { unsigned from, seq; };
static hive_pid g_recvs[GROUPS];

static void stress_receiver(void *arg)
{
    unsigned group = (unsigned)(uintptr_t)arg;
    unsigned next[PER] = { 0 }, total = 0;
    bool in_order = true;
    for (;;) {
        struct tagged t;
        if (take(&t, sizeof t) == T_END)
            break;
        ck_assert_uint_lt(t.from, PER);
        in_order &= t.seq == ++next[t.from];
        total++;
        work_us(1);
    }
    unsigned r[3 + PER] = { group, total, in_order };
    memcpy(r + 3, next, sizeof next);
    hive_send(g_main, T_RECV_REPORT, r, sizeof r);
}

static void stress_sender(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    hive_pid to = g_recvs[id / PER];
    for (unsigned i = 1; i <= STRESS_N; i++) {
        struct tagged t = { id % PER, i };
        hive_send(to, T_DATA, &t, sizeof t);
        if (i == STRESS_N / 2)
            hive_send(g_main, T_HALF, &id, sizeof id);
    }
}

static void t_stress(void *arg)
{
    (void)arg;
    g_main = hive_self();
    srand((unsigned)test_now_ns());
    for (unsigned g = 0; g < GROUPS; g++)
        ck_assert_int_eq(hive_spawn(stress_receiver, (void *)(uintptr_t)g, &g_recvs[g]), 0);
    hive_pid senders[GROUPS * PER];
    hive_ref mons[GROUPS * PER];
    bool victim[GROUPS * PER] = { false };
    for (unsigned g = 0; g < GROUPS; g++)
        victim[g * PER + (unsigned)rand() % PER] = true; /* one killed per group */
    for (unsigned i = 0; i < GROUPS * PER; i++) {
        ck_assert_int_eq(hive_spawn(stress_sender, (void *)(uintptr_t)i, &senders[i]), 0);
        ck_assert_int_eq(hive_monitor(senders[i], &mons[i]), 0);
    }
    /* Each victim is killed when it is half-way: wherever it is then,
     * running, queued, held or on its way to another scheduler. */
    for (unsigned k = 0; k < GROUPS * PER; k++) {
        hive_msg *m = recv_tag(T_HALF, 60000);
        unsigned id = *(unsigned *)m->data;
        hive_msg_free(m);
        if (victim[id])
            hive_kill(senders[id], HIVE_KILL);
    }
    for (unsigned i = 0; i < GROUPS * PER; i++) {
        hive_reason why = wait_down(mons[i]);
        if (!victim[i])
            ck_assert_int_eq(why, HIVE_NORMAL);
    }
    /* every sender is gone: all they sent is queued before this */
    for (unsigned g = 0; g < GROUPS; g++)
        ck_assert_int_eq(hive_send(g_recvs[g], T_END, NULL, 0), 0);
    for (unsigned g = 0; g < GROUPS; g++) {
        hive_msg *m = recv_tag(T_RECV_REPORT, 60000);
        unsigned r[3 + PER];
        memcpy(r, m->data, sizeof r);
        hive_msg_free(m);
        ck_assert_uint_lt(r[0], GROUPS);
        ck_assert_msg(r[2], "a sender's messages arrived out of order or with a gap");
        unsigned sum = 0;
        for (unsigned s = 0; s < PER; s++) {
            unsigned got = r[3 + s];
            sum += got;
            if (victim[r[0] * PER + s]) { /* killed after its half-way report */
                ck_assert_uint_ge(got, STRESS_N / 2);
                ck_assert_uint_le(got, STRESS_N);
            } else {
                ck_assert_uint_eq(got, STRESS_N);
            }
        }
        ck_assert_uint_eq(sum, r[1]);
    }
    ck_assert_int_eq(live_processes_settled(1), 1);
}

START_TEST(floods_on_four_schedulers_with_senders_killed_lose_and_reorder_nothing)
{
    run_hive(4, t_stress, NULL);
}
END_TEST

static Suite *make_suite(void)
{
    Suite *s = suite_create("flood");
    TCase *tc = tcase_create("move");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, a_sender_flooding_a_receiver_on_another_scheduler_moves_there_and_stays);
    tcase_add_test(tc, without_flood_move_no_sender_is_moved);
    tcase_add_test(tc, floods_on_four_schedulers_with_senders_killed_lose_and_reorder_nothing);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(make_suite)
