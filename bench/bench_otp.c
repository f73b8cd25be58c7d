/*
 * Supervisor and task workloads: restarts, task async/await, async_stream
 * and a factorial in chunks. Each mirrors the workload of the same name in
 * bench/peers (Erlang's supervisor and processes, Go's goroutines).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HIVE_BENCH_GMP
#include <gmp.h>
#endif

#include "bench.h"

enum { O_STARTED = 1, O_CRASH };

struct ojob {
    const struct bench_ctx *ctx;
    struct bench_result *r;
    uint64_t n;
};

/* Peak resident set (VmHWM) in bytes. */
static size_t peak_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    size_t kb = 0;
    char line[256];
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %zu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

/* ---------------- supervisor_restart ---------------- */

static hive_pid sr_client;

static int sr_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    hive_pid me = hive_self();
    hive_send(sr_client, O_STARTED, &me, sizeof me);
    *state = arg;
    return 0;
}

static void sr_cast(hive_gs *gs, void *state, const hive_msg *msg)
{
    (void)state;
    if (msg->tag == O_CRASH)
        hive_gs_stop_self(gs, (hive_reason)42); /* {stop, crash, State} */
}

static const hive_gen_server SR_WORKER = { .init = sr_init, .handle_cast = sr_cast };

static int sr_start(void *arg, hive_pid *out)
{
    return hive_gs_start(&SR_WORKER, arg, &(hive_gs_opts){ .flags = HIVE_LINK }, out);
}

static void supervisor_restart_main(void *arg)
{
    struct ojob *j = arg;
    sr_client = hive_self();
    hive_child_spec spec = { .id = "worker", .start = sr_start };
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.intensity = (int)j->n + 1;
    o.period_ms = 1000; /* as the peers: OTP keeps every restart within the period in a list */
    hive_pid sup;
    int rc = hive_sup_start(&spec, 1, &o, &sup);
    if (rc) {
        bench_fail(j->r, "sup_start: %s", hive_strerror(rc));
        return;
    }
    hive_msg *m = bench_recv_tag(O_STARTED, 10000);
    if (!m) {
        bench_fail(j->r, "no worker");
        return;
    }
    hive_pid w = *(hive_pid *)m->data;
    hive_msg_free(m);
    hive_sched_stats s0, s1;
    bench_stats(&s0);
    uint64_t t0 = bench_now_ns();
    uint64_t done = 0;
    for (; done < j->n; done++) {
        hive_cast(w, O_CRASH, NULL, 0);
        m = bench_recv_tag(O_STARTED, 10000);
        if (!m)
            break;
        hive_pid nw = *(hive_pid *)m->data;
        hive_msg_free(m);
        if (nw == w)
            break;
        w = nw;
    }
    uint64_t t1 = bench_now_ns();
    bench_stats(&s1);
    hive_child_info info;
    int nc = hive_sup_which_children(sup, &info, 1);
    hive_gs_stop(sup, HIVE_SHUTDOWN, 10000);
    j->r->n = done;
    j->r->seconds = (t1 - t0) / 1e9;
    snprintf(j->r->extra, sizeof j->r->extra, "\"syscalls_per_restart\":%.4f",
             done ? (double)(s1.syscalls - s0.syscalls) / (double)done : 0.0);
    if (done != j->n)
        bench_fail(j->r, "%llu of %llu restarts", (unsigned long long)done, (unsigned long long)j->n);
    else if (nc != 1 || info.pid != w)
        bench_fail(j->r, "the supervisor does not list the last worker");
}

static void b_supervisor_restart(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct ojob j = { .ctx = ctx, .r = r, .n = ctx->quick ? 1000 : 100000 };
    bench_run(j.ctx, j.r, supervisor_restart_main, &j);
}

/* ---------------- task_async_await ---------------- */

#define BATCH 1000

static void *twice_plus_one(void *arg)
{
    return (void *)((uintptr_t)arg * 2 + 1);
}

