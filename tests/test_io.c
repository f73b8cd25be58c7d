/*
 * I/O: accept/connect/recv/send/read/write, time-outs (never early, the
 * socket usable after), peer resets, half-closed connections, refused
 * connects, recv_async in a gen_server and in a receive beside messages,
 * calls from foreign threads.
 *
 * Every test synchronises on messages, monitors and the sockets
 * themselves; the only waits are the time-outs under test.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

enum { T_READY = 1, T_GO, T_DONE, T_PORT, T_HELLO };

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint16_t port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* A connected loopback pair made through the API: *a is the accepted end. */
static void tcp_pair(int *a, int *b)
{
    int l;
    ck_assert_int_eq(hive_tcp_listen("127.0.0.1", 0, 16, &l), 0);
    ck_assert_int_eq(hive_tcp_connect("127.0.0.1", port_of(l), 2000, b), 0);
    *a = hive_io_accept(l, NULL, NULL, 2000);
    ck_assert_int_ge(*a, 0);
    ck_assert_int_eq(hive_io_close(l), 0);
}

/* ------------------------------------------------------------------ */

struct echo_arg { int lfd; hive_pid parent; };

/* Accepts one connection and echoes until EOF. */
static void echo_server(void *arg)
{
    struct echo_arg *ea = arg;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int c = hive_io_accept(ea->lfd, (struct sockaddr *)&ss, &len, 5000);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(ss.ss_family, AF_INET);
    ck_assert_uint_eq(len, sizeof(struct sockaddr_in));
    char buf[4096];
    ssize_t n;
    while ((n = hive_io_recv(c, buf, sizeof buf, 5000)) > 0)
        ck_assert_int_eq(hive_io_send(c, buf, (size_t)n, 5000), n);
    ck_assert_int_eq(n, 0);
    hive_io_close(c);
    hive_send(ea->parent, T_DONE, NULL, 0);
}

static void t_echo(void *arg)
{
    (void)arg;
    struct echo_arg ea = { .parent = hive_self() };
    ck_assert_int_eq(hive_tcp_listen("127.0.0.1", 0, 16, &ea.lfd), 0);
    ck_assert_int_eq(hive_spawn(echo_server, &ea, NULL), 0);
    int c;
    ck_assert_int_eq(hive_tcp_connect("127.0.0.1", port_of(ea.lfd), 2000, &c), 0);
    /* 1 MiB each way: several pieces, short recvs. */
    size_t big = 1u << 20;
    char *out = malloc(big), *in = malloc(big);
    for (size_t i = 0; i < big; i++)
        out[i] = (char)(i * 7 + 3);
    /* The echo sends back as it reads, so send in 64 KiB steps and read
     * what came back between them, or both sides' buffers fill. */
    size_t sent = 0, got = 0;
    while (got < big) {
        if (sent < big) {
            size_t k = big - sent < 65536 ? big - sent : 65536;
            ck_assert_int_eq(hive_io_send(c, out + sent, k, 5000), (ssize_t)k);
            sent += k;
        }
        while (got < sent) {
            ssize_t n = hive_io_recv(c, in + got, big - got, 5000);
            ck_assert_int_gt(n, 0);
            got += (size_t)n;
        }
    }
    ck_assert(memcmp(out, in, big) == 0);
    free(out);
    free(in);
    shutdown(c, SHUT_WR);
    char b;
    ck_assert_int_eq(hive_io_recv(c, &b, 1, 5000), 0); /* the server's EOF */
    hive_msg_free(recv_tag(T_DONE, 5000));
    ck_assert_int_eq(hive_io_close(c), 0);
    ck_assert_int_eq(hive_io_close(ea.lfd), 0);
    hive_sched_stats tot;
    ck_assert_int_ge(hive_stats(NULL, 0, &tot), 1);
    ck_assert_uint_gt(tot.io_submitted, 10);
    ck_assert_uint_le(tot.io_completed, tot.io_submitted);
    if (tot.io_backend == HIVE_IO_URING) {
        ck_assert_uint_gt(tot.ring_enters, 0);
    } else {
        ck_assert_uint_eq(tot.io_backend, HIVE_IO_EPOLL);
        ck_assert_uint_eq(tot.ring_enters, 0);
        ck_assert_uint_gt(tot.syscalls, tot.io_submitted); /* a try per op, and the waits */
    }
}
START_TEST(accept_connect_send_recv_echo) { run_hive(2, t_echo, NULL); }
END_TEST

/* The same echo with every send piece zero-copy (hive_config.send_zc 1):
 * the bytes come back intact, and on io_uring the sends went zero-copy
 * (on epoll the setting has no effect). */
