/* Processes and messages: spawn, exit, send, receive, selective receive,
 * timeouts, bad arguments, ordering under stealing, shutdown. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

enum { T_A = 1, T_B, T_C, T_DONE, T_GO, T_SEQ };

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- spawn / exit ---- */

static void sleeper_fn(void *arg)
{
    (void)arg;
    hive_sleep(HIVE_INFINITY);
}

static void child_replies(void *arg)
{
    hive_pid parent = *(hive_pid *)arg;
    int v = 42;
    hive_send(parent, T_A, &v, sizeof v);
}

static void t_spawn_and_exit(void *arg)
{
    (void)arg;
    hive_pid me = hive_self(), c;
    ck_assert_uint_ne(me, HIVE_NOPID);
    hive_ref mref;
    /* monitored from birth: a child that runs on the other scheduler may
     * be gone before a separate hive_monitor (which would say noproc) */
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &mref };
    ck_assert_int_eq(hive_spawn_opt(child_replies, &me, &o, &c), 0);
    ck_assert_uint_ne(c, me);
    hive_msg *m = recv_tag(T_A, 5000);
    ck_assert_int_eq(*(int *)m->data, 42);
    ck_assert_uint_eq(m->from, c);
    hive_msg_free(m);
    ck_assert_int_eq(wait_down(mref), HIVE_NORMAL);
    ck_assert(!hive_is_alive(c));
    ck_assert(hive_is_alive(me));
}
START_TEST(spawned_process_runs_and_exits_normally) { run_hive(2, t_spawn_and_exit, NULL); }
END_TEST

static void exits_with(void *arg)
{
    hive_exit((hive_reason)(intptr_t)arg);
}

static void t_exit_reason(void *arg)
{
    (void)arg;
    hive_ref r;
    hive_pid c;
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r };
    ck_assert_int_eq(hive_spawn_opt(exits_with, (void *)(intptr_t)77, &o, &c), 0);
    ck_assert_int_eq(wait_down(r), 77);
}
START_TEST(hive_exit_reason_reaches_monitors) { run_hive(2, t_exit_reason, NULL); }
END_TEST

/* ---- ordering ---- */

static void t_order(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(hive_send(me, T_SEQ, &i, sizeof i), 0);
    for (int i = 0; i < 1000; i++) {
        hive_msg *m;
        ck_assert_int_eq(hive_receive(&m, 0), 0);
        ck_assert_int_eq(*(int *)m->data, i);
        hive_msg_free(m);
    }
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 0), -ETIMEDOUT);
}
START_TEST(messages_arrive_in_send_order) { run_hive(1, t_order, NULL); }

/* Every payload length from 0 to 300 bytes, across the node caches' size
 * classes (msg.c: 16, 48 and 176 bytes of payload) and past them, copied
 * (hive_send) and zero-copy (hive_msg_alloc filled to its last byte), from
 * a sender that may run on the other scheduler, five rounds so that nodes
 * freed by the receiver serve later sends: every message arrives whole, in
 * order. */
#define LEN_MAX 300

static void fill(unsigned char *b, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)(seed * 31u + i * 7u + 1u);
}

static void sends_every_length(void *arg)
{
    hive_pid to = *(hive_pid *)arg;
    unsigned char buf[LEN_MAX];
    for (unsigned round = 0; round < 5; round++) {
        for (size_t len = 0; len <= LEN_MAX; len++) {
            fill(buf, len, (unsigned)len + round);
            ck_assert_int_eq(hive_send(to, T_A, buf, len), 0);
            hive_msg *z = hive_msg_alloc(len);
            ck_assert_ptr_nonnull(z);
            z->tag = T_B;
            fill(z->data, len, (unsigned)len + round + 1000u);
            ck_assert_int_eq(hive_send_msg(to, z), 0);
        }
    }
}

static void t_every_length(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    ck_assert_int_eq(hive_spawn(sends_every_length, &me, NULL), 0);
    unsigned char want[LEN_MAX];
    for (unsigned round = 0; round < 5; round++) {
        for (size_t len = 0; len <= LEN_MAX; len++) {
            for (int zc = 0; zc < 2; zc++) {
                hive_msg *m;
                ck_assert_int_eq(hive_receive(&m, 10000), 0);
                ck_assert_uint_eq(m->tag, zc ? T_B : T_A);
                ck_assert_uint_eq(m->len, len);
                fill(want, len, (unsigned)len + round + (zc ? 1000u : 0u));
                ck_assert_int_eq(memcmp(m->data, want, len), 0);
                hive_msg_free(m);
            }
        }
    }
}
START_TEST(payloads_of_every_length_arrive_whole_copied_and_zero_copy)
{
    run_hive(2, t_every_length, NULL);
}
END_TEST
END_TEST

static void t_selective(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    int vals[] = { 1, 2, 3, 4, 5, 6 };
    uint32_t tags[] = { T_A, T_B, T_A, T_C, T_B, T_A };
    for (int i = 0; i < 6; i++)
        hive_send(me, tags[i], &vals[i], sizeof(int));
    hive_msg *m = recv_tag(T_C, 0);
    ck_assert_int_eq(*(int *)m->data, 4);
    hive_msg_free(m);
    m = recv_tag(T_B, 0);
    ck_assert_int_eq(*(int *)m->data, 2);
    hive_msg_free(m);
    /* The skipped ones keep their order. */
    int expect[] = { 1, 3, 5, 6 };
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(hive_receive(&m, 0), 0);
        ck_assert_int_eq(*(int *)m->data, expect[i]);
        hive_msg_free(m);
    }
}
START_TEST(selective_receive_keeps_order_of_skipped_messages) { run_hive(1, t_selective, NULL); }
END_TEST

