/* Mailbox limits: max_queue and the four overflow policies, what is never
 * counted (replies, DOWNs, timer messages), calls to a full server, and the
 * counters in hive_stats and hive_process_info. */
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "harness.h"

enum { T_DATA = 1, T_GO, T_FINAL, T_REPORT, T_READY, T_PROGRESS, T_DONE, T_INCALL, T_PING,
       T_BLOCK, T_REPLY_NOW, T_FAIL };

struct item { uint32_t sender, seq; };

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static hive_sched_stats stats_total(void)
{
    hive_sched_stats t;
    ck_assert_int_gt(hive_stats(NULL, 0, &t), 0);
    return t;
}

static struct hive_process_info info_of(hive_pid p)
{
    struct hive_process_info i;
    ck_assert_int_eq(hive_process_info(p, &i), 0);
    return i;
}

static void idle(void *arg)
{
    (void)arg;
    hive_msg *m;
    for (;;)
        if (hive_receive(&m, HIVE_INFINITY) == 0)
            hive_msg_free(m);
}

static void sleeper(void *arg)
{
    (void)arg;
    hive_msg *m;
    uint32_t never = 0xABCDu;
    hive_receive_if(match_tag, &never, &m, HIVE_INFINITY);
}

/* ------------------------------------------------------------------ */
/* Arguments                                                           */
/* ------------------------------------------------------------------ */

static const hive_gen_server plain_gs = { 0 };

static void t_args(void *arg)
{
    (void)arg;
    hive_spawn_opts bad = { .max_queue = 4, .overflow = (enum hive_overflow)4 };
    ck_assert_int_eq(hive_spawn_opt(idle, NULL, &bad, NULL), -EINVAL);
    bad.overflow = (enum hive_overflow)-1;
    ck_assert_int_eq(hive_spawn_opt(idle, NULL, &bad, NULL), -EINVAL);
    hive_gs_opts gbad = { .max_queue = 4, .overflow = (enum hive_overflow)9 };
    hive_pid g = HIVE_NOPID;
    ck_assert_int_eq(hive_gs_start(&plain_gs, NULL, &gbad, &g), -EINVAL);
    ck_assert_uint_eq(g, HIVE_NOPID);

    hive_pid p, q;
    ck_assert_int_eq(hive_spawn(idle, NULL, &p), 0);
    struct hive_process_info i = info_of(p);
    ck_assert_uint_eq(i.max_queue, 0);
    ck_assert_uint_eq(i.messages_dropped, 0);
    hive_spawn_opts o = { .max_queue = 7, .overflow = HIVE_OVERFLOW_KILL };
    ck_assert_int_eq(hive_spawn_opt(idle, NULL, &o, &q), 0);
    ck_assert_uint_eq(info_of(q).max_queue, 7);
    hive_gs_opts go = { .max_queue = 3, .overflow = HIVE_OVERFLOW_DROP_OLDEST };
    ck_assert_int_eq(hive_gs_start(&plain_gs, NULL, &go, &g), 0);
    ck_assert_uint_eq(info_of(g).max_queue, 3);
    ck_assert(info_of(g).gen_server);
    ck_assert_int_eq(hive_gs_stop(g, HIVE_NORMAL, 5000), 0);
    hive_kill(p, HIVE_KILL);
    hive_kill(q, HIVE_KILL);
}
START_TEST(invalid_overflow_is_einval_and_limits_are_reported) { run_hive(2, t_args, NULL); }
END_TEST

/* ------------------------------------------------------------------ */
/* One sender, exact: what each policy keeps                           */
/* ------------------------------------------------------------------ */

/* A server that answers T_PING at once, and parks a T_BLOCK call until a
 * T_REPLY_NOW cast (a deferred reply), telling `watcher` it has it. */