static void t_echo_zc(void *arg)
{
    hive_sched_stats a, b;
    hive_stats(NULL, 0, &a);
    t_echo(arg);
    hive_stats(NULL, 0, &b);
    if (!strcmp(hive_io_backend(NULL), "io_uring"))
        ck_assert_uint_gt(b.io_send_zc - a.io_send_zc, 16); /* 1 MiB in 64 KiB steps, echoed */
    else
        ck_assert_uint_eq(b.io_send_zc - a.io_send_zc, 0);
}
START_TEST(zero_copy_sends_deliver_every_byte)
{
    hive_config cfg = test_config(2);
    cfg.send_zc = 1;
    run_hive_cfg(&cfg, t_echo_zc, NULL);
}
END_TEST

/* A process blocked in a recv, another one closes the socket under it:
 * the recv ends with EOF, as the close's shutdown ends it, and touches
 * nothing after (under the readiness backend, the number may already name
 * a new socket). Even rounds close from a process (often on the reader's
 * scheduler), odd ones from a thread outside the runtime, which no
 * scheduler's ring serves. */
enum { T_CLOSED = 0x51 };
struct closer_arg {
    int fd;
    hive_pid parent;
};

static void blocked_reader(void *arg)
{
    struct closer_arg *c = arg;
    char b[16];
    ssize_t n = hive_io_recv(c->fd, b, sizeof b, 10000);
    hive_send(c->parent, T_CLOSED, &n, sizeof n);
}

static void *close_from_thread(void *arg)
{
    return (void *)(intptr_t)hive_io_close(*(int *)arg);
}

static void wait_until_waiting(hive_pid p)
{
    struct hive_process_info pi;
    while (hive_process_info(p, &pi) == 0 && pi.status != HIVE_STATUS_WAITING)
        hive_yield();
}

static void t_close_under_recv(void *arg)
{
    (void)arg;
    static struct closer_arg ca;
    for (int round = 0; round < 40; round++) {
        int a, b;
        tcp_pair(&a, &b);
        ca = (struct closer_arg){ .fd = a, .parent = hive_self() };
        hive_pid r;
        ck_assert_int_eq(hive_spawn(blocked_reader, &ca, &r), 0);
        wait_until_waiting(r);
        if (round % 2 == 0) {
            ck_assert_int_eq(hive_io_close(a), 0);
        } else {
            pthread_t th;
            void *rc;
            ck_assert_int_eq(pthread_create(&th, NULL, close_from_thread, &a), 0);
            ck_assert_int_eq(pthread_join(th, &rc), 0);
            ck_assert_int_eq((int)(intptr_t)rc, 0);
        }
        /* the number comes back at once for the next socket */
        int c2, d2;
        tcp_pair(&c2, &d2);
        ck_assert_int_eq(hive_io_send(d2, "late", 4, 1000), 4);
        hive_msg *m = NULL;
        ck_assert_msg(hive_receive(&m, 5000) == 0, "round %d: the recv did not end", round);
        ck_assert_uint_eq(m->tag, T_CLOSED);
        ssize_t n;
        memcpy(&n, m->data, sizeof n);
        hive_msg_free(m);
        ck_assert_msg(n == 0, "round %d: recv under a close returned %zd", round, n);
        /* the new socket's data were not taken by the old recv */
        char buf[8];
        ck_assert_int_eq(hive_io_recv(c2, buf, sizeof buf, 1000), 4);
        ck_assert_int_eq(hive_io_close(c2), 0);
        ck_assert_int_eq(hive_io_close(d2), 0);
        ck_assert_int_eq(hive_io_close(b), 0);
    }
}
START_TEST(close_from_another_process_ends_a_blocked_recv_with_eof)
{
    run_hive(2, t_close_under_recv, NULL);
}
END_TEST

static void t_recv_timeout(void *arg)
{
    (void)arg;
    int a, b;
    tcp_pair(&a, &b);
    char buf[64];
    for (int64_t to = 0; to <= 40; to += 20) {
        uint64_t t0 = now_ms();
        ck_assert_int_eq(hive_io_recv(a, buf, sizeof buf, to), -ETIMEDOUT);
        ck_assert_uint_ge(now_ms() - t0, (uint64_t)to); /* never early */
    }
    /* Still usable, and nothing was eaten by the cancelled receives. */
    ck_assert_int_eq(hive_io_send(b, "hello", 5, 1000), 5);
    ck_assert_int_eq(hive_io_recv(a, buf, sizeof buf, 1000), 5);
    ck_assert(memcmp(buf, "hello", 5) == 0);
    /* Data already there wins over a zero time-out. */
    ck_assert_int_eq(hive_io_send(b, "x", 1, 1000), 1);
    char c;
    uint64_t t0 = now_ms();
    ssize_t n;
    while ((n = hive_io_recv(a, &c, 1, 0)) == -ETIMEDOUT)
        ck_assert_uint_lt(now_ms() - t0, 5000); /* the byte is in flight on loopback */
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(c, 'x');
    hive_io_close(a);
    hive_io_close(b);
}
START_TEST(recv_timeout_not_early_socket_usable_after) { run_hive(2, t_recv_timeout, NULL); }
END_TEST