static void sends_c_later(void *arg)
{
    hive_pid to = *(hive_pid *)arg;
    hive_msg *m = recv_tag(T_GO, 5000);
    hive_msg_free(m);
    hive_send(to, T_A, NULL, 0);
    hive_send(to, T_C, NULL, 0);
}

static void t_selective_blocks(void *arg)
{
    (void)arg;
    hive_pid me = hive_self(), c;
    hive_spawn(sends_c_later, &me, &c);
    hive_send(c, T_GO, NULL, 0);
    hive_msg *m = recv_tag(T_C, 5000); /* blocks past the T_A */
    hive_msg_free(m);
    m = recv_tag(T_A, 0);
    hive_msg_free(m);
}
START_TEST(selective_receive_waits_for_a_match) { run_hive(2, t_selective_blocks, NULL); }
END_TEST

/* ---- timeouts ---- */

static void t_timeout(void *arg)
{
    (void)arg;
    for (int64_t t = 1; t <= 30; t += 7) {
        uint64_t t0 = now_ms();
        hive_msg *m;
        ck_assert_int_eq(hive_receive(&m, t), -ETIMEDOUT);
        uint64_t el = now_ms() - t0;
        ck_assert_msg(el >= (uint64_t)t, "timeout %lld fired after %llu ms", (long long)t,
                      (unsigned long long)el);
        ck_assert_msg(el <= (uint64_t)t + 100, "timeout %lld fired late: %llu ms", (long long)t,
                      (unsigned long long)el);
    }
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 0), -ETIMEDOUT);
}
START_TEST(receive_timeout_fires_within_tolerance_never_early) { run_hive(2, t_timeout, NULL); }
END_TEST

static void racer(void *arg)
{
    hive_pid to = *(hive_pid *)arg;
    for (int i = 0; i < 2000; i++) {
        hive_send(to, T_SEQ, &i, sizeof i);
        if (i % 7 == 0)
            hive_yield();
    }
}

static void t_race_timeout(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    hive_spawn(racer, &me, NULL);
    /* Tiny timeouts race the sender's messages: every message must be
     * received exactly once, in order, whatever the timeouts did. */
    int next = 0, timeouts = 0;
    while (next < 2000) {
        hive_msg *m;
        int rc = hive_receive(&m, 1);
        if (rc == -ETIMEDOUT) {
            timeouts++;
            continue;
        }
        ck_assert_int_eq(rc, 0);
        ck_assert_int_eq(*(int *)m->data, next);
        next++;
        hive_msg_free(m);
    }
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 0), -ETIMEDOUT);
}
START_TEST(message_racing_a_timeout_is_never_lost) { run_hive(2, t_race_timeout, NULL); }
END_TEST

/* ---- stale pids and bad arguments ---- */

static void exits_now(void *arg) { (void)arg; }

static void t_stale(void *arg)
{
    (void)arg;
    hive_pid c;
    hive_ref r;
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r };
    hive_spawn_opt(exits_now, NULL, &o, &c);
    wait_down(r);
    ck_assert_int_eq(hive_send(c, T_A, NULL, 0), -ESRCH);
    ck_assert(!hive_is_alive(c));
    ck_assert_int_eq(hive_kill(c, HIVE_KILL), -ESRCH);
    ck_assert_int_eq(hive_link(c), -ESRCH);
    /* A new process in the same slot is not reachable through the old pid. */
    hive_pid d;
    hive_spawn_opts o2 = { .flags = HIVE_MONITOR, .monitor = &r };
    for (int i = 0; i < 100; i++) {
        hive_spawn_opt(exits_now, NULL, &o2, &d);
        ck_assert_uint_ne(d, c);
        wait_down(r);
    }
    /* monitor of a dead pid: immediate DOWN noproc */
    ck_assert_int_eq(hive_monitor(c, &r), 0);
    ck_assert_int_eq(wait_down(r), HIVE_NOPROC);
}
START_TEST(stale_pid_gets_esrch_and_never_reaches_a_newer_process) { run_hive(2, t_stale, NULL); }
END_TEST

static bool any(const hive_msg *m, void *c) { (void)m; (void)c; return true; }

