/* The spin governor: see spin.h. */
#include "runtime/sched/spin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/sched/sched.h"

/* The "some" line's total, in microseconds; false if it cannot be read. */
static bool read_total(int fd, uint64_t *total_us)
{
    char buf[256];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return false;
    buf[n] = 0;
    const char *t = strstr(buf, "total=");
    if (!t)
        return false;
    char *end;
    unsigned long long v = strtoull(t + 6, &end, 10);
    if (end == t + 6)
        return false;
    *total_us = v;
    return true;
}

int spin_gov_init_path(struct spin_gov *g, const char *path)
{
    memset(g, 0, sizeof *g);
    g->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (g->fd >= 0 && !read_total(g->fd, &g->last_total_us)) {
        close(g->fd);
        g->fd = -1;
    }
    g->last_ns = clock_precise_ns();
    atomic_store_explicit(&g->next_ns, g->fd >= 0 ? g->last_ns + SPIN_GOV_WINDOW_NS : UINT64_MAX,
                          memory_order_relaxed);
    atomic_store_explicit(&g->off_until, 0, memory_order_relaxed);
    return g->fd >= 0 ? 0 : -ENOENT;
}

void spin_gov_init(struct spin_gov *g)
{
    (void)spin_gov_init_path(g, "/proc/pressure/cpu");
}

void spin_gov_fini(struct spin_gov *g)
{
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
}

bool spin_gov_window(struct spin_gov *g, uint64_t now, uint64_t total_us)
{
    uint64_t waited_ns = total_us > g->last_total_us ? (total_us - g->last_total_us) * 1000u : 0;
    uint64_t window = now - g->last_ns;
    g->last_total_us = total_us;
    g->last_ns = now;
    if (waited_ns * 100u <= window * SPIN_GOV_SHARE_PCT)
        return false;
    if (g->paused_at && now - g->paused_at < SPIN_GOV_PAUSE_MAX)
        g->pause_ns = g->pause_ns * 2 > SPIN_GOV_PAUSE_MAX ? SPIN_GOV_PAUSE_MAX : g->pause_ns * 2;
    else
        g->pause_ns = SPIN_GOV_PAUSE_MIN;
    g->paused_at = now;
    atomic_store_explicit(&g->off_until, now + g->pause_ns, memory_order_relaxed);
    return true;
}

bool spin_gov_allows(struct spin_gov *g, struct sched *s, uint64_t now)
{
    uint64_t due = atomic_load_explicit(&g->next_ns, memory_order_relaxed);
    if (now >= due && due != UINT64_MAX &&
        atomic_compare_exchange_strong_explicit(&g->next_ns, &due, UINT64_MAX,
                                                memory_order_acquire, memory_order_relaxed)) {
        uint64_t total;
        STAT_INC(s, syscalls);
        if (read_total(g->fd, &total) && spin_gov_window(g, now, total))
            STAT_INC(s, spin_pauses);
        atomic_store_explicit(&g->next_ns, now + SPIN_GOV_WINDOW_NS, memory_order_release);
    }
    return now >= atomic_load_explicit(&g->off_until, memory_order_relaxed);
}
