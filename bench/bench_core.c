/* Core workloads: message passing, spawning, scheduling. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench.h"

enum { T_PING = 1, T_PONG, T_TOKEN, T_NEXT, T_DONE, T_GO, T_RESULT, T_DATA };

/* Runs body as the main process and fills the common fields. */
struct job {
    const struct bench_ctx *ctx;
    struct bench_result *r;
    uint64_t n;
    hive_sched_stats s0, s1;
};

/* ---------------- ping_pong ---------------- */

static void pong_proc(void *arg)
{
    (void)arg;
    for (;;) {
        hive_msg *m;
        if (hive_receive(&m, HIVE_INFINITY))
            return;
        uint64_t v = *(uint64_t *)m->data;
        hive_pid from = m->from;
        hive_msg_free(m);
        if (v == 0)
            return;
        hive_send(from, T_PONG, &v, sizeof v);
    }
}

static void ping_pong_main(void *arg)
{
    struct job *j = arg;
    hive_pid pong;
    hive_spawn(pong_proc, NULL, &pong);
    uint64_t sum = 0;
    bench_stats(&j->s0);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 1; i <= j->n; i++) {
        hive_send(pong, T_PING, &i, sizeof i);
        hive_msg *m;
        hive_receive(&m, HIVE_INFINITY);
        sum += *(uint64_t *)m->data;
        hive_msg_free(m);
    }
    uint64_t t1 = bench_now_ns();
    bench_stats(&j->s1);
    uint64_t zero = 0;
    hive_send(pong, T_PING, &zero, sizeof zero);
    j->r->seconds = (t1 - t0) / 1e9;
    j->r->n = j->n;
    j->r->syscalls_per_msg = bench_syscalls_per_msg(&j->s0, &j->s1);
    if (sum != j->n * (j->n + 1) / 2)
        bench_fail(j->r, "checksum %llu", (unsigned long long)sum);
}

static void b_ping_pong(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct job j = { .ctx = ctx, .r = r, .n = ctx->quick ? 10000 : 1000000 };
    bench_run(j.ctx, j.r, ping_pong_main, &j);
}

/* ---------------- thread_ring ---------------- */

#define RING 503
static struct {
    hive_pid main;
    _Atomic uint64_t hops;
} ring;

static void ring_proc(void *arg)
{
    (void)arg;
    hive_msg *m = bench_recv_tag(T_NEXT, HIVE_INFINITY);
    hive_pid next = *(hive_pid *)m->data;
    hive_msg_free(m);
    for (;;) {
        if (hive_receive(&m, HIVE_INFINITY))
            return;
        uint64_t v = *(uint64_t *)m->data;
        hive_msg_free(m);
        if (v == 0) {
            hive_send(ring.main, T_DONE, NULL, 0);
            continue;
        }
        v--;
        hive_send(next, T_TOKEN, &v, sizeof v);
    }
}

static void thread_ring_main(void *arg)
{
    struct job *j = arg;
    ring.main = hive_self();
    hive_pid pids[RING];
    for (int i = 0; i < RING; i++)
        hive_spawn(ring_proc, NULL, &pids[i]);
    for (int i = 0; i < RING; i++)
        hive_send(pids[i], T_NEXT, &pids[(i + 1) % RING], sizeof(hive_pid));
    bench_stats(&j->s0);
    uint64_t t0 = bench_now_ns();
    uint64_t v = j->n;
    hive_send(pids[0], T_TOKEN, &v, sizeof v);
    hive_msg *m = bench_recv_tag(T_DONE, HIVE_INFINITY);
    uint64_t t1 = bench_now_ns();
    bench_stats(&j->s1);
    hive_msg_free(m);
    j->r->seconds = (t1 - t0) / 1e9;
    j->r->n = j->n;
    j->r->syscalls_per_msg = bench_syscalls_per_msg(&j->s0, &j->s1);
    /* The token went around n times: verified by the countdown reaching 0
     * exactly at the process that reports it (the (n % RING)-th). */
    if (m->from != pids[j->n % RING])
        bench_fail(j->r, "token ended at the wrong process");
}