struct parked { hive_from from; bool has; hive_pid watcher; };
static int ps_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    struct parked *s = calloc(1, sizeof *s);
    s->watcher = (hive_pid)(uintptr_t)arg;
    *state = s;
    return 0;
}
static void ps_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    struct parked *s = state;
    if (req->tag == T_BLOCK) {
        s->from = from;
        s->has = true;
        hive_send(s->watcher, T_INCALL, NULL, 0);
        return;
    }
    hive_reply(from, T_PING, req->data, req->len);
}
static void ps_cast(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct parked *s = state;
    if (msg->tag == T_REPLY_NOW && s->has) {
        s->has = false;
        hive_reply(s->from, T_BLOCK, NULL, 0);
    }
}
static void ps_terminate(hive_gs *gs, void *state, hive_reason r)
{
    (void)gs;
    (void)r;
    free(state);
}
static const hive_gen_server parked_gs = { .init = ps_init, .handle_call = ps_call,
                                           .handle_cast = ps_cast, .terminate = ps_terminate };

struct exact {
    hive_pid parent, server, helper;
    enum hive_overflow pol;
    uint32_t max;
};

#define EXACT_MAX 4
#define EXACT_SENT 10

/* The bounded receiver: waits for a timer message (never counted, so it
 * comes however full the queue is), checks what it holds, calls the
 * server and waits for a helper's DOWN with the queue full, then reports
 * the sequence numbers it kept. */
static void exact_receiver(void *arg)
{
    struct exact *x = arg;
    hive_ref mref;
    ck_assert_int_eq(hive_monitor(x->helper, &mref), 0);
    hive_send(x->parent, T_READY, NULL, 0); /* a send of ours: not counted here */
    hive_msg *m = recv_tag(T_GO, 10000);
    hive_msg_free(m);
    struct hive_process_info i = info_of(hive_self());
    ck_assert_uint_eq(i.message_queue_len, x->max);
    ck_assert_uint_eq(i.max_queue, x->max);
    ck_assert_uint_eq(i.messages_dropped, EXACT_SENT - x->max);
    /* A reply to our own call gets through a full queue. */
    hive_msg *r;
    uint32_t v = 77;
    ck_assert_int_eq(hive_call(x->server, T_PING, &v, sizeof v, &r, 5000), 0);
    ck_assert_uint_eq(*(uint32_t *)r->data, 77);
    hive_msg_free(r);
    /* So does the DOWN of a monitor. */
    hive_send(x->parent, T_PROGRESS, NULL, 0);
    ck_assert_int_eq(wait_down(mref), HIVE_KILLED);
    /* What we kept, in order. */
    uint32_t kept[EXACT_SENT], n = 0;
    while (hive_receive(&m, 0) == 0) {
        ck_assert_uint_eq(m->tag, T_DATA);
        ck_assert_uint_lt(n, EXACT_SENT);
        kept[n++] = ((struct item *)m->data)->seq;
        hive_msg_free(m);
    }
    hive_send(x->parent, T_REPORT, kept, n * sizeof kept[0]);
    hive_msg_free(recv_tag(T_DONE, 10000));
}

