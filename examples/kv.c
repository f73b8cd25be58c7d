/* kv: a key-value server speaking RESP2 (redis-cli and redis-benchmark are
 * its clients), keys sharded over gen_servers under a supervisor.
 *
 * Each connection is a gen_server fed by hive_io_recv_async: it parses every
 * complete command that arrived, runs them in order — a command on a key
 * is a request to the key's shard (kv_shard.c), one request per shard for
 * the commands of a batch (struct kbatch) — and sends all the replies in
 * one write, so pipelined commands are answered in order with one send per
 * batch. A partial command is kept for the next data. Bad
 * RESP gets an error reply; then the connection is closed (after a short
 * drain, as Redis does, since the stream cannot be resynchronised).
 *
 * Shards run under a one_for_one supervisor: a shard that crashes is
 * restarted empty (its keys are lost); a command that was waiting on it
 * gets an error reply, and the connection and every other shard carry on.
 * DEBUG CRASHSHARD key crashes the shard that holds key, to show it.
 * Multi-key commands (DEL, EXISTS, MGET, MSET) are one call per shard
 * involved and are not atomic across shards.
 *
 * usage: kv [--host ADDR] [--port N] [--shards N]
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kv_shard.h"
#include "resp.h"
#include "server.h"

#define SEND_TMO   30000
#define CALL_TMO   5000
#define LINGER_MS  2000

enum { TAG_LINGER = 1 };

static unsigned nshards = 8;
static hive_pid sup_pid;

/* ---- talking to shards --------------------------------------------- */

/* Calls shard `shard` with op and its packed arguments (kv_pack); the
 * reply's RESP bytes go to *reply. A shard that is being restarted is
 * waited for a little (-ESRCH: the call never reached it); one that died
 * during the call is -ECONNRESET. */
static int shard_call_packed(unsigned shard, uint32_t op, const void *buf, size_t sz,
                             hive_msg **reply)
{
    int rc;
    for (int tries = 0;; tries++) {
        /* pairs with the release store in the shard's init */
        hive_pid p = atomic_load_explicit(&kv_shard_pid[shard], memory_order_acquire);
        rc = p == HIVE_NOPID ? -ESRCH : hive_call(p, op, buf, sz, reply, CALL_TMO);
        if (rc != -ESRCH || tries == 200)
            break;
        /* crashed and not restarted yet, or restarted under a new pid */
        char name[HIVE_NAME_MAX + 1];
        snprintf(name, sizeof name, KV_SHARD_NAME, shard);
        hive_pid q = hive_whereis(name);
        if (q != HIVE_NOPID && q != p)
            atomic_compare_exchange_strong(&kv_shard_pid[shard], &p, q);
        else
            hive_sleep(5);
    }
    return rc;
}

static int shard_call(unsigned shard, uint32_t op, const resp_arg *args, size_t n,
                      hive_msg **reply)
{
    size_t sz = kv_pack_size(args, n);
    char small[1024];
    char *buf = sz <= sizeof small ? small : malloc(sz);
    if (!buf)
        return -ENOMEM;
    kv_pack(args, n, buf);
    int rc = shard_call_packed(shard, op, buf, sz, reply);
    if (buf != small)
        free(buf);
    return rc;
}

static void shard_error(resp_out *o, int rc)
{
    if (rc == -ECONNRESET)
        resp_add_error(o, "ERR the shard crashed during this command and was restarted");
    else if (rc == -ETIMEDOUT)
        resp_add_error(o, "ERR shard timeout");
    else
        resp_add_error(o, "ERR shard unavailable");
}

/* Commands in flight to shards, gathered per shard. The commands of one
 * batch of input that go to one shard travel as one request (KV_MULTI,
 * kv_shard.h; a shard with a single command gets it as a plain request),
 * sent to every shard involved at once (hive_send_request) when the batch
 * is drained, so the shards work on them in parallel; the replies are then
 * taken in command order, each shard's one response split into its
 * commands' replies, which keeps the replies in order. A shard runs the
 * commands of one request in order, and the requests of one connection in
 * the order they were sent, so two commands on one key still happen in
 * order. Pipelined GETs over 8 shards: about 8 requests, 8 replies and 8
 * monitors per 16 commands instead of 16 of each. Whatever writes to the
 * output directly first drains the batch (kbatch_drain). */
