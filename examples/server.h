/* server: what echo, http_hello and kv share — flags, the listening
 * socket, a pool of acceptor processes, and a clean stop on SIGINT/SIGTERM.
 *
 * srv_main() parses --host and --port (and hands every other flag to the
 * server's own parser), starts the runtime, listens, prints one line
 * "listening on ADDR:PORT" on stdout, and runs one acceptor process per
 * scheduler, each calling start_conn() for every connection it accepts.
 * SIGINT and SIGTERM are taken by a thread outside the runtime that sends
 * the main process a message: the main process runs stop(), stops
 * accepting and returns, and hive_main shuts every other process down.
 * Exit status 0 after a signal, 1 when the runtime or the listener could not
 * start, 2 for bad flags.
 */
#ifndef HIVE_EXAMPLES_SERVER_H
#define HIVE_EXAMPLES_SERVER_H

#include <hive.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct srv {
    const char *name;                    /* for messages: "echo", "http_hello", "kv" */
    const char *usage;                   /* the server's own flags, for --help */
    /* a flag other than --host/--port: 0 taken (with its value: *used_val = true),
       -1 unknown or bad */
    int  (*flag)(const char *flag, const char *val, bool *used_val);
    int  (*start)(void);                 /* in the main process, before listening (or NULL) */
    /* in an acceptor process, for each new connection: 0 when a process took fd,
       otherwise the fd is closed */
    int  (*start_conn)(int fd);
    void (*stop)(void);                  /* in the main process at SIGINT/SIGTERM (or NULL) */

    /* filled by srv_main */
    const char *host;                    /* default 127.0.0.1 */
    uint16_t    port;                    /* default 0: ephemeral */
    unsigned    acceptors;               /* default 0: one per scheduler */
    int         listen_fd;
    unsigned    schedulers;
} srv;

int srv_main(srv *s, int argc, char **argv);

/* How much a connection asks hive_io_recv_async for. Up to 4 KiB the
 * receive borrows one of the runtime's lent buffers when its data arrive
 * (hive_config.recv_bufs) and holds none while the connection is idle;
 * larger, or with recv_bufs 0, its buffer is allocated when the request is
 * made and held while the connection is idle. So it starts small and grows
 * fourfold after each read that filled it, up to SRV_RCV_MAX; it halves
 * again after reads that used under an eighth of it. */
#define SRV_RCV_MIN 512u
#define SRV_RCV_MAX 65536u

static inline uint32_t srv_rcv_next(uint32_t cur, size_t got)
{
    if (got >= cur && cur < SRV_RCV_MAX)
        return cur * 4 < SRV_RCV_MAX ? cur * 4 : SRV_RCV_MAX;
    if (got < cur / 8 && cur > SRV_RCV_MIN)
        return cur / 2 > SRV_RCV_MIN ? cur / 2 : SRV_RCV_MIN;
    return cur;
}

/* What every connection served from handle_info starts with: its socket,
 * the size of its next recv_async (srv_rcv_next) and the one in flight. */
typedef struct srv_conn {
    int      fd;
    uint32_t rcv;
    hive_ref req;
} srv_conn;

/* A connection gen_server's init: `size` zeroed bytes that begin with a
 * srv_conn for the socket in arg (an fd cast to a pointer), and the first
 * recv_async asked for. 0, or -ENOMEM / the recv_async's error. */
int srv_conn_init(size_t size, void *arg, void **state);

/* TCP_NODELAY on an accepted socket: replies go out as they are written. */
void srv_nodelay(int fd);

/* Parses a decimal in [lo, hi]. */
bool srv_parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out);

#endif