static void t_exact(void *arg)
{
    enum hive_overflow pol = (enum hive_overflow)(intptr_t)arg;
    hive_pid me = hive_self();
    struct exact x = { .parent = me, .pol = pol, .max = EXACT_MAX };
    ck_assert_int_eq(hive_gs_start(&parked_gs, (void *)(uintptr_t)me, NULL, &x.server), 0);
    ck_assert_int_eq(hive_spawn(sleeper, NULL, &x.helper), 0);
    hive_spawn_opts o = { .max_queue = EXACT_MAX, .overflow = pol };
    hive_pid rcv;
    ck_assert_int_eq(hive_spawn_opt(exact_receiver, &x, &o, &rcv), 0);
    hive_msg_free(recv_tag(T_READY, 10000));

    hive_sched_stats before = stats_total();
    int eagain = 0;
    for (uint32_t s = 0; s < EXACT_SENT; s++) {
        struct item it = { 0, s };
        int rc;
        if (s % 3 == 0) {
            rc = hive_send(rcv, T_DATA, &it, sizeof it);
        } else if (s % 3 == 1) {
            hive_msg *m = hive_msg_alloc(sizeof it);
            memcpy(m->data, &it, sizeof it);
            m->tag = T_DATA;
            rc = hive_send_msg(rcv, m);
            if (rc)
                hive_msg_free(m); /* a failed send leaves it ours */
        } else {
            rc = hive_cast(rcv, T_DATA, &it, sizeof it);
        }
        if (s < EXACT_MAX || pol != HIVE_OVERFLOW_REJECT) {
            ck_assert_int_eq(rc, 0);
        } else {
            ck_assert_int_eq(rc, -EAGAIN);
            eagain++;
        }
        ck_assert_uint_le(info_of(rcv).message_queue_len, EXACT_MAX);
    }
    hive_sched_stats mid = stats_total();
    ck_assert_uint_eq(mid.mailbox_rejected - before.mailbox_rejected, (uint64_t)eagain);
    if (pol == HIVE_OVERFLOW_DROP_NEWEST)
        ck_assert_uint_eq(mid.mailbox_dropped - before.mailbox_dropped, EXACT_SENT - EXACT_MAX);
    if (pol == HIVE_OVERFLOW_REJECT || pol == HIVE_OVERFLOW_DROP_NEWEST)
        ck_assert_uint_eq(info_of(rcv).messages_dropped, EXACT_SENT - EXACT_MAX);

    /* The go is a timer message: it arrives at a full mailbox. */
    hive_timer t;
    ck_assert_int_eq(hive_send_after(rcv, T_GO, NULL, 0, 1, &t), 0);
    hive_msg_free(recv_tag(T_PROGRESS, 10000));
    hive_kill(x.helper, HIVE_KILL);
    hive_msg *m = recv_tag(T_REPORT, 10000);
    uint32_t *kept = m->data;
    ck_assert_uint_eq(m->len, EXACT_MAX * sizeof(uint32_t));
    for (uint32_t k = 0; k < EXACT_MAX; k++) {
        uint32_t want = pol == HIVE_OVERFLOW_DROP_OLDEST ? EXACT_SENT - EXACT_MAX + k : k;
        ck_assert_uint_eq(kept[k], want);
    }
    hive_msg_free(m);
    hive_sched_stats after = stats_total();
    ck_assert_uint_eq(after.mailbox_rejected - before.mailbox_rejected, (uint64_t)eagain);
    ck_assert_uint_eq(after.mailbox_dropped - before.mailbox_dropped,
                      pol == HIVE_OVERFLOW_REJECT ? 0 : EXACT_SENT - EXACT_MAX);
    ck_assert_uint_eq(after.mailbox_overflow_kills, 0);
    ck_assert_uint_eq(info_of(rcv).messages_dropped, EXACT_SENT - EXACT_MAX);
    hive_send_after(rcv, T_DONE, NULL, 0, 0, &t);
    ck_assert_int_eq(hive_gs_stop(x.server, HIVE_NORMAL, 5000), 0);
}
START_TEST(reject_refuses_with_eagain_and_keeps_the_first) {
    run_hive(2, t_exact, (void *)(intptr_t)HIVE_OVERFLOW_REJECT);
}
END_TEST
START_TEST(drop_newest_keeps_the_first) {
    run_hive(2, t_exact, (void *)(intptr_t)HIVE_OVERFLOW_DROP_NEWEST);
}
END_TEST
START_TEST(drop_oldest_keeps_the_newest) {
    run_hive(2, t_exact, (void *)(intptr_t)HIVE_OVERFLOW_DROP_OLDEST);
}
END_TEST

/* Drop-oldest while the receiver waits in a call: the call's mark points
 * into the messages that must go. The reply still arrives, the newest
 * messages are kept, in order. */
struct incall { hive_pid parent, server; };
static void incall_receiver(void *arg)
{
    struct incall *c = arg;
    hive_msg *m = recv_tag(T_GO, 10000); /* 3 messages saved behind it */
    hive_msg_free(m);
    hive_msg *r;
    ck_assert_int_eq(hive_call(c->server, T_BLOCK, NULL, 0, &r, 10000), 0);
    ck_assert_uint_eq(r->tag, T_BLOCK);
    hive_msg_free(r);
    ck_assert_uint_eq(info_of(hive_self()).message_queue_len, EXACT_MAX);
    uint32_t kept[16], n = 0;
    while (hive_receive(&m, 0) == 0) {
        ck_assert_uint_lt(n, 16);
        kept[n++] = ((struct item *)m->data)->seq;
        hive_msg_free(m);
    }
    hive_send(c->parent, T_REPORT, kept, n * sizeof kept[0]);
}

