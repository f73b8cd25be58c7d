/* The time-out heap of a ring's operations (io/tmo.h). */
#include "io/tmo.h"

#include <errno.h>
#include <stdlib.h>

#include "io/backend.h"

static void swap(struct tmo_heap *h, unsigned a, unsigned b)
{
    struct iop *t = h->v[a];
    h->v[a] = h->v[b];
    h->v[b] = t;
    h->v[a]->hidx = a + 1;
    h->v[b]->hidx = b + 1;
}

static void fix(struct tmo_heap *h, unsigned i)
{
    while (i > 0 && h->v[(i - 1) / 2]->deadline > h->v[i]->deadline) {
        swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        unsigned l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->v[l]->deadline < h->v[m]->deadline)
            m = l;
        if (r < h->n && h->v[r]->deadline < h->v[m]->deadline)
            m = r;
        if (m == i)
            return;
        swap(h, i, m);
        i = m;
    }
}

int tmo_add(struct tmo_heap *h, struct iop *op)
{
    if (h->n == h->cap) {
        unsigned cap = h->cap ? h->cap * 2 : 64;
        struct iop **v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n] = op;
    op->hidx = ++h->n;
    fix(h, h->n - 1);
    return 0;
}

void tmo_del(struct tmo_heap *h, struct iop *op)
{
    if (!op->hidx)
        return;
    unsigned i = op->hidx - 1;
    op->hidx = 0;
    if (i != --h->n) {
        h->v[i] = h->v[h->n];
        h->v[i]->hidx = i + 1;
        fix(h, i);
    }
}

void tmo_free(struct tmo_heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

bool tmo_due(struct tmo_heap *h, uint64_t *now)
{
    if (!h->n)
        return false;
    uint64_t d = h->v[0]->deadline;
    if (clock_not_yet(d, &h->skips))
        return false;
    *now = clock_precise_ns();
    return d <= *now;
}

int64_t tmo_wait(const struct tmo_heap *h, int64_t timeout_ns)
{
    if (!h->n)
        return timeout_ns;
    uint64_t now = clock_precise_ns(), d = h->v[0]->deadline;
    int64_t left = d > now ? (int64_t)(d - now) : 0;
    return timeout_ns < 0 || left < timeout_ns ? left : timeout_ns;
}
