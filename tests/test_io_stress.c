/*
 * I/O under pressure: processes killed in the middle of large receives and
 * sends and of small receives that borrow the ring's lent buffers (the
 * kernel lets go before anything of theirs is reused: run under ASan), a
 * tiny ring with many operations at once (a full submission queue and an
 * overflowing completion queue lose nothing; many time-outs due at once
 * all end), time-outs on a scheduler that never parks, 10,000 concurrent
 * loopback connections, and closes racing receives on four schedulers
 * (no operation ever reaches a descriptor that reused a closed number).
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "runtime/sched/sched.h"

enum { T_READY = 1, T_GO, T_DONE };

static uint16_t port_of(int fd)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    return ntohs(sa.sin_port);
}

/* ------------------------------------------------------------------ */
/* Killed with I/O in flight                                           */
/* ------------------------------------------------------------------ */

struct victim { int fd; hive_pid parent; bool send; char *buf; };

/* Tells the parent it is about to block, then blocks in a big operation
 * that cannot finish: a recv nobody sends to, or a send nobody reads. */
static void victim(void *arg)
{
    struct victim *v = arg;
    size_t big = 4u << 20;
    char *buf = v->buf;        /* the parent's: it reuses and frees it after the kill */
    memset(buf, 'v', big);
    hive_send(v->parent, T_READY, NULL, 0);
    if (v->send)
        hive_io_send(v->fd, buf, big, HIVE_INFINITY);
    else
        hive_io_recv(v->fd, buf, big, HIVE_INFINITY);
    ck_abort_msg("the operation finished");
}

/* A stack buffer in flight: recv into the process's own stack. */
static void stack_victim(void *arg)
{
    struct victim *v = arg;
    char buf[64 * 1024];
    hive_send(v->parent, T_READY, NULL, 0);
    hive_io_recv(v->fd, buf, sizeof buf, HIVE_INFINITY);
    ck_abort_msg("the operation finished");
}

/* Small receives, which borrow a buffer the ring lends (hive_config.
 * recv_bufs) when their data arrive: a blocking one into the stack, or a
 * recv_async in flight while the process waits in a receive. */
static void small_victim(void *arg)
{
    struct victim *v = arg;
    char buf[512];
    hive_send(v->parent, T_READY, NULL, 0);
    hive_io_recv(v->fd, buf, sizeof buf, HIVE_INFINITY);
    ck_abort_msg("the operation finished");
}

static void async_victim(void *arg)
{
    struct victim *v = arg;
    hive_ref r;
    ck_assert_int_eq(hive_io_recv_async(v->fd, 512, &r), 0);
    hive_send(v->parent, T_READY, NULL, 0);
    hive_msg *m;
    hive_receive(&m, HIVE_INFINITY);
    ck_abort_msg("a message came");
}

/* Writes over a fresh stack, where a victim's buffer may have been. */
static void scribble(void *arg)
{
    (void)arg;
    volatile char buf[64 * 1024];
    for (size_t i = 0; i < sizeof buf; i += 64)
        buf[i] = 's';
}

#define NV 24

/* A loopback TCP pair with small socket buffers, so that a 4 MiB send
 * waits for its reader: [0] the accepted end, [1] the connecting one. */
