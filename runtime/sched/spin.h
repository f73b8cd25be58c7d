/*
 * The spin governor: whether an idle scheduler may spin before it parks.
 *
 * A spinner holds a core. On a machine where another thread wants that
 * core (a server's load generator on the same cores, more runnable threads
 * than cores, a neighbour) the kernel lets the spinner run out its slice
 * while the other thread waits: kv under redis-benchmark on two cores ran
 * at 60% of its no-spinning throughput with a p99 five times longer
 * (docs/performance.md, "Spinning on a shared machine"). The kernel counts
 * that waiting: /proc/pressure/cpu's "some total" is the time, in
 * microseconds, during which at least one runnable thread waited for a
 * CPU. An idle scheduler reads it at most once per SPIN_GOV_WINDOW_NS;
 * when threads waited for more than SPIN_GOV_SHARE_PCT of the window, no
 * scheduler spins for a pause (each one parks straight away): 20 ms,
 * doubled for each contended window less than 1 s after the last, up to
 * 1 s. Where nothing else wants the cores no window is contended and
 * spinning is unchanged. Without PSI (CONFIG_PSI off, psi=0) the file is
 * missing and spinning is never paused.
 */
#ifndef HIVE_SPIN_H
#define HIVE_SPIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct sched;

#define SPIN_GOV_WINDOW_NS  20000000u   /* 20 ms between reads */
#define SPIN_GOV_SHARE_PCT  25u         /* a window with more waiting is contended */
#define SPIN_GOV_PAUSE_MIN  20000000u   /* 20 ms */
#define SPIN_GOV_PAUSE_MAX  1000000000u /* 1 s */

struct spin_gov {
    /* When the next read is due (clock_precise_ns); UINT64_MAX while a scheduler
     * is reading. A scheduler claims the read with an acquire CAS from the
     * due time to UINT64_MAX and hands it on with a release store of the
     * next due time: the fields below are written only by the claimant,
     * and each claimant sees the last one's writes through that pair. */
    _Alignas(64) _Atomic uint64_t next_ns;
    /* No spinning before this time (clock_precise_ns). Relaxed: a hint, read at
     * every idle entry, written by the claimant. */
    _Atomic uint64_t off_until;
    int      fd;                 /* /proc/pressure/cpu, or -1 */
    uint64_t last_ns;            /* the last read, and its total */
    uint64_t last_total_us;
    uint64_t pause_ns;           /* the last pause, and when it began */
    uint64_t paused_at;
};

/* Opens /proc/pressure/cpu and takes the first reading. */
void spin_gov_init(struct spin_gov *g);
/* The same for another file of that format (tests); -ENOENT when it cannot
 * be read, and then spinning is never paused. */
int spin_gov_init_path(struct spin_gov *g, const char *path);
void spin_gov_fini(struct spin_gov *g);
/* Whether s, idle at now, may spin; reads the pressure file if it is due
 * (counted in s's syscalls, a contended window in its spin_pauses). */
bool spin_gov_allows(struct spin_gov *g, struct sched *s, uint64_t now);
/* One window's decision: the file read total_us at now. Whether the
 * window was contended (and spinning paused from now). */
bool spin_gov_window(struct spin_gov *g, uint64_t now, uint64_t total_us);

#endif
