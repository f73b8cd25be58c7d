/*
 * Chaos: a three-level tree (root -> 10 supervisors -> 10 supervisors
 * each -> 10 named gen_server workers each, 1,000 workers) under call load
 * from several clients while a killer kills random workers for a while.
 *
 * At the end: every call returned its echo or a clear error (-ESRCH,
 * -ECONNRESET: the worker died), none timed out (a request lost by a live
 * worker would); no supervisor above the workers restarted (intensity was
 * never exceeded); every supervisor reports its full set of children, all
 * alive and answering; and the process count and the tree's memory are
 * back to where they were before the chaos.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "harness.h"

#define FANOUT 10
#define NMID FANOUT
#define NLEAF (FANOUT * FANOUT)
#define NWORKER (FANOUT * FANOUT * FANOUT)
#define NCLIENT 6
#define CHAOS_MS 1500

enum { T_ECHO = 1, T_REPORT, T_KILLS };

struct wdef {
    int  id;
    char name[8];
};

struct supdef {
    hive_child_spec specs[FANOUT];
    char ids[FANOUT][8];
};

static struct wdef workers[NWORKER];
static struct supdef leaves[NLEAF], mids[NMID], root;
static atomic_bool stop;
static hive_pid g_main;

static void w_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    (void)state;
    hive_reply(from, req->tag, req->data, req->len);
}

static const hive_gen_server worker_gs = { .handle_call = w_call };

static int start_worker(void *arg, hive_pid *out)
{
    struct wdef *w = arg;
    return hive_gs_start(&worker_gs, w, &(hive_gs_opts){ .name = w->name, .flags = HIVE_LINK }, out);
}

static int start_sup(void *arg, hive_pid *out)
{
    struct supdef *d = arg;
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.flags = HIVE_LINK;
    o.intensity = 1000000;  /* the workers' supervisors absorb every kill */
    o.period_ms = 1000;
    if (d == &root || (d >= mids && d < mids + NMID)) {
        o.intensity = 3;    /* above them nothing may restart */
        o.period_ms = 60000;
    }
    return hive_sup_start(d->specs, FANOUT, &o, out);
}

static void build_tree(void)
{
    for (int i = 0; i < NWORKER; i++) {
        workers[i].id = i;
        snprintf(workers[i].name, sizeof workers[i].name, "w%03d", i);
    }
    for (int l = 0; l < NLEAF; l++)
        for (int k = 0; k < FANOUT; k++) {
            snprintf(leaves[l].ids[k], 8, "w%d", k);
            leaves[l].specs[k] = (hive_child_spec){ .id = leaves[l].ids[k], .start = start_worker,
                                                    .arg = &workers[l * FANOUT + k] };
        }
    for (int m = 0; m < NMID; m++)
        for (int k = 0; k < FANOUT; k++) {
            snprintf(mids[m].ids[k], 8, "s%d", k);
            mids[m].specs[k] = (hive_child_spec){ .id = mids[m].ids[k], .start = start_sup,
                                                  .arg = &leaves[m * FANOUT + k],
                                                  .type = HIVE_SUPERVISOR };
        }
    for (int k = 0; k < FANOUT; k++) {
        snprintf(root.ids[k], 8, "m%d", k);
        root.specs[k] = (hive_child_spec){ .id = root.ids[k], .start = start_sup, .arg = &mids[k],
                                           .type = HIVE_SUPERVISOR };
    }
}

struct tally {
    long ok, gone, other;
};

static void client(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    struct tally t = { 0 };
    uint64_t seq = (uint64_t)seed << 32;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        int i = (int)(rand_r(&seed) % NWORKER);
        seq++;
        hive_msg *m;
        int rc = hive_call_name(workers[i].name, T_ECHO, &seq, sizeof seq, &m, 10000);
        if (rc == 0) {
            if (m->len == sizeof seq && *(uint64_t *)m->data == seq)
                t.ok++;
            else
                t.other++;
            hive_msg_free(m);
        } else if (rc == -ESRCH || rc == -ECONNRESET) {
            t.gone++;
        } else {
            t.other++;
            fprintf(stderr, "chaos: call to %s: %s\n", workers[i].name, hive_strerror(rc));
        }
    }
    hive_send(g_main, T_REPORT, &t, sizeof t);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void killer(void *arg)
{
    (void)arg;
    unsigned seed = 12345;
    long kills = 0;
    uint64_t end = now_ms() + CHAOS_MS;
    while (now_ms() < end) {
        int i = (int)(rand_r(&seed) % NWORKER);
        hive_pid p = hive_whereis(workers[i].name);
        if (p == HIVE_NOPID) {
            hive_yield();
            continue;
        }
        hive_ref r;
        hive_monitor(p, &r);
        hive_kill(p, kills % 2 ? HIVE_KILL : (hive_reason)13);
        hive_msg *m;
        ck_assert_int_eq(hive_receive_if(match_down, &r, &m, 10000), 0);
        hive_msg_free(m);
        kills++;
        if (kills % 4 == 0)
            hive_sleep(1);
    }
    hive_send(g_main, T_KILLS, &kills, sizeof kills);
}

/* Walks the tree: the pids of every supervisor (root first), checking that
 * each lists its full set of children. */