static void t_send_timeout(void *arg)
{
    (void)arg;
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    /* Nobody reads sp[1]: a big send fills the socket and then waits. */
    size_t big = 8u << 20;
    char *buf = calloc(1, big);
    uint64_t t0 = now_ms();
    ck_assert_int_eq(hive_io_send(sp[0], buf, big, 50), -ETIMEDOUT);
    ck_assert_uint_ge(now_ms() - t0, 50);
    /* Still usable: drain what went, then a small send and its reception. */
    ssize_t n;
    while ((n = hive_io_recv(sp[1], buf, big, 20)) > 0)
        ;
    ck_assert_int_eq(n, -ETIMEDOUT);
    ck_assert_int_eq(hive_io_send(sp[0], "ok", 2, 1000), 2);
    ck_assert_int_eq(hive_io_recv(sp[1], buf, 16, 1000), 2);
    ck_assert(memcmp(buf, "ok", 2) == 0);
    free(buf);
    hive_io_close(sp[0]);
    hive_io_close(sp[1]);
}
START_TEST(send_timeout_when_peer_does_not_read) { run_hive(2, t_send_timeout, NULL); }
END_TEST

static void t_accept_timeout(void *arg)
{
    (void)arg;
    int l;
    ck_assert_int_eq(hive_tcp_listen("127.0.0.1", 0, 16, &l), 0);
    uint64_t t0 = now_ms();
    ck_assert_int_eq(hive_io_accept(l, NULL, NULL, 30), -ETIMEDOUT);
    ck_assert_uint_ge(now_ms() - t0, 30);
    int c;
    ck_assert_int_eq(hive_tcp_connect("127.0.0.1", port_of(l), 2000, &c), 0);
    int a = hive_io_accept(l, NULL, NULL, 2000);
    ck_assert_int_ge(a, 0);
    hive_io_close(a);
    hive_io_close(c);
    hive_io_close(l);
}
START_TEST(accept_timeout_then_accepts) { run_hive(2, t_accept_timeout, NULL); }
END_TEST

static void t_refused(void *arg)
{
    (void)arg;
    /* A port nobody listens on: bind one, note it, close it. */
    int l;
    ck_assert_int_eq(hive_tcp_listen("127.0.0.1", 0, 1, &l), 0);
    uint16_t port = port_of(l);
    hive_io_close(l);
    int c = -1;
    ck_assert_int_eq(hive_tcp_connect("127.0.0.1", port, 2000, &c), -ECONNREFUSED);
    ck_assert_int_eq(c, -1);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(hive_io_connect(s, (struct sockaddr *)&sa, sizeof sa, 2000), -ECONNREFUSED);
    close(s);
    /* Bad arguments. */
    ck_assert_int_eq(hive_tcp_listen("127.0.0.1", 0, 1, NULL), -EINVAL);
    ck_assert_int_eq(hive_tcp_listen("no.such.host.invalid", 0, 1, &l) < 0, 1);
    ck_assert_int_eq(hive_io_recv(-1, NULL, 0, 10), -EBADF);
    char b;
    ck_assert_int_eq(hive_io_recv(3, NULL, 1, 10), -EINVAL);
    ck_assert_int_eq(hive_io_recv(3, &b, 1, -7), -EINVAL);
    hive_ref r;
    ck_assert_int_eq(hive_io_recv_async(3, 16, NULL), -EINVAL);
    ck_assert_int_eq(hive_io_recv_async(-1, 16, &r), -EBADF);
}
START_TEST(connect_refused_and_bad_arguments) { run_hive(2, t_refused, NULL); }
END_TEST

