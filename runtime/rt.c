/*
 * Runtime start and stop: hive_main.
 *
 * Start: validate the config, set up tables, one io_uring per scheduler
 * (failing at once, with the reason, if io_uring is unavailable), spawn the
 * main process into the global queue, start the scheduler threads.
 * Stop: when the main process exits, every other process gets a shutdown
 * exit signal; those still alive after shutdown_ms (they trap exits) are
 * killed. When none is left the schedulers leave their loops, the threads
 * are joined and every allocation is released.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc/alloc.h"
#include "alloc/stack.h"
#include "runtime/config.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/signal.h"
#include "runtime/proc/registry.h"
#include "runtime/sched/sched.h"
#include "runtime/proc/timer.h"
#include "runtime/proc/io.h"


static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv;
static bool main_done;

void rt_notify_exit(bool main_exited)
{
    pthread_mutex_lock(&done_lock);
    if (main_exited)
        main_done = true;
    pthread_cond_broadcast(&done_cv);
    pthread_mutex_unlock(&done_lock);
}

static void kill_all(hive_reason reason)
{
    unsigned n = proc_table_slots();
    for (unsigned i = 0; i < n; i++) {
        struct proc *p = proc_at(i);
        if (!p)
            continue;
        hive_pid pid = atomic_load_explicit(&p->pid, memory_order_acquire);
        if (pid)
            hive_kill(pid, reason);
    }
}

int64_t rt_live(void)
{
    /* acquire: pairs with the release increments in proc_release and
     * proc_count_spawn. Exits first: see proc_count_spawn. */
    uint64_t exits = atomic_load_explicit(&g_rt->outside_st.exits, memory_order_acquire);
    for (unsigned i = 0; i < g_rt->n; i++)
        exits += atomic_load_explicit(&g_rt->scheds[i].st.exits, memory_order_acquire);
    uint64_t spawns = atomic_load_explicit(&g_rt->outside_st.spawns, memory_order_acquire);
    for (unsigned i = 0; i < g_rt->n; i++)
        spawns += atomic_load_explicit(&g_rt->scheds[i].st.spawns, memory_order_acquire);
    return (int64_t)(spawns - exits);
}

/* Waits until no process is alive or deadline (absolute CLOCK_MONOTONIC ns). */
static bool wait_empty(uint64_t deadline)
{
    pthread_mutex_lock(&done_lock);
    while (rt_live() > 0) {
        uint64_t now = clock_precise_ns();
        if (now >= deadline)
            break;
        uint64_t d = deadline - now;
        if (d > 20000000)
            d = 20000000; /* look again now and then */
        /* the condition variable waits on CLOCK_MONOTONIC too (its attr) */
        uint64_t t = now + d;
        struct timespec ts = { .tv_sec = (time_t)(t / 1000000000u),
                               .tv_nsec = (long)(t % 1000000000u) };
        pthread_cond_timedwait(&done_cv, &done_lock, &ts);
    }
    bool empty = rt_live() == 0;
    pthread_mutex_unlock(&done_lock);
    return empty;
}

static void free_leftovers(void)
{
    /* Messages that raced a process's exit, and records of dead slots. */
    unsigned n = proc_table_slots();
    for (unsigned i = 0; i < n; i++) {
        struct proc *p = proc_at(i);
        if (!p)
            continue;
        for (;;) {
            struct mq_node *qn;
            enum mbox_pop_result r = mbox_pop(&p->mbox, &qn);
            if (r != MBOX_GOT)
                break;
            mnode_free((struct mnode *)qn);
        }
        sig_free_records(p);
    }
}

