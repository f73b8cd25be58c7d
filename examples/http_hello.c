/* http_hello: an HTTP/1.1 server that answers every request with the
 * 13-byte body "Hello, World!", one hive process per connection.
 *
 * Each connection is a gen_server fed by hive_io_recv_async: it parses
 * every complete request in what arrived (pipelining), answers them in
 * order with as few sends as fit its 4 KiB reply buffer, keeps a partial
 * request head for the next data, and skips request bodies
 * (Content-Length). Keep-alive follows HTTP/1.1 and the Connection header.
 * A malformed request gets 400 (a head over 8 KiB 431, Transfer-Encoding
 * 501) with "Connection: close"; then the server stops writing, reads and
 * drops what the client still sends for up to 2 s, and closes — closing at
 * once could reset the connection before the client read the error.
 * Between two messages a connection holds no stack.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http_parse.h"
#include "server.h"

#define OUT_BUF    4096
#define SEND_TMO   30000
#define LINGER_MS  2000

enum { TAG_LINGER = 1 };

static const char BODY[] = "Hello, World!";

struct hconn {
    srv_conn io;         /* first: srv_conn_init fills it */
    bool     closing;    /* error sent, write side shut: draining until EOF */
    uint64_t body_left;  /* request body bytes still to skip */
    size_t   inlen;      /* a partial head kept between messages */
    char    *in;         /* NULL when inlen == 0 */
};

struct out {
    int    fd;
    size_t len;
    bool   failed;
    char   buf[OUT_BUF];
};

static void out_flush(struct out *o)
{
    if (o->len && !o->failed && hive_io_send(o->fd, o->buf, o->len, SEND_TMO) < 0)
        o->failed = true;
    o->len = 0;
}

static void out_add(struct out *o, const char *p, size_t n)
{
    if (o->len + n > sizeof o->buf)
        out_flush(o);
    memcpy(o->buf + o->len, p, n); /* every reply is far below OUT_BUF */
    o->len += n;
}

/* The Date header's value, rebuilt once a second on each scheduler thread
 * (used only between two blocking calls, so never across a migration). */
static const char *http_date(void)
{
    static __thread time_t at;
    static __thread char s[32];
    time_t now = time(NULL);
    if (now != at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s, sizeof s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        at = now;
    }
    return s;
}

static void add_reply(struct out *o, const http_req *r)
{
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 200 OK\r\nServer: hive\r\nDate: %s\r\n"
                     "Content-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s",
                     http_date(), sizeof BODY - 1,
                     !r->keep_alive ? "Connection: close\r\n"
                     : r->minor == 0 ? "Connection: keep-alive\r\n" : "",
                     r->head ? "" : BODY);
    out_add(o, buf, (size_t)n);
}

static void add_error(struct out *o, ssize_t why)
{
    const char *status = why == HTTP_TOO_LARGE  ? "431 Request Header Fields Too Large"
                         : why == HTTP_UNSUPPORTED ? "501 Not Implemented"
                                                   : "400 Bad Request";
    const char *text = status + 4;
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %s\r\nServer: hive\r\nDate: %s\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     status, http_date(), strlen(text), text);
    out_add(o, buf, (size_t)n);
}

/* Stop writing, drain for a while, then close (see the top). */
static void start_closing(hive_gs *gs, struct hconn *c)
{
    c->closing = true;
    shutdown(c->io.fd, SHUT_WR);
    if (hive_io_recv_async(c->io.fd, c->io.rcv, &c->io.req) < 0 ||
        hive_send_after(hive_self(), TAG_LINGER, NULL, 0, LINGER_MS, NULL) < 0)
        hive_gs_stop_self(gs, HIVE_NORMAL);
}

/* Answers every complete request in data[0..len); returns how many bytes
 * it used (the rest is a partial head), or -1 after an error reply. */