static void t_taken_port(void *arg)
{
    (void)arg;
    int l, l2;
    ck_assert_int_eq(hive_tcp_listen(NULL, 0, 16, &l), 0); /* dual stack */
    ck_assert_int_eq(hive_tcp_listen(NULL, port_of(l), 16, &l2), -EADDRINUSE);
    int c4, c6;
    ck_assert_int_eq(hive_tcp_connect("127.0.0.1", port_of(l), 2000, &c4), 0);
    int a4 = hive_io_accept(l, NULL, NULL, 2000);
    ck_assert_int_ge(a4, 0);
    int rc = hive_tcp_connect("::1", port_of(l), 2000, &c6);
    if (rc == 0) { /* a host with IPv6 loopback */
        int a6 = hive_io_accept(l, NULL, NULL, 2000);
        ck_assert_int_ge(a6, 0);
        hive_io_close(a6);
        hive_io_close(c6);
    }
    hive_io_close(a4);
    hive_io_close(c4);
    hive_io_close(l);
}
START_TEST(listen_any_dual_stack_and_taken_port) { run_hive(2, t_taken_port, NULL); }
END_TEST

static void t_reset(void *arg)
{
    (void)arg;
    int a, b;
    tcp_pair(&a, &b);
    /* b resets the connection: an abortive close. */
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    ck_assert_int_eq(setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    close(b);
    char buf[16];
    ck_assert_int_eq(hive_io_recv(a, buf, sizeof buf, 2000), -ECONNRESET);
    /* Sending to it: an error, never SIGPIPE. */
    static char big[1 << 16];
    ssize_t n = 0;
    for (int i = 0; i < 8 && n >= 0; i++)
        n = hive_io_send(a, big, sizeof big, 2000);
    ck_assert_msg(n == -EPIPE || n == -ECONNRESET, "send after reset: %zd", n);
    /* The same for a write(2)-style write on the socket. */
    n = hive_io_write(a, big, 16, -1, 2000);
    ck_assert_msg(n == -EPIPE || n == -ECONNRESET, "write after reset: %zd", n);
    hive_io_close(a);
}
START_TEST(peer_reset_is_econnreset_and_epipe_no_sigpipe) { run_hive(2, t_reset, NULL); }
END_TEST

static void t_half_close(void *arg)
{
    (void)arg;
    int a, b;
    tcp_pair(&a, &b);
    ck_assert_int_eq(hive_io_send(b, "req", 3, 1000), 3);
    ck_assert_int_eq(shutdown(b, SHUT_WR), 0);
    char buf[16];
    ssize_t got = 0, n;
    while ((n = hive_io_recv(a, buf + got, sizeof buf - (size_t)got, 1000)) > 0)
        got += n;
    ck_assert_int_eq(n, 0);       /* EOF ... */
    ck_assert_int_eq(got, 3);
    ck_assert_int_eq(hive_io_recv(a, buf, sizeof buf, 1000), 0); /* ... and again */
    /* ... but a can still send, and b still reads. */
    ck_assert_int_eq(hive_io_send(a, "reply", 5, 1000), 5);
    hive_io_close(a);
    got = 0;
    while ((n = hive_io_recv(b, buf + got, sizeof buf - (size_t)got, 1000)) > 0)
        got += n;
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(got, 5);
    ck_assert(memcmp(buf, "reply", 5) == 0);
    hive_io_close(b);
}
START_TEST(half_closed_connection_reads_eof_and_still_sends) { run_hive(2, t_half_close, NULL); }
END_TEST

static void t_file(void *arg)
{
    (void)arg;
    char path[] = "/tmp/hive-io-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    ck_assert_int_eq(hive_io_write(fd, "hello world", 11, 0, 1000), 11);
    ck_assert_int_eq(hive_io_write(fd, "W", 1, 6, 1000), 1);
    char buf[32] = { 0 };
    ck_assert_int_eq(hive_io_read(fd, buf, sizeof buf, 0, 1000), 11);
    ck_assert_str_eq(buf, "hello World");
    ck_assert_int_eq(hive_io_read(fd, buf, sizeof buf, 11, 1000), 0); /* EOF */
    /* -1: the file position, which moves. */
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    ck_assert_int_eq(hive_io_read(fd, buf, 5, -1, 1000), 5);
    ck_assert_int_eq(hive_io_read(fd, buf, 6, -1, 1000), 6);
    ck_assert(memcmp(buf, " World", 6) == 0);
    ck_assert_int_eq(hive_io_write(fd, "!", 1, -1, 1000), 1);
    ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), 12);
    /* A large write goes in pieces, at the right offsets. */
    size_t big = 600 * 1024;
    char *w = malloc(big), *r = malloc(big);
    for (size_t i = 0; i < big; i++)
        w[i] = (char)(i % 251);
    ck_assert_int_eq(hive_io_write(fd, w, big, 4096, 5000), (ssize_t)big);
    size_t got = 0;
    while (got < big) {
        ssize_t n = hive_io_read(fd, r + got, big - got, 4096 + (int64_t)got, 5000);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    ck_assert(memcmp(w, r, big) == 0);
    free(w);
    free(r);
    ck_assert_int_eq(hive_io_read(fd, buf, 1, -2, 1000), -EINVAL);
    ck_assert_int_eq(hive_io_close(fd), 0);
    ck_assert_int_eq(hive_io_read(fd, buf, 1, 0, 1000), -EBADF);
}
START_TEST(file_read_write_offsets_and_current_position) { run_hive(2, t_file, NULL); }
END_TEST

