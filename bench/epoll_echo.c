/* epoll_echo: the baseline for the echo server benchmark — a plain C TCP
 * echo server on epoll, the way one is usually written: one thread per
 * core, each with its own SO_REUSEPORT listener and its own epoll set
 * (edge-triggered, non-blocking sockets), read until EAGAIN and write
 * what was read back. A write that cannot finish keeps the rest and waits
 * for EPOLLOUT before reading that connection again.
 *
 * usage: epoll-echo [--host ADDR] [--port N] [--threads N]
 * Prints "listening on ADDR:PORT" and stops on SIGINT/SIGTERM (exit 0).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 16384

struct conn {
    int    fd;
    size_t pending, off;   /* bytes read but not yet written back */
    char   buf[BUF_SIZE];
};

struct worker {
    pthread_t th;
    int       lfd, ep;
};

static int stop_fd; /* eventfd: written once at SIGINT/SIGTERM, read by none */

static int listen_on(const struct sockaddr_storage *ss, socklen_t sl)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)ss, sl) < 0 || listen(fd, 4096) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static void conn_close(struct worker *w, struct conn *c)
{
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Writes what is pending; false when the connection is to be closed. */
static bool flush(struct worker *w, struct conn *c)
{
    while (c->off < c->pending) {
        ssize_t n = send(c->fd, c->buf + c->off, c->pending - c->off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct epoll_event ev = { .events = EPOLLOUT | EPOLLET, .data.ptr = c };
                epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
                return true;
            }
            return false;
        }
        c->off += (size_t)n;
    }
    c->off = c->pending = 0;
    return true;
}

/* Reads until EAGAIN, echoing each read; false to close. */
static bool serve(struct worker *w, struct conn *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->buf, sizeof c->buf, 0);
        if (n == 0)
            return false;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN;
        }
        c->pending = (size_t)n;
        c->off = 0;
        if (!flush(w, c))
            return false;
        if (c->pending) /* waiting for EPOLLOUT */
            return true;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct epoll_event evs[256];
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    epoll_ctl(w->ep, EPOLL_CTL_ADD, w->lfd, &ev);
    ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = &stop_fd };
    epoll_ctl(w->ep, EPOLL_CTL_ADD, stop_fd, &ev);
    for (;;) {
        int n = epoll_wait(w->ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &stop_fd)
                return NULL;
            if (p == NULL) {
                for (;;) {
                    int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = malloc(sizeof *c);
                    if (!c) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    c->pending = c->off = 0;
                    struct epoll_event cev = { .events = EPOLLIN | EPOLLET | EPOLLRDHUP,
                                               .data.ptr = c };
                    epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &cev);
                    if (!serve(w, c)) /* data may have come with the connection */
                        conn_close(w, c);
                }
                continue;
            }
            struct conn *c = p;
            bool ok = true;
            if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                ok = false;
            } else if (c->pending) {
                if (evs[i].events & EPOLLOUT) {
                    ok = flush(w, c);
                    if (ok && !c->pending) {
                        struct epoll_event cev = { .events = EPOLLIN | EPOLLET | EPOLLRDHUP,
                                                   .data.ptr = c };
                        epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &cev);
                        ok = serve(w, c);
                    }
                }
            } else {
                ok = serve(w, c);
            }
            if (!ok)
                conn_close(w, c);
        }
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: epoll-echo [--host ADDR] [--port N] [--threads N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    const char *port = "0";
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (!strcmp(argv[i], "--host"))
            host = argv[++i];
        else if (!strcmp(argv[i], "--port"))
            port = argv[++i];
        else if (!strcmp(argv[i], "--threads"))
            threads = atol(argv[++i]);
        else
            usage();
    }
    if (threads < 1 || threads > 1024)
        usage();
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICHOST }, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        fprintf(stderr, "epoll-echo: %s: %s\n", host, gai_strerror(rc));
        return 1;
    }
    struct sockaddr_storage ss;
    memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
    socklen_t sl = ai->ai_addrlen;
    freeaddrinfo(ai);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    stop_fd = eventfd(0, EFD_CLOEXEC);

    struct worker *w = calloc((size_t)threads, sizeof *w);
    /* the first listener fixes the port (0 = ephemeral); the others join it */
    for (long t = 0; t < threads; t++) {
        w[t].lfd = listen_on(&ss, sl);
        if (w[t].lfd < 0) {
            fprintf(stderr, "epoll-echo: listen: %s\n", strerror(-w[t].lfd));
            return 1;
        }
        if (t == 0)
            getsockname(w[0].lfd, (struct sockaddr *)&ss, &sl);
        w[t].ep = epoll_create1(EPOLL_CLOEXEC);
    }
    char name[INET6_ADDRSTRLEN];
    unsigned short p;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, name, sizeof name);
        p = ntohs(a->sin6_port);
        printf("listening on [%s]:%u\n", name, p);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, name, sizeof name);
        p = ntohs(a->sin_port);
        printf("listening on %s:%u\n", name, p);
    }
    fflush(stdout);
    for (long t = 0; t < threads; t++)
        pthread_create(&w[t].th, NULL, worker_main, &w[t]);
    int sig;
    sigwait(&set, &sig);
    uint64_t one = 1;
    if (write(stop_fd, &one, sizeof one) < 0)
        return 1;
    for (long t = 0; t < threads; t++)
        pthread_join(w[t].th, NULL);
    return 0;
}