static void b_thread_ring(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct job j = { .ctx = ctx, .r = r, .n = ctx->quick ? 100000 : 10000000 };
    bench_run(j.ctx, j.r, thread_ring_main, &j);
}

/* ---------------- spawn ---------------- */

static struct {
    _Atomic uint64_t started, finished;
} sp;

static void blocked_proc(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&sp.started, 1, memory_order_relaxed);
    hive_msg *m;
    if (hive_receive(&m, HIVE_INFINITY) == 0) {
        hive_msg_free(m);
        atomic_fetch_add_explicit(&sp.finished, 1, memory_order_relaxed);
    }
}

/* The page-fault floor: touch one fresh page per "process". */
static double pagefault_floor(uint64_t n)
{
    size_t len = (size_t)n * 4096;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED)
        return -1;
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < len; i += 4096)
        p[i] = 1;
    uint64_t t1 = bench_now_ns();
    munmap(p, len);
    return n / ((t1 - t0) / 1e9);
}

static void spawn_main(void *arg)
{
    struct job *j = arg;
    atomic_store(&sp.started, 0);
    atomic_store(&sp.finished, 0);
    hive_pid *pids = malloc(j->n * sizeof *pids);
    size_t rss0 = bench_rss_bytes();
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < j->n; i++) {
        if (hive_spawn(blocked_proc, NULL, &pids[i])) {
            bench_fail(j->r, "spawn %llu failed", (unsigned long long)i);
            j->n = i;
            break;
        }
    }
    /* Timed until every process has run and blocked in its receive. */
    while (atomic_load_explicit(&sp.started, memory_order_relaxed) < j->n)
        hive_yield();
    uint64_t t1 = bench_now_ns();
    size_t rss1 = bench_rss_bytes();
    for (uint64_t i = 0; i < j->n; i++)
        hive_send(pids[i], T_GO, NULL, 0);
    while (atomic_load_explicit(&sp.finished, memory_order_relaxed) < j->n)
        hive_yield();
    free(pids);
    j->r->seconds = (t1 - t0) / 1e9;
    j->r->n = j->n;
    j->r->bytes_per_proc = (double)(rss1 - rss0) / (double)j->n;
}

static void b_spawn(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct job j = { .ctx = ctx, .r = r, .n = ctx->quick ? 10000 : 1000000 };
    double floor = pagefault_floor(j.n);
    bench_run(j.ctx, j.r, spawn_main, &j);
    snprintf(r->extra, sizeof r->extra, "\"pagefault_floor_per_s\":%.0f", floor);
}

/* ---------------- fork_join ---------------- */

static hive_pid fj_parent;

static void task_proc(void *arg)
{
    uint64_t v = (uint64_t)(uintptr_t)arg * 2 + 1;
    hive_send(fj_parent, T_RESULT, &v, sizeof v);
}

static void fork_join_main(void *arg)
{
    struct job *j = arg;
    fj_parent = hive_self();
    bench_stats(&j->s0);
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < j->n; i++) {
        if (hive_spawn(task_proc, (void *)(uintptr_t)i, NULL)) {
            bench_fail(j->r, "spawn failed");
            return;
        }
    }
    uint64_t sum = 0;
    for (uint64_t i = 0; i < j->n; i++) {
        hive_msg *m;
        hive_receive(&m, HIVE_INFINITY);
        sum += *(uint64_t *)m->data;
        hive_msg_free(m);
    }
    uint64_t t1 = bench_now_ns();
    bench_stats(&j->s1);
    j->r->seconds = (t1 - t0) / 1e9;
    j->r->n = j->n;
    j->r->syscalls_per_msg = bench_syscalls_per_msg(&j->s0, &j->s1);
    snprintf(j->r->extra, sizeof j->r->extra, "\"steals\":%llu,\"parks\":%llu",
             (unsigned long long)(j->s1.steals - j->s0.steals),
             (unsigned long long)(j->s1.parks - j->s0.parks));
    if (sum != j->n * j->n)
        bench_fail(j->r, "sum %llu != n^2", (unsigned long long)sum);
}