#define KV_INFLIGHT 64        /* commands per batch */
#define KACC_KEEP   4096      /* a shard buffer's memory kept between batches */
#define KV_BATCH_BYTES (1u << 20) /* a batch holding this much is sent before it grows */

enum { CONV_NONE, CONV_TTL_SECONDS };
enum { KA_EMPTY, KA_SENT, KA_REPLIED, KA_FAILED, KA_SLOW };

/* One shard's part of a batch. buf holds its commands as KV_MULTI
 * records (kv_rec_head: [u32 op][u32 len][len bytes of kv_pack]). */
struct kacc {
    char     *buf;
    uint32_t  len, cap;
    uint32_t  nops;
    uint8_t   state;     /* KA_*, once the batch is sent */
    int       rc;        /* KA_FAILED: every command's error */
    hive_ref  req;
    hive_msg *reply;     /* KA_REPLIED: the shard's response */
    uint32_t  roff;      /* next sub-reply in reply (KV_MULTI) */
    uint32_t  boff;      /* next command in buf (KA_SLOW) */
};

struct kbatch {
    resp_out    *o;
    struct kacc *acc;    /* nshards entries, the connection's */
    unsigned     n;
    size_t       bytes;  /* packed commands gathered */
    struct {
        uint16_t shard;
        uint8_t  conv;
    } q[KV_INFLIGHT];
    unsigned     ntouched;
    uint16_t     touched[KV_INFLIGHT];  /* shards with commands, in first-use order */
};

static void add_reply(resp_out *o, const char *p, size_t len, int conv)
{
    int64_t v;
    /* TTL: the shard answers in ms; seconds, rounded as Redis does */
    if (conv == CONV_TTL_SECONDS && len > 3 && p[0] == ':' && resp_to_i64(p + 1, len - 3, &v))
        resp_add_int(o, v < 0 ? v : (v + 500) / 1000);
    else
        resp_add_raw(o, p, len);
}

static bool acc_grow(struct kacc *a, size_t more)
{
    if (a->cap - a->len >= more)
        return true;
    size_t cap = a->cap ? a->cap : 256;
    while (cap - a->len < more)
        cap *= 2;
    if (cap > UINT32_MAX)
        return false;
    char *p = realloc(a->buf, cap);
    if (!p)
        return false;
    a->buf = p;
    a->cap = (uint32_t)cap;
    return true;
}

/* The reply of a shard call made one command at a time (rc, *r) goes to
 * the output. */
static void add_call_reply(resp_out *o, int rc, hive_msg *r, int conv)
{
    if (rc) {
        shard_error(o, rc);
        return;
    }
    add_reply(o, r->data, r->len, conv);
    hive_msg_free(r);
}

/* The next command in a->buf from *off (its own records: they fit). */
static const char *acc_next(const struct kacc *a, uint32_t *off, uint32_t *op, uint32_t *len)
{
    size_t o = *off;
    const char *p = kv_rec_next(a->buf, a->len, &o, op, len);
    *off = (uint32_t)o;
    return p;
}

static void acc_send(struct kacc *a, unsigned shard)
{
    /* pairs with the release store in the shard's init */
    hive_pid p = atomic_load_explicit(&kv_shard_pid[shard], memory_order_acquire);
    int rc = -ESRCH;
    if (p != HIVE_NOPID) {
        if (a->nops == 1) {
            uint32_t off = 0, op, len;
            const char *req = acc_next(a, &off, &op, &len);
            rc = hive_send_request(p, op, req, len, &a->req);
        } else {
            rc = hive_send_request(p, KV_MULTI, a->buf, a->len, &a->req);
        }
    }
    /* the shard is being restarted (or no memory): its commands go one by
       one, the slow way, when their turn comes */
    a->state = rc ? KA_SLOW : KA_SENT;
    a->boff = 0;
}

