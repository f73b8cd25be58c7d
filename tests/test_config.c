/* Configuration, errors, statistics and start-up failures. */
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "harness.h"

START_TEST(config_defaults_match_the_contract)
{
    hive_config c;
    hive_config_default(&c);
    ck_assert_uint_eq(c.schedulers, 0);
    ck_assert(c.pin);
    ck_assert_uint_eq(c.stack_size, 256 * 1024);
    ck_assert_uint_eq(c.max_processes, 1u << 20);
    ck_assert_uint_eq(c.ring_entries, 256);
    ck_assert(!c.sqpoll);
    ck_assert_uint_eq(c.spin_us, 50);
    ck_assert_uint_eq(c.max_message, 64u << 20);
    ck_assert_int_eq(c.guard_stacks, 1024);
    ck_assert_uint_eq(c.budget, 2000);
    ck_assert(c.backpressure);
    ck_assert(!c.defer_taskrun);
    ck_assert(c.flood_move);
    ck_assert_uint_eq(c.recv_bufs, 256);
    ck_assert_uint_eq(c.send_zc, 0);
    ck_assert_uint_eq(c.trim_ms, 100);
    ck_assert_uint_eq(c.steal_grace_us, 100);
    /* defer_taskrun and flood_move sit in the padding after backpressure:
     * io_backend kept its offset, so they went in without an ABI bump. */
    ck_assert_uint_eq(offsetof(hive_config, io_backend), offsetof(hive_config, backpressure) + 4);
}
END_TEST

START_TEST(config_from_env_reads_every_flag)
{
    setenv("HIVE_SCHEDULERS", "3", 1);
    setenv("HIVE_PIN", "0", 1);
    setenv("HIVE_STACK_SIZE", "128K", 1);
    setenv("HIVE_MAX_PROCESSES", "5000", 1);
    setenv("HIVE_RING_ENTRIES", "64", 1);
    setenv("HIVE_SQPOLL", "1", 1);
    setenv("HIVE_SPIN_US", "7", 1);
    setenv("HIVE_MAX_MESSAGE", "1M", 1);
    setenv("HIVE_GUARD_STACKS", "auto", 1);
    setenv("HIVE_BUDGET", "500", 1);
    setenv("HIVE_SHUTDOWN_MS", "250", 1);
    setenv("HIVE_BACKPRESSURE", "off", 1);
    setenv("HIVE_DEFER_TASKRUN", "1", 1);
    setenv("HIVE_FLOOD_MOVE", "0", 1);
    setenv("HIVE_RECV_BUFS", "1024", 1);
    setenv("HIVE_SEND_ZC", "64K", 1);
    setenv("HIVE_TRIM_MS", "0", 1);
    setenv("HIVE_STEAL_GRACE_US", "250", 1);
    hive_config c;
    hive_config_default(&c);
    ck_assert_int_eq(hive_config_from_env(&c), 0);
    ck_assert_uint_eq(c.schedulers, 3);
    ck_assert(!c.pin);
    ck_assert_uint_eq(c.stack_size, 128 * 1024);
    ck_assert_uint_eq(c.max_processes, 5000);
    ck_assert_uint_eq(c.ring_entries, 64);
    ck_assert(c.sqpoll);
    ck_assert_uint_eq(c.spin_us, 7);
    ck_assert_uint_eq(c.max_message, 1u << 20);
    ck_assert_int_eq(c.guard_stacks, -1);
    ck_assert_uint_eq(c.budget, 500);
    ck_assert_uint_eq(c.shutdown_ms, 250);
    ck_assert(!c.backpressure);
    ck_assert(c.defer_taskrun);
    ck_assert(!c.flood_move);
    ck_assert_uint_eq(c.recv_bufs, 1024);
    ck_assert_uint_eq(c.send_zc, 64 * 1024);
    ck_assert_uint_eq(c.trim_ms, 0);
    ck_assert_uint_eq(c.steal_grace_us, 250);
    unsetenv("HIVE_STEAL_GRACE_US");
    unsetenv("HIVE_SEND_ZC");
    unsetenv("HIVE_TRIM_MS");
    setenv("HIVE_GUARD_STACKS", "12", 1);
    ck_assert_int_eq(hive_config_from_env(&c), 0);
    ck_assert_int_eq(c.guard_stacks, 12);
    unsetenv("HIVE_GUARD_STACKS");
    unsetenv("HIVE_BUDGET");
    unsetenv("HIVE_SHUTDOWN_MS");
    unsetenv("HIVE_BACKPRESSURE");
    unsetenv("HIVE_DEFER_TASKRUN");
    unsetenv("HIVE_FLOOD_MOVE");
    setenv("HIVE_RECV_BUFS", "0", 1);
    ck_assert_int_eq(hive_config_from_env(&c), 0);
    ck_assert_uint_eq(c.recv_bufs, 0);
    unsetenv("HIVE_RECV_BUFS");
}
END_TEST