static void small_tcp_pair(int sp[2])
{
    int l, small = 64 * 1024;
    ck_assert_int_eq(hive_tcp_listen("127.0.0.1", 0, 4, &l), 0);
    ck_assert_int_eq(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    ck_assert_int_eq(setsockopt(l, SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    ck_assert_int_eq(hive_tcp_connect("127.0.0.1", port_of(l), 2000, &sp[1]), 0);
    ck_assert_int_eq(setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    sp[0] = hive_io_accept(l, NULL, NULL, 2000);
    ck_assert_int_ge(sp[0], 0);
    hive_io_close(l);
}

/* arg non-NULL: TCP pairs (zero-copy sends need a socket that takes them;
 * AF_UNIX does not), else socket pairs. */
static void t_kill(void *arg)
{
    int pairs[NV][2];
    struct victim v[NV];
    hive_ref mon[NV];
    hive_pid pid[NV];
    for (int i = 0; i < NV; i++) {
        if (arg)
            small_tcp_pair(pairs[i]);
        else
            ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs[i]), 0);
        v[i] = (struct victim){ .fd = pairs[i][0], .parent = hive_self(), .send = i % 5 == 1,
                                .buf = malloc(4u << 20) };
        hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &mon[i] };
        void (*fn[5])(void *) = { victim, victim, stack_victim, small_victim, async_victim };
        ck_assert_int_eq(hive_spawn_opt(fn[i % 5], &v[i], &o, &pid[i]), 0);
    }
    for (int i = 0; i < NV; i++)
        hive_msg_free(recv_tag(T_READY, 5000));
    /* They are in their operations now, or about to be: either way the
     * kill finds them there or at their next receive. Let the kernel see
     * the operations first (each victim yields to the scheduler loop). */
    for (int k = 0; k < 3; k++)
        hive_yield();
    for (int i = 0; i < NV; i++)
        ck_assert_int_eq(hive_kill(pid[i], HIVE_KILL), 0);
    for (int i = 0; i < NV; i++)
        ck_assert_int_eq(wait_down(mon[i]), HIVE_KILLED);
    /* Their buffers are reused and freed at once. */
    for (int i = 0; i < NV; i++) {
        memset(v[i].buf, 'p', 4u << 20);
        free(v[i].buf);
    }
    /* New processes reuse the victims' stacks and memory meanwhile. */
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(hive_spawn(scribble, NULL, NULL), 0);
    /* The receives were cancelled, not left in the kernel: data sent now
     * stay in the socket for the next reader. The sends stopped: what the
     * peer reads is all there is. */
    for (int i = 0; i < NV; i++) {
        if (!v[i].send) {
            ck_assert_int_eq(hive_io_send(pairs[i][1], "after", 5, 2000), 5);
            char buf[8];
            ck_assert_int_eq(hive_io_recv(pairs[i][0], buf, sizeof buf, 2000), 5);
            ck_assert(memcmp(buf, "after", 5) == 0);
        } else {
            static char sink[1 << 16];
            size_t total = 0;
            ssize_t n;
            while ((n = hive_io_recv(pairs[i][1], sink, sizeof sink, 50)) > 0) {
                for (ssize_t j = 0; j < n; j++)
                    ck_assert_int_eq(sink[j], 'v');
                total += (size_t)n;
            }
            ck_assert_int_eq(n, -ETIMEDOUT); /* nothing more comes */
            ck_assert_uint_lt(total, 4u << 20);
        }
        hive_io_close(pairs[i][0]);
        hive_io_close(pairs[i][1]);
    }
    hive_sched_stats tot;
    hive_stats(NULL, 0, &tot);
    ck_assert_uint_gt(tot.io_cancels, 0); /* some sends may have finished a piece first */
    if (arg && !strcmp(hive_io_backend(NULL), "io_uring"))
        ck_assert_uint_gt(tot.io_send_zc, 0);
}
/* ------------------------------------------------------------------ */
/* Closes racing receives                                              */
/* ------------------------------------------------------------------ */

/* Eight workers on four schedulers, each round: a socket pair, a reader
 * process blocked in one recv on one end, and the worker closing that end
 * under it, either before or just after writing "w<worker>r<round>" into
 * the other end. Descriptor numbers are reused at once by the other
 * workers' pairs, each carrying its own message. The recv may return this
 * round's message or EOF; it must never return another pair's bytes (an
 * operation reaching a file that reused the closed number), another
 * error, or wait out its time-out. */
enum { CR_WORKERS = 8, CR_ROUNDS = 150 };
enum { T_CR_RESULT = 0x61, T_CR_WORKER };

struct cr_reader { int fd; hive_pid parent; };
struct cr_result { ssize_t n; char data[32]; };

static void cr_reader(void *arg)
{
    struct cr_reader *c = arg;
    struct cr_result r;
    memset(&r, 0, sizeof r);
    r.n = hive_io_recv(c->fd, r.data, sizeof r.data - 1, 3000);
    hive_send(c->parent, T_CR_RESULT, &r, sizeof r);
}

static void cr_worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(id + 1);
    struct cr_reader c;
    char bad[96] = "";
    for (int round = 0; round < CR_ROUNDS && !bad[0]; round++) {
        int sp[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        char want[32];
        int wl = snprintf(want, sizeof want, "w%dr%d", id, round);
        c = (struct cr_reader){ .fd = sp[0], .parent = hive_self() };
        hive_pid r;
        ck_assert_int_eq(hive_spawn(cr_reader, &c, &r), 0);
        struct hive_process_info pi;
        while (hive_process_info(r, &pi) == 0 && pi.status != HIVE_STATUS_WAITING)
            hive_yield();
        rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
        if (rng & 1) /* the message, then the close right behind it */
            ck_assert_int_eq(send(sp[1], want, (size_t)wl, MSG_NOSIGNAL), wl);
        for (unsigned k = 0; k < (unsigned)(rng >> 8) % 3; k++)
            hive_yield();
        ck_assert_int_eq(hive_io_close(sp[0]), 0);
        hive_msg *m = NULL;
        ck_assert_int_eq(hive_receive(&m, 10000), 0);
        ck_assert_uint_eq(m->tag, T_CR_RESULT);
        struct cr_result res;
        memcpy(&res, m->data, sizeof res);
        hive_msg_free(m);
        if (res.n > 0 && (res.n != wl || memcmp(res.data, want, (size_t)wl) != 0))
            snprintf(bad, sizeof bad, "round %d: read '%.*s', wanted '%s'", round,
                     (int)res.n, res.data, want);
        else if (res.n < 0)
            snprintf(bad, sizeof bad, "round %d: recv under a close returned %zd", round, res.n);
        close(sp[1]);
    }
    hive_send(hive_whereis("cr_main"), T_CR_WORKER, bad, strlen(bad) + 1);
}

static void t_close_race(void *arg)
{
    (void)arg;
    ck_assert_int_eq(hive_register("cr_main", hive_self()), 0);
    for (int i = 0; i < CR_WORKERS; i++)
        ck_assert_int_eq(hive_spawn(cr_worker, (void *)(intptr_t)i, NULL), 0);
    for (int i = 0; i < CR_WORKERS; i++) {
        hive_msg *m = NULL;
        ck_assert_int_eq(hive_receive(&m, 60000), 0);
        ck_assert_uint_eq(m->tag, T_CR_WORKER);
        ck_assert_msg(((char *)m->data)[0] == 0, "%s", (char *)m->data);
        hive_msg_free(m);
    }
}

START_TEST(closes_racing_receives_never_reach_a_reused_descriptor)
{
    run_hive(4, t_close_race, NULL);
}
END_TEST

START_TEST(kill_during_large_and_lent_receives_and_sends_cancels_in_kernel) { run_hive(2, t_kill, NULL); }
END_TEST

/* The same with zero-copy sends: a killed send's request, the copy the
 * kernel reads from, lives until the kernel's notification; what the peer
 * reads is still only the victim's bytes. */
START_TEST(kill_during_zero_copy_sends_cancels_in_kernel)
{
    hive_config cfg = test_config(2);
    cfg.send_zc = 1;
    run_hive_cfg(&cfg, t_kill, "tcp");
}
END_TEST

/* Processes that exit (not killed) with a recv_async pending, many times
 * over, on both schedulers: their requests are cancelled and freed. */
static void async_leaver(void *arg)
{
    int fd = (int)(intptr_t)arg;
    hive_ref r;
    ck_assert_int_eq(hive_io_recv_async(fd, 1 << 16, &r), 0);
    hive_yield();
}

static void t_exit_async(void *arg)
{
    (void)arg;
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
    for (int i = 0; i < 500; i++) {
        hive_ref mon;
        hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &mon };
        ck_assert_int_eq(hive_spawn_opt(async_leaver, (void *)(intptr_t)sp[0], &o, NULL), 0);
        ck_assert_int_eq(wait_down(mon), HIVE_NORMAL);
    }
    /* None of them is still reading the socket. */
    ck_assert_int_eq(hive_io_send(sp[1], "z", 1, 1000), 1);
    char c;
    ck_assert_int_eq(hive_io_recv(sp[0], &c, 1, 2000), 1);
    ck_assert_int_eq(c, 'z');
    hive_io_close(sp[0]);
    hive_io_close(sp[1]);
}
START_TEST(exit_with_recv_async_pending_cancels_it) { run_hive(2, t_exit_async, NULL); }
END_TEST