/* The reply of the next command of shard `shard` goes to the output. */
static void acc_take(struct kbatch *b, unsigned shard, int conv)
{
    struct kacc *a = &b->acc[shard];
    if (a->state == KA_SENT) {
        int rc = hive_receive_response(a->req, &a->reply, CALL_TMO);
        a->state = rc ? KA_FAILED : KA_REPLIED;
        a->rc = rc;
        a->roff = 0;
    }
    switch (a->state) {
    case KA_FAILED:
        shard_error(b->o, a->rc);
        return;
    case KA_SLOW: {
        uint32_t op, len;
        const char *req = acc_next(a, &a->boff, &op, &len);
        hive_msg *r = NULL;
        int rc = shard_call_packed(shard, op, req, len, &r);
        add_call_reply(b->o, rc, r, conv);
        return;
    }
    default: /* KA_REPLIED */
        break;
    }
    const char *p = a->reply->data;
    if (a->nops == 1) {
        add_reply(b->o, p, a->reply->len, conv);
        return;
    }
    uint32_t len;
    if (a->reply->len - a->roff < 4 ||
        (memcpy(&len, p + a->roff, 4), a->reply->len - a->roff - 4 < len)) {
        resp_add_error(b->o, "ERR bad reply from a shard");
        return;
    }
    add_reply(b->o, p + a->roff + 4, len, conv);
    a->roff += 4 + len;
}

static void kbatch_drain(struct kbatch *b)
{
    for (unsigned i = 0; i < b->ntouched; i++)
        acc_send(&b->acc[b->touched[i]], b->touched[i]);
    for (unsigned i = 0; i < b->n; i++)
        acc_take(b, b->q[i].shard, b->q[i].conv);
    for (unsigned i = 0; i < b->ntouched; i++) {
        struct kacc *a = &b->acc[b->touched[i]];
        if (a->state == KA_REPLIED)
            hive_msg_free(a->reply);
        a->reply = NULL;
        a->state = KA_EMPTY;
        a->nops = 0;
        a->len = 0;
        if (a->cap > KACC_KEEP) {
            free(a->buf);
            a->buf = NULL;
            a->cap = 0;
        }
    }
    b->n = 0;
    b->ntouched = 0;
    b->bytes = 0;
}

/* One shard command whose reply is the command's reply, added to the
 * batch. */
static void forward_conv(struct kbatch *b, const resp_arg *key, uint32_t op, const resp_arg *args,
                         size_t n, int conv)
{
    unsigned shard = kv_shard_of(key->p, key->len, nshards);
    size_t sz = kv_pack_size(args, n);
    if (b->n == KV_INFLIGHT || (b->n && b->bytes + sz > KV_BATCH_BYTES))
        kbatch_drain(b);
    struct kacc *a = &b->acc[shard];
    if (sz > UINT32_MAX - KV_REC_HEAD || !acc_grow(a, KV_REC_HEAD + sz)) {
        /* no memory for it in the batch: in order, the slow way */
        kbatch_drain(b);
        hive_msg *r = NULL;
        int rc = shard_call(shard, op, args, n, &r);
        add_call_reply(b->o, rc, r, conv);
        return;
    }
    if (a->nops == 0)
        b->touched[b->ntouched++] = (uint16_t)shard;
    kv_rec_head(a->buf + a->len, op, (uint32_t)sz);
    kv_pack(args, n, a->buf + a->len + KV_REC_HEAD);
    a->len += KV_REC_HEAD + (uint32_t)sz;
    a->nops++;
    b->bytes += KV_REC_HEAD + sz;
    b->q[b->n].shard = (uint16_t)shard;
    b->q[b->n++].conv = (uint8_t)conv;
}

static void forward(struct kbatch *b, const resp_arg *key, uint32_t op, const resp_arg *args,
                    size_t n)
{
    forward_conv(b, key, op, args, n, CONV_NONE);
}

/* Reads the ":N\r\n" of a shard's integer reply. */
static bool reply_int(const hive_msg *r, int64_t *v)
{
    const char *p = r->data;
    if (r->len < 4 || p[0] != ':')
        return false;
    return resp_to_i64(p + 1, r->len - 3, v);
}

/* DEL / EXISTS / MSET on many keys: one call per shard with its keys
 * (stride 1: keys; stride 2: key-value pairs). Sums the integer replies. */