/* ------------------------------------------------------------------ */
/* recv_async                                                          */
/* ------------------------------------------------------------------ */

static bool match_ref(const hive_msg *m, void *ctx)
{
    return hive_ref_eq(m->ref, *(hive_ref *)ctx);
}

static void t_async_receive(void *arg)
{
    (void)arg;
    int a, b;
    tcp_pair(&a, &b);
    hive_ref r;
    ck_assert_int_eq(hive_io_recv_async(a, 100, &r), 0);
    /* A message and socket data, in one receive: the message first. */
    ck_assert_int_eq(hive_send(hive_self(), T_HELLO, "m", 1), 0);
    hive_msg *m;
    ck_assert_int_eq(hive_receive(&m, 1000), 0);
    ck_assert_uint_eq(m->tag, T_HELLO);
    hive_msg_free(m);
    ck_assert_int_eq(hive_io_send(b, "data", 4, 1000), 4);
    ck_assert_int_eq(hive_receive(&m, 2000), 0);
    ck_assert_msg(m->tag == HIVE_TAG_IO, "tag %x err %d", m->tag, *(int *)m->data);
    ck_assert(hive_ref_eq(m->ref, r));
    ck_assert_uint_eq(m->len, 4);
    ck_assert(memcmp(m->data, "data", 4) == 0);
    hive_msg_free(m);
    /* EOF: len 0. */
    ck_assert_int_eq(hive_io_recv_async(a, 100, &r), 0);
    shutdown(b, SHUT_WR);
    ck_assert_int_eq(hive_receive_if(match_ref, &r, &m, 2000), 0);
    ck_assert_uint_eq(m->tag, HIVE_TAG_IO);
    ck_assert_uint_eq(m->len, 0);
    hive_msg_free(m);
    /* An error: HIVE_TAG_IO_ERROR with -errno. */
    int bad = open("/dev/null", O_RDONLY);
    ck_assert_int_eq(hive_io_recv_async(bad, 100, &r), 0);
    ck_assert_int_eq(hive_receive_if(match_ref, &r, &m, 2000), 0);
    ck_assert_uint_eq(m->tag, HIVE_TAG_IO_ERROR);
    ck_assert_uint_eq(m->len, sizeof(int));
    ck_assert_int_eq(*(int *)m->data, -ENOTSOCK);
    hive_msg_free(m);
    close(bad);
    /* A receive pending when the socket is closed (from another thread or
     * process) ends with EOF: close does not leave it hanging. */
    ck_assert_int_eq(hive_io_recv_async(b, 100, &r), 0);
    hive_io_close(b);
    ck_assert_int_eq(hive_receive_if(match_ref, &r, &m, 2000), 0);
    ck_assert_uint_eq(m->tag, HIVE_TAG_IO);
    ck_assert_uint_eq(m->len, 0);
    hive_msg_free(m);
    hive_io_close(a);
}
START_TEST(recv_async_data_eof_error_beside_messages) { run_hive(2, t_async_receive, NULL); }
END_TEST

/* A gen_server that serves one connection from handle_info. */
struct conn { int fd; hive_ref req; hive_pid observer; int msgs; };

static int conn_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    struct conn *c = arg;
    *state = c;
    return hive_io_recv_async(c->fd, 4096, &c->req);
}

static void conn_info(hive_gs *gs, void *state, const hive_msg *m)
{
    struct conn *c = state;
    if (m->tag == HIVE_TAG_IO && hive_ref_eq(m->ref, c->req)) {
        if (m->len == 0) {
            hive_gs_stop_self(gs, HIVE_NORMAL);
            return;
        }
        /* The next data come as the next message; the reply goes now. */
        ck_assert_int_eq(hive_io_send(c->fd, m->data, m->len, 2000), m->len);
        ck_assert_int_eq(hive_io_recv_async(c->fd, 4096, &c->req), 0);
        c->msgs++;
    } else if (m->tag == HIVE_TAG_IO_ERROR) {
        hive_gs_stop_self(gs, HIVE_ERROR);
    }
}