/* ------------------------------------------------------------------ */
/* Killed on one scheduler, its receive on another's ring              */
/* ------------------------------------------------------------------ */

/* A receive stays on the ring of the scheduler it was started on; a
 * process killed from another scheduler exits there, and only the ring's
 * own thread can cancel the receive. The ring's scheduler is kept busy by
 * a hog (a process that does not yield) while the kill, the DOWN and a
 * send happen: the receive's cancel can reach the kernel only after the
 * hog. The DOWN must not come before it did, or the data sent after the
 * DOWN go to a receive nobody waits for. */
struct xring {
    int fd;
    hive_pid parent;          /* told T_DONE when the hog ends */
    _Atomic int recv_sched;   /* where the victim started its receive */
    _Atomic int hog_sched;    /* where the hog runs, -1 until it does */
    _Atomic bool hog_stop;
};

static int sched_id(void) { return (int)cur_sched->id; }

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Holds its scheduler without yielding until told, or for 300 ms: long
 * enough for the kill, its DOWN and a send to happen meanwhile if the
 * exit does not wait. */
static void xring_hog(void *arg)
{
    struct xring *x = arg;
    uint64_t until = mono_ms() + 300;
    atomic_store(&x->hog_sched, sched_id());
    /* With a system call in each turn, as a busy process makes them: a
     * return from the kernel runs the ring's pending completion work
     * (COOP_TASKRUN), where a receive still armed takes what arrived. */
    while (!atomic_load(&x->hog_stop) && mono_ms() < until)
        (void)syscall(SYS_getppid);
    hive_send(x->parent, T_DONE, NULL, 0);
}

