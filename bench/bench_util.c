#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

void bench_config(const struct bench_ctx *ctx, hive_config *cfg)
{
    hive_config_default(cfg);
    if (hive_config_from_env(cfg) != 0)
        exit(2);
    if (ctx->schedulers)
        cfg->schedulers = ctx->schedulers;
    cfg->max_processes = 1u << 22;
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %zu kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void bench_latency(uint64_t *s, size_t n, struct bench_result *r)
{
    if (!n)
        return;
    qsort(s, n, sizeof *s, cmp_u64);
    r->p50_us = s[n / 2] / 1000.0;
    r->p99_us = s[(size_t)(n * 0.99)] / 1000.0;
    r->p999_us = s[(size_t)(n * 0.999)] / 1000.0;
}

void bench_stats(hive_sched_stats *total)
{
    hive_stats(NULL, 0, total);
}

double bench_syscalls_per_msg(const hive_sched_stats *a, const hive_sched_stats *b)
{
    uint64_t msgs = b->msgs_sent - a->msgs_sent;
    uint64_t sys = b->syscalls - a->syscalls;
    return msgs ? (double)sys / (double)msgs : 0.0;
}

void bench_fail(struct bench_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->ok = false;
}

void bench_run(const struct bench_ctx *ctx, struct bench_result *r, void (*body)(void *),
               void *arg)
{
    hive_config cfg;
    bench_config(ctx, &cfg);
    int rc = hive_main(&cfg, body, arg);
    if (rc)
        bench_fail(r, "hive_main: %s", hive_strerror(rc));
}

static bool match_tag(const hive_msg *m, void *ctx)
{
    return m->tag == *(uint32_t *)ctx;
}

hive_msg *bench_recv_tag(uint32_t tag, int64_t timeout_ms)
{
    hive_msg *m = NULL;
    if (hive_receive_if(match_tag, &tag, &m, timeout_ms) != 0)
        return NULL;
    return m;
}