static void t_incall(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    struct incall c = { .parent = me };
    ck_assert_int_eq(hive_gs_start(&parked_gs, (void *)(uintptr_t)me, NULL, &c.server), 0);
    hive_spawn_opts o = { .max_queue = EXACT_MAX, .overflow = HIVE_OVERFLOW_DROP_OLDEST };
    hive_pid rcv;
    ck_assert_int_eq(hive_spawn_opt(incall_receiver, &c, &o, &rcv), 0);
    uint32_t s = 0;
    for (; s < 3; s++) {
        struct item it = { 0, s };
        ck_assert_int_eq(hive_send(rcv, T_DATA, &it, sizeof it), 0);
    }
    hive_timer t;
    ck_assert_int_eq(hive_send_after(rcv, T_GO, NULL, 0, 0, &t), 0);
    hive_msg_free(recv_tag(T_INCALL, 10000)); /* the receiver waits in its call */
    for (; s < 13; s++) {
        struct item it = { 0, s };
        ck_assert_int_eq(hive_send(rcv, T_DATA, &it, sizeof it), 0);
        if (s % 2)
            hive_yield(); /* let it take some while it waits */
    }
    ck_assert_int_eq(hive_cast(c.server, T_REPLY_NOW, NULL, 0), 0);
    hive_msg *m = recv_tag(T_REPORT, 10000);
    ck_assert_uint_eq(m->len, EXACT_MAX * sizeof(uint32_t));
    uint32_t *kept = m->data;
    for (uint32_t k = 0; k < EXACT_MAX; k++)
        ck_assert_uint_eq(kept[k], 13 - EXACT_MAX + k);
    hive_msg_free(m);
    ck_assert_uint_eq(stats_total().mailbox_dropped, 13 - EXACT_MAX);
    ck_assert_int_eq(hive_gs_stop(c.server, HIVE_NORMAL, 5000), 0);
}
START_TEST(drop_oldest_under_a_pending_call_keeps_the_newest_and_the_reply) {
    run_hive(2, t_incall, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Kill                                                                */
/* ------------------------------------------------------------------ */

static void trapping_sleeper(void *arg)
{
    (void)arg;
    hive_trap_exits(true);
    sleeper(NULL);
}

static void t_kill(void *arg)
{
    (void)arg;
    hive_ref r;
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r, .max_queue = 2,
                          .overflow = HIVE_OVERFLOW_KILL };
    hive_pid p;
    ck_assert_int_eq(hive_spawn_opt(trapping_sleeper, NULL, &o, &p), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(hive_send(p, T_DATA, &i, sizeof i), 0);
    ck_assert_int_eq(wait_down(r), HIVE_OVERFLOWED);
    ck_assert_int_eq(hive_send(p, T_DATA, NULL, 0), -ESRCH);
    hive_sched_stats t = stats_total();
    ck_assert_uint_eq(t.mailbox_overflow_kills, 1);
    ck_assert_uint_eq(t.mailbox_dropped, 1);
    ck_assert_uint_eq(t.mailbox_rejected, 0);
}
START_TEST(kill_policy_kills_even_a_trapping_process) { run_hive(2, t_kill, NULL); }
END_TEST

/* ------------------------------------------------------------------ */
/* hive_call to a full server under reject                              */
/* ------------------------------------------------------------------ */

/* Handles T_BLOCK casts by waiting for the DOWN of the pid they carry
 * (not counted, so it comes however full the mailbox is). */
static void bs_cast(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    (void)state;
    if (msg->tag != T_BLOCK)
        return;
    hive_pid *pp = msg->data;
    hive_ref r;
    ck_assert_int_eq(hive_monitor(pp[0], &r), 0);
    hive_send(pp[1], T_INCALL, NULL, 0);
    wait_down(r);
}
static void bs_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)state;
    hive_reply(from, req->tag, NULL, 0);
}
static const hive_gen_server blocking_gs = { .handle_call = bs_call, .handle_cast = bs_cast };