static void conn_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    (void)gs;
    struct conn *c = state;
    hive_reply(from, 0, &c->msgs, sizeof c->msgs);
}

static void conn_terminate(hive_gs *gs, void *state, hive_reason reason)
{
    (void)gs;
    struct conn *c = state;
    hive_io_close(c->fd);
    hive_send(c->observer, T_DONE, &reason, sizeof reason);
}

static const hive_gen_server CONN = {
    .init = conn_init, .handle_info = conn_info, .handle_call = conn_call,
    .terminate = conn_terminate,
};

static void t_gen_server(void *arg)
{
    (void)arg;
    int a, b;
    tcp_pair(&a, &b);
    struct conn c = { .fd = a, .observer = hive_self() };
    hive_pid srv;
    ck_assert_int_eq(hive_gs_start(&CONN, &c, NULL, &srv), 0);
    char buf[64];
    for (int i = 0; i < 20; i++) {
        char line[16];
        int len = snprintf(line, sizeof line, "line %d", i);
        ck_assert_int_eq(hive_io_send(b, line, (size_t)len, 1000), len);
        ssize_t got = 0;
        while (got < len) {
            ssize_t n = hive_io_recv(b, buf + got, sizeof buf - (size_t)got, 2000);
            ck_assert_int_gt(n, 0);
            got += n;
        }
        ck_assert_int_eq(got, len);
        ck_assert(memcmp(buf, line, (size_t)len) == 0);
        /* Calls are served between socket messages. */
        hive_msg *rep;
        ck_assert_int_eq(hive_call(srv, 1, NULL, 0, &rep, 1000), 0);
        ck_assert_int_eq(*(int *)rep->data, i + 1);
        hive_msg_free(rep);
    }
    hive_ref mon;
    ck_assert_int_eq(hive_monitor(srv, &mon), 0);
    shutdown(b, SHUT_WR);
    hive_msg *m = recv_tag(T_DONE, 2000);
    ck_assert_int_eq(*(hive_reason *)m->data, HIVE_NORMAL);
    hive_msg_free(m);
    ck_assert_int_eq(wait_down(mon), HIVE_NORMAL);
    ck_assert_int_eq(hive_io_recv(b, buf, sizeof buf, 2000), 0); /* the server closed */
    hive_io_close(b);
}
START_TEST(recv_async_serves_a_gen_server_from_handle_info) { run_hive(2, t_gen_server, NULL); }
END_TEST

/* ------------------------------------------------------------------ */
/* Batching                                                            */
/* ------------------------------------------------------------------ */

#define NBATCH 300

struct batch_arg { int fd; hive_pid parent; };

static void batch_reader(void *arg)
{
    struct batch_arg *b = arg;
    char c;
    ck_assert_int_eq(hive_io_recv(b->fd, &c, 1, 10000), 1);
    hive_send(b->parent, T_DONE, NULL, 0);
}

static void t_batch(void *arg)
{
    (void)arg;
    static int sp[NBATCH][2];
    static struct batch_arg ba[NBATCH];
    for (int i = 0; i < NBATCH; i++) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp[i]), 0);
        ck_assert_int_eq(send(sp[i][1], "b", 1, MSG_NOSIGNAL), 1);
    }
    hive_sched_stats a, b;
    hive_stats(NULL, 0, &a);
    for (int i = 0; i < NBATCH; i++) {
        ba[i] = (struct batch_arg){ .fd = sp[i][0], .parent = hive_self() };
        ck_assert_int_eq(hive_spawn(batch_reader, &ba[i], NULL), 0);
    }
    for (int i = 0; i < NBATCH; i++)
        hive_msg_free(recv_tag(T_DONE, 10000));
    hive_stats(NULL, 0, &b);
    uint64_t ops = b.io_submitted - a.io_submitted, enters = b.ring_enters - a.ring_enters;
    /* one each, and once more for a receive that found no lent buffer free */
    ck_assert_uint_eq(ops, NBATCH + (b.io_recv_nobufs - a.io_recv_nobufs));
    ck_assert_uint_eq(b.io_completed - a.io_completed, NBATCH);
    /* The readers run one after another on the one scheduler and queue
     * their receives; the loop submits them together, about one enter per
     * 61 switches, not one per operation. */
    ck_assert_msg(enters * 8 <= ops, "%llu io_uring_enter calls for %llu operations",
                  (unsigned long long)enters, (unsigned long long)ops);
    for (int i = 0; i < NBATCH; i++) {
        close(sp[i][0]);
        close(sp[i][1]);
    }
}
START_TEST(many_processes_requests_share_one_enter_per_loop_pass) { run_hive(1, t_batch, NULL); }
END_TEST