/* Starts a receive, has the kernel arm it (a send of one byte to the
 * peer, which this process waits for, takes the receive to the kernel
 * in the same submission), then spawns the hog on this scheduler. */
static void xring_arm(struct xring *x, hive_ref *r)
{
    atomic_store(&x->recv_sched, sched_id());
    ck_assert_int_eq(hive_io_recv_async(x->fd, 512, r), 0);
    ck_assert_int_eq(hive_io_send(x->fd, "k", 1, 2000), 1);
    ck_assert_int_eq(sched_id(), atomic_load(&x->recv_sched));
    ck_assert_int_eq(hive_spawn(xring_hog, x, NULL), 0);
}

/* Starts its receive and the hog on the same scheduler, then waits: its
 * scheduler runs the hog next. */
static void xring_victim(void *arg)
{
    struct xring *x = arg;
    hive_ref r;
    xring_arm(x, &r);
    hive_msg *m;
    hive_receive(&m, HIVE_INFINITY);
    ck_abort_msg("a message came");
}

/* The same as an idle gen_server, which holds no stack while it waits:
 * a kill from another scheduler must not end it in place. */
static int xgs_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    *state = arg;
    return 0;
}

static void xgs_cast(hive_gs *gs, void *state, const hive_msg *m)
{
    (void)gs;
    (void)m;
    struct xring *x = state;
    hive_ref r;
    xring_arm(x, &r);
}

static void xgs_info(hive_gs *gs, void *state, const hive_msg *m)
{
    (void)gs;
    (void)state;
    (void)m;
    ck_abort_msg("the receive finished");
}

/* Casts from the scheduler it runs on, so the server wakes there. */
static void xgs_caster(void *arg)
{
    ck_assert_int_eq(hive_cast(*(hive_pid *)arg, 1, NULL, 0), 0);
}