static void task_async_await_main(void *arg)
{
    struct ojob *j = arg;
    static hive_task t[BATCH];
    uint64_t sum = 0;
    hive_sched_stats s0, s1;
    bench_stats(&s0);
    uint64_t t0 = bench_now_ns();
    for (uint64_t base = 0; base < j->n; base += BATCH) {
        uint64_t k = j->n - base < BATCH ? j->n - base : BATCH;
        for (uint64_t i = 0; i < k; i++) {
            int rc = hive_task_async(twice_plus_one, (void *)(uintptr_t)(base + i), &t[i]);
            if (rc) {
                bench_fail(j->r, "async: %s", hive_strerror(rc));
                return;
            }
        }
        for (uint64_t i = 0; i < k; i++) {
            void *res;
            int rc = hive_task_await(&t[i], 5000, &res);
            if (rc) {
                bench_fail(j->r, "await: %s", hive_strerror(rc));
                return;
            }
            sum += (uintptr_t)res;
        }
    }
    uint64_t t1 = bench_now_ns();
    bench_stats(&s1);
    j->r->n = j->n;
    j->r->seconds = (t1 - t0) / 1e9;
    snprintf(j->r->extra, sizeof j->r->extra, "\"steals\":%llu,\"parks\":%llu",
             (unsigned long long)(s1.steals - s0.steals),
             (unsigned long long)(s1.parks - s0.parks));
    if (sum != j->n * j->n)
        bench_fail(j->r, "sum %llu != n^2", (unsigned long long)sum);
}

static void b_task_async_await(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct ojob j = { .ctx = ctx, .r = r, .n = ctx->quick ? 10000 : 1000000 };
    bench_run(j.ctx, j.r, task_async_await_main, &j);
}

/* ---------------- async_stream ---------------- */

static void *stream_item(void *ctx, size_t i)
{
    (void)ctx;
    return (void *)(uintptr_t)(i * 2 + 1);
}

static void async_stream_main(void *arg)
{
    struct ojob *j = arg;
    hive_stream *s;
    hive_sched_stats s0, s1;
    bench_stats(&s0);
    uint64_t t0 = bench_now_ns();
    int rc = hive_task_async_stream(j->n, stream_item, NULL, NULL, &s);
    if (rc) {
        bench_fail(j->r, "async_stream: %s", hive_strerror(rc));
        return;
    }
    uint64_t sum = 0, got = 0;
    size_t idx;
    void *res;
    size_t rss_10 = 0;
    while ((rc = hive_stream_next(s, &idx, &res)) == 1) {
        if (idx != got) {
            rc = -EINVAL;
            break;
        }
        sum += (uintptr_t)res;
        if (++got == j->n / 10)
            rss_10 = bench_rss_bytes();
    }
    hive_stream_close(s);
    uint64_t t1 = bench_now_ns();
    bench_stats(&s1);
    size_t rss_end = bench_rss_bytes();
    j->r->n = got;
    j->r->seconds = (t1 - t0) / 1e9;
    snprintf(j->r->extra, sizeof j->r->extra,
             "\"peak_rss_mb\":%.1f,\"rss_at_10pct_mb\":%.1f,\"rss_at_end_mb\":%.1f,"
             "\"steals\":%llu,\"parks\":%llu",
             peak_rss_bytes() / 1048576.0, rss_10 / 1048576.0, rss_end / 1048576.0,
             (unsigned long long)(s1.steals - s0.steals),
             (unsigned long long)(s1.parks - s0.parks));
    if (rc < 0)
        bench_fail(j->r, "next: %s", hive_strerror(rc));
    else if (got != j->n || sum != j->n * j->n)
        bench_fail(j->r, "%llu items, sum %llu != n^2", (unsigned long long)got,
                   (unsigned long long)sum);
}

static void b_async_stream(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct ojob j = { .ctx = ctx, .r = r, .n = ctx->quick ? 10000 : 1000000 };
    const char *e = getenv("HIVE_BENCH_STREAM_N");
    if (e && *e && !ctx->quick)
        j.n = strtoull(e, NULL, 10);
    bench_run(j.ctx, j.r, async_stream_main, &j);
}

