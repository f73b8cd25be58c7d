/* echo-load: the load generator for the echo benchmark, the same for hive's
 * echo server and the epoll baseline. CONNS connections spread over THREADS
 * threads (one epoll set each); every connection sends a SIZE-byte message,
 * waits for all of it to come back (checked byte for byte), and sends the
 * next, so each connection has one request in flight. Latency is measured
 * per request from the send to the last byte back, on CLOCK_MONOTONIC.
 *
 * usage: echo-load --port N [--host ADDR] [--conns C] [--threads T]
 *                  [--size BYTES] [--duration S] [--warmup S]
 *        echo-load --port N [--host ADDR] --idle N
 *
 * Load mode prints one JSON line: requests, seconds, rps, p50_us, p99_us,
 * errors (connections that failed or echoed wrong bytes), total (every
 * request, the warm-up's too). Only requests
 * that end inside the measured window (after the warm-up) count.
 * Idle mode opens N connections, does one echo on each (so the server has
 * taken every one), prints "idle N", and holds them until stdin reaches
 * EOF or SIGTERM/SIGINT comes; then it closes them and exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Latency histogram, log-linear: 32 buckets per power of two of ns
 * (about 3% resolution), up to 2^40 ns. */
#define SUB 32
#define HBUCKETS (41 * SUB)

struct hist {
    uint64_t n[HBUCKETS];
};

static unsigned hbucket(uint64_t ns)
{
    if (ns < SUB)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    unsigned sub = (unsigned)(ns >> (msb - 5)) & (SUB - 1);
    unsigned b = (msb - 4) * SUB + sub;
    return b < HBUCKETS ? b : HBUCKETS - 1;
}

static double hvalue(unsigned b) /* the middle of bucket b, ns */
{
    if (b < SUB)
        return b;
    unsigned msb = b / SUB + 4, sub = b % SUB;
    double lo = ldexp(1.0, (int)msb) + sub * ldexp(1.0, (int)msb - 5);
    return lo + ldexp(1.0, (int)msb - 6);
}