static ssize_t serve(struct hconn *c, struct out *o, const char *data, size_t len,
                     bool *close_after)
{
    size_t pos = 0;
    while (pos < len) {
        if (c->body_left) {
            size_t skip = len - pos < c->body_left ? len - pos : (size_t)c->body_left;
            pos += skip;
            c->body_left -= skip;
            continue;
        }
        http_req r;
        ssize_t n = http_parse_request(data + pos, len - pos, &r);
        if (n == HTTP_NEED_MORE)
            break;
        if (n < 0) {
            add_error(o, n);
            return -1;
        }
        add_reply(o, &r);
        pos += (size_t)n;
        c->body_left = r.content_length;
        if (!r.keep_alive) {
            *close_after = true;
            return (ssize_t)pos;
        }
    }
    return (ssize_t)pos;
}

static int hconn_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    return srv_conn_init(sizeof(struct hconn), arg, state);
}

static void hconn_info(hive_gs *gs, void *state, const hive_msg *m)
{
    struct hconn *c = state;
    if (m->tag == TAG_LINGER) {
        hive_gs_stop_self(gs, HIVE_NORMAL);
        return;
    }
    if ((m->tag != HIVE_TAG_IO && m->tag != HIVE_TAG_IO_ERROR) || !hive_ref_eq(m->ref, c->io.req))
        return;
    if (m->tag == HIVE_TAG_IO_ERROR || m->len == 0) {
        hive_gs_stop_self(gs, HIVE_NORMAL); /* EOF or a reset */
        return;
    }
    if (c->closing) { /* draining after an error reply */
        if (hive_io_recv_async(c->io.fd, c->io.rcv, &c->io.req) < 0)
            hive_gs_stop_self(gs, HIVE_NORMAL);
        return;
    }

    c->io.rcv = srv_rcv_next(c->io.rcv, m->len);
    /* the bytes to parse: the message itself, or the kept head and the message */
    const char *data = m->data;
    size_t len = m->len;
    char *joined = NULL;
    if (c->inlen) {
        joined = malloc(c->inlen + len);
        if (!joined) {
            hive_gs_stop_self(gs, HIVE_NORMAL);
            return;
        }
        memcpy(joined, c->in, c->inlen);
        memcpy(joined + c->inlen, m->data, len);
        data = joined;
        len += c->inlen;
        free(c->in);
        c->in = NULL;
        c->inlen = 0;
    }

    struct out *o = malloc(sizeof *o);
    if (!o) {
        free(joined);
        hive_gs_stop_self(gs, HIVE_NORMAL);
        return;
    }
    o->fd = c->io.fd;
    o->len = 0;
    o->failed = false;
    bool close_after = false;
    ssize_t used = serve(c, o, data, len, &close_after);
    if (used >= 0 && !close_after && (size_t)used < len) {
        /* a partial head: under HTTP_MAX_HEAD, or the parser would have refused it */
        c->inlen = len - (size_t)used;
        c->in = malloc(c->inlen);
        if (c->in)
            memcpy(c->in, data + used, c->inlen);
        else
            o->failed = true;
    }
    free(joined);
    out_flush(o);
    bool failed = o->failed;
    free(o);
    if (failed || close_after)
        hive_gs_stop_self(gs, HIVE_NORMAL);
    else if (used < 0)
        start_closing(gs, c);
    else if (hive_io_recv_async(c->io.fd, c->io.rcv, &c->io.req) < 0)
        hive_gs_stop_self(gs, HIVE_NORMAL);
}

static void hconn_terminate(hive_gs *gs, void *state, hive_reason reason)
{
    (void)gs;
    (void)reason;
    struct hconn *c = state;
    hive_io_close(c->io.fd);
    free(c->in);
    free(c);
}

static const hive_gen_server hconn_gs = {
    .init = hconn_init,
    .handle_info = hconn_info,
    .terminate = hconn_terminate,
};

static int start_conn(int fd)
{
    hive_pid p;
    return hive_gs_start(&hconn_gs, (void *)(intptr_t)fd, NULL, &p);
}

int main(int argc, char **argv)
{
    static srv s = {
        .name = "http_hello",
        .start_conn = start_conn,
    };
    return srv_main(&s, argc, argv);
}