static const hive_gen_server xgs = { .init = xgs_init, .handle_cast = xgs_cast,
                                     .handle_info = xgs_info };

static void t_xring(void *arg)
{
    bool server = arg != NULL;
    int placed = 0;
    for (int attempt = 0; attempt < 40 && !placed; attempt++) {
        int sp[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        struct xring x = { .fd = sp[0], .parent = hive_self(), .recv_sched = -1,
                           .hog_sched = -1 };
        hive_pid v;
        hive_ref mon;
        if (server) {
            ck_assert_int_eq(hive_gs_start(&xgs, &x, NULL, &v), 0);
            ck_assert_int_eq(hive_monitor(v, &mon), 0);
            /* A cast from here would wake the server in this
             * scheduler's next slot, which no other scheduler takes. */
            ck_assert_int_eq(hive_spawn(xgs_caster, &v, NULL), 0);
        } else {
            hive_spawn_opts o = { .flags = HIVE_MONITOR, .monitor = &mon };
            ck_assert_int_eq(hive_spawn_opt(xring_victim, &x, &o, &v), 0);
        }
        /* This process keeps its own scheduler busy until the hog runs,
         * so the other one takes the victim (or the caster, and then the
         * server it wakes) and then the hog it spawned. */
        uint64_t give_up = mono_ms() + 5000;
        while (atomic_load(&x.hog_sched) < 0 && mono_ms() < give_up)
            ;
        ck_assert_int_ge(atomic_load(&x.hog_sched), 0);
        placed = atomic_load(&x.hog_sched) == atomic_load(&x.recv_sched) &&
                 sched_id() != atomic_load(&x.recv_sched);
        ck_assert_int_eq(hive_kill(v, HIVE_KILL), 0);
        ck_assert_int_eq(wait_down(mon), HIVE_KILLED);
        if (placed) {
            /* Sent after the DOWN, it must stay in the socket, even while
             * the receive's scheduler runs the hog to its end. */
            ck_assert_int_eq(hive_io_send(sp[1], "after", 5, 2000), 5);
            hive_msg_free(recv_tag(T_DONE, 5000));
            char buf[8];
            ck_assert_int_eq(hive_io_recv(sp[0], buf, sizeof buf, 2000), 5);
            ck_assert(memcmp(buf, "after", 5) == 0);
        } else {
            /* x lives on this stack: the hog must be done with it before
             * the next round reuses it. */
            atomic_store(&x.hog_stop, true);
            hive_msg_free(recv_tag(T_DONE, 5000));
        }
        hive_io_close(sp[0]);
        hive_io_close(sp[1]);
    }
    ck_assert_msg(placed, "the hog never ran where the receive was started");
}
START_TEST(data_sent_after_the_down_of_a_process_killed_away_from_its_receives_ring_stay_in_the_socket)
{
    run_hive(2, t_xring, NULL);
}
END_TEST
START_TEST(data_sent_after_the_down_of_an_idle_server_killed_away_from_its_receives_ring_stay_in_the_socket)
{
    run_hive(2, t_xring, "server");
}
END_TEST

/* ------------------------------------------------------------------ */
/* A tiny ring                                                         */
/* ------------------------------------------------------------------ */

#define NTINY 2000

static void t_tiny(void *arg)
{
    (void)arg;
    static int sp[NTINY][2];
    static hive_ref req[NTINY];
    for (int i = 0; i < NTINY; i++) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp[i]), 0);
        /* NTINY requests queued in one pass: the SQ fills again and again. */
        ck_assert_int_eq(hive_io_recv_async(sp[i][0], 64, &req[i]), 0);
    }
    hive_yield();  /* the loop submits what is left */
    /* Data for all at once: far more completions than the CQ holds. */
    for (int i = 0; i < NTINY; i++)
        ck_assert_int_eq(send(sp[i][1], &i, sizeof i, MSG_NOSIGNAL), (ssize_t)sizeof i);
    static bool seen[NTINY];
    for (int k = 0; k < NTINY; k++) {
        hive_msg *m;
        ck_assert_int_eq(hive_receive(&m, 10000), 0);
        ck_assert_uint_eq(m->tag, HIVE_TAG_IO);
        ck_assert_uint_eq(m->len, sizeof(int));
        int i = *(int *)m->data;
        ck_assert(i >= 0 && i < NTINY && !seen[i]);
        ck_assert(hive_ref_eq(m->ref, req[i]));
        seen[i] = true;
        hive_msg_free(m);
    }
    for (int i = 0; i < NTINY; i++) {
        close(sp[i][0]);
        close(sp[i][1]);
    }
    hive_sched_stats tot;
    hive_stats(NULL, 0, &tot);
    ck_assert_uint_ge(tot.io_submitted, NTINY);
    ck_assert_uint_ge(tot.io_completed, NTINY);
}
START_TEST(tiny_ring_full_sq_and_cq_overflow_lose_nothing)
{
    struct rlimit rl = { 8192, 8192 };
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    hive_config cfg;
    hive_config_default(&cfg);
    cfg.schedulers = 1;
    cfg.pin = false;
    cfg.ring_entries = 8;  /* the smallest: CQ of 128 */
    run_hive_cfg(&cfg, t_tiny, NULL);
}
END_TEST

