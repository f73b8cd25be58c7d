/*
 * gen_server workloads: call latency and throughput, a storm of calls that
 * all time out, and the cost of idle servers. Each mirrors the workload of
 * the same name in bench/peers (Erlang's gen_server, Go's channels).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

enum { G_INCR = 1, G_GET, G_WHOAMI, G_REQ, G_REPLY_TO, G_COUNT_LEFTOVER, G_COUNT, G_LEFT,
       G_OUTCOME, G_ALL_REPLIED, G_CLIENT_DONE };

/* OTP's default call timeout: every call arms (and cancels) a timer, as a
 * gen_server:call/2 does. */
#define CALL_TIMEOUT_MS 5000

struct job {
    const struct bench_ctx *ctx;
    struct bench_result *r;
    uint64_t n;
};

/* ---------------- the counter server ---------------- */

static int counter_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    uint64_t *c = arg;
    *c = 0;
    *state = c;
    return 0;
}

static void counter_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    uint64_t *c = state;
    if (req->tag == G_INCR)
        ++*c;
    hive_reply(from, req->tag, c, sizeof *c);
}

static const hive_gen_server COUNTER = { .init = counter_init, .handle_call = counter_call };

/* n sequential calls; every call timed. One clock read per call: a call's
 * latency runs from the end of the previous call to its own end, so it also
 * carries freeing the previous reply and storing a sample (a few ns), but
 * the clock is read half as often (a vDSO read costs tens of ns on this kind
 * of VM, as much as a fifth of a call). Returns 0, or the first error. */
static int call_loop(hive_pid server, uint64_t n, uint64_t *lat)
{
    uint64_t a = bench_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        hive_msg *m;
        int rc = hive_call(server, G_INCR, NULL, 0, &m, CALL_TIMEOUT_MS);
        uint64_t b = bench_now_ns();
        if (rc)
            return rc;
        lat[i] = b - a;
        hive_msg_free(m);
        a = b;
    }
    return 0;
}

static uint64_t counter_get(hive_pid server)
{
    hive_msg *m;
    if (hive_call(server, G_GET, NULL, 0, &m, CALL_TIMEOUT_MS))
        return UINT64_MAX;
    uint64_t v = *(uint64_t *)m->data;
    hive_msg_free(m);
    return v;
}

/* ---------------- gen_server_call ---------------- */

static void gen_server_call_main(void *arg)
{
    struct job *j = arg;
    uint64_t count;
    hive_pid server;
    int rc = hive_gs_start(&COUNTER, &count, NULL, &server);
    if (rc) {
        bench_fail(j->r, "start: %s", hive_strerror(rc));
        return;
    }
    uint64_t *lat = malloc(j->n * sizeof *lat);
    if (!lat) {
        bench_fail(j->r, "out of memory");
        return;
    }
    hive_sched_stats s0, s1;
    bench_stats(&s0);
    uint64_t t0 = bench_now_ns();
    rc = call_loop(server, j->n, lat);
    uint64_t t1 = bench_now_ns();
    bench_stats(&s1);
    uint64_t final = counter_get(server);
    hive_gs_stop(server, HIVE_NORMAL, CALL_TIMEOUT_MS);
    j->r->n = j->n;
    j->r->seconds = (t1 - t0) / 1e9;
    j->r->syscalls_per_msg = bench_syscalls_per_msg(&s0, &s1);
    if (rc)
        bench_fail(j->r, "call: %s", hive_strerror(rc));
    else if (final != j->n)
        bench_fail(j->r, "counter is %llu, expected %llu", (unsigned long long)final,
                   (unsigned long long)j->n);
    else
        bench_latency(lat, j->n, j->r);
    free(lat);
}

static void b_gen_server_call(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct job j = { .ctx = ctx, .r = r, .n = ctx->quick ? 10000 : 1000000 };
    bench_run(j.ctx, j.r, gen_server_call_main, &j);
}

/* ---------------- gen_server_call_2c ---------------- */

struct client2 {
    hive_pid server, main;
    uint64_t n;
    uint64_t *lat;
};

static void client2_proc(void *arg)
{
    struct client2 *c = arg;
    int rc = call_loop(c->server, c->n, c->lat);
    uint64_t end = bench_now_ns();
    uint64_t msg[2] = { end, (uint64_t)(int64_t)rc };
    hive_send(c->main, G_CLIENT_DONE, msg, sizeof msg);
}