static void t_badargs(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    hive_msg *m;
    ck_assert_int_eq(hive_send(HIVE_NOPID, T_A, NULL, 0), -EINVAL);
    ck_assert_int_eq(hive_send(12345, T_A, NULL, 0), -EINVAL);
    ck_assert_int_eq(hive_send(~(hive_pid)0, T_A, NULL, 0), -EINVAL);
    ck_assert_int_eq(hive_send(me, T_A, NULL, 4), -EINVAL);
    ck_assert_int_eq(hive_send(me, HIVE_TAG_DOWN, NULL, 0), -EINVAL);
    ck_assert_int_eq(hive_receive(NULL, 0), -EINVAL);
    ck_assert_int_eq(hive_receive_if(NULL, NULL, &m, 0), -EINVAL);
    ck_assert_int_eq(hive_receive_if(any, NULL, NULL, 0), -EINVAL);
    ck_assert_int_eq(hive_receive(&m, -7), -EINVAL);
    ck_assert_int_eq(hive_spawn(NULL, NULL, NULL), -EINVAL);
    ck_assert_int_eq(hive_spawn_opt(NULL, NULL, NULL, NULL), -EINVAL);
    hive_spawn_opts bad = { .flags = HIVE_MONITOR, .monitor = NULL };
    ck_assert_int_eq(hive_spawn_opt(exits_now, NULL, &bad, NULL), -EINVAL);
    ck_assert_int_eq(hive_monitor(me, NULL), -EINVAL);
    ck_assert_int_eq(hive_monitor(HIVE_NOPID, &(hive_ref){ 0, 0 }), -EINVAL);
    ck_assert_int_eq(hive_kill(HIVE_NOPID, HIVE_KILL), -EINVAL);
    ck_assert_int_eq(hive_link(HIVE_NOPID), -EINVAL);
    ck_assert_int_eq(hive_link(12345), -EINVAL);
    ck_assert(!hive_is_alive(12345));
    ck_assert(!hive_is_alive(HIVE_NOPID));
    ck_assert_int_eq(hive_sleep(-3), -EINVAL);
    /* over max_message (1 KiB in this test) */
    static char big[2048];
    ck_assert_int_eq(hive_send(me, T_A, big, sizeof big), -EMSGSIZE);
    ck_assert_ptr_null(hive_msg_alloc(2048));
    ck_assert_int_eq(hive_send(me, T_A, big, 1024), 0);
    ck_assert_int_eq(hive_receive(&m, 0), 0);
    ck_assert_uint_eq(m->len, 1024);
    hive_msg_free(m);
    hive_msg_free(NULL);
    ck_assert_int_eq(hive_send_msg(me, NULL), -EINVAL);
    /* a failed zero-copy send leaves the message with the caller */
    hive_msg *z = hive_msg_alloc(16);
    ck_assert_ptr_nonnull(z);
    z->tag = T_B;
    ck_assert_int_eq(hive_send_msg(HIVE_NOPID, z), -EINVAL);
    memcpy(z->data, "zero-copy-works", 16);
    ck_assert_int_eq(hive_send_msg(me, z), 0);
    m = recv_tag(T_B, 0);
    ck_assert_str_eq((char *)m->data, "zero-copy-works");
    ck_assert_uint_eq(m->from, me);
    hive_msg_free(m);
    ck_assert_ptr_eq(hive_strerror(-ETIMEDOUT), hive_strerror(-ETIMEDOUT));
    ck_assert_ptr_nonnull(strstr(hive_strerror(-ESRCH), "noproc"));
    ck_assert_ptr_nonnull(strstr(hive_strerror(-ETIMEDOUT), "timeout"));
}
START_TEST(bad_arguments_get_the_contract_errors)
{
    hive_config cfg;
    hive_config_default(&cfg);
    cfg.schedulers = 1;
    cfg.pin = false;
    cfg.max_message = 1024;
    run_hive_cfg(&cfg, t_badargs, NULL);
}
END_TEST

static _Atomic int foreign_rc[4];
static hive_pid foreign_target;

static void *foreign_thread(void *arg)
{
    (void)arg;
    hive_msg *m;
    atomic_store(&foreign_rc[0], hive_receive(&m, 0));
    atomic_store(&foreign_rc[1], hive_sleep(1));
    atomic_store(&foreign_rc[2], hive_yield());
    /* non-blocking sends work from any thread */
    atomic_store(&foreign_rc[3], hive_send(foreign_target, T_A, "x", 2));
    ck_assert_uint_eq(hive_self(), HIVE_NOPID);
    return NULL;
}

static void t_foreign(void *arg)
{
    (void)arg;
    foreign_target = hive_self();
    pthread_t t;
    pthread_create(&t, NULL, foreign_thread, NULL);
    hive_msg *m = recv_tag(T_A, 5000);
    hive_msg_free(m);
    pthread_join(t, NULL);
    ck_assert_int_eq(foreign_rc[0], -EPERM);
    ck_assert_int_eq(foreign_rc[1], -EPERM);
    ck_assert_int_eq(foreign_rc[2], -EPERM);
    ck_assert_int_eq(foreign_rc[3], 0);
}
START_TEST(blocking_call_from_foreign_thread_is_eperm_and_send_works)
{
    run_hive(2, t_foreign, NULL);
}
END_TEST

/* ---- the process table's limit ---- */

static void t_limit(void *arg)
{
    (void)arg;
    /* max_processes = 100: the main process plus 99 more */
    static hive_pid pids[100];
    int n = 0, rc;
    while ((rc = hive_spawn(sleeper_fn, NULL, &pids[n])) == 0)
        n++;
    ck_assert_int_eq(rc, -EAGAIN);
    ck_assert_int_eq(n, 99);
    /* a slot freed by an exit can be used again */
    hive_ref r;
    hive_monitor(pids[0], &r);
    hive_kill(pids[0], HIVE_KILL);
    wait_down(r);
    ck_assert_int_eq(hive_spawn(sleeper_fn, NULL, &pids[0]), 0);
    /* a pid whose slot is beyond the table is not a pid of this runtime */
    ck_assert_int_eq(hive_send(((hive_pid)1 << 32) | ((hive_pid)5000 << 8) | 0xA5, 1, NULL, 0),
                     -EINVAL);
}
/* A process gets its stack at spawn: a stack that cannot be had makes the
 * spawn fail with -ENOMEM (the slot is given back), never a process that
 * cannot run. 2^47 bytes is more than the user address space. */
static void waits_for_go(void *arg)
{
    (void)arg;
    hive_msg *m;
    if (hive_receive(&m, HIVE_INFINITY) == 0)
        hive_msg_free(m);
}

static void t_spawn_enomem(void *arg)
{
    (void)arg;
    hive_spawn_opts o = { .stack_size = (size_t)1 << 47 };
    hive_pid pid = HIVE_NOPID;
    ck_assert_int_eq(hive_spawn_opt(waits_for_go, NULL, &o, &pid), -ENOMEM);
    ck_assert_uint_eq(pid, HIVE_NOPID);
    /* the table lost nothing: a normal spawn still works */
    hive_ref ref;
    hive_spawn_opts ok = { .flags = HIVE_MONITOR, .monitor = &ref };
    ck_assert_int_eq(hive_spawn_opt(waits_for_go, NULL, &ok, &pid), 0);
    hive_send(pid, 1, NULL, 0);
    ck_assert_int_eq(wait_down(ref), HIVE_NORMAL);
}
START_TEST(spawn_without_stack_memory_is_enomem_and_leaves_nothing) { run_hive(2, t_spawn_enomem, NULL); }
END_TEST

