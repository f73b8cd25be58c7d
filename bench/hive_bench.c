/*
 * hive-bench: runs named workloads, prints one JSON line per run and (unless
 * --json) a readable table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static const struct bench_def *all[64];
static unsigned nall;

static void collect(void)
{
    for (unsigned i = 0; i < bench_core_count; i++)
        all[nall++] = &bench_core_defs[i];
#ifdef HIVE_BENCH_GS
    for (unsigned i = 0; i < bench_gs_count; i++)
        all[nall++] = &bench_gs_defs[i];
#endif
#ifdef HIVE_BENCH_OTP
    for (unsigned i = 0; i < bench_otp_count; i++)
        all[nall++] = &bench_otp_defs[i];
#endif
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hive-bench [--only NAME[,NAME...]] [--json] [--repeat N] [--quick]\n"
            "                  [--schedulers N[,N...]] [--list] [--help]\n\n"
            "  --only NAMES      run only these workloads\n"
            "  --json            print only the JSON lines (one per run)\n"
            "  --repeat N        run each workload N times (default 1)\n"
            "  --quick           small parameters: the whole suite in a few seconds\n"
            "  --schedulers LIST run each workload at each scheduler count (scaling curve)\n"
            "  --list            list the workloads\n\n"
            "Each JSON line: {\"runtime\":\"hive\",\"bench\":NAME,\"n\":N,\"seconds\":S,\n"
            "  \"rate_per_s\":R,\"unit\":U,\"ok\":true|false,\"schedulers\":K, ...} plus, where\n"
            "  measured, bytes_per_proc, p50_us/p99_us/p999_us, syscalls_per_msg and\n"
            "  workload-specific members. A run whose verification fails has ok:false\n"
            "  and an error member.\n\n"
            "Runtime flags (environment, see README): HIVE_SCHEDULERS, HIVE_PIN,\n"
            "  HIVE_SPIN_US, HIVE_SQPOLL, HIVE_STACK_SIZE, HIVE_RING_ENTRIES,\n"
            "  HIVE_MAX_MESSAGE, HIVE_BUDGET, HIVE_SHUTDOWN_MS, HIVE_GUARD_STACKS,\n"
            "  HIVE_BACKPRESSURE, HIVE_FLOOD_MOVE, HIVE_STEAL_GRACE_US, HIVE_TRIM_MS.\n\n"
            "Workloads:\n");
    for (unsigned i = 0; i < nall; i++)
        fprintf(f, "  %-20s %s\n", all[i]->name, all[i]->help);
}

static bool selected(const char *only, const char *name)
{
    if (!only)
        return true;
    size_t n = strlen(name);
    for (const char *p = only; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n))
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

static void human(double v, char *buf, size_t len)
{
    if (v >= 1e9)
        snprintf(buf, len, "%.2fG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, len, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, len, "%.1fk", v / 1e3);
    else
        snprintf(buf, len, "%.1f", v);
}

static unsigned effective_schedulers(unsigned asked)
{
    if (asked)
        return asked;
    hive_config cfg;
    hive_config_default(&cfg);
    if (hive_config_from_env(&cfg) == 0 && cfg.schedulers)
        return cfg.schedulers;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

int main(int argc, char **argv)
{
    collect();
    const char *only = NULL, *scheds = NULL;
    bool json = false, quick = false;
    int repeat = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(a, "--json"))
            json = true;
        else if (!strcmp(a, "--quick"))
            quick = true;
        else if (!strcmp(a, "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(a, "--schedulers") && i + 1 < argc)
            scheds = argv[++i];
        else if (!strcmp(a, "--list")) {
            for (unsigned k = 0; k < nall; k++)
                printf("%s\n", all[k]->name);
            return 0;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "hive-bench: unknown argument '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (repeat < 1) {
        fprintf(stderr, "hive-bench: --repeat needs a positive count\n");
        return 2;
    }
    if (only) {
        /* every name must exist */
        for (const char *p = only; *p;) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            bool found = false;
            for (unsigned k = 0; k < nall; k++)
                if (strlen(all[k]->name) == len && !strncmp(all[k]->name, p, len))
                    found = true;
            if (!found) {
                fprintf(stderr, "hive-bench: no workload named '%.*s' (see --list)\n", (int)len, p);
                return 2;
            }
            if (!e)
                break;
            p = e + 1;
        }
    }
    unsigned sched_list[32], nsched = 0;
    if (scheds) {
        for (const char *p = scheds; *p && nsched < 32;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 1 || v > 1024) {
                fprintf(stderr, "hive-bench: bad --schedulers list '%s'\n", scheds);
                return 2;
            }
            sched_list[nsched++] = (unsigned)v;
            p = *end == ',' ? end + 1 : end;
        }
    } else {
        sched_list[nsched++] = 0;
    }

    int failed = 0;
    if (!json)
        printf("%-20s %5s %12s %14s %10s %10s %10s %s\n", "workload", "sch", "n", "rate/s", "B/proc",
               "p99 us", "sys/msg", "");
    for (unsigned k = 0; k < nall; k++) {
        const struct bench_def *d = all[k];
        if (!selected(only, d->name))
            continue;
        for (unsigned si = 0; si < nsched; si++) {
            for (int rep = 0; rep < repeat; rep++) {
                struct bench_ctx ctx = { .quick = quick, .schedulers = sched_list[si] };
                struct bench_result r;
                memset(&r, 0, sizeof r);
                r.ok = true;
                r.bytes_per_proc = r.p50_us = r.p99_us = r.p999_us = r.syscalls_per_msg = -1;
                d->run(&ctx, &r);
                double rate = r.seconds > 0 ? r.n / r.seconds : 0;
                unsigned nsch = effective_schedulers(sched_list[si]);
                printf("{\"runtime\":\"hive\",\"bench\":\"%s\",\"n\":%llu,\"seconds\":%.6f,"
                       "\"rate_per_s\":%.1f,\"unit\":\"%s\",\"ok\":%s,\"schedulers\":%u",
                       d->name, (unsigned long long)r.n, r.seconds, rate, d->unit,
                       r.ok ? "true" : "false", nsch);
                if (r.bytes_per_proc >= 0)
                    printf(",\"bytes_per_proc\":%.1f", r.bytes_per_proc);
                if (r.p50_us >= 0)
                    printf(",\"p50_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f", r.p50_us, r.p99_us,
                           r.p999_us);
                if (r.syscalls_per_msg >= 0)
                    printf(",\"syscalls_per_msg\":%.6f", r.syscalls_per_msg);
                if (r.extra[0])
                    printf(",%s", r.extra);
                if (!r.ok)
                    printf(",\"error\":\"%s\"", r.error);
                printf("}\n");
                if (!json) {
                    char rb[32], nb[32];
                    human(rate, rb, sizeof rb);
                    human((double)r.n, nb, sizeof nb);
                    char bp[32] = "-", p99[32] = "-", sy[32] = "-";
                    if (r.bytes_per_proc >= 0)
                        snprintf(bp, sizeof bp, "%.0f", r.bytes_per_proc);
                    if (r.p99_us >= 0)
                        snprintf(p99, sizeof p99, "%.2f", r.p99_us);
                    if (r.syscalls_per_msg >= 0)
                        snprintf(sy, sizeof sy, "%.4f", r.syscalls_per_msg);
                    printf("%-20s %5u %12s %14s %10s %10s %10s %s\n", d->name, nsch, nb, rb, bp,
                           p99, sy, r.ok ? "" : r.error);
                }
                fflush(stdout);
                if (!r.ok)
                    failed++;
            }
        }
    }
    return failed ? 1 : 0;
}