START_TEST(config_from_env_rejects_bad_values_and_changes_nothing)
{
    const char *bad[][2] = {
        { "HIVE_SCHEDULERS", "many" }, { "HIVE_SCHEDULERS", "-1" }, { "HIVE_PIN", "maybe" },
        { "HIVE_STACK_SIZE", "1K" },   { "HIVE_MAX_PROCESSES", "0" },
        { "HIVE_RING_ENTRIES", "100" }, { "HIVE_SQPOLL", "2" }, { "HIVE_SPIN_US", "1e3" },
        { "HIVE_MAX_MESSAGE", "9G" }, { "HIVE_STACK_SIZE", "12Q" },
        { "HIVE_GUARD_STACKS", "-5" }, { "HIVE_BUDGET", "0" },
        { "HIVE_BACKPRESSURE", "2" }, { "HIVE_BACKPRESSURE", "sometimes" },
        { "HIVE_DEFER_TASKRUN", "yes please" }, { "HIVE_FLOOD_MOVE", "2" },
        { "HIVE_RECV_BUFS", "100" }, { "HIVE_RECV_BUFS", "65536" },
        { "HIVE_SEND_ZC", "2G" }, { "HIVE_SEND_ZC", "big" },
        { "HIVE_TRIM_MS", "soon" }, { "HIVE_TRIM_MS", "3600001" },
        { "HIVE_STEAL_GRACE_US", "1000001" }, { "HIVE_STEAL_GRACE_US", "-3" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv(bad[i][0], bad[i][1], 1);
        hive_config c, before;
        hive_config_default(&c);
        before = c;
        ck_assert_msg(hive_config_from_env(&c) == -EINVAL, "%s=%s accepted", bad[i][0], bad[i][1]);
        ck_assert(memcmp(&c, &before, sizeof c) == 0);
        unsetenv(bad[i][0]);
    }
    ck_assert_int_eq(hive_config_from_env(NULL), -EINVAL);
}
END_TEST

static void nothing(void *arg) { (void)arg; }

START_TEST(hive_main_rejects_bad_config_and_null_main)
{
    hive_config c;
    hive_config_default(&c);
    ck_assert_int_eq(hive_main(&c, NULL, NULL), -EINVAL);
    c.ring_entries = 100;
    ck_assert_int_eq(hive_main(&c, nothing, NULL), -EINVAL);
    hive_config_default(&c);
    c.stack_size = 100;
    ck_assert_int_eq(hive_main(&c, nothing, NULL), -EINVAL);
    ck_assert_int_eq(hive_main(NULL, nothing, NULL), 0);
}
END_TEST

/* A seccomp filter that refuses io_uring_setup with EPERM, like a
 * container policy would. */
static void forbid_io_uring(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
    ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

struct backend_seen {
    char name[16];
    char why[160];
    uint64_t stats_kind;
};

static void note_backend(void *arg)
{
    struct backend_seen *b = arg;
    const char *why = NULL;
    const char *name = hive_io_backend(&why);
    snprintf(b->name, sizeof b->name, "%s", name ? name : "(null)");
    snprintf(b->why, sizeof b->why, "%s", why ? why : "");
    hive_sched_stats tot;
    ck_assert_int_ge(hive_stats(NULL, 0, &tot), 1);
    b->stats_kind = tot.io_backend;
}

START_TEST(hive_main_runs_on_epoll_when_io_uring_is_forbidden)
{
    forbid_io_uring();
    struct backend_seen b;
    memset(&b, 0, sizeof b);
    ck_assert_int_eq(hive_main(NULL, note_backend, &b), 0);
    ck_assert_str_eq(b.name, "epoll");
    ck_assert_uint_eq(b.stats_kind, HIVE_IO_EPOLL);
    ck_assert_msg(strstr(b.why, "EPERM") != NULL, "why: '%s'", b.why);
    ck_assert_ptr_null(hive_io_backend(NULL)); /* no runtime now */
}
END_TEST

START_TEST(hive_main_with_io_uring_required_fails_at_once_when_it_is_forbidden)
{
    forbid_io_uring();
    hive_config c;
    hive_config_default(&c);
    c.io_backend = HIVE_IO_URING;
    ck_assert_int_eq(hive_main(&c, nothing, NULL), -EPERM);
}
END_TEST

START_TEST(hive_io_epoll_is_chosen_when_asked_for)
{
    hive_config c;
    hive_config_default(&c);
    setenv("HIVE_IO", "epoll", 1);
    ck_assert_int_eq(hive_config_from_env(&c), 0);
    ck_assert_int_eq(c.io_backend, HIVE_IO_EPOLL);
    setenv("HIVE_IO", "uring", 1);
    ck_assert_int_eq(hive_config_from_env(&c), 0);
    ck_assert_int_eq(c.io_backend, HIVE_IO_URING);
    setenv("HIVE_IO", "kqueue", 1);
    ck_assert_int_eq(hive_config_from_env(&c), -EINVAL);
    ck_assert_int_eq(c.io_backend, HIVE_IO_URING); /* unchanged by the bad value */
    unsetenv("HIVE_IO");
    c.io_backend = 7;
    ck_assert_int_eq(hive_main(&c, nothing, NULL), -EINVAL);
    c.io_backend = HIVE_IO_EPOLL;
    struct backend_seen b;
    memset(&b, 0, sizeof b);
    ck_assert_int_eq(hive_main(&c, note_backend, &b), 0);
    ck_assert_str_eq(b.name, "epoll");
    ck_assert_uint_eq(b.stats_kind, HIVE_IO_EPOLL);
    ck_assert_str_eq(b.why, "HIVE_IO=epoll");
}
END_TEST

START_TEST(strerror_names_otp_equivalents)
{
    ck_assert_ptr_nonnull(strstr(hive_strerror(-ETIMEDOUT), "timeout"));
    ck_assert_ptr_nonnull(strstr(hive_strerror(-ESRCH), "noproc"));
    ck_assert_ptr_nonnull(strstr(hive_strerror(-EDEADLK), "calling_self"));
    ck_assert_ptr_nonnull(hive_strerror(-12345));
    ck_assert_ptr_nonnull(hive_strerror(12345));
}
END_TEST

enum { T_P = 1 };
static void echo(void *arg)
{
    (void)arg;
    hive_msg *m;
    while (hive_receive(&m, HIVE_INFINITY) == 0) {
        hive_send(m->from, T_P, NULL, 0);
        hive_msg_free(m);
    }
}

static void t_stats(void *arg)
{
    (void)arg;
    hive_pid e;
    hive_spawn(echo, NULL, &e);
    hive_sched_stats a, b, per[8];
    ck_assert_int_eq(hive_stats(NULL, 0, &a), 2);
    for (int i = 0; i < 10000; i++) {
        hive_send(e, T_P, NULL, 0);
        hive_msg_free(recv_tag(T_P, 5000));
    }
    ck_assert_int_eq(hive_stats(per, 8, &b), 2);
    ck_assert_uint_ge(b.msgs_sent - a.msgs_sent, 20000);
    ck_assert_uint_ge(b.msgs_received - a.msgs_received, 20000);
    ck_assert_uint_ge(b.switches - a.switches, 10000);
    ck_assert_uint_eq(per[0].msgs_sent + per[1].msgs_sent + (b.msgs_sent - per[0].msgs_sent -
                                                             per[1].msgs_sent),
                      b.msgs_sent);
    /* the ping-pong itself makes (almost) no system calls: it stays on one
     * core and never parks between two hops */
    ck_assert_uint_le(b.syscalls - a.syscalls, 200);
    ck_assert_int_eq(hive_stats(NULL, 3, NULL), -EINVAL);
}
START_TEST(stats_count_messages_switches_and_syscalls) { run_hive(2, t_stats, NULL); }
END_TEST

START_TEST(stats_outside_a_runtime_is_eperm)
{
    hive_sched_stats t;
    ck_assert_int_eq(hive_stats(NULL, 0, &t), -EPERM);
    ck_assert_int_eq(hive_send(0xA5 | (1ull << 32), 1, NULL, 0), -EPERM);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, config_defaults_match_the_contract);
    tcase_add_test(tc, config_from_env_reads_every_flag);
    tcase_add_test(tc, config_from_env_rejects_bad_values_and_changes_nothing);
    tcase_add_test(tc, hive_main_rejects_bad_config_and_null_main);
    tcase_add_test(tc, hive_main_runs_on_epoll_when_io_uring_is_forbidden);
    tcase_add_test(tc, hive_main_with_io_uring_required_fails_at_once_when_it_is_forbidden);
    tcase_add_test(tc, hive_io_epoll_is_chosen_when_asked_for);
    tcase_add_test(tc, strerror_names_otp_equivalents);
    tcase_add_test(tc, stats_count_messages_switches_and_syscalls);
    tcase_add_test(tc, stats_outside_a_runtime_is_eperm);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
