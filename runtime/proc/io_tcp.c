/*
 * TCP conveniences over the I/O calls: a listening socket, and a
 * connection made with hive_io_connect (so it parks the process, not the
 * scheduler). Names are resolved with getaddrinfo, which may block the
 * scheduler thread for a name that is not in /etc/hosts: numeric
 * addresses never do.
 */
#include <hive.h>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/backend.h"
#include "runtime/proc/proc.h"
#include "runtime/proc/receive.h"

static int resolve(const char *host, uint16_t port, bool passive, struct addrinfo **out)
{
    char svc[8];
    snprintf(svc, sizeof svc, "%u", (unsigned)port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    int rc = getaddrinfo(host, svc, &hints, out);
    if (rc == 0)
        return 0;
    switch (rc) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
        return -ENOENT;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_AGAIN:  return -EAGAIN;
    case EAI_SYSTEM: return errno ? -errno : -EINVAL;
    default:         return -EINVAL;
    }
}

static int listen_on(int family, const struct sockaddr *sa, socklen_t len, int backlog, bool dual)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -errno;
    iob_fd_new(fd);
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* Inherited by accepted connections: small replies go out at once. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (dual)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

int hive_tcp_listen(const char *host, uint16_t port, int backlog, int *fd)
{
    if (!fd)
        return -EINVAL;
    if (backlog <= 0)
        backlog = SOMAXCONN;
    if (!host) {
        /* Every address, IPv4 and IPv6, on one dual-stack socket; a host
         * without IPv6 gets an IPv4 one. */
        struct sockaddr_in6 a6;
        memset(&a6, 0, sizeof a6);
        a6.sin6_family = AF_INET6;
        a6.sin6_port = htons(port);
        a6.sin6_addr = in6addr_any;
        int rc = listen_on(AF_INET6, (struct sockaddr *)&a6, sizeof a6, backlog, true);
        if (rc == -EAFNOSUPPORT || rc == -EADDRNOTAVAIL) {
            struct sockaddr_in a4;
            memset(&a4, 0, sizeof a4);
            a4.sin_family = AF_INET;
            a4.sin_port = htons(port);
            a4.sin_addr.s_addr = htonl(INADDR_ANY);
            rc = listen_on(AF_INET, (struct sockaddr *)&a4, sizeof a4, backlog, false);
        }
        if (rc < 0)
            return rc;
        *fd = rc;
        return 0;
    }
    struct addrinfo *ai;
    int rc = resolve(host, port, true, &ai);
    if (rc)
        return rc;
    rc = -EADDRNOTAVAIL;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        rc = listen_on(a->ai_family, a->ai_addr, a->ai_addrlen, backlog, false);
        if (rc >= 0)
            break;
    }
    freeaddrinfo(ai);
    if (rc < 0)
        return rc;
    *fd = rc;
    return 0;
}

int hive_tcp_connect(const char *host, uint16_t port, int64_t timeout_ms, int *fd)
{
    if (!fd || !host)
        return -EINVAL;
    if (!cur_proc)
        return -EPERM;
    int rc = proc_check_timeout(timeout_ms);
    if (rc)
        return rc;
    struct addrinfo *ai;
    if ((rc = resolve(host, port, false, &ai)) != 0)
        return rc;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int64_t left = timeout_ms;
        if (timeout_ms > 0) {
            struct timespec t1;
            clock_gettime(CLOCK_MONOTONIC, &t1);
            int64_t el = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
            left = timeout_ms - el;
            if (left <= 0) {
                rc = -ETIMEDOUT;
                break;
            }
        }
        int s = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
        if (s < 0) {
            rc = -errno;
            continue;
        }
        iob_fd_new(s);
        int one = 1;
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        rc = hive_io_connect(s, a->ai_addr, a->ai_addrlen, left);
        if (rc == 0) {
            *fd = s;
            break;
        }
        close(s);
        if (rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(ai);
    return rc;
}
