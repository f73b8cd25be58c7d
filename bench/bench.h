/*
 * hive-bench workloads: each one starts its own runtime (hive_main), does
 * its work, verifies the result, and fills a bench_result. The driver
 * (hive_bench.c) prints one JSON line per run and a table.
 */
#ifndef HIVE_BENCH_H
#define HIVE_BENCH_H

#include <hive.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bench_ctx {
    bool     quick;        /* small parameters (smoke test) */
    unsigned schedulers;   /* 0 = one per CPU (or HIVE_SCHEDULERS) */
};

struct bench_result {
    uint64_t n;            /* operations done (the unit's count) */
    double   seconds;      /* timed part */
    bool     ok;           /* verification passed */
    char     error[160];   /* why not ok */
    double   bytes_per_proc;      /* < 0: not measured */
    double   p50_us, p99_us, p999_us; /* < 0: not measured */
    double   syscalls_per_msg;    /* < 0: not measured */
    char     extra[256];   /* more JSON members, without braces: "\"timeouts\":10000,..." */
};

struct bench_def {
    const char *name;
    const char *unit;      /* "round_trips", "hops", "processes", ... */
    const char *help;      /* one paragraph for --help: what it does, its parameters */
    void (*run)(const struct bench_ctx *, struct bench_result *);
};

/* The runtime config every workload starts from: defaults, then the
 * environment (HIVE_*), then ctx->schedulers. */
void bench_config(const struct bench_ctx *ctx, hive_config *cfg);
uint64_t bench_now_ns(void);
/* Resident set size of this process, from /proc/self/status (VmRSS). */
size_t bench_rss_bytes(void);
/* Sorts samples (ns) and fills p50/p99/p999 in µs. */
void bench_latency(uint64_t *samples_ns, size_t n, struct bench_result *r);
/* Totals of hive_stats (call inside the runtime). */
void bench_stats(hive_sched_stats *total);
/* syscalls per message between two snapshots (sent messages as the base). */
double bench_syscalls_per_msg(const hive_sched_stats *a, const hive_sched_stats *b);
/* Runs body(arg) as the main process of a runtime configured by
 * bench_config; a failed start marks r failed. */
void bench_run(const struct bench_ctx *ctx, struct bench_result *r, void (*body)(void *),
               void *arg);
/* The first message with this tag (others stay queued), or NULL on timeout. */
hive_msg *bench_recv_tag(uint32_t tag, int64_t timeout_ms);
void bench_fail(struct bench_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

extern const struct bench_def bench_core_defs[];
extern const unsigned bench_core_count;
#ifdef HIVE_BENCH_GS
extern const struct bench_def bench_gs_defs[];
extern const unsigned bench_gs_count;
#endif
#ifdef HIVE_BENCH_OTP
extern const struct bench_def bench_otp_defs[];
extern const unsigned bench_otp_count;
#endif

#endif