/* A warm stack is had at spawn, but a task runs on its scheduler's
 * warmest: the one the last process to exit there left. One scheduler:
 * three tasks spawned together run and exit, leaving three stacks in its
 * cache; then two more are spawned together (each takes a different one
 * of them) and run in turn, and the second runs on the stack the first
 * left, page for page. */
static uintptr_t task_page[2];

static void notes_its_stack_page(void *arg)
{
    task_page[(uintptr_t)arg] = (uintptr_t)__builtin_frame_address(0) & ~(uintptr_t)4095;
}

static void t_task_on_the_warmest_stack(void *arg)
{
    (void)arg;
    hive_ref first[3];
    for (int i = 0; i < 3; i++) {
        hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &first[i] };
        ck_assert_int_eq(hive_spawn_opt(notes_its_stack_page, (void *)(uintptr_t)0, &o, NULL), 0);
    }
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(wait_down(first[i]), HIVE_NORMAL);
    hive_ref r[2];
    for (uintptr_t i = 0; i < 2; i++) {
        hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r[i] };
        ck_assert_int_eq(hive_spawn_opt(notes_its_stack_page, (void *)i, &o, NULL), 0);
    }
    ck_assert_int_eq(wait_down(r[0]), HIVE_NORMAL);
    ck_assert_int_eq(wait_down(r[1]), HIVE_NORMAL);
    ck_assert_uint_ne(task_page[0], 0);
    ck_assert_uint_eq(task_page[1], task_page[0]);
}
START_TEST(a_task_runs_on_the_stack_the_last_exit_on_its_scheduler_left)
{
    run_hive(1, t_task_on_the_warmest_stack, NULL);
}
END_TEST

START_TEST(spawn_past_max_processes_is_eagain)
{
    hive_config cfg;
    hive_config_default(&cfg);
    cfg.schedulers = 2;
    cfg.pin = false;
    cfg.max_processes = 100;
    run_hive_cfg(&cfg, t_limit, NULL);
}
END_TEST

/* A full table with a child that has just died: the DOWN (or EXIT) can
 * reach the parent while the child is still switching out on the other
 * scheduler. Seeing the death must mean its slot can be had. */
static void quick_exit_fn(void *arg)
{
    (void)arg;
}

static void t_limit_churn(void *arg)
{
    (void)arg;
    /* max_processes = 2: the main process and one child at a time */
    for (int i = 0; i < 20000; i++) {
        hive_pid c;
        hive_ref r;
        hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r };
        ck_assert_int_eq(hive_spawn_opt(quick_exit_fn, NULL, &o, &c), 0);
        /* a second child does not fit while the first is alive... */
        if (hive_is_alive(c)) {
            hive_pid c2;
            int rc = hive_spawn(quick_exit_fn, NULL, &c2);
            /* ...unless the first died in between and its slot is back */
            ck_assert(rc == -EAGAIN || (rc == 0 && !hive_is_alive(c)));
            if (rc == 0) {
                hive_ref r2;
                hive_monitor(c2, &r2);
                wait_down(r2);
            }
        }
        wait_down(r);
    }
}
START_TEST(slot_of_a_process_seen_dead_can_be_reused_at_once)
{
    hive_config cfg;
    hive_config_default(&cfg);
    cfg.schedulers = 2;
    cfg.pin = false;
    cfg.max_processes = 2;
    run_hive_cfg(&cfg, t_limit_churn, NULL);
}
END_TEST

/* Free slots live on the stack of the scheduler where their process was
 * released, and a spawner whose own stack is empty takes another's whole
 * (proc.c, "Free slots"). Four spawners on four schedulers and a thread
 * without one spawn and reap children that exit wherever they were run;
 * the table has room for all that are alive at once and little more, so a
 * slot lost between the stacks would soon make a spawn fail. */
#define SLOT_SPAWNERS 4
#define SLOT_BATCH 40
#define SLOT_ROUNDS 500
#define SLOT_TABLE 256
static _Atomic unsigned foreign_children_done;

static void counted_exit_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&foreign_children_done, 1);
}

static void slot_spawner(void *arg)
{
    hive_pid parent = (hive_pid)(uintptr_t)arg;
    for (int round = 0; round < SLOT_ROUNDS; round++) {
        hive_ref r[SLOT_BATCH];
        for (int i = 0; i < SLOT_BATCH; i++) {
            hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r[i] };
            hive_pid c;
            ck_assert_int_eq(hive_spawn_opt(quick_exit_fn, NULL, &o, &c), 0);
        }
        for (int i = 0; i < SLOT_BATCH; i++)
            ck_assert_int_eq(wait_down(r[i]), HIVE_NORMAL);
    }
    hive_send(parent, T_SEQ, NULL, 0);
}

static void *foreign_spawner(void *arg)
{
    (void)arg;
    for (unsigned round = 1; round <= SLOT_ROUNDS / 5; round++) {
        for (int i = 0; i < SLOT_BATCH / 2; i++) {
            int rc;
            while ((rc = hive_spawn(counted_exit_fn, NULL, NULL)) == -EAGAIN)
                sched_yield(); /* a slot between its exit and its release */
            ck_assert_int_eq(rc, 0);
        }
        while (atomic_load(&foreign_children_done) < round * (SLOT_BATCH / 2))
            sched_yield();
    }
    return NULL;
}

