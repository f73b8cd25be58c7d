/*
 * Hierarchical timer wheel: 6 levels of 64 slots, one tick = 1 ms, covering
 * 2^36 ms (about 795 days). Insert and remove are O(1); advancing costs
 * O(slots visited + entries cascaded), and skips empty slots with one bitmap
 * per level.
 *
 * Single-threaded: each scheduler owns one wheel and only its thread touches
 * it. Entries are intrusive and opaque: the wheel calls back with the entry,
 * the caller knows what it is.
 *
 * Placement: an entry due at tick T is kept at the level of the highest bit
 * in which T differs from `now` (in groups of 6 bits), in slot
 * (T >> 6*level) & 63. So every entry at level l lies in a slot after now's
 * slot at that level, in the same block of the level above, and the first
 * occupied slot of the lowest non-empty level is the earliest.
 */
#ifndef HIVE_WHEEL_H
#define HIVE_WHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WHEEL_LEVELS 6
#define WHEEL_SLOTS  64
#define WHEEL_MAX_TICKS ((uint64_t)1 << 36)

struct wentry {
    struct wentry *next, *prev;
    uint64_t tick;
    int16_t level;   /* -1 due list, -2 not in the wheel */
    uint8_t slot;
};

struct wheel {
    uint64_t now;                     /* ticks processed up to */
    size_t   count;
    uint64_t occupied[WHEEL_LEVELS];
    struct wentry due;                /* sentinel: entries already due */
    struct wentry slots[WHEEL_LEVELS][WHEEL_SLOTS];  /* sentinels */
};

void wheel_init(struct wheel *w, uint64_t now);
void wheel_insert(struct wheel *w, struct wentry *e);   /* e->tick set by caller */
void wheel_remove(struct wheel *w, struct wentry *e);
static inline bool wheel_linked(const struct wentry *e) { return e->level != -2; }
/* Earliest tick at which something may be due; false if the wheel is empty. */
bool wheel_next(const struct wheel *w, uint64_t *tick);
/* Moves time to `to` and calls fire(e) for each entry due, already removed. */
void wheel_advance(struct wheel *w, uint64_t to, void (*fire)(struct wentry *, void *),
                   void *ctx);

#endif