static void per_shard(resp_out *o, uint32_t op, const resp_arg *a, size_t n, size_t stride)
{
    resp_arg *mine = malloc(n * sizeof *mine);
    unsigned char *of = malloc(n / stride + 1);
    if (!mine || !of) {
        free(mine);
        free(of);
        resp_add_error(o, "OOM command not allowed when used memory > 'maxmemory'");
        return;
    }
    for (size_t i = 0; i < n; i += stride)
        of[i / stride] = (unsigned char)kv_shard_of(a[i].p, a[i].len, nshards);
    int64_t total = 0;
    for (unsigned sh = 0; sh < nshards; sh++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i += stride) {
            if (of[i / stride] != sh)
                continue;
            for (size_t k = 0; k < stride; k++)
                mine[m++] = a[i + k];
        }
        if (!m)
            continue;
        hive_msg *r;
        int rc = shard_call(sh, op, mine, m, &r);
        int64_t v = 0;
        if (rc == 0 && op != KV_MSET && !reply_int(r, &v))
            rc = -EPROTO;
        if (rc == 0 && op == KV_MSET && (r->len < 1 || ((char *)r->data)[0] != '+')) {
            resp_add_raw(o, r->data, r->len); /* its error */
            hive_msg_free(r);
            goto out;
        }
        if (rc == 0)
            hive_msg_free(r);
        if (rc) {
            shard_error(o, rc);
            goto out;
        }
        total += v;
    }
    if (op == KV_MSET)
        resp_add_simple(o, "OK");
    else
        resp_add_int(o, total);
out:
    free(mine);
    free(of);
}

/* The same call on every shard: FLUSHALL, DBSIZE. */
static void all_shards(resp_out *o, uint32_t op)
{
    int64_t total = 0;
    for (unsigned sh = 0; sh < nshards; sh++) {
        hive_msg *r;
        int rc = shard_call(sh, op, NULL, 0, &r);
        if (rc) {
            shard_error(o, rc);
            return;
        }
        int64_t v = 0;
        if (op == KV_DBSIZE)
            reply_int(r, &v);
        total += v;
        hive_msg_free(r);
    }
    if (op == KV_DBSIZE)
        resp_add_int(o, total);
    else
        resp_add_simple(o, "OK");
}

/* ---- commands ------------------------------------------------------ */

static bool is(const resp_arg *a, const char *lit)
{
    return a->len == strlen(lit) && strncasecmp(a->p, lit, a->len) == 0;
}