/* Many time-outs due at once on the tiny ring: each due operation gets a
 * cancel, and with the SQ full the rest wait for the next pass; every one
 * still ends, none early, and every socket still works after. */
#define NTMO 300
#define TMO_MS 30

struct tmo_arg { int fd; hive_pid parent; };

static void tmo_waiter(void *arg)
{
    struct tmo_arg *a = arg;
    char c;
    uint64_t t0 = test_now_ns();
    ssize_t n = hive_io_recv(a->fd, &c, 1, TMO_MS);
    uint64_t waited_ms = (test_now_ns() - t0) / 1000000u;
    int ok = n == -ETIMEDOUT && waited_ms >= TMO_MS;
    /* usable after: the parent's byte comes after this reply */
    hive_send(a->parent, T_READY, &ok, sizeof ok);
    n = hive_io_recv(a->fd, &c, 1, 5000);
    ok = n == 1 && c == 'y';
    hive_send(a->parent, T_DONE, &ok, sizeof ok);
}

static void t_tmo_burst(void *arg)
{
    (void)arg;
    static int sp[NTMO][2];
    static struct tmo_arg a[NTMO];
    hive_sched_stats s0, s1;
    hive_stats(NULL, 0, &s0);
    for (int i = 0; i < NTMO; i++) {
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp[i]), 0);
        a[i] = (struct tmo_arg){ .fd = sp[i][0], .parent = hive_self() };
        ck_assert_int_eq(hive_spawn(tmo_waiter, &a[i], NULL), 0);
    }
    for (int k = 0; k < NTMO; k++) {
        hive_msg *m = recv_tag(T_READY, 10000);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(*(int *)m->data, 1);
        hive_msg_free(m);
    }
    hive_stats(NULL, 0, &s1);
    ck_assert_uint_eq(s1.io_timeouts - s0.io_timeouts, NTMO);
    for (int i = 0; i < NTMO; i++)
        ck_assert_int_eq(send(sp[i][1], "y", 1, MSG_NOSIGNAL), 1);
    for (int k = 0; k < NTMO; k++) {
        hive_msg *m = recv_tag(T_DONE, 10000);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(*(int *)m->data, 1);
        hive_msg_free(m);
    }
    for (int i = 0; i < NTMO; i++) {
        close(sp[i][0]);
        close(sp[i][1]);
    }
}
START_TEST(tiny_ring_many_time_outs_due_at_once_all_end_never_early)
{
    hive_config cfg = test_config(1);
    cfg.ring_entries = 8;
    run_hive_cfg(&cfg, t_tmo_burst, NULL);
}
END_TEST

/* A scheduler that never parks (a process yields on it the whole time)
 * still ends a waiting operation whose time is up: the loop's reap checks
 * the deadlines, not only the park. */
static _Atomic bool g_busy_stop;

static void busy_yielder(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&g_busy_stop, memory_order_relaxed))
        hive_yield();
}