static void t_slots_cross(void *arg)
{
    (void)arg;
    atomic_store(&foreign_children_done, 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, foreign_spawner, NULL), 0);
    for (int i = 0; i < SLOT_SPAWNERS; i++)
        ck_assert_int_eq(hive_spawn(slot_spawner, (void *)(uintptr_t)hive_self(), NULL), 0);
    for (int i = 0; i < SLOT_SPAWNERS; i++) {
        hive_msg *m;
        ck_assert_int_eq(hive_receive(&m, 60000), 0);
        hive_msg_free(m);
    }
    pthread_join(th, NULL);
    ck_assert_uint_eq(atomic_load(&foreign_children_done), (SLOT_ROUNDS / 5) * (SLOT_BATCH / 2));
}
START_TEST(slots_freed_on_one_scheduler_serve_spawns_on_every_other)
{
    hive_config cfg;
    hive_config_default(&cfg);
    cfg.schedulers = 4;
    cfg.pin = false;
    cfg.max_processes = SLOT_TABLE;
    run_hive_cfg(&cfg, t_slots_cross, NULL);
}
END_TEST

/* ---- a quiet runtime gives back the stacks of a burst ---- */

/* A burst of BURST processes, each holding its stack in a receive, then
 * their exits: their stacks sit warm in the schedulers' caches and the
 * global pool. With nothing to run for 100 ms, each scheduler trims
 * (sched.c, "Quiet trim"): all but a few of those stacks go back. A
 * plain thread watches the counters and tells the main process, which
 * waits in one receive: while it waits its scheduler runs nothing. */
#define BURST 3000u

static uint64_t quiet_trims(uint64_t *stacks)
{
    hive_sched_stats t;
    hive_stats(NULL, 0, &t);
    *stacks = t.stacks_trimmed;
    return t.quiet_trims;
}

static _Atomic uint64_t trims_wanted, trimmed_wanted;
static hive_pid trim_waiter;

static void *trim_watch(void *arg)
{
    (void)arg;
    uint64_t st = 0;
    /* every scheduler's trim and the burst's stacks given back, or 20 s */
    for (int i = 0; i < 20000 && (quiet_trims(&st) < atomic_load(&trims_wanted) ||
                                  st < atomic_load(&trimmed_wanted));
         i++)
        usleep(1000);
    hive_send(trim_waiter, T_DONE, NULL, 0);
    return NULL;
}

static void t_quiet_trim(void *arg)
{
    unsigned nsched = (unsigned)(uintptr_t)arg;
    static hive_pid kids[BURST];
    hive_ref refs[8];
    for (unsigned i = 0; i < BURST; i++) {
        hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &refs[i % 8] };
        ck_assert_int_eq(hive_spawn_opt(waits_for_go, NULL, &o, &kids[i]), 0);
    }
    /* Counted while the burst holds its stacks: a scheduler that goes
     * quiet while the DOWNs are being taken (slow under the sanitizers)
     * trims before they are all in, and counts here. */
    uint64_t st0, tr0 = quiet_trims(&st0);
    for (unsigned i = 0; i < BURST; i++)
        ck_assert_int_eq(hive_send(kids[i], T_GO, NULL, 0), 0);
    for (unsigned i = 0; i < BURST; i++) {
        hive_msg *m = recv_tag(HIVE_TAG_DOWN, 10000);
        ck_assert_ptr_nonnull(m);
        hive_msg_free(m);
    }
    ck_assert_int_eq(live_processes_settled(1), 1);
    atomic_store(&trims_wanted, tr0 + nsched);
    atomic_store(&trimmed_wanted, st0 + BURST - 64u * (nsched + 1));
    trim_waiter = hive_self();
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, trim_watch, NULL), 0);
    hive_msg *m = recv_tag(T_DONE, 30000);
    ck_assert_ptr_nonnull(m);
    hive_msg_free(m);
    pthread_join(th, NULL);
    uint64_t st1, tr1 = quiet_trims(&st1);
    ck_assert_uint_ge(tr1, tr0 + nsched);
    /* each cache keeps 64, the pool 64: the rest of the burst's went */
    ck_assert_uint_ge(st1 - st0, BURST - 64u * (nsched + 1));
    /* and the runtime goes on: a child gets a stack and answers */
    hive_pid me = hive_self(), c;
    ck_assert_int_eq(hive_spawn(child_replies, &me, &c), 0);
    m = recv_tag(T_A, 5000);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(*(int *)m->data, 42);
    hive_msg_free(m);
}
START_TEST(a_quiet_runtime_gives_back_the_stacks_of_a_burst)
{
    run_hive(2, t_quiet_trim, (void *)(uintptr_t)2);
}
END_TEST

/* trim_ms 0: no scheduler ever trims. The main process waits 300 ms in a
 * receive nobody answers, three times the default quiet spell, with the
 * stacks of a burst's exits in the caches; no trim may be counted. */
static void t_no_trim(void *arg)
{
    (void)arg;
    hive_pid kids[256];
    for (unsigned i = 0; i < 256; i++)
        ck_assert_int_eq(hive_spawn(waits_for_go, NULL, &kids[i]), 0);
    for (unsigned i = 0; i < 256; i++)
        ck_assert_int_eq(hive_send(kids[i], T_GO, NULL, 0), 0);
    ck_assert_int_eq(live_processes_settled(1), 1);
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 300), -ETIMEDOUT);
    uint64_t st;
    ck_assert_uint_eq(quiet_trims(&st), 0);
    ck_assert_uint_eq(st, 0);
}
START_TEST(trim_ms_0_never_trims)
{
    hive_config cfg = test_config(2);
    cfg.trim_ms = 0;
    run_hive_cfg(&cfg, t_no_trim, NULL);
}
END_TEST

/* Trimmed stacks serve the next burst: 4 schedulers, bursts of children
 * that write 2 KiB of their stacks, hold them until told to go, and check
 * what they wrote; between the bursts a pause longer than the quiet spell,
 * in which the schedulers trim their caches and the global pool, so each
 * burst after the first runs on stacks that were trimmed (given back to
 * the kernel, unmapped, or kept among the warm few) and taken again. */
#define TRIM_RACE_BURST  800u
#define TRIM_RACE_ROUNDS 4