static void t_call_full(void *arg)
{
    (void)arg;
    hive_gs_opts go = { .max_queue = 2, .overflow = HIVE_OVERFLOW_REJECT };
    hive_pid g, helper;
    ck_assert_int_eq(hive_gs_start(&blocking_gs, NULL, &go, &g), 0);
    ck_assert_int_eq(hive_spawn(sleeper, NULL, &helper), 0);
    hive_pid pp[2] = { helper, hive_self() };
    ck_assert_int_eq(hive_cast(g, T_BLOCK, pp, sizeof pp), 0);
    hive_msg_free(recv_tag(T_INCALL, 10000)); /* it took the cast and waits */
    ck_assert_int_eq(hive_cast(g, T_DATA, NULL, 0), 0);
    ck_assert_int_eq(hive_cast(g, T_DATA, NULL, 0), 0);
    ck_assert_int_eq(hive_cast(g, T_DATA, NULL, 0), -EAGAIN);
    hive_msg *r = NULL;
    uint64_t t0 = now_ms();
    ck_assert_int_eq(hive_call(g, T_PING, NULL, 0, &r, 5000), -EAGAIN);
    ck_assert_uint_lt(now_ms() - t0, 2500); /* at once, not the time-out */
    hive_ref req;
    ck_assert_int_eq(hive_send_request(g, T_PING, NULL, 0, &req), -EAGAIN);
    ck_assert_int_eq(hive_send(g, T_DATA, NULL, 0), -EAGAIN);
    /* A failed call leaves nothing behind: no alias, no monitor, no DOWN. */
    ck_assert_uint_eq(info_of(hive_self()).monitors, 0);
    ck_assert_uint_eq(info_of(hive_self()).message_queue_len, 0);
    ck_assert_uint_eq(info_of(g).messages_dropped, 4);
    ck_assert_uint_eq(stats_total().mailbox_rejected, 4);
    /* Unblocked, it takes its two casts (a system request is not counted:
     * it gets in, and is answered after them), and calls are answered. */
    hive_kill(helper, HIVE_KILL);
    void *state;
    ck_assert_int_eq(hive_gs_get_state(g, &state, 5000), 0);
    ck_assert_int_eq(hive_call(g, T_PING, NULL, 0, &r, 5000), 0);
    ck_assert_uint_eq(r->tag, T_PING);
    hive_msg_free(r);
    ck_assert_int_eq(hive_gs_stop(g, HIVE_NORMAL, 5000), 0);
    ck_assert_int_eq(hive_cast(g, T_DATA, NULL, 0), 0); /* dead server: still 0 */
}
START_TEST(call_to_a_full_reject_server_is_eagain_at_once) { run_hive(2, t_call_full, NULL); }
END_TEST

/* ------------------------------------------------------------------ */
/* Flood: 4 senders on 4 schedulers, one slow receiver                 */
/* ------------------------------------------------------------------ */

#define NSEND 4
#define FLOOD_MAX 64

struct flood {
    hive_pid parent, receiver, server;
    enum hive_overflow pol;
    _Atomic bool stop, paused;
    _Atomic uint64_t eagain, ok;
    _Atomic uint32_t last[NSEND];   /* each sender's last seq */
};

/* Sends numbered messages until told to stop. */
static void flood_sender(void *arg)
{
    struct flood *f = arg;
    hive_msg *m = recv_tag(T_GO, 10000);
    uint32_t id = *(uint32_t *)m->data;
    hive_msg_free(m);
    uint64_t eagain = 0, ok = 0;
    uint32_t s = 0, after_pause = 0;
    for (; !atomic_load_explicit(&f->stop, memory_order_relaxed); s++) {
        struct item it = { id, s };
        int rc = hive_send(f->receiver, T_DATA, &it, sizeof it);
        if (rc == -ESRCH && f->pol == HIVE_OVERFLOW_KILL)
            break;
        if (rc == -EAGAIN)
            eagain++;
        else
            ck_assert_int_eq(rc, 0);
        ok += rc == 0;
        if (s == 2 * FLOOD_MAX)
            hive_send(f->parent, T_PROGRESS, NULL, 0);
        /* Twice the limit after the receiver paused, then the parent knows. */
        if (atomic_load_explicit(&f->paused, memory_order_relaxed) &&
            ++after_pause == 2 * FLOOD_MAX)
            hive_send(f->parent, T_INCALL, NULL, 0);
    }
    atomic_store(&f->last[id], s - 1);
    atomic_fetch_add(&f->eagain, eagain);
    atomic_fetch_add(&f->ok, ok);
}

