#include "msg.h"

#include <string.h>

#include "../alloc/alloc.h"

struct mnode *mnode_alloc(size_t len)
{
    size_t size = sizeof(struct mnode) + ((len + 15) & ~(size_t)15);
    struct mnode *n = mem_alloc(size);
    if (!n)
        return NULL;
    n->size = (uint32_t)size;
    n->to = HIVE_NOPID;
    n->aux = 0;
    n->aux2 = 0;
    n->msg.data = n + 1;
    n->msg.len = (uint32_t)len;
    return n;
}

void mnode_free(struct mnode *n)
{
    mem_free(n, n->size);
}

struct mnode *mnode_make(uint32_t kind, uint32_t tag, const void *data, size_t len)
{
    struct mnode *n = mnode_alloc(len);
    if (!n)
        return NULL;
    n->kind = kind;
    n->msg.tag = tag;
    n->msg.from = HIVE_NOPID;
    n->msg.ref = (hive_ref){ 0, 0 };
    if (len)
        memcpy(n + 1, data, len);
    return n;
}