static void stack_writer(void *arg)
{
    hive_pid parent = (hive_pid)(uintptr_t)arg;
    volatile unsigned char frame[2048];
    for (unsigned i = 0; i < sizeof frame; i++)
        frame[i] = (unsigned char)(i * 7);
    hive_msg *m;
    if (hive_receive(&m, HIVE_INFINITY) == 0)
        hive_msg_free(m);
    int ok = 1;
    for (unsigned i = 0; i < sizeof frame; i++)
        ok &= frame[i] == (unsigned char)(i * 7);
    hive_send(parent, T_A, &ok, sizeof ok);
}

static void t_trim_race(void *arg)
{
    (void)arg;
    static hive_pid kids[TRIM_RACE_BURST];
    uint64_t st0, tr0 = quiet_trims(&st0);
    for (int round = 0; round < TRIM_RACE_ROUNDS; round++) {
        for (unsigned i = 0; i < TRIM_RACE_BURST; i++)
            ck_assert_int_eq(hive_spawn(stack_writer, (void *)(uintptr_t)hive_self(), &kids[i]),
                             0);
        for (unsigned i = 0; i < TRIM_RACE_BURST; i++)
            ck_assert_int_eq(hive_send(kids[i], T_GO, NULL, 0), 0);
        for (unsigned i = 0; i < TRIM_RACE_BURST; i++) {
            hive_msg *m = recv_tag(T_A, 10000);
            ck_assert_ptr_nonnull(m);
            ck_assert_int_eq(*(int *)m->data, 1);
            hive_msg_free(m);
        }
        /* longer than the quiet spell: every scheduler trims */
        hive_sleep(150);
    }
    uint64_t st1, tr1 = quiet_trims(&st1);
    ck_assert_uint_gt(tr1, tr0);
}
START_TEST(stacks_trimmed_between_bursts_serve_the_next_burst_intact)
{
    run_hive(4, t_trim_race, NULL);
}
END_TEST

/* ---- a polling loop is preempted like any other ---- */

/* On one scheduler, a process that polls with zero time-outs (a receive
 * that finds nothing, a call to a name nobody holds) until another process
 * on the same scheduler tells it to stop: the polls cost reductions, so
 * the poller's slice ends and the other gets to run. Were a failed poll
 * free, the poller would keep the scheduler and the test would never
 * end. */
static void poller(void *arg)
{
    hive_pid parent = (hive_pid)(uintptr_t)arg;
    hive_msg *m, *reply;
    unsigned long polls = 0;
    while (hive_receive(&m, 0) == -ETIMEDOUT) {
        ck_assert_int_eq(hive_call_name("nobody-holds-this", T_SEQ, NULL, 0, &reply, 1000), -ESRCH);
        polls++;
    }
    ck_assert_uint_eq(m->tag, T_SEQ);
    hive_msg_free(m);
    ck_assert_uint_gt(polls, 0);
    hive_send(parent, T_SEQ, NULL, 0);
}

static void stopper(void *arg)
{
    hive_send((hive_pid)(uintptr_t)arg, T_SEQ, NULL, 0);
}

static void t_poll_preempted(void *arg)
{
    (void)arg;
    hive_pid p;
    ck_assert_int_eq(hive_spawn(poller, (void *)(uintptr_t)hive_self(), &p), 0);
    /* Let the poller start first: it runs until its slice ends. */
    hive_yield();
    ck_assert_int_eq(hive_spawn(stopper, (void *)(uintptr_t)p, NULL), 0);
    hive_msg *m = recv_tag(T_SEQ, 10000);
    hive_msg_free(m);
}
START_TEST(process_polling_with_zero_timeouts_is_preempted)
{
    run_hive(1, t_poll_preempted, NULL);
}
END_TEST

/* ---- back-pressure: a send to a flooded receiver ends the slice ---- */

static uint64_t backpressure_yields(void)
{
    hive_sched_stats t;
    ck_assert_int_ge(hive_stats(NULL, 0, &t), 1);
    return t.backpressure_yields;
}

/* A queue that nobody is taking from (a parent that gathers later) does
 * not slow its senders: a process floods its own mailbox, no send yields,
 * every send succeeds at once, and nothing is lost. */
static void t_flood_self(void *arg)
{
    (void)arg;
    enum { N = 20000 };
    hive_pid me = hive_self();
    uint64_t y0 = backpressure_yields();
    for (uint32_t i = 0; i < N; i++)
        ck_assert_int_eq(hive_send(me, T_SEQ, &i, sizeof i), 0);
    ck_assert_uint_eq(backpressure_yields() - y0, 0);
    for (uint32_t i = 0; i < N; i++) {
        hive_msg *m = recv_tag(T_SEQ, 5000);
        ck_assert_uint_eq(*(uint32_t *)m->data, i);
        hive_msg_free(m);
    }
}
START_TEST(flooding_a_queue_nobody_takes_from_never_yields)
{
    run_hive(2, t_flood_self, NULL);
}
END_TEST

/* One scheduler, so the interleaving is fixed: two senders each send a
 * slice's worth (budget 2000) per turn, the receiver takes a slice's worth
 * per turn, so it ends its slice with messages queued and marks its
 * mailbox flooded; from then on each send ends its sender's slice. */
#define FL_SENDERS 2
static struct {
    hive_pid main, recv;
    uint32_t n; /* per sender */
    _Atomic uint32_t bad;
} fl;

static void flood_receiver(void *arg)
{
    (void)arg;
    uint32_t next[FL_SENDERS] = { 0 };
    for (uint32_t k = 0; k < fl.n * FL_SENDERS; k++) {
        hive_msg *m;
        ck_assert_int_eq(hive_receive(&m, 5000), 0);
        uint32_t *v = m->data;
        if (v[0] >= FL_SENDERS || v[1] != next[v[0]]++)
            atomic_fetch_add(&fl.bad, 1);
        hive_msg_free(m);
    }
    hive_send(fl.main, T_DONE, NULL, 0);
}