static void gen_server_call_2c_main(void *arg)
{
    struct job *j = arg;
    uint64_t count;
    hive_pid server;
    int rc = hive_gs_start(&COUNTER, &count, NULL, &server);
    if (rc) {
        bench_fail(j->r, "start: %s", hive_strerror(rc));
        return;
    }
    uint64_t per = j->n / 2;
    uint64_t *lat = malloc(2 * per * sizeof *lat);
    if (!lat) {
        bench_fail(j->r, "out of memory");
        return;
    }
    struct client2 c[2];
    hive_sched_stats s0, s1, p0[2] = { { 0 } }, p1[2] = { { 0 } };
    bench_stats(&s0);
    hive_stats(p0, 2, NULL);
    uint64_t t0 = bench_now_ns(), t1 = t0;
    for (int i = 0; i < 2; i++) {
        c[i] = (struct client2){ server, hive_self(), per, lat + i * per };
        hive_spawn(client2_proc, &c[i], NULL);
    }
    for (int i = 0; i < 2; i++) {
        hive_msg *m = bench_recv_tag(G_CLIENT_DONE, 600000);
        if (!m) {
            bench_fail(j->r, "a client did not finish");
            free(lat);
            return;
        }
        uint64_t *v = m->data;
        if (v[0] > t1)
            t1 = v[0];
        if ((int64_t)v[1] != 0)
            rc = (int)(int64_t)v[1];
        hive_msg_free(m);
    }
    bench_stats(&s1);
    hive_stats(p1, 2, NULL);
    /* Where the calls ran: the share of context switches on the busiest
     * scheduler (1.0: the clients and the server shared one core). */
    uint64_t sw0 = p1[0].switches - p0[0].switches, sw1 = p1[1].switches - p0[1].switches;
    snprintf(j->r->extra, sizeof j->r->extra, "\"busiest_sched_share\":%.3f,\"steals\":%llu",
             sw0 + sw1 ? (double)(sw0 > sw1 ? sw0 : sw1) / (double)(sw0 + sw1) : 0.0,
             (unsigned long long)(s1.steals - s0.steals));
    uint64_t final = counter_get(server);
    hive_gs_stop(server, HIVE_NORMAL, CALL_TIMEOUT_MS);
    j->r->n = 2 * per;
    j->r->seconds = (t1 - t0) / 1e9;
    j->r->syscalls_per_msg = bench_syscalls_per_msg(&s0, &s1);
    if (rc)
        bench_fail(j->r, "call: %s", hive_strerror(rc));
    else if (final != 2 * per)
        bench_fail(j->r, "counter is %llu, expected %llu", (unsigned long long)final,
                   (unsigned long long)(2 * per));
    else
        bench_latency(lat, 2 * per, j->r);
    free(lat);
}

static void b_gen_server_call_2c(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct job j = { .ctx = ctx, .r = r, .n = 2 * (ctx->quick ? 5000 : 500000) };
    bench_run(j.ctx, j.r, gen_server_call_2c_main, &j);
}

/* ---------------- call_timeout_storm ---------------- */

#define STORM_CALL_TIMEOUT_MS 5
#define STORM_REPLY_DELAY_MS  20

struct storm {
    hive_pid main;
    uint64_t n, sent;
    hive_pid *clients;     /* every caller, in arrival order */
};

static void storm_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    (void)state;
    /* {:noreply, ...}: a hive timer brings the request back in 20 ms */
    if (hive_send_after(hive_self(), G_REPLY_TO, &from, sizeof from, STORM_REPLY_DELAY_MS, NULL))
        hive_reply(from, G_REQ, NULL, 0);
}

static void storm_info(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)gs;
    struct storm *s = state;
    if (msg->tag == G_REPLY_TO) {
        hive_from from = *(const hive_from *)msg->data;
        hive_reply(from, G_REQ, NULL, 0); /* late: the caller gave up at 5 ms */
        if (s->sent < s->n)
            s->clients[s->sent] = from.pid;
        if (++s->sent == s->n)
            hive_send(s->main, G_ALL_REPLIED, NULL, 0);
    } else if (msg->tag == G_COUNT_LEFTOVER) {
        /* server-to-client order: each client sees this after its reply */
        for (uint64_t i = 0; i < s->sent && i < s->n; i++)
            hive_send(s->clients[i], G_COUNT, NULL, 0);
    }
}

