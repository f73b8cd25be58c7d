/* server: flags, listener, acceptors and the stop on a signal, for the
 * example servers. See server.h. */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { SRV_TAG_STOP = 0x5e570001u };

static _Atomic hive_pid main_pid;
/* jemalloc (the allocator hive links): give freed pages back to the kernel
 * over 1 s instead of its default 10 s. A server that has just set up
 * thousands of connections and gone idle otherwise keeps the pages its
 * set-up freed, and does not touch the allocator again to purge them: 10,000
 * idle recv_async connections measured 2.23 KiB each with the default,
 * 1.55 KiB with this (bench/servers.pl --only idle, docs/io.md), at no
 * throughput cost measurable here (scripts/ab-servers.sh). MALLOC_CONF in
 * the environment still overrides it; without jemalloc (sanitizer builds)
 * nothing reads it. */
const char *malloc_conf = "dirty_decay_ms:1000";

static sigset_t stop_signals;

bool srv_parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || s[0] == '-' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

void srv_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* The signal thread: outside the runtime, it only waits for SIGINT or
 * SIGTERM and tells the main process (hive_send works from any thread). */
static void *signal_thread(void *arg)
{
    (void)arg;
    int sig;
    if (sigwait(&stop_signals, &sig) != 0)
        return NULL;
    hive_pid p;
    struct timespec ms = { 0, 1000000 };
    while ((p = atomic_load(&main_pid)) == HIVE_NOPID) /* a signal before the runtime ran */
        nanosleep(&ms, NULL);
    hive_send(p, SRV_TAG_STOP, &sig, sizeof sig);
    return NULL;
}

static void acceptor(void *arg)
{
    srv *s = arg;
    for (;;) {
        int fd = hive_io_accept(s->listen_fd, NULL, NULL, HIVE_INFINITY);
        if (fd < 0) {
            if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
                hive_sleep(10); /* out of descriptors: let connections end */
                continue;
            }
            if (fd == -EINTR || fd == -ECONNABORTED || fd == -EAGAIN || fd == -EPROTO)
                continue;
            fprintf(stderr, "%s: accept: %s\n", s->name, hive_strerror(fd));
            return;
        }
        srv_nodelay(fd);
        if (s->start_conn(fd) != 0)
            close(fd);
    }
}

static bool is_stop(const hive_msg *m, void *ctx)
{
    (void)ctx;
    return m->tag == SRV_TAG_STOP;
}

static int print_address(srv *s)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char name[INET6_ADDRSTRLEN];
    if (getsockname(s->listen_fd, (struct sockaddr *)&ss, &sl) < 0)
        return -errno;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, name, sizeof name);
        printf("listening on [%s]:%u\n", name, ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, name, sizeof name);
        printf("listening on %s:%u\n", name, ntohs(a->sin_port));
    }
    fflush(stdout);
    return 0;
}

static void main_proc(void *arg)
{
    srv *s = arg;
    int rc;
    atomic_store(&main_pid, hive_self());
    s->schedulers = (unsigned)hive_stats(NULL, 0, NULL);
    if (s->schedulers < 1)
        s->schedulers = 1;
    if (s->start && (rc = s->start()) != 0) {
        fprintf(stderr, "%s: start: %s\n", s->name, hive_strerror(rc));
        exit(1);
    }
    rc = hive_tcp_listen(s->host, s->port, 4096, &s->listen_fd);
    if (rc < 0) {
        fprintf(stderr, "%s: listen on %s:%u: %s\n", s->name, s->host, s->port,
                hive_strerror(rc));
        exit(1);
    }
    if ((rc = print_address(s)) < 0) {
        fprintf(stderr, "%s: getsockname: %s\n", s->name, hive_strerror(rc));
        exit(1);
    }
    /* one acceptor per scheduler: each parks in an accept of its own, so a
       burst of connections is taken on every core */
    unsigned acceptors = s->acceptors ? s->acceptors : s->schedulers;
    for (unsigned i = 0; i < acceptors; i++) {
        hive_pid p;
        if ((rc = hive_spawn(acceptor, s, &p)) != 0) {
            fprintf(stderr, "%s: spawn: %s\n", s->name, hive_strerror(rc));
            exit(1);
        }
    }
    hive_msg *m;
    while (hive_receive_if(is_stop, NULL, &m, HIVE_INFINITY) != 0)
        ;
    hive_msg_free(m);
    if (s->stop)
        s->stop();
    /* returning ends the runtime: acceptors and connections are shut down,
       their I/O cancelled */
}

static void usage(srv *s, FILE *f)
{
    fprintf(f, "usage: %s [--host ADDR] [--port N] [--acceptors N]%s%s\n"
               "  --host ADDR   address to listen on (default 127.0.0.1)\n"
               "  --port N      port, 0 = ephemeral (default 0)\n"
               "  --acceptors N processes accepting connections (default: one per scheduler)\n"
               "Prints \"listening on ADDR:PORT\"; stops on SIGINT or SIGTERM.\n"
               "Runtime settings from HIVE_* variables (HIVE_SCHEDULERS, ...).\n",
            s->name, s->usage ? " " : "", s->usage ? s->usage : "");
}

int srv_main(srv *s, int argc, char **argv)
{
    s->host = "127.0.0.1";
    s->port = 0;
    s->listen_fd = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        unsigned long n;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(s, stdout);
            return 0;
        } else if (!strcmp(a, "--host") && v) {
            s->host = v;
            i++;
        } else if (!strcmp(a, "--port") && v && srv_parse_uint(v, 0, 65535, &n)) {
            s->port = (uint16_t)n;
            i++;
        } else if (!strcmp(a, "--acceptors") && v && srv_parse_uint(v, 1, 1024, &n)) {
            s->acceptors = (unsigned)n;
            i++;
        } else {
            bool used = false;
            if (!s->flag || s->flag(a, v, &used) != 0) {
                fprintf(stderr, "%s: bad flag or value: %s%s%s\n", s->name, a, v ? " " : "",
                        v ? v : "");
                usage(s, stderr);
                return 2;
            }
            if (used)
                i++;
        }
    }
    hive_config cfg;
    hive_config_default(&cfg);
    /* The servers leave their schedulers unpinned (HIVE_PIN=1 pins them),
     * as nginx and redis-server leave theirs: on a machine that also runs
     * other busy threads (a load generator, other services) a pinned
     * scheduler cannot move off a core another thread wants, and is
     * queued behind it. Measured on the 2-core bench machine with the
     * client on the same host: echo 54k -> 95k requests/s, kv GET 29k ->
     * 45k (bench/servers.pl, docs/io.md). */
    cfg.pin = false;
    if (hive_config_from_env(&cfg))
        return 2;

    /* Every thread the runtime starts inherits this mask, so the signals
       reach only the signal thread's sigwait. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t th;
    if (pthread_create(&th, NULL, signal_thread, NULL) != 0) {
        fprintf(stderr, "%s: cannot start the signal thread\n", s->name);
        return 1;
    }
    pthread_detach(th);
    int rc = hive_main(&cfg, main_proc, s);
    if (rc) {
        fprintf(stderr, "%s: hive: %s\n", s->name, hive_strerror(rc));
        return 1;
    }
    return 0;
}

int srv_conn_init(size_t size, void *arg, void **state)
{
    srv_conn *c = calloc(1, size);
    if (!c)
        return -ENOMEM;
    c->fd = (int)(intptr_t)arg;
    c->rcv = SRV_RCV_MIN;
    int rc = hive_io_recv_async(c->fd, c->rcv, &c->req);
    if (rc < 0) {
        free(c);
        return rc;
    }
    *state = c;
    return 0;
}
