/* c2c-probe: how long one cache line takes to move between two CPUs.
 *
 * Two threads, pinned to CPU A and CPU B, hand one 64-byte line back and
 * forth (each waits for the other's store, then stores): every hand-over
 * is one transfer of the line from one core's cache to the other's. The
 * probe prints the mean nanoseconds per one-way transfer.
 *
 * Why the bench runs it: on a virtual machine the host decides where the
 * guest's CPUs run, and may move them while the guest runs. Two vCPUs that
 * share a last-level cache hand a line over in about 50 ns; two that do
 * not, in 200-300 ns (docs/performance.md). Every workload whose messages
 * cross schedulers pays that price per message, for every runtime alike,
 * so bench/run.pl probes before each run and keeps the figure with the
 * run's result.
 *
 * usage: c2c-probe [--cpus A,B] [--transfers N] [--json]
 *   default: the first two CPUs this process may run on, 200,000 transfers
 *   (about 10-60 ms).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The line: written by each side in turn. The main thread stores odd
 * values and waits for the next even one; the other thread the reverse
 * (each store is the partner of the other side's acquire load). */
static _Alignas(64) _Atomic long line;
static _Alignas(64) long rounds;   /* round trips: two transfers each */
static int cpu_b;
static int pin_failed;

static int pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *answerer(void *arg)
{
    (void)arg;
    if (pin(cpu_b))
        pin_failed = 1;
    for (long i = 0; i < rounds; i++) {
        while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 1)
            ;
        atomic_store_explicit(&line, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: c2c-probe [--cpus A,B] [--transfers N] [--json]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int a = -1, b = -1, json = 0;
    long transfers = 200000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpus") && i + 1 < argc) {
            if (sscanf(argv[++i], "%d,%d", &a, &b) != 2 || a < 0 || b < 0 || a == b)
                usage();
        } else if (!strcmp(argv[i], "--transfers") && i + 1 < argc) {
            char *end;
            transfers = strtol(argv[++i], &end, 10);
            if (*end || transfers < 2 || transfers > 1000000000L)
                usage();
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else {
            usage();
        }
    }
    if (a < 0) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set)) {
            perror("c2c-probe: sched_getaffinity");
            return 1;
        }
        for (int c = 0; c < CPU_SETSIZE && b < 0; c++)
            if (CPU_ISSET(c, &set)) {
                if (a < 0)
                    a = c;
                else
                    b = c;
            }
        if (b < 0) {
            fprintf(stderr, "c2c-probe: this process may run on one CPU only\n");
            return 1;
        }
    }
    cpu_b = b;
    rounds = transfers / 2;
    if (pin(a)) {
        fprintf(stderr, "c2c-probe: cannot run on CPU %d\n", a);
        return 1;
    }
    pthread_t t;
    int rc = pthread_create(&t, NULL, answerer, NULL);
    if (rc) {
        fprintf(stderr, "c2c-probe: pthread_create: %s\n", strerror(rc));
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < rounds; i++) {
        atomic_store_explicit(&line, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&line, memory_order_acquire) != 2 * i + 2)
            ;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_join(t, NULL);
    if (pin_failed) {
        fprintf(stderr, "c2c-probe: cannot run on CPU %d\n", b);
        return 1;
    }
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
                (double)(2 * rounds);
    if (json)
        printf("{\"cpus\":[%d,%d],\"transfers\":%ld,\"c2c_ns\":%.1f}\n", a, b, 2 * rounds, ns);
    else
        printf("CPU %d <-> CPU %d: %.1f ns per cache-line transfer (%ld transfers)\n", a, b, ns,
               2 * rounds);
    return 0;
}