static const hive_gen_server STORM_SERVER = { .handle_call = storm_call,
                                              .handle_info = storm_info };

static void storm_client(void *arg)
{
    struct storm *s = arg;
    hive_pid server = hive_whereis("storm");
    hive_msg *m;
    int rc = hive_call(server, G_REQ, NULL, 0, &m, STORM_CALL_TIMEOUT_MS);
    if (rc == 0)
        hive_msg_free(m);
    hive_send(s->main, G_OUTCOME, &rc, sizeof rc);
    m = bench_recv_tag(G_COUNT, 600000);
    hive_msg_free(m);
    struct hive_process_info pi;
    hive_process_info(hive_self(), &pi);
    uint32_t left = pi.message_queue_len;
    hive_send(s->main, G_LEFT, &left, sizeof left);
}

static void storm_main(void *arg)
{
    struct job *j = arg;
    struct storm st = { .main = hive_self(), .n = j->n };
    st.clients = calloc(j->n, sizeof *st.clients);
    if (!st.clients) {
        bench_fail(j->r, "out of memory");
        return;
    }
    hive_pid server;
    int rc = hive_gs_start(&STORM_SERVER, &st, &(hive_gs_opts){ .name = "storm" }, &server);
    if (rc) {
        bench_fail(j->r, "start: %s", hive_strerror(rc));
        free(st.clients);
        return;
    }
    hive_sched_stats s0, s1;
    bench_stats(&s0);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < j->n; i++) {
        hive_spawn(storm_client, &st, NULL);
        if ((i & 63) == 63)
            hive_yield(); /* let this scheduler run clients and its timers too */
    }
    uint64_t t_spawned = bench_now_ns();
    uint64_t timeouts = 0, outcomes = 0;
    bool replied = false;
    while (outcomes < j->n || !replied) {
        hive_msg *m;
        if (hive_receive(&m, 60000) != 0)
            break;
        if (m->tag == G_OUTCOME) {
            outcomes++;
            timeouts += *(int *)m->data == -ETIMEDOUT;
        } else if (m->tag == G_ALL_REPLIED) {
            replied = true;
        }
        hive_msg_free(m);
    }
    uint64_t t1 = bench_now_ns();
    bench_stats(&s1);
    hive_send(server, G_COUNT_LEFTOVER, NULL, 0);
    uint64_t left = 0, counted = 0;
    for (; counted < outcomes; counted++) {
        hive_msg *m = bench_recv_tag(G_LEFT, 60000);
        if (!m)
            break;
        left += *(uint32_t *)m->data;
        hive_msg_free(m);
    }
    /* every client has taken its G_COUNT, so every late reply has reached
     * its mailbox (and been dropped there) by now */
    hive_sched_stats s2;
    bench_stats(&s2);
    hive_gs_stop(server, HIVE_NORMAL, CALL_TIMEOUT_MS);
    free(st.clients);

    uint64_t dropped = s2.late_replies_dropped - s0.late_replies_dropped;
    uint64_t armed = s1.timers_armed - s0.timers_armed;
    uint64_t sys = s1.syscalls - s0.syscalls;
    double elapsed_ms = (t1 - t0) / 1e6;
    j->r->n = j->n;
    j->r->seconds = (t1 - t0) / 1e9;
    j->r->syscalls_per_msg = bench_syscalls_per_msg(&s0, &s1);
    snprintf(j->r->extra, sizeof j->r->extra,
             "\"timeouts\":%llu,\"late_dropped\":%llu,\"leftover\":%llu,\"elapsed_ms\":%.3f,"
             "\"spawn_ms\":%.3f,\"timers_armed\":%llu,\"syscalls\":%llu,\"parks\":%llu",
             (unsigned long long)timeouts, (unsigned long long)dropped, (unsigned long long)left,
             elapsed_ms, (t_spawned - t0) / 1e6, (unsigned long long)armed,
             (unsigned long long)sys, (unsigned long long)(s1.parks - s0.parks));
    if (!replied)
        bench_fail(j->r, "server sent %llu of %llu replies", (unsigned long long)st.sent,
                   (unsigned long long)j->n);
    else if (timeouts != j->n)
        bench_fail(j->r, "%llu of %llu calls timed out", (unsigned long long)timeouts,
                   (unsigned long long)j->n);
    else if (counted != j->n)
        bench_fail(j->r, "%llu of %llu clients reported their mailbox",
                   (unsigned long long)counted, (unsigned long long)j->n);
    else if (left != 0)
        bench_fail(j->r, "%llu late replies left in client mailboxes", (unsigned long long)left);
}

