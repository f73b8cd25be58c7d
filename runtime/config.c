/* Configuration: defaults, environment overrides, validation; error names. */
#include "runtime/config.h"

#include <errno.h>
#include <hive.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hive_config_default(hive_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->schedulers = 0;
    cfg->pin = true;
    cfg->stack_size = 256 * 1024;
    cfg->max_processes = 1u << 20;
    cfg->ring_entries = 256;
    cfg->sqpoll = false;
    cfg->spin_us = 50;
    cfg->max_message = 64u << 20;
    cfg->shutdown_ms = 5000;
    cfg->budget = 2000;
    cfg->guard_stacks = 1024;
    cfg->backpressure = true;
    cfg->flood_move = true;
    cfg->recv_bufs = 256;
    cfg->trim_ms = 100;
    cfg->steal_grace_us = 100;
}

/* Parses an unsigned decimal with an optional K/M/G suffix (sizes). */
static int parse_u64(const char *s, bool suffix, unsigned long long *out)
{
    if (!s || !*s)
        return -EINVAL;
    errno = 0;
    char *end;
    if (*s == '-')
        return -EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -EINVAL;
    if (suffix && *end) {
        unsigned shift = 0;
        switch (*end) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        default: return -EINVAL;
        }
        if (v > (ULLONG_MAX >> shift))
            return -EINVAL;
        v <<= shift;
        end++;
    }
    if (*end)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on")) {
        *out = true;
        return 0;
    }
    if (!strcmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off")) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

static int bad(const char *var, const char *val, const char *want)
{
    fprintf(stderr, "hive: bad value for %s: '%s' (%s)\n", var, val, want);
    return -EINVAL;
}

/* The numeric settings, each once: its variable, its field, its range.
 * config_validate checks a config against this table and
 * hive_config_from_env parses into it, so the two cannot disagree. */
struct limit {
    const char *env, *field;
    size_t off, size;            /* the field in hive_config */
    unsigned long long min, max;
    bool suffix;                 /* accepts K/M/G */
    bool pow2;                   /* must be a power of two */
    const char *want;            /* the range, for the message */
};
#define LIM(ENV, F, MIN, MAX, SUF, POW2, WANT) \
    { ENV, #F, offsetof(hive_config, F), sizeof(((hive_config *)0)->F), MIN, MAX, SUF, POW2, WANT }
static const struct limit limits[] = {
    LIM("HIVE_SCHEDULERS", schedulers, 0, 1024, false, false, "0 (one per CPU) .. 1024"),
    LIM("HIVE_STACK_SIZE", stack_size, 16 * 1024, 1ull << 30, true, false, "16K .. 1G, e.g. 256K"),
    LIM("HIVE_MAX_PROCESSES", max_processes, 1, 1u << 24, false, false, "1 .. 16777216"),
    LIM("HIVE_RING_ENTRIES", ring_entries, 8, 32768, false, true, "a power of two, 8 .. 32768"),
    LIM("HIVE_SPIN_US", spin_us, 0, 1000000, false, false, "microseconds, 0 .. 1000000"),
    LIM("HIVE_MAX_MESSAGE", max_message, 0, 1ull << 31, true, false, "bytes, at most 2G"),
    LIM("HIVE_SHUTDOWN_MS", shutdown_ms, 0, 3600000, false, false, "milliseconds, 0 .. 3600000"),
    LIM("HIVE_BUDGET", budget, 1, 1000000, false, false, "reductions, 1 .. 1000000"),
    LIM("HIVE_RECV_BUFS", recv_bufs, 0, 32768, false, true,
        "0 (none) or a power of two up to 32768"),
    LIM("HIVE_SEND_ZC", send_zc, 0, 1ull << 30, true, false, "bytes, 0 (off) .. 1G, e.g. 64K"),
    LIM("HIVE_TRIM_MS", trim_ms, 0, 3600000, false, false,
        "milliseconds, 0 (never) .. 3600000"),
    LIM("HIVE_STEAL_GRACE_US", steal_grace_us, 0, 1000000, false, false,
        "microseconds, 0 (none) .. 1000000"),
};
#undef LIM

static unsigned long long get_field(const hive_config *c, const struct limit *l)
{
    const char *f = (const char *)c + l->off;
    if (l->size == sizeof(unsigned)) {
        unsigned v;
        memcpy(&v, f, sizeof v);
        return v;
    }
    size_t v;
    memcpy(&v, f, sizeof v);
    return v;
}

static void set_field(hive_config *c, const struct limit *l, unsigned long long u)
{
    char *f = (char *)c + l->off;
    if (l->size == sizeof(unsigned)) {
        unsigned v = (unsigned)u;
        memcpy(f, &v, sizeof v);
    } else {
        size_t v = (size_t)u;
        memcpy(f, &v, sizeof v);
    }
}

static bool in_range(const struct limit *l, unsigned long long u)
{
    return u >= l->min && u <= l->max && (!l->pow2 || (u & (u - 1)) == 0);
}

int config_validate(const hive_config *c)
{
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        unsigned long long u = get_field(c, &limits[i]);
        if (!in_range(&limits[i], u)) {
            fprintf(stderr, "hive: bad hive_config.%s: %llu (%s)\n", limits[i].field, u,
                    limits[i].want);
            return -EINVAL;
        }
    }
    if (c->io_backend < HIVE_IO_AUTO || c->io_backend > HIVE_IO_EPOLL) {
        fprintf(stderr, "hive: bad hive_config.io_backend: %d (HIVE_IO_AUTO, HIVE_IO_URING "
                "or HIVE_IO_EPOLL)\n", c->io_backend);
        return -EINVAL;
    }
    if (c->guard_stacks < -1 || c->guard_stacks > (1 << 24)) {
        fprintf(stderr, "hive: bad hive_config.guard_stacks: %d (-1 or 0 .. 16777216)\n",
                c->guard_stacks);
        return -EINVAL;
    }
    return 0;
}

int hive_config_from_env(hive_config *cfg)
{
    if (!cfg)
        return -EINVAL;
    hive_config c = *cfg;
    const char *v;
    unsigned long long u;
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        const struct limit *l = &limits[i];
        if (!(v = getenv(l->env)))
            continue;
        if (parse_u64(v, l->suffix, &u) || !in_range(l, u))
            return bad(l->env, v, l->want);
        set_field(&c, l, u);
    }
    if ((v = getenv("HIVE_GUARD_STACKS"))) {
        if (!strcmp(v, "auto"))
            c.guard_stacks = -1;
        else if (parse_u64(v, false, &u) || u > (1u << 24))
            return bad("HIVE_GUARD_STACKS", v, "auto or 0 .. 16777216");
        else
            c.guard_stacks = (int)u;
    }
    if ((v = getenv("HIVE_IO"))) {
        if (!strcmp(v, "auto"))
            c.io_backend = HIVE_IO_AUTO;
        else if (!strcmp(v, "uring") || !strcmp(v, "io_uring"))
            c.io_backend = HIVE_IO_URING;
        else if (!strcmp(v, "epoll"))
            c.io_backend = HIVE_IO_EPOLL;
        else
            return bad("HIVE_IO", v, "auto, uring or epoll");
    }
    if ((v = getenv("HIVE_PIN")) && parse_bool(v, &c.pin))
        return bad("HIVE_PIN", v, "0 or 1");
    if ((v = getenv("HIVE_SQPOLL")) && parse_bool(v, &c.sqpoll))
        return bad("HIVE_SQPOLL", v, "0 or 1");
    if ((v = getenv("HIVE_BACKPRESSURE")) && parse_bool(v, &c.backpressure))
        return bad("HIVE_BACKPRESSURE", v, "0 or 1");
    if ((v = getenv("HIVE_DEFER_TASKRUN")) && parse_bool(v, &c.defer_taskrun))
        return bad("HIVE_DEFER_TASKRUN", v, "0 or 1");
    if ((v = getenv("HIVE_FLOOD_MOVE")) && parse_bool(v, &c.flood_move))
        return bad("HIVE_FLOOD_MOVE", v, "0 or 1");
    *cfg = c;
    return 0;
}

const char *hive_strerror(int err)
{
    switch (err) {
    case 0: return "ok";
    case HIVE_IGNORE: return "ignore (init returned HIVE_IGNORE)";
    case -ETIMEDOUT: return "timeout";
    case -ESRCH: return "noproc (no such process)";
    case -EDEADLK: return "calling_self (a process called itself)";
    case -EEXIST: return "already_started / already registered";
    case -EINVAL: return "badarg (invalid argument)";
    case -EMSGSIZE: return "message too large (over max_message)";
    case -ENOMEM: return "out of memory";
    case -EPERM: return "not in a hive process (blocking call from a foreign thread)";
    case -ECONNRESET: return "the callee exited during the call (see hive_call_reason)";
    case -EAGAIN: return "system_limit (too many processes)";
    case -ENOENT: return "not found (timer already fired, or no such child)";
    case -ENOSYS: return "not supported by this kernel";
    case -EBUSY: return "busy";
    case -ENOSPC: return "no room (a limit such as max_children reached)";
    default: return err < 0 ? "unknown error" : "not an error code";
    }
}
