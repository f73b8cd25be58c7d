/*
 * io_bench: request/response over loopback TCP through hive's I/O calls.
 * conns client processes each make `rounds` round trips of `size` bytes
 * with an echo process (blocking hive_io_send / hive_io_recv on both
 * sides), all at once. Prints round trips per second and what the ring
 * did per I/O operation (io_uring_enter calls, parks).
 *
 *   cc -O2 -Iinclude io/bench/io_bench.c build-io/libhive.a -luring -ljemalloc \
 *      -lpthread -o /tmp/io_bench && /tmp/io_bench 100 2000 64
 */
#include <hive.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

enum { T_READY = 1, T_GO, T_DONE };

static int conns = 100, rounds = 2000, size = 64;
static int lfd;
static uint16_t port;
static hive_pid main_pid;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool match_tag(const hive_msg *m, void *ctx)
{
    return m->tag == *(uint32_t *)ctx;
}

static void wait_tag(uint32_t tag)
{
    hive_msg *m;
    if (hive_receive_if(match_tag, &tag, &m, 60000) != 0) {
        fprintf(stderr, "io_bench: no message %u\n", tag);
        exit(1);
    }
    hive_msg_free(m);
}

static int recv_all(int fd, char *buf, int len)
{
    int got = 0;
    while (got < len) {
        ssize_t n = hive_io_recv(fd, buf + got, (size_t)(len - got), 10000);
        if (n <= 0)
            return (int)n;
        got += (int)n;
    }
    return got;
}

static void echo(void *arg)
{
    (void)arg;
    int fd = hive_io_accept(lfd, NULL, NULL, 60000);
    char *buf = malloc((size_t)size);
    for (;;) {
        int n = recv_all(fd, buf, size);
        if (n <= 0)
            break;
        if (hive_io_send(fd, buf, (size_t)size, 10000) != size)
            break;
    }
    free(buf);
    hive_io_close(fd);
}

static void client(void *arg)
{
    (void)arg;
    int fd;
    if (hive_tcp_connect("127.0.0.1", port, 10000, &fd) != 0)
        exit(2);
    char *buf = calloc(1, (size_t)size);
    hive_send(main_pid, T_READY, NULL, 0);
    wait_tag(T_GO);
    for (int i = 0; i < rounds; i++) {
        if (hive_io_send(fd, buf, (size_t)size, 10000) != size || recv_all(fd, buf, size) != size)
            exit(3);
    }
    free(buf);
    hive_io_close(fd);
    hive_send(main_pid, T_DONE, NULL, 0);
}

static void bench(void *arg)
{
    (void)arg;
    main_pid = hive_self();
    if (hive_tcp_listen("127.0.0.1", 0, 4096, &lfd) != 0)
        exit(4);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    port = ntohs(sa.sin_port);
    hive_pid *cl = malloc(sizeof *cl * (size_t)conns);
    for (int i = 0; i < conns; i++) {
        hive_spawn(echo, NULL, NULL);
        hive_spawn(client, NULL, &cl[i]);
    }
    for (int i = 0; i < conns; i++)
        wait_tag(T_READY);
    hive_sched_stats a, b;
    hive_stats(NULL, 0, &a);
    uint64_t t0 = now_ns();
    for (int i = 0; i < conns; i++)
        hive_send(cl[i], T_GO, NULL, 0);
    for (int i = 0; i < conns; i++)
        wait_tag(T_DONE);
    uint64_t t1 = now_ns();
    hive_stats(NULL, 0, &b);
    double s = (double)(t1 - t0) / 1e9;
    double ops = (double)(b.io_submitted - a.io_submitted);
    printf("conns %d size %d: %.0f round trips/s, %.3f io_uring_enter per I/O op, "
           "%.3f parks per I/O op, %.0f ops\n",
           conns, size, (double)conns * rounds / s, (double)(b.ring_enters - a.ring_enters) / ops,
           (double)(b.parks - a.parks) / ops, ops);
    free(cl);
    hive_io_close(lfd);
}

int main(int argc, char **argv)
{
    if (argc > 1) conns = atoi(argv[1]);
    if (argc > 2) rounds = atoi(argv[2]);
    if (argc > 3) size = atoi(argv[3]);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    hive_config cfg;
    hive_config_default(&cfg);
    if (hive_config_from_env(&cfg))
        return 1;
    return hive_main(&cfg, bench, NULL) ? 1 : 0;
}