static void slow(void)
{
    for (volatile int i = 0; i < 2000; i++) {
    }
}

/* What the receiver found, for the parent. */
struct flood_report {
    uint64_t received, first_batch_prefix_ok, final_n, final_suffix_ok, calls, max_seen;
};

struct flood_state {
    bool seen[NSEND];
    uint32_t last[NSEND];
    struct flood_report rep;
};

static void take(struct flood *f, struct flood_state *st, hive_msg *m)
{
    struct item *it = m->data;
    ck_assert_uint_lt(it->sender, NSEND);
    /* FIFO per sender, whatever the policy drops */
    if (st->seen[it->sender])
        ck_assert_uint_gt(it->seq, st->last[it->sender]);
    /* drop-newest: the first full mailbox holds a prefix of each sender */
    uint32_t want = st->seen[it->sender] ? st->last[it->sender] + 1 : 0;
    if (f->pol == HIVE_OVERFLOW_DROP_NEWEST && st->rep.received < FLOOD_MAX && it->seq != want)
        st->rep.first_batch_prefix_ok = 0;
    st->last[it->sender] = it->seq;
    st->seen[it->sender] = true;
    st->rep.received++;
    hive_msg_free(m);
}

/* Waits for the go (a timer message: senders filled the mailbox first),
 * takes messages slowly until told to pause, then waits for the end
 * marker, which drains the mailbox (dropping what the policy drops)
 * without taking anything; what is left then is the final batch. Along
 * the way it calls a server: replies get through a full mailbox. */
static void flood_receiver(void *arg)
{
    struct flood *f = arg;
    struct flood_state st = { .rep = { .first_batch_prefix_ok = 1, .final_suffix_ok = 1 } };
    hive_msg_free(recv_tag(T_GO, 30000));
    for (;;) {
        if ((st.rep.received & 63) == 0) {
            uint32_t q = info_of(hive_self()).message_queue_len;
            if (q > st.rep.max_seen)
                st.rep.max_seen = q;
        }
        hive_msg *m;
        ck_assert_int_eq(hive_receive(&m, 30000), 0);
        if (m->tag == T_FINAL) {
            hive_msg_free(m);
            break;
        }
        ck_assert_uint_eq(m->tag, T_DATA);
        take(f, &st, m);
        slow();
        if ((st.rep.received & 255) == 0) {
            hive_msg *r;
            ck_assert_int_eq(hive_call(f->server, T_PING, NULL, 0, &r, 10000), 0);
            hive_msg_free(r);
            st.rep.calls++;
        }
    }
    /* The pause: the senders go on, only the policy keeps the queue. */
    hive_send(f->parent, T_READY, NULL, 0);
    hive_msg_free(recv_tag(T_DONE, 30000));
    uint32_t q = info_of(hive_self()).message_queue_len;
    if (q > st.rep.max_seen)
        st.rep.max_seen = q;
    uint64_t before = st.rep.received;
    uint32_t final_count[NSEND] = { 0 };
    hive_msg *m;
    while (hive_receive(&m, 0) == 0) {
        ck_assert_uint_eq(m->tag, T_DATA);
        final_count[((struct item *)m->data)->sender]++;
        take(f, &st, m);
    }
    st.rep.final_n = st.rep.received - before;
    /* drop-oldest: what was left at the end is the newest of each sender */
    for (int i = 0; i < NSEND; i++)
        if (f->pol == HIVE_OVERFLOW_DROP_OLDEST && final_count[i] &&
            st.last[i] != atomic_load(&f->last[i]))
            st.rep.final_suffix_ok = 0;
    hive_send(f->parent, T_REPORT, &st.rep, sizeof st.rep);
    hive_msg_free(recv_tag(T_DONE, 30000));
}

/* Watches the receiver's queue for ms milliseconds; the largest length seen. */
static uint32_t watch(hive_pid p, int ms)
{
    uint32_t most = 0;
    uint64_t end = now_ms() + (uint64_t)ms;
    while (now_ms() < end) {
        struct hive_process_info i;
        if (hive_process_info(p, &i) != 0)
            break;
        if (i.message_queue_len > most)
            most = i.message_queue_len;
        hive_sleep(1);
    }
    return most;
}