static void wrong_args(resp_out *o, const resp_arg *cmd)
{
    char msg[128];
    char name[32];
    size_t n = cmd->len < sizeof name - 1 ? cmd->len : sizeof name - 1;
    for (size_t i = 0; i < n; i++) {
        char c = cmd->p[i];
        name[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : (c < 0x20 || c > 0x7e) ? '?' : c;
    }
    name[n] = 0;
    snprintf(msg, sizeof msg, "ERR wrong number of arguments for '%s' command", name);
    resp_add_error(o, msg);
}

static void unknown(resp_out *o, const resp_arg *cmd)
{
    char msg[160], name[64];
    size_t n = cmd->len < sizeof name - 1 ? cmd->len : sizeof name - 1;
    for (size_t i = 0; i < n; i++)
        name[i] = (cmd->p[i] < 0x20 || cmd->p[i] > 0x7e || cmd->p[i] == '\'') ? '?' : cmd->p[i];
    name[n] = 0;
    snprintf(msg, sizeof msg, "ERR unknown command '%s', with args beginning with: ", name);
    resp_add_error(o, msg);
}

static void int_arg_call(struct kbatch *b, const resp_arg *a, uint32_t op, int64_t v)
{
    resp_arg args[2] = { a[1], { (const char *)&v, 8 } };
    forward(b, &a[1], op, args, 2);
}

/* The commands that are one request to one shard and never answer by
 * themselves (their arguments are right): they may be sent while earlier
 * ones are in flight. */
static bool pipelinable(const resp_arg *a, size_t n)
{
    const resp_arg *c = &a[0];
    int64_t v;
    if (n == 2)
        return is(c, "GET") || is(c, "INCR") || is(c, "DECR") || is(c, "TTL") ||
               is(c, "PTTL") || is(c, "PERSIST");
    if (n >= 3 && is(c, "SET"))
        return true;
    if (n == 3 && (is(c, "INCRBY") || is(c, "DECRBY") || is(c, "PEXPIRE")))
        return resp_to_i64(a[2].p, a[2].len, &v) && v != INT64_MIN;
    if (n == 3 && is(c, "EXPIRE"))
        return resp_to_i64(a[2].p, a[2].len, &v) && v <= INT64_MAX / 1000 / 2 &&
               v >= INT64_MIN / 1000 / 2;
    return false;
}

/* Runs one command; false when the connection is to be closed after the
 * replies so far (QUIT). */
static bool command(struct kbatch *b, const resp_arg *a, size_t n)
{
    const resp_arg *c = &a[0];
    resp_out *o = b->o;
    int64_t v;
    if (!pipelinable(a, n))
        kbatch_drain(b); /* it may write to the output itself */
    switch (c->len) {
    case 3:
        if (is(c, "GET")) {
            if (n != 2)
                goto arity;
            forward(b, &a[1], KV_GET, &a[1], 1);
            return true;
        }
        if (is(c, "SET")) {
            if (n < 3)
                goto arity;
            forward(b, &a[1], KV_SET, &a[1], n - 1);
            return true;
        }
        if (is(c, "DEL")) {
            if (n < 2)
                goto arity;
            per_shard(o, KV_DEL, &a[1], n - 1, 1);
            return true;
        }
        if (is(c, "TTL")) {
            if (n != 2)
                goto arity;
            forward_conv(b, &a[1], KV_TTL, &a[1], 1, CONV_TTL_SECONDS);
            return true;
        }
        break;
    case 4:
        if (is(c, "PING")) {
            if (n > 2)
                goto arity;
            if (n == 2)
                resp_add_bulk(o, a[1].p, a[1].len);
            else
                resp_add_simple(o, "PONG");
            return true;
        }
        if (is(c, "ECHO")) {
            if (n != 2)
                goto arity;
            resp_add_bulk(o, a[1].p, a[1].len);
            return true;
        }
        if (is(c, "INCR") || is(c, "DECR")) {
            if (n != 2)
                goto arity;
            int_arg_call(b, a, KV_INCRBY, is(c, "INCR") ? 1 : -1);
            return true;
        }
        if (is(c, "MGET")) {
            if (n < 2)
                goto arity;
            resp_add_array(o, n - 1);
            for (size_t i = 1; i < n; i++)
                forward(b, &a[i], KV_GET, &a[i], 1);
            return true;
        }
        if (is(c, "MSET")) {
            if (n < 3 || n % 2 == 0)
                goto arity;
            per_shard(o, KV_MSET, &a[1], n - 1, 2);
            return true;
        }
        if (is(c, "PTTL")) {
            if (n != 2)
                goto arity;
            forward(b, &a[1], KV_TTL, &a[1], 1);
            return true;
        }
        if (is(c, "QUIT")) {
            resp_add_simple(o, "OK");
            return false;
        }
        if (is(c, "INFO")) {
            static const char info[] = "# Server\r\nredis_version:7.0.0\r\nhive_kv:1\r\n";
            resp_add_bulk(o, info, sizeof info - 1);
            return true;
        }
        break;
    case 5:
        if (is(c, "DEBUG")) {
            if (n == 3 && is(&a[1], "CRASHSHARD")) {
                /* alone in its request: the commands after it go to the
                   restarted shard, as they would without pipelining */
                forward(b, &a[2], KV_CRASH, NULL, 0);
                kbatch_drain(b);
                return true;
            }
            resp_add_error(o, "ERR DEBUG subcommands: CRASHSHARD key");
            return true;
        }
        break;
    case 6:
        if (is(c, "EXISTS")) {
            if (n < 2)
                goto arity;
            per_shard(o, KV_EXISTS, &a[1], n - 1, 1);
            return true;
        }
        if (is(c, "EXPIRE")) {
            if (n != 3)
                goto arity;
            if (!resp_to_i64(a[2].p, a[2].len, &v)) {
                resp_add_error(o, "ERR value is not an integer or out of range");
                return true;
            }
            if (v > INT64_MAX / 1000 / 2 || v < INT64_MIN / 1000 / 2) {
                resp_add_error(o, "ERR invalid expire time in 'expire' command");
                return true;
            }
            int_arg_call(b, a, KV_EXPIRE, v * 1000);
            return true;
        }
        if (is(c, "INCRBY") || is(c, "DECRBY")) {
            if (n != 3)
                goto arity;
            if (!resp_to_i64(a[2].p, a[2].len, &v) || (is(c, "DECRBY") && v == INT64_MIN)) {
                resp_add_error(o, "ERR value is not an integer or out of range");
                return true;
            }
            int_arg_call(b, a, KV_INCRBY, is(c, "INCRBY") ? v : -v);
            return true;
        }
        if (is(c, "DBSIZE")) {
            all_shards(o, KV_DBSIZE);
            return true;
        }
        if (is(c, "CONFIG")) {
            /* redis-benchmark asks for save and appendonly: no persistence */
            if (n == 3 && is(&a[1], "GET")) {
                bool save = is(&a[2], "save"), aof = is(&a[2], "appendonly");
                resp_add_array(o, save || aof ? 2 : 0);
                if (save) {
                    resp_add_bulk(o, "save", 4);
                    resp_add_bulk(o, "", 0);
                } else if (aof) {
                    resp_add_bulk(o, "appendonly", 10);
                    resp_add_bulk(o, "no", 2);
                }
                return true;
            }
            resp_add_error(o, "ERR CONFIG: only CONFIG GET save|appendonly");
            return true;
        }
        if (is(c, "SELECT")) {
            if (n != 2)
                goto arity;
            if (a[1].len == 1 && a[1].p[0] == '0')
                resp_add_simple(o, "OK");
            else
                resp_add_error(o, "ERR DB index is out of range");
            return true;
        }
        break;
    case 7:
        if (is(c, "PEXPIRE")) {
            if (n != 3)
                goto arity;
            if (!resp_to_i64(a[2].p, a[2].len, &v)) {
                resp_add_error(o, "ERR value is not an integer or out of range");
                return true;
            }
            int_arg_call(b, a, KV_EXPIRE, v);
            return true;
        }
        if (is(c, "PERSIST")) {
            if (n != 2)
                goto arity;
            forward(b, &a[1], KV_PERSIST, &a[1], 1);
            return true;
        }
        if (is(c, "COMMAND")) {
            resp_add_array(o, 0);
            return true;
        }
        if (is(c, "FLUSHDB")) {
            all_shards(o, KV_FLUSH);
            return true;
        }
        break;
    case 8:
        if (is(c, "FLUSHALL")) {
            all_shards(o, KV_FLUSH);
            return true;
        }
        break;
    }
    unknown(o, c);
    return true;
arity:
    wrong_args(o, c);
    return true;
}

/* ---- connections --------------------------------------------------- */

struct kconn {
    srv_conn io;         /* first: srv_conn_init fills it */
    bool     closing;
    char    *in;        /* a partial command kept between messages */
    size_t   inlen, incap;
    resp_out out;
    struct kacc *acc;   /* nshards entries, made at the first command */
};

static void kconn_stop(hive_gs *gs) { hive_gs_stop_self(gs, HIVE_NORMAL); }

static int kconn_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    return srv_conn_init(sizeof(struct kconn), arg, state);
}

