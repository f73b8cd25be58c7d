/* Configuration: defaults, environment overrides, validation; error names. */
#include <errno.h>
#include <hive.h>
#include <limits.h>
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

static int badf(const char *field, unsigned long long v, const char *want)
{
    fprintf(stderr, "hive: bad hive_config.%s: %llu (%s)\n", field, v, want);
    return -EINVAL;
}

int hive_config_validate(const hive_config *c)
{
    if (c->schedulers > 1024)
        return badf("schedulers", c->schedulers, "at most 1024");
    if (c->stack_size < 16 * 1024 || c->stack_size > (1ull << 30))
        return badf("stack_size", c->stack_size, "16 KiB .. 1 GiB");
    if (c->max_processes < 1 || c->max_processes > (1u << 24))
        return badf("max_processes", c->max_processes, "1 .. 16777216");
    if (c->ring_entries < 8 || c->ring_entries > 32768 ||
        (c->ring_entries & (c->ring_entries - 1)))
        return badf("ring_entries", c->ring_entries, "a power of two, 8 .. 32768");
    if (c->spin_us > 1000000)
        return badf("spin_us", c->spin_us, "at most 1000000");
    if (c->max_message > (1ull << 31))
        return badf("max_message", c->max_message, "at most 2 GiB");
    if (c->budget < 1)
        return badf("budget", c->budget, "at least 1");
    return 0;
}

int hive_config_from_env(hive_config *cfg)
{
    if (!cfg)
        return -EINVAL;
    hive_config c = *cfg;
    const char *v;
    unsigned long long u;
#define UINT_VAR(NAME, FIELD, SUFFIX, MIN, MAX, WANT)                                   \
    if ((v = getenv(NAME)) != NULL) {                                                   \
        if (parse_u64(v, SUFFIX, &u) || u < (MIN) || u > (MAX))                         \
            return bad(NAME, v, WANT);                                                  \
        c.FIELD = u;                                                                    \
    }
    UINT_VAR("HIVE_SCHEDULERS", schedulers, false, 0, 1024, "0 (one per CPU) .. 1024");
    UINT_VAR("HIVE_STACK_SIZE", stack_size, true, 16 * 1024, 1ull << 30, "16K .. 1G, e.g. 256K");
    UINT_VAR("HIVE_MAX_PROCESSES", max_processes, false, 1, 1u << 24, "1 .. 16777216");
    UINT_VAR("HIVE_RING_ENTRIES", ring_entries, false, 8, 32768, "a power of two, 8 .. 32768");
    UINT_VAR("HIVE_SPIN_US", spin_us, false, 0, 1000000, "microseconds, 0 .. 1000000");
    UINT_VAR("HIVE_MAX_MESSAGE", max_message, true, 0, 1ull << 31, "bytes, at most 2G");
    UINT_VAR("HIVE_SHUTDOWN_MS", shutdown_ms, false, 0, 3600000, "milliseconds, 0 .. 3600000");
    UINT_VAR("HIVE_BUDGET", budget, false, 1, 1000000, "reductions, 1 .. 1000000");
    if ((v = getenv("HIVE_GUARD_STACKS")) && !strcmp(v, "auto"))
        c.guard_stacks = -1;
    else
        UINT_VAR("HIVE_GUARD_STACKS", guard_stacks, false, 0, 1u << 24, "auto or 0 .. 16777216");
#undef UINT_VAR
    if ((v = getenv("HIVE_RING_ENTRIES")) && (c.ring_entries & (c.ring_entries - 1)))
        return bad("HIVE_RING_ENTRIES", v, "a power of two, 8 .. 32768");
    if ((v = getenv("HIVE_PIN")) && parse_bool(v, &c.pin))
        return bad("HIVE_PIN", v, "0 or 1");
    if ((v = getenv("HIVE_SQPOLL")) && parse_bool(v, &c.sqpoll))
        return bad("HIVE_SQPOLL", v, "0 or 1");
    if ((v = getenv("HIVE_BACKPRESSURE")) && parse_bool(v, &c.backpressure))
        return bad("HIVE_BACKPRESSURE", v, "0 or 1");
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
    default: return err < 0 ? "unknown error" : "not an error code";
    }
}