static void flood_sender(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < fl.n; i++) {
        uint32_t v[2] = { id, i };
        ck_assert_int_eq(hive_send(fl.recv, T_SEQ, v, sizeof v), 0);
    }
}

static void t_flood_receiver(void *arg)
{
    bool on = *(bool *)arg;
    fl.main = hive_self();
    fl.n = 30000;
    atomic_store(&fl.bad, 0);
    uint64_t y0 = backpressure_yields();
    ck_assert_int_eq(hive_spawn(flood_receiver, NULL, &fl.recv), 0);
    for (uintptr_t i = 0; i < FL_SENDERS; i++)
        ck_assert_int_eq(hive_spawn(flood_sender, (void *)i, NULL), 0);
    hive_msg_free(recv_tag(T_DONE, 10000));
    uint64_t y = backpressure_yields() - y0;
    ck_assert_uint_eq(atomic_load(&fl.bad), 0);
    if (on)
        ck_assert_uint_gt(y, 0);
    else
        ck_assert_uint_eq(y, 0);
}
START_TEST(flooding_a_busy_receiver_yields_to_it_and_loses_nothing)
{
    static bool modes[] = { true, false };
    for (int k = 0; k < 2; k++) {
        hive_config cfg;
        hive_config_default(&cfg);
        cfg.schedulers = 1;
        cfg.pin = false;
        cfg.backpressure = modes[k];
        run_hive_cfg(&cfg, t_flood_receiver, &modes[k]);
    }
}
END_TEST

/* ---- many processes, many messages ---- */

#define NPROC 1000
#define NMSG 1000
static struct {
    hive_pid collector;
    _Atomic uint64_t received;
} mm;

static void mm_sender(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < NMSG; i++) {
        uint32_t v[2] = { id, i };
        hive_send(mm.collector, T_SEQ, v, sizeof v);
    }
}

static void mm_collector(void *arg)
{
    hive_pid main = *(hive_pid *)arg;
    static uint32_t next[NPROC];
    memset(next, 0, sizeof next);
    for (uint64_t k = 0; k < (uint64_t)NPROC * NMSG; k++) {
        hive_msg *m;
        ck_assert_int_eq(hive_receive(&m, 10000), 0);
        uint32_t *v = m->data;
        ck_assert_msg(v[1] == next[v[0]], "sender %u: got %u, expected %u", v[0], v[1],
                      next[v[0]]);
        next[v[0]]++;
        hive_msg_free(m);
    }
    hive_send(main, T_DONE, NULL, 0);
}

static void t_many(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    hive_spawn(mm_collector, &me, &mm.collector);
    for (uintptr_t i = 0; i < NPROC; i++)
        ck_assert_int_eq(hive_spawn(mm_sender, (void *)i, NULL), 0);
    hive_msg *m = recv_tag(T_DONE, 60000);
    hive_msg_free(m);
    hive_sched_stats tot;
    ck_assert_int_ge(hive_stats(NULL, 0, &tot), 1);
    ck_assert_uint_ge(tot.msgs_sent, (uint64_t)NPROC * NMSG);
}
START_TEST(thousand_processes_thousand_messages_no_loss_per_pair_order)
{
    run_hive(4, t_many, NULL);
}
END_TEST

/* ---- stress: more schedulers than cores, random exits ---- */

static _Atomic uint64_t stress_done;

static void stress_worker(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 2654435761u + 1;
    hive_pid parent = 0;
    hive_msg *m;
    if (hive_receive(&m, 10000) != 0)
        return;
    parent = m->from;
    hive_msg_free(m);
    for (int i = 0; i < 50; i++) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        switch (seed % 5) {
        case 0:
            hive_yield();
            break;
        case 1: { /* spawn a short-lived child and watch it */
            hive_ref r;
            hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r };
            if (hive_spawn_opt(exits_now, NULL, &o, NULL) == 0)
                wait_down(r);
            break;
        }
        case 2:
            hive_send(parent, T_A, &i, sizeof i);
            break;
        case 3:
            if (seed % 97 == 0) { /* random death */
                atomic_fetch_add(&stress_done, 1);
                hive_exit(1000 + i);
            }
            break;
        default:
            hive_receive(&m, 0) == 0 ? hive_msg_free(m) : (void)0;
        }
    }
    atomic_fetch_add(&stress_done, 1);
}

static void t_stress(void *arg)
{
    (void)arg;
    hive_pid me = hive_self();
    enum { N = 2000 };
    static hive_ref refs[N];
    atomic_store(&stress_done, 0);
    for (uintptr_t i = 0; i < N; i++) {
        hive_pid p;
        hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &refs[i] };
        ck_assert_int_eq(hive_spawn_opt(stress_worker, (void *)i, &o, &p), 0);
        hive_send(p, T_GO, &me, sizeof me);
    }
    for (int i = 0; i < N; i++) {
        hive_reason r = wait_down(refs[i]);
        ck_assert(r == HIVE_NORMAL || (r >= 1000 && r < 1050));
    }
    ck_assert_uint_eq(atomic_load(&stress_done), N);
}
START_TEST(stress_many_schedulers_random_exits) { run_hive(8, t_stress, NULL); }
END_TEST

/* ---- shutdown ---- */

static void forever(void *arg)
{
    (void)arg;
    hive_msg *m;
    for (;;)
        if (hive_receive(&m, HIVE_INFINITY) == 0)
            hive_msg_free(m);
}

static void sleeper(void *arg) { (void)arg; hive_sleep(HIVE_INFINITY); }

static void spinner(void *arg)
{
    (void)arg;
    for (;;)
        hive_yield();
}