int hive_main(const hive_config *cfg_in, void (*main_fn)(void *), void *arg)
{
    if (!main_fn)
        return -EINVAL;
    if (g_rt)
        return -EBUSY;
    hive_config cfg;
    if (cfg_in)
        cfg = *cfg_in;
    else
        hive_config_default(&cfg);
    int rc = config_validate(&cfg);
    if (rc)
        return rc;
    if (cfg.schedulers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg.schedulers = n > 0 ? (unsigned)n : 1;
    }

    struct rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return -ENOMEM;
    rt->cfg = cfg;
    rt->n = cfg.schedulers;
    rt->base_ns = clock_precise_ns();
    pthread_mutex_init(&rt->gq_lock, NULL);
    pthread_mutex_init(&rt->outside_lock, NULL);
    atomic_store(&rt->ref_counter, 0);

    const char *why = NULL;
    rc = ring_select(cfg.io_backend, &rt->outside, &why);
    if (rc) {
        fprintf(stderr, "hive: cannot start: %s (%s)\n", why ? why : "io_uring unavailable",
                strerror(-rc));
        free(rt);
        return rc;
    }
    /* One line when io_uring was passed over without being asked to. */
    if (why && cfg.io_backend == HIVE_IO_AUTO)
        fprintf(stderr, "hive: I/O on epoll: %s\n", why);
    rt->scheds = aligned_alloc(64, sizeof(struct sched) * rt->n);
    if (!rt->scheds) {
        ring_fini(&rt->outside);
        free(rt);
        return -ENOMEM;
    }
    g_rt = rt;
    spin_gov_init(&rt->spin);
    unsigned made = 0;
    for (; made < rt->n; made++) {
        rc = sched_init(&rt->scheds[made], made, &why);
        if (rc) {
            fprintf(stderr, "hive: cannot start scheduler %u: %s (%s)\n", made,
                    why ? why : "io_uring setup failed", strerror(-rc));
            goto fail_scheds;
        }
    }
    if ((rc = proc_table_init(cfg.max_processes)) != 0)
        goto fail_scheds;
    stack_global_init(cfg.stack_size, cfg.guard_stacks);
    timer_global_init();
    io_global_init();
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&done_cv, &ca);
    pthread_condattr_destroy(&ca);
    main_done = false;
    if ((rc = registry_init()) != 0)
        goto fail_tables;
    /* What the scheduler loops poll besides their run queues. */
    sched_add_source(&timer_source);
    sched_add_source(&io_source);
    sched_install_segv();


    hive_pid main_pid;
    rc = proc_spawn(main_fn, NULL, arg, NULL, &main_pid);
    if (rc)
        goto fail_tables;
    rt->main_pid = main_pid;

    unsigned started = 0;
    for (; started < rt->n; started++) {
        if (pthread_create(&rt->scheds[started].thread, NULL, sched_thread, &rt->scheds[started])) {
            rc = -EAGAIN;
            fprintf(stderr, "hive: cannot create scheduler thread %u\n", started);
            break;
        }
    }

    /* Wait for the main process. */
    pthread_mutex_lock(&done_lock);
    while (!main_done && started == rt->n)
        pthread_cond_wait(&done_cv, &done_lock);
    pthread_mutex_unlock(&done_lock);

    /* Shut everything else down: a shutdown exit, then kill after the grace. */
    kill_all(HIVE_SHUTDOWN);
    if (!wait_empty(clock_precise_ns() + (uint64_t)cfg.shutdown_ms * 1000000u)) {
        do {
            kill_all(HIVE_KILL);
        } while (!wait_empty(clock_precise_ns() + 100000000u));
    }
    atomic_store(&rt->stopping, true);
    sched_wake_all();
    for (unsigned i = 0; i < started; i++)
        pthread_join(rt->scheds[i].thread, NULL);

fail_tables:
    free_leftovers();
    for (unsigned i = 0; i < rt->n; i++)
        sched_fini(&rt->scheds[i]);
    mnode_depot_flush();
    made = 0;
    registry_fini();
    timer_global_fini();
    stack_global_fini();
    proc_table_fini();
    pthread_cond_destroy(&done_cv);
fail_scheds:
    for (unsigned i = 0; i < made; i++)
        sched_fini(&rt->scheds[i]);
    ring_fini(&rt->outside);
    spin_gov_fini(&rt->spin);
    pthread_mutex_destroy(&rt->gq_lock);
    pthread_mutex_destroy(&rt->outside_lock);
    free(rt->scheds);
    free(rt);
    g_rt = NULL;
    return rc;
}