static int tree_pids(hive_pid top, hive_pid *sups, hive_pid *wpids)
{
    int n = 0;
    sups[n++] = top;
    hive_child_info mi[FANOUT + 1], li[FANOUT + 1], wi[FANOUT + 1];
    ck_assert_int_eq(hive_sup_which_children(top, mi, FANOUT + 1), FANOUT);
    for (int m = 0; m < FANOUT; m++) {
        ck_assert_uint_ne(mi[m].pid, HIVE_NOPID);
        ck_assert_int_eq(mi[m].type, HIVE_SUPERVISOR);
        sups[n++] = mi[m].pid;
        ck_assert_int_eq(hive_sup_which_children(mi[m].pid, li, FANOUT + 1), FANOUT);
        for (int l = 0; l < FANOUT; l++) {
            ck_assert_uint_ne(li[l].pid, HIVE_NOPID);
            sups[n++] = li[l].pid;
            ck_assert_int_eq(hive_sup_which_children(li[l].pid, wi, FANOUT + 1), FANOUT);
            for (int w = 0; w < FANOUT; w++) {
                ck_assert_str_eq(wi[w].id, leaves[m * FANOUT + l].ids[w]);
                ck_assert_uint_ne(wi[w].pid, HIVE_NOPID);
                ck_assert_int_eq(wi[w].type, HIVE_WORKER);
                wpids[(m * FANOUT + l) * FANOUT + w] = wi[w].pid;
            }
        }
    }
    return n;
}

static size_t tree_memory(const hive_pid *pids, int n, const hive_pid *wpids)
{
    size_t sum = 0;
    struct hive_process_info pi;
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(hive_process_info(pids[i], &pi), 0);
        ck_assert_uint_eq(pi.message_queue_len, 0);
        sum += pi.memory;
    }
    for (int i = 0; i < NWORKER; i++) {
        ck_assert_int_eq(hive_process_info(wpids[i], &pi), 0);
        sum += pi.memory;
    }
    return sum;
}

static void t_chaos(void *arg)
{
    (void)arg;
    g_main = hive_self();
    build_tree();
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.intensity = 3;
    o.period_ms = 60000;
    o.name = "root";
    hive_pid top;
    ck_assert_int_eq(hive_sup_start(root.specs, FANOUT, &o, &top), 0);
    static hive_pid sups0[1 + NMID + NLEAF], sups1[1 + NMID + NLEAF];
    static hive_pid w0[NWORKER], w1[NWORKER];
    int nsup = tree_pids(top, sups0, w0);
    ck_assert_int_eq(nsup, 1 + NMID + NLEAF);
    long base_procs = live_processes();
    size_t base_mem = tree_memory(sups0, nsup, w0);

    atomic_store(&stop, false);
    hive_ref cref[NCLIENT], kref;
    for (int i = 0; i < NCLIENT; i++)
        ck_assert_int_eq(hive_spawn_opt(client, (void *)(uintptr_t)(i + 1),
                                        &(hive_spawn_opts){ .flags = HIVE_MONITOR, .monitor = &cref[i] },
                                        NULL),
                         0);
    ck_assert_int_eq(hive_spawn_opt(killer, NULL, &(hive_spawn_opts){ .flags = HIVE_MONITOR, .monitor = &kref },
                                    NULL),
                     0);
    hive_msg *m = recv_tag(T_KILLS, 60000);
    long kills = *(long *)m->data;
    hive_msg_free(m);
    ck_assert_int_eq(wait_down(kref), HIVE_NORMAL);
    atomic_store(&stop, true);
    struct tally all = { 0 };
    for (int i = 0; i < NCLIENT; i++) {
        m = recv_tag(T_REPORT, 60000);
        struct tally *t = m->data;
        all.ok += t->ok;
        all.gone += t->gone;
        all.other += t->other;
        hive_msg_free(m);
        ck_assert_int_eq(wait_down(cref[i]), HIVE_NORMAL);
    }
    ck_assert_int_gt(kills, 0);
    ck_assert_int_gt(all.ok, 0);
    ck_assert_int_eq(all.other, 0);

    /* Settle: a worker's death reaches its supervisor a moment after the
     * killer's DOWN; wait until every listed worker is a live one. */
    for (int round = 0;; round++) {
        bool all_alive = true;
        tree_pids(top, sups1, w1);
        for (int i = 0; i < NWORKER && all_alive; i++)
            all_alive = hive_is_alive(w1[i]);
        if (all_alive)
            break;
        ck_assert_int_lt(round, 100000);
        hive_yield();
    }
    /* no supervisor above the workers was restarted */
    for (int i = 0; i < nsup; i++)
        ck_assert_uint_eq(sups1[i], sups0[i]);
    /* every worker answers under its name, and is the one listed */
    for (int i = 0; i < NWORKER; i++) {
        uint64_t x = (uint64_t)i;
        ck_assert_int_eq(hive_call_name(workers[i].name, T_ECHO, &x, sizeof x, &m, 10000), 0);
        ck_assert_uint_eq(m->from, w1[i]);
        hive_msg_free(m);
    }
    /* back to the baseline: processes, and the tree's memory (but the one
     * stack per scheduler that the last idle handler there keeps lent) */
    ck_assert_int_eq(live_processes_settled(base_procs), base_procs);
    size_t mem = tree_memory(sups1, nsup, w1);
    ck_assert_msg(mem <= base_mem + 2 * 256 * 1024 + 4096, "tree memory %zu, was %zu", mem, base_mem);
    fprintf(stderr, "chaos: %ld kills, %ld calls answered, %ld to a dead worker; tree memory %zu -> %zu\n",
            kills, all.ok, all.gone, base_mem, mem);
    ck_assert_int_eq(hive_gs_stop(top, HIVE_SHUTDOWN, 60000), 0);
    ck_assert_int_eq(live_processes_settled(1), 1);
}
START_TEST(a_tree_of_1000_workers_survives_random_kills_under_call_load) { run_hive(2, t_chaos, NULL); }
END_TEST

Suite *chaos_suite(void)
{
    Suite *s = suite_create("sup_chaos");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, a_tree_of_1000_workers_survives_random_kills_under_call_load);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(chaos_suite)
