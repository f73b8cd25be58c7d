#include "runtime/ds/wheel.h"

static inline void list_init(struct wentry *s) { s->next = s->prev = s; }

static inline void list_add(struct wentry *s, struct wentry *e)
{
    e->prev = s->prev;
    e->next = s;
    s->prev->next = e;
    s->prev = e;
}

static inline void list_del(struct wentry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->next = e->prev = e;
}

void wheel_init(struct wheel *w, uint64_t now)
{
    w->now = now;
    w->count = 0;
    list_init(&w->due);
    for (int l = 0; l < WHEEL_LEVELS; l++) {
        w->occupied[l] = 0;
        for (int s = 0; s < WHEEL_SLOTS; s++)
            list_init(&w->slots[l][s]);
    }
}

static void place(struct wheel *w, struct wentry *e)
{
    if (e->tick <= w->now) {
        e->level = -1;
        list_add(&w->due, e);
        return;
    }
    uint64_t t = e->tick;
    if (t - w->now >= WHEEL_MAX_TICKS)
        t = w->now + WHEEL_MAX_TICKS - 1; /* callers never ask this far; clamp */
    uint64_t diff = (w->now ^ t) | (WHEEL_SLOTS - 1);
    int level = (63 - __builtin_clzll(diff)) / 6;
    if (level >= WHEEL_LEVELS)
        level = WHEEL_LEVELS - 1;
    unsigned slot = (unsigned)((t >> (6 * level)) & (WHEEL_SLOTS - 1));
    e->level = (int16_t)level;
    e->slot = (uint8_t)slot;
    list_add(&w->slots[level][slot], e);
    w->occupied[level] |= (uint64_t)1 << slot;
}

void wheel_insert(struct wheel *w, struct wentry *e)
{
    w->count++;
    place(w, e);
}

void wheel_remove(struct wheel *w, struct wentry *e)
{
    if (e->level == -2)
        return;
    if (e->level >= 0) {
        struct wentry *s = &w->slots[e->level][e->slot];
        list_del(e);
        if (s->next == s)
            w->occupied[e->level] &= ~((uint64_t)1 << e->slot);
    } else {
        list_del(e);
    }
    e->level = -2;
    w->count--;
}

/* First occupied slot at or after now's slot, lowest level first. */
static bool first_slot(const struct wheel *w, int *level, unsigned *slot, uint64_t *tick)
{
    for (int l = 0; l < WHEEL_LEVELS; l++) {
        if (!w->occupied[l])
            continue;
        unsigned idx = (unsigned)((w->now >> (6 * l)) & (WHEEL_SLOTS - 1));
        uint64_t bits = w->occupied[l] & (~(uint64_t)0 << idx);
        if (!bits)
            continue; /* cannot happen by the placement rule; be safe */
        unsigned s = (unsigned)__builtin_ctzll(bits);
        uint64_t block = (uint64_t)1 << (6 * (l + 1));
        uint64_t start = (w->now & ~(block - 1)) | ((uint64_t)s << (6 * l));
        *level = l;
        *slot = s;
        *tick = start;
        return true;
    }
    return false;
}

bool wheel_next(const struct wheel *w, uint64_t *tick)
{
    if (w->count == 0)
        return false;
    if (w->due.next != &w->due) {
        *tick = w->now;
        return true;
    }
    int l;
    unsigned s;
    return first_slot(w, &l, &s, tick);
}

void wheel_advance(struct wheel *w, uint64_t to, void (*fire)(struct wentry *, void *),
                   void *ctx)
{
    for (;;) {
        while (w->due.next != &w->due) {
            struct wentry *e = w->due.next;
            list_del(e);
            e->level = -2;
            w->count--;
            fire(e, ctx);
        }
        int l;
        unsigned s;
        uint64_t start;
        if (w->count == 0 || !first_slot(w, &l, &s, &start) || start > to)
            break;
        if (start > w->now)
            w->now = start;
        struct wentry *head = &w->slots[l][s];
        struct wentry list;
        list_init(&list);
        if (head->next != head) {
            /* splice the slot out, then re-place each entry */
            list.next = head->next;
            list.prev = head->prev;
            list.next->prev = &list;
            list.prev->next = &list;
            list_init(head);
        }
        w->occupied[l] &= ~((uint64_t)1 << s);
        while (list.next != &list) {
            struct wentry *e = list.next;
            list_del(e);
            place(w, e); /* due ones go to the due list, fired above */
        }
    }
    if (to > w->now)
        w->now = to;
}