/* Runs every complete command in data[0..len); returns the bytes used, or
 * -1 after a protocol error reply, or -2 after QUIT. */
static ssize_t serve(struct kconn *c, const char *data, size_t len)
{
    /* on the stack, not thread-local: command() blocks in calls, and the
       process may resume on another scheduler thread */
    resp_arg argv[RESP_MAX_ARGS];
    if (!c->acc && !(c->acc = calloc(nshards, sizeof *c->acc))) {
        resp_add_error(&c->out, "OOM command not allowed when used memory > 'maxmemory'");
        return -1;
    }
    struct kbatch b = { .o = &c->out, .acc = c->acc };
    size_t pos = 0;
    while (pos < len) {
        size_t argc;
        const char *err;
        ssize_t n = resp_parse(data + pos, len - pos, argv, &argc, &err);
        if (n == 0)
            break;
        if (n < 0) {
            char msg[128];
            snprintf(msg, sizeof msg, "ERR %s", err);
            kbatch_drain(&b);
            resp_add_error(&c->out, msg);
            return -1;
        }
        pos += (size_t)n;
        if (argc && !command(&b, argv, argc)) {
            kbatch_drain(&b);
            return -2;
        }
    }
    kbatch_drain(&b);
    return (ssize_t)pos;
}

static void kconn_info(hive_gs *gs, void *state, const hive_msg *m)
{
    struct kconn *c = state;
    if (m->tag == TAG_LINGER) {
        kconn_stop(gs);
        return;
    }
    if ((m->tag != HIVE_TAG_IO && m->tag != HIVE_TAG_IO_ERROR) || !hive_ref_eq(m->ref, c->io.req))
        return;
    if (m->tag == HIVE_TAG_IO_ERROR || m->len == 0) {
        kconn_stop(gs);
        return;
    }
    if (c->closing) {
        if (hive_io_recv_async(c->io.fd, c->io.rcv, &c->io.req) < 0)
            kconn_stop(gs);
        return;
    }
    c->io.rcv = srv_rcv_next(c->io.rcv, m->len);
    const char *data = m->data;
    size_t len = m->len;
    if (c->inlen) {
        if (c->incap - c->inlen < len) {
            size_t cap = c->incap ? c->incap : 4096;
            while (cap - c->inlen < len)
                cap *= 2;
            char *p = realloc(c->in, cap);
            if (!p) {
                kconn_stop(gs);
                return;
            }
            c->in = p;
            c->incap = cap;
        }
        memcpy(c->in + c->inlen, m->data, len);
        c->inlen += len;
        data = c->in;
        len = c->inlen;
    }
    resp_out_reset(&c->out);
    ssize_t used = serve(c, data, len);
    if (used >= 0) {
        size_t rest = len - (size_t)used;
        if (data == c->in) {
            memmove(c->in, c->in + used, rest);
            c->inlen = rest;
        } else if (rest) {
            size_t cap = 4096;
            while (cap < rest)
                cap *= 2;
            c->in = malloc(cap);
            if (!c->in) {
                kconn_stop(gs);
                return;
            }
            memcpy(c->in, data + used, rest);
            c->inlen = rest;
            c->incap = cap;
        }
        if (c->inlen == 0 && c->in) { /* nothing kept: an idle connection holds no buffer */
            free(c->in);
            c->in = NULL;
            c->incap = 0;
        }
    }
    bool failed = c->out.oom ||
                  (c->out.len && hive_io_send(c->io.fd, c->out.p, c->out.len, SEND_TMO) < 0);
    if (c->out.cap > 65536)
        resp_out_free(&c->out);
    if (failed || used == -2) {
        kconn_stop(gs);
    } else if (used == -1) {
        c->closing = true;
        shutdown(c->io.fd, SHUT_WR);
        if (hive_io_recv_async(c->io.fd, c->io.rcv, &c->io.req) < 0 ||
            hive_send_after(hive_self(), TAG_LINGER, NULL, 0, LINGER_MS, NULL) < 0)
            kconn_stop(gs);
    } else if (hive_io_recv_async(c->io.fd, c->io.rcv, &c->io.req) < 0) {
        kconn_stop(gs);
    }
}

