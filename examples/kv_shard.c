/* kv_shard: the hash table and the commands that run inside a shard.
 * Chained hashing, one allocation per entry (key and value together),
 * doubling when the table is as full as it has buckets. */
#include "kv_shard.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

enum { TAG_EXPIRE = 1 };

_Atomic hive_pid kv_shard_pid[KV_MAX_SHARDS];

struct ent {
    struct ent *next;
    uint64_t    hash;
    int64_t     expire_at; /* CLOCK_MONOTONIC ms; 0: none */
    uint64_t    tid;       /* id of its expiry timer, 0: none */
    hive_timer  timer;
    uint32_t    klen, vlen;
    char        kv[];      /* key, then value */
};

struct shard {
    struct ent **b;
    size_t       mask;     /* buckets - 1 */
    size_t       count;
    uint64_t     next_tid;
    unsigned     index;
    resp_out     out;      /* the reply being built */
};

struct expire_msg {
    uint64_t tid;
    char     key[];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* FNV-1a, then a final mix so that both ends of the word are usable: the
 * shard comes from the top bits, the bucket from the bottom ones. */
static uint64_t key_hash(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

unsigned kv_shard_of(const char *key, size_t len, unsigned n)
{
    return (unsigned)((key_hash(key, len) >> 40) % n);
}

size_t kv_pack_size(const resp_arg *args, size_t n)
{
    size_t s = 4 + 4 * n;
    for (size_t i = 0; i < n; i++)
        s += args[i].len;
    return s;
}

void kv_pack(const resp_arg *args, size_t n, void *buf)
{
    char *p = buf;
    uint32_t n32 = (uint32_t)n;
    memcpy(p, &n32, 4);
    p += 4;
    for (size_t i = 0; i < n; i++) {
        uint32_t l = (uint32_t)args[i].len;
        memcpy(p, &l, 4);
        p += 4;
    }
    for (size_t i = 0; i < n; i++) {
        memcpy(p, args[i].p, args[i].len);
        p += args[i].len;
    }
}

/* The inverse of kv_pack; -1 if the request is not well formed. */
static ssize_t unpack(const char *p, size_t len, resp_arg *args, size_t max)
{
    uint32_t n;
    if (len < 4)
        return -1;
    memcpy(&n, p, 4);
    if (n > max || len - 4 < 4 * (size_t)n)
        return -1;
    size_t off = 4 + 4 * (size_t)n;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t l;
        memcpy(&l, p + 4 + 4 * i, 4);
        if (len - off < l)
            return -1;
        args[i].p = p + off;
        args[i].len = l;
        off += l;
    }
    return n;
}

/* ---- the table ----------------------------------------------------- */

static struct ent **slot(struct shard *s, uint64_t h, const char *k, size_t kl)
{
    struct ent **pp = &s->b[h & s->mask];
    for (; *pp; pp = &(*pp)->next) {
        struct ent *e = *pp;
        if (e->hash == h && e->klen == kl && memcmp(e->kv, k, kl) == 0)
            break;
    }
    return pp;
}

static void disarm(struct ent *e)
{
    if (e->tid) {
        hive_cancel_timer(e->timer);
        e->tid = 0;
    }
    e->expire_at = 0;
}

static void unlink_free(struct shard *s, struct ent **pp)
{
    struct ent *e = *pp;
    *pp = e->next;
    disarm(e);
    free(e);
    s->count--;
}

/* The link to a live entry, or to the NULL at the end of its chain (an
 * expired entry is removed on the way). */
static struct ent **lookup(struct shard *s, const resp_arg *key)
{
    uint64_t h = key_hash(key->p, key->len);
    struct ent **pp = slot(s, h, key->p, key->len);
    if (*pp && (*pp)->expire_at && (*pp)->expire_at <= now_ms()) {
        unlink_free(s, pp);
        pp = slot(s, h, key->p, key->len);
    }
    return pp;
}

static void grow(struct shard *s)
{
    size_t n = (s->mask + 1) * 2;
    struct ent **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains; still correct */
    for (size_t i = 0; i <= s->mask; i++) {
        for (struct ent *e = s->b[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(s->b);
    s->b = b;
    s->mask = n - 1;
}

/* Stores key = value; keeps the timer when keep_ttl. NULL without memory. */
static struct ent *put(struct shard *s, const resp_arg *key, const char *v, size_t vl,
                       bool keep_ttl)
{
    struct ent **pp = lookup(s, key);
    struct ent *old = *pp;
    if (old && old->vlen == vl) {
        memcpy(old->kv + old->klen, v, vl);
        if (!keep_ttl)
            disarm(old);
        return old;
    }
    struct ent *e = malloc(sizeof *e + key->len + vl);
    if (!e)
        return NULL;
    e->hash = key_hash(key->p, key->len);
    e->klen = (uint32_t)key->len;
    e->vlen = (uint32_t)vl;
    memcpy(e->kv, key->p, key->len);
    memcpy(e->kv + key->len, v, vl);
    e->expire_at = 0;
    e->tid = 0;
    if (old) {
        if (keep_ttl) {
            e->expire_at = old->expire_at;
            e->tid = old->tid;
            e->timer = old->timer;
            old->tid = 0;
        }
        e->next = old->next;
        disarm(old);
        free(old);
        *pp = e;
        return e;
    }
    e->next = NULL;
    *pp = e;
    if (++s->count > s->mask + 1)
        grow(s);
    return e;
}

/* A deadline ms from now, with its timer. */
static void arm(struct shard *s, struct ent *e, int64_t ms)
{
    disarm(e);
    e->expire_at = now_ms() + ms;
    size_t n = sizeof(struct expire_msg) + e->klen;
    char buf[512];
    struct expire_msg *m = n <= sizeof buf ? (struct expire_msg *)buf : malloc(n);
    if (!m)
        return; /* the deadline still holds at the next read */
    m->tid = ++s->next_tid;
    memcpy(m->key, e->kv, e->klen);
    if (hive_send_after(hive_self(), TAG_EXPIRE, m, n, ms, &e->timer) == 0)
        e->tid = m->tid;
    if ((char *)m != buf)
        free(m);
}

static void flush_all(struct shard *s)
{
    for (size_t i = 0; i <= s->mask; i++)
        while (s->b[i])
            unlink_free(s, &s->b[i]);
}

/* ---- the commands -------------------------------------------------- */

static bool ieq(const resp_arg *a, const char *lit)
{
    return a->len == strlen(lit) && strncasecmp(a->p, lit, a->len) == 0;
}

static void cmd_set(struct shard *s, resp_arg *a, size_t n)
{
    resp_out *o = &s->out;
    int64_t ttl = -1;
    bool nx = false, xx = false, keep = false, get = false;
    for (size_t i = 2; i < n; i++) {
        if ((ieq(&a[i], "EX") || ieq(&a[i], "PX")) && i + 1 < n && ttl < 0 && !keep) {
            int64_t v;
            if (!resp_to_i64(a[i + 1].p, a[i + 1].len, &v)) {
                resp_add_error(o, "ERR value is not an integer or out of range");
                return;
            }
            if (v <= 0 || (ieq(&a[i], "EX") && v > INT64_MAX / 1000 / 2) || v > INT64_MAX / 2) {
                resp_add_error(o, "ERR invalid expire time in 'set' command");
                return;
            }
            ttl = ieq(&a[i], "EX") ? v * 1000 : v;
            i++;
        } else if (ieq(&a[i], "NX") && !xx) {
            nx = true;
        } else if (ieq(&a[i], "XX") && !nx) {
            xx = true;
        } else if (ieq(&a[i], "KEEPTTL") && ttl < 0) {
            keep = true;
        } else if (ieq(&a[i], "GET")) {
            get = true;
        } else {
            resp_add_error(o, "ERR syntax error");
            return;
        }
    }
    struct ent *old = *lookup(s, &a[0]);
    if (get) {
        if (old)
            resp_add_bulk(o, old->kv + old->klen, old->vlen);
        else
            resp_add_null(o);
    }
    if ((nx && old) || (xx && !old)) {
        if (!get)
            resp_add_null(o);
        return;
    }
    struct ent *e = put(s, &a[0], a[1].p, a[1].len, keep);
    if (!e) {
        if (get)
            s->out.len = 0;
        resp_add_error(o, "OOM command not allowed when used memory > 'maxmemory'");
        return;
    }
    if (ttl > 0)
        arm(s, e, ttl);
    if (!get)
        resp_add_simple(o, "OK");
}

static void cmd_incrby(struct shard *s, resp_arg *a)
{
    resp_out *o = &s->out;
    int64_t delta, v = 0;
    if (a[1].len != 8) {
        resp_add_error(o, "ERR syntax error");
        return;
    }
    memcpy(&delta, a[1].p, 8);
    struct ent *e = *lookup(s, &a[0]);
    if (e && !resp_to_i64(e->kv + e->klen, e->vlen, &v)) {
        resp_add_error(o, "ERR value is not an integer or out of range");
        return;
    }
    if ((delta > 0 && v > INT64_MAX - delta) || (delta < 0 && v < INT64_MIN - delta)) {
        resp_add_error(o, "ERR increment or decrement would overflow");
        return;
    }
    v += delta;
    char num[24];
    int len = snprintf(num, sizeof num, "%lld", (long long)v);
    if (!put(s, &a[0], num, (size_t)len, true)) {
        resp_add_error(o, "OOM command not allowed when used memory > 'maxmemory'");
        return;
    }
    resp_add_int(o, v);
}

static void run(hive_gs *gs, struct shard *s, uint32_t op, resp_arg *a, size_t n)
{
    resp_out *o = &s->out;
    int64_t count = 0;
    switch (op) {
    case KV_GET: {
        struct ent *e = n == 1 ? *lookup(s, &a[0]) : NULL;
        if (e)
            resp_add_bulk(o, e->kv + e->klen, e->vlen);
        else
            resp_add_null(o);
        return;
    }
    case KV_SET:
        if (n < 2)
            break;
        cmd_set(s, a, n);
        return;
    case KV_DEL:
    case KV_EXISTS:
        for (size_t i = 0; i < n; i++) {
            struct ent **pp = lookup(s, &a[i]);
            if (*pp) {
                count++;
                if (op == KV_DEL)
                    unlink_free(s, pp);
            }
        }
        resp_add_int(o, count);
        return;
    case KV_INCRBY:
        if (n != 2)
            break;
        cmd_incrby(s, a);
        return;
    case KV_EXPIRE: {
        int64_t ms;
        if (n != 2 || a[1].len != 8)
            break;
        memcpy(&ms, a[1].p, 8);
        struct ent **pp = lookup(s, &a[0]);
        if (!*pp) {
            resp_add_int(o, 0);
        } else if (ms <= 0) {
            unlink_free(s, pp);
            resp_add_int(o, 1);
        } else {
            arm(s, *pp, ms);
            resp_add_int(o, 1);
        }
        return;
    }
    case KV_TTL: {
        struct ent *e = n == 1 ? *lookup(s, &a[0]) : NULL;
        if (!e)
            resp_add_int(o, -2);
        else if (!e->expire_at)
            resp_add_int(o, -1);
        else
            resp_add_int(o, e->expire_at - now_ms());
        return;
    }
    case KV_PERSIST: {
        struct ent *e = n == 1 ? *lookup(s, &a[0]) : NULL;
        resp_add_int(o, e && e->expire_at);
        if (e)
            disarm(e);
        return;
    }
    case KV_MSET:
        if (n % 2)
            break;
        for (size_t i = 0; i < n; i += 2) {
            if (!put(s, &a[i], a[i + 1].p, a[i + 1].len, false)) {
                resp_add_error(o, "OOM command not allowed when used memory > 'maxmemory'");
                return;
            }
        }
        resp_add_simple(o, "OK");
        return;
    case KV_FLUSH:
        flush_all(s);
        resp_add_simple(o, "OK");
        return;
    case KV_DBSIZE:
        resp_add_int(o, (int64_t)s->count);
        return;
    case KV_CRASH:
        resp_add_simple(o, "OK");
        /* {stop, crashed, State}: terminate frees the table, the exit is
           abnormal, so the supervisor restarts the shard, empty */
        hive_gs_stop_self(gs, HIVE_ERROR);
        return;
    }
    resp_add_error(o, "ERR bad request to a shard");
}

/* ---- the gen_server ------------------------------------------------ */

static int shard_init(hive_gs *gs, void *arg, void **state)
{
    (void)gs;
    struct shard *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->index = (unsigned)(uintptr_t)arg;
    if (s->index >= KV_MAX_SHARDS) {
        free(s);
        return -EINVAL;
    }
    s->mask = 1023;
    s->b = calloc(s->mask + 1, sizeof *s->b);
    if (!s->b) {
        free(s);
        return -ENOMEM;
    }
    atomic_store_explicit(&kv_shard_pid[s->index], hive_self(), memory_order_release);
    *state = s;
    return 0;
}

/* One command, packed, its reply appended to s->out. */
static void run_packed(hive_gs *gs, struct shard *s, uint32_t op, const char *p, size_t len)
{
    static __thread resp_arg args[2 * RESP_MAX_ARGS];
    ssize_t n = unpack(p, len, args, 2 * RESP_MAX_ARGS);
    if (n < 0)
        resp_add_error(&s->out, "ERR bad request to a shard");
    else
        run(gs, s, op, args, (size_t)n);
}

/* KV_MULTI: each command's reply after its 4-byte length. */
static void run_multi(hive_gs *gs, struct shard *s, const char *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        uint32_t op, l, rl;
        const char *c = kv_rec_next(p, len, &off, &op, &l);
        if (!c || op == KV_MULTI) {
            resp_add_error(&s->out, "ERR bad request to a shard");
            return;
        }
        size_t at = s->out.len;
        resp_add_raw(&s->out, "\0\0\0\0", 4);
        run_packed(gs, s, op, c, l);
        if (s->out.oom)
            return;
        rl = (uint32_t)(s->out.len - at - 4);
        memcpy(s->out.p + at, &rl, 4);
    }
}

static void shard_call(hive_gs *gs, void *state, const hive_msg *req, hive_from from)
{
    struct shard *s = state;
    resp_out_reset(&s->out);
    if (req->tag == KV_MULTI)
        run_multi(gs, s, req->data, req->len);
    else
        run_packed(gs, s, req->tag, req->data, req->len);
    if (s->out.oom) {
        resp_out_reset(&s->out);
        resp_add_error(&s->out, "OOM command not allowed when used memory > 'maxmemory'");
    }
    hive_reply(from, 0, s->out.p, s->out.len);
    if (s->out.cap > 65536) /* a large reply's buffer is not kept */
        resp_out_free(&s->out);
}

static void shard_info(hive_gs *gs, void *state, const hive_msg *m)
{
    (void)gs;
    struct shard *s = state;
    if (m->tag != TAG_EXPIRE || m->len < sizeof(struct expire_msg))
        return;
    const struct expire_msg *em = m->data;
    resp_arg key = { em->key, m->len - sizeof *em };
    uint64_t h = key_hash(key.p, key.len);
    struct ent **pp = slot(s, h, key.p, key.len);
    struct ent *e = *pp;
    if (!e || e->tid != em->tid)
        return; /* deleted, overwritten or given a new deadline since */
    int64_t left = e->expire_at - now_ms();
    e->tid = 0;
    if (left <= 0)
        unlink_free(s, pp);
    else
        arm(s, e, left); /* fired a little early on the ms clock: again */
}

static void shard_terminate(hive_gs *gs, void *state, hive_reason reason)
{
    (void)gs;
    (void)reason;
    struct shard *s = state;
    flush_all(s);
    free(s->b);
    resp_out_free(&s->out);
    free(s);
}

static const hive_gen_server shard_gs = {
    .init = shard_init,
    .handle_call = shard_call,
    .handle_info = shard_info,
    .terminate = shard_terminate,
};

int kv_shard_start(void *arg, hive_pid *out)
{
    char name[HIVE_NAME_MAX + 1];
    snprintf(name, sizeof name, KV_SHARD_NAME, (unsigned)(uintptr_t)arg);
    return hive_gs_start(&shard_gs, arg, &(hive_gs_opts){ .name = name, .flags = HIVE_LINK },
                         out);
}