static void trapper(void *arg)
{
    (void)arg;
    hive_trap_exits(true);
    hive_msg *m;
    /* gets the shutdown as a message, ignores it; killed after the grace */
    for (;;)
        if (hive_receive(&m, HIVE_INFINITY) == 0)
            hive_msg_free(m);
}

static void t_shutdown(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        hive_spawn(forever, NULL, NULL);
        hive_spawn(sleeper, NULL, NULL);
    }
    hive_spawn(spinner, NULL, NULL);
    hive_spawn(trapper, NULL, NULL);
    hive_pid me = hive_self();
    hive_send(me, T_A, NULL, 0);  /* main exits with a message still queued */
}
START_TEST(shutdown_with_processes_still_running)
{
    hive_config cfg;
    hive_config_default(&cfg);
    cfg.schedulers = 3;
    cfg.pin = false;
    cfg.shutdown_ms = 50;
    uint64_t t0 = now_ms();
    run_hive_cfg(&cfg, t_shutdown, NULL);
    ck_assert_uint_lt(now_ms() - t0, 5000);
    /* and the runtime can start again afterwards */
    run_hive_cfg(&cfg, t_shutdown, NULL);
}
END_TEST

/* ---- stack overflow (under the sanitizers it is theirs to report) ---- */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#pragma GCC diagnostic ignored "-Winfinite-recursion"
static void deep(int n)
{
    volatile char buf[3000];
    buf[0] = (char)n;
    deep(n + 1);
    buf[1] = buf[0];
}

static void overflows(void *arg)
{
    (void)arg;
    deep(0);
}

static void t_overflow(void *arg)
{
    (void)arg;
    hive_ref r;
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r, .stack_size = 64 * 1024 };
    hive_spawn_opt(overflows, NULL, &o, NULL);
    wait_down(r);
}
START_TEST(stack_overflow_aborts_with_a_message) { run_hive(1, t_overflow, NULL); }
END_TEST

/* Past the guard budget: an arena stack whose canary was overwritten is
 * caught when the process next switches out. */
static void deep_then_yield(int n)
{
    volatile char buf[1024];
    buf[0] = (char)n;
    if (n < 300)
        deep_then_yield(n + 1);
    else
        hive_yield();
    buf[1] = buf[0];
}

static void overflows_then_yields(void *arg)
{
    (void)arg;
    deep_then_yield(0);
}

static void t_overflow_canary(void *arg)
{
    (void)arg;
    /* Occupy the arena's lower stacks so the overflow runs through them
     * (not into unmapped memory) and reaches its yield. */
    for (int i = 0; i < 40; i++)
        hive_spawn(sleeper, NULL, NULL);
    hive_yield();
    hive_ref r;
    hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &r };
    hive_spawn_opt(overflows_then_yields, NULL, &o, NULL);
    wait_down(r);
}
START_TEST(stack_overflow_without_guard_is_caught_by_the_canary)
{
    hive_config cfg;
    hive_config_default(&cfg);
    cfg.schedulers = 1;
    cfg.pin = false;
    cfg.guard_stacks = 0;
    /* 16 KiB stacks: 300 frames of 1 KiB run far past the bottom, into the
     * arena's neighbouring stack, without leaving the mapping. */
    cfg.stack_size = 16 * 1024;
    run_hive_cfg(&cfg, t_overflow_canary, NULL);
}
END_TEST
#endif

static Suite *suite(void)
{
    Suite *s = suite_create("process");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, spawned_process_runs_and_exits_normally);
    tcase_add_test(tc, hive_exit_reason_reaches_monitors);
    tcase_add_test(tc, messages_arrive_in_send_order);
    tcase_add_test(tc, payloads_of_every_length_arrive_whole_copied_and_zero_copy);
    tcase_add_test(tc, selective_receive_keeps_order_of_skipped_messages);
    tcase_add_test(tc, selective_receive_waits_for_a_match);
    tcase_add_test(tc, receive_timeout_fires_within_tolerance_never_early);
    tcase_add_test(tc, message_racing_a_timeout_is_never_lost);
    tcase_add_test(tc, stale_pid_gets_esrch_and_never_reaches_a_newer_process);
    tcase_add_test(tc, bad_arguments_get_the_contract_errors);
    tcase_add_test(tc, blocking_call_from_foreign_thread_is_eperm_and_send_works);
    tcase_add_test(tc, a_task_runs_on_the_stack_the_last_exit_on_its_scheduler_left);
    tcase_add_test(tc, spawn_past_max_processes_is_eagain);
    tcase_add_test(tc, spawn_without_stack_memory_is_enomem_and_leaves_nothing);
    tcase_add_test(tc, slot_of_a_process_seen_dead_can_be_reused_at_once);
    tcase_add_test(tc, slots_freed_on_one_scheduler_serve_spawns_on_every_other);
    tcase_add_test(tc, process_polling_with_zero_timeouts_is_preempted);
    tcase_add_test(tc, a_quiet_runtime_gives_back_the_stacks_of_a_burst);
    tcase_add_test(tc, trim_ms_0_never_trims);
    tcase_add_test(tc, stacks_trimmed_between_bursts_serve_the_next_burst_intact);
    tcase_add_test(tc, flooding_a_queue_nobody_takes_from_never_yields);
    tcase_add_test(tc, flooding_a_busy_receiver_yields_to_it_and_loses_nothing);
    tcase_add_test(tc, thousand_processes_thousand_messages_no_loss_per_pair_order);
    tcase_add_test(tc, stress_many_schedulers_random_exits);
    tcase_add_test(tc, shutdown_with_processes_still_running);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    tcase_add_test_raise_signal(tc, stack_overflow_aborts_with_a_message, SIGABRT);
    tcase_add_test_raise_signal(tc, stack_overflow_without_guard_is_caught_by_the_canary, SIGABRT);
#endif
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(suite)