static void kconn_terminate(hive_gs *gs, void *state, hive_reason reason)
{
    (void)gs;
    (void)reason;
    struct kconn *c = state;
    hive_io_close(c->io.fd);
    free(c->in);
    resp_out_free(&c->out);
    if (c->acc)
        for (unsigned i = 0; i < nshards; i++)
            free(c->acc[i].buf);
    free(c->acc);
    free(c);
}

static const hive_gen_server kconn_gs = {
    .init = kconn_init,
    .handle_info = kconn_info,
    .terminate = kconn_terminate,
};

static int start_conn(int fd)
{
    hive_pid p;
    return hive_gs_start(&kconn_gs, (void *)(intptr_t)fd, NULL, &p);
}

/* ---- the shards' supervisor ---------------------------------------- */

static int start_shards(void)
{
    hive_child_spec *specs = calloc(nshards, sizeof *specs);
    char (*ids)[24] = calloc(nshards, sizeof *ids);
    if (!specs || !ids) {
        free(specs);
        free(ids);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < nshards; i++) {
        snprintf(ids[i], sizeof ids[i], "shard.%u", i);
        specs[i] = (hive_child_spec){ .id = ids[i], .start = kv_shard_start,
                                      .arg = (void *)(uintptr_t)i, .restart = HIVE_PERMANENT };
    }
    hive_sup_opts o;
    hive_sup_opts_default(&o);
    o.strategy = HIVE_ONE_FOR_ONE;
    o.intensity = 100; /* restarts ... */
    o.period_ms = 1000; /* ... per second before the supervisor gives up */
    o.name = "kv.sup";
    int rc = hive_sup_start(specs, nshards, &o, &sup_pid);
    free(specs);
    free(ids); /* ids are copied by the supervisor */
    return rc;
}


static void stop_shards(void)
{
    hive_gs_stop(sup_pid, HIVE_SHUTDOWN, 10000);
}

static int flag(const char *f, const char *v, bool *used)
{
    unsigned long n;
    if (strcmp(f, "--shards") || !srv_parse_uint(v, 1, KV_MAX_SHARDS, &n))
        return -1;
    nshards = (unsigned)n;
    *used = true;
    return 0;
}

int main(int argc, char **argv)
{
    static srv s = {
        .name = "kv",
        .usage = "[--shards N]",
        .flag = flag,
        .start = start_shards,
        .start_conn = start_conn,
        .stop = stop_shards,
    };
    return srv_main(&s, argc, argv);
}