static void t_flood_one(enum hive_overflow pol)
{
    hive_pid me = hive_self();
    struct flood f = { .parent = me, .pol = pol };
    ck_assert_int_eq(hive_gs_start(&parked_gs, (void *)(uintptr_t)me, NULL, &f.server), 0);
    hive_ref rr;
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &rr, .max_queue = FLOOD_MAX,
                          .overflow = pol };
    hive_sched_stats before = stats_total();
    ck_assert_int_eq(hive_spawn_opt(pol == HIVE_OVERFLOW_KILL ? trapping_sleeper : flood_receiver,
                                    &f, &o, &f.receiver), 0);
    hive_pid s[NSEND];
    hive_ref sr[NSEND];
    for (uint32_t i = 0; i < NSEND; i++) {
        hive_spawn_opts so = { .flags = HIVE_MONITOR, .monitor = &sr[i] };
        ck_assert_int_eq(hive_spawn_opt(flood_sender, &f, &so, &s[i]), 0);
    }
    for (uint32_t i = 0; i < NSEND; i++)
        ck_assert_int_eq(hive_send(s[i], T_GO, &i, sizeof i), 0);
    if (pol == HIVE_OVERFLOW_KILL) {
        ck_assert_int_eq(wait_down(rr), HIVE_OVERFLOWED);
        atomic_store(&f.stop, true);
        for (int i = 0; i < NSEND; i++)
            ck_assert_int_eq(wait_down(sr[i]), HIVE_NORMAL);
        hive_sched_stats after = stats_total();
        ck_assert_uint_eq(after.mailbox_overflow_kills - before.mailbox_overflow_kills, 1);
        ck_assert_uint_eq(after.mailbox_rejected - before.mailbox_rejected, 0);
        ck_assert_uint_ge(after.mailbox_dropped - before.mailbox_dropped, 1);
        ck_assert_uint_eq(atomic_load(&f.eagain), 0);
        printf("flood kill: %lu sends before the receiver died\n",
               (unsigned long)atomic_load(&f.ok));
        ck_assert_int_eq(hive_gs_stop(f.server, HIVE_NORMAL, 5000), 0);
        return;
    }
    for (int i = 0; i < NSEND; i++)
        hive_msg_free(recv_tag(T_PROGRESS, 30000));
    /* Every sender sent twice the limit: the mailbox has overflowed. */
    hive_timer t;
    ck_assert_int_eq(hive_send_after(f.receiver, T_GO, NULL, 0, 0, &t), 0);
    uint32_t most = watch(f.receiver, 300);
    ck_assert_int_eq(hive_send_after(f.receiver, T_FINAL, NULL, 0, 0, &t), 0);
    hive_msg_free(recv_tag(T_READY, 30000)); /* it paused */
    atomic_store(&f.paused, true);
    for (int i = 0; i < NSEND; i++) /* each sent twice the limit since */
        hive_msg_free(recv_tag(T_INCALL, 30000));
    uint32_t m2 = info_of(f.receiver).message_queue_len;
    most = m2 > most ? m2 : most;
    atomic_store(&f.stop, true);
    for (int i = 0; i < NSEND; i++)
        ck_assert_int_eq(wait_down(sr[i]), HIVE_NORMAL);
    /* All senders are done: this marker comes after all they sent. */
    ck_assert_int_eq(hive_send_after(f.receiver, T_DONE, NULL, 0, 0, &t), 0);
    hive_msg *m = recv_tag(T_REPORT, 60000);
    struct flood_report rep = *(struct flood_report *)m->data;
    hive_msg_free(m);
    uint64_t total_sent = atomic_load(&f.ok), eagain = atomic_load(&f.eagain);
    struct hive_process_info ri = info_of(f.receiver);
    hive_sched_stats after = stats_total();
    uint64_t rejected = after.mailbox_rejected - before.mailbox_rejected;
    uint64_t dropped = after.mailbox_dropped - before.mailbox_dropped;
    printf("flood policy %d: sent %lu, -EAGAIN %lu, received %lu, dropped %lu, "
           "largest queue seen %lu by itself, %u by a watcher (limit %u + %u senders), "
           "%lu calls, final batch %lu\n",
           (int)pol, (unsigned long)total_sent, (unsigned long)eagain,
           (unsigned long)rep.received, (unsigned long)dropped, (unsigned long)rep.max_seen,
           most, FLOOD_MAX, NSEND, (unsigned long)rep.calls, (unsigned long)rep.final_n);
    /* + the markers that may be queued behind it */
    ck_assert_uint_le(rep.max_seen, FLOOD_MAX + NSEND + 1);
    ck_assert_uint_le(most, FLOOD_MAX + NSEND + 2);
    ck_assert_uint_le(rep.final_n, FLOOD_MAX);
    switch (pol) {
    case HIVE_OVERFLOW_REJECT:
        ck_assert_uint_gt(eagain, 0);
        ck_assert_uint_eq(rejected, eagain);
        ck_assert_uint_eq(dropped, 0);
        ck_assert_uint_eq(rep.received, total_sent);
        ck_assert_uint_eq(ri.messages_dropped, eagain);
        break;
    case HIVE_OVERFLOW_DROP_NEWEST:
        ck_assert_uint_eq(eagain, 0);
        ck_assert_uint_eq(rejected, 0);
        ck_assert(rep.first_batch_prefix_ok);
        ck_assert_uint_gt(dropped, 0);
        ck_assert_uint_eq(rep.received + dropped, total_sent);
        ck_assert_uint_eq(ri.messages_dropped, dropped);
        break;
    case HIVE_OVERFLOW_DROP_OLDEST:
        ck_assert_uint_eq(eagain, 0);
        ck_assert_uint_eq(rejected, 0);
        ck_assert(rep.final_suffix_ok);
        ck_assert_uint_eq(rep.final_n, FLOOD_MAX); /* 8 x the limit came after the pause */
        ck_assert_uint_gt(dropped, 0);
        ck_assert_uint_eq(rep.received + dropped, total_sent);
        ck_assert_uint_eq(ri.messages_dropped, dropped);
        break;
    default:
        break;
    }
    ck_assert_uint_eq(after.mailbox_overflow_kills - before.mailbox_overflow_kills, 0);
    hive_send_after(f.receiver, T_DONE, NULL, 0, 0, &t);
    ck_assert_int_eq(wait_down(rr), HIVE_NORMAL);
    ck_assert_int_eq(hive_gs_stop(f.server, HIVE_NORMAL, 5000), 0);
}

