/*
 * The spin governor (runtime/sched/spin.h): an idle scheduler spins before
 * it parks only while no other thread of the machine waits for a CPU, as
 * the kernel's CPU pressure (/proc/pressure/cpu) tells. Its decisions are
 * checked on files of that format written here; one test makes real
 * contention and waits for the runtime to notice.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "runtime/sched/sched.h"
#include "runtime/sched/spin.h"

#define MS 1000000ull

/* A pressure file of the kernel's format whose "some" total is total_us. */
static void write_pressure(const char *path, unsigned long long total_us)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "some avg10=0.00 avg60=0.00 avg300=0.00 total=%llu\n"
               "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", total_us);
    fclose(f);
}

static char *temp_path(void)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/hive-test-pressure-%d", (int)getpid());
    return path;
}

/* A governor whose last reading was total_us at t. */
static void gov_at(struct spin_gov *g, uint64_t t, unsigned long long total_us)
{
    char *path = temp_path();
    write_pressure(path, total_us);
    ck_assert_int_eq(spin_gov_init_path(g, path), 0);
    ck_assert_uint_eq(g->last_total_us, total_us);
    g->last_ns = t;
    unlink(path);
}

START_TEST(a_window_where_threads_waited_a_quarter_or_less_leaves_spinning_on)
{
    struct spin_gov g;
    uint64_t t = 1000 * MS;
    gov_at(&g, t, 1000);
    /* 5,000 us of waiting in 20 ms: exactly 25% */
    ck_assert(!spin_gov_window(&g, t + 20 * MS, 1000 + 5000));
    ck_assert_uint_eq(atomic_load(&g.off_until), 0);
    ck_assert(!spin_gov_window(&g, t + 40 * MS, 6000));   /* none */
    ck_assert_uint_eq(atomic_load(&g.off_until), 0);
    spin_gov_fini(&g);
}
END_TEST

START_TEST(a_contended_window_pauses_spinning_for_20_ms)
{
    struct spin_gov g;
    uint64_t t = 1000 * MS;
    gov_at(&g, t, 1000);
    /* 5,001 us in 20 ms: just over a quarter */
    ck_assert(spin_gov_window(&g, t + 20 * MS, 1000 + 5001));
    ck_assert_uint_eq(atomic_load(&g.off_until), t + 40 * MS);
    spin_gov_fini(&g);
}
END_TEST

START_TEST(pauses_double_while_contention_lasts_up_to_a_second)
{
    struct spin_gov g;
    uint64_t t = 1000 * MS, total = 0;
    gov_at(&g, t, total);
    uint64_t want[] = { 20, 40, 80, 160, 320, 640, 1000, 1000, 1000 };
    for (unsigned i = 0; i < sizeof want / sizeof want[0]; i++) {
        t += 20 * MS;
        total += 15000; /* 75% of each window */
        ck_assert(spin_gov_window(&g, t, total));
        ck_assert_uint_eq(g.pause_ns, want[i] * MS);
        ck_assert_uint_eq(atomic_load(&g.off_until), t + want[i] * MS);
    }
    spin_gov_fini(&g);
}
END_TEST

START_TEST(a_pause_starts_again_at_20_ms_after_a_second_without_contention)
{
    struct spin_gov g;
    uint64_t t = 1000 * MS, total = 0;
    gov_at(&g, t, total);
    for (int i = 0; i < 4; i++) { /* 20, 40, 80, 160 ms */
        t += 20 * MS;
        total += 15000;
        ck_assert(spin_gov_window(&g, t, total));
    }
    ck_assert_uint_eq(g.pause_ns, 160 * MS);
    /* 1.2 s of quiet windows */
    for (int i = 0; i < 60; i++) {
        t += 20 * MS;
        ck_assert(!spin_gov_window(&g, t, total));
    }
    ck_assert_uint_lt(atomic_load(&g.off_until), t);
    t += 20 * MS;
    total += 15000;
    ck_assert(spin_gov_window(&g, t, total));
    ck_assert_uint_eq(g.pause_ns, 20 * MS);
    ck_assert_uint_eq(atomic_load(&g.off_until), t + 20 * MS);
    spin_gov_fini(&g);
}
END_TEST

