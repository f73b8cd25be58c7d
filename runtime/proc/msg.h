/*
 * Message nodes: what travels through a mailbox. The public hive_msg is
 * embedded; its payload follows the node, 16-byte aligned.
 *
 * kind says how the receiver treats the node when it drains its mailbox:
 * user messages and replies are queued for receive; signals (exit, link
 * bookkeeping) and wake-ups (receive timeouts) are handled by the runtime
 * and never reach the user as such.
 */
#ifndef HIVE_MSG_H
#define HIVE_MSG_H

#include <hive.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/ds/mailbox.h"
#include "runtime/sched/ctx.h"   /* HIVE_TLS_ACCESSOR */

enum mkind {
    MK_USER = 0,    /* hive_send and friends */
    MK_CALL,        /* gen_server call request; ref = call alias */
    MK_CAST,        /* gen_server cast */
    MK_REPLY,       /* reply to a call: dropped at delivery unless its ref is an active alias */
    MK_DOWN,        /* monitor fired (tag HIVE_TAG_DOWN) */
    MK_SIG_EXIT,    /* exit signal: aux = reason, aux2 = SIGF_* flags */
    MK_TIMEOUT,     /* receive timeout wake-up: aux = receive sequence */
    MK_SYSTEM,      /* runtime-internal request (gen_server system messages) */
    MK_IO,          /* an I/O completion (runtime/proc/io.c): aux = result,
                       aux2 = its request until it leaves the mailbox */
};

#define SIGF_LINK 0x1u   /* exit signal from a linked process's exit */
#define SIGF_KILL 0x2u   /* sent by hive_kill */
#define SIGF_OVERFLOW 0x4u /* an overflow kill (send.c): dies with HIVE_OVERFLOWED, untrappable */

/* aux2 of a user message (MK_USER, MK_CALL, MK_CAST) that counts against
 * its receiver's mailbox limit (send.c, "Mailbox limits"): set by the
 * sender whose add to mbox.counted admitted it, cleared by the sub that
 * takes it off (proc_uncount). Values no other aux2 can hold (SIGF_* are
 * small, an I/O request's address is even and in user space), so one
 * compare, with a sign-extended 32-bit immediate, tells a counted node
 * whatever its kind. A counted node that drop-oldest dropped while a
 * receive's mark pointed at it stays linked, already uncounted, as
 * MN_DROPPED: receives skip it and free it when they pass. */
#define MN_COUNTED 0xFFFFFFFFC0C0C0C1ull
#define MN_DROPPED 0xFFFFFFFFC0C0C0C3ull

struct mnode {
    struct mq_node q;       /* must be first: the mailbox link */
    uint32_t kind;
    uint32_t size;          /* bytes allocated for the node, payload included */
    hive_pid to;            /* generation check at delivery */
    int64_t  aux;
    uint64_t aux2;
    hive_msg msg;
    /* payload follows at offset sizeof(struct mnode) */
};

_Static_assert(sizeof(struct mnode) % 16 == 0, "payload must be 16-byte aligned");

static inline struct mnode *mnode_of(const hive_msg *m)
{
    return (struct mnode *)((char *)m - offsetof(struct mnode, msg));
}

/* Node sizes the caches keep: MNODE_SMALL holds a payload of up to 16
 * bytes (a counter, a pid, a pointer: most messages), the other two up to
 * 48 and 176. */
#define MNODE_CLASSES 3
#define MNODE_SMALL 96u
/* A scheduler's free nodes of those sizes (owner thread only).
 * Handed in by pointer; NULL means "no cache" (a foreign thread). Arrays
 * of pointers, the most recently freed last, not lists through the nodes:
 * a free writes nothing into the node, whose lines a receiver on another
 * core holds only to read, and a sender reusing it writes it without
 * first reading a link out of it; a batch moves to or from the depot as
 * one copy of pointers (msg.c). */
#define MNODE_CACHE_MAX 4096u
struct mnode_cache {
    unsigned      n[MNODE_CLASSES];
    struct mnode *slot[MNODE_CLASSES][MNODE_CACHE_MAX];
};
/* The calling thread's cache: its scheduler's, NULL elsewhere. Set by the
 * scheduler thread at start (mnode_cache_bind). Read through a call: a
 * process can resume on another thread after a switch. */
struct mnode_cache *mnode_cache_self(void) HIVE_TLS_ACCESSOR;
void mnode_cache_bind(struct mnode_cache *c);

/* Allocates a node with room for len payload bytes (no limit check). */
struct mnode *mnode_alloc(size_t len);
void mnode_free(struct mnode *n);
void mnode_cache_flush(struct mnode_cache *c);   /* at scheduler teardown */
void mnode_depot_flush(void);              /* at runtime teardown, after the caches */
/* Allocates and fills a node: copies data (may be NULL when len == 0). */
struct mnode *mnode_make(uint32_t kind, uint32_t tag, const void *data, size_t len);
/* The same, from a caller that knows its cache (NULL: none). */
struct mnode *mnode_make_on(struct mnode_cache *c, uint32_t kind, uint32_t tag, const void *data,
                            size_t len);
void mnode_free_on(struct mnode_cache *c, struct mnode *n);

/* A small block (at most 256 - sizeof(struct mnode) bytes keeps it in the
 * caches above) for a short-lived record that is not a message, such as
 * a task's start block: a node's payload, taken from the calling
 * thread's node cache (jemalloc's elsewhere) and given back with
 * mnode_block_free on any thread, to that thread's cache. */
static inline void *mnode_block_alloc(size_t len)
{
    struct mnode *n = mnode_alloc(len);
    return n ? (void *)(n + 1) : NULL;
}

static inline void mnode_block_free(void *p)
{
    mnode_free((struct mnode *)p - 1);
}

#endif