/* ------------------------------------------------------------------ */
/* Receive buffers lent by the ring (hive_config.recv_bufs)             */
/* ------------------------------------------------------------------ */

#define NLEND 64

/* What peer i sends: a length on both sides of LEND_NODE (48 bytes, the
 * payload a lending receive's message starts with), a pattern of its own. */
static size_t lend_len(int i) { return i % 2 ? 20 + (size_t)i % 20 : 200 + 3 * (size_t)i; }
static void lend_fill(char *b, int i)
{
    for (size_t k = 0; k < lend_len(i); k++)
        b[k] = (char)(i * 31 + (int)k);
}

static void lend_check(const hive_msg *m, int i)
{
    char want[512];
    lend_fill(want, i);
    ck_assert_msg(m->tag == HIVE_TAG_IO, "receive %d: tag %x err %d", i, m->tag,
                  m->tag == HIVE_TAG_IO_ERROR ? *(int *)m->data : 0);
    ck_assert_uint_eq(m->len, lend_len(i));
    ck_assert(memcmp(m->data, want, m->len) == 0);
}

/* Peer i's data into its socket. */
static void lend_send(int sp[NLEND][2], int i)
{
    char out[512];
    lend_fill(out, i);
    ck_assert_int_eq(write(sp[i][1], out, lend_len(i)), (ssize_t)lend_len(i));
}

/* The recv_async r of connection i: its message, checked and freed. */
static void lend_take(hive_ref r, int i)
{
    hive_msg *m;
    ck_assert_int_eq(hive_receive_if(match_ref, &r, &m, 5000), 0);
    lend_check(m, i);
    hive_msg_free(m);
}

static void lend_pairs(int sp[NLEND][2])
{
    for (int i = 0; i < NLEND; i++)
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp[i]), 0);
}

static void lend_close(int sp[NLEND][2])
{
    for (int i = 0; i < NLEND; i++) {
        hive_io_close(sp[i][0]);
        close(sp[i][1]);
    }
}

/* 64 receives wait at once on a ring that lends 4 buffers; the data come
 * one connection at a time, and every receive gets a lent buffer: a
 * receive that waits holds none (else the fifth would find them all out). */
static void t_lend_idle(void *arg)
{
    (void)arg;
    int sp[NLEND][2];
    hive_ref r[NLEND];
    lend_pairs(sp);
    hive_sched_stats a, b;
    hive_stats(NULL, 0, &a);
    ck_assert_uint_eq(a.io_recv_bufs, 4);
    for (int i = 0; i < NLEND; i++)
        ck_assert_int_eq(hive_io_recv_async(sp[i][0], 1000, &r[i]), 0);
    for (int i = 0; i < NLEND; i++) {
        lend_send(sp, i);
        lend_take(r[i], i);
    }
    /* A blocking receive lends too. */
    char out[512], in[1000];
    lend_fill(out, 2);
    ck_assert_int_eq(write(sp[0][1], out, lend_len(2)), (ssize_t)lend_len(2));
    ck_assert_int_eq(hive_io_recv(sp[0][0], in, sizeof in, 5000), (ssize_t)lend_len(2));
    ck_assert(memcmp(in, out, lend_len(2)) == 0);
    hive_stats(NULL, 0, &b);
    ck_assert_uint_eq(b.io_recv_nobufs - a.io_recv_nobufs, 0);
    ck_assert_uint_eq(b.io_recv_lent - a.io_recv_lent, NLEND + 1);
    lend_close(sp);
}

static void run_lend(unsigned bufs, void (*fn)(void *))
{
    hive_config cfg = test_config(1);
    cfg.recv_bufs = bufs;
    run_hive_cfg(&cfg, fn, NULL);
}

START_TEST(waiting_receives_hold_no_lent_buffer) { run_lend(4, t_lend_idle); }
END_TEST

/* 64 receives whose data are all there when the scheduler next submits or
 * polls, on a ring that lends 2 buffers: two get them, the others find
 * none and run again with buffers of their own; nothing is lost. */