static void t_tmo_busy(void *arg)
{
    (void)arg;
    atomic_store(&g_busy_stop, false);
    ck_assert_int_eq(hive_spawn(busy_yielder, NULL, NULL), 0);
    int sp[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    hive_sched_stats s0, s1;
    hive_stats(NULL, 0, &s0);
    char c;
    for (int i = 0; i < 5; i++) {
        uint64_t t0 = test_now_ns();
        ck_assert_int_eq(hive_io_recv(sp[0], &c, 1, 20), -ETIMEDOUT);
        ck_assert_uint_ge((test_now_ns() - t0) / 1000000u, 20);
    }
    hive_stats(NULL, 0, &s1);
    atomic_store(&g_busy_stop, true);
    /* the point of the test: the scheduler was never idle to park */
    ck_assert_uint_eq(s1.parks, s0.parks);
    ck_assert_uint_eq(s1.io_timeouts - s0.io_timeouts, 5);
    close(sp[0]);
    close(sp[1]);
}
START_TEST(time_outs_end_on_a_scheduler_that_never_parks)
{
    run_hive(1, t_tmo_busy, NULL);
}
END_TEST

/* ------------------------------------------------------------------ */
/* 10,000 connections                                                  */
/* ------------------------------------------------------------------ */

#define NCONN 10000

/* The client side lives in a child process (plain sockets, blocking
 * calls): 2 x 10,000 fds do not fit under one process's RLIMIT_NOFILE on
 * every host. It connects NCONN times and sends each connection its
 * number, reads every echo back, says 'R' on a pipe, and closes them all
 * when the parent says 'G'. */
static void clients(int lfd_port, int to_parent, int from_parent)
{
    static int fds[NCONN];
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)lfd_port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    for (int i = 0; i < NCONN; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sa, sizeof sa) < 0)
            _exit(10);
        uint64_t v = (uint64_t)i;
        if (send(fds[i], &v, 8, MSG_NOSIGNAL) != 8)
            _exit(11);
    }
    for (int i = 0; i < NCONN; i++) {
        uint64_t v = 0;
        if (recv(fds[i], &v, 8, MSG_WAITALL) != 8 || v != (uint64_t)i)
            _exit(12);
    }
    char c = 'R';
    if (write(to_parent, &c, 1) != 1 || read(from_parent, &c, 1) != 1 || c != 'G')
        _exit(13);
    for (int i = 0; i < NCONN; i++)
        close(fds[i]);
    _exit(0);
}

struct many { int lfd; hive_pid main; int from_child, to_child; };

/* One gen_server per accepted connection, served from handle_info with
 * recv_async: idle, it holds no stack (10,000 of them cost their records
 * and buffers, not 10,000 stacks). Echoes 8 bytes, then waits for EOF. */
struct conn { int fd; hive_ref req; hive_pid main; char buf[8]; uint32_t got; };

static int conn_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    struct conn *c = arg;
    *state = c;
    return hive_io_recv_async(c->fd, sizeof c->buf, &c->req);
}

static void conn_info(hive_gs *gs, void *state, const hive_msg *m)
{
    struct conn *c = state;
    ck_assert_uint_eq(m->tag, HIVE_TAG_IO);
    ck_assert(hive_ref_eq(m->ref, c->req));
    if (m->len == 0) {
        ck_assert_uint_eq(c->got, 8);
        hive_gs_stop_self(gs, HIVE_NORMAL);
        return;
    }
    ck_assert_uint_le(c->got + m->len, 8);
    memcpy(c->buf + c->got, m->data, m->len);
    c->got += m->len;
    if (c->got == 8) {
        ck_assert_int_eq(hive_io_send(c->fd, c->buf, 8, 60000), 8);
        hive_send(c->main, T_READY, NULL, 0);
    }
    ck_assert_int_eq(hive_io_recv_async(c->fd, sizeof c->buf, &c->req), 0);
}

static void conn_terminate(hive_gs *gs, void *state, hive_reason reason)
{
    (void)gs;
    struct conn *c = state;
    hive_io_close(c->fd);
    hive_send(c->main, T_DONE, &reason, sizeof reason);
    free(c);
}

