/* echo: a TCP echo server, one hive process per connection, in either of
 * two styles:
 *
 *  --style async (default): each connection is a gen_server that asks for
 *    its socket's next data with hive_io_recv_async (Erlang's
 *    {active, once}) and echoes it from handle_info. Between two messages
 *    the process is an idle gen_server and holds no stack.
 *  --style blocking: each connection is a plain process looping on
 *    hive_io_recv / hive_io_send; it parks inside recv with its stack.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

#define BLOCK_BUF  2048   /* the blocking style's largest read, on its stack */
#define SEND_TMO   30000  /* a peer that does not read for 30 s is dropped */

static bool blocking_style;

/* ---- async style: a gen_server per connection ---------------------- */

struct conn {
    srv_conn io;         /* first: srv_conn_init fills it */
};

static int conn_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    return srv_conn_init(sizeof(struct conn), arg, state);
}

static void conn_info(hive_gs *gs, void *state, const hive_msg *m)
{
    struct conn *c = state;
    if (!hive_ref_eq(m->ref, c->io.req))
        return;
    if (m->tag == HIVE_TAG_IO && m->len > 0) {
        c->io.rcv = srv_rcv_next(c->io.rcv, m->len);
        if (hive_io_send(c->io.fd, m->data, m->len, SEND_TMO) < 0 ||
            hive_io_recv_async(c->io.fd, c->io.rcv, &c->io.req) < 0)
            hive_gs_stop_self(gs, HIVE_NORMAL);
        return;
    }
    /* EOF (an empty HIVE_TAG_IO) or HIVE_TAG_IO_ERROR */
    hive_gs_stop_self(gs, HIVE_NORMAL);
}

static void conn_terminate(hive_gs *gs, void *state, hive_reason reason)
{
    (void)gs;
    (void)reason;
    struct conn *c = state;
    hive_io_close(c->io.fd);
    free(c);
}

static const hive_gen_server conn_gs = {
    .init = conn_init,
    .handle_info = conn_info,
    .terminate = conn_terminate,
};

/* ---- blocking style: a plain process per connection ----------------- */

static void conn_blocking(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[BLOCK_BUF];
    /* the read size adapts as in the async style: while a recv waits, the
       runtime holds a buffer of that size for the kernel to fill */
    uint32_t want = SRV_RCV_MIN;
    for (;;) {
        ssize_t n = hive_io_recv(fd, buf, want, HIVE_INFINITY);
        if (n <= 0 || hive_io_send(fd, buf, (size_t)n, SEND_TMO) < 0)
            break;
        want = srv_rcv_next(want, (size_t)n);
        if (want > sizeof buf)
            want = sizeof buf;
    }
    hive_io_close(fd);
}

static int start_conn(int fd)
{
    hive_pid p;
    if (blocking_style)
        return hive_spawn(conn_blocking, (void *)(intptr_t)fd, &p);
    return hive_gs_start(&conn_gs, (void *)(intptr_t)fd, NULL, &p);
}

static int flag(const char *f, const char *v, bool *used)
{
    if (strcmp(f, "--style") || !v)
        return -1;
    *used = true;
    if (!strcmp(v, "blocking"))
        blocking_style = true;
    else if (strcmp(v, "async"))
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    static srv s = {
        .name = "echo",
        .usage = "[--style async|blocking]",
        .flag = flag,
        .start_conn = start_conn,
    };
    return srv_main(&s, argc, argv);
}