static void t_lend_burst(void *arg)
{
    (void)arg;
    int sp[NLEND][2];
    hive_ref r[NLEND];
    lend_pairs(sp);
    hive_sched_stats a, b;
    hive_stats(NULL, 0, &a);
    for (int i = 0; i < NLEND; i++)
        ck_assert_int_eq(hive_io_recv_async(sp[i][0], 1000, &r[i]), 0);
    /* No wait between: the one scheduler takes their completions after. */
    for (int i = 0; i < NLEND; i++)
        lend_send(sp, i);
    for (int i = 0; i < NLEND; i++)
        lend_take(r[i], i);
    hive_stats(NULL, 0, &b);
    uint64_t lent = b.io_recv_lent - a.io_recv_lent, miss = b.io_recv_nobufs - a.io_recv_nobufs;
    ck_assert_msg(miss >= 1 && lent >= 1 && lent + miss == NLEND,
                  "%llu lent, %llu without a buffer", (unsigned long long)lent,
                  (unsigned long long)miss);
    /* each miss was submitted again */
    ck_assert_uint_eq(b.io_submitted - a.io_submitted, NLEND + miss);
    lend_close(sp);
}
START_TEST(receives_beyond_the_lent_buffers_get_their_own_and_lose_nothing)
{
    run_lend(2, t_lend_burst);
}
END_TEST

/* recv_bufs 0: nothing is lent, receives have their own buffers. */
static void t_lend_off(void *arg)
{
    (void)arg;
    int sp[NLEND][2];
    lend_pairs(sp);
    hive_sched_stats a, b;
    hive_stats(NULL, 0, &a);
    ck_assert_uint_eq(a.io_recv_bufs, 0);
    for (int i = 0; i < 4; i++) {
        hive_ref r;
        ck_assert_int_eq(hive_io_recv_async(sp[i][0], 1000, &r), 0);
        lend_send(sp, i);
        lend_take(r, i);
    }
    hive_stats(NULL, 0, &b);
    ck_assert_uint_eq(b.io_recv_lent - a.io_recv_lent, 0);
    lend_close(sp);
}
START_TEST(recv_bufs_zero_lends_nothing) { run_lend(0, t_lend_off); }
END_TEST

/* ------------------------------------------------------------------ */
/* Foreign threads                                                     */
/* ------------------------------------------------------------------ */

struct foreign { int fd; int rc[5]; };

static void *foreign_thread(void *arg)
{
    struct foreign *f = arg;
    char b;
    hive_ref r;
    f->rc[0] = (int)hive_io_recv(f->fd, &b, 1, 10);
    f->rc[1] = (int)hive_io_send(f->fd, "x", 1, 10);
    f->rc[2] = hive_io_recv_async(f->fd, 1, &r);
    f->rc[3] = hive_io_accept(f->fd, NULL, NULL, 10);
    f->rc[4] = hive_io_close(f->fd); /* works anywhere */
    return NULL;
}

static void t_foreign(void *arg)
{
    (void)arg;
    int a, b;
    tcp_pair(&a, &b);
    struct foreign f = { .fd = a };
    pthread_t t;
    pthread_create(&t, NULL, foreign_thread, &f);
    pthread_join(t, NULL); /* the thread makes no hive call that waits */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(f.rc[i], -EPERM);
    ck_assert_int_eq(f.rc[4], 0);
    char buf[4];
    ck_assert_int_eq(hive_io_recv(b, buf, sizeof buf, 2000), 0); /* closed */
    hive_io_close(b);
}
START_TEST(blocking_io_from_foreign_thread_is_eperm) { run_hive(2, t_foreign, NULL); }
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    TCase *tc = tcase_create("io");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, accept_connect_send_recv_echo);
    tcase_add_test(tc, zero_copy_sends_deliver_every_byte);
    tcase_add_test(tc, close_from_another_process_ends_a_blocked_recv_with_eof);
    tcase_add_test(tc, recv_timeout_not_early_socket_usable_after);
    tcase_add_test(tc, send_timeout_when_peer_does_not_read);
    tcase_add_test(tc, accept_timeout_then_accepts);
    tcase_add_test(tc, connect_refused_and_bad_arguments);
    tcase_add_test(tc, listen_any_dual_stack_and_taken_port);
    tcase_add_test(tc, peer_reset_is_econnreset_and_epipe_no_sigpipe);
    tcase_add_test(tc, half_closed_connection_reads_eof_and_still_sends);
    tcase_add_test(tc, file_read_write_offsets_and_current_position);
    tcase_add_test(tc, recv_async_data_eof_error_beside_messages);
    tcase_add_test(tc, recv_async_serves_a_gen_server_from_handle_info);
    tcase_add_test(tc, many_processes_requests_share_one_enter_per_loop_pass);
    tcase_add_test(tc, blocking_io_from_foreign_thread_is_eperm);
    tcase_add_test(tc, waiting_receives_hold_no_lent_buffer);
    tcase_add_test(tc, receives_beyond_the_lent_buffers_get_their_own_and_lose_nothing);
    tcase_add_test(tc, recv_bufs_zero_lends_nothing);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(io_suite)