static void t_flood(void *arg)
{
    t_flood_one((enum hive_overflow)(intptr_t)arg);
}
START_TEST(flood_reject) { run_hive(4, t_flood, (void *)(intptr_t)HIVE_OVERFLOW_REJECT); }
END_TEST
START_TEST(flood_drop_newest) { run_hive(4, t_flood, (void *)(intptr_t)HIVE_OVERFLOW_DROP_NEWEST); }
END_TEST
START_TEST(flood_drop_oldest) { run_hive(4, t_flood, (void *)(intptr_t)HIVE_OVERFLOW_DROP_OLDEST); }
END_TEST
START_TEST(flood_kill) { run_hive(4, t_flood, (void *)(intptr_t)HIVE_OVERFLOW_KILL); }
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mailbox_limits");
    TCase *tc = tcase_create("limits");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, invalid_overflow_is_einval_and_limits_are_reported);
    tcase_add_test(tc, reject_refuses_with_eagain_and_keeps_the_first);
    tcase_add_test(tc, drop_newest_keeps_the_first);
    tcase_add_test(tc, drop_oldest_keeps_the_newest);
    tcase_add_test(tc, drop_oldest_under_a_pending_call_keeps_the_newest_and_the_reply);
    tcase_add_test(tc, kill_policy_kills_even_a_trapping_process);
    tcase_add_test(tc, call_to_a_full_reject_server_is_eagain_at_once);
    tcase_add_test(tc, flood_reject);
    tcase_add_test(tc, flood_drop_newest);
    tcase_add_test(tc, flood_drop_oldest);
    tcase_add_test(tc, flood_kill);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