/* ---------------- factorial_chunks ---------------- */

#ifdef HIVE_BENCH_GMP
#define FACT_N 10000
#define CHUNK 10

static void *chunk_product(void *arg)
{
    unsigned long first = (unsigned long)(uintptr_t)arg;
    mpz_t *p = malloc(sizeof *p);
    if (!p)
        return NULL;
    mpz_init_set_ui(*p, first);
    for (unsigned long k = first + 1; k < first + CHUNK; k++)
        mpz_mul_ui(*p, *p, k);
    return p;
}

static void factorial_chunks_main(void *arg)
{
    struct ojob *j = arg;
    uint64_t rounds = j->n;
    uint64_t t0 = bench_now_ns();
    size_t digits = 0;
    for (uint64_t round = 0; round < rounds; round++) {
        static hive_task t[FACT_N / CHUNK];
        for (unsigned c = 0; c < FACT_N / CHUNK; c++) {
            int rc = hive_task_async(chunk_product, (void *)(uintptr_t)(c * CHUNK + 1), &t[c]);
            if (rc) {
                bench_fail(j->r, "async: %s", hive_strerror(rc));
                return;
            }
        }
        mpz_t acc;
        mpz_init_set_ui(acc, 1);
        for (unsigned c = 0; c < FACT_N / CHUNK; c++) {
            void *res;
            int rc = hive_task_await(&t[c], 5000, &res);
            if (rc || !res) {
                bench_fail(j->r, "await: %s", hive_strerror(rc));
                mpz_clear(acc);
                return;
            }
            mpz_t *p = res;
            mpz_mul(acc, acc, *p);
            mpz_clear(*p);
            free(p);
        }
        char *str = mpz_get_str(NULL, 10, acc);
        digits = strlen(str);
        free(str);
        mpz_clear(acc);
        if (digits != 35660) {
            bench_fail(j->r, "10000! has %zu digits, not 35660", digits);
            return;
        }
    }
    uint64_t t1 = bench_now_ns();
    j->r->n = rounds;
    j->r->seconds = (t1 - t0) / 1e9;
    snprintf(j->r->extra, sizeof j->r->extra, "\"digits\":%zu,\"tasks_per_round\":%d", digits,
             FACT_N / CHUNK);
}

static void b_factorial_chunks(const struct bench_ctx *ctx, struct bench_result *r)
{
    struct ojob j = { .ctx = ctx, .r = r, .n = ctx->quick ? 5 : 100 };
    bench_run(j.ctx, j.r, factorial_chunks_main, &j);
}
#endif

const struct bench_def bench_otp_defs[] = {
    { "supervisor_restart", "restarts",
      "A one_for_one supervisor with one permanent gen_server worker; the client casts the "
      "worker a crash ({stop, crash}) and waits for the restarted one's hello from its init, "
      "100,000 times (quick: 1,000). Verifies every restart gave a new pid and the "
      "supervisor lists the last one; reports system calls per restart.",
      b_supervisor_restart },
    { "task_async_await", "tasks",
      "1,000,000 tasks (quick: 10,000) started with hive_task_async and awaited in order in "
      "batches of 1,000; each returns i*2+1. Verifies the sum (n^2).",
      b_task_async_await },
    { "async_stream", "items",
      "1,000,000 items (quick: 10,000; HIVE_BENCH_STREAM_N overrides) through "
      "hive_task_async_stream, ordered, max_concurrency = schedulers; each returns i*2+1. "
      "Verifies order and the sum; reports peak RSS and RSS at 10% and at the end.",
      b_async_stream },
#ifdef HIVE_BENCH_GMP
    { "factorial_chunks", "rounds",
      "10000! as 1,000 chunks of 10 factors, each chunk's product by its own task (GMP), the "
      "products multiplied together in order; 100 rounds (quick: 5). Verifies 35,660 digits.",
      b_factorial_chunks },
#endif
};
const unsigned bench_otp_count = sizeof bench_otp_defs / sizeof bench_otp_defs[0];