static void b_call_timeout_storm(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct job j = { .ctx = ctx, .r = r, .n = ctx->quick ? 1000 : 10000 };
    bench_run(j.ctx, j.r, storm_main, &j);
}

/* ---------------- spawn_idle_servers ---------------- */

static void idle_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)req;
    uint64_t id = (uint64_t)(uintptr_t)state;
    hive_reply(from, G_WHOAMI, &id, sizeof id);
}

static const hive_gen_server IDLE = { .handle_call = idle_call }; /* state = its index */

static void idle_main(void *arg)
{
    struct job *j = arg;
    hive_pid *pids = malloc(j->n * sizeof *pids);
    if (!pids) {
        bench_fail(j->r, "out of memory");
        return;
    }
    size_t r0 = bench_rss_bytes();
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < j->n; i++) {
        int rc = hive_gs_start(&IDLE, (void *)(uintptr_t)i, NULL, &pids[i]);
        if (rc) {
            bench_fail(j->r, "start %llu: %s", (unsigned long long)i, hive_strerror(rc));
            j->n = i;
            break;
        }
    }
    uint64_t t1 = bench_now_ns();
    size_t r1 = bench_rss_bytes();
    /* - the pid array is ours, not the servers' */
    double per = ((double)r1 - (double)r0 - (double)(j->n * sizeof *pids)) / (double)j->n;
    uint64_t bad = 0;
    for (uint64_t i = 0; i < j->n; i += 1000) {
        hive_msg *m;
        if (hive_call(pids[i], G_WHOAMI, NULL, 0, &m, CALL_TIMEOUT_MS) != 0) {
            bad++;
            continue;
        }
        bad += *(uint64_t *)m->data != i;
        hive_msg_free(m);
    }
    for (uint64_t i = 0; i < j->n; i++)
        hive_kill(pids[i], HIVE_SHUTDOWN); /* hive_main waits for them all */
    free(pids);
    j->r->n = j->n;
    j->r->seconds = (t1 - t0) / 1e9;
    j->r->bytes_per_proc = per;
    if (bad)
        bench_fail(j->r, "%llu servers answered wrongly", (unsigned long long)bad);
}

static void b_spawn_idle_servers(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct job j = { .ctx = ctx, .r = r, .n = ctx->quick ? 10000 : 1000000 };
    bench_run(j.ctx, j.r, idle_main, &j);
}

const struct bench_def bench_gs_defs[] = {
    { "gen_server_call", "calls",
      "One client makes 1,000,000 sequential calls (quick: 10,000) to a counter gen_server, "
      "each with OTP's default 5 s timeout and each timed; p50/p99/p999 in us. Verifies the "
      "final count.",
      b_gen_server_call },
    { "gen_server_call_2c", "calls",
      "Two clients each make 500,000 calls (quick: 5,000) to the same counter; elapsed until "
      "the last client is done. Verifies the final count. Reports busiest_sched_share (the "
      "share of context switches on the busiest scheduler) and steals.",
      b_gen_server_call_2c },
    { "call_timeout_storm", "calls",
      "10,000 clients (quick: 1,000) each call one server once with a 5 ms timeout; the server "
      "answers each request 20 ms later with a deferred reply driven by hive_send_after, so "
      "every call times out and every reply is late. Reports elapsed_ms (floor 20; spawning "
      "the clients is inside it, spawn_ms says how much), timeouts, late replies dropped "
      "(hive_stats), messages left in the clients' mailboxes (must be 0), and timers armed "
      "against system calls made.",
      b_call_timeout_storm },
    { "spawn_idle_servers", "servers",
      "Starts 1,000,000 idle gen_servers (quick: 10,000) one after another with "
      "hive_gs_start; start rate and resident bytes per server (VmRSS). Every 1000th server "
      "is called and must answer its index.",
      b_spawn_idle_servers },
};
const unsigned bench_gs_count = sizeof bench_gs_defs / sizeof bench_gs_defs[0];