static void b_fork_join(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct job j = { .ctx = ctx, .r = r, .n = ctx->quick ? 10000 : 1000000 };
    bench_run(j.ctx, j.r, fork_join_main, &j);
}

/* ---------------- send_throughput ---------------- */

#define SENDERS 4
static struct {
    hive_pid receiver, main;
    uint64_t per;
} st;

static void sender_proc(void *arg)
{
    (void)arg;
    for (uint64_t i = 1; i <= st.per; i++)
        hive_send(st.receiver, T_DATA, &i, sizeof i);
}

static void receiver_proc(void *arg)
{
    (void)arg;
    uint64_t total = st.per * SENDERS, sum = 0;
    for (uint64_t i = 0; i < total; i++) {
        hive_msg *m;
        hive_receive(&m, HIVE_INFINITY);
        sum += *(uint64_t *)m->data;
        hive_msg_free(m);
    }
    hive_send(st.main, T_DONE, &sum, sizeof sum);
}

static void send_throughput_main(void *arg)
{
    struct job *j = arg;
    st.main = hive_self();
    st.per = j->n / SENDERS;
    hive_spawn(receiver_proc, NULL, &st.receiver);
    bench_stats(&j->s0);
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < SENDERS; i++)
        hive_spawn(sender_proc, NULL, NULL);
    hive_msg *m = bench_recv_tag(T_DONE, HIVE_INFINITY);
    uint64_t t1 = bench_now_ns();
    bench_stats(&j->s1);
    uint64_t sum = *(uint64_t *)m->data;
    hive_msg_free(m);
    j->r->seconds = (t1 - t0) / 1e9;
    j->r->n = st.per * SENDERS;
    j->r->syscalls_per_msg = bench_syscalls_per_msg(&j->s0, &j->s1);
    snprintf(j->r->extra, sizeof j->r->extra,
             "\"backpressure_yields\":%llu,\"steals\":%llu,\"flood_moves\":%llu",
             (unsigned long long)(j->s1.backpressure_yields - j->s0.backpressure_yields),
             (unsigned long long)(j->s1.steals - j->s0.steals),
             (unsigned long long)(j->s1.flood_moves - j->s0.flood_moves));
    if (sum != SENDERS * (st.per * (st.per + 1) / 2))
        bench_fail(j->r, "checksum mismatch");
}

static void b_send_throughput(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct job j = { .ctx = ctx, .r = r, .n = SENDERS * (ctx->quick ? 10000 : 1000000) };
    bench_run(j.ctx, j.r, send_throughput_main, &j);
}

const struct bench_def bench_core_defs[] = {
    { "ping_pong", "round_trips",
      "Two processes bounce a counter: 1,000,000 round trips (quick: 10,000). Verifies the sum.",
      b_ping_pong },
    { "thread_ring", "hops",
      "503 processes in a ring pass a token 10,000,000 hops (quick: 100,000). Verifies where "
      "the countdown ends.",
      b_thread_ring },
    { "spawn", "processes",
      "Spawns 1,000,000 processes (quick: 10,000) that each block in a receive; timed until "
      "all are blocked. Reports resident bytes per process (VmRSS) and the page-fault floor "
      "(one fresh page touched per process) measured in the same run.",
      b_spawn },
    { "fork_join", "tasks",
      "Spawns 1,000,000 short tasks (quick: 10,000) that each send i*2+1 to the parent; the "
      "parent joins them all and verifies the sum is n^2.",
      b_fork_join },
    { "send_throughput", "messages",
      "4 senders each send 1,000,000 messages (quick: 10,000) to one receiver. Verifies "
      "count and sum. Reports backpressure_yields (sends that found the receiver "
      "flooded), steals and flood_moves (senders moved to the receiver's scheduler).",
      b_send_throughput },
};
const unsigned bench_core_count = sizeof bench_core_defs / sizeof bench_core_defs[0];