START_TEST(a_missing_or_malformed_pressure_file_never_pauses_spinning)
{
    struct spin_gov g;
    struct sched *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(spin_gov_init_path(&g, "/nonexistent/pressure/cpu"), -ENOENT);
    uint64_t now = clock_precise_ns();
    for (int i = 0; i < 100; i++)
        ck_assert(spin_gov_allows(&g, s, now + (uint64_t)i * 50 * MS));
    ck_assert_uint_eq(atomic_load(&s->st.syscalls), 0); /* never read */

    char *path = temp_path();
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("some avg10=0.00 avg60=0.00 avg300=0.00\n", f); /* no total */
    fclose(f);
    ck_assert_int_eq(spin_gov_init_path(&g, path), -ENOENT);
    ck_assert(spin_gov_allows(&g, s, now + 1000 * MS));
    unlink(path);
    free(s);
}
END_TEST

START_TEST(an_idle_scheduler_reads_the_pressure_once_per_window)
{
    struct spin_gov g;
    struct sched *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    char *path = temp_path();
    write_pressure(path, 1000);
    ck_assert_int_eq(spin_gov_init_path(&g, path), 0);
    uint64_t t0 = g.last_ns;
    /* before the window is up: no read */
    ck_assert(spin_gov_allows(&g, s, t0 + 19 * MS));
    ck_assert_uint_eq(atomic_load(&s->st.syscalls), 0);
    /* the kernel counts 15 ms of waiting: the read at 20 ms pauses spinning */
    write_pressure(path, 1000 + 15000);
    ck_assert(!spin_gov_allows(&g, s, t0 + 20 * MS));
    ck_assert_uint_eq(atomic_load(&s->st.syscalls), 1);
    ck_assert_uint_eq(atomic_load(&s->st.spin_pauses), 1);
    /* within the pause and the next window: no read, still paused */
    ck_assert(!spin_gov_allows(&g, s, t0 + 39 * MS));
    ck_assert_uint_eq(atomic_load(&s->st.syscalls), 1);
    /* the next window is quiet: spinning again once the pause is over */
    ck_assert(spin_gov_allows(&g, s, t0 + 40 * MS));
    ck_assert_uint_eq(atomic_load(&s->st.syscalls), 2);
    ck_assert_uint_eq(atomic_load(&s->st.spin_pauses), 1);
    spin_gov_fini(&g);
    unlink(path);
    free(s);
}
END_TEST

/* ---- real contention ---- */

static _Atomic bool burn_stop;

static void *burn(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&burn_stop, memory_order_relaxed))
        ;
    return NULL;
}

static _Atomic uint64_t seen_pauses;

static void wait_for_pauses(void *arg)
{
    (void)arg;
    hive_sched_stats t;
    /* a bound, not a wait chosen to be long enough: the first window is
       20 ms; give up after 10 s */
    for (int i = 0; i < 2000; i++) {
        hive_stats(NULL, 0, &t);
        if (t.spin_pauses > 0)
            break;
        hive_sleep(5);
    }
    atomic_store(&seen_pauses, t.spin_pauses);
}

START_TEST(schedulers_stop_spinning_while_other_threads_wait_for_a_cpu)
{
    if (access("/proc/pressure/cpu", R_OK) != 0) {
        fprintf(stderr, "test_spin: no /proc/pressure/cpu (PSI off): skipped\n");
        return;
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    unsigned nburn = (unsigned)ncpu + 1;
    pthread_t *th = calloc(nburn, sizeof *th);
    ck_assert_ptr_nonnull(th);
    atomic_store(&burn_stop, false);
    for (unsigned i = 0; i < nburn; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, burn, NULL), 0);
    run_hive(2, wait_for_pauses, NULL);
    atomic_store(&burn_stop, true);
    for (unsigned i = 0; i < nburn; i++)
        pthread_join(th[i], NULL);
    free(th);
    uint64_t pauses = atomic_load(&seen_pauses);
    ck_assert_msg(pauses > 0, "no spin pause with %u threads burning %ld CPUs", nburn, ncpu);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("spin");
    TCase *tc = tcase_create("governor");
    tcase_add_test(tc, a_window_where_threads_waited_a_quarter_or_less_leaves_spinning_on);
    tcase_add_test(tc, a_contended_window_pauses_spinning_for_20_ms);
    tcase_add_test(tc, pauses_double_while_contention_lasts_up_to_a_second);
    tcase_add_test(tc, a_pause_starts_again_at_20_ms_after_a_second_without_contention);
    tcase_add_test(tc, a_missing_or_malformed_pressure_file_never_pauses_spinning);
    tcase_add_test(tc, an_idle_scheduler_reads_the_pressure_once_per_window);
    tcase_add_test(tc, schedulers_stop_spinning_while_other_threads_wait_for_a_cpu);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