static double hpercentile(const struct hist *h, double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < HBUCKETS; i++)
        total += h->n[i];
    if (!total)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)total), acc = 0;
    for (unsigned i = 0; i < HBUCKETS; i++) {
        acc += h->n[i];
        if (acc >= want)
            return hvalue(i);
    }
    return hvalue(HBUCKETS - 1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct conn {
    int      fd;
    size_t   got;
    uint64_t t0;
    bool     dead;
};

struct thr {
    pthread_t   th;
    int         first, count; /* its connections */
    struct hist h;
    uint64_t    requests, errors;
    uint64_t    total;        /* warm-up included */
};

static struct addrinfo *target;
static size_t msg_size = 64;
static char *msg;
static struct conn *conns;
static uint64_t t_start, t_end; /* measured window, ns */

static int connect_one(void)
{
    int fd = socket(target->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, target->ai_addr, target->ai_addrlen) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* One blocking echo on a fresh connection: true if it came back whole. */
static bool echo_once(int fd)
{
    char buf[256];
    size_t n = msg_size < sizeof buf ? msg_size : sizeof buf, got = 0;
    struct timeval tv = { .tv_sec = 10 }; /* a server that never answers fails the run */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (send(fd, msg, n, MSG_NOSIGNAL) != (ssize_t)n)
        return false;
    while (got < n) {
        ssize_t r = recv(fd, buf + got, n - got, 0);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return memcmp(buf, msg, n) == 0;
}

static bool send_msg(struct conn *c)
{
    c->t0 = now_ns();
    c->got = 0;
    size_t off = 0;
    while (off < msg_size) { /* small messages: one send, in practice */
        ssize_t n = send(c->fd, msg + off, msg_size - off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return false;
        }
        off += (size_t)n;
    }
    return true;
}

static void *thr_main(void *arg)
{
    struct thr *t = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    char *buf = malloc(msg_size);
    for (int i = t->first; i < t->first + t->count; i++) {
        struct conn *c = &conns[i];
        fcntl(c->fd, F_SETFL, O_NONBLOCK);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        if (!send_msg(c)) {
            c->dead = true;
            t->errors++;
        }
    }
    struct epoll_event evs[128];
    for (;;) {
        uint64_t now = now_ns();
        if (now >= t_end)
            break;
        int n = epoll_wait(ep, evs, 128, (int)((t_end - now) / 1000000u) + 1);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            ssize_t r = recv(c->fd, buf + c->got, msg_size - c->got, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (r <= 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->dead = true;
                t->errors++;
                continue;
            }
            c->got += (size_t)r;
            if (c->got < msg_size)
                continue;
            uint64_t end = now_ns();
            if (memcmp(buf, msg, msg_size) != 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->dead = true;
                t->errors++;
                continue;
            }
            t->total++;
            if (end >= t_start && end < t_end) {
                t->h.n[hbucket(end - c->t0)]++;
                t->requests++;
            }
            if (!send_msg(c)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->dead = true;
                t->errors++;
            }
        }
    }
    close(ep);
    free(buf);
    return NULL;
}

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

static void usage(void)
{
    fprintf(stderr, "usage: echo-load --port N [--host ADDR] [--conns C] [--threads T]\n"
                    "                 [--size BYTES] [--duration S] [--warmup S] | --idle N\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *port = NULL;
    long nconns = 50, threads = 2, idle = -1;
    double duration = 5, warmup = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        const char *a = argv[i], *v = argv[++i];
        if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port"))
            port = v;
        else if (!strcmp(a, "--conns"))
            nconns = atol(v);
        else if (!strcmp(a, "--threads"))
            threads = atol(v);
        else if (!strcmp(a, "--size"))
            msg_size = (size_t)atol(v);
        else if (!strcmp(a, "--duration"))
            duration = atof(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atof(v);
        else if (!strcmp(a, "--idle"))
            idle = atol(v);
        else
            usage();
    }
    if (!port || nconns < 1 || threads < 1 || msg_size < 1 || msg_size > (1u << 20) ||
        duration <= 0 || warmup < 0)
        usage();
    if (idle >= 0)
        nconns = idle;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < (rlim_t)nconns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    int rc = getaddrinfo(host, port, &hints, &target);
    if (rc) {
        fprintf(stderr, "echo-load: %s: %s\n", host, gai_strerror(rc));
        return 1;
    }
    msg = malloc(msg_size);
    for (size_t i = 0; i < msg_size; i++)
        msg[i] = (char)('a' + i % 26);
    conns = calloc((size_t)nconns, sizeof *conns);
    for (long i = 0; i < nconns; i++) {
        int fd = connect_one();
        if (fd < 0) {
            fprintf(stderr, "echo-load: connection %ld: %s\n", i, strerror(-fd));
            return 1;
        }
        conns[i].fd = fd;
    }

    if (idle >= 0) {
        for (long i = 0; i < nconns; i++) {
            if (!echo_once(conns[i].fd)) {
                fprintf(stderr, "echo-load: connection %ld: no echo\n", i);
                return 1;
            }
        }
        struct sigaction sa = { .sa_handler = on_signal };
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        printf("idle %ld\n", nconns);
        fflush(stdout);
        char c;
        while (!stop && read(0, &c, 1) > 0)
            ;
        for (long i = 0; i < nconns; i++)
            close(conns[i].fd);
        free(conns);
        free(msg);
        freeaddrinfo(target);
        return 0;
    }

    if (threads > nconns)
        threads = nconns;
    struct thr *t = calloc((size_t)threads, sizeof *t);
    t_start = now_ns() + (uint64_t)(warmup * 1e9);
    t_end = t_start + (uint64_t)(duration * 1e9);
    for (long i = 0, first = 0; i < threads; i++) {
        t[i].first = (int)first;
        t[i].count = (int)(nconns / threads + (i < nconns % threads));
        first += t[i].count;
        pthread_create(&t[i].th, NULL, thr_main, &t[i]);
    }
    static struct hist all;
    uint64_t requests = 0, errors = 0, total = 0;
    for (long i = 0; i < threads; i++) {
        pthread_join(t[i].th, NULL);
        requests += t[i].requests;
        errors += t[i].errors;
        total += t[i].total;
        for (unsigned b = 0; b < HBUCKETS; b++)
            all.n[b] += t[i].h.n[b];
    }
    for (long i = 0; i < nconns; i++)
        close(conns[i].fd);
    printf("{\"requests\":%llu,\"seconds\":%.3f,\"rps\":%.0f,\"p50_us\":%.1f,\"p99_us\":%.1f,"
           "\"errors\":%llu,\"total\":%llu,\"conns\":%ld,\"size\":%zu}\n",
           (unsigned long long)requests, duration, (double)requests / duration,
           hpercentile(&all, 0.50) / 1000.0, hpercentile(&all, 0.99) / 1000.0,
           (unsigned long long)errors, (unsigned long long)total, nconns, msg_size);
    free(t);
    free(conns);
    free(msg);
    freeaddrinfo(target);
    return errors ? 1 : 0;
}
