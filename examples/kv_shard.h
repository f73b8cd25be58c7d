/* kv_shard: one shard of kv's keys, a gen_server that owns a hash table.
 *
 * Connections call a shard with the command's operation as the call's tag
 * and its arguments packed (kv_pack) as the request; the shard answers with
 * the RESP reply bytes, ready to be appended to the connection's output.
 * Several commands of one pipelined batch go as one KV_MULTI request.
 * Expiry: each key with a time to live has a hive timer to its shard; the
 * key is also dropped when it is read after its deadline, so a late timer
 * never shows an expired key.
 * Shard i is registered as "kv.shard.<i>"; a supervisor restarts a shard
 * that crashed, empty.
 */
#ifndef HIVE_EXAMPLES_KV_SHARD_H
#define HIVE_EXAMPLES_KV_SHARD_H

#include <hive.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "resp.h"

enum kv_op {
    KV_GET = 1,   /* key */
    KV_SET,       /* key value [EX s | PX ms | KEEPTTL] [NX | XX] [GET] */
    KV_DEL,       /* key... -> :removed */
    KV_EXISTS,    /* key... -> :found */
    KV_INCRBY,    /* key delta(8 bytes, int64) -> :new */
    KV_EXPIRE,    /* key ms(8 bytes, int64, may be <= 0: delete) -> :1/:0 */
    KV_TTL,       /* key -> :ms left, -1 none, -2 no key (milliseconds) */
    KV_PERSIST,   /* key -> :1/:0 */
    KV_MSET,      /* key value ... -> +OK */
    KV_FLUSH,     /* -> +OK */
    KV_DBSIZE,    /* -> :keys */
    KV_CRASH,     /* -> +OK, then the shard stops abnormally (a test hook) */
    KV_MULTI,     /* ([u32 op][u32 len][len bytes of kv_pack])... -> ([u32 len][reply])...:
                     the commands of one connection's batch for this shard, run in
                     order, their replies in that order */
};

/* A KV_MULTI request's command records: [u32 op][u32 len][len bytes]. */
#define KV_REC_HEAD 8u

static inline void kv_rec_head(char *at, uint32_t op, uint32_t len)
{
    memcpy(at, &op, 4);
    memcpy(at + 4, &len, 4);
}

/* The record at *off in p[0, n): its op and length, its bytes returned and
 * *off moved past it; NULL when it does not fit in what is left. */
static inline const char *kv_rec_next(const char *p, size_t n, size_t *off, uint32_t *op,
                                      uint32_t *len)
{
    *op = *len = 0;
    if (n - *off < KV_REC_HEAD)
        return NULL;
    memcpy(op, p + *off, 4);
    memcpy(len, p + *off + 4, 4);
    if (n - *off - KV_REC_HEAD < *len)
        return NULL;
    const char *r = p + *off + KV_REC_HEAD;
    *off += KV_REC_HEAD + *len;
    return r;
}

#define KV_SHARD_NAME "kv.shard.%u"
#define KV_MAX_SHARDS 256

/* The running pid of each shard, set by the shard itself when it starts
 * (HIVE_NOPID before): a cache of the registry, so that a call needs no
 * lookup by name. A stale entry (a shard that crashed) is seen as -ESRCH
 * by the call; the caller then asks the registry. */
extern _Atomic hive_pid kv_shard_pid[KV_MAX_SHARDS];

/* The child start function for shard (uintptr_t)arg: starts it linked to
 * the caller, registered under its name. */
int kv_shard_start(void *arg, hive_pid *out);

/* Packs args into buf (kv_pack_size bytes) for a call to a shard. */
size_t kv_pack_size(const resp_arg *args, size_t n);
void   kv_pack(const resp_arg *args, size_t n, void *buf);

/* The shard that owns a key, of n. */
unsigned kv_shard_of(const char *key, size_t len, unsigned n);

#endif