static const hive_gen_server CONN = {
    .init = conn_init, .handle_info = conn_info, .terminate = conn_terminate,
};

static void acceptor(void *arg)
{
    struct many *m = arg;
    for (int i = 0; i < NCONN; i++) {
        int fd = hive_io_accept(m->lfd, NULL, NULL, 60000);
        ck_assert_int_ge(fd, 0);
        struct conn *c = calloc(1, sizeof *c);
        c->fd = fd;
        c->main = m->main;
        ck_assert_int_eq(hive_gs_start(&CONN, c, NULL, NULL), 0);
    }
}

static void t_many(void *arg)
{
    struct many *m = arg;
    m->main = hive_self();
    ck_assert_int_eq(hive_spawn(acceptor, m, NULL), 0);
    for (int i = 0; i < NCONN; i++)
        hive_msg_free(recv_tag(T_READY, 120000));
    char c;
    ck_assert_int_eq(hive_io_read(m->from_child, &c, 1, -1, 60000), 1);
    ck_assert_int_eq(c, 'R');
    /* All NCONN connections are open at once here, each with a recv in
     * flight for its server. */
    ck_assert_int_eq(hive_io_write(m->to_child, "G", 1, -1, 1000), 1);
    for (int i = 0; i < NCONN; i++) {
        hive_msg *d = recv_tag(T_DONE, 120000);
        ck_assert_int_eq(*(hive_reason *)d->data, HIVE_NORMAL);
        hive_msg_free(d);
    }
    hive_io_close(m->lfd);
}
START_TEST(ten_thousand_concurrent_loopback_connections)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_msg(rl.rlim_max >= NCONN + 512, "RLIMIT_NOFILE hard limit %lu is too low",
                  (unsigned long)rl.rlim_max);
    rl.rlim_cur = rl.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    struct many m;
    ck_assert_int_eq(hive_tcp_listen("127.0.0.1", 0, 4096, &m.lfd), 0);
    int up[2], down[2];
    ck_assert_int_eq(pipe(up), 0);
    ck_assert_int_eq(pipe(down), 0);
    int port = port_of(m.lfd);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(m.lfd);
        clients(port, up[1], down[0]);
    }
    close(up[1]);
    close(down[0]);
    m.from_child = up[0];
    m.to_child = down[1];
    hive_config cfg;
    hive_config_default(&cfg);
    cfg.schedulers = 2;
    cfg.pin = false;
    cfg.stack_size = 64 * 1024;
    cfg.shutdown_ms = 2000;
    run_hive_cfg(&cfg, t_many, &m);
    int st;
    ck_assert_int_eq(waitpid(child, &st, 0), child);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client child: status %d", st);
}
END_TEST

static Suite *io_stress_suite(void)
{
    Suite *s = suite_create("io_stress");
    TCase *tc = tcase_create("io_stress");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, kill_during_large_and_lent_receives_and_sends_cancels_in_kernel);
    tcase_add_test(tc, kill_during_zero_copy_sends_cancels_in_kernel);
    tcase_add_test(tc, closes_racing_receives_never_reach_a_reused_descriptor);
    tcase_add_test(tc, exit_with_recv_async_pending_cancels_it);
    tcase_add_test(tc, data_sent_after_the_down_of_a_process_killed_away_from_its_receives_ring_stay_in_the_socket);
    tcase_add_test(tc, data_sent_after_the_down_of_an_idle_server_killed_away_from_its_receives_ring_stay_in_the_socket);
    tcase_add_test(tc, tiny_ring_full_sq_and_cq_overflow_lose_nothing);
    tcase_add_test(tc, tiny_ring_many_time_outs_due_at_once_all_end_never_early);
    tcase_add_test(tc, time_outs_end_on_a_scheduler_that_never_parks);
    tcase_add_test(tc, ten_thousand_concurrent_loopback_connections);
    suite_add_tcase(s, tc);
    return s;
}

HIVE_TEST_MAIN(io_stress_suite)
